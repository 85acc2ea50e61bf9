/* test_slirp_quirks.c - one test per libslirp behaviour in netstack/slirp_quirks.h, against a real libslirp. */

/*
 * Each test_quirk_NAME asserts the behaviour of slirp quirk NAME itself, so
 * that a libslirp upgrade that changes it fails here, by name.  Most drive a
 * netstack (the daemon's libslirp wrapper) without the bridge, whose hooks
 * here only record what libslirp did and when, and hold every frame it sends
 * (the guest is the test).  Where the netstack masks a behaviour on purpose
 * (the listen backlog) or the behaviour is a crash, a bare Slirp is used.
 *
 * Network safety: the process first enters a namespace of its own with no
 * route out (tests/lib/testns.h); every host socket is on its loopback.  All
 * waits are bounded (WAIT_MS); the crash test's child is reaped by its PID.
 */

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <glib.h>
#include <libslirp.h>

#include "netstack/netstack.h"
#include "netstack/slirp_quirks.h"
#include "tests/lib/heap.h"
#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"
#include "tests/lib/testns.h"

#define WAIT_MS 3000
#define MAX_FRAMES 64
#define FRAME_CAP (PKT_ETH_HLEN + 65536)
#define ICMP_ID 0x4242

static const uint8_t gw_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };

/* What libslirp did, as the netstack's hooks saw it. */
struct fixture {
	struct netstack *ns;
	bool in_input;                 /* inside netstack_input() */
	unsigned int polls;            /* poll passes over (hooks->poll_done) */
	/* Registrations. */
	unsigned int registered;
	int reg_fd;
	bool reg_in_input;
	int reg_peer_errno;            /* getpeername() at registration: ENOTCONN before connect() */
	unsigned int reg_frames;       /* frames sent before the registration */
	unsigned int reg_poll;         /* poll pass of the registration */
	unsigned int closed;
	/* The first POLLOUT of the tagged socket. */
	bool pollout_seen;
	unsigned int pollout_frames;   /* frames sent before it */
	bool shutdown_on_pollout;      /* make the connect probe fail */
	/* Frames to the guest, as libslirp built them. */
	bool scribble;                 /* overwrite each frame after recording it */
	unsigned int nframes;
	uint8_t *frames[MAX_FRAMES];
	size_t lens[MAX_FRAMES];
	unsigned int frame_poll[MAX_FRAMES];
};

static enum netstack_verdict hook_guest_frame(uint8_t *frame, size_t len, void *opaque)
{
	struct fixture *f = opaque;

	(void)frame;
	(void)len;
	f->in_input = true;
	return NETSTACK_PASS;
}

static void hook_guest_frame_done(void *opaque)
{
	((struct fixture *)opaque)->in_input = false;
}

static void hook_poll_done(void *opaque)
{
	((struct fixture *)opaque)->polls++;
}

static enum netstack_verdict hook_stack_frame(uint8_t *frame, size_t len, void *opaque)
{
	struct fixture *f = opaque;

	if (f->nframes < MAX_FRAMES && len <= FRAME_CAP) {
		memcpy(f->frames[f->nframes], frame, len);
		f->lens[f->nframes] = len;
		f->frame_poll[f->nframes] = f->polls;
		f->nframes++;
	}
	if (f->scribble)
		memset(frame, 0xa5, len);
	/* The test is the guest: nothing goes further. */
	return NETSTACK_CONSUMED;
}

static void hook_fd_registered(int fd, void *opaque)
{
	struct fixture *f = opaque;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);

	f->registered++;
	f->reg_fd = fd;
	f->reg_in_input = f->in_input;
	f->reg_peer_errno = getpeername(fd, (struct sockaddr *)&sa, &salen) < 0 ? errno : 0;
	f->reg_frames = f->nframes;
	f->reg_poll = f->polls;
	netstack_tag_fd(f->ns, fd, f);
}

static void hook_fd_closed(int fd, void *tag, void *opaque)
{
	(void)fd;
	(void)tag;
	((struct fixture *)opaque)->closed++;
}

static int hook_fd_events(int fd, int revents, void *tag, void *opaque)
{
	struct fixture *f = opaque;

	(void)tag;
	if (!f->pollout_seen && (revents & SLIRP_POLL_OUT)) {
		f->pollout_seen = true;
		f->pollout_frames = f->nframes;
		if (f->shutdown_on_pollout)
			shutdown(fd, SHUT_RDWR);
	}
	return revents;
}

static const struct netstack_hooks recorder = {
	.poll_done = hook_poll_done,
	.guest_frame = hook_guest_frame,
	.guest_frame_done = hook_guest_frame_done,
	.stack_frame = hook_stack_frame,
	.fd_registered = hook_fd_registered,
	.fd_closed = hook_fd_closed,
	.fd_events = hook_fd_events,
};

static int sink_tx(uint8_t *frame, size_t len, void *opaque)
{
	(void)frame;
	(void)len;
	(void)opaque;
	return 0;
}

static void sink_flush(void *opaque)
{
	(void)opaque;
}

static const struct netstack_ops sink_ops = { .tx_frame = sink_tx, .tx_flush = sink_flush };

