#!/usr/bin/env bash
# privilege.sh - least privilege: --user and --seccomp refuse bad values, drop to nobody with no
# capability (CAP_NET_BIND_SERVICE only for a low --expose port), and the daemon still serves
# everything: steering with a PROXY header, inbound headers, DNS upstream, metrics, the control
# socket, QEMU leaving and coming back, signals, a clean exit; --busy-poll under the filter; the
# vhost-user stall guard's thread.  A daemon started unprivileged
# with an ambient capability (systemd's AmbientCapabilities=) is trimmed by the same rule.  One
# started as nobody with no capability at all (a KubeVirt pod) sets the kernel path up in a user
# namespace and steers through it, its private stack's send buffer bounded as wmem_max allows.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"

NOBODY_UID=$(id -u nobody)
NOBODY_GID=$(id -g nobody)
as_nobody() { setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups "$@"; }

# status_field PID FIELD : a field of /proc/PID/status, tabs squeezed to single spaces.
status_field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }

# check_caps PID CAPS SECCOMP WHO : CapEff/CapPrm = CAPS, CapInh/CapAmb zero, Seccomp =
# SECCOMP (2: filter, 0: none); a failure names WHO.
check_caps() {
	local pid=$1 caps=$2 seccomp=$3 who=$4 f v
	for f in CapEff CapPrm; do
		v=$(status_field "$pid" $f)
		[ "$v" = "$caps" ] || e2e_fail "$who: $f is $v, want $caps"
	done
	for f in CapInh CapAmb; do
		v=$(status_field "$pid" $f)
		[ "$v" = 0000000000000000 ] || e2e_fail "$who: $f is $v, want none"
	done
	v=$(status_field "$pid" Seccomp)
	[ "$v" = "$seccomp" ] || e2e_fail "$who: Seccomp is $v, want $seccomp"
}

# check_status PID CAPS SECCOMP : ids all nobody, no groups, check_caps, CapBnd = CAPS too
# (only --user clears the bounding set), NoNewPrivs 1, and the same in every thread.
check_status() {
	local pid=$1 caps=$2 seccomp=$3 v
	[ "$(status_field "$pid" Uid)" = "$NOBODY_UID $NOBODY_UID $NOBODY_UID $NOBODY_UID" ] ||
		e2e_fail "Uid: $(status_field "$pid" Uid)"
	[ "$(status_field "$pid" Gid)" = "$NOBODY_GID $NOBODY_GID $NOBODY_GID $NOBODY_GID" ] ||
		e2e_fail "Gid: $(status_field "$pid" Gid)"
	[ -z "$(status_field "$pid" Groups)" ] || e2e_fail "Groups: $(status_field "$pid" Groups)"
	check_caps "$pid" "$caps" "$seccomp" "pid $pid"
	v=$(status_field "$pid" CapBnd)
	[ "$v" = "$caps" ] || e2e_fail "CapBnd is $v, want $caps"
	[ "$(status_field "$pid" NoNewPrivs)" = 1 ] || e2e_fail "NoNewPrivs is not 1"
	# Every thread (GLib's worker too) has the same credentials and filter.
	for t in /proc/"$pid"/task/*; do
		grep -q "^CapEff:[[:space:]]*$caps$" "$t/status" || e2e_fail "thread ${t##*/}: CapEff"
		grep -q "^Seccomp:[[:space:]]*$seccomp$" "$t/status" || e2e_fail "thread ${t##*/}: Seccomp"
	done
}

# ctl SOCKET JSON : one control request, its one-line answer on stdout (as nobody, like the
# daemon's user's tools would).
ctl() { printf '%s\n' "$2" | as_nobody timeout 5 socat -t 2 - UNIX-CONNECT:"$1"; }

