/* ratelimit.h - fixed-window rate limit for log lines that peers can trigger. */
#ifndef MESHSLIRP_COMMON_RATELIMIT_H
#define MESHSLIRP_COMMON_RATELIMIT_H

/*
 * A guest or a client must not be able to flood the log.  Each struct
 * ratelimit allows @burst events per one-second window; the rest are counted
 * in @suppressed, and the first allowed event of a later window reports how
 * many were suppressed, so no event goes unaccounted.
 */

#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
	unsigned int burst;        /* events allowed per window */
	unsigned int count;        /* events in the current window */
	int64_t window_start_us;   /* monotonic */
	uint64_t suppressed;       /* since the last allowed event */
};

#define RATELIMIT_INIT(b) { .burst = (b), .count = 0, .window_start_us = 0, .suppressed = 0 }

/**
 * ratelimit_allow() - may one more event be logged now?
 * @rl:		limiter
 * @now_us:	monotonic time in microseconds
 * @suppressed:	set to the number of events suppressed before this one
 *		(only meaningful when true is returned)
 *
 * Return: true if the event may be logged.
 */
bool ratelimit_allow(struct ratelimit *rl, int64_t now_us, uint64_t *suppressed);

#endif /* MESHSLIRP_COMMON_RATELIMIT_H */
