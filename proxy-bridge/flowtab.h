/* flowtab.h - bounded table of redirected flows, indexed by the guest's and by libslirp's view. */
#ifndef MESHSLIRP_PB_FLOWTAB_H
#define MESHSLIRP_PB_FLOWTAB_H

/*
 * Theory of operation
 *
 * A flow is one guest connection (or UDP conversation) whose destination
 * the proxy-bridge changed.  It has two keys:
 *   gkey: guest address:port <-> the original destination (the guest's view);
 *   skey: guest address:stack port <-> the target (libslirp's view), where
 *         the stack port is chosen fresh so that a guest reusing one source
 *         port towards two destinations gives two distinct libslirp sockets.
 *
 * State machine (TCP):
 *
 *   SYN ──fd registered──► CONNECTING ──connected (+ header written)──► OPEN
 *    │                         │ connect failed or timed out             │
 *    │ no fd within 5 s        ▼       guest never ACKs our SYN|ACK ────┤
 *    │                                  within --connect-timeout        │
 *    └──────► (freed)      CLOSED ◄──── libslirp closed its socket ──────┤
 *                              │  ◄──── idle timeout: both ends reset ───┘
 *                              │ grace period (late segments still translated)
 *                              ▼
 *                           (freed)
 *
 * A CLOSED flow whose socket libslirp has let go of is only kept for late
 * segments; the owner marks it so with flowtab_retire().  Retired flows
 * form a FIFO, and a full table gives the oldest one's slot to a new flow
 * rather than refusing it: the grace period must not cap the rate of short
 * connections at max / grace.  A retired flow's late segments then go to
 * libslirp untranslated, which answers them with a reset.
 *
 * UDP flows are OPEN from the first datagram and expire when idle.
 *
 * Direct flows (FLOW_DIRECT: the policy lets them go to their own
 * destination) are recorded too, with skey == gkey and no rewriting, so that
 * --max-flows and the timeouts bound everything a guest can open, not only
 * what is steered.
 *
 * Inbound (a client on an exposed port, sidecar in front):
 *
 *   HDR_WAIT ──PROXY header read (or none, or off)──► OPEN ──► CLOSED ──► (freed)
 *      │ bad, missing or late header
 *      ▼
 *   REJECTED ──libslirp dropped the socket──► CLOSED
 *
 * An inbound flow starts with gkey == skey (libslirp's view) and is rekeyed
 * to the client's address once the header names it.
 *
 * Expiry: a flow's deadline lives in a timer wheel keyed by slot
 * (common/timerwheel.h), so flowtab_expire() looks only at flows whose
 * deadline's tick has come, not at every slot: an idle table of a million
 * slots costs one bucket a tick.  Counts by state, by UDP and by kind for TCP
 * are kept as flows change, so reading them is O(1) too.
 *
 * Limits: all slots are allocated up front (flowtab_new's @max); the
 * indexes are GLib hash tables keyed by SipHash-2-4 under a key drawn from
 * RAND_bytes at creation, so a guest can neither predict the stack port nor
 * aim its flows at one hash bucket.  Nothing is allocated per packet.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One endpoint pair; addresses and ports in network order; padding zeroed.
 * "l" is the end on the guest's network, "r" the remote end.  A flow has two
 * keys that differ in what the ends are:
 *   gkey  the guest's view: laddr:lport is the guest's own socket, raddr:rport
 *         the destination the guest asked for (or, inbound, the client);
 *   skey  libslirp's view after the rewrite: laddr is the guest's address,
 *         lport the "stack port" (picked by flowtab_add() to be unique
 *         towards the target, or with FLOWTAB_KEEP_PORT the guest's own),
 *         raddr:rport the target libslirp connects to (the sidecar) or,
 *         inbound, the peer it accepted.
 */
struct flow_key {
	uint32_t laddr;            /* the guest-network end's address */
	uint32_t raddr;            /* remote: original destination, target or client */
	uint16_t lport;            /* the guest's port in gkey, the stack port in skey */
	uint16_t rport;
	uint8_t proto;
	uint8_t zero[3];
};

enum flow_state {
	FLOW_FREE,
	FLOW_SYN,
	FLOW_CONNECTING,
	FLOW_OPEN,
	FLOW_CLOSED,
	FLOW_HDR_WAIT,             /* inbound: waiting for the PROXY header */
	FLOW_REJECTED,             /* inbound: refused; libslirp is being told to drop it */
	FLOW_STATE_COUNT,
};

