/* metrics_render.h - the Prometheus text exposition of meshslirp's counters, from a snapshot. */
#ifndef MESHSLIRP_DAEMON_METRICS_RENDER_H
#define MESHSLIRP_DAEMON_METRICS_RENDER_H

/*
 * Theory of operation
 *
 * The exposition format (metric names, HELP and TYPE lines, labels, order)
 * lives here and nowhere else.  The daemon gathers a struct
 * metrics_snapshot from its modules at scrape time and hands it to
 * metrics_render(); this module reads only the snapshot, so a unit test can
 * render a snapshot it made up and compare lines.  metrics.c serves the
 * text over HTTP and knows nothing of what it says.
 */

#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "backend/backend.h"
#include "common/clientslots.h"
#include "common/mainloop.h"
#include "common/schedmode.h"
#include "netstack/netstack.h"
#include "proxy-bridge/bridge.h"
#include "proxy-bridge/ksteer.h"

/* What the offloads did (backend/offload.h), counted by the daemon. */
struct daemon_offload_stats {
	uint64_t rx_csum_completed;  /* guest frames whose partial checksum we completed */
	uint64_t rx_gso;             /* guest TCP segments larger than its MTU, taken whole */
	uint64_t rx_refused;         /* guest frames whose headers contradicted their metadata */
	uint64_t mss_raised;         /* guest SYNs whose MSS was raised (it takes TSO4) */
	uint64_t mss_clamped;        /* libslirp SYNs to the guest whose MSS was lowered (its TSO) */
	uint64_t tx_gso;             /* segments sent to the guest whole, for it to take as GSO */
	uint64_t tx_csum_partial;    /* TCP segments sent with NEEDS_CSUM */
	uint64_t tx_data_valid;      /* other frames sent with DATA_VALID */
};

/*
 * Everything one scrape shows.  The pointers are borrowed for the duration
 * of metrics_render() only; every pointer must be non-NULL.
 */
struct unixexpose_stats;

struct metrics_snapshot {
	const struct backend_stats *backend;
	const struct netstack_stats *netstack;
	const struct bridge_stats *bridge;
	const struct daemon_offload_stats *offload;
	size_t flows[FLOW_STATE_COUNT];            /* flows in the table by state, all kinds */
	size_t direct_tcp_flows[FLOW_STATE_COUNT]; /* direct TCP flows by state */
	size_t udp_flows;                          /* UDP flows, any state */
	uint64_t flows_reclaimed;                  /* retired slots a new flow took */
	size_t reass_held;                         /* guest segments libslirp may hold out of order, all flows */
	uint64_t log_dropped;                      /* log lines stderr would have blocked on */
	size_t libslirp_sockets;                   /* host sockets libslirp polls now */
	size_t pod_addresses;                      /* the pod's own addresses (podaddrs) */
	const struct unixexpose_stats *unix_expose; /* --expose unix:...; NULL without */
	const struct ksteer_stats *kernel;          /* --steer-stack kernel; NULL without */
	size_t kernel_active;                       /* its flows not yet ended */
	size_t kernel_active_direct;                /* of them, direct flows */
	const struct mainloop_stats *loop_stats;    /* the main loop's polling (--busy-poll); NULL: none */
	unsigned int busy_poll_us;                  /* the polling window (auto: its ceiling) in
						     * effect; 0: the loop does not poll */
	const struct schedmode *sched;              /* the data thread's policy (--sched); NULL:
						     * never switched, SCHED_OTHER */
	enum schedmode_policy sched_policy;         /* --sched as in effect */
	struct client_slots_stats metrics_clients;  /* this endpoint's own client table */
	struct client_slots_stats control_clients;  /* --control's */
};

/**
 * metrics_render() - append the exposition text of @s to @out
 *
 * Pure: reads @s and the name tables of the modules it names, writes only
 * @out.  The output for a given snapshot never changes between calls.
 */
void metrics_render(GString *out, const struct metrics_snapshot *s);

#endif /* MESHSLIRP_DAEMON_METRICS_RENDER_H */
