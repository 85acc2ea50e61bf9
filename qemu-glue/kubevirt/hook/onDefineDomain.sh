#!/bin/bash
# onDefineDomain - KubeVirt hook of the meshslirp network binding plugin.
# Installed as /usr/bin/onDefineDomain in the binding's sidecar image.
#
# Protocol (KubeVirt's sidecar-shim, cmd/sidecars/sidecar_shim.go): the shim
# runs `onDefineDomain --vmi <VMI JSON> --domain <domain XML>` and takes the
# new domain XML from stdout; a non-zero exit fails the VM's start. For local
# use the domain XML may also come on stdin when --domain is not given.
#
# What it does:
#  1. Finds the one VMI interface with `binding: {name: meshslirp}` (the name
#     comes from $NETWORK_BINDING_PLUGIN_NAME, set by KubeVirt >= 1.6); it must
#     be on the pod network.
#  2. Works out meshslirp's options from the VMI:
#       interface ports (TCP)                      -> --expose tcp:P:P
#       traffic.sidecar.istio.io/excludeOutboundIPRanges -> --exclude-outbound-cidr
#       traffic.sidecar.istio.io/includeOutboundIPRanges -> --include-outbound-cidr
#       traffic.sidecar.istio.io/excludeOutboundPorts    -> --exclude-outbound-port
#       annotation meshslirp.kubevirt.io/args      -> appended as is (split on
#                                                     spaces), e.g. "--outbound-proxy
#                                                     127.0.0.1:15001 --dns-upstream
#                                                     127.0.0.1:15053"
#     and hands them to the sidecar's entrypoint (entrypoint.sh), which runs
#     meshslirp in this container, i.e. in the pod's network namespace, next
#     to Istio's proxy. It waits until meshslirp is listening (--ready-fd),
#     because QEMU connects only once, at start-up.
#  3. Rewrites the domain for the backend that the annotation
#     meshslirp.kubevirt.io/backend names:
#     vhost-user (the default; meshslirp --vhost-user): meshslirp reads and
#       writes the guest's virtio rings in shared memory.
#       * KubeVirt's <interface> for that network (alias ua-NAME), if any, is
#         replaced by
#           <interface type='vhostuser'>
#             <mac address='MAC'/>                 (interface macAddress, if set)
#             <source type='unix' path='SOCKET' mode='client'>
#               <reconnect enabled='yes' timeout='1'/>   (QEMU reconnects when the
#             </source>                   entrypoint restarts a failed meshslirp)
#             <model type='virtio-non-transitional'/>  (virtio-transitional with
#                                                  useVirtioTransitional)
#             <mtu size='N'/>                      (with --mtu N in the args)
#             <alias name='ua-NAME'/>
#             <rom enabled='no'/>                  (<boot order='N'/> with bootOrder)
#           </interface>
#         libvirt sees an ordinary NIC: no qemu:commandline, no taint.
#       * The guest's RAM becomes shared, since meshslirp maps it:
#         <memoryBacking> gets <access mode='shared'/> and, unless it names a
#         file or memfd source already, <source type='memfd'/> (an anonymous
#         source cannot be handed to meshslirp). <hugepages> stays; NUMA cells
#         with memAccess='private' become 'shared'.
#     stream (meshslirp --socket): KubeVirt's <interface> for that network is
#       removed and <qemu:commandline> gets
#         -netdev stream,id=meshslirp0,server=off,addr.type=unix,addr.path=SOCKET
#         -device virtio-net-pci,netdev=meshslirp0,id=meshslirp0-nic,romfile=[,mac=MAC][,host_mtu=N]
#       (romfile= : no option ROM, as KubeVirt does for its own NICs without a
#       boot order). The annotation meshslirp.kubevirt.io/netdev-options
#       appends options to the -netdev (e.g. "reconnect=1" on QEMU 8.0+, so
#       QEMU reconnects when the entrypoint restarts a failed meshslirp); it is
#       refused with vhost-user.
#     Run again on its own output (KubeVirt may call the hook more than once),
#     it prints the same domain.
#
# Where the socket is. The only filesystem the binding sidecar shares with
# the compute container (QEMU) is KubeVirt's hook-sidecar-sockets emptyDir,
# mounted at /var/run/kubevirt-hooks in both. virt-launcher dials every
# socket it finds there as a hook server, so meshslirp's socket lives one
# directory down, which the scan skips:
#   sidecar view:  /var/run/kubevirt-hooks/meshslirp/net.sock
#   compute view:  /var/run/kubevirt-hooks/meshslirp/net.sock              (KubeVirt <= 1.5)
#                  /var/run/kubevirt-hooks/$CONTAINER_NAME/meshslirp/net.sock (>= 1.6: each
#                  sidecar mounts its own subPath, and sets CONTAINER_NAME)
# (read from KubeVirt's pkg/hooks/manager.go and virt-controller's
# template.go at v1.1.0..v1.6.0; not tried on a cluster).
#
# Environment (defaults in brackets; the overrides exist for local tests):
#   NETWORK_BINDING_PLUGIN_NAME [meshslirp]
#   MESHSLIRP_HOOKS_DIR         [/var/run/kubevirt-hooks]  sidecar's view
#   MESHSLIRP_RUN_DIR           [$MESHSLIRP_HOOKS_DIR/meshslirp]
#   MESHSLIRP_COMPUTE_SOCKET    [see above]   socket path as QEMU sees it
#   MESHSLIRP_READY_TIMEOUT     [10]          seconds to wait for meshslirp
#   MESHSLIRP_HOOK_NO_START     [unset]       1: only print the new XML
#   MESHSLIRP_LOG_PATH          [set by entrypoint.sh] messages also go there,
#                               i.e. to `kubectl logs -c hook-sidecar-N`,
#                               because the shim does not log this hook's stderr
#
# STATUS: design sketch, NOT tested on Kubernetes/KubeVirt (none here).
# Tested locally (tests/deploy/check-deploy): bash -n; run with a VMI made from
# vm-example.yaml and a KubeVirt-shaped domain (and one with hugepages and a
# private NUMA cell), for both backends: the XML it prints is well-formed,
# passes virt-xml-validate (libvirt 9.0 schemas), has the fields above and
# does not change when the hook runs on it again. With entrypoint.sh and a
# stand-in for KubeVirt's shim, the meshslirp it starts served a QEMU 7.2 guest
# run with the QEMU arguments that domain stands for (translated by hand; no
# libvirtd there): the NIC ran on vhost-user (both rings started, no fallback
# in QEMU's log) and the guest got its DHCP lease; the same on stream.
set -euo pipefail

