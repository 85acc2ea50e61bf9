#!/usr/bin/env bash
# fault_qemu_kill.sh - QEMU killed (SIGKILL) in the middle of a steered upload and restarted on
# the same socket, three times over.
# Checks, each cycle: the daemon stays up, logs the detach and shows no guest attached; it
# serves the new QEMU (lease, then 1 MiB through the sidecar with equal SHA-256); the dead
# guest's flow leaves the table.  Across the cycles: the daemon's descriptors and libslirp's
# sockets return to the same number, RSS stays within a bound, and the connection and flow
# counters match exactly.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

CYCLES=${FAULT_QEMU_CYCLES:-3}
# RSS growth allowed from the first settled state to the last (KiB).
RSS_BOUND_KB=${FAULT_RSS_BOUND_KB:-4096}
METRICS=127.0.0.1:9090
SOCK=$E2E_TMP/net.sock

# A dead guest's flows end when the sidecar gives up on them: short idle timeouts here.
e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[0]}" '  timeout client 5s' \
	"${E2E_HAPROXY_OUTBOUND_PROXY[@]:1}" '  timeout server 5s'
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
# The default --steer-stack (auto: the kernel path, as root).  FAULT_STEER_STACK=slirp for
# libslirp's path; the counts below are of both.
e2e_start_meshslirp meshslirp --steer-stack "${FAULT_STEER_STACK:-auto}" --socket "$SOCK" --outbound-proxy 127.0.0.1:15001 \
	--exclude-outbound-port "$E2E_AGENT_PORT" --metrics "$METRICS"
e2e_build_guest "$E2E_TMP/guest" "$E2E_SRC/scenario-agent.sh"

# boot NAME : a new QEMU on the daemon's socket, with the agent on a fresh channel.
boot() {
	e2e_agent_serve "$1-agent"
	e2e_boot_guest "$1" "$E2E_TMP/guest" "$SOCK" "ms.node=$NODE_IP"
	e2e_wait_for "$E2E_TMP/$1.log" 'GUEST-AGENT|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
		e2e_fail "$1: guest agent did not start"
	e2e_wait_for "$E2E_TMP/$1.log" 'GUEST-AGENT' 1 || e2e_fail "$1: guest failed before its agent"
	e2e_wait_for "$E2E_TMP/$1.log" 'GUEST-LEASE ip=10.0.2.15 ' 1 || e2e_fail "$1: unexpected lease"
}

# intact NAME PORT : 1 MiB from the guest through the sidecar to a sink on PORT, SHA-256 equal.
intact() {
	local pid want line
	e2e_bg "$1-sink" "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:$2" --bytes 1048576 --timeout 120
	pid=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/$1-sink.log" '^LISTENING' 10 || e2e_fail "$1: sink did not start"
	e2e_agent blob "$1" "$2"
	e2e_wait_exit "$pid" 60 || e2e_fail "$1: the 1 MiB transfer did not finish"
	e2e_wait_for "$E2E_TMP/$1.log" "GUEST-BLOB-SENT $1 rc=0" 10 || e2e_fail "$1: the guest's send failed"
	want=$(e2e_field "$E2E_TMP/$1.log" "GUEST-BLOB $1 sha=" | sed 's/.*sha=//')
	line=$(e2e_field "$E2E_TMP/$1-sink.log" '^SINK ')
	[ -n "$want" ] && [ "${line##*sha256=}" = "$want" ] || e2e_fail "$1: digest: guest '$want', sink '$line'"
}

# settle LABEL [FDS SOCKETS] : wait (60 s) for an empty flow table and, if given, for the daemon's
# descriptors and libslirp's sockets to be back to FDS and SOCKETS: a dead guest's connections
# close once the new guest answers libslirp's retransmissions with resets.  Sets SOCKETS, FDS,
# RSS and SETTLE_MS.
settle() {
	local t0 i
	t0=$(e2e_now_ms)
	e2e_wait_flows_empty "$NS_POD" "$METRICS" 60 || e2e_fail "$1: flows left after 60 s: $E2E_FLOW_STATE"
	for i in $(seq 1 120); do
		e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/settle.txt"
		SOCKETS=$(e2e_metric "$E2E_TMP/settle.txt" meshslirp_libslirp_sockets)
		FDS=$(e2e_fd_count "$MESHSLIRP_PID")
		[ -z "${2:-}" ] || { [ "$FDS" = "$2" ] && [ "$SOCKETS" = "$3" ]; } && break
		sleep 0.5
	done
	SETTLE_MS=$(($(e2e_now_ms) - t0))
	RSS=$(e2e_rss_kb "$MESHSLIRP_PID")
	e2e_log "$1: settled after $SETTLE_MS ms; libslirp sockets $SOCKETS, fds $FDS, RSS $RSS KiB"
}

