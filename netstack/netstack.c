/* netstack.c - one libslirp instance driven by the GLib main loop. */

#include "netstack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/epoll.h>

#include <glib.h>
#include <libslirp.h>

#include "common/clientslots.h"
#include "common/ratelimit.h"
#include "netstack/guestlink.h"
#include "netstack/slirp_quirks.h"

/* Most epoll events taken per dispatch; the rest stay pending (level-triggered). */
#define NETSTACK_EPOLL_BATCH 256

/* Per fd number: what epoll watches and what it reported this iteration. */
struct netstack_fd {
	uint32_t watched;    /* epoll events registered, 0 = not in the set */
	uint32_t wanted_gen; /* iteration in which libslirp last asked for it */
	int revents;         /* SLIRP_POLL_* reported in this dispatch */
	int active_idx;      /* position in netstack.active, -1 if absent */
	void *tag;           /* set by netstack_tag_fd(), cleared when libslirp closes it */
	int slirp_events;    /* SLIRP_POLL_* libslirp asked for in this iteration */
	int extra;           /* SLIRP_POLL_* the hook owner asked for (netstack_fd_extra_events) */
	int extra_idx;       /* position in netstack.extra_fds, -1 if absent */
	bool listener;       /* an exposed port's listening socket (netstack_expose_tcp) */
};

struct netstack_timer {
	struct netstack *ns;
	SlirpTimerId id;
	void *cb_opaque;
	GSource *source;     /* pending expiry, or NULL */
};

struct netstack_source {
	GSource base;
	struct netstack *ns;
};

struct netstack {
	Slirp *slirp;
	const struct netstack_ops *ops;
	void *opaque;
	const struct netstack_hooks *hooks;
	void *hooks_opaque;

	int epfd;
	GSource *source;
	gpointer epoll_tag;
	bool throttled;

	struct netstack_fd *fds;  /* indexed by fd number */
	size_t nfds;
	int *active;              /* fd numbers currently in the epoll set */
	size_t nactive;
	GArray *extra_fds;        /* int: fds with extra events, polled even if libslirp is not */
	uint32_t gen;

	struct epoll_event events[NETSTACK_EPOLL_BATCH];
	int nevents;
	int64_t deadline_us;      /* libslirp's next timer: the earliest since the last dispatch; 0 = none */

	bool accepts_held;        /* the owner's netstack_hold_accepts() */
	guint accept_rest;        /* timer ending a rest after accept() lacked descriptors, or 0 */
	uint64_t registrations;   /* sockets libslirp has registered, to see an accept() fail */

	unsigned int guest_mtu;   /* the guest link's MTU, <= mtu_max */
	unsigned int mtu_max;     /* netstack_config.mtu: what frag_buf was sized for */
	uint8_t *frag_buf;        /* one fragment: GUESTLINK_ETH_HLEN + mtu_max bytes */

	struct ratelimit guest_error_rl;
	int64_t accept_rest_said_us; /* when a rest was last logged */
	struct netstack_stats stats;
};

static uint32_t netstack_slirp_to_epoll(int ev)
{
	uint32_t out = 0;

	if (ev & SLIRP_POLL_IN)
		out |= EPOLLIN;
	if (ev & SLIRP_POLL_OUT)
		out |= EPOLLOUT;
	if (ev & SLIRP_POLL_PRI)
		out |= EPOLLPRI;
	/* EPOLLERR and EPOLLHUP are always reported. */
	return out;
}

static int netstack_epoll_to_slirp(uint32_t ev)
{
	int out = 0;

	if (ev & EPOLLIN)
		out |= SLIRP_POLL_IN;
	if (ev & EPOLLOUT)
		out |= SLIRP_POLL_OUT;
	if (ev & EPOLLPRI)
		out |= SLIRP_POLL_PRI;
	if (ev & EPOLLERR)
		out |= SLIRP_POLL_ERR;
	if (ev & EPOLLHUP)
		out |= SLIRP_POLL_HUP;
	return out;
}

