/* test_inbound.c - in-process proof of inbound delivery: PROXY header in, client address at the guest. */

/*
 * The test is both sides: a client socket connecting to the daemon's
 * exposed port on 127.0.0.1 (as a sidecar would, header first), and the
 * guest, answering libslirp's frames on the stream socket.  It checks what
 * the guest sees (the SYN's source, the payload without the header), that
 * replies reach the client, and that bad, missing or late headers never
 * produce a single frame towards the guest while the client gets a reset.
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
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <glib.h>

#include "proxy-bridge/proxy_proto.h"
#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"

#define GUEST "10.0.2.15"
#define GUEST_PORT 80
#define CLIENT_IP "198.18.0.77"

/* The exposed ports of setup_off_silent_guest_wide(): past BRIDGE_DUP_MAX duplicates and one more. */
#define WIDE_PORTS (BRIDGE_DUP_MAX + 3)

struct inb {
	struct inproc *f;
	uint16_t host_port;
	char expose[32], port_arg[8];
	struct rlimit nofile;        /* to put back at teardown, if restore_nofile */
	bool restore_nofile;
	uint16_t wide_ports[WIDE_PORTS]; /* setup_off_silent_guest_wide()'s exposed ports */
};

/* The daemon with one exposed port, and one more option @opt @val if @opt is given. */
static struct inb *inb_start_opt(const char *mode, const char *timeout, const char *opt,
				 const char *val)
{
	struct inb *s = g_new0(struct inb, 1);
	/*
	 * Exposed ports are libslirp's on either stack; libslirp's path keeps the
	 * table at one descriptor a flow, where the kernel path's seven would
	 * shrink it under a low limit (this harness does not raise it as main()
	 * does), and a small --max-inbound-flows with it once the table is
	 * below twice its count (daemon_inbound_budget()).
	 */
	const char *args[] = { "--expose", s->expose, "--expose-address", "127.0.0.1",
			       "--inbound-proxy-protocol", mode, "--inbound-header-timeout",
			       timeout, "--steer-stack", "slirp", opt, val, NULL };

	s->host_port = inproc_free_port();
	snprintf(s->expose, sizeof(s->expose), "tcp:%u:%u", s->host_port, GUEST_PORT);
	s->f = inproc_start(args);
	return s;
}

/* @trusted replaces --inbound-proxy-trusted's default if given. */
static struct inb *inb_start_trusting(const char *mode, const char *timeout, const char *trusted)
{
	return inb_start_opt(mode, timeout, trusted ? "--inbound-proxy-trusted" : NULL, trusted);
}

static struct inb *inb_start(const char *mode, const char *timeout)
{
	struct inb *s = inb_start_trusting(mode, timeout, NULL);

	inproc_arp_gateway(s->f);
	return s;
}

static int setup_required(void **state)
{
	*state = inb_start("required", "3s");
	return 0;
}

static int setup_required_short(void **state)
{
	*state = inb_start("required", "300ms");
	return 0;
}

static int setup_optional(void **state)
{
	*state = inb_start("optional", "3s");
	return 0;
}

/*
 * Optional, a long timeout, and only 127.0.0.2 trusted: 127.0.0.1 is a
 * stranger.  Each stranger holds a descriptor in the test and one in the
 * daemon, whose flow table is sized by the limit at its start: the soft
 * limit is raised first (to 4 per header-wait slot, where the hard limit
 * allows; the test skips otherwise) and put back at teardown.
 */
static int setup_optional_strangers(void **state)
{
	struct rlimit nofile;
	struct inb *s;

	inproc_raise_nofile(4 * BRIDGE_HDR_WAIT_MAX, &nofile);
	s = inb_start_trusting("optional", "60s", "127.0.0.2/32");
	s->nofile = nofile;
	s->restore_nofile = true;
	inproc_arp_gateway(s->f);
	*state = s;
	return 0;
}

/* Required, and the guest has not spoken yet: libslirp does not know its MAC. */
static int setup_required_silent_guest(void **state)
{
	*state = inb_start_trusting("required", "3s", NULL);
	return 0;
}

/* Off, and the guest silent. */
static int setup_off_silent_guest(void **state)
{
	*state = inb_start_trusting("off", "3s", NULL);
	return 0;
}

/*
 * Off, the guest silent, and WIDE_PORTS exposed ports all forwarding to
 * GUEST_PORT (s->host_port the first of them): enough for one poll of
 * libslirp's, which accepts once on each ready port, to take more
 * duplicates than the bridge can track.  Every port and client is a
 * descriptor in this one process: the limit is raised.
 */
