/* rewrite.h - parse and rewrite IPv4 TCP/UDP/ICMP-error frames in place (pure, no I/O). */
#ifndef MESHSLIRP_PB_REWRITE_H
#define MESHSLIRP_PB_REWRITE_H

/*
 * The proxy-bridge moves a steered flow between two views of the same
 * connection: the guest's (guest:lport <-> original destination) and
 * libslirp's (guest:sport <-> the sidecar target).  This module does the byte
 * work on one Ethernet frame:
 *
 *  - rw_parse() validates the Ethernet/IPv4 framing and locates the transport
 *    header, or for an ICMP error the embedded IP header and its first 8
 *    transport bytes;
 *  - rw_set_tuple() / rw_set_inner_tuple() rewrite addresses and ports and
 *    keep every checksum right by incremental update (RFC 1624), so a frame
 *    whose checksum was wrong stays wrong and the receiver still drops it;
 *  - rw_build_tcp_rst() builds the reset we send when a flow is refused,
 *    rw_build_tcp() any other bare segment (the window probe).
 *
 * Nothing here allocates; frames are rewritten in place, lengths never
 * change.  A frame that is not IPv4, is malformed (lengths that lie, a header
 * length below 20) or is a non-first fragment is reported, never touched.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RW_ETH_HLEN 14
#define RW_TCP_FIN 0x01
#define RW_TCP_SYN 0x02
#define RW_TCP_RST 0x04
#define RW_TCP_ACK 0x10
#define RW_TCP_URG 0x20

/* One direction of a TCP/UDP conversation; addresses and ports in network order. */
struct rw_tuple {
	uint32_t saddr, daddr;
	uint16_t sport, dport;
	uint8_t proto;             /* IPPROTO_TCP or IPPROTO_UDP */
};

enum rw_kind {
	RW_NOT_IPV4,               /* ARP, IPv6, ... */
	RW_MALFORMED,              /* IPv4 with lying or impossible lengths */
	RW_FRAGMENT,               /* a non-first fragment: no transport header */
	RW_TRANSPORT,              /* TCP or UDP with a full header */
	RW_ICMP_ERROR,             /* ICMP error embedding a TCP/UDP header */
	RW_OTHER,                  /* any other IPv4 packet (ICMP echo, ...) */
};

struct rw_view {
	enum rw_kind kind;
	uint8_t *eth;
	uint8_t *ip;               /* outer IPv4 header */
	size_t ihl;                /* outer header length */
	size_t ip_len;             /* outer total length (<= frame) */
	uint8_t proto;             /* outer protocol */
	uint8_t *l4;               /* RW_TRANSPORT: TCP/UDP header; RW_ICMP_ERROR: ICMP header */
	size_t l4_len;
	uint8_t *inner_ip;         /* RW_ICMP_ERROR: embedded IPv4 header */
	size_t inner_ihl;
	uint8_t *inner_l4;         /* RW_ICMP_ERROR: first 8 bytes of its transport header */
};

/**
 * rw_parse() - classify an Ethernet frame and locate its headers
 * @frame:	frame (the view points into it; it must outlive the view)
 * @len:	frame length
 * @v:		filled in; v->kind says what was found
 */
void rw_parse(uint8_t *frame, size_t len, struct rw_view *v);

/* rw_tuple() - the frame's own tuple (RW_TRANSPORT only). */
void rw_tuple(const struct rw_view *v, struct rw_tuple *t);

/* rw_tcp_flags() - TCP flags byte (RW_TRANSPORT with proto TCP only). */
uint8_t rw_tcp_flags(const struct rw_view *v);

/* rw_tcp_is_syn() - whether it opens a connection: SYN without ACK (RW_TRANSPORT, TCP). */
bool rw_tcp_is_syn(const struct rw_view *v);

/* rw_tcp_seq() - TCP sequence number in host order (RW_TRANSPORT, TCP). */
uint32_t rw_tcp_seq(const struct rw_view *v);

/**
 * rw_tcp_seq_end() - the sequence number just after this segment (host order)
 *
 * seq + payload length + 1 for SYN + 1 for FIN: what the receiver will
 * acknowledge once it has the segment (RW_TRANSPORT, TCP).
 */
uint32_t rw_tcp_seq_end(const struct rw_view *v);

/* rw_tcp_ack() - acknowledgement number in host order (RW_TRANSPORT, TCP). */
uint32_t rw_tcp_ack(const struct rw_view *v);

/* rw_tcp_window() - the window field in host order, unscaled (RW_TRANSPORT, TCP). */
uint16_t rw_tcp_window(const struct rw_view *v);

/**
 * rw_tcp_clear_urgent() - make a TCP segment's urgent data ordinary data
 * @v:		RW_TRANSPORT view of a TCP segment whose checksum is complete
 *
 * Clears URG and zeroes the urgent pointer, folding both changes into the
 * TCP checksum, so the bytes the pointer marked travel inline like the rest
 * (what a firewall that clears URG does).  Returns whether the segment had
 * URG set; a segment without it is left alone.
 */
bool rw_tcp_clear_urgent(struct rw_view *v);

