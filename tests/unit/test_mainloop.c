/* test_mainloop.c - mainloop_run(): work within the polling window finds the thread awake; later work, or a waiting task, makes it sleep; the adaptive window follows the gaps. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>
#include <glib-unix.h>

#include "common/mainloop.h"

/*
 * Bytes on a pipe (two, or PINGPONG_MAX).  The first is written at once;
 * each handler asks the writer thread (over a second pipe) for the next,
 * which comes @delay_us later.  How many sleeps the loop counted between
 * two bytes tells whether the thread slept in between.  (Before the first
 * byte GLib may return from a blocking wait with nothing to do, e.g. when
 * the source is attached: that counts as a sleep too, so only differences
 * say anything.)
 */
#define PINGPONG_MAX 32

struct pingpong {
	GMainLoop *loop;
	struct mainloop_stats stats;
	int data[2];                  /* the loop reads [0] */
	int ask[2];                   /* the writer waits on [0] */
	unsigned int delay_us;
	const unsigned int *delays;   /* per byte (index 1 on), instead of delay_us; or NULL */
	int bytes;                    /* how many, 2..PINGPONG_MAX */
	bool writer_ok;               /* set by the writer thread (no cmocka asserts there) */
	int handled;
	uint64_t waits_at[PINGPONG_MAX];  /* blocking waits (sleeps + yielded) when each byte
					   * was handled */
	uint64_t caught_at[PINGPONG_MAX]; /* stats.caught then: the loop counts a dispatch after it */
	uint64_t window_at[PINGPONG_MAX]; /* stats.window_us then: a wake-up moves the window
					   * after its handlers ran, so this is the window the
					   * wait for byte i began with */
	struct mainloop_poll poll;    /* the window, and the guard a test sets */
	void (*on_byte)(int i, void *opaque); /* called as byte @i is handled, or NULL */
	void *on_byte_opaque;
};

static gpointer pingpong_writer(gpointer opaque)
{
	struct pingpong *pp = opaque;
	char c = 'x';

	if (write(pp->data[1], &c, 1) != 1)
		return NULL;
	for (int i = 1; i < pp->bytes; i++) {
		if (read(pp->ask[0], &c, 1) != 1)
			return NULL;
		g_usleep(pp->delays ? pp->delays[i] : pp->delay_us);
		if (write(pp->data[1], &c, 1) != 1)
			return NULL;
	}
	pp->writer_ok = true;
	return NULL;
}

static gboolean pingpong_readable(gint fd, GIOCondition cond, gpointer opaque)
{
	struct pingpong *pp = opaque;
	int i = pp->handled++;
	char c;

	(void)cond;
	assert_int_equal(read(fd, &c, 1), 1);
	pp->waits_at[i] = pp->stats.sleeps + pp->stats.yielded;
	pp->window_at[i] = pp->stats.window_us;
	if (pp->on_byte)
		pp->on_byte(i, pp->on_byte_opaque);
	pp->caught_at[i] = pp->stats.caught;
	if (pp->handled < pp->bytes) {
		assert_int_equal(write(pp->ask[1], &c, 1), 1);
		return G_SOURCE_CONTINUE;
	}
	g_main_loop_quit(pp->loop);
	return G_SOURCE_REMOVE;
}

/*
 * A fake guard: "a task waits" from @after_us after its clock started on.
 * The clock starts as the first byte is handled (not at the first
 * question, which may come in a window after a spurious wake-up, before
 * the writer thread ran), or at once with @from_start.
 */
struct guard {
	gint64 after_us;
	bool from_start;
	gint64 since;                 /* when its clock started, 0: not yet */
	uint64_t asked;
};

static bool guard_contended(void *opaque)
{
	struct guard *g = opaque;

	g->asked++;
	if (g->from_start && !g->since)
		g->since = g_get_monotonic_time();
	return g->since && g_get_monotonic_time() - g->since >= g->after_us;
}

static void guard_on_byte(int i, void *opaque)
{
	struct guard *g = opaque;

	if (i == 0 && !g->since)
		g->since = g_get_monotonic_time();
}

