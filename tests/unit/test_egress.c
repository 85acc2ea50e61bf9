/* test_egress.c - unit tests of the egress rule: one test per address class and port class. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <glib.h>

#include "common/addrset.h"
#include "proxy-bridge/egress.h"

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

struct fixture {
	struct egress_rule r;
	struct addrset pod;
};

/* A mesh pod as the daemon builds it: slirp's network, a loopback sidecar, a DNS upstream. */
static int setup(void **state)
{
	struct fixture *f = g_new0(struct fixture, 1);

	addrset_add(&f->pod, ip4("198.18.0.2"));
	addrset_add(&f->pod, ip4("198.18.0.255"));
	addrset_add(&f->pod, ip4("127.0.0.1"));
	f->r = (struct egress_rule){
		.network = ip4("10.0.2.0"), .netmask = ip4("255.255.255.0"),
		.gateway = ip4("10.0.2.2"), .dns = ip4("10.0.2.3"),
		.proxy_port = 15001, .dns_up_port = 15053, .pod = &f->pod,
	};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	g_free(*state);
	return 0;
}

#define CHECK(f, proto, addr, port) egress_check(&(f)->r, (proto), ip4(addr), (port))
#define TCP IPPROTO_TCP
#define UDP IPPROTO_UDP
#define ICMP IPPROTO_ICMP

/* Every transport and port, for an address class refused whatever the port. */
static void assert_refused_everywhere(struct fixture *f, const char *addr, enum egress_verdict want)
{
	static const uint16_t ports[] = { 1, 22, 53, 67, 80, 443, 7777, 15000, 15001, 15090, 65535 };

	for (size_t i = 0; i < G_N_ELEMENTS(ports); i++) {
		if (CHECK(f, TCP, addr, ports[i]) != want || CHECK(f, UDP, addr, ports[i]) != want)
			fail_msg("%s:%u should be %s", addr, ports[i], egress_verdict_str(want));
	}
	assert_int_equal(CHECK(f, ICMP, addr, 0), want);
}

static void test_loopback(void **state)
{
	struct fixture *f = *state;

	assert_refused_everywhere(f, "127.0.0.1", EGRESS_LOOPBACK);
	assert_refused_everywhere(f, "127.0.0.6", EGRESS_LOOPBACK);     /* Envoy's inbound source */
	assert_refused_everywhere(f, "127.1.2.3", EGRESS_LOOPBACK);
	assert_refused_everywhere(f, "127.255.255.255", EGRESS_LOOPBACK);
	assert_int_equal(CHECK(f, TCP, "126.255.255.255", 80), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "128.0.0.0", 80), EGRESS_ALLOW);
}

static void test_unspecified(void **state)
{
	struct fixture *f = *state;

	assert_refused_everywhere(f, "0.0.0.0", EGRESS_UNSPECIFIED);
	assert_refused_everywhere(f, "0.1.2.3", EGRESS_UNSPECIFIED);
	assert_refused_everywhere(f, "0.255.255.255", EGRESS_UNSPECIFIED);
	assert_int_equal(CHECK(f, TCP, "1.0.0.0", 80), EGRESS_ALLOW);
}

/* The limited broadcast: libslirp maps it to loopback; only DHCP may use it. */
static void test_limited_broadcast(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(CHECK(f, UDP, "255.255.255.255", 67), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "255.255.255.255", 67), EGRESS_BROADCAST);
	assert_int_equal(CHECK(f, UDP, "255.255.255.255", 68), EGRESS_BROADCAST);
	assert_int_equal(CHECK(f, TCP, "255.255.255.255", 15000), EGRESS_BROADCAST);
	assert_int_equal(CHECK(f, UDP, "255.255.255.255", 7777), EGRESS_BROADCAST);
	assert_int_equal(CHECK(f, ICMP, "255.255.255.255", 0), EGRESS_BROADCAST);
}

static void test_multicast_and_reserved(void **state)
{
	struct fixture *f = *state;

	assert_refused_everywhere(f, "224.0.0.1", EGRESS_MULTICAST);
	assert_refused_everywhere(f, "224.0.0.251", EGRESS_MULTICAST);   /* mDNS */
	assert_refused_everywhere(f, "239.255.255.250", EGRESS_MULTICAST); /* SSDP */
	assert_refused_everywhere(f, "240.0.0.1", EGRESS_RESERVED);
	assert_refused_everywhere(f, "255.255.255.254", EGRESS_RESERVED);
	assert_int_equal(CHECK(f, TCP, "223.255.255.255", 80), EGRESS_ALLOW);
}

