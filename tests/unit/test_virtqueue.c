/* test_virtqueue.c - unit tests of the split virtqueue over hand-built rings in a buffer. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "backend/virtio_net.h"
#include "backend/virtqueue.h"

/*
 * Guest memory: one region of MEM_SIZE bytes at GPA MEM_GPA, which the
 * "front-end" sees at MEM_UVA.  Rings at fixed offsets, data above.
 */
#define MEM_SIZE (1u << 20)
#define MEM_GPA 0x100000ull
#define MEM_UVA 0x7f0000000000ull
#define DESC_OFF 0x0
#define AVAIL_OFF 0x10000
#define USED_OFF 0x20000
#define DATA_OFF 0x40000
#define QSIZE 8

struct fixture {
	uint8_t *ram;               /* MEM_SIZE, 4 KiB aligned */
	struct vu_mem mem;
	struct vu_log log;
	uint8_t logbits[64];
	struct virtqueue vq;
	struct vq_elem e;
	uint16_t avail_idx;
	uint32_t num;
};

static int setup(void **state)
{
	struct fixture *f = g_new0(struct fixture, 1);
	struct vu_region_desc d = { .gpa = MEM_GPA, .size = MEM_SIZE, .uva = MEM_UVA };
	uint8_t *host[1];
	const char *why;

	f->ram = g_aligned_alloc0(1, MEM_SIZE, 4096);
	host[0] = f->ram;
	assert_int_equal(vu_mem_set(&f->mem, &d, 1, host, &why), 0);
	vu_log_set(&f->log, NULL, 0);
	vq_init(&f->vq);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	g_aligned_free(f->ram);
	g_free(f);
	return 0;
}

/* Configure and start a queue of @num entries; returns vq_start()'s result. */
static int start(struct fixture *f, uint32_t num, bool event_idx, bool indirect)
{
	const char *why;

	f->num = num;
	assert_int_equal(vq_set_num(&f->vq, num), 0);
	vq_set_addr(&f->vq, MEM_UVA + DESC_OFF, MEM_UVA + USED_OFF, MEM_UVA + AVAIL_OFF,
		    MEM_GPA + USED_OFF, true);
	vq_set_base(&f->vq, 0);
	f->avail_idx = 0;
	return vq_start(&f->vq, &f->mem, &f->log, event_idx, indirect, &why);
}

static void set_desc_at(uint8_t *table, uint32_t i, uint64_t gpa, uint32_t len, uint16_t flags,
			uint16_t next)
{
	uint8_t *p = table + (size_t)i * VRING_DESC_SIZE;

	le64_write(p, gpa);
	le32_write(p + 8, len);
	le16_write(p + 12, flags);
	le16_write(p + 14, next);
}

static void set_desc(struct fixture *f, uint32_t i, uint64_t gpa, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	set_desc_at(f->ram + DESC_OFF, i, gpa, len, flags, next);
}

/* Make chain @head available to the device. */
static void avail_add(struct fixture *f, uint16_t head)
{
	le16_write(f->ram + AVAIL_OFF + VRING_AVAIL_RING_OFF + 2 * (f->avail_idx % f->num), head);
	f->avail_idx++;
	le16_write(f->ram + AVAIL_OFF + VRING_AVAIL_IDX_OFF, f->avail_idx);
}

static uint16_t used_idx(struct fixture *f)
{
	return le16_read(f->ram + USED_OFF + VRING_USED_IDX_OFF);
}

static void used_elem(struct fixture *f, uint32_t i, uint32_t *id, uint32_t *len)
{
	const uint8_t *p = f->ram + USED_OFF + VRING_USED_RING_OFF + 8 * (i % f->num);

	*id = le32_read(p);
	*len = le32_read(p + 4);
}

#define DATA(n) (MEM_GPA + DATA_OFF + (n) * 0x1000ull)

