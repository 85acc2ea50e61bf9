/* test_control.c - in-process tests of the control socket: forwards at runtime, flows, errors. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/un.h>

#include <cmocka.h>
#include <glib.h>

#include "common/json.h"
#include "daemon/options.h"
#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"

struct ctl {
	struct inproc *f;
	char *path;
	int fd;
	char buf[1 << 16];
	size_t len;
};

static int setup(void **state)
{
	struct ctl *c = g_new0(struct ctl, 1);
	g_autofree char *dir = g_dir_make_tmp("ms-ctl-XXXXXX", NULL);
	const char *args[] = { "--control", NULL, "--expose-address", "127.0.0.1", NULL };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;

	c->path = g_build_filename(dir, "ctl.sock", NULL);
	args[1] = c->path;
	c->f = inproc_start(args);
	assert_int_equal(stat(c->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	g_strlcpy(sa.sun_path, c->path, sizeof(sa.sun_path));
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctl *c = *state;
	g_autofree char *dir = g_path_get_dirname(c->path);

	close(c->fd);
	inproc_stop(c->f);
	/* The daemon removes its control socket. */
	assert_int_equal(access(c->path, F_OK), -1);
	assert_int_equal(rmdir(dir), 0);
	g_free(c->path);
	g_free(c);
	return 0;
}

/* Send one line, return the answer line (without newline), parsed into @doc. */
static const char *ctl_call(struct ctl *c, const char *req, struct json_doc *doc)
{
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	char *nl;

	assert_int_equal(write(c->fd, req, strlen(req)), (ssize_t)strlen(req));
	assert_int_equal(write(c->fd, "\n", 1), 1);
	while (!(nl = memchr(c->buf, '\n', c->len)) && g_get_monotonic_time() < end) {
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);

		if (n > 0)
			c->len += (size_t)n;
		else
			inproc_pump(2);
	}
	assert_non_null(nl);
	*nl = 0;
	if (doc)
		assert_int_equal(json_parse(doc, c->buf, (size_t)(nl - c->buf)), 0);
	{
		static char line[1 << 16];

		g_strlcpy(line, c->buf, sizeof(line));
		memmove(c->buf, nl + 1, c->len - (size_t)(nl - c->buf) - 1);
		c->len -= (size_t)(nl - c->buf) + 1;
		return line;
	}
}

static bool is_syn_to_81(const uint8_t *fr, size_t len, void *arg)
{
	struct pkt_ipv4_view v;

	(void)arg;
	return !pkt_parse_ipv4(fr, len, &v) && v.proto == IPPROTO_TCP &&
	       (v.l4[2] << 8 | v.l4[3]) == 81 && (v.l4[13] & 0x12) == 0x02;
}

/* add -> a client reaches the guest; list shows it; remove -> the port is closed. */
static void test_hostfwd_lifecycle(void **state)
{
	struct ctl *c = *state;
	struct json_doc *doc = g_new(struct json_doc, 1);
	uint16_t port = inproc_free_port();
	g_autofree char *req = g_strdup_printf("{\"execute\": \"add_hostfwd\", \"arguments\": "
					       "{\"proto\": \"tcp\", \"host_port\": %u, \"guest_port\": 81}}",
					       port);
	const struct json_node *ret, *e;
	uint8_t rx[2048];
	int fd, err = 0;
	socklen_t elen = sizeof(err);

	inproc_arp_gateway(c->f);
	ctl_call(c, req, doc);
	ret = json_get(doc, &doc->nodes[0], "return");
	assert_non_null(ret);
	assert_int_equal(json_get(doc, ret, "id")->num, port);

	fd = inproc_tcp_connect(port);
	assert_true(fd >= 0);
	assert_true(inproc_recv_match(c->f, rx, sizeof(rx), is_syn_to_81, NULL) > 0);
	close(fd);

	ctl_call(c, "{\"execute\": \"list_hostfwd\"}", doc);
	ret = json_get(doc, &doc->nodes[0], "return");
	e = json_get(doc, ret, "entries");
	assert_int_equal(e->type, JSON_ARRAY);
	e = &doc->nodes[e->first_child];
	assert_int_equal(json_get(doc, e, "host_port")->num, port);
	assert_int_equal(json_get(doc, e, "guest_port")->num, 81);
	assert_string_equal(json_get(doc, e, "guest_addr")->str, "10.0.2.15");

	g_free(req);
	req = g_strdup_printf("{\"execute\": \"remove_hostfwd\", \"arguments\": {\"id\": %u}}", port);
	ctl_call(c, req, doc);
	assert_non_null(json_get(doc, &doc->nodes[0], "return"));
	fd = inproc_tcp_connect(port);
	if (fd >= 0) {
		inproc_pump(20);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		close(fd);
		assert_int_equal(err, ECONNREFUSED);
	} else {
		assert_int_equal(fd, -ECONNREFUSED);
	}
	g_free(doc);
}

