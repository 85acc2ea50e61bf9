#!/usr/bin/env bash
# launcher.sh - qemu-glue/meshslirp-qemu: a guest's whole life (lease, power-off, exit 0, nothing
# left behind) on the default vhost-user backend and with --backend stream, SIGTERM to the
# launcher stopping QEMU and the daemon, the QEMU options it adds (shared RAM sized from -m,
# vectors=0 only under TCG, a backend of the user's own kept), and start-up failures.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

LAUNCHER=$E2E_ROOT/qemu-glue/meshslirp-qemu
# The launcher's TMPDIR: its private socket directory lands here and must be gone at its exit.
LTMP=$E2E_TMP/launcher-tmp
mkdir -p "$LTMP"
DAEMON_COMM=$(basename "$MESHSLIRP" | cut -c1-15)

# The guests take their lease from the test guest's own /init, as every guest does. The daemon
# exposes no port: nothing in libslirp but the guest's own frames gets it to answer.
cat >"$E2E_TMP/scenario-launched.sh" <<'EOF'
echo GUEST-LAUNCHED > /dev/console
EOF
cat >"$E2E_TMP/scenario-sleep.sh" <<'EOF'
echo GUEST-SLEEPING > /dev/console
sleep 60
EOF
e2e_build_guest "$E2E_TMP/guest-launched" "$E2E_TMP/scenario-launched.sh"
e2e_build_guest "$E2E_TMP/guest-sleep" "$E2E_TMP/scenario-sleep.sh"

# Children found while a launcher runs; stopped by PID at cleanup should the launcher fail to.
CHILD_PIDS=()
kill_children() {
	local p
	for p in "${CHILD_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
E2E_CLEANUP_HOOKS+=(kill_children)

# start_launcher NAME GUESTDIR [LAUNCHER OPTIONS...]: the launcher in the pod namespace, in the
# background; console in NAME.log, its stderr (and the daemon's) in NAME-stderr.log.
start_launcher() {
	local name=$1 dir=$2
	shift 2
	TMPDIR=$LTMP ip netns exec "$NS_POD" "$LAUNCHER" --meshslirp "$MESHSLIRP" "$@" -- \
		-accel tcg -m 256 -nographic -no-reboot \
		-kernel "$dir/vmlinuz" -initrd "$dir/initramfs.cpio.gz" \
		-append "console=ttyS0 quiet panic=-1" \
		</dev/null >"$E2E_TMP/$name.log" 2>"$E2E_TMP/$name-stderr.log" &
	LAUNCHER_PID=$!
	E2E_PIDS+=("$LAUNCHER_PID")
}

# find_children NAME: the launcher's daemon and QEMU (its direct children), within 10 s.
find_children() {
	D_PID='' Q_PID=''
	for _ in $(seq 1 100); do
		D_PID=$(pgrep -P "$LAUNCHER_PID" -x "$DAEMON_COMM" || true)
		Q_PID=$(pgrep -P "$LAUNCHER_PID" -x qemu-system-x86 || true)
		[ -n "$D_PID" ] && [ -n "$Q_PID" ] && break
		sleep 0.1
	done
	[ -n "$D_PID" ] && [ -n "$Q_PID" ] ||
		e2e_fail "$1: launcher children not found (daemon '$D_PID', QEMU '$Q_PID')"
	CHILD_PIDS+=("$D_PID" "$Q_PID")
	e2e_log "$1: launcher $LAUNCHER_PID runs meshslirp $D_PID and QEMU $Q_PID"
}

# nothing_left NAME: the daemon and QEMU are gone, no daemon serves a socket under LTMP, LTMP is empty.
nothing_left() {
	local p
	for p in "$D_PID" "$Q_PID"; do
		! kill -0 "$p" 2>/dev/null || e2e_fail "$1: process $p ($(cat /proc/"$p"/comm)) still running"
	done
	p=$(pgrep -f -- "--(socket|vhost-user) $LTMP/" || true)
	[ -z "$p" ] || e2e_fail "$1: a daemon on a launcher socket is still running: $p"
	[ -z "$(ls -A "$LTMP")" ] || e2e_fail "$1: launcher left $(ls -A "$LTMP") in its TMPDIR"
}

# no_fallback NAME: QEMU (its stderr is the launcher's) ran the NIC on vhost-user, no fallback to
# its own virtio; the daemon saw the front-end attach.
no_fallback() {
	! grep -Eq 'unable to start vhost net|falling back|vhost.*(fail|error)' "$E2E_TMP/$1-stderr.log" ||
		e2e_fail "$1: QEMU did not run the vhost-user NIC: $(grep -E 'vhost' "$E2E_TMP/$1-stderr.log" | head -3)"
	e2e_wait_for "$E2E_TMP/$1-stderr.log" 'vhost-user front-end \(pid [0-9]+\) attached on' 1 ||
		e2e_fail "$1: the daemon saw no vhost-user front-end"
}

# 1. A guest's whole life on the default backend (vhost-user): lease, scenario, power-off; the
#    launcher exits 0, nothing left.
#    With least privilege: the daemon drops to nobody under seccomp, in a private socket
#    directory the launcher hands to nobody (reachable through the test's directories).
chmod 0711 "$E2E_TMP"
start_launcher life "$E2E_TMP/guest-launched" --user nobody --seccomp
find_children life
e2e_wait_exit "$LAUNCHER_PID" 120 || e2e_fail "life: launcher exited with status $?"
line=$(e2e_field "$E2E_TMP/life.log" 'GUEST-LEASE')
case "$line" in
*"ip=10.0.2.15 router=10.0.2.2 dns=10.0.2.3 mask=255.255.255.0"*) ;;
*) e2e_fail "life: no lease or an unexpected one: '$line'" ;;
esac
e2e_wait_for "$E2E_TMP/life.log" 'GUEST-LAUNCHED' 1 || e2e_fail "life: scenario did not run"
e2e_wait_for "$E2E_TMP/life.log" 'GUEST-SCENARIO-EXIT rc=0' 1 || e2e_fail "life: scenario failed"
no_fallback life
e2e_wait_for "$E2E_TMP/life-stderr.log" 'signal received, shutting down' 1 ||
	e2e_fail "life: daemon was not stopped with a signal"
