/* test_trust.c - in-process proof of the trust boundaries: no spelling of "this host" reaches the pod. */

/*
 * The test process lives in its own network namespace (tests/lib/testns.c)
 * with loopback and one pod address, 198.18.0.2.  There it plays the pod's
 * other containers: listeners on 127.0.0.1 (Envoy's admin port 15000, the
 * outbound port 15001 that is also --outbound-proxy, another container's
 * 7777) and on 0.0.0.0 (7778, reachable through the pod address), and a UDP
 * service on 0.0.0.0:7779.  The guest, played with synthetic frames, tries
 * every spelling of this host against them:
 *   - TCP: a reset from the address it tried, at once, counted by reason;
 *     nothing accepted by any listener; a world address is still steered.
 *   - UDP: dropped and counted; nothing received; DHCP and DNS still work.
 *   - ICMP echo: "administratively prohibited" from the gateway.
 *   - --allow-host-loopback opens the gateway to 127.0.0.1 but never to the
 *     sidecar's ports.
 * The deny list (--deny-outbound-cidr, by default Istio ambient's probe
 * address) is refused alike, and only what it lists.
 * Inbound: a client resetting and reconnecting from one address and port is
 * served every time; two loopback clients on one port and one client on two
 * exposed ports of one guest port do not confuse libslirp; a PROXY header
 * from an untrusted peer is refused; the daemon's own resets carry the
 * flow's real Ethernet addresses; a UDP answer libslirp fragments reaches the
 * guest rewritten alike in every fragment.
 */

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <glib.h>

#include "proxy-bridge/flow.h"
#include "proxy-bridge/proxy_proto.h"
#include "tests/lib/heap.h"
#include "tests/lib/inproc.h"
#include "tests/lib/pkt.h"
#include "tests/lib/testns.h"

#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PUSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20
#define ADMIN_PORT 15000
#define OUTBOUND_PORT 15001
#define LOCAL_SVC_PORT 7777
#define ANY_SVC_PORT 7778
#define UDP_SVC_PORT 7779
#define GUEST_PORT 80

struct trust {
	struct inproc *f;
	int admin, outbound, local_svc, any_svc, udp_svc; /* the pod's own services */
	uint16_t host_port, host_port2, dns_port;
	int dns_upstream;                                   /* UDP socket, or -1 */
	char expose[32], expose2[32], dns_arg[32];
};

static int tcp_listener(const char *addr, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr = inproc_ip(addr) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static int udp_socket(const char *addr, uint16_t port, uint16_t *bound)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr = inproc_ip(addr) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	if (bound)
		*bound = ntohs(sa.sin_port);
	return fd;
}

/* The pod's services, and a daemon steering to the "sidecar" on 15001 with @extra options. */
static struct trust *trust_start(const char *const *extra)
{
	struct trust *t = g_new0(struct trust, 1);
	g_autoptr(GPtrArray) args = g_ptr_array_new();
	uint16_t ports[2];

	t->admin = tcp_listener("127.0.0.1", ADMIN_PORT);
	t->outbound = tcp_listener("127.0.0.1", OUTBOUND_PORT);
	t->local_svc = tcp_listener("127.0.0.1", LOCAL_SVC_PORT);
	t->any_svc = tcp_listener("0.0.0.0", ANY_SVC_PORT);
	t->udp_svc = udp_socket("0.0.0.0", UDP_SVC_PORT, NULL);
	t->dns_upstream = udp_socket("127.0.0.1", 0, &t->dns_port);
	inproc_free_ports(ports, 2);
	t->host_port = ports[0];
	t->host_port2 = ports[1];
	snprintf(t->expose, sizeof(t->expose), "tcp:%u:%u", t->host_port, GUEST_PORT);
	snprintf(t->expose2, sizeof(t->expose2), "tcp:%u:%u", t->host_port2, GUEST_PORT);
	snprintf(t->dns_arg, sizeof(t->dns_arg), "127.0.0.1:%u", t->dns_port);
	g_ptr_array_add(args, "--mtu");
	g_ptr_array_add(args, "1500");
	/* libslirp's path: test_ksteer.c and hostile_kstack.sh judge the kernel's. */
	g_ptr_array_add(args, "--steer-stack");
	g_ptr_array_add(args, "slirp");
	g_ptr_array_add(args, "--outbound-proxy");
	g_ptr_array_add(args, "127.0.0.1:15001");
	g_ptr_array_add(args, "--proxy-source");
	g_ptr_array_add(args, TESTNS_POD_ADDRESS);
	g_ptr_array_add(args, "--dns-upstream");
	g_ptr_array_add(args, t->dns_arg);
	g_ptr_array_add(args, "--expose");
	g_ptr_array_add(args, t->expose);
	g_ptr_array_add(args, "--expose");
	g_ptr_array_add(args, t->expose2);
	for (; extra && *extra; extra++)
		g_ptr_array_add(args, (gpointer)*extra);
	g_ptr_array_add(args, NULL);
	t->f = inproc_start((const char *const *)args->pdata);
	inproc_arp_gateway(t->f);
	return t;
}

static int setup(void **state)
{
	*state = trust_start(NULL);
	return 0;
}

static int setup_host_loopback(void **state)
{
	static const char *const extra[] = { "--allow-host-loopback", NULL };

	*state = trust_start(extra);
	return 0;
}

static int setup_deny_custom(void **state)
{
	static const char *const extra[] = { "--deny-outbound-cidr", "198.18.9.0/24", NULL };

	*state = trust_start(extra);
	return 0;
}

static int setup_idle(void **state)
{
	static const char *const extra[] = { "--tcp-idle-timeout", "1s", NULL };

	*state = trust_start(extra);
	return 0;
}

static int setup_untrusted_optional(void **state)
{
	static const char *const extra[] = { "--inbound-proxy-protocol", "optional",
					     "--inbound-proxy-trusted", "192.0.2.0/24", NULL };

	*state = trust_start(extra);
	return 0;
}

static int setup_untrusted_required(void **state)
{
	static const char *const extra[] = { "--inbound-proxy-protocol", "required",
					     "--inbound-proxy-trusted", "192.0.2.0/24", NULL };

	*state = trust_start(extra);
	return 0;
}

static int setup_stranger_share(void **state)
{
	static const char *const extra[] = { "--inbound-proxy-protocol", "optional",
					     "--inbound-proxy-trusted", "127.0.0.2/32",
					     "--max-flows", "16", "--max-inbound-flows", "4", NULL };

	*state = trust_start(extra);
	return 0;
}

static int setup_reass_100(void **state)
{
	static const char *const extra[] = { "--max-reass-segments", "100", NULL };

	*state = trust_start(extra);
	return 0;
}

static int setup_inbound_limit(void **state)
{
	static const char *const extra[] = { "--max-flows", "4", "--max-inbound-flows", "2", NULL };

	*state = trust_start(extra);
	return 0;
}

static int setup_one_flow(void **state)
{
	/* The inbound limit above the table: the table fills first. */
	static const char *const extra[] = { "--max-flows", "1", "--max-inbound-flows", "2", NULL };

	*state = trust_start(extra);
	return 0;
}

/* No listener of the pod's accepted anything, and the UDP service got nothing. */
static void assert_pod_untouched(struct trust *t)
{
	const int listeners[] = { t->admin, t->outbound, t->local_svc, t->any_svc };
	uint8_t buf[64];

	inproc_pump(50);
	for (size_t i = 0; i < G_N_ELEMENTS(listeners); i++) {
		int c = accept(listeners[i], NULL, NULL);

		if (c >= 0)
			fail_msg("listener %zu accepted a connection from the guest", i);
	}
	assert_int_equal(recv(t->udp_svc, buf, sizeof(buf), MSG_DONTWAIT), -1);
}

static int teardown(void **state)
{
	struct trust *t = *state;

	assert_pod_untouched(t);
	inproc_stop(t->f);
	close(t->admin);
	close(t->outbound);
	close(t->local_svc);
	close(t->any_svc);
	close(t->udp_svc);
	close(t->dns_upstream);
	g_free(t);
	return 0;
}

static const struct bridge_stats *stats(struct trust *t)
{
	return bridge_stats(t->f->d.br);
}

/* Flows in the table, any state. */
static size_t flowtab_size_of(struct trust *t)
{
	size_t n = 0;

	for (int st = FLOW_FREE + 1; st < FLOW_STATE_COUNT; st++)
		n += bridge_flow_count(t->f->d.br, st);
	return n;
}

