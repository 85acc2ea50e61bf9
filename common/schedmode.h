/* schedmode.h - the data thread runs as SCHED_BATCH while it moves bulk traffic (--sched auto). */
#ifndef MESHSLIRP_COMMON_SCHEDMODE_H
#define MESHSLIRP_COMMON_SCHEDMODE_H

/*
 * Theory of operation
 *
 * Why.  A bulk transfer through the daemon keeps four or five threads
 * busy on the path (the guest's sender, its NIC, the daemon, the sidecar,
 * the receiver), often on fewer CPUs.  Each thread the daemon wakes, by
 * a kick, a call or a socket write, can preempt it in the middle of a
 * batch, and each preemption is two context switches and a batch cut
 * short.  A SCHED_BATCH thread is treated as CPU-bound: its own wake-ups
 * do not preempt the thread running on its CPU (the scheduler's tick or
 * that thread's next sleep decides), so the threads on the path hand the
 * CPU over at their natural points more often than at each other's
 * wake-ups.  On the benchmark machine that made one bulk flow out of the
 * guest 1.12-1.31x as fast (docs/PERFORMANCE.md, "The data thread as
 * SCHED_BATCH").  Its price is latency: a wake-up of the daemon waits for
 * the running thread where it would have preempted it, which cost
 * request/response a few microseconds at the median.  It helps only where
 * the daemon's thread is not itself the bottleneck: the kernel path
 * (--steer-stack kernel), where the kernel does most of the work; on
 * libslirp's path, where the daemon's own work limits the rate, it cost
 * 7% out, so the daemon uses it on the kernel path only.
 *
 * So, with --sched auto (the default), the thread is SCHED_BATCH only
 * while the traffic is bulk: the bytes the backend moved for the guest,
 * both ways, measured over windows of at least SCHEDMODE_WINDOW_US.  A
 * window at SCHEDMODE_ENTER_BPS or more enters it; one below
 * SCHEDMODE_LEAVE_BPS leaves it (the gap between them keeps a rate near
 * one threshold from switching at every window).  Request/response and
 * connection traffic stay well under both and run as before.
 *
 * When: schedmode_decide() is called by its owner at the end of each
 * batch of guest frames, not from a timer, so an idle daemon costs
 * nothing.  A window is closed at the first batch after it is due.  A
 * quiet spell of SCHEDMODE_WINDOW_US or more between two batches ends
 * SCHED_BATCH at the first batch after it, whatever the bytes before it:
 * bulk traffic has guest frames (data or ACKs) every few milliseconds, so
 * a request after a transfer does not wait behind the transfer's rate.
 *
 * Its owner also calls it from a timer while the thread runs as
 * SCHED_BATCH (the daemon: every 2 * SCHEDMODE_WINDOW_US), so a transfer
 * that ends with nothing after it still leaves SCHED_BATCH; a daemon that
 * is not in SCHED_BATCH has no timer.
 *
 * Limits.  Only the calling thread is switched (sched_setscheduler() on
 * Linux applies to one thread; a thread created after a switch inherits
 * it): the daemon's data path is its main thread.  A thread started
 * under anything but plain SCHED_OTHER (an operator's chrt: real-time,
 * idle, batch, or reset-on-fork) is left as it is: the daemon moves only
 * between the two policies any thread may move between, whatever its
 * nice value, which it keeps.  A refused switch stops the switching where
 * it stands.  No allocation; the counts are the caller's.
 */

#include <stdbool.h>
#include <stdint.h>

#define SCHEDMODE_WINDOW_US 100000                /* a rate is judged over at least this */
#define SCHEDMODE_ENTER_BPS (128ull * 1024 * 1024) /* bytes/s that enter SCHED_BATCH (~1 Gbit/s) */
#define SCHEDMODE_LEAVE_BPS (32ull * 1024 * 1024)  /* bytes/s below which it is left */

/* --sched: what the daemon does with its data thread's policy. */
enum schedmode_policy {
	SCHEDMODE_AUTO,    /* SCHED_BATCH while bulk, SCHED_OTHER otherwise (default; the
			    * daemon: on the kernel path only) */
	SCHEDMODE_NORMAL,  /* never touched */
	SCHEDMODE_BATCH,   /* SCHED_BATCH from the start */
	SCHEDMODE_POLICY_COUNT
};

struct schedmode {
	bool batch;              /* the thread runs as SCHED_BATCH now */
	bool window_open;        /* a window has begun (the first update begins one) */
	int64_t window_start_us; /* monotonic */
	int64_t last_us;         /* the last call */
	uint64_t window_start_bytes;
	uint64_t entered;        /* switches to SCHED_BATCH */
	uint64_t left;           /* switches back to SCHED_OTHER */
	uint64_t failures;       /* sched_setscheduler() refused (auto stops switching) */
	bool disabled;           /* auto gave up: a refusal, or not SCHED_OTHER at start */
};

/**
 * schedmode_decide() - account the bytes moved so far, and say whether to switch
 * @sm:		the state; a zeroed one has no window yet and runs SCHED_OTHER
 * @now_us:	monotonic time
 * @bytes:	bytes moved since start, a counter that never goes back
 *
 * Pure: no system call.  The first call begins a window; a later one at
 * least SCHEDMODE_WINDOW_US after it closes it and begins the next, as
 * does one that follows the call before it by that much (a quiet spell,
 * which asks to leave SCHED_BATCH).  A clock that went back begins a new
 * window.
 *
 * Return: true when the thread should now switch to the policy that
 * @sm->batch does not say (the caller applies it with schedmode_apply()
 * and records the outcome with schedmode_switched()); false otherwise,
 * and always while @sm->disabled.
 */
bool schedmode_decide(struct schedmode *sm, int64_t now_us, uint64_t bytes);

/**
 * schedmode_switched() - record the outcome of the switch schedmode_decide() asked for
 * @sm:		the state
 * @err:	what schedmode_apply() returned
 *
 * On success flips @sm->batch and counts it; on failure counts it and
 * disables further switching (the policy stays what it was).
 */
void schedmode_switched(struct schedmode *sm, int err);

/**
 * schedmode_apply() - set the calling thread's policy (sched_priority 0, its nice kept)
 * @batch:	SCHED_BATCH if true, SCHED_OTHER if false
 *
 * Return: 0 or -errno from sched_setscheduler() (-EPERM under a seccomp
 * profile or a container that refuses it).
 */
int schedmode_apply(bool batch);

/**
 * schedmode_restore() - hand the calling thread back as SCHED_OTHER if @sm switched it
 * @sm:		the state; a switch back is counted as any other
 *
 * Return: 0, or -errno from schedmode_apply() (the thread stays SCHED_BATCH).
 */
int schedmode_restore(struct schedmode *sm);

/**
 * schedmode_current_is_other() - whether the calling thread runs plain SCHED_OTHER
 *
 * Reset-on-fork counts as another policy: a thread that set it without
 * privilege may not clear it, and an operator who set it meant it.
 *
 * Return: 1 if it does, 0 if it runs another policy, -errno if it cannot tell.
 */
int schedmode_current_is_other(void);

/* schedmode_policy_name() - "auto", "normal" or "batch" (--sched's words); "?" out of range. */
const char *schedmode_policy_name(enum schedmode_policy policy);

#endif /* MESHSLIRP_COMMON_SCHEDMODE_H */
