/* clientslots.c - a fixed table of accepted client connections: accept into a free slot, or refuse. */

#include "clientslots.h"

#include <unistd.h>
#include <sys/socket.h>

#include "common/fdsource.h"

struct client_slot *client_slots_at(const struct client_slots *t, size_t i)
{
	return (struct client_slot *)(void *)(t->base + i * t->stride + t->offset);
}

void client_slots_init(const struct client_slots *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct client_slot *s = client_slots_at(t, i);

		s->fd = -1;
		s->src = NULL;
	}
}

/* The first free slot, or NULL. */
static struct client_slot *client_slots_free(const struct client_slots *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct client_slot *s = client_slots_at(t, i);

		if (s->fd < 0)
			return s;
	}
	return NULL;
}

void client_slots_accept(const struct client_slots *t, int listen_fd, client_slots_open_fn open,
			 client_slots_refuse_fn refuse, void *opaque)
{
	for (size_t k = 0; k < t->n; k++) {
		int conn = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client_slot *s;

		if (conn < 0)
			break;
		s = client_slots_free(t);
		if (!s) {
			if (refuse)
				refuse(conn, opaque);
			close(conn);
			continue;
		}
		s->fd = conn;
		open(s, opaque);
	}
}

void client_slot_close(struct client_slot *slot)
{
	fdsource_clear(&slot->src);
	if (slot->fd >= 0)
		close(slot->fd);
	slot->fd = -1;
}
