/* test_frame.c - unit tests of the stream framing codec: every split, lying prefixes, the ring. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "backend/frame.h"

#define MAX_FRAME 1514

struct expect_frame {
	size_t len;
	uint8_t fill;
};

/* A stream of records: valid frames interleaved with runts and oversize ones. */
static const struct expect_frame stream_frames[] = {
	{ 14, 0x11 }, { 60, 0x22 }, { 0, 0 } /* runt: empty */, { 1514, 0x33 },
	{ 13, 0x44 } /* runt */, { 1515, 0x55 } /* oversize */, { 98, 0x66 },
	{ 1, 0x77 } /* runt */, { 1514, 0x88 }, { 42, 0x99 },
};

static bool frame_valid(size_t len)
{
	return len >= FRAME_ETH_HLEN && len <= MAX_FRAME;
}

static GByteArray *build_stream(void)
{
	GByteArray *s = g_byte_array_new();

	for (size_t i = 0; i < G_N_ELEMENTS(stream_frames); i++) {
		uint8_t prefix[4] = { 0, 0, stream_frames[i].len >> 8, stream_frames[i].len & 0xff };
		uint8_t *body = g_malloc(stream_frames[i].len + 1);

		memset(body, stream_frames[i].fill, stream_frames[i].len);
		g_byte_array_append(s, prefix, 4);
		g_byte_array_append(s, body, stream_frames[i].len);
		g_free(body);
	}
	return s;
}

struct collected {
	size_t n;
	size_t len[32];
	uint8_t fill[32];
	bool uniform[32];
};

static void drain(struct frame_decoder *dec, struct collected *c)
{
	uint8_t *f;
	size_t len;
	int ret;

	while ((ret = frame_decoder_next(dec, &f, &len)) > 0) {
		assert_true(c->n < G_N_ELEMENTS(c->len));
		c->len[c->n] = len;
		c->fill[c->n] = f[0];
		c->uniform[c->n] = true;
		for (size_t i = 0; i < len; i++)
			c->uniform[c->n] &= f[i] == f[0];
		c->n++;
	}
	assert_int_equal(ret, 0);
}

/* Feed @len bytes, respecting the space the decoder offers. */
static void feed(struct frame_decoder *dec, const uint8_t *p, size_t len, struct collected *c)
{
	while (len) {
		size_t space;
		uint8_t *dst = frame_decoder_space(dec, &space);
		size_t n = MIN(space, len);

		assert_true(space > 0);
		memcpy(dst, p, n);
		frame_decoder_commit(dec, n);
		drain(dec, c);
		p += n;
		len -= n;
	}
}

static void check_collected(const struct collected *c, const struct frame_decoder *dec)
{
	size_t k = 0;

	for (size_t i = 0; i < G_N_ELEMENTS(stream_frames); i++) {
		if (!frame_valid(stream_frames[i].len))
			continue;
		assert_true(k < c->n);
		assert_int_equal(c->len[k], stream_frames[i].len);
		assert_int_equal(c->fill[k], stream_frames[i].fill);
		assert_true(c->uniform[k]);
		k++;
	}
	assert_int_equal(k, c->n);
	assert_int_equal(dec->stats.runts, 3);
	assert_int_equal(dec->stats.oversize, 1);
	assert_int_equal(frame_decoder_pending(dec), 0);
}

/* Every two-way split of the stream yields the same frames and drops. */
static void test_every_split(void **state)
{
	g_autoptr(GByteArray) s = build_stream();

	(void)state;
	for (size_t cut = 0; cut <= s->len; cut++) {
		struct frame_decoder dec;
		struct collected c = { 0 };

		assert_int_equal(frame_decoder_init(&dec, MAX_FRAME), 0);
		feed(&dec, s->data, cut, &c);
		feed(&dec, s->data + cut, s->len - cut, &c);
		check_collected(&c, &dec);
		frame_decoder_fini(&dec);
	}
}

/* Three-way splits around every record boundary, and one byte at a time. */
static void test_three_way_and_bytewise(void **state)
{
	g_autoptr(GByteArray) s = build_stream();
	struct frame_decoder dec;
	struct collected c = { 0 };

	(void)state;
	for (size_t a = 0; a <= s->len; a += 7) {
		for (size_t b = a; b <= s->len; b += 97) {
			struct collected cc = { 0 };

			assert_int_equal(frame_decoder_init(&dec, MAX_FRAME), 0);
			feed(&dec, s->data, a, &cc);
			feed(&dec, s->data + a, b - a, &cc);
			feed(&dec, s->data + b, s->len - b, &cc);
			check_collected(&cc, &dec);
			frame_decoder_fini(&dec);
		}
	}

	assert_int_equal(frame_decoder_init(&dec, MAX_FRAME), 0);
	for (size_t i = 0; i < s->len; i++)
		feed(&dec, s->data + i, 1, &c);
	check_collected(&c, &dec);
	frame_decoder_fini(&dec);
}

