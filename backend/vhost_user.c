/* vhost_user.c - serve a vhost-user front-end (QEMU): the guest's virtio-net rings in shared memory. */

/*
 * Theory of operation
 *
 * Roles: we are the vhost-user back-end and the socket server: we listen on
 * PATH, QEMU (-chardev socket,path=PATH -netdev vhost-user) connects.  One
 * front-end at a time, as in stream.c: a second connection is closed at
 * once with a rate-limited log line and counted (peers_refused).
 *
 * Messages: read without blocking, header first and then exactly its
 * payload, so one recvmsg() never crosses into the next message and the
 * fds (SCM_RIGHTS, MSG_CMSG_CLOEXEC) belong to the message being read.  A
 * trickling front-end only leaves a partial message in our fixed buffer
 * (VU_MSG_MAX bytes).  vu_msg.c judges each complete message; the handlers
 * below judge it against our state.  Any violation -- malformed message,
 * unknown request, wrong fd count, features we did not offer, a request
 * whose protocol feature was not negotiated, an invalid memory table, a
 * ring that does not fit in memory, reconfiguring a running ring, a kick,
 * call or err fd that is not an eventfd (or a kick eventfd in semaphore
 * mode: vu_check_ring_fd() says how that is told under seccomp) -- gets
 * one log line naming the request and the rule, is counted
 * (vu_bad_messages) and closes this connection; the daemon goes on.  A
 * request with NEED_REPLY (REPLY_ACK negotiated) that closes the connection
 * still gets its non-zero ack first, as far as the socket takes it.
 * Replies (GET_*, REPLY_ACK, SET_LOG_BASE) are sent with MSG_DONTWAIT; a
 * reply the socket cannot take now is kept and reading pauses until it is
 * out, so at most one reply is ever pending.  Every log line a front-end
 * or its guest can trigger goes through a rate limit (vu_log(), or the
 * refusal and broken-ring limits), which reports what it suppressed.
 *
 * Features offered (GET_FEATURES):
 *
 *   bit                        why
 *   VIRTIO_F_VERSION_1         virtio 1.x only: little-endian rings, 12-byte header
 *   VIRTIO_NET_F_MRG_RXBUF     a large frame may fill several RX buffers (num_buffers)
 *   VIRTIO_RING_F_EVENT_IDX    fewer kicks and interrupts (used_event/avail_event)
 *   VIRTIO_RING_F_INDIRECT_DESC  Linux uses indirect tables for multi-fragment TX;
 *                              walked with the same bounds (no nesting, len % 16)
 *   VIRTIO_NET_F_MTU           QEMU's host_mtu reaches us as NET_SET_MTU
 *   VHOST_F_LOG_ALL            live migration: dirty logging
 *   VHOST_USER_F_PROTOCOL_FEATURES  required by QEMU for vhost-user net; once
 *                              acked, rings start disabled until SET_VRING_ENABLE
 *   VIRTIO_NET_F_CSUM, HOST_TSO4    the guest may hand us partial checksums and TCP
 *                              segments of up to 64 KiB whatever its MTU;
 *   VIRTIO_NET_F_GUEST_CSUM, GUEST_TSO4  and takes the same from us (offload.h)
 *
 * Protocol features offered (GET_PROTOCOL_FEATURES):
 *
 *   REPLY_ACK    QEMU asks for an ack of SET_MEM_TABLE and others (errors surface)
 *   LOG_SHMFD    the dirty log arrives as a shared-memory fd (SET_LOG_BASE)
 *   NET_MTU      NET_SET_MTU, accepted from 576 up to our --mtu: enforced
 *                (cb->link_mtu() tells the daemon, which fits frames to it;
 *                vu_send() drops a plain frame over it), --mtu again after
 *                the front-end goes
 *   RARP         after migration QEMU asks us to announce the guest (SEND_RARP);
 *                we have no L2 network to announce on, so it is counted only
 *
 * Not offered: MQ (one queue pair), CONFIG, BACKEND_REQ, RESET_DEVICE (we
 * serve RESET_OWNER), CONFIGURE_MEM_SLOTS (at most 8 regions), INFLIGHT.
 *
 * Rings: index 0 is the guest's RX queue (we write frames into it), 1 its
 * TX queue (we read frames).  A ring runs when it has a kick fd, a size,
 * addresses and a memory table; virtqueue.c validates it against the
 * memory table then.  Enabled or not is another matter (with
 * PROTOCOL_FEATURES acked, SET_VRING_ENABLE; without, at once): a running
 * but disabled ring is processed without side effects, as vhost-user.rst
 * asks -- TX chains are taken and discarded (vu_disabled_discards), nothing
 * is delivered to RX (send() reports no peer, staged frames are dropped).
 * GET_VRING_BASE stops the ring, closes its kick and call fds and answers
 * last_avail_idx.  A kick fd that fails, hangs up, or (where fdinfo does
 * not show an eventfd's mode) stays readable after its reads on
 * VU_KICK_BUSY_MAX wake-ups in a row (so would spin the loop) is no longer
 * watched and the front-end is closed.  A SET_MEM_TABLE or
 * SET_VRING_ADDR while running (QEMU does both: memory hotplug, and
 * turning on the used ring's dirty log for migration) stops, revalidates
 * and restarts the ring.  A ring whose guest breaks the virtqueue rules
 * is BROKEN (virtqueue.c): a rate-limited log line, ring_broken counted,
 * its err fd signalled, and no more processing until the front-end
 * reconfigures it.
 *
 * Guest -> daemon (TX ring): a kick (or an idle callback when a batch was cut
 * short) pops up to VU_TX_BUDGET chains per dispatch.  Each frame is copied
 * out of guest memory into our own linear buffer (the receiver rewrites it in
 * place, and the guest could change shared memory under it), its virtio-net
 * header turned into struct frame_meta, the chain returned, and
 * cb->rx_frame() called.  A frame of VU_TX_TAIL_MIN bytes or more is first
 * offered to cb->rx_frame_tail(), if the owner set it: only its first
 * FRAME_TAIL_HEAD bytes copied, the rest as iovecs into guest memory (at
 * most FRAME_TAIL_MAX_IOV), for a receiver that writes the payload to the
 * kernel without reading it; the chain is returned in the same batch, so
 * the guest gets the buffers back only after that write.  A receiver whose
 * kernel found that memory unreadable (EFAULT: a truncated memory file,
 * which raises no SIGBUS of ours) has the front-end closed as for one.
 * One used-index publication and at most one call-fd signal per batch
 * (EVENT_IDX).
 * Runts, oversize frames, chains with too many buffers and headers asking
 * for offloads we did not negotiate are dropped and counted; their chains
 * are returned all the same.  Header
 * flags other than NEEDS_CSUM (DATA_VALID, which the driver must not set,
 * and bits we do not know) are ignored and counted (rx_meta_ignored), as
 * virtio 5.1.6.2 asks: the frame goes on as a plain one.
 *
 * Daemon -> guest (RX ring): send() copies the header (num_buffers for
 * MRG_RXBUF) and the frame into as many RX chains as it needs and stages the
 * used entries; flush() publishes them and signals once.  Chains it cannot
 * use (shorter than the header, too scattered) are returned unused; every
 * chain popped for a frame counts, and after a ring's worth the frame is
 * dropped (rx_ring_unusable, tx_errors): a guest re-offering such chains as
 * fast as we return them cannot keep one send() going.  So does each
 * descriptor visited (empty and indirect ones too): at most
 * VU_RX_FRAME_DESCS per frame and VU_RX_DRAIN_DESCS per drain dispatch,
 * with rings of at most 1024 entries (VQ_MAX_SIZE, QEMU's maximum; a
 * larger SET_VRING_NUM closes the connection).  A frame is dropped the same
 * way when the chains gathered for it take every entry of the ring's
 * descriptor table and still cannot hold it: the driver cannot post more,
 * and the frame would wait for ever (multi-descriptor chains; a ring's
 * worth of one-descriptor chains is the first case).  Backpressure: when the
 * guest has too few RX buffers for a frame, frames wait in a bounded
 * staging queue (VU_STAGE_BYTES), we ask for an RX kick once it posts more
 * than the failed gather found (vu_rx_more_buffers(); trying the same ones
 * again would be a busy loop), call cb->set_congested(true) (the daemon
 * stops reading host sockets) and stop draining the TX ring (each guest
 * frame may produce answers with nowhere to go).  The guest's kick with
 * new buffers drains the queue; once it took frames and the queue is below
 * VU_STAGE_LOW both resume (above VU_STAGE_HIGH they stop again, should the
 * guest stay slow with frames left).  Only a full staging queue drops
 * (tx_full).  Counters: rx_ring_full_events,
 * tx_drain_paused, congestion_events.
 *
 * Dirty log: while VHOST_F_LOG_ALL is acked and a log is mapped
 * (SET_LOG_BASE, answered with a u64 0), every byte we write to guest memory
 * is logged: RX buffers here by their GPAs, used-ring writes by
 * virtqueue.c at the ring's log address.  A write beyond a too-small log is
 * counted (vu_dirty_log_missed) and warned about once per log: the
 * migration would miss it.  The log is unmapped when replaced and at
 * reset.
 *
 * Shrinking memory: a front-end may truncate an unsealed memory or log fd
 * under us (files on tmpfs or hugetlbfs cannot be sealed).  The SIGBUS
 * guard (vu_mem.h, installed when the backend is created) replaces the
 * faulting mapping with zero pages and flags it; after each dispatch
 * (socket, kick, idle work -- send and flush schedule the idle work) the
 * backend checks the flag and closes that front-end with one line, "guest
 * memory shrank under us ... (SIGBUS)", counted (vu_memory_faults,
 * vu_bad_messages).  Regions are mapped in whole pages of their fd (huge
 * pages on hugetlbfs) and without MAP_NORESERVE, so an fd the huge page
 * pool cannot back is refused at SET_MEM_TABLE instead.
 *
 * Lifecycle and ownership: the backend owns the listening socket, at most
 * one connection, every fd a message gave us (kick, call, err per ring, the
 * memory and log mappings: region fds are closed once mapped), a linear
 * frame buffer, one popped element, the RX assembly area and the staging
 * queue; nothing is allocated per packet.  The front-end going away resets
 * the device: rings stopped, every ring fd closed, memory and log
 * unmapped, features forgotten, staging dropped, congestion lifted, the
 * guest MTU back to --mtu.  RESET_OWNER only resets the rings (stopped,
 * fds closed, disabled, staging dropped): the memory table, log and
 * features stay, as vhost-user.rst recommends.  stats.attached is 1 while
 * a front-end is connected and both rings run, enabled.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <glib.h>

#include "backend.h"
#include "frame.h"
#include "offload.h"
#include "virtio_net.h"
#include "virtqueue.h"
#include "vu_mem.h"
#include "vu_msg.h"
#include "common/clientslots.h"
#include "common/fdsource.h"
#include "common/ratelimit.h"
#include "common/stallguard.h"
#include "common/unixsock.h"
#include "common/util.h"

#define VU_RXQ 0                    /* the guest's receive queue: we write */
#define VU_TXQ 1                    /* the guest's transmit queue: we read */

/* The offloads we offer (what they mean for frames: backend/offload.h); see vu_apply_offloads(). */
#define VU_OFFLOAD_FEATURES (VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | \
			     VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4))
/* The largest frame a guest taking HOST_TSO4 may hand us: a 64 KiB IPv4 packet, VLAN-tagged. */
#define VU_GSO_FRAME_MAX (65535 + FRAME_ETH_HLEN + 4)

#define VU_FEATURES (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) | \
		     VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | \
		     VIRTIO_BIT(VIRTIO_NET_F_MTU) | VIRTIO_BIT(VHOST_F_LOG_ALL) | \
		     VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES) | VU_OFFLOAD_FEATURES)

#define VU_PROTOCOL_FEATURES (VIRTIO_BIT(VU_PROTOCOL_F_REPLY_ACK) | \
			      VIRTIO_BIT(VU_PROTOCOL_F_LOG_SHMFD) | \
			      VIRTIO_BIT(VU_PROTOCOL_F_NET_MTU) | VIRTIO_BIT(VU_PROTOCOL_F_RARP))

#define VU_QUEUE_PAIRS 1            /* GET_QUEUE_NUM */
#define VU_MSGS_PER_DISPATCH 32     /* messages handled per wakeup of the socket */
#define VU_TX_BUDGET 64             /* guest TX chains per dispatch (fairness) */
/* Smallest frame offered with a tail: up to a 1500-byte MTU's, a copy costs less than an iovec. */
#define VU_TX_TAIL_MIN 2048
G_STATIC_ASSERT(VU_TX_TAIL_MIN > FRAME_TAIL_HEAD);
#define VU_RX_DRAIN_BUDGET 256      /* staged frames delivered per dispatch */
#define VU_RX_MAX_CHAINS 256        /* RX chains one frame may fill (MRG_RXBUF) */
/*
 * Descriptors one frame towards the guest may make us visit, over all the
 * chains popped for it (skipped ones, empty descriptors and indirect ones
 * included).  Linux needs a handful per frame (one per mergeable buffer, at
 * most MAX_SKB_FRAGS + 2 in a chain); a guest that makes every chain as
 * long as the rules allow (2 * 1024 - 1 visits) gets its frame dropped
 * after about two of them instead of costing milliseconds.
 */