# --- 1. refusals: exit 2 and one line naming --user --------------------------------------
bad_user() {
	local want=$1 rc=0
	shift
	"$@" >/dev/null 2>"$E2E_TMP/err.txt" || rc=$?
	[ "$rc" = 2 ] || e2e_fail "'$*' exited $rc, not 2: $(cat "$E2E_TMP/err.txt")"
	[ "$(wc -l <"$E2E_TMP/err.txt")" = 1 ] || e2e_fail "'$*' printed: $(cat "$E2E_TMP/err.txt")"
	grep -q -- "--user.*$want" "$E2E_TMP/err.txt" || e2e_fail "'$*' said '$(cat "$E2E_TMP/err.txt")'"
}
bad_user "no such user" "$MESHSLIRP" --socket "$E2E_TMP/x.sock" --user no-such-user-ms
bad_user "no such group" "$MESHSLIRP" --socket "$E2E_TMP/x.sock" --user nobody:no-such-group-ms
bad_user "not uid 0" "$MESHSLIRP" --socket "$E2E_TMP/x.sock" --user root
bad_user "expected USER or USER:GROUP" "$MESHSLIRP" --socket "$E2E_TMP/x.sock" --user nobody:
bad_user "started as root" as_nobody "$MESHSLIRP" --socket "$E2E_TMP/x.sock" --user nobody
[ ! -e "$E2E_TMP/x.sock" ] || e2e_fail "a refused daemon created its socket"
e2e_log "--user: unknown user or group, root, a bad shape, no root to start with: exit 2, one line"

# Root without --user still serves, says it keeps root, and has no_new_privs.
e2e_start_meshslirp rootd --socket "$E2E_TMP/root.sock"
grep -q "warning: running as root without --user" "$E2E_TMP/rootd.log" ||
	e2e_fail "no warning for root without --user: $(cat "$E2E_TMP/rootd.log")"
[ "$(status_field "$MESHSLIRP_PID" NoNewPrivs)" = 1 ] || e2e_fail "root daemon: NoNewPrivs"
[ "$(status_field "$MESHSLIRP_PID" Seccomp)" = 0 ] || e2e_fail "root daemon: Seccomp without --seccomp"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "root daemon did not exit 0"
e2e_log "root without --user: warning logged, no_new_privs set, no filter"

# --- 2. --user nobody --seccomp, no low port: no capability at all ------------------------
# The sockets live in a directory of the daemon's user, as in /run/meshslirp: QEMU running as
# that user connects, and the daemon can remove them at exit.
chmod 0711 "$E2E_TMP"
RUN=$E2E_TMP/run
mkdir -m 0700 "$RUN"
chown "$NOBODY_UID:$NOBODY_GID" "$RUN"
SOCK=$RUN/net.sock
CTL=$RUN/ctl.sock

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}" \
	'frontend inbound' \
	"  bind $POD_IP:8080" \
	'  default_backend guest' \
	'backend guest' \
	'  server app 127.0.0.1:18080 send-proxy-v2'
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
e2e_bg dns-udp "$NS_POD" socat -T 30 UDP4-RECVFROM:15053,bind=127.0.0.1,fork,reuseaddr PIPE

e2e_start_meshslirp meshslirp --socket "$SOCK" --control "$CTL" --user nobody --seccomp \
	--outbound-proxy 127.0.0.1:15001 --dns-upstream 127.0.0.1:15053 \
	--expose tcp:18080:80 --expose-address 127.0.0.1 --inbound-proxy-protocol optional \
	--metrics 127.0.0.1:9090 --busy-poll 200
check_status "$MESHSLIRP_PID" 0000000000000000 2
grep -q "running as uid $NOBODY_UID gid $NOBODY_GID, .*capabilities: none" "$E2E_TMP/meshslirp.log" ||
	e2e_fail "no privilege line in the log"
[ "$(stat -c %u:%g "$SOCK")" = "$NOBODY_UID:$NOBODY_GID" ] || e2e_fail "socket owner $(stat -c %u:%g "$SOCK")"
[ "$(stat -c %u:%g:%a "$CTL")" = "$NOBODY_UID:$NOBODY_GID:600" ] ||
	e2e_fail "control socket $(stat -c %u:%g:%a "$CTL")"
e2e_log "--user nobody --seccomp: uid/gid $NOBODY_UID/$NOBODY_GID, no groups, no capabilities," \
	"NoNewPrivs 1, Seccomp 2 on every thread; sockets owned by nobody"

