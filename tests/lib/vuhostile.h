/* vuhostile.h - named misbehaviours of a vhost-user front-end, and how the backend took them. */
#ifndef MESHSLIRP_TESTS_VUHOSTILE_H
#define MESHSLIRP_TESTS_VUHOSTILE_H

/*
 * Theory of operation
 *
 * Each case does one thing the protocol forbids, on a connected vufront:
 * control-plane cases (VUHOSTILE_CONNECTED) start from a fresh connection
 * and negotiate as far as they need (REPLY_ACK on when offered, so the
 * backend can refuse without hanging up); ring cases (VUHOSTILE_STARTED)
 * run on a started device (vuhostile_prepare()) and write descriptors or
 * indices by hand, then kick.  The tool's `hostile` subcommand runs one
 * case per process; in-process tests call the same functions with the
 * daemon on their own GLib context (every wait goes through the vufront's
 * pump).
 *
 * vuhostile_judge() then tells what the backend did: it closed the
 * connection within settle_ms, or still answers GET_FEATURES on it
 * (serving), or neither (unresponsive: it stopped reading, or hangs).
 * A REPLY_ACK to the hostile request is reported in *ack (UINT64_MAX if
 * none came): non-zero means the backend refused it and went on.
 *
 * After a case the connection's state is undefined; use a new vufront (or
 * vufront_disconnect()) for anything else.
 */

#include <stddef.h>
#include <stdint.h>

#include "tests/lib/vufront.h"

#define VUHOSTILE_SETTLE_MS 1000    /* default time a backend gets to hang up */
#define VUHOSTILE_LIVENESS_MS 1000  /* how long GET_FEATURES may take afterwards */

enum vuhostile_phase {
	VUHOSTILE_CONNECTED,        /* nothing negotiated yet */
	VUHOSTILE_STARTED,          /* both queues running (vuhostile_prepare()) */
};

enum vuhostile_result {
	VUHOSTILE_CLOSED,
	VUHOSTILE_SERVING,
	VUHOSTILE_UNRESPONSIVE,
};

struct vuhostile_case {
	const char *name;
	enum vuhostile_phase phase;
	uint32_t request;           /* the request whose REPLY_ACK to report, 0 for none */
	int (*run)(struct vufront *vf); /* 0 or -errno (sending may fail: the peer left) */
	const char *what;           /* one line for --help */
};

/* vuhostile_cases() - every case, in a fixed order; *@n is set to their number. */
const struct vuhostile_case *vuhostile_cases(size_t *n);

/* vuhostile_find() - the case called @name, or NULL. */
const struct vuhostile_case *vuhostile_find(const char *name);

/* vuhostile_prepare() - bring a connected @vf to the case's phase. 0 or -errno. */
int vuhostile_prepare(struct vufront *vf, const struct vuhostile_case *hc);

/**
 * vuhostile_judge() - what the backend did after @hc ran on @vf
 * @settle_ms:	how long it gets to close the connection
 * @ack:	set to its REPLY_ACK to hc->request, UINT64_MAX if none
 *
 * Return: VUHOSTILE_CLOSED, _SERVING or _UNRESPONSIVE (see above).
 */
enum vuhostile_result vuhostile_judge(struct vufront *vf, const struct vuhostile_case *hc,
				      int settle_ms, uint64_t *ack);

const char *vuhostile_result_str(enum vuhostile_result r);

/*
 * vuhostile_arp_gateway() - ARP for 10.0.2.2 from 10.0.2.15 and wait
 * (2 s) for the reply, skipping other frames: the smallest exchange that
 * proves a backend serves.  Return: 0, -ETIMEDOUT or another -errno.
 */
int vuhostile_arp_gateway(struct vufront *vf);

#endif /* MESHSLIRP_TESTS_VUHOSTILE_H */
