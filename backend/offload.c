/* offload.c - virtio-net offloads on plain frames: checksums the guest left us, segments it takes whole. */

#include "offload.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <byteswap.h>
#include <arpa/inet.h>

#include "common/csum.h"
#include "common/util.h"

#define ETHERTYPE_IPV4 0x0800
#define IP_OFF_TOTLEN 2
#define IP_OFF_FRAG 6
#define IP_OFF_PROTO 9
#define IP_OFF_ADDRS 12
#define IP_FRAG_MF 0x2000
#define IP_FRAG_OFFSET_MASK 0x1fff
#define IP_PROTO_ICMP 1
#define IP_PROTO_TCP 6
#define IP_PROTO_UDP 17
#define TCP_HLEN 20
#define TCP_OFF_FLAGS 13
#define TCP_OFF_CSUM 16
#define TCP_FLAG_SYN 0x02
#define TCP_OPT_EOL 0
#define TCP_OPT_NOP 1
#define TCP_OPT_MSS 2
#define TCP_OPT_MSS_LEN 4

/* The IPv4 packet in a frame, as far as its header vouches for it. */
struct offload_ip {
	uint8_t *ip;
	size_t ihl;                 /* header length */
	size_t tot;                 /* total length, within the frame */
	uint8_t proto;
	bool fragment;              /* a fragment (More Fragments or an offset) */
};

/* Parse the frame's IPv4 header: 0, or -EINVAL if it is no sound IPv4 packet. */
static int offload_parse_ip(uint8_t *frame, size_t len, struct offload_ip *v)
{
	uint8_t *ip = frame + OFFLOAD_ETH_HLEN;

	if (len < OFFLOAD_ETH_HLEN + 20 || be16_read(frame + 12) != ETHERTYPE_IPV4 ||
	    ip[0] >> 4 != 4)
		return -EINVAL;
	v->ip = ip;
	v->ihl = (size_t)(ip[0] & 0x0f) * 4;
	v->tot = be16_read(ip + IP_OFF_TOTLEN);
	if (v->ihl < 20 || v->tot < v->ihl || v->tot > len - OFFLOAD_ETH_HLEN)
		return -EINVAL;
	v->proto = ip[IP_OFF_PROTO];
	v->fragment = be16_read(ip + IP_OFF_FRAG) & (IP_FRAG_MF | IP_FRAG_OFFSET_MASK);
	return 0;
}

/* The TCP header length of an unfragmented TCP packet, 0 if it has no sound one. */
static size_t offload_tcp_hlen(const struct offload_ip *v)
{
	size_t thl;

	if (v->proto != IP_PROTO_TCP || v->fragment || v->tot - v->ihl < TCP_HLEN)
		return 0;
	thl = (size_t)(v->ip[v->ihl + 12] >> 4) * 4;
	if (thl < TCP_HLEN || thl > v->tot - v->ihl)
		return 0;
	return thl;
}

