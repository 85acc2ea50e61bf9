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
 * of the loop.  A connection that finds every slot busy is refused: the
 * owner may say why first (refuse callback), then it is closed.
 */

#include <stddef.h>

#include <glib.h>

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

/**
 * client_slots_accept() - accept what waits on @listen_fd into free slots
 *
 * At most @t->n connections per call, non-blocking and close-on-exec; each
 * goes to @open, or, with no free slot, to @refuse (may be NULL) and is
 * closed.
 */
void client_slots_accept(const struct client_slots *t, int listen_fd, client_slots_open_fn open,
			 client_slots_refuse_fn refuse, void *opaque);

/* client_slot_close() - stop the watch, close the connection, free the slot; a free slot is a no-op. */
void client_slot_close(struct client_slot *slot);

#endif /* MESHSLIRP_COMMON_CLIENTSLOTS_H */
