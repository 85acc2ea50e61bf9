/* proxy_proto.c - PROXY protocol v1/v2 header encoding (pure codec, no I/O). */

#include "proxy_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include <glib.h>

#include "common/util.h"

const uint8_t proxy_v2_signature[PROXY_V2_SIG_LEN] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

#define PROXY_V2_VER_CMD_PROXY 0x21   /* version 2 in the high nibble, PROXY */
#define PROXY_V2_FAM_TCP4 0x11        /* AF_INET, SOCK_STREAM */
#define PROXY_V2_ADDR_LEN_INET 12

static int proxy_encode_v2(const struct proxy_addrs *a, uint8_t *buf)
{
	uint8_t *p = buf;

	memcpy(p, proxy_v2_signature, PROXY_V2_SIG_LEN);
	p += PROXY_V2_SIG_LEN;
	*p++ = PROXY_V2_VER_CMD_PROXY;
	*p++ = PROXY_V2_FAM_TCP4;
	*p++ = 0;
	*p++ = PROXY_V2_ADDR_LEN_INET;
	memcpy(p, &a->src, 4);
	memcpy(p + 4, &a->dst, 4);
	memcpy(p + 8, &a->sport, 2);
	memcpy(p + 10, &a->dport, 2);
	p += PROXY_V2_ADDR_LEN_INET;
	return (int)(p - buf);
}

static int proxy_encode_v1(const struct proxy_addrs *a, uint8_t *buf)
{
	char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &a->src, src, sizeof(src));
	inet_ntop(AF_INET, &a->dst, dst, sizeof(dst));
	/* Longest: "PROXY TCP4 " + 2*15 + 2*5 + 3 spaces + CRLF = 56 < 108. */
	return snprintf((char *)buf, PROXY_HDR_MAX, "PROXY TCP4 %s %s %u %u\r\n",
			src, dst, ntohs(a->sport), ntohs(a->dport));
}

int proxy_encode(enum proxy_version ver, const struct proxy_addrs *a, uint8_t *buf)
{
	switch (ver) {
	case PROXY_V2:
		return proxy_encode_v2(a, buf);
	case PROXY_V1:
		return proxy_encode_v1(a, buf);
	}
	return -EINVAL;
}

static const char *const proxy_error_names[PROXY_ERR_COUNT] = {
	[PROXY_ERR_NONE] = "none",
	[PROXY_ERR_V1_SYNTAX] = "v1_syntax",
	[PROXY_ERR_V1_TOO_LONG] = "v1_too_long",
	[PROXY_ERR_VERSION] = "version",
	[PROXY_ERR_COMMAND] = "command",
	[PROXY_ERR_FAMILY] = "family",
	[PROXY_ERR_LENGTH] = "length",
	[PROXY_ERR_TOO_LONG] = "too_long",
	[PROXY_ERR_ADDRESS] = "address",
	[PROXY_ERR_PORT] = "port",
};

const char *proxy_error_str(enum proxy_error err)
{
	return (unsigned int)err < PROXY_ERR_COUNT ? proxy_error_names[err] : "unknown";
}

static const char proxy_v1_sig[] = "PROXY ";

/* Is @buf[0..len) a prefix of @sig[0..siglen)? */
static bool proxy_is_prefix(const uint8_t *buf, size_t len, const void *sig, size_t siglen)
{
	return !memcmp(buf, sig, MIN(len, siglen));
}

static enum proxy_parse_status proxy_invalid(enum proxy_error *err, enum proxy_error why)
{
	*err = why;
	return PROXY_PARSE_INVALID;
}

/* A v1 port: decimal digits, no sign, no leading zero, 0..65535. */
static int proxy_v1_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (!n || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int proxy_v1_addr(int family, const char *s, struct sockaddr_storage *ss, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return inet_pton(AF_INET, s, &sin->sin_addr) == 1 ? 0 : -1;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		return inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1 ? 0 : -1;
	}
}

static enum proxy_parse_status proxy_parse_v1(const uint8_t *buf, size_t len,
					      struct proxy_header *h, enum proxy_error *err)
{
	char line[PROXY_V1_MAX + 1], *fields[7], *save = NULL, *tok;
	const uint8_t *crlf = NULL;
	size_t line_len, nf = 0;
	uint16_t sport, dport;
	int family;

