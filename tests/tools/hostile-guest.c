/* hostile-guest.c - play a malicious QEMU/guest on meshslirp's stream socket: garbage, floods, lying prefixes. */

/*
 * A real guest kernel never sends a lying length prefix or 100,000 SYNs in
 * two seconds; this tool does, so the end-to-end tests can prove the daemon
 * survives what a compromised guest (or QEMU) can send.  It connects to the
 * -netdev stream socket exactly as QEMU does, announces the guest with an
 * ARP request, then, by --mode:
 *
 *   garbage	--count N frames from a seeded generator (--seed): random
 *		bytes, runts, oversize records, IPv4 with random headers and IP
 *		options, fragments, bad IP/TCP/UDP checksums, ICMP errors with
 *		random quotes, random ARP.  Every record has a valid prefix, so
 *		the connection stays up and everything reaches the parsers.
 *   flood	--count N TCP SYNs with valid checksums and distinct tuples
 *		(source ports 1024..65023 times destinations --dst+k), to --port.
 *		Never completes a handshake.
 *   ping-flood	--count N ICMP echo requests with distinct ids to --dst.
 *   probe	one SYN to --dst:--port; success when the SYN|ACK comes back
 *		within --timeout, failure on a RST or nothing.
 *   spellings	one probe per entry of --targets (tcp:ADDR:PORT, udp:ADDR:PORT,
 *		icmp:ADDR, comma-separated), one after the other; prints
 *		"PROBE tcp|udp|icmp ADDR[:PORT] RESULT" for each, RESULT being
 *		synack, rst, reply, unreach:CODE or silence (nothing within 1 s).
 *		Always succeeds: the test judges the results.
 *   lying-prefix  a length prefix no peer may send; success when the daemon
 *		closes the connection.
 *
 * Frames from the daemon are read and counted all along (a guest that never
 * reads is a different test: the daemon's transmit ring is bounded).  Prints
 * one line "HOSTILE mode=M sent=N received=R seconds=S [...]".  Exit 0 on
 * success, 1 on failure, 2 on bad usage.  Bounded by --timeout (alarm()).
 */

#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <glib.h>

#include "backend/frame.h"
#include "tests/lib/pkt.h"

#define GUEST_IP "10.0.2.15"
#define GATEWAY_IP "10.0.2.2"
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10
#define FRAME_BUF 2048

static char *opt_socket, *opt_mode, *opt_dst, *opt_targets;
static gint64 opt_count = 1000, opt_seed = 1, opt_port = 80;
static gint opt_timeout = 60;

