#!/usr/bin/env bash
# guest_basic.sh - a real QEMU guest through meshslirp: DHCP, 1 MiB out with SHA-256, ICMP,
# an exposed port showing the client's real address, and QEMU killed and restarted.
# No sidecar and the default --steer-stack: the 1 MiB goes out as a direct flow on the kernel
# path (guest_vhost_user.sh runs the same guest on libslirp's path).
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

SOCK=$E2E_TMP/net.sock
METRICS=127.0.0.1:9464
e2e_start_meshslirp meshslirp --socket "$SOCK" --expose tcp:8080:80 --metrics "$METRICS"

e2e_build_guest "$E2E_TMP/guest-basic" "$E2E_SRC/scenario-basic.sh" "$E2E_SRC/peer.cgi"
e2e_build_guest "$E2E_TMP/guest-idle" "$E2E_SRC/scenario-idle.sh"

e2e_run_basic_guest guest1 5001 "$SOCK" "$E2E_TMP/guest-basic"
e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics1.txt"
[ "$(e2e_metric "$E2E_TMP/metrics1.txt" 'meshslirp_steer_stack{stack="kernel"}')" = 1 ] ||
	e2e_fail "guest1: not on the kernel path: $(grep steer_stack "$E2E_TMP/metrics1.txt")"
direct=$(e2e_metric "$E2E_TMP/metrics1.txt" 'meshslirp_kernel_direct_flow_events_total{event="connected"}')
[ "${direct:-0}" -ge 1 ] || e2e_fail "guest1: no direct flow connected on the kernel path (${direct:-none})"
e2e_log "guest1: its upload a direct flow on the kernel path ($direct connected)"

# QEMU killed while the guest is up: the daemon must survive and serve the next QEMU.
e2e_boot_guest guest2 "$E2E_TMP/guest-idle" "$SOCK"
e2e_wait_for "$E2E_TMP/guest2.log" 'GUEST-IDLE' 60 || e2e_fail "guest2 did not come up"
kill -KILL "$GUEST_PID"
wait "$GUEST_PID" 2>/dev/null || true
e2e_wait_for "$E2E_TMP/meshslirp.log" 'detached: connection closed' 10 ||
	e2e_fail "daemon did not notice QEMU going away"
kill -0 "$MESHSLIRP_PID" || e2e_fail "daemon died with QEMU"
e2e_log "guest2: QEMU killed with SIGKILL, daemon still running"

e2e_run_basic_guest guest3 5002 "$SOCK" "$E2E_TMP/guest-basic"

n=$(grep -c 'attached on' "$E2E_TMP/meshslirp.log" || true)
[ "$n" = 3 ] || e2e_fail "expected 3 QEMU attachments, log shows $n"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
[ ! -e "$SOCK" ] || e2e_fail "daemon left its socket behind"
e2e_log "PASS"