! grep -q '^meshslirp-qemu: ' "$E2E_TMP/life-stderr.log" ||
	e2e_fail "life: $(grep '^meshslirp-qemu: ' "$E2E_TMP/life-stderr.log")"
e2e_wait_for "$E2E_TMP/life-stderr.log" "running as uid $(id -u nobody) .*capabilities: none" 1 ||
	e2e_fail "life: the daemon did not drop to nobody"
! grep -q 'warning' "$E2E_TMP/life-stderr.log" ||
	e2e_fail "life: $(grep 'warning' "$E2E_TMP/life-stderr.log")"
nothing_left life
e2e_log "life (vhost-user, --user nobody --seccomp): $line; guest powered off, launcher exit 0," \
	"daemon stopped, socket directory gone"

# 1b. The same life with --backend stream: QEMU's -netdev stream on the daemon's --socket.
start_launcher stream "$E2E_TMP/guest-launched" --backend stream
find_children stream
e2e_wait_exit "$LAUNCHER_PID" 120 || e2e_fail "stream: launcher exited with status $?"
line=$(e2e_field "$E2E_TMP/stream.log" 'GUEST-LEASE')
case "$line" in
*"ip=10.0.2.15 router=10.0.2.2 dns=10.0.2.3 mask=255.255.255.0"*) ;;
*) e2e_fail "stream: no lease or an unexpected one: '$line'" ;;
esac
e2e_wait_for "$E2E_TMP/stream.log" 'GUEST-SCENARIO-EXIT rc=0' 1 || e2e_fail "stream: scenario failed"
e2e_wait_for "$E2E_TMP/stream-stderr.log" '^meshslirp\[[0-9]+\]: info: QEMU \(pid [0-9]+\) attached on' 1 ||
	e2e_fail "stream: the daemon saw no -netdev stream connection"
! grep -q 'vhost-user' "$E2E_TMP/stream-stderr.log" || e2e_fail "stream: vhost-user used with --backend stream"
! grep -q '^meshslirp-qemu: ' "$E2E_TMP/stream-stderr.log" ||
	e2e_fail "stream: $(grep '^meshslirp-qemu: ' "$E2E_TMP/stream-stderr.log")"
nothing_left stream
e2e_log "stream (--backend stream): $line; launcher exit 0, nothing left"

# 2. SIGTERM to the launcher stops QEMU and the daemon within 10 s.
start_launcher sigterm "$E2E_TMP/guest-sleep"
find_children sigterm
e2e_wait_for "$E2E_TMP/sigterm.log" 'GUEST-SLEEPING|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
	e2e_fail "sigterm: guest did not come up"
