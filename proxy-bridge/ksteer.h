/* ksteer.h - the guest's TCP terminated by the kernel in a private namespace, spliced to the sidecar or its destination. */
#ifndef MESHSLIRP_PB_KSTEER_H
#define MESHSLIRP_PB_KSTEER_H

/*
 * Theory of operation (--steer-stack kernel)
 *
 * Why.  Through libslirp a steered flow has at most 64 KiB in flight (no
 * window scaling), every byte is checksummed in software and copied twice
 * in user space, and every connection moves two 128 KiB buffers in memory
 * (docs/PERFORMANCE.md).  The kernel's TCP has none of these limits.  So a
 * steered guest SYN is taken before libslirp sees it and handed, translated
 * (knat.h), to the kernel's stack in a namespace of our own (kstack.h); the
 * connection it accepts there is joined to a new connection to the sidecar,
 * after a PROXY header naming the original destination, and the bytes move
 * between the two sockets with splice(): page references, no copy through
 * user space.  A flow the policy does not steer (cfg->route() says DIRECT)
 * goes the same way to its own destination, with no header, but connected
 * there before its SYN reaches the private stack (DIAL below), so the
 * guest's handshake completes only with a destination that accepted and a
 * refusal reaches it as a reset, as through libslirp; without a sidecar
 * (no --outbound-proxy) every flow is such a one.  DHCP, DNS, UDP, ICMP
 * and inbound flows stay with libslirp, and so does a flow this path has
 * no room for.  --log-level debug gives a line per flow opened and ended
 * (rate-limited).
 *
 * Guest frames: ksteer_guest_frame() sees each one before the rest of the
 * daemon, with its virtio-net metadata (a 64 KiB segment with a partial
 * checksum crosses the tun as it came).  It takes a frame only when it is
 * TCP from the guest's address and belongs to one of its flows, or is the
 * SYN of a new flow the bridge would steer or let go direct outside the
 * guest network (cfg->route: the egress rule and the policy, as for
 * libslirp's flows).  Everything else is left to the netstack, untouched.
 *
 * Frames from the private stack (the tun, read in batches of
 * KSTEER_TUN_BATCH) belong to the flow their destination address names;
 * they are translated back, given an Ethernet header and the metadata the
 * guest takes, and go to the backend.  A frame of no flow is dropped and
 * counted: the private stack can only answer, never reach, the guest.
 *
 * Flow state machine (one slot per flow; the slot is the private source
 * address, so a packet finds its flow without a lookup):
 *
 *   state       event                        next        action
 *   FREE        guest SYN, judged steered    SYN         SYN to the private stack
 *   FREE        guest SYN, judged direct     DIAL        connect() to its destination; the
 *                                                        SYN parked, translated
 *   DIAL        destination connected        SYN         the parked SYN to the private stack
 *   DIAL        refused, unreachable, or     CLOSED      reset to the guest, as from the
 *               connect timeout                          destination (its ISN + 1 acked)
 *   DIAL        guest SYN again; guest RST   DIAL;       dropped; ended
 *                                            CLOSED
 *   SYN         accept() of a direct flow    OPEN        relay both ways, no header
 *   SYN         accept() of this slot        CONNECTING  socket to the sidecar, connect()
 *   SYN         connect timeout              CLOSED      (the stack's half-open one lives on
 *                                                        through its SYN|ACK retries)
 *   CONNECTING  sidecar connected            OPEN        PROXY header with the guest's
 *                                                        first bytes; relay what waits
 *   CONNECTING  refused, or timeout          CLOSED      guest's socket closed with RST
 *   OPEN        EOF relayed both ways        CLOSED      both sockets closed
 *   OPEN        error or reset on either     CLOSED      the other closed with RST
 *   OPEN        idle for --tcp-idle-timeout  CLOSED      both closed with RST
 *   CLOSED      KSTEER_GRACE_US passed       (FREE)      late segments no longer translated: the
 *                                                        guest's go to the bridge, the stack's
 *                                                        are dropped; the slot waits in the FIFO
 *   CLOSED      a new flow from another      SYN         the slot reclaimed (no freed slot
 *               guest port, no slot past                 past its grace): its late
 *               its grace                                segments find no flow of ours
 *   CLOSED      guest SYN on its tuple       -           a new flow in another slot, or,
 *                                                        with none, libslirp's: the old
 *                                                        one leaves the tuple table
 *
 * Slots are reused in the order they were freed (a FIFO), never for the
 * guest port their last flow had (the first KSTEER_SLOT_SCAN are looked
 * at): inside the private stack a connection is only (the slot's address,
 * the guest port), and the old one may linger there (LAST_ACK, a SYN|ACK
 * retried for a handshake never accepted, TIME_WAIT where the namespace
 * keeps it).  Within the grace a slot is reused only when no other is past
 * it (reclaimed, counted): the old flow's late segments then find no flow
 * of ours (the guest's get the bridge's reset, bridge_tcp_no_flow();
 * the private stack's are dropped: the slot's new flow has another guest
 * port).  So a burst of short connections stays on this path however fast
 * they come, as on libslirp's (which reclaims its closed flows the same
 * way).  A SYN finding every slot in use, or only its own port's in their
 * grace, is left to libslirp (counted, table_full), and so is what follows
 * it on that tuple.
 *
 * Relay and backpressure: each direction has a pipe of its own; splice()
 * moves what the reading socket has into the pipe and what the pipe holds
 * into the writing socket, until either would block.  A direction that
 * moves small messages (requests and replies: its last turn that began
 * with an empty pipe moved under KSTEER_SMALL_BYTES) is first read with
 * recv() into a buffer and sent on: two system calls a message where
 * splice() takes three, as a short recv() emptied the socket
 * (ksteer_pump_small() says when that holds); any turn that moves
 * KSTEER_SMALL_BYTES or more puts the direction back on splice(),
 * zero-copy.  Zero-copy has a limit: a send queue charges spliced pages
 * only for the bytes in them, and no cgroup for the page, so a peer whose
 * tiny segments arrive in pages of their own could have a queue its own
 * side never drains pin a page for a few bytes.  A direction whose pipe
 * runs out of slots holding under KSTEER_SPARSE_BYTES a page reference,
 * with bytes still waiting, is copied instead (recv() and send(),
 * KSTEER_COPY_BYTES a round) for KSTEER_SPARSE_RETRY bytes, then spliced
 * again to see (ksteer_judge_fill(), ksteer_judge_full(), counted as
 * sparse_copied).  A heuristic for a backlog of thin segments: a peer
 * that paces them so that each fill empties the socket is not caught.
 * In a copied direction an urgent byte is stepped over by recv() and not
 * counted.  Sockets are in one
 * epoll set, edge-triggered; an event relays only the directions it
 * concerns (ksteer_event_dirs(): the one reading that socket, and the one
 * writing to it only when its pipe waits for room), so a message costs no
 * splice() that can only say EAGAIN; a busy flow is given
 * KSTEER_PUMP_ROUNDS rounds per turn and then waits its next turn, both
 * ways, behind the others.  An edge spent while the flow was CONNECTING
 * (the guest's bytes, a FIN behind them) is remembered and relayed once it
 * is OPEN.  A
 * socket that will not take more leaves its pipe full, and the reading
 * socket unread, so the kernel's windows carry the backpressure to the
 * guest and the sidecar.  Neither TCP leg paces (common/tcpcc.h): the
 * socket to the sidecar and the private stack's listener, whose accepted
 * sockets inherit it, ask for an unpaced congestion control, whatever the
 * node's default.  The private stack's sockets have a fixed send buffer
 * (KSTEER_PRIVATE_SNDBUF, from their listener) that bounds what they keep
 * in flight towards the guest: the tun takes whatever is sent and holds
 * no socket back, so an autotuned buffer only queued up to 4 MiB a flow
 * in front of the guest (where the bound cannot be had whole, autotuning
 * stays).  A TCP socket to the sidecar holds at most
 * KSTEER_SIDECAR_NOTSENT_LOWAT bytes not yet sent (TCP_NOTSENT_LOWAT, set
 * once it could have been given that many: a flow that stays shorter
 * never needs it), the rest waits in the pipe: the daemon does its own
 * sending, not the sidecar's recv() when its ACK opens the window.  EOF
 * is passed on as shutdown(SHUT_WR) once the pipe drained (the second
 * direction's by the close() that ends the flow: one system call less);
 * an error or reset on either socket (EPOLLERR with SO_ERROR set, or a splice(), recv(), send() or
 * pipe write() that fails) closes the
 * other side with a reset, whether or not a direction still reads it.
 * When the backend is congested the tun is not read (ksteer_set_throttle()).
 *
 * Turnaround: writing a guest segment to the tun runs the private stack's
 * receive in that write(), and splicing into a socket runs its transmit in
 * that splice(), so what they make ready (the accepted socket's bytes, the
 * stack's answer on the tun) is ready when the call returns.  Both are
 * taken in the same turn, not the main loop's next one: the backend calls
 * ksteer_guest_batch_done() after each batch of guest frames, which
 * relays the sockets (the stack's ACKs for the guest wait on the tun for
 * the next dispatch, to go out together), and a dispatch asks epoll
 * again, up to KSTEER_DISPATCH_ROUNDS times, while its last round
 * returned events, so what the sidecar sent meanwhile is relayed in the
 * same turn.  A dispatch round whose relay wrote into (or shut, or
 * closed) an accepted socket reads the tun at its end without asking
 * epoll: the stack's answer is there when the call returns, unless a
 * window or Nagle holds it back.  A round with at most one event besides
 * the tun's, no direction marked bulk, and a last tun read that emptied
 * it after at most one frame (request/response) is the last.
 *
 * Semantics that differ from libslirp's path: the guest's handshake
 * completes before the sidecar is connected (as with masquerade's
 * iptables redirect to Envoy); a sidecar that refuses then resets the
 * guest's established connection.  The private stack runs with the
 * kernel's defaults (window scaling, SACK, timestamps, its own
 * retransmission), so the guest sees a modern TCP peer.
 *
 * Limits: at most min(--max-flows, KNAT_POOL_SLOTS) flows; each holds two
 * sockets, plus a pipe per direction only while bytes wait in it (empty
 * pipes go back to a pool of KSTEER_PIPE_POOL).  At most KSTEER_DIAL_MAX
 * direct flows wait for their destination at once, each SYN parked in a
 * fixed place of KNAT_SYN_MAX bytes (a longer one, or one past the bound,
 * is libslirp's, counted; so is one whose connect() fails in the call,
 * which libslirp then answers as it always has).  The connect timeout
 * bounds SYN and CONNECTING (a direct flow's DIAL, then its SYN, each),
 * --tcp-idle-timeout OPEN.  Out of descriptors,
 * the listener is left unread (its backlog, then the private stack's SYN
 * cookies, hold the guest) until a flow ends.  Nothing is allocated per
 * packet or per flow on this path beyond the kernel's sockets and pipes.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "backend/backend.h"
#include "proxy-bridge/proxy_proto.h"

#define KSTEER_TUN_BATCH 64
#define KSTEER_PUMP_ROUNDS 16
#define KSTEER_DISPATCH_ROUNDS 4       /* epoll rounds per dispatch ("Turnaround") */
#define KSTEER_GRACE_US (10 * 1000000LL)
#define KSTEER_SLOT_SCAN 8              /* freed slots looked at for one of another guest port */
#ifndef KSTEER_PIPE_BYTES
#define KSTEER_PIPE_BYTES (256 << 10)  /* a pipe's size: the most one splice() moves */
#endif
#define KSTEER_PIPE_POOL 16            /* empty pipes kept for the next flow that needs one */
#define KSTEER_FIRST_BYTES 4096        /* the guest's first bytes sent with the PROXY header */
#define KSTEER_URGENT_CHUNK 4096       /* bytes recv() takes past an urgent mark (<= PIPE_BUF) */
#define KSTEER_SMALL_BYTES 4096        /* below: a message relayed by recv() and send(), not splice() */
#define KSTEER_SPARSE_BYTES 512        /* a pipe filled with fewer a page reference: copy (ksteer.c) */
#define KSTEER_COPY_BYTES (64 << 10)   /* what a sparse direction copies a round */
#define KSTEER_SPARSE_RETRY (4 << 20)  /* ... and in all, before splice() is tried again */
#define KSTEER_SIDECAR_NOTSENT_LOWAT (64 * 1024) /* unsent bytes a sidecar socket may hold */
#ifndef KSTEER_PRIVATE_SNDBUF
#define KSTEER_PRIVATE_SNDBUF (512 * 1024) /* SO_SNDBUF of the private stack's sockets (the
					     * kernel doubles it): their bytes in flight and
					     * unsent towards the guest */
