/* test_limits.c - in-process proof of the flow table's bounds, the guest-side drops and the timeouts. */

/*
 * The test plays QEMU with synthetic guest frames.  Direct flows go to the
 * gateway address, which libslirp maps to this host's loopback, where the
 * test listens (--allow-host-loopback); steered flows go to a local "sidecar".  Checked:
 *   - --max-flows bounds direct flows too: the flow past the limit gets a
 *     reset as from its destination and is counted;
 *   - closed flows in their grace period give their slots to new flows, so
 *     short connections are not capped at --max-flows per 10 s;
 *   - a SYN with a bad checksum, an IPv4 fragment and a lying IPv4 header
 *     are dropped before libslirp and counted; IP options are fine;
 *   - --connect-timeout: a sidecar whose accept queue is jammed never
 *     answers, and the guest gets a reset once the timeout passes; a guest
 *     that never ACKs the SYN|ACK is reset at both ends just as soon;
 *   - --tcp-idle-timeout: an idle connection is reset at both ends, with
 *     sequence numbers the guest accepts (the one it expects next);
 *   - a guest reopening an established tuple (after a reboot) gets a new
 *     connection at once, and the old one is reset at the far end;
 *   - a UDP entry lives as long as libslirp's socket for it, also where
 *     one guest port's socket serves two destinations.
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

#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"

#define GATEWAY "10.0.2.2"
/* Direct flows here go to the gateway: host loopback, which a non-mesh user turns on. */
#define LIMITS_HOST_LOOPBACK "--allow-host-loopback"
static const char *const limits_host_loopback[] = { LIMITS_HOST_LOOPBACK, NULL };
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

/* A TCP or UDP socket on 127.0.0.1:0 (listening with @backlog for TCP). */
static int local_socket(int type, int backlog, uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static size_t flows_in_table(struct inproc *f)
{
	size_t n = 0;

	for (int st = FLOW_FREE + 1; st < FLOW_STATE_COUNT; st++)
		n += bridge_flow_count(f->d.br, st);
	return n;
}

static size_t guest_tcp(uint8_t *fr, const char *dst, uint16_t sport, uint16_t dport,
			uint32_t seq, uint32_t ack, uint8_t flags, const char *data)
{
	return pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip(dst), sport, dport,
		       seq, ack, flags, data, data ? strlen(data) : 0);
}

