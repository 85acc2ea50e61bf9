# lib.sh - shared plumbing for end-to-end tests: namespaces, processes, bounded waits, guests.
#
# Source it from a test script.  It creates a private topology of network
# namespaces with no route out:
#
#   node ns (198.18.0.1/24) ──veth── pod ns (198.18.0.2/24, meshslirp runs here)
#
# Only 198.18.0.0/24 (RFC 2544 benchmarking space) and loopback exist there.
# Every process started with e2e_bg is recorded and stopped by PID on exit;
# every namespace is deleted on exit.  Every wait is bounded.
#
# Environment: MESHSLIRP (daemon binary), MSTOOL (test peer), E2E_KEEP=1 to
# keep the work directory for debugging.

set -euo pipefail

E2E_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_ROOT=$(cd "$E2E_SRC/../.." && pwd)
: "${MESHSLIRP:=$E2E_ROOT/build/meshslirp}"
: "${MSTOOL:=$E2E_ROOT/build/tests/mstool}"
E2E_NAME=$(basename "$0" .sh)
E2E_TMP=$(mktemp -d "/tmp/ms-e2e-$E2E_NAME.XXXXXX")
E2E_PIDS=()
E2E_NETNS=()
E2E_TAG="ms$$"
NS_NODE="$E2E_TAG-node"
NS_POD="$E2E_TAG-pod"
NODE_IP=198.18.0.1
POD_IP=198.18.0.2

e2e_log() { printf '[%s %s] %s\n' "$E2E_NAME" "$(date +%T)" "$*"; }
# e2e_fail WHY : fail the test: say why, gather what tells whose side stopped (e2e_diag, into
# diag.txt, printed first, up to 300 lines; GUEST-WEDGED for a guest that stopped transmitting
# on its own, which rerun-on-guest-fault reruns), print the end of every log, exit 1.
e2e_fail() {
	local log why
	e2e_log "FAIL: $*"
	e2e_diag >"$E2E_TMP/diag.txt" 2>&1 || true
	for log in "$E2E_TMP"/*.log; do
		why=$(e2e_guest_wedged "$log" "$E2E_TMP/diag.txt") &&
			e2e_log "GUEST-WEDGED $(basename "$log"): $why"
	done
	echo "----- diag.txt (e2e_diag: the guests' virtqueues, the daemon's counters, TCP sockets)"
	head -n 300 "$E2E_TMP/diag.txt"
	for log in "$E2E_TMP"/*.log; do
		[ -f "$log" ] || continue
		echo "----- $(basename "$log") (last 40 lines)"
		tail -n 40 "$log" | tr -d '\r'
	done
	exit 1
}

# e2e_monitor SOCKET CMD... : each CMD to a QEMU monitor, its answers printed (the monitor's
# echo of each keystroke, with escapes, dropped); 10 s at most.
e2e_monitor() {
	local mon=$1
	shift
	printf '%s\n' "$@" | timeout 10 socat -t 2 - "UNIX-CONNECT:$mon" 2>/dev/null | tr -d '\r' |
		grep -av -e $'\e' -e '^QEMU .* monitor' -e '^(qemu)' || true
}

# e2e_diag : what a failed test leaves to tell whose side stopped, printed.  For each guest
# still running, its CPU, and for its NIC's two virtqueues (0: receive, 1: transmit) the
# indices in guest memory: avail.idx (where the guest's offers end) against used.idx (where
# the backend's returns end), and the event indices each side asked to be woken at
# (used_event, the guest's; avail_event, the backend's).  A transmit queue with avail.idx
# ahead of used.idx: the backend stopped taking the guest's frames; a receive queue with
# avail.idx at used.idx: the guest stopped giving buffers.  The guest's own ticks (GUEST-NETSTAT,
# in its log) say whether it still runs.  Then every TCP socket in the test's namespaces, with
# queues and timers.  Each step bounded.
e2e_diag() {
	local mon ns q st num avail used x be
	local path=/machine/peripheral/nic0/virtio-backend
	for mon in "${!E2E_MONITOR_NETDEV[@]}"; do
		[ -S "$mon" ] || continue
		echo "== $(basename "$mon"): $(e2e_monitor "$mon" 'info status' 'info cpus' | tr '\n' ' ')"
		# The backend the guest was booted with, not what QEMU reports now: a vhost-user
		# daemon that went away must not pass for QEMU's own.
		be=${E2E_MONITOR_NETDEV[$mon]/stream/qemu}
		for q in 0 1; do
			# With vhost-user QEMU's own queue state is unused; the rings' guest addresses
			# are in the vhost status.
			st=$(e2e_monitor "$mon" "info virtio-vhost-queue-status $path $q")
			if grep -q avail_phys <<<"$st"; then
				avail=$(awk '/avail_phys:/ { print $2 }' <<<"$st")
				used=$(awk '/used_phys:/ { print $2 }' <<<"$st")
			else
				st=$(e2e_monitor "$mon" "info virtio-queue-status $path $q")
				avail=$(awk '$1 == "avail:" { print $2 }' <<<"$st")
				used=$(awk '$1 == "used:" { print $2 }' <<<"$st")
			fi
			num=$(awk '$1 == "num:" { print $2; exit }' <<<"$st")
			if ! [[ $avail =~ ^0x[0-9a-f]+$ && $used =~ ^0x[0-9a-f]+$ && $num =~ ^[0-9]+$ ]] ||
				[ "$((avail))" = 0 ]; then
				echo "$(basename "$mon") queue $q: no ring ($(tr '\n' ' ' <<<"$st" | cut -c1-200))"
				continue
			fi
			x=$(e2e_monitor "$mon" "xp /2hx $avail" "xp /2hx $used" \
				"xp /1hx $((avail + 4 + 2 * num))" "xp /1hx $((used + 4 + 8 * num))" |
				sed 's/^[0-9a-fx]*: *//' | tr '\n' ' ')
			set -- $x
			echo "$(basename "$mon") queue $q (num $num, backend $be): avail.flags=${1:-?} avail.idx=${2:-?} used.flags=${3:-?}" \
				"used.idx=${4:-?} used_event=${5:-?} avail_event=${6:-?}" \
				"$(awk '/last_avail_idx:|used_idx:|inuse:/ { printf "qemu.%s%s ", $1, $2 }' <<<"$st")"
		done
	done
	# The daemon's counters that are not 0 (without e2e_scrape, which fails the test).
	if [ -n "${METRICS:-}" ] && [ -n "${NS_POD:-}" ]; then
		echo "== the daemon's non-zero counters at $METRICS"
		{ timeout 10 ip netns exec "$NS_POD" "$MSTOOL" http-get --connect "$METRICS" \
			--path /metrics --timeout 5 2>&1 | grep -v -e '^#' -e ' 0$' | head -n 100; } || true
	fi
	for ns in "${E2E_NETNS[@]}"; do
		echo "== TCP sockets in $ns"
		{ timeout 5 ip netns exec "$ns" ss -tnmio state connected 2>&1 | head -n 60; } || true
	done
}