static int setup(void **state)
{
	struct fixture *f = g_new0(struct fixture, 1);
	struct netstack_config cfg = {
		.network = inproc_ip("10.0.2.0"), .netmask = inproc_ip("255.255.255.0"),
		.gateway = inproc_ip("10.0.2.2"), .dns = inproc_ip("10.0.2.3"),
		.guest = inproc_ip(INPROC_GUEST), .mtu = 1500,
	};
	uint8_t arp[64];
	size_t len;

	for (unsigned int i = 0; i < MAX_FRAMES; i++)
		f->frames[i] = g_malloc(FRAME_CAP);
	f->reg_fd = -1;
	assert_int_equal(netstack_new(&cfg, &sink_ops, f, &f->ns), 0);
	netstack_set_hooks(f->ns, &recorder, f);
	/* libslirp learns the guest's MAC, so it sends to it instead of asking. */
	len = pkt_arp_request(arp, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"));
	netstack_input(f->ns, arp, len);
	f->nframes = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	netstack_free(f->ns);
	for (unsigned int i = 0; i < MAX_FRAMES; i++)
		g_free(f->frames[i]);
	g_free(f);
	return 0;
}

/* Close with a reset (SO_LINGER 0). */
static void close_reset_fd(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* A listening TCP socket on 127.0.0.1; its port in @port. */
static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* The guest's SYN from @sport to @dst:@dport, with MSS @mss and window scale 7. */
static size_t guest_syn(uint8_t *buf, const char *dst, uint16_t sport, uint16_t dport,
			uint16_t mss)
{
	static const uint8_t ws[4] = { 1, 3, 3, 7 };    /* NOP, window scale 7 */
	size_t len = pkt_tcp(buf, gw_mac, inproc_ip(INPROC_GUEST), inproc_ip(dst), sport, dport,
			     1000, 0, TH_SYN, ws, sizeof(ws));
	uint8_t *tcp = buf + PKT_ETH_HLEN + 20;

	tcp[12] = 7 << 4;              /* MSS and the four bytes above are options */
	tcp[22] = (uint8_t)(mss >> 8);
	tcp[23] = (uint8_t)mss;
	pkt_fix_csums(buf, len);
	return len;
}

/* Index of the first recorded frame that is a TCP segment to the guest with @flags set, or -1. */
static int find_tcp(const struct fixture *f, unsigned int from, uint8_t flags)
{
	for (unsigned int i = from; i < f->nframes; i++) {
		struct pkt_ipv4_view v;

		if (!pkt_parse_ipv4(f->frames[i], f->lens[i], &v) && v.proto == IPPROTO_TCP &&
		    v.l4_len >= 20 && (v.l4[13] & flags) == flags)
			return (int)i;
	}
	return -1;
}

/* Run the loop until a TCP segment with @flags is recorded (WAIT_MS); its index. */
static int wait_tcp(struct fixture *f, uint8_t flags)
{
	gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
	int i;

	while ((i = find_tcp(f, 0, flags)) < 0 && g_get_monotonic_time() < end)
		inproc_pump(5);
	return i;
}

/* The TCP option @kind in segment @v, or NULL. */
static const uint8_t *tcp_option(const struct pkt_ipv4_view *v, uint8_t kind)
{
	size_t hlen = (size_t)(v->l4[12] >> 4) * 4;

	for (size_t i = 20; i < hlen && i < v->l4_len;) {
		if (v->l4[i] == 0)
			break;
		if (v->l4[i] == 1) {
			i++;
			continue;
		}
		if (i + 1 >= hlen || v->l4[i + 1] < 2)
			break;
		if (v->l4[i] == kind)
			return v->l4 + i;
		i += v->l4[i + 1];
	}
	return NULL;
}

static void test_quirk_register_in_input(void **state)
{
	struct fixture *f = *state;
	uint8_t fr[128];
	uint16_t port;
	int lfd = listen_loopback(&port);

	netstack_input(f->ns, fr, guest_syn(fr, "10.0.2.2", 40000, port, 1460));
	assert_int_equal(f->registered, 1);
	assert_true(f->reg_in_input);
	/* Registered before connect(): the socket has no peer yet. */
	assert_int_equal(f->reg_peer_errno, ENOTCONN);
	close(lfd);
}

static void test_quirk_synack_after_pollout(void **state)
{
	struct fixture *f = *state;
	uint8_t fr[128];
	uint16_t port;
	int lfd = listen_loopback(&port), i;

	netstack_input(f->ns, fr, guest_syn(fr, "10.0.2.2", 40001, port, 1460));
	assert_int_equal(find_tcp(f, 0, TH_SYN | TH_ACK), -1);
	i = wait_tcp(f, TH_SYN | TH_ACK);
	assert_true(i >= 0);
	assert_true(f->pollout_seen);
	/* The hook saw POLLOUT before libslirp built its SYN-ACK. */
	assert_true((unsigned int)i >= f->pollout_frames);
	close(lfd);
}

static void test_quirk_connect_probe(void **state)
{
	struct fixture *f = *state;
	uint8_t fr[128];
	struct pkt_ipv4_view v;
	uint16_t port;
	int lfd = listen_loopback(&port), i;

	f->shutdown_on_pollout = true;
	netstack_input(f->ns, fr, guest_syn(fr, "10.0.2.2", 40002, port, 1460));
	i = wait_tcp(f, TH_RST);
	assert_true(i >= 0);
	assert_true(f->pollout_seen);
	assert_int_equal(find_tcp(f, 0, TH_SYN | TH_ACK), -1);
	assert_int_equal(pkt_parse_ipv4(f->frames[i], f->lens[i], &v), 0);
	/* A reset that acknowledges the guest's SYN (sequence 1000). */
	assert_true(v.l4[13] & TH_ACK);
	assert_int_equal(pkt_get32(v.l4 + 8), 1001);
	close(lfd);
}

/* An echo request from the guest to the gateway, which libslirp answers itself. */
static size_t echo_to_gateway(uint8_t *buf, uint16_t seq)
{
	static const uint8_t payload[32] = "slirp quirk send_packet_copy";

	return pkt_icmp_echo(buf, gw_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"), ICMP_ID,
			     seq, payload, sizeof(payload));
}

static void test_quirk_send_packet_private_copy(void **state)
{
	struct fixture *f = *state;
	uint8_t fr[128];
	struct pkt_ipv4_view v;

	/* Writing into the buffer does not fault; what we wrote never comes back. */
	f->scribble = true;
	netstack_input(f->ns, fr, echo_to_gateway(fr, 1));
	netstack_input(f->ns, fr, echo_to_gateway(fr, 1));
	assert_int_equal(f->nframes, 2);
	assert_int_equal(f->lens[0], f->lens[1]);
	/* The same reply both times but for the IP id (and so the IP checksum). */
	assert_memory_equal(f->frames[0], f->frames[1], PKT_ETH_HLEN + 4);
	assert_memory_equal(f->frames[0] + PKT_ETH_HLEN + 20, f->frames[1] + PKT_ETH_HLEN + 20,
			    f->lens[0] - PKT_ETH_HLEN - 20);
	assert_int_equal(pkt_parse_ipv4(f->frames[1], f->lens[1], &v), 0);
	assert_true(v.ip_csum_ok);
	assert_int_equal(v.l4[0], 0);  /* echo reply */
	assert_memory_equal(f->frames[1], pkt_guest_mac, 6);
}

/* The listening socket bound to 127.0.0.1:@port, found as the netstack finds it. */
static int find_listener(uint16_t port)
{
	g_autoptr(GDir) dir = g_dir_open("/proc/self/fd", 0, NULL);
	const char *name;

	assert_non_null(dir);
	while ((name = g_dir_read_name(dir))) {
		int fd = atoi(name), on = 0;
		socklen_t len = sizeof(on);
		struct sockaddr_in sa;
		socklen_t salen = sizeof(sa);

		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on &&
		    getsockname(fd, (struct sockaddr *)&sa, &salen) == 0 &&
		    sa.sin_family == AF_INET && ntohs(sa.sin_port) == port)
			return fd;
	}
	return -1;
}

/* A listening socket's backlog: Linux reports it in tcpi_sacked. */
static unsigned int listen_backlog(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	assert_int_equal(ti.tcpi_state, TCP_LISTEN);
	return ti.tcpi_sacked;
}

/* A bare Slirp: what the netstack would change stays as libslirp made it. */
static ssize_t bare_send(const void *buf, size_t len, void *opaque)
{
	(void)buf;
	(void)opaque;
	return (ssize_t)len;
}

static void bare_error(const char *msg, void *opaque)
{
	(void)msg;
	(void)opaque;
}

static int64_t bare_clock(void *opaque)
{
	(void)opaque;
	return g_get_monotonic_time() * 1000;
}

static void *bare_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	(void)cb;
	(void)cb_opaque;
	(void)opaque;
	return NULL;
}

static void bare_timer_free(void *timer, void *opaque)
{
	(void)timer;
	(void)opaque;
}

static void bare_timer_mod(void *timer, int64_t expire, void *opaque)
{
	(void)timer;
	(void)expire;
	(void)opaque;
}

static void bare_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void bare_notify(void *opaque)
{
	(void)opaque;
}

static const SlirpCb bare_cb = {
	.send_packet = bare_send, .guest_error = bare_error, .clock_get_ns = bare_clock,
	.timer_new = bare_timer_new, .timer_free = bare_timer_free, .timer_mod = bare_timer_mod,
	.register_poll_fd = bare_fd, .unregister_poll_fd = bare_fd, .notify = bare_notify,
};

