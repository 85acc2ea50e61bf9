/* test_mainloop.c - mainloop_run(): work within the polling window finds the thread awake; later work wakes it. */

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
 * Two bytes on a pipe.  The first is written at once; its handler asks the
 * writer thread (over a second pipe) for the second, which comes
 * @delay_us later.  How many sleeps the loop counted between the two
 * tells whether the thread slept in between.  (Before the first byte GLib
 * may return from a blocking wait with nothing to do, e.g. when the source
 * is attached: that counts as a sleep too, so only the difference says
 * anything.)
 */
struct pingpong {
	GMainLoop *loop;
	struct mainloop_stats stats;
	int data[2];                  /* the loop reads [0] */
	int ask[2];                   /* the writer waits on [0] */
	unsigned int delay_us;
	bool writer_ok;               /* set by the writer thread (no cmocka asserts there) */
	int handled;
	uint64_t sleeps_at_first;     /* stats.sleeps when each byte was handled */
	uint64_t sleeps_at_second;
	uint64_t caught_at_second;    /* stats.caught then: the loop counts a dispatch after it */
};

static gpointer pingpong_writer(gpointer opaque)
{
	struct pingpong *pp = opaque;
	char c = 'x';

	if (write(pp->data[1], &c, 1) != 1 || read(pp->ask[0], &c, 1) != 1)
		return NULL;
	g_usleep(pp->delay_us);
	pp->writer_ok = write(pp->data[1], &c, 1) == 1;
	return NULL;
}

static gboolean pingpong_readable(gint fd, GIOCondition cond, gpointer opaque)
{
	struct pingpong *pp = opaque;
	char c;

	(void)cond;
	assert_int_equal(read(fd, &c, 1), 1);
	if (++pp->handled == 1) {
		pp->sleeps_at_first = pp->stats.sleeps;
		assert_int_equal(write(pp->ask[1], &c, 1), 1);
		return G_SOURCE_CONTINUE;
	}
	pp->sleeps_at_second = pp->stats.sleeps;
	pp->caught_at_second = pp->stats.caught;
	g_main_loop_quit(pp->loop);
	return G_SOURCE_REMOVE;
}

/* Run the exchange with a window of @poll_us and the second byte @delay_us after the ask. */
static void pingpong_run(struct pingpong *pp, unsigned int poll_us, unsigned int delay_us)
{
	GThread *writer;

	*pp = (struct pingpong){ .delay_us = delay_us };
	assert_int_equal(pipe(pp->data), 0);
	assert_int_equal(pipe(pp->ask), 0);
	pp->loop = g_main_loop_new(NULL, TRUE);
	g_unix_fd_add(pp->data[0], G_IO_IN, pingpong_readable, pp);
	writer = g_thread_new("writer", pingpong_writer, pp);
	mainloop_run(pp->loop, poll_us, &pp->stats);
	g_thread_join(writer);
	g_main_loop_unref(pp->loop);
	for (int i = 0; i < 2; i++) {
		close(pp->data[i]);
		close(pp->ask[i]);
	}
	assert_true(pp->writer_ok);
	assert_int_equal(pp->handled, 2);
}

/*
 * A window far longer than the writer takes: the second byte is handled
 * without a second sleep, and counted as caught, after 50 ms of polling
 * with nothing to do (long against one turn of the loop even under
 * valgrind, so the byte cannot be there before the first empty poll).
 */
static void test_work_in_window_caught(void **state)
{
	struct pingpong pp;

	(void)state;
	pingpong_run(&pp, 5 * G_USEC_PER_SEC, 50 * 1000);
	assert_true(pp.sleeps_at_first >= 1);
	assert_int_equal(pp.sleeps_at_second, pp.sleeps_at_first);
	assert_int_equal(pp.stats.caught - pp.caught_at_second, 1);
	assert_true(pp.stats.polled_us >= 50 * 1000);
}

/* A window shorter than the gap: the thread went back to sleep and was woken for the second byte. */
static void test_work_after_window_sleeps(void **state)
{
	struct pingpong pp;

	(void)state;
	pingpong_run(&pp, 1000, 200 * 1000);
	assert_true(pp.sleeps_at_second > pp.sleeps_at_first);
	assert_int_equal(pp.stats.caught - pp.caught_at_second, 0);
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
	mainloop_run(loop, 5 * G_USEC_PER_SEC, &st);
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
	mainloop_run(loop, 5 * G_USEC_PER_SEC, &st);
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
		mainloop_run(loop, windows[i], &st);
		assert_true(g_get_monotonic_time() - t0 < G_USEC_PER_SEC);
		g_main_loop_unref(loop);
	}
	assert_int_equal(st.sleeps, 0);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