PLUGIN=${NETWORK_BINDING_PLUGIN_NAME:-meshslirp}
HOOKS_DIR=${MESHSLIRP_HOOKS_DIR:-/var/run/kubevirt-hooks}
RUN=${MESHSLIRP_RUN_DIR:-$HOOKS_DIR/meshslirp}
TIMEOUT=${MESHSLIRP_READY_TIMEOUT:-10}
if [ -n "${MESHSLIRP_COMPUTE_SOCKET:-}" ]; then
	COMPUTE_SOCKET=$MESHSLIRP_COMPUTE_SOCKET
elif [ -n "${CONTAINER_NAME:-}" ]; then
	COMPUTE_SOCKET=/var/run/kubevirt-hooks/$CONTAINER_NAME/meshslirp/net.sock
else
	COMPUTE_SOCKET=/var/run/kubevirt-hooks/meshslirp/net.sock
fi

log() {
	echo "onDefineDomain (meshslirp): $*" >&2
	if [ -n "${MESHSLIRP_LOG_PATH:-}" ] && [ -w "$MESHSLIRP_LOG_PATH" ]; then
		echo "onDefineDomain (meshslirp): $*" >>"$MESHSLIRP_LOG_PATH" || true
	fi
}
die() { log "error: $*"; exit 1; }

