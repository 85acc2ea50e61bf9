#!/usr/bin/env bash
# fault_upstream.sh - the upstream service behind the sidecar killed (SIGKILL) in the middle of a
# real guest's steered transfer, once while the guest uploads and once while it downloads.
# Checks: the guest's connection ends within a bound (measured from the kill to the guest's
# marker), and how, from the guest's capture: the upload by a reset (alone or after a FIN; the
# guest's writer never reads, so nothing else stops it, and a connection left to a FIN would
# let the guest believe its data arrived), the download by a FIN after every byte the
# sidecar got; the flow table is empty again (metrics and list_flows) within a bound; a new flow
# to the restarted upstream carries 1 MiB with equal SHA-256; the counters match exactly.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

# An upload ends at once; a download ends after the data the upstream sent before dying, still
# in the socket buffers on the way, has reached the guest.
UP_BOUND_MS=${FAULT_UP_BOUND_MS:-1000}
DOWN_BOUND_MS=${FAULT_DOWN_BOUND_MS:-20000}
# Closed flows stay 10 s for late segments (BRIDGE_CLOSED_GRACE_US), plus the 1 s sweep: about
# 11 s; the rest is room for a loaded machine (once, 15 s were not enough for the last flow).
DRAIN_BOUND_S=60
METRICS=127.0.0.1:9090
CTL=$E2E_TMP/ctl.sock
SOCK=$E2E_TMP/net.sock

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
# The default --steer-stack (auto: the kernel path, as root); FAULT_STEER_STACK=slirp for
# libslirp's.  The counts below are of both.
e2e_start_meshslirp meshslirp --steer-stack "${FAULT_STEER_STACK:-auto}" --socket "$SOCK" --outbound-proxy 127.0.0.1:15001 \
	--exclude-outbound-port "$E2E_AGENT_PORT" --metrics "$METRICS" --control "$CTL"
e2e_build_guest "$E2E_TMP/guest" "$E2E_SRC/scenario-agent.sh"
e2e_agent_serve agent
E2E_GUEST_PCAP=1 e2e_boot_guest guest "$E2E_TMP/guest" "$SOCK" "ms.node=$NODE_IP"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-AGENT|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
	e2e_fail "guest agent did not start"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-AGENT' 1 || e2e_fail "guest failed before its agent"

# drained WHAT : the flow table must be empty within DRAIN_BOUND_S, by metrics and list_flows.
drained() {
	local answer
	e2e_wait_flows_empty "$NS_POD" "$METRICS" "$DRAIN_BOUND_S" ||
		e2e_fail "$1: flow table not empty after $DRAIN_BOUND_S s: $E2E_FLOW_STATE"
	e2e_no_redirected_flows "$CTL" || e2e_fail "$1: list_flows: $E2E_FLOWS_ANSWER"
	e2e_log "$1: flow table empty after ${E2E_ELAPSED_MS} ms (metrics and list_flows)"
}

# 1. Upload: the guest streams into the upstream through the sidecar; the upstream dies.
e2e_bg up "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --timeout 120
up_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/up.log" '^LISTENING' 10 || e2e_fail "upstream sink did not start"
e2e_agent stream up1 5001
e2e_wait_metric "$NS_POD" "$METRICS" 'meshslirp_bytes_total{direction="from_guest"}' 8388608 60 ||
	e2e_fail "the guest's upload did not get going (from_guest bytes: ${E2E_METRIC:-none})"
t0=$(e2e_now_ms)
e2e_kill9 "$up_pid"
e2e_wait_since "$t0" "$E2E_TMP/guest.log" 'GUEST-STREAM-END up1' 30 ||
	e2e_fail "upload: the guest's connection still runs 30 s after the upstream was killed"
up_ms=$E2E_ELAPSED_MS
up_how=$(e2e_pcap_close "$E2E_TMP/guest.pcap" "$NODE_IP:5001")
[ "$up_ms" -le "$UP_BOUND_MS" ] ||
	e2e_fail "upload: the guest saw its connection end $up_ms ms after the kill (bound $UP_BOUND_MS ms)"
case "$up_how" in
rst | fin+rst) ;;
*) e2e_fail "upload: the connection ended with '${up_how:-nothing}', want a reset" ;;
esac
e2e_log "upstream killed mid-upload: the guest's connection ended $up_ms ms later by" \
	"$up_how ($(e2e_field "$E2E_TMP/guest.log" 'GUEST-STREAM-END up1'))"
drained upload