static int setup_off_silent_guest_wide(void **state)
{
	g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
	struct inb *s = g_new0(struct inb, 1);

	inproc_raise_nofile(4 * WIDE_PORTS + 256, &s->nofile);
	s->restore_nofile = true;
	inproc_free_ports(s->wide_ports, WIDE_PORTS);
	s->host_port = s->wide_ports[0];
	for (size_t i = 0; i < WIDE_PORTS; i++) {
		g_ptr_array_add(args, g_strdup("--expose"));
		g_ptr_array_add(args, g_strdup_printf("tcp:%u:%u", s->wide_ports[i], GUEST_PORT));
	}
	for (const char *const *a = (const char *const[]){ "--expose-address", "127.0.0.1",
			"--inbound-proxy-protocol", "off", "--steer-stack", "slirp", NULL }; *a; a++)
		g_ptr_array_add(args, g_strdup(*a));
	g_ptr_array_add(args, NULL);
	s->f = inproc_start((const char *const *)args->pdata);
	*state = s;
	return 0;
}

/* Required and the guest silent, and a header may come 20 s after the connection. */
static int setup_required_slow_header_silent_guest(void **state)
{
	*state = inb_start_trusting("required", "20s", NULL);
	return 0;
}

/*
 * Off, --max-inbound-flows 2, and the guest silent: libslirp sends no SYN
 * before it knows the guest's MAC, so the sockets of refused clients stay.
 */
static int setup_off_limited_silent_guest(void **state)
{
	*state = inb_start_opt("off", "3s", "--max-inbound-flows", "2");
	return 0;
}

/* Required, and one exposed-port connection at most. */
static int setup_required_limit_1(void **state)
{
	struct inb *s = inb_start_opt("required", "3s", "--max-inbound-flows", "1");

	inproc_arp_gateway(s->f);
	*state = s;
	return 0;
}

static int setup_off(void **state)
{
	*state = inb_start("off", "3s");
	return 0;
}

static int teardown(void **state)
{
	struct inb *s = *state;

	inproc_stop(s->f);
	if (s->restore_nofile)
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &s->nofile), 0);
	g_free(s);
	return 0;
}

static void client_send(int fd, const void *buf, size_t len)
{
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

static size_t v2_header(uint8_t *buf, const char *src, uint16_t sport, bool local)
{
	struct proxy_addrs a = {
		.src = inproc_ip(src), .dst = inproc_ip("198.18.0.2"),
		.sport = htons(sport), .dport = htons(8080),
	};
	int len = proxy_encode(PROXY_V2, &a, buf);

	if (local)
		buf[12] = 0x20; /* version 2, LOCAL */
	return (size_t)len;
}

/* One full exchange after the header: guest sees @want_peer, data both ways, header not leaked. */
/* As exchange(), the guest's SYN awaited up to @syn_ms. */
static void exchange_within(struct inb *s, int fd, const char *want_peer, uint16_t want_port,
			    int syn_ms)
{
	struct inproc_gconn c;
	uint8_t buf[256];
	size_t n;

	client_send(fd, "ping", 4);
	assert_true(inproc_guest_expect_syn(s->f, GUEST_PORT, &c, syn_ms));
	assert_int_equal(c.peer.s_addr, inproc_ip(want_peer).s_addr);
	if (want_port)
		assert_int_equal(c.peer_port, want_port);
	inproc_guest_send(s->f, &c, 0x12, NULL, 0);
	n = inproc_guest_recv_data(s->f, &c, buf, sizeof(buf));
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "ping", 4);
	inproc_guest_send(s->f, &c, 0x18, "pong", 4);
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), INPROC_WAIT_MS), 4);
	assert_memory_equal(buf, "pong", 4);
}

static void exchange(struct inb *s, int fd, const char *want_peer, uint16_t want_port)
{
	exchange_within(s, fd, want_peer, want_port, INPROC_WAIT_MS);
}

static void test_v2_header_gives_client_address(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	int fd = inproc_tcp_connect(s->host_port);

	client_send(fd, hdr, v2_header(hdr, CLIENT_IP, 41000, false));
	exchange(s, fd, CLIENT_IP, 41000);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_headers[2], 1);
	close(fd);
}

static void test_v1_header_gives_client_address(void **state)
{
	struct inb *s = *state;
	const char *hdr = "PROXY TCP4 " CLIENT_IP " 198.18.0.2 42000 8080\r\n";
	int fd = inproc_tcp_connect(s->host_port);

	client_send(fd, hdr, strlen(hdr));
	exchange(s, fd, CLIENT_IP, 42000);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_headers[1], 1);
	close(fd);
}

/*
 * Envoy and HAProxy add TLVs (authority, unique id, SSL): a v2 header with 4 KiB
 * of them, sent in pieces, is read whole and the client still shows.
 */
