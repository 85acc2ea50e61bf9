# scenario-migrate.sh - guest side of migrate.sh: keep receiving a stream and keep opening short
# connections while the host migrates this guest to another QEMU and another meshslirp.
# Parameters from the kernel command line: ms.node (the node's address), ms.pull (0: no
# download during the migration; default 1).
say() { echo "$*" > /dev/console; }
addr() { ip -4 -o addr show eth0 | awk '{print $4}'; }

# A download in the background: frames keep arriving in the RX ring while memory is copied.
if [ "${MS_PULL:-1}" = 1 ]; then
	( nc "$MS_NODE" 5003 < /dev/null > /dev/null 2>&1; say "GUEST-PULL-END rc=$?" ) &
	say "GUEST-PULL-UP"
fi

# A short connection every half second, with this guest's address in it; at most 240.
i=0
while [ $i -lt 240 ]; do
	i=$((i + 1))
	r=$(echo "tick-$i-$(addr)" | nc -w 2 "$MS_NODE" 7000 2>/dev/null)
	say "GUEST-TICK $i rc=$? addr=$(addr) reply=$r"
	sleep 0.5
done
