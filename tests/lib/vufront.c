/* vufront.c - a vhost-user front-end and virtio-net driver for tests (see vufront.h). */

/*
 * Theory of operation: see vufront.h.  Implementation notes:
 *
 * - Indices.  Each queue keeps avail_idx (the next available slot, ours),
 *   notified_idx (avail_idx when we last decided whether to kick: the "old"
 *   of the EVENT_IDX test) and last_used (the next used element to read).
 *   A used index more than the queue size ahead of last_used is a device
 *   error that breaks the queue: nothing is read from it any more.
 * - Free receive chains wait in a FIFO, so buffers are reused round-robin
 *   (a device that holds on to a stale buffer writes into one we do not
 *   expect and is caught by the id checks).  Free transmit slots are a
 *   stack: the slot the device completed last is filled next, as a guest's
 *   allocator hands out the buffer freed last, so the bytes the tap writes
 *   land in cache-warm memory (and a device that completes a chain before it
 *   has read it sees the slot overwritten at once).  inflight[] marks
 *   posted heads.
 * - The control socket is read through a small buffer; a reply is one whole
 *   message; descriptors the backend sends are closed and counted.
 */

#include "vufront.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <glib.h>

#define PAGE 4096u
#define PUMP_SLICE_MS 50            /* longest single pump call while waiting */
#define RAW_PAYLOAD_MAX (64 * 1024)  /* largest raw payload a test may send */
#define LAYOUT_TRIES 64              /* auto-sizing attempts */
#define WARN_MAX 20                  /* device errors logged per vufront; all are counted */

/* Log a device error, the first WARN_MAX times only (a broken backend could flood). */
#define vf_warn(vf, ...) \
	do { \
		if ((vf)->warned < WARN_MAX) { \
			(vf)->warned++; \
			g_warning(__VA_ARGS__); \
		} \
	} while (0)

/* Free chains: a FIFO (receive: round-robin) or, with @lifo, a stack (transmit). */
struct fifo {
	uint16_t *v;
	unsigned int cap, head, count;
	bool lifo;
};

struct vq {
	unsigned int num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	size_t desc_off, avail_off, used_off;   /* in the memfd */
	uint16_t avail_idx;         /* next available slot (private until published) */
	uint16_t published_idx;     /* avail->idx as last stored */
	uint16_t notified_idx;      /* avail index at the last kick decision */
	uint16_t last_used;         /* next used element to read */
	uint16_t partial_at;        /* last_used where a partial MRG frame was counted */
	uint16_t partial_seen;      /* the used index then: wait for it to move */
	bool partial_counted;
	bool broken;                /* the device broke the used ring: stop reading it */
	bool log;                   /* VHOST_VRING_F_LOG is set */
	int kick_fd, call_fd;
	struct fifo free;           /* free chain heads (RX) or slots (TX) */
	uint8_t *inflight;          /* per descriptor: 1 if posted as a head */
};

struct area {
	uint8_t *p;
	uint64_t gpa;
	size_t off;
};

struct vufront {
	struct vufront_config cfg;
	int memfd;
	uint8_t *mem;
	size_t mem_size, rsize;
	int sock;
	vufront_pump_fn pump;
	void *pump_opaque;

	uint64_t offered, features, poffered, protocol;
	unsigned int hdr_len;
	bool mrg, event_idx, started;
	unsigned int rx_chain;      /* descriptors per receive chain in use */
	unsigned int tx_descs;      /* descriptors per transmit slot in the table */
	unsigned int tx_nslots;
	size_t tx_slot_size;

	struct vq vq[VUFRONT_NQUEUES];
	struct area *rxbuf;         /* queue_size buffers of rx_buf_size */
	struct area *txslot;        /* queue_size slots of tx_slot_size */
	struct area *txind;         /* queue_size two-entry indirect tables */
	struct area scratch;
	size_t scratch_size, scratch_used;

	int logfd;
	uint8_t *log;
	size_t log_size;

	uint8_t rbuf[VHOST_USER_HDR_SIZE + VHOST_USER_PAYLOAD_MAX];
	size_t rlen;
	struct vufront_rxframe rxf;  /* vufront_recv()'s frame: no allocation per call */
	unsigned int warned;         /* device errors logged so far */
	struct vufront_stats stats;
};

/* --- small helpers --- */

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

/* Monotonic clock in milliseconds. */
static int64_t now_ms(void)
{
	return g_get_monotonic_time() / 1000;
}

/* fifo_init() - an empty FIFO of @cap entries (the array is freed with the vufront). */
static void fifo_init(struct fifo *f, unsigned int cap)
{
	f->v = g_new0(uint16_t, cap);
	f->cap = cap;
	f->head = f->count = 0;
}

/* fifo_reset() - drop every entry. */
static void fifo_reset(struct fifo *f)
{
	f->head = f->count = 0;
}

/* fifo_push() - append @x (ignored when full: a caller bug, never a device's). */
static void fifo_push(struct fifo *f, uint16_t x)
{
	if (f->count < f->cap)
		f->v[(f->head + f->count++) % f->cap] = x;
}

/* fifo_peek() - the entry fifo_pop() returns next (not on an empty one). */
static uint16_t fifo_peek(const struct fifo *f)
{
	return f->v[f->lifo ? (f->head + f->count - 1) % f->cap : f->head];
}

/* fifo_pop() - take the oldest entry, or the newest with f->lifo. */
static uint16_t fifo_pop(struct fifo *f)
{
	uint16_t x = fifo_peek(f);

	if (!f->lifo)
		f->head = (f->head + 1) % f->cap;
	f->count--;
	return x;
}

/* Close *@fd if open and mark it closed. */
static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Guest address of memfd offset @off. */
static uint64_t off_to_gpa(const struct vufront *vf, size_t off)
{
	size_t r = off / vf->rsize;

	return vf->cfg.gpa_base + r * (vf->rsize + vf->cfg.gpa_gap) + off % vf->rsize;
}

/* memfd offset of guest address @gpa, or -1 outside every region. */
static int64_t gpa_to_off(const struct vufront *vf, uint64_t gpa)
{
	uint64_t rel, stride = vf->rsize + vf->cfg.gpa_gap, r, within;

	if (gpa < vf->cfg.gpa_base)
		return -1;
	rel = gpa - vf->cfg.gpa_base;
	r = rel / stride;
	within = rel % stride;
	if (r >= vf->cfg.nregions || within >= vf->rsize)
		return -1;
	return (int64_t)(r * vf->rsize + within);
}

/* --- layout --- */

struct bump {
	size_t off, size, rsize;
};

/*
 * bump_alloc() - @len bytes at @align from the layout cursor; with @stay, in
 * one region (skipping to the next region's start if needed).  Return: the
 * offset, or (size_t)-1 when memory is exhausted.
 */
static size_t bump_alloc(struct bump *b, size_t len, size_t align, bool stay)
{
	size_t off = align_up(b->off, align);

	if (stay && len <= b->rsize && off / b->rsize != (off + len - 1) / b->rsize)
		off = align_up(off, b->rsize);
	if (stay && len > b->rsize)
		return (size_t)-1;
	if (off + len > b->size || off + len < off)
		return (size_t)-1;
	b->off = off + len;
	return off;
}

