/* bridge_internal.h - state shared by bridge.c (hooks, outbound) and inbound.c. */
#ifndef MESHSLIRP_PB_BRIDGE_INTERNAL_H
#define MESHSLIRP_PB_BRIDGE_INTERNAL_H

#include <glib.h>

#include "common/ratelimit.h"
#include "proxy-bridge/bridge.h"
#include "proxy-bridge/rewrite.h"
#include "proxy-bridge/unixleg.h"

/* Largest SYN libslirp sends (Ethernet + IP + TCP with options). */
#define BRIDGE_SYN_MAX 128

/*
 * A second libslirp socket on the tuple of a live inbound connection (two
 * loopback clients with one source port both look like the gateway to
 * libslirp; one client on two exposed ports of one guest port).  libslirp
 * cannot tell the two apart, and its lookup would hand the live
 * connection's segments to the newer socket, so the newcomer is refused and
 * removed from libslirp at once: see bridge_dups_kill() in inbound.c.
 */
struct bridge_dup {
	bool used;
	int fd;                        /* libslirp's socket for the refused client */
	struct flow_key skey;          /* the tuple it shares (libslirp's view) */
	uint32_t isn;                  /* its SYN's sequence number, once seen */
	bool isn_known;
	uint32_t live_guest_nxt;       /* the live connection's guest sequence, for the kill RST */
	uint64_t attempts;
};
#define BRIDGE_DUP_MAX 16

/*
 * Later fragments of a datagram libslirp fragmented towards the guest carry
 * no ports: the first fragment's rewrite is remembered by IP id so that
 * every fragment gets the same addresses (bridge_stack_fragment()).
 */
struct bridge_frag {
	uint32_t saddr, daddr;         /* libslirp's view (network order) */
	uint32_t new_saddr, new_daddr; /* the guest's view */
	uint16_t id;
	uint8_t proto;
	bool used;
};
#define BRIDGE_FRAG_MAX 32

/* An inbound connection waiting for its PROXY header. */
struct bridge_hdr_wait {
	struct flow *flow;             /* NULL: free slot */
	int64_t header_deadline_us;
	bool polling;                  /* bytes present but incomplete: re-read on the tick */
	uint8_t syn[BRIDGE_SYN_MAX];   /* libslirp's SYN to the guest, held back */
	size_t syn_len;
};

struct bridge {
	struct bridge_config cfg;
	struct egress_rule egress;     /* built from cfg once; the pod set stays borrowed */
	struct netstack *ns;
	struct flowtab *flows;
	const struct flow_key *swallow; /* libslirp's answers on this tuple answer our own injection */
	uint32_t cut_slot;             /* flow whose TIME_WAIT socket to drop, UINT32_MAX: none */
	struct flow *syn_in_input;     /* outbound flow whose SYN is inside slirp_input() */
	struct flow *unix_parked;      /* its socket is parked: the unix leg goes on after slirp_input() */
	struct unixleg_templates unix_tmpl; /* with --outbound-proxy unix:PATH */
	bool echo_in_input;            /* an echo request is inside slirp_input() */
	size_t icmp_open;              /* libslirp's ICMP sockets, tagged with &icmp_tag */
	char icmp_tag;
	uint32_t steer_taddr;          /* where libslirp connects for steered flows */
	uint16_t steer_tport;
	uint32_t dns_taddr;
	uint16_t dns_tport;
	guint expire_timer;
	struct ratelimit log_rl;
	struct ratelimit debug_rl;     /* --log-level debug: per-flow lines */
	struct bridge_stats stats;

	struct bridge_hdr_wait *hdr_wait; /* inbound connections waiting for their PROXY header: BRIDGE_HDR_WAIT_MAX slots */
	uint32_t *hdr_wait_free;
	size_t nhdr_wait_free;
	uint32_t *rst_queue;           /* flow slots whose libslirp socket must be reset */
	size_t rst_head, rst_len;      /* ring of BRIDGE_HDR_WAIT_MAX */
	guint inbound_timer;           /* 20 ms tick while anything is pending or queued */

	struct bridge_dup dups[BRIDGE_DUP_MAX];
	size_t ndups;
	struct bridge_frag frags[BRIDGE_FRAG_MAX];
	size_t frag_next;              /* next entry to overwrite */
};

