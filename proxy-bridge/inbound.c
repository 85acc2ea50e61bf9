/* inbound.c - deliver exposed-port connections with the client address from a PROXY header. */

/*
 * See the inbound theory of operation in bridge.h.  This file owns the
 * header-wait table (connections waiting for their header: BRIDGE_HDR_WAIT_MAX
 * slots, each holding libslirp's SYN), the reset queue (rejected
 * connections whose libslirp socket must be dropped; the same bound) and the
 * 20 ms tick that re-reads partial headers, enforces the header timeout and
 * works the reset queue.  The tick runs only while either has entries.
 */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <glib.h>
#include <libslirp.h>

#include "common/ratelimit.h"
#include "proxy-bridge/egress.h"
#include "proxy-bridge/policy.h"

#include "proxy-bridge/bridge_internal.h"
#include "proxy-bridge/proxy_proto.h"
#include "proxy-bridge/unixexpose.h"

#define BRIDGE_INBOUND_TICK_MS 20
/* How far past the live connection's window a duplicate's kill RST lies (see bridge_dups_kill). */
#define BRIDGE_DUP_RST_OFFSET 0x40000000u

static const uint8_t bridge_zero_mac[6];
/* Rejected flows that libslirp somehow keeps are forgotten after this. */
#define BRIDGE_REJECTED_GRACE_US (30 * G_USEC_PER_SEC)

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
};
G_STATIC_ASSERT(G_N_ELEMENTS(bridge_inbound_drop_names) == BRIDGE_IN_DROP_COUNT);

const char *bridge_inbound_drop_str(enum bridge_inbound_drop why)
{
	return (unsigned int)why < BRIDGE_IN_DROP_COUNT ? bridge_inbound_drop_names[why]
							 : "unknown";
}

void bridge_inbound_init(struct bridge *br)
{
	br->hdr_wait = g_new0(struct bridge_hdr_wait, BRIDGE_HDR_WAIT_MAX);
	br->hdr_wait_free = g_new(uint32_t, BRIDGE_HDR_WAIT_MAX);
	for (uint32_t i = 0; i < BRIDGE_HDR_WAIT_MAX; i++)
		br->hdr_wait_free[i] = BRIDGE_HDR_WAIT_MAX - 1 - i;
	br->nhdr_wait_free = BRIDGE_HDR_WAIT_MAX;
	br->rst_queue = g_new(uint32_t, BRIDGE_HDR_WAIT_MAX);
}

void bridge_inbound_fini(struct bridge *br)
{
	if (br->inbound_timer)
		g_source_remove(br->inbound_timer);
	g_free(br->hdr_wait);
	g_free(br->hdr_wait_free);
	g_free(br->rst_queue);
}

static gboolean bridge_inbound_tick(gpointer data);

static void bridge_inbound_kick(struct bridge *br)
{
	if (!br->inbound_timer)
		br->inbound_timer = g_timeout_add(BRIDGE_INBOUND_TICK_MS, bridge_inbound_tick, br);
}

static struct bridge_hdr_wait *bridge_hdr_wait_of(struct bridge *br, struct flow *f)
{
	return f->hdr_wait_slot >= 0 ? &br->hdr_wait[f->hdr_wait_slot] : NULL;
}

static void bridge_hdr_wait_release(struct bridge *br, struct flow *f)
{
	if (f->hdr_wait_slot < 0)
		return;
	br->hdr_wait[f->hdr_wait_slot].flow = NULL;
	br->hdr_wait_free[br->nhdr_wait_free++] = (uint32_t)f->hdr_wait_slot;
	f->hdr_wait_slot = -1;
	if (f->fd >= 0)
		netstack_fd_extra_events(br->ns, f->fd, 0);
}

/* Host port -> guest port of an exposed port, 0 if @port is not exposed. */
static uint16_t bridge_guest_port(const struct bridge *br, uint16_t host_port)
{
	for (guint i = 0; br->cfg.expose && i < br->cfg.expose->len; i++) {
		const struct bridge_expose *e = &g_array_index(br->cfg.expose, struct bridge_expose, i);

		if (e->host_port == host_port)
			return e->guest_port;
	}
	return 0;
}

