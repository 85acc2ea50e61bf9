#!/usr/bin/env bash
# urgent_seccomp.sh - a guest's urgent (out-of-band) TCP data under --seccomp, on the kernel path or (URGENT_STEER_STACK=slirp) libslirp's: the daemon lives, the bytes reach the server in order, and each flow ends in order.
#
# The VM model (vu-frontend tap: a guest namespace's own TCP behind virtio rings) on the
# daemon's vhost-user backend, steered through HAProxy (the sidecar stand-in) to a sink in
# the node namespace.  The guest sends "ab", "!" as urgent data, "cd" (mstool urgent), three
# times.
#   - kernel: splice() stops at an urgent mark; the relay asks SIOCATMARK and steps over it
#     with recv(), calls the seccomp filter must let through (the inproc tests run no
#     filter).  The urgent byte is left out: the sink gets "abcd", 3 marks are counted.
#   - slirp: the bridge clears URG before libslirp (slirp quirk urgent_pointer_trusted), so
#     the urgent byte travels inline: the sink gets "ab!cd", 3 segments are counted.
#     Without the clearing libslirp sends "!" with MSG_OOB and HAProxy drops it ("abcd").
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_vm_model_topology
METRICS=127.0.0.1:9090
SOCK="$E2E_TMP/vu.sock"
STACK=${URGENT_STEER_STACK:-kernel}

e2e_haproxy_cfg "$E2E_TMP/haproxy.cfg" "${E2E_HAPROXY_OUTBOUND_PROXY[@]}"
e2e_start_haproxy haproxy "$NS_POD" "$E2E_TMP/haproxy.cfg"
e2e_start_meshslirp meshslirp --vhost-user "$SOCK" --outbound-proxy 127.0.0.1:15001 \
	--metrics "$METRICS" --steer-stack "$STACK" --seccomp
DAEMON=$MESHSLIRP_PID
e2e_vm_model_up "$SOCK" 120
TAP=$VM_MODEL_PID

stream=abcd
[ "$STACK" = slirp ] && stream='ab!cd'
want=$(printf '%s' "$stream" | sha256sum | cut -d' ' -f1)
for i in 1 2 3; do
	e2e_bg "sink$i" "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5001" --timeout 30
	sink=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/sink$i.log" '^LISTENING' 10 || e2e_fail "sink $i did not start"
	sent=0
	ip netns exec "$NS_GUEST" "$MSTOOL" urgent --connect "$NODE_IP:5001" --timeout 30 \
		>"$E2E_TMP/urgent$i.log" 2>&1 || sent=$?
	# Under --seccomp a call outside the filter kills the daemon: say so first.
	kill -0 "$DAEMON" 2>/dev/null ||
		e2e_fail "the daemon died on urgent data: $(tail -n 20 "$E2E_TMP/meshslirp.log")"
	[ "$sent" = 0 ] || e2e_fail "sender $i failed ($sent): $(cat "$E2E_TMP/urgent$i.log")"
	e2e_wait_exit "$sink" 30 || e2e_fail "sink $i did not finish: $(cat "$E2E_TMP/sink$i.log")"
	grep -q "bytes=${#stream} sha256=$want" "$E2E_TMP/sink$i.log" ||
		e2e_fail "sink $i: $(cat "$E2E_TMP/sink$i.log") (want the ${#stream} bytes $stream)"
done

e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/m"
if [ "$STACK" = kernel ]; then
	marks=$(e2e_metric "$E2E_TMP/m" meshslirp_kernel_urgent_marks_total)
	closed=$(e2e_metric "$E2E_TMP/m" 'meshslirp_kernel_flow_events_total{event="closed"}')
	aborted=$(e2e_metric "$E2E_TMP/m" 'meshslirp_kernel_flow_events_total{event="aborted"}')
	[ "$marks" = 3 ] || e2e_fail "urgent marks counted: $marks, want 3"
	[ "$closed" = 3 ] && [ "$aborted" = 0 ] || e2e_fail "flows closed $closed, aborted $aborted"
	what="3 marks stepped over, closed in order"
else
	cleared=$(e2e_metric "$E2E_TMP/m" 'meshslirp_tcp_urgent_cleared_total{direction="from_guest"}')
	# One per urgent segment; a guest that retransmits one sends it again.
	[ "${cleared:-0}" -ge 3 ] || e2e_fail "urgent segments cleared: ${cleared:-none}, want 3 or more"
	what="$cleared urgent segments sent inline"
fi
kill -TERM "$TAP" "$DAEMON"
e2e_wait_exit "$TAP" 10 || e2e_fail "VM model did not exit 0"
e2e_wait_exit "$DAEMON" 10 || e2e_fail "daemon did not exit 0: $(tail -n 20 "$E2E_TMP/meshslirp.log")"
e2e_log "3 flows with urgent data on the $STACK path: $stream each, $what, under --seccomp"
e2e_log "PASS"
