/* bridge.c - the proxy-bridge's hooks into the netstack: find each frame's flow, call its kind. */

/*
 * Theory of operation.  The netstack calls the bridge for every frame
 * either way, before libslirp or the guest sees it, and for every event
 * on a socket libslirp holds (netstack.h's hooks).  The bridge parses the
 * frame, looks its flow up by the guest's view (frames from the guest) or
 * libslirp's (frames to it), and hands it to the flow's kind through its
 * ops table (bridge_internal.h): flow_steer.c, flow_dns.c, flow_direct.c
 * (sharing flow_outbound.c's connect machine) and flow_inbound.c.  Each
 * kind's states and transitions are the table at the top of its file.
 *
 * What no kind owns stays here:
 *   - the guest-side gate before any flow exists: malformed frames and
 *     fragments are dropped, the egress rule judges anything that could
 *     make libslirp open a socket, the policy picks the kind of a new flow,
 *     echo requests are counted and bounded;
 *   - per-frame bookkeeping every TCP kind needs (bridge_flow_seen()): the
 *     idle deadline, both sides' next sequence numbers for our resets, and
 *     the close in both directions, after which libslirp's TIME_WAIT
 *     socket is cut (bridge_cut_time_wait());
 *   - the rewrite of ICMP errors and of later fragments from libslirp;
 *   - resets we build ourselves, and the expiry shared by every kind.
 *
 * Re-entrancy: libslirp is not re-entrant.  Anything that hands it a frame
 * (bridge_inject_guest_rst()) runs before slirp_input(), after it
 * (guest_frame_done), after a poll (poll_done) or on a timer, never inside
 * one of its callbacks; work found inside one is queued (cut_slot, the
 * inbound reset queue, the duplicates, the orphans).
 *
 * Ownership: the bridge owns its flow table and the kinds' tables; it
 * borrows the netstack, the policy's arrays and the expose list.
 */

#include "bridge.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/ethernet.h>
#include <sys/socket.h>

#include <glib.h>
#include <libslirp.h>

#include "common/log.h"
#include "common/ratelimit.h"
#include "common/seq.h"
#include "common/util.h"
#include "proxy-bridge/bridge_internal.h"
#include "proxy-bridge/rewrite.h"

#define BRIDGE_ICMP_ECHO_REQUEST 8

/*
 * libslirp closes a UDP socket 240 s after its last datagram (SO_EXPIRE), or
 * 10 s after a reply when the guest's last datagram on it went to port 53
 * (SO_EXPIREFAST); the UDP entry a datagram is seen on lives as long,
 * plus a tick, so that every socket libslirp keeps is still counted here.
 */
#define BRIDGE_UDP_IDLE_US ((240 + 2) * G_USEC_PER_SEC)
#define BRIDGE_UDP_DNS_IDLE_US ((10 + 2) * G_USEC_PER_SEC)

/* Each kind's module and ops (bridge_internal.h); the table counts flows by kind. */
static const struct flow_ops *const bridge_kind_ops[FLOW_KIND_COUNT] = {
	[FLOW_STEER] = &flow_steer_ops,
	[FLOW_DNS] = &flow_dns_ops,
	[FLOW_INBOUND] = &flow_inbound_ops,
	[FLOW_DIRECT] = &flow_direct_ops,
};
G_STATIC_ASSERT(FLOW_CLASS_STRANGER < FLOWTAB_CLASSES);

const struct flow_ops *bridge_ops(const struct flow *f)
{
	return bridge_kind_ops[f->kind];
}

static const char *const bridge_guest_drop_names[BRIDGE_DROP_COUNT] = {
	[BRIDGE_DROP_FRAGMENT] = "fragment",
	[BRIDGE_DROP_MALFORMED] = "malformed_ip",
	[BRIDGE_DROP_BAD_CHECKSUM] = "bad_checksum",
	[BRIDGE_DROP_ICMP_LIMIT] = "icmp_limit",
	[BRIDGE_DROP_SEQ_WRAP] = "seq_wrap",
	[BRIDGE_DROP_DHCP] = "dhcp_refused",
	[BRIDGE_DROP_SYN_ESTABLISHED] = "syn_established",
	[BRIDGE_DROP_TCP_OPTIONS] = "tcp_options",
	[BRIDGE_DROP_REASS_LIMIT] = "reass_limit",
	[BRIDGE_DROP_REASS_TOTAL] = "reass_total_limit",
	[BRIDGE_DROP_TCP_NO_FLOW] = "tcp_no_flow",
	[BRIDGE_DROP_SOURCE] = "source_address",
};

const char *bridge_guest_drop_str(enum bridge_guest_drop why)
{
	return why < BRIDGE_DROP_COUNT ? bridge_guest_drop_names[why] : "?";
}

static const char *const bridge_refusal_names[BRIDGE_REFUSAL_COUNT] = {
	[BRIDGE_REFUSED_TABLE_FULL] = "table_full",
	[BRIDGE_REFUSED_NO_PORT] = "no_port",
};
G_STATIC_ASSERT(G_N_ELEMENTS(bridge_refusal_names) == BRIDGE_REFUSAL_COUNT);

static const char *const bridge_refusal_why[BRIDGE_REFUSAL_COUNT] = {
	[BRIDGE_REFUSED_TABLE_FULL] = "flow table full (--max-flows)",
	[BRIDGE_REFUSED_NO_PORT] = "no free stack port towards the target",
};

/* Why the egress rule refused, for the log line (egress.h has the table). */
static const char *const bridge_egress_why[EGRESS_VERDICT_COUNT] = {
	[EGRESS_LOOPBACK] = "the pod's loopback (127.0.0.0/8)",
	[EGRESS_UNSPECIFIED] = "the unspecified address (0.0.0.0/8 means this host)",
	[EGRESS_BROADCAST] = "the limited broadcast address (libslirp maps it to loopback)",
	[EGRESS_MULTICAST] = "a multicast address",
	[EGRESS_RESERVED] = "a reserved address (240.0.0.0/4)",
	[EGRESS_POD_ADDRESS] = "one of the pod's own addresses",
	[EGRESS_HOST_LOOPBACK] = "host loopback through the gateway (off without "
				 "--allow-host-loopback)",
	[EGRESS_SIDECAR_PORT] = "the sidecar's own port",
	[EGRESS_GUEST_NETWORK] = "an address of the guest network that is no host",
	[EGRESS_DNS_PORT] = "the DNS address on a port other than 53",
	[EGRESS_DENIED] = "a denied destination (--deny-outbound-cidr)",
};

const char *bridge_refusal_str(enum bridge_refusal why)
{
	return (unsigned int)why < BRIDGE_REFUSAL_COUNT ? bridge_refusal_names[why] : "unknown";
}

const char *bridge_fmt(char *buf, size_t len, uint32_t addr, uint16_t port)
{
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &addr, ip, sizeof(ip));
	snprintf(buf, len, "%s:%u", ip, ntohs(port));
	return buf;
}

void bridge_log_flow(struct bridge *br, const struct flow_key *gkey, const char *fmt, ...)
{
	char src[32], dst[32];
	g_autofree char *what = NULL;
	uint64_t suppressed;
	va_list ap;

	if (!ratelimit_allow(&br->log_rl, g_get_monotonic_time(), &suppressed))
		return;
	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_warning("%s flow %s -> %s: %s%s", gkey->proto == IPPROTO_TCP ? "tcp" :
		  gkey->proto == IPPROTO_UDP ? "udp" : "icmp",
		  bridge_fmt(src, sizeof(src), gkey->laddr, gkey->lport),
		  bridge_fmt(dst, sizeof(dst), gkey->raddr, gkey->rport), what,
		  suppressed ? " (earlier messages suppressed)" : "");
}

/*
 * A debug line per flow opened or closed (--log-level debug), with its own
 * rate limit so that tracing never floods the log either.
 */
void bridge_debug_flow(struct bridge *br, const struct flow *f, const char *event)
{
	char src[32], dst[32], via[32];
	uint64_t suppressed;

	if (!log_enabled(LOG_LEVEL_DEBUG) ||
	    !ratelimit_allow(&br->debug_rl, g_get_monotonic_time(), &suppressed))
		return;
	g_debug("%s %s flow %s -> %s via %s (stack port %u)%s", bridge_ops(f)->name, event,
		bridge_fmt(src, sizeof(src), f->gkey.laddr, f->gkey.lport),
		bridge_fmt(dst, sizeof(dst), f->gkey.raddr, f->gkey.rport),
		bridge_fmt(via, sizeof(via), f->skey.raddr, f->skey.rport), ntohs(f->skey.lport),
		suppressed ? " (earlier lines suppressed)" : "");
}

