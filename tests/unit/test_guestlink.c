/* test_guestlink.c - unit tests of the DHCP MTU option and IPv4 fragmentation towards the guest. */

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

#include "netstack/guestlink.h"
#include "tests/lib/pkt.h"

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

/* A DHCP reply shaped like libslirp's: BOOTP header, cookie, options, END, zeros to 312. */
static size_t dhcp_reply(uint8_t *buf, const uint8_t *opts, size_t optlen)
{
	uint8_t bootp[236 + 4 + 312];

	memset(bootp, 0, sizeof(bootp));
	bootp[0] = 2;                                  /* BOOTREPLY */
	bootp[1] = 1;
	bootp[2] = 6;
	memcpy(bootp + 236, "\x63\x82\x53\x63", 4);
	memcpy(bootp + 240, opts, optlen);
	return pkt_udp(buf, pkt_broadcast_mac, ip4("10.0.2.2"), ip4("255.255.255.255"), 67, 68,
		       bootp, sizeof(bootp));
}

/* Walk @frame's DHCP options; the value of @code (length in *len), or NULL. */
static const uint8_t *dhcp_opt(const uint8_t *frame, size_t flen, uint8_t code, uint8_t *len)
{
	const uint8_t *bootp = frame + 14 + 20 + 8;

	return pkt_dhcp_option(bootp, flen - 14 - 20 - 8, code, len);
}

static void assert_udp_ok(const uint8_t *frame, size_t len)
{
	struct pkt_ipv4_view v;

	assert_int_equal(pkt_parse_ipv4(frame, len, &v), 0);
	assert_true(v.ip_csum_ok);
	assert_true(v.l4_csum_ok);
}

/* busybox udhcpc's test of a reply (udhcp_recv_raw_packet()): 0, or the sum over it with 0 there. */
static bool udhcpc_takes(uint8_t *frame, size_t len)
{
	uint8_t *ip = frame + 14, *udp = ip + 20;
	size_t udp_len = len - 14 - 20;
	uint16_t check = (uint16_t)(udp[6] << 8 | udp[7]);
	uint32_t sum = 17 + (uint32_t)udp_len;

	if (!check)
		return true;
	udp[6] = udp[7] = 0;
	for (size_t i = 0; i < 8; i += 2)
		sum += (uint32_t)(ip[12 + i] << 8 | ip[12 + i + 1]);
	for (size_t i = 0; i < udp_len; i += 2)
		sum += (uint32_t)(udp[i] << 8 | (i + 1 < udp_len ? udp[i + 1] : 0));
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	udp[6] = (uint8_t)(check >> 8);
	udp[7] = (uint8_t)check;
	return check == (uint16_t)~sum;
}

/*
 * Every transaction id's reply passes busybox udhcpc's checksum test, also
 * the one in 65,536 whose sum folds to zero: RFC 768's 0xffff for it, which
 * udhcpc drops (a fault_reboot guest without a lease, 2026-12-05), goes as
 * 0, no checksum.
 */
static void test_dhcp_mtu_zero_sum(void **state)
{
	static const uint8_t opts[] = { 53, 1, 5, 54, 4, 10, 0, 2, 2, 51, 4, 0, 1, 81, 128, 255 };
	uint8_t base[1024], frame[1024];
	size_t len = dhcp_reply(base, opts, sizeof(opts));
	bool zero_seen = false;

	(void)state;
	for (uint32_t xid = 0; xid < (1u << 20) && !zero_seen; xid++) {
		uint8_t *bootp = frame + 14 + 20 + 8;

		memcpy(frame, base, len);
		bootp[4] = (uint8_t)(xid >> 24);
		bootp[5] = (uint8_t)(xid >> 16);
		bootp[6] = (uint8_t)(xid >> 8);
		bootp[7] = (uint8_t)xid;
		assert_int_equal(guestlink_dhcp_set_mtu(frame, len, 65520), 0);
		if (!udhcpc_takes(frame, len))
			fail_msg("xid %u: udhcpc drops the reply (checksum %02x%02x)", xid,
				 frame[14 + 20 + 6], frame[14 + 20 + 7]);
		zero_seen = !frame[14 + 20 + 6] && !frame[14 + 20 + 7];
	}
	assert_true(zero_seen);
}

