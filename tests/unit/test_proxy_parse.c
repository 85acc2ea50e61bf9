/* test_proxy_parse.c - unit tests of the PROXY header parser: every form, every truncation, broken headers. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <glib.h>

#include "proxy-bridge/proxy_proto.h"

#define POISON 0xa5
#define V2_HDR 16
#define PAYLOAD "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

/* Source 192.0.2.1:40000, destination 198.51.100.7:443, as a v2 INET address block. */
static const uint8_t inet_block[12] = {
	192, 0, 2, 1, 198, 51, 100, 7, 0x9c, 0x40, 0x01, 0xbb,
};

/* Source 2001:db8::1:40000, destination 2001:db8:ffff::ff:443, as a v2 INET6 block. */
static const uint8_t inet6_block[36] = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	0x9c, 0x40, 0x01, 0xbb,
};

/*
 * Parse @len bytes from an exact-size heap copy, so that ASan flags any read
 * past @len; @h is poisoned first so that stale fields show.
 */
static enum proxy_parse_status parse(const void *buf, size_t len, struct proxy_header *h,
				     enum proxy_error *err)
{
	uint8_t *copy = malloc(len ? len : 1);
	enum proxy_parse_status st;

	assert_non_null(copy);
	if (len)
		memcpy(copy, buf, len);
	memset(h, POISON, sizeof(*h));
	*err = (enum proxy_error)-1;
	st = proxy_parse(copy, len, h, err);
	free(copy);
	return st;
}

static enum proxy_parse_status parse_str(const char *s)
{
	struct proxy_header h;
	enum proxy_error err;

	return parse(s, strlen(s), &h, &err);
}

/* Every proper prefix of a valid header, the empty one included, is INCOMPLETE. */
static void assert_prefixes_incomplete(const uint8_t *buf, size_t len)
{
	struct proxy_header h;
	enum proxy_error err;

	for (size_t n = 0; n < len; n++) {
		enum proxy_parse_status st = parse(buf, n, &h, &err);

		if (st != PROXY_PARSE_INCOMPLETE)
			fail_msg("prefix of %zu/%zu bytes: status %d (err %s), want INCOMPLETE",
				 n, len, st, proxy_error_str(err));
	}
}

/*
 * @buf[0..len) is one valid header: it parses to exactly @len bytes on its own
 * and with a payload after it (which is not counted), and every truncation of
 * it is INCOMPLETE.  @h is the result with the payload.
 */
static void assert_valid(const void *buf, size_t len, struct proxy_header *h)
{
	uint8_t joined[PROXY_PARSE_MAX + sizeof(PAYLOAD)];
	struct proxy_header alone;
	enum proxy_error err;

	assert_true(len <= PROXY_PARSE_MAX);
	assert_int_equal(parse(buf, len, &alone, &err), PROXY_PARSE_OK);
	assert_int_equal(alone.len, len);

	memcpy(joined, buf, len);
	memcpy(joined + len, PAYLOAD, sizeof(PAYLOAD) - 1);
	assert_int_equal(parse(joined, len + sizeof(PAYLOAD) - 1, h, &err), PROXY_PARSE_OK);
	assert_int_equal(h->len, len);
	assert_int_equal(h->version, alone.version);
	assert_int_equal(h->family, alone.family);
	assert_int_equal(h->local, alone.local);

	assert_prefixes_incomplete(buf, len);
}

static void assert_valid_str(const char *s, struct proxy_header *h)
{
	assert_valid(s, strlen(s), h);
}

static void assert_invalid(const void *buf, size_t len, enum proxy_error want)
{
	struct proxy_header h;
	enum proxy_error err;
	enum proxy_parse_status st = parse(buf, len, &h, &err);

	if (st != PROXY_PARSE_INVALID || err != want)
		fail_msg("status %d err %s, want INVALID %s", st, proxy_error_str(err),
			 proxy_error_str(want));
}

static void assert_invalid_str(const char *s, enum proxy_error want)
{
	assert_invalid(s, strlen(s), want);
}

