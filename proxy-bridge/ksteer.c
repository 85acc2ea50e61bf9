/* ksteer.c - the kernel path for steered TCP: flows, translation, accept, PROXY header, splice relay (see ksteer.h). */

#include "ksteer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <glib.h>
#include <openssl/rand.h>

#include "backend/offload.h"
#include "common/clientslots.h"
#include "common/fdsource.h"
#include "common/log.h"
#include "common/ratelimit.h"
#include "common/siphash.h"
#include "common/tcpcc.h"
#include "netstack/kstack.h"
#include "proxy-bridge/knat.h"
#include "proxy-bridge/rewrite.h"
#include "proxy-bridge/unixleg.h"

enum kflow_state {
	KF_FREE,
	KF_DIAL,
	KF_SYN,
	KF_CONNECTING,
	KF_OPEN,
	KF_CLOSED,
};

/* Relay directions: guest to sidecar, sidecar to guest. */
enum { KF_OUT, KF_IN };
/* A set of directions, for ksteer_relay(). */
#define KF_DIR(d) (1u << (d))
#define KF_BOTH (KF_DIR(KF_OUT) | KF_DIR(KF_IN))

/* A pipe for splice(): a flow borrows one per direction only while bytes sit in it. */
struct kpipe {
	int rd, wr;
	size_t cap;                    /* bytes it holds (F_GETPIPE_SZ) */
};

#define KPIPE_NONE ((struct kpipe){ .rd = -1, .wr = -1 })

struct kflow {
	enum kflow_state state;
	bool hashed;                   /* its key is in the tuple table */
	bool queued;                   /* in the again queue */
	uint64_t key;                  /* ksteer_key(): destination and guest port */
	bool direct;                   /* to the destination itself: no sidecar, no header */
	int dial;                      /* DIAL: its entry in ksteer.dials, else -1 */
	uint32_t daddr;                /* the destination the guest asked for (network order) */
	uint16_t dport, gport;         /* network order */
	int64_t deadline_us;           /* DIAL, SYN, CONNECTING: the connect timeout; CLOSED: end of grace */
	int64_t active_us;             /* OPEN: when bytes last moved (the idle timeout) */
	int sk;                        /* the private stack's accepted socket, -1 */
	int up;                        /* the sidecar's, -1 */
	struct kpipe pipe[2];          /* per direction, only while it holds bytes; rd -1: none */
	size_t in_pipe[2];             /* bytes in each pipe */
	bool eof[2];                   /* the direction's reading socket said EOF */
	bool shut[2];                  /* ... and its writing socket was shut down */
	bool urgent[2];                /* the direction's reading socket had urgent data (EPOLLPRI) */
	bool rdhup[2];                 /* ... reported its peer's FIN (EPOLLRDHUP, EPOLLHUP) */
	bool bulk[2];                  /* the direction moves bulk: not ksteer_pump_small() */
	bool sparse[2];                /* its bytes were thin on pages: copied (ksteer_turn_sparse()) */
	uint32_t copied[2];            /* bytes copied since it turned sparse */
	bool out_pending;              /* CONNECTING: an edge on sk was spent unread */
	uint32_t up_given;             /* the most bytes up may have been given; at
					* KSTEER_SIDECAR_NOTSENT_LOWAT its unsent bytes are
					* bounded (ksteer_bound_unsent()) */
};

/* A direct flow's SYN, translated, parked until its destination answered (ksteer_dial()). */
struct kdial {
	uint16_t len;                  /* of ip[] */
	uint8_t vnet[OFFLOAD_VNET_HDR_LEN];
	uint8_t ip[KNAT_SYN_MAX];
};

struct ksteer {
	struct ksteer_config cfg;
	struct kstack stack;
	int epfd;
	GSource *src;
	guint tick;
	guint again_idle;
	struct kflow *flows;
	uint32_t nslots;
	uint32_t *fifo;                /* reusable slots, oldest first */
	uint32_t fifo_head, fifo_len;
	struct kpipe pool[KSTEER_PIPE_POOL]; /* empty pipes, ready for any flow */
	size_t npool;
	uint32_t *again;               /* flows whose turn ran out */
	uint32_t nagain;
	GHashTable *by_key;            /* &kflow.key -> kflow */
	size_t active;
	size_t active_direct;          /* of them, direct flows */
	bool throttled;
	bool accept_paused;            /* out of descriptors: the listener waits for a flow to end, or the tick */
	int64_t now_us;                /* the dispatch's clock, for active_us */
	bool stack_fed;                /* guest frames went to the tun since the last ksteer_poll() */
	bool tun_behind;               /* the relay wrote into, shut or closed an accepted socket
					* since ksteer_read_tun() last ran: the stack's answer
					* is most likely on the tun */
	bool round_bulk;               /* a relay in this ksteer_poll() round left a direction
					* marked bulk (kflow.bulk) */
	uint32_t offloads_applied;     /* what the tun was last told (kstack_set_offloads) */
	bool macs_known;
	uint8_t guest_mac[6], gw_mac[6];
	uint8_t *rxbuf;                /* 2 + virtio-net header + IP packet, see ksteer_read_tun() */
	struct kdial *dials;           /* KSTEER_DIAL_MAX */
	uint16_t *dial_free;           /* free entries of dials, a stack */
	unsigned int ndial_free;
	struct ksteer_stats stats;
	struct ratelimit debug_rl;     /* ksteer_debug_flow()'s lines */
	size_t page_size;              /* a pipe has a slot per page reference: cap / page_size */
	uint8_t copy_buf[KSTEER_COPY_BYTES]; /* a sparse direction's round (ksteer_copy_round()) */
};

#define KSTEER_SOCK_EVENTS (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET)
#define KSTEER_TAG_TUN UINT64_MAX
#define KSTEER_TAG_LISTEN (UINT64_MAX - 1)
#define KSTEER_RX_MAX (2 + OFFLOAD_VNET_HDR_LEN + 65535)

static const char *const ksteer_drop_names[KSTEER_DROP_COUNT] = {
	[KSTEER_DROP_BAD_META] = "bad_metadata",
	[KSTEER_DROP_TUN_WRITE] = "stack_refused",
	[KSTEER_DROP_NO_FLOW] = "no_flow",
	[KSTEER_DROP_NOT_TCP] = "not_tcp",
	[KSTEER_DROP_OFFLOAD] = "offload_not_taken",
	[KSTEER_DROP_GUEST_TX] = "guest_refused",
	[KSTEER_DROP_GUEST_MEMORY] = "guest_memory_fault",
};

const char *ksteer_drop_str(enum ksteer_drop why)
{
	return why < KSTEER_DROP_COUNT ? ksteer_drop_names[why] : "unknown";
}

/* Set once per process from RAND_bytes: GHashFunc takes no user data. */
static struct siphash_key ksteer_hash_key;

static uint64_t ksteer_key(uint32_t daddr, uint16_t dport, uint16_t gport)
{
	return (uint64_t)daddr << 32 | (uint64_t)dport << 16 | gport;
}

static guint ksteer_hash(gconstpointer p)
{
	return (guint)siphash24(&ksteer_hash_key, p, sizeof(uint64_t));
}

static gboolean ksteer_equal(gconstpointer a, gconstpointer b)
{
	return *(const uint64_t *)a == *(const uint64_t *)b;
}

static void ksteer_epoll(struct ksteer *ks, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	/* Only ENOMEM/ENOSPC can fail an ADD of a fresh descriptor; the flow then stalls to its timeout. */
	if (epoll_ctl(ks->epfd, op, fd, &ev) < 0)
		g_warning("kernel path: epoll_ctl(%d): %s", fd, g_strerror(errno));
}

static void ksteer_close_fd(int *fd, bool reset)
{
	static const struct linger abort_linger = { .l_onoff = 1, .l_linger = 0 };

	if (*fd < 0)
		return;
	if (reset)
		setsockopt(*fd, SOL_SOCKET, SO_LINGER, &abort_linger, sizeof(abort_linger));
	close(*fd);
	*fd = -1;
}

/*
 * A pipe for direction @d of @f: its own if it has one, else one from the
 * pool, else a new one grown to KSTEER_PIPE_BYTES if the system lets us (a
 * user's pipe pages are limited: fs.pipe-user-pages-soft).  0 or -errno.
 */
