/* sandbox.c - least privilege: leave root for --user, keep only the capability still needed, seccomp. */

/*
 * Theory of operation
 *
 * What needs privilege, and when.  Everything privileged happens in
 * daemon_start(), before any guest frame or client byte is read:
 *   - opening /dev/net/tun and creating the tap (CAP_NET_ADMIN), inside
 *     --netns (setns: CAP_SYS_ADMIN);
 *   - binding --expose ports below net.ipv4.ip_unprivileged_port_start
 *     (CAP_NET_BIND_SERVICE), the metrics port likewise;
 *   - creating the stream and control sockets in directories only root may
 *     write to.
 * After that the daemon only reads and writes descriptors it holds, plus
 * ordinary sockets (libslirp's host sockets: TCP, UDP, ICMP "ping" sockets).
 * One thing may still need a privilege later: add_hostfwd on the control
 * socket binding a low port.  The rule: CAP_NET_BIND_SERVICE is kept if and
 * only if one of the start-up --expose ports needs it; otherwise a runtime
 * add_hostfwd of a low port fails with EACCES, like any unprivileged bind.
 *
 * The drop (sandbox_drop), right after daemon_start():
 *   1. no_new_privs, always: nothing this process could exec gains privileges;
 *   2. started as root with --user: the unix socket files are given to the
 *      user and group (so the user's QEMU can connect, and the daemon can
 *      reclaim them), the bounding set loses every capability but the kept
 *      one, the ambient set is cleared, then supplementary groups, gid and
 *      uid (real, effective, saved) change, with PR_SET_KEEPCAPS only to carry
 *      the kept capability across setresuid();
 *   3. effective and permitted sets become {CAP_NET_BIND_SERVICE} or {},
 *      inheritable {}.  A non-root daemon with capabilities (file caps,
 *      systemd's AmbientCapabilities=) gets the same trim;
 *   4. the result is checked, including that setuid(0) fails.  A failure at
 *      any step is fatal: main exits 1 and never serves with privileges it
 *      meant to drop.
 * The kernel marks the process non-dumpable at the uid change and it stays
 * so: other processes of the same user can neither ptrace it nor read its
 * /proc files.  Its own /proc/self/fd stays readable (same thread group).
 * Removing the socket files at exit needs write access to their directory;
 * without it the daemon warns at start-up and the next start replaces them.
 * Capabilities, no_new_privs and the bounding set are per thread, and glibc
 * offers no broadcast for capset(): the drop therefore runs while the daemon
 * has one thread, before GLib's signal handling starts its worker thread, and
 * refuses to run otherwise.  The worker thread then inherits the result.
 *
 * Root without --user keeps uid 0 and its capabilities (main warns): dropping
 * capabilities but staying uid 0 would still own every root-owned file.
 *
 * The seccomp allowlist (sandbox_seccomp_apply), with --seccomp, after the
 * drop and after the signal sources: a call not on the list kills the whole
 * process (SCMP_ACT_KILL_PROCESS), not just a thread, so a half-working
 * daemon never lingers; the kernel records the call in its audit log.  The
 * list was taken from strace of the end-to-end scenarios (docs/SECURITY.md
 * says how to redo it); a few calls are narrowed by argument:
 *   - socket() only for AF_INET: the daemon never opens another family once
 *     running (no AF_PACKET, AF_NETLINK, AF_UNIX), with one exception:
 *     with --outbound-proxy unix:PATH each steered flow connects a new
 *     socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC), exactly
 *     those arguments and only then;
 *   - dup3() only with a unix leg configured: it puts the unix socket on
 *     libslirp's descriptor (proxy-bridge/unixleg.h); dup and dup2 stay out;
 *   - openat() read-only: resolv.conf and /proc/self/fd are all it opens;
 *   - mmap()/mprotect() never with PROT_EXEC: no new code at runtime;
 *   - ioctl() only FIONREAD (libslirp sizes a UDP or ICMP datagram; the
 *     kernel path's relay asks whether bytes wait behind a short splice());
 *   - prctl() only PR_SET_NAME (GLib names its worker thread);
 *   - tgkill() only this process (abort() on a failed assertion; the
 *     vhost-user stall guard interrupting the data thread);
 *   - rt_sigaction() only for SIGBUS: the vhost-user backend's guard
 *     (backend/vu_mem.c, installed before the filter) gives a SIGBUS that
 *     is not a guest memory fault its default action back, so a bug still
 *     dies by SIGBUS with a core, not by SIGSYS.
 * Sanitizer builds add what their runtimes need (thread start-up, the
 * LeakSanitizer's ptrace()ing tracer at exit, symbolized reports), and only
 * in those builds.
 *
 * capget/capset and the prctl() calls are raw system calls from
 * linux/capability.h and sys/prctl.h, not libcap: the project's dependencies
 * are fixed (GLib, libslirp, OpenSSL, cmocka, and libseccomp for the filter).
 */