static void assert_sin(const struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	struct in_addr want;

	assert_int_equal(inet_pton(AF_INET, addr, &want), 1);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_memory_equal(&sin->sin_addr, &want, sizeof(want));
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void assert_sin6(const struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	struct in6_addr want;

	assert_int_equal(inet_pton(AF_INET6, addr, &want), 1);
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_memory_equal(&sin6->sin6_addr, &want, sizeof(want));
	assert_int_equal(ntohs(sin6->sin6_port), port);
}

/* Build a v2 header with a declared length that may differ from @body_len; return its size. */
static size_t v2_lying(uint8_t *out, uint8_t ver_cmd, uint8_t fam, size_t declared,
		       const uint8_t *body, size_t body_len)
{
	memcpy(out, proxy_v2_signature, PROXY_V2_SIG_LEN);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (uint8_t)(declared >> 8);
	out[15] = (uint8_t)declared;
	if (body_len)
		memcpy(out + V2_HDR, body, body_len);
	return V2_HDR + body_len;
}

static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body,
		 size_t body_len)
{
	return v2_lying(out, ver_cmd, fam, body_len, body, body_len);
}

/* Append a TLV at @out + *@off. */
static void tlv(uint8_t *out, size_t *off, uint8_t type, const void *value, size_t vlen)
{
	out[(*off)++] = type;
	out[(*off)++] = (uint8_t)(vlen >> 8);
	out[(*off)++] = (uint8_t)vlen;
	if (vlen)
		memcpy(out + *off, value, vlen);
	*off += vlen;
}

/* ---- v1 ---- */

static void test_v1_tcp4(void **state)
{
	struct proxy_header h;

	(void)state;
	assert_valid_str("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", &h);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_int_equal(h.family, AF_INET);
	assert_int_equal(h.transport, SOCK_STREAM);
	assert_sin(&h.src, "192.168.0.1", 56324);
	assert_sin(&h.dst, "192.168.0.11", 443);

	/* Longest TCP4 line (56 bytes) and the extreme values. */
	assert_valid_str("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", &h);
	assert_int_equal(h.len, 56);
	assert_sin(&h.src, "255.255.255.255", 65535);
	assert_valid_str("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", &h);
	assert_sin(&h.dst, "0.0.0.0", 0);
}

static void test_v1_tcp6(void **state)
{
	struct proxy_header h;

	(void)state;
	assert_valid_str("PROXY TCP6 ::1 2001:db8::7 0 65535\r\n", &h);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_int_equal(h.family, AF_INET6);
	assert_int_equal(h.transport, SOCK_STREAM);
	assert_sin6(&h.src, "::1", 0);
	assert_sin6(&h.dst, "2001:db8::7", 65535);

	/* Upper-case hex digits are allowed. */
	assert_valid_str("PROXY TCP6 2001:DB8::A fe80::1 1 2\r\n", &h);
	assert_sin6(&h.src, "2001:db8::a", 1);
}

