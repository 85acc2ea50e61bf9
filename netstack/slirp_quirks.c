/* slirp_quirks.c - the libslirp 4.7 behaviours meshslirp relies on: descriptions and the version check. */

#include "slirp_quirks.h"

#include <string.h>

#include <glib.h>

static const struct slirp_quirk_info slirp_quirks[] = {
	[SLIRP_QUIRK_REGISTER_IN_INPUT] = {
		"register_in_input",
		"tcp_fconnect() calls register_poll_fd() for a guest SYN's new host socket "
		"synchronously inside slirp_input(), before connect()",
		"the only way to learn which host socket belongs to a steered flow",
		"bridge.c bridge_fd_registered() (br->syn_in_input); flow_inbound.c "
		"flow_inbound_registered() tells accepted clients by their peer, which a socket "
		"not yet connected lacks; netstack_register_poll_fd()",
		"steered flows are never tagged: no PROXY header, the guest's bytes reach the "
		"sidecar headerless; an outbound socket could pass for an inbound client",
	},
	[SLIRP_QUIRK_SYNACK_AFTER_POLLOUT] = {
		"synack_after_pollout",
		"a guest SYN gets its SYN-ACK only when slirp_pollfds_poll() reports POLLOUT on "
		"the connecting socket (SS_ISFCONNECTING)",
		"the get-revents hook sees that POLLOUT first and writes the PROXY header before "
		"any guest byte can reach the socket",
		"flow_steer.c flow_steer_fd_events(); netstack.c's dispatch passes tagged events through "
		"hooks->fd_events",
		"guest data could precede the header, or a refused upstream would look accepted",
	},
	[SLIRP_QUIRK_CONNECT_PROBE] = {
		"connect_probe",
		"on POLLOUT of a connecting socket libslirp sends zero bytes; if that fails it "
		"resets the guest (tcp_input's cont_conn path: RST|ACK to the SYN)",
		"shutdown() of a connecting socket is how we make libslirp reset the guest for a "
		"failed header write or a connect timeout",
		"flow_steer.c flow_steer_fd_events() (header failed), flow_outbound.c "
		"flow_outbound_expire() (FLOW_CONNECTING)",
		"the guest waits for its own SYN timeout instead of a prompt reset",
	},
	[SLIRP_QUIRK_SEND_PACKET_PRIVATE_COPY] = {
		"send_packet_private_copy",
		"if_encap() builds each frame in a buffer of its own (on its stack, or a local ARP "
		"reply) and forgets it when send_packet returns",
		"frames to the guest are rewritten in place (const cast away), with no copy",
		"netstack_send_packet(); bridge.c bridge_stack_frame(); daemon_tx_frame() offloads",
		"a rewrite would corrupt libslirp's own state (an mbuf it resends) or fault on "
		"read-only memory",
	},
	[SLIRP_QUIRK_HOSTFWD_BACKLOG_1] = {
		"hostfwd_backlog_1",
		"tcpx_listen() calls listen(s, 1) for every hostfwd",
		"a burst of inbound clients loses SYNs and backs off for seconds; we raise it",
		"netstack.c netstack_find_listener() from netstack_expose_tcp()",
		"nothing if it grows; if the socket is no longer findable by its port, the "
		"warning at expose time says so",
	},
	[SLIRP_QUIRK_HOSTFWD_NOT_REGISTERED] = {
		"hostfwd_not_registered",
		"hostfwd listening sockets are never reported through register_poll_fd()",
		"the backlog fix, and the hold and rest of accepts, find them at the lowest "
		"descriptor free before the add, else in /proc/self/fd; the poll set need not "
		"track them",
		"netstack_find_listener(); the \"hostfwd gap\" in docs/ARCHITECTURE.md",
		"probably harmless if they start being reported: the bridge takes only sockets "
		"with a peer from fd_registered, and a listener has none",
	},
	[SLIRP_QUIRK_ACCEPT_THEN_SYN] = {
		"accept_then_syn",
		"tcp_connect() accepts a hostfwd client, calls register_poll_fd() and sends the "
		"guest its SYN within one poll callback",
		"the bridge records the inbound flow from the registration and holds that SYN "
		"until the PROXY header is read",
		"flow_inbound.c flow_inbound_registered(), flow_inbound_hold_frame()",
		"an inbound SYN of no known flow reaches the guest before its header is read",
	},
	[SLIRP_QUIRK_LOOPBACK_CLIENT_AS_GATEWAY] = {
		"loopback_client_as_gateway",
		"sotranslate_accept() shows a loopback hostfwd client as the gateway; a "
		"non-loopback one keeps its address and port",
		"a sidecar's connections (loopback) are the ones whose source comes from the "
		"PROXY header",
		"flow_inbound.c flow_inbound_registered()",
		"inbound flows are keyed under the wrong tuple: the held SYN is never matched",
	},
	[SLIRP_QUIRK_GATEWAY_TO_LOOPBACK] = {
		"gateway_to_loopback",
		"sotranslate_out4() connects a destination of the gateway (10.0.2.2) as 127.0.0.1",
		"steered flows are rewritten to gateway:proxy-port to reach a loopback sidecar; "
		"host loopback is refused unless --allow-host-loopback",
		"bridge.c bridge_new() (br->steer_taddr), egress.c (the gateway rule), options.c",
		"steering connects nowhere, or the egress rule guards the wrong address",
	},
	[SLIRP_QUIRK_BROADCAST_TO_LOOPBACK] = {
		"broadcast_to_loopback",
		"sotranslate_out4() connects 255.255.255.255 as 127.0.0.1",
		"a guest could reach the pod's loopback listeners through it",
		"egress.c: 255.255.255.255 is refused (BROADCAST) except DHCP",
		"nothing dangerous if it stops; the rule stays as defence",
	},
	[SLIRP_QUIRK_IP_REASS_CRASH] = {
		"ip_reass_crash",
		"the Debian 12 build of 4.7.0 crashes in ip_reass() on a last fragment (offset, "
		"no More Fragments) that comes before any other fragment of its datagram",
		"one guest frame would kill the daemon",
		"bridge.c drops every guest fragment before libslirp (BRIDGE_DROP_FRAGMENT)",
		"if fixed: the drop could be relaxed; if a policy lets fragments through, it "
		"must bring its own guard",
	},
	[SLIRP_QUIRK_MBUF_MTU_SIZED] = {
		"mbuf_mtu_sized",
		"m_get() allocates every mbuf with room for if_mtu (65520 here), however small "
		"the packet; ip_reass() holds each fragment in its own for up to 30 s, and "
		"tcp_reass() each TCP segment out of order until its hole fills",
		"a guest's small fragments, or single bytes sent beyond a hole, would each pin "
		"64 KiB: another reason fragments are dropped before libslirp, and a flow may "
		"have at most FLOW_REASS_MAX guest segments past libslirp's last ACK",
		"bridge.c BRIDGE_DROP_FRAGMENT and bridge_guest_reass_refused(); "
		"NETSTACK_SLIRP_MTU in netstack.h",
		"nothing if mbufs shrink; if they grow, the bounds' memory grows with them",
	},
	[SLIRP_QUIRK_NO_WINDOW_SCALING] = {
		"no_window_scaling",
		"TCP_DO_RFC1323 is off: no window scale option, windows of at most 65535",
		"one flow moves at most 64 KiB per turnaround; offload tuning sizes frames to it",
		"offload.h OFFLOAD_MSS_TSO; docs/ARCHITECTURE.md and design measurements",
		"the MSS clamp for TSO guests would cost throughput instead of gaining it",
	},
	[SLIRP_QUIRK_MAXSEG_32K] = {
		"maxseg_32k",
		"tcp_mss() caps the segment size at TCP_MAXSEG_MAX (32768) whatever the guest "
		"offers",
		"raising the guest's MSS to 65480 gets 32 KiB segments, one frame each",
		"offload.h offload_raise_mss(), OFFLOAD_MSS_RAISED; guestlink segmentation",
		"larger segments than the guest's TSO path or our buffers expect",
	},
	[SLIRP_QUIRK_CHECKSUMS_VERIFIED] = {
		"checksums_verified",
		"ip_input(), tcp_input(), udp_input() and icmp_input() verify every checksum in "
		"software and drop a bad packet silently",
		"partial checksums from a guest with offloads must be completed first; a rewrite "
		"must keep a corrupt frame corrupt (RFC 1624 updates)",
		"offload.c offload_from_guest() (NEEDS_CSUM); rewrite.c; common/csum.c",
		"if it stopped checking, corrupt frames would open flows; if it checked "
		"differently, offloaded frames would be dropped",
	},
	[SLIRP_QUIRK_GUEST_ICMP_ERRORS_FREED] = {
		"guest_icmp_errors_freed",
		"icmp_input() frees ICMP errors from the guest (unreachable, time exceeded, "
		"parameter problem, source quench, redirect) without acting on them",
		"the bridge need not rewrite the headers they quote",
		"bridge.c bridge_guest_frame(), RW_ICMP_ERROR",
		"if libslirp started acting on them, a steered flow's error would quote the "
		"guest's view and match nothing: rewriting would have to come back",
	},
	[SLIRP_QUIRK_DHCP_NO_MTU_OPTION] = {
		"dhcp_no_mtu_option",
		"bootp.c's OFFER and ACK carry no Interface MTU option (26), and END is where "
		"the options stop",
		"the guest's MTU is ours to set, independent of libslirp's 65520",
		"guestlink.c guestlink_dhcp_set_mtu() from netstack_tx_fitted()",
		"a second option 26 from libslirp (65520) could win in the guest",
	},
	[SLIRP_QUIRK_NO_WINDOW_UPDATE] = {
		"no_window_update",
		"tcp_output() sends a bare window update only when the window grew by two "
		"segments or by half the receive buffer; with 32 KiB segments (maxseg_32k) and "
		"windows of at most 65535 (no_window_scaling) neither happens, so a window that "
		"closed reopens unannounced",
		"a guest sending faster than the sidecar reads would stall for its persist timer "
		"(200 ms, doubling) each time libslirp's buffer fills",
		"bridge.c bridge_fd_events(), bridge_send_window_probes()",
		"if libslirp started announcing it, the probes would only be redundant; if it "
		"stopped answering an old sequence number with an ACK, the stalls come back",
	},
	[SLIRP_QUIRK_URGENT_POINTER_TRUSTED] = {
		"urgent_pointer_trusted",
		"tcp_input() takes a guest segment's urgent pointer as the urgent byte count "
		"(so_urgc) whether or not that many bytes arrived, and sosendoob() then sends "
		"so_urgc bytes (up to 2048) with MSG_OOB from the receive buffer, past what it "
		"holds, and subtracts them from sb_cc, which wraps; towards the guest, "
		"sorecvoob() points the urgent pointer one byte short of the urgent byte",
		"a guest could send the peer (the sidecar, or any server of a direct flow) up to "
		"2 KiB of the daemon's heap per segment, then gigabytes of stale buffer as the "
		"wrapped count drains, corrupting its own upload; a guest reading without "
		"SO_OOBINLINE would lose the byte before the urgent one",
		"bridge.c bridge_guest_frame() and bridge_stack_frame() clear URG and the urgent "
		"pointer (rewrite.c rw_tcp_clear_urgent()): the urgent byte travels inline both ways",
		"nothing if libslirp learns to bound the pointer; the clearing stays either way, "
		"as the kernel path's relay drops urgent data too and no mesh protocol uses it",
	},
	[SLIRP_QUIRK_READ_ON_ERROR] = {
		"read_on_error",
		"slirp_pollfds_poll() calls soread() on POLL_ERR or POLL_HUP even when it did not "
		"ask to read (it asks only while its buffer towards the guest is less than half "
		"full, but asks POLL_ERR with POLL_OUT), and soread() asserts room in that buffer",
		"a server that resets while the buffer is exactly full and guest data waits for "
		"it aborted the daemon (SIGABRT), taking every flow of the guest with it",
		"netstack.c netstack_source_dispatch(): without read interest, ERR, HUP and PRI "
		"are turned into POLL_OUT, whose write meets the error and closes the connection",
		"nothing if libslirp checks for room; if it stopped reading on ERR, the mapping "
		"would only be redundant",
	},
	[SLIRP_QUIRK_REASS_WRAPS_TO_ZERO] = {
		"reass_wraps_to_zero",
		"tcp_reass() hands queued segments over while the next one starts at rcv_nxt, "
		"testing for the queue's end with the connection record itself instead of its "
		"list head; when rcv_nxt lands on 0 the head's zeroed sequence field matches and "
		"the record is taken for a segment (fixed upstream after 4.7.0)",
		"a guest whose bytes wrap to sequence 0 out of order, or at all after libslirp's "
		"FIN, crashed the daemon (SIGSEGV)",
		"bridge.c bridge_guest_seq_wrap(): a segment ending at or crossing 0 reaches "
		"libslirp only in order with nothing queued, else it is dropped (the guest sends "
		"it again) or, with libslirp's side closing, the flow is reset",
		"nothing if the loop is fixed; the guard then costs a rare retransmission",
	},
	[SLIRP_QUIRK_DHCP_EXHAUSTED_LEAK] = {
		"dhcp_exhausted_leak",
		"bootp_reply() hands each new client hardware address one of 16 leases, never "
		"frees one, and once all are held returns without freeing the reply buffer it "
		"took: 64 KiB per DISCOVER from an address that holds none",
		"a guest naming 17 addresses could grow the daemon's heap without bound",
		"bridge.c bridge_guest_dhcp_refused(): the first address the guest's DHCP "
		"requests name is pinned, others (and requests too short to name one) dropped",
		"nothing if libslirp frees the buffer; a guest that changes its MAC still gets "
		"no lease until the daemon restarts",
	},
	[SLIRP_QUIRK_SYN_OPTIONS_OVERREAD] = {
		"syn_options_overread",
		"tcp_dooptions() checks that an option's kind starts inside the header, not "
		"that its length does: an MSS option in a SYN's last two header bytes has its "
		"value read from the two bytes after them",
		"a guest could make libslirp take an MSS from its payload or, with none, from "
		"stale memory (seen by the guest in the segment sizes it gets)",
		"bridge.c bridge_guest_tcp_refused(): a SYN whose options run past its header "
		"is dropped (rw_tcp_options_sound())",
		"nothing if the bound is checked; no conforming TCP sends such a SYN",
	},
	[SLIRP_QUIRK_SYN_MSS_RESETS_BUFFERS] = {
		"syn_mss_resets_buffers",
		"tcp_input() parses options in every state but LISTEN before it judges the "
		"segment, and an MSS option on a SYN makes tcp_mss() reallocate both socket "
		"buffers empty, in an established connection too",
		"a guest sending an old SYN|ACK again would make libslirp lose the bytes it "
		"held for either side, and warn on every later ACK of bytes it no longer has",
		"bridge.c bridge_guest_tcp_refused(): a SYN on a flow whose handshake the "
		"guest has done is dropped",
		"nothing if options are taken only in the handshake; the drop then only spares "
		"libslirp a duplicate it would ignore",
	},
	[SLIRP_QUIRK_RESET_ANSWERED] = {
		"reset_answered",
		"tcp_input()'s dropwithreset answers a segment for no connection with a reset "
		"without first checking, as BSD does, that the segment is not a reset itself",
		"the resets the bridge sends libslirp to end a connection may meet none (already "
		"gone, or never there): libslirp's answer must not reach the guest",
		"bridge.c bridge_cut_time_wait() and bridge_tcp_no_flow(), flow_inbound.c's "
		"duplicate removal: br->swallow drops libslirp's answers on that tuple",
		"nothing if the check is added; the swallow then finds nothing to drop",
	},
};

G_STATIC_ASSERT(G_N_ELEMENTS(slirp_quirks) == SLIRP_QUIRK_COUNT);

const struct slirp_quirk_info *slirp_quirk_info(enum slirp_quirk q)
{
	g_assert((unsigned int)q < SLIRP_QUIRK_COUNT);
	return &slirp_quirks[q];
}

bool slirp_quirks_check_version(const char *running)
{
	if (running && !strcmp(running, SLIRP_QUIRKS_TESTED_VERSION)) {
		g_debug("libslirp %s: the version slirp_quirks.h was checked against", running);
		return true;
	}
	g_warning("libslirp %s, but meshslirp was tested with %s: the behaviours in "
		  "netstack/slirp_quirks.h may have changed (run test_slirp_quirks against it)",
		  running ? running : "(unknown)", SLIRP_QUIRKS_TESTED_VERSION);
	return false;
}
