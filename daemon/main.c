/* main.c - the meshslirp daemon: parse the command line, start the wiring, run the loop. */

/*
 * Order: parse, resolve --user, privileged set-up (daemon_start), drop
 * privileges while single-threaded, signal sources (GLib's worker thread)
 * and, with --vhost-user, the stall guard's watcher thread, seccomp,
 * READY, loop.  daemon/sandbox.h says why.
 *
 * SIGUSR1 logs the counters (frames, drops, flows by state) without stopping.
 *
 * Exit codes: 0 after SIGTERM/SIGINT (or --version), 1 when set-up fails
 * (socket in use, port taken, namespace missing...), 2 for a bad command
 * line.  Everything else lives in daemon.c and the modules it wires.
 */

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <arpa/inet.h>
#include <sys/resource.h>

#include <glib.h>
#include <glib-unix.h>
#include <libslirp.h>

#include "common/cgquota.h"
#include "common/cpuload.h"
#include "common/log.h"
#include "common/mainloop.h"
#include "common/stallguard.h"
#include "daemon/daemon.h"
#include "daemon/options.h"
#include "daemon/sandbox.h"
#include "proxy-bridge/unixexpose.h"

static gboolean main_on_signal(gpointer data)
{
	GMainLoop *loop = data;

	g_message("signal received, shutting down");
	g_main_loop_quit(loop);
	return G_SOURCE_CONTINUE;
}

struct main_state {
	GMainLoop *loop;
	int exit_code;
};

/* The backend ended (a deleted tap): nothing left to serve; exit 1 so a supervisor sees it. */
static void main_on_fatal(const char *why, void *opaque)
{
	struct main_state *ms = opaque;

	g_warning("exiting: %s", why);
	ms->exit_code = 1;
	if (ms->loop)
		g_main_loop_quit(ms->loop);
}

static gboolean main_on_usr1(gpointer data)
{
	daemon_log_summary(data);
	return G_SOURCE_CONTINUE;
}

/*
 * Every libslirp flow is a host socket: 1,000 flows need more than the
 * usual soft limit of 1,024 descriptors.  Raise it to the hard limit.
 */
static void main_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		g_warning("cannot raise the descriptor limit: %s", g_strerror(errno));
}

/*
 * libslirp reserves 2 x 128 KiB of socket buffers per TCP connection with
 * g_realloc(), growing each once more in tcp_mss().  glibc's dynamic mmap
 * threshold rises to that size after the first such buffer is freed; from
 * then on they come from the heap, where a growing realloc copies, and so
 * touches, every page.  A fixed threshold keeps them mmap()ed: untouched
 * pages cost nothing and free returns them to the kernel.  bench/conn-memory
 * (1,000 concurrent flows after a warm-up) measured the peak at a quarter
 * of what it is without this; the price is a page fault per page a new
 * connection touches (see docs/RELIABILITY.md).  (ASan builds use their own
 * allocator and ignore this.)
 */
static void main_tune_malloc(void)
{
#if !defined(__SANITIZE_ADDRESS__)
	if (!mallopt(M_MMAP_THRESHOLD, 64 * 1024))
		g_warning("mallopt(M_MMAP_THRESHOLD) failed: socket buffers may stay resident");
#endif
}