#include "sandbox.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <termios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/if_tun.h>

#include <seccomp.h>

#include "proxy-bridge/bridge.h"

/* Strict decimal id; false for anything else (so "1e3" is a name). */
static bool sandbox_parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (!g_ascii_isdigit(s[0]))
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !errno && !*end && *out < (unsigned long)(uid_t)-1;
}

int sandbox_resolve_user(const char *spec, struct sandbox_user *out, const char **why)
{
	g_auto(GStrv) parts = g_strsplit(spec, ":", 2);
	const struct passwd *pw;
	unsigned long id;
	bool have_gid = false;

	if (!parts[0] || !*parts[0] || (parts[1] && !*parts[1])) {
		*why = "expected USER or USER:GROUP";
		return -EINVAL;
	}
	errno = 0;
	pw = getpwnam(parts[0]);
	if (!pw && sandbox_parse_id(parts[0], &id))
		pw = getpwuid((uid_t)id);
	if (pw) {
		out->uid = pw->pw_uid;
		out->gid = pw->pw_gid;
		have_gid = true;
	} else if (sandbox_parse_id(parts[0], &id)) {
		out->uid = (uid_t)id;
	} else {
		*why = "no such user";
		return -ENOENT;
	}

	if (parts[1]) {
		const struct group *gr = getgrnam(parts[1]);

		if (gr)
			out->gid = gr->gr_gid;
		else if (sandbox_parse_id(parts[1], &id))
			out->gid = (gid_t)id;
		else {
			*why = "no such group";
			return -ENOENT;
		}
		have_gid = true;
	}
	if (!have_gid) {
		*why = "a numeric user without a passwd entry needs :GROUP";
		return -EINVAL;
	}
	if (out->uid == 0) {
		*why = "must name an unprivileged user, not uid 0";
		return -EINVAL;
	}
	if (out->gid == 0) {
		*why = "must name an unprivileged group, not gid 0";
		return -EINVAL;
	}
	return 0;
}

unsigned int sandbox_unprivileged_port_start(void)
{
	g_autofree char *text = NULL;
	unsigned long v;

	if (!g_file_get_contents("/proc/sys/net/ipv4/ip_unprivileged_port_start", &text, NULL, NULL))
		return 1024;
	g_strstrip(text);
	if (!sandbox_parse_id(text, &v) || v > 65536)
		return 1024;
	return (unsigned int)v;
}

bool sandbox_needs_net_bind(const GArray *expose, unsigned int port_start)
{
	for (guint i = 0; expose && i < expose->len; i++) {
		if (g_array_index(expose, struct bridge_expose, i).host_port < port_start)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ capabilities */

#define CAP_BIT(c) (UINT64_C(1) << (c))

struct sandbox_caps {
	uint64_t eff, prm, inh;
};

static int sandbox_capget(struct sandbox_caps *c)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { { 0 } };

	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	c->eff = data[0].effective | (uint64_t)data[1].effective << 32;
	c->prm = data[0].permitted | (uint64_t)data[1].permitted << 32;
	c->inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
	return 0;
}

static int sandbox_capset(const struct sandbox_caps *c)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {
		{ (uint32_t)c->eff, (uint32_t)c->prm, (uint32_t)c->inh },
		{ (uint32_t)(c->eff >> 32), (uint32_t)(c->prm >> 32), (uint32_t)(c->inh >> 32) },
	};

	return syscall(SYS_capset, &hdr, data) < 0 ? -errno : 0;
}

