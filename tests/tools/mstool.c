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
 *   http-get --connect ADDR:PORT --path PATH
 *	Print "LOCAL=IP:PORT" (our own address, to compare with what the
 *	server saw), then the response body.
 *
 * Exit status: 0 on success, 1 on any I/O failure or short transfer, 2 for
 * bad usage.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <glib.h>
#include <openssl/evp.h>

static char *opt_listen, *opt_connect, *opt_path;
static gint64 opt_bytes;
static int opt_timeout = 30;

static const GOptionEntry entries[] = {
	{ "listen", 0, 0, G_OPTION_ARG_STRING, &opt_listen, "Listen address", "ADDR:PORT" },
	{ "connect", 0, 0, G_OPTION_ARG_STRING, &opt_connect, "Connect address", "ADDR:PORT" },
	{ "bytes", 0, 0, G_OPTION_ARG_INT64, &opt_bytes, "Byte count", "N" },
	{ "path", 0, 0, G_OPTION_ARG_STRING, &opt_path, "HTTP path", "PATH" },
	{ "timeout", 0, 0, G_OPTION_ARG_INT, &opt_timeout, "Give up after S seconds", "S" },
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
	struct sockaddr_in sa, peer;
	socklen_t plen = sizeof(peer);
	int one = 1, lfd, fd;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[EVP_MAX_MD_SIZE], buf[65536];
	unsigned int dlen;
	char dhex[2 * EVP_MAX_MD_SIZE + 1];
	gint64 total = 0;

	if (parse_addr(opt_listen, &sa))
		return 2;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1)) {
		perror("sink: bind/listen");
		return 1;
	}
	printf("LISTENING\n");
	fflush(stdout);
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

static int cmd_source(void)
{
	struct sockaddr_in local;
	int fd = connect_to(&local);
	EVP_MD_CTX *md;
	unsigned char digest[EVP_MAX_MD_SIZE], buf[65536];
	unsigned int dlen;
	char dhex[2 * EVP_MAX_MD_SIZE + 1];
	GRand *rand;
	gint64 sent = 0, reply = 0;

	if (fd < 0)
		return -fd;
	md = EVP_MD_CTX_new();
	rand = g_rand_new_with_seed(12345);
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while (sent < opt_bytes) {
		size_t n = (size_t)MIN((gint64)sizeof(buf), opt_bytes - sent);

		for (size_t i = 0; i < n; i += 4) {
			guint32 r = g_rand_int(rand);
			memcpy(buf + i, &r, MIN(4, n - i));
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
	g_rand_free(rand);
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

int main(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("sink|source|http-get");
	g_autoptr(GError) err = NULL;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc != 2) {
		fprintf(stderr, "mstool: %s\n", err ? err->message : "expected one subcommand");
		return 2;
	}
	alarm((unsigned int)opt_timeout);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "sink"))
		return cmd_sink();
	if (!strcmp(argv[1], "source"))
		return cmd_source();
	if (!strcmp(argv[1], "http-get"))
		return cmd_http_get();
	fprintf(stderr, "mstool: unknown subcommand '%s'\n", argv[1]);
	return 2;
}