# e2e_guest_wedged LOG DIAG : true, with the evidence printed, if the guest whose console is
# LOG (its monitor's queues and the daemon's counters in DIAG, e2e_diag's output) stopped
# reclaiming the frames it transmitted, so that nothing it sends leaves it.  All of:
#  * three of its ticks in a row, 20 s or more apart end to end, in which its NIC reclaimed no
#    frame (virtio-net counts tx_packets on reclaim), while TCP held back retransmissions
#    because their frames were still in the guest's own queue (TCPSpuriousRtxHostQueues rose:
#    the kernel's own word that sent frames were not reclaimed) and one TCP connection had
#    bytes queued under its retransmission timer (01) in every tick;
#  * the backend had taken every frame the guest offered (transmit queue used.idx = avail.idx),
#    or, with QEMU's own backend only, QEMU had left the frames the guest offered after the
#    last it took in the ring, idle (none in flight, qemu.inuse 0, its last_avail_idx at
#    used.idx) though it had asked to be notified past used.idx (avail_event = used.idx): a
#    notification from the guest that QEMU never acted on, which no daemon takes part in
#    (seen once, CI of 2026-12-06, guest_unix: 27 frames left, the daemon reading, not
#    congested); with our backend that shape is the daemon's and fails;
#  * with our vhost-user backend, the daemon had requested an interrupt for every used entry
#    the guest asked one for: its last call published a used index past the guest's used_event
#    (meshslirp_vhost_user_last_call_used_index{ring="tx"}), or none was due (used_event =
#    used.idx).  A daemon that published used entries without the interrupt asked for would
#    leave the guest in this same state, and does not match.
# With QEMU's own backend the interrupt is QEMU's.  Seen under TCG on 2026-12-05 with both
# backends (rerun-on-guest-fault's header).
e2e_guest_wedged() {
	local log=$1 diag=$2 mon q avail used ev num call backend
	local how="the backend had taken every frame offered"
	mon=$(basename "${log%.log}").mon
	q=$(grep -a "^$mon queue 1 " "$diag" 2>/dev/null | head -n 1)
	[[ $q =~ num\ ([0-9]+),\ backend\ ([a-z-]+).*avail\.idx=(0x[0-9a-f]+).*used\.idx=(0x[0-9a-f]+)\ used_event=(0x[0-9a-f]+) ]] ||
		return 1
	num=${BASH_REMATCH[1]} backend=${BASH_REMATCH[2]} avail=$((BASH_REMATCH[3]))
	used=$((BASH_REMATCH[4])) ev=$((BASH_REMATCH[5]))
	if [ "$avail" != "$used" ]; then
		[ "$backend" = qemu ] &&
			[[ $q =~ avail_event=(0x[0-9a-f]+)\ qemu\.inuse:0\ qemu\.used_idx:([0-9]+)\ qemu\.last_avail_idx:([0-9]+) ]] &&
			[ $((BASH_REMATCH[1])) = "$used" ] && [ "${BASH_REMATCH[2]}" = "$used" ] &&
			[ "${BASH_REMATCH[3]}" = "$used" ] || return 1
		how="QEMU left the $(((avail - used) & 0xffff)) frames offered after the last it took, idle, though it had asked to be notified of them"
	fi
	if [ "$backend" = vhost-user ] && [ "$ev" != "$used" ]; then
		call=$(awk '$1 == "meshslirp_vhost_user_last_call_used_index{ring=\"tx\"}" { print $2 }' "$diag")
		# Past used_event: within the ring's size after it, mod 65536 (0: absent or never).
		[ $(((${call:-0} - ev) & 0xffff)) -ge 1 ] && [ $(((${call:-0} - ev) & 0xffff)) -le "$num" ] ||
			return 1
	fi
	tr -d '\r' <"$log" | awk -v ring="$q" -v how="$how" '
	# GUEST-NETSTAT up=S eth0 rx=N tx=N irq=N spur=N tcp=LOCAL>REMOTE/ST/TXQ:RXQ/TR:WHEN/RETR/CWND ...
	match($0, /GUEST-NETSTAT up=[0-9.]+ eth0 rx=[0-9]+ tx=[0-9]+ irq=[0-9,]* spur=[0-9]+ tcp=/) {
		n = split(substr($0, RSTART), f, " ")
		k++
		up[k] = substr(f[2], 4) + 0
		tx[k] = substr(f[5], 4)
		spur[k] = substr(f[7], 6) + 0
		for (i = 8; i <= n; i++) {
			if (i == 8)
				f[i] = substr(f[i], 5)
			if (split(f[i], s, "/") < 4)
				continue
			sock[k, s[1]] = s[2] "/" substr(s[3], 1, 8) "/" substr(s[4], 1, 2)
			keys[s[1]] = 1
		}
	}
	# Established or closing with data (01, 04 FIN_WAIT1, 08, 09, 0B), bytes queued, the
	# retransmission timer running.
	function stuck(v, p) {
		split(v, p, "/")
		return p[1] ~ /^(01|04|08|09|0B)$/ && p[2] != "00000000" && p[3] == "01"
	}
	END {
		for (j = 1; j + 2 <= k; j++) {
			if (tx[j] != tx[j + 1] || tx[j] != tx[j + 2] || up[j + 2] - up[j] < 20 ||
			    spur[j + 2] <= spur[j])
				continue
			for (key in keys) {
				if (!stuck(sock[j, key]) || !stuck(sock[j + 1, key]) || !stuck(sock[j + 2, key]))
					continue
				printf "the guest stopped transmitting on its own: from up=%s to up=%s s its NIC " \
					"reclaimed no sent frame (tx=%s) while TCP held back %d retransmissions whose " \
					"frames were still in its own queue, TCP %s with bytes queued (%s); %s " \
					"(%s)\n",
					up[j], up[j + 2], tx[j], spur[j + 2] - spur[j], key, sock[j + 2, key], how,
					ring
				exit 0
			}
		}
		exit 1
	}'
}

# e2e_skip WHY : skip (exit 77, meson's skip code) when the test cannot run here at all; with
# CI=true a skip would hide a test that CI must run, so it fails instead.
e2e_skip() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: $E2E_NAME $1 (CI=true: no skips)"
		exit 1
	fi
	echo "SKIP: $E2E_NAME $1"
	exit 77
}