/* Drop every capability but @keep from the bounding set (needs CAP_SETPCAP). */
static int sandbox_drop_bounding(uint64_t keep, const char **step)
{
	for (int cap = 0; cap < 64; cap++) {
		int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (in < 0)
			break; /* EINVAL: past the kernel's last capability */
		if (!in || (keep & CAP_BIT(cap)))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			*step = "PR_CAPBSET_DROP";
			return -errno;
		}
	}
	return 0;
}

/* capget/capset need the process to be single-threaded to mean "the process". */
static int sandbox_threads(void)
{
	g_autofree char *status = NULL;
	const char *line;

	if (!g_file_get_contents("/proc/self/status", &status, NULL, NULL))
		return -EIO;
	line = strstr(status, "\nThreads:");
	return line ? atoi(line + strlen("\nThreads:")) : -EIO;
}

/* Hand a socket file to the user; lchown() and a socket check, so a swapped-in
 * symlink or regular file is never chowned. */
static int sandbox_chown_socket(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	return lchown(path, uid, gid) < 0 ? -errno : 0;
}

/* After the drop: can the user remove @path at exit?  Warn if not. */
static void sandbox_check_removable(const char *path)
{
	g_autofree char *dir = g_path_get_dirname(path);

	if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0)
		g_warning("%s: uid %u cannot remove it at exit (%s: %s); the next start replaces it",
			  path, (unsigned int)geteuid(), dir, g_strerror(errno));
}

static int sandbox_fail(const char *step, int ret)
{
	g_printerr("meshslirp: cannot drop privileges: %s: %s\n", step, g_strerror(-ret));
	return ret;
}

/* Check what sandbox_drop() promised; 0 or -EPERM after printing what is wrong. */
static int sandbox_verify(const struct sandbox_config *sc, uint64_t keep, bool bounded)
{
	struct sandbox_caps c;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int ret;

	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return sandbox_fail("verify: no_new_privs is not set", -EPERM);
	ret = sandbox_capget(&c);
	if (ret)
		return sandbox_fail("verify: capget", ret);
	if (c.eff != keep || c.prm != keep || c.inh) {
		g_printerr("meshslirp: cannot drop privileges: verify: capabilities are eff %#"
			   PRIx64 " prm %#" PRIx64 " inh %#" PRIx64 ", want %#" PRIx64 " %#" PRIx64
			   " 0\n", c.eff, c.prm, c.inh, keep, keep);
		return -EPERM;
	}
	if (bounded) {
		for (int cap = 0; cap < 64; cap++) {
			int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

			if (in < 0)
				break;
			if (in && !(keep & CAP_BIT(cap))) {
				g_printerr("meshslirp: cannot drop privileges: verify: capability %d "
					   "is still in the bounding set\n", cap);
				return -EPERM;
			}
		}
	}
	if (!sc->set_user)
		return 0;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return sandbox_fail("verify: getresuid", -errno);
	if (ru != sc->user.uid || eu != sc->user.uid || su != sc->user.uid ||
	    rg != sc->user.gid || eg != sc->user.gid || sg != sc->user.gid) {
		g_printerr("meshslirp: cannot drop privileges: verify: ids are uid %u/%u/%u "
			   "gid %u/%u/%u\n", ru, eu, su, rg, eg, sg);
		return -EPERM;
	}
	if (getgroups(0, NULL) != 0)
		return sandbox_fail("verify: supplementary groups remain", -EPERM);
	/* The proof: root must be out of reach. */
	if (setuid(0) == 0 || setgid(0) == 0)
		return sandbox_fail("verify: setuid(0) or setgid(0) succeeded", -EPERM);
	return 0;
}

