#!/usr/bin/env bash
# cli.sh - the daemon's command line and lifecycle: help, bad values, socket ownership, signals.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

"$MESHSLIRP" --help >"$E2E_TMP/help.txt" || e2e_fail "--help did not exit 0"
grep -q -- '--socket=PATH' "$E2E_TMP/help.txt" || e2e_fail "--help does not list --socket"
"$MESHSLIRP" --version | grep -Eq '^meshslirp [0-9.]+ \(libslirp 4\.' || e2e_fail "--version"

# bad_value EXPECTED_WORD ARGS...: exit 2 and exactly one line naming the option.
bad_value() {
	local want=$1 rc=0
	shift
	"$MESHSLIRP" "$@" >/dev/null 2>"$E2E_TMP/err.txt" || rc=$?
	[ "$rc" = 2 ] || e2e_fail "'$*' exited $rc, not 2"
	[ "$(wc -l <"$E2E_TMP/err.txt")" = 1 ] || e2e_fail "'$*' printed more than one line"
	grep -q -- "$want" "$E2E_TMP/err.txt" || e2e_fail "'$*' said '$(cat "$E2E_TMP/err.txt")'"
}
bad_value --mtu --socket s --mtu 70000
bad_value --expose --socket s --expose tcp:http
bad_value --network --socket s --network 10.0.2.0/33
bad_value "exactly one" --socket s --tap t
bad_value "unexpected argument" --socket s junk
bad_value --connect-timeout --socket s --connect-timeout 11m
bad_value --tcp-idle-timeout --socket s --tcp-idle-timeout 500ms
bad_value --max-inbound-flows --socket s --max-inbound-flows 0
e2e_log "bad values: exit 2 with one line naming the option"

# A flow table larger than the descriptor limit allows is lowered, with a warning naming both,
# and the exposed-port limit with it where it no longer fits.
# expect_lowered NAME LINE TABLE INBOUND ARGS...: the daemon started with ARGS under a limit of
# 1000 descriptors (LOWERED_LIMIT) logs LINE, a flow table of TABLE and an inbound limit of INBOUND.
expect_lowered() {
	local name=$1 line=$2 table=$3 inbound=$4 pid
	shift 4
	ip netns exec "$NS_POD" prlimit --nofile="${LOWERED_LIMIT:-1000}:${LOWERED_LIMIT:-1000}" \
		"$MESHSLIRP" --socket "$E2E_TMP/$name.sock" \
		--ready-fd 3 "$@" 3>"$E2E_TMP/$name.ready" >"$E2E_TMP/$name.log" 2>&1 &
	pid=$!
	E2E_PIDS+=("$pid")
	e2e_wait_for "$E2E_TMP/$name.ready" '^READY$' 10 || e2e_fail "$name: daemon with a low fd limit did not start"
	grep -qF -- "$line" "$E2E_TMP/$name.log" || e2e_fail "$name: no fd-limit line: $(cat "$E2E_TMP/$name.log")"
	grep -qF "flow table $table (exposed-port connections $inbound at most)" "$E2E_TMP/$name.log" ||
		e2e_fail "$name: table not lowered: $(cat "$E2E_TMP/$name.log")"
	kill -TERM "$pid"
	e2e_wait_exit "$pid" 10 || e2e_fail "$name: daemon with a low fd limit did not stop"
}
# An explicit --max-inbound-flows stays a ceiling: 2 is kept, 8000 gets half the lowered table
# (436 of 872, not its share 425), 16000 its share (851 of 872); libslirp's path.
expect_lowered lim "--max-flows 16384 needs 16512 descriptors (1 a flow) but the limit is 1000: using 872 flows" \
	872 436 --max-flows 16384 --max-inbound-flows 8000 --steer-stack slirp
expect_lowered lim2 "--max-flows 16384 needs 16512 descriptors (1 a flow) but the limit is 1000: using 872 flows" \
	872 2 --max-flows 16384 --max-inbound-flows 2 --steer-stack slirp
expect_lowered lim16000 "--max-flows 16384 needs 16512 descriptors (1 a flow) but the limit is 1000: using 872 flows" \
	872 851 --max-flows 16384 --max-inbound-flows 16000 --steer-stack slirp
# A limit under twice the reserve (the exposed ports' 256 held sockets in it) leaves half of
# itself to flows, 300 under 600: never more than asked (250), and nothing said then.
LOWERED_LIMIT=600 expect_lowered limhalf "flow table 250 " 250 125 --max-flows 250 \
	--expose tcp:18081:80 --steer-stack slirp
! grep -q 'descriptor' "$E2E_TMP/limhalf.log" || e2e_fail "limhalf: a table not lowered was said to be"
# Where the kernel path runs, a flow may hold seven: its two sockets and two pipes there,
# and libslirp's socket in the other table; the pipe pool is in the reserve.
expect_lowered limk "--max-flows 16384 needs 114848 descriptors (7 a flow, on the kernel path) but the limit is 1000: using 120 flows" \
	120 60 --max-flows 16384 --outbound-proxy 127.0.0.1:15001