boot g0
intact g0 5000
settle baseline
sockets0=$SOCKETS fds0=$FDS rss0=$RSS

for c in $(seq 1 "$CYCLES"); do
	prev=g$((c - 1))
	e2e_bg "up$c" "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:$((5100 + c))" --timeout 120
	e2e_wait_for "$E2E_TMP/up$c.log" '^LISTENING' 10 || e2e_fail "cycle $c: sink did not start"
	e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/m.txt"
	base=$(e2e_metric "$E2E_TMP/m.txt" 'meshslirp_bytes_total{direction="from_guest"}')
	e2e_agent stream "up$c" "$((5100 + c))"
	e2e_wait_metric "$NS_POD" "$METRICS" 'meshslirp_bytes_total{direction="from_guest"}' \
		$((base + 8388608)) 60 || e2e_fail "cycle $c: the upload did not get going"

	e2e_kill9 "$GUEST_PID"
	# This cycle's line, not the last cycle's: the daemon may still be reading what QEMU
	# left in the socket when the wait begins.
	[ "$(e2e_wait_count "$E2E_TMP/meshslirp.log" 'QEMU .* detached' "$c" 10)" = "$c" ] ||
		e2e_fail "cycle $c: the daemon did not log QEMU's disconnect"
	kill -0 "$MESHSLIRP_PID" 2>/dev/null || e2e_fail "cycle $c: the daemon died with QEMU"
	e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/m.txt"
	[ "$(e2e_metric "$E2E_TMP/m.txt" meshslirp_guest_attached)" = 0 ] ||
		e2e_fail "cycle $c: metrics still show a guest attached"
	e2e_log "cycle $c: QEMU killed mid-upload; daemon up, detach logged, no guest attached"

	boot "g$c"
	intact "g$c" $((5000 + c))
	e2e_log "cycle $c: new QEMU served: lease, 1 MiB intact through the sidecar"
	settle "cycle $c" "$fds0" "$sockets0"
	[ "$SOCKETS" = "$sockets0" ] ||
		e2e_fail "cycle $c: libslirp sockets $SOCKETS 60 s on, baseline $sockets0"
	[ "$FDS" = "$fds0" ] || e2e_fail "cycle $c: daemon descriptors $FDS 60 s on, baseline $fds0:" \
		"$(ls -l "/proc/$MESHSLIRP_PID/fd" | awk 'NR > 1 {print $NF}' | tr '\n' ' ')" \
		"$(ip netns exec "$NS_POD" ss -tanp | grep meshslirp | tr '\n' ';')"
done
if e2e_sanitized; then
	e2e_log "sanitizer build: RSS not judged (ASan keeps freed memory in quarantine)"
else
	[ $((RSS - rss0)) -le "$RSS_BOUND_KB" ] ||
		e2e_fail "RSS grew from $rss0 KiB to $RSS KiB over $CYCLES cycles (bound $RSS_BOUND_KB KiB)"
fi
e2e_log "$CYCLES kill/restart cycles: fds $fds0 -> $FDS, libslirp sockets $sockets0 -> $SOCKETS," \
	"RSS $rss0 -> $RSS KiB"

M=$E2E_TMP/flows-metrics.txt
for check in "meshslirp_qemu_connections_total{result=\"accepted\"} $((CYCLES + 1))" \
	'meshslirp_qemu_connections_total{result="refused"} 0' \
	'meshslirp_guest_attached 1'; do
	set -- $check
	[ "$(e2e_metric "$M" "$1")" = "$2" ] || e2e_fail "metric $1 = '$(e2e_metric "$M" "$1")', want $2"
done
[ "$(e2e_steered_total "$M")" = $((2 * CYCLES + 1)) ] ||
	e2e_fail "steered flows $(e2e_steered_total "$M"), want $((2 * CYCLES + 1))"
[ "$(e2e_headers_total "$M")" = $((2 * CYCLES + 1)) ] ||
	e2e_fail "PROXY headers $(e2e_headers_total "$M"), want $((2 * CYCLES + 1))"
[ "$(e2e_sidecar_failures_total "$M")" = 0 ] ||
	e2e_fail "sidecar connect failures $(e2e_sidecar_failures_total "$M"), want 0"
e2e_log "metrics: $((CYCLES + 1)) QEMU connections, $((2 * CYCLES + 1)) steered flows and headers;" \
	"frames dropped for want of a guest: $(e2e_metric "$M" 'meshslirp_drops_total{reason="no_guest"}')"

e2e_agent_quit "g$CYCLES"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
