#!/usr/bin/env bash
# sched_auto.sh - --sched: auto runs the data thread as SCHED_BATCH while the guest moves bulk on the kernel path and as SCHED_OTHER again after; not on libslirp's path; normal never switches; batch from the start; an operator's policy is kept.
#
# The VM model (vu-frontend tap: a guest namespace's own TCP behind virtio rings, with
# offloads, MTU 65520) on the daemon's vhost-user backend, its TCP steered through HAProxy
# (the sidecar stand-in; the kernel path unless said) to a sink in the node namespace.
# The thread's policy is read from outside (chrt -p on the daemon's main thread, the data
# thread) and from the daemon's metrics.  One daemon at a time:
#   auto    (under --seccomp) a 1 GiB upload: SCHED_BATCH seen while it runs, a switch to it
#           counted (an upload under the entry rate is tried again, three times at most);
#           half a second after it, with no traffic since, SCHED_OTHER again (the daemon's
#           own check while in SCHED_BATCH), as many switches back counted, and a 64 KiB
#           upload after that leaves it so.  Small uploads before it must not switch.
#   normal  the same 1 GiB upload: SCHED_OTHER throughout, no switch counted (the upload
#           is the same, so this says the switch in auto came from the option).
#   slirp   auto on libslirp's path (--steer-stack slirp), where SCHED_BATCH cost
#           throughput: SCHED_OTHER throughout the upload, mode normal, and the log says so.
#   batch   (under --seccomp) SCHED_BATCH before any traffic, and a clean exit: its switch
#           back at the end goes through the filter.
#   chrt    auto started under chrt --batch (an operator's choice): kept throughout the
#           upload, no switch, the mode metric says normal, and the log says why.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_require chrt
: "${VUFRONT:=$E2E_ROOT/build/tests/vu-frontend}"
e2e_topology
NS_GUEST="$E2E_TAG-guest"
e2e_netns_add "$NS_GUEST"
METRICS=127.0.0.1:9090
BULK=$((1 << 30))

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"

# policy PID : the scheduling policy of thread PID, as the kernel reports it; a daemon
# gone fails the test with its log (under --seccomp a forbidden call kills it).
policy() {
	local out
	out=$(chrt -p "$1" 2>&1) || e2e_fail "daemon $1 gone: $(tail -n 5 "$E2E_TMP"/*.log | tail -n 20)"
	awk -F': ' '/policy/ {print $2}' <<<"$out"
}

# up NAME [WRAPPER...] -- ARGS... : the daemon (through WRAPPER, e.g. chrt) and the VM model.
up() {
	local name=$1 sock="$E2E_TMP/$1.sock"
	local -a wrap=()
	shift
	while [ "$1" != -- ]; do wrap+=("$1"); shift; done
	shift
	E2E_MESHSLIRP_WRAP=("${wrap[@]}")
	e2e_start_meshslirp "$name" --vhost-user "$sock" --mtu 65520 \
		--outbound-proxy 127.0.0.1:15001 --metrics "$METRICS" --steer-stack kernel "$@"
	E2E_MESHSLIRP_WRAP=()
	DAEMON=$MESHSLIRP_PID
	e2e_bg "tap-$name" "$NS_POD" "$VUFRONT" tap --tap tap0 --netns "/run/netns/$NS_GUEST" \
		--socket "$sock" --mtu 65520 --offload tso --timeout 300
	TAP=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/tap-$name.log" '^VUFRONT-READY' 10 || e2e_fail "$name: VM model not ready"
	ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0
	ip -n "$NS_GUEST" route add default via 10.0.2.2
}

down() {
	kill -TERM "$TAP" "$DAEMON"
	e2e_wait_exit "$TAP" 10 || e2e_fail "VM model did not exit 0"
	e2e_wait_exit "$DAEMON" 10 || e2e_fail "daemon did not exit 0"
	ip -n "$NS_GUEST" link del tap0 2>/dev/null || true
}

