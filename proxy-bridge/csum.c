/* csum.c - Internet checksums: full computation and incremental update (RFC 1071, RFC 1624). */

#include "csum.h"

#include <string.h>

uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t acc = sum;

	/* 16-bit words in memory order; the fold makes byte order irrelevant. */
	while (len >= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		acc += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint16_t w = 0;

		memcpy(&w, p, 1);
		acc += w;
	}
	while (acc >> 32)
		acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}

uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
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
