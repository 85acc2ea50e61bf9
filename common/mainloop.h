/* mainloop.h - the daemon's main loop: GLib's, or one that polls a while before it sleeps (--busy-poll). */
#ifndef MESHSLIRP_COMMON_MAINLOOP_H
#define MESHSLIRP_COMMON_MAINLOOP_H

/*
 * Theory of operation
 *
 * Why.  A request and its reply cross eight threads between the guest's
 * client and the upstream server, each woken by the one before it.  Where
 * the daemon's thread slept, its CPU went idle, and leaving an idle state
 * costs microseconds on bare metal and 14-23 us in a VM whose vCPU halts
 * (docs/PERFORMANCE.md, "Request/response latency").  A thread that is
 * still running when its next event comes is not woken at all.
 *
 * How.  With a window of @poll_us, after the loop was woken it keeps
 * asking GLib for work without blocking (g_main_context_iteration(FALSE):
 * every source's prepare and check, then a poll() with a zero timeout)
 * until @poll_us pass with nothing to do, and only then blocks.  Between
 * two empty polls it yields the CPU (sched_yield()), so a thread that is
 * runnable on this CPU runs instead of waiting for the window to close: on
 * a machine with no spare CPU the window costs the others little, and an
 * idle CPU is kept out of its idle state.  This is QEMU's iothread polling
 * (poll-max-ns) with a fixed window; with none (0) the loop is GLib's own
 * g_main_loop_run().
 *
 * Costs and limits: while events keep coming less than @poll_us apart,
 * the thread never sleeps, up to a whole CPU; once they stop, each wake-up
 * costs one window.  One empty poll costs every source's prepare(): the
 * netstack's walks libslirp's sockets (slirp_pollfds_fill), so it grows
 * with libslirp's flows.  A timer shorter than the window would keep the
 * loop from ever sleeping (the daemon's shortest is 20 ms, above
 * MAINLOOP_POLL_MAX_US).  Bulk transfers on a machine with no spare CPU
 * lose some throughput to the polling (measured in PERFORMANCE.md); it is
 * off by default.  Nothing is allocated; the stats are the caller's.
 */

#include <stdint.h>

#include <glib.h>

#define MAINLOOP_POLL_MAX_US 10000   /* the longest window --busy-poll takes */

struct mainloop_stats {
	uint64_t sleeps;              /* blocking waits: the thread slept and was woken */
	uint64_t caught;              /* work that came while polling: wake-ups saved */
	uint64_t polled_us;           /* wall-clock time polling found nothing (other
				       * threads' turns in its yields included) */
};

/**
 * mainloop_run() - run @loop until g_main_loop_quit()
 * @loop:	created with is_running TRUE (g_main_loop_new(ctx, TRUE)); a
 *		g_main_loop_quit() before this call makes it return at once
 * @poll_us:	how long to keep polling after the last work before sleeping;
 *		0: g_main_loop_run()
 * @stats:	counted into while polling (not with 0); owned by the caller
 */
void mainloop_run(GMainLoop *loop, unsigned int poll_us, struct mainloop_stats *stats);

#endif