/* The specification's worst cases: TCP6 at 104 bytes, UNKNOWN with addresses at 107. */
static void test_v1_longest(void **state)
{
	static const char addr[] = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
	static const char addr2[] = "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFE";
	char line[160];
	struct proxy_header h;
	int n;

	(void)state;
	n = snprintf(line, sizeof(line), "PROXY TCP6 %s %s 65535 65535\r\n", addr, addr2);
	assert_int_equal(n, 104);
	assert_true(n <= PROXY_V1_MAX);
	assert_valid_str(line, &h);
	assert_int_equal(h.len, 104);
	assert_int_equal(h.family, AF_INET6);
	assert_sin6(&h.src, addr, 65535);
	assert_sin6(&h.dst, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);

	n = snprintf(line, sizeof(line), "PROXY UNKNOWN %s %s 65535 65535\r\n", addr, addr);
	assert_int_equal(n, PROXY_V1_MAX);
	assert_valid_str(line, &h);
	assert_int_equal(h.len, PROXY_V1_MAX);
	assert_true(h.local);
	assert_int_equal(h.family, AF_UNSPEC);

	/* 106 bytes ending in CR: the LF may still come. */
	assert_int_equal(line[105], '\r');
	assert_int_equal(parse(line, 106, &h, &(enum proxy_error){ 0 }), PROXY_PARSE_INCOMPLETE);

	/* One byte more: the CRLF is no longer within the first 107 bytes. */
	n = snprintf(line, sizeof(line), "PROXY UNKNOWN %s %s 65535 655350\r\n", addr, addr);
	assert_int_equal(n, PROXY_V1_MAX + 1);
	assert_invalid_str(line, PROXY_ERR_V1_TOO_LONG);
	/* 107 bytes and no CRLF yet: it cannot end in time any more. */
	assert_invalid(line, PROXY_V1_MAX, PROXY_ERR_V1_TOO_LONG);
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	assert_int_equal(parse(line, PROXY_V1_MAX - 1, &h, &(enum proxy_error){ 0 }),
			 PROXY_PARSE_INCOMPLETE);
	assert_invalid(line, PROXY_V1_MAX, PROXY_ERR_V1_TOO_LONG);
	assert_invalid(line, sizeof(line), PROXY_ERR_V1_TOO_LONG);
}

static void test_v1_unknown(void **state)
{
	static const char *const ok[] = {
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN \r\n",
		"PROXY UNKNOWN 192.0.2.1 192.0.2.2 1 2\r\n",
		"PROXY UNKNOWN any junk at all: not an address 99999 -1\r\n",
		"PROXY UNKNOWN  double  spaces   \r\n",
	};
	struct proxy_header h;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
		assert_valid_str(ok[i], &h);
		assert_int_equal(h.len, strlen(ok[i]));
		assert_int_equal(h.version, 1);
		assert_true(h.local);
		assert_int_equal(h.family, AF_UNSPEC);
	}
	/* "UNKNOWN" must be the whole word. */
	assert_invalid_str("PROXY UNKNOWNX\r\n", PROXY_ERR_V1_SYNTAX);
	assert_invalid_str("PROXY UNKNOWN4 1.2.3.4 1.2.3.4 1 1\r\n", PROXY_ERR_V1_SYNTAX);
	assert_invalid_str("PROXY unknown\r\n", PROXY_ERR_V1_SYNTAX);
}

static void test_v1_line_ends(void **state)
{
	struct proxy_header h;
	enum proxy_error err;

	(void)state;
	/* A CR or LF alone does not end the line, and cannot be part of it. */
	assert_invalid_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rGET / HTTP/1.1\r\n",
			   PROXY_ERR_V1_SYNTAX);
	assert_invalid_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.1\r\n",
			   PROXY_ERR_V1_SYNTAX);
	assert_invalid_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PROXY_ERR_V1_SYNTAX);
	assert_invalid_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r", PROXY_ERR_V1_SYNTAX);
	assert_invalid_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", PROXY_ERR_V1_SYNTAX);
	assert_invalid_str("PROXY UNKNOWN\r\r\n", PROXY_ERR_V1_SYNTAX);
	/* ...but a final CR may be followed by the LF. */
	assert_int_equal(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), PROXY_PARSE_INCOMPLETE);
	/* Only the first CRLF counts: what follows is payload. */
	assert_int_equal(parse("PROXY UNKNOWN\r\n\r\n\x01\xff", 19, &h, &err), PROXY_PARSE_OK);
	assert_int_equal(h.len, 15);
}

static void test_v1_bad_ports(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 100000 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 4294967376 80\r\n", /* 2^32 + 80 */
		"PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 80 00\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 +80 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 http 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 8a 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 0x50 80\r\n",
		"PROXY TCP6 ::1 ::1 80 8.0\r\n",
	};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		assert_invalid_str(bad[i], PROXY_ERR_PORT);
}