static void test_v2_header_with_4k_tlvs(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_PARSE_MAX];
	size_t len = v2_header(hdr, CLIENT_IP, 43500, false), body;
	int fd = inproc_tcp_connect(s->host_port);

	/* Four TLVs of 1 KiB each (type 0x05, unique id, with arbitrary bytes). */
	for (int i = 0; i < 4; i++) {
		hdr[len] = 0x05;
		hdr[len + 1] = 1024 >> 8;
		hdr[len + 2] = 1024 & 0xff;
		memset(hdr + len + 3, 'a' + i, 1024);
		len += 3 + 1024;
	}
	body = len - 16;
	hdr[14] = (uint8_t)(body >> 8);
	hdr[15] = (uint8_t)body;
	client_send(fd, hdr, 1000);
	inproc_pump(30);
	client_send(fd, hdr + 1000, len - 1000);
	exchange(s, fd, CLIENT_IP, 43500);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_headers[2], 1);
	close(fd);
}

/* A header split across writes is reassembled (the polling path). */
static void test_split_header(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	size_t len = v2_header(hdr, CLIENT_IP, 43000, false);
	int fd = inproc_tcp_connect(s->host_port);

	client_send(fd, hdr, 10);
	inproc_pump(60);
	client_send(fd, hdr + 10, len - 10);
	exchange(s, fd, CLIENT_IP, 43000);
	close(fd);
}

/*
 * A header that stops half way is looked at again on the 20 ms tick, but
 * peeked only once more bytes came: over half a second (25 ticks) of
 * nothing new, no more than the first peeks, then the rest is read.
 */
static void test_stalled_header_not_reread(void **state)
{
	struct inb *s = *state;
	const struct bridge_stats *st = bridge_stats(s->f->d.br);
	uint8_t hdr[PROXY_HDR_MAX];
	size_t len = v2_header(hdr, CLIENT_IP, 43100, false);
	int fd = inproc_tcp_connect(s->host_port);
	uint64_t before;

	client_send(fd, hdr, 10);
	for (int i = 0; i < 200 && !st->header_peeks; i++)
		inproc_pump(10);
	assert_true(st->header_peeks >= 1);
	inproc_pump(60);
	before = st->header_peeks;
	inproc_pump(500);
	assert_true(st->header_peeks - before <= 1);
	client_send(fd, hdr + 10, len - 10);
	exchange(s, fd, CLIENT_IP, 43100);
	close(fd);
}

/* v2 LOCAL: use the real peer, a loopback one shows as the gateway. */
static void test_v2_local_uses_real_peer(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	int fd = inproc_tcp_connect(s->host_port);

	client_send(fd, hdr, v2_header(hdr, CLIENT_IP, 44000, true));
	exchange(s, fd, "10.0.2.2", 0);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_real_peer, 1);
	close(fd);
}

/* Nothing reaches the guest; the client is reset promptly; the reason is counted. */
static void expect_refused(struct inb *s, int fd, enum bridge_inbound_drop why, int within_ms)
{
	struct inproc_gconn c;
	uint8_t buf[64];
	gint64 start = g_get_monotonic_time();
	ssize_t n = inproc_client_read(fd, buf, sizeof(buf), within_ms);

	assert_true(n == -ECONNRESET || n == 0);
	assert_true(g_get_monotonic_time() - start < (gint64)within_ms * 1000);
	assert_false(inproc_guest_expect_syn(s->f, GUEST_PORT, &c, 300));
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_dropped[why], 1);
	close(fd);
}

static void test_garbage_header_refused(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	int fd = inproc_tcp_connect(s->host_port);
	size_t len = v2_header(hdr, CLIENT_IP, 45000, false);

	hdr[12] = 0x31; /* version 3 */
	client_send(fd, hdr, len);
	expect_refused(s, fd, BRIDGE_IN_INVALID, 1000);
	assert_int_equal(bridge_stats(s->f->d.br)->header_errors[PROXY_ERR_VERSION], 1);
}

static void test_missing_header_refused(void **state)
{
	struct inb *s = *state;
	int fd = inproc_tcp_connect(s->host_port);

	client_send(fd, "GET / HTTP/1.0\r\n\r\n", 18);
	expect_refused(s, fd, BRIDGE_IN_MISSING, 1000);
}

static void test_ipv6_client_refused(void **state)
{
	struct inb *s = *state;
	const char *hdr = "PROXY TCP6 2001:db8::1 2001:db8::2 40000 8080\r\n";
	int fd = inproc_tcp_connect(s->host_port);

	client_send(fd, hdr, strlen(hdr));
	expect_refused(s, fd, BRIDGE_IN_FAMILY, 1000);
}

/*
 * A client refused before libslirp could send its SYN (the guest's MAC not
 * known yet, as at boot) has nothing to acknowledge at the first tick: the
 * reset to libslirp waits for that SYN, so the client is reset as soon as
 * the guest speaks, not left open for libslirp's 75 s.
 */
