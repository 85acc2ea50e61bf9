/* timerwheel.c - a hashed timer wheel over dense ids: expiry costs what expires, not what exists. */

#include "timerwheel.h"

#include <errno.h>

#include <glib.h>

#define TW_NIL UINT32_MAX
/* The list being walked by timerwheel_expire(): nothing is ever linked into it from outside. */
#define TW_WALKING TIMERWHEEL_BUCKETS
/*
 * Entries of ticks the wheel has already walked (a deadline later in the
 * current second, or one armed in the past): looked at on every call, so
 * that the buckets themselves are walked once per lap.
 */
#define TW_SOON (TIMERWHEEL_BUCKETS + 1)
#define TW_LISTS (TIMERWHEEL_BUCKETS + 2)

G_STATIC_ASSERT((TIMERWHEEL_BUCKETS & (TIMERWHEEL_BUCKETS - 1)) == 0);

struct tw_entry {
	int64_t deadline_us;       /* 0: disarmed */
	uint32_t tick;             /* the tick whose bucket holds it (saturated at TW_TICK_MAX) */
	uint32_t prev, next;       /* TW_NIL at either end */
	uint32_t list;             /* bucket, TW_WALKING, or TW_NIL when not linked */
};

struct timerwheel {
	struct tw_entry *e;
	uint32_t cap;
	int64_t tick_us;
	uint32_t next_tick;        /* first tick whose bucket is not walked yet; earlier: TW_SOON */
	uint32_t head[TW_LISTS];
	uint64_t visits;
};

/* Ticks saturate here rather than wrap: a far deadline only costs a visit per lap. */
#define TW_TICK_MAX (UINT32_MAX - 1)

static uint32_t tw_tick_of(const struct timerwheel *w, int64_t when_us)
{
	int64_t t;

	if (when_us <= 0)
		return 0;
	t = when_us / w->tick_us;
	return t > TW_TICK_MAX ? TW_TICK_MAX : (uint32_t)t;
}

static void tw_link(struct timerwheel *w, uint32_t id, uint32_t list)
{
	struct tw_entry *e = &w->e[id];

	e->list = list;
	e->prev = TW_NIL;
	e->next = w->head[list];
	if (e->next != TW_NIL)
		w->e[e->next].prev = id;
	w->head[list] = id;
}

static void tw_unlink(struct timerwheel *w, uint32_t id)
{
	struct tw_entry *e = &w->e[id];

	if (e->list == TW_NIL)
		return;
	if (e->prev == TW_NIL)
		w->head[e->list] = e->next;
	else
		w->e[e->prev].next = e->next;
	if (e->next != TW_NIL)
		w->e[e->next].prev = e->prev;
	e->list = TW_NIL;
}

/* Link @id into the bucket of @tick, or the soon list if the wheel has walked past it. */
static void tw_link_at(struct timerwheel *w, uint32_t id, uint32_t tick)
{
	w->e[id].tick = tick;
	tw_link(w, id, tick < w->next_tick ? TW_SOON : tick & (TIMERWHEEL_BUCKETS - 1));
}

/* Move every entry of @list to the walking list. */
static void tw_take(struct timerwheel *w, uint32_t list)
{
	while (w->head[list] != TW_NIL) {
		uint32_t id = w->head[list];

		tw_unlink(w, id);
		tw_link(w, id, TW_WALKING);
	}
}

/* Fire what is due on the walking list; link the rest where their deadline now belongs. */
static size_t tw_walk(struct timerwheel *w, int64_t now_us,
		      void (*fn)(uint32_t id, void *opaque), void *opaque)
{
	size_t fired = 0;

	while (w->head[TW_WALKING] != TW_NIL) {
		uint32_t id = w->head[TW_WALKING];
		struct tw_entry *e = &w->e[id];

		w->visits++;
		tw_unlink(w, id);
		if (e->deadline_us > now_us) {
			/* A later lap, a deadline that moved on, or later this tick. */
			tw_link_at(w, id, tw_tick_of(w, e->deadline_us));
			continue;
		}
		e->deadline_us = 0;
		fired++;
		if (fn)
			fn(id, opaque);
	}
	return fired;
}

int timerwheel_new(uint32_t capacity, int64_t tick_us, struct timerwheel **out)
{
	struct timerwheel *w;

	if (!capacity || tick_us <= 0)
		return -EINVAL;
	w = g_new0(struct timerwheel, 1);
	w->cap = capacity;
	w->tick_us = tick_us;
	w->e = g_new(struct tw_entry, capacity);
	for (uint32_t i = 0; i < capacity; i++)
		w->e[i] = (struct tw_entry){ .list = TW_NIL, .prev = TW_NIL, .next = TW_NIL };
	for (uint32_t i = 0; i < TW_LISTS; i++)
		w->head[i] = TW_NIL;
	*out = w;
	return 0;
}

void timerwheel_free(struct timerwheel *w)
{
	if (!w)
		return;
	g_free(w->e);
	g_free(w);
}

void timerwheel_disarm(struct timerwheel *w, uint32_t id)
{
	g_assert(id < w->cap);
	tw_unlink(w, id);
	w->e[id].deadline_us = 0;
}

void timerwheel_arm(struct timerwheel *w, uint32_t id, int64_t when_us)
{
	struct tw_entry *e;
	uint32_t tick;

	g_assert(id < w->cap);
	if (!when_us) {
		timerwheel_disarm(w, id);
		return;
	}
	e = &w->e[id];
	tick = tw_tick_of(w, when_us);
	e->deadline_us = when_us;
	/* Later than where it sits: it moves when that bucket comes round (the per-packet case). */
	if (e->list < TIMERWHEEL_BUCKETS && e->tick <= tick)
		return;
	tw_unlink(w, id);
	tw_link_at(w, id, tick);
}

int64_t timerwheel_deadline(const struct timerwheel *w, uint32_t id)
{
	g_assert(id < w->cap);
	return w->e[id].deadline_us;
}

size_t timerwheel_expire(struct timerwheel *w, int64_t now_us,
			 void (*fn)(uint32_t id, void *opaque), void *opaque)
{
	uint32_t cur = tw_tick_of(w, now_us);
	uint32_t first = w->next_tick;
	uint32_t nbuckets;
	size_t fired;

	/*
	 * The buckets of the ticks since the last call.  After a stall of a
	 * lap or more, each bucket once is every tick; a clock that went back
	 * (a test's, never a monotonic one) walks them all too, and every
	 * entry is relinked by its own deadline.
	 */
	if ((uint64_t)cur + 1 == first)
		nbuckets = 0;                  /* the same tick again: the soon list only */
	else if (cur < first || cur - first >= TIMERWHEEL_BUCKETS)
		nbuckets = TIMERWHEEL_BUCKETS;
	else
		nbuckets = cur - first + 1;
	/* Unsigned wrap is harmless: the bucket count divides 2^32. */
	first = cur + 1 - nbuckets;
	/*
	 * From here on, what is (re-)armed for this tick or earlier goes to
	 * the soon list, which this call has already taken: each entry is
	 * looked at once per call, whatever the callback does.
	 */
	w->next_tick = cur + 1;
	tw_take(w, TW_SOON);
	fired = tw_walk(w, now_us, fn, opaque);
	for (uint32_t i = 0; i < nbuckets; i++) {
		tw_take(w, (first + i) & (TIMERWHEEL_BUCKETS - 1));
		fired += tw_walk(w, now_us, fn, opaque);
	}
	return fired;
}

uint64_t timerwheel_visits(const struct timerwheel *w)
{
	return w->visits;
}
