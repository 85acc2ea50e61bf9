/* test_unixleg.c - in-process proof of the sidecar's unix legs, outbound and inbound. */

/*
 * Outbound: a unix listener plays the sidecar (--outbound-proxy unix:PATH).
 * Synthetic guest SYNs to 198.18.0.0/15 must reach it as a unix connection
 * (checked on the daemon's own descriptor: AF_UNIX), PROXY v2 header first,
 * and every way the sidecar can be gone (no file, nobody listening, a full
 * backlog, a hang-up later) must reset the guest, be counted, and not spin.
 *
 * Inbound: the test connects to --expose unix:PATH:GUESTPORT as the sidecar
 * would, header first, and plays the guest.  The guest must see the
 * client from the header; a bad or missing header, or a connection that
 * goes round the unix socket to the internal relay port, must never reach
 * the guest.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "proxy-bridge/proxy_proto.h"
#include "proxy-bridge/unixexpose.h"
#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"

#define GUEST "10.0.2.15"
#define GUEST_PORT 8080
#define CLIENT_IP "198.18.0.77"
#define SIDECAR_SOURCE "198.18.0.2"

enum sidecar_kind {
	SIDECAR_LISTENING,
	SIDECAR_NO_FILE,             /* ENOENT */
	SIDECAR_NOT_LISTENING,       /* a socket file nobody listens on: ECONNREFUSED */
	SIDECAR_FULL,                /* backlog 0 with one connection queued: EAGAIN */
};

struct ux {
	struct inproc *f;
	char *dir;
	char out_path[108], in_path[108], out_arg[120], in_arg[128];
	int sidecar;                 /* unix listener, or -1 */
	int filler;                  /* the connection filling a full backlog, or -1 */
};

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* With --max-inbound-flows @max_inbound if given, and the guest silent unless @arp. */
static struct ux *ux_start_opt(enum sidecar_kind kind, const char *mode, const char *max_inbound,
			       bool arp)
{
	struct ux *s = g_new0(struct ux, 1);
	/* libslirp's path; test_ksteer.c has the kernel's unix leg. */
	const char *args[] = { "--outbound-proxy", s->out_arg, "--proxy-source", SIDECAR_SOURCE,
			       "--expose", s->in_arg, "--inbound-proxy-protocol", mode,
			       "--inbound-header-timeout", "1s", "--steer-stack", "slirp",
			       max_inbound ? "--max-inbound-flows" : NULL, max_inbound, NULL };

	s->dir = g_dir_make_tmp("ms-unixleg-XXXXXX", NULL);
	assert_non_null(s->dir);
	snprintf(s->out_path, sizeof(s->out_path), "%s/out.sock", s->dir);
	snprintf(s->in_path, sizeof(s->in_path), "%s/in.sock", s->dir);
	snprintf(s->out_arg, sizeof(s->out_arg), "unix:%s", s->out_path);
	snprintf(s->in_arg, sizeof(s->in_arg), "unix:%s:%u", s->in_path, GUEST_PORT);
	s->sidecar = s->filler = -1;
	switch (kind) {
	case SIDECAR_LISTENING:
		s->sidecar = inproc_unix_listen(s->out_path, 64, true);
		break;
	case SIDECAR_NO_FILE:
		break;
	case SIDECAR_NOT_LISTENING:
		s->sidecar = inproc_unix_listen(s->out_path, 0, false);
		break;
	case SIDECAR_FULL:
		/* Backlog 0 takes one connection; the guest's is the second. */
		s->sidecar = inproc_unix_listen(s->out_path, 0, true);
		s->filler = unix_connect(s->out_path);
		break;
	}
	s->f = inproc_start(args);
	if (arp)
		inproc_arp_gateway(s->f);
	return s;
}

static struct ux *ux_start(enum sidecar_kind kind, const char *mode)
{
	return ux_start_opt(kind, mode, NULL, true);
}

