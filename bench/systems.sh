# systems.sh - bring benchmark systems up and down in private namespaces (sourced by bench/run).
#
# Every system gets its own pod namespace (the virt-launcher pod: the helper or
# the bridge, and the sidecar) and guest namespace (the guest model: a kernel
# TCP stack behind a tap or a veth), all wired to one node namespace that holds
# the servers.  Addresses: node 198.18.0.1, pod of system i 198.18.0.(10+i);
# nothing else is reachable.  Each system defines:
#
#   sys_up_NAME MTU MESH   - start it (MESH=1: the sidecar is in the path)
#   sys_down_NAME          - stop its processes and rules (namespaces stay)
#   gx_NAME CMD...         - run CMD in its guest model
#   SYS_PID_NAME           - the helper's PID (for CPU and RSS), empty if none
#
# The systems:
#   masquerade     KubeVirt's binding, the guest model on a veth in the pod's bridge k6t-eth0:
#                  no copy at all, an upper bound no real VM reaches
#   masquerade-vm  the same pod, the guest model behind the VM model (vu-frontend tap2tap):
#                  virtio rings in shared memory, a vhost-net stand-in onto a tap in k6t-eth0
#   meshslirp-vu   meshslirp --vhost-user, the guest model behind the same VM model, its TCP
#                  in libslirp (--steer-stack slirp; the default before 2026-12-04, and without
#                  a sidecar before 2026-12-07)
#   meshslirp-vu-k the same with --steer-stack kernel: the guest's TCP ends in the kernel's
#                  stack in the daemon's private namespace, spliced to the sidecar, or without
#                  one to its destination; what the default (auto) takes wherever it can be
#                  set up
#   meshslirp-vu-kauto  the same with --busy-poll auto: a polling window that follows the gaps
#                  between events, up to 200 us (not default)
#   meshslirp-vu-kunix  --steer-stack kernel with the unix legs of meshslirp-vu-unix (not default)
#   meshslirp-vu-kpoll  --steer-stack kernel with a fixed --busy-poll BENCH_BUSY_POLL_US (default
#                  200): the daemon polls that long after its last event before it sleeps, while
#                  no task waits for a CPU (its guard, --busy-poll-when idle) (not default)
#   meshslirp-vu-alt  the same with BENCH_ALT_ARGS / BENCH_ALT_ENV: one lever A/B (not default)
#   meshslirp-vu-unix the same with both sidecar legs on unix sockets (not default): HAProxy
#                  binds unix@ with accept-proxy (--outbound-proxy unix:PATH), and an inbound
#                  frontend on the pod's :15006 sends to unix@ with send-proxy-v2
#                  (--expose unix:PATH:5201, header required).  BENCH_UNIX_SIDECAR_SNDBUF=N:
#                  that HAProxy's tune.sndbuf.client (its unix sockets' send buffer, the
#                  sender's limit *in*; unset: the kernel's default; docs/PERFORMANCE.md)
#   meshslirp      meshslirp's stream backend, a frame pump playing QEMU (mstool pump)
#   meshslirp-tap  meshslirp's tap backend
#   slirp4netns, pasta   for reference
# The VM model's offloads (BENCH_VM_OFFLOAD, default tso) are offered by its guest side;
# what is negotiated is what the device (the stand-in, or meshslirp) accepts.  Both VM-model
# systems measure TCP turnarounds at the guest's NIC (--turnaround): bench_turnaround.
#
# The sidecar is HAProxy in every case:
#   masquerade*  nftables prerouting redirect on k6t-eth0 to :15001, SO_ORIGINAL_DST
#   meshslirp*   --outbound-proxy 127.0.0.1:15001, accept-proxy (PROXY v2); meshslirp-vu-unix
#                the same over unix sockets
#   slirp4netns, pasta
#                Istio-style OUTPUT capture in the pod namespace, SO_ORIGINAL_DST
#                (their sockets are ordinary sockets of the pod, like stock Istio)

BENCH_SYSTEMS=(masquerade masquerade-vm meshslirp-vu meshslirp-vu-k meshslirp meshslirp-tap slirp4netns pasta)
NODE_IP=198.18.0.1
BENCH_HAPROXY_MAXCONN=9000
# The sidecar keeps HAProxy's default threads (one a CPU); the tests' single thread is for their logs.
E2E_HAPROXY_NBTHREAD=
: "${BENCH_VM_OFFLOAD:=tso}"
: "${VUFRONT:=$E2E_ROOT/build/tests/vu-frontend}"

