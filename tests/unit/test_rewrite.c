/* test_rewrite.c - unit tests of the frame parser/rewriter, checked against tests/lib's independent builder. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <glib.h>

#include "proxy-bridge/rewrite.h"
#include "tests/lib/pkt.h"

#define ETH 14
#define BUF 2048

static const uint8_t gw_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };

static const char payload[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"; /* odd length */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct in_addr in4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Independent checksum of @len bytes, as stored in a header (host order value). */
static uint16_t ref_csum(const uint8_t *p, size_t len)
{
	return (uint16_t)~pkt_csum_fold(pkt_csum_add(0, p, len));
}

static bool ref_csum_ok(const uint8_t *p, size_t len)
{
	return pkt_csum_fold(pkt_csum_add(0, p, len)) == 0xffff;
}

static void fix_ip_csum(uint8_t *ip)
{
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;

	put16(ip + 10, 0);
	put16(ip + 10, ref_csum(ip, ihl));
}

static struct rw_tuple tuple(const char *s, uint16_t sport, const char *d, uint16_t dport,
			     uint8_t proto)
{
	struct rw_tuple t;

	memset(&t, 0, sizeof(t));
	t.saddr = in4(s).s_addr;
	t.daddr = in4(d).s_addr;
	t.sport = htons(sport);
	t.dport = htons(dport);
	t.proto = proto;
	return t;
}

static size_t build_tcp(uint8_t *buf, const struct rw_tuple *t, uint8_t flags, const void *data,
			size_t len)
{
	struct in_addr s = { t->saddr }, d = { t->daddr };

	return pkt_tcp(buf, gw_mac, s, d, ntohs(t->sport), ntohs(t->dport), 0x01020304,
		       0xa0b0c0d0, flags, data, len);
}

static size_t build_udp(uint8_t *buf, const struct rw_tuple *t, const void *data, size_t len)
{
	struct in_addr s = { t->saddr }, d = { t->daddr };

	return pkt_udp(buf, gw_mac, s, d, ntohs(t->sport), ntohs(t->dport), data, len);
}

/*
 * Insert four bytes of IP options (ihl 6) after the 20-byte header of a frame
 * built by pkt_*: total length and IP checksum follow; the transport checksum
 * does not cover the IP header, so it stays valid.
 */
static size_t add_ip_options(uint8_t *frame, size_t len)
{
	static const uint8_t opts[4] = { 0x94, 0x04, 0x00, 0x00 }; /* router alert */
	uint8_t *ip = frame + ETH;

	memmove(ip + 24, ip + 20, len - ETH - 20);
	memcpy(ip + 20, opts, 4);
	ip[0] = 0x46;
	put16(ip + 2, (uint16_t)(get16(ip + 2) + 4));
	fix_ip_csum(ip);
	return len + 4;
}

/*
 * ICMP error from @osrc to @odst quoting @quote_len bytes of the IPv4 packet
 * at @inner_ip, built by hand: outer IP, type, code, checksum, 4 unused bytes.
 */
static size_t build_icmp_error(uint8_t *buf, uint8_t type, uint8_t code, const char *osrc,
			       const char *odst, const uint8_t *inner_ip, size_t quote_len)
{
	uint8_t *ip = buf + ETH, *icmp = ip + 20;
	struct in_addr s = in4(osrc), d = in4(odst);

	memcpy(buf, pkt_guest_mac, 6);
	memcpy(buf + 6, gw_mac, 6);
	put16(buf + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + 8 + quote_len));
	put16(ip + 4, 0x4321);
	ip[8] = 64;
	ip[9] = IPPROTO_ICMP;
	memcpy(ip + 12, &s, 4);
	memcpy(ip + 16, &d, 4);
	fix_ip_csum(ip);
	memset(icmp, 0, 8);
	icmp[0] = type;
	icmp[1] = code;
	memcpy(icmp + 8, inner_ip, quote_len);
	put16(icmp + 2, ref_csum(icmp, 8 + quote_len));
	return ETH + 20 + 8 + quote_len;
}

static size_t build_icmp_echo(uint8_t *buf)
{
	uint8_t *ip = buf + ETH, *icmp = ip + 20;
	struct in_addr s = in4("10.0.2.15"), d = in4("1.1.1.1");

	memcpy(buf, gw_mac, 6);
	memcpy(buf + 6, pkt_guest_mac, 6);
	put16(buf + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, 20 + 8 + 16);
	ip[8] = 64;
	ip[9] = IPPROTO_ICMP;
	memcpy(ip + 12, &s, 4);
	memcpy(ip + 16, &d, 4);
	fix_ip_csum(ip);
	memset(icmp, 0, 24);
	icmp[0] = 8;
	put16(icmp + 4, 0x1234);
	put16(icmp + 6, 1);
	memcpy(icmp + 8, "0123456789abcdef", 16);
	put16(icmp + 2, ref_csum(icmp, 24));
	return ETH + 20 + 24;
}

static enum rw_kind kind_of(uint8_t *frame, size_t len)
{
	struct rw_view v;

	rw_parse(frame, len, &v);
	return v.kind;
}

static void assert_tuple_equal(const struct rw_tuple *a, const struct rw_tuple *b)
{
	assert_int_equal(a->saddr, b->saddr);
	assert_int_equal(a->daddr, b->daddr);
	assert_int_equal(a->sport, b->sport);
	assert_int_equal(a->dport, b->dport);
	assert_int_equal(a->proto, b->proto);
}

/* ---------------------------------------------------------------- rw_parse */

static void test_parse_not_ipv4(void **state)
{
	uint8_t f[BUF];
	size_t len;

	(void)state;
	len = pkt_arp_request(f, in4("10.0.2.15"), in4("10.0.2.2"));
	assert_int_equal(kind_of(f, len), RW_NOT_IPV4);
	/* An IPv6 ethertype in front of an otherwise valid IPv4 packet. */
	len = build_tcp(f, &(struct rw_tuple){ 0 }, 0x10, NULL, 0);
	put16(f + 12, 0x86dd);
	assert_int_equal(kind_of(f, len), RW_NOT_IPV4);
	/* Shorter than an Ethernet header. */
	assert_int_equal(kind_of(f, 0), RW_NOT_IPV4);
	put16(f + 12, 0x0800);
	assert_int_equal(kind_of(f, 13), RW_NOT_IPV4);
}