/* Recompute the IPv4 header checksum after an edit. */
static void fix_ip_csum(uint8_t *ip)
{
	uint32_t sum = 0;
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;

	ip[10] = ip[11] = 0;
	for (size_t i = 0; i < ihl; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	ip[10] = (uint8_t)(~sum >> 8);
	ip[11] = (uint8_t)~sum;
}

/* No frame towards the guest from @sport to @dport within @ms. */
static void expect_silence(struct inproc *f, uint16_t sport, uint16_t dport, int ms)
{
	struct inproc_tcp_match m = { sport, dport, 0 };
	gint64 end = g_get_monotonic_time() + ms * 1000;
	uint8_t rx[2048];
	size_t len;

	while (g_get_monotonic_time() < end) {
		len = inproc_recv(f, rx, sizeof(rx), 20);
		assert_false(len && inproc_is_tcp(rx, len, &m));
	}
}

/*
 * The guest's side of the handshake with a direct flow to GATEWAY:@port, its
 * ACK carrying @data (or none); returns libslirp's ISN.
 */
static uint32_t guest_connect(struct inproc *f, uint16_t sport, uint16_t port, uint32_t isn,
			      const char *data)
{
	struct pkt_ipv4_view v;
	uint8_t fr[256], rx[2048];
	uint32_t stack_isn;

	inproc_send(f, fr, guest_tcp(fr, GATEWAY, sport, port, isn, 0, TH_SYN, NULL));
	inproc_expect_segment(f, rx, sizeof(rx), GATEWAY, port, sport, TH_SYN | TH_ACK, &v);
	stack_isn = inproc_be32(v.l4 + 4);
	inproc_send(f, fr, guest_tcp(fr, GATEWAY, sport, port, isn + 1, stack_isn + 1, TH_ACK, data));
	return stack_isn;
}

/* --max-flows 4: four direct connections open, the fifth is reset and counted. */
static void test_table_full_direct(void **state)
{
	const char *args[] = { "--max-flows", "4", LIMITS_HOST_LOOPBACK, NULL };
	struct inproc *f = inproc_start(args);
	struct pkt_ipv4_view v;
	uint8_t fr[256], rx[2048];
	uint16_t port;
	int lfd = local_socket(SOCK_STREAM, 64, &port);

	(void)state;
	inproc_arp_gateway(f);
	for (uint16_t i = 0; i < 4; i++) {
		inproc_send(f, fr, guest_tcp(fr, GATEWAY, 50000 + i, port, 1000, 0, TH_SYN, NULL));
		inproc_expect_segment(f, rx, sizeof(rx), GATEWAY, port, 50000 + i, TH_SYN | TH_ACK, &v);
	}
	assert_int_equal(flows_in_table(f), 4);
	assert_int_equal(bridge_stats(f->d.br)->flows_direct, 4);

	inproc_send(f, fr, guest_tcp(fr, GATEWAY, 50004, port, 7000, 0, TH_SYN, NULL));
	inproc_expect_segment(f, rx, sizeof(rx), GATEWAY, port, 50004, TH_RST | TH_ACK, &v);
	assert_int_equal(inproc_be32(v.l4 + 8), 7001);
	assert_int_equal(bridge_stats(f->d.br)->refused[BRIDGE_REFUSED_TABLE_FULL], 1);
	assert_int_equal(flows_in_table(f), 4);
	inproc_stop(f);
	close(lfd);
}

/* Bad checksum, fragment, lying header: dropped and counted; IP options pass. */
static void test_guest_drops(void **state)
{
	struct inproc *f = inproc_start(limits_host_loopback);
	const struct bridge_stats *bs = bridge_stats(f->d.br);
	struct pkt_ipv4_view v;
	uint8_t fr[256], rx[2048];
	uint16_t port, uport;
	int lfd = local_socket(SOCK_STREAM, 64, &port);
	int ufd = local_socket(SOCK_DGRAM, 0, &uport);
	size_t len;

	(void)state;
	inproc_arp_gateway(f);

	/* A SYN whose TCP checksum is wrong: no flow, no answer. */
	len = guest_tcp(fr, GATEWAY, 51000, port, 1, 0, TH_SYN, NULL);
	fr[14 + 20 + 16] ^= 0x55;
	inproc_send(f, fr, len);
	expect_silence(f, port, 51000, 300);
	assert_int_equal(bs->guest_dropped[BRIDGE_DROP_BAD_CHECKSUM], 1);
	assert_int_equal(flows_in_table(f), 0);

	/* A bad IP header checksum is as bad. */
	len = guest_tcp(fr, GATEWAY, 51001, port, 1, 0, TH_SYN, NULL);
	fr[14 + 10] ^= 0x01;
	inproc_send(f, fr, len);
	expect_silence(f, port, 51001, 100);
	assert_int_equal(bs->guest_dropped[BRIDGE_DROP_BAD_CHECKSUM], 2);

	/* First and last fragments of a UDP datagram. */
	len = pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip(GATEWAY), 5000,
		      uport, "fragment", 8);
	fr[14 + 6] = 0x20;
	fix_ip_csum(fr + 14);
	inproc_send(f, fr, len);
	fr[14 + 6] = 0x00;
	fr[14 + 7] = 0x10;
	fix_ip_csum(fr + 14);
	inproc_send(f, fr, len);
	inproc_pump(50);
	assert_int_equal(bs->guest_dropped[BRIDGE_DROP_FRAGMENT], 2);
	assert_int_equal(recv(ufd, rx, sizeof(rx), 0), -1);

	/* Total length beyond the frame. */
	len = guest_tcp(fr, GATEWAY, 51002, port, 1, 0, TH_SYN, NULL);
	fr[14 + 2] = 0x05;
	fix_ip_csum(fr + 14);
	inproc_send(f, fr, len);
	inproc_pump(50);
	assert_int_equal(bs->guest_dropped[BRIDGE_DROP_MALFORMED], 1);
	assert_int_equal(flows_in_table(f), 0);

	/* IP options (router alert) on a SYN: a normal connection. */
	len = guest_tcp(fr, GATEWAY, 51003, port, 1, 0, TH_SYN, NULL);
	memmove(fr + 14 + 24, fr + 14 + 20, len - 14 - 20);
	memcpy(fr + 14 + 20, "\x94\x04\x00\x00", 4);
	fr[14] = 0x46;
	fr[14 + 3] = (uint8_t)(fr[14 + 3] + 4);
	fix_ip_csum(fr + 14);
	inproc_send(f, fr, len + 4);
	inproc_expect_segment(f, rx, sizeof(rx), GATEWAY, port, 51003, TH_SYN | TH_ACK, &v);
	assert_int_equal(flows_in_table(f), 1);
	inproc_stop(f);
	close(lfd);
	close(ufd);
}

