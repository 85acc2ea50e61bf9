/* ratelimit.c - fixed-window rate limit for log lines that peers can trigger. */

#include "ratelimit.h"

#define RATELIMIT_WINDOW_US 1000000

bool ratelimit_allow(struct ratelimit *rl, int64_t now_us, uint64_t *suppressed)
{
	if (now_us - rl->window_start_us >= RATELIMIT_WINDOW_US) {
		rl->window_start_us = now_us;
		rl->count = 0;
	}
	if (rl->count >= rl->burst) {
		rl->suppressed++;
		return false;
	}
	rl->count++;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}