static void test_parse_malformed(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	struct rw_tuple tu = tuple("10.0.2.15", 5000, "1.1.1.1", 53, IPPROTO_UDP);
	uint8_t f[BUF];
	size_t len;

	(void)state;
	len = build_tcp(f, &t, 0x18, payload, sizeof(payload) - 1);
	assert_int_equal(kind_of(f, len), RW_TRANSPORT);

	/* Truncated IP header: nothing, or 19 bytes of it. */
	assert_int_equal(kind_of(f, ETH), RW_MALFORMED);
	assert_int_equal(kind_of(f, ETH + 19), RW_MALFORMED);
	/* Frame cut short of the total length. */
	assert_int_equal(kind_of(f, len - 1), RW_MALFORMED);

	/* ihl below 5. */
	for (uint8_t ihl = 0; ihl < 5; ihl++) {
		len = build_tcp(f, &t, 0x18, payload, sizeof(payload) - 1);
		f[ETH] = (uint8_t)(0x40 | ihl);
		fix_ip_csum(f + ETH);
		assert_int_equal(kind_of(f, len), RW_MALFORMED);
	}
	/* ihl beyond the frame. */
	len = build_udp(f, &tu, payload, 0);
	f[ETH] = 0x4f;
	assert_int_equal(kind_of(f, len), RW_MALFORMED);
	/* Not version 4 behind an IPv4 ethertype: never a transport frame. */
	len = build_udp(f, &tu, payload, 0);
	f[ETH] = 0x65;
	assert_true(kind_of(f, len) == RW_MALFORMED || kind_of(f, len) == RW_NOT_IPV4);

	/* Total length larger than the frame, and smaller than the header. */
	len = build_tcp(f, &t, 0x18, payload, sizeof(payload) - 1);
	put16(f + ETH + 2, (uint16_t)(len - ETH + 1));
	fix_ip_csum(f + ETH);
	assert_int_equal(kind_of(f, len), RW_MALFORMED);
	put16(f + ETH + 2, 19);
	fix_ip_csum(f + ETH);
	assert_int_equal(kind_of(f, len), RW_MALFORMED);
	put16(f + ETH + 2, 0xffff);
	fix_ip_csum(f + ETH);
	assert_int_equal(kind_of(f, len), RW_MALFORMED);

	/* TCP data offset below 5, and beyond the segment. */
	for (uint8_t off = 0; off < 5; off++) {
		len = build_tcp(f, &t, 0x18, payload, sizeof(payload) - 1);
		f[ETH + 20 + 12] = (uint8_t)(off << 4);
		assert_int_equal(kind_of(f, len), RW_MALFORMED);
	}
	len = build_tcp(f, &t, 0x10, NULL, 0);
	f[ETH + 20 + 12] = 0x60;
	assert_int_equal(kind_of(f, len), RW_MALFORMED);
	/* Shorter than a TCP header per the IP total length (frame is padded). */
	len = build_tcp(f, &t, 0x10, NULL, 0);
	put16(f + ETH + 2, 20 + 19);
	fix_ip_csum(f + ETH);
	assert_int_equal(kind_of(f, len), RW_MALFORMED);
	/* Shorter than a UDP header. */
	len = build_udp(f, &tu, payload, 0);
	put16(f + ETH + 2, 20 + 7);
	fix_ip_csum(f + ETH);
	assert_int_equal(kind_of(f, len), RW_MALFORMED);
}

static void test_parse_fragment(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 5000, "1.1.1.1", 53, IPPROTO_UDP);
	static const uint16_t frag_fields[] = { 0x0001, 0x2001, 0x1fff, 0x3fff, 0x00b9 };
	uint8_t f[BUF];
	size_t len;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(frag_fields); i++) {
		len = build_udp(f, &t, payload, sizeof(payload) - 1);
		put16(f + ETH + 6, frag_fields[i]);
		fix_ip_csum(f + ETH);
		assert_int_equal(kind_of(f, len), RW_FRAGMENT);
	}
	/* First fragment (MF, offset 0) and DF: the transport header is there. */
	len = build_udp(f, &t, payload, sizeof(payload) - 1);
	put16(f + ETH + 6, 0x2000);
	fix_ip_csum(f + ETH);
	assert_int_equal(kind_of(f, len), RW_TRANSPORT);
	put16(f + ETH + 6, 0x4000);
	fix_ip_csum(f + ETH);
	assert_int_equal(kind_of(f, len), RW_TRANSPORT);
}

static void test_parse_transport(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	struct rw_tuple tu = tuple("10.0.2.15", 5000, "1.1.1.1", 53, IPPROTO_UDP);
	struct rw_tuple got;
	struct rw_view v;
	uint8_t f[BUF];
	size_t len;

	(void)state;
	/* A SYN carries a 4-byte MSS option: a 24-byte TCP header. */
	len = build_tcp(f, &t, 0x02, NULL, 0);
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_TRANSPORT);
	assert_ptr_equal(v.eth, f);
	assert_ptr_equal(v.ip, f + ETH);
	assert_int_equal(v.ihl, 20);
	assert_int_equal(v.ip_len, 44);
	assert_int_equal(v.proto, IPPROTO_TCP);
	assert_ptr_equal(v.l4, f + ETH + 20);
	assert_int_equal(v.l4_len, 24);
	rw_tuple(&v, &got);
	assert_tuple_equal(&got, &t);
	assert_int_equal(rw_tcp_flags(&v), RW_TCP_SYN);
	assert_int_equal(rw_tcp_seq(&v), 0x01020304);

	/* Ethernet padding beyond the IP total length is ignored. */
	len = build_tcp(f, &t, RW_TCP_FIN | RW_TCP_ACK, NULL, 0);
	memset(f + len, 0, 6);
	rw_parse(f, 60, &v);
	assert_int_equal(v.kind, RW_TRANSPORT);
	assert_int_equal(v.ip_len, 40);
	assert_int_equal(v.l4_len, 20);
	assert_int_equal(rw_tcp_flags(&v), RW_TCP_FIN | RW_TCP_ACK);

	len = build_udp(f, &tu, payload, sizeof(payload) - 1);
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_TRANSPORT);
	assert_int_equal(v.proto, IPPROTO_UDP);
	assert_int_equal(v.l4_len, 8 + sizeof(payload) - 1);
	rw_tuple(&v, &got);
	assert_tuple_equal(&got, &tu);

	/* IP options: the transport header moves. */
	len = add_ip_options(f, build_tcp(f, &t, 0x18, payload, sizeof(payload) - 1));
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_TRANSPORT);
	assert_int_equal(v.ihl, 24);
	assert_ptr_equal(v.l4, f + ETH + 24);
	assert_int_equal(v.l4_len, 20 + sizeof(payload) - 1);
	rw_tuple(&v, &got);
	assert_tuple_equal(&got, &t);
}

static void test_parse_other(void **state)
{
	struct rw_tuple tu = tuple("10.0.2.15", 5000, "1.1.1.1", 53, IPPROTO_UDP);
	uint8_t f[BUF];
	size_t len;

	(void)state;
	len = build_icmp_echo(f);
	assert_int_equal(kind_of(f, len), RW_OTHER);
	/* Echo reply too. */
	f[ETH + 20] = 0;
	assert_int_equal(kind_of(f, len), RW_OTHER);
	/* Another protocol (SCTP) with a UDP-like body. */
	len = build_udp(f, &tu, payload, sizeof(payload) - 1);
	f[ETH + 9] = 132;
	fix_ip_csum(f + ETH);
	assert_int_equal(kind_of(f, len), RW_OTHER);
}

