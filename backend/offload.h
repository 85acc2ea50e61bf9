/* offload.h - virtio-net offloads on plain frames: checksums the guest left us, segments it takes whole. */
#ifndef MESHSLIRP_BACKEND_OFFLOAD_H
#define MESHSLIRP_BACKEND_OFFLOAD_H

/*
 * Theory of operation
 *
 * A backend with a virtio-net header (vhost-user, a tap with IFF_VNET_HDR)
 * hands its frames over with struct frame_meta, for the offloads it
 * negotiated (backend.h).  libslirp knows nothing of them: it verifies every
 * checksum it receives (slirp quirk checksums_verified, in
 * netstack/slirp_quirks.h), computes every one it sends, and takes any segment
 * up to its MTU (65520).  These functions translate between the two, in
 * place, with no copy and no allocation.  They are pure: the daemon calls
 * them on its data path, the tests and the fuzzer on any bytes.
 *
 * From the guest, offload_from_guest():
 *   NEEDS_CSUM  the transport checksum holds only the pseudo-header's sum
 *               (as Linux leaves it): completed here, the one pass over the
 *               data the guest saved.
 *   GSO_TCPV4   one IPv4 TCP segment of up to 64 KiB whose total length is
 *               already that of the whole (as Linux builds it): checked to
 *               be exactly that, then given to libslirp whole.  libslirp's
 *               MTU is larger than any such segment, so nothing is cut.
 *
 * Towards the guest, offload_to_guest(), for a frame libslirp built (every
 * checksum complete), by what the guest takes:
 *   TCP, larger than the guest's MTU   GSO_TCPV4 (TSO4), gso_size the MSS
 *                                      its MTU allows;
 *   TCP                                NEEDS_CSUM (CSUM): the checksum field
 *                                      set back to the pseudo-header's sum,
 *                                      so the guest verifies nothing (the
 *                                      spec asks for it with any GSO);
 *   UDP, ICMP (unfragmented)           DATA_VALID (CSUM).
 * A frame larger than the guest's MTU that it cannot take whole is
 * -EMSGSIZE: the netstack then cuts it (guestlink.h).
 *
 * Fewer frames from the guest: a guest that hands us TSO segments sizes them by
 * the MSS libslirp advertises, which offload_clamp_mss() lowers to
 * OFFLOAD_MSS_TSO on libslirp's SYN and SYN-ACK: one TSO frame then carries a
 * whole window (see OFFLOAD_MSS_TSO).
 *
 * Larger segments towards the guest: libslirp sizes its TCP segments by the
 * MSS the guest advertises.  When the guest takes TSO4,
 * offload_raise_mss() raises the MSS option of the guest's SYN (or SYN-ACK)
 * from its link's own (MTU - 40) to OFFLOAD_MSS_RAISED, and libslirp sends
 * segments of up to its TCP_MAXSEG_MAX (32 KiB: slirp quirk maxseg_32k), each one frame and one
 * pass through the rings.  A guest advertising less than its link allows
 * did so on purpose and is left alone.
 *
 * Hostility: every length, offset and flag comes from the guest.  A frame
 * whose headers contradict its meta is refused with -EINVAL (the caller
 * drops and counts it); nothing is read or written outside the frame.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

#define OFFLOAD_ETH_HLEN 14
/* The virtio-net header as both backends carry it (virtio 1.x: with num_buffers), little-endian. */
#define OFFLOAD_VNET_HDR_LEN 12
/* What a raised MSS option says: our side's link (NETSTACK_SLIRP_MTU) minus IPv4 and TCP. */
#define OFFLOAD_MSS_RAISED (65520 - 40)
/*
 * The MSS libslirp advertises to a guest that hands us TSO segments: 44 of them
 * (64,240 bytes) fill one segmentation frame and libslirp's whole 64 KiB window.
 * Its own, 65480, would have Linux bound the MSS to half the window it sees and
 * send two 32 KiB frames per window instead: the per-frame cost (a kick, a pass
 * through libslirp, a write to the sidecar, an ACK) twice.
 */
#define OFFLOAD_MSS_TSO 1460

/**
 * offload_hdr_parse() - the guest's virtio-net header as struct frame_meta
 * @h:		OFFLOAD_VNET_HDR_LEN bytes
 * @frame_len:	the frame's length after the header
 * @offloads:	what the guest may send (BACKEND_OFFLOAD_*)
 * @out:	filled when the frame carries metadata
 * @meta:	set to @out, or NULL for a plain frame
 * @ignored:	set when flags other than NEEDS_CSUM were set: a driver MUST NOT
 *		send DATA_VALID or RSC_INFO and a device MUST ignore bits it does not
 *		recognize (virtio 5.1.6.2), so they are stripped, to be counted
 *
 * Return: 0, or -EINVAL for metadata the guest may not send: an offload not
 * negotiated, a checksum position outside the frame, a GSO type other than
 * TCPv4 or a zero gso_size.
 */
int offload_hdr_parse(const uint8_t *h, size_t frame_len, uint32_t offloads,
		      struct frame_meta *out, const struct frame_meta **meta, bool *ignored);

/* offload_hdr_build() - the virtio-net header for a frame with @meta (NULL: all zeros). */
void offload_hdr_build(uint8_t *h, const struct frame_meta *meta);

/**
 * offload_from_guest() - make a guest frame with offload metadata a plain one
 * @frame, @len:	the frame (Ethernet first), completed in place
 * @meta:	its metadata, as the backend parsed it (flags and GSO type it
 *		negotiated; csum_start + csum_offset + 2 within @len)
 *
 * Return: 0, or -EINVAL when the frame is not what @meta says (a GSO frame
 * that is no sound IPv4 TCP segment of exactly the frame's length, a
 * checksum position outside the IP packet); the frame may then be half
 * changed and must be dropped.
 */
int offload_from_guest(uint8_t *frame, size_t len, const struct frame_meta *meta);

/**
 * offload_to_guest() - the metadata a frame for the guest travels with
 * @frame, @len:	a frame libslirp built (checksums complete); the TCP
 *			checksum is set to the pseudo-header's when NEEDS_CSUM
 *			is chosen
 * @guest_mtu:	the guest link's MTU
 * @offloads:	what the guest takes (BACKEND_OFFLOAD_*)
 * @out:	filled when metadata is chosen
 * @meta:	set to @out, or NULL for a plain frame
 *
 * Return: 0, or -EMSGSIZE for a frame larger than the guest's MTU that it
 * cannot take whole (the frame is then unchanged).
 */
int offload_to_guest(uint8_t *frame, size_t len, unsigned int guest_mtu, uint32_t offloads,
		     struct frame_meta *out, const struct frame_meta **meta);

/**
 * offload_raise_mss() - raise the MSS option of a guest's SYN to OFFLOAD_MSS_RAISED
 * @frame, @len:	a complete frame from the guest, rewritten in place
 * @guest_mtu:	the guest link's MTU
 *
 * Only a SYN whose MSS is exactly @guest_mtu - 40 is raised; its checksum
 * is updated.
 *
 * Return: 1 if raised, 0 if the frame is left as it is.
 */
int offload_raise_mss(uint8_t *frame, size_t len, unsigned int guest_mtu);

/**
 * offload_clamp_mss() - lower the MSS option of a SYN (or SYN-ACK) to @max
 * @frame, @len:	a complete frame, rewritten in place (checksum updated)
 *
 * Return: 1 if lowered, 0 if the frame is left as it is.
 */
int offload_clamp_mss(uint8_t *frame, size_t len, uint16_t max);

#endif /* MESHSLIRP_BACKEND_OFFLOAD_H */