/* Run the exchange @pp describes (bytes, delays, window, guard): pipes, writer, loop. */
static void pingpong_exchange(struct pingpong *pp)
{
	GThread *writer;

	assert_int_equal(pipe(pp->data), 0);
	assert_int_equal(pipe(pp->ask), 0);
	pp->loop = g_main_loop_new(NULL, TRUE);
	g_unix_fd_add(pp->data[0], G_IO_IN, pingpong_readable, pp);
	writer = g_thread_new("writer", pingpong_writer, pp);
	mainloop_run(pp->loop, &pp->poll, &pp->stats);
	g_thread_join(writer);
	g_main_loop_unref(pp->loop);
	for (int i = 0; i < 2; i++) {
		close(pp->data[i]);
		close(pp->ask[i]);
	}
	assert_true(pp->writer_ok);
	assert_int_equal(pp->handled, pp->bytes);
}

/*
 * Run the exchange of @bytes bytes with a window of @poll_us, the guard
 * @g (NULL: none; its clock starts as the first byte is handled) and each
 * byte after the first @delay_us after the ask.
 */
static void pingpong_run_guarded(struct pingpong *pp, int bytes, unsigned int poll_us,
				 struct guard *g, unsigned int delay_us)
{
	*pp = (struct pingpong){ .delay_us = delay_us, .bytes = bytes,
				 .poll = { .window_us = poll_us,
					   .contended = g ? guard_contended : NULL, .opaque = g },
				 .on_byte = g ? guard_on_byte : NULL, .on_byte_opaque = g };
	pingpong_exchange(pp);
}

/*
 * The exchange with the adaptive window up to @ceiling_us, byte i coming
 * @delays[i] after its ask.
 */
static void pingpong_run_adaptive(struct pingpong *pp, int bytes, unsigned int ceiling_us,
				  const unsigned int *delays)
{
	*pp = (struct pingpong){ .delays = delays, .bytes = bytes,
				 .poll = { .window_us = ceiling_us, .adaptive = true } };
	pingpong_exchange(pp);
}

static void pingpong_run(struct pingpong *pp, unsigned int poll_us, unsigned int delay_us)
{
	pingpong_run_guarded(pp, 2, poll_us, NULL, delay_us);
}

/*
 * A window far longer than the writer takes: the second byte is handled
 * without a second sleep, and counted as caught, after 50 ms of polling
 * with nothing to do (long against one turn of the loop even under
 * valgrind, so the byte cannot be there before the first empty poll).
 * The writer's 50 ms start as it reads the ask, before the handler that
 * wrote it has returned and the window begins: under valgrind on a busy
 * machine that head start took a few milliseconds off the time polled
 * (CI, 2026-12-05), so the count is judged at half of it.
 */
static void test_work_in_window_caught(void **state)
{
	struct pingpong pp;

	(void)state;
	pingpong_run(&pp, 5 * G_USEC_PER_SEC, 50 * 1000);
	assert_true(pp.waits_at[0] >= 1);
	assert_int_equal(pp.waits_at[1], pp.waits_at[0]);
	assert_int_equal(pp.stats.caught - pp.caught_at[1], 1);
	assert_true(pp.stats.polled_us >= 25 * 1000);
}

/* A window shorter than the gap: the thread went back to sleep and was woken for the second byte. */
static void test_work_after_window_sleeps(void **state)
{
	struct pingpong pp;

	(void)state;
	pingpong_run(&pp, 1000, 200 * 1000);
	assert_true(pp.waits_at[1] > pp.waits_at[0]);
	assert_int_equal(pp.stats.caught - pp.caught_at[1], 0);
	/* About one window of polling per wake-up, not the whole gap. */
	assert_true(pp.stats.polled_us >= 1000);
	assert_true(pp.stats.polled_us < 150 * 1000);
}

