/* log.c - one log format for the daemon, on top of GLib's structured logging. */

#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level log_threshold = LOG_LEVEL_INFO;

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
	fprintf(stderr, "meshslirp[%d]: %s: %s\n", (int)getpid(), labels[level],
		message ? message : "(no message)");
	return G_LOG_WRITER_HANDLED;
}

void log_init(enum log_level level)
{
	static bool installed;

	log_threshold = level;
	/* GLib allows one writer per process; later calls only move the threshold. */
	if (!installed)
		g_log_set_writer_func(log_write, NULL, NULL);
	installed = true;
}