#define VU_RX_FRAME_DESCS (4 * VQ_MAX_IOV)
/* Descriptors visited per RX drain dispatch before the rest waits for the next one. */
#define VU_RX_DRAIN_DESCS (64 * VQ_MAX_IOV)
#define VU_KICK_READS 4             /* reads to drain a kick fd per wakeup */
/*
 * Wake-ups in a row after which a kick fd that was still readable after
 * VU_KICK_READS reads is taken for one that never drains.  An eventfd
 * returns its whole count in one read; for all four to return data, a kick
 * has to land between each of our reads, sixteen times running.
 */
#define VU_KICK_BUSY_MAX 16
#define VU_FDINFO_MAX 512           /* bytes of /proc/self/fdinfo/N we read */
#define VU_STAGE_BYTES (2u << 20)   /* frames waiting for RX buffers */
#define VU_STAGE_HIGH (VU_STAGE_BYTES / 2)
#define VU_STAGE_LOW (VU_STAGE_BYTES / 4)
#define VU_STAGE_ALIGN 4
#define VU_STAGE_WRAP UINT32_MAX    /* record length marking "continue at 0" */
#define VU_LISTEN_BACKLOG 4
#define VU_ACCEPTS_PER_DISPATCH 16
#define VU_REAP_DISPATCHES 4         /* rounds given to a hung-up front-end's last messages */
/*
 * After a front-end is closed for holding an eventfd blocked, the listener
 * rests this many stall guard periods, doubling with each such close in a
 * row up to VU_STALL_PAUSE_MAX.  A held call froze the data thread for at
 * most two periods, so one that reconnects and stalls in a loop freezes
 * it at most 2 / (2 + 64) of the time, about 3%.  A close more than
 * VU_STALL_PAUSE_MAX periods after the last pause ended starts again at
 * VU_STALL_PAUSE_FIRST.
 */
#define VU_STALL_PAUSE_FIRST 2
#define VU_STALL_PAUSE_MAX 64
/*
 * The smallest guest MTU NET_SET_MTU may set: IPv4's minimum reassembly
 * size, the floor of the daemon's guest link (DHCP's MTU option and the
 * fragments it cuts need it).
 */
#define VU_MTU_MIN 576
#define VU_REFUSE_BURST 5
#define VU_BROKEN_BURST 5
#define VU_LOG_BURST 10             /* other lines a front-end can trigger, per second */
#define VU_DEBUG_BURST 100          /* debug lines (the message trace), per second */

/* The staging queue: contiguous records [u32 len][12-byte header][frame], FIFO. */
struct vu_stage {
	uint8_t *buf;               /* owned, VU_STAGE_BYTES */
	size_t head, tail;          /* next record to read, next byte to write */
	size_t bytes;               /* bytes held, wrap padding included */
	unsigned int count;         /* records */
};

/* One vring: its virtqueue and the fds the front-end gave for it. */
struct vu_vring {
	struct virtqueue vq;
	int kick_fd, call_fd, err_fd;   /* -1 when unset; owned */
	GSource *kick_src;
	unsigned int kick_busy;     /* wake-ups in a row the kick fd did not drain */
	bool kick_one_read;         /* fdinfo says: no semaphore, one read empties the kick fd */
	bool enabled;               /* SET_VRING_ENABLE */
	uint64_t violations_reported; /* vq.violations already logged and counted */
	uint64_t log_missed_seen;   /* vq.log_missed already counted */
};

/* RX chains gathered for one frame (MRG_RXBUF may need several). */
struct vu_rx_batch {
	unsigned int nchains;
	uint16_t head[VU_RX_MAX_CHAINS];
	uint64_t cap[VU_RX_MAX_CHAINS];         /* writable bytes of each chain */
	unsigned int first_iov[VU_RX_MAX_CHAINS + 1];
	unsigned int niov;
	struct iovec iov[VQ_MAX_IOV];
	uint64_t gpa[VQ_MAX_IOV];
};

struct vhost_user_backend {
	struct backend be;
	char *path;
	unsigned int mtu;           /* our --mtu: the most NET_SET_MTU may ask */
	dev_t anon_dev;             /* st_dev of anonymous inodes: where eventfds live */
	bool eventfd_nowait;        /* eventfds take RWF_NOWAIT here (Linux 5.12) */
	int listen_fd;
	GSource *listen_src;
	struct client_backoff accept_backoff; /* out of descriptors, or after a stall: it rests */
	unsigned int stall_pause;   /* stall guard periods of the last stall pause, 0: none */
	gint64 stall_pause_end;     /* when it ended (g_get_monotonic_time()) */

	/* The front-end connection. */
	int conn_fd;                /* -1 when none */
	GSource *conn_src;
	guint tick_id;              /* vu_on_tick(), while a front-end is connected */
	bool tick_tx_waiting;       /* the last tick found TX chains waiting ... */
	uint16_t tick_tx_next;      /* ... and this one next to pop */
	pid_t conn_pid;
	uint8_t rbuf[VU_MSG_MAX];   /* the message being read */
	size_t rlen;
	int rfds[VU_MAX_FDS];       /* fds received with it */
	unsigned int rnfds;
	bool rfds_overflow;         /* more fds than any message carries */
	uint8_t wbuf[VU_MSG_MAX];   /* the reply the socket has not taken yet */
	size_t wlen, woff;

	/* Device state negotiated on this connection. */
	bool owner;
	uint64_t features;          /* acked by SET_FEATURES */
	uint64_t protocol_features; /* acked by SET_PROTOCOL_FEATURES */
	bool protocol_set;          /* SET_PROTOCOL_FEATURES seen */
	unsigned int guest_mtu;     /* NET_SET_MTU, 0 if not sent: then mtu applies */
	struct vu_mem mem;
	struct vu_log log;
	bool log_miss_warned;       /* this log's misses were reported */
	struct vu_vring vr[VU_NUM_QUEUES];

	/* Data path. */
	uint8_t *frame_buf;         /* owned: header + one frame from the guest */
	size_t frame_cap;
	struct iovec tail_iov[FRAME_TAIL_MAX_IOV]; /* a frame's rest, in guest memory */
	bool tail_unreadable;       /* the receiver's kernel could not read a tail (EFAULT) */
	bool eventfd_stalled;       /* the stall guard interrupted an eventfd write or read */
	uint64_t features_offered;  /* VU_FEATURES less the offloads the owner turned off */
	struct vq_elem *elem;       /* owned: one popped TX chain */
	struct vq_elem *rx_elem;    /* owned: one popped RX chain */
	struct vu_rx_batch *rxb;    /* owned: chains of one frame towards the guest */
	struct vu_stage stage;
	bool congested;
	bool rx_used_pending;       /* RX used entries pushed, not flushed */
	uint64_t rx_desc_visits;    /* descriptors RX gathers visited (a running total) */
	uint16_t rx_chains_short;   /* chains the last -ENOBUFS gather gave back: too few */
	guint work_id;              /* idle callback resuming cut-short work */
	uint64_t unmap_failures_seen; /* vu_mem_unmap_failures() already counted */
	bool unmap_warned;          /* the one warning about them was logged */

	struct ratelimit refuse_rl, broken_rl;
	struct ratelimit log_rl, debug_rl;  /* vu_log() */
};

/* ------------------------------------------------------------ staging queue */

/* Bytes a staged record of a @len-byte frame takes: length, header, frame, padding. */
static size_t vu_stage_rec_len(size_t len)
{
	return (sizeof(uint32_t) + VIRTIO_NET_HDR_LEN + len + VU_STAGE_ALIGN - 1) &
	       ~(size_t)(VU_STAGE_ALIGN - 1);
}

/* Forget every staged frame (the caller counts them if they were dropped). */
static void vu_stage_clear(struct vu_stage *st)
{
	st->head = st->tail = st->bytes = 0;
	st->count = 0;
}

/*
 * Where a record of @need bytes can be written, or -1 if it does not fit.
 * Sets *wrap when the rest of the buffer must be skipped first.
 */
static ssize_t vu_stage_slot(const struct vu_stage *st, size_t need, bool *wrap)
{
	*wrap = false;
	if (!st->count)
		return need <= VU_STAGE_BYTES ? 0 : -1;
	if (st->tail > st->head) {
		if (VU_STAGE_BYTES - st->tail >= need)
			return (ssize_t)st->tail;
		if (st->head > need) {
			*wrap = true;
			return 0;
		}
		return -1;
	}
	/* Wrapped: free space is [tail, head); never fill it completely. */
	return st->head - st->tail > need ? (ssize_t)st->tail : -1;
}

/* Queue @hdr + @frame; 0 or -ENOBUFS. */
static int vu_stage_push(struct vu_stage *st, const uint8_t *hdr, const void *frame, size_t len)
{
	size_t need = vu_stage_rec_len(len);
	uint32_t len32 = (uint32_t)len;
	bool wrap;
	ssize_t at = vu_stage_slot(st, need, &wrap);

	if (at < 0)
		return -ENOBUFS;
	if (!st->count)
		st->head = 0;
	if (wrap) {
		if (VU_STAGE_BYTES - st->tail >= sizeof(uint32_t)) {
			uint32_t marker = VU_STAGE_WRAP;

			memcpy(st->buf + st->tail, &marker, sizeof(marker));
		}
		st->bytes += VU_STAGE_BYTES - st->tail;
	}
	memcpy(st->buf + at, &len32, sizeof(len32));
	memcpy(st->buf + at + sizeof(len32), hdr, VIRTIO_NET_HDR_LEN);
	memcpy(st->buf + at + sizeof(len32) + VIRTIO_NET_HDR_LEN, frame, len);
	st->tail = (size_t)at + need;
	st->bytes += need;
	st->count++;
	return 0;
}

/* The oldest record: header and frame inside the queue's buffer; false if empty. */
static bool vu_stage_peek(struct vu_stage *st, uint8_t **hdr, uint8_t **frame, size_t *len)
{
	uint32_t len32;

	if (!st->count)
		return false;
	if (VU_STAGE_BYTES - st->head < sizeof(uint32_t)) {
		st->bytes -= VU_STAGE_BYTES - st->head;
		st->head = 0;
	} else {
		memcpy(&len32, st->buf + st->head, sizeof(len32));
		if (len32 == VU_STAGE_WRAP) {
			st->bytes -= VU_STAGE_BYTES - st->head;
			st->head = 0;
		}
	}
	memcpy(&len32, st->buf + st->head, sizeof(len32));
	*hdr = st->buf + st->head + sizeof(len32);
	*frame = *hdr + VIRTIO_NET_HDR_LEN;
	*len = len32;
	return true;
}

/* Retire the record vu_stage_peek() returned. */
static void vu_stage_pop(struct vu_stage *st, size_t len)
{
	size_t need = vu_stage_rec_len(len);

	if (!st->count)
		return; /* nothing peeked: a caller bug, never guest input */
	st->head += need;
	st->bytes -= need;
	if (--st->count == 0)
		vu_stage_clear(st);
}

/* ------------------------------------------------------------ helpers */

/*
 * vu_log() - log one line that a front-end (or its guest) can trigger
 * @vb:		backend
 * @level:	G_LOG_LEVEL_WARNING, _MESSAGE or _DEBUG
 * @fmt:	printf format of the line
 *
 * Every such line goes through a rate limit (common/log.h): VU_LOG_BURST
 * per second, debug lines VU_DEBUG_BURST on their own limit.  The first
 * line let through after some were dropped says how many.
 */
static void vu_log(struct vhost_user_backend *vb, GLogLevelFlags level, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);

static void vu_log(struct vhost_user_backend *vb, GLogLevelFlags level, const char *fmt, ...)
{
	struct ratelimit *rl = level == G_LOG_LEVEL_DEBUG ? &vb->debug_rl : &vb->log_rl;
	g_autofree char *line = NULL;
	uint64_t suppressed;
	va_list ap;

	if (!ratelimit_allow(rl, g_get_monotonic_time(), &suppressed))
		return;
	va_start(ap, fmt);
	line = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (suppressed)
		g_log(G_LOG_DOMAIN, level, "%s (%" G_GUINT64_FORMAT
		      " earlier vhost-user lines suppressed)", line, suppressed);
	else
		g_log(G_LOG_DOMAIN, level, "%s", line);
}

/*
 * The guest's MTU is now @mtu (0: not set by the front-end, our --mtu):
 * remembered for vu_send() and passed to cb->link_mtu() when it changes.
 */
static void vu_set_guest_mtu(struct vhost_user_backend *vb, unsigned int mtu)
{
	if (mtu == vb->guest_mtu)
		return;
	vb->guest_mtu = mtu;
	if (vb->be.cb->link_mtu)
		vb->be.cb->link_mtu(mtu ? mtu : vb->mtu, vb->be.opaque);
}

/* Was virtio/vhost feature @bit acked by SET_FEATURES? */
static bool vu_has_feature(const struct vhost_user_backend *vb, unsigned int bit)
{
	return !!(vb->features & VIRTIO_BIT(bit));
}

/* Was protocol feature @bit acked by SET_PROTOCOL_FEATURES? */
static bool vu_has_protocol(const struct vhost_user_backend *vb, unsigned int bit)
{
	return !!(vb->protocol_features & VIRTIO_BIT(bit));
}

