#!/usr/bin/env bash
# hostile_kstack.sh - a malicious guest against --steer-stack kernel: a SYN flood into the private
# stack, then garbage frames.  The daemon stays up, answers its metrics endpoint, keeps its
# descriptors and memory bounded, accounts for every SYN (a kernel-path flow, or left to libslirp
# when the kernel path has no slot, where it is a flow or a refusal), frees every slot at the
# connect timeout, and serves a new flow afterwards.
#
# The "guest" is tests/tools/hostile-guest on the stream socket (the kernel path takes any
# backend's frames); HAProxy is the sidecar.  Environment: HOSTILE_SYNS (default 30000),
# HOSTILE_FRAMES (default 50000), HOSTILE_MAX_FLOWS (default 2048).
source "$(dirname "$0")/lib.sh"
e2e_require_root
: "${HOSTILE:=$E2E_ROOT/build/tests/hostile-guest}"
SYNS=${HOSTILE_SYNS:-30000}
FRAMES=${HOSTILE_FRAMES:-50000}
MAX_FLOWS=${HOSTILE_MAX_FLOWS:-2048}
e2e_topology

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
e2e_bg echo "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:80" --timeout 600
e2e_wait_for "$E2E_TMP/echo.log" '^LISTENING' 10 || e2e_fail "echo did not start"

SOCK="$E2E_TMP/net.sock"
e2e_start_meshslirp meshslirp --socket "$SOCK" --outbound-proxy 127.0.0.1:15001 \
	--steer-stack kernel --max-flows "$MAX_FLOWS" --metrics 127.0.0.1:9090
fd0=$(e2e_fd_count "$MESHSLIRP_PID")
rss0=$(e2e_rss_kb "$MESHSLIRP_PID")
e2e_log "baseline: $fd0 fds, RSS $rss0 KiB"

hostile() { ip netns exec "$NS_POD" "$HOSTILE" --socket "$SOCK" "$@"; }
M="$E2E_TMP/metrics"
m() { e2e_metric "$M" "$1"; }
alive() { kill -0 "$MESHSLIRP_PID" 2>/dev/null || e2e_fail "meshslirp died ($1)"; }

# 1. The flood: SYNs never completed.  The private stack answers each (SYN cookies once its
#    queue is full); each takes a kernel-path slot until the connect timeout; past the table,
#    libslirp's path takes them, with its own bound.
e2e_bg flood "$NS_POD" "$HOSTILE" --socket "$SOCK" --mode flood --count "$SYNS" \
	--dst 198.18.0.200 --port 9 --timeout 300
