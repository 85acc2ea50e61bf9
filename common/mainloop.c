/* mainloop.c - the daemon's main loop, with an optional polling window before each sleep (see mainloop.h). */

#include "mainloop.h"

#include <sched.h>
#include <stdbool.h>

/*
 * Whether a task waits for a CPU, as a window begins: asked at most every
 * MAINLOOP_GUARD_EVERY_US.
 */
static bool mainloop_must_yield(const struct mainloop_poll *poll, gint64 now, gint64 *asked)
{
	if (!poll->contended || now - *asked < MAINLOOP_GUARD_EVERY_US)
		return false;
	*asked = now;
	return poll->contended(poll->opaque);
}

void mainloop_run(GMainLoop *loop, const struct mainloop_poll *poll, struct mainloop_stats *stats)
{
	GMainContext *ctx = g_main_loop_get_context(loop);
	const gint64 window = (gint64)poll->window_us;

	/* g_main_loop_run() would set it running again: a quit before now must hold. */
	if (!g_main_loop_is_running(loop))
		return;
	if (!window) {
		g_main_loop_run(loop);
		return;
	}
	while (g_main_loop_is_running(loop)) {
		gint64 idle_since, now, asked;
		bool waited = false;

		stats->sleeps++;
		g_main_context_iteration(ctx, TRUE);
		/* Awake now: stay so while work keeps coming within the window. */
		idle_since = now = g_get_monotonic_time();
		asked = now - MAINLOOP_GUARD_EVERY_US; /* a window's start always asks */
		while (g_main_loop_is_running(loop) && now - idle_since < window) {
			gint64 before = now;

			/*
			 * Only as a window begins (after a wake-up or caught work):
			 * a task that comes to wait while we poll is most often the
			 * peer our last work woke, and its answer is what the window
			 * waits for.  Cutting the window for it lost most of what the
			 * polling gains on request/response traffic.
			 */
			if (!waited && mainloop_must_yield(poll, now, &asked)) {
				stats->yielded++;
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