# 2. Download: the upstream sends zeros to the guest through the sidecar; it dies.
e2e_bg down "$NS_NODE" socat -u OPEN:/dev/zero TCP4-LISTEN:5002,bind="$NODE_IP",reuseaddr
down_pid=$E2E_LAST_PID
# Under ASan, with both cores busy, a fixed 0.3 s sleep was once too short here: HAProxy's
# connect was refused and the guest's pull got an empty reply.
e2e_wait_listening "$NS_NODE" 5002 10 || e2e_fail "the download upstream did not start"
e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/before-down.txt"
base=$(e2e_metric "$E2E_TMP/before-down.txt" 'meshslirp_bytes_total{direction="to_guest"}')
e2e_agent pull dl1 5002
e2e_wait_metric "$NS_POD" "$METRICS" 'meshslirp_bytes_total{direction="to_guest"}' \
	$((base + 8388608)) 60 || e2e_fail "the guest's download did not get going"
t0=$(e2e_now_ms)
e2e_kill9 "$down_pid"
e2e_wait_since "$t0" "$E2E_TMP/guest.log" 'GUEST-PULL-END dl1' 30 ||
	e2e_fail "download: the guest's connection still runs 30 s after the upstream was killed"
down_ms=$E2E_ELAPSED_MS
down_how=$(e2e_pcap_close "$E2E_TMP/guest.pcap" "$NODE_IP:5002")
[ "$down_ms" -le "$DOWN_BOUND_MS" ] ||
	e2e_fail "download: the guest saw its connection end $down_ms ms after the kill (bound $DOWN_BOUND_MS ms)"
# The killed upstream closed with a FIN after its last byte; the guest must get every byte the
# sidecar got from it, then that FIN.
[ "$down_how" = fin ] || e2e_fail "download: the connection ended with '${down_how:-nothing}', want a FIN"
e2e_wait_for "$E2E_TMP/haproxy.log" "orig_dst=$NODE_IP:5002 bytes=0/[0-9]+" 10 ||
	e2e_fail "download: the sidecar did not log the flow"
sidecar=$(e2e_field "$E2E_TMP/haproxy.log" "HAPROXY-OUT .*orig_dst=$NODE_IP:5002 " | grep -o 'bytes=0/[0-9]*')
got=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-PULL-END dl1' | grep -o 'bytes=[0-9]*')
[ "${sidecar##*bytes=0/}" = "${got#bytes=}" ] ||
	e2e_fail "download: the sidecar got ${sidecar##*bytes=0/} bytes from the upstream, the guest $got"
e2e_log "upstream killed mid-download: the guest's connection ended $down_ms ms later by" \
	"$down_how after all ${got#bytes=} bytes the sidecar got" \
	"($(e2e_field "$E2E_TMP/guest.log" 'GUEST-PULL-END dl1'))"
drained download

# 3. The upstream restarted on the same port: a new flow carries 1 MiB intact.
e2e_bg up2 "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --bytes 1048576 --timeout 120
up2_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/up2.log" '^LISTENING' 10 || e2e_fail "restarted upstream did not start"
e2e_agent blob b1 5001
e2e_wait_exit "$up2_pid" 60 || e2e_fail "the transfer to the restarted upstream did not finish"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-BLOB-SENT b1 rc=0' 10 || e2e_fail "the guest's send failed"
want=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-BLOB b1 sha=' | sed 's/.*sha=//')
line=$(e2e_field "$E2E_TMP/up2.log" '^SINK ')
[ -n "$want" ] && [ "${line##*sha256=}" = "$want" ] || e2e_fail "digest: guest '$want', upstream '$line'"
e2e_log "restarted upstream: 1 MiB through the sidecar, sha256 equal at both ends"
drained "after the restart"

M=$E2E_TMP/flows-metrics.txt
for check in 'meshslirp_flows_refused_total{reason="table_full"} 0' \
	'meshslirp_flows_refused_total{reason="no_port"} 0'; do
	set -- $check
	[ "$(e2e_metric "$M" "$1")" = "$2" ] || e2e_fail "metric $1 = '$(e2e_metric "$M" "$1")', want $2"
done
[ "$(e2e_steered_total "$M")" = 3 ] || e2e_fail "steered flows $(e2e_steered_total "$M"), want 3"
[ "$(e2e_headers_total "$M")" = 3 ] || e2e_fail "PROXY headers $(e2e_headers_total "$M"), want 3"
[ "$(e2e_sidecar_failures_total "$M")" = 0 ] ||
	e2e_fail "sidecar connect failures $(e2e_sidecar_failures_total "$M"), want 0"
e2e_log "metrics: 3 steered flows, 3 PROXY headers, no connect failure, nothing refused"

e2e_agent_quit guest
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
