/* fuzz_offload.c - libFuzzer target: the offload codec and TCP segmentation on any frame and metadata. */

/*
 * Theory of operation
 *
 * Input: a 14-byte header, then one Ethernet frame (an exact-size heap copy,
 * so ASan sees any access past its end).
 *   [0]      what to exercise, mod 4
 *   [1..2]   the guest's MTU (clamped to 68..65520)
 *   [3]      offloads the guest takes (BACKEND_OFFLOAD_* bits)
 *   [4..13]  a virtio-net header as the backend would parse it: flags,
 *            gso_type, hdr_len, gso_size, csum_start, csum_offset
 *
 * Checked, with residuals computed from scratch here (fuzz_view.c):
 *   0 offload_from_guest(): with NEEDS_CSUM accepted at the TCP or UDP
 *     checksum field of an IPv4 packet, the field is the complement of the
 *     sum of the packet's rest (its old value included), and with the
 *     pseudo-header's sum there (what a guest leaves) the checksum is then
 *     valid; with GSO accepted, the frame is one IPv4 TCP packet exactly.
 *   1 offload_to_guest() on a frame with valid checksums: -EMSGSIZE leaves it
 *     unchanged and only happens above the MTU; NEEDS_CSUM chosen means
 *     completing it per the metadata gives a valid checksum again; GSO only
 *     above the MTU, with a gso_size that fits it.
 *   2 offload_raise_mss(): only the MSS bytes and the checksum change, and
 *     the checksum residual stays what it was.
 *   3 guestlink_seg: every piece fits the MTU and has valid checksums when
 *     the original did, and the pieces' payloads joined are the original's.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <glib.h>

#include "backend/offload.h"
#include "netstack/guestlink.h"
#include "fuzz_common.h"
#include "fuzz_view.h"

#define HDR 14
#define ETH 14

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The IPv4 TCP or UDP packet in @f, if sound: its header length and total length. */
static bool l4_packet(const uint8_t *f, size_t len, size_t *ihl, size_t *tot, uint8_t *proto)
{
	const uint8_t *ip = f + ETH;

	if (len < ETH + 20 || fuzz_rd16(f + 12) != 0x0800 || ip[0] >> 4 != 4)
		return false;
	*ihl = (size_t)(ip[0] & 0x0f) * 4;
	*tot = fuzz_rd16(ip + 2);
	*proto = ip[9];
	if (*ihl < 20 || *tot < *ihl || *tot > len - ETH)
		return false;
	if (fuzz_rd16(ip + 6) & 0x3fff)
		return false;           /* a fragment */
	if (*proto == IPPROTO_TCP)
		return *tot - *ihl >= 20;
	return *proto == IPPROTO_UDP && *tot - *ihl >= 8;
}

static uint32_t l4_residual(const uint8_t *f, size_t ihl, size_t tot, uint8_t proto)
{
	return fuzz_l4_residual(f + ETH, proto, f + ETH + ihl, tot - ihl);
}

static uint32_t ip_residual(const uint8_t *f, size_t ihl)
{
	return fuzz_residual(fuzz_sum_be16(f + ETH, ihl));
}

static void check_from_guest(uint8_t *f, size_t len, const struct frame_meta *m)
{
	g_autofree uint8_t *copy = g_memdup2(f, len);
	size_t ihl, tot, at;
	uint8_t proto;
	bool sound = l4_packet(f, len, &ihl, &tot, &proto);
	uint32_t r;
	uint16_t c;

	if (offload_from_guest(f, len, m))
		return;
	if (m->gso_type != FRAME_GSO_NONE)
		FUZZ_CHECK(sound && proto == IPPROTO_TCP && tot == len - ETH);
	if (!(m->flags & FRAME_META_NEEDS_CSUM) || !sound ||
	    m->csum_start != ETH + ihl || m->csum_offset != (proto == IPPROTO_TCP ? 16 : 6))
		return;
	/* The field is the complement of the sum of the packet's rest, its old value included. */
	at = (size_t)m->csum_start + m->csum_offset;
	r = fuzz_residual(fuzz_sum_be16(copy + m->csum_start, ETH + tot - m->csum_start));
	c = (uint16_t)~r;
	FUZZ_CHECK(fuzz_rd16(f + at) == c);
	/* And with the pseudo-header's sum there, as a guest leaves it, the result is valid. */
	memcpy(f, copy, len);
	r = fuzz_residual(fuzz_sum_be16(f + ETH + 12, 8) + proto + tot - ihl);
	f[at] = (uint8_t)(r >> 8);
	f[at + 1] = (uint8_t)r;
	FUZZ_CHECK(offload_from_guest(f, len, m) == 0);
	FUZZ_CHECK(l4_residual(f, ihl, tot, proto) == 0);
}