int sandbox_drop(const struct sandbox_config *sc)
{
	uint64_t keep = sc->keep_net_bind ? CAP_BIT(SANDBOX_CAP_NET_BIND_SERVICE) : 0;
	bool root = geteuid() == 0, bounded = false;
	struct sandbox_caps c;
	const char *step = NULL;
	int ret, threads;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return sandbox_fail("PR_SET_NO_NEW_PRIVS", -errno);
	if (root && !sc->set_user)
		return 0;
	if (sc->set_user && !root)
		return sandbox_fail("--user needs the daemon to start as root", -EPERM);

	threads = sandbox_threads();
	if (threads != 1) {
		g_printerr("meshslirp: cannot drop privileges: %d threads run already; "
			   "capabilities are per thread, so the drop must come first\n", threads);
		return -EBUSY;
	}

	ret = sandbox_capget(&c);
	if (ret)
		return sandbox_fail("capget", ret);
	/* A non-root daemon cannot gain what it does not have. */
	if (!sc->set_user)
		keep &= c.prm;

	if (sc->set_user) {
		for (const char *const *p = sc->sockets; p && *p; p++) {
			ret = sandbox_chown_socket(*p, sc->user.uid, sc->user.gid);
			if (ret) {
				g_printerr("meshslirp: cannot drop privileges: chown %s to %u:%u: %s\n",
					   *p, sc->user.uid, sc->user.gid, g_strerror(-ret));
				return ret;
			}
		}
	}

	/* Ambient capabilities would survive an execve; none are wanted.  EINVAL:
	 * a kernel older than 4.3 has no ambient set. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return sandbox_fail("PR_CAP_AMBIENT_CLEAR_ALL", -errno);

	if (c.eff & CAP_BIT(CAP_SETPCAP)) {
		ret = sandbox_drop_bounding(keep, &step);
		if (ret)
			return sandbox_fail(step, ret);
		bounded = true;
	}

	if (sc->set_user) {
		if (keep && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			return sandbox_fail("PR_SET_KEEPCAPS", -errno);
		if (setgroups(0, NULL) < 0)
			return sandbox_fail("setgroups", -errno);
		if (setresgid(sc->user.gid, sc->user.gid, sc->user.gid) < 0)
			return sandbox_fail("setresgid", -errno);
		if (setresuid(sc->user.uid, sc->user.uid, sc->user.uid) < 0)
			return sandbox_fail("setresuid", -errno);
		if (keep && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			return sandbox_fail("PR_SET_KEEPCAPS", -errno);
	}

	c.eff = c.prm = keep;
	c.inh = 0;
	ret = sandbox_capset(&c);
	if (ret)
		return sandbox_fail("capset", ret);

	ret = sandbox_verify(sc, keep, bounded);
	if (ret)
		return ret;
	for (const char *const *p = sc->sockets; sc->set_user && p && *p; p++)
		sandbox_check_removable(*p);
	return 0;
}

bool sandbox_holds_net_bind(void)
{
	struct sandbox_caps c;

	return !sandbox_capget(&c) && (c.eff & CAP_BIT(SANDBOX_CAP_NET_BIND_SERVICE));
}

/* ----------------------------------------------------------------- seccomp */

/*
 * Sanitizer builds (meson -Db_sanitize=...) need more at exit: LeakSanitizer
 * stops the world with a ptrace()ing clone, reads /proc/self/maps and the
 * task list.  Their extra calls are only in those builds.
 */
#if defined(MESHSLIRP_SANITIZERS) || defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZERS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SANDBOX_SANITIZERS 1
#endif
#endif

/* Allowed with any arguments, by why the running daemon needs them. */
static const int sandbox_allow[] = {
	/* The loop: GLib's poll() on its few fds, the netstack's epoll set,
	 * wakeups through eventfds, GMutex/GCond, GLib's signal handler
	 * (rt_sigreturn), its signal mask on the worker thread, and a poll()
	 * restarted after SIGSTOP/SIGCONT or a debugger's attach. */
	SCMP_SYS(poll), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_ctl), SCMP_SYS(read),
	SCMP_SYS(write), SCMP_SYS(futex), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(restart_syscall),
	/* A vhost-user kick read with RWF_NOWAIT: the front-end may clear
	 * O_NONBLOCK on the eventfd it shares (backend/vhost_user.c). */
	SCMP_SYS(preadv2),
	/* Time: the vDSO normally answers; on a clock source without one
	 * (some hypervisors) glibc falls back to the system call.  GLib and
	 * libslirp read the monotonic clock, OpenSSL time(). */
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(time),
	/* Memory: malloc and GLib grow and shrink the heap (brk, mmap below),
	 * realloc of large buffers (mremap), free of large blocks (munmap), and
	 * glibc trims a thread's arena with madvise(). */
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	/* Sockets: libslirp's host sockets (TCP, UDP, ICMP echo: connect,
	 * send/recv, FIONREAD below, MSG_ERRQUEUE), exposed ports (accept, and
	 * bind/listen for a runtime add_hostfwd), steered and DNS flows, the
	 * PROXY header (send, recv with MSG_PEEK), metrics and control clients
	 * and QEMU's stream (accept4, writev of the transmit ring). */
	SCMP_SYS(connect), SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(bind),
	SCMP_SYS(listen), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(sendto), SCMP_SYS(recvfrom),
	SCMP_SYS(recvmsg), SCMP_SYS(shutdown), SCMP_SYS(close), SCMP_SYS(writev),
	SCMP_SYS(fcntl),
	/* Files: libslirp stats and re-reads /etc/resolv.conf for direct DNS,
	 * a runtime add_hostfwd may scan /proc/self/fd (openat below); the unix
	 * sockets are removed at exit. */
	SCMP_SYS(newfstatat), SCMP_SYS(getdents64), SCMP_SYS(unlink),
	/* vhost-user: each guest memory or log fd a front-end sends is asked
	 * for its filesystem, as hugetlbfs maps only whole huge pages
	 * (backend/vu_mem.c). */
	SCMP_SYS(fstatfs),
	/* Randomness: OpenSSL (stack ports, hash keys) reseeds its DRBG from
	 * the kernel, about once an hour. */
	SCMP_SYS(getrandom),
	/* Process: the pid in every log line; exit; abort() on a failed
	 * assertion raises SIGABRT on itself (gettid, tgkill below). */
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(exit_group),
	/* GLib's worker thread (signal handling) starts just before the filter
	 * and may still be in glibc's thread start-up when it lands; so may
	 * the vhost-user stall guard's watcher, which then sleeps a period at
	 * a time and signals the data thread with tgkill (below) when a
	 * front-end holds an eventfd call blocked (common/stallguard.h). */
	SCMP_SYS(rseq), SCMP_SYS(set_robust_list), SCMP_SYS(clock_nanosleep),
#ifdef SANDBOX_SANITIZERS
	/* ASan's start-up of GLib's worker thread. */
	SCMP_SYS(sched_getaffinity), SCMP_SYS(sigaltstack),
	/* LeakSanitizer at exit: a tracer task (clone) ptrace()s and waits for
	 * every thread, reads /proc/self/task with the old open (below),
	 * getdents and lseek calls, watches its parent, exits; the parent
	 * spins until it is done. */
	SCMP_SYS(clone), SCMP_SYS(ptrace), SCMP_SYS(wait4), SCMP_SYS(getppid),
	SCMP_SYS(sched_yield), SCMP_SYS(rt_sigaction), SCMP_SYS(getdents), SCMP_SYS(lseek),
	SCMP_SYS(exit),
	/* A sanitizer report: the symbolizer finds the binary through
	 * /proc/self/exe, and asks whether stderr is a terminal (below). */
	SCMP_SYS(readlink),
#endif
};

