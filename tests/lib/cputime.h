/* cputime.h - the CPU time this test process used, to tell a waiting loop from a spinning one. */
#ifndef MESHSLIRP_TESTS_CPUTIME_H
#define MESHSLIRP_TESTS_CPUTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>

/* User plus system time of the whole process, in microseconds. */
static inline int64_t test_cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

/*
 * Whether the process used less than @share_pct percent of @wall_ms of one
 * core since test_cpu_us() said @since_us: a loop that waits takes a few
 * turns, one that spins takes the core.  Always true under valgrind, whose
 * emulation makes every turn costly (meson's valgrind test setup sets
 * MESHSLIRP_UNDER_VALGRIND).
 */
static inline bool test_cpu_share_below(int64_t since_us, unsigned int wall_ms,
					unsigned int share_pct)
{
	if (getenv("MESHSLIRP_UNDER_VALGRIND"))
		return true;
	return test_cpu_us() - since_us < (int64_t)wall_ms * 1000 * share_pct / 100;
}

#endif