static void test_parse_icmp_error(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	struct rw_tuple tu = tuple("10.0.2.15", 5000, "1.1.1.1", 53, IPPROTO_UDP);
	static const uint8_t error_types[] = { 3, 4, 11, 12 };
	uint8_t inner[BUF], f[BUF];
	struct rw_tuple got;
	struct rw_view v;
	size_t len;

	(void)state;
	build_tcp(inner, &t, 0x02, NULL, 0);
	len = build_icmp_error(f, 3, 1, "198.51.100.1", "10.0.2.15", inner + ETH, 28);
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_ICMP_ERROR);
	assert_int_equal(v.proto, IPPROTO_ICMP);
	assert_ptr_equal(v.l4, f + ETH + 20);
	assert_int_equal(v.l4_len, 8 + 28);
	assert_ptr_equal(v.inner_ip, f + ETH + 28);
	assert_int_equal(v.inner_ihl, 20);
	assert_ptr_equal(v.inner_l4, f + ETH + 48);
	rw_inner_tuple(&v, &got);
	assert_tuple_equal(&got, &t);

	build_udp(inner, &tu, payload, sizeof(payload) - 1);
	for (size_t i = 0; i < G_N_ELEMENTS(error_types); i++) {
		len = build_icmp_error(f, error_types[i], 0, "198.51.100.1", "10.0.2.15",
				       inner + ETH, 28);
		rw_parse(f, len, &v);
		assert_int_equal(v.kind, RW_ICMP_ERROR);
		rw_inner_tuple(&v, &got);
		assert_tuple_equal(&got, &tu);
	}
	/* The whole datagram quoted. */
	len = build_icmp_error(f, 3, 3, "10.0.2.2", "10.0.2.15", inner + ETH,
			       28 + sizeof(payload) - 1);
	assert_int_equal(kind_of(f, len), RW_ICMP_ERROR);
	/* An embedded header with options. */
	len = add_ip_options(inner, build_udp(inner, &tu, payload, 0));
	len = build_icmp_error(f, 3, 3, "10.0.2.2", "10.0.2.15", inner + ETH, 32);
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_ICMP_ERROR);
	assert_int_equal(v.inner_ihl, 24);
	assert_ptr_equal(v.inner_l4, f + ETH + 28 + 24);
}

static void test_parse_icmp_error_not_usable(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	uint8_t inner[BUF], f[BUF];
	size_t len;

	(void)state;
	build_tcp(inner, &t, 0x02, NULL, 0);
	/* Embedded transport header truncated: 7, 4 and 0 of the 8 bytes. */
	len = build_icmp_error(f, 3, 1, "198.51.100.1", "10.0.2.15", inner + ETH, 27);
	assert_int_equal(kind_of(f, len), RW_OTHER);
	len = build_icmp_error(f, 3, 1, "198.51.100.1", "10.0.2.15", inner + ETH, 24);
	assert_int_equal(kind_of(f, len), RW_OTHER);
	len = build_icmp_error(f, 3, 1, "198.51.100.1", "10.0.2.15", inner + ETH, 20);
	assert_int_equal(kind_of(f, len), RW_OTHER);
	/* Embedded IP header itself truncated. */
	len = build_icmp_error(f, 3, 1, "198.51.100.1", "10.0.2.15", inner + ETH, 12);
	assert_int_equal(kind_of(f, len), RW_OTHER);
	/* No room even for the ICMP header. */
	len = build_icmp_error(f, 3, 1, "198.51.100.1", "10.0.2.15", inner + ETH, 0);
	put16(f + ETH + 2, 20 + 4);
	fix_ip_csum(f + ETH);
	assert_int_equal(kind_of(f, ETH + 24), RW_OTHER);
	/* Embedded ICMP, or an embedded non-first fragment. */
	build_icmp_echo(inner);
	len = build_icmp_error(f, 11, 0, "198.51.100.1", "10.0.2.15", inner + ETH, 28);
	assert_int_equal(kind_of(f, len), RW_OTHER);
	build_tcp(inner, &t, 0x02, NULL, 0);
	put16(inner + ETH + 6, 0x0010);
	fix_ip_csum(inner + ETH);
	len = build_icmp_error(f, 3, 1, "198.51.100.1", "10.0.2.15", inner + ETH, 28);
	assert_int_equal(kind_of(f, len), RW_OTHER);
	/* Embedded header with ihl < 5. */
	build_tcp(inner, &t, 0x02, NULL, 0);
	inner[ETH] = 0x44;
	len = build_icmp_error(f, 3, 1, "198.51.100.1", "10.0.2.15", inner + ETH, 28);
	assert_int_equal(kind_of(f, len), RW_OTHER);
	/* Not an error type (redirect is 5, echo 8, timestamp 13). */
	build_tcp(inner, &t, 0x02, NULL, 0);
	len = build_icmp_error(f, 5, 0, "198.51.100.1", "10.0.2.15", inner + ETH, 28);
	assert_int_equal(kind_of(f, len), RW_OTHER);
}

/* ------------------------------------------------------------ rw_set_tuple */

static void check_rewritten(const uint8_t *f, size_t len, const struct rw_tuple *to)
{
	struct pkt_ipv4_view pv;

	assert_int_equal(pkt_parse_ipv4(f, len, &pv), 0);
	assert_true(pv.ip_csum_ok);
	assert_true(pv.l4_csum_ok);
	assert_int_equal(pv.proto, to->proto);
	assert_int_equal(pv.src.s_addr, to->saddr);
	assert_int_equal(pv.dst.s_addr, to->daddr);
	assert_int_equal(get16(pv.l4), ntohs(to->sport));
	assert_int_equal(get16(pv.l4 + 2), ntohs(to->dport));
}

static void rewrite(uint8_t *f, size_t len, const struct rw_tuple *to)
{
	struct rw_view v;

	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_TRANSPORT);
	rw_set_tuple(&v, to);
}

static void test_set_tuple_tcp(void **state)
{
	struct rw_tuple from = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	struct rw_tuple to = tuple("10.0.2.15", 51234, "127.0.0.1", 15001, IPPROTO_TCP);
	uint8_t f[BUF], want[BUF];
	size_t len, wlen;

	(void)state;
	len = build_tcp(f, &from, 0x18, payload, sizeof(payload) - 1);
	rewrite(f, len, &to);
	check_rewritten(f, len, &to);
	assert_memory_equal(f + ETH + 40, payload, sizeof(payload) - 1);
	/* Byte for byte what the independent builder makes for the new tuple. */
	wlen = build_tcp(want, &to, 0x18, payload, sizeof(payload) - 1);
	assert_int_equal(len, wlen);
	assert_memory_equal(f, want, len);

	/* And back (the reply direction rewrites the source). */
	rewrite(f, len, &from);
	wlen = build_tcp(want, &from, 0x18, payload, sizeof(payload) - 1);
	assert_memory_equal(f, want, len);

	/* A SYN with its MSS option. */
	len = build_tcp(f, &from, RW_TCP_SYN, NULL, 0);
	rewrite(f, len, &to);
	wlen = build_tcp(want, &to, RW_TCP_SYN, NULL, 0);
	assert_int_equal(len, wlen);
	assert_memory_equal(f, want, len);
}

/* URG and its pointer cleared, the checksum updated: as if the segment had been built without. */
static void test_clear_urgent(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	uint8_t f[BUF], want[BUF];
	struct rw_view v;
	size_t len, wlen;

	(void)state;
	len = build_tcp(f, &t, 0x18 | RW_TCP_URG, payload, sizeof(payload) - 1);
	put16(f + ETH + 20 + 18, 2000);
	pkt_fix_csums(f, len);
	rw_parse(f, len, &v);
	assert_true(rw_tcp_clear_urgent(&v));
	wlen = build_tcp(want, &t, 0x18, payload, sizeof(payload) - 1);
	assert_int_equal(len, wlen);
	assert_memory_equal(f, want, len);
	/* Cleared already: nothing to do. */
	assert_false(rw_tcp_clear_urgent(&v));
	assert_memory_equal(f, want, len);
	/* A pointer without URG means nothing (RFC 9293) and is left alone. */
	put16(f + ETH + 20 + 18, 7);
	pkt_fix_csums(f, len);
	memcpy(want, f, len);
	rw_parse(f, len, &v);
	assert_false(rw_tcp_clear_urgent(&v));
	assert_memory_equal(f, want, len);
}