static int ksteer_pipe_get(struct ksteer *ks, struct kflow *f, int d)
{
	struct kpipe *p = &f->pipe[d];
	int fds[2], sz;

	if (p->rd >= 0)
		return 0;
	if (ks->npool) {
		*p = ks->pool[--ks->npool];
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	sz = fcntl(fds[1], F_SETPIPE_SZ, KSTEER_PIPE_BYTES);
	if (sz < 0)
		sz = fcntl(fds[1], F_GETPIPE_SZ);
	*p = (struct kpipe){ .rd = fds[0], .wr = fds[1], .cap = sz > 0 ? (size_t)sz : 4096 };
	return 0;
}

/*
 * Park the @len bytes at @buf, which a socket did not take, in direction
 * @d's empty pipe, for the relay to splice on.  They must go in whole: a
 * small message's rest (at most PIPE_BUF) always does; a PROXY header and
 * the guest's first bytes (up to PROXY_HDR_MAX + KSTEER_FIRST_BYTES), and a
 * copy round's rest (at most the pipe's size), do in a pipe grown to
 * KSTEER_PIPE_BYTES.  0, or -errno (no pipe to be had, or
 * a short write: a one-page pipe, a user over fs.pipe-user-pages-soft).
 * What went in is counted even when short, so the flow's end closes that
 * pipe rather than pooling it with bytes in it for the next flow.
 */
static int ksteer_pipe_park(struct ksteer *ks, struct kflow *f, int d, const uint8_t *buf,
			    size_t len)
{
	ssize_t put;
	int ret;

	ret = ksteer_pipe_get(ks, f, d);
	if (ret)
		return ret;
	put = write(f->pipe[d].wr, buf, len);
	f->in_pipe[d] = (size_t)MAX(put, 0);
	return put == (ssize_t)len ? 0 : -EIO;
}

/* Direction @d of @f is done with its pipe: an empty one goes back to the pool, any other is closed. */
static void ksteer_pipe_put(struct ksteer *ks, struct kflow *f, int d)
{
	struct kpipe *p = &f->pipe[d];

	if (p->rd < 0)
		return;
	if (!f->in_pipe[d] && ks->npool < KSTEER_PIPE_POOL) {
		ks->pool[ks->npool++] = *p;
	} else {
		close(p->rd);
		close(p->wr);
	}
	*p = KPIPE_NONE;
	f->in_pipe[d] = 0;
}

/* Why a flow ends, for its count: each ending is counted once, under one event. */
enum kflow_end {
	KEND_CLOSED,                   /* EOF relayed both ways: closed in order */
	KEND_RESET,                    /* an error or a reset on either side */
	KEND_IDLE,                     /* --tcp-idle-timeout */
	KEND_TIMEOUT,                  /* the connect timeout, in DIAL, SYN or CONNECTING */
	KEND_COUNTED,                  /* the caller counted why (connect or header failed, ...) */
	KEND_HANDED_BACK,              /* counted too; the tuple is libslirp's from here on */
};

/* The counter of @f's ending @why: a direct flow's own (ksteer_direct_stats), or NULL when counted already. */
static uint64_t *ksteer_end_counter(struct ksteer *ks, const struct kflow *f, enum kflow_end why)
{
	struct ksteer_stats *st = &ks->stats;
	struct ksteer_direct_stats *dt = &ks->stats.direct;

	switch (why) {
	case KEND_CLOSED:
		return f->direct ? &dt->closed : &st->closed;
	case KEND_RESET:
		return f->direct ? &dt->aborted : &st->aborted;
	case KEND_IDLE:
		return f->direct ? &dt->idle_resets : &st->idle_resets;
	case KEND_TIMEOUT:
		return f->direct ? &dt->timeouts : &st->timeouts;
	default:
		return NULL;
	}
}

/*
 * A debug line per flow opened or ended (--log-level debug), as libslirp's
 * path has (bridge_debug_flow()), under a rate limit of its own.
 */
static void ksteer_debug_flow(struct ksteer *ks, const struct kflow *f, const char *event)
{
	char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
	struct in_addr daddr = { .s_addr = f->daddr };
	uint64_t suppressed;

	if (!log_enabled(LOG_LEVEL_DEBUG) ||
	    !ratelimit_allow(&ks->debug_rl, g_get_monotonic_time(), &suppressed))
		return;
	g_debug("kernel path: %s flow %s:%u -> %s:%u %s (slot %u)%s",
		f->direct ? "direct" : "steered", inet_ntop(AF_INET, &ks->cfg.guest, src, sizeof(src)),
		ntohs(f->gport), inet_ntop(AF_INET, &daddr, dst, sizeof(dst)), ntohs(f->dport), event,
		(unsigned int)(f - ks->flows), suppressed ? " (earlier lines suppressed)" : "");
}

static const char *const ksteer_end_event[] = {
	[KEND_CLOSED] = "closed", [KEND_RESET] = "reset", [KEND_IDLE] = "ended: idle",
	[KEND_TIMEOUT] = "ended: connect timeout", [KEND_COUNTED] = "ended",
	[KEND_HANDED_BACK] = "handed to libslirp's path: its connect failed at once",
};

/* Hand @f's parked SYN place back, if it holds one (DIAL). */
static void ksteer_dial_release(struct ksteer *ks, struct kflow *f)
{
	if (f->dial < 0)
		return;
	ks->dial_free[ks->ndial_free++] = (uint16_t)f->dial;
	f->dial = -1;
}

/*
 * End @f: close what it holds (with resets unless closed in order), keep
 * its slot translating late segments for the grace, queue the slot for
 * reuse.
 */
static void ksteer_end(struct ksteer *ks, struct kflow *f, enum kflow_end why)
{
	uint32_t slot = (uint32_t)(f - ks->flows);
	bool reset = why != KEND_CLOSED;
	uint64_t *counter;

	if (f->state == KF_CLOSED || f->state == KF_FREE)
		return;
	counter = ksteer_end_counter(ks, f, why);
	if (counter)
		(*counter)++;
	ksteer_debug_flow(ks, f, ksteer_end_event[why]);
	ksteer_dial_release(ks, f);
	/* The stack answers the close on the tun (a FIN or a reset), within the call. */
	ks->tun_behind |= f->sk >= 0;
	ksteer_close_fd(&f->sk, reset);
	ksteer_close_fd(&f->up, reset);
	for (int d = 0; d < 2; d++)
		ksteer_pipe_put(ks, f, d);
	f->state = KF_CLOSED;
	f->deadline_us = g_get_monotonic_time() + KSTEER_GRACE_US;
	ks->active--;
	ks->active_direct -= f->direct;
	if (ks->accept_paused) {
		ks->accept_paused = false;
		ksteer_epoll(ks, EPOLL_CTL_MOD, ks->stack.listener, EPOLLIN, KSTEER_TAG_LISTEN);
	}
	ks->fifo[(ks->fifo_head + ks->fifo_len++) % ks->nslots] = slot;
}

/* Whether @f is CLOSED and still within its grace at @now: its late segments still go through. */
static bool ksteer_in_grace(const struct kflow *f, int64_t now)
{
	return f->state == KF_CLOSED && f->deadline_us > now;
}

/* Take @f out of the tuple table, if it is there: what comes on its tuple is no longer its. */
static void ksteer_unhash(struct ksteer *ks, struct kflow *f)
{
	if (f->hashed)
		g_hash_table_remove(ks->by_key, &f->key);
	f->hashed = false;
}

/*
 * A slot for a new flow from guest port @gport: the oldest freed one whose
 * last flow had another guest port, among the first KSTEER_SLOT_SCAN, and
 * reclaimed (counted) if it is still in its grace.  Inside the private
 * stack a connection is only (the slot's address, the guest port), so one
 * with the same port could meet what the old flow left there: a socket in
 * LAST_ACK, a handshake not yet accepted.  Failing that, the oldest if its
 * grace is over; NULL if not, or if every slot is in use.
 */
static struct kflow *ksteer_take_slot(struct ksteer *ks, uint16_t gport)
{
	uint32_t n = MIN(ks->fifo_len, KSTEER_SLOT_SCAN), i, slot;
	int64_t now = g_get_monotonic_time();
	struct kflow *f;
	bool queued;

	for (i = 0; i < n; i++) {
		f = &ks->flows[ks->fifo[(ks->fifo_head + i) % ks->nslots]];
		if (f->gport != gport)
			break;
	}
	if (i == n) {
		i = 0;
		if (!n || ksteer_in_grace(&ks->flows[ks->fifo[ks->fifo_head]], now))
			return NULL;
	}
	/* Out of the FIFO, the entries before it moved up one: the rest keep their order. */
	slot = ks->fifo[(ks->fifo_head + i) % ks->nslots];
	for (; i > 0; i--)
		ks->fifo[(ks->fifo_head + i) % ks->nslots] =
			ks->fifo[(ks->fifo_head + i - 1) % ks->nslots];
	ks->fifo_head = (ks->fifo_head + 1) % ks->nslots;
	ks->fifo_len--;
	f = &ks->flows[slot];
	if (ksteer_in_grace(f, now))
		ks->stats.reclaimed++;
	ksteer_unhash(ks, f);
	/* Still in the again queue if it ended there: one entry per slot, whichever flow holds it. */
	queued = f->queued;
	*f = (struct kflow){ .state = KF_FREE, .sk = -1, .up = -1, .dial = -1, .queued = queued,
			     .pipe = { KPIPE_NONE, KPIPE_NONE } };
	return f;
}

/*
 * Guest side.
 */

/* The guest's metadata, for the tun: offsets from the IP header, and only what describes a TCP checksum. */
static int ksteer_meta_for_stack(const struct frame_meta *meta, const struct knat_view *v,
				 uint8_t *hdr)
{
	struct frame_meta m = *meta;

	if (m.flags & FRAME_META_NEEDS_CSUM) {
		if (m.csum_start != KNAT_ETH_HLEN + v->ihl || m.csum_offset != 16)
			return -EINVAL;
		m.csum_start -= KNAT_ETH_HLEN;
	}
	if (m.gso_type != FRAME_GSO_NONE) {
		if (m.gso_type != FRAME_GSO_TCPV4 || !(m.flags & FRAME_META_NEEDS_CSUM) ||
		    !m.gso_size)
			return -EINVAL;
		m.hdr_len = (uint16_t)(v->ihl + v->thl);
	} else {
		m.hdr_len = 0;
	}
	offload_hdr_build(hdr, &m);
	return 0;
}

/*
 * Translate @v, a guest segment of flow @f, for the private stack, in
 * place, and build its virtio-net header in @hdr from @meta (NULL: none).
 * Returns 0, or -EINVAL for metadata that does not describe the segment
 * (dropped and counted).
 */
static int ksteer_translate(struct ksteer *ks, struct kflow *f, struct knat_view *v,
			    const struct frame_meta *meta, uint8_t *hdr)
{
	struct knat_tuple to = {
		.saddr = knat_pool_addr((uint32_t)(f - ks->flows)),
		.daddr = htonl(KNAT_LISTEN_ADDR),
		.sport = f->gport,
		.dport = htons(KNAT_LISTEN_PORT),
	};

	if (meta) {
		if (ksteer_meta_for_stack(meta, v, hdr)) {
			ks->stats.dropped[KSTEER_DROP_BAD_META]++;
			return -EINVAL;
		}
	} else {
		offload_hdr_build(hdr, NULL);
	}
	knat_rewrite(v, &to, meta && (meta->flags & FRAME_META_NEEDS_CSUM));
	return 0;
}

/*
 * Write one translated segment to the private stack: @iov[0] is its
 * virtio-net header; @tail: the rest lies in guest memory.  Returns 0
 * (written, or refused and counted), or -EFAULT when the kernel could not
 * read that memory (dropped and counted).
 */
static int ksteer_write_tun(struct ksteer *ks, const struct iovec *iov, unsigned int niov,
			    bool tail)
{
	if (writev(ks->stack.tun, iov, (int)niov) < 0) {
		/*
		 * The kernel reads a tail from guest memory itself, so a front-end
		 * that shrank its memory file shows here, not as our SIGBUS.
		 */
		if (errno == EFAULT && tail) {
			ks->stats.dropped[KSTEER_DROP_GUEST_MEMORY]++;
			return -EFAULT;
		}
		ks->stats.dropped[KSTEER_DROP_TUN_WRITE]++;
		return 0;
	}
	ks->stats.frames_to_stack++;
	ks->stack_fed = true;
	return 0;
}

/*
 * A guest segment of flow @f, translated, to the private stack: @v's
 * packet, of which @tail (NULL for none) holds all after its first
 * @ip_len bytes.  Returns 0 (sent, or dropped and counted), or -EFAULT
 * when the kernel could not read @tail (dropped and counted too).
 */
static int ksteer_to_stack(struct ksteer *ks, struct kflow *f, struct knat_view *v,
			   size_t ip_len, const struct frame_tail *tail,
			   const struct frame_meta *meta)
{
	uint8_t hdr[OFFLOAD_VNET_HDR_LEN];
	struct iovec iov[2 + FRAME_TAIL_MAX_IOV] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = v->ip, .iov_len = ip_len },
	};
	unsigned int niov = 2;

	if (ksteer_translate(ks, f, v, meta, hdr))
		return 0;
	if (tail) {
		memcpy(iov + niov, tail->iov, tail->niov * sizeof(*iov));
		niov += tail->niov;
	}
	return ksteer_write_tun(ks, iov, niov, tail);
}

