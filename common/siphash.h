/* siphash.h - SipHash-2-4 keyed hash for flow tables a guest must not be able to flood. */
#ifndef MESHSLIRP_COMMON_SIPHASH_H
#define MESHSLIRP_COMMON_SIPHASH_H

/*
 * Why hand-written: GLib's hash functions are unkeyed, so a guest choosing
 * its ports could aim every flow at one bucket; OpenSSL offers SipHash only
 * through EVP_MAC, which costs a context allocation per call and is too heavy
 * per packet.  This is SipHash-2-4 as specified by Aumasson and Bernstein
 * (2012), checked against the paper's test vector in tests/unit.
 */

#include <stddef.h>
#include <stdint.h>

struct siphash_key {
	uint64_t k0, k1;
};

/* siphash24() - 64-bit SipHash-2-4 of @len bytes at @data under @key. */
uint64_t siphash24(const struct siphash_key *key, const void *data, size_t len);

#endif /* MESHSLIRP_COMMON_SIPHASH_H */