/* Which way a packet travels along a flow key (bridge_tuple()). */
enum bridge_dir {
	BRIDGE_OUTWARD,            /* from the guest-network end (laddr) to the remote one */
	BRIDGE_INWARD,             /* from the remote end towards the guest-network end */
};

/* The tuple of a packet along @k travelling @dir. */
static inline struct rw_tuple bridge_tuple(const struct flow_key *k, enum bridge_dir dir)
{
	struct rw_tuple t = { .proto = k->proto };

	if (dir == BRIDGE_OUTWARD) {
		t.saddr = k->laddr, t.sport = k->lport, t.daddr = k->raddr, t.dport = k->rport;
	} else {
		t.saddr = k->raddr, t.sport = k->rport, t.daddr = k->laddr, t.dport = k->lport;
	}
	return t;
}

/* @f is established: start its TCP idle timer (no deadline when --tcp-idle-timeout is 0). */
static inline void bridge_arm_idle(struct bridge *br, struct flow *f)
{
	f->established = true;
	flowtab_set_deadline(br->flows, f,
			     br->cfg.tcp_idle_us ? g_get_monotonic_time() + br->cfg.tcp_idle_us : 0);
}

/*
 * Remove @f from the table now (a new connection takes its tuple): untag a
 * socket libslirp may still hold, release an inbound flow's header-wait slot.
 */
void bridge_forget_flow(struct bridge *br, struct flow *f);

/*
 * Hand libslirp a RST|ACK on @f as if from the guest (libslirp's view,
 * f->skey), with sequence number @seq and acknowledging @ack (host order).
 * The one way the bridge makes libslirp drop a TCP socket; call only
 * outside libslirp's callbacks (it is not re-entrant).
 */
void bridge_inject_guest_rst(struct bridge *br, const struct flow *f, uint32_t seq, uint32_t ack);

/* Make closing @fd send its peer a reset rather than a FIN (SO_LINGER 0). */
void bridge_reset_on_close(int fd);

/*
 * Reset @fd's peer now, while libslirp keeps the descriptor (it closes it
 * later): a client refused before libslirp can let go of its socket.
 */
void bridge_reset_peer_now(int fd);

/* Format a.b.c.d:port from network-order values into @buf. */
const char *bridge_fmt(char *buf, size_t len, uint32_t addr, uint16_t port);

/* Log about a flow, rate limited: guests and clients choose how often. */
G_GNUC_PRINTF(3, 4)
void bridge_log_flow(struct bridge *br, const struct flow_key *key, const char *fmt, ...);

/* One rate-limited debug line about @f ("open", "closed"). */
void bridge_debug_flow(struct bridge *br, const struct flow *f, const char *event);

/* Rewrite a frame of @f from libslirp's view to the guest's. */
void bridge_to_guest(struct bridge *br, struct rw_view *v, struct flow *f);

/* Note @f's Ethernet addresses from a frame of it, once: our own resets need them. */
void bridge_learn_macs(struct flow *f, const struct rw_view *v, bool from_guest);

/* inbound.c */
void bridge_inbound_init(struct bridge *br);
void bridge_inbound_fini(struct bridge *br);
/* A socket libslirp registered outside slirp_input: ours if it is an accepted client. */
void bridge_inbound_registered(struct bridge *br, int fd);
/* Events on an inbound flow's socket while its header is awaited. */
void bridge_inbound_events(struct bridge *br, struct flow *f, int revents);
/* A frame libslirp sends for an inbound flow still waiting or rejected. */
enum netstack_verdict bridge_inbound_stack_frame(struct bridge *br, struct rw_view *v,
						 struct flow *f);
/* libslirp closed an inbound flow's socket. */
void bridge_inbound_closed(struct bridge *br, struct flow *f);
/* A libslirp SYN to the guest on an inbound tuple: consumed if it belongs to a duplicate. */
bool bridge_inbound_foreign_syn(struct bridge *br, struct flow *f, const struct rw_view *v);
/* Remove refused duplicate sockets from libslirp; call only outside libslirp's callbacks. */
void bridge_dups_kill(struct bridge *br);
/* Is @tag one of the duplicate entries? */
bool bridge_is_dup_tag(const struct bridge *br, const void *tag);
/* libslirp closed a duplicate's socket. */
void bridge_dup_closed(struct bridge *br, struct bridge_dup *dup);

#endif /* MESHSLIRP_PB_BRIDGE_INTERNAL_H */