static const GOptionEntry entries[] = {
	{ "socket", 0, 0, G_OPTION_ARG_STRING, &opt_socket, "meshslirp stream socket", "PATH" },
	{ "mode", 0, 0, G_OPTION_ARG_STRING, &opt_mode,
	  "garbage, flood, ping-flood, probe, spellings or lying-prefix", "M" },
	{ "count", 0, 0, G_OPTION_ARG_INT64, &opt_count, "Frames (garbage) or SYNs (flood)", "N" },
	{ "seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed, "Generator seed (garbage)", "S" },
	{ "dst", 0, 0, G_OPTION_ARG_STRING, &opt_dst, "Destination address (flood, probe)", "ADDR" },
	{ "port", 0, 0, G_OPTION_ARG_INT64, &opt_port, "Destination port (flood, probe)", "P" },
	{ "timeout", 0, 0, G_OPTION_ARG_INT, &opt_timeout, "Give up after S seconds", "S" },
	{ "targets", 0, 0, G_OPTION_ARG_STRING, &opt_targets,
	  "Probes for --mode spellings: tcp:ADDR:PORT,udp:ADDR:PORT,icmp:ADDR,...", "LIST" },
	{ NULL },
};

struct conn {
	int fd;
	struct frame_decoder dec;
	uint64_t sent, received;
	/* probe: the segment we wait for */
	uint16_t probe_sport;
	int probe_result;          /* 0 waiting, 1 SYN|ACK, -1 RST */
	/* spellings: the answer to the current probe */
	struct {
		uint8_t proto;
		struct in_addr dst;
		uint16_t port, sport;      /* sport: our port, or the echo id */
		char result[32];           /* empty while waiting */
	} sp;
};

static struct in_addr ip(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1) {
		fprintf(stderr, "hostile-guest: bad address %s\n", s);
		exit(2);
	}
	return a;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Recompute the IPv4 header checksum of the frame at @f. */
static void fix_ip_csum(uint8_t *f)
{
	uint8_t *iph = f + PKT_ETH_HLEN;
	size_t ihl = (size_t)(iph[0] & 0x0f) * 4;

	put16(iph + 10, 0);
	put16(iph + 10, (uint16_t)~pkt_csum_fold(pkt_csum_add(0, iph, ihl)));
}

/*
 * Zero @len bytes at @f and write the Ethernet and IPv4 headers of an ICMP
 * packet from the guest to @dst filling them (the IP checksum is the
 * caller's, once the rest is written); returns @len.
 */
static size_t icmp_frame_head(uint8_t *f, size_t len, struct in_addr src, struct in_addr dst)
{
	memset(f, 0, len);
	memcpy(f, pkt_broadcast_mac, 6);
	memcpy(f + 6, pkt_guest_mac, 6);
	put16(f + 12, PKT_ETH_P_IP);
	f[14] = 0x45;
	put16(f + 16, (uint16_t)(len - 14));
	f[22] = 64;
	f[23] = IPPROTO_ICMP;
	memcpy(f + 26, &src, 4);
	memcpy(f + 30, &dst, 4);
	return len;
}

/* Does the ICMP error @l4 quote our current spellings probe? */
static bool spelling_quoted(const struct conn *c, const uint8_t *l4, size_t len)
{
	const uint8_t *q = l4 + 8;
	size_t qhl;

	if (len < 8 + 20 + 8)
		return false;
	qhl = (size_t)(q[0] & 0x0f) * 4;
	if (len < 8 + qhl + 8 || q[9] != c->sp.proto || memcmp(q + 16, &c->sp.dst, 4))
		return false;
	if (c->sp.proto == IPPROTO_ICMP)
		return (uint16_t)(q[qhl + 4] << 8 | q[qhl + 5]) == c->sp.sport;
	return (uint16_t)(q[qhl] << 8 | q[qhl + 1]) == c->sp.sport;
}

/* Classify a frame from the daemon as the answer to the current spellings probe, if it is. */
static void spelling_frame_in(struct conn *c, const uint8_t *f, size_t len)
{
	struct pkt_ipv4_view v;

	if (!c->sp.proto || c->sp.result[0] || pkt_parse_ipv4(f, len, &v))
		return;
	if (v.proto == IPPROTO_ICMP && v.l4_len >= 8 && v.l4[0] == 3 &&
	    spelling_quoted(c, v.l4, v.l4_len)) {
		snprintf(c->sp.result, sizeof(c->sp.result), "unreach:%u", v.l4[1]);
		return;
	}
	if (v.src.s_addr != c->sp.dst.s_addr || v.proto != c->sp.proto)
		return;
	if (v.proto == IPPROTO_ICMP && v.l4_len >= 8 && v.l4[0] == 0 &&
	    (uint16_t)(v.l4[4] << 8 | v.l4[5]) == c->sp.sport) {
		strcpy(c->sp.result, "reply");
	} else if (v.proto != IPPROTO_ICMP && v.l4_len >= 8 &&
		   (uint16_t)(v.l4[0] << 8 | v.l4[1]) == c->sp.port &&
		   (uint16_t)(v.l4[2] << 8 | v.l4[3]) == c->sp.sport) {
		if (v.proto == IPPROTO_UDP)
			strcpy(c->sp.result, "reply");
		else if ((v.l4[13] & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK))
			strcpy(c->sp.result, "synack");
		else if (v.l4[13] & TH_RST)
			strcpy(c->sp.result, "rst");
	}
}

/* Inspect one frame from the daemon (probe mode looks for its answer). */
static void conn_frame_in(struct conn *c, const uint8_t *f, size_t len)
{
	struct pkt_ipv4_view v;

	c->received++;
	spelling_frame_in(c, f, len);
	if (!c->probe_sport || pkt_parse_ipv4(f, len, &v) || v.proto != IPPROTO_TCP ||
	    v.l4_len < 20 || (uint16_t)(v.l4[2] << 8 | v.l4[3]) != c->probe_sport)
		return;
	if ((v.l4[13] & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK))
		c->probe_result = 1;
	else if (v.l4[13] & TH_RST)
		c->probe_result = -1;
}

/* Read and decode whatever the daemon sent; -1 once it closed the connection. */
static int conn_drain(struct conn *c)
{
	for (;;) {
		size_t space;
		uint8_t *dst = frame_decoder_space(&c->dec, &space);
		ssize_t n = recv(c->fd, dst, space, MSG_DONTWAIT);
		uint8_t *f;
		size_t len;

		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		frame_decoder_commit(&c->dec, (size_t)n);
		while (frame_decoder_next(&c->dec, &f, &len) == 1)
			conn_frame_in(c, f, len);
	}
}

/* Send one record (prefix + bytes), draining replies while the socket is full. */
static int conn_send_record(struct conn *c, uint32_t prefix, const void *frame, size_t len)
{
	uint8_t hdr[4] = { prefix >> 24, prefix >> 16, prefix >> 8, prefix };
	struct iovec iov[2] = { { hdr, 4 }, { (void *)frame, len } };
	size_t total = 4 + len, done = 0;

	while (done < total) {
		struct pollfd p = { c->fd, POLLIN | POLLOUT, 0 };
		struct msghdr mh = { 0 };
		struct iovec cur[2];
		int ncur = 0;
		size_t skip = done;
		ssize_t n;

		for (int i = 0; i < 2; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			cur[ncur].iov_base = (uint8_t *)iov[i].iov_base + skip;
			cur[ncur++].iov_len = iov[i].iov_len - skip;
			skip = 0;
		}
		mh.msg_iov = cur;
		mh.msg_iovlen = (size_t)ncur;
		n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			return -1;
		if ((p.revents & POLLIN) && conn_drain(c) < 0)
			return -1;
	}
	c->sent++;
	return 0;
}

static int conn_send(struct conn *c, const void *frame, size_t len)
{
	return conn_send_record(c, (uint32_t)len, frame, len);
}

/* One frame of the garbage mix; returns its length (may exceed the MTU on purpose). */
static size_t garbage_frame(GRand *r, uint8_t *f, size_t cap, uint64_t i)
{
	struct in_addr guest = ip(GUEST_IP), dst;
	uint16_t sport = (uint16_t)g_rand_int_range(r, 1024, 65535);
	uint16_t dport = (uint16_t)g_rand_int_range(r, 1, 65535);
	uint8_t payload[256];
	size_t len, plen = (size_t)g_rand_int_range(r, 0, sizeof(payload));

	dst.s_addr = htonl(0xc6120000u | (uint32_t)g_rand_int_range(r, 1, 0x1ffff)); /* 198.18/15 */
	for (size_t k = 0; k < plen; k++)
		payload[k] = (uint8_t)g_rand_int(r);

	switch (i % 9) {
	case 0: /* random bytes, runts included */
		len = (size_t)g_rand_int_range(r, 0, 1600);
		for (size_t k = 0; k < len; k++)
			f[k] = (uint8_t)g_rand_int(r);
		return len;
	case 1: /* IPv4 ethertype, random header and body */
		len = (size_t)g_rand_int_range(r, 14, 1600);
		for (size_t k = 0; k < len; k++)
			f[k] = (uint8_t)g_rand_int(r);
		put16(f + 12, PKT_ETH_P_IP);
		if (g_rand_boolean(r))
			f[14] = (uint8_t)(0x40 | (f[14] & 0x0f));
		return len;
	case 2: /* a plausible TCP segment with random IP options */
		len = pkt_tcp(f, pkt_broadcast_mac, guest, dst, sport, dport, g_rand_int(r),
			      g_rand_int(r), (uint8_t)g_rand_int(r), payload, plen);
		{
			size_t olen = 4 * (size_t)g_rand_int_range(r, 1, 11);

			memmove(f + 34 + olen, f + 34, len - 34);
			for (size_t k = 0; k < olen; k++)
				f[34 + k] = (uint8_t)g_rand_int(r);
			f[14] = (uint8_t)(0x40 | (5 + olen / 4));
			put16(f + 16, (uint16_t)(len - 14 + olen));
			len += olen;
			if (g_rand_boolean(r))
				fix_ip_csum(f);
		}
		return len;
	case 3: /* fragments: random offsets and MF */
		len = g_rand_boolean(r)
			      ? pkt_udp(f, pkt_broadcast_mac, guest, dst, sport, dport, payload, plen)
			      : pkt_tcp(f, pkt_broadcast_mac, guest, dst, sport, dport, 1, 0, TH_SYN,
					payload, plen);
		put16(f + 20, (uint16_t)(g_rand_int(r) & 0x3fff));
		fix_ip_csum(f);
		return len;
	case 4: /* a SYN or datagram with a bad checksum somewhere */
		len = g_rand_boolean(r)
			      ? pkt_udp(f, pkt_broadcast_mac, guest, dst, sport, dport, payload, plen)
			      : pkt_tcp(f, pkt_broadcast_mac, guest, dst, sport, dport, 1, 0, TH_SYN,
					payload, plen);
		f[g_rand_int_range(r, 14, (gint32)len)] ^= (uint8_t)g_rand_int_range(r, 1, 256);
		return len;
	case 5: /* ICMP error quoting a random packet */
		len = icmp_frame_head(f, 14 + 20 + 8 + 28 + plen % 64, guest, dst);
		f[34] = 3;
		f[35] = (uint8_t)g_rand_int_range(r, 0, 16);
		for (size_t k = 42; k < len; k++)
			f[k] = (uint8_t)g_rand_int(r);
		f[42] = (uint8_t)(0x40 | (f[42] & 0x0f));
		f[51] = g_rand_boolean(r) ? IPPROTO_TCP : IPPROTO_UDP;
		fix_ip_csum(f);
		return len;
	case 6: /* ARP with random fields */
		len = pkt_arp_request(f, guest, dst);
		for (size_t k = 14; k < len; k++)
			if (g_rand_int_range(r, 0, 4) == 0)
				f[k] = (uint8_t)g_rand_int(r);
		return len;
	case 7: /* oversize record: longer than any MTU, shorter than a lying prefix */
		len = MIN(cap, (size_t)g_rand_int_range(r, 1600, (gint32)cap));
		memset(f, 0xab, len);
		return len;
	default: /* a valid UDP datagram to a random test address */
		return pkt_udp(f, pkt_broadcast_mac, guest, dst, sport, dport, payload, plen);
	}
}

static int run_garbage(struct conn *c)
{
	g_autoptr(GRand) r = g_rand_new_with_seed((guint32)opt_seed);
	/* Oversize records up to FRAME_RECORD_MAX - 1: the daemon skips them, the stream stays. */
	g_autofree uint8_t *f = g_malloc(FRAME_RECORD_MAX - 1);

	for (uint64_t i = 0; i < (uint64_t)opt_count; i++) {
		size_t cap = (i % 9 == 7) ? FRAME_RECORD_MAX - 1 : FRAME_BUF;
		size_t len = garbage_frame(r, f, cap, i);

		if (conn_send(c, f, len) < 0)
			return -1;
	}
	return 0;
}

static int run_flood(struct conn *c)
{
	struct in_addr guest = ip(GUEST_IP), base = ip(opt_dst ? opt_dst : "198.18.0.1");
	uint8_t f[FRAME_BUF];

	for (uint64_t i = 0; i < (uint64_t)opt_count; i++) {
		struct in_addr dst = { htonl(ntohl(base.s_addr) + (uint32_t)(i / 64000)) };
		size_t len = pkt_tcp(f, pkt_broadcast_mac, guest, dst, (uint16_t)(1024 + i % 64000),
				     (uint16_t)opt_port, (uint32_t)i * 7919u, 0, TH_SYN, NULL, 0);

		if (conn_send(c, f, len) < 0)
			return -1;
	}
	return 0;
}

/* ICMP echo request from the guest to @dst with @id, 8 bytes of data. */
static size_t echo_request(uint8_t *f, struct in_addr dst, uint16_t id)
{
	size_t len = icmp_frame_head(f, 14 + 20 + 8 + 8, ip(GUEST_IP), dst);

	fix_ip_csum(f);
	f[34] = 8;
	put16(f + 38, id);
	put16(f + 40, 1);
	memcpy(f + 42, "hostile!", 8);
	put16(f + 36, (uint16_t)~pkt_csum_fold(pkt_csum_add(0, f + 34, 16)));
	return len;
}

static int run_ping_flood(struct conn *c)
{
	struct in_addr dst = ip(opt_dst ? opt_dst : "198.18.0.77");
	uint8_t f[FRAME_BUF];

	for (uint64_t i = 0; i < (uint64_t)opt_count; i++)
		if (conn_send(c, f, echo_request(f, dst, (uint16_t)i)) < 0)
			return -1;
	return 0;
}

static int run_probe(struct conn *c)
{
	uint8_t f[FRAME_BUF];
	size_t len;

	c->probe_sport = 65001;
	len = pkt_tcp(f, pkt_broadcast_mac, ip(GUEST_IP), ip(opt_dst ? opt_dst : "198.18.0.1"),
		      c->probe_sport, (uint16_t)opt_port, 424242, 0, TH_SYN, NULL, 0);
	if (conn_send(c, f, len) < 0)
		return -1;
	while (!c->probe_result) {
		struct pollfd p = { c->fd, POLLIN, 0 };

		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			return -1;
		if (conn_drain(c) < 0)
			return -1;
	}
	return c->probe_result > 0 ? 0 : -1;
}

/* One probe of --mode spellings: send it, wait up to a second for its answer, print it. */
static int spelling_probe(struct conn *c, const char *spec, uint16_t n)
{
	g_auto(GStrv) parts = g_strsplit(spec, ":", 3);
	uint8_t f[FRAME_BUF];
	gint64 end;
	size_t len;

	memset(&c->sp, 0, sizeof(c->sp));
	if (!parts[0] || !parts[1] || (strcmp(parts[0], "icmp") && !parts[2])) {
		fprintf(stderr, "hostile-guest: bad target '%s'\n", spec);
		return -1;
	}
	c->sp.dst = ip(parts[1]);
	c->sp.port = parts[2] ? (uint16_t)atoi(parts[2]) : 0;
	c->sp.sport = (uint16_t)(50000 + n);
	if (!strcmp(parts[0], "tcp")) {
		c->sp.proto = IPPROTO_TCP;
		len = pkt_tcp(f, pkt_broadcast_mac, ip(GUEST_IP), c->sp.dst, c->sp.sport, c->sp.port,
			      1000 + n, 0, TH_SYN, NULL, 0);
	} else if (!strcmp(parts[0], "udp")) {
		c->sp.proto = IPPROTO_UDP;
		len = pkt_udp(f, pkt_broadcast_mac, ip(GUEST_IP), c->sp.dst, c->sp.sport, c->sp.port,
			      "hostile!", 8);
	} else if (!strcmp(parts[0], "icmp")) {
		c->sp.proto = IPPROTO_ICMP;
		len = echo_request(f, c->sp.dst, c->sp.sport);
	} else {
		fprintf(stderr, "hostile-guest: bad protocol in '%s'\n", spec);
		return -1;
	}
	if (conn_send(c, f, len) < 0)
		return -1;
	end = g_get_monotonic_time() + G_USEC_PER_SEC;
	while (!c->sp.result[0] && g_get_monotonic_time() < end) {
		struct pollfd p = { c->fd, POLLIN, 0 };

		if (poll(&p, 1, 100) < 0 && errno != EINTR)
			return -1;
		if (conn_drain(c) < 0)
			return -1;
	}
	printf("PROBE %s %s%s%s %s\n", parts[0], parts[1], parts[2] ? ":" : "",
	       parts[2] ? parts[2] : "", c->sp.result[0] ? c->sp.result : "silence");
	fflush(stdout);
	return 0;
}

static int run_spellings(struct conn *c)
{
	g_auto(GStrv) targets = g_strsplit(opt_targets ? opt_targets : "", ",", 0);
	uint16_t n = 0;

	for (char **t = targets; *t; t++) {
		if (**t && spelling_probe(c, g_strstrip(*t), n++) < 0)
			return -1;
	}
	memset(&c->sp, 0, sizeof(c->sp));
	return 0;
}

static int run_lying_prefix(struct conn *c)
{
	static const uint8_t junk[64];

	if (conn_send_record(c, 0x7fffffffu, junk, sizeof(junk)) < 0)
		return 0;      /* already closed on us: as good */
	for (;;) {
		struct pollfd p = { c->fd, POLLIN, 0 };

		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			return -1;
		if (conn_drain(c) < 0)
			return 0;
	}
}

static int conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t f[FRAME_BUF];

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	if (frame_decoder_init(&c->dec, 65535 + 14) < 0)
		return -1;
	/* libslirp learns the guest's MAC from its ARP request, as from a real guest. */
	return conn_send(c, f, pkt_arp_request(f, ip(GUEST_IP), ip(GATEWAY_IP)));
}

