/* test_flowtab.c - unit tests of the flow table: both indexes, state counts, stack ports, reclaim, expiry, churn. */

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

#include "proxy-bridge/flowtab.h"

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct flowtab *table(size_t max)
{
	struct flowtab *ft = NULL;

	assert_int_equal(flowtab_new(max, &ft), 0);
	assert_non_null(ft);
	return ft;
}

static struct flow_key tcp_gkey(uint16_t gport, const char *dst, uint16_t dport)
{
	return flow_key_make(IPPROTO_TCP, ip4("10.0.2.15"), htons(gport), ip4(dst), htons(dport));
}

static void assert_counts(const struct flowtab *ft, size_t free_, size_t syn, size_t connecting,
			  size_t open, size_t closed)
{
	assert_int_equal(flowtab_count(ft, FLOW_FREE), free_);
	assert_int_equal(flowtab_count(ft, FLOW_SYN), syn);
	assert_int_equal(flowtab_count(ft, FLOW_CONNECTING), connecting);
	assert_int_equal(flowtab_count(ft, FLOW_OPEN), open);
	assert_int_equal(flowtab_count(ft, FLOW_CLOSED), closed);
	assert_int_equal(flowtab_size(ft), syn + connecting + open + closed);
}

/*
 * Held segments: per flow at most FLOW_REASS_MAX, over the table at most
 * its limit; released oldest first across the sequence wrap, and whatever
 * a flow still holds goes back to the table when it is removed or cleared,
 * so a slot reused starts from none.
 */
static void test_reass_accounting(void **state)
{
	struct flowtab *ft = table(4);
	struct flow_key k1 = tcp_gkey(1000, "198.18.0.1", 80), k2 = tcp_gkey(1001, "198.18.0.1", 80);
	struct flow *f1, *f2, *f3;
	uint32_t base = UINT32_MAX - 40; /* the ends cross sequence 0 */

	(void)state;
	assert_int_equal(flowtab_add(ft, &k1, k1.raddr, k1.rport, 0, FLOW_OPEN, &f1), 0);
	assert_int_equal(flowtab_add(ft, &k2, k2.raddr, k2.rport, 0, FLOW_OPEN, &f2), 0);
	flowtab_set_reass_limit(ft, FLOW_REASS_MAX + 6);
	for (uint32_t i = 0; i < FLOW_REASS_MAX; i++)
		assert_int_equal(flowtab_reass_hold(ft, f1, base + 2 * i), 0);
	assert_int_equal(flowtab_reass_hold(ft, f1, base + 1000), -ENOBUFS);
	for (uint32_t i = 0; i < 6; i++)
		assert_int_equal(flowtab_reass_hold(ft, f2, 7 + i), 0);
	assert_int_equal(flowtab_reass_hold(ft, f2, 100), -ENOSPC);
	assert_int_equal(flowtab_reass_total(ft), FLOW_REASS_MAX + 6);

	/* Past the wrap: the ends up to base + 60 (31 of them) go, the first still-held one stops it. */
	flowtab_reass_release(ft, f1, base + 60);
	assert_int_equal(f1->reass_count, FLOW_REASS_MAX - 31);
	assert_int_equal(flowtab_reass_total(ft), FLOW_REASS_MAX + 6 - 31);
	/* An ACK behind them all releases none. */
	flowtab_reass_release(ft, f1, base - 5);
	assert_int_equal(f1->reass_count, FLOW_REASS_MAX - 31);
	assert_int_equal(flowtab_reass_hold(ft, f2, 100), 0);

	flowtab_reass_clear(ft, f2);
	assert_int_equal(flowtab_reass_total(ft), FLOW_REASS_MAX - 31);
	flowtab_remove(ft, f1);
	assert_int_equal(flowtab_reass_total(ft), 0);
	assert_int_equal(flowtab_add(ft, &k1, k1.raddr, k1.rport, 0, FLOW_OPEN, &f3), 0);
	assert_int_equal(f3->reass_count, 0);
	flowtab_free(ft);
}

