/* fuzz_rewrite.c - libFuzzer target: rw_parse and the in-place tuple rewrites keep frames and checksums right. */

/*
 * Theory of operation
 *
 * Input: a 36-byte header, then one Ethernet frame.
 *   [0..11]  a tuple T: source address, destination address, source port,
 *            destination port, as raw network-order bytes
 *   [12..19] outer source and destination addresses (for ICMP errors and
 *            later fragments)
 *   [20..31] destination and source MAC, [32..35] acknowledgement number,
 *            for rw_build_tcp_rst() with T
 *
 * The frame is parsed from an exact-size heap copy (ASan sees any read past
 * its end).  Checked:
 *   - parse: the kind equals what a straightforward classifier written here
 *     from rewrite.h's contract says; every pointer and length the view
 *     gives lies inside the frame and agrees with the headers.
 *   - TCP/UDP (RW_TRANSPORT): rw_set_tuple(T), then back to the original
 *     tuple.  ICMP errors: rw_set_inner_tuple(T) and rw_set_outer_addrs(),
 *     then both back.  Later fragments (RW_FRAGMENT): rw_set_outer_addrs()
 *     with the outer addresses of the header, then back.  TCP, last:
 *     rw_tcp_clear_urgent() clears URG and zeroes its pointer only if URG
 *     was set, and keeps the checksum residual.
 *   - After each rewrite the view reads back what was written, the frame
 *     parses to the same view, and only address, port and checksum bytes
 *     changed.
 *   - Checksums: the rewrites are incremental (RFC 1624), so for every
 *     checksum they maintain, the frame's checksum *residual* (the
 *     one's-complement sum of everything it covers, checksum included,
 *     modulo 0xffff, computed here from scratch) must not change: a valid
 *     checksum stays valid and a corrupt one stays exactly as corrupt.  That
 *     covers the IPv4 header, TCP and UDP with their pseudo-header, the ICMP
 *     message, and inside an ICMP error the quoted IPv4 header and a quoted
 *     UDP header (over the quoted bytes present).  A UDP checksum of 0 means
 *     "none": it must stay 0 (the quoted TCP checksum lies beyond the 8
 *     quoted bytes and cannot be maintained; it is not checked).
 *   - Round trip: rewriting back restores the original bytes exactly, except
 *     that an IPv4, TCP or ICMP checksum may come back as the other
 *     representation of zero (0x0000 <-> 0xffff: the same one's-complement
 *     value).  A UDP checksum comes back exactly: 0 is never produced there
 *     (it is sent as 0xffff) and 0 is never rewritten.
 *   - rw_build_tcp_rst(T) into an exact 54-byte buffer: a TCP RST|ACK frame
 *     that parses as RW_TRANSPORT with tuple T, the given ack and MACs, and
 *     valid IPv4 and TCP checksums computed from scratch.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>

#include <glib.h>

#include "proxy-bridge/rewrite.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/fuzz/fuzz_view.h"

#define HDR_LEN 36

/* An IPv4 header as rewrite.h describes a valid one; its length or 0. */
static size_t ref_ip_header(const uint8_t *ip, size_t avail, size_t *tot)
{
	size_t ihl;

	if (avail < 20 || ip[0] >> 4 != 4)
		return 0;
	ihl = (size_t)(ip[0] & 15) * 4;
	*tot = fuzz_rd16(ip + 2);
	if (ihl < 20 || ihl > avail || *tot < ihl)
		return 0;
	return ihl;
}

/* The classification rewrite.h promises, written independently. */
static enum rw_kind ref_classify(const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + RW_ETH_HLEN, *l4, *in;
	size_t ihl, tot, l4_len, in_ihl, in_tot;

	if (len < RW_ETH_HLEN || fuzz_rd16(f + 12) != 0x0800)
		return RW_NOT_IPV4;
	ihl = ref_ip_header(ip, len - RW_ETH_HLEN, &tot);
	if (!ihl || tot > len - RW_ETH_HLEN)
		return RW_MALFORMED;
	if (fuzz_rd16(ip + 6) & 0x1fff)
		return RW_FRAGMENT;
	l4 = ip + ihl;
	l4_len = tot - ihl;
	switch (ip[9]) {
	case IPPROTO_TCP:
		if (l4_len < 20 || (size_t)(l4[12] >> 4) * 4 < 20 || (size_t)(l4[12] >> 4) * 4 > l4_len)
			return RW_MALFORMED;
		return RW_TRANSPORT;
	case IPPROTO_UDP:
		return l4_len < 8 ? RW_MALFORMED : RW_TRANSPORT;
	case IPPROTO_ICMP:
		if (l4_len < 8 || !(l4[0] == 3 || l4[0] == 4 || l4[0] == 11 || l4[0] == 12))
			return RW_OTHER;
		in = l4 + 8;
		in_ihl = ref_ip_header(in, l4_len - 8, &in_tot);
		if (!in_ihl || l4_len - 8 < in_ihl + 8 || (fuzz_rd16(in + 6) & 0x1fff) ||
		    (in[9] != IPPROTO_TCP && in[9] != IPPROTO_UDP))
			return RW_OTHER;
		return RW_ICMP_ERROR;
	default:
		return RW_OTHER;
	}
}

