#!/usr/bin/env bash
# vufront_peer.sh - vu-frontend's vhost-user modes (tap, cycle, hostile) against its own test device.
#
# Before the daemon's vhost-user backend exists, this checks the test peer itself: the
# in-tool device (vu-frontend device, tap2tap's vhost-net stand-in behind a listening
# socket) serves a pod bridge k6t-eth0 (10.0.2.1 and the gateway 10.0.2.2).  Then:
#   tap      a guest namespace's tap0 over the socket: ping and 1 MiB each way, SHA-256 equal;
#   cycle    20 whole lives (negotiate, start, ARP for 10.0.2.2 answered by the bridge, stop);
#   hostile  every case in --help, each followed by a clean life on a new connection
#            (--recheck): the device must survive them all; the strict test device closes
#            the connection on a bad message and keeps serving after a bad chain.
source "$(dirname "$0")/lib.sh"
e2e_require_root
: "${VUFRONT:=$E2E_ROOT/build/tests/vu-frontend}"
NS_GUEST="$E2E_TAG-guest"
NS_PODV="$E2E_TAG-pod"
SOCK="$E2E_TMP/vu.sock"

e2e_netns_add "$NS_GUEST"
e2e_netns_add "$NS_PODV"
ip -n "$NS_PODV" link add k6t-eth0 type bridge
ip -n "$NS_PODV" addr add 10.0.2.1/24 dev k6t-eth0
ip -n "$NS_PODV" addr add 10.0.2.2/24 dev k6t-eth0
ip -n "$NS_PODV" link set k6t-eth0 up
e2e_bg device "$NS_PODV" "$VUFRONT" device --socket "$SOCK" --device-tap vnet0 \
	--device-netns "/run/netns/$NS_PODV" --mtu 1500 --count 0 --timeout 280
DEVICE_PID=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/device.log" '^VUDEV-LISTENING' 10 || e2e_fail "the test device did not listen"
ip -n "$NS_PODV" link set vnet0 master k6t-eth0

# tap: the VM model of meshslirp-vu, here on the test device.
e2e_bg tap "$NS_PODV" "$VUFRONT" tap --tap tap0 --netns "/run/netns/$NS_GUEST" --socket "$SOCK" \
	--mtu 1500 --offload tso --timeout 120
TAP_PID=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/tap.log" '^VUFRONT-READY' 10 || e2e_fail "tap mode not ready"
e2e_log "tap: $(e2e_field "$E2E_TMP/tap.log" '^VUFRONT-NEGOTIATED')"
ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
ip netns exec "$NS_GUEST" busybox ping -c 3 -W 3 10.0.2.1 >"$E2E_TMP/ping.log" 2>&1 || e2e_fail "ping failed"
e2e_transfer out "$NS_GUEST" "$NS_PODV" 10.0.2.1:5001 10.0.2.1:5001 1048576
e2e_transfer in "$NS_PODV" "$NS_GUEST" 10.0.2.15:5002 10.0.2.15:5002 1048576
kill -TERM "$TAP_PID"
e2e_wait_exit "$TAP_PID" 10 || e2e_fail "tap mode did not exit 0 on SIGTERM"
line=$(e2e_field "$E2E_TMP/tap.log" '^VUFRONT frames_tx')
case "$line" in *" dev_errors=0"*) ;; *) e2e_fail "tap: '$line'" ;; esac
e2e_log "tap: ping, 1 MiB each way with equal SHA-256; $line"
e2e_wait_for "$E2E_TMP/device.log" '^VUDEV-DISCONNECTED n=1 ' 10 || e2e_fail "the device did not see the guest leave"
e2e_wait_for "$E2E_TMP/device.log" '^VUDEV-DISCONNECTED n=1 .*bad_chains=0 bad_tx_hdrs=0 ' 1 ||
	e2e_fail "tap: the guest sent headers it may not: $(e2e_field "$E2E_TMP/device.log" '^VUDEV-DISC')"

# cycle: whole lives, each with an ARP exchange.
line=$("$VUFRONT" cycle --socket "$SOCK" --count 20 --timeout 60 2>"$E2E_TMP/cycle.err") ||
	e2e_fail "cycle: $line $(cat "$E2E_TMP/cycle.err")"
case "$line" in "CYCLE count=20 ok=20 arp_ok=20 "*) ;; *) e2e_fail "cycle: $line" ;; esac
e2e_log "cycle: $line"

# hostile: every case; the device survives each and serves the next connection.
cases=$("$VUFRONT" --help | awk '/^Hostile cases/ {on = 1; next} on && NF {print $1}')
[ "$(wc -w <<<"$cases")" -ge 50 ] || e2e_fail "hostile cases missing from --help"
for c in $cases; do
	out=$("$VUFRONT" hostile --socket "$SOCK" --case "$c" --recheck --timeout 20 2>>"$E2E_TMP/hostile.err") ||
		e2e_fail "hostile $c: $out"
	grep -Eq "^HOSTILE case=$c result=(closed|serving|unresponsive)" <<<"$out" || e2e_fail "hostile $c: $out"
	grep -q '^RECHECK new_connection=ok arp=ok' <<<"$out" || e2e_fail "hostile $c: $out"
	sed -n 1p <<<"$out" >>"$E2E_TMP/hostile.txt"
done
grep -q 'case=unknown-request result=closed' "$E2E_TMP/hostile.txt" || e2e_fail "unknown request not refused"
grep -q 'case=desc-loop result=serving' "$E2E_TMP/hostile.txt" || e2e_fail "device died on a loop"
e2e_log "hostile: $(wc -l <"$E2E_TMP/hostile.txt") cases, device alive after each:" \
	"$(awk '{print $3}' "$E2E_TMP/hostile.txt" | sort | uniq -c | tr -s ' \n' ' ')"
kill -0 "$DEVICE_PID" || e2e_fail "the test device died"
kill -TERM "$DEVICE_PID"
e2e_wait_exit "$DEVICE_PID" 10 || e2e_fail "the test device did not exit 0 on SIGTERM"
e2e_log "PASS"