/* Grow the fd table to hold @fd; the table only ever grows. */
static struct netstack_fd *netstack_fd_slot(struct netstack *ns, int fd)
{
	if ((size_t)fd >= ns->nfds) {
		size_t n = MAX(ns->nfds * 2, 64);

		while (n <= (size_t)fd)
			n *= 2;
		ns->fds = g_renew(struct netstack_fd, ns->fds, n);
		for (size_t i = ns->nfds; i < n; i++)
			ns->fds[i] = (struct netstack_fd){ .active_idx = -1, .extra_idx = -1 };
		ns->active = g_renew(int, ns->active, n);
		ns->nfds = n;
	}
	return &ns->fds[fd];
}

/* Remove @fd from the epoll set and the active list. */
static void netstack_fd_unwatch(struct netstack *ns, int fd, bool in_kernel)
{
	struct netstack_fd *slot = &ns->fds[fd];
	int last;

	if (slot->active_idx < 0)
		return;
	if (in_kernel) {
		epoll_ctl(ns->epfd, EPOLL_CTL_DEL, fd, NULL);
		ns->stats.epoll_ctl_calls++;
	}
	last = ns->active[--ns->nactive];
	ns->active[slot->active_idx] = last;
	ns->fds[last].active_idx = slot->active_idx;
	slot->active_idx = -1;
	slot->watched = 0;
}

