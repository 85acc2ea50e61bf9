/* flow.h - one flow: its two keys, its state, the fields every kind shares, and each kind's own. */
#ifndef MESHSLIRP_PB_FLOW_H
#define MESHSLIRP_PB_FLOW_H

/*
 * A flow is one guest connection or UDP conversation that the proxy-bridge
 * tracks.  Three owners share a struct flow, each its own fields:
 *   - the table (flowtab.c): the keys, state, slot, deadline and the table's
 *     own links; it never looks at the kind or the kind's union, and of the
 *     bridge's fields only sets fd to -1 in a new flow and retires only
 *     flows without one;
 *   - the bridge (bridge.c): the kind, the socket, the sequence numbers and
 *     the close tracking that every TCP kind needs;
 *   - the kind's module (flow_steer.c, flow_direct.c, flow_dns.c,
 *     flow_inbound.c): its member of the union @u, valid only while @kind
 *     says so.  The table zeroes the whole flow when it hands out a slot.
 *
 * The states are shared; which ones a kind uses, and how it moves between
 * them, is the table at the top of its module.
 */

#include <stdbool.h>
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
	FLOW_FREE,                 /* the slot is unused (the table's) */
	FLOW_SYN,                  /* outbound: the guest's SYN is in libslirp, no socket yet */
	FLOW_CONNECTING,           /* outbound: libslirp's socket connects to the target */
	FLOW_OPEN,
	FLOW_CLOSED,               /* libslirp closed (or is closing) the socket; late segments */
	FLOW_HDR_WAIT,             /* inbound: waiting for the PROXY header */
	FLOW_REJECTED,             /* inbound: refused; libslirp is being told to drop it */
	FLOW_STATE_COUNT,
};

/* What the flow is; each has its module and ops table (bridge_internal.h). */
enum flow_kind {
	FLOW_STEER,                /* flow_steer.c: to the sidecar with a PROXY header */
	FLOW_DNS,                  /* flow_dns.c: to --dns-upstream, no header */
	FLOW_INBOUND,              /* flow_inbound.c: a client on an exposed port */
	FLOW_DIRECT,               /* flow_direct.c: to its own destination, counted and timed */
	FLOW_KIND_COUNT,
};

/*
 * The flow table counts flows by class: a flow's kind, or, for an exposed-
 * port connection from a peer outside --inbound-proxy-trusted where headers
 * are optional, this class of its own, so that such peers can be held to
 * half the exposed-port connections (flow_inbound_at_limit()).
 */
#define FLOW_CLASS_STRANGER FLOW_KIND_COUNT

/* FLOW_INBOUND's own fields (flow_inbound.c). */
struct flow_inbound {
	uint32_t hdr_wait_ref;     /* 1 + its slot in the header-wait table; 0: none, as in a
				      zeroed flow of any kind (the union overlaps) */
	uint32_t stack_isn;        /* libslirp's ISN towards the guest (host order) */
	bool stack_isn_known;
	uint32_t isn_candidate;    /* a SYN seen while duplicates made it ambiguous (flow_inbound_first_syns) */
	bool isn_candidate_known;
	bool abandoned;            /* an untracked early duplicate shares the tuple: refused, every
				      SYN on it kept from the guest (flow_inbound_abandon()) */
	bool peer_trusted;         /* the peer may send a PROXY header */
	bool unix_client;          /* accepted on a unix exposed port (unixexpose.h) */
};

/* FLOW_STEER's own fields (flow_steer.c). */
struct flow_steer {
	bool unix_parked;          /* a placeholder sits under libslirp's fd (unixleg.h step 1) */
	bool unix_leg;             /* fd is a unix socket to the sidecar */
};

/*
 * Guest segments libslirp may hold out of order, at most (bridge.c:
 * bridge_guest_reass_refused()): at 64 KiB each, 4 MiB per flow.  In-order
 * segments count until libslirp acknowledges them, which the probe at
 * FLOW_REASS_PROBE_AT makes it do at once.  Even without it, libslirp's
 * 65535-byte window holds 45 full segments at MTU 1500 and 123 at the
 * smallest MTU the guest link takes (576).
 */