/* Tell the launcher we are serving: one line, then close the fd. */
static void main_signal_ready(int fd)
{
	static const char msg[] = "READY\n";
	ssize_t n;

	if (fd < 0)
		return;
	do {
		n = write(fd, msg, sizeof(msg) - 1);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		g_warning("--ready-fd %d: %s", fd, g_strerror(errno));
	close(fd);
}

static void main_log_config(const struct ms_config *cfg)
{
	char net[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN], dns[INET_ADDRSTRLEN],
		guest[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &cfg->network, net, sizeof(net));
	inet_ntop(AF_INET, &cfg->gateway, gw, sizeof(gw));
	inet_ntop(AF_INET, &cfg->dns, dns, sizeof(dns));
	inet_ntop(AF_INET, &cfg->guest, guest, sizeof(guest));
	g_message("meshslirp %s: network %s/%u gateway %s dns %s guest %s mtu %u",
		  MESHSLIRP_VERSION, net, cfg->prefix_len, gw, dns, guest, cfg->mtu);
}

/*
 * Whether --busy-poll auto may poll: not under a cgroup CPU quota, which
 * the polling would be charged to (common/cgquota.h).  Where no cgroup
 * file can be read (no cgroup filesystem in our mount namespace, as under
 * `ip netns exec`, which mounts a sysfs of its own), no quota can be seen:
 * it polls, guarded by the load as ever, and says so.
 */
static bool main_check_auto_poll(void)
{
	char where[512] = "";
	int ret = cgquota_find(where, sizeof(where));

	if (ret == 1)
		g_message("--busy-poll auto: a CPU quota applies (%s): the main loop does not poll "
			  "(--busy-poll USEC to poll anyway)", where);
	else if (ret < 0)
		g_message("--busy-poll auto: cannot tell whether a CPU quota applies (%s%s%s): "
			  "polling as without one (--busy-poll 0 to turn it off)",
			  where, *where ? ": " : "",
			  ret == -ENOENT ? "no cgroup file with a cpu controller to read" :
			  g_strerror(-ret));
	return ret != 1;
}

/*
 * The loop's polling window and its guard, and the ceiling in effect in
 * *@window_us (0: the loop does not poll).  The cgroup files and
 * /proc/loadavg are read or opened here, before the sandbox; without
 * /proc/loadavg the loop polls whatever the load, and says so.
 */
static void main_setup_poll(const struct ms_config *cfg, struct cpuload *load,
			    struct mainloop_poll *poll, unsigned int *window_us)
{
	int ret;

	*poll = (struct mainloop_poll){ .window_us = cfg->busy_poll_us,
					.adaptive = cfg->busy_poll_adaptive };
	if (poll->adaptive && !main_check_auto_poll())
		poll->window_us = 0;
	*window_us = poll->window_us;
	if (!poll->window_us)
		return;
	g_message("--busy-poll: the main loop polls %s%u us after its last event before it "
		  "sleeps, %s", poll->adaptive ? "up to " : "", poll->window_us,
		  cfg->busy_poll_always ? "whatever the load (--busy-poll-when always)" :
		  "only while no other task waits for a CPU");
	if (cfg->busy_poll_always)
		return;
	ret = cpuload_open(load);
	if (ret) {
		g_warning("--busy-poll: cannot open /proc/loadavg (%s): polling whatever the load",
			  g_strerror(-ret));
		return;
	}
	poll->contended = cpuload_check_contended;
	poll->opaque = load;
}

/*
 * --user: resolve the names and insist on root, before any set-up.  A bad
 * value is a bad command line: one line, exit 2.
 */
static int main_resolve_user(const struct ms_config *cfg, struct sandbox_user *user)
{
	const char *why;

	if (!cfg->user)
		return 0;
	if (sandbox_resolve_user(cfg->user, user, &why)) {
		g_printerr("meshslirp: --user %s: %s\n", cfg->user, why);
		return -EINVAL;
	}
	if (geteuid() != 0) {
		g_printerr("meshslirp: --user %s: only a daemon started as root can switch users "
			   "(this one runs as uid %u)\n", cfg->user, (unsigned int)geteuid());
		return -EPERM;
	}
	return 0;
}

/*
 * Give up what the running daemon does not need.  CAP_NET_BIND_SERVICE stays
 * only if a start-up --expose port is below the namespace's unprivileged port
 * start; a later add_hostfwd of a low port then works, and otherwise fails.
 */
static int main_drop_privileges(const struct ms_config *cfg, const struct daemon *d,
				const struct sandbox_user *user)
{
	g_autoptr(GPtrArray) sockets = g_ptr_array_new();
	unsigned int port_start = sandbox_unprivileged_port_start();
	struct sandbox_config sc = {
		.set_user = cfg->user != NULL,
		.keep_net_bind = sandbox_needs_net_bind(cfg->expose, port_start),
	};
	int ret;

	if (cfg->socket_path)
		g_ptr_array_add(sockets, cfg->socket_path);
	else if (cfg->vhost_user_path) /* one backend only */
		g_ptr_array_add(sockets, cfg->vhost_user_path);
	if (cfg->control_path)
		g_ptr_array_add(sockets, cfg->control_path);
	/* The unix exposed ports' files: the user must be able to remove them at exit. */
	for (const char *const *p = d->ux ? unixexpose_paths(d->ux) : NULL; p && *p; p++)
		g_ptr_array_add(sockets, (gpointer)*p);
	g_ptr_array_add(sockets, NULL);
	sc.sockets = (const char *const *)sockets->pdata;
	if (user)
		sc.user = *user;
	if (!sc.set_user && geteuid() == 0)
		g_warning("running as root without --user: uid 0 and every capability are kept; "
			  "give --user USER to drop them after set-up");
	ret = sandbox_drop(&sc);
	if (ret)
		return ret;
	if (sc.set_user || geteuid() != 0)
		g_message("running as uid %u gid %u%s, no_new_privs, capabilities: %s",
			  (unsigned int)geteuid(), (unsigned int)getegid(),
			  sc.set_user ? ", no supplementary groups" : "",
			  sandbox_holds_net_bind() ? "cap_net_bind_service (an --expose port is "
			  "below ip_unprivileged_port_start)" : "none");
	return 0;
}

/*
 * Started with stdin, stdout or stderr closed, the daemon's first sockets
 * would take their numbers, and log lines would be written into a socket:
 * each closed one gets /dev/null (the lowest free number is the one
 * missing).
 */
static void main_fill_stdio(void)
{
	for (int fd = 0; fd <= STDERR_FILENO; fd++) {
		int null;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		null = open("/dev/null", O_RDWR);
		/* No /dev/null (a bare container): an eventfd holds the number, writes to it fail. */
		if (null < 0)
			null = eventfd(0, 0);
		if (null >= 0 && null != fd)
			close(null); /* not the lowest free number after all: leave it */
	}
}

int main(int argc, char **argv)
{
	struct ms_config cfg;
	struct main_state ms = { 0 };
	struct daemon d = { .on_fatal = main_on_fatal, .on_fatal_opaque = &ms };
	struct sandbox_user user = { 0 };
	struct cpuload load = CPULOAD_CLOSED;
	struct mainloop_poll poll;
	g_autoptr(GError) err = NULL;
	g_autoptr(GMainLoop) loop = NULL;
	int exit_code = 0;

	/* A vanished peer must be an error return, never a signal: stderr's reader too. */
	signal(SIGPIPE, SIG_IGN);
	main_fill_stdio();
	if (options_parse(argc, argv, &cfg, &err)) {
		g_printerr("meshslirp: %s\n", err->message);
		ms_config_free(&cfg);
		return 2;
	}
	if (cfg.show_version) {
		printf("meshslirp %s (libslirp %s)\n", MESHSLIRP_VERSION,
		       slirp_version_string());
		ms_config_free(&cfg);
		return 0;
	}
	log_init(cfg.log_level);
	if (main_resolve_user(&cfg, &user)) {
		ms_config_free(&cfg);
		return 2;
	}

	main_raise_nofile();
	main_tune_malloc();

	if (daemon_start(&d, &cfg)) {
		exit_code = 1;
		goto out;
	}
	main_log_config(&cfg);
	main_setup_poll(&cfg, &load, &poll, &d.busy_poll_us);
	if (main_drop_privileges(&cfg, &d, &user)) {
		exit_code = 1;
		goto stop;
	}

	loop = g_main_loop_new(NULL, TRUE); /* running: a quit before the first turn counts */
	ms.loop = loop;
	g_unix_signal_add(SIGTERM, main_on_signal, loop);
	g_unix_signal_add(SIGINT, main_on_signal, loop);
	g_unix_signal_add(SIGUSR1, main_on_usr1, &d);
	/*
	 * The vhost-user stall guard's watcher: a thread, so after the
	 * privileges are dropped (capset() is per thread) and before the
	 * filter (clone() is not on it), as GLib's worker just above.
	 */
	if (cfg.vhost_user_path) {
		int ret = stallguard_start(STALLGUARD_PERIOD_MS);

		if (ret) {
			g_warning("vhost-user: the stall guard could not start: %s", g_strerror(-ret));
			exit_code = 1;
			goto stop;
		}
	}
	if (cfg.seccomp) {
		unsigned int extras = (cfg.outbound_proxy_unix ? SANDBOX_UNIX_OUTBOUND : 0) |
				      (cfg.expose_unix->len ? SANDBOX_UNIX_INBOUND : 0) |
				      (d.ks ? SANDBOX_KERNEL_STEER : 0) |
				      (poll.window_us ? SANDBOX_BUSY_POLL : 0) |
				      (poll.contended ? SANDBOX_BUSY_POLL_GUARD : 0) |
				      (d.sched_policy != SCHEDMODE_NORMAL ? SANDBOX_SCHED : 0);

		if (sandbox_seccomp_apply(extras)) {
			exit_code = 1;
			goto stop;
		}
		g_message("seccomp: %zu system call rules; any other call kills the daemon",
			  sandbox_seccomp_rules(extras));
	}
	main_signal_ready(cfg.ready_fd);
	mainloop_run(loop, &poll, &d.loop_stats);
	exit_code = ms.exit_code;
	daemon_log_summary(&d);
stop:
	daemon_stop(&d);
	cpuload_close(&load);
out:
	ms_config_free(&cfg);
	return exit_code;
}
