/* flowtab.c - bounded table of flows, indexed by the guest's and by libslirp's view. */

#include "flowtab.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>

#include <glib.h>
#include <openssl/rand.h>

#include "common/seq.h"
#include "common/siphash.h"
#include "common/timerwheel.h"

#define FLOWTAB_MAX 1048576
/* Stack ports are drawn from here; below it, well-known services live. */
#define FLOWTAB_PORT_MIN 1024
#define FLOWTAB_PORT_TRIES 64
#define FLOWTAB_NIL UINT32_MAX
/* The owner's expiry runs on a one-second tick; finer wheel ticks would only cost walks. */
#define FLOWTAB_TICK_US G_USEC_PER_SEC

/* Links of the retired FIFO, by slot number (kept out of struct flow: the table's business). */
struct flowtab_link {
	uint32_t prev, next;
};

struct flowtab {
	struct flow *slots;
	size_t cap;
	/*
	 * Every slot number once: free ones in [0, nfree) (a stack, top at
	 * nfree - 1), those in use in [nfree, cap); pos[] is each slot's index.
	 * Taking the top free slot moves it into the used part without a copy,
	 * freeing swaps it back: both O(1), and walking the flows in use costs
	 * what is used, not the table's size.
	 */
	uint32_t *free;
	uint32_t *pos;
	size_t nfree;
	size_t count[FLOW_STATE_COUNT];
	size_t udp;                /* flows with proto UDP, any state */
	size_t tcp_by_class[FLOWTAB_CLASSES][FLOW_STATE_COUNT]; /* TCP flows in use */
	struct timerwheel *deadlines; /* by slot: flows with a deadline_us */
	struct flowtab_link *links; /* retired FIFO: oldest at head */
	uint32_t retired_head, retired_tail;
	uint64_t reclaimed;
	size_t reass_total;        /* held segments over all flows (flowtab_reass_hold()) */
	size_t reass_limit;
	GHashTable *by_guest;      /* struct flow_key * -> struct flow * */
	GHashTable *by_stack;
};

/*
 * GHashFunc has no user data, so the key is process-wide; it is drawn once
 * from RAND_bytes and never changes, which is what a hash index needs.
 */
static struct siphash_key flowtab_hash_key;
static gsize flowtab_hash_key_ready;

static guint flowtab_hash(gconstpointer key)
{
	return (guint)siphash24(&flowtab_hash_key, key, sizeof(struct flow_key));
}

static gboolean flowtab_equal(gconstpointer a, gconstpointer b)
{
	return !memcmp(a, b, sizeof(struct flow_key));
}

struct flow_key flow_key_make(uint8_t proto, uint32_t laddr, uint16_t lport,
			      uint32_t raddr, uint16_t rport)
{
	struct flow_key k;

	memset(&k, 0, sizeof(k));
	k.proto = proto;
	k.laddr = laddr;
	k.lport = lport;
	k.raddr = raddr;
	k.rport = rport;
	return k;
}

int flowtab_new(size_t max, struct flowtab **out)
{
	struct flowtab *ft;

	if (max < 1 || max > FLOWTAB_MAX)
		return -EINVAL;
	if (g_once_init_enter(&flowtab_hash_key_ready)) {
		int ok = RAND_bytes((unsigned char *)&flowtab_hash_key,
				    sizeof(flowtab_hash_key));

		g_once_init_leave(&flowtab_hash_key_ready, ok == 1 ? 1 : 2);
	}
	if (flowtab_hash_key_ready != 1)
		return -EIO;

	ft = g_new0(struct flowtab, 1);
	ft->cap = max;
	ft->slots = g_new0(struct flow, max);
	ft->free = g_new(uint32_t, max);
	ft->pos = g_new(uint32_t, max);
	for (size_t i = 0; i < max; i++) {
		ft->free[i] = (uint32_t)(max - 1 - i);
		ft->pos[max - 1 - i] = (uint32_t)i;
	}
	ft->nfree = max;
	ft->count[FLOW_FREE] = max;
	ft->reass_limit = FLOW_REASS_TOTAL_DEFAULT;
	ft->links = g_new(struct flowtab_link, max);
	ft->retired_head = ft->retired_tail = FLOWTAB_NIL;
	if (timerwheel_new((uint32_t)max, FLOWTAB_TICK_US, &ft->deadlines)) {
		flowtab_free(ft);
		return -ENOMEM;
	}
	ft->by_guest = g_hash_table_new(flowtab_hash, flowtab_equal);
	ft->by_stack = g_hash_table_new(flowtab_hash, flowtab_equal);
	*out = ft;
	return 0;
}