static void test_refused_before_stack_syn(void **state)
{
	struct inb *s = *state;
	int fd = inproc_tcp_connect(s->host_port);
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	uint8_t buf[16];

	client_send(fd, "GET / HTTP/1.0\r\n\r\n", 18);
	while (!bridge_stats(s->f->d.br)->inbound_dropped[BRIDGE_IN_MISSING] &&
	       g_get_monotonic_time() < end)
		inproc_pump(5);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_dropped[BRIDGE_IN_MISSING], 1);
	/* Rejected, and the tick has run with no SYN to acknowledge: the client is still there. */
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), 50), -ETIMEDOUT);
	inproc_arp_gateway(s->f);
	/*
	 * libslirp sends its held SYN now, or, if it dropped it (a frame waits
	 * for the guest's MAC for a second at most), retransmits it seconds later.
	 */
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), 15000), -ECONNRESET);
	assert_int_equal(bridge_flow_count(s->f->d.br, FLOW_REJECTED), 0);
	close(fd);
}

/* A TCP connection from @src:@sport (a loopback address; 0: any port) to 127.0.0.1:@port, in progress. */
static int connect_from_port(const char *src, uint16_t sport, uint16_t port)
{
	struct sockaddr_in from = { .sin_family = AF_INET, .sin_addr = inproc_ip(src),
				    .sin_port = htons(sport) };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
	assert_true(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0 || errno == EINPROGRESS);
	return fd;
}

static int connect_from(const char *src, uint16_t port)
{
	return connect_from_port(src, 0, port);
}

/* Pump until the non-blocking connect() of @fd has completed (a loaded machine may take a while). */
static void wait_connected(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;

	while (poll(&p, 1, 0) == 0 && g_get_monotonic_time() < end)
		inproc_pump(5);
	assert_true(p.revents & POLLOUT);
}

/* Pump until the daemon has accepted @n exposed-port clients; false if not within @ms. */
static bool wait_accepted(struct inb *s, uint64_t n, int ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	while (bridge_stats(s->f->d.br)->inbound_flows < n && g_get_monotonic_time() < end)
		inproc_pump(5);
	return bridge_stats(s->f->d.br)->inbound_flows >= n;
}

/*
 * A client refused without a flow is reset at once, but libslirp keeps its
 * socket until the bridge resets it at libslirp's SYN, which waits for the
 * guest's MAC (75 s if the guest never speaks).  With the guest silent and
 * a limit of 2: two clients get flows, two are refused and their sockets
 * held, and then libslirp accepts no more: the fifth client waits in the
 * backlog, neither accepted nor reset.  Once the guest speaks, the held
 * sockets go, accepts resume, and the fifth is taken (and refused: the
 * first two still hold the limit).
 */
static void test_refused_sockets_bounded(void **state)
{
	struct inb *s = *state;
	const struct bridge_stats *st = bridge_stats(s->f->d.br);
	uint8_t buf[16];
	int fds[5];

	for (size_t i = 0; i < 4; i++) {
		fds[i] = inproc_tcp_connect(s->host_port);
		assert_true(wait_accepted(s, i + 1, INPROC_WAIT_MS));
	}
	assert_int_equal(st->inbound_dropped[BRIDGE_IN_INBOUND_FULL], 2);
	assert_int_equal(inproc_client_read(fds[2], buf, sizeof(buf), INPROC_WAIT_MS), -ECONNRESET);
	assert_int_equal(inproc_client_read(fds[3], buf, sizeof(buf), INPROC_WAIT_MS), -ECONNRESET);
	assert_int_equal(st->inbound_held, 2);
	assert_int_equal(netstack_stats(s->f->d.ns)->accept_holds, 1);

	fds[4] = inproc_tcp_connect(s->host_port);
	assert_false(wait_accepted(s, 5, 500));
	assert_int_equal(inproc_client_read(fds[4], buf, sizeof(buf), 50), -ETIMEDOUT);

	inproc_arp_gateway(s->f);
	/*
	 * libslirp sends the SYN it kept for the guest's MAC now, and a held
	 * socket goes, which lets the fifth client in; a SYN it dropped (a
	 * frame waits for the MAC a second at most) comes again seconds later.
	 */
	assert_int_equal(inproc_client_read(fds[4], buf, sizeof(buf), 15000), -ECONNRESET);
	assert_int_equal(st->inbound_flows, 5);
	assert_int_equal(st->inbound_dropped[BRIDGE_IN_INBOUND_FULL], 3);
	for (int i = 0; i < 1500 && st->inbound_held; i++)
		inproc_pump(10);
	assert_int_equal(st->inbound_held, 0);
	assert_int_equal(st->orphans_reset, 3);
	for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
		close(fds[i]);
}

