/* vu-frontend.c - the VM model: a guest's virtio-net driver on a tap, and a vhost-user test peer. */

/*
 * Subcommands (all bounded by --timeout, default 30 s):
 *
 *   tap --tap IFNAME --netns PATH --socket SOCK [--mtu N] [--offload none|csum|tso]
 *	The VM model for meshslirp-vu.  The tap (in PATH's namespace, with
 *	IFF_VNET_HDR) is the guest kernel's NIC: what the guest stack sends on
 *	it goes into the transmitq, what the backend puts in the receiveq is
 *	written to it, each with its virtio-net header.
 *   tap2tap --tap IFNAME --netns PATH --device-tap IFNAME2 --device-netns PATH2 [...]
 *	The VM model for masquerade-vm: the same guest side, the same rings
 *	in the same memfd, but the device is a thread of this tool doing what
 *	vhost-net does in a virt-launcher pod: transmitq -> second tap (in
 *	PATH2, offloads on, enslaved to the pod's bridge by the caller),
 *	second tap -> receiveq.  It speaks vhost-user over a socketpair.
 *   cycle --socket SOCK --count N [--no-arp]
 *	N times: connect, negotiate, start, ARP for the gateway 10.0.2.2 and
 *	wait for the reply, stop (GET_VRING_BASE), disconnect.  Prints
 *	"CYCLE count=N ok=N arp_ok=N retries=R seconds=S".
 *   hostile --socket SOCK --case NAME [--recheck]
 *	Run one hostile case (see --help) and print "HOSTILE case=NAME
 *	result=closed|serving|unresponsive [ack=V]": whether the backend closed
 *	the connection, still answers GET_FEATURES, or neither.  With
 *	--recheck, then one clean life on a new connection: "RECHECK
 *	new_connection=ok|failed arp=ok|missed".
 *   device --socket SOCK --device-tap IFNAME2 --device-netns PATH2 [--count N]
 *	A test aid: tap2tap's in-tool device as a vhost-user backend listening
 *	on SOCK (one connection at a time, N of them, 0 = until --timeout), so
 *	tap, cycle and hostile can be checked without the daemon.  Prints
 *	"VUDEV-LISTENING", then "VUDEV-DISCONNECTED ..." after each connection.
 *
 * Theory of operation (tap, tap2tap)
 *
 * Both modes run the guest side on the main thread, with exactly the same
 * functions: guest_tx_batch() reads up to GUEST_BATCH frames from the tap
 * straight into transmit slots (the tap writes the virtio-net header and
 * the frame where the device will read them: no copy of ours), fixes the
 * header as a driver would (num_buffers 0, no DATA_VALID), commits them
 * and publishes once, kicking only if the device asked (EVENT_IDX).
 * guest_rx_batch() takes up to GUEST_BATCH frames from the receiveq and
 * writes each to the tap with one writev() straight from the receive
 * buffers, then reposts them all at once.  Receive calls are wanted;
 * transmit calls only while the ring is full (then the tap is not read).
 * One epoll set holds the tap, the two call eventfds, the control socket
 * and a signalfd; with work left over from a batch the loop polls without
 * sleeping, otherwise it sleeps.  Nothing is allocated per frame.
 *
 * The tap's offloads (TUNSETOFFLOAD) are what the device accepts
 * (VIRTIO_NET_F_CSUM, HOST_TSO4): the guest kernel then hands over 64 KiB
 * GSO frames with partial checksums, as it does to virtio-net.
 *
 * tap2tap's device thread: vudev on the other end of a socketpair, an epoll
 * loop over the device tap, the two kick eventfds, the socket and a stop
 * eventfd.  Like vhost-net it turns kicks off while it drains the
 * transmitq (one writev() per chain into the device tap), reads the device
 * tap with readv() straight into as many receive buffers as a largest frame
 * may need (only those used are consumed) and signals the guest only when
 * it asked; when the receiveq runs dry it stops reading the tap and waits
 * for a kick.
 *
 * At exit (SIGTERM, SIGINT, --timeout) one line:
 *   VUFRONT frames_tx=.. frames_rx=.. bytes_tx=.. bytes_rx=.. kicks=.. calls=..
 *   cpu_user_s=.. cpu_sys_s=.. [dev_cpu_user_s=.. dev_cpu_sys_s=..] ...
 *   [turn_out_n=.. turn_out_p50_us=.. turn_out_p99_us=.. turn_in_n=.. ...]
 * The turn_* fields (--turnaround) are the TCP turnarounds at the guest's NIC
 * (tests/lib/turnaround.h): a data segment to the ACK covering it (out), an
 * advancing ACK to the next data (in), the same code for every system.
 * where cpu_* is the guest side (main thread) only, and dev_cpu_* the
 * in-tool device of tap2tap, so both modes report the same work under the
 * same name.  The line also goes to --stats-fd if given.
 *
 * Exit status: 0 on success (stopped by signal or --timeout), 1 on a
 * failure (setup, backend gone), 2 for bad usage.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <poll.h>

#include <glib.h>

#include "tests/lib/turnaround.h"
#include "tests/lib/vudev.h"
#include "tests/lib/vuhostile.h"
#include "tests/lib/vufront.h"

#define GUEST_BATCH 64              /* frames per direction per wakeup */
#define DEV_BATCH 64
#define EPOLL_EVENTS 8
#define CONNECT_RETRY_MS 50         /* a backend still closing the last connection */
#define ETH_HDR 14
#define ETH_VLAN_MAX (ETH_HDR + 4)

