# scenario-unix.sh - guest side of guest_unix.sh: an HTTP server reporting the client address
# it sees (port 80, reached through the sidecar's unix leg), 1 MiB out through the sidecar's
# outbound unix leg, then, once the host says the sidecar is down, one flow that must be reset
# fast.  Parameters (kernel command line): ms.node (server address).
mkdir -p /www/cgi-bin
cp /extra/peer.cgi /www/cgi-bin/peer
chmod +x /www/cgi-bin/peer
httpd -p 0.0.0.0:80 -h /www
echo GUEST-SERVERS-UP > /dev/console

blob=/tmp/blob
dd if=/dev/urandom of=$blob bs=1024 count=1024 2>/dev/null
echo "GUEST-SHA $(sha256sum $blob | cut -d' ' -f1)" > /dev/console
nc "$MS_NODE" 5001 < $blob
echo "GUEST-SENT rc=$?" > /dev/console

# Wait (at most 60 s) for the host's signal on the excluded control port 7100:
# it listens there only after stopping the sidecar.
i=0
while ! nc "$MS_NODE" 7100 </dev/null >/dev/null 2>&1 && [ $i -lt 120 ]; do
	sleep 0.5
	i=$((i + 1))
done
t0=$(cut -d' ' -f1 /proc/uptime)
if nc "$MS_NODE" 5002 </dev/null >/dev/null 2>&1; then r=connected; else r=refused; fi
t1=$(cut -d' ' -f1 /proc/uptime)
echo "GUEST-NOSIDECAR $r t0=$t0 t1=$t1" > /dev/console
