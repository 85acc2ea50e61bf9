/* bridge.h - steer guest flows into the sidecar with a PROXY header, on an unmodified libslirp. */
#ifndef MESHSLIRP_PB_BRIDGE_H
#define MESHSLIRP_PB_BRIDGE_H

/*
 * Theory of operation (outbound)
 *
 * 1. A guest SYN to D:P that the policy steers is rewritten, before
 *    libslirp sees it, to guest:S -> T, where T is the sidecar target (the
 *    gateway:15001 when the sidecar listens on 127.0.0.1, which libslirp maps
 *    to the pod's loopback) and S a fresh random stack port.  A flow is
 *    recorded under both views (flowtab.h); its kind's module
 *    (flow_steer.c, on flow_outbound.c) follows it from here.
 * 2. Inside that slirp_input(), libslirp creates the host socket and reports
 *    it through register_poll_fd: the bridge tags it with the flow.
 * 3. libslirp waits for POLLOUT on the connecting socket before it answers
 *    the guest's SYN.  The tagged socket's events reach the bridge first:
 *    on success it writes the PROXY header (original destination D:P, source
 *    --proxy-source and the guest's port) before libslirp sees POLLOUT, so
 *    the header precedes every guest byte.  On failure (sidecar absent or
 *    refusing) libslirp answers the guest's SYN with RST|ACK at once (its
 *    cont_conn path), which step 4 turns into a reset from D:P.
 * 4. Every frame libslirp sends for the flow is rewritten back to D:P ->
 *    guest:port, ICMP errors included (their embedded header too), so the
 *    guest only ever sees its own view.  Checksums are updated incrementally.
 * 5. When libslirp closes the socket, the flow enters CLOSED and is freed
 *    after a grace period in which late segments are still translated.
 *
 * DNS upstream: UDP and TCP to the guest's DNS address port 53 are
 * redirected the same way to --dns-upstream, without a header.
 *
 * Limits and hostile guests.  Every guest TCP connection and UDP
 * conversation takes a slot in the flow table, direct ones too (no rewrite
 * for them), so --max-flows bounds the host sockets a guest can make
 * libslirp open; a SYN flood beyond it is answered with resets.  Flows whose
 * upstream does not answer within --connect-timeout, or whose guest does not
 * complete its handshake within it, and TCP flows idle for
 * --tcp-idle-timeout, are ended with a reset to both ends: a RST into
 * libslirp as from the guest (it closes its socket, SO_LINGER 0, so the far
 * end sees a reset too) and one to the guest as from its peer.  Before
 * libslirp sees them, the bridge drops IPv4 fragments (libslirp would hold
 * each for 30 s in an mbuf as large as the MTU, and steered datagrams cannot
 * be reassembled after a rewrite of the first fragment only), IPv4 frames
 * whose lengths lie, and packets that would open a flow but fail their
 * checksum; each drop is counted by reason.  UDP entries live exactly as
 * long as libslirp's socket for them would (240 s after the last datagram,
 * 10 s after a reply when the guest's last datagram from that port went to
 * port 53), so the table bounds those sockets too;
 * ICMP echo requests, for which libslirp opens a socket each until the reply
 * or 240 s, are refused past BRIDGE_ICMP_MAX outstanding.
 *
 * Egress: before libslirp sees any packet that could make it open a socket
 * (a TCP segment or UDP datagram of no known flow, an ICMP echo request), the
 * destination is judged by egress_check() (egress.h): nothing local to the
 * pod is reachable, whatever the spelling.  Refusals, by the egress rule or
 * for a full flow table or no free stack port, get a RST for TCP, "admin
 * prohibited" for ICMP, a drop for UDP, a counter by reason, and a
 * rate-limited log line naming the flow and the reason.
 *
 * Theory of operation (inbound, proxy-bridge/flow_inbound.c)
 *
 * Exposed ports are libslirp hostfwds.  libslirp accept()s a client and,
 * before it sends the guest a SYN, reports the new socket through
 * register_poll_fd: the bridge recognises it by its local port and records
 * an inbound flow.  With --inbound-proxy-protocol optional or required it
 * then reads the PROXY header from the socket (peeking, so exactly the header
 * is consumed and the payload stays for the guest) and holds libslirp's SYN
 * to the guest until it knows the client:
 *   - a valid header naming an IPv4 client: the flow is rekeyed to that
 *     client and every frame is rewritten so the guest sees the connection
 *     come from the client's address and port, its replies going back;
 *   - v2 LOCAL, v1 UNKNOWN, or (optional) no header: the real peer, as
 *     libslirp presents it (a loopback peer shows as the gateway);
 *   - malformed, truncated, unsupported family, too long, missing where
 *     required, or not complete within --inbound-header-timeout: rejected.
 *     The held SYN never reaches the guest; the bridge sets SO_LINGER 0 and
 *     hands libslirp a RST from the guest, so libslirp drops the socket at
 *     once and the client gets a reset.  Counted and logged (rate limited).
 * While waiting, the socket is polled through netstack_fd_extra_events();
 * once bytes are there but the header is incomplete, it is re-read on a
 * 20 ms tick instead, so a trickling client cannot make the loop spin, and
 * only once more bytes have come (FIONREAD), so it cannot make the tick
 * copy its bytes again and again.  At
 * most BRIDGE_HDR_WAIT_MAX connections wait at once, and at most half of
 * them from peers not trusted to send a header; more are refused.
 *
 * A client refused without a flow (a full table, --max-inbound-flows, a
 * duplicate) is reset at once, but libslirp has accepted it and keeps its
 * socket until the bridge can reset that too, at libslirp's SYN to the
 * guest: libslirp sends none before it knows the guest's MAC, and would
 * keep each socket 75 s.  So at most BRIDGE_INBOUND_HELD_MAX such sockets
 * (fewer if --max-inbound-flows is lower) are held; at the bound the bridge
 * holds libslirp's accepts (netstack_hold_accepts()), and clients wait in
 * the kernel's backlog until some go: once the guest speaks, or at
 * libslirp's 75 s SYN timeout for those no SYN can be told apart for.
 *
 * Ownership: the bridge owns its flow table; it borrows the netstack, the
 * policy's arrays and the expose list, which must outlive it.
 */

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "common/addrset.h"
#include "netstack/netstack.h"
#include "proxy-bridge/egress.h"
#include "proxy-bridge/flowtab.h"
#include "proxy-bridge/policy.h"
#include "proxy-bridge/proxy_proto.h"

