/* flow_inbound.c - inbound flows: exposed-port clients delivered with the address a PROXY header names. */

/*
 * See the inbound theory of operation in bridge.h.  An inbound flow starts
 * when libslirp accepts a client on an exposed port (a hostfwd) and reports
 * its socket outside any slirp_input(): flow_inbound_registered().  Its keys
 * start equal (libslirp's view); a header naming the client rekeys the
 * guest view to it.
 *
 * State machine.  "client" is the peer libslirp accepted (the sidecar, or a
 * pod process), "stack" libslirp, "guest" the VM.
 *
 * | state    | event                                        | next     | sends                                |
 * |----------|----------------------------------------------|----------|--------------------------------------|
 * | (none)   | accepted, --inbound-proxy-protocol off       | OPEN     | libslirp's SYN passes to the guest   |
 * | (none)   | accepted, header expected                    | HDR_WAIT | - (libslirp's SYN is held back)      |
 * | (none)   | accepted on the tuple of a live flow         | (dup)    | RST to the client; flow_inbound_     |
 * |          |                                              |          | dups_kill() removes libslirp's socket|
 * | (none)   | header wait table full, untrusted peer where | REJECTED | (as REJECTED below)                  |
 * |          | required, stranger on a unix relay           |          |                                      |
 * | HDR_WAIT | valid header naming an IPv4 client           | OPEN     | the held SYN, rekeyed to the client  |
 * | HDR_WAIT | LOCAL/UNKNOWN header, or none where optional | OPEN     | the held SYN, unchanged              |
 * | HDR_WAIT | bad, missing, late, untrusted header; client | REJECTED | - now; the tick sends libslirp a RST |
 * |          | gone; the client's key is a live flow's      |          | as from the guest, its close resets  |
 * |          |                                              |          | the client (SO_LINGER 0)             |
 * | OPEN,    | a duplicate the table cannot track, before   | REJECTED | RST to the client now; no SYN on the |
 * | HDR_WAIT | libslirp sent the flow's SYN                 |          | tuple reaches the guest, and no RST  |
 * |          |                                              |          | to libslirp: abandoned, its sockets  |
 * |          |                                              |          | go at libslirp's 75 s SYN timeout    |
 * | REJECTED | libslirp's SYN, late (the guest's MAC not    | REJECTED | the tick sends libslirp a RST, once  |
 * |          | known yet) or again (the RST never went)     |          | no duplicate shares the tuple        |
 * | REJECTED | libslirp closes the socket                   | CLOSED   | -                                    |
 * | REJECTED | 30 s on, libslirp still holds the socket     | REJECTED | - (looked at again every 10 s)       |
 * | OPEN     | --tcp-idle-timeout without a frame           | CLOSED   | RST to libslirp and to the guest     |
 * | OPEN     | the guest resets                             | OPEN     | the client gets a RST, not a FIN     |
 * | OPEN     | both FINs acknowledged                       | OPEN     | RST to libslirp: drops its TIME_WAIT |
 * | OPEN     | libslirp closes the socket                   | CLOSED   | -                                    |
 * | CLOSED   | grace (10 s) over                            | (freed)  | -                                    |
 * | CLOSED   | the same client reconnects                   | (freed)  | the new connection takes the tuple   |
 *
 * Nothing of a HDR_WAIT or REJECTED flow reaches the guest: the guest sees
 * a connection only once its client is known.
 *
 * This file also owns the header-wait table (BRIDGE_HDR_WAIT_MAX slots,
 * each holding libslirp's SYN), the reset queue (rejected connections
 * whose libslirp socket must be dropped; the same bound), the refused
 * duplicates (BRIDGE_DUP_MAX) and the 20 ms tick that re-reads partial
 * headers, enforces the header timeout and works the reset queue.  The tick
 * runs only while the wait table or the queue has entries.
 *
 * A client refused with no flow at all (past --max-inbound-flows, a full
 * table, a duplicate past BRIDGE_DUP_MAX) is reset at once, and its
 * libslirp socket is tagged and counted as held until libslirp closes it,
 * which the bridge brings about at libslirp's SYN
 * (bridge_stack_orphan_syn()), where no flow has the tuple; on a live
 * flow's tuple its SYN is kept from the guest, and libslirp's 75 s SYN
 * timeout closes it.  Held
 * sockets and duplicates together reach at most BRIDGE_INBOUND_HELD_MAX
 * (or the inbound limit, if lower): at the bound libslirp's accepts are
 * held (netstack_hold_accepts()) until one goes.
 */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <glib.h>
#include <libslirp.h>

#include "common/ratelimit.h"
#include "common/seq.h"
#include "proxy-bridge/egress.h"
#include "proxy-bridge/policy.h"

#include "proxy-bridge/bridge_internal.h"
#include "proxy-bridge/proxy_proto.h"
#include "proxy-bridge/unixexpose.h"

#define FLOW_INBOUND_TICK_MS 20
/* How far past the live connection's window a duplicate's kill RST lies (see flow_inbound_dups_kill). */
#define FLOW_INBOUND_DUP_RST_OFFSET 0x40000000u

static const uint8_t flow_inbound_zero_mac[6];
/* Rejected flows that libslirp somehow keeps are forgotten after this. */
#define FLOW_INBOUND_REJECTED_GRACE_US (30 * G_USEC_PER_SEC)

static const char *const bridge_inbound_drop_names[BRIDGE_IN_DROP_COUNT] = {
	[BRIDGE_IN_INVALID] = "invalid_header",
	[BRIDGE_IN_MISSING] = "missing_header",
	[BRIDGE_IN_TIMEOUT] = "header_timeout",
	[BRIDGE_IN_FAMILY] = "unsupported_family",
	[BRIDGE_IN_ADDRESS] = "unusable_client_address",
	[BRIDGE_IN_DUPLICATE] = "duplicate_client",
	[BRIDGE_IN_CLOSED] = "closed_before_header",
	[BRIDGE_IN_OVERLOAD] = "too_many_pending",
	[BRIDGE_IN_UNTRUSTED] = "untrusted_peer",
	[BRIDGE_IN_TABLE_FULL] = "table_full",
	[BRIDGE_IN_INBOUND_FULL] = "inbound_full",
};
G_STATIC_ASSERT(G_N_ELEMENTS(bridge_inbound_drop_names) == BRIDGE_IN_DROP_COUNT);

const char *bridge_inbound_drop_str(enum bridge_inbound_drop why)
{
	return (unsigned int)why < BRIDGE_IN_DROP_COUNT ? bridge_inbound_drop_names[why]
							 : "unknown";
}