static char *opt_tap, *opt_netns, *opt_socket, *opt_dev_tap, *opt_dev_netns, *opt_offload;
static char *opt_case, *opt_tx_layout;
static int opt_timeout = 30, opt_stats_fd = -1, opt_queue_size, opt_rx_buf, opt_regions;
static gint64 opt_mtu = 65520, opt_count = 1;
static gboolean opt_no_arp, opt_recheck, opt_turnaround;

static const GOptionEntry entries[] = {
	{ "tap", 0, 0, G_OPTION_ARG_STRING, &opt_tap, "Guest tap device", "IFNAME" },
	{ "netns", 0, 0, G_OPTION_ARG_FILENAME, &opt_netns, "Guest namespace", "PATH" },
	{ "socket", 0, 0, G_OPTION_ARG_FILENAME, &opt_socket, "Backend's vhost-user socket", "SOCK" },
	{ "device-tap", 0, 0, G_OPTION_ARG_STRING, &opt_dev_tap, "Device tap (tap2tap)", "IFNAME" },
	{ "device-netns", 0, 0, G_OPTION_ARG_FILENAME, &opt_dev_netns, "Device tap's namespace (tap2tap)", "PATH" },
	{ "mtu", 0, 0, G_OPTION_ARG_INT64, &opt_mtu, "Tap MTU; NET_SET_MTU if negotiated (default 65520)", "N" },
	{ "offload", 0, 0, G_OPTION_ARG_STRING, &opt_offload, "none, csum or tso (default none)", "KIND" },
	{ "timeout", 0, 0, G_OPTION_ARG_INT, &opt_timeout, "Stop after S seconds (default 30)", "S" },
	{ "stats-fd", 0, 0, G_OPTION_ARG_INT, &opt_stats_fd, "Also write the VUFRONT line here", "N" },
	{ "queue-size", 0, 0, G_OPTION_ARG_INT, &opt_queue_size, "Ring size (default 256)", "N" },
	{ "rx-buf", 0, 0, G_OPTION_ARG_INT, &opt_rx_buf, "Receive buffer bytes (default 4096)", "N" },
	{ "regions", 0, 0, G_OPTION_ARG_INT, &opt_regions, "Memory regions (default 1)", "N" },
	{ "tx-layout", 0, 0, G_OPTION_ARG_STRING, &opt_tx_layout, "flat, split or indirect", "L" },
	{ "count", 0, 0, G_OPTION_ARG_INT64, &opt_count, "Connections (cycle; device: 0 = any)", "N" },
	{ "no-arp", 0, 0, G_OPTION_ARG_NONE, &opt_no_arp, "Do not exchange ARP (cycle)", NULL },
	{ "case", 0, 0, G_OPTION_ARG_STRING, &opt_case, "Hostile case (hostile)", "NAME" },
	{ "recheck", 0, 0, G_OPTION_ARG_NONE, &opt_recheck, "Then one clean life on a new connection (hostile)", NULL },
	{ "turnaround", 0, 0, G_OPTION_ARG_NONE, &opt_turnaround,
	  "Measure TCP turnarounds at the guest's NIC (tap, tap2tap; tests/lib/turnaround.h)", NULL },
	{ NULL, 0, 0, 0, NULL, NULL, NULL },
};

/* Monotonic clock in milliseconds. */
static int64_t now_ms(void)
{
	return g_get_monotonic_time() / 1000;
}

/* A struct timeval in seconds. */
static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* --- taps --- */

/* TUNSETOFFLOAD flags for a tap whose reader takes what @features say. */
static unsigned int tun_offloads(bool csum, bool tso4)
{
	return (csum ? TUN_F_CSUM : 0) | (csum && tso4 ? TUN_F_TSO4 : 0);
}

/* Set the vnet header size and offloads of tap @fd. 0 or -errno. */
static int tap_configure(int fd, unsigned int hdr_len, unsigned int offloads)
{
	int sz = (int)hdr_len;

	if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 || ioctl(fd, TUNSETOFFLOAD, offloads) < 0)
		return -errno;
	return 0;
}

/* Open tap @ifname with a vnet header in the current namespace, set @mtu, bring it up. */
static int tap_open_here(const char *ifname, unsigned int mtu)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int fd, ctl, ret = 0;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	g_strlcpy(ifr.ifr_name, ifname, IFNAMSIZ);
	ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ctl < 0)
		ret = -errno;
	ifr.ifr_mtu = (int)mtu;
	if (!ret && ioctl(ctl, SIOCSIFMTU, &ifr) < 0)
		ret = -errno;
	if (!ret && ioctl(ctl, SIOCGIFFLAGS, &ifr) < 0)
		ret = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!ret && ioctl(ctl, SIOCSIFFLAGS, &ifr) < 0)
		ret = -errno;
	if (ctl >= 0)
		close(ctl);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

/* tap_open_here() inside namespace @netns, then back to ours. fd or -errno. */
static int tap_open(const char *ifname, const char *netns, unsigned int mtu)
{
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int target = open(netns, O_RDONLY | O_CLOEXEC), fd;

	if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) < 0) {
		fd = -errno;
		goto out;
	}
	fd = tap_open_here(ifname, mtu);
	if (setns(self, CLONE_NEWNET) < 0) {
		fprintf(stderr, "vu-frontend: cannot return to our namespace: %s\n", strerror(errno));
		exit(1);
	}
out:
	if (self >= 0)
		close(self);
	if (target >= 0)
		close(target);
	return fd;
}

/* --- the guest side: the same functions for tap and tap2tap --- */