static void test_v1_bad_addresses(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3 1 2\r\n",
		"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",   /* no leading zeroes */
		"PROXY TCP4 1.2.3.4/32 5.6.7.8 1 2\r\n",
		"PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",        /* family mismatch */
		"PROXY TCP4 1.2.3.4 2001:db8::1 1 2\r\n",
		"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP6 ::1 ::1::2 1 2\r\n",
		"PROXY TCP6 ::1 1:2:3:4:5:6:7:8:9 1 2\r\n",
		"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
		"PROXY TCP6 ::g ::1 1 2\r\n",
	};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		assert_invalid_str(bad[i], PROXY_ERR_ADDRESS);
}

static void test_v1_bad_syntax(void **state)
{
	static const char *const bad[] = {
		"PROXY \r\n",
		"PROXY TCP4\r\n",
		"PROXY TCP4 \r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",   /* double spaces, empty fields */
		"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",   /* trailing space */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",  /* extra fields */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3 4 5 6\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",      /* missing fields */
		"PROXY TCP4 1.2.3.4\r\n",
		"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",   /* non-printable bytes */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x7f\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xff\r\n",
	};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		assert_invalid_str(bad[i], PROXY_ERR_V1_SYNTAX);

	/* An embedded NUL is non-printable too, and must not end the string early. */
	assert_invalid("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33, PROXY_ERR_V1_SYNTAX);
	/* Non-printable bytes are refused before the CRLF arrives. */
	assert_invalid("PROXY TCP4 1.2\n", 15, PROXY_ERR_V1_SYNTAX);
	assert_invalid("PROXY \x00", 7, PROXY_ERR_V1_SYNTAX);
}

/* ---- v2 ---- */

static void test_v2_inet_stream(void **state)
{
	uint8_t buf[64];
	struct proxy_header h;
	size_t n = v2(buf, 0x21, 0x11, inet_block, sizeof(inet_block));

	(void)state;
	assert_int_equal(n, 28);
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, 28);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_int_equal(h.family, AF_INET);
	assert_int_equal(h.transport, SOCK_STREAM);
	assert_int_equal(h.tlv_len, 0);
	assert_sin(&h.src, "192.0.2.1", 40000);
	assert_sin(&h.dst, "198.51.100.7", 443);
}

static void test_v2_inet6_stream(void **state)
{
	uint8_t buf[64];
	struct proxy_header h;
	size_t n = v2(buf, 0x21, 0x21, inet6_block, sizeof(inet6_block));

	(void)state;
	assert_int_equal(n, 52);
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, 52);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_int_equal(h.family, AF_INET6);
	assert_int_equal(h.transport, SOCK_STREAM);
	assert_int_equal(h.tlv_len, 0);
	assert_sin6(&h.src, "2001:db8::1", 40000);
	assert_sin6(&h.dst, "2001:db8:ffff::ff", 443);
}

static void test_v2_dgram(void **state)
{
	uint8_t buf[64];
	struct proxy_header h;
	size_t n;

	(void)state;
	n = v2(buf, 0x21, 0x12, inet_block, sizeof(inet_block));
	assert_valid(buf, n, &h);
	assert_int_equal(h.family, AF_INET);
	assert_int_equal(h.transport, SOCK_DGRAM);
	assert_sin(&h.src, "192.0.2.1", 40000);

	n = v2(buf, 0x21, 0x22, inet6_block, sizeof(inet6_block));
	assert_valid(buf, n, &h);
	assert_int_equal(h.family, AF_INET6);
	assert_int_equal(h.transport, SOCK_DGRAM);
	assert_sin6(&h.dst, "2001:db8:ffff::ff", 443);
}

static void test_v2_local(void **state)
{
	uint8_t buf[64];
	struct proxy_header h;
	size_t n;

	(void)state;
	/* What a health check sends: LOCAL, UNSPEC, no addresses. */
	n = v2(buf, 0x20, 0x00, NULL, 0);
	assert_int_equal(n, 16);
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, 16);
	assert_int_equal(h.version, 2);
	assert_true(h.local);
	assert_int_equal(h.family, AF_UNSPEC);
	assert_int_equal(h.transport, 0);
	assert_int_equal(h.tlv_len, 0);

	/* LOCAL with a family and its addresses (to be ignored). */
	n = v2(buf, 0x20, 0x11, inet_block, sizeof(inet_block));
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, 28);
	assert_true(h.local);
	assert_int_equal(h.family, AF_INET);
	assert_int_equal(h.tlv_len, 0);

	/* LOCAL with a family but no addresses. */
	n = v2(buf, 0x20, 0x11, NULL, 0);
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, 16);
	assert_true(h.local);

	n = v2(buf, 0x20, 0x21, NULL, 0);
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, 16);
	assert_true(h.local);
}

