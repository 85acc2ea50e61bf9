#!/usr/bin/env bash
# vhost_user_dhcp.sh - regression: a guest on --vhost-user gets its DHCP lease on udhcpc's first
# try, on three boots in a row, with no exposed port and no other traffic to drive the daemon.
# The bug it guards against: the vhost-user backend published the answers libslirp gives at once
# to a guest's frames (DHCP offer and ack, ARP) only at the netstack's next dispatch, which with
# no host socket in libslirp never comes: no lease at all, and with a socket a lease only after
# udhcpc's retries. vu_tx_process() now publishes them at the end of each TX batch.
# Per boot: the /init's own udhcpc (-t 5 -T 1) sent one DISCOVER and one REQUEST (no retransmit,
# so each answer came within its 1 s); then udhcpc again with busybox's defaults (-t 3 -T 3)
# leases within DHCP_BOUND_MS of its DISCOVER, timed in the guest, again without a retransmit.
source "$(dirname "$0")/lib.sh"
e2e_require_root
e2e_topology

SOCK=$E2E_TMP/vhost.sock
METRICS=127.0.0.1:9464
BOOTS=3
# From udhcpc's deconfig (just before its DISCOVER) to bound (the ACK in): two answers, each a
# few milliseconds of the daemon's work; 2 s leaves room for a loaded machine, and a retransmit
# (after udhcpc's 3 s) is caught on its own.
DHCP_BOUND_MS=2000
export E2E_GUEST_NETDEV=vhost-user

# No --expose and no --outbound-proxy: libslirp has no host socket, so nothing but the guest's
# frames makes the daemon act. The metrics server is the daemon's own, outside libslirp, and
# scraped only after the last boot.
e2e_start_meshslirp meshslirp --vhost-user "$SOCK" --metrics "$METRICS" --log-level debug

# The scenario reports the /init's DHCP (its udhcpc log is /tmp/udhcpc.log), then asks again with
# busybox's default tries, its script noting the guest's uptime at deconfig and at bound.
cat >"$E2E_TMP/dhcp-timer" <<'EOF'
#!/bin/sh
# udhcpc script of vhost_user_dhcp.sh: the guest's uptime at each event, nothing applied.
read -r up _ < /proc/uptime
echo "$up" > "/tmp/dhcp-$1"
EOF
chmod +x "$E2E_TMP/dhcp-timer"
cat >"$E2E_TMP/scenario-dhcp.sh" <<'EOF'
# scenario of vhost_user_dhcp.sh: how the /init's lease went, then a second one timed.
count() { grep -c "$1" "$2"; }
echo "GUEST-DHCP-INIT discovers=$(count 'broadcasting discover' /tmp/udhcpc.log)" \
	"selects=$(count 'broadcasting select' /tmp/udhcpc.log)" > /dev/console
udhcpc -i eth0 -n -q -s /extra/dhcp-timer > /tmp/udhcpc2.log 2>&1
rc=$?
ms=$(awk -v a="$(cat /tmp/dhcp-deconfig 2>/dev/null)" -v b="$(cat /tmp/dhcp-bound 2>/dev/null)" \
	'BEGIN { if (a == "" || b == "") print "none"; else printf "%d\n", (b - a) * 1000 + 0.5 }')
echo "GUEST-DHCP-TIMED rc=$rc discovers=$(count 'broadcasting discover' /tmp/udhcpc2.log)" \
	"selects=$(count 'broadcasting select' /tmp/udhcpc2.log) ms=$ms" > /dev/console
sed 's/^/GUEST-UDHCPC /' /tmp/udhcpc.log /tmp/udhcpc2.log > /dev/console
EOF
e2e_build_guest "$E2E_TMP/guest" "$E2E_TMP/scenario-dhcp.sh" "$E2E_TMP/dhcp-timer"

# One QEMU after the other on the same daemon, each a cold boot.
for boot in $(seq 1 "$BOOTS"); do
	name=boot$boot
	e2e_boot_guest "$name" "$E2E_TMP/guest" "$SOCK"
	e2e_wait_for "$E2E_TMP/$name.log" 'GUEST-LEASE|GUEST-DHCP-FAILED|GUEST-ERROR' 60 ||
		e2e_fail "$name: no DHCP outcome within 60 s"
	line=$(e2e_field "$E2E_TMP/$name.log" 'GUEST-LEASE')
	case "$line" in
	*"ip=10.0.2.15 router=10.0.2.2 dns=10.0.2.3 mask=255.255.255.0"*) ;;
	*) e2e_fail "$name: no lease from the guest's own udhcpc (-t 5 -T 1), or an unexpected one: '$line'" ;;
	esac
	e2e_wait_exit "$GUEST_PID" 60 || e2e_fail "$name: guest did not power off"
	e2e_wait_for "$E2E_TMP/$name.log" 'GUEST-SCENARIO-EXIT rc=0' 1 || e2e_fail "$name: scenario failed"
	if grep -Eq 'unable to start vhost net|falling back|vhost.*(fail|error)' "$E2E_TMP/$name.log"; then
		e2e_fail "$name: QEMU did not run the vhost-user NIC: $(grep -E 'vhost' "$E2E_TMP/$name.log" | head -3)"
	fi
	init=$(e2e_field "$E2E_TMP/$name.log" 'GUEST-DHCP-INIT ')
	[ "$init" = "GUEST-DHCP-INIT discovers=1 selects=1" ] ||
		e2e_fail "$name: the /init's udhcpc retransmitted (want one DISCOVER, one REQUEST): '$init'"
	timed=$(e2e_field "$E2E_TMP/$name.log" 'GUEST-DHCP-TIMED ')
	case "$timed" in
	"GUEST-DHCP-TIMED rc=0 discovers=1 selects=1 ms="[0-9]*) ;;
	*) e2e_fail "$name: udhcpc with busybox's defaults did not lease on its first try: '$timed'" ;;
	esac
	ms=${timed##*ms=}
	[ "$ms" -le "$DHCP_BOUND_MS" ] ||
		e2e_fail "$name: lease $ms ms after the DISCOVER, want at most $DHCP_BOUND_MS ms"
	e2e_log "$name: ${line#GUEST-LEASE }; /init's udhcpc: one DISCOVER, one REQUEST;" \
		"again with busybox's defaults: bound $ms ms after the DISCOVER"
done

# The premise: libslirp polled no host socket, so no netstack dispatch could have carried the
# answers; and each boot attached its own front-end.
e2e_scrape "$NS_POD" "$METRICS" "$E2E_TMP/metrics.txt"
v=$(e2e_metric "$E2E_TMP/metrics.txt" meshslirp_libslirp_sockets)
[ "$v" = 0 ] || e2e_fail "libslirp polls $v host sockets, want 0: this test needs a daemon with none"
n=$(grep -c 'vhost-user front-end (pid [0-9]*) attached on' "$E2E_TMP/meshslirp.log" || true)
[ "$n" = "$BOOTS" ] || e2e_fail "expected $BOOTS QEMU attachments, log shows $n"
kill -TERM "$MESHSLIRP_PID"
e2e_wait_exit "$MESHSLIRP_PID" 10 || e2e_fail "daemon did not exit 0 on SIGTERM"
e2e_log "PASS"
