/* test_cpuload.c - the runnable count read from /proc/loadavg's text, and the guard on this machine's file. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cpuload.h"

static int parse(const char *text, long *runnable)
{
	return cpuload_parse_runnable(text, strlen(text), runnable);
}

/* The fourth field's count, as the kernel writes it. */
static void test_parse_ok(void **state)
{
	static const struct {
		const char *text;
		long want;
	} cases[] = {
		{ "0.93 1.08 1.35 1/84 20349\n", 1 },
		{ "12.50 9.00 4.10 17/1203 998877\n", 17 },
		{ "0.00 0.00 0.00 0/1 1", 0 },
		{ "0.00 0.00 0.00 9223372036854775807/1 1", 9223372036854775807L },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long n = -1;

		assert_int_equal(parse(cases[i].text, &n), 0);
		assert_int_equal(n, cases[i].want);
	}
}

/* Anything else is refused, and the count left alone: the guard then says "not contended". */
static void test_parse_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"0.93 1.08 1.35",
		"0.93 1.08 1.35 ",
		"0.93 1.08 1.35 /84 1",
		"0.93 1.08 1.35 x/84 1",
		"0.93 1.08 1.35 -1/84 1",
		"0.93 1.08 1.35 184 1",
		"0.93 1.08 1.35 1",
		"0.93 1.08 1.35 92233720368547758070/1 1",
		"0.93\t1.08\t1.35\t1/84",
		"   5/1",
		"a b c 5/",
		"x y z 7/garbage",
		"0.93 1.08  1.35 1/84 1",
		"0.93 1.08 1.35 1/ 1",
		"0.93\n1.08 1.35 1/84 1",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long n = 42;

		assert_int_equal(parse(bad[i], &n), -EINVAL);
		assert_int_equal(n, 42);
	}
}

/* Only @len bytes are read: a field cut off before its '/', or before M, is no count. */
static void test_parse_length_bounds(void **state)
{
	const char *text = "0.93 1.08 1.35 15/84 1";
	long n = 42;

	(void)state;
	for (size_t len = 0; len <= 18; len++)
		assert_int_equal(cpuload_parse_runnable(text, len, &n), -EINVAL);
	assert_int_equal(n, 42);
	assert_int_equal(cpuload_parse_runnable(text, 19, &n), 0);
	assert_int_equal(n, 15);
}

/*
 * This machine's file opens, and its text parses with this test among the
 * running (a format the parser refused would switch the guard off without
 * a word); closed, the guard says no, and closing again is a no-op.
 */
static void test_open_contended_close(void **state)
{
	struct cpuload cl;
	char buf[128];
	ssize_t n;
	long runnable = 0;

	(void)state;
	assert_int_equal(cpuload_open(&cl), 0);
	assert_true(cl.fd >= 0);
	assert_true(cl.cpus >= 1);
	n = pread(cl.fd, buf, sizeof(buf), 0);
	assert_true(n > 0);
	assert_int_equal(cpuload_parse_runnable(buf, (size_t)n, &runnable), 0);
	assert_true(runnable >= 1);
	(void)cpuload_check_contended(&cl); /* either answer: the machine's load is not ours */
	cpuload_close(&cl);
	assert_int_equal(cl.fd, -1);
	assert_false(cpuload_check_contended(&cl));
	cpuload_close(&cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_length_bounds),
		cmocka_unit_test(test_open_contended_close),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
