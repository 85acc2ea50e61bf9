#!/usr/bin/env bash
# fault_sidecar.sh - the sidecar (HAProxy) killed in the middle of a real guest's steered upload.
# Checks: the guest's connection ends promptly (bounded, measured from the kill to the guest's
# marker) with a reset (alone or after a FIN), as its capture shows; a flow while the sidecar is down is
# refused (libslirp's path) or reset (the kernel path) fast and counted; once the sidecar is back,
# 1 MiB goes through with equal SHA-256; the flow table empties (metrics and list_flows) and the
# counters match the flows exactly.
# FAULT_STEER_STACK picks the stack that ends steered TCP: slirp (the default here, for
# libslirp's flows) or auto (the daemon's default: the kernel path, as root; meson's
# fault_sidecar_kstack).
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

# How long the guest may take to see its steered connection end once the sidecar is killed.
RESET_BOUND_MS=${FAULT_RESET_BOUND_MS:-1000}
METRICS=127.0.0.1:9090
CTL=$E2E_TMP/ctl.sock
SOCK=$E2E_TMP/net.sock

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
STACK=${FAULT_STEER_STACK:-slirp}
e2e_start_meshslirp meshslirp --steer-stack "$STACK" --socket "$SOCK" --outbound-proxy 127.0.0.1:15001 \
	--exclude-outbound-port "$E2E_AGENT_PORT" --metrics "$METRICS" --control "$CTL"
e2e_build_guest "$E2E_TMP/guest" "$E2E_SRC/scenario-agent.sh"

e2e_bg sink1 "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --timeout 120
sink1_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/sink1.log" '^LISTENING' 10 || e2e_fail "sink1 did not start"
e2e_agent_serve agent
E2E_GUEST_PCAP=1 e2e_boot_guest guest "$E2E_TMP/guest" "$SOCK" "ms.node=$NODE_IP"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-AGENT|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
	e2e_fail "guest agent did not start"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-AGENT' 1 || e2e_fail "guest failed before its agent"
e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics0.txt"
want_stack=$([ "$STACK" = slirp ] && echo slirp || echo kernel)
[ "$(e2e_metric "$E2E_TMP/metrics0.txt" "meshslirp_steer_stack{stack=\"$want_stack\"}")" = 1 ] ||
	e2e_fail "--steer-stack $STACK: the daemon does not steer through $want_stack's stack"

# 1. A steered upload in full flow (8 MiB from the guest already), then the sidecar is killed.
e2e_agent stream up1 5001
e2e_wait_metric "$NS_POD" "$METRICS" 'meshslirp_bytes_total{direction="from_guest"}' 8388608 60 ||
	e2e_fail "the guest's upload did not get going (from_guest bytes: ${E2E_METRIC:-none})"
t0=$(e2e_now_ms)
e2e_kill9 "$HAPROXY_PID"
e2e_wait_since "$t0" "$E2E_TMP/guest.log" 'GUEST-STREAM-END up1' 30 ||
	e2e_fail "the guest's steered connection still runs 30 s after the sidecar was killed"
reset_ms=$E2E_ELAPSED_MS
[ "$reset_ms" -le "$RESET_BOUND_MS" ] ||
	e2e_fail "the guest saw its connection end $reset_ms ms after the kill (bound $RESET_BOUND_MS ms)"
how=$(e2e_pcap_close "$E2E_TMP/guest.pcap" "$NODE_IP:5001")
case "$how" in
rst | fin+rst) ;;
*) e2e_fail "the guest's connection ended with '${how:-nothing}', want a reset" ;;
esac
e2e_wait_exit "$sink1_pid" 10 || e2e_fail "the upstream did not see its connection end"
e2e_log "sidecar killed mid-upload: the guest's upload ended $reset_ms ms later, by $how" \
	"($(e2e_field "$E2E_TMP/guest.log" 'GUEST-STREAM-END up1'));" \
	"the upstream got $(e2e_field "$E2E_TMP/sink1.log" '^SINK ' | grep -o 'bytes=[0-9]*')"