bench_idx() {
	local i=0 s
	for s in "${BENCH_SYSTEMS[@]}"; do
		i=$((i + 1))
		[ "$s" = "$1" ] && { echo $i; return; }
	done
}
pod_ns() { echo "$E2E_TAG-p$(bench_idx "$1")"; }
guest_ns() { echo "$E2E_TAG-g$(bench_idx "$1")"; }
pod_ip() { echo "198.18.0.$((10 + $(bench_idx "$1")))"; }

# Shared node namespace plus one pod and one guest namespace per system.
bench_topology() {
	local s i ns
	e2e_netns_add "$NS_NODE"
	for s in "${BENCH_SYSTEMS[@]}"; do
		i=$(bench_idx "$s")
		e2e_netns_add "$(pod_ns "$s")"
		e2e_netns_add "$(guest_ns "$s")"
		ip link add "$E2E_TAG-n$i" netns "$NS_NODE" type veth peer name eth0 netns "$(pod_ns "$s")"
		ip -n "$(pod_ns "$s")" addr add "$(pod_ip "$s")/24" dev eth0
		ip -n "$(pod_ns "$s")" link set eth0 up
		ip -n "$NS_NODE" link set "$E2E_TAG-n$i" up
		ip netns exec "$(pod_ns "$s")" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
		# Short-flow rounds open tens of thousands of connections to one server
		# address in a minute, and each active closer holds its port in TIME_WAIT
		# for 60 s: the guest's client, and in the pod the sidecar's connection
		# to the server (and meshslirp's to the sidecar).  connect() takes even
		# ports first, so the default range (32768-60999) gave about 14,000
		# before each connect() searched at length, and a third round of
		# `bench/crr --count 6000` fell to a tenth of its rate for every system
		# alike.  The same wide range in every guest and pod namespace, above
		# the ports the bench listens on (5201, 7000-7001, 15001, 15006).
		for ns in "$(pod_ns "$s")" "$(guest_ns "$s")"; do
			ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="16384 65535"
		done
	done
	ip -n "$NS_NODE" addr add "$NODE_IP/24" dev "$E2E_TAG-n1"
	# The node reaches every pod address through its own veth.
	for s in "${BENCH_SYSTEMS[@]}"; do
		i=$(bench_idx "$s")
		[ "$i" = 1 ] || ip -n "$NS_NODE" addr add "$NODE_IP/32" dev "$E2E_TAG-n$i" 2>/dev/null || true
		ip -n "$NS_NODE" route replace "$(pod_ip "$s")/32" dev "$E2E_TAG-n$i"
	done
}

# Pod <-> node links carry the scenario's MTU too.
bench_set_node_mtu() {
	local s i
	for s in "${BENCH_SYSTEMS[@]}"; do
		i=$(bench_idx "$s")
		ip -n "$NS_NODE" link set "$E2E_TAG-n$i" mtu "$1"
		ip -n "$(pod_ns "$s")" link set eth0 mtu "$1"
	done
}

# The sidecar stand-in in a pod.  $2: proxy (PROXY header) or capture (SO_ORIGINAL_DST).
# The unix legs' socket paths of SYSTEM (meshslirp-vu-unix).
bench_unix_out() { echo "$E2E_TMP/$1-sidecar.sock"; }
bench_unix_in() { echo "$E2E_TMP/$1-expose.sock"; }