#endif
_Static_assert(KSTEER_PRIVATE_SNDBUF > 0 && KSTEER_PRIVATE_SNDBUF <= (1 << 29),
	       "KSTEER_PRIVATE_SNDBUF: a positive int the kernel can double");
#define KSTEER_DIAL_MAX 256            /* direct flows waiting for their destination at once */

/* Why a frame on this path was dropped. */
enum ksteer_drop {
	KSTEER_DROP_BAD_META,          /* guest metadata that does not describe the segment */
	KSTEER_DROP_TUN_WRITE,         /* the private stack refused the segment */
	KSTEER_DROP_NO_FLOW,           /* from the private stack, for no flow of ours */
	KSTEER_DROP_NOT_TCP,           /* from the private stack, no IPv4 TCP segment */
	KSTEER_DROP_OFFLOAD,           /* from the private stack, with offloads the guest does not take */
	KSTEER_DROP_GUEST_TX,          /* the backend refused it (no guest, queue full) */
	KSTEER_DROP_GUEST_MEMORY,      /* its tail's guest memory could not be read (EFAULT) */
	KSTEER_DROP_COUNT,
};

/*
 * Direct flows (KSTEER_ROUTE_DIRECT): the flows and their events, counted
 * apart from the steered ones (flows, opened, connect_failed, timeouts,
 * closed, aborted, idle_resets, table_full below never see them).  What
 * the path does alike for both is counted for both: accepted,
 * stray_accepts, reclaimed, resource_failed, bytes, urgent marks, frames
 * and drops.
 */