struct guest {
	struct vufront *vf;
	int tap;
	unsigned int hdr_len;
	size_t read_max;            /* header + largest frame */
	struct vufront_rxframe rx;  /* one received frame at a time */
	uint64_t tap_write_drops, tap_runts, rx_bad;
	struct turnaround *turn;    /* --turnaround, else NULL */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --turnaround: watch the guest's TCP turnarounds (reported in the exit line). */
static void guest_turnaround(struct guest *g)
{
	if (!opt_turnaround)
		return;
	g->turn = g_new(struct turnaround, 1);
	turn_init(g->turn);
}

/* A driver's transmit header: num_buffers 0, no receive-only flags (5.1.6.2). */
static void guest_fix_tx_hdr(struct guest *g, uint8_t *slot)
{
	struct virtio_net_hdr_v1 *h = (struct virtio_net_hdr_v1 *)slot;

	h->flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM;
	if (g->hdr_len == VIRTIO_NET_HDR_LEN)
		h->num_buffers = 0;
}

enum batch_end { BATCH_IDLE, BATCH_MORE, BATCH_FULL };

/* Guest kernel -> transmitq: up to GUEST_BATCH frames, one publish, at most one kick. */
static enum batch_end guest_tx_batch(struct guest *g)
{
	enum batch_end end = BATCH_MORE;

	/* Completed slots first: the one freed last is the warmest to read into. */
	vufront_tx_reclaim(g->vf);
	for (int i = 0; i < GUEST_BATCH; i++) {
		uint8_t *slot = vufront_tx_slot(g->vf, NULL);
		ssize_t n;

		if (!slot) {
			end = BATCH_FULL;
			break;
		}
		n = read(g->tap, slot, g->read_max);
		if (n < 0) {
			end = BATCH_IDLE;
			break;
		}
		if ((size_t)n <= g->hdr_len + ETH_HDR) {
			g->tap_runts++;
			continue;
		}
		guest_fix_tx_hdr(g, slot);
		if (g->turn)
			turn_from_guest(g->turn, slot + g->hdr_len, (size_t)n - g->hdr_len, now_ns());
		vufront_tx_commit(g->vf, (size_t)n);
	}
	vufront_tx_flush(g->vf);
	return end;
}

/* Receiveq -> guest kernel: up to GUEST_BATCH frames, one writev each, one repost. */
static enum batch_end guest_rx_batch(struct guest *g)
{
	int i;

	for (i = 0; i < GUEST_BATCH; i++) {
		int r = vufront_rx_next(g->vf, &g->rx);

		if (r == -EAGAIN)
			break;
		if (r) {
			g->rx_bad++;
			if (r != -EPROTO)
				break;
			continue;
		}
		if (g->turn && g->rx.iov[0].iov_len > g->hdr_len)
			turn_to_guest(g->turn, (uint8_t *)g->rx.iov[0].iov_base + g->hdr_len,
				      g->rx.iov[0].iov_len - g->hdr_len, now_ns());
		if (writev(g->tap, g->rx.iov, (int)g->rx.niov) < 0)
			g->tap_write_drops++;
		vufront_rx_release(g->vf, &g->rx);
	}
	vufront_rx_refill(g->vf);
	if (i == GUEST_BATCH)
		return BATCH_MORE;
	/* Ask for a call, and catch a frame that landed meanwhile. */
	return vufront_rx_notify_on(g->vf) ? BATCH_MORE : BATCH_IDLE;
}

/* Watch @fd in epoll set @ep for @events (level-triggered). */
static int ep_add(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Change the events watched on @fd (0: only errors). */
static int ep_mod(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* A signalfd for SIGINT and SIGTERM (blocked in every thread created after this). */
static int signals_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/**
 * guest_serve() - move frames between the guest tap and the rings until told to stop
 * @sigfd:	signalfd; a signal ends the loop normally
 *
 * Return: 0 when stopped by a signal or --timeout, 1 if the backend went away.
 */
static int guest_serve(struct guest *g, int sigfd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), sock = vufront_sock_fd(g->vf);
	int rx_call = vufront_call_fd(g->vf, VUFRONT_RXQ), tx_call = vufront_call_fd(g->vf, VUFRONT_TXQ);
	int64_t deadline = now_ms() + (int64_t)opt_timeout * 1000;
	bool tx_more = true, rx_more = true, tap_paused = false;
	int ret = 0;

	ep_add(ep, g->tap, EPOLLIN);
	ep_add(ep, rx_call, EPOLLIN);
	ep_add(ep, tx_call, EPOLLIN);
	ep_add(ep, sock, EPOLLIN | EPOLLRDHUP);
	ep_add(ep, sigfd, EPOLLIN);
	for (;;) {
		struct epoll_event ev[EPOLL_EVENTS];
		int64_t left = deadline - now_ms();
		bool tap_in = false, rx_in = false, tx_in = false;
		int n;

		if (left <= 0)
			break;
		n = epoll_wait(ep, ev, EPOLL_EVENTS, tx_more || rx_more ? 0 : (int)MIN(left, INT32_MAX));
		if (n < 0 && errno != EINTR) {
			ret = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;

			if (fd == sigfd)
				goto out;
			if (fd == sock && vufront_peer_closed(g->vf, 0)) {
				fprintf(stderr, "vu-frontend: the backend closed the connection\n");
				ret = 1;
				goto out;
			}
			tap_in |= fd == g->tap;
			rx_in |= fd == rx_call;
			tx_in |= fd == tx_call;
		}
		if (rx_in)
			vufront_call_drain(g->vf, VUFRONT_RXQ);
		if (rx_in || rx_more)
			rx_more = guest_rx_batch(g) == BATCH_MORE;
		if (tx_in)
			vufront_call_drain(g->vf, VUFRONT_TXQ);
		if (tap_paused && (tx_in || tx_more)) {
			vufront_tx_reclaim(g->vf);
			if (vufront_tx_free(g->vf)) {
				vufront_tx_notify_off(g->vf);
				ep_mod(ep, g->tap, EPOLLIN);
				tap_paused = false;
				tx_more = true;
			} else {
				tx_more = vufront_tx_notify_on(g->vf);
			}
		}
		if (!tap_paused && (tap_in || tx_more)) {
			enum batch_end end = guest_tx_batch(g);

			tx_more = end == BATCH_MORE;
			if (end == BATCH_FULL) {
				/* Ring full: stop reading the tap until a completion is signalled. */
				ep_mod(ep, g->tap, 0);
				tap_paused = true;
				tx_more = vufront_tx_notify_on(g->vf);
			}
		}
	}
out:
	close(ep);
	return ret;
}

/* The offload features in @f as a comma-separated list, "none" if none (static buffer). */
static const char *offload_names(uint64_t f)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s%s%s%s", f & VU_BIT(VIRTIO_NET_F_CSUM) ? "csum," : "",
		 f & VU_BIT(VIRTIO_NET_F_GUEST_CSUM) ? "guest_csum," : "",
		 f & VU_BIT(VIRTIO_NET_F_HOST_TSO4) ? "host_tso4," : "",
		 f & VU_BIT(VIRTIO_NET_F_GUEST_TSO4) ? "guest_tso4," : "");
	if (!buf[0])
		return "none";
	buf[strlen(buf) - 1] = '\0';
	return buf;
}

