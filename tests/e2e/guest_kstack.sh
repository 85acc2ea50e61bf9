#!/usr/bin/env bash
# guest_kstack.sh - a real QEMU guest over vhost-user with the default --steer-stack (auto, which
# as root takes the kernel path): its steered TCP ends in the kernel's stack in the daemon's
# private namespace and is spliced into HAProxy as the sidecar.  Checks: the original
# destination in HAProxy's log, 1 MiB up and 4 MiB down with
# equal SHA-256 (the guest's offloads used both ways; its large segments written to the private
# stack from guest memory), 64 MiB up to a stopped sink held and then delivered whole, 50
# concurrent flows, the sidecar's port on the gateway still refused, the private namespace
# invisible in the pod, no sidecar: the guest's connection reset at once; the agent's channel
# (its port excluded from steering) a direct flow on the kernel path, to the node itself; the
# daemon under --seccomp throughout (but under valgrind); counters exact.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

SOCK=$E2E_TMP/vhost.sock
METRICS=127.0.0.1:9464
export E2E_GUEST_NETDEV=vhost-user

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
links_before=$(ip -n "$NS_POD" -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
# Under valgrind (memcheck-e2e) without --seccomp: valgrind cannot run a seccomp filter.
seccomp=(--seccomp)
[ -n "${E2E_MEMCHECK:-}" ] && seccomp=()
e2e_start_meshslirp meshslirp --vhost-user "$SOCK" --outbound-proxy 127.0.0.1:15001 \
	--exclude-outbound-port "$E2E_AGENT_PORT" --metrics "$METRICS" \
	"${seccomp[@]}"
grep -q "the guest's TCP ends in the kernel's stack .*spliced to the sidecar" "$E2E_TMP/meshslirp.log" ||
	e2e_fail "the daemon did not start the kernel path: $(tail -3 "$E2E_TMP/meshslirp.log")"
# The private stack is the daemon's alone: no device, address or route of it in the pod.
links_after=$(ip -n "$NS_POD" -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
[ "$links_before" = "$links_after" ] || e2e_fail "pod links changed: '$links_before' -> '$links_after'"
! ip -n "$NS_POD" -o addr | grep -q '10\.25[45]\.' || e2e_fail "a private address shows in the pod"

e2e_build_guest "$E2E_TMP/guest" "$E2E_SRC/scenario-agent.sh"
e2e_agent_serve agent
e2e_boot_guest guest "$E2E_TMP/guest" "$SOCK" "ms.node=$NODE_IP"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-AGENT|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
	e2e_fail "guest agent did not start"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-AGENT' 1 || e2e_fail "guest failed before its agent"

# 1. 1 MiB up: the sidecar names the original destination; the bytes arrive whole.
e2e_bg sink "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --bytes 1048576 --timeout 120
sink_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/sink.log" '^LISTENING' 10 || e2e_fail "sink did not start"
e2e_agent blob b1 5001
e2e_wait_exit "$sink_pid" 60 || e2e_fail "the upload did not finish"
want=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-BLOB b1 sha=' | sed 's/.*sha=//')
line=$(e2e_field "$E2E_TMP/sink.log" '^SINK ')
[ -n "$want" ] && [ "${line##*sha256=}" = "$want" ] || e2e_fail "upload digest: guest '$want', sink '$line'"
e2e_wait_for "$E2E_TMP/haproxy.log" "HAPROXY-OUT client=$POD_IP:[0-9]+ orig_dst=$NODE_IP:5001 bytes=1048576/" 5 ||
	e2e_fail "HAProxy did not log the original destination"
e2e_log "1 MiB up through the kernel path, sha256 equal; $(e2e_field "$E2E_TMP/haproxy.log" "orig_dst=$NODE_IP:5001")"

# 1b. Backpressure: the sink is stopped before the guest sends 64 MiB (more than every buffer
#     on the way holds). The bytes reaching the sidecar move, then stop once those buffers are
#     full, the guest is held, and when the sink reads again the rest follows, whole (the
#     daemon is woken to send its pipe's rest when its socket to the sidecar drains below the
#     unsent-bytes bound). Stopping the sink first, not in the middle of the upload, makes the
#     hold independent of how fast the guest sends: a stop timed from the guest's log line
#     could land before the upload started, or after it ended.
tosc() { e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics-held.txt" &&
	e2e_metric "$E2E_TMP/metrics-held.txt" 'meshslirp_kernel_bytes_total{direction="to_sidecar"}'; }
base=$(tosc)
[ -n "$base" ] || e2e_fail "no kernel-path byte counter in the metrics"
e2e_bg sink2 "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5006" --bytes 67108864 --timeout 240
sink2_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/sink2.log" '^LISTENING' 10 || e2e_fail "sink did not start"
# Stopped while listening: the kernel still accepts HAProxy's connection and fills its receive
# buffer; the sink reads nothing.
kill -STOP "$sink2_pid"
e2e_agent blob b2 5006 65536
# Moving: more than a window's worth reached the sidecar (90 s at most: the guest first makes
# and hashes its 64 MiB).
held=$base
for _ in $(seq 1 180); do
	[ $((held - base)) -ge 65536 ] && break
	sleep 0.5
	held=$(tosc)
done
[ $((held - base)) -ge 65536 ] ||
	{ kill -CONT "$sink2_pid"; e2e_fail "the upload did not start: $((held - base)) bytes to the sidecar"; }
# Settled: two scrapes a second apart agree (15 s at most).
prev=-1
for _ in $(seq 1 15); do
	[ "$held" = "$prev" ] && break
	sleep 1
	prev=$held held=$(tosc)
done
sent_early=$(grep -c 'GUEST-BLOB-SENT b2' "$E2E_TMP/guest.log" || true)
kill -CONT "$sink2_pid"
[ -n "$held" ] && [ "$held" = "$prev" ] ||
	e2e_fail "bytes to the sidecar kept moving with the sink stopped: $prev -> $held"
moved=$((held - base))
[ "$sent_early" = 0 ] || e2e_fail "the guest finished 64 MiB with the sink stopped: nothing held it"
e2e_wait_exit "$sink2_pid" 120 || e2e_fail "the upload did not finish after the sink read again"
want=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-BLOB b2 sha=' | sed 's/.*sha=//')
line=$(e2e_field "$E2E_TMP/sink2.log" '^SINK ')
[ -n "$want" ] && [ "${line##*sha256=}" = "$want" ] || e2e_fail "held upload digest: guest '$want', sink '$line'"
e2e_log "64 MiB up, the sink stopped: held after $moved bytes to the sidecar, then whole"

# 2. 4 MiB down, digest checked in the guest.
head -c 4194304 /dev/urandom >"$E2E_TMP/down.bin"
down_sha=$(sha256sum "$E2E_TMP/down.bin" | cut -d' ' -f1)
e2e_bg down "$NS_NODE" socat -u OPEN:"$E2E_TMP/down.bin" TCP4-LISTEN:5005,bind="$NODE_IP",reuseaddr
e2e_wait_listening "$NS_NODE" 5005 10 || e2e_fail "the download server did not start"
e2e_agent fetch d1 5005
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-FETCH d1' 90 || e2e_fail "the guest's download did not end"
line=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-FETCH d1')
[ "$line" = "GUEST-FETCH d1 bytes=4194304 sha=$down_sha" ] || e2e_fail "download: '$line', want sha $down_sha"
e2e_log "4 MiB down through the kernel path, sha256 equal"

# 3. 50 flows open at once: the echo server answers none until all 50 are there.
e2e_bg echo "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7000" --barrier 50 --timeout 120
e2e_wait_for "$E2E_TMP/echo.log" '^LISTENING' 10 || e2e_fail "echo did not start"
e2e_agent 'i=1; while [ $i -le 50 ]; do (echo flow-$i | nc $MS_NODE 7000 > /tmp/out.$i 2>/dev/null) & i=$((i + 1)); done; wait; ok=0; i=1; while [ $i -le 50 ]; do [ "$(cat /tmp/out.$i)" = flow-$i ] && ok=$((ok + 1)); i=$((i + 1)); done; say "GUEST-CONCURRENT ok=$ok"'
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-CONCURRENT' 90 || e2e_fail "concurrent flows did not finish"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-CONCURRENT ok=50' 1 ||
	e2e_fail "concurrent: $(e2e_field "$E2E_TMP/guest.log" 'GUEST-CONCURRENT')"
e2e_wait_for "$E2E_TMP/echo.log" '^ECHO peak=50$' 1 || e2e_fail "echo never saw 50 at once"
e2e_log "50 concurrent flows through the kernel path, all echoed"

# 4. The pod's own services stay out of reach: the sidecar's port on the gateway is refused
#    by the egress rule before either stack sees the SYN.
e2e_agent 'nc 10.0.2.2 15001 </dev/null >/dev/null 2>&1; say "GUEST-GATEWAY rc=$?"'
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-GATEWAY' 30 || e2e_fail "no answer to the gateway probe"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-GATEWAY rc=1' 1 || e2e_fail "the gateway's 15001 was reachable"

e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics.txt"
kmetric() { e2e_metric "$E2E_TMP/metrics.txt" "$1"; }
flows=$(kmetric meshslirp_kernel_flows_total)
opened=$(kmetric 'meshslirp_kernel_flow_events_total{event="opened"}')
# two blobs, fetch, 50 echoes.
[ "${flows:-0}" = 53 ] && [ "${opened:-0}" = 53 ] || e2e_fail "kernel flows $flows, opened $opened, want 53"
[ "$(kmetric 'meshslirp_flows_total{direction="outbound_steered"}')" = 0 ] ||
	e2e_fail "libslirp steered a flow the kernel path should have taken"
# The agent's channel, its port not steered: a direct flow on the kernel path, not libslirp's
# (whose direct flows here are UDP: DHCP).
[ "$(kmetric meshslirp_kernel_direct_flows_total)" = 1 ] &&
	[ "$(kmetric 'meshslirp_kernel_direct_flow_events_total{event="connected"}')" = 1 ] &&
	[ "$(kmetric 'meshslirp_direct_tcp_flows{state="open"}')" = 0 ] ||
	e2e_fail "the agent's channel was not a direct flow on the kernel path:" \
		"$(grep -E '^meshslirp_(kernel_direct|flows_total)' "$E2E_TMP/metrics.txt" | tr '\n' ' ')"
v=$(kmetric 'meshslirp_kernel_bytes_total{direction="to_guest"}')
[ "${v:-0}" -ge 4194304 ] || e2e_fail "bytes to the guest: $v"
for r in bad_metadata stack_refused offload_not_taken guest_memory_fault; do
	[ "$(kmetric "meshslirp_kernel_drops_total{reason=\"$r\"}")" = 0 ] || e2e_fail "drops $r: $(kmetric "meshslirp_kernel_drops_total{reason=\"$r\"}")"
done
# The upload's large segments went to the private stack straight from guest memory (whole
# digests above: the bytes the kernel read there were the right ones).
tail=$(kmetric meshslirp_vhost_user_tail_frames_total)
[ "${tail:-0}" -gt 0 ] || e2e_fail "no guest frame was written from guest memory (tail frames: '$tail')"
e2e_log "kernel path: $(grep -E '^meshslirp_(kernel_(flows|bytes|frames)|vhost_user_tail)' "$E2E_TMP/metrics.txt" | tr '\n' ' ')"

# 5. No sidecar: the guest's handshake is the private stack's, then a reset as soon as the
#    sidecar refuses, well within a second.
kill -TERM "$HAPROXY_PID"
e2e_wait_exit "$HAPROXY_PID" 10 || true
e2e_agent try t1 5002
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-TRY t1' 30 || e2e_fail "the guest's try did not end"
set -- $(e2e_field "$E2E_TMP/guest.log" 'GUEST-TRY t1')
ms=$(awk -v a="${4#t0=}" -v b="${5#t1=}" 'BEGIN { printf "%d", (b - a) * 1000 }')
[ "$ms" -lt 1000 ] || e2e_fail "without the sidecar the guest waited $ms ms"
e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics2.txt"
[ "$(e2e_metric "$E2E_TMP/metrics2.txt" 'meshslirp_kernel_flow_events_total{event="connect_failed"}')" = 1 ] ||
	e2e_fail "the refused sidecar was not counted"
e2e_log "sidecar stopped: the guest's connection ended after $ms ms ($3)"

e2e_agent_quit guest
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM (seccomp kills with SIGSYS)"
e2e_log "PASS"
