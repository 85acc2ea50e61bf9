/* sandbox.h - least privilege: leave root for --user, keep only the capability still needed, seccomp. */
#ifndef MESHSLIRP_DAEMON_SANDBOX_H
#define MESHSLIRP_DAEMON_SANDBOX_H

/*
 * main calls, in this order (docs/SECURITY.md has the whole story):
 *
 *   sandbox_resolve_user()   before any set-up: --user names must exist (exit 2)
 *   daemon_start()           privileged set-up: tap, setns, exposed ports, sockets
 *   sandbox_drop()           while single-threaded: user, groups, capabilities,
 *                            no_new_privs; verified, fatal on any failure
 *   (GLib's signal sources start its worker thread here, and with
 *   --vhost-user the stall guard its watcher: common/stallguard.h)
 *   sandbox_seccomp_apply()  with --seccomp: the allowlist, on every thread
 *
 * Every function returns 0 or -errno.  sandbox_drop() and
 * sandbox_seccomp_apply() print one line naming the step that failed; the
 * caller must then exit, never carry on with privileges it meant to drop.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <glib.h>

/* The one capability the daemon may keep: bind(2) below the unprivileged port start. */
#define SANDBOX_CAP_NET_BIND_SERVICE 10

struct sandbox_user {
	uid_t uid;
	gid_t gid;
};

/**
 * sandbox_resolve_user() - turn "USER[:GROUP]" into ids
 * @spec:	a user name or number, optionally ":" and a group name or number
 * @out:	the ids; without GROUP, the user's primary group
 * @why:	on failure, a static reason ("no such user", ...)
 *
 * A number with no passwd entry is accepted as a uid but then needs GROUP.
 * uid 0 and gid 0 are refused: the point is to leave root.
 *
 * Return: 0, -ENOENT (no such user or group) or -EINVAL (malformed, or root).
 */
int sandbox_resolve_user(const char *spec, struct sandbox_user *out, const char **why);

/**
 * sandbox_unprivileged_port_start() - net.ipv4.ip_unprivileged_port_start of
 * the caller's network namespace (1024 if it cannot be read: the kernel's
 * value before the sysctl existed)
 */
unsigned int sandbox_unprivileged_port_start(void);

/**
 * sandbox_needs_net_bind() - whether binding @expose's host ports needs
 * CAP_NET_BIND_SERVICE, given the namespace's @port_start
 * @expose:	struct bridge_expose array (--expose, later the control socket's list)
 */
bool sandbox_needs_net_bind(const GArray *expose, unsigned int port_start);

struct sandbox_config {
	bool set_user;               /* become @user; the caller must be root */
	struct sandbox_user user;
	bool keep_net_bind;          /* keep CAP_NET_BIND_SERVICE (and nothing else) */
	const char *const *sockets;  /* NULL-terminated unix socket paths handed to @user */
};

/**
 * sandbox_drop() - give up every privilege the running daemon does not need
 *
 * Always sets no_new_privs.  Then:
 * - @set_user: chowns @sockets to the user and group, drops every capability
 *   from the bounding set but the kept one, clears ambient and inheritable
 *   capabilities and the supplementary groups, switches real, effective and
 *   saved ids, and keeps CAP_NET_BIND_SERVICE in the effective and permitted
 *   sets only if @keep_net_bind;
 * - not root: the same for capabilities it may hold (file capabilities,
 *   systemd's AmbientCapabilities=), without any id change;
 * - root without @set_user: nothing more (main warns about it).
 *
 * Then it checks the result: ids, groups, capability sets, no_new_privs, and
 * that setuid(0) and setgid(0) fail.  Must run while the process has a single
 * thread: capabilities are per thread.
 *
 * Return: 0, or -errno after printing "meshslirp: cannot drop privileges: ...".
 */
int sandbox_drop(const struct sandbox_config *sc);

/* sandbox_holds_net_bind() - whether CAP_NET_BIND_SERVICE is in the effective set. */
bool sandbox_holds_net_bind(void);

/* What the allowlist adds for features that need more calls, only when they are configured. */
enum sandbox_seccomp_extra {
	/* --outbound-proxy unix:PATH: socket(AF_UNIX, SOCK_STREAM|NONBLOCK|CLOEXEC), dup3 */
	SANDBOX_UNIX_OUTBOUND = 1u << 0,
	/* --expose unix:...: dup3 (accept4, connect, AF_INET sockets are allowed anyway) */
	SANDBOX_UNIX_INBOUND = 1u << 1,
	/* --steer-stack kernel: splice, pipe2, and ioctl TUNSETOFFLOAD on its tun */
	SANDBOX_KERNEL_STEER = 1u << 2,
	/* --busy-poll: sched_yield between empty polls (common/mainloop.h) */
	SANDBOX_BUSY_POLL = 1u << 3,
	/* --busy-poll-when idle: pread of /proc/loadavg, the guard's question (common/cpuload.h) */
	SANDBOX_BUSY_POLL_GUARD = 1u << 4,
	/* --sched auto|batch: sched_setscheduler(0, SCHED_OTHER or SCHED_BATCH) (common/schedmode.h) */
	SANDBOX_SCHED = 1u << 5,
};

/**
 * sandbox_seccomp_apply() - load the daemon's system call allowlist
 * @extras:	enum sandbox_seccomp_extra bits: calls allowed only when the
 *		unix legs that need them are configured
 *
 * On every thread of the process (TSYNC).  A call outside the list kills the
 * whole process with SIGSYS (SCMP_ACT_KILL_PROCESS); the kernel's audit log
 * records which call it was.  Irreversible.
 *
 * Return: 0, or -errno after printing "meshslirp: --seccomp: ...".
 */
int sandbox_seccomp_apply(unsigned int extras);

/* sandbox_seccomp_rules() - how many rules the allowlist has with @extras (log, tests). */
size_t sandbox_seccomp_rules(unsigned int extras);

#endif /* MESHSLIRP_DAEMON_SANDBOX_H */