/* The SYN of a new flow, @direct or steered: a slot, or NULL (libslirp's then, counted). */
static struct kflow *ksteer_open(struct ksteer *ks, const uint8_t *frame, uint32_t daddr,
				 uint16_t dport, uint16_t gport, uint64_t key, bool direct)
{
	struct kflow *f = ksteer_take_slot(ks, gport);

	if (!f) {
		if (direct)
			ks->stats.direct.dial_full++;
		else
			ks->stats.table_full++;
		return NULL;
	}
	f->state = KF_SYN;
	f->key = key;
	f->daddr = daddr;
	f->dport = dport;
	f->gport = gport;
	f->deadline_us = g_get_monotonic_time() + ks->cfg.connect_timeout_us;
	g_hash_table_replace(ks->by_key, &f->key, f);
	f->hashed = true;
	ks->active++;
	if (!direct)
		ks->stats.flows++;
	memcpy(ks->gw_mac, frame, 6);
	memcpy(ks->guest_mac, frame + 6, 6);
	ks->macs_known = true;
	return f;
}

static int ksteer_connected(int fd);

/*
 * A direct flow's SYN: connect to its destination first, and park the SYN,
 * translated, until it answers (ksteer_dial_answered()): the guest's
 * handshake then completes only with a destination that accepted, and a
 * refusal reaches it as a reset, as through libslirp.  @v is the SYN of
 * @t, @frame its Ethernet frame.  Returns the flow, in DIAL, or NULL: no
 * slot or dial entry, a SYN too long to park, or a connect() that failed
 * at once (libslirp's then, which answers as it always has; counted).
 */
static struct kflow *ksteer_dial(struct ksteer *ks, const uint8_t *frame, struct knat_view *v,
				 const struct frame_meta *meta, uint64_t key,
				 const struct knat_tuple *t)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = t->daddr,
				   .sin_port = t->dport };
	struct kdial *dl;
	struct kflow *f;
	int up;

	if (v->tot > KNAT_SYN_MAX || !ks->ndial_free) {
		ks->stats.direct.dial_full++;
		return NULL;
	}
	f = ksteer_open(ks, frame, t->daddr, t->dport, t->sport, key, true);
	if (!f)
		return NULL;
	f->state = KF_DIAL;
	f->direct = true;
	ks->active_direct++;
	/* No unpaced congestion control here: this leg crosses the pod's real network. */
	up = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (up < 0 || (connect(up, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
		       errno != EINPROGRESS)) {
		ks->stats.direct.failed_at_once++;
		ksteer_close_fd(&up, false);
		/* Nothing reached the private stack; the tuple is libslirp's from here on. */
		ksteer_end(ks, f, KEND_HANDED_BACK);
		ksteer_unhash(ks, f);
		return NULL;
	}
	ks->stats.direct.flows++;
	f->up = up;
	f->dial = ks->dial_free[--ks->ndial_free];
	dl = &ks->dials[f->dial];
	/* ksteer_take_frame() checked the metadata before any slot was taken. */
	(void)ksteer_translate(ks, f, v, meta, dl->vnet);
	dl->len = (uint16_t)v->tot;
	memcpy(dl->ip, v->ip, v->tot);
	ksteer_epoll(ks, EPOLL_CTL_ADD, up, KSTEER_SOCK_EVENTS,
		     (uint64_t)(f - ks->flows) << 1 | KF_IN);
	return f;
}

/*
 * Refuse direct flow @f's guest connection: a reset from its destination,
 * as libslirp answers a connect that failed (the parked SYN's ISN + 1
 * acknowledged).  Then ended by the caller.
 */
static void ksteer_dial_refuse(struct ksteer *ks, struct kflow *f)
{
	const struct kdial *dl = &ks->dials[f->dial];
	struct rw_tuple t = { .saddr = f->daddr, .daddr = ks->cfg.guest.s_addr,
			      .sport = f->dport, .dport = f->gport, .proto = IPPROTO_TCP };
	uint8_t rst[RW_ETH_HLEN + 40];
	size_t ihl = (size_t)(dl->ip[0] & 0x0f) * 4;
	uint32_t isn;
	size_t n;

	memcpy(&isn, dl->ip + ihl + 4, 4);
	n = rw_build_tcp_rst(rst, ks->guest_mac, ks->gw_mac, &t, 0, ntohl(isn) + 1);
	if (ks->cfg.tx(rst, n, NULL, ks->cfg.opaque)) {
		ks->stats.dropped[KSTEER_DROP_GUEST_TX]++;
		return;
	}
	ks->stats.frames_to_guest++;
	ks->cfg.tx_flush(ks->cfg.opaque);
}

/*
 * Direct flow @f's connect() may be done: with success, its parked SYN goes
 * to the private stack, whose SYN|ACK the guest gets (SYN); with an error,
 * the guest gets a reset (CLOSED); still connecting, nothing changes.
 */
static void ksteer_dial_answered(struct ksteer *ks, struct kflow *f)
{
	struct kdial *dl = &ks->dials[f->dial];
	int ret = ksteer_connected(f->up);

	if (!ret)
		return;
	if (ret < 0) {
		ks->stats.direct.refused++;
		ksteer_dial_refuse(ks, f);
		ksteer_end(ks, f, KEND_COUNTED);
		return;
	}
	(void)ksteer_write_tun(ks, (struct iovec[]){ { dl->vnet, sizeof(dl->vnet) },
						     { dl->ip, dl->len } }, 2, false);
	ksteer_dial_release(ks, f);
	f->state = KF_SYN;
	f->deadline_us = ks->now_us + ks->cfg.connect_timeout_us;
}

/*
 * A guest segment of a flow in DIAL: nothing but its SYN can be sound
 * before the SYN|ACK, and a copy of that is parked already.  A reset ends
 * the flow; the rest is dropped.  Returns 1 (taken).
 */
static int ksteer_dial_segment(struct ksteer *ks, struct kflow *f, const struct knat_view *v)
{
	if (v->flags & KNAT_TCP_RST)
		ksteer_end(ks, f, KEND_RESET);
	return 1;
}

/*
 * The work of ksteer_guest_frame() and ksteer_guest_frame_tail(): @frame
 * holds @len bytes, @tail (or NULL) the rest of the frame.  Returns as
 * ksteer_guest_frame_tail().
 */
static int ksteer_take_frame(struct ksteer *ks, uint8_t *frame, size_t len,
			     const struct frame_tail *tail, const struct frame_meta *meta)
{
	size_t total = len + (tail ? tail->len : 0);
	struct knat_view v;
	struct knat_tuple t;
	struct kflow *f, *old;
	enum ksteer_route route;
	bool dialed = false;
	uint64_t key;
	bool syn;
	int ret;

	if (len < KNAT_ETH_HLEN + 20 || frame[12] != 0x08 || frame[13] != 0x00 ||
	    (tail && tail->niov > FRAME_TAIL_MAX_IOV))
		return 0;
	/* Lies and oddities are the bridge's to count and drop; this path takes sound segments only. */
	if (knat_parse(frame + KNAT_ETH_HLEN, total - KNAT_ETH_HLEN, &v))
		return 0;
	/* With a tail: the headers in our copy, and no padding to leave out of the tail. */
	if (tail && (KNAT_ETH_HLEN + v.ihl + v.thl > len || KNAT_ETH_HLEN + v.tot != total))
		return 0;
	t = knat_tuple_of(&v);
	if (t.saddr != ks->cfg.guest.s_addr)
		return 0;
	key = ksteer_key(t.daddr, t.dport, t.sport);
	f = g_hash_table_lookup(ks->by_key, &key);
	/* Past its grace a closed flow has nothing more to translate: the tuple is the bridge's again. */
	if (f && f->state == KF_CLOSED && !ksteer_in_grace(f, g_get_monotonic_time())) {
		ksteer_unhash(ks, f);
		f = NULL;
	}
	syn = (v.flags & (KNAT_TCP_SYN | KNAT_TCP_ACK | KNAT_TCP_RST)) == KNAT_TCP_SYN;
	/* A new SYN on a closed flow's tuple is a new flow; the old one keeps its late segments till then. */
	old = f && syn && f->state == KF_CLOSED ? f : NULL;
	if (old)
		f = NULL;
	if (!f) {
		/*
		 * A new flow: a SYN whose checksums fail goes to the bridge, which
		 * drops and counts it (bad_checksum); with a partial TCP checksum
		 * (the guest's to complete, trusted by the kernel as from a NIC)
		 * the IPv4 header's is still checked.
		 */
		if (tail || !syn ||
		    !knat_checksums_ok(&v, meta && (meta->flags & FRAME_META_NEEDS_CSUM)))
			return 0;
		route = ks->cfg.route(t.daddr, t.sport, t.dport, ks->cfg.opaque);
		if (route != KSTEER_ROUTE_NONE) {
			uint8_t hdr[OFFLOAD_VNET_HDR_LEN];

			/* Metadata the private stack cannot take: dropped, counted, no slot held for it. */
			if (meta && ksteer_meta_for_stack(meta, &v, hdr)) {
				ks->stats.dropped[KSTEER_DROP_BAD_META]++;
				return 1;
			}
			if (route == KSTEER_ROUTE_DIRECT)
				dialed = (f = ksteer_dial(ks, frame, &v, meta, key, &t)) != NULL;
			else
				f = ksteer_open(ks, frame, t.daddr, t.dport, t.sport, key, false);
		}
		if (!f) {
			/*
			 * libslirp's new flow (the table is full, or the bridge has the
			 * tuple): the old one must not catch its handshake and bytes.
			 */
			if (old)
				ksteer_unhash(ks, old);
			return 0;
		}
		/* ksteer_open() put the new flow under the key in its place. */
		if (old && old != f)
			old->hashed = false;
		if (dialed)
			return 1;
	}
	if (f->state == KF_DIAL)
		return ksteer_dial_segment(ks, f, &v);
	ret = ksteer_to_stack(ks, f, &v, tail ? len - KNAT_ETH_HLEN : v.tot, tail, meta);
	return ret ? ret : 1;
}

