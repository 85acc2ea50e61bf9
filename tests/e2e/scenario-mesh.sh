# scenario-mesh.sh - guest side of guest_mesh.sh: 1 MiB and 100 concurrent flows through the
# sidecar, then, once the host says the sidecar is down, one flow that must be reset fast.
# Parameters (kernel command line): ms.node (server address).
blob=/tmp/blob
dd if=/dev/urandom of=$blob bs=1024 count=1024 2>/dev/null
echo "GUEST-SHA $(sha256sum $blob | cut -d' ' -f1)" > /dev/console
nc "$MS_NODE" 5001 < $blob
echo "GUEST-SENT rc=$?" > /dev/console

# 100 concurrent flows: the echo server answers none until all 100 are open.
i=1
while [ $i -le 100 ]; do
	(echo "flow-$i" | nc "$MS_NODE" 7000 > /tmp/out.$i 2>/dev/null) &
	i=$((i + 1))
done
wait
ok=0
i=1
while [ $i -le 100 ]; do
	[ "$(cat /tmp/out.$i)" = "flow-$i" ] && ok=$((ok + 1))
	i=$((i + 1))
done
echo "GUEST-CONCURRENT ok=$ok" > /dev/console

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
