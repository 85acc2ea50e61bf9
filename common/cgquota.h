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
 * every cgroup below the one it is set on.  The hierarchy's mount comes
 * from /proc/self/mountinfo: its mount point, and the cgroup it shows
 * there (its root, the fourth field: a container's own cgroup where the
 * container was given only its subtree).  PATH less that root, under the
 * mount point, is our cgroup's directory; it and each ancestor up to the
 * mount point are read, deepest first.  A directory that does not exist
 * is skipped.  Quotas above the mount's root cannot be seen, and a PATH
 * outside the mount's root (another cgroup namespace's view) leaves that
 * hierarchy unread.
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
 * cgquota_find_in() - look for a CPU quota over a cgroup, given the process's views
 * @cgroup_text:	the content of /proc/self/cgroup, NUL-terminated
 * @mountinfo_text:	the content of /proc/self/mountinfo, NUL-terminated
 * @where:		on 1, "FILE: VALUE" of the first quota found, from the
 *			deepest cgroup up; on -EINVAL for a quota file, that
 *			file's name; else left alone
 * @where_len:		@where's size in bytes (the text is truncated to fit)
 *
 * Return: 1 if a quota applies, 0 if none was found, -ENOENT when no line
 * names a cgroup v2 or v1 cpu hierarchy that is mounted with our cgroup in
 * view, -EINVAL for a /proc/self/cgroup line that is not
 * "ID:CONTROLLERS:PATH" with an absolute PATH free of "..", or for a quota
 * file that does not parse, -errno when a quota file that exists cannot
 * be read.
 */
int cgquota_find_in(const char *cgroup_text, const char *mountinfo_text, char *where,
		    size_t where_len);

/**
 * cgquota_find() - cgquota_find_in() for this process
 * @where, @where_len:	as cgquota_find_in()'s
 *
 * Return: as cgquota_find_in(), or -ENOENT, -EACCES or (any other failure)
 * -EIO when /proc/self/cgroup or /proc/self/mountinfo cannot be read.
 * A quota file's read error is -ENOENT, -ENOTDIR, -EISDIR, -EACCES or -EIO
 * likewise.
 */
int cgquota_find(char *where, size_t where_len);

#endif
