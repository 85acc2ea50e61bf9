#!/usr/bin/env bash
# trust_pod.sh - a hostile guest tries every spelling of "this host" against the pod's own
# services, and an exposed-port client resets and reconnects from one address and port.
#
# The pod namespace holds what a mesh pod holds: the sidecar (HAProxy, outbound 15001 with
# accept-proxy, steering to the node), a stand-in for Envoy's admin port on 127.0.0.1:15000,
# another container's localhost-only service on 127.0.0.1:7777 and a service on 0.0.0.0:7778
# (reachable at the pod's address), plus a UDP service on 0.0.0.0:7779.
#
# 1. hostile-guest (playing QEMU on the stream socket) probes each spelling over TCP, UDP and
#    ICMP: loopback (127.0.0.1, .6, other 127/8), 0.0.0.0, 255.255.255.255, the pod's address,
#    one it gains after the daemon started and that one's broadcast, the gateway (host loopback, off by default), the sidecar's ports, the
#    rest of the guest network, the DNS address off port 53, multicast.  Every probe must be
#    refused (TCP: a reset; ICMP: admin prohibited; UDP: silence), no service may see a
#    connection or a datagram, and HAProxy may log only the one flow meshslirp steered itself
#    (the control probe to the node).  The refusals are counted by reason.
# 2. A client on the node resets and reconnects ten times from one address and port to an
#    exposed port of a guest (a namespace behind the tap backend, a real TCP stack): every
#    connection is served, the daemon lives.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology
p() { ip netns exec "$NS_POD" "$@"; }

# The pod's own services.
# logasap: a line per connection as soon as it is established (the probe's stays open).
e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]:0:3}" '  option logasap' \
	"${E2E_HAPROXY_OUTBOUND_PROXY[@]:3}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
for svc in admin:127.0.0.1:15000 other:127.0.0.1:7777 any:0.0.0.0:7778; do
	name=${svc%%:*}
	e2e_bg "$name" "$NS_POD" "$MSTOOL" echo --listen "${svc#*:}" --peers --timeout 300
	e2e_wait_for "$E2E_TMP/$name.log" '^LISTENING' 10 || e2e_fail "$name service did not start"
done
e2e_bg udpsvc "$NS_POD" socat -u UDP4-RECV:7779,bind=0.0.0.0 OPEN:"$E2E_TMP/udp-received",creat,append
e2e_wait_listening "$NS_POD" 7779 10 || e2e_fail "UDP service did not start"
# The control probe's destination on the node, reached through the sidecar.
e2e_bg node-echo "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:5001" --timeout 300
e2e_wait_for "$E2E_TMP/node-echo.log" '^LISTENING' 10 || e2e_fail "node echo did not start"

SOCK=$E2E_TMP/net.sock
e2e_start_meshslirp meshslirp --socket "$SOCK" --outbound-proxy 127.0.0.1:15001 \
	--metrics 127.0.0.1:9090
# An address the pod gains after the daemon started (with its broadcast): the daemon follows
# the pod's addresses over rtnetlink, so this one is refused too.
POD_IP2=198.18.1.2
p ip addr add "$POD_IP2/24" brd + dev "$E2E_TAG-p"
pod_bcast=198.18.1.255
sleep 0.5

# proto:address[:port] and the reason the daemon must count it under.
targets=(
	"tcp:127.0.0.1:15000 loopback" "tcp:127.0.0.1:15001 loopback" "tcp:127.0.0.1:7777 loopback"
	"tcp:127.0.0.6:7777 loopback" "tcp:127.1.2.3:15000 loopback"
	"tcp:0.0.0.0:7778 unspecified" "tcp:0.0.0.0:15001 unspecified"
	"tcp:255.255.255.255:7777 broadcast"
	"tcp:$POD_IP:7778 pod_address" "tcp:$POD_IP:15001 pod_address" "tcp:$POD_IP:15000 pod_address"
	"tcp:$POD_IP2:7778 pod_address" "tcp:$pod_bcast:7778 pod_address"
	"tcp:10.0.2.2:15000 host_loopback" "tcp:10.0.2.2:15001 host_loopback"
	"tcp:10.0.2.2:7777 host_loopback"
	"tcp:10.0.2.9:7777 guest_network" "tcp:10.0.2.255:7778 guest_network"
	"tcp:10.0.2.3:7777 dns_port" "tcp:224.0.0.1:7777 multicast"
	"udp:127.0.0.1:7779 loopback" "udp:0.0.0.0:7779 unspecified" "udp:255.255.255.255:7779 broadcast"
	"udp:$POD_IP:7779 pod_address" "udp:10.0.2.2:7779 host_loopback" "udp:224.0.0.251:5353 multicast"
	"icmp:127.0.0.1 loopback" "icmp:$POD_IP pod_address" "icmp:0.0.0.0 unspecified"
	"icmp:10.0.2.77 guest_network"
)
list=
declare -A want
for t in "${targets[@]}"; do
	set -- $t
	list="$list${list:+,}$1"
	want[$2]=$((${want[$2]:-0} + 1))
done
# The control: a destination out in the mesh, which must be steered and answered.
list="$list,tcp:$NODE_IP:5001"
"$HOSTILE" --socket "$SOCK" --mode spellings --targets "$list" --timeout 120 \
	>"$E2E_TMP/probes.log" 2>&1 || e2e_fail "hostile-guest failed: $(cat "$E2E_TMP/probes.log")"

