/* flow_outbound.c - the connect machine that steered, DNS and direct flows share. */

/*
 * A guest connection or datagram that the policy sends somewhere (the
 * sidecar, the DNS upstream, or its own destination) becomes an outbound
 * flow.  libslirp does the connecting; this file follows it, so that every
 * socket libslirp opens for the guest is bounded in number and in time.
 * The kinds (flow_steer.c, flow_dns.c, flow_direct.c) choose the target,
 * and the steered kind writes its PROXY header between "connected" and
 * OPEN; the rest is here.
 *
 * State machine (TCP).  "libslirp" is the stack, "guest" the VM, "upstream"
 * the target libslirp's socket connects to.
 *
 * | state      | event                                      | next       | sends                                   |
 * |------------|--------------------------------------------|------------|-----------------------------------------|
 * | (none)     | guest SYN, policy says this kind           | SYN        | the SYN, rewritten, to libslirp         |
 * | (none)     | guest SYN, table full / no stack port      | (none)     | RST to the guest                        |
 * | SYN        | libslirp registers the socket (in input)   | CONNECTING | -                                       |
 * | SYN        | no socket within 5 s                       | (freed)    | -                                       |
 * | CONNECTING | socket writable, no error [steer: header]  | OPEN       | [steer: PROXY header to the upstream]   |
 * | CONNECTING | connect error [steer: header write fails]  | CLOSED     | libslirp's probe resets the guest       |
 * | CONNECTING | --connect-timeout                          | CLOSED     | shutdown: libslirp resets the guest     |
 * | OPEN       | guest ACKs libslirp's SYN|ACK               | OPEN       | (established: idle timer from now on)   |
 * | OPEN       | guest never ACKs within --connect-timeout  | CLOSED     | RST to libslirp and to the guest        |
 * | OPEN       | --tcp-idle-timeout without a frame         | CLOSED     | RST to libslirp and to the guest        |
 * | OPEN       | guest SYN on the established tuple         | CLOSED     | RST to libslirp (the guest's SYN opens  |
 * |            |                                            |            | a new flow at once)                     |
 * | OPEN       | both FINs acknowledged                     | OPEN       | RST to libslirp: drops its TIME_WAIT    |
 * | any        | libslirp closes the socket                 | CLOSED     | - (retired: the slot may be reclaimed)  |
 * | CLOSED     | grace (10 s) over, socket gone             | (freed)    | -                                       |
 * | CLOSED     | grace over, libslirp still holds socket    | CLOSED     | - (another grace period)                |
 * | CLOSED     | guest SYN on the tuple                     | (freed)    | the SYN opens a new flow                |
 *
 * UDP: OPEN from the first datagram; every datagram either way moves the
 * deadline to when libslirp would close its socket (240 s after the last
 * datagram, 10 s after a reply when the guest port's last datagram went
 * to port 53), plus a tick; then freed.
 *
 * Resets to the guest come from libslirp wherever it can send them itself
 * (slirp quirk connect_probe): the bridge only rewrites them.  It builds its
 * own only where libslirp would stay silent (bridge_abort_flow()).
 *
 * Ownership: flows are the table's; this file only moves them.  Limits: the
 * table's --max-flows; nothing here allocates.
 */

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <glib.h>
#include <libslirp.h>

#include "proxy-bridge/bridge_internal.h"

/* A SYN libslirp never opened a socket for is forgotten after this. */
#define FLOW_OUTBOUND_SYN_TIMEOUT_US (5 * G_USEC_PER_SEC)

struct flow *flow_outbound_open(struct bridge *br, struct rw_view *v, const struct flow_key *gkey,
				enum flow_kind kind, uint32_t taddr, uint16_t tport)
{
	bool udp = gkey->proto == IPPROTO_UDP;
	struct flow *f;
	int ret;

	/*
	 * libslirp keys UDP sockets by the guest's port alone, and a direct
	 * flow is not rewritten at all: both keep the guest's port.
	 */
	ret = flowtab_add(br->flows, gkey, taddr, tport,
			  udp || kind == FLOW_DIRECT ? FLOWTAB_KEEP_PORT : 0,
			  udp ? FLOW_OPEN : FLOW_SYN, &f);
	if (ret) {
		bridge_refuse_add(br, v, gkey, ret);
		return NULL;
	}
	f->kind = kind;
	flowtab_set_class(br->flows, f, kind);
	if (!udp) {
		flowtab_set_deadline(br->flows, f,
				     g_get_monotonic_time() + FLOW_OUTBOUND_SYN_TIMEOUT_US);
		br->syn_in_input = f;
	}
	bridge_to_stack(br, v, f);
	return f;
}

