/* guestlink.c - fit frames for the guest's link: its MTU in DHCP, IPv4 fragments (pure, no I/O). */

#include "guestlink.h"

#include <errno.h>
#include <string.h>

#include "common/csum.h"
#include "common/util.h"

#define IP_OFF_TOTLEN 2
#define IP_OFF_FRAG 6
#define IP_OFF_PROTO 9
#define IP_OFF_CSUM 10
#define IP_FRAG_DF 0x4000
#define IP_FRAG_MF 0x2000
#define IP_FRAG_OFFSET_MASK 0x1fff
#define IP_PROTO_TCP 6
#define IP_PROTO_UDP 17
#define IP_OFF_ID 4
#define TCP_HLEN 20
#define TCP_OFF_SEQ 4
#define TCP_OFF_FLAGS 13
#define TCP_OFF_CSUM 16
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_CWR 0x80
#define IP_OPT_EOL 0
#define IP_OPT_NOP 1
#define IP_OPT_COPIED 0x80

#define UDP_HLEN 8
#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define BOOTP_OP_REPLY 2
#define BOOTP_VEND_OFF 236          /* op .. file: the fixed BOOTP fields */
#define DHCP_OPT_PAD 0
#define DHCP_OPT_END 255
static const uint8_t dhcp_cookie[4] = { 99, 130, 83, 99 };

/* RFC 1071 over @len bytes from @sum; not folded, not inverted. */
/* The IPv4 header of an Ethernet frame: its length, 0 if the frame is no sound IPv4. */
static size_t guestlink_ip(const uint8_t *frame, size_t len, size_t *tot)
{
	const uint8_t *ip = frame + GUESTLINK_ETH_HLEN;
	size_t ihl;

	if (len < GUESTLINK_ETH_HLEN + 20 || be16_read(frame + 12) != 0x0800 || ip[0] >> 4 != 4)
		return 0;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	*tot = be16_read(ip + IP_OFF_TOTLEN);
	if (ihl < 20 || *tot < ihl || *tot > len - GUESTLINK_ETH_HLEN)
		return 0;
	return ihl;
}

int guestlink_dhcp_set_mtu(uint8_t *frame, size_t len, uint16_t mtu)
{
	uint8_t *ip = frame + GUESTLINK_ETH_HLEN, *udp, *opt, *end;
	size_t ihl, tot, udp_len;
	uint32_t sum;
	uint16_t csum;

	ihl = guestlink_ip(frame, len, &tot);
	if (!ihl || ip[IP_OFF_PROTO] != IP_PROTO_UDP ||
	    (be16_read(ip + IP_OFF_FRAG) & (IP_FRAG_MF | IP_FRAG_OFFSET_MASK)))
		return -ENOENT;
	udp = ip + ihl;
	udp_len = tot - ihl;
	if (udp_len < UDP_HLEN + BOOTP_VEND_OFF + sizeof(dhcp_cookie) ||
	    be16_read(udp) != DHCP_SERVER_PORT || be16_read(udp + 2) != DHCP_CLIENT_PORT ||
	    be16_read(udp + 4) != udp_len || udp[UDP_HLEN] != BOOTP_OP_REPLY ||
	    memcmp(udp + UDP_HLEN + BOOTP_VEND_OFF, dhcp_cookie, sizeof(dhcp_cookie)))
		return -ENOENT;

	opt = udp + UDP_HLEN + BOOTP_VEND_OFF + sizeof(dhcp_cookie);
	end = udp + udp_len;
	while (opt < end && *opt != DHCP_OPT_END) {
		if (*opt == DHCP_OPT_PAD) {
			opt++;
			continue;
		}
		if (end - opt < 2 || opt[1] > end - opt - 2)
			return -EBADMSG;
		if (*opt == GUESTLINK_DHCP_OPT_MTU)
			return -EEXIST;
		opt += 2 + opt[1];
	}
	if (opt >= end)
		return -EBADMSG;
	/* Option 26 where END was, END after it: five bytes. */
	if (end - opt < 5)
		return -ENOSPC;
	opt[0] = GUESTLINK_DHCP_OPT_MTU;
	opt[1] = 2;
	be16_write(opt + 2, mtu);
	opt[4] = DHCP_OPT_END;

	/* The UDP checksum (0: none, left so). */
	if (!be16_read(udp + 6))
		return 0;
	be16_write(udp + 6, 0);
	sum = csum_pseudo4(ip + 12, IP_PROTO_UDP, (uint16_t)udp_len);
	sum = csum_add(sum, udp, udp_len);
	/*
	 * A sum that folds to zero would go as 0xffff (RFC 768), but busybox's
	 * udhcpc compares the field with its own sum, zero, and drops the
	 * reply: with one transaction id in 65,536 a guest never got its lease.
	 * 0 says "no checksum" in IPv4, which every client takes.
	 */
	csum = csum_fold(sum);
	memcpy(udp + 6, &csum, sizeof(csum));
	return 0;
}