/* Make epoll watch @fd for @events (SLIRP_POLL_*) in this iteration. */
static void netstack_watch(struct netstack *ns, int fd, int events)
{
	struct netstack_fd *slot = netstack_fd_slot(ns, fd);
	struct epoll_event ev = { .events = netstack_slirp_to_epoll(events),
				  .data.fd = fd };

	slot->wanted_gen = ns->gen;
	if (slot->active_idx >= 0 && slot->watched == ev.events)
		return;

	if (slot->active_idx < 0) {
		if (epoll_ctl(ns->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 &&
		    (errno != EEXIST ||
		     epoll_ctl(ns->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)) {
			g_warning("netstack: cannot poll fd %d: %s", fd,
				  g_strerror(errno));
			return;
		}
		slot->active_idx = ns->nactive;
		ns->active[ns->nactive++] = fd;
	} else if (epoll_ctl(ns->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
		/* Closed and reused behind our back: add it afresh. */
		if (errno != ENOENT ||
		    epoll_ctl(ns->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			g_warning("netstack: cannot poll fd %d: %s", fd,
				  g_strerror(errno));
			netstack_fd_unwatch(ns, fd, false);
			return;
		}
	}
	ns->stats.epoll_ctl_calls++;
	slot->watched = ev.events;
}

/*
 * libslirp's add_poll: watch @fd for @events plus any extra; the index is
 * the fd.  An exposed port's listener is not watched for clients while
 * accepts are held or resting: libslirp would accept() each at once.
 */
static int netstack_add_poll(int fd, int events, void *opaque)
{
	struct netstack *ns = opaque;
	struct netstack_fd *slot = netstack_fd_slot(ns, fd);

	if (slot->listener && (ns->accepts_held || ns->accept_rest))
		events &= ~SLIRP_POLL_IN;
	slot->slirp_events = events;
	netstack_watch(ns, fd, events | slot->extra);
	return fd;
}

static int netstack_get_revents(int idx, void *opaque)
{
	struct netstack *ns = opaque;

	if (idx < 0 || (size_t)idx >= ns->nfds)
		return 0;
	return ns->fds[idx].revents;
}

/* Collect libslirp's wanted events into the epoll set; drop what it no longer wants. */
static void netstack_fill(struct netstack *ns, uint32_t *timeout_ms)
{
	ns->gen++;
	slirp_pollfds_fill(ns->slirp, timeout_ms, netstack_add_poll, ns);

	/* Sockets the hook owner watches while libslirp does not (yet). */
	for (guint i = 0; i < ns->extra_fds->len; i++) {
		int fd = g_array_index(ns->extra_fds, int, i);
		struct netstack_fd *slot = &ns->fds[fd];

		if (slot->wanted_gen != ns->gen) {
			slot->slirp_events = 0;
			netstack_watch(ns, fd, slot->extra);
		}
	}

	for (size_t i = 0; i < ns->nactive;) {
		int fd = ns->active[i];

		if (ns->fds[fd].wanted_gen != ns->gen)
			netstack_fd_unwatch(ns, fd, true); /* moves another fd to i */
		else
			i++;
	}
}

/*
 * libslirp's timeout is a fixed interval (2 ms with a delayed ACK pending,
 * else up to its slow timer's), not the time left: taken afresh at every
 * prepare(), a loop that iterates faster than that (steady traffic
 * elsewhere, --busy-poll) would push the deadline on for ever and starve
 * libslirp's timers.  So the earliest deadline stands until a dispatch;
 * running them early costs nothing (libslirp checks the time itself).
 */
static gboolean netstack_source_prepare(GSource *source, gint *timeout)
{
	struct netstack *ns = ((struct netstack_source *)source)->ns;
	uint32_t timeout_ms = UINT32_MAX;
	int64_t now, deadline;

	netstack_fill(ns, &timeout_ms);
	now = g_get_monotonic_time();
	if (timeout_ms <= G_MAXINT) {
		deadline = now + (int64_t)timeout_ms * 1000;
		if (!ns->deadline_us || deadline < ns->deadline_us)
			ns->deadline_us = deadline;
	}
	if (!ns->deadline_us)
		*timeout = -1;
	else
		*timeout = ns->deadline_us > now ? (gint)((ns->deadline_us - now + 999) / 1000) : 0;
	return FALSE;
}

/*
 * Dispatch when a host socket is ready, or when libslirp's timeout has run
 * out: its TCP timers (delayed ACKs, retransmissions) run inside
 * slirp_pollfds_poll(), so an expired timeout must dispatch with no fd ready.
 */
static gboolean netstack_source_check(GSource *source)
{
	struct netstack *ns = ((struct netstack_source *)source)->ns;

	if (g_source_query_unix_fd(source, ns->epoll_tag) & G_IO_IN)
		return TRUE;
	return ns->deadline_us && g_get_monotonic_time() >= ns->deadline_us;
}

static gboolean netstack_accept_rest_over(gpointer data)
{
	struct netstack *ns = data;

	ns->accept_rest = 0;
	return G_SOURCE_REMOVE;
}

/*
 * A client waited on an exposed port and libslirp registered no socket:
 * its accept() failed, and the connection stays queued.  Out of
 * descriptors, the listener would stay readable and libslirp would try
 * again on every turn of the loop, a busy loop on the data thread (its
 * tcp_connect() only returns).  A socket of our own, which fails the same
 * way, tells that case (or kernel memory short) from a connection that
 * went before it was taken: the listeners then rest for CLIENT_BACKOFF_MS,
 * as our own listeners do.
 */
static void netstack_accept_failed(struct netstack *ns)
{
	int64_t now = g_get_monotonic_time();
	/* A socket, not a dup(): it needs a file as well as a number, so ENFILE shows too. */
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd >= 0) {
		close(fd);
		return;
	}
	if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
		return;
	ns->stats.accept_fd_failures++;
	if (ns->accept_rest)
		return;
	/* Said once a minute at most: the counter has every failure. */
	if (!ns->accept_rest_said_us || now - ns->accept_rest_said_us >= 60 * G_USEC_PER_SEC) {
		ns->accept_rest_said_us = now;
		g_warning("exposed ports: out of descriptors (%s): clients wait in the backlog, "
			  "libslirp's accept() rests %u ms at a time", g_strerror(errno),
			  CLIENT_BACKOFF_MS);
	}
	ns->accept_rest = g_timeout_add(CLIENT_BACKOFF_MS, netstack_accept_rest_over, ns);
}

static gboolean netstack_source_dispatch(GSource *source, GSourceFunc cb,
					 gpointer data)
{
	struct netstack *ns = ((struct netstack_source *)source)->ns;
	uint64_t registrations = ns->registrations;
	bool client_waits = false;
	int n = 0;

	(void)cb;
	(void)data;
	if (!ns->throttled &&
	    (g_source_query_unix_fd(source, ns->epoll_tag) & G_IO_IN)) {
		n = epoll_wait(ns->epfd, ns->events, NETSTACK_EPOLL_BATCH, 0);
		if (n < 0)
			n = 0;
	}
	for (int i = 0; i < n; i++) {
		struct netstack_fd *slot = &ns->fds[ns->events[i].data.fd];

		slot->revents = netstack_epoll_to_slirp(ns->events[i].events);
		if (slot->listener && (slot->revents & SLIRP_POLL_IN))
			client_waits = true;
		if (slot->tag && ns->hooks)
			slot->revents = ns->hooks->fd_events(ns->events[i].data.fd,
							     slot->revents, slot->tag,
							     ns->hooks_opaque);
		/* libslirp must not see events only the hook owner asked for. */
		if (slot->extra)
			slot->revents &= slot->slirp_events;
		/*
		 * Slirp quirk read_on_error: libslirp reads a socket that
		 * reports an error or hang-up even when it did not ask to read
		 * (its buffer towards the guest at least half full), and
		 * soread() asserts room: a full buffer aborts the daemon.
		 * Without read interest the event goes to its write path,
		 * which meets the error and closes the connection.
		 */
		if (!(slot->slirp_events & SLIRP_POLL_IN) &&
		    (slot->revents & (SLIRP_POLL_ERR | SLIRP_POLL_HUP | SLIRP_POLL_PRI))) {
			slot->revents &= ~(SLIRP_POLL_ERR | SLIRP_POLL_HUP | SLIRP_POLL_PRI);
			slot->revents |= slot->slirp_events & SLIRP_POLL_OUT;
		}
	}

	/* libslirp runs whichever of its timers are due in here; the next fill sets the next. */
	ns->deadline_us = 0;
	slirp_pollfds_poll(ns->slirp, 0, netstack_get_revents, ns);
	if (client_waits && ns->registrations == registrations)
		netstack_accept_failed(ns);

	/* libslirp may have closed fds; clear by the events we set, not by fd state. */
	for (int i = 0; i < n; i++)
		ns->fds[ns->events[i].data.fd].revents = 0;
	if (ns->hooks && ns->hooks->poll_done)
		ns->hooks->poll_done(ns->hooks_opaque);

	ns->ops->tx_flush(ns->opaque);
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs netstack_source_funcs = {
	.prepare = netstack_source_prepare,
	.check = netstack_source_check,
	.dispatch = netstack_source_dispatch,
};

/* One frame to the backend, counted. */
static void netstack_tx(struct netstack *ns, uint8_t *frame, size_t len)
{
	if (ns->ops->tx_frame(frame, len, ns->opaque) < 0)
		ns->stats.tx_dropped++;
	else
		ns->stats.tx_frames++;
}

/*
 * A TCP segment larger than the guest's link: the backend takes it whole if the
 * guest takes segmentation offload; if not (-EMSGSIZE), cut it here.
 */
static void netstack_tx_segment(struct netstack *ns, uint8_t *frame, size_t len)
{
	struct guestlink_seg it;
	size_t n;
	int ret = ns->ops->tx_frame(frame, len, ns->opaque);

	if (ret != -EMSGSIZE) {
		if (ret < 0)
			ns->stats.tx_dropped++;
		else
			ns->stats.tx_frames++;
		return;
	}
	if (guestlink_seg_start(&it, frame, len, ns->guest_mtu) <= 0) {
		ns->stats.tx_too_big++;
		return;
	}
	ns->stats.tx_segmented++;
	while ((n = guestlink_seg_next(&it, ns->frag_buf))) {
		ns->stats.tx_segments++;
		netstack_tx(ns, ns->frag_buf, n);
	}
}

/*
 * A frame for the guest, made to fit its link: the MTU in DHCP replies, a
 * datagram over the MTU cut into fragments, a TCP segment over it taken whole
 * by a guest with segmentation offload or cut into segments.
 */
static void netstack_tx_fitted(struct netstack *ns, uint8_t *frame, size_t len)
{
	struct guestlink_frag it;
	size_t n;
	int ret;

	if (len > GUESTLINK_ETH_HLEN + 20 && frame[GUESTLINK_ETH_HLEN + 9] == IPPROTO_UDP &&
	    !guestlink_dhcp_set_mtu(frame, len, (uint16_t)ns->guest_mtu))
		ns->stats.dhcp_mtu++;
	if (len <= GUESTLINK_ETH_HLEN + ns->guest_mtu) {
		netstack_tx(ns, frame, len);
		return;
	}
	if (len > GUESTLINK_ETH_HLEN + 20 && frame[GUESTLINK_ETH_HLEN + 9] == IPPROTO_TCP) {
		netstack_tx_segment(ns, frame, len);
		return;
	}
	ret = guestlink_frag_start(&it, frame, len, ns->guest_mtu);
	if (ret == 0) {
		netstack_tx(ns, frame, len);
		return;
	}
	if (ret < 0) {
		ns->stats.tx_too_big++;
		return;
	}
	ns->stats.tx_fragmented++;
	while ((n = guestlink_frag_next(&it, ns->frag_buf))) {
		ns->stats.tx_fragments++;
		netstack_tx(ns, ns->frag_buf, n);
	}
}

static ssize_t netstack_send_packet(const void *buf, size_t len,
					  void *opaque)
{
	struct netstack *ns = opaque;

	/*
	 * The buffer is a private copy libslirp forgets after this call (slirp
	 * quirk send_packet_private_copy): the hook may rewrite it in place,
	 * and so may we.
	 */
	if (ns->hooks && ns->hooks->stack_frame((uint8_t *)buf, len, ns->hooks_opaque) ==
			 NETSTACK_CONSUMED) {
		ns->stats.hook_held++;
		return (ssize_t)len;
	}
	netstack_tx_fitted(ns, (uint8_t *)buf, len);
	/*
	 * A drop is not an I/O error: libslirp logs a critical message for a
	 * negative return, while TCP recovers a dropped frame by itself.
	 */
	return (ssize_t)len;
}

static void netstack_guest_error(const char *msg, void *opaque)
{
	struct netstack *ns = opaque;
	uint64_t suppressed;

	ns->stats.guest_errors++;
	if (!ratelimit_allow(&ns->guest_error_rl, g_get_monotonic_time(),
			     &suppressed))
		return;
	if (suppressed)
		g_warning("guest error: %s (%" G_GUINT64_FORMAT
			  " similar messages suppressed)", msg, suppressed);
	else
		g_warning("guest error: %s", msg);
}

static int64_t netstack_clock_get_ns(void *opaque)
{
	(void)opaque;
	return g_get_monotonic_time() * 1000;
}

static gboolean netstack_timer_fire(gpointer data)
{
	struct netstack_timer *t = data;
	GSource *fired = t->source;

	/* slirp_handle_timer() may re-arm the timer, setting t->source anew. */
	t->source = NULL;
	slirp_handle_timer(t->ns->slirp, t->id, t->cb_opaque);
	g_source_unref(fired);
	t->ns->ops->tx_flush(t->ns->opaque);
	return G_SOURCE_REMOVE;
}

static void *netstack_timer_new_opaque(SlirpTimerId id, void *cb_opaque,
				       void *opaque)
{
	struct netstack_timer *t = g_new0(struct netstack_timer, 1);

	t->ns = opaque;
	t->id = id;
	t->cb_opaque = cb_opaque;
	return t;
}

static void netstack_timer_cancel(struct netstack_timer *t)
{
	if (t->source) {
		g_source_destroy(t->source);
		g_clear_pointer(&t->source, g_source_unref);
	}
}

static void netstack_timer_free(void *timer, void *opaque)
{
	(void)opaque;
	netstack_timer_cancel(timer);
	g_free(timer);
}

static void netstack_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct netstack_timer *t = timer;
	int64_t now_ms = netstack_clock_get_ns(opaque) / 1000000;
	int64_t delay = expire_ms - now_ms;

	netstack_timer_cancel(t);
	t->source = g_timeout_source_new((guint)CLAMP(delay, 0, G_MAXUINT));
	g_source_set_callback(t->source, netstack_timer_fire, t, NULL);
	g_source_attach(t->source, NULL);
}

/* Only timer_new_opaque is used (SlirpConfig version 4). */
static void *netstack_timer_new_unused(SlirpTimerCb cb, void *cb_opaque,
				       void *opaque)
{
	(void)cb;
	(void)cb_opaque;
	(void)opaque;
	g_assert_not_reached();
}

/*
 * A new socket may reuse the number of one libslirp closed while we still
 * had it registered: forget the old registration so add_poll adds it again.
 * For a guest SYN this runs inside slirp_input(), before connect() (slirp
 * quirk register_in_input): the hook tags the socket of the flow it opened.
 */
static void netstack_register_poll_fd(int fd, void *opaque)
{
	struct netstack *ns = opaque;

	if (fd < 0)
		return;
	netstack_fd_slot(ns, fd);
	ns->registrations++;
	netstack_fd_unwatch(ns, fd, true);
	netstack_fd_extra_events(ns, fd, 0);
	ns->fds[fd].tag = NULL;
	ns->fds[fd].listener = false;
	if (ns->hooks)
		ns->hooks->fd_registered(fd, ns->hooks_opaque);
}

static void netstack_unregister_poll_fd(int fd, void *opaque)
{
	struct netstack *ns = opaque;
	void *tag;

	if (fd < 0 || (size_t)fd >= ns->nfds)
		return;
	netstack_fd_unwatch(ns, fd, true);
	netstack_fd_extra_events(ns, fd, 0);
	/* slirp_remove_hostfwd() reports the listener it closes, if nothing else. */
	ns->fds[fd].listener = false;
	tag = ns->fds[fd].tag;
	ns->fds[fd].tag = NULL;
	if (tag && ns->hooks)
		ns->hooks->fd_closed(fd, tag, ns->hooks_opaque);
}

/*
 * libslirp calls notify from sbdrop() each time a socket buffer drains, to
 * kick an I/O thread that feeds guestfwd sockets.  There is no such thread
 * here: the loop re-fills libslirp's poll set after every dispatch anyway.
 * Waking the context instead cost an empty loop iteration per drained buffer
 * (eventfd write + read + poll) and pinned the daemon at 100% CPU.
 */
static void netstack_notify(void *opaque)
{
	(void)opaque;
}

static const SlirpCb netstack_slirp_cb = {
	.send_packet = netstack_send_packet,
	.guest_error = netstack_guest_error,
	.clock_get_ns = netstack_clock_get_ns,
	.timer_new = netstack_timer_new_unused,
	.timer_free = netstack_timer_free,
	.timer_mod = netstack_timer_mod,
	.register_poll_fd = netstack_register_poll_fd,
	.unregister_poll_fd = netstack_unregister_poll_fd,
	.notify = netstack_notify,
	.timer_new_opaque = netstack_timer_new_opaque,
};

int netstack_new(const struct netstack_config *cfg,
		 const struct netstack_ops *ops, void *opaque,
		 struct netstack **out)
{
	struct netstack *ns = g_new0(struct netstack, 1);
	SlirpConfig sc = {
		.version = 4,
		.in_enabled = true,
		.vnetwork = cfg->network,
		.vnetmask = cfg->netmask,
		.vhost = cfg->gateway,
		.vdhcp_start = cfg->guest,
		.vnameserver = cfg->dns,
		.if_mtu = NETSTACK_SLIRP_MTU,
		.if_mru = NETSTACK_SLIRP_MTU,
	};
	static gsize version_checked;
	int ret;

	/* Once per process: the quirks we rely on were checked against one release. */
	if (g_once_init_enter(&version_checked)) {
		slirp_quirks_check_version(slirp_version_string());
		g_once_init_leave(&version_checked, 1);
	}
	if (cfg->mtu < GUESTLINK_MTU_MIN || cfg->mtu > NETSTACK_SLIRP_MTU) {
		g_free(ns);
		return -EINVAL;
	}
	ns->guest_mtu = cfg->mtu;
	ns->mtu_max = cfg->mtu;
	ns->frag_buf = g_malloc(GUESTLINK_ETH_HLEN + cfg->mtu);
	ns->ops = ops;
	ns->opaque = opaque;
	ns->guest_error_rl = (struct ratelimit)RATELIMIT_INIT(10);
	ns->extra_fds = g_array_new(FALSE, FALSE, sizeof(int));
	ns->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ns->epfd < 0) {
		ret = -errno;
		goto err;
	}

	ns->slirp = slirp_new(&sc, &netstack_slirp_cb, ns);
	if (!ns->slirp) {
		ret = -EINVAL;
		goto err;
	}

	ns->source = g_source_new(&netstack_source_funcs,
				  sizeof(struct netstack_source));
	((struct netstack_source *)ns->source)->ns = ns;
	ns->epoll_tag = g_source_add_unix_fd(ns->source, ns->epfd, G_IO_IN);
	/*
	 * GLib "blocks" a non-recursive source around its dispatch by taking
	 * its fds out of the poll set and putting them back, and putting them
	 * back signals the context's wakeup eventfd: the next poll returns at
	 * once.  Dispatching on every iteration, that was a busy loop.  The
	 * netstack never re-enters itself, so there is nothing to block.
	 */
	g_source_set_can_recurse(ns->source, TRUE);
	g_source_attach(ns->source, NULL);

	*out = ns;
	return 0;

err:
	netstack_free(ns);
	return ret;
}

int netstack_set_guest_mtu(struct netstack *ns, unsigned int mtu)
{
	/* frag_buf holds a fragment of mtu_max bytes: never fit frames to more. */
	if (mtu < GUESTLINK_MTU_MIN || mtu > ns->mtu_max)
		return -EINVAL;
	ns->guest_mtu = mtu;
	return 0;
}

void netstack_free(struct netstack *ns)
{
	if (!ns)
		return;
	if (ns->source) {
		g_source_destroy(ns->source);
		g_source_unref(ns->source);
	}
	if (ns->accept_rest)
		g_source_remove(ns->accept_rest);
	if (ns->slirp)
		slirp_cleanup(ns->slirp);
	if (ns->epfd >= 0)
		close(ns->epfd);
	g_free(ns->fds);
	g_free(ns->active);
	g_free(ns->frag_buf);
	g_array_unref(ns->extra_fds);
	g_free(ns);
}

/*
 * No IPv4 fragment from the guest reaches libslirp in the daemon: the
 * bridge drops them first (bridge.c, BRIDGE_DROP_FRAGMENT), which also
 * keeps slirp quirk ip_reass_crash out of reach.
 */
void netstack_input(struct netstack *ns, uint8_t *frame, size_t len)
{
	ns->stats.rx_frames++;
	if (ns->hooks && ns->hooks->guest_frame(frame, len, ns->hooks_opaque) ==
			 NETSTACK_CONSUMED) {
		ns->stats.hook_consumed++;
		return;
	}
	slirp_input(ns->slirp, frame, (int)len);
	if (ns->hooks)
		ns->hooks->guest_frame_done(ns->hooks_opaque);
}

void netstack_set_hooks(struct netstack *ns, const struct netstack_hooks *hooks,
			void *opaque)
{
	ns->hooks = hooks;
	ns->hooks_opaque = opaque;
}

const struct netstack_hooks *netstack_get_hooks(const struct netstack *ns, void **opaque)
{
	*opaque = ns->hooks_opaque;
	return ns->hooks;
}

void netstack_tag_fd(struct netstack *ns, int fd, void *tag)
{
	netstack_fd_slot(ns, fd)->tag = tag;
}

void netstack_fd_extra_events(struct netstack *ns, int fd, int events)
{
	struct netstack_fd *slot;

	if (fd < 0 || ((size_t)fd >= ns->nfds && !events))
		return;
	slot = netstack_fd_slot(ns, fd);
	slot->extra = events;
	if (events && slot->extra_idx < 0) {
		slot->extra_idx = (int)ns->extra_fds->len;
		g_array_append_val(ns->extra_fds, fd);
	} else if (!events && slot->extra_idx >= 0) {
		int last = g_array_index(ns->extra_fds, int, ns->extra_fds->len - 1);

		g_array_index(ns->extra_fds, int, slot->extra_idx) = last;
		ns->fds[last].extra_idx = slot->extra_idx;
		g_array_set_size(ns->extra_fds, ns->extra_fds->len - 1);
		slot->extra_idx = -1;
	}
}

unsigned int netstack_guest_mtu(const struct netstack *ns)
{
	return ns->guest_mtu;
}

void netstack_inject_from_guest(struct netstack *ns, const uint8_t *frame, size_t len)
{
	slirp_input(ns->slirp, frame, (int)len);
}

int netstack_send_to_guest(struct netstack *ns, uint8_t *frame, size_t len)
{
	int ret = ns->ops->tx_frame(frame, len, ns->opaque);

	if (ret < 0)
		ns->stats.tx_dropped++;
	else
		ns->stats.tx_frames++;
	/*
	 * Callers may be outside any netstack dispatch (the bridge's timers),
	 * where no batch-end flush follows; these frames are rare, so flush now.
	 */
	ns->ops->tx_flush(ns->opaque);
	return ret;
}

void netstack_set_throttle(struct netstack *ns, bool throttled)
{
	if (ns->throttled == throttled)
		return;
	ns->throttled = throttled;
	g_source_modify_unix_fd(ns->source, ns->epoll_tag,
				throttled ? 0 : G_IO_IN);
}

/* Whether @fd is a TCP socket listening on @addr:@port. */
static bool netstack_is_listener(int fd, struct in_addr addr, uint16_t port)
{
	int on = 0, type = 0;
	socklen_t len = sizeof(on), tlen = sizeof(type);
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on &&
	       getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_STREAM &&
	       getsockname(fd, (struct sockaddr *)&sa, &salen) == 0 &&
	       sa.sin_family == AF_INET && ntohs(sa.sin_port) == port &&
	       sa.sin_addr.s_addr == addr.s_addr;
}

/*
 * libslirp never reports an exposed port's listening socket (slirp quirk
 * hostfwd_not_registered): find the one bound to @addr:@port.  @hint is
 * the descriptor socket() most likely returned (the lowest free one just
 * before the add), or -1; the scan of our descriptors, O(descriptors), is
 * the fallback, so that 1,024 adds do not cost a quadratic walk.  Returns
 * the descriptor, or -ENOENT.
 */
static int netstack_find_listener(struct in_addr addr, uint16_t port, int hint)
{
	g_autoptr(GDir) dir = NULL;
	const char *name;

	if (hint >= 0 && netstack_is_listener(hint, addr, port))
		return hint;
	dir = g_dir_open("/proc/self/fd", 0, NULL);
	if (!dir)
		return -ENOENT;
	while ((name = g_dir_read_name(dir))) {
		int fd = atoi(name);

		if (netstack_is_listener(fd, addr, port))
			return fd;
	}
	return -ENOENT;
}

/*
 * The descriptor the next socket() will return: the lowest free one (POSIX),
 * found by duplicating one we hold.  Another thread (GLib's, the stall
 * guard's) may take it before libslirp's socket() does: the caller checks
 * what it finds there, and scans on a miss.  Returns it, or -1.
 */
static int netstack_lowest_free_fd(const struct netstack *ns)
{
	int fd = fcntl(ns->epfd, F_DUPFD_CLOEXEC, 0);

	if (fd >= 0)
		close(fd);
	return fd;
}

int netstack_expose_tcp(struct netstack *ns, struct in_addr host_addr,
			uint16_t host_port, uint16_t guest_port)
{
	struct in_addr any_guest = { .s_addr = INADDR_ANY };
	int fd, hint = netstack_lowest_free_fd(ns);

	/*
	 * INADDR_ANY as the guest address means libslirp's first DHCP address
	 * (cfg->guest), the one a single guest always leases.  libslirp
	 * reports only -1, so errno is what bind()/listen() left.
	 */
	errno = 0;
	if (slirp_add_hostfwd(ns->slirp, 0, host_addr, host_port, any_guest,
			      guest_port) < 0)
		return errno ? -errno : -EINVAL;
	/*
	 * Marked, so that netstack_hold_accepts() and a rest out of
	 * descriptors can leave it unwatched.  libslirp listens with a
	 * backlog of 1 (slirp quirk hostfwd_backlog_1): under a burst the
	 * kernel would drop SYNs and clients back off for seconds; Linux
	 * applies a repeated listen() to a listening socket.
	 */
	fd = netstack_find_listener(host_addr, host_port, hint);
	if (fd >= 0) {
		netstack_fd_slot(ns, fd)->listener = true;
		if (listen(fd, SOMAXCONN) < 0)
			fd = -errno;
	}
	if (fd < 0)
		g_warning("port %u: cannot find libslirp's listener (%s): its listen backlog stays "
			  "1 (bursts of connections will be slow), and it cannot be held or rest",
			  host_port, g_strerror(-fd));
	return 0;
}

int netstack_unexpose_tcp(struct netstack *ns, struct in_addr host_addr, uint16_t host_port)
{
	return slirp_remove_hostfwd(ns->slirp, 0, host_addr, host_port) < 0 ? -ENOENT : 0;
}

void netstack_hold_accepts(struct netstack *ns, bool hold)
{
	if (hold && !ns->accepts_held)
		ns->stats.accept_holds++;
	ns->accepts_held = hold;
}

size_t netstack_polled_sockets(const struct netstack *ns)
{
	return ns->nactive;
}

const struct netstack_stats *netstack_stats(const struct netstack *ns)
{
	return &ns->stats;
}

char *netstack_connection_info(struct netstack *ns)
{
	return slirp_connection_info(ns->slirp);
}
