#!/usr/bin/env bash
# tap_basic.sh - the tap backend: a namespace as the guest, TCP/UDP/ICMP out, an exposed port in.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"

e2e_start_meshslirp meshslirp --tap tap0 --netns "/run/netns/$NS_GUEST" --mtu 65520 \
	--expose tcp:8080:80
ip -n "$NS_GUEST" link show tap0 | grep -q 'mtu 65520' || e2e_fail "tap0 missing or wrong MTU"
ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
ip -n "$NS_GUEST" route add default via 10.0.2.2
e2e_log "tap0 up in $NS_GUEST with MTU 65520"

# TCP out: 8 MiB with equal digests at both ends.
e2e_bg sink "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --bytes 8388608
sink_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/sink.log" '^LISTENING' 10 || e2e_fail "sink did not start"
ip netns exec "$NS_GUEST" "$MSTOOL" source --connect "$NODE_IP:5001" --bytes 8388608 \
	>"$E2E_TMP/source.log" 2>&1 || e2e_fail "source failed"
e2e_wait_exit "$sink_pid" 30 || e2e_fail "sink did not finish"
src=$(e2e_field "$E2E_TMP/source.log" '^SOURCE local')
dst=$(e2e_field "$E2E_TMP/sink.log" '^SINK ')
[ "${src##*sha256=}" = "${dst##*sha256=}" ] || e2e_fail "digest mismatch: $src / $dst"
case "$dst" in *"peer=$POD_IP:"*"bytes=8388608 "*) ;; *) e2e_fail "unexpected: $dst" ;; esac
e2e_log "TCP out: 8 MiB, sha256 ${dst##*sha256=} at both ends"

# UDP out: an echo server on the node answers through libslirp's UDP socket.
e2e_bg udpecho "$NS_NODE" socat -T 10 UDP4-RECVFROM:5353,fork,reuseaddr PIPE
sleep 0.3
reply=$(echo meshslirp-udp-probe | ip netns exec "$NS_GUEST" timeout 10 socat -T 3 - UDP4:"$NODE_IP":5353) ||
	e2e_fail "UDP exchange failed"
[ "$reply" = meshslirp-udp-probe ] || e2e_fail "UDP echo returned '$reply'"
e2e_log "UDP out: echo answered"

# ICMP echo out.
ip netns exec "$NS_GUEST" busybox ping -c 2 -W 3 "$NODE_IP" >"$E2E_TMP/ping.log" 2>&1 || e2e_fail "ping failed"
e2e_log "ICMP out: $(grep -Eo '[0-9]+ packets received' "$E2E_TMP/ping.log")"

# Exposed port, from the node: the guest sees the node's own address and port.
e2e_bg gsink "$NS_GUEST" "$MSTOOL" sink --listen 10.0.2.15:80 --bytes 65536
gsink_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/gsink.log" '^LISTENING' 10 || e2e_fail "guest sink did not start"
ip netns exec "$NS_NODE" "$MSTOOL" source --connect "$POD_IP:8080" --bytes 65536 \
	>"$E2E_TMP/nsource.log" 2>&1 || e2e_fail "node client failed"
e2e_wait_exit "$gsink_pid" 20 || e2e_fail "guest sink did not finish"
src=$(e2e_field "$E2E_TMP/nsource.log" '^SOURCE local')
dst=$(e2e_field "$E2E_TMP/gsink.log" '^SINK ')
local_addr=${src#SOURCE local=}
local_addr=${local_addr%% *}
case "$dst" in *"peer=$local_addr bytes=65536 sha256=${src##*sha256=}") ;; *)
	e2e_fail "guest saw '$dst', client was $local_addr" ;; esac
e2e_log "exposed port from node: client $local_addr, guest saw the same"

# Exposed port, from the pod's loopback: the guest sees the gateway.
e2e_bg gsink2 "$NS_GUEST" "$MSTOOL" sink --listen 10.0.2.15:80 --bytes 1000
gsink_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/gsink2.log" '^LISTENING' 10 || e2e_fail "guest sink did not start"
ip netns exec "$NS_POD" "$MSTOOL" source --connect 127.0.0.1:8080 --bytes 1000 \
	>"$E2E_TMP/lsource.log" 2>&1 || e2e_fail "loopback client failed"
e2e_wait_exit "$gsink_pid" 20 || e2e_fail "guest sink did not finish"
e2e_field "$E2E_TMP/gsink2.log" '^SINK ' | grep -q 'peer=10.0.2.2:' ||
	e2e_fail "loopback client not shown as the gateway: $(e2e_field "$E2E_TMP/gsink2.log" '^SINK ')"
e2e_log "exposed port from loopback: guest saw the gateway 10.0.2.2"

kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