static Slirp *bare_slirp(void)
{
	SlirpConfig sc = {
		.version = 1, .in_enabled = true,
		.vnetwork = inproc_ip("10.0.2.0"), .vnetmask = inproc_ip("255.255.255.0"),
		.vhost = inproc_ip("10.0.2.2"), .vdhcp_start = inproc_ip(INPROC_GUEST),
		.vnameserver = inproc_ip("10.0.2.3"), .if_mtu = 1500, .if_mru = 1500,
	};
	Slirp *s = slirp_new(&sc, &bare_cb, NULL);

	assert_non_null(s);
	return s;
}

static void test_quirk_hostfwd_backlog_1(void **state)
{
	struct fixture *f = *state;
	struct in_addr lo = inproc_ip("127.0.0.1"), any = { .s_addr = INADDR_ANY };
	uint16_t port = inproc_free_port(), port2 = inproc_free_port();
	Slirp *s = bare_slirp();
	int fd;

	assert_int_equal(slirp_add_hostfwd(s, 0, lo, port, any, 80), 0);
	fd = find_listener(port);
	assert_true(fd >= 0);
	assert_int_equal(listen_backlog(fd), 1);
	slirp_cleanup(s);
	/* The netstack raises it. */
	assert_int_equal(netstack_expose_tcp(f->ns, lo, port2, 80), 0);
	fd = find_listener(port2);
	assert_true(fd >= 0);
	assert_true(listen_backlog(fd) > 1);
}

static void test_quirk_hostfwd_not_registered(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(netstack_expose_tcp(f->ns, inproc_ip("127.0.0.1"), inproc_free_port(), 80),
			 0);
	inproc_pump(20);
	assert_int_equal(f->registered, 0);
}

/* Expose a port, connect a client from @client_addr to it; the SYN libslirp sends the guest. */
static int inbound_syn(struct fixture *f, const char *client_addr, struct pkt_ipv4_view *v,
		       uint16_t *client_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = inproc_ip(client_addr) };
	struct in_addr any = { .s_addr = INADDR_ANY };
	socklen_t len = sizeof(sa);
	uint16_t port = inproc_free_port();
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), i;

	assert_int_equal(netstack_expose_tcp(f->ns, any, port, 8080), 0);
	assert_true(c >= 0);
	assert_int_equal(bind(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(c, (struct sockaddr *)&sa, &len), 0);
	*client_port = ntohs(sa.sin_port);
	sa.sin_port = htons(port);
	assert_true(connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS);
	i = wait_tcp(f, TH_SYN);
	assert_true(i >= 0);
	assert_int_equal(pkt_parse_ipv4(f->frames[i], f->lens[i], v), 0);
	assert_int_equal(v->l4[2] << 8 | v->l4[3], 8080);
	return c;
}

static void test_quirk_accept_then_syn(void **state)
{
	struct fixture *f = *state;
	struct pkt_ipv4_view v;
	uint16_t cport;
	int c = inbound_syn(f, "127.0.0.1", &v, &cport), i = find_tcp(f, 0, TH_SYN);

	assert_int_equal(f->registered, 1);
	assert_false(f->reg_in_input);
	/* Registered first, and the SYN went out in the same poll pass. */
	assert_true((unsigned int)i >= f->reg_frames);
	assert_int_equal(f->frame_poll[i], f->reg_poll);
	close(c);
}

static void test_quirk_loopback_client_as_gateway(void **state)
{
	struct fixture *f = *state;
	struct pkt_ipv4_view v;
	uint16_t cport;
	int c = inbound_syn(f, "127.0.0.1", &v, &cport);

	assert_int_equal(v.src.s_addr, inproc_ip("10.0.2.2").s_addr);
	assert_int_equal(v.l4[0] << 8 | v.l4[1], cport);
	close(c);
	/* A client that is not on loopback keeps its own address. */
	f->nframes = 0;
	c = inbound_syn(f, TESTNS_POD_ADDRESS, &v, &cport);
	assert_int_equal(v.src.s_addr, inproc_ip(TESTNS_POD_ADDRESS).s_addr);
	assert_int_equal(v.l4[0] << 8 | v.l4[1], cport);
	close(c);
}

/* A guest datagram to @dst arrives on a UDP socket bound to 127.0.0.1. */
static void udp_reaches_loopback(struct fixture *f, const char *dst)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	uint8_t fr[128], got[16];
	gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
	ssize_t n;

	assert_int_equal(bind(u, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(u, (struct sockaddr *)&sa, &len), 0);
	netstack_input(f->ns, fr, pkt_udp(fr, gw_mac, inproc_ip(INPROC_GUEST), inproc_ip(dst), 40010,
					  ntohs(sa.sin_port), "quirk", 5));
	while ((n = recv(u, got, sizeof(got), 0)) < 0 && errno == EAGAIN &&
	       g_get_monotonic_time() < end)
		inproc_pump(5);
	assert_int_equal(n, 5);
	assert_memory_equal(got, "quirk", 5);
	close(u);
}

static void test_quirk_gateway_to_loopback(void **state)
{
	udp_reaches_loopback(*state, "10.0.2.2");
}

static void test_quirk_broadcast_to_loopback(void **state)
{
	udp_reaches_loopback(*state, "255.255.255.255");
}

/* An IPv4 fragment of 8 bytes of an echo request: id @id, @first (offset 0, MF) or last (offset 8). */
static size_t echo_fragment(uint8_t *buf, uint16_t id, bool first)
{
	static const uint8_t body[8] = "fragment";
	size_t len = pkt_icmp_echo(buf, gw_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"),
				   ICMP_ID, 1, NULL, 0);
	uint8_t *ip = buf + PKT_ETH_HLEN;
	uint16_t sum;

	if (!first)
		memcpy(ip + 20, body, sizeof(body));
	ip[4] = (uint8_t)(id >> 8);
	ip[5] = (uint8_t)id;
	ip[6] = first ? 0x20 : 0x00;   /* MF on the first */
	ip[7] = first ? 0x00 : 0x01;   /* offset 0, or 1 x 8 bytes */
	ip[10] = ip[11] = 0;
	sum = (uint16_t)~pkt_csum_fold(pkt_csum_add(0, ip, 20));
	ip[10] = (uint8_t)(sum >> 8);
	ip[11] = (uint8_t)sum;
	return len;
}