# QEMU as the daemon's user can connect (it attaches, then leaves).
as_nobody timeout 5 socat -u OPEN:/dev/null UNIX-CONNECT:"$SOCK" || e2e_fail "nobody cannot connect to $SOCK"
e2e_wait_for "$E2E_TMP/meshslirp.log" 'QEMU \(pid [0-9]+\) detached' 5 || e2e_fail "no attach/detach"

# start_pump NAME [SOCKET] : a frame pump plays QEMU between tap0 in the guest namespace and
# the daemon's socket (default $SOCK).
start_pump() {
	e2e_bg "$1" "$NS_POD" "$MSTOOL" pump --tap tap0 --netns "/run/netns/$NS_GUEST" --socket "${2:-$SOCK}" \
		--mtu 1500 --timeout 300
	PUMP_PID=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/$1.log" '^PUMPING' 10 || e2e_fail "frame pump did not start"
	ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
	ip -n "$NS_GUEST" route add default via 10.0.2.2
}
start_pump pump
g() { ip netns exec "$NS_GUEST" "$@"; }

# Steered through HAProxy with a PROXY v2 header: digests equal, original destination seen.
e2e_transfer steered "$NS_GUEST" "$NS_NODE" "$NODE_IP:5001" "$NODE_IP:5001" 1048576
gport=${E2E_SOURCE_ADDR#10.0.2.15:}
e2e_wait_for "$E2E_TMP/haproxy.log" "HAPROXY-OUT client=$POD_IP:$gport orig_dst=$NODE_IP:5001 " 5 ||
	e2e_fail "HAProxy log lacks the original destination: $(cat "$E2E_TMP/haproxy.log")"
e2e_log "steered 1 MiB through the sidecar, sha256 equal, orig_dst=$NODE_IP:5001"

# DNS to the upstream; UDP and ICMP echo straight out.
reply=$(echo meshslirp-dns-probe | g timeout 10 socat -T 3 - UDP4:10.0.2.3:53) || e2e_fail "DNS upstream failed"
[ "$reply" = meshslirp-dns-probe ] || e2e_fail "DNS upstream answered '$reply'"
e2e_bg udpecho "$NS_NODE" socat -T 10 UDP4-RECVFROM:5353,fork,reuseaddr PIPE
e2e_wait_listening "$NS_NODE" 5353 10 || e2e_fail "the UDP echo server did not start"
reply=$(echo meshslirp-udp-probe | g timeout 10 socat -T 3 - UDP4:"$NODE_IP":5353) || e2e_fail "UDP out failed"
[ "$reply" = meshslirp-udp-probe ] || e2e_fail "UDP echo returned '$reply'"
g busybox ping -c 2 -W 3 "$NODE_IP" >"$E2E_TMP/ping.log" 2>&1 || e2e_fail "ICMP echo failed"
e2e_log "DNS upstream, UDP and ICMP echo out: ok"

# Inbound through HAProxy's send-proxy-v2: the guest sees the node's own address.
e2e_transfer inbound "$NS_NODE" "$NS_GUEST" 10.0.2.15:80 "$POD_IP:8080" 65536
case "$E2E_SINK" in *"peer=$E2E_SOURCE_ADDR "*) ;; *)
	e2e_fail "guest saw '$E2E_SINK', client was $E2E_SOURCE_ADDR" ;; esac
e2e_log "inbound with a PROXY v2 header: the guest saw the client $E2E_SOURCE_ADDR"

# Control socket: add a forward, use it, list it and the flows, remove it.
ans=$(ctl "$CTL" '{"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_port": 18081, "guest_port": 81}}')
[ "$ans" = '{"return": {"id": 18081}}' ] || e2e_fail "add_hostfwd: $ans"
e2e_transfer added "$NS_POD" "$NS_GUEST" 10.0.2.15:81 127.0.0.1:18081 1000
ans=$(ctl "$CTL" '{"execute": "list_hostfwd"}')
case "$ans" in *'"host_port": 18081, "guest_addr": "10.0.2.15", "guest_port": 81}'*) ;;
*) e2e_fail "list_hostfwd: $ans" ;; esac
ans=$(ctl "$CTL" '{"execute": "list_flows"}')
case "$ans" in '{"return": {"flows": ['*) ;; *) e2e_fail "list_flows: $ans" ;; esac
ans=$(ctl "$CTL" '{"execute": "remove_hostfwd", "arguments": {"id": 18081}}')
[ "$ans" = '{"return": {}}' ] || e2e_fail "remove_hostfwd: $ans"
# A low port needs the capability the daemon gave up: refused, and the daemon lives on.
ans=$(ctl "$CTL" '{"execute": "add_hostfwd", "arguments": {"host_port": 81, "guest_port": 81}}')
case "$ans" in *'"error"'*'cannot listen on port 81: Permission denied'*) ;;
*) e2e_fail "add_hostfwd of port 81 without the capability: $ans" ;; esac
e2e_log "control: add_hostfwd used and listed, list_flows, remove_hostfwd; port 81 refused (EACCES)"