/*
 * Duplicates (other loopback addresses, the same port: the same tuple in
 * libslirp) that come while the guest is silent: libslirp sends the
 * connections' SYNs once it knows the guest's MAC, and one that waited a
 * second for it is dropped and sent again seconds later.  Accepting the
 * first client, the second 1.3 s later and the third 1.3 s after that
 * makes the order the third's, the first's, the second's: only at the
 * second's, about 5 s after the guest speaks, are all three told apart,
 * and the first's SYN, kept meanwhile, goes on from its copy.  (libslirp
 * would send it again only 12 s after the last: 16 s from the guest's
 * first word.)  The guest must see the first client's SYN, never a
 * duplicate's, and each duplicate must leave libslirp, which takes each
 * one's own sequence number.
 *
 * Connects the first client as @fd (its address in *@first, and @hdr
 * sent at once if given), then the two duplicates, and makes the guest
 * speak.  Returns when the SYNs are told apart: the first's passed on.
 */
static void duplicates_while_silent(struct inb *s, int *fd, struct sockaddr_in *first, int dups[2])
{
	const struct bridge_stats *st = bridge_stats(s->f->d.br);
	const char *dup_from[] = { "127.0.0.2", "127.0.0.3" };
	socklen_t len = sizeof(*first);
	uint8_t buf[16];

	*fd = inproc_tcp_connect(s->host_port);
	assert_true(wait_accepted(s, 1, INPROC_WAIT_MS));
	assert_int_equal(getsockname(*fd, (struct sockaddr *)first, &len), 0);
	for (size_t i = 0; i < 2; i++) {
		inproc_pump(1300);
		dups[i] = connect_from_port(dup_from[i], ntohs(first->sin_port), s->host_port);
		assert_true(wait_accepted(s, i + 2, INPROC_WAIT_MS));
		assert_int_equal(inproc_client_read(dups[i], buf, sizeof(buf), INPROC_WAIT_MS),
				 -ECONNRESET);
	}
	assert_int_equal(st->inbound_duplicates, 2);
	inproc_arp_gateway(s->f);
	for (int i = 0; i < 900 && !st->syns_replayed; i++)
		inproc_pump(10);
	assert_int_equal(st->syns_replayed, 1);
}

/* Both duplicates leave libslirp, and no socket of theirs stays held. */
static void duplicates_removed(struct inb *s, int dups[2])
{
	const struct bridge_stats *st = bridge_stats(s->f->d.br);

	for (int i = 0; i < 1500 && st->duplicates_removed < 2; i++)
		inproc_pump(10);
	assert_int_equal(st->duplicates_removed, 2);
	assert_int_equal(st->inbound_held, 0);
	close(dups[0]);
	close(dups[1]);
}

/* No header expected: the guest sees the first client at once.  Its peer is the gateway (a loopback client). */
static void test_duplicates_before_guest_speaks(void **state)
{
	struct inb *s = *state;
	struct sockaddr_in first;
	int fd, dups[2];

	duplicates_while_silent(s, &fd, &first, dups);
	exchange(s, fd, "10.0.2.2", ntohs(first.sin_port));
	duplicates_removed(s, dups);
	close(fd);
}

/* The first client's header comes only after: its SYN, from the copy, waits for it, then goes. */
static void test_duplicates_then_header(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	struct sockaddr_in first;
	int fd, dups[2];

	duplicates_while_silent(s, &fd, &first, dups);
	assert_int_equal(bridge_stats(s->f->d.br)->frames_to_guest, 0);
	client_send(fd, hdr, v2_header(hdr, CLIENT_IP, 46700, false));
	exchange(s, fd, CLIENT_IP, 46700);
	duplicates_removed(s, dups);
	close(fd);
}

/*
 * The first client's header never comes: its flow, rejected meanwhile, is
 * reset from the copy once the duplicates are gone, well before libslirp
 * would send its SYN again.
 */
static void test_duplicates_then_rejected(void **state)
{
	struct inb *s = *state;
	const struct bridge_stats *st = bridge_stats(s->f->d.br);
	struct sockaddr_in first;
	uint8_t buf[16];
	int fd, dups[2];

	duplicates_while_silent(s, &fd, &first, dups);
	assert_int_equal(st->inbound_dropped[BRIDGE_IN_TIMEOUT], 1);
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), 3000), -ECONNRESET);
	assert_int_equal(st->frames_to_guest, 0);
	duplicates_removed(s, dups);
	close(fd);
}

/*
 * Many duplicates before the guest speaks (24: more than the sixteen the
 * table once had, past which the count could end without the live
 * connection's SYN): every one is tracked, the guest gets the first
 * client's connection and no duplicate's, and all of them leave libslirp.
 */
