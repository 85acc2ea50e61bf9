/* daemon.c - wiring of backend, netstack and exposed ports, shared by main and tests. */

#include "daemon.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <glib.h>

#include "backend/offload.h"
#include "common/log.h"
#include "proxy-bridge/unixexpose.h"

/*
 * A frame from the guest: made plain for libslirp (offload.h), its SYN's MSS raised when
 * the guest takes large segments, then into the netstack.
 */
static void daemon_rx_frame(uint8_t *frame, size_t len, const struct frame_meta *meta,
			    void *opaque)
{
	struct daemon *d = opaque;
	struct daemon_offload_stats *st = &d->offload;

	/* Steered TCP for the kernel path goes as it came, metadata and all. */
	if (d->ks && ksteer_guest_frame(d->ks, frame, len, meta))
		return;
	if (meta) {
		if (offload_from_guest(frame, len, meta)) {
			st->rx_refused++;
			return;
		}
		if (meta->flags & FRAME_META_NEEDS_CSUM)
			st->rx_csum_completed++;
		if (meta->gso_type != FRAME_GSO_NONE)
			st->rx_gso++;
	}
	if ((d->be->tx_offloads & BACKEND_OFFLOAD_TSO4) &&
	    offload_raise_mss(frame, len, netstack_guest_mtu(d->ns)))
		st->mss_raised++;
	netstack_input(d->ns, frame, len);
}

/* A large frame with its payload in guest memory: the kernel path's, or declined (backend.h). */
static int daemon_rx_frame_tail(uint8_t *frame, const struct frame_tail *tail,
				const struct frame_meta *meta, void *opaque)
{
	struct daemon *d = opaque;

	return d->ks ? ksteer_guest_frame_tail(d->ks, frame, tail, meta) : 0;
}

static gboolean daemon_sched_on_timer(gpointer opaque);

/*
 * --sched auto, at the end of a batch of guest frames and from a timer while
 * the thread is SCHED_BATCH: the bytes the backend moved both ways decide
 * whether the data thread runs as SCHED_BATCH (common/schedmode.h).  The
 * timer (every two windows) runs only in SCHED_BATCH, so a transfer with
 * nothing after it ends SCHED_BATCH too.  A refusal is said once; the policy
 * stays as it was.
 */
static void daemon_sched_update(struct daemon *d)
{
	const struct backend_stats *bs = &d->be->stats;
	bool batch = !d->sched.batch;
	int ret;

	if (!schedmode_decide(&d->sched, g_get_monotonic_time(), bs->rx_bytes + bs->tx_bytes))
		return;
	ret = schedmode_apply(batch);
	schedmode_switched(&d->sched, ret);
	if (ret) {
		g_warning("--sched auto: cannot switch the data thread to %s (%s): it stays %s",
			  batch ? "SCHED_BATCH" : "SCHED_OTHER", g_strerror(-ret),
			  batch ? "SCHED_OTHER" : "SCHED_BATCH");
		return;
	}
	g_debug("--sched auto: the data thread runs as %s",
		batch ? "SCHED_BATCH (bulk traffic)" : "SCHED_OTHER");
	if (batch && !d->sched_timer)
		d->sched_timer = g_timeout_add(2 * SCHEDMODE_WINDOW_US / 1000,
					       daemon_sched_on_timer, d);
}

static gboolean daemon_sched_on_timer(gpointer opaque)
{
	struct daemon *d = opaque;

	daemon_sched_update(d);
	if (d->sched.batch && !d->sched.disabled) /* disabled: a refused leave, nothing to ask */
		return G_SOURCE_CONTINUE;
	d->sched_timer = 0;
	return G_SOURCE_REMOVE;
}

/*
 * A batch of guest frames is in: the kernel path relays what it made ready in
 * this turn, and --sched auto looks at the rate.
 */
static void daemon_rx_batch_done(void *opaque)
{
	struct daemon *d = opaque;

	if (d->ks)
		ksteer_guest_batch_done(d->ks);
	if (d->sched_policy == SCHEDMODE_AUTO && d->be)
		daemon_sched_update(d);
}

static void daemon_set_congested(bool congested, void *opaque)
{
	struct daemon *d = opaque;

	netstack_set_throttle(d->ns, congested);
	if (d->ks)
		ksteer_set_throttle(d->ks, congested);
}

