/* test_knat.c - unit tests of the kernel path's translation, checked against tests/lib's independent builder. */

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

#include "proxy-bridge/knat.h"
#include "tests/lib/pkt.h"

#define ETH 14
#define BUF 2048

static const uint8_t gw_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
static const char payload[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"; /* odd length */

static uint64_t rng_state = 0x6b6e6174;

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

static size_t syn_frame(uint8_t *buf)
{
	return pkt_tcp(buf, gw_mac, in4("10.0.2.15"), in4("203.0.113.7"), 40000, 80, 1000, 0,
		       0x02, payload, sizeof(payload) - 1);
}

static void test_parse_sound(void **state)
{
	uint8_t buf[BUF];
	size_t len = syn_frame(buf);
	struct knat_view v;
	struct knat_tuple t;

	(void)state;
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), 0);
	assert_int_equal(v.ihl, 20);
	assert_int_equal(v.thl, 24); /* with the MSS option the builder gives a SYN */
	assert_int_equal(v.tot, len - ETH);
	assert_int_equal(v.flags, KNAT_TCP_SYN);
	t = knat_tuple_of(&v);
	assert_int_equal(t.saddr, in4("10.0.2.15").s_addr);
	assert_int_equal(t.daddr, in4("203.0.113.7").s_addr);
	assert_int_equal(ntohs(t.sport), 40000);
	assert_int_equal(ntohs(t.dport), 80);
	/* Padding after the IP packet (short Ethernet frames) is not part of it. */
	assert_int_equal(knat_parse(buf + ETH, len - ETH + 6, &v), 0);
	assert_int_equal(v.tot, len - ETH);
}

static void test_parse_not_ours(void **state)
{
	uint8_t buf[BUF];
	size_t len;
	struct knat_view v;

	(void)state;
	len = pkt_udp(buf, gw_mac, in4("10.0.2.15"), in4("10.0.2.3"), 5353, 53, "q", 1);
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), -ENOENT);
	len = syn_frame(buf);
	buf[ETH] = 0x65; /* IPv6 version nibble */
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), -ENOENT);
	len = syn_frame(buf);
	buf[ETH + 6] = 0x20; /* More Fragments */
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), -ENOENT);
	buf[ETH + 6] = 0x00;
	buf[ETH + 7] = 0x01; /* an offset */
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), -ENOENT);
	assert_int_equal(knat_parse(buf + ETH, 19, &v), -ENOENT);
}

static void test_parse_lies(void **state)
{
	uint8_t buf[BUF];
	size_t len = syn_frame(buf);
	struct knat_view v;

	(void)state;
	/* Total length past the buffer. */
	assert_int_equal(knat_parse(buf + ETH, len - ETH - 1, &v), -EBADMSG);
	/* Header length under 20, and past the total. */
	buf[ETH] = 0x44;
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), -EBADMSG);
	buf[ETH] = 0x4f;
	buf[ETH + 2] = 0;
	buf[ETH + 3] = 40;
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), -EBADMSG);
	/* TCP data offset under 20 bytes, and past the packet. */
	len = syn_frame(buf);
	buf[ETH + 20 + 12] = 0x40;
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), -EBADMSG);
	buf[ETH + 20 + 12] = 0xf0;
	len = pkt_tcp(buf, gw_mac, in4("10.0.2.15"), in4("203.0.113.7"), 1, 2, 0, 0, 0x10, NULL, 0);
	buf[ETH + 20 + 12] = 0x60;
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), -EBADMSG);
	/* A TCP header that does not fit at all. */
	buf[ETH + 2] = 0;
	buf[ETH + 3] = 30;
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), -EBADMSG);
}

static struct knat_tuple random_tuple(void)
{
	uint64_t r = rng_next();

	return (struct knat_tuple){ .saddr = (uint32_t)r, .daddr = (uint32_t)(r >> 32),
				    .sport = (uint16_t)rng_next(), .dport = (uint16_t)rng_next() };
}

static void assert_tuple(const uint8_t *frame, size_t len, const struct knat_tuple *t)
{
	struct pkt_ipv4_view pv;

	assert_int_equal(pkt_parse_ipv4(frame, len, &pv), 0);
	assert_int_equal(pv.src.s_addr, t->saddr);
	assert_int_equal(pv.dst.s_addr, t->daddr);
	assert_memory_equal(pv.l4, &t->sport, 2);
	assert_memory_equal(pv.l4 + 2, &t->dport, 2);
	assert_true(pv.ip_csum_ok);
	assert_true(pv.l4_csum_ok);
}