#define BRIDGE_DEFAULT_MAX_FLOWS 16384
#define BRIDGE_DEFAULT_CONNECT_TIMEOUT_S 10     /* Istio's default connectTimeout */
#define BRIDGE_DEFAULT_TCP_IDLE_S 3600          /* Envoy's tcp_proxy idle_timeout */

enum bridge_inbound_mode {
	BRIDGE_INBOUND_OFF,            /* no header expected: a header would reach the guest */
	BRIDGE_INBOUND_OPTIONAL,       /* a header if the bytes start with one */
	BRIDGE_INBOUND_REQUIRED,       /* no header, no connection */
};

struct bridge_expose {
	uint16_t host_port;            /* host order */
	uint16_t guest_port;
};

struct bridge_config {
	struct policy policy;          /* copied; its arrays are borrowed */
	enum proxy_version version;    /* header towards the sidecar */
	struct in_addr proxy_source;   /* source address in the header */
	const char *proxy_unix_path;   /* --outbound-proxy unix:PATH, borrowed; NULL: TCP (unixleg.h) */
	struct unixexpose *unix_expose; /* --expose unix:...: its clients' hand-over; borrowed, or NULL */
	size_t max_flows;              /* every guest TCP/UDP flow, direct ones included */
	size_t max_inbound_flows;      /* of those, exposed-port connections; 0: max_flows / 2, at least 1 */
	size_t max_reass_segments;     /* held out-of-order guest segments, all flows; 0: FLOW_REASS_TOTAL_DEFAULT */
	int64_t connect_timeout_us;    /* SYN sent upstream, no answer: reset both ends */
	int64_t tcp_idle_us;           /* no segment either way: reset both ends; 0: never */