/* A guest SYN to @dst:@port gets an immediate RST|ACK as from @dst, acknowledging the SYN. */
static void expect_tcp_refused(struct trust *t, const char *dst, uint16_t port, uint16_t sport)
{
	uint8_t fr[256], rx[2048];
	struct pkt_ipv4_view v;
	gint64 start = g_get_monotonic_time();

	inproc_send(t->f, fr, pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip(dst),
				      sport, port, 5000, 0, TH_SYN, NULL, 0));
	inproc_expect_segment(t->f, rx, sizeof(rx), dst, port, sport, TH_RST | TH_ACK, &v);
	assert_int_equal(inproc_be32(v.l4 + 8), 5001);
	assert_true(g_get_monotonic_time() - start < G_USEC_PER_SEC);
}

/* Every spelling of "this host" over TCP: refused, each under its reason. */
static void test_tcp_spellings(void **state)
{
	static const struct {
		const char *addr;
		uint16_t port;
		enum egress_verdict why;
	} cases[] = {
		{ "127.0.0.1", ADMIN_PORT, EGRESS_LOOPBACK },
		{ "127.0.0.1", OUTBOUND_PORT, EGRESS_LOOPBACK },
		{ "127.0.0.1", LOCAL_SVC_PORT, EGRESS_LOOPBACK },
		{ "127.0.0.6", LOCAL_SVC_PORT, EGRESS_LOOPBACK },
		{ "127.200.1.1", ADMIN_PORT, EGRESS_LOOPBACK },
		{ "0.0.0.0", ANY_SVC_PORT, EGRESS_UNSPECIFIED },
		{ "0.0.0.0", LOCAL_SVC_PORT, EGRESS_UNSPECIFIED },
		{ "255.255.255.255", LOCAL_SVC_PORT, EGRESS_BROADCAST },
		{ TESTNS_POD_ADDRESS, ANY_SVC_PORT, EGRESS_POD_ADDRESS },
		{ TESTNS_POD_ADDRESS, OUTBOUND_PORT, EGRESS_POD_ADDRESS },
		{ "10.0.2.2", ADMIN_PORT, EGRESS_HOST_LOOPBACK },
		{ "10.0.2.2", LOCAL_SVC_PORT, EGRESS_HOST_LOOPBACK },
		{ "10.0.2.7", LOCAL_SVC_PORT, EGRESS_GUEST_NETWORK },
		{ "10.0.2.255", LOCAL_SVC_PORT, EGRESS_GUEST_NETWORK },
		{ "10.0.2.3", LOCAL_SVC_PORT, EGRESS_DNS_PORT },
		{ "224.0.0.1", LOCAL_SVC_PORT, EGRESS_MULTICAST },
		{ "240.0.0.1", LOCAL_SVC_PORT, EGRESS_RESERVED },
		/* Istio ambient's probe address, denied by default: its capture leaves it alone. */
		{ "169.254.7.127", 8080, EGRESS_DENIED },
		{ "169.254.7.127", 15008, EGRESS_DENIED },
	};
	struct trust *t = *state;
	uint64_t want[EGRESS_VERDICT_COUNT] = { 0 };

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		expect_tcp_refused(t, cases[i].addr, cases[i].port, (uint16_t)(30000 + i));
		want[cases[i].why]++;
	}
	for (int v = EGRESS_ALLOW + 1; v < EGRESS_VERDICT_COUNT; v++)
		assert_int_equal(stats(t)->egress_refused[v], want[v]);
	assert_int_equal(stats(t)->flows_steered, 0);
	assert_int_equal(stats(t)->flows_direct, 0);
}

/* The mesh still works: a world destination is steered to the sidecar with a header. */
static void test_world_still_steered(void **state)
{
	struct trust *t = *state;
	uint8_t fr[256], hdr[16];
	int conn;

	inproc_send(t->f, fr, pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
				      inproc_ip("198.18.5.5"), 31000, 80, 1, 0, TH_SYN, NULL, 0));
	conn = inproc_accept(t->outbound);
	inproc_read_exact(conn, hdr, sizeof(hdr));
	assert_memory_equal(hdr, proxy_v2_signature, PROXY_V2_SIG_LEN);
	close(conn);
	assert_int_equal(stats(t)->flows_steered, 1);
}

/*
 * A guest SYN libslirp opened no socket for, sent again from the same port:
 * the socket libslirp opens then is the flow's, so the sidecar gets the
 * PROXY header first.  The first SYN carries FIN too (the bridge opens a
 * flow for it, libslirp answers with a reset and opens nothing), so the
 * flow waits in its SYN state without a socket.  Without re-arming, the
 * socket went untagged and the connection reached the sidecar with no
 * header.
 */
static void test_syn_again_after_no_socket(void **state)
{
	struct trust *t = *state;
	uint8_t fr[256], hdr[16];
	size_t len;
	int conn;

	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip("198.18.5.6"),
		      31002, 80, 1, 0, TH_SYN | 0x01, NULL, 0);
	inproc_send(t->f, fr, len);
	inproc_pump(50);
	assert_int_equal(stats(t)->flows_steered, 1);
	assert_int_equal(flowtab_size_of(t), 1);
	assert_int_equal(accept(t->outbound, NULL, NULL), -1);
	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip("198.18.5.6"),
		      31002, 80, 1, 0, TH_SYN, NULL, 0);
	inproc_send(t->f, fr, len);
	conn = inproc_accept(t->outbound);
	inproc_read_exact(conn, hdr, sizeof(hdr));
	assert_memory_equal(hdr, proxy_v2_signature, PROXY_V2_SIG_LEN);
	assert_int_equal(stats(t)->flows_steered, 1);
	close(conn);
}

/* UDP to the pod: dropped and counted, nothing arrives; DHCP still gets its offer. */
static void test_udp_spellings(void **state)
{
	static const char *const dsts[] = { "127.0.0.1", "0.0.0.0", "255.255.255.255",
					    TESTNS_POD_ADDRESS, "10.0.2.2", "224.0.0.251" };
	struct trust *t = *state;
	uint8_t fr[512], rx[2048];
	uint64_t refused = 0;

	for (size_t i = 0; i < G_N_ELEMENTS(dsts); i++) {
		inproc_send(t->f, fr, pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
					      inproc_ip(dsts[i]), 40000, UDP_SVC_PORT, "x", 1));
	}
	inproc_pump(100);
	for (int v = EGRESS_ALLOW + 1; v < EGRESS_VERDICT_COUNT; v++)
		refused += stats(t)->egress_refused[v];
	assert_int_equal(refused, G_N_ELEMENTS(dsts));
	assert_int_equal(flowtab_size_of(t), 0);

	/* DHCP to the limited broadcast, port 67: libslirp's own server answers. */
	inproc_send(t->f, fr, pkt_dhcp_discover(fr, 0x1234));
	assert_true(inproc_recv(t->f, rx, sizeof(rx), INPROC_WAIT_MS) > 0);
}

/*
 * The guest has one address: IPv4 from any other (0.0.0.0 only for its
 * DHCP client) and ARP naming another sender are dropped and counted before
 * libslirp sees them, which would otherwise answer each invented source
 * (an ARP request for it first, its answer queued meanwhile).  The guest's
 * own are answered.
 */
static void test_foreign_source(void **state)
{
	struct trust *t = *state;
	uint8_t fr[600], rx[2048];

	inproc_send(t->f, fr, pkt_icmp_echo(fr, pkt_broadcast_mac, inproc_ip("10.0.2.99"),
					    inproc_ip("10.0.2.2"), 7, 1, "x", 1));
	inproc_send(t->f, fr, pkt_udp(fr, pkt_broadcast_mac, inproc_ip("0.0.0.0"),
				      inproc_ip("10.0.2.3"), 5353, 53, "q", 1));
	inproc_send(t->f, fr, pkt_tcp(fr, pkt_broadcast_mac, inproc_ip("198.18.7.7"),
				      inproc_ip("198.18.0.9"), 41000, 443, 1000, 0, TH_SYN, NULL, 0));
	inproc_send(t->f, fr, pkt_arp_request(fr, inproc_ip("10.0.2.99"), inproc_ip("10.0.2.2")));
	assert_int_equal(inproc_recv(t->f, rx, sizeof(rx), 300), 0);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_SOURCE], 4);

	inproc_send(t->f, fr, pkt_arp_request(fr, inproc_ip(INPROC_GUEST), inproc_ip("10.0.2.2")));
	assert_true(inproc_recv(t->f, rx, sizeof(rx), INPROC_WAIT_MS) > 0);
	inproc_send(t->f, fr, pkt_icmp_echo(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
					    inproc_ip("10.0.2.2"), 7, 2, "x", 1));
	assert_true(inproc_recv(t->f, rx, sizeof(rx), INPROC_WAIT_MS) > 0);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_SOURCE], 4);
}

