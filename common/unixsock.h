/* unixsock.h - claim a unix socket path: replace a stale socket, refuse a live one. */
#ifndef MESHSLIRP_COMMON_UNIXSOCK_H
#define MESHSLIRP_COMMON_UNIXSOCK_H

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

#endif /* MESHSLIRP_COMMON_UNIXSOCK_H */
