/* timerwheel.h - a hashed timer wheel over dense ids: expiry costs what expires, not what exists. */
#ifndef MESHSLIRP_COMMON_TIMERWHEEL_H
#define MESHSLIRP_COMMON_TIMERWHEEL_H

/*
 * Theory of operation
 *
 * Each id (0..capacity-1, e.g. a flow table's slot) has at most one
 * deadline.  An armed id sits in one of TIMERWHEEL_BUCKETS doubly linked
 * lists, the bucket of its tick (deadline / tick length, modulo the bucket
 * count); the links live in an array allocated once, so arming, re-arming
 * and disarming are O(1) and allocate nothing.
 *
 * timerwheel_expire(now) walks only the buckets of the ticks since the last
 * call (at most all of them, once, after a long stall) and, in each, only
 * the ids linked there; a bucket is walked once per lap.  Ids whose tick the
 * wheel has already walked (a deadline later in the current tick, or one
 * armed in the past) wait on a short "soon" list looked at on every call.  An id whose deadline has come is disarmed and handed
 * to the callback; one whose deadline is later (a later lap of the wheel, or
 * a deadline that moved on) is linked again where it now belongs.
 *
 * Re-arming for a later deadline, which every packet of a busy flow does to
 * its idle timer, only stores the new deadline: the id stays where it is and
 * moves when its old bucket comes round.  A deadline that moves earlier is
 * relinked at once, so nothing ever fires late by more than a tick.
 *
 * Cost: an idle table with no deadline due touches one bucket per call; an
 * id is visited about once per lap of the wheel (TIMERWHEEL_BUCKETS ticks)
 * or per re-arm, whichever is rarer, plus once when it fires.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMERWHEEL_BUCKETS 512u

struct timerwheel;

/**
 * timerwheel_new() - a wheel for ids 0..@capacity-1, ticking every @tick_us
 *
 * Return: 0, or -EINVAL for a zero @capacity or @tick_us.
 */
int timerwheel_new(uint32_t capacity, int64_t tick_us, struct timerwheel **out);

/* timerwheel_free() - free the wheel; NULL is a no-op. */
void timerwheel_free(struct timerwheel *w);

/**
 * timerwheel_arm() - give @id the deadline @when_us (monotonic), replacing any
 *
 * @when_us 0 disarms.  A deadline already past fires on the next
 * timerwheel_expire().  Safe inside the expire callback, for any id.
 */
void timerwheel_arm(struct timerwheel *w, uint32_t id, int64_t when_us);

/* timerwheel_disarm() - @id has no deadline; a no-op if it had none. */
void timerwheel_disarm(struct timerwheel *w, uint32_t id);

/* timerwheel_deadline() - @id's deadline, 0 if it has none. */
int64_t timerwheel_deadline(const struct timerwheel *w, uint32_t id);

/**
 * timerwheel_expire() - fire every id whose deadline is at or before @now_us
 * @fn:		called with each, already disarmed; it may arm or disarm any
 *		id (its own included) and may run arbitrary code
 *
 * Order: by bucket (tick), not within a tick.  Work: the buckets of the
 * ticks since the last call, at most TIMERWHEEL_BUCKETS of them, and the ids
 * linked in those.
 *
 * Return: the number of ids fired.
 */
size_t timerwheel_expire(struct timerwheel *w, int64_t now_us,
			 void (*fn)(uint32_t id, void *opaque), void *opaque);

/* timerwheel_visits() - ids looked at by timerwheel_expire() since creation (tests, profiling). */
uint64_t timerwheel_visits(const struct timerwheel *w);

#endif /* MESHSLIRP_COMMON_TIMERWHEEL_H */