/* A frame for the guest, with the offload metadata the guest takes (offload.h). */
static int daemon_tx_frame(uint8_t *frame, size_t len, void *opaque)
{
	struct daemon *d = opaque;
	struct daemon_offload_stats *st = &d->offload;
	const struct frame_meta *meta;
	struct frame_meta m;
	int ret;

	if (!d->be)
		return -ENOTCONN;
	if ((d->be->rx_offloads & BACKEND_OFFLOAD_TSO4) &&
	    offload_clamp_mss(frame, len, OFFLOAD_MSS_TSO))
		st->mss_clamped++;
	ret = offload_to_guest(frame, len, netstack_guest_mtu(d->ns), d->be->tx_offloads, &m,
			       &meta);
	if (ret)
		return ret;
	if (meta) {
		if (meta->gso_type != FRAME_GSO_NONE)
			st->tx_gso++;
		else if (meta->flags & FRAME_META_NEEDS_CSUM)
			st->tx_csum_partial++;
		else
			st->tx_data_valid++;
	}
	return backend_send(d->be, frame, len, meta);
}

static void daemon_tx_flush(void *opaque)
{
	struct daemon *d = opaque;

	if (d->be)
		backend_flush(d->be);
}

/* The backend can serve no guest any more (its tap is gone): the owner decides. */
static void daemon_backend_failed(const char *why, void *opaque)
{
	struct daemon *d = opaque;

	if (d->on_fatal)
		d->on_fatal(why, d->on_fatal_opaque);
}

/* The front-end set the guest's MTU (vhost-user NET_SET_MTU, within 576..--mtu): fit frames to it. */
static void daemon_link_mtu(unsigned int mtu, void *opaque)
{
	struct daemon *d = opaque;

	netstack_set_guest_mtu(d->ns, mtu); /* the backend keeps to the netstack's range */
}

static const struct backend_callbacks daemon_backend_cb = {
	.rx_frame = daemon_rx_frame,
	.rx_frame_tail = daemon_rx_frame_tail,
	.rx_batch_done = daemon_rx_batch_done,
	.set_congested = daemon_set_congested,
	.failed = daemon_backend_failed,
	.link_mtu = daemon_link_mtu,
};

static const struct netstack_ops daemon_netstack_ops = {
	.tx_frame = daemon_tx_frame,
	.tx_flush = daemon_tx_flush,
};

static int daemon_setup_expose(struct daemon *d)
{
	char host[INET_ADDRSTRLEN];

	struct in_addr loopback = { .s_addr = htonl(INADDR_LOOPBACK) };

	inet_ntop(AF_INET, &d->cfg->expose_addr, host, sizeof(host));
	for (guint i = 0; i < d->cfg->expose->len; i++) {
		const struct bridge_expose *e = &g_array_index(d->cfg->expose, struct bridge_expose, i);
		/* A unix exposed port's relay listens on loopback only (unixexpose.h). */
		bool relay = unixexpose_is_relay(d->ux, e->host_port);
		int ret = netstack_expose_tcp(d->ns, relay ? loopback : d->cfg->expose_addr,
					      e->host_port, e->guest_port);

		if (relay && ret) {
			g_printerr("meshslirp: --expose unix: cannot listen on the relay port "
				   "127.0.0.1:%u: %s\n", e->host_port, g_strerror(-ret));
			return ret;
		}
		if (relay)
			continue;

		if (ret) {
			g_printerr("meshslirp: --expose tcp:%u:%u: cannot listen on %s:%u: %s\n",
				   e->host_port, e->guest_port, host, e->host_port,
				   g_strerror(-ret));
			return ret;
		}
		g_message("exposing %s:%u -> guest port %u", host, e->host_port,
			  e->guest_port);
	}
	return 0;
}

/* What the backend may negotiate with the guest (--offload). */
static uint32_t daemon_offloads(const struct daemon *d)
{
	return d->cfg->offload ? BACKEND_OFFLOAD_CSUM | BACKEND_OFFLOAD_TSO4 : 0;
}

static int daemon_setup_backend(struct daemon *d)
{
	int ret;

	/*
	 * Only the kernel path takes a frame's tail from guest memory (without it the
	 * offer would be declined every time and the frame copied in two calls) or has
	 * work at the end of a batch (its relay, and --sched auto).
	 */
	d->be_cb = daemon_backend_cb;
	if (!d->ks) {
		d->be_cb.rx_frame_tail = NULL;
		d->be_cb.rx_batch_done = NULL;
	}

	if (d->cfg->socket_path) {
		ret = stream_backend_new(d->cfg->socket_path, d->cfg->mtu,
					 &d->be_cb, d, &d->be);
		if (ret == -EADDRINUSE)
			g_printerr("meshslirp: --socket %s: another process is serving this socket\n",
				   d->cfg->socket_path);
		else if (ret)
			g_printerr("meshslirp: --socket %s: %s\n", d->cfg->socket_path,
				   g_strerror(-ret));
		else
			g_message("listening for QEMU on %s", d->cfg->socket_path);
		return ret;
	}

	if (d->cfg->vhost_user_path) {
		ret = vhost_user_backend_new(d->cfg->vhost_user_path, d->cfg->mtu,
					     daemon_offloads(d), &d->be_cb, d, &d->be);
		if (ret == -EADDRINUSE)
			g_printerr("meshslirp: --vhost-user %s: another process is serving this socket\n",
				   d->cfg->vhost_user_path);
		else if (ret)
			g_printerr("meshslirp: --vhost-user %s: %s\n", d->cfg->vhost_user_path,
				   g_strerror(-ret));
		else
			g_message("listening for a vhost-user front-end (QEMU) on %s",
				  d->cfg->vhost_user_path);
		return ret;
	}

	ret = tap_backend_new(d->cfg->tap_name, d->cfg->tap_netns, d->cfg->mtu,
			      daemon_offloads(d),
			      &d->be_cb, d, &d->be);
	if (ret)
		g_printerr("meshslirp: --tap %s%s%s: %s\n", d->cfg->tap_name,
			   d->cfg->tap_netns ? " --netns " : "",
			   d->cfg->tap_netns ? d->cfg->tap_netns : "", g_strerror(-ret));
	return ret;
}

