#!/usr/bin/env bash
# wedged_rule.sh - e2e_guest_wedged, the rule by which rerun-on-guest-fault reruns a test whose guest stopped transmitting, on made-up ticks: it takes only that shape.
#
# The rule decides which failures are rerun, so a rule too loose would hide a backend's stall.
# A guest log and ring that fit (three ticks over 20 s: no sent frame reclaimed, TCP holding
# back retransmissions whose frames are still in the guest's queue, one connection with bytes
# queued under its retransmission timer; every offered frame taken), on QEMU's backend and on
# ours (whose last interrupt passed the guest's used_event, or none was due), then each way
# that must not: our backend skipped the interrupt the guest asked for, no retransmission held
# back (a backend that stopped answering), frames reclaimed in between, a zero-window probe
# pending, no timer, nothing queued, the ticks span under 20 s, the backend left frames in
# the ring (but for QEMU's own backend idle after asking to be notified of them: the lost
# notification), no ring read, the connection listening.
source "$(dirname "$0")/lib.sh"

sock=0F02000A:A000\>010012C6:1389
# tick UP TX SPUR SOCKSTATE : one GUEST-NETSTAT line with the connection in state SOCKSTATE
# (ST/TXQ:RXQ/TR:WHEN/RETR/CWND).
tick() {
	echo "GUEST-NETSTAT up=$1 eth0 rx=90 tx=$2 irq=44 spur=$3 tcp=$sock/$4" \
		"0F02000A:B000>010012C6:1BBC/01/00000000:00000000/00:00000000/00000000/10"
}
held=01/0001A000:00000000/01:00000200/00000004/1
# unpopped NAME BACKEND AVAIL_EVENT INUSE LAST_AVAIL [USED_EVENT] : NAME's transmit queue with 4
# frames offered after used.idx 0x0a0c (2572), and QEMU's view of it, as QEMU's monitor prints it.
unpopped() {
	echo "$1.mon queue 1 (num 256, backend $2): avail.flags=0x0000 avail.idx=0x0a10 used.flags=0x0000 used.idx=0x0a0c used_event=${6:-0x0a0e} avail_event=$3 qemu.inuse:$4 qemu.used_idx:2572 qemu.last_avail_idx:$5 "
}
# ring NAME BACKEND AVAIL USED USED_EVENT [LAST_CALL] : NAME's transmit queue as e2e_diag prints
# it, and with LAST_CALL the daemon's counter.
ring() {
	echo "$1.mon queue 1 (num 256, backend $2): avail.flags=0x0000 avail.idx=$3 used.flags=0x0000 used.idx=$4 used_event=$5 avail_event=0x0a10"
	[ -z "${6:-}" ] || echo "meshslirp_vhost_user_last_call_used_index{ring=\"tx\"} $6"
}

# check NAME WANT TICKS... : write NAME.log from the tick lines (a console line between them),
# judge it against NAME's ring from $RING (default: QEMU's, every frame taken), want 0
# (wedged) or 1.
check() {
	local name=$1 want=$2 got=0 why
	shift 2
	{ echo GUEST-READY; printf '%s\nGUEST-BLOB b2 sha=0\n' "$@"; } >"$E2E_TMP/$name.log"
	${RING:-ring "$name" qemu 0x0a10 0x0a10 0x0a0e} >"$E2E_TMP/$name.diag"
	why=$(e2e_guest_wedged "$E2E_TMP/$name.log" "$E2E_TMP/$name.diag") || got=1
	[ "$got" = "$want" ] || e2e_fail "$name: judged $got, want $want ($why)"
	e2e_log "$name: $([ "$got" = 0 ] && echo "$why" || echo "not wedged, as it must not be")"
}

# three SPUR1 SPUR2 SPUR3 [STATE] : three ticks 10 s apart, nothing reclaimed.
three() { tick 20 100 "$1" "${4:-$held}"; tick 30 100 "$2" "${4:-$held}"; tick 40 100 "$3" "${4:-$held}"; }
mapfile -t T < <(three 2 3 5)
check wedged 0 "$(tick 10 60 0 "$held")" "${T[@]}"
mapfile -t C < <(three 2 3 5 04/00012000:00000000/01:00000200/00000004/1)
check closing 0 "${C[@]}"
RING="ring vu_called vhost-user 0x0a10 0x0a10 0x0a0e 2576" check vu_called 0 "${T[@]}"
RING="ring vu_not_due vhost-user 0x0a10 0x0a10 0x0a10" check vu_not_due 0 "${T[@]}"
RING="ring vu_no_call vhost-user 0x0a10 0x0a10 0x0a0e 2574" check vu_no_call 1 "${T[@]}"
RING="ring vu_no_metric vhost-user 0x0a10 0x0a10 0x0a0e" check vu_no_metric 1 "${T[@]}"
mapfile -t X < <(three 5 5 5)
check not_held_back 1 "${X[@]}"
check reclaiming 1 "$(tick 20 100 2 "$held")" "$(tick 30 100 3 "$held")" "$(tick 40 101 5 "$held")"
mapfile -t X < <(three 2 3 5 01/0001A000:00000000/04:00000900/00000000/10)
check zero_window 1 "${X[@]}"
mapfile -t X < <(three 2 3 5 01/0001A000:00000000/00:00000000/00000000/10)
check no_timer 1 "${X[@]}"
mapfile -t X < <(three 2 3 5 01/00000000:00000000/01:00000200/00000004/1)
check nothing_queued 1 "${X[@]}"
check brief 1 "$(tick 20 100 2 "$held")" "$(tick 25 100 3 "$held")" "$(tick 30 100 5 "$held")"
mapfile -t X < <(three 2 3 5 0A/00000001:00000000/01:00000200/00000004/1)
check listening 1 "${X[@]}"
RING="ring ring_left qemu 0x0a10 0x0a0c 0x0a0b" check ring_left 1 "${T[@]}"
# QEMU left offered frames in the ring, idle, though it had asked to be told of them: its own
# lost notification, rerun; the same on our backend, or with a frame in flight (a peer not
# reading), or QEMU not asking for a notification there, or behind on what it popped, fails.
RING="unpopped qemu_unpopped qemu 0x0a0c 0 2572" check qemu_unpopped 0 "${T[@]}"
RING="unpopped vu_unpopped vhost-user 0x0a0c 0 2572 0x0a0c" check vu_unpopped 1 "${T[@]}"
RING="unpopped in_flight qemu 0x0a0c 1 2573" check in_flight 1 "${T[@]}"
RING="unpopped no_notify qemu 0x0a0e 0 2572" check no_notify 1 "${T[@]}"
RING="unpopped popped_more qemu 0x0a0c 0 2573" check popped_more 1 "${T[@]}"
RING="echo no_ring.mon queue 1: no ring" check no_ring 1 "${T[@]}"
e2e_log "PASS"
