/* mstool.c - test peer for end-to-end tests: sink/source with SHA-256, HTTP GET with local address. */

/*
 * Subcommands (all bounded by --timeout, default 30 s, via alarm()):
 *
 *   sink --listen ADDR:PORT [--bytes N]
 *	Accept one connection, read until N bytes (or EOF when N is 0), print
 *	"SINK peer=IP:PORT bytes=N sha256=HEX".  Prints "LISTENING" first.
 *   source --connect ADDR:PORT --bytes N
 *	Send N pseudo-random bytes, print "SOURCE local=IP:PORT bytes=N
 *	sha256=HEX", then read until EOF and print "SOURCE reply=BYTES".
 *   echo --listen ADDR:PORT [--barrier N]
 *	Serve many connections with poll(): read everything until EOF, then
 *	send it back and close.  With --barrier N, hold every reply until N
 *	connections have been open at the same time (proves concurrency).
 *	Runs until --timeout.  Prints "LISTENING", then "ECHO peak=N" lines,
 *	and with --peers "ECHO peer=IP:PORT" for each connection.
 *   flows --connect ADDR:PORT --count N [--parallel P] [--bytes B] [--bind-port L] [--reset]
 *	Run N connections, P at a time, all P connected before any sends:
 *	each sends B bytes, half-closes, reads them back and checks them.
 *	--bind-port: every connection from local port L (needs --parallel 1);
 *	--reset: close each with a reset (SO_LINGER 0) instead of a FIN.
 *	Prints "FLOWS ok=N failed=M max_open=P seconds=S slowest_ms=T" (T: the
 *	longest batch of P).
 *   rr --connect ADDR:PORT --count N [--bytes B]
 *	N request/response round trips of B bytes each way on one connection
 *	(the peer is an echo server that answers per message: mstool rr-server).
 *	Prints "RR count=N p50_us=X p99_us=Y".
 *   rr-server --listen ADDR:PORT [--bytes B]
 *	Answer every B-byte request with B bytes, one connection at a time.
 *   hold --connect ADDR:PORT --count N [--seconds S]
 *	Open N connections, print "HOLD open=N", keep them idle for S seconds.
 *   pump --tap IFNAME --netns PATH --socket PATH [--mtu M]
 *	Play QEMU: move frames between a tap device (in PATH's namespace) and
 *	meshslirp's -netdev stream socket.  Runs until --timeout or EOF.
 *   http-get --connect ADDR:PORT --path PATH
 *	Print "LOCAL=IP:PORT" (our own address, to compare with what the
 *	server saw), then the response body.
 *   pcap --file PATH [--port P]
 *	Read a pcap capture (QEMU's filter-dump) and print one line per IPv4
 *	TCP segment, to or from port P if given: "TCP t=SECONDS SRC:PORT >
 *	DST:PORT flags=FSRPA len=N seq=S ack=A" (flags as letters, '.' when unset).
 *   urgent --connect ADDR:PORT
 *	Send "ab", then "!" as urgent data (MSG_OOB), then "cd", half-close,
 *	and read until EOF.  Prints "URGENT sent=ab!cd".  The sink on the
 *	other side sees "abcd" through a proxy that leaves urgent bytes out.
 *   private-listener --pid PID
 *	Find process PID's TCP listeners that live in another network namespace
 *	than the process itself (meshslirp's private stack: kstack.h), taking
 *	each of its socket descriptors with pidfd_getfd() (root, or ptrace
 *	rights over PID), and print "PRIVATE-LISTENER sndbuf=N" for each, N as
 *	SO_SNDBUF reads it.  Exits 1 if there is none.
 *   seccomp-kill SYSCALL CMD [ARG...]
 *	Run CMD under a seccomp filter that kills the process (SIGSYS) on
 *	SYSCALL and allows every other call, as systemd's SystemCallFilter=
 *	does to a call outside its list.  No --timeout (it would outlive the
 *	exec as an alarm) and no other option.
 *
 * Exit status: 0 on success, 1 on any I/O failure or short transfer, 2 for
 * bad usage.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <seccomp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/sockios.h>

#include <glib.h>
#include <openssl/evp.h>

#include "backend/frame.h"
#include <stdbool.h>

static char *opt_listen, *opt_connect, *opt_path;
static gint64 opt_bytes;
static int opt_timeout = 30;
static gint64 opt_count = 1, opt_parallel = 1, opt_barrier;
static gboolean opt_peers, opt_reset;
static gint64 opt_bind_port;
static char *opt_tap, *opt_netns, *opt_socket, *opt_file;
static gint64 opt_port;
static gint64 opt_seconds = 10, opt_mtu = 65520;
static gint64 opt_interval_us;
static gint64 opt_pid;

static const GOptionEntry entries[] = {
	{ "listen", 0, 0, G_OPTION_ARG_STRING, &opt_listen, "Listen address", "ADDR:PORT" },
	{ "connect", 0, 0, G_OPTION_ARG_STRING, &opt_connect, "Connect address", "ADDR:PORT" },
	{ "bytes", 0, 0, G_OPTION_ARG_INT64, &opt_bytes, "Byte count", "N" },
	{ "path", 0, 0, G_OPTION_ARG_STRING, &opt_path, "HTTP path", "PATH" },
	{ "timeout", 0, 0, G_OPTION_ARG_INT, &opt_timeout, "Give up after S seconds", "S" },
	{ "count", 0, 0, G_OPTION_ARG_INT64, &opt_count, "Connections in all (flows)", "N" },
	{ "interval-us", 0, 0, G_OPTION_ARG_INT64, &opt_interval_us,
	  "Start a request every US microseconds, not as soon as the reply came (rr)", "US" },
	{ "parallel", 0, 0, G_OPTION_ARG_INT64, &opt_parallel, "Connections at once (flows)", "P" },
	{ "barrier", 0, 0, G_OPTION_ARG_INT64, &opt_barrier, "Hold replies until N are open (echo)", "N" },
	{ "peers", 0, 0, G_OPTION_ARG_NONE, &opt_peers, "Print each accepted peer (echo)", NULL },
	{ "bind-port", 0, 0, G_OPTION_ARG_INT64, &opt_bind_port, "Local port of every connection (flows)", "L" },
	{ "reset", 0, 0, G_OPTION_ARG_NONE, &opt_reset, "Close with a reset (flows)", NULL },
	{ "seconds", 0, 0, G_OPTION_ARG_INT64, &opt_seconds, "Hold for S seconds (hold)", "S" },
	{ "tap", 0, 0, G_OPTION_ARG_STRING, &opt_tap, "Tap device (pump)", "IFNAME" },
	{ "netns", 0, 0, G_OPTION_ARG_STRING, &opt_netns, "Namespace of the tap (pump)", "PATH" },
	{ "socket", 0, 0, G_OPTION_ARG_STRING, &opt_socket, "meshslirp stream socket (pump)", "PATH" },
	{ "mtu", 0, 0, G_OPTION_ARG_INT64, &opt_mtu, "Tap MTU (pump)", "M" },
	{ "file", 0, 0, G_OPTION_ARG_FILENAME, &opt_file, "Capture file (pcap)", "PATH" },
	{ "port", 0, 0, G_OPTION_ARG_INT64, &opt_port, "Only segments to or from this port (pcap)", "P" },
	{ "pid", 0, 0, G_OPTION_ARG_INT64, &opt_pid, "Process to look into (private-listener)", "PID" },
	{ NULL, 0, 0, 0, NULL, NULL, NULL },
};

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	const char *colon = s ? strrchr(s, ':') : NULL;
	g_autofree char *host = NULL;

	if (!colon)
		return -1;
	host = g_strndup(s, colon - s);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* Listening socket on --listen; returns the fd, -2 for a bad address, -1 on error. */
