/* vudev.c - a minimal vhost-user-net device for tests (see vudev.h). */

/*
 * Theory of operation: see vudev.h.  Implementation notes:
 *
 * - A control message is read header first (12 bytes), so the descriptors
 *   that travel with it arrive with that read; then its payload.  Partial
 *   reads keep their state in struct vudev, so the socket never blocks.
 * - Guest addresses are translated region by region: a buffer that spans
 *   two regions (contiguous in guest addresses) becomes two iovec entries.
 *   Rings and indirect tables must lie within one region.
 * - A chain is walked at most as many steps as its table has entries, so a
 *   loop ends as an error, not a hang.
 */

#include "vudev.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <glib.h>

#define MSG_FDS_MAX 8               /* descriptors accepted with one message */
#define REPLY_WAIT_MS 1000          /* bound on writing a reply */
#define MTU_MIN 68
#define MTU_MAX 65535

struct region {
	uint64_t gpa, size, uaddr;
	uint8_t *map;               /* the whole mapping (offset included) */
	size_t map_len;
	uint8_t *host;              /* guest address gpa lives here */
};

struct dvq {
	unsigned int num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t log_addr;
	bool log, enabled, started;
	bool broken;                /* the driver moved avail->idx impossibly: stop */
	uint16_t last_avail;        /* next available entry to take */
	uint16_t used_idx;          /* next used entry to write (published at flush) */
	uint16_t flushed_idx;       /* used index at the last flush */
	int kick_fd, call_fd;
};

struct vudev {
	struct vudev_config cfg;
	int sock;
	uint64_t features, protocol;
	unsigned int hdr_len, mtu;
	bool mrg;
	struct region reg[VHOST_USER_MAX_REGIONS];
	unsigned int nreg;
	uint8_t *log;
	size_t log_len, log_size;
	struct dvq vq[VUDEV_NQUEUES];

	/* control message being read */
	struct vhost_user_hdr hdr;
	size_t hdr_got, payload_got;
	uint8_t payload[VHOST_USER_PAYLOAD_MAX];
	int fds[MSG_FDS_MAX];
	unsigned int nfds;
	bool extra_fds;             /* more than MSG_FDS_MAX arrived */

	/* receive space handed out by vudev_rx_peek() */
	uint16_t peek_head[VUDEV_IOV_MAX];
	uint32_t peek_cap[VUDEV_IOV_MAX];
	unsigned int peek_iov0[VUDEV_IOV_MAX]; /* first iov of each chain */
	unsigned int npeek;
	struct iovec *peek_iov;
	uint64_t peek_gpa[VUDEV_IOV_MAX];

	struct vudev_stats stats;
};

/* Close *@fd if open and mark it closed. */
static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Unmap the memory table; the rings pointed into it, so they are forgotten too. */
static void unmap_regions(struct vudev *d)
{
	for (unsigned int r = 0; r < d->nreg; r++)
		munmap(d->reg[r].map, d->reg[r].map_len);
	d->nreg = 0;
	for (unsigned int q = 0; q < VUDEV_NQUEUES; q++) {
		d->vq[q].desc = NULL;
		d->vq[q].avail = NULL;
		d->vq[q].used = NULL;
	}
}

int vudev_new(int sock, const struct vudev_config *cfg, struct vudev **out)
{
	struct vudev *d = g_new0(struct vudev, 1);

	d->cfg = *cfg;
	d->sock = sock;
	d->hdr_len = VIRTIO_NET_HDR_LEN_LEGACY;
	for (unsigned int q = 0; q < VUDEV_NQUEUES; q++)
		d->vq[q].kick_fd = d->vq[q].call_fd = -1;
	for (unsigned int i = 0; i < MSG_FDS_MAX; i++)
		d->fds[i] = -1;
	if (fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK) < 0) {
		int err = -errno;

		g_free(d);
		return err;
	}
	*out = d;
	return 0;
}

