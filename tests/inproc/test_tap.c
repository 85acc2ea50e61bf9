/* test_tap.c - the tap backend against a real tap device: offloads both ways, a vanished device. */

/*
 * The test runs in its own network namespace (tests/lib/testns.c) and opens
 * a tap there through tap_backend_new(), as the daemon does.  Checked:
 *   - frames written reach the device and frames sent into it come back as
 *     rx_frame() calls, with and without the virtio-net header;
 *   - with offloads, the kernel's partial checksums reach us as metadata and
 *     a TSO segment we write is one packet on the device;
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <glib.h>

#include "backend/backend.h"
#include "tests/lib/cputime.h"
#include "tests/lib/pkt.h"
#include "tests/lib/testns.h"

#define TAP_NAME "mstap0"

struct tapfix {
	struct backend *be;
	uint32_t offloads;
	unsigned int failed;
	unsigned int congested_calls;
	unsigned int rx;
	unsigned int rx_csum_partial;   /* UDP to 10.77.0.2 with a partial checksum */
	unsigned int rx_rst;            /* TCP RSTs from the kernel */
};

static void on_rx(uint8_t *frame, size_t len, const struct frame_meta *meta, void *opaque)
{
	struct tapfix *t = opaque;
	struct pkt_ipv4_view v;

	if (!t->offloads)
		assert_null(meta);
	t->rx++;
	if (pkt_parse_ipv4(frame, len, &v))
		return;
	if (v.proto == IPPROTO_UDP && meta && (meta->flags & FRAME_META_NEEDS_CSUM)) {
		/* Partial: completing it as offload.c would gives the right checksum. */
		assert_int_equal(meta->csum_start, 14 + 20);
		assert_int_equal(meta->csum_offset, 6);
		assert_false(v.l4_csum_ok);
		assert_int_equal(pkt_csum_complete(frame, len, meta->csum_start, meta->csum_offset), 0);
		assert_int_equal(pkt_parse_ipv4(frame, len, &v), 0);
		assert_true(v.l4_csum_ok);
		t->rx_csum_partial++;
	}
	if (v.proto == IPPROTO_TCP && (v.l4[13] & 0x04))
		t->rx_rst++;
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

static int setup_with(void **state, uint32_t offloads)
{
	struct tapfix *t = g_new0(struct tapfix, 1);

	testns_enter("test_tap");
	t->offloads = offloads;
	assert_int_equal(tap_backend_new(TAP_NAME, NULL, 1500, offloads, &callbacks, t, &t->be), 0);
	assert_int_equal(t->be->rx_offloads, offloads);
	assert_int_equal(t->be->tx_offloads, offloads);
	run("ip addr add 10.77.0.1/24 dev " TAP_NAME);
	run("ip link set " TAP_NAME " address 02:00:00:00:00:01");
	/* The "guest" side's MAC, so the kernel sends to 10.77.0.2 without asking. */
	run("ip neigh add 10.77.0.2 lladdr 52:54:00:12:34:56 dev " TAP_NAME);
	*state = t;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, BACKEND_OFFLOAD_CSUM | BACKEND_OFFLOAD_TSO4);
}

static int setup_plain(void **state)
{
	return setup_with(state, 0);
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

/* Packets the device received from us, from /proc/net/dev (this namespace's view). */
static unsigned long long tap_rx_packets(void)
{
	g_autofree char *text = NULL;
	unsigned long long bytes, packets;
	const char *line;

	assert_true(g_file_get_contents("/proc/net/dev", &text, NULL, NULL));
	line = strstr(text, TAP_NAME ":");
	assert_non_null(line);
	assert_int_equal(sscanf(line + strlen(TAP_NAME ":"), "%llu %llu", &bytes, &packets), 2);
	return packets;
}

/*
 * Offloads both ways, with the kernel on the device's other side: a UDP datagram it
 * sends comes with a partial checksum (TUN_F_CSUM), and a 20,000-byte TSO segment we
 * write to a closed port is taken whole (one packet on the device) and answered by one
 * RST.
 */
static void test_offloads(void **state)
{
	struct tapfix *t = *state;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
	static uint8_t fr[14 + 40 + 20000];
	uint8_t payload[20000] = { 0 };
	struct frame_meta m = { .flags = FRAME_META_NEEDS_CSUM, .gso_type = FRAME_GSO_TCPV4,
				.hdr_len = 14 + 40, .gso_size = 1460, .csum_start = 14 + 20,
				.csum_offset = 16 };
	struct in_addr src, dst;
	unsigned long long before;
	size_t len;
	int s;

	inet_pton(AF_INET, "10.77.0.2", &to.sin_addr);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(s >= 0);
	assert_int_equal(sendto(s, "ping", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
	close(s);
	iterate_for(100);
	assert_int_equal(t->rx_csum_partial, 1);

	inet_pton(AF_INET, "10.77.0.2", &src);
	inet_pton(AF_INET, "10.77.0.1", &dst);
	len = pkt_tcp(fr, pkt_broadcast_mac, src, dst, 40000, 9, 1, 0, 0x18, payload,
		      sizeof(payload));
	memcpy(fr, "\x02\x00\x00\x00\x00\x01", 6);
	before = tap_rx_packets();
	assert_int_equal(backend_send(t->be, fr, len, &m), 0);
	iterate_for(100);
	assert_int_equal(tap_rx_packets(), before + 1);
	assert_int_equal(t->rx_rst, 1);
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

/* The device deleted under the backend: one failure report, no spin, drops afterwards. */
static void test_device_deleted(void **state)
{
	struct tapfix *t = *state;
	uint8_t fr[128];
	int64_t cpu;

	run("ip link del " TAP_NAME);
	iterate_for(200);
	assert_int_equal(t->failed, 1);
	assert_int_equal(t->be->stats.attached, 0);

	/* A second of the loop sleeps in poll: the dead descriptor is not polled any more. */
	cpu = test_cpu_us();
	assert_true(iterate_blocking(1000) < 100);
	assert_true(test_cpu_share_below(cpu, 1000, 20));
	assert_int_equal(t->failed, 1);

	assert_int_equal(backend_send(t->be, fr, arp_for_tap(fr), NULL), -ENOTCONN);
	assert_int_equal(t->be->stats.tx_no_peer, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frames_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frames_both_ways, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_offloads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_deleted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