static int listen_on(int backlog, int flags, const char *who)
{
	struct sockaddr_in sa;
	int one = 1, fd;

	if (parse_addr(opt_listen, &sa))
		return -2;
	fd = socket(AF_INET, SOCK_STREAM | flags, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, backlog)) {
		fprintf(stderr, "%s: bind/listen %s: %s\n", who, opt_listen, strerror(errno));
		close(fd);
		return -1;
	}
	printf("LISTENING\n");
	fflush(stdout);
	return fd;
}

static const char *fmt_addr(const struct sockaddr_in *sa)
{
	static char buf[64];
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	snprintf(buf, sizeof(buf), "%s:%u", ip, ntohs(sa->sin_port));
	return buf;
}

static void hex(const unsigned char *d, unsigned int n, char *out)
{
	for (unsigned int i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static int cmd_sink(void)
{
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	int lfd, fd;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[EVP_MAX_MD_SIZE], buf[65536];
	unsigned int dlen;
	char dhex[2 * EVP_MAX_MD_SIZE + 1];
	gint64 total = 0;

	lfd = listen_on(1, 0, "sink");
	if (lfd < 0)
		return lfd == -2 ? 2 : 1;
	fd = accept(lfd, (struct sockaddr *)&peer, &plen);
	if (fd < 0) {
		perror("sink: accept");
		return 1;
	}
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while (!opt_bytes || total < opt_bytes) {
		size_t want = sizeof(buf);
		ssize_t n;

		if (opt_bytes && (gint64)want > opt_bytes - total)
			want = (size_t)(opt_bytes - total);
		n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		total += n;
	}
	EVP_DigestFinal_ex(md, digest, &dlen);
	EVP_MD_CTX_free(md);
	hex(digest, dlen, dhex);
	printf("SINK peer=%s bytes=%" G_GINT64_FORMAT " sha256=%s\n", fmt_addr(&peer), total, dhex);
	fflush(stdout);
	close(fd);
	close(lfd);
	return (!opt_bytes || total == opt_bytes) ? 0 : 1;
}

static int connect_to(struct sockaddr_in *local)
{
	struct sockaddr_in sa;
	socklen_t llen = sizeof(*local);
	int fd;

	if (parse_addr(opt_connect, &sa))
		return -2;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "connect %s: %s\n", opt_connect, strerror(errno));
		close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *)local, &llen);
	return fd;
}