static void test_dhcp_mtu_added(void **state)
{
	static const uint8_t opts[] = { 53, 1, 2, 1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 255 };
	uint8_t frame[1024], before[1024];
	size_t len = dhcp_reply(frame, opts, sizeof(opts));
	const uint8_t *v;
	uint8_t vlen;

	(void)state;
	assert_udp_ok(frame, len);
	memcpy(before, frame, len);
	assert_int_equal(guestlink_dhcp_set_mtu(frame, len, 65520), 0);
	assert_udp_ok(frame, len);
	v = dhcp_opt(frame, len, GUESTLINK_DHCP_OPT_MTU, &vlen);
	assert_non_null(v);
	assert_int_equal(vlen, 2);
	assert_int_equal(v[0] << 8 | v[1], 65520);
	/* The other options are where they were; only END moved. */
	assert_memory_equal(frame + 14 + 20 + 8 + 240, before + 14 + 20 + 8 + 240, sizeof(opts) - 1);
	assert_non_null(dhcp_opt(frame, len, 53, &vlen));
	/* A second time: already there. */
	assert_int_equal(guestlink_dhcp_set_mtu(frame, len, 1500), -EEXIST);
}

static void test_dhcp_not_a_reply(void **state)
{
	static const uint8_t opts[] = { 53, 1, 2, 255 };
	uint8_t frame[1024], copy[1024];
	size_t len = dhcp_reply(frame, opts, sizeof(opts));

	(void)state;
	memcpy(copy, frame, len);
	copy[14 + 20 + 8] = 1;                          /* BOOTREQUEST */
	assert_int_equal(guestlink_dhcp_set_mtu(copy, len, 1500), -ENOENT);
	memcpy(copy, frame, len);
	copy[14 + 20 + 8 + 236] = 0;                    /* no cookie */
	assert_int_equal(guestlink_dhcp_set_mtu(copy, len, 1500), -ENOENT);
	/* Other UDP, TCP, ARP, runts. */
	len = pkt_udp(copy, pkt_broadcast_mac, ip4("10.0.2.3"), ip4("10.0.2.15"), 53, 5353, "x", 1);
	assert_int_equal(guestlink_dhcp_set_mtu(copy, len, 1500), -ENOENT);
	len = pkt_arp_request(copy, ip4("10.0.2.15"), ip4("10.0.2.2"));
	assert_int_equal(guestlink_dhcp_set_mtu(copy, len, 1500), -ENOENT);
	for (size_t n = 0; n < 60; n++)
		assert_int_equal(guestlink_dhcp_set_mtu(frame, n, 1500), -ENOENT);
}

/* Options that lie, or fill the area to the last byte: the frame is left alone. */
static void test_dhcp_no_room_or_lying(void **state)
{
	uint8_t opts[312], frame[1024], copy[1024];
	size_t len;

	(void)state;
	/* Two options filling the 312-byte area up to byte 309, END there: 3 bytes left, not 5. */
	memset(opts, 0, sizeof(opts));
	opts[0] = 43;
	opts[1] = 255;
	opts[257] = 43;
	opts[258] = 50;
	opts[309] = 255;
	len = dhcp_reply(frame, opts, 310);
	memcpy(copy, frame, len);
	assert_int_equal(guestlink_dhcp_set_mtu(frame, len, 1500), -ENOSPC);
	assert_memory_equal(frame, copy, len);
	/* An option whose length runs past the datagram. */
	memset(opts, 0, sizeof(opts));
	opts[0] = 43;
	opts[1] = 200;
	len = dhcp_reply(frame, opts, 2);
	len -= 200;                                     /* cut it short, fix the lengths */
	frame[14 + 2] = (uint8_t)((len - 14) >> 8);
	frame[14 + 3] = (uint8_t)(len - 14);
	frame[14 + 20 + 4] = (uint8_t)((len - 34) >> 8);
	frame[14 + 20 + 5] = (uint8_t)(len - 34);
	assert_true(guestlink_dhcp_set_mtu(frame, len, 1500) < 0);
}

