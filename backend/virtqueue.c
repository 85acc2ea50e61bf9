/* virtqueue.c - a split virtqueue (device side) over a vhost-user memory table. */

#include "virtqueue.h"

#include <errno.h>
#include <string.h>

#include "virtio_net.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "ring indices are accessed in place: little-endian hosts only");

/* Pointers to the 16-bit fields of the rings (aligned: checked in vq_start()). */
static uint16_t *vq_avail_flags(const struct virtqueue *vq)
{
	return (uint16_t *)(void *)(vq->avail + VRING_AVAIL_FLAGS_OFF);
}

static uint16_t *vq_avail_idx(const struct virtqueue *vq)
{
	return (uint16_t *)(void *)(vq->avail + VRING_AVAIL_IDX_OFF);
}

static uint16_t *vq_avail_ring(const struct virtqueue *vq, uint32_t i)
{
	return (uint16_t *)(void *)(vq->avail + VRING_AVAIL_RING_OFF + 2 * i);
}

/* used_event lives after the avail ring's num entries. */
static uint16_t *vq_used_event(const struct virtqueue *vq)
{
	return vq_avail_ring(vq, vq->num);
}

static uint16_t *vq_used_flags(const struct virtqueue *vq)
{
	return (uint16_t *)(void *)(vq->used + VRING_USED_FLAGS_OFF);
}

static uint16_t *vq_used_idx(const struct virtqueue *vq)
{
	return (uint16_t *)(void *)(vq->used + VRING_USED_IDX_OFF);
}

/* Byte offset of used element @i in the used ring; avail_event follows element num - 1. */
static uint64_t vq_used_elem_off(uint32_t i)
{
	return VRING_USED_RING_OFF + (uint64_t)VRING_USED_ELEM_SIZE * i;
}

/* Log a write of @len bytes at @off in the used ring (VU_VRING_F_LOG); count a miss. */
static void vq_log_used(struct virtqueue *vq, uint64_t off, uint64_t len)
{
	if (vq->log_used && vq->log && vu_log_active(vq->log) &&
	    vu_log_write(vq->log, vq->log_gpa + off, len))
		vq->log_missed++;
}

void vq_init(struct virtqueue *vq)
{
	memset(vq, 0, sizeof(*vq));
}

void vq_reset(struct virtqueue *vq)
{
	uint64_t violations = vq->violations, log_missed = vq->log_missed;

	vq_init(vq);
	vq->violations = violations; /* counters, not state */
	vq->log_missed = log_missed;
}

/* Reconfiguration clears BROKEN: the front-end took the ring over again. */
static void vq_clear_broken(struct virtqueue *vq)
{
	vq->broken = false;
	vq->broken_why = NULL;
}

int vq_set_num(struct virtqueue *vq, uint32_t num)
{
	if (vq->started)
		return -EBUSY;
	if (num == 0 || (num & (num - 1)))
		return -EINVAL;
	if (num > VQ_MAX_SIZE)
		return -E2BIG;
	vq->num = num;
	vq_clear_broken(vq);
	return 0;
}

int vq_set_addr(struct virtqueue *vq, uint64_t desc, uint64_t used, uint64_t avail,
		uint64_t log_gpa, bool log_used)
{
	if (vq->started)
		return -EBUSY;
	vq->desc_uva = desc;
	vq->used_uva = used;
	vq->avail_uva = avail;
	vq->log_gpa = log_gpa;
	vq->log_used = log_used;
	vq->addr_set = true;
	vq_clear_broken(vq);
	return 0;
}

int vq_set_base(struct virtqueue *vq, uint16_t idx)
{
	if (vq->started)
		return -EBUSY;
	vq->last_avail_idx = idx;
	vq->used_idx = idx;
	vq->pending = 0;
	vq->signalled_valid = false;
	vq_clear_broken(vq);
	return 0;
}

