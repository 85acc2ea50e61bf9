/* control.c - the control socket: JSON lines to list flows and add or remove exposed ports. */

#include "control.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/clientslots.h"
#include "common/fdsource.h"
#include "common/json.h"
#include "common/util.h"
#include "common/unixsock.h"
#include "daemon/daemon.h"
#include "proxy-bridge/knat.h"
#include "proxy-bridge/ksteer.h"
#include "proxy-bridge/unixexpose.h"

struct control_client {
	struct control_server *cs;
	struct client_slot slot;       /* the connection; fd -1: free */
	char in[CONTROL_LINE_MAX];
	size_t in_len;
	bool eof;                      /* the client sent all it will: answer, then close */
	int64_t last_us;               /* a request last served (not an error): the eviction order */
	GString *out;
};

struct control_server {
	struct daemon *d;
	char *path;
	int fd;
	GSource *src;
	struct control_client clients[CONTROL_CLIENTS_MAX];
	struct client_backoff backoff;
	uint64_t evicted;              /* idle clients closed to make room */
	size_t peak_output;            /* most answer bytes one client ever had queued */
};

#define CONTROL_ERROR_PREFIX "{\"error\""

static void control_error(GString *out, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void control_error(GString *out, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_string_append(out, CONTROL_ERROR_PREFIX ": {\"desc\": ");
	json_escape_append(out, msg);
	g_string_append(out, "}}\n");
}

/* An integer argument in [min, max]; false (and an error answer) otherwise. */
static bool control_int_arg(const struct json_doc *doc, const struct json_node *args,
			    const char *key, int64_t min, int64_t max, int64_t *v, GString *out)
{
	const struct json_node *n = json_get(doc, args, key);

	if (!n || n->type != JSON_INT || n->num < min || n->num > max) {
		control_error(out, "arguments.%s must be an integer from %" G_GINT64_FORMAT
			      " to %" G_GINT64_FORMAT, key, min, max);
		return false;
	}
	*v = n->num;
	return true;
}

static void control_add_hostfwd(struct daemon *d, const struct json_doc *doc,
				const struct json_node *args, GString *out)
{
	const struct json_node *proto = json_get(doc, args, "proto");
	const struct json_node *addr = json_get(doc, args, "host_addr");
	struct in_addr host = d->cfg->expose_addr;
	struct bridge_expose e;
	int64_t hp, gp;
	int ret;

	if (proto && (proto->type != JSON_STRING || strcmp(proto->str, "tcp"))) {
		control_error(out, "only proto \"tcp\" can be forwarded");
		return;
	}
	if (addr && (addr->type != JSON_STRING || inet_pton(AF_INET, addr->str, &host) != 1 ||
		     host.s_addr != d->cfg->expose_addr.s_addr)) {
		char want[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &d->cfg->expose_addr, want, sizeof(want));
		control_error(out, "arguments.host_addr must be this daemon's --expose-address, %s", want);
		return;
	}
	if (!control_int_arg(doc, args, "host_port", 1, 65535, &hp, out) ||
	    !control_int_arg(doc, args, "guest_port", 1, 65535, &gp, out))
		return;
	/* The unix exposed ports' relays are in the list already. */
	if (d->cfg->expose->len >= MS_EXPOSE_MAX) {
		control_error(out, "at most %d ports can be exposed; remove one first", MS_EXPOSE_MAX);
		return;
	}
	for (guint i = 0; i < d->cfg->expose->len; i++) {
		if (g_array_index(d->cfg->expose, struct bridge_expose, i).host_port == hp) {
			control_error(out, "host port %" G_GINT64_FORMAT " is already forwarded", hp);
			return;
		}
	}
	ret = netstack_expose_tcp(d->ns, host, (uint16_t)hp, (uint16_t)gp);
	if (ret) {
		control_error(out, "cannot listen on port %" G_GINT64_FORMAT ": %s", hp,
			      g_strerror(-ret));
		return;
	}
	e.host_port = (uint16_t)hp;
	e.guest_port = (uint16_t)gp;
	g_array_append_val(d->cfg->expose, e);
	g_message("control: exposing port %" G_GINT64_FORMAT " -> guest port %" G_GINT64_FORMAT,
		  hp, gp);
	g_string_append_printf(out, "{\"return\": {\"id\": %" G_GINT64_FORMAT "}}\n", hp);
}

static void control_remove_hostfwd(struct daemon *d, const struct json_doc *doc,
				   const struct json_node *args, GString *out)
{
	int64_t id;

	if (!control_int_arg(doc, args, "id", 1, 65535, &id, out))
		return;
	for (guint i = 0; i < d->cfg->expose->len; i++) {
		if (g_array_index(d->cfg->expose, struct bridge_expose, i).host_port != id)
			continue;
		/* A unix exposed port's relay (unixexpose.h): not the control socket's to remove. */
		if (unixexpose_is_relay(d->ux, (uint16_t)id))
			break;
		netstack_unexpose_tcp(d->ns, d->cfg->expose_addr, (uint16_t)id);
		g_array_remove_index(d->cfg->expose, i);
		g_message("control: no longer exposing port %" G_GINT64_FORMAT, id);
		g_string_append(out, "{\"return\": {}}\n");
		return;
	}
	control_error(out, "no forward with id %" G_GINT64_FORMAT, id);
}

static void control_list_hostfwd(struct daemon *d, GString *out)
{
	char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &d->cfg->expose_addr, host, sizeof(host));
	inet_ntop(AF_INET, &d->cfg->guest, guest, sizeof(guest));
	g_string_append(out, "{\"return\": {\"entries\": [");
	for (guint i = 0, n = 0; i < d->cfg->expose->len; i++) {
		const struct bridge_expose *e = &g_array_index(d->cfg->expose, struct bridge_expose, i);

		/* Unix exposed ports' relays are internal (and on 127.0.0.1): not listed. */
		if (unixexpose_is_relay(d->ux, e->host_port))
			continue;
		g_string_append_printf(out, "%s{\"id\": %u, \"proto\": \"tcp\", \"host_addr\": \"%s\", "
				       "\"host_port\": %u, \"guest_addr\": \"%s\", \"guest_port\": %u}",
				       n++ ? ", " : "", e->host_port, host, e->host_port, guest,
				       e->guest_port);
	}
	g_string_append(out, "]}}\n");
}