void vudev_free(struct vudev *d)
{
	if (!d)
		return;
	close_fd(&d->sock);
	for (unsigned int q = 0; q < VUDEV_NQUEUES; q++) {
		close_fd(&d->vq[q].kick_fd);
		close_fd(&d->vq[q].call_fd);
	}
	for (unsigned int i = 0; i < d->nfds; i++)
		close_fd(&d->fds[i]);
	unmap_regions(d);
	if (d->log)
		munmap(d->log, d->log_len);
	g_free(d);
}

/* --- address translation --- */

/* Our pointer to front-end user address @ua for @len bytes in one region, or NULL. */
static void *uaddr_ptr(struct vudev *d, uint64_t ua, uint64_t len)
{
	for (unsigned int r = 0; r < d->nreg; r++) {
		struct region *g = &d->reg[r];

		if (ua >= g->uaddr && len <= g->size && ua - g->uaddr <= g->size - len)
			return g->host + (ua - g->uaddr);
	}
	return NULL;
}

/* Our pointer to guest address @gpa for @len bytes in one region, or NULL. */
static void *gpa_ptr(struct vudev *d, uint64_t gpa, uint64_t len)
{
	for (unsigned int r = 0; r < d->nreg; r++) {
		struct region *g = &d->reg[r];

		if (gpa >= g->gpa && len <= g->size && gpa - g->gpa <= g->size - len)
			return g->host + (gpa - g->gpa);
	}
	return NULL;
}

/*
 * map_range() - append [@gpa, @gpa + @len) to @iov (and its guest addresses
 * to @gpas), one entry per region crossed.  Return: 0, -EFAULT for an
 * address outside every region, -E2BIG when @iov is full.
 */
static int map_range(struct vudev *d, uint64_t gpa, uint64_t len, struct iovec *iov,
		     uint64_t *gpas, unsigned int *n, unsigned int max)
{
	while (len) {
		struct region *g = NULL;
		uint64_t step;

		for (unsigned int r = 0; r < d->nreg && !g; r++)
			if (gpa >= d->reg[r].gpa && gpa - d->reg[r].gpa < d->reg[r].size)
				g = &d->reg[r];
		if (!g)
			return -EFAULT;
		if (*n >= max)
			return -E2BIG;
		step = MIN(len, g->size - (gpa - g->gpa));
		iov[*n] = (struct iovec){ g->host + (gpa - g->gpa), step };
		if (gpas)
			gpas[*n] = gpa;
		(*n)++;
		len -= step;
		if (gpa + step < gpa)
			return -EFAULT;
		gpa += step;
	}
	return 0;
}

/*
 * walk_chain() - the buffers of the chain at @head on @vq
 * @write:	the device writes them (receive) or reads them (transmit)
 * @len:	set to their total size
 *
 * Return: 0, or -EPROTO for anything the spec forbids (wrong direction,
 * bad address, loop, nested or malformed indirect table).
 */
static int walk_chain(struct vudev *d, struct dvq *vq, uint16_t head, bool write,
		      struct iovec *iov, uint64_t *gpas, unsigned int *niov, unsigned int max,
		      size_t *len)
{
	struct vring_desc *table = vq->desc;
	unsigned int size = vq->num, idx = head, steps = 0;
	bool indirect = false;

	*len = 0;
	if (head >= vq->num)
		return -EPROTO;
	for (;;) {
		struct vring_desc desc = table[idx];

		if (desc.flags & VRING_DESC_F_INDIRECT) {
			if (indirect || (desc.flags & VRING_DESC_F_NEXT) || !desc.len ||
			    desc.len % sizeof(struct vring_desc) ||
			    !(d->features & VU_BIT(VIRTIO_RING_F_INDIRECT_DESC)))
				return -EPROTO;
			table = gpa_ptr(d, desc.addr, desc.len);
			if (!table || (desc.addr % _Alignof(struct vring_desc)))
				return -EPROTO;
			size = desc.len / sizeof(struct vring_desc);
			idx = 0;
			steps = 0;
			indirect = true;
			continue;
		}
		if (!(desc.flags & VRING_DESC_F_WRITE) != !write)
			return -EPROTO;
		if (map_range(d, desc.addr, desc.len, iov, gpas, niov, max))
			return -EPROTO;
		*len += desc.len;
		if (++steps > size)
			return -EPROTO;
		if (!(desc.flags & VRING_DESC_F_NEXT))
			return 0;
		idx = desc.next;
		if (idx >= size)
			return -EPROTO;
	}
}

