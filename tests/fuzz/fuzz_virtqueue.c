/* fuzz_virtqueue.c - libFuzzer target: a split virtqueue over hostile guest memory, driven by an op script. */

/*
 * Theory of operation
 *
 * Input:
 *   [0]      queue size: 1 << (value % 9), 1 to 256
 *   [1]      bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 two memory regions,
 *            bit 3 a GPA gap between them, bit 4 dirty logging, bit 5 log the used ring
 *   [2..3]   where region A ends and B starts (two regions)
 *   [4..9]   descriptor table, avail and used ring offsets (16-bit each,
 *            scaled by the part's alignment, may point past memory)
 *   [10]     number of ops, at most OPS_MAX; then 4 bytes per op
 *   rest     the guest memory's initial content (rings, descriptors, data)
 *
 * Guest memory is MEM_SIZE bytes split into one or two regions, each its
 * own heap block of exactly its size, so AddressSanitizer catches any byte
 * touched outside mapped memory.  Regions sit at unrelated front-end
 * addresses (a ring cannot span them) and adjacent or apart in GPA (a
 * buffer may span them when adjacent).
 *
 * Ops: pop, push the last popped chain, flush, enable/disable notifications,
 * a guest write of one byte anywhere (the guest changes memory between our
 * steps), set the avail index, stop + set_base + restart (the front-end
 * reconfiguring), unpop, avail.
 *
 * Oracle, after every op:
 *   - every iovec of a popped element is non-empty, lies inside one region's
 *     block, and its recorded GPA translates back to it; readable and
 *     writable totals equal the iovec sums and stay <= 4 GiB; the head is
 *     below the queue size; at most VQ_MAX_IOV iovecs;
 *   - vq_avail() is -EIO or 0..num;
 *   - BROKEN is sticky: once broken, only a reconfiguration clears it, pops
 *     return -EIO and flushes publish nothing; each breakage counts one
 *     violation;
 *   - right after a flush that published entries, the used index in
 *     memory is the queue's.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "backend/virtio_net.h"
#include "backend/virtqueue.h"
#include "tests/fuzz/fuzz_common.h"

#define MEM_SIZE 16384
#define HDR_LEN 11
#define OPS_MAX 64
#define OP_LEN 4
#define GPA_BASE 0x10000ull
#define GPA_GAP 0x1000ull
#define UVA_A 0x70000000ull
#define UVA_B 0x90000000ull
#define LOG_BYTES 64

enum op {
	OP_POP, OP_PUSH, OP_FLUSH, OP_ENABLE, OP_DISABLE, OP_POKE, OP_SET_AVAIL, OP_REBASE,
	OP_UNPOP, OP_AVAIL, OP_COUNT,
};

struct world {
	uint8_t *block[2];
	uint64_t size[2];
	unsigned int nregions;
	struct vu_mem mem;
	struct vu_log log;
	uint8_t logbits[LOG_BYTES];
	struct virtqueue vq;
	struct vq_elem e;
	bool event_idx, indirect;
	uint16_t popped[OPS_MAX];   /* heads popped, not yet pushed */
	unsigned int npopped;
};

static struct world w;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_logs();
	return 0;
}

/* Byte @off of guest memory (regions in order), or NULL past it. */
static uint8_t *mem_byte(uint64_t off)
{
	for (unsigned int i = 0; i < w.nregions; i++) {
		if (off < w.size[i])
			return w.block[i] + off;
		off -= w.size[i];
	}
	return NULL;
}

/* Front-end address of memory offset @off (past the end: an unmapped address). */
static uint64_t uva_of(uint64_t off)
{
	if (off < w.size[0])
		return UVA_A + off;
	return UVA_B + (off - w.size[0]);
}

static bool inside_a_block(const struct iovec *iov)
{
	for (unsigned int i = 0; i < w.nregions; i++) {
		const uint8_t *b = iov->iov_base;

		if (b >= w.block[i] && b < w.block[i] + w.size[i] &&
		    iov->iov_len <= (size_t)(w.block[i] + w.size[i] - b))
			return true;
	}
	return false;
}

