/* daemon.h - wiring of backend, netstack and exposed ports, shared by main and tests. */
#ifndef MESHSLIRP_DAEMON_DAEMON_H
#define MESHSLIRP_DAEMON_DAEMON_H

/*
 *   backend rx_frame ──► netstack_input ──► libslirp
 *   libslirp send_packet ──► netstack tx_frame ──► backend_send
 *   backend set_congested ──► netstack_set_throttle
 *   netstack hooks ──► proxy-bridge (steering, DNS upstream, refusals)
 *   backend rx_frame ──► ksteer (--steer-stack kernel: steered TCP, before all else)
 *   ksteer ──► backend_send
 *
 * daemon_start() builds everything on the default GLib main context from a
 * validated config; the caller runs the loop (main) or iterates it (tests)
 * and calls daemon_stop(), which frees in reverse order.  The config is
 * borrowed and must outlive the daemon.
 */

#include "backend/backend.h"
#include "common/mainloop.h"
#include "daemon/options.h"
#include "netstack/netstack.h"
#include "proxy-bridge/bridge.h"
#include "proxy-bridge/ksteer.h"
#include "daemon/control.h"
#include "daemon/metrics.h"
#include "daemon/metrics_render.h"
#include "daemon/podaddrs.h"

struct daemon {
	const struct ms_config *cfg;
	struct netstack *ns;
	struct bridge *br;
	struct backend *be;
	/* daemon_backend_cb fitted to the paths in use; the backend keeps a pointer to it */
	struct backend_callbacks be_cb;
	struct metrics_server *metrics;
	struct control_server *control;
	struct podaddrs *pod;      /* the pod's own addresses, kept current */
	struct unixexpose *ux;     /* --expose unix:...; NULL without */
	struct ksteer *ks;         /* steered TCP in the kernel (--steer-stack); NULL: libslirp's */
	size_t max_flows;          /* each flow table's size: --max-flows within the fd limit */
	struct in_addr proxy_source; /* the PROXY header's source, both paths */
	struct daemon_offload_stats offload;
	struct mainloop_stats loop_stats; /* main.c's loop counts here (--busy-poll) */
	unsigned int busy_poll_us;        /* the polling window (its ceiling) in effect, set by
					   * main.c; 0: the loop does not poll */
	enum schedmode_policy sched_policy; /* --sched in effect (daemon_setup_sched()) */
	struct schedmode sched;           /* the data thread's policy, switched by --sched auto */
	guint sched_timer;                /* --sched auto's check while in SCHED_BATCH; 0: none */
	/* Set by the owner before daemon_start(): the backend ended for good (optional). */
	void (*on_fatal)(const char *why, void *opaque);
	void *on_fatal_opaque;
};

/**
 * daemon_start() - create the netstack, the exposed ports and the backend
 *
 * On failure prints one line naming the option that could not be honoured
 * and what went wrong, and leaves nothing behind.
 *
 * Return: 0 or -errno.
 */
int daemon_start(struct daemon *d, const struct ms_config *cfg);

/* daemon_stop() - free everything daemon_start() created; safe after failure. */
void daemon_stop(struct daemon *d);

/* daemon_render_metrics() - gather a metrics_snapshot and render it (metrics_render.h). */
void daemon_render_metrics(GString *out, void *opaque);

/* daemon_log_summary() - one log line of frame and connection counters. */
void daemon_log_summary(const struct daemon *d);

#endif /* MESHSLIRP_DAEMON_DAEMON_H */
