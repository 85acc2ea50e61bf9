/* vufront.h - a vhost-user front-end and virtio-net driver for tests: plays QEMU and the guest. */
#ifndef MESHSLIRP_TESTS_VUFRONT_H
#define MESHSLIRP_TESTS_VUFRONT_H

/*
 * Theory of operation
 *
 * One struct vufront is one virtio-net device as QEMU and a Linux guest
 * would drive it, with two queues: the receiveq (index 0) and the
 * transmitq (index 1).  It is written from the specifications alone
 * (docs/interop/vhost-user.rst, virtio 1.x) so that tests check the
 * daemon's vhost-user backend against an independent reading of them.
 *
 * Guest memory.  vufront_new() creates a memfd of the requested size
 * (sealed against growing and shrinking, as QEMU's memory-backend-memfd
 * does) and maps it once.  SET_MEM_TABLE describes it as 1 to 8 regions
 * over that one fd: region r covers memfd bytes [r * rsize, (r + 1) * rsize)
 * at guest address gpa_base + r * (rsize + gpa_gap), and at our own
 * mapping's address as its user address.  Rings never cross a region;
 * buffers cross one only with cfg.straddle (then gpa_gap must be 0), which
 * is how tests make a backend translate a buffer that spans two regions.
 *
 * Layout, decided by vufront_start() once the features are known: both
 * rings (descriptor table, available ring, used ring, each page-aligned),
 * one two-entry indirect table per TX slot, a scratch area for hostile
 * tests, queue_size receive buffers of rx_buf_size bytes (buffer i is
 * descriptor i, for ever), and transmit slots of header + frame_max bytes.
 *
 * Receive.  With VIRTIO_NET_F_MRG_RXBUF every descriptor is a chain of
 * its own (as Linux posts 4 KiB buffers) and a frame spans num_buffers of
 * them.  Without it, chains of rx_chain descriptors hold one frame each
 * (Linux's "big packets"); rx_chain 1 with a large rx_buf_size is "one
 * large buffer per chain".  vufront_rx_next() hands out a frame as an iovec
 * over guest memory, header first; vufront_rx_release() returns its
 * buffers and vufront_rx_refill() posts every free buffer and kicks if the
 * device asked for it.  Everything the device writes (ids, lengths,
 * num_buffers, header flags and GSO type against the features taken) is
 * checked; violations are counted in stats.dev_errors (the frame is dropped
 * with -EPROTO when it cannot be trusted, delivered when only its header
 * oversteps), never crash the test.
 *
 * Transmit.  vufront_tx_slot() lends the next free slot (header then
 * frame, contiguous); vufront_tx_commit() puts it on the available ring in
 * the configured layout (one descriptor, header and frame in two, or those
 * two in an indirect table), and vufront_tx_flush() publishes the index and
 * kicks if needed: one kick per batch at most.  Completed slots come back
 * through vufront_tx_reclaim(), which also runs when no slot is free.
 *
 * Notifications follow VIRTIO_RING_F_EVENT_IDX when negotiated (used_event
 * and avail_event), the NO_INTERRUPT / NO_NOTIFY flags otherwise.  Receive
 * interrupts are wanted (vufront_rx_notify_on()); transmit completions only
 * when the ring is full (vufront_tx_notify_on()).  Kicks and calls are
 * eventfds; every kick written and every call read is counted.
 *
 * Waiting.  Control replies and vufront_recv() wait through a pump: by
 * default poll(2) on the one descriptor awaited; tests that run a backend
 * on the same thread set their own (vufront_set_pump()) which iterates
 * their GLib context.  Every wait ends within cfg.timeout_ms.  Nothing
 * blocks: the socket and eventfds are non-blocking.
 *
 * Hostile use.  vufront_send_raw() sends any header, payload and fds;
 * vufront_desc(), vufront_avail_push(), vufront_avail_set_idx() and the
 * scratch area let a test write any descriptor chain.  After raw ring
 * writes the queue's bookkeeping no longer holds: disconnect and start again.
 *
 * Data path cost: no allocation per frame, one atomic publish and at most
 * one eventfd write per batch.  Not thread-safe: one thread drives a vufront.
 *
 * Ownership: the caller owns the struct vufront; vufront_free() closes the
 * socket, the eventfds, the memfd and the log memfd and unmaps them.
 * Pointers into guest memory stay valid until vufront_free().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "tests/lib/virtio_wire.h"

#define VUFRONT_RXQ 0
#define VUFRONT_TXQ 1
#define VUFRONT_NQUEUES 2

#define VUFRONT_QUEUE_SIZE_DEFAULT 256
#define VUFRONT_RX_BUF_DEFAULT 4096          /* Linux's mergeable buffers are at most a page */
#define VUFRONT_FRAME_MAX_DEFAULT (65535 + 14 + 4) /* largest GSO frame: IP + Ethernet + VLAN */
#define VUFRONT_TIMEOUT_MS_DEFAULT 5000
#define VUFRONT_RX_IOV_MAX 256               /* buffers of one received frame */
#define VUFRONT_RAW_FDS_MAX 16               /* descriptors one raw message may carry */
#define VUFRONT_SCRATCH_SIZE (256 * 1024)

