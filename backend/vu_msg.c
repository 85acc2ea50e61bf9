/* vu_msg.c - vhost-user message codec: header, per-request payload and fd rules, replies (pure, no I/O). */

#include "vu_msg.h"

#include <errno.h>
#include <string.h>

_Static_assert(VU_PAYLOAD_MAX == 264, "log text says 264");

/* Host-order readers: vhost-user messages use the machine's byte order. */
static uint32_t vu_rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t vu_rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void vu_wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* What a request's payload must look like. */
enum vu_payload {
	VU_PL_NONE,         /* size 0 */
	VU_PL_U64,          /* 8 bytes */
	VU_PL_STATE,        /* index, num */
	VU_PL_ADDR,         /* struct vhost_vring_addr */
	VU_PL_MEM,          /* memory table, 1..8 regions */
	VU_PL_LOG,          /* mmap size and offset, one fd */
	VU_PL_VRING_FD,     /* u64 index | NOFD, one fd unless NOFD */
};

struct vu_req_info {
	const char *name;
	enum vu_payload payload;
};

/* Requests we serve; anything else is refused as unknown (see vhost_user.c). */
static const struct vu_req_info vu_req_table[VU_REQ_MAX] = {
	[VU_REQ_GET_FEATURES] = { "GET_FEATURES", VU_PL_NONE },
	[VU_REQ_SET_FEATURES] = { "SET_FEATURES", VU_PL_U64 },
	[VU_REQ_SET_OWNER] = { "SET_OWNER", VU_PL_NONE },
	[VU_REQ_RESET_OWNER] = { "RESET_OWNER", VU_PL_NONE },
	[VU_REQ_SET_MEM_TABLE] = { "SET_MEM_TABLE", VU_PL_MEM },
	[VU_REQ_SET_LOG_BASE] = { "SET_LOG_BASE", VU_PL_LOG },
	[VU_REQ_SET_VRING_NUM] = { "SET_VRING_NUM", VU_PL_STATE },
	[VU_REQ_SET_VRING_ADDR] = { "SET_VRING_ADDR", VU_PL_ADDR },
	[VU_REQ_SET_VRING_BASE] = { "SET_VRING_BASE", VU_PL_STATE },
	[VU_REQ_GET_VRING_BASE] = { "GET_VRING_BASE", VU_PL_STATE },
	[VU_REQ_SET_VRING_KICK] = { "SET_VRING_KICK", VU_PL_VRING_FD },
	[VU_REQ_SET_VRING_CALL] = { "SET_VRING_CALL", VU_PL_VRING_FD },
	[VU_REQ_SET_VRING_ERR] = { "SET_VRING_ERR", VU_PL_VRING_FD },
	[VU_REQ_GET_PROTOCOL_FEATURES] = { "GET_PROTOCOL_FEATURES", VU_PL_NONE },
	[VU_REQ_SET_PROTOCOL_FEATURES] = { "SET_PROTOCOL_FEATURES", VU_PL_U64 },
	[VU_REQ_GET_QUEUE_NUM] = { "GET_QUEUE_NUM", VU_PL_NONE },
	[VU_REQ_SET_VRING_ENABLE] = { "SET_VRING_ENABLE", VU_PL_STATE },
	[VU_REQ_SEND_RARP] = { "SEND_RARP", VU_PL_U64 },
	[VU_REQ_NET_SET_MTU] = { "NET_SET_MTU", VU_PL_U64 },
	[VU_REQ_RESET_DEVICE] = { "RESET_DEVICE", VU_PL_NONE },
};

/* Names of requests we know but do not serve, for a useful log line. */
static const char *const vu_other_names[VU_REQ_MAX] = {
	[VU_REQ_SET_LOG_FD] = "SET_LOG_FD",
	[21] = "SET_BACKEND_REQ_FD", [22] = "IOTLB_MSG", [23] = "SET_VRING_ENDIAN",
	[24] = "GET_CONFIG", [25] = "SET_CONFIG", [26] = "CREATE_CRYPTO_SESSION",
	[27] = "CLOSE_CRYPTO_SESSION", [28] = "POSTCOPY_ADVISE", [29] = "POSTCOPY_LISTEN",
	[30] = "POSTCOPY_END", [31] = "GET_INFLIGHT_FD", [32] = "SET_INFLIGHT_FD",
	[33] = "GPU_SET_SOCKET", [35] = "VRING_KICK", [36] = "GET_MAX_MEM_SLOTS",
	[37] = "ADD_MEM_REG", [38] = "REM_MEM_REG", [39] = "SET_STATUS", [40] = "GET_STATUS",
};