/* The header's fields, little-endian (virtio 1.x; a tap told TUNSETVNETLE, or on LE hosts). */
static uint16_t le16_get(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void le16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

int offload_hdr_parse(const uint8_t *h, size_t frame_len, uint32_t offloads,
		      struct frame_meta *out, const struct frame_meta **meta, bool *ignored)
{
	uint8_t flags = h[0] & FRAME_META_NEEDS_CSUM, gso = h[1];

	*meta = NULL;
	*ignored = flags != h[0];
	if (!flags && gso == FRAME_GSO_NONE)
		return 0;
	*out = (struct frame_meta){ .flags = flags, .gso_type = gso,
				    .hdr_len = le16_get(h + 2), .gso_size = le16_get(h + 4),
				    .csum_start = le16_get(h + 6), .csum_offset = le16_get(h + 8) };
	if (flags & FRAME_META_NEEDS_CSUM) {
		if (!(offloads & BACKEND_OFFLOAD_CSUM) ||
		    (size_t)out->csum_start + out->csum_offset + sizeof(uint16_t) > frame_len)
			return -EINVAL;
	}
	if (gso != FRAME_GSO_NONE &&
	    (gso != FRAME_GSO_TCPV4 || !(offloads & BACKEND_OFFLOAD_TSO4) || !out->gso_size))
		return -EINVAL;
	*meta = out;
	return 0;
}

void offload_hdr_build(uint8_t *h, const struct frame_meta *meta)
{
	memset(h, 0, OFFLOAD_VNET_HDR_LEN);
	if (!meta)
		return;
	h[0] = meta->flags;
	h[1] = meta->gso_type;
	le16_put(h + 2, meta->hdr_len);
	le16_put(h + 4, meta->gso_size);
	le16_put(h + 6, meta->csum_start);
	le16_put(h + 8, meta->csum_offset);
}

int offload_from_guest(uint8_t *frame, size_t len, const struct frame_meta *meta)
{
	struct offload_ip v;
	bool ip_ok = !offload_parse_ip(frame, len, &v);
	size_t end = len;
	uint16_t csum;

	if (meta->gso_type != FRAME_GSO_NONE) {
		/* libslirp takes it whole: it must be one TCP segment, the frame exactly. */
		if (meta->gso_type != FRAME_GSO_TCPV4 || !ip_ok || !offload_tcp_hlen(&v) ||
		    v.tot != len - OFFLOAD_ETH_HLEN)
			return -EINVAL;
	}
	if (!(meta->flags & FRAME_META_NEEDS_CSUM))
		return 0;
	/* The sum runs to the end of the IP packet, not over padding after it. */
	if (ip_ok && meta->csum_start >= OFFLOAD_ETH_HLEN + v.ihl)
		end = OFFLOAD_ETH_HLEN + v.tot;
	if ((size_t)meta->csum_start + meta->csum_offset + sizeof(csum) > end)
		return -EINVAL;
	/* The field holds the pseudo-header's sum: it is summed with the rest. */
	csum = csum_fold(csum_add(0, frame + meta->csum_start, end - meta->csum_start));
	if (!csum)
		csum = 0xffff; /* UDP's "no checksum" is 0; the same sum either way */
	memcpy(frame + meta->csum_start + meta->csum_offset, &csum, sizeof(csum));
	return 0;
}

int offload_to_guest(uint8_t *frame, size_t len, unsigned int guest_mtu, uint32_t offloads,
		     struct frame_meta *out, const struct frame_meta **meta)
{
	bool big = len > (size_t)guest_mtu + OFFLOAD_ETH_HLEN;
	struct offload_ip v;
	size_t thl = 0;
	uint16_t partial;

	*meta = NULL;
	if (!offload_parse_ip(frame, len, &v))
		thl = offload_tcp_hlen(&v);
	else if (!big)
		return 0;
	if (big && (!thl || !(offloads & BACKEND_OFFLOAD_TSO4) ||
		    guest_mtu <= v.ihl + thl))
		return -EMSGSIZE;
	if (!(offloads & BACKEND_OFFLOAD_CSUM))
		return 0;
	*out = (struct frame_meta){ 0 };
	if (!thl) {
		if (!v.fragment && (v.proto == IP_PROTO_UDP || v.proto == IP_PROTO_ICMP)) {
			out->flags = FRAME_META_DATA_VALID;
			*meta = out;
		}
		return 0;
	}
	out->flags = FRAME_META_NEEDS_CSUM;
	out->csum_start = (uint16_t)(OFFLOAD_ETH_HLEN + v.ihl);
	out->csum_offset = TCP_OFF_CSUM;
	/* What the guest's completion adds the segment's bytes to: the pseudo-header. */
	partial = (uint16_t)~csum_fold(csum_pseudo4(v.ip + IP_OFF_ADDRS, IP_PROTO_TCP,
						    (uint16_t)(v.tot - v.ihl)));
	memcpy(v.ip + v.ihl + TCP_OFF_CSUM, &partial, sizeof(partial));
	if (big) {
		out->gso_type = FRAME_GSO_TCPV4;
		out->hdr_len = (uint16_t)(OFFLOAD_ETH_HLEN + v.ihl + thl);
		out->gso_size = (uint16_t)(guest_mtu - v.ihl - thl);
	}
	*meta = out;
	return 0;
}

/*
 * The MSS option of a SYN (or SYN-ACK): the TCP header in *@tcp and the option value's
 * offset in it, or NULL if the frame is no sound IPv4 SYN with one.
 */
static uint8_t *offload_syn_mss(uint8_t *frame, size_t len, uint8_t **tcp, size_t *at)
{
	struct offload_ip v;
	size_t thl, i = TCP_HLEN;

	if (offload_parse_ip(frame, len, &v))
		return NULL;
	thl = offload_tcp_hlen(&v);
	if (!thl)
		return NULL;
	*tcp = v.ip + v.ihl;
	if (!((*tcp)[TCP_OFF_FLAGS] & TCP_FLAG_SYN))
		return NULL;
	while (i < thl && (*tcp)[i] != TCP_OPT_EOL) {
		size_t olen;

		if ((*tcp)[i] == TCP_OPT_NOP) {
			i++;
			continue;
		}
		if (thl - i < 2)
			break;
		olen = (*tcp)[i + 1];
		if (olen < 2 || olen > thl - i)
			break;
		if ((*tcp)[i] == TCP_OPT_MSS && olen == TCP_OPT_MSS_LEN) {
			*at = i + 2;
			return *tcp + i + 2;
		}
		i += olen;
	}
	return NULL;
}

/* Set the MSS value at @tcp + @at to @mss, updating the checksum (RFC 1624). */
static void offload_set_mss(uint8_t *tcp, size_t at, uint16_t mss)
{
	uint16_t from, to = htons(mss), csum;

	memcpy(&from, tcp + at, sizeof(from));
	memcpy(tcp + at, &to, sizeof(to));
	memcpy(&csum, tcp + TCP_OFF_CSUM, sizeof(csum));
	/* After an odd number of NOPs the field straddles two checksum words. */
	if (at & 1)
		csum_update16(&csum, bswap_16(from), bswap_16(to));
	else
		csum_update16(&csum, from, to);
	memcpy(tcp + TCP_OFF_CSUM, &csum, sizeof(csum));
}

int offload_raise_mss(uint8_t *frame, size_t len, unsigned int guest_mtu)
{
	uint8_t *tcp, *mss;
	size_t at;

	/* A link that already allows the raised MSS needs nothing. */
	if (guest_mtu <= 40 || guest_mtu - 40 >= OFFLOAD_MSS_RAISED)
		return 0;
	mss = offload_syn_mss(frame, len, &tcp, &at);
	if (!mss || be16_read(mss) != guest_mtu - 40)
		return 0;
	offload_set_mss(tcp, at, OFFLOAD_MSS_RAISED);
	return 1;
}

int offload_clamp_mss(uint8_t *frame, size_t len, uint16_t max)
{
	uint8_t *tcp, *mss;
	size_t at;

	mss = offload_syn_mss(frame, len, &tcp, &at);
	if (!mss || be16_read(mss) <= max)
		return 0;
	offload_set_mss(tcp, at, max);
	return 1;
}