void flowtab_free(struct flowtab *ft)
{
	if (!ft)
		return;
	if (ft->by_guest)
		g_hash_table_unref(ft->by_guest);
	if (ft->by_stack)
		g_hash_table_unref(ft->by_stack);
	timerwheel_free(ft->deadlines);
	g_free(ft->slots);
	g_free(ft->free);
	g_free(ft->pos);
	g_free(ft->links);
	g_free(ft);
}

struct flow *flowtab_get(struct flowtab *ft, uint32_t slot)
{
	if (slot >= ft->cap || ft->slots[slot].state == FLOW_FREE)
		return NULL;
	return &ft->slots[slot];
}

struct flow *flowtab_lookup_guest(struct flowtab *ft, const struct flow_key *gkey)
{
	return g_hash_table_lookup(ft->by_guest, gkey);
}

struct flow *flowtab_lookup_stack(struct flowtab *ft, const struct flow_key *skey)
{
	return g_hash_table_lookup(ft->by_stack, skey);
}

/* Find a stack port nobody uses towards @taddr:@tport; 0 or -EADDRINUSE. */
static int flowtab_pick_port(struct flowtab *ft, struct flow_key *skey)
{
	uint16_t start;

	if (RAND_bytes((unsigned char *)&start, sizeof(start)) != 1)
		return -EADDRINUSE;
	for (unsigned int i = 0; i < FLOWTAB_PORT_TRIES; i++) {
		uint32_t span = 65536 - FLOWTAB_PORT_MIN;
		uint16_t port = (uint16_t)(FLOWTAB_PORT_MIN + (start + i * 7919u) % span);

		skey->lport = htons(port);
		if (!g_hash_table_contains(ft->by_stack, skey))
			return 0;
	}
	return -EADDRINUSE;
}

int flowtab_add(struct flowtab *ft, const struct flow_key *gkey, uint32_t taddr,
		uint16_t tport, unsigned int flags, enum flow_state state, struct flow **out)
{
	struct flow_key skey = flow_key_make(gkey->proto, gkey->laddr, gkey->lport,
					     taddr, tport);
	struct flow *f;
	uint32_t slot;
	int ret;

	g_assert(state != FLOW_FREE); /* a constant at every call site */
	if (!(flags & FLOWTAB_STACK_ONLY) && flowtab_lookup_guest(ft, gkey))
		return -EEXIST;
	if (!ft->nfree) {
		if (ft->retired_head == FLOWTAB_NIL)
			return -ENOSPC;
		flowtab_remove(ft, &ft->slots[ft->retired_head]);
		ft->reclaimed++;
	}
	if (flags & FLOWTAB_KEEP_PORT)
		ret = g_hash_table_contains(ft->by_stack, &skey) ? -EADDRINUSE : 0;
	else
		ret = flowtab_pick_port(ft, &skey);
	if (ret)
		return ret;

	slot = ft->free[--ft->nfree];
	f = &ft->slots[slot];
	memset(f, 0, sizeof(*f));
	f->gkey = *gkey;
	f->skey = skey;
	f->fd = -1;
	f->slot = slot;
	f->state = state;
	ft->count[FLOW_FREE]--;
	ft->count[state]++;
	ft->udp += gkey->proto == IPPROTO_UDP;
	if (gkey->proto == IPPROTO_TCP)
		ft->tcp_by_class[f->cls][state]++;
	f->guest_indexed = !(flags & FLOWTAB_STACK_ONLY);
	if (f->guest_indexed)
		g_hash_table_insert(ft->by_guest, &f->gkey, f);
	g_hash_table_insert(ft->by_stack, &f->skey, f);
	*out = f;
	return 0;
}

