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
e2e_transfer out "$NS_GUEST" "$NS_NODE" "$NODE_IP:5001" "$NODE_IP:5001" 8388608
case "$E2E_SINK" in *"peer=$POD_IP:"*) ;; *) e2e_fail "unexpected: $E2E_SINK" ;; esac
e2e_log "TCP out: 8 MiB, sha256 ${E2E_SINK##*sha256=} at both ends"

# UDP out: an echo server on the node answers through libslirp's UDP socket.
e2e_bg udpecho "$NS_NODE" socat -T 10 UDP4-RECVFROM:5353,fork,reuseaddr PIPE
e2e_wait_listening "$NS_NODE" 5353 10 || e2e_fail "the UDP echo server did not start"
reply=$(echo meshslirp-udp-probe | ip netns exec "$NS_GUEST" timeout 10 socat -T 3 - UDP4:"$NODE_IP":5353) ||
	e2e_fail "UDP exchange failed"
[ "$reply" = meshslirp-udp-probe ] || e2e_fail "UDP echo returned '$reply'"
e2e_log "UDP out: echo answered"

# ICMP echo out.
ip netns exec "$NS_GUEST" busybox ping -c 2 -W 3 "$NODE_IP" >"$E2E_TMP/ping.log" 2>&1 || e2e_fail "ping failed"
e2e_log "ICMP out: $(grep -Eo '[0-9]+ packets received' "$E2E_TMP/ping.log")"

# Exposed port, from the node: the guest sees the node's own address and port.
e2e_transfer node "$NS_NODE" "$NS_GUEST" 10.0.2.15:80 "$POD_IP:8080" 65536
case "$E2E_SINK" in *"peer=$E2E_SOURCE_ADDR "*) ;; *)
	e2e_fail "guest saw '$E2E_SINK', client was $E2E_SOURCE_ADDR" ;; esac
e2e_log "exposed port from node: client $E2E_SOURCE_ADDR, guest saw the same"

# Exposed port, from the pod's loopback: the guest sees the gateway.
e2e_transfer loopback "$NS_POD" "$NS_GUEST" 10.0.2.15:80 127.0.0.1:8080 1000
case "$E2E_SINK" in *"peer=10.0.2.2:"*) ;; *)
	e2e_fail "loopback client not shown as the gateway: $E2E_SINK" ;; esac
e2e_log "exposed port from loopback: guest saw the gateway 10.0.2.2"

kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
