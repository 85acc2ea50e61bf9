/* pkt.c - build and parse Ethernet/IPv4/UDP/TCP/ARP frames for tests (not the product's codecs). */

#include "pkt.h"

#include <string.h>
#include <arpa/inet.h>

const uint8_t pkt_guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
const uint8_t pkt_broadcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

uint32_t pkt_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

uint16_t pkt_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static size_t pkt_eth(uint8_t *buf, const uint8_t dst[6], uint16_t type)
{
	memcpy(buf, dst, 6);
	memcpy(buf + 6, pkt_guest_mac, 6);
	put16(buf + 12, type);
	return PKT_ETH_HLEN;
}

size_t pkt_arp_request(uint8_t *buf, struct in_addr sender, struct in_addr target)
{
	uint8_t *a = buf + pkt_eth(buf, pkt_broadcast_mac, PKT_ETH_P_ARP);

	put16(a, 1);            /* Ethernet */
	put16(a + 2, 0x0800);   /* IPv4 */
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 1);        /* request */
	memcpy(a + 8, pkt_guest_mac, 6);
	memcpy(a + 14, &sender, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, &target, 4);
	return PKT_ETH_HLEN + 28;
}

static size_t pkt_ipv4(uint8_t *ip, struct in_addr src, struct in_addr dst,
		       uint8_t proto, size_t l4_len)
{
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4_len));
	put16(ip + 4, 0x1234);
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	put16(ip + 10, (uint16_t)~pkt_csum_fold(pkt_csum_add(0, ip, 20)));
	return 20;
}

static uint16_t pkt_l4_csum(const uint8_t *ip, const uint8_t *l4, size_t len)
{
	uint8_t pseudo[12];

	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = ip[9];
	put16(pseudo + 10, (uint16_t)len);
	return (uint16_t)~pkt_csum_fold(pkt_csum_add(pkt_csum_add(0, pseudo, 12), l4, len));
}

size_t pkt_udp(uint8_t *buf, const uint8_t dst_mac[6], struct in_addr src,
	       struct in_addr dst, uint16_t sport, uint16_t dport,
	       const void *payload, size_t len)
{
	uint8_t *ip = buf + pkt_eth(buf, dst_mac, PKT_ETH_P_IP);
	uint8_t *udp = ip + pkt_ipv4(ip, src, dst, IPPROTO_UDP, 8 + len);
	uint16_t c;

	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, (uint16_t)(8 + len));
	put16(udp + 6, 0);
	if (len)
		memcpy(udp + 8, payload, len);
	c = pkt_l4_csum(ip, udp, 8 + len);
	put16(udp + 6, c ? c : 0xffff);
	return PKT_ETH_HLEN + 20 + 8 + len;
}

size_t pkt_icmp_echo(uint8_t *buf, const uint8_t dst_mac[6], struct in_addr src,
		     struct in_addr dst, uint16_t id, uint16_t seq, const void *payload, size_t len)
{
	uint8_t *ip = buf + pkt_eth(buf, dst_mac, PKT_ETH_P_IP);
	uint8_t *icmp = ip + pkt_ipv4(ip, src, dst, IPPROTO_ICMP, 8 + len);

	memset(icmp, 0, 8);
	icmp[0] = 8;                     /* echo request */
	put16(icmp + 4, id);
	put16(icmp + 6, seq);
	if (len)
		memcpy(icmp + 8, payload, len);
	put16(icmp + 2, (uint16_t)~pkt_csum_fold(pkt_csum_add(0, icmp, 8 + len)));
	return PKT_ETH_HLEN + 20 + 8 + len;
}

size_t pkt_tcp(uint8_t *buf, const uint8_t dst_mac[6], struct in_addr src,
	       struct in_addr dst, uint16_t sport, uint16_t dport, uint32_t seq,
	       uint32_t ack, uint8_t flags, const void *payload, size_t len)
{
	uint8_t *ip = buf + pkt_eth(buf, dst_mac, PKT_ETH_P_IP);
	size_t optlen = (flags & 0x02) ? 4 : 0; /* MSS option on SYN */
	size_t hlen = 20 + optlen;
	uint8_t *tcp = ip + pkt_ipv4(ip, src, dst, IPPROTO_TCP, hlen + len);

	memset(tcp, 0, hlen);
	put16(tcp, sport);
	put16(tcp + 2, dport);
	put32(tcp + 4, seq);
	put32(tcp + 8, ack);
	tcp[12] = (uint8_t)((hlen / 4) << 4);
	tcp[13] = flags;
	put16(tcp + 14, 65535);
	if (optlen) {
		tcp[20] = 2;
		tcp[21] = 4;
		put16(tcp + 22, 1460);
	}
	if (len)
		memcpy(tcp + hlen, payload, len);
	put16(tcp + 16, pkt_l4_csum(ip, tcp, hlen + len));
	return PKT_ETH_HLEN + 20 + hlen + len;
}

