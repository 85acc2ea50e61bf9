/* vudev.h - a minimal vhost-user-net device for tests: the vhost-net stand-in and loopback peer. */
#ifndef MESHSLIRP_TESTS_VUDEV_H
#define MESHSLIRP_TESTS_VUDEV_H

/*
 * Theory of operation
 *
 * vudev is the device side of a vhost-user connection, just enough of it to
 * test the front-end (vufront) without the daemon and to model what the
 * kernel's vhost-net does for a masquerade VM (vu-frontend tap2tap).  It is
 * not the daemon's backend and shares no code with it.
 *
 * Control.  vudev_handle_control() reads every complete message waiting on
 * the socket (non-blocking) and answers as the protocol says: features,
 * protocol features, the memory table (each region mapped from its fd),
 * the rings (kick and call eventfds), GET_VRING_BASE (stops the ring),
 * SET_LOG_BASE (maps the log) and REPLY_ACK.  Anything it does not know or
 * cannot accept closes the connection (-EPROTO): a strict peer.
 *
 * Data.  The transmitq is read with vudev_tx_pop() (a chain's readable
 * buffers as an iovec into the mapped guest memory, indirect tables
 * followed) and returned with vudev_tx_push().  The receiveq is filled with
 * vudev_rx_peek() (writable space of as many chains as a frame may need:
 * several 1-descriptor chains with MRG_RXBUF, one chain otherwise) and
 * vudev_rx_commit() (num_buffers set, used elements written, writes logged
 * when VHOST_F_LOG_ALL is on).  vudev_flush() publishes the used index and
 * signals the call eventfd only if the driver asked (EVENT_IDX used_event,
 * or NO_INTERRUPT).  vudev_notify_on()/off() ask for kicks or not.
 *
 * One thread drives a vudev; the front-end may live in another thread or
 * process.  No allocation per frame.  vudev_free() unmaps and closes all.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tests/lib/virtio_wire.h"

#define VUDEV_NQUEUES 2
#define VUDEV_RXQ 0
#define VUDEV_TXQ 1
#define VUDEV_IOV_MAX 320           /* iovec entries of one chain or one peeked frame */

struct vudev_config {
	uint64_t features;          /* offered in GET_FEATURES */
	uint64_t protocol_features; /* offered in GET_PROTOCOL_FEATURES */
};

struct vudev_stats {
	uint64_t tx_chains, rx_frames, rx_bufs;
	uint64_t calls, calls_suppressed;
	uint64_t bad_chains;        /* transmit chains refused (bad address, loop, ...) */
	uint64_t bad_tx_hdrs;       /* transmit headers asking for what was not negotiated */
	uint64_t log_writes;        /* pages marked in the dirty log */
	uint64_t messages;          /* control messages handled */
};

/* One transmit chain: what the driver wrote, header first. */
struct vudev_chain {
	struct iovec iov[VUDEV_IOV_MAX];
	unsigned int niov;
	size_t len;
	uint16_t head;
};

struct vudev;

/**
 * vudev_new() - serve the vhost-user connection @sock (ownership passes)
 * @cfg:	features to offer (copied)
 * @out:	set to the device, owned by the caller
 *
 * Return: 0 or -errno.
 */
int vudev_new(int sock, const struct vudev_config *cfg, struct vudev **out);

/* vudev_free() - unmap guest memory and the log, close every descriptor; NULL is a no-op. */
void vudev_free(struct vudev *d);

/*
 * vudev_handle_control() - handle every complete control message waiting.
 * Return: 0, -ECONNRESET (the front-end left) or -EPROTO (bad message; the
 * device closed the connection).
 */
int vudev_handle_control(struct vudev *d);

int vudev_sock_fd(const struct vudev *d);
int vudev_kick_fd(const struct vudev *d, unsigned int q);
/* vudev_kick_drain() - read queue @q's kick eventfd (kicks since the last read, or 0). */
uint64_t vudev_kick_drain(struct vudev *d, unsigned int q);
/* vudev_ready() - queue @q has memory, addresses, a kick fd, and is enabled. */
bool vudev_ready(const struct vudev *d, unsigned int q);
uint64_t vudev_features(const struct vudev *d);   /* as the front-end set them */
unsigned int vudev_hdr_len(const struct vudev *d);
unsigned int vudev_mtu(const struct vudev *d);     /* from NET_SET_MTU, 0 if none */
const struct vudev_stats *vudev_stats(const struct vudev *d);

/*
 * vudev_tx_pop() - next transmit chain.  0, -EAGAIN (none), -EPROTO (a bad
 * chain, returned used: go on), -EIO (the available index is impossible:
 * the queue is dead until the next SET_VRING_KICK).
 */
int vudev_tx_pop(struct vudev *d, struct vudev_chain *c);
/* vudev_tx_push() - mark chain @head used (length 0), visible at vudev_flush(). */
void vudev_tx_push(struct vudev *d, uint16_t head);

/**
 * vudev_rx_peek() - writable receive space for a frame of up to @need bytes
 * @iov, @niov:	set to the space, in order, header first (valid until commit)
 * @cap:	set to its size (>= @need with MRG_RXBUF; one chain's size otherwise)
 *
 * Nothing is consumed.  Return: 0, or -EAGAIN when the driver has not posted
 * enough (ask for a kick with vudev_notify_on()), -EPROTO for a bad chain,
 * -EIO for a dead queue (as vudev_tx_pop()).
 */
int vudev_rx_peek(struct vudev *d, size_t need, struct iovec *iov, unsigned int *niov,
		  size_t *cap);

/* vudev_rx_commit() - @len bytes were written into the peeked space: use those buffers. */
void vudev_rx_commit(struct vudev *d, size_t len);

/* vudev_flush() - publish queue @q's used index; call the driver if it asked. */
void vudev_flush(struct vudev *d, unsigned int q);

/*
 * vudev_notify_on() - ask for a kick when the driver publishes beyond what
 * is available now; true if chains are already waiting (maybe fewer than a
 * receive needs: then look once more, and wait for the kick).
 */
bool vudev_notify_on(struct vudev *d, unsigned int q);
void vudev_notify_off(struct vudev *d, unsigned int q);

/* vudev_avail_pending() - chains the driver made available on @q and we did not take. */
unsigned int vudev_avail_pending(const struct vudev *d, unsigned int q);

/* --- misbehaviour, for the front-end's own tests --- */

/* vudev_push_raw_used() - append a used element (any id, any length) to queue @q. */
void vudev_push_raw_used(struct vudev *d, unsigned int q, uint32_t id, uint32_t len);

#endif /* MESHSLIRP_TESTS_VUDEV_H */
