/* rewrite.c - parse and rewrite IPv4 TCP/UDP/ICMP-error frames in place (pure, no I/O). */

#include "rewrite.h"

#include <string.h>
#include <netinet/in.h>

#include "common/csum.h"
#include "common/util.h"

#define IP_OFF_TOTLEN 2
#define IP_OFF_ID 4
#define IP_OFF_FRAG 6
#define IP_OFF_PROTO 9
#define IP_OFF_CSUM 10
#define IP_OFF_SADDR 12
#define IP_OFF_DADDR 16
#define IP_FRAG_OFFSET_MASK 0x1fff
#define IP_FRAG_MF 0x2000

#define TCP_OFF_SEQ 4
#define TCP_OFF_FLAGS 13
#define TCP_OFF_CSUM 16
#define TCP_OFF_URP 18
#define UDP_OFF_CSUM 6
#define ICMP_OFF_CSUM 2

/* Raw (network order) 16- and 32-bit fields, as the checksum code wants them. */
static uint16_t raw16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static uint32_t raw32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void put_raw16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put_raw32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Replace a 16-bit field and fold the change into checksum field @csum (may be NULL). */
static void rw_replace16(uint8_t *field, uint16_t to, uint8_t *csum)
{
	uint16_t from = raw16(field);

	if (from == to)
		return;
	if (csum) {
		uint16_t c = raw16(csum);

		csum_update16(&c, from, to);
		put_raw16(csum, c);
	}
	put_raw16(field, to);
}

/* As rw_replace16 for a 32-bit field, folded into up to three checksums. */
static void rw_replace32(uint8_t *field, uint32_t to, uint8_t *csum1, uint8_t *csum2,
			 uint8_t *csum3)
{
	uint32_t from = raw32(field);
	uint8_t *sums[3] = { csum1, csum2, csum3 };

	if (from == to)
		return;
	for (int i = 0; i < 3; i++) {
		uint16_t c;

		if (!sums[i])
			continue;
		c = raw16(sums[i]);
		csum_update32(&c, from, to);
		put_raw16(sums[i], c);
	}
	put_raw32(field, to);
}

/* A 16-bit field inside an ICMP payload: its own checksum and the ICMP one. */
static void rw_replace16_twice(uint8_t *field, uint16_t to, uint8_t *csum, uint8_t *outer)
{
	uint16_t from = raw16(field);

	rw_replace16(field, to, csum);
	if (outer) {
		uint16_t c = raw16(outer);

		csum_update16(&c, from, to);
		put_raw16(outer, c);
	}
}

/* Validate an IPv4 header at @ip with @avail bytes; returns its length or 0. */
static size_t rw_ip_header(const uint8_t *ip, size_t avail, size_t *tot)
{
	size_t ihl;

	if (avail < 20 || (ip[0] >> 4) != 4)
		return 0;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	*tot = be16_read(ip + IP_OFF_TOTLEN);
	if (ihl < 20 || ihl > avail || *tot < ihl)
		return 0;
	return ihl;
}

static bool rw_is_icmp_error(uint8_t type)
{
	/* Destination unreachable, source quench, time exceeded, parameter problem. */
	return type == 3 || type == 4 || type == 11 || type == 12;
}

