/* backend.h - the frame transport between the guest's NIC and the daemon. */
#ifndef MESHSLIRP_BACKEND_H
#define MESHSLIRP_BACKEND_H

/*
 * A backend moves whole Ethernet frames between the guest and the daemon.
 * Three exist: the QEMU -netdev stream server (stream.c), vhost-user
 * (vhost_user.c: the guest's virtqueues in shared memory) and a tap device in
 * a network namespace (tap.c).  All run on the default GLib main context.
 *
 * Receive: each frame from the guest is passed to cb->rx_frame(), valid only
 * during the call; it sits in the backend's own buffer (never in guest
 * memory), so the receiver may rewrite it in place.  A large frame may
 * first be offered to cb->rx_frame_tail(), if set (vhost-user only): its
 * first FRAME_TAIL_HEAD bytes copied, the rest left in guest memory for a
 * receiver that only passes payload on (one copy fewer, as vhost-net
 * does); declined, it is copied whole and goes to cb->rx_frame().  Transmit: backend_send()
 * queues or writes one frame (it is copied), backend_flush() pushes queued
 * frames out at the end of a batch.
 *
 * Offloads: a frame may carry struct frame_meta, the meaning of a virtio-net
 * header (partial checksum, segmentation).  On receive, @meta is NULL for a
 * plain frame whose checksums are complete; a backend passes a non-NULL one
 * only for what it negotiated with the guest (be->rx_offloads).  On transmit
 * the sender may pass a meta only for what the guest accepts
 * (be->tx_offloads); NULL means a plain frame.  Backends without a
 * virtio-net header (stream) negotiate nothing.
 *
 * Backpressure (our version of QEMU's can_receive): when a backend cannot take
 * frames as fast as they come, it calls cb->set_congested(true), stops
 * reading from the guest (each guest frame can produce answers that would
 * have nowhere to go), and calls cb->set_congested(false) once it has
 * drained.  A frame it must refuse meanwhile is dropped and counted, never
 * buffered without bound.
 *
 * Failure: a backend that can serve no guest any more (its tap device was
 * deleted) says so once through cb->failed(), if set, and stops; the owner
 * decides whether the daemon goes on.
 *
 * Ownership: the daemon creates one backend and frees it with
 * backend_free(), which closes every descriptor the backend opened (and
 * removes the socket path it listened on).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* struct frame_meta flags: the virtio-net header's VIRTIO_NET_HDR_F_* bits. */
#define FRAME_META_NEEDS_CSUM 0x01  /* checksum from csum_start, stored at + csum_offset */
#define FRAME_META_DATA_VALID 0x02  /* every checksum was verified (towards the guest) */

/* struct frame_meta gso_type: the virtio-net header's VIRTIO_NET_HDR_GSO_* values. */
#define FRAME_GSO_NONE 0
#define FRAME_GSO_TCPV4 1
#define FRAME_GSO_UDP 3
#define FRAME_GSO_TCPV6 4

/* be->rx_offloads / be->tx_offloads bits. */
#define BACKEND_OFFLOAD_CSUM 0x01   /* partial checksums (NEEDS_CSUM) */
#define BACKEND_OFFLOAD_TSO4 0x02   /* FRAME_GSO_TCPV4 segments */

/* Offload metadata of one frame, host byte order (see the virtio 1.x spec, 5.1.6). */
struct frame_meta {
	uint8_t flags;              /* FRAME_META_* */
	uint8_t gso_type;           /* FRAME_GSO_* */
	uint16_t hdr_len;           /* Ethernet + IP + TCP header length, for GSO */
	uint16_t gso_size;          /* payload bytes per segment, for GSO */
	uint16_t csum_start;        /* NEEDS_CSUM: offset where checksumming starts */
	uint16_t csum_offset;       /* NEEDS_CSUM: where, after csum_start, it is stored */
};

/*
 * Bytes a backend copies of a frame it offers with a tail: every header a
 * receiver may need to read (Ethernet 14, IPv4 up to 60, TCP up to 60), and more.
 */
