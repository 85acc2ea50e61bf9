/* proxy_proto.h - PROXY protocol v1/v2 header encoding (pure codec, no I/O). */
#ifndef MESHSLIRP_PB_PROXY_PROTO_H
#define MESHSLIRP_PB_PROXY_PROTO_H

/*
 * The outbound path writes one header at the start of each steered
 * connection so the sidecar learns the original destination, as specified
 * in HAProxy's doc/proxy-protocol.txt:
 *
 *   v2: 12-byte signature, 0x21 (version 2, PROXY), 0x11 (TCP over IPv4),
 *       16-bit length 12, then source address, destination address, source
 *       port, destination port, all in network order: 28 bytes in total.
 *   v1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", at most 107 bytes.
 *
 * Headers are built into a caller-provided buffer of PROXY_HDR_MAX bytes.
 */

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define PROXY_HDR_MAX 108          /* v1's maximum (107) rounded up; v2 IPv4 is 28 */
#define PROXY_V2_SIG_LEN 12

extern const uint8_t proxy_v2_signature[PROXY_V2_SIG_LEN];

enum proxy_version {
	PROXY_V1 = 1,
	PROXY_V2 = 2,
};

/* An IPv4 TCP connection as the header describes it (network order). */
struct proxy_addrs {
	struct in_addr src, dst;
	uint16_t sport, dport;     /* network order */
};

/**
 * proxy_encode() - build a PROXY header for a TCP/IPv4 connection
 * @ver:	PROXY_V1 or PROXY_V2
 * @a:		addresses and ports
 * @buf:	output, at least PROXY_HDR_MAX bytes
 *
 * Return: header length in bytes, or -EINVAL for an unknown version.
 */
int proxy_encode(enum proxy_version ver, const struct proxy_addrs *a, uint8_t *buf);

#endif /* MESHSLIRP_PB_PROXY_PROTO_H */
