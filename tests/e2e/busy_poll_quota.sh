#!/usr/bin/env bash
# busy_poll_quota.sh - --busy-poll auto polls only where no cgroup CPU quota applies, and names the quota it found; a fixed window polls regardless.
#
# The daemon is started with nsenter --net, which keeps the test's mounts (as a pod's daemon
# sees its cgroup filesystem), not with ip netns exec, which mounts a sysfs of its own
# without /sys/fs/cgroup.  Part A, always: the daemon in the test's own cgroup, with
# --busy-poll auto.  Either it polls (window 200 us in its metrics) and no ancestor of its
# cgroup has a quota (the test's own reading of the cgroup files agrees), or it does not
# (window 0) and names a quota file that really holds one.  Then under ip netns exec: it
# cannot tell, says so, and polls.  Part B, where a cgroup with a quota can be made here
# (cgroup v1's cpu controller, or v2 with cpu delegated): the daemon started in it, auto:
# no polling, that cgroup's file named; --busy-poll 200: polls.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

# start NAME CGROUP_DIR|- ARGS... : start the daemon (stream socket, metrics) in the pod's
# network namespace and that cgroup; ENTER (default nsenter --net=) says how.
start() {
	local name=$1 cg=$2 port=$((9100 + ${#E2E_PIDS[@]}))
	local -a enter=(nsenter "--net=/run/netns/$NS_POD")
	[ "${ENTER:-}" = ip ] && enter=(ip netns exec "$NS_POD")
	shift 2
	(
		[ "$cg" = - ] || echo "$BASHPID" >"$cg/cgroup.procs"
		exec "${enter[@]}" "$MESHSLIRP" --ready-fd 3 --socket "$E2E_TMP/$name.sock" \
			--metrics "127.0.0.1:$port" "$@" 3>"$E2E_TMP/$name.ready" >"$E2E_TMP/$name.log" 2>&1
	) &
	E2E_PIDS+=("$!")
	LAST_PID=$! LAST_PORT=$port
	e2e_wait_for "$E2E_TMP/$name.ready" '^READY$' 10 || e2e_fail "$name did not become ready"
}

# window NAME : set W to the polling ceiling in the running daemon's metrics, in seconds
# (not a command substitution: e2e_fail inside one would only end the subshell).
window() {
	e2e_scrape "$NS_POD" "127.0.0.1:$LAST_PORT" "$E2E_TMP/$1.metrics"
	W=$(e2e_metric "$E2E_TMP/$1.metrics" meshslirp_busy_poll_window_seconds)
}

# quota_over_us : print the first quota file over this shell's cgroup, reading the usual
# mount points (cgroup v2 at /sys/fs/cgroup, v1's cpu controller beside it) up the path
# /proc/self/cgroup names; nothing if none.  The test's own reading, not the daemon's code.
quota_over_us() {
	local line path dir f
	while IFS= read -r line; do
		path=${line#*:*:}
		case $line in
		0::*) dir=/sys/fs/cgroup f=cpu.max ;;
		*:*cpu,*:* | *:cpu:*) dir=/sys/fs/cgroup/cpu f=cpu.cfs_quota_us ;;
		*) continue ;;
		esac
		while :; do
			if [ -f "$dir$path/$f" ] && grep -Eq '^[0-9]+( [0-9]+)?$' "$dir$path/$f"; then
				echo "$dir$path/$f"
				return
			fi
			[ -z "$path" ] || [ "$path" = / ] && break
			path=${path%/*}
		done
	done </proc/self/cgroup
}

stop() {
	kill -TERM "$LAST_PID"
	e2e_wait_exit "$LAST_PID" 10 || e2e_fail "daemon $LAST_PID did not stop"
}

# Part A: where the test runs.
start own - --busy-poll auto
window own
if [ "$W" = 0.000200 ]; then
	grep -q -- "--busy-poll: the main loop polls up to 200 us" "$E2E_TMP/own.log" ||
		e2e_fail "polls, but did not say so: $(cat "$E2E_TMP/own.log")"
	over=$(quota_over_us)
	[ -z "$over" ] || e2e_fail "polls under the quota in $over ($(cat "$over"))"
	e2e_log "no quota over the test's cgroup: --busy-poll auto polls, up to 200 us"
elif [ "$W" = 0.000000 ]; then
	line=$(grep -- "--busy-poll auto: a CPU quota applies (" "$E2E_TMP/own.log") ||
		e2e_fail "does not poll, and named no quota: $(cat "$E2E_TMP/own.log")"
	file=$(sed -n 's/.*a CPU quota applies (\([^:]*\): .*/\1/p' <<<"$line")
	case $file in
	*/cpu.max) grep -Eq '^[0-9]+ [0-9]+$' "$file" || e2e_fail "$file holds no quota: $(cat "$file")" ;;
	*/cpu.cfs_quota_us) grep -Eq '^[0-9]+$' "$file" || e2e_fail "$file holds no quota: $(cat "$file")" ;;
	*) e2e_fail "named '$file', no quota file" ;;
	esac
	e2e_log "a quota over the test's cgroup ($file: $(cat "$file")): --busy-poll auto does not poll"