/* No window: GLib's own loop, nothing counted. */
static void test_no_window_is_glib(void **state)
{
	struct pingpong pp;

	(void)state;
	pingpong_run(&pp, 0, 1000);
	assert_int_equal(pp.stats.sleeps, 0);
	assert_int_equal(pp.stats.caught, 0);
}

static gboolean quit_now(gpointer loop)
{
	g_main_loop_quit(loop);
	return G_SOURCE_REMOVE;
}

/*
 * Dispatched in the first (blocking) turn: arms a quit that comes while the
 * loop polls (50 ms: after its first empty poll, even under valgrind).
 */
static gboolean arm_quit(gpointer loop)
{
	g_timeout_add(50, quit_now, loop);
	return G_SOURCE_REMOVE;
}

/* A quit that comes while the loop polls ends it at once, not at the window's end. */
static void test_quit_in_window(void **state)
{
	struct mainloop_stats st = { 0 };
	GMainLoop *loop = g_main_loop_new(NULL, TRUE);
	gint64 t0;

	(void)state;
	g_idle_add(arm_quit, loop);
	t0 = g_get_monotonic_time();
	mainloop_run(loop, &(struct mainloop_poll){ .window_us = 5 * G_USEC_PER_SEC }, &st);
	assert_true(g_get_monotonic_time() - t0 < 2 * G_USEC_PER_SEC);
	/* One sleep (the first turn): the quit was met while polling. */
	assert_int_equal(st.sleeps, 1);
	assert_int_equal(st.caught, 1);
	g_main_loop_unref(loop);
}

/* Dispatched in the first turn: leaves work that is ready at once (an idle source). */
static gboolean leave_ready_work(gpointer loop)
{
	g_idle_add(quit_now, loop);
	return G_SOURCE_REMOVE;
}

/* Work already ready when a turn ends needed no wake-up: not counted as caught. */
static void test_ready_work_not_caught(void **state)
{
	struct mainloop_stats st = { 0 };
	GMainLoop *loop = g_main_loop_new(NULL, TRUE);

	(void)state;
	g_idle_add(leave_ready_work, loop);
	mainloop_run(loop, &(struct mainloop_poll){ .window_us = 5 * G_USEC_PER_SEC }, &st);
	assert_int_equal(st.sleeps, 1);
	assert_int_equal(st.caught, 0);
	g_main_loop_unref(loop);
}

/* A quit before the loop runs holds, with a window or without (GLib's run would clear it). */
static void test_quit_before_run(void **state)
{
	struct mainloop_stats st = { 0 };
	const unsigned int windows[] = { 0, 1000 };

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(windows); i++) {
		GMainLoop *loop = g_main_loop_new(NULL, TRUE);
		gint64 t0 = g_get_monotonic_time();

		g_main_loop_quit(loop);
		mainloop_run(loop, &(struct mainloop_poll){ .window_us = windows[i] }, &st);
		assert_true(g_get_monotonic_time() - t0 < G_USEC_PER_SEC);
		g_main_loop_unref(loop);
	}
	assert_int_equal(st.sleeps, 0);
}

/*
 * A guard that never sees a waiting task changes nothing (the byte is
 * caught as without it).  It is asked as each window begins (after a
 * wake-up, and after work caught while polling), not at every empty poll.
 */
static void test_guard_idle_polls(void **state)
{
	struct guard g = { .after_us = G_MAXINT64 };
	struct pingpong pp;

	(void)state;
	pingpong_run_guarded(&pp, 2, 5 * G_USEC_PER_SEC, &g, 50 * 1000);
	assert_int_equal(pp.waits_at[1], pp.waits_at[0]);
	assert_int_equal(pp.stats.caught - pp.caught_at[1], 1);
	assert_int_equal(pp.stats.yielded, 0);
	assert_true(g.asked >= 1);
	assert_true(g.asked <= pp.stats.sleeps + pp.stats.caught);
}