e2e_require_root() {
	[ "$(id -u)" = 0 ] || e2e_skip "needs root (network namespaces)"
}

# e2e_require CMD... : skip unless every command is installed.
e2e_require() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || e2e_skip "needs $c (scripts/bootstrap installs it)"
	done
}

# Commands run first at cleanup (for processes whose PIDs are learned late).
E2E_CLEANUP_HOOKS=()

# e2e_stop_all : every process in E2E_PIDS sent SIGTERM, given 5 s each, then SIGKILL, reaped.
e2e_stop_all() {
	local pid i
	for pid in "${E2E_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${E2E_PIDS[@]}"; do
		for i in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}

e2e_cleanup() {
	local rc=$? hook
	for hook in "${E2E_CLEANUP_HOOKS[@]}"; do
		eval "$hook" || true
	done
	e2e_stop_all
	for ns in "${E2E_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	if [ "${E2E_KEEP:-0}" = 1 ] || [ $rc != 0 ]; then
		e2e_log "work directory kept: $E2E_TMP"
	else
		rm -rf "$E2E_TMP"
	fi
	return $rc
}
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM

e2e_netns_add() {
	ip netns add "$1"
	E2E_NETNS+=("$1")
	ip -n "$1" link set lo up
}

# node <-> pod over a veth pair; no default route anywhere.
e2e_topology() {
	e2e_netns_add "$NS_NODE"
	e2e_netns_add "$NS_POD"
	ip link add "$E2E_TAG-n" netns "$NS_NODE" type veth peer name "$E2E_TAG-p" netns "$NS_POD"
	ip -n "$NS_NODE" addr add "$NODE_IP/24" dev "$E2E_TAG-n"
	ip -n "$NS_POD" addr add "$POD_IP/24" dev "$E2E_TAG-p"
	ip -n "$NS_NODE" link set "$E2E_TAG-n" up
	ip -n "$NS_POD" link set "$E2E_TAG-p" up
	# libslirp's ICMP echo uses unprivileged ping sockets.
	ip netns exec "$NS_POD" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
}

# e2e_vm_model_topology : e2e_topology, plus the guest namespace NS_GUEST of a VM model
# (vu-frontend tap: a namespace's own TCP behind virtio rings, as a guest's driver).
e2e_vm_model_topology() {
	: "${VUFRONT:=$E2E_ROOT/build/tests/vu-frontend}"
	e2e_topology
	NS_GUEST="$E2E_TAG-guest"
	e2e_netns_add "$NS_GUEST"
}

# e2e_vm_model_up SOCKET SECONDS : the VM model on the daemon's --vhost-user SOCKET for at most
# SECONDS, its tap0 at 10.0.2.15 with the gateway 10.0.2.2 as default route; sets VM_MODEL_PID
# (output in $E2E_TMP/tap.log).
e2e_vm_model_up() {
	e2e_bg tap "$NS_POD" "$VUFRONT" tap --tap tap0 --netns "/run/netns/$NS_GUEST" \
		--socket "$1" --offload tso --timeout "$2"
	VM_MODEL_PID=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/tap.log" '^VUFRONT-READY' 10 || e2e_fail "VM model not ready"
	ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
	ip -n "$NS_GUEST" route add default via 10.0.2.2
}

# e2e_bg NAME NETNS CMD... : run CMD in NETNS, output to $E2E_TMP/NAME.log.
# Sets E2E_LAST_PID.
e2e_bg() {
	local name=$1 ns=$2
	shift 2
	ip netns exec "$ns" "$@" >"$E2E_TMP/$name.log" 2>&1 &
	E2E_LAST_PID=$!
	E2E_PIDS+=("$E2E_LAST_PID")
}

# e2e_lines FILE : FILE's complete lines, CRs dropped; fails if FILE is missing.  QEMU's serial
# port writes the guest's console a byte at a time, so a log's last line may be cut mid-way: a
# wait that matched its start, then a field read from it, would see the rest as missing
# ("GUEST-UDP bytes=" is 16 bytes, one burst of the guest's UART, and its digits the next).
# One read of the file, so the cut and the lines are of the same moment.
e2e_lines() {
	[ -f "$1" ] && perl -ne 's/\r//g; print if /\n\z/' "$1"
}

# e2e_wait_lines FILE REGEX SECONDS PER_SECOND : poll PER_SECOND times a second until FILE
# has a complete line matching REGEX.  (No pipe into grep -q: its early exit could fail the
# pipeline by SIGPIPE under pipefail, and so would grep >/dev/null, which stops at the first
# match too.)
e2e_wait_lines() {
	local file=$1 re=$2 secs=$3 rate=$4 step i
	step=$(awk -v r="$rate" 'BEGIN { print 1 / r }')
	for i in $(seq 1 $((secs * rate))); do
		grep -Eq -- "$re" < <(e2e_lines "$file") && return 0
		sleep "$step"
	done
	return 1
}

# e2e_wait_for FILE REGEX SECONDS : poll every 100 ms until FILE has a complete line matching
# REGEX.
e2e_wait_for() { e2e_wait_lines "$1" "$2" "$3" 10; }

# e2e_count FILE REGEX : how many complete lines of FILE match REGEX (0 without FILE).
e2e_count() {
	local n
	n=$(grep -Ec -- "$2" < <(e2e_lines "$1")) || true
	echo "${n:-0}"
}

# e2e_wait_count FILE REGEX N SECONDS : wait until N complete lines of FILE match REGEX (a
# log written at each flow's end: the last may land after the client saw its reply; a console
# log's last line may still be coming); prints the count.
e2e_wait_count() {
	local file=$1 re=$2 want=$3 secs=$4 n=0 i
	for i in $(seq 1 $((secs * 10))); do
		n=$(e2e_count "$file" "$re")
		[ "$n" -ge "$want" ] && break
		sleep 0.1
	done
	echo "$n"
}

# e2e_wait_boots LOG N QEMU_PID SECONDS : wait until the guest console LOG has N complete
# agent start lines (one per boot); fails the test if QEMU_PID exits first, or on a count
# other than N after SECONDS.
e2e_wait_boots() {
	local log=$1 want=$2 pid=$3 secs=$4 i
	for i in $(seq 1 $((secs * 2))); do
		[ "$(e2e_count "$log" 'GUEST-AGENT boot_id=')" -ge "$want" ] && break
		kill -0 "$pid" 2>/dev/null || e2e_fail "QEMU exited on the guest's reboot"
		sleep 0.5
	done
	[ "$(e2e_count "$log" 'GUEST-AGENT boot_id=')" = "$want" ] ||
		e2e_fail "the guest did not boot again: $(e2e_count "$log" 'GUEST-AGENT boot_id=') agent starts in $log, want $want"
}

