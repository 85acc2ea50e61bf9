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
 * Offloads (tap_backend_new()'s @offloads): the device is opened with
 * IFF_VNET_HDR, every frame both ways carries a 12-byte virtio-net header
 * (offload.h), and TUNSETOFFLOAD lets the guest's kernel hand us partial
 * checksums and TCPv4 segments of up to 64 KiB, as it would to a virtio
 * NIC; we send it the same (a tap accepts any valid header on write).
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
#include <sys/uio.h>
#include <linux/if_tun.h>

#include <glib.h>

#include "backend.h"
#include "frame.h"
#include "offload.h"
#include "common/fdsource.h"
#include "common/util.h"

#define TAP_READS_PER_DISPATCH 64

struct tap_backend {
	struct backend be;
	char *ifname;
	int fd;                     /* -1 once the device is gone */
	GSource *src;
	bool congested;             /* a write was refused: wait for POLLOUT */
	size_t hdr_len;             /* OFFLOAD_VNET_HDR_LEN with offloads, else 0 */
	uint8_t *rxbuf;             /* one header and frame, hdr_len + FRAME_RECORD_MAX bytes */
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
	uint8_t hdr[OFFLOAD_VNET_HDR_LEN];
	struct iovec iov[2] = { { hdr, tb->hdr_len }, { (void *)frame, len } };
	ssize_t n;

	if (tb->fd < 0) {
		be->stats.tx_no_peer++;
		return -ENOTCONN;
	}
	offload_hdr_build(hdr, meta);
	do {
		n = writev(tb->fd, tb->hdr_len ? iov : iov + 1, tb->hdr_len ? 2 : 1);
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
	bool given = false;

	if (tb->congested) {
		if (ready & G_IO_OUT)
			tap_set_congested(tb, false);
		if (!(ready & (G_IO_ERR | G_IO_HUP)))
			return G_SOURCE_CONTINUE;
	}
	for (int i = 0; i < TAP_READS_PER_DISPATCH; i++) {
		ssize_t n = read(fd, tb->rxbuf, tb->hdr_len + FRAME_RECORD_MAX);
		const struct frame_meta *meta = NULL;
		struct frame_meta m;
		bool ignored = false;
		size_t len;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				tap_end(tb, errno);
			break;
		}
		if ((size_t)n < tb->hdr_len + FRAME_ETH_HLEN) {
			tb->be.stats.rx_runts++;
			continue;
		}
		len = (size_t)n - tb->hdr_len;
		if (tb->hdr_len &&
		    offload_hdr_parse(tb->rxbuf, len, tb->be.rx_offloads, &m, &meta, &ignored)) {
			tb->be.stats.rx_bad_meta++;
			continue;
		}
		tb->be.stats.rx_meta_ignored += ignored;
		/* Only a segmentation offload frame may exceed the MTU. */
		if (len > tb->be.max_frame && (!meta || meta->gso_type == FRAME_GSO_NONE)) {
			tb->be.stats.rx_oversize++;
			continue;
		}
		tb->be.stats.rx_frames++;
		tb->be.stats.rx_bytes += len;
		tb->be.cb->rx_frame(tb->rxbuf + tb->hdr_len, len, meta, tb->be.opaque);
		given = true;
	}
	if (given && tb->fd >= 0 && tb->be.cb->rx_batch_done)
		tb->be.cb->rx_batch_done(tb->be.opaque);
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

/* The device's virtio-net header: 12 bytes, little-endian, and the offloads it may hand us. */
static int tap_set_vnet(int fd, uint32_t offloads)
{
	int hdr_len = OFFLOAD_VNET_HDR_LEN;
	unsigned int tun_offloads = 0;

	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0)
		return -errno;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	{
		int le = 1;

		if (ioctl(fd, TUNSETVNETLE, &le) < 0)
			return -errno;
	}
#endif
	if (offloads & BACKEND_OFFLOAD_CSUM)
		tun_offloads |= TUN_F_CSUM;
	if ((offloads & BACKEND_OFFLOAD_TSO4) && (offloads & BACKEND_OFFLOAD_CSUM))
		tun_offloads |= TUN_F_TSO4;
	if (ioctl(fd, TUNSETOFFLOAD, tun_offloads) < 0)
		return -errno;
	return 0;
}

/* Create/open the tap and bring it up with @mtu, in the current namespace. */
static int tap_open_here(const char *ifname, unsigned int mtu, uint32_t offloads)
{
	struct ifreq ifr = { 0 };
	int fd, sock, ret = 0;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;

	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (offloads ? IFF_VNET_HDR : 0);
	g_strlcpy(ifr.ifr_name, ifname, IFNAMSIZ);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		goto out;
	}
	if (offloads) {
		ret = tap_set_vnet(fd, offloads);
		if (ret)
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
			     unsigned int mtu, uint32_t offloads)
{
	int self, target, fd;

	if (!netns)
		return tap_open_here(ifname, mtu, offloads);

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
	fd = tap_open_here(ifname, mtu, offloads);
	/* Staying in the wrong namespace would send every host socket astray. */
	if (setns(self, CLONE_NEWNET) < 0)
		g_error("cannot return to the daemon's network namespace: %s",
			g_strerror(errno));
out:
	close(target);
	close(self);
	return fd;
}

int tap_backend_new(const char *ifname, const char *netns, unsigned int mtu, uint32_t offloads,
		    const struct backend_callbacks *cb, void *opaque,
		    struct backend **out)
{
	struct tap_backend *tb;
	int fd;

	if (!*ifname || strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	/* TSO needs checksum offload (as TUN_F_TSO4 does). */
	if (!(offloads & BACKEND_OFFLOAD_CSUM))
		offloads = 0;
	fd = tap_open_in_netns(ifname, netns, mtu, offloads);
	if (fd < 0)
		return fd;

	tb = g_new0(struct tap_backend, 1);
	tb->be.ops = &tap_ops;
	tb->be.cb = cb;
	tb->be.opaque = opaque;
	tb->be.max_frame = (size_t)mtu + FRAME_ETH_HLEN;
	tb->fd = fd;
	tb->ifname = g_strdup(ifname);
	tb->hdr_len = offloads ? OFFLOAD_VNET_HDR_LEN : 0;
	tb->be.rx_offloads = offloads;
	tb->be.tx_offloads = offloads;
	tb->rxbuf = g_malloc(tb->hdr_len + FRAME_RECORD_MAX);
	tb->src = fdsource_new(fd, G_IO_IN, tap_on_ready, tb);
	tb->be.stats.attached = 1;
	g_message("tap %s%s%s attached", ifname, netns ? " in " : "",
		  netns ? netns : "");
	*out = &tb->be;
	return 0;
}
