/* fuzz_vu_msg.c - libFuzzer target: the vhost-user message codec and memory-table rules against models. */

/*
 * Theory of operation
 *
 * Input: byte 0 is the number of fds that "arrived" with the message (0 to
 * VU_MAX_FDS + 1, fake numbers: the codec never touches a descriptor); the
 * rest is the message as read from the socket.
 *
 * Checked:
 *   - vu_msg_frame_len(): 0 below a header, otherwise exactly header + the
 *     size field, or -EPROTO exactly when that size exceeds VU_PAYLOAD_MAX;
 *   - vu_msg_parse() on exactly that many bytes: on success the message
 *     re-encodes (reference encoder below, from the parsed fields) to the
 *     input byte for byte, except the memory table's padding; size matches;
 *     it took exactly the fds it must carry (vu_msg_fd_count), in order, and
 *     every other slot is -1; on failure a reason is given, no fd is taken
 *     (all slots -1, nfds 0) - so an fd is never both the caller's and the
 *     message's;
 *   - a message one byte short or long never parses;
 *   - a parsed memory table is judged by vu_mem_validate() exactly as a
 *     128-bit-arithmetic model judges it (sizes, wrap, overlaps, offsets);
 *   - replies encode to header + payload with the REPLY flag.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "backend/vu_mem.h"
#include "backend/vu_msg.h"
#include "tests/fuzz/fuzz_common.h"

#define FAKE_FD_BASE 1000

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_logs();
	return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* Reference encoder of a parsed request; @pad is the memory table's padding as received. */
static size_t encode(const struct vu_msg *m, uint32_t pad, uint8_t *out)
{
	uint8_t *p = out + VU_HDR_SIZE;

	put32(out, m->request);
	put32(out + 4, m->flags);
	put32(out + 8, m->size);
	switch (m->request) {
	case VU_REQ_SET_FEATURES:
	case VU_REQ_SET_PROTOCOL_FEATURES:
	case VU_REQ_SEND_RARP:
	case VU_REQ_NET_SET_MTU:
		put64(p, m->u.u64);
		break;
	case VU_REQ_SET_VRING_NUM:
	case VU_REQ_SET_VRING_BASE:
	case VU_REQ_GET_VRING_BASE:
	case VU_REQ_SET_VRING_ENABLE:
		put32(p, m->u.state.index);
		put32(p + 4, m->u.state.num);
		break;
	case VU_REQ_SET_VRING_ADDR:
		put32(p, m->u.addr.index);
		put32(p + 4, m->u.addr.flags);
		put64(p + 8, m->u.addr.desc);
		put64(p + 16, m->u.addr.used);
		put64(p + 24, m->u.addr.avail);
		put64(p + 32, m->u.addr.log);
		break;
	case VU_REQ_SET_MEM_TABLE:
		put32(p, m->u.mem.nregions);
		put32(p + 4, pad);
		for (uint32_t i = 0; i < m->u.mem.nregions; i++) {
			uint8_t *r = p + VU_MEM_HDR_SIZE + i * VU_MEM_REGION_SIZE;

			put64(r, m->u.mem.regions[i].gpa);
			put64(r + 8, m->u.mem.regions[i].size);
			put64(r + 16, m->u.mem.regions[i].uva);
			put64(r + 24, m->u.mem.regions[i].mmap_offset);
		}
		break;
	case VU_REQ_SET_LOG_BASE:
		put64(p, m->u.log.mmap_size);
		put64(p + 8, m->u.log.mmap_offset);
		break;
	case VU_REQ_SET_VRING_KICK:
	case VU_REQ_SET_VRING_CALL:
	case VU_REQ_SET_VRING_ERR:
		put64(p, m->u.vring_fd.index | (m->u.vring_fd.nofd ? VU_VRING_NOFD : 0));
		break;
	default:
		break;
	}
	return VU_HDR_SIZE + m->size;
}

/* The memory-table rules, in 128-bit arithmetic. */
static bool model_table_ok(const struct vu_region_desc *d, unsigned int n)
{
	const unsigned __int128 top = (unsigned __int128)1 << 64;

	for (unsigned int i = 0; i < n; i++) {
		if (!d[i].size || (unsigned __int128)d[i].gpa + d[i].size > top ||
		    (unsigned __int128)d[i].uva + d[i].size > top ||
		    (unsigned __int128)d[i].mmap_offset + d[i].size > (unsigned __int128)INT64_MAX ||
		    d[i].size > SIZE_MAX - VU_LOG_PAGE)
			return false;
		for (unsigned int j = 0; j < i; j++) {
			unsigned __int128 ai = d[i].gpa, aj = d[j].gpa, ui = d[i].uva, uj = d[j].uva;

			if (ai < aj + d[j].size && aj < ai + d[i].size)
				return false;
			if (ui < uj + d[j].size && uj < ui + d[i].size)
				return false;
		}
	}
	return true;
}

