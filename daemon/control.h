/* control.h - the control socket: JSON lines to list flows and add or remove exposed ports. */
#ifndef MESHSLIRP_DAEMON_CONTROL_H
#define MESHSLIRP_DAEMON_CONTROL_H

/*
 * Protocol (slirp4netns's API socket is the model): one JSON object per line
 * in, one per line out.
 *
 *   {"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "0.0.0.0",
 *                                            "host_port": 8080, "guest_port": 80}}
 *     -> {"return": {"id": 8080}}            (host_addr, if given, must be --expose-address)
 *   {"execute": "list_hostfwd"}
 *     -> {"return": {"entries": [{"id": 8080, "proto": "tcp", "host_addr": ...,
 *                                 "host_port": 8080, "guest_addr": ..., "guest_port": 80}]}}
 *   {"execute": "remove_hostfwd", "arguments": {"id": 8080}}
 *     -> {"return": {}}
 *   {"execute": "list_flows", "arguments": {"offset": 0, "limit": 1000}}
 *     -> {"return": {"flows": [{"kind": "outbound", "proto": "tcp", "state": "open",
 *                               "guest": "10.0.2.15:40000", "remote": "198.18.0.1:80",
 *                               "stack": "10.0.2.2:15001", "stack_port": 51234}],
 *                    "total": 1, "next_offset": null}}
 *     (both arguments optional: offset 0, limit CONTROL_FLOWS_PAGE; next_offset
 *     is where the next page starts, null after the last)
 *   anything wrong -> {"error": {"desc": "<what is wrong>"}}
 *
 * The id of a forward is its host port.  At most CONTROL_CLIENTS_MAX
 * clients; a line longer than CONTROL_LINE_MAX is answered with an error and
 * disconnected.
 *
 * Output bound, per request: no answer is larger than CONTROL_ANSWER_MAX
 * (a page of flows is at most CONTROL_FLOWS_PAGE entries), and a client's
 * next request is not even read while CONTROL_OUTPUT_MAX of answers wait for
 * it: a client that pipelines requests without reading is paused, not
 * dropped, and its queue never holds more than one answer beyond the bound.
 * Work bound, per turn of the loop: at most CONTROL_LINES_PER_TURN requests
 * of one client are answered before the loop goes on (the rest are answered
 * on the next turns, without waiting for the client to send more), so a
 * read full of list_flows costs the data path a few table walks, not
 * hundreds.  A client that closes its sending side still gets every answer.
 *
 * With every slot busy, a new client takes the slot of the client idle
 * longest (no request served: bytes that complete no request, and
 * requests answered with an error, do not count), if that one has been idle for
 * CONTROL_EVICT_IDLE_SECONDS; otherwise it is told "too many control
 * clients" and closed.  Out of descriptors, the listener is left alone for
 * CLIENT_BACKOFF_MS (clientslots.h).  The socket is created with mode 0600
 * and removed on exit.
 */

#include <stdbool.h>

#include <glib.h>

#include "common/clientslots.h"

#define CONTROL_CLIENTS_MAX 8
#define CONTROL_LINE_MAX 4096
#define CONTROL_LINES_PER_TURN 4
#define CONTROL_EVICT_IDLE_SECONDS 5
#define CONTROL_OUTPUT_MAX (4u << 20)
#define CONTROL_FLOWS_PAGE 10000           /* flows per list_flows answer, at most */
#define CONTROL_ANSWER_MAX (CONTROL_FLOWS_PAGE * 256u) /* a flow entry is under 256 bytes */

struct daemon;
struct control_server;

/**
 * control_start() - listen on unix socket @path for control clients
 *
 * Return: 0 or -errno (-EADDRINUSE if a live process serves @path).
 */
int control_start(const char *path, struct daemon *d, struct control_server **out);

/* control_stop() - close clients and the listener, remove the path; NULL is a no-op. */
void control_stop(struct control_server *cs);

/**
 * control_handle_line() - execute one request line and append the answer
 * (with its newline) to @out; exposed for tests.  Returns whether the
 * request was served (a "return" answer, not an "error" one).
 */
bool control_handle_line(struct daemon *d, const char *line, size_t len, GString *out);

/* control_output_peak() - most answer bytes one client ever had waiting (the bound's proof). */
size_t control_output_peak(const struct control_server *cs);

/* control_client_stats() - clients evicted and listener back-offs so far; zeros for NULL. */
struct client_slots_stats control_client_stats(const struct control_server *cs);

#endif /* MESHSLIRP_DAEMON_CONTROL_H */