static void test_new_bounds(void **state)
{
	struct flowtab *ft = NULL;

	(void)state;
	assert_int_equal(flowtab_new(0, &ft), -EINVAL);
	assert_int_equal(flowtab_new(1048577, &ft), -EINVAL);
	assert_null(ft);
	assert_int_equal(flowtab_new(1, &ft), 0);
	assert_counts(ft, 1, 0, 0, 0, 0);
	flowtab_free(ft);
	assert_int_equal(flowtab_new(1048576, &ft), 0);
	assert_counts(ft, 1048576, 0, 0, 0, 0);
	flowtab_free(ft);
	flowtab_free(NULL);
}

static void test_key_make(void **state)
{
	struct flow_key k = flow_key_make(IPPROTO_UDP, 0x11223344, 0x5566, 0x778899aa, 0xbbcc);
	struct flow_key want;

	(void)state;
	memset(&want, 0, sizeof(want));
	want.laddr = 0x11223344;
	want.raddr = 0x778899aa;
	want.lport = 0x5566;
	want.rport = 0xbbcc;
	want.proto = IPPROTO_UDP;
	assert_memory_equal(&k, &want, sizeof(k));
	assert_int_equal(k.zero[0] | k.zero[1] | k.zero[2], 0);
}

static void test_add_lookup_states(void **state)
{
	struct flowtab *ft = table(16);
	struct flow_key g = tcp_gkey(40000, "93.184.216.34", 443);
	struct flow_key s, other = tcp_gkey(40001, "93.184.216.34", 443);
	struct flow *f = NULL;

	(void)state;
	assert_null(flowtab_lookup_guest(ft, &g));
	assert_int_equal(flowtab_add(ft, &g, ip4("127.0.0.1"), htons(15001), false, FLOW_SYN, &f), 0);
	assert_non_null(f);
	assert_memory_equal(&f->gkey, &g, sizeof(g));
	assert_int_equal(f->state, FLOW_SYN);
	assert_int_equal(f->fd, -1);
	/* The stack key: same guest address and protocol, the target, a fresh port. */
	assert_int_equal(f->skey.laddr, g.laddr);
	assert_int_equal(f->skey.raddr, ip4("127.0.0.1"));
	assert_int_equal(f->skey.rport, htons(15001));
	assert_int_equal(f->skey.proto, IPPROTO_TCP);
	assert_true(ntohs(f->skey.lport) >= 1024);
	s = flow_key_make(IPPROTO_TCP, g.laddr, f->skey.lport, ip4("127.0.0.1"), htons(15001));
	assert_memory_equal(&f->skey, &s, sizeof(s));

	assert_ptr_equal(flowtab_lookup_guest(ft, &g), f);
	assert_ptr_equal(flowtab_lookup_stack(ft, &s), f);
	/* Each key only in its own index; near misses are absent. */
	assert_null(flowtab_lookup_stack(ft, &g));
	assert_null(flowtab_lookup_guest(ft, &s));
	assert_null(flowtab_lookup_guest(ft, &other));
	other = g;
	other.proto = IPPROTO_UDP;
	assert_null(flowtab_lookup_guest(ft, &other));
	assert_counts(ft, 15, 1, 0, 0, 0);

	flowtab_set_state(ft, f, FLOW_CONNECTING);
	assert_counts(ft, 15, 0, 1, 0, 0);
	flowtab_set_state(ft, f, FLOW_OPEN);
	assert_counts(ft, 15, 0, 0, 1, 0);
	flowtab_set_state(ft, f, FLOW_CLOSED);
	assert_counts(ft, 15, 0, 0, 0, 1);
	assert_int_equal(f->state, FLOW_CLOSED);

	flowtab_remove(ft, f);
	assert_null(flowtab_lookup_guest(ft, &g));
	assert_null(flowtab_lookup_stack(ft, &s));
	assert_counts(ft, 16, 0, 0, 0, 0);
	flowtab_free(ft);
}