# e2e_field FILE REGEX : print the first line of FILE matching REGEX, from the
# match on (console escape codes before it and CRs dropped).
e2e_field() {
	e2e_lines "$1" | grep -Eo -m1 -- "$2.*" || true
}

# e2e_wait_listening NS PORT SECONDS [tcp|udp] : wait until something listens on TCP PORT,
# or has UDP PORT bound, in NS (only that protocol, if given: a UDP server on the port does
# not make its TCP twin ready).  Servers started in the background are not ready at once; a
# fixed sleep loses that race on a loaded machine.
e2e_wait_listening() {
	local i protos=-tu
	case ${4:-} in tcp) protos=-t ;; udp) protos=-u ;; esac
	for i in $(seq 1 $(($3 * 10))); do
		[ -n "$(ip netns exec "$1" ss -Hln "$protos" "sport = :$2")" ] && return 0
		sleep 0.1
	done
	return 1
}

# e2e_answer_server NAME NETNS PROTO ADDR:PORT BYTES TAG : a socat server in NETNS on
# ADDR:PORT (PROTO udp or tcp) that appends "TAG PROTO peer=IP:PORT" to $E2E_TMP/NAME.log
# for each asker and answers BYTES bytes ('a'), so a client can tell its answer from any
# other.  Waits until it listens; e2e_fail if it does not.
e2e_answer_server() {
	local name=$1 ns=$2 proto=$3 listen=$4 bytes=$5 tag=$6 script="$E2E_TMP/$1-$3.sh" addr
	cat >"$script" <<EOF
#!/bin/sh
# One answer of the $name server ($proto).
echo "$tag $proto peer=\$SOCAT_PEERADDR:\$SOCAT_PEERPORT" >>"$E2E_TMP/$name.log"
# The question first: exiting before socat handed it over makes socat's write fail (EPIPE)
# and end the exchange, answer unsent (seen once in CI).  It is one short write, so it is
# all in the pipe once its first byte is.
head -c 1 >/dev/null
head -c $bytes /dev/zero | tr '\\0' a
EOF
	chmod +x "$script"
	touch "$E2E_TMP/$name.log"
	case $proto in
	udp) addr=UDP4-RECVFROM:${listen##*:},bind=${listen%:*},fork,reuseaddr ;;
	tcp) addr=TCP4-LISTEN:${listen##*:},bind=${listen%:*},fork,reuseaddr ;;
	*) e2e_fail "e2e_answer_server: protocol '$proto' is neither udp nor tcp" ;;
	esac
	# -t 10: a TCP asker that sends its question and FIN together would otherwise leave the
	# script socat's default half a second to answer.
	e2e_bg "$name-$proto-server" "$ns" socat -T 10 -t 10 "$addr" EXEC:"$script"
	e2e_wait_listening "$ns" "${listen##*:}" 10 "$proto" || e2e_fail "the $name server ($proto) is not listening"
}