e2e_wait_for "$E2E_TMP/sigterm.log" 'GUEST-SLEEPING' 1 || e2e_fail "sigterm: guest got no lease"
no_fallback sigterm
t0=$(date +%s%N)
kill -TERM "$LAUNCHER_PID"
rc=0
e2e_wait_exit "$LAUNCHER_PID" 10 || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" != 124 ] || e2e_fail "sigterm: launcher still running 10 s after SIGTERM"
[ "$rc" = 0 ] || e2e_fail "sigterm: launcher exited with status $rc (QEMU exits 0 on SIGTERM)"
nothing_left sigterm
e2e_wait_for "$E2E_TMP/sigterm-stderr.log" 'SIGTERM: stopping QEMU' 1 ||
	e2e_fail "sigterm: launcher did not say it forwarded the signal"
e2e_wait_for "$E2E_TMP/sigterm-stderr.log" 'signal received, shutting down' 1 ||
	e2e_fail "sigterm: daemon was not stopped with a signal"
e2e_log "sigterm: launcher, QEMU and meshslirp gone $ms ms after SIGTERM, exit $rc"

# 3. A bad daemon option: exit 1 with the daemon's own error, and QEMU never started.
# $QEMU is a stand-in that would leave a mark if the launcher ever ran it.
printf '#!/bin/sh\ntouch %s/qemu-started\n' "$E2E_TMP" >"$E2E_TMP/fake-qemu"
chmod +x "$E2E_TMP/fake-qemu"
run_launcher() { # NAME LAUNCHER ARGS...: in the foreground (bounded); status in RC
	local name=$1
	shift
	RC=0
	TMPDIR=$LTMP QEMU=$E2E_TMP/fake-qemu timeout 60 ip netns exec "$NS_POD" "$LAUNCHER" "$@" \
		</dev/null >"$E2E_TMP/$name.log" 2>"$E2E_TMP/$name-stderr.log" || RC=$?
}
run_launcher badopt --meshslirp "$MESHSLIRP" --mtu 1 -- -nographic
[ "$RC" = 1 ] || e2e_fail "badopt: launcher exited with $RC, expected 1"
e2e_wait_for "$E2E_TMP/badopt-stderr.log" '^meshslirp: --mtu: ' 1 ||
	e2e_fail "badopt: the daemon's error is not on stderr"
e2e_wait_for "$E2E_TMP/badopt-stderr.log" 'meshslirp exited with status 2 before it was ready' 1 ||
	e2e_fail "badopt: the launcher did not explain"
[ ! -e "$E2E_TMP/qemu-started" ] || e2e_fail "badopt: QEMU was started"
[ -z "$(ls -A "$LTMP")" ] || e2e_fail "badopt: launcher left $(ls -A "$LTMP") in its TMPDIR"
e2e_log "badopt: exit 1, stderr: $(head -n1 "$E2E_TMP/badopt-stderr.log")"

# 4. A daemon that never says READY: exit 1 after 10 s, that daemon stopped, no QEMU.
printf '#!/bin/sh\necho "fake daemon pid $$" >&2\nexec sleep 60\n' >"$E2E_TMP/fake-daemon"
chmod +x "$E2E_TMP/fake-daemon"
t0=$(date +%s)
run_launcher notready --meshslirp "$E2E_TMP/fake-daemon" -- -nographic
[ "$RC" = 1 ] || e2e_fail "notready: launcher exited with $RC, expected 1"
e2e_wait_for "$E2E_TMP/notready-stderr.log" 'did not get ready within 10 s' 1 ||
	e2e_fail "notready: the launcher did not explain"
fake=$(e2e_field "$E2E_TMP/notready-stderr.log" 'fake daemon pid' | awk '{print $4}')
[ -n "$fake" ] && ! kill -0 "$fake" 2>/dev/null || e2e_fail "notready: daemon '$fake' left running"
[ ! -e "$E2E_TMP/qemu-started" ] || e2e_fail "notready: QEMU was started"
[ -z "$(ls -A "$LTMP")" ] || e2e_fail "notready: launcher left $(ls -A "$LTMP") in its TMPDIR"
e2e_log "notready: exit 1 after $(($(date +%s) - t0)) s, the silent daemon stopped"