/*
 * A DHCP client asking for another of libslirp's addresses (a lease it
 * remembers) is offered the guest's own, the only one served: the request
 * reaches libslirp naming none.  Asking for the guest's own changes nothing.
 */
static void test_dhcp_other_address(void **state)
{
	struct trust *t = *state;
	const char *const asked[] = { "10.0.2.16", INPROC_GUEST };
	uint8_t fr[600], rx[2048];

	for (size_t i = 0; i < G_N_ELEMENTS(asked); i++) {
		size_t len = pkt_dhcp_discover(fr, 0x5555 + (uint32_t)i), n;
		/* After the message type (3 bytes) and the parameter list (5): the end option. */
		uint8_t *opt = fr + 14 + 20 + 8 + 240 + 8;
		struct in_addr want = inproc_ip(asked[i]), yiaddr;
		struct pkt_ipv4_view v;

		assert_int_equal(opt[0], 255);
		opt[0] = 50;
		opt[1] = 4;
		memcpy(opt + 2, &want, sizeof(want));
		opt[6] = 255;
		pkt_fix_csums(fr, len);
		inproc_send(t->f, fr, len);
		do {
			n = inproc_recv(t->f, rx, sizeof(rx), INPROC_WAIT_MS);
			assert_true(n > 0);
		} while (pkt_parse_ipv4(rx, n, &v) || v.proto != IPPROTO_UDP ||
			 (v.l4[0] << 8 | v.l4[1]) != 67);
		memcpy(&yiaddr, v.l4 + 8 + 16, sizeof(yiaddr));
		assert_int_equal(yiaddr.s_addr, inproc_ip(INPROC_GUEST).s_addr);
		assert_int_equal(stats(t)->dhcp_address_pinned, 1);
	}
}

/* A DHCPDISCOVER naming the guest's hardware address with its last byte @last. */
static size_t dhcp_discover_from(uint8_t *fr, uint8_t last)
{
	uint8_t chaddr[6];

	memcpy(chaddr, pkt_guest_mac, sizeof(chaddr));
	chaddr[5] = last;
	return pkt_dhcp_discover_from(fr, 0x4444, chaddr);
}

/*
 * DHCP from a second client address (slirp quirk dhcp_exhausted_leak):
 * libslirp would hand out one of its 16 leases per address and, with all
 * held, leak 64 KiB per DISCOVER.  The first address the guest names is
 * its own; another, or a request too short to name one, is dropped and
 * counted, and the guest's own address is still served.
 */
static void test_dhcp_second_client(void **state)
{
	struct trust *t = *state;
	uint8_t fr[600], rx[2048];

	inproc_send(t->f, fr, dhcp_discover_from(fr, 0x56));
	assert_true(inproc_recv(t->f, rx, sizeof(rx), INPROC_WAIT_MS) > 0);
	for (uint8_t i = 0; i < 20; i++)
		inproc_send(t->f, fr, dhcp_discover_from(fr, (uint8_t)(0x60 + i)));
	assert_int_equal(inproc_recv(t->f, rx, sizeof(rx), 200), 0);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_DHCP], 20);
	inproc_send(t->f, fr, pkt_udp(fr, pkt_broadcast_mac, inproc_ip("0.0.0.0"),
				      inproc_ip("255.255.255.255"), 68, 67, "short", 5));
	inproc_pump(50);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_DHCP], 21);
	inproc_send(t->f, fr, dhcp_discover_from(fr, 0x56));
	assert_true(inproc_recv(t->f, rx, sizeof(rx), INPROC_WAIT_MS) > 0);
}

static bool is_icmp_unreach(const uint8_t *fr, size_t len, void *arg)
{
	struct pkt_ipv4_view v;

	(void)arg;
	return !pkt_parse_ipv4(fr, len, &v) && v.proto == IPPROTO_ICMP && v.l4_len >= 8 &&
	       v.l4[0] == 3;
}

static bool is_icmp_echo_reply(const uint8_t *fr, size_t len, void *arg)
{
	struct pkt_ipv4_view v;

	(void)arg;
	return !pkt_parse_ipv4(fr, len, &v) && v.proto == IPPROTO_ICMP && v.l4_len >= 8 &&
	       v.l4[0] == 0;
}

/* ICMP echo to the pod: "communication administratively prohibited" from the gateway. */
static void test_icmp_spellings(void **state)
{
	static const char *const dsts[] = { "127.0.0.1", TESTNS_POD_ADDRESS, "0.0.0.0",
					    "10.0.2.9" };
	struct trust *t = *state;
	uint8_t fr[256], rx[2048];
	struct pkt_ipv4_view v;

	for (size_t i = 0; i < G_N_ELEMENTS(dsts); i++) {
		size_t len;

		inproc_send(t->f, fr, pkt_icmp_echo(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
						    inproc_ip(dsts[i]), 7, (uint16_t)i, "ping", 4));
		len = inproc_recv_match(t->f, rx, sizeof(rx), is_icmp_unreach, NULL);
		assert_true(len > 0);
		assert_int_equal(pkt_parse_ipv4(rx, len, &v), 0);
		assert_true(v.ip_csum_ok);
		assert_int_equal(v.src.s_addr, inproc_ip("10.0.2.2").s_addr);
		assert_int_equal(v.dst.s_addr, inproc_ip(INPROC_GUEST).s_addr);
		assert_int_equal(v.l4[1], 13);
		assert_int_equal(pkt_csum_fold(pkt_csum_add(0, v.l4, v.l4_len)), 0xffff);
		/* It quotes the refused request: its destination and its ICMP id. */
		assert_int_equal(memcmp(v.l4 + 8 + 16, &(struct in_addr){ inproc_ip(dsts[i]).s_addr }, 4), 0);
		assert_int_equal(v.l4[8 + 20], 8);
	}
	/* The gateway itself still answers pings (libslirp reflects them). */
	inproc_send(t->f, fr, pkt_icmp_echo(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
					    inproc_ip("10.0.2.2"), 8, 1, "ping", 4));
	assert_true(inproc_recv_match(t->f, rx, sizeof(rx), is_icmp_echo_reply, NULL) > 0);
}

/*
 * --deny-outbound-cidr replaces the default: its range is refused over TCP, UDP and ICMP,
 * and the probe address, no longer listed, is an ordinary destination (steered here).
 */
static void test_deny_custom(void **state)
{
	struct trust *t = *state;
	uint8_t fr[256], rx[2048], hdr[16];
	int conn;

	expect_tcp_refused(t, "198.18.9.9", 80, 32000);
	inproc_send(t->f, fr, pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
				      inproc_ip("198.18.9.1"), 40000, 53, "q", 1));
	inproc_send(t->f, fr, pkt_icmp_echo(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
					    inproc_ip("198.18.9.255"), 9, 1, "ping", 4));
	assert_true(inproc_recv_match(t->f, rx, sizeof(rx), is_icmp_unreach, NULL) > 0);
	assert_int_equal(stats(t)->egress_refused[EGRESS_DENIED], 3);
	assert_int_equal(flowtab_size_of(t), 0);

	inproc_send(t->f, fr, pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
				      inproc_ip("169.254.7.127"), 32001, 8080, 1, 0, TH_SYN, NULL, 0));
	conn = inproc_accept(t->outbound);
	inproc_read_exact(conn, hdr, sizeof(hdr));
	assert_memory_equal(hdr, proxy_v2_signature, PROXY_V2_SIG_LEN);
	close(conn);
	assert_int_equal(stats(t)->flows_steered, 1);
	assert_int_equal(stats(t)->egress_refused[EGRESS_DENIED], 3);
}