#define FLOW_REASS_MAX 64
_Static_assert(FLOW_REASS_MAX <= UINT8_MAX, "reass_count is a uint8_t");

/* At this many, libslirp's ACK is drawn with a probe (bridge.c), so that in-order ones go. */
#define FLOW_REASS_PROBE_AT 32

/*
 * ... and over all flows (flowtab.h, --max-reass-segments): 256 MiB of
 * libslirp's 64 KiB buffers, where the per-flow bound alone allows 64 GiB
 * at the default --max-flows.  Benign flows hold a few each (the probe
 * above), so only a guest holding segments beyond holes on many flows at
 * once reaches it, and it loses its own segments (retransmitted later).
 */
#define FLOW_REASS_TOTAL_DEFAULT 4096

struct flow {
	/* The table's (flowtab.c); the others read them, and change them only through its calls. */
	struct flow_key gkey;
	struct flow_key skey;
	enum flow_state state;     /* flowtab_set_state() */
	int64_t deadline_us;       /* 0: none; else when flowtab_expire() acts: flowtab_set_deadline() */
	uint32_t slot;
	uint8_t cls;               /* counting class: flowtab_set_class() (the bridge: the kind) */
	bool retired;              /* in the retired FIFO (flowtab_retire) */
	bool guest_indexed;        /* gkey is in the guest index */
	/* Ends of the guest's segments libslirp may hold out of order, oldest first: flowtab_reass_*(). */
	uint8_t reass_head, reass_count;
	uint32_t reass_end[FLOW_REASS_MAX];

	/* Every kind's (bridge.c). */
	enum flow_kind kind;       /* set once, by the kind's module, right after flowtab_add() */
	int fd;                    /* libslirp's host socket, -1 if none */
	bool established;          /* TCP: both handshakes done (outbound: the guest ACKed) */
	bool guest_acked;          /* TCP: the guest sent an ACK without SYN (its handshake is done) */
	bool wrap_hold;            /* TCP: a segment reaching sequence 0 was dropped (bridge.c) */
	uint32_t wrap_seq;         /* ... and its start: later guest data waits behind it */
	bool macs_known;           /* guest_mac and gw_mac were learnt from a frame of the flow */
	uint8_t guest_mac[6];      /* for the frames we build ourselves (resets) */
	uint8_t gw_mac[6];
	uint32_t guest_nxt;        /* TCP: the guest's next sequence number (host order) */
	uint32_t stack_nxt;        /* TCP: libslirp's next sequence number towards the guest */
	/* TCP close, as seen in both directions (bridge.c: bridge_track_close()). */
	bool guest_fin, stack_fin;       /* each side sent its FIN */
	bool guest_fin_acked, stack_fin_acked; /* ... and the other side acknowledged it */
	uint32_t guest_fin_end, stack_fin_end; /* sequence numbers just past each FIN */
	bool time_wait_cut;        /* libslirp's TIME_WAIT socket for it was dropped */
	/* libslirp's closed window, reopened for the guest (bridge.c: bridge_send_window_probes()). */
	uint32_t stack_ack;        /* TCP: what libslirp last acknowledged (its rcv_nxt) */
	uint32_t guest_ack;        /* TCP: what the guest last acknowledged */
	uint16_t guest_win;        /* TCP: the guest's last window field */
	bool stack_win_closed;     /* libslirp's last segment to the guest offered a zero window */
	bool win_probe_queued;     /* in the bridge's window-probe queue */
	bool stack_ack_seen;       /* stack_ack holds an ACK libslirp sent */

	/* The kind's own: the member @kind names. */
	union {
		struct flow_inbound in;
		struct flow_steer steer;
	} u;
};

/* flow_key_make() - build a key with its padding zeroed. */
struct flow_key flow_key_make(uint8_t proto, uint32_t laddr, uint16_t lport,
			      uint32_t raddr, uint16_t rport);

#endif /* MESHSLIRP_PB_FLOW_H */