static int setup_listening(void **state)
{
	*state = ux_start(SIDECAR_LISTENING, "required");
	return 0;
}

static int setup_no_file(void **state)
{
	*state = ux_start(SIDECAR_NO_FILE, "required");
	return 0;
}

static int setup_not_listening(void **state)
{
	*state = ux_start(SIDECAR_NOT_LISTENING, "required");
	return 0;
}

static int setup_full(void **state)
{
	*state = ux_start(SIDECAR_FULL, "required");
	return 0;
}

static int setup_off(void **state)
{
	*state = ux_start(SIDECAR_LISTENING, "off");
	return 0;
}

/* Off, --max-inbound-flows 2, and the guest silent: refused clients' sockets stay held. */
static int setup_off_limited_silent_guest(void **state)
{
	*state = ux_start_opt(SIDECAR_LISTENING, "off", "2", false);
	return 0;
}

static int teardown(void **state)
{
	struct ux *s = *state;

	inproc_stop(s->f);
	/* The daemon removed its own listener's file. */
	assert_int_equal(access(s->in_path, F_OK), -1);
	if (s->sidecar >= 0)
		close(s->sidecar);
	if (s->filler >= 0)
		close(s->filler);
	g_unlink(s->out_path);
	g_rmdir(s->dir);
	g_free(s->dir);
	g_free(s);
	return 0;
}

/* -------------------------------------------------------------- outbound */

static void guest_syn(struct inproc *f, const char *dst, uint16_t sport, uint16_t dport,
		      uint32_t isn)
{
	uint8_t fr[256];
	size_t len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(GUEST), inproc_ip(dst), sport, dport,
			     isn, 0, 0x02, NULL, 0);

	inproc_send(f, fr, len);
}

static void note_domain(const struct flow *flow, void *opaque)
{
	int *domain = opaque, d = 0;
	socklen_t len = sizeof(d);

	if (flow->kind == FLOW_STEER && flow->fd >= 0 &&
	    getsockopt(flow->fd, SOL_SOCKET, SO_DOMAIN, &d, &len) == 0)
		*domain = d;
}

/*
 * SYN to D:P -> a unix connection to the sidecar, header then payload both
 * ways, replies as from D:P; then the sidecar hangs up: the guest gets a FIN
 * and the loop does not spin on the dead socket.
 */
static void test_out_header_payload_hangup(void **state)
{
	struct ux *s = *state;
	struct inproc *f = s->f;
	uint8_t fr[2048], rx[2048], buf[16];
	struct pkt_ipv4_view v;
	uint32_t server_isn;
	int conn, domain = -1;
	size_t len;

	guest_syn(f, "198.18.0.1", 40000, 5001, 1000);
	conn = inproc_accept(s->sidecar);
	inproc_expect_v2_header(conn, SIDECAR_SOURCE, "198.18.0.1", 40000, 5001);
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 40000, 0x12, &v);
	assert_int_equal(inproc_be32(v.l4 + 8), 1001);
	server_isn = inproc_be32(v.l4 + 4);
	/* libslirp's own descriptor for the flow is the unix socket. */
	bridge_foreach_flow(f->d.br, note_domain, &domain);
	assert_int_equal(domain, AF_UNIX);

	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(GUEST), inproc_ip("198.18.0.1"), 40000, 5001,
		      1001, server_isn + 1, 0x18, "hello", 5);
	inproc_send(f, fr, len);
	inproc_read_exact(conn, buf, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(write(conn, "world", 5), 5);
	for (;;) {
		inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 40000, 0x10, &v);
		if (v.l4_len > (size_t)(v.l4[12] >> 4) * 4)
			break;
	}
	assert_memory_equal(v.l4 + (v.l4[12] >> 4) * 4, "world", 5);
	assert_int_equal(bridge_stats(f->d.br)->unix_legs, 1);
	assert_int_equal(bridge_stats(f->d.br)->headers_written, 1);

	/* The sidecar goes away: a FIN reaches the guest, as from D:P. */
	close(conn);
	for (;;) {
		inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 40000, 0x10, &v);
		if (v.l4[13] & 0x01)
			break;
	}
	/* Half-closed and then idle: a POLLHUP busy loop would burn the CPU here. */
	inproc_assert_no_spin(500, 30);
}

