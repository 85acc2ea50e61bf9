#!/usr/bin/env bash
# capture_mode.sh - direct mode stays compatible with stock Istio: nftables OUTPUT capture in the
# pod namespace takes meshslirp's sockets to a sidecar that reads SO_ORIGINAL_DST; the guest side
# has no rule at all.
source "$(dirname "$0")/lib.sh"
e2e_require_root
command -v nft >/dev/null || e2e_fail "nft (nftables) is not installed"
e2e_topology
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"

# Istio's capture, in nftables form (lib.sh).
e2e_istio_capture "$NS_POD"

# The sidecar: no PROXY header; the original destination comes from SO_ORIGINAL_DST.
E2E_HAPROXY_GLOBAL=('  uid 1337' '  gid 1337')
e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" \
	'frontend outbound' \
	'  bind 127.0.0.1:15001' \
	'  log-format "HAPROXY-OUT client=%ci:%cp orig_dst=%fi:%fp bytes=%U/%B"' \
	'  default_backend original_dst' \
	'backend original_dst' \
	'  server orig 0.0.0.0:0'
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"

e2e_start_meshslirp meshslirp --tap tap0 --netns "/run/netns/$NS_GUEST"
ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
ip -n "$NS_GUEST" route add default via 10.0.2.2
[ -z "$(ip netns exec "$NS_GUEST" nft list ruleset)" ] || e2e_fail "the guest side has rules"

e2e_transfer out "$NS_GUEST" "$NS_NODE" "$NODE_IP:5001" "$NODE_IP:5001" 1048576
e2e_wait_for "$E2E_TMP/haproxy.log" "HAPROXY-OUT client=$POD_IP:[0-9]+ orig_dst=$NODE_IP:5001 bytes=1048576/" 5 ||
	e2e_fail "the sidecar did not capture the flow: $(cat "$E2E_TMP/haproxy.log")"
e2e_log "direct mode under Istio-style capture: $(e2e_field "$E2E_TMP/haproxy.log" 'HAPROXY-OUT')"
e2e_log "1 MiB, sha256 equal at both ends; no rule on the guest side"

kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
