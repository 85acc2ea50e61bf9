#!/usr/bin/env bash
# wedged_rule.sh - e2e_guest_wedged, the rule by which rerun-on-guest-fault reruns a test whose guest stopped transmitting, on made-up ticks: it takes only that shape.
#
# The rule decides which failures are rerun, so a rule too loose would hide a backend's stall.
# One guest log and ring that fit (three ticks over 20 s, nothing sent, one connection holding
# unsent bytes with no timer, every offered frame taken), then each way that must not: the
# NIC sent in between, the retransmission timer runs (a backend that stopped answering), a
# zero-window probe is pending, nothing queued, the ticks span under 20 s, the backend left
# frames in the ring, no ring read, the connection listening.
source "$(dirname "$0")/lib.sh"

sock=0F02000A:A000\>010012C6:1389
# tick UP TX SOCKSTATE : one GUEST-TICK line with the connection in state SOCKSTATE
# (ST/TXQ:RXQ/TR:WHEN/RETR/CWND).
tick() { echo "GUEST-TICK up=$1 eth0 rx=90 tx=$2 irq=44 tcp=$sock/$3 0F02000A:B000>010012C6:1BBC/01/00000000:00000000/00:00000000/00000000/10"; }
held=01/0001A000:00000000/00:00000000/00000000/10
ring() { echo "$1.mon queue 1 (num 256): avail.flags=0x0000 avail.idx=$2 used.flags=0x0000 used.idx=$3 used_event=0x0a0e avail_event=0x0a10"; }

# check NAME WANT TICKS... : write NAME.log from the tick lines (a console line between them),
# judge it against NAME's ring in $RING (default: every frame taken), want 0 (wedged) or 1.
check() {
	local name=$1 want=$2 got=0 why
	shift 2
	{ echo GUEST-READY; printf '%s\nGUEST-BLOB b2 sha=0\n' "$@"; } >"$E2E_TMP/$name.log"
	${RING:-ring "$name" 0x0a10 0x0a10} >"$E2E_TMP/$name.diag"
	why=$(e2e_guest_wedged "$E2E_TMP/$name.log" "$E2E_TMP/$name.diag") || got=1
	[ "$got" = "$want" ] || e2e_fail "$name: judged $got, want $want ($why)"
	e2e_log "$name: $([ "$got" = 0 ] && echo "$why" || echo "not wedged, as it must not be")"
}

check wedged 0 "$(tick 10.1 60 "$held")" "$(tick 20.2 100 "$held")" "$(tick 30.2 100 "$held")" \
	"$(tick 40.3 100 "$held")"
check closing 0 "$(tick 20 100 "04/00012000:00000000/00:00000000/00000000/10")" \
	"$(tick 30 100 "04/00012000:00000000/00:00000000/00000000/10")" \
	"$(tick 40 100 "04/00012000:00000000/00:00000000/00000000/10")"
check sending 1 "$(tick 20 100 "$held")" "$(tick 30 100 "$held")" "$(tick 40 101 "$held")"
check retransmitting 1 "$(tick 20 100 "01/0001A000:00000000/01:00000100/00000006/1")" \
	"$(tick 30 100 "01/0001A000:00000000/01:00000100/00000006/1")" \
	"$(tick 40 100 "01/0001A000:00000000/01:00000100/00000006/1")"
check zero_window 1 "$(tick 20 100 "01/0001A000:00000000/04:00000900/00000000/10")" \
	"$(tick 30 100 "01/0001A000:00000000/04:00000900/00000000/10")" \
	"$(tick 40 100 "01/0001A000:00000000/04:00000900/00000000/10")"
check idle 1 "$(tick 20 100 "01/00000000:00000000/00:00000000/00000000/10")" \
	"$(tick 30 100 "01/00000000:00000000/00:00000000/00000000/10")" \
	"$(tick 40 100 "01/00000000:00000000/00:00000000/00000000/10")"
check brief 1 "$(tick 20 100 "$held")" "$(tick 25 100 "$held")" "$(tick 30 100 "$held")"
check listening 1 "$(tick 20 100 "0A/00000001:00000000/00:00000000/00000000/10")" \
	"$(tick 30 100 "0A/00000001:00000000/00:00000000/00000000/10")" \
	"$(tick 40 100 "0A/00000001:00000000/00:00000000/00000000/10")"
RING="ring ring_left 0x0a10 0x0a0c" check ring_left 1 "$(tick 20 100 "$held")" \
	"$(tick 30 100 "$held")" "$(tick 40 100 "$held")"
RING="echo no_ring.mon queue 1: no ring" check no_ring 1 "$(tick 20 100 "$held")" \
	"$(tick 30 100 "$held")" "$(tick 40 100 "$held")"
e2e_log "PASS"