# upload NAME BYTES : one transfer guest -> node through the sidecar, its policies sampled
# every 20 ms into $E2E_TMP/NAME.policies while it runs.
upload() {
	local name=$1 bytes=$2 src i t0
	e2e_bg "$name-sink" "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --bytes "$bytes" --timeout 120
	e2e_wait_for "$E2E_TMP/$name-sink.log" '^LISTENING' 10 || e2e_fail "$name: sink did not start"
	ip netns exec "$NS_GUEST" "$MSTOOL" source --connect "$NODE_IP:5001" --bytes "$bytes" \
		--timeout 120 >"$E2E_TMP/$name-source.log" 2>&1 &
	src=$!
	E2E_PIDS+=("$src") # stopped by PID at cleanup should the test fail mid-upload
	: >"$E2E_TMP/$name.policies"
	t0=$(e2e_now_ms)
	for i in $(seq 6000); do # at most 120 s, the source's own timeout
		kill -0 "$src" 2>/dev/null || break
		policy "$DAEMON" >>"$E2E_TMP/$name.policies"
		sleep 0.02
	done
	wait "$src" || e2e_fail "$name: upload failed: $(cat "$E2E_TMP/$name-source.log")"
	RATE_MIBS=$((bytes * 1000 / 1048576 / ($(e2e_now_ms) - t0 + 1)))
	e2e_wait_exit "$E2E_LAST_PID" 30 || e2e_fail "$name: sink did not finish"
	grep -q "bytes=$bytes " "$E2E_TMP/$name-sink.log" ||
		e2e_fail "$name: sink: $(cat "$E2E_TMP/$name-sink.log")"
}

# metrics NAME : scrape into $E2E_TMP/NAME.metrics; SW_BATCH, SW_NORMAL, MODE from it.
metrics() {
	e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/$1.metrics"
	SW_BATCH=$(e2e_metric "$E2E_TMP/$1.metrics" 'meshslirp_sched_switches_total{to="batch"}')
	SW_NORMAL=$(e2e_metric "$E2E_TMP/$1.metrics" 'meshslirp_sched_switches_total{to="normal"}')
	MODE=$(grep -o '^meshslirp_sched_mode{mode="[a-z]*"} 1' "$E2E_TMP/$1.metrics" || true)
}

seen() { sort -u "$E2E_TMP/$1.policies" | tr '\n' ' '; }

# kept NAME POLICY MODE [LOG] : through a bulk upload the thread stays POLICY, no switch is
# counted, the mode metric says MODE, and the daemon's log has LOG (why), if given.
kept() {
	local name=$1 want=$2 mode=$3 why=${4:-}
	upload "$name-bulk" "$BULK"
	[ "$(seen "$name-bulk")" = "$want " ] || e2e_fail "$name: policies seen: $(seen "$name-bulk")"
	metrics "$name"
	[ "$SW_BATCH" = 0 ] || e2e_fail "$name: switched ($SW_BATCH)"
	[ "$MODE" = "meshslirp_sched_mode{mode=\"$mode\"} 1" ] || e2e_fail "$name: mode '$MODE'"
	[ -z "$why" ] || grep -qF -- "$why" "$E2E_TMP/$name.log" ||
		e2e_fail "$name: the log does not say '$why'"
	e2e_log "$name: $want throughout 1 GiB ($(wc -l <"$E2E_TMP/$name-bulk.policies") samples), no switch, mode $mode"
}