/* Options inside the header, or one whose length or body runs past it. */
static void test_options_sound(void **state)
{
	static const struct {
		uint8_t opts[8];
		bool sound;
	} cases[] = {
		{ { 2, 4, 5, 180, 1, 3, 3, 7 }, true },     /* MSS, NOP, window scale */
		{ { 1, 1, 1, 1, 1, 1, 1, 1 }, true },       /* NOPs */
		{ { 0, 9, 9, 9, 9, 9, 9, 9 }, true },       /* EOL: the rest is not options */
		{ { 1, 1, 1, 1, 1, 1, 2, 4 }, false },      /* MSS starting 2 bytes before the end */
		{ { 1, 1, 1, 1, 1, 1, 1, 2 }, false },      /* a kind with no length byte */
		{ { 3, 1, 1, 1, 1, 1, 1, 1 }, false },      /* a length under 2 */
		{ { 8, 10, 0, 0, 0, 0, 0, 0 }, false },     /* timestamps, 10 bytes in 8 */
	};
	struct rw_tuple t = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		uint8_t f[BUF];
		size_t len = build_tcp(f, &t, RW_TCP_SYN, NULL, 0);
		struct rw_view v;

		/* build_tcp's SYN has 4 bytes of options; make room for 8. */
		f[ETH + 20 + 12] = 7 << 4;
		memcpy(f + ETH + 20 + 20, cases[i].opts, 8);
		len = ETH + 20 + 28;
		put16(f + ETH + 2, 20 + 28);
		pkt_fix_csums(f, len);
		rw_parse(f, len, &v);
		assert_int_equal(v.kind, RW_TRANSPORT);
		assert_int_equal(rw_tcp_options_sound(&v), cases[i].sound);
	}
}

static void test_set_tuple_tcp_ip_options(void **state)
{
	struct rw_tuple from = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	struct rw_tuple to = tuple("10.0.2.15", 1024, "198.18.0.2", 15001, IPPROTO_TCP);
	uint8_t f[BUF], want[BUF];
	size_t len, wlen;
	struct pkt_ipv4_view pv;

	(void)state;
	len = add_ip_options(f, build_tcp(f, &from, 0x18, payload, sizeof(payload) - 1));
	assert_int_equal(pkt_parse_ipv4(f, len, &pv), 0);
	assert_true(pv.ip_csum_ok && pv.l4_csum_ok);
	rewrite(f, len, &to);
	check_rewritten(f, len, &to);
	assert_int_equal(f[ETH], 0x46);
	assert_int_equal(f[ETH + 20], 0x94);
	assert_int_equal(f[ETH + 21], 0x04);
	assert_memory_equal(f + ETH + 44, payload, sizeof(payload) - 1);
	wlen = add_ip_options(want, build_tcp(want, &to, 0x18, payload, sizeof(payload) - 1));
	assert_int_equal(len, wlen);
	assert_memory_equal(f, want, len);
}

static void test_set_tuple_udp(void **state)
{
	struct rw_tuple from = tuple("10.0.2.15", 5000, "10.0.2.3", 53, IPPROTO_UDP);
	struct rw_tuple to = tuple("10.0.2.15", 5000, "127.0.0.1", 15053, IPPROTO_UDP);
	uint8_t f[BUF], want[BUF];
	size_t len, wlen;

	(void)state;
	len = build_udp(f, &from, payload, sizeof(payload) - 1);
	assert_int_not_equal(get16(f + ETH + 26), 0);
	rewrite(f, len, &to);
	check_rewritten(f, len, &to);
	wlen = build_udp(want, &to, payload, sizeof(payload) - 1);
	assert_int_equal(len, wlen);
	assert_memory_equal(f, want, len);
}

static void test_set_tuple_udp_no_checksum(void **state)
{
	struct rw_tuple from = tuple("10.0.2.15", 5000, "10.0.2.3", 53, IPPROTO_UDP);
	struct rw_tuple to = tuple("10.0.2.16", 6000, "127.0.0.1", 15053, IPPROTO_UDP);
	uint8_t f[BUF];
	size_t len;

	(void)state;
	len = build_udp(f, &from, payload, sizeof(payload) - 1);
	put16(f + ETH + 20 + 6, 0);
	rewrite(f, len, &to);
	assert_int_equal(get16(f + ETH + 20 + 6), 0);
	check_rewritten(f, len, &to);
}

/*
 * A two-byte payload that makes the UDP checksum for @t compute to 0, which
 * RFC 768 sends as 0xffff: the payload word is the checksum it had with 0 0.
 */
static void zero_sum_payload(const struct rw_tuple *t, uint8_t out[2])
{
	uint8_t f[BUF];
	uint16_t c;

	build_udp(f, t, "\0\0", 2);
	c = get16(f + ETH + 26);
	out[0] = (uint8_t)(c >> 8);
	out[1] = (uint8_t)c;
	build_udp(f, t, out, 2);
	assert_int_equal(get16(f + ETH + 26), 0xffff);
}

static void test_set_tuple_udp_zero_sum(void **state)
{
	struct rw_tuple from = tuple("10.0.2.15", 5000, "127.0.0.1", 15053, IPPROTO_UDP);
	struct rw_tuple to = tuple("10.0.2.15", 5000, "10.0.2.3", 53, IPPROTO_UDP);
	uint8_t f[BUF], data[2];
	size_t len;

	(void)state;
	zero_sum_payload(&to, data);
	len = build_udp(f, &from, data, 2);
	assert_int_not_equal(get16(f + ETH + 26), 0xffff);
	rewrite(f, len, &to);
	/* Not 0, which would mean "no checksum". */
	assert_int_equal(get16(f + ETH + 26), 0xffff);
	check_rewritten(f, len, &to);
}

/* UDP checksums that land on 0 are sent as 0xffff; random tuples hit all the corners. */
static void test_set_tuple_random(void **state)
{
	uint8_t f[BUF], want[BUF], data[256];

	(void)state;
	rng_state = 768;
	for (int i = 0; i < 20000; i++) {
		struct rw_tuple from, to;
		bool udp = i & 1;
		size_t dlen = (size_t)(rng_next() % sizeof(data)), len, wlen;

		for (size_t k = 0; k < dlen; k++)
			data[k] = (uint8_t)rng_next();
		from.proto = to.proto = udp ? IPPROTO_UDP : IPPROTO_TCP;
		from.saddr = (uint32_t)rng_next();
		from.daddr = (uint32_t)rng_next();
		from.sport = (uint16_t)rng_next();
		from.dport = (uint16_t)rng_next();
		to.saddr = (rng_next() & 3) ? (uint32_t)rng_next() : from.saddr;
		to.daddr = (rng_next() & 3) ? (uint32_t)rng_next() : ~from.daddr;
		to.sport = (rng_next() & 3) ? (uint16_t)rng_next() : 0;
		to.dport = (rng_next() & 3) ? (uint16_t)rng_next() : 0xffff;
		if (udp) {
			len = build_udp(f, &from, data, dlen);
			wlen = build_udp(want, &to, data, dlen);
		} else {
			len = build_tcp(f, &from, (uint8_t)rng_next(), data, dlen);
			wlen = build_tcp(want, &to, f[ETH + 20 + 13], data, dlen);
		}
		rewrite(f, len, &to);
		assert_int_equal(len, wlen);
		if (memcmp(f, want, len))
			fail_msg("iteration %d (%s, %zu bytes): rewritten frame differs", i,
				 udp ? "udp" : "tcp", dlen);
	}
}