# Metrics and SIGUSR1.
e2e_scrape "$NS_POD" 127.0.0.1:9090 "$E2E_TMP/metrics.txt"
[ "$(e2e_steered_total "$E2E_TMP/metrics.txt")" -ge 1 ] ||
	e2e_fail "steered flow not counted"
[ "$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_inbound_headers_total{version="2"}')" -ge 1 ] ||
	e2e_fail "inbound header not counted"
# --busy-poll under the filter, with its guard (--busy-poll-when idle): work met while polling
# (caught: after at least one sched_yield) or a window not begun because a task waited for a CPU
# (yielded: the guard's pread of /proc/loadavg said so; on a loaded machine every window may go
# this way).  Either call killed the daemon without its rule; test_sandbox checks each alone.
[ "$(e2e_metric "$E2E_TMP/metrics.txt" meshslirp_busy_poll_window_seconds)" = 0.000200 ] ||
	e2e_fail "busy-poll window: $(e2e_metric "$E2E_TMP/metrics.txt" meshslirp_busy_poll_window_seconds)"
caught=$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_loop_wakeups_total{result="caught"}')
yielded=$(e2e_metric "$E2E_TMP/metrics.txt" meshslirp_busy_poll_yielded_total)
[ $(( ${caught:-0} + ${yielded:-0} )) -ge 1 ] ||
	e2e_fail "--busy-poll: no work met while polling, no window yielded (caught '$caught', yielded '$yielded')"
kill -USR1 "$MESHSLIRP_PID"
e2e_wait_for "$E2E_TMP/meshslirp.log" 'frames guest->stack [1-9]' 5 || e2e_fail "SIGUSR1 logged nothing"
e2e_log "metrics scraped (--busy-poll 200: $caught events met while polling, $yielded windows yielded," \
	"$(e2e_metric "$E2E_TMP/metrics.txt" 'meshslirp_loop_wakeups_total{result="slept"}') wake-ups)," \
	"SIGUSR1 logged the counters"

# QEMU leaves and comes back: the next one is served.
kill -TERM "$PUMP_PID"
e2e_wait_exit "$PUMP_PID" 5 || true
e2e_wait_for "$E2E_TMP/meshslirp.log" 'detached: .*waiting' 5 || e2e_fail "pump exit not seen"
start_pump pump2
e2e_transfer again "$NS_GUEST" "$NS_NODE" "$NODE_IP:5002" "$NODE_IP:5002" 65536

# Stopped and continued (job control, a debugger): its interrupted poll() is restarted.
kill -STOP "$MESHSLIRP_PID"
sleep 0.5
kill -CONT "$MESHSLIRP_PID"
sleep 0.5
kill -0 "$MESHSLIRP_PID" 2>/dev/null || e2e_fail "daemon died after SIGSTOP/SIGCONT"
e2e_transfer cont "$NS_GUEST" "$NS_NODE" "$NODE_IP:5003" "$NODE_IP:5003" 65536
e2e_log "QEMU gone and back, SIGSTOP/SIGCONT: served again"

check_status "$MESHSLIRP_PID" 0000000000000000 2
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM: $(tail -3 "$E2E_TMP/meshslirp.log")"
[ ! -e "$SOCK" ] && [ ! -e "$CTL" ] || e2e_fail "sockets left behind: $(ls "$RUN")"
e2e_log "SIGTERM: exit 0, both sockets removed"

