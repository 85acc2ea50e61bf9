/* mainloop.c - the daemon's main loop, with an optional polling window before each sleep (see mainloop.h). */

#include "mainloop.h"

#include <sched.h>
#include <stdbool.h>

void mainloop_run(GMainLoop *loop, unsigned int poll_us, struct mainloop_stats *stats)
{
	GMainContext *ctx = g_main_loop_get_context(loop);

	/* g_main_loop_run() would set it running again: a quit before now must hold. */
	if (!g_main_loop_is_running(loop))
		return;
	if (!poll_us) {
		g_main_loop_run(loop);
		return;
	}
	while (g_main_loop_is_running(loop)) {
		gint64 idle_since, now;
		bool waited = false;

		stats->sleeps++;
		g_main_context_iteration(ctx, TRUE);
		/* Awake now: stay so while work keeps coming within the window. */
		idle_since = now = g_get_monotonic_time();
		while (g_main_loop_is_running(loop) && now - idle_since < (gint64)poll_us) {
			gint64 before = now;

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
	}
}