bool ksteer_guest_frame(struct ksteer *ks, uint8_t *frame, size_t len,
			const struct frame_meta *meta)
{
	return ksteer_take_frame(ks, frame, len, NULL, meta) > 0; /* no tail: never -EFAULT */
}

/* Every header this path reads (Ethernet, IPv4 and TCP at their longest) lies in a tail frame's head. */
G_STATIC_ASSERT(FRAME_TAIL_HEAD >= KNAT_ETH_HLEN + 60 + 60);

int ksteer_guest_frame_tail(struct ksteer *ks, uint8_t *frame, const struct frame_tail *tail,
			    const struct frame_meta *meta)
{
	return ksteer_take_frame(ks, frame, FRAME_TAIL_HEAD, tail, meta);
}

/*
 * Private stack side: the tun.
 */

static void ksteer_sync_offloads(struct ksteer *ks)
{
	uint32_t want = ks->cfg.tx_offloads(ks->cfg.opaque) &
			(BACKEND_OFFLOAD_CSUM | BACKEND_OFFLOAD_TSO4);

	if (want == ks->offloads_applied)
		return;
	if (kstack_set_offloads(ks->stack.tun, want))
		g_warning("kernel path: TUNSETOFFLOAD: %s", g_strerror(errno));
	else
		ks->offloads_applied = want;
}

/*
 * One packet from the private stack, at ks->rxbuf + 2 (its virtio-net
 * header) + OFFLOAD_VNET_HDR_LEN (the IP packet): translated back, given
 * the Ethernet header in the 14 bytes before the IP header, sent.
 */
static void ksteer_from_stack(struct ksteer *ks, size_t n)
{
	uint8_t *frame = ks->rxbuf, *ip = ks->rxbuf + KNAT_ETH_HLEN;
	uint32_t offloads = ks->offloads_applied;
	const struct frame_meta *meta = NULL;
	struct frame_meta m = { 0 };
	struct knat_tuple t, to;
	struct knat_view v;
	struct kflow *f;
	int64_t slot;
	bool ignored;

	if (n < OFFLOAD_VNET_HDR_LEN || knat_parse(ip, n - OFFLOAD_VNET_HDR_LEN, &v)) {
		ks->stats.dropped[KSTEER_DROP_NOT_TCP]++;
		return;
	}
	if (offload_hdr_parse(ks->rxbuf + 2, n - OFFLOAD_VNET_HDR_LEN, offloads, &m, &meta,
			      &ignored)) {
		ks->stats.dropped[KSTEER_DROP_OFFLOAD]++;
		return;
	}
	t = knat_tuple_of(&v);
	slot = knat_pool_slot(t.daddr);
	f = slot >= 0 && slot < ks->nslots ? &ks->flows[slot] : NULL;
	if (!f || f->state == KF_FREE || f->gport != t.dport || !ks->macs_known ||
	    (f->state == KF_CLOSED && !ksteer_in_grace(f, g_get_monotonic_time()))) {
		ks->stats.dropped[KSTEER_DROP_NO_FLOW]++;
		return;
	}
	to = (struct knat_tuple){ .saddr = f->daddr, .sport = f->dport,
				  .daddr = ks->cfg.guest.s_addr, .dport = f->gport };
	knat_rewrite(&v, &to, meta && (meta->flags & FRAME_META_NEEDS_CSUM));
	if (meta) {
		m.flags &= FRAME_META_NEEDS_CSUM;
		if (m.flags)
			m.csum_start += KNAT_ETH_HLEN;
		if (m.gso_type != FRAME_GSO_NONE)
			m.hdr_len = (uint16_t)(KNAT_ETH_HLEN + v.ihl + v.thl);
		meta = &m;
	}
	memcpy(frame, ks->guest_mac, 6);
	memcpy(frame + 6, ks->gw_mac, 6);
	frame[12] = 0x08;
	frame[13] = 0x00;
	if (ks->cfg.tx(frame, KNAT_ETH_HLEN + v.tot, meta, ks->cfg.opaque)) {
		ks->stats.dropped[KSTEER_DROP_GUEST_TX]++;
		return;
	}
	ks->stats.frames_to_guest++;
}

/*
 * The private stack's frames for the guest, up to KSTEER_TUN_BATCH, then
 * one notification.  Returns the frames read when a read found the tun
 * empty (EAGAIN), -1 when it stopped before that (the batch ran out, the
 * guest's ring throttled us, or a read failed).
 */
static int ksteer_read_tun(struct ksteer *ks)
{
	int sent = 0, drained = -1;

	ksteer_sync_offloads(ks);
	ks->tun_behind = false;
	for (int i = 0; i < KSTEER_TUN_BATCH && !ks->throttled; i++) {
		ssize_t n = read(ks->stack.tun, ks->rxbuf + 2, KSTEER_RX_MAX - 2);

		if (n < 0) {
			if (errno == EAGAIN)
				drained = sent;
			else if (errno != EINTR)
				g_warning("kernel path: reading the tun: %s", g_strerror(errno));
			break;
		}
		ksteer_from_stack(ks, (size_t)n);
		sent++;
	}
	if (sent)
		ks->cfg.tx_flush(ks->cfg.opaque);
	return drained;
}

/*
 * Accepting, connecting, the header.
 */

/*
 * Give the private stack's listener @fd, and so every socket it accepts
 * (they start with their listener's buffer sizes and locks), a send buffer
 * of KSTEER_PRIVATE_SNDBUF.  Unbounded, an unpaced sender fills the tun's
 * queue: the kernel's autotuning takes each flow's buffer to tcp_wmem's
 * 4 MiB, nearly all of it in flight, as the tun orphans what it queues and
 * so never holds the socket back, and four flows *in* waited 11-18 ms at
 * p99 between the guest's ACK and its next segment, behind each other's
 * bursts (docs/PERFORMANCE.md, "The private stack's send buffer,
 * bounded").  SO_SNDBUFFORCE passes net.core.wmem_max, but asks for
 * CAP_NET_ADMIN in the host's first user namespace (capable(), unlike
 * TCP_CONGESTION's check against the namespace's owner): a daemon started
 * as root on the node has it, one in an ordinary pod has not.  Without it
 * a smaller bound measured slower than none, so SO_SNDBUF is set only
 * where wmem_max allows the whole of it (asked of a scratch socket, so
 * the listener is never left with a smaller one); else autotuning stays.
 * Says which, once.
 */
static void ksteer_bound_private_sndbuf(int fd)
{
	int bytes = KSTEER_PRIVATE_SNDBUF, got = 0, probe;
	socklen_t len = sizeof(got);

	if (!setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes))) {
		g_message("kernel path: the private stack's send buffers are %d KiB (forced)",
			  2 * bytes / 1024);
		return;
	}
	probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && !setsockopt(probe, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) &&
	    !getsockopt(probe, SOL_SOCKET, SO_SNDBUF, &got, &len) && got >= 2 * bytes &&
	    !setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)))
		g_message("kernel path: the private stack's send buffers are %d KiB", 2 * bytes / 1024);
	else
		g_message("kernel path: the private stack's send buffers autotune (a bound of %d KiB "
			  "needs CAP_NET_ADMIN or net.core.wmem_max of %d; flows in may queue up to "
			  "tcp_wmem's maximum towards the guest)", 2 * bytes / 1024, bytes);
	if (probe >= 0)
		close(probe);
}

/*
 * Keep at most KSTEER_SIDECAR_NOTSENT_LOWAT unsent bytes in @f's socket
 * to the sidecar.  Bytes queued beyond the window go out when the
 * sidecar's ACK opens it, and that transmit runs in the sidecar's context,
 * on its CPU time, in its recv(): with a deep queue the sidecar did our
 * sending and fell behind (docs/PERFORMANCE.md).  Called before up is
 * given up to @more bytes; the bound is set only once up could have been
 * given KSTEER_SIDECAR_NOTSENT_LOWAT bytes in all, as a socket given fewer
 * cannot hold more unsent: until then it would change nothing, and a
 * short flow is spared the call.  A unix leg has no such bound (up_given
 * at the bound from the start).  Failure costs only that speed.
 */
static void ksteer_bound_unsent(struct kflow *f, size_t more)
{
	int lowat = KSTEER_SIDECAR_NOTSENT_LOWAT;

	if (f->up_given >= KSTEER_SIDECAR_NOTSENT_LOWAT)
		return;
	if (more < KSTEER_SIDECAR_NOTSENT_LOWAT - f->up_given) {
		f->up_given += (uint32_t)more;
		return;
	}
	f->up_given = KSTEER_SIDECAR_NOTSENT_LOWAT;
	if (setsockopt(f->up, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat)))
		g_debug("kernel path: TCP_NOTSENT_LOWAT: %s", g_strerror(errno));
}