	for (size_t i = 0; i + 1 < len && i + 1 < PROXY_V1_MAX; i++) {
		if (buf[i] == '\r' && buf[i + 1] == '\n') {
			crlf = buf + i;
			break;
		}
	}
	if (!crlf) {
		/* The whole line, CRLF included, must fit in 107 bytes. */
		if (len >= PROXY_V1_MAX)
			return proxy_invalid(err, PROXY_ERR_V1_TOO_LONG);
		/*
		 * Fail early on bytes that can never form a TCP4/TCP6 line (a
		 * lone CR or LF, control characters); after UNKNOWN anything goes.
		 */
		if (len < 14 || memcmp(buf, "PROXY UNKNOWN ", 14)) {
			for (size_t i = 0; i < len; i++) {
				if ((buf[i] < 0x20 || buf[i] > 0x7e) && !(buf[i] == '\r' && i == len - 1))
					return proxy_invalid(err, PROXY_ERR_V1_SYNTAX);
			}
		}
		return PROXY_PARSE_INCOMPLETE;
	}

	line_len = (size_t)(crlf - buf);
	memset(h, 0, sizeof(*h));
	h->version = 1;
	h->len = line_len + 2;

	/* "the receiver must ignore anything presented before the CRLF" after UNKNOWN */
	if (line_len >= 13 && !memcmp(buf, "PROXY UNKNOWN", 13) &&
	    (line_len == 13 || buf[13] == ' ')) {
		h->local = true;
		h->family = AF_UNSPEC;
		return PROXY_PARSE_OK;
	}

	memcpy(line, buf, line_len);
	line[line_len] = 0;
	for (size_t i = 0; i < line_len; i++) {
		if (line[i] < 0x20 || line[i] > 0x7e)
			return proxy_invalid(err, PROXY_ERR_V1_SYNTAX);
	}
	/* Exactly single spaces between fields, none at the end. */
	if (strstr(line, "  ") || line[line_len - 1] == ' ')
		return proxy_invalid(err, PROXY_ERR_V1_SYNTAX);
	for (tok = strtok_r(line, " ", &save); tok && nf < G_N_ELEMENTS(fields);
	     tok = strtok_r(NULL, " ", &save))
		fields[nf++] = tok;
	if (nf < 2 || strcmp(fields[0], "PROXY"))
		return proxy_invalid(err, PROXY_ERR_V1_SYNTAX);

	if (!strcmp(fields[1], "TCP4"))
		family = AF_INET;
	else if (!strcmp(fields[1], "TCP6"))
		family = AF_INET6;
	else
		return proxy_invalid(err, PROXY_ERR_V1_SYNTAX);
	if (nf != 6)
		return proxy_invalid(err, PROXY_ERR_V1_SYNTAX);
	if (proxy_v1_port(fields[4], &sport) || proxy_v1_port(fields[5], &dport))
		return proxy_invalid(err, PROXY_ERR_PORT);
	if (proxy_v1_addr(family, fields[2], &h->src, sport) ||
	    proxy_v1_addr(family, fields[3], &h->dst, dport))
		return proxy_invalid(err, PROXY_ERR_ADDRESS);
	h->family = family;
	h->transport = SOCK_STREAM;
	return PROXY_PARSE_OK;
}

#define PROXY_V2_HDR_LEN 16
#define PROXY_V2_LEN_INET 12
#define PROXY_V2_LEN_INET6 36
#define PROXY_V2_LEN_UNIX 216

/* TLVs must tile the remaining bytes exactly: type(1) length(2) value. */
static bool proxy_v2_tlvs_ok(const uint8_t *p, size_t len)
{
	while (len) {
		size_t vlen;

		if (len < 3)
			return false;
		vlen = be16_read(p + 1);
		if (vlen > len - 3)
			return false;
		p += 3 + vlen;
		len -= 3 + vlen;
	}
	return true;
}

