/* unixexpose.c - unix listeners for exposed ports, each client handed to a libslirp hostfwd. */

#include "proxy-bridge/unixexpose.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <glib.h>

#include "common/clientslots.h"
#include "common/fdsource.h"
#include "common/log.h"
#include "common/ratelimit.h"
#include "common/unixsock.h"
#include "proxy-bridge/unixleg.h"

struct unixexpose_listener {
	struct unixexpose *ux;
	char *path;                    /* owned; unlinked by unixexpose_free() */
	int fd;
	uint16_t guest_port;
	uint16_t relay_port;           /* host order */
	GSource *src;
	struct client_backoff backoff; /* rests while accept() lacks descriptors */
};

/* A client waiting for libslirp to accept its connector. */
struct unixexpose_wait {
	int client;                    /* the sidecar's unix socket */
	int connector;                 /* our TCP socket towards 127.0.0.1:relay */
	uint16_t connector_port;       /* its local port, host order */
	uint16_t relay_port;
	int64_t deadline_us;
};

struct unixexpose {
	GPtrArray *listeners;          /* struct unixexpose_listener, owned */
	GPtrArray *paths;              /* borrowed from listeners, NULL-terminated */
	struct unixexpose_wait wait[UNIXEXPOSE_PENDING_MAX];
	size_t nwait;                  /* dense: [0, nwait) in use */
	guint timer;                   /* 1 s while anyone waits */
	bool held;                     /* unixexpose_hold(): accept nothing, time nobody out */
	struct ratelimit log_rl;
	struct unixexpose_stats stats;
};

static void unixexpose_log(struct unixexpose *ux, const char *what, int err)
{
	uint64_t suppressed;

	if (ratelimit_allow(&ux->log_rl, g_get_monotonic_time(), &suppressed))
		g_warning("unix exposed port: %s: %s (%" G_GUINT64_FORMAT " similar suppressed)",
			  what, g_strerror(err), suppressed);
}