/* Assign every ring part and buffer an offset for memory of @size bytes. 0 or -ENOMEM. */
static int layout(struct vufront *vf, size_t size)
{
	struct bump b = { .off = 0, .size = size, .rsize = size / vf->cfg.nregions };
	unsigned int num = vf->cfg.queue_size;
	size_t off, rx_align = vf->cfg.rx_buf_size % PAGE ? 64 : PAGE;

	for (unsigned int q = 0; q < VUFRONT_NQUEUES; q++) {
		struct vq *vq = &vf->vq[q];

		vq->desc_off = bump_alloc(&b, vring_desc_bytes(num), PAGE, true);
		vq->avail_off = bump_alloc(&b, vring_avail_bytes(num), PAGE, true);
		vq->used_off = bump_alloc(&b, vring_used_bytes(num), PAGE, true);
		if (vq->desc_off == (size_t)-1 || vq->avail_off == (size_t)-1 ||
		    vq->used_off == (size_t)-1)
			return -ENOMEM;
	}
	for (unsigned int i = 0; i < num; i++) {
		off = bump_alloc(&b, 2 * sizeof(struct vring_desc), VRING_DESC_ALIGN, true);
		if (off == (size_t)-1)
			return -ENOMEM;
		vf->txind[i].off = off;
	}
	vf->scratch_size = MIN((size_t)VUFRONT_SCRATCH_SIZE, b.rsize);
	vf->scratch.off = bump_alloc(&b, vf->scratch_size, PAGE, true);
	if (vf->scratch.off == (size_t)-1)
		return -ENOMEM;
	/* Straddling buffers: half a page off, and region ends ignored. */
	if (vf->cfg.straddle)
		b.off = align_up(b.off, PAGE) + PAGE / 2;
	for (unsigned int i = 0; i < num; i++) {
		off = bump_alloc(&b, vf->cfg.rx_buf_size, vf->cfg.straddle ? 1 : rx_align,
				 !vf->cfg.straddle);
		if (off == (size_t)-1)
			return -ENOMEM;
		vf->rxbuf[i].off = off;
	}
	for (unsigned int i = 0; i < num; i++) {
		off = bump_alloc(&b, vf->tx_slot_size, vf->cfg.straddle ? 1 : PAGE,
				 !vf->cfg.straddle);
		if (off == (size_t)-1)
			return -ENOMEM;
		vf->txslot[i].off = off;
	}
	return 0;
}

/* Resolve every offset of the layout to our pointer and its guest address. */
static void layout_resolve(struct vufront *vf)
{
	unsigned int num = vf->cfg.queue_size;

	for (unsigned int q = 0; q < VUFRONT_NQUEUES; q++) {
		struct vq *vq = &vf->vq[q];

		vq->num = num;
		vq->desc = (struct vring_desc *)(vf->mem + vq->desc_off);
		vq->avail = (struct vring_avail *)(vf->mem + vq->avail_off);
		vq->used = (struct vring_used *)(vf->mem + vq->used_off);
	}
	for (unsigned int i = 0; i < num; i++) {
		struct area *as[] = { &vf->rxbuf[i], &vf->txslot[i], &vf->txind[i] };

		for (size_t k = 0; k < G_N_ELEMENTS(as); k++) {
			as[k]->p = vf->mem + as[k]->off;
			as[k]->gpa = off_to_gpa(vf, as[k]->off);
		}
	}
	vf->scratch.p = vf->mem + vf->scratch.off;
	vf->scratch.gpa = off_to_gpa(vf, vf->scratch.off);
}

/* Fill in the defaults of @c and check it. 0 or -EINVAL. */
static int check_config(struct vufront_config *c)
{
	if (!c->nregions)
		c->nregions = 1;
	if (!c->queue_size)
		c->queue_size = VUFRONT_QUEUE_SIZE_DEFAULT;
	if (!c->rx_buf_size)
		c->rx_buf_size = VUFRONT_RX_BUF_DEFAULT;
	if (!c->frame_max)
		c->frame_max = VUFRONT_FRAME_MAX_DEFAULT;
	if (!c->timeout_ms)
		c->timeout_ms = VUFRONT_TIMEOUT_MS_DEFAULT;
	if (c->nregions > VHOST_USER_MAX_REGIONS || c->queue_size > VRING_QUEUE_MAX ||
	    (c->queue_size & (c->queue_size - 1)) || c->queue_size < 2 ||
	    c->rx_buf_size <= VIRTIO_NET_HDR_LEN || c->frame_max > UINT32_MAX / 2 ||
	    (c->straddle && c->gpa_gap) || (c->gpa_gap % PAGE) || (c->gpa_base % PAGE) ||
	    c->tx_layout > VUFRONT_TX_INDIRECT || c->timeout_ms < 0)
		return -EINVAL;
	if (c->mem_size % ((size_t)c->nregions * PAGE))
		return -EINVAL;
	return 0;
}

/* Lay out into cfg.mem_size, or find the smallest size that fits if it is 0. */
static int layout_size(struct vufront *vf, size_t *size)
{
	size_t unit = (size_t)vf->cfg.nregions * PAGE, guess;
	unsigned int num = vf->cfg.queue_size;

	if (vf->cfg.mem_size) {
		*size = vf->cfg.mem_size;
		return layout(vf, *size);
	}
	guess = 2 * align_up(vring_desc_bytes(num) + vring_avail_bytes(num) +
			     vring_used_bytes(num) + 3 * PAGE, PAGE) +
		32ull * num + VUFRONT_SCRATCH_SIZE +
		(size_t)num * (vf->cfg.rx_buf_size + vf->tx_slot_size) + 2 * PAGE;
	guess = align_up(guess, unit);
	for (int i = 0; i < LAYOUT_TRIES; i++) {
		if (!layout(vf, guess)) {
			*size = guess;
			return 0;
		}
		guess = align_up(guess + guess / 8, unit);
	}
	return -ENOMEM;
}

int vufront_new(const struct vufront_config *cfg, struct vufront **out)
{
	struct vufront *vf = g_new0(struct vufront, 1);
	size_t size = 0;
	int ret;

	vf->cfg = *cfg;
	vf->memfd = vf->sock = vf->logfd = -1;
	for (unsigned int q = 0; q < VUFRONT_NQUEUES; q++)
		vf->vq[q].kick_fd = vf->vq[q].call_fd = -1;
	ret = check_config(&vf->cfg);
	if (ret)
		goto fail;
	vf->tx_slot_size = align_up(VIRTIO_NET_HDR_LEN + vf->cfg.frame_max, PAGE);
	vf->rxbuf = g_new0(struct area, vf->cfg.queue_size);
	vf->txslot = g_new0(struct area, vf->cfg.queue_size);
	vf->txind = g_new0(struct area, vf->cfg.queue_size);
	for (unsigned int q = 0; q < VUFRONT_NQUEUES; q++) {
		fifo_init(&vf->vq[q].free, vf->cfg.queue_size);
		vf->vq[q].inflight = g_new0(uint8_t, vf->cfg.queue_size);
	}
	vf->vq[VUFRONT_TXQ].free.lifo = true;
	ret = layout_size(vf, &size);
	if (ret)
		goto fail;
	vf->mem_size = size;
	vf->rsize = size / vf->cfg.nregions;
	vf->memfd = memfd_create("vufront-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (vf->memfd < 0 || ftruncate(vf->memfd, (off_t)size) < 0) {
		ret = -errno;
		goto fail;
	}
	/* As QEMU's memory-backend-memfd: the backend may not resize our memory. */
	fcntl(vf->memfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
	vf->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vf->memfd, 0);
	if (vf->mem == MAP_FAILED) {
		vf->mem = NULL;
		ret = -errno;
		goto fail;
	}
	layout_resolve(vf);
	*out = vf;
	return 0;
fail:
	vufront_free(vf);
	return ret;
}