/*
 * Reset the guest's end of @gkey with RST|ACK as if from its destination:
 * @seq is what the guest expects next from it (0 while it has sent nothing),
 * @ack what it acknowledges (the guest's next sequence number).
 */
static void bridge_reset_guest(struct bridge *br, const uint8_t guest_mac[6],
			       const uint8_t gw_mac[6], const struct flow_key *gkey,
			       uint32_t seq, uint32_t ack)
{
	uint8_t frame[RW_ETH_HLEN + 40];
	struct rw_tuple t = bridge_tuple(gkey, BRIDGE_INWARD);
	size_t len = rw_build_tcp_rst(frame, guest_mac, gw_mac, &t, seq, ack);

	netstack_send_to_guest(br->ns, frame, len);
}

void bridge_inject_rst(struct bridge *br, const struct flow_key *skey, const uint8_t gw_mac[6],
		       const uint8_t guest_mac[6], uint32_t seq, uint32_t ack)
{
	uint8_t frame[RW_ETH_HLEN + 40];
	struct rw_tuple t = bridge_tuple(skey, BRIDGE_OUTWARD);
	size_t len = rw_build_tcp_rst(frame, gw_mac, guest_mac, &t, seq, ack);

	netstack_inject_from_guest(br->ns, frame, len);
}

void bridge_inject_rst_swallowed(struct bridge *br, const struct flow_key *skey,
				 const uint8_t gw_mac[6], const uint8_t guest_mac[6], uint32_t seq,
				 uint32_t ack)
{
	br->swallow = skey;
	bridge_inject_rst(br, skey, gw_mac, guest_mac, seq, ack);
	br->swallow = NULL;
}

void bridge_inject_guest_rst(struct bridge *br, const struct flow *f, uint32_t seq, uint32_t ack)
{
	bridge_inject_rst(br, &f->skey, f->gw_mac, f->guest_mac, seq, ack);
}

static void bridge_drop(struct bridge *br, enum bridge_guest_drop why)
{
	br->stats.guest_dropped[why]++;
}

/*
 * Follow a TCP connection's close in both directions.  Once each side's FIN
 * has been acknowledged by the other, the connection is over, and libslirp,
 * if it closed first, keeps its socket in TIME_WAIT for 10 s (2 MSL) with
 * the flow's tuple.  On a virtual link no old duplicate segment can arrive
 * for TIME_WAIT to absorb, but a client that reconnects from the same
 * address and port would meet that socket: libslirp cannot tell the two
 * apart.  So the flow is queued for bridge_cut_time_wait(), which drops the
 * socket at once, outside libslirp's callbacks.
 */
static void bridge_track_close(struct bridge *br, struct flow *f, const struct rw_view *v,
			       bool from_guest, uint32_t end)
{
	uint8_t flags = rw_tcp_flags(v);

	if (flags & RW_TCP_FIN) {
		if (from_guest) {
			f->guest_fin = true;
			f->guest_fin_end = end;
		} else {
			f->stack_fin = true;
			f->stack_fin_end = end;
		}
	}
	if (flags & RW_TCP_ACK) {
		if (from_guest && f->stack_fin && !seq_after(f->stack_fin_end, rw_tcp_ack(v)))
			f->stack_fin_acked = true;
		if (!from_guest && f->guest_fin && !seq_after(f->guest_fin_end, rw_tcp_ack(v)))
			f->guest_fin_acked = true;
	}
	if (f->guest_fin_acked && f->stack_fin_acked && f->fd >= 0 && !f->time_wait_cut)
		br->cut_slot = f->slot;
}

/*
 * Whether libslirp's udp_input() takes guest datagram @v as far as noting
 * its destination: checksums right, and a UDP length that is the packet's
 * (libslirp drops a longer one; a shorter one it trims and checks over
 * less, which is called not taken here: the caller then keeps the
 * longer lifetime).
 */
static bool bridge_udp_taken(const struct rw_view *v)
{
	return v->l4_len >= 8 && be16_read(v->l4 + 4) == v->l4_len && rw_checksums_ok(v);
}

/*
 * Bookkeeping for every TCP/UDP frame of a known flow, either way: the idle
 * deadline of an OPEN flow moves on, and TCP remembers how far each side has
 * sent, so that a reset can later carry sequence numbers both ends accept.
 */
static void bridge_flow_seen(struct bridge *br, struct flow *f, const struct rw_view *v,
			     bool from_guest)
{
	uint32_t *nxt = from_guest ? &f->guest_nxt : &f->stack_nxt;
	uint32_t end;

	if (!f->macs_known)
		bridge_learn_macs(f, v, from_guest);
	if (f->gkey.proto == IPPROTO_UDP) {
		uint16_t *last_dport = &br->udp_last_dport[ntohs(f->skey.lport)];
		bool fast;

		/*
		 * libslirp has one socket per guest port, whatever the
		 * destination: a reply expires it fast when the guest's last
		 * datagram on it went to port 53, whichever flow the reply
		 * comes in on.  Judged by this flow's own port, a reply from
		 * port 53 after a datagram elsewhere would free this slot 12 s
		 * on while the socket stays 240 s.  libslirp notes a
		 * datagram's port only if it takes it (ip_input(), udp_input():
		 * checksums, a UDP length within the packet): a move to 53,
		 * the one that shortens a socket's life, is noted only for
		 * such a datagram, checked here (the others keep the longer).
		 */
		if (from_guest && *last_dport != f->skey.rport &&
		    (f->skey.rport != htons(53) || bridge_udp_taken(v)))
			*last_dport = f->skey.rport;
		fast = !from_guest && *last_dport == htons(53);
		flowtab_set_deadline(br->flows, f, g_get_monotonic_time() +
				     (fast ? BRIDGE_UDP_DNS_IDLE_US : BRIDGE_UDP_IDLE_US));
		return;
	}
	/*
	 * An outbound flow is established once the guest ACKs libslirp's
	 * SYN|ACK; until then the connect deadline stands, so a guest that
	 * never completes its handshakes cannot pin slots for long.
	 */
	if (from_guest && !f->established && f->state == FLOW_OPEN &&
	    (rw_tcp_flags(v) & (RW_TCP_SYN | RW_TCP_ACK | RW_TCP_RST)) == RW_TCP_ACK)
		f->established = true;
	/* Only while OPEN: a late segment must not lift a CLOSED flow's end of grace. */
	if (f->state == FLOW_OPEN && f->established && br->cfg.tcp_idle_us)
		flowtab_set_deadline(br->flows, f, g_get_monotonic_time() + br->cfg.tcp_idle_us);
	if (rw_tcp_flags(v) & RW_TCP_RST)
		return;
	if (from_guest && (rw_tcp_flags(v) & (RW_TCP_SYN | RW_TCP_ACK)) == RW_TCP_ACK)
		f->guest_acked = true;
	if (rw_tcp_flags(v) & RW_TCP_ACK) {
		if (from_guest) {
			f->guest_ack = rw_tcp_ack(v);
			f->guest_win = rw_tcp_window(v);
		} else {
			f->stack_ack = rw_tcp_ack(v);
			f->stack_ack_seen = true;
			f->stack_win_closed = rw_tcp_window(v) == 0;
			/*
			 * tcp_reass() keeps no segment that ends at or before its
			 * next expected sequence number, and each ACK it sends is
			 * at most that.
			 */
			flowtab_reass_release(br->flows, f, f->stack_ack);
		}
	}
	end = rw_tcp_seq_end(v);
	if ((rw_tcp_flags(v) & RW_TCP_SYN) || seq_after(end, *nxt))
		*nxt = end;
	bridge_track_close(br, f, v, from_guest, end);
}

/*
 * Drop libslirp's TIME_WAIT socket of the flow bridge_track_close() queued:
 * a RST as from the guest at exactly its next sequence number, which a
 * socket in TIME_WAIT (or LAST_ACK) accepts and closes on.  If libslirp has
 * already let the socket go, its answer (a reset: slirp quirk
 * reset_answered) is swallowed.  Call only outside libslirp's callbacks.
 */
static void bridge_cut_time_wait(struct bridge *br)
{
	struct flow *f = flowtab_get(br->flows, br->cut_slot);

	br->cut_slot = UINT32_MAX;
	if (!f || f->fd < 0 || f->time_wait_cut || f->gkey.proto != IPPROTO_TCP)
		return;
	f->time_wait_cut = true;
	br->stats.time_wait_cut++;
	bridge_inject_rst_swallowed(br, &f->skey, f->gw_mac, f->guest_mac, f->guest_nxt,
				    f->stack_nxt);
}