# e2e_wait_exit PID SECONDS : wait for PID to exit; returns its status, 124 on timeout.
e2e_wait_exit() {
	local pid=$1 secs=$2 i
	for i in $(seq 1 $((secs * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null && return 0 || return $?
		fi
		sleep 0.1
	done
	return 124
}

# e2e_kill9 PID : SIGKILL a process started here (a crash) and reap it without bash's notice.
e2e_kill9() {
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# e2e_start_meshslirp NAME ARGS... : start the daemon in the pod ns, wait for READY.
e2e_start_meshslirp() {
	local name=$1
	shift
	# Without `meson test`'s MALLOC_PERTURB_: glibc would fill every allocation with a byte,
	# making all of libslirp's 128 KiB socket buffers resident, and the RSS figures the tests
	# judge would measure that fill (1 GiB for a 4,096-socket flood), not the daemon.
	# Uninitialised reads are valgrind's job (the memcheck suite), freed memory ASan's.
	# shellcheck disable=SC2086 # MESHSLIRP_ENV: VAR=value words for env (benchmarks' A/B)
	# E2E_MESHSLIRP_WRAP: a command the daemon is exec'd through (e.g. chrt), keeping its PID.
	ip netns exec "$NS_POD" env -u MALLOC_PERTURB_ ${MESHSLIRP_ENV:-} "${E2E_MESHSLIRP_WRAP[@]}" \
		"$MESHSLIRP" --ready-fd 3 "$@" 3>"$E2E_TMP/$name.ready" >"$E2E_TMP/$name.log" 2>&1 &
	E2E_LAST_PID=$!
	E2E_PIDS+=("$E2E_LAST_PID")
	MESHSLIRP_PID=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/$name.ready" '^READY$' 10 || e2e_fail "meshslirp did not become ready"
}

# e2e_build_guest DIR SCENARIO [EXTRA...] : build a guest image into DIR.
e2e_build_guest() {
	"$E2E_ROOT/tests/guest/mkguest" "$@" >/dev/null
}

# e2e_boot_guest NAME DIR SOCKET [APPEND] : boot a guest on meshslirp's socket.
# Sets GUEST_PID; the serial console goes to $E2E_TMP/NAME.log.  A guest that reboots makes
# QEMU exit, unless E2E_GUEST_REBOOT=1 (then it boots again in the same QEMU).  With
# E2E_GUEST_PCAP=1, the guest's frames (headers only) are captured to $E2E_TMP/NAME.pcap
# (stream only: with vhost-user no frame passes through QEMU).
# E2E_GUEST_NETDEV=vhost-user connects to a --vhost-user socket instead of --socket: guest
# RAM in a shared memfd, and vectors=0 (INTx), which QEMU 7.2 needs for vhost-user under TCG
# (with MSI-X it segfaults in msix_set_vector_notifiers); E2E_GUEST_DEVICE_OPTS is appended
# to the -device options (e.g. ",host_mtu=1500").  E2E_GUEST_MEM sets the guest's RAM (default
# 256M; migrate.sh says why it takes another).  E2E_GUEST_NS runs QEMU in another namespace
# than the pod's, and the array E2E_QEMU_EXTRA adds options (a monitor, -incoming).
E2E_QEMU_EXTRA=()
# Each guest's monitor socket (e2e_diag reads them), and the netdev it was booted with:
# stream or vhost-user.
declare -A E2E_MONITOR_NETDEV=()
e2e_boot_guest() {
	local name=$1 dir=$2 sock=$3 append=${4:-} opts=(-no-reboot) net mem=${E2E_GUEST_MEM:-256M}
	local dev=virtio-net-pci,id=nic0,netdev=n0,romfile=,mac=52:54:00:12:34:56${E2E_GUEST_DEVICE_OPTS:-}
	e2e_require qemu-system-x86_64
	[ "${E2E_GUEST_REBOOT:-0}" = 1 ] && opts=()
	# A monitor of the test's own, read by e2e_diag when the test fails.
	opts+=(-monitor "unix:$E2E_TMP/$name.mon,server=on,wait=off")
	E2E_MONITOR_NETDEV["$E2E_TMP/$name.mon"]=${E2E_GUEST_NETDEV:-stream}
	[ "${E2E_GUEST_PCAP:-0}" = 1 ] &&
		opts+=(-object "filter-dump,id=dump0,netdev=n0,file=$E2E_TMP/$name.pcap,maxlen=128")
	if [ "${E2E_GUEST_NETDEV:-stream}" = vhost-user ]; then
		net=(-object "memory-backend-memfd,id=mem,size=$mem,share=on" -machine memory-backend=mem
			-chardev "socket,id=c0,path=$sock" -netdev vhost-user,id=n0,chardev=c0
			-device "$dev,vectors=0")
	else
		net=(-netdev "stream,id=n0,server=off,addr.type=unix,addr.path=$sock" -device "$dev")
	fi
	ip netns exec "${E2E_GUEST_NS:-$NS_POD}" qemu-system-x86_64 -accel tcg -m "$mem" -nographic \
		"${opts[@]}" -kernel "$dir/vmlinuz" -initrd "$dir/initramfs.cpio.gz" \
		-append "console=ttyS0 quiet panic=-1 $append" "${net[@]}" "${E2E_QEMU_EXTRA[@]}" \
		</dev/null >"$E2E_TMP/$name.log" 2>&1 &
	GUEST_PID=$!
	E2E_PIDS+=("$GUEST_PID")
}

# The guest agent (scenario-agent.sh): the guest runs the host's commands, read one per line
# from a TCP channel to $NODE_IP:$E2E_AGENT_PORT.  Exclude that port from steering
# (--exclude-outbound-port) so the channel goes direct and stays out of the flow table (on the
# kernel path it is a direct flow there: meshslirp_kernel_direct_flows_total counts it).
E2E_AGENT_PORT=7100
E2E_AGENT_FD=
E2E_AGENT_PID=

# e2e_agent_serve NAME : (re)open the channel for the next guest to connect; commands sent
# before it connects wait in a FIFO.  The server's log is $E2E_TMP/NAME.log.
e2e_agent_serve() {
	local name=$1
	e2e_agent_close
	mkfifo "$E2E_TMP/$name.fifo"
	# Opened read-write, the FIFO never reports EOF to the server between commands.
	exec {E2E_AGENT_FD}<>"$E2E_TMP/$name.fifo"
	e2e_bg "$name" "$NS_NODE" socat -u OPEN:"$E2E_TMP/$name.fifo" \
		TCP4-LISTEN:"$E2E_AGENT_PORT",bind="$NODE_IP",reuseaddr
	E2E_AGENT_PID=$E2E_LAST_PID
}

# e2e_agent CMD... : send one command line to the guest agent.
e2e_agent() { printf '%s\n' "$*" >&"$E2E_AGENT_FD"; }

# e2e_agent_close : close the channel (the guest's agent sees EOF); stops its server by PID.
e2e_agent_close() {
	if [ -n "$E2E_AGENT_PID" ]; then
		kill -TERM "$E2E_AGENT_PID" 2>/dev/null || true
		e2e_wait_exit "$E2E_AGENT_PID" 5 || true
	fi
	[ -n "$E2E_AGENT_FD" ] && exec {E2E_AGENT_FD}>&-
	E2E_AGENT_FD= E2E_AGENT_PID=
}

# e2e_agent_quit NAME : end the guest's scenario and wait (60 s) for QEMU to exit after it.
e2e_agent_quit() {
	e2e_agent quit
	e2e_wait_for "$E2E_TMP/$1.log" 'GUEST-CMD quit' 30 || e2e_fail "$1: agent did not take 'quit'"
	e2e_agent_close
	e2e_wait_exit "$GUEST_PID" 60 || e2e_fail "$1: guest did not power off"
	e2e_wait_for "$E2E_TMP/$1.log" 'GUEST-SCENARIO-EXIT rc=0' 1 || e2e_fail "$1: agent failed"
}

# e2e_pcap_close PCAP REMOTE : how REMOTE (IP:PORT as the guest sees it) closed towards the
# guest in a capture (E2E_GUEST_PCAP=1): "rst", "fin", "fin+rst" (a FIN, later a reset), or
# nothing if it did not.
e2e_pcap_close() {
	"$MSTOOL" pcap --file "$1" | awk -v r="$2" '
		$3 == r && $6 ~ /^flags=.*R/ && !rst { rst = 1; how = how (how ? "+" : "") "rst" }
		$3 == r && $6 ~ /^flags=F/ && !fin && !rst { fin = 1; how = "fin" }
		END { if (how) print how }'
}

# e2e_now_ms : wall clock in milliseconds, for measured intervals.
e2e_now_ms() { echo $(($(date +%s%N) / 1000000)); }

# e2e_wait_since T0_MS FILE REGEX SECONDS : e2e_wait_for polling every 20 ms; E2E_ELAPSED_MS is
# the time from T0_MS (e2e_now_ms) to the poll that saw the match.
e2e_wait_since() {
	e2e_wait_lines "$2" "$3" "$4" 50 || return 1
	E2E_ELAPSED_MS=$(($(e2e_now_ms) - $1))
}

# e2e_run_basic_guest NAME SINKPORT SOCKET GUESTDIR: one guest life through
# scenario-basic.sh (lease, 1 MiB out to a sink on the node, ICMP, a client
# from the node on exposed port 8080 -> guest 80), failing on any mismatch.
# Results: R_LEASE, R_SHA, R_SINK_PEER, R_CLIENT, R_SAW.
e2e_run_basic_guest() {
	local name=$1 port=$2 sock=$3 dir=$4 sink_pid line guest_sha sink_sha local_addr remote saw

	e2e_bg "$name-sink" "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:$port" --bytes 1048576 --timeout 120
	sink_pid=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/$name-sink.log" '^LISTENING' 10 || e2e_fail "sink did not start"

	e2e_boot_guest "$name" "$dir" "$sock" "ms.sink_ip=$NODE_IP ms.sink_port=$port"
	e2e_wait_for "$E2E_TMP/$name.log" 'GUEST-LEASE|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
		e2e_fail "$name: no DHCP outcome within 60 s"
	line=$(e2e_field "$E2E_TMP/$name.log" 'GUEST-LEASE')
	[ -n "$line" ] || e2e_fail "$name: guest got no lease"
	case "$line" in
	*"ip=10.0.2.15 router=10.0.2.2 dns=10.0.2.3 mask=255.255.255.0"*) ;;
	*) e2e_fail "$name: unexpected lease: $line" ;;
	esac
	R_LEASE=$line
	e2e_log "$name: $line"

	e2e_wait_exit "$sink_pid" 90 || e2e_fail "$name: sink did not finish"
	e2e_wait_for "$E2E_TMP/$name.log" 'GUEST-SHA [0-9a-f]{64}' 5 || e2e_fail "$name: no guest digest"
	guest_sha=$(e2e_field "$E2E_TMP/$name.log" 'GUEST-SHA' | awk '{print $2}')
	line=$(e2e_field "$E2E_TMP/$name-sink.log" '^SINK ')
	sink_sha=${line##*sha256=}
	[ "$guest_sha" = "$sink_sha" ] || e2e_fail "$name: digest mismatch guest=$guest_sha sink=$sink_sha"
	case "$line" in
	*"peer=$POD_IP:"*"bytes=1048576 "*) ;;
	*) e2e_fail "$name: unexpected sink report: $line" ;;
	esac
	R_SHA=$sink_sha
	R_SINK_PEER=${line#SINK peer=}
	R_SINK_PEER=${R_SINK_PEER%% *}
	e2e_log "$name: 1 MiB delivered, sha256 $sink_sha matches; sink saw ${line#SINK }"

	e2e_wait_for "$E2E_TMP/$name.log" 'GUEST-PING-(OK|FAILED)' 20 || e2e_fail "$name: no ping outcome"
	e2e_wait_for "$E2E_TMP/$name.log" 'GUEST-PING-OK' 1 || e2e_fail "$name: ICMP echo through libslirp failed"
	e2e_log "$name: ICMP echo to $NODE_IP ok"

	e2e_wait_for "$E2E_TMP/$name.log" 'GUEST-HTTPD-UP' 30 || e2e_fail "$name: guest httpd did not start"
	ip netns exec "$NS_NODE" "$MSTOOL" http-get --connect "$POD_IP:8080" --path /cgi-bin/peer \
		--timeout 20 >"$E2E_TMP/$name-client.log" 2>&1 || e2e_fail "$name: client to exposed port failed"
	local_addr=$(e2e_field "$E2E_TMP/$name-client.log" '^LOCAL=')
	remote=$(e2e_field "$E2E_TMP/$name-client.log" '^REMOTE=')
	[ -n "$local_addr" ] && [ "${local_addr#LOCAL=}" = "${remote#REMOTE=}" ] ||
		e2e_fail "$name: guest saw '${remote#REMOTE=}', client is '${local_addr#LOCAL=}'"
	saw=$(e2e_field "$E2E_TMP/$name.log" 'GUEST-SAW-CLIENT' | awk '{print $2}')
	[ "$saw" = "${local_addr#LOCAL=}" ] || e2e_fail "$name: console shows client $saw"
	case "$saw" in "$NODE_IP:"*) ;; *) e2e_fail "$name: client address $saw is not the node's" ;; esac
	R_CLIENT=${local_addr#LOCAL=}
	R_SAW=$saw
	e2e_log "$name: exposed port: client ${local_addr#LOCAL=}, guest saw $saw"

	e2e_wait_exit "$GUEST_PID" 60 || e2e_fail "$name: guest did not power off"
	e2e_wait_for "$E2E_TMP/$name.log" 'GUEST-SCENARIO-EXIT rc=0' 1 || e2e_fail "$name: scenario failed"
}

# e2e_haproxy_cfg FILE BODY... : write an HAProxy config logging to stdout;
# BODY lines (frontends/backends) follow the common global/defaults sections.
# One thread (E2E_HAPROXY_NBTHREAD) unless a caller empties it: HAProxy drops a log line when
# two of its threads want stdout at once and the second gives up waiting (fd_write_frag_line(),
# "we prefer to fail on collision than to block"), and the tests count one line per flow.  A
# loaded 2-core CI run counted 98 of 100 flows that ended together, twice, though every flow
# was echoed.  The benchmarks empty it: their sidecar keeps HAProxy's default threads.
e2e_haproxy_cfg() {
	local file=$1
	shift
	{
		printf 'global\n  log stdout format raw local0\n  maxconn %s\n' "$E2E_HAPROXY_MAXCONN"
		[ -z "$E2E_HAPROXY_NBTHREAD" ] || printf '  nbthread %s\n' "$E2E_HAPROXY_NBTHREAD"
		printf '  stats socket %s mode 600\n' "${file%.cfg}.stat"
		printf '%s\n' "${E2E_HAPROXY_GLOBAL[@]}"
		printf 'defaults\n  mode tcp\n  log global\n  maxconn %s\n' "$E2E_HAPROXY_MAXCONN"
		printf '  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n'
		printf '%s\n' "$@"
	} >"$file"
}
E2E_HAPROXY_GLOBAL=()
E2E_MESHSLIRP_WRAP=()
# e2e_haproxy_dropped_logs CFG : the log lines the HAProxy started with CFG has dropped so far
# (its DroppedLogs), or '?' if its stats socket does not answer.
e2e_haproxy_dropped_logs() {
	local n
	n=$(printf 'show info\n' | timeout 5 socat -t 2 - "UNIX-CONNECT:${1%.cfg}.stat" 2>/dev/null |
		awk -F': ' '$1 == "DroppedLogs" { print $2 }') || true
	echo "${n:-?}"
}
E2E_HAPROXY_MAXCONN=8192
: "${E2E_HAPROXY_NBTHREAD=1}"

# e2e_start_haproxy NAME NETNS CFG : start HAProxy in the foreground (-db) as a
# tracked process, and wait until every port CFG binds is listening; its log (one line per
# connection) is $E2E_TMP/NAME.log.
e2e_start_haproxy() {
	local name=$1 ns=$2 cfg=$3 bind
	e2e_require haproxy
	haproxy -c -q -f "$cfg" || e2e_fail "invalid HAProxy config $cfg"
	e2e_bg "$name" "$ns" haproxy -db -f "$cfg"
	HAPROXY_PID=$E2E_LAST_PID
	for bind in $(awk '$1 == "bind" {print $2}' "$cfg"); do
		case "$bind" in
		unix@*)
			# A unix listener: its socket file appears once HAProxy listens.
			local i
			for i in $(seq 100); do [ -S "${bind#unix@}" ] && break; sleep 0.1; done
			[ -S "${bind#unix@}" ] || e2e_fail "HAProxy is not listening on $bind" ;;
		*)
			e2e_wait_listening "$ns" "${bind##*:}" 10 || e2e_fail "HAProxy is not listening on $bind" ;;
		esac
	done
	kill -0 "$HAPROXY_PID" 2>/dev/null || e2e_fail "HAProxy did not start"
}

