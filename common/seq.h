/* seq.h - TCP sequence numbers compared across their wrap (RFC 1982 serial arithmetic). */

#ifndef MESHSLIRP_COMMON_SEQ_H
#define MESHSLIRP_COMMON_SEQ_H

#include <stdbool.h>
#include <stdint.h>

/* Whether sequence number @a lies after @b: within 2^31 ahead of it, wherever 0 falls. */
static inline bool seq_after(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

#endif