void flow_inbound_init(struct bridge *br)
{
	br->in.hdr_wait = g_new0(struct bridge_hdr_wait, BRIDGE_HDR_WAIT_MAX);
	br->in.hdr_wait_free = g_new(uint32_t, BRIDGE_HDR_WAIT_MAX);
	for (uint32_t i = 0; i < BRIDGE_HDR_WAIT_MAX; i++)
		br->in.hdr_wait_free[i] = BRIDGE_HDR_WAIT_MAX - 1 - i;
	br->in.nhdr_wait_free = BRIDGE_HDR_WAIT_MAX;
	br->in.rst_queue = g_new(uint32_t, BRIDGE_HDR_WAIT_MAX);
}

void flow_inbound_fini(struct bridge *br)
{
	if (br->in.timer)
		g_source_remove(br->in.timer);
	g_free(br->in.hdr_wait);
	g_free(br->in.hdr_wait_free);
	g_free(br->in.rst_queue);
}

static gboolean flow_inbound_tick(gpointer data);

static void flow_inbound_kick(struct bridge *br)
{
	if (!br->in.timer)
		br->in.timer = g_timeout_add(FLOW_INBOUND_TICK_MS, flow_inbound_tick, br);
}

static struct bridge_hdr_wait *flow_inbound_hdr_wait_of(struct bridge *br, struct flow *f)
{
	return f->u.in.hdr_wait_ref ? &br->in.hdr_wait[f->u.in.hdr_wait_ref - 1] : NULL;
}

static void flow_inbound_hdr_wait_release(struct bridge *br, struct flow *f)
{
	if (!f->u.in.hdr_wait_ref)
		return;
	br->in.hdr_wait[f->u.in.hdr_wait_ref - 1].flow = NULL;
	br->in.hdr_wait_free[br->in.nhdr_wait_free++] = f->u.in.hdr_wait_ref - 1;
	f->u.in.hdr_wait_ref = 0;
	if (!f->u.in.peer_trusted)
		br->in.nhdr_wait_untrusted--;
	if (f->fd >= 0)
		netstack_fd_extra_events(br->ns, f->fd, 0);
}

/* Whether @dup is a live duplicate on libslirp's tuple @skey. */
static bool flow_inbound_dup_on(const struct bridge_dup *dup, const struct flow_key *skey)
{
	return dup->used && !memcmp(&dup->skey, skey, sizeof(*skey));
}

/* Whether a duplicate socket still shares libslirp's tuple @skey. */
static bool flow_inbound_tuple_shared(const struct bridge *br, const struct flow_key *skey)
{
	for (size_t i = 0; i < BRIDGE_DUP_MAX && br->in.ndups; i++) {
		if (flow_inbound_dup_on(&br->in.dups[i], skey))
			return true;
	}
	return false;
}

/* Host port -> guest port of an exposed port, 0 if @port is not exposed. */
static uint16_t flow_inbound_guest_port(const struct bridge *br, uint16_t host_port)
{
	for (guint i = 0; br->cfg.expose && i < br->cfg.expose->len; i++) {
		const struct bridge_expose *e = &g_array_index(br->cfg.expose, struct bridge_expose, i);

		if (e->host_port == host_port)
			return e->guest_port;
	}
	return 0;
}

/* Send the held SYN to the guest, in the flow's current guest view. */
static void flow_inbound_release_syn(struct bridge *br, struct flow *f)
{
	struct bridge_hdr_wait *p = flow_inbound_hdr_wait_of(br, f);
	struct rw_view v;

	if (!p || !p->syn_len)
		return;
	rw_parse(p->syn, p->syn_len, &v);
	if (v.kind == RW_TRANSPORT) {
		bridge_to_guest(br, &v, f);
		netstack_send_to_guest(br->ns, p->syn, p->syn_len);
	}
	p->syn_len = 0;
}

/* The guest may now see the connection: release the SYN, stop waiting. */
static void flow_inbound_open(struct bridge *br, struct flow *f)
{
	flowtab_set_state(br->flows, f, FLOW_OPEN);
	bridge_arm_idle(br, f);
	bridge_debug_flow(br, f, "open");
	flow_inbound_release_syn(br, f);
	flow_inbound_hdr_wait_release(br, f);
}

/* One rate-limited line naming the real client, the exposed port and the reason. */
static void flow_inbound_log(struct bridge *br, struct flow *f, enum bridge_inbound_drop why,
			       enum proxy_error err)
{
	struct sockaddr_storage peer = { 0 }, local = { 0 };
	socklen_t plen = sizeof(peer), llen = sizeof(local);
	const struct sockaddr_in *peer4 = (const void *)&peer, *local4 = (const void *)&local;
	char from[32], to[32];
	uint64_t suppressed;

	if (!ratelimit_allow(&br->log_rl, g_get_monotonic_time(), &suppressed))
		return;
	if (f->fd >= 0) {
		getpeername(f->fd, (struct sockaddr *)&peer, &plen);
		getsockname(f->fd, (struct sockaddr *)&local, &llen);
	}
	/* A unix exposed port's client: its socket is AF_UNIX, with no address to show. */
	if (local.ss_family == AF_UNIX) {
		g_strlcpy(from, "a unix socket client", sizeof(from));
		g_strlcpy(to, "a unix exposed port", sizeof(to));
	} else {
		bridge_fmt(from, sizeof(from), peer4->sin_addr.s_addr, peer4->sin_port);
		g_snprintf(to, sizeof(to), "port %u", ntohs(local4->sin_port));
	}
	g_warning("inbound connection from %s to %s (guest port %u) refused: %s%s%s%s",
		  from, to, ntohs(f->skey.lport), bridge_inbound_drop_str(why),
		  why == BRIDGE_IN_INVALID ? " (" : "",
		  why == BRIDGE_IN_INVALID ? proxy_error_str(err) : "",
		  why == BRIDGE_IN_INVALID ? ")" : "");
	if (suppressed)
		g_warning("(%" G_GUINT64_FORMAT " earlier messages suppressed)", suppressed);
}

/*
 * libslirp must drop a rejected flow's socket, but we may be inside one of
 * its callbacks: queue the flow for the tick, which resets it in libslirp
 * (acknowledging libslirp's SYN).  Queued once libslirp's SYN is known: at
 * the rejection if it came before, else when flow_inbound_hold_frame() sees
 * it (a flow rejected inside tcp_connect(), or while libslirp waits for the
 * guest's MAC).  A full queue is made good by the SYN libslirp retransmits.
 * The guest sees nothing either way.
 */
static void flow_inbound_queue_rst(struct bridge *br, struct flow *f)
{
	if (br->in.rst_len == BRIDGE_HDR_WAIT_MAX)
		return;
	br->in.rst_queue[(br->in.rst_head + br->in.rst_len++) % BRIDGE_HDR_WAIT_MAX] = f->slot;
	flow_inbound_kick(br);
}