/* A sidecar that never answers: the guest gets a reset once --connect-timeout passes. */
static void test_connect_timeout(void **state)
{
	char proxy[32];
	const char *args[] = { "--outbound-proxy", proxy, "--proxy-source", "198.18.0.2",
			       "--connect-timeout", "300ms", "--steer-stack", "slirp", NULL };
	struct pkt_ipv4_view v;
	uint8_t fr[256], rx[2048];
	uint16_t port;
	int jammed = local_socket(SOCK_STREAM, 0, &port);
	int fill[3];
	struct inproc *f;
	gint64 start;

	(void)state;
	/* Backlog 0 holds one connection; with it queued, the kernel drops further SYNs. */
	for (size_t i = 0; i < G_N_ELEMENTS(fill); i++)
		fill[i] = inproc_tcp_connect(port);
	snprintf(proxy, sizeof(proxy), "127.0.0.1:%u", port);
	f = inproc_start(args);
	inproc_arp_gateway(f);

	start = g_get_monotonic_time();
	inproc_send(f, fr, guest_tcp(fr, "198.18.0.9", 52000, 80, 4000, 0, TH_SYN, NULL));
	inproc_pump(100);
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_CONNECTING), 1);
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.9", 80, 52000, TH_RST, &v);
	/* Not before the timeout; within it plus two ticks of the 1 s expiry timer and slack. */
	assert_true(g_get_monotonic_time() - start >= 300 * 1000);
	assert_true(g_get_monotonic_time() - start < 3000 * 1000);
	assert_int_equal(bridge_stats(f->d.br)->connect_timeouts, 1);
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_CONNECTING), 0);
	inproc_stop(f);
	for (size_t i = 0; i < G_N_ELEMENTS(fill); i++)
		if (fill[i] >= 0)
			close(fill[i]);
	close(jammed);
}

/* The deadline of the (only) flow in the table. */
static void flow_deadline(const struct flow *fl, void *opaque)
{
	*(int64_t *)opaque = fl->deadline_us;
}

/* A guest that never completes its handshake: both ends reset at --connect-timeout. */
static void test_handshake_timeout(void **state)
{
	char proxy[32];
	const char *args[] = { "--outbound-proxy", proxy, "--proxy-source", "198.18.0.2",
			       "--connect-timeout", "300ms", "--steer-stack", "slirp", NULL };
	struct pkt_ipv4_view v;
	uint8_t fr[256], rx[2048];
	uint16_t port;
	int lfd = local_socket(SOCK_STREAM, 64, &port);
	int conn = -1;
	struct inproc *f;
	gint64 start;

	(void)state;
	snprintf(proxy, sizeof(proxy), "127.0.0.1:%u", port);
	f = inproc_start(args);
	inproc_arp_gateway(f);
	start = g_get_monotonic_time();
	inproc_send(f, fr, guest_tcp(fr, "198.18.0.9", 54000, 80, 100, 0, TH_SYN, NULL));
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.9", 80, 54000, TH_SYN | TH_ACK, &v);
	conn = inproc_accept(lfd);
	/* The guest stays silent; libslirp's SYN|ACK retransmissions must not count as life. */
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.9", 80, 54000, TH_RST, &v);
	assert_true(g_get_monotonic_time() - start >= 300 * 1000);
	assert_true(g_get_monotonic_time() - start < 3000 * 1000);
	assert_int_equal(bridge_stats(f->d.br)->handshake_timeouts, 1);
	/* The sidecar got the header, then a reset. */
	inproc_expect_reset(conn);
	close(conn);
	inproc_stop(f);
	close(lfd);
}

