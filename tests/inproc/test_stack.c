/* test_stack.c - in-process tests: synthetic frames through the stream socket into libslirp and back. */

/*
 * The test plays QEMU: it connects to the daemon's stream socket and speaks
 * length-prefixed frames, while the daemon (daemon_start(), the same wiring
 * main uses) runs on this thread's GLib main context, which the test
 * iterates between socket operations.  Every wait is bounded.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <linux/sockios.h>

#include <cmocka.h>
#include <glib.h>

#include "tests/lib/fdlimit.h"
#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"

static int setup(void **state)
{
	/* The gateway test below reaches this host's loopback: a non-mesh set-up. */
	static const char *const args[] = { "--allow-host-loopback", "--mtu", "1500", NULL };

	*state = inproc_start(args);
	return 0;
}

static int teardown(void **state)
{
	inproc_stop(*state);
	return 0;
}

static void test_arp_gateway(void **state)
{
	struct inproc *f = *state;
	uint8_t fr[2048], rx[2048];
	size_t len = pkt_arp_request(fr, inproc_ip("10.0.2.15"), inproc_ip("10.0.2.2"));
	struct in_addr sender;

	inproc_send(f, fr, len);
	len = inproc_recv_match(f, rx, sizeof(rx), inproc_is_arp_reply, NULL);
	assert_true(len >= 42);
	/* Addressed to the guest, answering for the gateway. */
	assert_memory_equal(rx, pkt_guest_mac, 6);
	memcpy(&sender, rx + 28, 4);
	assert_int_equal(sender.s_addr, inproc_ip("10.0.2.2").s_addr);
	assert_memory_equal(rx + 32, pkt_guest_mac, 6);
}

static bool is_dhcp_reply(const uint8_t *fr, size_t len, void *arg)
{
	struct pkt_ipv4_view v;

	(void)arg;
	return !pkt_parse_ipv4(fr, len, &v) && v.proto == IPPROTO_UDP && v.l4_len > 8 + 240 &&
	       v.l4[0] == 0 && v.l4[1] == 67 && v.l4[8] == 2; /* from port 67, BOOTREPLY */
}

static void test_dhcp_offer(void **state)
{
	struct inproc *f = *state;
	uint8_t fr[2048], rx[2048];
	size_t len = pkt_dhcp_discover(fr, 0xdecafbad);
	struct pkt_ipv4_view v;
	const uint8_t *bootp, *opt;
	uint8_t optlen;
	struct in_addr yiaddr, a;

	inproc_send(f, fr, len);
	len = inproc_recv_match(f, rx, sizeof(rx), is_dhcp_reply, NULL);
	assert_true(len > 0);
	assert_int_equal(pkt_parse_ipv4(rx, len, &v), 0);
	assert_true(v.ip_csum_ok);
	assert_true(v.l4_csum_ok);
	bootp = v.l4 + 8;
	assert_int_equal(inproc_be32(bootp + 4), 0xdecafbad);
	memcpy(&yiaddr, bootp + 16, 4);
	assert_int_equal(yiaddr.s_addr, inproc_ip("10.0.2.15").s_addr);

	opt = pkt_dhcp_option(bootp, v.l4_len - 8, 53, &optlen);
	assert_non_null(opt);
	assert_int_equal(opt[0], 2); /* DHCPOFFER */
	opt = pkt_dhcp_option(bootp, v.l4_len - 8, 3, &optlen);
	assert_non_null(opt);
	memcpy(&a, opt, 4);
	assert_int_equal(a.s_addr, inproc_ip("10.0.2.2").s_addr);
	opt = pkt_dhcp_option(bootp, v.l4_len - 8, 6, &optlen);
	assert_non_null(opt);
	memcpy(&a, opt, 4);
	assert_int_equal(a.s_addr, inproc_ip("10.0.2.3").s_addr);
}

/*
 * A guest SYN to the gateway reaches a host listener on 127.0.0.1 (libslirp's
 * host-loopback mapping) through the epoll integration, and the guest gets
 * a SYN-ACK with correct checksums.
 */