void vufront_disconnect(struct vufront *vf)
{
	close_fd(&vf->sock);
	for (unsigned int q = 0; q < VUFRONT_NQUEUES; q++) {
		close_fd(&vf->vq[q].kick_fd);
		close_fd(&vf->vq[q].call_fd);
	}
	vf->rlen = 0;
	vf->started = false;
}

void vufront_free(struct vufront *vf)
{
	if (!vf)
		return;
	vufront_disconnect(vf);
	if (vf->mem)
		munmap(vf->mem, vf->mem_size);
	if (vf->log)
		munmap(vf->log, vf->log_size);
	close_fd(&vf->memfd);
	close_fd(&vf->logfd);
	for (unsigned int q = 0; q < VUFRONT_NQUEUES; q++) {
		g_free(vf->vq[q].free.v);
		g_free(vf->vq[q].inflight);
	}
	g_free(vf->rxbuf);
	g_free(vf->txslot);
	g_free(vf->txind);
	g_free(vf);
}

/* --- waiting --- */

static void default_pump(int fd, short events, int timeout_ms, void *opaque)
{
	struct pollfd p = { .fd = fd, .events = events };

	(void)opaque;
	poll(&p, fd >= 0 ? 1 : 0, timeout_ms);
}

void vufront_set_pump(struct vufront *vf, vufront_pump_fn fn, void *opaque)
{
	vf->pump = fn;
	vf->pump_opaque = opaque;
}

/* One pump turn towards @deadline; -ETIMEDOUT once it has passed. */
static int wait_turn(struct vufront *vf, int fd, short events, int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return -ETIMEDOUT;
	(vf->pump ? vf->pump : default_pump)(fd, events, (int)MIN(left, PUMP_SLICE_MS),
					       vf->pump_opaque);
	return 0;
}

/* --- control socket --- */

int vufront_connect(struct vufront *vf, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (vf->sock >= 0)
		return -EISCONN;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	vf->sock = fd;
	vf->rlen = 0;
	return 0;
}

int vufront_attach(struct vufront *vf, int fd)
{
	if (vf->sock >= 0)
		return -EISCONN;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	vf->sock = fd;
	vf->rlen = 0;
	return 0;
}

int vufront_sock_fd(const struct vufront *vf)
{
	return vf->sock;
}

/**
 * send_all() - write header + payload with @fds attached to the first byte
 * @deadline:	when to give up waiting for socket space
 *
 * Return: 0 or -errno (-ENOTCONN without a socket, -EPIPE if the peer left).
 */