flood_pid=$E2E_LAST_PID
peak_fd=0 peak_rss=0 worst_ms=0
for i in $(seq 1 600); do
	t0=$(date +%s%N)
	ip netns exec "$NS_POD" "$MSTOOL" http-get --connect 127.0.0.1:9090 --path /metrics \
		--timeout 60 >"$E2E_TMP/metrics-during" 2>&1 ||
		e2e_fail "no answer from /metrics within 60 s during the flood"
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ "$ms" -gt "$worst_ms" ] && worst_ms=$ms
	fd=$(e2e_fd_count "$MESHSLIRP_PID"); rss=$(e2e_rss_kb "$MESHSLIRP_PID")
	[ "$fd" -gt "$peak_fd" ] && peak_fd=$fd
	[ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
	kill -0 "$flood_pid" 2>/dev/null || break
	sleep 0.2
done
e2e_wait_exit "$flood_pid" 60 || e2e_fail "flood did not finish: $(cat "$E2E_TMP/flood.log")"
alive flood
for i in $(seq 1 300); do
	e2e_scrape "$NS_POD" 127.0.0.1:9090 "$M"
	[ "$(m 'meshslirp_frames_total{direction="from_guest"}')" -ge $((SYNS + 1)) ] && break
	sleep 1
done
kflows=$(m meshslirp_kernel_flows_total)
kfull=$(m 'meshslirp_kernel_flow_events_total{event="table_full"}')
[ $((kflows + kfull)) = "$SYNS" ] || e2e_fail "flood: $SYNS SYNs, $kflows kernel flows + $kfull left to libslirp"
[ "$kflows" -ge "$MAX_FLOWS" ] || e2e_fail "flood: only $kflows kernel flows, table of $MAX_FLOWS"
steered=$(m 'meshslirp_flows_total{direction="outbound_steered"}')
refused=$(( $(m 'meshslirp_flows_refused_total{reason="table_full"}') +
	$(m 'meshslirp_flows_refused_total{reason="no_port"}') ))
[ $((steered + refused)) = "$kfull" ] ||
	e2e_fail "flood: libslirp's path got $kfull SYNs but shows $steered flows + $refused refusals"
# Half-open kernel-path flows hold no descriptor; libslirp's hold one each.
[ "$peak_fd" -le $((fd0 + MAX_FLOWS + 200)) ] || e2e_fail "flood: $peak_fd descriptors"
[ "$worst_ms" -lt 30000 ] || e2e_fail "flood: a metrics scrape took $worst_ms ms"
e2e_log "FIGURE kernel_synflood syns=$SYNS kernel_flows=$kflows to_libslirp=$kfull" \
	"(flows $steered, refused $refused) peak_fds=$peak_fd peak_rss_kb=$peak_rss worst_scrape_ms=$worst_ms"

# 2. Every slot is freed at the connect timeout (10 s, plus the 1 s tick); a new flow is served.
for i in $(seq 1 120); do
	e2e_scrape "$NS_POD" 127.0.0.1:9090 "$M"
	[ "$(m meshslirp_kernel_flows_active)" = 0 ] && break
	sleep 1
done
[ "$(m meshslirp_kernel_flows_active)" = 0 ] ||
	e2e_fail "kernel-path flows still active 120 s after the flood: $(m meshslirp_kernel_flows_active)"
[ "$(m 'meshslirp_kernel_flow_events_total{event="timeout"}')" = "$kflows" ] ||
	e2e_fail "timeouts $(m 'meshslirp_kernel_flow_events_total{event="timeout"}'), kernel flows $kflows"
e2e_wait_flows_drained "$E2E_TMP/meshslirp.log" 90 ||
	e2e_fail "libslirp's flow table not drained after the flood: $E2E_FLOW_STATE"
# The slots of the flood are in their grace now; the probe needs one past it.
sleep 11
hostile --mode probe --dst "$NODE_IP" --port 80 --timeout 10 >"$E2E_TMP/probe.out" 2>&1 ||
	e2e_fail "no new flow after the flood: $(cat "$E2E_TMP/probe.out")"
e2e_scrape "$NS_POD" 127.0.0.1:9090 "$M"
[ "$(m meshslirp_kernel_flows_total)" = $((kflows + 1)) ] || e2e_fail "the probe did not take the kernel path"
e2e_log "after the flood: every slot timed out, the probe's SYN was answered by the private stack"

# 3. Garbage: every record well framed, its contents anything.  Accounted for as before, and
#    nothing of it reaches the private stack as a segment it would answer for someone else.
frames0=$(e2e_frames_accounted "$NS_POD" 127.0.0.1:9090 "$M")
hostile --mode garbage --count "$FRAMES" --seed 11 --timeout 300 >"$E2E_TMP/garbage.out" 2>&1 ||
	e2e_fail "garbage run failed: $(cat "$E2E_TMP/garbage.out")"
alive garbage
sent=$(e2e_field "$E2E_TMP/garbage.out" '^HOSTILE' | grep -o 'sent=[0-9]*' | cut -d= -f2)
seen=$(($(e2e_wait_frames_accounted "$NS_POD" 127.0.0.1:9090 "$M" $((frames0 + sent)) 30) - frames0))
[ "$seen" = "$sent" ] || e2e_fail "garbage: sent $sent frames, the daemon accounts for $seen"
fd1=$(e2e_fd_count "$MESHSLIRP_PID")
rss1=$(e2e_rss_kb "$MESHSLIRP_PID")
# The garbage's UDP datagrams open libslirp sockets that live 240 s, bounded by the table (as in
# hostile_guest.sh); the kernel path holds nothing for frames that are no flow of its own.
[ "$fd1" -le $((MAX_FLOWS + 256 + 200)) ] || e2e_fail "descriptors grew from $fd0 to $fd1"
# The garbage's plausible SYNs (sound ones, IP options and all) are flows like any; they end at
# the connect timeout.  Its SYNs with a bad checksum never take a slot: the bridge drops them.
gk=$(( $(m meshslirp_kernel_flows_total) - kflows - 1 ))
[ "$(m 'meshslirp_drops_total{reason="bad_checksum"}')" -gt 0 ] || e2e_fail "garbage: no bad checksum counted"
for i in $(seq 1 60); do
	e2e_scrape "$NS_POD" 127.0.0.1:9090 "$M"
	[ "$(m meshslirp_kernel_flows_active)" = 0 ] && break
	sleep 1
done
[ "$(m meshslirp_kernel_flows_active)" = 0 ] || e2e_fail "garbage: kernel-path flows still active after 60 s"
e2e_log "FIGURE kernel_garbage frames=$sent kernel_flows=$gk kernel_drops=$(grep '^meshslirp_kernel_drops_total' "$M" | awk '{printf "%s ", $2}')" \
	"fds=$fd0->$fd1 rss_kb=$rss0->$rss1"

kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "meshslirp did not exit on SIGTERM"
e2e_log "PASS"
