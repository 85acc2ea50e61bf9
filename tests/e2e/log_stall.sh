#!/usr/bin/env bash
# log_stall.sh - a daemon whose stderr nobody reads keeps serving: its log lines are dropped and counted, never waited for.
#
# The daemon's stderr is a FIFO shrunk to one page (F_SETPIPE_SZ) that a holder keeps open
# and never reads, and --log-level debug logs lines per flow.  The VM model (vu-frontend tap:
# a guest namespace's own TCP behind virtio rings) opens 200 short direct flows (more where a
# page is larger) to an echo server in the node namespace, far more lines than a page holds.  Then a 1 MiB transfer out
# must complete, the metrics endpoint answer with meshslirp_log_lines_dropped_total above
# 0, and the daemon exit 0 on SIGTERM.  With a blocking write the daemon's one thread stops in
# it at the first line that does not fit, and the flows time out.  Under --seccomp.  Then a
# daemon started with stderr closed must give fd 2 /dev/null, not its first socket.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_vm_model_topology
METRICS=127.0.0.1:9090
SOCK="$E2E_TMP/vu.sock"
FIFO="$E2E_TMP/stderr.fifo"

mkfifo "$FIFO"
# Opened read-write, so neither its open nor the daemon's waits for the other; never read.
e2e_bg holder "$NS_POD" python3 -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ
print("HOLDING size=%d" % fcntl.fcntl(fd, 1032), flush=True)  # F_GETPIPE_SZ
time.sleep(120)
' "$FIFO"
HOLDER=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/holder.log" '^HOLDING size=[0-9]+$' 10 ||
	e2e_fail "the FIFO holder did not start: $(cat "$E2E_TMP/holder.log")"
# One page: 4 KiB here; where pages are larger, more flows to fill it: a flow logs about 200
# bytes, and size / 20 flows are ten pages' worth.
size=$(sed -n 's/^HOLDING size=//p' "$E2E_TMP/holder.log")
FLOWS=$((size / 20 > 200 ? size / 20 : 200))

ip netns exec "$NS_POD" env -u MALLOC_PERTURB_ "$MESHSLIRP" --ready-fd 3 --vhost-user "$SOCK" \
	--metrics "$METRICS" --log-level debug --seccomp \
	3>"$E2E_TMP/meshslirp.ready" >"$E2E_TMP/meshslirp.log" 2>"$FIFO" &
DAEMON=$!
E2E_PIDS+=("$DAEMON")
e2e_wait_for "$E2E_TMP/meshslirp.ready" '^READY$' 10 || e2e_fail "meshslirp did not become ready"
e2e_vm_model_up "$SOCK" 100
TAP=$VM_MODEL_PID

e2e_bg echo "$NS_NODE" "$MSTOOL" echo --listen "$NODE_IP:7000" --timeout 100
e2e_wait_for "$E2E_TMP/echo.log" '^LISTENING' 10 || e2e_fail "echo server did not start"
ip netns exec "$NS_GUEST" "$MSTOOL" flows --connect "$NODE_IP:7000" --count "$FLOWS" --parallel 8 \
	--timeout 40 >"$E2E_TMP/flows.log" 2>&1 ||
	e2e_fail "flows through a daemon with a stalled stderr failed: $(tail -n 3 "$E2E_TMP/flows.log")"
e2e_transfer out "$NS_GUEST" "$NS_NODE" "$NODE_IP:5001" "$NODE_IP:5001" 1048576

e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/m"
dropped=$(e2e_metric "$E2E_TMP/m" meshslirp_log_lines_dropped_total)
[ "${dropped:-0}" -gt 0 ] || e2e_fail "no log line counted as dropped (${dropped:-none}): was stderr ever full?"
kill -TERM "$TAP" "$DAEMON"
e2e_wait_exit "$TAP" 10 || e2e_fail "VM model did not exit 0"
e2e_wait_exit "$DAEMON" 10 || e2e_fail "daemon did not exit 0 with a stalled stderr"
kill -TERM "$HOLDER"
e2e_log "$FLOWS flows and 1 MiB out with stderr a full, unread page of $size bytes:" \
	"$dropped log lines dropped, $(e2e_field "$E2E_TMP/flows.log" '^FLOWS')"

# Started with stderr closed, the daemon gives fd 2 /dev/null, not its first socket.
ip netns exec "$NS_POD" env -u MALLOC_PERTURB_ "$MESHSLIRP" --ready-fd 3 \
	--vhost-user "$E2E_TMP/vu2.sock" --metrics 127.0.0.1:9091 \
	3>"$E2E_TMP/closed.ready" >"$E2E_TMP/closed.log" 2>&- &
CLOSED=$!
E2E_PIDS+=("$CLOSED")
e2e_wait_for "$E2E_TMP/closed.ready" '^READY$' 10 || e2e_fail "the daemon with stderr closed did not start"
fd2=$(readlink "/proc/$CLOSED/fd/2" || true)
[ "$fd2" = /dev/null ] || e2e_fail "started with stderr closed, its fd 2 is '$fd2', want /dev/null"
kill -TERM "$CLOSED"
e2e_wait_exit "$CLOSED" 10 || e2e_fail "the daemon with stderr closed did not exit 0"
e2e_log "started with stderr closed: fd 2 is /dev/null"
e2e_log "PASS"
