#!/usr/bin/env bash
# mesh_tap.sh - outbound steering through HAProxy as the sidecar, with a namespace as the guest:
# original destination, integrity, half-close, exclusions, DNS upstream, 1,000 concurrent and
# 10,000 sequential flows, refusals and a vanished sidecar.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"
# A second node address, excluded from steering.
ip -n "$NS_NODE" addr add 198.18.0.3/24 dev "$E2E_TAG-n"

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"

# The sidecar's DNS proxy stand-in: UDP and TCP echo on 127.0.0.1:15053.
e2e_bg dns-udp "$NS_POD" socat -T 30 UDP4-RECVFROM:15053,bind=127.0.0.1,fork,reuseaddr PIPE
e2e_bg dns-tcp "$NS_POD" "$MSTOOL" echo --listen 127.0.0.1:15053 --timeout 300

e2e_start_meshslirp meshslirp --tap tap0 --netns "/run/netns/$NS_GUEST" \
	--outbound-proxy 127.0.0.1:15001 --dns-upstream 127.0.0.1:15053 \
	--exclude-outbound-cidr 198.18.0.3/32 --exclude-outbound-port 7002 --metrics 127.0.0.1:9090
ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
ip -n "$NS_GUEST" route add default via 10.0.2.2
g() { ip netns exec "$NS_GUEST" "$@"; }
haproxy_lines() { grep -c '^HAPROXY-OUT' "$E2E_TMP/haproxy.log" || true; }

# 1. 1 MiB steered: equal digests, HAProxy saw the original destination and the guest's port.
e2e_transfer steered "$NS_GUEST" "$NS_NODE" "$NODE_IP:5001" "$NODE_IP:5001" 1048576
gport=${E2E_SOURCE_ADDR#10.0.2.15:}
e2e_wait_for "$E2E_TMP/haproxy.log" "HAPROXY-OUT client=$POD_IP:$gport orig_dst=$NODE_IP:5001 " 5 ||
	e2e_fail "HAProxy log lacks the original destination: $(cat "$E2E_TMP/haproxy.log")"
e2e_log "steered 1 MiB, sha256 equal; HAProxy: client=$POD_IP:$gport orig_dst=$NODE_IP:5001"

# 2. Half-close both ways: the guest's FIN passes while replies still flow (echo), and the
#    server's FIN passes while the guest is still sending (early reply, then it keeps reading).
e2e_bg echo "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7001" --timeout 300
e2e_wait_for "$E2E_TMP/echo.log" '^LISTENING' 10 || e2e_fail "echo did not start"
g "$MSTOOL" flows --connect "$NODE_IP:7001" --count 20 --parallel 5 --bytes 200000 \
	>"$E2E_TMP/halfclose.log" 2>&1 || e2e_fail "half-close (guest first): $(cat "$E2E_TMP/halfclose.log")"
e2e_bg early "$NS_NODE" socat -t 30 TCP4-LISTEN:7004,bind="$NODE_IP",reuseaddr \
	SYSTEM:"echo early-reply; exec 1>&-; cat >$E2E_TMP/early.bin"
early_pid=$E2E_LAST_PID
e2e_wait_listening "$NS_NODE" 7004 10 || e2e_fail "the early-reply server did not start"
g "$MSTOOL" source --connect "$NODE_IP:7004" --bytes 300000 >"$E2E_TMP/early-src.log" 2>&1 ||
	e2e_fail "half-close (server first) failed"
e2e_wait_for "$E2E_TMP/early-src.log" '^SOURCE reply=12$' 5 ||
	e2e_fail "guest did not get the early reply: $(cat "$E2E_TMP/early-src.log")"
# The source is done once it sent everything and read the reply; the last of it may still be
# on its way into early.bin until the server (one connection, no fork) exits.
e2e_wait_exit "$early_pid" 30 || [ $? != 124 ] || e2e_fail "the early-reply server did not finish"
want=$(e2e_field "$E2E_TMP/early-src.log" '^SOURCE local')
[ "$(sha256sum <"$E2E_TMP/early.bin" | cut -d' ' -f1)" = "${want##*sha256=}" ] ||
	e2e_fail "server-first half-close lost guest data"
e2e_log "half-close both ways through the sidecar: ok"

# 3. Exclusions go direct: HAProxy sees no new connection.
before=$(haproxy_lines)
for target in 198.18.0.3:7003 "$NODE_IP:7002"; do
	e2e_bg "ex-$target" "$NS_NODE" "$MSTOOL" echo --listen "$target" --timeout 60
	e2e_wait_for "$E2E_TMP/ex-$target.log" '^LISTENING' 10 || e2e_fail "echo $target did not start"
	g "$MSTOOL" flows --connect "$target" --count 3 --bytes 100 >/dev/null ||
		e2e_fail "excluded flow to $target failed"
done
[ "$(haproxy_lines)" = "$before" ] || e2e_fail "an excluded flow went through the sidecar"
e2e_log "excluded CIDR and port went direct (HAProxy saw none)"

# 5. 1,000 concurrent steered flows: the echo server holds every reply until 1,000 are open.
e2e_bg barrier "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7000" --barrier 1000 --timeout 300
e2e_wait_for "$E2E_TMP/barrier.log" '^LISTENING' 10 || e2e_fail "barrier echo did not start"
g "$MSTOOL" flows --connect "$NODE_IP:7000" --count 1000 --parallel 1000 --bytes 100 --timeout 120 \
	>"$E2E_TMP/concurrent.log" 2>&1 || e2e_fail "1,000 concurrent: $(cat "$E2E_TMP/concurrent.log")"
e2e_wait_for "$E2E_TMP/barrier.log" '^ECHO peak=1000$' 5 || e2e_fail "server never saw 1,000 at once"
e2e_log "1,000 concurrent steered flows: $(e2e_field "$E2E_TMP/concurrent.log" '^FLOWS')"

# 6. 10,000 sequential short flows: no growth in descriptors, memory or flow state.
e2e_wait_flows_drained "$E2E_TMP/meshslirp.log" 40 || e2e_fail "flows left before: $E2E_FLOW_STATE"
fd0=$(e2e_fd_count "$MESHSLIRP_PID")
rss0=$(e2e_rss_kb "$MESHSLIRP_PID")
g "$MSTOOL" flows --connect "$NODE_IP:7001" --count 10000 --parallel 1 --bytes 64 --timeout 240 \
	>"$E2E_TMP/sequential.log" 2>&1 || e2e_fail "10,000 sequential: $(cat "$E2E_TMP/sequential.log")"
e2e_wait_flows_drained "$E2E_TMP/meshslirp.log" 40 || e2e_fail "flow state left: $E2E_FLOW_STATE"
state=$E2E_FLOW_STATE
fd1=$(e2e_fd_count "$MESHSLIRP_PID")
rss1=$(e2e_rss_kb "$MESHSLIRP_PID")
[ "$fd1" -le "$fd0" ] || e2e_fail "descriptors grew from $fd0 to $fd1"
# Under ASan freed memory waits in quarantine, and at the default MTU of 65520 every libslirp
# mbuf is 64 KiB (slirp quirk mbuf_mtu_sized): RSS says nothing there; LeakSanitizer checks
# the daemon at exit, and the normal build and the memcheck run judge RSS.
if e2e_sanitized && [ -z "${E2E_MEMCHECK:-}" ]; then
	e2e_log "ASan build: RSS not judged (quarantine); LeakSanitizer checks the daemon at exit"
else
	[ $((rss1 - rss0)) -lt 4096 ] || e2e_fail "RSS grew from $rss0 KiB to $rss1 KiB"
fi
e2e_log "10,000 sequential: $(e2e_field "$E2E_TMP/sequential.log" '^FLOWS'); fds $fd0 -> $fd1," \
	"RSS $rss0 -> $rss1 KiB, $state"

# 4. DNS to the guest's DNS address goes to --dns-upstream, UDP and TCP.
reply=$(echo meshslirp-dns-probe | g timeout 10 socat -T 3 - UDP4:10.0.2.3:53) ||
	e2e_fail "UDP DNS redirect failed"
[ "$reply" = meshslirp-dns-probe ] || e2e_fail "UDP DNS upstream answered '$reply'"
g "$MSTOOL" flows --connect 10.0.2.3:53 --count 3 --bytes 300 >"$E2E_TMP/dns-tcp.log" 2>&1 ||
	e2e_fail "TCP DNS redirect failed: $(cat "$E2E_TMP/dns-tcp.log")"
e2e_log "DNS to 10.0.2.3:53 reached the upstream over UDP and TCP"

# 7. The guest cannot reach the sidecar's own ports: refused at once.
t0=$(date +%s%N)
if g "$MSTOOL" flows --connect 10.0.2.2:15001 --count 1 --timeout 5 >/dev/null 2>&1; then
	e2e_fail "guest reached the sidecar port directly"
fi
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 1000 ] || e2e_fail "refusal took $ms ms"
e2e_log "guest -> 10.0.2.2:15001 refused in $ms ms"