void daemon_log_summary(const struct daemon *d)
{
	const struct netstack_stats *ns = netstack_stats(d->ns);
	const struct backend_stats *bs = &d->be->stats;
	const struct bridge_stats *br = bridge_stats(d->br);

	g_message("frames guest->stack %" G_GUINT64_FORMAT ", stack->guest %" G_GUINT64_FORMAT
		  ", dropped to guest %" G_GUINT64_FORMAT " (no peer %" G_GUINT64_FORMAT
		  ", queue full %" G_GUINT64_FORMAT "), bad frames from guest %" G_GUINT64_FORMAT
		  ", QEMU connections %" G_GUINT64_FORMAT " (refused %" G_GUINT64_FORMAT
		  "), bytes unsent at detach %" G_GUINT64_FORMAT,
		  ns->rx_frames, ns->tx_frames, ns->tx_dropped, bs->tx_no_peer, bs->tx_full,
		  bs->rx_runts + bs->rx_oversize + bs->rx_bad_prefix, bs->peers_accepted,
		  bs->peers_refused, bs->tx_unsent_bytes);
	g_message("flows steered %" G_GUINT64_FORMAT ", dns %" G_GUINT64_FORMAT
		  ", refused %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT
		  " (sidecar port/table full/no port), connect failed %" G_GUINT64_FORMAT
		  ", headers %" G_GUINT64_FORMAT "; now syn %zu connecting %zu open %zu closed %zu"
		  " (TCP), udp %zu",
		  br->flows_steered, br->flows_dns, br->egress_refused[EGRESS_SIDECAR_PORT],
		  br->refused[BRIDGE_REFUSED_TABLE_FULL], br->refused[BRIDGE_REFUSED_NO_PORT],
		  br->connect_failed, br->headers_written, bridge_flow_count(d->br, FLOW_SYN),
		  bridge_flow_count(d->br, FLOW_CONNECTING),
		  bridge_flow_count(d->br, FLOW_OPEN) - bridge_udp_flow_count(d->br),
		  bridge_flow_count(d->br, FLOW_CLOSED), bridge_udp_flow_count(d->br));
	if (d->cfg->expose->len) {
		g_autoptr(GString) drops = g_string_new(NULL);

		for (int i = 0; i < BRIDGE_IN_DROP_COUNT; i++)
			g_string_append_printf(drops, " %s=%" G_GUINT64_FORMAT,
					       bridge_inbound_drop_str(i), br->inbound_dropped[i]);
		g_message("inbound connections %" G_GUINT64_FORMAT ", headers v1 %" G_GUINT64_FORMAT
			  " v2 %" G_GUINT64_FORMAT ", real peer %" G_GUINT64_FORMAT
			  ", waiting %zu; refused:%s",
			  br->inbound_flows, br->inbound_headers[1], br->inbound_headers[2],
			  br->inbound_real_peer, bridge_flow_count(d->br, FLOW_HDR_WAIT), drops->str);
	}
	if (d->ks) {
		const struct ksteer_stats *k = ksteer_stats(d->ks);

		g_message("kernel path: steered flows %" G_GUINT64_FORMAT " (left to libslirp %"
			  G_GUINT64_FORMAT "), opened %" G_GUINT64_FORMAT ", connect failed %"
			  G_GUINT64_FORMAT ", timeouts %" G_GUINT64_FORMAT ", closed %" G_GUINT64_FORMAT
			  ", reset %" G_GUINT64_FORMAT "; direct flows %" G_GUINT64_FORMAT
			  " (connected %" G_GUINT64_FORMAT ", refused %" G_GUINT64_FORMAT
			  "); active %zu (direct %zu); bytes from the guest %" G_GUINT64_FORMAT
			  ", to it %" G_GUINT64_FORMAT,
			  k->flows, k->table_full, k->opened, k->connect_failed, k->timeouts,
			  k->closed, k->aborted, k->direct.flows, k->direct.connected,
			  k->direct.refused, ksteer_active(d->ks), ksteer_active_direct(d->ks),
			  k->bytes_out, k->bytes_in);
	}
}