/* --- dirty log --- */

static void log_range(struct vudev *d, uint64_t gpa, uint64_t len)
{
	if (!d->log || !len || !(d->features & VU_BIT(VHOST_F_LOG_ALL)))
		return;
	for (uint64_t p = gpa / VHOST_LOG_PAGE; p <= (gpa + len - 1) / VHOST_LOG_PAGE; p++) {
		if (p / 8 >= d->log_size)
			break;
		__atomic_fetch_or(&d->log[p / 8], (uint8_t)(1u << (p % 8)), __ATOMIC_RELAXED);
		d->stats.log_writes++;
	}
}

/* --- rings --- */

static void push_used(struct vudev *d, struct dvq *vq, uint32_t id, uint32_t len)
{
	unsigned int slot = vq->used_idx++ % vq->num;

	vq->used->ring[slot] = (struct vring_used_elem){ .id = id, .len = len };
	if (vq->log)
		log_range(d, vq->log_addr + offsetof(struct vring_used, ring) +
			  slot * sizeof(struct vring_used_elem), sizeof(struct vring_used_elem));
}

void vudev_push_raw_used(struct vudev *d, unsigned int q, uint32_t id, uint32_t len)
{
	push_used(d, &d->vq[q], id, len);
}

void vudev_flush(struct vudev *d, unsigned int q)
{
	struct dvq *vq = &d->vq[q];
	uint16_t old = vq->flushed_idx, new_idx = vq->used_idx;
	bool need;
	uint64_t one = 1;

	if (!vq->used || old == new_idx)
		return;
	vring_store16(&vq->used->idx, new_idx);
	if (vq->log)
		log_range(d, vq->log_addr + offsetof(struct vring_used, idx), sizeof(uint16_t));
	vq->flushed_idx = new_idx;
	vring_mb();
	if (d->features & VU_BIT(VIRTIO_RING_F_EVENT_IDX))
		need = vring_need_event(vring_load16(vring_used_event(vq->avail, vq->num)),
					new_idx, old);
	else
		need = !(vring_load16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	if (!need || vq->call_fd < 0) {
		d->stats.calls_suppressed++;
		return;
	}
	if (write(vq->call_fd, &one, sizeof(one)) == sizeof(one))
		d->stats.calls++;
}

bool vudev_notify_on(struct vudev *d, unsigned int q)
{
	struct dvq *vq = &d->vq[q];

	uint16_t seen;

	if (!vq->used)
		return false;
	if (!(d->features & VU_BIT(VIRTIO_RING_F_EVENT_IDX))) {
		vring_store16(&vq->used->flags, 0);
		vring_mb();
		return vring_load16(&vq->avail->idx) != vq->last_avail;
	}
	/*
	 * "Kick me past what is published now" (not past last_avail: a starved
	 * receiveq waits with entries pending).  Until the index holds still
	 * across the store, the driver may have published without seeing it.
	 */
	do {
		seen = vring_load16(&vq->avail->idx);
		vring_store16(vring_avail_event(vq->used, vq->num), seen);
		vring_mb();
	} while (vring_load16(&vq->avail->idx) != seen);
	return seen != vq->last_avail;
}

void vudev_notify_off(struct vudev *d, unsigned int q)
{
	struct dvq *vq = &d->vq[q];

	if (!vq->used)
		return;
	if (d->features & VU_BIT(VIRTIO_RING_F_EVENT_IDX))
		vring_store16(vring_avail_event(vq->used, vq->num), (uint16_t)(vq->last_avail - 1));
	else
		vring_store16(&vq->used->flags, VRING_USED_F_NO_NOTIFY);
}

unsigned int vudev_avail_pending(const struct vudev *d, unsigned int q)
{
	const struct dvq *vq = &d->vq[q];

	if (!vq->avail)
		return 0;
	return (uint16_t)(vring_load16(&vq->avail->idx) - vq->last_avail);
}

/*
 * Whether a transmit header asks only for what was negotiated (5.1.6.2): a
 * partial checksum with VIRTIO_NET_F_CSUM, TCPv4 segmentation with
 * HOST_TSO4, no receive-only flag, num_buffers 0.
 */
static bool tx_hdr_ok(const struct vudev *d, const struct vudev_chain *c)
{
	struct virtio_net_hdr_v1 h = { 0 };
	size_t got = 0;

	for (unsigned int i = 0; i < c->niov && got < d->hdr_len; i++) {
		size_t n = MIN(c->iov[i].iov_len, d->hdr_len - got);

		memcpy((uint8_t *)&h + got, c->iov[i].iov_base, n);
		got += n;
	}
	if (got < d->hdr_len || (h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) || h.num_buffers)
		return false;
	if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !(d->features & VU_BIT(VIRTIO_NET_F_CSUM)))
		return false;
	switch (h.gso_type) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return (d->features & VU_BIT(VIRTIO_NET_F_HOST_TSO4)) && h.gso_size;
	default:
		return false;
	}
}