static int send_all(struct vufront *vf, const struct vhost_user_hdr *hdr, const void *payload,
		    size_t len, const int *fds, unsigned int nfds, int64_t deadline)
{
	char cbuf[CMSG_SPACE(sizeof(int) * VUFRONT_RAW_FDS_MAX)] = { 0 };
	struct iovec iov[2] = { { (void *)hdr, VHOST_USER_HDR_SIZE }, { (void *)payload, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (vf->sock < 0)
		return -ENOTCONN;
	if (nfds > VUFRONT_RAW_FDS_MAX)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (msg.msg_iovlen) {
		ssize_t n = sendmsg(vf->sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			if (wait_turn(vf, vf->sock, POLLOUT, deadline))
				return -ETIMEDOUT;
			continue;
		}
		/* The descriptors went with the first byte. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		while (n > 0 && msg.msg_iovlen) {
			size_t step = MIN((size_t)n, msg.msg_iov->iov_len);

			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + step;
			msg.msg_iov->iov_len -= step;
			n -= (ssize_t)step;
			if (!msg.msg_iov->iov_len) {
				msg.msg_iov++;
				msg.msg_iovlen--;
			}
		}
	}
	return 0;
}

/* Close every descriptor in @msg's control data (the backend has no reason to send any). */
static void drop_fds(struct vufront *vf, struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
			vf->stats.unexpected_fds++;
		}
	}
}

/* Read what the socket has into rbuf. >0 bytes, 0 nothing yet, -ECONNRESET at EOF. */
static int fill_rbuf(struct vufront *vf)
{
	char cbuf[CMSG_SPACE(sizeof(int) * VUFRONT_RAW_FDS_MAX)];
	struct iovec iov = { vf->rbuf + vf->rlen, sizeof(vf->rbuf) - vf->rlen };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	ssize_t n;

	if (vf->sock < 0)
		return -ENOTCONN;
	do {
		n = recvmsg(vf->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -ECONNRESET;
	drop_fds(vf, &msg);
	if (n == 0)
		return -ECONNRESET;
	vf->rlen += (size_t)n;
	return (int)n;
}

int vufront_recv_raw(struct vufront *vf, struct vhost_user_hdr *hdr, void *payload, size_t cap,
		     int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : vf->cfg.timeout_ms);
	size_t total;

	for (;;) {
		int r;

		if (vf->rlen >= VHOST_USER_HDR_SIZE) {
			memcpy(hdr, vf->rbuf, VHOST_USER_HDR_SIZE);
			if (hdr->size > VHOST_USER_PAYLOAD_MAX) {
				vf->stats.dev_errors++;
				return -EPROTO;
			}
			total = VHOST_USER_HDR_SIZE + hdr->size;
			if (vf->rlen >= total)
				break;
		}
		r = fill_rbuf(vf);
		if (r < 0)
			return r;
		if (r == 0 && wait_turn(vf, vf->sock, POLLIN, deadline))
			return -ETIMEDOUT;
	}
	memcpy(payload, vf->rbuf + VHOST_USER_HDR_SIZE, MIN(cap, (size_t)hdr->size));
	memmove(vf->rbuf, vf->rbuf + total, vf->rlen - total);
	vf->rlen -= total;
	return (int)hdr->size;
}

int vufront_send_raw(struct vufront *vf, const struct vufront_raw *m)
{
	struct vhost_user_hdr h = { .request = m->request, .flags = m->flags, .size = m->size };

	if (m->payload_len > RAW_PAYLOAD_MAX)
		return -EINVAL;
	return send_all(vf, &h, m->payload, m->payload_len, m->fds, m->nfds,
			now_ms() + vf->cfg.timeout_ms);
}

/* Requests whose reply the protocol always sends. */
static bool has_reply(const struct vufront *vf, uint32_t req)
{
	switch (req) {
	case VHOST_USER_GET_FEATURES:
	case VHOST_USER_GET_PROTOCOL_FEATURES:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_GET_QUEUE_NUM:
	case VHOST_USER_GET_MAX_MEM_SLOTS:
		return true;
	case VHOST_USER_SET_LOG_BASE:
		return vf->protocol & VU_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD);
	default:
		return false;
	}
}

int vufront_request(struct vufront *vf, uint32_t req, const void *payload, size_t len,
		    const int *fds, unsigned int nfds, bool need_reply, void *reply, size_t cap)
{
	struct vhost_user_hdr h = { .request = req, .flags = VHOST_USER_VERSION, .size = (uint32_t)len };
	int64_t deadline = now_ms() + vf->cfg.timeout_ms;
	bool explicit = has_reply(vf, req);
	uint64_t ack = 0;
	int ret;

	if (!explicit && need_reply)
		h.flags |= VHOST_USER_FLAG_NEED_REPLY;
	ret = send_all(vf, &h, payload, len, fds, nfds, deadline);
	if (ret || (!explicit && !need_reply))
		return ret;
	ret = vufront_recv_raw(vf, &h, explicit ? reply : &ack, explicit ? cap : sizeof(ack),
			       (int)MAX(1, deadline - now_ms()));
	if (ret < 0)
		return ret;
	if (h.request != req || !(h.flags & VHOST_USER_FLAG_REPLY) ||
	    (h.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
		vf->stats.dev_errors++;
		vf_warn(vf, "vufront: reply to request %u is request %u flags %#x", req, h.request,
			  h.flags);
		return -EPROTO;
	}
	if (!explicit) {
		if (ret != sizeof(ack)) {
			vf->stats.dev_errors++;
			return -EPROTO;
		}
		return ack ? -EREMOTEIO : 0;
	}
	return ret;
}

/* A message without its own reply, acknowledged when REPLY_ACK is on. */
static int send_acked(struct vufront *vf, uint32_t req, const void *payload, size_t len,
		      const int *fds, unsigned int nfds)
{
	bool ack = (vf->protocol & VU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)) && !vf->cfg.no_reply_ack;

	return vufront_request(vf, req, payload, len, fds, nfds, ack, NULL, 0);
}

/* A request whose reply is one u64 (GET_FEATURES, GET_PROTOCOL_FEATURES). 0 or -errno. */
static int get_u64(struct vufront *vf, uint32_t req, uint64_t *v)
{
	int ret = vufront_request(vf, req, NULL, 0, NULL, 0, false, v, sizeof(*v));

	if (ret >= 0 && ret != sizeof(*v)) {
		vf->stats.dev_errors++;
		return -EPROTO;
	}
	return ret < 0 ? ret : 0;
}

bool vufront_peer_closed(struct vufront *vf, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	if (vf->sock < 0)
		return true;
	for (;;) {
		int r = fill_rbuf(vf);

		if (r < 0)
			return true;
		if (vf->rlen == sizeof(vf->rbuf) || r > 0) {
			vf->rlen = 0; /* whatever it said: dropped */
			continue;
		}
		if (wait_turn(vf, vf->sock, POLLIN, deadline))
			return false;
	}
}

/* --- protocol steps --- */

int vufront_get_features(struct vufront *vf, uint64_t *features)
{
	return get_u64(vf, VHOST_USER_GET_FEATURES, features);
}

int vufront_set_features(struct vufront *vf, uint64_t features)
{
	int ret = send_acked(vf, VHOST_USER_SET_FEATURES, &features, sizeof(features), NULL, 0);

	if (!ret)
		vf->features = features;
	return ret;
}

int vufront_get_protocol_features(struct vufront *vf, uint64_t *features)
{
	return get_u64(vf, VHOST_USER_GET_PROTOCOL_FEATURES, features);
}

int vufront_set_protocol_features(struct vufront *vf, uint64_t features)
{
	/* REPLY_ACK applies from the next message on. */
	int ret = vufront_request(vf, VHOST_USER_SET_PROTOCOL_FEATURES, &features,
				  sizeof(features), NULL, 0, false, NULL, 0);

	if (!ret)
		vf->protocol = features;
	return ret;
}

int vufront_set_owner(struct vufront *vf)
{
	return send_acked(vf, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
}

int vufront_reset_owner(struct vufront *vf)
{
	return send_acked(vf, VHOST_USER_RESET_OWNER, NULL, 0, NULL, 0);
}

int vufront_reset_device(struct vufront *vf)
{
	return send_acked(vf, VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0);
}

int vufront_net_set_mtu(struct vufront *vf, unsigned int mtu)
{
	uint64_t v = mtu;

	return send_acked(vf, VHOST_USER_NET_SET_MTU, &v, sizeof(v), NULL, 0);
}

struct vhost_user_region vufront_region(const struct vufront *vf, unsigned int r)
{
	return (struct vhost_user_region){
		.guest_phys_addr = off_to_gpa(vf, (size_t)r * vf->rsize),
		.memory_size = vf->rsize,
		.userspace_addr = (uint64_t)(uintptr_t)(vf->mem + (size_t)r * vf->rsize),
		.mmap_offset = (uint64_t)r * vf->rsize,
	};
}

int vufront_set_mem_table(struct vufront *vf)
{
	struct vhost_user_mem_table t = { .nregions = vf->cfg.nregions };
	int fds[VHOST_USER_MAX_REGIONS];

	for (unsigned int r = 0; r < vf->cfg.nregions; r++) {
		t.regions[r] = vufront_region(vf, r);
		fds[r] = vf->memfd;
	}
	/* Only the regions in use travel (the payload is not padded to 8). */
	return send_acked(vf, VHOST_USER_SET_MEM_TABLE, &t,
			  offsetof(struct vhost_user_mem_table, regions) +
			  t.nregions * sizeof(t.regions[0]), fds, t.nregions);
}

/* A vring state message (index, num) for queue @q. 0 or -errno. */
static int set_vring_state(struct vufront *vf, uint32_t req, unsigned int q, uint32_t num)
{
	struct vhost_user_vring_state s = { .index = q, .num = num };

	return send_acked(vf, req, &s, sizeof(s), NULL, 0);
}

/* SET_VRING_ADDR for queue @q: our addresses of its three parts, F_LOG as set. 0 or -errno. */
static int set_vring_addr(struct vufront *vf, unsigned int q)
{
	struct vq *vq = &vf->vq[q];
	struct vhost_user_vring_addr a = {
		.index = q,
		.flags = vq->log ? VHOST_VRING_F_LOG : 0,
		.desc_user_addr = (uint64_t)(uintptr_t)vq->desc,
		.used_user_addr = (uint64_t)(uintptr_t)vq->used,
		.avail_user_addr = (uint64_t)(uintptr_t)vq->avail,
		.log_guest_addr = off_to_gpa(vf, vq->used_off),
	};

	return send_acked(vf, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

/* SET_VRING_KICK/CALL for queue @q with @fd (-1: the "no fd" flag). 0 or -errno. */
static int set_vring_fd(struct vufront *vf, uint32_t req, unsigned int q, int fd)
{
	uint64_t v = q | (fd < 0 ? VHOST_USER_VRING_NOFD : 0);

	return send_acked(vf, req, &v, sizeof(v), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
}

int vufront_vring_setup(struct vufront *vf, unsigned int q)
{
	struct vq *vq;
	int ret;

	if (q >= VUFRONT_NQUEUES)
		return -EINVAL;
	vq = &vf->vq[q];
	if (vq->kick_fd < 0)
		vq->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (vq->call_fd < 0)
		vq->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (vq->kick_fd < 0 || vq->call_fd < 0)
		return -errno;
	ret = set_vring_state(vf, VHOST_USER_SET_VRING_NUM, q, vq->num);
	if (!ret)
		ret = set_vring_state(vf, VHOST_USER_SET_VRING_BASE, q, 0);
	if (!ret)
		ret = set_vring_addr(vf, q);
	if (!ret)
		ret = set_vring_fd(vf, VHOST_USER_SET_VRING_CALL, q, vq->call_fd);
	if (!ret)
		ret = set_vring_fd(vf, VHOST_USER_SET_VRING_KICK, q, vq->kick_fd);
	return ret;
}

int vufront_vring_enable(struct vufront *vf, unsigned int q, bool on)
{
	return set_vring_state(vf, VHOST_USER_SET_VRING_ENABLE, q, on);
}

int vufront_get_vring_base(struct vufront *vf, unsigned int q, uint32_t *base)
{
	struct vhost_user_vring_state s = { .index = q }, r = { 0 };
	int ret = vufront_request(vf, VHOST_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, false,
				  &r, sizeof(r));

	if (ret < 0)
		return ret;
	if (ret != sizeof(r) || r.index != q) {
		vf->stats.dev_errors++;
		return -EPROTO;
	}
	*base = r.num;
	return 0;
}

/* --- rings --- */

/* Fresh rings for the negotiated features: descriptors written, every chain free. */
static int rings_init(struct vufront *vf)
{
	struct vq *rx = &vf->vq[VUFRONT_RXQ], *tx = &vf->vq[VUFRONT_TXQ];
	unsigned int num = vf->cfg.queue_size, k;

	for (unsigned int q = 0; q < VUFRONT_NQUEUES; q++) {
		struct vq *vq = &vf->vq[q];

		memset(vq->desc, 0, vring_desc_bytes(num));
		memset(vq->avail, 0, vring_avail_bytes(num));
		memset(vq->used, 0, vring_used_bytes(num));
		memset(vq->inflight, 0, num);
		fifo_reset(&vq->free);
		vq->avail_idx = vq->published_idx = vq->notified_idx = vq->last_used = 0;
		vq->broken = vq->partial_counted = false;
	}

	/* Receive: single buffers (MRG_RXBUF) or chains holding a whole frame. */
	k = vf->mrg ? 1 : vf->cfg.rx_chain;
	if (!k)
		k = (unsigned int)((vf->hdr_len + vf->cfg.frame_max + vf->cfg.rx_buf_size - 1) /
				   vf->cfg.rx_buf_size);
	if (k > num)
		return -ENOMEM;
	vf->rx_chain = k;
	for (unsigned int c = 0; c < num / k; c++) {
		for (unsigned int j = 0; j < k; j++) {
			unsigned int i = c * k + j;

			rx->desc[i] = (struct vring_desc){
				.addr = vf->rxbuf[i].gpa, .len = vf->cfg.rx_buf_size,
				.flags = VRING_DESC_F_WRITE | (j + 1 < k ? VRING_DESC_F_NEXT : 0),
				.next = (uint16_t)(j + 1 < k ? i + 1 : 0),
			};
		}
		fifo_push(&rx->free, (uint16_t)(c * k));
	}

	/* Transmit: slot s is head s (flat, indirect) or heads 2s, 2s+1 (split). */
	vf->tx_descs = vf->cfg.tx_layout == VUFRONT_TX_SPLIT_HDR ? 2 : 1;
	vf->tx_nslots = num / vf->tx_descs;
	for (unsigned int s = 0; s < vf->tx_nslots; s++) {
		struct vring_desc *ind = (struct vring_desc *)vf->txind[s].p;
		uint64_t gpa = vf->txslot[s].gpa;

		switch (vf->cfg.tx_layout) {
		case VUFRONT_TX_FLAT:
			tx->desc[s] = (struct vring_desc){ .addr = gpa };
			break;
		case VUFRONT_TX_SPLIT_HDR:
			tx->desc[2 * s] = (struct vring_desc){
				.addr = gpa, .len = vf->hdr_len, .flags = VRING_DESC_F_NEXT,
				.next = (uint16_t)(2 * s + 1) };
			tx->desc[2 * s + 1] = (struct vring_desc){ .addr = gpa + vf->hdr_len };
			break;
		case VUFRONT_TX_INDIRECT:
			tx->desc[s] = (struct vring_desc){
				.addr = vf->txind[s].gpa, .len = 2 * sizeof(struct vring_desc),
				.flags = VRING_DESC_F_INDIRECT };
			ind[0] = (struct vring_desc){ .addr = gpa, .len = vf->hdr_len,
						      .flags = VRING_DESC_F_NEXT, .next = 1 };
			ind[1] = (struct vring_desc){ .addr = gpa + vf->hdr_len };
			break;
		}
	}
	/* A stack: slot 0 on top. */
	for (unsigned int s = vf->tx_nslots; s-- > 0;)
		fifo_push(&tx->free, (uint16_t)s);
	/* Receive calls wanted from the first frame on; transmit calls not. */
	vufront_rx_notify_on(vf);
	vufront_tx_notify_off(vf);
	return 0;
}

/* Publish queue @vq's available index and kick if the device wants to know. 1 if kicked. */
static int publish(struct vufront *vf, struct vq *vq)
{
	uint16_t old = vq->notified_idx, new_idx = vq->avail_idx;
	bool need;

	if (vq->published_idx != new_idx) {
		vring_store16(&vq->avail->idx, new_idx);
		vq->published_idx = new_idx;
	}
	if (!vf->started || old == new_idx)
		return 0;
	/* The index store must be visible before we read what the device asked for. */
	vring_mb();
	vq->notified_idx = new_idx;
	if (vf->event_idx)
		need = vring_need_event(vring_load16(vring_avail_event(vq->used, vq->num)),
					new_idx, old);
	else
		need = !(vring_load16(&vq->used->flags) & VRING_USED_F_NO_NOTIFY);
	if (!need) {
		vf->stats.kicks_suppressed++;
		return 0;
	}
	return vufront_kick(vf, (unsigned int)(vq - vf->vq)) ? 0 : 1;
}

int vufront_kick(struct vufront *vf, unsigned int q)
{
	uint64_t one = 1;

	if (q >= VUFRONT_NQUEUES || vf->vq[q].kick_fd < 0)
		return -ENOTCONN;
	if (write(vf->vq[q].kick_fd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	vf->stats.kicks++;
	return 0;
}

uint64_t vufront_call_drain(struct vufront *vf, unsigned int q)
{
	uint64_t v = 0;

	if (q >= VUFRONT_NQUEUES || vf->vq[q].call_fd < 0)
		return 0;
	if (read(vf->vq[q].call_fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	vf->stats.calls += v;
	vf->stats.call_reads++;
	return v;
}

/* Used entries waiting on @vq, or -EPROTO (queue broken) if the device ran too far ahead. */
static int used_pending(struct vufront *vf, struct vq *vq)
{
	uint16_t n;

	if (vq->broken)
		return -EPROTO;
	n = (uint16_t)(vring_load16(&vq->used->idx) - vq->last_used);
	if (n > vq->num) {
		vq->broken = true;
		vf->stats.dev_errors++;
		vf_warn(vf, "vufront: queue %td used index %u is %u ahead of %u (queue size %u)",
			  vq - vf->vq, vq->last_used + n, n, vq->last_used, vq->num);
		return -EPROTO;
	}
	return n;
}

/* Whether @id is a head we posted on @vq (and may be taken back). */
static bool head_ok(const struct vufront *vf, const struct vq *vq, uint32_t id, unsigned int per)
{
	(void)vf;
	return id < vq->num && id % per == 0 && vq->inflight[id];
}

/* Ask for a call on @vq's next used entry (@on) or for none (used_event behind us). */
static void set_call_wanted(struct vufront *vf, struct vq *vq, bool on)
{
	if (vf->event_idx)
		vring_store16(vring_used_event(vq->avail, vq->num),
			      (uint16_t)(on ? vq->last_used : vq->last_used - 1));
	else
		vring_store16(&vq->avail->flags, on ? 0 : VRING_AVAIL_F_NO_INTERRUPT);
}

/* --- transmit --- */

int vufront_tx_reclaim(struct vufront *vf)
{
	struct vq *vq = &vf->vq[VUFRONT_TXQ];
	int n = used_pending(vf, vq), done = 0, ret = 0;

	if (n < 0)
		return n;
	while (n--) {
		struct vring_used_elem *e = &vq->used->ring[vq->last_used++ % vq->num];
		uint32_t id = e->id;

		if (!head_ok(vf, vq, id, vf->tx_descs)) {
			vf->stats.dev_errors++;
			vf_warn(vf, "vufront: transmit used id %u was not posted", id);
			ret = -EPROTO;
			continue;
		}
		vq->inflight[id] = 0;
		fifo_push(&vq->free, (uint16_t)(id / vf->tx_descs));
		done++;
	}
	return ret ? ret : done;
}

void *vufront_tx_slot(struct vufront *vf, size_t *cap)
{
	struct fifo *f = &vf->vq[VUFRONT_TXQ].free;

	if (!vf->started)
		return NULL;
	if (!f->count)
		vufront_tx_reclaim(vf);
	if (!f->count) {
		vf->stats.tx_full++;
		return NULL;
	}
	if (cap)
		*cap = vf->tx_slot_size;
	return vf->txslot[fifo_peek(f)].p;
}

int vufront_tx_commit(struct vufront *vf, size_t len)
{
	struct vq *vq = &vf->vq[VUFRONT_TXQ];
	unsigned int s, head;

	if (!vf->started || !vq->free.count)
		return -ENOBUFS;
	if (len < vf->hdr_len || len > vf->tx_slot_size)
		return -EINVAL;
	s = fifo_pop(&vq->free);
	switch (vf->cfg.tx_layout) {
	case VUFRONT_TX_FLAT:
		vq->desc[s].len = (uint32_t)len;
		head = s;
		break;
	case VUFRONT_TX_SPLIT_HDR:
		vq->desc[2 * s + 1].len = (uint32_t)(len - vf->hdr_len);
		head = 2 * s;
		break;
	default:
		((struct vring_desc *)vf->txind[s].p)[1].len = (uint32_t)(len - vf->hdr_len);
		head = s;
		break;
	}
	vq->inflight[head] = 1;
	vq->avail->ring[vq->avail_idx++ % vq->num] = (uint16_t)head;
	vf->stats.frames_tx++;
	vf->stats.bytes_tx += len - vf->hdr_len;
	return 0;
}

int vufront_tx_flush(struct vufront *vf)
{
	return publish(vf, &vf->vq[VUFRONT_TXQ]);
}

unsigned int vufront_tx_free(const struct vufront *vf)
{
	return vf->vq[VUFRONT_TXQ].free.count;
}

bool vufront_tx_notify_on(struct vufront *vf)
{
	struct vq *vq = &vf->vq[VUFRONT_TXQ];

	set_call_wanted(vf, vq, true);
	vring_mb();
	return vring_load16(&vq->used->idx) != vq->last_used;
}

void vufront_tx_notify_off(struct vufront *vf)
{
	set_call_wanted(vf, &vf->vq[VUFRONT_TXQ], false);
}

int vufront_tx(struct vufront *vf, const struct virtio_net_hdr_v1 *hdr, const void *frame,
	       size_t len)
{
	int64_t deadline = now_ms() + vf->cfg.timeout_ms;
	struct virtio_net_hdr_v1 h = { 0 };
	bool armed = false;
	uint8_t *slot;

	if (!vf->started)
		return -ENOTCONN;
	if (len > vf->cfg.frame_max)
		return -EMSGSIZE;
	while (!(slot = vufront_tx_slot(vf, NULL))) {
		if (vf->vq[VUFRONT_TXQ].broken)
			return -EPROTO;
		armed = true;
		if (vufront_tx_notify_on(vf))
			continue;
		if (wait_turn(vf, vf->vq[VUFRONT_TXQ].call_fd, POLLIN, deadline)) {
			vufront_tx_notify_off(vf);
			return -ETIMEDOUT;
		}
		vufront_call_drain(vf, VUFRONT_TXQ);
	}
	if (armed)
		vufront_tx_notify_off(vf);
	if (hdr)
		h = *hdr;
	h.num_buffers = 0;
	memcpy(slot, &h, vf->hdr_len);
	memcpy(slot + vf->hdr_len, frame, len);
	vufront_tx_commit(vf, vf->hdr_len + len);
	vufront_tx_flush(vf);
	return 0;
}

/* --- receive --- */

/* Put one used element's buffers of a chain back on the free list (error paths). */
static void rx_giveback(struct vufront *vf, uint16_t head)
{
	vf->vq[VUFRONT_RXQ].inflight[head] = 0;
	fifo_push(&vf->vq[VUFRONT_RXQ].free, head);
}

/* The frame in one chain (no MRG_RXBUF): @len bytes over its descriptors' buffers. */
static void rx_chain_iov(struct vufront *vf, uint16_t head, size_t len, struct vufront_rxframe *f)
{
	for (unsigned int j = 0; j < vf->rx_chain && len; j++) {
		size_t piece = MIN(len, (size_t)vf->cfg.rx_buf_size);

		f->iov[f->niov++] = (struct iovec){ vf->rxbuf[head + j].p, piece };
		len -= piece;
	}
}

/*
 * Whether a receive header offers only what the driver took (5.1.6.4.1):
 * flags only with GUEST_CSUM (never RSC_INFO: not offered), TCPv4 GSO only
 * with GUEST_TSO4, nothing else (ECN, v6, UDP: not offered).
 */
static bool rx_hdr_ok(const struct vufront *vf, const struct virtio_net_hdr_v1 *h)
{
	if (h->flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		return false;
	if (h->flags && !(vf->features & VU_BIT(VIRTIO_NET_F_GUEST_CSUM)))
		return false;
	if (h->gso_type == VIRTIO_NET_HDR_GSO_NONE)
		return true;
	return h->gso_type == VIRTIO_NET_HDR_GSO_TCPV4 && h->gso_size &&
	       (vf->features & VU_BIT(VIRTIO_NET_F_GUEST_TSO4));
}

int vufront_rx_next(struct vufront *vf, struct vufront_rxframe *f)
{
	struct vq *vq = &vf->vq[VUFRONT_RXQ];
	size_t cap = (size_t)vf->rx_chain * vf->cfg.rx_buf_size;
	struct vring_used_elem e;
	unsigned int nb = 1;
	int n;

	if (!vf->started)
		return -ENOTCONN;
	n = used_pending(vf, vq);
	if (n <= 0)
		return n ? n : -EAGAIN;
	e = vq->used->ring[vq->last_used % vq->num];
	if (!head_ok(vf, vq, e.id, vf->rx_chain)) {
		vq->last_used++;
		vf->stats.dev_errors++;
		vf->stats.rx_frames_bad++;
		vf_warn(vf, "vufront: receive used id %u was not posted", e.id);
		return -EPROTO;
	}
	if (e.len < vf->hdr_len || e.len > cap) {
		vq->last_used++;
		rx_giveback(vf, (uint16_t)e.id);
		vf->stats.dev_errors++;
		vf->stats.rx_frames_bad++;
		vf_warn(vf, "vufront: receive used length %u outside [%u, %zu]", e.len, vf->hdr_len, cap);
		return -EPROTO;
	}
	memset(&f->hdr, 0, sizeof(f->hdr));
	memcpy(&f->hdr, vf->rxbuf[e.id].p, vf->hdr_len);
	if (vf->mrg) {
		nb = f->hdr.num_buffers;
		if (!nb || nb > VUFRONT_RX_IOV_MAX || nb > vq->num) {
			vq->last_used++;
			rx_giveback(vf, (uint16_t)e.id);
			vf->stats.dev_errors++;
			vf->stats.rx_frames_bad++;
			vf_warn(vf, "vufront: num_buffers %u", nb);
			return -EPROTO;
		}
		if ((unsigned int)n < nb)
			n = used_pending(vf, vq);
		if (n < 0)
			return n;
		if ((unsigned int)n < nb) {
			/* 5.1.6.4.2: all buffers of a frame are used together.  Count it, wait. */
			vq->partial_seen = (uint16_t)(vq->last_used + n);
			if (!vq->partial_counted || vq->partial_at != vq->last_used) {
				vf->stats.dev_errors++;
				vq->partial_counted = true;
				vq->partial_at = vq->last_used;
				vf_warn(vf, "vufront: frame of %u buffers published in part", nb);
			}
			return -EAGAIN;
		}
	} else if (vf->hdr_len == VIRTIO_NET_HDR_LEN && f->hdr.num_buffers != 1) {
		/* 5.1.6.4: num_buffers is 1 without MRG_RXBUF.  Counted, the frame kept. */
		vf->stats.dev_errors++;
	}
	f->niov = f->nheads = 0;
	f->len = 0;
	for (unsigned int k = 0; k < nb; k++) {
		if (k) {
			e = vq->used->ring[vq->last_used % vq->num];
			if (!head_ok(vf, vq, e.id, 1) || e.len > cap) {
				/* Keep what we have; drop the frame. */
				vq->last_used++;
				if (head_ok(vf, vq, e.id, 1))
					rx_giveback(vf, (uint16_t)e.id);
				for (unsigned int h = 0; h < f->nheads; h++)
					rx_giveback(vf, f->heads[h]);
				vf->stats.dev_errors++;
				vf->stats.rx_frames_bad++;
				vf_warn(vf, "vufront: buffer %u of %u: id %u len %u", k, nb, e.id, e.len);
				return -EPROTO;
			}
		}
		vq->last_used++;
		vq->inflight[e.id] = 0;
		f->heads[f->nheads++] = (uint16_t)e.id;
		if (vf->mrg)
			f->iov[f->niov++] = (struct iovec){ vf->rxbuf[e.id].p, e.len };
		else
			rx_chain_iov(vf, (uint16_t)e.id, e.len, f);
		f->len += e.len;
	}
	vq->partial_counted = false;
	if (!rx_hdr_ok(vf, &f->hdr)) {
		vf->stats.dev_errors++;
		vf->stats.rx_bad_hdrs++;
	}
	vf->stats.frames_rx++;
	vf->stats.bytes_rx += f->len - vf->hdr_len;
	return 0;
}

void vufront_rx_release(struct vufront *vf, const struct vufront_rxframe *f)
{
	for (unsigned int h = 0; h < f->nheads; h++)
		fifo_push(&vf->vq[VUFRONT_RXQ].free, f->heads[h]);
}

int vufront_rx_refill(struct vufront *vf)
{
	struct vq *vq = &vf->vq[VUFRONT_RXQ];
	int n = 0;

	while (vq->free.count) {
		uint16_t head = fifo_pop(&vq->free);

		vq->inflight[head] = 1;
		vq->avail->ring[vq->avail_idx++ % vq->num] = head;
		n++;
	}
	if (n)
		publish(vf, vq);
	return n;
}

bool vufront_rx_notify_on(struct vufront *vf)
{
	struct vq *vq = &vf->vq[VUFRONT_RXQ];
	uint16_t seen;

	if (!vq->partial_counted || vq->partial_at != vq->last_used) {
		set_call_wanted(vf, vq, true);
		vring_mb();
		return vring_load16(&vq->used->idx) != vq->last_used;
	}
	/*
	 * A frame published in part waits at last_used: a call at last_used
	 * would never come (the device is past it).  Ask for one at the next
	 * publish, until the index holds still across the store.
	 */
	if (!vf->event_idx) {
		set_call_wanted(vf, vq, true);
		vring_mb();
		return vring_load16(&vq->used->idx) != vq->partial_seen;
	}
	do {
		seen = vring_load16(&vq->used->idx);
		vring_store16(vring_used_event(vq->avail, vq->num), seen);
		vring_mb();
	} while (vring_load16(&vq->used->idx) != seen);
	return seen != vq->partial_seen;
}

void vufront_rx_notify_off(struct vufront *vf)
{
	set_call_wanted(vf, &vf->vq[VUFRONT_RXQ], false);
}

ssize_t vufront_recv(struct vufront *vf, struct virtio_net_hdr_v1 *hdr, void *buf, size_t cap,
		     int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : vf->cfg.timeout_ms);
	struct vufront_rxframe *f = &vf->rxf;
	ssize_t ret;

	for (;;) {
		int r = vufront_rx_next(vf, f);

		if (r == 0) {
			size_t skip = vf->hdr_len, got = 0;

			for (unsigned int i = 0; i < f->niov; i++) {
				size_t l = f->iov[i].iov_len, s = MIN(skip, l);

				if (got < cap)
					memcpy((uint8_t *)buf + got, (uint8_t *)f->iov[i].iov_base + s,
					       MIN(l - s, cap - got));
				got += l - s;
				skip -= s;
			}
			if (hdr)
				*hdr = f->hdr;
			vufront_rx_release(vf, f);
			vufront_rx_refill(vf);
			ret = (ssize_t)got;
			break;
		}
		if (r != -EAGAIN) {
			vufront_rx_refill(vf);
			ret = r;
			break;
		}
		if (vufront_rx_notify_on(vf))
			continue;
		if (wait_turn(vf, vf->vq[VUFRONT_RXQ].call_fd, POLLIN, deadline)) {
			ret = -ETIMEDOUT;
			break;
		}
		vufront_call_drain(vf, VUFRONT_RXQ);
	}
	return ret;
}

/* --- start and stop --- */

int vufront_start(struct vufront *vf, uint64_t want, uint64_t want_protocol)
{
	uint64_t pf = 0;
	int ret;

	if (vf->sock < 0)
		return -ENOTCONN;
	vf->started = false;
	vf->protocol = 0;
	ret = vufront_get_features(vf, &vf->offered);
	if (ret)
		return ret;
	if (vf->offered & want & VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES)) {
		ret = vufront_get_protocol_features(vf, &vf->poffered);
		if (!ret)
			ret = vufront_set_protocol_features(vf, vf->poffered & want_protocol);
		if (ret)
			return ret;
		pf = vf->protocol;
	}
	ret = vufront_set_owner(vf);
	if (!ret)
		ret = vufront_set_features(vf, vf->offered & want);
	if (ret)
		return ret;
	vf->mrg = vf->features & VU_BIT(VIRTIO_NET_F_MRG_RXBUF);
	vf->event_idx = vf->features & VU_BIT(VIRTIO_RING_F_EVENT_IDX);
	vf->hdr_len = (vf->mrg || (vf->features & VU_BIT(VIRTIO_F_VERSION_1))) ?
		      VIRTIO_NET_HDR_LEN : VIRTIO_NET_HDR_LEN_LEGACY;
	if (vf->cfg.tx_layout == VUFRONT_TX_INDIRECT &&
	    !(vf->features & VU_BIT(VIRTIO_RING_F_INDIRECT_DESC)))
		return -EOPNOTSUPP;
	if (vf->cfg.mtu && (vf->features & VU_BIT(VIRTIO_NET_F_MTU)) &&
	    (pf & VU_BIT(VHOST_USER_PROTOCOL_F_NET_MTU))) {
		ret = vufront_net_set_mtu(vf, vf->cfg.mtu);
		if (ret)
			return ret;
	}
	ret = vufront_set_mem_table(vf);
	if (!ret)
		ret = rings_init(vf);
	if (ret)
		return ret;
	vf->vq[0].log = vf->vq[1].log = false;
	/* As a guest does before DRIVER_OK: receive buffers are there before the rings start. */
	vufront_rx_refill(vf);
	for (unsigned int q = 0; q < VUFRONT_NQUEUES && !ret; q++)
		ret = vufront_vring_setup(vf, q);
	for (unsigned int q = 0; q < VUFRONT_NQUEUES && !ret; q++)
		if (vf->features & VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES))
			ret = vufront_vring_enable(vf, q, true);
	if (ret)
		return ret;
	vf->started = true;
	for (unsigned int q = 0; q < VUFRONT_NQUEUES; q++) {
		vf->vq[q].notified_idx = vf->vq[q].avail_idx;
		vufront_kick(vf, q);
	}
	return 0;
}

int vufront_stop(struct vufront *vf)
{
	uint32_t base;
	int ret = 0;

	for (unsigned int q = 0; q < VUFRONT_NQUEUES && !ret; q++)
		ret = vufront_get_vring_base(vf, q, &base);
	vf->started = false;
	return ret;
}

/* --- dirty log --- */

int vufront_log_start(struct vufront *vf)
{
	struct vhost_user_log l;
	uint64_t pages = (vufront_gpa_end(vf) + VHOST_LOG_PAGE - 1) / VHOST_LOG_PAGE;
	int ret;

	if (!(vf->offered & VU_BIT(VHOST_F_LOG_ALL)) ||
	    !(vf->protocol & VU_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD)))
		return -EOPNOTSUPP;
	if (!vf->log) {
		vf->log_size = align_up((pages + 7) / 8, PAGE);
		vf->logfd = memfd_create("vufront-log", MFD_CLOEXEC);
		if (vf->logfd < 0 || ftruncate(vf->logfd, (off_t)vf->log_size) < 0)
			return -errno;
		vf->log = mmap(NULL, vf->log_size, PROT_READ | PROT_WRITE, MAP_SHARED, vf->logfd, 0);
		if (vf->log == MAP_FAILED) {
			vf->log = NULL;
			return -errno;
		}
	}
	l = (struct vhost_user_log){ .size = vf->log_size, .offset = 0 };
	ret = vufront_request(vf, VHOST_USER_SET_LOG_BASE, &l, sizeof(l), &vf->logfd, 1, false,
			      &(uint64_t){ 0 }, sizeof(uint64_t));
	if (ret < 0)
		return ret;
	ret = vufront_set_features(vf, vf->features | VU_BIT(VHOST_F_LOG_ALL));
	for (unsigned int q = 0; q < VUFRONT_NQUEUES && !ret; q++) {
		vf->vq[q].log = true;
		ret = set_vring_addr(vf, q);
	}
	return ret;
}

int vufront_log_stop(struct vufront *vf)
{
	int ret = vufront_set_features(vf, vf->features & ~VU_BIT(VHOST_F_LOG_ALL));

	for (unsigned int q = 0; q < VUFRONT_NQUEUES && !ret; q++) {
		vf->vq[q].log = false;
		ret = set_vring_addr(vf, q);
	}
	return ret;
}

size_t vufront_log_dirty(struct vufront *vf, uint64_t *pages, size_t max, bool clear)
{
	size_t n = 0;

	for (size_t i = 0; vf->log && i < vf->log_size; i++) {
		uint8_t b = clear ? __atomic_exchange_n(&vf->log[i], 0, __ATOMIC_ACQ_REL) :
				    __atomic_load_n(&vf->log[i], __ATOMIC_ACQUIRE);

		for (unsigned int bit = 0; b && bit < 8; bit++) {
			if (!(b & (1u << bit)))
				continue;
			if (n < max)
				pages[n] = (i * 8 + bit) * VHOST_LOG_PAGE;
			n++;
		}
	}
	return n;
}

bool vufront_log_is_dirty(const struct vufront *vf, uint64_t gpa)
{
	uint64_t page = gpa / VHOST_LOG_PAGE;

	if (!vf->log || page / 8 >= vf->log_size)
		return false;
	return __atomic_load_n(&vf->log[page / 8], __ATOMIC_ACQUIRE) & (1u << (page % 8));
}

/* --- accessors --- */

bool vufront_started(const struct vufront *vf) { return vf->started; }
uint64_t vufront_features(const struct vufront *vf) { return vf->features; }
uint64_t vufront_offered_features(const struct vufront *vf) { return vf->offered; }
uint64_t vufront_protocol_features(const struct vufront *vf) { return vf->protocol; }
unsigned int vufront_hdr_len(const struct vufront *vf) { return vf->hdr_len; }
unsigned int vufront_queue_size(const struct vufront *vf) { return vf->cfg.queue_size; }
const struct vufront_config *vufront_config(const struct vufront *vf) { return &vf->cfg; }
const struct vufront_stats *vufront_stats(const struct vufront *vf) { return &vf->stats; }
int vufront_memfd(const struct vufront *vf) { return vf->memfd; }
size_t vufront_mem_size(const struct vufront *vf) { return vf->mem_size; }
unsigned int vufront_nregions(const struct vufront *vf) { return vf->cfg.nregions; }

int vufront_call_fd(const struct vufront *vf, unsigned int q)
{
	return q < VUFRONT_NQUEUES ? vf->vq[q].call_fd : -1;
}

int vufront_kick_fd(const struct vufront *vf, unsigned int q)
{
	return q < VUFRONT_NQUEUES ? vf->vq[q].kick_fd : -1;
}

uint64_t vufront_gpa_end(const struct vufront *vf)
{
	return off_to_gpa(vf, vf->mem_size - 1) + 1;
}

uint64_t vufront_gpa(const struct vufront *vf, const void *p)
{
	return off_to_gpa(vf, (size_t)((const uint8_t *)p - vf->mem));
}

void *vufront_ptr(const struct vufront *vf, uint64_t gpa)
{
	int64_t off = gpa_to_off(vf, gpa);

	return off < 0 ? NULL : vf->mem + off;
}

void *vufront_scratch(struct vufront *vf, size_t len, uint64_t *gpa)
{
	size_t off = align_up(vf->scratch_used, 16);

	if (off + len > vf->scratch_size || off + len < off)
		return NULL;
	vf->scratch_used = off + len;
	if (gpa)
		*gpa = vf->scratch.gpa + off;
	return vf->scratch.p + off;
}

uint64_t vufront_desc_gpa(const struct vufront *vf, unsigned int q)
{
	return off_to_gpa(vf, vf->vq[q].desc_off);
}

uint64_t vufront_avail_gpa(const struct vufront *vf, unsigned int q)
{
	return off_to_gpa(vf, vf->vq[q].avail_off);
}

uint64_t vufront_used_gpa(const struct vufront *vf, unsigned int q)
{
	return off_to_gpa(vf, vf->vq[q].used_off);
}

uint64_t vufront_rx_buf_gpa(const struct vufront *vf, unsigned int i)
{
	return vf->rxbuf[i].gpa;
}

struct vring_desc *vufront_desc(struct vufront *vf, unsigned int q, unsigned int i)
{
	return &vf->vq[q].desc[i % vf->vq[q].num];
}

void vufront_avail_push(struct vufront *vf, unsigned int q, uint16_t head)
{
	struct vq *vq = &vf->vq[q];

	vq->avail->ring[vq->avail_idx++ % vq->num] = head;
	vring_store16(&vq->avail->idx, vq->avail_idx);
	vq->published_idx = vq->notified_idx = vq->avail_idx;
}

void vufront_avail_set_idx(struct vufront *vf, unsigned int q, uint16_t idx)
{
	struct vq *vq = &vf->vq[q];

	vq->avail_idx = vq->published_idx = vq->notified_idx = idx;
	vring_store16(&vq->avail->idx, idx);
}

uint16_t vufront_avail_idx(const struct vufront *vf, unsigned int q)
{
	return vf->vq[q].avail_idx;
}

uint16_t vufront_used_idx(const struct vufront *vf, unsigned int q)
{
	return vring_load16(&vf->vq[q].used->idx);
}
