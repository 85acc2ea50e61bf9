/* fuzz_bridge.c - libFuzzer target: the proxy-bridge's guest->stack and stack->guest paths on a real libslirp. */

/*
 * Theory of operation
 *
 * Each input gets a fresh netstack (a real libslirp) with the real bridge
 * installed as its hooks, wired as daemon.c wires them but without a
 * backend: frames for the guest end in a checking sink.  The process lives
 * in a private, empty network namespace (LLVMFuzzerInitialize unshares it
 * and brings up lo; without root it refuses to run), so the sockets
 * libslirp opens can reach nothing but this namespace's loopback, where the
 * target keeps a "sidecar" listening on 127.0.0.1:15001.
 *
 * Input: [config byte] then records [type][length: 2 bytes BE][payload].
 *   config: bit 0 direct mode (else steer TCP to 127.0.0.1:15001), bits 1-2
 *           inbound PROXY mode (off, optional, required), bit 3 PROXY v1,
 *           bit 4 --dns-upstream 127.0.0.1:15053, bit 5 include/exclude
 *           lists, bit 6 a flow table of 2 slots (else 64), bit 7
 *           --allow-host-loopback.
 *   type 0: a frame from the guest: netstack_input(), i.e. the bridge's
 *           guest_frame hook, then libslirp itself.
 *   type 1: a frame "from libslirp": the bridge's stack_frame hook.
 *   type 2: run the main loop (1-4 non-blocking iterations): libslirp
 *           polls its sockets, the bridge writes PROXY headers, ...
 *   type 3: a client connects to the exposed port 127.0.0.1:8080 (-> guest
 *           port 80) and sends the payload after its first byte, which
 *           chooses its source: 127.0.0.1 or 127.0.0.2 (bit 0), port 41000 or
 *           41001 (bit 1) - two clients can look the same to libslirp.
 *   type 4: client payload[0] % n sends the rest of the payload, or with
 *           nothing more to send shuts down its write side.
 *   type 5: advance the clock (20 ms, 0.5 s, 1 s, 5.1 s or 31 s by
 *           payload[0]), make the bridge's timers due, iterate: header
 *           timeouts, the reset queue, flow expiry, libslirp's TCP timers.
 *
 * Checked, besides what ASan, UBSan and LSan see:
 *   - every hook call: the bridge rewrites in place only addresses, ports and
 *     checksums of TCP/UDP frames and ICMP errors, and the addresses and
 *     header checksum of later IPv4 fragments (of a datagram whose first
 *     fragment it rewrote), and clears TCP's URG with its urgent pointer
 *     (every other flag kept), never anything else and never another kind of
 *     frame; each checksum residual is unchanged
 *     (computed from scratch, see fuzz_view.h), so it can neither break a
 *     valid frame nor repair a corrupt one;
 *   - every frame that reaches the guest (from libslirp through the hook, or
 *     built by the bridge: resets, released SYNs) parses and has valid IPv4,
 *     TCP/UDP and ICMP checksums;
 *   - the flow table's per-state counts always add up to its size;
 *   - the egress rule, against an independent statement of it
 *     (oracle_pod_local()): no TCP segment, UDP datagram or ICMP echo
 *     request of no known flow reaches libslirp through the hook (TCP
 *     without SYN reaches it never: the bridge's own reset on its tuple is
 *     injected, and opens nothing) when its destination is
 *     local to the pod (loopback, unspecified, broadcast, multicast or
 *     reserved, the pod's addresses FUZZ_POD_ADDR*, the guest network but
 *     DHCP and DNS, the gateway unless host loopback is allowed, the
 *     sidecar's ports always).
 *
 * Determinism: this file defines RAND_bytes(), interposing OpenSSL's for
 * this executable, so the flow table's hash key is zero and stack ports are
 * predictable (the first one towards a target is 1024, see
 * flowtab_pick_port()): records of type 1 can then name a steered flow, and
 * an input replays the same way.  libslirp's initial sequence numbers are
 * deterministic per fresh instance.  FUZZ_BRIDGE_TRACE=1 prints every frame
 * sent to the guest, which is how the seeds' later frames were written.
 *
 * Time: this file also defines g_get_monotonic_time() (GLib's is
 * CLOCK_MONOTONIC in microseconds): our code - netstack, bridge, and
 * through the netstack's clock_get_ns libslirp's TCP timers and packet
 * expiry - sees the real clock plus an offset that records of type 5
 * advance.  GLib itself calls its own copy (it is linked with
 * -Bsymbolic-functions), so its timeout sources keep real time: type 5 makes
 * the bridge's two timers due with g_source_set_ready_time().  No input
 * ever sleeps.
 *
 * State is fresh per input: a netstack, a bridge, the exposed port's
 * listener.  That is affordable - an empty input costs about 0.25 ms with
 * ASan (4,000 exec/s; typical inputs run at about 1,000 exec/s) - and keeps
 * inputs from influencing each other.  Client sockets and the sidecar's
 * accepted connections are closed with SO_LINGER 0 before the netstack is
 * freed, so no TIME_WAIT piles up over millions of runs.
 *
 * Known libslirp 4.7 leak, avoided: slirp_cleanup() -> m_cleanup() frees
 * the packets queued on if_fastq and if_batchq, but not the further packets
 * of the same session chained behind them (ifs_next).  Packets still
 * waiting for ARP resolution when an instance is freed therefore leak (two
 * or more towards one unresolved guest address, e.g. after the guest sent
 * no ARP).  The daemon frees its only instance at exit, where this costs
 * nothing; per-input instances here would report it constantly.  So before
 * freeing, fb_teardown() lets virtual time pass in 1.5 s steps until
 * libslirp has been quiet for three steps: each unresolved packet is sent
 * an ARP request, expires after 1 s and is freed by libslirp itself
 * (if_start()).  An LSan suppression is no option: GLib has no frame
 * pointers, so the allocation stacks end in g_malloc().
 */

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <glib.h>
#include <openssl/rand.h>

