/* fuzz_view.h - checksum residuals and change masks of a parsed frame, for the rewrite and bridge targets. */
#ifndef MESHSLIRP_FUZZ_VIEW_H
#define MESHSLIRP_FUZZ_VIEW_H

/*
 * Everything here is computed from scratch over the frame's bytes, never
 * with common/csum.c: it is the reference the incremental code is
 * checked against.
 *
 * A checksum's residual is the one's-complement sum of every 16-bit word it
 * covers, the checksum field included, modulo 0xffff.  A valid checksum has
 * residual 0.  An incremental update (RFC 1624) changes a field and its
 * checksum so that the residual stays the same: a valid checksum stays
 * valid, a corrupt one stays exactly as corrupt.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy-bridge/rewrite.h"

/* Every residual the rewrites of rewrite.h maintain for @v's kind. */
struct fuzz_residuals {
	uint32_t ip;               /* outer IPv4 header */
	uint32_t l4;               /* TCP or UDP with pseudo-header, or the ICMP message */
	uint32_t inner_ip;         /* ICMP error: the quoted IPv4 header */
	uint32_t inner_udp;        /* ICMP error: quoted UDP, pseudo-header + the bytes quoted */
	bool has_l4;               /* false for UDP with checksum 0 ("none") */
	bool has_inner_udp;
};

uint16_t fuzz_rd16(const uint8_t *p);

/* Residual of a TCP/UDP checksum: pseudo-header (addresses at @ip + 12) plus @len bytes at @l4. */
uint32_t fuzz_l4_residual(const uint8_t *ip, uint8_t proto, const uint8_t *l4, size_t len);

/* fuzz_residuals_of() - for RW_TRANSPORT and RW_ICMP_ERROR views (else only .ip, or nothing). */
void fuzz_residuals_of(const struct rw_view *v, struct fuzz_residuals *r);

/* fuzz_check_residuals() - abort unless @a and @b are the same. */
void fuzz_check_residuals(const struct fuzz_residuals *a, const struct fuzz_residuals *b);

/* fuzz_check_same_view() - abort unless both views locate the same headers. */
void fuzz_check_same_view(const struct rw_view *a, const struct rw_view *b);

/* What a rewrite may change in a frame. */
enum fuzz_mask {
	FUZZ_KEEP,                 /* never */
	FUZZ_FIELD,                /* an address or port */
	FUZZ_CSUM,                 /* a checksum; 0x0000 and 0xffff are the same value */
	FUZZ_CSUM_EXACT,           /* a UDP checksum: one representation only */
};

/*
 * fuzz_mark_rewritable() - mark in @m (one byte per frame byte, @f's length)
 * the bytes rw_set_tuple() may change for RW_TRANSPORT,
 * rw_set_inner_tuple() plus rw_set_outer_addrs() for RW_ICMP_ERROR, or
 * rw_set_outer_addrs() for RW_FRAGMENT (a later fragment of a datagram whose
 * first fragment the bridge rewrote).
 */
void fuzz_mark_rewritable(const struct rw_view *v, const uint8_t *f, uint8_t *m);

/*
 * fuzz_check_changes() - bytes of @f may differ from @orig only where @m
 * allows; with @restored (rewritten and back), addresses and ports must be
 * back exactly, a UDP checksum exactly, other checksums up to 0x0000/0xffff.
 */
void fuzz_check_changes(const uint8_t *f, const uint8_t *orig, const uint8_t *m, size_t len,
			bool restored);

#endif /* MESHSLIRP_FUZZ_VIEW_H */
