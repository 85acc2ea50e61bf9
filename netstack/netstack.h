/* netstack.h - one libslirp instance driven by the GLib main loop. */
#ifndef MESHSLIRP_NETSTACK_H
#define MESHSLIRP_NETSTACK_H

/*
 * Theory of operation
 *
 * The netstack owns one Slirp instance (IPv4 only) and every host socket
 * libslirp opens.  Frames from the guest enter with netstack_input(); frames
 * for the guest leave through ops->tx_frame(), and ops->tx_flush() is called
 * once at the end of each batch so the backend can write many frames with one
 * system call.
 *
 * Polling: libslirp re-computes the events it wants on every loop iteration
 * (slirp_pollfds_fill).  Instead of adding hundreds of fds to GLib's poll
 * set each time, the netstack keeps them in one epoll instance and only
 * issues epoll_ctl() for the fds whose wanted events changed since the last
 * iteration; GLib polls the single epoll fd.  add_poll returns the fd itself
 * as libslirp's index, so get_revents is an array lookup.  An fd that
 * libslirp stops asking about is removed from the epoll set in the same
 * iteration.  register_poll_fd/unregister_poll_fd mark an fd number as new so
 * that a closed-and-reused number is re-added; libslirp does not call them
 * for hostfwd listening sockets, which is safe because those are created and
 * closed only from netstack_expose_tcp()/netstack_unexpose_tcp() (see
 * netstack.c).
 *
 * Backpressure: when the backend cannot take more frames it calls
 * netstack_set_throttle(true); the netstack then stops polling host sockets
 * (libslirp reads nothing from the host and so produces no new guest
 * frames) until throttling ends.  libslirp's timers keep running.  A frame
 * the backend refuses anyway is dropped and counted by the backend; guest
 * TCP recovers it.
 *
 * Hooks (struct netstack_hooks, optional): the proxy-bridge sees every guest
 * frame before libslirp (and may rewrite it in place or consume it), every
 * frame libslirp sends to the guest (rewritten in place at no copy: slirp
 * quirk send_packet_private_copy), each host socket libslirp registers, and
 * the poll events of the sockets it tagged, before libslirp does.  That is
 * enough to steer flows with an unmodified libslirp; the libslirp behaviours
 * it takes are listed, and tested, in slirp_quirks.h.
 *
 * The guest's link: libslirp always runs at NETSTACK_SLIRP_MTU, whatever
 * the guest's MTU (netstack_config.mtu, lowered at runtime by
 * netstack_set_guest_mtu() when the front-end sets it).  TCP follows the MSS the guest
 * advertises, so its segments fit; with segmentation offload towards the
 * guest, the bridge lets libslirp send larger ones and the backend marks
 * them for the guest to take whole.  For the rest, the netstack fits each
 * frame to the guest (guestlink.h): libslirp's DHCP replies get the guest's
 * MTU as option 26, and a UDP datagram or ICMP message larger than that MTU
 * is cut into IPv4 fragments (Don't Fragment set: dropped, counted).
 *
 * Exposed ports: libslirp accepts a client on an exposed port as soon as
 * its listener is readable.  The owner may hold that
 * (netstack_hold_accepts()), and the netstack rests the listeners for
 * CLIENT_BACKOFF_MS on its own when an accept() fails for lack of
 * descriptors: libslirp would otherwise retry it on every turn of the loop.
 *
 * Limits: the fd table grows to the highest fd libslirp uses, bounded by
 * RLIMIT_NOFILE.  Guest error messages from libslirp are logged at most 10
 * per second.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

struct netstack;

struct netstack_config {
	struct in_addr network;     /* guest network address */
	struct in_addr netmask;
	struct in_addr gateway;     /* libslirp's virtual host */
	struct in_addr dns;         /* libslirp's virtual DNS server */
	struct in_addr guest;       /* first DHCP address */
	unsigned int mtu;           /* the guest link's MTU, 576..65520 */
};

/* libslirp's own MTU and MRU: its MSS and its largest datagram (see above). */
#define NETSTACK_SLIRP_MTU 65520

struct netstack_ops {
	/*
	 * Send one frame to the guest.  The frame is only valid during the
	 * call, and the callee may rewrite it in place (offload metadata).
	 * Return 0, -EMSGSIZE for a TCP segment over the guest's MTU that it
	 * cannot take whole (unchanged: the netstack then cuts it), or another
	 * -errno if it was dropped (the backend counts it).
	 */
	int (*tx_frame)(uint8_t *frame, size_t len, void *opaque);
	/* End of a batch of tx_frame() calls. */
	void (*tx_flush)(void *opaque);
};