static void test_pop_push(void **state)
{
	struct fixture *f = *state;
	uint32_t id, len;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	assert_int_equal(vq_pop(&f->vq, &f->e), 0);
	set_desc(f, 3, DATA(0), 12, VRING_DESC_F_NEXT, 5);
	set_desc(f, 5, DATA(1), 100, VRING_DESC_F_NEXT, 6);
	set_desc(f, 6, DATA(2), 2000, VRING_DESC_F_WRITE, 0);
	avail_add(f, 3);
	assert_int_equal(vq_avail(&f->vq), 1);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 3);
	assert_int_equal(f->e.out_num, 2);
	assert_int_equal(f->e.in_num, 1);
	assert_true(f->e.out_len == 112);
	assert_true(f->e.in_len == 2000);
	assert_ptr_equal(f->e.iov[0].iov_base, f->ram + DATA_OFF);
	assert_ptr_equal(f->e.iov[2].iov_base, f->ram + DATA_OFF + 0x2000);
	assert_true(f->e.gpa[1] == DATA(1));
	assert_int_equal(f->e.ndesc, 3);
	assert_int_equal(f->e.ring_desc, 3);
	assert_int_equal(vq_pop(&f->vq, &f->e), 0);

	vq_push(&f->vq, 3, 1500);
	assert_int_equal(used_idx(f), 0); /* not yet published */
	assert_true(vq_flush(&f->vq));    /* no suppression: signal */
	assert_int_equal(used_idx(f), 1);
	used_elem(f, 0, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, 1500);
	assert_false(vq_flush(&f->vq));   /* nothing pending */
	assert_int_equal(f->vq.last_avail_idx, 1);
}

static void test_unpop(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	set_desc(f, 0, DATA(0), 64, VRING_DESC_F_WRITE, 0);
	set_desc(f, 1, DATA(1), 64, VRING_DESC_F_WRITE, 0);
	avail_add(f, 0);
	avail_add(f, 1);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	vq_unpop(&f->vq, 2);
	assert_int_equal(vq_avail(&f->vq), 2);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 0);
}

/* Expect the next pop to break the queue with @why, and the queue to stay broken. */
static void expect_broken(struct fixture *f, const char *why)
{
	assert_int_equal(vq_pop(&f->vq, &f->e), -EIO);
	assert_true(f->vq.broken);
	assert_string_equal(f->vq.broken_why, why);
	assert_int_equal(vq_pop(&f->vq, &f->e), -EIO);
	assert_int_equal(vq_avail(&f->vq), -EIO);
	vq_push(&f->vq, 0, 0);
	assert_false(vq_flush(&f->vq));
	assert_false(vq_enable_notify(&f->vq));
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;
	uint64_t v = f->vq.violations;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	set_desc(f, 0, DATA(0), 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA(1), 64, 0, 0);
	avail_add(f, 0);
	expect_broken(f, "device-readable descriptor after a writable one");
	assert_true(f->vq.violations == v + 1);
	/* Sticky until the front-end reconfigures the ring. */
	vq_stop(&f->vq);
	assert_int_equal(vq_set_base(&f->vq, 0), 0);
	assert_false(f->vq.broken);
}

static void test_loop(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	set_desc(f, 0, DATA(0), 64, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA(1), 64, VRING_DESC_F_NEXT, 0);
	avail_add(f, 0);
	expect_broken(f, "descriptor chain loops or is longer than the queue");
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	set_desc(f, 0, DATA(0), 64, VRING_DESC_F_NEXT, QSIZE);
	avail_add(f, 0);
	expect_broken(f, "next descriptor index out of range");
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	avail_add(f, QSIZE);
	expect_broken(f, "avail ring head index out of range");
}

static void test_buffer_outside_memory(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	set_desc(f, 0, MEM_GPA + MEM_SIZE - 16, 17, 0, 0); /* one byte too far */
	avail_add(f, 0);
	expect_broken(f, "buffer outside mapped memory");
}

static void test_wrapping_buffer(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	set_desc(f, 0, UINT64_MAX - 3, 16, 0, 0);
	avail_add(f, 0);
	expect_broken(f, "buffer outside mapped memory");
}

static void test_avail_jump(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	le16_write(f->ram + AVAIL_OFF + VRING_AVAIL_IDX_OFF, QSIZE + 1);
	assert_int_equal(vq_avail(&f->vq), -EIO);
	assert_string_equal(f->vq.broken_why, "avail index moved by more than the queue size");
}

static void test_zero_length_buffer(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	set_desc(f, 0, DATA(0), 0, 0, 0);
	avail_add(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1); /* a zero-length buffer is no iovec */
	assert_int_equal(f->e.out_num, 0);
	/* A maximal length is checked against memory like any other. */
	set_desc(f, 1, MEM_GPA, UINT32_MAX, 0, 0);
	avail_add(f, 1);
	expect_broken(f, "buffer outside mapped memory");
}

