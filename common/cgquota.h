/* cgquota.h - whether a cgroup CPU quota applies to this process: --busy-poll auto stays off under one. */
#ifndef MESHSLIRP_COMMON_CGQUOTA_H
#define MESHSLIRP_COMMON_CGQUOTA_H

/*
 * Theory of operation
 *
 * Polling is free only where the CPU would otherwise idle (common/cpuload.h).
 * A cgroup CPU quota breaks that: every microsecond polled is charged to
 * the quota, and in a KubeVirt pod the quota of the compute container is
 * shared with the VM's vCPUs, which the polling would then throttle.  The
 * load guard cannot see that (a quota is no queue of runnable tasks), so
 * --busy-poll auto asks once, at start, whether one applies.
 *
 * Where: the process's cgroup is in /proc/self/cgroup, one line per
 * hierarchy: "0::PATH" for cgroup v2, "N:cpu,cpuacct:PATH" for a v1 cpu
 * controller.  A quota is set in cpu.max ("QUOTA PERIOD", or "max PERIOD"
 * for none) on v2, in cpu.cfs_quota_us ("-1" for none) on v1, and binds
 * every cgroup below the one it is set on.  So each of PATH's ancestors is
 * read, from PATH up to the mount's root; a directory that does not exist
 * is skipped, which also covers a container whose cgroup mount starts
 * deeper than the PATH it is shown (v1 without a cgroup namespace: the
 * mount's root is then the container's own cgroup, and read last).
 *
 * The answer is taken once: a quota set later (an in-place resize) is not
 * seen until the daemon restarts (docs/DEPLOY.md).  Start-up only: it
 * allocates, and reads files the sandbox later closes off.
 */

#include <stdbool.h>
#include <stddef.h>

/**
 * cgquota_parse_cpu_max() - whether a cgroup v2 cpu.max text sets a quota
 * @text:	the file's content, NUL-terminated ("max 100000\n", "50000 100000\n")
 * @limited:	set on success
 *
 * Return: 0, or -EINVAL when the first field is neither "max" nor a decimal
 * count, or the second (the period) is not a decimal count.
 */
int cgquota_parse_cpu_max(const char *text, bool *limited);

/**
 * cgquota_parse_cfs_quota() - whether a cgroup v1 cpu.cfs_quota_us text sets a quota
 * @text:	the file's content, NUL-terminated ("-1\n", "50000\n")
 * @limited:	set on success
 *
 * Return: 0, or -EINVAL when the text is neither -1 nor a decimal count.
 */
int cgquota_parse_cfs_quota(const char *text, bool *limited);

/**
 * cgquota_find_in() - look for a CPU quota over a cgroup, under given roots
 * @cgroup_text:	the content of /proc/self/cgroup, NUL-terminated
 * @v2_root:		where the cgroup v2 hierarchy is mounted (NULL: none)
 * @v1_roots:		NULL-terminated list of where a v1 cpu controller may be
 *			mounted, tried in order (NULL: none)
 * @where:		on 1, "FILE: VALUE" of the first quota found, from the
 *			deepest cgroup up (@where_len bytes, truncated)
 *
 * Return: 1 if a quota applies, 0 if none was found, -ENOENT when the text
 * names no cgroup of either kind, -EINVAL for a line that is not
 * "ID:CONTROLLERS:PATH" with an absolute PATH, or for a quota file that
 * does not parse (a kernel that says something else: taken as unknown).
 */
int cgquota_find_in(const char *cgroup_text, const char *v2_root, const char *const *v1_roots,
		    char *where, size_t where_len);

/**
 * cgquota_find() - cgquota_find_in() for this process, with the usual mounts
 *
 * /proc/self/cgroup, cgroup v2 at /sys/fs/cgroup when it is the unified
 * hierarchy (cgroup.controllers there), v1's cpu controller at
 * /sys/fs/cgroup/cpu,cpuacct or /sys/fs/cgroup/cpu.  Returns as
 * cgquota_find_in(), or -errno when /proc/self/cgroup cannot be read.
 */
int cgquota_find(char *where, size_t where_len);

#endif
