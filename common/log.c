/* log.c - one log format for the daemon, on top of GLib's structured logging. */

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

static enum log_level log_threshold = LOG_LEVEL_INFO;
/* How stderr is written without waiting for its reader (log_init()). */
enum log_out {
	LOG_OUT_PLAIN,                 /* a file, a terminal: write() as it comes */
	LOG_OUT_PIPE_OWN,              /* a pipe or FIFO, on a non-blocking description of our own */
	LOG_OUT_PIPE_POLLED,           /* one we could not reopen: poll() for room first */
	LOG_OUT_SOCKET,                /* send(MSG_DONTWAIT) */
};

static enum log_out log_out = LOG_OUT_PLAIN;
static atomic_uint_fast64_t log_dropped;      /* since start; read by the metrics */
/* Under log_lock: any thread may log. */
static GMutex log_lock;
static uint64_t log_dropped_unsaid;           /* not yet said in a line of their own */
static char log_tail[LOG_LINE_MAX];           /* the unsent rest of a line a stream socket cut */
static size_t log_tail_len;

/*
 * A stream socket took the first @sent of @len bytes of @line: keep the
 * rest for the next line out (a line not begun is simply dropped).
 */
static void log_keep_tail(const char *line, size_t len, size_t sent)
{
	if (!sent || sent >= len || len - sent > sizeof(log_tail))
		return;
	memcpy(log_tail, line + sent, len - sent);
	log_tail_len = len - sent;
}

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
 * Write @line (@len bytes) to stderr, never waiting for its reader.
 * Return: 0, or -EAGAIN when stderr would block (nothing written; for a
 * stream socket, possibly the line's start only, which @sent says), or
 * another -errno.  Call with log_lock held.
 */
static int log_put(const char *line, size_t len, size_t *sent)
{
	struct pollfd p = { .fd = STDERR_FILENO, .events = POLLOUT };
	ssize_t n;

	*sent = 0;
	for (int tries = 0; tries < 2; tries++) {
		switch (log_out) {
		case LOG_OUT_SOCKET:
			n = send(STDERR_FILENO, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			break;
		case LOG_OUT_PIPE_POLLED:
			/*
			 * A free slot takes a write of up to a page whole: no wait,
			 * unless another writer fills it first.  No reader: no write.
			 */
			if (poll(&p, 1, 0) != 1)
				return -EAGAIN;
			if (p.revents & (POLLERR | POLLHUP))
				return -EPIPE;
			if (!(p.revents & POLLOUT))
				return -EAGAIN;
			n = write(STDERR_FILENO, line, len);
			break;
		default:
			n = write(STDERR_FILENO, line, len);
			break;
		}
		/* A signal in the call is not a stalled reader: once more. */
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n < 0)
		return -errno;
	*sent = (size_t)n;
	return (size_t)n == len ? 0 : -EAGAIN;
}

/* A line went unwritten: counted, and said by the next line that goes out. */
static void log_drop(void)
{
	atomic_fetch_add(&log_dropped, 1);
	log_dropped_unsaid++;
}

/*
 * Write @line, after what a stream socket left of the line before and the
 * count of lines dropped since the last one out.  Call with log_lock held.
 */
static void log_put_line(const char *line, size_t len)
{
	char note[160];
	size_t sent;
	int n;

	/* A line a socket took in part arrives whole: the rest goes first, and it is no drop. */
	if (log_tail_len) {
		if (log_put(log_tail, log_tail_len, &sent)) {
			memmove(log_tail, log_tail + sent, log_tail_len - sent);
			log_tail_len -= sent;
			log_drop();
			return;
		}
		log_tail_len = 0;
	}
	if (log_dropped_unsaid) {
		n = snprintf(note, sizeof(note),
			     "meshslirp[%d]: warning: %" PRIu64 " log line(s) dropped: stderr was not "
			     "being read\n", (int)getpid(), log_dropped_unsaid);
		if (log_put(note, (size_t)n, &sent)) {
			log_keep_tail(note, (size_t)n, sent);
			/* A note begun is a note said: its rest goes out with the next line. */
			if (sent)
				log_dropped_unsaid = 0;
			log_drop();
			return;
		}
		log_dropped_unsaid = 0;
	}
	if (log_put(line, len, &sent)) {
		log_keep_tail(line, len, sent);
		if (!sent)
			log_drop();
	}
}

/* Format one line, cut to LOG_LINE_MAX - 1 bytes (newline included), and write it. */
G_GNUC_PRINTF(1, 2)
static void log_emit_line(const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	g_mutex_lock(&log_lock);
	log_put_line(line, (size_t)n);
	g_mutex_unlock(&log_lock);
}

bool log_enabled(enum log_level level)
{
	return level <= log_threshold;
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
	if (!log_enabled(level))
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
 * How to write stderr without waiting for its reader.  A pipe or FIFO (a
 * launcher's pipe, a container runtime's FIFO) gets an open file
 * description of its own, non-blocking: O_NONBLOCK on the inherited one
 * would reach every process writing through it, and a FIFO takes no
 * RWF_NOWAIT (EOPNOTSUPP, as of Linux 6.18); opening /proc/self/fd/2 opens
 * the same pipe anew.  Where that fails (no reader yet, no /proc), each
 * write first asks poll() for room.  A socket (journald's stream) is sent
 * to with MSG_DONTWAIT.  A file or a terminal is written as before: a
 * file never waits for a reader; a terminal does while its output is
 * stopped, and a pty while its master is not read.  Called under
 * log_lock; a tail or a count left from an earlier stderr is dropped.
 */
static void log_stderr_choose(void)
{
	struct stat st;
	int flags, fd;

	log_tail_len = 0;
	log_dropped_unsaid = 0;
	log_out = LOG_OUT_PLAIN;
	flags = fcntl(STDERR_FILENO, F_GETFL);
	if (flags < 0 || fstat(STDERR_FILENO, &st))
		return;
	if (S_ISSOCK(st.st_mode)) {
		log_out = LOG_OUT_SOCKET;
		return;
	}
	if (!S_ISFIFO(st.st_mode))
		return;
	log_out = LOG_OUT_PIPE_OWN;
	if (flags & O_NONBLOCK)
		return;
	fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	/* dup2() gives fd 2 the new description (inheritable: the daemon execs nothing). */
	if (fd >= 0 && dup2(fd, STDERR_FILENO) == STDERR_FILENO) {
		close(fd);
		return;
	}
	if (fd >= 0)
		close(fd);
	log_out = LOG_OUT_PIPE_POLLED;
}

static void log_stderr_setup(void)
{
	enum log_out out;

	g_mutex_lock(&log_lock);
	log_stderr_choose();
	out = log_out;
	g_mutex_unlock(&log_lock);
	if (out == LOG_OUT_PIPE_POLLED)
		g_warning("stderr is a pipe that could not be reopened non-blocking: each log line "
			  "asks poll() for room first");
}

void log_init(enum log_level level)
{
	static bool installed;

	log_threshold = level;
	/* GLib allows one writer per process; later calls only move the threshold. */
	if (!installed)
		g_log_set_writer_func(log_write, NULL, NULL);
	installed = true;
	log_stderr_setup();
}
