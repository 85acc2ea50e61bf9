/* metrics_render.c - the Prometheus text exposition of meshslirp's counters, from a snapshot. */

#include "metrics_render.h"

#include <stdio.h>

#include "proxy-bridge/egress.h"
#include "proxy-bridge/proxy_proto.h"
#include "proxy-bridge/unixexpose.h"

/* One metric family: HELP and TYPE lines, then its samples. */
static void metric_head(GString *o, const char *name, const char *type, const char *help)
{
	g_string_append_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(GString *o, const char *name, const char *labels, uint64_t v)
{
	g_string_append_printf(o, "%s%s%s%s %" G_GUINT64_FORMAT "\n", name, labels ? "{" : "",
			       labels ? labels : "", labels ? "}" : "", v);
}

/* The kernel path (--steer-stack): its flows by outcome, bytes, frames and drops (ksteer.h). */
static void metrics_render_kernel(GString *o, const struct ksteer_stats *k, size_t active,
				  size_t active_direct)
{
	static const char *const outcome[] = {
		"opened", "connect_failed", "header_failed", "timeout", "closed", "aborted",
		"no_resources", "stray_accept", "table_full", "idle", "reclaimed",
	};
	const uint64_t values[] = {
		k->opened, k->connect_failed, k->header_failed, k->timeouts, k->closed,
		k->aborted, k->resource_failed, k->stray_accepts, k->table_full, k->idle_resets,
		k->reclaimed,
	};
	char lbl[96];

	G_STATIC_ASSERT(G_N_ELEMENTS(outcome) == G_N_ELEMENTS(values));
	metric_head(o, "meshslirp_kernel_flows_total", "counter",
		    "Steered TCP flows the kernel's private stack terminated (the kernel path).");
	metric(o, "meshslirp_kernel_flows_total", NULL, k->flows);
	metric_head(o, "meshslirp_kernel_flows_active", "gauge",
		    "Kernel-path flows not yet ended, steered and direct.");
	metric(o, "meshslirp_kernel_flows_active", NULL, active);
	metric_head(o, "meshslirp_kernel_direct_flows_total", "counter",
		    "Direct TCP flows (not steered) the kernel path took: a connect() to their own "
		    "destination began, before the guest's handshake completes.");
	metric(o, "meshslirp_kernel_direct_flows_total", NULL, k->direct.flows);
	metric_head(o, "meshslirp_kernel_direct_flows_active", "gauge",
		    "Direct kernel-path flows not yet ended (counted in "
		    "meshslirp_kernel_flows_active too).");
	metric(o, "meshslirp_kernel_direct_flows_active", NULL, active_direct);
	metric_head(o, "meshslirp_kernel_direct_flow_events_total", "counter",
		    "Direct kernel-path flows by event: the destination connected, refused (the guest "
		    "reset), timed out; ended in order, by a reset, idle; SYNs left to libslirp "
		    "(dial_full: no slot or parking place, or a SYN too long to park; failed_at_once: "
		    "socket() or connect() failed in the call, which libslirp answers as it always "
		    "has).");
	{
		const struct ksteer_direct_stats *dk = &k->direct;
		const struct { const char *event; uint64_t v; } ev[] = {
			{ "connected", dk->connected }, { "refused", dk->refused },
			{ "timeout", dk->timeouts }, { "closed", dk->closed },
			{ "aborted", dk->aborted }, { "idle", dk->idle_resets },
			{ "dial_full", dk->dial_full }, { "failed_at_once", dk->failed_at_once },
		};

		for (size_t i = 0; i < G_N_ELEMENTS(ev); i++) {
			snprintf(lbl, sizeof(lbl), "event=\"%s\"", ev[i].event);
			metric(o, "meshslirp_kernel_direct_flow_events_total", lbl, ev[i].v);
		}
	}
	metric_head(o, "meshslirp_kernel_flow_events_total", "counter",
		    "Kernel-path flows by event: sidecar connected, failed, timed out, ended in order "
		    "or by a reset; steered SYNs left to libslirp, every slot in use (table_full); new "
		    "flows that took a closed flow's slot within its grace (reclaimed).");
	for (size_t i = 0; i < G_N_ELEMENTS(outcome); i++) {
		snprintf(lbl, sizeof(lbl), "event=\"%s\"", outcome[i]);
		metric(o, "meshslirp_kernel_flow_events_total", lbl, values[i]);
	}
	metric_head(o, "meshslirp_kernel_bytes_total", "counter",
		    "Bytes relayed between the private stack and the sidecar, or a direct flow's "
		    "destination (to_sidecar: from the guest).");
	metric(o, "meshslirp_kernel_bytes_total", "direction=\"to_sidecar\"", k->bytes_out);
	metric(o, "meshslirp_kernel_bytes_total", "direction=\"to_guest\"", k->bytes_in);
	metric_head(o, "meshslirp_kernel_urgent_marks_total", "counter",
		    "Urgent (out-of-band) bytes the kernel path's relay stepped over, either way: "
		    "the byte is left out of the stream, as a TCP proxy without SO_OOBINLINE leaves "
		    "it; the bytes around it are relayed.");
	metric(o, "meshslirp_kernel_urgent_marks_total", NULL, k->urgent_marks);
	metric_head(o, "meshslirp_kernel_sparse_copied_total", "counter",
		    "Relay directions the kernel path turned from splice() to copying: a pipe "
		    "filled with under 512 bytes a page reference while more waited, bytes a "
		    "send queue would have held a page each for (ksteer.h).");
	metric(o, "meshslirp_kernel_sparse_copied_total", NULL, k->sparse_copied);
	metric_head(o, "meshslirp_kernel_frames_total", "counter",
		    "Frames between the guest and the private stack.");
	metric(o, "meshslirp_kernel_frames_total", "direction=\"from_guest\"", k->frames_to_stack);
	metric(o, "meshslirp_kernel_frames_total", "direction=\"to_guest\"", k->frames_to_guest);
	metric_head(o, "meshslirp_kernel_drops_total", "counter",
		    "Kernel-path frames dropped, by reason.");
	for (int i = 0; i < KSTEER_DROP_COUNT; i++) {
		snprintf(lbl, sizeof(lbl), "reason=\"%s\"", ksteer_drop_str(i));
		metric(o, "meshslirp_kernel_drops_total", lbl, k->dropped[i]);
	}
}

void metrics_render(GString *o, const struct metrics_snapshot *s)
{
	const struct netstack_stats *ns = s->netstack;
	const struct backend_stats *bs = s->backend;
	const struct bridge_stats *br = s->bridge;
	static const struct { const char *name; enum flow_state st; } states[] = {
		{ "syn", FLOW_SYN }, { "connecting", FLOW_CONNECTING }, { "open", FLOW_OPEN },
		{ "closed", FLOW_CLOSED }, { "header_wait", FLOW_HDR_WAIT },
		{ "rejected", FLOW_REJECTED },
	};
	char lbl[96];

	metric_head(o, "meshslirp_info", "gauge", "Build information.");
	g_string_append_printf(o, "meshslirp_info{version=\"%s\"} 1\n", MESHSLIRP_VERSION);
	/* --steer-stack auto settles at start: say which it became. */
	metric_head(o, "meshslirp_steer_stack", "gauge",
		    "Which TCP ends the guest's TCP to other hosts, steered and direct: kernel (a "
		    "private namespace) or slirp (libslirp).");
	metric(o, "meshslirp_steer_stack", s->kernel ? "stack=\"kernel\"" : "stack=\"slirp\"", 1);

	static const struct mainloop_stats no_loop;
	const struct mainloop_stats *ml = s->loop_stats ? s->loop_stats : &no_loop;

	metric_head(o, "meshslirp_busy_poll_window_seconds", "gauge",
		    "How long the main loop keeps polling after its last event before it sleeps, "
		    "at most with --busy-poll auto (0: it does not poll).");
	g_string_append_printf(o, "meshslirp_busy_poll_window_seconds %.6f\n", s->busy_poll_us / 1e6);
	metric_head(o, "meshslirp_busy_poll_current_window_seconds", "gauge",
		    "The polling window now: with --busy-poll auto, where the recent waits moved it "
		    "(0 while events come further apart than the ceiling); else the fixed window.");
	g_string_append_printf(o, "meshslirp_busy_poll_current_window_seconds %.6f\n",
			       ml->window_us / 1e6);
	metric_head(o, "meshslirp_loop_wakeups_total", "counter",
		    "With --busy-poll: how the main loop met its work, woken from a sleep after a "
		    "polling window (slept) or while it polled (caught: a wake-up saved).");
	metric(o, "meshslirp_loop_wakeups_total", "result=\"slept\"", ml->sleeps);
	metric(o, "meshslirp_loop_wakeups_total", "result=\"caught\"", ml->caught);
	metric_head(o, "meshslirp_busy_poll_seconds_total", "counter",
		    "With --busy-poll: wall-clock time the main loop polled with nothing to do "
		    "(other threads' turns in its yields included).");
	g_string_append_printf(o, "meshslirp_busy_poll_seconds_total %.6f\n", ml->polled_us / 1e6);
	metric_head(o, "meshslirp_busy_poll_yielded_total", "counter",
		    "With --busy-poll: polling windows not begun because another task waited for a "
		    "CPU (--busy-poll-when idle); the main loop waited for work at once instead.");
	metric(o, "meshslirp_busy_poll_yielded_total", NULL, ml->yielded);

	static const struct schedmode no_sched;
	const struct schedmode *sm = s->sched ? s->sched : &no_sched;
	char mode[32];

	g_snprintf(mode, sizeof(mode), "mode=\"%s\"",
		   schedmode_policy_name(s->sched_policy == SCHEDMODE_AUTO && sm->disabled ?
					 SCHEDMODE_NORMAL : s->sched_policy));
	metric_head(o, "meshslirp_sched_mode", "gauge",
		    "--sched as in effect: auto only on the kernel path, in a daemon started under "
		    "plain SCHED_OTHER, and until the kernel refused a switch; normal otherwise.");
	metric(o, "meshslirp_sched_mode", mode, 1);
	metric_head(o, "meshslirp_sched_batch", "gauge",
		    "1 while the daemon has switched its data thread to SCHED_BATCH (--sched batch, or "
		    "auto while the guest's traffic runs at bulk rates), else 0 (a policy the daemon "
		    "was started under is not shown).");
	metric(o, "meshslirp_sched_batch", NULL, sm->batch);
	metric_head(o, "meshslirp_sched_switches_total", "counter",
		    "Switches of the data thread by --sched: to SCHED_BATCH (to=\"batch\"), back to "
		    "SCHED_OTHER (to=\"normal\"), and those the kernel refused (to=\"refused\", "
		    "after which the daemon switches no more).");
	metric(o, "meshslirp_sched_switches_total", "to=\"batch\"", sm->entered);
	metric(o, "meshslirp_sched_switches_total", "to=\"normal\"", sm->left);
	metric(o, "meshslirp_sched_switches_total", "to=\"refused\"", sm->failures);

	metric_head(o, "meshslirp_admin_clients_evicted_total", "counter",
		    "Clients of this endpoint (endpoint=\"metrics\") or of --control closed to make "
		    "room for a new client, every slot being busy: the one connected longest (metrics) "
		    "or idle longest (control).");
	metric(o, "meshslirp_admin_clients_evicted_total", "endpoint=\"metrics\"",
	       s->metrics_clients.evicted);
	metric(o, "meshslirp_admin_clients_evicted_total", "endpoint=\"control\"",
	       s->control_clients.evicted);
	metric_head(o, "meshslirp_admin_accept_backoffs_total", "counter",
		    "Times the metrics or control listener was left alone for a second because "
		    "accept() lacked descriptors or memory (the connection stays queued).");
	metric(o, "meshslirp_admin_accept_backoffs_total", "endpoint=\"metrics\"",
	       s->metrics_clients.backoffs);
	metric(o, "meshslirp_admin_accept_backoffs_total", "endpoint=\"control\"",
	       s->control_clients.backoffs);

	metric_head(o, "meshslirp_frames_total", "counter", "Ethernet frames through the backend.");
	metric(o, "meshslirp_frames_total", "direction=\"from_guest\"", bs->rx_frames);
	metric(o, "meshslirp_frames_total", "direction=\"to_guest\"", bs->tx_frames);
	metric_head(o, "meshslirp_bytes_total", "counter", "Frame bytes through the backend.");
	metric(o, "meshslirp_bytes_total", "direction=\"from_guest\"", bs->rx_bytes);
	metric(o, "meshslirp_bytes_total", "direction=\"to_guest\"", bs->tx_bytes);

	metric_head(o, "meshslirp_drops_total", "counter", "Frames dropped, by reason.");
	metric(o, "meshslirp_drops_total", "reason=\"runt\"", bs->rx_runts);
	metric(o, "meshslirp_drops_total", "reason=\"oversize\"", bs->rx_oversize);
	metric(o, "meshslirp_drops_total", "reason=\"bad_length_prefix\"", bs->rx_bad_prefix);
	metric(o, "meshslirp_drops_total", "reason=\"no_guest\"", bs->tx_no_peer);
	metric(o, "meshslirp_drops_total", "reason=\"queue_full\"", bs->tx_full);
	metric(o, "meshslirp_drops_total", "reason=\"write_error\"", bs->tx_errors);
	for (int i = 0; i < BRIDGE_DROP_COUNT; i++) {
		snprintf(lbl, sizeof(lbl), "reason=\"%s\"", bridge_guest_drop_str(i));
		metric(o, "meshslirp_drops_total", lbl, br->guest_dropped[i]);
	}

	metric(o, "meshslirp_drops_total", "reason=\"bad_offload_header\"", bs->rx_bad_meta);
	metric(o, "meshslirp_drops_total", "reason=\"over_guest_mtu\"", bs->tx_over_mtu);
	metric(o, "meshslirp_drops_total", "reason=\"rx_ring_unusable\"", bs->rx_ring_unusable);
	metric(o, "meshslirp_drops_total", "reason=\"ring_disabled\"", bs->vu_disabled_discards);
	metric_head(o, "meshslirp_unsent_bytes_total", "counter",
		    "Bytes queued for QEMU and dropped when it detached (stream backend).");
	metric(o, "meshslirp_unsent_bytes_total", NULL, bs->tx_unsent_bytes);
	metric_head(o, "meshslirp_offload_flags_ignored_total", "counter",
		    "Guest frames whose virtio-net header set flags a driver may not send (stripped, "
		    "the frame kept).");
	metric(o, "meshslirp_offload_flags_ignored_total", NULL, bs->rx_meta_ignored);

	metric_head(o, "meshslirp_backpressure_events_total", "counter",
		    "Backend backpressure, by kind: congestion (the stack was asked to stop), "
		    "rx_ring_full (vhost-user: the guest had no receive buffer, frames staged), "
		    "tx_drain_paused (vhost-user: the guest's transmit ring was left undrained).");
	metric(o, "meshslirp_backpressure_events_total", "kind=\"congestion\"", bs->congestion_events);
	metric(o, "meshslirp_backpressure_events_total", "kind=\"rx_ring_full\"",
	       bs->rx_ring_full_events);
	metric(o, "meshslirp_backpressure_events_total", "kind=\"tx_drain_paused\"",
	       bs->tx_drain_paused);
	metric_head(o, "meshslirp_vhost_user_messages_total", "counter",
		    "vhost-user messages from the front-end, by outcome (bad: a protocol violation "
		    "that closed the connection).");
	metric(o, "meshslirp_vhost_user_messages_total", "result=\"handled\"", bs->vu_messages);
	metric(o, "meshslirp_vhost_user_messages_total", "result=\"bad\"", bs->vu_bad_messages);
	metric_head(o, "meshslirp_vhost_user_rings_broken_total", "counter",
		    "Virtqueues put in the BROKEN state by a guest's rule violation (stopped until "
		    "the front-end resets them).");
	metric(o, "meshslirp_vhost_user_rings_broken_total", NULL, bs->ring_broken);
	metric_head(o, "meshslirp_vhost_user_rarp_total", "counter",
		    "SEND_RARP requests after a migration (acknowledged; there is no L2 network to announce on).");
	metric(o, "meshslirp_vhost_user_rarp_total", NULL, bs->vu_rarp);
	metric_head(o, "meshslirp_vhost_user_dirty_logged_total", "counter",
		    "Writes into guest memory marked in the dirty log while a live migration ran.");
	metric(o, "meshslirp_vhost_user_dirty_logged_total", NULL, bs->vu_dirty_logged);
	metric_head(o, "meshslirp_vhost_user_dirty_log_missed_total", "counter",
		    "Writes into guest memory the dirty log did not cover (the front-end's log is too "
		    "small: pages a migration may miss).");
	metric(o, "meshslirp_vhost_user_dirty_log_missed_total", NULL, bs->vu_dirty_log_missed);
	metric_head(o, "meshslirp_vhost_user_tail_frames_total", "counter",
		    "Guest frames the kernel path took with their payload left in guest memory, for "
		    "the kernel to read (its large segments: one copy fewer; its drops count there).");
	metric(o, "meshslirp_vhost_user_tail_frames_total", NULL, bs->vu_tx_tail_frames);
	metric_head(o, "meshslirp_vhost_user_calls_total", "counter",
		    "Interrupts requested from the front-end (call fd signalled), by ring: rx, the "
		    "guest's receive queue; tx, its transmit queue.");
	metric(o, "meshslirp_vhost_user_calls_total", "ring=\"rx\"", bs->vu_calls[0]);
	metric(o, "meshslirp_vhost_user_calls_total", "ring=\"tx\"", bs->vu_calls[1]);
	metric_head(o, "meshslirp_vhost_user_last_call_used_index", "gauge",
		    "The used index (mod 65536) published with the last interrupt requested on each "
		    "ring; set beside the guest's used_event, it tells whether an interrupt the guest "
		    "asked for was sent.");
	metric(o, "meshslirp_vhost_user_last_call_used_index", "ring=\"rx\"",
	       bs->vu_call_used_idx[0]);
	metric(o, "meshslirp_vhost_user_last_call_used_index", "ring=\"tx\"",
	       bs->vu_call_used_idx[1]);
	metric_head(o, "meshslirp_vhost_user_memory_faults_total", "counter",
		    "Front-ends closed because their guest memory shrank under the daemon (SIGBUS).");
	metric(o, "meshslirp_vhost_user_memory_faults_total", NULL, bs->vu_memory_faults);
	metric_head(o, "meshslirp_vhost_user_missed_kicks_total", "counter",
		    "Times the guest's TX chains waited a whole second with no kick and were taken "
		    "on the backend's tick instead.");
	metric(o, "meshslirp_vhost_user_missed_kicks_total", NULL, bs->vu_missed_kicks);
	metric_head(o, "meshslirp_vhost_user_eventfd_stalls_total", "counter",
		    "Front-ends closed because they held a read or write of one of their eventfds "
		    "blocked until the stall guard interrupted it.");
	metric(o, "meshslirp_vhost_user_eventfd_stalls_total", NULL, bs->vu_eventfd_stalls);
	metric_head(o, "meshslirp_vhost_user_unmap_failures_total", "counter",
		    "Guest memory or dirty log mappings munmap() refused (leaked address space).");
	metric(o, "meshslirp_vhost_user_unmap_failures_total", NULL, bs->vu_unmap_failures);

	metric_head(o, "meshslirp_qemu_connections_total", "counter", "QEMU connections, by outcome.");
	metric(o, "meshslirp_qemu_connections_total", "result=\"accepted\"", bs->peers_accepted);
	metric(o, "meshslirp_qemu_connections_total", "result=\"refused\"", bs->peers_refused);
	metric_head(o, "meshslirp_guest_attached", "gauge", "1 while a guest is attached.");
	metric(o, "meshslirp_guest_attached", NULL, bs->attached);
	metric_head(o, "meshslirp_libslirp_sockets", "gauge", "Host sockets libslirp polls.");
	metric(o, "meshslirp_libslirp_sockets", NULL, s->libslirp_sockets);
	metric_head(o, "meshslirp_guest_link_total", "counter",
		    "Frames fitted to the guest's link: datagrams over its MTU cut into fragments, the fragments, TCP segments over it cut for a guest without segmentation offload, the segments, frames dropped as too big (Don't Fragment), DHCP replies given the MTU.");
	metric(o, "meshslirp_guest_link_total", "what=\"datagrams_fragmented\"", ns->tx_fragmented);
	metric(o, "meshslirp_guest_link_total", "what=\"fragments\"", ns->tx_fragments);
	metric(o, "meshslirp_guest_link_total", "what=\"tcp_segmented\"", ns->tx_segmented);
	metric(o, "meshslirp_guest_link_total", "what=\"tcp_segments\"", ns->tx_segments);
	metric(o, "meshslirp_guest_link_total", "what=\"dropped_dont_fragment\"", ns->tx_too_big);
	metric(o, "meshslirp_guest_link_total", "what=\"dhcp_mtu_option\"", ns->dhcp_mtu);
	metric_head(o, "meshslirp_offload_total", "counter",
		    "Frames that used virtio-net offloads: from the guest, partial checksums completed, large TCP segments taken whole, frames refused for metadata their headers contradict, SYNs whose MSS was raised; to the guest, SYNs whose MSS was lowered for its TSO, large segments sent whole (GSO), TCP segments with a partial checksum, other frames marked valid.");
	metric(o, "meshslirp_offload_total", "direction=\"from_guest\",what=\"csum_completed\"",
	       s->offload->rx_csum_completed);
	metric(o, "meshslirp_offload_total", "direction=\"from_guest\",what=\"gso\"",
	       s->offload->rx_gso);
	metric(o, "meshslirp_offload_total", "direction=\"from_guest\",what=\"refused\"",
	       s->offload->rx_refused);
	metric(o, "meshslirp_offload_total", "direction=\"from_guest\",what=\"mss_raised\"",
	       s->offload->mss_raised);
	metric(o, "meshslirp_offload_total", "direction=\"to_guest\",what=\"mss_clamped\"",
	       s->offload->mss_clamped);
	metric(o, "meshslirp_offload_total", "direction=\"to_guest\",what=\"gso\"",
	       s->offload->tx_gso);
	metric(o, "meshslirp_offload_total", "direction=\"to_guest\",what=\"csum_partial\"",
	       s->offload->tx_csum_partial);
	metric(o, "meshslirp_offload_total", "direction=\"to_guest\",what=\"data_valid\"",
	       s->offload->tx_data_valid);
	metric_head(o, "meshslirp_guest_errors_total", "counter", "libslirp guest_error reports.");
	metric(o, "meshslirp_guest_errors_total", NULL, ns->guest_errors);

	metric_head(o, "meshslirp_flows", "gauge", "Flows in the table (all kinds) by state.");
	for (size_t i = 0; i < G_N_ELEMENTS(states); i++) {
		snprintf(lbl, sizeof(lbl), "state=\"%s\"", states[i].name);
		metric(o, "meshslirp_flows", lbl, s->flows[states[i].st]);
	}
	metric_head(o, "meshslirp_direct_tcp_flows", "gauge",
		    "TCP flows to their own destination (counted in meshslirp_flows too), by state.");
	for (size_t i = 0; i < G_N_ELEMENTS(states); i++) {
		snprintf(lbl, sizeof(lbl), "state=\"%s\"", states[i].name);
		metric(o, "meshslirp_direct_tcp_flows", lbl, s->direct_tcp_flows[states[i].st]);
	}
	metric_head(o, "meshslirp_udp_flows", "gauge",
		    "UDP flows in the table (counted in meshslirp_flows too; they live as long as libslirp's sockets).");
	metric(o, "meshslirp_udp_flows", NULL, s->udp_flows);
	metric_head(o, "meshslirp_flows_total", "counter", "Flows created, by direction.");
	metric(o, "meshslirp_flows_total", "direction=\"outbound_steered\"", br->flows_steered);
	metric(o, "meshslirp_flows_total", "direction=\"outbound_dns\"", br->flows_dns);
	metric(o, "meshslirp_flows_total", "direction=\"outbound_direct\"", br->flows_direct);
	metric(o, "meshslirp_flows_total", "direction=\"inbound\"", br->inbound_flows);
	metric_head(o, "meshslirp_flows_refused_total", "counter", "Guest flows refused, by reason.");
	for (int i = EGRESS_ALLOW + 1; i < EGRESS_VERDICT_COUNT; i++) {
		snprintf(lbl, sizeof(lbl), "reason=\"%s\"", egress_verdict_str(i));
		metric(o, "meshslirp_flows_refused_total", lbl, br->egress_refused[i]);
	}
	for (int i = 0; i < BRIDGE_REFUSAL_COUNT; i++) {
		snprintf(lbl, sizeof(lbl), "reason=\"%s\"", bridge_refusal_str(i));
		metric(o, "meshslirp_flows_refused_total", lbl, br->refused[i]);
	}
	metric_head(o, "meshslirp_pod_addresses", "gauge",
		    "Addresses of the pod's interfaces (and their broadcast addresses): refused to the guest, trusted for inbound PROXY headers by default.");
	metric(o, "meshslirp_pod_addresses", NULL, s->pod_addresses);
	metric_head(o, "meshslirp_sidecar_connect_failures_total", "counter",
		    "Steered or DNS flows whose upstream refused or failed.");
	metric(o, "meshslirp_sidecar_connect_failures_total", NULL, br->connect_failed);
	metric_head(o, "meshslirp_unix_legs_total", "counter",
		    "Sidecar legs on unix sockets (unixleg.h): outbound opened, outbound failed "
		    "(counted in sidecar_connect_failures too); inbound clients by outcome.");
	metric(o, "meshslirp_unix_legs_total", "direction=\"outbound\",result=\"open\"",
	       br->unix_legs);
	metric(o, "meshslirp_unix_legs_total", "direction=\"outbound\",result=\"failed\"",
	       br->unix_leg_failures);
	if (s->unix_expose) {
		const struct unixexpose_stats *u = s->unix_expose;
		static const char *const in_labels[] = {
			"accepted", "adopted", "overload", "relay_failed", "timeout",
			"stranger", "accept_error",
		};
		const uint64_t in_values[] = {
			u->accepted, u->adopted, u->overload, u->relay_failed, u->timeouts,
			u->strangers, u->accept_errors,
		};

		G_STATIC_ASSERT(G_N_ELEMENTS(in_labels) == G_N_ELEMENTS(in_values));
		for (size_t i = 0; i < G_N_ELEMENTS(in_labels); i++) {
			snprintf(lbl, sizeof(lbl), "direction=\"inbound\",result=\"%s\"",
				 in_labels[i]);
			metric(o, "meshslirp_unix_legs_total", lbl, in_values[i]);
		}
	}
	metric_head(o, "meshslirp_flow_timeouts_total", "counter",
		    "Flows ended by a timeout, by kind (connect and idle: both ends reset).");
	metric(o, "meshslirp_flow_timeouts_total", "kind=\"syn\"", br->syn_timeouts);
	metric(o, "meshslirp_flow_timeouts_total", "kind=\"connect\"", br->connect_timeouts);
	metric(o, "meshslirp_flow_timeouts_total", "kind=\"handshake\"", br->handshake_timeouts);
	metric(o, "meshslirp_flow_timeouts_total", "kind=\"tcp_idle\"", br->idle_resets);
	metric_head(o, "meshslirp_dhcp_address_pinned_total", "counter",
		    "Guest DHCP requests naming an address other than the guest's (option 50 or ciaddr), passed on naming none, so that only the guest's address is leased.");
	metric(o, "meshslirp_dhcp_address_pinned_total", NULL, br->dhcp_address_pinned);
	metric_head(o, "meshslirp_flows_reopened_total", "counter",
		    "Established flows whose guest sent a SYN on the same tuple (it forgot them, e.g. rebooted): old connection reset.");
	metric(o, "meshslirp_flows_reopened_total", NULL, br->stale_resets);
	metric_head(o, "meshslirp_window_probes_total", "counter",
		    "Flows whose closed receive window libslirp reopened, announced to the guest by a probe (libslirp sends no window update itself).");
	metric(o, "meshslirp_window_probes_total", NULL, br->window_probes);
	metric_head(o, "meshslirp_tcp_ack_probes_total", "counter",
		    "Bare ACKs sent to libslirp as from the guest to draw its acknowledgement, once 32 guest segments of a flow were past its last one.");
	metric(o, "meshslirp_tcp_ack_probes_total", NULL, br->ack_probes);
	metric_head(o, "meshslirp_flows_reclaimed_total", "counter",
		    "Closed flows whose slot a new flow took before their 10 s grace for late segments ended (the table was full).");
	metric(o, "meshslirp_flows_reclaimed_total", NULL, s->flows_reclaimed);
	metric_head(o, "meshslirp_proxy_headers_sent_total", "counter", "PROXY headers written to the sidecar.");
	metric(o, "meshslirp_proxy_headers_sent_total", NULL, br->headers_written);

	metric_head(o, "meshslirp_inbound_reopened_total", "counter",
		    "Inbound connections from the address and port of a closed one, served as new.");
	metric(o, "meshslirp_inbound_reopened_total", NULL, br->inbound_reopened);
	metric_head(o, "meshslirp_inbound_duplicates_total", "counter",
		    "Inbound connections libslirp could not tell from a live one (same tuple in its view): refused.");
	metric(o, "meshslirp_inbound_duplicates_total", NULL, br->inbound_duplicates);
	metric_head(o, "meshslirp_inbound_orphans_reset_total", "counter",
		    "Connections libslirp opened towards the guest with no flow (a client refused for a full table): their SYN kept from the guest, the connection reset in libslirp.");
	metric(o, "meshslirp_inbound_orphans_reset_total", NULL, br->orphans_reset);
	metric_head(o, "meshslirp_inbound_held_sockets", "gauge",
		    "Sockets of refused exposed-port clients and duplicates that libslirp still holds, until the guest's side lets them be reset; at 256, or the inbound limit if lower (--max-inbound-flows, by default half the flow table), libslirp accepts no client.");
	metric(o, "meshslirp_inbound_held_sockets", NULL, br->inbound_held);
	metric_head(o, "meshslirp_inbound_accept_holds_total", "counter",
		    "Times the exposed ports stopped accepting clients because the held sockets reached their bound; clients wait in the kernel's backlog.");
	metric(o, "meshslirp_inbound_accept_holds_total", NULL, ns->accept_holds);
	metric_head(o, "meshslirp_inbound_accept_failures_total", "counter",
		    "libslirp's accept() on an exposed port that found no descriptor free; each rests the exposed ports a second (clients wait in the backlog) instead of a retry on every turn of the loop.");
	metric(o, "meshslirp_inbound_accept_failures_total", "reason=\"out_of_descriptors\"", ns->accept_fd_failures);
	metric_head(o, "meshslirp_fragments_rewritten_total", "counter",
		    "Later fragments of datagrams to the guest rewritten like their first fragment.");
	metric(o, "meshslirp_fragments_rewritten_total", NULL, br->fragments_rewritten);
	metric_head(o, "meshslirp_tcp_urgent_cleared_total", "counter",
		    "TCP segments through libslirp whose URG flag was cleared, their urgent byte sent inline.");
	metric(o, "meshslirp_tcp_urgent_cleared_total", "direction=\"from_guest\"", br->urgent_from_guest);
	metric(o, "meshslirp_tcp_urgent_cleared_total", "direction=\"to_guest\"", br->urgent_to_guest);
	metric_head(o, "meshslirp_tcp_seq_wrap_resets_total", "counter",
		    "Flows reset because the guest's bytes reached sequence 0 while libslirp's side was closing (its FIN sent or its peer's shutdown seen), which libslirp 4.7 cannot take.");
	metric(o, "meshslirp_tcp_seq_wrap_resets_total", NULL, br->seq_wrap_aborts);
	metric_head(o, "meshslirp_tcp_reass_high_water", "gauge",
		    "The most guest TCP segments any flow had past libslirp's last ACK (which libslirp may hold out of order); at 64 the next is dropped as reass_limit.");
	metric(o, "meshslirp_tcp_reass_high_water", NULL, br->reass_high_water);
	metric_head(o, "meshslirp_log_lines_dropped_total", "counter",
		    "Log lines dropped because stderr would have blocked (its reader stopped reading); the daemon never waits for it.");
	metric(o, "meshslirp_log_lines_dropped_total", NULL, s->log_dropped);
	metric_head(o, "meshslirp_tcp_reass_segments", "gauge",
		    "Guest TCP segments past libslirp's last ACK now (which libslirp may hold out of order), over all flows; at --max-reass-segments the next is dropped as reass_total_limit.");
	metric(o, "meshslirp_tcp_reass_segments", NULL, s->reass_held);

	metric_head(o, "meshslirp_inbound_headers_total", "counter", "Valid inbound PROXY headers by version.");
	metric(o, "meshslirp_inbound_headers_total", "version=\"1\"", br->inbound_headers[1]);
	metric(o, "meshslirp_inbound_headers_total", "version=\"2\"", br->inbound_headers[2]);
	metric_head(o, "meshslirp_inbound_refused_total", "counter",
		    "Inbound connections closed before reaching the guest, by reason.");
	for (int i = 0; i < BRIDGE_IN_DROP_COUNT; i++) {
		snprintf(lbl, sizeof(lbl), "reason=\"%s\"", bridge_inbound_drop_str(i));
		metric(o, "meshslirp_inbound_refused_total", lbl, br->inbound_dropped[i]);
	}
	metric_head(o, "meshslirp_proxy_header_errors_total", "counter",
		    "Malformed inbound PROXY headers, by error.");
	for (int i = 1; i < PROXY_ERR_COUNT; i++) {
		snprintf(lbl, sizeof(lbl), "error=\"%s\"", proxy_error_str(i));
		metric(o, "meshslirp_proxy_header_errors_total", lbl, br->header_errors[i]);
	}
	if (s->kernel)
		metrics_render_kernel(o, s->kernel, s->kernel_active, s->kernel_active_direct);
}
