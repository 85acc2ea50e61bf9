/* test_sandbox.c - unit tests of daemon/sandbox.c: --user resolution, the capability rule, the
 * seccomp allowlist (forbidden calls kill a child with SIGSYS, allowed ones work), the drop. */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <net/if.h>
#include <linux/if_tun.h>

#include <cmocka.h>
#include <glib.h>

#include "backend/vu_mem.h"
#include "common/cpuload.h"
#include "common/stallguard.h"
#include "daemon/options.h"
#include "daemon/sandbox.h"
#include "proxy-bridge/bridge.h"

/* ------------------------------------------------------------ --user, ports */

static int parse(struct ms_config *cfg, GError **err, const char *a1, const char *a2)
{
	char *argv[] = { "meshslirp", "--socket", "/tmp/x.sock", (char *)a1, (char *)a2, NULL };

	return options_parse(a2 ? 5 : a1 ? 4 : 3, argv, cfg, err);
}

/* The two options: --user keeps its value for main to resolve, --seccomp is a flag. */
static void test_options(void **state)
{
	static const char *const bad[] = { "", ":", "nobody:", ":nogroup", "a:b:c" };
	struct ms_config cfg;

	(void)state;
	{
		g_autoptr(GError) err = NULL;

		assert_int_equal(parse(&cfg, &err, NULL, NULL), 0);
		assert_null(cfg.user);
		assert_false(cfg.seccomp);
		ms_config_free(&cfg);
	}
	{
		g_autoptr(GError) err = NULL;

		assert_int_equal(parse(&cfg, &err, "--user", "nobody:nogroup"), 0);
		assert_string_equal(cfg.user, "nobody:nogroup");
		ms_config_free(&cfg);
		assert_null(cfg.user);
	}
	{
		g_autoptr(GError) err = NULL;

		assert_int_equal(parse(&cfg, &err, "--seccomp", NULL), 0);
		assert_true(cfg.seccomp);
		ms_config_free(&cfg);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;

		assert_int_equal(parse(&cfg, &err, "--user", bad[i]), -EINVAL);
		assert_non_null(strstr(err->message, "--user"));
		ms_config_free(&cfg);
	}
}

static void test_resolve_user(void **state)
{
	const struct passwd *pw = getpwnam("nobody");
	struct passwd nobody;
	struct sandbox_user u;
	const char *why = NULL;
	char spec[64];

	(void)state;
	assert_non_null(pw);
	nobody = *pw; /* getpwnam()'s buffer is reused by the resolver */
	assert_int_equal(sandbox_resolve_user("nobody", &u, &why), 0);
	assert_int_equal(u.uid, nobody.pw_uid);
	assert_int_equal(u.gid, nobody.pw_gid);

	/* Numbers, a group by number, a uid without a passwd entry given its group. */
	snprintf(spec, sizeof(spec), "%u", (unsigned int)nobody.pw_uid);
	assert_int_equal(sandbox_resolve_user(spec, &u, &why), 0);
	assert_int_equal(u.gid, nobody.pw_gid);
	assert_int_equal(sandbox_resolve_user("nobody:4243", &u, &why), 0);
	assert_int_equal(u.uid, nobody.pw_uid);
	assert_int_equal(u.gid, 4243);
	assert_null(getpwuid(54321));
	assert_int_equal(sandbox_resolve_user("54321:54321", &u, &why), 0);
	assert_int_equal(u.uid, 54321);
	assert_int_equal(u.gid, 54321);

	assert_int_equal(sandbox_resolve_user("54321", &u, &why), -EINVAL);
	assert_non_null(strstr(why, "needs :GROUP"));
	assert_int_equal(sandbox_resolve_user("no-such-user-ms", &u, &why), -ENOENT);
	assert_string_equal(why, "no such user");
	assert_int_equal(sandbox_resolve_user("nobody:no-such-group-ms", &u, &why), -ENOENT);
	assert_string_equal(why, "no such group");
	assert_int_equal(sandbox_resolve_user("root", &u, &why), -EINVAL);
	assert_non_null(strstr(why, "uid 0"));
	assert_int_equal(sandbox_resolve_user("0:4242", &u, &why), -EINVAL);
	assert_int_equal(sandbox_resolve_user("nobody:0", &u, &why), -EINVAL);
	assert_non_null(strstr(why, "gid 0"));
	assert_int_equal(sandbox_resolve_user("nobody:", &u, &why), -EINVAL);
	assert_int_equal(sandbox_resolve_user(":nogroup", &u, &why), -EINVAL);
}

