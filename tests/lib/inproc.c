/* inproc.c - play QEMU against an in-process daemon: frames over its stream socket, bounded waits. */

#include "inproc.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <linux/sockios.h>

#include <cmocka.h>
#include <glib.h>

#include "tests/lib/cputime.h"
#include "tests/lib/pkt.h"
#include "tests/lib/testns.h"
#include "tests/lib/virtio_wire.h"
#include "tests/lib/vufront.h"

/*
 * Before main(): every socket a test makes (its sidecar and servers, and the
 * daemon's) must live in the test's own namespace.
 */
__attribute__((constructor)) static void inproc_enter_namespace(void)
{
	testns_enter("inproc");
}

struct in_addr inproc_ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

void inproc_free_ports(uint16_t *ports, unsigned int n)
{
	g_autofree int *fds = g_new(int, n);

	for (unsigned int i = 0; i < n; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(sa);

		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fds[i] >= 0);
		assert_int_equal(bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(getsockname(fds[i], (struct sockaddr *)&sa, &len), 0);
		ports[i] = ntohs(sa.sin_port);
	}
	for (unsigned int i = 0; i < n; i++)
		close(fds[i]);
}

void inproc_raise_nofile(rlim_t want, struct rlimit *saved)
{
	struct rlimit raised;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, saved), 0);
	raised = *saved;
	raised.rlim_cur = MIN(MAX(raised.rlim_cur, want), raised.rlim_max);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &raised), 0);
}

uint16_t inproc_free_port(void)
{
	uint16_t port;

	inproc_free_ports(&port, 1);
	return port;
}

int inproc_tcp_connect(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int err = errno;

		close(fd);
		return -err;
	}
	inproc_pump(5);
	return fd;
}

