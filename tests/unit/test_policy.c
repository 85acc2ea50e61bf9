/* test_policy.c - unit tests of the steering policy, rule by rule in policy.h's order, and CIDR parsing (refusals: test_egress.c). */

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

#include "proxy-bridge/policy.h"

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static struct in_addr in4(const char *s)
{
	struct in_addr a = { ip4(s) };

	return a;
}

static struct policy_cidr cidr(const char *s)
{
	struct policy_cidr c;

	assert_int_equal(policy_cidr_parse(s, &c), 0);
	return c;
}

/* As daemon_setup_bridge() does from the options: slirp's default network. */
static struct policy *policy_new(void)
{
	struct policy *p = g_new0(struct policy, 1);

	p->network = in4("10.0.2.0");
	p->netmask = in4("255.255.255.0");
	p->gateway = in4("10.0.2.2");
	p->dns = in4("10.0.2.3");
	p->steer = true;
	p->proxy_addr = in4("127.0.0.1");
	p->proxy_port = 15001;
	p->dns_upstream = true;
	p->dns_up_addr = in4("127.0.0.1");
	p->dns_up_port = 15053;
	p->include = g_array_new(FALSE, FALSE, sizeof(struct policy_cidr));
	p->exclude = g_array_new(FALSE, FALSE, sizeof(struct policy_cidr));
	return p;
}

static void policy_free(struct policy *p)
{
	g_array_unref(p->include);
	g_array_unref(p->exclude);
	g_free(p);
}

/* As options.c's --exclude-outbound-port. */
static void exclude_port(struct policy *p, unsigned int port)
{
	p->exclude_ports[port / 8] |= (uint8_t)(1u << (port % 8));
}

static void add_cidr(GArray *list, const char *s)
{
	struct policy_cidr c = cidr(s);

	g_array_append_val(list, c);
}

#define TCP(p, a, port) policy_tcp((p), ip4(a), (port))
#define UDP(p, a, port) policy_udp((p), ip4(a), (port))

/* Rule 1: DNS to the guest's DNS address with --dns-upstream. */
static void test_rule1_dns(void **state)
{
	struct policy *p = policy_new();

	(void)state;
	assert_int_equal(TCP(p, "10.0.2.3", 53), POLICY_DNS);
	assert_int_equal(UDP(p, "10.0.2.3", 53), POLICY_DNS);
	assert_int_equal(UDP(p, "10.0.2.3", 54), POLICY_DIRECT);
	assert_int_equal(TCP(p, "10.0.2.3", 5353), POLICY_DIRECT);
	/* Port 53 anywhere else is not the guest's resolver. */
	assert_int_equal(UDP(p, "10.0.2.2", 53), POLICY_DIRECT);
	assert_int_equal(UDP(p, "8.8.8.8", 53), POLICY_DIRECT);
	assert_int_equal(TCP(p, "8.8.8.8", 53), POLICY_STEER);
	/* Independent of steering. */
	p->steer = false;
	assert_int_equal(UDP(p, "10.0.2.3", 53), POLICY_DNS);
	assert_int_equal(TCP(p, "10.0.2.3", 53), POLICY_DNS);
	p->steer = true;
	p->dns_upstream = false;
	assert_int_equal(TCP(p, "10.0.2.3", 53), POLICY_DIRECT);
	assert_int_equal(UDP(p, "10.0.2.3", 53), POLICY_DIRECT);
	policy_free(p);
}

/* Rule 2: local destinations are never steered, even when included. */
static void test_rule2_local(void **state)
{
	static const char *const local[] = {
		"10.0.2.0", "10.0.2.1", "10.0.2.15", "10.0.2.255",
		"127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3",
		"224.0.0.1", "224.0.0.251", "239.255.255.250",
		"240.0.0.1", "255.255.255.254", "255.255.255.255",
	};
	static const char *const remote[] = {
		"10.0.1.255", "10.0.3.0", "126.255.255.255", "128.0.0.1", "1.0.0.0",
		"223.255.255.255",
	};
	struct policy *p = policy_new();

	(void)state;
	add_cidr(p->include, "0.0.0.0/0");
	for (size_t i = 0; i < G_N_ELEMENTS(local); i++) {
		if (TCP(p, local[i], 80) != POLICY_DIRECT)
			fail_msg("%s:80 should be DIRECT", local[i]);
		assert_int_equal(UDP(p, local[i], 80), POLICY_DIRECT);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(remote); i++) {
		if (TCP(p, remote[i], 80) != POLICY_STEER)
			fail_msg("%s:80 should be STEER", remote[i]);
	}
	/* The gateway's ordinary ports (ssh) stay DIRECT. */
	assert_int_equal(TCP(p, "10.0.2.2", 22), POLICY_DIRECT);

	/* A different guest network moves the boundary. */
	p->network = in4("192.168.76.0");
	p->netmask = in4("255.255.252.0");
	assert_int_equal(TCP(p, "192.168.79.200", 80), POLICY_DIRECT);
	assert_int_equal(TCP(p, "192.168.80.1", 80), POLICY_STEER);
	assert_int_equal(TCP(p, "10.0.2.15", 80), POLICY_STEER);
	policy_free(p);
}