static void test_needs_net_bind(void **state)
{
	g_autoptr(GArray) expose = g_array_new(FALSE, FALSE, sizeof(struct bridge_expose));
	struct bridge_expose e = { .host_port = 8080, .guest_port = 80 };

	(void)state;
	assert_false(sandbox_needs_net_bind(NULL, 1024));
	assert_false(sandbox_needs_net_bind(expose, 1024));
	g_array_append_val(expose, e);
	assert_false(sandbox_needs_net_bind(expose, 1024));
	assert_true(sandbox_needs_net_bind(expose, 8081));
	e.host_port = 1023;
	g_array_append_val(expose, e);
	assert_true(sandbox_needs_net_bind(expose, 1024));
	assert_false(sandbox_needs_net_bind(expose, 1023));
	assert_false(sandbox_needs_net_bind(expose, 0));
	/* This namespace's value is a port number (1024 if the sysctl is missing). */
	assert_true(sandbox_unprivileged_port_start() <= 65536);
}

/* ----------------------------------------------------------------- seccomp */

/*
 * run_child() forks; the child loads the daemon's own filter (unless @filter is
 * false), then runs @fn, whose return value becomes its exit status.  The
 * status is returned for the caller's checks.
 */
/* The unix legs' extras the next run_child() loads the filter with (0: none). */
static unsigned int child_extras;

static int run_child(bool filter, int (*fn)(void *), void *arg)
{
	struct rlimit no_core = { 0, 0 };
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		setrlimit(RLIMIT_CORE, &no_core); /* a SIGSYS would dump core */
		if (filter && sandbox_seccomp_apply(child_extras))
			_exit(100);
		_exit(fn(arg));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* Forbidden: each makes one call the running daemon never makes. */
static int do_execve(void *arg)
{
	char *argv[] = { "/bin/true", NULL }, *envp[] = { NULL };

	(void)arg;
	execve(argv[0], argv, envp);
	return 1;
}

static int do_socket(void *arg)
{
	int family = *(int *)arg;

	close(socket(family, family == AF_PACKET ? SOCK_RAW : SOCK_DGRAM,
		     family == AF_PACKET ? htons(ETH_P_ALL) : 0));
	return 1;
}

static int do_open_write(void *arg)
{
	(void)arg;
	close(open("/dev/null", O_WRONLY));
	return 1;
}

static int do_open_create(void *arg)
{
	close(open((const char *)arg, O_RDONLY | O_CREAT, 0600));
	return 1;
}

static int do_mmap_exec(void *arg)
{
	(void)arg;
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return 1;
}

static int do_mprotect_exec(void *arg)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)arg;
	if (p == MAP_FAILED)
		return 2;
	mprotect(p, 4096, PROT_READ | PROT_EXEC);
	return 1;
}

static int do_prctl_keepcaps(void *arg)
{
	(void)arg;
	prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
	return 1;
}

static int do_ioctl_tiocsti(void *arg)
{
	char c = 'x';

	(void)arg;
	ioctl(0, TIOCSTI, &c);
	return 1;
}

static int do_tgkill_other(void *arg)
{
	(void)arg;
	/* pid 1 never gets the signal: the call itself is forbidden. */
	syscall(SYS_tgkill, 1, 1, 0);
	return 1;
}

static int do_setuid(void *arg)
{
	(void)arg;
	syscall(SYS_setuid, 0);
	return 1;
}

static int do_unshare(void *arg)
{
	(void)arg;
	unshare(CLONE_NEWNET);
	return 1;
}