static void check_elem(void)
{
	uint64_t out = 0, in = 0;
	unsigned int n = w.e.out_num + w.e.in_num;

	FUZZ_CHECK(w.e.head < w.vq.num);
	FUZZ_CHECK(n <= VQ_MAX_IOV);
	for (unsigned int i = 0; i < n; i++) {
		FUZZ_CHECK(w.e.iov[i].iov_len > 0);
		FUZZ_CHECK(inside_a_block(&w.e.iov[i]));
		FUZZ_CHECK(vu_mem_gpa_to_host(&w.mem, w.e.gpa[i], w.e.iov[i].iov_len) ==
			   w.e.iov[i].iov_base);
		if (i < w.e.out_num)
			out += w.e.iov[i].iov_len;
		else
			in += w.e.iov[i].iov_len;
	}
	FUZZ_CHECK(out == w.e.out_len && in == w.e.in_len);
	FUZZ_CHECK(out <= VQ_MAX_CHAIN_BYTES && in <= VQ_MAX_CHAIN_BYTES);
}

static void restart(uint16_t base)
{
	const char *why;

	vq_stop(&w.vq);
	FUZZ_CHECK(vq_set_base(&w.vq, base) == 0);
	FUZZ_CHECK(!w.vq.broken);
	w.npopped = 0;
	vq_start(&w.vq, &w.mem, &w.log, w.event_idx, w.indirect, &why);
}