/* A UDP datagram of 4000 bytes at MTU 1500: three fragments that reassemble to it. */
static void test_fragment_udp(void **state)
{
	uint8_t payload[3992], frame[4100], out[1600], whole[4000];
	struct guestlink_frag it;
	size_t len, n, got = 0, count = 0;
	bool last_mf = true;

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 31 + 7);
	len = pkt_udp(frame, pkt_broadcast_mac, ip4("10.0.2.3"), ip4("10.0.2.15"), 53, 5353,
		      payload, sizeof(payload));
	assert_int_equal(guestlink_frag_start(&it, frame, len, 1500), 1);
	while ((n = guestlink_frag_next(&it, out))) {
		struct pkt_ipv4_view v;
		const uint8_t *ip = out + 14;
		size_t off = (size_t)((ip[6] & 0x1f) << 8 | ip[7]) * 8, plen;

		assert_true(n <= 14 + 1500);
		assert_int_equal(pkt_parse_ipv4(out, n, &v), 0);
		assert_true(v.ip_csum_ok);
		assert_memory_equal(out, frame, 14);
		assert_int_equal(ip[4] << 8 | ip[5], frame[18] << 8 | frame[19]); /* same id */
		plen = (size_t)(ip[2] << 8 | ip[3]) - 20;
		assert_int_equal(off, got);
		memcpy(whole + off, ip + 20, plen);
		got += plen;
		last_mf = ip[6] & 0x20;
		if (last_mf)
			assert_int_equal(plen % 8, 0);
		count++;
	}
	assert_false(last_mf);
	assert_int_equal(count, 3);
	assert_int_equal(got, 8 + sizeof(payload));
	assert_memory_equal(whole, frame + 14 + 20, got);
	assert_int_equal(guestlink_frag_next(&it, out), 0);
}

/* Fits, not IPv4, DF set, lying lengths. */
static void test_fragment_cases(void **state)
{
	uint8_t frame[4100], big[3000];
	struct guestlink_frag it;
	size_t len;

	(void)state;
	memset(big, 0x5a, sizeof(big));
	len = pkt_udp(frame, pkt_broadcast_mac, ip4("10.0.2.3"), ip4("10.0.2.15"), 53, 5353, big,
		      1472);
	assert_int_equal(guestlink_frag_start(&it, frame, len, 1500), 0);      /* exactly fits */
	len = pkt_udp(frame, pkt_broadcast_mac, ip4("10.0.2.3"), ip4("10.0.2.15"), 53, 5353, big,
		      1473);
	assert_int_equal(guestlink_frag_start(&it, frame, len, 1500), 1);
	frame[14 + 6] |= 0x40;                                                 /* DF */
	assert_int_equal(guestlink_frag_start(&it, frame, len, 1500), -EMSGSIZE);
	frame[14 + 6] &= (uint8_t)~0x40;
	frame[14 + 2] = 0xff;                                                  /* lying total length */
	assert_int_equal(guestlink_frag_start(&it, frame, len, 1500), -EBADMSG);
	len = pkt_arp_request(frame, ip4("10.0.2.15"), ip4("10.0.2.2"));
	assert_int_equal(guestlink_frag_start(&it, frame, len, 576), 0);
	assert_int_equal(guestlink_frag_start(&it, frame, 10, 576), 0);
}

/* IP options: the first fragment keeps all, later ones only those marked "copied". */
static void test_fragment_options(void **state)
{
	uint8_t frame[4200], out[1600], payload[2000];
	struct guestlink_frag it;
	size_t len, n, k = 0;

	(void)state;
	memset(payload, 1, sizeof(payload));
	len = pkt_udp(frame, pkt_broadcast_mac, ip4("10.0.2.3"), ip4("10.0.2.15"), 53, 5353,
		      payload, sizeof(payload));
	/* Insert 8 option bytes: a copied one (0x94 router alert, 4) and a non-copied (0x07 RR, 4). */
	memmove(frame + 14 + 28, frame + 14 + 20, len - 34);
	memcpy(frame + 14 + 20, "\x94\x04\x00\x00\x07\x04\x04\x00", 8);
	frame[14] = 0x47;
	len += 8;
	frame[14 + 2] = (uint8_t)((len - 14) >> 8);
	frame[14 + 3] = (uint8_t)(len - 14);
	frame[14 + 10] = frame[14 + 11] = 0;
	{
		uint16_t c = (uint16_t)~pkt_csum_fold(pkt_csum_add(0, frame + 14, 28));

		frame[14 + 10] = (uint8_t)(c >> 8);
		frame[14 + 11] = (uint8_t)c;
	}
	assert_int_equal(guestlink_frag_start(&it, frame, len, 1000), 1);
	while ((n = guestlink_frag_next(&it, out))) {
		struct pkt_ipv4_view v;

		assert_int_equal(pkt_parse_ipv4(out, n, &v), 0);
		assert_true(v.ip_csum_ok);
		if (k++ == 0) {
			assert_int_equal(out[14] & 0x0f, 7);
			assert_memory_equal(out + 14 + 20, "\x94\x04\x00\x00\x07\x04\x04\x00", 8);
		} else {
			assert_int_equal(out[14] & 0x0f, 6);
			assert_memory_equal(out + 14 + 20, "\x94\x04\x00\x00", 4);
		}
		assert_true(n <= 14 + 1000);
	}
	assert_true(k >= 3);
}

