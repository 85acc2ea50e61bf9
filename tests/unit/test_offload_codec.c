/* test_offload_codec.c - unit tests of the virtio-net offload codec against tests/lib's own checksums. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <glib.h>

#include "backend/offload.h"
#include "tests/lib/pkt.h"

#define ETH 14

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

static size_t tcp_frame(uint8_t *buf, size_t payload, uint8_t flags)
{
	static uint8_t data[65535];

	for (size_t i = 0; i < payload; i++)
		data[i] = (uint8_t)(i * 13 + 1);
	return pkt_tcp(buf, pkt_broadcast_mac, ip4("10.0.2.15"), ip4("198.18.0.9"), 40000, 80,
		       1, 2, flags, data, payload);
}

/* Replace a frame's TCP or UDP checksum with its pseudo-header's sum, as Linux hands it over. */
static void make_partial(uint8_t *fr, size_t off_in_l4)
{
	uint8_t *ip = fr + ETH, *l4 = ip + 20;
	size_t l4len = (size_t)(ip[2] << 8 | ip[3]) - 20;
	uint32_t sum = pkt_csum_fold(pkt_csum_add(0, ip + 12, 8) + ip[9] + (uint32_t)l4len);

	l4[off_in_l4] = (uint8_t)(sum >> 8);
	l4[off_in_l4 + 1] = (uint8_t)sum;
}

static void assert_csums_ok(const uint8_t *fr, size_t len)
{
	struct pkt_ipv4_view v;

	assert_int_equal(pkt_parse_ipv4(fr, len, &v), 0);
	assert_true(v.ip_csum_ok);
	assert_true(v.l4_csum_ok);
}

/* Partial checksums of TCP and UDP, of every length parity, completed right. */
static void test_from_guest_csum(void **state)
{
	static uint8_t fr[ETH + 40 + 3000], payload[3000];
	struct frame_meta m = { .flags = FRAME_META_NEEDS_CSUM, .csum_start = ETH + 20 };

	(void)state;
	for (size_t n = 0; n < 3000; n += 97) {
		size_t len = tcp_frame(fr, n, 0x18);

		make_partial(fr, 16);
		m.csum_offset = 16;
		assert_int_equal(offload_from_guest(fr, len, &m), 0);
		assert_csums_ok(fr, len);

		len = pkt_udp(fr, pkt_broadcast_mac, ip4("10.0.2.15"), ip4("198.18.0.9"), 5000, 53,
			      payload, n);
		make_partial(fr, 6);
		m.csum_offset = 6;
		assert_int_equal(offload_from_guest(fr, len, &m), 0);
		assert_csums_ok(fr, len);
		assert_true(fr[ETH + 20 + 6] || fr[ETH + 20 + 7]); /* never UDP's "none" */
	}
}

/* Ethernet padding after the packet is not summed; a position inside it is a lie. */
static void test_from_guest_padding(void **state)
{
	uint8_t fr[128] = { 0 };
	size_t len = tcp_frame(fr, 2, 0x18);
	struct frame_meta m = { .flags = FRAME_META_NEEDS_CSUM, .csum_start = ETH + 20,
				.csum_offset = 16 };

	(void)state;
	make_partial(fr, 16);
	memset(fr + len, 0xa5, 8);
	assert_int_equal(offload_from_guest(fr, len + 8, &m), 0);
	assert_csums_ok(fr, len + 8);
	m.csum_start = (uint16_t)len;
	m.csum_offset = 2;
	assert_int_equal(offload_from_guest(fr, len + 8, &m), -EINVAL);
	m.csum_start = ETH + 20;
	m.csum_offset = 60000;
	assert_int_equal(offload_from_guest(fr, len + 8, &m), -EINVAL);
}