/* Send the held SYN to the guest, in the flow's current guest view. */
static void bridge_release_syn(struct bridge *br, struct flow *f)
{
	struct bridge_hdr_wait *p = bridge_hdr_wait_of(br, f);
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
static void bridge_inbound_open(struct bridge *br, struct flow *f)
{
	flowtab_set_state(br->flows, f, FLOW_OPEN);
	bridge_arm_idle(br, f);
	bridge_debug_flow(br, f, "open");
	bridge_release_syn(br, f);
	bridge_hdr_wait_release(br, f);
}

/* One rate-limited line naming the real client, the exposed port and the reason. */
static void bridge_log_inbound(struct bridge *br, struct flow *f, enum bridge_inbound_drop why,
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

static void bridge_inbound_reject(struct bridge *br, struct flow *f, enum bridge_inbound_drop why,
				  enum proxy_error err)
{
	br->stats.inbound_dropped[why]++;
	if (why == BRIDGE_IN_INVALID)
		br->stats.header_errors[err]++;
	bridge_log_inbound(br, f, why, err);
	/* The client gets a reset when libslirp closes the socket. */
	if (f->fd >= 0)
		bridge_reset_on_close(f->fd);
	flowtab_set_state(br->flows, f, FLOW_REJECTED);
	flowtab_set_deadline(br->flows, f, g_get_monotonic_time() + BRIDGE_REJECTED_GRACE_US);
	bridge_hdr_wait_release(br, f);
	/*
	 * libslirp must drop its socket, but we may be inside one of its
	 * callbacks: queue it for the tick.  A full queue leaves the socket to
	 * libslirp's own SYN timeout; the guest sees nothing either way.
	 */
	if (br->rst_len < BRIDGE_HDR_WAIT_MAX) {
		br->rst_queue[(br->rst_head + br->rst_len++) % BRIDGE_HDR_WAIT_MAX] = f->slot;
		bridge_inbound_kick(br);
	}
}

/*
 * The guest view @gkey is wanted by a new connection (@self, or NULL while
 * it has no flow yet).  A flow that holds it but is over (closed, its socket
 * gone from libslirp) only waits for late segments: a client reconnecting
 * from the same address and port is a new connection, so the old flow goes.
 * Returns false if a live connection holds the key.
 */
static bool bridge_inbound_take_guest_key(struct bridge *br, const struct flow_key *gkey,
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
static void bridge_inbound_header(struct bridge *br, struct flow *f, const struct proxy_header *h)
{
	const struct sockaddr_in *src = (const struct sockaddr_in *)&h->src;
	struct flow_key gkey;
	uint32_t a;

	br->stats.inbound_headers[h->version]++;
	if (h->local || h->family == AF_UNSPEC) {
		br->stats.inbound_real_peer++;
		bridge_inbound_open(br, f);
		return;
	}
	if (h->family != AF_INET) {
		bridge_inbound_reject(br, f, BRIDGE_IN_FAMILY, PROXY_ERR_NONE);
		return;
	}
	/* The guest must be able to address its replies to the client. */
	a = ntohl(src->sin_addr.s_addr);
	if ((a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) >= 0xe ||
	    src->sin_addr.s_addr == br->cfg.guest.s_addr || !src->sin_port) {
		bridge_inbound_reject(br, f, BRIDGE_IN_ADDRESS, PROXY_ERR_NONE);
		return;
	}
	gkey = flow_key_make(IPPROTO_TCP, f->skey.laddr, f->skey.lport, src->sin_addr.s_addr,
			     src->sin_port);
	if (!bridge_inbound_take_guest_key(br, &gkey, f) ||
	    flowtab_rekey_guest(br->flows, f, &gkey)) {
		bridge_inbound_reject(br, f, BRIDGE_IN_DUPLICATE, PROXY_ERR_NONE);
		return;
	}
	bridge_inbound_open(br, f);
}

/*
 * Look at what the client sent so far and decide if possible.  Peeking
 * first means only the header is consumed: the payload stays in the socket
 * for libslirp to read once the guest has accepted.
 */
static void bridge_inbound_try(struct bridge *br, struct flow *f)
{
	struct bridge_hdr_wait *p = bridge_hdr_wait_of(br, f);
	uint8_t buf[PROXY_PARSE_MAX];
	struct proxy_header h;
	enum proxy_error err;
	ssize_t n;

	if (!p || f->state != FLOW_HDR_WAIT)
		return;
	do {
		n = recv(f->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return; /* nothing yet: the extra POLLIN interest will wake us */
	if (n <= 0) {
		if (n == 0 && br->cfg.inbound_mode == BRIDGE_INBOUND_OPTIONAL) {
			/* Closed without a byte: nothing to mislabel; let it through. */
			br->stats.inbound_real_peer++;
			bridge_inbound_open(br, f);
		} else {
			bridge_inbound_reject(br, f, BRIDGE_IN_CLOSED, PROXY_ERR_NONE);
		}
		return;
	}

	switch (proxy_parse(buf, (size_t)n, &h, &err)) {
	case PROXY_PARSE_OK:
		if (!f->peer_trusted) {
			bridge_inbound_reject(br, f, BRIDGE_IN_UNTRUSTED, PROXY_ERR_NONE);
			return;
		}
		/* Consume exactly the header; it is all there, we just saw it. */
		if (recv(f->fd, buf, h.len, MSG_DONTWAIT) != (ssize_t)h.len) {
			bridge_inbound_reject(br, f, BRIDGE_IN_CLOSED, PROXY_ERR_NONE);
			return;
		}
		bridge_inbound_header(br, f, &h);
		return;
	case PROXY_PARSE_INCOMPLETE:
		/*
		 * Bytes are waiting but not enough: level-triggered POLLIN
		 * would fire at once again, so re-read on the tick instead.
		 */
		if (!p->polling) {
			p->polling = true;
			netstack_fd_extra_events(br->ns, f->fd, 0);
		}
		return;
	case PROXY_PARSE_NOT_PROXY:
		if (br->cfg.inbound_mode == BRIDGE_INBOUND_REQUIRED) {
			bridge_inbound_reject(br, f, BRIDGE_IN_MISSING, PROXY_ERR_NONE);
			return;
		}
		br->stats.inbound_real_peer++;
		bridge_inbound_open(br, f);
		return;
	case PROXY_PARSE_INVALID:
	default:
		bridge_inbound_reject(br, f, f->peer_trusted ? BRIDGE_IN_INVALID : BRIDGE_IN_UNTRUSTED,
				      err);
		return;
	}
}

/*
 * Tell libslirp the guest refused: a RST|ACK acknowledging libslirp's SYN,
 * as if from the guest.  libslirp drops the socket (tcp_drop), closing it
 * with the SO_LINGER 0 set at rejection: the client sees a reset.
 */
static void bridge_inbound_send_rst(struct bridge *br, struct flow *f)
{
	bridge_inject_guest_rst(br, f, 0, f->stack_isn + 1);
}

static gboolean bridge_inbound_tick(gpointer data)
{
	struct bridge *br = data;
	int64_t now = g_get_monotonic_time();
	size_t n;

	for (size_t i = 0; i < BRIDGE_HDR_WAIT_MAX && br->nhdr_wait_free < BRIDGE_HDR_WAIT_MAX; i++) {
		struct bridge_hdr_wait *p = &br->hdr_wait[i];
		struct flow *f = p->flow;

		if (!f)
			continue;
		/*
		 * Past the deadline, read once more before giving up: after the
		 * loop was busy, this tick may run before the socket's own
		 * event, with the header already there.
		 */
		if (p->polling || now >= p->header_deadline_us)
			bridge_inbound_try(br, f);
		if (f->state == FLOW_HDR_WAIT && now >= p->header_deadline_us)
			bridge_inbound_reject(br, f, BRIDGE_IN_TIMEOUT, PROXY_ERR_NONE);
	}

	/* Outside any libslirp callback here: safe to hand it frames. */
	for (n = br->rst_len; n; n--) {
		struct flow *f = flowtab_get(br->flows, br->rst_queue[br->rst_head]);

		br->rst_head = (br->rst_head + 1) % BRIDGE_HDR_WAIT_MAX;
		br->rst_len--;
		/* The slot may have been reused by now: only act on what we queued. */
		if (f && f->state == FLOW_REJECTED && f->kind == FLOW_INBOUND && f->stack_isn_known)
			bridge_inbound_send_rst(br, f);
	}

	if (br->nhdr_wait_free == BRIDGE_HDR_WAIT_MAX && !br->rst_len) {
		br->inbound_timer = 0;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

/* May @peer (network order) send a PROXY header: --inbound-proxy-trusted. */
static bool bridge_inbound_trusted(const struct bridge *br, uint32_t peer)
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

/*
 * libslirp accepted a second socket on the tuple of a live connection.  It
 * cannot tell them apart, so the newcomer must leave libslirp before any
 * guest segment is looked up: remember it (its SYN is kept from the guest
 * by bridge_inbound_foreign_syn(), which also learns its sequence number),
 * and bridge_dups_kill() removes it.  Its client gets a reset when libslirp
 * closes the socket (SO_LINGER 0).
 */
static void bridge_inbound_refuse_duplicate(struct bridge *br, int fd, const struct flow_key *skey,
					    const struct flow *live)
{
	struct bridge_dup *dup = NULL;

	br->stats.inbound_duplicates++;
	br->stats.inbound_dropped[BRIDGE_IN_DUPLICATE]++;
	bridge_reset_peer_now(fd);
	for (size_t i = 0; i < BRIDGE_DUP_MAX && !dup; i++) {
		if (!br->dups[i].used)
			dup = &br->dups[i];
	}
	if (!dup) {
		/*
		 * Sixteen at once: libslirp's own SYN timeout (75 s) drops the
		 * socket.  Its SYNs still never reach the guest.
		 */
		return;
	}
	*dup = (struct bridge_dup){
		.used = true, .fd = fd, .skey = *skey, .live_guest_nxt = live->guest_nxt,
	};
	br->ndups++;
	netstack_tag_fd(br->ns, fd, dup);
}

/*
 * The guest-view key of a new inbound connection is taken by a live one
 * whose libslirp tuple differs (a sidecar header named this client): the
 * new connection gets a flow under its stack key only, and is rejected
 * like a bad header, so its SYN never reaches the guest.
 */
static void bridge_inbound_refuse_taken(struct bridge *br, int fd, const struct flow_key *key)
{
	struct flow *f;

	if (flowtab_add(br->flows, key, key->raddr, key->rport,
			FLOWTAB_KEEP_PORT | FLOWTAB_STACK_ONLY, FLOW_HDR_WAIT, &f)) {
		br->stats.inbound_untracked++;
		br->stats.inbound_dropped[BRIDGE_IN_OVERLOAD]++;
		bridge_reset_peer_now(fd);
		return;
	}
	flowtab_set_kind(br->flows, f, FLOW_INBOUND);
	f->fd = fd;
	netstack_tag_fd(br->ns, fd, f);
	bridge_inbound_reject(br, f, BRIDGE_IN_DUPLICATE, PROXY_ERR_NONE);
}

void bridge_inbound_registered(struct bridge *br, int fd)
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
	guest_port = bridge_guest_port(br, ntohs(local.sin_port));
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
		bridge_inbound_refuse_duplicate(br, fd, &key, old);
		return;
	}
	if (old) {
		br->stats.inbound_reopened++;
		bridge_forget_flow(br, old);
	}
	if (!bridge_inbound_take_guest_key(br, &key, NULL)) {
		bridge_inbound_refuse_taken(br, fd, &key);
		return;
	}

	if (flowtab_add(br->flows, &key, raddr, peer.sin_port, FLOWTAB_KEEP_PORT,
			br->cfg.inbound_mode == BRIDGE_INBOUND_OFF &&
			unix_verdict != UNIXEXPOSE_STRANGER ? FLOW_OPEN : FLOW_HDR_WAIT,
			&f)) {
		br->stats.inbound_untracked++;
		if (br->cfg.inbound_mode != BRIDGE_INBOUND_OFF ||
		    unix_verdict == UNIXEXPOSE_STRANGER) {
			/* Cannot hold it back: refuse rather than mislabel the client. */
			bridge_reset_peer_now(fd);
			br->stats.inbound_dropped[BRIDGE_IN_OVERLOAD]++;
		}
		return;
	}
	flowtab_set_kind(br->flows, f, FLOW_INBOUND);
	f->fd = fd;
	/*
	 * A unix client is trusted as a header sender: the socket file's
	 * owner, group and mode (0660), not an address, decide who reaches it,
	 * and the pod's own processes are already trusted as loopback peers.
	 * A stranger on the relay port came round the unix socket: refused.
	 */
	if (unix_verdict == UNIXEXPOSE_ADOPTED)
		f->peer_trusted = f->unix_leg = true;
	else if (unix_verdict == UNIXEXPOSE_STRANGER)
		f->peer_trusted = false;
	else
		f->peer_trusted = bridge_inbound_trusted(br, peer.sin_addr.s_addr);
	netstack_tag_fd(br->ns, fd, f);
	if (unix_verdict == UNIXEXPOSE_STRANGER) {
		bridge_inbound_reject(br, f, BRIDGE_IN_UNTRUSTED, PROXY_ERR_NONE);
		return;
	}
	if (br->cfg.inbound_mode == BRIDGE_INBOUND_OFF) {
		bridge_arm_idle(br, f);
		return;
	}
	/* Only a header makes this connection welcome, and this peer's would not be believed. */
	if (br->cfg.inbound_mode == BRIDGE_INBOUND_REQUIRED && !f->peer_trusted) {
		bridge_inbound_reject(br, f, BRIDGE_IN_UNTRUSTED, PROXY_ERR_NONE);
		return;
	}

	if (!br->nhdr_wait_free) {
		bridge_inbound_reject(br, f, BRIDGE_IN_OVERLOAD, PROXY_ERR_NONE);
		return;
	}
	f->hdr_wait_slot = (int)br->hdr_wait_free[--br->nhdr_wait_free];
	br->hdr_wait[f->hdr_wait_slot] = (struct bridge_hdr_wait){
		.flow = f,
		.header_deadline_us = g_get_monotonic_time() + br->cfg.header_timeout_us,
	};
	bridge_inbound_kick(br);
	netstack_fd_extra_events(br->ns, fd, SLIRP_POLL_IN);
	/*
	 * The header usually arrived with the connection.  We are inside
	 * libslirp's tcp_connect() here and it has not sent its SYN yet: the
	 * decision below only updates our state; the SYN is held or rewritten
	 * when libslirp sends it, a moment later.
	 */
	bridge_inbound_try(br, f);
}

void bridge_inbound_events(struct bridge *br, struct flow *f, int revents)
{
	if (f->state == FLOW_HDR_WAIT && (revents & (SLIRP_POLL_IN | SLIRP_POLL_HUP |
						     SLIRP_POLL_ERR)))
		bridge_inbound_try(br, f);
}

enum netstack_verdict bridge_inbound_stack_frame(struct bridge *br, struct rw_view *v,
						 struct flow *f)
{
	struct bridge_hdr_wait *p = bridge_hdr_wait_of(br, f);
	uint8_t flags = rw_tcp_flags(v);

	if ((flags & (RW_TCP_SYN | RW_TCP_ACK)) == RW_TCP_SYN) {
		/* libslirp's SYN to the guest: remember what a reset must acknowledge. */
		f->stack_isn = rw_tcp_seq(v);
		f->stack_isn_known = true;
		bridge_learn_macs(f, v, false);
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

void bridge_inbound_closed(struct bridge *br, struct flow *f)
{
	bridge_hdr_wait_release(br, f);
}

bool bridge_inbound_foreign_syn(struct bridge *br, struct flow *f, const struct rw_view *v)
{
	uint32_t seq = rw_tcp_seq(v);

	if (!f->stack_isn_known) {
		f->stack_isn = seq;
		f->stack_isn_known = true;
		return false;
	}
	if (seq == f->stack_isn)
		return false; /* the flow's own SYN, again */
	/*
	 * libslirp never sends a second SYN with a new sequence number on one
	 * connection: this is a duplicate socket's.  The guest must not see it.
	 */
	br->stats.duplicate_syns++;
	for (size_t i = 0; i < BRIDGE_DUP_MAX; i++) {
		struct bridge_dup *dup = &br->dups[i];

		if (dup->used && !dup->isn_known && !memcmp(&dup->skey, &f->skey, sizeof(f->skey))) {
			dup->isn = seq;
			dup->isn_known = true;
			break;
		}
	}
	return true;
}

bool bridge_is_dup_tag(const struct bridge *br, const void *tag)
{
	const char *p = tag, *lo = (const char *)br->dups;

	return p >= lo && p < lo + sizeof(br->dups);
}

void bridge_dup_closed(struct bridge *br, struct bridge_dup *dup)
{
	br->stats.duplicates_removed++;
	dup->used = false;
	br->ndups--;
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
 */
void bridge_dups_kill(struct bridge *br)
{
	for (size_t i = 0; i < BRIDGE_DUP_MAX; i++) {
		struct bridge_dup *dup = &br->dups[i];
		uint8_t frame[RW_ETH_HLEN + 40];
		struct rw_tuple t;
		size_t len;

		if (!dup->used || !dup->isn_known)
			continue;
		t = bridge_tuple(&dup->skey, BRIDGE_OUTWARD);
		len = rw_build_tcp_rst(frame, bridge_zero_mac, bridge_zero_mac, &t,
				       dup->live_guest_nxt + BRIDGE_DUP_RST_OFFSET, dup->isn + 1);
		dup->attempts++;
		br->swallow = &dup->skey;
		netstack_inject_from_guest(br->ns, frame, len);
		br->swallow = NULL;
	}
}