/* The namespace's primary IPv4 address: the first non-loopback one that is up. */
static int daemon_primary_ipv4(struct in_addr *out)
{
	struct ifaddrs *ifa, *it;
	int ret = -EADDRNOTAVAIL;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (it = ifa; it; it = it->ifa_next) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)it->ifa_addr;

		if (!sin || sin->sin_family != AF_INET || (it->ifa_flags & IFF_LOOPBACK) ||
		    !(it->ifa_flags & IFF_UP))
			continue;
		*out = sin->sin_addr;
		ret = 0;
		break;
	}
	freeifaddrs(ifa);
	return ret;
}

/*
 * Descriptors the daemon needs besides its flows': the backend, epoll,
 * metrics and control clients, libslirp's listeners and internal sockets.
 */
#define DAEMON_FD_RESERVE 128
/*
 * A kernel-path flow holds two sockets, and a pipe (two descriptors) each
 * way while bytes wait in it; libslirp's table holds a socket a flow beside it.
 */
#define DAEMON_FDS_PER_KERNEL_FLOW 6

/*
 * Every flow may hold host sockets: tables larger than the descriptor limit
 * would turn "table full, reset" into EMFILE at random places (and libslirp
 * meeting EMFILE on an exposed port's accept() would wake the loop at once,
 * again and again).  So each table's size is what the limit holds with every
 * flow of both tables at its most, beside the reserve: the kernel path's
 * (@kernel: it is set up), the unix exposed ports' waiting clients (a socket
 * and its connector each), the refused clients' sockets libslirp may hold
 * (BRIDGE_INBOUND_HELD_MAX), and the exposed ports' listeners (all
 * MS_EXPOSE_MAX of them where the control socket can add ports).  Returns the size to use, saying once when it is
 * lower than asked (@say: the daemon's final choice): a warning for an
 * explicit --max-flows, a note for the default (a limit of 20,000 holds 2,834
 * kernel-path flows).
 */
static size_t daemon_flow_budget(const struct ms_config *cfg, bool kernel, bool say)
{
	rlim_t per_flow = 1 + (kernel ? DAEMON_FDS_PER_KERNEL_FLOW : 0);
	bool unix_exposed = cfg->expose_unix && cfg->expose_unix->len;
	/* The control socket may expose ports at run time. */
	bool exposed = unix_exposed || (cfg->expose && cfg->expose->len) || cfg->control_path;
	/*
	 * Their listeners: the expose list's (the unix ones' relay ports are in
	 * it by now; the control socket may add up to the bound), and the unix
	 * sockets themselves.
	 */
	rlim_t listeners = (cfg->control_path ? MS_EXPOSE_MAX : cfg->expose ? cfg->expose->len : 0) +
			   (unix_exposed ? cfg->expose_unix->len : 0);
	rlim_t reserve = DAEMON_FD_RESERVE + (kernel ? 2 * KSTEER_PIPE_POOL : 0) +
			 (unix_exposed ? 2 * UNIXEXPOSE_PENDING_MAX : 0) +
			 (exposed ? BRIDGE_INBOUND_HELD_MAX : 0) + listeners;
	rlim_t need = (rlim_t)cfg->max_flows * per_flow + reserve;
	struct rlimit rl;
	rlim_t room;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= need)
		return cfg->max_flows;
	room = rl.rlim_cur > 2 * reserve ? (rl.rlim_cur - reserve) / per_flow
					 : rl.rlim_cur / 2 / per_flow;
	/* Half a limit below twice the reserve can exceed the table asked: not lowered then. */
	room = MIN(MAX(room, 1), cfg->max_flows);
	if (!say || room == cfg->max_flows)
		return (size_t)room;
	if (cfg->max_flows_set)
		g_warning("--max-flows %u needs %llu descriptors (%llu a flow%s) but the limit is "
			  "%llu: using %llu flows (raise the limit, e.g. LimitNOFILE=, for more)",
			  cfg->max_flows, (unsigned long long)need, (unsigned long long)per_flow,
			  kernel ? ", on the kernel path" : "", (unsigned long long)rl.rlim_cur,
			  (unsigned long long)room);
	else
		g_message("%s of %llu, within the descriptor limit of %llu (the default of "
			  "%u needs %llu, %llu a flow%s; raise the limit for more)",
			  /* the kernel path has a table of its own */
			  kernel ? "flow tables" : "a flow table",
			  (unsigned long long)room, (unsigned long long)rl.rlim_cur, cfg->max_flows,
			  (unsigned long long)need, (unsigned long long)per_flow,
			  kernel ? " on the kernel path" : "");
	return (size_t)room;
}

