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
 * How.  With a window (struct mainloop_poll), after the loop was woken it
 * keeps asking GLib for work without blocking
 * (g_main_context_iteration(FALSE): every source's prepare and check, then
 * a poll() with a zero timeout) until the window passes with nothing to
 * do, and only then blocks.  Between two empty polls it yields the CPU
 * (sched_yield()), so a thread that is runnable on this CPU runs instead
 * of waiting for the window to close (one waiting on another CPU is the
 * guard's business, below), and an idle CPU is kept out of its idle
 * state.  This is QEMU's iothread polling
 * (poll-max-ns) with a fixed window; with none (0) the loop is GLib's own
 * g_main_loop_run().
 *
 * The guard.  Polling is free only while a CPU would otherwise idle.
 * When another task is runnable and waiting as a window would begin
 * (@contended says so, in the daemon common/cpuload.h's count from
 * /proc/loadavg), the window is not begun: the thread sleeps as without
 * the option, and the CPU goes to the task that waited.  A window begins
 * after each wake-up and after each piece of work it caught, so under
 * steady load the question comes often; it is put at most every
 * MAINLOOP_GUARD_EVERY_US, whatever the turns of the loop, and its last
 * answer stands in between (its cost, one pread(), is about 1 us).  A
 * window once begun runs its course: a task that comes to wait meanwhile
 * is most often the peer the last work woke, whose answer the window
 * waits for (asking then too lost most of the latency gain).  On a
 * machine with no spare CPU, bulk transfers keep their rate and the
 * daemon's CPU, where without the guard they lost up to 19% to the
 * polling.
 *
 * The adaptive window (@adaptive, --busy-poll auto).  A fixed window is
 * paid in full at every wake-up, also where the next event comes long
 * after it: an idle daemon, or a request every few milliseconds.  So the
 * window can instead follow the waits, as KVM's halt polling and QEMU's
 * adaptive iothread polling do: it starts at 0; a wait that ended in a
 * sleep but within the ceiling (@window_us) doubles it (from
 * MAINLOOP_ADAPT_START_US), since a longer window would have caught that
 * work; a wait longer than the ceiling halves it (to 0 below the start),
 * since no window would have.  A wait is measured from the moment there
 * was nothing to do, window included, to the wake-up
 * (mainloop_adapt_window()).  Request/response traffic keeps it at the
 * ceiling; a daemon woken only by its timers keeps it at 0 and pays
 * nothing.
 *
 * Costs and limits: while events keep coming less than a window apart,
 * and no task waits, the thread never sleeps, up to a whole CPU; once
 * they stop, each wake-up costs one window.  One empty poll costs every
 * source's prepare(): the netstack's walks libslirp's sockets
 * (slirp_pollfds_fill), so it grows with libslirp's flows.  A timer
 * shorter than the window would keep the loop from ever sleeping (the
 * daemon's shortest is 20 ms, above MAINLOOP_POLL_MAX_US).  A cgroup's CPU
 * quota is charged for the polling like any other work: the daemon's
 * --busy-poll auto does not poll under one (common/cgquota.h).  Nothing is
 * allocated; the stats are the caller's.
 */

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#define MAINLOOP_POLL_MAX_US 10000   /* the longest window --busy-poll takes */
#define MAINLOOP_GUARD_EVERY_US 20   /* polling between two questions to the guard */
#define MAINLOOP_ADAPT_START_US 10   /* the adaptive window's first step up from 0 */
#define MAINLOOP_AUTO_MAX_US 200     /* --busy-poll auto's ceiling (KVM's halt polling's) */

struct mainloop_stats {
	uint64_t sleeps;              /* blocking waits after a window ran out (or before
				       * the first): the thread slept and was woken */
	uint64_t caught;              /* work that came while polling: wake-ups saved */
	uint64_t polled_us;           /* wall-clock time polling found nothing (other
				       * threads' turns in its yields included) */
	uint64_t yielded;             /* windows not begun, a task waiting: the loop went to
				       * its blocking wait at once (on a loaded machine it
				       * often returns at once, with work) */
	uint64_t window_us;           /* the window now (adaptive: where the waits moved it) */
};

struct mainloop_poll {
	unsigned int window_us;       /* poll this long after the last work (adaptive: at
				       * most); 0: GLib's loop */
	bool adaptive;                /* the window follows the waits, from 0 up to window_us */
	/* Whether another task waits for a CPU now (see above); NULL: never asked. */
	bool (*contended)(void *opaque);
	void *opaque;
};

/**
 * mainloop_adapt_window() - the adaptive window after one wait
 * @window_us:	the window the wait began with
 * @waited_us:	from when there was nothing to do to the wake-up, the window's
 *		polling included
 * @max_us:	the ceiling
 *
 * Return: the window for the next wait: unchanged if the wait ended within
 * it, halved (0 below MAINLOOP_ADAPT_START_US) if it ran past @max_us, else
 * doubled (MAINLOOP_ADAPT_START_US from 0), never above @max_us (given
 * @window_us is not).
 */
unsigned int mainloop_adapt_window(unsigned int window_us, uint64_t waited_us,
				   unsigned int max_us);

/**
 * mainloop_run() - run @loop until g_main_loop_quit()
 * @loop:	created with is_running TRUE (g_main_loop_new(ctx, TRUE)); a
 *		g_main_loop_quit() before this call makes it return at once
 * @poll:	the window (0: g_main_loop_run()) and its guard; the caller's
 * @stats:	counted into while polling (not with a window of 0); the caller's
 */
void mainloop_run(GMainLoop *loop, const struct mainloop_poll *poll, struct mainloop_stats *stats);

#endif
