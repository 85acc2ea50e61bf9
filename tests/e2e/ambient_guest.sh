#!/usr/bin/env bash
# ambient_guest.sh - a real QEMU guest (vhost-user) in a pod enrolled in Istio ambient mode
# (tests/e2e/ambient.sh: Istio 1.30's in-pod nftables rules, ztunnel played by HAProxy), with
# meshslirp in its defaults (direct mode, exposed port on 0.0.0.0, no mark, no rule of its own):
#
#   outbound  the guest's 1 MiB reaches the node through ztunnel's 15001: original destination in
#             its log, the server's peer is ztunnel's upstream socket, SHA-256 equal;
#   inbound   a client on the node calls the pod's port 8080: REDIRECTed to 15006, ztunnel
#             connects to meshslirp from the client's own address (transparent, marked), and the
#             guest sees that address, with the port ztunnel's socket has (the kernel's ss agrees);
#             meshslirp's answers find their way back through connmark 0x111 and table 100;
#             the same under Istio 1.22's TPROXY inbound (the default of 1.21.0 to 1.23.0);
#   DNS       to the DNS address (libslirp forwards it to the pod's resolver from resolv.conf)
#             and to a resolver of the guest's choosing, over UDP and TCP: the pod's DNS capture
#             gives all four to ztunnel's DNS proxy, none reaches the real resolver; with
#             --dns-upstream 127.0.0.1:15053 (the second daemon below) the proxy is asked
#             directly; other UDP is not captured (ambient captures TCP and DNS only), as for any
#             application in the pod;
#   bypass    the guest tries ztunnel's ports through the gateway (the pod's loopback) and at the
#             pod's address, and the probe address 169.254.7.127 that the rules leave alone (a pod
#             process does reach a server there, uncaptured): every try is refused at once, none
#             reaches a listener, each is counted under its reason; a destination straight out is
#             captured like everything else.  Then hostile-guest sends what a real guest's kernel
#             cannot (frames to 127.0.0.1, 127.0.0.6, 0.0.0.0) to a second daemon: refused too;
#   no rules  the pod has no interface but lo and its own; no rule names an interface but lo.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ambient.sh"
e2e_require_root
e2e_require nft haproxy socat gcc
e2e_topology
export E2E_GUEST_NETDEV=vhost-user
p() { ip netns exec "$NS_POD" "$@"; }

# The node: the pod reaches the probe address through its own link, as on a node where
# istio-cni SNATs the kubelet's probes to it.
ip -n "$NS_NODE" addr add "$AMB_PROBE_ADDR/32" dev "$E2E_TAG-n"
ip -n "$NS_POD" route add "$AMB_PROBE_ADDR/32" dev "$E2E_TAG-p"

amb_rules "$NS_POD"
amb_ztunnel zt "$NS_POD"
amb_dns ztdns "$NS_POD"
# A watcher (counters only): meshslirp's answers from the exposed port, with the mark 0x111
# restored and delivered on lo (to ztunnel's socket), or leaving by the pod's link.  In
# postrouting: the output hook's oifname is the route before the mark changed it.
p nft -f - <<NFT
table inet watch {
	chain postrouting {
		type filter hook postrouting priority 0; policy accept;
		tcp sport 8080 meta mark & 0xfff == 0x111 oifname "lo" counter
		tcp sport 8080 oifname != "lo" counter
	}
}
NFT

# The resolver the guest names itself: it must never be asked (777 bytes would tell).
e2e_answer_server resolver "$NS_NODE" udp "$NODE_IP:53" 777 resolver
e2e_answer_server resolver "$NS_NODE" tcp "$NODE_IP:53" 777 resolver
e2e_answer_server udpsvc "$NS_NODE" udp "$NODE_IP:7001" 11 udpsvc
e2e_bg sink "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --bytes 1048576 --timeout 150
sink_pid=$E2E_LAST_PID
e2e_bg echo "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7000" --peers --timeout 150
e2e_bg probe "$NS_NODE" "$MSTOOL" echo --listen "$AMB_PROBE_ADDR:7000" --peers --timeout 150
for f in sink echo probe; do
	e2e_wait_for "$E2E_TMP/$f.log" '^LISTENING' 10 || e2e_fail "$f did not start"
done