void bridge_learn_macs(struct flow *f, const struct rw_view *v, bool from_guest)
{
	const uint8_t *guest = from_guest ? v->eth + 6 : v->eth;
	const uint8_t *gw = from_guest ? v->eth : v->eth + 6;

	memcpy(f->guest_mac, guest, 6);
	memcpy(f->gw_mac, gw, 6);
	f->macs_known = true;
}

/*
 * Answer the guest's TCP segment @v on @gkey as one for no connection, as
 * RFC 9293 3.10.7.1 says and libslirp's dropwithreset does: nothing for a
 * reset, a RST at its acknowledgement for a segment with ACK, a RST|ACK of
 * it for one without.  Returns whether it answered (false for a reset).
 */
static bool bridge_answer_with_rst(struct bridge *br, struct rw_view *v,
				   const struct flow_key *gkey)
{
	uint8_t frame[RW_ETH_HLEN + 40];
	struct rw_tuple in = bridge_tuple(gkey, BRIDGE_INWARD);
	uint8_t flags = rw_tcp_flags(v);
	size_t len;

	if (flags & RW_TCP_RST)
		return false;
	if (flags & RW_TCP_ACK)
		len = rw_build_tcp(frame, v->eth + 6, v->eth, &in, rw_tcp_ack(v), 0, RW_TCP_RST, 0);
	else
		len = rw_build_tcp(frame, v->eth + 6, v->eth, &in, 0, rw_tcp_seq_end(v),
				   RW_TCP_RST | RW_TCP_ACK, 0);
	netstack_send_to_guest(br->ns, frame, len);
	return true;
}

/*
 * Refuse a guest packet that would open a flow: a reset for TCP (unless it
 * is a reset itself), nothing for UDP; logged with @why, rate limited.
 */
static void bridge_refuse(struct bridge *br, struct rw_view *v, const struct flow_key *gkey,
			  const char *why)
{
	if (gkey->proto != IPPROTO_TCP || bridge_answer_with_rst(br, v, gkey))
		bridge_log_flow(br, gkey, "refused: %s", why);
}

/* A guest packet no flow takes, to where the egress rule says no: refuse and count. */
static void bridge_refuse_egress(struct bridge *br, struct rw_view *v,
				 const struct flow_key *gkey, enum egress_verdict why)
{
	br->stats.egress_refused[why]++;
	bridge_refuse(br, v, gkey, bridge_egress_why[why]);
}

enum netstack_verdict bridge_refuse_add(struct bridge *br, struct rw_view *v,
					const struct flow_key *gkey, int err)
{
	/* -EEXIST cannot happen (the caller looked the key up): a port problem if it did. */
	enum bridge_refusal why = err == -ENOSPC ? BRIDGE_REFUSED_TABLE_FULL
						 : BRIDGE_REFUSED_NO_PORT;

	br->stats.refused[why]++;
	bridge_refuse(br, v, gkey, bridge_refusal_why[why]);
	return NETSTACK_CONSUMED;
}

enum netstack_verdict bridge_to_stack(struct bridge *br, struct rw_view *v, struct flow *f)
{
	struct rw_tuple t = bridge_tuple(&f->skey, BRIDGE_OUTWARD);

	bridge_flow_seen(br, f, v, true);
	if (!bridge_ops(f)->rewrites)
		return NETSTACK_PASS;
	rw_set_tuple(v, &t);
	br->stats.frames_to_stack++;
	return NETSTACK_PASS;
}

/* A guest packet opening a new flow: the policy picks the kind, whose module records it. */
static enum netstack_verdict bridge_open(struct bridge *br, struct rw_view *v,
					 const struct flow_key *gkey)
{
	enum policy_verdict verdict;
	enum flow_kind kind;

	/* libslirp would drop it too, but only after we gave it a slot. */
	if (!rw_checksums_ok(v)) {
		bridge_drop(br, BRIDGE_DROP_BAD_CHECKSUM);
		return NETSTACK_CONSUMED;
	}
	if (gkey->proto == IPPROTO_TCP)
		verdict = policy_tcp(&br->cfg.policy, gkey->raddr, ntohs(gkey->rport));
	else
		verdict = policy_udp(&br->cfg.policy, gkey->raddr, ntohs(gkey->rport));
	switch (verdict) {
	case POLICY_DIRECT:
		kind = FLOW_DIRECT;
		break;
	case POLICY_STEER:
		kind = FLOW_STEER;
		break;
	case POLICY_DNS:
	default:
		kind = FLOW_DNS;
		break;
	}
	return bridge_kind_ops[kind]->open(br, v, gkey);
}

enum bridge_tcp_path bridge_tcp_path(struct bridge *br, uint32_t daddr, uint16_t sport,
				     uint16_t dport)
{
	struct flow_key gkey = flow_key_make(IPPROTO_TCP, br->cfg.guest.s_addr, sport, daddr, dport);

	if (flowtab_lookup_guest(br->flows, &gkey))
		return BRIDGE_TCP_STACK;
	if (egress_check(&br->egress, IPPROTO_TCP, daddr, ntohs(dport)) != EGRESS_ALLOW)
		return BRIDGE_TCP_STACK;
	switch (policy_tcp(&br->cfg.policy, daddr, ntohs(dport))) {
	case POLICY_STEER:
		return BRIDGE_TCP_STEER;
	case POLICY_DIRECT:
		/* The guest network is libslirp's own hosts (its gateway, its DNS server): no socket there. */
		if ((daddr & br->egress.netmask) == br->egress.network)
			return BRIDGE_TCP_STACK;
		return BRIDGE_TCP_DIRECT;
	default:
		return BRIDGE_TCP_STACK;
	}
}

/* Whether a TCP segment takes sequence space beyond its SYN: bytes, or a FIN. */
static bool bridge_tcp_has_bytes(const struct rw_view *v)
{
	return rw_tcp_seq_end(v) - rw_tcp_seq(v) != (uint32_t)!!(rw_tcp_flags(v) & RW_TCP_SYN);
}

/*
 * Whether libslirp may have left ESTABLISHED on its own: it does when its
 * host socket reads EOF or fails (tcp_sockclosed()), before its FIN is on
 * the wire if data waits ahead of it.  Asked only for a segment reaching
 * sequence 0, so once per 4 GiB of a flow.
 */
static bool bridge_host_side_closing(const struct flow *f)
{
	struct pollfd p = { .fd = f->fd, .events = POLLRDHUP };

	return f->stack_fin || (f->fd >= 0 && poll(&p, 1, 0) > 0 &&
				(p.revents & (POLLRDHUP | POLLHUP | POLLERR)));
}

/*
 * Slirp quirk reass_wraps_to_zero: when tcp_reass() hands the guest's
 * queued bytes over and its next expected sequence number lands on 0, its
 * loop takes the connection's own record for one more segment and crashes
 * on it.  Every segment libslirp does not take in order goes through there:
 * out of order ones, and all of them once libslirp has left ESTABLISHED.
 * So a guest segment with bytes or a FIN that ends at or reaches past
 * sequence 0 goes to libslirp only where it takes the in-order path: an
 * ACK (libslirp is then ESTABLISHED, or becomes so before the data),
 * libslirp's side not closing, everything the guest sent before it
 * acknowledged (nothing queued) and the segment starting at or before what
 * libslirp acknowledged.  Otherwise it is dropped and counted, and so is
 * every later guest segment with bytes that starts at or after it, so that
 * nothing gets queued behind the gap: libslirp's ACK catches up, and the
 * guest's retransmission of it passes.  Where libslirp's side is closing
 * that retransmission never would: the flow is reset (and a segment with
 * nothing new is only dropped).  A benign guest meets this once per 4 GiB
 * of a flow at most, for one retransmission timeout.  Without a flow such
 * a segment is dropped here (any other gets bridge_tcp_no_flow()'s reset).
 * Returns whether the segment was kept from libslirp.
 */
static bool bridge_guest_seq_wrap(struct bridge *br, struct rw_view *v, struct flow *f)
{
	uint32_t seq = rw_tcp_seq(v), end = rw_tcp_seq_end(v);
	uint8_t flags = rw_tcp_flags(v);

	if (!bridge_tcp_has_bytes(v) || (flags & RW_TCP_RST))
		return false;
	if (end != 0 && end > seq) {
		/* Not reaching 0: held back only behind a dropped segment that does. */
		if (!f || !f->wrap_hold || seq_after(f->wrap_seq, seq))
			return false;
		bridge_drop(br, BRIDGE_DROP_SEQ_WRAP);
		return true;
	}
	if (f && (flags & RW_TCP_ACK) && !(flags & RW_TCP_SYN) && f->stack_ack == f->guest_nxt &&
	    !seq_after(seq, f->stack_ack)) {
		if (!bridge_host_side_closing(f)) {
			f->wrap_hold = false;
			return false;
		}
		if (seq_after(end, f->stack_ack)) {
			br->stats.seq_wrap_aborts++;
			bridge_log_flow(br, &f->gkey, "reset: the guest's bytes reach sequence 0 "
					"as its peer closes, which libslirp 4.7 cannot take");
			bridge_abort_flow(br, f, true);
			return true;
		}
	}
	if (f && !f->wrap_hold) {
		f->wrap_hold = true;
		f->wrap_seq = seq;
	}
	bridge_drop(br, BRIDGE_DROP_SEQ_WRAP);
	return true;
}