/* The pod's own addresses, kept current: refused as soon as they are in the set. */
static void test_pod_addresses(void **state)
{
	struct fixture *f = *state;

	assert_refused_everywhere(f, "198.18.0.2", EGRESS_POD_ADDRESS);
	assert_refused_everywhere(f, "198.18.0.255", EGRESS_POD_ADDRESS); /* its broadcast */
	assert_int_equal(CHECK(f, TCP, "198.18.0.1", 80), EGRESS_ALLOW);  /* a neighbour */
	assert_int_equal(CHECK(f, TCP, "198.18.0.3", 15001), EGRESS_ALLOW);
	/* An address added to the pod later. */
	assert_int_equal(CHECK(f, TCP, "203.0.113.9", 80), EGRESS_ALLOW);
	assert_int_equal(addrset_add(&f->pod, ip4("203.0.113.9")), 0);
	assert_refused_everywhere(f, "203.0.113.9", EGRESS_POD_ADDRESS);
	assert_int_equal(addrset_remove(&f->pod, ip4("203.0.113.9")), 0);
	assert_int_equal(CHECK(f, TCP, "203.0.113.9", 80), EGRESS_ALLOW);
	/* Without a set (no pod addresses known) nothing is a pod address. */
	f->r.pod = NULL;
	assert_int_equal(CHECK(f, TCP, "198.18.0.2", 80), EGRESS_ALLOW);
}

/* The gateway without --allow-host-loopback: only what libslirp answers itself. */
static void test_gateway_default(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(CHECK(f, UDP, "10.0.2.2", 67), EGRESS_ALLOW);   /* DHCP */
	assert_int_equal(CHECK(f, ICMP, "10.0.2.2", 0), EGRESS_ALLOW);   /* echo reflected */
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 22), EGRESS_HOST_LOOPBACK);
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 67), EGRESS_HOST_LOOPBACK);
	assert_int_equal(CHECK(f, UDP, "10.0.2.2", 53), EGRESS_HOST_LOOPBACK);
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 15000), EGRESS_HOST_LOOPBACK);
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 15001), EGRESS_HOST_LOOPBACK);
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 7777), EGRESS_HOST_LOOPBACK);
}

/* --allow-host-loopback: the gateway reaches 127.0.0.1, never the sidecar's ports. */
static void test_gateway_allowed(void **state)
{
	struct fixture *f = *state;
	static const uint16_t sidecar[] = { 15000, 15001, 15006, 15053, 15089, 15090 };

	f->r.allow_host_loopback = true;
	for (size_t i = 0; i < G_N_ELEMENTS(sidecar); i++) {
		assert_int_equal(CHECK(f, TCP, "10.0.2.2", sidecar[i]), EGRESS_SIDECAR_PORT);
		assert_int_equal(CHECK(f, UDP, "10.0.2.2", sidecar[i]), EGRESS_SIDECAR_PORT);
	}
	/* Just outside Envoy's range, and other gateway ports. */
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 14999), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 15091), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, UDP, "10.0.2.2", 15091), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 22), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, UDP, "10.0.2.2", 53), EGRESS_ALLOW);
	/* Configured ports outside Envoy's range are the sidecar's too ... */
	f->r.proxy_port = 8080;
	f->r.dns_up_port = 5353;
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 8080), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, UDP, "10.0.2.2", 8080), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 5353), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, UDP, "10.0.2.2", 5353), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 8081), EGRESS_ALLOW);
	/* ... but only while configured; Envoy's range always. */
	f->r.proxy_port = 0;
	f->r.dns_up_port = 0;
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 8080), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, UDP, "10.0.2.2", 5353), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "10.0.2.2", 15001), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, UDP, "10.0.2.2", 15000), EGRESS_SIDECAR_PORT);
	/* The loopback spelled otherwise stays refused. */
	assert_int_equal(CHECK(f, TCP, "127.0.0.1", 22), EGRESS_LOOPBACK);
	assert_int_equal(CHECK(f, TCP, "255.255.255.255", 22), EGRESS_BROADCAST);
}