# --- 3. a low exposed port: exactly CAP_NET_BIND_SERVICE -----------------------------------
NS_GUEST2="$E2E_TAG-guest2"
e2e_netns_add "$NS_GUEST2"
e2e_start_meshslirp low --tap tap1 --netns "/run/netns/$NS_GUEST2" --control "$CTL" \
	--user nobody --seccomp --expose tcp:80:80
check_status "$MESHSLIRP_PID" 0000000000000400 2
grep -q "capabilities: cap_net_bind_service" "$E2E_TMP/low.log" || e2e_fail "no capability line"
ip -n "$NS_GUEST2" addr add 10.0.2.15/24 dev tap1
ip -n "$NS_GUEST2" route add default via 10.0.2.2
e2e_transfer low "$NS_NODE" "$NS_GUEST2" 10.0.2.15:80 "$POD_IP:80" 65536
# The kept capability also serves a runtime forward of a low port.
ans=$(ctl "$CTL" '{"execute": "add_hostfwd", "arguments": {"host_port": 81, "guest_port": 81}}')
[ "$ans" = '{"return": {"id": 81}}' ] || e2e_fail "add_hostfwd 81 with the capability: $ans"
e2e_transfer low81 "$NS_NODE" "$NS_GUEST2" 10.0.2.15:81 "$POD_IP:81" 1000
# Direct DNS: libslirp reads resolv.conf (read-only open under the filter).
echo probe | ip netns exec "$NS_GUEST2" timeout 5 socat -T 1 - UDP4:10.0.2.3:53 >/dev/null 2>&1 || true
kill -0 "$MESHSLIRP_PID" || e2e_fail "daemon died: $(tail -3 "$E2E_TMP/low.log")"
e2e_log "--expose tcp:80:80: CapEff/CapPrm/CapBnd 0x400 only; port 80 and a runtime port 81 served"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM: $(tail -3 "$E2E_TMP/low.log")"
[ ! -e "$CTL" ] || e2e_fail "control socket left behind"

# --- 4. started unprivileged with an ambient capability (systemd's User= and --------------
#        AmbientCapabilities=CAP_NET_BIND_SERVICE): trimmed by the same rule, ambient cleared.
# start_ambient NAME ARGS... : the daemon as nobody with CAP_NET_BIND_SERVICE inherited.
start_ambient() {
	local name=$1
	shift
	ip netns exec "$NS_POD" setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups \
		--inh-caps +net_bind_service --ambient-caps +net_bind_service \
		"$MESHSLIRP" --ready-fd 3 --socket "$RUN/$name.sock" --seccomp "$@" \
		3>"$E2E_TMP/$name.ready" >"$E2E_TMP/$name.log" 2>&1 &
	MESHSLIRP_PID=$!
	E2E_PIDS+=("$MESHSLIRP_PID")
	e2e_wait_for "$E2E_TMP/$name.ready" '^READY$' 10 || e2e_fail "$name: not ready: $(cat "$E2E_TMP/$name.log")"
}
for want in "8082 0000000000000000 none" "82 0000000000000400 cap_net_bind_service"; do
	set -- $want
	start_ambient "amb$1" --expose "tcp:$1:80"
	grep -q "running as uid $NOBODY_UID gid $NOBODY_GID, no_new_privs, capabilities: $3" \
		"$E2E_TMP/amb$1.log" || e2e_fail "ambient, port $1: log says $(grep running "$E2E_TMP/amb$1.log")"
	check_caps "$MESHSLIRP_PID" "$2" 2 "ambient, port $1"
	kill -TERM "$MESHSLIRP_PID"
	e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "ambient, port $1: no exit 0"
done
e2e_log "started as nobody with an ambient CAP_NET_BIND_SERVICE: dropped for port 8082," \
	"kept (ambient cleared) for port 82"

# --- 5. the unix legs as nobody under --seccomp: the exposed socket handed to nobody (0660),
#        a client's hand-over (dup3) allowed by the filter, the file removed at exit.
IN_SOCK=$RUN/in.sock
e2e_start_meshslirp unixlegs --socket "$RUN/unix.sock" --user nobody --seccomp \
	--outbound-proxy "unix:$RUN/absent.sock" --expose "unix:$IN_SOCK:80" \
	--inbound-proxy-protocol required --metrics 127.0.0.1:9092
