/* stream.c - serve QEMU's -netdev stream (length-prefixed frames on a unix socket). */

/*
 * Theory of operation
 *
 * Lifecycle: one listening socket for the daemon's lifetime; at most one
 * QEMU connection at a time.  A second connection is accepted only to be
 * closed with a log line, so the attached guest is never disturbed.  When
 * QEMU goes away (guest shutdown, QEMU restart, a reset after a bad length
 * prefix) the queues are cleared and the next connection is served from a
 * clean state.
 *
 * Receive: reads go straight into the frame decoder's buffer (no copy);
 * complete frames go to cb->rx_frame() in place.  One dispatch reads at most
 * STREAM_READS_PER_DISPATCH times so a fast guest cannot starve host sockets.
 *
 * Transmit: frames are encoded into a bounded ring (STREAM_TX_RING bytes) and
 * written with one writev() per flush.  Above the high-water mark the backend
 * is congested: it stops reading from QEMU and asks the netstack to stop
 * polling host sockets; below the low-water mark both resume.  A frame that
 * does not fit even so is dropped and counted.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <glib.h>

#include "backend.h"
#include "frame.h"
#include "common/clientslots.h"
#include "common/fdsource.h"
#include "common/util.h"
#include "common/ratelimit.h"
#include "common/unixsock.h"

#define STREAM_TX_RING (4u << 20)
#define STREAM_TX_HIGH (STREAM_TX_RING / 2)
#define STREAM_TX_LOW (STREAM_TX_RING / 4)
#define STREAM_READS_PER_DISPATCH 8

struct stream_backend {
	struct backend be;
	char *path;
	int listen_fd;
	GSource *listen_src;
	struct client_backoff accept_backoff; /* out of descriptors: the listener rests */

	int conn_fd;                /* -1 when no QEMU is attached */
	GSource *conn_src;
	pid_t conn_pid;             /* from SO_PEERCRED, 0 if unknown */
	bool congested;

	struct frame_decoder dec;
	struct frame_ring tx;
	struct ratelimit refuse_rl;
};

static void stream_update_events(struct stream_backend *sb)
{
	GIOCondition ev = 0;

	if (!sb->conn_src)
		return;
	if (!sb->congested)
		ev |= G_IO_IN;
	if (frame_ring_used(&sb->tx))
		ev |= G_IO_OUT;
	fdsource_set_events(sb->conn_src, ev);
}

static void stream_set_congested(struct stream_backend *sb, bool congested)
{
	if (sb->congested == congested)
		return;
	sb->congested = congested;
	if (congested)
		sb->be.stats.congestion_events++;
	stream_update_events(sb);
	sb->be.cb->set_congested(congested, sb->be.opaque);
}

static void stream_disconnect(struct stream_backend *sb, const char *why)
{
	if (sb->conn_fd < 0)
		return;
	g_message("QEMU (pid %d) detached: %s; waiting for the next connection on %s",
		  (int)sb->conn_pid, why, sb->path);
	fdsource_clear(&sb->conn_src);
	close(sb->conn_fd);
	sb->conn_fd = -1;
	sb->conn_pid = 0;
	sb->be.stats.attached = 0;
	frame_decoder_reset(&sb->dec);
	/* Frames for the guest that never left: lost here, not in QEMU (a test tells them apart). */
	sb->be.stats.tx_unsent_bytes += frame_ring_used(&sb->tx);
	frame_ring_clear(&sb->tx);
	stream_set_congested(sb, false);
}

