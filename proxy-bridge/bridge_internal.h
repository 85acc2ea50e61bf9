/* bridge_internal.h - the bridge's state, and the ops table each flow kind's module fills. */
#ifndef MESHSLIRP_PB_BRIDGE_INTERNAL_H
#define MESHSLIRP_PB_BRIDGE_INTERNAL_H

#include <glib.h>

#include "common/ratelimit.h"
#include "proxy-bridge/bridge.h"
#include "proxy-bridge/rewrite.h"
#include "proxy-bridge/unixleg.h"

/* Largest SYN libslirp sends (Ethernet + IP + TCP with options). */
#define BRIDGE_SYN_MAX 128

/*
 * A second libslirp socket on the tuple of a live inbound connection (two
 * loopback clients with one source port both look like the gateway to
 * libslirp; one client on two exposed ports of one guest port).  libslirp
 * cannot tell the two apart, and its lookup would hand the live
 * connection's segments to the newer socket, so the newcomer is refused and
 * removed from libslirp at once: see flow_inbound_dups_kill().
 */
struct bridge_dup {
	bool used;
	int fd;                        /* libslirp's socket for the refused client */
	struct flow_key skey;          /* the tuple it shares (libslirp's view) */
	uint32_t isn;                  /* its SYN's sequence number, once seen */
	bool isn_known;
	uint32_t live_guest_nxt;       /* the live connection's guest sequence, for the kill RST */
	uint64_t serial;               /* accept order: libslirp's ISNs grow with it */
	bool early;                    /* came before libslirp sent the live connection's SYN */
	uint32_t candidate;            /* while early: a SYN seen on the tuple, not yet placed */
	bool candidate_known;
	uint64_t attempts;
};
/* At most BRIDGE_DUP_MAX (bridge.h). */

/* Tuples whose lowest SYN is kept at once; past them, it waits for libslirp to send it again. */
#define BRIDGE_SYN_LOW_MAX 16

/*
 * The lowest SYN libslirp sent on a tuple whose early duplicates keep it
 * ambiguous (flow_inbound_first_syns()): once all the tuple's SYNs are
 * seen, the lowest is the live connection's, consumed meanwhile, and this
 * copy goes on in its place instead of waiting for libslirp to send it
 * again (up to 12 s).  One per such tuple, BRIDGE_SYN_LOW_MAX at once.
 */
struct bridge_syn_low {
	bool used;
	struct flow_key skey;          /* libslirp's view */
	uint32_t seq;
	size_t len;
	uint8_t frame[BRIDGE_SYN_MAX];
};

/*
 * A connection libslirp opened towards the guest that no flow holds (an
 * exposed port's client refused for a full table): its SYN is kept from
 * the guest and the connection reset in libslirp once outside its
 * callbacks, at the SYN's sequence number + 1 (bridge_stack_orphan_syn()).
 */
struct bridge_orphan {
	struct flow_key skey;          /* libslirp's view */
	uint32_t isn;                  /* its SYN's sequence number */
	uint8_t guest_mac[6], gw_mac[6];
};
#define BRIDGE_ORPHAN_MAX 16

/*
 * Later fragments of a datagram libslirp fragmented towards the guest carry
 * no ports: the first fragment's rewrite is remembered by IP id so that
 * every fragment gets the same addresses (bridge_stack_fragment()).
 */
struct bridge_frag {
	uint32_t saddr, daddr;         /* libslirp's view (network order) */
	uint32_t new_saddr, new_daddr; /* the guest's view */
	uint16_t id;
	uint8_t proto;
	bool used;
};
#define BRIDGE_FRAG_MAX 32

/*
 * Flows whose socket turned writable while libslirp's window to the guest
 * was closed, per poll pass; more wait for the guest's own probe.
 */
#define BRIDGE_WIN_PROBE_MAX 64

