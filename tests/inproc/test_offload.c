/* test_offload.c - in-process tests of the virtio-net offloads: large segments both ways, lies refused. */

/*
 * A guest behind vhost-user rings (tests/lib/vufront, offloads taken) talks
 * TCP, written here byte by byte, to a listener on this host's loopback
 * through the gateway (--allow-host-loopback), the guest link at MTU 1500:
 *   - to the guest: its SYN's MSS 1460 is raised, libslirp sends 32 KiB
 *     segments, and they reach the guest as GSO frames with partial
 *     checksums (tests/lib/inproc.c checks and cuts them with its own code);
 *   - from the guest: a 60,000-byte TSO segment with a partial checksum
 *     reaches the listener whole and intact;
 *   - lies: GSO frames whose headers contradict their metadata, metadata
 *     never negotiated, checksum positions outside the packet: each dropped
 *     and counted, the connection unharmed;
 *   - over the stream socket (no offloads), a guest that advertises more
 *     MSS than its link holds gets libslirp's large segments cut to its MTU.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <glib.h>

#include "backend/offload.h"
#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"
#include "tests/lib/virtio_wire.h"

#define GUEST_PORT 40100
#define BULK (200 * 1024)
#define TSO_BYTES 60000

/* The guest's end of one TCP connection to a host listener. */
struct gtcp {
	struct inproc *f;
	uint16_t sport, dport;
	uint32_t snd_nxt, rcv_nxt;
	int lfd, conn;              /* the host's listener and accepted socket */
	uint16_t synack_mss;        /* the MSS option of the SYN-ACK the guest got */
};

static int setup_vu(void **state)
{
	static const char *const args[] = { "--allow-host-loopback", "--mtu", "1500", NULL };

	g_setenv("INPROC_BACKEND", "vhost-user", TRUE);
	g_setenv("INPROC_VU_FEATURES", "offload", TRUE);
	*state = inproc_start(args);
	return 0;
}

static int setup_vu_off(void **state)
{
	static const char *const args[] = { "--allow-host-loopback", "--mtu", "1500", "--offload",
					    "off", NULL };

	g_setenv("INPROC_BACKEND", "vhost-user", TRUE);
	g_setenv("INPROC_VU_FEATURES", "offload", TRUE);
	*state = inproc_start(args);
	return 0;
}

static int setup_stream(void **state)
{
	static const char *const args[] = { "--allow-host-loopback", "--mtu", "1500", NULL };

	g_unsetenv("INPROC_BACKEND");
	g_unsetenv("INPROC_VU_FEATURES");
	*state = inproc_start(args);
	return 0;
}

static int teardown(void **state)
{
	inproc_stop(*state);
	return 0;
}

/* A frame from the guest with virtio-net metadata (vhost-user only). */
static void send_meta(struct inproc *f, const struct virtio_net_hdr_v1 *h, const uint8_t *fr,
		      size_t len)
{
	assert_int_equal(vufront_tx(f->vf, h, fr, len), 0);
}

/* A segment from the guest on @g; @mss, if not 0, replaces the SYN's MSS option. */
static size_t gtcp_build(struct gtcp *g, uint8_t *fr, uint8_t flags, const void *data,
			 size_t len, uint16_t mss)
{
	size_t n = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"),
			   g->sport, g->dport, g->snd_nxt, g->rcv_nxt, flags, data, len);

	if (mss) {
		fr[PKT_ETH_HLEN + 20 + 22] = (uint8_t)(mss >> 8);
		fr[PKT_ETH_HLEN + 20 + 23] = (uint8_t)mss;
		pkt_fix_csums(fr, n);
	}
	return n;
}

static void gtcp_send(struct gtcp *g, uint8_t flags, const void *data, size_t len)
{
	uint8_t fr[2048];

	inproc_send(g->f, fr, gtcp_build(g, fr, flags, data, len, 0));
	g->snd_nxt += (uint32_t)len;
}

