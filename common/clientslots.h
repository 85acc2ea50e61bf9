/* clientslots.h - a fixed table of accepted client connections: accept into a free slot, or refuse. */
#ifndef MESHSLIRP_COMMON_CLIENTSLOTS_H
#define MESHSLIRP_COMMON_CLIENTSLOTS_H

/*
 * The metrics endpoint and the control socket each serve a few clients at
 * once from a fixed array, so that no number of connecting clients can make
 * the daemon allocate more.  Each client struct embeds a struct client_slot
 * (the connection and its watch); a struct client_slots describes the array
 * (where it starts, the size of one element, where the slot sits in it), so
 * this module finds free slots, accepts and closes without knowing the
 * client's type.  Its owner gets back to its client with container_of().
 *
 * A listening socket's readiness accepts at most as many connections as
 * there are slots per call; the rest wait in the backlog for the next turn
 * of the loop.  A connection that finds every slot busy may take the slot
 * of a client its owner gives up (evict callback: one idle for long), or
 * is refused: the owner may say why first (refuse callback), then it is
 * closed.
 *
 * Out of descriptors (or kernel memory), accept() fails and leaves the
 * connection queued, so the listener stays readable: watched as before, it
 * would be dispatched on every turn of the loop, a busy loop on the data
 * thread.  client_slots_accept() says so, and the owner stops watching the
 * listener for CLIENT_BACKOFF_MS (struct client_backoff).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#define CLIENT_BACKOFF_MS 1000         /* a listener unwatched after accept() lacked resources */

struct client_slot {
	int fd;                        /* the connection; -1: the slot is free */
	GSource *src;                  /* its watch (fdsource), owned by the slot */
};

struct client_slots {
	char *base;                    /* the first client struct */
	size_t stride;                 /* the size of one */
	size_t offset;                 /* offsetof(client struct, its struct client_slot) */
	size_t n;                      /* how many */
};

/* CLIENT_SLOTS() - describe the array @clients whose elements embed a struct client_slot @member. */
#define CLIENT_SLOTS(clients, member)                                                   \
	((struct client_slots){ (char *)(clients), sizeof((clients)[0]),                  \
				offsetof(__typeof__((clients)[0]), member), G_N_ELEMENTS(clients) })

/* client_slots_at() - the slot of element @i (< @t->n). */
struct client_slot *client_slots_at(const struct client_slots *t, size_t i);

/* client_slots_init() - mark every slot free. */
void client_slots_init(const struct client_slots *t);

/* A new connection in @slot (slot->fd set): set up the client and slot->src. */
typedef void (*client_slots_open_fn)(struct client_slot *slot, void *opaque);
/* Optional: @conn is about to be closed, every slot being busy. */
typedef void (*client_slots_refuse_fn)(int conn, void *opaque);
/* Optional: every slot is busy; close one client that may go (client_slot_close()): true if one did. */
typedef bool (*client_slots_evict_fn)(void *opaque);

struct client_slots_ops {
	client_slots_open_fn open;
	client_slots_refuse_fn refuse; /* NULL: closed without a word */
	client_slots_evict_fn evict;   /* NULL: no client is ever given up for a new one */
};

/**
 * client_slots_accept() - accept what waits on @listen_fd into free slots
 *
 * At most @t->n connections per call, non-blocking and close-on-exec; each
 * goes to @ops->open, or, with no free slot and none that @ops->evict
 * frees, to @ops->refuse and is closed.  Returns 0, or -errno when
 * accept() failed for want of descriptors or memory (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM): the connection is still queued, and the caller backs
 * off (client_backoff_start()) instead of being called again at once.
 */
int client_slots_accept(const struct client_slots *t, int listen_fd,
			const struct client_slots_ops *ops, void *opaque);

/* client_slot_close() - stop the watch, close the connection, free the slot; a free slot is a no-op. */
void client_slot_close(struct client_slot *slot);

/* What a client table gave up, for the metrics. */
struct client_slots_stats {
	uint64_t evicted;              /* clients closed to make room for a new one */
	uint64_t backoffs;             /* listener pauses, accept() lacking resources */
};

/* A listener's watch, paused while accept() lacks resources. */
struct client_backoff {
	GSource *listener;             /* the listening socket's fdsource (not owned) */
	guint timer;                   /* pending resume, 0: watched */
	uint64_t count;                /* how often it paused */
};

/**
 * client_backoff_start() - stop watching @b->listener for CLIENT_BACKOFF_MS
 *
 * Then it is watched for G_IO_IN again, and a connection still queued is
 * accepted if descriptors were freed meanwhile.  Once per pause: calls
 * while paused do nothing.
 */
void client_backoff_start(struct client_backoff *b);

/*
 * client_backoff_pause() - stop watching @b->listener for @ms, whatever
 * pause is under way (it is replaced): for an owner that refuses to hear
 * from anyone for a while, not for want of resources.
 */
void client_backoff_pause(struct client_backoff *b, unsigned int ms);

/* client_backoff_stop() - drop a pending resume (the owner stops its listener); idempotent. */
void client_backoff_stop(struct client_backoff *b);

/* client_accept_lacks_resources() - whether accept()'s errno @err leaves the connection queued for want of descriptors or memory. */
bool client_accept_lacks_resources(int err);

#endif /* MESHSLIRP_COMMON_CLIENTSLOTS_H */
