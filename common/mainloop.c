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

void mainloop_run(GMainLoop *loop, const struct mainloop_poll *poll, struct mainloop_stats *stats)
{
	GMainContext *ctx = g_main_loop_get_context(loop);
	const gint64 window = (gint64)poll->window_us;
	struct mainloop_guard guard = { .asked = G_MININT64 / 2 }; /* the first window asks */
	bool gave_way = false;        /* the last window was not begun: a task waited */

	/* g_main_loop_run() would set it running again: a quit before now must hold. */
	if (!g_main_loop_is_running(loop))
		return;
	if (!window) {
		g_main_loop_run(loop);
		return;
	}
	while (g_main_loop_is_running(loop)) {
		gint64 idle_since, now;
		bool waited = false;

		/* A wait the guard chose is counted as yielded, not as a sleep after a window. */
		if (!gave_way)
			stats->sleeps++;
		gave_way = false;
		g_main_context_iteration(ctx, TRUE);
		/* Awake now: stay so while work keeps coming within the window. */
		idle_since = now = g_get_monotonic_time();
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