[ "$(stat -c %u:%g:%a "$IN_SOCK")" = "$NOBODY_UID:$NOBODY_GID:660" ] ||
	e2e_fail "unix exposed socket $(stat -c %u:%g:%a "$IN_SOCK")"
printf 'PROXY TCP4 not-an-address 198.18.0.2 1 2\r\n' |
	as_nobody timeout 5 socat -T 3 - UNIX-CONNECT:"$IN_SOCK" >/dev/null 2>&1 || true
e2e_scrape "$NS_POD" 127.0.0.1:9092 "$E2E_TMP/metrics-unix.txt"
for check in 'meshslirp_unix_legs_total{direction="inbound",result="adopted"} 1' \
	'meshslirp_inbound_refused_total{reason="invalid_header"} 1'; do
	set -- $check
	[ "$(e2e_metric "$E2E_TMP/metrics-unix.txt" "$1")" = "$2" ] ||
		e2e_fail "unix legs: metric $1 = '$(e2e_metric "$E2E_TMP/metrics-unix.txt" "$1")', want $2"
done
[ "$(status_field "$MESHSLIRP_PID" Seccomp)" = 2 ] || e2e_fail "unix legs: no filter"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "unix legs: no exit 0 on SIGTERM"
[ ! -e "$IN_SOCK" ] || e2e_fail "unix exposed socket left behind"
e2e_log "unix legs as nobody under --seccomp: socket nobody:nobody 0660, a client handed over" \
	"and its bad header refused, socket removed at exit"

# --- 6. vhost-user as nobody under --seccomp: the stall guard's watcher thread, started after
#        the drop and before the filter, has the same credentials and filter, and lives on
#        under it (it sleeps and wakes once a second: two periods here).
e2e_start_meshslirp vu --vhost-user "$RUN/vu.sock" --user nobody --seccomp
grep -qx stallguard /proc/"$MESHSLIRP_PID"/task/*/comm ||
	e2e_fail "vhost-user: no stallguard thread: $(cat /proc/"$MESHSLIRP_PID"/task/*/comm)"
sleep 2.5
kill -0 "$MESHSLIRP_PID" 2>/dev/null || e2e_fail "vhost-user: daemon died: $(tail -3 "$E2E_TMP/vu.log")"
check_status "$MESHSLIRP_PID" 0000000000000000 2
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "vhost-user: no exit 0 on SIGTERM: $(tail -3 "$E2E_TMP/vu.log")"
e2e_log "vhost-user as nobody under --seccomp: every thread, the stall guard's watcher too," \
	"dropped and filtered; alive after its periods"

# --- 7. started as nobody with no capability at all, as in a KubeVirt pod (virt-launcher's
#        UID 107, neither CAP_SYS_ADMIN nor CAP_NET_ADMIN): the kernel path is set up through a
#        user namespace of the daemon's own (kstack.h), a steered flow crosses it with its PROXY
#        header, and the private stack's send buffer is what net.core.wmem_max allows, as
#        SO_SNDBUFFORCE needs CAP_NET_ADMIN in the host's first user namespace (ksteer.c,
#        ksteer_bound_private_sndbuf()): the bound where wmem_max holds it whole, else autotuning.
logs=("$E2E_TMP"/{meshslirp,low,amb8082,amb82}.log)
if ! ip netns exec "$NS_POD" setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups \
	unshare --user --net sh -c 'test -r /dev/net/tun -a -w /dev/net/tun' 2>/dev/null; then
	why="nobody gets no user namespace or no /dev/net/tun here"
	[ "${CI:-}" != true ] || e2e_fail "kernel path as nobody: $why (CI=true: no skips)"
	e2e_log "kernel path as nobody: not checked, $why"