struct ksteer_direct_stats {
	uint64_t flows;                /* guest SYNs dialled: a connect() to their destination began */
	uint64_t connected;            /* the destination accepted; the guest's handshake then did */
	uint64_t refused;              /* the destination refused or was unreachable: guest reset */
	uint64_t timeouts;             /* no answer from the destination, or no guest handshake,
					* within the connect timeout */
	uint64_t closed;               /* ended in order */
	uint64_t aborted;              /* ended with a reset */
	uint64_t idle_resets;          /* --tcp-idle-timeout */
	uint64_t dial_full;            /* SYNs left to libslirp: KSTEER_DIAL_MAX dialling, no slot,
					* or a SYN too long to park */
	uint64_t failed_at_once;       /* SYNs left to libslirp: socket() or connect() failed in the call */
};

struct ksteer_stats {
	uint64_t flows;                /* guest SYNs that opened a steered flow here */
	uint64_t table_full;           /* steered SYNs left to libslirp: every slot in use */
	uint64_t reclaimed;            /* new flows that took a closed flow's slot within its grace */
	uint64_t accepted;             /* handshakes the private stack completed */
	uint64_t stray_accepts;        /* accepted for no flow in SYN (closed with a reset) */
	uint64_t opened;               /* sidecar connected, header written */
	uint64_t connect_failed;       /* sidecar refused or unreachable */
	uint64_t timeouts;             /* SYN or CONNECTING past the connect timeout */
	uint64_t idle_resets;          /* OPEN, no byte moved for --tcp-idle-timeout */
	uint64_t header_failed;        /* connected, but the header could not be written */
	uint64_t closed;               /* ended in order, EOF both ways */
	uint64_t aborted;              /* ended with a reset */
	uint64_t resource_failed;      /* no socket or pipe for an accepted flow (EMFILE and the like) */
	uint64_t bytes_out;            /* guest to sidecar (or a direct flow's destination) */
	uint64_t bytes_in;             /* sidecar (or destination) to guest */
	uint64_t urgent_marks;         /* urgent (out-of-band) bytes stepped over, either way */
	uint64_t sparse_copied;        /* directions turned to copying: their bytes were thin on pages */
	uint64_t frames_to_stack;      /* guest frames written to the private stack */
	uint64_t frames_to_guest;      /* frames from it, sent to the guest */
	uint64_t dropped[KSTEER_DROP_COUNT];
	struct ksteer_direct_stats direct;
};

