/* turnaround.h - the turnaround of TCP seen from the guest's NIC: segment to ACK, ACK to next data. */
#ifndef MESHSLIRP_TESTS_TURNAROUND_H
#define MESHSLIRP_TESTS_TURNAROUND_H

/*
 * Theory of operation
 *
 * A flow limited by its window sends a window's worth and waits: whatever
 * lies between the guest's NIC and the far end sets the pace.  Fed with
 * every frame the guest sends and receives (Ethernet, IPv4, TCP; anything
 * else is ignored) and a timestamp, this measures two turnarounds:
 *
 *   out  a data segment leaves the guest -> the first ACK that covers its
 *        last byte reaches the guest (what releases the next segment when
 *        the guest is the sender);
 *   in   the guest sends an ACK that advances -> the next data segment of
 *        that flow reaches the guest (what the far side takes to send more
 *        when the guest is the receiver).
 *
 * Both over all IPv4 TCP flows, matched by their 4-tuple.  Samples go into
 * log-spaced histograms (4 buckets per octave, 1 µs to about 4 s), so the
 * percentiles are good to about 10%.  Limits: at most TURN_PENDING data
 * segments awaiting their ACK (the oldest is forgotten beyond that) and
 * TURN_FLOWS flows for the in direction (later ones are not measured); no allocation; not
 * thread-safe.  Written for the VM model (tests/tools/vu-frontend), where
 * the same code watches every system's guest.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TURN_BUCKETS 88
#define TURN_PENDING 128
#define TURN_FLOWS 16

struct turn_hist {
	uint64_t n;
	uint64_t bucket[TURN_BUCKETS];
};

struct turn_tuple {
	uint32_t saddr, daddr;      /* network order, as in the frame */
	uint16_t sport, dport;
};

struct turnaround {
	struct turn_hist out, in;
	struct {
		struct turn_tuple t;    /* the data segment's tuple (guest's side first) */
		uint32_t end;           /* sequence number after its last byte */
		uint64_t ns;
	} pending[TURN_PENDING];
	unsigned int head, count;
	struct {
		bool used;
		struct turn_tuple t;    /* the guest's side first */
		uint32_t ack;           /* the highest the guest acknowledged */
		uint64_t ns;            /* when an advancing ACK began to wait; 0: none */
	} acks[TURN_FLOWS];
};

/* turn_init() - an empty tracker. */
void turn_init(struct turnaround *t);

/* turn_from_guest() - a frame the guest sent, at @ns (any clock, nanoseconds). */
void turn_from_guest(struct turnaround *t, const uint8_t *frame, size_t len, uint64_t ns);

/* turn_to_guest() - a frame the guest received; @len may cover only its headers. */
void turn_to_guest(struct turnaround *t, const uint8_t *frame, size_t len, uint64_t ns);

/* turn_percentile_us() - the @p-th percentile (0..100) of @h in microseconds, 0 if empty. */
double turn_percentile_us(const struct turn_hist *h, double p);

#endif /* MESHSLIRP_TESTS_TURNAROUND_H */