static void test_keep_port(void **state)
{
	struct flowtab *ft = table(16);
	struct flow_key g1 = flow_key_make(IPPROTO_UDP, ip4("10.0.2.15"), htons(5000),
					   ip4("10.0.2.3"), htons(53));
	struct flow_key g2 = flow_key_make(IPPROTO_UDP, ip4("10.0.2.15"), htons(5000),
					   ip4("8.8.8.8"), htons(53));
	struct flow_key g3 = flow_key_make(IPPROTO_UDP, ip4("10.0.2.15"), htons(5001),
					   ip4("8.8.8.8"), htons(53));
	struct flow_key s;
	struct flow *f1 = NULL, *f2 = NULL, *f3 = NULL;

	(void)state;
	assert_int_equal(flowtab_add(ft, &g1, ip4("127.0.0.1"), htons(15053), true, FLOW_OPEN, &f1),
			 0);
	assert_int_equal(f1->skey.lport, htons(5000));
	s = flow_key_make(IPPROTO_UDP, ip4("10.0.2.15"), htons(5000), ip4("127.0.0.1"), htons(15053));
	assert_memory_equal(&f1->skey, &s, sizeof(s));
	assert_ptr_equal(flowtab_lookup_stack(ft, &s), f1);

	/* Another destination from the same guest port maps to the same stack key. */
	assert_int_equal(flowtab_add(ft, &g2, ip4("127.0.0.1"), htons(15053), true, FLOW_OPEN, &f2),
			 -EADDRINUSE);
	assert_null(flowtab_lookup_guest(ft, &g2));
	assert_counts(ft, 15, 0, 0, 1, 0);
	/* Another guest port, or another target, is fine. */
	assert_int_equal(flowtab_add(ft, &g3, ip4("127.0.0.1"), htons(15053), true, FLOW_OPEN, &f3),
			 0);
	assert_int_equal(f3->skey.lport, htons(5001));
	assert_int_equal(flowtab_add(ft, &g2, ip4("127.0.0.1"), htons(15054), true, FLOW_OPEN, &f2),
			 0);
	assert_int_equal(f2->skey.lport, htons(5000));
	assert_counts(ft, 13, 0, 0, 3, 0);
	/* Once the first is gone its stack key is free again. */
	flowtab_remove(ft, f2);
	flowtab_remove(ft, f1);
	assert_int_equal(flowtab_add(ft, &g2, ip4("127.0.0.1"), htons(15053), true, FLOW_OPEN, &f2),
			 0);
	assert_ptr_equal(flowtab_lookup_stack(ft, &s), f2);
	assert_ptr_equal(flowtab_lookup_guest(ft, &g2), f2);
	assert_null(flowtab_lookup_guest(ft, &g1));
	flowtab_free(ft);
}

static void test_full(void **state)
{
	struct flowtab *ft = table(8);
	struct flow *flows[8], *f = NULL;
	struct flow_key g;

	(void)state;
	for (int i = 0; i < 8; i++) {
		g = tcp_gkey((uint16_t)(30000 + i), "1.1.1.1", 80);
		assert_int_equal(flowtab_add(ft, &g, ip4("127.0.0.1"), htons(15001), false,
					     FLOW_SYN, &flows[i]), 0);
	}
	assert_counts(ft, 0, 8, 0, 0, 0);
	g = tcp_gkey(30008, "1.1.1.1", 80);
	assert_int_equal(flowtab_add(ft, &g, ip4("127.0.0.1"), htons(15001), false, FLOW_SYN, &f),
			 -ENOSPC);
	assert_int_equal(flowtab_add(ft, &g, ip4("127.0.0.1"), htons(15001), true, FLOW_SYN, &f),
			 -ENOSPC);
	assert_null(flowtab_lookup_guest(ft, &g));
	assert_counts(ft, 0, 8, 0, 0, 0);

	/* Removing one frees its slot for the next. */
	flowtab_remove(ft, flows[3]);
	assert_counts(ft, 1, 7, 0, 0, 0);
	assert_int_equal(flowtab_add(ft, &g, ip4("127.0.0.1"), htons(15001), false, FLOW_OPEN, &f),
			 0);
	assert_ptr_equal(flowtab_lookup_guest(ft, &g), f);
	assert_counts(ft, 0, 7, 0, 1, 0);
	flowtab_free(ft);
}

