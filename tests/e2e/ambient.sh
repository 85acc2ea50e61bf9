# ambient.sh - an Istio ambient stand-in for a test pod namespace: istio-cni's in-pod rules and a ztunnel made of HAProxy.
#
# Source it after lib.sh.  What a pod enrolled in Istio ambient mode has in its network
# namespace, rebuilt for a test:
#
#   amb_rules NETNS      the rules istio-cni's node agent installs in the pod: Istio 1.30
#                        (checked against tags 1.29.0-1.30.3, unchanged there), the native
#                        nftables form (helm global.nativeNftables=true, Istio >= 1.28), IPv4,
#                        no pod overrides, DNS capture on (the chart's default since 1.25):
#                        inbound TCP REDIRECTed to 15006, outbound TCP to 15001, DNS to 15053,
#                        ztunnel's own packets (mark 0x539) left alone, connmark 0x111 set on
#                        connections ztunnel opens into the pod and restored on the
#                        application's answers, and the policy route that hands those answers
#                        back to ztunnel's transparent socket.  Written from the rule
#                        builder's documented behaviour (cni/pkg/nftables/nftables.go,
#                        AppendInpodRules); the default iptables form of the same version
#                        installs the same matches at the same hooks and priorities.
#                        AMB_DNS_CAPTURE=0 leaves DNS alone; AMB_VIRTUAL_IFACES="IF ..." adds
#                        the pod annotation istio.io/reroute-virtual-interfaces (inbound TCP
#                        from IF goes to 15001 as outbound; KubeVirt's masquerade bridge).
#                        AMB_ISTIO=1.22 gives the older inbound instead: TPROXY in mangle
#                        PREROUTING to transparent listeners, the default of 1.21.0 to 1.23.0
#                        (1.23.1 took REDIRECT, 1.25 removed TPROXY), with that era's DNS rule.
#   amb_ztunnel NAME NETNS
#                        ztunnel's in-pod listeners, played by HAProxy 2.6:
#                        15001 outbound: the original destination from SO_ORIGINAL_DST
#                              (hence the ipv4@ bind: HAProxy asks only IPv4 sockets);
#                        15006 inbound plaintext: connects to the original destination (the
#                              application) from the client's own address, with a new port,
#                              through a transparent socket (usesrc clientip), as ztunnel's
#                              freebind_connect does;
#                        15008 HBONE: only a listener (HAProxy speaks no HBONE), so that a
#                              connection reaching it shows in the log.
#                        ztunnel marks every socket it opens in the pod with SO_MARK 1337
#                        (0x539).  HAProxy 2.6 cannot mark its server-side sockets, so it
#                        runs as root (usesrc needs CAP_NET_ADMIN) under the dedicated group
#                        AMB_ZT_GID and an nftables rule marks that group's packets; its
#                        client-side sockets also get the mark from HAProxy itself.
#                        Log lines in $E2E_TMP/NAME.log: "ZT-OUT ...", "ZT-IN ...",
#                        "ZT-HBONE ...".  ZT-IN's from= has no port: HAProxy would log the
#                        client's, but binds port 0 and the kernel picks another (a socket
#                        with the client's own port would clash in conntrack with the
#                        client's redirected connection: tried, it hangs).  Sets AMB_ZT_PID.
#   amb_dns NAME NETNS   ztunnel's DNS proxy on 127.0.0.1:15053, UDP and TCP: logs
#                        "ZT-DNS udp|tcp peer=IP:PORT" to $E2E_TMP/NAME.log and answers
#                        AMB_DNS_BYTES bytes, so a client can tell its answer from any other.
#
# No real ztunnel: no HBONE, no mTLS, no policy, no workload lookup; the stand-in forwards
# whatever its listeners get.  What it reproduces is what the pod's kernel and an
# application in the pod see: the rules, the marks, the addresses and ports on each socket.

AMB_ZT_GID=4242
AMB_PROBE_ADDR=169.254.7.127
AMB_DNS_BYTES=1111
: "${AMB_ISTIO:=1.30}"
: "${AMB_DNS_CAPTURE:=1}"
: "${AMB_VIRTUAL_IFACES:=}"
: "${AMB_ZT_CONNECT_TIMEOUT:=5s}"