size_t pkt_dhcp_discover_from(uint8_t *buf, uint32_t xid, const uint8_t chaddr[6])
{
	uint8_t bootp[300] = { 0 };
	struct in_addr any = { 0 }, bcast = { INADDR_BROADCAST };
	uint8_t *o;

	bootp[0] = 1;           /* BOOTREQUEST */
	bootp[1] = 1;           /* Ethernet */
	bootp[2] = 6;
	put32(bootp + 4, xid);
	memcpy(bootp + 28, chaddr, 6);
	put32(bootp + 236, 0x63825363); /* magic cookie */
	o = bootp + 240;
	*o++ = 53; *o++ = 1; *o++ = 1;   /* DHCPDISCOVER */
	*o++ = 55; *o++ = 3; *o++ = 1; *o++ = 3; *o++ = 6; /* mask, router, dns */
	*o++ = 255;
	return pkt_udp(buf, pkt_broadcast_mac, any, bcast, 68, 67, bootp, sizeof(bootp));
}

size_t pkt_dhcp_discover(uint8_t *buf, uint32_t xid)
{
	return pkt_dhcp_discover_from(buf, xid, pkt_guest_mac);
}

int pkt_parse_ipv4(const uint8_t *frame, size_t len, struct pkt_ipv4_view *v)
{
	const uint8_t *ip = frame + PKT_ETH_HLEN;
	size_t ihl, tot;

	if (len < PKT_ETH_HLEN + 20 || get16(frame + 12) != PKT_ETH_P_IP)
		return -1;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	tot = get16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl || PKT_ETH_HLEN + tot > len)
		return -1;
	memcpy(&v->src, ip + 12, 4);
	memcpy(&v->dst, ip + 16, 4);
	v->proto = ip[9];
	v->l4 = ip + ihl;
	v->l4_len = tot - ihl;
	v->ip_csum_ok = pkt_csum_fold(pkt_csum_add(0, ip, ihl)) == 0xffff;
	v->l4_csum_ok = 1;
	if (v->proto == IPPROTO_TCP || (v->proto == IPPROTO_UDP && v->l4_len >= 8 &&
					 get16(v->l4 + 6) != 0)) {
		uint8_t pseudo[12];

		memcpy(pseudo, ip + 12, 8);
		pseudo[8] = 0;
		pseudo[9] = v->proto;
		put16(pseudo + 10, (uint16_t)v->l4_len);
		v->l4_csum_ok = pkt_csum_fold(pkt_csum_add(pkt_csum_add(0, pseudo, 12),
							   v->l4, v->l4_len)) == 0xffff;
	}
	return 0;
}

const uint8_t *pkt_dhcp_option(const uint8_t *bootp, size_t len, uint8_t code,
			       uint8_t *optlen)
{
	size_t i = 240;

	while (i < len) {
		uint8_t c = bootp[i];

		if (c == 255)
			break;
		if (c == 0) {
			i++;
			continue;
		}
		if (i + 2 > len || i + 2 + bootp[i + 1] > len)
			break;
		if (c == code) {
			*optlen = bootp[i + 1];
			return bootp + i + 2;
		}
		i += 2 + (size_t)bootp[i + 1];
	}
	return NULL;
}

int pkt_csum_complete(uint8_t *frame, size_t len, size_t start, size_t offset)
{
	const uint8_t *ip = frame + PKT_ETH_HLEN;
	size_t end;

	if (len < PKT_ETH_HLEN + 20 || get16(frame + 12) != PKT_ETH_P_IP)
		return -1;
	end = PKT_ETH_HLEN + get16(ip + 2);
	if (end > len || start + offset + 2 > end)
		return -1;
	put16(frame + start + offset,
	      (uint16_t)~pkt_csum_fold(pkt_csum_add(0, frame + start, end - start)));
	return 0;
}

void pkt_fix_csums(uint8_t *frame, size_t len)
{
	uint8_t *ip = frame + PKT_ETH_HLEN, *l4;
	size_t ihl, tot;

	if (len < PKT_ETH_HLEN + 20 || get16(frame + 12) != PKT_ETH_P_IP)
		return;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	tot = get16(ip + 2);
	if (ihl < 20 || tot < ihl || PKT_ETH_HLEN + tot > len)
		return;
	put16(ip + 10, 0);
	put16(ip + 10, (uint16_t)~pkt_csum_fold(pkt_csum_add(0, ip, ihl)));
	l4 = ip + ihl;
	if (ip[9] == IPPROTO_TCP && tot - ihl >= 20) {
		put16(l4 + 16, 0);
		put16(l4 + 16, pkt_l4_csum(ip, l4, tot - ihl));
	} else if (ip[9] == IPPROTO_UDP && tot - ihl >= 8) {
		put16(l4 + 6, 0);
		put16(l4 + 6, pkt_l4_csum(ip, l4, tot - ihl));
	}
}

uint32_t pkt_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