#define MANY_DUPS 24
static void test_many_early_duplicates(void **state)
{
	struct inb *s = *state;
	const struct bridge_stats *st = bridge_stats(s->f->d.br);
	int dups[MANY_DUPS], fd;
	struct sockaddr_in first;
	socklen_t len = sizeof(first);
	uint8_t buf[16];

	fd = inproc_tcp_connect(s->host_port);
	assert_true(wait_accepted(s, 1, INPROC_WAIT_MS));
	assert_int_equal(getsockname(fd, (struct sockaddr *)&first, &len), 0);
	for (size_t i = 0; i < G_N_ELEMENTS(dups); i++) {
		char from[16];

		g_snprintf(from, sizeof(from), "127.0.0.%zu", i + 2);
		dups[i] = connect_from_port(from, ntohs(first.sin_port), s->host_port);
		assert_true(wait_accepted(s, i + 2, INPROC_WAIT_MS));
		assert_int_equal(inproc_client_read(dups[i], buf, sizeof(buf), INPROC_WAIT_MS),
				 -ECONNRESET);
	}
	assert_int_equal(st->inbound_duplicates, MANY_DUPS);
	assert_int_equal(st->inbound_dropped[BRIDGE_IN_DUPLICATE], MANY_DUPS);

	inproc_arp_gateway(s->f);
	/* libslirp sends a SYN that waited over a second for the MAC again 6 s after its accept. */
	exchange_within(s, fd, "10.0.2.2", ntohs(first.sin_port), 15000);
	for (int i = 0; i < 2500 && st->duplicates_removed < MANY_DUPS; i++)
		inproc_pump(10);
	assert_int_equal(st->duplicates_removed, MANY_DUPS);
	assert_int_equal(st->inbound_held, 0);
	for (size_t i = 0; i < G_N_ELEMENTS(dups); i++)
		close(dups[i]);
	close(fd);
}

/*
 * More duplicates than the bridge can track, all before the guest speaks.
 * One client, then others from its port (other loopback addresses: the
 * same tuple in libslirp), each to its own exposed port of the same guest
 * port: first one short of the held bound (BRIDGE_INBOUND_HELD_MAX, where
 * accepts stop), then, in one poll of libslirp's, which accepts once on
 * each ready port before the hold starts, enough to pass BRIDGE_DUP_MAX.
 * Past it the live connection's SYN could no longer be told from an
 * untracked duplicate's, so it is refused too (flow_inbound_abandon()):
 * every client is reset, and no SYN on the tuple reaches the guest once it
 * speaks, however often libslirp sends one.
 */
#define WIDE_FIRST (BRIDGE_INBOUND_HELD_MAX - 1)
static void test_untracked_duplicates_abandon(void **state)
{
	struct inb *s = *state;
	const struct bridge_stats *st = bridge_stats(s->f->d.br);
	const size_t ndups = WIDE_PORTS - 1;
	g_autofree int *dups = g_new(int, ndups);
	struct sockaddr_in first;
	socklen_t len = sizeof(first);
	struct inproc_gconn c;
	gint64 accepted, window_ms;
	uint8_t buf[16];
	int fd;

	fd = inproc_tcp_connect(s->host_port);
	assert_true(wait_accepted(s, 1, INPROC_WAIT_MS));
	accepted = g_get_monotonic_time();
	assert_int_equal(getsockname(fd, (struct sockaddr *)&first, &len), 0);
	for (size_t i = 0; i < ndups; i++) {
		char from[16];

		if (i == WIDE_FIRST) {
			assert_true(wait_accepted(s, 1 + WIDE_FIRST, INPROC_WAIT_MS));
			assert_int_equal(st->inbound_held, WIDE_FIRST);
			assert_int_equal(netstack_stats(s->f->d.ns)->accept_holds, 0);
		}
		g_snprintf(from, sizeof(from), "127.0.%zu.%zu", 1 + i / 200, 1 + i % 200);
		dups[i] = connect_from_port(from, ntohs(first.sin_port), s->wide_ports[i + 1]);
	}
	/*
	 * The daemon runs only when pumped: every handshake of the second batch
	 * completes (in the kernel's backlogs) before its next poll, which so
	 * finds all their ports ready at once.
	 */
	for (size_t i = WIDE_FIRST; i < ndups; i++) {
		struct pollfd p = { .fd = dups[i], .events = POLLOUT };

		assert_int_equal(poll(&p, 1, INPROC_WAIT_MS), 1);
	}
	assert_true(wait_accepted(s, 1 + ndups, INPROC_WAIT_MS));
	assert_int_equal(st->inbound_duplicates, ndups);
	/* Each duplicate, and the live connection with them. */
	assert_int_equal(st->inbound_dropped[BRIDGE_IN_DUPLICATE], ndups + 1);
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), INPROC_WAIT_MS), -ECONNRESET);
	for (size_t i = 0; i < ndups; i++)
		assert_int_equal(inproc_client_read(dups[i], buf, sizeof(buf), INPROC_WAIT_MS),
				 -ECONNRESET);

	/*
	 * libslirp sends a SYN that waited under a second for the MAC once it
	 * learns it, and each connection's again 6 s after its accept
	 * (test_many_early_duplicates): the live one's comes in the window if
	 * the guest speaks within 5 s of its accept.
	 */
	assert_true(g_get_monotonic_time() - accepted < 5 * G_USEC_PER_SEC);
	inproc_arp_gateway(s->f);
	window_ms = (accepted + 8 * G_USEC_PER_SEC - g_get_monotonic_time()) / 1000;
	assert_false(inproc_guest_expect_syn(s->f, GUEST_PORT, &c, (int)MAX(window_ms, 3000)));
	assert_true(st->duplicate_syns >= 1);
	for (size_t i = 0; i < ndups; i++)
		close(dups[i]);
	close(fd);
}

