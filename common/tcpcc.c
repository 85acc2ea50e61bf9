/* tcpcc.c - an unpaced TCP congestion control for the daemon's own legs (see tcpcc.h). */

#include "tcpcc.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <glib.h>

int tcpcc_set_unpaced(int fd)
{
	static const char *const names[] = { TCPCC_UNPACED, TCPCC_UNPACED_FALLBACK };
	/* The first name that worked: a refused one is not asked again on every flow. */
	static size_t first = 0;
	int ret = -EINVAL;

	for (size_t i = first; i < G_N_ELEMENTS(names); i++) {
		if (!setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, names[i], strlen(names[i]))) {
			first = i;
			return 0;
		}
		ret = -errno;
		/* Not a TCP socket, or not a socket: the next name fares no better. */
		if (ret == -ENOPROTOOPT || ret == -EOPNOTSUPP || ret == -ENOTSOCK || ret == -EBADF)
			break;
	}
	g_debug("TCP_CONGESTION on fd %d: %s", fd, g_strerror(-ret));
	return ret;
}