/* An idle connection is reset at both ends, the guest's RST at exactly its rcv_nxt. */
static void test_tcp_idle_reset(void **state)
{
	const char *args[] = { "--tcp-idle-timeout", "1s", LIMITS_HOST_LOOPBACK, NULL };
	struct inproc *f = inproc_start(args);
	struct pkt_ipv4_view v;
	uint8_t fr[256], rx[2048];
	uint16_t port;
	int lfd = local_socket(SOCK_STREAM, 64, &port);
	int conn = -1;
	uint32_t stack_isn;
	gint64 end, start;
	int64_t deadline = 0, later = 0;
	ssize_t n = 0;
	char buf[16];

	(void)state;
	inproc_arp_gateway(f);
	stack_isn = guest_connect(f, 53000, port, 9000, "ping");
	conn = inproc_accept(lfd);
	end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	while (n <= 0 && g_get_monotonic_time() < end) {
		inproc_pump(5);
		n = recv(conn, buf, sizeof(buf), 0);
	}
	assert_int_equal(n, 4);
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_OPEN), 1);

	start = g_get_monotonic_time();
	inproc_expect_segment(f, rx, sizeof(rx), GATEWAY, port, 53000, TH_RST, &v);
	/* The timeout, plus up to two ticks of the 1 s expiry timer (whole seconds), plus slack. */
	assert_true(g_get_monotonic_time() - start >= 1000 * 1000);
	assert_true(g_get_monotonic_time() - start < 3500 * 1000);
	assert_int_equal(inproc_be32(v.l4 + 4), stack_isn + 1);  /* what the guest expects next */
	assert_int_equal(inproc_be32(v.l4 + 8), 9005);            /* all it sent, acknowledged */
	assert_int_equal(bridge_stats(f->d.br)->idle_resets, 1);

	/* The far end sees a reset too, not a FIN. */
	inproc_expect_reset(conn);
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_OPEN), 0);

	/* A late segment from the guest must not move the closed flow's end of grace. */
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_CLOSED), 1);
	bridge_foreach_flow(f->d.br, flow_deadline, &deadline);
	inproc_send(f, fr, guest_tcp(fr, GATEWAY, 53000, port, 9005, stack_isn + 1, TH_ACK, NULL));
	inproc_pump(20);
	bridge_foreach_flow(f->d.br, flow_deadline, &later);
	assert_true(later == deadline);
	close(conn);
	inproc_stop(f);
	close(lfd);
}

/*
 * The guest forgets an established connection (reboot) and opens the same
 * tuple again: the old connection is reset at the far end, the new SYN is
 * served at once as a new connection, and the guest gets no reset for it.
 */
static void test_reopened_tuple(void **state)
{
	struct inproc *f = inproc_start(limits_host_loopback);
	struct pkt_ipv4_view v;
	uint8_t fr[256], rx[2048];
	uint16_t port;
	int lfd = local_socket(SOCK_STREAM, 64, &port);
	int old = -1, fresh = -1;

	(void)state;
	inproc_arp_gateway(f);
	guest_connect(f, 55000, port, 1000, "old");
	old = inproc_accept(lfd);

	/* "Reboot": a SYN from the same port with a new ISN. */
	inproc_send(f, fr, guest_tcp(fr, GATEWAY, 55000, port, 777000, 0, TH_SYN, NULL));
	inproc_expect_segment(f, rx, sizeof(rx), GATEWAY, port, 55000, TH_SYN | TH_ACK, &v);
	assert_int_equal(inproc_be32(v.l4 + 8), 777001);
	assert_int_equal(bridge_stats(f->d.br)->stale_resets, 1);
	fresh = inproc_accept(lfd);
	/* The old connection was reset at the far end, after the bytes it had. */
	inproc_expect_reset(old);
	close(old);
	close(fresh);
	inproc_stop(f);
	close(lfd);
}

