#!/usr/bin/env bash
# ambient_masquerade.sh - KubeVirt's masquerade binding under the same Istio ambient stand-in as
# ambient_guest.sh: records how it fails (kubevirt/kubevirt#18871) and why, and that two rules
# would fix the inbound side.  It passes when the behaviour is the one documented in
# docs/ISTIO.md ("Ambient mode: masquerade").
#
# The pod is KubeVirt's masquerade with its Istio branch (what `sidecar.istio.io/inject: "true"`
# on the VMI selects in pkg/network/setup/netpod/masquerade/masquerade.go), one VMI port, 8080:
# bridge k6t-eth0 10.0.2.1/24, the guest at 10.0.2.2; nat output DNATs {127.0.0.1, pod IP}:8080
# to the guest; SNAT to 10.0.2.1 only for sources {127.0.0.1, 127.0.0.6} (a sidecar's); the
# guest's own traffic masqueraded.  The guest is a namespace on a veth enslaved to k6t-eth0, as
# in bench/systems.sh (a tap of QEMU's would be the same bridge port to netfilter).
#
#   1. Ambient as istio-cni installs it by default:
#      inbound  a client on the node calls the pod's 8080.  ztunnel (15006) connects to the pod
#               IP from the client's address; KubeVirt's output DNAT sends that to the guest,
#               with no SNAT (the source is no sidecar's); the guest answers the client's
#               address through its gateway; that answer is FORWARDED by the pod, never passes
#               mangle OUTPUT where Istio restores connmark 0x111, so no mark, no table 100:
#               the main table sends it out of eth0 to the client's host.  ztunnel's connect
#               times out; the pod's conntrack sits in SYN_RECV; the guest's server never
#               accepts.  This is #18871's symptom, to the letter.
#      control  the guest's server answers a process of the pod (the issue's nsenter + nc).
#      outbound the guest's TCP enters the pod by k6t-eth0, so Istio's PREROUTING rule sends it
#               to ztunnel's INBOUND port 15006, not 15001, and it fails.
#   2. With the pod annotation istio.io/reroute-virtual-interfaces: k6t-eth0 (Istio >= 1.25):
#      outbound goes to 15001 and works; inbound fails as before (the annotation's rules see
#      only new connections, and the answer belongs to one).
#   3. With two rules KubeVirt could add (a ct mark bit for ztunnel's connections into the
#      bridge, and the mark 0x111 for the guest's answers on them): inbound works, the guest
#      sees the client's address.  Checked here only.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ambient.sh"
e2e_require_root
e2e_require nft haproxy
e2e_topology
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"
POD_IF="$E2E_TAG-p"
GUEST_IP=10.0.2.2
AMB_ZT_CONNECT_TIMEOUT=3s
p() { ip netns exec "$NS_POD" "$@"; }
g() { ip netns exec "$NS_GUEST" "$@"; }
n() { ip netns exec "$NS_NODE" "$@"; }

# KubeVirt's masquerade pod, Istio branch, VMI port 8080.
ip -n "$NS_POD" link add k6t-eth0 type bridge
ip -n "$NS_POD" addr add 10.0.2.1/24 dev k6t-eth0
ip -n "$NS_POD" link set k6t-eth0 up
p sysctl -qw net.ipv4.ip_forward=1
ip link add "$E2E_TAG-mv" netns "$NS_POD" type veth peer name eth0 netns "$NS_GUEST"
ip -n "$NS_POD" link set "$E2E_TAG-mv" master k6t-eth0 up
ip -n "$NS_GUEST" link set eth0 up
ip -n "$NS_GUEST" addr add "$GUEST_IP/24" dev eth0
ip -n "$NS_GUEST" route add default via 10.0.2.1
p nft -f - <<NFT
table ip nat {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		iifname "$POD_IF" counter jump KUBEVIRT_PREINBOUND
	}
	chain input { type nat hook input priority 100; policy accept; }
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr { 127.0.0.1, $POD_IP } tcp dport 8080 counter dnat to $GUEST_IP
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		ip saddr $GUEST_IP counter masquerade
		oifname "k6t-eth0" counter jump KUBEVIRT_POSTINBOUND
	}
	# Istio branch: only port 22 (KubeVirt's NonProxiedPorts) would be DNATed from eth0.
	chain KUBEVIRT_PREINBOUND {
	}
	chain KUBEVIRT_POSTINBOUND {
		tcp dport 8080 ip saddr { 127.0.0.1, 127.0.0.6 } counter snat to 10.0.2.1
	}
}
NFT
# Watchers (counters): the guest's answers leaving by eth0, and whether they carry the connmark
# 0x111; at the client's host, answers from the pod's 8080.  The host drops what its conntrack
# finds invalid (a SYN-ACK to no SYN of its own), as kube-proxy's KUBE-FORWARD rule does on a
# node; without that, its kernel resets the stray answer, the reset is DNATed to the guest, and
# the pod's conntrack shows CLOSE instead of #18871's SYN_RECV (seen here: same failure).
p nft -f - <<NFT
table inet watch {
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "k6t-eth0" oifname "$POD_IF" tcp sport 8080 ct mark & 0xfff == 0x111 counter
		iifname "k6t-eth0" oifname "$POD_IF" tcp sport 8080 tcp flags & (syn | ack) == syn | ack counter
	}
}
NFT
n nft -f - <<NFT
table inet watch {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr $POD_IP tcp sport 8080 tcp flags & (syn | ack) == syn | ack counter
		ct state invalid counter drop
	}
}
NFT
watch_count() { amb_counter "$1" watch "$2" "$3"; }