/* Host pointer of ring part [uva, uva + len), aligned to @align, or NULL. */
static uint8_t *vq_map_part(const struct vu_mem *mem, uint64_t uva, uint64_t len, uint64_t align)
{
	uint8_t *p;

	if (uva & (align - 1))
		return NULL;
	p = vu_mem_uva_to_host(mem, uva, len);
	if (!p || ((uintptr_t)p & (align - 1)))
		return NULL;
	return p;
}

int vq_start(struct virtqueue *vq, const struct vu_mem *mem, const struct vu_log *log,
	     bool event_idx, bool indirect, const char **why)
{
	if (!vq->num || !vq->addr_set) {
		*why = "ring size or addresses not set";
		return -EINVAL;
	}
	vq->desc = vq_map_part(mem, vq->desc_uva, vring_desc_bytes(vq->num), VRING_DESC_ALIGN);
	vq->avail = vq_map_part(mem, vq->avail_uva, vring_avail_bytes(vq->num), VRING_AVAIL_ALIGN);
	vq->used = vq_map_part(mem, vq->used_uva, vring_used_bytes(vq->num), VRING_USED_ALIGN);
	if (!vq->desc || !vq->avail || !vq->used) {
		vq->desc = vq->avail = vq->used = NULL;
		*why = "a ring part is misaligned or not inside one mapped region";
		return -EINVAL;
	}
	vq->mem = mem;
	vq->log = log;
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->pending = 0;
	vq->signalled_valid = false;
	vq->started = true;
	return 0;
}

void vq_stop(struct virtqueue *vq)
{
	vq->started = false;
	vq->desc = vq->avail = vq->used = NULL;
	vq->mem = NULL;
	vq->log = NULL;
	vq->pending = 0;
}

void vq_break(struct virtqueue *vq, const char *why)
{
	if (vq->broken)
		return;
	vq->broken = true;
	vq->broken_why = why;
	vq->violations++;
}

int vq_avail(struct virtqueue *vq)
{
	uint16_t idx, n;

	if (!vq_usable(vq))
		return -EIO;
	idx = __atomic_load_n(vq_avail_idx(vq), __ATOMIC_ACQUIRE);
	n = (uint16_t)(idx - vq->last_avail_idx);
	if (n > vq->num) {
		vq_break(vq, "avail index moved by more than the queue size");
		return -EIO;
	}
	return n;
}

/*
 * One descriptor, copied out of guest memory so it cannot change under us.
 * The guest writes that memory concurrently, which the compiler cannot
 * know: with plain loads it could read a field again later (say, len once
 * for a check and once more for the copy) instead of keeping it in a
 * register.  So the 16 bytes are copied into a private buffer, and a
 * compiler barrier follows: after it guest memory may have changed, so
 * every use must come from the copy (READ_ONCE, in effect, for a
 * descriptor that need not be aligned: an indirect table's).  Byte-wise
 * volatile loads did the same but cost half of vq_pop()'s cycles.
 */
static void vq_read_desc(const uint8_t *table, uint32_t i, struct vring_desc *d)
{
	uint8_t raw[VRING_DESC_SIZE];

	memcpy(raw, table + (uint64_t)i * VRING_DESC_SIZE, sizeof(raw));
	__asm__ __volatile__("" ::: "memory");
	d->addr = le64_read(raw);
	d->len = le32_read(raw + 8);
	d->flags = le16_read(raw + 12);
	d->next = le16_read(raw + 14);
}

/* Chain walk state: where descriptors come from and how many may still be visited. */
struct vq_walk {
	const uint8_t *table;       /* descriptor table being walked */
	uint32_t table_len;         /* its entries */
	bool in_indirect;
	uint32_t budget;            /* descriptors left to visit (queue size in all) */
};

/*
 * Switch the walk to the indirect table described by @d.  Returns 0, or a
 * reason the chain is a violation.
 */