/* DNS to the DNS address keeps working, to --dns-upstream. */
static void test_dns_still_works(void **state)
{
	struct trust *t = *state;
	uint8_t fr[256], buf[64];
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	ssize_t n = -1;

	inproc_send(t->f, fr, pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
				      inproc_ip("10.0.2.3"), 5353, 53, "query", 5));
	while (n < 0 && g_get_monotonic_time() < end) {
		inproc_pump(2);
		n = recv(t->dns_upstream, buf, sizeof(buf), MSG_DONTWAIT);
	}
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "query", 5);
	assert_int_equal(stats(t)->flows_dns, 1);
}

/* --allow-host-loopback: the gateway reaches 127.0.0.1, never the sidecar's ports. */
static void test_host_loopback_opt_in(void **state)
{
	struct trust *t = *state;
	uint8_t fr[256], rx[2048];
	struct pkt_ipv4_view v;
	int conn;

	expect_tcp_refused(t, "10.0.2.2", ADMIN_PORT, 32000);
	expect_tcp_refused(t, "10.0.2.2", OUTBOUND_PORT, 32001);
	expect_tcp_refused(t, "10.0.2.2", 15090, 32002);
	assert_int_equal(stats(t)->egress_refused[EGRESS_SIDECAR_PORT], 3);
	/* Other spellings of loopback stay closed. */
	expect_tcp_refused(t, "127.0.0.1", LOCAL_SVC_PORT, 32003);
	expect_tcp_refused(t, "255.255.255.255", LOCAL_SVC_PORT, 32004);

	inproc_send(t->f, fr, pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
				      inproc_ip("10.0.2.2"), 32010, LOCAL_SVC_PORT, 1, 0, TH_SYN,
				      NULL, 0));
	conn = inproc_accept(t->local_svc);
	inproc_expect_segment(t->f, rx, sizeof(rx), "10.0.2.2", LOCAL_SVC_PORT, 32010,
			      TH_SYN | TH_ACK, &v);
	close(conn);
}

/* A client socket bound to @addr:@port (0: any), connected to the exposed @host_port. */
static int client_from(const char *addr, uint16_t port, uint16_t host_port)
{
	struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = htons(port),
				     .sin_addr = inproc_ip(addr) };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(host_port),
				  .sin_addr = inproc_ip("127.0.0.1") };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&local, sizeof(local)), 0);
	assert_true(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0 || errno == EINPROGRESS);
	inproc_pump(5);
	return fd;
}

/* Close with a reset (SO_LINGER 0). */
static void close_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Client @fd and the guest's @c trade @tag both ways. */
static void exchange(struct trust *t, int fd, struct inproc_gconn *c, const char *tag)
{
	uint8_t buf[64];
	size_t n = strlen(tag);

	assert_int_equal(write(fd, tag, n), (ssize_t)n);
	assert_int_equal(inproc_guest_recv_data(t->f, c, buf, sizeof(buf)), n);
	assert_memory_equal(buf, tag, n);
	inproc_guest_send(t->f, c, 0x18, tag, n);
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), INPROC_WAIT_MS), (ssize_t)n);
	assert_memory_equal(buf, tag, n);
}

/* The client connects and the guest accepts; returns the client's socket. */
static int connect_and_accept(struct trust *t, const char *addr, uint16_t port, uint16_t host_port,
			      struct inproc_gconn *c)
{
	int fd = client_from(addr, port, host_port);

	assert_true(inproc_guest_expect_syn(t->f, GUEST_PORT, c, INPROC_WAIT_MS));
	inproc_guest_send(t->f, c, TH_SYN | TH_ACK, NULL, 0);
	return fd;
}

/* One client resets and reconnects from the same address and port, ten times: all served. */
static void test_inbound_reconnect_same_port(void **state)
{
	struct trust *t = *state;
	uint16_t port = inproc_free_port();

	for (int i = 0; i < 10; i++) {
		struct inproc_gconn c;
		char tag[16];
		int fd = connect_and_accept(t, "127.0.0.1", port, t->host_port, &c);

		assert_int_equal(c.peer_port, port);
		snprintf(tag, sizeof(tag), "round%d", i);
		exchange(t, fd, &c, tag);
		close_reset(fd);
		inproc_pump(30);
	}
	assert_int_equal(stats(t)->inbound_flows, 10);
	assert_int_equal(stats(t)->inbound_reopened, 9);
	assert_int_equal(stats(t)->inbound_duplicates, 0);
}

/*
 * Urgent data through libslirp, both ways (slirp quirk urgent_pointer_trusted).
 * The guest sends one byte with URG and an urgent pointer of 2000: libslirp
 * would send the client 2000 bytes of its own heap, and go on sending its
 * stale buffer as its byte count wraps.  The client gets the one byte and
 * nothing else.  The client's MSG_OOB byte reaches the guest inline, in
 * order, in segments without URG.
 */
static void test_urgent_inline(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c;
	struct inproc_tcp_match m;
	uint8_t fr[128], rx[4096], got[16], buf[4096];
	size_t have = 0;
	ssize_t n;
	int one = 1, fd = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &c);
	uint8_t *tcp = fr + PKT_ETH_HLEN + 20;
	size_t len;

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one)), 0);
	exchange(t, fd, &c, "hello");

	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), c.peer, c.guest_port,
		      c.peer_port, c.our_seq, c.peer_seq, TH_PUSH | TH_ACK | TH_URG, "U", 1);
	tcp[18] = 2000 >> 8;
	tcp[19] = 2000 & 0xff;
	pkt_fix_csums(fr, len);
	inproc_send(t->f, fr, len);
	c.our_seq++;
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), INPROC_WAIT_MS), 1);
	assert_int_equal(buf[0], 'U');
	/* Nothing follows it: not the rest of the "urgent" 2000, not a stale buffer. */
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), 300), -ETIMEDOUT);
	assert_int_equal(stats(t)->urgent_from_guest, 1);

	assert_int_equal(send(fd, "ab", 2, 0), 2);
	inproc_pump(20);
	assert_int_equal(send(fd, "!", 1, MSG_OOB), 1);
	assert_int_equal(send(fd, "cd", 2, 0), 2);
	m = (struct inproc_tcp_match){ c.peer_port, c.guest_port, TH_ACK };
	for (int i = 0; i < 16 && have < 5; i++) {
		struct pkt_ipv4_view v;
		size_t rlen = inproc_recv_match(t->f, rx, sizeof(rx), inproc_is_tcp, &m), off;

		if (!rlen)
			break;
		assert_int_equal(pkt_parse_ipv4(rx, rlen, &v), 0);
		assert_true(v.ip_csum_ok && v.l4_csum_ok);
		assert_false(v.l4[13] & TH_URG);
		assert_int_equal(v.l4[18] | v.l4[19], 0);
		off = (size_t)(v.l4[12] >> 4) * 4;
		if (v.l4_len == off)
			continue;
		assert_true(have + v.l4_len - off <= sizeof(got));
		memcpy(got + have, v.l4 + off, v.l4_len - off);
		have += v.l4_len - off;
		c.peer_seq += (uint32_t)(v.l4_len - off);
		inproc_guest_send(t->f, &c, TH_ACK, NULL, 0);
	}
	assert_int_equal(have, 5);
	assert_memory_equal(got, "ab!cd", 5);
	assert_true(stats(t)->urgent_to_guest >= 1);
	n = inproc_client_read(fd, buf, sizeof(buf), 50);
	assert_int_equal(n, -ETIMEDOUT);
	close_reset(fd);
}

/* A client connects; the guest answers from sequence number 0xffffffef and ACKs: 16 bytes to 0. */
static int connect_near_wrap(struct trust *t, struct inproc_gconn *c)
{
	int fd = client_from("127.0.0.1", 0, t->host_port);

	assert_true(inproc_guest_expect_syn(t->f, GUEST_PORT, c, INPROC_WAIT_MS));
	c->our_seq = 0xffffffefu;
	inproc_guest_send(t->f, c, TH_SYN | TH_ACK, NULL, 0);
	inproc_guest_send(t->f, c, TH_ACK, NULL, 0);
	inproc_pump(20);
	return fd;
}

/*
 * The guest's sequence numbers wrap to 0 (slirp quirk reass_wraps_to_zero).
 * Its handshake done, its last 8 bytes before 0 come first, out of order,
 * then the 8 before them, then 8 after 0: libslirp would queue the first,
 * and handing both over would end its reassembly on sequence 0 and crash
 * the daemon.  The bridge keeps the segment reaching 0 from it, and the one
 * after it (nothing may be queued behind the gap); sent again back to back,
 * with libslirp's acknowledgement lagging behind, they pass in order once it
 * has caught up, and the client reads all 24 bytes.
 */