static int do_fork(void *arg)
{
	(void)arg;
	/* glibc's fork() is clone(); a child that ran would exit 1 as well. */
	if (syscall(SYS_fork) == 0)
		_exit(1);
	return 1;
}

static void test_seccomp_forbidden(void **state)
{
	static int packet = AF_PACKET, unix_ = AF_UNIX, netlink = AF_NETLINK, inet6 = AF_INET6;
	g_autofree char *dir = g_dir_make_tmp("ms-sandbox-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "created", NULL);
	const struct {
		const char *what;
		int (*fn)(void *);
		void *arg;
	} cases[] = {
		{ "execve", do_execve, NULL },
		{ "socket(AF_PACKET)", do_socket, &packet },
		{ "socket(AF_UNIX)", do_socket, &unix_ },
		{ "socket(AF_NETLINK)", do_socket, &netlink },
		{ "socket(AF_INET6)", do_socket, &inet6 },
		{ "open(O_WRONLY)", do_open_write, NULL },
		{ "open(O_CREAT)", do_open_create, path },
		{ "mmap(PROT_EXEC)", do_mmap_exec, NULL },
		{ "mprotect(PROT_EXEC)", do_mprotect_exec, NULL },
		{ "prctl(PR_SET_KEEPCAPS)", do_prctl_keepcaps, NULL },
		{ "ioctl(TIOCSTI)", do_ioctl_tiocsti, NULL },
		{ "tgkill(another process)", do_tgkill_other, NULL },
		{ "setuid", do_setuid, NULL },
		{ "unshare", do_unshare, NULL },
		{ "fork", do_fork, NULL },
	};

	(void)state;
	assert_non_null(dir);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		int status = run_child(true, cases[i].fn, cases[i].arg);

		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
			fail_msg("%s under the filter: %s %d, want killed by SIGSYS", cases[i].what,
				 WIFSIGNALED(status) ? "signal" : "exit status",
				 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
	assert_int_equal(access(path, F_OK), -1);
	rmdir(dir);
}

/* The same forbidden calls do run without the filter: the test can see a difference. */
static void test_seccomp_forbidden_calls_run_unfiltered(void **state)
{
	static int packet = AF_PACKET;
	int status;

	(void)state;
	status = run_child(false, do_socket, &packet);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	status = run_child(false, do_prctl_keepcaps, NULL);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

/* Allowed: what the daemon does while running, in one child. */
static int do_daemon_like(void *arg)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct pollfd pfd = { .events = POLLIN };
	char buf[16];
	int lfd, cfd, afd, ufd, ifd, fd, avail = 0;
	void *p;

	(void)arg;
	/* A listener, a connection to it, data both ways (exposed port, steered flow). */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
		return 10;
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return 11;
	pfd.fd = lfd;
	if (poll(&pfd, 1, 1000) != 1)
		return 12;
	afd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (afd < 0 || send(cfd, "hi", 2, MSG_NOSIGNAL) != 2 ||
	    recv(afd, buf, sizeof(buf), MSG_PEEK) != 2 || read(afd, buf, sizeof(buf)) != 2 ||
	    shutdown(afd, SHUT_WR) < 0)
		return 13;
	/* UDP and ICMP echo sockets, FIONREAD as libslirp asks it. */
	ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ufd < 0 || ioctl(ufd, FIONREAD, &avail) < 0)
		return 14;
	ifd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (ifd >= 0)
		close(ifd); /* refused without ping_group_range: not the filter's business */
	/* Read-only files: libslirp's resolv.conf, a runtime add_hostfwd's /proc/self/fd. */
	fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 15;
	(void)syscall(SYS_getdents64, fd, buf, sizeof(buf)); /* EINVAL: too small, still a call */
	close(fd);
	/* Memory without execute permission, time, randomness, the pid. */
	p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p, 4096, PROT_READ) < 0 || munmap(p, 1 << 20) < 0)
		return 16;
	g_free(g_malloc(1 << 22));
	if (g_get_monotonic_time() <= 0 || getrandom(buf, sizeof(buf), 0) != sizeof(buf) ||
	    getpid() <= 0 || prctl(PR_SET_NAME, "ms-test", 0, 0, 0) < 0)
		return 17;
	close(afd);
	close(cfd);
	close(lfd);
	close(ufd);
	return 0;
}