	bool allow_host_loopback;      /* --allow-host-loopback: the gateway reaches 127.0.0.1 */
	const struct addrset *pod_addrs; /* the pod's own addresses; borrowed, kept current */
	const GArray *deny;            /* struct policy_cidr, --deny-outbound-cidr; borrowed, or NULL */

	struct in_addr guest;          /* the guest's address (hostfwd target) */
	enum bridge_inbound_mode inbound_mode;
	GArray *inbound_trusted;       /* struct policy_cidr: peers whose PROXY header is believed */
	bool inbound_trust_pod;        /* ... and the pod's own addresses (--inbound-proxy-trusted pod) */
	int64_t header_timeout_us;     /* --inbound-header-timeout */
	GArray *expose;                /* struct bridge_expose; borrowed, the owner may change it */
};

#define BRIDGE_HDR_WAIT_MAX 1024
/* Of those, what peers outside --inbound-proxy-trusted may hold (optional mode). */
#define BRIDGE_HDR_WAIT_UNTRUSTED_MAX (BRIDGE_HDR_WAIT_MAX / 2)
/*
 * Refused exposed-port clients whose socket libslirp still holds (until the
 * guest's side lets the bridge reset it), and duplicates: at most this many,
 * or --max-inbound-flows if lower; at the bound, no client is accepted.
 */
#define BRIDGE_INBOUND_HELD_MAX 256
/*
 * Duplicates (a second socket on a live connection's tuple) the bridge
 * tracks to remove from libslirp: all the held bound allows, and one more
 * per exposed port that libslirp accepts on in the poll that reaches it
 * (the hold starts at the next), for 64 ports.  Past that they are held
 * until libslirp's SYN timeout, and one that comes before the live
 * connection's SYN went refuses that connection too (flow_inbound.c).
 */
#define BRIDGE_DUP_MAX (BRIDGE_INBOUND_HELD_MAX + 64)
/* ICMP echo requests libslirp may have a socket open for at once. */
#define BRIDGE_ICMP_MAX 256

/* Why an inbound connection was closed before reaching the guest. */
enum bridge_inbound_drop {
	BRIDGE_IN_INVALID,             /* malformed header: see header_errors[] */
	BRIDGE_IN_MISSING,             /* required, but the bytes were no header */
	BRIDGE_IN_TIMEOUT,             /* not complete within the timeout */
	BRIDGE_IN_FAMILY,              /* not TCP over IPv4 (the guest network is IPv4) */
	BRIDGE_IN_ADDRESS,             /* client address the guest cannot answer */
	BRIDGE_IN_DUPLICATE,           /* client address:port already connected */
	BRIDGE_IN_CLOSED,              /* client closed or failed before the header */
	BRIDGE_IN_OVERLOAD,            /* the header-wait table (or its untrusted half) full */
	BRIDGE_IN_UNTRUSTED,           /* a PROXY header from a peer not in --inbound-proxy-trusted */
	BRIDGE_IN_TABLE_FULL,          /* no flow slot: --max-flows flows at once */
	BRIDGE_IN_INBOUND_FULL,        /* --max-inbound-flows exposed-port connections at once */
	BRIDGE_IN_DROP_COUNT,
};

