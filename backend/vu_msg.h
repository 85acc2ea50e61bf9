/* vu_msg.h - vhost-user message codec: header, per-request payload and fd rules, replies (pure, no I/O). */
#ifndef MESHSLIRP_BACKEND_VU_MSG_H
#define MESHSLIRP_BACKEND_VU_MSG_H

/*
 * Theory of operation
 *
 * A vhost-user message (QEMU docs/interop/vhost-user.rst, "Message
 * Specification") is a 12-byte header in host byte order -- request (u32),
 * flags (u32: version in bits 0-1, REPLY bit 2, NEED_REPLY bit 3, the rest
 * reserved and zero), payload size (u32) -- then the payload, with file
 * descriptors riding as SCM_RIGHTS ancillary data on the first byte of the
 * header.
 *
 * This module only judges bytes.  vu_msg_frame_len() tells the reader how
 * long the message that starts a buffer is (or that its size field is one
 * no front-end may send: the stream is then out of sync and the connection
 * is closed).  vu_msg_parse() checks one complete message against the rules
 * of its request -- known request, exact payload size, exact number of fds,
 * vring index in range, memory table count -- and fills struct vu_msg.
 * Every rejection comes with a static string naming the broken rule, for
 * the one log line the caller writes before closing the connection.
 * Semantic checks that need state (ring sizes, region overlaps, setup
 * order) belong to vu_mem.c, virtqueue.c and vhost_user.c.
 *
 * Fd ownership: the caller owns the received fds until vu_msg_parse()
 * succeeds; then every one of them belongs to the message (msg->fds, in
 * the order received) and the caller must take or close each exactly once.
 * On failure the caller still owns them all and closes them.  The codec
 * never opens, closes or duplicates a descriptor.
 *
 * Limits: payloads above VU_PAYLOAD_MAX (a full memory table) and more than
 * VU_MAX_FDS descriptors per message are refused; there are at most
 * VU_MAX_REGIONS memory regions (VHOST_MEMORY_BASELINE_NREGIONS: we do not
 * offer CONFIGURE_MEM_SLOTS) and VU_NUM_QUEUES vrings (one queue pair, no MQ).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Requests (front-end to back-end) this back-end knows by number. */
enum vu_request {
	VU_REQ_NONE = 0,
	VU_REQ_GET_FEATURES = 1,
	VU_REQ_SET_FEATURES = 2,
	VU_REQ_SET_OWNER = 3,
	VU_REQ_RESET_OWNER = 4,
	VU_REQ_SET_MEM_TABLE = 5,
	VU_REQ_SET_LOG_BASE = 6,
	VU_REQ_SET_LOG_FD = 7,
	VU_REQ_SET_VRING_NUM = 8,
	VU_REQ_SET_VRING_ADDR = 9,
	VU_REQ_SET_VRING_BASE = 10,
	VU_REQ_GET_VRING_BASE = 11,
	VU_REQ_SET_VRING_KICK = 12,
	VU_REQ_SET_VRING_CALL = 13,
	VU_REQ_SET_VRING_ERR = 14,
	VU_REQ_GET_PROTOCOL_FEATURES = 15,
	VU_REQ_SET_PROTOCOL_FEATURES = 16,
	VU_REQ_GET_QUEUE_NUM = 17,
	VU_REQ_SET_VRING_ENABLE = 18,
	VU_REQ_SEND_RARP = 19,
	VU_REQ_NET_SET_MTU = 20,
	VU_REQ_RESET_DEVICE = 34,
	VU_REQ_MAX = 64,            /* names and counters are kept below this */
};

/* Header flags. */
#define VU_FLAG_VERSION_MASK        0x3u
#define VU_VERSION                  0x1u
#define VU_FLAG_REPLY               (1u << 2)
#define VU_FLAG_NEED_REPLY          (1u << 3)
#define VU_FLAG_KNOWN               (VU_FLAG_VERSION_MASK | VU_FLAG_REPLY | VU_FLAG_NEED_REPLY)

/* The vhost-user-specific feature bits. */
#define VHOST_F_LOG_ALL                     26
#define VHOST_USER_F_PROTOCOL_FEATURES      30

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
#define VU_PROTOCOL_F_MQ                    0
#define VU_PROTOCOL_F_LOG_SHMFD             1
#define VU_PROTOCOL_F_RARP                  2
#define VU_PROTOCOL_F_REPLY_ACK             3
#define VU_PROTOCOL_F_NET_MTU               4
#define VU_PROTOCOL_F_BACKEND_REQ           5
#define VU_PROTOCOL_F_CONFIG                9
#define VU_PROTOCOL_F_RESET_DEVICE          13
#define VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS   15

/* SET_VRING_KICK/CALL/ERR payload: vring index in bits 0-7, "no fd" in bit 8. */
#define VU_VRING_INDEX_MASK         0xffull
#define VU_VRING_NOFD               (1ull << 8)

/* SET_VRING_ADDR flags: the used ring's writes are logged at log_guest_addr. */
#define VU_VRING_F_LOG              1u