static void test_seq_wrap_to_zero(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c;
	uint8_t buf[64];
	size_t have = 0;
	int fd = connect_near_wrap(t, &c);

	c.our_seq = 0xfffffff8u;
	inproc_guest_send(t->f, &c, TH_PUSH | TH_ACK, "89abcdef", 8);
	inproc_pump(20);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_SEQ_WRAP], 1);
	c.our_seq = 0xfffffff0u;
	inproc_guest_send(t->f, &c, TH_PUSH | TH_ACK, "01234567", 8);
	c.our_seq = 0;
	inproc_guest_send(t->f, &c, TH_PUSH | TH_ACK, "GHIJKLMN", 8);
	inproc_pump(20);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_SEQ_WRAP], 2);
	for (int i = 0; i < 40 && have < 24; i++) {
		ssize_t n;

		c.our_seq = 0xfffffff8u;
		inproc_guest_send(t->f, &c, TH_PUSH | TH_ACK, "89abcdef", 8);
		inproc_guest_send(t->f, &c, TH_PUSH | TH_ACK, "GHIJKLMN", 8);
		n = inproc_client_read(fd, buf + have, sizeof(buf) - have, 50);
		if (n > 0)
			have += (size_t)n;
	}
	assert_int_equal(have, 24);
	assert_memory_equal(buf, "0123456789abcdefGHIJKLMN", 24);
	close_reset(fd);
}

/*
 * The client closes its side; libslirp leaves ESTABLISHED, and from then
 * on takes every guest segment through its reassembly, in order or not.
 * The guest's next bytes end on sequence 0: the flow is reset (counted),
 * not handed to the loop that would crash.
 */
static void test_seq_wrap_peer_closing(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c;
	int fd = connect_near_wrap(t, &c);

	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	inproc_pump(50);
	inproc_guest_send(t->f, &c, TH_PUSH | TH_ACK, "0123456789abcdef", 16);
	inproc_pump(20);
	assert_int_equal(stats(t)->seq_wrap_aborts, 1);
	close_reset(fd);
}

/*
 * Segments no conforming TCP sends, kept from libslirp: a SYN|ACK inside an
 * established connection (its MSS option would make libslirp reset both
 * socket buffers: bytes lost, a warning per ACK) and a SYN whose MSS option
 * runs past its header (libslirp would read the value from beyond it).
 * Both are counted; the connection goes on.
 */
static void test_bad_syns(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c;
	uint8_t fr[128];
	int fd = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &c);
	uint8_t *tcp = fr + PKT_ETH_HLEN + 20;
	size_t len;

	exchange(t, fd, &c, "before");
	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), c.peer, c.guest_port,
		      c.peer_port, c.our_seq - 1, c.peer_seq, TH_SYN | TH_ACK, NULL, 0);
	tcp[22] = 0;
	tcp[23] = 64;      /* MSS 64 */
	pkt_fix_csums(fr, len);
	inproc_send(t->f, fr, len);
	inproc_pump(20);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_SYN_ESTABLISHED], 1);
	/* A bare SYN too: on an inbound flow no guest_syn op forgets the flow first. */
	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), c.peer, c.guest_port,
		      c.peer_port, c.our_seq - 1, 0, TH_SYN, NULL, 0);
	inproc_send(t->f, fr, len);
	inproc_pump(20);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_SYN_ESTABLISHED], 2);
	exchange(t, fd, &c, "after");

	/* A SYN of a new connection whose MSS option (4 bytes) starts 2 bytes before its end. */
	len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), inproc_ip("198.18.0.9"),
		      41000, 443, 1000, 0, TH_SYN, NULL, 0);
	tcp[20] = 1;
	tcp[21] = 1;
	tcp[22] = 2;
	tcp[23] = 4;
	pkt_fix_csums(fr, len);
	inproc_send(t->f, fr, len);
	inproc_pump(20);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_TCP_OPTIONS], 1);
	close_reset(fd);
}

/*
 * A guest sending single bytes beyond holes (slirp quirk mbuf_mtu_sized):
 * libslirp would keep each in a buffer of its MTU (64 KiB) until its hole
 * filled, 400 of them over 26 MB of the daemon's heap.  The bridge lets
 * FLOW_REASS_MAX of them through and drops the rest, counted, so the heap
 * grows by at most that many buffers.  Once the guest fills the holes,
 * libslirp hands its bytes over in order and acknowledges them, the bound
 * is free again, and the connection goes on.
 */
static void test_out_of_order_bounded(void **state)
{
	struct trust *t = *state;
	bool measurable = test_heap_measurable();
	struct inproc_gconn c;
	uint8_t fill[2 * FLOW_REASS_MAX], buf[sizeof(fill)];
	size_t before, have = 0;
	uint32_t base;
	int fd = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &c);

	exchange(t, fd, &c, "before");
	base = c.our_seq;
	before = test_heap_in_use();
	for (uint32_t i = 0; i < 400; i++) {
		c.our_seq = base + 1 + 2 * i;
		inproc_guest_send(t->f, &c, TH_ACK, "x", 1);
		if (i % 32 == 31)
			inproc_pump(5);    /* room in the stream socket */
	}
	inproc_pump(20);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_REASS_LIMIT], 400 - FLOW_REASS_MAX);
	assert_int_equal(stats(t)->reass_high_water, FLOW_REASS_MAX);
	if (measurable)
		assert_true(test_heap_in_use() - before <
			    (FLOW_REASS_MAX + 16) * (size_t)NETSTACK_SLIRP_MTU);

	/* The holes filled by one segment over them all. */
	memset(fill, 'f', sizeof(fill));
	c.our_seq = base;
	inproc_guest_send(t->f, &c, TH_PUSH | TH_ACK, fill, sizeof(fill));
	for (int i = 0; i < 40 && have < sizeof(fill); i++) {
		ssize_t n = inproc_client_read(fd, buf + have, sizeof(buf) - have, 50);

		if (n > 0)
			have += (size_t)n;
	}
	assert_int_equal(have, sizeof(fill));
	/* The queued segments the filling one covers are dropped in its favour (tcp_reass()). */
	assert_memory_equal(buf, fill, sizeof(fill));
	exchange(t, fd, &c, "after");
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_REASS_LIMIT], 400 - FLOW_REASS_MAX);
	close_reset(fd);
}

/* @n single-byte segments on @c beyond holes: the @from-th to start at @base + 1 + 2 * @from. */
static void send_beyond_holes(struct trust *t, struct inproc_gconn *c, uint32_t base,
			      uint32_t from, uint32_t n)
{
	for (uint32_t i = from; i < from + n; i++) {
		c->our_seq = base + 1 + 2 * i;
		inproc_guest_send(t->f, c, TH_ACK, "x", 1);
		if (i % 32 == 31)
			inproc_pump(5);
	}
	inproc_pump(20);
}

/*
 * The bound over all flows (--max-reass-segments 100 here): the first flow
 * holds its 64 segments beyond holes, the second 36 of 50, the other 14
 * dropped as reass_total_limit.  The first flow reset, libslirp frees its
 * queue and the share comes back: the second holds up to its own 64.
 */
static void test_out_of_order_bounded_total(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn a, b;
	int afd = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &a);
	int bfd = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &b);
	uint32_t abase, bbase;

	exchange(t, afd, &a, "a");
	exchange(t, bfd, &b, "b");
	abase = a.our_seq;
	bbase = b.our_seq;
	send_beyond_holes(t, &a, abase, 0, FLOW_REASS_MAX);
	send_beyond_holes(t, &b, bbase, 0, 50);
	assert_int_equal(bridge_reass_held(t->f->d.br), 100);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_REASS_TOTAL], 14);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_REASS_LIMIT], 0);

	a.our_seq = abase;
	inproc_guest_send(t->f, &a, TH_RST, NULL, 0);
	for (int i = 0; i < 100 && bridge_reass_held(t->f->d.br) != 36; i++)
		inproc_pump(10);
	assert_int_equal(bridge_reass_held(t->f->d.br), 36);
	send_beyond_holes(t, &b, bbase, 50, 30);
	assert_int_equal(bridge_reass_held(t->f->d.br), FLOW_REASS_MAX);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_REASS_LIMIT], 2);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_REASS_TOTAL], 14);
	close(afd);
	close_reset(bfd);
}