/* Close a waiting entry's sockets (SO_LINGER 0 on the connector: no TIME_WAIT) and drop it. */
static void unixexpose_wait_drop(struct unixexpose *ux, size_t i, bool close_client)
{
	struct unixexpose_wait *w = &ux->wait[i];
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(w->connector, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(w->connector);
	if (close_client)
		close(w->client);
	ux->wait[i] = ux->wait[--ux->nwait];
}

static gboolean unixexpose_tick(gpointer data)
{
	struct unixexpose *ux = data;
	int64_t now = g_get_monotonic_time();

	/* libslirp is not accepting, by the bridge's choice: nobody is late. */
	for (size_t i = 0; i < ux->nwait && !ux->held;) {
		if (ux->wait[i].deadline_us <= now) {
			ux->stats.timeouts++;
			unixexpose_log(ux, "libslirp did not take a client in time", ETIMEDOUT);
			unixexpose_wait_drop(ux, i, true);
			continue;
		}
		i++;
	}
	if (!ux->nwait) {
		ux->timer = 0;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

/*
 * Start the hand-over of one accepted @client: connect a TCP socket to the
 * relay port and remember both.  Consumes @client.
 */
static void unixexpose_hand_over(struct unixexpose_listener *l, int client)
{
	struct unixexpose *ux = l->ux;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(l->relay_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	int sndbuf = UNIXLEG_SNDBUF;
	int conn, ret;

	if (ux->nwait == UNIXEXPOSE_PENDING_MAX) {
		ux->stats.overload++;
		unixexpose_log(ux, "too many clients waiting; closed", EBUSY);
		close(client);
		return;
	}
	(void)setsockopt(client, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	conn = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (conn < 0) {
		ret = -errno;
		goto fail;
	}
	ret = connect(conn, (struct sockaddr *)&sa, sizeof(sa));
	if (ret < 0 && errno != EINPROGRESS) {
		ret = -errno;
		goto fail;
	}
	if (getsockname(conn, (struct sockaddr *)&sa, &salen) < 0) {
		ret = -errno;
		goto fail;
	}
	ux->wait[ux->nwait++] = (struct unixexpose_wait){
		.client = client, .connector = conn, .connector_port = ntohs(sa.sin_port),
		.relay_port = l->relay_port,
		.deadline_us = g_get_monotonic_time() + UNIXEXPOSE_ADOPT_TIMEOUT_S * G_USEC_PER_SEC,
	};
	if (!ux->timer)
		ux->timer = g_timeout_add_seconds(1, unixexpose_tick, ux);
	return;
fail:
	ux->stats.relay_failed++;
	unixexpose_log(ux, "cannot reach the internal hostfwd; client closed", -ret);
	if (conn >= 0)
		close(conn);
	close(client);
}

static gboolean unixexpose_accept(int fd, GIOCondition ready, void *opaque)
{
	struct unixexpose_listener *l = opaque;

	(void)ready;
	/* Held: a rest's end watched it again.  Clients wait in the backlog. */
	if (l->ux->held) {
		fdsource_set_events(l->src, 0);
		return G_SOURCE_CONTINUE;
	}
	/* Bounded: a flood waits for the next loop turn, it cannot hold this one. */
	for (int i = 0; i < UNIXEXPOSE_ACCEPT_BATCH; i++) {
		int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (client < 0) {
			int err = errno;

			if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR ||
			    err == ECONNABORTED)
				break;
			l->ux->stats.accept_errors++;
			unixexpose_log(l->ux, "accept", err);
			/* The client stays queued and the listener readable: rest, not spin. */
			if (client_accept_lacks_resources(err))
				client_backoff_start(&l->backoff);
			break;
		}
		l->ux->stats.accepted++;
		unixexpose_hand_over(l, client);
	}
	return G_SOURCE_CONTINUE;
}

struct unixexpose *unixexpose_new(void)
{
	struct unixexpose *ux = g_new0(struct unixexpose, 1);

	ux->listeners = g_ptr_array_new();
	ux->paths = g_ptr_array_new();
	g_ptr_array_add(ux->paths, NULL);
	ux->log_rl = (struct ratelimit)RATELIMIT_INIT(10);
	return ux;
}

/* A free 127.0.0.1 port for the relay hostfwd; 0 or -errno. */
static int unixexpose_pick_port(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		ret = -errno;
	else
		*port = ntohs(sa.sin_port);
	close(fd);
	return ret;
}

int unixexpose_listen(struct unixexpose *ux, const char *path, uint16_t guest_port,
		      uint16_t *relay_port)
{
	struct unixexpose_listener *l;
	int fd = -1, ret;

	/* The one listen set-up (common/unixsock.c); the sidecar's group may connect. */
	ret = unixsock_listen(path, SOMAXCONN, false, &fd);
	if (ret)
		return ret;
	if (chmod(path, 0660) < 0) {
		ret = -errno;
		goto fail;
	}
	ret = unixexpose_pick_port(relay_port);
	if (ret)
		goto fail;
	l = g_new0(struct unixexpose_listener, 1);
	*l = (struct unixexpose_listener){
		.ux = ux, .path = g_strdup(path), .fd = fd, .guest_port = guest_port,
		.relay_port = *relay_port,
	};
	l->src = fdsource_new(fd, G_IO_IN, unixexpose_accept, l);
	l->backoff.listener = l->src;
	g_ptr_array_add(ux->listeners, l);
	g_ptr_array_index(ux->paths, ux->paths->len - 1) = l->path;
	g_ptr_array_add(ux->paths, NULL);
	return 0;
fail:
	close(fd);
	unlink(path);
	return ret;
}

bool unixexpose_is_relay(const struct unixexpose *ux, uint16_t port)
{
	for (guint i = 0; ux && i < ux->listeners->len; i++) {
		if (((struct unixexpose_listener *)g_ptr_array_index(ux->listeners, i))->relay_port ==
		    port)
			return true;
	}
	return false;
}

enum unixexpose_verdict unixexpose_adopt(struct unixexpose *ux, int fd, uint16_t local_port,
					 uint16_t peer_port)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (!unixexpose_is_relay(ux, local_port))
		return UNIXEXPOSE_NOT_OURS;
	/* Linear: at most UNIXEXPOSE_PENDING_MAX, and usually the one just accepted. */
	for (size_t i = 0; i < ux->nwait; i++) {
		struct unixexpose_wait *w = &ux->wait[i];
		int client = w->client;

		if (w->connector_port != peer_port || w->relay_port != local_port)
			continue;
		/* The TCP socket dup3 closes: a reset, no TIME_WAIT. */
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		unixexpose_wait_drop(ux, i, false);
		if (unixleg_install(client, fd)) {
			ux->stats.relay_failed++;
			return UNIXEXPOSE_STRANGER;
		}
		ux->stats.adopted++;
		return UNIXEXPOSE_ADOPTED;
	}
	ux->stats.strangers++;
	return UNIXEXPOSE_STRANGER;
}

void unixexpose_hold(struct unixexpose *ux, bool held)
{
	int64_t deadline = g_get_monotonic_time() + UNIXEXPOSE_ADOPT_TIMEOUT_S * G_USEC_PER_SEC;

	if (ux->held == held)
		return;
	ux->held = held;
	/* Those waiting waited on the hold, not on libslirp: their time starts now. */
	for (size_t i = 0; i < ux->nwait && !held; i++)
		ux->wait[i].deadline_us = deadline;
	for (guint i = 0; i < ux->listeners->len; i++) {
		struct unixexpose_listener *l = g_ptr_array_index(ux->listeners, i);

		if (!l->backoff.timer)
			fdsource_set_events(l->src, held ? 0 : G_IO_IN);
	}
}

const struct unixexpose_stats *unixexpose_stats(const struct unixexpose *ux)
{
	return &ux->stats;
}

const char *const *unixexpose_paths(const struct unixexpose *ux)
{
	return (const char *const *)ux->paths->pdata;
}

void unixexpose_free(struct unixexpose *ux)
{
	if (!ux)
		return;
	while (ux->nwait)
		unixexpose_wait_drop(ux, 0, true);
	if (ux->timer)
		g_source_remove(ux->timer);
	for (guint i = 0; i < ux->listeners->len; i++) {
		struct unixexpose_listener *l = g_ptr_array_index(ux->listeners, i);

		client_backoff_stop(&l->backoff);
		fdsource_clear(&l->src);
		close(l->fd);
		unlink(l->path);
		g_free(l->path);
		g_free(l);
	}
	g_ptr_array_unref(ux->listeners);
	g_ptr_array_unref(ux->paths);
	g_free(ux);
}
