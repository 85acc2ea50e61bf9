/* backend.h - the frame transport between the guest's NIC and the daemon. */
#ifndef MESHSLIRP_BACKEND_H
#define MESHSLIRP_BACKEND_H

/*
 * A backend moves whole Ethernet frames between the guest and the daemon.
 * Two exist: the QEMU -netdev stream server (stream.c) and a tap device in a
 * network namespace (tap.c).  Both run on the default GLib main context.
 *
 * Receive: each frame from the guest is passed to cb->rx_frame(), valid only
 * during the call; it sits in the backend's own buffer, so the receiver may
 * rewrite it in place.  Transmit: backend_send() queues or writes one frame (it
 * is copied), backend_flush() pushes queued frames out at the end of a batch.
 *
 * Backpressure: when a backend cannot take frames as fast as they come, it
 * calls cb->set_congested(true), stops reading from the guest (each guest
 * frame can produce answers that would have nowhere to go), and calls
 * cb->set_congested(false) once it has drained.  A frame it must refuse
 * meanwhile is dropped and counted, never buffered without bound.
 *
 * Ownership: the daemon creates one backend and frees it with
 * backend_free(), which closes every descriptor the backend opened (and
 * removes the stream socket's path).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend_callbacks {
	void (*rx_frame)(uint8_t *frame, size_t len, void *opaque);
	void (*set_congested)(bool congested, void *opaque);
};

struct backend_stats {
	uint64_t rx_frames, rx_bytes;
	uint64_t tx_frames, tx_bytes;
	uint64_t rx_runts;          /* shorter than an Ethernet header */
	uint64_t rx_oversize;       /* longer than MTU + 14 */
	uint64_t rx_bad_prefix;     /* stream resets for impossible lengths */
	uint64_t tx_no_peer;        /* dropped: no guest attached */
	uint64_t tx_full;           /* dropped: transmit queue full */
	uint64_t tx_errors;         /* dropped: write error */
	uint64_t peers_accepted;    /* QEMU connections served */
	uint64_t peers_refused;     /* QEMU connections refused (one at a time) */
	uint64_t congestion_events; /* times the backend asked to throttle */
	uint64_t attached;          /* gauge: 1 while a guest (QEMU, tap) is attached */
};

struct backend;

struct backend_ops {
	int (*send)(struct backend *be, const void *frame, size_t len);
	void (*flush)(struct backend *be);
	void (*free)(struct backend *be);
};

/* Common head of every backend; concrete backends embed it first. */
struct backend {
	const struct backend_ops *ops;
	const struct backend_callbacks *cb;
	void *opaque;
	size_t max_frame;           /* MTU + Ethernet header */
	struct backend_stats stats;
};

/**
 * backend_send() - queue one frame for the guest
 *
 * Return: 0, or -ENOTCONN (no guest attached), -ENOBUFS (queue full), -EIO;
 * in every error case the frame was dropped and counted.
 */
static inline int backend_send(struct backend *be, const void *frame, size_t len)
{
	return be->ops->send(be, frame, len);
}

/* backend_flush() - write out what backend_send() queued, as far as possible. */
static inline void backend_flush(struct backend *be)
{
	be->ops->flush(be);
}

/* backend_free() - close everything; NULL is a no-op. */
static inline void backend_free(struct backend *be)
{
	if (be)
		be->ops->free(be);
}

/**
 * stream_backend_new() - listen for QEMU's -netdev stream on a unix socket
 * @path:	socket path; a stale socket left by a dead daemon is replaced,
 *		a live one (another daemon answering) is an error (-EADDRINUSE)
 * @mtu:	largest IP packet; frames up to @mtu + 14 bytes are accepted
 * @cb:		callbacks (not copied; must outlive the backend)
 * @opaque:	passed to @cb
 * @out:	set to the backend, owned by the caller
 *
 * Return: 0 or -errno (-ENAMETOOLONG for a path that does not fit).
 */
int stream_backend_new(const char *path, unsigned int mtu,
		       const struct backend_callbacks *cb, void *opaque,
		       struct backend **out);

/**
 * tap_backend_new() - create or open tap device @ifname in a network namespace
 * @ifname:	interface name (at most IFNAMSIZ - 1 bytes)
 * @netns:	path of a network namespace (e.g. /run/netns/NAME), or NULL for
 *		the daemon's own
 * @mtu:	MTU set on the device; the device is brought up
 * @cb, @opaque, @out:	as for stream_backend_new()
 *
 * The calling thread enters @netns only while it opens the device and
 * returns to its own namespace before this returns.
 *
 * Return: 0 or -errno.
 */
int tap_backend_new(const char *ifname, const char *netns, unsigned int mtu,
		    const struct backend_callbacks *cb, void *opaque,
		    struct backend **out);

#endif /* MESHSLIRP_BACKEND_H */