static void test_tcp_connect_to_host(void **state)
{
	struct inproc *f = *state;
	uint8_t fr[2048], rx[2048];
	struct inproc_tcp_match m;
	struct pkt_ipv4_view v;
	uint16_t port;
	int lfd = inproc_sidecar_listen(&port, true), conn;
	size_t len;

	inproc_arp_gateway(f);

	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip("10.0.2.15"), inproc_ip("10.0.2.2"), 40000,
		      port, 1000, 0, 0x02, NULL, 0);
	inproc_send(f, fr, len);
	conn = inproc_accept(lfd);

	m = (struct inproc_tcp_match){ port, 40000, 0x12 };
	len = inproc_recv_match(f, rx, sizeof(rx), inproc_is_tcp, &m);
	assert_true(len > 0);
	assert_int_equal(pkt_parse_ipv4(rx, len, &v), 0);
	assert_int_equal(v.src.s_addr, inproc_ip("10.0.2.2").s_addr);
	assert_true(v.ip_csum_ok);
	assert_true(v.l4_csum_ok);
	/* ACK number acknowledges our SYN. */
	assert_int_equal(inproc_be32(v.l4 + 8), 1001);
	close(conn);
	close(lfd);
}

/* Always ready: every loop iteration polls without blocking, as under steady traffic. */
static gboolean keep_loop_busy(gpointer data)
{
	(*(unsigned int *)data)++;
	return G_SOURCE_CONTINUE;
}

/*
 * libslirp's timers run while the loop never sleeps.  The guest answers the
 * host's first bytes with bytes of its own that also acknowledge them: off
 * libslirp's fast path, so libslirp delays its ACK to its fast timer (2 ms),
 * which only the netstack source's deadline runs (nothing on the host socket
 * is ready).  With another source ready on every iteration (steady traffic
 * elsewhere, or --busy-poll), that deadline used to move on with every
 * prepare() and never come: the ACK waited until the loop went idle.
 */
static void test_timer_runs_on_busy_loop(void **state)
{
	struct inproc *f = *state;
	uint8_t fr[2048], rx[2048];
	struct pkt_ipv4_view v;
	uint32_t host_seq;
	unsigned int busy = 0;
	uint16_t port;
	int lfd = inproc_sidecar_listen(&port, true), conn;
	size_t len;
	guint busy_id;
	gint64 t0;

	inproc_arp_gateway(f);

	/* Handshake through libslirp to the host listener. */
	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"), 40002,
		      port, 1000, 0, 0x02, NULL, 0);
	inproc_send(f, fr, len);
	inproc_expect_segment(f, rx, sizeof(rx), "10.0.2.2", port, 40002, 0x12, &v);
	host_seq = inproc_be32(v.l4 + 4) + 1;
	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"), 40002,
		      port, 1001, host_seq, 0x10, NULL, 0);
	inproc_send(f, fr, len);
	conn = inproc_accept(lfd);

	/* The host's bytes reach the guest. */
	assert_int_equal(write(conn, "hello", 5), 5);
	inproc_expect_segment(f, rx, sizeof(rx), "10.0.2.2", port, 40002, 0x10, &v);
	assert_int_equal(v.l4_len, 20 + 5);
	assert_int_equal(inproc_be32(v.l4 + 4), host_seq);

	/* From here every iteration polls without blocking. */
	busy_id = g_idle_add(keep_loop_busy, &busy);
	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"), 40002,
		      port, 1001, host_seq + 5, 0x18, "world", 5);
	t0 = g_get_monotonic_time();
	inproc_send(f, fr, len);
	inproc_expect_segment(f, rx, sizeof(rx), "10.0.2.2", port, 40002, 0x10, &v);
	/* The ACK of the guest's bytes, from libslirp's fast timer, well within a second. */
	assert_int_equal(inproc_be32(v.l4 + 8), 1001 + 5);
	assert_true(g_get_monotonic_time() - t0 < G_USEC_PER_SEC);
	assert_true(busy > 0);
	g_source_remove(busy_id);
	close(conn);
	close(lfd);
}

