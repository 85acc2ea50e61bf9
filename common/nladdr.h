/* nladdr.h - read the pod's IPv4 addresses out of rtnetlink messages (pure, no I/O). */
#ifndef MESHSLIRP_COMMON_NLADDR_H
#define MESHSLIRP_COMMON_NLADDR_H

/*
 * daemon/podaddrs.c keeps the set of the pod's own addresses current by
 * dumping them (RTM_GETADDR) and listening to RTNLGRP_IPV4_IFADDR.  Rather
 * than apply each RTM_NEWADDR/RTM_DELADDR notification (a broadcast address
 * shared by two addresses of one subnet would make removal wrong), any
 * notification only marks the set stale and a fresh dump replaces it.
 * nladdr_parse() is the byte work of both: it walks one buffer of netlink
 * messages, adds every address of a dump reply to the set being built, and
 * reports notifications and the end of the dump.  Every length is checked
 * against the buffer; nothing is allocated.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addrset.h"

struct nladdr_result {
	bool dump_done;                /* NLMSG_DONE for @dump_seq was seen */
	bool changed;                  /* an address notification was seen */
	bool overflow;                 /* the set being built is full */
	int error;                     /* an NLMSG_ERROR for @dump_seq: -errno, else 0 */
};

/**
 * nladdr_parse() - walk the netlink messages in @buf
 * @buf, @len:	what one recv() returned
 * @dump_seq:	sequence number of the dump in progress (0: none)
 * @dump:	the set the dump builds; IFA_LOCAL (or IFA_ADDRESS) and
 *		IFA_BROADCAST of every AF_INET reply with @dump_seq are added
 * @res:	what was seen, accumulated (the caller zeroes it per dump)
 *
 * Return: 0, or -EBADMSG for a message whose lengths lie (the rest of the
 * buffer is ignored; what came before it was applied).
 */
int nladdr_parse(const uint8_t *buf, size_t len, uint32_t dump_seq, struct addrset *dump,
		 struct nladdr_result *res);

#endif /* MESHSLIRP_COMMON_NLADDR_H */