#include "netstack/netstack.h"
#include "proxy-bridge/bridge.h"
#include "proxy-bridge/bridge_internal.h"
#include "proxy-bridge/rewrite.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/fuzz/fuzz_view.h"

#define SIDECAR_PORT 15001
#define DNS_UP_PORT 15053
#define EXPOSE_HOST_PORT 8080
#define EXPOSE_GUEST_PORT 80
#define CLIENT_PORT_BASE 41000
#define CLIENTS_MAX 4
/* The pod's own addresses as the bridge is told them (the namespace has only lo). */
#define FUZZ_POD_ADDR1 "10.1.2.3"
#define FUZZ_POD_ADDR2 "198.18.0.2"

/* Teardown: steps of 1.5 s until libslirp sent nothing for 3 of them (at most 1000). */
#define FLUSH_STEP_US 1500000
#define FLUSH_QUIET 3
#define FLUSH_MAX 1000

/* Steps of the virtual clock for records of type 5, in microseconds. */
static const int64_t clock_steps_us[] = { 20000, 500000, 1000000, 5100000, 31000000 };

struct fuzz_bridge {
	struct netstack *ns;
	struct bridge *br;
	bool allow_host_loopback;
	struct addrset pod;
	const struct netstack_hooks *real;
	void *real_opaque;
	size_t max_flows;
	GArray *expose, *include, *exclude, *deny;
	int clients[CLIENTS_MAX];
	size_t nclients;
};

static int sidecar_fd = -1;
static bool trace;
static uint64_t frames_to_guest;  /* every frame the sink saw */

static int64_t clock_offset_us, clock_pending_us;

int RAND_bytes(unsigned char *buf, int num)
{
	memset(buf, 0, (size_t)num);
	return 1;
}

/*
 * A step is taken right *after* the next reading, so that it falls inside
 * the next loop iteration: the netstack source's prepare() reads the clock
 * for libslirp's deadline, its check() then sees the deadline passed and
 * dispatches, and libslirp's timers run.
 */
gint64 g_get_monotonic_time(void)
{
	struct timespec ts;
	gint64 now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (gint64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + clock_offset_us;
	clock_offset_us += clock_pending_us;
	clock_pending_us = 0;
	return now;
}


static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	FUZZ_CHECK(inet_pton(AF_INET, s, &a) == 1);
	return a;
}

/* A heap copy of exactly @len bytes (ASan sees any access past them). */
static uint8_t *dup_exact(const void *p, size_t len)
{
	uint8_t *copy = g_malloc(len ? len : 1);

	if (len)
		memcpy(copy, p, len);
	return copy;
}

static void trace_frame(const char *what, const uint8_t *f, size_t len)
{
	fprintf(stderr, "%s %zu:", what, len);
	for (size_t i = 0; i < len; i++)
		fprintf(stderr, "%02x", f[i]);
	fputc('\n', stderr);
}