/* An inbound connection waiting for its PROXY header. */
struct bridge_hdr_wait {
	struct flow *flow;             /* NULL: free slot */
	int64_t header_deadline_us;
	bool polling;                  /* bytes present but incomplete: re-read on the tick */
	size_t peeked;                 /* ... and how many the last peek saw */
	uint8_t syn[BRIDGE_SYN_MAX];   /* libslirp's SYN to the guest, held back */
	size_t syn_len;
};

/* The inbound kind's tables (flow_inbound.c). */
struct bridge_inbound {
	struct bridge_hdr_wait *hdr_wait; /* connections waiting for their PROXY header: BRIDGE_HDR_WAIT_MAX slots */
	uint32_t *hdr_wait_free;
	size_t nhdr_wait_free;
	size_t nhdr_wait_untrusted;    /* slots held by peers not trusted to send a header */
	uint32_t *rst_queue;           /* flow slots whose libslirp socket must be reset */
	size_t rst_head, rst_len;      /* ring of BRIDGE_HDR_WAIT_MAX */
	guint timer;                   /* 20 ms tick while anything is waiting or queued */
	struct bridge_dup dups[BRIDGE_DUP_MAX];
	size_t ndups;
	uint64_t dup_serial;           /* the next duplicate's serial */
	struct bridge_syn_low syn_low[BRIDGE_SYN_LOW_MAX];
	size_t nheld;                  /* refused clients' sockets libslirp holds, tagged &held_tag */
	char held_tag;
};

struct bridge {
	struct bridge_config cfg;
	struct egress_rule egress;     /* built from cfg once; the pod set stays borrowed */
	struct netstack *ns;
	struct flowtab *flows;
	const struct flow_key *swallow; /* libslirp's answers on this tuple answer our own injection */
	uint32_t cut_slot;             /* flow whose TIME_WAIT socket to drop, UINT32_MAX: none */
	uint32_t ack_probe_slot;       /* flow whose libslirp ACK to draw (bridge_guest_reass_refused()) */
	struct flow *syn_in_input;     /* outbound flow whose SYN is inside slirp_input() */
	bool echo_in_input;            /* an echo request is inside slirp_input() */
	size_t icmp_open;              /* libslirp's ICMP sockets, tagged with &icmp_tag */
	bool dhcp_client_known;        /* the guest's DHCP client address is pinned: */
	uint8_t dhcp_client[6];        /* the first chaddr its requests named */
	char icmp_tag;
	/*
	 * By the guest's UDP port (network order, as libslirp's socket for it
	 * is keyed): where its last datagram went, libslirp's so_fport, which
	 * alone picks that socket's expiry on a reply (bridge_flow_seen()).
	 */
	uint16_t udp_last_dport[UINT16_MAX + 1];
	guint expire_timer;
	struct ratelimit log_rl;
	struct ratelimit debug_rl;     /* --log-level debug: per-flow lines */
	struct bridge_stats stats;
	struct bridge_frag frags[BRIDGE_FRAG_MAX];
	size_t frag_next;              /* next entry to overwrite */
	uint32_t win_probe[BRIDGE_WIN_PROBE_MAX]; /* flow slots whose window libslirp reopened */
	size_t nwin_probe;
	struct bridge_orphan orphans[BRIDGE_ORPHAN_MAX]; /* to reset in libslirp, oldest first */
	size_t norphans;

	/* The kinds' own: bridge_new() sets them up, only the kind's module uses them. */
	uint32_t steer_taddr;          /* flow_steer.c: where libslirp connects for steered flows */
	uint16_t steer_tport;
	struct unixleg_templates unix_tmpl; /* flow_steer.c: with --outbound-proxy unix:PATH */
	uint32_t dns_taddr;            /* flow_dns.c */
	uint16_t dns_tport;
	struct bridge_inbound in;      /* flow_inbound.c */
};

/*
 * What a flow kind does at each event of its flows.  bridge.c finds the
 * flow and calls its kind's entry; NULL entries are "nothing to do".  The
 * kind's module states its state machine, as a table, at its top.
 */