static void flow_inbound_reject(struct bridge *br, struct flow *f, enum bridge_inbound_drop why,
				  enum proxy_error err)
{
	br->stats.inbound_dropped[why]++;
	if (why == BRIDGE_IN_INVALID)
		br->stats.header_errors[err]++;
	flow_inbound_log(br, f, why, err);
	/* The client gets a reset when libslirp closes the socket. */
	if (f->fd >= 0)
		bridge_reset_on_close(f->fd);
	flowtab_set_state(br->flows, f, FLOW_REJECTED);
	flowtab_set_deadline(br->flows, f, g_get_monotonic_time() + FLOW_INBOUND_REJECTED_GRACE_US);
	flow_inbound_hdr_wait_release(br, f);
	if (f->u.in.stack_isn_known)
		flow_inbound_queue_rst(br, f);
}

/*
 * The guest view @gkey is wanted by a new connection (@self, or NULL while
 * it has no flow yet).  A flow that holds it but is over (closed, its socket
 * gone from libslirp) only waits for late segments: a client reconnecting
 * from the same address and port is a new connection, so the old flow goes.
 * Returns false if a live connection holds the key.
 */
static bool flow_inbound_take_guest_key(struct bridge *br, const struct flow_key *gkey,
					  const struct flow *self)
{
	struct flow *old = flowtab_lookup_guest(br->flows, gkey);

	if (!old || old == self)
		return true;
	if (old->fd >= 0 || (old->state != FLOW_CLOSED && old->state != FLOW_REJECTED))
		return false;
	br->stats.inbound_reopened++;
	bridge_debug_flow(br, old, "replaced by a reconnect from the same address and port");
	bridge_forget_flow(br, old);
	return true;
}

/* Apply a complete, valid header. */
static void flow_inbound_header(struct bridge *br, struct flow *f, const struct proxy_header *h)
{
	const struct sockaddr_in *src = (const struct sockaddr_in *)&h->src;
	struct flow_key gkey;
	uint32_t a;

	br->stats.inbound_headers[h->version]++;
	if (h->local || h->family == AF_UNSPEC) {
		br->stats.inbound_real_peer++;
		flow_inbound_open(br, f);
		return;
	}
	/* A UDP (or unspecified) transport does not describe this TCP client. */
	if (h->family != AF_INET || h->transport != SOCK_STREAM) {
		flow_inbound_reject(br, f, BRIDGE_IN_FAMILY, PROXY_ERR_NONE);
		return;
	}
	/* The guest must be able to address its replies to the client. */
	a = ntohl(src->sin_addr.s_addr);
	if ((a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) >= 0xe ||
	    src->sin_addr.s_addr == br->cfg.guest.s_addr || !src->sin_port) {
		flow_inbound_reject(br, f, BRIDGE_IN_ADDRESS, PROXY_ERR_NONE);
		return;
	}
	gkey = flow_key_make(IPPROTO_TCP, f->skey.laddr, f->skey.lport, src->sin_addr.s_addr,
			     src->sin_port);
	if (!flow_inbound_take_guest_key(br, &gkey, f) ||
	    flowtab_rekey_guest(br->flows, f, &gkey)) {
		flow_inbound_reject(br, f, BRIDGE_IN_DUPLICATE, PROXY_ERR_NONE);
		return;
	}
	flow_inbound_open(br, f);
}

/*
 * Look at what the client sent so far and decide if possible.  Peeking
 * first means only the header is consumed: the payload stays in the socket
 * for libslirp to read once the guest has accepted.
 */
