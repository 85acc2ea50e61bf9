/* test_schedmode.c - --sched auto's decision over windows of bytes moved, and the switch itself on this machine. */

#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>

#include "common/schedmode.h"

#define W SCHEDMODE_WINDOW_US
/* Bytes that move in @us at @bps, rounded up: AT(rate, span) reads as at least rate. */
#define AT(bps, us) ((uint64_t)(((bps) * (uint64_t)(us) + 999999u) / 1000000u))

/* A state whose window began at 0 with 0 bytes, running as @batch. */
static struct schedmode state_at_zero(bool batch)
{
	struct schedmode sm = { .batch = batch };

	assert_false(schedmode_decide(&sm, 0, 0)); /* the first call only begins a window */
	assert_true(sm.window_open);
	return sm;
}

/*
 * Batches every STEP from @t0 to @t1, the byte counter going evenly from
 * @b0 to @b1: whether the last asks for a switch; none before it may.
 */
#define STEP (W / 10)
static bool feed(struct schedmode *sm, int64_t t0, int64_t t1, uint64_t b0, uint64_t b1)
{
	for (int64_t t = t0 + STEP; t < t1; t += STEP)
		assert_false(schedmode_decide(sm, t, b0 + (b1 - b0) * (uint64_t)(t - t0) /
								(uint64_t)(t1 - t0)));
	return schedmode_decide(sm, t1, b1);
}