int vudev_tx_pop(struct vudev *d, struct vudev_chain *c)
{
	struct dvq *vq = &d->vq[VUDEV_TXQ];
	unsigned int pending;
	uint16_t head;

	if (!vudev_ready(d, VUDEV_TXQ))
		return -EAGAIN;
	if (vq->broken)
		return -EIO;
	pending = vudev_avail_pending(d, VUDEV_TXQ);
	if (!pending)
		return -EAGAIN;
	if (pending > vq->num) {
		/* As vhost-net does: the queue is dead until the next SET_VRING_KICK. */
		vq->broken = true;
		d->stats.bad_chains++;
		return -EIO;
	}
	head = vq->avail->ring[vq->last_avail++ % vq->num];
	c->niov = 0;
	if (walk_chain(d, vq, head, false, c->iov, NULL, &c->niov, VUDEV_IOV_MAX, &c->len)) {
		d->stats.bad_chains++;
		if (head < vq->num)
			push_used(d, vq, head, 0);
		return -EPROTO;
	}
	c->head = head;
	d->stats.tx_chains++;
	if (!tx_hdr_ok(d, c))
		d->stats.bad_tx_hdrs++;
	return 0;
}

void vudev_tx_push(struct vudev *d, uint16_t head)
{
	push_used(d, &d->vq[VUDEV_TXQ], head, 0);
}

int vudev_rx_peek(struct vudev *d, size_t need, struct iovec *iov, unsigned int *niov,
		  size_t *cap)
{
	struct dvq *vq = &d->vq[VUDEV_RXQ];
	unsigned int pending, k = 0;

	d->npeek = 0;
	*niov = 0;
	*cap = 0;
	if (!vudev_ready(d, VUDEV_RXQ))
		return -EAGAIN;
	if (vq->broken)
		return -EIO;
	pending = vudev_avail_pending(d, VUDEV_RXQ);
	if (pending > vq->num) {
		vq->broken = true;
		return -EIO;
	}
	while (*cap < need || !k) {
		size_t clen;
		uint16_t head;

		if (k >= pending || d->npeek >= VUDEV_IOV_MAX)
			return -EAGAIN;
		head = vq->avail->ring[(uint16_t)(vq->last_avail + k) % vq->num];
		d->peek_head[d->npeek] = head;
		d->peek_iov0[d->npeek] = *niov;
		if (walk_chain(d, vq, head, true, iov, d->peek_gpa, niov, VUDEV_IOV_MAX, &clen))
			return -EPROTO;
		d->peek_cap[d->npeek++] = (uint32_t)clen;
		*cap += clen;
		k++;
		if (!d->mrg)
			break;
	}
	d->peek_iov = iov;
	return 0;
}