/* In a forked child that is to crash: signals end it (cmocka's handlers would not), no core, a hang ends by SIGALRM. */
static void child_may_crash(unsigned int seconds)
{
	static const int fatal[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	struct rlimit no_core = { 0, 0 };

	for (size_t i = 0; i < G_N_ELEMENTS(fatal); i++)
		signal(fatal[i], SIG_DFL);
	setrlimit(RLIMIT_CORE, &no_core);
	alarm(seconds);
}

/* Reap child @pid: the signal that ended it, or 0 if it exited. */
static int child_end_signal(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void test_quirk_ip_reass_crash(void **state)
{
	uint8_t fr[128];
	size_t len = echo_fragment(fr, 0x77, false);
	pid_t pid;
	int sig;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		Slirp *s = bare_slirp();

		child_may_crash(10);
		slirp_input(s, fr, (int)len);
		slirp_cleanup(s);
		_exit(0);
	}
	/* Still crashes: the bridge's fragment drop must stay. */
	sig = child_end_signal(pid);
	assert_int_not_equal(sig, 0);
	assert_int_not_equal(sig, SIGALRM);
}

static void test_quirk_mbuf_mtu_sized(void **state)
{
	struct fixture *f = *state;
	uint8_t fr[128];
	size_t before;

	if (!test_heap_measurable())
		skip();
	/* 32 first fragments of 8 bytes, each a datagram of its own, all held by ip_reass. */
	before = test_heap_in_use();
	for (uint16_t id = 0; id < 32; id++)
		netstack_input(f->ns, fr, echo_fragment(fr, (uint16_t)(0x1000 + id), true));
	assert_int_equal(f->nframes, 0);
	/* A few mbufs may come from libslirp's free list; the rest cost the MTU each. */
	assert_true(test_heap_in_use() - before >= 24 * (size_t)NETSTACK_SLIRP_MTU);
}

/* Open a connection from the guest to a loopback listener; the SYN-ACK's view in @v. */
static int guest_connect(struct fixture *f, uint16_t sport, uint16_t mss, struct pkt_ipv4_view *v,
			 int *lfd)
{
	uint8_t fr[128];
	uint16_t port;
	int i;

	*lfd = listen_loopback(&port);
	netstack_input(f->ns, fr, guest_syn(fr, "10.0.2.2", sport, port, mss));
	i = wait_tcp(f, TH_SYN | TH_ACK);
	assert_true(i >= 0);
	assert_int_equal(pkt_parse_ipv4(f->frames[i], f->lens[i], v), 0);
	return port;
}

/*
 * A connection from the guest's @sport to a loopback listener, established:
 * the guest ACKs the SYN-ACK (its next sequence number is 1001) and the
 * listener accepts.  Returns the accepted socket; the listener in @lfd, its
 * port in @port and libslirp's ISN in @isn.
 */
static int guest_established(struct fixture *f, uint16_t sport, uint16_t mss, int *lfd,
			     int *port, uint32_t *isn)
{
	struct pkt_ipv4_view v;
	uint8_t fr[128];
	gint64 end;
	int c;

	*port = guest_connect(f, sport, mss, &v, lfd);
	*isn = pkt_get32(v.l4 + 4);
	netstack_input(f->ns, fr, pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST),
					  inproc_ip("10.0.2.2"), sport, (uint16_t)*port, 1001,
					  *isn + 1, TH_ACK, NULL, 0));
	end = g_get_monotonic_time() + WAIT_MS * 1000;
	while ((c = accept(*lfd, NULL, NULL)) < 0 && g_get_monotonic_time() < end)
		inproc_pump(5);
	assert_true(c >= 0);
	return c;
}

static void test_quirk_no_window_scaling(void **state)
{
	struct fixture *f = *state;
	struct pkt_ipv4_view v;
	int lfd;

	/* The guest offers window scaling; libslirp does not take it. */
	guest_connect(f, 40020, 1460, &v, &lfd);
	assert_null(tcp_option(&v, 3));
	assert_non_null(tcp_option(&v, 2));
	close(lfd);
}

static void test_quirk_maxseg_32k(void **state)
{
	struct fixture *f = *state;
	static uint8_t data[65536];
	struct pkt_ipv4_view v;
	size_t most = 0, sent = 0;
	gint64 end;
	int lfd, port, c = -1;
	uint32_t isn;

	/* The guest offers 65480: libslirp's own link allows it, TCP_MAXSEG_MAX does not. */
	c = guest_established(f, 40021, 65480, &lfd, &port, &isn);
	end = g_get_monotonic_time() + WAIT_MS * 1000;
	f->nframes = 0;
	while (sent < sizeof(data) && g_get_monotonic_time() < end) {
		ssize_t n = send(c, data + sent, sizeof(data) - sent, MSG_DONTWAIT);

		if (n > 0)
			sent += (size_t)n;
		inproc_pump(5);
	}
	assert_int_equal(sent, sizeof(data));
	while (most < 32768 && g_get_monotonic_time() < end) {
		inproc_pump(5);
		for (unsigned int i = 0; i < f->nframes; i++) {
			if (pkt_parse_ipv4(f->frames[i], f->lens[i], &v) || v.proto != IPPROTO_TCP)
				continue;
			most = MAX(most, v.l4_len - (size_t)(v.l4[12] >> 4) * 4);
		}
	}
	assert_int_equal(most, 32768);
	close(c);
	close(lfd);
}

/* The window of the last TCP segment to the guest recorded from @from on, or -1. */
static int last_window(const struct fixture *f, unsigned int from)
{
	int win = -1;

	for (unsigned int i = from; i < f->nframes; i++) {
		struct pkt_ipv4_view v;

		if (!pkt_parse_ipv4(f->frames[i], f->lens[i], &v) && v.proto == IPPROTO_TCP &&
		    v.l4_len >= 20)
			win = v.l4[14] << 8 | v.l4[15];
	}
	return win;
}

/*
 * The guest fills libslirp's receive window (its socket's peer reads
 * nothing); then the peer drains everything.  libslirp writes what it held
 * and has room again, but tells the guest nothing: tcp_output() sends a
 * pure window update only when the window grew by two segments or by half
 * the buffer, and with 32 KiB segments (maxseg_32k) against a window that
 * never exceeds 65535 (no_window_scaling) neither can happen.  The guest
 * would learn of the room only from its own zero-window probe, after its
 * persist timer (200 ms, then doubling).
 */