vmi= domain= have_domain=
while [ $# -gt 0 ]; do
	case $1 in
	--vmi) vmi=${2-}; shift 2 || die "--vmi needs a value" ;;
	--vmi=*) vmi=${1#--vmi=}; shift ;;
	--domain) domain=${2-}; have_domain=1; shift 2 || die "--domain needs a value" ;;
	--domain=*) domain=${1#--domain=}; have_domain=1; shift ;;
	*) die "unknown argument: $1 (usage: onDefineDomain --vmi JSON [--domain XML | < XML])" ;;
	esac
done
[ -n "$vmi" ] || die "--vmi is missing"
[ -n "$have_domain" ] || domain=$(cat)
[ -n "$domain" ] || die "no domain XML (--domain or stdin)"

mkdir -p "$RUN"
# The Python part does the JSON and XML work: it writes the backend's name and
# then meshslirp's options, NUL-separated, to $RUN/args.new and prints the new
# domain XML.
rm -f "$RUN/error"
new_xml=$(VMI="$vmi" DOMAIN="$domain" PLUGIN="$PLUGIN" SOCKET="$COMPUTE_SOCKET" \
	ARGS_OUT="$RUN/args.new" ERR_OUT="$RUN/error" python3 - <<'PY'
import json, os, re, sys
import xml.etree.ElementTree as ET

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
# KubeVirt's pkg/network/istio ReservedPorts(): Envoy's own listeners.
ISTIO_RESERVED = {15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090}
MIRRORED = [  # Istio annotation -> meshslirp flag (docs/ISTIO.md, "Exclusions")
    ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "--exclude-outbound-cidr"),
    ("traffic.sidecar.istio.io/includeOutboundIPRanges", "--include-outbound-cidr"),
    ("traffic.sidecar.istio.io/excludeOutboundPorts", "--exclude-outbound-port"),
]
RESERVED_FLAGS = {"--socket", "--vhost-user", "--tap", "--netns", "--ready-fd"}
BACKENDS = ("vhost-user", "stream")

def die(msg):
    with open(os.environ["ERR_OUT"], "w") as f:
        f.write(msg + "\n")
    sys.exit(1)

try:
    vmi = json.loads(os.environ["VMI"])
except ValueError as e:
    die("--vmi is not JSON: %s" % e)
plugin = os.environ["PLUGIN"]
spec = vmi.get("spec") or {}
devs = (spec.get("domain") or {}).get("devices") or {}
ann = (vmi.get("metadata") or {}).get("annotations") or {}
ifaces = [i for i in devs.get("interfaces") or [] if (i.get("binding") or {}).get("name") == plugin]
if len(ifaces) != 1:
    die("expected exactly one interface with binding %r, found %d" % (plugin, len(ifaces)))
iface = ifaces[0]
name = str(iface.get("name"))
net = next((n for n in spec.get("networks") or [] if n.get("name") == iface.get("name")), None)
if net is None or "pod" not in net:
    die("interface %r: meshslirp serves the pod network only" % name)

backend = str(ann.get("meshslirp.kubevirt.io/backend", "vhost-user")).strip() or "vhost-user"
if backend not in BACKENDS:
    die("meshslirp.kubevirt.io/backend is %r; use vhost-user (the default) or stream" % backend)

istio = str(ann.get("sidecar.istio.io/inject", "")).lower() == "true"
args = []
for p in iface.get("ports") or []:
    proto = (p.get("protocol") or "TCP").upper()
    port = int(p.get("port", 0))
    if proto != "TCP":
        die("port %d/%s: meshslirp exposes TCP ports only" % (port, proto))
    if istio and port in ISTIO_RESERVED:
        die("port %d is one of the Istio proxy's own ports" % port)
    args += ["--expose", "tcp:%d:%d" % (port, port)]
for key, flag in MIRRORED:
    value = re.sub(r"\s+", "", str(ann.get(key, "")))
    # Istio redirects nothing for an empty include list; meshslirp without a
    # list steers everything, so passing nothing would invert it.
    if key in ann and not value and flag == "--include-outbound-cidr":
        die("%s is empty: Istio then redirects nothing, which meshslirp says by leaving "
            "--outbound-proxy out of meshslirp.kubevirt.io/args; give CIDRs or * to steer" % key)
    if value:
        args += [flag, value]