struct control_flows {
	GString *out;
	uint64_t offset, limit;        /* the page asked for */
	uint64_t seen;                 /* flows walked so far (the total, at the end) */
};

/* Count one more flow: the separator to write it with if it is on the page, NULL if not. */
static const char *control_flows_next(struct control_flows *cf)
{
	uint64_t idx = cf->seen++;

	if (idx < cf->offset || idx - cf->offset >= cf->limit)
		return NULL;
	return idx == cf->offset ? "" : ", ";
}

/* One list_flows entry, whichever path holds the flow; addresses and ports in network order. */
struct control_flow_row {
	const char *kind, *path, *proto, *state;
	uint32_t guest_addr, remote_addr, stack_addr;
	uint16_t guest_port, remote_port, stack_src_port;
	uint16_t stack_port;           /* host order */
};

static void control_flow_endpoint(GString *out, const char *name, uint32_t addr, uint16_t port)
{
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &addr, ip, sizeof(ip));
	g_string_append_printf(out, ", \"%s\": \"%s:%u\"", name, ip, ntohs(port));
}

/* Write @r if it falls on the page: the one place the entry's layout is written. */
static void control_flow_row(struct control_flows *cf, const struct control_flow_row *r)
{
	const char *sep = control_flows_next(cf);

	if (!sep)
		return;
	g_string_append_printf(cf->out, "%s{\"kind\": \"%s\", \"path\": \"%s\", "
			       "\"proto\": \"%s\", \"state\": \"%s\"",
			       sep, r->kind, r->path, r->proto, r->state);
	control_flow_endpoint(cf->out, "guest", r->guest_addr, r->guest_port);
	control_flow_endpoint(cf->out, "remote", r->remote_addr, r->remote_port);
	control_flow_endpoint(cf->out, "stack", r->stack_addr, r->stack_src_port);
	g_string_append_printf(cf->out, ", \"stack_port\": %u}", r->stack_port);
}