static void test_quirk_no_window_update(void **state)
{
	struct fixture *f = *state;
	static uint8_t data[32768], sink[65536];
	g_autofree uint8_t *fr = g_malloc(FRAME_CAP);
	struct pkt_ipv4_view v;
	int lfd, c = -1, small = 4096, win = 65535;
	uint32_t isn, seq = 1001;
	uint16_t port;
	gint64 end;

	lfd = listen_loopback(&port);
	assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	netstack_input(f->ns, fr, guest_syn(fr, "10.0.2.2", 40040, port, 65480));
	assert_true(wait_tcp(f, TH_SYN | TH_ACK) >= 0);
	assert_int_equal(pkt_parse_ipv4(f->frames[find_tcp(f, 0, TH_SYN | TH_ACK)],
					f->lens[find_tcp(f, 0, TH_SYN | TH_ACK)], &v), 0);
	isn = pkt_get32(v.l4 + 4);
	assert_int_equal(setsockopt(f->reg_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	netstack_input(f->ns, fr, pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST),
					  inproc_ip("10.0.2.2"), 40040, port, seq, isn + 1, TH_ACK,
					  NULL, 0));
	end = g_get_monotonic_time() + WAIT_MS * 1000;
	while ((c = accept(lfd, NULL, NULL)) < 0 && g_get_monotonic_time() < end)
		inproc_pump(5);
	assert_true(c >= 0);
	/* Send within the window until libslirp closes it (bounded: 64 segments). */
	for (int i = 0; i < 64 && win > 0 && g_get_monotonic_time() < end; i++) {
		size_t n = MIN((size_t)win, sizeof(data));

		f->nframes = 0;
		netstack_input(f->ns, fr, pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST),
						  inproc_ip("10.0.2.2"), 40040, port, seq, isn + 1,
						  TH_ACK, data, n));
		seq += (uint32_t)n;
		inproc_pump(20);
		if (last_window(f, 0) >= 0)
			win = last_window(f, 0);
	}
	assert_int_equal(win, 0);
	/* The peer reads everything; libslirp writes out what it holds. */
	f->nframes = 0;
	end = g_get_monotonic_time() + 500 * 1000;
	while (g_get_monotonic_time() < end) {
		while (recv(c, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		inproc_pump(5);
	}
	/* Half a second of room, and not one segment said so. */
	assert_int_equal(last_window(f, 0), -1);
	close(c);
	close(lfd);
}

/*
 * The guest sends one byte with URG and an urgent pointer of 2000: libslirp
 * sends its peer far more than that one byte, the rest from its receive
 * buffer beyond what the guest sent.  Not under valgrind: the bytes past
 * the guest's are uninitialised heap, and memcheck would report the send
 * that is this quirk.
 */
static void test_quirk_urgent_pointer_trusted(void **state)
{
	struct fixture *f = *state;
	static uint8_t sink[4096];
	uint8_t fr[128];
	size_t got = 0, len;
	int lfd, port, c = -1, one = 1;
	uint32_t isn;
	gint64 end;

	if (getenv("MESHSLIRP_UNDER_VALGRIND"))
		skip();
	c = guest_established(f, 40050, 1460, &lfd, &port, &isn);
	end = g_get_monotonic_time() + WAIT_MS * 1000;
	assert_int_equal(setsockopt(c, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one)), 0);
	len = pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"), 40050,
		      (uint16_t)port, 1001, isn + 1, TH_PUSH | TH_ACK | TH_URG, "U", 1);
	fr[PKT_ETH_HLEN + 20 + 18] = 2000 >> 8;
	fr[PKT_ETH_HLEN + 20 + 19] = 2000 & 0xff;
	pkt_fix_csums(fr, len);
	netstack_input(f->ns, fr, len);
	while (got < 2 && g_get_monotonic_time() < end) {
		ssize_t n = recv(c, sink, sizeof(sink), MSG_DONTWAIT);

		if (n > 0)
			got += (size_t)n;
		inproc_pump(5);
	}
	assert_true(got > 1);
	close(c);
	close(lfd);
}

/*
 * slirp quirk read_on_error, driven two ways: through the netstack, and
 * through a bare Slirp polled with poll(2) in a child (where it aborts).
 * libslirp's buffer towards the guest is filled exactly (the server sends
 * more than it holds, the guest acknowledges nothing), the guest has data
 * waiting for a server that reads none (libslirp watches for writability
 * only), then the server resets.
 */
struct roe_drive {
	void (*input)(void *ctx, uint8_t *frame, size_t len);
	void (*pump)(void *ctx);
	int (*socket_fd)(void *ctx);        /* libslirp's socket, once registered; else -1 */
	bool (*synack)(void *ctx, uint32_t *isn);
	uint32_t (*sent)(void *ctx);        /* the sequence number past libslirp's data so far */
	void *ctx;
};

static void roe_run(const struct roe_drive *d)
{
	static uint8_t chunk[65536], fr[2048];
	int lfd, c = -1, small = 4096, big = 1 << 20, s = -1, queued = 0;
	uint16_t port;
	uint32_t isn = 0, seq = 1001;
	gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

	lfd = listen_loopback(&port);
	assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	d->input(d->ctx, fr, guest_syn(fr, "10.0.2.2", 40060, port, 65480));
	while ((s = d->socket_fd(d->ctx)) < 0 && g_get_monotonic_time() < end)
		d->pump(d->ctx);
	assert_true(s >= 0);
	assert_int_equal(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)), 0);
	assert_int_equal(setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	while (!d->synack(d->ctx, &isn) && g_get_monotonic_time() < end)
		d->pump(d->ctx);
	d->input(d->ctx, fr, pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"),
				     40060, port, seq, isn + 1, TH_ACK, NULL, 0));
	while ((c = accept(lfd, NULL, NULL)) < 0 && g_get_monotonic_time() < end)
		d->pump(d->ctx);
	assert_true(c >= 0);
	/* More than libslirp's 128 KiB buffer waits in its socket before it reads once. */
	while (queued < 256 * 1024 && g_get_monotonic_time() < end) {
		if (send(c, chunk, sizeof(chunk), MSG_DONTWAIT) < 0)
			g_usleep(1000);
		assert_int_equal(ioctl(s, FIONREAD, &queued), 0);
	}
	assert_true(queued >= 256 * 1024);
	/*
	 * libslirp's buffer towards the guest is 196440 bytes, and it reads in
	 * whole 32 KiB segments: its first read takes 163840.  The guest's bytes
	 * fill what the server does not read (libslirp then watches for
	 * writability).  The guest acknowledges 65704 bytes: 98136 are left,
	 * under half, and the room, 98304, is three segments, which its next
	 * read fills exactly.
	 */
	for (int i = 0; i < 40; i++) {
		d->input(d->ctx, fr, pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST),
					     inproc_ip("10.0.2.2"), 40060, port, seq, isn + 1,
					     TH_ACK, chunk, 1400));
		seq += 1400;
		d->pump(d->ctx);
	}
	for (uint32_t acked = 0; acked < 65704 && g_get_monotonic_time() < end;) {
		uint32_t to = MIN(d->sent(d->ctx) - (isn + 1), 65704);

		if (to > acked) {
			acked = to;
			d->input(d->ctx, fr, pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST),
						     inproc_ip("10.0.2.2"), 40060, port, seq,
						     isn + 1 + acked, TH_ACK, NULL, 0));
		}
		d->pump(d->ctx);
	}
	for (int i = 0; i < 5; i++)
		d->pump(d->ctx);
	close_reset_fd(c);
	for (int i = 0; i < 20; i++)
		d->pump(d->ctx);
	close(lfd);
}

static void roe_ns_input(void *ctx, uint8_t *frame, size_t len)
{
	netstack_input(((struct fixture *)ctx)->ns, frame, len);
}

static void roe_ns_pump(void *ctx)
{
	(void)ctx;
	inproc_pump(5);
}

static int roe_ns_fd(void *ctx)
{
	return ((struct fixture *)ctx)->reg_fd;
}

static bool roe_ns_synack(void *ctx, uint32_t *isn)
{
	struct fixture *f = ctx;
	struct pkt_ipv4_view v;
	int i = find_tcp(f, 0, TH_SYN | TH_ACK);

	if (i < 0 || pkt_parse_ipv4(f->frames[i], f->lens[i], &v))
		return false;
	*isn = pkt_get32(v.l4 + 4);
	return true;
}

/* The highest sequence number past data libslirp sent the guest, in the recorded frames. */
static uint32_t roe_ns_sent(void *ctx)
{
	struct fixture *f = ctx;
	uint32_t top = 0;

	for (unsigned int i = 0; i < f->nframes; i++) {
		struct pkt_ipv4_view v;
		size_t off;

		if (pkt_parse_ipv4(f->frames[i], f->lens[i], &v) || v.proto != IPPROTO_TCP ||
		    v.l4_len < 20)
			continue;
		off = (size_t)(v.l4[12] >> 4) * 4;
		if (v.l4_len > off && (int32_t)(pkt_get32(v.l4 + 4) + (uint32_t)(v.l4_len - off) - top) > 0)
			top = pkt_get32(v.l4 + 4) + (uint32_t)(v.l4_len - off);
	}
	return top;
}

