/* stallguard.c - interrupt a system call that a peer holds blocked (see stallguard.h). */

#include "stallguard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <glib.h>

/*
 * The guarded call's generation: odd while it runs.  Only the calling
 * thread writes it; the watcher reads it, and writes fired_gen, the
 * generation it signalled, so a signal meant for an earlier call is never
 * read as this one's.
 */
static atomic_uint_fast64_t stallguard_gen;
static atomic_uint_fast64_t stallguard_fired_gen;
static atomic_uintptr_t stallguard_owner;  /* the pthread_t of the call's thread */
static unsigned int stallguard_period_ms;

static void stallguard_on_signal(int sig)
{
	(void)sig; /* its work is done: the blocked call returns EINTR */
}

static gpointer stallguard_watch(gpointer opaque)
{
	uint_fast64_t seen = 0;
	sigset_t mask;

	(void)opaque;
	/* The signal is for the guarded thread, never this one. */
	sigemptyset(&mask);
	sigaddset(&mask, STALLGUARD_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	for (;;) {
		struct timespec period = { .tv_sec = stallguard_period_ms / 1000,
					   .tv_nsec = (long)(stallguard_period_ms % 1000) * 1000000 };
		uint_fast64_t gen;

		/* The one sleep call the seccomp filter allows, whatever the libc. */
		while (clock_nanosleep(CLOCK_MONOTONIC, 0, &period, &period) == EINTR)
			;
		gen = atomic_load_explicit(&stallguard_gen, memory_order_acquire);
		if ((gen & 1) && gen == seen) {
			atomic_store(&stallguard_fired_gen, gen);
			pthread_kill((pthread_t)atomic_load(&stallguard_owner), STALLGUARD_SIGNAL);
		}
		seen = gen;
	}
	return NULL;
}

int stallguard_start(unsigned int period_ms)
{
	struct sigaction sa = { .sa_handler = stallguard_on_signal };
	g_autoptr(GError) err = NULL;
	sigset_t mask;
	GThread *t;
	int ret;

	if (stallguard_period_ms)
		return 0;
	/* No SA_RESTART: a blocked call must return, not resume its wait. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(STALLGUARD_SIGNAL, &sa, NULL) < 0)
		return -errno;
	/* A mask inherited from a careless launcher would hold the signal pending for ever. */
	sigemptyset(&mask);
	sigaddset(&mask, STALLGUARD_SIGNAL);
	ret = pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
	if (ret)
		return -ret;
	stallguard_period_ms = period_ms ? period_ms : 1;
	t = g_thread_try_new("stallguard", stallguard_watch, NULL, &err);
	if (!t) {
		stallguard_period_ms = 0;
		return -EAGAIN;
	}
	g_thread_unref(t);
	return 0;
}

unsigned int stallguard_period(void)
{
	return stallguard_period_ms;
}

void stallguard_enter(void)
{
	atomic_store_explicit(&stallguard_owner, (uintptr_t)pthread_self(), memory_order_relaxed);
	atomic_fetch_add_explicit(&stallguard_gen, 1, memory_order_release);
}

bool stallguard_leave(void)
{
	uint_fast64_t gen = atomic_load_explicit(&stallguard_gen, memory_order_relaxed);
	bool fired = atomic_load(&stallguard_fired_gen) == gen;

	atomic_fetch_add_explicit(&stallguard_gen, 1, memory_order_release);
	return fired;
}