# The outbound listener of a sidecar that reads PROXY headers, like Envoy's
# 15001 with the proxy_protocol listener filter and an ORIGINAL_DST cluster.
E2E_HAPROXY_OUTBOUND_PROXY=(
	'frontend outbound'
	'  bind 127.0.0.1:15001 accept-proxy'
	'  log-format "HAPROXY-OUT client=%ci:%cp orig_dst=%fi:%fp bytes=%U/%B term=%ts"'
	'  default_backend original_dst'
	'backend original_dst'
	'  server orig 0.0.0.0:0'
)

# e2e_sanitized : true when the daemon is an ASan build, whose RSS (shadow memory, quarantine)
# says nothing about ours; LeakSanitizer checks leaks there instead.
# Under valgrind (tests/valgrind/memcheck-e2e sets E2E_MEMCHECK) RSS is valgrind's as much as ours.
# (No `ldd | grep -q`: with pipefail, grep's early exit can fail the pipeline by SIGPIPE.)
e2e_sanitized() { [ -n "${E2E_MEMCHECK:-}" ] || [[ "$(ldd "$MESHSLIRP" 2>/dev/null)" == *libasan* ]]; }

# e2e_fd_count PID / e2e_rss_kb PID : resources of a process, for growth checks.
e2e_fd_count() { ls "/proc/$1/fd" | wc -l; }
# e2e_frames_accounted NS ADDR FILE : scrape the daemon's metrics at ADDR in NS into FILE; print
# the frames from the guest it accounts for: taken by the backend, or dropped as runt or oversize.
e2e_frames_accounted() {
	e2e_scrape "$1" "$2" "$3"
	echo $(($(e2e_metric "$3" 'meshslirp_frames_total{direction="from_guest"}') +
		$(e2e_metric "$3" 'meshslirp_drops_total{reason="runt"}') +
		$(e2e_metric "$3" 'meshslirp_drops_total{reason="oversize"}')))
}
# e2e_wait_frames_accounted NS ADDR FILE WANT SECONDS : e2e_frames_accounted once it reaches
# WANT, or after SECONDS: the daemon may still be reading what a tool left in its socket (slowly
# under valgrind).
e2e_wait_frames_accounted() {
	local n i
	for i in $(seq 1 $(($5 * 5))); do
		n=$(e2e_frames_accounted "$1" "$2" "$3")
		[ "$n" -ge "$4" ] && break
		sleep 0.2
	done
	echo "$n"
}
# e2e_fd_count_settled PID : PID's descriptor count once three looks 0.1 s apart agree (at
# most 5 s): a peer that just left may still have its descriptors open in the daemon.
e2e_fd_count_settled() {
	local n last= same=0 i
	for i in $(seq 1 50); do
		n=$(e2e_fd_count "$1")
		if [ "$n" = "$last" ]; then same=$((same + 1)); else same=0; fi
		[ "$same" -ge 2 ] && break
		last=$n
		sleep 0.1
	done
	echo "$n"
}
e2e_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# e2e_wait_flows_drained LOG SECONDS : ask the daemon (SIGUSR1) for its counters once a
# second until no TCP flow is left; E2E_FLOW_STATE holds the last report.  (UDP entries
# live as long as libslirp's sockets, 240 s: not waited for.)
# Inbound flows can take ~20 s: libslirp's TIME_WAIT (10 s) plus the bridge's grace (10 s).
e2e_wait_flows_drained() {
	local log=$1 secs=$2 i
	for i in $(seq 1 "$secs"); do
		kill -USR1 "$MESHSLIRP_PID"
		sleep 1
		E2E_FLOW_STATE=$(tr -d '\r' <"$log" |
			grep -Eo 'now syn [0-9]+ connecting [0-9]+ open [0-9]+ closed [0-9]+' | tail -n 1)
		[ "$E2E_FLOW_STATE" = "now syn 0 connecting 0 open 0 closed 0" ] && return 0
	done
	return 1
}