for t in "${targets[@]}"; do
	set -- $t
	spec=$1 proto=${1%%:*} dst=${1#*:}
	line=$(grep "^PROBE $proto $dst " "$E2E_TMP/probes.log" || true)
	result=${line##* }
	case "$proto:$result" in
	tcp:rst | icmp:unreach:13 | udp:silence) ;;
	*) e2e_fail "$spec ($2) was not refused: '${line:-no probe line}'" ;;
	esac
done
grep -q "^PROBE tcp $NODE_IP:5001 synack" "$E2E_TMP/probes.log" ||
	e2e_fail "the control probe to the mesh was not answered: $(grep "$NODE_IP" "$E2E_TMP/probes.log")"
e2e_log "${#targets[@]} spellings of this host refused (TCP reset, ICMP admin prohibited, UDP dropped); the mesh still answers"

# Nothing reached the pod's services; HAProxy saw only the flow meshslirp steered itself.
sleep 0.5
for name in admin other any; do
	! grep -q '^ECHO peer=' "$E2E_TMP/$name.log" ||
		e2e_fail "the $name service accepted: $(grep '^ECHO peer=' "$E2E_TMP/$name.log")"
done
[ ! -s "$E2E_TMP/udp-received" ] || e2e_fail "the UDP service received $(wc -c <"$E2E_TMP/udp-received") bytes"
# The control flow was steered.  On libslirp's path HAProxy saw it, with meshslirp's header; on
# the kernel path (the default where it can be set up) the private stack answered the probe's
# SYN, and a probe completes no handshake, so HAProxy saw nothing and the kernel path counted it.
e2e_scrape "$NS_POD" 127.0.0.1:9090 "$E2E_TMP/metrics.txt"
n=$(grep -c 'HAPROXY-OUT' "$E2E_TMP/haproxy.log" || true)
if [ "$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_steer_stack{stack="kernel"}')" = 1 ]; then
	[ "$n" = 0 ] || e2e_fail "the sidecar saw $n connections: $(grep HAPROXY-OUT "$E2E_TMP/haproxy.log")"
	[ "$(e2e_metric "$E2E_TMP/metrics.txt" meshslirp_kernel_flows_total)" = 1 ] ||
		e2e_fail "the kernel path took $(e2e_metric "$E2E_TMP/metrics.txt" meshslirp_kernel_flows_total) flows, not the control's one"
	e2e_log "no pod service saw the guest; the control flow alone reached the kernel path's private stack"
else
	[ "$n" = 1 ] && grep -q "HAPROXY-OUT client=.* orig_dst=$NODE_IP:5001" "$E2E_TMP/haproxy.log" ||
		e2e_fail "the sidecar saw $n connections: $(grep HAPROXY-OUT "$E2E_TMP/haproxy.log")"
	e2e_log "no pod service saw the guest; the sidecar saw one connection, with meshslirp's header for $NODE_IP:5001"
fi

e2e_scrape "$NS_POD" 127.0.0.1:9090 "$E2E_TMP/metrics.txt"
for reason in "${!want[@]}"; do
	got=$(e2e_metric "$E2E_TMP/metrics.txt" "meshslirp_flows_refused_total{reason=\"$reason\"}")
	[ "${got:-0}" = "${want[$reason]}" ] ||
		e2e_fail "meshslirp_flows_refused_total{reason=\"$reason\"} = '$got', want ${want[$reason]}"
done
e2e_log "refusals counted by reason: $(for r in "${!want[@]}"; do printf '%s=%s ' "$r" "${want[$r]}"; done)"
kill -0 "$MESHSLIRP_PID" || e2e_fail "the daemon died"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"

# 2. Reconnects from one address and port, through an exposed port, to a real TCP stack.
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"
e2e_start_meshslirp meshslirp2 --tap tap0 --netns "/run/netns/$NS_GUEST" --expose tcp:8080:80 \
	--metrics 127.0.0.1:9091
ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
ip -n "$NS_GUEST" route add default via 10.0.2.2
e2e_bg guest-echo "$NS_GUEST" "$MSTOOL" echo --listen 10.0.2.15:80 --peers --timeout 300
e2e_wait_for "$E2E_TMP/guest-echo.log" '^LISTENING' 10 || e2e_fail "guest echo did not start"
ip netns exec "$NS_NODE" "$MSTOOL" flows --connect "$POD_IP:8080" --count 10 --bind-port 40123 \
	--reset --bytes 2000 --timeout 60 >"$E2E_TMP/reconnect.log" 2>&1 ||
	e2e_fail "reconnects failed: $(cat "$E2E_TMP/reconnect.log")"
grep -q '^FLOWS ok=10 failed=0' "$E2E_TMP/reconnect.log" ||
	e2e_fail "reconnects: $(cat "$E2E_TMP/reconnect.log")"
n=$(grep -c "^ECHO peer=$NODE_IP:40123" "$E2E_TMP/guest-echo.log" || true)
[ "$n" = 10 ] || e2e_fail "the guest served $n connections from $NODE_IP:40123, want 10"
kill -0 "$MESHSLIRP_PID" || e2e_fail "the daemon died"
e2e_scrape "$NS_POD" 127.0.0.1:9091 "$E2E_TMP/metrics2.txt"
reopened=$(e2e_metric "$E2E_TMP/metrics2.txt" 'meshslirp_inbound_reopened_total')
dups=$(e2e_metric "$E2E_TMP/metrics2.txt" 'meshslirp_inbound_duplicates_total')
[ "${dups:-x}" = 0 ] || e2e_fail "a reconnect was taken for a duplicate ($dups)"
e2e_log "10 resets and reconnects from $NODE_IP:40123: all served (reopened $reopened), daemon alive"
e2e_log "PASS"
