/* cputime.h - the CPU time this test process used, to tell a waiting loop from a spinning one. */
#ifndef MESHSLIRP_TESTS_CPUTIME_H
#define MESHSLIRP_TESTS_CPUTIME_H

#include <stdint.h>
#include <sys/resource.h>

/* User plus system time of the whole process, in microseconds. */
static inline int64_t test_cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

#endif