/* A bare Slirp polled with poll(2): its socket and its SYN-ACK, in globals (it runs in a child). */
static struct {
	Slirp *s;
	int fd;
	bool synack;
	uint32_t isn, top;
	struct pollfd pfd[64];
	int npfd;
} polled;

static ssize_t polled_send(const void *buf, size_t len, void *opaque)
{
	struct pkt_ipv4_view v;

	(void)opaque;
	if (!polled.synack && !pkt_parse_ipv4(buf, len, &v) && v.proto == IPPROTO_TCP &&
	    v.l4_len >= 20 && (v.l4[13] & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK)) {
		polled.synack = true;
		polled.isn = pkt_get32(v.l4 + 4);
		polled.top = polled.isn + 1;
	}
	if (polled.synack && !pkt_parse_ipv4(buf, len, &v) && v.proto == IPPROTO_TCP &&
	    v.l4_len >= 20) {
		size_t off = (size_t)(v.l4[12] >> 4) * 4;
		uint32_t end = pkt_get32(v.l4 + 4) + (uint32_t)(v.l4_len - off);

		if (v.l4_len > off && (int32_t)(end - polled.top) > 0)
			polled.top = end;
	}
	return (ssize_t)len;
}

static void polled_register(int fd, void *opaque)
{
	(void)opaque;
	if (polled.fd < 0)
		polled.fd = fd;
}

static const SlirpCb polled_cb = {
	.send_packet = polled_send, .guest_error = bare_error, .clock_get_ns = bare_clock,
	.timer_new = bare_timer_new, .timer_free = bare_timer_free, .timer_mod = bare_timer_mod,
	.register_poll_fd = polled_register, .unregister_poll_fd = bare_fd,
	.notify = bare_notify,
};

static int polled_add(int fd, int events, void *opaque)
{
	struct pollfd *p = &polled.pfd[polled.npfd];

	(void)opaque;
	assert_true(polled.npfd < (int)G_N_ELEMENTS(polled.pfd));
	p->fd = fd;
	p->events = (short)((events & SLIRP_POLL_IN ? POLLIN : 0) |
			    (events & SLIRP_POLL_OUT ? POLLOUT : 0) |
			    (events & SLIRP_POLL_PRI ? POLLPRI : 0));
	return polled.npfd++;
}

static int polled_revents(int idx, void *opaque)
{
	short r = polled.pfd[idx].revents;

	(void)opaque;
	return (r & POLLIN ? SLIRP_POLL_IN : 0) | (r & POLLOUT ? SLIRP_POLL_OUT : 0) |
	       (r & POLLPRI ? SLIRP_POLL_PRI : 0) | (r & POLLERR ? SLIRP_POLL_ERR : 0) |
	       (r & POLLHUP ? SLIRP_POLL_HUP : 0);
}

static void polled_input(void *ctx, uint8_t *frame, size_t len)
{
	(void)ctx;
	slirp_input(polled.s, frame, (int)len);
}

/* One pass of a plain poll(2) loop, as a simple libslirp user writes it. */
static void polled_pump(void *ctx)
{
	uint32_t timeout = 5;

	(void)ctx;
	polled.npfd = 0;
	slirp_pollfds_fill(polled.s, &timeout, polled_add, NULL);
	(void)poll(polled.pfd, (nfds_t)polled.npfd, 5);
	slirp_pollfds_poll(polled.s, 0, polled_revents, NULL);
}

static int polled_fd(void *ctx)
{
	(void)ctx;
	return polled.fd;
}

static uint32_t polled_sent(void *ctx)
{
	(void)ctx;
	return polled.top;
}

static bool polled_synack(void *ctx, uint32_t *isn)
{
	(void)ctx;
	*isn = polled.isn;
	return polled.synack;
}

/* The bare Slirp of polled, with link MTU @mtu, that knows the guest's MAC. */
static void polled_start(int mtu)
{
	SlirpConfig sc = {
		.version = 1, .in_enabled = true,
		.vnetwork = inproc_ip("10.0.2.0"), .vnetmask = inproc_ip("255.255.255.0"),
		.vhost = inproc_ip("10.0.2.2"), .vdhcp_start = inproc_ip(INPROC_GUEST),
		.vnameserver = inproc_ip("10.0.2.3"), .if_mtu = mtu, .if_mru = mtu,
	};
	uint8_t arp[64];

	polled.fd = -1;
	polled.s = slirp_new(&sc, &polled_cb, NULL);
	assert_non_null(polled.s);
	slirp_input(polled.s, arp, (int)pkt_arp_request(arp, inproc_ip(INPROC_GUEST),
							inproc_ip("10.0.2.2")));
}

static void test_quirk_read_on_error(void **state)
{
	struct fixture *f = *state;
	const struct roe_drive ns_drive = { roe_ns_input, roe_ns_pump, roe_ns_fd, roe_ns_synack,
					    roe_ns_sent, f };
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const struct roe_drive bare = { polled_input, polled_pump, polled_fd,
						polled_synack, polled_sent, NULL };

		child_may_crash(20);
		/* The netstack's link MTU: the same buffer sizes as through it. */
		polled_start(NETSTACK_SLIRP_MTU);
		roe_run(&bare);
		_exit(0);
	}
	/* libslirp asserts in soread(): the netstack must keep the event from it. */
	assert_int_equal(child_end_signal(pid), SIGABRT);

	/* Through the netstack the same sequence ends the connection, and the daemon lives. */
	roe_run(&ns_drive);
}

/* A guest frame to 10.0.2.2:@port from port 40070 of the bare Slirp's guest. */
static void polled_segment(uint16_t port, uint32_t seq, uint32_t ack, uint8_t flags,
			   const char *data)
{
	uint8_t fr[256];
	size_t len = pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"), 40070,
			     port, seq, ack, flags, data, data ? strlen(data) : 0);

	slirp_input(polled.s, fr, (int)len);
}

/*
 * The guest's sequence numbers wrap: its 8 bytes before 0 come out of
 * order, then the 8 before them.  tcp_reass() hands both over, its next
 * expected sequence number lands on 0, and its loop, which compares with
 * the connection record instead of the queue's head, takes the record for
 * a segment: the child crashes.
 */
static void test_quirk_reass_wraps_to_zero(void **state)
{
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint16_t port;
		int lfd, c = -1;

		child_may_crash(10);
		polled_start(1500);
		lfd = listen_loopback(&port);
		polled_segment(port, 0xffffffefu, 0, TH_SYN, NULL);
		for (int i = 0; i < 200 && !polled.synack; i++)
			polled_pump(NULL);
		if (!polled.synack)
			_exit(2);
		polled_segment(port, 0xfffffff0u, polled.isn + 1, TH_ACK, NULL);
		for (int i = 0; i < 200 && (c = accept(lfd, NULL, NULL)) < 0; i++)
			polled_pump(NULL);
		if (c < 0)
			_exit(3);
		polled_segment(port, 0xfffffff8u, polled.isn + 1, TH_PUSH | TH_ACK, "89abcdef");
		polled_segment(port, 0xfffffff0u, polled.isn + 1, TH_PUSH | TH_ACK, "01234567");
		_exit(0);
	}
	/* Still crashes: the bridge's sequence-0 guard must stay (test_trust.c). */
	assert_int_equal(child_end_signal(pid), SIGSEGV);
}

