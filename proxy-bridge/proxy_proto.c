/* proxy_proto.c - PROXY protocol v1/v2 header encoding (pure codec, no I/O). */

#include "proxy_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

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