/* Allowed only with these arguments; see the theory of operation. */
static const struct sandbox_narrow {
	int nr;
	bool self;                   /* compare with this process's pid */
	struct scmp_arg_cmp arg;
} sandbox_narrow[] = {
	{ SCMP_SYS(socket), false, SCMP_A0(SCMP_CMP_EQ, AF_INET) },
	{ SCMP_SYS(openat), false,
	  SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND, O_RDONLY) },
	/* mmap also maps, MAP_SHARED, the guest memory and dirty log fds a vhost-user
	 * front-end sends (backend/vu_mem.c); never executable either way. */
	{ SCMP_SYS(mmap), false, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) },
	{ SCMP_SYS(mprotect), false, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) },
	{ SCMP_SYS(ioctl), false, SCMP_A1(SCMP_CMP_EQ, FIONREAD) },
	{ SCMP_SYS(prctl), false, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME) },
	{ SCMP_SYS(tgkill), true, SCMP_A0(SCMP_CMP_EQ, 0) },
#ifndef SANDBOX_SANITIZERS
	/* Allowed whole below in sanitizer builds. */
	{ SCMP_SYS(rt_sigaction), false, SCMP_A0(SCMP_CMP_EQ, SIGBUS) },
#endif
#ifdef SANDBOX_SANITIZERS
	/* LeakSanitizer: the task list, read-only; its tracer may attach
	 * (dumpable, ptracer) and dies with its parent. */
	{ SCMP_SYS(open), false,
	  SCMP_A1(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND, O_RDONLY) },
	{ SCMP_SYS(prctl), false, SCMP_A0(SCMP_CMP_EQ, PR_GET_DUMPABLE) },
	{ SCMP_SYS(prctl), false, SCMP_A0(SCMP_CMP_EQ, PR_SET_DUMPABLE) },
	{ SCMP_SYS(prctl), false, SCMP_A0(SCMP_CMP_EQ, PR_SET_PTRACER) },
	{ SCMP_SYS(prctl), false, SCMP_A0(SCMP_CMP_EQ, PR_SET_PDEATHSIG) },
	{ SCMP_SYS(ioctl), false, SCMP_A1(SCMP_CMP_EQ, TCGETS) },