/*
 * Is ring @vr enabled?  vhost-user.rst, "Ring states": with
 * VHOST_USER_F_PROTOCOL_FEATURES negotiated -- acked in SET_FEATURES, not
 * merely protocol features set -- a ring starts disabled until
 * SET_VRING_ENABLE; without it, enabled.  QEMU may send SET_VRING_ENABLE
 * before SET_FEATURES: @vr->enabled keeps it either way.
 */
static bool vu_ring_enabled(const struct vhost_user_backend *vb, const struct vu_vring *vr)
{
	return !vu_has_feature(vb, VHOST_USER_F_PROTOCOL_FEATURES) || vr->enabled;
}

/* Close *@fd if open and mark it closed. */
static void vu_close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/*
 * The front-end's eventfds share their file description with it, and with
 * it O_NONBLOCK, which it may clear at any time.  A read of an empty
 * counter, or a write to one it filled (0xfffffffffffffffe), would then
 * block this thread, and every guest flow and client with it.  So neither
 * relies on the flag: a read asks for RWF_NOWAIT (eventfds honour it since
 * Linux 5.12), a write looks with poll() first.  A front-end that fills
 * its counter between our poll() and our write(), having cleared the flag
 * (it can keep trying until it wins that race), or, before 5.12, where a
 * read falls back to poll() then read(), empties it in between, still
 * blocks the call: the stall guard (common/stallguard.h) interrupts it
 * after one to two seconds, and the front-end is closed as hostile.  So
 * that one reconnecting to stall again cannot keep the thread frozen, the
 * listener then rests, longer with each such close in a row
 * (VU_STALL_PAUSE_FIRST).
 */

/*
 * Read an eventfd's counter into *@v without blocking: 8, or -1 and errno
 * (EAGAIN: empty).  @nowait: this kernel's eventfds take RWF_NOWAIT,
 * probed once on an eventfd of our own (vu_probe_eventfds()), never
 * learnt from a front-end's fd: one that refuses it (no eventfd where
 * /proc could not tell) is then an error, not a reason to fall back to
 * poll() and read() for every front-end after it.
 */
static ssize_t vu_eventfd_read(int fd, uint64_t *v, bool nowait)
{
	struct iovec iov = { .iov_base = v, .iov_len = sizeof(*v) };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (nowait)
		return preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	if (poll(&p, 1, 0) < 1 || !(p.revents & POLLIN)) {
		errno = EAGAIN;
		return -1;
	}
	stallguard_enter();
	n = read(fd, v, sizeof(*v));
	if (stallguard_leave()) {
		errno = ETIMEDOUT; /* held empty by the front-end: not a kick to wait for */
		return -1;
	}
	return n;
}

/*
 * Signal an eventfd the front-end gave us (call or err); a signal lost to
 * a full counter is fine.  Returns false, or true when the front-end held
 * the write blocked until the stall guard interrupted it (it is then to
 * be closed).
 */
static bool vu_eventfd_signal(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	uint64_t one = 1;
	ssize_t n;

	if (fd < 0 || poll(&p, 1, 0) < 1 || !(p.revents & POLLOUT))
		return false;
	for (int tries = 0; tries < 2; tries++) {
		stallguard_enter();
		n = write(fd, &one, sizeof(one));
		if (stallguard_leave())
			return true;
		/* Another signal in the call: once more. */
		if (n >= 0 || errno != EINTR)
			break;
	}
	return false;
}

/* The guest's view of the offloads we negotiated: what it may send us and what it takes. */
static void vu_apply_offloads(struct vhost_user_backend *vb)
{
	uint32_t rx = 0, tx = 0;

	if (vu_has_feature(vb, VIRTIO_NET_F_CSUM))
		rx |= BACKEND_OFFLOAD_CSUM;
	if (vu_has_feature(vb, VIRTIO_NET_F_HOST_TSO4))
		rx |= BACKEND_OFFLOAD_TSO4;
	if (vu_has_feature(vb, VIRTIO_NET_F_GUEST_CSUM))
		tx |= BACKEND_OFFLOAD_CSUM;
	if (vu_has_feature(vb, VIRTIO_NET_F_GUEST_TSO4))
		tx |= BACKEND_OFFLOAD_TSO4;
	vb->be.rx_offloads = rx;
	vb->be.tx_offloads = tx;
}

/* Point both rings at the dirty log while logging is on (LOG_ALL acked, log mapped). */
static void vu_apply_log(struct vhost_user_backend *vb)
{
	bool on = vu_has_feature(vb, VHOST_F_LOG_ALL) && vu_log_active(&vb->log);

	for (int i = 0; i < VU_NUM_QUEUES; i++) {
		if (vb->vr[i].vq.started)
			vb->vr[i].vq.log = on ? &vb->log : NULL;
	}
}

/*
 * Writes the dirty log could not mark (beyond its bitmap): counted, and
 * told once per log, as the migration will miss them.
 */
static void vu_log_missed(struct vhost_user_backend *vb, uint64_t n)
{
	vb->be.stats.vu_dirty_log_missed += n;
	if (vb->log_miss_warned)
		return;
	vb->log_miss_warned = true;
	vu_log(vb, G_LOG_LEVEL_WARNING, "vhost-user: the dirty log is smaller than guest memory: "
	       "writes beyond it are not logged and a live migration will miss them");
}

/* Log a guest write of [@gpa, @gpa + @len) when logging is on. */
static void vu_log_guest_write(struct vhost_user_backend *vb, uint64_t gpa, uint64_t len)
{
	if (!vu_has_feature(vb, VHOST_F_LOG_ALL) || !vu_log_active(&vb->log))
		return;
	if (vu_log_write(&vb->log, gpa, len))
		vu_log_missed(vb, 1);
	else
		vb->be.stats.vu_dirty_logged++;
}

/*
 * Count the munmap() failures vu_mem.c saw since the last look, and warn
 * once: such a mapping outlives the table or log it belonged to.  With the
 * lengths rounded to the fd's pages none is expected.
 */
static void vu_note_unmap_failures(struct vhost_user_backend *vb)
{
	uint64_t total = vu_mem_unmap_failures();

	if (total == vb->unmap_failures_seen)
		return;
	vb->be.stats.vu_unmap_failures += total - vb->unmap_failures_seen;
	vb->unmap_failures_seen = total;
	if (!vb->unmap_warned) {
		vb->unmap_warned = true;
		g_warning("vhost-user: munmap() of guest memory failed; the mapping stays until the "
			  "daemon exits (counted, logged once)");
	}
}

/* Did guest memory (or the log) fault and get replaced by zero pages? */
static bool vu_memory_lost(const struct vhost_user_backend *vb)
{
	return vu_mem_faulted(&vb->mem, &vb->log);
}

static void vu_disconnect(struct vhost_user_backend *vb, const char *why);

/*
 * The listener's rest after a front-end was closed for a stall, in ms
 * (VU_STALL_PAUSE_FIRST: why it doubles, and when it starts again); the
 * rest is noted as under way.
 */
static unsigned int vu_stall_pause_next(struct vhost_user_backend *vb)
{
	unsigned int period_ms = MAX(stallguard_period(), 1u);
	gint64 now = g_get_monotonic_time();
	gint64 forgive_us = (gint64)VU_STALL_PAUSE_MAX * period_ms * 1000;

	if (vb->stall_pause && now - vb->stall_pause_end < forgive_us)
		vb->stall_pause = MIN(vb->stall_pause * 2, VU_STALL_PAUSE_MAX);
	else
		vb->stall_pause = VU_STALL_PAUSE_FIRST;
	vb->stall_pause_end = now + (gint64)vb->stall_pause * period_ms * 1000;
	return vb->stall_pause * period_ms;
}

/*
 * After a dispatch: if the SIGBUS guard replaced a mapping, or the kernel
 * could not read a frame's payload (the front-end truncated a memory fd,
 * either way), or the stall guard had to interrupt a write to (or a read
 * of) one of its eventfds, close this front-end, once, with one line.
 */
static void vu_check_frontend(struct vhost_user_backend *vb)
{
	if (vb->conn_fd < 0)
		return;
	if (vb->eventfd_stalled) {
		unsigned int pause_ms = vu_stall_pause_next(vb);

		vb->be.stats.vu_eventfd_stalls++;
		vb->be.stats.vu_bad_messages++;
		vu_log(vb, G_LOG_LEVEL_WARNING, "vhost-user front-end (pid %d): held a call or err "
		       "eventfd write (a full counter) or a kick read (an empty one) blocked, "
		       "O_NONBLOCK cleared, until the stall guard interrupted it; closing the "
		       "connection, and accepting no front-end for %u ms", (int)vb->conn_pid,
		       pause_ms);
		vu_disconnect(vb, "eventfd call held blocked");
		client_backoff_pause(&vb->accept_backoff, pause_ms);
		return;
	}
	if (!(vu_memory_lost(vb) || vb->tail_unreadable))
		return;
	vb->be.stats.vu_memory_faults++;
	vb->be.stats.vu_bad_messages++;
	vu_log(vb, G_LOG_LEVEL_WARNING, "vhost-user front-end (pid %d): guest memory shrank under "
	       "us: a memory or log fd was truncated (%s); closing the connection",
	       (int)vb->conn_pid, vb->tail_unreadable ? "EFAULT on a frame's payload" : "SIGBUS");
	vu_disconnect(vb, "guest memory shrank under us");
}

/* stats.attached: a front-end is connected and both rings run, enabled. */
static void vu_update_attached(struct vhost_user_backend *vb)
{
	vb->be.stats.attached = vb->conn_fd >= 0 && vb->vr[VU_RXQ].vq.started &&
				vb->vr[VU_TXQ].vq.started &&
				vu_ring_enabled(vb, &vb->vr[VU_RXQ]) &&
				vu_ring_enabled(vb, &vb->vr[VU_TXQ]);
}

/* Tell the daemon to stop (or resume) feeding us, once per change; counts each start. */
static void vu_set_congested(struct vhost_user_backend *vb, bool congested)
{
	if (vb->congested == congested)
		return;
	vb->congested = congested;
	if (congested)
		vb->be.stats.congestion_events++;
	vb->be.cb->set_congested(congested, vb->be.opaque);
}

static void vu_schedule_work(struct vhost_user_backend *vb);

/*
 * Signal @fd (call or err).  A front-end that held one blocked is closed
 * after this dispatch, and is not written to again before that: each
 * write would wait for the guard again.
 */
static void vu_signal(struct vhost_user_backend *vb, int fd)
{
	if (vb->eventfd_stalled || vb->conn_fd < 0)
		return;
	if (vu_eventfd_signal(fd)) {
		vb->eventfd_stalled = true;
		vu_schedule_work(vb); /* vu_on_work() closes the front-end */
	}
}

/* Log (rate-limited) and count a ring the guest broke; tell the front-end through err fd. */
static void vu_ring_report_broken(struct vhost_user_backend *vb, unsigned int idx)
{
	struct vu_vring *vr = &vb->vr[idx];
	uint64_t suppressed;

	if (vr->vq.violations == vr->violations_reported)
		return; /* this breakage was reported already */
	vr->violations_reported = vr->vq.violations;
	vb->be.stats.ring_broken++;
	if (ratelimit_allow(&vb->broken_rl, g_get_monotonic_time(), &suppressed))
		g_warning("vhost-user: guest broke its %s ring: %s; the ring is stopped until "
			  "the front-end resets it (%" G_GUINT64_FORMAT " similar lines suppressed)",
			  idx == VU_RXQ ? "RX" : "TX", vr->vq.broken_why, suppressed);
	vu_signal(vb, vr->err_fd);
}

/*
 * The guest's RX ring is BROKEN: report it (once), drop the staged frames
 * (counted in tx_errors: nothing can reach the guest until the front-end
 * resets the ring) and let the stack run again.
 */
static void vu_rx_broken(struct vhost_user_backend *vb)
{
	vu_ring_report_broken(vb, VU_RXQ);
	vb->be.stats.tx_errors += vb->stage.count;
	vu_stage_clear(&vb->stage);
	vu_set_congested(vb, false);
}

/*
 * Publish a ring's used entries and signal its call fd if the guest wants
 * it; count the used-ring writes the dirty log missed since the last time.
 */
static void vu_ring_flush(struct vhost_user_backend *vb, unsigned int idx)
{
	struct vu_vring *vr = &vb->vr[idx];

	if (vq_flush(&vr->vq) && vr->call_fd >= 0 && !vb->eventfd_stalled) {
		vu_signal(vb, vr->call_fd);
		vb->be.stats.vu_calls[idx]++;
		vb->be.stats.vu_call_used_idx[idx] = vr->vq.used_idx;
	}
	if (vr->vq.log_missed != vr->log_missed_seen) {
		vu_log_missed(vb, vr->vq.log_missed - vr->log_missed_seen);
		vr->log_missed_seen = vr->vq.log_missed;
	}
}

/* ------------------------------------------------------------ guest TX -> daemon */

/*
 * Where byte @skip of @e's readable bytes lies: returns the index of its
 * iovec (e->out_num if the chain is shorter) and sets *@off to the byte's
 * offset in that iovec, inside it (an empty descriptor makes no iovec:
 * vu_mem_gpa_to_iov()); past the chain's end, *@off is what is left of
 * @skip.
 */
static unsigned int vu_out_seek(const struct vq_elem *e, size_t skip, size_t *off)
{
	unsigned int i;

	for (i = 0; i < e->out_num && skip >= e->iov[i].iov_len; i++)
		skip -= e->iov[i].iov_len;
	*off = skip;
	return i;
}

