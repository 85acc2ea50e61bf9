/* stallguard.h - interrupt a system call that a peer holds blocked, where no flag can prevent it. */
#ifndef MESHSLIRP_COMMON_STALLGUARD_H
#define MESHSLIRP_COMMON_STALLGUARD_H

/*
 * Theory of operation.  A vhost-user front-end shares its eventfds' file
 * description with us, O_NONBLOCK included.  A write to a call eventfd
 * blocks while its counter is full, and the front-end can clear the flag
 * and fill the counter between our poll(), which found room, and our
 * write(): no flag or preceding check rules that out, and RWF_NOWAIT is
 * refused for eventfd writes.  So the call is guarded instead.
 *
 * stallguard_enter() and stallguard_leave() bracket the call, on the
 * thread that makes it; they cost a few atomic loads and stores, no
 * system call.  A watcher thread wakes every period and, when it finds
 * the same guarded call still running that it found one period before (a
 * generation count, odd while a call runs), sends that thread
 * STALLGUARD_SIGNAL, whose handler does nothing and is installed without
 * SA_RESTART: the blocked call returns EINTR, and stallguard_leave() says
 * the guard fired.  So a held call ends after one to two periods, and the
 * caller treats its peer as hostile.  The signal repeats each period until
 * the call returns.
 *
 * Lifecycle: stallguard_start() once, after privileges are dropped
 * (capabilities are per thread) and before a seccomp filter forbids
 * thread creation, on the thread whose calls are guarded (it unblocks the
 * signal there; others that guard calls must not block it); the watcher
 * then runs to process exit (a wake-up a period: clock_nanosleep, and to
 * signal, pthread_kill's getpid, rt_sigprocmask and tgkill under the
 * seccomp filter).  One guarded call at a time, process-wide: the daemon's
 * one data thread.  Not for calls a signal would not interrupt
 * (uninterruptible sleeps).
 *
 * The signal stays harmless elsewhere: the handler does nothing, and a
 * stray one (the watcher racing a call that just returned, or someone's
 * kill) interrupts at most one system call with EINTR, which the daemon's
 * loops treat as "try again".  Without this module SIGUSR2 would end the
 * process.
 */

#include <signal.h>
#include <stdbool.h>

#define STALLGUARD_SIGNAL SIGUSR2
#define STALLGUARD_PERIOD_MS 1000

/*
 * stallguard_start() - install the handler and start the watcher, waking
 * every @period_ms.  Later calls change nothing (the first period stands).
 * Return: 0 or -errno.
 */
int stallguard_start(unsigned int period_ms);

/*
 * stallguard_period() - the watcher's period in ms, 0 before
 * stallguard_start(): a held call ends after one to two of them.
 */
unsigned int stallguard_period(void);

/* stallguard_enter() - a guarded call begins on this thread. */
void stallguard_enter(void);

/*
 * stallguard_leave() - the guarded call returned.  Return: true if the
 * watcher signalled it (it ran for at least one period, held by its peer;
 * a blocked call then returned -1 with EINTR).
 */
bool stallguard_leave(void);

#endif /* MESHSLIRP_COMMON_STALLGUARD_H */
