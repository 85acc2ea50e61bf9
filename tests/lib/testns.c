/* testns.c - run a test process inside its own network namespace (no route out). */

#include "testns.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <glib.h>

/* exit(77), meson's "skipped", unless CI=true asks that nothing be skipped. */
static void testns_skip(const char *who, const char *why)
{
	const char *ci = getenv("CI");
	bool strict = ci && !strcmp(ci, "true");

	fprintf(stderr, "%s: %s: %s\n", who, strict ? "FAIL (CI=true: no skips)" : "SKIP", why);
	exit(strict ? 1 : 77);
}

static void testns_run(const char *who, const char *cmd)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *out = NULL;
	int status = 0;

	if (!g_spawn_command_line_sync(cmd, NULL, &out, &status, &err) ||
	    !g_spawn_check_wait_status(status, &err)) {
		fprintf(stderr, "%s: '%s' failed: %s %s\n", who, cmd, err ? err->message : "", out ? out : "");
		exit(1);
	}
}

void testns_enter(const char *who)
{
	static bool entered;
	struct ifreq ifr;
	int fd;

	if (entered)
		return;
	if (unshare(CLONE_NEWNET) < 0)
		testns_skip(who, "needs root to create its own network namespace");
	entered = true;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof(ifr));
	g_strlcpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name));
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)) {
		fprintf(stderr, "%s: cannot bring up lo in the private namespace: %s\n", who,
			strerror(errno));
		exit(1);
	}
	close(fd);
	/* Children inherit the namespace: ip(8) configures ours. */
	testns_run(who, "ip link add pod0 type veth peer name pod0peer");
	testns_run(who, "ip addr add " TESTNS_POD_ADDRESS "/32 dev pod0");
	testns_run(who, "ip link set pod0 up");
}