/* A prefix larger than any QEMU record is a protocol error at every offset. */
/*
 * A busy stream of 64 KiB frames read 64 KiB at a time, as a socket hands them over: the
 * partial records moved to the front cost under a tenth of the bytes decoded (6%; with
 * room for only two records it was 98%: nearly every byte copied twice).
 */
static void test_few_moves(void **state)
{
	static uint8_t rec[FRAME_PREFIX_LEN + 65535 + 14];
	struct frame_decoder dec;
	size_t stream_len = sizeof(rec), fed = 0, total = 64 * sizeof(rec);
	uint8_t *frame;
	size_t len;

	(void)state;
	assert_int_equal(frame_decoder_init(&dec, 65535 + 14), 0);
	rec[0] = 0;
	rec[1] = (uint8_t)((65535 + 14) >> 16);
	rec[2] = (uint8_t)((65535 + 14) >> 8);
	rec[3] = (uint8_t)(65535 + 14);
	while (fed < total) {
		size_t room, n;
		uint8_t *space = frame_decoder_space(&dec, &room);

		/* What a socket read returns under load: 64 KiB, not a record's worth. */
		n = MIN(MIN(room, (size_t)65536), total - fed);
		for (size_t i = 0; i < n; i++)
			space[i] = rec[(fed + i) % stream_len];
		frame_decoder_commit(&dec, n);
		fed += n;
		while (frame_decoder_next(&dec, &frame, &len) == 1)
			assert_int_equal(len, 65535 + 14);
	}
	assert_int_equal(dec.stats.frames, 64);
	assert_true(dec.stats.moved * 10 < dec.stats.bytes);
	frame_decoder_fini(&dec);
}

static void test_lying_prefix(void **state)
{
	static const uint32_t lies[] = { FRAME_RECORD_MAX + 1, 0x7fffffff, 0xffffffff };

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(lies); i++) {
		for (size_t pos = 0; pos < 4; pos++) {
			struct frame_decoder dec;
			uint8_t bad[4] = { lies[i] >> 24, lies[i] >> 16, lies[i] >> 8, lies[i] };
			uint8_t good[4 + 20] = { 0, 0, 0, 20 };
			uint8_t *f;
			size_t len, space;
			uint8_t *dst;

			assert_int_equal(frame_decoder_init(&dec, MAX_FRAME), 0);
			/* A good frame first, then the lie delivered in two pieces. */
			dst = frame_decoder_space(&dec, &space);
			memcpy(dst, good, sizeof(good));
			memcpy(dst + sizeof(good), bad, pos);
			frame_decoder_commit(&dec, sizeof(good) + pos);
			assert_int_equal(frame_decoder_next(&dec, &f, &len), 1);
			assert_int_equal(len, 20);
			assert_int_equal(frame_decoder_next(&dec, &f, &len), 0);
			dst = frame_decoder_space(&dec, &space);
			memcpy(dst, bad + pos, 4 - pos);
			frame_decoder_commit(&dec, 4 - pos);
			assert_int_equal(frame_decoder_next(&dec, &f, &len), -EPROTO);
			assert_int_equal(dec.stats.bad_prefix, 1);
			frame_decoder_fini(&dec);
		}
	}
}

/* A plausible prefix that promises more than arrives yields nothing, never a partial frame. */
static void test_truncated_record(void **state)
{
	struct frame_decoder dec;
	uint8_t rec[4 + 100] = { 0, 0, 0, 200 };
	uint8_t *f;
	size_t len, space;
	uint8_t *dst;

	(void)state;
	assert_int_equal(frame_decoder_init(&dec, MAX_FRAME), 0);
	dst = frame_decoder_space(&dec, &space);
	memcpy(dst, rec, sizeof(rec));
	frame_decoder_commit(&dec, sizeof(rec));
	assert_int_equal(frame_decoder_next(&dec, &f, &len), 0);
	assert_int_equal(frame_decoder_pending(&dec), sizeof(rec));
	assert_int_equal(dec.stats.frames, 0);
	/* The maximal legal record is skipped as oversize once complete. */
	frame_decoder_reset(&dec);
	dst = frame_decoder_space(&dec, &space);
	assert_true(space >= 4 + FRAME_RECORD_MAX);
	memset(dst, 0, 4 + FRAME_RECORD_MAX);
	dst[1] = FRAME_RECORD_MAX >> 16;
	dst[2] = (FRAME_RECORD_MAX >> 8) & 0xff;
	dst[3] = FRAME_RECORD_MAX & 0xff;
	frame_decoder_commit(&dec, 4 + FRAME_RECORD_MAX);
	assert_int_equal(frame_decoder_next(&dec, &f, &len), 0);
	assert_int_equal(dec.stats.oversize, 1);
	frame_decoder_fini(&dec);
}

