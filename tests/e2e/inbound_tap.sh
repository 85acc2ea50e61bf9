#!/usr/bin/env bash
# inbound_tap.sh - inbound through HAProxy's send-proxy-v2 at scale, with a namespace as the guest:
# 1,000 concurrent connections all seen by the guest as their own clients, half-close both ways,
# and no state left behind.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" \
	'frontend inbound' \
	"  bind $POD_IP:8080" \
	'  default_backend guest' \
	'backend guest' \
	'  server app 127.0.0.1:18080 send-proxy-v2'
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
e2e_start_meshslirp meshslirp --tap tap0 --netns "/run/netns/$NS_GUEST" \
	--expose tcp:18080:80 --expose-address 127.0.0.1 --inbound-proxy-protocol required
ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
ip -n "$NS_GUEST" route add default via 10.0.2.2

# 1,000 at once: the guest's echo server answers nobody until 1,000 are open, and records
# the peer address of each; every one must be the node's address, none the gateway.
e2e_bg gecho "$NS_GUEST" "$MSTOOL" echo --listen 10.0.2.15:80 --barrier 1000 --peers --timeout 200
gecho_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/gecho.log" '^LISTENING' 10 || e2e_fail "guest echo did not start"
ip netns exec "$NS_NODE" "$MSTOOL" flows --connect "$POD_IP:8080" --count 1000 --parallel 1000 \
	--bytes 300 --timeout 120 >"$E2E_TMP/flows.log" 2>&1 ||
	e2e_fail "1,000 concurrent inbound: $(cat "$E2E_TMP/flows.log")"
e2e_wait_for "$E2E_TMP/gecho.log" '^ECHO peak=1000$' 5 || e2e_fail "guest never had 1,000 at once"
e2e_log "1,000 concurrent inbound: $(e2e_field "$E2E_TMP/flows.log" '^FLOWS')"

# Whom did the guest see?  Every one of the 1,000 must be the node, none the gateway.
n_node=$(grep -c "^ECHO peer=$NODE_IP:" "$E2E_TMP/gecho.log" || true)
n_other=$(grep '^ECHO peer=' "$E2E_TMP/gecho.log" | grep -vc "^ECHO peer=$NODE_IP:" || true)
[ "$n_node" = 1000 ] && [ "$n_other" = 0 ] ||
	e2e_fail "guest saw $n_node connections from the node and $n_other from elsewhere"
e2e_log "the guest saw all 1,000 clients at their own address ($NODE_IP:port)"

# Half-close both ways through the header path.
kill -TERM "$gecho_pid"
e2e_wait_exit "$gecho_pid" 5 || true
e2e_bg gecho2 "$NS_GUEST" "$MSTOOL" echo --listen 10.0.2.15:80 --timeout 100
e2e_wait_for "$E2E_TMP/gecho2.log" '^LISTENING' 10 || e2e_fail "guest echo did not restart"
ip netns exec "$NS_NODE" "$MSTOOL" flows --connect "$POD_IP:8080" --count 50 --parallel 10 \
	--bytes 100000 >"$E2E_TMP/half.log" 2>&1 || e2e_fail "half-close: $(cat "$E2E_TMP/half.log")"
e2e_log "half-close (client first, echo after EOF): $(e2e_field "$E2E_TMP/half.log" '^FLOWS')"

e2e_wait_flows_drained "$E2E_TMP/meshslirp.log" 40 || e2e_fail "flow state left: $E2E_FLOW_STATE"
e2e_log "flow table drained: $E2E_FLOW_STATE"

kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