/* Incremental update: a wrong checksum stays wrong (and a right one right). */
static void test_set_tuple_keeps_errors(void **state)
{
	struct rw_tuple from = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	struct rw_tuple to = tuple("10.0.2.15", 51234, "127.0.0.1", 15001, IPPROTO_TCP);
	struct rw_tuple ufrom = tuple("10.0.2.15", 5000, "10.0.2.3", 53, IPPROTO_UDP);
	struct rw_tuple uto = tuple("10.0.2.15", 5000, "127.0.0.1", 15053, IPPROTO_UDP);
	struct pkt_ipv4_view pv;
	uint8_t f[BUF];
	size_t len;

	(void)state;
	/* Checksum field off by one. */
	len = build_tcp(f, &from, 0x18, payload, sizeof(payload) - 1);
	put16(f + ETH + 36, (uint16_t)(get16(f + ETH + 36) + 1));
	rewrite(f, len, &to);
	assert_int_equal(pkt_parse_ipv4(f, len, &pv), 0);
	assert_true(pv.ip_csum_ok);
	assert_false(pv.l4_csum_ok);

	/* Payload corrupted after the checksum was computed. */
	len = build_tcp(f, &from, 0x18, payload, sizeof(payload) - 1);
	f[len - 3] ^= 0x40;
	rewrite(f, len, &to);
	assert_int_equal(pkt_parse_ipv4(f, len, &pv), 0);
	assert_false(pv.l4_csum_ok);

	/* Same for UDP. */
	len = build_udp(f, &ufrom, payload, sizeof(payload) - 1);
	f[len - 1] ^= 0x01;
	rewrite(f, len, &uto);
	assert_int_equal(pkt_parse_ipv4(f, len, &pv), 0);
	assert_true(pv.ip_csum_ok);
	assert_false(pv.l4_csum_ok);

	/* And a wrong IP header checksum. */
	len = build_tcp(f, &from, 0x18, payload, sizeof(payload) - 1);
	f[ETH + 8] = 63; /* TTL changed without fixing the checksum */
	rewrite(f, len, &to);
	assert_int_equal(pkt_parse_ipv4(f, len, &pv), 0);
	assert_false(pv.ip_csum_ok);
	assert_true(pv.l4_csum_ok);
}

static void test_set_tuple_identity(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	uint8_t f[BUF], orig[BUF];
	size_t len;

	(void)state;
	len = build_tcp(f, &t, 0x18, payload, sizeof(payload) - 1);
	memcpy(orig, f, len);
	rewrite(f, len, &t);
	assert_memory_equal(f, orig, len);
}

/* ------------------------------------------------------ rw_set_inner_tuple */

/*
 * An ICMP error quoting the packet for @from, rewritten to @to, must equal
 * byte for byte the ICMP error built by hand around the packet for @to.
 */
static void check_inner_rewrite(uint8_t proto, size_t extra_quote, bool options)
{
	struct rw_tuple from, to;
	uint8_t inner[BUF], f[BUF], want[BUF];
	size_t len, wlen, ilen;
	struct rw_tuple got;
	struct pkt_ipv4_view pv;
	struct rw_view v;
	size_t quote;

	if (proto == IPPROTO_TCP) {
		from = tuple("10.0.2.15", 51234, "127.0.0.1", 15001, IPPROTO_TCP);
		to = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
		ilen = build_tcp(inner, &from, RW_TCP_SYN, NULL, 0);
	} else {
		from = tuple("10.0.2.15", 5000, "127.0.0.1", 15053, IPPROTO_UDP);
		to = tuple("10.0.2.15", 5000, "10.0.2.3", 53, IPPROTO_UDP);
		ilen = build_udp(inner, &from, payload, sizeof(payload) - 1);
	}
	if (options)
		ilen = add_ip_options(inner, ilen);
	quote = (options ? 24 : 20) + 8 + extra_quote;
	assert_true(quote <= ilen - ETH);
	len = build_icmp_error(f, 3, 1, "10.0.2.2", "10.0.2.15", inner + ETH, quote);

	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_ICMP_ERROR);
	rw_set_inner_tuple(&v, &to);
	rw_inner_tuple(&v, &got);
	assert_tuple_equal(&got, &to);

	/* Independently: outer IP, ICMP and embedded IP checksums are valid. */
	assert_int_equal(pkt_parse_ipv4(f, len, &pv), 0);
	assert_true(pv.ip_csum_ok);
	assert_true(ref_csum_ok(f + ETH + 20, len - ETH - 20));
	assert_true(ref_csum_ok(f + ETH + 28, options ? 24 : 20));

	/* Byte for byte: the embedded UDP checksum equals the full recomputation. */
	if (proto == IPPROTO_TCP)
		ilen = build_tcp(inner, &to, RW_TCP_SYN, NULL, 0);
	else
		ilen = build_udp(inner, &to, payload, sizeof(payload) - 1);
	if (options)
		ilen = add_ip_options(inner, ilen);
	wlen = build_icmp_error(want, 3, 1, "10.0.2.2", "10.0.2.15", inner + ETH, quote);
	assert_int_equal(len, wlen);
	assert_memory_equal(f, want, len);
}

static void test_set_inner_tuple_tcp(void **state)
{
	(void)state;
	check_inner_rewrite(IPPROTO_TCP, 0, false);
	check_inner_rewrite(IPPROTO_TCP, 0, true);
}

static void test_set_inner_tuple_udp(void **state)
{
	(void)state;
	check_inner_rewrite(IPPROTO_UDP, 0, false);
	check_inner_rewrite(IPPROTO_UDP, sizeof(payload) - 1, false);  /* whole datagram */
	check_inner_rewrite(IPPROTO_UDP, 5, true);
}

static void test_set_inner_tuple_udp_no_checksum(void **state)
{
	struct rw_tuple from = tuple("10.0.2.15", 5000, "127.0.0.1", 15053, IPPROTO_UDP);
	struct rw_tuple to = tuple("10.0.2.15", 5000, "10.0.2.3", 53, IPPROTO_UDP);
	uint8_t inner[BUF], f[BUF];
	struct rw_view v;
	size_t len;

	(void)state;
	build_udp(inner, &from, payload, sizeof(payload) - 1);
	put16(inner + ETH + 26, 0);
	len = build_icmp_error(f, 3, 3, "10.0.2.2", "10.0.2.15", inner + ETH, 28);
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_ICMP_ERROR);
	rw_set_inner_tuple(&v, &to);
	assert_int_equal(get16(f + ETH + 28 + 26), 0);
	assert_true(ref_csum_ok(f + ETH + 20, len - ETH - 20));
	assert_true(ref_csum_ok(f + ETH + 28, 20));
}

