/* test_proxy_proto.c - unit tests of the PROXY v1/v2 header encoder against hand-built bytes. */

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

#include "proxy-bridge/proxy_proto.h"

#define SENTINEL 0xa5

static struct proxy_addrs make_addrs(const char *src, const char *dst, uint16_t sport,
				     uint16_t dport)
{
	struct proxy_addrs a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(inet_pton(AF_INET, src, &a.src), 1);
	assert_int_equal(inet_pton(AF_INET, dst, &a.dst), 1);
	a.sport = htons(sport);
	a.dport = htons(dport);
	return a;
}

/* Bytes past @len must not have been written (v2 writes no terminator). */
static void assert_untouched_from(const uint8_t *buf, size_t from)
{
	for (size_t i = from; i < PROXY_HDR_MAX; i++)
		assert_int_equal(buf[i], SENTINEL);
}

static void test_signature(void **state)
{
	static const uint8_t want[12] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
	};

	(void)state;
	assert_int_equal(PROXY_V2_SIG_LEN, 12);
	assert_memory_equal(proxy_v2_signature, want, sizeof(want));
}

/* 198.18.0.2:1 -> 10.96.0.10:65535, ports at the extremes. */
static void test_v2_tcp4_extreme_ports(void **state)
{
	static const uint8_t want[28] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
		0x21,                   /* version 2, PROXY */
		0x11,                   /* AF_INET, STREAM */
		0x00, 0x0c,             /* 12 bytes of addresses */
		198, 18, 0, 2,          /* source address */
		10, 96, 0, 10,          /* destination address */
		0x00, 0x01,             /* source port 1 */
		0xff, 0xff,             /* destination port 65535 */
	};
	struct proxy_addrs a = make_addrs("198.18.0.2", "10.96.0.10", 1, 65535);
	uint8_t buf[PROXY_HDR_MAX];

	(void)state;
	memset(buf, SENTINEL, sizeof(buf));
	assert_int_equal(proxy_encode(PROXY_V2, &a, buf), 28);
	assert_memory_equal(buf, want, sizeof(want));
	assert_untouched_from(buf, 28);
}

/* 192.168.1.254:40000 -> 172.16.5.4:5001: ports whose bytes differ, so a swap shows. */
static void test_v2_tcp4_ordinary(void **state)
{
	static const uint8_t want[28] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
		0x21, 0x11, 0x00, 0x0c,
		192, 168, 1, 254,
		172, 16, 5, 4,
		0x9c, 0x40,             /* 40000 */
		0x13, 0x89,             /* 5001 */
	};
	struct proxy_addrs a = make_addrs("192.168.1.254", "172.16.5.4", 40000, 5001);
	uint8_t buf[PROXY_HDR_MAX];

	(void)state;
	memset(buf, SENTINEL, sizeof(buf));
	assert_int_equal(proxy_encode(PROXY_V2, &a, buf), 28);
	assert_memory_equal(buf, want, sizeof(want));
	assert_untouched_from(buf, 28);
}

static void test_v1_exact(void **state)
{
	static const char want[] = "PROXY TCP4 198.18.0.2 198.18.0.1 40000 5001\r\n";
	struct proxy_addrs a = make_addrs("198.18.0.2", "198.18.0.1", 40000, 5001);
	uint8_t buf[PROXY_HDR_MAX];
	int n;

	(void)state;
	memset(buf, SENTINEL, sizeof(buf));
	n = proxy_encode(PROXY_V1, &a, buf);
	assert_int_equal(n, (int)strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	/* At most a terminating NUL beyond the header, nothing further. */
	assert_untouched_from(buf, (size_t)n + 1);
}

static void test_v1_longest_and_shortest(void **state)
{
	static const char longest[] =
		"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
	static const char shortest[] = "PROXY TCP4 0.0.0.0 0.0.0.0 1 1\r\n";
	struct proxy_addrs a = make_addrs("255.255.255.255", "255.255.255.255", 65535, 65535);
	struct proxy_addrs b = make_addrs("0.0.0.0", "0.0.0.0", 1, 1);
	uint8_t buf[PROXY_HDR_MAX];
	int n;

	(void)state;
	memset(buf, SENTINEL, sizeof(buf));
	n = proxy_encode(PROXY_V1, &a, buf);
	assert_int_equal(n, 56);
	assert_true(n < PROXY_HDR_MAX && n <= 107);
	assert_memory_equal(buf, longest, strlen(longest));
	assert_int_equal(buf[n - 2], '\r');
	assert_int_equal(buf[n - 1], '\n');
	assert_untouched_from(buf, (size_t)n + 1);

	memset(buf, SENTINEL, sizeof(buf));
	n = proxy_encode(PROXY_V1, &b, buf);
	assert_int_equal(n, (int)strlen(shortest));
	assert_memory_equal(buf, shortest, strlen(shortest));
}

static void test_invalid_version(void **state)
{
	struct proxy_addrs a = make_addrs("198.18.0.2", "198.18.0.1", 40000, 5001);
	uint8_t buf[PROXY_HDR_MAX];

	(void)state;
	memset(buf, SENTINEL, sizeof(buf));
	assert_int_equal(proxy_encode((enum proxy_version)0, &a, buf), -EINVAL);
	assert_int_equal(proxy_encode((enum proxy_version)3, &a, buf), -EINVAL);
	assert_int_equal(proxy_encode((enum proxy_version)-1, &a, buf), -EINVAL);
	assert_untouched_from(buf, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signature),
		cmocka_unit_test(test_v2_tcp4_extreme_ports),
		cmocka_unit_test(test_v2_tcp4_ordinary),
		cmocka_unit_test(test_v1_exact),
		cmocka_unit_test(test_v1_longest_and_shortest),
		cmocka_unit_test(test_invalid_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