void rw_parse(uint8_t *frame, size_t len, struct rw_view *v)
{
	size_t tot, inner_tot;
	uint16_t frag;

	memset(v, 0, sizeof(*v));
	v->eth = frame;
	if (len < RW_ETH_HLEN || be16_read(frame + 12) != 0x0800) {
		v->kind = RW_NOT_IPV4;
		return;
	}
	v->ip = frame + RW_ETH_HLEN;
	v->ihl = rw_ip_header(v->ip, len - RW_ETH_HLEN, &tot);
	if (!v->ihl || tot > len - RW_ETH_HLEN) {
		v->kind = RW_MALFORMED;
		return;
	}
	v->ip_len = tot;
	v->proto = v->ip[IP_OFF_PROTO];
	frag = be16_read(v->ip + IP_OFF_FRAG);
	if (frag & IP_FRAG_OFFSET_MASK) {
		v->kind = RW_FRAGMENT;
		return;
	}
	v->l4 = v->ip + v->ihl;
	v->l4_len = tot - v->ihl;

	switch (v->proto) {
	case IPPROTO_TCP:
		if (v->l4_len < 20 || (size_t)(v->l4[12] >> 4) * 4 < 20 ||
		    (size_t)(v->l4[12] >> 4) * 4 > v->l4_len) {
			v->kind = RW_MALFORMED;
			return;
		}
		v->kind = RW_TRANSPORT;
		return;
	case IPPROTO_UDP:
		if (v->l4_len < 8) {
			v->kind = RW_MALFORMED;
			return;
		}
		v->kind = RW_TRANSPORT;
		return;
	case IPPROTO_ICMP:
		v->kind = RW_OTHER;
		if (v->l4_len < 8 || !rw_is_icmp_error(v->l4[0]))
			return;
		/* ICMP header (8) + embedded IP header + 8 bytes of its payload. */
		v->inner_ip = v->l4 + 8;
		v->inner_ihl = rw_ip_header(v->inner_ip, v->l4_len - 8, &inner_tot);
		if (!v->inner_ihl || v->l4_len - 8 < v->inner_ihl + 8 ||
		    (be16_read(v->inner_ip + IP_OFF_FRAG) & IP_FRAG_OFFSET_MASK) ||
		    (v->inner_ip[IP_OFF_PROTO] != IPPROTO_TCP &&
		     v->inner_ip[IP_OFF_PROTO] != IPPROTO_UDP)) {
			v->inner_ip = NULL;
			v->inner_ihl = 0;
			return;
		}
		v->inner_l4 = v->inner_ip + v->inner_ihl;
		v->kind = RW_ICMP_ERROR;
		return;
	default:
		v->kind = RW_OTHER;
		return;
	}
}

static void rw_read_tuple(const uint8_t *ip, const uint8_t *l4, struct rw_tuple *t)
{
	t->saddr = raw32(ip + IP_OFF_SADDR);
	t->daddr = raw32(ip + IP_OFF_DADDR);
	t->sport = raw16(l4);
	t->dport = raw16(l4 + 2);
	t->proto = ip[IP_OFF_PROTO];
}

void rw_tuple(const struct rw_view *v, struct rw_tuple *t)
{
	rw_read_tuple(v->ip, v->l4, t);
}

void rw_inner_tuple(const struct rw_view *v, struct rw_tuple *t)
{
	rw_read_tuple(v->inner_ip, v->inner_l4, t);
}

uint8_t rw_tcp_flags(const struct rw_view *v)
{
	return v->l4[TCP_OFF_FLAGS];
}

bool rw_tcp_is_syn(const struct rw_view *v)
{
	return (rw_tcp_flags(v) & (RW_TCP_SYN | RW_TCP_ACK)) == RW_TCP_SYN;
}

uint32_t rw_tcp_seq(const struct rw_view *v)
{
	return be32_read(v->l4 + TCP_OFF_SEQ);
}

uint32_t rw_tcp_ack(const struct rw_view *v)
{
	return be32_read(v->l4 + TCP_OFF_SEQ + 4);
}

uint16_t rw_tcp_window(const struct rw_view *v)
{
	return be16_read(v->l4 + TCP_OFF_FLAGS + 1);
}

uint32_t rw_tcp_seq_end(const struct rw_view *v)
{
	size_t doff = (size_t)(v->l4[12] >> 4) * 4;
	uint8_t flags = v->l4[TCP_OFF_FLAGS];

	return rw_tcp_seq(v) + (uint32_t)(v->l4_len - doff) + !!(flags & RW_TCP_SYN) +
	       !!(flags & RW_TCP_FIN);
}

bool rw_tcp_options_sound(const struct rw_view *v)
{
	size_t doff = (size_t)(v->l4[12] >> 4) * 4, i = 20;

	while (i < doff) {
		uint8_t kind = v->l4[i];

		if (kind == 0)          /* EOL */
			return true;
		if (kind == 1) {        /* NOP */
			i++;
			continue;
		}
		if (doff - i < 2 || v->l4[i + 1] < 2 || v->l4[i + 1] > doff - i)
			return false;
		i += v->l4[i + 1];
	}
	return true;
}

bool rw_is_fragment(const struct rw_view *v)
{
	if (v->kind == RW_NOT_IPV4 || v->kind == RW_MALFORMED)
		return false;
	return be16_read(v->ip + IP_OFF_FRAG) & (IP_FRAG_MF | IP_FRAG_OFFSET_MASK);
}