/*
 * The sidecar sends a byte with MSG_OOB on the unix leg: it reaches the
 * guest in the stream, as over a TCP leg, where libslirp's own socket has
 * SO_OOBINLINE (without it, af_unix drops the byte on our side).  Skipped
 * on kernels without unix urgent data (CONFIG_AF_UNIX_OOB).
 */
static void test_out_urgent_inline(void **state)
{
	struct ux *s = *state;
	struct inproc *f = s->f;
	uint8_t fr[256], rx[2048], got[8];
	struct pkt_ipv4_view v;
	uint32_t server_isn, seq;
	size_t have = 0;
	int conn;

	guest_syn(f, "198.18.0.1", 40003, 5001, 1000);
	conn = inproc_accept(s->sidecar);
	inproc_expect_v2_header(conn, SIDECAR_SOURCE, "198.18.0.1", 40003, 5001);
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 40003, 0x12, &v);
	server_isn = inproc_be32(v.l4 + 4);
	seq = server_isn + 1;
	inproc_send(f, fr, pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(GUEST),
				   inproc_ip("198.18.0.1"), 40003, 5001, 1001, seq, 0x10, NULL, 0));
	assert_int_equal(write(conn, "ab", 2), 2);
	inproc_pump(20);
	if (send(conn, "!", 1, MSG_OOB) < 0) {
		assert_int_equal(errno, EOPNOTSUPP);
		close(conn);
		skip();
	}
	assert_int_equal(write(conn, "cd", 2), 2);
	for (int i = 0; i < 16 && have < 5; i++) {
		size_t off, n;

		inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 40003, 0x10, &v);
		off = (size_t)(v.l4[12] >> 4) * 4;
		n = v.l4_len - off;
		if (!n)
			continue;
		assert_true(have + n <= sizeof(got));
		memcpy(got + have, v.l4 + off, n);
		have += n;
		seq += (uint32_t)n;
		inproc_send(f, fr, pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(GUEST),
					   inproc_ip("198.18.0.1"), 40003, 5001, 1001, seq, 0x10,
					   NULL, 0));
	}
	assert_int_equal(have, 5);
	assert_memory_equal(got, "ab!cd", 5);
	close(conn);
}

/*
 * The sidecar reads what it has and closes while libslirp still holds guest
 * data for it (the unix socket had filled up).  The kernel then marks the
 * socket shut both ways: POLLHUP for good.  Handed to libslirp as is, that
 * HUP made it re-read EOF every loop turn and never try the write that
 * fails and ends the connection: 100% CPU.  Now the connection ends (a FIN
 * or RST reaches the guest) and the loop goes idle.
 */
