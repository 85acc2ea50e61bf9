/* nladdr.c - read the pod's IPv4 addresses out of rtnetlink messages (pure, no I/O). */

#include "nladdr.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

/* The addresses one RTM_NEWADDR carries: local (or peer-less address) and broadcast. */
static void nladdr_apply_ifaddr(const uint8_t *msg, size_t len, struct addrset *dump,
				struct nladdr_result *res)
{
	const struct ifaddrmsg *ifa = (const void *)(msg + NLMSG_HDRLEN);
	size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*ifa));
	uint32_t local = 0, address = 0, broadcast = 0;
	bool have_local = false, have_address = false, have_broadcast = false;

	if (len < off || ifa->ifa_family != AF_INET)
		return;
	while (off + sizeof(struct rtattr) <= len) {
		struct rtattr rta;
		const uint8_t *data = msg + off + RTA_LENGTH(0);

		memcpy(&rta, msg + off, sizeof(rta));
		if (rta.rta_len < sizeof(rta) || rta.rta_len > len - off)
			return;
		if (rta.rta_len == RTA_LENGTH(sizeof(uint32_t))) {
			switch (rta.rta_type) {
			case IFA_LOCAL:
				memcpy(&local, data, sizeof(local));
				have_local = true;
				break;
			case IFA_ADDRESS:
				memcpy(&address, data, sizeof(address));
				have_address = true;
				break;
			case IFA_BROADCAST:
				memcpy(&broadcast, data, sizeof(broadcast));
				have_broadcast = true;
				break;
			default:
				break;
			}
		}
		off += RTA_ALIGN(rta.rta_len);
	}
	/* On a point-to-point link IFA_ADDRESS is the peer; IFA_LOCAL is ours. */
	if ((have_local || have_address) &&
	    addrset_add(dump, have_local ? local : address) == -ENOSPC)
		res->overflow = true;
	if (have_broadcast && addrset_add(dump, broadcast) == -ENOSPC)
		res->overflow = true;
}

int nladdr_parse(const uint8_t *buf, size_t len, uint32_t dump_seq, struct addrset *dump,
		 struct nladdr_result *res)
{
	size_t off = 0;

	while (len - off >= NLMSG_HDRLEN) {
		struct nlmsghdr nh;
		bool ours;

		memcpy(&nh, buf + off, sizeof(nh));
		if (nh.nlmsg_len < NLMSG_HDRLEN || nh.nlmsg_len > len - off)
			return -EBADMSG;
		ours = dump_seq && nh.nlmsg_seq == dump_seq;
		switch (nh.nlmsg_type) {
		case NLMSG_DONE:
			if (ours)
				res->dump_done = true;
			break;
		case NLMSG_ERROR:
			if (ours && nh.nlmsg_len >= NLMSG_HDRLEN + sizeof(struct nlmsgerr)) {
				struct nlmsgerr e;

				memcpy(&e, buf + off + NLMSG_HDRLEN, sizeof(e));
				/* An ACK (error 0) ends nothing here; a failure ends the dump. */
				if (e.error) {
					res->error = e.error < 0 ? e.error : -EIO;
					res->dump_done = true;
				}
			}
			break;
		case RTM_NEWADDR:
			if (ours)
				nladdr_apply_ifaddr(buf + off, nh.nlmsg_len, dump, res);
			else
				res->changed = true;
			break;
		case RTM_DELADDR:
			res->changed = true;
			break;
		default:
			break;
		}
		off += NLMSG_ALIGN(nh.nlmsg_len);
		if (off > len)
			break;
	}
	return 0;
}
