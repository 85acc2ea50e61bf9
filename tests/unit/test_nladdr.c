/* test_nladdr.c - unit tests of the rtnetlink address parser behind the pod address set. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cmocka.h>
#include <glib.h>

#include "common/nladdr.h"

#define SEQ 42

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

/* Messages built byte by byte from the kernel's layout, not through the parser's helpers. */
struct msgbuf {
	uint8_t b[4096];
	size_t len;
};

static struct nlmsghdr *msg_begin(struct msgbuf *m, uint16_t type, uint32_t seq)
{
	struct nlmsghdr *nh = (struct nlmsghdr *)(m->b + m->len);

	memset(nh, 0, NLMSG_HDRLEN);
	nh->nlmsg_type = type;
	nh->nlmsg_seq = seq;
	nh->nlmsg_len = NLMSG_HDRLEN;
	return nh;
}

static void msg_put(struct nlmsghdr *nh, const void *data, size_t len)
{
	memcpy((uint8_t *)nh + nh->nlmsg_len, data, len);
	nh->nlmsg_len += (uint32_t)NLMSG_ALIGN(len);
}

static void msg_attr(struct nlmsghdr *nh, uint16_t type, uint32_t v)
{
	struct rtattr rta = { .rta_len = RTA_LENGTH(4), .rta_type = type };
	uint8_t buf[RTA_SPACE(4)];

	memset(buf, 0, sizeof(buf));
	memcpy(buf, &rta, sizeof(rta));
	memcpy(buf + RTA_LENGTH(0), &v, 4);
	msg_put(nh, buf, sizeof(buf));
}

static void msg_end(struct msgbuf *m, struct nlmsghdr *nh)
{
	m->len += NLMSG_ALIGN(nh->nlmsg_len);
}

/* One address message: family, then (0 = absent) local, address, broadcast. */
static void addr_msg(struct msgbuf *m, uint16_t type, uint32_t seq, int family, uint32_t local,
		     uint32_t address, uint32_t broadcast)
{
	struct nlmsghdr *nh = msg_begin(m, type, seq);
	struct ifaddrmsg ifa = { .ifa_family = (uint8_t)family, .ifa_prefixlen = 24, .ifa_index = 2 };

	msg_put(nh, &ifa, sizeof(ifa));
	if (local)
		msg_attr(nh, IFA_LOCAL, local);
	if (address)
		msg_attr(nh, IFA_ADDRESS, address);
	if (broadcast)
		msg_attr(nh, IFA_BROADCAST, broadcast);
	msg_end(m, nh);
}

static void done_msg(struct msgbuf *m, uint32_t seq)
{
	struct nlmsghdr *nh = msg_begin(m, NLMSG_DONE, seq);
	int zero = 0;

	msg_put(nh, &zero, sizeof(zero));
	msg_end(m, nh);
}

/* A dump: local addresses and broadcasts collected, IPv6 ignored, DONE reported. */
static void test_dump(void **state)
{
	struct msgbuf *m = g_new0(struct msgbuf, 1);
	struct addrset *set = g_new0(struct addrset, 1);
	struct nladdr_result res = { 0 };

	(void)state;
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, ip4("127.0.0.1"), ip4("127.0.0.1"), 0);
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, ip4("198.18.0.2"), ip4("198.18.0.2"),
		 ip4("198.18.0.255"));
	/* Point-to-point: IFA_ADDRESS is the peer, not ours. */
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, ip4("100.64.0.1"), ip4("100.64.0.2"), 0);
	/* Only IFA_ADDRESS (some drivers): that is ours. */
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, 0, ip4("203.0.113.5"), 0);
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET6, ip4("1.1.1.1"), 0, 0);
	done_msg(m, SEQ);
	assert_int_equal(nladdr_parse(m->b, m->len, SEQ, set, &res), 0);
	assert_true(res.dump_done);
	assert_false(res.changed);
	assert_false(res.overflow);
	assert_int_equal(res.error, 0);
	assert_int_equal(set->len, 5);
	assert_true(addrset_contains(set, ip4("127.0.0.1")));
	assert_true(addrset_contains(set, ip4("198.18.0.2")));
	assert_true(addrset_contains(set, ip4("198.18.0.255")));
	assert_true(addrset_contains(set, ip4("100.64.0.1")));
	assert_false(addrset_contains(set, ip4("100.64.0.2")));
	assert_true(addrset_contains(set, ip4("203.0.113.5")));
	assert_false(addrset_contains(set, ip4("1.1.1.1")));
	g_free(m);
	g_free(set);
}