static void flow_inbound_try(struct bridge *br, struct flow *f)
{
	struct bridge_hdr_wait *p = flow_inbound_hdr_wait_of(br, f);
	uint8_t buf[PROXY_PARSE_MAX];
	struct proxy_header h;
	enum proxy_error err;
	int avail;
	ssize_t n;

	if (!p || f->state != FLOW_HDR_WAIT)
		return;
	/*
	 * On the tick, peek again only once more bytes came: a peek copies up
	 * to PROXY_PARSE_MAX (8 KiB), and a thousand clients trickling headers
	 * would have it copied 50 times a second each.
	 */
	if (p->polling && ioctl(f->fd, FIONREAD, &avail) == 0 && (size_t)avail == p->peeked)
		return;
	br->stats.header_peeks++;
	do {
		n = recv(f->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return; /* nothing yet: the extra POLLIN interest will wake us */
	if (n <= 0) {
		if (n == 0 && br->cfg.inbound_mode == BRIDGE_INBOUND_OPTIONAL) {
			/* Closed without a byte: nothing to mislabel; let it through. */
			br->stats.inbound_real_peer++;
			flow_inbound_open(br, f);
		} else {
			flow_inbound_reject(br, f, BRIDGE_IN_CLOSED, PROXY_ERR_NONE);
		}
		return;
	}

	switch (proxy_parse(buf, (size_t)n, &h, &err)) {
	case PROXY_PARSE_OK:
		if (!f->u.in.peer_trusted) {
			flow_inbound_reject(br, f, BRIDGE_IN_UNTRUSTED, PROXY_ERR_NONE);
			return;
		}
		/* Consume exactly the header; it is all there, we just saw it. */
		if (recv(f->fd, buf, h.len, MSG_DONTWAIT) != (ssize_t)h.len) {
			flow_inbound_reject(br, f, BRIDGE_IN_CLOSED, PROXY_ERR_NONE);
			return;
		}
		flow_inbound_header(br, f, &h);
		return;
	case PROXY_PARSE_INCOMPLETE:
		/*
		 * A stranger's header is refused whatever follows, so once its
		 * signature is in, stop: it could otherwise trickle a byte a
		 * tick into an 8 KiB declared length, each tick a fresh peek of
		 * all of it, for the whole header timeout.
		 */
		if (!f->u.in.peer_trusted && proxy_signature_seen(buf, (size_t)n)) {
			flow_inbound_reject(br, f, BRIDGE_IN_UNTRUSTED, PROXY_ERR_NONE);
			return;
		}
		/*
		 * Bytes are waiting but not enough: level-triggered POLLIN
		 * would fire at once again, so re-read on the tick instead.
		 */
		p->peeked = (size_t)n;
		if (!p->polling) {
			p->polling = true;
			netstack_fd_extra_events(br->ns, f->fd, 0);
		}
		return;
	case PROXY_PARSE_NOT_PROXY:
		if (br->cfg.inbound_mode == BRIDGE_INBOUND_REQUIRED) {
			flow_inbound_reject(br, f, BRIDGE_IN_MISSING, PROXY_ERR_NONE);
			return;
		}
		br->stats.inbound_real_peer++;
		flow_inbound_open(br, f);
		return;
	case PROXY_PARSE_INVALID:
	default:
		flow_inbound_reject(br, f, f->u.in.peer_trusted ? BRIDGE_IN_INVALID : BRIDGE_IN_UNTRUSTED,
				      err);
		return;
	}
}

/*
 * Tell libslirp the guest refused: a RST|ACK acknowledging libslirp's SYN,
 * as if from the guest.  libslirp drops the socket (tcp_drop), closing it
 * with the SO_LINGER 0 set at rejection: the client sees a reset.
 */
static void flow_inbound_send_rst(struct bridge *br, struct flow *f)
{
	bridge_inject_guest_rst(br, f, 0, f->u.in.stack_isn + 1);
}

static gboolean flow_inbound_tick(gpointer data)
{
	struct bridge *br = data;
	int64_t now = g_get_monotonic_time();
	size_t n;

	for (size_t i = 0; i < BRIDGE_HDR_WAIT_MAX && br->in.nhdr_wait_free < BRIDGE_HDR_WAIT_MAX; i++) {
		struct bridge_hdr_wait *p = &br->in.hdr_wait[i];
		struct flow *f = p->flow;

		if (!f)
			continue;
		/*
		 * Past the deadline, read once more before giving up: after the
		 * loop was busy, this tick may run before the socket's own
		 * event, with the header already there.
		 */
		if (p->polling || now >= p->header_deadline_us)
			flow_inbound_try(br, f);
		if (f->state == FLOW_HDR_WAIT && now >= p->header_deadline_us)
			flow_inbound_reject(br, f, BRIDGE_IN_TIMEOUT, PROXY_ERR_NONE);
	}

	/* Outside any libslirp callback here: safe to hand it frames. */
	for (n = br->in.rst_len; n; n--) {
		struct flow *f = flowtab_get(br->flows, br->in.rst_queue[br->in.rst_head]);

		br->in.rst_head = (br->in.rst_head + 1) % BRIDGE_HDR_WAIT_MAX;
		br->in.rst_len--;
		/*
		 * The slot may have been reused by now, or the flow queued again
		 * by a retransmitted SYN: only a rejected flow whose socket
		 * libslirp still holds is reset.
		 */
		if (!f || f->state != FLOW_REJECTED || f->kind != FLOW_INBOUND || f->fd < 0 ||
		    !f->u.in.stack_isn_known)
			continue;
		/*
		 * While a duplicate shares the tuple, libslirp may hand the reset
		 * to it, which drops it: wait for flow_inbound_dups_kill() to
		 * remove it (back in the queue, whose length stays as it was).
		 */
		if (flow_inbound_tuple_shared(br, &f->skey)) {
			flow_inbound_queue_rst(br, f);
			continue;
		}
		flow_inbound_send_rst(br, f);
	}

	if (br->in.nhdr_wait_free == BRIDGE_HDR_WAIT_MAX && !br->in.rst_len) {
		br->in.timer = 0;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

/* May @peer (network order) send a PROXY header: --inbound-proxy-trusted. */
static bool flow_inbound_trusted(const struct bridge *br, uint32_t peer)
{
	const GArray *list = br->cfg.inbound_trusted;

	if (br->cfg.inbound_trust_pod && br->cfg.pod_addrs &&
	    addrset_contains(br->cfg.pod_addrs, peer))
		return true;
	for (guint i = 0; list && i < list->len; i++) {
		if (policy_cidr_match(&g_array_index(list, struct policy_cidr, i), peer))
			return true;
	}
	return false;
}

/* Exposed-port connections of class @cls holding slots: waiting for a header, open, or rejected. */
static size_t flow_inbound_holding(const struct bridge *br, unsigned int cls)
{
	return flowtab_count_tcp(br->flows, cls, FLOW_HDR_WAIT) +
	       flowtab_count_tcp(br->flows, cls, FLOW_OPEN) +
	       flowtab_count_tcp(br->flows, cls, FLOW_REJECTED);
}

/*
 * Whether a new exposed-port connection from a peer @trusted or not must be
 * refused: --max-inbound-flows of them hold slots (waiting for a header,
 * open, or rejected with libslirp's socket still there), so a client that
 * keeps connections open cannot take the slots the guest's own flows (DNS,
 * UDP, direct TCP) need; or, where headers are optional, the peer is a
 * stranger and strangers hold half of that already, so that one remote host
 * keeping connections open cannot lock the sidecar out, as with the header
 * wait's slots.  Closed flows do not count: a full table reclaims them.
 */
static bool flow_inbound_at_limit(const struct bridge *br, bool trusted)
{
	size_t limit = bridge_inbound_limit(&br->cfg);
	size_t strangers = flow_inbound_holding(br, FLOW_CLASS_STRANGER);

	if (flow_inbound_holding(br, FLOW_INBOUND) + strangers >= limit)
		return true;
	return !trusted && br->cfg.inbound_mode == BRIDGE_INBOUND_OPTIONAL &&
	       strangers >= MAX(limit / 2, 1);
}

size_t bridge_inbound_limit(const struct bridge_config *cfg)
{
	if (!cfg->max_inbound_flows)
		return MAX(cfg->max_flows / 2, 1);
	/* One at or above the table is never reached: the table's own bound refuses first. */
	return cfg->max_inbound_flows;
}

/*
 * libslirp takes no more clients while the sockets of refused clients and
 * duplicates it holds are at their bound (see bridge.h): those go only
 * once the guest's side lets the bridge reset them, and each is a
 * descriptor, kept up to 75 s.
 */
static void flow_inbound_update_hold(struct bridge *br)
{
	size_t max = MIN(BRIDGE_INBOUND_HELD_MAX, bridge_inbound_limit(&br->cfg));
	bool held;

	br->stats.inbound_held = br->in.nheld + br->in.ndups;
	held = br->stats.inbound_held >= max;
	netstack_hold_accepts(br->ns, held);
	if (br->cfg.unix_expose)
		unixexpose_hold(br->cfg.unix_expose, held);
}

/* libslirp's socket @fd of a client refused without a flow: counted until libslirp closes it. */
static void flow_inbound_hold_socket(struct bridge *br, int fd)
{
	br->in.nheld++;
	netstack_tag_fd(br->ns, fd, &br->in.held_tag);
	flow_inbound_update_hold(br);
}

/*
 * A client refused before it had a flow, for @why: reset now.  libslirp's
 * socket stays until the bridge resets it at libslirp's SYN
 * (bridge_stack_orphan_syn()).
 */
static void flow_inbound_refuse_unflowed(struct bridge *br, int fd, enum bridge_inbound_drop why)
{
	br->stats.inbound_dropped[why]++;
	bridge_reset_peer_now(fd);
	flow_inbound_hold_socket(br, fd);
}

bool flow_inbound_is_held_tag(const struct bridge *br, const void *tag)
{
	return tag == &br->in.held_tag;
}

void flow_inbound_held_closed(struct bridge *br)
{
	br->in.nheld--;
	flow_inbound_update_hold(br);
}

/*
 * A new flow from flowtab_add() becomes inbound, on libslirp's socket @fd,
 * classed by whether its peer is @trusted (strangers hold a share of their own).
 */
static void flow_inbound_init_flow(struct bridge *br, struct flow *f, int fd, bool trusted)
{
	f->kind = FLOW_INBOUND;
	flowtab_set_class(br->flows, f, trusted ? FLOW_INBOUND : FLOW_CLASS_STRANGER);
	f->u.in.peer_trusted = trusted;
	f->fd = fd;
	netstack_tag_fd(br->ns, fd, f);
}

/*
 * A duplicate came before libslirp sent @f's SYN, and the duplicate table
 * is full: flow_inbound_first_syns() counts the tracked sockets only, so
 * @f's SYN can no longer be told from the untracked one's, and the guest
 * could be handed a connection whose client was reset.  @f is refused
 * too: its client is reset now, every SYN on the tuple is kept from the
 * guest, and libslirp's sockets there go at its 75 s SYN timeout (held
 * meanwhile, as all refused sockets are).
 */
static void flow_inbound_abandon(struct bridge *br, struct flow *f)
{
	f->u.in.abandoned = true;
	bridge_log_flow(br, &f->skey, "refused: more duplicates of this client's address and port "
			"than can be told apart before the guest answers");
	if (f->state == FLOW_OPEN || f->state == FLOW_HDR_WAIT)
		flow_inbound_reject(br, f, BRIDGE_IN_DUPLICATE, PROXY_ERR_NONE);
	if (f->fd >= 0)
		bridge_reset_peer_now(f->fd);
}

/*
 * libslirp accepted a second socket on the tuple of a live connection.  It
 * cannot tell them apart, so the newcomer must leave libslirp before any
 * guest segment is looked up: remember it (its SYN is kept from the guest
 * by flow_inbound_foreign_syn(), which also learns its sequence number),
 * and flow_inbound_dups_kill() removes it.  Its client gets a reset when libslirp
 * closes the socket (SO_LINGER 0).
 */
static void flow_inbound_refuse_duplicate(struct bridge *br, int fd, const struct flow_key *skey,
					    struct flow *live)
{
	bool early = live->kind == FLOW_INBOUND && !live->u.in.stack_isn_known;
	struct bridge_dup *dup = NULL;

	br->stats.inbound_duplicates++;
	br->stats.inbound_dropped[BRIDGE_IN_DUPLICATE]++;
	bridge_reset_peer_now(fd);
	for (size_t i = 0; i < BRIDGE_DUP_MAX && !dup; i++) {
		if (!br->in.dups[i].used)
			dup = &br->in.dups[i];
	}
	if (!dup) {
		/*
		 * More than BRIDGE_DUP_MAX at once (the guest's MAC not known
		 * yet): libslirp's own SYN timeout (75 s) drops the socket,
		 * held meanwhile.  Its SYNs still never reach the guest.
		 */
		flow_inbound_hold_socket(br, fd);
		if (early && !live->u.in.abandoned)
			flow_inbound_abandon(br, live);
		return;
	}
	*dup = (struct bridge_dup){
		.used = true, .fd = fd, .skey = *skey, .live_guest_nxt = live->guest_nxt,
		.serial = br->in.dup_serial++, .early = early,
	};
	br->in.ndups++;
	netstack_tag_fd(br->ns, fd, dup);
	flow_inbound_update_hold(br);
}

/*
 * The guest-view key of a new inbound connection is taken by a live one
 * whose libslirp tuple differs (a sidecar header named this client): the
 * new connection gets a flow under its stack key only, and is rejected
 * like a bad header, so its SYN never reaches the guest.  @trusted is the
 * peer's trust, which sets its class: a stranger's counts against the
 * strangers' half.
 */
static void flow_inbound_refuse_taken(struct bridge *br, int fd, const struct flow_key *key,
				      bool trusted)
{
	struct flow *f;

	if (flow_inbound_at_limit(br, trusted)) {
		flow_inbound_refuse_unflowed(br, fd, BRIDGE_IN_INBOUND_FULL);
		return;
	}
	if (flowtab_add(br->flows, key, key->raddr, key->rport,
			FLOWTAB_KEEP_PORT | FLOWTAB_STACK_ONLY, FLOW_HDR_WAIT, &f)) {
		flow_inbound_refuse_unflowed(br, fd, BRIDGE_IN_TABLE_FULL);
		return;
	}
	flow_inbound_init_flow(br, f, fd, trusted);
	flow_inbound_reject(br, f, BRIDGE_IN_DUPLICATE, PROXY_ERR_NONE);
}

void flow_inbound_registered(struct bridge *br, int fd)
{
	struct sockaddr_in local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);
	uint16_t guest_port;
	uint32_t raddr;
	struct flow_key key;
	struct flow *f, *old;
	int type = 0;
	socklen_t tlen = sizeof(type);
	enum unixexpose_verdict unix_verdict = UNIXEXPOSE_NOT_OURS;
	bool trusted;

	/*
	 * An accepted client: a connected TCP socket on an exposed port.
	 * libslirp's own outbound sockets are registered before connect()
	 * and have no peer yet; its UDP sockets are not SOCK_STREAM.
	 */
	if (!br->cfg.expose || !br->cfg.expose->len)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM ||
	    getsockname(fd, (struct sockaddr *)&local, &llen) < 0 || local.sin_family != AF_INET ||
	    getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		return;
	guest_port = flow_inbound_guest_port(br, ntohs(local.sin_port));
	if (!guest_port)
		return;
	/*
	 * A unix exposed port's relay: the client's unix socket goes on @fd
	 * now, before anyone reads it.  The addresses above stay those of the
	 * internal TCP connection, which is what libslirp shows the guest.
	 */
	if (br->cfg.unix_expose)
		unix_verdict = unixexpose_adopt(br->cfg.unix_expose, fd, ntohs(local.sin_port),
						ntohs(peer.sin_port));

	br->stats.inbound_flows++;
	/* A loopback client shows as the gateway (slirp quirk loopback_client_as_gateway). */
	raddr = egress_is_loopback(peer.sin_addr.s_addr) ? br->cfg.policy.gateway.s_addr
							 : peer.sin_addr.s_addr;
	key = flow_key_make(IPPROTO_TCP, br->cfg.guest.s_addr, htons(guest_port), raddr,
			    peer.sin_port);

	/*
	 * The same tuple in libslirp's view: a closed flow's (the client
	 * reconnects from the same address and port) is simply replaced; a
	 * live one's means libslirp now holds two sockets it cannot tell
	 * apart, and the newcomer is refused.
	 */
	old = flowtab_lookup_stack(br->flows, &key);
	if (old && (old->fd >= 0 || (old->state != FLOW_CLOSED && old->state != FLOW_REJECTED))) {
		bridge_log_flow(br, &key, "refused: libslirp already has a connection with this "
				"address and port (two loopback clients, or two exposed ports of one "
				"guest port)");
		flow_inbound_refuse_duplicate(br, fd, &key, old);
		return;
	}
	/*
	 * The live connection went, but a duplicate's socket is still in
	 * libslirp: the tuple stays taken until it goes, or libslirp would
	 * hold two sockets again, the newcomer's not even the oldest.
	 */
	if (flow_inbound_tuple_shared(br, &key)) {
		bridge_log_flow(br, &key, "refused: libslirp still holds a refused duplicate with "
				"this address and port");
		flow_inbound_refuse_unflowed(br, fd, BRIDGE_IN_DUPLICATE);
		return;
	}
	if (old) {
		br->stats.inbound_reopened++;
		bridge_forget_flow(br, old);
	}
	/*
	 * A unix client is trusted as a header sender: the socket file's
	 * owner, group and mode (0660), not an address, decide who reaches it,
	 * and the pod's own processes are already trusted as loopback peers.
	 * A stranger on the relay port came round the unix socket: refused.
	 */
	if (unix_verdict == UNIXEXPOSE_ADOPTED)
		trusted = true;
	else if (unix_verdict == UNIXEXPOSE_STRANGER)
		trusted = false;
	else
		trusted = flow_inbound_trusted(br, peer.sin_addr.s_addr);
	if (!flow_inbound_take_guest_key(br, &key, NULL)) {
		flow_inbound_refuse_taken(br, fd, &key, trusted);
		return;
	}

	if (flow_inbound_at_limit(br, trusted)) {
		flow_inbound_refuse_unflowed(br, fd, BRIDGE_IN_INBOUND_FULL);
		return;
	}
	if (flowtab_add(br->flows, &key, raddr, peer.sin_port, FLOWTAB_KEEP_PORT,
			br->cfg.inbound_mode == BRIDGE_INBOUND_OFF &&
			unix_verdict != UNIXEXPOSE_STRANGER ? FLOW_OPEN : FLOW_HDR_WAIT,
			&f)) {
		/*
		 * No slot: refused, whatever the inbound mode.  A connection
		 * without a flow would get neither the client's label nor the
		 * bridge's guards on the guest's segments (sequence 0, out of
		 * order, SYNs), which only a flow can hold state for.
		 */
		flow_inbound_refuse_unflowed(br, fd, BRIDGE_IN_TABLE_FULL);
		return;
	}
	flow_inbound_init_flow(br, f, fd, trusted);
	f->u.in.unix_client = unix_verdict == UNIXEXPOSE_ADOPTED;
	if (unix_verdict == UNIXEXPOSE_STRANGER) {
		flow_inbound_reject(br, f, BRIDGE_IN_UNTRUSTED, PROXY_ERR_NONE);
		return;
	}
	if (br->cfg.inbound_mode == BRIDGE_INBOUND_OFF) {
		bridge_arm_idle(br, f);
		return;
	}
	/* Only a header makes this connection welcome, and this peer's would not be believed. */
	if (br->cfg.inbound_mode == BRIDGE_INBOUND_REQUIRED && !f->u.in.peer_trusted) {
		flow_inbound_reject(br, f, BRIDGE_IN_UNTRUSTED, PROXY_ERR_NONE);
		return;
	}

	/*
	 * An untrusted peer waits only where headers are optional, to be told
	 * from one that sends a header it may not: half the table at most, so
	 * a flood of silent strangers leaves the sidecar room.
	 */
	if (!br->in.nhdr_wait_free ||
	    (!f->u.in.peer_trusted && br->in.nhdr_wait_untrusted >= BRIDGE_HDR_WAIT_UNTRUSTED_MAX)) {
		flow_inbound_reject(br, f, BRIDGE_IN_OVERLOAD, PROXY_ERR_NONE);
		return;
	}
	if (!f->u.in.peer_trusted)
		br->in.nhdr_wait_untrusted++;
	f->u.in.hdr_wait_ref = br->in.hdr_wait_free[--br->in.nhdr_wait_free] + 1;
	br->in.hdr_wait[f->u.in.hdr_wait_ref - 1] = (struct bridge_hdr_wait){
		.flow = f,
		.header_deadline_us = g_get_monotonic_time() + br->cfg.header_timeout_us,
	};
	flow_inbound_kick(br);
	netstack_fd_extra_events(br->ns, fd, SLIRP_POLL_IN);
	/*
	 * The header usually arrived with the connection.  We are inside
	 * libslirp's tcp_connect() here and it has not sent its SYN yet: the
	 * decision below only updates our state; the SYN is held or rewritten
	 * when libslirp sends it, a moment later.
	 */
	flow_inbound_try(br, f);
}

static int flow_inbound_fd_events(struct bridge *br, struct flow *f, int revents)
{
	revents = bridge_unix_revents(f->u.in.unix_client, revents);
	if (f->state == FLOW_HDR_WAIT && (revents & (SLIRP_POLL_IN | SLIRP_POLL_HUP |
						     SLIRP_POLL_ERR)))
		flow_inbound_try(br, f);
	return revents;
}

/* The copy of the lowest SYN seen on @skey's ambiguous tuple, or NULL. */
static struct bridge_syn_low *flow_inbound_syn_low_of(struct bridge *br,
						      const struct flow_key *skey)
{
	for (size_t i = 0; i < BRIDGE_SYN_LOW_MAX; i++) {
		struct bridge_syn_low *low = &br->in.syn_low[i];

		if (low->used && !memcmp(&low->skey, skey, sizeof(*skey)))
			return low;
	}
	return NULL;
}

/*
 * Keep a copy of @v, a SYN on @skey's ambiguous tuple, if it is the lowest
 * seen there.  With BRIDGE_SYN_LOW_MAX tuples ambiguous at once (which
 * takes as many pod-local clients colliding on ports while the guest
 * boots), the next one's live SYN only waits for libslirp to send it
 * again.
 */
static void flow_inbound_keep_syn_low(struct bridge *br, const struct flow_key *skey,
				      const struct rw_view *v)
{
	struct bridge_syn_low *low = flow_inbound_syn_low_of(br, skey);
	size_t len = (size_t)(v->ip - v->eth) + v->ip_len;
	uint32_t seq = rw_tcp_seq(v);

	for (size_t i = 0; i < BRIDGE_SYN_LOW_MAX && !low; i++) {
		if (!br->in.syn_low[i].used)
			low = &br->in.syn_low[i];
	}
	if (!low || len > sizeof(low->frame) || (low->used && !seq_after(low->seq, seq)))
		return;
	low->used = true;
	low->skey = *skey;
	low->seq = seq;
	low->len = len;
	memcpy(low->frame, v->eth, len);
}

/* Forget the SYNs seen on @skey's tuple while it was ambiguous: one of its sockets went. */
static void flow_inbound_forget_candidates(struct bridge *br, const struct flow_key *skey)
{
	struct flow *f = flowtab_lookup_stack(br->flows, skey);
	struct bridge_syn_low *low = flow_inbound_syn_low_of(br, skey);

	if (f && f->kind == FLOW_INBOUND)
		f->u.in.isn_candidate_known = false;
	for (size_t i = 0; i < BRIDGE_DUP_MAX && br->in.ndups; i++) {
		if (flow_inbound_dup_on(&br->in.dups[i], skey))
			br->in.dups[i].candidate_known = false;
	}
	if (low)
		low->used = false;
}

/* @seqs ascending in sequence space (at most BRIDGE_DUP_MAX + 1 of them, all within 2^31). */
static void flow_inbound_sort_seqs(uint32_t *seqs, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		uint32_t v = seqs[i];
		size_t j = i;

		for (; j > 0 && seq_after(seqs[j - 1], v); j--)
			seqs[j] = seqs[j - 1];
		seqs[j] = v;
	}
}

/* @dups in accept order. */
static void flow_inbound_sort_dups(struct bridge_dup **dups, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct bridge_dup *v = dups[i];
		size_t j = i;

		for (; j > 0 && dups[j - 1]->serial > v->serial; j--)
			dups[j] = dups[j - 1];
		dups[j] = v;
	}
}

/*
 * The first SYN libslirp sends on @f's tuple: @f's own, unless duplicates
 * came before libslirp sent @f's (it waits for the guest's MAC, as at
 * boot).  Then it sends the SYNs of all the tuple's sockets in an order
 * that need not be theirs, and the first one seen need not be @f's.
 * Their sequence numbers tell them apart: libslirp draws each
 * connection's ISN from a counter that only grows (tcp_iss), so @f's
 * socket, accepted first, has the lowest.  So every SYN on the tuple is
 * kept from the guest until one of each socket has been seen (libslirp
 * sends each again, seconds apart); then the lowest is @f's, and passes
 * when it comes, and the rest are the duplicates', in their accept order,
 * to be removed.  A socket that goes meanwhile starts the count again
 * (flow_inbound_dup_closed()).  This assumes @f's socket is the oldest on
 * the tuple, and every duplicate tracked (at most BRIDGE_DUP_MAX in all;
 * past that, flow_inbound_abandon()).
 *
 * @f's SYN, once told apart, need not wait to come again: the lowest SYN
 * seen is kept (flow_inbound_keep_syn_low()), and if the count ends on
 * another, *@replay is set to that copy, for the caller to send on.
 * Returns true if @v is consumed.
 */
static bool flow_inbound_first_syns(struct bridge *br, struct flow *f, const struct rw_view *v,
				    struct bridge_syn_low **replay)
{
	uint32_t seq = rw_tcp_seq(v);
	uint32_t seen[BRIDGE_DUP_MAX + 1];
	struct bridge_dup *early[BRIDGE_DUP_MAX];
	size_t nseen = 0, nearly = 0;

	if (f->u.in.abandoned) {
		br->stats.duplicate_syns++;
		return true;
	}

	for (size_t i = 0; i < BRIDGE_DUP_MAX && br->in.ndups; i++) {
		struct bridge_dup *dup = &br->in.dups[i];

		if (!flow_inbound_dup_on(dup, &f->skey) || !dup->early || dup->isn_known)
			continue;
		early[nearly++] = dup;
		if (dup->candidate_known)
			seen[nseen++] = dup->candidate;
	}
	if (!nearly) {
		f->u.in.stack_isn = seq;
		f->u.in.stack_isn_known = true;
		return false;
	}
	if (f->u.in.isn_candidate_known)
		seen[nseen++] = f->u.in.isn_candidate;
	for (size_t i = 0; i < nseen; i++) {
		if (seen[i] == seq) {
			br->stats.duplicate_syns++;
			return true; /* seen already: a retransmission */
		}
	}
	if (!f->u.in.isn_candidate_known) {
		f->u.in.isn_candidate = seq;
		f->u.in.isn_candidate_known = true;
	} else {
		for (size_t i = 0; i < nearly; i++) {
			if (!early[i]->candidate_known) {
				early[i]->candidate = seq;
				early[i]->candidate_known = true;
				break;
			}
		}
	}
	seen[nseen++] = seq;
	flow_inbound_keep_syn_low(br, &f->skey, v);
	if (nseen < nearly + 1) {
		br->stats.duplicate_syns++;
		return true;
	}

	/*
	 * In accept order, the sockets' ISNs ascend: the lowest is @f's, the
	 * next the oldest duplicate's, and so on.  Each duplicate must get its
	 * own, as the one removed is the one whose ISN its reset acknowledged.
	 */
	flow_inbound_sort_seqs(seen, nseen);
	flow_inbound_sort_dups(early, nearly);
	f->u.in.stack_isn = seen[0];
	f->u.in.stack_isn_known = true;
	f->u.in.isn_candidate_known = false;
	for (size_t i = 0; i < nearly; i++) {
		early[i]->isn = seen[i + 1];
		early[i]->isn_known = true;
		early[i]->candidate_known = false;
	}
	/* The copy is needed if @f's SYN came before this one (it is of the lowest). */
	*replay = flow_inbound_syn_low_of(br, &f->skey);
	if (*replay && (seq == seen[0] || (*replay)->seq != seen[0])) {
		(*replay)->used = false;
		*replay = NULL;
	}
	if (seq == seen[0])
		return false;
	br->stats.duplicate_syns++;
	return true;
}

/*
 * A SYN libslirp sends to the guest on @f's tuple: the flow's own (learnt
 * the first time), or one of a duplicate socket's on the same tuple, which
 * is consumed.  Returns true if consumed; *@replay as flow_inbound_first_syns().
 */
static bool flow_inbound_foreign_syn(struct bridge *br, struct flow *f, const struct rw_view *v,
				     struct bridge_syn_low **replay)
{
	uint32_t seq = rw_tcp_seq(v);

	if (!f->u.in.stack_isn_known)
		return flow_inbound_first_syns(br, f, v, replay);
	if (seq == f->u.in.stack_isn)
		return false; /* the flow's own SYN, again */
	/*
	 * libslirp never sends a second SYN with a new sequence number on one
	 * connection: this is a duplicate socket's.  The guest must not see it.
	 */
	br->stats.duplicate_syns++;
	for (size_t i = 0; i < BRIDGE_DUP_MAX; i++) {
		struct bridge_dup *dup = &br->in.dups[i];

		if (flow_inbound_dup_on(dup, &f->skey) && !dup->isn_known) {
			dup->isn = seq;
			dup->isn_known = true;
			break;
		}
	}
	return true;
}

/* A frame libslirp sends for a flow still waiting or rejected: held, or dropped. */
static enum netstack_verdict flow_inbound_hold_frame(struct bridge *br, struct rw_view *v,
						     struct flow *f)
{
	struct bridge_hdr_wait *p = flow_inbound_hdr_wait_of(br, f);

	if (rw_tcp_is_syn(v)) {
		/* libslirp's SYN to the guest: remember what a reset must acknowledge. */
		f->u.in.stack_isn = rw_tcp_seq(v);
		f->u.in.stack_isn_known = true;
		bridge_learn_macs(f, v, false);
		if (f->state == FLOW_REJECTED)
			flow_inbound_queue_rst(br, f);
		if (p && f->state == FLOW_HDR_WAIT) {
			size_t len = (size_t)(v->ip - v->eth) + v->ip_len;

			if (len <= sizeof(p->syn)) {
				memcpy(p->syn, v->eth, len);
				p->syn_len = len;
			}
		}
	}
	/* Nothing of a waiting or rejected connection reaches the guest. */
	return NETSTACK_CONSUMED;
}

/* A frame libslirp sends on @f's own connection. */
static enum netstack_verdict flow_inbound_own_frame(struct bridge *br, struct rw_view *v,
						    struct flow *f)
{
	if (f->state == FLOW_HDR_WAIT || f->state == FLOW_REJECTED)
		return flow_inbound_hold_frame(br, v, f);
	return bridge_to_guest(br, v, f);
}

/*
 * @f's SYN, kept as @low while duplicates made its tuple ambiguous and now
 * told apart: it goes on as if libslirp had just sent it (to the guest,
 * or held for a header, or answered with a reset if rejected).  @low is
 * freed.
 */
static void flow_inbound_replay_syn(struct bridge *br, struct flow *f, struct bridge_syn_low *low)
{
	uint8_t frame[BRIDGE_SYN_MAX];
	size_t len = low->len;
	struct rw_view v;

	memcpy(frame, low->frame, len);
	low->used = false;
	rw_parse(frame, len, &v);
	if (f->fd < 0 || v.kind != RW_TRANSPORT || !rw_tcp_is_syn(&v))
		return;
	br->stats.syns_replayed++;
	if (flow_inbound_own_frame(br, &v, f) == NETSTACK_PASS)
		netstack_send_to_guest(br->ns, frame, len);
}

static enum netstack_verdict flow_inbound_stack_frame(struct bridge *br, struct rw_view *v,
						      struct flow *f)
{
	struct bridge_syn_low *replay = NULL;

	if (rw_tcp_is_syn(v) && flow_inbound_foreign_syn(br, f, v, &replay)) {
		if (replay)
			flow_inbound_replay_syn(br, f, replay);
		return NETSTACK_CONSUMED;
	}
	return flow_inbound_own_frame(br, v, f);
}

static enum netstack_verdict flow_inbound_guest_frame(struct bridge *br, struct rw_view *v,
						      struct flow *f)
{
	/* A guest refusing a client: the client must see a reset, not a FIN. */
	if ((rw_tcp_flags(v) & RW_TCP_RST) && f->fd >= 0)
		bridge_reset_on_close(f->fd);
	return bridge_to_stack(br, v, f);
}

/*
 * libslirp closed the socket, or the flow goes: its header-wait slot is
 * free, and the SYNs seen on its tuple, if still being told apart, are
 * forgotten (a copy of its SYN must not go to the guest now).
 */
static void flow_inbound_release(struct bridge *br, struct flow *f)
{
	flow_inbound_hdr_wait_release(br, f);
	if (!f->u.in.stack_isn_known)
		flow_inbound_forget_candidates(br, &f->skey);
}

const struct flow_ops flow_inbound_ops = {
	.name = "inbound",
	.rewrites = true,
	.guest_frame = flow_inbound_guest_frame,
	.stack_frame = flow_inbound_stack_frame,
	.fd_events = flow_inbound_fd_events,
	.closed = flow_inbound_release,
	.expire = bridge_expire_flow,
	.forget = flow_inbound_release,
};

bool flow_inbound_is_dup_tag(const struct bridge *br, const void *tag)
{
	const char *p = tag, *lo = (const char *)br->in.dups;

	return p >= lo && p < lo + sizeof(br->in.dups);
}

void flow_inbound_dup_closed(struct bridge *br, struct bridge_dup *dup)
{
	br->stats.duplicates_removed++;
	if (dup->early && !dup->isn_known)
		flow_inbound_forget_candidates(br, &dup->skey);
	dup->used = false;
	br->in.ndups--;
	flow_inbound_update_hold(br);
}

/*
 * Remove duplicate sockets from libslirp.  Each gets a RST|ACK as if from
 * the guest that acknowledges its SYN; libslirp, in SYN_SENT, drops it
 * (tcp_drop) and closes the socket.  libslirp finds the socket for it by
 * tuple, the last socket it matched first (tcp_last_so), then the newest:
 * while that cache holds the live connection, the RST goes there instead.
 * Its sequence number lies 2^30 beyond the live connection's window, so
 * the live connection drops it unseen (libslirp's tcp_input trims a segment
 * entirely past the window before it looks at RST; in SYN_SENT it answers
 * the wrong ACK with a reset, which we swallow).  So this is repeated,
 * before every guest frame and after every poll, until libslirp reports
 * the socket closed: the cache can only move to the newcomer or to another
 * connection, and either way the next try finds the newcomer.
 *
 * Newest first: past the cache, the lookup takes a tuple's newest socket,
 * so each RST in that order finds its own, and one pass removes every
 * duplicate of a tuple.  In accept order, each but the newest's would meet
 * the newest (the wrong ACK: dropped), one removal a pass, and a guest
 * frame on the tuple between passes would meet a duplicate too.
 */
void flow_inbound_dups_kill(struct bridge *br)
{
	struct bridge_dup *kill[BRIDGE_DUP_MAX];
	size_t n = 0;

	for (size_t i = 0; i < BRIDGE_DUP_MAX; i++) {
		if (br->in.dups[i].used && br->in.dups[i].isn_known)
			kill[n++] = &br->in.dups[i];
	}
	flow_inbound_sort_dups(kill, n);
	while (n--) {
		struct bridge_dup *dup = kill[n];

		dup->attempts++;
		bridge_inject_rst_swallowed(br, &dup->skey, flow_inbound_zero_mac,
					    flow_inbound_zero_mac,
					    dup->live_guest_nxt + FLOW_INBOUND_DUP_RST_OFFSET,
					    dup->isn + 1);
	}
}
