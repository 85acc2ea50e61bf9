# scenario-agent.sh - guest side of the fault tests: runs the host's commands, one per line.
# The guest connects to ms.node:ms.agent_port (default 7100; the host excludes that port from
# steering, so the channel goes direct and never enters the flow table), reads shell commands
# there and runs each in turn; results are console markers.  The channel is retried for at most
# 120 s; "quit" ends the scenario (the guest powers off).  Functions for the host to call:
#   blob TAG PORT [KIB]  1 MiB (or KIB KiB) of fresh random bytes to ms.node:PORT:
#                    "GUEST-BLOB TAG sha=HEX", then "GUEST-BLOB-SENT TAG rc=RC"
#   stream TAG PORT  in the background, zeros to ms.node:PORT until a write fails (the writer
#                    never reads, so a FIN does not stop it; only a reset does):
#                    "GUEST-STREAM-UP TAG", then "GUEST-STREAM-END TAG rc=RC t=UPTIME"
#   pause TAG        stop stream TAG's sender (SIGSTOP), its connection open; after 1 s:
#                    "GUEST-PAUSED TAG"
#   pull TAG PORT    in the background, read ms.node:PORT until it ends, sending nothing and
#                    never shutting the sending side:
#                    "GUEST-PULL-UP TAG", then "GUEST-PULL-END TAG rc=RC bytes=N t=UPTIME"
#   fetch TAG PORT   read ms.node:PORT until it ends (the sending side kept open, as pull):
#                    "GUEST-FETCH TAG bytes=N sha=HEX"
#   try TAG PORT     one connection, nothing sent: "GUEST-TRY TAG rc=RC t0=UPTIME t1=UPTIME"
#   ask TAG PORT [LPORT]  send TAG to an echo server at ms.node:PORT (from local port LPORT):
#                    "GUEST-ASK TAG rc=RC reply=REPLY ms=MILLISECONDS"
#   asks TAG PORT LPORT...  ask TAG-LPORT from each LPORT, all at once (in the background)
#   hold TAG PORT LPORT...  in the background, an idle connection from each LPORT (600 s at
#                    most): "GUEST-HOLD TAG"
#   say TEXT         TEXT on the console
say() { echo "$*" > /dev/console; }
now() { cut -d' ' -f1 /proc/uptime; }

blob() {
	dd if=/dev/urandom of=/tmp/blob bs=1024 count="${3:-1024}" 2>/dev/null
	say "GUEST-BLOB $1 sha=$(sha256sum /tmp/blob | cut -d' ' -f1)"
	nc "$MS_NODE" "$2" < /tmp/blob > /dev/null 2>&1
	say "GUEST-BLOB-SENT $1 rc=$?"
	rm -f /tmp/blob
}

printf '#!/bin/sh\nexec cat /dev/zero\n' > /tmp/zeros
chmod +x /tmp/zeros

stream() {
	(
		say "GUEST-STREAM-UP $1"
		nc "$MS_NODE" "$2" -e /tmp/zeros > /dev/null 2>&1 &
		echo $! > "/tmp/stream-$1.pid"
		wait $!
		say "GUEST-STREAM-END $1 rc=$? t=$(now)"
	) &
}

pause() {
	kill -STOP "$(cat "/tmp/stream-$1.pid")"
	sleep 1
	say "GUEST-PAUSED $1"
}

pull() {
	(
		say "GUEST-PULL-UP $1"
		set -o pipefail
		# Standard input that never ends (a fifo held open for reading and writing): with
		# </dev/null nc shut its sending side at once, and HAProxy drops a client that does
		# so before it has connected upstream (a CI run lost a download that way).  nc still
		# ends when the network side does.
		rm -f "/tmp/pull-$1.in"
		mkfifo "/tmp/pull-$1.in"
		exec 3<>"/tmp/pull-$1.in"
		n=$(nc "$MS_NODE" "$2" <&3 2>/dev/null | wc -c)
		say "GUEST-PULL-END $1 rc=$? bytes=$n t=$(now)"
	) &
}

fetch() {
	rm -f "/tmp/fetch-$1.in"
	mkfifo "/tmp/fetch-$1.in"
	exec 4<>"/tmp/fetch-$1.in"
	nc "$MS_NODE" "$2" <&4 > "/tmp/fetch-$1" 2>/dev/null
	exec 4>&-
	say "GUEST-FETCH $1 bytes=$(wc -c < "/tmp/fetch-$1") sha=$(sha256sum "/tmp/fetch-$1" | cut -d' ' -f1)"
	rm -f "/tmp/fetch-$1"
}

try() {
	t0=$(now)
	nc "$MS_NODE" "$2" < /dev/null > /dev/null 2>&1
	say "GUEST-TRY $1 rc=$? t0=$t0 t1=$(now)"
}

# Busybox nc cannot pick its local port: narrow the kernel's ephemeral range to that one port.
ports=/proc/sys/net/ipv4/ip_local_port_range
default_ports=$(cat $ports)
pin_port() { if [ -n "$1" ]; then echo "$1 $1" > $ports; else echo "$default_ports" > $ports; fi; }

# ask1 TAG PORT: one echo exchange, timed.
ask1() {
	t0=$(now)
	r=$(echo "$1" | nc "$MS_NODE" "$2" 2>/dev/null)
	rc=$?
	say "GUEST-ASK $1 rc=$rc reply=$r ms=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%d", (b - a) * 1000 }')"
}

ask() {
	pin_port "$3"
	ask1 "$1" "$2"
	pin_port
}

# pinned_taken PORT PID: wait (at most 10 s) until a TCP socket has local port PORT, or PID,
# the job that was to take it, is gone (its connect() failed, or it is done).  Only then may
# the next pin replace this one: a connect() a slow moment delays would take the next port.
pinned_taken() {
	hex=$(printf ':%04X' "$1")
	j=0
	while [ $j -lt 100 ] && kill -0 "$2" 2>/dev/null &&
		! awk -v h="$hex" 'NR > 1 && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
			/proc/net/tcp; do
		sleep 0.1
		j=$((j + 1))
	done
}

# Each connection takes its pinned port before the next pin.
asks() {
	tag=$1 port=$2
	shift 2
	for p in "$@"; do
		pin_port "$p"
		ask1 "$tag-$p" "$port" &
		sleep 0.5
		pinned_taken "$p" $!
	done
	pin_port
}

hold() {
	tag=$1 port=$2
	shift 2
	for p in "$@"; do
		pin_port "$p"
		(sleep 600 | nc "$MS_NODE" "$port" > /dev/null 2>&1) &
		sleep 0.5
		pinned_taken "$p" $!
	done
	pin_port
	say "GUEST-HOLD $tag"
}

say "GUEST-AGENT boot_id=$(cat /proc/sys/kernel/random/boot_id)"
i=0
while [ ! -f /tmp/agent-quit ] && [ $i -lt 600 ]; do
	# nc half-closes at once (stdin is empty) and reads commands until the host closes.
	nc "$MS_NODE" "${MS_AGENT_PORT:-7100}" < /dev/null 2>/dev/null | while read -r cmd; do
		# The echo must not announce what the command will: "say GUEST-X" in a
		# command would satisfy a wait for GUEST-X before the command ran.
		say "GUEST-CMD $(printf '%s' "$cmd" | sed 's/GUEST-/GUEST_/g')"
		if [ "$cmd" = quit ]; then
			: > /tmp/agent-quit
			break
		fi
		eval "$cmd" < /dev/null
	done
	[ -f /tmp/agent-quit ] || sleep 0.2
	i=$((i + 1))
done
[ -f /tmp/agent-quit ]