enum netstack_verdict {
	NETSTACK_PASS,             /* hand the (possibly rewritten) frame to libslirp */
	NETSTACK_CONSUMED,         /* the hook dealt with it; libslirp never sees it */
};

struct netstack_hooks {
	/* Optional: libslirp's poll pass is over; libslirp may be handed frames again. */
	void (*poll_done)(void *opaque);
	/* A guest frame about to enter libslirp; may be rewritten in place (same length). */
	enum netstack_verdict (*guest_frame)(uint8_t *frame, size_t len, void *opaque);
	/* slirp_input() for the frame just passed has returned. */
	void (*guest_frame_done)(void *opaque);
	/*
	 * A frame libslirp sends to the guest; may be rewritten in place (same
	 * length), or consumed: held back or dropped (TCP retransmits it).
	 */
	enum netstack_verdict (*stack_frame)(uint8_t *frame, size_t len, void *opaque);
	/* libslirp created host socket @fd (called inside slirp_input or the poll). */
	void (*fd_registered)(int fd, void *opaque);
	/* libslirp is closing @fd, which carried @tag. */
	void (*fd_closed)(int fd, void *tag, void *opaque);
	/* Events for tagged @fd before libslirp sees them; returns what libslirp gets. */
	int (*fd_events)(int fd, int revents, void *tag, void *opaque);
};

struct netstack_stats {
	uint64_t rx_frames;       /* frames from the guest */
	uint64_t tx_frames;       /* frames to the guest, accepted by the backend */
	uint64_t tx_dropped;      /* frames to the guest the backend refused */
	uint64_t guest_errors;    /* libslirp guest_error() reports */
	uint64_t epoll_ctl_calls; /* poll set changes, for profiling */
	uint64_t hook_consumed;   /* guest frames a hook consumed */
	uint64_t hook_held;       /* frames to the guest a hook held back or dropped */
	uint64_t tx_fragmented;   /* datagrams to the guest cut to its MTU */
	uint64_t tx_fragments;    /* the fragments they became */
	uint64_t tx_too_big;      /* over the guest's MTU and not to be cut (Don't Fragment): dropped */
	uint64_t tx_segmented;    /* TCP segments to the guest cut to its MTU (no offload) */
	uint64_t tx_segments;     /* the segments they became */
	uint64_t dhcp_mtu;        /* DHCP replies given the guest's MTU (option 26) */
	uint64_t accept_holds;    /* times the owner held accepts on exposed ports */
	uint64_t accept_fd_failures; /* accept() on those ports without a descriptor: each rests them */
};

/**
 * netstack_new() - create the libslirp instance and attach it to the default
 * GLib main context
 * @cfg:	addresses and MTU (copied)
 * @ops:	frame sink towards the guest (not copied; must outlive the netstack)
 * @opaque:	passed to @ops
 * @out:	set to the new netstack, owned by the caller (netstack_free())
 *
 * Return: 0 or -errno (-EINVAL if libslirp rejects the configuration).
 */
int netstack_new(const struct netstack_config *cfg,
		 const struct netstack_ops *ops, void *opaque,
		 struct netstack **out);

/**
 * netstack_set_guest_mtu() - the guest's link MTU changed (vhost-user NET_SET_MTU)
 * @ns:		netstack
 * @mtu:	the new MTU, from GUESTLINK_MTU_MIN (576) up to netstack_config.mtu
 *
 * Frames for the guest are fitted to @mtu from now on: DHCP replies carry
 * it, datagrams over it are cut into fragments.  The fragment buffer is
 * sized for netstack_config.mtu at creation, which is why @mtu may not
 * exceed it (the backend refuses a larger NET_SET_MTU anyway).
 *
 * Return: 0, or -EINVAL for an @mtu out of range (nothing changes).
 */
int netstack_set_guest_mtu(struct netstack *ns, unsigned int mtu);

/* netstack_free() - close every host socket and free the instance; NULL is a no-op. */
void netstack_free(struct netstack *ns);

/**
 * netstack_input() - hand one frame from the guest to libslirp
 *
 * The frame is copied by libslirp; the caller keeps ownership.  Frames the
 * guest sends in response are queued through ops->tx_frame() during the
 * call; the caller flushes its backend after a batch.
 */