# 2. While the sidecar is down, a new steered flow ends at once and is counted.  libslirp's path
#    refuses the guest's SYN (the sidecar is connected first); on the kernel path the private
#    stack completes the guest's handshake, as masquerade's redirect does, and the connection
#    is reset as soon as the sidecar refuses.
e2e_agent try down1 5002
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-TRY down1' 20 || e2e_fail "no outcome for the flow without sidecar"
set -- $(e2e_field "$E2E_TMP/guest.log" 'GUEST-TRY down1')
down_ms=$(awk -v a="${4#t0=}" -v b="${5#t1=}" 'BEGIN { printf "%d", (b - a) * 1000 }')
[ "$down_ms" -lt 1000 ] || e2e_fail "the guest waited $down_ms ms for its flow to end without a sidecar"
if [ "$want_stack" = slirp ]; then
	[ "$3" != rc=0 ] || e2e_fail "a steered flow connected without a sidecar"
	e2e_log "sidecar down: a new flow was refused after $down_ms ms (guest clock)"
else
	how=$(e2e_pcap_close "$E2E_TMP/guest.pcap" "$NODE_IP:5002")
	case "$how" in
	rst | fin+rst) ;;
	*) e2e_fail "without a sidecar the guest's connection ended with '${how:-nothing}', want a reset" ;;
	esac
	e2e_log "sidecar down: a new flow was reset after $down_ms ms (guest clock, $3)"
fi

# 3. The sidecar is back: 1 MiB through it, intact, with its original destination.
e2e_start_haproxy haproxy2 "$NS_POD" "$E2E_TMP/haproxy.cfg"
e2e_bg sink2 "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5003" --bytes 1048576 --timeout 120
sink2_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/sink2.log" '^LISTENING' 10 || e2e_fail "sink2 did not start"
e2e_agent blob b1 5003
e2e_wait_exit "$sink2_pid" 60 || e2e_fail "the transfer after the sidecar restart did not finish"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-BLOB-SENT b1 rc=0' 10 || e2e_fail "the guest's send failed"
want=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-BLOB b1 sha=' | sed 's/.*sha=//')
line=$(e2e_field "$E2E_TMP/sink2.log" '^SINK ')
[ -n "$want" ] && [ "${line##*sha256=}" = "$want" ] || e2e_fail "digest: guest '$want', upstream '$line'"
e2e_wait_for "$E2E_TMP/haproxy2.log" "HAPROXY-OUT client=$POD_IP:[0-9]+ orig_dst=$NODE_IP:5003 bytes=1048576/" 5 ||
	e2e_fail "the restarted sidecar did not log the original destination"
e2e_log "sidecar restarted: 1 MiB through it, sha256 equal at both ends"

# 4. Nothing left behind; the counters tell exactly this story.
e2e_wait_flows_empty "$NS_POD" "$METRICS" 60 || e2e_fail "flow table not empty after 60 s: $E2E_FLOW_STATE"
e2e_log "flow table empty ${E2E_ELAPSED_MS} ms after the transfer: $E2E_FLOW_STATE"
e2e_no_redirected_flows "$CTL" || e2e_fail "list_flows: $E2E_FLOWS_ANSWER"
M=$E2E_TMP/flows-metrics.txt
# Both stacks' counters summed (lib.sh): all of it on the one --steer-stack picked.
[ "$(e2e_steered_total "$M")" = 3 ] || e2e_fail "steered flows: $(e2e_steered_total "$M"), want 3"
[ "$(e2e_headers_total "$M")" = 2 ] || e2e_fail "PROXY headers: $(e2e_headers_total "$M"), want 2"
[ "$(e2e_sidecar_failures_total "$M")" = 1 ] ||
	e2e_fail "sidecar connect failures: $(e2e_sidecar_failures_total "$M"), want 1"
if [ "$want_stack" = slirp ]; then
	stack_checks=('meshslirp_flows_total{direction="outbound_steered"} 3')
else
	stack_checks=('meshslirp_kernel_flows_total 3' 'meshslirp_kernel_flow_events_total{event="table_full"} 0')
fi
for check in "${stack_checks[@]}" \
	'meshslirp_flows_refused_total{reason="table_full"} 0' \
	'meshslirp_flows_refused_total{reason="no_port"} 0' \
	'meshslirp_qemu_connections_total{result="accepted"} 1' \
	'meshslirp_guest_attached 1'; do
	set -- $check
	[ "$(e2e_metric "$M" "$1")" = "$2" ] || e2e_fail "metric $1 = '$(e2e_metric "$M" "$1")', want $2"
done
e2e_log "metrics: 3 steered flows ($want_stack's stack), 2 PROXY headers, 1 sidecar connect failure," \
	"nothing refused"

e2e_agent_quit guest
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
