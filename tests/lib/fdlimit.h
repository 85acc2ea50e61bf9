/* fdlimit.h - run the main loop with no file descriptor to spare, as a daemon out of them. */
#ifndef MESHSLIRP_TESTS_FDLIMIT_H
#define MESHSLIRP_TESTS_FDLIMIT_H

#include <errno.h>
#include <unistd.h>
#include <sys/resource.h>

#include <glib.h>

/*
 * Lower RLIMIT_NOFILE to the lowest free descriptor, so that the next
 * accept() (or any call that makes a descriptor) fails with EMFILE, run
 * @turns non-blocking iterations of the default main context, and put the
 * limit back.  Returns 0, or -errno if the limit could not be read or set.
 * Not under valgrind, whose descriptor table and limit are its own.
 */
static inline int test_iterate_without_fds(unsigned int turns)
{
	struct rlimit old, low;
	int spare = dup(0);

	if (spare < 0 || getrlimit(RLIMIT_NOFILE, &old) < 0)
		return -errno;
	close(spare);
	low = (struct rlimit){ .rlim_cur = (rlim_t)spare, .rlim_max = old.rlim_max };
	if (setrlimit(RLIMIT_NOFILE, &low) < 0)
		return -errno;
	for (unsigned int i = 0; i < turns; i++)
		g_main_context_iteration(NULL, FALSE);
	return setrlimit(RLIMIT_NOFILE, &old) < 0 ? -errno : 0;
}

#endif
