/* tap.c - serve a tap device inside a network namespace (tests, benchmarks, containers). */

/*
 * Theory of operation
 *
 * The device is opened once, in the target namespace, and then used from the
 * daemon's own namespace: a tap fd keeps working wherever its owner lives,
 * which is how slirp4netns and pasta attach a namespace too.  Each read()
 * returns one frame and each write() sends one, so there is no framing and no
 * transmit queue of our own: the kernel's device queue is the buffer.  One
 * dispatch reads at most TAP_READS_PER_DISPATCH frames for fairness with host
 * sockets.
 *
 * Backpressure: a write the device refuses (EAGAIN: its socket's send
 * buffer is full) is a counted drop, and the backend turns congested: it
 * stops reading the guest and asks the netstack to stop reading host
 * sockets, until the device polls writable again.
 *
 * Lifecycle: the device can vanish under us (the namespace or the interface
 * deleted: reads fail with EBADFD or EIO).  Then the backend ends: one log
 * line, the descriptor closed, cb->failed(), and every later frame for the
 * guest is a counted drop (no peer).  No retry: a deleted tap does not come
 * back, and whoever set it up knows better than to wait for it.
 */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/if_tun.h>

#include <glib.h>

#include "backend.h"
#include "frame.h"
#include "common/fdsource.h"
#include "common/util.h"

#define TAP_READS_PER_DISPATCH 64

struct tap_backend {
	struct backend be;
	char *ifname;
	int fd;                     /* -1 once the device is gone */
	GSource *src;
	bool congested;             /* a write was refused: wait for POLLOUT */
	uint8_t *rxbuf;             /* one frame, FRAME_RECORD_MAX bytes */
};

/* Read the guest while uncongested; wait for POLLOUT while congested. */
static void tap_set_congested(struct tap_backend *tb, bool congested)
{
	if (tb->congested == congested)
		return;
	tb->congested = congested;
	if (congested)
		tb->be.stats.congestion_events++;
	fdsource_set_events(tb->src, congested ? G_IO_OUT : G_IO_IN);
	tb->be.cb->set_congested(congested, tb->be.opaque);
}

/* The device is gone: stop for good, say so once. */
static void tap_end(struct tap_backend *tb, int err)
{
	g_autofree char *why = g_strdup_printf("tap %s: the device is gone (%s); no guest from "
					       "now on", tb->ifname, g_strerror(err));

	g_warning("%s", why);
	fdsource_clear(&tb->src);
	close(tb->fd);
	tb->fd = -1;
	tb->be.stats.attached = 0;
	if (tb->congested) {
		tb->congested = false;
		tb->be.cb->set_congested(false, tb->be.opaque);
	}
	if (tb->be.cb->failed)
		tb->be.cb->failed(why, tb->be.opaque);
}

static int tap_send(struct backend *be, const void *frame, size_t len,
		    const struct frame_meta *meta)
{
	struct tap_backend *tb = container_of(be, struct tap_backend, be);
	ssize_t n;

	(void)meta; /* no IFF_VNET_HDR yet: tx_offloads is 0 */
	if (tb->fd < 0) {
		be->stats.tx_no_peer++;
		return -ENOTCONN;
	}
	do {
		n = write(tb->fd, frame, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			be->stats.tx_full++;
			tap_set_congested(tb, true);
			return -ENOBUFS;
		}
		be->stats.tx_errors++;
		return -EIO;
	}
	be->stats.tx_frames++;
	be->stats.tx_bytes += len;
	return 0;
}

static gboolean tap_on_ready(int fd, GIOCondition ready, void *opaque)
{
	struct tap_backend *tb = opaque;

	if (tb->congested) {
		if (ready & G_IO_OUT)
			tap_set_congested(tb, false);
		if (!(ready & (G_IO_ERR | G_IO_HUP)))
			return G_SOURCE_CONTINUE;
	}
	for (int i = 0; i < TAP_READS_PER_DISPATCH; i++) {
		ssize_t n = read(fd, tb->rxbuf, FRAME_RECORD_MAX);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				tap_end(tb, errno);
			break;
		}
		if ((size_t)n < FRAME_ETH_HLEN) {
			tb->be.stats.rx_runts++;
			continue;
		}
		if ((size_t)n > tb->be.max_frame) {
			tb->be.stats.rx_oversize++;
			continue;
		}
		tb->be.stats.rx_frames++;
		tb->be.stats.rx_bytes += n;
		tb->be.cb->rx_frame(tb->rxbuf, (size_t)n, NULL, tb->be.opaque);
	}
	return G_SOURCE_CONTINUE;
}

static void tap_free(struct backend *be)
{
	struct tap_backend *tb = container_of(be, struct tap_backend, be);

	fdsource_clear(&tb->src);
	if (tb->fd >= 0)
		close(tb->fd);
	g_free(tb->ifname);
	g_free(tb->rxbuf);
	g_free(tb);
}

static const struct backend_ops tap_ops = {
	.send = tap_send,
	.free = tap_free,
};

/* Create/open the tap and bring it up with @mtu, in the current namespace. */
static int tap_open_here(const char *ifname, unsigned int mtu)
{
	struct ifreq ifr = { 0 };
	int fd, sock, ret = 0;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;

	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	g_strlcpy(ifr.ifr_name, ifname, IFNAMSIZ);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		goto out;
	}

	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		ret = -errno;
		goto out;
	}
	ifr.ifr_mtu = (int)mtu;
	if (ioctl(sock, SIOCSIFMTU, &ifr) < 0)
		ret = -errno;
	if (!ret && ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		ret = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!ret && ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
		ret = -errno;
	close(sock);

out:
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

/* Run tap_open_here() inside @netns and come back; returns the fd or -errno. */
static int tap_open_in_netns(const char *ifname, const char *netns,
			     unsigned int mtu)
{
	int self, target, fd;

	if (!netns)
		return tap_open_here(ifname, mtu);

	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	target = open(netns, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		fd = -errno;
		close(self);
		return fd;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		fd = -errno;
		goto out;
	}
	fd = tap_open_here(ifname, mtu);
	/* Staying in the wrong namespace would send every host socket astray. */
	if (setns(self, CLONE_NEWNET) < 0)
		g_error("cannot return to the daemon's network namespace: %s",
			g_strerror(errno));
out:
	close(target);
	close(self);
	return fd;
}

int tap_backend_new(const char *ifname, const char *netns, unsigned int mtu,
		    const struct backend_callbacks *cb, void *opaque,
		    struct backend **out)
{
	struct tap_backend *tb;
	int fd;

	if (!*ifname || strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	fd = tap_open_in_netns(ifname, netns, mtu);
	if (fd < 0)
		return fd;

	tb = g_new0(struct tap_backend, 1);
	tb->be.ops = &tap_ops;
	tb->be.cb = cb;
	tb->be.opaque = opaque;
	tb->be.max_frame = (size_t)mtu + FRAME_ETH_HLEN;
	tb->fd = fd;
	tb->ifname = g_strdup(ifname);
	tb->rxbuf = g_malloc(FRAME_RECORD_MAX);
	tb->src = fdsource_new(fd, G_IO_IN, tap_on_ready, tb);
	tb->be.stats.attached = 1;
	g_message("tap %s%s%s attached", ifname, netns ? " in " : "",
		  netns ? netns : "");
	*out = &tb->be;
	return 0;
}
