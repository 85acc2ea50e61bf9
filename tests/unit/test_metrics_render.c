/* test_metrics_render.c - unit tests of the Prometheus exposition rendered from a made-up snapshot. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "daemon/metrics_render.h"

/* A snapshot whose every counter of interest has a distinct, recognisable value. */
struct mr_fixture {
	struct backend_stats bs;
	struct netstack_stats ns;
	struct bridge_stats br;
	struct daemon_offload_stats off;
	struct ksteer_stats ks;
	struct metrics_snapshot s;
};

static void mr_fill(struct mr_fixture *m)
{
	memset(m, 0, sizeof(*m));
	m->bs.rx_frames = 11;
	m->bs.tx_bytes = 4242;
	m->bs.rx_runts = 3;
	m->bs.attached = 1;
	m->ns.guest_errors = 7;
	m->ns.tx_fragments = 19;
	m->br.flows_steered = 101;
	m->br.flows_direct = 103;
	m->br.refused[BRIDGE_REFUSED_TABLE_FULL] = 5;
	m->br.egress_refused[EGRESS_LOOPBACK] = 9;
	m->br.guest_dropped[BRIDGE_DROP_FRAGMENT] = 13;
	m->br.inbound_headers[2] = 17;
	m->br.header_errors[PROXY_ERR_COUNT - 1] = 23;
	m->off.tx_gso = 29;
	m->bs.tx_unsent_bytes = 61;
	m->bs.vu_calls[1] = 67;
	m->bs.vu_call_used_idx[1] = 65535;
	m->s = (struct metrics_snapshot){
		.backend = &m->bs, .netstack = &m->ns, .bridge = &m->br, .offload = &m->off,
		.udp_flows = 31, .flows_reclaimed = 37, .reass_held = 39, .log_dropped = 73,
		.libslirp_sockets = 41, .pod_addresses = 43,
	};
	m->s.flows[FLOW_OPEN] = 47;
	m->s.flows[FLOW_HDR_WAIT] = 53;
	m->s.direct_tcp_flows[FLOW_CONNECTING] = 59;
}

/* @text has @line as a whole line. */
static void mr_assert_line(const char *text, const char *line)
{
	g_autofree char *needle = g_strdup_printf("\n%s\n", line);
	g_autofree char *hay = g_strdup_printf("\n%s", text);

	if (!strstr(hay, needle))
		fail_msg("missing line: %s", line);
}

