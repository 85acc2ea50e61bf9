#!/usr/bin/env bash
# trust_guest.sh - a real QEMU guest: the daemon's own resets of inbound flows reach it (they
# carry the flow's Ethernet addresses), and a UDP answer libslirp fragments arrives whole.
#
# 1. A client on the node opens an exposed port (8080 -> guest 80) and goes idle; at
#    --tcp-idle-timeout (3 s) the daemon resets both ends.  The guest's server must see the
#    reset and its socket close (before the fix the reset went to 00:00:00:00:00:00 and the
#    guest's connection stayed established for ever).
# 2. The guest asks the DNS address over UDP; --dns-upstream answers 4000 bytes, which the
#    daemon cuts into fragments for the guest's MTU of 1500 after the bridge rewrote the
#    whole datagram, so every fragment carries the guest's view and the guest reassembles
#    it: its client prints 4000 bytes.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

# The DNS upstream on the node: 4000 bytes for the guest's 5-byte query.  The command reads
# the query before it answers: socat writes the datagram into the command's stdin, and a
# command that has already exited makes that write fail (EPIPE) and socat drop the answer,
# about one time in sixty (one clean-clone CI run failed so).
e2e_bg dns-upstream "$NS_NODE" socat -T 60 UDP4-RECVFROM:5353,bind="$NODE_IP",fork \
	SYSTEM:'head -c 5 >/dev/null; dd if=/dev/zero bs=4000 count=1 status=none'
e2e_wait_listening "$NS_NODE" 5353 10 || e2e_fail "DNS upstream did not start"

SOCK=$E2E_TMP/net.sock
e2e_start_meshslirp meshslirp --socket "$SOCK" --mtu 1500 --expose tcp:8080:80 \
	--tcp-idle-timeout 3s --dns-upstream "$NODE_IP:5353" --metrics 127.0.0.1:9090
# busybox has no UDP client: a small static one, built here (never committed).
gcc -O2 -static -o "$E2E_TMP/udpask" "$E2E_ROOT/tests/guest/udpask.c" ||
	e2e_fail "cannot build the guest's UDP client"
e2e_build_guest "$E2E_TMP/guest" "$E2E_SRC/scenario-trust.sh" "$E2E_TMP/udpask"
e2e_boot_guest guest "$E2E_TMP/guest" "$SOCK"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SERVE-UP|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
	e2e_fail "guest did not start its server"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SERVE-UP' 1 || e2e_fail "guest failed to start"

# 2 first (the guest asks at once): the reassembled answer.
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-UDP bytes=' 20 || e2e_fail "guest got no UDP answer line"
line=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-UDP bytes=')
[ "$line" = "GUEST-UDP bytes=4000" ] || e2e_fail "fragmented answer: $line (want 4000 bytes)"
e2e_scrape "$NS_POD" 127.0.0.1:9090 "$E2E_TMP/metrics.txt"
frags=$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_guest_link_total{what="fragments"}')
[ "${frags:-0}" -ge 3 ] || e2e_fail "fragments to the guest: '$frags', want at least 3"
e2e_log "a 4000-byte UDP answer in $frags fragments for the guest's MTU of 1500: the guest reassembled all 4000 bytes"

# 1. An idle inbound connection: reset by the daemon at both ends.
t0=$(e2e_now_ms)
e2e_bg client "$NS_NODE" "$MSTOOL" hold --connect "$POD_IP:8080" --count 1 --seconds 20 --timeout 30
client_pid=$E2E_LAST_PID
e2e_wait_since "$t0" "$E2E_TMP/guest.log" 'GUEST-SERVE-END' 15 ||
	e2e_fail "the guest's connection is still open 15 s after the client went idle"
line=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-SERVE-END')
case "$line" in
*" conns=0") ;;
*) e2e_fail "guest: $line (its connection should be gone)" ;;
esac
e2e_wait_exit "$client_pid" 10 || true
e2e_scrape "$NS_POD" 127.0.0.1:9090 "$E2E_TMP/metrics.txt"
[ "$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_flow_timeouts_total{kind="tcp_idle"}')" = 1 ] ||
	e2e_fail "idle reset not counted"
e2e_log "idle inbound connection reset after ${E2E_ELAPSED_MS} ms; the guest's socket closed ($line)"

e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SCENARIO-EXIT rc=0' 60 || e2e_fail "guest scenario failed"
e2e_wait_exit "$GUEST_PID" 60 || e2e_fail "guest did not power off"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
