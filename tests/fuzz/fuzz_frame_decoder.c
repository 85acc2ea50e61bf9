/* fuzz_frame_decoder.c - libFuzzer target: the -netdev stream decoder and tx ring against reference models. */

/*
 * Theory of operation
 *
 * Input: a 7-byte header, then a payload.
 *   [0..1] max_frame selector (14 + value, or FRAME_RECORD_MAX for 0xffff)
 *   [2..3] seed of the chunk sizes the "socket" delivers (1 byte .. 8 KiB)
 *   [4]    the payload is repeated 1 + (value % 32) times, so that small
 *          inputs can still push more than a decoder buffer's worth of
 *          bytes through one connection (compaction)
 *   [5..6] extra capacity of the tx ring, in units of 4 bytes
 *
 * Decoder: the (repeated) payload is the byte stream from QEMU, fed the way
 * stream.c feeds it: frame_decoder_space(), copy a chunk, commit, then
 * frame_decoder_next() until it returns 0.  A reference model - a plain
 * scan of the whole byte string - says which records exist, which are
 * frames, runts or oversize, and where the first impossible prefix is.
 * Checked after every chunk:
 *   - exactly the model's frames come out, in order, with their bytes, as
 *     soon as (and not before) their last byte was committed, each pointing
 *     inside the decoder's buffer;
 *   - -EPROTO exactly once the first bad prefix is fully received and every
 *     record before it was taken, and again on a second call;
 *   - the counters match the model; pending() is what was committed minus
 *     what complete records consumed; space() is never less than one
 *     maximal record.
 * After -EPROTO the decoder is reset (the backend resets the connection) and
 * the rest of the stream is a new connection, checked the same way.
 *
 * Ring: the payload is also read as a script of at most RING_OPS_MAX ring
 * operations (push a frame of a chosen length, consume some bytes, clear,
 * drain) on a ring of 68 KiB to 324 KiB, peeking after each.  A
 * linear byte queue is the model: push must refuse exactly when the record
 * does not fit (-ENOBUFS) or the length is impossible (-EINVAL); peek's one
 * or two iovecs must be exactly the queued bytes; consumed bytes are fed to
 * a second decoder, which must return exactly the frames pushed (runts
 * skipped), so encode and decode agree byte for byte.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "backend/frame.h"
#include "tests/fuzz/fuzz_common.h"

#define HDR_LEN 7
/* Ring operations per input: enough to wrap the largest ring several times. */
#define RING_OPS_MAX 64

enum rec_kind { REC_FRAME, REC_RUNT, REC_OVERSIZE };

struct rec {
	size_t off;                /* of the prefix, relative to the connection's start */
	size_t len;                /* frame bytes */
	enum rec_kind kind;
};