static void test_known_snapshot_lines(void **state)
{
	struct mr_fixture m;
	g_autoptr(GString) out = g_string_new(NULL);
	g_autofree char *hdr_err = NULL;

	(void)state;
	mr_fill(&m);
	metrics_render(out, &m.s);
	mr_assert_line(out->str, "# HELP meshslirp_info Build information.");
	mr_assert_line(out->str, "# TYPE meshslirp_info gauge");
	mr_assert_line(out->str, "meshslirp_info{version=\"" MESHSLIRP_VERSION "\"} 1");
	mr_assert_line(out->str, "# TYPE meshslirp_frames_total counter");
	mr_assert_line(out->str, "meshslirp_frames_total{direction=\"from_guest\"} 11");
	mr_assert_line(out->str, "meshslirp_bytes_total{direction=\"to_guest\"} 4242");
	mr_assert_line(out->str, "meshslirp_drops_total{reason=\"runt\"} 3");
	mr_assert_line(out->str, "meshslirp_drops_total{reason=\"fragment\"} 13");
	mr_assert_line(out->str, "meshslirp_unsent_bytes_total 61");
	mr_assert_line(out->str, "meshslirp_guest_attached 1");
	mr_assert_line(out->str, "meshslirp_libslirp_sockets 41");
	mr_assert_line(out->str, "meshslirp_guest_link_total{what=\"fragments\"} 19");
	mr_assert_line(out->str, "meshslirp_offload_total{direction=\"to_guest\",what=\"gso\"} 29");
	mr_assert_line(out->str, "meshslirp_guest_errors_total 7");
	mr_assert_line(out->str, "meshslirp_vhost_user_calls_total{ring=\"tx\"} 67");
	mr_assert_line(out->str, "meshslirp_vhost_user_calls_total{ring=\"rx\"} 0");
	mr_assert_line(out->str, "# TYPE meshslirp_vhost_user_last_call_used_index gauge");
	mr_assert_line(out->str, "meshslirp_vhost_user_last_call_used_index{ring=\"tx\"} 65535");
	mr_assert_line(out->str, "# HELP meshslirp_flows Flows in the table (all kinds) by state.");
	mr_assert_line(out->str, "meshslirp_flows{state=\"open\"} 47");
	mr_assert_line(out->str, "meshslirp_flows{state=\"header_wait\"} 53");
	mr_assert_line(out->str, "meshslirp_flows{state=\"syn\"} 0");
	mr_assert_line(out->str, "meshslirp_direct_tcp_flows{state=\"connecting\"} 59");
	mr_assert_line(out->str, "meshslirp_udp_flows 31");
	mr_assert_line(out->str, "meshslirp_flows_total{direction=\"outbound_steered\"} 101");
	mr_assert_line(out->str, "meshslirp_flows_total{direction=\"outbound_direct\"} 103");
	mr_assert_line(out->str, "meshslirp_flows_refused_total{reason=\"loopback\"} 9");
	mr_assert_line(out->str, "meshslirp_flows_refused_total{reason=\"table_full\"} 5");
	mr_assert_line(out->str, "meshslirp_pod_addresses 43");
	mr_assert_line(out->str, "meshslirp_flows_reclaimed_total 37");
	mr_assert_line(out->str, "meshslirp_tcp_reass_segments 39");
	mr_assert_line(out->str, "meshslirp_log_lines_dropped_total 73");
	mr_assert_line(out->str, "meshslirp_inbound_headers_total{version=\"2\"} 17");
	hdr_err = g_strdup_printf("meshslirp_proxy_header_errors_total{error=\"%s\"} 23",
				  proxy_error_str(PROXY_ERR_COUNT - 1));
	mr_assert_line(out->str, hdr_err);
	/* The text ends with a newline and nothing else. */
	assert_true(out->len > 0 && out->str[out->len - 1] == '\n');
	/* Without the kernel path, none of its families, and libslirp ends the guest's TCP. */
	assert_null(strstr(out->str, "meshslirp_kernel_"));
	mr_assert_line(out->str, "# TYPE meshslirp_steer_stack gauge");
	mr_assert_line(out->str, "meshslirp_steer_stack{stack=\"slirp\"} 1");
	assert_null(strstr(out->str, "stack=\"none\""));
}

/* The main loop's polling: the window in seconds, wake-ups by how they met their work; zeros without. */
static void test_busy_poll_lines(void **state)
{
	struct mr_fixture m;
	g_autoptr(GString) out = g_string_new(NULL);
	struct mainloop_stats loop = { .sleeps = 103, .caught = 107, .polled_us = 1500000,
				       .yielded = 109, .window_us = 80 };

	(void)state;
	mr_fill(&m);
	metrics_render(out, &m.s);
	mr_assert_line(out->str, "# TYPE meshslirp_busy_poll_window_seconds gauge");
	mr_assert_line(out->str, "meshslirp_busy_poll_window_seconds 0.000000");
	mr_assert_line(out->str, "meshslirp_loop_wakeups_total{result=\"caught\"} 0");
	mr_assert_line(out->str, "meshslirp_busy_poll_yielded_total 0");
	mr_assert_line(out->str, "meshslirp_busy_poll_current_window_seconds 0.000000");
	m.s.loop_stats = &loop;
	m.s.busy_poll_us = 250;
	g_string_truncate(out, 0);
	metrics_render(out, &m.s);
	mr_assert_line(out->str, "meshslirp_busy_poll_window_seconds 0.000250");
	mr_assert_line(out->str, "# TYPE meshslirp_busy_poll_current_window_seconds gauge");
	mr_assert_line(out->str, "meshslirp_busy_poll_current_window_seconds 0.000080");
	mr_assert_line(out->str, "# TYPE meshslirp_loop_wakeups_total counter");
	mr_assert_line(out->str, "meshslirp_loop_wakeups_total{result=\"slept\"} 103");
	mr_assert_line(out->str, "meshslirp_loop_wakeups_total{result=\"caught\"} 107");
	mr_assert_line(out->str, "# TYPE meshslirp_busy_poll_seconds_total counter");
	mr_assert_line(out->str, "meshslirp_busy_poll_seconds_total 1.500000");
	mr_assert_line(out->str, "# TYPE meshslirp_busy_poll_yielded_total counter");
	mr_assert_line(out->str, "meshslirp_busy_poll_yielded_total 109");
}