/* Length of the options of @ip (header @ihl) that later fragments repeat (RFC 791: "copied"). */
static size_t guestlink_copied_options(const uint8_t *ip, size_t ihl, uint8_t *out)
{
	size_t i = 20, n = 0;

	while (i < ihl) {
		size_t olen;

		if (ip[i] == IP_OPT_EOL)
			break;
		if (ip[i] == IP_OPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= ihl || ip[i + 1] < 2 || ip[i + 1] > ihl - i)
			break;          /* a broken option: repeat nothing from here on */
		olen = ip[i + 1];
		if (ip[i] & IP_OPT_COPIED) {
			if (out)
				memcpy(out + n, ip + i, olen);
			n += olen;
		}
		i += olen;
	}
	/* Pad to a multiple of 4 with EOL. */
	while (n % 4) {
		if (out)
			out[n] = IP_OPT_EOL;
		n++;
	}
	return n;
}

int guestlink_frag_start(struct guestlink_frag *it, const uint8_t *frame, size_t len,
			 unsigned int mtu)
{
	const uint8_t *ip = frame + GUESTLINK_ETH_HLEN;
	size_t ihl, tot, later_ihl;
	uint16_t frag;

	memset(it, 0, sizeof(*it));
	if (len < GUESTLINK_ETH_HLEN + 20 || be16_read(frame + 12) != 0x0800 || ip[0] >> 4 != 4 ||
	    len - GUESTLINK_ETH_HLEN <= mtu)
		return 0;
	ihl = guestlink_ip(frame, len, &tot);
	if (!ihl)
		return -EBADMSG;
	if (tot <= mtu)
		return 0;           /* Ethernet padding made it look long */
	frag = be16_read(ip + IP_OFF_FRAG);
	if (frag & IP_FRAG_DF)
		return -EMSGSIZE;
	later_ihl = 20 + guestlink_copied_options(ip, ihl, NULL);
	if (mtu < GUESTLINK_MTU_MIN || mtu < ihl + 8 || mtu < later_ihl + 8)
		return -EMSGSIZE;
	it->frame = frame;
	it->len = GUESTLINK_ETH_HLEN + tot;
	it->ihl = ihl;
	it->payload = tot - ihl;
	/* Every fragment's payload a multiple of 8, sized by the larger (first) header. */
	it->step = (mtu - ihl) & ~(size_t)7;
	it->base_off = frag & IP_FRAG_OFFSET_MASK;
	it->base_mf = frag & IP_FRAG_MF;
	return 1;
}

size_t guestlink_frag_next(struct guestlink_frag *it, uint8_t *out)
{
	uint8_t *oip = out + GUESTLINK_ETH_HLEN;
	const uint8_t *ip;
	size_t hlen, chunk;
	uint16_t frag, csum;
	bool last;

	if (!it->frame || it->off >= it->payload)
		return 0;
	ip = it->frame + GUESTLINK_ETH_HLEN;
	chunk = it->payload - it->off;
	if (chunk > it->step)
		chunk = it->step;
	last = it->off + chunk == it->payload;

	memcpy(out, it->frame, GUESTLINK_ETH_HLEN);
	if (it->off == 0) {
		hlen = it->ihl;
		memcpy(oip, ip, hlen);
	} else {
		memcpy(oip, ip, 20);
		hlen = 20 + guestlink_copied_options(ip, it->ihl, oip + 20);
		oip[0] = (uint8_t)(0x40 | hlen / 4);
	}
	memcpy(oip + hlen, ip + it->ihl + it->off, chunk);
	be16_write(oip + IP_OFF_TOTLEN, (uint16_t)(hlen + chunk));
	frag = (uint16_t)(it->base_off + it->off / 8);
	if (!last || it->base_mf)
		frag |= IP_FRAG_MF;
	be16_write(oip + IP_OFF_FRAG, frag);
	be16_write(oip + IP_OFF_CSUM, 0);
	csum = csum_fold(csum_add(0, oip, hlen));
	memcpy(oip + IP_OFF_CSUM, &csum, sizeof(csum));
	it->off += chunk;
	return GUESTLINK_ETH_HLEN + hlen + chunk;
}

