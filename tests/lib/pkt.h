/* pkt.h - build and parse Ethernet/IPv4/UDP/TCP/ARP frames for tests (not the product's codecs). */
#ifndef MESHSLIRP_TESTS_PKT_H
#define MESHSLIRP_TESTS_PKT_H

/*
 * Written independently of anything in the daemon so tests check the
 * product against a second implementation.  Byte-level, no padding
 * assumptions; all multi-byte fields in network order.
 */

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define PKT_ETH_HLEN 14
#define PKT_ETH_P_IP 0x0800
#define PKT_ETH_P_ARP 0x0806

extern const uint8_t pkt_guest_mac[6];
extern const uint8_t pkt_broadcast_mac[6];

/* A big-endian 32-bit value at @p. */
uint32_t pkt_get32(const uint8_t *p);

/* RFC 1071 checksum over @len bytes, folded, not inverted, starting from @sum. */
uint32_t pkt_csum_add(uint32_t sum, const void *data, size_t len);
uint16_t pkt_csum_fold(uint32_t sum);

/* ARP request "who has @target, tell @sender" from the guest MAC. */
size_t pkt_arp_request(uint8_t *buf, struct in_addr sender, struct in_addr target);

/* UDP/IPv4 in Ethernet; returns frame length. */
size_t pkt_udp(uint8_t *buf, const uint8_t dst_mac[6], struct in_addr src,
	       struct in_addr dst, uint16_t sport, uint16_t dport,
	       const void *payload, size_t len);

/* ICMP echo request in Ethernet; returns frame length. */
size_t pkt_icmp_echo(uint8_t *buf, const uint8_t dst_mac[6], struct in_addr src,
		     struct in_addr dst, uint16_t id, uint16_t seq, const void *payload, size_t len);

/* TCP/IPv4 in Ethernet with the given flags (TH_SYN...); returns frame length. */
size_t pkt_tcp(uint8_t *buf, const uint8_t dst_mac[6], struct in_addr src,
	       struct in_addr dst, uint16_t sport, uint16_t dport, uint32_t seq,
	       uint32_t ack, uint8_t flags, const void *payload, size_t len);

/* DHCPDISCOVER from the guest MAC with transaction id @xid. */
size_t pkt_dhcp_discover(uint8_t *buf, uint32_t xid);

/* The same, naming client hardware address @chaddr (the frame still comes from the guest MAC). */
size_t pkt_dhcp_discover_from(uint8_t *buf, uint32_t xid, const uint8_t chaddr[6]);

struct pkt_ipv4_view {
	struct in_addr src, dst;
	uint8_t proto;
	const uint8_t *l4;       /* transport header */
	size_t l4_len;
	int ip_csum_ok;
	int l4_csum_ok;          /* TCP/UDP checksum verified (UDP 0 counts as ok) */
};

/* Parse an Ethernet/IPv4 frame; returns 0 or -1 if it is not one. */
int pkt_parse_ipv4(const uint8_t *frame, size_t len, struct pkt_ipv4_view *v);

/*
 * Complete a partial checksum as a virtio-net driver would for NEEDS_CSUM: the
 * sum from @start to the end of the IPv4 packet (the field included), stored
 * at @start + @offset.  Returns 0, or -1 if that lies outside the packet.
 */
int pkt_csum_complete(uint8_t *frame, size_t len, size_t start, size_t offset);

/* Recompute the IPv4 header checksum and the TCP or UDP checksum of a frame. */
void pkt_fix_csums(uint8_t *frame, size_t len);

/* Find DHCP option @code in a BOOTP payload; returns pointer to its value or NULL. */
const uint8_t *pkt_dhcp_option(const uint8_t *bootp, size_t len, uint8_t code,
			       uint8_t *optlen);

#endif