static bool inside(const uint8_t *p, size_t n, const uint8_t *f, size_t len)
{
	return p >= f && n <= len && (size_t)(p - f) <= len - n;
}

/* The view agrees with the frame and never points outside it. */
static void check_view(const struct rw_view *v, const uint8_t *f, size_t len)
{
	FUZZ_CHECK(v->kind == ref_classify(f, len));
	FUZZ_CHECK(v->eth == f);
	/* The bridge's guards read only inside the view (ASan checks the reads). */
	(void)rw_is_fragment(v);
	(void)rw_checksums_ok(v);
	if (v->kind == RW_TRANSPORT && v->proto == IPPROTO_TCP)
		(void)rw_tcp_seq_end(v);
	if (v->kind == RW_NOT_IPV4)
		return;
	FUZZ_CHECK(v->ip == f + RW_ETH_HLEN);
	if (v->kind == RW_MALFORMED)
		return;
	FUZZ_CHECK(v->ihl >= 20 && v->ihl <= 60 && v->ihl % 4 == 0);
	FUZZ_CHECK(v->ihl == (size_t)(v->ip[0] & 15) * 4);
	FUZZ_CHECK(v->ip_len == fuzz_rd16(v->ip + 2) && v->ip_len >= v->ihl);
	FUZZ_CHECK(inside(v->ip, v->ip_len, f, len));
	FUZZ_CHECK(v->proto == v->ip[9]);
	if (v->kind == RW_FRAGMENT)
		return;
	FUZZ_CHECK(v->l4 == v->ip + v->ihl && v->l4_len == v->ip_len - v->ihl);
	FUZZ_CHECK(inside(v->l4, v->l4_len, f, len));
	if (v->kind == RW_TRANSPORT) {
		FUZZ_CHECK(v->proto == IPPROTO_TCP || v->proto == IPPROTO_UDP);
		FUZZ_CHECK(v->l4_len >= (v->proto == IPPROTO_TCP ? 20u : 8u));
		FUZZ_CHECK(!v->inner_ip && !v->inner_l4);
	}
	if (v->kind == RW_ICMP_ERROR) {
		FUZZ_CHECK(v->proto == IPPROTO_ICMP);
		FUZZ_CHECK(v->inner_ip == v->l4 + 8);
		FUZZ_CHECK(v->inner_ihl >= 20 && v->inner_ihl == (size_t)(v->inner_ip[0] & 15) * 4);
		FUZZ_CHECK(v->inner_l4 == v->inner_ip + v->inner_ihl);
		/* The 8 quoted transport bytes are inside the ICMP message. */
		FUZZ_CHECK(inside(v->inner_l4, 8, v->l4, v->l4_len));
	}
	if (v->kind == RW_OTHER)
		FUZZ_CHECK(!v->inner_ip && !v->inner_l4);
}

static void tuple_of(const uint8_t *p, struct rw_tuple *t, uint8_t proto)
{
	memcpy(&t->saddr, p, 4);
	memcpy(&t->daddr, p + 4, 4);
	memcpy(&t->sport, p + 8, 2);
	memcpy(&t->dport, p + 10, 2);
	t->proto = proto;
}

static bool same_tuple(const struct rw_tuple *a, const struct rw_tuple *b)
{
	return a->saddr == b->saddr && a->daddr == b->daddr && a->sport == b->sport &&
	       a->dport == b->dport && a->proto == b->proto;
}

