/* policy.h - which guest flows go to the sidecar, stay direct, or are refused (pure). */
#ifndef MESHSLIRP_PB_POLICY_H
#define MESHSLIRP_PB_POLICY_H

/*
 * Mirrors Istio's sidecar annotations (includeOutboundIPRanges,
 * excludeOutboundIPRanges, excludeOutboundPorts).  It decides only among
 * destinations the guest may reach at all: egress.c refuses everything local
 * to the pod (loopback, the pod's addresses, the sidecar's own ports, ...)
 * before a flow gets here.  In this order:
 *
 *  1. DNS (port 53) to the guest's DNS address with --dns-upstream: DNS.
 *  2. Anything else to the gateway, the DNS address or the guest network
 *     (host loopback, when allowed; libslirp's own DNS): DIRECT, never
 *     steered into a loop.
 *  3. Without --outbound-proxy: DIRECT.
 *  4. Excluded port, excluded CIDR, or outside the include list: DIRECT.
 *  5. Otherwise TCP is STEERed; other UDP is DIRECT.
 *
 * Addresses are in network order, ports in host order.
 */

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include <glib.h>

struct policy_cidr {
	uint32_t net, mask;        /* network order */
};

enum policy_verdict {
	POLICY_DIRECT,
	POLICY_STEER,
	POLICY_DNS,
};

struct policy {
	struct in_addr network, netmask, gateway, dns;

	bool steer;                        /* --outbound-proxy given */
	struct in_addr proxy_addr;         /* as configured (may be 127.0.0.1) */
	uint16_t proxy_port;

	bool dns_upstream;                 /* --dns-upstream given */
	struct in_addr dns_up_addr;
	uint16_t dns_up_port;

	GArray *include;                   /* struct policy_cidr; empty = everything */
	GArray *exclude;                   /* struct policy_cidr */
	uint8_t exclude_ports[65536 / 8];  /* bitmap */
};

/* policy_cidr_parse() - parse "A.B.C.D/N" (or a bare address, /32). 0 or -EINVAL. */
int policy_cidr_parse(const char *s, struct policy_cidr *out);

/* policy_cidr_match() - is @addr (network order) inside @c? */
bool policy_cidr_match(const struct policy_cidr *c, uint32_t addr);

/* policy_tcp() - verdict for a new guest TCP connection to @daddr:@dport. */
enum policy_verdict policy_tcp(const struct policy *p, uint32_t daddr, uint16_t dport);

/* policy_udp() - verdict for a guest UDP datagram to @daddr:@dport. */
enum policy_verdict policy_udp(const struct policy *p, uint32_t daddr, uint16_t dport);

#endif /* MESHSLIRP_PB_POLICY_H */