uint32_t inproc_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int inproc_connect(const struct inproc *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	g_strlcpy(sa.sun_path, f->sock, sizeof(sa.sun_path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/*
 * A bounded number of non-blocking iterations: the netstack's source
 * dispatches on every iteration (libslirp's timers live inside its poll),
 * so "until nothing is pending" would never end.
 */
void inproc_iterate(void)
{
	for (int i = 0; i < 32; i++)
		g_main_context_iteration(NULL, FALSE);
}

void inproc_pump(int ms)
{
	gint64 end = g_get_monotonic_time() + ms * 1000;

	do {
		inproc_iterate();
		g_usleep(1000);
	} while (g_get_monotonic_time() < end);
}

void inproc_assert_no_spin(unsigned int ms, unsigned int share_pct)
{
	int64_t cpu = test_cpu_us();

	inproc_pump((int)ms);
	assert_true(test_cpu_share_below(cpu, ms, share_pct));
}

bool inproc_is_stream(const struct inproc *f)
{
	return f->vf == NULL;
}

/* Append one frame to rbuf, length-prefixed as the stream socket would hold it. */
static void inproc_rbuf_put(struct inproc *f, const uint8_t *frame, size_t len)
{
	uint8_t *p = f->rbuf + f->rlen;

	assert_true(4 + len <= sizeof(f->rbuf) - f->rlen);
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	memcpy(p + 4, frame, len);
	f->rlen += 4 + len;
}

/*
 * A received frame with offload metadata, taken as a guest would and handed to the test
 * as plain frames: a partial checksum completed (the daemon's partial value must make it
 * right), a GSO segment cut at gso_size with this file's own code, each piece with its
 * checksums recomputed, so tests written for MTU-sized segments see the same bytes.
 */
static void inproc_take_offloaded(struct inproc *f, uint8_t *fr, size_t len,
				  const struct virtio_net_hdr_v1 *h)
{
	struct pkt_ipv4_view v;
	size_t ihl, thl, hlen, payload;
	uint8_t seg[PKT_ETH_HLEN + 65535];

	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		assert_int_equal(pkt_csum_complete(fr, len, h->csum_start, h->csum_offset), 0);
		f->vu_rx_csum_partial++;
	}
	if (h->flags & VIRTIO_NET_HDR_F_DATA_VALID)
		f->vu_rx_data_valid++;
	assert_int_equal(pkt_parse_ipv4(fr, len, &v), 0);
	assert_true(v.ip_csum_ok && v.l4_csum_ok);
	if (h->gso_type == VIRTIO_NET_HDR_GSO_NONE) {
		inproc_rbuf_put(f, fr, len);
		return;
	}
	assert_int_equal(h->gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	assert_int_equal(v.proto, IPPROTO_TCP);
	assert_true(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM); /* the spec's rule for GSO */
	ihl = (size_t)(fr[PKT_ETH_HLEN] & 0x0f) * 4;
	thl = (size_t)(v.l4[12] >> 4) * 4;
	hlen = PKT_ETH_HLEN + ihl + thl;
	assert_int_equal(h->hdr_len, hlen);
	assert_true(h->gso_size > 0);
	payload = v.l4_len - thl;
	assert_true(payload > h->gso_size); /* GSO only for what would not fit */
	f->vu_rx_gso++;
	for (size_t off = 0; off < payload; off += h->gso_size) {
		size_t chunk = MIN((size_t)h->gso_size, payload - off);
		uint8_t *ip = seg + PKT_ETH_HLEN, *tcp = ip + ihl;
		uint32_t seq = inproc_be32(v.l4 + 4) + (uint32_t)off;

		memcpy(seg, fr, hlen);
		memcpy(seg + hlen, fr + hlen + off, chunk);
		ip[2] = (uint8_t)((ihl + thl + chunk) >> 8);
		ip[3] = (uint8_t)(ihl + thl + chunk);
		tcp[4] = (uint8_t)(seq >> 24);
		tcp[5] = (uint8_t)(seq >> 16);
		tcp[6] = (uint8_t)(seq >> 8);
		tcp[7] = (uint8_t)seq;
		if (off + chunk < payload)
			tcp[13] &= (uint8_t)~0x09; /* FIN and PSH on the last piece only */
		pkt_fix_csums(seg, hlen + chunk);
		inproc_rbuf_put(f, seg, hlen + chunk);
	}
}

/*
 * Take the frames the daemon published into rbuf, length-prefixed as the stream socket
 * would hold them, while the largest frame still fits (twice: a GSO frame cut in pieces
 * grows by their headers): a guest's driver empties its receive ring whatever its stack
 * does next, so a test that only sends must not stall the daemon on a full ring.  Returns
 * how many frames were taken.
 */
static unsigned int inproc_vu_drain(struct inproc *f)
{
	unsigned int hdr_len = vufront_hdr_len(f->vf), taken = 0;
	struct vufront_rxframe *rx = &f->rxf;
	static uint8_t frame[VUFRONT_FRAME_MAX_DEFAULT];
	int ret;

	while (sizeof(f->rbuf) - f->rlen >= 2 * (4 + VUFRONT_FRAME_MAX_DEFAULT)) {
		size_t skip = hdr_len, got = 0;

		ret = vufront_rx_next(f->vf, rx);
		if (ret == -EAGAIN || ret == -ENOTCONN)
			break;
		if (ret)
			fail_msg("vhost-user: the daemon broke the receive ring: %s", g_strerror(-ret));
		for (unsigned int i = 0; i < rx->niov; i++) {
			size_t l = rx->iov[i].iov_len, s = MIN(skip, l);

			assert_true(got + l - s <= sizeof(frame));
			memcpy(frame + got, (uint8_t *)rx->iov[i].iov_base + s, l - s);
			got += l - s;
			skip -= s;
		}
		vufront_rx_release(f->vf, rx);
		if (rx->hdr.flags || rx->hdr.gso_type)
			inproc_take_offloaded(f, frame, got, &rx->hdr);
		else
			inproc_rbuf_put(f, frame, got);
		taken++;
	}
	vufront_rx_refill(f->vf);
	assert_int_equal(vufront_stats(f->vf)->dev_errors, 0);
	return taken;
}

/* The vufront waits through this: the daemon runs on our context meanwhile. */
static void inproc_vufront_pump(int fd, short events, int timeout_ms, void *opaque)
{
	struct inproc *f = opaque;
	struct pollfd pfd = { .fd = fd, .events = events };

	inproc_iterate();
	if (vufront_started(f->vf))
		inproc_vu_drain(f);
	(void)poll(&pfd, 1, MIN(timeout_ms, 1));
}

/*
 * Over vhost-user: a front-end as QEMU with a Linux guest's driver, without offloads
 * (INPROC_VU_FEATURES=offload adds checksum and TSO both ways).  Its receive buffers are
 * 4 KiB, merged as Linux does; its transmit slots take a 64 KiB frame.
 */
static void inproc_attach_vhost_user(struct inproc *f)
{
	struct vufront_config cfg = { .mtu = 0 };
	const char *features = g_getenv("INPROC_VU_FEATURES");
	uint64_t want = VUFRONT_FEATURES_BASE;
	int ret;

	if (features && !strcmp(features, "offload"))
		want |= VUFRONT_FEATURES_OFFLOAD;
	assert_int_equal(vufront_new(&cfg, &f->vf), 0);
	vufront_set_pump(f->vf, inproc_vufront_pump, f);
	assert_int_equal(vufront_connect(f->vf, f->sock), 0);
	ret = vufront_start(f->vf, want, VUFRONT_PROTOCOL_ALL);
	if (ret)
		fail_msg("vhost-user: vufront_start: %s", g_strerror(-ret));
}

struct inproc *inproc_start(const char *const *extra_args)
{
	struct inproc *f = g_new0(struct inproc, 1);
	g_autoptr(GError) err = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	const char *backend = g_getenv("INPROC_BACKEND");
	bool vhost_user = backend && !strcmp(backend, "vhost-user");
	gint64 end;

	/* As main.c: libslirp writes without MSG_NOSIGNAL (its connect probe, sowrite()). */
	signal(SIGPIPE, SIG_IGN);
	f->qemu = -1;
	f->dir = g_dir_make_tmp("ms-inproc-XXXXXX", NULL);
	f->sock = g_build_filename(f->dir, vhost_user ? "vu.sock" : "net.sock", NULL);
	g_ptr_array_add(argv, "meshslirp");
	g_ptr_array_add(argv, vhost_user ? "--vhost-user" : "--socket");
	g_ptr_array_add(argv, f->sock);
	g_ptr_array_add(argv, "--log-level");
	g_ptr_array_add(argv, "warning");
	for (; extra_args && *extra_args; extra_args++)
		g_ptr_array_add(argv, (gpointer)*extra_args);
	g_ptr_array_add(argv, NULL);
	if (options_parse((int)argv->len - 1, (char **)argv->pdata, &f->cfg, &err))
		fail_msg("options: %s", err->message);
	log_init(f->cfg.log_level);
	assert_int_equal(daemon_start(&f->d, &f->cfg), 0);
	if (vhost_user)
		inproc_attach_vhost_user(f);
	else
		f->qemu = inproc_connect(f);
	end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	while (f->d.be->stats.peers_accepted == 0 && g_get_monotonic_time() < end)
		inproc_pump(5);
	assert_int_equal(f->d.be->stats.peers_accepted, 1);
	return f;
}

void inproc_stop(struct inproc *f)
{
	if (f->qemu >= 0)
		close(f->qemu);
	vufront_free(f->vf);
	daemon_stop(&f->d);
	ms_config_free(&f->cfg);
	/* The backend removes its socket: the directory must be empty now. */
	assert_int_equal(rmdir(f->dir), 0);
	g_free(f->sock);
	g_free(f->dir);
	g_free(f);
}

void inproc_send(struct inproc *f, const uint8_t *frame, size_t len)
{
	uint8_t prefix[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			      (uint8_t)len };
	struct iovec iov[2] = { { prefix, 4 }, { (void *)frame, len } };

	if (f->vf) {
		assert_int_equal(vufront_tx(f->vf, NULL, frame, len), 0);
		return;
	}
	assert_int_equal(writev(f->qemu, iov, 2), (ssize_t)(4 + len));
}

/* Move the oldest whole frame in rbuf to @frame: its length, 0 if rbuf holds none. */
static size_t inproc_take(struct inproc *f, uint8_t *frame, size_t cap)
{
	uint32_t len;

	if (f->rlen < 4)
		return 0;
	len = inproc_be32(f->rbuf);
	if (f->rlen < 4 + len)
		return 0;
	assert_true(len <= cap);
	memcpy(frame, f->rbuf + 4, len);
	memmove(f->rbuf, f->rbuf + 4 + len, f->rlen - 4 - len);
	f->rlen -= 4 + len;
	return len;
}

/* Whatever the daemon has delivered, into rbuf: 1 if some came, 0 if none, -1 at EOF. */
static int inproc_pull(struct inproc *f)
{
	ssize_t n;

	if (f->vf)
		return inproc_vu_drain(f) ? 1 : 0;
	n = read(f->qemu, f->rbuf + f->rlen, sizeof(f->rbuf) - f->rlen);
	if (n == 0)
		return -1;
	if (n > 0)
		f->rlen += (size_t)n;
	return n > 0;
}

size_t inproc_recv(struct inproc *f, uint8_t *frame, size_t cap, int ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	for (;;) {
		size_t len = inproc_take(f, frame, cap);
		int got;

		if (len)
			return len;
		if (g_get_monotonic_time() > end)
			return 0;
		inproc_iterate();
		got = inproc_pull(f);
		if (got < 0)
			return 0;
		if (!got)
			g_usleep(500);
	}
}

size_t inproc_recv_delivered(struct inproc *f, uint8_t *frame, size_t cap)
{
	size_t len = inproc_take(f, frame, cap);

	if (!len && inproc_pull(f) > 0)
		len = inproc_take(f, frame, cap);
	return len;
}

size_t inproc_recv_match(struct inproc *f, uint8_t *frame, size_t cap, inproc_pred pred,
			 void *arg)
{
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;

	while (g_get_monotonic_time() < end) {
		size_t len = inproc_recv(f, frame, cap, 100);

		if (len && pred(frame, len, arg))
			return len;
	}
	return 0;
}

bool inproc_is_arp_reply(const uint8_t *fr, size_t len, void *arg)
{
	(void)arg;
	return len >= 42 && fr[12] == 0x08 && fr[13] == 0x06 && fr[20] == 0 && fr[21] == 2;
}

void inproc_arp_gateway(struct inproc *f)
{
	uint8_t fr[128], rx[2048];
	size_t len = pkt_arp_request(fr, inproc_ip("10.0.2.15"), inproc_ip("10.0.2.2"));

	inproc_send(f, fr, len);
	assert_true(inproc_recv_match(f, rx, sizeof(rx), inproc_is_arp_reply, NULL) > 0);
}

bool inproc_is_tcp(const uint8_t *fr, size_t len, void *arg)
{
	struct inproc_tcp_match *m = arg;
	struct pkt_ipv4_view v;

	return !pkt_parse_ipv4(fr, len, &v) && v.proto == IPPROTO_TCP && v.l4_len >= 20 &&
	       (v.l4[0] << 8 | v.l4[1]) == m->sport && (v.l4[2] << 8 | v.l4[3]) == m->dport &&
	       (v.l4[13] & m->flags) == m->flags;
}

size_t inproc_expect_segment(struct inproc *f, uint8_t *rx, size_t cap, const char *src,
			     uint16_t sport, uint16_t dport, uint8_t flags, struct pkt_ipv4_view *v)
{
	struct inproc_tcp_match m = { sport, dport, flags };
	size_t len = inproc_recv_match(f, rx, cap, inproc_is_tcp, &m);

	assert_true(len > 0);
	assert_int_equal(pkt_parse_ipv4(rx, len, v), 0);
	assert_int_equal(v->src.s_addr, inproc_ip(src).s_addr);
	assert_int_equal(v->dst.s_addr, inproc_ip(INPROC_GUEST).s_addr);
	assert_true(v->ip_csum_ok);
	assert_true(v->l4_csum_ok);
	return len;
}

int inproc_sidecar_listen(uint16_t *port, bool listening)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	if (!listening) {
		close(fd);
		return -1;
	}
	return fd;
}

int inproc_unix_listen(const char *path, int backlog, bool do_listen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (do_listen)
		assert_int_equal(listen(fd, backlog), 0);
	return fd;
}

void inproc_expect_v2_header(int conn, const char *src, const char *dst, uint16_t sport,
			     uint16_t dport)
{
	uint8_t hdr[28], want[28];
	struct in_addr s = inproc_ip(src), d = inproc_ip(dst);
	uint16_t sp = htons(sport), dp = htons(dport);

	inproc_read_exact(conn, hdr, sizeof(hdr));
	memcpy(want, "\r\n\r\n\0\r\nQUIT\n", 12);
	want[12] = 0x21;           /* version 2, PROXY */
	want[13] = 0x11;           /* TCP over IPv4 */
	want[14] = 0;
	want[15] = 12;
	memcpy(want + 16, &s, 4);
	memcpy(want + 20, &d, 4);
	memcpy(want + 24, &sp, 2);
	memcpy(want + 26, &dp, 2);
	assert_memory_equal(hdr, want, sizeof(want));
}

int inproc_accept(int lfd)
{
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	int conn = -1;

	while (conn < 0 && g_get_monotonic_time() < end) {
		inproc_pump(2);
		conn = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	assert_true(conn >= 0);
	return conn;
}

/* The daemon runs in this process: its descriptors are ours to scan. */
int inproc_daemon_peer_fd(int listener, int accepted)
{
	struct sockaddr_storage listen_addr, peer;
	socklen_t listen_len = sizeof(listen_addr), len;
	int found = -1;

	assert_int_equal(getsockname(listener, (struct sockaddr *)&listen_addr, &listen_len), 0);
	for (int fd = 0; fd < 4096; fd++) {
		len = sizeof(peer);
		if (fd == accepted || fd == listener || getpeername(fd, (struct sockaddr *)&peer, &len) ||
		    len != listen_len || memcmp(&peer, &listen_addr, len))
			continue;
		assert_int_equal(found, -1);
		found = fd;
	}
	assert_true(found >= 0);
	return found;
}

#define INPROC_DEFAULT_CC_PATH "/proc/sys/net/ipv4/tcp_congestion_control"

/*
 * Write @name as the calling thread's namespace's default congestion
 * control; 0, or the errno (EIO for a short write).  No check in it: it
 * also runs inside inproc_netns_enter()/leave().  Not g_file_set_contents():
 * /proc takes no temporary file and rename.
 */
static int inproc_write_default_cc(const char *name)
{
	int fd = open(INPROC_DEFAULT_CC_PATH, O_WRONLY | O_CLOEXEC), err = 0;
	ssize_t n;

	if (fd < 0)
		return errno;
	n = write(fd, name, strlen(name));
	if (n < 0)
		err = errno;
	else if ((size_t)n != strlen(name))
		err = EIO;
	close(fd);
	return err;
}

void inproc_set_default_cc(const char *name, char *old, size_t len)
{
	g_autofree char *now = NULL;

	if (old) {
		assert_true(g_file_get_contents(INPROC_DEFAULT_CC_PATH, &now, NULL, NULL));
		g_strstrip(now);
		assert_true(g_strlcpy(old, now, len) < len);
	}
	assert_int_equal(inproc_write_default_cc(name), 0);
}

int inproc_netns_enter(int sock)
{
	int netns = ioctl(sock, SIOCGSKNS), self, err = 0;

	assert_true(netns >= 0);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0 || setns(netns, CLONE_NEWNET) < 0) {
		err = errno;
		if (self >= 0)
			close(self);
	}
	close(netns);
	assert_int_equal(err, 0);
	return self;
}

void inproc_netns_leave(int self)
{
	if (setns(self, CLONE_NEWNET) < 0)
		abort();
	close(self);
}

void inproc_set_default_cc_in(int sock, const char *name)
{
	int self = inproc_netns_enter(sock), err;

	err = inproc_write_default_cc(name);
	inproc_netns_leave(self);
	assert_int_equal(err, 0);
}

char *inproc_run_in(int sock, const char *const *argv)
{
	g_autoptr(GError) error = NULL;
	char *out = NULL;
	int self = inproc_netns_enter(sock), status = -1;
	gboolean ran;

	/* A spawned child starts in the namespace of the thread that forks it. */
	ran = g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL,
			   NULL, NULL, &out, NULL, &status, &error);
	inproc_netns_leave(self);
	if (!ran)
		fail_msg("%s: %s", argv[0], error->message);
	assert_true(g_spawn_check_wait_status(status, NULL));
	return out;
}

void inproc_require_cc(const char *name)
{
	g_autofree char *list = NULL;
	g_auto(GStrv) names = NULL;

	if (!g_file_get_contents("/proc/sys/net/ipv4/tcp_available_congestion_control", &list,
				 NULL, NULL))
		skip();
	names = g_strsplit_set(g_strstrip(list), " ", -1);
	if (!g_strv_contains((const char *const *)names, name))
		skip();
}

void inproc_expect_cc(int fd, const char *name)
{
	char cc[32] = "";
	socklen_t len = sizeof(cc);

	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_string_equal(cc, name);
}

void inproc_expect_reset(int fd)
{
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	uint8_t buf[2048];
	ssize_t n;

	do {
		inproc_pump(5);
		n = recv(fd, buf, sizeof(buf), 0);
	} while ((n > 0 || (n < 0 && errno == EAGAIN)) && g_get_monotonic_time() < end);
	assert_int_equal(n, -1);
	assert_int_equal(errno, ECONNRESET);
}

void inproc_read_exact(int fd, uint8_t *buf, size_t len)
{
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	size_t got = 0;

	while (got < len && g_get_monotonic_time() < end) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			break;
		else
			inproc_pump(1);
	}
	assert_int_equal(got, len);
}