/* Why a guest frame was dropped before libslirp saw it. */
enum bridge_guest_drop {
	BRIDGE_DROP_FRAGMENT,          /* IPv4 fragment: see bridge.c for why */
	BRIDGE_DROP_MALFORMED,         /* IPv4 whose lengths lie */
	BRIDGE_DROP_BAD_CHECKSUM,      /* a packet opening a flow, or TCP on none, with a bad checksum */
	BRIDGE_DROP_ICMP_LIMIT,        /* echo request past BRIDGE_ICMP_MAX outstanding */
	BRIDGE_DROP_SEQ_WRAP,          /* TCP ending at or crossing sequence 0 libslirp might queue */
	BRIDGE_DROP_DHCP,              /* DHCP request too short, or for a second client address */
	BRIDGE_DROP_SYN_ESTABLISHED,   /* SYN|ACK on an established TCP flow */
	BRIDGE_DROP_TCP_OPTIONS,       /* SYN whose options run past its header */
	BRIDGE_DROP_REASS_LIMIT,       /* TCP past libslirp's ACK, FLOW_REASS_MAX such outstanding */
	BRIDGE_DROP_REASS_TOTAL,       /* ... and cfg.max_reass_segments over all flows */
	BRIDGE_DROP_TCP_NO_FLOW,       /* TCP without SYN on no flow: answered with a reset */
	BRIDGE_DROP_SOURCE,            /* IPv4 or ARP from an address not the guest's */
	BRIDGE_DROP_COUNT,
};

/* Refusals that are not the egress rule's (those are counted by enum egress_verdict). */
enum bridge_refusal {
	BRIDGE_REFUSED_TABLE_FULL,     /* --max-flows reached */
	BRIDGE_REFUSED_NO_PORT,        /* no free stack port towards the target */
	BRIDGE_REFUSAL_COUNT,
};

struct bridge_stats {
	uint64_t flows_steered;        /* TCP flows sent to the sidecar */
	uint64_t flows_dns;            /* flows sent to --dns-upstream */
	uint64_t flows_direct;         /* flows to their own destination */
	uint64_t guest_dropped[BRIDGE_DROP_COUNT];
	uint64_t connect_timeouts;     /* upstream never answered: both ends reset */
	uint64_t idle_resets;          /* idle TCP flows reset at --tcp-idle-timeout */
	uint64_t handshake_timeouts;   /* guest never ACKed the SYN|ACK: both ends reset */
	uint64_t stale_resets;         /* guest opened an established flow's tuple anew */
	uint64_t refused[BRIDGE_REFUSAL_COUNT];
	uint64_t egress_refused[EGRESS_VERDICT_COUNT]; /* by reason; [EGRESS_ALLOW] unused */
	uint64_t fragments_rewritten;  /* later fragments of a rewritten datagram to the guest */
	uint64_t time_wait_cut;        /* closed TCP flows whose libslirp TIME_WAIT was dropped */
	uint64_t headers_written;
	uint64_t window_probes;        /* libslirp's reopened window asked for (slirp quirk no_window_update) */
	uint64_t ack_probes;           /* libslirp's ACK drawn: many guest segments past its last */
	uint64_t unix_legs;            /* steered flows whose sidecar leg is a unix socket */
	uint64_t unix_leg_failures;    /* ... that could not be put under libslirp's descriptor */
	uint64_t connect_failed;       /* sidecar or DNS upstream refused / unreachable */
	uint64_t header_failed;        /* connected, but the header could not be written */
	uint64_t frames_to_stack;      /* guest frames rewritten */
	uint64_t frames_to_guest;      /* stack frames rewritten */
	uint64_t icmp_rewritten;       /* ICMP errors to the guest whose embedded header was rewritten */
	uint64_t urgent_from_guest;    /* guest TCP segments to libslirp whose URG was cleared */
	uint64_t urgent_to_guest;      /* libslirp's TCP segments to the guest whose URG was cleared */
	uint64_t seq_wrap_aborts;      /* flows reset: the guest's bytes reached sequence 0 with libslirp's side closing */
	uint64_t reass_high_water;     /* most guest segments one flow had past libslirp's last ACK */
	uint64_t syn_timeouts;         /* flows libslirp never opened a socket for */
	uint64_t dhcp_address_pinned;  /* DHCP requests for another address: made to ask for none */

