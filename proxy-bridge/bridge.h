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
 *    recorded under both views (flowtab.h).
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
 * Refusals (a guest reaching the sidecar's own ports, a full flow table, no
 * free stack port) get a RST for TCP or a drop for UDP, a counter, and a
 * rate-limited log line naming the flow and the reason.
 *
 * Ownership: the bridge owns its flow table; it borrows the netstack and
 * the policy's arrays, which must outlive it.
 */

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "netstack/netstack.h"
#include "proxy-bridge/flowtab.h"
#include "proxy-bridge/policy.h"
#include "proxy-bridge/proxy_proto.h"

#define BRIDGE_DEFAULT_MAX_FLOWS 16384

struct bridge_config {
	struct policy policy;          /* copied; its arrays are borrowed */
	enum proxy_version version;    /* header towards the sidecar */
	struct in_addr proxy_source;   /* source address in the header */
	size_t max_flows;
};

enum bridge_refusal {
	BRIDGE_REFUSED_SIDECAR_PORT,   /* guest tried to reach the sidecar directly */
	BRIDGE_REFUSED_TABLE_FULL,     /* --max-flows reached */
	BRIDGE_REFUSED_NO_PORT,        /* no free stack port towards the target */
	BRIDGE_REFUSAL_COUNT,
};

struct bridge_stats {
	uint64_t flows_steered;        /* TCP flows sent to the sidecar */
	uint64_t flows_dns;            /* flows sent to --dns-upstream */
	uint64_t refused[BRIDGE_REFUSAL_COUNT];
	uint64_t headers_written;
	uint64_t connect_failed;       /* sidecar or upstream refused / unreachable */
	uint64_t header_failed;        /* connected, but the header could not be written */
	uint64_t frames_to_stack;      /* guest frames rewritten */
	uint64_t frames_to_guest;      /* stack frames rewritten */
	uint64_t icmp_rewritten;       /* ICMP errors whose embedded header was rewritten */
	uint64_t syn_timeouts;         /* flows libslirp never opened a socket for */
};

struct bridge;

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

/* bridge_flow_count() - flows in @state. */
size_t bridge_flow_count(const struct bridge *br, enum flow_state state);

#endif /* MESHSLIRP_PB_BRIDGE_H */