static void control_flow(const struct flow *f, void *opaque)
{
	static const char *const states[FLOW_STATE_COUNT] = {
		[FLOW_SYN] = "syn", [FLOW_CONNECTING] = "connecting", [FLOW_OPEN] = "open",
		[FLOW_CLOSED] = "closed", [FLOW_HDR_WAIT] = "header_wait",
		[FLOW_REJECTED] = "rejected",
	};
	static const char *const kinds[] = {
		[FLOW_STEER] = "outbound", [FLOW_DNS] = "dns", [FLOW_INBOUND] = "inbound",
		[FLOW_DIRECT] = "direct",
	};

	control_flow_row(opaque, &(struct control_flow_row){
		.kind = kinds[f->kind], .path = "slirp",
		.proto = f->gkey.proto == IPPROTO_TCP ? "tcp" : "udp", .state = states[f->state],
		.guest_addr = f->gkey.laddr, .guest_port = f->gkey.lport,
		.remote_addr = f->gkey.raddr, .remote_port = f->gkey.rport,
		.stack_addr = f->skey.raddr, .stack_src_port = f->skey.rport,
		.stack_port = ntohs(f->skey.lport),
	});
}

/*
 * A flow of the kernel path (--steer-stack kernel): TCP, steered or direct;
 * "stack" is its source in the private stack, "stack_port" the private
 * listener's port.
 */
static void control_kernel_flow(const struct ksteer_flow_info *kf, void *opaque)
{
	control_flow_row(opaque, &(struct control_flow_row){
		.kind = kf->direct ? "direct" : "outbound", .path = "kernel", .proto = "tcp", .state = kf->state,
		.guest_addr = kf->guest_addr, .guest_port = kf->guest_port,
		.remote_addr = kf->remote_addr, .remote_port = kf->remote_port,
		.stack_addr = kf->stack_addr, .stack_src_port = kf->guest_port,
		.stack_port = KNAT_LISTEN_PORT,
	});
}

/* list_flows: one page, bounded by CONTROL_FLOWS_PAGE entries. */
static void control_list_flows(struct daemon *d, const struct json_doc *doc,
			       const struct json_node *args, GString *out)
{
	struct control_flows cf = { .out = out, .offset = 0, .limit = CONTROL_FLOWS_PAGE };
	int64_t v;

	if (args && json_get(doc, args, "offset")) {
		if (!control_int_arg(doc, args, "offset", 0, G_MAXINT32, &v, out))
			return;
		cf.offset = (uint64_t)v;
	}
	if (args && json_get(doc, args, "limit")) {
		if (!control_int_arg(doc, args, "limit", 1, CONTROL_FLOWS_PAGE, &v, out))
			return;
		cf.limit = (uint64_t)v;
	}
	g_string_append(out, "{\"return\": {\"flows\": [");
	bridge_foreach_flow(d->br, control_flow, &cf);
	if (d->ks)
		ksteer_foreach_flow(d->ks, control_kernel_flow, &cf);
	g_string_append_printf(out, "], \"total\": %" G_GUINT64_FORMAT ", \"next_offset\": ",
			       cf.seen);
	if (cf.offset + cf.limit < cf.seen)
		g_string_append_printf(out, "%" G_GUINT64_FORMAT "}}\n", cf.offset + cf.limit);
	else
		g_string_append(out, "null}}\n");
}

bool control_handle_line(struct daemon *d, const char *line, size_t len, GString *out)
{
	struct json_doc *doc = g_new(struct json_doc, 1);
	const struct json_node *root, *exec, *args;
	size_t before = out->len;

	if (json_parse(doc, line, len)) {
		control_error(out, "bad JSON: %s", doc->error);
		goto done;
	}
	root = &doc->nodes[0];
	exec = json_get(doc, root, "execute");
	args = json_get(doc, root, "arguments");
	if (root->type != JSON_OBJECT || !exec || exec->type != JSON_STRING) {
		control_error(out, "expected {\"execute\": \"<command>\", \"arguments\": {...}}");
		goto done;
	}
	if (args && args->type != JSON_OBJECT) {
		control_error(out, "\"arguments\" must be an object");
		goto done;
	}
	if (!strcmp(exec->str, "add_hostfwd")) {
		control_add_hostfwd(d, doc, args, out);
	} else if (!strcmp(exec->str, "remove_hostfwd")) {
		control_remove_hostfwd(d, doc, args, out);
	} else if (!strcmp(exec->str, "list_hostfwd")) {
		control_list_hostfwd(d, out);
	} else if (!strcmp(exec->str, "list_flows")) {
		control_list_flows(d, doc, args, out);
	} else {
		control_error(out, "unknown command \"%s\" (add_hostfwd, list_hostfwd, "
			      "remove_hostfwd, list_flows)", exec->str);
	}
done:
	g_free(doc);
	/* Every answer is one object, and only control_error() writes an "error" one. */
	return !g_str_has_prefix(out->str + before, CONTROL_ERROR_PREFIX);
}