/*
 * An explicit --max-inbound-flows under a table the descriptor limit
 * lowered stays a ceiling: the count asked for, where the lowered table
 * can give it half of itself (the default share, so the guest's own flows
 * keep their room) or the share of the table the count asked for, scaled
 * as the table was, whichever is larger.  At least 1.  0 (the default,
 * half the table) as it is.
 */
static size_t daemon_inbound_budget(const struct daemon *d)
{
	const struct ms_config *cfg = d->cfg;
	size_t asked = cfg->max_inbound_flows, share;

	if (!asked || d->max_flows >= cfg->max_flows)
		return asked;
	share = asked * d->max_flows / cfg->max_flows;
	return MAX(MIN(asked, MAX(d->max_flows / 2, share)), 1);
}

/*
 * --expose unix:PATH:GUESTPORT: our listeners, and for each a relay entry
 * (127.0.0.1:RELAY -> GUESTPORT) in the expose list, which daemon_setup_expose()
 * turns into a hostfwd and the bridge reads like any exposed port.
 */
static int daemon_setup_unix_expose(struct daemon *d)
{
	const GArray *list = d->cfg->expose_unix;

	if (!list || !list->len)
		return 0;
	d->ux = unixexpose_new();
	for (guint i = 0; i < list->len; i++) {
		const struct ms_expose_unix *u = &g_array_index(list, struct ms_expose_unix, i);
		struct bridge_expose e = { .guest_port = u->guest_port };
		int ret = unixexpose_listen(d->ux, u->path, u->guest_port, &e.host_port);

		if (ret) {
			g_printerr("meshslirp: --expose unix:%s:%u: cannot listen: %s\n", u->path,
				   u->guest_port, g_strerror(-ret));
			return ret;
		}
		g_array_append_val(d->cfg->expose, e);
		g_message("exposing unix:%s -> guest port %u (relay 127.0.0.1:%u)", u->path,
			  u->guest_port, e.host_port);
	}
	return 0;
}

/*
 * The PROXY header's source, for both paths: --proxy-source, or with a
 * sidecar this namespace's primary IPv4 address.  Returns 0 or -errno.
 */
static int daemon_setup_proxy_source(struct daemon *d)
{
	const struct ms_config *cfg = d->cfg;
	int ret;

	d->proxy_source = cfg->proxy_source;
	if (!cfg->outbound_proxy_set || cfg->proxy_source_set)
		return 0;
	ret = daemon_primary_ipv4(&d->proxy_source);
	if (ret)
		g_printerr("meshslirp: --outbound-proxy: cannot find this namespace's IPv4 "
			   "address for the PROXY header source (%s); give --proxy-source\n",
			   g_strerror(-ret));
	return ret;
}