/* Connect the guest to a fresh host listener, advertising MSS @mss (0: pkt_tcp's 1460). */
static void gtcp_connect(struct gtcp *g, struct inproc *f, uint16_t mss)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	struct inproc_tcp_match m;
	struct pkt_ipv4_view v;
	uint8_t fr[2048], rx[2048];
	size_t len;

	*g = (struct gtcp){ .f = f, .sport = GUEST_PORT, .snd_nxt = 5000 };
	g->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(g->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(g->lfd, 4), 0);
	assert_int_equal(getsockname(g->lfd, (struct sockaddr *)&sa, &salen), 0);
	g->dport = ntohs(sa.sin_port);

	inproc_arp_gateway(f);
	inproc_send(f, fr, gtcp_build(g, fr, 0x02, NULL, 0, mss));
	g->snd_nxt++;
	m = (struct inproc_tcp_match){ g->dport, g->sport, 0x12 };
	len = inproc_recv_match(f, rx, sizeof(rx), inproc_is_tcp, &m);
	assert_true(len > 0);
	assert_int_equal(pkt_parse_ipv4(rx, len, &v), 0);
	g->rcv_nxt = inproc_be32(v.l4 + 4) + 1;
	/* libslirp puts its MSS option first. */
	assert_true(v.l4_len >= 24 && v.l4[20] == 2 && v.l4[21] == 4);
	g->synack_mss = (uint16_t)(v.l4[22] << 8 | v.l4[23]);
	gtcp_send(g, 0x10, NULL, 0);
	g->conn = inproc_accept(g->lfd);
}

static void gtcp_close(struct gtcp *g)
{
	close(g->conn);
	close(g->lfd);
}

