/* turnaround.c - the turnaround of TCP seen from the guest's NIC: segment to ACK, ACK to next data. */

#include "turnaround.h"

#include <stdbool.h>
#include <string.h>

#define ETH_HLEN 14
#define TCP_ACK 0x10
#define TCP_FIN 0x01

struct seg {
	struct turn_tuple t;        /* the guest's side first */
	uint32_t seq, ack;
	uint8_t flags;
	size_t payload;
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The TCP segment in @frame; @from_guest says which side is the guest's. */
static bool parse(const uint8_t *f, size_t len, bool from_guest, struct seg *s)
{
	const uint8_t *ip = f + ETH_HLEN, *tcp;
	size_t ihl, tot, thl;
	uint32_t a, b;

	if (len < ETH_HLEN + 40 || rd16(f + 12) != 0x0800 || ip[0] >> 4 != 4 || ip[9] != 6)
		return false;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	tot = rd16(ip + 2);
	if (ihl < 20 || len < ETH_HLEN + ihl + 20 || tot < ihl + 20)
		return false;
	tcp = ip + ihl;
	thl = (size_t)(tcp[12] >> 4) * 4;
	if (thl < 20 || tot < ihl + thl)
		return false;
	memcpy(&a, ip + 12, 4);
	memcpy(&b, ip + 16, 4);
	s->t = from_guest ? (struct turn_tuple){ a, b, rd16(tcp), rd16(tcp + 2) }
			  : (struct turn_tuple){ b, a, rd16(tcp + 2), rd16(tcp) };
	s->seq = rd32(tcp + 4);
	s->ack = rd32(tcp + 8);
	s->flags = tcp[13];
	s->payload = tot - ihl - thl;
	return true;
}

static bool same(const struct turn_tuple *a, const struct turn_tuple *b)
{
	return a->saddr == b->saddr && a->daddr == b->daddr && a->sport == b->sport &&
	       a->dport == b->dport;
}

/* Bucket of a sample: 4 per octave of microseconds, bucket 0 under 1 µs. */
static unsigned int bucket_of(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned int octave, frac, b;

	if (!us)
		return 0;
	octave = 63u - (unsigned int)__builtin_clzll(us);
	frac = octave >= 2 ? (unsigned int)(us >> (octave - 2)) & 3 : (unsigned int)(us << (2 - octave)) & 3;
	b = 1 + 4 * octave + frac;
	return b < TURN_BUCKETS ? b : TURN_BUCKETS - 1;
}

static void add(struct turn_hist *h, uint64_t from, uint64_t to)
{
	h->n++;
	h->bucket[bucket_of(to > from ? to - from : 0)]++;
}

void turn_init(struct turnaround *t)
{
	memset(t, 0, sizeof(*t));
}

void turn_from_guest(struct turnaround *t, const uint8_t *frame, size_t len, uint64_t ns)
{
	struct seg s;
	int free_slot = -1;

	if (!parse(frame, len, true, &s))
		return;
	if (s.payload || (s.flags & TCP_FIN)) {
		unsigned int i;

		if (t->count == TURN_PENDING) {     /* forget the oldest */
			t->head = (t->head + 1) % TURN_PENDING;
			t->count--;
		}
		i = (t->head + t->count) % TURN_PENDING;
		t->pending[i].t = s.t;
		t->pending[i].end = s.seq + (uint32_t)s.payload + ((s.flags & TCP_FIN) ? 1 : 0);
		t->pending[i].ns = ns;
		t->count++;
	}
	if (!(s.flags & TCP_ACK))
		return;
	/* Only an ACK that advances releases data: it starts a wait, unless one runs. */
	for (int i = 0; i < TURN_FLOWS; i++) {
		if (t->acks[i].used && same(&t->acks[i].t, &s.t)) {
			if ((int32_t)(s.ack - t->acks[i].ack) > 0) {
				t->acks[i].ack = s.ack;
				if (!t->acks[i].ns)
					t->acks[i].ns = ns;
			}
			return;
		}
		if (!t->acks[i].used && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0) {
		t->acks[free_slot].used = true;
		t->acks[free_slot].t = s.t;
		t->acks[free_slot].ack = s.ack;
		t->acks[free_slot].ns = ns;
	}
}

void turn_to_guest(struct turnaround *t, const uint8_t *frame, size_t len, uint64_t ns)
{
	struct seg s;
	unsigned int kept = 0;

	if (!parse(frame, len, false, &s))
		return;
	if (s.flags & TCP_ACK) {
		/* Every segment of this flow the ACK covers is answered; the rest stay, in order. */
		for (unsigned int k = 0; k < t->count; k++) {
			unsigned int i = (t->head + k) % TURN_PENDING;

			if (same(&t->pending[i].t, &s.t) && (int32_t)(s.ack - t->pending[i].end) >= 0) {
				add(&t->out, t->pending[i].ns, ns);
				continue;
			}
			t->pending[(t->head + kept++) % TURN_PENDING] = t->pending[i];
		}
		t->count = kept;
	}
	if (!s.payload)
		return;
	for (int i = 0; i < TURN_FLOWS; i++) {
		if (t->acks[i].used && same(&t->acks[i].t, &s.t)) {
			if (t->acks[i].ns)
				add(&t->in, t->acks[i].ns, ns);
			t->acks[i].ns = 0;
			return;
		}
	}
}

double turn_percentile_us(const struct turn_hist *h, double p)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return 0;
	/* Nearest rank: the ceil(p% of n)-th sample, counted from 1. */
	want = (uint64_t)((double)h->n * p / 100.0 + 0.999999);
	want = want ? want - 1 : 0;
	if (want >= h->n)
		want = h->n - 1;
	for (unsigned int b = 0; b < TURN_BUCKETS; b++) {
		seen += h->bucket[b];
		if (seen > want) {
			unsigned int octave = (b - 1) / 4, frac = (b - 1) % 4;

			if (!b)
				return 0.5;
			/* The bucket's middle: 2^octave * (1 + (frac + 0.5) / 4). */
			return (double)(1ull << octave) * (1.0 + ((double)frac + 0.5) / 4.0);
		}
	}
	return 0;
}