#define FRAME_TAIL_HEAD 256
/* The most iovecs a tail has: a chain more scattered than this is copied (writev takes 1024). */
#define FRAME_TAIL_MAX_IOV 64

/*
 * The rest of a frame, still in guest memory: @niov iovecs, @len bytes in
 * all.  Read-only and valid during the call only.  The guest can rewrite
 * these bytes at any moment, so a receiver may hand them to the kernel as
 * payload (writev()) but must never parse them or decide on them.
 */
struct frame_tail {
	const struct iovec *iov;
	unsigned int niov;
	size_t len;
};

struct backend_callbacks {
	/* One frame from the guest; @meta is NULL for a plain frame. */
	void (*rx_frame)(uint8_t *frame, size_t len, const struct frame_meta *meta, void *opaque);
	/*
	 * Optional: a large frame (vhost-user: 2 KiB or more) offered in two
	 * parts, @frame (exactly FRAME_TAIL_HEAD bytes, ours to rewrite) and
	 * @tail.  Returns 1 if the receiver took it; 0 to have it whole
	 * through rx_frame() (then @frame must be as it was given, and the
	 * receiver must not have reset or freed the backend: it still reads
	 * the rest from guest memory); -EFAULT if it took it but @tail could
	 * not be read (the frame is lost, counted by the receiver): the
	 * front-end's memory is gone, and the backend closes it as after a
	 * SIGBUS.
	 */
	int (*rx_frame_tail)(uint8_t *frame, const struct frame_tail *tail,
			     const struct frame_meta *meta, void *opaque);
	/*
	 * Optional: the frames of one batch (one drain of the guest's ring or
	 * socket) were all given to rx_frame()/rx_frame_tail(); called once
	 * per batch that gave any, before the backend publishes what was
	 * sent back during it.  Not called when the batch ended with the
	 * front-end gone (the stream backend's disconnect): a hint to act
	 * now, never the only one, as the receiver's own sources see the
	 * same work.
	 */
	void (*rx_batch_done)(void *opaque);
	void (*set_congested)(bool congested, void *opaque);
	/* Optional: the backend stopped for good; @why is for a log line. */
	void (*failed)(const char *why, void *opaque);
	/*
	 * Optional: the guest's link MTU is now @mtu (vhost-user: the
	 * front-end's NET_SET_MTU, between 576 and the backend's own @mtu;
	 * that @mtu again once the front-end is gone).  Frames sent to the
	 * guest must fit it from now on: the backend drops and counts plain
	 * frames longer than @mtu + 14 (tx_over_mtu).
	 */
	void (*link_mtu)(unsigned int mtu, void *opaque);
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
	uint64_t tx_over_mtu;       /* dropped: a plain frame over the guest's MTU + 14 */
	uint64_t tx_unsent_bytes;   /* stream: bytes queued for QEMU, dropped when it detached */
	uint64_t peers_accepted;    /* QEMU connections served */
	uint64_t peers_refused;     /* QEMU connections refused (one at a time) */
	uint64_t congestion_events; /* times the backend asked to throttle */
	uint64_t rx_bad_meta;       /* offload metadata the guest may not send: frame dropped */
	uint64_t rx_meta_ignored;   /* header flags ignored (DATA_VALID, unknown): frame kept */
	uint64_t attached;          /* gauge: 1 while a guest (QEMU, tap) is attached */
	/* vhost-user only (0 elsewhere). */
	uint64_t rx_ring_full_events; /* the guest's RX ring had no buffer: frames staged */
	uint64_t rx_ring_unusable;  /* frames dropped (tx_errors too): the guest's RX ring offered
				     * only buffers it cannot take, a ring's worth or more, or
				     * all its descriptors and still too little room */
	uint64_t tx_drain_paused;   /* the guest's TX ring was left undrained (congested) */
	uint64_t ring_broken;       /* rings put in the BROKEN state by a rule violation */
	uint64_t vu_messages;       /* vhost-user messages handled */
	uint64_t vu_bad_messages;   /* vhost-user messages that closed the connection */
	uint64_t vu_rarp;           /* SEND_RARP requests (acknowledged, nothing sent) */
	uint64_t vu_disabled_discards; /* guest TX chains discarded: their ring was disabled */
	uint64_t vu_tx_tail_frames; /* guest frames taken with their payload left in guest memory */
	uint64_t vu_dirty_logged;   /* guest buffer writes marked in the dirty log (migration) */
	uint64_t vu_dirty_log_missed; /* writes (buffers, used rings) beyond the dirty log */
	uint64_t vu_unmap_failures; /* guest memory or log mappings munmap() refused (leaked) */
	uint64_t vu_memory_faults;  /* front-ends closed: their memory fd shrank under us (SIGBUS) */
	uint64_t vu_eventfd_stalls; /* front-ends closed: they held an eventfd read or write blocked */
	uint64_t vu_missed_kicks;   /* guest TX chains found waiting a whole tick with no kick */
	/* Per ring (0: the guest's RX, 1: its TX): interrupts requested (call fd signalled), and
	 * the used index published with the last one (with the guest's used_event, which lies in
	 * guest memory, it tells whether an interrupt the guest asked for was sent). */
	uint64_t vu_calls[2];
	uint16_t vu_call_used_idx[2];
};