/* A frame the guest receives: well formed, every checksum valid. */
static int sink_tx_frame(uint8_t *frame, size_t len, void *opaque)
{
	uint8_t *f = dup_exact(frame, len);
	struct rw_view v;
	uint64_t sum;

	(void)opaque;
	frames_to_guest++;
	if (trace)
		trace_frame("to-guest", f, len);
	rw_parse(f, len, &v);
	FUZZ_CHECK(v.kind != RW_MALFORMED);
	if (v.kind != RW_NOT_IPV4) {
		sum = fuzz_sum_be16(v.ip, v.ihl);
		FUZZ_CHECK(sum && fuzz_residual(sum) == 0);
	}
	/* A first fragment's transport checksum covers bytes in later fragments. */
	if (v.kind != RW_NOT_IPV4 && !(fuzz_rd16(v.ip + 6) & 0x3fff)) {
		if (v.kind == RW_TRANSPORT && (v.proto == IPPROTO_TCP || fuzz_rd16(v.l4 + 6)))
			FUZZ_CHECK(fuzz_l4_residual(v.ip, v.proto, v.l4, v.l4_len) == 0);
		if (v.proto == IPPROTO_ICMP)
			FUZZ_CHECK(fuzz_residual(fuzz_sum_be16(v.l4, v.l4_len)) == 0);
	}
	g_free(f);
	return 0;
}

static void sink_tx_flush(void *opaque)
{
	(void)opaque;
}

static const struct netstack_ops sink_ops = {
	.tx_frame = sink_tx_frame,
	.tx_flush = sink_tx_flush,
};

/* Call a frame hook of the bridge and check what it did to the frame. */
static enum netstack_verdict checked_frame_hook(enum netstack_verdict (*hook)(uint8_t *, size_t,
									     void *),
						uint8_t *frame, size_t len, void *opaque)
{
	uint8_t *orig = dup_exact(frame, len);
	uint8_t *mask = g_malloc0(len ? len : 1);
	struct fuzz_residuals r0, r1;
	struct rw_view v, after;
	enum netstack_verdict verdict;

	bool tcp;

	rw_parse(frame, len, &v);
	fuzz_residuals_of(&v, &r0);
	fuzz_mark_rewritable(&v, frame, mask);
	/* URG and the urgent pointer may go (slirp quirk urgent_pointer_trusted), checked below. */
	tcp = v.kind == RW_TRANSPORT && v.proto == IPPROTO_TCP;
	if (tcp) {
		mask[v.l4 + 13 - frame] = FUZZ_FIELD;
		mask[v.l4 + 18 - frame] = mask[v.l4 + 19 - frame] = FUZZ_FIELD;
	}

	verdict = hook(frame, len, opaque);
	FUZZ_CHECK(verdict == NETSTACK_PASS || verdict == NETSTACK_CONSUMED);

	rw_parse(frame, len, &after);
	fuzz_check_same_view(&v, &after);
	fuzz_residuals_of(&after, &r1);
	fuzz_check_residuals(&r0, &r1);
	fuzz_check_changes(frame, orig, mask, len, false);
	if (tcp) {
		size_t off = (size_t)(v.l4 - frame);
		bool urgent = orig[off + 13] & 0x20;

		bool cleared = !(frame[off + 13] & 0x20);

		/* Whatever goes on (a guest fragment is dropped first) has URG cleared. */
		FUZZ_CHECK(cleared || verdict == NETSTACK_CONSUMED);
		FUZZ_CHECK((frame[off + 13] | 0x20) == (orig[off + 13] | 0x20));
		FUZZ_CHECK(urgent && cleared ? fuzz_rd16(frame + off + 18) == 0 :
					       !memcmp(frame + off + 18, orig + off + 18, 2));
	}
	g_free(mask);
	g_free(orig);
	return verdict;
}

/*
 * The egress rule, stated again without egress.c: is @proto to @d:@port
 * (host order) local to the fuzzed pod?
 */
static bool oracle_pod_local(const struct fuzz_bridge *fb, uint8_t proto, uint32_t d,
			     uint16_t port)
{
	bool sidecar = (port >= 15000 && port <= 15090) || port == SIDECAR_PORT ||
		       port == DNS_UP_PORT;
	bool icmp = proto == IPPROTO_ICMP;

	if (d == 0x0a000202)                                   /* the gateway */
		return !icmp && !(proto == IPPROTO_UDP && port == 67) &&
		       (!fb->allow_host_loopback || sidecar);
	if (d == 0x0a000203)                                   /* the DNS address */
		return !icmp && port != 53;
	if (d == 0xffffffff)
		return !(proto == IPPROTO_UDP && port == 67);
	if ((d >> 8) == 0x0a0002 || (d >> 24) == 127 || (d >> 24) == 0 || (d >> 28) >= 0xe)
		return true;
	if (d == 0xa9fe077f)                                   /* 169.254.7.127, denied */
		return true;
	return addrset_contains(&fb->pod, htonl(d));
}