/* One window of batches, from each policy: whether its close asks for a switch. */
static void test_one_window(void **state)
{
	static const struct {
		bool batch;     /* the policy the window ran under */
		uint64_t bytes; /* moved in it */
		bool want;      /* a switch asked */
	} cases[] = {
		/* Entering: at the threshold, not one byte below. */
		{ false, AT(SCHEDMODE_ENTER_BPS, W), true },
		{ false, AT(SCHEDMODE_ENTER_BPS, W) - 1, false },
		{ false, 0, false },
		/* Leaving: below the lower threshold only; between the two, stay. */
		{ true, AT(SCHEDMODE_LEAVE_BPS, W) - 1, true },
		{ true, AT(SCHEDMODE_LEAVE_BPS, W), false },
		{ true, AT(SCHEDMODE_ENTER_BPS, W) - 1, false },
		{ true, 0, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct schedmode sm = state_at_zero(cases[i].batch);

		assert_int_equal(feed(&sm, 0, W, 0, cases[i].bytes), cases[i].want);
		/* Either way the window closed and the next began there. */
		assert_int_equal(sm.window_start_us, W);
		assert_int_equal(sm.window_start_bytes, cases[i].bytes);
		assert_int_equal(sm.batch, cases[i].batch); /* only schedmode_switched() flips it */
	}
}

/*
 * The thresholds to the byte: a window of 125 ms (closed by a batch 75 ms
 * after the one before, so no quiet spell) holds a whole number of bytes at
 * either rate; at the rate itself SCHED_BATCH is entered and kept, one
 * byte less leaves or does not enter.
 */
static void test_exact_thresholds(void **state)
{
	static const struct {
		bool batch;
		uint64_t bytes;
		bool want;
	} cases[] = {
		{ false, SCHEDMODE_ENTER_BPS / 8, true },
		{ false, SCHEDMODE_ENTER_BPS / 8 - 1, false },
		{ true, SCHEDMODE_LEAVE_BPS / 8, false },
		{ true, SCHEDMODE_LEAVE_BPS / 8 - 1, true },
	};

	(void)state;
	G_STATIC_ASSERT(SCHEDMODE_ENTER_BPS % 8 == 0 && SCHEDMODE_LEAVE_BPS % 8 == 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct schedmode sm = state_at_zero(cases[i].batch);

		assert_false(schedmode_decide(&sm, W / 2, 0));
		assert_int_equal(schedmode_decide(&sm, W + W / 4, cases[i].bytes), cases[i].want);
	}
}

/* Before a window is due nothing is judged, however many bytes came: it keeps its start. */
static void test_window_not_due(void **state)
{
	struct schedmode sm = state_at_zero(false);

	(void)state;
	assert_false(feed(&sm, 0, W - STEP, 0, UINT64_C(1) << 40));
	assert_int_equal(sm.window_start_us, 0);
	assert_int_equal(sm.window_start_bytes, 0);
	assert_true(schedmode_decide(&sm, W, UINT64_C(1) << 40));
}

/*
 * A quiet spell of a window between two batches ends SCHED_BATCH at the
 * batch after it, though the bytes before it would read as bulk; one a
 * microsecond shorter does not.  Without SCHED_BATCH it only begins a
 * new window.
 */
static void test_quiet_spell(void **state)
{
	struct schedmode sm = state_at_zero(true);
	uint64_t bulk = AT(1000000000ull, W / 2);

	(void)state;
	assert_false(feed(&sm, 0, W / 2, 0, bulk));
	assert_true(schedmode_decide(&sm, W / 2 + W, bulk + 1));
	assert_int_equal(sm.window_start_us, W / 2 + W);
	sm = state_at_zero(true);
	assert_false(feed(&sm, 0, W / 2, 0, bulk));
	assert_false(schedmode_decide(&sm, W / 2 + W - 1, 2 * bulk)); /* closes at 1.5 W - 1: bulk */
	sm = state_at_zero(false);
	assert_false(schedmode_decide(&sm, 10 * W, AT(SCHEDMODE_ENTER_BPS, 10 * W)));
	assert_int_equal(sm.window_start_us, 10 * W);
	assert_true(feed(&sm, 10 * W, 11 * W, AT(SCHEDMODE_ENTER_BPS, 10 * W),
			 AT(SCHEDMODE_ENTER_BPS, 11 * W) + 1));
}

/* A clock that went back begins a new window; a counter that went back reads as no bytes. */
static void test_backwards(void **state)
{
	struct schedmode sm = state_at_zero(false);

	(void)state;
	assert_true(feed(&sm, 0, W, 0, AT(SCHEDMODE_ENTER_BPS, W)));
	assert_false(schedmode_decide(&sm, W / 2, UINT64_C(1) << 40));
	assert_int_equal(sm.window_start_us, W / 2);
	sm = state_at_zero(true);
	sm.window_start_bytes = 1000;
	assert_true(feed(&sm, 0, W, 10, 10)); /* below the window's start: no bytes, leave */
}

/* A bulk spell and its end: one switch each way, counted; nothing in between. */
static void test_spell(void **state)
{
	struct schedmode sm = state_at_zero(false);
	uint64_t bytes = 0;
	int64_t t = 0;
	unsigned int asked = 0;

	(void)state;
	for (int i = 0; i < 20; i++) { /* two seconds at 1 GB/s, a batch every 10 ms */
		t += W / 10;
		bytes += AT(1000000000ull, W / 10);
		if (schedmode_decide(&sm, t, bytes)) {
			asked++;
			schedmode_switched(&sm, 0);
		}
	}
	assert_int_equal(asked, 1);
	assert_true(sm.batch);
	for (int i = 0; i < 20; i++) { /* then request/response: 1 MB/s */
		t += W / 10;
		bytes += AT(1000000ull, W / 10);
		if (schedmode_decide(&sm, t, bytes)) {
			asked++;
			schedmode_switched(&sm, 0);
		}
	}
	assert_int_equal(asked, 2);
	assert_false(sm.batch);
	assert_int_equal(sm.entered, 1);
	assert_int_equal(sm.left, 1);
	assert_int_equal(sm.failures, 0);
}

/* A refused switch keeps the policy, is counted, and ends the switching. */
static void test_refused(void **state)
{
	struct schedmode sm = state_at_zero(false);

	(void)state;
	assert_true(feed(&sm, 0, W, 0, AT(SCHEDMODE_ENTER_BPS, W)));
	schedmode_switched(&sm, -EPERM);
	assert_false(sm.batch);
	assert_true(sm.disabled);
	assert_int_equal(sm.failures, 1);
	assert_int_equal(sm.entered, 0);
	assert_false(schedmode_decide(&sm, W + STEP, 2 * AT(SCHEDMODE_ENTER_BPS, W)));
	for (int64_t t = W + 2 * STEP; t <= 3 * W; t += STEP)
		assert_false(schedmode_decide(&sm, t, (uint64_t)t << 20));
}

/* The real call on this thread: to SCHED_BATCH and back. */
static void test_apply(void **state)
{
	(void)state;
	if (schedmode_current_is_other() != 1)
		skip(); /* the test was started under another policy: not ours to change */
	assert_int_equal(schedmode_apply(true), 0);
	assert_int_equal(sched_getscheduler(0) & ~SCHED_RESET_ON_FORK, SCHED_BATCH);
	assert_int_equal(schedmode_current_is_other(), 0);
	assert_int_equal(schedmode_apply(false), 0);
	assert_int_equal(sched_getscheduler(0) & ~SCHED_RESET_ON_FORK, SCHED_OTHER);
	assert_int_equal(schedmode_current_is_other(), 1);
}

/* Restoring: a no-op unless switched; a switch back counted like any other. */
static void test_restore(void **state)
{
	struct schedmode sm = { 0 };

	(void)state;
	if (schedmode_current_is_other() != 1)
		skip();
	assert_int_equal(schedmode_restore(&sm), 0);
	assert_int_equal(sm.left, 0);
	assert_int_equal(schedmode_apply(true), 0);
	schedmode_switched(&sm, 0);
	assert_int_equal(schedmode_restore(&sm), 0);
	assert_false(sm.batch);
	assert_int_equal(sm.entered, 1);
	assert_int_equal(sm.left, 1);
	assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
}

/*
 * An operator's reset-on-fork is another policy: an unprivileged thread
 * could not clear it, so the daemon must not take it for plain SCHED_OTHER.
 * Setting it needs no privilege; clearing it again does (root here).
 */
static void test_reset_on_fork_is_not_other(void **state)
{
	struct sched_param param = { .sched_priority = 0 };

	(void)state;
	if (schedmode_current_is_other() != 1 || geteuid() != 0)
		skip();
	assert_int_equal(sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &param), 0);
	assert_int_equal(schedmode_current_is_other(), 0);
	assert_int_equal(sched_setscheduler(0, SCHED_OTHER, &param), 0);
	assert_int_equal(schedmode_current_is_other(), 1);
}

/* --sched's words, as the metrics and the log print them. */
static void test_policy_name(void **state)
{
	(void)state;
	assert_string_equal(schedmode_policy_name(SCHEDMODE_AUTO), "auto");
	assert_string_equal(schedmode_policy_name(SCHEDMODE_NORMAL), "normal");
	assert_string_equal(schedmode_policy_name(SCHEDMODE_BATCH), "batch");
	assert_string_equal(schedmode_policy_name(SCHEDMODE_POLICY_COUNT), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_window),
		cmocka_unit_test(test_exact_thresholds),
		cmocka_unit_test(test_window_not_due),
		cmocka_unit_test(test_quiet_spell),
		cmocka_unit_test(test_backwards),
		cmocka_unit_test(test_spell),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_restore),
		cmocka_unit_test(test_reset_on_fork_is_not_other),
		cmocka_unit_test(test_policy_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