#define VU_HDR_SIZE                 12
#define VU_MAX_REGIONS              8   /* VHOST_MEMORY_BASELINE_NREGIONS */
#define VU_MAX_FDS                  VU_MAX_REGIONS
#define VU_NUM_QUEUES               2   /* RX (0) and TX (1) */
#define VU_MEM_HDR_SIZE             8   /* nregions, padding */
#define VU_MEM_REGION_SIZE          32
#define VU_PAYLOAD_MAX              (VU_MEM_HDR_SIZE + VU_MAX_REGIONS * VU_MEM_REGION_SIZE)
#define VU_MSG_MAX                  (VU_HDR_SIZE + VU_PAYLOAD_MAX)
#define VU_U64_SIZE                 8
#define VU_STATE_SIZE               8
#define VU_ADDR_SIZE                40
#define VU_LOG_SIZE                 16

/* One region of SET_MEM_TABLE, as sent. */
struct vu_region_desc {
	uint64_t gpa;               /* guest physical address */
	uint64_t size;
	uint64_t uva;               /* the front-end's virtual address */
	uint64_t mmap_offset;       /* where the region starts in its fd */
};

/* One parsed request.  Which payload member is valid depends on @request. */
struct vu_msg {
	uint32_t request;           /* enum vu_request */
	uint32_t flags;
	uint32_t size;              /* payload bytes */
	bool need_reply;            /* NEED_REPLY set (REPLY_ACK) */
	union {
		uint64_t u64;       /* features, MTU, RARP MAC */
		struct {
			uint32_t index;
			uint32_t num;
		} state;            /* SET_VRING_NUM/BASE, GET_VRING_BASE, SET_VRING_ENABLE */
		struct {
			uint32_t index;
			uint32_t flags; /* VU_VRING_F_LOG */
			uint64_t desc, used, avail, log; /* front-end addresses; log is a GPA */
		} addr;             /* SET_VRING_ADDR */
		struct {
			uint32_t nregions;
			struct vu_region_desc regions[VU_MAX_REGIONS];
		} mem;              /* SET_MEM_TABLE */
		struct {
			uint64_t mmap_size;
			uint64_t mmap_offset;
		} log;              /* SET_LOG_BASE */
		struct {
			uint32_t index;
			bool nofd;
		} vring_fd;         /* SET_VRING_KICK/CALL/ERR */
	} u;
	int fds[VU_MAX_FDS];        /* owned once parsed; -1 when taken */
	unsigned int nfds;
};

/**
 * vu_msg_frame_len() - how long is the message at the start of @buf?
 * @buf:	received bytes
 * @len:	how many
 * @total:	set to header + payload size once the header is complete
 * @why:	set to a static reason on -EPROTO
 *
 * Return: 1 with @total set, 0 if fewer than VU_HDR_SIZE bytes are there,
 * -EPROTO if the size field exceeds VU_PAYLOAD_MAX (no request we handle
 * is that large; the stream cannot be resynchronised).
 */
int vu_msg_frame_len(const uint8_t *buf, size_t len, size_t *total, const char **why);

/**
 * vu_msg_parse() - validate one complete message and its fds
 * @buf:	the message, exactly header + payload (@len from vu_msg_frame_len())
 * @len:	its length
 * @fds:	descriptors received with it (not closed, not kept on failure)
 * @nfds:	how many, at most VU_MAX_FDS
 * @msg:	filled in; on success it owns every fd in @fds
 * @why:	set to a static reason on failure
 *
 * Return: 0, -EPROTO for a malformed or unknown message, -EBADMSG for a
 * wrong number of fds, -ERANGE for a vring index or region count out of
 * range.
 */
int vu_msg_parse(const uint8_t *buf, size_t len, const int *fds, unsigned int nfds,
		 struct vu_msg *msg, const char **why);

/**
 * vu_msg_encode_reply() - write a reply to @request with @payload
 * @request:	the request answered (echoed in the header)
 * @payload:	@size bytes, host byte order as the front-end expects
 * @size:	at most VU_PAYLOAD_MAX
 * @out:	buffer of @cap bytes
 *
 * Return: bytes written (VU_HDR_SIZE + @size), or 0 if @out is too small.
 */
size_t vu_msg_encode_reply(uint32_t request, const void *payload, uint32_t size,
			   uint8_t *out, size_t cap);

/* vu_msg_encode_u64_reply() - a reply carrying one u64 (features, REPLY_ACK status). */
size_t vu_msg_encode_u64_reply(uint32_t request, uint64_t v, uint8_t *out, size_t cap);

/* vu_msg_encode_state_reply() - a reply carrying a vring state (GET_VRING_BASE). */
size_t vu_msg_encode_state_reply(uint32_t request, uint32_t index, uint32_t num,
				 uint8_t *out, size_t cap);

/* vu_request_str() - a request's name for logs ("UNKNOWN" for others). */
const char *vu_request_str(uint32_t request);

/* vu_msg_fd_count() - the fds @msg must carry: what vu_msg_parse() enforced. */
unsigned int vu_msg_fd_count(const struct vu_msg *msg);

#endif /* MESHSLIRP_BACKEND_VU_MSG_H */