/*
 * A benign burst libslirp does not acknowledge at once: 120 in-order
 * segments of 8 bytes, the guest's window a little different on each, so
 * that libslirp leaves its header prediction and leaves its ACK to its 2 ms
 * timer.  Each starts past libslirp's last ACK until libslirp sends one; at
 * FLOW_REASS_PROBE_AT the bridge draws that ACK, so none is dropped and
 * the client gets all 960 bytes (sent without a pause: the stream
 * socket's buffer holds them).
 */
static void test_in_order_burst_kept(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c;
	uint8_t fr[128], buf[960];
	size_t have = 0;
	int fd = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &c);

	exchange(t, fd, &c, "before");
	for (int i = 0; i < 120; i++) {
		size_t len = pkt_tcp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), c.peer,
				     c.guest_port, c.peer_port, c.our_seq, c.peer_seq, TH_ACK,
				     "01234567", 8);

		fr[PKT_ETH_HLEN + 20 + 14] = 0xf0;      /* window 0xf000 + i */
		fr[PKT_ETH_HLEN + 20 + 15] = (uint8_t)i;
		pkt_fix_csums(fr, len);
		inproc_send(t->f, fr, len);
		c.our_seq += 8;
	}
	for (int i = 0; i < 40 && have < sizeof(buf); i++) {
		ssize_t n = inproc_client_read(fd, buf + have, sizeof(buf) - have, 50);

		if (n > 0)
			have += (size_t)n;
	}
	assert_int_equal(have, sizeof(buf));
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_REASS_LIMIT], 0);
	assert_true(stats(t)->ack_probes >= 1);
	assert_true(stats(t)->reass_high_water <= FLOW_REASS_PROBE_AT + 1);
	exchange(t, fd, &c, "after");
	close_reset(fd);
}

/* Descriptors open in this process below 1024 (valgrind keeps its own above the limit). */
static unsigned int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned int n = 0;
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && atoi(e->d_name) < 1024 &&
		    atoi(e->d_name) != dirfd(d))
			n++;
	closedir(d);
	return n;
}

/*
 * The flow table full: a second client of an exposed port is reset and
 * counted as table_full, not passed to the guest without a flow, where none
 * of the bridge's guards on the guest's segments (sequence 0, out of order,
 * SYNs) would have state to work with; libslirp's connection for it goes at
 * once, without the guest.  The first client is still served.
 */
static void test_inbound_table_full(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c, c2;
	uint8_t buf[16];
	int fd = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &c);
	unsigned int fds;
	int fd2;

	exchange(t, fd, &c, "first");
	fds = open_fds();
	fd2 = client_from("127.0.0.1", 0, t->host_port);
	assert_int_equal(inproc_client_read(fd2, buf, sizeof(buf), INPROC_WAIT_MS), -ECONNRESET);
	assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_TABLE_FULL], 1);
	/*
	 * libslirp's SYN for it has no flow: kept from the guest, and its
	 * socket reset in libslirp, with a guest that never answers (libslirp
	 * would keep it for 75 s).
	 */
	assert_false(inproc_guest_expect_syn(t->f, GUEST_PORT, &c2, 300));
	for (int i = 0; i < 100 && open_fds() != fds + 1; i++)
		inproc_pump(10);
	assert_int_equal(open_fds(), fds + 1);
	assert_int_equal(stats(t)->orphans_reset, 1);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_TCP_NO_FLOW], 0);
	exchange(t, fd, &c, "still");
	close(fd2);
	close_reset(fd);
}

/*
 * Exposed-port clients hold at most --max-inbound-flows slots of the table
 * (2 of 4 here): a third client is reset and counted as inbound_full, and
 * the guest's own DNS query still gets a flow, as do the two clients'
 * connections their bytes.
 */
static void test_inbound_limit_leaves_guest_room(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c1, c2, c3;
	uint8_t buf[16];
	int fd1 = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &c1);
	int fd2 = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &c2);
	int fd3;

	fd3 = client_from("127.0.0.1", 0, t->host_port);
	assert_int_equal(inproc_client_read(fd3, buf, sizeof(buf), INPROC_WAIT_MS), -ECONNRESET);
	assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_INBOUND_FULL], 1);
	assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_TABLE_FULL], 0);
	assert_false(inproc_guest_expect_syn(t->f, GUEST_PORT, &c3, 300));
	test_dns_still_works(state);
	exchange(t, fd1, &c1, "one");
	exchange(t, fd2, &c2, "two");
	close(fd3);
	close_reset(fd1);
	close_reset(fd2);
}

/*
 * The client closes first (a FIN), the guest answers with its own: libslirp
 * would keep the tuple in TIME_WAIT for 10 s.  The daemon drops that socket
 * once both FINs are acknowledged, so the same client can reconnect from
 * the same port at once, and is served.
 */
static void test_inbound_reconnect_after_fin(void **state)
{
	struct trust *t = *state;
	uint16_t port = inproc_free_port();

	for (int i = 0; i < 3; i++) {
		struct inproc_gconn c;
		struct inproc_tcp_match fin;
		uint8_t rx[2048];
		int fd = connect_and_accept(t, "127.0.0.1", port, t->host_port, &c);

		exchange(t, fd, &c, "hello");
		assert_int_equal(shutdown(fd, SHUT_WR), 0);
		fin = (struct inproc_tcp_match){ c.peer_port, GUEST_PORT, 0x01 };
		assert_true(inproc_recv_match(t->f, rx, sizeof(rx), inproc_is_tcp, &fin) > 0);
		c.peer_seq += 1;                                /* the client's FIN */
		inproc_guest_send(t->f, &c, 0x11, NULL, 0);     /* ACK and our own FIN */
		c.our_seq += 1;
		assert_int_equal(inproc_client_read(fd, rx, sizeof(rx), INPROC_WAIT_MS), 0);
		inproc_pump(20);
		close(fd);
	}
	assert_int_equal(stats(t)->inbound_duplicates, 0);
	assert_true(stats(t)->time_wait_cut >= 2);
	assert_int_equal(stats(t)->inbound_reopened, 2);
}

/*
 * A second socket libslirp cannot tell from a live one is refused, and the
 * live connection keeps working, also after libslirp's lookup has moved on
 * to another connection (its cache would otherwise hand our segments to the
 * newcomer).
 */
static void check_duplicate_refused(struct trust *t, const char *addr2, uint16_t host_port2)
{
	struct inproc_gconn c1, c3, extra;
	uint16_t port = inproc_free_port();
	uint8_t buf[16];
	int c1fd, c2fd, c3fd;

	c1fd = connect_and_accept(t, "127.0.0.1", port, t->host_port, &c1);
	exchange(t, c1fd, &c1, "one");
	c2fd = client_from(addr2, port, host_port2);
	assert_int_equal(inproc_client_read(c2fd, buf, sizeof(buf), INPROC_WAIT_MS), -ECONNRESET);
	assert_false(inproc_guest_expect_syn(t->f, GUEST_PORT, &extra, 300));
	assert_int_equal(stats(t)->inbound_duplicates, 1);
	assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_DUPLICATE], 1);

	/* Another connection moves libslirp's lookup cache away from c1. */
	c3fd = connect_and_accept(t, "127.0.0.3", 0, t->host_port, &c3);
	exchange(t, c3fd, &c3, "three");
	exchange(t, c1fd, &c1, "four");
	exchange(t, c3fd, &c3, "five");
	exchange(t, c1fd, &c1, "six");
	assert_int_equal(stats(t)->duplicates_removed, 1);
	close(c1fd);
	close(c2fd);
	close(c3fd);
}

/* Two loopback clients with one source port: libslirp sees the gateway and that port twice. */
static void test_inbound_loopback_duplicate(void **state)
{
	struct trust *t = *state;

	check_duplicate_refused(t, "127.0.0.2", t->host_port);
}

/* One client, one source port, two exposed ports of one guest port. */
static void test_inbound_two_exposes_one_guest_port(void **state)
{
	struct trust *t = *state;

	check_duplicate_refused(t, "127.0.0.1", t->host_port2);
}