/* The DNS address: port 53 (libslirp's forwarder or --dns-upstream) and echo, nothing else. */
static void test_dns_address(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(CHECK(f, UDP, "10.0.2.3", 53), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "10.0.2.3", 53), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, ICMP, "10.0.2.3", 0), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, UDP, "10.0.2.3", 54), EGRESS_DNS_PORT);
	assert_int_equal(CHECK(f, TCP, "10.0.2.3", 80), EGRESS_DNS_PORT);
	assert_int_equal(CHECK(f, TCP, "10.0.2.3", 15001), EGRESS_DNS_PORT);
	/* Host loopback allowed changes nothing here. */
	f->r.allow_host_loopback = true;
	assert_int_equal(CHECK(f, TCP, "10.0.2.3", 80), EGRESS_DNS_PORT);
}

/* The rest of the virtual guest network is no host at all. */
static void test_guest_network(void **state)
{
	struct fixture *f = *state;

	assert_refused_everywhere(f, "10.0.2.0", EGRESS_GUEST_NETWORK);
	assert_refused_everywhere(f, "10.0.2.1", EGRESS_GUEST_NETWORK);
	assert_refused_everywhere(f, "10.0.2.15", EGRESS_GUEST_NETWORK); /* the guest itself */
	assert_refused_everywhere(f, "10.0.2.100", EGRESS_GUEST_NETWORK);
	assert_refused_everywhere(f, "10.0.2.255", EGRESS_GUEST_NETWORK); /* its broadcast */
	assert_int_equal(CHECK(f, TCP, "10.0.1.255", 80), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "10.0.3.0", 80), EGRESS_ALLOW);
	/* Another guest network moves the boundary. */
	f->r.network = ip4("192.168.76.0");
	f->r.netmask = ip4("255.255.252.0");
	f->r.gateway = ip4("192.168.76.2");
	f->r.dns = ip4("192.168.76.3");
	assert_int_equal(CHECK(f, TCP, "192.168.79.200", 80), EGRESS_GUEST_NETWORK);
	assert_int_equal(CHECK(f, TCP, "192.168.80.1", 80), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "10.0.2.15", 80), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "192.168.76.2", 80), EGRESS_HOST_LOOPBACK);
}

/* A sidecar on a non-loopback address: its ports there are refused, TCP and UDP. */
static void test_nonloopback_sidecar(void **state)
{
	struct fixture *f = *state;

	f->r.proxy_addr = ip4("198.18.5.5");
	assert_int_equal(CHECK(f, TCP, "198.18.5.5", 15001), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, TCP, "198.18.5.5", 15000), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, TCP, "198.18.5.5", 15090), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, UDP, "198.18.5.5", 15053), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, TCP, "198.18.5.5", 15091), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "198.18.5.5", 80), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, ICMP, "198.18.5.5", 0), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "198.18.5.6", 15001), EGRESS_ALLOW);
	f->r.proxy_port = 8080;
	assert_int_equal(CHECK(f, TCP, "198.18.5.5", 8080), EGRESS_SIDECAR_PORT);
	assert_int_equal(CHECK(f, TCP, "198.18.5.5", 8081), EGRESS_ALLOW);
	/* Envoy's ports out in the mesh are any service's. */
	assert_int_equal(CHECK(f, TCP, "10.96.0.1", 15001), EGRESS_ALLOW);
}

/* Ordinary destinations, every transport. */
static void test_world(void **state)
{
	struct fixture *f = *state;
	static const char *const world[] = { "1.1.1.1", "8.8.8.8", "10.96.0.10", "93.184.216.34",
					     "169.254.169.254", "198.18.0.1", "223.1.1.1" };

	for (size_t i = 0; i < G_N_ELEMENTS(world); i++) {
		assert_int_equal(CHECK(f, TCP, world[i], 443), EGRESS_ALLOW);
		assert_int_equal(CHECK(f, UDP, world[i], 53), EGRESS_ALLOW);
		assert_int_equal(CHECK(f, ICMP, world[i], 0), EGRESS_ALLOW);
	}
}

/*
 * --deny-outbound-cidr: the operator's list, refused on every transport and port.  Its
 * default is Istio ambient's probe address, which the pod's capture rules let every
 * process reach uncaptured; the fixture has no list, as without --deny-outbound-cidr.
 */