static void test_remove_reuses_slot(void **state)
{
	struct flowtab *ft = table(1);
	struct flow_key g1 = tcp_gkey(1234, "1.1.1.1", 80), g2 = tcp_gkey(1235, "1.1.1.1", 80);
	struct flow *f = NULL, *f2 = NULL;
	uint32_t slot;

	(void)state;
	assert_int_equal(flowtab_add(ft, &g1, ip4("127.0.0.1"), htons(15001), false, FLOW_SYN, &f), 0);
	slot = f->slot;
	assert_int_equal(flowtab_add(ft, &g2, ip4("127.0.0.1"), htons(15001), false, FLOW_SYN, &f2),
			 -ENOSPC);
	flowtab_remove(ft, f);
	assert_counts(ft, 1, 0, 0, 0, 0);
	assert_int_equal(flowtab_add(ft, &g2, ip4("127.0.0.1"), htons(15001), false, FLOW_SYN, &f2),
			 0);
	assert_int_equal(f2->slot, slot);
	assert_null(flowtab_lookup_guest(ft, &g1));
	assert_ptr_equal(flowtab_lookup_guest(ft, &g2), f2);
	/* The recycled slot starts clean. */
	assert_int_equal(f2->fd, -1);
	assert_int_equal(f2->deadline_us, 0);
	flowtab_free(ft);
}

/* close_and_retire() - what the bridge does when libslirp lets go of a flow's socket. */
static void close_and_retire(struct flowtab *ft, struct flow *f)
{
	f->fd = -1;
	flowtab_set_state(ft, f, FLOW_CLOSED);
	flowtab_retire(ft, f);
}

/*
 * A full table gives a new flow the slot of the oldest retired flow, in the
 * order they were retired (not by slot or key); closed flows not retired
 * (libslirp still holds their socket) and live flows are never taken.
 */
