/* policy.h - which guest flows go to the sidecar, stay direct, or are refused (pure). */
#ifndef MESHSLIRP_PB_POLICY_H
#define MESHSLIRP_PB_POLICY_H

/*
 * Mirrors Istio's sidecar annotations (includeOutboundIPRanges,
 * excludeOutboundIPRanges, excludeOutboundPorts) and adds the rules that keep
 * the guest from reaching the sidecar itself, in this order:
 *
 *  1. TCP or UDP to the gateway (the pod's loopback) on Envoy's ports
 *     15000-15090, or on the configured proxy or DNS upstream port: REFUSE.
 *     A guest that could talk to the outbound listener directly could send
 *     its own PROXY header and claim any destination or source.
 *  2. TCP to a non-loopback proxy address on those ports: REFUSE, same reason.
 *  3. DNS (port 53) to the guest's DNS address with --dns-upstream: DNS.
 *  4. Anything else to the gateway, the DNS address, the guest network,
 *     loopback, multicast or broadcast: DIRECT (never steered into a loop).
 *  5. Without --outbound-proxy: DIRECT.
 *  6. Excluded port, excluded CIDR, or outside the include list: DIRECT.
 *  7. Otherwise TCP is STEERed; other UDP is DIRECT.
 *
 * Addresses are in network order, ports in host order.
 */

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include <glib.h>

#define POLICY_ENVOY_PORT_MIN 15000
#define POLICY_ENVOY_PORT_MAX 15090

struct policy_cidr {
	uint32_t net, mask;        /* network order */
};

enum policy_verdict {
	POLICY_DIRECT,
	POLICY_STEER,
	POLICY_DNS,
	POLICY_REFUSE,
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
