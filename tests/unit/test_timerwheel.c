/* test_timerwheel.c - unit tests of the timer wheel: order, re-arm, removal, wrap-around, work per tick. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <glib.h>

#include "common/timerwheel.h"

#define SEC G_USEC_PER_SEC

/* What the fire callback saw, in order. */
struct fired {
	uint32_t ids[64];
	int64_t at[64];            /* the @now of the expire call that fired it */
	size_t n;
	int64_t now;
	struct timerwheel *w;
	int64_t rearm_us;          /* non-zero: re-arm each fired id this far ahead */
};

static void on_fire(uint32_t id, void *opaque)
{
	struct fired *f = opaque;

	assert_true(f->n < G_N_ELEMENTS(f->ids));
	/* Disarmed before the callback. */
	assert_int_equal(timerwheel_deadline(f->w, id), 0);
	f->ids[f->n] = id;
	f->at[f->n++] = f->now;
	if (f->rearm_us)
		timerwheel_arm(f->w, id, f->now + f->rearm_us);
}

/* Step the clock one second at a time from @from to @to, expiring at each step. */
static void run_until(struct fired *f, int64_t from, int64_t to)
{
	for (int64_t t = from; t <= to; t += SEC) {
		f->now = t;
		timerwheel_expire(f->w, t, on_fire, f);
	}
}

static void test_bad_arguments(void **state)
{
	struct timerwheel *w = NULL;

	(void)state;
	assert_int_equal(timerwheel_new(0, SEC, &w), -EINVAL);
	assert_int_equal(timerwheel_new(4, 0, &w), -EINVAL);
	timerwheel_free(NULL);
}

/* Ids fire in deadline order across ticks, each once, never before its deadline. */
static void test_expiry_order(void **state)
{
	static const int64_t when[] = { 7 * SEC + 1, 3 * SEC, 5 * SEC + 500000, 1 * SEC, 9 * SEC };
	struct fired f = { 0 };

	(void)state;
	assert_int_equal(timerwheel_new(8, SEC, &f.w), 0);
	for (uint32_t i = 0; i < G_N_ELEMENTS(when); i++)
		timerwheel_arm(f.w, i, 100 * SEC + when[i]);
	run_until(&f, 100 * SEC, 110 * SEC);
	assert_int_equal(f.n, 5);
	assert_int_equal(f.ids[0], 3);
	assert_int_equal(f.ids[1], 1);
	assert_int_equal(f.ids[2], 2);
	assert_int_equal(f.ids[3], 0);
	assert_int_equal(f.ids[4], 4);
	for (size_t i = 0; i < f.n; i++) {
		int64_t deadline = 100 * SEC + when[f.ids[i]];

		/* Not early, and no later than the first tick at or after the deadline. */
		assert_true(f.at[i] >= deadline);
		assert_true(f.at[i] < deadline + SEC);
	}
	/* Nothing fires twice. */
	run_until(&f, 111 * SEC, 120 * SEC);
	assert_int_equal(f.n, 5);
	timerwheel_free(f.w);
}

/* Activity moves a deadline later (stored only); the id fires at the last one. */
static void test_rearm_on_activity(void **state)
{
	struct fired f = { 0 };

	(void)state;
	assert_int_equal(timerwheel_new(4, SEC, &f.w), 0);
	timerwheel_arm(f.w, 2, 10 * SEC);
	for (int64_t t = 1 * SEC; t <= 30 * SEC; t += SEC) {
		/* A packet every second until 20 s pushes the idle deadline 10 s on. */
		if (t <= 20 * SEC)
			timerwheel_arm(f.w, 2, t + 10 * SEC);
		f.now = t;
		timerwheel_expire(f.w, t, on_fire, &f);
		if (t < 30 * SEC)
			assert_int_equal(f.n, 0);
	}
	assert_int_equal(f.n, 1);
	assert_int_equal(f.at[0], 30 * SEC);

	/* Moving a deadline earlier takes effect at once. */
	timerwheel_arm(f.w, 1, 500 * SEC);
	timerwheel_arm(f.w, 1, 32 * SEC);
	run_until(&f, 31 * SEC, 33 * SEC);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.ids[1], 1);
	assert_int_equal(f.at[1], 32 * SEC);

	/* The callback may keep an id by re-arming it. */
	f.rearm_us = 5 * SEC;
	timerwheel_arm(f.w, 3, 40 * SEC);
	run_until(&f, 34 * SEC, 50 * SEC);
	assert_int_equal(f.n, 5);
	assert_int_equal(f.at[2], 40 * SEC);
	assert_int_equal(f.at[3], 45 * SEC);
	assert_int_equal(f.at[4], 50 * SEC);
	timerwheel_free(f.w);
}

