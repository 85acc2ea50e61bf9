/* addrset.h - a small bounded set of IPv4 addresses (pure, no I/O). */
#ifndef MESHSLIRP_COMMON_ADDRSET_H
#define MESHSLIRP_COMMON_ADDRSET_H

/*
 * The pod's own addresses (interface addresses and their broadcast
 * addresses) as the egress rule and the inbound trust check need them.  A
 * sorted array, so a lookup is a binary search and costs nothing next to a
 * flow's set-up.  At most ADDRSET_MAX entries: a pod has a handful; a set
 * that is full refuses more (-ENOSPC) and says so, and its owner treats that
 * as a configuration error to be logged, never as a reason to allow more.
 *
 * Addresses are in network order.  Nothing is allocated.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADDRSET_MAX 256

struct addrset {
	uint32_t addr[ADDRSET_MAX];    /* sorted by host-order value, no duplicates */
	size_t len;
	uint64_t generation;           /* bumped on every change */
};

/* addrset_clear() - make @set empty. */
void addrset_clear(struct addrset *set);

/**
 * addrset_add() - insert @addr (network order)
 *
 * Return: 0 (also when it was there already), -ENOSPC when the set is full.
 */
int addrset_add(struct addrset *set, uint32_t addr);

/* addrset_remove() - remove @addr; 0, or -ENOENT if it was not there. */
int addrset_remove(struct addrset *set, uint32_t addr);

/* addrset_contains() - whether @addr (network order) is in @set. */
bool addrset_contains(const struct addrset *set, uint32_t addr);

#endif /* MESHSLIRP_COMMON_ADDRSET_H */