/* Write as much of the ring as the socket takes now; 0 or -errno (fatal). */
static int stream_write_queued(struct stream_backend *sb)
{
	struct iovec iov[2];
	int cnt = frame_ring_peek(&sb->tx, iov);
	ssize_t n;

	if (!cnt)
		return 0;
	do {
		n = writev(sb->conn_fd, iov, cnt);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
	frame_ring_consume(&sb->tx, (size_t)n);
	return 0;
}

static void stream_flush(struct backend *be)
{
	struct stream_backend *sb = container_of(be, struct stream_backend, be);
	int ret;

	if (sb->conn_fd < 0)
		return;
	ret = stream_write_queued(sb);
	if (ret < 0) {
		g_autofree char *why = g_strdup_printf("write failed: %s",
						       g_strerror(-ret));
		stream_disconnect(sb, why);
		return;
	}
	if (sb->congested && frame_ring_used(&sb->tx) < STREAM_TX_LOW)
		stream_set_congested(sb, false);
	stream_update_events(sb);
}

/* QEMU's stream carries no virtio-net header: tx_offloads is 0, so @meta is always NULL. */
static int stream_send(struct backend *be, const void *frame, size_t len,
		       const struct frame_meta *meta)
{
	struct stream_backend *sb = container_of(be, struct stream_backend, be);
	int ret;

	(void)meta;
	if (sb->conn_fd < 0) {
		be->stats.tx_no_peer++;
		return -ENOTCONN;
	}
	ret = frame_ring_push(&sb->tx, frame, len);
	if (ret < 0) {
		be->stats.tx_full++;
		return ret == -ENOBUFS ? -ENOBUFS : -EIO;
	}
	be->stats.tx_frames++;
	be->stats.tx_bytes += len;
	if (frame_ring_used(&sb->tx) > STREAM_TX_HIGH)
		stream_set_congested(sb, true);
	return 0;
}

/* Read and deliver frames; returns false when the connection was dropped. */
static bool stream_receive(struct stream_backend *sb)
{
	bool given = false;

	for (int i = 0; i < STREAM_READS_PER_DISPATCH && !sb->congested; i++) {
		const struct frame_decoder_stats before = sb->dec.stats;
		uint8_t *frame;
		size_t space, len;
		uint8_t *buf = frame_decoder_space(&sb->dec, &space);
		ssize_t n;
		int ret;

		do {
			n = read(sb->conn_fd, buf, space);
		} while (n < 0 && errno == EINTR);
		if (n == 0) {
			stream_disconnect(sb, frame_decoder_pending(&sb->dec) ?
					  "connection closed inside a frame" :
					  "connection closed");
			return false;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			g_autofree char *why = g_strdup_printf("read failed: %s",
							       g_strerror(errno));
			stream_disconnect(sb, why);
			return false;
		}
		frame_decoder_commit(&sb->dec, (size_t)n);

		while ((ret = frame_decoder_next(&sb->dec, &frame, &len)) > 0) {
			sb->be.stats.rx_frames++;
			sb->be.stats.rx_bytes += len;
			sb->be.cb->rx_frame(frame, len, NULL, sb->be.opaque);
			given = true;
		}
		sb->be.stats.rx_runts += sb->dec.stats.runts - before.runts;
		sb->be.stats.rx_oversize += sb->dec.stats.oversize - before.oversize;
		if (ret == -EPROTO) {
			sb->be.stats.rx_bad_prefix++;
			stream_disconnect(sb, "invalid length prefix (larger than "
					  G_STRINGIFY(FRAME_RECORD_MAX)
					  " bytes): stream out of sync, reset");
			return false;
		}
		if ((size_t)n < space)
			break; /* socket drained */
	}
	if (given && sb->be.cb->rx_batch_done)
		sb->be.cb->rx_batch_done(sb->be.opaque);
	return true;
}

static gboolean stream_on_conn(int fd, GIOCondition ready, void *opaque)
{
	struct stream_backend *sb = opaque;

	(void)fd;
	if ((ready & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && !stream_receive(sb))
		return G_SOURCE_CONTINUE; /* source already destroyed */
	if (ready & G_IO_OUT || frame_ring_used(&sb->tx))
		stream_flush(&sb->be);
	return G_SOURCE_CONTINUE;
}

static pid_t stream_peer_pid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	return cred.pid;
}

static gboolean stream_on_accept(int fd, GIOCondition ready, void *opaque)
{
	struct stream_backend *sb = opaque;
	int conn;

	(void)ready;
	/* Bounded: the backlog is small and each pass accepts what is queued. */
	for (int i = 0; i < 16; i++) {
		conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (conn < 0) {
			int err = errno;

			if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
				g_warning("accept on %s failed: %s", sb->path, g_strerror(err));
			/* The connection stays queued, the listener readable: not a busy loop. */
			if (client_accept_lacks_resources(err))
				client_backoff_start(&sb->accept_backoff);
			break;
		}
		if (sb->conn_fd >= 0) {
			uint64_t suppressed;

			sb->be.stats.peers_refused++;
			if (ratelimit_allow(&sb->refuse_rl, g_get_monotonic_time(),
					    &suppressed))
				g_warning("refusing a second QEMU connection (pid %d) on %s: "
					  "QEMU pid %d is attached; one guest per socket",
					  (int)stream_peer_pid(conn), sb->path,
					  (int)sb->conn_pid);
			close(conn);
			continue;
		}

		sb->conn_fd = conn;
		sb->conn_pid = stream_peer_pid(conn);
		sb->be.stats.peers_accepted++;
		sb->be.stats.attached = 1;
		frame_decoder_reset(&sb->dec);
		frame_ring_clear(&sb->tx);
		sb->conn_src = fdsource_new(conn, G_IO_IN, stream_on_conn, sb);
		g_message("QEMU (pid %d) attached on %s", (int)sb->conn_pid,
			  sb->path);
	}
	return G_SOURCE_CONTINUE;
}

static void stream_free(struct backend *be)
{
	struct stream_backend *sb = container_of(be, struct stream_backend, be);

	fdsource_clear(&sb->conn_src);
	if (sb->conn_fd >= 0)
		close(sb->conn_fd);
	client_backoff_stop(&sb->accept_backoff);
	fdsource_clear(&sb->listen_src);
	if (sb->listen_fd >= 0) {
		close(sb->listen_fd);
		unlink(sb->path);
	}
	frame_decoder_fini(&sb->dec);
	frame_ring_fini(&sb->tx);
	g_free(sb->path);
	g_free(sb);
}

static const struct backend_ops stream_ops = {
	.send = stream_send,
	.flush = stream_flush,
	.free = stream_free,
};

int stream_backend_new(const char *path, unsigned int mtu,
		       const struct backend_callbacks *cb, void *opaque,
		       struct backend **out)
{
	struct stream_backend *sb;
	int ret;

	sb = g_new0(struct stream_backend, 1);
	sb->be.ops = &stream_ops;
	sb->be.cb = cb;
	sb->be.opaque = opaque;
	sb->be.max_frame = (size_t)mtu + FRAME_ETH_HLEN;
	sb->path = g_strdup(path);
	sb->listen_fd = -1;
	sb->conn_fd = -1;
	sb->refuse_rl = (struct ratelimit)RATELIMIT_INIT(5);

	ret = frame_decoder_init(&sb->dec, sb->be.max_frame);
	if (!ret)
		ret = frame_ring_init(&sb->tx, STREAM_TX_RING);
	if (ret)
		goto err;

	ret = unixsock_listen(path, 4, false, &sb->listen_fd);
	if (ret)
		goto err;
	sb->listen_src = fdsource_new(sb->listen_fd, G_IO_IN, stream_on_accept, sb);
	sb->accept_backoff.listener = sb->listen_src;
	*out = &sb->be;
	return 0;

err:
	stream_free(&sb->be);
	return ret;
}
