/* mainloop.c - the daemon's main loop, with an optional polling window before each sleep (see mainloop.h). */

#include "mainloop.h"

#include <sched.h>
#include <stdbool.h>

/* The guard's last answer, which stands for MAINLOOP_GUARD_EVERY_US. */
struct mainloop_guard {
	gint64 asked;                 /* when last asked */
	bool wait;                    /* what it said: a task waits for a CPU */
};

/*
 * mainloop_ask_guard() - whether a task waits for a CPU, as a window would begin
 *
 * Asks @poll's guard at most every MAINLOOP_GUARD_EVERY_US, across turns of
 * the loop (each question is a pread()); in between its last answer in @g
 * stands.  Returns false without a guard.
 */
static bool mainloop_ask_guard(const struct mainloop_poll *poll, struct mainloop_guard *g,
			       gint64 now)
{
	if (!poll->contended)
		return false;
	if (now - g->asked >= MAINLOOP_GUARD_EVERY_US) {
		g->asked = now;
		g->wait = poll->contended(poll->opaque);
	}
	return g->wait;
}

unsigned int mainloop_adapt_window(unsigned int window_us, uint64_t waited_us,
				   unsigned int max_us)
{
	if (waited_us <= window_us)
		return window_us;
	if (waited_us > max_us)
		return window_us / 2 < MAINLOOP_ADAPT_START_US ? 0 : window_us / 2;
	if (!window_us)
		return MIN(MAINLOOP_ADAPT_START_US, max_us);
	return window_us > max_us / 2 ? max_us : window_us * 2;
}

void mainloop_run(GMainLoop *loop, const struct mainloop_poll *poll, struct mainloop_stats *stats)
{
	GMainContext *ctx = g_main_loop_get_context(loop);
	struct mainloop_guard guard = { .asked = G_MININT64 / 2 }; /* the first window asks */
	bool gave_way = false;        /* the last window was not begun: a task waited */
	/* The window now: fixed, or moved by each wait (mainloop_adapt_window()). */
	gint64 window = poll->adaptive ? 0 : (gint64)poll->window_us;
	gint64 wait_since = 0;        /* since when nothing was to do, across wake-ups that
				       * dispatched nothing (0: not yet); the adaptive measure */

	/* g_main_loop_run() would set it running again: a quit before now must hold. */
	if (!g_main_loop_is_running(loop))
		return;
	if (!poll->window_us) {
		g_main_loop_run(loop);
		return;
	}
	stats->window_us = (uint64_t)window;
	while (g_main_loop_is_running(loop)) {
		/* The guard's waits say nothing of how long a window should be. */
		bool adapt = poll->adaptive && wait_since && !gave_way;
		bool waited = false, worked;
		gint64 idle_since, now;

		/* A wait the guard chose is counted as yielded, not as a sleep after a window. */
		if (!gave_way)
			stats->sleeps++;
		gave_way = false;
		/*
		 * GLib may return from a blocking wait having dispatched
		 * nothing (a source's own wake-up): for the adaptive window
		 * that wait goes on, or such returns would keep it from ever
		 * falling to 0.
		 */
		worked = g_main_context_iteration(ctx, TRUE);
		now = g_get_monotonic_time();
		if (adapt && worked) {
			window = mainloop_adapt_window((unsigned int)window,
						       (uint64_t)(now - wait_since), poll->window_us);
			stats->window_us = (uint64_t)window;
		}
		/* Awake now: stay so while work keeps coming within the window. */
		idle_since = now;
		while (g_main_loop_is_running(loop) && now - idle_since < window) {
			gint64 before = now;

			/*
			 * Only as a window begins (after a wake-up or caught work):
			 * a task that comes to wait while we poll is most often the
			 * peer our last work woke, and its answer is what the window
			 * waits for.  Cutting the window for it lost most of what the
			 * polling gains on request/response traffic.
			 */
			if (!waited && mainloop_ask_guard(poll, &guard, now)) {
				stats->yielded++;
				gave_way = true;
				break;
			}
			if (g_main_context_iteration(ctx, FALSE)) {
				/*
				 * Work that was already there when the last turn ended
				 * (an idle source, a lower priority deferred) would
				 * not have needed a wake-up either: only work that came
				 * while we polled counts as caught.
				 */
				if (waited)
					stats->caught++;
				waited = false;
				worked = true;
				stats->polled_us += (uint64_t)(before - idle_since);
				idle_since = now = g_get_monotonic_time();
				continue;
			}
			/* Nothing to do: anything runnable on this CPU goes first. */
			waited = true;
			sched_yield();
			now = g_get_monotonic_time();
		}
		stats->polled_us += (uint64_t)(now - idle_since);
		if (worked)
			wait_since = idle_since;
	}
}
