#!/bin/bash
# meshslirp-sidecar - entrypoint of the meshslirp binding sidecar image
# (installed as /usr/local/bin/meshslirp-sidecar; see Dockerfile).
#
# KubeVirt starts a binding plugin's sidecarImage with no arguments in the
# virt-launcher pod, with KubeVirt's hook-sidecar-sockets emptyDir mounted at
# /var/run/kubevirt-hooks. This script:
#  1. creates /var/run/kubevirt-hooks/meshslirp/ (one level down, because
#     virt-launcher dials every socket directly in its hook directory);
#  2. runs KubeVirt's sidecar-shim (`/sidecar-shim --version v1alpha3`),
#     which serves the hook protocol and calls /usr/bin/onDefineDomain.
#     v1alpha3 (KubeVirt 1.2+) adds the Shutdown call that ends the sidecar
#     with the VM; KubeVirt 1.1 only has v1alpha2: set
#     MESHSLIRP_HOOK_VERSION=v1alpha2 there (the sidecar then lives until
#     the pod is deleted);
#  3. when onDefineDomain has written the backend and meshslirp's options to
#     meshslirp/args, runs meshslirp --vhost-user meshslirp/net.sock (backend
#     vhost-user, the default) or --socket meshslirp/net.sock (backend stream)
#     with --seccomp and those options, here, in the pod's network namespace;
#     meshslirp's log is this container's log. meshslirp/ready gets READY once
#     it listens; meshslirp/failed gets the exit status if it stops;
#  4. restarts meshslirp one second after it fails, if it had been ready.
#     With vhost-user, QEMU reconnects by itself (the hook's <reconnect>) and
#     the guest's NIC carries on; with stream, QEMU reconnects only with the
#     -netdev option reconnect= (QEMU 8.0+, the
#     meshslirp.kubevirt.io/netdev-options annotation in onDefineDomain);
#  5. exits when the shim exits (the launcher's Shutdown call at the end of
#     the VM, or SIGTERM), stopping meshslirp with SIGTERM.
#
# Environment: MESHSLIRP_HOOK_VERSION [v1alpha3]; for local tests also
# MESHSLIRP_HOOKS_DIR, MESHSLIRP_RUN_DIR, MESHSLIRP_SHIM (a command; default
# /sidecar-shim), MESHSLIRP (default /usr/local/bin/meshslirp).
#
# STATUS: design sketch, NOT tested on Kubernetes/KubeVirt (none here).
# Tested locally (tests/deploy/check-deploy): bash -n; with a stand-in for the
# shim, started meshslirp from the hook's options on each backend, served a
# QEMU 7.2 guest (DHCP lease; on vhost-user both rings started), and stopped
# cleanly on SIGTERM.
set -uo pipefail

HOOKS_DIR=${MESHSLIRP_HOOKS_DIR:-/var/run/kubevirt-hooks}
RUN=${MESHSLIRP_RUN_DIR:-$HOOKS_DIR/meshslirp}
SHIM=${MESHSLIRP_SHIM:-/sidecar-shim}
MESHSLIRP=${MESHSLIRP:-/usr/local/bin/meshslirp}
HOOK_VERSION=${MESHSLIRP_HOOK_VERSION:-v1alpha3}

say() { echo "meshslirp-sidecar: $*" >&2; }

mkdir -p "$RUN" || exit 1
rm -f "$RUN/args" "$RUN/args.new" "$RUN/ready" "$RUN/failed" "$RUN/net.sock"

# onDefineDomain runs as the shim's child, and the shim does not log its stderr;
# this path lets it write into the container's log (fd 9 is never
# redirected, unlike fd 2 while a builtin such as `wait` runs).
exec 9>&2
export MESHSLIRP_LOG_PATH=/proc/$$/fd/9
# shellcheck disable=SC2086 # MESHSLIRP_SHIM may be a command with arguments
$SHIM --version "$HOOK_VERSION" &
shim=$!
ms=
stopping=

stop() {
	stopping=1
	[ -n "$ms" ] && kill -TERM "$ms" 2>/dev/null
	kill -TERM "$shim" 2>/dev/null
}
trap stop TERM INT

# start_meshslirp: from $RUN/args, NUL-separated: the backend (vhost-user or
# stream), then meshslirp's options.
start_meshslirp() {
	local -a args=()
	local serve
	mapfile -d '' -t args <"$RUN/args"
	case "${args[0]-}" in
	vhost-user) serve=--vhost-user ;;
	stream) serve=--socket ;;
	*)
		say "unknown backend '${args[0]-}' in $RUN/args; not starting meshslirp"
		echo 2 >"$RUN/failed"
		return 0 ;;
	esac
	args=("${args[@]:1}")
	rm -f "$RUN/failed" "$RUN/net.sock"
	: >"$RUN/ready"
	say "starting meshslirp $serve $RUN/net.sock --seccomp ${args[*]}"
	"$MESHSLIRP" "$serve" "$RUN/net.sock" --seccomp --ready-fd 3 "${args[@]}" 3>"$RUN/ready" &
	ms=$!
}

# Supervise by polling: bash's `wait -n` cannot be trusted with children
# that were already reaped, and a poll every second (every 0.1s while
# onDefineDomain may be waiting) costs nothing measurable. `wait` on a
# background sleep keeps the loop responsive to SIGTERM.
shim_rc=0
while :; do
	if ! kill -0 "$shim" 2>/dev/null; then
		wait "$shim"
		shim_rc=$?
		break
	fi
	if [ -z "$ms" ] && [ -e "$RUN/args" ] && [ ! -e "$RUN/failed" ]; then
		start_meshslirp
	fi
	if [ -n "$ms" ] && ! kill -0 "$ms" 2>/dev/null; then
		wait "$ms"
		rc=$?
		ms=
		was_ready=$(cat "$RUN/ready" 2>/dev/null)
		echo "$rc" >"$RUN/failed"
		if [ -n "$stopping" ]; then
			:
		elif [ "$was_ready" = READY ]; then
			say "meshslirp exited with status $rc; restarting it in 1s"
			sleep 1
			start_meshslirp
		else
			say "meshslirp exited with status $rc before it was ready; not restarting"
		fi
	fi
	if [ -n "$ms" ]; then
		sleep 1 &
	else
		sleep 0.1 &
	fi
	wait $!
done

if [ -n "$ms" ]; then
	kill -TERM "$ms" 2>/dev/null
	wait "$ms"
fi
say "sidecar-shim exited with status $shim_rc"
rm -f "$RUN/net.sock"
# Stopped by SIGTERM/SIGINT, as asked: a clean exit.
[ -n "$stopping" ] && [ "$shim_rc" -gt 128 ] && shim_rc=0
exit "$shim_rc"