void netstack_input(struct netstack *ns, uint8_t *frame, size_t len);

/**
 * netstack_set_hooks() - install the proxy-bridge's hooks
 * @hooks:	not copied; must outlive the netstack (NULL to remove)
 * @opaque:	passed to every hook
 */
void netstack_set_hooks(struct netstack *ns, const struct netstack_hooks *hooks,
			void *opaque);

/**
 * netstack_get_hooks() - the hooks installed by netstack_set_hooks()
 * @opaque:	set to the pointer passed to them
 *
 * For tests and fuzz targets only: tests/fuzz/fuzz_bridge.c wraps the
 * bridge's hooks with checks and feeds frames to its stack_frame hook as
 * if libslirp had sent them.  The daemon never needs it.
 *
 * Return: the hooks, or NULL if none are installed.
 */
const struct netstack_hooks *netstack_get_hooks(const struct netstack *ns, void **opaque);

/**
 * netstack_tag_fd() - attach @tag to libslirp's host socket @fd
 *
 * From now on hooks->fd_events sees its poll events first, and
 * hooks->fd_closed reports its end.  The tag is not owned by the netstack.
 */
void netstack_tag_fd(struct netstack *ns, int fd, void *tag);

/**
 * netstack_fd_extra_events() - poll libslirp's socket @fd for @events too
 *
 * For a tagged socket libslirp does not poll yet (an accepted connection
 * before the guest answered).  The events reach hooks->fd_events only;
 * libslirp never sees what it did not ask for.  0 stops it; libslirp
 * closing the socket stops it too.
 */
void netstack_fd_extra_events(struct netstack *ns, int fd, int events);

/**
 * netstack_inject_from_guest() - hand libslirp a frame as if the guest sent it
 *
 * Bypasses hooks->guest_frame.  Must not be called from inside a libslirp
 * callback (libslirp is not re-entrant).
 */
void netstack_inject_from_guest(struct netstack *ns, const uint8_t *frame, size_t len);

/**
 * netstack_send_to_guest() - send a frame built outside libslirp (a reset)
 *
 * Goes to the backend as is, without hooks->stack_frame, and is flushed at
 * once (callers may be outside any dispatch that would flush a batch).
 *
 * Return: 0 or -errno from the backend (the frame is dropped and counted).
 */
int netstack_send_to_guest(struct netstack *ns, uint8_t *frame, size_t len);

/* netstack_guest_mtu() - the guest link's MTU. */
unsigned int netstack_guest_mtu(const struct netstack *ns);

/* netstack_set_throttle() - pause (true) or resume polling host sockets. */
void netstack_set_throttle(struct netstack *ns, bool throttled);

/**
 * netstack_expose_tcp() - forward a host TCP port to the guest
 * @ns:		netstack
 * @host_addr:	address to listen on (INADDR_ANY for all)
 * @host_port:	port to listen on
 * @guest_port:	port in the guest (the guest is the DHCP address)
 *
 * A non-loopback client keeps its own address and port as the source the
 * guest sees; a loopback client shows as the gateway.
 *
 * Return: 0 or -errno from bind()/listen() (e.g. -EADDRINUSE).
 */
int netstack_expose_tcp(struct netstack *ns, struct in_addr host_addr,
			uint16_t host_port, uint16_t guest_port);

/**
 * netstack_hold_accepts() - stop (true) or resume libslirp taking clients on exposed ports
 * @ns:		netstack
 * @hold:	true to hold
 *
 * While held, the exposed ports' listening sockets are not polled for
 * clients: new connections wait in the kernel's backlog (SOMAXCONN), and
 * past it their SYNs go unanswered and clients retry, as at any server at
 * its connection limit.  Connections already accepted are not touched.
 */
void netstack_hold_accepts(struct netstack *ns, bool hold);

/* netstack_polled_sockets() - host sockets libslirp has in the poll set now. */
size_t netstack_polled_sockets(const struct netstack *ns);

/* netstack_unexpose_tcp() - stop forwarding @host_port; 0 or -ENOENT. */
int netstack_unexpose_tcp(struct netstack *ns, struct in_addr host_addr, uint16_t host_port);

/* netstack_stats() - counters (read-only view, valid until netstack_free()). */
const struct netstack_stats *netstack_stats(const struct netstack *ns);

/* netstack_connection_info() - libslirp's human-readable socket table; g_free() it. */
char *netstack_connection_info(struct netstack *ns);

#endif /* MESHSLIRP_NETSTACK_H */