/* libslirp's path: the flow table, steering and exposed ports.  Returns 0 or -errno. */
static int daemon_setup_bridge(struct daemon *d)
{
	const struct ms_config *cfg = d->cfg;
	struct bridge_config bc = {
		.policy = {
			.network = cfg->network, .netmask = cfg->netmask,
			.gateway = cfg->gateway, .dns = cfg->dns,
			.steer = cfg->outbound_proxy_set,
			.proxy_addr = cfg->outbound_proxy_addr,
			.proxy_port = cfg->outbound_proxy_port,
			.dns_upstream = cfg->dns_upstream_set,
			.dns_up_addr = cfg->dns_upstream_addr,
			.dns_up_port = cfg->dns_upstream_port,
			.include = cfg->include_cidrs,
			.exclude = cfg->exclude_cidrs,
		},
		.version = cfg->outbound_proxy_version,
		.proxy_source = d->proxy_source,
		.max_flows = d->max_flows,
		.max_inbound_flows = daemon_inbound_budget(d),
		.max_reass_segments = cfg->max_reass_segments,
		.connect_timeout_us = (int64_t)cfg->connect_timeout_ms * 1000,
		.tcp_idle_us = (int64_t)cfg->tcp_idle_timeout_ms * 1000,
		.guest = cfg->guest,
		.allow_host_loopback = cfg->allow_host_loopback,
		.pod_addrs = podaddrs_set(d->pod),
		.deny = cfg->deny_cidrs,
		.inbound_mode = cfg->inbound_mode,
		.inbound_trusted = cfg->inbound_trusted,
		.inbound_trust_pod = cfg->inbound_trust_pod,
		.header_timeout_us = (int64_t)cfg->inbound_header_timeout_ms * 1000,
		.expose = cfg->expose,
		.proxy_unix_path = cfg->outbound_proxy_unix,
		.unix_expose = d->ux,
	};
	char src[INET_ADDRSTRLEN], proxy[INET_ADDRSTRLEN];
	int ret;

	memcpy(bc.policy.exclude_ports, cfg->exclude_ports, sizeof(bc.policy.exclude_ports));
	ret = bridge_new(&bc, d->ns, &d->br);
	if (ret) {
		g_printerr("meshslirp: cannot create the flow table: %s\n", g_strerror(-ret));
		return ret;
	}
	if (cfg->outbound_proxy_set) {
		inet_ntop(AF_INET, &bc.proxy_source, src, sizeof(src));
		inet_ntop(AF_INET, &cfg->outbound_proxy_addr, proxy, sizeof(proxy));
		g_autofree char *target = cfg->outbound_proxy_unix
			? g_strdup_printf("unix:%s", cfg->outbound_proxy_unix)
			: g_strdup_printf("%s:%u", proxy, cfg->outbound_proxy_port);

		g_message("steering guest TCP to %s with PROXY %s headers (source %s), "
			  "%u include and %u exclude CIDRs, up to %zu flows",
			  target,
			  cfg->outbound_proxy_version == PROXY_V2 ? "v2" : "v1", src,
			  cfg->include_cidrs->len, cfg->exclude_cidrs->len, bc.max_flows);
	} else {
		g_message("direct mode: guest TCP leaves as ordinary sockets of this namespace");
	}
	g_message("flow table %zu (exposed-port connections %zu at most); connect timeout %u ms, "
		  "TCP idle timeout %u ms%s",
		  bc.max_flows, MIN(bridge_inbound_limit(&bc), bc.max_flows),
		  cfg->connect_timeout_ms, cfg->tcp_idle_timeout_ms,
		  cfg->tcp_idle_timeout_ms ? "" : " (never)");
	if (cfg->inbound_mode != BRIDGE_INBOUND_OFF)
		g_message("exposed ports expect a PROXY header (%s), timeout %u ms",
			  cfg->inbound_mode == BRIDGE_INBOUND_REQUIRED ? "required" : "optional",
			  cfg->inbound_header_timeout_ms);
	if (cfg->dns_upstream_set) {
		inet_ntop(AF_INET, &cfg->dns_upstream_addr, proxy, sizeof(proxy));
		g_message("guest DNS goes to %s:%u", proxy, cfg->dns_upstream_port);
	}
	return 0;
}

static enum ksteer_route daemon_ksteer_route(uint32_t daddr, uint16_t sport, uint16_t dport,
					     void *opaque)
{
	struct daemon *d = opaque;

	switch (bridge_tcp_path(d->br, daddr, sport, dport)) {
	case BRIDGE_TCP_STEER:
		return KSTEER_ROUTE_SIDECAR;
	case BRIDGE_TCP_DIRECT:
		return KSTEER_ROUTE_DIRECT;
	default:
		return KSTEER_ROUTE_NONE;
	}
}

static int daemon_ksteer_tx(const uint8_t *frame, size_t len, const struct frame_meta *meta,
			    void *opaque)
{
	struct daemon *d = opaque;

	return d->be ? backend_send(d->be, frame, len, meta) : -ENOTCONN;
}

static void daemon_ksteer_flush(void *opaque)
{
	struct daemon *d = opaque;

	if (d->be)
		backend_flush(d->be);
}

static uint32_t daemon_ksteer_offloads(void *opaque)
{
	struct daemon *d = opaque;

	return d->be ? d->be->tx_offloads : 0;
}

/*
 * --steer-stack kernel or auto: the private stack for the guest's TCP to
 * other hosts (ksteer.h), steered to the sidecar and direct alike; without
 * --outbound-proxy every such flow is direct.  kernel fails the start when
 * it cannot be set up; auto says why once and leaves that TCP to libslirp,
 * for a pod without the privileges (no CAP_SYS_ADMIN and no user
 * namespaces under its seccomp profile) or without /dev/net/tun.  Returns
 * 0 or -errno.
 */