/* Features the driver offers for --offload. */
static int want_features(uint64_t *want)
{
	*want = VUFRONT_FEATURES_BASE | VU_BIT(VIRTIO_NET_F_MTU);
	if (!opt_offload || !strcmp(opt_offload, "none"))
		return 0;
	if (!strcmp(opt_offload, "csum")) {
		*want |= VU_BIT(VIRTIO_NET_F_CSUM) | VU_BIT(VIRTIO_NET_F_GUEST_CSUM);
		return 0;
	}
	if (!strcmp(opt_offload, "tso")) {
		*want |= VUFRONT_FEATURES_OFFLOAD;
		return 0;
	}
	return -EINVAL;
}

/* Parse --tx-layout. 0 or -EINVAL. */
static int tx_layout(enum vufront_tx_layout *l)
{
	if (!opt_tx_layout || !strcmp(opt_tx_layout, "flat"))
		*l = VUFRONT_TX_FLAT;
	else if (!strcmp(opt_tx_layout, "split"))
		*l = VUFRONT_TX_SPLIT_HDR;
	else if (!strcmp(opt_tx_layout, "indirect"))
		*l = VUFRONT_TX_INDIRECT;
	else
		return -EINVAL;
	return 0;
}

/* The front-end as both tap modes build it. */
static int guest_frontend(struct vufront **vf)
{
	struct vufront_config cfg = { .queue_size = (unsigned int)opt_queue_size,
				      .rx_buf_size = (unsigned int)opt_rx_buf,
				      .nregions = (unsigned int)opt_regions,
				      .mtu = (unsigned int)opt_mtu };
	int ret = tx_layout(&cfg.tx_layout);

	return ret ? ret : vufront_new(&cfg, vf);
}

/* Negotiated: set the guest tap's header size and offloads, print what we got. */
static int guest_attach_tap(struct guest *g)
{
	uint64_t f = vufront_features(g->vf);
	int ret;

	g->hdr_len = vufront_hdr_len(g->vf);
	g->read_max = g->hdr_len + vufront_config(g->vf)->frame_max;
	ret = tap_configure(g->tap, g->hdr_len,
			    tun_offloads(f & VU_BIT(VIRTIO_NET_F_CSUM), f & VU_BIT(VIRTIO_NET_F_HOST_TSO4)));
	if (ret) {
		fprintf(stderr, "vu-frontend: tap offloads: %s\n", strerror(-ret));
		return ret;
	}
	printf("VUFRONT-NEGOTIATED features=%#" G_GINT64_MODIFIER "x offered=%#" G_GINT64_MODIFIER
	       "x protocol=%#" G_GINT64_MODIFIER "x offloads=%s hdr_len=%u mrg_rxbuf=%d event_idx=%d\n",
	       f, vufront_offered_features(g->vf), vufront_protocol_features(g->vf), offload_names(f),
	       g->hdr_len, !!(f & VU_BIT(VIRTIO_NET_F_MRG_RXBUF)),
	       !!(f & VU_BIT(VIRTIO_RING_F_EVENT_IDX)));
	return 0;
}

