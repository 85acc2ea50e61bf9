# scenario-ambient.sh - guest side of ambient_guest.sh: a web server for the inbound check, 1 MiB
# out, DNS four ways, plain UDP, then every way around ztunnel it can think of; ends on the
# host's "done".  Parameters (kernel command line): ms.node, ms.pod (the pod's address),
# ms.probe (Istio ambient's probe address).  /extra/udpask and /extra/peer.cgi are given.
say() { echo "$*" > /dev/console; }
now() { cut -d' ' -f1 /proc/uptime; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

# The inbound check's server.  slowpeer reports the client it sees, then holds its answer 3 s,
# so that the host can look at the same connection from the pod's side meanwhile.
mkdir -p /www/cgi-bin
cp /extra/peer.cgi /www/cgi-bin/peer
cat > /www/cgi-bin/slowpeer <<'EOF'
#!/bin/sh
echo "GUEST-SAW-CLIENT $REMOTE_ADDR:$REMOTE_PORT" > /dev/console
sleep 3
printf 'Content-Type: text/plain\r\n\r\n'
echo "REMOTE=$REMOTE_ADDR:$REMOTE_PORT"
EOF
chmod +x /www/cgi-bin/peer /www/cgi-bin/slowpeer /extra/udpask
httpd -p 0.0.0.0:80 -h /www
say GUEST-HTTPD-UP

# 1 MiB to a server on the node: an ordinary destination, which the pod's rules give to ztunnel.
dd if=/dev/urandom of=/tmp/blob bs=1024 count=1024 2>/dev/null
say "GUEST-SHA $(sha256sum /tmp/blob | cut -d' ' -f1)"
nc "$MS_NODE" 5001 < /tmp/blob
say "GUEST-SENT rc=$?"

# DNS to the DNS address (libslirp forwards it to the pod's resolver) and to a resolver of the
# guest's own choosing, over UDP and TCP: the pod's DNS capture takes all four.  Then UDP that
# is not DNS.
say "GUEST-DNS via=dns-address-udp $(/extra/udpask 10.0.2.3 53)"
say "GUEST-DNS via=dns-address-tcp BYTES $(echo query | nc -w 5 10.0.2.3 53 | wc -c)"
say "GUEST-DNS via=node-udp $(/extra/udpask "$MS_NODE" 53)"
say "GUEST-DNS via=node-tcp BYTES $(echo query | nc -w 5 "$MS_NODE" 53 | wc -c)"
say "GUEST-UDP $(/extra/udpask "$MS_NODE" 7001)"

# Around ztunnel: its listeners and DNS proxy on the pod's loopback (the gateway's way there)
# and at the pod's address, and the probe address its rules leave alone.  Each must fail at
# once.  (127.0.0.1 here is the guest's own loopback: the host tries that one with raw frames.)
for t in 10.0.2.2:15001 10.0.2.2:15006 10.0.2.2:15008 10.0.2.2:15053 \
	"$MS_POD:15001" "$MS_POD:15006" "$MS_POD:15008" "$MS_POD:15053" "$MS_PROBE:7000"; do
	t0=$(now)
	r=$(echo bypass | nc -w 3 "${t%:*}" "${t#*:}" 2>/dev/null)
	rc=$?
	say "GUEST-TRY $t rc=$rc reply=$r ms=$(ms "$t0" "$(now)")"
done
# The control: a destination straight out; it works, and only through ztunnel.
r=$(echo direct | nc -w 10 "$MS_NODE" 7000)
say "GUEST-DIRECT rc=$? reply=$r"

# Until the host says "done" (at most 120 s).  Every try is a connection ztunnel accepts at
# once, so only the answer tells whether the host's server is up.
i=0
r=
while [ "$r" != "done" ] && [ $i -lt 240 ]; do
	sleep 0.5
	r=$(nc -w 3 "$MS_NODE" 7100 < /dev/null 2>/dev/null)
	i=$((i + 1))
done
say "GUEST-DONE $r"