#endif
};

/* sched_yield for --busy-poll, unless the sanitizers' list has it already. */
#ifdef SANDBOX_SANITIZERS
#define SANDBOX_BUSY_POLL_RULES 0
#else
#define SANDBOX_BUSY_POLL_RULES 1
#endif

size_t sandbox_seccomp_rules(unsigned int extras)
{
	return G_N_ELEMENTS(sandbox_allow) + G_N_ELEMENTS(sandbox_narrow) +
	       !!(extras & (SANDBOX_UNIX_OUTBOUND | SANDBOX_UNIX_INBOUND)) +
	       !!(extras & SANDBOX_UNIX_OUTBOUND) + 4 * !!(extras & SANDBOX_KERNEL_STEER) +
	       SANDBOX_BUSY_POLL_RULES * !!(extras & SANDBOX_BUSY_POLL) +
	       !!(extras & SANDBOX_BUSY_POLL_GUARD) + 2 * !!(extras & SANDBOX_SCHED);
}

/* One rule; prints which call could not be added. */
static int sandbox_rule(scmp_filter_ctx ctx, int nr, unsigned int argc,
			const struct scmp_arg_cmp *arg)
{
	int ret = argc ? seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, argc, arg)
		       : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);

	if (ret) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

		g_printerr("meshslirp: --seccomp: cannot allow %s: %s\n", name ? name : "?",
			   g_strerror(-ret));
		free(name);
	}
	return ret;
}

/* The unix legs' calls, only when configured; 0 or a libseccomp -errno. */
static int sandbox_rules_unix(scmp_filter_ctx ctx, unsigned int extras)
{
	const struct scmp_arg_cmp unix_stream[] = {
		SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
		SCMP_A1(SCMP_CMP_EQ, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC),
	};
	int ret = 0;

	if (extras & (SANDBOX_UNIX_OUTBOUND | SANDBOX_UNIX_INBOUND))
		ret = sandbox_rule(ctx, SCMP_SYS(dup3), 0, NULL);
	if (!ret && (extras & SANDBOX_UNIX_OUTBOUND))
		ret = sandbox_rule(ctx, SCMP_SYS(socket), G_N_ELEMENTS(unix_stream), unix_stream);
	return ret;
}

/*
 * The kernel path's calls (proxy-bridge/ksteer.h), only when configured: its
 * relay (splice, a pipe pair per flow; SIOCATMARK on a flow that had urgent
 * data, where splice() stops) and telling its tun what the guest takes when
 * a front-end renegotiates (TUNSETOFFLOAD only).
 */
