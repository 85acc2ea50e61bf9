#!/usr/bin/env bash
# churn.sh - 100,000 sequential short steered flows (a namespace as the guest on the tap backend,
# HAProxy as the sidecar, an echo server on the node), in chunks, with the daemon watched between.
# Checks: every flow echoes its bytes; nothing is refused, although the table holds far fewer
# than ten seconds' worth of closed flows (new flows reclaim their slots, and the counter says
# so); after every chunk no flow is left anything but closed (in its 10 s grace); at the end the
# table is empty, the descriptors are back to their number before, the steered-flow counter is
# exact, and RSS grew less than a bound overall and over the second half.  With --steer-stack
# auto, the default, the kernel path takes them, reclaiming its closed flows' slots within their
# 10 s grace as libslirp's path does; the counts are of both paths all the same.
# CHURN_FLOWS sets the number of flows (meson sets fewer for sanitizer builds), CHURN_CHUNK the
# flows between two looks at the daemon, CHURN_MAX_FLOWS the table's size.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

FLOWS=${CHURN_FLOWS:-100000}
CHUNK=${CHURN_CHUNK:-10000}
# RSS may grow with the peak number of flows in their close grace (the table's slots and hash
# indexes touched); past the first half it must stay flat.
RSS_BOUND_KB=${CHURN_RSS_BOUND_KB:-8192}
RSS_HALF_BOUND_KB=${CHURN_RSS_HALF_BOUND_KB:-2048}
# A closed flow stays in the table for 10 s (BRIDGE_CLOSED_GRACE_US) unless a full table needs
# its slot: with 1,024 slots, a few hundred flows a second already make every new flow reclaim
# the oldest closed one, so that path runs all along and must refuse nothing.
MAX_FLOWS=${CHURN_MAX_FLOWS:-1024}
METRICS=127.0.0.1:9090
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"

# The peers' own TCP, not the daemon's: every flow leaves a 60 s TIME_WAIT socket at the guest
# (it closes first) and at HAProxy towards the echo server.  Past ~28,000 of them connect()
# runs out of ports, or with tcp_tw_reuse slows down several times over while it searches, so
# these two namespaces keep none.  The guest then reuses a port every ~14,000 flows, while the
# daemon still holds the port's previous flow in its close grace: that path is exercised too.
for ns in "$NS_GUEST" "$NS_POD"; do
	ip netns exec "$ns" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
done

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
e2e_bg echo "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7001" --timeout 3600
e2e_wait_for "$E2E_TMP/echo.log" '^LISTENING' 10 || e2e_fail "echo did not start"
e2e_start_meshslirp meshslirp --tap tap0 --netns "/run/netns/$NS_GUEST" \
	--outbound-proxy 127.0.0.1:15001 --metrics "$METRICS" --max-flows "$MAX_FLOWS"
ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
ip -n "$NS_GUEST" route add default via 10.0.2.2

# A few flows first, so that what is allocated once is allocated before the baseline.
ip netns exec "$NS_GUEST" "$MSTOOL" flows --connect "$NODE_IP:7001" --count 100 --bytes 64 \
	>"$E2E_TMP/warmup.log" 2>&1 || e2e_fail "warm-up flows failed: $(cat "$E2E_TMP/warmup.log")"
e2e_wait_flows_empty "$NS_POD" "$METRICS" 30 || e2e_fail "warm-up flows left: $E2E_FLOW_STATE"
fd0=$(e2e_fd_count "$MESHSLIRP_PID")
rss0=$(e2e_rss_kb "$MESHSLIRP_PID")
steered0=$(e2e_steered_total "$E2E_TMP/flows-metrics.txt")
e2e_log "before: fds $fd0, RSS $rss0 KiB; $FLOWS flows to go in chunks of $CHUNK"

# only_closed FILE : true if every flow in that scrape is closed.
only_closed() {
	case "$(e2e_flow_states "$1")" in
	"syn=0 connecting=0 open=0 closed="*" header_wait=0 rejected=0" | \
		"syn=0 connecting=0 open=0 closed="*" header_wait=0 rejected=0 kernel_active=0") return 0 ;;
	esac
	return 1
}

