/* virtio_net.h - virtio 1.x constants and layouts: feature bits, the virtio-net header, split rings. */
#ifndef MESHSLIRP_BACKEND_VIRTIO_NET_H
#define MESHSLIRP_BACKEND_VIRTIO_NET_H

/*
 * Written from the virtio 1.x specification (sections 2.7 "Split
 * Virtqueues", 5.1 "Network Device", 6 "Reserved Feature Bits").  Every
 * field the guest shares with us is little-endian (VIRTIO_F_VERSION_1 is
 * mandatory here, so there is no legacy guest-endian mode); the accessors
 * below read and write guest memory as bytes, so they work whatever the
 * alignment and host byte order.
 */

#include <stdint.h>

/* Feature bit numbers (virtio 1.x section 5.1.3 and 6; vhost's own in vu_msg.h). */
#define VIRTIO_NET_F_CSUM               0   /* device takes partial checksums */
#define VIRTIO_NET_F_GUEST_CSUM         1   /* driver takes partial checksums */
#define VIRTIO_NET_F_MTU                3   /* device reports its maximum MTU */
#define VIRTIO_NET_F_MAC                5
#define VIRTIO_NET_F_GUEST_TSO4         7
#define VIRTIO_NET_F_GUEST_TSO6         8
#define VIRTIO_NET_F_GUEST_UFO          10
#define VIRTIO_NET_F_HOST_TSO4          11
#define VIRTIO_NET_F_HOST_TSO6          12
#define VIRTIO_NET_F_HOST_UFO           14
#define VIRTIO_NET_F_MRG_RXBUF          15  /* receive buffers may be merged (num_buffers) */
#define VIRTIO_NET_F_STATUS             16
#define VIRTIO_NET_F_CTRL_VQ            17
#define VIRTIO_NET_F_MQ                 22
#define VIRTIO_F_NOTIFY_ON_EMPTY        24
#define VIRTIO_F_ANY_LAYOUT             27
#define VIRTIO_RING_F_INDIRECT_DESC     28  /* descriptors may point at descriptor tables */
#define VIRTIO_RING_F_EVENT_IDX         29  /* used_event / avail_event suppression */
#define VIRTIO_F_VERSION_1              32  /* virtio 1.x: little-endian, 12-byte net header */

/* A feature bit as a mask. */
#define VIRTIO_BIT(n) (1ull << (n))

/* struct virtio_net_hdr_v1 flags and gso_type (5.1.6). */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM     1
#define VIRTIO_NET_HDR_F_DATA_VALID     2
#define VIRTIO_NET_HDR_GSO_NONE         0
#define VIRTIO_NET_HDR_GSO_TCPV4        1
#define VIRTIO_NET_HDR_GSO_UDP          3
#define VIRTIO_NET_HDR_GSO_TCPV6        4
#define VIRTIO_NET_HDR_GSO_ECN          0x80

/*
 * The header in front of every frame in both directions once VERSION_1 is
 * negotiated (num_buffers is always present in 1.x).  All fields
 * little-endian.
 */
struct virtio_net_hdr_v1 {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));

#define VIRTIO_NET_HDR_LEN 12
_Static_assert(sizeof(struct virtio_net_hdr_v1) == VIRTIO_NET_HDR_LEN, "virtio-net header is 12 bytes");
/* Offset of num_buffers, patched after the RX chains of one frame are known. */
#define VIRTIO_NET_HDR_NUM_BUFFERS_OFF 10

/* Split virtqueue (2.7). */
#define VRING_DESC_F_NEXT               1   /* chain continues in @next */
#define VRING_DESC_F_WRITE              2   /* device writes (otherwise reads) */
#define VRING_DESC_F_INDIRECT           4   /* buffer is a table of descriptors */
#define VRING_AVAIL_F_NO_INTERRUPT      1   /* driver: do not signal used buffers */
#define VRING_USED_F_NO_NOTIFY          1   /* device: do not kick for new buffers */

/* Largest queue size of a split virtqueue (2.7: Queue Size is at most 32768). */
#define VRING_MAX_SIZE                  32768

/* Required alignment of each part (2.7, table "Virtqueue Part Alignment"). */
#define VRING_DESC_ALIGN                16
#define VRING_AVAIL_ALIGN               2
#define VRING_USED_ALIGN                4

struct vring_desc {
	uint64_t addr;      /* guest physical address */
	uint32_t len;
	uint16_t flags;     /* VRING_DESC_F_* */
	uint16_t next;
};
#define VRING_DESC_SIZE 16
_Static_assert(sizeof(struct vring_desc) == VRING_DESC_SIZE, "descriptor is 16 bytes");

/* avail: flags, idx, ring[size], used_event.  used: flags, idx, {id, len}[size], avail_event. */
#define VRING_AVAIL_FLAGS_OFF           0
#define VRING_AVAIL_IDX_OFF             2
#define VRING_AVAIL_RING_OFF            4
#define VRING_USED_FLAGS_OFF            0
#define VRING_USED_IDX_OFF              2
#define VRING_USED_RING_OFF             4
#define VRING_USED_ELEM_SIZE            8

/* Bytes of each ring part for a queue of @num entries, event-idx fields included. */
static inline uint64_t vring_desc_bytes(uint32_t num)
{
	return (uint64_t)num * VRING_DESC_SIZE;
}

static inline uint64_t vring_avail_bytes(uint32_t num)
{
	return VRING_AVAIL_RING_OFF + 2ull * num + 2;
}

static inline uint64_t vring_used_bytes(uint32_t num)
{
	return VRING_USED_RING_OFF + (uint64_t)VRING_USED_ELEM_SIZE * num + 2;
}

/*
 * vring_need_event() - the EVENT_IDX rule (2.7.10): after moving an index
 * from @old to @new, notify iff the other side's @event_idx lies in
 * [old, new), with 16-bit wrap-around.
 */
static inline int vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

/* Little-endian readers and writers of possibly unaligned memory. */
static inline uint16_t le16_read(const void *p)
{
	const uint8_t *b = p;

	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t le32_read(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t le64_read(const void *p)
{
	const uint8_t *b = p;

	return (uint64_t)le32_read(b) | (uint64_t)le32_read(b + 4) << 32;
}

static inline void le16_write(void *p, uint16_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void le32_write(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

static inline void le64_write(void *p, uint64_t v)
{
	le32_write(p, (uint32_t)v);
	le32_write((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

#endif /* MESHSLIRP_BACKEND_VIRTIO_NET_H */