void vudev_rx_commit(struct vudev *d, size_t len)
{
	struct dvq *vq = &d->vq[VUDEV_RXQ];
	size_t rem = len;
	unsigned int nb = 0;
	uint16_t nbuf;

	for (size_t acc = 0; nb < d->npeek && (acc < len || !nb); nb++)
		acc += d->peek_cap[nb];
	/* num_buffers first: the used index published later makes it visible. */
	nbuf = (uint16_t)(d->mrg ? nb : 1);
	if (d->hdr_len == VIRTIO_NET_HDR_LEN && d->peek_iov[0].iov_len >= VIRTIO_NET_HDR_LEN)
		memcpy((uint8_t *)d->peek_iov[0].iov_base +
		       offsetof(struct virtio_net_hdr_v1, num_buffers), &nbuf, sizeof(nbuf));
	for (unsigned int j = 0; j < nb; j++) {
		uint32_t l = (uint32_t)MIN(rem, (size_t)d->peek_cap[j]);
		unsigned int end = j + 1 < d->npeek ? d->peek_iov0[j + 1] : VUDEV_IOV_MAX;
		size_t left = l;

		for (unsigned int i = d->peek_iov0[j]; i < end && left; i++) {
			size_t piece = MIN(left, d->peek_iov[i].iov_len);

			log_range(d, d->peek_gpa[i], piece);
			left -= piece;
		}
		push_used(d, vq, d->peek_head[j], l);
		rem -= l;
	}
	vq->last_avail += (uint16_t)nb;
	d->npeek = 0;
	d->stats.rx_frames++;
	d->stats.rx_bufs += nb;
}

/* --- control --- */