/* A GSO segment must be one IPv4 TCP packet filling the frame exactly. */
static void test_from_guest_gso(void **state)
{
	static uint8_t fr[ETH + 40 + 65000];
	struct frame_meta m = { .flags = FRAME_META_NEEDS_CSUM, .gso_type = FRAME_GSO_TCPV4,
				.gso_size = 1460, .hdr_len = ETH + 40, .csum_start = ETH + 20,
				.csum_offset = 16 };
	size_t len;

	(void)state;
	len = tcp_frame(fr, 65000, 0x10);
	make_partial(fr, 16);
	assert_int_equal(offload_from_guest(fr, len, &m), 0);
	assert_csums_ok(fr, len);

	len = tcp_frame(fr, 5000, 0x10);
	assert_int_equal(offload_from_guest(fr, len + 10, &m), -EINVAL);   /* frame longer */
	fr[ETH + 9] = IPPROTO_UDP;
	assert_int_equal(offload_from_guest(fr, len, &m), -EINVAL);        /* not TCP */
	len = tcp_frame(fr, 5000, 0x10);
	fr[ETH + 6] = 0x20;
	assert_int_equal(offload_from_guest(fr, len, &m), -EINVAL);        /* a fragment */
	len = tcp_frame(fr, 5000, 0x10);
	fr[ETH + 20 + 12] = 0x40;
	assert_int_equal(offload_from_guest(fr, len, &m), -EINVAL);        /* TCP header < 20 */
	len = tcp_frame(fr, 5000, 0x10);
	fr[12] = 0x86;
	fr[13] = 0xdd;
	assert_int_equal(offload_from_guest(fr, len, &m), -EINVAL);        /* not IPv4 */
	len = tcp_frame(fr, 5000, 0x10);
	m.gso_type = FRAME_GSO_UDP;
	assert_int_equal(offload_from_guest(fr, len, &m), -EINVAL);
	assert_int_equal(offload_from_guest(fr, 20, &m), -EINVAL);         /* a runt */
}

/* What the guest gets, by size and by what it takes. */
static void test_to_guest(void **state)
{
	static uint8_t fr[ETH + 40 + 32768], copy[sizeof(fr)];
	const uint32_t all = BACKEND_OFFLOAD_CSUM | BACKEND_OFFLOAD_TSO4;
	const struct frame_meta *meta;
	struct frame_meta m;
	size_t len;

	(void)state;
	/* Large TCP to a TSO guest: GSO, partial checksum that completes right. */
	len = tcp_frame(fr, 32768, 0x18);
	assert_int_equal(offload_to_guest(fr, len, 1500, all, &m, &meta), 0);
	assert_ptr_equal(meta, &m);
	assert_int_equal(m.gso_type, FRAME_GSO_TCPV4);
	assert_int_equal(m.gso_size, 1460);
	assert_int_equal(m.hdr_len, ETH + 40);
	assert_int_equal(m.flags, FRAME_META_NEEDS_CSUM);
	assert_int_equal(m.csum_start, ETH + 20);
	assert_int_equal(m.csum_offset, 16);
	assert_int_equal(pkt_csum_complete(fr, len, m.csum_start, m.csum_offset), 0);
	assert_csums_ok(fr, len);

	/* Small TCP: partial checksum, no GSO. */
	len = tcp_frame(fr, 100, 0x18);
	assert_int_equal(offload_to_guest(fr, len, 1500, all, &m, &meta), 0);
	assert_int_equal(m.gso_type, FRAME_GSO_NONE);
	assert_int_equal(m.flags, FRAME_META_NEEDS_CSUM);
	assert_int_equal(pkt_csum_complete(fr, len, m.csum_start, m.csum_offset), 0);
	assert_csums_ok(fr, len);

	/* UDP: DATA_VALID, bytes untouched. */
	len = pkt_udp(fr, pkt_broadcast_mac, ip4("10.0.2.3"), ip4("10.0.2.15"), 53, 5000, copy, 200);
	memcpy(copy, fr, len);
	assert_int_equal(offload_to_guest(fr, len, 1500, all, &m, &meta), 0);
	assert_int_equal(m.flags, FRAME_META_DATA_VALID);
	assert_memory_equal(fr, copy, len);

	/* ARP: plain. */
	len = pkt_arp_request(fr, ip4("10.0.2.2"), ip4("10.0.2.15"));
	assert_int_equal(offload_to_guest(fr, len, 1500, all, &m, &meta), 0);
	assert_null(meta);

	/* A guest without offloads: plain frames, and large TCP is -EMSGSIZE, untouched. */
	len = tcp_frame(fr, 100, 0x18);
	assert_int_equal(offload_to_guest(fr, len, 1500, 0, &m, &meta), 0);
	assert_null(meta);
	len = tcp_frame(fr, 32768, 0x18);
	memcpy(copy, fr, len);
	assert_int_equal(offload_to_guest(fr, len, 1500, 0, &m, &meta), -EMSGSIZE);
	assert_int_equal(offload_to_guest(fr, len, 1500, BACKEND_OFFLOAD_CSUM, &m, &meta),
			 -EMSGSIZE);
	assert_memory_equal(fr, copy, len);
	assert_null(meta);
	/* Large but no TCP (libslirp never does this: the netstack fragments): refused. */
	len = pkt_udp(fr, pkt_broadcast_mac, ip4("10.0.2.3"), ip4("10.0.2.15"), 53, 5000, copy,
		      3000);
	assert_int_equal(offload_to_guest(fr, len, 1500, all, &m, &meta), -EMSGSIZE);
}

