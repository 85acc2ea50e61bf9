/* siphash.c - SipHash-2-4 keyed hash for flow tables a guest must not be able to flood. */

#include "siphash.h"

#include <string.h>

static inline uint64_t rotl64(uint64_t x, unsigned int b)
{
	return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

struct sip_state {
	uint64_t v0, v1, v2, v3;
};

static inline void sip_round(struct sip_state *s)
{
	s->v0 += s->v1;
	s->v1 = rotl64(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = rotl64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rotl64(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = rotl64(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = rotl64(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = rotl64(s->v2, 32);
}

static inline void sip_compress(struct sip_state *s, uint64_t m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

uint64_t siphash24(const struct siphash_key *key, const void *data, size_t len)
{
	const uint8_t *p = data;
	struct sip_state s = {
		.v0 = key->k0 ^ 0x736f6d6570736575ull, /* "somepseu" */
		.v1 = key->k1 ^ 0x646f72616e646f6dull, /* "dorandom" */
		.v2 = key->k0 ^ 0x6c7967656e657261ull, /* "lygenera" */
		.v3 = key->k1 ^ 0x7465646279746573ull, /* "tedbytes" */
	};
	uint8_t tail[8] = { 0 };
	size_t blocks = len / 8;

	for (size_t i = 0; i < blocks; i++)
		sip_compress(&s, load_le64(p + 8 * i));

	/* Last block: remaining bytes, length mod 256 in the top byte. */
	memcpy(tail, p + 8 * blocks, len % 8);
	tail[7] = (uint8_t)len;
	sip_compress(&s, load_le64(tail));

	s.v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