static enum proxy_parse_status proxy_parse_v2(const uint8_t *buf, size_t len,
					      struct proxy_header *h, enum proxy_error *err)
{
	uint8_t ver_cmd, fam;
	size_t body, addr_len = 0;
	const uint8_t *a;

	if (len < PROXY_V2_HDR_LEN)
		return PROXY_PARSE_INCOMPLETE;
	ver_cmd = buf[12];
	fam = buf[13];
	body = be16_read(buf + 14);
	if ((ver_cmd >> 4) != 2)
		return proxy_invalid(err, PROXY_ERR_VERSION);
	if ((ver_cmd & 0x0f) > 1)
		return proxy_invalid(err, PROXY_ERR_COMMAND);
	if ((fam >> 4) > 3 || (fam & 0x0f) > 2)
		return proxy_invalid(err, PROXY_ERR_FAMILY);
	if (PROXY_V2_HDR_LEN + body > PROXY_PARSE_MAX)
		return proxy_invalid(err, PROXY_ERR_TOO_LONG);

	switch (fam >> 4) {
	case 1:
		addr_len = PROXY_V2_LEN_INET;
		break;
	case 2:
		addr_len = PROXY_V2_LEN_INET6;
		break;
	case 3:
		addr_len = PROXY_V2_LEN_UNIX;
		break;
	}
	/* LOCAL may carry no addresses; PROXY must carry its family's. */
	if ((ver_cmd & 0x0f) == 1 && body < addr_len)
		return proxy_invalid(err, PROXY_ERR_LENGTH);
	if (len < PROXY_V2_HDR_LEN + body)
		return PROXY_PARSE_INCOMPLETE;

	memset(h, 0, sizeof(*h));
	h->version = 2;
	h->len = PROXY_V2_HDR_LEN + body;
	h->local = (ver_cmd & 0x0f) == 0;
	h->transport = (fam & 0x0f) == 1 ? SOCK_STREAM : (fam & 0x0f) == 2 ? SOCK_DGRAM : 0;
	/*
	 * LOCAL and UNSPEC blocks carry nothing we use; the specification says
	 * to discard them, so they are skipped, not interpreted as TLVs.
	 */
	if (!h->local && (fam >> 4)) {
		if (!proxy_v2_tlvs_ok(buf + PROXY_V2_HDR_LEN + addr_len, body - addr_len))
			return proxy_invalid(err, PROXY_ERR_LENGTH);
		h->tlv_len = body - addr_len;
	}
	a = buf + PROXY_V2_HDR_LEN;
	switch (fam >> 4) {
	case 1: {
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;

		h->family = AF_INET;
		if (h->local)
			break;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		break;
	}
	case 2: {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;

		h->family = AF_INET6;
		if (h->local)
			break;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		break;
	}
	case 3:
		h->family = AF_UNIX;
		break;
	default:
		h->family = AF_UNSPEC;
		break;
	}
	return PROXY_PARSE_OK;
}

bool proxy_signature_seen(const uint8_t *buf, size_t len)
{
	return (len >= PROXY_V2_SIG_LEN && !memcmp(buf, proxy_v2_signature, PROXY_V2_SIG_LEN)) ||
	       (len >= sizeof(proxy_v1_sig) - 1 &&
		!memcmp(buf, proxy_v1_sig, sizeof(proxy_v1_sig) - 1));
}

enum proxy_parse_status proxy_parse(const uint8_t *buf, size_t len, struct proxy_header *h,
				    enum proxy_error *err)
{
	*err = PROXY_ERR_NONE;
	if (!len)
		return PROXY_PARSE_INCOMPLETE;
	if (proxy_is_prefix(buf, len, proxy_v2_signature, PROXY_V2_SIG_LEN))
		return len < PROXY_V2_SIG_LEN ? PROXY_PARSE_INCOMPLETE
					      : proxy_parse_v2(buf, len, h, err);
	if (proxy_is_prefix(buf, len, proxy_v1_sig, sizeof(proxy_v1_sig) - 1))
		return len < sizeof(proxy_v1_sig) - 1 ? PROXY_PARSE_INCOMPLETE
						      : proxy_parse_v1(buf, len, h, err);
	return PROXY_PARSE_NOT_PROXY;
}
