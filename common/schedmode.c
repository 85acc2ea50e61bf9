/* schedmode.c - the data thread runs as SCHED_BATCH while it moves bulk traffic (see schedmode.h). */

#include "schedmode.h"

#include <errno.h>
#include <sched.h>

#include <glib.h>

bool schedmode_decide(struct schedmode *sm, int64_t now_us, uint64_t bytes)
{
	int64_t span;
	double rate;

	if (sm->disabled)
		return false;
	if (!sm->window_open || now_us < sm->last_us) {
		sm->window_open = true;
		sm->window_start_us = now_us;
		sm->window_start_bytes = bytes;
		sm->last_us = now_us;
		return false;
	}
	/*
	 * A quiet spell of a window or more: bulk traffic has guest frames (data or
	 * ACKs) every few milliseconds, so it ended.  Judged apart from the window,
	 * where the bytes before the spell could still read as a bulk rate.
	 */
	if (now_us - sm->last_us >= SCHEDMODE_WINDOW_US) {
		sm->window_start_us = now_us;
		sm->window_start_bytes = bytes;
		sm->last_us = now_us;
		return sm->batch;
	}
	sm->last_us = now_us;
	span = now_us - sm->window_start_us;
	if (span < SCHEDMODE_WINDOW_US)
		return false;
	/* In double: the product of bytes and microseconds need not fit 64 bits. */
	rate = bytes >= sm->window_start_bytes ?
	       (double)(bytes - sm->window_start_bytes) * 1e6 / (double)span : 0.0;
	sm->window_start_us = now_us;
	sm->window_start_bytes = bytes;
	return sm->batch ? rate < (double)SCHEDMODE_LEAVE_BPS : rate >= (double)SCHEDMODE_ENTER_BPS;
}

void schedmode_switched(struct schedmode *sm, int err)
{
	if (err) {
		sm->failures++;
		sm->disabled = true;
		return;
	}
	sm->batch = !sm->batch;
	if (sm->batch)
		sm->entered++;
	else
		sm->left++;
}

int schedmode_apply(bool batch)
{
	struct sched_param param = { .sched_priority = 0 };

	if (sched_setscheduler(0, batch ? SCHED_BATCH : SCHED_OTHER, &param))
		return -errno;
	return 0;
}

int schedmode_restore(struct schedmode *sm)
{
	int ret;

	if (!sm->batch)
		return 0;
	ret = schedmode_apply(false);
	schedmode_switched(sm, ret);
	return ret;
}

int schedmode_current_is_other(void)
{
	int policy = sched_getscheduler(0);

	if (policy < 0)
		return -errno;
	return policy == SCHED_OTHER;
}

const char *schedmode_policy_name(enum schedmode_policy policy)
{
	static const char *const names[] = {
		[SCHEDMODE_AUTO] = "auto",
		[SCHEDMODE_NORMAL] = "normal",
		[SCHEDMODE_BATCH] = "batch",
	};

	G_STATIC_ASSERT(G_N_ELEMENTS(names) == SCHEDMODE_POLICY_COUNT);
	return (unsigned int)policy < SCHEDMODE_POLICY_COUNT ? names[policy] : "?";
}
