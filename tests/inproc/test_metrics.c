/* test_metrics.c - in-process tests of the /metrics endpoint: exposition, errors, client cap. */

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

#include <cmocka.h>
#include <glib.h>

#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"

struct mx {
	struct inproc *f;
	uint16_t port;
	char arg[32];
};

static int setup(void **state)
{
	struct mx *m = g_new0(struct mx, 1);
	const char *args[] = { "--metrics", m->arg, NULL };

	m->port = inproc_free_port();
	snprintf(m->arg, sizeof(m->arg), "127.0.0.1:%u", m->port);
	m->f = inproc_start(args);
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	struct mx *m = *state;

	inproc_stop(m->f);
	g_free(m);
	return 0;
}

/* Send @req, collect the whole response (until close) while pumping the daemon. */
static char *mx_request(struct mx *m, const char *req)
{
	int fd = inproc_tcp_connect(m->port);
	GString *resp = g_string_new(NULL);
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	char buf[4096];

	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (g_get_monotonic_time() < end) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0)
			g_string_append_len(resp, buf, n);
		else if (n == 0)
			break;
		else
			inproc_pump(2);
	}
	close(fd);
	return g_string_free(resp, FALSE);
}

static void test_exposition(void **state)
{
	struct mx *m = *state;
	uint8_t fr[128] = { 0 };
	size_t len;
	g_autofree char *r = NULL;

	/* Two bad frames from the guest must show up as counted drops. */
	inproc_send(m->f, fr, 0);
	len = pkt_arp_request(fr, inproc_ip("10.0.2.15"), inproc_ip("10.0.2.2"));
	inproc_send(m->f, fr, 5);
	inproc_send(m->f, fr, len);
	inproc_pump(20);

	r = mx_request(m, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.0 200 OK\r\n"));
	assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
	assert_non_null(strstr(r, "# TYPE meshslirp_frames_total counter\n"));
	assert_non_null(strstr(r, "meshslirp_drops_total{reason=\"runt\"} 2\n"));
	assert_non_null(strstr(r, "meshslirp_frames_total{direction=\"from_guest\"} 1\n"));
	assert_non_null(strstr(r, "meshslirp_qemu_connections_total{result=\"accepted\"} 1\n"));
	assert_non_null(strstr(r, "meshslirp_guest_attached 1\n"));
	assert_non_null(strstr(r, "meshslirp_flows{state=\"open\"} 0\n"));
	assert_non_null(strstr(r, "meshslirp_inbound_refused_total{reason=\"header_timeout\"} 0\n"));
	/* Content-Length matches the body. */
	{
		const char *cl = strstr(r, "Content-Length: ");
		const char *body = strstr(r, "\r\n\r\n");

		assert_non_null(cl);
		assert_non_null(body);
		assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body + 4));
	}
}

static void test_errors(void **state)
{
	struct mx *m = *state;
	g_autofree char *a = mx_request(m, "GET /other HTTP/1.0\r\n\r\n");
	g_autofree char *b = mx_request(m, "POST /metrics HTTP/1.0\r\n\r\n");
	g_autofree char *c = mx_request(m, "\x01\x02 garbage\n\n");

	assert_non_null(strstr(a, " 404 "));
	assert_non_null(strstr(b, " 405 "));
	assert_non_null(strstr(c, " 405 "));
}

/* A request head longer than the limit is closed without an answer. */
static void test_oversized_request(void **state)
{
	struct mx *m = *state;
	char *big = g_malloc(8192);
	g_autofree char *r = NULL;

	memset(big, 'a', 8191);
	big[8191] = 0;
	memcpy(big, "GET /", 5);
	r = mx_request(m, big);
	assert_string_equal(r, "");
	g_free(big);
}

/* Silent clients beyond the cap are closed at once; the endpoint keeps serving. */
static void test_client_cap(void **state)
{
	struct mx *m = *state;
	int fds[METRICS_CLIENTS_MAX + 4];
	g_autofree char *r = NULL;
	char c;
	int closed = 0;

	for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
		fds[i] = inproc_tcp_connect(m->port);
	inproc_pump(50);
	for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
		closed += read(fds[i], &c, 1) == 0;
	assert_int_equal(closed, 4);
	for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
		close(fds[i]);
	inproc_pump(20);
	r = mx_request(m, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, " 200 OK"));
}

/*
 * Clients that trickle their request a byte at a time are never idle, yet
 * cannot keep a scraper out: with every slot busy, the newcomer takes the
 * slot of the client connected longest once that one has had
 * METRICS_EVICT_AFTER_MS, and the eviction is counted.
 */
static void test_slow_clients_evicted(void **state)
{
	struct mx *m = *state;
	int fds[METRICS_CLIENTS_MAX];
	g_autofree char *r = NULL;
	gint64 start = g_get_monotonic_time();
	char c;

	for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
		fds[i] = inproc_tcp_connect(m->port);
	while (g_get_monotonic_time() - start < (METRICS_EVICT_AFTER_MS + 300) * 1000) {
		for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
			assert_int_equal(write(fds[i], "G", 1), 1);
		inproc_pump(200);
	}
	r = mx_request(m, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, " 200 OK"));
	assert_non_null(strstr(r, "meshslirp_admin_clients_evicted_total{endpoint=\"metrics\"} 1\n"));
	assert_int_equal(read(fds[0], &c, 1), 0);
	for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
		close(fds[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exposition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_clients_evicted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
