/* unixleg.c - unix sockets for the sidecar's legs, put on libslirp's descriptors (see unixleg.h). */

#include "proxy-bridge/unixleg.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

int unixleg_connect(const char *path, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sndbuf = UNIXLEG_SNDBUF;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A failed SO_SNDBUF only costs speed; the kernel caps it at wmem_max. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	do {
		ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	} while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

int unixleg_install(int unix_fd, int fd)
{
	int ret;

	/*
	 * libslirp set SO_OOBINLINE on the socket this replaces: without it
	 * af_unix would drop a peer's urgent byte here, where a TCP socket of
	 * libslirp's keeps it in the stream.
	 */
	(void)setsockopt(unix_fd, SOL_SOCKET, SO_OOBINLINE, &(int){ 1 }, sizeof(int));
	/* libslirp's socket was non-blocking; the unix one already is. */
	do {
		ret = dup3(unix_fd, fd, O_CLOEXEC);
	} while (ret < 0 && errno == EINTR);
	ret = ret < 0 ? -errno : 0;
	close(unix_fd);
	return ret;
}

int unixleg_templates_open(struct unixleg_templates *t)
{
	int ret;

	t->park_udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	t->refused_tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->park_udp < 0 || t->refused_tcp < 0) {
		ret = -errno;
		unixleg_templates_close(t);
		return ret;
	}
	return 0;
}

void unixleg_templates_close(struct unixleg_templates *t)
{
	if (t->park_udp >= 0)
		close(t->park_udp);
	if (t->refused_tcp >= 0)
		close(t->refused_tcp);
	t->park_udp = t->refused_tcp = -1;
}

/* Put @tmpl's socket on @fd, closing what @fd was; 0 or -errno. */
static int unixleg_dup_onto(int tmpl, int fd)
{
	int ret;

	do {
		ret = dup3(tmpl, fd, O_CLOEXEC);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : 0;
}

int unixleg_park(const struct unixleg_templates *t, int fd)
{
	return unixleg_dup_onto(t->park_udp, fd);
}

int unixleg_install_refused(const struct unixleg_templates *t, int fd)
{
	return unixleg_dup_onto(t->refused_tcp, fd);
}