/* Features a virtio-net driver in a Linux guest would take without offloads. */
#define VUFRONT_FEATURES_BASE (VU_BIT(VIRTIO_F_VERSION_1) | VU_BIT(VIRTIO_NET_F_MRG_RXBUF) | \
			       VU_BIT(VIRTIO_RING_F_EVENT_IDX) | VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES))
/* The checksum and TCPv4 segmentation offloads, both ways. */
#define VUFRONT_FEATURES_OFFLOAD (VU_BIT(VIRTIO_NET_F_CSUM) | VU_BIT(VIRTIO_NET_F_GUEST_CSUM) | \
				  VU_BIT(VIRTIO_NET_F_HOST_TSO4) | VU_BIT(VIRTIO_NET_F_GUEST_TSO4))
/* Protocol features the front-end understands. */
#define VUFRONT_PROTOCOL_ALL (VU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
			      VU_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD) | \
			      VU_BIT(VHOST_USER_PROTOCOL_F_NET_MTU) | \
			      VU_BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE))

enum vufront_tx_layout {
	VUFRONT_TX_FLAT,        /* header and frame in one descriptor (Linux, VERSION_1) */
	VUFRONT_TX_SPLIT_HDR,   /* header in one descriptor, frame in the next */
	VUFRONT_TX_INDIRECT,    /* those two in an indirect table (needs INDIRECT_DESC) */
};

struct vufront_config {
	size_t mem_size;            /* guest memory bytes; 0: just what the layout needs */
	unsigned int nregions;      /* 1..8 regions over the memfd (0: 1); equal sizes */
	uint64_t gpa_base;          /* guest address of region 0 */
	uint64_t gpa_gap;           /* unmapped guest addresses between two regions */
	bool straddle;              /* buffers may cross region boundaries (gpa_gap 0) */
	unsigned int queue_size;    /* both queues; power of 2 up to 32768 (0: 256) */
	unsigned int rx_buf_size;   /* bytes per receive descriptor (0: 4096) */
	unsigned int rx_chain;      /* descriptors per chain without MRG_RXBUF (0: enough
				     * for a header and frame_max) */
	unsigned int frame_max;     /* largest frame without header, both ways (0: 65554) */
	enum vufront_tx_layout tx_layout;
	int timeout_ms;             /* bound of every wait (0: 5000) */
	unsigned int mtu;           /* NET_SET_MTU value if VIRTIO_NET_F_MTU and the NET_MTU
				     * protocol feature are negotiated; 0: not sent */
	bool no_reply_ack;          /* never ask for REPLY_ACK even if negotiated */
};