/* A reset, with ACK, for a connection libslirp does not have: it answers with a reset at that ACK. */
static void test_quirk_reset_answered(void **state)
{
	struct fixture *f = *state;
	struct pkt_ipv4_view v;
	uint8_t fr[128];

	netstack_input(f->ns, fr, pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST),
					  inproc_ip("10.0.2.2"), 40070, 9, 1000, 5000,
					  TH_RST | TH_ACK, NULL, 0));
	assert_int_equal(f->nframes, 1);
	assert_int_equal(pkt_parse_ipv4(f->frames[0], f->lens[0], &v), 0);
	assert_int_equal(v.proto, IPPROTO_TCP);
	assert_true(v.l4[13] & TH_RST);
	assert_int_equal(pkt_get32(v.l4 + 4), 5000);
	assert_int_equal(f->registered, 0);
}

static void test_quirk_checksums_verified(void **state)
{
	struct fixture *f = *state;
	uint8_t fr[128];
	uint16_t port;
	size_t len;
	int lfd = listen_loopback(&port);

	/* An echo request with a wrong ICMP checksum gets no reply... */
	len = echo_to_gateway(fr, 2);
	fr[PKT_ETH_HLEN + 20 + 2] ^= 0x01;
	netstack_input(f->ns, fr, len);
	assert_int_equal(f->nframes, 0);
	/* ...nor does a SYN with a wrong TCP checksum open a socket. */
	len = guest_syn(fr, "10.0.2.2", 40030, port, 1460);
	fr[PKT_ETH_HLEN + 20 + 16] ^= 0x01;
	netstack_input(f->ns, fr, len);
	assert_int_equal(f->registered, 0);
	/* The same frames, intact, are taken. */
	netstack_input(f->ns, fr, echo_to_gateway(fr, 2));
	assert_int_equal(f->nframes, 1);
	netstack_input(f->ns, fr, guest_syn(fr, "10.0.2.2", 40030, port, 1460));
	assert_int_equal(f->registered, 1);
	close(lfd);
}

/*
 * An ICMP message of @type from the guest to the gateway, quoting a UDP
 * datagram from the gateway's port 53 to the guest's 40040.
 */
static size_t guest_icmp(uint8_t *buf, uint8_t type, uint8_t code)
{
	uint8_t quote[28];
	uint8_t *icmp;
	size_t len;
	uint16_t sum;

	pkt_udp(buf, pkt_guest_mac, inproc_ip("10.0.2.2"), inproc_ip(INPROC_GUEST), 53, 40040,
		NULL, 0);
	memcpy(quote, buf + PKT_ETH_HLEN, sizeof(quote));
	len = pkt_icmp_echo(buf, gw_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"), 0, 0,
			    quote, sizeof(quote));
	icmp = buf + PKT_ETH_HLEN + 20;
	icmp[0] = type;
	icmp[1] = code;
	icmp[2] = icmp[3] = 0;
	sum = (uint16_t)~pkt_csum_fold(pkt_csum_add(0, icmp, 8 + sizeof(quote)));
	icmp[2] = (uint8_t)(sum >> 8);
	icmp[3] = (uint8_t)sum;
	return len;
}

static void test_quirk_guest_icmp_errors_freed(void **state)
{
	static const uint8_t errors[][2] = { { 3, 3 }, { 4, 0 }, { 5, 1 }, { 11, 0 }, { 12, 0 } };
	struct fixture *f = *state;
	uint8_t fr[128];
	uint64_t guest_errors = netstack_stats(f->ns)->guest_errors;

	for (size_t i = 0; i < G_N_ELEMENTS(errors); i++)
		netstack_input(f->ns, fr, guest_icmp(fr, errors[i][0], errors[i][1]));
	inproc_pump(20);
	assert_int_equal(f->nframes, 0);
	assert_int_equal(f->registered, 0);
	assert_int_equal(netstack_stats(f->ns)->guest_errors, guest_errors);
	/* The same frame as an echo request is read and answered. */
	netstack_input(f->ns, fr, guest_icmp(fr, 8, 0));
	assert_int_equal(f->nframes, 1);
}

static void test_quirk_dhcp_no_mtu_option(void **state)
{
	struct fixture *f = *state;
	uint8_t fr[600], optlen = 0;
	struct pkt_ipv4_view v;
	const uint8_t *type;

	netstack_input(f->ns, fr, pkt_dhcp_discover(fr, 0x5eed));
	assert_int_equal(f->nframes, 1);
	assert_int_equal(pkt_parse_ipv4(f->frames[0], f->lens[0], &v), 0);
	assert_int_equal(v.proto, IPPROTO_UDP);
	type = pkt_dhcp_option(v.l4 + 8, v.l4_len - 8, 53, &optlen);
	assert_non_null(type);
	assert_int_equal(type[0], 2);  /* OFFER */
	assert_null(pkt_dhcp_option(v.l4 + 8, v.l4_len - 8, 26, &optlen));
}

/*
 * Sixteen client hardware addresses take libslirp's sixteen leases; a
 * seventeenth gets no answer, and each of its DISCOVERs leaks the reply
 * buffer libslirp took for it (bootp_reply() returns without freeing it).
 * Measured only where glibc's heap can be (not under valgrind or ASan).
 */
static void test_quirk_dhcp_exhausted_leak(void **state)
{
	struct fixture *f = *state;
	uint8_t fr[600], chaddr[6];
	size_t before;

	if (!test_heap_measurable())
		skip();
	memcpy(chaddr, pkt_guest_mac, sizeof(chaddr));
	for (uint8_t i = 0; i < 16; i++) {
		chaddr[5] = i;
		netstack_input(f->ns, fr, pkt_dhcp_discover_from(fr, 0x4444, chaddr));
	}
	assert_int_equal(f->nframes, 16);
	before = test_heap_in_use();
	chaddr[5] = 0xee;
	for (int i = 0; i < 32; i++)
		netstack_input(f->ns, fr, pkt_dhcp_discover_from(fr, 0x4444, chaddr));
	assert_int_equal(f->nframes, 16);
	assert_true(test_heap_in_use() - before >= 24 * (size_t)NETSTACK_SLIRP_MTU);
}

/*
 * The largest TCP payload to the guest's @port among the frames recorded
 * from @from on; *@acked_to advanced over those that continue from it
 * (sequence numbers from libslirp's ISN + 1, so 0 is the first byte).
 */
static size_t guest_data_seen(const struct fixture *f, unsigned int from, uint16_t port,
			      uint32_t isn, uint32_t *acked_to)
{
	size_t most = 0;

	for (unsigned int i = from; i < f->nframes; i++) {
		struct pkt_ipv4_view v;
		uint32_t at;
		size_t n;

		if (pkt_parse_ipv4(f->frames[i], f->lens[i], &v) || v.proto != IPPROTO_TCP ||
		    v.l4_len < 20 || ((v.l4[2] << 8) | v.l4[3]) != port)
			continue;
		n = v.l4_len - (size_t)(v.l4[12] >> 4) * 4;
		at = pkt_get32(v.l4 + 4) - (isn + 1);
		most = MAX(most, n);
		if (n && at <= *acked_to && at + n > *acked_to)
			*acked_to = at + (uint32_t)n;
	}
	return most;
}