static void test_list_flows(void **state)
{
	struct ctl *c = *state;
	struct json_doc *doc = g_new(struct json_doc, 1);
	const struct json_node *flows;

	ctl_call(c, "{\"execute\": \"list_flows\"}", doc);
	flows = json_get(doc, json_get(doc, &doc->nodes[0], "return"), "flows");
	assert_non_null(flows);
	assert_int_equal(flows->type, JSON_ARRAY);
	g_free(doc);
}

#define MANY_FLOWS 700

/* @n UDP conversations from the guest to a world address: @n flows in the table. */
static void make_udp_flows(struct ctl *c, int n)
{
	uint8_t fr[256];

	inproc_arp_gateway(c->f);
	for (int i = 0; i < n; i++) {
		inproc_send(c->f, fr, pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
					      inproc_ip("198.18.7.7"), (uint16_t)(20000 + i), 9, "x", 1));
		if (i % 64 == 63)
			inproc_pump(5);
	}
	inproc_pump(50);
	assert_int_equal(bridge_udp_flow_count(c->f->d.br), (size_t)n);
}

/* How often @needle occurs in @s. */
static size_t count_of(const char *s, const char *needle)
{
	size_t n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/*
 * Pages: offset and limit walk the table exactly once; next_offset says where
 * to go on.  (Answers are read with string matching: the daemon's own JSON
 * parser is sized for requests.)
 */
static void test_list_flows_pages(void **state)
{
	struct ctl *c = *state;
	int64_t offset = 0, seen = 0;

	make_udp_flows(c, 250);
	for (int page = 0; page < 10 && offset >= 0; page++) {
		g_autofree char *req = g_strdup_printf("{\"execute\": \"list_flows\", \"arguments\": "
						       "{\"offset\": %" G_GINT64_FORMAT ", \"limit\": 100}}",
						       offset);
		const char *line = ctl_call(c, req, NULL), *next;
		size_t n = count_of(line, "\"kind\": ");

		assert_non_null(strstr(line, "\"total\": 250,"));
		assert_non_null(strstr(line, "\"kind\": \"direct\", \"path\": \"slirp\", "
					     "\"proto\": \"udp\""));
		assert_int_equal(n, page < 2 ? 100 : 50);
		seen += (int64_t)n;
		next = strstr(line, "\"next_offset\": ");
		assert_non_null(next);
		next += strlen("\"next_offset\": ");
		offset = g_str_has_prefix(next, "null") ? -1 : g_ascii_strtoll(next, NULL, 10);
	}
	assert_int_equal(seen, 250);
	assert_non_null(strstr(ctl_call(c, "{\"execute\": \"list_flows\", \"arguments\": "
					"{\"limit\": 10001}}", NULL), "limit must be an integer"));
}

/*
 * A client pipelines 100 requests of ~120 KB answers each (12 MB) in one write
 * and reads nothing for a while: the daemon pauses it at its output bound
 * instead of queueing everything or dropping it, and every answer arrives
 * whole once the client reads.
 */
static void test_pipelined_requests_bounded(void **state)
{
	struct ctl *c = *state;
	GString *reqs = g_string_new(NULL);
	GString *in = g_string_new(NULL);
	gint64 end;
	int answers = 0;

	make_udp_flows(c, MANY_FLOWS);
	for (int i = 0; i < 100; i++)
		g_string_append(reqs, "{\"execute\": \"list_flows\"}\n");
	assert_true(reqs->len <= CONTROL_LINE_MAX);
	assert_int_equal(write(c->fd, reqs->str, reqs->len), (ssize_t)reqs->len);
	inproc_pump(300);
	end = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
	while (answers < 100 && g_get_monotonic_time() < end) {
		char buf[65536], *nl;
		ssize_t n = read(c->fd, buf, sizeof(buf));

		if (n == 0)
			fail_msg("the daemon dropped a client that pipelined requests");
		if (n < 0) {
			inproc_pump(1);
			continue;
		}
		g_string_append_len(in, buf, n);
		while ((nl = memchr(in->str, '\n', in->len))) {
			size_t len = (size_t)(nl - in->str);

			assert_true(len < CONTROL_ANSWER_MAX);
			assert_non_null(g_strstr_len(in->str, (gssize)len, "\"total\": 700"));
			g_string_erase(in, 0, (gssize)len + 1);
			answers++;
		}
	}
	assert_int_equal(answers, 100);
	/* Paused at the bound: never more than one answer beyond it. */
	assert_true(control_output_peak(c->f->d.control) > CONTROL_OUTPUT_MAX / 2);
	assert_true(control_output_peak(c->f->d.control) <= CONTROL_OUTPUT_MAX + CONTROL_ANSWER_MAX);
	g_string_free(reqs, TRUE);
	g_string_free(in, TRUE);
}

/* Every bad request gets a specific error and the connection stays usable. */
static void test_errors(void **state)
{
	static const struct { const char *req, *needle; } cases[] = {
		{ "not json", "bad JSON" },
		{ "[1,2]", "expected {\\\"execute\\\"" },
		{ "{\"execute\": \"format_disk\"}", "unknown command" },
		{ "{\"execute\": \"add_hostfwd\"}", "host_port must be an integer" },
		{ "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"udp\", \"host_port\": 1, \"guest_port\": 1}}",
		  "only proto" },
		{ "{\"execute\": \"add_hostfwd\", \"arguments\": {\"host_port\": 70000, \"guest_port\": 1}}",
		  "from 1 to 65535" },
		{ "{\"execute\": \"add_hostfwd\", \"arguments\": {\"host_addr\": \"0.0.0.0\", \"host_port\": 1, \"guest_port\": 1}}",
		  "--expose-address" },
		{ "{\"execute\": \"add_hostfwd\", \"arguments\": 5}", "must be an object" },
		{ "{\"execute\": \"remove_hostfwd\", \"arguments\": {\"id\": 4242}}", "no forward with id 4242" },
	};
	struct ctl *c = *state;

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const char *line = ctl_call(c, cases[i].req, NULL);

		if (!g_str_has_prefix(line, "{\"error\": {\"desc\": ") || !strstr(line, cases[i].needle))
			fail_msg("'%s' answered '%s'", cases[i].req, line);
	}
	/* Still serving after all of that. */
	assert_non_null(strstr(ctl_call(c, "{\"execute\": \"list_hostfwd\"}", NULL), "\"return\""));
}

