/* flowtab.h - bounded table of flows, indexed by the guest's and by libslirp's view. */
#ifndef MESHSLIRP_PB_FLOWTAB_H
#define MESHSLIRP_PB_FLOWTAB_H

/*
 * Theory of operation
 *
 * The table holds flows (flow.h) in slots allocated up front, and finds
 * them by either key: gkey, the guest's view, and skey, libslirp's view
 * after the rewrite, where the stack port is chosen fresh so that a guest
 * reusing one source port towards two destinations gives two distinct
 * libslirp sockets.  It knows no flow kind and drives no state machine: the
 * owner moves flows between states (flowtab_set_state()) and the kinds'
 * modules say how (the table at the top of each).  What the table adds:
 *
 * Retirement.  A CLOSED flow whose socket libslirp has let go of is only
 * kept for late segments; the owner marks it so with flowtab_retire().
 * Retired flows form a FIFO, and a full table gives the oldest one's slot to
 * a new flow rather than refusing it: the grace period must not cap the rate
 * of short connections at max / grace.  A retired flow's late segments then
 * find no flow, and the bridge answers them with a reset.
 *
 * Expiry: a flow's deadline lives in a timer wheel keyed by slot
 * (common/timerwheel.h), so flowtab_expire() looks only at flows whose
 * deadline's tick has come, not at every slot: an idle table of a million
 * slots costs one bucket a tick.
 *
 * Held segments: the ends of guest TCP segments libslirp may hold out of
 * order (flow.h, FLOW_REASS_MAX per flow), kept per flow and summed over
 * the table, which caps the sum (flowtab_set_reass_limit()).  The sum is
 * exact by construction: every change goes through flowtab_reass_*(), and
 * flowtab_remove() gives back whatever the flow still held.
 *
 * Counts by state, UDP flows, and TCP flows by (class, state) are kept as
 * flows change, so reading them is O(1).  A class is a small number the
 * owner gives a flow for counting only (the bridge gives its kind).
 *
 * Limits: all slots are allocated up front (flowtab_new's @max); the
 * indexes are GLib hash tables keyed by SipHash-2-4 under a key drawn from
 * RAND_bytes at creation, so a guest can neither predict the stack port nor
 * aim its flows at one hash bucket.  Nothing is allocated per packet.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy-bridge/flow.h"

/* Counting classes per table (flowtab_set_class()): the bridge's flow kinds, and strangers. */
#define FLOWTAB_CLASSES 5

struct flowtab;

/**
 * flowtab_new() - allocate a table of @max flows (1..1048576)
 *
 * Return: 0, -EINVAL for a bad @max, -EIO if no randomness was available.
 */
int flowtab_new(size_t max, struct flowtab **out);

/* flowtab_free() - free the table and every flow in it; NULL is a no-op. */
void flowtab_free(struct flowtab *ft);

/* flowtab_get() - the flow in slot @slot, or NULL if that slot is free. */
struct flow *flowtab_get(struct flowtab *ft, uint32_t slot);

/* Lookups return NULL when absent; the flow belongs to the table. */
struct flow *flowtab_lookup_guest(struct flowtab *ft, const struct flow_key *gkey);
struct flow *flowtab_lookup_stack(struct flowtab *ft, const struct flow_key *skey);

/* flowtab_add() flags. */
#define FLOWTAB_KEEP_PORT 0x1u     /* the guest's port is the stack port (UDP, direct, inbound) */
#define FLOWTAB_STACK_ONLY 0x2u    /* index the stack view only: a flow being refused whose
				      guest view belongs to another flow */

/**
 * flowtab_add() - insert a flow in state @state
 * @gkey:	guest view
 * @taddr, @tport:	target libslirp should connect to (network order)
 * @flags:	FLOWTAB_KEEP_PORT: use the guest's port as the stack port
 *		instead of a fresh random one; FLOWTAB_STACK_ONLY: do not
 *		index @gkey (lookups by guest view will not find the flow)
 * @out:	the new flow
 *
 * A full table first frees the oldest retired flow, if any, and takes its
 * slot (counted by flowtab_reclaimed()); any pointer to that flow becomes
 * invalid, so callers hold none across this call.
 *
 * Return: 0, -EEXIST when another flow has @gkey (without FLOWTAB_STACK_ONLY),
 * -ENOSPC when the table is full and nothing is retired, -EADDRINUSE when no
 * free stack port could be found (or the guest's port is taken with
 * FLOWTAB_KEEP_PORT).  Packets choose every key: none of these is a bug.
 */
int flowtab_add(struct flowtab *ft, const struct flow_key *gkey, uint32_t taddr,
		uint16_t tport, unsigned int flags, enum flow_state state, struct flow **out);

/**
 * flowtab_rekey_guest() - give @flow a new guest-view key (inbound: the client)
 *
 * Return: 0, or -EEXIST if another flow has that key (the flow is unchanged).
 */
