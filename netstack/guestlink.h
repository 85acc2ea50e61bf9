/* guestlink.h - fit frames for the guest's link: its MTU in DHCP, IPv4 fragments (pure, no I/O). */
#ifndef MESHSLIRP_NETSTACK_GUESTLINK_H
#define MESHSLIRP_NETSTACK_GUESTLINK_H

/*
 * meshslirp terminates the guest's TCP, so the guest's link MTU need not be
 * the pod's, nor libslirp's: libslirp always runs at NETSTACK_SLIRP_MTU
 * (65520), which lets it send the guest large TCP segments whenever the
 * guest can take them (its MTU, or segmentation offload).  Two things then
 * depend on the guest's own MTU, and this module does their byte work:
 *
 *  - the guest must learn it: guestlink_dhcp_set_mtu() adds option 26
 *    (Interface MTU, RFC 2132) to libslirp's DHCP OFFER and ACK, which carry
 *    none of their own (slirp quirk dhcp_no_mtu_option).  The option goes where libslirp put END; the reply's
 *    options area is fixed-size (DHCP_OPT_LEN bytes past the BOOTP header),
 *    so the frame's length does not change.  The UDP checksum is recomputed.
 *  - nothing but TCP may exceed it: a UDP datagram or ICMP message larger
 *    than the guest's MTU (a 4 KiB DNS answer at 1500) is cut into IPv4
 *    fragments, one at a time into a caller's buffer (struct
 *    guestlink_frag).  TCP segments need it only when libslirp was let send
 *    large ones for a guest that then could not take them whole
 *    (struct guestlink_seg; see backend/offload.h): they are cut as a
 *    NIC's segmentation offload would cut them.
 *
 * Frames are Ethernet + IPv4; every length is checked against the frame;
 * nothing is allocated.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUESTLINK_ETH_HLEN 14
#define GUESTLINK_DHCP_OPT_MTU 26
#define GUESTLINK_MTU_MIN 576       /* IPv4's minimum reassembly size, and DHCP's floor */

/**
 * guestlink_dhcp_set_mtu() - add "Interface MTU" to a DHCP reply from libslirp
 * @frame, @len:	the frame, rewritten in place
 * @mtu:		the guest's link MTU
 *
 * Return: 0 when the option was added, -ENOENT for a frame that is no DHCP
 * reply (BOOTREPLY from port 67 to 68 with the magic cookie), -EEXIST if it
 * already carries option 26, -ENOSPC when the options area has no room,
 * -EBADMSG for options that run past the frame.  The frame is unchanged
 * unless 0 is returned.
 */
int guestlink_dhcp_set_mtu(uint8_t *frame, size_t len, uint16_t mtu);

/* An IPv4 packet being cut into fragments for a link of @mtu bytes. */
struct guestlink_frag {
	const uint8_t *frame;       /* the whole frame (borrowed) */
	size_t len;
	size_t ihl;                 /* its IPv4 header length */
	size_t payload;             /* IP payload bytes */
	size_t step;                /* payload bytes per fragment, a multiple of 8 */
	size_t off;                 /* payload offset of the next fragment */
	uint16_t base_off;          /* the packet's own fragment offset (8-byte units) */
	bool base_mf;               /* the packet's own More Fragments bit */
};

/**
 * guestlink_frag_start() - prepare to cut @frame for a link MTU of @mtu
 *
 * Return: 1 when the frame must be cut, 0 when it fits as it is (or is not
 * IPv4: nothing to do), -EMSGSIZE when it is too big but Don't Fragment is
 * set (the caller drops it and counts), -EBADMSG for IPv4 whose lengths lie.
 */
int guestlink_frag_start(struct guestlink_frag *it, const uint8_t *frame, size_t len,
			 unsigned int mtu);

/**
 * guestlink_frag_next() - write the next fragment into @out
 * @out:	at least GUESTLINK_ETH_HLEN + mtu bytes
 *
 * The first fragment carries the whole IP header; later ones only the
 * options marked "copied" (RFC 791).  Each gets its offset, More Fragments
 * bit, total length and header checksum.
 *
 * Return: the fragment's frame length, or 0 after the last one.
 */
size_t guestlink_frag_next(struct guestlink_frag *it, uint8_t *out);

/* A TCP segment being cut into segments that fit a link of @mtu bytes. */
struct guestlink_seg {
	const uint8_t *frame;       /* the whole segment (borrowed) */
	size_t ihl, thl;            /* its IPv4 and TCP header lengths */
	size_t payload;             /* TCP payload bytes */
	size_t mss;                 /* payload bytes per segment */
	size_t off;                 /* payload offset of the next segment */
	unsigned int index;         /* segments written so far */
};

/**
 * guestlink_seg_start() - prepare to cut TCP segment @frame for a link MTU of @mtu
 *
 * What a guest that takes no segmentation offload needs when libslirp sent a
 * segment sized for one that did (offload.h): the same bytes, in segments of
 * the MSS the link allows, as the guest's NIC would have cut them.
 *
 * Return: 1 when the segment must be cut, 0 when it fits (or is not an
 * unfragmented IPv4 TCP segment: nothing to do), -EBADMSG for headers whose
 * lengths lie, -EMSGSIZE when @mtu cannot hold its headers and one byte.
 */
int guestlink_seg_start(struct guestlink_seg *it, const uint8_t *frame, size_t len,
			unsigned int mtu);

/**
 * guestlink_seg_next() - write the next segment into @out
 * @out:	at least GUESTLINK_ETH_HLEN + mtu bytes
 *
 * Each segment repeats the headers (options included) with its own sequence
 * number, total length, IP identification (the original's plus its index)
 * and both checksums; FIN and PSH stay on the last one only, CWR on the
 * first only.
 *
 * Return: the segment's frame length, or 0 after the last one.
 */
size_t guestlink_seg_next(struct guestlink_seg *it, uint8_t *out);

#endif /* MESHSLIRP_NETSTACK_GUESTLINK_H */