int main(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("- hostile guest for meshslirp tests");
	g_autoptr(GError) err = NULL;
	struct conn c = { .fd = -1 };
	gint64 start;
	int ret;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || !opt_socket || !opt_mode ||
	    opt_count < 0 || opt_port < 1 || opt_port > 65535) {
		fprintf(stderr, "hostile-guest: %s\n", err ? err->message : "need --socket and --mode");
		return 2;
	}
	alarm((unsigned int)opt_timeout);
	if (conn_open(&c, opt_socket) < 0) {
		fprintf(stderr, "hostile-guest: %s: %s\n", opt_socket, g_strerror(errno));
		return 1;
	}
	start = g_get_monotonic_time();
	if (!strcmp(opt_mode, "garbage"))
		ret = run_garbage(&c);
	else if (!strcmp(opt_mode, "flood"))
		ret = run_flood(&c);
	else if (!strcmp(opt_mode, "ping-flood"))
		ret = run_ping_flood(&c);
	else if (!strcmp(opt_mode, "probe"))
		ret = run_probe(&c);
	else if (!strcmp(opt_mode, "lying-prefix"))
		ret = run_lying_prefix(&c);
	else if (!strcmp(opt_mode, "spellings"))
		ret = run_spellings(&c);
	else {
		fprintf(stderr, "hostile-guest: unknown --mode %s\n", opt_mode);
		return 2;
	}
	/* Let the daemon answer what it got, so its counters are final when we print. */
	if (!ret && strcmp(opt_mode, "lying-prefix")) {
		gint64 end = g_get_monotonic_time() + 500 * 1000;

		while (g_get_monotonic_time() < end) {
			struct pollfd p = { c.fd, POLLIN, 0 };

			poll(&p, 1, 100);
			if (conn_drain(&c) < 0)
				break;
		}
	}
	printf("HOSTILE mode=%s sent=%" G_GUINT64_FORMAT " received=%" G_GUINT64_FORMAT
	       " seconds=%.2f result=%s\n", opt_mode, c.sent, c.received,
	       (double)(g_get_monotonic_time() - start) / G_USEC_PER_SEC, ret ? "fail" : "ok");
	frame_decoder_fini(&c.dec);
	close(c.fd);
	return ret ? 1 : 0;
}