amb_rules "$NS_POD"
amb_ztunnel zt "$NS_POD"
e2e_bg app "$NS_GUEST" "$MSTOOL" echo --listen "$GUEST_IP:8080" --peers --timeout 120
e2e_bg upstream "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7000" --peers --timeout 120
e2e_wait_for "$E2E_TMP/app.log" '^LISTENING' 10 || e2e_fail "the guest's server did not start"
e2e_wait_for "$E2E_TMP/upstream.log" '^LISTENING' 10 || e2e_fail "the node's server did not start"

# inbound_try TAG : a client on the node sends 10 bytes to the pod's 8080 and waits for them
# back; meanwhile the pod's conntrack entry towards the guest is sampled.  Sets TRY_RC,
# TRY_CT (conntrack states seen), TRY_ZT (ztunnel's log line for it).
inbound_try() {
	local tag=$1 pid seen
	seen=$(grep -c "^ZT-IN client=$NODE_IP:[0-9]* orig_dst=$POD_IP:8080 " "$E2E_TMP/zt.log" || true)
	e2e_bg "$tag" "$NS_NODE" "$MSTOOL" flows --connect "$POD_IP:8080" --count 1 --bytes 10 --timeout 15
	pid=$E2E_LAST_PID
	TRY_CT=
	for _ in $(seq 1 20); do
		TRY_CT+=$(p grep -Eo "tcp +6 [0-9]+ [A-Z_]+ src=$NODE_IP dst=$POD_IP sport=[0-9]+ dport=8080 src=$GUEST_IP" \
			/proc/net/nf_conntrack | awk '{print $4}' | sort -u | tr '\n' ' ' || true)
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	TRY_CT=$(echo $TRY_CT | tr ' ' '\n' | sort -u | tr '\n' ' ')
	TRY_RC=0
	e2e_wait_exit "$pid" 20 || TRY_RC=$?
	for _ in $(seq 1 50); do
		TRY_ZT=$(grep "^ZT-IN client=$NODE_IP:[0-9]* orig_dst=$POD_IP:8080 " "$E2E_TMP/zt.log" |
			sed -n "$((seen + 1))p")
		[ -n "$TRY_ZT" ] && return 0
		sleep 0.1
	done
	e2e_fail "$tag: ztunnel did not log the client"
}

# inbound_fails TAG WHAT : the #18871 failure, with its reason in counters.
inbound_fails() {
	local tag=$1 what=$2 fwd0 fwd1 marked0 marked1 stray0 stray1
	stray0=$(watch_count "$NS_NODE" input 'sport 8080')
	fwd0=$(watch_count "$NS_POD" forward 'flags syn,ack')
	marked0=$(watch_count "$NS_POD" forward 'ct mark')
	inbound_try "$tag"
	stray1=$(watch_count "$NS_NODE" input 'sport 8080')
	fwd1=$(watch_count "$NS_POD" forward 'flags syn,ack')
	marked1=$(watch_count "$NS_POD" forward 'ct mark')
	[ "$TRY_RC" != 0 ] || e2e_fail "$tag: the client got its bytes back through masquerade"
	case "$TRY_ZT" in *" bytes=10/0 term=sC") ;; *) e2e_fail "$tag: ztunnel: $TRY_ZT" ;; esac
	[[ "$TRY_CT" == *SYN_RECV* ]] || e2e_fail "$tag: the pod's conntrack was never SYN_RECV ($TRY_CT)"
	[ $((fwd1 - fwd0)) -ge 1 ] || e2e_fail "$tag: the guest's answer did not leave by eth0"
	[ "$marked1" = "$marked0" ] || e2e_fail "$tag: an answer leaving by eth0 had connmark 0x111"
	[ $((stray1 - stray0)) -ge 1 ] || e2e_fail "$tag: no answer reached the client's host"
	! grep -q "^ECHO peer=$NODE_IP:" "$E2E_TMP/app.log" || e2e_fail "$tag: the guest's server accepted"
	e2e_log "$what: inbound fails: $TRY_ZT; conntrack $TRY_CT; the guest's SYN-ACK left by eth0" \
		"$((fwd1 - fwd0)) times (connmark 0x111 on none), $((stray1 - stray0)) reached the client's host"
}

