/* knat.c - parse and translate one TCP/IPv4 packet of a kernel-terminated flow (see knat.h). */

#include "knat.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>

#include "common/csum.h"

static uint16_t knat_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int knat_parse(uint8_t *pkt, size_t len, struct knat_view *v)
{
	size_t ihl, tot, thl;

	if (len < 20 || (pkt[0] >> 4) != 4)
		return -ENOENT;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	tot = knat_get16(pkt + 2);
	if (ihl < 20 || tot < ihl || tot > len)
		return -EBADMSG;
	if (pkt[9] != IPPROTO_TCP)
		return -ENOENT;
	/* More Fragments or an offset: a piece of a segment, which this path never takes. */
	if (knat_get16(pkt + 6) & 0x3fff)
		return -ENOENT;
	if (tot - ihl < 20)
		return -EBADMSG;
	thl = (size_t)(pkt[ihl + 12] >> 4) * 4;
	if (thl < 20 || thl > tot - ihl)
		return -EBADMSG;
	*v = (struct knat_view){ .ip = pkt, .ihl = ihl, .tot = tot, .tcp = pkt + ihl, .thl = thl,
				 .flags = pkt[ihl + 13] };
	return 0;
}

struct knat_tuple knat_tuple_of(const struct knat_view *v)
{
	struct knat_tuple t;

	memcpy(&t.saddr, v->ip + 12, 4);
	memcpy(&t.daddr, v->ip + 16, 4);
	memcpy(&t.sport, v->tcp, 2);
	memcpy(&t.dport, v->tcp + 2, 2);
	return t;
}

/*
 * A complemented checksum follows RFC 1624 (csum_update*); the partial one
 * is not complemented, so it is complemented around the same update.
 */
static void knat_update32(uint16_t *field, uint32_t from, uint32_t to, bool complemented)
{
	if (from == to)
		return;
	if (!complemented)
		*field = (uint16_t)~*field;
	csum_update32(field, from, to);
	if (!complemented)
		*field = (uint16_t)~*field;
}

void knat_rewrite(struct knat_view *v, const struct knat_tuple *to, bool partial)
{
	struct knat_tuple from = knat_tuple_of(v);
	uint16_t ipsum, tcpsum;

	memcpy(&ipsum, v->ip + 10, 2);
	memcpy(&tcpsum, v->tcp + 16, 2);
	knat_update32(&ipsum, from.saddr, to->saddr, true);
	knat_update32(&ipsum, from.daddr, to->daddr, true);
	knat_update32(&tcpsum, from.saddr, to->saddr, !partial);
	knat_update32(&tcpsum, from.daddr, to->daddr, !partial);
	if (!partial) {
		if (from.sport != to->sport)
			csum_update16(&tcpsum, from.sport, to->sport);
		if (from.dport != to->dport)
			csum_update16(&tcpsum, from.dport, to->dport);
	}
	memcpy(v->ip + 10, &ipsum, 2);
	memcpy(v->tcp + 16, &tcpsum, 2);
	memcpy(v->ip + 12, &to->saddr, 4);
	memcpy(v->ip + 16, &to->daddr, 4);
	memcpy(v->tcp, &to->sport, 2);
	memcpy(v->tcp + 2, &to->dport, 2);
}

bool knat_checksums_ok(const struct knat_view *v, bool tcp_partial)
{
	if (csum_fold(csum_add(0, v->ip, v->ihl)))
		return false;
	return tcp_partial || !csum_fold(csum_add(csum_pseudo4(v->ip + 12, IPPROTO_TCP, (uint16_t)(v->tot - v->ihl)),
				   v->tcp, v->tot - v->ihl));
}