/*
 * A SYN on the tuple of an established flow: the guest has forgotten that
 * connection (it rebooted, or its side timed out).  No SYN belongs inside an
 * established connection, so end the old one in libslirp (and at the far
 * end); the caller then lets this SYN open a new flow.  The guest gets no
 * reset: its new connection owns the tuple now.
 */
void flow_outbound_guest_syn(struct bridge *br, struct flow *f)
{
	if (f->state != FLOW_OPEN || !f->established || f->gkey.proto != IPPROTO_TCP)
		return;
	br->stats.stale_resets++;
	bridge_debug_flow(br, f, "reopened by the guest, old connection reset");
	bridge_abort_flow(br, f, false);
}

void flow_outbound_fd_registered(struct bridge *br, struct flow *f, int fd)
{
	f->fd = fd;
	flowtab_set_state(br->flows, f, FLOW_CONNECTING);
	flowtab_set_deadline(br->flows, f, g_get_monotonic_time() + br->cfg.connect_timeout_us);
	netstack_tag_fd(br->ns, fd, f);
}

/*
 * The connection to the upstream failed.  libslirp itself resets the guest
 * once its probe fails (slirp quirk connect_probe); the bridge rewrites that
 * reset into the guest's view like any other frame, and only counts and
 * logs here.
 */
void flow_outbound_connect_failed(struct bridge *br, struct flow *f, int err)
{
	const struct flow_ops *ops = bridge_ops(f);
	char target[160];

	/* A guest's own destination refusing is its business, not our log's. */
	if (ops->upstream) {
		br->stats.connect_failed++;
		bridge_log_flow(br, &f->gkey, "%s: %s; the guest gets a reset",
				ops->upstream(br, f, target, sizeof(target)), g_strerror(err));
	}
	flowtab_set_state(br->flows, f, FLOW_CLOSED);
	flowtab_set_deadline(br->flows, f, g_get_monotonic_time() + BRIDGE_CLOSED_GRACE_US);
}

bool flow_outbound_connected(struct bridge *br, struct flow *f, int revents)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (f->state != FLOW_CONNECTING ||
	    !(revents & (SLIRP_POLL_OUT | SLIRP_POLL_ERR | SLIRP_POLL_HUP)))
		return false;
	if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		flow_outbound_connect_failed(br, f, err);
		return false;
	}
	return true;
}

void flow_outbound_opened(struct bridge *br, struct flow *f)
{
	/* The connect deadline also covers the guest's half of the handshake. */
	flowtab_set_state(br->flows, f, FLOW_OPEN);
	bridge_debug_flow(br, f, "open");
}

int flow_outbound_fd_events(struct bridge *br, struct flow *f, int revents)
{
	if (flow_outbound_connected(br, f, revents))
		flow_outbound_opened(br, f);
	return revents;
}

bool flow_outbound_expire(struct bridge *br, struct flow *f)
{
	const struct flow_ops *ops = bridge_ops(f);
	char target[160];

	switch (f->state) {
	case FLOW_SYN:
		br->stats.syn_timeouts++;
		return false;
	case FLOW_CONNECTING:
		/*
		 * The upstream never answered the SYN libslirp sent for us.
		 * Disconnecting the socket makes libslirp's connect probe
		 * fail, and libslirp resets the guest itself (slirp quirk
		 * connect_probe).
		 */
		br->stats.connect_timeouts++;
		if (ops->upstream)
			bridge_log_flow(br, &f->gkey, "no answer from %s within --connect-timeout; "
					"the guest gets a reset",
					ops->upstream(br, f, target, sizeof(target)));
		shutdown(f->fd, SHUT_RDWR);
		flowtab_set_state(br->flows, f, FLOW_CLOSED);
		flowtab_set_deadline(br->flows, f, g_get_monotonic_time() + BRIDGE_CLOSED_GRACE_US);
		return true;
	default:
		return bridge_expire_flow(br, f);
	}
}