/* The exit line; @dev is the in-tool device's CPU (tap2tap) or NULL. */
static void report(const struct guest *g, const struct rusage *dev)
{
	const struct vufront_stats *s = vufront_stats(g->vf);
	struct rusage ru;
	char line[768], extra[128] = "", turn[192] = "";

	getrusage(RUSAGE_THREAD, &ru);
	if (dev)
		snprintf(extra, sizeof(extra), " dev_cpu_user_s=%.2f dev_cpu_sys_s=%.2f",
			 tv_s(dev->ru_utime), tv_s(dev->ru_stime));
	if (g->turn)
		snprintf(turn, sizeof(turn),
			 " turn_out_n=%" G_GUINT64_FORMAT " turn_out_p50_us=%.0f turn_out_p99_us=%.0f"
			 " turn_in_n=%" G_GUINT64_FORMAT " turn_in_p50_us=%.0f turn_in_p99_us=%.0f",
			 g->turn->out.n, turn_percentile_us(&g->turn->out, 50),
			 turn_percentile_us(&g->turn->out, 99), g->turn->in.n,
			 turn_percentile_us(&g->turn->in, 50), turn_percentile_us(&g->turn->in, 99));
	snprintf(line, sizeof(line),
		 "VUFRONT frames_tx=%" G_GUINT64_FORMAT " frames_rx=%" G_GUINT64_FORMAT
		 " bytes_tx=%" G_GUINT64_FORMAT " bytes_rx=%" G_GUINT64_FORMAT " kicks=%" G_GUINT64_FORMAT
		 " calls=%" G_GUINT64_FORMAT " cpu_user_s=%.2f cpu_sys_s=%.2f%s"
		 " kicks_suppressed=%" G_GUINT64_FORMAT " call_wakeups=%" G_GUINT64_FORMAT
		 " tx_full=%" G_GUINT64_FORMAT " tap_write_drops=%" G_GUINT64_FORMAT
		 " dev_errors=%" G_GUINT64_FORMAT "%s\n",
		 s->frames_tx, s->frames_rx, s->bytes_tx, s->bytes_rx, s->kicks, s->calls,
		 tv_s(ru.ru_utime), tv_s(ru.ru_stime), extra, s->kicks_suppressed, s->call_reads,
		 s->tx_full, g->tap_write_drops, s->dev_errors, turn);
	fputs(line, stdout);
	fflush(stdout);
	if (opt_stats_fd >= 0 && write(opt_stats_fd, line, strlen(line)) < 0)
		perror("vu-frontend: --stats-fd");
}

/* tap: the VM model for meshslirp-vu (see the top of this file). */
static int cmd_tap(void)
{
	struct guest *g = g_new0(struct guest, 1);
	uint64_t want;
	int sigfd = signals_fd(), ret;

	if (!opt_tap || !opt_netns || !opt_socket || want_features(&want))
		return 2;
	guest_turnaround(g);
	g->tap = tap_open(opt_tap, opt_netns, (unsigned int)opt_mtu);
	if (g->tap < 0) {
		fprintf(stderr, "vu-frontend: tap %s in %s: %s\n", opt_tap, opt_netns, strerror(-g->tap));
		return 1;
	}
	ret = guest_frontend(&g->vf);
	if (!ret)
		ret = vufront_connect(g->vf, opt_socket);
	if (!ret)
		ret = vufront_start(g->vf, want, VUFRONT_PROTOCOL_ALL);
	if (ret) {
		fprintf(stderr, "vu-frontend: %s: %s\n", opt_socket, strerror(-ret));
		return 1;
	}
	if (guest_attach_tap(g))
		return 1;
	printf("VUFRONT-READY\n");
	fflush(stdout);
	ret = guest_serve(g, sigfd);
	report(g, NULL);
	vufront_free(g->vf);
	close(g->tap);
	g_free(g);
	return ret;
}

/* --- tap2tap: the in-tool device, what vhost-net does in a virt-launcher pod --- */

struct device {
	struct vudev *d;
	int tap, stopfd, ep;
	int kick[VUDEV_NQUEUES];    /* kick fds as registered in ep */
	bool configured, rx_starved;
	size_t rx_need;             /* receive space for the largest frame the tap may give */
	struct iovec riov[VUDEV_IOV_MAX];
	struct vudev_chain chain;
	uint64_t to_tap, from_tap, tap_write_drops;
	struct rusage ru;
	int failed;
};

/* Follow the kick fds the front-end set; configure the tap once both queues run. */
static void dev_track(struct device *dv)
{
	for (unsigned int q = 0; q < VUDEV_NQUEUES; q++) {
		int fd = vudev_kick_fd(dv->d, q);

		if (fd == dv->kick[q])
			continue;
		if (fd >= 0)
			ep_add(dv->ep, fd, EPOLLIN);
		dv->kick[q] = fd;
	}
	if (!dv->configured && vudev_ready(dv->d, VUDEV_RXQ) && vudev_ready(dv->d, VUDEV_TXQ)) {
		uint64_t f = vudev_features(dv->d);
		bool tso = f & VU_BIT(VIRTIO_NET_F_GUEST_TSO4);

		/* What the guest accepts decides what the tap may hand us. */
		if (tap_configure(dv->tap, vudev_hdr_len(dv->d),
				  tun_offloads(f & VU_BIT(VIRTIO_NET_F_GUEST_CSUM), tso)))
			dv->failed = 1;
		dv->rx_need = vudev_hdr_len(dv->d) +
			      (tso ? VUFRONT_FRAME_MAX_DEFAULT : (size_t)opt_mtu + ETH_VLAN_MAX);
		ep_add(dv->ep, dv->tap, EPOLLIN);
		dv->configured = true;
	}
}

/* Transmitq -> device tap, kicks off meanwhile. BATCH_MORE if the budget ran out. */
static enum batch_end dev_tx_batch(struct device *dv)
{
	int i;