# amb_rules NETNS : the in-pod rules and the policy route (see the top of this file), for
# AMB_ISTIO: 1.30 (the default), or 1.22 for the TPROXY inbound of 1.21.0 to 1.23.0.
amb_rules() {
	local ns=$1 nat_pre='' dns_nat='' mangle_pre='' raw='' i
	case "$AMB_ISTIO" in
	1.30)
		for i in $AMB_VIRTUAL_IFACES; do
			nat_pre+="		iifname \"$i\" meta l4proto tcp counter redirect to :15001
		iifname \"$i\" meta l4proto tcp counter return
"
		done
		nat_pre+="		meta l4proto tcp ip saddr $AMB_PROBE_ADDR counter accept
		ip daddr != 127.0.0.1 tcp dport != 15008 meta mark & 0xfff != 0x539 counter redirect to :15006
"
		[ "$AMB_DNS_CAPTURE" = 1 ] && dns_nat="
		oifname != \"lo\" meta mark & 0xfff != 0x539 udp dport 53 counter redirect to :15053
		ip daddr != 127.0.0.1 tcp dport 53 meta mark & 0xfff != 0x539 counter redirect to :15053
"
		# Separate conntrack zones for ztunnel's upstream queries and their answers, so an
		# application query reusing a source port still gets redirected (istio/istio#33469).
		[ "$AMB_DNS_CAPTURE" = 1 ] && raw="table inet istio-ambient-raw {
	chain prerouting { type filter hook prerouting priority -300; policy accept; jump istio-prerouting; }
	chain output { type filter hook output priority -300; policy accept; jump istio-output; }
	chain istio-prerouting {
		udp sport 53 meta mark & 0xfff != 0x539 counter ct zone set 1
	}
	chain istio-output {
		udp dport 53 meta mark & 0xfff == 0x539 counter ct zone set 1
	}
}"
		;;
	1.22)
		[ -z "$AMB_VIRTUAL_IFACES" ] || e2e_fail "reroute-virtual-interfaces came with Istio 1.25"
		# Inbound by TPROXY in mangle, to ztunnel's transparent listeners, the original
		# destination kept; 15008 too; established connections and app-to-itself over lo pass.
		mangle_pre="		meta l4proto tcp ip saddr $AMB_PROBE_ADDR counter accept
		ip daddr != 127.0.0.1 meta l4proto tcp iifname \"lo\" counter accept
		tcp dport 15008 meta mark & 0xfff != 0x539 counter tproxy ip to :15008 meta mark set meta mark & 0xfffff000 | 0x111 accept
		meta l4proto tcp ct state established,related counter accept
		ip daddr != 127.0.0.1 meta l4proto tcp meta mark & 0xfff != 0x539 counter tproxy ip to :15006 meta mark set meta mark & 0xfffff000 | 0x111 accept
"
		[ "$AMB_DNS_CAPTURE" = 1 ] && dns_nat="
		oifname != \"lo\" udp dport 53 counter redirect to :15053
"
		;;
	*) e2e_fail "AMB_ISTIO=$AMB_ISTIO: the stand-in knows 1.30 and 1.22" ;;
	esac
	ip netns exec "$ns" nft -f - <<NFT
table inet istio-ambient-nat {
	chain prerouting { type nat hook prerouting priority -100; policy accept; jump istio-prerouting; }
	chain output { type nat hook output priority -100; policy accept; jump istio-output; }
	chain istio-prerouting {
$nat_pre	}
	chain istio-output {
		meta l4proto tcp ip daddr $AMB_PROBE_ADDR counter accept$dns_nat
		meta l4proto tcp meta mark & 0xfff == 0x111 counter accept
		oifname "lo" ip daddr != 127.0.0.1 counter accept
		meta l4proto tcp ip daddr != 127.0.0.1 meta mark & 0xfff != 0x539 counter redirect to :15001
	}
}
table inet istio-ambient-mangle {
	chain prerouting { type filter hook prerouting priority -150; policy accept; jump istio-prerouting; }
	chain output { type route hook output priority -150; policy accept; jump istio-output; }
	chain istio-prerouting {
		meta mark & 0xfff == 0x539 counter ct mark set ct mark & 0xfffff000 | 0x111
$mangle_pre	}
	chain istio-output {
		ct mark & 0xfff == 0x111 counter meta mark set ct mark
	}
}
$raw
NFT
	# A connection ztunnel opened into the pod from a client's address: the application's
	# answers (mark 0x111 restored above) are delivered locally, to ztunnel's socket; under
	# TPROXY the client's own packets (mark 0x111 set there) too.
	ip -n "$ns" route add local 0.0.0.0/0 dev lo table 100
	ip -n "$ns" rule add fwmark 0x111/0xfff pref 32764 lookup 100
}