static void test_set_inner_tuple_udp_zero_sum(void **state)
{
	struct rw_tuple from = tuple("10.0.2.15", 5000, "127.0.0.1", 15053, IPPROTO_UDP);
	struct rw_tuple to = tuple("10.0.2.15", 5000, "10.0.2.3", 53, IPPROTO_UDP);
	uint8_t inner[BUF], f[BUF], data[2];
	struct rw_view v;
	size_t len;

	(void)state;
	zero_sum_payload(&to, data);
	build_udp(inner, &from, data, 2);
	len = build_icmp_error(f, 3, 3, "10.0.2.2", "10.0.2.15", inner + ETH, 30);
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_ICMP_ERROR);
	rw_set_inner_tuple(&v, &to);
	assert_int_equal(get16(f + ETH + 28 + 26), 0xffff);
	assert_true(ref_csum_ok(f + ETH + 20, len - ETH - 20));
}

/* The embedded IP checksum is updated incrementally: wrong stays wrong. */
static void test_set_inner_tuple_keeps_inner_ip_error(void **state)
{
	struct rw_tuple from = tuple("10.0.2.15", 51234, "127.0.0.1", 15001, IPPROTO_TCP);
	struct rw_tuple to = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	uint8_t inner[BUF], f[BUF];
	struct rw_view v;
	size_t len;

	(void)state;
	build_tcp(inner, &from, RW_TCP_SYN, NULL, 0);
	put16(inner + ETH + 10, (uint16_t)(get16(inner + ETH + 10) ^ 0x0100));
	len = build_icmp_error(f, 3, 1, "10.0.2.2", "10.0.2.15", inner + ETH, 28);
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_ICMP_ERROR);
	rw_set_inner_tuple(&v, &to);
	assert_false(ref_csum_ok(f + ETH + 28, 20));
	assert_true(ref_csum_ok(f + ETH + 20, len - ETH - 20));
}

/* The ICMP checksum is updated incrementally too: a corrupted ICMP error stays corrupted. */
static void test_set_inner_tuple_keeps_icmp_error(void **state)
{
	static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP };
	uint8_t inner[BUF], f[BUF];
	struct rw_view v;
	size_t len;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(protos); i++) {
		struct rw_tuple from, to;

		if (protos[i] == IPPROTO_TCP) {
			from = tuple("10.0.2.15", 51234, "127.0.0.1", 15001, IPPROTO_TCP);
			to = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
			build_tcp(inner, &from, RW_TCP_SYN, NULL, 0);
		} else {
			from = tuple("10.0.2.15", 5000, "127.0.0.1", 15053, IPPROTO_UDP);
			to = tuple("10.0.2.15", 5000, "10.0.2.3", 53, IPPROTO_UDP);
			build_udp(inner, &from, payload, sizeof(payload) - 1);
		}
		len = build_icmp_error(f, 3, 1, "10.0.2.2", "10.0.2.15", inner + ETH, 28);
		/* ICMP checksum (outer IP 20 bytes, then type, code, checksum) off by one. */
		put16(f + ETH + 22, (uint16_t)(get16(f + ETH + 22) + 1));
		assert_false(ref_csum_ok(f + ETH + 20, len - ETH - 20));
		rw_parse(f, len, &v);
		assert_int_equal(v.kind, RW_ICMP_ERROR);
		rw_set_inner_tuple(&v, &to);
		assert_false(ref_csum_ok(f + ETH + 20, len - ETH - 20));
	}
}

/* What the IP header checksum of @ip would be if computed from scratch. */
static uint16_t recomputed_ip_csum(const uint8_t *ip)
{
	uint8_t hdr[60];
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;

	memcpy(hdr, ip, ihl);
	put16(hdr + 10, 0);
	return ref_csum(hdr, ihl);
}

static void test_set_outer_addrs(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 51234, "127.0.0.1", 15001, IPPROTO_TCP);
	uint8_t inner[BUF], f[BUF], before[BUF];
	struct pkt_ipv4_view pv;
	struct rw_view v;
	uint32_t s, d;
	size_t len;

	(void)state;
	build_tcp(inner, &t, RW_TCP_SYN, NULL, 0);
	len = build_icmp_error(f, 3, 1, "10.0.2.2", "10.0.2.15", inner + ETH, 28);
	memcpy(before, f, len);
	rw_parse(f, len, &v);
	rw_outer_addrs(&v, &s, &d);
	assert_int_equal(s, in4("10.0.2.2").s_addr);
	assert_int_equal(d, in4("10.0.2.15").s_addr);
	rw_set_outer_addrs(&v, in4("198.51.100.77").s_addr, in4("10.0.2.16").s_addr);
	rw_outer_addrs(&v, &s, &d);
	assert_int_equal(s, in4("198.51.100.77").s_addr);
	assert_int_equal(d, in4("10.0.2.16").s_addr);
	assert_int_equal(pkt_parse_ipv4(f, len, &pv), 0);
	assert_true(pv.ip_csum_ok);
	assert_int_equal(pv.src.s_addr, in4("198.51.100.77").s_addr);
	assert_int_equal(pv.dst.s_addr, in4("10.0.2.16").s_addr);
	/* Nothing else moved: the ICMP message is untouched. */
	assert_memory_equal(f + ETH + 20, before + ETH + 20, len - ETH - 20);
	assert_memory_equal(f, before, ETH + 10);
	/* Checksum byte-exact with a recomputation. */
	assert_int_equal(get16(f + ETH + 10), recomputed_ip_csum(f + ETH));
	/* Back to the original: the frame is restored exactly. */
	rw_set_outer_addrs(&v, in4("10.0.2.2").s_addr, in4("10.0.2.15").s_addr);
	assert_memory_equal(f, before, len);
}

/* --------------------------------------------------------- rw_build_tcp_rst */

static void test_build_rst(void **state)
{
	static const uint32_t acks[] = { 0x12345679, 0, 0xffffffffu, 1 };
	static const uint32_t seqs[] = { 0, 0x80000000u, 7, 0xfffffffeu };
	struct rw_tuple t = tuple("93.184.216.34", 443, "10.0.2.15", 40000, IPPROTO_TCP);
	uint8_t out[BUF];
	struct pkt_ipv4_view pv;
	struct rw_tuple got;
	struct rw_view v;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(acks); i++) {
		memset(out, 0xa5, sizeof(out));
		assert_int_equal(rw_build_tcp_rst(out, pkt_guest_mac, gw_mac, &t, seqs[i], acks[i]),
				 54);
		for (size_t k = 54; k < 128; k++)
			assert_int_equal(out[k], 0xa5);
		assert_memory_equal(out, pkt_guest_mac, 6);
		assert_memory_equal(out + 6, gw_mac, 6);
		assert_int_equal(get16(out + 12), 0x0800);

		assert_int_equal(pkt_parse_ipv4(out, 54, &pv), 0);
		assert_true(pv.ip_csum_ok);
		assert_true(pv.l4_csum_ok);
		assert_int_equal(pv.proto, IPPROTO_TCP);
		assert_int_equal(pv.src.s_addr, t.saddr);
		assert_int_equal(pv.dst.s_addr, t.daddr);
		assert_int_equal(pv.l4_len, 20);
		assert_int_equal(get16(out + ETH + 2), 40);
		assert_int_equal(get16(pv.l4), 443);
		assert_int_equal(get16(pv.l4 + 2), 40000);
		assert_int_equal((uint32_t)pv.l4[8] << 24 | (uint32_t)pv.l4[9] << 16 |
				 (uint32_t)pv.l4[10] << 8 | pv.l4[11], acks[i]);
		assert_int_equal((uint32_t)pv.l4[4] << 24 | (uint32_t)pv.l4[5] << 16 |
				 (uint32_t)pv.l4[6] << 8 | pv.l4[7], seqs[i]);
		assert_int_equal(pv.l4[12] >> 4, 5);
		assert_int_equal(pv.l4[13], RW_TCP_RST | RW_TCP_ACK);
		assert_int_equal(pv.l4[13], 0x14);
		assert_true(out[ETH + 8] > 0); /* a TTL */

		rw_parse(out, 54, &v);
		assert_int_equal(v.kind, RW_TRANSPORT);
		rw_tuple(&v, &got);
		assert_tuple_equal(&got, &t);
		assert_int_equal(rw_tcp_seq(&v), seqs[i]);
		assert_int_equal(rw_tcp_ack(&v), acks[i]);
		assert_true(rw_checksums_ok(&v));
	}
}