int guestlink_seg_start(struct guestlink_seg *it, const uint8_t *frame, size_t len,
			unsigned int mtu)
{
	const uint8_t *ip = frame + GUESTLINK_ETH_HLEN;
	size_t ihl, tot, thl;

	memset(it, 0, sizeof(*it));
	if (len < GUESTLINK_ETH_HLEN + 20 || be16_read(frame + 12) != 0x0800 || ip[0] >> 4 != 4 ||
	    len - GUESTLINK_ETH_HLEN <= mtu)
		return 0;
	ihl = guestlink_ip(frame, len, &tot);
	if (!ihl)
		return -EBADMSG;
	if (tot <= mtu || ip[IP_OFF_PROTO] != IP_PROTO_TCP ||
	    (be16_read(ip + IP_OFF_FRAG) & (IP_FRAG_MF | IP_FRAG_OFFSET_MASK)))
		return 0;
	if (tot - ihl < TCP_HLEN)
		return -EBADMSG;
	thl = (size_t)(ip[ihl + 12] >> 4) * 4;
	if (thl < TCP_HLEN || thl > tot - ihl)
		return -EBADMSG;
	if (mtu <= ihl + thl)
		return -EMSGSIZE;
	it->frame = frame;
	it->ihl = ihl;
	it->thl = thl;
	it->payload = tot - ihl - thl;
	it->mss = mtu - ihl - thl;
	return 1;
}

size_t guestlink_seg_next(struct guestlink_seg *it, uint8_t *out)
{
	size_t hlen = GUESTLINK_ETH_HLEN + it->ihl + it->thl, chunk;
	uint8_t *oip = out + GUESTLINK_ETH_HLEN, *otcp = oip + it->ihl;
	const uint8_t *ip;
	uint16_t csum;
	uint32_t sum;

	if (!it->frame || it->off >= it->payload)
		return 0;
	ip = it->frame + GUESTLINK_ETH_HLEN;
	chunk = it->payload - it->off;
	if (chunk > it->mss)
		chunk = it->mss;
	memcpy(out, it->frame, hlen);
	memcpy(out + hlen, it->frame + hlen + it->off, chunk);

	be16_write(oip + IP_OFF_TOTLEN, (uint16_t)(it->ihl + it->thl + chunk));
	be16_write(oip + IP_OFF_ID, (uint16_t)(be16_read(ip + IP_OFF_ID) + it->index));
	be16_write(oip + IP_OFF_CSUM, 0);
	csum = csum_fold(csum_add(0, oip, it->ihl));
	memcpy(oip + IP_OFF_CSUM, &csum, sizeof(csum));

	be32_write(otcp + TCP_OFF_SEQ, be32_read(ip + it->ihl + TCP_OFF_SEQ) + (uint32_t)it->off);
	if (it->off + chunk < it->payload)
		otcp[TCP_OFF_FLAGS] &= (uint8_t)~(TCP_FLAG_FIN | TCP_FLAG_PSH);
	if (it->index)
		otcp[TCP_OFF_FLAGS] &= (uint8_t)~TCP_FLAG_CWR;
	be16_write(otcp + TCP_OFF_CSUM, 0);
	sum = csum_pseudo4(oip + 12, IP_PROTO_TCP, (uint16_t)(it->thl + chunk));
	csum = csum_fold(csum_add(sum, otcp, it->thl + chunk));
	memcpy(otcp + TCP_OFF_CSUM, &csum, sizeof(csum));

	it->off += chunk;
	it->index++;
	return hlen + chunk;
}
