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
 * A write never waits for stderr's reader: the daemon's data thread logs,
 * and a reader that stops reading (a launcher's pipe it never drains, a
 * container runtime's log FIFO whose collector stalls, journald's socket)
 * must not stop the guest's traffic.  A line that would wait is dropped
 * and counted (log_dropped_lines()), and the next line that goes out is
 * preceded by one saying how many went.  How, by what stderr is
 * (log_init()): a pipe or FIFO is reopened non-blocking for this process
 * alone (or, failing that, asked with poll() for room before each line of
 * at most a page); a socket is sent to with MSG_DONTWAIT, and the rest of
 * a line it takes only part of goes out before the next one.  A file or a
 * terminal is written as it comes: a file waits for no reader; a terminal
 * does while its output is stopped (^S), and a pty while its master is not
 * read.  Lines are at most LOG_LINE_MAX - 1 bytes, the newline included;
 * longer messages are cut.  Only lines through this writer are covered:
 * g_printerr() (set-up errors, before the loop) and a sanitizer's report
 * write fd 2 directly, and may be lost to a full pipe, or, where the pipe
 * could not be reopened, wait for it.
 */

#include <stdbool.h>
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

/* A line is at most this many bytes less one (the newline included): a page, so a pipe takes it whole. */
#define LOG_LINE_MAX 4096

/*
 * log_init() - install the writer; messages below @level are dropped.  A pipe
 * or FIFO on stderr is reopened non-blocking for this process alone, and
 * how later lines are written is chosen by what stderr is now.
 */
void log_init(enum log_level level);

/*
 * log_enabled() - whether a line at @level would be written: a caller checks
 * before formatting one per flow (GLib formats a message before any handler
 * can drop it).
 */
bool log_enabled(enum log_level level);

/* log_dropped_lines() - lines dropped since start because stderr would have blocked. */
uint64_t log_dropped_lines(void);

#endif /* MESHSLIRP_COMMON_LOG_H */