/*
 * The guest's SYN|ACK to a client of an exposed port, its MSS option in the
 * header's last two bytes and the option's value in the two payload bytes
 * after them (0, 64): libslirp takes 64 for the guest's MSS and sends the
 * client's 1,000 bytes in segments of 64.  (A new connection's SYN does not
 * show it: libslirp parses no options on the path that connects for it.)
 */
static void test_quirk_syn_options_overread(void **state)
{
	struct fixture *f = *state;
	static const uint8_t beyond[2] = { 0, 64 };
	static const uint8_t data[1000];
	uint8_t fr[128], *tcp = fr + PKT_ETH_HLEN + 20;
	uint32_t isn, acked_to = 0;
	struct pkt_ipv4_view v;
	size_t len, most = 0;
	uint16_t cport;
	gint64 end;
	int c = inbound_syn(f, "127.0.0.1", &v, &cport);

	isn = pkt_get32(v.l4 + 4);
	len = pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST), v.src, 8080, cport, 5000, isn + 1,
		      TH_SYN | TH_ACK, beyond, sizeof(beyond));
	tcp[20] = 1;            /* NOP, NOP, then an MSS option of length 4 at the header's end */
	tcp[21] = 1;
	tcp[22] = 2;
	tcp[23] = 4;
	pkt_fix_csums(fr, len);
	netstack_input(f->ns, fr, len);
	end = g_get_monotonic_time() + WAIT_MS * 1000;
	f->nframes = 0;
	while (send(c, data, sizeof(data), MSG_DONTWAIT) != (ssize_t)sizeof(data) &&
	       g_get_monotonic_time() < end)
		inproc_pump(5);
	while (acked_to < sizeof(data) && g_get_monotonic_time() < end) {
		inproc_pump(5);
		most = MAX(most, guest_data_seen(f, 0, 8080, isn, &acked_to));
		netstack_input(f->ns, fr, pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST), v.src, 8080,
						  cport, 5003, isn + 1 + acked_to, TH_ACK, NULL,
						  0));
	}
	assert_int_equal(acked_to, sizeof(data));
	assert_int_equal(most, 64);
	close(c);
}

/*
 * The guest's SYN|ACK sent again inside an established connection, with
 * an MSS option: libslirp ignores the segment as an old duplicate, but has
 * parsed its options first, and tcp_mss() has emptied both buffers.  The
 * server sends 100,000 bytes; libslirp sends the guest its window's worth
 * and holds the rest, and once the buffers are emptied the guest, now
 * acknowledging all it gets, never gets the rest.
 */
static void test_quirk_syn_mss_resets_buffers(void **state)
{
	struct fixture *f = *state;
	static const uint8_t data[100000];
	uint8_t fr[128], *tcp = fr + PKT_ETH_HLEN + 20;
	uint32_t isn, acked_to = 0;
	size_t len, sent = 0;
	gint64 end;
	int lfd, port, c;

	c = guest_established(f, 40061, 1460, &lfd, &port, &isn);
	f->nframes = 0;
	end = g_get_monotonic_time() + WAIT_MS * 1000;
	while (sent < sizeof(data) && g_get_monotonic_time() < end) {
		ssize_t n = send(c, data + sent, sizeof(data) - sent, MSG_DONTWAIT);

		if (n > 0)
			sent += (size_t)n;
		inproc_pump(5);
	}
	assert_int_equal(sent, sizeof(data));
	inproc_pump(20);
	guest_data_seen(f, 0, 40061, isn, &acked_to);
	assert_true(acked_to > 0 && acked_to < sizeof(data));
	/* The guest's SYN of the handshake (sequence 1000, MSS 1460), made its SYN|ACK. */
	len = guest_syn(fr, "10.0.2.2", 40061, (uint16_t)port, 1460);
	tcp[13] = TH_SYN | TH_ACK;
	tcp[8] = (uint8_t)((isn + 1) >> 24);
	tcp[9] = (uint8_t)((isn + 1) >> 16);
	tcp[10] = (uint8_t)((isn + 1) >> 8);
	tcp[11] = (uint8_t)(isn + 1);
	pkt_fix_csums(fr, len);
	netstack_input(f->ns, fr, len);
	acked_to = 0;
	while (acked_to < sizeof(data) && g_get_monotonic_time() < end) {
		uint32_t was = acked_to;

		inproc_pump(5);
		guest_data_seen(f, 0, 40061, isn, &acked_to);
		netstack_input(f->ns, fr, pkt_tcp(fr, gw_mac, inproc_ip(INPROC_GUEST),
						  inproc_ip("10.0.2.2"), 40061, (uint16_t)port, 1001,
						  isn + 1 + acked_to, TH_ACK, NULL, 0));
		if (acked_to == was)
			inproc_pump(20);
	}
	assert_true(acked_to < sizeof(data));
	close(c);
	close(lfd);
}

/* Every quirk has its test: the names in the table are the tests' names. */
static void test_quirks_named(void **state)
{
	(void)state;
	for (unsigned int q = 0; q < SLIRP_QUIRK_COUNT; q++) {
		const struct slirp_quirk_info *i = slirp_quirk_info(q);

		assert_non_null(i->name);
		assert_non_null(i->what);
		assert_non_null(i->why);
		assert_non_null(i->where);
		assert_non_null(i->breaks);
	}
	assert_true(slirp_quirks_check_version(slirp_version_string()));
}

#define QUIRK_TEST(name) cmocka_unit_test_setup_teardown(test_quirk_##name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		QUIRK_TEST(register_in_input),
		QUIRK_TEST(synack_after_pollout),
		QUIRK_TEST(connect_probe),
		QUIRK_TEST(send_packet_private_copy),
		QUIRK_TEST(hostfwd_backlog_1),
		QUIRK_TEST(hostfwd_not_registered),
		QUIRK_TEST(accept_then_syn),
		QUIRK_TEST(loopback_client_as_gateway),
		QUIRK_TEST(gateway_to_loopback),
		QUIRK_TEST(broadcast_to_loopback),
		QUIRK_TEST(ip_reass_crash),
		QUIRK_TEST(mbuf_mtu_sized),
		QUIRK_TEST(no_window_scaling),
		QUIRK_TEST(maxseg_32k),
		QUIRK_TEST(checksums_verified),
		QUIRK_TEST(guest_icmp_errors_freed),
		QUIRK_TEST(dhcp_no_mtu_option),
		QUIRK_TEST(no_window_update),
		QUIRK_TEST(urgent_pointer_trusted),
		QUIRK_TEST(read_on_error),
		QUIRK_TEST(reass_wraps_to_zero),
		QUIRK_TEST(dhcp_exhausted_leak),
		QUIRK_TEST(syn_options_overread),
		QUIRK_TEST(syn_mss_resets_buffers),
		QUIRK_TEST(reset_answered),
		cmocka_unit_test(test_quirks_named),
	};

	testns_enter("test_slirp_quirks");
	/* libslirp's connect probe sends without MSG_NOSIGNAL, as in the daemon (main.c). */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
