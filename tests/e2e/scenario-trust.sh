# scenario-trust.sh - guest side of trust_guest.sh: an idle inbound connection the daemon
# resets must close here too, and a DNS answer libslirp fragments must arrive whole.
say() { echo "$*" > /dev/console; }

# A server for one connection on port 80; it ends when its connection ends (a reset here).
(
	nc -l -p 80 > /dev/null 2>&1
	rc=$?
	say "GUEST-SERVE-END rc=$rc conns=$(netstat -tn 2>/dev/null | grep -c '10.0.2.15:80 ')"
	: > /tmp/served
) &
sleep 0.2
say GUEST-SERVE-UP

# A 4000-byte answer to a UDP query to the DNS address (--dns-upstream): three fragments at
# MTU 1500, which this kernel must reassemble.
chmod +x /extra/udpask
n=$(/extra/udpask 10.0.2.3 53)
say "GUEST-UDP bytes=${n#BYTES }"

# Wait for the server to end (the host decides when), at most 60 s.
i=0
while [ $i -lt 600 ] && [ ! -f /tmp/served ]; do
	sleep 0.1
	i=$((i + 1))
done
say GUEST-DONE