static void test_seccomp_allowed(void **state)
{
	int status = run_child(true, do_daemon_like, NULL);

	(void)state;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("daemon-like calls under the filter: %s %d", WIFSIGNALED(status) ?
			 "killed by signal" : "exit status", WIFSIGNALED(status) ?
			 WTERMSIG(status) : WEXITSTATUS(status));
	assert_true(sandbox_seccomp_rules(0) > 20);
}

/* The outbound unix leg: socket(AF_UNIX) exactly as unixleg_connect() asks, connect, dup3. */
static int do_unix_leg(void *arg)
{
	int fd;

	(void)arg;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 10;
	if (dup3(fd, 100, O_CLOEXEC) != 100)
		return 11;
	close(100);
	close(fd);
	return 0;
}

static int do_dup3(void *arg)
{
	(void)arg;
	return dup3(1, 100, O_CLOEXEC) == 100 ? 1 : 2;
}

static int do_unix_dgram(void *arg)
{
	(void)arg;
	close(socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	return 1;
}

static int do_unix_blocking(void *arg)
{
	(void)arg;
	close(socket(AF_UNIX, SOCK_STREAM, 0));
	return 1;
}

/* One call under a filter with some extras: allowed (exit 0 or 1), or killed by SIGSYS. */
struct seccomp_case {
	const char *what;
	unsigned int extras;
	int (*fn)(void *);
	bool allowed;
	const void *arg;	/* passed to @fn */
};

static void assert_seccomp_cases(const struct seccomp_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int status;

		child_extras = cases[i].extras;
		status = run_child(true, cases[i].fn, (void *)cases[i].arg);
		child_extras = 0;
		if (cases[i].allowed && (!WIFEXITED(status) || WEXITSTATUS(status) > 1))
			fail_msg("%s: %s %d, want allowed", cases[i].what,
				 WIFSIGNALED(status) ? "signal" : "exit status",
				 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		if (!cases[i].allowed && (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS))
			fail_msg("%s: %s %d, want killed by SIGSYS", cases[i].what,
				 WIFSIGNALED(status) ? "signal" : "exit status",
				 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
}

static int do_splice_pipe(void *arg)
{
	int p[2];

	(void)arg;
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return 2;
	/* Nothing to move: EAGAIN, but the call itself went through the filter. */
	(void)splice(p[0], NULL, p[1], NULL, 1, SPLICE_F_NONBLOCK);
	close(p[0]);
	close(p[1]);
	return 1;
}

static int do_tunsetoffload(void *arg)
{
	(void)arg;
	/* On no tun at all: EBADF, after the filter let it through. */
	(void)ioctl(-1, TUNSETOFFLOAD, 0);
	return 1;
}

static int do_siocatmark(void *arg)
{
	int at = 0;

	(void)arg;
	(void)ioctl(-1, SIOCATMARK, &at);
	return 1;
}

static int do_tunsetiff(void *arg)
{
	struct ifreq ifr = { 0 };

	(void)arg;
	(void)ioctl(-1, TUNSETIFF, &ifr);
	return 1;
}

/*
 * The kernel path's extras (--steer-stack kernel): its relay's splice and
 * pipe2 and SIOCATMARK, and TUNSETOFFLOAD only; without them they die, and no other tun
 * ioctl is let through with them.
 */
static void test_seccomp_kernel_path(void **state)
{
	const struct seccomp_case cases[] = {
		{ "splice and pipe2, kernel extras", SANDBOX_KERNEL_STEER, do_splice_pipe, true },
		{ "splice and pipe2, no extras", 0, do_splice_pipe, false },
		{ "TUNSETOFFLOAD, kernel extras", SANDBOX_KERNEL_STEER, do_tunsetoffload, true },
		{ "TUNSETOFFLOAD, no extras", 0, do_tunsetoffload, false },
		{ "SIOCATMARK, kernel extras", SANDBOX_KERNEL_STEER, do_siocatmark, true },
		{ "SIOCATMARK, no extras", 0, do_siocatmark, false },
		{ "TUNSETIFF, kernel extras", SANDBOX_KERNEL_STEER, do_tunsetiff, false },
	};

	(void)state;
	assert_seccomp_cases(cases, G_N_ELEMENTS(cases));
	assert_int_equal(sandbox_seccomp_rules(SANDBOX_KERNEL_STEER), sandbox_seccomp_rules(0) + 4);
}

static int do_sched_yield(void *arg)
{
	(void)arg;
	(void)sched_yield();
	return 1;
}

/*
 * --busy-poll's guard: /proc/loadavg opened (openat) and asked (pread), as
 * the daemon does, but without cpuload_open()'s sysconf(), which a libc
 * may answer with calls of its own.
 */
static int do_cpuload(void *arg)
{
	struct cpuload cl = { .fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC), .cpus = 1 };

	(void)arg;
	if (cl.fd < 0)
		return 2;
	(void)cpuload_check_contended(&cl);
	cpuload_close(&cl);
	return 1;
}

/*
 * --busy-poll's extras: sched_yield with the option, the guard's pread
 * with --busy-poll-when idle; each dies without its extra (the polling
 * extra does not let the guard's call through), unless the base list has
 * sched_yield already (sanitizer builds, for LeakSanitizer: then that
 * extra adds no rule), which the rule count says.
 */
static void test_seccomp_busy_poll(void **state)
{
	size_t added = sandbox_seccomp_rules(SANDBOX_BUSY_POLL) - sandbox_seccomp_rules(0);
	const struct seccomp_case cases[] = {
		{ "sched_yield, busy-poll extras", SANDBOX_BUSY_POLL, do_sched_yield, true },
		{ "sched_yield, no extras", 0, do_sched_yield, added == 0 },
		{ "the guard's pread, guard extras", SANDBOX_BUSY_POLL | SANDBOX_BUSY_POLL_GUARD,
		  do_cpuload, true },
		{ "the guard's pread, busy-poll extras only", SANDBOX_BUSY_POLL, do_cpuload, false },
		{ "the guard's pread, no extras", 0, do_cpuload, false },
	};

	(void)state;
	assert_true(added <= 1);
	assert_int_equal(sandbox_seccomp_rules(SANDBOX_BUSY_POLL_GUARD), sandbox_seccomp_rules(0) + 1);
	assert_seccomp_cases(cases, G_N_ELEMENTS(cases));
}

static int do_sched_policy(void *arg)
{
	struct sched_param param = { .sched_priority = 0 };

	(void)sched_setscheduler(0, *(const int *)arg, &param); /* EINVAL or EPERM: filtered first */
	return 1;
}

static int do_sched_by_pid(void *arg)
{
	struct sched_param param = { .sched_priority = 0 };

	(void)arg;
	(void)sched_setscheduler(getpid(), SCHED_BATCH, &param);
	return 1;
}

/*
 * --sched's extras: this thread to SCHED_BATCH or back to SCHED_OTHER, and
 * nothing else: no other policy (a real-time one would starve the node), no
 * thread named by id; without the extras even those die.
 */
static void test_seccomp_sched(void **state)
{
	static const int batch = SCHED_BATCH, other = SCHED_OTHER, fifo = SCHED_FIFO,
			 idle = SCHED_IDLE;
	const struct seccomp_case cases[] = {
		{ "SCHED_BATCH, sched extras", SANDBOX_SCHED, do_sched_policy, true, &batch },
		{ "SCHED_OTHER, sched extras", SANDBOX_SCHED, do_sched_policy, true, &other },
		{ "SCHED_BATCH, no extras", 0, do_sched_policy, false, &batch },
		{ "SCHED_FIFO, sched extras", SANDBOX_SCHED, do_sched_policy, false, &fifo },
		{ "SCHED_IDLE, sched extras", SANDBOX_SCHED, do_sched_policy, false, &idle },
		{ "by pid, sched extras", SANDBOX_SCHED, do_sched_by_pid, false },
	};

	(void)state;
	assert_seccomp_cases(cases, G_N_ELEMENTS(cases));
	assert_int_equal(sandbox_seccomp_rules(SANDBOX_SCHED), sandbox_seccomp_rules(0) + 2);
}

/*
 * The unix legs' extras: allowed exactly when configured.  Without them the
 * same calls die (so the allowed run says something), and even with them
 * other AF_UNIX sockets still die.
 */
static void test_seccomp_unix_legs(void **state)
{
	const struct seccomp_case cases[] = {
		{ "unix leg, outbound extras", SANDBOX_UNIX_OUTBOUND, do_unix_leg, true },
		{ "unix leg, no extras", 0, do_unix_leg, false },
		{ "unix leg, inbound extras only", SANDBOX_UNIX_INBOUND, do_unix_leg, false },
		{ "dup3, inbound extras", SANDBOX_UNIX_INBOUND, do_dup3, true },
		{ "dup3, no extras", 0, do_dup3, false },
		{ "AF_UNIX datagram, outbound extras", SANDBOX_UNIX_OUTBOUND, do_unix_dgram, false },
		{ "AF_UNIX blocking, outbound extras", SANDBOX_UNIX_OUTBOUND, do_unix_blocking, false },
	};

	(void)state;
	assert_seccomp_cases(cases, G_N_ELEMENTS(cases));
	assert_int_equal(sandbox_seccomp_rules(SANDBOX_UNIX_OUTBOUND), sandbox_seccomp_rules(0) + 2);
	assert_int_equal(sandbox_seccomp_rules(SANDBOX_UNIX_INBOUND), sandbox_seccomp_rules(0) + 1);
}

static int do_abort(void *arg)
{
	(void)arg;
	abort();
}

/* A failed assertion still dies by SIGABRT (with a core where enabled), not SIGSYS. */
static void test_seccomp_abort(void **state)
{
	int status = run_child(true, do_abort, NULL);

	(void)state;
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		fail_msg("abort() under the filter: %s %d, want SIGABRT", WIFSIGNALED(status) ?
			 "signal" : "exit status", WIFSIGNALED(status) ? WTERMSIG(status) :
			 WEXITSTATUS(status));
}

/* ------------------------------------------------------- the SIGBUS guard */

enum sigbus_case {
	SIGBUS_GUARDED,     /* a guest mapping whose memfd shrank: survived */
	SIGBUS_FOREIGN,     /* a mapping of someone else's that shrank: fatal */
	SIGBUS_SENT,        /* raise(SIGBUS), not a fault: fatal */
};

/*
 * The child of test_seccomp_sigbus_guard(): sets up as the daemon does
 * (guard installed, memory mapped) and shrinks the memfd as a front-end
 * would, all before the filter; then touches the lost page under it.
 * Exit 0: the guarded access read zeros and was reported.
 */
static int sigbus_child(enum sigbus_case what)
{
	struct vu_region_desc d = { .gpa = 0, .size = 4096, .uva = 0x10000 };
	volatile uint8_t *p = NULL;
	struct vu_mem m;
	const char *why;
	bool unsealed;
	int fd;

	if (vu_mem_guard_install())
		return 20;
	fd = memfd_create("sigbus-test", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 4096) < 0)
		return 21;
	if (what == SIGBUS_GUARDED) {
		if (vu_mem_map(&m, &d, 1, &fd, &unsealed, &why))
			return 22;
		p = m.r[0].host;
	} else if (what == SIGBUS_FOREIGN) {
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			return 23;
	}
	if (ftruncate(fd, 0) < 0)
		return 24;
	if (sandbox_seccomp_apply(0))
		return 25;
	if (what == SIGBUS_SENT)
		raise(SIGBUS);
	if (p[100] != 0)
		return 26;
	if (what != SIGBUS_GUARDED)
		return 27; /* should have died */
	if (!vu_mem_faulted(&m, NULL))
		return 28;
	p[200] = 1; /* writable: private zero pages now */
	return vu_mem_unmap(&m) ? 29 : 0;
}

/*
 * F2: the vhost-user SIGBUS guard under the daemon's seccomp filter.  A
 * fault in a guest mapping is survived (the handler's mmap is allowed); any
 * other SIGBUS still kills by SIGBUS, not by SIGSYS (its sigaction is
 * allowed for SIGBUS only).
 */
static void test_seccomp_sigbus_guard(void **state)
{
	static const struct { enum sigbus_case what; int sig; const char *name; } cases[] = {
		{ SIGBUS_GUARDED, 0, "fault in a guest mapping" },
		{ SIGBUS_FOREIGN, SIGBUS, "fault elsewhere" },
		{ SIGBUS_SENT, SIGBUS, "SIGBUS sent" },
	};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct rlimit no_core = { 0, 0 };
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			setrlimit(RLIMIT_CORE, &no_core);
			_exit(sigbus_child(cases[i].what));
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (cases[i].sig ? !WIFSIGNALED(status) || WTERMSIG(status) != cases[i].sig
				 : !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("%s: %s %d, want %s %d", cases[i].name,
				 WIFSIGNALED(status) ? "killed by signal" : "exit status",
				 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
				 cases[i].sig ? "killed by signal" : "exit status", cases[i].sig);
	}
}

/*
 * The child of test_seccomp_stall_guard(): the watcher started and a call
 * eventfd made full and blocking before the filter, as the daemon and a
 * hostile front-end do; then a guarded write under it.  Exit 0: the guard
 * interrupted the write (its sleep and its tgkill are allowed).  The alarm
 * ends a write nothing interrupts.
 */
static int stall_child(void)
{
	uint64_t v = UINT64_MAX - 1;
	ssize_t n;
	bool fired;
	int fd;

	if (stallguard_start(50))
		return 20;
	fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0 || write(fd, &v, sizeof(v)) != sizeof(v))
		return 21;
	alarm(10);
	if (sandbox_seccomp_apply(0))
		return 22;
	v = 1;
	stallguard_enter();
	n = write(fd, &v, sizeof(v));
	fired = stallguard_leave();
	if (n != -1 || errno != EINTR)
		return 23;
	return fired ? 0 : 24;
}