	uint64_t inbound_flows;        /* connections accepted on exposed ports */
	uint64_t inbound_headers[3];   /* valid headers by version (index 1, 2) */
	uint64_t inbound_real_peer;    /* LOCAL, UNKNOWN or no header: the real peer */
	uint64_t header_peeks;         /* recv(MSG_PEEK) calls reading waiting headers */
	uint64_t inbound_dropped[BRIDGE_IN_DROP_COUNT];
	uint64_t header_errors[PROXY_ERR_COUNT];
	uint64_t inbound_reopened;     /* a client reconnected from a closed flow's address and port */
	uint64_t inbound_duplicates;   /* libslirp accepted a second socket on a live tuple: refused */
	uint64_t duplicate_syns;       /* SYNs kept from the guest on a tuple such a socket shares */
	uint64_t duplicates_removed;   /* such sockets libslirp has closed since */
	uint64_t syns_replayed;        /* a live connection's SYN kept while such a socket made
					  its tuple ambiguous, sent on from its copy */
	uint64_t orphans_reset;        /* libslirp connections to the guest without a flow, reset at their SYN */
	uint64_t inbound_held;         /* refused clients' and duplicates' sockets libslirp holds now */
};

struct bridge;
struct unixexpose;

/**
 * bridge_new() - create the bridge and install it as @ns's hooks
 *
 * Return: 0 or -errno (-EINVAL for a bad max_flows, -EIO without randomness).
 */
int bridge_new(const struct bridge_config *cfg, struct netstack *ns, struct bridge **out);

/* bridge_free() - remove the hooks and free every flow; NULL is a no-op. */
void bridge_free(struct bridge *br);

/* bridge_stats() - counters (valid until bridge_free()). */
const struct bridge_stats *bridge_stats(const struct bridge *br);

/* bridge_guest_drop_str() - metric label for @why. */
const char *bridge_guest_drop_str(enum bridge_guest_drop why);

/* bridge_refusal_str() - metric label for @why ("table_full", "no_port"). */
const char *bridge_refusal_str(enum bridge_refusal why);

/* bridge_inbound_drop_str() - metric/log label for @why. */
const char *bridge_inbound_drop_str(enum bridge_inbound_drop why);

/* bridge_inbound_limit() - the exposed-port connections @cfg lets hold flow slots at once. */
size_t bridge_inbound_limit(const struct bridge_config *cfg);

/* bridge_foreach_flow() - call @fn for every flow in the table. */
void bridge_foreach_flow(struct bridge *br, void (*fn)(const struct flow *flow, void *opaque),
			 void *opaque);

/* bridge_flow_count() - flows in @state. */
size_t bridge_flow_count(const struct bridge *br, enum flow_state state);

/* bridge_udp_flow_count() - UDP flows (they live as long as libslirp's sockets). */
size_t bridge_udp_flow_count(const struct bridge *br);

/* bridge_flows_reclaimed() - closed flows whose slot a new flow took within their grace. */
uint64_t bridge_flows_reclaimed(const struct bridge *br);

/* bridge_reass_held() - guest TCP segments libslirp may hold out of order now, over all flows. */
size_t bridge_reass_held(const struct bridge *br);

/*
 * bridge_direct_tcp_counts() - direct TCP flows by state into @counts
 * (FLOW_STATE_COUNT entries).  Counted as flows change: O(1) in the table's size.
 */
void bridge_direct_tcp_counts(struct bridge *br, size_t *counts);

/* Where a guest's new TCP flow goes, as bridge_tcp_path() judges it. */
enum bridge_tcp_path {
	BRIDGE_TCP_STACK,              /* libslirp's, through the bridge (which may refuse it) */
	BRIDGE_TCP_STEER,              /* steered to the sidecar */
	BRIDGE_TCP_DIRECT,             /* to its own destination, outside the guest network */
};

/**
 * bridge_tcp_path() - where a guest SYN from @sport to @daddr:@dport
 * (network order) would go: STEER or DIRECT when no flow of the bridge
 * holds the tuple, the egress rule allows the destination and the policy
 * steers it or not; a destination in the guest network (libslirp's
 * gateway and DNS server) and everything refused stay BRIDGE_TCP_STACK.
 * For the kernel path (ksteer.h), which takes STEER and DIRECT SYNs before
 * libslirp.
 */
enum bridge_tcp_path bridge_tcp_path(struct bridge *br, uint32_t daddr, uint16_t sport,
				     uint16_t dport);

#endif /* MESHSLIRP_PB_BRIDGE_H */
