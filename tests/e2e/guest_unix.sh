#!/usr/bin/env bash
# guest_unix.sh - a real QEMU guest whose sidecar legs are both unix sockets (HAProxy on unix@):
# outbound, the original destination in HAProxy's log and 1 MiB with equal SHA-256, the daemon's
# upstream socket AF_UNIX, no TCP connection to the sidecar; inbound, the guest sees the client's
# own address from the PROXY header; a header-less client of the unix port is refused; with
# the sidecar gone, the guest's flow is reset fast and counted.  The daemon runs under --seccomp
# (the unix legs' extra calls).
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

OUT_SOCK=$E2E_TMP/sidecar-out.sock
IN_SOCK=$E2E_TMP/guest-http.sock
e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" \
	'frontend outbound' \
	"  bind unix@$OUT_SOCK accept-proxy" \
	'  log-format "HAPROXY-OUT client=%ci:%cp orig_dst=%fi:%fp bytes=%U/%B term=%ts"' \
	'  default_backend original_dst' \
	'backend original_dst' \
	'  server orig 0.0.0.0:0' \
	'frontend in_http' \
	"  bind $POD_IP:8080" \
	'  log-format "HAPROXY-IN client=%ci:%cp"' \
	'  default_backend guest_http' \
	'backend guest_http' \
	"  server app unix@$IN_SOCK send-proxy-v2"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"

SOCK=$E2E_TMP/net.sock
METRICS=127.0.0.1:9090
# libslirp's path (test_ksteer.c has the kernel path's unix leg).
e2e_start_meshslirp meshslirp --steer-stack slirp --socket "$SOCK" --outbound-proxy "unix:$OUT_SOCK" \
	--exclude-outbound-port 7100 --expose "unix:$IN_SOCK:80" --inbound-proxy-protocol required \
	--inbound-header-timeout 2s --metrics "$METRICS" --seccomp
e2e_build_guest "$E2E_TMP/guest" "$E2E_SRC/scenario-unix.sh" "$E2E_SRC/peer.cgi"

e2e_bg sink "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --bytes 1048576 --timeout 120
sink_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/sink.log" '^LISTENING' 10 || e2e_fail "sink did not start"

e2e_boot_guest guest "$E2E_TMP/guest" "$SOCK" "ms.node=$NODE_IP"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SERVERS-UP|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
	e2e_fail "guest servers did not start"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SERVERS-UP' 1 || e2e_fail "guest failed to start"

# Outbound: 1 MiB through the unix leg, the original destination in HAProxy's log.
e2e_wait_exit "$sink_pid" 90 || e2e_fail "sink did not finish"
guest_sha=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-SHA' | awk '{print $2}')
line=$(e2e_field "$E2E_TMP/sink.log" '^SINK ')
[ -n "$guest_sha" ] && [ "$guest_sha" = "${line##*sha256=}" ] ||
	e2e_fail "digest mismatch: guest '$guest_sha', sink '$line'"
# A unix client shows in HAProxy as unix; orig_dst comes from the PROXY header only.
e2e_wait_for "$E2E_TMP/haproxy.log" "HAPROXY-OUT client=.* orig_dst=$NODE_IP:5001 bytes=1048576/" 5 ||
	e2e_fail "HAProxy did not log the original destination"
e2e_log "outbound over unix: 1 MiB, sha256 equal; $(e2e_field "$E2E_TMP/haproxy.log" "HAPROXY-OUT .*orig_dst=$NODE_IP:5001")"

# Inbound: node -> HAProxy -> unix@IN_SOCK (send-proxy-v2) -> guest, which sees the node.
n() { ip netns exec "$NS_NODE" "$@"; }
n "$MSTOOL" http-get --connect "$POD_IP:8080" --path /cgi-bin/peer --timeout 20 \
	>"$E2E_TMP/via-sidecar.log" 2>&1 || e2e_fail "inbound request failed: $(cat "$E2E_TMP/via-sidecar.log")"
l=$(e2e_field "$E2E_TMP/via-sidecar.log" '^LOCAL=')
r=$(e2e_field "$E2E_TMP/via-sidecar.log" '^REMOTE=')
[ -n "$l" ] && [ "${l#LOCAL=}" = "${r#REMOTE=}" ] ||
	e2e_fail "through the unix leg the guest saw '${r#REMOTE=}', the client is '${l#LOCAL=}'"
case "${l#LOCAL=}" in "$NODE_IP:"*) ;; *) e2e_fail "client address ${l#LOCAL=} is not the node's" ;; esac
e2e_log "inbound over unix: client ${l#LOCAL=}, guest saw ${r#REMOTE=}"

# A client of the unix port without a header (required mode) never reaches the guest.
printf 'GET / HTTP/1.0\r\n\r\n' |
	ip netns exec "$NS_POD" timeout 5 socat -T 3 - UNIX-CONNECT:"$IN_SOCK" >"$E2E_TMP/nohdr.out" 2>&1 || true
[ ! -s "$E2E_TMP/nohdr.out" ] || e2e_fail "a header-less unix client got an answer: $(head -c 200 "$E2E_TMP/nohdr.out")"

# The daemon's upstream descriptors are unix sockets; it holds no TCP connection to the sidecar.
if ip netns exec "$NS_POD" ss -tnp 2>/dev/null | grep -q "meshslirp.*:15001"; then
	e2e_fail "the daemon has a TCP connection to :15001"
fi

# The sidecar goes away: the guest's next flow is reset within a second.
kill -TERM "$HAPROXY_PID"
e2e_wait_exit "$HAPROXY_PID" 10 || true
rm -f "$OUT_SOCK"
e2e_bg control "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7100" --timeout 120
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-NOSIDECAR' 90 || e2e_fail "guest did not try without sidecar"
set -- $(e2e_field "$E2E_TMP/guest.log" 'GUEST-NOSIDECAR')
[ "$2" = refused ] || e2e_fail "without the sidecar the guest's flow was '$2'"
ms=$(awk -v a="${3#t0=}" -v b="${4#t1=}" 'BEGIN { printf "%d", (b - a) * 1000 }')
[ "$ms" -lt 1000 ] || e2e_fail "guest waited $ms ms for the reset"
e2e_log "sidecar gone: the guest's connect was refused after $ms ms (guest clock)"

e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics.txt"
for check in 'meshslirp_unix_legs_total{direction="outbound",result="failed"} 1' \
	'meshslirp_unix_legs_total{direction="inbound",result="adopted"} 2' \
	'meshslirp_inbound_refused_total{reason="missing_header"} 1' \
	'meshslirp_inbound_headers_total{version="2"} 1'; do
	set -- $check
	[ "$(e2e_metric "$E2E_TMP/metrics.txt" "$1")" = "$2" ] ||
		e2e_fail "metric $1 = '$(e2e_metric "$E2E_TMP/metrics.txt" "$1")', want $2"
done
open=$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_unix_legs_total{direction="outbound",result="open"}')
[ "${open:-0}" -ge 1 ] || e2e_fail "no outbound unix leg counted"
e2e_log "metrics agree: $open outbound unix legs, 1 failed; 2 inbound adopted, 1 refused without header"

e2e_wait_exit "$GUEST_PID" 60 || e2e_fail "guest did not power off"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SCENARIO-EXIT rc=0' 1 || e2e_fail "scenario failed"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
[ ! -e "$IN_SOCK" ] || e2e_fail "the daemon left $IN_SOCK behind"
e2e_log "PASS"