static void fuzz_transport(uint8_t *f, size_t len, struct rw_view *v, const uint8_t *orig,
			   uint8_t *m, const uint8_t *hdr)
{
	struct rw_tuple t0, to, got;
	struct fuzz_residuals r0, r1;
	struct rw_view again;

	rw_tuple(v, &t0);
	FUZZ_CHECK(t0.proto == v->proto);
	if (v->proto == IPPROTO_TCP) {
		FUZZ_CHECK(rw_tcp_flags(v) == v->l4[13]);
		FUZZ_CHECK(rw_tcp_seq(v) == ((uint32_t)fuzz_rd16(v->l4 + 4) << 16 | fuzz_rd16(v->l4 + 6)));
	}
	tuple_of(hdr, &to, v->proto);
	fuzz_residuals_of(v, &r0);
	fuzz_mark_rewritable(v, f, m);

	rw_set_tuple(v, &to);
	rw_tuple(v, &got);
	FUZZ_CHECK(same_tuple(&got, &to));
	rw_parse(f, len, &again);
	fuzz_check_same_view(v, &again);
	fuzz_residuals_of(v, &r1);
	fuzz_check_residuals(&r0, &r1);
	fuzz_check_changes(f, orig, m, len, false);
	if (v->proto == IPPROTO_UDP && !fuzz_rd16(orig + (v->l4 - f) + 6))
		FUZZ_CHECK(fuzz_rd16(v->l4 + 6) == 0);

	rw_set_tuple(v, &t0);
	rw_tuple(v, &got);
	FUZZ_CHECK(same_tuple(&got, &t0));
	fuzz_residuals_of(v, &r1);
	fuzz_check_residuals(&r0, &r1);
	fuzz_check_changes(f, orig, m, len, true);

	/* Last, as it changes the frame for good: URG and its pointer go, the checksum holds. */
	if (v->proto == IPPROTO_TCP) {
		bool urgent = v->l4[13] & RW_TCP_URG;
		uint16_t urp = fuzz_rd16(v->l4 + 18);

		FUZZ_CHECK(rw_tcp_clear_urgent(v) == urgent);
		FUZZ_CHECK(!(v->l4[13] & RW_TCP_URG));
		FUZZ_CHECK(fuzz_rd16(v->l4 + 18) == (urgent ? 0 : urp));
		fuzz_residuals_of(v, &r1);
		fuzz_check_residuals(&r0, &r1);
	}
}

/*
 * rw_set_outer_addrs(@s1, @d1) on @v, then check: the addresses read back,
 * the frame parses to the same view, every residual is @r0's, and only the
 * bytes @m allows changed.
 */
static void set_outer_checked(uint8_t *f, size_t len, struct rw_view *v, const uint8_t *orig,
			      const uint8_t *m, const struct fuzz_residuals *r0, uint32_t s1,
			      uint32_t d1)
{
	struct fuzz_residuals r1;
	struct rw_view again;
	uint32_t s, d;

	rw_set_outer_addrs(v, s1, d1);
	rw_outer_addrs(v, &s, &d);
	FUZZ_CHECK(s == s1 && d == d1);
	rw_parse(f, len, &again);
	fuzz_check_same_view(v, &again);
	fuzz_residuals_of(v, &r1);
	fuzz_check_residuals(r0, &r1);
	fuzz_check_changes(f, orig, m, len, false);
}

static void fuzz_icmp_error(uint8_t *f, size_t len, struct rw_view *v, const uint8_t *orig,
			    uint8_t *m, const uint8_t *hdr)
{
	struct rw_tuple t0, to, got;
	struct fuzz_residuals r0, r1;
	uint32_t s0, d0, s1, d1;
	uint8_t inner_proto = v->inner_ip[9];

	rw_inner_tuple(v, &t0);
	FUZZ_CHECK(t0.proto == inner_proto);
	rw_outer_addrs(v, &s0, &d0);
	tuple_of(hdr, &to, inner_proto);
	memcpy(&s1, hdr + 12, 4);
	memcpy(&d1, hdr + 16, 4);
	fuzz_residuals_of(v, &r0);
	fuzz_mark_rewritable(v, f, m);

	rw_set_inner_tuple(v, &to);
	rw_inner_tuple(v, &got);
	FUZZ_CHECK(same_tuple(&got, &to));
	/* The outer header is not the inner rewrite's business. */
	FUZZ_CHECK(!memcmp(v->ip, orig + (v->ip - f), v->ihl));
	set_outer_checked(f, len, v, orig, m, &r0, s1, d1);
	if (inner_proto == IPPROTO_UDP && !fuzz_rd16(orig + (v->inner_l4 - f) + 6))
		FUZZ_CHECK(fuzz_rd16(v->inner_l4 + 6) == 0);

	rw_set_outer_addrs(v, s0, d0);
	rw_set_inner_tuple(v, &t0);
	rw_inner_tuple(v, &got);
	FUZZ_CHECK(same_tuple(&got, &t0));
	fuzz_residuals_of(v, &r1);
	fuzz_check_residuals(&r0, &r1);
	fuzz_check_changes(f, orig, m, len, true);
}