# 5. The QEMU options the launcher adds, recorded by a stand-in QEMU (one argument a line).
printf '#!/bin/sh\nfor a in "$@"; do printf "%%s\\n" "$a"; done >%s/qemu-args\n' "$E2E_TMP" >"$E2E_TMP/args-qemu"
chmod +x "$E2E_TMP/args-qemu"
# qemu_args NAME LAUNCHER ARGS...: run the launcher with the stand-in; its arguments, joined by
# spaces, in ARGS (socket paths shown as SOCK).
qemu_args() {
	local name=$1
	shift
	rm -f "$E2E_TMP/qemu-args"
	RC=0
	TMPDIR=$LTMP QEMU=$E2E_TMP/args-qemu timeout 60 ip netns exec "$NS_POD" "$LAUNCHER" \
		--meshslirp "$MESHSLIRP" "$@" </dev/null >"$E2E_TMP/$name.log" 2>"$E2E_TMP/$name-stderr.log" || RC=$?
	ARGS=
	[ ! -e "$E2E_TMP/qemu-args" ] ||
		ARGS=$(tr '\n' ' ' <"$E2E_TMP/qemu-args" | sed -E 's#(path=)[^ ,]*/(vhost|net)\.sock#\1SOCK#g')
	ARGS=${ARGS% }
}
# expect_args NAME WANT LAUNCHER ARGS...: the stand-in got exactly WANT.
expect_args() {
	local name=$1 want=$2
	shift 2
	qemu_args "$name" "$@"
	[ "$RC" = 0 ] || e2e_fail "$name: launcher exited with $RC: $(cat "$E2E_TMP/$name-stderr.log")"
	[ "$ARGS" = "$want" ] || e2e_fail "$name: QEMU got '$ARGS', want '$want'"
}
VU='-chardev socket,id=meshslirp0-sock,path=SOCK -netdev vhost-user,id=meshslirp0,chardev=meshslirp0-sock'
ram() { echo "-object memory-backend-memfd,id=meshslirp-ram,size=$1,share=on -machine memory-backend=meshslirp-ram"; }
DEV='-device virtio-net-pci,netdev=meshslirp0'
expect_args args-default "-nographic -m 128M $(ram 134217728) $VU $DEV,vectors=0" -- -nographic
expect_args args-1g-tcg "-m 1G -accel tcg $(ram 1073741824) $VU $DEV,vectors=0" -- -m 1G -accel tcg
expect_args args-kvm "-m 1024 -accel kvm $(ram 1073741824) $VU $DEV" -- -m 1024 -accel kvm
expect_args args-enable-kvm "-enable-kvm -m 256 $(ram 268435456) $VU $DEV,host_mtu=9000" \
	--mtu 9000 -- -enable-kvm -m 256
expect_args args-size "-m size=1.5G,slots=2,maxmem=4G -machine q35,accel=tcg $(ram 1610612736) $VU $DEV,vectors=0" \
	-- -m size=1.5G,slots=2,maxmem=4G -machine q35,accel=tcg
own='-machine memory-backend=mine -object memory-backend-memfd,id=mine,size=1G,share=on -m 1G'
# shellcheck disable=SC2086 # word splitting of $own is meant
expect_args args-own "$own -accel tcg $VU $DEV,vectors=0" -- $own -accel tcg
expect_args args-stream "-m 1G -netdev stream,id=meshslirp0,server=off,addr.type=unix,addr.path=SOCK $DEV" \
	--backend stream -- -m 1G
for bad in "--backend=tap -- -m 1G" "-- -m 1001k" "-- -m lots" "--vhost-user /x -- -m 1G"; do
	# shellcheck disable=SC2086
	qemu_args args-bad $bad
	[ "$RC" = 2 ] && [ ! -e "$E2E_TMP/qemu-args" ] ||
		e2e_fail "args '$bad': exit $RC (want 2, QEMU not started): $(cat "$E2E_TMP/args-bad-stderr.log")"
done
[ -z "$(ls -A "$LTMP")" ] || e2e_fail "args: launcher left $(ls -A "$LTMP") in its TMPDIR"
e2e_log "args: shared RAM from -m (default 128M, 1G, 1024, size=1.5G), vectors=0 only under TCG," \
	"host_mtu from --mtu, the user's own backend kept, stream; bad --backend and -m refused"

# 6. The command line: no -- is exit 2; --help is exit 0.
run_launcher nosep --meshslirp "$MESHSLIRP" --expose tcp:8080:80
[ "$RC" = 2 ] || e2e_fail "nosep: launcher exited with $RC, expected 2"
grep -qx 'meshslirp-qemu: separate meshslirp options from QEMU options with --' \
	"$E2E_TMP/nosep-stderr.log" || e2e_fail "nosep: wrong message"
run_launcher help --help
[ "$RC" = 0 ] && grep -q '^Usage: meshslirp-qemu ' "$E2E_TMP/help.log" || e2e_fail "help: rc $RC"
e2e_log "PASS"