static void test_reclaim_retired(void **state)
{
	struct flowtab *ft = table(6);
	struct flow *flows[6], *f = NULL;
	struct flow_key g[6], n;
	const int order[] = { 4, 1, 5 };

	(void)state;
	for (int i = 0; i < 6; i++) {
		g[i] = tcp_gkey((uint16_t)(30000 + i), "1.1.1.1", 80);
		assert_int_equal(flowtab_add(ft, &g[i], ip4("127.0.0.1"), htons(15001), false,
					     FLOW_OPEN, &flows[i]), 0);
		flows[i]->fd = 100 + i;
	}
	/* Slot 2: closed, but its socket still libslirp's: not reclaimable. */
	flowtab_set_state(ft, flows[2], FLOW_CLOSED);
	for (size_t i = 0; i < G_N_ELEMENTS(order); i++)
		close_and_retire(ft, flows[order[i]]);
	flowtab_retire(ft, flows[4]);   /* idempotent: stays first */
	/* One retired flow removed early (a SYN reopened its tuple): out of the FIFO too. */
	flowtab_remove(ft, flows[1]);
	n = tcp_gkey(31000, "1.1.1.1", 80);
	assert_int_equal(flowtab_add(ft, &n, ip4("127.0.0.1"), htons(15001), false, FLOW_SYN, &f), 0);
	assert_int_equal(flowtab_reclaimed(ft), 0);

	/* Full: the next two take 4 then 5, in retirement order. */
	for (int i = 0; i < 2; i++) {
		uint32_t want = flows[i ? 5 : 4]->slot;

		n = tcp_gkey((uint16_t)(31001 + i), "1.1.1.1", 80);
		assert_int_equal(flowtab_add(ft, &n, ip4("127.0.0.1"), htons(15001), false,
					     FLOW_SYN, &f), 0);
		assert_int_equal(f->slot, want);
		assert_false(f->retired);
		assert_null(flowtab_lookup_guest(ft, &g[i ? 5 : 4]));
		assert_ptr_equal(flowtab_lookup_guest(ft, &n), f);
		assert_int_equal(flowtab_reclaimed(ft), (uint64_t)i + 1);
	}
	/* Nothing retired left: a full table refuses, the rest untouched. */
	n = tcp_gkey(31003, "1.1.1.1", 80);
	assert_int_equal(flowtab_add(ft, &n, ip4("127.0.0.1"), htons(15001), false, FLOW_SYN, &f),
			 -ENOSPC);
	assert_counts(ft, 0, 3, 0, 2, 1);
	assert_ptr_equal(flowtab_lookup_guest(ft, &g[2]), flows[2]);

	/* Retired later, reclaimed next. */
	close_and_retire(ft, flows[0]);
	assert_int_equal(flowtab_add(ft, &n, ip4("127.0.0.1"), htons(15001), true, FLOW_OPEN, &f),
			 0);
	assert_int_equal(f->slot, 0);
	assert_int_equal(flowtab_reclaimed(ft), 3);
	flowtab_free(ft);
}

#define MANY 5000

static void test_fresh_ports_unique(void **state)
{
	struct flowtab *ft = table(MANY);
	static uint8_t used[65536];
	uint32_t target = ip4("127.0.0.1");

	(void)state;
	memset(used, 0, sizeof(used));
	for (int i = 0; i < MANY; i++) {
		/* Half reuse one guest port towards many destinations, as a NATed guest might. */
		struct flow_key g = (i & 1) ?
			tcp_gkey(50000, "10.96.0.1", (uint16_t)(1 + i)) :
			tcp_gkey((uint16_t)(1 + i), "10.96.0.1", 443);
		struct flow *f = NULL;
		uint16_t port;

		assert_int_equal(flowtab_add(ft, &g, target, htons(15001), false, FLOW_SYN, &f), 0);
		port = ntohs(f->skey.lport);
		assert_true(port >= 1024);
		if (used[port])
			fail_msg("stack port %u handed out twice", port);
		used[port] = 1;
		assert_ptr_equal(flowtab_lookup_stack(ft, &f->skey), f);
	}
	assert_counts(ft, 0, MANY, 0, 0, 0);
	flowtab_free(ft);
}

struct expired {
	int n;
	struct flow_key keys[16];
	struct flowtab *ft;
	int64_t rearm_to;          /* non-zero: keep each flow, CLOSED until then */
};

static bool expire_cb(struct flow *f, void *opaque)
{
	struct expired *e = opaque;

	/* Called before removal: the flow is still in the table. */
	assert_true(f->state != FLOW_FREE);
	assert_ptr_equal(flowtab_lookup_guest(e->ft, &f->gkey), f);
	assert_true(e->n < 16);
	e->keys[e->n++] = f->gkey;
	if (!e->rearm_to)
		return false;
	flowtab_set_state(e->ft, f, FLOW_CLOSED);
	flowtab_set_deadline(e->ft, f, e->rearm_to);
	return true;
}

static bool expired_has(const struct expired *e, const struct flow_key *k)
{
	for (int i = 0; i < e->n; i++)
		if (!memcmp(&e->keys[i], k, sizeof(*k)))
			return true;
	return false;
}

struct spec {
	uint8_t proto;
	enum flow_state state;
	int64_t deadline;
};