/* The SYN's MSS goes up only when it is exactly the link's, wherever the option sits. */
static void test_raise_mss(void **state)
{
	uint8_t fr[128];
	size_t len;

	(void)state;
	len = tcp_frame(fr, 0, 0x02);                  /* MSS 1460 */
	assert_int_equal(offload_raise_mss(fr, len, 1500), 1);
	assert_int_equal(fr[ETH + 42] << 8 | fr[ETH + 43], OFFLOAD_MSS_RAISED);
	assert_csums_ok(fr, len);
	assert_int_equal(offload_raise_mss(fr, len, 1500), 0); /* already raised */

	len = tcp_frame(fr, 0, 0x12);                  /* a SYN-ACK too */
	assert_int_equal(offload_raise_mss(fr, len, 1500), 1);
	len = tcp_frame(fr, 0, 0x02);
	assert_int_equal(offload_raise_mss(fr, len, 9000), 0); /* the guest chose less */
	len = tcp_frame(fr, 10, 0x10);
	assert_int_equal(offload_raise_mss(fr, len, 1500), 0); /* no SYN */

	/* NOPs before it, and options that lie about their length. */
	len = tcp_frame(fr, 0, 0x02);
	memmove(fr + ETH + 44, fr + ETH + 40, 4);
	memset(fr + ETH + 40, 1, 4);
	fr[ETH + 20 + 12] = 0x70;
	fr[ETH + 2] = 0;
	fr[ETH + 3] = 48;
	pkt_fix_csums(fr, ETH + 48);
	assert_int_equal(offload_raise_mss(fr, ETH + 48, 1500), 1);
	assert_csums_ok(fr, ETH + 48);
	/* One NOP: the value sits at an odd offset, across two checksum words. */
	len = tcp_frame(fr, 0, 0x02);
	memmove(fr + ETH + 41, fr + ETH + 40, 4);
	fr[ETH + 40] = 1;
	memset(fr + ETH + 45, 0, 3);
	fr[ETH + 20 + 12] = 0x70;
	fr[ETH + 2] = 0;
	fr[ETH + 3] = 48;
	pkt_fix_csums(fr, ETH + 48);
	assert_int_equal(offload_raise_mss(fr, ETH + 48, 1500), 1);
	assert_int_equal(fr[ETH + 43] << 8 | fr[ETH + 44], OFFLOAD_MSS_RAISED);
	assert_csums_ok(fr, ETH + 48);

	len = tcp_frame(fr, 0, 0x02);
	memmove(fr + ETH + 44, fr + ETH + 40, 4);
	memset(fr + ETH + 40, 1, 4);
	fr[ETH + 20 + 12] = 0x70;
	fr[ETH + 2] = 0;
	fr[ETH + 3] = 48;
	pkt_fix_csums(fr, ETH + 48);
	fr[ETH + 45] = 40;                             /* runs past the header */
	assert_int_equal(offload_raise_mss(fr, ETH + 48, 1500), 0);
	fr[ETH + 45] = 0;                              /* length 0 */
	assert_int_equal(offload_raise_mss(fr, ETH + 48, 1500), 0);
	assert_int_equal(offload_raise_mss(fr, 20, 1500), 0);
	assert_int_equal(offload_raise_mss(fr, ETH + 48, 30), 0);
}

/* libslirp's SYN-ACK to a TSO guest: its MSS comes down to OFFLOAD_MSS_TSO, never up. */
static void test_clamp_mss(void **state)
{
	uint8_t fr[128];
	size_t len;

	(void)state;
	len = tcp_frame(fr, 0, 0x12);                  /* MSS 1460 */
	assert_int_equal(offload_clamp_mss(fr, len, 1460), 0);
	assert_int_equal(offload_raise_mss(fr, len, 1500), 1); /* now 65480 */
	assert_int_equal(offload_clamp_mss(fr, len, OFFLOAD_MSS_TSO), 1);
	assert_int_equal(fr[ETH + 42] << 8 | fr[ETH + 43], OFFLOAD_MSS_TSO);
	assert_csums_ok(fr, len);
	len = tcp_frame(fr, 10, 0x10);
	assert_int_equal(offload_clamp_mss(fr, len, 536), 0);  /* no SYN */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_guest_csum),
		cmocka_unit_test(test_from_guest_padding),
		cmocka_unit_test(test_from_guest_gso),
		cmocka_unit_test(test_to_guest),
		cmocka_unit_test(test_raise_mss),
		cmocka_unit_test(test_clamp_mss),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