/*
 * Out of descriptors, libslirp's accept() on an exposed port fails and the
 * client stays queued, the listener readable: the listeners rest for a
 * second instead of libslirp trying again on every turn of the loop, and
 * the client is served once descriptors come back.
 */
static void test_out_of_descriptors_rests(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	struct rlimit old, tight;
	uint64_t failures;
	int fd;

	inproc_skip_if_valgrind_takes_emfile();
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	tight = old;
	/* One number left, for the client's own socket. */
	tight.rlim_cur = inproc_fd_limit_leaving(old.rlim_cur, 1);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
	fd = inproc_tcp_connect(s->host_port);
	assert_true(fd >= 0);
	client_send(fd, hdr, v2_header(hdr, CLIENT_IP, 46600, false));
	inproc_pump(300);
	failures = netstack_stats(s->f->d.ns)->accept_fd_failures;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	/* One failed accept() per rest; without the rest, one per turn of the loop. */
	assert_true(failures >= 1 && failures <= 2);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_flows, 0);
	exchange(s, fd, CLIENT_IP, 46600);
	close(fd);
}

/* A v2 header for UDP over IPv4 does not describe a TCP client: refused, not believed. */
static void test_udp_header_refused(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	int fd = inproc_tcp_connect(s->host_port);
	size_t len = v2_header(hdr, CLIENT_IP, 45500, false);

	hdr[13] = 0x12; /* AF_INET, DGRAM */
	client_send(fd, hdr, len);
	expect_refused(s, fd, BRIDGE_IN_FAMILY, 1000);
}

/*
 * A header may name the gateway's address (a loopback client's, as
 * libslirp shows it); a loopback client from that port then finds its key
 * taken by the live flow, and is refused.  Past --max-inbound-flows (1
 * here) that refusal takes no slot: it is inbound_full, like any client
 * past the limit, not a rejected flow beside the limit.
 */
static void test_taken_key_within_limit(void **state)
{
	struct inb *s = *state;
	uint16_t sport = inproc_free_port();
	uint8_t hdr[PROXY_HDR_MAX], buf[16];
	int fd = inproc_tcp_connect(s->host_port), fd2;

	client_send(fd, hdr, v2_header(hdr, "10.0.2.2", sport, false));
	exchange(s, fd, "10.0.2.2", sport);
	fd2 = connect_from_port("127.0.0.1", sport, s->host_port);
	assert_int_equal(inproc_client_read(fd2, buf, sizeof(buf), INPROC_WAIT_MS), -ECONNRESET);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_dropped[BRIDGE_IN_INBOUND_FULL], 1);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_dropped[BRIDGE_IN_DUPLICATE], 0);
	assert_int_equal(bridge_flow_count(s->f->d.br, FLOW_REJECTED), 0);
	close(fd2);
	close(fd);
}

/*
 * Optional mode: a stranger waits for its first bytes, to be told from one
 * sending a header it may not.  A flood of silent strangers holds at most
 * half the header-wait table; the next is refused (too_many_pending), and
 * the trusted sidecar still gets a slot and its client through.
 */
static void test_silent_strangers_leave_room(void **state)
{
	struct inb *s = *state;
	int fds[BRIDGE_HDR_WAIT_UNTRUSTED_MAX];
	uint8_t hdr[PROXY_HDR_MAX];
	struct rlimit rl;
	int extra, good;

	/* The setup raised the limit as far as the hard limit lets it. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 4 * BRIDGE_HDR_WAIT_MAX) {
		print_message("skipped: a hard descriptor limit of %llu\n",
			      (unsigned long long)rl.rlim_max);
		skip();
	}

	for (size_t i = 0; i < G_N_ELEMENTS(fds); i++) {
		gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;

		fds[i] = connect_from("127.0.0.1", s->host_port);
		/* libslirp's listen backlog is 1: each accepted before the next. */
		while (bridge_flow_count(s->f->d.br, FLOW_HDR_WAIT) < i + 1 &&
		       g_get_monotonic_time() < end)
			inproc_pump(1);
		assert_int_equal(bridge_flow_count(s->f->d.br, FLOW_HDR_WAIT), i + 1);
	}
	extra = connect_from("127.0.0.1", s->host_port);
	expect_refused(s, extra, BRIDGE_IN_OVERLOAD, 2000);
	assert_int_equal(bridge_flow_count(s->f->d.br, FLOW_HDR_WAIT), G_N_ELEMENTS(fds));

	/*
	 * From a port no stranger holds: an ephemeral one may be a stranger's
	 * on 127.0.0.1, and both show as the gateway's (a duplicate).
	 */
	good = connect_from_port("127.0.0.2", inproc_free_port(), s->host_port);
	wait_connected(good);
	client_send(good, hdr, v2_header(hdr, CLIENT_IP, 49000, false));
	exchange(s, good, CLIENT_IP, 49000);
	close(good);
	for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
		close(fds[i]);
}