/*
 * Slirp quirk mbuf_mtu_sized, out of order: libslirp keeps each guest
 * segment it cannot take in order in a buffer of its MTU (64 KiB: it runs
 * at 65520 whatever the guest's), however few bytes it carries, until the
 * hole before it fills; a guest sending single bytes beyond a hole could
 * so make one flow hold gigabytes.  libslirp's next expected sequence
 * number is not visible here, but each ACK it sends is a lower bound of
 * it, and a segment starting at or before that bound is taken in order,
 * never queued.  So a segment with bytes or a FIN that starts past
 * libslirp's last ACK (or before its first) may be held: its end is
 * remembered until an ACK covers it (flowtab_reass_release()), and with
 * FLOW_REASS_MAX of them outstanding the next one is dropped and counted;
 * so is one that finds the flow table's limit over all flows held
 * (--max-reass-segments: a guest doing this on many flows at once).
 * In-order segments count too while libslirp delays its ACK (to its 2 ms
 * timer: it does while its buffer towards the peer is full, or the guest's
 * window or ACK moves), and a window of 65535 bytes (no window scaling)
 * holds hundreds of small ones.  So at FLOW_REASS_PROBE_AT the bridge
 * draws libslirp's ACK at once, after this frame
 * (bridge_send_ack_probe()): the in-order ones go, and only segments
 * beyond a hole stay counted.  Returns whether the segment was kept from
 * libslirp.
 */
static bool bridge_guest_reass_refused(struct bridge *br, const struct rw_view *v,
				       struct flow *f)
{
	uint32_t seq = rw_tcp_seq(v), end = rw_tcp_seq_end(v);

	if (!bridge_tcp_has_bytes(v) || (rw_tcp_flags(v) & RW_TCP_RST))
		return false;
	/* No socket: libslirp has none for it yet, or closed the connection, queue and all. */
	if (f->fd < 0 || (f->stack_ack_seen && !seq_after(seq, f->stack_ack)))
		return false;
	switch (flowtab_reass_hold(br->flows, f, end)) {
	case 0:
		break;
	case -ENOBUFS:
		bridge_drop(br, BRIDGE_DROP_REASS_LIMIT);
		return true;
	default:
		/*
		 * The table's limit: benign flows may fill it with in-order
		 * segments libslirp has yet to acknowledge, each below the
		 * per-flow probe; drawing this flow's ACK frees its own.
		 */
		bridge_drop(br, BRIDGE_DROP_REASS_TOTAL);
		br->ack_probe_slot = f->slot;
		return true;
	}
	if (f->reass_count > br->stats.reass_high_water)
		br->stats.reass_high_water = f->reass_count;
	if (f->reass_count == FLOW_REASS_PROBE_AT)
		br->ack_probe_slot = f->slot;
	return false;
}

/*
 * The guest's TCP segments libslirp 4.7 mishandles, kept from it: a SYN
 * whose options run past its header (slirp quirk syn_options_overread:
 * tcp_dooptions() reads an MSS option's value from beyond them), a SYN on
 * a flow whose handshake the guest has done (slirp quirk
 * syn_mss_resets_buffers: bytes lost, and a warning on every later ACK; an
 * outbound flow's tuple reopened by a new SYN was forgotten before this),
 * bridge_guest_seq_wrap()'s and bridge_guest_reass_refused()'s.  No
 * conforming TCP sends the first two.  Returns whether the segment was
 * kept from libslirp.
 */
static bool bridge_guest_tcp_refused(struct bridge *br, struct rw_view *v, struct flow *f)
{
	uint8_t flags = rw_tcp_flags(v);

	if ((flags & RW_TCP_SYN) && !rw_tcp_options_sound(v)) {
		bridge_drop(br, BRIDGE_DROP_TCP_OPTIONS);
		return true;
	}
	if (f && f->guest_acked && (flags & RW_TCP_SYN)) {
		bridge_drop(br, BRIDGE_DROP_SYN_ESTABLISHED);
		return true;
	}
	if (bridge_guest_seq_wrap(br, v, f))
		return true;
	return f && bridge_guest_reass_refused(br, v, f);
}

/*
 * A guest TCP segment without SYN that no flow takes.  Every connection
 * libslirp is meant to hold has a flow: a guest's connection gets one with
 * its SYN, an exposed port's client when libslirp registers its socket,
 * and a flow goes only once libslirp has closed its socket or been sent a
 * reset.  So this is a late segment of a connection that ended, or one of
 * a connection libslirp holds without a flow, where none of the guards
 * above would have state (out of order, sequence 0, SYNs): one left by a
 * reset it did not take (an exposed port's client refused for a full
 * table is reset at its SYN: bridge_stack_orphan_syn()).  The segment is counted and never handed to libslirp; the guest
 * gets the reset libslirp gives a segment it has no connection for (none
 * for a reset), and libslirp a reset as from the guest on the same tuple,
 * at the segment's own sequence and acknowledgement numbers, which ends a
 * connection libslirp holds there without a flow (one on the guest's own
 * tuple: direct, inbound; never a tuple some flow holds in libslirp's
 * view); whatever libslirp answers is swallowed.  Called in the
 * guest-frame hook, before slirp_input(): libslirp may be handed a frame.
 */
static void bridge_tcp_no_flow(struct bridge *br, struct rw_view *v, const struct flow_key *gkey)
{
	/* libslirp drops a segment whose checksum fails before it looks for a connection. */
	if (!rw_checksums_ok(v)) {
		bridge_drop(br, BRIDGE_DROP_BAD_CHECKSUM);
		return;
	}
	bridge_drop(br, BRIDGE_DROP_TCP_NO_FLOW);
	bridge_answer_with_rst(br, v, gkey);
	/* A flow's own tuple in libslirp's view (a stack port, a rekeyed client): not an orphan. */
	if (flowtab_lookup_stack(br->flows, gkey))
		return;
	/* Slirp quirk reset_answered: even a reset for no connection gets one; the guest has ours. */
	bridge_inject_rst_swallowed(br, gkey, v->eth, v->eth + 6, rw_tcp_seq(v), rw_tcp_ack(v));
}

static enum netstack_verdict bridge_guest_transport(struct bridge *br, struct rw_view *v)
{
	enum egress_verdict verdict;
	struct rw_tuple t;
	struct flow_key gkey;
	struct flow *f;
	bool syn;

	rw_tuple(v, &t);
	gkey = flow_key_make(t.proto, t.saddr, t.sport, t.daddr, t.dport);
	syn = t.proto == IPPROTO_TCP && rw_tcp_is_syn(v);
	f = flowtab_lookup_guest(br->flows, &gkey);

	/* A SYN on a flow's tuple: the kind may end the flow (an outbound one the guest forgot). */
	if (f && syn && bridge_ops(f)->guest_syn)
		bridge_ops(f)->guest_syn(br, f);
	/* A new SYN on a port whose old flow is closing starts a new flow. */
	if (f && syn && f->state == FLOW_CLOSED) {
		bridge_forget_flow(br, f);
		f = NULL;
	}
	if (t.proto == IPPROTO_TCP && bridge_guest_tcp_refused(br, v, f))
		return NETSTACK_CONSUMED;
	if (f) {
		/* The SYN again, libslirp having opened no socket for it: one it opens now is f's. */
		if (syn && f->state == FLOW_SYN && f->fd < 0)
			br->syn_in_input = f;
		return bridge_ops(f)->guest_frame(br, v, f);
	}
	/* TCP without SYN opens nothing: it never reaches libslirp, wherever it goes. */
	if (t.proto == IPPROTO_TCP && !syn) {
		bridge_tcp_no_flow(br, v, &gkey);
		return NETSTACK_CONSUMED;
	}
	/* No flow takes it: libslirp could open a socket for it, so the egress rule judges. */
	verdict = egress_check(&br->egress, t.proto, t.daddr, ntohs(t.dport));
	if (verdict != EGRESS_ALLOW) {
		bridge_refuse_egress(br, v, &gkey, verdict);
		return NETSTACK_CONSUMED;
	}
	return bridge_open(br, v, &gkey);
}

