/* log.c - one log format for the daemon, on top of GLib's structured logging. */

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/uio.h>

static enum log_level log_threshold = LOG_LEVEL_INFO;
static atomic_uint_fast64_t log_dropped;      /* since start */
static atomic_uint_fast64_t log_dropped_unsaid; /* not yet reported in a line of their own */

int log_level_parse(const char *name, enum log_level *level)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		if (!strcmp(name, names[i])) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static enum log_level log_level_of(GLogLevelFlags flags)
{
	if (flags & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		return LOG_LEVEL_ERROR;
	if (flags & G_LOG_LEVEL_WARNING)
		return LOG_LEVEL_WARNING;
	if (flags & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO))
		return LOG_LEVEL_INFO;
	return LOG_LEVEL_DEBUG;
}

/*
 * Write @line (@len bytes) to stderr without blocking.  Return: 0, or
 * -EAGAIN when stderr would block (nothing written; for a socket, possibly
 * the line's start only), or another -errno.
 */
static int log_put(const char *line, size_t len)
{
	struct iovec iov = { .iov_base = (void *)line, .iov_len = len };
	ssize_t n = pwritev2(STDERR_FILENO, &iov, 1, -1, RWF_NOWAIT);

	if (n < 0 && errno == EOPNOTSUPP)
		n = write(STDERR_FILENO, line, len);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EAGAIN;
}

/* Format one line, cut at LOG_LINE_MAX, and write it, after the count of lines dropped before it. */
G_GNUC_PRINTF(1, 2)
static void log_emit_line(const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	uint64_t unsaid = atomic_load(&log_dropped_unsaid);
	va_list ap;
	int n;

	if (unsaid) {
		n = snprintf(line, sizeof(line),
			     "meshslirp[%d]: warning: %" PRIu64 " log line(s) dropped: stderr was not "
			     "being read\n", (int)getpid(), unsaid);
		if (log_put(line, (size_t)n)) {
			atomic_fetch_add(&log_dropped, 1);
			atomic_fetch_add(&log_dropped_unsaid, 1);
			return;
		}
		atomic_fetch_sub(&log_dropped_unsaid, unsaid);
	}
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (log_put(line, (size_t)n)) {
		atomic_fetch_add(&log_dropped, 1);
		atomic_fetch_add(&log_dropped_unsaid, 1);
	}
}

uint64_t log_dropped_lines(void)
{
	return atomic_load(&log_dropped);
}

static GLogWriterOutput log_write(GLogLevelFlags flags, const GLogField *fields,
				  gsize n_fields, gpointer user_data)
{
	static const char *const labels[] = { "error", "warning", "info", "debug" };
	enum log_level level = log_level_of(flags);
	const char *message = NULL;

	(void)user_data;
	if (level > log_threshold)
		return G_LOG_WRITER_HANDLED;

	for (gsize i = 0; i < n_fields; i++) {
		if (!strcmp(fields[i].key, "MESSAGE")) {
			message = fields[i].value;
			break;
		}
	}
	log_emit_line("meshslirp[%d]: %s: %s\n", (int)getpid(), labels[level],
		      message ? message : "(no message)");
	return G_LOG_WRITER_HANDLED;
}

/*
 * A pipe or FIFO on stderr (a launcher's pipe, a container runtime's FIFO)
 * gets an open file description of its own, non-blocking.  A FIFO takes
 * no RWF_NOWAIT (EOPNOTSUPP, as of Linux 6.18), and O_NONBLOCK on the
 * inherited description would reach every process writing through it;
 * opening /proc/self/fd/2 opens the same pipe anew.  Where that fails,
 * stderr stays as it was.
 */
static void log_stderr_own(void)
{
	struct stat st;
	int flags, fd;

	flags = fcntl(STDERR_FILENO, F_GETFL);
	if (flags < 0 || (flags & O_NONBLOCK) || fstat(STDERR_FILENO, &st) || !S_ISFIFO(st.st_mode))
		return;
	fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	/* dup2() gives fd 2 the new description, inheritable as fd 2 was. */
	if (dup2(fd, STDERR_FILENO) < 0)
		g_warning("stderr: cannot make it non-blocking: %s", g_strerror(errno));
	close(fd);
}

void log_init(enum log_level level)
{
	static bool installed;

	log_threshold = level;
	log_stderr_own();
	/* GLib allows one writer per process; later calls only move the threshold. */
	if (!installed)
		g_log_set_writer_func(log_write, NULL, NULL);
	installed = true;
}
