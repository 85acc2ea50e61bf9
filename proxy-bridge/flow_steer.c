/* flow_steer.c - steered flows: into the sidecar, led by a PROXY header naming the original destination. */

/*
 * A guest TCP connection the policy steers is rewritten, before libslirp
 * sees it, from guest:port -> D:P to guest:S -> T (T the sidecar, S a fresh
 * stack port), and every frame back from T:S to D:P.  Between libslirp's
 * connect and its first byte the sidecar gets a PROXY header naming D:P
 * (bridge.h, "Theory of operation (outbound)").
 *
 * State machine: flow_outbound.c's, with these differences:
 *
 * | state      | event                                 | next       | sends                                   |
 * |------------|---------------------------------------|------------|-----------------------------------------|
 * | SYN        | libslirp registers the socket         | CONNECTING | [unix leg] a UDP placeholder goes under |
 * |            |                                       |            | the fd, so libslirp's connect() passes  |
 * | CONNECTING | slirp_input() returns [unix leg]      | CONNECTING | the sidecar's unix socket replaces the  |
 * |            |                                       |            | placeholder (or a socket whose send     |
 * |            |                                       |            | fails: libslirp resets the guest)       |
 * | CONNECTING | socket writable, no error             | OPEN       | PROXY header to the sidecar, before     |
 * |            |                                       |            | libslirp sees POLLOUT                   |
 * | CONNECTING | header send fails or is short         | CLOSED     | shutdown: libslirp resets the guest     |
 *
 * UDP is never steered (the policy sends only TCP to the sidecar).
 *
 * Ownership: the unix-leg templates are the bridge's (opened in bridge_new()
 * when --outbound-proxy is a unix path); the unix socket, once installed,
 * is libslirp's descriptor.  Nothing is allocated per flow.
 */

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include <glib.h>
#include <libslirp.h>

#include "common/tcpcc.h"
#include "proxy-bridge/bridge_internal.h"
#include "proxy-bridge/proxy_proto.h"

static enum netstack_verdict flow_steer_open(struct bridge *br, struct rw_view *v,
					     const struct flow_key *gkey)
{
	if (!flow_outbound_open(br, v, gkey, FLOW_STEER, br->steer_taddr, br->steer_tport))
		return NETSTACK_CONSUMED;
	br->stats.flows_steered++;
	return NETSTACK_PASS;
}

/* "sidecar 127.0.0.1:15001" or "sidecar unix:PATH". */
static const char *flow_steer_upstream(const struct bridge *br, const struct flow *f, char *buf,
				       size_t len)
{
	const struct policy *p = &br->cfg.policy;
	char addr[32];

	(void)f;
	if (br->cfg.proxy_unix_path) {
		snprintf(buf, len, "sidecar unix:%s", br->cfg.proxy_unix_path);
		return buf;
	}
	snprintf(buf, len, "sidecar %s",
		 bridge_fmt(addr, sizeof(addr), p->proxy_addr.s_addr, htons(p->proxy_port)));
	return buf;
}

static void flow_steer_fd_registered(struct bridge *br, struct flow *f, int fd)
{
	flow_outbound_fd_registered(br, f, fd);
	/*
	 * Unix leg, step 1 (unixleg.h): libslirp connect()s this descriptor
	 * next, which only a UDP socket survives without traffic.  dup3()
	 * between two open descriptors does not fail; if it ever did,
	 * flow_steer_input_done() still replaces whatever is there.
	 */
	if (br->cfg.proxy_unix_path) {
		(void)unixleg_park(&br->unix_tmpl, fd);
		f->u.steer.unix_parked = true;
		return;
	}
	/* Before libslirp's connect(): the leg to the sidecar does not pace (tcpcc.h). */
	(void)tcpcc_set_unpaced(fd);
}

/*
 * The unix leg, step 2 of unixleg.h: libslirp's connect() on the parked
 * socket is done, the netstack does not watch the descriptor yet.  Put the
 * sidecar's unix socket there, or, when the sidecar cannot be reached, a
 * socket whose send() fails, so libslirp resets the guest as for a refused
 * TCP connect.
 */
static void flow_steer_input_done(struct bridge *br, struct flow *f)
{
	int ret, u;

	if (!f->u.steer.unix_parked)
		return;
	f->u.steer.unix_parked = false;
	/* libslirp gave up on it inside slirp_input() (and closed it): nothing to do. */
	if (f->fd < 0 || f->state != FLOW_CONNECTING)
		return;
	ret = unixleg_connect(br->cfg.proxy_unix_path, &u);
	if (!ret)
		ret = unixleg_install(u, f->fd);
	if (!ret) {
		f->u.steer.unix_leg = true;
		br->stats.unix_legs++;
		return;
	}
	br->stats.unix_leg_failures++;
	if (unixleg_install_refused(&br->unix_tmpl, f->fd)) {
		/*
		 * Cannot happen (dup3 between two open descriptors), but the
		 * parked UDP socket must not stay: disconnected, its send()
		 * fails with EDESTADDRREQ, which libslirp takes as a refusal.
		 */
		struct sockaddr sa = { .sa_family = AF_UNSPEC };

		(void)connect(f->fd, &sa, sizeof(sa));
	}
	flow_outbound_connect_failed(br, f, -ret);
}

/* Write the PROXY header on a socket that just connected; 0 or -errno. */
static int flow_steer_write_header(struct bridge *br, struct flow *f)
{
	uint8_t hdr[PROXY_HDR_MAX];
	struct proxy_addrs a = {
		.src = br->cfg.proxy_source, .sport = f->gkey.lport,
		.dst.s_addr = f->gkey.raddr, .dport = f->gkey.rport,
	};
	int len = proxy_encode(br->cfg.version, &a, hdr);
	ssize_t n;

	do {
		n = send(f->fd, hdr, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* An empty send buffer always takes ~100 bytes; anything less is broken. */
	return n == len ? 0 : -EIO;
}

static int flow_steer_fd_events(struct bridge *br, struct flow *f, int revents)
{
	int ret;

	revents = bridge_unix_revents(f->u.steer.unix_leg, revents);
	if (!flow_outbound_connected(br, f, revents))
		return revents;
	ret = flow_steer_write_header(br, f);
	if (ret) {
		br->stats.header_failed++;
		flow_outbound_connect_failed(br, f, -ret);
		/* Makes libslirp's probe fail too (slirp quirk connect_probe). */
		shutdown(f->fd, SHUT_RDWR);
		return revents;
	}
	br->stats.headers_written++;
	flow_outbound_opened(br, f);
	return revents;
}

const struct flow_ops flow_steer_ops = {
	.name = "steered",
	.rewrites = true,
	.open = flow_steer_open,
	.guest_syn = flow_outbound_guest_syn,
	.guest_frame = bridge_to_stack,
	.stack_frame = bridge_to_guest,
	.fd_registered = flow_steer_fd_registered,
	.input_done = flow_steer_input_done,
	.fd_events = flow_steer_fd_events,
	.expire = flow_outbound_expire,
	.upstream = flow_steer_upstream,
};