struct flow_ops {
	const char *name;              /* "steered": the per-flow debug log lines */
	bool rewrites;                 /* frames change views (false: direct) */
	/*
	 * A guest packet opening a flow of this kind (the policy chose it):
	 * record it and let libslirp see it (NETSTACK_PASS), or refuse it.
	 * Outbound kinds only.
	 */
	enum netstack_verdict (*open)(struct bridge *br, struct rw_view *v,
				      const struct flow_key *gkey);
	/* The guest sends a new SYN on @f's tuple: end @f (to FLOW_CLOSED) if it cannot take it. */
	void (*guest_syn)(struct bridge *br, struct flow *f);
	/* A TCP or UDP frame of @f from the guest, before libslirp sees it. */
	enum netstack_verdict (*guest_frame)(struct bridge *br, struct rw_view *v, struct flow *f);
	/* A TCP or UDP frame libslirp sends on @f, before the guest sees it. */
	enum netstack_verdict (*stack_frame)(struct bridge *br, struct rw_view *v, struct flow *f);
	/* libslirp opened @fd for @f inside slirp_input() of the flow's SYN (TCP only). */
	void (*fd_registered)(struct bridge *br, struct flow *f, int fd);
	/* slirp_input() of @f's SYN returned (TCP only): libslirp's callbacks are over. */
	void (*input_done)(struct bridge *br, struct flow *f);
	/* Events on @f's socket before libslirp handles them; returns the events libslirp sees. */
	int (*fd_events)(struct bridge *br, struct flow *f, int revents);
	/* libslirp closed @f's socket (the bridge then moves it to CLOSED and retires it). */
	void (*closed)(struct bridge *br, struct flow *f);
	/* @f's deadline passed: true keeps it (with a new state or deadline), false frees it. */
	bool (*expire)(struct bridge *br, struct flow *f);
	/* @f leaves the table now: release what the kind holds beyond the slot. */
	void (*forget)(struct bridge *br, struct flow *f);
	/* Where @f goes, for a log line about its upstream; NULL: the guest's own business, not logged. */
	const char *(*upstream)(const struct bridge *br, const struct flow *f, char *buf, size_t len);
};

extern const struct flow_ops flow_steer_ops;    /* flow_steer.c */
extern const struct flow_ops flow_dns_ops;      /* flow_dns.c */
extern const struct flow_ops flow_direct_ops;   /* flow_direct.c */
extern const struct flow_ops flow_inbound_ops;  /* flow_inbound.c */

/* The ops of @f's kind. */
const struct flow_ops *bridge_ops(const struct flow *f);

/* Which way a packet travels along a flow key (bridge_tuple()). */
enum bridge_dir {
	BRIDGE_OUTWARD,            /* from the guest-network end (laddr) to the remote one */
	BRIDGE_INWARD,             /* from the remote end towards the guest-network end */
};

/* The tuple of a packet along @k travelling @dir. */
static inline struct rw_tuple bridge_tuple(const struct flow_key *k, enum bridge_dir dir)
{
	struct rw_tuple t = { .proto = k->proto };

	if (dir == BRIDGE_OUTWARD) {
		t.saddr = k->laddr, t.sport = k->lport, t.daddr = k->raddr, t.dport = k->rport;
	} else {
		t.saddr = k->raddr, t.sport = k->rport, t.daddr = k->laddr, t.dport = k->lport;
	}
	return t;
}

/* @f is established: start its TCP idle timer (no deadline when --tcp-idle-timeout is 0). */
static inline void bridge_arm_idle(struct bridge *br, struct flow *f)
{
	f->established = true;
	flowtab_set_deadline(br->flows, f,
			     br->cfg.tcp_idle_us ? g_get_monotonic_time() + br->cfg.tcp_idle_us : 0);
}

/*
 * bridge.c: what every kind shares.
 */