/* Send a reply to @req; 0 or -errno. */
static int reply(struct vudev *d, uint32_t req, const void *payload, size_t len)
{
	uint8_t buf[VHOST_USER_HDR_SIZE + VHOST_USER_PAYLOAD_MAX];
	struct vhost_user_hdr h = { .request = req,
				    .flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY,
				    .size = (uint32_t)len };
	size_t off = 0, total = VHOST_USER_HDR_SIZE + len;

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	while (off < total) {
		ssize_t n = send(d->sock, buf + off, total - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		struct pollfd p = { .fd = d->sock, .events = POLLOUT };

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		if (poll(&p, 1, REPLY_WAIT_MS) <= 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/* A reply carrying one u64. */
static int reply_u64(struct vudev *d, uint32_t req, uint64_t v)
{
	return reply(d, req, &v, sizeof(v));
}

/* Take the message's only descriptor, or -1 if it did not carry exactly one. */
static int take_fd(struct vudev *d)
{
	int fd;

	if (d->nfds != 1)
		return -1;
	fd = d->fds[0];
	d->fds[0] = -1;
	return fd;
}

/* SET_MEM_TABLE: check table and fds (count, overlap, sizes), map each region. 0 or -EPROTO. */
static int set_mem_table(struct vudev *d)
{
	struct vhost_user_mem_table t = { 0 };
	size_t need;

	if (d->hdr.size < offsetof(struct vhost_user_mem_table, regions))
		return -EPROTO;
	memcpy(&t, d->payload, MIN((size_t)d->hdr.size, sizeof(t)));
	need = offsetof(struct vhost_user_mem_table, regions) + t.nregions * sizeof(t.regions[0]);
	if (!t.nregions || t.nregions > VHOST_USER_MAX_REGIONS || d->hdr.size < need ||
	    d->nfds != t.nregions)
		return -EPROTO;
	for (unsigned int i = 0; i < t.nregions; i++)
		for (unsigned int j = 0; j < i; j++) {
			struct vhost_user_region *a = &t.regions[i], *b = &t.regions[j];

			if (a->guest_phys_addr < b->guest_phys_addr + b->memory_size &&
			    b->guest_phys_addr < a->guest_phys_addr + a->memory_size)
				return -EPROTO;
		}
	unmap_regions(d);
	for (unsigned int i = 0; i < t.nregions; i++) {
		struct vhost_user_region *r = &t.regions[i];
		struct region *g = &d->reg[i];
		struct stat st;
		void *m;

		if (!r->memory_size || r->mmap_offset + r->memory_size < r->mmap_offset ||
		    fstat(d->fds[i], &st) < 0 ||
		    (uint64_t)st.st_size < r->mmap_offset + r->memory_size)
			return -EPROTO;
		m = mmap(NULL, r->mmap_offset + r->memory_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 d->fds[i], 0);
		if (m == MAP_FAILED)
			return -EPROTO;
		*g = (struct region){ .gpa = r->guest_phys_addr, .size = r->memory_size,
				      .uaddr = r->userspace_addr, .map = m,
				      .map_len = r->mmap_offset + r->memory_size,
				      .host = (uint8_t *)m + r->mmap_offset };
		d->nreg = i + 1;
	}
	return 0;
}

/* SET_LOG_BASE: map the log (no larger than its fd), reply if LOG_SHMFD. 0 or -EPROTO. */
static int set_log_base(struct vudev *d)
{
	struct vhost_user_log l;
	int fd = take_fd(d);
	struct stat st;
	void *m;

	if (d->hdr.size == sizeof(l))
		memcpy(&l, d->payload, sizeof(l));
	/* A log larger than its fd would fault (SIGBUS) on the first write. */
	if (d->hdr.size != sizeof(l) || fd < 0 || fstat(fd, &st) < 0 ||
	    l.offset + l.size < l.offset || (uint64_t)st.st_size < l.offset + l.size) {
		close_fd(&fd);
		return -EPROTO;
	}
	if (d->log)
		munmap(d->log, d->log_len);
	d->log = NULL;
	m = mmap(NULL, l.size + l.offset, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -EPROTO;
	d->log_len = l.size + l.offset;
	d->log = (uint8_t *)m + l.offset;
	d->log_size = l.size;
	if (d->protocol & VU_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD))
		return reply_u64(d, VHOST_USER_SET_LOG_BASE, 0);
	return 0;
}

/* SET_VRING_ADDR: translate the three parts (each in one region), note F_LOG. 0 or -EPROTO. */
static int set_vring_addr(struct vudev *d)
{
	struct vhost_user_vring_addr a;
	struct dvq *vq;

	if (d->hdr.size != sizeof(a))
		return -EPROTO;
	memcpy(&a, d->payload, sizeof(a));
	if (a.index >= VUDEV_NQUEUES || !d->vq[a.index].num)
		return -EPROTO;
	vq = &d->vq[a.index];
	vq->desc = uaddr_ptr(d, a.desc_user_addr, vring_desc_bytes(vq->num));
	vq->avail = uaddr_ptr(d, a.avail_user_addr, vring_avail_bytes(vq->num));
	vq->used = uaddr_ptr(d, a.used_user_addr, vring_used_bytes(vq->num));
	if (!vq->desc || !vq->avail || !vq->used)
		return -EPROTO;
	vq->log = a.flags & VHOST_VRING_F_LOG;
	vq->log_addr = a.log_guest_addr;
	return 0;
}

/* SET_VRING_KICK/CALL/ERR: the queue index, and the fd unless bit 8 says there is none. */
static int set_vring_fd(struct vudev *d, uint32_t req)
{
	uint64_t v;
	struct dvq *vq;
	int fd;

	if (d->hdr.size != sizeof(v))
		return -EPROTO;
	memcpy(&v, d->payload, sizeof(v));
	if ((v & VHOST_USER_VRING_IDX_MASK) >= VUDEV_NQUEUES)
		return -EPROTO;
	vq = &d->vq[v & VHOST_USER_VRING_IDX_MASK];
	fd = (v & VHOST_USER_VRING_NOFD) ? -1 : take_fd(d);
	if (!(v & VHOST_USER_VRING_NOFD) && fd < 0)
		return -EPROTO;
	if (req == VHOST_USER_SET_VRING_KICK) {
		close_fd(&vq->kick_fd);
		vq->kick_fd = fd;
		vq->started = true;
		vq->broken = false;
		if (vq->used) {
			vq->used_idx = vq->flushed_idx = vring_load16(&vq->used->idx);
		}
		if (!(d->features & VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
			vq->enabled = true;
	} else if (req == VHOST_USER_SET_VRING_CALL) {
		close_fd(&vq->call_fd);
		vq->call_fd = fd;
	} else {
		close_fd(&fd);
	}
	return 0;
}

/* Parse a vring state payload into @s; the index must be one of ours. 0 or -EPROTO. */
static int vring_state(struct vudev *d, struct vhost_user_vring_state *s)
{
	if (d->hdr.size != sizeof(*s))
		return -EPROTO;
	memcpy(s, d->payload, sizeof(*s));
	return s->index < VUDEV_NQUEUES ? 0 : -EPROTO;
}

/* Handle the message in d->hdr / d->payload / d->fds. 0, 1 (NACK), or -EPROTO. */
static int dispatch(struct vudev *d)
{
	struct vhost_user_vring_state s;
	uint64_t v = 0;
	int ret = 0;

	if (d->hdr.size == sizeof(v))
		memcpy(&v, d->payload, sizeof(v));
	d->stats.messages++;
	switch (d->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		return reply_u64(d, d->hdr.request, d->cfg.features);
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		return reply_u64(d, d->hdr.request, d->cfg.protocol_features);
	case VHOST_USER_GET_QUEUE_NUM:
		return reply_u64(d, d->hdr.request, 1);
	case VHOST_USER_SET_FEATURES:
		if (d->hdr.size != sizeof(v) || (v & ~d->cfg.features))
			return -EPROTO;
		d->features = v;
		d->mrg = v & VU_BIT(VIRTIO_NET_F_MRG_RXBUF);
		d->hdr_len = (d->mrg || (v & VU_BIT(VIRTIO_F_VERSION_1))) ?
			     VIRTIO_NET_HDR_LEN : VIRTIO_NET_HDR_LEN_LEGACY;
		return 0;
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		if (d->hdr.size != sizeof(v) || (v & ~d->cfg.protocol_features))
			return -EPROTO;
		d->protocol = v;
		return 0;
	case VHOST_USER_SET_OWNER:
	case VHOST_USER_RESET_OWNER:
		return 0;
	case VHOST_USER_SET_MEM_TABLE:
		return set_mem_table(d);
	case VHOST_USER_SET_LOG_BASE:
		return set_log_base(d);
	case VHOST_USER_SET_LOG_FD: {
		int fd = take_fd(d);

		close_fd(&fd);
		return 0;
	}
	case VHOST_USER_SET_VRING_NUM:
		ret = vring_state(d, &s);
		if (ret || !s.num || s.num > VRING_QUEUE_MAX || (s.num & (s.num - 1)))
			return -EPROTO;
		d->vq[s.index].num = s.num;
		return 0;
	case VHOST_USER_SET_VRING_ADDR:
		return set_vring_addr(d);
	case VHOST_USER_SET_VRING_BASE:
		ret = vring_state(d, &s);
		if (ret || s.num > UINT16_MAX)
			return -EPROTO;
		d->vq[s.index].last_avail = (uint16_t)s.num;
		return 0;
	case VHOST_USER_GET_VRING_BASE:
		ret = vring_state(d, &s);
		if (ret)
			return ret;
		d->vq[s.index].started = false;
		close_fd(&d->vq[s.index].kick_fd);
		s.num = d->vq[s.index].last_avail;
		return reply(d, d->hdr.request, &s, sizeof(s));
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		return set_vring_fd(d, d->hdr.request);
	case VHOST_USER_SET_VRING_ENABLE:
		ret = vring_state(d, &s);
		if (ret)
			return ret;
		d->vq[s.index].enabled = s.num;
		return 0;
	case VHOST_USER_NET_SET_MTU:
		if (d->hdr.size != sizeof(v))
			return -EPROTO;
		if (v < MTU_MIN || v > MTU_MAX)
			return 1;
		d->mtu = (unsigned int)v;
		return 0;
	case VHOST_USER_RESET_DEVICE:
		for (unsigned int q = 0; q < VUDEV_NQUEUES; q++) {
			d->vq[q].started = d->vq[q].enabled = false;
			close_fd(&d->vq[q].kick_fd);
		}
		return 0;
	default:
		return -EPROTO;
	}
}

/* Read into @buf; collect descriptors. >0 bytes, 0 would block, -ECONNRESET at EOF/error. */
static ssize_t read_part(struct vudev *d, void *buf, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(int) * MSG_FDS_MAX * 2)];
	struct iovec iov = { buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	ssize_t n;

	do {
		n = recvmsg(d->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0)
		return -ECONNRESET;
	if (msg.msg_flags & MSG_CTRUNC)
		d->extra_fds = true;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (d->nfds < MSG_FDS_MAX) {
				d->fds[d->nfds++] = fd;
			} else {
				close(fd);
				d->extra_fds = true;
			}
		}
	}
	return n;
}

int vudev_handle_control(struct vudev *d)
{
	for (;;) {
		ssize_t n;
		int ret;

		if (d->sock < 0)
			return -ECONNRESET;
		if (d->hdr_got < VHOST_USER_HDR_SIZE) {
			n = read_part(d, (uint8_t *)&d->hdr + d->hdr_got,
				      VHOST_USER_HDR_SIZE - d->hdr_got);
			if (n <= 0)
				return (int)n;
			d->hdr_got += (size_t)n;
			if (d->hdr_got == VHOST_USER_HDR_SIZE && d->hdr.size > VHOST_USER_PAYLOAD_MAX)
				goto bad;
			continue;
		}
		if (d->payload_got < d->hdr.size) {
			n = read_part(d, d->payload + d->payload_got, d->hdr.size - d->payload_got);
			if (n <= 0)
				return (int)n;
			d->payload_got += (size_t)n;
			continue;
		}
		if ((d->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION || d->extra_fds)
			goto bad;
		ret = dispatch(d);
		if (ret < 0)
			goto bad;
		if ((d->hdr.flags & VHOST_USER_FLAG_NEED_REPLY) &&
		    (d->protocol & VU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)) &&
		    d->hdr.request != VHOST_USER_GET_FEATURES &&
		    d->hdr.request != VHOST_USER_GET_PROTOCOL_FEATURES &&
		    d->hdr.request != VHOST_USER_GET_VRING_BASE &&
		    d->hdr.request != VHOST_USER_GET_QUEUE_NUM &&
		    d->hdr.request != VHOST_USER_SET_LOG_BASE &&
		    reply_u64(d, d->hdr.request, (uint64_t)ret))
			goto bad;
		for (unsigned int i = 0; i < d->nfds; i++)
			close_fd(&d->fds[i]);
		d->nfds = 0;
		d->hdr_got = d->payload_got = 0;
	}
bad:
	g_debug("vudev: closing on request %u (size %u, %u fds)", d->hdr.request, d->hdr.size,
		d->nfds);
	for (unsigned int i = 0; i < d->nfds; i++)
		close_fd(&d->fds[i]);
	d->nfds = 0;
	close_fd(&d->sock);
	return -EPROTO;
}

/* --- accessors --- */

int vudev_sock_fd(const struct vudev *d) { return d->sock; }
int vudev_kick_fd(const struct vudev *d, unsigned int q) { return d->vq[q].kick_fd; }
uint64_t vudev_features(const struct vudev *d) { return d->features; }
unsigned int vudev_hdr_len(const struct vudev *d) { return d->hdr_len; }
unsigned int vudev_mtu(const struct vudev *d) { return d->mtu; }
const struct vudev_stats *vudev_stats(const struct vudev *d) { return &d->stats; }

uint64_t vudev_kick_drain(struct vudev *d, unsigned int q)
{
	uint64_t v = 0;

	if (d->vq[q].kick_fd < 0 || read(d->vq[q].kick_fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

bool vudev_ready(const struct vudev *d, unsigned int q)
{
	const struct dvq *vq = &d->vq[q];

	return vq->started && vq->enabled && vq->desc && vq->avail && vq->used;
}