static int sandbox_rules_kernel(scmp_filter_ctx ctx, unsigned int extras)
{
	const struct scmp_arg_cmp offload = SCMP_A1(SCMP_CMP_EQ, TUNSETOFFLOAD);
	const struct scmp_arg_cmp atmark = SCMP_A1(SCMP_CMP_EQ, SIOCATMARK);
	int ret = 0;

	if (!(extras & SANDBOX_KERNEL_STEER))
		return 0;
	ret = sandbox_rule(ctx, SCMP_SYS(splice), 0, NULL);
	if (!ret)
		ret = sandbox_rule(ctx, SCMP_SYS(pipe2), 0, NULL);
	if (!ret)
		ret = sandbox_rule(ctx, SCMP_SYS(ioctl), 1, &offload);
	if (!ret)
		ret = sandbox_rule(ctx, SCMP_SYS(ioctl), 1, &atmark);
	return ret;
}

/*
 * --busy-poll's loop yields the CPU between empty polls (common/mainloop.h);
 * its guard (--busy-poll-when idle) reads /proc/loadavg, opened before the
 * filter, to see whether a task waits for a CPU (common/cpuload.h).
 */
static int sandbox_rules_busy_poll(scmp_filter_ctx ctx, unsigned int extras)
{
	int ret = 0;

	if ((extras & SANDBOX_BUSY_POLL) && SANDBOX_BUSY_POLL_RULES)
		ret = sandbox_rule(ctx, SCMP_SYS(sched_yield), 0, NULL);
	if (!ret && (extras & SANDBOX_BUSY_POLL_GUARD))
		ret = sandbox_rule(ctx, SCMP_SYS(pread64), 0, NULL);
	return ret;
}

/*
 * --sched: the data thread moves itself between SCHED_OTHER and SCHED_BATCH
 * (common/schedmode.h); no other thread, no other policy.
 */
static int sandbox_rules_sched(scmp_filter_ctx ctx, unsigned int extras)
{
	const int policies[] = { SCHED_OTHER, SCHED_BATCH };
	int ret = 0;

	if (!(extras & SANDBOX_SCHED))
		return 0;
	for (size_t i = 0; i < G_N_ELEMENTS(policies) && !ret; i++) {
		const struct scmp_arg_cmp self_to[] = {
			SCMP_A0(SCMP_CMP_EQ, 0),
			SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)policies[i]),
		};

		ret = sandbox_rule(ctx, SCMP_SYS(sched_setscheduler), G_N_ELEMENTS(self_to), self_to);
	}
	return ret;
}

int sandbox_seccomp_apply(unsigned int extras)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int ret;

	if (!ctx) {
		g_printerr("meshslirp: --seccomp: cannot create a filter (seccomp_init failed; "
			   "is seccomp(2) itself forbidden, e.g. by systemd's SystemCallFilter=?)\n");
		return -ENOMEM;
	}
	/* Every thread, including GLib's worker; a foreign ABI (x32, i386) dies too. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (!ret)
		ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (ret) {
		g_printerr("meshslirp: --seccomp: cannot set the filter's attributes: %s\n",
			   g_strerror(-ret));
		goto out;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(sandbox_allow) && !ret; i++)
		ret = sandbox_rule(ctx, sandbox_allow[i], 0, NULL);
	for (size_t i = 0; i < G_N_ELEMENTS(sandbox_narrow) && !ret; i++) {
		struct scmp_arg_cmp arg = sandbox_narrow[i].arg;

		if (sandbox_narrow[i].self)
			arg.datum_a = (scmp_datum_t)getpid();
		ret = sandbox_rule(ctx, sandbox_narrow[i].nr, 1, &arg);
	}
	if (!ret)
		ret = sandbox_rules_unix(ctx, extras);
	if (!ret)
		ret = sandbox_rules_kernel(ctx, extras);
	if (!ret)
		ret = sandbox_rules_busy_poll(ctx, extras);
	if (!ret)
		ret = sandbox_rules_sched(ctx, extras);
	if (ret)
		goto out;
	ret = seccomp_load(ctx);
	if (ret)
		g_printerr("meshslirp: --seccomp: cannot load the filter: %s\n", g_strerror(-ret));
out:
	seccomp_release(ctx);
	return ret;
}