/*
 * An echo request to where the egress rule says no: "communication
 * administratively prohibited" from the gateway, counted.  Returns whether
 * it was refused.
 */
static bool bridge_guest_echo_refused(struct bridge *br, struct rw_view *v)
{
	uint8_t frame[RW_ICMP_UNREACH_MAX];
	uint32_t saddr, daddr;
	enum egress_verdict verdict;
	struct flow_key key;
	size_t len;

	rw_outer_addrs(v, &saddr, &daddr);
	verdict = egress_check(&br->egress, IPPROTO_ICMP, daddr, 0);
	if (verdict == EGRESS_ALLOW)
		return false;
	br->stats.egress_refused[verdict]++;
	key = flow_key_make(IPPROTO_ICMP, saddr, 0, daddr, 0);
	bridge_log_flow(br, &key, "echo request refused: %s", bridge_egress_why[verdict]);
	len = rw_build_icmp_unreach(frame, v->eth + 6, v->eth, br->cfg.policy.gateway.s_addr, v,
				    RW_ICMP_UNREACH_ADMIN);
	netstack_send_to_guest(br->ns, frame, len);
	return true;
}

/* A BOOTP request: op to htype, ..., giaddr (28 bytes), chaddr (16), sname, file: 236 in all. */
#define BRIDGE_BOOTP_FIXED 236
#define BRIDGE_BOOTP_CIADDR 12
#define BRIDGE_BOOTP_CHADDR 28
#define BRIDGE_DHCP_OPT_REQUESTED_IP 50

/*
 * libslirp grants a client any free address of its 16 that the client asks
 * for (option 50, or ciaddr in a REQUEST), but the guest is served from
 * one address only (bridge_guest_source_refused()): a guest remembering
 * another lease would be given it and then never heard.  So a request may
 * name no other address: option 50 naming one becomes padding, a ciaddr
 * naming one becomes 0.0.0.0 (libslirp then finds the guest's lease by its
 * hardware address), and the UDP checksum, no longer right, is left out
 * (0: none, which IPv4 allows).  Bytes past the datagram are never read.
 */
static void bridge_guest_dhcp_pin_address(struct bridge *br, const struct rw_view *v)
{
	uint8_t *bootp = v->l4 + 8, *opt = bootp + BRIDGE_BOOTP_FIXED + 4;
	const uint8_t *end = v->l4 + v->l4_len;
	uint32_t guest = br->cfg.guest.s_addr, ciaddr;
	bool changed = false;

	memcpy(&ciaddr, bootp + BRIDGE_BOOTP_CIADDR, sizeof(ciaddr));
	if (ciaddr && ciaddr != guest) {
		memset(bootp + BRIDGE_BOOTP_CIADDR, 0, sizeof(ciaddr));
		changed = true;
	}
	/* Options after the magic cookie: pad (0) is one byte, end (255) ends them. */
	while (opt < end && *opt != 255) {
		if (*opt == 0) {
			opt++;
			continue;
		}
		if (end - opt < 2 || end - opt - 2 < opt[1])
			break;
		if (opt[0] == BRIDGE_DHCP_OPT_REQUESTED_IP && opt[1] == 4 &&
		    memcmp(opt + 2, &guest, sizeof(guest))) {
			memset(opt, 0, 6);
			changed = true;
		}
		opt += 2 + opt[1];
	}
	if (changed) {
		memset(v->l4 + 6, 0, 2);
		br->stats.dhcp_address_pinned++;
	}
}

/*
 * Whether @v is a datagram libslirp's bootp_input() takes: UDP to its
 * server port, at its address or broadcast.
 */
static bool bridge_is_to_dhcp_server(const struct bridge *br, const struct rw_view *v)
{
	uint32_t saddr, daddr;

	if (v->kind != RW_TRANSPORT || v->proto != IPPROTO_UDP ||
	    be16_read(v->l4 + 2) != EGRESS_DHCP_SERVER_PORT)
		return false;
	rw_outer_addrs(v, &saddr, &daddr);
	return daddr == br->egress.gateway || daddr == htonl(INADDR_BROADCAST);
}

/*
 * Slirp quirk dhcp_exhausted_leak: once its 16 leases are held, libslirp
 * leaks a 64 KiB buffer on every DISCOVER from a client address that holds
 * none, and it never frees a lease.  A VM's NIC has one address, so the
 * first client address the guest's DHCP requests name is pinned; requests
 * naming another, or too short to name one, are dropped and counted.
 * Returns whether the datagram was dropped.
 */
static bool bridge_guest_dhcp_refused(struct bridge *br, const struct rw_view *v)
{
	const uint8_t *bootp = v->l4 + 8, *chaddr = bootp + BRIDGE_BOOTP_CHADDR;

	if (!bridge_is_to_dhcp_server(br, v))
		return false;
	/* Too short to name a client, or not a request libslirp would answer: no pin. */
	if (v->l4_len - 8 < BRIDGE_BOOTP_FIXED || be16_read(v->l4 + 4) != v->l4_len ||
	    bootp[0] != 1 || !rw_checksums_ok(v)) {
		bridge_drop(br, BRIDGE_DROP_DHCP);
		return true;
	}
	if (!br->dhcp_client_known) {
		memcpy(br->dhcp_client, chaddr, sizeof(br->dhcp_client));
		br->dhcp_client_known = true;
	}
	if (!memcmp(br->dhcp_client, chaddr, sizeof(br->dhcp_client))) {
		bridge_guest_dhcp_pin_address(br, v);
		return false;
	}
	bridge_drop(br, BRIDGE_DROP_DHCP);
	return true;
}

/* An Ethernet/IPv4 ARP packet: the sender's IPv4 address, and the whole. */
#define BRIDGE_ARP_SENDER_IP (RW_ETH_HLEN + 14)
#define BRIDGE_ARP_MIN (RW_ETH_HLEN + 28)

/*
 * Whether a frame claims a source that is not the guest's: IPv4 from any
 * address but the one it leases (0.0.0.0 only for its DHCP client), or an
 * ARP packet whose sender is another address (0.0.0.0 for a probe).  The
 * guest has one address; a frame from another would have libslirp queue
 * its answers behind an ARP request for an address nobody holds, hold a
 * socket per invented source, or take the guest's own ARP entry.
 */
static bool bridge_guest_source_refused(const struct bridge *br, const struct rw_view *v,
					const uint8_t *frame, size_t len)
{
	uint32_t saddr, daddr;

	if (v->kind == RW_NOT_IPV4) {
		if (len < RW_ETH_HLEN || be16_read(frame + 12) != ETHERTYPE_ARP)
			return false;
		/*
		 * libslirp's arp_input() reads the sender's address where an
		 * Ethernet/IPv4 ARP has it, whatever the packet says its address
		 * sizes are: so judge exactly that, and drop a runt too short to
		 * hold it.
		 */
		if (len < BRIDGE_ARP_MIN)
			return true;
		memcpy(&saddr, frame + BRIDGE_ARP_SENDER_IP, sizeof(saddr));
		return saddr != br->cfg.guest.s_addr && saddr != htonl(INADDR_ANY);
	}
	rw_outer_addrs(v, &saddr, &daddr);
	if (saddr == br->cfg.guest.s_addr)
		return false;
	/* 0.0.0.0 only as a DHCP client, to libslirp's server. */
	return saddr != htonl(INADDR_ANY) || !bridge_is_to_dhcp_server(br, v) ||
	       be16_read(v->l4) != EGRESS_DHCP_CLIENT_PORT;
}

static enum netstack_verdict bridge_guest_frame(uint8_t *frame, size_t len, void *opaque)
{
	struct bridge *br = opaque;
	struct rw_view v;