/*
 * A later fragment: rw_set_outer_addrs() alone (the bridge's rewrite of the
 * fragments behind a rewritten first one), then back.
 */
static void fuzz_fragment(uint8_t *f, size_t len, struct rw_view *v, const uint8_t *orig,
			  uint8_t *m, const uint8_t *hdr)
{
	struct fuzz_residuals r0, r1;
	uint32_t s0, d0, s1, d1;

	rw_outer_addrs(v, &s0, &d0);
	memcpy(&s1, hdr + 12, 4);
	memcpy(&d1, hdr + 16, 4);
	fuzz_residuals_of(v, &r0);
	fuzz_mark_rewritable(v, f, m);

	set_outer_checked(f, len, v, orig, m, &r0, s1, d1);
	rw_set_outer_addrs(v, s0, d0);
	fuzz_residuals_of(v, &r1);
	fuzz_check_residuals(&r0, &r1);
	fuzz_check_changes(f, orig, m, len, true);
}

static void fuzz_rst(const uint8_t *hdr)
{
	uint8_t *out = g_malloc(RW_ETH_HLEN + 40);
	struct rw_tuple t, got;
	struct rw_view v;
	uint32_t ack = (uint32_t)fuzz_rd16(hdr + 32) << 16 | fuzz_rd16(hdr + 34);
	uint32_t seq = ack * 2654435761u;  /* another value from the same bytes */
	uint64_t sum;
	size_t len;

	tuple_of(hdr, &t, IPPROTO_TCP);
	len = rw_build_tcp_rst(out, hdr + 20, hdr + 26, &t, seq, ack);
	FUZZ_CHECK(len == RW_ETH_HLEN + 40);
	rw_parse(out, len, &v);
	check_view(&v, out, len);
	FUZZ_CHECK(v.kind == RW_TRANSPORT && v.proto == IPPROTO_TCP);
	FUZZ_CHECK(v.ihl == 20 && v.ip_len == 40 && v.l4_len == 20);
	FUZZ_CHECK(!memcmp(out, hdr + 20, 12));
	rw_tuple(&v, &got);
	FUZZ_CHECK(same_tuple(&got, &t));
	FUZZ_CHECK(rw_tcp_flags(&v) == (RW_TCP_RST | RW_TCP_ACK));
	FUZZ_CHECK(((uint32_t)fuzz_rd16(v.l4 + 8) << 16 | fuzz_rd16(v.l4 + 10)) == ack);
	FUZZ_CHECK(rw_tcp_seq(&v) == seq && rw_tcp_ack(&v) == ack);
	FUZZ_CHECK(rw_tcp_seq_end(&v) == seq && rw_checksums_ok(&v) && !rw_is_fragment(&v));
	FUZZ_CHECK((v.l4[12] >> 4) == 5);
	/* Valid checksums: the sums over what they cover fold to 0xffff. */
	sum = fuzz_sum_be16(v.ip, 20);
	FUZZ_CHECK(sum && fuzz_residual(sum) == 0);
	FUZZ_CHECK(fuzz_l4_residual(v.ip, IPPROTO_TCP, v.l4, 20) == 0);
	g_free(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_logs();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *hdr = data;
	uint8_t *f, *orig, *m;
	struct rw_view v;
	size_t len;

	if (size < HDR_LEN)
		return 0;
	fuzz_rst(hdr);
	len = size - HDR_LEN;
	/* Exact-size copies: ASan sees any access past the frame's end. */
	f = g_malloc(len ? len : 1);
	orig = g_malloc(len ? len : 1);
	m = g_malloc0(len ? len : 1);
	memcpy(f, data + HDR_LEN, len);
	memcpy(orig, f, len);

	rw_parse(f, len, &v);
	check_view(&v, f, len);
	if (v.kind == RW_TRANSPORT)
		fuzz_transport(f, len, &v, orig, m, hdr);
	else if (v.kind == RW_ICMP_ERROR)
		fuzz_icmp_error(f, len, &v, orig, m, hdr);
	else if (v.kind == RW_FRAGMENT)
		fuzz_fragment(f, len, &v, orig, m, hdr);
	else
		FUZZ_CHECK(!memcmp(f, orig, len));

	g_free(m);
	g_free(orig);
	g_free(f);
	return 0;
}