static void test_v2_unix(void **state)
{
	uint8_t body[216], buf[V2_HDR + 216];
	struct proxy_header h;
	size_t n;

	(void)state;
	memset(body, 0, sizeof(body));
	strcpy((char *)body, "/run/client.sock");
	strcpy((char *)body + 108, "/run/server.sock");
	n = v2(buf, 0x21, 0x31, body, sizeof(body));
	assert_int_equal(n, 232);
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, 232);
	assert_false(h.local);
	assert_int_equal(h.family, AF_UNIX);
	assert_int_equal(h.transport, SOCK_STREAM);
	assert_int_equal(h.tlv_len, 0);

	n = v2(buf, 0x21, 0x32, body, sizeof(body));
	assert_valid(buf, n, &h);
	assert_int_equal(h.family, AF_UNIX);
	assert_int_equal(h.transport, SOCK_DGRAM);
}

static void test_v2_tlvs(void **state)
{
	static const uint8_t noop3[3] = { 0, 0, 0 };
	uint8_t body[128], buf[V2_HDR + 128];
	struct proxy_header h;
	size_t off = 0, n;

	(void)state;
	memcpy(body, inet_block, sizeof(inet_block));
	off = sizeof(inet_block);
	tlv(body, &off, 0x01, "h2", 2);                  /* PP2_TYPE_ALPN */
	tlv(body, &off, 0x02, "example.com", 11);        /* PP2_TYPE_AUTHORITY */
	tlv(body, &off, 0x04, NULL, 0);                  /* PP2_TYPE_NOOP, empty */
	tlv(body, &off, 0x04, noop3, sizeof(noop3));     /* PP2_TYPE_NOOP, padding */
	tlv(body, &off, 0xe0, "\x00\x01\x02\x03", 4);    /* custom type */
	n = v2(buf, 0x21, 0x11, body, off);
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, V2_HDR + off);
	assert_int_equal(h.tlv_len, off - sizeof(inet_block));
	assert_int_equal(h.family, AF_INET);
	assert_false(h.local);
	assert_sin(&h.src, "192.0.2.1", 40000);
	assert_sin(&h.dst, "198.51.100.7", 443);

	/* TLVs after INET6 addresses. */
	memcpy(body, inet6_block, sizeof(inet6_block));
	off = sizeof(inet6_block);
	tlv(body, &off, 0x02, "svc.ns.svc.cluster.local", 24);
	n = v2(buf, 0x21, 0x21, body, off);
	assert_valid(buf, n, &h);
	assert_int_equal(h.tlv_len, 27);
	assert_sin6(&h.src, "2001:db8::1", 40000);

	/* LOCAL with UNSPEC family: the whole block is TLVs. */
	off = 0;
	tlv(body, &off, 0x04, NULL, 0);
	n = v2(buf, 0x20, 0x00, body, off);
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, 19);
	assert_true(h.local);
}

