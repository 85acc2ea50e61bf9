/* egress.c - where the guest may send: one rule for TCP, UDP and ICMP (pure, no I/O). */

#include "egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <glib.h>

static const char *const egress_verdict_names[EGRESS_VERDICT_COUNT] = {
	[EGRESS_ALLOW] = "allow",
	[EGRESS_LOOPBACK] = "loopback",
	[EGRESS_UNSPECIFIED] = "unspecified",
	[EGRESS_BROADCAST] = "broadcast",
	[EGRESS_MULTICAST] = "multicast",
	[EGRESS_RESERVED] = "reserved",
	[EGRESS_POD_ADDRESS] = "pod_address",
	[EGRESS_HOST_LOOPBACK] = "host_loopback",
	[EGRESS_SIDECAR_PORT] = "sidecar_port",
	[EGRESS_GUEST_NETWORK] = "guest_network",
	[EGRESS_DNS_PORT] = "dns_port",
	[EGRESS_DENIED] = "denied",
};
G_STATIC_ASSERT(G_N_ELEMENTS(egress_verdict_names) == EGRESS_VERDICT_COUNT);

const char *egress_verdict_str(enum egress_verdict v)
{
	return (unsigned int)v < EGRESS_VERDICT_COUNT ? egress_verdict_names[v] : "unknown";
}

bool egress_sidecar_port(const struct egress_rule *r, uint16_t port)
{
	return (port >= EGRESS_ENVOY_PORT_MIN && port <= EGRESS_ENVOY_PORT_MAX) ||
	       (r->proxy_port && port == r->proxy_port) ||
	       (r->dns_up_port && port == r->dns_up_port);
}

/* The gateway: libslirp's convenience path to the pod's 127.0.0.1. */
static enum egress_verdict egress_gateway(const struct egress_rule *r, uint8_t proto,
					  uint16_t dport)
{
	if (proto == IPPROTO_ICMP || (proto == IPPROTO_UDP && dport == EGRESS_DHCP_SERVER_PORT))
		return EGRESS_ALLOW;
	if (!r->allow_host_loopback)
		return EGRESS_HOST_LOOPBACK;
	return egress_sidecar_port(r, dport) ? EGRESS_SIDECAR_PORT : EGRESS_ALLOW;
}

enum egress_verdict egress_check(const struct egress_rule *r, uint8_t proto, uint32_t daddr,
				 uint16_t dport)
{
	uint32_t h = ntohl(daddr);

	if (daddr == r->gateway)
		return egress_gateway(r, proto, dport);
	if (daddr == r->dns)
		return proto == IPPROTO_ICMP || dport == EGRESS_DNS_PORT_NUMBER ? EGRESS_ALLOW
										 : EGRESS_DNS_PORT;
	if (h == 0xffffffffu)
		return proto == IPPROTO_UDP && dport == EGRESS_DHCP_SERVER_PORT ? EGRESS_ALLOW
										 : EGRESS_BROADCAST;
	if ((daddr & r->netmask) == r->network)
		return EGRESS_GUEST_NETWORK;
	if ((h >> 24) == 127)
		return EGRESS_LOOPBACK;
	if ((h >> 24) == 0)
		return EGRESS_UNSPECIFIED;
	if ((h >> 28) == 0xe)
		return EGRESS_MULTICAST;
	if ((h >> 28) == 0xf)
		return EGRESS_RESERVED;
	if (r->pod && addrset_contains(r->pod, daddr))
		return EGRESS_POD_ADDRESS;
	for (size_t i = 0; i < r->n_deny; i++) {
		if (policy_cidr_match(&r->deny[i], daddr))
			return EGRESS_DENIED;
	}
	if (r->proxy_addr && daddr == r->proxy_addr && proto != IPPROTO_ICMP &&
	    egress_sidecar_port(r, dport))
		return EGRESS_SIDECAR_PORT;
	return EGRESS_ALLOW;
}
