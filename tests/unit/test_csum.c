/* test_csum.c - unit tests of the Internet checksum against tests/lib's independent one and RFC examples. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <glib.h>

#include "common/csum.h"
#include "tests/lib/pkt.h"

/* splitmix64: fixed seed, so every run checks the same inputs. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	rng_state = seed;
}

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_fill(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)rng_next();
}

/* The reference: checksum of @len bytes as it sits in the packet (network order). */
static uint16_t ref_csum_raw(const void *data, size_t len)
{
	return htons((uint16_t)~pkt_csum_fold(pkt_csum_add(0, data, len)));
}

static uint16_t csum_raw(const void *data, size_t len)
{
	return csum_fold(csum_add(0, data, len));
}

static void test_rfc1071_example(void **state)
{
	/* RFC 1071 section 3: these bytes sum to ddf2, checksum 220d. */
	static const uint8_t data[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	uint16_t c;
	uint8_t wire[2];

	(void)state;
	c = csum_raw(data, sizeof(data));
	memcpy(wire, &c, 2);
	assert_int_equal(wire[0], 0x22);
	assert_int_equal(wire[1], 0x0d);
	assert_int_equal(ref_csum_raw(data, sizeof(data)), c);
}

static void test_every_length_random(void **state)
{
	uint8_t buf[302];

	(void)state;
	rng_seed(1071);
	for (int round = 0; round < 20; round++) {
		for (size_t len = 0; len <= 300; len++) {
			rng_fill(buf, sizeof(buf));
			/* Aligned and misaligned starts. */
			assert_int_equal(csum_raw(buf, len), ref_csum_raw(buf, len));
			assert_int_equal(csum_raw(buf + 1, len), ref_csum_raw(buf + 1, len));
		}
	}
}

static void test_every_length_extremes(void **state)
{
	uint8_t buf[301];

	(void)state;
	for (size_t len = 0; len <= 300; len++) {
		memset(buf, 0xff, sizeof(buf));
		assert_int_equal(csum_raw(buf, len), ref_csum_raw(buf, len));
		memset(buf, 0x00, sizeof(buf));
		assert_int_equal(csum_raw(buf, len), ref_csum_raw(buf, len));
		/* Only the final odd byte set: it counts as the high byte of a word. */
		if (len) {
			buf[len - 1] = 0x80;
			assert_int_equal(csum_raw(buf, len), ref_csum_raw(buf, len));
		}
	}
	/* Empty and all-zero data checksum to 0xffff. */
	memset(buf, 0x00, sizeof(buf));
	assert_int_equal(csum_fold(csum_add(0, buf, 0)), 0xffff);
	assert_int_equal(csum_raw(buf, 300), 0xffff);
	/* One odd byte 0x12 is the word 0x1200: checksum 0xedff. */
	buf[0] = 0x12;
	assert_int_equal(ntohs(csum_raw(buf, 1)), 0xedff);
}

/* A running sum split at any even offset gives the same result as one pass. */
static void test_running_sum_split(void **state)
{
	uint8_t buf[300];

	(void)state;
	rng_seed(42);
	for (int round = 0; round < 50; round++) {
		size_t len = (size_t)(rng_next() % 300);

		rng_fill(buf, sizeof(buf));
		for (size_t k = 0; k <= len; k += 2) {
			uint32_t s = csum_add(csum_add(0, buf, k), buf + k, len - k);

			assert_int_equal(csum_fold(s), csum_raw(buf, len));
		}
		/*
		 * And starting from a non-zero running sum, as for a pseudo-header:
		 * 0x12345 folds to the word 0x2346 (memory order).
		 */
		assert_int_equal(csum_fold(csum_add(0x12345u, buf, len)),
				 htons((uint16_t)~pkt_csum_fold(pkt_csum_add(0, buf, len) +
								  ntohs(0x2346))));
	}
}

/* Large buffers exercise the carries out of 32 bits. */
static void test_large_buffers(void **state)
{
	size_t len = 1u << 21;
	uint8_t *buf = g_malloc(len);

	(void)state;
	memset(buf, 0x7f, len);
	/* 2^20 words of 0x7f7f: 16 * 0x7f7f = 0x7f7f0 folds to 0xf7f7. */
	assert_int_equal(csum_raw(buf, len), (uint16_t)~0xf7f7);
	/* 2^20 words of 0x0101: 2^20 mod 0xffff = 16, so the sum is 0x1010. */
	memset(buf, 0x01, len);
	assert_int_equal(csum_raw(buf, len), (uint16_t)~0x1010);
	/* 2^20 words of 0xffff: a non-zero sum congruent to 0, checksum +0. */
	memset(buf, 0xff, len);
	assert_int_equal(csum_raw(buf, len), 0x0000);
	/* Starting at the top of the 32-bit range (congruent to 0) keeps the carry. */
	buf[0] = buf[1] = 0x01;
	assert_int_equal(csum_fold(csum_add(0xffffffffu, buf, 2)), (uint16_t)~0x0101);
	g_free(buf);
}

/* RFC 1624 section 4: m 0x5555 -> 0x3285 with HC 0xdd2f gives +0, not -0. */
static void test_rfc1624_example(void **state)
{
	uint16_t c = htons(0xdd2f);

	(void)state;
	csum_update16(&c, htons(0x5555), htons(0x3285));
	assert_int_equal(ntohs(c), 0x0000);
}

static uint16_t rand_field16(void)
{
	switch (rng_next() % 6) {
	case 0:
		return 0x0000;
	case 1:
		return 0xffff;
	default:
		return (uint16_t)rng_next();
	}
}

static uint32_t rand_field32(void)
{
	switch (rng_next() % 8) {
	case 0:
		return 0x00000000;
	case 1:
		return 0xffffffffu;
	case 2:
		return 0x0000ffffu;
	case 3:
		return 0xffff0000u;
	default:
		return (uint32_t)rng_next();
	}
}

#define UPD_LEN 40  /* an IP header's worth plus room */

/*
 * Random data, checksum from the reference; change random fields (16-bit at
 * any even offset, 32-bit at any even offset) again and again, updating
 * incrementally, and compare with the reference's full recomputation after
 * every change.  Word 0 is kept non-zero: only all-zero data has the 0xffff
 * full checksum that no incremental update can produce.
 */
static void test_update_vs_recompute(void **state)
{
	uint8_t buf[UPD_LEN];

	(void)state;
	rng_seed(1624);
	for (int round = 0; round < 200; round++) {
		uint16_t c;

		rng_fill(buf, sizeof(buf));
		buf[0] = 0x45;
		c = ref_csum_raw(buf, sizeof(buf));
		for (int step = 0; step < 500; step++) {
			size_t off = 2 + 2 * (size_t)(rng_next() % ((UPD_LEN - 2) / 2 - 1));

			if (rng_next() & 1) {
				uint16_t from, to = rand_field16();

				memcpy(&from, buf + off, 2);
				memcpy(buf + off, &to, 2);
				csum_update16(&c, from, to);
			} else {
				uint32_t from, to = rand_field32();

				memcpy(&from, buf + off, 4);
				memcpy(buf + off, &to, 4);
				csum_update32(&c, from, to);
			}
			assert_int_equal(c, ref_csum_raw(buf, sizeof(buf)));
		}
	}
}

/* Every value change including the 0x0000 <-> 0xffff pair (both are zero). */
static void test_update_zero_forms(void **state)
{
	static const uint16_t vals[] = { 0x0000, 0xffff, 0x0001, 0xfffe, 0x8000, 0x7fff };
	uint8_t buf[8] = { 0x12, 0x34, 0, 0, 0x56, 0x78, 0x9a, 0xbc };

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(vals); i++) {
		for (size_t j = 0; j < G_N_ELEMENTS(vals); j++) {
			uint16_t from = htons(vals[i]), to = htons(vals[j]), c;

			memcpy(buf + 2, &from, 2);
			c = ref_csum_raw(buf, sizeof(buf));
			memcpy(buf + 2, &to, 2);
			csum_update16(&c, from, to);
			assert_int_equal(c, ref_csum_raw(buf, sizeof(buf)));
		}
	}
}