	vudev_notify_off(dv->d, VUDEV_TXQ);
	for (i = 0; i < DEV_BATCH; i++) {
		int r = vudev_tx_pop(dv->d, &dv->chain);

		if (r == -EIO) {
			/* A dead queue (impossible index): nothing more until it is set up again. */
			vudev_flush(dv->d, VUDEV_TXQ);
			return BATCH_IDLE;
		}
		if (r == -EAGAIN)
			break;
		if (r)
			continue;
		if (writev(dv->tap, dv->chain.iov, (int)dv->chain.niov) < 0)
			dv->tap_write_drops++;
		else
			dv->to_tap++;
		vudev_tx_push(dv->d, dv->chain.head);
	}
	vudev_flush(dv->d, VUDEV_TXQ);
	if (i == DEV_BATCH)
		return BATCH_MORE;
	return vudev_notify_on(dv->d, VUDEV_TXQ) ? BATCH_MORE : BATCH_IDLE;
}

/* Device tap -> receiveq, straight into the guest's buffers. */
static enum batch_end dev_rx_batch(struct device *dv)
{
	enum batch_end end = BATCH_MORE;
	bool armed = false;

	for (int i = 0; i < DEV_BATCH; i++) {
		unsigned int niov;
		size_t cap;
		ssize_t n;
		int r = vudev_rx_peek(dv->d, dv->rx_need, dv->riov, &niov, &cap);

		if (r == -EAGAIN) {
			/*
			 * Not enough buffers for the largest frame: ask for a kick, look
			 * once more (the guest may have posted meanwhile), else wait.
			 */
			if (!armed) {
				armed = true;
				vudev_notify_on(dv->d, VUDEV_RXQ);
				i--;
				continue;
			}
			dv->rx_starved = true;
			ep_mod(dv->ep, dv->tap, 0);
			end = BATCH_IDLE;
			break;
		}
		if (armed) {
			vudev_notify_off(dv->d, VUDEV_RXQ);
			armed = false;
		}
		if (r) {
			/* A bad or dead receiveq: stop reading the tap for this connection. */
			dv->rx_starved = true;
			ep_mod(dv->ep, dv->tap, 0);
			end = BATCH_IDLE;
			break;
		}
		n = readv(dv->tap, dv->riov, (int)niov);
		if (n < 0) {
			end = BATCH_IDLE;
			break;
		}
		if ((size_t)n <= vudev_hdr_len(dv->d))
			continue;
		vudev_rx_commit(dv->d, (size_t)n);
		dv->from_tap++;
	}
	vudev_flush(dv->d, VUDEV_RXQ);
	return end;
}

/**
 * dev_serve() - be the device of one vhost-user connection (dv->d) until it ends
 *
 * Return: true if dv->stopfd became readable (stop everything), false if
 * the front-end left or broke the protocol (vudev closed the connection).
 */
static bool dev_serve(struct device *dv)
{
	bool tx_more = false, rx_more = false, stopped = false;

	dv->ep = epoll_create1(EPOLL_CLOEXEC);
	dv->kick[0] = dv->kick[1] = -1;
	dv->configured = dv->rx_starved = false;
	ep_add(dv->ep, vudev_sock_fd(dv->d), EPOLLIN);
	ep_add(dv->ep, dv->stopfd, EPOLLIN);
	while (!dv->failed) {
		struct epoll_event ev[EPOLL_EVENTS];
		bool tap_in = false, tx_kick = false, rx_kick = false;
		int n = epoll_wait(dv->ep, ev, EPOLL_EVENTS, tx_more || rx_more ? 0 : -1);

		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;

			if (fd == dv->stopfd) {
				stopped = true;
				goto out;
			}
			if (fd == vudev_sock_fd(dv->d)) {
				if (vudev_handle_control(dv->d) < 0)
					goto out;
				dev_track(dv);
			}
			tap_in |= fd == dv->tap;
			tx_kick |= fd == dv->kick[VUDEV_TXQ];
			rx_kick |= fd == dv->kick[VUDEV_RXQ];
		}
		/* Kicks are read even before both queues run: a readable eventfd would spin. */
		if (tx_kick)
			vudev_kick_drain(dv->d, VUDEV_TXQ);
		if (rx_kick)
			vudev_kick_drain(dv->d, VUDEV_RXQ);
		if (!dv->configured)
			continue;
		if (tx_kick || tx_more)
			tx_more = dev_tx_batch(dv) == BATCH_MORE;
		if (rx_kick && dv->rx_starved) {
			dv->rx_starved = false;
			vudev_notify_off(dv->d, VUDEV_RXQ);
			ep_mod(dv->ep, dv->tap, EPOLLIN);
			rx_more = true;
		}
		if (!dv->rx_starved && (tap_in || rx_more))
			rx_more = dev_rx_batch(dv) == BATCH_MORE;
	}
out:
	close(dv->ep);
	return stopped;
}

/* The in-tool device's thread in tap2tap: serve the socketpair, then record its CPU time. */
static void *dev_thread(void *opaque)
{
	struct device *dv = opaque;

	dev_serve(dv);
	getrusage(RUSAGE_THREAD, &dv->ru);
	return NULL;
}

/* What vhost-net and QEMU's virtio-net offer together. */
static const struct vudev_config dev_offer = {
	.features = VUFRONT_FEATURES_BASE | VUFRONT_FEATURES_OFFLOAD | VU_BIT(VIRTIO_NET_F_MTU) |
		    VU_BIT(VIRTIO_RING_F_INDIRECT_DESC) | VU_BIT(VHOST_F_LOG_ALL),
	.protocol_features = VUFRONT_PROTOCOL_ALL,
};