const char *vu_request_str(uint32_t request)
{
	if (request >= VU_REQ_MAX)
		return "UNKNOWN";
	if (vu_req_table[request].name)
		return vu_req_table[request].name;
	return vu_other_names[request] ? vu_other_names[request] : "UNKNOWN";
}

int vu_msg_frame_len(const uint8_t *buf, size_t len, size_t *total, const char **why)
{
	uint32_t size;

	if (len < VU_HDR_SIZE)
		return 0;
	size = vu_rd32(buf + 8);
	if (size > VU_PAYLOAD_MAX) {
		*why = "payload size larger than any request we handle (264 bytes)";
		return -EPROTO;
	}
	*total = VU_HDR_SIZE + (size_t)size;
	return 1;
}

/* The memory table: count in range, exact size, one fd per region. */
static int vu_parse_mem(const uint8_t *pl, uint32_t size, unsigned int nfds,
			struct vu_msg *msg, const char **why)
{
	uint32_t n;

	if (size < VU_MEM_HDR_SIZE) {
		*why = "SET_MEM_TABLE shorter than its region count";
		return -EPROTO;
	}
	n = vu_rd32(pl);
	if (n == 0 || n > VU_MAX_REGIONS) {
		*why = "SET_MEM_TABLE region count not 1..8";
		return -ERANGE;
	}
	if (size != VU_MEM_HDR_SIZE + n * VU_MEM_REGION_SIZE) {
		*why = "SET_MEM_TABLE size does not match its region count";
		return -EPROTO;
	}
	if (nfds != n) {
		*why = "SET_MEM_TABLE needs exactly one fd per region";
		return -EBADMSG;
	}
	msg->u.mem.nregions = n;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *r = pl + VU_MEM_HDR_SIZE + i * VU_MEM_REGION_SIZE;

		msg->u.mem.regions[i].gpa = vu_rd64(r);
		msg->u.mem.regions[i].size = vu_rd64(r + 8);
		msg->u.mem.regions[i].uva = vu_rd64(r + 16);
		msg->u.mem.regions[i].mmap_offset = vu_rd64(r + 24);
	}
	return 0;
}

/* Payload of a known request by its kind; fd counts for all but the memory table. */
static int vu_parse_payload(enum vu_payload kind, const uint8_t *pl, uint32_t size,
			    unsigned int nfds, struct vu_msg *msg, const char **why)
{
	static const uint32_t sizes[] = {
		[VU_PL_NONE] = 0, [VU_PL_U64] = VU_U64_SIZE, [VU_PL_STATE] = VU_STATE_SIZE,
		[VU_PL_ADDR] = VU_ADDR_SIZE, [VU_PL_LOG] = VU_LOG_SIZE,
		[VU_PL_VRING_FD] = VU_U64_SIZE,
	};
	unsigned int want_fds = 0;
	uint64_t v;

	if (kind == VU_PL_MEM)
		return vu_parse_mem(pl, size, nfds, msg, why);
	if (size != sizes[kind]) {
		*why = "payload size wrong for this request";
		return -EPROTO;
	}
	switch (kind) {
	case VU_PL_NONE:
		break;
	case VU_PL_U64:
		msg->u.u64 = vu_rd64(pl);
		break;
	case VU_PL_STATE:
		msg->u.state.index = vu_rd32(pl);
		msg->u.state.num = vu_rd32(pl + 4);
		if (msg->u.state.index >= VU_NUM_QUEUES) {
			*why = "vring index out of range (one queue pair)";
			return -ERANGE;
		}
		break;
	case VU_PL_ADDR:
		msg->u.addr.index = vu_rd32(pl);
		msg->u.addr.flags = vu_rd32(pl + 4);
		msg->u.addr.desc = vu_rd64(pl + 8);
		msg->u.addr.used = vu_rd64(pl + 16);
		msg->u.addr.avail = vu_rd64(pl + 24);
		msg->u.addr.log = vu_rd64(pl + 32);
		if (msg->u.addr.index >= VU_NUM_QUEUES) {
			*why = "vring index out of range (one queue pair)";
			return -ERANGE;
		}
		if (msg->u.addr.flags & ~VU_VRING_F_LOG) {
			*why = "SET_VRING_ADDR has unknown flags";
			return -EPROTO;
		}
		break;
	case VU_PL_LOG:
		msg->u.log.mmap_size = vu_rd64(pl);
		msg->u.log.mmap_offset = vu_rd64(pl + 8);
		want_fds = 1;
		break;
	case VU_PL_VRING_FD:
		v = vu_rd64(pl);
		if (v & ~(VU_VRING_INDEX_MASK | VU_VRING_NOFD)) {
			*why = "vring fd message has unknown bits";
			return -EPROTO;
		}
		msg->u.vring_fd.index = (uint32_t)(v & VU_VRING_INDEX_MASK);
		msg->u.vring_fd.nofd = !!(v & VU_VRING_NOFD);
		if (msg->u.vring_fd.index >= VU_NUM_QUEUES) {
			*why = "vring index out of range (one queue pair)";
			return -ERANGE;
		}
		want_fds = msg->u.vring_fd.nofd ? 0 : 1;
		break;
	case VU_PL_MEM:
		break; /* handled above */
	}
	if (nfds != want_fds) {
		*why = want_fds ? "request needs exactly one fd" : "request carries fds it may not";
		return -EBADMSG;
	}
	return 0;
}

