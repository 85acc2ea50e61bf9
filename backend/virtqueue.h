/* virtqueue.h - a split virtqueue (device side) over a vhost-user memory table. */
#ifndef MESHSLIRP_BACKEND_VIRTQUEUE_H
#define MESHSLIRP_BACKEND_VIRTQUEUE_H

/*
 * Theory of operation
 *
 * Lifecycle: vq_init() gives an unconfigured queue.  The front-end sets the
 * size (vq_set_num: a power of two up to VQ_MAX_SIZE, 1024), the ring
 * addresses (vq_set_addr) and the first index (vq_set_base), in any order;
 * vq_start() then checks the ring against the memory table -- descriptor table, avail
 * and used rings each aligned and entirely inside one mapped region -- and
 * resolves the three host pointers once.  vq_stop() forgets the pointers
 * (the memory table may go away) but keeps last_avail_idx for
 * GET_VRING_BASE.  vq_reset() returns to the vq_init() state.
 *
 * Popping: vq_pop() reads the avail index (acquire), takes the next head and
 * walks its chain.  Each descriptor is copied out of guest memory once, so
 * the guest changing it under us cannot make us see two versions.  Buffers
 * are translated through the memory table into the element's iovec array
 * (split at region boundaries): device-readable ones first, then
 * device-writable ones.  INDIRECT_DESC is supported: an indirect descriptor
 * (len a non-zero multiple of 16, never also NEXT, never inside another
 * indirect table) switches the walk to its table.  The walk visits at most
 * queue-size descriptors of the ring's table and at most the indirect
 * table's length after the switch (each entry once: a second visit is a
 * loop), so at most 2 * num - 1 in all; vq_elem.ndesc says how many, for
 * callers that budget work per frame.
 *
 * Violations -- an avail index that moved by more than the queue size, a
 * head or next index out of range, a loop or over-long chain, a readable
 * buffer after a writable one, a buffer outside mapped memory, a bad
 * indirect table, a chain above 4 GiB -- put the queue in the BROKEN state
 * with a static reason: nothing more is popped or pushed until the
 * front-end reconfigures it (set_num/addr/base or reset).  Only an element
 * that is valid but needs more than VQ_MAX_IOV iovecs is returned as
 * -E2BIG with its head, for the caller to give back unused.
 *
 * Completing: vq_push() writes used elements after the published index;
 * vq_flush() publishes them with one release store of used->idx and says
 * whether the driver wants an interrupt (EVENT_IDX: vring_need_event on
 * used_event since the last flush; otherwise the NO_INTERRUPT flag), after
 * a full barrier so the driver's view and ours cannot cross.
 *
 * Kicks: vq_enable_notify() asks the driver to kick on new buffers
 * (EVENT_IDX: avail_event = last_avail_idx; otherwise clears NO_NOTIFY),
 * then re-checks the avail index after a full barrier: if buffers arrived in
 * between, it returns true and the caller must keep going (that is the race
 * a lost kick would otherwise hide).  vq_enable_notify_beyond() does the
 * same for a caller that found the chains available too few (a frame that
 * needs more receive buffers than the guest has posted): the kick, and the
 * true, come only once there are more than it saw, so it waits instead of
 * popping the same chains again.  vq_disable_notify() sets NO_NOTIFY
 * (without EVENT_IDX; with it, leaving avail_event behind is enough).
 *
 * Dirty log: when a log is attached, every write to the used ring (elements,
 * index, flags, avail_event) is logged at the ring's log address
 * (VU_VRING_F_LOG); one that falls beyond the bitmap is counted
 * (log_missed).  Buffer writes are logged by the caller, which knows their
 * GPAs (struct vq_elem.gpa).
 *
 * Hosts are little-endian (checked at build time), so ring indices can be
 * loaded and stored atomically in place.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vu_mem.h"

/* Iovecs one element may need; a longer valid chain is returned as -E2BIG. */
#define VQ_MAX_IOV 1024

/*
 * Largest queue size we accept: QEMU's VIRTQUEUE_MAX_SIZE, the most its
 * virtio-net rx_queue_size/tx_queue_size can be.  The split-ring format
 * allows 32768 (VRING_MAX_SIZE); every walk and skip bound scales with it.
 */
#define VQ_MAX_SIZE 1024

/* Largest total of a chain's buffers: used.len is 32-bit. */
#define VQ_MAX_CHAIN_BYTES UINT32_MAX

struct vq_elem {
	uint16_t head;              /* descriptor index to return in vq_push() */
	unsigned int ndesc;         /* descriptors the walk visited (indirect, empty ones too) */
	unsigned int ring_desc;     /* of them, entries of the ring's own table (an indirect
				     * table's are not: the chain holds one ring entry for it) */
	unsigned int out_num;       /* device-readable iovecs: iov[0 .. out_num) */
	unsigned int in_num;        /* device-writable: iov[out_num .. out_num + in_num) */
	uint64_t out_len, in_len;   /* their total bytes, each <= VQ_MAX_CHAIN_BYTES */
	struct iovec iov[VQ_MAX_IOV];
	uint64_t gpa[VQ_MAX_IOV];   /* guest physical address of each iovec */
};

