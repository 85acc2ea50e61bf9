/* egress.h - where the guest may send: one rule for TCP, UDP and ICMP (pure, no I/O). */
#ifndef MESHSLIRP_PB_EGRESS_H
#define MESHSLIRP_PB_EGRESS_H

/*
 * The guest is untrusted and the pod is not its to reach.  libslirp opens a
 * host socket of the daemon's for every guest flow, and in a mesh pod the
 * daemon's loopback and addresses lead to Envoy's admin port, its outbound
 * listener (where a guest could write its own PROXY header) and every other
 * container's localhost-only service.  So every packet that could make
 * libslirp open a socket is judged here first, before libslirp sees it, and
 * everything local to the pod is refused, however its address is spelled:
 *
 *   destination                          verdict
 *   ───────────────────────────────────  ─────────────────────────────────────
 *   gateway, UDP port 67                 ALLOW (DHCP: libslirp answers itself)
 *   gateway, ICMP echo                   ALLOW (libslirp answers itself)
 *   gateway, TCP/UDP                     HOST_LOOPBACK: libslirp would connect
 *                                        to the pod's 127.0.0.1 (slirp quirk
 *                                        gateway_to_loopback); only with
 *                                        --allow-host-loopback, and then
 *                                        SIDECAR_PORT on the sidecar's ports
 *   DNS address, TCP/UDP port 53, ICMP   ALLOW (DNS: libslirp or --dns-upstream)
 *   DNS address, any other port          DNS_PORT
 *   255.255.255.255, UDP port 67         ALLOW (DHCP)
 *   255.255.255.255, anything else       BROADCAST (libslirp maps it to loopback:
 *                                        slirp quirk broadcast_to_loopback)
 *   rest of the guest network            GUEST_NETWORK (no such host: the
 *                                        guest network is virtual)
 *   127.0.0.0/8                          LOOPBACK
 *   0.0.0.0/8                            UNSPECIFIED (0.0.0.0 is this host)
 *   224.0.0.0/4                          MULTICAST
 *   240.0.0.0/4                          RESERVED
 *   an address of the pod's interfaces   POD_ADDRESS (and their broadcast
 *   (struct addrset, kept current)       addresses)
 *   a --deny-outbound-cidr range         DENIED (default: Istio ambient's
 *                                        probe address, see below)
 *   a non-loopback sidecar address on    SIDECAR_PORT
 *   the sidecar's ports
 *   anything else                        ALLOW (out into the mesh or the world;
 *                                        steering is policy.c's business)
 *
 * The sidecar's ports are Envoy's 15000-15090 plus the configured outbound
 * proxy and DNS upstream ports.  Refusing them even where host loopback is
 * allowed keeps a guest from speaking to the sidecar as if it were the
 * daemon.  The bridge answers a refused TCP SYN with a reset, an ICMP echo
 * with "communication administratively prohibited", and drops UDP; each is
 * counted by verdict.
 *
 * The deny list is the operator's.  Its default holds the one destination an
 * Istio ambient pod's capture rules leave alone for every process:
 * 169.254.7.127, where istio-cni SNATs the kubelet's probes on the node.  Its
 * in-pod nat OUTPUT rules accept TCP to it before the redirect to ztunnel's
 * 15001, so a guest flow there would leave the pod without ztunnel
 * (docs/ISTIO.md, "Ambient mode").  The rest of what ambient leaves uncaptured
 * (loopback, the pod's own addresses over lo) is refused above anyway.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/addrset.h"
#include "proxy-bridge/policy.h"

#define EGRESS_ENVOY_PORT_MIN 15000
#define EGRESS_ENVOY_PORT_MAX 15090
#define EGRESS_DHCP_SERVER_PORT 67
#define EGRESS_DHCP_CLIENT_PORT 68
#define EGRESS_DNS_PORT_NUMBER 53
/* istio-cni's HOST_PROBE_SNAT_IP default (Istio 1.21 to 1.30 at least). */
#define EGRESS_AMBIENT_PROBE_CIDR "169.254.7.127/32"

enum egress_verdict {
	EGRESS_ALLOW,
	EGRESS_LOOPBACK,
	EGRESS_UNSPECIFIED,
	EGRESS_BROADCAST,
	EGRESS_MULTICAST,
	EGRESS_RESERVED,
	EGRESS_POD_ADDRESS,
	EGRESS_HOST_LOOPBACK,
	EGRESS_SIDECAR_PORT,
	EGRESS_GUEST_NETWORK,
	EGRESS_DNS_PORT,
	EGRESS_DENIED,
	EGRESS_VERDICT_COUNT,
};

/* Everything the rule looks at; addresses in network order, ports in host order. */
struct egress_rule {
	uint32_t network, netmask;     /* the guest network */
	uint32_t gateway, dns;         /* libslirp's virtual host and DNS server */
	bool allow_host_loopback;      /* --allow-host-loopback */
	uint32_t proxy_addr;           /* the sidecar's address if not loopback, else 0 */
	uint16_t proxy_port;           /* --outbound-proxy port, 0 if none */
	uint16_t dns_up_port;          /* --dns-upstream port, 0 if none */
	const struct addrset *pod;     /* the pod's own addresses (borrowed), or NULL */
	const struct policy_cidr *deny; /* --deny-outbound-cidr (borrowed), n_deny entries */
	size_t n_deny;
};

/**
 * egress_check() - may the guest send @proto to @daddr:@dport?
 * @proto:	IPPROTO_TCP, IPPROTO_UDP or IPPROTO_ICMP (an echo request; @dport unused)
 *
 * Return: EGRESS_ALLOW, or why the destination is refused.
 */
enum egress_verdict egress_check(const struct egress_rule *r, uint8_t proto, uint32_t daddr,
				 uint16_t dport);

/* egress_sidecar_port() - is @port one of the sidecar's own ports under @r? */
bool egress_sidecar_port(const struct egress_rule *r, uint16_t port);

/* egress_verdict_str() - metric label for @v ("loopback", "pod_address", ...). */
const char *egress_verdict_str(enum egress_verdict v);

/* egress_is_loopback() - is @addr (network order) in 127.0.0.0/8? */
static inline bool egress_is_loopback(uint32_t addr)
{
	return (((const uint8_t *)&addr)[0]) == 127;
}

#endif /* MESHSLIRP_PB_EGRESS_H */
