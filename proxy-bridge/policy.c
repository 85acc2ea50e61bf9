/* policy.c - which guest flows go to the sidecar, stay direct, or are refused (pure). */

#include "policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

int policy_cidr_parse(const char *s, struct policy_cidr *out)
{
	g_auto(GStrv) parts = g_strsplit(s, "/", 2);
	struct in_addr a;
	unsigned long len = 32;
	char *end;

	if (!parts[0] || inet_pton(AF_INET, parts[0], &a) != 1)
		return -EINVAL;
	if (parts[1]) {
		if (!g_ascii_isdigit(parts[1][0]))
			return -EINVAL;
		len = strtoul(parts[1], &end, 10);
		if (*end || len > 32)
			return -EINVAL;
	}
	out->mask = len ? htonl(~(uint32_t)0 << (32 - len)) : 0;
	if (a.s_addr & ~out->mask)
		return -EINVAL; /* host bits set: almost always a typo */
	out->net = a.s_addr;
	return 0;
}

bool policy_cidr_match(const struct policy_cidr *c, uint32_t addr)
{
	return (addr & c->mask) == c->net;
}

static bool policy_any_match(const GArray *list, uint32_t addr)
{
	for (guint i = 0; list && i < list->len; i++) {
		if (policy_cidr_match(&g_array_index(list, struct policy_cidr, i), addr))
			return true;
	}
	return false;
}

/*
 * Addresses that are never steered: they are not out in the mesh.  egress.c
 * refuses all of them but the gateway and the DNS address before a flow gets
 * here; the rest stay as a second line, so the policy never steers into a
 * loop whatever the egress rule lets through.
 */
static bool policy_local(const struct policy *p, uint32_t daddr)
{
	uint32_t h = ntohl(daddr);

	return (daddr & p->netmask.s_addr) == p->network.s_addr ||
	       (h >> 24) == 127 || (h >> 24) == 0 || (h >> 28) >= 0xe;
}

enum policy_verdict policy_tcp(const struct policy *p, uint32_t daddr, uint16_t dport)
{
	if (p->dns_upstream && daddr == p->dns.s_addr && dport == 53)
		return POLICY_DNS;
	if (policy_local(p, daddr) || !p->steer)
		return POLICY_DIRECT;
	if (p->exclude_ports[dport / 8] & (1u << (dport % 8)))
		return POLICY_DIRECT;
	if (policy_any_match(p->exclude, daddr))
		return POLICY_DIRECT;
	if (p->include && p->include->len && !policy_any_match(p->include, daddr))
		return POLICY_DIRECT;
	return POLICY_STEER;
}

enum policy_verdict policy_udp(const struct policy *p, uint32_t daddr, uint16_t dport)
{
	if (p->dns_upstream && daddr == p->dns.s_addr && dport == 53)
		return POLICY_DNS;
	return POLICY_DIRECT;
}