/* The longest v2 header accepted is PROXY_PARSE_MAX bytes; one more is refused. */
static void test_v2_longest(void **state)
{
	uint8_t body[PROXY_PARSE_MAX], buf[PROXY_PARSE_MAX + 2], pad[PROXY_PARSE_MAX];
	struct proxy_header h;
	size_t off, n;

	(void)state;
	memset(pad, 'z', sizeof(pad));
	memcpy(body, inet_block, sizeof(inet_block));
	off = sizeof(inet_block);
	tlv(body, &off, 0x04, pad, PROXY_PARSE_MAX - V2_HDR - 12 - 3);
	assert_int_equal(off, PROXY_PARSE_MAX - V2_HDR);
	n = v2(buf, 0x21, 0x11, body, off);
	assert_int_equal(n, PROXY_PARSE_MAX);
	assert_valid(buf, n, &h);
	assert_int_equal(h.len, PROXY_PARSE_MAX);
	assert_int_equal(h.tlv_len, PROXY_PARSE_MAX - V2_HDR - 12);

	off = sizeof(inet_block);
	tlv(body, &off, 0x04, pad, PROXY_PARSE_MAX - V2_HDR - 12 - 3 + 1);
	n = v2(buf, 0x21, 0x11, body, off);
	assert_int_equal(n, PROXY_PARSE_MAX + 1);
	assert_invalid(buf, n, PROXY_ERR_TOO_LONG);
	/* Known from the fixed header alone, without waiting for the body. */
	assert_invalid(buf, V2_HDR, PROXY_ERR_TOO_LONG);
	v2_lying(buf, 0x21, 0x11, 0xffff, NULL, 0);
	assert_invalid(buf, V2_HDR, PROXY_ERR_TOO_LONG);
	v2_lying(buf, 0x20, 0x00, PROXY_PARSE_MAX - V2_HDR + 1, NULL, 0);
	assert_invalid(buf, V2_HDR, PROXY_ERR_TOO_LONG);
}

