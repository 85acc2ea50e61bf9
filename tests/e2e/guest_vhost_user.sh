#!/usr/bin/env bash
# guest_vhost_user.sh - a real QEMU guest through meshslirp's vhost-user backend: DHCP, 1 MiB out
# with SHA-256, ICMP, an exposed port showing the client's real address, a second front-end
# refused, QEMU killed and a new QEMU served, a guest rebooting inside one QEMU, 4 MiB down,
# the guest's checksum and segmentation offloads used both ways, all with the daemon under
# --seccomp.  On libslirp's path (--steer-stack slirp), whose offload work (completed
# checksums, GSO segments, raised MSS) the counters below judge; without a sidecar the default
# takes the kernel path, which guest_basic.sh runs.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

SOCK=$E2E_TMP/vhost.sock
METRICS=127.0.0.1:9464
export E2E_GUEST_NETDEV=vhost-user
# host_mtu makes QEMU send NET_SET_MTU (protocol feature NET_MTU).
export E2E_GUEST_DEVICE_OPTS=,host_mtu=1500
e2e_start_meshslirp meshslirp --vhost-user "$SOCK" --expose tcp:8080:80 --metrics "$METRICS" \
	--seccomp --log-level debug --steer-stack slirp

e2e_build_guest "$E2E_TMP/guest-basic" "$E2E_SRC/scenario-basic.sh" "$E2E_SRC/peer.cgi"
e2e_build_guest "$E2E_TMP/guest-idle" "$E2E_SRC/scenario-idle.sh"

# QEMU must really run vhost-user: no fallback to its own virtio-net emulation.
check_qemu_log() {
	if grep -Eq 'unable to start vhost net|falling back|vhost.*(fail|error)' "$E2E_TMP/$1.log"; then
		e2e_fail "$1: QEMU did not run the vhost-user backend: $(grep -E 'vhost' "$E2E_TMP/$1.log" | head -3)"
	fi
}

e2e_run_basic_guest guest1 5001 "$SOCK" "$E2E_TMP/guest-basic"
check_qemu_log guest1
grep -q 'vhost-user: RX ring started' "$E2E_TMP/meshslirp.log" || e2e_fail "RX ring never started"
grep -q 'vhost-user: TX ring started' "$E2E_TMP/meshslirp.log" || e2e_fail "TX ring never started"
grep -q 'vhost-user: guest MTU 1500' "$E2E_TMP/meshslirp.log" || e2e_fail "no NET_SET_MTU seen"

# A second front-end while a guest is attached is refused; the guest is not disturbed.
e2e_boot_guest guest2 "$E2E_TMP/guest-idle" "$SOCK"
e2e_wait_for "$E2E_TMP/guest2.log" 'GUEST-IDLE' 60 || e2e_fail "guest2 did not come up"
e2e_wait_metric "$NS_POD" "$METRICS" meshslirp_guest_attached 1 10 ||
	e2e_fail "guest2 attached but meshslirp_guest_attached is ${E2E_METRIC:-unset}"
ip netns exec "$NS_POD" timeout 5 socat -u /dev/null UNIX-CONNECT:"$SOCK" 2>/dev/null || true
e2e_wait_for "$E2E_TMP/meshslirp.log" 'refusing a second vhost-user front-end' 10 ||
	e2e_fail "second front-end was not refused"
e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics-refused.txt"
[ "$(e2e_metric "$E2E_TMP/metrics-refused.txt" 'meshslirp_qemu_connections_total{result="refused"}')" = 1 ] ||
	e2e_fail "refusal not counted"
kill -0 "$GUEST_PID" || e2e_fail "guest2's QEMU died when a second front-end came"

# QEMU killed while the guest is up: the daemon resets the device and serves the next QEMU.
e2e_kill9 "$GUEST_PID"
e2e_wait_for "$E2E_TMP/meshslirp.log" 'vhost-user front-end .* detached: connection closed' 10 ||
	e2e_fail "daemon did not notice QEMU going away"
kill -0 "$MESHSLIRP_PID" || e2e_fail "daemon died with QEMU"
e2e_wait_metric "$NS_POD" "$METRICS" meshslirp_guest_attached 0 5 || true
[ "$(e2e_metric "$E2E_TMP/wait-metrics.txt" meshslirp_guest_attached)" = 0 ] ||
	e2e_fail "meshslirp_guest_attached still 1 after QEMU died"
e2e_log "guest2: QEMU killed with SIGKILL, daemon still running and detached"

e2e_run_basic_guest guest3 5002 "$SOCK" "$E2E_TMP/guest-basic"
check_qemu_log guest3

