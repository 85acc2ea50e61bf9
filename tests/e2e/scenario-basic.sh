# scenario-basic.sh - guest side of guest_basic.sh: 1 MiB out, ping out, serve HTTP in.
# Parameters come from the kernel command line: ms.sink_ip, ms.sink_port.
blob=/tmp/blob
dd if=/dev/urandom of=$blob bs=1024 count=1024 2>/dev/null
echo "GUEST-SHA $(sha256sum $blob | cut -d' ' -f1)" > /dev/console
nc "$MS_SINK_IP" "$MS_SINK_PORT" < $blob
echo "GUEST-SENT rc=$?" > /dev/console
if ping -c 2 -W 3 "$MS_SINK_IP" >/dev/null 2>&1; then
	echo GUEST-PING-OK > /dev/console
else
	echo GUEST-PING-FAILED > /dev/console
fi
mkdir -p /www/cgi-bin
cp /extra/peer.cgi /www/cgi-bin/peer
chmod +x /www/cgi-bin/peer
httpd -p 0.0.0.0:80 -h /www
echo GUEST-HTTPD-UP > /dev/console
# Serve until the host's client came, at most 60 s.
i=0
while [ ! -f /tmp/served ] && [ $i -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo GUEST-DONE > /dev/console