/* A silent client is closed after the header timeout (300 ms here), not before. */
static void test_silent_client_times_out(void **state)
{
	struct inb *s = *state;
	int fd = inproc_tcp_connect(s->host_port);
	gint64 start = g_get_monotonic_time();

	expect_refused(s, fd, BRIDGE_IN_TIMEOUT, 2000);
	assert_true(g_get_monotonic_time() - start >= 250 * 1000);
}

/* A slow header (part sent, then silence) times out too, and a good client meanwhile works. */
static void test_slow_header_does_not_block_others(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	size_t len = v2_header(hdr, CLIENT_IP, 46000, false);
	int slow = inproc_tcp_connect(s->host_port), good;
	uint8_t buf[16];

	client_send(slow, hdr, 5);
	good = inproc_tcp_connect(s->host_port);
	client_send(good, hdr, v2_header(hdr, CLIENT_IP, 46001, false));
	exchange(s, good, CLIENT_IP, 46001);
	(void)len;
	assert_true(inproc_client_read(slow, buf, sizeof(buf), 2000) <= 0);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_dropped[BRIDGE_IN_TIMEOUT], 1);
	close(good);
	close(slow);
}

/* Optional: no header means the real peer; a header still gives the client. */
static void test_optional_modes(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	int fd = inproc_tcp_connect(s->host_port);

	exchange(s, fd, "10.0.2.2", 0);
	close(fd);
	fd = inproc_tcp_connect(s->host_port);
	client_send(fd, hdr, v2_header(hdr, CLIENT_IP, 47000, false));
	exchange(s, fd, CLIENT_IP, 47000);
	close(fd);
}

/* The guest refusing (RST) resets the client promptly. */
static void test_guest_refuses(void **state)
{
	struct inb *s = *state;
	uint8_t hdr[PROXY_HDR_MAX], buf[16];
	struct inproc_gconn c;
	int fd = inproc_tcp_connect(s->host_port);
	gint64 start;

	client_send(fd, hdr, v2_header(hdr, CLIENT_IP, 48000, false));
	assert_true(inproc_guest_expect_syn(s->f, GUEST_PORT, &c, INPROC_WAIT_MS));
	start = g_get_monotonic_time();
	inproc_guest_send(s->f, &c, 0x14, NULL, 0); /* RST|ACK */
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), 1000), -ECONNRESET);
	assert_true(g_get_monotonic_time() - start < G_USEC_PER_SEC);
	close(fd);
}

/* Off: a header is just bytes for the guest (the real peer is kept). */
static void test_off_passes_bytes(void **state)
{
	struct inb *s = *state;
	int fd = inproc_tcp_connect(s->host_port);

	exchange(s, fd, "10.0.2.2", 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_v2_header_gives_client_address, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_v1_header_gives_client_address, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_split_header, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_stalled_header_not_reread, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_v2_header_with_4k_tlvs, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_v2_local_uses_real_peer, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_header_refused, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_missing_header_refused, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_client_refused, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_udp_header_refused, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_refused_before_stack_syn,
						setup_required_silent_guest, teardown),
		cmocka_unit_test_setup_teardown(test_refused_sockets_bounded,
						setup_off_limited_silent_guest, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_before_guest_speaks,
						setup_off_limited_silent_guest, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_then_header,
						setup_required_slow_header_silent_guest, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_then_rejected,
						setup_required_silent_guest, teardown),
		cmocka_unit_test_setup_teardown(test_many_early_duplicates, setup_off_silent_guest,
						teardown),
		cmocka_unit_test_setup_teardown(test_untracked_duplicates_abandon,
						setup_off_silent_guest_wide, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_descriptors_rests, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_silent_client_times_out, setup_required_short, teardown),
		cmocka_unit_test_setup_teardown(test_slow_header_does_not_block_others, setup_required_short, teardown),
		cmocka_unit_test_setup_teardown(test_optional_modes, setup_optional, teardown),
		cmocka_unit_test_setup_teardown(test_silent_strangers_leave_room,
						setup_optional_strangers, teardown),
		cmocka_unit_test_setup_teardown(test_taken_key_within_limit, setup_required_limit_1,
						teardown),
		cmocka_unit_test_setup_teardown(test_guest_refuses, setup_required, teardown),
		cmocka_unit_test_setup_teardown(test_off_passes_bytes, setup_off, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