/* Whether the flow table holds a flow from guest port @sport in state @state. */
struct find_flow {
	uint16_t sport;
	enum flow_state state;
	bool found;
};

static void find_flow(const struct flow *fl, void *opaque)
{
	struct find_flow *q = opaque;

	if (fl->gkey.lport == htons(q->sport) && fl->state == q->state)
		q->found = true;
}

/*
 * --max-flows 4 and three times as many short connections as slots, each
 * ended (the far end resets it) long before its 10 s grace is over: every
 * one is served, each past the table's size reclaims the oldest closed
 * flow's slot, and a live connection opened first is never taken.
 */
static void test_closed_flows_reclaimed(void **state)
{
	const char *args[] = { "--max-flows", "4", LIMITS_HOST_LOOPBACK, NULL };
	struct inproc *f = inproc_start(args);
	const struct bridge_stats *bs = bridge_stats(f->d.br);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct find_flow live = { .sport = 57000, .state = FLOW_OPEN };
	struct pkt_ipv4_view v;
	uint8_t fr[256], rx[2048];
	uint16_t port;
	int lfd = local_socket(SOCK_STREAM, 64, &port);
	int keep, conn;
	uint32_t isn;
	uint8_t buf[4];

	(void)state;
	inproc_arp_gateway(f);
	isn = guest_connect(f, 57000, port, 1000, NULL);
	keep = inproc_accept(lfd);

	for (uint16_t i = 0; i < 12; i++) {
		guest_connect(f, (uint16_t)(57001 + i), port, 5000, NULL);
		conn = inproc_accept(lfd);
		assert_int_equal(setsockopt(conn, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
		close(conn);
		/* libslirp drops the connection: the guest sees the reset, the socket is closed. */
		inproc_expect_segment(f, rx, sizeof(rx), GATEWAY, port, (uint16_t)(57001 + i),
				      TH_RST, &v);
		inproc_pump(5);
	}
	assert_int_equal(bs->refused[BRIDGE_REFUSED_TABLE_FULL], 0);
	assert_int_equal(bs->flows_direct, 13);
	/* Three slots for closed flows: the first three fill them, the other nine reclaim. */
	assert_int_equal(bridge_flows_reclaimed(f->d.br), 9);
	assert_int_equal(flows_in_table(f), 4);
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_CLOSED), 3);

	/* The live connection kept its flow and still carries data. */
	bridge_foreach_flow(f->d.br, find_flow, &live);
	assert_true(live.found);
	inproc_send(f, fr, guest_tcp(fr, GATEWAY, 57000, port, 1001, isn + 1, TH_ACK | 0x08, "live"));
	inproc_read_exact(keep, buf, 4);
	assert_memory_equal(buf, "live", 4);

	/* With no closed flow left to take, a full table still refuses. */
	for (uint16_t i = 0; i < 3; i++) {
		guest_connect(f, (uint16_t)(57100 + i), port, 9000, NULL);
		close(inproc_accept(lfd));
	}
	inproc_send(f, fr, guest_tcp(fr, GATEWAY, 57103, port, 9000, 0, TH_SYN, NULL));
	inproc_expect_segment(f, rx, sizeof(rx), GATEWAY, port, 57103, TH_RST | TH_ACK, &v);
	assert_int_equal(bs->refused[BRIDGE_REFUSED_TABLE_FULL], 1);
	close(keep);
	inproc_stop(f);
	close(lfd);
}

/* A UDP entry lives as long as libslirp's socket for it: 240 s after the last datagram. */