int flowtab_rekey_guest(struct flowtab *ft, struct flow *f, const struct flow_key *gkey)
{
	if (!memcmp(gkey, &f->gkey, sizeof(*gkey)))
		return 0;
	if (g_hash_table_contains(ft->by_guest, gkey))
		return -EEXIST;
	if (f->guest_indexed)
		g_hash_table_remove(ft->by_guest, &f->gkey);
	f->gkey = *gkey;
	f->guest_indexed = true;
	g_hash_table_insert(ft->by_guest, &f->gkey, f);
	return 0;
}

/* Take @f out of the retired FIFO. */
static void flowtab_unlink_retired(struct flowtab *ft, struct flow *f)
{
	struct flowtab_link *l = &ft->links[f->slot];

	if (l->prev == FLOWTAB_NIL)
		ft->retired_head = l->next;
	else
		ft->links[l->prev].next = l->next;
	if (l->next == FLOWTAB_NIL)
		ft->retired_tail = l->prev;
	else
		ft->links[l->next].prev = l->prev;
	f->retired = false;
}

void flowtab_retire(struct flowtab *ft, struct flow *f)
{
	struct flowtab_link *l = &ft->links[f->slot];

	g_assert(f->state == FLOW_CLOSED && f->fd < 0);
	if (f->retired)
		return;
	l->prev = ft->retired_tail;
	l->next = FLOWTAB_NIL;
	if (ft->retired_tail == FLOWTAB_NIL)
		ft->retired_head = f->slot;
	else
		ft->links[ft->retired_tail].next = f->slot;
	ft->retired_tail = f->slot;
	f->retired = true;
}

uint64_t flowtab_reclaimed(const struct flowtab *ft)
{
	return ft->reclaimed;
}

/* @slot (in use) becomes the top free slot: swapped with the first one in use, then taken in. */
static void flowtab_release_slot(struct flowtab *ft, uint32_t slot)
{
	uint32_t at = ft->pos[slot], first = ft->free[ft->nfree];

	ft->free[at] = first;
	ft->pos[first] = at;
	ft->free[ft->nfree] = slot;
	ft->pos[slot] = (uint32_t)ft->nfree;
	ft->nfree++;
}

void flowtab_set_reass_limit(struct flowtab *ft, size_t limit)
{
	ft->reass_limit = limit;
}

int flowtab_reass_hold(struct flowtab *ft, struct flow *f, uint32_t end)
{
	if (f->reass_count == FLOW_REASS_MAX)
		return -ENOBUFS;
	if (ft->reass_total >= ft->reass_limit)
		return -ENOSPC;
	f->reass_end[(f->reass_head + f->reass_count) % FLOW_REASS_MAX] = end;
	f->reass_count++;
	ft->reass_total++;
	return 0;
}

void flowtab_reass_release(struct flowtab *ft, struct flow *f, uint32_t ack)
{
	while (f->reass_count && !seq_after(f->reass_end[f->reass_head], ack)) {
		f->reass_head = (uint8_t)((f->reass_head + 1) % FLOW_REASS_MAX);
		f->reass_count--;
		ft->reass_total--;
	}
}

void flowtab_reass_clear(struct flowtab *ft, struct flow *f)
{
	ft->reass_total -= f->reass_count;
	f->reass_count = 0;
	f->reass_head = 0;
}

size_t flowtab_reass_total(const struct flowtab *ft)
{
	return ft->reass_total;
}

