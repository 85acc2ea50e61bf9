/* fdsource.h - a GSource watching one file descriptor with events that can change. */
#ifndef MESHSLIRP_COMMON_FDSOURCE_H
#define MESHSLIRP_COMMON_FDSOURCE_H

/*
 * g_unix_fd_add() fixes its condition at creation; backpressure needs to
 * switch G_IO_IN and G_IO_OUT on and off cheaply, which
 * g_source_modify_unix_fd() does without re-creating the source.  The
 * source does not own the descriptor: whoever created it closes the fd
 * after destroying the source.
 */

#include <glib.h>

/* Called with the conditions that are ready; return G_SOURCE_REMOVE to stop. */
typedef gboolean (*fdsource_fn)(int fd, GIOCondition ready, void *opaque);

/**
 * fdsource_new() - watch @fd for @events on the default main context
 *
 * Return: the attached source (the caller holds one reference; release it
 * with g_source_destroy() and g_source_unref(), or fdsource_clear()).
 */
GSource *fdsource_new(int fd, GIOCondition events, fdsource_fn fn, void *opaque);

/* fdsource_set_events() - change the watched conditions (0 pauses the watch). */
void fdsource_set_events(GSource *source, GIOCondition events);

/* fdsource_events() - the conditions currently watched. */
GIOCondition fdsource_events(GSource *source);

/* fdsource_clear() - destroy and release *@source if set; sets it to NULL. */
void fdsource_clear(GSource **source);

#endif /* MESHSLIRP_COMMON_FDSOURCE_H */
