/* unixsock.h - listen on a unix socket path: replace a stale socket, refuse a live one. */
#ifndef MESHSLIRP_COMMON_UNIXSOCK_H
#define MESHSLIRP_COMMON_UNIXSOCK_H

#include <stdbool.h>
#include <sys/un.h>

/**
 * unixsock_reclaim() - make @addr's path free for bind()
 *
 * A socket nobody answers on (left by a process that died) is removed.
 *
 * Return: 0 if the path is free now, -EADDRINUSE if a live process listens
 * there, -ENOTSOCK if something other than a socket is in the way, or
 * another -errno.
 */
int unixsock_reclaim(const struct sockaddr_un *addr);

/**
 * unixsock_listen() - a non-blocking, close-on-exec listening socket at @path
 * @path:	where to bind; a stale socket there is replaced (unixsock_reclaim())
 * @backlog:	for listen()
 * @owner_only:	create the socket file with mode 0600 (the umask is set
 *		around bind() only)
 * @out:	set to the listening fd, owned by the caller, who also unlinks
 *		@path when done
 *
 * The stream, vhost-user and control sockets are all set up here.
 *
 * Return: 0, -ENAMETOOLONG for a @path that does not fit sun_path, or a
 * -errno from unixsock_reclaim(), socket(), bind() or listen().  On failure
 * nothing is left open, and a path bound here is unlinked again.
 */
int unixsock_listen(const char *path, int backlog, bool owner_only, int *out);

#endif /* MESHSLIRP_COMMON_UNIXSOCK_H */