/* The vhost-user stall guard under the daemon's seccomp filter: a write held blocked ends. */
static void test_seccomp_stall_guard(void **state)
{
	int status;
	pid_t pid = fork();

	(void)state;
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(stall_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("%s %d, want exit status 0", WIFSIGNALED(status) ? "killed by signal" :
			 "exit status", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* ------------------------------------------------------------------ drop */

struct drop_case {
	bool keep_net_bind;
	const char *socket;   /* a unix socket to hand over, or NULL */
};

/* The status field @key of /proc/self/status, as a string. */
static char *proc_status(const char *key)
{
	g_autofree char *all = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents("/proc/self/status", &all, NULL, NULL))
		return NULL;
	lines = g_strsplit(all, "\n", 0);
	for (char **l = lines; *l; l++) {
		if (g_str_has_prefix(*l, key) && (*l)[strlen(key)] == ':')
			return g_strstrip(g_strdup(*l + strlen(key) + 1));
	}
	return NULL;
}

static bool proc_status_is(const char *key, const char *want)
{
	g_autofree char *v = proc_status(key);

	return v && !strcmp(v, want);
}

static int bind_port(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ret;

	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

static int do_drop(void *arg)
{
	const struct drop_case *dc = arg;
	const char *sockets[] = { dc->socket, NULL };
	struct sandbox_config sc = { .set_user = true, .keep_net_bind = dc->keep_net_bind,
				     .sockets = sockets };
	const char *why;

	/* A private namespace: any low port is free, the port start is 1024. */
	if (unshare(CLONE_NEWNET) < 0)
		return 20;
	if (sandbox_resolve_user("nobody", &sc.user, &why) || sandbox_drop(&sc))
		return 21;
	if (getuid() != sc.user.uid || geteuid() != sc.user.uid || getgid() != sc.user.gid ||
	    getgroups(0, NULL) != 0)
		return 22;
	if (setuid(0) == 0 || setgid(0) == 0)
		return 23;
	if (!proc_status_is("NoNewPrivs", "1") || !proc_status_is("CapInh", "0000000000000000") ||
	    !proc_status_is("CapAmb", "0000000000000000"))
		return 24;
	if (dc->keep_net_bind) {
		if (!proc_status_is("CapEff", "0000000000000400") ||
		    !proc_status_is("CapPrm", "0000000000000400") ||
		    !proc_status_is("CapBnd", "0000000000000400"))
			return 25;
		if (bind_port(80) != 0)
			return 26;
	} else {
		if (!proc_status_is("CapEff", "0000000000000000") ||
		    !proc_status_is("CapPrm", "0000000000000000") ||
		    !proc_status_is("CapBnd", "0000000000000000"))
			return 27;
		if (bind_port(80) != -EACCES)
			return 28;
	}
	if (bind_port(8080) != 0)
		return 29;
	return 0;
}

static void skip_unless_root(void)
{
	if (geteuid() != 0) {
		print_message("needs root: skipped\n");
		skip();
	}
}

static void test_drop(void **state)
{
	g_autofree char *dir = g_dir_make_tmp("ms-sandbox-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "s.sock", NULL);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct drop_case plain = { .keep_net_bind = false, .socket = path };
	struct drop_case low = { .keep_net_bind = true, .socket = NULL };
	const struct passwd *nobody = getpwnam("nobody");
	struct stat st;
	int fd, status;

	(void)state;
	skip_unless_root();
	assert_non_null(nobody);
	assert_non_null(dir);
	g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);

	status = run_child(false, do_drop, &plain);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, nobody->pw_uid);
	assert_int_equal(st.st_gid, nobody->pw_gid);
	status = run_child(false, do_drop, &low);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	close(fd);
	unlink(path);
	rmdir(dir);
}

static void *idle_thread(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

/* A second thread would keep root's capabilities: the drop refuses. */
static int do_drop_threaded(void *arg)
{
	const char *sockets[] = { NULL };
	struct sandbox_config sc = { .set_user = true, .sockets = sockets };
	const char *why;
	pthread_t t;

	(void)arg;
	if (pthread_create(&t, NULL, idle_thread, NULL))
		return 40;
	if (sandbox_resolve_user("nobody", &sc.user, &why))
		return 41;
	return sandbox_drop(&sc) == -EBUSY && geteuid() == 0 ? 0 : 42;
}

static void test_drop_refuses_threads(void **state)
{
	int status;

	(void)state;
	skip_unless_root();
	status = run_child(false, do_drop_threaded, NULL);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	/*
	 * `meson test --setup valgrind` sets this: valgrind runs the program on
	 * its own synthetic CPU and cannot follow a seccomp filter or the
	 * SIGSYS it raises, so these tests say nothing there.
	 */
	if (getenv("MESHSLIRP_UNDER_VALGRIND")) {
		printf("SKIP: seccomp and privilege tests cannot run under valgrind\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_resolve_user),
		cmocka_unit_test(test_needs_net_bind),
		cmocka_unit_test(test_seccomp_forbidden),
		cmocka_unit_test(test_seccomp_forbidden_calls_run_unfiltered),
		cmocka_unit_test(test_seccomp_allowed),
		cmocka_unit_test(test_seccomp_unix_legs),
		cmocka_unit_test(test_seccomp_kernel_path),
		cmocka_unit_test(test_seccomp_busy_poll),
		cmocka_unit_test(test_seccomp_sched),
		cmocka_unit_test(test_seccomp_abort),
		cmocka_unit_test(test_seccomp_sigbus_guard),
		cmocka_unit_test(test_seccomp_stall_guard),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_drop_refuses_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
