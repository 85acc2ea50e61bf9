/* log.h - one log format for the daemon, on top of GLib's structured logging. */
#ifndef MESHSLIRP_COMMON_LOG_H
#define MESHSLIRP_COMMON_LOG_H

/*
 * Every module logs with GLib's g_warning()/g_message()/g_info()/g_debug()
 * under the "meshslirp" domain; log_init() installs a writer that prints
 * "meshslirp[PID]: LEVEL: message" to stderr and drops messages below the
 * configured level.  Anything a guest or a network client can trigger must
 * go through a struct ratelimit (ratelimit.h) first.
 */

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

/* log_init() - install the writer; messages below @level are dropped. */
void log_init(enum log_level level);

#endif /* MESHSLIRP_COMMON_LOG_H */