/*
 * Could @v make libslirp open a socket, and is it of no flow the bridge knows?
 * Then the bridge must not pass it on to a pod-local destination.
 */
static bool oracle_opener_to_local(const struct fuzz_bridge *fb, const struct rw_view *v)
{
	struct rw_tuple t;
	struct flow_key gkey;
	uint32_t saddr, daddr;

	if (v->kind == RW_TRANSPORT && !rw_is_fragment(v)) {
		rw_tuple(v, &t);
		gkey = flow_key_make(t.proto, t.saddr, t.sport, t.daddr, t.dport);
		if (flowtab_lookup_guest(fb->br->flows, &gkey))
			return false;
		return oracle_pod_local(fb, t.proto, ntohl(t.daddr), ntohs(t.dport));
	}
	if (v->kind == RW_OTHER && v->proto == IPPROTO_ICMP && v->l4_len >= 8 && v->l4[0] == 8 &&
	    !rw_is_fragment(v)) {
		rw_outer_addrs(v, &saddr, &daddr);
		return oracle_pod_local(fb, IPPROTO_ICMP, ntohl(daddr), 0);
	}
	return false;
}

static enum netstack_verdict wrap_guest_frame(uint8_t *frame, size_t len, void *opaque)
{
	struct fuzz_bridge *fb = opaque;
	enum netstack_verdict verdict;
	struct rw_view v;
	bool forbidden;

	rw_parse(frame, len, &v);
	forbidden = oracle_opener_to_local(fb, &v);
	verdict = checked_frame_hook(fb->real->guest_frame, frame, len, fb->real_opaque);
	if (forbidden && verdict == NETSTACK_PASS) {
		fprintf(stderr, "fuzz_bridge: a frame to a pod-local destination reached libslirp\n");
		FUZZ_CHECK(false);
	}
	return verdict;
}

static void wrap_guest_frame_done(void *opaque)
{
	struct fuzz_bridge *fb = opaque;

	fb->real->guest_frame_done(fb->real_opaque);
}

static enum netstack_verdict wrap_stack_frame(uint8_t *frame, size_t len, void *opaque)
{
	struct fuzz_bridge *fb = opaque;

	return checked_frame_hook(fb->real->stack_frame, frame, len, fb->real_opaque);
}

static void wrap_fd_registered(int fd, void *opaque)
{
	struct fuzz_bridge *fb = opaque;

	fb->real->fd_registered(fd, fb->real_opaque);
}

static void wrap_fd_closed(int fd, void *tag, void *opaque)
{
	struct fuzz_bridge *fb = opaque;

	fb->real->fd_closed(fd, tag, fb->real_opaque);
}

static int wrap_fd_events(int fd, int revents, void *tag, void *opaque)
{
	struct fuzz_bridge *fb = opaque;

	return fb->real->fd_events(fd, revents, tag, fb->real_opaque);
}

static void wrap_poll_done(void *opaque)
{
	struct fuzz_bridge *fb = opaque;

	fb->real->poll_done(fb->real_opaque);
}

static const struct netstack_hooks wrap_hooks = {
	.poll_done = wrap_poll_done,
	.guest_frame = wrap_guest_frame,
	.guest_frame_done = wrap_guest_frame_done,
	.stack_frame = wrap_stack_frame,
	.fd_registered = wrap_fd_registered,
	.fd_closed = wrap_fd_closed,
	.fd_events = wrap_fd_events,
};