# 8. Sidecar gone: new steered flows are reset within a second; back: they work again.
kill -TERM "$HAPROXY_PID"
e2e_wait_exit "$HAPROXY_PID" 10 || true
t0=$(date +%s%N)
if g "$MSTOOL" flows --connect "$NODE_IP:7001" --count 1 --timeout 5 >/dev/null 2>&1; then
	e2e_fail "steered flow succeeded without a sidecar"
fi
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 1000 ] || e2e_fail "reset without sidecar took $ms ms"
e2e_start_haproxy haproxy2 "$NS_POD" "$E2E_TMP/haproxy.cfg"
g "$MSTOOL" flows --connect "$NODE_IP:7001" --count 5 --bytes 100 >/dev/null ||
	e2e_fail "flows did not recover with the sidecar back"
e2e_log "sidecar stopped: guest reset in $ms ms; sidecar restarted: flows work"

# 9. The counters tell the same story (Prometheus text on --metrics).
e2e_scrape "$NS_POD" 127.0.0.1:9090 "$E2E_TMP/metrics.txt"
steered=$(e2e_steered_total "$E2E_TMP/metrics.txt")
[ "${steered:-0}" -ge 11000 ] || e2e_fail "steered flows (both stacks) = '$steered', want >= 11000"
# (Host loopback is off by default: the gateway's 15001 is refused under that reason.)
[ "$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_flows_refused_total{reason="host_loopback"}')" = 1 ] ||
	e2e_fail "refusal not counted"
# The sidecar's refusals, on libslirp's path or the kernel path (the default where it can be set up).
[ "$(e2e_sidecar_failures_total "$E2E_TMP/metrics.txt")" -ge 1 ] || e2e_fail "sidecar failure not counted"
[ "$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_flows_total{direction="outbound_dns"}')" -ge 4 ] ||
	e2e_fail "DNS flows not counted"
[ "$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_guest_attached')" = 1 ] || e2e_fail "guest not attached?"
e2e_log "metrics: $steered steered flows, 1 refusal, failures and DNS flows counted"

kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
