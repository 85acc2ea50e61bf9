/* addrset.c - a small bounded set of IPv4 addresses (pure, no I/O). */

#include "addrset.h"

#include <errno.h>
#include <string.h>
#include <arpa/inet.h>

void addrset_clear(struct addrset *set)
{
	set->len = 0;
	set->generation++;
}

/* Index of the first entry not below @key (host order): where @key is or would go. */
static size_t addrset_lower_bound(const struct addrset *set, uint32_t key)
{
	size_t lo = 0, hi = set->len;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ntohl(set->addr[mid]) < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int addrset_add(struct addrset *set, uint32_t addr)
{
	size_t i = addrset_lower_bound(set, ntohl(addr));

	if (i < set->len && set->addr[i] == addr)
		return 0;
	if (set->len == ADDRSET_MAX)
		return -ENOSPC;
	memmove(&set->addr[i + 1], &set->addr[i], (set->len - i) * sizeof(set->addr[0]));
	set->addr[i] = addr;
	set->len++;
	set->generation++;
	return 0;
}

int addrset_remove(struct addrset *set, uint32_t addr)
{
	size_t i = addrset_lower_bound(set, ntohl(addr));

	if (i == set->len || set->addr[i] != addr)
		return -ENOENT;
	memmove(&set->addr[i], &set->addr[i + 1], (set->len - i - 1) * sizeof(set->addr[0]));
	set->len--;
	set->generation++;
	return 0;
}

bool addrset_contains(const struct addrset *set, uint32_t addr)
{
	size_t i = addrset_lower_bound(set, ntohl(addr));

	return i < set->len && set->addr[i] == addr;
}