/* Where a new guest flow goes: cfg->route()'s answer. */
enum ksteer_route {
	KSTEER_ROUTE_NONE,             /* not this path's: libslirp's (the bridge judges it) */
	KSTEER_ROUTE_SIDECAR,          /* steered: to the sidecar, with a PROXY header */
	KSTEER_ROUTE_DIRECT,           /* to its own destination, connected before the handshake */
};

struct ksteer_config {
	struct in_addr guest;          /* the guest's address: only its frames are taken */
	struct in_addr proxy_addr;     /* the sidecar (TCP), unless proxy_unix_path */
	uint16_t proxy_port;           /* host order */
	const char *proxy_unix_path;   /* borrowed; NULL: TCP */
	enum proxy_version version;
	struct in_addr proxy_source;   /* the header's source address */
	size_t max_flows;
	int64_t connect_timeout_us;
	int64_t tcp_idle_us;           /* no byte either way for this long: reset both; 0: never */
	/* Which path the guest's SYN from @sport to @daddr:@dport (network order) takes. */
	enum ksteer_route (*route)(uint32_t daddr, uint16_t sport, uint16_t dport, void *opaque);
	/* A frame for the guest (copied by the callee); 0 or -errno. */
	int (*tx)(const uint8_t *frame, size_t len, const struct frame_meta *meta, void *opaque);
	void (*tx_flush)(void *opaque);
	/* What the guest takes now (BACKEND_OFFLOAD_*); a front-end may renegotiate. */
	uint32_t (*tx_offloads)(void *opaque);
	void *opaque;
};

