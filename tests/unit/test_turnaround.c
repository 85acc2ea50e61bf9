/* test_turnaround.c - unit tests of the VM model's turnaround tracker on hand-built segments. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <glib.h>

#include "tests/lib/pkt.h"
#include "tests/lib/turnaround.h"

#define US 1000ull

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

/* A segment of the flow 10.0.2.15:40000 <-> 198.18.0.1:5201, from the guest or to it. */
static size_t seg(uint8_t *buf, int from_guest, uint32_t seq, uint32_t ack, uint8_t flags,
		  size_t payload, uint16_t guest_port)
{
	static const uint8_t data[2000];

	if (from_guest)
		return pkt_tcp(buf, pkt_broadcast_mac, ip4("10.0.2.15"), ip4("198.18.0.1"),
			       guest_port, 5201, seq, ack, flags, data, payload);
	return pkt_tcp(buf, pkt_broadcast_mac, ip4("198.18.0.1"), ip4("10.0.2.15"), 5201,
		       guest_port, seq, ack, flags, data, payload);
}

/* Out: each data segment is answered by the first ACK that covers it; partial ACKs do not. */
static void test_out(void **state)
{
	struct turnaround t;
	uint8_t fr[2100];

	(void)state;
	turn_init(&t);
	turn_from_guest(&t, fr, seg(fr, 1, 1000, 1, 0x18, 1000, 40000), 0);
	turn_from_guest(&t, fr, seg(fr, 1, 2000, 1, 0x18, 1000, 40000), 10 * US);
	turn_to_guest(&t, fr, seg(fr, 0, 1, 1500, 0x10, 0, 40000), 20 * US);   /* covers neither */
	assert_int_equal(t.out.n, 0);
	turn_to_guest(&t, fr, seg(fr, 0, 1, 2000, 0x10, 0, 40000), 50 * US);   /* the first */
	assert_int_equal(t.out.n, 1);
	/* Another flow's ACK answers nothing of this one. */
	turn_to_guest(&t, fr, seg(fr, 0, 1, 9000, 0x10, 0, 40001), 60 * US);
	assert_int_equal(t.out.n, 1);
	turn_to_guest(&t, fr, seg(fr, 0, 1, 3000, 0x10, 0, 40000), 210 * US);  /* the second */
	assert_int_equal(t.out.n, 2);
	/* 50 us and 200 us: the median bucket holds 50, the 99th 200 (within 12.5%). */
	assert_true(turn_percentile_us(&t.out, 50) >= 45 && turn_percentile_us(&t.out, 50) <= 57);
	assert_true(turn_percentile_us(&t.out, 99) >= 180 && turn_percentile_us(&t.out, 99) <= 225);
}

/* In: an ACK that advances starts a wait, the next data ends it; a repeated ACK does not. */
static void test_in(void **state)
{
	struct turnaround t;
	uint8_t fr[2100];

	(void)state;
	turn_init(&t);
	turn_to_guest(&t, fr, seg(fr, 0, 5000, 1, 0x18, 1000, 40000), 0);
	turn_from_guest(&t, fr, seg(fr, 1, 1, 6000, 0x10, 0, 40000), 5 * US);
	turn_from_guest(&t, fr, seg(fr, 1, 1, 6000, 0x10, 0, 40000), 8 * US);  /* no advance */
	turn_to_guest(&t, fr, seg(fr, 0, 6000, 1, 0x18, 1000, 40000), 105 * US);
	assert_int_equal(t.in.n, 1);
	assert_true(turn_percentile_us(&t.in, 50) >= 90 && turn_percentile_us(&t.in, 50) <= 113);
	/* Data with no ACK waiting is no sample; not TCP is ignored. */
	turn_to_guest(&t, fr, seg(fr, 0, 7000, 1, 0x18, 1000, 40000), 200 * US);
	turn_to_guest(&t, fr, pkt_arp_request(fr, ip4("10.0.2.2"), ip4("10.0.2.15")), 300 * US);
	assert_int_equal(t.in.n, 1);
	assert_int_equal(t.out.n, 0);
}

/* More segments awaiting an ACK than tracked: the oldest are forgotten, never misattributed. */
static void test_pending_bounded(void **state)
{
	struct turnaround t;
	uint8_t fr[2100];

	(void)state;
	turn_init(&t);
	for (uint32_t i = 0; i < TURN_PENDING + 10; i++)
		turn_from_guest(&t, fr, seg(fr, 1, 1000 + 100 * i, 1, 0x18, 100, 40000), i * US);
	assert_int_equal(t.count, TURN_PENDING);
	turn_to_guest(&t, fr, seg(fr, 0, 1, 1000 + 100 * (TURN_PENDING + 10), 0x10, 0, 40000),
		      1000 * US);
	assert_int_equal(t.out.n, TURN_PENDING);
	assert_int_equal(t.count, 0);
	assert_true(turn_percentile_us(&(struct turn_hist){ 0 }, 50) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out),
		cmocka_unit_test(test_in),
		cmocka_unit_test(test_pending_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
