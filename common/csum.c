/* csum.c - Internet checksums: full computation and incremental update (RFC 1071, RFC 1624). */

#include "csum.h"

#include <string.h>
#include <arpa/inet.h>

/* The 32-bit halves of @w: 2^32 of them fit a 64-bit accumulator, and the fold is mod 0xffff. */
static inline uint64_t csum_halves(uint64_t w)
{
	return (w & 0xffffffffu) + (w >> 32);
}

uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t acc = sum;

	/*
	 * Words of any width in memory order add up to the same ones' complement sum as
	 * 16-bit ones: 2^16 is 1 modulo 0xffff.
	 */
	while (len >= 32) {
		uint64_t w[4];

		memcpy(w, p, sizeof(w));
		acc += csum_halves(w[0]) + csum_halves(w[1]) + csum_halves(w[2]) +
		       csum_halves(w[3]);
		p += 32;
		len -= 32;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, sizeof(w));
		acc += csum_halves(w);
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		uint32_t w;

		memcpy(&w, p, sizeof(w));
		acc += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;

		memcpy(&w, p, sizeof(w));
		acc += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint16_t w = 0;

		memcpy(&w, p, 1);
		acc += w;
	}
	/* Down to 16 bits: a caller may add a few more words without overflowing 32. */
	acc = csum_halves(acc);
	acc = csum_halves(acc);
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint32_t)acc;
}

uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint32_t csum_pseudo4(const void *addrs, uint8_t proto, uint16_t l4_len)
{
	return csum_add(0, addrs, 8) + htons(proto) + htons(l4_len);
}

void csum_update16(uint16_t *csum, uint16_t from, uint16_t to)
{
	uint32_t sum = (uint16_t)~*csum;

	sum += (uint16_t)~from;
	sum += to;
	*csum = csum_fold(sum);
}

void csum_update32(uint16_t *csum, uint32_t from, uint32_t to)
{
	csum_update16(csum, (uint16_t)(from >> 16), (uint16_t)(to >> 16));
	csum_update16(csum, (uint16_t)from, (uint16_t)to);
}
