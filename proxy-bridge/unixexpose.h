/* unixexpose.h - exposed ports on unix sockets: accept, hand each client to libslirp's hostfwd. */
#ifndef MESHSLIRP_PB_UNIXEXPOSE_H
#define MESHSLIRP_PB_UNIXEXPOSE_H

/*
 * Theory of operation (the why is in unixleg.h, "Inbound")
 *
 * Each --expose unix:PATH:GUESTPORT is a unix listener of ours plus an
 * internal libslirp hostfwd on 127.0.0.1:RELAY (RELAY a free port picked at
 * start-up) to GUESTPORT.  For each client we accept:
 *   1. a non-blocking TCP socket connect()s to 127.0.0.1:RELAY; its local
 *      port names the client ("connector");
 *   2. libslirp accepts that connection and reports it through
 *      register_poll_fd(); the bridge asks unixexpose_adopt(), which finds
 *      the client by the accepted socket's peer port and puts the client's
 *      unix socket on libslirp's descriptor (dup3).  The replaced TCP socket
 *      and the connector are closed with SO_LINGER 0: no TIME_WAIT.
 * The bridge then treats the connection as on any exposed port (PROXY
 * header required or not, validated, the guest seeing the original client).
 * A connection to RELAY that is no connector of ours ("stranger": any local
 * process can reach 127.0.0.1) is refused by the bridge whatever the mode.
 *
 * Bounds: at most UNIXEXPOSE_PENDING_MAX clients wait for libslirp's
 * accept; more are closed at once and counted.  One that libslirp has not
 * accepted within UNIXEXPOSE_ADOPT_TIMEOUT_S is closed and counted.  While
 * the bridge holds libslirp's accepts (netstack_hold_accepts(): too many
 * refused sockets held), unixexpose_hold() stops the listeners too, so new
 * clients wait in their backlog, and those already waiting are not timed
 * out: their time starts again when the hold ends.  At
 * most UNIXEXPOSE_ACCEPT_BATCH accepts per wake-up.  A listener whose
 * accept() lacks descriptors or memory rests for CLIENT_BACKOFF_MS (its
 * clients stay queued) instead of waking the loop again at once.
 *
 * Ownership: the object owns its listeners (the socket files are removed by
 * unixexpose_free()) and every client not yet adopted.
 */

#include <stdbool.h>
#include <stdint.h>

#define UNIXEXPOSE_PENDING_MAX 256
#define UNIXEXPOSE_ADOPT_TIMEOUT_S 5
#define UNIXEXPOSE_ACCEPT_BATCH 64

struct unixexpose;

struct unixexpose_stats {
	uint64_t accepted;             /* clients accepted on the unix listeners */
	uint64_t adopted;              /* ... put under libslirp's descriptor */
	uint64_t overload;             /* closed: UNIXEXPOSE_PENDING_MAX were waiting */
	uint64_t relay_failed;         /* closed: the connector could not be made */
	uint64_t timeouts;             /* closed: libslirp did not accept in time */
	uint64_t strangers;            /* connections to a relay port that were not ours */
	uint64_t accept_errors;        /* accept() failures other than EAGAIN (each EMFILE: a rest) */
};

enum unixexpose_verdict {
	UNIXEXPOSE_NOT_OURS,           /* not a relay port: an ordinary exposed port */
	UNIXEXPOSE_ADOPTED,            /* the descriptor is the unix client now */
	UNIXEXPOSE_STRANGER,           /* a relay port, but no client of ours: refuse it */
};

/* unixexpose_new() - an empty set of listeners. */
struct unixexpose *unixexpose_new(void);

/**
 * unixexpose_listen() - listen on @path for clients of guest port @guest_port
 * @relay_port:	out, host order: the 127.0.0.1 port the caller must forward
 *		to @guest_port (netstack_expose_tcp)
 *
 * A stale socket file is replaced, a live one refused.  The file is created
 * with mode 0660: the sidecar needs the group or the owner (see SECURITY.md).
 *
 * Return: 0, or -errno (-EADDRINUSE: someone listens there already).
 */
int unixexpose_listen(struct unixexpose *ux, const char *path, uint16_t guest_port,
		      uint16_t *relay_port);

/**
 * unixexpose_adopt() - libslirp accepted @fd on 127.0.0.1:@local_port from
 * 127.0.0.1:@peer_port (host order): put the waiting client on @fd if it is ours
 *
 * Call before anyone reads @fd.  On UNIXEXPOSE_ADOPTED, @fd is the client's
 * unix socket (libslirp keeps owning the number).
 */
enum unixexpose_verdict unixexpose_adopt(struct unixexpose *ux, int fd, uint16_t local_port,
					 uint16_t peer_port);

/*
 * unixexpose_hold() - while @held, accept no client and time out none of
 * those waiting (libslirp is not accepting, by the bridge's choice)
 */
void unixexpose_hold(struct unixexpose *ux, bool held);

/* unixexpose_is_relay() - is @port (host order) one of our relay ports? */
bool unixexpose_is_relay(const struct unixexpose *ux, uint16_t port);

/* unixexpose_stats() - counters; valid until unixexpose_free(). */
const struct unixexpose_stats *unixexpose_stats(const struct unixexpose *ux);

/* unixexpose_paths() - NULL-terminated listener paths (borrowed), for the sandbox's chown. */
const char *const *unixexpose_paths(const struct unixexpose *ux);

/* unixexpose_free() - close everything, remove the socket files; NULL is a no-op. */
void unixexpose_free(struct unixexpose *ux);

#endif /* MESHSLIRP_PB_UNIXEXPOSE_H */