/* The metrics and control endpoints' own client tables: evictions and accept back-offs, by endpoint. */
static void test_admin_client_lines(void **state)
{
	struct mr_fixture m;
	g_autoptr(GString) out = g_string_new(NULL);

	(void)state;
	mr_fill(&m);
	m.s.metrics_clients = (struct client_slots_stats){ .evicted = 3, .backoffs = 5 };
	m.s.control_clients = (struct client_slots_stats){ .evicted = 7, .backoffs = 11 };
	metrics_render(out, &m.s);
	mr_assert_line(out->str, "# TYPE meshslirp_admin_clients_evicted_total counter");
	mr_assert_line(out->str, "meshslirp_admin_clients_evicted_total{endpoint=\"metrics\"} 3");
	mr_assert_line(out->str, "meshslirp_admin_clients_evicted_total{endpoint=\"control\"} 7");
	mr_assert_line(out->str, "# TYPE meshslirp_admin_accept_backoffs_total counter");
	mr_assert_line(out->str, "meshslirp_admin_accept_backoffs_total{endpoint=\"metrics\"} 5");
	mr_assert_line(out->str, "meshslirp_admin_accept_backoffs_total{endpoint=\"control\"} 11");
}

/* --sched: the mode in effect (auto shown as normal once it gave up), the policy now, switches by direction. */
static void test_sched_lines(void **state)
{
	struct mr_fixture m;
	g_autoptr(GString) out = g_string_new(NULL);
	struct schedmode sm = { .batch = true, .entered = 113, .left = 112, .failures = 0 };

	(void)state;
	mr_fill(&m);
	metrics_render(out, &m.s); /* no state: as a daemon that never switched */
	mr_assert_line(out->str, "# TYPE meshslirp_sched_mode gauge");
	mr_assert_line(out->str, "meshslirp_sched_mode{mode=\"auto\"} 1");
	mr_assert_line(out->str, "meshslirp_sched_batch 0");
	mr_assert_line(out->str, "meshslirp_sched_switches_total{to=\"batch\"} 0");
	m.s.sched = &sm;
	g_string_truncate(out, 0);
	metrics_render(out, &m.s);
	mr_assert_line(out->str, "# TYPE meshslirp_sched_batch gauge");
	mr_assert_line(out->str, "meshslirp_sched_batch 1");
	mr_assert_line(out->str, "# TYPE meshslirp_sched_switches_total counter");
	mr_assert_line(out->str, "meshslirp_sched_switches_total{to=\"batch\"} 113");
	mr_assert_line(out->str, "meshslirp_sched_switches_total{to=\"normal\"} 112");
	mr_assert_line(out->str, "meshslirp_sched_switches_total{to=\"refused\"} 0");
	sm = (struct schedmode){ .failures = 1, .disabled = true };
	g_string_truncate(out, 0);
	metrics_render(out, &m.s);
	mr_assert_line(out->str, "meshslirp_sched_mode{mode=\"normal\"} 1");
	mr_assert_line(out->str, "meshslirp_sched_switches_total{to=\"refused\"} 1");
	m.s.sched_policy = SCHEDMODE_BATCH;
	g_string_truncate(out, 0);
	metrics_render(out, &m.s);
	mr_assert_line(out->str, "meshslirp_sched_mode{mode=\"batch\"} 1");
}

