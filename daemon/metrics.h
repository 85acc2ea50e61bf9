/* metrics.h - a minimal HTTP endpoint serving Prometheus text exposition at /metrics. */
#ifndef MESHSLIRP_DAEMON_METRICS_H
#define MESHSLIRP_DAEMON_METRICS_H

/*
 * Theory of operation
 *
 * One listening TCP socket on the default GLib main context.  Each client
 * is a small non-blocking state machine: read the request head (at most
 * METRICS_REQUEST_MAX bytes, until an empty line), answer GET /metrics with
 * the text the render callback produces, anything else with 404 or 405, then
 * close.  At most METRICS_CLIENTS_MAX clients at once; each may idle at
 * most METRICS_IDLE_SECONDS and stay at most METRICS_LIFETIME_SECONDS in
 * all, so a slow or silent scraper never blocks the daemon, and one that
 * sends its request a byte at a time holds its slot for seconds, not hours.
 * With every slot busy, a new client takes the slot of the one connected
 * longest if that one has had METRICS_EVICT_AFTER_MS (a scrape takes
 * milliseconds); otherwise it is closed unanswered.  Out of descriptors,
 * the listener is left alone for CLIENT_BACKOFF_MS (clientslots.h).
 * Rendering happens at request time, so a scrape costs nothing between
 * scrapes.
 *
 * Why hand-written: the project's dependencies are fixed (GLib, libslirp,
 * OpenSSL); GIO's GSocketService would do, but its threaded and async
 * machinery is more than one GET needs.
 */

#include <netinet/in.h>

#include <glib.h>

#include "common/clientslots.h"

#define METRICS_CLIENTS_MAX 16
#define METRICS_REQUEST_MAX 4096
#define METRICS_IDLE_SECONDS 5
#define METRICS_LIFETIME_SECONDS 15
#define METRICS_EVICT_AFTER_MS 1000

/* Append the exposition text to @out. */
typedef void (*metrics_render_fn)(GString *out, void *opaque);

struct metrics_server;

/**
 * metrics_start() - listen on @addr and serve /metrics
 * @addr:	IPv4 address and port (network order)
 * @render:	called for each GET /metrics
 * @opaque:	passed to @render
 * @out:	the server, freed with metrics_stop()
 *
 * Return: 0 or -errno from socket/bind/listen.
 */
int metrics_start(const struct sockaddr_in *addr, metrics_render_fn render, void *opaque,
		  struct metrics_server **out);

/* metrics_stop() - close the listener and every client; NULL is a no-op. */
void metrics_stop(struct metrics_server *ms);

/* metrics_client_stats() - clients evicted and listener back-offs so far; zeros for NULL. */
struct client_slots_stats metrics_client_stats(const struct metrics_server *ms);

#endif /* MESHSLIRP_DAEMON_METRICS_H */
