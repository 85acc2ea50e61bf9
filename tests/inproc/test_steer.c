/* test_steer.c - in-process proof of outbound steering: header, payload, replies, resets. */

/*
 * A listener on 127.0.0.1 plays the sidecar (--outbound-proxy).  The test
 * plays QEMU with synthetic guest frames to destinations in 198.18.0.0/15;
 * nothing ever connects there, because every such flow is steered to the
 * local listener.  Each step of the design (docs/ARCHITECTURE.md) is checked:
 * the SYN reaches the sidecar, the PROXY header comes first and carries the
 * original destination, payload follows, replies reach the guest as from
 * the original destination with valid checksums, and a refused or forbidden
 * connection gets a reset at once.
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

#include "common/tcpcc.h"
#include "proxy-bridge/proxy_proto.h"
#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"

#define GUEST "10.0.2.15"
#define SIDECAR_SOURCE "198.18.0.2"

struct steer {
	struct inproc *f;
	int sidecar;               /* listening socket, or -1 */
	uint16_t sidecar_port;
	char proxy_arg[32];
};

static struct steer *steer_start(bool listening, const char *version)
{
	struct steer *s = g_new0(struct steer, 1);
	/* libslirp's path (test_ksteer.c has the kernel's, the default where it can be set up). */
	const char *args[] = { "--outbound-proxy", s->proxy_arg, "--proxy-source", SIDECAR_SOURCE,
			       "--outbound-proxy-protocol", version, "--steer-stack", "slirp", NULL };

	s->sidecar = inproc_sidecar_listen(&s->sidecar_port, listening);
	snprintf(s->proxy_arg, sizeof(s->proxy_arg), "127.0.0.1:%u", s->sidecar_port);
	s->f = inproc_start(args);
	inproc_arp_gateway(s->f);
	return s;
}

static int setup_v2(void **state)
{
	*state = steer_start(true, "v2");
	return 0;
}

static int setup_v1(void **state)
{
	*state = steer_start(true, "v1");
	return 0;
}

static int setup_absent(void **state)
{
	*state = steer_start(false, "v2");
	return 0;
}

static int teardown(void **state)
{
	struct steer *s = *state;

	inproc_stop(s->f);
	if (s->sidecar >= 0)
		close(s->sidecar);
	g_free(s);
	return 0;
}

static void guest_syn(struct inproc *f, const char *dst, uint16_t sport, uint16_t dport,
		      uint32_t isn)
{
	uint8_t fr[256];
	size_t len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(GUEST), inproc_ip(dst), sport, dport,
			     isn, 0, 0x02, NULL, 0);

	inproc_send(f, fr, len);
}

/* SYN to D:P -> the sidecar gets the header then the payload; replies come back as from D:P. */
static void test_steer_header_payload_reply(void **state)
{
	struct steer *s = *state;
	struct inproc *f = s->f;
	uint8_t fr[2048], rx[2048], buf[16];
	struct pkt_ipv4_view v;
	uint32_t server_isn;
	size_t len;
	int conn;

	guest_syn(f, "198.18.0.1", 40000, 5001, 1000);
	conn = inproc_accept(s->sidecar);
	inproc_expect_v2_header(conn, SIDECAR_SOURCE, "198.18.0.1", 40000, 5001);

	/* The guest's SYN is answered only now, as from the original destination. */
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 40000, 0x12, &v);
	assert_int_equal(inproc_be32(v.l4 + 8), 1001);
	server_isn = inproc_be32(v.l4 + 4);

	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(GUEST), inproc_ip("198.18.0.1"), 40000, 5001,
		      1001, server_isn + 1, 0x18, "hello", 5);
	inproc_send(f, fr, len);
	inproc_read_exact(conn, buf, 5);
	assert_memory_equal(buf, "hello", 5);

	assert_int_equal(write(conn, "world", 5), 5);
	for (;;) {
		inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 40000, 0x10, &v);
		if (v.l4_len > (size_t)(v.l4[12] >> 4) * 4)
			break; /* skip pure ACKs */
	}
	assert_memory_equal(v.l4 + (v.l4[12] >> 4) * 4, "world", 5);

	assert_int_equal(f->d.br ? bridge_stats(f->d.br)->flows_steered : 0, 1);
	assert_int_equal(bridge_stats(f->d.br)->headers_written, 1);
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_OPEN), 1);
	close(conn);
}

/*
 * libslirp's socket to the sidecar does not pace (common/tcpcc.h): with
 * the namespace's default at reno it must say cubic, which only the
 * bridge's tcpcc_set_unpaced() before libslirp's connect() gives it.
 */
static void test_sidecar_leg_unpaced(void **state)
{
	struct steer *s = *state;
	char old[32];
	int conn;

	inproc_require_cc(TCPCC_UNPACED);
	inproc_set_default_cc("reno", old, sizeof(old));
	guest_syn(s->f, "198.18.0.1", 40010, 5001, 1000);
	conn = inproc_accept(s->sidecar);
	inproc_set_default_cc(old, NULL, 0);
	inproc_expect_v2_header(conn, SIDECAR_SOURCE, "198.18.0.1", 40010, 5001);
	inproc_expect_cc(inproc_daemon_peer_fd(s->sidecar, conn), TCPCC_UNPACED);
	close(conn);
}