enum flow_kind {
	FLOW_STEER,                /* to the sidecar with a PROXY header */
	FLOW_DNS,                  /* to --dns-upstream, no header */
	FLOW_INBOUND,              /* a client on an exposed port */
	FLOW_DIRECT,               /* to its own destination: counted and timed, not rewritten */
	FLOW_KIND_COUNT,
};

struct flow {
	struct flow_key gkey;
	struct flow_key skey;
	enum flow_state state;
	enum flow_kind kind;       /* read-only: set with flowtab_set_kind() */
	int fd;                    /* libslirp's host socket, -1 if none */
	int hdr_wait_slot;         /* inbound: slot in the bridge's header-wait table, -1 if none */
	uint32_t stack_isn;        /* inbound: libslirp's ISN towards the guest (host order) */
	bool stack_isn_known;
	bool established;          /* TCP: both handshakes done (outbound: the guest ACKed) */
	uint8_t guest_mac[6];      /* inbound: from libslirp's SYN, for frames we inject */
	uint8_t gw_mac[6];
	int64_t deadline_us;       /* 0: none; else when flowtab_expire() acts (see bridge.c);
				      read-only: set with flowtab_set_deadline() */
	uint32_t guest_nxt;        /* TCP: the guest's next sequence number (host order) */
	uint32_t stack_nxt;        /* TCP: libslirp's next sequence number towards the guest */
	uint32_t slot;
	bool retired;              /* owned by flowtab: in the retired FIFO (flowtab_retire) */
	bool guest_indexed;        /* owned by flowtab: gkey is in the guest index */
	bool macs_known;           /* guest_mac and gw_mac were learnt from a frame of the flow */
	bool peer_trusted;         /* inbound: the peer may send a PROXY header */
	bool unix_leg;             /* fd is a unix socket to the sidecar (unixleg.h): see bridge_unix_revents() */
	/* TCP close, as seen in both directions (bridge.c: bridge_track_close()). */
	bool guest_fin, stack_fin;       /* each side sent its FIN */
	bool guest_fin_acked, stack_fin_acked; /* ... and the other side acknowledged it */
	uint32_t guest_fin_end, stack_fin_end; /* sequence numbers just past each FIN */
	bool time_wait_cut;        /* libslirp's TIME_WAIT socket for it was dropped */
};

struct flowtab;

/* flow_key_make() - build a key with its padding zeroed. */
struct flow_key flow_key_make(uint8_t proto, uint32_t laddr, uint16_t lport,
			      uint32_t raddr, uint16_t rport);

/**
 * flowtab_new() - allocate a table of @max flows (1..1048576)
 *
 * Return: 0, -EINVAL for a bad @max, -EIO if no randomness was available.
 */
int flowtab_new(size_t max, struct flowtab **out);

/* flowtab_free() - free the table and every flow in it; NULL is a no-op. */
void flowtab_free(struct flowtab *ft);

/* flowtab_get() - the flow in slot @slot, or NULL if that slot is free. */
struct flow *flowtab_get(struct flowtab *ft, uint32_t slot);

/* Lookups return NULL when absent; the flow belongs to the table. */
struct flow *flowtab_lookup_guest(struct flowtab *ft, const struct flow_key *gkey);
struct flow *flowtab_lookup_stack(struct flowtab *ft, const struct flow_key *skey);

/* flowtab_add() flags. */
#define FLOWTAB_KEEP_PORT 0x1u     /* the guest's port is the stack port (UDP, direct, inbound) */
#define FLOWTAB_STACK_ONLY 0x2u    /* index the stack view only: a flow being refused whose
				      guest view belongs to another flow */

/**
 * flowtab_add() - insert a flow in state @state
 * @gkey:	guest view
 * @taddr, @tport:	target libslirp should connect to (network order)
 * @flags:	FLOWTAB_KEEP_PORT: use the guest's port as the stack port
 *		instead of a fresh random one; FLOWTAB_STACK_ONLY: do not
 *		index @gkey (lookups by guest view will not find the flow)
 * @out:	the new flow
 *
 * A full table first frees the oldest retired flow, if any, and takes its
 * slot (counted by flowtab_reclaimed()); any pointer to that flow becomes
 * invalid, so callers hold none across this call.
 *
 * Return: 0, -EEXIST when another flow has @gkey (without FLOWTAB_STACK_ONLY),
 * -ENOSPC when the table is full and nothing is retired, -EADDRINUSE when no
 * free stack port could be found (or the guest's port is taken with
 * FLOWTAB_KEEP_PORT).  Packets choose every key: none of these is a bug.
 */
