#!/usr/bin/env bash
# guest_basic.sh - a real QEMU guest through meshslirp: DHCP, 1 MiB out with SHA-256, ICMP,
# an exposed port showing the client's real address, and QEMU killed and restarted.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

SOCK=$E2E_TMP/net.sock
e2e_start_meshslirp meshslirp --socket "$SOCK" --expose tcp:8080:80

e2e_build_guest "$E2E_TMP/guest-basic" "$E2E_SRC/scenario-basic.sh" "$E2E_SRC/peer.cgi"
e2e_build_guest "$E2E_TMP/guest-idle" "$E2E_SRC/scenario-idle.sh"

e2e_run_basic_guest guest1 5001 "$SOCK" "$E2E_TMP/guest-basic"

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