/* Runts and oversize records (over --mtu 1500) are dropped and counted; the stream stays usable. */
static void test_bad_frames_counted(void **state)
{
	struct inproc *f = *state;
	uint8_t fr[2048] = { 0 }, rx[2048], big[1600] = { 0 };
	size_t len;

	inproc_send(f, fr, 0);
	inproc_send(f, (const uint8_t *)"short", 5);
	inproc_send(f, big, 1515);
	len = pkt_arp_request(fr, inproc_ip("10.0.2.15"), inproc_ip("10.0.2.2"));
	inproc_send(f, fr, len);
	assert_true(inproc_recv_match(f, rx, sizeof(rx), inproc_is_arp_reply, NULL) > 0);
	assert_int_equal(f->d.be->stats.rx_runts, 2);
	assert_int_equal(f->d.be->stats.rx_oversize, 1);
	assert_int_equal(f->d.be->stats.rx_bad_prefix, 0);
}

/* An impossible length resets that connection only; the next QEMU is served. */
static void test_bad_prefix_resets_connection(void **state)
{
	struct inproc *f = *state;
	uint8_t bad[4] = { 0xff, 0xff, 0xff, 0xff }, fr[2048], rx[2048];
	size_t len;
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	ssize_t n = -1;

	if (!inproc_is_stream(f))
		skip(); /* the stream's own framing; vhost-user's lies: test_vhost_user, vuhostile */
	assert_int_equal(write(f->qemu, bad, 4), 4);
	while (g_get_monotonic_time() < end) {
		inproc_pump(2);
		n = read(f->qemu, rx, sizeof(rx));
		if (n == 0)
			break;
	}
	assert_int_equal(n, 0); /* the daemon closed it */
	assert_int_equal(f->d.be->stats.rx_bad_prefix, 1);
	close(f->qemu);

	f->qemu = inproc_connect(f);
	f->rlen = 0;
	len = pkt_arp_request(fr, inproc_ip("10.0.2.15"), inproc_ip("10.0.2.2"));
	inproc_send(f, fr, len);
	assert_true(inproc_recv_match(f, rx, sizeof(rx), inproc_is_arp_reply, NULL) > 0);
	assert_int_equal(f->d.be->stats.peers_accepted, 2);
}

/*
 * Frames queued for a QEMU that stopped reading and then left are counted
 * as unsent, so a frame lost in our ring is told apart from one QEMU took
 * (tests/deploy/check-deploy boots a guest again only for the latter).
 * The replies to 16,000 ARP requests (~1 MB) overfill our socket buffer;
 * what is left waits in the daemon's ring when we go.
 */
static void test_unsent_at_detach_counted(void **state)
{
	struct inproc *f = *state;
	uint8_t fr[128];
	size_t len = pkt_arp_request(fr, inproc_ip("10.0.2.15"), inproc_ip("10.0.2.2"));
	gint64 end;

	if (!inproc_is_stream(f))
		skip(); /* vhost-user stages in guest memory's stead: test_vhost_user */
	/*
	 * 100 at a time, each batch read by the daemon before the next: each
	 * write is an skb of ~1 KiB against our 208 KiB send buffer.
	 */
	for (int batch = 0; batch < 160; batch++) {
		int queued = 1;

		for (int i = 0; i < 100; i++)
			inproc_send(f, fr, len);
		end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
		while ((ioctl(f->qemu, SIOCOUTQ, &queued) < 0 || queued > 0) &&
		       g_get_monotonic_time() < end)
			inproc_pump(1);
		assert_int_equal(queued, 0);
	}
	assert_true(f->d.be->stats.tx_frames >= 16000);
	assert_int_equal(f->d.be->stats.tx_full, 0);
	assert_int_equal(f->d.be->stats.tx_unsent_bytes, 0);
	close(f->qemu);
	end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	while (f->d.be->stats.attached && g_get_monotonic_time() < end)
		inproc_pump(2);
	assert_int_equal(f->d.be->stats.attached, 0);
	assert_true(f->d.be->stats.tx_unsent_bytes > 0);
	/* Some, not all: our socket took the first ones (each queued frame is 4 + its length). */
	assert_true(f->d.be->stats.tx_unsent_bytes <
		    f->d.be->stats.tx_bytes + 4 * f->d.be->stats.tx_frames - 65536);

	/* The next QEMU starts clean. */
	f->qemu = inproc_connect(f);
	f->rlen = 0;
	inproc_arp_gateway(f);
}