static int daemon_setup_ksteer(struct daemon *d)
{
	const struct ms_config *cfg = d->cfg;
	struct ksteer_config kc = {
		.guest = cfg->guest,
		.proxy_addr = cfg->outbound_proxy_addr,
		.proxy_port = cfg->outbound_proxy_port,
		.proxy_unix_path = cfg->outbound_proxy_unix,
		.version = cfg->outbound_proxy_version,
		.proxy_source = d->proxy_source,
		/* Sized for the kernel path; daemon_start() sizes both once it is known. */
		.max_flows = daemon_flow_budget(cfg, true, false),
		.connect_timeout_us = (int64_t)cfg->connect_timeout_ms * 1000,
		.tcp_idle_us = (int64_t)cfg->tcp_idle_timeout_ms * 1000,
		.route = daemon_ksteer_route,
		.tx = daemon_ksteer_tx,
		.tx_flush = daemon_ksteer_flush,
		.tx_offloads = daemon_ksteer_offloads,
		.opaque = d,
	};
	const char *why = "";
	int ret;

	if (cfg->steer_stack == MS_STEER_SLIRP)
		return 0;
	ret = ksteer_new(&kc, &d->ks, &why);
	if (ret && cfg->steer_stack == MS_STEER_AUTO) {
		g_warning("--steer-stack auto: cannot %s: %s; the guest's TCP ends in libslirp, "
			  "the slower path (docs/PERFORMANCE.md)", why, g_strerror(-ret));
		return 0;
	}
	if (ret) {
		g_printerr("meshslirp: --steer-stack kernel: cannot %s: %s\n", why, g_strerror(-ret));
		return ret;
	}
	g_message("the guest's TCP ends in the kernel's stack (a private namespace), spliced to %s",
		  cfg->outbound_proxy_set ? "the sidecar (steered) or to its destination (excluded)"
					  : "its destination");
	return 0;
}

/*
 * Gather what the exposition shows into a snapshot (metrics_render.h) and
 * render it.
 */
void daemon_render_metrics(GString *o, void *opaque)
{
	const struct daemon *d = opaque;
	struct metrics_snapshot s = {
		.backend = &d->be->stats,
		.netstack = netstack_stats(d->ns),
		.bridge = bridge_stats(d->br),
		.offload = &d->offload,
		.udp_flows = bridge_udp_flow_count(d->br),
		.flows_reclaimed = bridge_flows_reclaimed(d->br),
		.reass_held = bridge_reass_held(d->br),
		.log_dropped = log_dropped_lines(),
		.libslirp_sockets = netstack_polled_sockets(d->ns),
		.pod_addresses = d->pod ? podaddrs_set(d->pod)->len : 0,
		.unix_expose = d->ux ? unixexpose_stats(d->ux) : NULL,
		.kernel = d->ks ? ksteer_stats(d->ks) : NULL,
		.kernel_active = d->ks ? ksteer_active(d->ks) : 0,
		.kernel_active_direct = d->ks ? ksteer_active_direct(d->ks) : 0,
		.loop_stats = &d->loop_stats,
		.busy_poll_us = d->busy_poll_us,
		.sched = &d->sched,
		.sched_policy = d->sched_policy,
		.metrics_clients = metrics_client_stats(d->metrics),
		.control_clients = control_client_stats(d->control),
	};

	for (int i = 0; i < FLOW_STATE_COUNT; i++)
		s.flows[i] = bridge_flow_count(d->br, i);
	bridge_direct_tcp_counts(d->br, s.direct_tcp_flows);
	metrics_render(o, &s);
}

/*
 * --sched: batch switches the data thread (this one) now; auto will switch it
 * while the traffic is bulk, on the kernel path only (libslirp's path, where
 * the daemon's own work is the bottleneck, lost 7% out with it:
 * docs/PERFORMANCE.md), and only from SCHED_OTHER: a thread started under
 * another policy (an operator's chrt) is left alone, as is one whose policy
 * cannot be read.  Never fails: the policy is an optimisation.
 */
static void daemon_setup_sched(struct daemon *d)
{
	int ret;

	d->sched = (struct schedmode){ 0 };
	d->sched_policy = d->cfg->sched;
	if (d->sched_policy == SCHEDMODE_AUTO && !d->ks) {
		g_message("--sched auto: the data thread stays SCHED_OTHER (SCHED_BATCH only on "
			  "the kernel path, --steer-stack kernel)");
		d->sched_policy = SCHEDMODE_NORMAL;
	}
	if (d->sched_policy == SCHEDMODE_NORMAL)
		return;
	ret = schedmode_current_is_other();
	if (ret != 1) {
		g_message("--sched %s: the data thread keeps the policy it was started with (%s)",
			  schedmode_policy_name(d->sched_policy),
			  ret < 0 ? g_strerror(-ret) : "not SCHED_OTHER");
		d->sched_policy = SCHEDMODE_NORMAL;
		return;
	}
	if (d->sched_policy == SCHEDMODE_AUTO)
		return;
	ret = schedmode_apply(true);
	schedmode_switched(&d->sched, ret);
	if (ret) {
		g_warning("--sched batch: cannot switch the data thread to SCHED_BATCH (%s)",
			  g_strerror(-ret));
		d->sched_policy = SCHEDMODE_NORMAL;
	}
}