/* ------------------------------------ sequence end, fragments, full checksums */

static void test_seq_end(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	uint8_t f[BUF];
	struct rw_view v;
	size_t len;

	(void)state;
	len = build_tcp(f, &t, RW_TCP_SYN, NULL, 0);
	rw_parse(f, len, &v);
	assert_int_equal(rw_tcp_seq_end(&v), 0x01020304u + 1);
	len = build_tcp(f, &t, RW_TCP_ACK, "hello", 5);
	rw_parse(f, len, &v);
	assert_int_equal(rw_tcp_seq_end(&v), 0x01020304u + 5);
	assert_int_equal(rw_tcp_ack(&v), 0xa0b0c0d0u);
	len = build_tcp(f, &t, RW_TCP_ACK | RW_TCP_FIN, "hi", 2);
	rw_parse(f, len, &v);
	assert_int_equal(rw_tcp_seq_end(&v), 0x01020304u + 3);
	/* Ethernet padding beyond the IP total length is not payload. */
	len = build_tcp(f, &t, RW_TCP_ACK, NULL, 0);
	memset(f + len, 0, 6);
	rw_parse(f, len + 6, &v);
	assert_int_equal(rw_tcp_seq_end(&v), 0x01020304u);
}

static void test_fragment_flags(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 5353, "198.18.0.1", 53, IPPROTO_UDP);
	uint8_t f[BUF];
	struct rw_view v;
	size_t len = build_udp(f, &t, "query", 5);

	(void)state;
	rw_parse(f, len, &v);
	assert_false(rw_is_fragment(&v));
	/* DF alone is no fragment. */
	put16(f + ETH + 6, 0x4000);
	fix_ip_csum(f + ETH);
	rw_parse(f, len, &v);
	assert_false(rw_is_fragment(&v));
	/* First fragment: MF, offset 0 (still parsed as transport). */
	put16(f + ETH + 6, 0x2000);
	fix_ip_csum(f + ETH);
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_TRANSPORT);
	assert_true(rw_is_fragment(&v));
	/* Last fragment: offset only. */
	put16(f + ETH + 6, 0x0010);
	fix_ip_csum(f + ETH);
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_FRAGMENT);
	assert_true(rw_is_fragment(&v));
	/* Malformed frames are not called fragments. */
	f[ETH] = 0x44;
	rw_parse(f, len, &v);
	assert_int_equal(v.kind, RW_MALFORMED);
	assert_false(rw_is_fragment(&v));
}

static void test_checksums_ok(void **state)
{
	struct rw_tuple tt = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	struct rw_tuple tu = tuple("10.0.2.15", 5353, "198.18.0.1", 53, IPPROTO_UDP);
	uint8_t f[BUF];
	struct rw_view v;
	size_t len;

	(void)state;
	len = build_tcp(f, &tt, RW_TCP_SYN, "x", 1);
	rw_parse(f, len, &v);
	assert_true(rw_checksums_ok(&v));
	/* Any flipped bit in the segment, the header or the addresses is caught. */
	for (size_t off = ETH; off < len; off++) {
		f[off] ^= 0x10;
		rw_parse(f, len, &v);
		if (v.kind == RW_TRANSPORT || v.kind == RW_OTHER)
			assert_false(rw_checksums_ok(&v));
		f[off] ^= 0x10;
	}
	/* IP options are covered by the header checksum. */
	len = add_ip_options(f, len);
	rw_parse(f, len, &v);
	assert_true(rw_checksums_ok(&v));

	len = build_udp(f, &tu, "query", 5);
	rw_parse(f, len, &v);
	assert_true(rw_checksums_ok(&v));
	f[len - 1] ^= 1;
	rw_parse(f, len, &v);
	assert_false(rw_checksums_ok(&v));
	/* UDP checksum 0: none, valid whatever the payload. */
	put16(f + ETH + 20 + 6, 0);
	rw_parse(f, len, &v);
	assert_true(rw_checksums_ok(&v));
	/* Not IPv4 or malformed: never "ok". */
	f[ETH] = 0x44;
	rw_parse(f, len, &v);
	assert_false(rw_checksums_ok(&v));
}

/* ------------------------------------------------------------------ fuzzing */

#define FUZZ_ITERS 100000

static void check_view_bounds(const struct rw_view *v, const uint8_t *f, size_t len)
{
	if (v->kind == RW_NOT_IPV4 || v->kind == RW_MALFORMED)
		return;
	assert_true(ETH + v->ip_len <= len);
	assert_true(v->ihl >= 20 && v->ihl <= v->ip_len);
	if (v->kind == RW_TRANSPORT) {
		assert_ptr_equal(v->l4, v->ip + v->ihl);
		assert_true(v->l4_len == v->ip_len - v->ihl);
		assert_true(v->l4_len >= (v->proto == IPPROTO_TCP ? 20u : 8u));
	}
	if (v->kind == RW_ICMP_ERROR) {
		assert_true(v->inner_ip >= v->l4 + 8);
		assert_true(v->inner_ihl >= 20);
		assert_ptr_equal(v->inner_l4, v->inner_ip + v->inner_ihl);
		assert_true(v->inner_l4 + 8 <= f + ETH + v->ip_len);
	}
}

static struct rw_tuple random_tuple(uint8_t proto)
{
	struct rw_tuple t;

	t.saddr = (uint32_t)rng_next();
	t.daddr = (uint32_t)rng_next();
	t.sport = (uint16_t)rng_next();
	t.dport = (uint16_t)rng_next();
	t.proto = proto;
	return t;
}