bool rw_checksums_ok(const struct rw_view *v)
{
	uint8_t pseudo[12];
	uint32_t sum;

	if (v->kind == RW_NOT_IPV4 || v->kind == RW_MALFORMED)
		return false;
	if (csum_fold(csum_add(0, v->ip, v->ihl)) != 0)
		return false;
	if (v->kind != RW_TRANSPORT)
		return true;
	if (v->proto == IPPROTO_UDP && !raw16(v->l4 + UDP_OFF_CSUM))
		return true;
	memcpy(pseudo, v->ip + IP_OFF_SADDR, 8);
	pseudo[8] = 0;
	pseudo[9] = v->proto;
	pseudo[10] = (uint8_t)(v->l4_len >> 8);
	pseudo[11] = (uint8_t)v->l4_len;
	sum = csum_add(csum_add(0, pseudo, sizeof(pseudo)), v->l4, v->l4_len);
	return csum_fold(sum) == 0;
}

/* The transport checksum field, or NULL when there is none to maintain (UDP 0). */
static uint8_t *rw_l4_csum(uint8_t *l4, uint8_t proto, size_t avail)
{
	if (proto == IPPROTO_TCP)
		return avail >= TCP_OFF_CSUM + 2 ? l4 + TCP_OFF_CSUM : NULL;
	if (raw16(l4 + UDP_OFF_CSUM) == 0)
		return NULL; /* UDP without checksum stays without */
	return l4 + UDP_OFF_CSUM;
}

bool rw_tcp_clear_urgent(struct rw_view *v)
{
	uint8_t *csum = rw_l4_csum(v->l4, v->proto, v->l4_len);
	/* The flags share a 16-bit checksum word with the data offset. */
	uint8_t word[2] = { v->l4[TCP_OFF_FLAGS - 1], v->l4[TCP_OFF_FLAGS] };

	if (!(word[1] & RW_TCP_URG))
		return false;
	word[1] &= (uint8_t)~RW_TCP_URG;
	rw_replace16(v->l4 + TCP_OFF_FLAGS - 1, raw16(word), csum);
	rw_replace16(v->l4 + TCP_OFF_URP, 0, csum);
	return true;
}

void rw_set_tuple(struct rw_view *v, const struct rw_tuple *to)
{
	uint8_t *ipc = v->ip + IP_OFF_CSUM;
	uint8_t *l4c = rw_l4_csum(v->l4, v->proto, v->l4_len);

	/* Addresses are in the IP header and in the transport pseudo-header. */
	rw_replace32(v->ip + IP_OFF_SADDR, to->saddr, ipc, l4c, NULL);
	rw_replace32(v->ip + IP_OFF_DADDR, to->daddr, ipc, l4c, NULL);
	rw_replace16(v->l4, to->sport, l4c);
	rw_replace16(v->l4 + 2, to->dport, l4c);
	/* A UDP checksum that computes to 0 is sent as 0xffff (RFC 768). */
	if (l4c && v->proto == IPPROTO_UDP && raw16(l4c) == 0)
		put_raw16(l4c, 0xffff);
}

void rw_set_inner_tuple(struct rw_view *v, const struct rw_tuple *to)
{
	uint8_t *icmpc = v->l4 + ICMP_OFF_CSUM;
	uint8_t *inner_ipc = v->inner_ip + IP_OFF_CSUM;
	uint8_t proto = v->inner_ip[IP_OFF_PROTO];
	/* Only a UDP checksum lies within the 8 quoted transport bytes. */
	uint8_t *inner_l4c = proto == IPPROTO_UDP ? rw_l4_csum(v->inner_l4, proto, 8) : NULL;
	uint16_t old_ipc = raw16(inner_ipc), old_l4c = inner_l4c ? raw16(inner_l4c) : 0;
	uint16_t icmp;

	/*
	 * Every edited word is inside the ICMP payload, so each change is
	 * folded into the ICMP checksum too, including the changes of the
	 * embedded checksums themselves: incremental all the way, so a
	 * corrupted ICMP error stays corrupted.
	 */
	rw_replace32(v->inner_ip + IP_OFF_SADDR, to->saddr, inner_ipc, inner_l4c, icmpc);
	rw_replace32(v->inner_ip + IP_OFF_DADDR, to->daddr, inner_ipc, inner_l4c, icmpc);
	rw_replace16_twice(v->inner_l4, to->sport, inner_l4c, icmpc);
	rw_replace16_twice(v->inner_l4 + 2, to->dport, inner_l4c, icmpc);
	if (inner_l4c && raw16(inner_l4c) == 0)
		put_raw16(inner_l4c, 0xffff);

	icmp = raw16(icmpc);
	csum_update16(&icmp, old_ipc, raw16(inner_ipc));
	if (inner_l4c)
		csum_update16(&icmp, old_l4c, raw16(inner_l4c));
	put_raw16(icmpc, icmp);
}

