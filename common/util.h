/* util.h - small helpers every module may use: container_of, byte-order readers. */
#ifndef MESHSLIRP_COMMON_UTIL_H
#define MESHSLIRP_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * container_of() - the structure that embeds @ptr as its @member.  Backends
 * embed struct backend and get back to their own state with it, whatever
 * the member's position.
 */
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* be16_read() / be32_read() - a big-endian value at @p, which may be unaligned. */
static inline uint16_t be16_read(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t be32_read(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* be16_write() / be32_write() - store @v big-endian at @p, which may be unaligned. */
static inline void be16_write(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void be32_write(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif /* MESHSLIRP_COMMON_UTIL_H */
