/* cpuload.h - whether some task waits for a CPU now, from /proc/loadavg: the busy-poll loop's guard. */
#ifndef MESHSLIRP_COMMON_CPULOAD_H
#define MESHSLIRP_COMMON_CPULOAD_H

/*
 * Theory of operation
 *
 * A thread that polls instead of sleeping keeps its CPU for itself.  Where
 * a CPU would otherwise idle, that costs nobody anything; where another
 * task is runnable and waiting, the poll takes that task's turn (a
 * sched_yield() hands the CPU only to a task queued on the same one, and
 * a polling thread counts as load, so the scheduler does not move waiting
 * tasks to it either).  On a machine with no spare CPU, bulk transfers
 * lost up to 19% to --busy-poll that way (docs/PERFORMANCE.md, "Busy polling").
 *
 * The kernel counts the tasks running or runnable now, on all CPUs, in
 * the fourth field of /proc/loadavg ("1/84": one of 84 tasks).  More of
 * them than online CPUs means some task waits: polling would take its
 * turn.  Reading it is one pread() of a small file the kernel formats on
 * the spot (about 1 us); the descriptor is opened once, before the
 * sandbox, and kept.  The count is machine-wide (a container sees the
 * node's), which is what the scheduler shares out.  It knows nothing of a
 * cgroup's CPU quota, which is no queue of runnable tasks: --busy-poll auto
 * looks for one at start instead (common/cgquota.h).
 *
 * Nothing is allocated; any read or parse failure says "not contended",
 * so the guard can only make polling stop, never make the loop fail.
 */

#include <stdbool.h>
#include <stddef.h>

struct cpuload {
	int fd;                    /* /proc/loadavg, -1: closed */
	long cpus;                 /* online CPUs when opened */
};

#define CPULOAD_CLOSED ((struct cpuload){ .fd = -1 })

/**
 * cpuload_parse_runnable() - the running-or-runnable count in a /proc/loadavg line
 * @buf, @len:	the file's text (not NUL-terminated)
 * @runnable:	set to the count on success
 *
 * The text is the kernel's: three space-separated load averages, then
 * "N/M" (N running or runnable, M tasks in all), then the last PID.
 *
 * Return: 0, or -EINVAL when the first three fields are not each something
 * followed by one space, or the fourth is not decimal N, '/', decimal M
 * (N within a long); *@runnable is then left alone.
 */
int cpuload_parse_runnable(const char *buf, size_t len, long *runnable);

/**
 * cpuload_open() - open /proc/loadavg for cpuload_check_contended()
 * @cl:	set up on success (the caller owns its descriptor: cpuload_close());
 *	left closed on failure
 *
 * Return: 0 or -errno (no procfs).
 */
int cpuload_open(struct cpuload *cl);

/**
 * cpuload_check_contended() - whether more tasks are runnable now than CPUs are online
 * @opaque:	a struct cpuload from cpuload_open(), borrowed (mainloop.h's
 *		guard signature)
 *
 * One pread() of the file.
 *
 * Return: true if some task waits for a CPU; false if not, or if it is
 * closed, or the file could not be read or parsed.
 */
bool cpuload_check_contended(void *opaque);

/**
 * cpuload_close() - close its descriptor
 * @cl:	from cpuload_open(), or closed (CPULOAD_CLOSED): then a no-op
 */
void cpuload_close(struct cpuload *cl);

#endif
