#!/usr/bin/env bash
# vhost_user_peer.sh - meshslirp's vhost-user backend against vu-frontend, a front-end written
# independently from the same specifications (tests/tools/README.md).
#
#   tap      the VM model: a guest namespace's tap0 behind vu-frontend's virtio rings, DHCP-free
#            (static 10.0.2.15), ping to the gateway, 1 MiB each way with equal SHA-256 to and
#            from the node (inbound through an exposed port), the front-end counting no protocol error by the daemon;
#   cycle    100 whole lives (negotiate, memory table, rings, ARP answered, stop, disconnect),
#            each new connection accepted at once (none refused as a second front-end):
#            the daemon's descriptors come back to the same number and RSS stays flat, so every
#            reset unmapped its regions and closed its fds;
#   hostile  every one of vu-frontend's hostile cases (lying messages, bad memory tables, rings
#            outside memory, descriptor loops, bad indirect tables, ...), each followed by a
#            clean life on a new connection: the daemon survives them all, logs a specific
#            reason for each connection it closes, and serves the next front-end.
source "$(dirname "$0")/lib.sh"
e2e_require_root
: "${VUFRONT:=$E2E_ROOT/build/tests/vu-frontend}"
e2e_topology
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"
SOCK="$E2E_TMP/vu.sock"
METRICS=127.0.0.1:9090
# Every reconnect may cost a page or two of heap fragmentation; a leaked mapping of the
# front-end's 4 MiB memory would cost far more.
RSS_BOUND_KB=${VU_PEER_RSS_BOUND_KB:-2048}

e2e_start_meshslirp meshslirp --vhost-user "$SOCK" --mtu 1500 --expose tcp:8080:80 \
	--metrics "$METRICS"

# tap: the VM model on the real daemon.
e2e_bg tap "$NS_POD" "$VUFRONT" tap --tap tap0 --netns "/run/netns/$NS_GUEST" --socket "$SOCK" \
	--mtu 1500 --timeout 120
TAP_PID=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/tap.log" '^VUFRONT-READY' 10 || e2e_fail "tap mode not ready"
e2e_log "tap: $(e2e_field "$E2E_TMP/tap.log" '^VUFRONT-NEGOTIATED')"
ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
ip -n "$NS_GUEST" route add default via 10.0.2.2
ip netns exec "$NS_GUEST" busybox ping -c 3 -W 3 10.0.2.2 >"$E2E_TMP/ping.log" 2>&1 ||
	e2e_fail "ping to the gateway failed: $(cat "$E2E_TMP/ping.log")"
e2e_transfer out "$NS_GUEST" "$NS_NODE" "$NODE_IP:5001" "$NODE_IP:5001" 1048576
e2e_transfer in "$NS_NODE" "$NS_GUEST" 10.0.2.15:80 "$POD_IP:8080" 1048576
kill -TERM "$TAP_PID"
e2e_wait_exit "$TAP_PID" 10 || e2e_fail "tap mode did not exit 0 on SIGTERM"
line=$(e2e_field "$E2E_TMP/tap.log" '^VUFRONT frames_tx')
case "$line" in *" dev_errors=0"*) ;; *) e2e_fail "tap: the daemon broke the protocol: '$line'" ;; esac
e2e_log "tap: ping, 1 MiB each way with equal SHA-256; $line"

# cycle: 100 reconnects, descriptors and RSS flat.
e2e_wait_for "$E2E_TMP/meshslirp.log" 'detached' 10 || e2e_fail "the daemon did not see tap mode leave"
line=$("$VUFRONT" cycle --socket "$SOCK" --count 5 --timeout 60 2>"$E2E_TMP/cycle.err") ||
	e2e_fail "cycle warm-up: $line $(cat "$E2E_TMP/cycle.err")"
fd0=$(e2e_fd_count_settled "$MESHSLIRP_PID")
rss0=$(e2e_rss_kb "$MESHSLIRP_PID")
line=$("$VUFRONT" cycle --socket "$SOCK" --count 100 --timeout 120 2>"$E2E_TMP/cycle.err") ||
	e2e_fail "cycle: $line $(cat "$E2E_TMP/cycle.err")"
case "$line" in "CYCLE count=100 ok=100 arp_ok=100 retries=0 "*) ;; *) e2e_fail "cycle: $line" ;; esac
fd1=$(e2e_fd_count_settled "$MESHSLIRP_PID")
rss1=$(e2e_rss_kb "$MESHSLIRP_PID")
[ "$fd1" = "$fd0" ] || e2e_fail "100 reconnects: descriptors $fd0 -> $fd1"
if ! e2e_sanitized; then
	[ $((rss1 - rss0)) -le "$RSS_BOUND_KB" ] ||
		e2e_fail "100 reconnects: RSS $rss0 -> $rss1 KiB (bound +$RSS_BOUND_KB)"
fi
e2e_log "cycle: $line; descriptors $fd0 -> $fd1, RSS $rss0 -> $rss1 KiB"

# hostile: every case; the daemon survives each and serves the next front-end.
cases=$("$VUFRONT" --help | awk '/^Hostile cases/ {on = 1; next} on && NF {print $1}')
[ "$(wc -w <<<"$cases")" -ge 50 ] || e2e_fail "hostile cases missing from --help"
for c in $cases; do
	out=$("$VUFRONT" hostile --socket "$SOCK" --case "$c" --recheck --timeout 20 \
		2>>"$E2E_TMP/hostile.err") || e2e_fail "hostile $c: $out"
	grep -Eq "^HOSTILE case=$c result=(closed|serving|unresponsive)" <<<"$out" ||
		e2e_fail "hostile $c: $out"
	grep -q '^RECHECK new_connection=ok arp=ok' <<<"$out" ||
		e2e_fail "hostile $c: the daemon did not serve the next front-end: $out"
	kill -0 "$MESHSLIRP_PID" || e2e_fail "hostile $c killed the daemon"
	sed -n 1p <<<"$out" >>"$E2E_TMP/hostile.txt"
done
grep -q 'case=unknown-request result=closed' "$E2E_TMP/hostile.txt" || e2e_fail "an unknown request was not refused"
closed=$(grep -c 'result=closed' "$E2E_TMP/hostile.txt" || true)
specific=$(grep -c 'vhost-user front-end (pid [0-9]*): .*; closing the connection' "$E2E_TMP/meshslirp.log" || true)
[ "$specific" -ge 1 ] || e2e_fail "no specific reason logged for the connections the daemon closed"
e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics.txt"
e2e_log "hostile: $(wc -l <"$E2E_TMP/hostile.txt") cases, the daemon alive and serving after each:" \
	"$(awk '{print $3}' "$E2E_TMP/hostile.txt" | sort | uniq -c | tr -s ' \n' ' ');" \
	"bad messages $(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_vhost_user_messages_total{result="bad"}'), broken rings $(e2e_metric "$E2E_TMP/metrics.txt" meshslirp_vhost_user_rings_broken_total)"
fd2=$(e2e_fd_count_settled "$MESHSLIRP_PID")
[ "$fd2" = "$fd0" ] || e2e_fail "after the hostile cases: descriptors $fd0 -> $fd2"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