static int ksteer_connect_sidecar(const struct ksteer *ks)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = ks->cfg.proxy_addr,
				   .sin_port = htons(ks->cfg.proxy_port) };
	int fd, ret;

	/*
	 * The libslirp path's unix leg, send buffer included; a unix connect()
	 * completes or fails at once (EAGAIN: the listener's backlog is full).
	 */
	if (ks->cfg.proxy_unix_path) {
		ret = unixleg_connect(ks->cfg.proxy_unix_path, &fd);
		return ret < 0 ? ret : fd;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)tcpcc_set_unpaced(fd);
	ret = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	/* EAGAIN is no "in progress" here: no local port is left. */
	if (ret < 0 && errno != EINPROGRESS) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

static int ksteer_sidecar_ready(struct ksteer *ks, struct kflow *f, bool check_error);
static void ksteer_relay(struct ksteer *ks, struct kflow *f, unsigned int dirs);

/* The error pending on socket @fd (SO_ERROR, which clears it), 0 if none. */
static int ksteer_sock_error(int fd)
{
	socklen_t elen = sizeof(int);
	int err = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return errno;
	return err;
}

/*
 * Whether @fd's connect() is done, in one call: a send() of nothing says 0
 * once it is (TCP or unix), EAGAIN while the handshake runs, or the
 * connect's error, which it clears as SO_ERROR would.  Returns 1, 0 or
 * -errno.
 */
static int ksteer_connected(int fd)
{
	if (send(fd, NULL, 0, MSG_DONTWAIT | MSG_NOSIGNAL) == 0)
		return 1;
	return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}

/* The private stack completed a guest's handshake: join it to a new sidecar connection. */
static void ksteer_accepted(struct ksteer *ks, int sk, const struct sockaddr_in *peer)
{
	int64_t slot = knat_pool_slot(peer->sin_addr.s_addr);
	struct kflow *f = slot >= 0 && slot < ks->nslots ? &ks->flows[slot] : NULL;
	int up;

	if (!f || f->state != KF_SYN || f->gport != peer->sin_port) {
		ks->stats.stray_accepts++;
		ksteer_close_fd(&sk, true);
		return;
	}
	ks->stats.accepted++;
	f->sk = sk;
	if (f->direct) {
		/* Its destination answered before the guest's SYN went on: no sidecar, no header. */
		ksteer_epoll(ks, EPOLL_CTL_ADD, f->sk, KSTEER_SOCK_EVENTS, (uint64_t)slot << 1 | KF_OUT);
		ks->stats.direct.connected++;
		ksteer_debug_flow(ks, f, "opened");
		f->state = KF_OPEN;
		f->deadline_us = 0;
		f->active_us = ks->now_us;
		/* Edges spent meanwhile: the destination may have spoken first, the guest sent bytes. */
		ksteer_relay(ks, f, KF_BOTH);
		return;
	}
	up = ksteer_connect_sidecar(ks);
	if (up < 0) {
		ks->stats.connect_failed++;
		ksteer_end(ks, f, KEND_COUNTED);
		return;
	}
	f->up = up;
	f->up_given = ks->cfg.proxy_unix_path ? KSTEER_SIDECAR_NOTSENT_LOWAT : 0;
	f->state = KF_CONNECTING;
	ksteer_epoll(ks, EPOLL_CTL_ADD, f->sk, KSTEER_SOCK_EVENTS, (uint64_t)slot << 1 | KF_OUT);
	ksteer_epoll(ks, EPOLL_CTL_ADD, f->up, KSTEER_SOCK_EVENTS, (uint64_t)slot << 1 | KF_IN);
	/*
	 * A unix connect() completes in the call, and a loopback one usually
	 * has too (the handshake runs in it): go on now, not a loop turn
	 * later.  A handshake still running takes the epoll path.
	 */
	switch (ksteer_connected(up)) {
	case 1:
		if (ksteer_sidecar_ready(ks, f, false) > 0)
			ksteer_relay(ks, f, KF_DIR(KF_OUT));
		return;
	case 0:
		return;
	default:
		ks->stats.connect_failed++;
		ksteer_end(ks, f, KEND_COUNTED);
		return;
	}
}

static void ksteer_accept_all(struct ksteer *ks)
{
	for (int i = 0; i < KSTEER_TUN_BATCH; i++) {
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		int sk = accept4(ks->stack.listener, (struct sockaddr *)&peer, &plen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (sk < 0) {
			/*
			 * Out of descriptors: the connection stays queued and the listener
			 * readable, so stop watching it until a flow ends or the tick
			 * (no busy loop).
			 */
			if (client_accept_lacks_resources(errno)) {
				ks->stats.resource_failed++;
				ks->accept_paused = true;
				ksteer_epoll(ks, EPOLL_CTL_MOD, ks->stack.listener, 0,
					     KSTEER_TAG_LISTEN);
			}
			return;
		}
		if (plen != sizeof(peer) || peer.sin_family != AF_INET) {
			ks->stats.stray_accepts++;
			ksteer_close_fd(&sk, true);
			continue;
		}
		ksteer_accepted(ks, sk, &peer);
	}
}

/*
 * The PROXY header and what the guest sent so far, up to
 * KSTEER_FIRST_BYTES, in one send(): one segment on the sidecar's
 * connection, not two, and the sidecar reads the header and the request
 * together.  What the socket does not take goes into the flow's pipe, in
 * order, for the relay.  Returns 1 when the guest's direction has more for
 * the relay now (bytes left in the pipe, a full KSTEER_FIRST_BYTES read so
 * more may wait, or EOF to pass on), 0 when it has not, or -errno (the
 * flow is then to be ended).  A short recv() emptied the socket's queue or
 * stopped at a FIN (or urgent data) behind the bytes; what remains then is
 * still on epoll's ready list, unless an edge was spent while the flow was
 * CONNECTING (out_pending, which the caller adds), and whatever arrives
 * later raises a new edge: 0 needs no splice() to find out.
 */
static int ksteer_send_header(struct ksteer *ks, struct kflow *f)
{
	uint8_t buf[PROXY_HDR_MAX + KSTEER_FIRST_BYTES];
	struct proxy_addrs a = { .src = ks->cfg.proxy_source, .sport = f->gport,
				 .dst.s_addr = f->daddr, .dport = f->dport };
	ssize_t got, sent;
	int hdr_len, ret;
	size_t len;

	hdr_len = proxy_encode(ks->cfg.version, &a, buf);
	if (hdr_len < 0)
		return hdr_len;
	len = (size_t)hdr_len;
	got = recv(f->sk, buf + len, KSTEER_FIRST_BYTES, MSG_DONTWAIT);
	if (got > 0)
		len += (size_t)got;
	else if (got == 0)
		f->eof[KF_OUT] = true;
	else if (errno != EAGAIN && errno != EINTR)
		return -errno;
	ksteer_bound_unsent(f, len);
	sent = send(f->up, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent < 0 && errno != EAGAIN && errno != EINTR)
		return -errno;
	sent = MAX(sent, 0);
	/* The guest's bytes count as relayed once the sidecar's socket took them. */
	if (sent > hdr_len)
		ks->stats.bytes_out += (uint64_t)(sent - hdr_len);
	if ((size_t)sent == len)
		return got == KSTEER_FIRST_BYTES || f->eof[KF_OUT];
	/* A fresh socket takes a few KiB; should it not, the rest waits in the (empty) pipe. */
	ret = ksteer_pipe_park(ks, f, KF_OUT, buf + sent, len - (size_t)sent);
	return ret ? ret : 1;
}

/*
 * The sidecar answered (or not): the header first, then the relay.
 * @check_error: the connect's outcome is still to be read (SO_ERROR); the
 * caller that knows it succeeded says false.  Returns -1 when the flow
 * ended (counted), else what ksteer_send_header() said: 1 when the guest's
 * direction needs the relay now, 0 when not.
 */
static int ksteer_sidecar_ready(struct ksteer *ks, struct kflow *f, bool check_error)
{
	int more;

	if (check_error && ksteer_sock_error(f->up)) {
		ks->stats.connect_failed++;
		ksteer_end(ks, f, KEND_COUNTED);
		return -1;
	}
	more = ksteer_send_header(ks, f);
	if (more < 0) {
		ks->stats.header_failed++;
		ksteer_end(ks, f, KEND_COUNTED);
		return -1;
	}
	ks->stats.opened++;
	ksteer_debug_flow(ks, f, "opened");
	f->state = KF_OPEN;
	f->deadline_us = 0;
	f->active_us = ks->now_us;
	return more;
}

/*
 * The relay.
 */

/* What ksteer_step_urgent() did. */
enum kurgent {
	KURG_NONE,                     /* not at an urgent mark: splice()'s answer stands */
	KURG_MOVED,                    /* stepped over it: bytes into the pipe, or EOF */
	KURG_WAIT,                     /* at the mark: after the pipe drains, or the byte arrives */
};

/* Whether @fd's next byte is urgent data (SIOCATMARK); -errno on failure. */
static int ksteer_at_mark(int fd)
{
	int at = 0;

	return ioctl(fd, SIOCATMARK, &at) < 0 ? -errno : !!at;
}

/*
 * splice() from a TCP socket stops at an urgent mark (tcp_read_sock()),
 * and then says EAGAIN for ever, or 0 once a FIN is queued, with bytes
 * still behind the mark: the flow would stall, or end early as if in
 * order.  Only recv() steps over it.  So, on a socket that had urgent data
 * (EPOLLPRI, sticky for the flow: other flows pay nothing), when splice()
 * moved nothing and the socket stands at the mark, recv() up to
 * KSTEER_URGENT_CHUNK bytes into the (empty) pipe: the urgent byte itself
 * is left out of the stream, as any TCP proxy without SO_OOBINLINE leaves
 * it, and the bytes around it are relayed.  Counted once the socket is
 * past the mark (the urgent byte may not have arrived yet).  The filter of
 * --seccomp allows this ioctl on the kernel path (daemon/sandbox.c).
 */
static enum kurgent ksteer_step_urgent(struct ksteer *ks, struct kflow *f, int d, int src,
				       int *err)
{
	uint8_t buf[KSTEER_URGENT_CHUNK];
	struct kpipe *p = &f->pipe[d];
	int at = ksteer_at_mark(src);
	ssize_t n;

	/* Not at a mark, or a socket that knows none (a unix leg without MSG_OOB): as splice() said. */
	if (at <= 0)
		return KURG_NONE;
	/* A write of at most PIPE_BUF bytes into an empty pipe is whole. */
	if (f->in_pipe[d])
		return KURG_WAIT;
	n = recv(src, buf, MIN(sizeof(buf), p->cap), MSG_DONTWAIT);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		*err = -errno;
		return KURG_MOVED;
	}
	if (ksteer_at_mark(src) == 0)
		ks->stats.urgent_marks++;
	if (n < 0)
		return KURG_WAIT;
	if (n == 0) {
		f->eof[d] = true;
		return KURG_MOVED;
	}
	if (write(p->wr, buf, (size_t)n) != n) {
		*err = -EIO;
		return KURG_MOVED;
	}
	f->in_pipe[d] = (size_t)n;
	return KURG_MOVED;
}

