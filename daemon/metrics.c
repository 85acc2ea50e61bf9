/* metrics.c - a minimal HTTP endpoint serving Prometheus text exposition at /metrics. */

#include "metrics.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "common/clientslots.h"
#include "common/fdsource.h"
#include "common/util.h"

struct metrics_client {
	struct metrics_server *ms;
	struct client_slot slot;       /* the connection; fd -1: free */
	char req[METRICS_REQUEST_MAX];
	size_t req_len;
	GString *resp;                 /* NULL while reading the request */
	size_t sent;
	int64_t opened_us;
	int64_t last_us;
};

struct metrics_server {
	int fd;
	GSource *src;
	guint sweep;
	struct client_backoff backoff;
	uint64_t evicted;              /* clients given up for a new one */
	metrics_render_fn render;
	void *opaque;
	struct metrics_client clients[METRICS_CLIENTS_MAX];
};

static void metrics_client_close(struct metrics_client *c)
{
	client_slot_close(&c->slot);
	if (c->resp)
		g_string_free(c->resp, TRUE);
	c->resp = NULL;
}

/* Build the response for the request head in c->req. */
static void metrics_client_respond(struct metrics_client *c)
{
	g_autoptr(GString) body = g_string_new(NULL);
	const char *status = "200 OK";
	const char *type = "text/plain; version=0.0.4; charset=utf-8";

	if (strncmp(c->req, "GET ", 4)) {
		status = "405 Method Not Allowed";
		type = "text/plain";
		g_string_append(body, "only GET is served\n");
	} else if (strncmp(c->req + 4, "/metrics ", 9) && strncmp(c->req + 4, "/metrics?", 9)) {
		status = "404 Not Found";
		type = "text/plain";
		g_string_append(body, "see /metrics\n");
	} else {
		c->ms->render(body, c->ms->opaque);
	}
	c->resp = g_string_new(NULL);
	g_string_append_printf(c->resp, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			       "Connection: close\r\n\r\n", status, type, body->len);
	g_string_append_len(c->resp, body->str, (gssize)body->len);
	c->sent = 0;
	fdsource_set_events(c->slot.src, G_IO_OUT);
}