static void test_indirect(void **state)
{
	struct fixture *f = *state;
	uint8_t *table = f->ram + DATA_OFF + 0x10000;
	uint64_t table_gpa = MEM_GPA + DATA_OFF + 0x10000;

	assert_int_equal(start(f, QSIZE, false, true), 0);
	set_desc_at(table, 0, DATA(0), 12, VRING_DESC_F_NEXT, 1);
	set_desc_at(table, 1, DATA(1), 60, VRING_DESC_F_NEXT, 2);
	set_desc_at(table, 2, DATA(2), 100, VRING_DESC_F_WRITE, 0);
	set_desc(f, 4, table_gpa, 3 * VRING_DESC_SIZE, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
	avail_add(f, 4);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 4);
	assert_int_equal(f->e.out_num, 2);
	assert_int_equal(f->e.in_num, 1);
	assert_true(f->e.out_len == 72);
	assert_int_equal(f->e.ndesc, 4); /* the indirect descriptor and its three entries */
	assert_int_equal(f->e.ring_desc, 1); /* of the ring's table, only the indirect one */

	/* A loop inside the indirect table. */
	set_desc_at(table, 2, DATA(2), 100, VRING_DESC_F_NEXT, 0);
	avail_add(f, 4);
	expect_broken(f, "descriptor chain loops or is longer than the queue");
}