/*
 * Relay by copy: recv() up to @cap bytes from @src into @buf, send() them
 * on to @dst, and park what @dst does not take in direction @d's pipe,
 * which must be empty (ksteer_pipe_park()).  Returns the bytes read, 0 at
 * EOF, or -errno: the recv()'s (-EAGAIN: nothing to read), the send()'s,
 * or the park's (counted as resource_failed).
 */
static ssize_t ksteer_copy_through(struct ksteer *ks, struct kflow *f, int d, int src, int dst,
				   uint8_t *buf, size_t cap, uint64_t *bytes)
{
	ssize_t n, sent;
	int ret;

	n = recv(src, buf, cap, MSG_DONTWAIT);
	if (n <= 0)
		return n < 0 ? -errno : 0;
	if (d == KF_OUT)
		ksteer_bound_unsent(f, (size_t)n);
	sent = send(dst, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent < 0 && errno != EAGAIN && errno != EINTR)
		return -errno;
	sent = MAX(sent, 0);
	*bytes += (uint64_t)sent;
	f->active_us = ks->now_us;
	if (sent < n) {
		ret = ksteer_pipe_park(ks, f, d, buf + sent, (size_t)(n - sent));
		if (ret) {
			ks->stats.resource_failed++;
			return ret;
		}
	}
	return n;
}

/*
 * A small message, in two system calls where splice() takes three: recv()
 * into a buffer, send() on.  The third is the read that only says EAGAIN,
 * and a short recv() makes it unnecessary: TCP's and a unix stream's take
 * queued data until the buffer is full or the queue empty (data that
 * arrives meanwhile raises a new edge), unless they stop at an urgent
 * mark, after a FIN they consumed, or (unix) at passed descriptors.  So a
 * short read is trusted only on a direction whose socket never reported
 * its peer's FIN, and it is not made on one that reported urgent data (the
 * caller's test); a descriptor-passing sidecar on a unix leg stalls only
 * its own flow, to the idle timeout.  Only for a direction whose pipe is
 * empty and that moves small messages (!bulk): bulk stays zero-copy.  What
 * the writing socket does not take goes into an empty pipe, whole (at most
 * PIPE_BUF bytes).  Returns 0 when the direction is done for now, 1 when
 * the splice rounds are to go on (a full buffer, EOF, a FIN to read), or
 * -errno (the flow is to be reset).  Urgent data that arrives after the
 * edge that brought us here, with the recv() starting at its mark, is
 * stepped over by that recv(): the bytes relayed are those
 * ksteer_step_urgent() relays, but that mark is not counted.
 */
static int ksteer_pump_small(struct ksteer *ks, struct kflow *f, int d, int src, int dst,
			     uint64_t *bytes)
{
	uint8_t buf[KSTEER_SMALL_BYTES];
	ssize_t n;

	G_STATIC_ASSERT(KSTEER_SMALL_BYTES <= PIPE_BUF);
	n = ksteer_copy_through(ks, f, d, src, dst, buf, sizeof(buf), bytes);
	if (n == -EAGAIN || n == -EINTR)
		return 0;
	if (n < 0)
		return (int)n;
	if (n == 0) {
		f->eof[d] = true;
		return 1;
	}
	return (size_t)n == sizeof(buf) || f->rdhup[d];
}

/*
 * Bytes thin on pages.  A page a pipe or a socket's send queue references
 * is held whole, but a TCP send queue charges a spliced page only for its
 * bytes (MSG_SPLICE_PAGES), and no cgroup is charged for it.  A peer whose
 * tiny segments arrive in separate pages (a NIC's receive buffers, the
 * fragments GRO gathers) would have a send queue that its other end never
 * drains (the guest or the far end not acknowledging) hold a page per few
 * bytes, where a copy would hold what it is charged for.  A pipe takes one
 * page reference a slot, so a pipe out of slots while holding under
 * KSTEER_SPARSE_BYTES a slot, with bytes still waiting in the socket,
 * says the references are thin, and the direction is copied from then on
 * (ksteer_copy_round()).  Two places see a pipe run out of slots:
 * ksteer_judge_fill() after a short splice() into an empty pipe, and
 * ksteer_judge_full() after one into a pipe holding bytes said EAGAIN.  A
 * heuristic for a backlog of thin segments: a peer pacing them so that
 * each fill empties the socket is not caught (docs/SECURITY.md).
 */

/* Direction @d of @f is copied from now on, for KSTEER_SPARSE_RETRY bytes. */
static void ksteer_turn_sparse(struct ksteer *ks, struct kflow *f, int d)
{
	f->sparse[d] = true;
	f->copied[d] = 0;
	ks->stats.sparse_copied++;
	ksteer_debug_flow(ks, f, d == KF_OUT ? "to the sidecar: bytes thin on pages, copied"
					     : "to the guest: bytes thin on pages, copied");
}

/* Whether @src has bytes waiting (FIONREAD) while direction @d's pipe holds under KSTEER_SPARSE_BYTES a slot. */
static bool ksteer_thin_and_waiting(const struct ksteer *ks, const struct kflow *f, int d, int src)
{
	int waiting = 0;

	return f->in_pipe[d] < f->pipe[d].cap / ks->page_size * KSTEER_SPARSE_BYTES &&
	       ioctl(src, FIONREAD, &waiting) == 0 && waiting > 0;
}

/*
 * A splice() from @src filled direction @d's empty pipe short of its bytes
 * (the pipe holds them now).  It stopped at an empty socket, out of slots,
 * or at an urgent mark; with bytes waiting one more splice() tells: it
 * moves bytes when the first stopped for another reason (bytes that
 * arrived meanwhile: they are in the pipe now, and the direction stays
 * spliced), and finds the pipe full when the slots ran out.  Costs one
 * ioctl() on a fill under KSTEER_SPARSE_BYTES a slot, one splice() more on
 * a suspect one.  Returns 0, or -errno: that splice()'s error, which the
 * kernel has consumed from the socket, for the flow's reset.
 */