static gboolean metrics_on_client(int fd, GIOCondition ready, void *opaque)
{
	struct metrics_client *c = opaque;
	ssize_t n;

	(void)ready;
	c->last_us = g_get_monotonic_time();
	if (!c->resp) {
		n = read(fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len);
		if (n <= 0) {
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return G_SOURCE_CONTINUE;
			metrics_client_close(c);
			return G_SOURCE_CONTINUE;
		}
		c->req_len += (size_t)n;
		c->req[c->req_len] = 0;
		if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
			metrics_client_respond(c);
		else if (c->req_len == sizeof(c->req) - 1)
			metrics_client_close(c); /* a head this long is no scrape */
		return G_SOURCE_CONTINUE;
	}
	n = send(fd, c->resp->str + c->sent, c->resp->len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return G_SOURCE_CONTINUE;
	if (n > 0)
		c->sent += (size_t)n;
	if (n < 0 || c->sent == c->resp->len)
		metrics_client_close(c);
	return G_SOURCE_CONTINUE;
}

static void metrics_client_open(struct client_slot *slot, void *opaque)
{
	struct metrics_client *c = container_of(slot, struct metrics_client, slot);

	(void)opaque;
	c->req_len = 0;
	c->opened_us = c->last_us = g_get_monotonic_time();
	slot->src = fdsource_new(slot->fd, G_IO_IN, metrics_on_client, c);
}

/* Every slot busy: the client connected longest goes if it has had METRICS_EVICT_AFTER_MS. */
static bool metrics_evict(void *opaque)
{
	struct metrics_server *ms = opaque;
	struct metrics_client *oldest = NULL;

	for (int i = 0; i < METRICS_CLIENTS_MAX; i++) {
		struct metrics_client *c = &ms->clients[i];

		if (c->slot.fd >= 0 && (!oldest || c->opened_us < oldest->opened_us))
			oldest = c;
	}
	if (!oldest || g_get_monotonic_time() - oldest->opened_us < METRICS_EVICT_AFTER_MS * 1000)
		return false;
	ms->evicted++;
	metrics_client_close(oldest);
	return true;
}

static gboolean metrics_on_accept(int fd, GIOCondition ready, void *opaque)
{
	static const struct client_slots_ops ops = { .open = metrics_client_open,
						     .evict = metrics_evict };
	struct metrics_server *ms = opaque;

	(void)ready;
	/* All slots busy and none to give up: closed unanswered, the scraper retries. */
	if (client_slots_accept(&CLIENT_SLOTS(ms->clients, slot), fd, &ops, ms))
		client_backoff_start(&ms->backoff);
	return G_SOURCE_CONTINUE;
}

/* Close clients idle for longer than METRICS_IDLE_SECONDS, or connected longer than METRICS_LIFETIME_SECONDS. */
static gboolean metrics_sweep(gpointer data)
{
	struct metrics_server *ms = data;
	int64_t now = g_get_monotonic_time();
	int64_t limit = now - METRICS_IDLE_SECONDS * G_USEC_PER_SEC;

	for (int i = 0; i < METRICS_CLIENTS_MAX; i++) {
		struct metrics_client *c = &ms->clients[i];
		struct pollfd p;

		if (c->slot.fd < 0)
			continue;
		if (now - c->opened_us > METRICS_LIFETIME_SECONDS * G_USEC_PER_SEC) {
			metrics_client_close(c);
			continue;
		}
		if (c->last_us >= limit)
			continue;
		/*
		 * After the loop was busy for a while (a guest flooding it),
		 * this timer may run before the client's own handler: a
		 * request waiting to be read, or an answer the client is
		 * ready to take, is not idleness.
		 */
		p = (struct pollfd){ .fd = c->slot.fd, .events = c->resp ? POLLOUT : POLLIN };
		if (poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLOUT)))
			continue;
		metrics_client_close(c);
	}
	return G_SOURCE_CONTINUE;
}

int metrics_start(const struct sockaddr_in *addr, metrics_render_fn render, void *opaque,
		  struct metrics_server **out)
{
	struct metrics_server *ms = g_new0(struct metrics_server, 1);
	int one = 1, ret;

	ms->render = render;
	ms->opaque = opaque;
	client_slots_init(&CLIENT_SLOTS(ms->clients, slot));
	for (int i = 0; i < METRICS_CLIENTS_MAX; i++)
		ms->clients[i].ms = ms;
	ms->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ms->fd < 0) {
		ret = -errno;
		g_free(ms);
		return ret;
	}
	setsockopt(ms->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ms->fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 ||
	    listen(ms->fd, METRICS_CLIENTS_MAX) < 0) {
		ret = -errno;
		close(ms->fd);
		g_free(ms);
		return ret;
	}
	ms->src = fdsource_new(ms->fd, G_IO_IN, metrics_on_accept, ms);
	ms->backoff.listener = ms->src;
	ms->sweep = g_timeout_add_seconds(1, metrics_sweep, ms);
	*out = ms;
	return 0;
}

void metrics_stop(struct metrics_server *ms)
{
	if (!ms)
		return;
	for (int i = 0; i < METRICS_CLIENTS_MAX; i++)
		metrics_client_close(&ms->clients[i]);
	client_backoff_stop(&ms->backoff);
	fdsource_clear(&ms->src);
	close(ms->fd);
	g_source_remove(ms->sweep);
	g_free(ms);
}

struct client_slots_stats metrics_client_stats(const struct metrics_server *ms)
{
	if (!ms)
		return (struct client_slots_stats){ 0 };
	return (struct client_slots_stats){ .evicted = ms->evicted, .backoffs = ms->backoff.count };
}