/* Notifications (sequence 0) mark a change and add nothing; another dump's replies are ignored. */
static void test_notifications(void **state)
{
	struct msgbuf *m = g_new0(struct msgbuf, 1);
	struct addrset *set = g_new0(struct addrset, 1);
	struct nladdr_result res = { 0 };

	(void)state;
	addr_msg(m, RTM_NEWADDR, 0, AF_INET, ip4("10.1.1.1"), ip4("10.1.1.1"), 0);
	addr_msg(m, RTM_NEWADDR, SEQ + 1, AF_INET, ip4("10.1.1.2"), ip4("10.1.1.2"), 0);
	done_msg(m, SEQ + 1);
	assert_int_equal(nladdr_parse(m->b, m->len, SEQ, set, &res), 0);
	assert_true(res.changed);
	assert_false(res.dump_done);
	assert_int_equal(set->len, 0);

	memset(&res, 0, sizeof(res));
	m->len = 0;
	addr_msg(m, RTM_DELADDR, 0, AF_INET, ip4("10.1.1.1"), ip4("10.1.1.1"), 0);
	assert_int_equal(nladdr_parse(m->b, m->len, 0, set, &res), 0);
	assert_true(res.changed);
	g_free(m);
	g_free(set);
}

/* An error for our dump ends it with the error; an ACK (error 0) does not. */
static void test_error(void **state)
{
	struct msgbuf *m = g_new0(struct msgbuf, 1);
	struct addrset *set = g_new0(struct addrset, 1);
	struct nladdr_result res = { 0 };
	struct nlmsgerr e = { .error = -EPERM };
	struct nlmsghdr *nh;

	(void)state;
	nh = msg_begin(m, NLMSG_ERROR, SEQ);
	msg_put(nh, &e, sizeof(e));
	msg_end(m, nh);
	assert_int_equal(nladdr_parse(m->b, m->len, SEQ, set, &res), 0);
	assert_true(res.dump_done);
	assert_int_equal(res.error, -EPERM);

	memset(&res, 0, sizeof(res));
	m->len = 0;
	e.error = 0;
	nh = msg_begin(m, NLMSG_ERROR, SEQ);
	msg_put(nh, &e, sizeof(e));
	msg_end(m, nh);
	assert_int_equal(nladdr_parse(m->b, m->len, SEQ, set, &res), 0);
	assert_false(res.dump_done);
	assert_int_equal(res.error, 0);
	g_free(m);
	g_free(set);
}

/* Lengths that lie: what came before is applied, the rest ignored, never a read past the end. */
static void test_lying_lengths(void **state)
{
	struct msgbuf *m = g_new0(struct msgbuf, 1);
	struct addrset *set = g_new0(struct addrset, 1);
	struct nladdr_result res = { 0 };
	struct nlmsghdr *nh;
	size_t good;

	(void)state;
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, ip4("10.9.9.9"), ip4("10.9.9.9"), 0);
	good = m->len;
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, ip4("10.8.8.8"), ip4("10.8.8.8"), 0);
	nh = (struct nlmsghdr *)(m->b + good);
	nh->nlmsg_len = 4096;               /* beyond the buffer */
	assert_int_equal(nladdr_parse(m->b, m->len, SEQ, set, &res), -EBADMSG);
	assert_true(addrset_contains(set, ip4("10.9.9.9")));
	assert_false(addrset_contains(set, ip4("10.8.8.8")));

	/* A header length below the header itself. */
	nh->nlmsg_len = 4;
	assert_int_equal(nladdr_parse(m->b, m->len, SEQ, set, &res), -EBADMSG);

	/* An attribute longer than its message: the message is skipped, the buffer walked on. */
	addrset_clear(set);
	m->len = 0;
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, ip4("10.7.7.7"), 0, 0);
	((struct rtattr *)(m->b + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifaddrmsg))))->rta_len = 200;
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, ip4("10.6.6.6"), 0, 0);
	assert_int_equal(nladdr_parse(m->b, m->len, SEQ, set, &res), 0);
	assert_false(addrset_contains(set, ip4("10.7.7.7")));
	assert_true(addrset_contains(set, ip4("10.6.6.6")));

	/* Every truncation of a valid dump: never more than it holds, never a crash. */
	m->len = 0;
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, ip4("10.5.5.5"), ip4("10.5.5.5"), ip4("10.5.5.255"));
	done_msg(m, SEQ);
	for (size_t n = 0; n <= m->len; n++) {
		addrset_clear(set);
		memset(&res, 0, sizeof(res));
		nladdr_parse(m->b, n, SEQ, set, &res);
		assert_true(set->len <= 2);
		if (n < m->len)
			assert_false(res.dump_done);
	}
	g_free(m);
	g_free(set);
}

/* More addresses than the set holds: the set stays full and says so. */
static void test_overflow(void **state)
{
	struct msgbuf *m = g_new0(struct msgbuf, 1);
	struct addrset *set = g_new0(struct addrset, 1);
	struct nladdr_result res = { 0 };

	(void)state;
	for (uint32_t i = 0; i < ADDRSET_MAX; i++)
		assert_int_equal(addrset_add(set, htonl(0x0b000000u + i)), 0);
	addr_msg(m, RTM_NEWADDR, SEQ, AF_INET, ip4("10.4.4.4"), 0, 0);
	assert_int_equal(nladdr_parse(m->b, m->len, SEQ, set, &res), 0);
	assert_true(res.overflow);
	assert_int_equal(set->len, ADDRSET_MAX);
	g_free(m);
	g_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dump),
		cmocka_unit_test(test_notifications),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_lying_lengths),
		cmocka_unit_test(test_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