static void test_init_bounds(void **state)
{
	struct frame_decoder dec;
	struct frame_ring ring;

	(void)state;
	assert_int_equal(frame_decoder_init(&dec, 13), -EINVAL);
	assert_int_equal(frame_decoder_init(&dec, FRAME_RECORD_MAX + 1), -EINVAL);
	assert_int_equal(frame_ring_init(&ring, FRAME_RECORD_MAX), -EINVAL);
}

/* Ring: frames pushed, written out in odd-sized chunks across the wrap, decode identically. */
static void test_ring_roundtrip(void **state)
{
	struct frame_ring ring;
	struct frame_decoder dec;
	const size_t cap = 4 + FRAME_RECORD_MAX + 1000;
	size_t pushed = 0, got = 0, chunk = 1;
	uint8_t frame[MAX_FRAME];

	(void)state;
	assert_int_equal(frame_ring_init(&ring, cap), 0);
	assert_int_equal(frame_decoder_init(&dec, MAX_FRAME), 0);

	for (int round = 0; round < 2000; round++) {
		size_t len = 14 + (size_t)(round * 131) % (MAX_FRAME - 13);
		struct iovec iov[2];
		int n;

		memset(frame, (uint8_t)pushed, len);
		if (frame_ring_push(&ring, frame, len) == 0)
			pushed++;
		else
			assert_true(frame_ring_free(&ring) < 4 + len);

		n = frame_ring_peek(&ring, iov);
		for (int i = 0; i < n && chunk; i++) {
			size_t take = MIN(iov[i].iov_len, chunk);
			size_t space;
			uint8_t *dst = frame_decoder_space(&dec, &space);
			uint8_t *f;
			size_t flen;

			take = MIN(take, space);
			memcpy(dst, iov[i].iov_base, take);
			frame_decoder_commit(&dec, take);
			frame_ring_consume(&ring, take);
			while (frame_decoder_next(&dec, &f, &flen) > 0) {
				assert_int_equal(f[0], (uint8_t)got);
				assert_int_equal(f[flen - 1], (uint8_t)got);
				got++;
			}
			break; /* re-peek after consuming */
		}
		chunk = chunk * 7 % 3001 + 1;
	}
	/* Drain the rest. */
	for (int guard = 0; frame_ring_used(&ring) && guard < 100000; guard++) {
		struct iovec iov[2];
		size_t space;
		uint8_t *dst;
		uint8_t *f;
		size_t flen, take;

		frame_ring_peek(&ring, iov);
		dst = frame_decoder_space(&dec, &space);
		take = MIN(iov[0].iov_len, space);
		memcpy(dst, iov[0].iov_base, take);
		frame_decoder_commit(&dec, take);
		frame_ring_consume(&ring, take);
		while (frame_decoder_next(&dec, &f, &flen) > 0) {
			assert_int_equal(f[0], (uint8_t)got);
			got++;
		}
	}
	assert_int_equal(frame_ring_used(&ring), 0);
	assert_int_equal(got, pushed);
	assert_true(pushed > 100);
	frame_ring_fini(&ring);
	frame_decoder_fini(&dec);
}

static void test_ring_full_and_invalid(void **state)
{
	struct frame_ring ring;
	static uint8_t big[FRAME_RECORD_MAX];

	(void)state;
	assert_int_equal(frame_ring_init(&ring, 4 + FRAME_RECORD_MAX), 0);
	assert_int_equal(frame_ring_push(&ring, big, 0), -EINVAL);
	assert_int_equal(frame_ring_push(&ring, big, FRAME_RECORD_MAX + 1), -EINVAL);
	assert_int_equal(frame_ring_push(&ring, big, FRAME_RECORD_MAX), 0);
	assert_int_equal(frame_ring_free(&ring), 0);
	assert_int_equal(frame_ring_push(&ring, big, 14), -ENOBUFS);
	frame_ring_clear(&ring);
	assert_int_equal(frame_ring_used(&ring), 0);
	assert_int_equal(frame_ring_push(&ring, big, 14), 0);
	frame_ring_fini(&ring);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_three_way_and_bytewise),
		cmocka_unit_test(test_few_moves),
		cmocka_unit_test(test_lying_prefix),
		cmocka_unit_test(test_truncated_record),
		cmocka_unit_test(test_init_bounds),
		cmocka_unit_test(test_ring_roundtrip),
		cmocka_unit_test(test_ring_full_and_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