extra = str(ann.get("meshslirp.kubevirt.io/args", "")).split()
for a in extra:
    if a.split("=", 1)[0] in RESERVED_FLAGS:
        die("meshslirp.kubevirt.io/args may not set %s" % a.split("=", 1)[0])
    args.append(a)
# The guest's MTU follows meshslirp's (host_mtu / <mtu>); a bad value is left to
# meshslirp to refuse.
mtu = None
for i, a in enumerate(extra):
    v = a[len("--mtu="):] if a.startswith("--mtu=") else (extra[i + 1] if a == "--mtu" and i + 1 < len(extra) else None)
    if v is not None and v.isdigit():
        mtu = v

mac = iface.get("macAddress")
if mac and not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", mac):
    die("macAddress %r is not a MAC address" % mac)
model = iface.get("model") or "virtio"
if model != "virtio":
    die("interface %r: model %r; meshslirp's NIC is virtio" % (name, model))
netdev_extra = str(ann.get("meshslirp.kubevirt.io/netdev-options", "")).strip().strip(",")
if re.search(r"[\s]", netdev_extra):
    die("meshslirp.kubevirt.io/netdev-options must not contain spaces")
if netdev_extra and backend != "stream":
    die("meshslirp.kubevirt.io/netdev-options applies to the stream backend only")

xml = os.environ["DOMAIN"]
if "<qemu:" in xml and "xmlns:qemu" not in xml:   # undeclared prefix: declare it
    xml = re.sub(r"<domain\b", '<domain xmlns:qemu="%s"' % QEMU_NS, xml, count=1)
ET.register_namespace("qemu", QEMU_NS)
try:
    root = ET.fromstring(xml)
except ET.ParseError as e:
    die("domain XML does not parse: %s" % e)
if root.tag != "domain":
    die("root element is <%s>, not <domain>" % root.tag)
devices = root.find("devices")
if devices is None:
    devices = ET.SubElement(root, "devices")

# Idempotent: drop what KubeVirt or an earlier run of this hook put there for
# this interface (its <interface> with alias ua-NAME, our qemu:commandline
# arguments), remembering where the interface was.
slot = None
for pos, el in enumerate(list(devices)):
    alias = el.find("alias")
    if el.tag == "interface" and alias is not None and alias.get("name") == "ua-" + name:
        slot = pos if slot is None else slot
        devices.remove(el)
argtag = "{%s}arg" % QEMU_NS
cmdline = root.find("{%s}commandline" % QEMU_NS)
if cmdline is not None:
    olds = list(cmdline.findall(argtag))
    for i, el in enumerate(olds):
        v = el.get("value", "")
        if v.startswith("stream,id=meshslirp0,") or v.startswith("virtio-net-pci,netdev=meshslirp0,"):
            cmdline.remove(el)
            if i > 0 and olds[i - 1].get("value") in ("-netdev", "-device"):
                cmdline.remove(olds[i - 1])
    if len(cmdline) == 0:
        root.remove(cmdline)
        cmdline = None

def indent_tail(parent):
    """Lay out parent's subtree two spaces a level, as in a virt-launcher domain."""
    parents = {c: p for p in root.iter() for c in p}
    depth, p = 1, parent
    while parents.get(p) is not None and parents[p] is not root:
        depth, p = depth + 1, parents[p]
    ET.indent(parent, "  ", level=depth)

