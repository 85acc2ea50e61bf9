/* test_netstack_frag.c - a netstack without the bridge: libslirp reassembles in-order fragments; the guest's MTU cuts answers. */

/*
 * These tests drive a real netstack (no sockets are needed: pings to the
 * gateway are answered by libslirp itself).  In the daemon no guest
 * fragment reaches libslirp (the bridge drops them: test_guest_drops in
 * tests/inproc/test_limits.c), which also keeps libslirp 4.7.0's ip_reass
 * crash on a lone last fragment out of reach; that frame is not sent here.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <glib.h>

#include "netstack/netstack.h"
#include "tests/lib/pkt.h"

#define ICMP_ID 0x1234

struct sink {
	unsigned int frames;
	size_t max_len;             /* longest frame towards the guest */
	unsigned int echo_replies;
	uint8_t reply[2048];
	size_t reply_len;
};

static int sink_tx(uint8_t *frame, size_t len, void *opaque)
{
	struct sink *s = opaque;
	struct pkt_ipv4_view v;

	s->frames++;
	s->max_len = MAX(s->max_len, len);
	if (!pkt_parse_ipv4(frame, len, &v) && v.proto == IPPROTO_ICMP && v.l4_len >= 8 &&
	    v.l4[0] == 0 && (v.l4[4] << 8 | v.l4[5]) == ICMP_ID) {
		s->echo_replies++;
		s->reply_len = MIN(len, sizeof(s->reply));
		memcpy(s->reply, frame, s->reply_len);
	}
	return 0;
}

static void sink_flush(void *opaque)
{
	(void)opaque;
}

static const struct netstack_ops sink_ops = { .tx_frame = sink_tx, .tx_flush = sink_flush };

struct fixture {
	struct netstack *ns;
	struct sink sink;
};

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

static int setup(void **state)
{
	struct fixture *f = g_new0(struct fixture, 1);
	struct netstack_config cfg = {
		.network = ip4("10.0.2.0"), .netmask = ip4("255.255.255.0"),
		.gateway = ip4("10.0.2.2"), .dns = ip4("10.0.2.3"), .guest = ip4("10.0.2.15"),
		.mtu = 1500,
	};
	uint8_t arp[64];
	size_t len;

	assert_int_equal(netstack_new(&cfg, &sink_ops, &f->sink, &f->ns), 0);
	/* libslirp learns the guest's MAC, so it can answer. */
	len = pkt_arp_request(arp, ip4("10.0.2.15"), ip4("10.0.2.2"));
	netstack_input(f->ns, arp, len);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	netstack_free(f->ns);
	g_free(f);
	return 0;
}

/*
 * One IPv4 fragment of an ICMP echo request from the guest to the gateway:
 * @off8 in 8-byte units, @mf More Fragments, @body the fragment's bytes.
 */
static size_t fragment(uint8_t *buf, uint16_t id, uint16_t off8, bool mf, const uint8_t *body,
		       size_t len)
{
	static const uint8_t gw_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
	struct in_addr src = ip4("10.0.2.15"), dst = ip4("10.0.2.2");
	uint8_t *ip = buf + PKT_ETH_HLEN;
	uint16_t frag = (uint16_t)((mf ? 0x2000 : 0) | off8), sum;

	memcpy(buf, gw_mac, 6);
	memcpy(buf + 6, pkt_guest_mac, 6);
	buf[12] = 0x08;
	buf[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + len) >> 8);
	ip[3] = (uint8_t)(20 + len);
	ip[4] = (uint8_t)(id >> 8);
	ip[5] = (uint8_t)id;
	ip[6] = (uint8_t)(frag >> 8);
	ip[7] = (uint8_t)frag;
	ip[8] = 64;
	ip[9] = IPPROTO_ICMP;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	sum = (uint16_t)~pkt_csum_fold(pkt_csum_add(0, ip, 20));
	ip[10] = (uint8_t)(sum >> 8);
	ip[11] = (uint8_t)sum;
	memcpy(ip + 20, body, len);
	return PKT_ETH_HLEN + 20 + len;
}

/* An ICMP echo request of 8 + 32 bytes, split at byte 16 into two fragments. */
static void echo_request(uint8_t msg[40])
{
	uint16_t sum;

	memset(msg, 0, 40);
	msg[0] = 8;
	msg[4] = ICMP_ID >> 8;
	msg[5] = ICMP_ID & 0xff;
	msg[7] = 1;
	for (int i = 8; i < 40; i++)
		msg[i] = (uint8_t)('a' + i % 26);
	sum = (uint16_t)~pkt_csum_fold(pkt_csum_add(0, msg, 40));
	msg[2] = (uint8_t)(sum >> 8);
	msg[3] = (uint8_t)sum;
}

/* Fragments in order still make one datagram: the gateway answers the ping. */
static void test_fragments_in_order(void **state)
{
	struct fixture *f = *state;
	uint8_t msg[40], fr[128];
	struct pkt_ipv4_view v;

	echo_request(msg);
	netstack_input(f->ns, fr, fragment(fr, 0x77, 0, true, msg, 16));
	netstack_input(f->ns, fr, fragment(fr, 0x77, 2, false, msg + 16, 24));
	assert_int_equal(f->sink.echo_replies, 1);
	assert_int_equal(pkt_parse_ipv4(f->sink.reply, f->sink.reply_len, &v), 0);
	assert_int_equal(v.l4_len, 40);
	assert_memory_equal(v.l4 + 8, msg + 8, 32);
	assert_true(v.ip_csum_ok);
}

/*
 * vhost-user F9: the guest's MTU lowered at runtime (NET_SET_MTU through the
 * daemon): a 1000-byte ping's answer reaches the guest cut to 576-byte IP
 * packets.  Never above the MTU the netstack was made with (its fragment
 * buffer), never below 576.
 */
static void test_guest_mtu_lowered(void **state)
{
	struct fixture *f = *state;
	uint8_t msg[1000], fr[1100];
	uint16_t sum;

	assert_int_equal(netstack_set_guest_mtu(f->ns, 1501), -EINVAL);
	assert_int_equal(netstack_set_guest_mtu(f->ns, 575), -EINVAL);
	assert_int_equal(netstack_set_guest_mtu(f->ns, 576), 0);
	memset(msg, 'x', sizeof(msg));
	msg[0] = 8;
	msg[1] = msg[2] = msg[3] = 0;
	msg[4] = ICMP_ID >> 8;
	msg[5] = ICMP_ID & 0xff;
	msg[6] = 0;
	msg[7] = 2;
	sum = (uint16_t)~pkt_csum_fold(pkt_csum_add(0, msg, sizeof(msg)));
	msg[2] = (uint8_t)(sum >> 8);
	msg[3] = (uint8_t)sum;
	netstack_input(f->ns, fr, fragment(fr, 0x80, 0, false, msg, sizeof(msg)));
	assert_true(f->sink.frames >= 2);
	assert_true(f->sink.max_len <= PKT_ETH_HLEN + 576);
	assert_int_equal(netstack_stats(f->ns)->tx_fragmented, 1);
	/* Back up to the configured MTU: the answer fits in one frame again. */
	assert_int_equal(netstack_set_guest_mtu(f->ns, 1500), 0);
	f->sink.frames = 0;
	f->sink.echo_replies = 0;
	netstack_input(f->ns, fr, fragment(fr, 0x81, 0, false, msg, sizeof(msg)));
	assert_int_equal(f->sink.frames, 1);
	assert_int_equal(f->sink.echo_replies, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fragments_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_mtu_lowered, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
