/* test_ratelimit.c - unit tests of the log rate limiter. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/ratelimit.h"

static void test_burst_then_suppress_then_report(void **state)
{
	struct ratelimit rl = RATELIMIT_INIT(3);
	uint64_t sup = 99;
	int allowed = 0;

	(void)state;
	for (int i = 0; i < 10; i++)
		allowed += ratelimit_allow(&rl, 5000000 + i, &sup);
	assert_int_equal(allowed, 3);
	/* Next window: allowed again, and told how many were suppressed. */
	assert_true(ratelimit_allow(&rl, 6000001, &sup));
	assert_int_equal(sup, 7);
	assert_true(ratelimit_allow(&rl, 6000002, &sup));
	assert_int_equal(sup, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_suppress_then_report),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
