/* log.h - one log format for the daemon, on top of GLib's structured logging. */
#ifndef MESHSLIRP_COMMON_LOG_H
#define MESHSLIRP_COMMON_LOG_H

/*
 * Every module logs with GLib's g_warning()/g_message()/g_info()/g_debug()
 * under the "meshslirp" domain; log_init() installs a writer that prints
 * "meshslirp[PID]: LEVEL: message" to stderr and drops messages below the
 * configured level.  Anything a guest or a network client can trigger must
 * go through a struct ratelimit (ratelimit.h) first.
 *
 * A write never blocks: the daemon's data thread logs, and a reader of
 * stderr that stops reading (a launcher's pipe it never drains, a stalled
 * log collector) must not stop the guest's traffic.  Each line is one
 * pwritev2(RWF_NOWAIT) of at most LOG_LINE_MAX bytes (PIPE_BUF: a pipe takes
 * it whole or not at all); a line that would block is dropped and counted
 * (log_dropped_lines()), and the next line that goes out is preceded by
 * one saying how many went.  A pipe or FIFO, which need not take
 * RWF_NOWAIT, is first given a non-blocking description of the daemon's
 * own (log_init()).  Where stderr cannot tell otherwise (EOPNOTSUPP: a
 * terminal, some file systems) the line is written as before, which may
 * block: a terminal whose output is stopped.
 */

#include <stdint.h>

#include <glib.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/**
 * log_level_parse() - parse "error", "warning", "info" or "debug"
 *
 * Return: 0 and *level set, or -EINVAL.
 */
int log_level_parse(const char *name, enum log_level *level);

/* A line's most bytes, the newline included; longer messages are cut. */
#define LOG_LINE_MAX 4096

/*
 * log_init() - install the writer; messages below @level are dropped.  A pipe
 * or FIFO on stderr is reopened non-blocking for this process alone.
 */
void log_init(enum log_level level);

/* log_dropped_lines() - lines dropped since start because stderr would have blocked. */
uint64_t log_dropped_lines(void);

#endif /* MESHSLIRP_COMMON_LOG_H */