static int write_all(int fd, const void *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p = (const char *)p + n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * source_next - the next 8 bytes of the source's stream (splitmix64).  Not GRand: one
 * g_rand_int() per 4 bytes capped a source at about 250 MiB/s on a core of its own, and
 * on two cores shared with the daemon, its front-end and the sink it took the CPU a
 * bulk test's path needed (sched_auto under ASan in CI: 75 MiB/s, below the entry rate
 * of 128 MiB/s it judges); this is a few instructions per 8 bytes, and the stream is as
 * opaque to the path as before.
 */
static guint64 source_next(guint64 *state)
{
	guint64 z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int cmd_source(void)
{
	struct sockaddr_in local;
	int fd = connect_to(&local);
	EVP_MD_CTX *md;
	unsigned char digest[EVP_MAX_MD_SIZE], buf[65536];
	unsigned int dlen;
	char dhex[2 * EVP_MAX_MD_SIZE + 1];
	guint64 state = 12345;
	gint64 sent = 0, reply = 0;

	if (fd < 0)
		return -fd;
	md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while (sent < opt_bytes) {
		size_t n = (size_t)MIN((gint64)sizeof(buf), opt_bytes - sent);

		for (size_t i = 0; i < n; i += 8) {
			guint64 r = source_next(&state);

			memcpy(buf + i, &r, MIN(8, n - i));
		}
		if (write_all(fd, buf, n)) {
			perror("source: write");
			return 1;
		}
		EVP_DigestUpdate(md, buf, n);
		sent += (gint64)n;
	}
	shutdown(fd, SHUT_WR);
	EVP_DigestFinal_ex(md, digest, &dlen);
	EVP_MD_CTX_free(md);
	hex(digest, dlen, dhex);
	printf("SOURCE local=%s bytes=%" G_GINT64_FORMAT " sha256=%s\n", fmt_addr(&local), sent, dhex);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		reply += n;
	}
	printf("SOURCE reply=%" G_GINT64_FORMAT "\n", reply);
	close(fd);
	return 0;
}

#define MAX_CONNS 16384

struct echo_conn {
	int fd;
	GByteArray *data;           /* received, to send back after EOF */
	size_t sent;
	bool eof;
};

static int cmd_echo(void)
{
	struct echo_conn *conns = g_new0(struct echo_conn, MAX_CONNS);
	struct pollfd *pfd = g_new0(struct pollfd, MAX_CONNS + 1);
	size_t n = 0;
	gint64 open = 0, peak = 0, reported = 0;
	bool released = opt_barrier <= 0;
	int lfd = listen_on(4096, SOCK_NONBLOCK, "echo");

	if (lfd < 0)
		return lfd == -2 ? 2 : 1;
	for (;;) { /* ends by alarm(--timeout) */
		pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (size_t i = 0; i < n; i++) {
			short ev = conns[i].eof ? 0 : POLLIN;

			if (conns[i].eof && released)
				ev = POLLOUT;
			pfd[i + 1] = (struct pollfd){ .fd = conns[i].fd, .events = ev };
		}
		if (poll(pfd, n + 1, 1000) < 0 && errno != EINTR)
			return 1;
		if (pfd[0].revents & POLLIN) {
			for (int k = 0; k < 256 && n < MAX_CONNS; k++) {
				struct sockaddr_in peer;
				socklen_t plen = sizeof(peer);
				int c = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK);

				if (c < 0)
					break;
				if (opt_peers)
					printf("ECHO peer=%s\n", fmt_addr(&peer));
				conns[n++] = (struct echo_conn){ .fd = c, .data = g_byte_array_new() };
				open++;
			}
			if (open > peak)
				peak = open;
			if (!released && peak >= opt_barrier)
				released = true;
		}
		for (size_t i = 0; i < n; i++) {
			struct echo_conn *c = &conns[i];
			uint8_t buf[16384];
			ssize_t r;

			if (!pfd[i + 1].revents)
				continue;
			if (!c->eof) {
				r = read(c->fd, buf, sizeof(buf));
				if (r > 0)
					g_byte_array_append(c->data, buf, (guint)r);
				else if (r == 0 || errno != EAGAIN)
					c->eof = true;
				continue;
			}
			r = write(c->fd, c->data->data + c->sent, c->data->len - c->sent);
			if (r > 0)
				c->sent += (size_t)r;
			if (c->sent == c->data->len || (r < 0 && errno != EAGAIN)) {
				close(c->fd);
				g_byte_array_unref(c->data);
				conns[i] = conns[--n];
				pfd[i + 1] = pfd[n + 1];
				open--;
				i--;
			}
		}
		if (peak != reported) {
			printf("ECHO peak=%" G_GINT64_FORMAT "\n", peak);
			reported = peak;
		}
	}
}

