/* knat.h - the address translation of kernel-terminated flows, between the guest's view and the private stack's (pure, no I/O). */
#ifndef MESHSLIRP_PB_KNAT_H
#define MESHSLIRP_PB_KNAT_H

/*
 * With --steer-stack kernel (ksteer.h), a steered TCP flow is terminated
 * by the kernel's own TCP in a private namespace that only this daemon
 * can reach (kstack.h).  Its packets cross a tun device there, translated
 * both ways so that:
 *   - the private stack sees every flow come from its own address,
 *     KNAT_POOL_NET + 1 + the flow's slot, with the guest's source port, to one
 *     listener, KNAT_LISTEN_ADDR:KNAT_LISTEN_PORT; so one accept()ing socket
 *     takes every flow, and getpeername() names the slot;
 *   - the guest sees its own view: replies from the address and port it
 *     connected to.
 * This module does the byte work on one packet: parse, rewrite the four
 * tuple fields, and keep both checksums right.  A packet whose TCP checksum
 * is left to the receiver (virtio-net NEEDS_CSUM: the field holds only the
 * pseudo-header's sum, not complemented) needs the address changes only;
 * a complete one needs the port changes too.  Nothing is allocated; every
 * length is checked against the buffer.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>

/* The private namespace's addresses (never seen outside it: every packet is translated). */
#define KNAT_LISTEN_ADDR 0x0afe0001u   /* 10.254.0.1, on the tun device (/8 covers the pool) */
#define KNAT_LISTEN_PORT 15001
#define KNAT_POOL_NET 0x0aff0000u      /* 10.255.0.0/16: one address per flow slot */
#define KNAT_POOL_BITS 16
/* Slots: the pool's addresses but .0.0 and .255.255 (10/8's broadcast). */
#define KNAT_POOL_SLOTS ((1u << KNAT_POOL_BITS) - 2)
#define KNAT_ETH_HLEN 14

/* An IPv4 TCP packet as parsed; pointers into the caller's buffer. */
struct knat_view {
	uint8_t *ip;                /* the IPv4 header */
	size_t ihl;                 /* its length */
	size_t tot;                 /* IP total length (<= the buffer; padding after it ignored) */
	uint8_t *tcp;               /* the TCP header */
	size_t thl;                 /* its length */
	uint8_t flags;              /* TCP flags (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
};

/* A connection's four fields, addresses and ports in network order. */
struct knat_tuple {
	uint32_t saddr, daddr;
	uint16_t sport, dport;
};

#define KNAT_TCP_FIN 0x01
#define KNAT_TCP_SYN 0x02
#define KNAT_TCP_RST 0x04
#define KNAT_TCP_ACK 0x10

/**
 * knat_parse() - parse an IPv4 packet that must be one whole TCP segment
 * @pkt, @len:	the IP packet (no link header), rewritten later in place
 *
 * Return: 0, -ENOENT for anything else that is sound (not IPv4, not TCP, a
 * fragment: not for this path), -EBADMSG for lengths that lie (IP total or
 * header length, TCP data offset).
 */
int knat_parse(uint8_t *pkt, size_t len, struct knat_view *v);

/* knat_tuple_of() - the packet's tuple. */
struct knat_tuple knat_tuple_of(const struct knat_view *v);

/* The longest SYN the kernel path parks: IPv4 and TCP headers at their longest, no payload. */
#define KNAT_SYN_MAX (60 + 60)

/**
 * knat_rewrite() - give the packet tuple @to, checksums updated incrementally
 * @partial:	the TCP checksum is a partial one (NEEDS_CSUM): the field holds
 *		the pseudo-header's sum, which only the addresses change
 */
void knat_rewrite(struct knat_view *v, const struct knat_tuple *to, bool partial);

/**
 * knat_checksums_ok() - whether the IPv4 header's checksum, and unless
 * @tcp_partial the TCP segment's, are right
 * @tcp_partial:	the TCP checksum is left to the receiver (NEEDS_CSUM)
 *
 * The kernel would drop a segment that fails them; a new flow's SYN is
 * checked before it takes a slot, so a guest cannot hold slots with
 * segments nobody will ever answer.
 */
bool knat_checksums_ok(const struct knat_view *v, bool tcp_partial);

/* knat_pool_addr() - the private address of flow slot @slot (network order). */
static inline uint32_t knat_pool_addr(uint32_t slot)
{
	return htonl(KNAT_POOL_NET + 1 + slot);
}

/* knat_pool_slot() - the slot of private address @addr (network order), or -1 outside the pool. */
static inline int64_t knat_pool_slot(uint32_t addr)
{
	uint32_t a = ntohl(addr);

	if (a <= KNAT_POOL_NET || a > KNAT_POOL_NET + KNAT_POOL_SLOTS)
		return -1;
	return a - KNAT_POOL_NET - 1;
}

#endif /* MESHSLIRP_PB_KNAT_H */