/* Optional mode: a header from a peer outside --inbound-proxy-trusted is refused. */
static void test_untrusted_header_refused(void **state)
{
	struct trust *t = *state;
	struct proxy_addrs a = { .src = inproc_ip("203.0.113.1"), .dst = inproc_ip("198.18.0.2"),
				 .sport = htons(1234), .dport = htons(80) };
	uint8_t hdr[PROXY_HDR_MAX], buf[16];
	struct inproc_gconn c;
	int len = proxy_encode(PROXY_V2, &a, hdr);
	int fd = client_from("127.0.0.1", 0, t->host_port);

	assert_int_equal(write(fd, hdr, (size_t)len), len);
	assert_true(inproc_client_read(fd, buf, sizeof(buf), INPROC_WAIT_MS) <= 0);
	assert_false(inproc_guest_expect_syn(t->f, GUEST_PORT, &c, 300));
	assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_UNTRUSTED], 1);
	close(fd);

	/* Without a header the same peer is simply itself (the gateway, for loopback). */
	fd = client_from("127.0.0.1", 0, t->host_port);
	assert_int_equal(write(fd, "hi", 2), 2);
	assert_true(inproc_guest_expect_syn(t->f, GUEST_PORT, &c, INPROC_WAIT_MS));
	assert_int_equal(c.peer.s_addr, inproc_ip("10.0.2.2").s_addr);
	close(fd);
}

/*
 * Optional mode: a stranger whose bytes so far are a header's signature is
 * refused then, not when the header completes or the header timeout (3 s)
 * ends its wait: the v2 one declares 8,176 bytes still to come, which it
 * could trickle in a byte at a time, each byte a fresh peek of all of them.
 */
static void test_untrusted_signature_refused_early(void **state)
{
	struct trust *t = *state;
	uint8_t v2[PROXY_V2_SIG_LEN + 4], buf[16];
	const struct {
		const void *bytes;
		size_t len;
	} starts[] = { { v2, sizeof(v2) }, { "PROXY ", 6 } };
	struct inproc_gconn c;

	memcpy(v2, proxy_v2_signature, PROXY_V2_SIG_LEN);
	memcpy(v2 + PROXY_V2_SIG_LEN, "\x21\x11\x1f\xf0", 4);
	for (size_t i = 0; i < G_N_ELEMENTS(starts); i++) {
		gint64 start = g_get_monotonic_time();
		int fd = client_from("127.0.0.1", 0, t->host_port);

		assert_int_equal(write(fd, starts[i].bytes, starts[i].len), (ssize_t)starts[i].len);
		assert_true(inproc_client_read(fd, buf, sizeof(buf), INPROC_WAIT_MS) <= 0);
		if (g_get_monotonic_time() - start >= G_USEC_PER_SEC)
			fail_msg("start %zu: refused after %" G_GINT64_FORMAT " ms", i,
				 (g_get_monotonic_time() - start) / 1000);
		assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_UNTRUSTED], i + 1);
		close(fd);
	}
	assert_false(inproc_guest_expect_syn(t->f, GUEST_PORT, &c, 200));
	assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_TIMEOUT], 0);
}

/*
 * A client from @addr on the exposed port; with @header_port, the trusted
 * sidecar's PROXY header naming 198.51.100.1:@header_port, else bytes of no
 * header.  Returns it, the guest's SYN answered.
 */
static int inbound_open(struct trust *t, const char *addr, uint16_t header_port,
			struct inproc_gconn *c)
{
	struct proxy_addrs a = { .src = inproc_ip("198.51.100.1"), .dst = inproc_ip("198.18.0.2"),
				 .sport = htons(header_port), .dport = htons(80) };
	uint8_t hdr[PROXY_HDR_MAX];
	int fd = client_from(addr, 0, t->host_port);
	int len = header_port ? proxy_encode(PROXY_V2, &a, hdr) : 2;

	if (!header_port)
		memcpy(hdr, "hi", 2);
	assert_int_equal(write(fd, hdr, (size_t)len), len);
	assert_true(inproc_guest_expect_syn(t->f, GUEST_PORT, c, INPROC_WAIT_MS));
	inproc_guest_send(t->f, c, TH_SYN | TH_ACK, NULL, 0);
	return fd;
}

/*
 * Optional mode: peers outside --inbound-proxy-trusted hold at most half of
 * --max-inbound-flows (4 here), so a remote host that keeps connections
 * open cannot lock the sidecar out; the sidecar has the rest, and the
 * limit still binds it.
 */
static void test_strangers_hold_half(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c[4], extra;
	uint8_t buf[16];
	int fd[4], late;

	fd[0] = inbound_open(t, "127.0.0.3", 0, &c[0]);
	fd[1] = inbound_open(t, "127.0.0.4", 0, &c[1]);
	late = client_from("127.0.0.3", 0, t->host_port);
	/* Refused at accept, which may come first: the write then takes the reset's error. */
	(void)!write(late, "hi", 2);
	assert_true(inproc_client_read(late, buf, sizeof(buf), INPROC_WAIT_MS) <= 0);
	assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_INBOUND_FULL], 1);
	assert_false(inproc_guest_expect_syn(t->f, GUEST_PORT, &extra, 300));
	close(late);

	fd[2] = inbound_open(t, "127.0.0.2", 1001, &c[2]);
	assert_int_equal(c[2].peer.s_addr, inproc_ip("198.51.100.1").s_addr);
	fd[3] = inbound_open(t, "127.0.0.2", 1002, &c[3]);
	late = client_from("127.0.0.2", 0, t->host_port);
	assert_int_equal(inproc_client_read(late, buf, sizeof(buf), INPROC_WAIT_MS), -ECONNRESET);
	assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_INBOUND_FULL], 2);
	close(late);
	for (int i = 0; i < 4; i++)
		exchange(t, fd[i], &c[i], "still");
	for (int i = 0; i < 4; i++)
		close_reset(fd[i]);
}

/* Required mode: an untrusted peer can never be welcome, so it is refused at once. */
static void test_untrusted_required_refused(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c;
	uint8_t buf[16];
	gint64 start = g_get_monotonic_time();
	int fd = client_from("127.0.0.1", 0, t->host_port);

	assert_true(inproc_client_read(fd, buf, sizeof(buf), INPROC_WAIT_MS) <= 0);
	assert_true(g_get_monotonic_time() - start < G_USEC_PER_SEC);
	assert_false(inproc_guest_expect_syn(t->f, GUEST_PORT, &c, 200));
	assert_int_equal(stats(t)->inbound_dropped[BRIDGE_IN_UNTRUSTED], 1);
	close(fd);
}

static bool is_rst_to_guest(const uint8_t *fr, size_t len, void *arg)
{
	struct inproc_gconn *c = arg;
	struct pkt_ipv4_view v;

	return !pkt_parse_ipv4(fr, len, &v) && v.proto == IPPROTO_TCP &&
	       (v.l4[0] << 8 | v.l4[1]) == c->peer_port && (v.l4[13] & TH_RST);
}

/*
 * The guest's next sequence number pushed past libslirp's window by a
 * segment libslirp drops (1 MiB ahead), then the flow idles out: the
 * bridge's reset to libslirp goes at what libslirp last acknowledged, which
 * it takes, so its connection ends and the client is reset.  At the guest's
 * next sequence number the reset would fall outside libslirp's window and
 * be dropped, leaving libslirp a connection without a flow.
 */
static void test_abort_reaches_stack(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c;
	uint8_t buf[16];
	uint32_t next;
	int fd = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &c);

	exchange(t, fd, &c, "idle");
	next = c.our_seq;
	c.our_seq = next + (1u << 20);
	inproc_guest_send(t->f, &c, TH_PUSH | TH_ACK, "x", 1);
	assert_int_equal(inproc_client_read(fd, buf, sizeof(buf), 8000), -ECONNRESET);
	assert_int_equal(stats(t)->idle_resets, 1);
	close(fd);
}

/*
 * TCP without SYN on no flow (a connection that ended, or one libslirp
 * would keep after its flow went): the bridge answers with the reset
 * libslirp would send, counts it, and does not hand it to libslirp.  A
 * reset on no flow is counted and not answered, and so is a segment whose
 * checksum fails (as bad_checksum).
 */