static void fb_setup(struct fuzz_bridge *fb, uint8_t config)
{
	struct netstack_config nc = {
		.network = ip4("10.0.2.0"), .netmask = ip4("255.255.255.0"),
		.gateway = ip4("10.0.2.2"), .dns = ip4("10.0.2.3"), .guest = ip4("10.0.2.15"),
		.mtu = 1500,
	};
	struct bridge_config bc = {
		.policy = {
			.network = nc.network, .netmask = nc.netmask,
			.gateway = nc.gateway, .dns = nc.dns,
			.steer = !(config & 1),
			.proxy_addr = ip4("127.0.0.1"), .proxy_port = SIDECAR_PORT,
			.dns_upstream = !!(config & 0x10),
			.dns_up_addr = ip4("127.0.0.1"), .dns_up_port = DNS_UP_PORT,
		},
		.version = (config & 8) ? PROXY_V1 : PROXY_V2,
		.proxy_source = ip4("10.1.2.3"),
		.max_flows = (config & 0x40) ? 2 : 64,
		.guest = nc.guest,
		.inbound_mode = (config >> 1 & 3) == 0 ? BRIDGE_INBOUND_OFF :
				(config >> 1 & 3) == 1 ? BRIDGE_INBOUND_OPTIONAL : BRIDGE_INBOUND_REQUIRED,
		.header_timeout_us = 20 * 1000,
		.allow_host_loopback = !!(config & 0x80),
		.inbound_trust_pod = true,
	};
	struct bridge_expose e = { .host_port = EXPOSE_HOST_PORT, .guest_port = EXPOSE_GUEST_PORT };
	int ret;

	memset(fb, 0, sizeof(*fb));
	fb->max_flows = bc.max_flows;
	fb->allow_host_loopback = bc.allow_host_loopback;
	addrset_add(&fb->pod, ip4(FUZZ_POD_ADDR1).s_addr);
	addrset_add(&fb->pod, ip4(FUZZ_POD_ADDR2).s_addr);
	bc.pod_addrs = &fb->pod;
	fb->expose = g_array_new(FALSE, FALSE, sizeof(struct bridge_expose));
	fb->include = g_array_new(FALSE, FALSE, sizeof(struct policy_cidr));
	fb->exclude = g_array_new(FALSE, FALSE, sizeof(struct policy_cidr));
	g_array_append_val(fb->expose, e);
	if (config & 0x20) {
		struct policy_cidr inc, exc;

		FUZZ_CHECK(policy_cidr_parse("198.18.0.0/15", &inc) == 0);
		FUZZ_CHECK(policy_cidr_parse("198.18.5.0/24", &exc) == 0);
		g_array_append_val(fb->include, inc);
		g_array_append_val(fb->exclude, exc);
		bc.policy.exclude_ports[8443 / 8] |= 1u << (8443 % 8);
	}
	bc.policy.include = fb->include;
	bc.policy.exclude = fb->exclude;
	bc.expose = fb->expose;
	/* The daemon's default deny list: Istio ambient's probe address. */
	fb->deny = g_array_new(FALSE, FALSE, sizeof(struct policy_cidr));
	{
		struct policy_cidr probe;

		FUZZ_CHECK(policy_cidr_parse(EGRESS_AMBIENT_PROBE_CIDR, &probe) == 0);
		g_array_append_val(fb->deny, probe);
	}
	bc.deny = fb->deny;

	ret = netstack_new(&nc, &sink_ops, fb, &fb->ns);
	FUZZ_CHECK(ret == 0);
	ret = bridge_new(&bc, fb->ns, &fb->br);
	FUZZ_CHECK(ret == 0);
	ret = netstack_expose_tcp(fb->ns, ip4("127.0.0.1"), EXPOSE_HOST_PORT, EXPOSE_GUEST_PORT);
	if (ret)
		fprintf(stderr, "fuzz_bridge: cannot expose port %d: %s\n", EXPOSE_HOST_PORT,
			strerror(-ret));
	FUZZ_CHECK(ret == 0);
	/* Put the checking wrappers between the netstack and the real hooks. */
	fb->real = netstack_get_hooks(fb->ns, &fb->real_opaque);
	FUZZ_CHECK(fb->real && fb->real_opaque == fb->br);
	netstack_set_hooks(fb->ns, &wrap_hooks, fb);
}

static void iterate(int n)
{
	for (int i = 0; i < n; i++)
		g_main_context_iteration(NULL, FALSE);
}

/* Make the GLib timeout source @id of the default context due now. */
static void make_due(guint id)
{
	GSource *src = id ? g_main_context_find_source_by_id(NULL, id) : NULL;

	if (src)
		g_source_set_ready_time(src, 0);
}