struct vufront_stats {
	uint64_t frames_tx, bytes_tx;       /* committed to the transmitq (header excluded) */
	uint64_t frames_rx, bytes_rx;       /* taken from the receiveq (header excluded) */
	uint64_t kicks, kicks_suppressed;   /* eventfd writes / avoided by the device's wish */
	uint64_t calls, call_reads;         /* sum of call eventfd counters / reads that got one */
	uint64_t tx_full;                   /* vufront_tx_slot() found no free slot */
	uint64_t dev_errors;                /* the device broke the protocol (see log) */
	uint64_t rx_frames_bad;             /* received frames dropped for dev_errors */
	uint64_t rx_bad_hdrs;               /* delivered, but with offloads not negotiated */
	uint64_t unexpected_fds;            /* descriptors the backend sent us (closed) */
};

/**
 * vufront_pump_fn - make progress while the front-end waits
 * @fd:		the descriptor awaited (control socket or call eventfd)
 * @events:	poll(2) events awaited on @fd
 * @timeout_ms:	return within about this long (the caller re-checks and loops)
 * @opaque:	as given to vufront_set_pump()
 */
typedef void (*vufront_pump_fn)(int fd, short events, int timeout_ms, void *opaque);

/* One received frame: header first, then the frame, over 1..VUFRONT_RX_IOV_MAX buffers. */
struct vufront_rxframe {
	struct virtio_net_hdr_v1 hdr;       /* copy of the header (num_buffers as received) */
	struct iovec iov[VUFRONT_RX_IOV_MAX]; /* guest memory, header included in iov[0] */
	unsigned int niov;
	size_t len;                         /* bytes over all iov, header included */
	uint16_t heads[VUFRONT_RX_IOV_MAX]; /* chains to give back */
	unsigned int nheads;
};

/* A raw control message: any header, any payload, any descriptors. */
struct vufront_raw {
	uint32_t request;
	uint32_t flags;             /* sent as is (VHOST_USER_VERSION is not added) */
	uint32_t size;              /* header's size field, true or not */
	const void *payload;
	size_t payload_len;         /* bytes actually sent after the header */
	const int *fds;
	unsigned int nfds;          /* up to VUFRONT_RAW_FDS_MAX */
};

struct vufront;

/* --- life cycle --- */

/**
 * vufront_new() - create guest memory and a disconnected front-end
 * @cfg:	configuration (copied); zero fields take the defaults above
 * @out:	set to the new front-end, owned by the caller
 *
 * Return: 0, -EINVAL for an impossible configuration, -ENOMEM when
 * cfg->mem_size cannot hold the layout, or -errno from memfd/mmap.
 */
int vufront_new(const struct vufront_config *cfg, struct vufront **out);

/* vufront_free() - disconnect, close and unmap everything; NULL is a no-op. */
void vufront_free(struct vufront *vf);

/* vufront_set_pump() - wait through @fn from now on (NULL: poll(2), the default). */
void vufront_set_pump(struct vufront *vf, vufront_pump_fn fn, void *opaque);

/**
 * vufront_connect() - connect to a backend's unix socket at @path
 *
 * Return: 0 or -errno (-EISCONN if already connected).
 */
int vufront_connect(struct vufront *vf, const char *path);

/* vufront_attach() - use connected stream socket @fd (ownership passes); 0 or -errno. */
int vufront_attach(struct vufront *vf, int fd);

/*
 * vufront_disconnect() - close the socket and the kick/call eventfds (the
 * backend sees EOF); guest memory stays, rings restart at index 0 on the
 * next vufront_start().
 */
void vufront_disconnect(struct vufront *vf);

/* vufront_sock_fd() - the control socket, or -1. */
int vufront_sock_fd(const struct vufront *vf);

