/* csum.h - Internet checksums: full computation and incremental update (RFC 1071, RFC 1624). */
#ifndef MESHSLIRP_COMMON_CSUM_H
#define MESHSLIRP_COMMON_CSUM_H

/*
 * All values are in network byte order as they sit in the packet; the
 * arithmetic is byte-order independent as long as every operand is in the
 * same order (RFC 1071 section 2(B)).  A running sum is 32 bits, in memory
 * order: sums of pieces add up as long as every piece but the last starts
 * and ends on an even offset.  Incremental updates use RFC 1624's
 * equation 3, HC' = ~(~HC + ~m + m'), which never produces the -0 (0xffff)
 * an update of RFC 1141's form could.
 *
 * csum_add() is on the data path (a 64 KiB segment from an offloading guest
 * is summed once): it takes 32 bytes per step into a 64-bit accumulator.
 */

#include <stddef.h>
#include <stdint.h>

/*
 * csum_add() - add @len bytes at @data to a running sum; the result is folded
 * to 16 bits, so a caller may add a few 16-bit words to it (csum_pseudo4()).
 */
uint32_t csum_add(uint32_t sum, const void *data, size_t len);

/* csum_fold() - fold a running sum to 16 bits and complement it (memory order). */
uint16_t csum_fold(uint32_t sum);

/*
 * csum_pseudo4() - the running sum of an IPv4 pseudo-header: @addrs points at
 * the source and destination addresses (8 bytes, as in the IP header),
 * @proto and @l4_len in host order.
 */
uint32_t csum_pseudo4(const void *addrs, uint8_t proto, uint16_t l4_len);

/**
 * csum_update16() - update checksum *@csum for a 16-bit field changing
 * from @from to @to (all in network order)
 */
void csum_update16(uint16_t *csum, uint16_t from, uint16_t to);

/* csum_update32() - as csum_update16() for a 32-bit field (an IPv4 address). */
void csum_update32(uint16_t *csum, uint32_t from, uint32_t to);

#endif /* MESHSLIRP_COMMON_CSUM_H */