/* Rule 3: without --outbound-proxy everything else is DIRECT. */
static void test_rule3_no_steer(void **state)
{
	struct policy *p = policy_new();

	(void)state;
	p->steer = false;
	assert_int_equal(TCP(p, "93.184.216.34", 443), POLICY_DIRECT);
	assert_int_equal(TCP(p, "10.96.0.1", 80), POLICY_DIRECT);
	assert_int_equal(UDP(p, "93.184.216.34", 443), POLICY_DIRECT);
	p->steer = true;
	assert_int_equal(TCP(p, "93.184.216.34", 443), POLICY_STEER);
	policy_free(p);
}

/* Rule 4: excluded ports. */
static void test_rule4_exclude_ports(void **state)
{
	struct policy *p = policy_new();

	(void)state;
	exclude_port(p, 443);
	exclude_port(p, 0);
	exclude_port(p, 65535);
	assert_int_equal(TCP(p, "1.1.1.1", 443), POLICY_DIRECT);
	assert_int_equal(TCP(p, "1.1.1.1", 442), POLICY_STEER);
	assert_int_equal(TCP(p, "1.1.1.1", 444), POLICY_STEER);
	assert_int_equal(TCP(p, "1.1.1.1", 0), POLICY_DIRECT);
	assert_int_equal(TCP(p, "1.1.1.1", 1), POLICY_STEER);
	assert_int_equal(TCP(p, "1.1.1.1", 65535), POLICY_DIRECT);
	assert_int_equal(TCP(p, "1.1.1.1", 65534), POLICY_STEER);
	/* 443 = 55 * 8 + 3: the neighbours in the same byte are not excluded. */
	assert_int_equal(TCP(p, "1.1.1.1", 440), POLICY_STEER);
	assert_int_equal(TCP(p, "1.1.1.1", 447), POLICY_STEER);
	/* An exclusion beats an inclusion. */
	add_cidr(p->include, "1.0.0.0/8");
	assert_int_equal(TCP(p, "1.1.1.1", 443), POLICY_DIRECT);
	assert_int_equal(TCP(p, "1.1.1.1", 80), POLICY_STEER);
	policy_free(p);
}

/* Rule 4: excluded CIDRs. */
static void test_rule4_exclude_cidrs(void **state)
{
	struct policy *p = policy_new();

	(void)state;
	add_cidr(p->exclude, "192.168.0.0/16");
	add_cidr(p->exclude, "169.254.169.254");
	assert_int_equal(TCP(p, "192.168.1.1", 80), POLICY_DIRECT);
	assert_int_equal(TCP(p, "192.168.255.255", 80), POLICY_DIRECT);
	assert_int_equal(TCP(p, "192.169.0.1", 80), POLICY_STEER);
	assert_int_equal(TCP(p, "192.167.255.255", 80), POLICY_STEER);
	assert_int_equal(TCP(p, "169.254.169.254", 80), POLICY_DIRECT);
	assert_int_equal(TCP(p, "169.254.169.253", 80), POLICY_STEER);
	/* Exclusion inside an inclusion. */
	add_cidr(p->include, "10.96.0.0/12");
	add_cidr(p->exclude, "10.96.0.10");
	assert_int_equal(TCP(p, "10.96.0.10", 53), POLICY_DIRECT);
	assert_int_equal(TCP(p, "10.96.0.11", 53), POLICY_STEER);
	/* Everything excluded. */
	add_cidr(p->exclude, "0.0.0.0/0");
	assert_int_equal(TCP(p, "10.96.0.11", 53), POLICY_DIRECT);
	policy_free(p);
}