# The default lowered is no warning, a note; without a sidecar too, whose flows are direct ones
# on the kernel path.
expect_lowered limd "flow tables of 120, within the descriptor limit of 1000 (the default of 16384 needs 114848, 7 a flow on the kernel path" \
	120 60
! grep -q 'warning: .*descriptors' "$E2E_TMP/limd.log" || e2e_fail "limd: the default lowered is a warning"
e2e_log "--max-flows lowered to the descriptor limit, with a warning (1 and 7 descriptors a flow)"

# --steer-stack auto, the default: steered TCP in the kernel's stack where the daemon can make
# its private namespace, and libslirp's, saying why once, where it cannot.  No tun device
# (/dev/net/tun masked by /dev/null in a mount namespace of the daemon's own) is one such pod;
# --steer-stack kernel there refuses to start, naming the step.
steer_stack_of() { # NAME: which stack the daemon started as NAME reports in its metrics
	e2e_scrape "$NS_POD" 127.0.0.1:9191 "$E2E_TMP/$1.metrics"
	awk '/^meshslirp_steer_stack\{/ && $2 == 1 { sub(/.*stack="/, ""); sub(/".*/, ""); print }' \
		"$E2E_TMP/$1.metrics"
}
e2e_start_meshslirp auto --socket "$E2E_TMP/auto.sock" --outbound-proxy 127.0.0.1:15001 \
	--metrics 127.0.0.1:9191
[ "$(steer_stack_of auto)" = kernel ] ||
	e2e_fail "--steer-stack auto as root did not take the kernel's stack: $(grep steer_stack "$E2E_TMP/auto.metrics")"
grep -q "the guest's TCP ends in the kernel's stack .*spliced to the sidecar" "$E2E_TMP/auto.log" ||
	e2e_fail "auto did not say it took the kernel's stack: $(cat "$E2E_TMP/auto.log")"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "the auto daemon did not stop"
# Without a sidecar too: every flow to another host is a direct one on the kernel path.
e2e_start_meshslirp auto-direct --socket "$E2E_TMP/auto-direct.sock" --metrics 127.0.0.1:9191
[ "$(steer_stack_of auto-direct)" = kernel ] ||
	e2e_fail "--steer-stack auto without a sidecar: $(grep steer_stack "$E2E_TMP/auto-direct.metrics")"
grep -q "the guest's TCP ends in the kernel's stack .*spliced to its destination$" \
	"$E2E_TMP/auto-direct.log" ||
	e2e_fail "auto without a sidecar did not say it took the kernel's stack: $(cat "$E2E_TMP/auto-direct.log")"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "the auto daemon without a sidecar did not stop"
e2e_start_meshslirp slirp-direct --socket "$E2E_TMP/slirp-direct.sock" --metrics 127.0.0.1:9191 \
	--steer-stack slirp
[ "$(steer_stack_of slirp-direct)" = slirp ] ||
	e2e_fail "--steer-stack slirp without a sidecar: $(grep steer_stack "$E2E_TMP/slirp-direct.metrics")"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "the slirp daemon without a sidecar did not stop"
# meshslirp ARGS in the pod, in a mount namespace whose /dev/net/tun is /dev/null (exec: same PID)
e2e_start_meshslirp_notun() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	exec unshare -m --propagation private sh -c 'mount --bind /dev/null /dev/net/tun && exec "$@"' sh \
		ip netns exec "$NS_POD" "$MESHSLIRP" "$@"
}
# auto_falls_back NAME WHAT LOG_REGEX LAUNCHER : LAUNCHER (which execs meshslirp with the
# arguments it is given) starts --steer-stack auto as NAME; it must start, say LOG_REGEX, steer
# through libslirp, and stop on SIGTERM.  WHAT describes the pod in the failure messages.
auto_falls_back() {
	local name=$1 what=$2 re=$3 launcher=$4 pid
	("$launcher" --ready-fd 3 --socket "$E2E_TMP/$name.sock" --outbound-proxy 127.0.0.1:15001 \
		--metrics 127.0.0.1:9191) 3>"$E2E_TMP/$name.ready" >"$E2E_TMP/$name.log" 2>&1 &
	pid=$!
	E2E_PIDS+=("$pid")
	e2e_wait_for "$E2E_TMP/$name.ready" '^READY$' 10 ||
		e2e_fail "--steer-stack auto $what did not start: $(cat "$E2E_TMP/$name.log")"
	grep -q -- "$re" "$E2E_TMP/$name.log" ||
		e2e_fail "auto $what said: $(cat "$E2E_TMP/$name.log")"
	[ "$(steer_stack_of "$name")" = slirp ] ||
		e2e_fail "auto $what: $(grep steer_stack "$E2E_TMP/$name.metrics")"
	kill -TERM "$pid"
	e2e_wait_exit "$pid" 10 || e2e_fail "the daemon $what did not stop"
}
auto_falls_back notun "without a tun device" \
	"--steer-stack auto: cannot create the tun device: .*; the guest's TCP ends in libslirp" \
	e2e_start_meshslirp_notun