/* device: the in-tool device behind a listening socket, one connection after another. */
static int cmd_device(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct device *dv = g_new0(struct device, 1);
	int64_t deadline = now_ms() + (int64_t)opt_timeout * 1000;
	int lfd, served = 0;

	if (!opt_socket || !opt_dev_tap || !opt_dev_netns || strlen(opt_socket) >= sizeof(sa.sun_path))
		return 2;
	dv->stopfd = signals_fd();
	dv->tap = tap_open(opt_dev_tap, opt_dev_netns, (unsigned int)opt_mtu);
	if (dv->tap < 0) {
		fprintf(stderr, "vu-frontend: tap %s: %s\n", opt_dev_tap, strerror(-dv->tap));
		return 1;
	}
	strcpy(sa.sun_path, opt_socket);
	unlink(opt_socket);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 4)) {
		perror("vu-frontend: device: listen");
		return 1;
	}
	printf("VUDEV-LISTENING\n");
	while (!opt_count || served < opt_count) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = dv->stopfd, .events = POLLIN } };
		int64_t left = deadline - now_ms();
		int c;

		if (left <= 0 || poll(p, 2, (int)MIN(left, INT32_MAX)) <= 0 || (p[1].revents & POLLIN))
			break;
		c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0 || vudev_new(c, &dev_offer, &dv->d))
			continue;
		served++;
		dv->failed = 0;
		if (dev_serve(dv)) {
			vudev_free(dv->d);
			break;
		}
		printf("VUDEV-DISCONNECTED n=%d chains=%" G_GUINT64_FORMAT " bad_chains=%" G_GUINT64_FORMAT
		       " bad_tx_hdrs=%" G_GUINT64_FORMAT " to_tap=%" G_GUINT64_FORMAT
		       " from_tap=%" G_GUINT64_FORMAT "\n", served, vudev_stats(dv->d)->tx_chains,
		       vudev_stats(dv->d)->bad_chains, vudev_stats(dv->d)->bad_tx_hdrs, dv->to_tap,
		       dv->from_tap);
		vudev_free(dv->d);
		dv->d = NULL;
	}
	close(lfd);
	unlink(opt_socket);
	close(dv->tap);
	g_free(dv);
	return 0;
}

/* tap2tap: the VM model for masquerade-vm (see the top of this file). */
static int cmd_tap2tap(void)
{
	struct guest *g = g_new0(struct guest, 1);
	struct device *dv = g_new0(struct device, 1);
	uint64_t want, one = 1;
	pthread_t th;
	int sigfd = signals_fd(), sv[2], ret;

	if (!opt_tap || !opt_netns || !opt_dev_tap || !opt_dev_netns || want_features(&want))
		return 2;
	guest_turnaround(g);
	g->tap = tap_open(opt_tap, opt_netns, (unsigned int)opt_mtu);
	dv->tap = tap_open(opt_dev_tap, opt_dev_netns, (unsigned int)opt_mtu);
	if (g->tap < 0 || dv->tap < 0) {
		fprintf(stderr, "vu-frontend: taps %s, %s: %s\n", opt_tap, opt_dev_tap,
			strerror(-(g->tap < 0 ? g->tap : dv->tap)));
		return 1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    vudev_new(sv[1], &dev_offer, &dv->d) || guest_frontend(&g->vf) || vufront_attach(g->vf, sv[0]))
		return 1;
	dv->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pthread_create(&th, NULL, dev_thread, dv))
		return 1;
	ret = vufront_start(g->vf, want, VUFRONT_PROTOCOL_ALL);
	if (ret) {
		fprintf(stderr, "vu-frontend: in-tool device: %s\n", strerror(-ret));
		ret = 1;
	} else if (guest_attach_tap(g)) {
		ret = 1;
	} else {
		printf("VUFRONT-READY\n");
		fflush(stdout);
		ret = guest_serve(g, sigfd);
	}
	if (write(dv->stopfd, &one, sizeof(one)) < 0)
		ret = 1;
	pthread_join(th, NULL);
	ret = ret || dv->failed;
	if (!ret)
		report(g, &dv->ru);
	printf("VUFRONT-DEVICE to_tap=%" G_GUINT64_FORMAT " from_tap=%" G_GUINT64_FORMAT
	       " tap_write_drops=%" G_GUINT64_FORMAT " calls=%" G_GUINT64_FORMAT
	       " calls_suppressed=%" G_GUINT64_FORMAT " bad_chains=%" G_GUINT64_FORMAT
	       " bad_tx_hdrs=%" G_GUINT64_FORMAT "\n",
	       dv->to_tap, dv->from_tap, dv->tap_write_drops, vudev_stats(dv->d)->calls,
	       vudev_stats(dv->d)->calls_suppressed, vudev_stats(dv->d)->bad_chains,
	       vudev_stats(dv->d)->bad_tx_hdrs);
	vufront_free(g->vf);
	vudev_free(dv->d);
	close(g->tap);
	close(dv->tap);
	close(dv->stopfd);
	g_free(g);
	g_free(dv);
	return ret;
}

/* --- cycle: whole lives of a guest on a backend --- */

/*
 * one_life() - connect (retrying while the backend still closes the last
 * connection), start, ARP unless --no-arp, stop, disconnect.
 * @arp_ok:	set when the ARP reply came
 * @retries:	connection attempts beyond the first are added here
 *
 * Return: 0 or -errno of the first failing step.
 */
