/* cpuload.c - whether some task waits for a CPU now, from /proc/loadavg (see cpuload.h). */

#include "cpuload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

/*
 * Decimal digits at @buf[*@i..@len) into *@n (may be NULL), at least one;
 * *@i is left after them.  Returns 0, or -EINVAL for none or an overflow.
 */
static int cpuload_parse_decimal(const char *buf, size_t len, size_t *i, long *n)
{
	long v = 0;
	size_t start = *i;

	for (; *i < len && buf[*i] >= '0' && buf[*i] <= '9'; (*i)++) {
		int d = buf[*i] - '0';

		if (v > (LONG_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (*i == start)
		return -EINVAL;
	if (n)
		*n = v;
	return 0;
}

int cpuload_parse_runnable(const char *buf, size_t len, long *runnable)
{
	size_t i = 0;
	long n;

	/* Three load averages: each something, then one space. */
	for (int field = 0; field < 3; field++) {
		size_t start = i;

		while (i < len && buf[i] != ' ' && buf[i] != '\n')
			i++;
		if (i == start || i == len || buf[i] != ' ')
			return -EINVAL;
		i++;
	}
	if (cpuload_parse_decimal(buf, len, &i, &n) || i == len || buf[i] != '/')
		return -EINVAL;
	i++;
	if (cpuload_parse_decimal(buf, len, &i, NULL))
		return -EINVAL;
	*runnable = n;
	return 0;
}

int cpuload_open(struct cpuload *cl)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int fd;

	*cl = CPULOAD_CLOSED;
	fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	cl->fd = fd;
	cl->cpus = cpus > 0 ? cpus : 1;
	return 0;
}

bool cpuload_check_contended(void *opaque)
{
	const struct cpuload *cl = opaque;
	char buf[128];
	long runnable;
	ssize_t n;

	if (cl->fd < 0)
		return false;
	n = pread(cl->fd, buf, sizeof(buf), 0);
	if (n <= 0 || cpuload_parse_runnable(buf, (size_t)n, &runnable))
		return false;
	/* The caller is running, so it is one of them. */
	return runnable > cl->cpus;
}

void cpuload_close(struct cpuload *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	*cl = CPULOAD_CLOSED;
}