# Falling back, it is charged libslirp's one descriptor a flow, not the kernel path's seven:
# under a limit of 1000 its table is 872, not 120.
e2e_start_meshslirp_notun_lim() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	exec unshare -m --propagation private sh -c 'mount --bind /dev/null /dev/net/tun && exec "$@"' sh \
		ip netns exec "$NS_POD" prlimit --nofile=1000:1000 "$MESHSLIRP" "$@"
}
auto_falls_back notunlim "without a tun device under a limit of 1000" \
	"--steer-stack auto: cannot create the tun device: .*; the guest's TCP ends in libslirp" \
	e2e_start_meshslirp_notun_lim
grep -qF "a flow table of 872, within the descriptor limit of 1000 (the default of 16384 needs 16512, 1 a flow;" \
	"$E2E_TMP/notunlim.log" && grep -qF "flow table 872 (exposed-port connections 436 at most)" \
	"$E2E_TMP/notunlim.log" || e2e_fail "the fallback's table was charged for the kernel path: $(cat "$E2E_TMP/notunlim.log")"
rc=0
# (timeout: a daemon that did start would otherwise hold the test until meson's timeout)
(e2e_start_meshslirp_notun --socket "$E2E_TMP/notun2.sock" --outbound-proxy 127.0.0.1:15001 \
	--steer-stack kernel) >"$E2E_TMP/notun2.log" 2>&1 &
notun2=$!
E2E_PIDS+=("$notun2")
e2e_wait_exit "$notun2" 10 || rc=$?
[ "$rc" = 1 ] || e2e_fail "--steer-stack kernel without a tun device exited $rc"
grep -q -- "--steer-stack kernel: cannot create the tun device" "$E2E_TMP/notun2.log" ||
	e2e_fail "--steer-stack kernel without a tun device said: $(cat "$E2E_TMP/notun2.log")"
e2e_log "--steer-stack auto: the kernel's stack as root, with a sidecar or without; libslirp's, saying why, with no tun device, its table sized for libslirp's path (kernel: exit 1)"

# The same under a seccomp filter that kills on unshare() (systemd's SystemCallFilter= without
# @sandbox, say): the set-up's child dies by SIGSYS, and the daemon names the step and the filter.
# e2e_start_meshslirp_sigsys ARGS: meshslirp ARGS in the pod under that filter (exec: same PID)
e2e_start_meshslirp_sigsys() {
	exec ip netns exec "$NS_POD" "$MSTOOL" seccomp-kill unshare "$MESHSLIRP" "$@"
}
auto_falls_back sigsys "under a filter killing unshare" \
	"--steer-stack auto: cannot unshare a network namespace .*killed by SIGSYS: a seccomp filter" \
	e2e_start_meshslirp_sigsys
e2e_log "--steer-stack auto under a filter that kills unshare(): the step and SIGSYS named, libslirp's stack"

SOCK=$E2E_TMP/net.sock
e2e_start_meshslirp first --socket "$SOCK" --expose tcp:8080
first=$MESHSLIRP_PID

rc=0
ip netns exec "$NS_POD" "$MESHSLIRP" --socket "$SOCK" 2>"$E2E_TMP/second.txt" || rc=$?
[ "$rc" = 1 ] || e2e_fail "second daemon on a live socket exited $rc"
grep -q "another process is serving this socket" "$E2E_TMP/second.txt" ||
	e2e_fail "second daemon said: $(cat "$E2E_TMP/second.txt")"
rc=0
ip netns exec "$NS_POD" "$MESHSLIRP" --socket "$E2E_TMP/other.sock" --expose tcp:8080 \
	2>"$E2E_TMP/port.txt" || rc=$?
[ "$rc" = 1 ] || e2e_fail "daemon with a taken port exited $rc"
grep -q -- "--expose tcp:8080:8080: cannot listen on 0.0.0.0:8080: Address already in use" \
	"$E2E_TMP/port.txt" || e2e_fail "taken port said: $(cat "$E2E_TMP/port.txt")"
[ ! -e "$E2E_TMP/other.sock" ] || e2e_fail "failed daemon left a socket"
e2e_log "live socket and taken port refused with exit 1 and a clear message"

# A daemon killed without cleanup leaves a stale socket; the next one reclaims it.
kill -KILL "$first"
wait "$first" 2>/dev/null || true
[ -S "$SOCK" ] || e2e_fail "expected a stale socket after SIGKILL"
e2e_start_meshslirp third --socket "$SOCK"
kill -INT "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "SIGINT did not give exit 0"
[ ! -e "$SOCK" ] || e2e_fail "socket left behind after SIGINT"
e2e_log "stale socket reclaimed; SIGINT exits 0 and removes the socket"
e2e_log "PASS"
