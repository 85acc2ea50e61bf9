/* fuzz_common.c - helpers shared by the libFuzzer targets: invariant checks, quiet logs, a private netns. */

#include "fuzz_common.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <glib.h>

static GLogWriterOutput fuzz_log_write(GLogLevelFlags flags, const GLogField *fields,
				       gsize n_fields, gpointer user_data)
{
	(void)user_data;
	if (!(flags & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)))
		return G_LOG_WRITER_HANDLED;
	for (gsize i = 0; i < n_fields; i++) {
		if (!strcmp(fields[i].key, "MESSAGE"))
			fprintf(stderr, "fuzz: GLib critical: %s\n", (const char *)fields[i].value);
	}
	abort();
}

void fuzz_quiet_logs(void)
{
	g_log_set_writer_func(fuzz_log_write, NULL, NULL);
}

void fuzz_private_netns(const char *target)
{
	struct ifreq ifr;
	int fd;

	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "%s: cannot create a private network namespace (unshare: %s).\n"
			"%s: this target makes libslirp open real sockets; it runs only as root,\n"
			"%s: inside its own empty namespace, never in the host's.\n",
			target, strerror(errno), target, target);
		exit(1);
	}
	/* The new namespace has only a loopback device, and it is down. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof(ifr));
	g_strlcpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name));
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)) {
		fprintf(stderr, "%s: cannot bring up lo in the private namespace: %s\n", target,
			strerror(errno));
		exit(1);
	}
	close(fd);
}

uint64_t fuzz_sum_be16(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint64_t)p[i] << 8 | p[i + 1];
	if (i < len)
		sum += (uint64_t)p[i] << 8;
	return sum;
}