void flowtab_remove(struct flowtab *ft, struct flow *f)
{
	g_assert(f->state != FLOW_FREE);
	flowtab_reass_clear(ft, f);
	if (f->retired)
		flowtab_unlink_retired(ft, f);
	if (f->guest_indexed)
		g_hash_table_remove(ft->by_guest, &f->gkey);
	g_hash_table_remove(ft->by_stack, &f->skey);
	ft->count[f->state]--;
	ft->count[FLOW_FREE]++;
	ft->udp -= f->gkey.proto == IPPROTO_UDP;
	if (f->gkey.proto == IPPROTO_TCP)
		ft->tcp_by_class[f->cls][f->state]--;
	timerwheel_disarm(ft->deadlines, f->slot);
	f->deadline_us = 0;
	f->state = FLOW_FREE;
	flowtab_release_slot(ft, f->slot);
}

void flowtab_set_state(struct flowtab *ft, struct flow *f, enum flow_state state)
{
	/* Retired is final: nothing may revive a flow whose slot can vanish. */
	g_assert(f->state != FLOW_FREE && state != FLOW_FREE && (!f->retired || state == FLOW_CLOSED));
	ft->count[f->state]--;
	ft->count[state]++;
	if (f->gkey.proto == IPPROTO_TCP) {
		ft->tcp_by_class[f->cls][f->state]--;
		ft->tcp_by_class[f->cls][state]++;
	}
	f->state = state;
}

void flowtab_set_class(struct flowtab *ft, struct flow *f, unsigned int cls)
{
	g_assert(f->state != FLOW_FREE && cls < FLOWTAB_CLASSES); /* a constant at every call site */
	if (f->gkey.proto == IPPROTO_TCP) {
		ft->tcp_by_class[f->cls][f->state]--;
		ft->tcp_by_class[cls][f->state]++;
	}
	f->cls = (uint8_t)cls;
}

void flowtab_set_deadline(struct flowtab *ft, struct flow *f, int64_t when_us)
{
	g_assert(f->state != FLOW_FREE);
	f->deadline_us = when_us;
	timerwheel_arm(ft->deadlines, f->slot, when_us);
}

size_t flowtab_count_tcp(const struct flowtab *ft, unsigned int cls, enum flow_state state)
{
	return cls < FLOWTAB_CLASSES ? ft->tcp_by_class[cls][state] : 0;
}

size_t flowtab_count(const struct flowtab *ft, enum flow_state state)
{
	return ft->count[state];
}

size_t flowtab_count_udp(const struct flowtab *ft)
{
	return ft->udp;
}

void flowtab_foreach(struct flowtab *ft, void (*fn)(const struct flow *flow, void *opaque),
		     void *opaque)
{
	for (size_t i = ft->nfree; i < ft->cap; i++)
		fn(&ft->slots[ft->free[i]], opaque);
}

size_t flowtab_size(const struct flowtab *ft)
{
	return ft->cap - ft->nfree;
}

/* What flowtab_expire() passes through the wheel to its fire callback. */
struct flowtab_expiry {
	struct flowtab *ft;
	bool (*cb)(struct flow *flow, void *opaque);
	void *opaque;
	size_t removed;
};

/* timerwheel_expire() callback: @slot's deadline came; the owner keeps it or it goes. */
static void flowtab_fire(uint32_t slot, void *opaque)
{
	struct flowtab_expiry *x = opaque;
	struct flow *f = &x->ft->slots[slot];

	if (x->cb && x->cb(f, x->opaque)) {
		/*
		 * Kept with its deadline untouched (still the mirror's, the wheel
		 * having disarmed it): due again at once, as a scan of every slot
		 * would have found it on its next pass.
		 */
		if (f->deadline_us && !timerwheel_deadline(x->ft->deadlines, slot))
			timerwheel_arm(x->ft->deadlines, slot, f->deadline_us);
		return;
	}
	flowtab_remove(x->ft, f);
	x->removed++;
}

size_t flowtab_expire(struct flowtab *ft, int64_t now_us,
		      bool (*cb)(struct flow *flow, void *opaque), void *opaque)
{
	struct flowtab_expiry x = { .ft = ft, .cb = cb, .opaque = opaque };

	timerwheel_expire(ft->deadlines, now_us, flowtab_fire, &x);
	return x.removed;
}

uint64_t flowtab_expire_visits(const struct flowtab *ft)
{
	return timerwheel_visits(ft->deadlines);
}