/**
 * rw_tcp_options_sound() - whether a TCP segment's options stay inside its header
 * @v:		RW_TRANSPORT view of a TCP segment
 *
 * Walks the options as RFC 9293 lays them out (EOL ends them, NOP is one
 * byte, every other option has a length of at least 2): false if a length
 * byte or an option runs past the data offset.
 */
bool rw_tcp_options_sound(const struct rw_view *v);

/*
 * rw_is_fragment() - whether the packet is part of a fragmented datagram
 * (more-fragments set or a non-zero offset); false for non-IPv4 or malformed.
 */
bool rw_is_fragment(const struct rw_view *v);

/**
 * rw_checksums_ok() - verify the IPv4 header checksum and, for RW_TRANSPORT,
 * the TCP or UDP checksum over the whole segment (UDP 0 means "none": valid)
 *
 * A full computation, for the few packets where it matters (a packet that
 * would open a flow); the rest of the path trusts libslirp's checks.
 */
bool rw_checksums_ok(const struct rw_view *v);

/* rw_inner_tuple() - the embedded packet's tuple (RW_ICMP_ERROR only). */
void rw_inner_tuple(const struct rw_view *v, struct rw_tuple *t);

/* rw_set_tuple() - rewrite addresses and ports to @to; IP and L4 checksums follow. */
void rw_set_tuple(struct rw_view *v, const struct rw_tuple *to);

/**
 * rw_set_inner_tuple() - rewrite an ICMP error's embedded header to @to
 *
 * Fixes the embedded IP checksum, the embedded UDP checksum when present
 * (the embedded TCP checksum lies beyond the 8 quoted bytes and cannot be
 * fixed, exactly as for a NAT), and the ICMP checksum.
 */
void rw_set_inner_tuple(struct rw_view *v, const struct rw_tuple *to);

/* rw_set_outer_addrs() - rewrite the outer IP source and destination; IP checksum follows. */
void rw_set_outer_addrs(struct rw_view *v, uint32_t saddr, uint32_t daddr);

/* rw_outer_addrs() - read the outer IP source and destination (network order). */
void rw_outer_addrs(const struct rw_view *v, uint32_t *saddr, uint32_t *daddr);

/* rw_ip_id() - the IPv4 identification field in host order (any IPv4 kind but malformed). */
uint16_t rw_ip_id(const struct rw_view *v);

/* rw_more_fragments() - whether the More Fragments bit is set (a first or middle fragment). */
bool rw_more_fragments(const struct rw_view *v);

/* Longest frame rw_build_icmp_unreach() writes: Ethernet, IP, ICMP, a quoted 60-byte header + 8. */
#define RW_ICMP_UNREACH_MAX (RW_ETH_HLEN + 20 + 8 + 60 + 8)
/* ICMP destination-unreachable codes we send. */
#define RW_ICMP_UNREACH_ADMIN 13   /* communication administratively prohibited (RFC 1812) */

/**
 * rw_build_icmp_unreach() - build "destination unreachable" about packet @orig
 * @out:	output, at least RW_ICMP_UNREACH_MAX bytes
 * @dst_mac, @src_mac:	Ethernet addresses of the answer
 * @src_addr:	who answers (network order), e.g. the gateway that refused
 * @orig:	the refused packet (any IPv4 kind but malformed)
 * @code:	ICMP code, e.g. RW_ICMP_UNREACH_ADMIN
 *
 * Quotes @orig's IP header and the first 8 bytes after it, as RFC 792 asks.
 *
 * Return: frame length.
 */
size_t rw_build_icmp_unreach(uint8_t *out, const uint8_t dst_mac[6], const uint8_t src_mac[6],
			     uint32_t src_addr, const struct rw_view *orig, uint8_t code);

/**
 * rw_build_tcp_rst() - build an Ethernet frame carrying a TCP RST|ACK
 * @out:	output buffer, at least RW_ETH_HLEN + 40 bytes
 * @dst_mac, @src_mac:	Ethernet addresses
 * @t:		tuple of the RST itself (from @t->saddr:sport to @t->daddr:dport)
 * @seq:	sequence number, host order (0 to refuse a SYN; the receiver's
 *		next expected byte to end an established connection)
 * @ack:	acknowledgement number, host order (peer's ISN + 1 for a refused SYN)
 *
 * Return: frame length (54).
 */
size_t rw_build_tcp_rst(uint8_t *out, const uint8_t dst_mac[6], const uint8_t src_mac[6],
			const struct rw_tuple *t, uint32_t seq, uint32_t ack);

/**
 * rw_build_tcp() - build an Ethernet frame carrying a TCP segment without data or options
 * @out, @dst_mac, @src_mac, @t, @seq, @ack:	as for rw_build_tcp_rst()
 * @flags:	TCP flags (RW_TCP_*)
 * @window:	the window field, host order
 *
 * Return: frame length (54).
 */
size_t rw_build_tcp(uint8_t *out, const uint8_t dst_mac[6], const uint8_t src_mac[6],
		    const struct rw_tuple *t, uint32_t seq, uint32_t ack, uint8_t flags,
		    uint16_t window);

#endif /* MESHSLIRP_PB_REWRITE_H */