else
	# Section 2's second pump left with its daemon; its tap0 must be gone before the next.
	kill -TERM "$PUMP_PID" 2>/dev/null || true
	e2e_wait_exit "$PUMP_PID" 10 || true
	E2E_MESHSLIRP_WRAP=(setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups)
	e2e_start_meshslirp kernel --socket "$RUN/kernel.sock" --seccomp \
		--outbound-proxy 127.0.0.1:15001 --metrics 127.0.0.1:9093
	E2E_MESHSLIRP_WRAP=()
	logs+=("$E2E_TMP/kernel.log")
	grep -q "the guest's TCP ends in the kernel's stack" "$E2E_TMP/kernel.log" ||
		e2e_fail "kernel path as nobody: not set up: $(cat "$E2E_TMP/kernel.log")"
	check_caps "$MESHSLIRP_PID" 0000000000000000 2 "kernel path as nobody"
	start_pump pump3 "$RUN/kernel.sock"
	e2e_transfer ksteered "$NS_GUEST" "$NS_NODE" "$NODE_IP:5004" "$NODE_IP:5004" 1048576
	gport=${E2E_SOURCE_ADDR#10.0.2.15:}
	e2e_wait_for "$E2E_TMP/haproxy.log" "HAPROXY-OUT client=$POD_IP:$gport orig_dst=$NODE_IP:5004 " 5 ||
		e2e_fail "kernel path as nobody: HAProxy log lacks the flow: $(tail -3 "$E2E_TMP/haproxy.log")"
	e2e_scrape "$NS_POD" 127.0.0.1:9093 "$E2E_TMP/metrics-kernel.txt"
	[ "$(e2e_metric "$E2E_TMP/metrics-kernel.txt" meshslirp_kernel_flows_total)" -ge 1 ] ||
		e2e_fail "kernel path as nobody: the flow did not take the kernel path"

	bound=$(( $(sed -n 's/^#define KSTEER_PRIVATE_SNDBUF \(([^)]*)\).*/\1/p' \
		"$E2E_ROOT/proxy-bridge/ksteer.h") + 0 ))
	[ "$bound" -gt 0 ] || e2e_fail "KSTEER_PRIVATE_SNDBUF not found in proxy-bridge/ksteer.h"
	wmem_max=$(cat /proc/sys/net/core/wmem_max)
	out=$("$MSTOOL" private-listener --pid "$MESHSLIRP_PID" --timeout 5 2>&1) ||
		e2e_fail "kernel path as nobody: no private listener found: $out"
	sndbuf=${out#PRIVATE-LISTENER sndbuf=}
	if [ "$wmem_max" -ge "$bound" ]; then
		# The kernel doubles what it is given: SO_SNDBUF reads back twice the bound.
		[ "$sndbuf" = $((2 * bound)) ] ||
			e2e_fail "kernel path as nobody, wmem_max $wmem_max: send buffer $sndbuf, want $((2 * bound))"
		grep -q "send buffers are $((2 * bound / 1024)) KiB$" "$E2E_TMP/kernel.log" ||
			e2e_fail "kernel path as nobody: $(grep 'send buffer' "$E2E_TMP/kernel.log")"
	else
		# A bound cut by wmem_max measured slower than none: the listener keeps a new
		# socket's tcp_wmem default (a new namespace copies the first one's), and autotunes.
		read -r _ wmem_default _ </proc/sys/net/ipv4/tcp_wmem
		[ "$sndbuf" = "$wmem_default" ] ||
			e2e_fail "kernel path as nobody, wmem_max $wmem_max: send buffer $sndbuf, want" \
				"tcp_wmem's default $wmem_default (autotuning)"
		grep -q "send buffers autotune" "$E2E_TMP/kernel.log" ||
			e2e_fail "kernel path as nobody: $(grep 'send buffer' "$E2E_TMP/kernel.log")"
	fi
	kill -TERM "$MESHSLIRP_PID"
	e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "kernel path as nobody: no exit 0 on SIGTERM"
	e2e_log "kernel path as nobody with no capability: set up in a user namespace, 1 MiB steered" \
		"through it (orig_dst=$NODE_IP:5004), the private listener's send buffer $sndbuf" \
		"(wmem_max $wmem_max)"
fi

! grep -Eq 'warning|error' "${logs[@]}" ||
	e2e_fail "warnings: $(grep -Eh 'warning|error' "${logs[@]}")"
e2e_log "PASS"
