#!/usr/bin/env bash
# guest_inbound.sh - a real QEMU guest behind HAProxy's send-proxy-v2 (the sidecar's inbound
# listener): the guest sees each client's own address and port; a direct non-loopback client
# keeps its address; garbage headers (from the pod: invalid; from the node, which is not
# --inbound-proxy-trusted: untrusted) and silent clients are refused while a bulk transfer
# through the sidecar carries on intact.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" \
	'frontend in_http' \
	"  bind $POD_IP:8080" \
	'  log-format "HAPROXY-IN client=%ci:%cp"' \
	'  default_backend guest_http' \
	'backend guest_http' \
	'  server app 127.0.0.1:18080 send-proxy-v2' \
	'frontend in_bulk' \
	"  bind $POD_IP:8081" \
	'  default_backend guest_bulk' \
	'backend guest_bulk' \
	'  server app 127.0.0.1:18081 send-proxy-v2'
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"

SOCK=$E2E_TMP/net.sock
e2e_start_meshslirp meshslirp --socket "$SOCK" --expose tcp:18080:80 --expose tcp:18081:81 \
	--inbound-proxy-protocol optional --inbound-header-timeout 2s --metrics 127.0.0.1:9090
e2e_build_guest "$E2E_TMP/guest" "$E2E_SRC/scenario-inbound.sh" "$E2E_SRC/peer.cgi"
e2e_boot_guest guest "$E2E_TMP/guest" "$SOCK"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SERVERS-UP|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
	e2e_fail "guest servers did not start"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SERVERS-UP' 1 || e2e_fail "guest failed to start"
n() { ip netns exec "$NS_NODE" "$@"; }

# get_peer PORT NAME: HTTP GET from the node; prints "client-address guest-saw".
get_peer() {
	n "$MSTOOL" http-get --connect "$POD_IP:$1" --path /cgi-bin/peer --timeout 20 \
		>"$E2E_TMP/$2.log" 2>&1 || e2e_fail "$2: request failed: $(cat "$E2E_TMP/$2.log")"
	local l r
	l=$(e2e_field "$E2E_TMP/$2.log" '^LOCAL=')
	r=$(e2e_field "$E2E_TMP/$2.log" '^REMOTE=')
	echo "${l#LOCAL=} ${r#REMOTE=}"
}

# 1. Through the sidecar (HAProxy send-proxy-v2 from 127.0.0.1): the client's own address.
set -- $(get_peer 8080 via-sidecar)
[ "$1" = "$2" ] || e2e_fail "through the sidecar the guest saw $2, the client is $1"
case "$1" in "$NODE_IP:"*) ;; *) e2e_fail "client address $1 is not the node's" ;; esac
e2e_wait_for "$E2E_TMP/haproxy.log" "HAPROXY-IN client=$1" 5 || e2e_fail "HAProxy did not log $1"
e2e_log "through the sidecar: client $1, guest saw $2 (without the header it would be 10.0.2.2)"

# 2. A direct, non-loopback client without a header keeps its own address.
set -- $(get_peer 18080 direct)
[ "$1" = "$2" ] || e2e_fail "direct client $1 shown to the guest as $2"
e2e_log "direct client: $1, guest saw $2"

# 3. A bulk transfer through the sidecar while garbage and silent clients hit the port.
# Silent clients: connect and say nothing; the daemon closes them after 2 s.
for i in 1 2 3; do
	e2e_bg "silent$i" "$NS_NODE" socat -T 10 TCP4:"$POD_IP":18080 SYSTEM:'sleep 8'
done
e2e_bg bulk "$NS_NODE" "$MSTOOL" source --connect "$POD_IP:8081" --bytes 4194304 --timeout 120
bulk_pid=$E2E_LAST_PID
# From the node a PROXY header is never believed (untrusted); from the pod's loopback, where a
# sidecar connects from, a broken one is invalid.
p() { ip netns exec "$NS_POD" "$@"; }
for i in 1 2 3 4 5; do
	for via in "n:$POD_IP" "p:127.0.0.1"; do
		printf 'PROXY TCP4 not-an-address 198.18.0.2 1 2\r\n' |
			${via%%:*} timeout 5 socat -T 3 - TCP4:"${via#*:}":18080 >/dev/null 2>&1 || true
		printf '\r\n\r\n\000\r\nQUIT\n\x99\x11\x00\x0c' |
			${via%%:*} timeout 5 socat -T 3 - TCP4:"${via#*:}":18080 >/dev/null 2>&1 || true
	done
done
e2e_wait_exit "$bulk_pid" 120 || e2e_fail "bulk transfer through the sidecar failed"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-BIG-SHA' 60 || e2e_fail "guest did not report the bulk digest"
src=$(e2e_field "$E2E_TMP/bulk.log" '^SOURCE local')
got=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-BIG-SHA')
set -- $got
[ "$2" = "${src##*sha256=}" ] && [ "$3" = bytes=4194304 ] ||
	e2e_fail "bulk digest: guest '$got', client '$src'"
e2e_log "4 MiB through the sidecar during the attack: sha256 $2 at both ends"

sleep 3
kill -USR1 "$MESHSLIRP_PID"
e2e_wait_for "$E2E_TMP/meshslirp.log" 'inbound connections' 5 || e2e_fail "no counters on SIGUSR1"
line=$(e2e_field "$E2E_TMP/meshslirp.log" 'inbound connections')
case "$line" in
*"invalid_header=10 "*"header_timeout=3 "*"untrusted_peer=10"*) ;;
*) e2e_fail "unexpected inbound counters: $line" ;;
esac
e2e_log "$line"
e2e_scrape "$NS_POD" 127.0.0.1:9090 "$E2E_TMP/metrics.txt"
for check in 'meshslirp_inbound_refused_total{reason="invalid_header"} 10' \
	'meshslirp_inbound_refused_total{reason="untrusted_peer"} 10' \
	'meshslirp_inbound_refused_total{reason="header_timeout"} 3' \
	'meshslirp_proxy_header_errors_total{error="address"} 5' \
	'meshslirp_proxy_header_errors_total{error="version"} 5' \
	'meshslirp_inbound_headers_total{version="2"} 2' \
	'meshslirp_qemu_connections_total{result="accepted"} 1'; do
	set -- $check
	[ "$(e2e_metric "$E2E_TMP/metrics.txt" "$1")" = "$2" ] ||
		e2e_fail "metric $1 = '$(e2e_metric "$E2E_TMP/metrics.txt" "$1")', want $2"
done
e2e_log "metrics agree: 10 invalid headers (5 address, 5 version), 10 untrusted, 3 timeouts, 2 v2 headers"
n=$(grep -c 'refused: invalid_header' "$E2E_TMP/meshslirp.log" || true)
[ "$n" -ge 5 ] || e2e_fail "refusals not logged ($n lines)"

e2e_wait_exit "$GUEST_PID" 60 || e2e_fail "guest did not power off"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
