/* podaddrs.h - keep the set of the pod's own IPv4 addresses current (rtnetlink). */
#ifndef MESHSLIRP_DAEMON_PODADDRS_H
#define MESHSLIRP_DAEMON_PODADDRS_H

/*
 * Theory of operation
 *
 * The egress rule refuses the pod's own addresses, and inbound PROXY headers
 * are believed from them: both need the set as it is now, not as it was at
 * start-up (an address may be added to the pod later).  podaddrs_new() dumps
 * every IPv4 address of the daemon's network namespace once, synchronously,
 * and subscribes to RTNLGRP_IPV4_IFADDR on the same socket.  Any
 * notification, or a lost one (ENOBUFS), starts a new dump; its replies are
 * gathered into a second set that replaces the live one when the dump ends,
 * so a reader never sees half a dump.  A notification during a dump is
 * answered with one more dump after it.
 *
 * Ownership: the set belongs to the podaddrs object; the bridge borrows it
 * for its lifetime.  Limits: ADDRSET_MAX addresses; a pod with more is logged
 * (rate limited) and keeps the first ADDRSET_MAX, which only matters for a
 * pod nobody runs.  The socket is opened before privileges are dropped.
 */

#include <stdint.h>

#include "common/addrset.h"

struct podaddrs;

/**
 * podaddrs_new() - dump the namespace's IPv4 addresses and watch for changes
 * @out:	set to the new object (podaddrs_free())
 *
 * Return: 0 or -errno (the netlink socket or the first dump failed).
 */
int podaddrs_new(struct podaddrs **out);

/* podaddrs_free() - close the socket; NULL is a no-op. */
void podaddrs_free(struct podaddrs *pa);

/* podaddrs_set() - the live set (valid until podaddrs_free()). */
const struct addrset *podaddrs_set(const struct podaddrs *pa);

/* podaddrs_dumps() - dumps completed since start (for tests and metrics). */
uint64_t podaddrs_dumps(const struct podaddrs *pa);

#endif /* MESHSLIRP_DAEMON_PODADDRS_H */