/* A TCP segment of @payload bytes with @flags (and the SYN's MSS option pkt_tcp adds). */
static size_t tcp_segment(uint8_t *buf, size_t payload, uint8_t flags)
{
	static uint8_t data[40000];

	for (size_t i = 0; i < payload; i++)
		data[i] = (uint8_t)(i * 31 + 7);
	return pkt_tcp(buf, pkt_broadcast_mac, ip4("10.0.2.2"), ip4("10.0.2.15"), 80, 40000,
		       1000000, 77, flags, data, payload);
}

/*
 * A 30,000-byte segment cut for MTU 1500: pieces of 1460, consecutive sequence numbers,
 * their payloads joined give the original, checksums valid, FIN and PSH only on the
 * last, IP identifications counting up.
 */
static void test_segment_tcp(void **state)
{
	static uint8_t big[14 + 40 + 40000], out[14 + 1500], joined[40000];
	struct guestlink_seg it;
	size_t len = tcp_segment(big, 30000, 0x19), n, got = 0;
	unsigned int pieces = 0;

	(void)state;
	assert_int_equal(guestlink_seg_start(&it, big, len, 1500), 1);
	while ((n = guestlink_seg_next(&it, out))) {
		struct pkt_ipv4_view v;
		size_t data;

		assert_true(n <= 14 + 1500);
		assert_int_equal(pkt_parse_ipv4(out, n, &v), 0);
		assert_true(v.ip_csum_ok && v.l4_csum_ok);
		assert_int_equal(v.proto, IPPROTO_TCP);
		data = v.l4_len - 20;
		assert_true(data == 1460 || got + data == 30000);
		assert_int_equal(pkt_get32(v.l4 + 4), 1000000 + got);
		assert_int_equal(pkt_get32(v.l4 + 8), 77);
		assert_int_equal(v.l4[13] & 0x09, got + data == 30000 ? 0x09 : 0);
		assert_int_equal((out[18] << 8 | out[19]), (0x1234 + pieces) & 0xffff);
		memcpy(joined + got, v.l4 + 20, data);
		got += data;
		pieces++;
	}
	assert_int_equal(got, 30000);
	assert_int_equal(pieces, (30000 + 1459) / 1460);
	assert_memory_equal(joined, big + 14 + 40, 30000);
}

/* What is not cut: a segment that fits, not TCP, a fragment; lies and impossible MTUs. */
static void test_segment_cases(void **state)
{
	static const uint8_t zeros[3000];
	static uint8_t big[14 + 40 + 40000];
	struct guestlink_seg it;
	size_t len;

	(void)state;
	len = tcp_segment(big, 1000, 0x10);
	assert_int_equal(guestlink_seg_start(&it, big, len, 1500), 0);
	len = pkt_udp(big, pkt_broadcast_mac, ip4("10.0.2.2"), ip4("10.0.2.15"), 53, 5000,
		      zeros, 3000);
	assert_int_equal(guestlink_seg_start(&it, big, len, 1500), 0);
	len = tcp_segment(big, 3000, 0x10);
	big[14 + 6] = 0x20;                            /* More Fragments */
	assert_int_equal(guestlink_seg_start(&it, big, len, 1500), 0);
	len = tcp_segment(big, 3000, 0x10);
	big[14 + 20 + 12] = 0xf0;                      /* TCP header past the packet's end */
	big[14 + 2] = 0;
	big[14 + 3] = 40 + 20;
	assert_int_equal(guestlink_seg_start(&it, big, len, 40), -EBADMSG);
	len = tcp_segment(big, 3000, 0x10);
	big[14 + 2] = 0x7f;                            /* total length past the frame */
	assert_int_equal(guestlink_seg_start(&it, big, len, 1500), -EBADMSG);
	len = tcp_segment(big, 3000, 0x10);
	assert_int_equal(guestlink_seg_start(&it, big, len, 40), -EMSGSIZE);
	assert_int_equal(guestlink_seg_next(&it, big), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dhcp_mtu_zero_sum),
		cmocka_unit_test(test_dhcp_mtu_added),
		cmocka_unit_test(test_dhcp_not_a_reply),
		cmocka_unit_test(test_dhcp_no_room_or_lying),
		cmocka_unit_test(test_fragment_udp),
		cmocka_unit_test(test_fragment_cases),
		cmocka_unit_test(test_fragment_options),
		cmocka_unit_test(test_segment_tcp),
		cmocka_unit_test(test_segment_cases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