/* A second QEMU is refused while the first keeps working. */
static void test_second_qemu_refused(void **state)
{
	struct inproc *f = *state;
	int second = inproc_connect(f);
	uint8_t fr[2048], rx[2048];
	size_t len;
	ssize_t n = -1;
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;

	while (g_get_monotonic_time() < end) {
		inproc_pump(2);
		n = read(second, rx, sizeof(rx));
		if (n == 0)
			break;
	}
	assert_int_equal(n, 0);
	close(second);
	assert_int_equal(f->d.be->stats.peers_refused, 1);

	len = pkt_arp_request(fr, inproc_ip("10.0.2.15"), inproc_ip("10.0.2.2"));
	inproc_send(f, fr, len);
	assert_true(inproc_recv_match(f, rx, sizeof(rx), inproc_is_arp_reply, NULL) > 0);
}

/*
 * Out of descriptors, accept() on QEMU's socket fails and leaves the
 * connection queued: the listener stays readable, and watched as before
 * it would take the loop on every turn, with a warning each time.  It
 * rests for a second instead, then the queued connection is taken, and
 * refused as a second QEMU.
 */
static unsigned int accept_warnings;

static void count_accept_warning(const gchar *domain, GLogLevelFlags level, const gchar *msg,
				 gpointer data)
{
	(void)domain;
	(void)level;
	(void)data;
	accept_warnings += !!strstr(msg, "accept on");
}

static void test_accept_out_of_fds(void **state)
{
	struct inproc *f = *state;
	int second;
	guint handler;
	gint64 end;

	if (!inproc_is_stream(f))
		skip(); /* the stream's own listener; vhost-user's: test_vhost_user */
	if (getenv("MESHSLIRP_UNDER_VALGRIND")) {
		print_message("skipped under valgrind: its descriptor limit is its own\n");
		skip();
	}
	second = inproc_connect(f);
	handler = g_log_set_handler(G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, count_accept_warning, NULL);
	assert_int_equal(test_iterate_without_fds(100), 0);
	g_log_remove_handler(G_LOG_DOMAIN, handler);
	/* One attempt, one warning: not one per turn of the loop. */
	assert_int_equal(accept_warnings, 1);
	assert_int_equal(f->d.be->stats.peers_refused, 0);
	end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	while (f->d.be->stats.peers_refused < 1 && g_get_monotonic_time() < end)
		inproc_pump(5);
	assert_int_equal(f->d.be->stats.peers_refused, 1);
	close(second);
}

/* A second daemon on a live socket path fails cleanly; a stale path is reclaimed. */
static void test_socket_path_ownership(void **state)
{
	struct inproc *f = *state;
	struct backend *be = NULL;
	static const struct backend_callbacks cb = { 0 };
	char *stale = g_build_filename(f->dir, "stale.sock", NULL);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	assert_int_equal(stream_backend_new(f->sock, 1500, &cb, NULL, &be), -EADDRINUSE);
	assert_null(be);

	/* A socket file nobody listens on, as a killed daemon leaves it. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	g_strlcpy(sa.sun_path, stale, sizeof(sa.sun_path));
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(stream_backend_new(stale, 1500, &cb, NULL, &be), 0);
	backend_free(be);
	assert_int_equal(access(stale, F_OK), -1);
	g_free(stale);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_arp_gateway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dhcp_offer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_connect_to_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_runs_on_busy_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_frames_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_prefix_resets_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_qemu_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_out_of_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsent_at_detach_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_path_ownership, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