static void test_out_hangup_with_guest_data_pending(void **state)
{
	struct ux *s = *state;
	struct inproc *f = s->f;
	static uint8_t fr[16384 + 128], rx[70000];
	uint8_t buf[65536];
	struct pkt_ipv4_view v;
	uint32_t seq = 1001, acked = 1001, win = 0, server_isn;
	gint64 end, idle_since;
	bool ended = false;
	size_t len, polled;
	int conn;

	polled = netstack_polled_sockets(f->d.ns);
	guest_syn(f, "198.18.0.1", 40100, 5001, 1000);
	conn = inproc_accept(s->sidecar);
	inproc_expect_v2_header(conn, SIDECAR_SOURCE, "198.18.0.1", 40100, 5001);
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 40100, 0x12, &v);
	server_isn = inproc_be32(v.l4 + 4);
	win = (uint32_t)v.l4[14] << 8 | v.l4[15];

	/* Fill the unix socket and libslirp's buffer: send while the window allows. */
	memset(buf, 'x', sizeof(buf));
	end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
	idle_since = g_get_monotonic_time();
	while (g_get_monotonic_time() < end &&
	       g_get_monotonic_time() - idle_since < 300 * 1000) {
		int64_t room = (int64_t)acked + win - seq;
		size_t n = room > 0 ? MIN((size_t)room, (size_t)16384) : 0;

		if (n) {
			len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(GUEST), inproc_ip("198.18.0.1"),
				      40100, 5001, seq, server_isn + 1, 0x10, buf, n);
			inproc_send(f, fr, len);
			seq += (uint32_t)n;
		}
		/* Take every frame the daemon has, so it never stops reading ours. */
		while ((len = inproc_recv(f, rx, sizeof(rx), n ? 1 : 10)) > 0) {
			uint32_t a;

			if (pkt_parse_ipv4(rx, len, &v) || v.proto != IPPROTO_TCP || !(v.l4[13] & 0x10))
				continue;
			a = inproc_be32(v.l4 + 8);
			win = (uint32_t)v.l4[14] << 8 | v.l4[15];
			if (a != acked)
				idle_since = g_get_monotonic_time();
			acked = a;
		}
	}
	/* The window closed with more than the socket buffer in flight. */
	assert_true(seq - 1001 > 512 * 1024);

	/* The sidecar takes what the socket holds and goes away. */
	while (read(conn, buf, sizeof(buf)) > 0)
		;
	close(conn);

	end = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
	while (!ended && g_get_monotonic_time() < end) {
		len = inproc_recv(f, rx, sizeof(rx), 20);
		if (len && pkt_parse_ipv4(rx, len, &v) == 0 && v.proto == IPPROTO_TCP &&
		    (v.l4[13] & 0x05))
			ended = true;
	}
	assert_true(ended);
	inproc_assert_no_spin(500, 30);
	/*
	 * libslirp's write met EPIPE: it wants nothing more from the socket,
	 * which leaves the poll set (it stayed, HUP every turn, before).
	 */
	assert_int_equal(netstack_polled_sockets(f->d.ns), polled);
}

/* Every way the sidecar can be missing: a reset from D:P at once, counted. */
static void expect_out_reset(struct ux *s)
{
	struct inproc *f = s->f;
	uint8_t rx[2048];
	struct pkt_ipv4_view v;
	gint64 start = g_get_monotonic_time();

	guest_syn(f, "198.18.0.1", 43000, 5001, 5000);
	inproc_expect_segment(f, rx, sizeof(rx), "198.18.0.1", 5001, 43000, 0x14, &v);
	assert_int_equal(inproc_be32(v.l4 + 8), 5001);
	assert_true(g_get_monotonic_time() - start < G_USEC_PER_SEC);
	assert_int_equal(bridge_stats(f->d.br)->connect_failed, 1);
	assert_int_equal(bridge_stats(f->d.br)->unix_leg_failures, 1);
	assert_int_equal(bridge_stats(f->d.br)->unix_legs, 0);
	assert_int_equal(bridge_stats(f->d.br)->headers_written, 0);
	inproc_assert_no_spin(300, 33);
	/* libslirp let go of the socket: the flow is closed, nothing leaks into OPEN. */
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_OPEN), 0);
	assert_int_equal(bridge_flow_count(f->d.br, FLOW_CONNECTING), 0);
}

static void test_out_no_file(void **state)
{
	expect_out_reset(*state);
}

static void test_out_not_listening(void **state)
{
	expect_out_reset(*state);
}

static void test_out_backlog_full(void **state)
{
	struct ux *s = *state;

	expect_out_reset(s);
	/* The one queued connection was the test's own, not the guest's. */
	close(accept4(s->sidecar, NULL, NULL, SOCK_CLOEXEC));
	assert_int_equal(accept4(s->sidecar, NULL, NULL, SOCK_CLOEXEC), -1);
}