struct backend;

struct backend_ops {
	int (*send)(struct backend *be, const void *frame, size_t len,
		    const struct frame_meta *meta);
	void (*flush)(struct backend *be);      /* optional: NULL if send() writes at once */
	void (*free)(struct backend *be);
};

/* Common head of every backend; concrete backends embed it (container_of). */
struct backend {
	const struct backend_ops *ops;
	const struct backend_callbacks *cb;
	void *opaque;
	size_t max_frame;           /* MTU + Ethernet header: largest plain frame */
	uint32_t rx_offloads;       /* BACKEND_OFFLOAD_*: what the guest may send us */
	uint32_t tx_offloads;       /* BACKEND_OFFLOAD_*: what the guest accepts from us */
	struct backend_stats stats;
};

/**
 * backend_send() - queue one frame for the guest
 * @meta:	offload metadata within be->tx_offloads, or NULL for a plain frame
 *
 * Return: 0, or -ENOTCONN (no guest attached), -ENOBUFS (queue full), -EIO;
 * in every error case the frame was dropped and counted.
 */
static inline int backend_send(struct backend *be, const void *frame, size_t len,
			       const struct frame_meta *meta)
{
	return be->ops->send(be, frame, len, meta);
}

/* backend_flush() - write out what backend_send() queued, as far as possible. */
static inline void backend_flush(struct backend *be)
{
	if (be->ops->flush)
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
 * @offloads:	BACKEND_OFFLOAD_* to use both ways (IFF_VNET_HDR, TUNSETOFFLOAD);
 *		0 for plain frames
 * @cb, @opaque, @out:	as for stream_backend_new()
 *
 * The calling thread enters @netns only while it opens the device and
 * returns to its own namespace before this returns.
 *
 * Return: 0 or -errno.
 */
int tap_backend_new(const char *ifname, const char *netns, unsigned int mtu, uint32_t offloads,
		    const struct backend_callbacks *cb, void *opaque,
		    struct backend **out);

/**
 * vhost_user_backend_new() - serve a vhost-user front-end (QEMU) on a unix socket
 * @path:	socket path we listen on (QEMU connects: -chardev socket,path=...);
 *		a stale socket is replaced, a live one is -EADDRINUSE
 * @mtu:	largest IP packet; the guest's MTU (NET_SET_MTU, from 576) may not
 *		exceed it, and cb->link_mtu() hears of it when set
 * @offloads:	BACKEND_OFFLOAD_* the front-end may negotiate (both directions);
 *		0 offers none of the virtio-net offload features
 * @cb, @opaque, @out:	as for stream_backend_new()
 *
 * One front-end at a time; see vhost_user.c for the protocol, the rings and
 * their limits.
 *
 * Return: 0 or -errno (-ENAMETOOLONG for a path that does not fit).
 */
int vhost_user_backend_new(const char *path, unsigned int mtu, uint32_t offloads,
			   const struct backend_callbacks *cb, void *opaque,
			   struct backend **out);

#endif /* MESHSLIRP_BACKEND_H */