bench_sidecar_up() {
	local s=$1 kind=$2 cfg="$E2E_TMP/haproxy-$1.cfg"
	E2E_HAPROXY_MAXCONN=$BENCH_HAPROXY_MAXCONN
	if [ "$kind" = proxy ]; then
		e2e_haproxy_cfg "$cfg" 'frontend outbound' '  bind 127.0.0.1:15001 accept-proxy' \
			'  default_backend orig' 'backend orig' '  server orig 0.0.0.0:0'
	elif [ "$kind" = unix ]; then
		# Both legs on unix sockets: the outbound listener, and the inbound (Envoy's
		# 15006 stand-in) towards the daemon's unix exposed port.
		[ -n "${BENCH_UNIX_SIDECAR_SNDBUF:-}" ] &&
			E2E_HAPROXY_GLOBAL=("  tune.sndbuf.client $BENCH_UNIX_SIDECAR_SNDBUF")
		e2e_haproxy_cfg "$cfg" 'frontend outbound' \
			"  bind unix@$(bench_unix_out "$s") accept-proxy" \
			'  default_backend orig' 'backend orig' '  server orig 0.0.0.0:0' \
			'frontend inbound' "  bind $(pod_ip "$s"):15006" '  default_backend guest' \
			'backend guest' "  server g unix@$(bench_unix_in "$s") send-proxy-v2"
	else
		E2E_HAPROXY_GLOBAL=('  uid 1337' '  gid 1337')
		e2e_haproxy_cfg "$cfg" 'frontend outbound' '  bind 0.0.0.0:15001' \
			'  default_backend orig' 'backend orig' '  server orig 0.0.0.0:0'
	fi
	E2E_HAPROXY_GLOBAL=()
	E2E_HAPROXY_MAXCONN=8192
	sed -i 's/^  log global$/  no log/' "$cfg"
	e2e_start_haproxy "haproxy-$s" "$(pod_ns "$s")" "$cfg"
	eval "SIDECAR_PID_${s//-/_}=$HAPROXY_PID"
}

bench_sidecar_down() {
	local var="SIDECAR_PID_${1//-/_}"
	[ -n "${!var:-}" ] || return 0
	kill -TERM "${!var}" 2>/dev/null || true
	e2e_wait_exit "${!var}" 5 || kill -KILL "${!var}" 2>/dev/null || true
	eval "$var="
}

# Istio's outbound capture for helpers whose sockets live in the pod.
bench_capture_up() { e2e_istio_capture "$(pod_ns "$1")"; }
bench_capture_down() { e2e_istio_capture_off "$(pod_ns "$1")"; }

bench_kill() {
	[ -n "${1:-}" ] || return 0
	kill -TERM "$1" 2>/dev/null || true
	e2e_wait_exit "$1" 5 || kill -KILL "$1" 2>/dev/null || true
}

# --- masquerade: KubeVirt's binding (tap+bridge+NAT), the guest on a veth in the bridge.
# bench_masquerade_pod SYSTEM MTU MESH: the pod's side of both masquerade systems: the bridge,
# the NAT rules, and with MESH the redirect of the guest's TCP to the sidecar.
bench_masquerade_pod() {
	local s=$1 mtu=$2 mesh=$3 p
	p=$(pod_ns "$s")
	ip -n "$p" link add k6t-eth0 type bridge
	ip -n "$p" addr add 10.0.2.1/24 dev k6t-eth0
	ip -n "$p" link set k6t-eth0 mtu "$mtu" up
	ip netns exec "$p" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$p" nft -f - <<'NFT'
table ip kubevirt {
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		ip saddr 10.0.2.0/24 oifname "eth0" masquerade
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
	}
}
NFT
	if [ "$mesh" = 1 ]; then
		ip netns exec "$p" nft add rule ip kubevirt prerouting \
			iifname k6t-eth0 meta l4proto tcp redirect to :15001
		bench_sidecar_up "$s" capture
	fi
}
bench_masquerade_pod_down() {
	bench_sidecar_down "$1"
	ip netns exec "$(pod_ns "$1")" nft delete table ip kubevirt 2>/dev/null || true
	ip -n "$(pod_ns "$1")" link del k6t-eth0 2>/dev/null || true
}
sys_up_masquerade() {
	local mtu=$1 mesh=$2 p g
	p=$(pod_ns masquerade)
	g=$(guest_ns masquerade)
	bench_masquerade_pod masquerade "$mtu" "$mesh"
	ip link add "$E2E_TAG-mv" netns "$p" type veth peer name eth0 netns "$g"
	ip -n "$p" link set "$E2E_TAG-mv" master k6t-eth0
	ip -n "$p" link set "$E2E_TAG-mv" mtu "$mtu" up
	ip -n "$g" link set eth0 mtu "$mtu" up
	ip -n "$g" addr add 10.0.2.15/24 dev eth0
	ip -n "$g" route add default via 10.0.2.1
	SYS_PID_masquerade=
}
sys_down_masquerade() {
	ip -n "$(pod_ns masquerade)" link del "$E2E_TAG-mv" 2>/dev/null || true
	bench_masquerade_pod_down masquerade
}
gx_masquerade() { ip netns exec "$(guest_ns masquerade)" "$@"; }