static void test_expire(void **state)
{
	static const struct spec specs[] = {
		{ IPPROTO_TCP, FLOW_SYN, 100 },         /* 0: expires at 100 */
		{ IPPROTO_TCP, FLOW_SYN, 300 },         /* 1: expires at 300 */
		{ IPPROTO_TCP, FLOW_CLOSED, 200 },      /* 2: deadline == now: expires at 200 */
		{ IPPROTO_UDP, FLOW_OPEN, 150 },        /* 3: idle UDP expires at 200 */
		{ IPPROTO_UDP, FLOW_OPEN, 201 },        /* 4: not yet at 200 */
		{ IPPROTO_TCP, FLOW_OPEN, 0 },          /* 5: no deadline: never */
		{ IPPROTO_TCP, FLOW_CONNECTING, 0 },    /* 6: never */
		{ IPPROTO_UDP, FLOW_CLOSED, 250 },      /* 7: at 300 */
		{ IPPROTO_TCP, FLOW_SYN, -5 },          /* 8: already past */
	};
	struct flowtab *ft = table(32);
	struct flow_key keys[G_N_ELEMENTS(specs)];
	struct expired e = { .ft = ft };

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(specs); i++) {
		struct flow *f = NULL;

		keys[i] = flow_key_make(specs[i].proto, ip4("10.0.2.15"), htons((uint16_t)(2000 + i)),
					ip4("1.1.1.1"), htons(80));
		assert_int_equal(flowtab_add(ft, &keys[i], ip4("127.0.0.1"), htons(15001),
					     specs[i].proto == IPPROTO_UDP, specs[i].state, &f), 0);
		flowtab_set_deadline(ft, f, specs[i].deadline);
	}
	assert_counts(ft, 23, 3, 1, 3, 2);

	assert_int_equal(flowtab_expire(ft, 99, expire_cb, &e), 1);
	assert_true(e.n == 1 && expired_has(&e, &keys[8]));

	e.n = 0;
	assert_int_equal(flowtab_expire(ft, 200, expire_cb, &e), 3);
	assert_int_equal(e.n, 3);
	assert_true(expired_has(&e, &keys[0]));
	assert_true(expired_has(&e, &keys[2]));
	assert_true(expired_has(&e, &keys[3]));
	for (int i = 0; i < e.n; i++)
		assert_null(flowtab_lookup_guest(ft, &e.keys[i]));
	assert_non_null(flowtab_lookup_guest(ft, &keys[4]));
	assert_counts(ft, 27, 1, 1, 2, 1);

	/* No callback is fine too. */
	assert_int_equal(flowtab_expire(ft, 300, NULL, NULL), 3);
	assert_null(flowtab_lookup_guest(ft, &keys[1]));
	assert_null(flowtab_lookup_guest(ft, &keys[4]));
	assert_null(flowtab_lookup_guest(ft, &keys[7]));
	assert_counts(ft, 30, 0, 1, 1, 0);

	/* Flows without a deadline survive any time. */
	e.n = 0;
	assert_int_equal(flowtab_expire(ft, INT64_MAX, expire_cb, &e), 0);
	assert_int_equal(e.n, 0);
	assert_non_null(flowtab_lookup_guest(ft, &keys[5]));
	assert_non_null(flowtab_lookup_guest(ft, &keys[6]));
	/* Until they get one; a callback may keep a flow by re-arming it (idle reset). */
	flowtab_set_deadline(ft, flowtab_lookup_guest(ft, &keys[5]), 1);
	e.rearm_to = 1000;
	assert_int_equal(flowtab_expire(ft, 500, expire_cb, &e), 0);
	assert_true(e.n == 1 && expired_has(&e, &keys[5]));
	assert_int_equal(flowtab_lookup_guest(ft, &keys[5])->state, FLOW_CLOSED);
	e.n = 0;
	assert_int_equal(flowtab_expire(ft, 999, expire_cb, &e), 0);
	assert_int_equal(e.n, 0);
	e.rearm_to = 0;
	assert_int_equal(flowtab_expire(ft, 1000, expire_cb, &e), 1);
	assert_true(e.n == 1 && expired_has(&e, &keys[5]));
	assert_null(flowtab_lookup_guest(ft, &keys[5]));
	assert_counts(ft, 31, 0, 1, 0, 0);
	flowtab_free(ft);
}

