/* flow_direct.c - direct flows: to the guest's own destination, not rewritten, but counted and timed. */

/*
 * What the policy lets go to its own destination (no sidecar, or a port or
 * network excluded from steering) is not rewritten: libslirp connects where
 * the guest asked.  It is still a flow, with skey == gkey, so that
 * --max-flows and the timeouts bound every socket a guest can make libslirp
 * open, not only the steered ones.
 *
 * State machine: flow_outbound.c's, TCP and UDP alike, except that failures
 * are the guest's own business: nothing is logged, a silent destination is
 * counted as a connect timeout and a refusing one not at all, and frames
 * keep their addresses:
 *
 * | state      | event                     | next   | sends                         |
 * |------------|---------------------------|--------|-------------------------------|
 * | CONNECTING | socket writable, no error | OPEN   | -                             |
 * | CONNECTING | connect error or timeout  | CLOSED | libslirp resets the guest; no |
 * |            |                           |        | log line                      |
 */

#include "proxy-bridge/bridge_internal.h"

static enum netstack_verdict flow_direct_open(struct bridge *br, struct rw_view *v,
					      const struct flow_key *gkey)
{
	if (!flow_outbound_open(br, v, gkey, FLOW_DIRECT, gkey->raddr, gkey->rport))
		return NETSTACK_CONSUMED;
	br->stats.flows_direct++;
	return NETSTACK_PASS;
}

const struct flow_ops flow_direct_ops = {
	.name = "direct",
	.rewrites = false,
	.open = flow_direct_open,
	.guest_syn = flow_outbound_guest_syn,
	.guest_frame = bridge_to_stack,
	.stack_frame = bridge_to_guest,
	.fd_registered = flow_outbound_fd_registered,
	.fd_events = flow_outbound_fd_events,
	.expire = flow_outbound_expire,
};