static bool inproc_is_syn_to(const uint8_t *fr, size_t len, uint16_t port)
{
	struct pkt_ipv4_view v;

	return !pkt_parse_ipv4(fr, len, &v) && v.proto == IPPROTO_TCP && v.l4_len >= 20 &&
	       (v.l4[2] << 8 | v.l4[3]) == port && (v.l4[13] & 0x12) == 0x02;
}

bool inproc_guest_expect_syn(struct inproc *f, uint16_t guest_port, struct inproc_gconn *c,
			     int ms)
{
	uint8_t rx[2048];
	struct pkt_ipv4_view v;
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	while (g_get_monotonic_time() < end) {
		size_t len = inproc_recv(f, rx, sizeof(rx), 20);

		if (!len || !inproc_is_syn_to(rx, len, guest_port))
			continue;
		assert_int_equal(pkt_parse_ipv4(rx, len, &v), 0);
		assert_true(v.ip_csum_ok);
		assert_true(v.l4_csum_ok);
		c->peer = v.src;
		c->peer_port = (uint16_t)(v.l4[0] << 8 | v.l4[1]);
		c->guest_port = guest_port;
		c->peer_seq = inproc_be32(v.l4 + 4) + 1;
		c->our_seq = 70000;
		memcpy(c->dst_mac, rx, 6);
		memcpy(c->src_mac, rx + 6, 6);
		return true;
	}
	return false;
}

