/* clientslots.c - a fixed table of accepted client connections: accept into a free slot, or refuse. */

#include "clientslots.h"

#include <errno.h>
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

int client_slots_accept(const struct client_slots *t, int listen_fd,
			const struct client_slots_ops *ops, void *opaque)
{
	for (size_t k = 0; k < t->n; k++) {
		int conn = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client_slot *s;

		if (conn < 0) {
			if (client_accept_lacks_resources(errno))
				return -errno;
			break;
		}
		s = client_slots_free(t);
		if (!s && ops->evict && ops->evict(opaque))
			s = client_slots_free(t);
		if (!s) {
			if (ops->refuse)
				ops->refuse(conn, opaque);
			close(conn);
			continue;
		}
		s->fd = conn;
		ops->open(s, opaque);
	}
	return 0;
}

void client_slot_close(struct client_slot *slot)
{
	fdsource_clear(&slot->src);
	if (slot->fd >= 0)
		close(slot->fd);
	slot->fd = -1;
}

static gboolean client_backoff_resume(gpointer data)
{
	struct client_backoff *b = data;

	b->timer = 0;
	fdsource_set_events(b->listener, G_IO_IN);
	return G_SOURCE_REMOVE;
}

void client_backoff_pause(struct client_backoff *b, unsigned int ms)
{
	client_backoff_stop(b);
	b->count++;
	fdsource_set_events(b->listener, 0);
	b->timer = g_timeout_add(ms, client_backoff_resume, b);
}

void client_backoff_start(struct client_backoff *b)
{
	if (!b->timer)
		client_backoff_pause(b, CLIENT_BACKOFF_MS);
}

void client_backoff_stop(struct client_backoff *b)
{
	if (b->timer)
		g_source_remove(b->timer);
	b->timer = 0;
}

bool client_accept_lacks_resources(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}