/**
 * vufront_start() - negotiate and start both queues, as QEMU does at DRIVER_OK
 * @want:	virtio features the driver would take; the intersection with
 *		what the backend offers is negotiated
 * @want_protocol: protocol features likewise (VUFRONT_PROTOCOL_ALL at most)
 *
 * GET_FEATURES, GET/SET_PROTOCOL_FEATURES, SET_OWNER, SET_FEATURES,
 * NET_SET_MTU (see cfg.mtu), SET_MEM_TABLE; receive buffers posted; per
 * queue SET_VRING_NUM, _BASE 0, _ADDR, _CALL, _KICK; SET_VRING_ENABLE 1
 * if PROTOCOL_FEATURES was negotiated; one kick on each queue.
 *
 * Return: 0 or -errno: -ETIMEDOUT, -ECONNRESET (backend closed), -EPROTO
 * (bad reply), -EREMOTEIO (a REPLY_ACK said no), -ENOMEM (memory too small
 * for the negotiated layout).
 */
int vufront_start(struct vufront *vf, uint64_t want, uint64_t want_protocol);

/* vufront_stop() - GET_VRING_BASE on both queues: the backend stops them. 0 or -errno. */
int vufront_stop(struct vufront *vf);

bool vufront_started(const struct vufront *vf);               /* queues running */
uint64_t vufront_features(const struct vufront *vf);          /* negotiated */
uint64_t vufront_offered_features(const struct vufront *vf);  /* backend's GET_FEATURES */
uint64_t vufront_protocol_features(const struct vufront *vf); /* negotiated */
unsigned int vufront_hdr_len(const struct vufront *vf);        /* 12 or 10 */
unsigned int vufront_queue_size(const struct vufront *vf);
const struct vufront_config *vufront_config(const struct vufront *vf);
const struct vufront_stats *vufront_stats(const struct vufront *vf);

/* --- single protocol steps (vufront_start() is made of these); 0 or -errno --- */
int vufront_get_features(struct vufront *vf, uint64_t *features);
int vufront_set_features(struct vufront *vf, uint64_t features);
int vufront_get_protocol_features(struct vufront *vf, uint64_t *features);
int vufront_set_protocol_features(struct vufront *vf, uint64_t features);
int vufront_set_owner(struct vufront *vf);
int vufront_reset_owner(struct vufront *vf);
int vufront_reset_device(struct vufront *vf);
int vufront_net_set_mtu(struct vufront *vf, unsigned int mtu);
int vufront_set_mem_table(struct vufront *vf);
/* NUM, BASE 0, ADDR, CALL, KICK for queue @q (rings as laid out by vufront_start()). */
int vufront_vring_setup(struct vufront *vf, unsigned int q);
int vufront_vring_enable(struct vufront *vf, unsigned int q, bool on);
int vufront_get_vring_base(struct vufront *vf, unsigned int q, uint32_t *base);

/* --- dirty log (migration) --- */

/**
 * vufront_log_start() - make the backend log its writes, as QEMU does for migration
 *
 * A log memfd covering every guest address in use; SET_LOG_BASE (reply
 * awaited), SET_FEATURES with VHOST_F_LOG_ALL, SET_VRING_ADDR with
 * VHOST_VRING_F_LOG on both queues.
 *
 * Return: 0, -EOPNOTSUPP if the backend lacks LOG_ALL or LOG_SHMFD, or -errno.
 */
int vufront_log_start(struct vufront *vf);

/* vufront_log_stop() - LOG_ALL and the rings' F_LOG off; the log stays readable. */
int vufront_log_stop(struct vufront *vf);

/**
 * vufront_log_dirty() - guest addresses of the pages logged dirty
 * @pages:	filled with up to @max page addresses (multiples of 4096), ascending
 * @clear:	also clear the bits read (as QEMU's log sync does)
 *
 * Return: the number of dirty pages (may exceed @max; only @max are stored).
 */
size_t vufront_log_dirty(struct vufront *vf, uint64_t *pages, size_t max, bool clear);