static void test_udp_lifetime(void **state)
{
	struct inproc *f = inproc_start(limits_host_loopback);
	uint8_t fr[256], rx[64];
	uint16_t uport;
	int ufd = local_socket(SOCK_DGRAM, 0, &uport);
	int64_t deadline = 0, left;
	gint64 end;
	ssize_t n = -1;

	(void)state;
	inproc_arp_gateway(f);
	inproc_send(f, fr, pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
				   inproc_ip(GATEWAY), 5001, uport, "hello", 5));
	end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	while (n < 0 && g_get_monotonic_time() < end) {
		inproc_pump(5);
		n = recv(ufd, rx, sizeof(rx), 0);
	}
	assert_int_equal(n, 5);
	assert_int_equal(flows_in_table(f), 1);
	bridge_foreach_flow(f->d.br, flow_deadline, &deadline);
	left = deadline - g_get_monotonic_time();
	assert_true(left > 240 * G_USEC_PER_SEC && left <= 242 * G_USEC_PER_SEC);
	inproc_stop(f);
	close(ufd);
}

/* bridge_foreach_flow(): the deadline of the flow to port 53, in *arg. */
static void dns_flow_deadline(const struct flow *fl, void *opaque)
{
	if (fl->gkey.rport == htons(53))
		*(int64_t *)opaque = fl->deadline_us;
}

/* Send @msg from the guest's UDP @gport to the gateway's @dport; wait until @fd has it. */
static void udp_guest_to(struct inproc *f, uint16_t gport, uint16_t dport, int fd,
			 struct sockaddr_in *from)
{
	uint8_t fr[256], rx[64];
	socklen_t flen = sizeof(*from);
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	ssize_t n = -1;

	inproc_send(f, fr, pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
				   inproc_ip(GATEWAY), gport, dport, "query", 5));
	while (n < 0 && g_get_monotonic_time() < end) {
		inproc_pump(5);
		n = recvfrom(fd, rx, sizeof(rx), 0, (struct sockaddr *)from, &flen);
	}
	assert_int_equal(n, 5);
}

/*
 * libslirp has one UDP socket per guest port, and a reply picks its expiry
 * by where the guest's last datagram on it went, not by where the reply
 * came from: a reply from port 53 after a datagram elsewhere keeps the
 * socket 240 s, so the port-53 flow it arrives on must stay as long.  A
 * datagram to port 53 that libslirp drops (a bad checksum) changes
 * nothing there, and must change nothing here.
 */
static void test_udp_shared_socket_lifetime(void **state)
{
	struct sockaddr_in dns = { .sin_family = AF_INET, .sin_port = htons(53),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct inproc *f;
	struct sockaddr_in from;
	uint8_t rx[64], fr[256];
	uint16_t uport;
	size_t len;
	int ufd, dfd;
	int64_t deadline = 0, left;
	bool answered = false;
	gint64 end;

	(void)state;
	f = inproc_start(limits_host_loopback);
	/* libslirp's expiry, not the transport's; and port 53 is one for all the runs. */
	if (!inproc_is_stream(f)) {
		inproc_stop(f);
		skip();
	}
	dfd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(dfd >= 0);
	if (bind(dfd, (struct sockaddr *)&dns, sizeof(dns)) < 0) {
		print_message("skipped: cannot bind 127.0.0.1:53 (%s)\n", strerror(errno));
		close(dfd);
		inproc_stop(f);
		skip();
	}
	ufd = local_socket(SOCK_DGRAM, 0, &uport);
	inproc_arp_gateway(f);
	/* One guest port: to port 53, then elsewhere (libslirp's so_fport now uport). */
	udp_guest_to(f, 5002, 53, dfd, &from);
	udp_guest_to(f, 5002, uport, ufd, NULL);
	/* To port 53 again with a bad checksum: libslirp drops it, so_fport stays uport. */
	len = pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip(GATEWAY), 5002, 53,
		      "query", 5);
	fr[len - 1] ^= 0xff;
	inproc_send(f, fr, len);
	inproc_pump(50);
	/* The answer from port 53 comes now, to the one socket. */
	assert_int_equal(sendto(dfd, "answer", 6, 0, (struct sockaddr *)&from, sizeof(from)), 6);
	end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	while (!answered && g_get_monotonic_time() < end) {
		size_t got = inproc_recv(f, rx, sizeof(rx), 5);

		answered = got && memmem(rx, got, "answer", 6);
	}
	assert_true(answered);
	bridge_foreach_flow(f->d.br, dns_flow_deadline, &deadline);
	left = deadline - g_get_monotonic_time();
	assert_true(left > 240 * G_USEC_PER_SEC && left <= 242 * G_USEC_PER_SEC);
	inproc_stop(f);
	close(ufd);
	close(dfd);
}