/* A disarmed id never fires; arming 0 disarms; disarming twice is harmless. */
static void test_removal(void **state)
{
	struct fired f = { 0 };

	(void)state;
	assert_int_equal(timerwheel_new(4, SEC, &f.w), 0);
	timerwheel_arm(f.w, 0, 5 * SEC);
	timerwheel_arm(f.w, 1, 5 * SEC);
	timerwheel_arm(f.w, 2, 5 * SEC);
	timerwheel_arm(f.w, 3, 6 * SEC);
	timerwheel_disarm(f.w, 1);
	timerwheel_disarm(f.w, 1);
	timerwheel_arm(f.w, 2, 0);
	assert_int_equal(timerwheel_deadline(f.w, 1), 0);
	assert_int_equal(timerwheel_deadline(f.w, 3), 6 * SEC);
	run_until(&f, 0, 10 * SEC);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.ids[0], 0);
	assert_int_equal(f.ids[1], 3);
	timerwheel_free(f.w);
}

/* Deadlines laps ahead, in the same bucket as near ones, fire at their own time. */
static void test_wrap_around(void **state)
{
	struct fired f = { 0 };
	int64_t lap = (int64_t)TIMERWHEEL_BUCKETS * SEC;

	(void)state;
	assert_int_equal(timerwheel_new(4, SEC, &f.w), 0);
	timerwheel_arm(f.w, 0, 3 * SEC);
	timerwheel_arm(f.w, 1, 3 * SEC + lap);
	timerwheel_arm(f.w, 2, 3 * SEC + 3 * lap);
	run_until(&f, 0, 3 * SEC);
	assert_int_equal(f.n, 1);
	run_until(&f, 4 * SEC, 2 * SEC + lap);
	assert_int_equal(f.n, 1);
	run_until(&f, 3 * SEC + lap, 3 * SEC + lap);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.ids[1], 1);
	/* A stall of several laps: one walk of the wheel, the due id fires, the rest waits. */
	timerwheel_arm(f.w, 3, 10 * SEC + 5 * lap);
	f.now = 4 * SEC + 3 * lap;
	timerwheel_expire(f.w, f.now, on_fire, &f);
	assert_int_equal(f.n, 3);
	assert_int_equal(f.ids[2], 2);
	assert_int_equal(timerwheel_deadline(f.w, 3), 10 * SEC + 5 * lap);
	f.now = 10 * SEC + 5 * lap;
	timerwheel_expire(f.w, f.now, on_fire, &f);
	assert_int_equal(f.n, 4);
	assert_int_equal(f.ids[3], 3);
	timerwheel_free(f.w);
}

#define MANY 100000

/*
 * Bounded work: with many ids armed far ahead and one due, a tick looks at
 * the due one and those sharing its bucket, not at all of them; a long stall
 * looks at each armed id at most once.
 */
static void test_bounded_work_per_tick(void **state)
{
	struct timerwheel *w = NULL;
	uint64_t before;

	(void)state;
	assert_int_equal(timerwheel_new(MANY + 1, SEC, &w), 0);
	/* All in the bucket after the next, a whole minute of laps ahead. */
	for (uint32_t i = 0; i < MANY; i++)
		timerwheel_arm(w, i, (2 + 60 * (int64_t)TIMERWHEEL_BUCKETS) * SEC);
	timerwheel_arm(w, MANY, 1 * SEC);
	assert_int_equal(timerwheel_expire(w, 0, NULL, NULL), 0);
	assert_int_equal(timerwheel_visits(w), 0);
	assert_int_equal(timerwheel_expire(w, 1 * SEC, NULL, NULL), 1);
	assert_int_equal(timerwheel_visits(w), 1);
	/* Idle ticks: nothing to look at. */
	for (int64_t t = 1; t <= 1000; t++)
		timerwheel_expire(w, 1 * SEC, NULL, NULL);
	assert_int_equal(timerwheel_visits(w), 1);
	/* Their bucket comes round: each looked at once, none fires, none looked at again. */
	before = timerwheel_visits(w);
	assert_int_equal(timerwheel_expire(w, 2 * SEC, NULL, NULL), 0);
	assert_int_equal(timerwheel_visits(w) - before, MANY);
	before = timerwheel_visits(w);
	for (int64_t t = 3; t < 3 + TIMERWHEEL_BUCKETS - 1; t++)
		timerwheel_expire(w, t * SEC, NULL, NULL);
	assert_int_equal(timerwheel_visits(w) - before, 0);
	timerwheel_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_expiry_order),
		cmocka_unit_test(test_rearm_on_activity),
		cmocka_unit_test(test_removal),
		cmocka_unit_test(test_wrap_around),
		cmocka_unit_test(test_bounded_work_per_tick),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