static void control_client_close(struct control_client *c)
{
	client_slot_close(&c->slot);
	if (c->out)
		g_string_free(c->out, TRUE);
	c->out = NULL;
}

/* Whether a complete request waits in @c->in and may be answered (the output has room). */
static bool control_client_pending(const struct control_client *c)
{
	return c->out->len < CONTROL_OUTPUT_MAX && memchr(c->in, '\n', c->in_len);
}

/*
 * Answer complete lines waiting in @c->in, at most *@budget of them, and
 * none while CONTROL_OUTPUT_MAX of answers are queued: the queue holds at
 * most one answer (CONTROL_ANSWER_MAX) beyond the bound, however many
 * requests a single read brought.
 */
static void control_client_handle_lines(struct control_client *c, int *budget)
{
	char *nl;

	while (*budget > 0 && c->out->len < CONTROL_OUTPUT_MAX &&
	       (nl = memchr(c->in, '\n', c->in_len))) {
		size_t len = (size_t)(nl - c->in);

		if (len) {
			/* Only a request served keeps the slot from eviction. */
			if (control_handle_line(c->cs->d, c->in, len, c->out))
				c->last_us = g_get_monotonic_time();
			(*budget)--;
		}
		memmove(c->in, nl + 1, c->in_len - len - 1);
		c->in_len -= len + 1;
		c->cs->peak_output = MAX(c->cs->peak_output, c->out->len);
	}
}

/*
 * Write what is pending, in as many send()s as the socket takes, and take
 * it off the queue once; false if the client had to be dropped.
 */
static bool control_client_flush(struct control_client *c)
{
	size_t sent = 0;

	while (sent < c->out->len) {
		ssize_t n = send(c->slot.fd, c->out->str + sent, c->out->len - sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			control_client_close(c);
			return false;
		}
		sent += (size_t)n;
	}
	if (sent)
		g_string_erase(c->out, 0, (gssize)sent);
	return true;
}

/*
 * Watch for what the client's state needs next, or close it when it sent
 * EOF and has everything it asked for (@c is then free: touch it no
 * more).  G_IO_OUT stands for
 * answers to write and for requests still to answer: the socket is
 * writable while it has room, so a turn left over from the budget runs on
 * the next loop iteration, and a client that reads nothing pauses it.
 * Read only while the answers fit and the line buffer has room.
 */
static void control_client_update_events(struct control_client *c)
{
	bool pending = control_client_pending(c);
	GIOCondition ev = c->out->len || pending ? G_IO_OUT : 0;

	if (c->eof && !c->out->len && !pending) {
		control_client_close(c);
		return;
	}
	if (!c->eof && c->out->len < CONTROL_OUTPUT_MAX && c->in_len < sizeof(c->in))
		ev |= G_IO_IN;
	fdsource_set_events(c->slot.src, ev);
}

