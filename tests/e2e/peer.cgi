#!/bin/sh
# peer.cgi - guest-side CGI: report the client address the guest's server saw.
echo "GUEST-SAW-CLIENT $REMOTE_ADDR:$REMOTE_PORT" > /dev/console
printf 'Content-Type: text/plain\r\n\r\n'
echo "REMOTE=$REMOTE_ADDR:$REMOTE_PORT"
touch /tmp/served