static int daemon_setup_metrics(struct daemon *d)
{
	char addr[INET_ADDRSTRLEN];
	int ret;

	if (!d->cfg->metrics_set)
		return 0;
	inet_ntop(AF_INET, &d->cfg->metrics_addr.sin_addr, addr, sizeof(addr));
	ret = metrics_start(&d->cfg->metrics_addr, daemon_render_metrics, d, &d->metrics);
	if (ret)
		g_printerr("meshslirp: --metrics %s:%u: %s\n", addr,
			   ntohs(d->cfg->metrics_addr.sin_port), g_strerror(-ret));
	else
		g_message("metrics on http://%s:%u/metrics", addr, ntohs(d->cfg->metrics_addr.sin_port));
	return ret;
}

static int daemon_setup_control(struct daemon *d)
{
	int ret;

	if (!d->cfg->control_path)
		return 0;
	ret = control_start(d->cfg->control_path, d, &d->control);
	if (ret == -EADDRINUSE)
		g_printerr("meshslirp: --control %s: another process is serving this socket\n",
			   d->cfg->control_path);
	else if (ret)
		g_printerr("meshslirp: --control %s: %s\n", d->cfg->control_path, g_strerror(-ret));
	else
		g_message("control socket on %s", d->cfg->control_path);
	return ret;
}

int daemon_start(struct daemon *d, const struct ms_config *cfg)
{
	struct netstack_config nc = {
		.network = cfg->network,
		.netmask = cfg->netmask,
		.gateway = cfg->gateway,
		.dns = cfg->dns,
		.guest = cfg->guest,
		.mtu = cfg->mtu,
	};
	int ret;

	d->cfg = cfg;
	d->ns = NULL;
	d->br = NULL;
	d->be = NULL;
	d->metrics = NULL;
	d->control = NULL;
	d->pod = NULL;
	d->ux = NULL;
	d->ks = NULL;
	d->offload = (struct daemon_offload_stats){ 0 };
	d->sched = (struct schedmode){ 0 };
	d->sched_policy = SCHEDMODE_NORMAL; /* until daemon_setup_sched() */
	d->sched_timer = 0;
	ret = podaddrs_new(&d->pod);
	if (ret) {
		g_printerr("meshslirp: cannot read this namespace's addresses (rtnetlink): %s\n",
			   g_strerror(-ret));
		return ret;
	}
	g_message("pod addresses: %zu (refused to the guest%s)", podaddrs_set(d->pod)->len,
		  cfg->inbound_trust_pod ? ", trusted for inbound PROXY headers" : "");
	ret = netstack_new(&nc, &daemon_netstack_ops, d, &d->ns);
	if (ret) {
		g_printerr("meshslirp: cannot create the network stack: %s\n",
			   g_strerror(-ret));
		daemon_stop(d);
		return ret;
	}
	ret = daemon_setup_unix_expose(d);
	if (!ret)
		ret = daemon_setup_proxy_source(d);
	if (!ret)
		ret = daemon_setup_ksteer(d);
	if (!ret) {
		/* Charged for the kernel path only where it runs: a fallback keeps its whole table. */
		d->max_flows = daemon_flow_budget(cfg, d->ks != NULL, true);
		ret = daemon_setup_bridge(d);
	}
	if (!ret)
		daemon_setup_sched(d); /* after the kernel path, before the backend's callbacks */
	if (!ret)
		ret = daemon_setup_expose(d);
	if (!ret)
		ret = daemon_setup_backend(d);
	if (!ret)
		ret = daemon_setup_metrics(d);
	if (!ret)
		ret = daemon_setup_control(d);
	if (ret)
		daemon_stop(d);
	return ret;
}

void daemon_stop(struct daemon *d)
{
	/* Hand the thread back as it came (a test may start another daemon on it). */
	if (d->sched_timer)
		g_source_remove(d->sched_timer);
	d->sched_timer = 0;
	(void)schedmode_restore(&d->sched);
	control_stop(d->control);
	d->control = NULL;
	metrics_stop(d->metrics);
	d->metrics = NULL;
	backend_free(d->be);
	d->be = NULL;
	ksteer_free(d->ks);
	d->ks = NULL;
	bridge_free(d->br);
	d->br = NULL;
	/* The relay entries daemon_setup_unix_expose() added: a restart adds them anew. */
	for (guint i = d->ux ? d->cfg->expose->len : 0; i-- > 0;) {
		if (unixexpose_is_relay(d->ux,
					g_array_index(d->cfg->expose, struct bridge_expose, i).host_port))
			g_array_remove_index(d->cfg->expose, i);
	}
	unixexpose_free(d->ux);
	d->ux = NULL;
	netstack_free(d->ns);
	d->ns = NULL;
	podaddrs_free(d->pod);
	d->pod = NULL;
}