# --- masquerade-vm: masquerade's pod, the guest behind the VM model instead of a veth.
# SYS_PID is the VM model (guest driver and vhost-net stand-in: both sides of the rings).
sys_up_masquerade_vm() {
	local mtu=$1 mesh=$2 p g
	p=$(pod_ns masquerade-vm)
	g=$(guest_ns masquerade-vm)
	bench_masquerade_pod masquerade-vm "$mtu" "$mesh"
	e2e_bg vufront-masquerade-vm "$p" "$VUFRONT" tap2tap --tap eth0 --netns "/run/netns/$g" \
		--device-tap "$E2E_TAG-vt" --device-netns "/run/netns/$p" --mtu "$mtu" \
		--offload "$BENCH_VM_OFFLOAD" --turnaround --timeout 100000
	SYS_PID_masquerade_vm=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/vufront-masquerade-vm.log" '^VUFRONT-READY' 10 ||
		e2e_fail "vu-frontend tap2tap did not start"
	ip -n "$p" link set "$E2E_TAG-vt" master k6t-eth0
	ip -n "$g" addr add 10.0.2.15/24 dev eth0
	ip -n "$g" route add default via 10.0.2.1
}
sys_down_masquerade_vm() {
	bench_kill "${SYS_PID_masquerade_vm:-}"
	bench_masquerade_pod_down masquerade-vm
}
gx_masquerade_vm() { ip netns exec "$(guest_ns masquerade-vm)" "$@"; }

# --- meshslirp through its tap backend.
bench_meshslirp_args() {
	local mtu=$1 mesh=$2
	BENCH_MS_ARGS=(--mtu "$mtu" --log-level warning)
	# libslirp's path, named, with the sidecar and without: the -k systems add --steer-stack
	# kernel after it (the last one wins), the path the default (auto) takes wherever it can
	# be set up (without a sidecar too, since 2026-12-07).
	BENCH_MS_ARGS+=(--steer-stack slirp)
	[ "$mesh" = 1 ] && BENCH_MS_ARGS+=(--outbound-proxy 127.0.0.1:15001)
	return 0
}
bench_guest_addr() {
	local g=$1
	ip -n "$g" addr add 10.0.2.15/24 dev tap0
	ip -n "$g" route add default via 10.0.2.2
}
sys_up_meshslirp_tap() {
	local mtu=$1 mesh=$2 p g
	p=$(pod_ns meshslirp-tap)
	g=$(guest_ns meshslirp-tap)
	bench_meshslirp_args "$mtu" "$mesh"
	[ "$mesh" = 1 ] && bench_sidecar_up meshslirp-tap proxy
	MESHSLIRP_PID=
	NS_POD=$p e2e_start_meshslirp meshslirp-tap --tap tap0 --netns "/run/netns/$g" "${BENCH_MS_ARGS[@]}"
	bench_guest_addr "$g"
	SYS_PID_meshslirp_tap=$MESHSLIRP_PID
}
sys_down_meshslirp_tap() {
	bench_kill "${SYS_PID_meshslirp_tap:-}"
	bench_sidecar_down meshslirp-tap
	ip -n "$(guest_ns meshslirp-tap)" link del tap0 2>/dev/null || true
}
gx_meshslirp_tap() { ip netns exec "$(guest_ns meshslirp-tap)" "$@"; }

