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
 *
 * The inbound path parses the header a sidecar sends in front of a
 * connection to an exposed port (Envoy's upstream proxy_protocol transport
 * socket, HAProxy's send-proxy[-v2]).  proxy_parse() takes whatever bytes
 * have arrived so far and says whether they are a complete header (and how
 * long it is, so exactly that much is consumed and the payload is left for
 * the guest), a consistent prefix of one (wait for more), certainly not a
 * header (no signature: "optional" mode passes the connection as is), or an
 * invalid one (close it).  It validates everything the specification
 * constrains: signature, version, command, family and the lengths each
 * family implies, TLV framing, v1's 107-byte limit, address syntax and port
 * range.  Nothing is allocated and no byte beyond @len is read.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

/*
 * Longest header proxy_parse() accepts: v2's 16 bytes plus 8,176 of addresses
 * and TLVs.  Envoy and HAProxy add TLVs (authority, unique id, SSL details
 * with the client certificate's subject): this leaves at least 7.9 KiB of
 * them with any address family, where the issue asked for 4 KiB.  Longer
 * headers are refused (PROXY_ERR_TOO_LONG); the inbound path peeks at most
 * this much, once per read, on the stack.
 */
#define PROXY_PARSE_MAX 8192
#define PROXY_V1_MAX 107

enum proxy_parse_status {
	PROXY_PARSE_OK,            /* a complete, valid header */
	PROXY_PARSE_INCOMPLETE,    /* a valid prefix; more bytes needed */
	PROXY_PARSE_NOT_PROXY,     /* no PROXY signature: not a header at all */
	PROXY_PARSE_INVALID,       /* a header, but a broken one (see proxy_error) */
};

enum proxy_error {
	PROXY_ERR_NONE,
	PROXY_ERR_V1_SYNTAX,       /* v1 line not of the specified form */
	PROXY_ERR_V1_TOO_LONG,     /* no CRLF within 107 bytes */
	PROXY_ERR_VERSION,         /* v2 version nibble not 2 */
	PROXY_ERR_COMMAND,         /* v2 command neither LOCAL nor PROXY */
	PROXY_ERR_FAMILY,          /* v2 family or transport byte not defined */
	PROXY_ERR_LENGTH,          /* v2 length too short for its family, or TLVs that lie */
	PROXY_ERR_TOO_LONG,        /* longer than PROXY_PARSE_MAX */
	PROXY_ERR_ADDRESS,         /* v1 address that does not parse for its family */
	PROXY_ERR_PORT,            /* v1 port not a decimal 0..65535 */
	PROXY_ERR_COUNT,
};

struct proxy_header {
	size_t len;                /* bytes the header occupies */
	int version;               /* 1 or 2 */
	bool local;                /* v2 LOCAL or v1 UNKNOWN: addresses carry nothing */
	int family;                /* AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC */
	int transport;             /* SOCK_STREAM, SOCK_DGRAM or 0 (unspecified) */
	struct sockaddr_storage src, dst; /* AF_INET / AF_INET6 only */
	size_t tlv_len;            /* v2 TLV bytes after the addresses */
};

/**
 * proxy_parse() - recognise a PROXY header at the start of @buf
 * @buf, @len:	bytes received so far
 * @h:		filled in for PROXY_PARSE_OK
 * @err:	set for PROXY_PARSE_INVALID
 *
 * Return: see enum proxy_parse_status.
 */
enum proxy_parse_status proxy_parse(const uint8_t *buf, size_t len, struct proxy_header *h,
				    enum proxy_error *err);

/**
 * proxy_signature_seen() - do @buf's first bytes commit it to being a header?
 * @buf, @len:	bytes received so far
 *
 * A peer whose header would be refused whatever follows (one outside the
 * trusted sources) can be refused here, before it trickles in up to
 * PROXY_PARSE_MAX bytes of a header that is thrown away.
 *
 * Return: true once @buf holds v2's whole 12-byte signature or v1's "PROXY ".
 */
bool proxy_signature_seen(const uint8_t *buf, size_t len);

/* proxy_error_str() - a short, static description of @err for logs and metrics. */
const char *proxy_error_str(enum proxy_error err);

#endif /* MESHSLIRP_PB_PROXY_PROTO_H */