int flowtab_add(struct flowtab *ft, const struct flow_key *gkey, uint32_t taddr,
		uint16_t tport, unsigned int flags, enum flow_state state, struct flow **out);

/**
 * flowtab_rekey_guest() - give @flow a new guest-view key (inbound: the client)
 *
 * Return: 0, or -EEXIST if another flow has that key (the flow is unchanged).
 */
int flowtab_rekey_guest(struct flowtab *ft, struct flow *flow, const struct flow_key *gkey);

/* flowtab_remove() - free @flow; its pointer becomes invalid. */
void flowtab_remove(struct flowtab *ft, struct flow *flow);

/* flowtab_set_state() - move @flow to @state, keeping per-state counts. */
void flowtab_set_state(struct flowtab *ft, struct flow *flow, enum flow_state state);

/**
 * flowtab_retire() - @flow (CLOSED, no socket left) is kept only for late
 * packets: flowtab_add() may reclaim its slot, oldest retired first.  It
 * stays in the table, with its deadline, until then.  Idempotent.
 */
void flowtab_retire(struct flowtab *ft, struct flow *flow);

/* flowtab_reclaimed() - retired flows whose slot flowtab_add() took before their deadline. */
uint64_t flowtab_reclaimed(const struct flowtab *ft);

/* flowtab_count() - flows in @state (FLOW_FREE: free slots). */
size_t flowtab_count(const struct flowtab *ft, enum flow_state state);

/* flowtab_set_kind() - @flow is of @kind (flowtab_add() makes FLOW_STEER), keeping per-kind counts. */
void flowtab_set_kind(struct flowtab *ft, struct flow *flow, enum flow_kind kind);

/**
 * flowtab_set_deadline() - flowtab_expire() acts on @flow at @when_us (monotonic); 0: never
 *
 * O(1), no allocation; moving a deadline later, as every packet of an open
 * flow does, only stores it.  Safe inside flowtab_expire()'s callback.
 */
void flowtab_set_deadline(struct flowtab *ft, struct flow *flow, int64_t when_us);

/* flowtab_count_tcp() - TCP flows of @kind in @state, kept as they change (no scan). */
size_t flowtab_count_tcp(const struct flowtab *ft, enum flow_kind kind, enum flow_state state);

/* flowtab_count_udp() - UDP flows in use, any state. */
size_t flowtab_count_udp(const struct flowtab *ft);

/* flowtab_foreach() - call @fn for every flow in use (the table must not change meanwhile). */
void flowtab_foreach(struct flowtab *ft, void (*fn)(const struct flow *flow, void *opaque),
		     void *opaque);

/* flowtab_size() - flows in use. */
size_t flowtab_size(const struct flowtab *ft);

/**
 * flowtab_expire() - act on every flow whose deadline passed
 * @now_us:	monotonic time
 * @cb:		called with each such flow; it returns true to keep the flow
 *		(having moved it to a new state and deadline), false to have it
 *		removed.  NULL: remove them all.
 *
 * A flow has a deadline when its deadline_us is non-zero; the owner sets one
 * with flowtab_set_deadline() in every state that needs one.  The callback
 * sees the flow with its deadline still set; a kept flow whose deadline it
 * did not change is due again at once (within this call or the next).
 * Work: the flows whose deadline's one-second tick has come, plus, after a
 * stall, a bounded number of wheel buckets; not the table's size.
 *
 * Return: number of flows removed.
 */
size_t flowtab_expire(struct flowtab *ft, int64_t now_us,
		      bool (*cb)(struct flow *flow, void *opaque), void *opaque);

/* flowtab_expire_visits() - flows flowtab_expire() has looked at so far (tests, profiling). */
uint64_t flowtab_expire_visits(const struct flowtab *ft);

#endif /* MESHSLIRP_PB_FLOWTAB_H */