static void test_denied(void **state)
{
	struct fixture *f = *state;
	struct policy_cidr deny[2];

	assert_int_equal(CHECK(f, TCP, "169.254.7.127", 8080), EGRESS_ALLOW);
	assert_int_equal(policy_cidr_parse(EGRESS_AMBIENT_PROBE_CIDR, &deny[0]), 0);
	assert_int_equal(policy_cidr_parse("203.0.113.0/24", &deny[1]), 0);
	f->r.deny = deny;
	f->r.n_deny = 1;
	assert_refused_everywhere(f, "169.254.7.127", EGRESS_DENIED);
	assert_int_equal(CHECK(f, TCP, "169.254.7.126", 8080), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "169.254.7.128", 8080), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "169.254.169.254", 80), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, TCP, "203.0.113.9", 80), EGRESS_ALLOW);
	f->r.n_deny = 2;
	assert_refused_everywhere(f, "203.0.113.0", EGRESS_DENIED);
	assert_refused_everywhere(f, "203.0.113.255", EGRESS_DENIED);
	assert_int_equal(CHECK(f, TCP, "203.0.114.0", 80), EGRESS_ALLOW);
	/* Denying everything leaves what libslirp answers itself: DHCP, DNS, the gateway's echo. */
	assert_int_equal(policy_cidr_parse("0.0.0.0/0", &deny[1]), 0);
	assert_int_equal(CHECK(f, TCP, "198.18.0.1", 80), EGRESS_DENIED);
	assert_int_equal(CHECK(f, ICMP, "198.18.0.1", 0), EGRESS_DENIED);
	assert_int_equal(CHECK(f, UDP, "255.255.255.255", 67), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, UDP, "10.0.2.3", 53), EGRESS_ALLOW);
	assert_int_equal(CHECK(f, ICMP, "10.0.2.2", 0), EGRESS_ALLOW);
	/* The classes before it keep their own reasons. */
	assert_int_equal(CHECK(f, TCP, "127.0.0.1", 80), EGRESS_LOOPBACK);
	assert_int_equal(CHECK(f, TCP, "198.18.0.2", 80), EGRESS_POD_ADDRESS);
}

static void test_verdict_names(void **state)
{
	(void)state;
	for (int v = 0; v < EGRESS_VERDICT_COUNT; v++) {
		const char *n = egress_verdict_str(v);

		assert_non_null(n);
		assert_true(strlen(n) > 0);
		assert_string_not_equal(n, "unknown");
	}
	assert_string_equal(egress_verdict_str(EGRESS_VERDICT_COUNT), "unknown");
	assert_string_equal(egress_verdict_str(EGRESS_SIDECAR_PORT), "sidecar_port");
	assert_string_equal(egress_verdict_str(EGRESS_DENIED), "denied");
}

/* The set itself: sorted, bounded, duplicates ignored, removal. */
static void test_addrset(void **state)
{
	struct addrset *s = g_new0(struct addrset, 1);
	uint64_t gen;

	(void)state;
	assert_false(addrset_contains(s, ip4("1.2.3.4")));
	assert_int_equal(addrset_add(s, ip4("9.9.9.9")), 0);
	assert_int_equal(addrset_add(s, ip4("1.2.3.4")), 0);
	assert_int_equal(addrset_add(s, ip4("200.1.1.1")), 0);
	gen = s->generation;
	assert_int_equal(addrset_add(s, ip4("1.2.3.4")), 0);
	assert_int_equal(s->generation, gen);
	assert_int_equal(s->len, 3);
	assert_true(addrset_contains(s, ip4("1.2.3.4")));
	assert_true(addrset_contains(s, ip4("9.9.9.9")));
	assert_true(addrset_contains(s, ip4("200.1.1.1")));
	assert_false(addrset_contains(s, ip4("9.9.9.8")));
	assert_int_equal(addrset_remove(s, ip4("9.9.9.9")), 0);
	assert_int_equal(addrset_remove(s, ip4("9.9.9.9")), -ENOENT);
	assert_false(addrset_contains(s, ip4("9.9.9.9")));
	addrset_clear(s);
	for (uint32_t i = 0; i < ADDRSET_MAX; i++)
		assert_int_equal(addrset_add(s, htonl(0x0a000000u + i * 7919u)), 0);
	assert_int_equal(addrset_add(s, ip4("203.0.113.1")), -ENOSPC);
	for (uint32_t i = 0; i < ADDRSET_MAX; i++)
		assert_true(addrset_contains(s, htonl(0x0a000000u + i * 7919u)));
	for (size_t i = 1; i < s->len; i++)
		assert_true(ntohl(s->addr[i - 1]) < ntohl(s->addr[i]));
	g_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unspecified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limited_broadcast, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multicast_and_reserved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pod_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_allowed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_network, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nonloopback_sidecar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_world, setup, teardown),
		cmocka_unit_test_setup_teardown(test_denied, setup, teardown),
		cmocka_unit_test(test_verdict_names),
		cmocka_unit_test(test_addrset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