/* Copy @e's readable bytes from offset @skip (at most @cap) into @buf; returns bytes copied. */
static size_t vu_copy_out(const struct vq_elem *e, size_t skip, uint8_t *buf, size_t cap)
{
	size_t off, done = 0;

	for (unsigned int i = vu_out_seek(e, skip, &off); i < e->out_num && done < cap; i++) {
		size_t n = MIN(e->iov[i].iov_len - off, cap - done);

		memcpy(buf + done, (const uint8_t *)e->iov[i].iov_base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

/*
 * @e's readable bytes from offset @skip, as iovecs into guest memory in
 * @iov (at most @max); returns how many, or -E2BIG if @max is not enough.
 */
static int vu_tail_iov(const struct vq_elem *e, size_t skip, struct iovec *iov, unsigned int max)
{
	unsigned int n = 0;
	size_t off;

	for (unsigned int i = vu_out_seek(e, skip, &off); i < e->out_num; i++) {
		if (n == max)
			return -E2BIG;
		iov[n++] = (struct iovec){ .iov_base = (uint8_t *)e->iov[i].iov_base + off,
					   .iov_len = e->iov[i].iov_len - off };
		off = 0;
	}
	return (int)n;
}

/*
 * Offer a large frame to cb->rx_frame_tail(): its first FRAME_TAIL_HEAD
 * bytes already in frame_buf, the rest by iovecs into @e's buffers.
 * Returns true if the receiver took it.  A receiver whose kernel could
 * not read the tail (-EFAULT: the front-end truncated its memory file,
 * and no SIGBUS of ours says so) marks the memory lost for
 * vu_check_frontend().
 */
static bool vu_tx_offer_tail(struct vhost_user_backend *vb, const struct vq_elem *e, size_t len,
			     const struct frame_meta *meta)
{
	struct frame_tail tail = { .iov = vb->tail_iov, .len = len - FRAME_TAIL_HEAD };
	int n = vu_tail_iov(e, VIRTIO_NET_HDR_LEN + FRAME_TAIL_HEAD, vb->tail_iov,
			    FRAME_TAIL_MAX_IOV);

	if (n < 0)
		return false;
	tail.niov = (unsigned int)n;
	n = vb->be.cb->rx_frame_tail(vb->frame_buf + VIRTIO_NET_HDR_LEN, &tail, meta,
				     vb->be.opaque);
	if (!n)
		return false;
	if (n < 0)
		vb->tail_unreadable = true;
	else
		vb->be.stats.vu_tx_tail_frames++;
	return true;
}

/*
 * Hand one popped TX chain to the daemon, copied out first, or, a large
 * frame the receiver takes so, with its payload left in guest memory; the
 * chain is always returned.
 */
static void vu_tx_one(struct vhost_user_backend *vb, const struct vq_elem *e)
{
	struct backend_stats *st = &vb->be.stats;
	const struct frame_meta *meta;
	size_t len, head = vb->frame_cap;
	struct frame_meta m;
	bool ignored;

	vq_push(&vb->vr[VU_TXQ].vq, e->head, 0);
	if (e->out_len < VIRTIO_NET_HDR_LEN + FRAME_ETH_HLEN) {
		st->rx_runts++;
		return;
	}
	if (e->out_len > vb->frame_cap) {
		st->rx_oversize++;
		return;
	}
	len = (size_t)e->out_len - VIRTIO_NET_HDR_LEN;
	if (vb->be.cb->rx_frame_tail && len >= VU_TX_TAIL_MIN)
		head = VIRTIO_NET_HDR_LEN + FRAME_TAIL_HEAD;
	vu_copy_out(e, 0, vb->frame_buf, head);
	if (offload_hdr_parse(vb->frame_buf, len, vb->be.rx_offloads, &m, &meta, &ignored)) {
		st->rx_bad_meta++;
		return;
	}
	st->rx_meta_ignored += ignored;
	/* Only a segmentation offload frame may exceed the MTU. */
	if (len > vb->be.max_frame && (!meta || meta->gso_type == VIRTIO_NET_HDR_GSO_NONE)) {
		st->rx_oversize++;
		return;
	}
	st->rx_frames++;
	st->rx_bytes += len;
	if (head < vb->frame_cap) {
		if (vu_tx_offer_tail(vb, e, len, meta))
			return;
		vu_copy_out(e, head, vb->frame_buf + head, vb->frame_cap - head);
	}
	vb->be.cb->rx_frame(vb->frame_buf + VIRTIO_NET_HDR_LEN, len, meta, vb->be.opaque);
}

static void vu_flush(struct backend *be);

/*
 * Drain the guest's TX ring, at most VU_TX_BUDGET chains.  A disabled ring
 * is drained all the same, its frames discarded: vhost-user.rst, "Ring
 * states", started but disabled.  Returns true if work is left (budget
 * spent): the caller schedules another pass.
 */
static bool vu_tx_process(struct vhost_user_backend *vb)
{
	struct vu_vring *vr = &vb->vr[VU_TXQ];
	bool discard = !vu_ring_enabled(vb, vr);
	bool more = false, given = false;
	int ret;

	if (vr->vq.broken)
		vu_ring_report_broken(vb, VU_TXQ); /* e.g. broken while re-enabling kicks */
	if (!vq_usable(&vr->vq))
		return false;
	if (vb->congested && !discard) {
		vb->be.stats.tx_drain_paused++;
		return false; /* resumed by vu_rx_drain() once below the low-water mark */
	}
	for (int done = 0;; done++) {
		bool paused = vb->congested && !discard; /* discarding answers nothing */

		if (done == VU_TX_BUDGET || paused) {
			more = !paused;
			vb->be.stats.tx_drain_paused += paused;
			vq_disable_notify(&vr->vq);
			break;
		}
		ret = vq_pop(&vr->vq, vb->elem);
		if (ret == 0) {
			if (vq_enable_notify(&vr->vq))
				continue; /* buffers raced with re-enabling kicks */
			break;
		}
		if (ret == -E2BIG) {
			vq_push(&vr->vq, vb->elem->head, 0);
			vb->be.stats.rx_oversize++;
			continue;
		}
		if (ret < 0)
			break;
		if (discard) {
			vq_push(&vr->vq, vb->elem->head, 0);
			vb->be.stats.vu_disabled_discards++;
			continue;
		}
		vu_tx_one(vb, vb->elem);
		given = true;
	}
	if (vr->vq.broken)
		vu_ring_report_broken(vb, VU_TXQ);
	vu_ring_flush(vb, VU_TXQ);
	if (given && vb->be.cb->rx_batch_done)
		vb->be.cb->rx_batch_done(vb->be.opaque);
	/*
	 * The stack answered some of these frames at once (ARP, DHCP, ACKs):
	 * publish them now, in this batch.  Waiting for the netstack's next
	 * dispatch would wait for its next timer, or for ever with no socket.
	 */
	vu_flush(&vb->be);
	return more;
}

/* ------------------------------------------------------------ daemon -> guest RX */

/*
 * Give back a chain we cannot use (no room for the header, too scattered):
 * used with nothing written.  Used entries may complete in any order, and
 * this one lands before the entries of the frame being gathered.
 */
static void vu_rx_skip(struct vhost_user_backend *vb, uint16_t head)
{
	vq_push(&vb->vr[VU_RXQ].vq, head, 0);
	vb->rx_used_pending = true;
}

/* Give back, unused, every chain vu_rx_gather() has gathered so far. */
static void vu_rx_skip_gathered(struct vhost_user_backend *vb)
{
	for (unsigned int i = 0; i < vb->rxb->nchains; i++)
		vu_rx_skip(vb, vb->rxb->head[i]);
}

/*
 * Gather RX chains until they hold @need bytes (one chain without
 * MRG_RXBUF).  Every chain popped counts, skipped ones too: a driver has
 * at most a ring's worth outstanding, so popping more for one frame means
 * the guest re-offers unusable chains as fast as we return them (their
 * used entries are visible to it before we publish them).  So does every
 * descriptor visited, up to VU_RX_FRAME_DESCS.  Returns 0, -ENOBUFS if the
 * ring ran out (chains given back), -EMSGSIZE if the guest's buffers
 * cannot hold the frame, -ELOOP after a ring's worth of chains or too many
 * descriptors without the frame fitting, or when the gathered chains hold
 * every entry of the ring's descriptor table and still fall short (the
 * driver has nothing left to post: waiting would stall the link for ever);
 * all three return the chains unused.  -EIO if the ring broke.
 */
static int vu_rx_gather(struct vhost_user_backend *vb, uint64_t need)
{
	struct virtqueue *vq = &vb->vr[VU_RXQ].vq;
	struct vu_rx_batch *b = vb->rxb;
	struct vq_elem *e = vb->rx_elem;
	bool mrg = vu_has_feature(vb, VIRTIO_NET_F_MRG_RXBUF);
	unsigned int limit = mrg ? VU_RX_MAX_CHAINS : 1;
	bool skipped_after = false; /* a skipped chain sits between gathered ones */
	unsigned int popped = 0;    /* chains popped for this frame, skipped ones included */
	unsigned int visits = 0;    /* descriptors they took */
	unsigned int held = 0;      /* ring descriptor table entries the gathered chains hold */
	uint64_t have = 0;
	int ret;

	b->nchains = 0;
	b->niov = 0;
	while (have < need) {
		if (b->nchains == limit || popped == vq->num || visits >= VU_RX_FRAME_DESCS) {
			vu_rx_skip_gathered(vb);
			if (b->nchains == limit)
				return -EMSGSIZE;
			vb->be.stats.rx_ring_unusable++;
			return -ELOOP;
		}
		ret = vq_pop(vq, e);
		if (ret > 0 || ret == -E2BIG) {
			popped++;
			visits += e->ndesc;
			vb->rx_desc_visits += e->ndesc;
		}
		if (ret == -E2BIG) {
			skipped_after |= b->nchains > 0;
			vu_rx_skip(vb, e->head);
			continue;
		}
		if (ret < 0)
			return -EIO;
		if (ret == 0) {
			/* Every table entry gathered and still short: the driver can post no more. */
			if (held >= vq->num) {
				vu_rx_skip_gathered(vb);
				vb->be.stats.rx_ring_unusable++;
				return -ELOOP;
			}
			/* Unpopping is exact only if the gathered chains are the last popped. */
			if (skipped_after) {
				vu_rx_skip_gathered(vb);
				vb->rx_chains_short = 0;
			} else {
				vq_unpop(vq, (uint16_t)b->nchains);
				vb->rx_chains_short = (uint16_t)b->nchains;
			}
			return -ENOBUFS;
		}
		if (e->in_len < (b->nchains ? 1 : VIRTIO_NET_HDR_LEN) ||
		    b->niov + e->in_num > VQ_MAX_IOV) {
			skipped_after |= b->nchains > 0;
			vu_rx_skip(vb, e->head);
			continue;
		}
		b->head[b->nchains] = e->head;
		b->cap[b->nchains] = e->in_len;
		held += e->ring_desc;
		b->first_iov[b->nchains] = b->niov;
		memcpy(&b->iov[b->niov], &e->iov[e->out_num], e->in_num * sizeof(struct iovec));
		memcpy(&b->gpa[b->niov], &e->gpa[e->out_num], e->in_num * sizeof(uint64_t));
		b->niov += e->in_num;
		b->nchains++;
		have += e->in_len;
	}
	b->first_iov[b->nchains] = b->niov;
	return 0;
}

/* Copy @len bytes of @src into iovecs [@i, @end) from (*@i, *@off) on; logs what it wrote. */
static void vu_rx_copy(struct vhost_user_backend *vb, unsigned int *i, size_t *off,
		       unsigned int end, const uint8_t *src, size_t len)
{
	struct vu_rx_batch *b = vb->rxb;

	while (len && *i < end) {
		size_t room = b->iov[*i].iov_len - *off;
		size_t n = room < len ? room : len;

		memcpy((uint8_t *)b->iov[*i].iov_base + *off, src, n);
		vu_log_guest_write(vb, b->gpa[*i] + *off, n);
		src += n;
		len -= n;
		*off += n;
		if (*off == b->iov[*i].iov_len) {
			(*i)++;
			*off = 0;
		}
	}
}

/*
 * Write header @hdr (num_buffers filled in here) and @frame into the
 * guest's RX ring and push the used entries.  Returns 0, -ENOBUFS (no
 * buffers now: stage it), -EMSGSIZE (can never fit: drop), -ELOOP (only
 * unusable buffers, or every descriptor posted and still too little room:
 * drop), -EIO (ring broken or stopped).
 */
static int vu_rx_deliver(struct vhost_user_backend *vb, uint8_t *hdr, const uint8_t *frame,
			 size_t len)
{
	struct virtqueue *vq = &vb->vr[VU_RXQ].vq;
	struct vu_rx_batch *b = vb->rxb;
	uint64_t left = VIRTIO_NET_HDR_LEN + (uint64_t)len;
	size_t frame_off = 0;
	int ret;

	if (!vq_usable(vq))
		return -EIO;
	ret = vu_rx_gather(vb, left);
	if (ret)
		return ret;
	le16_write(hdr + VIRTIO_NET_HDR_NUM_BUFFERS_OFF, (uint16_t)b->nchains);
	for (unsigned int c = 0; c < b->nchains; c++) {
		uint64_t n = b->cap[c] < left ? b->cap[c] : left;
		unsigned int i = b->first_iov[c];
		size_t off = 0, from_frame = (size_t)n;

		if (c == 0) {
			vu_rx_copy(vb, &i, &off, b->first_iov[c + 1], hdr, VIRTIO_NET_HDR_LEN);
			from_frame -= VIRTIO_NET_HDR_LEN;
		}
		vu_rx_copy(vb, &i, &off, b->first_iov[c + 1], frame + frame_off, from_frame);
		frame_off += from_frame;
		left -= n;
		vq_push(vq, b->head[c], (uint32_t)n);
	}
	vb->rx_used_pending = true;
	return 0;
}

/*
 * The last gather (vu_rx_deliver() said -ENOBUFS) found too few buffers
 * for its frame: ask for a kick once the guest posts one more than that
 * gather had.  Returns true if it already did (try again), false to wait
 * for the kick.  Not retrying on the buffers already seen is what keeps a
 * ring that a driver refills a few at a time from turning into a busy loop:
 * a 64 KiB frame needs 17 page-sized buffers, and popping the same 16 again
 * and again only took the CPU the guest needed to post the 17th.
 *
 * The count must be the gather's, not the ring's now: buffers the guest
 * posted since would not be counted as new, and a guest that posted its
 * last ones then kicks no more: the frame would wait for ever.
 */
static bool vu_rx_more_buffers(struct vhost_user_backend *vb)
{
	return vq_enable_notify_beyond(&vb->vr[VU_RXQ].vq, vb->rx_chains_short);
}

/* Enter backpressure: the guest's RX ring holds too few buffers for the next frame. */
static void vu_rx_ring_full(struct vhost_user_backend *vb)
{
	vb->be.stats.rx_ring_full_events++;
	vu_set_congested(vb, true);
	if (vu_rx_more_buffers(vb))
		vu_schedule_work(vb); /* buffers came in meanwhile */
	else if (vb->vr[VU_RXQ].vq.broken)
		vu_rx_broken(vb);
}

/*
 * Deliver staged frames while the guest has buffers.  Returns true if the
 * budget ran out with frames and buffers left.
 */
static bool vu_rx_drain(struct vhost_user_backend *vb)
{
	struct virtqueue *vq = &vb->vr[VU_RXQ].vq;
	uint64_t visits_end = vb->rx_desc_visits + VU_RX_DRAIN_DESCS;
	uint8_t *hdr, *frame;
	size_t len;
	bool more = false, progress = false;

	if (vq->broken)
		vu_rx_broken(vb);
	if (!vu_ring_enabled(vb, &vb->vr[VU_RXQ]))
		return false; /* nothing is staged while disabled (vu_h_set_vring_enable()) */
	for (int done = 0; vq_usable(vq) && vu_stage_peek(&vb->stage, &hdr, &frame, &len); done++) {
		int ret;

		/* A budget in frames and one in descriptors visited: both bound a dispatch. */
		if (done == VU_RX_DRAIN_BUDGET || vb->rx_desc_visits >= visits_end) {
			more = true;
			break;
		}
		ret = vu_rx_deliver(vb, hdr, frame, len);
		if (ret == -ENOBUFS) {
			if (vu_rx_more_buffers(vb))
				continue;
			break;
		}
		if (ret == -EIO && vq->broken) {
			vu_rx_broken(vb); /* drops and counts this frame with the rest */
			break;
		}
		if (ret == 0) {
			vb->be.stats.tx_frames++;
			vb->be.stats.tx_bytes += len;
		} else {
			vb->be.stats.tx_errors++;
		}
		vu_stage_pop(&vb->stage, len);
		progress = true;
	}
	if (vq->broken)
		vu_rx_broken(vb); /* e.g. broken while re-enabling kicks */
	if (vb->rx_used_pending) {
		vb->rx_used_pending = false;
		vu_ring_flush(vb, VU_RXQ);
	}
	if (!vb->stage.count)
		vq_disable_notify(vq);
	/* Lift only once the guest took frames again: a wakeup without buffers changes nothing. */
	if (vb->congested && (progress || !vb->stage.count) && vb->stage.bytes < VU_STAGE_LOW) {
		vu_set_congested(vb, false);
		more = true; /* the TX ring was left undrained */
	}
	return more;
}

/* ------------------------------------------------------------ work scheduling */

/* Idle callback: continue work a budget cut short (staged frames, the TX ring). */
static gboolean vu_on_work(gpointer opaque)
{
	struct vhost_user_backend *vb = opaque;
	bool more;

	vb->work_id = 0;
	vu_check_frontend(vb); /* scheduled by send or flush after a fault */
	more = vu_rx_drain(vb);
	more |= vu_tx_process(vb);
	vu_check_frontend(vb);
	if (more)
		vu_schedule_work(vb);
	return G_SOURCE_REMOVE;
}

/* Run vu_on_work() from the main loop soon (after pending fd events). */
static void vu_schedule_work(struct vhost_user_backend *vb)
{
	if (!vb->work_id)
		vb->work_id = g_idle_add_full(G_PRIORITY_DEFAULT, vu_on_work, vb, NULL);
}

/* ------------------------------------------------------------ backend ops */

/*
 * vu_send() - backend_send(): copy one frame (and its header from @meta)
 * into the guest's RX ring, or stage it while the guest has no buffer.
 * Returns 0 (delivered or staged), -ENOTCONN (no running RX ring), -ENOBUFS
 * (staging full) or -EIO (the frame can never be delivered: over the
 * guest's MTU, or no usable buffer); every error is counted.
 */
static int vu_send(struct backend *be, const void *frame, size_t len, const struct frame_meta *meta)
{
	struct vhost_user_backend *vb = container_of(be, struct vhost_user_backend, be);
	uint8_t hdr[VIRTIO_NET_HDR_LEN];
	int ret;

	/*
	 * Virtio 5.1.4.2: no plain frame (GSO none) over the MTU plus the
	 * Ethernet header once the front-end set it (VIRTIO_NET_F_MTU).  The
	 * netstack fits frames to it (cb->link_mtu()); this is the backstop.
	 * Without NET_SET_MTU the guest's MTU is its own business (DHCP tells
	 * it --mtu): nothing is dropped here.
	 */
	if (vb->guest_mtu && len > (size_t)vb->guest_mtu + FRAME_ETH_HLEN &&
	    (!meta || meta->gso_type == FRAME_GSO_NONE)) {
		be->stats.tx_over_mtu++;
		return -EIO;
	}
	if (vb->conn_fd < 0 || !vb->vr[VU_RXQ].vq.started || vu_memory_lost(vb) ||
	    !vu_ring_enabled(vb, &vb->vr[VU_RXQ])) {
		if (vu_memory_lost(vb))
			vu_schedule_work(vb); /* vu_on_work() closes the front-end */
		be->stats.tx_no_peer++;
		return -ENOTCONN;
	}
	offload_hdr_build(hdr, meta);
	if (!vb->stage.count) {
		ret = vu_rx_deliver(vb, hdr, frame, len);
		if (vu_memory_lost(vb))
			vu_schedule_work(vb); /* it faulted during this frame */
		if (ret == 0) {
			be->stats.tx_frames++;
			be->stats.tx_bytes += len;
			return 0;
		}
		if (ret != -ENOBUFS) {
			be->stats.tx_errors++;
			if (vb->vr[VU_RXQ].vq.broken)
				vu_rx_broken(vb);
			return -EIO;
		}
	}
	if (vu_stage_push(&vb->stage, hdr, frame, len)) {
		be->stats.tx_full++;
		return -ENOBUFS;
	}
	if (vb->stage.count == 1)
		vu_rx_ring_full(vb);
	else if (vb->stage.bytes > VU_STAGE_HIGH)
		vu_set_congested(vb, true); /* lifted with frames left, and the guest is slow again */
	return 0;
}

/* vu_flush() - backend_flush(): publish the RX used entries of this batch, signal once. */
static void vu_flush(struct backend *be)
{
	struct vhost_user_backend *vb = container_of(be, struct vhost_user_backend, be);

	if (vb->rx_used_pending) {
		vb->rx_used_pending = false;
		vu_ring_flush(vb, VU_RXQ);
		if (vu_memory_lost(vb))
			vu_schedule_work(vb); /* vu_on_work() closes the front-end */
	}
}

/* ------------------------------------------------------------ rings and device reset */

static gboolean vu_on_kick(int fd, GIOCondition ready, void *opaque);

/* The RX ring is not running: staged frames have nowhere to go (tx_no_peer); the stack runs. */
static void vu_rx_drop_staged(struct vhost_user_backend *vb)
{
	vb->be.stats.tx_no_peer += vb->stage.count;
	vu_stage_clear(&vb->stage);
	vu_set_congested(vb, false);
}

/*
 * Pause ring @idx (used entries published first); its configuration and,
 * for the RX ring, the staged frames stay: a restart follows (new memory
 * table, new addresses, new kick fd), or vu_ring_stop() drops them.
 */
static void vu_ring_pause(struct vhost_user_backend *vb, unsigned int idx)
{
	struct vu_vring *vr = &vb->vr[idx];

	if (!vr->vq.started)
		return;
	if (idx == VU_RXQ)
		vb->rx_used_pending = false; /* published by the flush below */
	vu_ring_flush(vb, idx);
	vq_stop(&vr->vq);
	vu_update_attached(vb);
}

/* Stop ring @idx for good (until set up again): as pause, and staged frames are dropped. */
static void vu_ring_stop(struct vhost_user_backend *vb, unsigned int idx)
{
	vu_ring_pause(vb, idx);
	if (idx == VU_RXQ)
		vu_rx_drop_staged(vb);
}

/* After a pause and a restart attempt: drop what waits for an RX ring that did not come back. */
static void vu_rx_check_restarted(struct vhost_user_backend *vb)
{
	if (!vb->vr[VU_RXQ].vq.started && vb->stage.count)
		vu_rx_drop_staged(vb);
}

/*
 * Start or stop ring @idx to match its state: it runs with a kick fd, a
 * size, addresses, a memory table and VERSION_1, enabled or not (a
 * disabled ring is processed without side effects: vu_tx_process(),
 * vu_send()).  Returns 0, or -EINVAL with @why when the ring cannot be
 * used (the connection is closed).
 */
static int vu_ring_update(struct vhost_user_backend *vb, unsigned int idx, const char **why)
{
	struct vu_vring *vr = &vb->vr[idx];
	bool ready = vr->kick_fd >= 0 && vr->vq.num && vr->vq.addr_set && vb->mem.nregions;
	int ret;

	if (!ready) {
		vu_ring_stop(vb, idx);
		return 0;
	}
	if (!vr->vq.started) {
		if (!vu_has_feature(vb, VIRTIO_F_VERSION_1)) {
			*why = "legacy virtio (VERSION_1 not acked) is not supported";
			return -EINVAL;
		}
		ret = vq_start(&vr->vq, &vb->mem, &vb->log,
			       vu_has_feature(vb, VIRTIO_RING_F_EVENT_IDX),
			       vu_has_feature(vb, VIRTIO_RING_F_INDIRECT_DESC), why);
		if (ret)
			return ret;
		vu_apply_log(vb);
		vu_log(vb, G_LOG_LEVEL_DEBUG, "vhost-user: %s ring started: size %u, avail index %u",
		       idx == VU_RXQ ? "RX" : "TX", vr->vq.num, vr->vq.last_avail_idx);
		vu_schedule_work(vb);
	}
	/* Running; its enabled state (or the features) may have changed too. */
	if (idx == VU_RXQ && !vu_ring_enabled(vb, vr) && vb->stage.count)
		vu_rx_drop_staged(vb); /* no RX while disabled: the stack runs again */
	vu_update_attached(vb);
	return 0;
}

/* Close ring @idx's fds and forget its configuration. */
static void vu_ring_reset(struct vhost_user_backend *vb, unsigned int idx)
{
	struct vu_vring *vr = &vb->vr[idx];

	vu_ring_stop(vb, idx);
	fdsource_clear(&vr->kick_src);
	vu_close_fd(&vr->kick_fd);
	vu_close_fd(&vr->call_fd);
	vu_close_fd(&vr->err_fd);
	vq_reset(&vr->vq);
	vr->enabled = false;
}

/* Device reset (front-end gone, backend freed): every ring fd closed, memory and log unmapped. */
static void vu_device_reset(struct vhost_user_backend *vb)
{
	for (unsigned int i = 0; i < VU_NUM_QUEUES; i++)
		vu_ring_reset(vb, i);
	vu_mem_unmap(&vb->mem);
	vu_log_unmap(&vb->log);
	vu_note_unmap_failures(vb);
	vb->features = 0;
	vu_set_guest_mtu(vb, 0); /* the next front-end starts from --mtu */
	vb->rx_used_pending = false;
	vu_apply_offloads(vb);
	vu_stage_clear(&vb->stage);
	vu_set_congested(vb, false);
	if (vb->work_id) {
		g_source_remove(vb->work_id);
		vb->work_id = 0;
	}
	vu_update_attached(vb);
}

/* ------------------------------------------------------------ connection */

/* Close the fds received with a message that was not handed over to a handler. */
static void vu_close_rfds(struct vhost_user_backend *vb)
{
	for (unsigned int i = 0; i < vb->rnfds; i++)
		close(vb->rfds[i]);
	vb->rnfds = 0;
	vb->rfds_overflow = false;
}

/*
 * vu_disconnect() - drop the front-end connection and reset the device
 * @why:	for the log line
 *
 * Closes the socket and every fd the front-end gave us, unmaps guest memory
 * and the log; the listening socket stays and the next front-end starts
 * from a clean state.  No-op without a connection.
 */
static void vu_disconnect(struct vhost_user_backend *vb, const char *why)
{
	if (vb->conn_fd < 0)
		return;
	vu_log(vb, G_LOG_LEVEL_MESSAGE, "vhost-user front-end (pid %d) detached: %s; waiting for "
	       "the next connection on %s", (int)vb->conn_pid, why, vb->path);
	fdsource_clear(&vb->conn_src);
	g_clear_handle_id(&vb->tick_id, g_source_remove);
	vu_close_fd(&vb->conn_fd);
	vb->conn_pid = 0;
	vu_close_rfds(vb);
	vb->rlen = 0;
	vb->wlen = vb->woff = 0;
	vb->owner = false;
	vb->protocol_features = 0;
	vb->protocol_set = false;
	/* After the reset, whose ring flushes may still signal: nothing carries over. */
	vu_device_reset(vb);
	vb->tail_unreadable = false;
	vb->eventfd_stalled = false;
}

/* Watch the socket for writing while a reply is pending, for reading otherwise. */
static void vu_update_conn_events(struct vhost_user_backend *vb)
{
	if (vb->conn_src)
		fdsource_set_events(vb->conn_src, vb->wlen > vb->woff ? G_IO_OUT : G_IO_IN);
}

/* Write the pending reply as far as the socket takes it; 0 or -errno (fatal). */
static int vu_write_pending(struct vhost_user_backend *vb)
{
	while (vb->woff < vb->wlen) {
		ssize_t n = send(vb->conn_fd, vb->wbuf + vb->woff, vb->wlen - vb->woff,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		vb->woff += (size_t)n;
	}
	vb->wlen = vb->woff = 0;
	return 0;
}

/* Queue a reply of @len bytes already encoded in vb->wbuf and try to send it. */
static int vu_reply(struct vhost_user_backend *vb, size_t len)
{
	int ret;

	vb->wlen = len;
	vb->woff = 0;
	ret = vu_write_pending(vb);
	vu_update_conn_events(vb);
	return ret;
}

/* Reply to @req with one u64; 0 or -errno (fatal). */
static int vu_reply_u64(struct vhost_user_backend *vb, uint32_t req, uint64_t v)
{
	return vu_reply(vb, vu_msg_encode_u64_reply(req, v, vb->wbuf, sizeof(vb->wbuf)));
}

/* ------------------------------------------------------------ message handlers */

/*
 * Each handler returns 0, 1 if it already replied (so no REPLY_ACK is
 * added), -EREMOTEIO for a refusal the front-end hears as a non-zero ack
 * (the connection stays), or another -errno with *why set: the connection
 * is closed.  A handler that keeps an fd of @msg sets it to -1.
 */
typedef int (*vu_handler)(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why);

static int vu_h_get_features(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	(void)why;
	return vu_reply_u64(vb, msg->request, vb->features_offered) ?: 1;
}

static int vu_h_set_features(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	if (msg->u.u64 & ~vb->features_offered) {
		*why = "acks features we did not offer";
		return -EINVAL;
	}
	vb->features = msg->u.u64;
	vu_apply_offloads(vb);
	vu_apply_log(vb);
	vu_log(vb, G_LOG_LEVEL_DEBUG, "vhost-user: features acked 0x%" G_GINT64_MODIFIER "x",
	       vb->features);
	for (unsigned int i = 0; i < VU_NUM_QUEUES; i++) {
		int ret = vu_ring_update(vb, i, why);

		if (ret)
			return ret;
	}
	return 0;
}

static int vu_h_set_owner(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	(void)msg;
	(void)why;
	vb->owner = true;
	return 0;
}

/*
 * RESET_OWNER (deprecated): vhost-user.rst recommends ignoring it or
 * disabling all rings, and warns that discarding the connection's state
 * leads to bugs.  So the rings are reset -- stopped, their fds closed,
 * disabled, to be set up again -- and the memory table, the log, the
 * features and the MTU stay.
 */
static int vu_h_reset_owner(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	(void)msg;
	(void)why;
	vu_log(vb, G_LOG_LEVEL_MESSAGE, "vhost-user: rings reset by the front-end (pid %d, "
	       "RESET_OWNER)", (int)vb->conn_pid);
	for (unsigned int i = 0; i < VU_NUM_QUEUES; i++)
		vu_ring_reset(vb, i);
	vu_update_attached(vb);
	return 0;
}

static int vu_h_set_mem_table(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	bool unsealed;
	int ret;

	for (unsigned int i = 0; i < VU_NUM_QUEUES; i++)
		vu_ring_pause(vb, i);
	ret = vu_mem_unmap(&vb->mem);
	vu_note_unmap_failures(vb);
	if (ret) {
		/* Fail closed: each new table would leak one more mapping. */
		*why = "could not unmap the previous memory table (munmap failed)";
		return ret;
	}
	ret = vu_mem_map(&vb->mem, msg->u.mem.regions, msg->u.mem.nregions, msg->fds, &unsealed, why);
	vu_note_unmap_failures(vb);
	if (ret)
		return ret;
	for (unsigned int i = 0; i < vb->mem.nregions; i++)
		vu_log(vb, G_LOG_LEVEL_DEBUG, "vhost-user: region %u: guest 0x%" G_GINT64_MODIFIER
		       "x size 0x%" G_GINT64_MODIFIER "x front-end 0x%" G_GINT64_MODIFIER
		       "x offset 0x%" G_GINT64_MODIFIER "x", i, vb->mem.r[i].gpa, vb->mem.r[i].size,
		       vb->mem.r[i].uva, vb->mem.r[i].mmap_offset);
	if (unsealed)
		vu_log(vb, G_LOG_LEVEL_MESSAGE, "vhost-user: a guest memory fd is not sealed against "
		       "shrinking; a front-end that truncates it is disconnected "
		       "(memory-backend-memfd seals it)");
	for (unsigned int i = 0; i < VU_NUM_QUEUES; i++) {
		ret = vu_ring_update(vb, i, why);
		if (ret)
			return ret;
	}
	vu_rx_check_restarted(vb);
	return 0;
}

static int vu_h_set_log_base(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	struct vu_log log;
	int ret;

	if (!vu_has_protocol(vb, VU_PROTOCOL_F_LOG_SHMFD)) {
		*why = "SET_LOG_BASE without LOG_SHMFD";
		return -EPROTO;
	}
	ret = vu_log_map(&log, msg->fds[0], msg->u.log.mmap_size, msg->u.log.mmap_offset, why);
	if (ret)
		return ret;
	ret = vu_log_unmap(&vb->log);
	vb->log = log;
	vb->log_miss_warned = false;
	vu_note_unmap_failures(vb);
	if (ret) {
		*why = "could not unmap the previous dirty log (munmap failed)";
		return ret;
	}
	vu_apply_log(vb);
	vu_log(vb, G_LOG_LEVEL_MESSAGE, "vhost-user: dirty log of %" G_GUINT64_FORMAT
	       " bytes mapped (live migration)", log.size);
	/* The front-end waits for this reply (vhost-user.rst, SET_LOG_BASE). */
	return vu_reply_u64(vb, msg->request, 0) ?: 1;
}

/* Reconfiguring a running ring's size or base is a protocol violation. */
static int vu_ring_must_be_stopped(struct vhost_user_backend *vb, uint32_t idx, const char **why)
{
	if (vb->vr[idx].vq.started) {
		*why = "changes a running ring (GET_VRING_BASE first)";
		return -EBUSY;
	}
	return 0;
}

static int vu_h_set_vring_num(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	int ret = vu_ring_must_be_stopped(vb, msg->u.state.index, why);

	if (ret)
		return ret;
	ret = vq_set_num(&vb->vr[msg->u.state.index].vq, msg->u.state.num);
	if (ret == -E2BIG)
		*why = "ring size above 1024 (QEMU's virtio-net maximum)";
	else if (ret)
		*why = "ring size 0 or not a power of two";
	return ret;
}

static int vu_h_set_vring_addr(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	uint32_t idx = msg->u.addr.index;

	int ret;

	/* QEMU resends the addresses of a running ring to switch its log on: restart it. */
	vu_ring_pause(vb, idx);
	vq_set_addr(&vb->vr[idx].vq, msg->u.addr.desc, msg->u.addr.used, msg->u.addr.avail,
		    msg->u.addr.log, !!(msg->u.addr.flags & VU_VRING_F_LOG));
	ret = vu_ring_update(vb, idx, why);
	vu_rx_check_restarted(vb);
	return ret;
}

static int vu_h_set_vring_base(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	int ret = vu_ring_must_be_stopped(vb, msg->u.state.index, why);

	if (ret)
		return ret;
	if (msg->u.state.num > UINT16_MAX) {
		*why = "ring base above 65535";
		return -EINVAL;
	}
	vq_set_base(&vb->vr[msg->u.state.index].vq, (uint16_t)msg->u.state.num);
	return 0;
}

static int vu_h_get_vring_base(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	uint32_t idx = msg->u.state.index;
	struct vu_vring *vr = &vb->vr[idx];
	size_t len;

	(void)why;
	vu_ring_stop(vb, idx);
	fdsource_clear(&vr->kick_src);
	vu_close_fd(&vr->kick_fd);
	vu_close_fd(&vr->call_fd);
	vu_log(vb, G_LOG_LEVEL_DEBUG, "vhost-user: %s ring stopped at avail index %u",
	       idx == VU_RXQ ? "RX" : "TX", vr->vq.last_avail_idx);
	len = vu_msg_encode_state_reply(msg->request, idx, vr->vq.last_avail_idx, vb->wbuf,
					sizeof(vb->wbuf));
	return vu_reply(vb, len) ?: 1;
}

/*
 * vu_check_ring_fd() - is @fd an eventfd, as a ring's kick, call and err fds must be?
 * @vb:		backend (knows where anonymous inodes live)
 * @fd:		the fd a SET_VRING_KICK/CALL/ERR carried
 * @one_read:	for a kick fd, which we read (NULL: a call or err fd): a semaphore-mode one
 *		is refused, and *@one_read says whether fdinfo showed the mode (one read
 *		then empties it)
 * @why:	set to a static reason on refusal
 *
 * Anything else can spin or block us: /dev/zero or a semaphore eventfd
 * is readable for ever (a kick fd we poll), a regular file on FUSE or NFS
 * can block a write (a call fd).  The check has to work under the
 * daemon's seccomp filter, which allows fstat and read-only opens but not
 * readlink(/proc/self/fd/N).  fstat gives an eventfd no file type and the
 * st_dev of the anonymous-inode filesystem, which no file, pipe, socket,
 * device (/dev/zero) or memfd has -- compared with an eventfd of our own
 * (checked on Linux 6.18: pipefs, sockfs, devtmpfs and shmem each have
 * their own device).  timerfds, signalfds and epoll fds share that
 * inode, so /proc/self/fdinfo/N, where it can be read, must also show an
 * eventfd ("eventfd-count:") and, for a kick fd, not one in semaphore mode
 * ("eventfd-semaphore: 1", shown by recent kernels).  Without /proc only
 * the fstat check is made; vu_on_kick() then catches a kick fd that stays
 * readable.
 *
 * Return: 0, or -EBADF/-errno with *@why set.
 */
static int vu_check_ring_fd(const struct vhost_user_backend *vb, int fd, bool *one_read,
			    const char **why)
{
	char path[sizeof("/proc/self/fdinfo/") + 12], info[VU_FDINFO_MAX];
	struct stat st;
	ssize_t n;
	int pfd;

	if (one_read)
		*one_read = false;
	if (fstat(fd, &st) < 0) {
		*why = "cannot fstat a vring fd";
		return -errno;
	}
	if (st.st_dev != vb->anon_dev) {
		*why = "vring fd is not an eventfd (a file, pipe, socket or device)";
		return -EBADF;
	}
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	pfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pfd < 0)
		return 0; /* no /proc here: the fstat check has to do */
	do {
		n = read(pfd, info, sizeof(info) - 1);
	} while (n < 0 && errno == EINTR);
	close(pfd);
	if (n < 0)
		return 0;
	info[n] = '\0';
	if (!strstr(info, "\neventfd-count:")) {
		*why = "vring fd is not an eventfd (another anonymous file: timerfd, signalfd...)";
		return -EBADF;
	}
	if (one_read && strstr(info, "\neventfd-semaphore: 1")) {
		*why = "kick fd is an eventfd in semaphore mode: reading never empties it";
		return -EBADF;
	}
	if (one_read)
		*one_read = strstr(info, "\neventfd-semaphore: 0") != NULL;
	return 0;
}

/*
 * Take @msg's fd (or none with NOFD), already accepted by
 * vu_check_ring_fd(), into *@slot, closing what was there.
 */
static void vu_take_vring_fd(struct vu_msg *msg, int *slot)
{
	int fl;

	vu_close_fd(slot);
	if (msg->u.vring_fd.nofd)
		return;
	*slot = msg->fds[0];
	msg->fds[0] = -1;
	/*
	 * Non-blocking for any read or write that goes around
	 * vu_eventfd_read() and vu_eventfd_signal(); QEMU's are already, and
	 * their (shared) file description is then left alone.
	 */
	fl = fcntl(*slot, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(*slot, F_SETFL, fl | O_NONBLOCK);
}

/* SET_VRING_CALL/ERR: an eventfd (or NOFD) into *@slot. */
static int vu_set_ring_signal_fd(struct vhost_user_backend *vb, struct vu_msg *msg, int *slot,
				 const char **why)
{
	int ret = msg->u.vring_fd.nofd ? 0 : vu_check_ring_fd(vb, msg->fds[0], NULL, why);

	if (ret)
		return ret;
	vu_take_vring_fd(msg, slot);
	return 0;
}

static int vu_h_set_vring_kick(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	uint32_t idx = msg->u.vring_fd.index;
	struct vu_vring *vr = &vb->vr[idx];
	bool one_read;
	int ret;

	if (msg->u.vring_fd.nofd) {
		*why = "polling mode (no kick fd) is not supported";
		return -EINVAL;
	}
	ret = vu_check_ring_fd(vb, msg->fds[0], &one_read, why);
	if (ret)
		return ret;
	vu_ring_pause(vb, idx);
	fdsource_clear(&vr->kick_src);
	vu_take_vring_fd(msg, &vr->kick_fd);
	vr->kick_busy = 0;
	vr->kick_one_read = one_read;
	vr->kick_src = fdsource_new(vr->kick_fd, G_IO_IN, vu_on_kick, vb);
	ret = vu_ring_update(vb, idx, why);
	vu_rx_check_restarted(vb);
	return ret;
}

static int vu_h_set_vring_call(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	return vu_set_ring_signal_fd(vb, msg, &vb->vr[msg->u.vring_fd.index].call_fd, why);
}

static int vu_h_set_vring_err(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	return vu_set_ring_signal_fd(vb, msg, &vb->vr[msg->u.vring_fd.index].err_fd, why);
}

static int vu_h_get_protocol_features(struct vhost_user_backend *vb, struct vu_msg *msg,
				      const char **why)
{
	(void)why;
	return vu_reply_u64(vb, msg->request, VU_PROTOCOL_FEATURES) ?: 1;
}

static int vu_h_set_protocol_features(struct vhost_user_backend *vb, struct vu_msg *msg,
				      const char **why)
{
	if (msg->u.u64 & ~VU_PROTOCOL_FEATURES) {
		*why = "acks protocol features we did not offer";
		return -EINVAL;
	}
	vb->protocol_features = msg->u.u64;
	vb->protocol_set = true;
	vu_log(vb, G_LOG_LEVEL_DEBUG, "vhost-user: protocol features acked 0x%"
	       G_GINT64_MODIFIER "x", vb->protocol_features);
	return 0;
}

static int vu_h_get_queue_num(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	(void)why;
	return vu_reply_u64(vb, msg->request, VU_QUEUE_PAIRS) ?: 1;
}

static int vu_h_set_vring_enable(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	int ret;

	if (!vu_has_feature(vb, VHOST_USER_F_PROTOCOL_FEATURES) && !vb->protocol_set) {
		*why = "SET_VRING_ENABLE without PROTOCOL_FEATURES";
		return -EPROTO;
	}
	if (msg->u.state.num > 1) {
		*why = "SET_VRING_ENABLE state not 0 or 1";
		return -EINVAL;
	}
	vb->vr[msg->u.state.index].enabled = msg->u.state.num;
	ret = vu_ring_update(vb, msg->u.state.index, why);
	if (!ret)
		vu_schedule_work(vb); /* enabled: go on; disabled: TX is discarded from now */
	return ret;
}

static int vu_h_send_rarp(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	if (!vu_has_protocol(vb, VU_PROTOCOL_F_RARP)) {
		*why = "SEND_RARP without RARP";
		return -EPROTO;
	}
	(void)msg;
	vb->be.stats.vu_rarp++;
	vu_log(vb, G_LOG_LEVEL_DEBUG,
	       "vhost-user: SEND_RARP (no L2 network to announce on; counted)");
	return 0;
}

static int vu_h_net_set_mtu(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	if (!vu_has_protocol(vb, VU_PROTOCOL_F_NET_MTU)) {
		*why = "NET_SET_MTU without NET_MTU";
		return -EPROTO;
	}
	if (msg->u.u64 < VU_MTU_MIN || msg->u.u64 > vb->mtu) {
		vu_log(vb, G_LOG_LEVEL_WARNING, "vhost-user: front-end asks for MTU %" G_GUINT64_FORMAT
		       ", this daemon serves %u to %u (--mtu): refused", msg->u.u64, VU_MTU_MIN,
		       vb->mtu);
		return -EREMOTEIO;
	}
	vu_set_guest_mtu(vb, (unsigned int)msg->u.u64);
	vu_log(vb, G_LOG_LEVEL_MESSAGE, "vhost-user: guest MTU %u: frames to the guest fit it",
	       vb->guest_mtu);
	return 0;
}

static int vu_h_reset_device(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	(void)vb;
	(void)msg;
	*why = "RESET_DEVICE without its protocol feature (not offered)";
	return -EPROTO;
}

/* Handlers by request; NULL entries are refused (vu_msg.c already refuses unknown numbers). */
static const vu_handler vu_handlers[VU_REQ_MAX] = {
	[VU_REQ_GET_FEATURES] = vu_h_get_features,
	[VU_REQ_SET_FEATURES] = vu_h_set_features,
	[VU_REQ_SET_OWNER] = vu_h_set_owner,
	[VU_REQ_RESET_OWNER] = vu_h_reset_owner,
	[VU_REQ_SET_MEM_TABLE] = vu_h_set_mem_table,
	[VU_REQ_SET_LOG_BASE] = vu_h_set_log_base,
	[VU_REQ_SET_VRING_NUM] = vu_h_set_vring_num,
	[VU_REQ_SET_VRING_ADDR] = vu_h_set_vring_addr,
	[VU_REQ_SET_VRING_BASE] = vu_h_set_vring_base,
	[VU_REQ_GET_VRING_BASE] = vu_h_get_vring_base,
	[VU_REQ_SET_VRING_KICK] = vu_h_set_vring_kick,
	[VU_REQ_SET_VRING_CALL] = vu_h_set_vring_call,
	[VU_REQ_SET_VRING_ERR] = vu_h_set_vring_err,
	[VU_REQ_GET_PROTOCOL_FEATURES] = vu_h_get_protocol_features,
	[VU_REQ_SET_PROTOCOL_FEATURES] = vu_h_set_protocol_features,
	[VU_REQ_GET_QUEUE_NUM] = vu_h_get_queue_num,
	[VU_REQ_SET_VRING_ENABLE] = vu_h_set_vring_enable,
	[VU_REQ_SEND_RARP] = vu_h_send_rarp,
	[VU_REQ_NET_SET_MTU] = vu_h_net_set_mtu,
	[VU_REQ_RESET_DEVICE] = vu_h_reset_device,
};

/* Requests answered with a reply of their own, never with a REPLY_ACK. */
static bool vu_has_own_reply(uint32_t req)
{
	switch (req) {
	case VU_REQ_GET_FEATURES:
	case VU_REQ_GET_PROTOCOL_FEATURES:
	case VU_REQ_GET_VRING_BASE:
	case VU_REQ_GET_QUEUE_NUM:
	case VU_REQ_SET_LOG_BASE:
		return true;
	default:
		return false;
	}
}

/* Requests that touch memory or rings: only after SET_OWNER. */
static bool vu_needs_owner(uint32_t req)
{
	switch (req) {
	case VU_REQ_GET_FEATURES:
	case VU_REQ_GET_PROTOCOL_FEATURES:
	case VU_REQ_SET_PROTOCOL_FEATURES:
	case VU_REQ_GET_QUEUE_NUM:
	case VU_REQ_SET_OWNER:
	case VU_REQ_RESET_OWNER:
		return false;
	default:
		return true;
	}
}

/*
 * Handle one parsed message.  Returns 0, or -errno with *why set when the
 * connection must be closed.  Every fd of @msg is closed or kept on return.
 */
static int vu_handle(struct vhost_user_backend *vb, struct vu_msg *msg, const char **why)
{
	vu_handler h = vu_handlers[msg->request];
	int ret;

	*why = NULL;
	vu_log(vb, G_LOG_LEVEL_DEBUG, "vhost-user: <- %s size %u fds %u%s",
	       vu_request_str(msg->request), msg->size, msg->nfds,
	       msg->need_reply ? " need_reply" : "");
	vb->be.stats.vu_messages++;
	if (!h) {
		*why = "unsupported request";
		ret = -EPROTO;
	} else if (vu_needs_owner(msg->request) && !vb->owner) {
		*why = "request before SET_OWNER";
		ret = -EPROTO;
	} else {
		ret = h(vb, msg, why);
	}
	for (unsigned int i = 0; i < msg->nfds; i++)
		vu_close_fd(&msg->fds[i]);
	if (ret == 1)
		return 0;
	if (ret == -EREMOTEIO || ret == 0) {
		if (!msg->need_reply || !vu_has_protocol(vb, VU_PROTOCOL_F_REPLY_ACK))
			return 0;
		ret = vu_reply_u64(vb, msg->request, ret ? 1 : 0);
		if (ret)
			*why = "could not send the reply";
		return ret;
	}
	/*
	 * The connection closes, but REPLY_ACK still owes a non-zero ack
	 * (vhost-user.rst): queued now, it is read before the EOF.  Best
	 * effort -- not when the socket is full or the request has a reply of
	 * its own.
	 */
	if (msg->need_reply && vu_has_protocol(vb, VU_PROTOCOL_F_REPLY_ACK) &&
	    !vu_has_own_reply(msg->request) && vb->wlen == 0)
		vu_reply_u64(vb, msg->request, 1);
	if (!*why)
		*why = "could not send the reply"; /* the only failure a handler leaves unnamed */
	return ret;
}

/* A message has been read completely: parse, handle, reset the reader. */
static int vu_process_message(struct vhost_user_backend *vb, const char **why, uint32_t *req)
{
	struct vu_msg msg;
	int ret;

	*req = 0;
	if (vb->rlen >= sizeof(uint32_t))
		memcpy(req, vb->rbuf, sizeof(*req));
	if (vb->rfds_overflow) {
		*why = "more fds than any request carries";
		vu_close_rfds(vb);
		return -EBADMSG;
	}
	ret = vu_msg_parse(vb->rbuf, vb->rlen, vb->rfds, vb->rnfds, &msg, why);
	if (ret) {
		vu_close_rfds(vb);
		return ret;
	}
	vb->rnfds = 0; /* the message owns them now */
	vb->rlen = 0;
	return vu_handle(vb, &msg, why);
}

/* Keep the SCM_RIGHTS fds of @mh; extra ones are closed and remembered as an error. */
static void vu_collect_fds(struct vhost_user_backend *vb, struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (vb->rnfds < VU_MAX_FDS) {
				vb->rfds[vb->rnfds++] = fd;
			} else {
				close(fd);
				vb->rfds_overflow = true;
			}
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		vb->rfds_overflow = true;
}

/*
 * Read the rest of the current message (header, then payload).  Returns 1
 * when it is complete, 0 when the socket has no more now, -errno on
 * EOF/error/a header no front-end may send (*why set).
 */
static int vu_read_message(struct vhost_user_backend *vb, const char **why)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	size_t need = VU_HDR_SIZE, total;
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (vb->rlen >= VU_HDR_SIZE) {
		if (vu_msg_frame_len(vb->rbuf, vb->rlen, &total, why) < 0)
			return -EPROTO;
		need = total;
	}
	if (vb->rlen == need)
		return 1;
	iov.iov_base = vb->rbuf + vb->rlen;
	iov.iov_len = need - vb->rlen;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	do {
		n = recvmsg(vb->conn_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		*why = "read failed";
		return -errno;
	}
	vu_collect_fds(vb, &mh);
	if (n == 0) {
		*why = vb->rlen ? "connection closed inside a message" : "connection closed";
		return -ECONNRESET;
	}
	vb->rlen += (size_t)n;
	if (vb->rlen == VU_HDR_SIZE) {
		if (vu_msg_frame_len(vb->rbuf, vb->rlen, &total, why) < 0)
			return -EPROTO;
		return total == VU_HDR_SIZE ? 1 : vu_read_message(vb, why);
	}
	return vb->rlen == need ? 1 : 0;
}

/* Log why a front-end is being dropped, naming the request. */
static void vu_drop_frontend(struct vhost_user_backend *vb, int ret, uint32_t req, const char *why)
{
	g_autofree char *reason = NULL;

	if (ret == -ECONNRESET) {
		vu_disconnect(vb, why);
		return;
	}
	vb->be.stats.vu_bad_messages++;
	vu_log(vb, G_LOG_LEVEL_WARNING, "vhost-user front-end (pid %d): %s (request %u): %s; "
	       "closing the connection", (int)vb->conn_pid, vu_request_str(req), req, why);
	reason = g_strdup_printf("protocol violation in %s", vu_request_str(req));
	vu_disconnect(vb, reason);
}

/*
 * The front-end's socket: finish a pending reply, then read and handle up
 * to VU_MSGS_PER_DISPATCH messages (none while a reply is pending).
 */
static gboolean vu_on_conn(int fd, GIOCondition ready, void *opaque)
{
	struct vhost_user_backend *vb = opaque;
	const char *why = "";
	uint32_t req = 0;
	int ret;

	(void)fd;
	/*
	 * Hung up with a reply pending that its socket cannot take (it keeps
	 * our bytes unread): watched for G_IO_OUT only, the hang-up would
	 * call us on every turn of the loop, for ever.
	 */
	if (vb->wlen && (ready & (G_IO_HUP | G_IO_ERR)) && !(ready & G_IO_OUT)) {
		vu_disconnect(vb, "hung up with a reply pending");
		return G_SOURCE_CONTINUE;
	}
	if (ready & G_IO_OUT) {
		ret = vu_write_pending(vb);
		if (ret) {
			vu_disconnect(vb, "write failed");
			return G_SOURCE_CONTINUE;
		}
		vu_update_conn_events(vb);
	}
	for (int i = 0; i < VU_MSGS_PER_DISPATCH && vb->conn_fd >= 0 && vb->wlen == 0; i++) {
		ret = vu_read_message(vb, &why);
		if (ret == 0)
			break;
		if (ret > 0) {
			ret = vu_process_message(vb, &why, &req);
			vb->rlen = 0;
		} else if (vb->rlen >= sizeof(uint32_t)) {
			memcpy(&req, vb->rbuf, sizeof(req));
		}
		if (ret < 0) {
			vu_drop_frontend(vb, ret, req, why);
			break;
		}
	}
	vu_check_frontend(vb); /* a message may have flushed a ring */
	return G_SOURCE_CONTINUE;
}

/*
 * A kick: drain the eventfd, then serve the ring (when it runs).  One read
 * drains an eventfd fdinfo showed not in semaphore mode (a kick that lands
 * after it wakes us again: it is a new one).  Where fdinfo could not tell,
 * up to VU_KICK_READS: a kick fd that fails, hangs up or never drains
 * (still readable after them, VU_KICK_BUSY_MAX wake-ups running: a
 * semaphore eventfd) would wake us for ever: it is no longer watched and
 * the front-end is closed.
 */
static gboolean vu_on_kick(int fd, GIOCondition ready, void *opaque)
{
	struct vhost_user_backend *vb = opaque;
	struct vu_vring *vr = fd == vb->vr[VU_TXQ].kick_fd ? &vb->vr[VU_TXQ] : &vb->vr[VU_RXQ];
	uint64_t v;
	ssize_t n = 0;
	int reads;

	for (reads = 0; reads < (vr->kick_one_read ? 1 : VU_KICK_READS); reads++) {
		n = vu_eventfd_read(fd, &v, vb->eventfd_nowait);
		if (n <= 0)
			break;
	}
	vr->kick_busy = !vr->kick_one_read && reads == VU_KICK_READS ? vr->kick_busy + 1 : 0;
	if (n < 0 && errno == ETIMEDOUT) {
		vb->eventfd_stalled = true; /* the guard ended a read the front-end held */
		vu_check_frontend(vb);
		return G_SOURCE_CONTINUE;
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
	    (ready & (G_IO_HUP | G_IO_ERR))) {
		vb->be.stats.vu_bad_messages++;
		vu_log(vb, G_LOG_LEVEL_WARNING, "vhost-user front-end (pid %d): a kick fd reached end "
		       "of file or failed; closing the connection", (int)vb->conn_pid);
		vu_disconnect(vb, "unusable kick fd");
		return G_SOURCE_CONTINUE;
	}
	if (vr->kick_busy >= VU_KICK_BUSY_MAX) {
		vb->be.stats.vu_bad_messages++;
		vu_log(vb, G_LOG_LEVEL_WARNING, "vhost-user front-end (pid %d): a kick fd stays "
		       "readable after it is read (an eventfd in semaphore mode?); closing the "
		       "connection", (int)vb->conn_pid);
		vu_disconnect(vb, "kick fd never drains");
		return G_SOURCE_CONTINUE;
	}
	if (fd == vb->vr[VU_TXQ].kick_fd) {
		if (vu_tx_process(vb))
			vu_schedule_work(vb);
	} else if (vu_rx_drain(vb)) {
		vu_schedule_work(vb);
	}
	vu_check_frontend(vb);
	return G_SOURCE_CONTINUE;
}

/*
 * Once a second while a front-end is connected: TX chains that waited
 * the whole second, not one taken, with the ring neither paused by
 * backpressure nor kept by a pending pass, mean a kick that never came
 * (the guest's driver, its front-end, or a kick read racing a reset):
 * take them now, count it, and log it (the first time).  Without this
 * the guest's transmissions would wait for its next kick, which a driver
 * that believes it kicked never sends.  The cost: a look at the avail
 * index a second; a lost kick costs at most two seconds, not the flow.
 */
static gboolean vu_on_tick(gpointer opaque)
{
	struct vhost_user_backend *vb = opaque;
	struct virtqueue *vq = &vb->vr[VU_TXQ].vq;
	int avail = vq_avail(vq); /* -EIO for a ring not running */
	bool stuck = avail > 0 && vb->tick_tx_waiting && vq->last_avail_idx == vb->tick_tx_next &&
		     !vb->congested && !vb->work_id;

	vb->tick_tx_waiting = avail > 0;
	vb->tick_tx_next = vq->last_avail_idx;
	if (!stuck)
		return G_SOURCE_CONTINUE;
	if (!vb->be.stats.vu_missed_kicks)
		vu_log(vb, G_LOG_LEVEL_WARNING, "vhost-user front-end (pid %d): %d TX chains waited a "
		       "second with no kick; taken now (counted as missed kicks, logged once)",
		       (int)vb->conn_pid, avail);
	vb->be.stats.vu_missed_kicks++;
	if (vu_tx_process(vb))
		vu_schedule_work(vb);
	vu_check_frontend(vb);
	return G_SOURCE_CONTINUE;
}

/* The connected process's pid (SO_PEERCRED), 0 if unknown; for log lines. */
static pid_t vu_peer_pid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	return cred.pid;
}

/*
 * Finish the attached front-end if it has already hung up.  A front-end that closes and
 * reconnects at once (a restarted QEMU, a migration's destination on the same socket) has its
 * new connection ready in the same poll round as the old one's EOF, and the listening socket
 * may be dispatched first; without this the new front-end would be refused as a second one.
 * The old connection's last messages are still read and served, in at most a few dispatch
 * rounds (a front-end that queued more than that and hung up is dropped at the next one).
 */
static void vu_reap_hung_up(struct vhost_user_backend *vb)
{
	struct pollfd pfd = { .fd = vb->conn_fd, .events = POLLIN | POLLRDHUP };

	if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return;
	for (int i = 0; i < VU_REAP_DISPATCHES && vb->conn_fd >= 0; i++)
		vu_on_conn(vb->conn_fd, G_IO_IN | (vb->wlen ? G_IO_OUT : 0), vb);
}

/* New connections: the first is served, any other while one is attached is refused. */
static gboolean vu_on_accept(int fd, GIOCondition ready, void *opaque)
{
	struct vhost_user_backend *vb = opaque;
	int conn;

	(void)ready;
	for (int i = 0; i < VU_ACCEPTS_PER_DISPATCH; i++) {
		conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (conn < 0) {
			int err = errno;

			if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
				vu_log(vb, G_LOG_LEVEL_WARNING, "accept on %s failed: %s", vb->path,
				       g_strerror(err));
			/* The connection stays queued, the listener readable: not a busy loop. */
			if (client_accept_lacks_resources(err))
				client_backoff_start(&vb->accept_backoff);
			break;
		}
		if (vb->conn_fd >= 0)
			vu_reap_hung_up(vb);
		if (vb->conn_fd >= 0) {
			uint64_t suppressed;

			vb->be.stats.peers_refused++;
			if (ratelimit_allow(&vb->refuse_rl, g_get_monotonic_time(), &suppressed))
				g_warning("refusing a second vhost-user front-end (pid %d) on %s: "
					  "pid %d is attached; one guest per socket",
					  (int)vu_peer_pid(conn), vb->path, (int)vb->conn_pid);
			close(conn);
			continue;
		}
		vb->conn_fd = conn;
		vb->conn_pid = vu_peer_pid(conn);
		vb->be.stats.peers_accepted++;
		vb->rlen = 0;
		vb->wlen = vb->woff = 0;
		vb->conn_src = fdsource_new(conn, G_IO_IN, vu_on_conn, vb);
		vb->tick_tx_waiting = false;
		vb->tick_id = g_timeout_add_seconds(1, vu_on_tick, vb);
		vu_log(vb, G_LOG_LEVEL_MESSAGE, "vhost-user front-end (pid %d) attached on %s",
		       (int)vb->conn_pid, vb->path);
	}
	return G_SOURCE_CONTINUE;
}

/* backend_free(): disconnect, close the listener, remove the socket path, free buffers. */
static void vu_free(struct backend *be)
{
	struct vhost_user_backend *vb = container_of(be, struct vhost_user_backend, be);

	vu_disconnect(vb, "daemon stopping");
	vu_device_reset(vb);
	client_backoff_stop(&vb->accept_backoff);
	fdsource_clear(&vb->listen_src);
	if (vb->listen_fd >= 0) {
		close(vb->listen_fd);
		unlink(vb->path);
	}
	g_free(vb->stage.buf);
	g_free(vb->frame_buf);
	g_free(vb->elem);
	g_free(vb->rx_elem);
	g_free(vb->rxb);
	g_free(vb->path);
	g_free(vb);
}

static const struct backend_ops vu_ops = {
	.send = vu_send,
	.flush = vu_flush,
	.free = vu_free,
};

/*
 * What an eventfd of our own says about eventfds here: the device of the
 * anonymous-inode filesystem into *@dev, for vu_check_ring_fd(), and into
 * *@nowait whether a read takes RWF_NOWAIT (an empty one says EAGAIN, not
 * EOPNOTSUPP), for vu_eventfd_read().  At set-up: eventfd() is not on the
 * seccomp allowlist.  0 or -errno.
 */
static int vu_probe_eventfds(dev_t *dev, bool *nowait)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), ret = 0;
	uint64_t v;
	struct iovec iov = { .iov_base = &v, .iov_len = sizeof(v) };
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		ret = -errno;
	else
		*dev = st.st_dev;
	*nowait = preadv2(fd, &iov, 1, -1, RWF_NOWAIT) < 0 && errno == EAGAIN;
	close(fd);
	return ret;
}

int vhost_user_backend_new(const char *path, unsigned int mtu, uint32_t offloads,
			   const struct backend_callbacks *cb, void *opaque,
			   struct backend **out)
{
	struct vhost_user_backend *vb;
	dev_t anon_dev = 0;
	bool eventfd_nowait = false;
	int ret;

	if (strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
		return -ENAMETOOLONG;
	/* Before any guest memory, and before the seccomp filter: it calls sigaction(). */
	ret = vu_mem_guard_install();
	if (ret)
		return ret;
	ret = vu_probe_eventfds(&anon_dev, &eventfd_nowait);
	if (ret)
		return ret;

	vb = g_new0(struct vhost_user_backend, 1);
	vb->be.ops = &vu_ops;
	vb->be.cb = cb;
	vb->be.opaque = opaque;
	vb->be.max_frame = (size_t)mtu + FRAME_ETH_HLEN;
	vb->mtu = mtu;
	/* The offloads come in pairs, both directions (TSO needs the checksum offload). */
	vb->features_offered = VU_FEATURES;
	if (!(offloads & BACKEND_OFFLOAD_CSUM))
		vb->features_offered &= ~VU_OFFLOAD_FEATURES;
	else if (!(offloads & BACKEND_OFFLOAD_TSO4))
		vb->features_offered &= ~(VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
					  VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4));
	vb->anon_dev = anon_dev;
	vb->eventfd_nowait = eventfd_nowait;
	vb->path = g_strdup(path);
	vb->listen_fd = -1;
	vb->conn_fd = -1;
	for (int i = 0; i < VU_NUM_QUEUES; i++) {
		vq_init(&vb->vr[i].vq);
		vb->vr[i].kick_fd = vb->vr[i].call_fd = vb->vr[i].err_fd = -1;
	}
	vb->unmap_failures_seen = vu_mem_unmap_failures();
	vb->refuse_rl = (struct ratelimit)RATELIMIT_INIT(VU_REFUSE_BURST);
	vb->broken_rl = (struct ratelimit)RATELIMIT_INIT(VU_BROKEN_BURST);
	vb->log_rl = (struct ratelimit)RATELIMIT_INIT(VU_LOG_BURST);
	vb->debug_rl = (struct ratelimit)RATELIMIT_INIT(VU_DEBUG_BURST);
	vb->frame_cap = VIRTIO_NET_HDR_LEN + MAX(vb->be.max_frame, VU_GSO_FRAME_MAX);
	vb->frame_buf = g_malloc(vb->frame_cap);
	vb->elem = g_new(struct vq_elem, 1);
	vb->rx_elem = g_new(struct vq_elem, 1);
	vb->rxb = g_new(struct vu_rx_batch, 1);
	vb->stage.buf = g_malloc(VU_STAGE_BYTES);

	/* Left at -1 on failure: vu_free() must not unlink a path that is someone else's. */
	ret = unixsock_listen(path, VU_LISTEN_BACKLOG, false, &vb->listen_fd);
	if (ret)
		goto err;
	vb->listen_src = fdsource_new(vb->listen_fd, G_IO_IN, vu_on_accept, vb);
	vb->accept_backoff.listener = vb->listen_src;
	*out = &vb->be;
	return 0;

err:
	vu_free(&vb->be);
	return ret;
}