int vu_msg_parse(const uint8_t *buf, size_t len, const int *fds, unsigned int nfds,
		 struct vu_msg *msg, const char **why)
{
	const struct vu_req_info *info;
	size_t total;
	int ret;

	memset(msg, 0, sizeof(*msg));
	for (unsigned int i = 0; i < VU_MAX_FDS; i++)
		msg->fds[i] = -1;
	if (nfds > VU_MAX_FDS) {
		*why = "more fds than any request carries";
		return -EBADMSG;
	}
	ret = vu_msg_frame_len(buf, len, &total, why);
	if (ret == 0 || (ret > 0 && total != len)) {
		*why = "message length does not match its header";
		return -EPROTO;
	}
	if (ret < 0)
		return ret;

	msg->request = vu_rd32(buf);
	msg->flags = vu_rd32(buf + 4);
	msg->size = vu_rd32(buf + 8);
	if ((msg->flags & VU_FLAG_VERSION_MASK) != VU_VERSION) {
		*why = "unsupported protocol version";
		return -EPROTO;
	}
	if (msg->flags & ~VU_FLAG_KNOWN) {
		*why = "reserved header flags set";
		return -EPROTO;
	}
	if (msg->flags & VU_FLAG_REPLY) {
		*why = "a reply where a request was expected";
		return -EPROTO;
	}
	msg->need_reply = !!(msg->flags & VU_FLAG_NEED_REPLY);
	info = msg->request < VU_REQ_MAX ? &vu_req_table[msg->request] : NULL;
	if (!info || !info->name) {
		*why = "unknown or unsupported request";
		return -EPROTO;
	}
	ret = vu_parse_payload(info->payload, buf + VU_HDR_SIZE, msg->size, nfds, msg, why);
	if (ret)
		return ret;
	for (unsigned int i = 0; i < nfds; i++)
		msg->fds[i] = fds[i];
	msg->nfds = nfds;
	return 0;
}

unsigned int vu_msg_fd_count(const struct vu_msg *msg)
{
	switch (msg->request) {
	case VU_REQ_SET_MEM_TABLE:
		return msg->u.mem.nregions;
	case VU_REQ_SET_LOG_BASE:
		return 1;
	case VU_REQ_SET_VRING_KICK:
	case VU_REQ_SET_VRING_CALL:
	case VU_REQ_SET_VRING_ERR:
		return msg->u.vring_fd.nofd ? 0 : 1;
	default:
		return 0;
	}
}

size_t vu_msg_encode_reply(uint32_t request, const void *payload, uint32_t size,
			   uint8_t *out, size_t cap)
{
	if (size > VU_PAYLOAD_MAX || cap < VU_HDR_SIZE + (size_t)size)
		return 0;
	vu_wr32(out, request);
	vu_wr32(out + 4, VU_VERSION | VU_FLAG_REPLY);
	vu_wr32(out + 8, size);
	if (size)
		memcpy(out + VU_HDR_SIZE, payload, size);
	return VU_HDR_SIZE + (size_t)size;
}

size_t vu_msg_encode_u64_reply(uint32_t request, uint64_t v, uint8_t *out, size_t cap)
{
	return vu_msg_encode_reply(request, &v, sizeof(v), out, cap);
}

size_t vu_msg_encode_state_reply(uint32_t request, uint32_t index, uint32_t num,
				 uint8_t *out, size_t cap)
{
	uint8_t pl[VU_STATE_SIZE];

	vu_wr32(pl, index);
	vu_wr32(pl + 4, num);
	return vu_msg_encode_reply(request, pl, sizeof(pl), out, cap);
}