/* A task waits from the start: no window is begun, the thread sleeps until the byte wakes it. */
static void test_guard_contended_sleeps(void **state)
{
	struct guard g = { .after_us = 0, .from_start = true };
	struct pingpong pp;

	(void)state;
	pingpong_run_guarded(&pp, 2, 5 * G_USEC_PER_SEC, &g, 50 * 1000);
	assert_true(pp.waits_at[1] > pp.waits_at[0]);
	assert_int_equal(pp.stats.caught, 0);
	assert_true(pp.stats.yielded >= 1);
	/* Every window given up as it began: no time polled at all. */
	assert_int_equal(pp.stats.polled_us, 0);
}

/*
 * A task starts waiting 100 ms after the first byte.  The window begun
 * after that byte runs its course: the second byte, 200 ms on, is caught.
 * The window it would begin is not: the third byte, 200 ms later again,
 * finds the loop in its blocking wait.  (100 ms: a loaded machine may
 * hold the thread off its CPU for a while between the first byte and the
 * question that begins the window.)
 */
static void test_guard_next_window(void **state)
{
	struct guard g = { .after_us = 100 * 1000 };
	struct pingpong pp;

	(void)state;
	pingpong_run_guarded(&pp, 3, 5 * G_USEC_PER_SEC, &g, 200 * 1000);
	assert_int_equal(pp.waits_at[1], pp.waits_at[0]);
	assert_int_equal(pp.caught_at[2] - pp.caught_at[1], 1); /* counted after its handler */
	assert_true(pp.waits_at[2] > pp.waits_at[1]);
	assert_int_equal(pp.stats.caught - pp.caught_at[2], 0);
	assert_true(pp.stats.yielded >= 1);
}

static gboolean always_ready(gpointer opaque)
{
	(void)opaque;
	return G_SOURCE_CONTINUE;
}

/*
 * Work always ready and a task always waiting: every turn gives its window
 * up, and goes straight back to work.  The guard is still asked at most
 * once per MAINLOOP_GUARD_EVERY_US, not once per turn (a pread() each),
 * and such turns count as yielded, not as sleeps.
 */
static void test_guard_asked_rarely(void **state)
{
	struct guard g = { .after_us = 0, .from_start = true };
	struct mainloop_poll poll = { .window_us = 1000, .contended = guard_contended, .opaque = &g };
	struct mainloop_stats st = { 0 };
	GMainLoop *loop = g_main_loop_new(NULL, TRUE);
	guint idle = g_idle_add(always_ready, NULL);
	gint64 t0 = g_get_monotonic_time(), took;

	(void)state;
	g_timeout_add(100, quit_now, loop);
	mainloop_run(loop, &poll, &st);
	took = g_get_monotonic_time() - t0;
	g_source_remove(idle);
	assert_true(g.asked >= 1);
	assert_true(g.asked <= (uint64_t)(took / MAINLOOP_GUARD_EVERY_US) + 2);
	/* Every turn gave way; several per question where a turn takes under 20 us. */
	assert_true(st.yielded >= g.asked);
	assert_true(st.sleeps <= 1);         /* the first wait only */
	assert_int_equal(st.caught, 0);
	g_main_loop_unref(loop);
}

/* The rule alone: doubled from the start on a short wait, halved on a long one, capped. */
static void test_adapt_rule(void **state)
{
	(void)state;
	/* A wait the window caught leaves it. */
	assert_int_equal(mainloop_adapt_window(80, 50, 200), 80);
	/* Short waits (within the ceiling, past the window) grow it: 0, 10, 20, ... 160, 200. */
	assert_int_equal(mainloop_adapt_window(0, 5, 200), MAINLOOP_ADAPT_START_US);
	assert_int_equal(mainloop_adapt_window(10, 150, 200), 20);
	assert_int_equal(mainloop_adapt_window(80, 150, 200), 160);
	assert_int_equal(mainloop_adapt_window(160, 190, 200), 200);
	assert_int_equal(mainloop_adapt_window(200, 200, 200), 200);
	/* A ceiling below the start step is still one. */
	assert_int_equal(mainloop_adapt_window(0, 3, 4), 4);
	/* Waits past the ceiling halve it, to 0 below the start step. */
	assert_int_equal(mainloop_adapt_window(200, 201, 200), 100);
	assert_int_equal(mainloop_adapt_window(20, 5000, 200), 10);
	assert_int_equal(mainloop_adapt_window(10, 5000, 200), 0);
	assert_int_equal(mainloop_adapt_window(0, 5000, 200), 0);
}

