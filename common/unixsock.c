/* unixsock.c - listen on a unix socket path: replace a stale socket, refuse a live one. */

#include "unixsock.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

int unixsock_reclaim(const struct sockaddr_un *addr)
{
	struct stat st;
	int fd, ret;

	if (lstat(addr->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	close(fd);
	if (ret == 0)
		return -EADDRINUSE;
	if (errno != ECONNREFUSED)
		return -errno;
	return unlink(addr->sun_path) < 0 ? -errno : 0;
}

int unixsock_listen(const char *path, int backlog, bool owner_only, int *out)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	bool bound = false;
	mode_t old = 0;
	int fd, ret;

	if (len >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, len + 1);
	ret = unixsock_reclaim(&addr);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (owner_only)
		old = umask(0177);
	ret = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ? -errno : 0;
	if (owner_only)
		umask(old);
	if (!ret) {
		bound = true;
		ret = listen(fd, backlog) < 0 ? -errno : 0;
	}
	if (ret) {
		/* Only a path we bound is ours to remove: never someone else's. */
		if (bound)
			unlink(path);
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}