/* --------------------------------------------------------------- inbound */

static size_t v2_header(uint8_t *buf, const char *src, uint16_t sport)
{
	struct proxy_addrs a = {
		.src = inproc_ip(src), .dst = inproc_ip("198.18.0.2"),
		.sport = htons(sport), .dport = htons(GUEST_PORT),
	};

	return (size_t)proxy_encode(PROXY_V2, &a, buf);
}

/* The sidecar's connection to the unix exposed port reaches the guest from the header's client. */
static void test_in_header_gives_client(void **state)
{
	struct ux *s = *state;
	uint8_t hdr[PROXY_HDR_MAX], buf[64];
	struct inproc_gconn c;
	int fd = unix_connect(s->in_path);
	size_t n;

	assert_int_equal(write(fd, hdr, v2_header(hdr, CLIENT_IP, 41000)), 28);
	assert_int_equal(write(fd, "ping", 4), 4);
	assert_true(inproc_guest_expect_syn(s->f, GUEST_PORT, &c, INPROC_WAIT_MS));
	assert_int_equal(c.peer.s_addr, inproc_ip(CLIENT_IP).s_addr);
	assert_int_equal(c.peer_port, 41000);
	inproc_guest_send(s->f, &c, 0x12, NULL, 0);
	n = inproc_guest_recv_data(s->f, &c, buf, sizeof(buf));
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "ping", 4);
	inproc_guest_send(s->f, &c, 0x18, "pong", 4);
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), INPROC_WAIT_MS), 4);
	assert_memory_equal(buf, "pong", 4);
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_headers[2], 1);
	assert_int_equal(unixexpose_stats(s->f->d.ux)->adopted, 1);
	close(fd);
}

/* Nothing reaches the guest, the client is closed promptly, the reason is counted. */
static void expect_in_refused(struct ux *s, int fd, enum bridge_inbound_drop why)
{
	struct inproc_gconn c;
	uint8_t buf[64];
	gint64 start = g_get_monotonic_time();
	ssize_t n = inproc_client_read(fd, buf, sizeof(buf), 2000);

	assert_true(n == 0 || n == -ECONNRESET);
	assert_true(g_get_monotonic_time() - start < 2 * G_USEC_PER_SEC);
	assert_false(inproc_guest_expect_syn(s->f, GUEST_PORT, &c, 300));
	assert_int_equal(bridge_stats(s->f->d.br)->inbound_dropped[why], 1);
	close(fd);
}

static void test_in_bad_header(void **state)
{
	struct ux *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	size_t len = v2_header(hdr, CLIENT_IP, 45000);
	int fd = unix_connect(s->in_path);

	hdr[12] = 0x31; /* version 3 */
	assert_int_equal(write(fd, hdr, len), (ssize_t)len);
	expect_in_refused(s, fd, BRIDGE_IN_INVALID);
	assert_int_equal(bridge_stats(s->f->d.br)->header_errors[PROXY_ERR_VERSION], 1);
}