# amb_rules_off NETNS : remove what amb_rules installed.
amb_rules_off() {
	local t
	for t in istio-ambient-nat istio-ambient-mangle istio-ambient-raw; do
		ip netns exec "$1" nft delete table inet "$t" 2>/dev/null || true
	done
	ip -n "$1" rule del fwmark 0x111/0xfff pref 32764 lookup 100 2>/dev/null || true
	ip -n "$1" route del local 0.0.0.0/0 dev lo table 100 2>/dev/null || true
}

# amb_counter NETNS TABLE CHAIN PATTERN : the packets counted by the first rule of CHAIN in
# inet TABLE whose text contains PATTERN (0 if none matched it).
amb_counter() {
	ip netns exec "$1" nft list chain inet "$2" "$3" |
		awk -v p="$4" 'index($0, p) && match($0, /counter packets [0-9]+/) {
			print substr($0, RSTART + 16, RLENGTH - 16); found = 1; exit }
			END { if (!found) print 0 }'
}

# amb_ztunnel NAME NETNS : the ztunnel stand-in (see the top of this file).
amb_ztunnel() {
	local name=$1 ns=$2 cfg="$E2E_TMP/$1.cfg" tp=''
	# Under TPROXY the inbound listeners take connections for addresses not their own.
	[ "$AMB_ISTIO" = 1.22 ] && tp=' transparent'
	# Every packet of the stand-in's group carries ztunnel's mark, before Istio's mangle
	# (-150) and nat (-100) chains look at it.
	ip netns exec "$ns" nft delete table inet ztunnel-standin 2>/dev/null || true
	ip netns exec "$ns" nft -f - <<NFT
table inet ztunnel-standin {
	chain output {
		type route hook output priority -160; policy accept;
		meta skgid $AMB_ZT_GID counter meta mark set 0x539
	}
}
NFT
	E2E_HAPROXY_GLOBAL=("  gid $AMB_ZT_GID")
	e2e_haproxy_cfg "$cfg" \
		'frontend zt_outbound' \
		'  bind ipv4@0.0.0.0:15001' \
		'  tcp-request connection set-mark 0x539' \
		'  log-format "ZT-OUT client=%ci:%cp orig_dst=%fi:%fp from=%bi:%bp upstream=%si:%sp bytes=%U/%B term=%ts"' \
		'  default_backend zt_original_dst' \
		'backend zt_original_dst' \
		"  timeout connect $AMB_ZT_CONNECT_TIMEOUT" \
		'  retries 0' \
		'  server orig 0.0.0.0:0' \
		'frontend zt_inbound_plaintext' \
		"  bind ipv4@0.0.0.0:15006$tp" \
		'  tcp-request connection set-mark 0x539' \
		'  log-format "ZT-IN client=%ci:%cp orig_dst=%fi:%fp from=%bi app=%si:%sp bytes=%U/%B term=%ts"' \
		'  default_backend zt_application' \
		'backend zt_application' \
		"  timeout connect $AMB_ZT_CONNECT_TIMEOUT" \
		'  retries 0' \
		'  source 0.0.0.0 usesrc clientip' \
		'  server app 0.0.0.0:0' \
		'frontend zt_hbone' \
		"  bind ipv4@0.0.0.0:15008$tp" \
		'  log-format "ZT-HBONE client=%ci:%cp orig_dst=%fi:%fp term=%ts"' \
		'  default_backend zt_nowhere' \
		'backend zt_nowhere'
	E2E_HAPROXY_GLOBAL=()
	e2e_start_haproxy "$name" "$ns" "$cfg"
	AMB_ZT_PID=$HAPROXY_PID
}

# amb_dns NAME NETNS : the DNS proxy stand-in on 127.0.0.1:15053 (see the top of this file).
amb_dns() {
	e2e_answer_server "$1" "$2" udp 127.0.0.1:15053 "$AMB_DNS_BYTES" ZT-DNS
	e2e_answer_server "$1" "$2" tcp 127.0.0.1:15053 "$AMB_DNS_BYTES" ZT-DNS
}
