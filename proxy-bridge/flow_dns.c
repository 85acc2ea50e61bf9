/* flow_dns.c - DNS flows: the guest's queries to its DNS address, sent to --dns-upstream. */

/*
 * With --dns-upstream, UDP and TCP to the guest's DNS address port 53 are
 * rewritten to the upstream, as steered flows are to the sidecar, but
 * without a header: a resolver speaks plain DNS.  Without it, libslirp's own
 * DNS forwarding answers and no flow of this kind exists.
 *
 * State machine: flow_outbound.c's, TCP and UDP alike, with nothing added:
 *
 * | state      | event                     | next | sends |
 * |------------|---------------------------|------|-------|
 * | CONNECTING | socket writable, no error | OPEN | -     |
 *
 * A UDP flow's deadline follows libslirp's SO_EXPIREFAST: 10 s after a
 * reply, when the guest's last datagram from that port went to port 53 as
 * libslirp saw it, after the rewrite to the upstream (bridge_flow_seen()), so the table frees it when libslirp frees its
 * socket.
 */

#include <stdio.h>

#include "proxy-bridge/bridge_internal.h"

static enum netstack_verdict flow_dns_open(struct bridge *br, struct rw_view *v,
					   const struct flow_key *gkey)
{
	if (!flow_outbound_open(br, v, gkey, FLOW_DNS, br->dns_taddr, br->dns_tport))
		return NETSTACK_CONSUMED;
	br->stats.flows_dns++;
	return NETSTACK_PASS;
}

/* "DNS upstream 198.18.0.53:53". */
static const char *flow_dns_upstream(const struct bridge *br, const struct flow *f, char *buf,
				     size_t len)
{
	const struct policy *p = &br->cfg.policy;
	char addr[32];

	(void)f;
	snprintf(buf, len, "DNS upstream %s",
		 bridge_fmt(addr, sizeof(addr), p->dns_up_addr.s_addr, htons(p->dns_up_port)));
	return buf;
}

const struct flow_ops flow_dns_ops = {
	.name = "dns",
	.rewrites = true,
	.open = flow_dns_open,
	.guest_syn = flow_outbound_guest_syn,
	.guest_frame = bridge_to_stack,
	.stack_frame = bridge_to_guest,
	.fd_registered = flow_outbound_fd_registered,
	.fd_events = flow_outbound_fd_events,
	.expire = flow_outbound_expire,
	.upstream = flow_dns_upstream,
};