void inproc_guest_send(struct inproc *f, struct inproc_gconn *c, uint8_t flags, const void *data,
		       size_t len)
{
	uint8_t fr[2048];
	size_t n = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), c->peer, c->guest_port,
			   c->peer_port, c->our_seq, c->peer_seq, flags, data, len);

	inproc_send(f, fr, n);
	c->our_seq += (uint32_t)len + ((flags & 0x02) ? 1 : 0);
}

size_t inproc_guest_recv_data(struct inproc *f, struct inproc_gconn *c, uint8_t *out, size_t cap)
{
	struct inproc_tcp_match m = { c->peer_port, c->guest_port, 0x10 };
	uint8_t rx[4096];
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;

	while (g_get_monotonic_time() < end) {
		struct pkt_ipv4_view v;
		size_t len = inproc_recv_match(f, rx, sizeof(rx), inproc_is_tcp, &m), off, n;

		if (!len)
			break;
		assert_int_equal(pkt_parse_ipv4(rx, len, &v), 0);
		assert_int_equal(v.src.s_addr, c->peer.s_addr);
		assert_true(v.ip_csum_ok && v.l4_csum_ok);
		off = (size_t)(v.l4[12] >> 4) * 4;
		n = v.l4_len - off;
		if (!n)
			continue;
		assert_true(n <= cap);
		memcpy(out, v.l4 + off, n);
		c->peer_seq += (uint32_t)n;
		inproc_guest_send(f, c, 0x10, NULL, 0);
		return n;
	}
	return 0;
}