/* A reader on another thread: counts answer lines until @want or its deadline. */
struct reader {
	int fd;
	int want;
	int answers;
	size_t bytes;
	volatile int done;
};

static gpointer reader_run(gpointer data)
{
	struct reader *r = data;
	gint64 end = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
	static char buf[1 << 16];

	while (r->answers < r->want && g_get_monotonic_time() < end) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(r->fd, buf, sizeof(buf));
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			r->answers += buf[i] == '\n';
		r->bytes += (size_t)MAX(n, 0);
	}
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A client that reads its answers as fast as they come: the queue drains
 * between requests, and the requests still waiting in the line buffer must
 * be answered all the same, without the client sending anything more (it
 * was left waiting for ever when a flush emptied the queue).
 */
static void test_pipelined_prompt_reader(void **state)
{
	struct ctl *c = *state;
	struct reader r = { .fd = c->fd, .want = 100 };
	GString *reqs = g_string_new(NULL);
	gint64 end;
	GThread *t;

	make_udp_flows(c, MANY_FLOWS);
	for (int i = 0; i < 100; i++)
		g_string_append(reqs, "{\"execute\": \"list_flows\"}\n");
	t = g_thread_new("reader", reader_run, &r);
	assert_int_equal(write(c->fd, reqs->str, reqs->len), (ssize_t)reqs->len);
	end = g_get_monotonic_time() + 25 * G_USEC_PER_SEC;
	while (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE) && g_get_monotonic_time() < end)
		inproc_pump(1);
	g_thread_join(t);
	assert_int_equal(r.answers, 100);
	g_string_free(reqs, TRUE);
}

/*
 * Work per turn is bounded: a read holding many requests is answered a few
 * per loop iteration, so list_flows over a big table cannot hold the data
 * path for the whole read; the rest follow on the next iterations.
 */