static void check_parsed(const uint8_t *msg, size_t len, const int *fds, unsigned int nfds)
{
	uint8_t again[VU_MSG_MAX];
	struct vu_msg m;
	const char *why = NULL;
	int ret = vu_msg_parse(msg, len, fds, nfds, &m, &why);

	if (ret) {
		FUZZ_CHECK(why != NULL);
		FUZZ_CHECK(m.nfds == 0);
		for (unsigned int i = 0; i < VU_MAX_FDS; i++)
			FUZZ_CHECK(m.fds[i] == -1);
		return;
	}
	FUZZ_CHECK(len == VU_HDR_SIZE + m.size);
	FUZZ_CHECK(m.nfds == nfds && vu_msg_fd_count(&m) == nfds);
	for (unsigned int i = 0; i < VU_MAX_FDS; i++)
		FUZZ_CHECK(m.fds[i] == (i < nfds ? fds[i] : -1));
	FUZZ_CHECK(m.need_reply == !!(m.flags & VU_FLAG_NEED_REPLY));
	FUZZ_CHECK(!(m.flags & VU_FLAG_REPLY));
	FUZZ_CHECK(strcmp(vu_request_str(m.request), "UNKNOWN") != 0);
	{
		uint32_t pad = 0;

		if (m.request == VU_REQ_SET_MEM_TABLE)
			memcpy(&pad, msg + VU_HDR_SIZE + 4, 4);
		FUZZ_CHECK(encode(&m, pad, again) == len);
		FUZZ_CHECK(memcmp(again, msg, len) == 0);
	}
	if (m.request == VU_REQ_SET_MEM_TABLE) {
		const char *vwhy = NULL;
		int v = vu_mem_validate(m.u.mem.regions, m.u.mem.nregions, &vwhy);

		FUZZ_CHECK((v == 0) == model_table_ok(m.u.mem.regions, m.u.mem.nregions));
		FUZZ_CHECK(v == 0 || vwhy != NULL);
	}
	/* One byte short or long never parses. */
	FUZZ_CHECK(vu_msg_parse(msg, len - 1, fds, nfds, &m, &why) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[VU_MAX_FDS + 1];
	uint8_t buf[VU_MSG_MAX + 1];
	uint8_t reply[VU_MSG_MAX];
	unsigned int nfds;
	const char *why = NULL;
	size_t total = 0, len;
	uint32_t field;
	int ret;

	if (size < 1)
		return 0;
	nfds = data[0] % (VU_MAX_FDS + 2);
	for (unsigned int i = 0; i < G_N_ELEMENTS(fds); i++)
		fds[i] = FAKE_FD_BASE + (int)i;
	data++;
	size--;

	ret = vu_msg_frame_len(data, size, &total, &why);
	if (size < VU_HDR_SIZE) {
		FUZZ_CHECK(ret == 0);
		return 0;
	}
	memcpy(&field, data + 8, 4);
	if (field > VU_PAYLOAD_MAX) {
		FUZZ_CHECK(ret == -EPROTO && why);
		return 0;
	}
	FUZZ_CHECK(ret == 1 && total == VU_HDR_SIZE + (size_t)field);
	if (size < total)
		return 0;
	len = total;
	memcpy(buf, data, len);
	check_parsed(buf, len, fds, nfds);
	/* The same bytes with one trailing byte: a length that does not match. */
	buf[len] = 0;
	{
		struct vu_msg m;

		FUZZ_CHECK(vu_msg_parse(buf, len + 1, fds, nfds, &m, &why) != 0);
	}
	/* Replies: header + payload, REPLY flag, any payload up to the limit. */
	{
		uint32_t rsize = field;
		size_t n = vu_msg_encode_reply(field, data + VU_HDR_SIZE, rsize, reply, sizeof(reply));
		uint32_t h[3];

		FUZZ_CHECK(n == VU_HDR_SIZE + rsize);
		memcpy(h, reply, sizeof(h));
		FUZZ_CHECK(h[0] == field && h[1] == (VU_VERSION | VU_FLAG_REPLY) && h[2] == rsize);
		FUZZ_CHECK(memcmp(reply + VU_HDR_SIZE, data + VU_HDR_SIZE, rsize) == 0);
		FUZZ_CHECK(vu_msg_encode_reply(1, data, rsize, reply, VU_HDR_SIZE + rsize - 1 + !rsize) ==
			   (rsize ? 0 : VU_HDR_SIZE));
	}
	return 0;
}