struct virtqueue {
	/* Configuration from the front-end. */
	uint32_t num;               /* queue size, 0 if unset */
	bool addr_set;
	uint64_t desc_uva, avail_uva, used_uva;
	uint64_t log_gpa;           /* GPA of the used ring, for the dirty log */
	bool log_used;              /* VU_VRING_F_LOG */
	bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;              /* VIRTIO_RING_F_INDIRECT_DESC negotiated */

	/* Running state. */
	bool started;
	uint8_t *desc, *avail, *used; /* host pointers, valid while started */
	const struct vu_mem *mem;
	const struct vu_log *log;
	uint16_t last_avail_idx;    /* next avail entry to pop */
	uint16_t used_idx;          /* published used index */
	uint16_t pending;           /* pushed, not yet published */
	uint16_t signalled_used;    /* used index at the last notify decision */
	bool signalled_valid;

	bool broken;                /* sticky until reconfigured */
	const char *broken_why;
	uint64_t violations;        /* times this queue broke */
	uint64_t log_missed;        /* used-ring writes beyond the dirty log, not marked */
};

/* vq_init() - an unconfigured, stopped queue. */
void vq_init(struct virtqueue *vq);

/* vq_reset() - back to vq_init()'s state (device reset). */
void vq_reset(struct virtqueue *vq);

/**
 * vq_set_num() - queue size from SET_VRING_NUM; clears BROKEN
 *
 * Return: 0, -EINVAL for 0 or a size that is not a power of two, -E2BIG
 * above VQ_MAX_SIZE, or -EBUSY while started.
 */
int vq_set_num(struct virtqueue *vq, uint32_t num);

/**
 * vq_set_addr() - ring addresses from SET_VRING_ADDR (front-end addresses); clears BROKEN
 *
 * Return: 0, or -EBUSY while started.
 */
int vq_set_addr(struct virtqueue *vq, uint64_t desc, uint64_t used, uint64_t avail,
		uint64_t log_gpa, bool log_used);

/**
 * vq_set_base() - first avail index from SET_VRING_BASE; clears BROKEN
 *
 * Return: 0, or -EBUSY while started.
 */
int vq_set_base(struct virtqueue *vq, uint16_t idx);

/**
 * vq_start() - check the ring against @mem and start using it
 * @vq:		configured queue (num and addresses set)
 * @mem:	memory table, must outlive the started queue
 * @log:	dirty log (logging when active), must outlive it too
 * @event_idx, @indirect:	negotiated ring features
 * @why:	set to a static reason on failure
 *
 * Return: 0, -EINVAL (not configured, misaligned, outside mapped memory).
 */
int vq_start(struct virtqueue *vq, const struct vu_mem *mem, const struct vu_log *log,
	     bool event_idx, bool indirect, const char **why);

/* vq_stop() - stop using guest memory; last_avail_idx is kept. */
void vq_stop(struct virtqueue *vq);

/**
 * vq_pop() - take the next available chain
 * @vq:		started queue
 * @e:		filled in
 *
 * Return: 1 with @e filled, 0 if none is available, -E2BIG if the chain is
 * valid but needs more than VQ_MAX_IOV iovecs (@e->head is set: give it
 * back with vq_push(vq, head, 0)), -EIO if the queue is (now) BROKEN or not
 * started.
 */
int vq_pop(struct virtqueue *vq, struct vq_elem *e);

/* vq_unpop() - give back the last @n popped elements, not pushed (they will be popped again). */
void vq_unpop(struct virtqueue *vq, uint16_t n);

/*
 * vq_push() - complete chain @head with @len bytes written; visible after
 * vq_flush().  More than num entries before a flush break the queue.
 */
void vq_push(struct virtqueue *vq, uint16_t head, uint32_t len);

/**
 * vq_flush() - publish pushed elements
 *
 * Return: true if the driver should be signalled now (call fd).
 */
bool vq_flush(struct virtqueue *vq);

/**
 * vq_avail() - chains available to pop
 *
 * Return: how many (0 .. num), or -EIO if BROKEN, not started, or the avail
 * index moved by more than num (that breaks the queue).
 */
int vq_avail(struct virtqueue *vq);

/**
 * vq_enable_notify() - ask the driver to kick on new buffers
 *
 * Return: true if buffers are already available (process them: their kick
 * may have been suppressed).
 */
bool vq_enable_notify(struct virtqueue *vq);

/**
 * vq_enable_notify_beyond() - ask the driver to kick once more than @seen
 * chains are available
 * @seen: the chains the caller's last pop found, and gave back, too few
 *         (not vq_avail() now: a chain posted since must count as new)
 *
 * Without EVENT_IDX the driver kicks on every new buffer, as after
 * vq_enable_notify(); with it, avail_event = last_avail_idx + @seen.
 *
 * Return: true if more than @seen are available already.
 */
bool vq_enable_notify_beyond(struct virtqueue *vq, uint16_t seen);

/* vq_disable_notify() - tell the driver kicks are not needed now. */
void vq_disable_notify(struct virtqueue *vq);

/* vq_break() - put the queue in the BROKEN state for @why (static string). */
void vq_break(struct virtqueue *vq, const char *why);

/* vq_usable() - started and not broken. */
static inline bool vq_usable(const struct virtqueue *vq)
{
	return vq->started && !vq->broken;
}

#endif /* MESHSLIRP_BACKEND_VIRTQUEUE_H */
