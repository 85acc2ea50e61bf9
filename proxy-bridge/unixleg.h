/* unixleg.h - the sidecar's legs on unix sockets, slid under libslirp's own descriptors. */
#ifndef MESHSLIRP_PB_UNIXLEG_H
#define MESHSLIRP_PB_UNIXLEG_H

/*
 * Theory of operation
 *
 * libslirp 4.7 only knows TCP and UDP host sockets, and has no connect hook.
 * What it has is enough to make the sidecar's leg a unix stream socket, with
 * libslirp none the wiser:
 *
 * Outbound (--outbound-proxy unix:PATH).  For a guest SYN, tcp_fconnect()
 * (tcp_subr.c) makes a TCP socket, calls register_poll_fd() on it, sets
 * SO_REUSEADDR, SO_OOBINLINE and TCP_NODELAY (results ignored), and
 * connect()s it to the steered target; it treats 0, EINPROGRESS and EAGAIN
 * as "connecting" and anything else as a refusal.  A unix socket there would
 * fail that connect() with EINVAL (an AF_INET address), so:
 *   1. in register_poll_fd, a UDP socket is put on the descriptor number
 *      (unixleg_park): connect() of a UDP socket returns 0 and sends
 *      nothing, so libslirp goes on to wait for POLLOUT;
 *   2. right after that slirp_input() returns (the netstack's
 *      guest_frame_done hook, before libslirp's next poll set is built), the
 *      connected unix socket replaces it (unixleg_install), or, if the
 *      sidecar is gone, a never-connected TCP socket does
 *      (unixleg_install_refused): libslirp's zero-byte send() probe gets
 *      EPIPE, and libslirp resets the guest's SYN as for a refused TCP
 *      connect.
 * A unix connect() finishes at once: 0, or ENOENT / ECONNREFUSED (nobody
 * listens), or EAGAIN (the listener's backlog is full: not retried, the
 * guest is reset).  The bridge then writes the PROXY header on the first
 * POLLOUT, before libslirp sees it, exactly as for the TCP leg.
 *
 * What is relied on in libslirp 4.7.0 (checked in its source):
 *   - register_poll_fd() is called inside slirp_input(), after socket() and
 *     before connect(); nothing else touches the socket in between;
 *   - so->s is only used as a number afterwards: send/recv/shutdown, plus
 *     getpeername + getsockopt(SO_ERROR) in soread() on EOF (both work on
 *     unix sockets; a peer's close reads as EOF, a close with unread data as
 *     ECONNRESET, which libslirp turns into a FIN or a RST to the guest);
 *   - getsockname() is called only on SS_HOSTFWD listeners (slirp.c) and
 *     for EMU_IDENT (off): never on these sockets;
 *   - unregister_poll_fd() always comes before closesocket(), so the shared
 *     placeholder files below never linger in the epoll set;
 *   - slirp_pollfds_fill() asks for HUP only together with IN.  A unix
 *     peer's close raises POLLHUP for good, which libslirp would take as
 *     "readable" every loop turn: the bridge drops such a HUP
 *     (bridge_unix_revents() in bridge.c).
 * The placeholder UDP socket and the refused TCP socket are each one file
 * shared by every descriptor they were put on (dup3), so a flow costs no
 * extra socket() for them.
 *
 * Inbound (--expose unix:PATH:GUESTPORT): libslirp 4.7 can listen on a unix
 * path itself (slirp_add_hostxfwd), but for each client it binds an extra
 * 127.0.0.1 TCP socket to borrow a port, and a failing socket() or bind()
 * there is g_error(), an abort a client flood could trigger; the port is
 * also unknown when the bridge sees the accepted socket.  So the daemon
 * accepts on its own unix listener (unixleg_listener_*), and hands each
 * client to an internal loopback hostfwd: it connect()s a TCP socket to
 * it, and when libslirp accepts and registers that connection, the bridge
 * recognises it by the connecting socket's port and puts the client's unix
 * socket on libslirp's descriptor (unixleg_install again).  From there the
 * inbound path is the TCP one: the same PROXY header reading, validation
 * and rejection.  Only the handshake crosses loopback TCP; the data does
 * not.
 */

#include <stddef.h>
#include <stdint.h>

/*
 * SO_SNDBUF asked for on every unix leg we write, the kernel path's too (the
 * kernel doubles it, capped at wmem_max): a unix stream writer is paced by
 * its own send buffer alone, and the default held the guest's bytes back.
 */
#define UNIXLEG_SNDBUF (512 * 1024)

/**
 * unixleg_connect() - a non-blocking unix stream socket connected to @path
 * @path:	the sidecar's socket
 * @out:	the new descriptor (close-on-exec, non-blocking), owned by the caller
 *
 * Return: 0, or -errno from socket() or connect() (-ENOENT, -ECONNREFUSED,
 * -EAGAIN for a full backlog, ...); nothing is left open on failure.
 */
int unixleg_connect(const char *path, int *out);

/**
 * unixleg_install() - make @fd refer to @unix_fd's socket, then close @unix_fd
 *
 * @fd must be a descriptor the caller (libslirp) owns and the netstack does not
 * watch yet.  @unix_fd is consumed, also on failure.  It gets SO_OOBINLINE,
 * as libslirp's own sockets have, so a peer's urgent byte stays in the
 * stream (the kernel path's unixleg_connect() sockets do not: its relay
 * leaves urgent bytes out).
 *
 * Return: 0 or -errno from dup3() (@fd is then unchanged).
 */
int unixleg_install(int unix_fd, int fd);

/* The two shared stand-in sockets; see the theory of operation. */
struct unixleg_templates {
	int park_udp;                /* put under libslirp's connect(); -1: none */
	int refused_tcp;             /* never connected: send() fails with EPIPE */
};

/* unixleg_templates_open() - create both; 0 or -errno (nothing open then). */
int unixleg_templates_open(struct unixleg_templates *t);

/* unixleg_templates_close() - close both; safe on a zeroed-and-(-1) or closed set. */
void unixleg_templates_close(struct unixleg_templates *t);

/* unixleg_park() - put the placeholder on @fd; 0 or -errno. */
int unixleg_park(const struct unixleg_templates *t, int fd);

/* unixleg_install_refused() - put the refused socket on @fd; 0 or -errno. */
int unixleg_install_refused(const struct unixleg_templates *t, int fd);

#endif /* MESHSLIRP_PB_UNIXLEG_H */
