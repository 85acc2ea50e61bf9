# scenario-idle.sh - guest that takes a lease and waits to be killed (at most 120 s).
echo GUEST-IDLE > /dev/console
sleep 120
