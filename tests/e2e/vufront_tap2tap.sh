#!/usr/bin/env bash
# vufront_tap2tap.sh - the VM model without the daemon: vu-frontend tap2tap between a guest tap and a pod bridge.
#
# A "guest" namespace holds tap0 (10.0.2.15/24), the guest kernel's NIC; a "pod" namespace
# holds the bridge k6t-eth0 (10.0.2.1/24) with the device tap vnet0 in it, as in a
# virt-launcher pod.  vu-frontend tap2tap moves frames between the two through virtio rings
# in a memfd (its own vhost-net stand-in on the device side).  For --offload none and tso,
# at MTU 1500: ping, then 1 MiB each way with equal SHA-256 at both ends, then the tool's
# counters: with tso the frames average more than an MTU (64 KiB GSO frames went through the
# rings), without it none is larger than an MTU.
source "$(dirname "$0")/lib.sh"
e2e_require_root
: "${VUFRONT:=$E2E_ROOT/build/tests/vu-frontend}"
NS_GUEST="$E2E_TAG-guest"
NS_PODV="$E2E_TAG-pod"
MTU=1500

# run OFFLOAD : one life of the model with --offload OFFLOAD.
run() {
	local off=$1 pid line ftx frx btx brx
	e2e_bg "vufront-$off" "$NS_PODV" "$VUFRONT" tap2tap --tap tap0 --netns "/run/netns/$NS_GUEST" \
		--device-tap vnet0 --device-netns "/run/netns/$NS_PODV" --mtu "$MTU" --offload "$off" \
		--timeout 120
	pid=$E2E_LAST_PID
	e2e_wait_for "$E2E_TMP/vufront-$off.log" '^VUFRONT-READY' 10 || e2e_fail "$off: vu-frontend not ready"
	e2e_log "$off: $(e2e_field "$E2E_TMP/vufront-$off.log" '^VUFRONT-NEGOTIATED')"
	case "$off:$(e2e_field "$E2E_TMP/vufront-$off.log" '^VUFRONT-NEGOTIATED')" in
	none:*offloads=none*) ;;
	tso:*offloads=csum,guest_csum,host_tso4,guest_tso4*) ;;
	*) e2e_fail "$off: unexpected negotiation" ;;
	esac
	ip -n "$NS_PODV" link set vnet0 master k6t-eth0
	ip -n "$NS_GUEST" addr add 10.0.2.15/24 dev tap0

	ip netns exec "$NS_GUEST" busybox ping -c 3 -W 3 10.0.2.1 >"$E2E_TMP/ping-$off.log" 2>&1 ||
		e2e_fail "$off: ping through the model failed"
	e2e_log "$off: ping: $(grep -Eo '[0-9]+ packets received' "$E2E_TMP/ping-$off.log")"

	e2e_transfer "out-$off" "$NS_GUEST" "$NS_PODV" 10.0.2.1:5001 10.0.2.1:5001 1048576
	e2e_log "$off: guest -> pod 1 MiB, sha256 ${E2E_SINK##*sha256=} at both ends"
	e2e_transfer "in-$off" "$NS_PODV" "$NS_GUEST" 10.0.2.15:5002 10.0.2.15:5002 1048576
	e2e_log "$off: pod -> guest 1 MiB, sha256 ${E2E_SINK##*sha256=} at both ends"

	kill -TERM "$pid"
	e2e_wait_exit "$pid" 10 || e2e_fail "$off: vu-frontend did not exit 0 on SIGTERM"
	line=$(e2e_field "$E2E_TMP/vufront-$off.log" '^VUFRONT frames_tx')
	[ -n "$line" ] || e2e_fail "$off: no VUFRONT line"
	e2e_log "$off: $line"
	case "$line" in *" dev_errors=0"*) ;; *) e2e_fail "$off: the device broke the protocol" ;; esac
	# The strict device checked every transmit header against what was negotiated.
	e2e_wait_for "$E2E_TMP/vufront-$off.log" '^VUFRONT-DEVICE .* bad_chains=0 bad_tx_hdrs=0' 1 ||
		e2e_fail "$off: $(e2e_field "$E2E_TMP/vufront-$off.log" '^VUFRONT-DEVICE')"
	ftx=$(sed -n 's/.* frames_tx=\([0-9]*\).*/\1/p' <<<"$line")
	frx=$(sed -n 's/.* frames_rx=\([0-9]*\).*/\1/p' <<<"$line")
	btx=$(sed -n 's/.* bytes_tx=\([0-9]*\).*/\1/p' <<<"$line")
	brx=$(sed -n 's/.* bytes_rx=\([0-9]*\).*/\1/p' <<<"$line")
	[ "$btx" -ge 1048576 ] && [ "$brx" -ge 1048576 ] || e2e_fail "$off: fewer bytes than sent"
	if [ "$off" = tso ]; then
		[ $((btx / ftx)) -gt $((MTU + 14)) ] && [ $((brx / frx)) -gt $((MTU + 14)) ] ||
			e2e_fail "$off: no GSO frames went through the rings"
	else
		[ $((btx / ftx)) -le $((MTU + 14)) ] && [ $((brx / frx)) -le $((MTU + 14)) ] ||
			e2e_fail "$off: frames above the MTU without offloads"
	fi
	e2e_log "$off: average frame $((btx / ftx)) bytes out, $((brx / frx)) in"
	# The tool's taps went with it; the guest address goes with tap0.
	ip -n "$NS_GUEST" link show tap0 >/dev/null 2>&1 && e2e_fail "$off: tap0 outlived the tool"
	return 0
}

e2e_netns_add "$NS_GUEST"
e2e_netns_add "$NS_PODV"
ip -n "$NS_PODV" link add k6t-eth0 type bridge
ip -n "$NS_PODV" addr add 10.0.2.1/24 dev k6t-eth0
ip -n "$NS_PODV" link set k6t-eth0 mtu "$MTU" up
run none
run tso
e2e_log "PASS"