/* The kernel path: its families, each event and drop reason under its own label. */
static void test_kernel_path_lines(void **state)
{
	struct mr_fixture m;
	g_autoptr(GString) out = g_string_new(NULL);
	g_autofree char *drop = NULL;

	(void)state;
	mr_fill(&m);
	m.ks.flows = 61;
	m.ks.opened = 67;
	m.ks.table_full = 71;
	m.ks.reclaimed = 101;
	m.ks.idle_resets = 73;
	m.ks.bytes_out = 79;
	m.ks.urgent_marks = 83;
	m.ks.sparse_copied = 84;
	m.ks.frames_to_guest = 83;
	m.ks.direct.flows = 107;
	m.ks.direct.dial_full = 109;
	m.ks.direct.refused = 113;
	m.s.kernel_active_direct = 127;
	m.ks.dropped[KSTEER_DROP_BAD_META] = 89;
	m.s.kernel = &m.ks;
	m.s.kernel_active = 97;
	metrics_render(out, &m.s);
	mr_assert_line(out->str, "meshslirp_steer_stack{stack=\"kernel\"} 1");
	mr_assert_line(out->str, "# TYPE meshslirp_kernel_flows_total counter");
	mr_assert_line(out->str, "meshslirp_kernel_flows_total 61");
	mr_assert_line(out->str, "# TYPE meshslirp_kernel_flows_active gauge");
	mr_assert_line(out->str, "meshslirp_kernel_flows_active 97");
	mr_assert_line(out->str, "meshslirp_kernel_flow_events_total{event=\"opened\"} 67");
	mr_assert_line(out->str, "meshslirp_kernel_flow_events_total{event=\"table_full\"} 71");
	mr_assert_line(out->str, "meshslirp_kernel_flow_events_total{event=\"reclaimed\"} 101");
	mr_assert_line(out->str, "meshslirp_kernel_flow_events_total{event=\"idle\"} 73");
	mr_assert_line(out->str, "meshslirp_kernel_flow_events_total{event=\"closed\"} 0");
	mr_assert_line(out->str, "meshslirp_kernel_bytes_total{direction=\"to_sidecar\"} 79");
	mr_assert_line(out->str, "meshslirp_kernel_urgent_marks_total 83");
	mr_assert_line(out->str, "meshslirp_kernel_sparse_copied_total 84");
	mr_assert_line(out->str, "meshslirp_kernel_frames_total{direction=\"to_guest\"} 83");
	mr_assert_line(out->str, "meshslirp_kernel_direct_flows_total 107");
	mr_assert_line(out->str, "meshslirp_kernel_direct_flows_active 127");
	mr_assert_line(out->str, "meshslirp_kernel_direct_flow_events_total{event=\"dial_full\"} 109");
	mr_assert_line(out->str, "meshslirp_kernel_direct_flow_events_total{event=\"refused\"} 113");
	mr_assert_line(out->str, "meshslirp_kernel_direct_flow_events_total{event=\"closed\"} 0");
	drop = g_strdup_printf("meshslirp_kernel_drops_total{reason=\"%s\"} 89",
			       ksteer_drop_str(KSTEER_DROP_BAD_META));
	mr_assert_line(out->str, drop);
}

/* Every family's HELP line comes with its TYPE line, and every sample follows its family's head. */
static void test_every_family_has_help_and_type(void **state)
{
	struct mr_fixture m;
	g_autoptr(GString) out = g_string_new(NULL);
	g_auto(GStrv) lines = NULL;
	const char *family = NULL;
	size_t families = 0;

	(void)state;
	mr_fill(&m);
	metrics_render(out, &m.s);
	lines = g_strsplit(out->str, "\n", -1);
	for (size_t i = 0; lines[i] && *lines[i]; i++) {
		if (g_str_has_prefix(lines[i], "# HELP ")) {
			g_autofree char *want = NULL;
			const char *name = lines[i] + 7;
			size_t n = strcspn(name, " ");

			assert_non_null(lines[i + 1]);
			want = g_strdup_printf("# TYPE %.*s ", (int)n, name);
			assert_true(g_str_has_prefix(lines[i + 1], want));
			family = name;
			families++;
			i++;
			continue;
		}
		assert_non_null(family);
		assert_true(!strncmp(lines[i], family, strcspn(family, " ")));
	}
	assert_true(families > 30);
}

/* The same snapshot renders to the same bytes, and appending keeps what was there. */
static void test_render_is_deterministic_and_appends(void **state)
{
	struct mr_fixture m;
	g_autoptr(GString) a = g_string_new(NULL);
	g_autoptr(GString) b = g_string_new("prefix\n");

	(void)state;
	mr_fill(&m);
	metrics_render(a, &m.s);
	metrics_render(b, &m.s);
	assert_string_equal(b->str + strlen("prefix\n"), a->str);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_snapshot_lines),
		cmocka_unit_test(test_kernel_path_lines),
		cmocka_unit_test(test_busy_poll_lines),
		cmocka_unit_test(test_sched_lines),
		cmocka_unit_test(test_admin_client_lines),
		cmocka_unit_test(test_every_family_has_help_and_type),
		cmocka_unit_test(test_render_is_deterministic_and_appends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