/* After libslirp closed a flow's socket, late segments are translated this long. */
#define BRIDGE_CLOSED_GRACE_US (10 * G_USEC_PER_SEC)

/*
 * Remove @f from the table now (a new connection takes its tuple): untag a
 * socket libslirp may still hold, let the kind release what it holds.
 */
void bridge_forget_flow(struct bridge *br, struct flow *f);

/*
 * Hand libslirp a RST|ACK on @skey (libslirp's view) as if from the guest,
 * from @guest_mac to @gw_mac, with sequence number @seq and acknowledging
 * @ack (host order).  Only outside libslirp's callbacks.
 */
void bridge_inject_rst(struct bridge *br, const struct flow_key *skey, const uint8_t gw_mac[6],
		       const uint8_t guest_mac[6], uint32_t seq, uint32_t ack);

/*
 * As bridge_inject_rst(), for a reset whose answer is ours, not the
 * guest's: whatever libslirp sends on @skey meanwhile (its reset for a
 * connection already gone, slirp quirk reset_answered; a SYN_SENT
 * socket's answer to a wrong ACK) is dropped.
 */
void bridge_inject_rst_swallowed(struct bridge *br, const struct flow_key *skey,
				 const uint8_t gw_mac[6], const uint8_t guest_mac[6], uint32_t seq,
				 uint32_t ack);

/*
 * Hand libslirp a RST|ACK on @f as if from the guest (libslirp's view,
 * f->skey), with sequence number @seq and acknowledging @ack (host order).
 * The one way the bridge makes libslirp drop a TCP socket of a flow
 * (bridge_tcp_no_flow() sends the same frame on a tuple without one); call
 * only outside libslirp's callbacks (it is not re-entrant).
 */
void bridge_inject_guest_rst(struct bridge *br, const struct flow *f, uint32_t seq, uint32_t ack);

/*
 * End TCP flow @f at both ends with resets, the guest's end too when
 * @reset_guest; @f is CLOSED after.  Only outside libslirp's callbacks.
 */
void bridge_abort_flow(struct bridge *br, struct flow *f, bool reset_guest);

/*
 * The expiry every kind shares, for the states it does not handle itself:
 * an OPEN TCP flow is reset at both ends (idle, or the guest never finished
 * its handshake) and kept CLOSED; a CLOSED or REJECTED flow whose socket
 * libslirp still holds is kept another grace period.  Returns whether @f
 * stays (flowtab_expire()'s contract).
 */
bool bridge_expire_flow(struct bridge *br, struct flow *f);

/*
 * A guest packet was to open a flow, and flowtab_add() said @err: count,
 * log, and refuse it (a reset for TCP).  Returns NETSTACK_CONSUMED.
 */
enum netstack_verdict bridge_refuse_add(struct bridge *br, struct rw_view *v,
					const struct flow_key *gkey, int err);

/* Make closing @fd send its peer a reset rather than a FIN (SO_LINGER 0). */
void bridge_reset_on_close(int fd);

/*
 * Reset @fd's peer now, while libslirp keeps the descriptor (it closes it
 * later): a client refused before libslirp can let go of its socket.
 */
void bridge_reset_peer_now(int fd);

/*
 * The events libslirp should see on a unix socket (@unix_sock): a peer's
 * close leaves POLLHUP up for good, which libslirp 4.7 would turn into a
 * busy loop (bridge.c has the story).  Other sockets' events pass unchanged.
 */
int bridge_unix_revents(bool unix_sock, int revents);

/* Format a.b.c.d:port from network-order values into @buf. */
const char *bridge_fmt(char *buf, size_t len, uint32_t addr, uint16_t port);

/* Log about a flow, rate limited: guests and clients choose how often. */
G_GNUC_PRINTF(3, 4)
void bridge_log_flow(struct bridge *br, const struct flow_key *key, const char *fmt, ...);