static void test_lines_per_turn(void **state)
{
	struct ctl *c = *state;
	GString *reqs = g_string_new(NULL);
	char buf[1 << 16];
	size_t answers = 0;
	ssize_t n;

	for (int i = 0; i < 40; i++)
		g_string_append(reqs, "{\"execute\": \"list_hostfwd\"}\n");
	assert_int_equal(write(c->fd, reqs->str, reqs->len), (ssize_t)reqs->len);
	/* One iteration at a time (a higher-priority source may take the first ones). */
	n = -1;
	for (int i = 0; i < 200 && n <= 0; i++) {
		g_main_context_iteration(NULL, FALSE);
		n = read(c->fd, buf, sizeof(buf));
	}
	assert_true(n > 0);
	for (ssize_t i = 0; i < n; i++)
		answers += buf[i] == '\n';
	assert_int_equal(answers, CONTROL_LINES_PER_TURN);
	/* The rest come on their own. */
	for (int i = 0; i < 200 && answers < 40; i++) {
		g_main_context_iteration(NULL, FALSE);
		n = read(c->fd, buf, sizeof(buf));
		for (ssize_t k = 0; k < n; k++)
			answers += buf[k] == '\n';
	}
	assert_int_equal(answers, 40);
	g_string_free(reqs, TRUE);
}

/* A client that sends its requests and closes its side (echo | socat) gets every answer, then EOF. */
static void test_half_close(void **state)
{
	struct ctl *c = *state;
	GString *reqs = g_string_new(NULL);
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	size_t answers = 0;
	ssize_t n = 1;

	for (int i = 0; i < 20; i++)
		g_string_append(reqs, "{\"execute\": \"list_hostfwd\"}\n");
	assert_int_equal(write(c->fd, reqs->str, reqs->len), (ssize_t)reqs->len);
	assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
	while (n != 0 && g_get_monotonic_time() < end) {
		n = read(c->fd, c->buf, sizeof(c->buf));
		for (ssize_t i = 0; i < n; i++)
			answers += c->buf[i] == '\n';
		if (n < 0)
			inproc_pump(2);
	}
	assert_int_equal(n, 0);
	assert_int_equal(answers, 20);
	g_string_free(reqs, TRUE);
}