# 1. Ambient's default rules.
inbound_fails default "default rules"
n "$MSTOOL" flows --connect "$NODE_IP:7000" --count 1 --bytes 10 --timeout 10 >/dev/null ||
	e2e_fail "the node's server does not answer"
p "$MSTOOL" flows --connect "$GUEST_IP:8080" --count 1 --bytes 10 --timeout 10 >"$E2E_TMP/control.log" 2>&1 ||
	e2e_fail "the guest's server does not answer the pod: $(cat "$E2E_TMP/control.log")"
grep -q "^ECHO peer=10.0.2.1:" "$E2E_TMP/app.log" || e2e_fail "the control did not come from the pod"
e2e_wait_for "$E2E_TMP/zt.log" "^ZT-OUT client=10.0.2.1:[0-9]+ orig_dst=$GUEST_IP:8080 .*bytes=10/10" 5 ||
	e2e_fail "the control did not go through ztunnel"
e2e_log "control: a process of the pod reaches the guest's server at $GUEST_IP:8080 (through" \
	"ztunnel's 15001, like any outbound flow of the pod): the guest is fine"
if g "$MSTOOL" flows --connect "$NODE_IP:7000" --count 1 --bytes 10 --timeout 10 >/dev/null 2>&1; then
	e2e_fail "the guest's outbound worked without reroute-virtual-interfaces"
fi
e2e_wait_for "$E2E_TMP/zt.log" "^ZT-IN client=$GUEST_IP:[0-9]+ orig_dst=$NODE_IP:7000 " 5 ||
	e2e_fail "the guest's outbound did not land on 15006: $(cat "$E2E_TMP/zt.log")"
! grep -q "^ZT-OUT client=$GUEST_IP" "$E2E_TMP/zt.log" || e2e_fail "the guest's outbound reached 15001"
e2e_log "outbound: the guest's flow to $NODE_IP:7000 lands on ztunnel's inbound port:" \
	"$(e2e_field "$E2E_TMP/zt.log" "^ZT-IN client=$GUEST_IP")"

# 2. istio.io/reroute-virtual-interfaces: k6t-eth0.
amb_rules_off "$NS_POD"
AMB_VIRTUAL_IFACES=k6t-eth0 amb_rules "$NS_POD"
g "$MSTOOL" flows --connect "$NODE_IP:7000" --count 1 --bytes 10 --timeout 10 >"$E2E_TMP/out2.log" 2>&1 ||
	e2e_fail "outbound with reroute-virtual-interfaces: $(cat "$E2E_TMP/out2.log")"
e2e_wait_for "$E2E_TMP/zt.log" "^ZT-OUT client=$GUEST_IP:[0-9]+ orig_dst=$NODE_IP:7000 .*bytes=10/10" 5 ||
	e2e_fail "outbound did not go through 15001: $(cat "$E2E_TMP/zt.log")"
e2e_log "reroute-virtual-interfaces: outbound works through 15001:" \
	"$(e2e_field "$E2E_TMP/zt.log" "^ZT-OUT client=$GUEST_IP")"
inbound_fails reroute "reroute-virtual-interfaces"

# 3. The candidate fix: mark ztunnel's connections into the bridge with a ct mark bit of
# KubeVirt's own (0x1000, outside Istio's 0xfff, so Istio's restore leaves ztunnel's packets
# alone), and give the guest's answers on them Istio's 0x111, which sends them by table 100
# to ztunnel's transparent socket instead of out of eth0.
p nft -f - <<'NFT'
table inet kubevirt-ambient {
	chain postrouting {
		type filter hook postrouting priority -150; policy accept;
		oifname "k6t-eth0" meta mark & 0xfff == 0x539 counter ct mark set ct mark | 0x1000
	}
	chain prerouting {
		type filter hook prerouting priority -150; policy accept;
		iifname "k6t-eth0" ct mark & 0x1000 == 0x1000 counter meta mark set meta mark & 0xfffff000 | 0x111
	}
}
NFT
inbound_try fixed
[ "$TRY_RC" = 0 ] || e2e_fail "with the fix: the client failed: $(cat "$E2E_TMP/fixed.log")"
e2e_wait_for "$E2E_TMP/app.log" "^ECHO peer=$NODE_IP:" 5 || e2e_fail "with the fix: the guest saw no client"
saw=$(e2e_field "$E2E_TMP/app.log" "^ECHO peer=$NODE_IP:")
case "$TRY_ZT" in *" bytes=10/10 term=--") ;; *) e2e_fail "with the fix: ztunnel: $TRY_ZT" ;; esac
e2e_log "with the fix: inbound works, the guest saw ${saw#ECHO peer=} (the client's address); $TRY_ZT"
e2e_log "PASS"