/*
 * Expiry looks at flows whose deadline's tick came, not at every slot, and
 * the per-kind TCP counts follow kind and state changes without a scan.
 */
static void test_expire_costs_what_expires(void **state)
{
	struct flowtab *ft = table(1 << 16);
	const int64_t t0 = 1000 * (int64_t)G_USEC_PER_SEC;
	struct flow *due = NULL;

	(void)state;
	/* The table has been ticking: its first call walks the (empty) wheel once. */
	flowtab_expire(ft, t0 - G_USEC_PER_SEC, NULL, NULL);
	for (uint16_t i = 0; i < 1000; i++) {
		struct flow_key g = flow_key_make(IPPROTO_TCP, ip4("10.0.2.15"), htons(2000 + i),
						  ip4("1.1.1.1"), htons(80));
		struct flow *f = NULL;

		assert_int_equal(flowtab_add(ft, &g, ip4("1.1.1.1"), htons(80), FLOWTAB_KEEP_PORT,
					     FLOW_OPEN, &f), 0);
		flowtab_set_class(ft, f, 3);
		/* Idle deadlines five minutes on, pushed later by "packets" (only stored). */
		flowtab_set_deadline(ft, f, t0 + 300 * (int64_t)G_USEC_PER_SEC);
		flowtab_set_deadline(ft, f, t0 + 400 * (int64_t)G_USEC_PER_SEC);
		if (i == 7)
			due = f;
	}
	assert_int_equal(flowtab_count_tcp(ft, 3, FLOW_OPEN), 1000);
	assert_int_equal(flowtab_count_tcp(ft, 0, FLOW_OPEN), 0);
	flowtab_set_state(ft, due, FLOW_CLOSED);
	flowtab_set_deadline(ft, due, t0 + 10 * G_USEC_PER_SEC);
	assert_int_equal(flowtab_count_tcp(ft, 3, FLOW_OPEN), 999);
	assert_int_equal(flowtab_count_tcp(ft, 3, FLOW_CLOSED), 1);
	/* Sixty idle seconds, one tick each: only the due flow is looked at. */
	for (int s = 0; s <= 60; s++)
		flowtab_expire(ft, t0 + s * G_USEC_PER_SEC, NULL, NULL);
	assert_int_equal(flowtab_expire_visits(ft), 1);
	assert_int_equal(flowtab_size(ft), 999);
	assert_int_equal(flowtab_count_tcp(ft, 3, FLOW_CLOSED), 0);
	flowtab_free(ft);
}

#define CHURN_MAX 64
#define CHURN_CYCLES 100000

static void note_visit(const struct flow *f, void *opaque)
{
	uint32_t *visits = opaque;

	visits[f->slot]++;
}

/* flowtab_foreach() visits exactly the @n flows of @live, each once. */
static void assert_foreach_is(struct flowtab *ft, struct flow *const *live, size_t n)
{
	uint32_t visits[CHURN_MAX] = { 0 };
	size_t total = 0;

	flowtab_foreach(ft, note_visit, visits);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(visits[live[i]->slot], 1);
	for (size_t i = 0; i < CHURN_MAX; i++)
		total += visits[i];
	assert_int_equal(total, n);
}

static void count_visit(const struct flow *f, void *opaque)
{
	(void)f;
	(*(size_t *)opaque)++;
}

/*
 * A walk goes over the used part of the slot permutation only: in a table
 * of a million slots, after adds and a remove from the middle, it finds
 * exactly the flows left.
 */