static void test_tcp_without_flow(void **state)
{
	struct trust *t = *state;
	struct inproc_gconn c = { .peer = inproc_ip("198.18.0.9"), .peer_port = 80,
				  .guest_port = 41234, .our_seq = 1000, .peer_seq = 5000 };
	uint8_t rx[2048];
	size_t len;

	inproc_guest_send(t->f, &c, TH_PUSH | TH_ACK, "x", 1);
	len = inproc_recv_match(t->f, rx, sizeof(rx), is_rst_to_guest, &c);
	assert_true(len > 0);
	assert_int_equal(inproc_be32(rx + PKT_ETH_HLEN + 20 + 4), 5000);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_TCP_NO_FLOW], 1);
	inproc_guest_send(t->f, &c, TH_RST, NULL, 0);
	assert_int_equal(inproc_recv_match(t->f, rx, sizeof(rx), is_rst_to_guest, &c), 0);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_TCP_NO_FLOW], 2);
	/* A bad checksum: dropped unanswered, as libslirp would. */
	len = pkt_tcp(rx, pkt_broadcast_mac, inproc_ip(INPROC_GUEST), c.peer, c.guest_port,
		      c.peer_port, c.our_seq, c.peer_seq, TH_ACK, "y", 1);
	rx[PKT_ETH_HLEN + 20 + 16] ^= 0x5a;
	inproc_send(t->f, rx, len);
	assert_int_equal(inproc_recv_match(t->f, rx, sizeof(rx), is_rst_to_guest, &c), 0);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_TCP_NO_FLOW], 2);
	assert_int_equal(stats(t)->guest_dropped[BRIDGE_DROP_BAD_CHECKSUM], 1);
}

/* The idle timeout's reset reaches the guest: its MACs are the flow's, never zero. */
static void test_inbound_reset_carries_macs(void **state)
{
	static const uint8_t zero[6];
	struct trust *t = *state;
	struct inproc_gconn c;
	uint8_t rx[2048];
	size_t len;
	int fd = connect_and_accept(t, "127.0.0.1", 0, t->host_port, &c);

	exchange(t, fd, &c, "idle");
	assert_int_equal(memcmp(c.dst_mac, zero, 6) != 0, 1);
	len = inproc_recv_match(t->f, rx, sizeof(rx), is_rst_to_guest, &c);
	assert_true(len > 0);
	assert_memory_equal(rx, c.dst_mac, 6);          /* to the guest's MAC */
	assert_memory_equal(rx + 6, c.src_mac, 6);      /* from the gateway's */
	assert_int_equal(inproc_be32(rx + PKT_ETH_HLEN + 20 + 4), c.peer_seq);
	assert_int_equal(stats(t)->idle_resets, 1);
	close(fd);
}

/*
 * A UDP answer of @size bytes to the guest's query, through --dns-upstream, at
 * the guest's MTU of 1500: it must arrive in fragments that all carry the
 * guest's view (from 10.0.2.3:53) and reassemble to the answer.  Up to
 * libslirp's own MTU (65520) the netstack cuts it after the bridge rewrote
 * the whole datagram; above, libslirp fragments it first and the bridge
 * gives its later fragments the first one's rewrite.
 */
static void check_fragmented_answer(struct trust *t, size_t size)
{
	uint8_t fr[256], rx[2048];
	g_autofree uint8_t *answer = g_malloc(size), *whole = g_malloc(8 + size);
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	gint64 end = g_get_monotonic_time() + INPROC_WAIT_MS * 1000;
	size_t got = 0, frags = 0;
	uint16_t id = 0;
	ssize_t n = -1;

	for (size_t i = 0; i < size; i++)
		answer[i] = (uint8_t)(i * 7 + 3);
	inproc_send(t->f, fr, pkt_udp(fr, pkt_broadcast_mac, inproc_ip(INPROC_GUEST),
				      inproc_ip("10.0.2.3"), 5353, 53, "big?", 4));
	while (n < 0 && g_get_monotonic_time() < end) {
		inproc_pump(2);
		n = recvfrom(t->dns_upstream, fr, sizeof(fr), MSG_DONTWAIT, (struct sockaddr *)&from,
			     &flen);
	}
	assert_int_equal(n, 4);
	assert_int_equal(sendto(t->dns_upstream, answer, size, 0, (struct sockaddr *)&from, flen),
			 (ssize_t)size);

	/* Fragments may arrive in any order: count bytes until the datagram is whole. */
	while (got < 8 + size && g_get_monotonic_time() < end) {
		size_t len = inproc_recv(t->f, rx, sizeof(rx), 50);
		struct pkt_ipv4_view v;
		const uint8_t *ip = rx + PKT_ETH_HLEN;
		size_t off, ihl, plen;

		if (!len || pkt_parse_ipv4(rx, len, &v) || v.proto != IPPROTO_UDP)
			continue;
		assert_true(len <= PKT_ETH_HLEN + 1500);
		ihl = (size_t)(ip[0] & 0x0f) * 4;
		off = (size_t)((ip[6] & 0x1f) << 8 | ip[7]) * 8;
		plen = (size_t)(ip[2] << 8 | ip[3]) - ihl;
		if (!frags)
			id = (uint16_t)(ip[4] << 8 | ip[5]);
		assert_int_equal((ip[4] << 8 | ip[5]), id);
		assert_int_equal(v.src.s_addr, inproc_ip("10.0.2.3").s_addr);
		assert_int_equal(v.dst.s_addr, inproc_ip(INPROC_GUEST).s_addr);
		assert_true(v.ip_csum_ok);
		assert_true(off + plen <= 8 + size);
		memcpy(whole + off, ip + ihl, plen);
		got += plen;
		frags++;
	}
	assert_int_equal(got, 8 + size);
	assert_true(frags >= 3);
	/* The reassembled datagram: from port 53, answer intact, UDP checksum right. */
	assert_int_equal(whole[0] << 8 | whole[1], 53);
	assert_int_equal(whole[2] << 8 | whole[3], 5353);
	assert_memory_equal(whole + 8, answer, size);
	{
		uint8_t pseudo[12];
		uint32_t sum;

		memcpy(pseudo, &(struct in_addr){ inproc_ip("10.0.2.3").s_addr }, 4);
		memcpy(pseudo + 4, &(struct in_addr){ inproc_ip(INPROC_GUEST).s_addr }, 4);
		pseudo[8] = 0;
		pseudo[9] = IPPROTO_UDP;
		pseudo[10] = (uint8_t)((8 + size) >> 8);
		pseudo[11] = (uint8_t)(8 + size);
		sum = pkt_csum_add(pkt_csum_add(0, pseudo, 12), whole, 8 + size);
		assert_int_equal(pkt_csum_fold(sum), 0xffff);
	}
	assert_true(netstack_stats(t->f->d.ns)->tx_fragmented >= 1);
}

/* 4 KiB (a large DNS answer): cut by the netstack for the guest's MTU. */
static void test_fragmented_dns_answer(void **state)
{
	struct trust *t = *state;

	check_fragmented_answer(t, 4000);
	assert_int_equal(netstack_stats(t->f->d.ns)->tx_fragmented, 1);
	assert_int_equal(stats(t)->fragments_rewritten, 0);
}

/* The largest datagram: libslirp fragments it itself; the bridge rewrites every fragment. */
static void test_fragmented_giant_answer(void **state)
{
	struct trust *t = *state;

	check_fragmented_answer(t, 65500);
	assert_true(stats(t)->fragments_rewritten >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tcp_spellings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_world_still_steered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_again_after_no_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deny_custom, setup_deny_custom, teardown),
		cmocka_unit_test_setup_teardown(test_udp_spellings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_source, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dhcp_second_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dhcp_other_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_spellings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_still_works, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_loopback_opt_in, setup_host_loopback,
						teardown),
		cmocka_unit_test_setup_teardown(test_inbound_reconnect_same_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbound_reconnect_after_fin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_urgent_inline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq_wrap_to_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq_wrap_peer_closing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_syns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_bounded_total, setup_reass_100,
						teardown),
		cmocka_unit_test_setup_teardown(test_in_order_burst_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbound_table_full, setup_one_flow, teardown),
		cmocka_unit_test_setup_teardown(test_inbound_limit_leaves_guest_room,
						setup_inbound_limit, teardown),
		cmocka_unit_test_setup_teardown(test_inbound_loopback_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbound_two_exposes_one_guest_port, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_header_refused,
						setup_untrusted_optional, teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_signature_refused_early,
						setup_untrusted_optional, teardown),
		cmocka_unit_test_setup_teardown(test_strangers_hold_half, setup_stranger_share,
						teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_required_refused,
						setup_untrusted_required, teardown),
		cmocka_unit_test_setup_teardown(test_abort_reaches_stack, setup_idle, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_without_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbound_reset_carries_macs, setup_idle,
						teardown),
		cmocka_unit_test_setup_teardown(test_fragmented_dns_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fragmented_giant_answer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