/*
 * Bytes 5 ms apart with a ceiling of 100 ms: the window starts at 0, so
 * the first bytes each find the thread asleep; every such wait doubles
 * it, until a window outlasts the gap and the later bytes are caught.
 * (Ten doublings from 10 us pass 5 ms; 24 bytes leave room for a loaded
 * machine's longer gaps, up to the ceiling.)
 */
static void test_adaptive_grows_and_catches(void **state)
{
	unsigned int delays[24];
	struct pingpong pp;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(delays); i++)
		delays[i] = 5000;
	pingpong_run_adaptive(&pp, G_N_ELEMENTS(delays), 100 * 1000, delays);
	assert_true(pp.waits_at[2] > pp.waits_at[1]);          /* 10-20 us: slept through */
	assert_true(pp.window_at[2] > pp.window_at[1]);
	assert_true(pp.stats.caught - pp.caught_at[1] >= 1);   /* later bytes: caught */
	assert_true(pp.stats.window_us >= 5000);
	assert_true(pp.stats.window_us <= 100 * 1000);
}

/*
 * Events far apart (50 ms, against a ceiling of 1 ms): the window stays at
 * 0, and the loop polls less than one ceiling in all, where a fixed 1 ms
 * window would poll 1 ms at every wake-up.  GLib returns from a blocking
 * wait with nothing dispatched a few microseconds after each dispatch:
 * taken for a short wait, that would lift the window to 10 us every time.
 */
static void test_adaptive_stays_off_when_slow(void **state)
{
	const unsigned int delays[4] = { 0, 50 * 1000, 50 * 1000, 50 * 1000 };
	struct pingpong pp;

	(void)state;
	pingpong_run_adaptive(&pp, G_N_ELEMENTS(delays), 1000, delays);
	assert_int_equal(pp.stats.caught, 0);
	assert_true(pp.stats.polled_us < 1000);
	assert_int_equal(pp.window_at[3], 0);
}

/*
 * Sixteen bytes 1 ms apart grow the window (ceiling 50 ms) past 1 ms at
 * some point (one long pause of a loaded machine halves it, so the peak is
 * judged, not the last); four more, 200 ms apart, halve it at each wake-up:
 * it ends at a sixteenth of what the wait for byte 16 began with.
 */
static void test_adaptive_shrinks(void **state)
{
	unsigned int delays[20];
	struct pingpong pp;
	uint64_t peak = 0;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(delays); i++)
		delays[i] = i < 16 ? 1000 : 200 * 1000;
	pingpong_run_adaptive(&pp, G_N_ELEMENTS(delays), 50 * 1000, delays);

	for (int i = 0; i <= 16; i++)
		peak = MAX(peak, pp.window_at[i]);
	assert_true(peak >= 1000);
	assert_true(pp.window_at[16] > 0);
	assert_true(pp.stats.window_us <= pp.window_at[16] / 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_work_in_window_caught),
		cmocka_unit_test(test_work_after_window_sleeps),
		cmocka_unit_test(test_no_window_is_glib),
		cmocka_unit_test(test_quit_in_window),
		cmocka_unit_test(test_ready_work_not_caught),
		cmocka_unit_test(test_quit_before_run),
		cmocka_unit_test(test_guard_idle_polls),
		cmocka_unit_test(test_guard_contended_sleeps),
		cmocka_unit_test(test_guard_next_window),
		cmocka_unit_test(test_guard_asked_rarely),
		cmocka_unit_test(test_adapt_rule),
		cmocka_unit_test(test_adaptive_grows_and_catches),
		cmocka_unit_test(test_adaptive_stays_off_when_slow),
		cmocka_unit_test(test_adaptive_shrinks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