if backend == "vhost-user":
    nic = ET.Element("interface", {"type": "vhostuser"})
    if mac:
        ET.SubElement(nic, "mac", {"address": mac})
    src = ET.SubElement(nic, "source", {"type": "unix", "path": os.environ["SOCKET"], "mode": "client"})
    # QEMU reconnects a second after meshslirp went away (the entrypoint restarts it).
    ET.SubElement(src, "reconnect", {"enabled": "yes", "timeout": "1"})
    transitional = bool(devs.get("useVirtioTransitional"))
    ET.SubElement(nic, "model", {"type": "virtio-transitional" if transitional else "virtio-non-transitional"})
    if mtu:
        ET.SubElement(nic, "mtu", {"size": mtu})
    ET.SubElement(nic, "alias", {"name": "ua-" + name})
    if iface.get("bootOrder"):
        ET.SubElement(nic, "boot", {"order": str(int(iface["bootOrder"]))})
    else:
        ET.SubElement(nic, "rom", {"enabled": "no"})   # as KubeVirt does without a boot order
    devices.insert(len(devices) if slot is None else slot, nic)
    indent_tail(devices)

    # Shared guest memory: meshslirp maps it (vhost-user's SET_MEM_TABLE).
    mb = root.find("memoryBacking")
    if mb is None:
        mb = ET.Element("memoryBacking")
        after = [i for i, el in enumerate(root) if el.tag in ("memory", "currentMemory", "maxMemory")]
        root.insert(after[-1] + 1 if after else len(root), mb)
    src = mb.find("source")
    if src is None or src.get("type", "anonymous") == "anonymous":
        if src is not None:
            mb.remove(src)
        src = ET.Element("source", {"type": "memfd"})
        # libvirt's schema wants hugepages, nosharepages and locked first.
        mb.insert(len([e for e in mb if e.tag in ("hugepages", "nosharepages", "locked")]), src)
    acc = mb.find("access")
    if acc is None:
        acc = ET.Element("access")
        mb.insert(list(mb).index(src) + 1, acc)
    acc.set("mode", "shared")
    for cell in root.findall("cpu/numa/cell"):
        if cell.get("memAccess") == "private":
            cell.set("memAccess", "shared")
    indent_tail(mb)
else:
    netdev = "stream,id=meshslirp0,server=off,addr.type=unix,addr.path=" + os.environ["SOCKET"]
    if netdev_extra:
        netdev += "," + netdev_extra
    device = "virtio-net-pci,netdev=meshslirp0,id=meshslirp0-nic,romfile="
    if mac:
        device += ",mac=" + mac
    if mtu:
        device += ",host_mtu=" + mtu
    if cmdline is None:
        cmdline = ET.SubElement(root, "{%s}commandline" % QEMU_NS)
    for v in ("-netdev", netdev, "-device", device):
        ET.SubElement(cmdline, argtag, {"value": v})
    indent_tail(cmdline)
    indent_tail(devices)

# Keep the top level one element a line.
for el in root:
    if el.tail is None or not el.tail.strip():
        el.tail = "\n  "
if len(root):
    root[-1].tail = "\n"
    root.text = root.text if root.text and not root.text.strip() else "\n  "

with open(os.environ["ARGS_OUT"], "w") as f:
    f.write("".join(a + "\0" for a in [backend] + args))
sys.stdout.write(ET.tostring(root, encoding="unicode") + "\n")
PY
) || die "$(cat "$RUN/error" 2>/dev/null || echo "could not rewrite the domain")"

if [ "${MESHSLIRP_HOOK_NO_START:-}" = 1 ]; then
	rm -f "$RUN/args.new"
	printf '%s\n' "$new_xml"
	exit 0
fi

# Hand the options to entrypoint.sh, which starts meshslirp, then wait for
# READY. A second call with the same options (a re-defined domain) reuses the
# running meshslirp.
if [ -e "$RUN/args" ]; then
	if cmp -s "$RUN/args" "$RUN/args.new"; then
		rm -f "$RUN/args.new"
	else
		rm -f "$RUN/args.new"
		die "meshslirp already runs with other options; restart the VM to change them"
	fi
else
	mv "$RUN/args.new" "$RUN/args"
fi
log "waiting up to ${TIMEOUT}s for meshslirp on $RUN/net.sock (QEMU: $COMPUTE_SOCKET)"
i=0
until grep -qx READY "$RUN/ready" 2>/dev/null; do
	if [ -e "$RUN/failed" ]; then
		die "meshslirp exited with status $(cat "$RUN/failed") before it was ready; see the sidecar container's log"
	fi
	i=$((i + 1))
	[ "$i" -le $((TIMEOUT * 10)) ] || die "meshslirp not ready after ${TIMEOUT}s (is the image's entrypoint entrypoint.sh?)"
	sleep 0.1
done
log "meshslirp is ready; domain rewritten"
printf '%s\n' "$new_xml"
