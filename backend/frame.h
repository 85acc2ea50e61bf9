/* frame.h - length-prefixed Ethernet framing of QEMU's -netdev stream (pure codec, no I/O). */
#ifndef MESHSLIRP_BACKEND_FRAME_H
#define MESHSLIRP_BACKEND_FRAME_H

/*
 * Theory of operation
 *
 * QEMU's net/stream backend carries each Ethernet frame as a 4-byte
 * big-endian length followed by that many bytes of frame; there is no
 * virtio-net header and no padding.  QEMU itself refuses a record longer than
 * its receive buffer (FRAME_RECORD_MAX), so a longer prefix can only come from
 * a broken or hostile peer and the stream can no longer be trusted: the
 * decoder reports -EPROTO and the caller resets the connection.
 *
 * A record whose length is plausible but not a frame we accept (shorter than
 * an Ethernet header, or longer than the MTU allows) is consumed and counted
 * as a drop; the stream stays in sync.
 *
 * struct frame_decoder owns one contiguous buffer big enough for two
 * maximal records.  The caller reads straight into frame_decoder_space(),
 * commits what it read, then pulls frames with frame_decoder_next() until it
 * returns 0.  Frames are returned as pointers into the buffer, valid until the
 * next call that changes the decoder; nothing is allocated per frame.
 *
 * struct frame_ring is the transmit side: a bounded byte ring of encoded
 * records.  frame_ring_push() encodes a frame or refuses it when there is no
 * room (the caller counts the drop: dropping is what a congested link does,
 * and TCP recovers).  frame_ring_peek() exposes the queued bytes as at most
 * two iovecs for one writev(), frame_ring_consume() retires what was written,
 * which may end in the middle of a record.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Length of the record prefix. */
#define FRAME_PREFIX_LEN 4
/* Smallest frame we accept: an Ethernet header. */
#define FRAME_ETH_HLEN 14
/*
 * Largest record QEMU's stream backend can receive or send
 * (NET_BUFSIZE in QEMU: 4096 + 65536).  A longer prefix is a protocol error.
 */
#define FRAME_RECORD_MAX (4096 + 65536)
#define FRAME_DECODER_RECORDS 16    /* the decoder's buffer, in maximal records (1.1 MiB) */

/* Drop and error counters of the decoder (monotonic). */
struct frame_decoder_stats {
	uint64_t frames;    /* frames returned to the caller */
	uint64_t bytes;     /* frame bytes returned */
	uint64_t runts;     /* records shorter than an Ethernet header */
	uint64_t oversize;  /* records longer than max_frame, <= FRAME_RECORD_MAX */
	uint64_t bad_prefix; /* prefixes > FRAME_RECORD_MAX (stream reset) */
	uint64_t moved;     /* bytes of partial records moved to the buffer's front */
};

struct frame_decoder {
	uint8_t *buf;       /* owned; cap bytes */
	size_t cap;
	size_t head;        /* first unparsed byte */
	size_t tail;        /* one past the last received byte */
	size_t max_frame;   /* largest frame accepted, in bytes (MTU + 14) */
	struct frame_decoder_stats stats;
};

/**
 * frame_decoder_init() - allocate the decoder's buffer
 * @dec:	decoder to initialise
 * @max_frame:	largest frame to accept (MTU + Ethernet header), at least
 *		FRAME_ETH_HLEN and at most FRAME_RECORD_MAX
 *
 * Return: 0, or -EINVAL for a @max_frame out of range.
 */
int frame_decoder_init(struct frame_decoder *dec, size_t max_frame);

/* frame_decoder_fini() - free the buffer; the decoder may be re-initialised. */
void frame_decoder_fini(struct frame_decoder *dec);

/* frame_decoder_reset() - forget buffered bytes (new connection); keeps stats. */
void frame_decoder_reset(struct frame_decoder *dec);

/**
 * frame_decoder_space() - where the next read may write
 * @dec:	decoder
 * @len:	set to the number of writable bytes, never 0
 *
 * Compacts the buffer if needed.  Because the buffer holds two maximal
 * records and frame_decoder_next() consumes every complete record, at least
 * one maximal record always fits.
 *
 * Return: pointer into the decoder's buffer (owned by the decoder).
 */
uint8_t *frame_decoder_space(struct frame_decoder *dec, size_t *len);

/* frame_decoder_commit() - account for @n bytes written at frame_decoder_space(). */
void frame_decoder_commit(struct frame_decoder *dec, size_t n);

/**
 * frame_decoder_next() - take the next complete frame
 * @dec:	decoder
 * @frame:	set to the frame (points into the decoder's buffer)
 * @len:	set to the frame length
 *
 * Records that are not acceptable frames are skipped and counted.
 *
 * Return: 1 with a frame, 0 when more bytes are needed, -EPROTO when the
 * stream carries a length prefix no peer may send (reset the connection).
 */
int frame_decoder_next(struct frame_decoder *dec, uint8_t **frame,
		       size_t *len);

/* frame_decoder_pending() - bytes received but not yet part of a returned frame. */
size_t frame_decoder_pending(const struct frame_decoder *dec);

struct frame_ring {
	uint8_t *buf;       /* owned; cap bytes */
	size_t cap;
	size_t head;        /* offset of the first queued byte */
	size_t used;        /* queued bytes */
};

/**
 * frame_ring_init() - allocate a transmit ring of @cap bytes
 *
 * Return: 0, or -EINVAL if @cap cannot hold one maximal record.
 */
int frame_ring_init(struct frame_ring *ring, size_t cap);

/* frame_ring_fini() - free the ring's buffer. */
void frame_ring_fini(struct frame_ring *ring);

/* frame_ring_clear() - drop everything queued (peer gone). */
void frame_ring_clear(struct frame_ring *ring);

/**
 * frame_ring_push() - queue one frame as a length-prefixed record
 * @ring:	ring
 * @frame:	frame bytes (copied; the caller keeps ownership)
 * @len:	frame length, 1..FRAME_RECORD_MAX
 *
 * Return: 0, -ENOBUFS if the record does not fit now, -EINVAL for a
 * length that can never be sent.
 */
int frame_ring_push(struct frame_ring *ring, const void *frame, size_t len);

/**
 * frame_ring_peek() - describe queued bytes for writev()
 * @ring:	ring
 * @iov:	array of two iovecs, filled in order
 *
 * Return: number of iovecs used (0, 1 or 2).
 */
int frame_ring_peek(const struct frame_ring *ring, struct iovec iov[2]);

/* frame_ring_consume() - retire @n bytes (n <= used) after a successful write. */
void frame_ring_consume(struct frame_ring *ring, size_t n);

static inline size_t frame_ring_used(const struct frame_ring *ring)
{
	return ring->used;
}

static inline size_t frame_ring_free(const struct frame_ring *ring)
{
	return ring->cap - ring->used;
}

#endif /* MESHSLIRP_BACKEND_FRAME_H */