static void check_to_guest(uint8_t *f, size_t len, unsigned int mtu, uint32_t offloads)
{
	g_autofree uint8_t *copy = g_memdup2(f, len);
	const struct frame_meta *meta;
	struct frame_meta m;
	size_t ihl, tot;
	uint8_t proto;
	bool sound = l4_packet(f, len, &ihl, &tot, &proto);
	bool valid = sound && l4_residual(f, ihl, tot, proto) == 0;
	int ret = offload_to_guest(f, len, mtu, offloads, &m, &meta);

	if (ret) {
		FUZZ_CHECK(ret == -EMSGSIZE && len > (size_t)mtu + ETH && !meta);
		FUZZ_CHECK(!memcmp(f, copy, len));
		return;
	}
	if (!meta) {
		FUZZ_CHECK(!memcmp(f, copy, len));
		return;
	}
	FUZZ_CHECK(offloads & BACKEND_OFFLOAD_CSUM);
	if (m.gso_type != FRAME_GSO_NONE) {
		FUZZ_CHECK(offloads & BACKEND_OFFLOAD_TSO4);
		FUZZ_CHECK(len > (size_t)mtu + ETH && sound && proto == IPPROTO_TCP);
		FUZZ_CHECK(m.gso_size > 0 && m.hdr_len + m.gso_size <= mtu + ETH);
		FUZZ_CHECK(m.flags & FRAME_META_NEEDS_CSUM);
	}
	if (m.flags & FRAME_META_NEEDS_CSUM) {
		uint32_t sum;
		uint16_t c;

		FUZZ_CHECK(sound && proto == IPPROTO_TCP && m.csum_start == ETH + ihl &&
			   m.csum_offset == 16);
		/* Complete it as the guest would, from scratch. */
		sum = fuzz_residual(fuzz_sum_be16(f + m.csum_start, ETH + tot - m.csum_start));
		c = (uint16_t)~sum;
		f[m.csum_start + m.csum_offset] = (uint8_t)(c >> 8);
		f[m.csum_start + m.csum_offset + 1] = (uint8_t)c;
		if (valid)
			FUZZ_CHECK(l4_residual(f, ihl, tot, proto) == 0);
	} else {
		FUZZ_CHECK(m.flags == FRAME_META_DATA_VALID && !memcmp(f, copy, len));
	}
}

static void check_raise_mss(uint8_t *f, size_t len, unsigned int mtu)
{
	g_autofree uint8_t *copy = g_memdup2(f, len);
	size_t ihl, tot, changed = 0;
	uint8_t proto;
	bool sound = l4_packet(f, len, &ihl, &tot, &proto);
	uint32_t before = sound ? l4_residual(f, ihl, tot, proto) : 0;

	if (!offload_raise_mss(f, len, mtu)) {
		FUZZ_CHECK(!memcmp(f, copy, len));
		return;
	}
	FUZZ_CHECK(sound && proto == IPPROTO_TCP);
	FUZZ_CHECK(l4_residual(f, ihl, tot, proto) == before);
	for (size_t i = 0; i < len; i++) {
		if (f[i] == copy[i])
			continue;
		/* The checksum, or the two MSS bytes inside the TCP options. */
		FUZZ_CHECK((i >= ETH + ihl + 16 && i < ETH + ihl + 18) ||
			   (i >= ETH + ihl + 20 && i < ETH + tot));
		changed++;
	}
	FUZZ_CHECK(changed <= 4);
}

static void check_segments(const uint8_t *f, size_t len, unsigned int mtu)
{
	struct guestlink_seg it;
	g_autofree uint8_t *out = g_malloc(ETH + (size_t)mtu);
	size_t ihl, tot, thl, n, joined = 0;
	uint8_t proto;
	bool sound = l4_packet(f, len, &ihl, &tot, &proto);
	int ret = guestlink_seg_start(&it, f, len, mtu);

	if (ret <= 0) {
		FUZZ_CHECK(!guestlink_seg_next(&it, out));
		return;
	}
	FUZZ_CHECK(sound && proto == IPPROTO_TCP && tot > mtu);
	thl = (size_t)(f[ETH + ihl + 12] >> 4) * 4;
	while ((n = guestlink_seg_next(&it, out))) {
		size_t pihl, ptot;
		uint8_t pproto;

		FUZZ_CHECK(n <= ETH + (size_t)mtu);
		FUZZ_CHECK(l4_packet(out, n, &pihl, &ptot, &pproto) && pihl == ihl);
		FUZZ_CHECK(ptot == n - ETH && ptot > ihl + thl);
		FUZZ_CHECK(ip_residual(out, ihl) == 0 && l4_residual(out, ihl, ptot, pproto) == 0);
		FUZZ_CHECK(!memcmp(out + ETH + ihl + thl, f + ETH + ihl + thl + joined,
				   ptot - ihl - thl));
		joined += ptot - ihl - thl;
	}
	FUZZ_CHECK(joined == tot - ihl - thl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_meta m;
	unsigned int mtu;
	uint8_t *f;
	size_t len;

	if (size < HDR)
		return 0;
	mtu = (unsigned int)(data[1] << 8 | data[2]);
	mtu = CLAMP(mtu, 68, 65520);
	m = (struct frame_meta){ .flags = data[4], .gso_type = data[5],
				 .hdr_len = (uint16_t)(data[6] | data[7] << 8),
				 .gso_size = (uint16_t)(data[8] | data[9] << 8),
				 .csum_start = (uint16_t)(data[10] | data[11] << 8),
				 .csum_offset = (uint16_t)(data[12] | data[13] << 8) };
	len = size - HDR;
	if (len < ETH)
		return 0;
	f = g_memdup2(data + HDR, len);
	switch (data[0] % 4) {
	case 0:
		/* What the backend guarantees before the call (vu_parse_tx_hdr). */
		if (!(m.flags & FRAME_META_NEEDS_CSUM) ||
		    (size_t)m.csum_start + m.csum_offset + 2 <= len)
			check_from_guest(f, len, &m);
		break;
	case 1:
		check_to_guest(f, len, mtu, data[3] & 3);
		break;
	case 2:
		check_raise_mss(f, len, mtu);
		break;
	default:
		check_segments(f, len, mtu);
		break;
	}
	g_free(f);
	return 0;
}