# e2e_istio_capture NETNS : Istio's outbound capture in nftables form: every TCP
# connection a process of NETNS opens goes to :15001, except the sidecar's own
# (uid 1337) and loopback traffic.  Removed with e2e_istio_capture_off.
e2e_istio_capture() {
	ip netns exec "$1" nft -f - <<'NFT'
table ip istio {
	chain output {
		type nat hook output priority -100; policy accept;
		meta skuid 1337 return
		ip daddr 127.0.0.0/8 return
		meta l4proto tcp redirect to :15001
	}
}
NFT
}
e2e_istio_capture_off() { ip netns exec "$1" nft delete table ip istio 2>/dev/null || true; }

# e2e_scrape NETNS ADDR:PORT FILE : fetch meshslirp's /metrics into FILE.
e2e_scrape() {
	ip netns exec "$1" "$MSTOOL" http-get --connect "$2" --path /metrics --timeout 10 >"$3" 2>&1 ||
		e2e_fail "scraping $2/metrics failed: $(cat "$3")"
}

# e2e_metric FILE 'NAME{LABELS}' : print that sample's value (empty if absent).
e2e_metric() { awk -v k="$2" '$1 == k {print $2}' "$1"; }

# e2e_metric_sum FILE 'NAME{LABELS}'... : the sum of those samples (absent ones count 0).
e2e_metric_sum() {
	local f=$1
	shift
	awk 'FNR == NR { want[$0] = 1; next } ($1 in want) { n += $2 } END { print n + 0 }' \
		<(printf '%s\n' "$@") "$f"
}

# Steered TCP, whichever stack ended it: libslirp's, and the kernel path's (absent on
# libslirp's).  --steer-stack auto, the default, may use both: a SYN the kernel path has no
# slot for is libslirp's.  Each prints the sum in scrape FILE.
# e2e_steered_total FILE : the flows.
e2e_steered_total() {
	e2e_metric_sum "$1" 'meshslirp_flows_total{direction="outbound_steered"}' meshslirp_kernel_flows_total
}
# e2e_headers_total FILE : the PROXY headers sent to the sidecar.
e2e_headers_total() {
	e2e_metric_sum "$1" meshslirp_proxy_headers_sent_total 'meshslirp_kernel_flow_events_total{event="opened"}'
}
# e2e_sidecar_failures_total FILE : the connections to the sidecar that failed.
e2e_sidecar_failures_total() {
	e2e_metric_sum "$1" meshslirp_sidecar_connect_failures_total \
		'meshslirp_kernel_flow_events_total{event="connect_failed"}'
}