/* bridge_foreach_flow(): libslirp's socket of the flow from the guest's port in *arg. */
struct fd_of_port {
	uint16_t port;                 /* network order */
	int fd;
};

static void find_fd_of_port(const struct flow *fl, void *opaque)
{
	struct fd_of_port *q = opaque;

	if (fl->gkey.lport == q->port)
		q->fd = fl->fd;
}

/*
 * A guest sending faster than its peer reads closes libslirp's window.  Once
 * the peer has read everything, the guest hears of the room within a poll
 * pass, from a window probe (counted), not from its own persist timer: this
 * guest never probes, and libslirp alone would stay silent (slirp quirk
 * no_window_update).
 */
static void test_window_reopened(void **state)
{
	const char *args[] = { LIMITS_HOST_LOOPBACK, NULL };
	struct inproc *f = inproc_start(args);
	static uint8_t data[1400], sink[65536];
	uint8_t fr[2048], rx[2048];
	struct pkt_ipv4_view v;
	struct fd_of_port q = { .port = htons(50100), .fd = -1 };
	struct inproc_tcp_match m;
	uint32_t seq = 1001, stack_isn;
	int lfd, c, small = 4096, win = 1, opened = -1;
	uint16_t port;
	gint64 end;
	size_t len;

	(void)state;
	lfd = local_socket(SOCK_STREAM, 4, &port);
	assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	inproc_arp_gateway(f);
	stack_isn = guest_connect(f, 50100, port, 1000, NULL);
	c = inproc_accept(lfd);
	bridge_foreach_flow(f->d.br, find_fd_of_port, &q);
	assert_true(q.fd >= 0);
	assert_int_equal(setsockopt(q.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	m = (struct inproc_tcp_match){ port, 50100, TH_ACK };
	/* Send what the window allows, go back to what libslirp acknowledged, until it is 0. */
	end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
	while (win > 0 && g_get_monotonic_time() < end) {
		for (int k = 0; k < 8 && k * (int)sizeof(data) < win; k++) {
			inproc_send(f, fr, pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
						   inproc_ip(GATEWAY), 50100, port, seq, stack_isn + 1,
						   TH_ACK, data, sizeof(data)));
			seq += sizeof(data);
		}
		while ((len = inproc_recv(f, rx, sizeof(rx), 50)) > 0) {
			if (!inproc_is_tcp(rx, len, &m) || pkt_parse_ipv4(rx, len, &v))
				continue;
			win = v.l4[14] << 8 | v.l4[15];
			seq = inproc_be32(v.l4 + 8);
		}
	}
	assert_int_equal(win, 0);
	assert_int_equal(bridge_stats(f->d.br)->window_probes, 0);
	/* The peer reads everything; the room must reach the guest without a probe of its own. */
	end = g_get_monotonic_time() + G_USEC_PER_SEC;
	while (opened <= 0 && g_get_monotonic_time() < end) {
		while (recv(c, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		len = inproc_recv(f, rx, sizeof(rx), 10);
		if (len && inproc_is_tcp(rx, len, &m) && !pkt_parse_ipv4(rx, len, &v))
			opened = v.l4[14] << 8 | v.l4[15];
	}
	assert_true(opened > 0);
	assert_true(bridge_stats(f->d.br)->window_probes >= 1);
	/* And the guest's next byte is taken where it left off. */
	assert_int_equal(inproc_be32(v.l4 + 8), seq);
	close(c);
	close(lfd);
	inproc_stop(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_full_direct),
		cmocka_unit_test(test_guest_drops),
		cmocka_unit_test(test_connect_timeout),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_tcp_idle_reset),
		cmocka_unit_test(test_reopened_tuple),
		cmocka_unit_test(test_closed_flows_reclaimed),
		cmocka_unit_test(test_udp_lifetime),
		cmocka_unit_test(test_udp_shared_socket_lifetime),
		cmocka_unit_test(test_window_reopened),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