static void test_in_missing_header(void **state)
{
	struct ux *s = *state;
	int fd = unix_connect(s->in_path);

	assert_int_equal(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	expect_in_refused(s, fd, BRIDGE_IN_MISSING);
}

/* Silent: closed at --inbound-header-timeout (1 s), like a TCP exposed port. */
static void test_in_silent_times_out(void **state)
{
	struct ux *s = *state;
	int fd = unix_connect(s->in_path);

	expect_in_refused(s, fd, BRIDGE_IN_TIMEOUT);
}

/* The local port of the daemon's relay hostfwd (the expose entry that is a relay). */
static uint16_t relay_port(struct ux *s)
{
	const GArray *e = s->f->cfg.expose;

	for (guint i = 0; i < e->len; i++) {
		uint16_t p = g_array_index(e, struct bridge_expose, i).host_port;

		if (unixexpose_is_relay(s->f->d.ux, p))
			return p;
	}
	fail_msg("no relay port");
	return 0;
}

/*
 * Round the unix socket: a TCP client of the internal relay port, with a
 * perfectly good header, is refused whatever the mode (here: off, where a
 * TCP exposed port would let anyone in).
 *
 * The header is written before the loop runs again: the daemon refuses a
 * stranger as it accepts it, with a reset, so a write after the loop had
 * a turn races that reset (ECONNRESET, seen once in CI).  The kernel
 * completes a loopback connect into the listener's backlog by itself.
 */
static void test_in_stranger_refused(void **state)
{
	struct ux *s = *state;
	uint8_t hdr[PROXY_HDR_MAX];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(relay_port(s)) };
	struct timeval bound = { .tv_sec = 2 }; /* a blocking connect() waits no longer */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof(bound)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, hdr, v2_header(hdr, CLIENT_IP, 46000)), 28);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	expect_in_refused(s, fd, BRIDGE_IN_UNTRUSTED);
	assert_int_equal(unixexpose_stats(s->f->d.ux)->strangers, 1);
}

/*
 * Out of descriptors: a unix client the listener cannot accept stays
 * queued, the listener rests instead of waking the loop at once (it stays
 * readable), and the client is served once descriptors come back.
 */
