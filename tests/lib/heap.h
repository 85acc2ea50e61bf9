/* heap.h - how much of glibc's heap is in use, for tests that bound what libslirp keeps. */
#ifndef MESHSLIRP_TESTS_HEAP_H
#define MESHSLIRP_TESTS_HEAP_H

#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>

/* Bytes in use, as glibc counts them; meaningless where the allocator is replaced. */
static inline size_t test_heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/*
 * Whether test_heap_in_use() sees a 1 MiB block come and go: not where
 * valgrind or ASan bring their own allocator, whose blocks glibc never
 * counts.  Tests skip their heap checks then.
 */
static inline bool test_heap_measurable(void)
{
	size_t probe = test_heap_in_use();
	void *block = malloc(1 << 20);
	bool seen = block && test_heap_in_use() >= probe + (1 << 20);

	free(block);
	return seen;
}

#endif