# The guest reboots inside the same QEMU: a device reset, then the driver sets the rings up
# again on the same connection.  The agent's channel (direct, to the node) and 1 MiB prove the
# new rings carry traffic.
e2e_build_guest "$E2E_TMP/guest-agent" "$E2E_SRC/scenario-agent.sh"
starts=$(grep -c 'vhost-user: RX ring started' "$E2E_TMP/meshslirp.log" || true)
e2e_agent_serve agent1
E2E_GUEST_REBOOT=1 e2e_boot_guest guest4 "$E2E_TMP/guest-agent" "$SOCK" "ms.node=$NODE_IP"
e2e_wait_for "$E2E_TMP/guest4.log" 'GUEST-AGENT boot_id=' 60 || e2e_fail "guest4's agent did not start"
e2e_agent 'reboot -f'
e2e_wait_for "$E2E_TMP/guest4.log" 'GUEST-CMD reboot -f' 20 || e2e_fail "guest4 did not take 'reboot -f'"
e2e_agent_serve agent2
e2e_wait_boots "$E2E_TMP/guest4.log" 2 "$GUEST_PID" 60
check_qemu_log guest4
e2e_bg sink4 "$NS_NODE" "$MSTOOL" sink --listen "$NODE_IP:5004" --bytes 1048576 --timeout 120
sink4_pid=$E2E_LAST_PID
e2e_wait_for "$E2E_TMP/sink4.log" '^LISTENING' 10 || e2e_fail "sink4 did not start"
e2e_agent blob b4 5004
e2e_wait_exit "$sink4_pid" 60 || e2e_fail "the transfer after the reboot did not finish"
want=$(e2e_field "$E2E_TMP/guest4.log" 'GUEST-BLOB b4 sha=' | sed 's/.*sha=//')
line=$(e2e_field "$E2E_TMP/sink4.log" '^SINK ')
[ -n "$want" ] && [ "${line##*sha256=}" = "$want" ] || e2e_fail "digest: guest '$want', sink '$line'"
# 4 MiB down into the guest: at host_mtu 1500 with GUEST_TSO4 these go as 32 KiB GSO frames.
head -c 4194304 /dev/urandom >"$E2E_TMP/down.bin"
e2e_bg down4 "$NS_NODE" socat -u OPEN:"$E2E_TMP/down.bin" TCP4-LISTEN:5005,bind="$NODE_IP",reuseaddr
e2e_wait_listening "$NS_NODE" 5005 10 || e2e_fail "the download server did not start"
e2e_agent pull d4 5005
e2e_wait_for "$E2E_TMP/guest4.log" 'GUEST-PULL-END d4' 90 || e2e_fail "the guest's download did not end"
line=$(e2e_field "$E2E_TMP/guest4.log" 'GUEST-PULL-END d4')
case "$line" in *" rc=0 bytes=4194304 "*) ;; *) e2e_fail "download into the guest: '$line'" ;; esac
n=$(grep -c 'vhost-user: RX ring started' "$E2E_TMP/meshslirp.log" || true)
[ "$n" -ge $((starts + 2)) ] || e2e_fail "the RX ring started $((n - starts)) times for guest4, want 2"
e2e_agent_quit guest4
e2e_log "guest4: rebooted inside one QEMU, rings set up again, 1 MiB after the reboot, sha256 equal"

e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics.txt"
for key in 'meshslirp_vhost_user_messages_total{result="handled"}' \
	'meshslirp_frames_total{direction="from_guest"}' 'meshslirp_frames_total{direction="to_guest"}'; do
	v=$(e2e_metric "$E2E_TMP/metrics.txt" "$key")
	[ "${v:-0}" -gt 0 ] || e2e_fail "$key is '${v:-}'"
done
# The guest's virtio-net driver took the offloads through QEMU: its 1 MiB uploads came as TSO
# segments with partial checksums, its SYNs had their MSS raised, and the download above went
# to it as GSO frames; nothing it sent contradicted its metadata.
offload() { e2e_metric "$E2E_TMP/metrics.txt" "meshslirp_offload_total{direction=\"$1\",what=\"$2\"}"; }
for k in from_guest:csum_completed from_guest:gso from_guest:mss_raised to_guest:gso \
	to_guest:csum_partial; do
	v=$(offload "${k%%:*}" "${k#*:}")
	[ "${v:-0}" -gt 0 ] || e2e_fail "offloads: $k is '${v:-}'"
done
[ "$(offload from_guest refused)" = 0 ] || e2e_fail "offloads: guest frames refused"
e2e_log "offloads: $(grep '^meshslirp_offload_total' "$E2E_TMP/metrics.txt" | sed 's/meshslirp_offload_total//' | tr '\n' ' ')"
for key in 'meshslirp_vhost_user_messages_total{result="bad"}' 'meshslirp_vhost_user_rings_broken_total'; do
	v=$(e2e_metric "$E2E_TMP/metrics.txt" "$key")
	[ "${v:-x}" = 0 ] || e2e_fail "$key is '${v:-}'"
done
grep -q 'seccomp' "$E2E_TMP/meshslirp.log" || true

n=$(grep -c 'vhost-user front-end (pid [0-9]*) attached on' "$E2E_TMP/meshslirp.log" || true)
[ "$n" = 4 ] || e2e_fail "expected 4 QEMU attachments, log shows $n"
# The message sequence of the first QEMU, for the record.
tr -d '\r' <"$E2E_TMP/meshslirp.log" | grep -E 'vhost-user: <- ' | awk '{$1=$1; print}' |
	sed -n '1,/GET_VRING_BASE/p' >"$E2E_TMP/sequence.txt" || true
e2e_log "first front-end's messages: $(grep -c . "$E2E_TMP/sequence.txt" || true) (see sequence.txt)"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
[ ! -e "$SOCK" ] || e2e_fail "daemon left its socket behind"
e2e_log "PASS"