# --- meshslirp through its vhost-user backend, the guest behind the VM model (vu-frontend tap).
# SYS_PID is the daemon; BENCH_VM_PID_<system> the VM model (the guest driver side only).
# meshslirp-vu-alt is the same system with extra daemon options and environment
# (BENCH_ALT_ARGS, BENCH_ALT_ENV="VAR=value ..."), or another build of the daemon
# (BENCH_ALT_MESHSLIRP=path): an A/B of one lever in one run.
bench_vu_up() {
	local s=$1 mtu=$2 mesh=$3 p g sock="$E2E_TMP/$1.sock" v=${1//-/_}
	local -a extra=() envs=()
	p=$(pod_ns "$s")
	g=$(guest_ns "$s")
	bench_meshslirp_args "$mtu" "$mesh"
	if [ "$s" = meshslirp-vu-alt ]; then
		read -r -a extra <<<"${BENCH_ALT_ARGS:-}"
		read -r -a envs <<<"${BENCH_ALT_ENV:-}"
	fi
	case $s in
	meshslirp-vu-k | meshslirp-vu-kunix) extra+=(--steer-stack kernel) ;;
	meshslirp-vu-kpoll)
		extra+=(--steer-stack kernel --busy-poll "${BENCH_BUSY_POLL_US:-200}")
		;;
	meshslirp-vu-kauto)
		extra+=(--steer-stack kernel --busy-poll auto)
		;;
	esac
	if [ "$s" = meshslirp-vu-unix ] || [ "$s" = meshslirp-vu-kunix ]; then
		# The last --outbound-proxy wins: the unix leg replaces 127.0.0.1:15001.
		[ "$mesh" = 1 ] && extra+=(--outbound-proxy "unix:$(bench_unix_out "$s")")
		extra+=(--expose "unix:$(bench_unix_in "$s"):5201" --inbound-proxy-protocol required)
		[ "$mesh" = 1 ] && bench_sidecar_up "$s" unix
	else
		[ "$mesh" = 1 ] && bench_sidecar_up "$s" proxy
	fi
	NS_POD=$p MESHSLIRP_ENV="${envs[*]}" \
		MESHSLIRP=$([ "$s" = meshslirp-vu-alt ] && echo "${BENCH_ALT_MESHSLIRP:-$MESHSLIRP}" ||
			echo "$MESHSLIRP") \
		e2e_start_meshslirp "$s" --vhost-user "$sock" "${BENCH_MS_ARGS[@]}" "${extra[@]}"
	eval "SYS_PID_$v=$MESHSLIRP_PID"
	e2e_bg "vufront-$s" "$p" "$VUFRONT" tap --tap tap0 --netns "/run/netns/$g" \
		--socket "$sock" --mtu "$mtu" --offload "$BENCH_VM_OFFLOAD" --turnaround --timeout 100000
	eval "BENCH_VM_PID_$v=$E2E_LAST_PID"
	e2e_wait_for "$E2E_TMP/vufront-$s.log" '^VUFRONT-READY' 10 ||
		e2e_fail "vu-frontend tap did not start: $(cat "$E2E_TMP/vufront-$s.log")"
	bench_guest_addr "$g"
}
bench_vu_down() {
	local v=${1//-/_} vm pid
	vm="BENCH_VM_PID_$v"
	pid="SYS_PID_$v"
	bench_kill "${!vm:-}"
	bench_kill "${!pid:-}"
	bench_sidecar_down "$1"
}
sys_up_meshslirp_vu() { bench_vu_up meshslirp-vu "$@"; }
sys_down_meshslirp_vu() { bench_vu_down meshslirp-vu; }
gx_meshslirp_vu() { ip netns exec "$(guest_ns meshslirp-vu)" "$@"; }
sys_up_meshslirp_vu_alt() { bench_vu_up meshslirp-vu-alt "$@"; }
sys_down_meshslirp_vu_alt() { bench_vu_down meshslirp-vu-alt; }
gx_meshslirp_vu_alt() { ip netns exec "$(guest_ns meshslirp-vu-alt)" "$@"; }
sys_up_meshslirp_vu_unix() { bench_vu_up meshslirp-vu-unix "$@"; }
sys_down_meshslirp_vu_unix() { bench_vu_down meshslirp-vu-unix; }
gx_meshslirp_vu_unix() { ip netns exec "$(guest_ns meshslirp-vu-unix)" "$@"; }
sys_up_meshslirp_vu_k() { bench_vu_up meshslirp-vu-k "$@"; }
sys_down_meshslirp_vu_k() { bench_vu_down meshslirp-vu-k; }
gx_meshslirp_vu_k() { ip netns exec "$(guest_ns meshslirp-vu-k)" "$@"; }
sys_up_meshslirp_vu_kunix() { bench_vu_up meshslirp-vu-kunix "$@"; }
sys_down_meshslirp_vu_kunix() { bench_vu_down meshslirp-vu-kunix; }
gx_meshslirp_vu_kunix() { ip netns exec "$(guest_ns meshslirp-vu-kunix)" "$@"; }
sys_up_meshslirp_vu_kpoll() { bench_vu_up meshslirp-vu-kpoll "$@"; }
sys_down_meshslirp_vu_kpoll() { bench_vu_down meshslirp-vu-kpoll; }
gx_meshslirp_vu_kpoll() { ip netns exec "$(guest_ns meshslirp-vu-kpoll)" "$@"; }
sys_up_meshslirp_vu_kauto() { bench_vu_up meshslirp-vu-kauto "$@"; }
sys_down_meshslirp_vu_kauto() { bench_vu_down meshslirp-vu-kauto; }
gx_meshslirp_vu_kauto() { ip netns exec "$(guest_ns meshslirp-vu-kauto)" "$@"; }

# --- meshslirp through its stream backend, a frame pump playing QEMU.
sys_up_meshslirp() {
	local mtu=$1 mesh=$2 p g sock="$E2E_TMP/meshslirp.sock"
	p=$(pod_ns meshslirp)
	g=$(guest_ns meshslirp)
	bench_meshslirp_args "$mtu" "$mesh"
	[ "$mesh" = 1 ] && bench_sidecar_up meshslirp proxy
	NS_POD=$p e2e_start_meshslirp meshslirp --socket "$sock" "${BENCH_MS_ARGS[@]}"
	SYS_PID_meshslirp=$MESHSLIRP_PID
	e2e_bg pump "$p" "$MSTOOL" pump --tap tap0 --netns "/run/netns/$g" --socket "$sock" \
		--mtu "$mtu" --timeout 100000
	BENCH_PUMP_PID=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/pump.log" '^PUMPING' 10 || e2e_fail "frame pump did not start"
	bench_guest_addr "$g"
}
sys_down_meshslirp() {
	bench_kill "${BENCH_PUMP_PID:-}"
	bench_kill "${SYS_PID_meshslirp:-}"
	bench_sidecar_down meshslirp
	ip -n "$(guest_ns meshslirp)" link del tap0 2>/dev/null || true
}
gx_meshslirp() { ip netns exec "$(guest_ns meshslirp)" "$@"; }

# --- slirp4netns: stock libslirp on a tap.
sys_up_slirp4netns() {
	local mtu=$1 mesh=$2 p g
	p=$(pod_ns slirp4netns)
	g=$(guest_ns slirp4netns)
	if [ "$mesh" = 1 ]; then
		bench_capture_up slirp4netns
		bench_sidecar_up slirp4netns capture
	fi
	e2e_bg slirp4netns "$p" slirp4netns --configure --mtu="$mtu" --disable-host-loopback \
		--netns-type=path "/run/netns/$g" tap0
	SYS_PID_slirp4netns=$E2E_LAST_PID
	local i
	for i in $(seq 1 50); do
		ip -n "$g" addr show tap0 2>/dev/null | grep -q 'inet ' && return 0
		sleep 0.1
	done
	e2e_fail "slirp4netns did not configure tap0"
}
sys_down_slirp4netns() {
	bench_kill "${SYS_PID_slirp4netns:-}"
	bench_sidecar_down slirp4netns
	bench_capture_down slirp4netns
}
gx_slirp4netns() { ip netns exec "$(guest_ns slirp4netns)" "$@"; }

# --- pasta (passt): refuses root's namespaces, so it runs as nobody and creates its own
# user and network namespace; root enters that one to run the guest-side commands.
sys_up_pasta() {
	local mtu=$1 mesh=$2 p i
	p=$(pod_ns pasta)
	if [ "$mesh" = 1 ]; then
		bench_capture_up pasta
		bench_sidecar_up pasta capture
	fi
	# The pod has no default route (nothing leaves the test): name pasta's interface,
	# gateway and guest address explicitly.  The gateway must not be the node's
	# address, which pasta would otherwise map to the pod's loopback.  pasta forks: its own PID comes from
	# --pid, written into a directory nobody may write to.
	chmod o+x "$E2E_TMP"
	mkdir -p "$E2E_TMP/pasta"
	chmod 1777 "$E2E_TMP/pasta"
	rm -f "$E2E_TMP/pasta/pid"
	# If start-up fails half-way, the PID file still names the daemon to stop.
	E2E_CLEANUP_HOOKS+=("f='$E2E_TMP/pasta/pid'; [ -s \"\$f\" ] && { pkill -KILL -P \$(cat \"\$f\"); kill -KILL \$(cat \"\$f\"); } 2>/dev/null")
	e2e_bg pasta "$p" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		pasta --config-net -i eth0 -g 198.18.0.254 --no-map-gw -a 198.18.0.115 -n 24 --mtu "$mtu" \
		--foreground --pid "$E2E_TMP/pasta/pid" -t none -u none -T none -U none \
		-- sleep 100000
	SYS_PID_pasta=
	BENCH_PASTA_NS_PID=
	for i in $(seq 1 50); do
		[ -s "$E2E_TMP/pasta/pid" ] && SYS_PID_pasta=$(cat "$E2E_TMP/pasta/pid")
		[ -n "$SYS_PID_pasta" ] && BENCH_PASTA_NS_PID=$(pgrep -P "$SYS_PID_pasta" -x sleep || true)
		[ -n "$BENCH_PASTA_NS_PID" ] && nsenter -t "$BENCH_PASTA_NS_PID" -n ip -4 addr show |
			grep -q 'inet .* scope global' && break
		sleep 0.1
	done
	[ -n "$SYS_PID_pasta" ] && [ -n "$BENCH_PASTA_NS_PID" ] ||
		e2e_fail "pasta did not start: $(cat "$E2E_TMP/pasta.log")"
	# Both are stopped by PID on exit, whatever happens.
	E2E_PIDS+=("$SYS_PID_pasta" "$BENCH_PASTA_NS_PID")
}
sys_down_pasta() {
	bench_kill "${BENCH_PASTA_NS_PID:-}"
	# pasta may take long to honour SIGTERM; it holds nothing worth a clean exit.
	[ -n "${SYS_PID_pasta:-}" ] && kill -KILL "$SYS_PID_pasta" 2>/dev/null || true
	bench_sidecar_down pasta
	bench_capture_down pasta
}
gx_pasta() { nsenter -t "$BENCH_PASTA_NS_PID" -n -- "$@"; }

# bench_turnaround SYSTEM: "out_p50 out_p99 in_p50 in_p99" (µs) from the VM model's exit line
# of a VM-model system brought down, or nothing.
bench_turnaround() {
	local f="$E2E_TMP/vufront-$1.log" line
	[ -f "$f" ] || return 0
	line=$(e2e_field "$f" '^VUFRONT frames_tx')
	case "$line" in *turn_out_p50_us=*) ;; *) return 0 ;; esac
	echo "$line" | sed 's/.*turn_out_p50_us=\([0-9]*\) turn_out_p99_us=\([0-9]*\) turn_in_n=[0-9]* turn_in_p50_us=\([0-9]*\) turn_in_p99_us=\([0-9]*\).*/\1 \2 \3 \4/'
}