static gboolean control_on_client(int fd, GIOCondition ready, void *opaque)
{
	struct control_client *c = opaque;
	int budget = CONTROL_LINES_PER_TURN;
	ssize_t n;

	if (ready & G_IO_OUT && !control_client_flush(c))
		return G_SOURCE_CONTINUE;
	/* Lines read earlier waited for room or for the budget: answer them first. */
	control_client_handle_lines(c, &budget);
	if ((ready & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && !c->eof &&
	    c->out->len < CONTROL_OUTPUT_MAX && c->in_len < sizeof(c->in)) {
		n = read(fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			control_client_close(c);
			return G_SOURCE_CONTINUE;
		}
		if (n == 0)
			c->eof = true;
		if (n > 0)
			c->in_len += (size_t)n;
		control_client_handle_lines(c, &budget);
		if (c->in_len == sizeof(c->in) && !memchr(c->in, '\n', c->in_len)) {
			control_error(c->out, "line longer than %d bytes", CONTROL_LINE_MAX);
			control_client_flush(c);
			control_client_close(c);
			return G_SOURCE_CONTINUE;
		}
	}
	if (control_client_flush(c))
		control_client_update_events(c);
	return G_SOURCE_CONTINUE;
}

static void control_client_open(struct client_slot *slot, void *opaque)
{
	struct control_client *c = container_of(slot, struct control_client, slot);

	(void)opaque;
	c->in_len = 0;
	c->eof = false;
	c->last_us = g_get_monotonic_time();
	c->out = g_string_new(NULL);
	slot->src = fdsource_new(slot->fd, G_IO_IN, control_on_client, c);
}

/* Every slot busy: the client is told so before it is closed. */
static void control_client_refuse(int conn, void *opaque)
{
	static const char busy[] = "{\"error\": {\"desc\": \"too many control clients\"}}\n";

	(void)opaque;
	(void)!send(conn, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/*
 * Every slot busy: the client idle longest goes if it has been idle for
 * CONTROL_EVICT_IDLE_SECONDS, so that clients that went silent cannot keep
 * the launcher out.  Only a request served (answered without an error)
 * counts as activity: eight clients sending an empty line, a request's
 * next byte or a line of garbage every few seconds would otherwise hold
 * every slot for ever.  A client reading a long answer is not active by
 * that alone either.
 */
static bool control_evict(void *opaque)
{
	struct control_server *cs = opaque;
	struct control_client *idlest = NULL;
	int64_t idle;

	for (int i = 0; i < CONTROL_CLIENTS_MAX; i++) {
		struct control_client *c = &cs->clients[i];

		if (c->slot.fd >= 0 && (!idlest || c->last_us < idlest->last_us))
			idlest = c;
	}
	if (!idlest)
		return false;
	idle = g_get_monotonic_time() - idlest->last_us;
	if (idle < CONTROL_EVICT_IDLE_SECONDS * G_USEC_PER_SEC)
		return false;
	g_message("control: a client idle for %" G_GINT64_FORMAT " s closed to make room for a new one",
		  idle / G_USEC_PER_SEC);
	cs->evicted++;
	control_client_close(idlest);
	return true;
}

static gboolean control_on_accept(int fd, GIOCondition ready, void *opaque)
{
	static const struct client_slots_ops ops = { .open = control_client_open,
						     .refuse = control_client_refuse,
						     .evict = control_evict };
	struct control_server *cs = opaque;

	(void)ready;
	if (client_slots_accept(&CLIENT_SLOTS(cs->clients, slot), fd, &ops, cs))
		client_backoff_start(&cs->backoff);
	return G_SOURCE_CONTINUE;
}

int control_start(const char *path, struct daemon *d, struct control_server **out)
{
	struct control_server *cs;
	int fd, ret;

	/* A live daemon answers; a stale socket from a dead one is replaced; mode 0600. */
	ret = unixsock_listen(path, CONTROL_CLIENTS_MAX, true, &fd);
	if (ret)
		return ret;

	cs = g_new0(struct control_server, 1);
	cs->d = d;
	cs->path = g_strdup(path);
	cs->fd = fd;
	client_slots_init(&CLIENT_SLOTS(cs->clients, slot));
	for (int i = 0; i < CONTROL_CLIENTS_MAX; i++)
		cs->clients[i].cs = cs;
	cs->src = fdsource_new(cs->fd, G_IO_IN, control_on_accept, cs);
	cs->backoff.listener = cs->src;
	*out = cs;
	return 0;
}

size_t control_output_peak(const struct control_server *cs)
{
	return cs ? cs->peak_output : 0;
}

struct client_slots_stats control_client_stats(const struct control_server *cs)
{
	if (!cs)
		return (struct client_slots_stats){ 0 };
	return (struct client_slots_stats){ .evicted = cs->evicted, .backoffs = cs->backoff.count };
}

void control_stop(struct control_server *cs)
{
	if (!cs)
		return;
	for (int i = 0; i < CONTROL_CLIENTS_MAX; i++)
		control_client_close(&cs->clients[i]);
	client_backoff_stop(&cs->backoff);
	fdsource_clear(&cs->src);
	close(cs->fd);
	unlink(cs->path);
	g_free(cs->path);
	g_free(cs);
}