# The hole: a process of the pod reaches the probe address, and ztunnel never sees it.
p "$MSTOOL" flows --connect "$AMB_PROBE_ADDR:7000" --count 1 --bytes 10 >"$E2E_TMP/hole.log" 2>&1 ||
	e2e_fail "the pod could not reach $AMB_PROBE_ADDR:7000: $(cat "$E2E_TMP/hole.log")"
e2e_wait_for "$E2E_TMP/probe.log" "^ECHO peer=$POD_IP:" 5 || e2e_fail "the probe server saw nobody"
! grep -q "orig_dst=$AMB_PROBE_ADDR" "$E2E_TMP/zt.log" || e2e_fail "ztunnel saw the probe address"
e2e_log "a pod process reaches $AMB_PROBE_ADDR:7000 around ztunnel: the rules accept it uncaptured"

# The pod's resolver (kube-dns in a cluster) is on the node: ip netns exec gives the daemon
# this resolv.conf, so libslirp forwards the guest's DNS there, and nowhere outside the test.
mkdir -p "/etc/netns/$NS_POD"
E2E_CLEANUP_HOOKS+=("rm -rf /etc/netns/$NS_POD; rmdir --ignore-fail-on-non-empty /etc/netns")
echo "nameserver $NODE_IP" >"/etc/netns/$NS_POD/resolv.conf"

SOCK=$E2E_TMP/vhost.sock
e2e_start_meshslirp meshslirp --vhost-user "$SOCK" --expose tcp:8080:80 --metrics 127.0.0.1:9090
gcc -O2 -static -o "$E2E_TMP/udpask" "$E2E_ROOT/tests/guest/udpask.c" ||
	e2e_fail "cannot build the guest's UDP client"
e2e_build_guest "$E2E_TMP/guest" "$E2E_SRC/scenario-ambient.sh" "$E2E_TMP/udpask" \
	"$E2E_SRC/peer.cgi"
e2e_boot_guest guest "$E2E_TMP/guest" "$SOCK" \
	"ms.node=$NODE_IP ms.pod=$POD_IP ms.probe=$AMB_PROBE_ADDR"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-HTTPD-UP|GUEST-DHCP-FAILED|GUEST-ERROR' 90 ||
	e2e_fail "the guest did not start"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-HTTPD-UP' 1 || e2e_fail "the guest failed to start"

