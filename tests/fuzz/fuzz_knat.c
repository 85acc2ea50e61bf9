/* fuzz_knat.c - libFuzzer target: the kernel path's parse and translation keep packets and checksums right. */

/*
 * Theory of operation
 *
 * Input: a 13-byte header, then one IPv4 packet (no link header).
 *   [0..11]  a tuple T: source address, destination address, source port,
 *            destination port, as raw network-order bytes
 *   [12]     bit 0: the TCP checksum is a partial one (NEEDS_CSUM)
 *
 * The packet is parsed from an exact-size heap copy (ASan sees any read
 * past its end).  Checked:
 *   - parse: 0 only for an unfragmented IPv4 TCP segment whose lengths fit
 *     (then every offset the view gives lies inside the buffer and the IP
 *     total length), -ENOENT or -EBADMSG otherwise, as a classifier written
 *     here from knat.h's contract says;
 *   - knat_rewrite(T): the tuple reads back as T; the IPv4 header's
 *     checksum residual is unchanged; a complete TCP checksum's residual
 *     (pseudo-header, header and data) is unchanged; a partial one changes
 *     by exactly the change of the addresses' sum (it holds the
 *     pseudo-header's sum, not complemented);
 *   - only address, port and checksum bytes change, and translating back
 *     restores the original bytes but for the representation of zero in a
 *     checksum (0x0000 and 0xffff are the same one's-complement value).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy-bridge/knat.h"
#include "tests/fuzz/fuzz_common.h"

#define HDR 13

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* What knat_parse() must answer, from its contract alone. */
static int expected_parse(const uint8_t *p, size_t len)
{
	size_t ihl, tot, thl;

	if (len < 20 || p[0] >> 4 != 4)
		return -ENOENT;
	ihl = (size_t)(p[0] & 15) * 4;
	tot = be16(p + 2);
	if (ihl < 20 || tot < ihl || tot > len)
		return -EBADMSG;
	if (p[9] != 6 || (be16(p + 6) & 0x3fff))
		return -ENOENT;
	if (tot - ihl < 20)
		return -EBADMSG;
	thl = (size_t)(p[ihl + 12] >> 4) * 4;
	if (thl < 20 || thl > tot - ihl)
		return -EBADMSG;
	return 0;
}

/* The TCP residual over pseudo-header and segment. */
static uint32_t tcp_residual(const struct knat_view *v)
{
	uint8_t pseudo[12];
	size_t l4 = v->tot - v->ihl;

	memcpy(pseudo, v->ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = 6;
	pseudo[10] = (uint8_t)(l4 >> 8);
	pseudo[11] = (uint8_t)l4;
	return fuzz_residual(fuzz_sum_be16(pseudo, 12) + fuzz_sum_be16(v->tcp, l4));
}

static uint32_t addr_sum(const struct knat_view *v)
{
	return fuzz_residual(fuzz_sum_be16(v->ip + 12, 8));
}

static bool same_csum(uint16_t a, uint16_t b)
{
	return a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct knat_tuple to, back, got;
	struct knat_view v;
	bool partial;
	uint8_t *pkt, *orig;
	uint32_t ip_res, tcp_res, sums;
	uint16_t field0, field1;
	size_t len;
	int ret;

	if (size < HDR)
		return 0;
	memcpy(&to.saddr, data, 4);
	memcpy(&to.daddr, data + 4, 4);
	memcpy(&to.sport, data + 8, 2);
	memcpy(&to.dport, data + 10, 2);
	partial = data[12] & 1;
	len = size - HDR;
	pkt = malloc(len ? len : 1);
	orig = malloc(len ? len : 1);
	FUZZ_CHECK(pkt && orig);
	memcpy(pkt, data + HDR, len);
	memcpy(orig, pkt, len);

	ret = knat_parse(pkt, len, &v);
	FUZZ_CHECK(ret == expected_parse(pkt, len));
	if (ret)
		goto out;
	FUZZ_CHECK(v.ip == pkt && v.tcp == pkt + v.ihl && v.tot <= len);
	FUZZ_CHECK(v.ihl >= 20 && v.thl >= 20 && v.ihl + v.thl <= v.tot);
	FUZZ_CHECK(v.flags == pkt[v.ihl + 13]);

	back = knat_tuple_of(&v);
	ip_res = fuzz_residual(fuzz_sum_be16(pkt, v.ihl));
	tcp_res = tcp_residual(&v);
	sums = addr_sum(&v);
	field0 = be16(v.tcp + 16);
	knat_rewrite(&v, &to, partial);
	got = knat_tuple_of(&v);
	FUZZ_CHECK(!memcmp(&got, &to, sizeof(got)));
	FUZZ_CHECK(fuzz_residual(fuzz_sum_be16(pkt, v.ihl)) == ip_res);
	if (!partial) {
		FUZZ_CHECK(tcp_residual(&v) == tcp_res);
	} else {
		/* field1 - field0 == sum(new addrs) - sum(old addrs), one's complement. */
		field1 = be16(v.tcp + 16);
		FUZZ_CHECK(fuzz_residual((uint64_t)field1 + sums) ==
			   fuzz_residual((uint64_t)field0 + addr_sum(&v)));
	}
	/* Only the tuple and the checksums moved. */
	for (size_t i = 0; i < len; i++) {
		bool tuple = (i >= 12 && i < 20) || (i >= v.ihl && i < v.ihl + 4);
		bool csum = i == 10 || i == 11 || i == v.ihl + 16 || i == v.ihl + 17;

		if (!tuple && !csum)
			FUZZ_CHECK(pkt[i] == orig[i]);
	}
	knat_rewrite(&v, &back, partial);
	for (size_t i = 0; i < len; i++) {
		if (i == 10 || i == v.ihl + 16)
			continue;
		if (i == 11 || i == v.ihl + 17)
			continue;
		FUZZ_CHECK(pkt[i] == orig[i]);
	}
	FUZZ_CHECK(same_csum(be16(pkt + 10), be16(orig + 10)));
	FUZZ_CHECK(same_csum(be16(pkt + v.ihl + 16), be16(orig + v.ihl + 16)));
out:
	free(pkt);
	free(orig);
	return 0;
}