static const char *vq_enter_indirect(struct virtqueue *vq, struct vq_walk *w,
				     const struct vring_desc *d)
{
	if (!vq->indirect)
		return "indirect descriptor without INDIRECT_DESC";
	if (w->in_indirect)
		return "nested indirect descriptor table";
	if (d->flags & VRING_DESC_F_NEXT)
		return "indirect descriptor also has NEXT";
	if (d->len == 0 || d->len % VRING_DESC_SIZE)
		return "indirect table length not a non-zero multiple of 16";
	if (d->len / VRING_DESC_SIZE > vq->num)
		return "indirect table longer than the queue";
	w->table = vu_mem_gpa_to_host(vq->mem, d->addr, d->len);
	if (!w->table)
		return "indirect table outside mapped memory";
	w->table_len = d->len / VRING_DESC_SIZE;
	w->budget = w->table_len; /* each entry at most once: a second visit is a loop */
	w->in_indirect = true;
	return NULL;
}

/*
 * Add buffer @d to @e.  Returns NULL, VQ_WALK_E2BIG for a valid buffer that
 * does not fit in the iovec array, or a violation's reason.
 */
static const char VQ_WALK_E2BIG[] = "chain needs more iovecs than we keep";

static const char *vq_add_buffer(struct virtqueue *vq, struct vq_elem *e, const struct vring_desc *d)
{
	unsigned int n = e->out_num + e->in_num;
	int ret;

	if (d->flags & VRING_DESC_F_WRITE) {
		e->in_len += d->len;
		if (e->in_len > VQ_MAX_CHAIN_BYTES)
			return "chain longer than 4 GiB";
	} else {
		if (e->in_num)
			return "device-readable descriptor after a writable one";
		e->out_len += d->len;
		if (e->out_len > VQ_MAX_CHAIN_BYTES)
			return "chain longer than 4 GiB";
	}
	ret = vu_mem_gpa_to_iov(vq->mem, d->addr, d->len, e->iov, e->gpa, VQ_MAX_IOV, &n);
	if (ret == -ENOBUFS)
		return VQ_WALK_E2BIG;
	if (ret)
		return "buffer outside mapped memory";
	if (d->flags & VRING_DESC_F_WRITE)
		e->in_num = n - e->out_num;
	else
		e->out_num = n;
	return NULL;
}

/* Walk the chain starting at @head into @e; NULL, VQ_WALK_E2BIG or a violation. */
static const char *vq_walk_chain(struct virtqueue *vq, uint16_t head, struct vq_elem *e)
{
	struct vq_walk w = { .table = vq->desc, .table_len = vq->num, .budget = vq->num };
	uint32_t i = head;
	struct vring_desc d;
	const char *err;

	for (;;) {
		if (w.budget-- == 0)
			return "descriptor chain loops or is longer than the queue";
		e->ndesc++;
		e->ring_desc += !w.in_indirect;
		vq_read_desc(w.table, i, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			err = vq_enter_indirect(vq, &w, &d);
			if (err)
				return err;
			i = 0;
			continue;
		}
		err = vq_add_buffer(vq, e, &d);
		if (err)
			return err;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return NULL;
		if (d.next >= w.table_len)
			return "next descriptor index out of range";
		i = d.next;
	}
}

int vq_pop(struct virtqueue *vq, struct vq_elem *e)
{
	const char *err;
	uint16_t head;
	int avail = vq_avail(vq);

	if (avail <= 0)
		return avail;
	head = __atomic_load_n(vq_avail_ring(vq, vq->last_avail_idx & (vq->num - 1)),
			       __ATOMIC_RELAXED);
	if (head >= vq->num) {
		vq_break(vq, "avail ring head index out of range");
		return -EIO;
	}
	e->head = head;
	e->ndesc = e->ring_desc = 0;
	e->out_num = e->in_num = 0;
	e->out_len = e->in_len = 0;
	err = vq_walk_chain(vq, head, e);
	if (err == VQ_WALK_E2BIG) {
		vq->last_avail_idx++;
		return -E2BIG;
	}
	if (err) {
		vq_break(vq, err);
		return -EIO;
	}
	vq->last_avail_idx++;
	return 1;
}