/* vufront_log_is_dirty() - whether the page holding guest address @gpa is logged. */
bool vufront_log_is_dirty(const struct vufront *vf, uint64_t gpa);

/* --- transmit --- */

/*
 * vufront_tx_slot() - the next free transmit slot: header (vufront_hdr_len()
 * bytes) then up to cfg.frame_max bytes of frame; *@cap is the whole slot.
 * NULL when none is free (after one reclaim attempt; counted in tx_full).
 */
void *vufront_tx_slot(struct vufront *vf, size_t *cap);

/*
 * vufront_tx_commit() - queue the slot from vufront_tx_slot() with @len bytes
 * (header included; a header alone is a zero-length frame, which a device must
 * count as a runt); visible to the device at the next vufront_tx_flush().
 * Return: 0, -EINVAL (@len below the header or beyond the slot), -ENOBUFS.
 */
int vufront_tx_commit(struct vufront *vf, size_t len);

/* vufront_tx_flush() - publish committed slots, kick if the device wants it; 1 if kicked. */
int vufront_tx_flush(struct vufront *vf);

/* vufront_tx_reclaim() - take back completed slots: how many, or -EPROTO if the device lied. */
int vufront_tx_reclaim(struct vufront *vf);

/* vufront_tx_free() - free transmit slots right now. */
unsigned int vufront_tx_free(const struct vufront *vf);

/*
 * vufront_tx_notify_on() - ask for a call on the next completion (the ring is
 * full); true if completions are already waiting.  vufront_tx_notify_off()
 * returns to the default: no transmit calls.
 */
bool vufront_tx_notify_on(struct vufront *vf);
void vufront_tx_notify_off(struct vufront *vf);

/**
 * vufront_tx() - send one frame: copy, commit, flush
 * @hdr:	virtio-net header (num_buffers is zeroed); NULL for all zeros
 *
 * Waits (pump, cfg.timeout_ms) for a free slot if the ring is full.
 * Return: 0, -EMSGSIZE (over cfg.frame_max), -ETIMEDOUT, -EPROTO, -ENOTCONN.
 */
int vufront_tx(struct vufront *vf, const struct virtio_net_hdr_v1 *hdr, const void *frame,
	       size_t len);

/* --- receive --- */

/*
 * vufront_rx_next() - the next complete received frame, into @f (its iov
 * point into guest memory until vufront_rx_release()).
 * Return: 0, -EAGAIN (none yet), -EPROTO (the device broke the protocol;
 * the buffers concerned were taken back; try again), -ENOTCONN.
 */
int vufront_rx_next(struct vufront *vf, struct vufront_rxframe *f);

/* vufront_rx_release() - give @f's buffers back (posted at the next refill). */
void vufront_rx_release(struct vufront *vf, const struct vufront_rxframe *f);

/* vufront_rx_refill() - post every free receive buffer; kick if wanted. Buffers posted. */
int vufront_rx_refill(struct vufront *vf);

/* vufront_rx_notify_on() - ask for a call on the next frame; true if one is already there. */
bool vufront_rx_notify_on(struct vufront *vf);
void vufront_rx_notify_off(struct vufront *vf);

/**
 * vufront_recv() - wait for one frame and copy it out
 * @hdr:	set to its header (may be NULL)
 * @buf, @cap:	the frame, without header; a longer frame is cut to @cap
 * @timeout_ms:	bound (0: cfg.timeout_ms)
 *
 * Return: the frame's full length, or -ETIMEDOUT, -EPROTO, -ENOTCONN.
 */
ssize_t vufront_recv(struct vufront *vf, struct virtio_net_hdr_v1 *hdr, void *buf, size_t cap,
		     int timeout_ms);

/* --- notifications --- */
int vufront_call_fd(const struct vufront *vf, unsigned int q);
int vufront_kick_fd(const struct vufront *vf, unsigned int q);
/* vufront_call_drain() - read queue @q's call eventfd: the calls signalled since (0 if none). */
uint64_t vufront_call_drain(struct vufront *vf, unsigned int q);
/* vufront_kick() - kick queue @q whatever the device asked. 0 or -errno. */
int vufront_kick(struct vufront *vf, unsigned int q);