int flowtab_rekey_guest(struct flowtab *ft, struct flow *flow, const struct flow_key *gkey);

/* flowtab_remove() - free @flow; its pointer becomes invalid. */
void flowtab_remove(struct flowtab *ft, struct flow *flow);

/* flowtab_set_state() - move @flow to @state, keeping per-state counts. */
void flowtab_set_state(struct flowtab *ft, struct flow *flow, enum flow_state state);

/**
 * flowtab_retire() - @flow (CLOSED, no socket left) is kept only for late
 * packets: flowtab_add() may reclaim its slot, oldest retired first.  It
 * stays in the table, with its deadline, until then.  Idempotent.
 */
void flowtab_retire(struct flowtab *ft, struct flow *flow);

/* flowtab_reclaimed() - retired flows whose slot flowtab_add() took before their deadline. */
uint64_t flowtab_reclaimed(const struct flowtab *ft);

/* flowtab_set_reass_limit() - most held segments over all flows (default FLOW_REASS_TOTAL_DEFAULT). */
void flowtab_set_reass_limit(struct flowtab *ft, size_t limit);

/**
 * flowtab_reass_hold() - libslirp may hold @flow's guest segment ending at @end
 *
 * Return: 0 (remembered until flowtab_reass_release() passes @end),
 * -ENOBUFS with FLOW_REASS_MAX held for @flow, -ENOSPC with the table's
 * limit held over all flows; nothing is remembered then.
 */
int flowtab_reass_hold(struct flowtab *ft, struct flow *flow, uint32_t end);

/*
 * flowtab_reass_release() - libslirp acknowledged up to @ack: forget @flow's
 * held ends at or before it, oldest first (an older one uncovered keeps the
 * later ones, which only ever overcounts).
 */
void flowtab_reass_release(struct flowtab *ft, struct flow *flow, uint32_t ack);

/* flowtab_reass_clear() - forget every segment @flow held (libslirp freed its queue). */
void flowtab_reass_clear(struct flowtab *ft, struct flow *flow);

/* flowtab_reass_total() - segments held over all flows. */
size_t flowtab_reass_total(const struct flowtab *ft);

/* flowtab_count() - flows in @state (FLOW_FREE: free slots). */
size_t flowtab_count(const struct flowtab *ft, enum flow_state state);

/* flowtab_set_class() - count @flow in class @cls (< FLOWTAB_CLASSES; flowtab_add() gives 0). */
void flowtab_set_class(struct flowtab *ft, struct flow *flow, unsigned int cls);

/**
 * flowtab_set_deadline() - flowtab_expire() acts on @flow at @when_us (monotonic); 0: never
 *
 * O(1), no allocation; moving a deadline later, as every packet of an open
 * flow does, only stores it.  Safe inside flowtab_expire()'s callback.
 */
void flowtab_set_deadline(struct flowtab *ft, struct flow *flow, int64_t when_us);

/* flowtab_count_tcp() - TCP flows of class @cls in @state, kept as they change (no scan). */
size_t flowtab_count_tcp(const struct flowtab *ft, unsigned int cls, enum flow_state state);

/* flowtab_count_udp() - UDP flows in use, any state. */
size_t flowtab_count_udp(const struct flowtab *ft);

/*
 * flowtab_foreach() - call @fn for every flow in use, in no particular order
 * (the table must not change meanwhile).  Costs the flows in use, not @max.
 */
void flowtab_foreach(struct flowtab *ft, void (*fn)(const struct flow *flow, void *opaque),
		     void *opaque);

/* flowtab_size() - flows in use. */
size_t flowtab_size(const struct flowtab *ft);

/**
 * flowtab_expire() - act on every flow whose deadline passed
 * @now_us:	monotonic time
 * @cb:		called with each such flow; it returns true to keep the flow
 *		(having moved it to a new state and deadline), false to have it
 *		removed.  NULL: remove them all.
 *
 * A flow has a deadline when its deadline_us is non-zero; the owner sets one
 * with flowtab_set_deadline() in every state that needs one.  The callback
 * sees the flow with its deadline still set; a kept flow whose deadline it
 * did not change is due again at once (within this call or the next).
 * Work: the flows whose deadline's one-second tick has come, plus, after a
 * stall, a bounded number of wheel buckets; not the table's size.
 *
 * Return: number of flows removed.
 */
size_t flowtab_expire(struct flowtab *ft, int64_t now_us,
		      bool (*cb)(struct flow *flow, void *opaque), void *opaque);

/* flowtab_expire_visits() - flows flowtab_expire() has looked at so far (tests, profiling). */
uint64_t flowtab_expire_visits(const struct flowtab *ft);

#endif /* MESHSLIRP_PB_FLOWTAB_H */