void vq_unpop(struct virtqueue *vq, uint16_t n)
{
	vq->last_avail_idx = (uint16_t)(vq->last_avail_idx - n);
}

void vq_push(struct virtqueue *vq, uint16_t head, uint32_t len)
{
	uint32_t slot;
	uint8_t *p;

	if (!vq_usable(vq))
		return;
	/*
	 * A driver re-offers a buffer only after it saw it used, so at most
	 * num entries can wait for a flush; one more would overwrite an
	 * unpublished entry (the slot is masked): the guest broke the rules.
	 */
	if (vq->pending >= vq->num) {
		vq_break(vq, "more used entries than the queue size before a flush");
		return;
	}
	slot = (uint16_t)(vq->used_idx + vq->pending) & (vq->num - 1);
	p = vq->used + vq_used_elem_off(slot);
	le32_write(p, head);
	le32_write(p + 4, len);
	vq_log_used(vq, vq_used_elem_off(slot), VRING_USED_ELEM_SIZE);
	vq->pending++;
}

/* Does the driver want an interrupt for used index @new_idx?  After a full barrier. */
static bool vq_should_signal(struct virtqueue *vq, uint16_t new_idx)
{
	uint16_t old = vq->signalled_used;
	bool valid = vq->signalled_valid;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(__atomic_load_n(vq_avail_flags(vq), __ATOMIC_RELAXED) &
			 VRING_AVAIL_F_NO_INTERRUPT);
	vq->signalled_used = new_idx;
	vq->signalled_valid = true;
	if (!valid)
		return true;
	return vring_need_event(__atomic_load_n(vq_used_event(vq), __ATOMIC_RELAXED), new_idx, old);
}

bool vq_flush(struct virtqueue *vq)
{
	uint16_t new_idx;

	if (!vq_usable(vq) || !vq->pending)
		return false;
	new_idx = (uint16_t)(vq->used_idx + vq->pending);
	__atomic_store_n(vq_used_idx(vq), new_idx, __ATOMIC_RELEASE);
	vq_log_used(vq, VRING_USED_IDX_OFF, sizeof(uint16_t));
	vq->used_idx = new_idx;
	vq->pending = 0;
	return vq_should_signal(vq, new_idx);
}

bool vq_enable_notify(struct virtqueue *vq)
{
	return vq_enable_notify_beyond(vq, 0);
}

bool vq_enable_notify_beyond(struct virtqueue *vq, uint16_t seen)
{
	uint16_t *p;

	if (!vq_usable(vq))
		return false;
	if (vq->event_idx) {
		/* The driver kicks when its avail index passes this one: at chain seen + 1. */
		p = (uint16_t *)(void *)(vq->used + vq_used_elem_off(vq->num));
		__atomic_store_n(p, (uint16_t)(vq->last_avail_idx + seen), __ATOMIC_RELAXED);
		vq_log_used(vq, vq_used_elem_off(vq->num), sizeof(uint16_t));
	} else {
		p = vq_used_flags(vq);
		__atomic_store_n(p, (uint16_t)(__atomic_load_n(p, __ATOMIC_RELAXED) &
					       ~VRING_USED_F_NO_NOTIFY), __ATOMIC_RELAXED);
		vq_log_used(vq, VRING_USED_FLAGS_OFF, sizeof(uint16_t));
	}
	/* Our store must be visible before we look at the avail index again. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vq_avail(vq) > (int)seen;
}

void vq_disable_notify(struct virtqueue *vq)
{
	uint16_t *p;

	if (!vq_usable(vq) || vq->event_idx)
		return;
	p = vq_used_flags(vq);
	__atomic_store_n(p, (uint16_t)(__atomic_load_n(p, __ATOMIC_RELAXED) | VRING_USED_F_NO_NOTIFY),
			 __ATOMIC_RELAXED);
	vq_log_used(vq, VRING_USED_FLAGS_OFF, sizeof(uint16_t));
}