static void test_foreach_walks_what_is_used(void **state)
{
	struct flowtab *ft = table(1 << 20);
	struct flow *f[3];
	size_t visits = 0;

	(void)state;
	for (uint16_t i = 0; i < 3; i++) {
		struct flow_key g = flow_key_make(IPPROTO_TCP, ip4("10.0.2.15"), htons(3000 + i),
						  ip4("1.1.1.1"), htons(80));

		assert_int_equal(flowtab_add(ft, &g, ip4("1.1.1.1"), htons(80), FLOWTAB_KEEP_PORT,
					     FLOW_OPEN, &f[i]), 0);
	}
	flowtab_remove(ft, f[1]);
	flowtab_foreach(ft, count_visit, &visits);
	assert_int_equal(visits, 2);
	flowtab_free(ft);
}

/* Random adds and removes, with a shadow list to check against; empty at the end. */
static void test_churn(void **state)
{
	struct flowtab *ft = table(CHURN_MAX);
	struct flow *live[CHURN_MAX];
	struct flow_key live_keys[CHURN_MAX];
	size_t n = 0;
	uint16_t next_port = 1;

	(void)state;
	rng_state = 7;
	for (int c = 0; c < CHURN_CYCLES; c++) {
		bool udp = rng_next() & 1;
		struct flow_key g = flow_key_make(udp ? IPPROTO_UDP : IPPROTO_TCP, ip4("10.0.2.15"),
						  htons(next_port), ip4("203.0.113.9"), htons(443));
		struct flow *f = NULL;
		size_t victim;
		int ret;

		next_port = (uint16_t)(next_port % 60000 + 1);
		ret = flowtab_add(ft, &g, ip4("127.0.0.1"), htons(15001), udp, FLOW_SYN, &f);
		if (n == CHURN_MAX) {
			assert_int_equal(ret, -ENOSPC);
		} else {
			assert_int_equal(ret, 0);
			live[n] = f;
			live_keys[n++] = g;
		}
		assert_int_equal(flowtab_size(ft), n);
		/* Remove one or two at random, less often than we add, to fill up sometimes. */
		for (int k = 0; k < (int)(rng_next() % 3) && n; k++) {
			victim = (size_t)(rng_next() % n);
			assert_ptr_equal(flowtab_lookup_guest(ft, &live_keys[victim]), live[victim]);
			flowtab_remove(ft, live[victim]);
			assert_null(flowtab_lookup_guest(ft, &live_keys[victim]));
			live[victim] = live[n - 1];
			live_keys[victim] = live_keys[n - 1];
			n--;
		}
		assert_int_equal(flowtab_size(ft), n);
		assert_int_equal(flowtab_count(ft, FLOW_FREE), CHURN_MAX - n);
		if (c % 97 == 0)
			assert_foreach_is(ft, live, n);
	}
	while (n) {
		n--;
		flowtab_remove(ft, live[n]);
	}
	assert_counts(ft, CHURN_MAX, 0, 0, 0, 0);
	for (int i = 0; i < 60000; i += 997) {
		struct flow_key g = flow_key_make(IPPROTO_TCP, ip4("10.0.2.15"), htons((uint16_t)(i + 1)),
						  ip4("203.0.113.9"), htons(443));

		assert_null(flowtab_lookup_guest(ft, &g));
	}
	flowtab_free(ft);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_bounds),
		cmocka_unit_test(test_key_make),
		cmocka_unit_test(test_add_lookup_states),
		cmocka_unit_test(test_keep_port),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_remove_reuses_slot),
		cmocka_unit_test(test_reclaim_retired),
		cmocka_unit_test(test_fresh_ports_unique),
		cmocka_unit_test(test_expire),
		cmocka_unit_test(test_expire_costs_what_expires),
		cmocka_unit_test(test_churn),
		cmocka_unit_test(test_foreach_walks_what_is_used),
		cmocka_unit_test(test_reass_accounting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