# e2e_wait_metric NETNS ADDR:PORT 'NAME{LABELS}' MIN SECONDS : scrape every 0.2 s until that
# sample is at least MIN; E2E_METRIC is its last value.
e2e_wait_metric() {
	local ns=$1 addr=$2 key=$3 min=$4 secs=$5 i
	for i in $(seq 1 $((secs * 5))); do
		e2e_scrape "$ns" "$addr" "$E2E_TMP/wait-metrics.txt"
		E2E_METRIC=$(e2e_metric "$E2E_TMP/wait-metrics.txt" "$key")
		[ "${E2E_METRIC:-0}" -ge "$min" ] && return 0
		sleep 0.2
	done
	return 1
}

# e2e_flow_states FILE : the meshslirp_flows gauges of a scrape as "syn=N connecting=N ...",
# for redirected TCP flows (steered, DNS, inbound) only.  Left out: UDP entries
# (meshslirp_udp_flows, all "open"), which live as long as libslirp's sockets, 240 s after the
# last datagram; and direct TCP flows (meshslirp_direct_tcp_flows), such as a test's own
# control channel to an excluded port.  On the kernel path " kernel_active=N" follows: its
# flows not yet ended (meshslirp_kernel_flows_active; its closed ones are not counted), its
# direct ones left out (meshslirp_kernel_direct_flows_active) as libslirp's are.
e2e_flow_states() {
	awk -F'[{}"]' '/^meshslirp_udp_flows / {split($0, u, " "); udp = u[2]}
		/^meshslirp_direct_tcp_flows\{state=/ {split($0, v, " "); d[$3] = v[2]}
		/^meshslirp_flows\{state=/ {split($0, v, " "); n[++k] = $3; c[k] = v[2]}
		/^meshslirp_kernel_flows_active / {split($0, v, " "); kact = v[2]; kseen = 1}
		/^meshslirp_kernel_direct_flows_active / {split($0, v, " "); kdirect = v[2]}
		END {for (i = 1; i <= k; i++) printf "%s%s=%s", (i > 1 ? " " : ""), n[i],
			c[i] - d[n[i]] - (n[i] == "open" ? udp : 0)
			print kseen ? " kernel_active=" (kact - kdirect) : ""}' "$1"
}

# e2e_wait_flows_empty NETNS ADDR:PORT SECONDS : scrape the metrics every 0.5 s until every
# meshslirp_flows gauge is 0 (TCP; see e2e_flow_states).  E2E_FLOW_STATE is the last e2e_flow_states, E2E_ELAPSED_MS the
# time it took; the last scrape stays in $E2E_TMP/flows-metrics.txt.
e2e_wait_flows_empty() {
	local ns=$1 addr=$2 secs=$3 t0 i
	t0=$(e2e_now_ms)
	for i in $(seq 1 $((secs * 2))); do
		e2e_scrape "$ns" "$addr" "$E2E_TMP/flows-metrics.txt"
		E2E_FLOW_STATE=$(e2e_flow_states "$E2E_TMP/flows-metrics.txt")
		E2E_ELAPSED_MS=$(($(e2e_now_ms) - t0))
		case "$E2E_FLOW_STATE" in
		"" | *=[1-9]*) ;;
		*) return 0 ;;
		esac
		sleep 0.5
	done
	return 1
}

# e2e_no_redirected_flows SOCKET : true when list_flows on the control socket names no flow
# but direct ones (DHCP, a test's own control channel to an excluded port); the answer is left
# in E2E_FLOWS_ANSWER.  The kernel path lists its closed flows through their 10 s grace
# (KSTEER_GRACE_US), which e2e_wait_flows_empty does not wait for: while the answer still has
# a closed flow of the kernel path's, it asks again, for at most 15 s.
e2e_no_redirected_flows() {
	local kinds i
	for i in $(seq 1 30); do
		E2E_FLOWS_ANSWER=$(e2e_control "$1" '{"execute": "list_flows"}')
		case "$E2E_FLOWS_ANSWER" in '{"return": {"flows": ['*) ;; *) return 1 ;; esac
		case "$E2E_FLOWS_ANSWER" in *'"path": "kernel", "proto": "tcp", "state": "closed"'*) ;; *) break ;; esac
		sleep 0.5
	done
	kinds=$(printf '%s\n' "$E2E_FLOWS_ANSWER" | grep -o '"kind": "[a-z]*"' || true)
	[ -z "$(printf '%s\n' "$kinds" | grep -v '"direct"' | grep . || true)" ]
}

# e2e_control SOCKET JSON : one request to the control socket; prints the answer line.
e2e_control() {
	printf '%s\n' "$2" | timeout 10 socat -t 5 - UNIX-CONNECT:"$1"
}

# e2e_transfer NAME FROM_NS TO_NS LISTEN CONNECT BYTES : a sink listens on LISTEN in TO_NS,
# a source in FROM_NS sends BYTES to CONNECT; fails unless the sink got them all with the
# sender's SHA-256.  Leaves the two reports in E2E_SOURCE ("SOURCE local=IP:PORT bytes=N
# sha256=H") and E2E_SINK ("SINK peer=IP:PORT bytes=N sha256=H"), and the sender's own
# address in E2E_SOURCE_ADDR, for the caller's checks of who saw whom.
e2e_transfer() {
	local name=$1 from=$2 to=$3 listen=$4 connect=$5 bytes=$6 pid
	e2e_bg "$name-sink" "$to" "$MSTOOL" sink --listen "$listen" --bytes "$bytes"
	pid=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/$name-sink.log" '^LISTENING' 10 || e2e_fail "$name: sink did not start"
	ip netns exec "$from" "$MSTOOL" source --connect "$connect" --bytes "$bytes" \
		>"$E2E_TMP/$name-source.log" 2>&1 ||
		e2e_fail "$name: source failed: $(cat "$E2E_TMP/$name-source.log")"
	e2e_wait_exit "$pid" 30 || e2e_fail "$name: sink did not finish"
	E2E_SOURCE=$(e2e_field "$E2E_TMP/$name-source.log" '^SOURCE local')
	E2E_SINK=$(e2e_field "$E2E_TMP/$name-sink.log" '^SINK ')
	E2E_SOURCE_ADDR=${E2E_SOURCE#SOURCE local=}
	E2E_SOURCE_ADDR=${E2E_SOURCE_ADDR%% *}
	case "$E2E_SINK" in
	*" bytes=$bytes sha256=${E2E_SOURCE##*sha256=}") ;;
	*) e2e_fail "$name: sent '$E2E_SOURCE', received '$E2E_SINK'" ;;
	esac
}