	/* A refused duplicate socket may still sit in libslirp: remove it before any lookup. */
	if (br->in.ndups)
		flow_inbound_dups_kill(br);
	rw_parse(frame, len, &v);
	if (v.kind == RW_MALFORMED) {
		bridge_drop(br, BRIDGE_DROP_MALFORMED);
		return NETSTACK_CONSUMED;
	}
	if (bridge_guest_source_refused(br, &v, frame, len)) {
		bridge_drop(br, BRIDGE_DROP_SOURCE);
		return NETSTACK_CONSUMED;
	}
	if (rw_is_fragment(&v)) {
		bridge_drop(br, BRIDGE_DROP_FRAGMENT);
		return NETSTACK_CONSUMED;
	}
	switch (v.kind) {
	case RW_TRANSPORT:
		/* Slirp quirk urgent_pointer_trusted: libslirp must never see URG. */
		if (v.proto == IPPROTO_TCP && rw_tcp_clear_urgent(&v))
			br->stats.urgent_from_guest++;
		if (bridge_guest_dhcp_refused(br, &v))
			return NETSTACK_CONSUMED;
		return bridge_guest_transport(br, &v);
	case RW_ICMP_ERROR:
		/*
		 * libslirp frees it unread (slirp quirk guest_icmp_errors_freed),
		 * so its quoted header is not translated to libslirp's view.
		 */
		return NETSTACK_PASS;
	case RW_OTHER:
		if (v.proto == IPPROTO_ICMP && v.l4_len >= 8 && v.l4[0] == BRIDGE_ICMP_ECHO_REQUEST) {
			if (bridge_guest_echo_refused(br, &v))
				return NETSTACK_CONSUMED;
			if (br->icmp_open >= BRIDGE_ICMP_MAX) {
				bridge_drop(br, BRIDGE_DROP_ICMP_LIMIT);
				return NETSTACK_CONSUMED;
			}
			br->echo_in_input = true;
		}
		return NETSTACK_PASS;
	default:
		/* ARP and the like: libslirp's to judge. */
		return NETSTACK_PASS;
	}
}

static void bridge_send_ack_probe(struct bridge *br);
static void bridge_reset_orphans(struct bridge *br);

static void bridge_guest_frame_done(void *opaque)
{
	struct bridge *br = opaque;

	struct flow *f = br->syn_in_input;

	br->syn_in_input = NULL;
	if (f && bridge_ops(f)->input_done)
		bridge_ops(f)->input_done(br, f);
	br->echo_in_input = false;
	if (br->cut_slot != UINT32_MAX)
		bridge_cut_time_wait(br);
	if (br->ack_probe_slot != UINT32_MAX)
		bridge_send_ack_probe(br);
	if (br->norphans)
		bridge_reset_orphans(br);
}

void bridge_forget_flow(struct bridge *br, struct flow *f)
{
	/* Its socket may still be libslirp's (a connect that failed): let go of it. */
	if (f->fd >= 0)
		netstack_tag_fd(br->ns, f->fd, NULL);
	if (bridge_ops(f)->forget)
		bridge_ops(f)->forget(br, f);
	flowtab_remove(br->flows, f);
}

void bridge_reset_peer_now(int fd)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };

	bridge_reset_on_close(fd);
	/* Disconnecting a connected TCP socket sends a RST (tcp_disconnect). */
	if (connect(fd, &sa, sizeof(sa)) < 0)
		shutdown(fd, SHUT_RDWR);
}

void bridge_reset_on_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void bridge_remember_fragment(struct bridge *br, const struct rw_view *v, uint32_t saddr,
				     uint32_t daddr);

enum netstack_verdict bridge_to_guest(struct bridge *br, struct rw_view *v, struct flow *f)
{
	struct rw_tuple t = bridge_tuple(&f->gkey, BRIDGE_INWARD);
	uint32_t saddr, daddr;

	bridge_flow_seen(br, f, v, false);
	if (!bridge_ops(f)->rewrites)
		return NETSTACK_PASS;
	rw_outer_addrs(v, &saddr, &daddr);
	rw_set_tuple(v, &t);
	br->stats.frames_to_guest++;
	if (rw_more_fragments(v))
		bridge_remember_fragment(br, v, saddr, daddr);
	return NETSTACK_PASS;
}

/*
 * A later fragment (no ports) of a datagram whose first fragment was
 * rewritten: the same addresses, so the guest can reassemble it.  Fragments
 * of datagrams we did not rewrite pass as they are.
 */
static void bridge_stack_fragment(struct bridge *br, struct rw_view *v)
{
	uint32_t saddr, daddr;
	uint16_t id = rw_ip_id(v);

	rw_outer_addrs(v, &saddr, &daddr);
	for (size_t i = 0; i < BRIDGE_FRAG_MAX; i++) {
		const struct bridge_frag *fr = &br->frags[i];

		if (fr->used && fr->id == id && fr->proto == v->proto && fr->saddr == saddr &&
		    fr->daddr == daddr) {
			rw_set_outer_addrs(v, fr->new_saddr, fr->new_daddr);
			br->stats.fragments_rewritten++;
			return;
		}
	}
}

/*
 * The first fragment of a datagram libslirp fragmented was just rewritten
 * from (@saddr, @daddr): remember how, by IP id, for the fragments that
 * follow it (libslirp sends them in order, right after it).  The oldest
 * entry gives way; an entry for the same datagram key is replaced.
 */
static void bridge_remember_fragment(struct bridge *br, const struct rw_view *v, uint32_t saddr,
				     uint32_t daddr)
{
	struct bridge_frag *fr = &br->frags[br->frag_next];

	for (size_t i = 0; i < BRIDGE_FRAG_MAX; i++) {
		struct bridge_frag *e = &br->frags[i];

		if (e->used && e->id == rw_ip_id(v) && e->proto == v->proto && e->saddr == saddr &&
		    e->daddr == daddr) {
			fr = e;
			break;
		}
	}
	if (fr == &br->frags[br->frag_next])
		br->frag_next = (br->frag_next + 1) % BRIDGE_FRAG_MAX;
	fr->used = true;
	fr->id = rw_ip_id(v);
	fr->proto = v->proto;
	fr->saddr = saddr;
	fr->daddr = daddr;
	rw_outer_addrs(v, &fr->new_saddr, &fr->new_daddr);
}

/*
 * A SYN libslirp sends the guest for a connection no flow holds: an exposed
 * port's client refused for a full table, which libslirp had accepted and
 * opens towards the guest regardless, or any socket
 * flow_inbound_registered() could not place.  The guest never sees it: a
 * connection without a flow would have none of the guards on the guest's
 * segments, and a guest that never answers would leave libslirp's socket
 * for its SYN timeout (75 s).  The connection is queued for
 * bridge_reset_orphans(), which runs outside libslirp's callbacks.  A full
 * queue costs only this SYN: libslirp's retransmission of it comes back
 * here.
 */
static void bridge_stack_orphan_syn(struct bridge *br, const struct rw_view *v,
				    const struct flow_key *skey)
{
	struct bridge_orphan *o = NULL;

	for (size_t i = 0; i < br->norphans && !o; i++) {
		if (!memcmp(&br->orphans[i].skey, skey, sizeof(*skey)))
			o = &br->orphans[i];
	}
	if (!o) {
		if (br->norphans == BRIDGE_ORPHAN_MAX)
			return;
		o = &br->orphans[br->norphans++];
		o->skey = *skey;
	}
	o->isn = rw_tcp_seq(v);
	memcpy(o->guest_mac, v->eth, 6);
	memcpy(o->gw_mac, v->eth + 6, 6);
}

/*
 * Reset the queued orphans in libslirp: a RST|ACK as from the guest that
 * acknowledges the SYN.  In SYN_SENT libslirp checks only a reset's ACK,
 * drops the connection (tcp_drop()) and closes its socket, which the
 * client's refusal set to reset (SO_LINGER 0).  A connection already gone
 * is answered with a reset (slirp quirk reset_answered), swallowed.  Call
 * only outside libslirp's callbacks.
 */
static void bridge_reset_orphans(struct bridge *br)
{
	for (size_t i = 0; i < br->norphans; i++) {
		const struct bridge_orphan *o = &br->orphans[i];

		br->stats.orphans_reset++;
		bridge_inject_rst_swallowed(br, &o->skey, o->gw_mac, o->guest_mac, 0, o->isn + 1);
	}
	br->norphans = 0;
}

/* A TCP/UDP frame from libslirp: find its flow by libslirp's view and turn it to the guest's. */
static enum netstack_verdict bridge_stack_transport(struct bridge *br, struct rw_view *v)
{
	struct rw_tuple t;
	struct flow_key skey;
	struct flow *f;

	rw_tuple(v, &t);
	skey = flow_key_make(t.proto, t.daddr, t.dport, t.saddr, t.sport);
	/* libslirp's answer to a frame we injected to remove a duplicate: not the guest's. */
	if (br->swallow && !memcmp(&skey, br->swallow, sizeof(skey)))
		return NETSTACK_CONSUMED;
	f = flowtab_lookup_stack(br->flows, &skey);
	if (f)
		return bridge_ops(f)->stack_frame(br, v, f);
	if (t.proto == IPPROTO_TCP && rw_tcp_is_syn(v)) {
		bridge_stack_orphan_syn(br, v, &skey);
		return NETSTACK_CONSUMED;
	}
	return NETSTACK_PASS;
}