static void test_indirect_rules(void **state)
{
	struct fixture *f = *state;
	uint8_t *table = f->ram + DATA_OFF + 0x10000;
	uint64_t table_gpa = MEM_GPA + DATA_OFF + 0x10000;
	static const struct {
		uint32_t len;
		uint16_t flags;
		bool nested;
		bool feature;
		const char *why;
	} cases[] = {
		{ 32, VRING_DESC_F_INDIRECT, false, false, "indirect descriptor without INDIRECT_DESC" },
		{ 33, VRING_DESC_F_INDIRECT, false, true,
		  "indirect table length not a non-zero multiple of 16" },
		{ 0, VRING_DESC_F_INDIRECT, false, true,
		  "indirect table length not a non-zero multiple of 16" },
		{ 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, false, true,
		  "indirect descriptor also has NEXT" },
		{ 16 * (QSIZE + 1), VRING_DESC_F_INDIRECT, false, true,
		  "indirect table longer than the queue" },
		{ 32, VRING_DESC_F_INDIRECT, true, true, "nested indirect descriptor table" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		vq_stop(&f->vq);
		vq_init(&f->vq);
		assert_int_equal(start(f, QSIZE, false, cases[i].feature), 0);
		memset(f->ram + AVAIL_OFF, 0, 0x1000);
		set_desc_at(table, 0, DATA(0), 12, cases[i].nested ? VRING_DESC_F_INDIRECT : 0, 0);
		set_desc(f, 0, table_gpa, cases[i].len, cases[i].flags, 1);
		avail_add(f, 0);
		expect_broken(f, cases[i].why);
	}
	/* An indirect table outside memory. */
	vq_init(&f->vq);
	assert_int_equal(start(f, QSIZE, false, true), 0);
	memset(f->ram + AVAIL_OFF, 0, 0x1000);
	set_desc(f, 0, MEM_GPA + MEM_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	avail_add(f, 0);
	expect_broken(f, "indirect table outside mapped memory");
}

static void test_too_many_iovecs(void **state)
{
	struct fixture *f = *state;
	uint8_t *table = f->ram + DATA_OFF + 0x10000;
	uint64_t table_gpa = MEM_GPA + DATA_OFF + 0x10000;
	uint32_t links = 600, entries = VQ_MAX_IOV + 1 - links;

	/*
	 * Rings stop at 1024 entries, but normal descriptors followed by an
	 * indirect table still reach VQ_MAX_IOV + 1 buffers.
	 */
	assert_int_equal(start(f, VQ_MAX_SIZE, false, true), 0);
	for (uint32_t i = 0; i < links; i++)
		set_desc(f, i, DATA(0) + i, 1, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
	set_desc(f, links, table_gpa, entries * VRING_DESC_SIZE, VRING_DESC_F_INDIRECT, 0);
	for (uint32_t i = 0; i < entries; i++)
		set_desc_at(table, i, DATA(1) + i, 1, i + 1 < entries ? VRING_DESC_F_NEXT : 0,
			    (uint16_t)(i + 1));
	avail_add(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->e), -E2BIG);
	assert_int_equal(f->e.head, 0);
	assert_false(f->vq.broken); /* valid, only too long for us: given back unused */
	vq_push(&f->vq, 0, 0);
	assert_true(vq_flush(&f->vq));
	assert_int_equal(used_idx(f), 1);
}

static void test_event_idx(void **state)
{
	struct fixture *f = *state;
	uint8_t *used_event = f->ram + AVAIL_OFF + VRING_AVAIL_RING_OFF + 2 * QSIZE;
	uint8_t *avail_event = f->ram + USED_OFF + VRING_USED_RING_OFF + 8 * QSIZE;

	assert_int_equal(start(f, QSIZE, true, false), 0);
	for (int i = 0; i < 4; i++)
		set_desc(f, i, DATA(i), 64, VRING_DESC_F_WRITE, 0);
	/* The first flush always signals (no previous decision). */
	le16_write(used_event, 5);
	avail_add(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	vq_push(&f->vq, 0, 1);
	assert_true(vq_flush(&f->vq));
	/* used 1 -> 2: the driver asked for an interrupt after entry 5 only. */
	avail_add(f, 1);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	vq_push(&f->vq, 1, 1);
	assert_false(vq_flush(&f->vq));
	/* used_event 2: crossing it (2 -> 3 covers index 2) signals. */
	le16_write(used_event, 2);
	avail_add(f, 2);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	vq_push(&f->vq, 2, 1);
	assert_true(vq_flush(&f->vq));

	/* Enabling kicks publishes avail_event = last_avail_idx; nothing pending. */
	assert_false(vq_enable_notify(&f->vq));
	assert_int_equal(le16_read(avail_event), 3);
	/* The race: a buffer already there when kicks are re-enabled. */
	avail_add(f, 3);
	assert_true(vq_enable_notify(&f->vq));
	assert_int_equal(vring_need_event(3, 4, 3), 1);
	assert_int_equal(vring_need_event(5, 4, 3), 0);
	assert_int_equal(vring_need_event(0xffff, 1, 0xfffe), 1); /* wrap-around */

	/*
	 * Too few: chain 3 is there but does not do.  The kick is asked for at
	 * the next chain (avail_event 4: the driver's 4 -> 5 covers it), and
	 * the chain already seen is no reason to try again.
	 */
	assert_false(vq_enable_notify_beyond(&f->vq, 1));
	assert_int_equal(le16_read(avail_event), 4);
	assert_int_equal(vring_need_event(le16_read(avail_event), 5, 4), 1);
	avail_add(f, 4);
	assert_true(vq_enable_notify_beyond(&f->vq, 1));
	assert_false(vq_enable_notify_beyond(&f->vq, 2));
	assert_int_equal(le16_read(avail_event), 5);
}

static void test_flags_suppression(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	set_desc(f, 0, DATA(0), 64, VRING_DESC_F_WRITE, 0);
	le16_write(f->ram + AVAIL_OFF + VRING_AVAIL_FLAGS_OFF, VRING_AVAIL_F_NO_INTERRUPT);
	avail_add(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	vq_push(&f->vq, 0, 1);
	assert_false(vq_flush(&f->vq));
	assert_int_equal(used_idx(f), 1);
	vq_disable_notify(&f->vq);
	assert_int_equal(le16_read(f->ram + USED_OFF), VRING_USED_F_NO_NOTIFY);
	assert_false(vq_enable_notify(&f->vq));
	assert_int_equal(le16_read(f->ram + USED_OFF), 0);
	/* Without EVENT_IDX every new buffer kicks: beyond() clears the flag the same way. */
	vq_disable_notify(&f->vq);
	set_desc(f, 1, DATA(1), 64, VRING_DESC_F_WRITE, 0);
	avail_add(f, 1);
	assert_false(vq_enable_notify_beyond(&f->vq, 1));
	assert_int_equal(le16_read(f->ram + USED_OFF), 0);
	assert_true(vq_enable_notify_beyond(&f->vq, 0));
}

static void test_ring_setup(void **state)
{
	struct fixture *f = *state;
	const char *why;

	assert_int_equal(vq_set_num(&f->vq, 0), -EINVAL);
	assert_int_equal(vq_set_num(&f->vq, 3), -EINVAL);
	/* F5: at most QEMU's 1024, although the ring format allows 32768. */
	assert_int_equal(vq_set_num(&f->vq, 65536), -E2BIG);
	assert_int_equal(vq_set_num(&f->vq, VRING_MAX_SIZE), -E2BIG);
	assert_int_equal(vq_set_num(&f->vq, 2048), -E2BIG);
	assert_int_equal(vq_set_num(&f->vq, 1536), -EINVAL);
	assert_int_equal(vq_set_num(&f->vq, VQ_MAX_SIZE), 0);
	/* Not configured yet. */
	vq_init(&f->vq);
	assert_int_equal(vq_start(&f->vq, &f->mem, &f->log, false, false, &why), -EINVAL);
	/* Misaligned descriptor table. */
	assert_int_equal(vq_set_num(&f->vq, QSIZE), 0);
	vq_set_addr(&f->vq, MEM_UVA + 8, MEM_UVA + USED_OFF, MEM_UVA + AVAIL_OFF, 0, false);
	assert_int_equal(vq_start(&f->vq, &f->mem, &f->log, false, false, &why), -EINVAL);
	/* Used ring running past the end of memory. */
	vq_set_addr(&f->vq, MEM_UVA, MEM_UVA + MEM_SIZE - 16, MEM_UVA + AVAIL_OFF, 0, false);
	assert_int_equal(vq_start(&f->vq, &f->mem, &f->log, false, false, &why), -EINVAL);
	/* Avail ring at an address the front-end never mapped. */
	vq_set_addr(&f->vq, MEM_UVA, MEM_UVA + USED_OFF, 0x1000, 0, false);
	assert_int_equal(vq_start(&f->vq, &f->mem, &f->log, false, false, &why), -EINVAL);
	vq_set_addr(&f->vq, MEM_UVA, MEM_UVA + USED_OFF, MEM_UVA + AVAIL_OFF, 0, false);
	assert_int_equal(vq_start(&f->vq, &f->mem, &f->log, false, false, &why), 0);
	/* A running ring cannot be resized or rebased. */
	assert_int_equal(vq_set_num(&f->vq, 16), -EBUSY);
	assert_int_equal(vq_set_base(&f->vq, 3), -EBUSY);
	vq_stop(&f->vq);
	assert_int_equal(vq_set_base(&f->vq, 3), 0);
	assert_int_equal(f->vq.last_avail_idx, 3);
}

static void test_used_ring_logged(void **state)
{
	struct fixture *f = *state;
	uint64_t page = (MEM_GPA + USED_OFF) >> VU_LOG_PAGE_SHIFT;

	vu_log_set(&f->log, f->logbits, sizeof(f->logbits));
	assert_int_equal(start(f, QSIZE, true, false), 0);
	set_desc(f, 0, DATA(0), 64, VRING_DESC_F_WRITE, 0);
	avail_add(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->e), 1);
	vq_push(&f->vq, 0, 64);
	vq_flush(&f->vq);
	assert_true(f->logbits[page / 8] & (1u << (page % 8)));
	/* Only the used ring's page: the descriptor table and data were not written by us. */
	assert_int_equal(f->logbits[(MEM_GPA >> VU_LOG_PAGE_SHIFT) / 8], 0);
}

/*
 * F16: more used entries than the queue size before a flush would overwrite
 * unpublished ones (the slot is masked) and can only follow a guest that
 * re-offered buffers it did not own yet: the queue breaks instead.
 */
static void test_push_beyond_queue_size(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, QSIZE, false, false), 0);
	for (uint16_t i = 0; i < QSIZE; i++)
		vq_push(&f->vq, i, 1);
	assert_false(f->vq.broken);
	vq_push(&f->vq, 0, 1);
	assert_true(f->vq.broken);
	assert_string_equal(f->vq.broken_why, "more used entries than the queue size before a flush");
	assert_int_equal(f->vq.pending, QSIZE);
	/* Broken: nothing is published. */
	assert_false(vq_flush(&f->vq));
	assert_int_equal(used_idx(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pop_push, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readable_after_writable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffer_outside_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrapping_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_avail_jump, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_length_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_iovecs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags_suppression, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_setup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_used_ring_logged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_beyond_queue_size, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