/* One op; returns nothing, checks invariants itself. */
static void run_op(const uint8_t *op)
{
	bool was_broken = w.vq.broken;
	uint64_t violations = w.vq.violations;
	uint16_t arg = (uint16_t)(op[1] | op[2] << 8);
	int ret;

	switch (op[0] % OP_COUNT) {
	case OP_POP:
		ret = vq_pop(&w.vq, &w.e);
		FUZZ_CHECK(ret == 1 || ret == 0 || ret == -EIO || ret == -E2BIG);
		if (was_broken || !w.vq.started)
			FUZZ_CHECK(ret == -EIO);
		if (ret == 1)
			check_elem();
		if ((ret == 1 || ret == -E2BIG) && w.npopped < OPS_MAX)
			w.popped[w.npopped++] = w.e.head;
		break;
	case OP_PUSH:
		if (w.npopped)
			vq_push(&w.vq, w.popped[--w.npopped], arg | (uint32_t)op[3] << 16);
		break;
	case OP_FLUSH: {
		uint16_t before = w.vq.used_idx;
		bool publishes = vq_usable(&w.vq) && w.vq.pending;

		vq_flush(&w.vq);
		/* (Without pending entries nothing is written: the guest may have scribbled there.) */
		if (publishes)
			FUZZ_CHECK(__atomic_load_n((uint16_t *)(void *)(w.vq.used + VRING_USED_IDX_OFF),
						   __ATOMIC_RELAXED) == w.vq.used_idx);
		if (was_broken)
			FUZZ_CHECK(w.vq.used_idx == before);
		break;
	}
	case OP_ENABLE:
		vq_enable_notify(&w.vq);
		break;
	case OP_DISABLE:
		vq_disable_notify(&w.vq);
		break;
	case OP_POKE: {
		uint8_t *b = mem_byte(arg % MEM_SIZE);

		if (b)
			*b = op[3];
		break;
	}
	case OP_SET_AVAIL:
		if (w.vq.started)
			le16_write(w.vq.avail + VRING_AVAIL_IDX_OFF, arg);
		break;
	case OP_REBASE:
		restart(arg);
		return; /* reconfiguration clears BROKEN: no stickiness check */
	case OP_UNPOP: {
		unsigned int k = op[1] % 4;

		if (k > w.npopped)
			k = w.npopped;
		if (vq_usable(&w.vq) && k) {
			vq_unpop(&w.vq, (uint16_t)k);
			w.npopped -= k;
		}
		break;
	}
	case OP_AVAIL:
		ret = vq_avail(&w.vq);
		FUZZ_CHECK(ret == -EIO || (ret >= 0 && (uint32_t)ret <= w.vq.num));
		break;
	}
	if (was_broken)
		FUZZ_CHECK(w.vq.broken && w.vq.violations == violations);
	else
		FUZZ_CHECK(w.vq.violations == violations + (w.vq.broken ? 1 : 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vu_region_desc d[2];
	uint8_t *host[2];
	uint32_t num;
	uint64_t split, off[3];
	unsigned int nops;
	const uint8_t *ops, *content;
	size_t content_len;
	const char *why;

	if (size < HDR_LEN)
		return 0;
	num = 1u << (data[0] % 9);
	w.event_idx = data[1] & 1;
	w.indirect = data[1] & 2;
	w.nregions = (data[1] & 4) ? 2 : 1;
	split = 1 + (uint64_t)(data[2] | data[3] << 8) % (MEM_SIZE - 1);
	off[0] = (uint64_t)(data[4] | data[5] << 8) * VRING_DESC_ALIGN % (MEM_SIZE + 256);
	off[1] = (uint64_t)(data[6] | data[7] << 8) * VRING_AVAIL_ALIGN % (MEM_SIZE + 256);
	off[2] = (uint64_t)(data[8] | data[9] << 8) * VRING_USED_ALIGN % (MEM_SIZE + 256);
	nops = data[10] % (OPS_MAX + 1);
	ops = data + HDR_LEN;
	if (size < HDR_LEN + (size_t)nops * OP_LEN)
		nops = (unsigned int)((size - HDR_LEN) / OP_LEN);
	content = ops + (size_t)nops * OP_LEN;
	content_len = size - HDR_LEN - (size_t)nops * OP_LEN;

	w.size[0] = w.nregions == 2 ? split : MEM_SIZE;
	w.size[1] = MEM_SIZE - w.size[0];
	for (unsigned int i = 0; i < w.nregions; i++)
		w.block[i] = g_malloc0(w.size[i]);
	for (size_t i = 0; i < content_len && i < MEM_SIZE; i++)
		*mem_byte(i) = content[i];
	d[0] = (struct vu_region_desc){ .gpa = GPA_BASE, .size = w.size[0], .uva = UVA_A };
	d[1] = (struct vu_region_desc){ .gpa = GPA_BASE + w.size[0] + ((data[1] & 8) ? GPA_GAP : 0),
					.size = w.size[1], .uva = UVA_B };
	host[0] = w.block[0];
	host[1] = w.block[1];
	FUZZ_CHECK(vu_mem_set(&w.mem, d, w.nregions, host, &why) == 0);
	memset(w.logbits, 0, sizeof(w.logbits));
	vu_log_set(&w.log, w.logbits, (data[1] & 16) ? sizeof(w.logbits) : 0);

	vq_init(&w.vq);
	w.npopped = 0;
	FUZZ_CHECK(vq_set_num(&w.vq, num) == 0);
	vq_set_addr(&w.vq, uva_of(off[0]), uva_of(off[2]), uva_of(off[1]), GPA_BASE + off[2],
		    data[1] & 32);
	if (vq_start(&w.vq, &w.mem, &w.log, w.event_idx, w.indirect, &why) == 0) {
		/* Started: every part is inside memory. */
		FUZZ_CHECK(vu_mem_uva_to_host(&w.mem, w.vq.desc_uva, vring_desc_bytes(num)) == w.vq.desc);
		FUZZ_CHECK(vu_mem_uva_to_host(&w.mem, w.vq.used_uva, vring_used_bytes(num)) == w.vq.used);
	}
	for (unsigned int i = 0; i < nops; i++)
		run_op(ops + (size_t)i * OP_LEN);

	vq_stop(&w.vq);
	for (unsigned int i = 0; i < w.nregions; i++)
		g_free(w.block[i]);
	return 0;
}