# Nothing for the guest in the pod: no interface, no rule naming one.
links=$(p ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')
[ "$links" = "$(printf '%s\n' lo "$E2E_TAG-p" | sort | tr '\n' ' ')" ] ||
	e2e_fail "the pod has other interfaces: $links"
ifaces=$(p nft list ruleset | grep -Eo '(iifname|oifname) (!= )?"[^"]*"' | grep -v '"lo"' || true)
[ -z "$ifaces" ] || e2e_fail "a rule names an interface: $ifaces"
e2e_log "the pod's interfaces: $links; no rule names any but lo (the guest is on vhost-user)"

# Outbound: through ztunnel, original destination logged, bytes intact.
e2e_wait_exit "$sink_pid" 120 || e2e_fail "the sink did not finish"
guest_sha=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-SHA' | awk '{print $2}')
sink=$(e2e_field "$E2E_TMP/sink.log" '^SINK ')
[ -n "$guest_sha" ] && [ "$guest_sha" = "${sink##*sha256=}" ] ||
	e2e_fail "digest mismatch: guest '$guest_sha', sink '$sink'"
e2e_wait_for "$E2E_TMP/zt.log" "^ZT-OUT client=$POD_IP:[0-9]+ orig_dst=$NODE_IP:5001 .*bytes=1048576/" 5 ||
	e2e_fail "ztunnel did not log the original destination: $(cat "$E2E_TMP/zt.log")"
zt=$(e2e_field "$E2E_TMP/zt.log" "^ZT-OUT .*orig_dst=$NODE_IP:5001")
from=${zt#* from=}
from=${from%% *}
peer=${sink#SINK peer=}
[ "${peer%% *}" = "$from" ] || e2e_fail "the sink's peer ${peer%% *} is not ztunnel's upstream socket $from"
e2e_log "outbound: 1 MiB, sha256 equal; $zt"

# DNS, UDP, and the tries around ztunnel.
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-DIRECT' 90 || e2e_fail "the guest's checks did not finish"
for via in dns-address-udp dns-address-tcp node-udp node-tcp; do
	line=$(e2e_field "$E2E_TMP/guest.log" "GUEST-DNS via=$via ")
	[ "${line##* }" = "$AMB_DNS_BYTES" ] || e2e_fail "DNS $via: '$line', want the proxy's $AMB_DNS_BYTES bytes"
done
for proto in udp tcp; do
	n=$(grep -c "^ZT-DNS $proto peer=$POD_IP:" "$E2E_TMP/ztdns.log" || true)
	[ "$n" = 2 ] || e2e_fail "the DNS proxy got $n $proto queries from the pod, want 2: $(cat "$E2E_TMP/ztdns.log")"
done
[ ! -s "$E2E_TMP/resolver.log" ] || e2e_fail "the resolver was asked: $(cat "$E2E_TMP/resolver.log")"
e2e_log "DNS: to 10.0.2.3 (forwarded to the pod's resolver $NODE_IP) and to $NODE_IP:53 itself, UDP" \
	"and TCP: all four captured and answered by ztunnel's DNS proxy; the resolver saw nothing"
line=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-UDP ')
[ "$line" = "GUEST-UDP BYTES 11" ] || e2e_fail "plain UDP: $line"
grep -q "^udpsvc udp peer=$POD_IP:" "$E2E_TMP/udpsvc.log" || e2e_fail "plain UDP did not arrive"
e2e_log "UDP that is not DNS goes straight out from the pod, as ambient leaves it for any application"

declare -A want_reason=([host_loopback]=4 [pod_address]=4 [denied]=1)
n=0
while read -r line; do
	set -- $line
	case "$3" in
	rc=0*) e2e_fail "the guest got through: $line" ;;
	esac
	[ "${5#ms=}" -lt 1000 ] || e2e_fail "a refusal took long: $line"
	n=$((n + 1))
done < <(tr -d '\r' <"$E2E_TMP/guest.log" | grep -Eo 'GUEST-TRY .*')
[ "$n" = 9 ] || e2e_fail "$n tries reported, want 9"
e2e_scrape "$NS_POD" 127.0.0.1:9090 "$E2E_TMP/metrics.txt"
for r in "${!want_reason[@]}"; do
	got=$(e2e_metric "$E2E_TMP/metrics.txt" "meshslirp_flows_refused_total{reason=\"$r\"}")
	[ "${got:-0}" = "${want_reason[$r]}" ] || e2e_fail "refused $r: '$got', want ${want_reason[$r]}"
done
! grep -Eq "^ZT-HBONE|orig_dst=[^ ]*:150(01|06|08|53) " "$E2E_TMP/zt.log" ||
	e2e_fail "a try reached ztunnel's own port: $(grep -E '^ZT-HBONE|:150(01|06|08|53) ' "$E2E_TMP/zt.log")"
n=$(grep -c '^ECHO peer=' "$E2E_TMP/probe.log" || true)
[ "$n" = 1 ] || e2e_fail "the probe address saw $n connections, want only the pod's own"
line=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-DIRECT')
[ "$line" = "GUEST-DIRECT rc=0 reply=direct" ] || e2e_fail "straight out: $line"
zt=$(e2e_field "$E2E_TMP/zt.log" "^ZT-OUT .*orig_dst=$NODE_IP:7000")
[ -n "$zt" ] || e2e_fail "the flow straight out did not go through ztunnel"
from=${zt#* from=}
grep -q "^ECHO peer=${from%% *}$" "$E2E_TMP/echo.log" || e2e_fail "the echo server's peer is not ztunnel's"
e2e_log "9 tries around ztunnel refused at once (gateway 4, pod address 4, probe address 1);" \
	"none reached a listener; straight out went through ztunnel: $zt"

# Inbound: from the node to the pod's port, through 15006, to the guest.
e2e_bg client "$NS_NODE" "$MSTOOL" http-get --connect "$POD_IP:8080" --path /cgi-bin/slowpeer \
	--timeout 30
client_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SAW-CLIENT' 20 || e2e_fail "the guest's server saw no client"
saw=$(e2e_field "$E2E_TMP/guest.log" 'GUEST-SAW-CLIENT' | awk '{print $2}')
# meshslirp's socket for it, as the pod's kernel has it: local 0.0.0.0:8080's child.
ss_peer=$(p ss -Htn state established '( sport = :8080 )' | awk '{print $4}' | sort -u | tr '\n' ' ')
e2e_wait_exit "$client_pid" 20 || e2e_fail "the client failed: $(cat "$E2E_TMP/client.log")"
local_addr=$(e2e_field "$E2E_TMP/client.log" '^LOCAL=')
remote=$(e2e_field "$E2E_TMP/client.log" '^REMOTE=')
client=${local_addr#LOCAL=}
[ "${remote#REMOTE=}" = "$saw" ] || e2e_fail "the answer says ${remote#REMOTE=}, the console $saw"
[ "${saw%:*}" = "${client%:*}" ] || e2e_fail "the guest saw $saw, the client is $client"
[ "$ss_peer" = "$saw " ] || e2e_fail "the pod's kernel has meshslirp's peer as '$ss_peer', the guest saw $saw"
e2e_wait_for "$E2E_TMP/zt.log" "^ZT-IN client=$client orig_dst=$POD_IP:8080 " 5 ||
	e2e_fail "ztunnel's inbound did not log $client: $(cat "$E2E_TMP/zt.log")"
returned=$(amb_counter "$NS_POD" watch postrouting 'oifname "lo"')
leaked=$(amb_counter "$NS_POD" watch postrouting 'oifname != "lo"')
[ "$returned" -gt 0 ] && [ "$leaked" = 0 ] ||
	e2e_fail "meshslirp's answers: $returned back to ztunnel with mark 0x111, $leaked out of the pod"
e2e_log "inbound: client $client -> ztunnel 15006 -> meshslirp from $saw (the client's address," \
	"ztunnel's port, as the pod's kernel shows) -> the guest saw $saw; meshslirp's $returned" \
	"answers went back to ztunnel with mark 0x111, none out of the pod"

# The same call under the inbound of Istio 1.21.0 to 1.23.0: TPROXY to ztunnel's transparent
# 15006, no NAT at all.  The application's side is the same: a connection from the client's
# address to the pod's, and the answers back by connmark and table 100.
kill -TERM "$AMB_ZT_PID"
e2e_wait_exit "$AMB_ZT_PID" 10 || true
amb_rules_off "$NS_POD"
AMB_ISTIO=1.22 amb_rules "$NS_POD"
AMB_ISTIO=1.22 amb_ztunnel zt122 "$NS_POD"
ip netns exec "$NS_NODE" "$MSTOOL" http-get --connect "$POD_IP:8080" --path /cgi-bin/peer \
	--timeout 20 >"$E2E_TMP/client122.log" 2>&1 || e2e_fail "TPROXY: the client failed: $(cat "$E2E_TMP/client122.log")"
client=$(e2e_field "$E2E_TMP/client122.log" '^LOCAL=')
remote=$(e2e_field "$E2E_TMP/client122.log" '^REMOTE=')
client=${client#LOCAL=}
remote=${remote#REMOTE=}
[ "${remote%:*}" = "${client%:*}" ] || e2e_fail "TPROXY: the guest saw $remote, the client is $client"
e2e_wait_for "$E2E_TMP/zt122.log" "^ZT-IN client=$client orig_dst=$POD_IP:8080 " 5 ||
	e2e_fail "TPROXY: ztunnel's inbound did not log $client: $(cat "$E2E_TMP/zt122.log")"
tproxied=$(amb_counter "$NS_POD" istio-ambient-mangle istio-prerouting 'tproxy ip to :15006')
[ "$tproxied" -gt 0 ] || e2e_fail "TPROXY: no packet went through the tproxy rule"
e2e_log "inbound under Istio 1.22's TPROXY rules: client $client, the guest saw $remote;" \
	"$(e2e_field "$E2E_TMP/zt122.log" "^ZT-IN client=$client")"

# Back to 1.30 for the rest.
kill -TERM "$AMB_ZT_PID"
e2e_wait_exit "$AMB_ZT_PID" 10 || true
amb_rules_off "$NS_POD"
amb_rules "$NS_POD"
amb_ztunnel zt2 "$NS_POD"

# Done: the guest's last connection, and its scenario's end.
e2e_bg done-server "$NS_NODE" socat -T 10 TCP4-LISTEN:7100,bind="$NODE_IP",fork,reuseaddr SYSTEM:'echo done'
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-DONE done' 60 || e2e_fail "the guest did not get done"
e2e_wait_exit "$GUEST_PID" 60 || e2e_fail "the guest did not power off"
e2e_wait_for "$E2E_TMP/guest.log" 'GUEST-SCENARIO-EXIT rc=0' 1 || e2e_fail "the scenario failed"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"

# What a real guest cannot send: frames to the pod's loopback, played by hostile-guest on a
# stream socket of a second daemon in the same pod.  Refused like the rest; the control
# destination out in the mesh is answered, through ztunnel.
SOCK2=$E2E_TMP/net.sock
e2e_start_meshslirp meshslirp2 --socket "$SOCK2" --metrics 127.0.0.1:9091 \
	--dns-upstream 127.0.0.1:15053
targets=(tcp:127.0.0.1:15001 tcp:127.0.0.1:15006 tcp:127.0.0.1:15008 tcp:127.0.0.1:15053
	udp:127.0.0.1:15053 tcp:127.0.0.6:15006 tcp:0.0.0.0:15001 "tcp:$AMB_PROBE_ADDR:7000"
	"udp:$AMB_PROBE_ADDR:7000" "icmp:$AMB_PROBE_ADDR")
list=$(IFS=,; echo "${targets[*]}"),tcp:$NODE_IP:7000,udp:10.0.2.3:53
"$HOSTILE" --socket "$SOCK2" --mode spellings --targets "$list" --timeout 60 \
	>"$E2E_TMP/probes.log" 2>&1 || e2e_fail "hostile-guest failed: $(cat "$E2E_TMP/probes.log")"
for t in "${targets[@]}"; do
	proto=${t%%:*}
	line=$(grep "^PROBE $proto ${t#*:} " "$E2E_TMP/probes.log" || true)
	case "$proto:${line##* }" in
	tcp:rst | udp:silence | icmp:unreach:13) ;;
	*) e2e_fail "$t was not refused: '${line:-no probe line}'" ;;
	esac
done
grep -q "^PROBE tcp $NODE_IP:7000 synack" "$E2E_TMP/probes.log" ||
	e2e_fail "the control probe was not answered: $(grep "$NODE_IP" "$E2E_TMP/probes.log")"
grep -q "^PROBE udp 10.0.2.3:53 reply" "$E2E_TMP/probes.log" ||
	e2e_fail "DNS with --dns-upstream was not answered: $(grep 10.0.2.3 "$E2E_TMP/probes.log")"
grep -q "^ZT-DNS udp peer=127.0.0.1:" "$E2E_TMP/ztdns.log" ||
	e2e_fail "--dns-upstream did not ask ztunnel's DNS proxy: $(cat "$E2E_TMP/ztdns.log")"
e2e_scrape "$NS_POD" 127.0.0.1:9091 "$E2E_TMP/metrics2.txt"
for check in loopback=6 unspecified=1 denied=3; do
	got=$(e2e_metric "$E2E_TMP/metrics2.txt" "meshslirp_flows_refused_total{reason=\"${check%=*}\"}")
	[ "${got:-0}" = "${check#*=}" ] || e2e_fail "refused ${check%=*}: '$got', want ${check#*=}"
done
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "the second daemon did not exit 0 on SIGTERM"
e2e_wait_for "$E2E_TMP/zt2.log" "^ZT-OUT client=$POD_IP:[0-9]+ orig_dst=$NODE_IP:7000 .*" 5 ||
	e2e_fail "the control probe did not go through ztunnel"
n=$(grep -c '^ECHO peer=' "$E2E_TMP/probe.log" || true)
[ "$n" = 1 ] || e2e_fail "the probe address saw $n connections after the raw frames, want 1"
! grep -Eqh "^ZT-HBONE|orig_dst=[^ ]*:150(01|06|08|53) " "$E2E_TMP"/zt*.log ||
	e2e_fail "a frame reached ztunnel's own port"
e2e_log "${#targets[@]} raw frames to the pod's loopback, 0.0.0.0 and the probe address refused" \
	"(TCP reset, UDP dropped, ICMP prohibited); the mesh still answers, through ztunnel; DNS" \
	"with --dns-upstream 127.0.0.1:15053 answered by ztunnel's DNS proxy directly"
e2e_log "PASS"