/* Close @fd so that it sends a reset and leaves no TIME_WAIT behind. */
static void close_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Take and reset every connection libslirp made to the sidecar. */
static void sidecar_drain(void)
{
	int fd;

	while ((fd = accept4(sidecar_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		close_reset(fd);
}

/* Let libslirp send or expire everything it still queues (see the top comment). */
static void fb_flush(struct fuzz_bridge *fb)
{
	int quiet = 0;

	for (int i = 0; i < FLUSH_MAX && quiet < FLUSH_QUIET; i++) {
		uint64_t before = frames_to_guest;

		clock_pending_us += FLUSH_STEP_US;
		make_due(fb->br->expire_timer);
		make_due(fb->br->in.timer);
		iterate(1);
		quiet = frames_to_guest == before ? quiet + 1 : 0;
	}
}

static void fb_teardown(struct fuzz_bridge *fb)
{
	for (size_t i = 0; i < fb->nclients; i++)
		close_reset(fb->clients[i]);
	sidecar_drain();
	fb_flush(fb);
	sidecar_drain();
	bridge_free(fb->br);
	netstack_free(fb->ns);
	sidecar_drain();
	g_array_unref(fb->expose);
	g_array_unref(fb->include);
	g_array_unref(fb->exclude);
	g_array_unref(fb->deny);
}

static void advance_clock(struct fuzz_bridge *fb, const uint8_t *p, size_t len)
{
	clock_pending_us += clock_steps_us[len ? p[0] % G_N_ELEMENTS(clock_steps_us) : 0];
	make_due(fb->br->expire_timer);
	make_due(fb->br->in.timer);
	iterate(2);
}

static void client_connect(struct fuzz_bridge *fb, const uint8_t *p, size_t len)
{
	uint8_t pick = len ? p[0] : 0;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK + (pick & 1)) };
	int fd, one = 1;

	if (fb->nclients == CLIENTS_MAX)
		return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0);
	/*
	 * A fixed client port keeps the guest's view of the flow reproducible;
	 * two clients may share it (libslirp then sees one tuple twice).
	 */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons((uint16_t)(CLIENT_PORT_BASE + (pick >> 1 & 1)));
	(void)!bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(EXPOSE_HOST_PORT);
	if (len) {
		p++;
		len--;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close_reset(fd);
		return;
	}
	fb->clients[fb->nclients++] = fd;
	if (len)
		(void)!send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	iterate(2);
}

static void client_act(struct fuzz_bridge *fb, const uint8_t *p, size_t len)
{
	int fd;

	if (!fb->nclients || !len)
		return;
	fd = fb->clients[p[0] % fb->nclients];
	if (len > 1)
		(void)!send(fd, p + 1, len - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	else
		shutdown(fd, SHUT_WR);
	iterate(2);
}

static void check_flow_counts(const struct fuzz_bridge *fb)
{
	size_t total = 0;

	for (int s = FLOW_FREE; s < FLOW_STATE_COUNT; s++)
		total += bridge_flow_count(fb->br, (enum flow_state)s);
	FUZZ_CHECK(total == fb->max_flows);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(SIDECAR_PORT) };
	int one = 1;

	(void)argc;
	(void)argv;
	trace = getenv("FUZZ_BRIDGE_TRACE") != NULL;
	if (!trace)
		fuzz_quiet_logs();
	fuzz_private_netns("fuzz_bridge");
	/* As daemon/main.c: libslirp send()s on host sockets without MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	g_main_context_default();

	sidecar_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(sidecar_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sidecar_fd < 0 || bind(sidecar_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(sidecar_fd, 128) < 0) {
		fprintf(stderr, "fuzz_bridge: cannot listen on 127.0.0.1:%d: %s\n", SIDECAR_PORT,
			strerror(errno));
		exit(1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 1, *end = data + size;
	struct fuzz_bridge fb;

	if (size < 1)
		return 0;
	fb_setup(&fb, data[0]);
	while (end - p >= 3) {
		uint8_t type = p[0];
		size_t len = MIN((size_t)(p[1] << 8 | p[2]), (size_t)(end - p - 3));
		const uint8_t *payload = p + 3;
		uint8_t *frame;

		p += 3 + len;
		switch (type % 6) {
		case 0:
		case 1:
			frame = dup_exact(payload, len);
			if (type % 6 == 0)
				netstack_input(fb.ns, frame, len);
			else
				wrap_stack_frame(frame, len, &fb);
			g_free(frame);
			break;
		case 2:
			iterate(1 + (len ? payload[0] % 4 : 0));
			break;
		case 3:
			client_connect(&fb, payload, len);
			break;
		case 4:
			client_act(&fb, payload, len);
			break;
		default:
			advance_clock(&fb, payload, len);
			break;
		}
		check_flow_counts(&fb);
	}
	fb_teardown(&fb);
	return 0;
}