/* Receive @n bytes on @g in order, acknowledging as the data comes; the largest segment seen. */
static size_t gtcp_recv(struct gtcp *g, uint8_t *out, size_t n)
{
	struct inproc_tcp_match m = { g->dport, g->sport, 0x10 };
	size_t got = 0, largest = 0;
	uint8_t rx[2048];

	while (got < n) {
		struct pkt_ipv4_view v;
		size_t len = inproc_recv_match(g->f, rx, sizeof(rx), inproc_is_tcp, &m), off, data;

		assert_true(len > 0);
		assert_int_equal(pkt_parse_ipv4(rx, len, &v), 0);
		assert_true(v.ip_csum_ok && v.l4_csum_ok);
		largest = MAX(largest, len);
		off = (size_t)(v.l4[12] >> 4) * 4;
		data = v.l4_len - off;
		if (!data || inproc_be32(v.l4 + 4) != g->rcv_nxt)
			continue;       /* a retransmission or a window update */
		assert_true(got + data <= n);
		memcpy(out + got, v.l4 + off, data);
		got += data;
		g->rcv_nxt += (uint32_t)data;
		gtcp_send(g, 0x10, NULL, 0);
	}
	return largest;
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

/* Write all of @buf to the host socket, pumping the daemon while the guest reads. */
static void host_write_all(struct gtcp *g, const uint8_t *buf, size_t n, uint8_t *in)
{
	size_t sent = 0, largest;

	while (sent < n) {
		ssize_t w = write(g->conn, buf + sent, n - sent);

		if (w > 0)
			sent += (size_t)w;
		else
			inproc_pump(1);
	}
	largest = gtcp_recv(g, in, n);
	/* What the guest's stack saw after its NIC: MTU-sized pieces. */
	assert_true(largest <= PKT_ETH_HLEN + 1500);
}

/*
 * To the guest: the MSS it advertised (its MTU's) is raised, libslirp sends large
 * segments, and they arrive as GSO frames that cut into exactly the bytes sent.
 */
static void test_large_segments_to_guest(void **state)
{
	struct inproc *f = *state;
	g_autofree uint8_t *out = g_malloc(BULK), *in = g_malloc(BULK);
	struct gtcp g;

	gtcp_connect(&g, f, 0);
	assert_int_equal(f->d.offload.mss_raised, 1);
	/* libslirp's SYN-ACK: its MSS lowered so the guest's TSO frames fill the window. */
	assert_int_equal(f->d.offload.mss_clamped, 1);
	assert_int_equal(g.synack_mss, OFFLOAD_MSS_TSO);
	fill_pattern(out, BULK, 7);
	host_write_all(&g, out, BULK, in);
	assert_memory_equal(in, out, BULK);
	assert_true(f->d.offload.tx_gso > 0);
	assert_true(f->vu_rx_gso > 0);
	assert_int_equal(f->vu_rx_gso, f->d.offload.tx_gso);
	/* Every TCP segment went with a partial checksum: the guest verified none. */
	assert_true(f->vu_rx_csum_partial >= f->vu_rx_gso);
	gtcp_close(&g);
}

/*
 * From the guest: one TSO segment of 60,000 bytes with only the pseudo-header's sum
 * in its checksum field reaches the host whole; a small one with a partial checksum too.
 */
static void test_large_segment_from_guest(void **state)
{
	struct inproc *f = *state;
	static uint8_t fr[PKT_ETH_HLEN + 40 + TSO_BYTES];
	g_autofree uint8_t *data = g_malloc(TSO_BYTES + 100), *got = g_malloc(TSO_BYTES + 100);
	struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				       .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
				       .hdr_len = PKT_ETH_HLEN + 40, .gso_size = 1460,
				       .csum_start = PKT_ETH_HLEN + 20, .csum_offset = 16 };
	uint8_t *ip = fr + PKT_ETH_HLEN, *tcp = ip + 20;
	uint32_t sum;
	size_t len;
	struct gtcp g;

	gtcp_connect(&g, f, 0);
	fill_pattern(data, TSO_BYTES + 100, 99);
	len = gtcp_build(&g, fr, 0x18, data, TSO_BYTES, 0);
	/* As Linux hands it over: the checksum field holds the pseudo-header's sum. */
	tcp[16] = tcp[17] = 0;
	sum = pkt_csum_add(0, ip + 12, 8) + IPPROTO_TCP + (uint32_t)(len - PKT_ETH_HLEN - 20);
	sum = pkt_csum_fold(sum);
	tcp[16] = (uint8_t)(sum >> 8);
	tcp[17] = (uint8_t)sum;
	send_meta(f, &h, fr, len);
	g.snd_nxt += TSO_BYTES;
	inproc_read_exact(g.conn, got, TSO_BYTES);
	assert_memory_equal(got, data, TSO_BYTES);
	assert_int_equal(f->d.offload.rx_gso, 1);

	h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	len = gtcp_build(&g, fr, 0x18, data + TSO_BYTES, 100, 0);
	tcp[16] = tcp[17] = 0;
	sum = pkt_csum_fold(pkt_csum_add(0, ip + 12, 8) + IPPROTO_TCP + 120);
	tcp[16] = (uint8_t)(sum >> 8);
	tcp[17] = (uint8_t)sum;
	send_meta(f, &h, fr, len);
	g.snd_nxt += 100;
	inproc_read_exact(g.conn, got, 100);
	assert_memory_equal(got, data + TSO_BYTES, 100);
	assert_int_equal(f->d.offload.rx_csum_completed, 2);
	assert_int_equal(f->d.offload.rx_refused, 0);
	gtcp_close(&g);
}

/*
 * Lies: each frame is dropped and counted where it is caught, libslirp never sees it,
 * and the connection carries data afterwards.
 */