else
	e2e_fail "meshslirp_busy_poll_window_seconds '$W'"
fi
stop

# No cgroup filesystem in sight (ip netns exec mounts a sysfs of its own, where
# /sys/fs/cgroup is an empty directory): no quota can be seen; it polls, guarded by the
# load, and says so.
if [ -z "$(ip netns exec "$NS_POD" ls -A /sys/fs/cgroup 2>/dev/null)" ]; then
	ENTER=ip start blind - --busy-poll auto
	window blind
	[ "$W" = 0.000200 ] || e2e_fail "under ip netns exec: window $W"
	grep -q -- "--busy-poll auto: cannot tell whether a CPU quota applies (no cgroup file" \
		"$E2E_TMP/blind.log" || e2e_fail "did not say it cannot tell: $(cat "$E2E_TMP/blind.log")"
	stop
	e2e_log "no cgroup filesystem (ip netns exec): cannot tell, says so, polls"
else
	e2e_log "not run: ip netns exec here keeps a cgroup filesystem in view"
fi

# Part B: a cgroup of our own, with a quota of half a CPU (removed again if the quota
# cannot be set).
cg=
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	if grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null &&
		mkdir "/sys/fs/cgroup/meshslirp-e2e-$$" 2>/dev/null; then
		cg=/sys/fs/cgroup/meshslirp-e2e-$$
		echo "50000 100000" >"$cg/cpu.max" 2>/dev/null || { rmdir "$cg"; cg=; }
	fi
else
	for r in /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup/cpu; do
		if [ -d "$r" ] && mkdir "$r/meshslirp-e2e-$$" 2>/dev/null; then
			cg=$r/meshslirp-e2e-$$
			echo 50000 >"$cg/cpu.cfs_quota_us" 2>/dev/null || { rmdir "$cg"; cg=; }
			break
		fi
	done
fi
if [ -z "$cg" ]; then
	# Not a skip: part A ran and judged.  Said loudly, so a missing part is seen in the log.
	e2e_log "part B not run: no cgroup with a CPU quota can be made here"
	exit 0
fi
# On a failure: the daemons stopped first (a cgroup with processes cannot be removed).
E2E_CLEANUP_HOOKS+=("e2e_stop_all; [ ! -d '$cg' ] || rmdir '$cg'")

start quota "$cg" --busy-poll auto
window quota
[ "$W" = 0.000000 ] || e2e_fail "under a quota, window $W"
grep -q -- "--busy-poll auto: a CPU quota applies ($cg/cpu" "$E2E_TMP/quota.log" ||
	e2e_fail "did not name $cg's quota: $(cat "$E2E_TMP/quota.log")"
stop

start fixed "$cg" --busy-poll 200
window fixed
[ "$W" = 0.000200 ] || e2e_fail "--busy-poll 200 under a quota: window $W"
stop
rmdir "$cg" || e2e_fail "cannot remove $cg"
e2e_log "under a quota ($cg): --busy-poll auto does not poll and names it; --busy-poll 200 polls"
e2e_log "PASS"