t0=$(e2e_now_ms)
done_n=0
rss_half=
while [ "$done_n" -lt "$FLOWS" ]; do
	n=$((FLOWS - done_n < CHUNK ? FLOWS - done_n : CHUNK))
	ip netns exec "$NS_GUEST" "$MSTOOL" flows --connect "$NODE_IP:7001" --count "$n" --parallel 1 \
		--bytes 64 --timeout 600 >"$E2E_TMP/chunk.log" 2>&1 ||
		e2e_fail "after $done_n flows, a chunk of $n failed: $(cat "$E2E_TMP/chunk.log")"
	done_n=$((done_n + n))
	e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/chunk-metrics.txt"
	M=$E2E_TMP/chunk-metrics.txt
	rss=$(e2e_rss_kb "$MESHSLIRP_PID")
	e2e_log "$done_n flows, $((($(e2e_now_ms) - t0) / 1000)) s: $(e2e_field "$E2E_TMP/chunk.log" '^FLOWS');" \
		"fds $(e2e_fd_count "$MESHSLIRP_PID"), RSS $rss KiB; $(e2e_flow_states "$M")"
	[ -z "$rss_half" ] && [ $((2 * done_n)) -ge "$FLOWS" ] && rss_half=$rss
	for reason in table_full no_port; do
		v=$(e2e_metric "$M" "meshslirp_flows_refused_total{reason=\"$reason\"}")
		[ "$v" = 0 ] || e2e_fail "after $done_n flows, $v flows were refused ($reason)"
	done
	# Each flow ended before the next began: within 5 s all must be closed (in their grace).
	for i in $(seq 1 10); do
		only_closed "$M" && break
		sleep 0.5
		e2e_scrape "$NS_POD" "$METRICS" "$M"
	done
	only_closed "$M" || e2e_fail "after $done_n flows, not all closed 5 s on: $(e2e_flow_states "$M")"
done
secs=$((($(e2e_now_ms) - t0) / 1000))

e2e_wait_flows_empty "$NS_POD" "$METRICS" 40 || e2e_fail "flows left 40 s after the last: $E2E_FLOW_STATE"
fd1=$(e2e_fd_count "$MESHSLIRP_PID")
rss1=$(e2e_rss_kb "$MESHSLIRP_PID")
steered=$(e2e_steered_total "$E2E_TMP/flows-metrics.txt")
[ "$((steered - steered0))" = "$FLOWS" ] || e2e_fail "counted $((steered - steered0)) steered flows, ran $FLOWS"
# The table filled, and closed flows' slots were reclaimed: libslirp's, or the kernel path's.
reclaimed=$(e2e_metric_sum "$E2E_TMP/flows-metrics.txt" meshslirp_flows_reclaimed_total \
	'meshslirp_kernel_flow_events_total{event="reclaimed"}')
[ "$reclaimed" -gt 0 ] || e2e_fail "no closed flow's slot was reclaimed: the table never filled?"
kfull=$(e2e_metric "$E2E_TMP/flows-metrics.txt" 'meshslirp_kernel_flow_events_total{event="table_full"}')
[ "$fd1" -le "$fd0" ] || e2e_fail "descriptors grew from $fd0 to $fd1"
if e2e_sanitized; then
	e2e_log "sanitizer build: RSS not judged (ASan keeps freed memory in quarantine);" \
		"LeakSanitizer checks the daemon at exit"
else
	[ $((rss1 - rss0)) -lt "$RSS_BOUND_KB" ] ||
		e2e_fail "RSS grew from $rss0 KiB to $rss1 KiB (bound $RSS_BOUND_KB KiB)"
	[ $((rss1 - rss_half)) -lt "$RSS_HALF_BOUND_KB" ] ||
		e2e_fail "RSS grew from $rss_half KiB halfway to $rss1 KiB (bound $RSS_HALF_BOUND_KB KiB)"
fi
e2e_log "$FLOWS sequential flows in $secs s through a table of $MAX_FLOWS ($reclaimed closed" \
	"flows' slots reclaimed; ${kfull:-no} SYNs left to libslirp by the kernel path);" \
	"table empty $E2E_ELAPSED_MS ms after the last;" \
	"fds $fd0 -> $fd1, RSS $rss0 -> $rss_half (halfway) -> $rss1 KiB"

kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 30 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