struct flow_conn {
	int fd;
	size_t sent, got;
	bool connected, done, failed;
};

static void flow_pattern(uint8_t *buf, size_t len, size_t id)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(id * 131 + i * 7);
}

/* One batch of @p connections; returns failures. */
static gint64 flows_batch(const struct sockaddr_in *sa, gint64 p, gint64 first_id)
{
	struct flow_conn *c = g_new0(struct flow_conn, p);
	struct pollfd *pfd = g_new0(struct pollfd, p);
	size_t len = (size_t)opt_bytes;
	uint8_t *want = g_malloc(len + 1), *buf = g_malloc(len + 16384);
	gint64 connected = 0, failed = 0, left = p;

	for (gint64 i = 0; i < p; i++) {
		c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (c[i].fd >= 0 && opt_bind_port) {
			struct sockaddr_in local = { .sin_family = AF_INET,
						     .sin_port = htons((uint16_t)opt_bind_port) };
			int one = 1;

			setsockopt(c[i].fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(c[i].fd, (struct sockaddr *)&local, sizeof(local)) < 0)
				fprintf(stderr, "flows: bind to port %" G_GINT64_FORMAT ": %s\n",
					opt_bind_port, strerror(errno));
		}
		if (c[i].fd < 0 || (connect(c[i].fd, (const struct sockaddr *)sa, sizeof(*sa)) &&
				    errno != EINPROGRESS)) {
			c[i].failed = c[i].done = true;
			failed++;
			left--;
		}
	}
	/* Phase 1: every connection established before any data moves. */
	while (connected + failed < p) {
		for (gint64 i = 0; i < p; i++)
			pfd[i] = (struct pollfd){ .fd = (c[i].done || c[i].connected) ? -1 : c[i].fd,
						  .events = POLLOUT };
		if (poll(pfd, (nfds_t)p, 1000) < 0 && errno != EINTR)
			break;
		for (gint64 i = 0; i < p; i++) {
			int err = 0;
			socklen_t el = sizeof(err);

			if (!pfd[i].revents)
				continue;
			getsockopt(c[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err) {
				c[i].failed = c[i].done = true;
				failed++;
				left--;
			} else {
				c[i].connected = true;
				connected++;
			}
		}
	}
	/* Phase 2: send, half-close, read back, compare. */
	while (left > 0) {
		for (gint64 i = 0; i < p; i++) {
			short ev = c[i].sent < len ? POLLOUT : POLLIN;

			pfd[i] = (struct pollfd){ .fd = c[i].done ? -1 : c[i].fd, .events = ev };
		}
		if (poll(pfd, (nfds_t)p, 1000) < 0 && errno != EINTR)
			break;
		for (gint64 i = 0; i < p; i++) {
			struct flow_conn *f = &c[i];
			ssize_t r;

			if (!pfd[i].revents || f->done)
				continue;
			flow_pattern(want, len, (size_t)(first_id + i));
			if (f->sent < len) {
				r = write(f->fd, want + f->sent, len - f->sent);
				if (r > 0)
					f->sent += (size_t)r;
				if (f->sent == len)
					shutdown(f->fd, SHUT_WR);
				if (r < 0 && errno != EAGAIN)
					f->failed = f->done = true;
			} else {
				r = read(f->fd, buf, len + 16384 - f->got);
				if (r > 0) {
					if (f->got + (size_t)r > len ||
					    memcmp(buf, want + f->got, (size_t)r))
						f->failed = true;
					f->got += (size_t)r;
				} else if (r == 0 || errno != EAGAIN) {
					f->failed |= f->got != len;
					f->done = true;
				}
			}
			if (f->done) {
				failed += f->failed;
				left--;
			}
		}
	}
	for (gint64 i = 0; i < p; i++) {
		if (c[i].fd < 0)
			continue;
		if (opt_reset) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			setsockopt(c[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(c[i].fd);
	}
	g_free(c);
	g_free(pfd);
	g_free(want);
	g_free(buf);
	return failed;
}

static int cmd_flows(void)
{
	struct sockaddr_in sa;
	gint64 failed = 0, start = g_get_monotonic_time(), slowest = 0;

	if (parse_addr(opt_connect, &sa) || opt_parallel < 1 || opt_count < 1 ||
	    opt_bind_port < 0 || opt_bind_port > 65535 || (opt_bind_port && opt_parallel != 1))
		return 2;
	if (!opt_bytes)
		opt_bytes = 1000;
	for (gint64 done = 0; done < opt_count; done += opt_parallel) {
		gint64 p = MIN(opt_parallel, opt_count - done), t0 = g_get_monotonic_time();

		failed += flows_batch(&sa, p, done);
		slowest = MAX(slowest, g_get_monotonic_time() - t0);
	}
	/* slowest_ms: the longest batch (with --parallel 1, the slowest single flow). */
	printf("FLOWS ok=%" G_GINT64_FORMAT " failed=%" G_GINT64_FORMAT " max_open=%" G_GINT64_FORMAT
	       " seconds=%.2f slowest_ms=%" G_GINT64_FORMAT "\n", opt_count - failed, failed,
	       MIN(opt_parallel, opt_count), (double)(g_get_monotonic_time() - start) / G_USEC_PER_SEC,
	       slowest / 1000);
	return failed ? 1 : 0;
}

static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmd_rr(void)
{
	struct sockaddr_in local;
	int fd = connect_to(&local), one = 1;
	size_t len = opt_bytes ? (size_t)opt_bytes : 64;
	uint8_t *buf = g_malloc0(len);
	uint64_t *lat = g_new(uint64_t, opt_count);

	if (fd < 0)
		return -fd;
	if (opt_interval_us < 0 || opt_interval_us > 10 * G_USEC_PER_SEC) {
		fprintf(stderr, "rr: --interval-us must be 0 to 10000000\n");
		return 2;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (gint64 i = 0, next = g_get_monotonic_time(); i < opt_count; i++) {
		gint64 t0 = g_get_monotonic_time();

		/* Paced: a request every interval, as a service under light load sees them. */
		if (opt_interval_us && next > t0) {
			g_usleep((gulong)(next - t0));
			t0 = g_get_monotonic_time();
		}
		next = t0 + opt_interval_us;
		if (write_all(fd, buf, len) || read_full(fd, buf, len)) {
			fprintf(stderr, "rr: connection failed after %" G_GINT64_FORMAT "\n", i);
			return 1;
		}
		lat[i] = (uint64_t)(g_get_monotonic_time() - t0);
	}
	qsort(lat, (size_t)opt_count, sizeof(*lat), cmp_u64);
	printf("RR count=%" G_GINT64_FORMAT " p50_us=%" G_GUINT64_FORMAT " p99_us=%" G_GUINT64_FORMAT "\n",
	       opt_count, lat[opt_count / 2], lat[opt_count * 99 / 100]);
	close(fd);
	g_free(lat);
	g_free(buf);
	return 0;
}

static int cmd_rr_server(void)
{
	size_t len = opt_bytes ? (size_t)opt_bytes : 64;
	uint8_t *buf = g_malloc0(len);
	int one = 1, lfd = listen_on(16, 0, "rr-server");

	if (lfd < 0)
		return lfd == -2 ? 2 : 1;
	for (;;) { /* ends by alarm(--timeout) */
		int c = accept(lfd, NULL, NULL);

		if (c < 0)
			continue;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while (!read_full(c, buf, len) && !write_all(c, buf, len))
			;
		close(c);
	}
}

static int cmd_hold(void)
{
	struct sockaddr_in sa;
	gint64 open_n = 0;

	if (parse_addr(opt_connect, &sa))
		return 2;
	for (gint64 i = 0; i < opt_count; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
			fprintf(stderr, "hold: connection %" G_GINT64_FORMAT ": %s\n", i, strerror(errno));
			break;
		}
		open_n++;
	}
	printf("HOLD open=%" G_GINT64_FORMAT "\n", open_n);
	sleep((unsigned int)opt_seconds);
	return open_n == opt_count ? 0 : 1;
}

/* pump: tap <-> -netdev stream, as QEMU does it (length-prefixed frames). */
static int cmd_pump(void)
{
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	struct frame_decoder dec;
	struct ifreq ifr = { 0 };
	uint8_t *frame = g_malloc(FRAME_RECORD_MAX + FRAME_PREFIX_LEN);
	int self, target, tap, sock, ctl;

	if (!opt_tap || !opt_netns || !opt_socket)
		return 2;
	self = open("/proc/self/ns/net", O_RDONLY);
	target = open(opt_netns, O_RDONLY);
	if (self < 0 || target < 0 || setns(target, CLONE_NEWNET)) {
		perror("pump: netns");
		return 1;
	}
	tap = open("/dev/net/tun", O_RDWR);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	g_strlcpy(ifr.ifr_name, opt_tap, IFNAMSIZ);
	if (tap < 0 || ioctl(tap, TUNSETIFF, &ifr)) {
		perror("pump: tap");
		return 1;
	}
	ctl = socket(AF_INET, SOCK_DGRAM, 0);
	ifr.ifr_mtu = (int)opt_mtu;
	ioctl(ctl, SIOCSIFMTU, &ifr);
	ioctl(ctl, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	ioctl(ctl, SIOCSIFFLAGS, &ifr);
	close(ctl);
	setns(self, CLONE_NEWNET);

	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	g_strlcpy(su.sun_path, opt_socket, sizeof(su.sun_path));
	if (connect(sock, (struct sockaddr *)&su, sizeof(su))) {
		perror("pump: connect");
		return 1;
	}
	frame_decoder_init(&dec, FRAME_RECORD_MAX);
	printf("PUMPING\n");
	for (;;) { /* ends by alarm(--timeout) or EOF */
		struct pollfd pfd[2] = { { .fd = tap, .events = POLLIN },
					 { .fd = sock, .events = POLLIN } };

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			return 1;
		if (pfd[0].revents & POLLIN) {
			/* Up to 64 frames from the tap per turn, one writev each. */
			for (int i = 0; i < 64; i++) {
				ssize_t n = read(tap, frame + FRAME_PREFIX_LEN, FRAME_RECORD_MAX);
				uint32_t be;

				if (n <= 0)
					break;
				be = htonl((uint32_t)n);
				memcpy(frame, &be, 4);
				if (write_all(sock, frame, (size_t)n + FRAME_PREFIX_LEN))
					return 0;
				if (poll(pfd, 1, 0) <= 0)
					break;
			}
		}
		if (pfd[1].revents & (POLLIN | POLLHUP)) {
			size_t space;
			uint8_t *dst = frame_decoder_space(&dec, &space), *f;
			ssize_t n = read(sock, dst, space);
			size_t flen;

			if (n <= 0)
				return 0;
			frame_decoder_commit(&dec, (size_t)n);
			while (frame_decoder_next(&dec, &f, &flen) > 0)
				if (write(tap, f, flen) < 0 && errno != EAGAIN)
					return 1;
		}
	}
}

/* Many connections need many descriptors: raise the soft limit to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int cmd_http_get(void)
{
	struct sockaddr_in local;
	int fd = connect_to(&local);
	g_autofree char *req = NULL;
	GString *resp = g_string_new(NULL);
	char buf[4096];
	const char *body;
	int ret = 1;

	if (fd < 0)
		return -fd;
	printf("LOCAL=%s\n", fmt_addr(&local));
	req = g_strdup_printf("GET %s HTTP/1.0\r\nHost: guest\r\n\r\n", opt_path ? opt_path : "/");
	if (write_all(fd, req, strlen(req)))
		goto out;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (resp->len < (1u << 20))
			g_string_append_len(resp, buf, n);
	}
	body = strstr(resp->str, "\r\n\r\n");
	if (!body || strncmp(resp->str, "HTTP/1.", 7) || !strstr(resp->str, " 200 ")) {
		fprintf(stderr, "http-get: bad response: %.200s\n", resp->str);
		goto out;
	}
	fputs(body + 4, stdout);
	ret = 0;
out:
	close(fd);
	g_string_free(resp, TRUE);
	return ret;
}

static uint32_t pcap_u32(const uint8_t *p, bool swap)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return swap ? GUINT32_SWAP_LE_BE(v) : v;
}

/* pcap: the TCP segments of a capture, one line each, for tests to tell a reset from a FIN. */
static int cmd_pcap(void)
{
	FILE *fp = opt_file ? fopen(opt_file, "rb") : NULL;
	uint8_t gh[24], rh[16], pkt[65536];
	bool swap;
	uint32_t magic;

	if (!fp) {
		fprintf(stderr, "pcap: %s: %s\n", opt_file ? opt_file : "(no --file)", strerror(errno));
		return opt_file ? 1 : 2;
	}
	if (fread(gh, 1, sizeof(gh), fp) != sizeof(gh)) {
		fprintf(stderr, "pcap: %s: no file header\n", opt_file);
		return 1;
	}
	magic = pcap_u32(gh, false);
	swap = magic == 0xd4c3b2a1;
	if (!swap && magic != 0xa1b2c3d4) {
		fprintf(stderr, "pcap: %s: not a microsecond pcap file\n", opt_file);
		return 1;
	}
	/* Records until EOF; a record cut short at the end (capture still written) ends it too. */
	while (fread(rh, 1, sizeof(rh), fp) == sizeof(rh)) {
		uint32_t sec = pcap_u32(rh, swap), usec = pcap_u32(rh + 4, swap);
		uint32_t caplen = pcap_u32(rh + 8, swap);
		const uint8_t *ip = pkt + 14, *tcp;
		struct sockaddr_in s = { .sin_family = AF_INET }, d = { .sin_family = AF_INET };
		char src[64], flags[6];
		size_t ihl, doff, len;

		if (caplen > sizeof(pkt) || fread(pkt, 1, caplen, fp) != caplen)
			break;
		/* Ethernet II carrying IPv4, TCP, a first (or only) fragment with its header. */
		if (caplen < 14 + 20 || pkt[12] != 0x08 || pkt[13] != 0x00 || (ip[0] >> 4) != 4 ||
		    ip[9] != IPPROTO_TCP || (((ip[6] & 0x1f) << 8) | ip[7]))
			continue;
		ihl = (size_t)(ip[0] & 0x0f) * 4;
		if (caplen < 14 + ihl + 20)
			continue;
		tcp = ip + ihl;
		memcpy(&s.sin_addr, ip + 12, 4);
		memcpy(&d.sin_addr, ip + 16, 4);
		memcpy(&s.sin_port, tcp, 2);
		memcpy(&d.sin_port, tcp + 2, 2);
		if (opt_port && ntohs(s.sin_port) != opt_port && ntohs(d.sin_port) != opt_port)
			continue;
		doff = (size_t)(tcp[12] >> 4) * 4;
		len = (size_t)((ip[2] << 8) | ip[3]);
		len = len > ihl + doff ? len - ihl - doff : 0;
		flags[0] = tcp[13] & 0x01 ? 'F' : '.';
		flags[1] = tcp[13] & 0x02 ? 'S' : '.';
		flags[2] = tcp[13] & 0x04 ? 'R' : '.';
		flags[3] = tcp[13] & 0x08 ? 'P' : '.';
		flags[4] = tcp[13] & 0x10 ? 'A' : '.';
		flags[5] = '\0';
		g_strlcpy(src, fmt_addr(&s), sizeof(src));
		printf("TCP t=%u.%06u %s > %s flags=%s len=%zu seq=%u ack=%u\n", sec, usec, src,
		       fmt_addr(&d), flags, len, ntohl(pcap_u32(tcp + 4, false)),
		       ntohl(pcap_u32(tcp + 8, false)));
	}
	fclose(fp);
	return 0;
}

static int cmd_urgent(void)
{
	struct sockaddr_in local;
	char buf[64];
	int fd = connect_to(&local);

	if (fd < 0)
		return fd == -2 ? 2 : 1;
	/* Apart, so that the urgent byte rides in a segment of its own between the others. */
	if (write_all(fd, "ab", 2) || (usleep(20000), send(fd, "!", 1, MSG_OOB)) != 1 ||
	    (usleep(20000), write_all(fd, "cd", 2)) || shutdown(fd, SHUT_WR)) {
		perror("urgent: send");
		close(fd);
		return 1;
	}
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	printf("URGENT sent=ab!cd\n");
	close(fd);
	return 0;
}

/* @sk's SO_SNDBUF if it is a listening TCP socket of another namespace than @own_ns, else -1. */
static int private_listener_sndbuf(int sk, const struct stat *own_ns)
{
	int listening = 0, proto = 0, sndbuf = -1, ns;
	socklen_t len = sizeof(int);
	struct stat st;

	if (getsockopt(sk, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) || !listening)
		return -1;
	len = sizeof(int);
	if (getsockopt(sk, SOL_SOCKET, SO_PROTOCOL, &proto, &len) || proto != IPPROTO_TCP)
		return -1;
	ns = ioctl(sk, SIOCGSKNS);
	if (ns < 0)
		return -1;
	if (!fstat(ns, &st) && (st.st_ino != own_ns->st_ino || st.st_dev != own_ns->st_dev)) {
		len = sizeof(int);
		if (getsockopt(sk, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len))
			sndbuf = -1;
	}
	close(ns);
	return sndbuf;
}

static int cmd_private_listener(void)
{
	g_autofree char *ns_path = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/ns/net", opt_pid);
	g_autofree char *fd_dir = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/fd", opt_pid);
	g_autoptr(GDir) dir = NULL;
	const char *name;
	struct stat own;
	int pidfd, found = 0, failed = 0;

	if (opt_pid <= 0)
		return 2;
	/* First, so that what is read below is of this process, not of a later one with its PID. */
	pidfd = pidfd_open((pid_t)opt_pid, 0);
	if (pidfd < 0) {
		fprintf(stderr, "private-listener: pidfd_open: %s\n", strerror(errno));
		return 1;
	}
	if (stat(ns_path, &own) || !(dir = g_dir_open(fd_dir, 0, NULL))) {
		fprintf(stderr, "private-listener: pid %" G_GINT64_FORMAT ": %s\n", opt_pid, strerror(errno));
		close(pidfd);
		return 1;
	}
	while ((name = g_dir_read_name(dir))) {
		int sk = pidfd_getfd(pidfd, atoi(name), 0), sndbuf;

		if (sk < 0) {
			/* EBADF: closed since the directory was read. */
			if (errno != EBADF && !failed++)
				fprintf(stderr, "private-listener: pidfd_getfd: %s\n", strerror(errno));
			continue;
		}
		sndbuf = private_listener_sndbuf(sk, &own);
		close(sk);
		if (sndbuf >= 0) {
			printf("PRIVATE-LISTENER sndbuf=%d\n", sndbuf);
			found++;
		}
	}
	close(pidfd);
	return found ? 0 : 1;
}

static int cmd_seccomp_kill(int argc, char **argv)
{
	scmp_filter_ctx f;
	int nr, ret;

	if (argc < 4) {
		fprintf(stderr, "usage: mstool seccomp-kill SYSCALL CMD [ARG...]\n");
		return 2;
	}
	nr = seccomp_syscall_resolve_name(argv[2]);
	if (nr == __NR_SCMP_ERROR) {
		fprintf(stderr, "mstool: seccomp-kill: no system call '%s'\n", argv[2]);
		return 2;
	}
	f = seccomp_init(SCMP_ACT_ALLOW);
	if (!f)
		return 1;
	ret = seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, nr, 0);
	if (!ret)
		ret = seccomp_load(f); /* sets no_new_privs first */
	seccomp_release(f);
	if (ret) {
		fprintf(stderr, "mstool: seccomp-kill: %s\n", strerror(-ret));
		return 1;
	}
	execvp(argv[3], argv + 3);
	fprintf(stderr, "mstool: seccomp-kill: %s: %s\n", argv[3], strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("sink|source|http-get|urgent|echo|flows|rr|rr-server|hold|pump|pcap|private-listener|seccomp-kill");
	g_autoptr(GError) err = NULL;

	/* Its own arguments, the command's included: not for GOption. */
	if (argc > 1 && !strcmp(argv[1], "seccomp-kill"))
		return cmd_seccomp_kill(argc, argv);
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc != 2) {
		fprintf(stderr, "mstool: %s\n", err ? err->message : "expected one subcommand");
		return 2;
	}
	alarm((unsigned int)opt_timeout);
	/* A peer that resets (the point of several tests) must be an error return, not a death. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "sink"))
		return cmd_sink();
	if (!strcmp(argv[1], "source"))
		return cmd_source();
	if (!strcmp(argv[1], "http-get"))
		return cmd_http_get();
	if (!strcmp(argv[1], "urgent"))
		return cmd_urgent();
	if (!strcmp(argv[1], "pcap"))
		return cmd_pcap();
	if (!strcmp(argv[1], "private-listener"))
		return cmd_private_listener();
	raise_nofile();
	if (!strcmp(argv[1], "rr"))
		return cmd_rr();
	if (!strcmp(argv[1], "rr-server"))
		return cmd_rr_server();
	if (!strcmp(argv[1], "hold"))
		return cmd_hold();
	if (!strcmp(argv[1], "pump"))
		return cmd_pump();
	if (!strcmp(argv[1], "echo"))
		return cmd_echo();
	if (!strcmp(argv[1], "flows"))
		return cmd_flows();
	fprintf(stderr, "mstool: unknown subcommand '%s'\n", argv[1]);
	return 2;
}