ssize_t inproc_client_read(int fd, uint8_t *buf, size_t cap, int ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	while (g_get_monotonic_time() < end) {
		ssize_t n = read(fd, buf, cap);

		if (n >= 0)
			return n;
		if (errno != EAGAIN)
			return -errno;
		inproc_pump(2);
	}
	return -ETIMEDOUT;
}

void inproc_skip_if_valgrind_takes_emfile(void)
{
	if (getenv("MESHSLIRP_UNDER_VALGRIND")) {
		print_message("skipped: valgrind consumes a connection it refuses with EMFILE\n");
		skip();
	}
}

rlim_t inproc_fd_limit_leaving(rlim_t soft, unsigned int spare)
{
	g_autofree bool *open_fd = NULL;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	rlim_t limit = 0;

	soft = MIN(soft, (rlim_t)1 << 20);
	open_fd = g_new0(bool, soft);
	assert_non_null(d);
	while ((e = readdir(d))) {
		long fd = strtol(e->d_name, NULL, 10);

		/* The directory's own descriptor closes below: it is room. */
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd != dirfd(d) &&
		    (rlim_t)fd < soft)
			open_fd[fd] = true;
	}
	closedir(d);
	/* Past the last free number counted, up to the next hole: poll() refuses more fds than the limit. */
	while (limit < soft && (spare > 0 || open_fd[limit]))
		if (!open_fd[limit++])
			spare--;
	assert_int_equal(spare, 0);
	return limit;
}