sys_up() { "sys_up_${1//-/_}" "$2" "$3"; }
sys_down() { "sys_down_${1//-/_}"; }
gx() { local s=$1; shift; "gx_${s//-/_}" "$@"; }
sys_pid() { local v="SYS_PID_${1//-/_}"; echo "${!v:-}"; }
# The VM model's process of a VM-model system: masquerade-vm's is its whole data path (the
# guest's driver and the vhost-net stand-in), meshslirp-vu's the guest's driver only.
sys_vm_pid() {
	case "$1" in
	masquerade-vm) echo "${SYS_PID_masquerade_vm:-}" ;;
	meshslirp-vu) echo "${BENCH_VM_PID_meshslirp_vu:-}" ;;
	meshslirp-vu-alt) echo "${BENCH_VM_PID_meshslirp_vu_alt:-}" ;;
	meshslirp-vu-unix) echo "${BENCH_VM_PID_meshslirp_vu_unix:-}" ;;
	meshslirp-vu-k) echo "${BENCH_VM_PID_meshslirp_vu_k:-}" ;;
	meshslirp-vu-kunix) echo "${BENCH_VM_PID_meshslirp_vu_kunix:-}" ;;
	meshslirp-vu-kpoll) echo "${BENCH_VM_PID_meshslirp_vu_kpoll:-}" ;;
	meshslirp-vu-kauto) echo "${BENCH_VM_PID_meshslirp_vu_kauto:-}" ;;
	esac
}