/* Rewrite whatever the parser accepted; every invariant that holds for valid frames holds here. */
static void fuzz_one(uint8_t *f, size_t len, int *n_transport, int *n_icmp)
{
	struct pkt_ipv4_view before, after;
	struct rw_tuple to, got;
	struct rw_view v, v2;
	uint32_t s, d;

	rw_parse(f, len, &v);
	check_view_bounds(&v, f, len);
	switch (v.kind) {
	case RW_TRANSPORT:
		(*n_transport)++;
		rw_tuple(&v, &got);
		if (v.proto == IPPROTO_TCP) {
			assert_int_equal(rw_tcp_flags(&v), v.l4[13]);
			(void)rw_tcp_seq(&v);
		}
		assert_int_equal(pkt_parse_ipv4(f, len, &before), 0);
		to = random_tuple(v.proto);
		rw_set_tuple(&v, &to);
		assert_int_equal(pkt_parse_ipv4(f, len, &after), 0);
		assert_int_equal(before.ip_csum_ok, after.ip_csum_ok);
		assert_int_equal(before.l4_csum_ok, after.l4_csum_ok);
		rw_parse(f, len, &v2);
		assert_int_equal(v2.kind, RW_TRANSPORT);
		rw_tuple(&v2, &got);
		assert_tuple_equal(&got, &to);
		break;
	case RW_ICMP_ERROR: {
		bool inner_ok = ref_csum_ok(v.inner_ip, v.inner_ihl);
		bool icmp_ok = ref_csum_ok(v.l4, v.l4_len);

		(*n_icmp)++;
		rw_inner_tuple(&v, &got);
		to = random_tuple(got.proto);
		rw_set_inner_tuple(&v, &to);
		rw_set_outer_addrs(&v, (uint32_t)rng_next(), (uint32_t)rng_next());
		rw_outer_addrs(&v, &s, &d);
		assert_int_equal(ref_csum_ok(v.inner_ip, v.inner_ihl), inner_ok);
		if (icmp_ok)
			assert_true(ref_csum_ok(v.l4, v.l4_len));
		rw_parse(f, len, &v2);
		assert_int_equal(v2.kind, RW_ICMP_ERROR);
		rw_inner_tuple(&v2, &got);
		assert_tuple_equal(&got, &to);
		break;
	}
	default:
		break;
	}
}

static void test_fuzz(void **state)
{
	struct rw_tuple t = tuple("10.0.2.15", 40000, "93.184.216.34", 443, IPPROTO_TCP);
	struct rw_tuple tu = tuple("10.0.2.15", 5000, "10.0.2.3", 53, IPPROTO_UDP);
	uint8_t bases[6][256], inner[256];
	size_t base_len[6];
	int n_transport = 0, n_icmp = 0, kinds[RW_OTHER + 1] = { 0 };

	(void)state;
	base_len[0] = build_tcp(bases[0], &t, 0x18, payload, sizeof(payload) - 1);
	base_len[1] = build_udp(bases[1], &tu, payload, sizeof(payload) - 1);
	base_len[2] = add_ip_options(bases[2], build_tcp(bases[2], &t, RW_TCP_SYN, NULL, 0));
	build_tcp(inner, &t, RW_TCP_SYN, NULL, 0);
	base_len[3] = build_icmp_error(bases[3], 3, 1, "10.0.2.2", "10.0.2.15", inner + ETH, 28);
	build_udp(inner, &tu, payload, sizeof(payload) - 1);
	base_len[4] = build_icmp_error(bases[4], 11, 0, "10.0.2.2", "10.0.2.15", inner + ETH,
				       28 + sizeof(payload) - 1);
	base_len[5] = build_icmp_echo(bases[5]);

	rng_state = 0x5eed;
	for (int it = 0; it < FUZZ_ITERS; it++) {
		size_t len;
		uint8_t *f, *copy;
		struct rw_view v;

		if (rng_next() % 4 == 0) {
			/* Random bytes, often with a plausible Ethernet/IPv4 start. */
			len = (size_t)(rng_next() % 201);
			f = malloc(len ? len : 1);
			assert_non_null(f);
			for (size_t k = 0; k < len; k++)
				f[k] = (uint8_t)rng_next();
			if (len >= 14 && rng_next() % 4)
				put16(f + 12, 0x0800);
			if (len >= 15 && rng_next() % 2)
				f[14] = (uint8_t)(0x45 + rng_next() % 3);
			if (len >= 24 && rng_next() % 2) {
				static const uint8_t protos[] = { 1, 6, 17 };

				f[23] = protos[rng_next() % 3];
			}
			if (len >= 18 && rng_next() % 2)
				put16(f + 16, (uint16_t)(len - 14 - rng_next() % 4));
			if (len >= 22 && rng_next() % 2)
				f[20] = f[21] = 0;
		} else {
			/* A valid frame with a few flipped bytes, maybe truncated. */
			size_t b = (size_t)(rng_next() % 6), flips = (size_t)(rng_next() % 6);

			len = base_len[b];
			if (rng_next() % 3 == 0)
				len = (size_t)(rng_next() % (len + 1));
			f = malloc(len ? len : 1);
			assert_non_null(f);
			memcpy(f, bases[b], len);
			for (size_t k = 0; k < flips && len; k++) {
				/* Half the flips aimed at the headers. */
				size_t span = (rng_next() % 2 || len < 70) ? len : 70;
				size_t pos = (size_t)(rng_next() % span);

				f[pos] ^= (uint8_t)(1u << (rng_next() % 8));
				if (rng_next() % 4 == 0)
					f[pos] = (uint8_t)rng_next();
			}
		}
		/* Exact-size copy so ASan sees any read past the end. */
		copy = malloc(len ? len : 1);
		assert_non_null(copy);
		memcpy(copy, f, len);
		free(f);
		rw_parse(copy, len, &v);
		kinds[v.kind]++;
		if (v.kind != RW_TRANSPORT && v.kind != RW_ICMP_ERROR) {
			/* Reported, never touched: parsing again gives the same answer. */
			struct rw_view v2;

			rw_parse(copy, len, &v2);
			assert_int_equal(v2.kind, v.kind);
		}
		fuzz_one(copy, len, &n_transport, &n_icmp);
		free(copy);
	}
	/* The fuzzer must actually have reached every outcome, rewrites included. */
	for (int k = 0; k <= RW_OTHER; k++)
		if (kinds[k] < 100)
			fail_msg("kind %d seen only %d times", k, kinds[k]);
	assert_true(n_transport > 10000);
	assert_true(n_icmp > 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_not_ipv4),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_fragment),
		cmocka_unit_test(test_parse_transport),
		cmocka_unit_test(test_parse_other),
		cmocka_unit_test(test_parse_icmp_error),
		cmocka_unit_test(test_parse_icmp_error_not_usable),
		cmocka_unit_test(test_set_tuple_tcp),
		cmocka_unit_test(test_clear_urgent),
		cmocka_unit_test(test_options_sound),
		cmocka_unit_test(test_set_tuple_tcp_ip_options),
		cmocka_unit_test(test_set_tuple_udp),
		cmocka_unit_test(test_set_tuple_udp_no_checksum),
		cmocka_unit_test(test_set_tuple_udp_zero_sum),
		cmocka_unit_test(test_set_tuple_random),
		cmocka_unit_test(test_set_tuple_keeps_errors),
		cmocka_unit_test(test_set_tuple_identity),
		cmocka_unit_test(test_set_inner_tuple_tcp),
		cmocka_unit_test(test_set_inner_tuple_udp),
		cmocka_unit_test(test_set_inner_tuple_udp_no_checksum),
		cmocka_unit_test(test_set_inner_tuple_udp_zero_sum),
		cmocka_unit_test(test_set_inner_tuple_keeps_inner_ip_error),
		cmocka_unit_test(test_set_inner_tuple_keeps_icmp_error),
		cmocka_unit_test(test_set_outer_addrs),
		cmocka_unit_test(test_build_rst),
		cmocka_unit_test(test_seq_end),
		cmocka_unit_test(test_fragment_flags),
		cmocka_unit_test(test_checksums_ok),
		cmocka_unit_test(test_fuzz),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