static void test_lying_metadata(void **state)
{
	struct inproc *f = *state;
	static uint8_t fr[PKT_ETH_HLEN + 40 + 4000];
	uint8_t data[4000] = { 1 }, got[16];
	const struct backend_stats *bs = &f->d.be->stats;
	struct virtio_net_hdr_v1 gso = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
					 .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
					 .hdr_len = PKT_ETH_HLEN + 40, .gso_size = 1460,
					 .csum_start = PKT_ETH_HLEN + 20, .csum_offset = 16 };
	struct virtio_net_hdr_v1 h;
	uint64_t refused, bad_meta, oversize;
	size_t len;
	struct gtcp g;

	gtcp_connect(&g, f, 0);
	refused = f->d.offload.rx_refused;
	bad_meta = bs->rx_bad_meta;
	oversize = bs->rx_oversize;

	/* GSO whose IP total length says less than the frame holds. */
	len = gtcp_build(&g, fr, 0x18, data, 4000, 0);
	fr[PKT_ETH_HLEN + 2] = 0x05;
	send_meta(f, &gso, fr, len);
	/* GSO on a UDP datagram, as TCPv4. */
	len = pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2"), 5000,
		      9, data, 4000);
	send_meta(f, &gso, fr, len);
	/* A checksum position past the IP packet, inside Ethernet padding. */
	len = gtcp_build(&g, fr, 0x18, data, 10, 0);
	memset(fr + len, 0, 64);
	h = (struct virtio_net_hdr_v1){ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
					.csum_start = (uint16_t)len, .csum_offset = 16 };
	send_meta(f, &h, fr, len + 64);
	inproc_pump(20);
	assert_int_equal(f->d.offload.rx_refused, refused + 3);

	/* Caught by the backend: a GSO type never offered, a zero gso_size. */
	len = gtcp_build(&g, fr, 0x18, data, 4000, 0);
	h = gso;
	h.gso_type = VIRTIO_NET_HDR_GSO_UDP;
	send_meta(f, &h, fr, len);
	h = gso;
	h.gso_size = 0;
	send_meta(f, &h, fr, len);
	/* No GSO, yet over the MTU. */
	send_meta(f, NULL, fr, len);
	inproc_pump(20);
	assert_int_equal(bs->rx_bad_meta, bad_meta + 2);
	assert_int_equal(bs->rx_oversize, oversize + 1);
	assert_int_equal(f->d.offload.rx_refused, refused + 3);

	/* Nothing of it reached the host; the connection still works. */
	gtcp_send(&g, 0x18, "after", 5);
	inproc_read_exact(g.conn, got, 5);
	assert_memory_equal(got, "after", 5);
	gtcp_close(&g);
}

/*
 * No offloads (the stream socket): a guest that advertises an MSS of 9,000 at MTU 1500
 * gets libslirp's 9,000-byte segments cut to its link by the netstack.
 */
static void test_segments_cut_without_offload(void **state)
{
	struct inproc *f = *state;
	g_autofree uint8_t *out = g_malloc(BULK), *in = g_malloc(BULK);
	const struct netstack_stats *ns;
	struct gtcp g;

	gtcp_connect(&g, f, 9000);
	assert_int_equal(f->d.offload.mss_raised, 0);
	assert_int_equal(f->d.offload.mss_clamped, 0);
	assert_int_equal(g.synack_mss, 65520 - 40);
	fill_pattern(out, BULK, 3);
	host_write_all(&g, out, BULK, in);
	assert_memory_equal(in, out, BULK);
	ns = netstack_stats(f->d.ns);
	assert_true(ns->tx_segmented > 0);
	assert_true(ns->tx_segments > ns->tx_segmented);
	assert_int_equal(ns->tx_too_big, 0);
	gtcp_close(&g);
}

/*
 * --offload off: the driver asked for every offload and got none; the same data flows
 * both ways in MTU-sized frames, nothing raised, clamped, joined or segmented.
 */
static void test_offload_off(void **state)
{
	struct inproc *f = *state;
	g_autofree uint8_t *out = g_malloc(BULK), *in = g_malloc(BULK);
	struct gtcp g;

	assert_int_equal(vufront_features(f->vf) & VUFRONT_FEATURES_OFFLOAD, 0);
	assert_int_equal(f->d.be->rx_offloads | f->d.be->tx_offloads, 0);
	gtcp_connect(&g, f, 0);
	fill_pattern(out, BULK, 11);
	host_write_all(&g, out, BULK, in);
	assert_memory_equal(in, out, BULK);
	gtcp_send(&g, 0x18, out, 1000);
	inproc_read_exact(g.conn, in, 1000);
	assert_memory_equal(in, out, 1000);
	assert_int_equal(f->vu_rx_gso + f->vu_rx_csum_partial + f->vu_rx_data_valid, 0);
	assert_int_equal(f->d.offload.mss_raised + f->d.offload.mss_clamped +
			 f->d.offload.tx_gso, 0);
	gtcp_close(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_large_segments_to_guest, setup_vu, teardown),
		cmocka_unit_test_setup_teardown(test_large_segment_from_guest, setup_vu, teardown),
		cmocka_unit_test_setup_teardown(test_lying_metadata, setup_vu, teardown),
		cmocka_unit_test_setup_teardown(test_segments_cut_without_offload, setup_stream,
						teardown),
		cmocka_unit_test_setup_teardown(test_offload_off, setup_vu_off, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
