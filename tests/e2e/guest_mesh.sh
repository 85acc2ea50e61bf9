#!/usr/bin/env bash
# guest_mesh.sh - a real QEMU guest steered into HAProxy as the sidecar: original destination in
# the sidecar's log, 1 MiB with equal SHA-256, 100 concurrent flows, fast reset without sidecar.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
SOCK=$E2E_TMP/net.sock
# libslirp's path: the SYN answered only once the sidecar has (guest_kstack.sh has the kernel's).
e2e_start_meshslirp meshslirp --steer-stack slirp --socket "$SOCK" --outbound-proxy 127.0.0.1:15001 \
	--exclude-outbound-port 7100
e2e_build_guest "$E2E_TMP/guest" "$E2E_SRC/scenario-mesh.sh"

e2e_bg sink "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --bytes 1048576 --timeout 120
sink_pid=$E2E_LAST_PID
e2e_bg echo "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7000" --barrier 100 --timeout 300
e2e_wait_for "$E2E_TMP/sink.log" '^LISTENING' 10 || e2e_fail "sink did not start"
e2e_wait_for "$E2E_TMP/echo.log" '^LISTENING' 10 || e2e_fail "echo did not start"

e2e_boot_guest guest "$E2E_TMP/guest" "$SOCK" "ms.node=$NODE_IP"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-LEASE|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
	e2e_fail "no DHCP outcome"
e2e_wait_exit "$sink_pid" 90 || e2e_fail "sink did not finish"
guest_sha=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-SHA' | awk '{print $2}')
line=$(e2e_field "$E2E_TMP/sink.log" '^SINK ')
[ -n "$guest_sha" ] && [ "$guest_sha" = "${line##*sha256=}" ] ||
	e2e_fail "digest mismatch: guest '$guest_sha', sink '$line'"
e2e_wait_for "$E2E_TMP/haproxy.log" "HAPROXY-OUT client=$POD_IP:[0-9]+ orig_dst=$NODE_IP:5001 bytes=1048576/" 5 ||
	e2e_fail "HAProxy did not log the original destination"
e2e_log "1 MiB through the sidecar, sha256 equal; $(e2e_field "$E2E_TMP/haproxy.log" "HAPROXY-OUT .*orig_dst=$NODE_IP:5001")"

e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-CONCURRENT' 120 || e2e_fail "concurrent flows did not finish"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-CONCURRENT ok=100' 1 ||
	e2e_fail "concurrent: $(e2e_field "$E2E_TMP/guest.log" 'GUEST-CONCURRENT')"
e2e_wait_for "$E2E_TMP/echo.log" '^ECHO peak=100$' 1 || e2e_fail "echo never saw 100 at once"
# HAProxy logs a flow when it ends, after the guest read its echo (and on one thread: lib.sh).
n=$(e2e_wait_count "$E2E_TMP/haproxy.log" "orig_dst=$NODE_IP:7000 " 100 10)
[ "$n" = 100 ] || e2e_fail "HAProxy logged $n of 100 concurrent flows" \
	"(it dropped $(e2e_haproxy_dropped_logs "$E2E_TMP/haproxy.cfg") log lines)"
e2e_log "100 concurrent flows through the sidecar, all echoed; HAProxy logged 100"

kill -TERM "$HAPROXY_PID"
e2e_wait_exit "$HAPROXY_PID" 10 || true
e2e_bg control "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7100" --timeout 120
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-NOSIDECAR' 90 || e2e_fail "guest did not try without sidecar"
line=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-NOSIDECAR')
set -- $line
[ "$2" = refused ] || e2e_fail "without the sidecar the guest's flow was '$2'"
ms=$(awk -v a="${3#t0=}" -v b="${4#t1=}" 'BEGIN { printf "%d", (b - a) * 1000 }')
[ "$ms" -lt 1000 ] || e2e_fail "guest waited $ms ms for the reset"
e2e_log "sidecar stopped: the guest's connect was refused after $ms ms (guest clock)"

e2e_wait_exit "$GUEST_PID" 60 || e2e_fail "guest did not power off"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SCENARIO-EXIT rc=0' 1 || e2e_fail "scenario failed"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
