# scenario-inbound.sh - guest side of guest_inbound.sh: an HTTP server reporting the client
# address it sees (port 80) and a bulk sink on port 81 whose digest the host compares.
mkdir -p /www/cgi-bin
cp /extra/peer.cgi /www/cgi-bin/peer
chmod +x /www/cgi-bin/peer
httpd -p 0.0.0.0:80 -h /www
nc -l -p 81 > /tmp/big &
sink=$!
echo GUEST-SERVERS-UP > /dev/console
# The host's bulk client ends the scenario by closing its connection.
wait $sink
echo "GUEST-BIG-SHA $(sha256sum /tmp/big | cut -d' ' -f1) bytes=$(wc -c < /tmp/big)" > /dev/console