/* Rule 4: a non-empty include list leaves the rest DIRECT. */
static void test_rule4_include(void **state)
{
	struct policy *p = policy_new();

	(void)state;
	/* Empty: everything. */
	assert_int_equal(TCP(p, "8.8.8.8", 443), POLICY_STEER);
	add_cidr(p->include, "10.96.0.0/12");
	assert_int_equal(TCP(p, "10.96.0.1", 443), POLICY_STEER);
	assert_int_equal(TCP(p, "10.111.255.255", 443), POLICY_STEER);
	assert_int_equal(TCP(p, "10.112.0.0", 443), POLICY_DIRECT);
	assert_int_equal(TCP(p, "10.95.255.255", 443), POLICY_DIRECT);
	assert_int_equal(TCP(p, "8.8.8.8", 443), POLICY_DIRECT);
	add_cidr(p->include, "8.8.8.8");
	assert_int_equal(TCP(p, "8.8.8.8", 443), POLICY_STEER);
	assert_int_equal(TCP(p, "8.8.4.4", 443), POLICY_DIRECT);
	g_array_set_size(p->include, 0);
	add_cidr(p->include, "0.0.0.0/0");
	assert_int_equal(TCP(p, "8.8.4.4", 443), POLICY_STEER);
	assert_int_equal(TCP(p, "203.0.113.7", 1), POLICY_STEER);
	/* UDP is never steered (rule 5). */
	assert_int_equal(UDP(p, "8.8.4.4", 443), POLICY_DIRECT);
	policy_free(p);
}

/* Rule 5: TCP STEER, other UDP DIRECT. */
static void test_rule5_default(void **state)
{
	struct policy *p = policy_new();

	(void)state;
	assert_int_equal(TCP(p, "93.184.216.34", 80), POLICY_STEER);
	assert_int_equal(TCP(p, "93.184.216.34", 1), POLICY_STEER);
	assert_int_equal(TCP(p, "93.184.216.34", 65535), POLICY_STEER);
	assert_int_equal(UDP(p, "93.184.216.34", 443), POLICY_DIRECT);
	assert_int_equal(UDP(p, "93.184.216.34", 15001), POLICY_DIRECT);
	policy_free(p);
}

static void test_cidr_parse_valid(void **state)
{
	struct policy_cidr c;

	(void)state;
	assert_int_equal(policy_cidr_parse("10.0.0.0/8", &c), 0);
	assert_int_equal(c.net, htonl(0x0a000000));
	assert_int_equal(c.mask, htonl(0xff000000));
	assert_int_equal(policy_cidr_parse("1.2.3.4", &c), 0);
	assert_int_equal(c.net, htonl(0x01020304));
	assert_int_equal(c.mask, 0xffffffffu);
	assert_int_equal(policy_cidr_parse("1.2.3.4/32", &c), 0);
	assert_int_equal(c.mask, 0xffffffffu);
	assert_int_equal(policy_cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_equal(c.net, 0);
	assert_int_equal(c.mask, 0);
	assert_int_equal(policy_cidr_parse("192.168.1.128/25", &c), 0);
	assert_int_equal(c.net, htonl(0xc0a80180));
	assert_int_equal(c.mask, htonl(0xffffff80));
	assert_int_equal(policy_cidr_parse("128.0.0.0/1", &c), 0);
	assert_int_equal(c.mask, htonl(0x80000000));
}

static void test_cidr_parse_invalid(void **state)
{
	static const char *const bad[] = {
		"10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "x/8", "10.0.0.0/-1",
		"", "/8", "10.0.0/8", "256.0.0.0/8", "10.0.0.0/8/8", "10.0.0.0/8x",
		"10.0.0.0/ 8", "10.0.0.0/+8", "0.0.0.1/0", "10.0.0.0/99999999999999999999",
	};
	struct policy_cidr c;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		if (policy_cidr_parse(bad[i], &c) != -EINVAL)
			fail_msg("'%s' should be rejected", bad[i]);
	}
}

static void test_cidr_match(void **state)
{
	struct policy_cidr c = cidr("172.16.0.0/12"), all = cidr("0.0.0.0/0"), one = cidr("1.2.3.4");

	(void)state;
	assert_true(policy_cidr_match(&c, ip4("172.16.0.0")));
	assert_true(policy_cidr_match(&c, ip4("172.31.255.255")));
	assert_false(policy_cidr_match(&c, ip4("172.32.0.0")));
	assert_false(policy_cidr_match(&c, ip4("172.15.255.255")));
	assert_true(policy_cidr_match(&all, ip4("0.0.0.0")));
	assert_true(policy_cidr_match(&all, ip4("255.255.255.255")));
	assert_true(policy_cidr_match(&one, ip4("1.2.3.4")));
	assert_false(policy_cidr_match(&one, ip4("1.2.3.5")));
	assert_false(policy_cidr_match(&one, ip4("4.3.2.1")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule1_dns),
		cmocka_unit_test(test_rule2_local),
		cmocka_unit_test(test_rule3_no_steer),
		cmocka_unit_test(test_rule4_exclude_ports),
		cmocka_unit_test(test_rule4_exclude_cidrs),
		cmocka_unit_test(test_rule4_include),
		cmocka_unit_test(test_rule5_default),
		cmocka_unit_test(test_cidr_parse_valid),
		cmocka_unit_test(test_cidr_parse_invalid),
		cmocka_unit_test(test_cidr_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