struct ksteer;

/**
 * ksteer_new() - make the private stack (kstack_open()) and start serving it
 * @why:	on failure, set to a static string naming what failed
 *
 * Return: 0 or -errno.
 */
int ksteer_new(const struct ksteer_config *cfg, struct ksteer **out, const char **why);

/* ksteer_free() - close every flow (with resets) and the private stack; NULL is a no-op. */
void ksteer_free(struct ksteer *ks);

/**
 * ksteer_guest_frame() - offer a guest frame to the kernel path
 * @frame, @len:	the Ethernet frame, rewritten in place when taken
 * @meta:		its virtio-net metadata, or NULL for a plain frame
 *
 * Return: true when taken (sent on, or dropped and counted); false when it
 * is not this path's, unchanged.
 */
bool ksteer_guest_frame(struct ksteer *ks, uint8_t *frame, size_t len,
			const struct frame_meta *meta);

/**
 * ksteer_guest_frame_tail() - offer a large guest frame whose payload is still in guest memory
 * @frame:	its first FRAME_TAIL_HEAD bytes (backend.h), rewritten in place when taken
 * @tail:	the rest, written to the private stack as it is, never read here
 * @meta:	its virtio-net metadata, or NULL for a plain frame
 *
 * Only a segment of a flow this path already holds is taken so, and only
 * when its headers lie in @frame: a new flow's SYN has its checksums
 * checked, which reads the payload, so it comes whole (ksteer_guest_frame()).
 *
 * Return: 1 when taken (sent on, or dropped and counted); 0 when it is not
 * this path's, @frame unchanged; -EFAULT when taken but the kernel could
 * not read @tail (dropped, counted as KSTEER_DROP_GUEST_MEMORY): the
 * front-end's memory is gone (backend.h, rx_frame_tail).
 */
int ksteer_guest_frame_tail(struct ksteer *ks, uint8_t *frame, const struct frame_tail *tail,
			    const struct frame_meta *meta);

/*
 * ksteer_guest_batch_done() - the backend handed over a batch of guest frames: if some went
 * to the private stack, relay now what they made ready on its sockets (bytes to the sidecar,
 * connections to accept) instead of at the main loop's next turn; the stack's answers on
 * the tun wait for the next dispatch.  Cheap when none did.
 */
void ksteer_guest_batch_done(struct ksteer *ks);

/* ksteer_set_throttle() - stop (true) or resume reading the private stack's frames. */
void ksteer_set_throttle(struct ksteer *ks, bool throttled);

/* ksteer_stats() - counters (valid until ksteer_free()). */
const struct ksteer_stats *ksteer_stats(const struct ksteer *ks);

/* ksteer_active() - flows not FREE or CLOSED. */
size_t ksteer_active(const struct ksteer *ks);

/* ksteer_active_direct() - of those, the direct flows (no sidecar). */
size_t ksteer_active_direct(const struct ksteer *ks);

/* What ksteer_foreach_flow() reports of one flow; addresses and ports in network order. */
struct ksteer_flow_info {
	const char *state;             /* "dialing", "syn", "connecting", "open", "closed" (in its grace) */
	bool direct;                   /* to its own destination, not the sidecar */
	uint32_t guest_addr, remote_addr, stack_addr; /* stack_addr: the flow's private source */
	uint16_t guest_port, remote_port;
};

/**
 * ksteer_foreach_flow() - call @fn for every flow in use, in no particular order
 *
 * CLOSED flows are reported while their grace lasts (their late segments
 * are still translated).  The walk costs the flows in use and the closed
 * ones not yet reused, not the table's size.  @info is valid only during
 * the call; @fn must not change the flows.
 */
void ksteer_foreach_flow(const struct ksteer *ks,
			 void (*fn)(const struct ksteer_flow_info *info, void *opaque),
			 void *opaque);

/* ksteer_drop_str() - metric label for @why. */
const char *ksteer_drop_str(enum ksteer_drop why);

#endif /* MESHSLIRP_PB_KSTEER_H */
