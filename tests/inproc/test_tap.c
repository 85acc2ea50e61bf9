/* test_tap.c - the tap backend against a real tap device: a vanished device ends it cleanly. */

/*
 * The test runs in its own network namespace (tests/lib/testns.c) and opens
 * a tap there through tap_backend_new(), as the daemon does.  Checked:
 *   - frames written reach the device and frames sent into it come back as
 *     rx_frame() calls;
 *   - a device that is down refuses writes (EIO): a counted drop, no
 *     congestion (the kernel never refuses a tap write for lack of buffer:
 *     the receive path orphans each skb at once, see tap.c);
 *   - a device deleted under the backend ends it with one call of
 *     cb->failed(), no busy loop (CPU time measured while the loop runs) and
 *     counted drops afterwards.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/resource.h>

#include <cmocka.h>
#include <glib.h>

#include "backend/backend.h"
#include "tests/lib/pkt.h"
#include "tests/lib/testns.h"

#define TAP_NAME "mstap0"

struct tapfix {
	struct backend *be;
	unsigned int failed;
	unsigned int congested_calls;
	unsigned int rx;
};

static void on_rx(uint8_t *frame, size_t len, const struct frame_meta *meta, void *opaque)
{
	struct tapfix *t = opaque;

	(void)frame;
	(void)len;
	assert_null(meta);
	t->rx++;
}

static void on_congested(bool congested, void *opaque)
{
	struct tapfix *t = opaque;

	(void)congested;
	t->congested_calls++;
}

static void on_failed(const char *why, void *opaque)
{
	struct tapfix *t = opaque;

	assert_non_null(strstr(why, TAP_NAME));
	t->failed++;
}

static const struct backend_callbacks callbacks = {
	.rx_frame = on_rx,
	.set_congested = on_congested,
	.failed = on_failed,
};

static void run(const char *cmd)
{
	int status = system(cmd);

	assert_int_equal(status, 0);
}

static int setup(void **state)
{
	struct tapfix *t = g_new0(struct tapfix, 1);

	testns_enter("test_tap");
	assert_int_equal(tap_backend_new(TAP_NAME, NULL, 1500, &callbacks, t, &t->be), 0);
	run("ip addr add 10.77.0.1/24 dev " TAP_NAME);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tapfix *t = *state;

	backend_free(t->be);
	(void)!system("ip link del " TAP_NAME " 2>/dev/null");
	g_free(t);
	return 0;
}

static void iterate_for(int ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	while (g_get_monotonic_time() < end) {
		g_main_context_iteration(NULL, FALSE);
		g_usleep(1000);
	}
}

/* An ARP request for the tap's own address, as the guest would send it. */
static size_t arp_for_tap(uint8_t *fr)
{
	struct in_addr sender, target;

	inet_pton(AF_INET, "10.77.0.2", &sender);
	inet_pton(AF_INET, "10.77.0.1", &target);
	return pkt_arp_request(fr, sender, target);
}

/* Frames both ways: the kernel answers our ARP request through the device. */
static void test_frames_both_ways(void **state)
{
	struct tapfix *t = *state;
	uint8_t fr[128];

	assert_int_equal(backend_send(t->be, fr, arp_for_tap(fr), NULL), 0);
	iterate_for(100);
	assert_true(t->rx >= 1);
	assert_int_equal(t->be->stats.tx_frames, 1);
	assert_int_equal(t->be->stats.attached, 1);
}

/* A device that is down: writes fail with EIO, a counted drop, and nothing congests. */
static void test_device_down(void **state)
{
	struct tapfix *t = *state;
	uint8_t fr[128];
	size_t len = arp_for_tap(fr);

	run("ip link set " TAP_NAME " down");
	assert_int_equal(backend_send(t->be, fr, len, NULL), -EIO);
	assert_int_equal(t->be->stats.tx_errors, 1);
	assert_int_equal(t->congested_calls, 0);
	run("ip link set " TAP_NAME " up");
	assert_int_equal(backend_send(t->be, fr, len, NULL), 0);
	assert_int_equal(t->failed, 0);
}

static gboolean on_timeout(gpointer data)
{
	*(bool *)data = true;
	return G_SOURCE_REMOVE;
}

/* Run the loop blocking for @ms; returns how many iterations it took (a spin takes many). */
static unsigned long iterate_blocking(int ms)
{
	bool done = false;
	unsigned long n = 0;

	g_timeout_add(ms, on_timeout, &done);
	while (!done && n < 1000000) {
		g_main_context_iteration(NULL, TRUE);
		n++;
	}
	return n;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The device deleted under the backend: one failure report, no spin, drops afterwards. */
static void test_device_deleted(void **state)
{
	struct tapfix *t = *state;
	uint8_t fr[128];
	double cpu;

	run("ip link del " TAP_NAME);
	iterate_for(200);
	assert_int_equal(t->failed, 1);
	assert_int_equal(t->be->stats.attached, 0);

	/* A second of the loop sleeps in poll: the dead descriptor is not polled any more. */
	cpu = cpu_seconds();
	assert_true(iterate_blocking(1000) < 100);
	assert_true(cpu_seconds() - cpu < 0.2);
	assert_int_equal(t->failed, 1);

	assert_int_equal(backend_send(t->be, fr, arp_for_tap(fr), NULL), -ENOTCONN);
	assert_int_equal(t->be->stats.tx_no_peer, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frames_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_deleted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