# auto: the default.
up auto -- --seccomp
[ "$(policy "$DAEMON")" = SCHED_OTHER ] || e2e_fail "auto: started as $(policy "$DAEMON")"
metrics auto-0
[ "$MODE" = 'meshslirp_sched_mode{mode="auto"} 1' ] || e2e_fail "auto: mode '$MODE'"
for i in $(seq 5); do upload "trickle$i" 4096; sleep 0.05; done
metrics auto-trickle
[ "$SW_BATCH" = 0 ] || e2e_fail "auto: small transfers switched to SCHED_BATCH ($SW_BATCH)"
# The daemon enters at 128 MiB/s over a window of 100 ms (SCHEDMODE_ENTER_BPS).  An upload's
# average rate is a lower bound on its best window's, so an upload at 128 MiB/s or more that
# never switched is a failure.  One slower than that proves nothing either way: a sanitizer
# build on a loaded 2-core machine moved 1 GiB at 75 MiB/s.  Such an upload is tried again, at
# most three times in all; if none reached the rate, the switch was not exercised here (the
# normal build's run, at several times the rate, exercises it) and that is said, while the
# checks that need no switch (none counted, SCHED_OTHER after) still hold.
ENTER_MIBS=128
SWITCHED=false
for try in 1 2 3; do
	upload "auto-bulk$try" "$BULK"
	BULK_MIBS=$RATE_MIBS
	if grep -q '^SCHED_BATCH$' "$E2E_TMP/auto-bulk$try.policies"; then
		SWITCHED=true
		break
	fi
	[ "$BULK_MIBS" -lt "$ENTER_MIBS" ] ||
		e2e_fail "auto: never SCHED_BATCH during a 1 GiB upload at $BULK_MIBS MiB/s (seen: $(seen "auto-bulk$try"))"
	e2e_log "auto: upload $try at $BULK_MIBS MiB/s, under the entry rate of $ENTER_MIBS MiB/s: not switched (seen: $(seen "auto-bulk$try"))"
done
metrics auto-bulk
if $SWITCHED; then
	# One switch, or more where the machine stalled the transfer for a window (CI).
	[ "$SW_BATCH" -ge 1 ] || e2e_fail "auto: $SW_BATCH switches to SCHED_BATCH, want 1 or more"
else
	# A window above the rate may still have switched for less than a sample's interval.
	e2e_log "auto: NOT EXERCISED: three 1 GiB uploads all under $ENTER_MIBS MiB/s (this machine and build are too slow to reach the entry rate); switches counted: $SW_BATCH"
fi
sleep 0.5
[ "$(policy "$DAEMON")" = SCHED_OTHER ] ||
	e2e_fail "auto: still $(policy "$DAEMON") half a second after the bulk ended"
metrics auto-quiet
[ "$SW_NORMAL" = "$SW_BATCH" ] || e2e_fail "auto: $SW_NORMAL switches back for $SW_BATCH there"
upload auto-after 65536
[ "$(policy "$DAEMON")" = SCHED_OTHER ] ||
	e2e_fail "auto: $(policy "$DAEMON") after a 64 KiB upload"
if $SWITCHED; then
	e2e_log "auto: SCHED_OTHER, SCHED_BATCH during 1 GiB at $BULK_MIBS MiB/s ($(grep -c '^SCHED_BATCH$' "$E2E_TMP/auto-bulk$try.policies") of $(wc -l <"$E2E_TMP/auto-bulk$try.policies") samples, upload $try), SCHED_OTHER after; switches $SW_BATCH and $SW_NORMAL"
fi
down

# normal: the same upload, never switched.
up normal -- --sched normal
kept normal SCHED_OTHER normal
down

# slirp: auto stays off on libslirp's path (the last --steer-stack wins).
up slirp -- --steer-stack slirp
kept slirp SCHED_OTHER normal \
	'--sched auto: the data thread stays SCHED_OTHER (SCHED_BATCH only on the kernel path'
down

# batch: from the start.
up batch -- --sched batch --seccomp
[ "$(policy "$DAEMON")" = SCHED_BATCH ] || e2e_fail "batch: started as $(policy "$DAEMON")"
metrics batch
[ "$MODE" = 'meshslirp_sched_mode{mode="batch"} 1' ] || e2e_fail "batch: mode '$MODE'"
e2e_log "batch: SCHED_BATCH before any traffic"
down

# chrt: an operator's policy is kept through bulk.
up chrt chrt --batch 0 -- --sched auto
kept chrt SCHED_BATCH normal \
	'--sched auto: the data thread keeps the policy it was started with (not SCHED_OTHER)'
down
e2e_log "PASS"
