/* kstack.h - the kernel's own TCP in a private network namespace, reached through a tun device. */
#ifndef MESHSLIRP_NETSTACK_KSTACK_H
#define MESHSLIRP_NETSTACK_KSTACK_H

/*
 * Theory of operation
 *
 * --steer-stack kernel terminates steered TCP in the kernel instead of
 * libslirp (proxy-bridge/ksteer.h says why).  The kernel's stack needs an
 * interface to receive the guest's segments on and a socket to accept them
 * with, and neither may touch the pod's own network: no address, route or
 * listener of the pod may become reachable from the guest, and nothing of
 * ours may show in the pod.  So kstack_open() makes a network namespace of
 * its own, which nothing else can enter (it is named nowhere, and lives
 * only as long as the descriptors that hold it), and in it:
 *   - a tun device (IFF_TUN: IP packets, no Ethernet, so no ARP) with a
 *     12-byte virtio-net header, so 64 KiB segments with partial checksums
 *     cross it both ways; address KNAT_LISTEN_ADDR/8, MTU 65520; no
 *     qdisc (noqueue, best effort: kstack_set_noqueue() says why);
 *   - one listening TCP socket on KNAT_LISTEN_ADDR:KNAT_LISTEN_PORT, the
 *     only socket the namespace ever has besides the accepted ones;
 *   - net.ipv4.tcp_max_tw_buckets 0: a closed connection leaves no
 *     TIME_WAIT socket behind to collide with the next flow of the slot
 *     (the guest keeps its own TIME_WAIT, which is where it protects).
 * The namespace is made by a short-lived child (fork, unshare, set-up, the
 * two descriptors back over a socketpair, exit): a multi-threaded process
 * cannot unshare a user namespace, and the daemon keeps its own namespace
 * throughout.  unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN; without it the
 * child tries a user namespace first (CLONE_NEWUSER | CLONE_NEWNET, mapping
 * only its own uid), as rootless containers and pasta do.
 * Ownership: the caller owns both descriptors; closing both (and every
 * accepted socket) ends the namespace.
 */

#include <stdint.h>

struct kstack {
	int tun;                    /* the tun device: nonblocking, virtio-net header of 12 bytes */
	int listener;               /* nonblocking TCP listener in the private namespace */
};

#define KSTACK_IFNAME "ms-k0"
#define KSTACK_MTU 65520
#define KSTACK_BACKLOG 4096

/**
 * kstack_open() - create the private namespace, its tun device and its listener
 * @why:	on failure, set to a static string naming the step that failed
 *
 * Return: 0, or -errno of the step named in @why (-EPERM: neither a network
 * namespace nor a user namespace could be made, or the set-up's child was
 * killed by SIGSYS in that step, which @why then says; -EINTR: killed by
 * another signal).
 */
int kstack_open(struct kstack *ks, const char **why);

/**
 * kstack_set_offloads() - what the tun device may hand us (BACKEND_OFFLOAD_*)
 *
 * Large segments and partial checksums only when the guest takes them too;
 * otherwise the kernel cuts and completes them before they reach us.
 * Return: 0 or -errno from TUNSETOFFLOAD.
 */
int kstack_set_offloads(int tun, uint32_t offloads);

/* kstack_close() - close both descriptors (-1 after); safe twice. */
void kstack_close(struct kstack *ks);

#endif /* MESHSLIRP_NETSTACK_KSTACK_H */