/* --- raw and hostile operations --- */

/* vufront_send_raw() - send @m as is. 0 or -errno (-EINVAL for too many fds). */
int vufront_send_raw(struct vufront *vf, const struct vufront_raw *m);

/*
 * vufront_recv_raw() - wait for one message from the backend; its header in
 * @hdr, up to @cap payload bytes in @payload.  Return: payload length (may
 * exceed @cap: the rest is discarded), or -ETIMEDOUT, -ECONNRESET, -EPROTO.
 */
int vufront_recv_raw(struct vufront *vf, struct vhost_user_hdr *hdr, void *payload, size_t cap,
		     int timeout_ms);

/*
 * vufront_request() - send @req with @payload and @fds, then wait for the
 * reply the protocol calls for (GET_* and REPLY_ACK when @need_reply); its
 * payload goes to @reply.  Return: reply payload length, 0 for no reply, or
 * -errno (-EREMOTEIO for a non-zero ack).
 */
int vufront_request(struct vufront *vf, uint32_t req, const void *payload, size_t len,
		    const int *fds, unsigned int nfds, bool need_reply, void *reply, size_t cap);

/*
 * vufront_peer_closed() - whether the backend closes the socket within
 * @timeout_ms (anything it sends meanwhile is read and dropped).
 */
bool vufront_peer_closed(struct vufront *vf, int timeout_ms);

/* Guest memory for hand-made tables. */
int vufront_memfd(const struct vufront *vf);
size_t vufront_mem_size(const struct vufront *vf);
unsigned int vufront_nregions(const struct vufront *vf);
/* vufront_region() - region @r as SET_MEM_TABLE describes it. */
struct vhost_user_region vufront_region(const struct vufront *vf, unsigned int r);
/* vufront_gpa_end() - the first guest address above every region. */
uint64_t vufront_gpa_end(const struct vufront *vf);
/* vufront_gpa() - guest address of @p (inside guest memory). */
uint64_t vufront_gpa(const struct vufront *vf, const void *p);
/* vufront_ptr() - our pointer to guest address @gpa, NULL outside the regions. */
void *vufront_ptr(const struct vufront *vf, uint64_t gpa);
/* vufront_scratch() - @len bytes (16-aligned, one region) of the scratch area; NULL when full. */
void *vufront_scratch(struct vufront *vf, size_t len, uint64_t *gpa);

/* Ring parts of queue @q, guest addresses, for log checks. */
uint64_t vufront_desc_gpa(const struct vufront *vf, unsigned int q);
uint64_t vufront_avail_gpa(const struct vufront *vf, unsigned int q);
uint64_t vufront_used_gpa(const struct vufront *vf, unsigned int q);
/* vufront_rx_buf_gpa() - guest address of receive buffer (descriptor) @i. */
uint64_t vufront_rx_buf_gpa(const struct vufront *vf, unsigned int i);

/* vufront_desc() - descriptor @i of queue @q, to write by hand. */
struct vring_desc *vufront_desc(struct vufront *vf, unsigned int q, unsigned int i);
/* vufront_avail_push() - put @head on queue @q's available ring and publish it (no kick). */
void vufront_avail_push(struct vufront *vf, unsigned int q, uint16_t head);
/* vufront_avail_set_idx() - publish any available index on queue @q (no kick). */
void vufront_avail_set_idx(struct vufront *vf, unsigned int q, uint16_t idx);
uint16_t vufront_avail_idx(const struct vufront *vf, unsigned int q);
/* vufront_used_idx() - the device's used index of queue @q, as it is in memory. */
uint16_t vufront_used_idx(const struct vufront *vf, unsigned int q);

#endif /* MESHSLIRP_TESTS_VUFRONT_H */