/* One rate-limited debug line about @f ("open", "closed"). */
void bridge_debug_flow(struct bridge *br, const struct flow *f, const char *event);

/*
 * A guest frame of @f: account for it (bridge_flow_seen()) and, for kinds
 * that rewrite, turn it to libslirp's view.  Returns NETSTACK_PASS: usable
 * as a kind's guest_frame as it is.
 */
enum netstack_verdict bridge_to_stack(struct bridge *br, struct rw_view *v, struct flow *f);

/*
 * A frame libslirp sends on @f: account for it and, for kinds that rewrite,
 * turn it to the guest's view (remembering a first fragment's rewrite for
 * those that follow).  Returns NETSTACK_PASS: usable as a kind's stack_frame.
 */
enum netstack_verdict bridge_to_guest(struct bridge *br, struct rw_view *v, struct flow *f);

/* Note @f's Ethernet addresses from a frame of it, once: our own resets need them. */
void bridge_learn_macs(struct flow *f, const struct rw_view *v, bool from_guest);

/*
 * flow_outbound.c: the TCP connect machine the three outbound kinds share
 * (its table is at the top of that file).
 */

/*
 * Record a new outbound flow of @kind towards @taddr:@tport for the guest
 * packet @v (the opening SYN or datagram) and rewrite it.  Returns the flow,
 * or NULL when the packet was refused (counted, logged, reset).
 */
struct flow *flow_outbound_open(struct bridge *br, struct rw_view *v, const struct flow_key *gkey,
				enum flow_kind kind, uint32_t taddr, uint16_t tport);
/* guest_syn of the outbound kinds: a SYN inside an established flow ends it. */
void flow_outbound_guest_syn(struct bridge *br, struct flow *f);
/* fd_registered of the outbound kinds: the socket is @f's, now CONNECTING. */
void flow_outbound_fd_registered(struct bridge *br, struct flow *f, int fd);
/*
 * Has @f's connect just completed with these @revents?  On failure it is
 * counted, logged and @f is CLOSED (libslirp resets the guest).  Returns
 * true only on success; the kind then calls flow_outbound_opened() or
 * flow_outbound_connect_failed().
 */
bool flow_outbound_connected(struct bridge *br, struct flow *f, int revents);
/* The upstream leg of @f is usable: CONNECTING -> OPEN. */
void flow_outbound_opened(struct bridge *br, struct flow *f);
/* @f's upstream failed with @err (positive errno): counted, logged, CLOSED. */
void flow_outbound_connect_failed(struct bridge *br, struct flow *f, int err);
/* fd_events of the outbound kinds that write nothing of their own (DNS, direct). */
int flow_outbound_fd_events(struct bridge *br, struct flow *f, int revents);
/* expire of the outbound kinds. */
bool flow_outbound_expire(struct bridge *br, struct flow *f);

/*
 * flow_inbound.c: what is inbound but no flow's (the tables, the socket
 * that makes a flow, refused duplicates).
 */
void flow_inbound_init(struct bridge *br);
void flow_inbound_fini(struct bridge *br);
/* A socket libslirp registered outside slirp_input: a flow if it is an accepted client. */
void flow_inbound_registered(struct bridge *br, int fd);
/* Remove refused duplicate sockets from libslirp; call only outside libslirp's callbacks. */
void flow_inbound_dups_kill(struct bridge *br);
/* Is @tag one of the duplicate entries? */
bool flow_inbound_is_dup_tag(const struct bridge *br, const void *tag);
/* Whether @tag marks a refused client's socket libslirp still holds. */
bool flow_inbound_is_held_tag(const struct bridge *br, const void *tag);
/* libslirp closed such a socket. */
void flow_inbound_held_closed(struct bridge *br);
/* libslirp closed a duplicate's socket. */
void flow_inbound_dup_closed(struct bridge *br, struct bridge_dup *dup);

#endif /* MESHSLIRP_PB_BRIDGE_INTERNAL_H */