static int one_life(bool *arp_ok, uint64_t *retries)
{
	struct vufront_config cfg = { .frame_max = 2048, .timeout_ms = 2000 };
	int64_t deadline = now_ms() + (int64_t)opt_timeout * 1000;
	struct vufront *vf;
	int ret = vufront_new(&cfg, &vf);

	*arp_ok = false;
	while (!ret) {
		ret = vufront_connect(vf, opt_socket);
		if (!ret)
			ret = vufront_start(vf, VUFRONT_FEATURES_BASE, VUFRONT_PROTOCOL_ALL);
		if (ret != -ECONNRESET && ret != -EPIPE && ret != -ECONNREFUSED && ret != -ENOENT &&
		    ret != -EAGAIN)
			break;
		vufront_disconnect(vf);
		if (now_ms() > deadline)
			break;
		(*retries)++;
		usleep(CONNECT_RETRY_MS * 1000);
	}
	if (!ret && !opt_no_arp)
		*arp_ok = vuhostile_arp_gateway(vf) == 0;
	if (!ret)
		ret = vufront_stop(vf);
	vufront_free(vf);
	return ret;
}

/* cycle: --count whole lives; "CYCLE ..." at the end; 1 unless all of them worked. */
static int cmd_cycle(void)
{
	int64_t t0 = now_ms();
	uint64_t ok = 0, arp_ok = 0, retries = 0;

	if (!opt_socket || opt_count < 1)
		return 2;
	for (gint64 i = 0; i < opt_count; i++) {
		bool arp;
		int ret = one_life(&arp, &retries);

		if (ret)
			fprintf(stderr, "vu-frontend: cycle %" G_GINT64_FORMAT ": %s\n", i, strerror(-ret));
		ok += !ret;
		arp_ok += arp;
		if (now_ms() - t0 > (int64_t)opt_timeout * 1000)
			break;
	}
	printf("CYCLE count=%" G_GINT64_FORMAT " ok=%" G_GUINT64_FORMAT " arp_ok=%" G_GUINT64_FORMAT
	       " retries=%" G_GUINT64_FORMAT " seconds=%.2f\n", opt_count, ok, arp_ok, retries,
	       (double)(now_ms() - t0) / 1000);
	return ok == (uint64_t)opt_count && (opt_no_arp || arp_ok == ok) ? 0 : 1;
}

/* --- hostile: one misbehaviour, then is the backend still there? --- */

static int cmd_hostile(void)
{
	const struct vuhostile_case *hc = vuhostile_find(opt_case);
	/* Two regions, so the memory-table cases can use a real second one. */
	struct vufront_config cfg = { .frame_max = 2048, .timeout_ms = 2000, .queue_size = 64,
				      .nregions = 2 };
	struct vufront *vf;
	enum vuhostile_result result;
	uint64_t ack, retries = 0;
	int ret;

	if (!hc || !opt_socket) {
		fprintf(stderr, "vu-frontend: hostile needs --socket and a known --case (see --help)\n");
		return 2;
	}
	ret = vufront_new(&cfg, &vf);
	if (!ret)
		ret = vufront_connect(vf, opt_socket);
	if (!ret)
		ret = vuhostile_prepare(vf, hc);
	if (ret) {
		fprintf(stderr, "vu-frontend: hostile %s: setup: %s\n", hc->name, strerror(-ret));
		return 1;
	}
	ret = hc->run(vf);
	if (ret && ret != -EPIPE && ret != -ECONNRESET && ret != -ETIMEDOUT && ret != -EPROTO &&
	    ret != -EREMOTEIO)
		fprintf(stderr, "vu-frontend: hostile %s: %s\n", hc->name, strerror(-ret));
	result = vuhostile_judge(vf, hc, VUHOSTILE_SETTLE_MS, &ack);
	printf("HOSTILE case=%s result=%s", hc->name, vuhostile_result_str(result));
	if (ack != UINT64_MAX)
		printf(" ack=%" G_GUINT64_FORMAT, ack);
	printf("\n");
	fflush(stdout);
	vufront_free(vf);
	if (opt_recheck) {
		bool arp;

		ret = one_life(&arp, &retries);
		printf("RECHECK new_connection=%s arp=%s\n", ret ? "failed" : "ok",
		       opt_no_arp ? "skipped" : arp ? "ok" : "missed");
		return ret || (!opt_no_arp && !arp);
	}
	return 0;
}

/* The list of hostile cases for --help (caller frees). */
static char *help_text(void)
{
	GString *s = g_string_new("Hostile cases (hostile --case NAME):\n");
	size_t n;
	const struct vuhostile_case *c = vuhostile_cases(&n);

	for (size_t i = 0; i < n; i++)
		g_string_append_printf(s, "  %-28s %s%s\n", c[i].name, c[i].what,
				       c[i].phase == VUHOSTILE_STARTED ? " (rings running)" : "");
	return g_string_free(s, FALSE);
}
int main(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("tap|tap2tap|cycle|hostile|device");
	g_autoptr(GError) err = NULL;
	g_autofree char *help = help_text();

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(ctx, help);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc != 2) {
		fprintf(stderr, "vu-frontend: %s\n", err ? err->message : "expected one subcommand");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A hard stop well after --timeout, whatever a wait does. */
	alarm((unsigned int)opt_timeout + 30);
	if (!strcmp(argv[1], "tap"))
		return cmd_tap();
	if (!strcmp(argv[1], "tap2tap"))
		return cmd_tap2tap();
	if (!strcmp(argv[1], "cycle"))
		return cmd_cycle();
	if (!strcmp(argv[1], "hostile"))
		return cmd_hostile();
	if (!strcmp(argv[1], "device"))
		return cmd_device();
	fprintf(stderr, "vu-frontend: unknown subcommand '%s'\n", argv[1]);
	return 2;
}