static int ctl_dial(const struct ctl *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	g_strlcpy(sa.sun_path, c->path, sizeof(sa.sun_path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Read from @fd until @needle arrives or EOF (INPROC_WAIT_MS): true if it arrived. */
static bool ctl_await(int fd, const char *needle)
{
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	char buf[4096];
	size_t len = 0;

	while (g_get_monotonic_time() < end) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n == 0)
			return false;
		if (n < 0) {
			inproc_pump(2);
			continue;
		}
		len += (size_t)n;
		buf[len] = 0;
		if (strstr(buf, needle))
			return true;
	}
	return false;
}

/*
 * Clients that connect and go silent cannot keep the launcher out: with
 * every slot busy a newcomer is refused at first, and once the idlest has
 * been idle for CONTROL_EVICT_IDLE_SECONDS it takes that one's slot.
 */
static void test_evict_idle(void **state)
{
	struct ctl *c = *state;
	int silent[CONTROL_CLIENTS_MAX - 1], late;
	char b;

	for (int i = 0; i < CONTROL_CLIENTS_MAX - 1; i++)
		silent[i] = ctl_dial(c);
	inproc_pump(20);
	late = ctl_dial(c);
	assert_true(ctl_await(late, "too many control clients"));
	close(late);
	/* The setup's client speaks now and then: it is not the idlest. */
	inproc_pump(CONTROL_EVICT_IDLE_SECONDS * 1000 / 2);
	assert_non_null(strstr(ctl_call(c, "{\"execute\": \"list_hostfwd\"}", NULL), "\"return\""));
	inproc_pump(CONTROL_EVICT_IDLE_SECONDS * 1000 / 2 + 500);
	late = ctl_dial(c);
	assert_int_equal(write(late, "{\"execute\": \"list_hostfwd\"}\n", 29), 29);
	assert_true(ctl_await(late, "\"return\""));
	assert_int_equal(control_client_stats(c->f->d.control).evicted, 1);
	/* One silent client went, the one connected first; the setup's is still served. */
	assert_int_equal(read(silent[0], &b, 1), 0);
	assert_non_null(strstr(ctl_call(c, "{\"execute\": \"list_hostfwd\"}", NULL), "\"return\""));
	for (int i = 0; i < CONTROL_CLIENTS_MAX - 1; i++)
		close(silent[i]);
	close(late);
}

/*
 * Bytes that make no request served do not keep a slot: clients sending
 * @bytes[i % 2] every second are as idle as silent ones, and a newcomer
 * takes a slot once one of them has gone CONTROL_EVICT_IDLE_SECONDS
 * without a request served.
 */
static void check_evict_trickling(struct ctl *c, const char *const bytes[2])
{
	int trickle[CONTROL_CLIENTS_MAX - 1], late, closed = 0;

	for (int i = 0; i < CONTROL_CLIENTS_MAX - 1; i++)
		trickle[i] = ctl_dial(c);
	for (int s = 0; s <= CONTROL_EVICT_IDLE_SECONDS; s++) {
		for (int i = 0; i < CONTROL_CLIENTS_MAX - 1; i++) {
			size_t n = strlen(bytes[i % 2]);

			assert_int_equal(write(trickle[i], bytes[i % 2], n), (ssize_t)n);
		}
		inproc_pump(1000);
		/* The setup's client is served each second: never the idlest. */
		assert_non_null(strstr(ctl_call(c, "{\"execute\": \"list_hostfwd\"}", NULL),
				       "\"return\""));
	}
	late = ctl_dial(c);
	assert_int_equal(write(late, "{\"execute\": \"list_hostfwd\"}\n", 29), 29);
	assert_true(ctl_await(late, "\"return\""));
	assert_int_equal(control_client_stats(c->f->d.control).evicted, 1);
	/* The one evicted reads its EOF (after any error answers it was sent). */
	for (int i = 0; i < CONTROL_CLIENTS_MAX - 1; i++) {
		char buf[4096];
		ssize_t n;

		while ((n = read(trickle[i], buf, sizeof(buf))) > 0)
			;
		closed += n == 0 || (n < 0 && errno == ECONNRESET);
	}
	assert_int_equal(closed, 1);
	for (int i = 0; i < CONTROL_CLIENTS_MAX - 1; i++)
		close(trickle[i]);
	close(late);
}

/* An empty line, or one more byte of a request that never ends. */
static void test_evict_trickling(void **state)
{
	static const char *const bytes[2] = { "\n", " " };

	check_evict_trickling(*state, bytes);
}

/* A line of garbage: answered with an error, which serves nothing. */
static void test_evict_garbage(void **state)
{
	static const char *const bytes[2] = { "x\n", "{}\n" };

	check_evict_trickling(*state, bytes);
}

/*
 * At most MS_EXPOSE_MAX ports exposed: each is a listener libslirp walks on
 * every loop turn.  One more is refused with the reason, and a port
 * removed makes room for the next.
 */
static void test_hostfwd_bound(void **state)
{
	struct ctl *c = *state;
	struct rlimit nofile;
	char req[160];

	if (!inproc_is_stream(c->f))
		skip(); /* the control socket's bound, whatever carries the guest: run once */
	inproc_raise_nofile(MS_EXPOSE_MAX + 1024, &nofile);
	for (int i = 0; i <= MS_EXPOSE_MAX; i++) {
		const char *answer;

		snprintf(req, sizeof(req), "{\"execute\": \"add_hostfwd\", \"arguments\": "
			 "{\"host_port\": %d, \"guest_port\": 80}}", 20000 + i);
		answer = ctl_call(c, req, NULL);
		if (i < MS_EXPOSE_MAX && !strstr(answer, "\"return\""))
			fail_msg("port %d of %d refused: %s", i + 1, MS_EXPOSE_MAX, answer);
		if (i == MS_EXPOSE_MAX && !strstr(answer, "at most 1024 ports can be exposed"))
			fail_msg("one port past the bound: %s", answer);
	}
	assert_non_null(strstr(ctl_call(c, "{\"execute\": \"remove_hostfwd\", \"arguments\": "
					"{\"id\": 20000}}", NULL), "\"return\""));
	assert_non_null(strstr(ctl_call(c, req, NULL), "\"return\""));
	for (int i = 0; i <= MS_EXPOSE_MAX; i++) {
		snprintf(req, sizeof(req), "{\"execute\": \"remove_hostfwd\", \"arguments\": "
			 "{\"id\": %d}}", 20000 + i);
		ctl_call(c, req, NULL);
	}
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &nofile), 0);
}

/* A line longer than the limit ends that client only. */
static void test_long_line(void **state)
{
	struct ctl *c = *state;
	char *big = g_malloc(CONTROL_LINE_MAX + 10);
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	ssize_t n = 1;

	memset(big, 'x', CONTROL_LINE_MAX + 10);
	assert_int_equal(write(c->fd, big, CONTROL_LINE_MAX + 10), CONTROL_LINE_MAX + 10);
	while (n != 0 && g_get_monotonic_time() < end) {
		n = read(c->fd, c->buf, sizeof(c->buf));
		if (n > 0)
			assert_non_null(strstr(c->buf, "line longer than"));
		if (n < 0)
			inproc_pump(2);
	}
	assert_int_equal(n, 0);
	g_free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hostfwd_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_flows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_flows_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_requests_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_prompt_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lines_per_turn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_trickling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostfwd_bound, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
