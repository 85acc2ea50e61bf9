/* virtio_wire.h - virtio 1.x split-ring, virtio-net and vhost-user wire formats, for the test peers. */
#ifndef MESHSLIRP_TESTS_VIRTIO_WIRE_H
#define MESHSLIRP_TESTS_VIRTIO_WIRE_H

/*
 * Written from the specifications only (OASIS virtio 1.x: 2.6 "Split
 * Virtqueues", 5.1 "Network Device"; QEMU docs/interop/vhost-user.rst),
 * for the test front-end (vufront.c) and the test device (vudev.c).  Nothing
 * here is shared with the daemon's vhost-user backend: the tests check that
 * backend against a second reading of the same documents.
 *
 * Every multi-byte field in guest memory is little-endian (VERSION_1, and
 * the legacy layout on x86, the only host these tests run on); vhost-user
 * messages are in the host's native order.  The ring structures are only
 * ever reached through the accessors at the end of this file, which use
 * atomic loads and stores: the other side of the ring runs concurrently,
 * in another thread or process.
 */

#include <stdbool.h>
#include <stdint.h>

/* --- virtio feature bits (bit numbers) --- */
#define VIRTIO_NET_F_CSUM 0           /* device takes partial checksums (driver -> device) */
#define VIRTIO_NET_F_GUEST_CSUM 1     /* driver takes partial checksums */
#define VIRTIO_NET_F_MTU 3            /* device reports an MTU */
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7     /* driver takes TCPv4 GSO frames */
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11     /* device takes TCPv4 GSO frames */
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15     /* a received frame may span several buffers */
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_F_CTRL_VQ 17
#define VIRTIO_NET_F_GUEST_ANNOUNCE 21
#define VIRTIO_NET_F_MQ 22
#define VHOST_F_LOG_ALL 26            /* vhost: log every write to guest memory */
#define VIRTIO_F_ANY_LAYOUT 27
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_IOMMU_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_F_IN_ORDER 35

#define VU_BIT(b) (1ULL << (b))

/* --- vhost-user protocol feature bits --- */
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD 1
#define VHOST_USER_PROTOCOL_F_RARP 2
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_NET_MTU 4
#define VHOST_USER_PROTOCOL_F_BACKEND_REQ 5
#define VHOST_USER_PROTOCOL_F_CONFIG 9
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE 13
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15
#define VHOST_USER_PROTOCOL_F_STATUS 16

/* --- vhost-user front-end requests --- */
enum vhost_user_request {
	VHOST_USER_NONE = 0,
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
};

/* Header flags: version in bits 0-1, REPLY (bit 2), NEED_REPLY (bit 3). */
#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_FLAG_REPLY 0x4u
#define VHOST_USER_FLAG_NEED_REPLY 0x8u

/* SET_VRING_KICK/CALL/ERR payload: vring index in bits 0-7, "no fd" in bit 8. */
#define VHOST_USER_VRING_IDX_MASK 0xffull
#define VHOST_USER_VRING_NOFD 0x100ull

/* SET_VRING_ADDR flags: log writes to the used ring at log_guest_addr. */
#define VHOST_VRING_F_LOG 0x1u

#define VHOST_USER_MAX_REGIONS 8      /* SET_MEM_TABLE carries up to 8 */
#define VHOST_USER_HDR_SIZE 12
#define VHOST_LOG_PAGE 4096ull        /* one dirty bit per 4 KiB of guest memory */

struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;                /* payload bytes that follow */
};

struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags;               /* VHOST_VRING_F_LOG */
	uint64_t desc_user_addr;      /* front-end's user addresses of the three parts */
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;      /* guest address the used ring is logged at */
};

struct vhost_user_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;         /* offset of the region in its fd */
};

struct vhost_user_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_region regions[VHOST_USER_MAX_REGIONS];
};

struct vhost_user_log {
	uint64_t size;                /* bytes of bitmap */
	uint64_t offset;              /* where in the fd the bitmap starts */
};

/* Largest payload either test peer sends or accepts on the control socket. */
#define VHOST_USER_PAYLOAD_MAX 4096

/* --- split virtqueue (virtio 1.x, 2.6) --- */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1
#define VRING_QUEUE_MAX 32768         /* largest queue size the spec allows */
#define VRING_DESC_ALIGN 16
#define VRING_AVAIL_ALIGN 2
#define VRING_USED_ALIGN 4

struct vring_desc {
	uint64_t addr;                /* guest physical address */
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];              /* then le16 used_event (EVENT_IDX) */
};

struct vring_used_elem {
	uint32_t id;                  /* head of the chain */
	uint32_t len;                 /* bytes the device wrote */
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[]; /* then le16 avail_event (EVENT_IDX) */
};

static inline uint64_t vring_desc_bytes(unsigned int num) { return 16ull * num; }
static inline uint64_t vring_avail_bytes(unsigned int num) { return 4 + 2ull * num + 2; }
static inline uint64_t vring_used_bytes(unsigned int num) { return 4 + 8ull * num + 2; }

/*
 * vring_need_event() - whether moving an index from @old to @new passed
 * @event, the other side's "tell me when you reach this" (2.6.7.2/2.6.10):
 * true iff @event lies in [old, new) modulo 2^16.
 */
static inline bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

/* The EVENT_IDX words that trail each ring. */
static inline uint16_t *vring_used_event(struct vring_avail *avail, unsigned int num)
{
	return &avail->ring[num];
}

static inline uint16_t *vring_avail_event(struct vring_used *used, unsigned int num)
{
	return (uint16_t *)&used->ring[num];
}

/* Shared-memory accessors: the peer reads and writes these concurrently. */
static inline uint16_t vring_load16(const uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void vring_store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Full barrier: a store (index, event) must be visible before the next load. */
static inline void vring_mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* --- virtio-net header (5.1.6) --- */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_F_RSC_INFO 4
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP 3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN 0x80

#define VIRTIO_NET_HDR_LEN 12         /* with num_buffers: VERSION_1 or MRG_RXBUF */
#define VIRTIO_NET_HDR_LEN_LEGACY 10  /* neither */

struct virtio_net_hdr_v1 {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;         /* receive only; 0 on transmit */
};

_Static_assert(sizeof(struct vring_desc) == 16, "descriptor size");
_Static_assert(sizeof(struct vring_used_elem) == 8, "used element size");
_Static_assert(sizeof(struct vhost_user_hdr) == VHOST_USER_HDR_SIZE, "vhost-user header");
_Static_assert(sizeof(struct vhost_user_vring_addr) == 40, "vring address payload");
_Static_assert(sizeof(struct vhost_user_mem_table) == 8 + 8 * 32, "memory table payload");
_Static_assert(sizeof(struct virtio_net_hdr_v1) == VIRTIO_NET_HDR_LEN, "virtio-net header");

#endif /* MESHSLIRP_TESTS_VIRTIO_WIRE_H */