void rw_set_outer_addrs(struct rw_view *v, uint32_t saddr, uint32_t daddr)
{
	uint8_t *ipc = v->ip + IP_OFF_CSUM;

	rw_replace32(v->ip + IP_OFF_SADDR, saddr, ipc, NULL, NULL);
	rw_replace32(v->ip + IP_OFF_DADDR, daddr, ipc, NULL, NULL);
}

void rw_outer_addrs(const struct rw_view *v, uint32_t *saddr, uint32_t *daddr)
{
	*saddr = raw32(v->ip + IP_OFF_SADDR);
	*daddr = raw32(v->ip + IP_OFF_DADDR);
}

/*
 * The Ethernet and IPv4 headers of a frame we build: no options, TTL 64,
 * @df sets Don't Fragment, addresses in network order, the header checksum
 * done.  Returns where the @ip_len - 20 bytes of payload go (zeroed).
 */
static uint8_t *rw_put_eth_ip(uint8_t *out, const uint8_t dst_mac[6], const uint8_t src_mac[6],
			      uint8_t proto, size_t ip_len, bool df, uint32_t saddr,
			      uint32_t daddr)
{
	uint8_t *ip = out + RW_ETH_HLEN;

	memcpy(out, dst_mac, 6);
	memcpy(out + 6, src_mac, 6);
	out[12] = 0x08;
	out[13] = 0x00;

	memset(ip, 0, ip_len);
	ip[0] = 0x45;
	be16_write(ip + IP_OFF_TOTLEN, (uint16_t)ip_len);
	if (df)
		ip[6] = 0x40;
	ip[8] = 64;                      /* TTL */
	ip[IP_OFF_PROTO] = proto;
	put_raw32(ip + IP_OFF_SADDR, saddr);
	put_raw32(ip + IP_OFF_DADDR, daddr);
	put_raw16(ip + IP_OFF_CSUM, csum_fold(csum_add(0, ip, 20)));
	return ip + 20;
}

size_t rw_build_tcp_rst(uint8_t *out, const uint8_t dst_mac[6], const uint8_t src_mac[6],
			const struct rw_tuple *t, uint32_t seq, uint32_t ack)
{
	return rw_build_tcp(out, dst_mac, src_mac, t, seq, ack, RW_TCP_RST | RW_TCP_ACK, 0);
}

size_t rw_build_tcp(uint8_t *out, const uint8_t dst_mac[6], const uint8_t src_mac[6],
		    const struct rw_tuple *t, uint32_t seq, uint32_t ack, uint8_t flags,
		    uint16_t window)
{
	uint8_t *tcp = rw_put_eth_ip(out, dst_mac, src_mac, IPPROTO_TCP, 40, true, t->saddr,
				     t->daddr);
	uint32_t sum;

	put_raw16(tcp, t->sport);
	put_raw16(tcp + 2, t->dport);
	be32_write(tcp + TCP_OFF_SEQ, seq);
	be32_write(tcp + TCP_OFF_SEQ + 4, ack);
	tcp[12] = 5 << 4;
	tcp[TCP_OFF_FLAGS] = flags;
	be16_write(tcp + TCP_OFF_FLAGS + 1, window);

	sum = csum_add(csum_pseudo4(out + RW_ETH_HLEN + IP_OFF_SADDR, IPPROTO_TCP, 20), tcp, 20);
	put_raw16(tcp + TCP_OFF_CSUM, csum_fold(sum));
	return RW_ETH_HLEN + 40;
}

uint16_t rw_ip_id(const struct rw_view *v)
{
	return be16_read(v->ip + IP_OFF_ID);
}

bool rw_more_fragments(const struct rw_view *v)
{
	return be16_read(v->ip + IP_OFF_FRAG) & IP_FRAG_MF;
}

size_t rw_build_icmp_unreach(uint8_t *out, const uint8_t dst_mac[6], const uint8_t src_mac[6],
			     uint32_t src_addr, const struct rw_view *orig, uint8_t code)
{
	size_t quote = orig->ihl + 8 <= orig->ip_len ? orig->ihl + 8 : orig->ip_len;
	size_t ip_len = 20 + 8 + quote;
	uint8_t *icmp = rw_put_eth_ip(out, dst_mac, src_mac, IPPROTO_ICMP, ip_len, false, src_addr,
				      raw32(orig->ip + IP_OFF_SADDR));

	icmp[0] = 3;                     /* destination unreachable */
	icmp[1] = code;
	memcpy(icmp + 8, orig->ip, quote);
	put_raw16(icmp + ICMP_OFF_CSUM, csum_fold(csum_add(0, icmp, 8 + quote)));
	return RW_ETH_HLEN + ip_len;
}