static void test_in_out_of_descriptors(void **state)
{
	struct ux *s = *state;
	uint8_t hdr[PROXY_HDR_MAX], buf[64];
	struct rlimit old, tight;
	struct inproc_gconn c;
	uint64_t errors;
	int fd;

	inproc_skip_if_valgrind_takes_emfile();
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	tight = old;
	tight.rlim_cur = inproc_fd_limit_leaving(old.rlim_cur, 0);
	fd = unix_connect(s->in_path);
	assert_int_equal(write(fd, hdr, v2_header(hdr, CLIENT_IP, 46500)), 28);
	assert_int_equal(write(fd, "ping", 4), 4);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
	inproc_pump(300);
	errors = unixexpose_stats(s->f->d.ux)->accept_errors;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	/*
	 * One refused accept() per rest of a second; without the rest, every
	 * turn of the loop tries again and counts one (the pump's turns sleep
	 * between them, so the CPU it would take is no measure here).
	 */
	assert_true(errors >= 1 && errors <= 2);
	assert_int_equal(unixexpose_stats(s->f->d.ux)->accepted, 0);

	assert_true(inproc_guest_expect_syn(s->f, GUEST_PORT, &c, 3000));
	assert_int_equal(c.peer.s_addr, inproc_ip(CLIENT_IP).s_addr);
	inproc_guest_send(s->f, &c, 0x12, NULL, 0);
	assert_int_equal(inproc_guest_recv_data(s->f, &c, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(unixexpose_stats(s->f->d.ux)->adopted, 1);
	close(fd);
}

/* Pump until @count clients were put under libslirp's descriptor, or @ms passed. */
static bool wait_adopted(struct ux *s, uint64_t count, int ms)
{
	const struct unixexpose_stats *us = unixexpose_stats(s->f->d.ux);

	for (int i = 0; i < ms / 10 && us->adopted < count; i++)
		inproc_pump(10);
	return us->adopted >= count;
}

/*
 * While the bridge holds libslirp's accepts (refused clients' sockets at
 * their bound: a silent guest and --max-inbound-flows 2 here), the unix
 * listener accepts nobody either, and a client already handed over is not
 * timed out: both wait for the hold to end, not 5 s for a hand-over that
 * cannot come.  Once the guest speaks and the held sockets go, both are
 * taken (and refused, as the third and fourth were: the limit's two flows
 * are still there).
 */
static void test_in_hold_stops_listener(void **state)
{
	struct ux *s = *state;
	const struct unixexpose_stats *us = unixexpose_stats(s->f->d.ux);
	const struct bridge_stats *st = bridge_stats(s->f->d.br);
	uint8_t buf[16];
	int fds[6];
	ssize_t n;

	for (int i = 0; i < 3; i++) {
		fds[i] = unix_connect(s->in_path);
		assert_true(wait_adopted(s, (uint64_t)i + 1, INPROC_WAIT_MS));
	}
	/*
	 * Two flows, then the third client refused and held; the fourth too,
	 * which starts the hold; the fifth, accepted with it, is handed over.
	 */
	fds[3] = unix_connect(s->in_path);
	fds[4] = unix_connect(s->in_path);
	assert_true(wait_adopted(s, 4, INPROC_WAIT_MS));
	assert_int_equal(st->inbound_held, 2);
	fds[5] = unix_connect(s->in_path);
	inproc_pump(500);
	assert_int_equal(us->accepted, 5);
	assert_int_equal(us->adopted, 4);
	inproc_pump((UNIXEXPOSE_ADOPT_TIMEOUT_S + 1) * 1000);
	assert_int_equal(us->timeouts, 0);
	assert_int_equal(us->accepted, 5);

	inproc_arp_gateway(s->f);
	/* A SYN that waited over a second for the MAC comes again 18 s after its accept. */
	assert_true(wait_adopted(s, 6, 30000));
	assert_int_equal(us->timeouts, 0);
	for (int i = 4; i < 6; i++) {
		n = inproc_client_read(fds[i], buf, sizeof(buf), INPROC_WAIT_MS);
		assert_true(n == 0 || n == -ECONNRESET);
	}
	assert_int_equal(st->inbound_dropped[BRIDGE_IN_INBOUND_FULL], 4);
	for (int i = 0; i < 6; i++)
		close(fds[i]);
}

/* Mode off: no header read; the guest sees the gateway, as for a loopback TCP client. */
static void test_in_off_mode(void **state)
{
	struct ux *s = *state;
	struct inproc_gconn c;
	uint8_t buf[64];
	int fd = unix_connect(s->in_path);

	assert_int_equal(write(fd, "hi", 2), 2);
	assert_true(inproc_guest_expect_syn(s->f, GUEST_PORT, &c, INPROC_WAIT_MS));
	assert_int_equal(c.peer.s_addr, inproc_ip("10.0.2.2").s_addr);
	inproc_guest_send(s->f, &c, 0x12, NULL, 0);
	assert_int_equal(inproc_guest_recv_data(s->f, &c, buf, sizeof(buf)), 2);
	close(fd);
}

int main(void)
{
	/* As daemon/main.c: libslirp's own send() to a vanished unix peer is EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_out_header_payload_hangup, setup_listening,
						teardown),
		cmocka_unit_test_setup_teardown(test_out_urgent_inline, setup_listening, teardown),
		cmocka_unit_test_setup_teardown(test_out_hangup_with_guest_data_pending,
						setup_listening, teardown),
		cmocka_unit_test_setup_teardown(test_out_no_file, setup_no_file, teardown),
		cmocka_unit_test_setup_teardown(test_out_not_listening, setup_not_listening,
						teardown),
		cmocka_unit_test_setup_teardown(test_out_backlog_full, setup_full, teardown),
		cmocka_unit_test_setup_teardown(test_in_header_gives_client, setup_listening,
						teardown),
		cmocka_unit_test_setup_teardown(test_in_bad_header, setup_listening, teardown),
		cmocka_unit_test_setup_teardown(test_in_missing_header, setup_listening, teardown),
		cmocka_unit_test_setup_teardown(test_in_silent_times_out, setup_listening, teardown),
		cmocka_unit_test_setup_teardown(test_in_stranger_refused, setup_off, teardown),
		cmocka_unit_test_setup_teardown(test_in_out_of_descriptors, setup_listening, teardown),
		cmocka_unit_test_setup_teardown(test_in_off_mode, setup_off, teardown),
		cmocka_unit_test_setup_teardown(test_in_hold_stops_listener,
						setup_off_limited_silent_guest, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