/* What a straightforward decoder makes of one connection's whole byte string. */
struct model {
	GArray *recs;              /* struct rec: every complete record, in order */
	size_t bad_off;            /* offset of the first impossible prefix, or SIZE_MAX */
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void model_scan(const uint8_t *s, size_t n, size_t max_frame, struct model *m)
{
	size_t off = 0;

	g_array_set_size(m->recs, 0);
	m->bad_off = SIZE_MAX;
	while (n - off >= 4) {
		uint32_t len = be32(s + off);
		struct rec r = { .off = off, .len = len };

		if (len > FRAME_RECORD_MAX) {
			m->bad_off = off;
			return;
		}
		if (n - off - 4 < len)
			return;
		r.kind = len < FRAME_ETH_HLEN ? REC_RUNT : len > max_frame ? REC_OVERSIZE : REC_FRAME;
		g_array_append_val(m->recs, r);
		off += 4 + len;
	}
}

/* Chunk sizes: 1 byte to 8 KiB, mostly small, from a xorshift generator. */
static uint32_t xorshift(uint32_t *st)
{
	uint32_t x = *st;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *st = x;
}

static size_t next_chunk(uint32_t *st)
{
	uint32_t r = xorshift(st);
	uint32_t bits = r % 14;

	return 1 + ((r >> 8) & ((1u << bits) - 1));
}

/* Counters the decoder must report, accumulated over connections (reset keeps stats). */
struct expect {
	struct frame_decoder_stats st;
};

static void check_stats(const struct frame_decoder *dec, const struct expect *e)
{
	FUZZ_CHECK(dec->stats.frames == e->st.frames);
	FUZZ_CHECK(dec->stats.bytes == e->st.bytes);
	FUZZ_CHECK(dec->stats.runts == e->st.runts);
	FUZZ_CHECK(dec->stats.oversize == e->st.oversize);
	FUZZ_CHECK(dec->stats.bad_prefix == e->st.bad_prefix);
}

/*
 * One connection from @s (@n bytes) until its end or a bad prefix (then
 * *@poisoned is set).  Returns how many bytes of @s it took.
 */
static size_t run_connection(struct frame_decoder *dec, const uint8_t *s, size_t n,
			     uint32_t *chunk_state, struct model *m, struct expect *e,
			     bool *poisoned)
{
	size_t committed = 0, next_rec = 0, consumed = 0;

	*poisoned = false;
	model_scan(s, n, dec->max_frame, m);
	FUZZ_CHECK(frame_decoder_pending(dec) == 0);

	while (committed < n) {
		size_t space_len = 0, chunk;
		uint8_t *space = frame_decoder_space(dec, &space_len);

		/* The caller drained the decoder: one maximal record always fits. */
		FUZZ_CHECK(space_len >= FRAME_PREFIX_LEN + FRAME_RECORD_MAX);
		FUZZ_CHECK(space >= dec->buf && space + space_len == dec->buf + dec->cap);
		/* MIN() evaluates its arguments twice: draw the size first. */
		chunk = next_chunk(chunk_state);
		chunk = MIN(MIN(chunk, space_len), n - committed);
		memcpy(space, s + committed, chunk);
		frame_decoder_commit(dec, chunk);
		committed += chunk;

		for (;;) {
			uint8_t *frame = NULL;
			size_t len = 0;
			int r = frame_decoder_next(dec, &frame, &len);

			/* Records the decoder skipped (runts, oversize) before this result. */
			while (next_rec < m->recs->len) {
				const struct rec *rc = &g_array_index(m->recs, struct rec, next_rec);

				if (rc->kind == REC_FRAME || rc->off + 4 + rc->len > committed)
					break;
				if (rc->kind == REC_RUNT)
					e->st.runts++;
				else
					e->st.oversize++;
				consumed = rc->off + 4 + rc->len;
				next_rec++;
			}

			if (r == 1) {
				const struct rec *rc;

				FUZZ_CHECK(next_rec < m->recs->len);
				rc = &g_array_index(m->recs, struct rec, next_rec);
				FUZZ_CHECK(rc->kind == REC_FRAME);
				FUZZ_CHECK(rc->off + 4 + rc->len <= committed);
				FUZZ_CHECK(len == rc->len);
				FUZZ_CHECK(frame >= dec->buf && frame + len <= dec->buf + dec->cap);
				FUZZ_CHECK(!memcmp(frame, s + rc->off + 4, len));
				e->st.frames++;
				e->st.bytes += len;
				consumed = rc->off + 4 + rc->len;
				next_rec++;
				check_stats(dec, e);
				continue;
			}

			if (r == 0) {
				/* Every complete record was taken; no bad prefix is fully there. */
				if (next_rec < m->recs->len) {
					const struct rec *rc = &g_array_index(m->recs, struct rec,
									      next_rec);

					FUZZ_CHECK(rc->off + 4 + rc->len > committed);
				}
				FUZZ_CHECK(m->bad_off == SIZE_MAX || m->bad_off + 4 > committed);
				FUZZ_CHECK(frame_decoder_pending(dec) == committed - consumed);
				check_stats(dec, e);
				break;
			}

			FUZZ_CHECK(r == -EPROTO);
			FUZZ_CHECK(m->bad_off != SIZE_MAX && m->bad_off + 4 <= committed);
			FUZZ_CHECK(next_rec == m->recs->len && consumed == m->bad_off);
			e->st.bad_prefix++;
			check_stats(dec, e);
			/* The stream stays poisoned until the caller resets it. */
			FUZZ_CHECK(frame_decoder_next(dec, &frame, &len) == -EPROTO);
			e->st.bad_prefix++;
			check_stats(dec, e);
			FUZZ_CHECK(frame_decoder_pending(dec) == committed - consumed);
			*poisoned = true;
			return committed;
		}
	}
	FUZZ_CHECK(next_rec == m->recs->len);
	return committed;
}

static void fuzz_decoder(size_t max_frame, uint32_t seed, const uint8_t *s, size_t n)
{
	struct frame_decoder dec;
	struct model m = { .recs = g_array_new(FALSE, FALSE, sizeof(struct rec)) };
	struct expect e;
	uint32_t chunk_state = seed * 2654435761u + 1;
	size_t done = 0;

	memset(&e, 0, sizeof(e));
	FUZZ_CHECK(frame_decoder_init(&dec, max_frame) == 0);
	if (!chunk_state)
		chunk_state = 1;
	/* Each bad prefix ends a connection; the backend resets and the next begins. */
	do {
		bool poisoned;

		done += run_connection(&dec, s + done, n - done, &chunk_state, &m, &e, &poisoned);
		if (poisoned) {
			frame_decoder_reset(&dec);
			FUZZ_CHECK(frame_decoder_pending(&dec) == 0);
		} else {
			FUZZ_CHECK(done == n);
		}
	} while (done < n);
	check_stats(&dec, &e);
	frame_decoder_fini(&dec);
	g_array_unref(m.recs);
}

/*
 * The bytes of the @k-th frame pushed into the ring: a window into one
 * pattern buffer (no byte-by-byte generation or comparison: ASan makes
 * per-byte loops over 68 KiB frames slow).
 */
#define PATTERN_LEN (2 * FRAME_RECORD_MAX)
static uint8_t *pattern;

static const uint8_t *ring_frame(uint32_t k)
{
	return pattern + (k * 7919u) % FRAME_RECORD_MAX;
}

struct pushed {
	uint32_t k;
	size_t len;
};

struct ring_check {
	struct frame_ring ring;
	GByteArray *queue;         /* model: the encoded bytes queued, in order */
	GArray *frames;            /* struct pushed, not yet fully decoded */
	struct frame_decoder rt;   /* decodes what the ring gave up */
};

/* Feed bytes retired from the ring to the round-trip decoder; check each frame. */
static void ring_roundtrip(struct ring_check *rc, const uint8_t *p, size_t n)
{
	while (n) {
		size_t space_len, chunk;
		uint8_t *space = frame_decoder_space(&rc->rt, &space_len);
		uint8_t *frame;
		size_t len;
		int r;

		chunk = MIN(n, space_len);
		memcpy(space, p, chunk);
		frame_decoder_commit(&rc->rt, chunk);
		p += chunk;
		n -= chunk;
		while ((r = frame_decoder_next(&rc->rt, &frame, &len)) == 1) {
			struct pushed pf;

			/* Runts were skipped by the decoder. */
			while (rc->frames->len &&
			       g_array_index(rc->frames, struct pushed, 0).len < FRAME_ETH_HLEN)
				g_array_remove_index(rc->frames, 0);
			FUZZ_CHECK(rc->frames->len > 0);
			pf = g_array_index(rc->frames, struct pushed, 0);
			g_array_remove_index(rc->frames, 0);
			FUZZ_CHECK(len == pf.len);
			FUZZ_CHECK(!memcmp(frame, ring_frame(pf.k), len));
		}
		FUZZ_CHECK(r == 0);
	}
}

static void ring_check_peek(struct ring_check *rc)
{
	struct iovec iov[2];
	int n = frame_ring_peek(&rc->ring, iov);
	size_t total = 0;

	FUZZ_CHECK(frame_ring_used(&rc->ring) == rc->queue->len);
	FUZZ_CHECK(frame_ring_free(&rc->ring) == rc->ring.cap - rc->queue->len);
	FUZZ_CHECK(n >= 0 && n <= 2);
	FUZZ_CHECK((n == 0) == (rc->queue->len == 0));
	for (int i = 0; i < n; i++) {
		const uint8_t *b = iov[i].iov_base;

		FUZZ_CHECK(iov[i].iov_len > 0);
		FUZZ_CHECK(b >= rc->ring.buf && b + iov[i].iov_len <= rc->ring.buf + rc->ring.cap);
		FUZZ_CHECK(total + iov[i].iov_len <= rc->queue->len);
		FUZZ_CHECK(!memcmp(b, rc->queue->data + total, iov[i].iov_len));
		total += iov[i].iov_len;
	}
	FUZZ_CHECK(total == rc->queue->len);
	/* The second iovec, if any, is the wrapped part from the buffer's start. */
	if (n == 2)
		FUZZ_CHECK(iov[1].iov_base == rc->ring.buf);
}

static void ring_push(struct ring_check *rc, uint32_t k, size_t len)
{
	size_t fits = frame_ring_free(&rc->ring) >= FRAME_PREFIX_LEN + len;
	int r;

	/* Past FRAME_RECORD_MAX the ring must refuse without reading the frame. */
	r = frame_ring_push(&rc->ring, ring_frame(k), len);
	if (len == 0 || len > FRAME_RECORD_MAX) {
		FUZZ_CHECK(r == -EINVAL);
	} else if (!fits) {
		FUZZ_CHECK(r == -ENOBUFS);
	} else {
		uint8_t prefix[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
				      (uint8_t)len };
		struct pushed pf = { .k = k, .len = len };

		FUZZ_CHECK(r == 0);
		g_byte_array_append(rc->queue, prefix, 4);
		g_byte_array_append(rc->queue, ring_frame(k), (guint)len);
		g_array_append_val(rc->frames, pf);
	}
}

static void ring_consume(struct ring_check *rc, size_t n)
{
	struct iovec iov[2];
	int niov = frame_ring_peek(&rc->ring, iov);
	size_t left = n;

	/* What a writev() of @n bytes sent, fed to the peer's decoder. */
	for (int i = 0; i < niov && left; i++) {
		size_t take = MIN(left, iov[i].iov_len);

		ring_roundtrip(rc, iov[i].iov_base, take);
		left -= take;
	}
	FUZZ_CHECK(left == 0);
	frame_ring_consume(&rc->ring, n);
	g_byte_array_remove_range(rc->queue, 0, (guint)n);
}

static void fuzz_ring(size_t cap, const uint8_t *p, size_t n)
{
	struct ring_check rc;
	uint32_t k = 0;
	size_t i = 0;

	memset(&rc, 0, sizeof(rc));
	FUZZ_CHECK(frame_ring_init(&rc.ring, FRAME_PREFIX_LEN + FRAME_RECORD_MAX - 1) == -EINVAL);
	FUZZ_CHECK(frame_ring_init(&rc.ring, cap) == 0);
	FUZZ_CHECK(frame_decoder_init(&rc.rt, FRAME_RECORD_MAX) == 0);
	rc.queue = g_byte_array_new();
	rc.frames = g_array_new(FALSE, FALSE, sizeof(struct pushed));

	for (int ops = 0; i < n && ops < RING_OPS_MAX; ops++) {
		uint8_t op = p[i++];
		uint32_t arg = 0;

		for (int j = 0; j < 3 && i < n; j++)
			arg = arg << 8 | p[i++];
		switch (op & 3) {
		case 0: {
			size_t len = arg & 0xffff;

			if (op & 0x80)  /* near the largest record, or just past it */
				len = FRAME_RECORD_MAX + ((op & 0x40) ? 1 : 0) - (arg & 0xff);
			ring_push(&rc, k++, len);
			break;
		}
		case 1:
			ring_consume(&rc, arg % (rc.queue->len + 1));
			break;
		case 2:
			if (op & 0x80) {
				/* Peer gone: drop everything; the next peer's decoder starts clean. */
				frame_ring_clear(&rc.ring);
				g_byte_array_set_size(rc.queue, 0);
				g_array_set_size(rc.frames, 0);
				frame_decoder_reset(&rc.rt);
			} else {
				ring_consume(&rc, rc.queue->len);
			}
			break;
		default:
			break;
		}
		ring_check_peek(&rc);
	}
	/* Drain: everything pushed and still queued decodes to the frames left. */
	ring_consume(&rc, rc.queue->len);
	while (rc.frames->len &&
	       g_array_index(rc.frames, struct pushed, 0).len < FRAME_ETH_HLEN)
		g_array_remove_index(rc.frames, 0);
	FUZZ_CHECK(rc.frames->len == 0);
	FUZZ_CHECK(frame_decoder_pending(&rc.rt) == 0);

	g_array_unref(rc.frames);
	g_byte_array_unref(rc.queue);
	frame_decoder_fini(&rc.rt);
	frame_ring_fini(&rc.ring);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_logs();
	pattern = g_malloc(PATTERN_LEN);
	for (size_t i = 0; i < PATTERN_LEN; i++)
		pattern[i] = (uint8_t)(i * 7u + (i >> 8) + (i >> 16) * 13u);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_decoder bad;
	size_t max_frame, reps, n, cap;
	uint32_t seed;
	uint8_t *stream;

	if (size < HDR_LEN)
		return 0;
	max_frame = (size_t)(data[0] << 8 | data[1]);
	max_frame = max_frame == 0xffff ? FRAME_RECORD_MAX : FRAME_ETH_HLEN + max_frame;
	seed = (uint32_t)(data[2] << 8 | data[3]);
	reps = 1 + data[4] % 32;
	cap = FRAME_PREFIX_LEN + FRAME_RECORD_MAX + 4 * (size_t)(data[5] << 8 | data[6]);
	data += HDR_LEN;
	size -= HDR_LEN;

	/* Out-of-range limits are refused without side effects. */
	FUZZ_CHECK(frame_decoder_init(&bad, FRAME_ETH_HLEN - 1) == -EINVAL);
	FUZZ_CHECK(frame_decoder_init(&bad, FRAME_RECORD_MAX + 1) == -EINVAL);

	/* An exact-size copy: ASan sees any read past the stream's end. */
	n = size * reps;
	stream = g_malloc(n ? n : 1);
	for (size_t r = 0; r < reps; r++)
		memcpy(stream + r * size, data, size);
	fuzz_decoder(max_frame, seed, stream, n);
	g_free(stream);

	fuzz_ring(cap, data, size);
	return 0;
}