/* One guest source port towards two destinations at once: two flows, two headers. */
static void test_same_source_port_two_destinations(void **state)
{
	struct steer *s = *state;
	struct inproc *f = s->f;
	uint8_t rx[2048];
	struct pkt_ipv4_view v;
	int c1, c2;

	guest_syn(f, "198.18.0.1", 41000, 80, 7000);
	c1 = inproc_accept(s->sidecar);
	inproc_expect_v2_header(c1, SIDECAR_SOURCE, "198.18.0.1", 41000, 80);
	guest_syn(f, "198.18.0.9", 41000, 443, 9000);
	c2 = inproc_accept(s->sidecar);
	inproc_expect_v2_header(c2, SIDECAR_SOURCE, "198.18.0.9", 41000, 443);

	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.9", 443, 41000, 0x12, &v);
	assert_int_equal(inproc_be32(v.l4 + 8), 9001);
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_OPEN), 2);
	close(c1);
	close(c2);
}

/*
 * An ICMP error from the guest about a steered flow's packet: libslirp frees
 * it unread (slirp quirk guest_icmp_errors_freed), so the bridge passes it
 * on untranslated, and the flow goes on.
 */
static void test_guest_icmp_error_not_rewritten(void **state)
{
	struct steer *s = *state;
	struct inproc *f = s->f;
	uint8_t fr[256], quote[28], rx[2048], *icmp;
	struct pkt_ipv4_view v;
	uint64_t consumed;
	uint16_t sum;
	size_t len;
	int conn;

	guest_syn(f, "198.18.0.1", 42000, 5001, 3000);
	conn = inproc_accept(s->sidecar);
	inproc_expect_v2_header(conn, SIDECAR_SOURCE, "198.18.0.1", 42000, 5001);
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 42000, 0x12, &v);

	/* "Port unreachable", quoting a segment from D:P to the guest. */
	pkt_tcp(fr, pkt_guest_mac, inproc_ip("198.18.0.1"), inproc_ip(GUEST), 5001, 42000, 1, 0,
		0x10, NULL, 0);
	memcpy(quote, fr + PKT_ETH_HLEN, sizeof(quote));
	len = pkt_icmp_echo(fr, pkt_broadcast_mac, inproc_ip(GUEST), inproc_ip("198.18.0.1"), 0, 0,
			    quote, sizeof(quote));
	icmp = fr + PKT_ETH_HLEN + 20;
	icmp[0] = 3;
	icmp[1] = 3;
	icmp[2] = icmp[3] = 0;
	sum = (uint16_t)~pkt_csum_fold(pkt_csum_add(0, icmp, 8 + sizeof(quote)));
	icmp[2] = (uint8_t)(sum >> 8);
	icmp[3] = (uint8_t)sum;
	consumed = netstack_stats(f->d.ns)->hook_consumed;
	inproc_send(f, fr, len);
	inproc_pump(20);

	assert_int_equal(bridge_stats(f->d.br)->icmp_rewritten, 0);
	/* Handed to libslirp all the same, as before. */
	assert_int_equal(netstack_stats(f->d.ns)->hook_consumed, consumed);
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_OPEN), 1);
	close(conn);
}

static void test_v1_header(void **state)
{
	struct steer *s = *state;
	const char *want = "PROXY TCP4 " SIDECAR_SOURCE " 198.18.0.7 42000 8080\r\n";
	uint8_t buf[128];
	int conn;

	guest_syn(s->f, "198.18.0.7", 42000, 8080, 1);
	conn = inproc_accept(s->sidecar);
	inproc_read_exact(conn, buf, strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	close(conn);
}

/* Sidecar absent: the guest gets a RST from D:P acknowledging its SYN, well within a second. */
static void test_sidecar_absent_reset(void **state)
{
	struct steer *s = *state;
	struct inproc *f = s->f;
	uint8_t rx[2048];
	struct pkt_ipv4_view v;
	gint64 start = g_get_monotonic_time();

	guest_syn(f, "198.18.0.1", 43000, 5001, 5000);
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 43000, 0x14, &v);
	assert_int_equal(inproc_be32(v.l4 + 8), 5001);
	assert_true(g_get_monotonic_time() - start < G_USEC_PER_SEC);
	assert_int_equal(bridge_stats(f->d.br)->connect_failed, 1);
}

/*
 * The guest may not talk to the sidecar's ports on the gateway: immediate RST,
 * counted (as host loopback, off by default; test_trust.c covers the rest).
 */
static void test_sidecar_port_refused(void **state)
{
	struct steer *s = *state;
	struct inproc *f = s->f;
	uint8_t rx[2048];
	struct pkt_ipv4_view v;
	const uint16_t ports[] = { 15000, 15001, 15090, s->sidecar_port };

	for (size_t i = 0; i < G_N_ELEMENTS(ports); i++) {
		guest_syn(f, "10.0.2.2", 44000 + (uint16_t)i, ports[i], 77);
		inproc_expect_segment(f, rx, sizeof(rx), "10.0.2.2", ports[i], 44000 + (uint16_t)i, 0x14, &v);
		assert_int_equal(inproc_be32(v.l4 + 8), 78);
	}
	assert_int_equal(bridge_stats(f->d.br)->egress_refused[EGRESS_HOST_LOOPBACK],
			 G_N_ELEMENTS(ports));
	/* Nothing reached the sidecar. */
	inproc_pump(50);
	assert_int_equal(accept(s->sidecar, NULL, NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_steer_header_payload_reply, setup_v2, teardown),
		cmocka_unit_test_setup_teardown(test_sidecar_leg_unpaced, setup_v2, teardown),
		cmocka_unit_test_setup_teardown(test_same_source_port_two_destinations, setup_v2,
						teardown),
		cmocka_unit_test_setup_teardown(test_guest_icmp_error_not_rewritten, setup_v2,
						teardown),
		cmocka_unit_test_setup_teardown(test_v1_header, setup_v1, teardown),
		cmocka_unit_test_setup_teardown(test_sidecar_absent_reset, setup_absent, teardown),
		cmocka_unit_test_setup_teardown(test_sidecar_port_refused, setup_v2, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