/* An ICMP error from libslirp about a packet of a rewritten flow: its quote too. */
static void bridge_stack_icmp_error(struct bridge *br, struct rw_view *v)
{
	struct rw_tuple t;
	struct flow_key skey;
	uint32_t saddr, daddr;
	struct flow *f;

	/* The quoted packet went from the guest (stack port) to the target. */
	rw_inner_tuple(v, &t);
	skey = flow_key_make(t.proto, t.saddr, t.sport, t.daddr, t.dport);
	f = flowtab_lookup_stack(br->flows, &skey);
	if (!f || !bridge_ops(f)->rewrites)
		return;
	t = bridge_tuple(&f->gkey, BRIDGE_OUTWARD);
	rw_set_inner_tuple(v, &t);
	rw_outer_addrs(v, &saddr, &daddr);
	if (saddr == f->skey.raddr)
		rw_set_outer_addrs(v, f->gkey.raddr, daddr);
	br->stats.icmp_rewritten++;
}

static enum netstack_verdict bridge_stack_frame(uint8_t *frame, size_t len, void *opaque)
{
	struct bridge *br = opaque;
	struct rw_view v;

	rw_parse(frame, len, &v);
	switch (v.kind) {
	case RW_TRANSPORT:
		/* Its urgent pointer is one byte short (slirp quirk urgent_pointer_trusted). */
		if (v.proto == IPPROTO_TCP && rw_tcp_clear_urgent(&v))
			br->stats.urgent_to_guest++;
		return bridge_stack_transport(br, &v);
	case RW_ICMP_ERROR:
		bridge_stack_icmp_error(br, &v);
		return NETSTACK_PASS;
	case RW_FRAGMENT:
		bridge_stack_fragment(br, &v);
		return NETSTACK_PASS;
	default:
		return NETSTACK_PASS;
	}
}

static void bridge_fd_registered(int fd, void *opaque)
{
	struct bridge *br = opaque;
	struct flow *f = br->syn_in_input;

	/* The socket libslirp opened for an echo request: counted until closed. */
	if (br->echo_in_input) {
		br->echo_in_input = false;
		br->icmp_open++;
		netstack_tag_fd(br->ns, fd, &br->icmp_tag);
		return;
	}
	/* Outside slirp_input() of a guest SYN: maybe a client on an exposed port. */
	if (!f) {
		flow_inbound_registered(br, fd);
		return;
	}
	/* One socket per SYN; a second registration inside that input is not the flow's. */
	if (f->fd < 0 && bridge_ops(f)->fd_registered)
		bridge_ops(f)->fd_registered(br, f, fd);
}

static void bridge_fd_closed(int fd, void *tag, void *opaque)
{
	struct bridge *br = opaque;
	struct flow *f = tag;

	if (tag == &br->icmp_tag) {
		br->icmp_open--;
		return;
	}
	if (flow_inbound_is_dup_tag(br, tag)) {
		flow_inbound_dup_closed(br, tag);
		return;
	}
	if (flow_inbound_is_held_tag(br, tag)) {
		flow_inbound_held_closed(br);
		return;
	}
	bridge_debug_flow(br, f, "closed");
	(void)fd;
	if (bridge_ops(f)->closed)
		bridge_ops(f)->closed(br, f);
	f->fd = -1;
	/* tcp_close() freed its reassembly queue before it let the socket go. */
	flowtab_reass_clear(br->flows, f);
	if (f->state != FLOW_CLOSED)
		flowtab_set_state(br->flows, f, FLOW_CLOSED);
	flowtab_set_deadline(br->flows, f, g_get_monotonic_time() + BRIDGE_CLOSED_GRACE_US);
	/* Only late segments left: a full table may give its slot to a new flow. */
	flowtab_retire(br->flows, f);
}

/*
 * A unix leg's events as libslirp may see them.  When the sidecar closes a
 * unix connection, the kernel marks both directions shut at once, so epoll
 * reports POLLHUP for good (a TCP socket shows HUP only once both FINs have
 * passed).  libslirp 4.7 treats any HUP as "readable": soread() finds EOF
 * again, and the write that would fail with EPIPE and close the socket is
 * skipped (slirp_pollfds_poll continues after soread's -1).  With guest
 * data still waiting for the socket, that repeated every loop turn: a
 * busy loop at 100% CPU (seen in bench/vm-model).  libslirp asks for HUP
 * only together with IN, and a peer's close always makes a unix socket
 * readable, so HUP without IN means libslirp did not ask to read: drop it,
 * and its write meets EPIPE and ends the connection.
 */
int bridge_unix_revents(bool unix_sock, int revents)
{
	if (unix_sock && (revents & SLIRP_POLL_HUP) && !(revents & SLIRP_POLL_IN))
		return revents & ~SLIRP_POLL_HUP;
	return revents;
}

static int bridge_fd_events(int fd, int revents, void *tag, void *opaque)
{
	struct bridge *br = opaque;
	struct flow *f = tag;

	(void)fd;
	if (tag == &br->icmp_tag || flow_inbound_is_dup_tag(br, tag) ||
	    flow_inbound_is_held_tag(br, tag))
		return revents;
	/* libslirp will write what it holds now, and reopen its window: say so after the poll. */
	if (f->stack_win_closed && (revents & SLIRP_POLL_OUT) && !f->win_probe_queued &&
	    br->nwin_probe < BRIDGE_WIN_PROBE_MAX) {
		f->win_probe_queued = true;
		br->win_probe[br->nwin_probe++] = f->slot;
	}
	return bridge_ops(f)->fd_events(br, f, revents);
}

/*
 * libslirp sends no window update of its own once its window to the guest
 * has closed (slirp quirk no_window_update): the guest would wait for its
 * persist timer, 200 ms and doubling, before it probes and learns that the
 * socket drained.  So, after the poll in which the socket took libslirp's
 * data, the bridge probes for it: a bare ACK as from the guest, one byte
 * below what libslirp acknowledged, with the guest's own ACK and window.
 * An old sequence number is answered with an ACK (RFC 9293, 3.10.7.4),
 * which carries libslirp's window and goes to the guest like any frame of
 * the flow.  The probe's ACK and window repeat the guest's, so libslirp's
 * send side sees nothing new.  Call only outside libslirp's callbacks.
 */
static void bridge_probe_stack(struct bridge *br, const struct flow *f)
{
	uint8_t frame[RW_ETH_HLEN + 40];
	struct rw_tuple t = bridge_tuple(&f->skey, BRIDGE_OUTWARD);
	size_t len = rw_build_tcp(frame, f->gw_mac, f->guest_mac, &t, f->stack_ack - 1,
				  f->guest_ack, RW_TCP_ACK, f->guest_win);

	netstack_inject_from_guest(br->ns, frame, len);
}

static void bridge_send_window_probes(struct bridge *br)
{
	for (size_t i = 0; i < br->nwin_probe; i++) {
		struct flow *f = flowtab_get(br->flows, br->win_probe[i]);

		/* A slot reused since it was queued holds a flow with no probe queued. */
		if (!f || !f->win_probe_queued)
			continue;
		f->win_probe_queued = false;
		if (!f->stack_win_closed || f->fd < 0 || f->state != FLOW_OPEN ||
		    f->gkey.proto != IPPROTO_TCP)
			continue;
		br->stats.window_probes++;
		bridge_probe_stack(br, f);
	}
	br->nwin_probe = 0;
}

/*
 * The same probe, to draw libslirp's ACK for a flow with
 * FLOW_REASS_PROBE_AT guest segments past its last one
 * (bridge_guest_reass_refused()): an old sequence number is answered at
 * once with what libslirp has taken, whatever its delayed-ACK timer says.
 * Only for a flow both handshakes have opened; a slot reused meanwhile
 * gets a probe it answers just the same.  Call only outside libslirp's
 * callbacks.
 */
static void bridge_send_ack_probe(struct bridge *br)
{
	struct flow *f = flowtab_get(br->flows, br->ack_probe_slot);

	br->ack_probe_slot = UINT32_MAX;
	if (!f || f->fd < 0 || f->state != FLOW_OPEN || f->gkey.proto != IPPROTO_TCP ||
	    !f->stack_ack_seen || !f->guest_acked || !f->macs_known)
		return;
	br->stats.ack_probes++;
	bridge_probe_stack(br, f);
}

