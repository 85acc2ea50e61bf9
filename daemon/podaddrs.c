/* podaddrs.c - keep the set of the pod's own IPv4 addresses current (rtnetlink). */

#include "podaddrs.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <glib.h>

#include "common/fdsource.h"
#include "common/nladdr.h"
#include "common/ratelimit.h"

/* Big enough for a dump of a pod's handful of addresses in one or two reads. */
#define PODADDRS_BUF 32768
/* The first dump happens at start-up, synchronously; the kernel answers at once. */
#define PODADDRS_FIRST_DUMP_MS 2000

struct podaddrs {
	int fd;
	GSource *src;
	uint32_t next_seq;
	uint32_t dump_seq;             /* 0: no dump in progress */
	bool stale;                    /* changed while dumping: dump again after it */
	struct addrset live;           /* what readers borrow */
	struct addrset building;       /* the dump in progress */
	struct nladdr_result res;
	uint64_t dumps;
	struct ratelimit log_rl;
	uint8_t buf[PODADDRS_BUF];
};

/* Ask for every IPv4 address; replies carry the new dump_seq.  0 or -errno. */
static int podaddrs_request_dump(struct podaddrs *pa)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETADDR,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
		.ifa = { .ifa_family = AF_INET },
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	if (!++pa->next_seq)
		pa->next_seq = 1; /* 0 means "no dump" */
	req.nh.nlmsg_seq = pa->next_seq;
	if (sendto(pa->fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	pa->dump_seq = pa->next_seq;
	pa->stale = false;
	addrset_clear(&pa->building);
	memset(&pa->res, 0, sizeof(pa->res));
	return 0;
}

/* A dump ended: publish it (or keep the old set if it failed), dump again if stale. */
static void podaddrs_dump_done(struct podaddrs *pa)
{
	uint64_t suppressed;

	pa->dump_seq = 0;
	if (pa->res.error) {
		if (ratelimit_allow(&pa->log_rl, g_get_monotonic_time(), &suppressed))
			g_warning("pod addresses: dump failed: %s; keeping the previous set",
				  g_strerror(-pa->res.error));
	} else {
		if (pa->res.overflow && ratelimit_allow(&pa->log_rl, g_get_monotonic_time(),
							&suppressed))
			g_warning("pod addresses: more than %d; only the first are refused to the "
				  "guest and trusted for PROXY headers", ADDRSET_MAX);
		pa->building.generation = pa->live.generation + 1;
		pa->live = pa->building;
		pa->dumps++;
	}
	if (pa->stale || pa->res.changed)
		podaddrs_request_dump(pa);
}

/* Read what the socket holds; 0, or -errno for a socket that failed. */
static int podaddrs_read(struct podaddrs *pa)
{
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(pa->fd, pa->buf, sizeof(pa->buf), MSG_DONTWAIT);
		struct nladdr_result seen = { 0 };

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == ENOBUFS) {
				/* Notifications were lost: whatever we hold may be stale. */
				if (pa->dump_seq)
					pa->stale = true;
				else
					podaddrs_request_dump(pa);
				continue;
			}
			return -errno;
		}
		nladdr_parse(pa->buf, (size_t)n, pa->dump_seq, &pa->building, &seen);
		pa->res.overflow |= seen.overflow;
		if (seen.error)
			pa->res.error = seen.error;
		if (seen.changed) {
			if (pa->dump_seq)
				pa->stale = true;
			else
				podaddrs_request_dump(pa);
		}
		if (seen.dump_done && pa->dump_seq)
			podaddrs_dump_done(pa);
	}
	return 0;
}

static gboolean podaddrs_on_readable(int fd, GIOCondition ready, void *opaque)
{
	struct podaddrs *pa = opaque;
	uint64_t suppressed;
	int ret;

	(void)fd;
	(void)ready;
	ret = podaddrs_read(pa);
	if (ret && ratelimit_allow(&pa->log_rl, g_get_monotonic_time(), &suppressed))
		g_warning("pod addresses: netlink: %s", g_strerror(-ret));
	return G_SOURCE_CONTINUE;
}

int podaddrs_new(struct podaddrs **out)
{
	struct sockaddr_nl local = { .nl_family = AF_NETLINK,
				     .nl_groups = 1u << (RTNLGRP_IPV4_IFADDR - 1) };
	struct podaddrs *pa = g_new0(struct podaddrs, 1);
	gint64 end = g_get_monotonic_time() + PODADDRS_FIRST_DUMP_MS * 1000;
	int ret;

	pa->log_rl = (struct ratelimit)RATELIMIT_INIT(5);
	pa->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (pa->fd < 0) {
		ret = -errno;
		goto err;
	}
	if (bind(pa->fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
		ret = -errno;
		goto err;
	}
	ret = podaddrs_request_dump(pa);
	if (ret)
		goto err;
	while (!pa->dumps) {
		struct pollfd p = { .fd = pa->fd, .events = POLLIN };
		int left = (int)((end - g_get_monotonic_time()) / 1000);

		if (left <= 0) {
			ret = -ETIMEDOUT;
			goto err;
		}
		if (poll(&p, 1, left) < 0 && errno != EINTR) {
			ret = -errno;
			goto err;
		}
		ret = podaddrs_read(pa);
		if (ret)
			goto err;
		if (!pa->dump_seq && !pa->dumps) {
			ret = pa->res.error ? pa->res.error : -EIO;
			goto err;
		}
	}
	pa->src = fdsource_new(pa->fd, G_IO_IN, podaddrs_on_readable, pa);
	*out = pa;
	return 0;

err:
	podaddrs_free(pa);
	return ret;
}

void podaddrs_free(struct podaddrs *pa)
{
	if (!pa)
		return;
	fdsource_clear(&pa->src);
	if (pa->fd >= 0)
		close(pa->fd);
	g_free(pa);
}

const struct addrset *podaddrs_set(const struct podaddrs *pa)
{
	return &pa->live;
}

uint64_t podaddrs_dumps(const struct podaddrs *pa)
{
	return pa->dumps;
}