/*
 * Equation 3 never yields -0 (0xffff) unless ~HC + ~m + m' is itself zero
 * (HC 0xffff, m 0xffff, m' 0x0000).  A wrong checksum stays exactly as wrong.
 */
static void test_update_properties(void **state)
{
	(void)state;
	rng_seed(3);
	for (int i = 0; i < 200000; i++) {
		uint16_t hc = rand_field16(), m = rand_field16(), m2 = rand_field16();
		uint16_t c = hc;
		uint32_t lhs, rhs;

		csum_update16(&c, m, m2);
		if (!(hc == 0xffff && m == 0xffff && m2 == 0))
			assert_int_not_equal(c, 0xffff);
		/* ~c == ~hc - m + m' modulo 0xffff, computed in host order. */
		lhs = (uint16_t)~ntohs(c) % 0xffffu;
		rhs = ((uint32_t)(uint16_t)~ntohs(hc) + (uint16_t)~ntohs(m) + ntohs(m2)) % 0xffffu;
		assert_int_equal(lhs, rhs);
	}
	/* Changing a field to itself is a no-op for any non -0 checksum. */
	for (int i = 0; i < 1000; i++) {
		uint16_t hc = (uint16_t)rng_next(), m = (uint16_t)rng_next(), c = hc;

		if (hc == 0xffff)
			continue;
		csum_update16(&c, m, m);
		assert_int_equal(c, hc);
	}
}

/* The pseudo-header sum, against the bytes of a pseudo-header summed by the reference. */
static void test_pseudo4(void **state)
{
	uint8_t ph[12 + 1500];

	(void)state;
	rng_seed(793);
	for (int round = 0; round < 1000; round++) {
		uint16_t l4_len = (uint16_t)(rng_next() % 1500);
		uint8_t proto = (uint8_t)rng_next();

		rng_fill(ph, 8);
		ph[8] = 0;
		ph[9] = proto;
		ph[10] = (uint8_t)(l4_len >> 8);
		ph[11] = (uint8_t)l4_len;
		rng_fill(ph + 12, l4_len);
		assert_int_equal(csum_fold(csum_add(csum_pseudo4(ph, proto, l4_len), ph + 12, l4_len)),
				 ref_csum_raw(ph, 12 + (size_t)l4_len));
	}
	/* The largest sums: every word 0xffff (a carry lost on the way shows here). */
	memset(ph, 0xff, sizeof(ph));
	for (uint16_t l4_len = 1; l4_len < 1500; l4_len += 37) {
		ph[8] = 0;
		ph[9] = 0xff;
		ph[10] = (uint8_t)(l4_len >> 8);
		ph[11] = (uint8_t)l4_len;
		assert_int_equal(csum_fold(csum_add(csum_pseudo4(ph, 0xff, l4_len), ph + 12, l4_len)),
				 ref_csum_raw(ph, 12 + (size_t)l4_len));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc1071_example),
		cmocka_unit_test(test_every_length_random),
		cmocka_unit_test(test_every_length_extremes),
		cmocka_unit_test(test_running_sum_split),
		cmocka_unit_test(test_large_buffers),
		cmocka_unit_test(test_rfc1624_example),
		cmocka_unit_test(test_update_vs_recompute),
		cmocka_unit_test(test_update_zero_forms),
		cmocka_unit_test(test_update_properties),
		cmocka_unit_test(test_pseudo4),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