/*
 * End a TCP flow at both ends with resets (idle or handshake timeout, or the
 * guest reopening its tuple, when @reset_guest is false).  Callers are on a
 * timer or in the guest-frame hook before slirp_input(), never inside a
 * libslirp callback, so libslirp may be handed a frame.  libslirp gets a RST
 * as from the guest at what it last acknowledged (before its first ACK, the
 * guest's next sequence number): libslirp 4.7 takes a RST anywhere left of
 * its window's right edge (it has no RFC 5961 check), and its ACK is never
 * past its next expected byte, where the guest's own next sequence number
 * may be past its window (a segment libslirp dropped).  It drops the
 * connection and closes its socket, which SO_LINGER 0 turns into a reset
 * for the far end.  The guest gets a RST as from its peer at libslirp's
 * next sequence number; should a segment of libslirp's be in flight, the
 * RST falls outside the guest's window and RFC 5961 makes it answer with a
 * challenge ACK, which reaches libslirp through the flow (CLOSED for its
 * grace) and, libslirp's connection gone, is answered with an exact reset
 * (or by bridge_tcp_no_flow() once the flow is gone): the flow still ends.
 */
void bridge_abort_flow(struct bridge *br, struct flow *f, bool reset_guest)
{
	if (f->fd >= 0)
		bridge_reset_on_close(f->fd);
	bridge_inject_guest_rst(br, f, f->stack_ack_seen ? f->stack_ack : f->guest_nxt,
				f->stack_nxt);
	if (reset_guest)
		bridge_reset_guest(br, f->guest_mac, f->gw_mac, &f->gkey, f->stack_nxt, f->guest_nxt);
	/* libslirp's close may already have moved it to CLOSED through bridge_fd_closed. */
	if (f->state != FLOW_CLOSED)
		flowtab_set_state(br->flows, f, FLOW_CLOSED);
	flowtab_set_deadline(br->flows, f, g_get_monotonic_time() + BRIDGE_CLOSED_GRACE_US);
}

bool bridge_expire_flow(struct bridge *br, struct flow *f)
{
	switch (f->state) {
	case FLOW_OPEN:
		if (f->gkey.proto != IPPROTO_TCP)
			return false;
		if (f->established) {
			br->stats.idle_resets++;
			bridge_debug_flow(br, f, "idle, reset");
		} else {
			br->stats.handshake_timeouts++;
			bridge_debug_flow(br, f, "handshake not completed by the guest, reset");
		}
		bridge_abort_flow(br, f, true);
		return true;
	case FLOW_CLOSED:
	case FLOW_REJECTED:
		/*
		 * libslirp still holds the socket (a connect that failed or
		 * timed out, a rejected client it has not dropped yet): the slot
		 * stays until bridge_fd_closed(), so the table keeps bounding
		 * libslirp's sockets.  A flood that outran HAProxy's accept
		 * queue reached the descriptor limit (19,999 for a table of
		 * 16,384) before this.
		 */
		if (f->fd < 0)
			return false;
		flowtab_set_deadline(br->flows, f, g_get_monotonic_time() + BRIDGE_CLOSED_GRACE_US);
		return true;
	default:
		return false;
	}
}

/* flowtab_expire() callback: the kind decides; a flow that goes lets go of its socket first. */
static bool bridge_on_expire(struct flow *f, void *opaque)
{
	struct bridge *br = opaque;

	if (bridge_ops(f)->expire(br, f))
		return true;
	if (f->fd >= 0)
		netstack_tag_fd(br->ns, f->fd, NULL);
	if (bridge_ops(f)->forget)
		bridge_ops(f)->forget(br, f);
	return false;
}

static gboolean bridge_expire_tick(gpointer data)
{
	struct bridge *br = data;

	flowtab_expire(br->flows, g_get_monotonic_time(), bridge_on_expire, br);
	return G_SOURCE_CONTINUE;
}

/* After libslirp's poll, outside its callbacks: remove refused duplicates it accepted. */
static void bridge_poll_done(void *opaque)
{
	struct bridge *br = opaque;

	if (br->in.ndups)
		flow_inbound_dups_kill(br);
	if (br->cut_slot != UINT32_MAX)
		bridge_cut_time_wait(br);
	if (br->nwin_probe)
		bridge_send_window_probes(br);
	if (br->ack_probe_slot != UINT32_MAX)
		bridge_send_ack_probe(br);
	if (br->norphans)
		bridge_reset_orphans(br);
}

static const struct netstack_hooks bridge_hooks = {
	.poll_done = bridge_poll_done,
	.guest_frame = bridge_guest_frame,
	.guest_frame_done = bridge_guest_frame_done,
	.stack_frame = bridge_stack_frame,
	.fd_registered = bridge_fd_registered,
	.fd_closed = bridge_fd_closed,
	.fd_events = bridge_fd_events,
};

/* libslirp reaches the pod's 127.0.0.1 through the gateway address. */
static void bridge_target(const struct policy *p, struct in_addr addr, uint16_t port,
			  uint32_t *taddr, uint16_t *tport)
{
	*taddr = (ntohl(addr.s_addr) >> 24) == 127 ? p->gateway.s_addr : addr.s_addr;
	*tport = htons(port);
}

int bridge_new(const struct bridge_config *cfg, struct netstack *ns, struct bridge **out)
{
	struct bridge *br = g_new0(struct bridge, 1);
	int ret;

	br->cfg = *cfg;
	br->ns = ns;
	br->cut_slot = UINT32_MAX;
	br->ack_probe_slot = UINT32_MAX;
	br->log_rl = (struct ratelimit)RATELIMIT_INIT(10);
	br->debug_rl = (struct ratelimit)RATELIMIT_INIT(100);
	br->unix_tmpl = (struct unixleg_templates){ .park_udp = -1, .refused_tcp = -1 };
	ret = flowtab_new(cfg->max_flows, &br->flows);
	if (ret) {
		g_free(br);
		return ret;
	}
	if (cfg->max_reass_segments)
		flowtab_set_reass_limit(br->flows, cfg->max_reass_segments);
	if (cfg->proxy_unix_path) {
		ret = unixleg_templates_open(&br->unix_tmpl);
		if (ret) {
			flowtab_free(br->flows);
			g_free(br);
			return ret;
		}
	}
	bridge_target(&cfg->policy, cfg->policy.proxy_addr, cfg->policy.proxy_port,
		      &br->steer_taddr, &br->steer_tport);
	bridge_target(&cfg->policy, cfg->policy.dns_up_addr, cfg->policy.dns_up_port,
		      &br->dns_taddr, &br->dns_tport);
	br->egress = (struct egress_rule){
		.network = cfg->policy.network.s_addr,
		.netmask = cfg->policy.netmask.s_addr,
		.gateway = cfg->policy.gateway.s_addr,
		.dns = cfg->policy.dns.s_addr,
		.allow_host_loopback = cfg->allow_host_loopback,
		.proxy_addr = cfg->policy.steer && !egress_is_loopback(cfg->policy.proxy_addr.s_addr)
				      ? cfg->policy.proxy_addr.s_addr : 0,
		.proxy_port = cfg->policy.steer ? cfg->policy.proxy_port : 0,
		.dns_up_port = cfg->policy.dns_upstream ? cfg->policy.dns_up_port : 0,
		.pod = cfg->pod_addrs,
		.deny = cfg->deny ? (const struct policy_cidr *)(const void *)cfg->deny->data : NULL,
		.n_deny = cfg->deny ? cfg->deny->len : 0,
	};
	flow_inbound_init(br);
	br->expire_timer = g_timeout_add_seconds(1, bridge_expire_tick, br);
	netstack_set_hooks(ns, &bridge_hooks, br);
	*out = br;
	return 0;
}

void bridge_free(struct bridge *br)
{
	if (!br)
		return;
	netstack_set_hooks(br->ns, NULL, NULL);
	g_source_remove(br->expire_timer);
	flow_inbound_fini(br);
	flowtab_free(br->flows);
	unixleg_templates_close(&br->unix_tmpl);
	g_free(br);
}

const struct bridge_stats *bridge_stats(const struct bridge *br)
{
	return &br->stats;
}

void bridge_foreach_flow(struct bridge *br, void (*fn)(const struct flow *flow, void *opaque),
			 void *opaque)
{
	flowtab_foreach(br->flows, fn, opaque);
}

size_t bridge_flow_count(const struct bridge *br, enum flow_state state)
{
	return flowtab_count(br->flows, state);
}

size_t bridge_udp_flow_count(const struct bridge *br)
{
	return flowtab_count_udp(br->flows);
}

uint64_t bridge_flows_reclaimed(const struct bridge *br)
{
	return flowtab_reclaimed(br->flows);
}

size_t bridge_reass_held(const struct bridge *br)
{
	return flowtab_reass_total(br->flows);
}

void bridge_direct_tcp_counts(struct bridge *br, size_t *counts)
{
	for (int i = 0; i < FLOW_STATE_COUNT; i++)
		counts[i] = flowtab_count_tcp(br->flows, FLOW_DIRECT, i); /* class = kind */
}