/* A complete checksum stays right through any translation, and back. */
static void test_rewrite_complete(void **state)
{
	(void)state;
	for (int i = 0; i < 2000; i++) {
		uint8_t buf[BUF];
		size_t len = syn_frame(buf);
		struct knat_tuple to = random_tuple(), back;
		struct knat_view v;

		assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), 0);
		back = knat_tuple_of(&v);
		knat_rewrite(&v, &to, false);
		assert_tuple(buf, len, &to);
		knat_rewrite(&v, &back, false);
		assert_tuple(buf, len, &back);
	}
}

/* The pseudo-header's sum, as a virtio-net driver leaves it for NEEDS_CSUM (not complemented). */
static void make_partial(uint8_t *frame, size_t len)
{
	uint8_t pseudo[12];
	uint8_t *ip = frame + ETH, *tcp = ip + 20;
	uint16_t l4 = (uint16_t)(len - ETH - 20), sum;

	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	pseudo[10] = (uint8_t)(l4 >> 8);
	pseudo[11] = (uint8_t)l4;
	sum = pkt_csum_fold(pkt_csum_add(0, pseudo, sizeof(pseudo)));
	tcp[16] = (uint8_t)(sum >> 8);
	tcp[17] = (uint8_t)sum;
}

/* A partial checksum, translated, completes to the right one for the new tuple. */
static void test_rewrite_partial(void **state)
{
	(void)state;
	for (int i = 0; i < 2000; i++) {
		uint8_t buf[BUF];
		size_t len = syn_frame(buf);
		struct knat_tuple to = random_tuple();
		struct knat_view v;

		make_partial(buf, len);
		assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), 0);
		knat_rewrite(&v, &to, true);
		assert_int_equal(pkt_csum_complete(buf, len, ETH + 20, 16), 0);
		assert_tuple(buf, len, &to);
	}
}

/* Only the addresses enter a partial checksum: a port-only change leaves the field alone. */
static void test_rewrite_partial_ports_only(void **state)
{
	uint8_t buf[BUF];
	size_t len = syn_frame(buf);
	struct knat_view v;
	struct knat_tuple to;
	uint8_t before[2];

	(void)state;
	make_partial(buf, len);
	memcpy(before, buf + ETH + 20 + 16, 2);
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), 0);
	to = knat_tuple_of(&v);
	to.sport = htons(1);
	to.dport = htons(KNAT_LISTEN_PORT);
	knat_rewrite(&v, &to, true);
	assert_memory_equal(buf + ETH + 20 + 16, before, 2);
}

static void test_checksums_ok(void **state)
{
	uint8_t buf[BUF];
	size_t len = syn_frame(buf);
	struct knat_view v;

	(void)state;
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), 0);
	assert_true(knat_checksums_ok(&v, false));
	/*
	 * Any flipped bit, header or payload, fails one of them; with a partial
	 * TCP checksum only what the IPv4 header covers is checked.
	 */
	for (size_t i = 0; i < len - ETH; i++) {
		buf[ETH + i] ^= 0x10;
		if (knat_parse(buf + ETH, len - ETH, &v) == 0) {
			assert_false(knat_checksums_ok(&v, false));
			assert_int_equal(knat_checksums_ok(&v, true), i >= 20);
		}
		buf[ETH + i] ^= 0x10;
	}
	assert_int_equal(knat_parse(buf + ETH, len - ETH, &v), 0);
	assert_true(knat_checksums_ok(&v, false));
}

static void test_pool(void **state)
{
	(void)state;
	assert_int_equal(ntohl(knat_pool_addr(0)), KNAT_POOL_NET + 1);
	assert_int_equal(ntohl(knat_pool_addr(KNAT_POOL_SLOTS - 1)), 0x0afffffeu);
	for (uint32_t s = 0; s < KNAT_POOL_SLOTS; s += 97)
		assert_int_equal(knat_pool_slot(knat_pool_addr(s)), s);
	assert_int_equal(knat_pool_slot(knat_pool_addr(KNAT_POOL_SLOTS - 1)), KNAT_POOL_SLOTS - 1);
	/* The network and broadcast addresses, the listener, and the guest's network are no slot. */
	assert_int_equal(knat_pool_slot(htonl(KNAT_POOL_NET)), -1);
	assert_int_equal(knat_pool_slot(htonl(0x0affffffu)), -1);
	assert_int_equal(knat_pool_slot(htonl(KNAT_LISTEN_ADDR)), -1);
	assert_int_equal(knat_pool_slot(in4("10.0.2.15").s_addr), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_sound),
		cmocka_unit_test(test_parse_not_ours),
		cmocka_unit_test(test_parse_lies),
		cmocka_unit_test(test_rewrite_complete),
		cmocka_unit_test(test_rewrite_partial),
		cmocka_unit_test(test_rewrite_partial_ports_only),
		cmocka_unit_test(test_checksums_ok),
		cmocka_unit_test(test_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