static void test_v2_bad_signature(void **state)
{
	uint8_t buf[64];
	struct proxy_header h;
	enum proxy_error err;
	size_t n = v2(buf, 0x21, 0x11, inet_block, sizeof(inet_block));

	(void)state;
	for (size_t i = 0; i < PROXY_V2_SIG_LEN; i++) {
		for (unsigned int bit = 0; bit < 8; bit++) {
			enum proxy_parse_status st;

			buf[i] ^= (uint8_t)(1u << bit);
			st = parse(buf, n, &h, &err);
			if (st != PROXY_PARSE_NOT_PROXY)
				fail_msg("bit %u of byte %zu flipped: status %d", bit, i, st);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	assert_int_equal(parse(buf, n, &h, &err), PROXY_PARSE_OK);
}

static void test_v2_bad_version_command_family(void **state)
{
	static const uint8_t versions[] = { 0x01, 0x11, 0x31, 0xf1, 0x10, 0x30 };
	static const uint8_t families[] = { 0x41, 0x13, 0x51, 0xf1, 0x1f, 0x03, 0x33, 0xff };
	uint8_t buf[64];
	size_t n;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(versions); i++) {
		n = v2(buf, versions[i], 0x11, inet_block, sizeof(inet_block));
		assert_invalid(buf, n, PROXY_ERR_VERSION);
		assert_invalid(buf, V2_HDR, PROXY_ERR_VERSION);
	}
	for (unsigned int c = 0x22; c <= 0x2f; c++) {
		n = v2(buf, (uint8_t)c, 0x11, inet_block, sizeof(inet_block));
		assert_invalid(buf, n, PROXY_ERR_COMMAND);
		assert_invalid(buf, V2_HDR, PROXY_ERR_COMMAND);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(families); i++) {
		n = v2(buf, 0x21, families[i], inet_block, sizeof(inet_block));
		assert_invalid(buf, n, PROXY_ERR_FAMILY);
		n = v2(buf, 0x20, families[i], NULL, 0);
		assert_invalid(buf, n, PROXY_ERR_FAMILY);
	}
}

static void test_v2_lying_lengths(void **state)
{
	uint8_t body[300], buf[V2_HDR + 300];
	size_t off, n;

	(void)state;
	/* PROXY with a block too short for its family: known from the fixed header. */
	n = v2(buf, 0x21, 0x11, inet_block, 11);
	assert_invalid(buf, n, PROXY_ERR_LENGTH);
	assert_invalid(buf, V2_HDR, PROXY_ERR_LENGTH);
	n = v2(buf, 0x21, 0x21, inet6_block, 35);
	assert_invalid(buf, n, PROXY_ERR_LENGTH);
	n = v2(buf, 0x21, 0x12, NULL, 0);
	assert_invalid(buf, n, PROXY_ERR_LENGTH);
	memset(body, 0, sizeof(body));
	n = v2(buf, 0x21, 0x31, body, 215);
	assert_invalid(buf, n, PROXY_ERR_LENGTH);
	/* INET6 addresses declared as INET: 24 bytes left that are no TLVs. */
	n = v2(buf, 0x21, 0x11, inet6_block, sizeof(inet6_block));
	assert_invalid(buf, n, PROXY_ERR_LENGTH);

	/* A TLV whose length overruns the block, by a lot and by one. */
	memcpy(body, inet_block, sizeof(inet_block));
	off = sizeof(inet_block);
	tlv(body, &off, 0x02, "abc", 3);
	body[off - 4] = 16;
	n = v2(buf, 0x21, 0x11, body, off);
	assert_invalid(buf, n, PROXY_ERR_LENGTH);
	body[off - 4] = 4;
	assert_invalid(buf, n, PROXY_ERR_LENGTH);
	body[off - 5] = 0xff;
	assert_invalid(buf, n, PROXY_ERR_LENGTH);

	/* 1 or 2 bytes after the last whole TLV: too short for another one. */
	for (size_t extra = 1; extra <= 2; extra++) {
		off = sizeof(inet_block);
		tlv(body, &off, 0x04, NULL, 0);
		memset(body + off, 0x04, extra);
		n = v2(buf, 0x21, 0x11, body, off + extra);
		assert_invalid(buf, n, PROXY_ERR_LENGTH);
	}
	/* ... likewise right after the addresses. */
	n = v2(buf, 0x21, 0x11, body, sizeof(inet_block) + 1);
	assert_invalid(buf, n, PROXY_ERR_LENGTH);
	/*
	 * LOCAL: "discard the protocol block including the family", so its
	 * content is never interpreted, however short or TLV-like it is.
	 */
	{
		struct proxy_header h;
		enum proxy_error err;

		n = v2(buf, 0x20, 0x00, (const uint8_t *)"\x04\x00", 2);
		assert_int_equal(proxy_parse(buf, n, &h, &err), PROXY_PARSE_OK);
		assert_true(h.local);
		assert_int_equal(h.len, n);
		assert_int_equal(h.tlv_len, 0);
		/* A short INET block whose bytes look like a TLV claiming 0xffff bytes. */
		n = v2(buf, 0x20, 0x11, (const uint8_t *)"\x02\xff\xff\x00\x00", 5);
		assert_int_equal(proxy_parse(buf, n, &h, &err), PROXY_PARSE_OK);
		assert_int_equal(h.len, 21);
		assert_int_equal(h.tlv_len, 0);
	}
}

/* ---- neither, or not yet ---- */

static void test_not_proxy(void **state)
{
	static const char *const other[] = {
		"GET / HTTP/1.1\r\n", "PROPFIND / HTTP/1.1\r\n", "G", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"Proxy", "SSH-2.0-OpenSSH_9.2\r\n", "\n", " PROXY TCP4", "PROXYTCP4",
	};
	struct proxy_header h;
	enum proxy_error err;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(other); i++) {
		if (parse_str(other[i]) != PROXY_PARSE_NOT_PROXY)
			fail_msg("\"%s\" is not NOT_PROXY", other[i]);
	}
	/* TLS ClientHello, an HTTP/2 preface, a NUL. */
	assert_int_equal(parse("\x16\x03\x01\x02\x00\x01", 6, &h, &err), PROXY_PARSE_NOT_PROXY);
	assert_int_equal(parse("\x16", 1, &h, &err), PROXY_PARSE_NOT_PROXY);
	assert_int_equal(parse_str("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), PROXY_PARSE_NOT_PROXY);
	assert_int_equal(parse("\0", 1, &h, &err), PROXY_PARSE_NOT_PROXY);
	/* Diverging from the v2 signature before it is complete. */
	assert_int_equal(parse("\r\n\r\nX", 5, &h, &err), PROXY_PARSE_NOT_PROXY);
	assert_int_equal(parse("\r\n\r\n\0\r\nQUIX", 11, &h, &err), PROXY_PARSE_NOT_PROXY);
}

static void test_incomplete(void **state)
{
	static const char *const partial[] = { "P", "PRO", "PROXY", "PROXY ", "PROXY T", "PROXY TCP4 1" };
	struct proxy_header h;
	enum proxy_error err;

	(void)state;
	assert_int_equal(parse("", 0, &h, &err), PROXY_PARSE_INCOMPLETE);
	for (size_t i = 0; i < G_N_ELEMENTS(partial); i++)
		assert_int_equal(parse_str(partial[i]), PROXY_PARSE_INCOMPLETE);
	assert_int_equal(parse("\r", 1, &h, &err), PROXY_PARSE_INCOMPLETE);
	assert_int_equal(parse("\r\n\r\n\0", 5, &h, &err), PROXY_PARSE_INCOMPLETE);
	assert_int_equal(parse(proxy_v2_signature, PROXY_V2_SIG_LEN, &h, &err),
			 PROXY_PARSE_INCOMPLETE);
}

/*
 * proxy_signature_seen(): true from the whole signature on, never for a
 * shorter prefix or a near miss; read from exact-size copies, as parse().
 */
static bool seen(const void *buf, size_t len)
{
	g_autofree uint8_t *copy = g_memdup2(buf, len);

	return proxy_signature_seen(copy, len);
}

static void test_signature_seen(void **state)
{
	uint8_t v2[PROXY_V2_SIG_LEN + 4];

	(void)state;
	memcpy(v2, proxy_v2_signature, PROXY_V2_SIG_LEN);
	memcpy(v2 + PROXY_V2_SIG_LEN, "\x21\x11\x1f\xf0", 4);
	for (size_t len = 0; len < PROXY_V2_SIG_LEN; len++)
		if (seen(v2, len))
			fail_msg("a v2 prefix of %zu bytes is taken for the signature", len);
	assert_true(seen(v2, PROXY_V2_SIG_LEN));
	assert_true(seen(v2, sizeof(v2)));
	assert_false(seen("\r\n\r\n\0\r\nQUIX", PROXY_V2_SIG_LEN));
	assert_false(seen("PROXY", 5));
	assert_true(seen("PROXY ", 6));
	assert_true(seen("PROXY TCP4 1", 12));
	assert_false(seen("PROXYTCP4 1.2", 13));
	assert_false(seen("proxy TCP4 1", 12));
	assert_false(seen(PAYLOAD, strlen(PAYLOAD)));
}

static void test_error_str(void **state)
{
	(void)state;
	for (int i = 0; i < PROXY_ERR_COUNT; i++) {
		const char *s = proxy_error_str((enum proxy_error)i);

		assert_non_null(s);
		assert_true(s[0] != '\0');
		for (int j = 0; j < i; j++)
			assert_string_not_equal(s, proxy_error_str((enum proxy_error)j));
	}
	/* Out of range: still a usable string. */
	assert_non_null(proxy_error_str(PROXY_ERR_COUNT));
	assert_non_null(proxy_error_str((enum proxy_error)-1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_longest),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_line_ends),
		cmocka_unit_test(test_v1_bad_ports),
		cmocka_unit_test(test_v1_bad_addresses),
		cmocka_unit_test(test_v1_bad_syntax),
		cmocka_unit_test(test_v2_inet_stream),
		cmocka_unit_test(test_v2_inet6_stream),
		cmocka_unit_test(test_v2_dgram),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v2_unix),
		cmocka_unit_test(test_v2_tlvs),
		cmocka_unit_test(test_v2_longest),
		cmocka_unit_test(test_v2_bad_signature),
		cmocka_unit_test(test_v2_bad_version_command_family),
		cmocka_unit_test(test_v2_lying_lengths),
		cmocka_unit_test(test_not_proxy),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_signature_seen),
		cmocka_unit_test(test_error_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
