/* fdsource.c - a GSource watching one file descriptor with events that can change. */

#include "fdsource.h"

struct fdsource {
	GSource base;
	gpointer tag;
	int fd;
	GIOCondition events;
};

static gboolean fdsource_dispatch(GSource *source, GSourceFunc callback,
				  gpointer user_data)
{
	struct fdsource *fs = (struct fdsource *)source;
	GIOCondition ready = g_source_query_unix_fd(source, fs->tag);

	if (!ready)
		return G_SOURCE_CONTINUE;
	return ((fdsource_fn)(void (*)(void))callback)(fs->fd, ready, user_data);
}

static GSourceFuncs fdsource_funcs = {
	.dispatch = fdsource_dispatch,
};

GSource *fdsource_new(int fd, GIOCondition events, fdsource_fn fn, void *opaque)
{
	GSource *source = g_source_new(&fdsource_funcs, sizeof(struct fdsource));
	struct fdsource *fs = (struct fdsource *)source;

	fs->fd = fd;
	fs->events = events;
	fs->tag = g_source_add_unix_fd(source, fd, events);
	g_source_set_callback(source, (GSourceFunc)(void (*)(void))fn, opaque, NULL);
	/* No re-entry happens; avoid GLib's block/unblock, which wakes the loop (netstack.c). */
	g_source_set_can_recurse(source, TRUE);
	g_source_attach(source, NULL);
	return source;
}

void fdsource_set_events(GSource *source, GIOCondition events)
{
	struct fdsource *fs = (struct fdsource *)source;

	if (fs->events == events)
		return;
	fs->events = events;
	g_source_modify_unix_fd(source, fs->tag, events);
}

GIOCondition fdsource_events(GSource *source)
{
	return ((struct fdsource *)source)->events;
}

void fdsource_clear(GSource **source)
{
	if (!*source)
		return;
	g_source_destroy(*source);
	g_source_unref(*source);
	*source = NULL;
}
