/* test_control.c - in-process tests of the control socket: forwards at runtime, flows, errors. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cmocka.h>
#include <glib.h>

#include "common/json.h"
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
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
