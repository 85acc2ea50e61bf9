/* fuzz_view.c - checksum residuals and change masks of a parsed frame, for the rewrite and bridge targets. */

#include "fuzz_view.h"

#include <string.h>
#include <netinet/in.h>

#include "tests/fuzz/fuzz_common.h"

uint16_t fuzz_rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

uint32_t fuzz_l4_residual(const uint8_t *ip, uint8_t proto, const uint8_t *l4, size_t len)
{
	uint64_t sum = fuzz_sum_be16(ip + 12, 8) + proto + (len & 0xffff) + (len >> 16);

	return fuzz_residual(sum + fuzz_sum_be16(l4, len));
}

void fuzz_residuals_of(const struct rw_view *v, struct fuzz_residuals *r)
{
	memset(r, 0, sizeof(*r));
	if (v->kind == RW_NOT_IPV4 || v->kind == RW_MALFORMED)
		return;
	r->ip = fuzz_residual(fuzz_sum_be16(v->ip, v->ihl));
	if (v->kind == RW_TRANSPORT) {
		r->has_l4 = v->proto == IPPROTO_TCP || fuzz_rd16(v->l4 + 6) != 0;
		if (r->has_l4)
			r->l4 = fuzz_l4_residual(v->ip, v->proto, v->l4, v->l4_len);
	} else if (v->kind == RW_ICMP_ERROR) {
		size_t quoted = v->l4_len - (size_t)(v->inner_l4 - v->l4);

		r->has_l4 = true;
		r->l4 = fuzz_residual(fuzz_sum_be16(v->l4, v->l4_len));
		r->inner_ip = fuzz_residual(fuzz_sum_be16(v->inner_ip, v->inner_ihl));
		r->has_inner_udp = v->inner_ip[9] == IPPROTO_UDP && fuzz_rd16(v->inner_l4 + 6) != 0;
		if (r->has_inner_udp)
			r->inner_udp = fuzz_l4_residual(v->inner_ip, IPPROTO_UDP, v->inner_l4, quoted);
	}
}

void fuzz_check_residuals(const struct fuzz_residuals *a, const struct fuzz_residuals *b)
{
	FUZZ_CHECK(a->ip == b->ip);
	FUZZ_CHECK(a->has_l4 == b->has_l4 && a->l4 == b->l4);
	FUZZ_CHECK(a->inner_ip == b->inner_ip);
	FUZZ_CHECK(a->has_inner_udp == b->has_inner_udp && a->inner_udp == b->inner_udp);
}

void fuzz_check_same_view(const struct rw_view *a, const struct rw_view *b)
{
	FUZZ_CHECK(a->kind == b->kind && a->eth == b->eth && a->ip == b->ip && a->ihl == b->ihl &&
		   a->ip_len == b->ip_len && a->proto == b->proto && a->l4 == b->l4 &&
		   a->l4_len == b->l4_len && a->inner_ip == b->inner_ip &&
		   a->inner_ihl == b->inner_ihl && a->inner_l4 == b->inner_l4);
}

static void mark(uint8_t *m, const uint8_t *f, const uint8_t *at, size_t n, enum fuzz_mask what)
{
	memset(m + (at - f), what, n);
}

void fuzz_mark_rewritable(const struct rw_view *v, const uint8_t *f, uint8_t *m)
{
	if (v->kind != RW_TRANSPORT && v->kind != RW_ICMP_ERROR && v->kind != RW_FRAGMENT)
		return;
	mark(m, f, v->ip + 10, 2, FUZZ_CSUM);
	mark(m, f, v->ip + 12, 8, FUZZ_FIELD);
	if (v->kind == RW_FRAGMENT)
		return;
	if (v->kind == RW_TRANSPORT) {
		mark(m, f, v->l4, 4, FUZZ_FIELD);
		if (v->proto == IPPROTO_TCP)
			mark(m, f, v->l4 + 16, 2, FUZZ_CSUM);
		else if (fuzz_rd16(v->l4 + 6))
			mark(m, f, v->l4 + 6, 2, FUZZ_CSUM_EXACT);
		return;
	}
	mark(m, f, v->l4 + 2, 2, FUZZ_CSUM);
	mark(m, f, v->inner_ip + 10, 2, FUZZ_CSUM);
	mark(m, f, v->inner_ip + 12, 8, FUZZ_FIELD);
	mark(m, f, v->inner_l4, 4, FUZZ_FIELD);
	if (v->inner_ip[9] == IPPROTO_UDP && fuzz_rd16(v->inner_l4 + 6))
		mark(m, f, v->inner_l4 + 6, 2, FUZZ_CSUM_EXACT);
}

void fuzz_check_changes(const uint8_t *f, const uint8_t *orig, const uint8_t *m, size_t len,
			bool restored)
{
	for (size_t i = 0; i < len; i++) {
		size_t w;
		uint16_t a, b;

		if (f[i] == orig[i])
			continue;
		FUZZ_CHECK(m[i] != FUZZ_KEEP);
		if (!restored)
			continue;
		FUZZ_CHECK(m[i] == FUZZ_CSUM);
		/* Checksums sit at even offsets from the IPv4 header, which starts at 14. */
		w = i - (i - RW_ETH_HLEN) % 2;
		a = fuzz_rd16(f + w);
		b = fuzz_rd16(orig + w);
		FUZZ_CHECK((a == 0 && b == 0xffff) || (a == 0xffff && b == 0));
	}
}