static int ksteer_judge_fill(struct ksteer *ks, struct kflow *f, int d, int src)
{
	struct kpipe *p = &f->pipe[d];
	int splice_errno;
	ssize_t more;

	if (!ksteer_thin_and_waiting(ks, f, d, src))
		return 0;
	more = splice(src, NULL, p->wr, NULL, p->cap - f->in_pipe[d],
		      SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	splice_errno = more < 0 ? errno : 0;
	if (more > 0) {
		f->in_pipe[d] += (size_t)more;
		return 0;
	}
	/* Stopped at an urgent mark (0 with a FIN behind it): the next round's urgent step. */
	if (f->urgent[d] && ksteer_at_mark(src) != 0)
		return 0;
	if (more == 0) {
		f->eof[d] = true;
		return 0;
	}
	if (splice_errno == EINTR)
		return 0;
	if (splice_errno != EAGAIN)
		return -splice_errno;
	ksteer_turn_sparse(ks, f, d);
	return 0;
}

/*
 * A splice() from @src into direction @d's pipe, holding bytes, said
 * EAGAIN, not at an urgent mark: the socket is empty, or the pipe is out
 * of slots.  Bytes waiting in the socket say the second.
 */
static void ksteer_judge_full(struct ksteer *ks, struct kflow *f, int d, int src)
{
	if (ksteer_thin_and_waiting(ks, f, d, src))
		ksteer_turn_sparse(ks, f, d);
}

/*
 * One round of a sparse direction, with an empty pipe: a copy of up to
 * KSTEER_COPY_BYTES through ks->copy_buf (ksteer_copy_through(); what
 * @dst does not take fits the empty pipe, which is larger).  After
 * KSTEER_SPARSE_RETRY bytes the direction is spliced again, to see whether
 * its bytes are still thin.  Returns as ksteer_copy_through().
 */
static ssize_t ksteer_copy_round(struct ksteer *ks, struct kflow *f, int d, int src, int dst,
				 uint64_t *bytes)
{
	ssize_t n;

	G_STATIC_ASSERT(KSTEER_COPY_BYTES < KSTEER_PIPE_BYTES);
	n = ksteer_copy_through(ks, f, d, src, dst, ks->copy_buf,
				MIN(sizeof(ks->copy_buf), f->pipe[d].cap), bytes);
	if (n <= 0)
		return n;
	f->copied[d] += (uint32_t)n;
	if (f->copied[d] >= KSTEER_SPARSE_RETRY)
		f->sparse[d] = false;
	return n;
}

/*
 * Move what direction @d's reading socket has through its pipe into its
 * writing socket, for up to KSTEER_PUMP_ROUNDS rounds.  Returns 0 when it
 * would block (edge-triggered epoll then tells us when to go on), 1 when
 * the rounds ran out with more to do, -errno on a socket error.
 */
static int ksteer_pump(struct ksteer *ks, struct kflow *f, int d)
{
	int src = d == KF_OUT ? f->sk : f->up, dst = d == KF_OUT ? f->up : f->sk;
	uint64_t *bytes = d == KF_OUT ? &ks->stats.bytes_out : &ks->stats.bytes_in;
	uint64_t before = *bytes;
	struct kpipe *p = &f->pipe[d];
	bool from_empty = !f->in_pipe[d];
	int ret = 1;

	if (f->shut[d])
		return 0;
	if (from_empty && !f->bulk[d] && !f->urgent[d] && !f->eof[d]) {
		ret = ksteer_pump_small(ks, f, d, src, dst, bytes);
		if (ret <= 0)
			goto out;
	}
	if (ksteer_pipe_get(ks, f, d)) {
		ks->stats.resource_failed++;
		ret = -EMFILE;
		goto out;
	}
	for (int round = 0; round < KSTEER_PUMP_ROUNDS; round++) {
		bool moved = false;
		ssize_t n;

		if (f->sparse[d] && !f->eof[d] && !f->in_pipe[d]) {
			n = ksteer_copy_round(ks, f, d, src, dst, bytes);
			if (n > 0) {
				moved = true;
			} else if (n == 0) {
				f->eof[d] = true;
				moved = true;
			} else if (n != -EAGAIN && n != -EINTR) {
				ret = (int)n;
				break;
			}
		} else if (!f->sparse[d] && !f->eof[d] && f->in_pipe[d] < p->cap) {
			enum kurgent u = KURG_NONE;
			bool was_empty = !f->in_pipe[d];
			int err = 0, splice_errno;

			n = splice(src, NULL, p->wr, NULL, p->cap - f->in_pipe[d],
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			/* The urgent step's own calls must not decide this splice's fate. */
			splice_errno = n < 0 ? errno : 0;
			if (f->urgent[d] && (n == 0 || splice_errno == EAGAIN))
				u = ksteer_step_urgent(ks, f, d, src, &err);
			if (err) {
				ret = err;
				break;
			}
			if (u == KURG_MOVED) {
				moved = true;
			} else if (u == KURG_WAIT) {
				/* Not EOF: the pipe drains below, the next round steps over the mark. */
			} else if (n > 0) {
				f->in_pipe[d] += (size_t)n;
				moved = true;
				err = was_empty ? ksteer_judge_fill(ks, f, d, src) : 0;
				if (err) {
					ret = err;
					break;
				}
			} else if (n == 0) {
				f->eof[d] = true;
				moved = true;
			} else if (splice_errno != EAGAIN && splice_errno != EINTR) {
				ret = -splice_errno;
				break;
			} else if (splice_errno == EAGAIN && !was_empty) {
				ksteer_judge_full(ks, f, d, src);
			}
		}
		if (f->in_pipe[d]) {
			if (d == KF_OUT)
				ksteer_bound_unsent(f, f->in_pipe[d]);
			n = splice(p->rd, NULL, dst, NULL, f->in_pipe[d],
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				f->in_pipe[d] -= (size_t)n;
				*bytes += (uint64_t)n;
				f->active_us = ks->now_us;
				moved = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				ret = -errno;
				break;
			}
		}
		if (f->eof[d] && !f->in_pipe[d] && !f->shut[d]) {
			/*
			 * The other direction done too, the flow ends right after
			 * this (ksteer_relay()): the close() sends the FIN, as
			 * dst's own receive side has read to its EOF.
			 */
			if (!f->shut[!d] && shutdown(dst, SHUT_WR) < 0 && errno != ENOTCONN) {
				ret = -errno;
				break;
			}
			f->shut[d] = true;
			ks->tun_behind |= d == KF_IN; /* the stack's FIN */
		}
		if (!moved) {
			ret = 0;
			break;
		}
	}
out:
	/*
	 * Any turn that moves KSTEER_SMALL_BYTES or more says bulk; only one
	 * that began with an empty pipe and moved less says the traffic turned
	 * small (one that drained a backlog, the writing socket full, ends a
	 * bulk burst with its short tail; one that moved nothing says nothing).
	 */
	if (*bytes - before >= KSTEER_SMALL_BYTES)
		f->bulk[d] = true;
	else if (from_empty && *bytes != before)
		f->bulk[d] = false;
	/* Bytes into an accepted socket: the private stack sends them on the tun in the call. */
	if (d == KF_IN && *bytes != before)
		ks->tun_behind = true;
	ks->round_bulk |= f->bulk[d];
	if (!f->in_pipe[d])
		ksteer_pipe_put(ks, f, d);
	return ret;
}

static void ksteer_queue_again(struct ksteer *ks, struct kflow *f);

/*
 * Relay the directions in @dirs (KF_DIR() bits); end the flow when both
 * are done or one failed, queue it for another turn when one ran out of
 * rounds (that turn takes both).
 */
static void ksteer_relay(struct ksteer *ks, struct kflow *f, unsigned int dirs)
{
	bool again = false;

	for (int d = KF_OUT; d <= KF_IN; d++) {
		int r;

		if (!(dirs & KF_DIR(d)))
			continue;
		r = ksteer_pump(ks, f, d);
		if (r < 0) {
			ksteer_end(ks, f, KEND_RESET);
			return;
		}
		again |= r > 0;
	}
	if (f->shut[KF_OUT] && f->shut[KF_IN]) {
		ksteer_end(ks, f, KEND_CLOSED);
		return;
	}
	if (again)
		ksteer_queue_again(ks, f);
}

/*
 * The directions an event on the socket read by direction @d concerns:
 * @d, when the socket has bytes, EOF or an error; the other, which writes
 * to it, when it became writable while that direction's pipe holds bytes
 * (then the pipe waits for it), or on an error.  An edge reports the
 * socket's whole state, so EPOLLOUT alone on a socket nothing waits for,
 * the common case, costs no splice(): each would only say EAGAIN.
 */
static unsigned int ksteer_event_dirs(const struct kflow *f, int d, uint32_t events)
{
	unsigned int dirs = 0;

	if (events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		dirs |= KF_DIR(d);
	if ((events & (EPOLLHUP | EPOLLERR)) || ((events & EPOLLOUT) && f->in_pipe[!d]))
		dirs |= KF_DIR(!d);
	return dirs;
}

static gboolean ksteer_again_run(void *opaque)
{
	struct ksteer *ks = opaque;
	uint32_t n = ks->nagain;

	ks->again_idle = 0;
	ks->nagain = 0;
	ks->now_us = g_get_monotonic_time();
	/* Flows re-queued now go to the back: only the first n are this turn's. */
	for (uint32_t i = 0; i < n; i++) {
		struct kflow *f = &ks->flows[ks->again[i]];

		f->queued = false;
		if (f->state == KF_OPEN)
			ksteer_relay(ks, f, KF_BOTH);
	}
	return G_SOURCE_REMOVE;
}

/*
 * Queue @f's slot for a relay turn from the idle source.  A slot is in the
 * queue at most once (its queued flag outlives the flow that set it, see
 * ksteer_take_slot()), so the queue never holds more than the table.
 */
static void ksteer_queue_again(struct ksteer *ks, struct kflow *f)
{
	if (f->queued)
		return;
	g_assert(ks->nagain < ks->nslots);
	f->queued = true;
	ks->again[ks->nagain++] = (uint32_t)(f - ks->flows);
	if (!ks->again_idle)
		ks->again_idle = g_idle_add(ksteer_again_run, ks);
}

/* An event on a flow's socket; @tag's low bit is the direction that reads it. */
static void ksteer_sock_event(struct ksteer *ks, uint64_t tag, uint32_t events)
{
	uint64_t slot = tag >> 1;
	int d = (int)(tag & 1), more;
	struct kflow *f;

	if (slot >= ks->nslots)
		return;
	f = &ks->flows[slot];
	/* A direct flow's destination may send and close before the guest's handshake is accepted. */
	if (f->state != KF_FREE && f->state != KF_CLOSED) {
		f->urgent[d] |= !!(events & EPOLLPRI);
		f->rdhup[d] |= !!(events & (EPOLLRDHUP | EPOLLHUP));
	}
	switch (f->state) {
	case KF_DIAL:
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			ksteer_dial_answered(ks, f);
		return;
	case KF_SYN:
		/* A direct flow's destination, before the guest's handshake is accepted. */
		if ((events & EPOLLERR) && ksteer_sock_error(f->up))
			ksteer_end(ks, f, KEND_RESET);
		return;
	case KF_CONNECTING:
		/*
		 * Until the sidecar answers, the guest's bytes wait in the private
		 * stack; the edge that said so is spent, so remember it: a FIN or a
		 * reset behind the bytes the header takes is found by the relay.
		 */
		if (d != KF_IN) {
			f->out_pending = true;
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		more = ksteer_sidecar_ready(ks, f, true);
		if (more < 0)
			return;
		/* This edge is spent too: the sidecar's first bytes, if it sent any, are read now. */
		ksteer_relay(ks, f, ksteer_event_dirs(f, d, events) |
					    (more || f->out_pending ? KF_DIR(KF_OUT) : 0));
		return;
	case KF_OPEN:
		/* A reset or error on either side ends the flow, whether or not a direction still reads it. */
		if ((events & EPOLLERR) && ksteer_sock_error(d == KF_OUT ? f->sk : f->up)) {
			ksteer_end(ks, f, KEND_RESET);
			return;
		}
		ksteer_relay(ks, f, ksteer_event_dirs(f, d, events));
		return;
	default:
		return;
	}
}

/*
 * Handle what epoll reports, and ask again while a round returned events,
 * at most @rounds rounds: a relay's splice() into the private stack readies
 * the tun, a tun write readies a socket, within the round ("Turnaround"
 * in ksteer.h).  Without @tun the tun's frames are left for the next
 * dispatch: the tun is level-triggered, so epoll reports it again then.
 *
 * A round whose relay wrote into, shut or closed an accepted socket
 * reads the tun at its end, without asking epoll: the stack sends what
 * its windows allow within the send(), splice(), shutdown() or close()
 * (the tun orphans what it queues, so nothing waits for a completion),
 * so in request/response the reply is there.  Where a window or Nagle
 * held the bytes back, that read finds nothing, one call more than
 * before, and epoll reports the frames when they come.
 *
 * A round that read the tun, had at most one event besides the tun's (a
 * socket's or the listener's), left no direction marked bulk, and whose
 * last read left the tun empty after at most one frame (a reply, an ACK,
 * a handshake's or a close's segment) ends the dispatch: asking again
 * would only be told there is nothing, one system call per reply in
 * request/response traffic.  Nothing is lost if something did come, or
 * was made after that read (a window update a recv() sent, the reset of
 * a stray accept's close): the tun is level-triggered and a socket's edge
 * stays queued, so the epoll fd stays readable and the main loop's next
 * turn takes it.  A round that took more frames, had more events or
 * moved bulk is bulk traffic, where the sidecar or the guest has most
 * often sent more from another CPU meanwhile: it asks again, which costs
 * less than a turn of the main loop.
 */
static void ksteer_poll(struct ksteer *ks, int rounds, bool tun)
{
	struct epoll_event evs[64];
	int n;

	ks->now_us = g_get_monotonic_time();
	ks->stack_fed = false;
	for (int round = 0; round < rounds; round++) {
		int frames = -1; /* ksteer_read_tun()'s answer, if the round read the tun */
		int others;      /* events other than the tun's */

		n = epoll_wait(ks->epfd, evs, G_N_ELEMENTS(evs), 0);
		if (n <= 0)
			break;
		others = n;
		ks->round_bulk = false;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == KSTEER_TAG_TUN) {
				others--;
				if (tun)
					frames = ksteer_read_tun(ks);
			} else if (evs[i].data.u64 == KSTEER_TAG_LISTEN) {
				ksteer_accept_all(ks);
			} else {
				ksteer_sock_event(ks, evs[i].data.u64, evs[i].events);
			}
		}
		/* What the relay wrote into the stack is on the tun now: see above. */
		if (tun && ks->tun_behind)
			frames = ksteer_read_tun(ks);
		/* At most one other event, no bulk, the tun's last read emptied it after <= 1 frame. */
		if (others <= 1 && !ks->round_bulk && (frames == 0 || frames == 1))
			break;
	}
}

static gboolean ksteer_dispatch(int fd, GIOCondition ready, void *opaque)
{
	(void)fd;
	(void)ready;
	ksteer_poll(opaque, KSTEER_DISPATCH_ROUNDS, true);
	return G_SOURCE_CONTINUE;
}

/*
 * One round, the tun left alone: what the guest's segments readied are the
 * accepted sockets (bytes for the sidecar) and the listener.  The stack's
 * answers on the tun are ACKs and window updates for the guest, which wait
 * for the next dispatch and go out together, one notification for many.
 */
void ksteer_guest_batch_done(struct ksteer *ks)
{
	if (ks->stack_fed)
		ksteer_poll(ks, 1, false);
}

/*
 * Once a second: flows whose handshake or sidecar did not answer within
 * the connect timeout, and open flows idle for --tcp-idle-timeout, end with
 * resets.  A walk of the table, bounded by its size (max 65534 slots).
 */
static gboolean ksteer_tick(void *opaque)
{
	struct ksteer *ks = opaque;
	int64_t now = g_get_monotonic_time();

	/*
	 * Descriptors may have come back without a flow of ours ending (the
	 * shortage was libslirp's flows', or another table's): try the
	 * listener again, once a second at most.
	 */
	if (ks->accept_paused) {
		ks->accept_paused = false;
		ksteer_epoll(ks, EPOLL_CTL_MOD, ks->stack.listener, EPOLLIN, KSTEER_TAG_LISTEN);
	}
	for (uint32_t i = 0; i < ks->nslots && ks->active; i++) {
		struct kflow *f = &ks->flows[i];

		if (f->state == KF_DIAL && f->deadline_us <= now) {
			ksteer_dial_refuse(ks, f);
			ksteer_end(ks, f, KEND_TIMEOUT);
		} else if ((f->state == KF_SYN || f->state == KF_CONNECTING) && f->deadline_us <= now) {
			ksteer_end(ks, f, KEND_TIMEOUT);
		}
		else if (f->state == KF_OPEN && ks->cfg.tcp_idle_us &&
			 now - f->active_us >= ks->cfg.tcp_idle_us)
			ksteer_end(ks, f, KEND_IDLE);
	}
	return G_SOURCE_CONTINUE;
}

void ksteer_set_throttle(struct ksteer *ks, bool throttled)
{
	if (ks->throttled == throttled)
		return;
	ks->throttled = throttled;
	ksteer_epoll(ks, EPOLL_CTL_MOD, ks->stack.tun, throttled ? 0 : EPOLLIN, KSTEER_TAG_TUN);
}

const struct ksteer_stats *ksteer_stats(const struct ksteer *ks)
{
	return &ks->stats;
}

size_t ksteer_active(const struct ksteer *ks)
{
	return ks->active;
}

size_t ksteer_active_direct(const struct ksteer *ks)
{
	return ks->active_direct;
}

void ksteer_foreach_flow(const struct ksteer *ks,
			 void (*fn)(const struct ksteer_flow_info *info, void *opaque),
			 void *opaque)
{
	static const char *const states[] = {
		[KF_DIAL] = "dialing", [KF_SYN] = "syn", [KF_CONNECTING] = "connecting",
		[KF_OPEN] = "open",
		[KF_CLOSED] = "closed",
	};
	int64_t now = g_get_monotonic_time();
	GHashTableIter it;
	gpointer value;

	/* The tuple table holds the flows in use and closed ones not yet reused (or met past their grace). */
	g_hash_table_iter_init(&it, ks->by_key);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		const struct kflow *f = value;
		struct ksteer_flow_info info;

		if (f->state == KF_FREE || (f->state == KF_CLOSED && !ksteer_in_grace(f, now)))
			continue;
		info = (struct ksteer_flow_info){
			.state = states[f->state],
			.direct = f->direct,
			.guest_addr = ks->cfg.guest.s_addr, .guest_port = f->gport,
			.remote_addr = f->daddr, .remote_port = f->dport,
			.stack_addr = knat_pool_addr((uint32_t)(f - ks->flows)),
		};
		fn(&info, opaque);
	}
}

int ksteer_new(const struct ksteer_config *cfg, struct ksteer **out, const char **why)
{
	static bool key_seeded;        /* the daemon's one thread; the key never changes once set */
	g_autofree struct ksteer *ks = NULL;
	int ret;

	if (!key_seeded) {
		if (RAND_bytes((unsigned char *)&ksteer_hash_key, sizeof(ksteer_hash_key)) != 1) {
			*why = "seed the flow hash (RAND_bytes)";
			return -EIO;
		}
		key_seeded = true;
	}
	ks = g_new0(struct ksteer, 1);
	ks->cfg = *cfg;
	ks->page_size = (size_t)sysconf(_SC_PAGESIZE);
	ks->debug_rl = (struct ratelimit)RATELIMIT_INIT(100);
	ks->nslots = (uint32_t)MIN(cfg->max_flows, (size_t)KNAT_POOL_SLOTS);
	if (!ks->nslots) {
		*why = "size the flow table";
		return -EINVAL;
	}
	ret = kstack_open(&ks->stack, why);
	if (ret)
		return ret;
	/*
	 * The private stack's connections send to the guest through the tun, a
	 * copy into the guest's memory with no link to protect: unpaced, as the
	 * sidecar leg (common/tcpcc.h).  Sockets accept() returns start with
	 * their listener's congestion control when it was set on the listener.
	 */
	(void)tcpcc_set_unpaced(ks->stack.listener);
	ksteer_bound_private_sndbuf(ks->stack.listener);
	ks->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ks->epfd < 0) {
		ret = -errno;
		*why = "create an epoll set";
		kstack_close(&ks->stack);
		return ret;
	}
	ks->flows = g_new(struct kflow, ks->nslots);
	ks->fifo = g_new(uint32_t, ks->nslots);
	ks->again = g_new(uint32_t, ks->nslots);
	for (uint32_t i = 0; i < ks->nslots; i++) {
		ks->flows[i] = (struct kflow){ .state = KF_FREE, .sk = -1, .up = -1, .dial = -1,
					       .pipe = { KPIPE_NONE, KPIPE_NONE } };
		ks->fifo[i] = i;
	}
	ks->fifo_len = ks->nslots;
	ks->by_key = g_hash_table_new(ksteer_hash, ksteer_equal);
	ks->rxbuf = g_malloc(KSTEER_RX_MAX);
	ks->dials = g_new(struct kdial, KSTEER_DIAL_MAX);
	ks->dial_free = g_new(uint16_t, KSTEER_DIAL_MAX);
	for (unsigned int i = 0; i < KSTEER_DIAL_MAX; i++)
		ks->dial_free[ks->ndial_free++] = (uint16_t)(KSTEER_DIAL_MAX - 1 - i);
	ksteer_epoll(ks, EPOLL_CTL_ADD, ks->stack.tun, EPOLLIN, KSTEER_TAG_TUN);
	ksteer_epoll(ks, EPOLL_CTL_ADD, ks->stack.listener, EPOLLIN, KSTEER_TAG_LISTEN);
	ks->src = fdsource_new(ks->epfd, G_IO_IN, ksteer_dispatch, ks);
	ks->tick = g_timeout_add_seconds(1, ksteer_tick, ks);
	*out = g_steal_pointer(&ks);
	return 0;
}

void ksteer_free(struct ksteer *ks)
{
	if (!ks)
		return;
	fdsource_clear(&ks->src);
	if (ks->tick)
		g_source_remove(ks->tick);
	if (ks->again_idle)
		g_source_remove(ks->again_idle);
	for (uint32_t i = 0; i < ks->nslots; i++)
		ksteer_end(ks, &ks->flows[i], KEND_COUNTED);
	while (ks->npool--) {
		close(ks->pool[ks->npool].rd);
		close(ks->pool[ks->npool].wr);
	}
	close(ks->epfd);
	kstack_close(&ks->stack);
	g_hash_table_destroy(ks->by_key);
	g_free(ks->flows);
	g_free(ks->fifo);
	g_free(ks->again);
	g_free(ks->rxbuf);
	g_free(ks->dials);
	g_free(ks->dial_free);
	g_free(ks);
}
