/* inproc.h - play QEMU against an in-process daemon: frames over its stream socket, bounded waits. */
#ifndef MESHSLIRP_TESTS_INPROC_H
#define MESHSLIRP_TESTS_INPROC_H

/*
 * The daemon (daemon_start(), the wiring main uses) runs on this thread's
 * GLib main context; the test iterates the context between socket
 * operations.  Every wait is bounded by INPROC_WAIT_MS.
 *
 * Two ways to play QEMU, chosen by the environment so that meson runs the
 * same test binary over both backends a guest can use:
 *   INPROC_BACKEND=stream (default)  the length-prefixed stream socket (--socket);
 *   INPROC_BACKEND=vhost-user        the daemon's vhost-user backend (--vhost-user),
 *                                    driven by tests/lib/vufront as QEMU and a Linux
 *                                    guest's virtio-net driver would, rings in a memfd;
 *                                    with INPROC_VU_FEATURES=offload the driver also
 *                                    takes checksum and TCPv4 segmentation offloads both
 *                                    ways (frames it receives with metadata are checked
 *                                    and made plain as a guest's stack would take them).
 * inproc_send() and inproc_recv() hide the difference; tests of one transport's own
 * behaviour ask inproc_is_stream() and skip otherwise.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "daemon/daemon.h"
#include "tests/lib/vufront.h"

#define INPROC_WAIT_MS 5000

struct inproc {
	char *dir;
	char *sock;
	struct ms_config cfg;
	struct daemon d;
	int qemu;                  /* our end of the stream socket; -1 over vhost-user */
	struct vufront *vf;        /* the front-end over vhost-user; NULL over the stream */
	struct vufront_rxframe rxf;
	uint8_t rbuf[1 << 18];     /* frames from the daemon not yet taken: 4-byte length, frame */
	size_t rlen;
	/* Over vhost-user with offloads: frames received with each kind of metadata. */
	uint64_t vu_rx_gso, vu_rx_csum_partial, vu_rx_data_valid;
};

/* inproc_is_stream() - whether this run plays QEMU over the stream socket. */
bool inproc_is_stream(const struct inproc *f);

/*
 * inproc_start() - parse "--socket DIR/net.sock" (or "--vhost-user DIR/vu.sock") plus
 * @extra_args (NULL-terminated), start, attach a front-end and (vhost-user) start its queues.
 */
struct inproc *inproc_start(const char *const *extra_args);

/* inproc_stop() - detach, stop the daemon, check it removed its socket, free. */
void inproc_stop(struct inproc *f);

/* inproc_connect() - connect a new "QEMU" to the daemon's stream socket (non-blocking fd). */
int inproc_connect(const struct inproc *f);

struct in_addr inproc_ip(const char *s);

/*
 * inproc_raise_nofile() - raise the soft descriptor limit to at least @want,
 * within the hard limit, for the next daemon: its flow tables are sized by
 * the limit at its start, and this harness does not raise it as main() does.
 * The limit as it was goes into *@saved, for the caller to put back.
 */
void inproc_raise_nofile(rlim_t want, struct rlimit *saved);

/* inproc_free_port() - a TCP port on 127.0.0.1 that was free a moment ago. */
uint16_t inproc_free_port(void);

/*
 * inproc_free_ports() - @n distinct TCP ports on 127.0.0.1 that were free a
 * moment ago (all held bound at once while picked: two separate picks can
 * return the same port).  Holds @n descriptors meanwhile.
 */
void inproc_free_ports(uint16_t *ports, unsigned int n);

/* inproc_tcp_connect() - non-blocking connect to 127.0.0.1:@port, then pump a little; fd or -errno. */
int inproc_tcp_connect(uint16_t port);
uint32_t inproc_be32(const uint8_t *p);

/* inproc_iterate() / inproc_pump() - run the daemon's loop a bounded amount. */
void inproc_iterate(void);
void inproc_pump(int ms);

/*
 * inproc_assert_no_spin() - pump the loop for @ms and assert it did not
 * spin: under @share_pct percent of one core, where a busy loop takes all
 * of it.  Not judged under valgrind: there this process's CPU time is
 * mostly valgrind's own (the vhost-user variants measured more than half a
 * core while idle, the harness's front-end runs in this process too), so
 * it says nothing about a spin; the normal and ASan builds judge it.
 */
void inproc_assert_no_spin(unsigned int ms, unsigned int share_pct);

/*
 * inproc_fd_limit_leaving() - the highest soft limit below which exactly
 * @spare descriptor numbers are free (0: the lowest free number).  The
 * kernel hands out the lowest free number, so holes count as room; numbers
 * at or above @soft are not ours to count (valgrind keeps its own
 * descriptors there and reports a lowered limit to the client).  The
 * highest, as poll() refuses more descriptors than the limit.
 */
rlim_t inproc_fd_limit_leaving(rlim_t soft, unsigned int spare);

/*
 * inproc_skip_if_valgrind_takes_emfile() - skip the calling test under
 * valgrind, which consumes a connection it refuses with EMFILE: a test of
 * a client left queued while descriptors run out cannot see it there.
 */
void inproc_skip_if_valgrind_takes_emfile(void);

/* inproc_send() - write one length-prefixed frame as QEMU would. */
void inproc_send(struct inproc *f, const uint8_t *frame, size_t len);

/* inproc_recv() - next frame from the daemon within @ms; its length, 0 on timeout/EOF. */
size_t inproc_recv(struct inproc *f, uint8_t *frame, size_t cap, int ms);

/*
 * inproc_recv_delivered() - the next frame the daemon has already delivered (to the stream
 * socket or the RX ring), without running its loop; its length, 0 if there is none.
 */
size_t inproc_recv_delivered(struct inproc *f, uint8_t *frame, size_t cap);

typedef bool (*inproc_pred)(const uint8_t *frame, size_t len, void *arg);

/* inproc_recv_match() - skip frames until @pred matches (INPROC_WAIT_MS); length or 0. */
size_t inproc_recv_match(struct inproc *f, uint8_t *frame, size_t cap, inproc_pred pred,
			 void *arg);

/* inproc_arp_gateway() - resolve the gateway as a guest does first (libslirp learns our MAC). */
void inproc_arp_gateway(struct inproc *f);

bool inproc_is_arp_reply(const uint8_t *fr, size_t len, void *arg);

/* Match a TCP segment by ports (network-order-free: host order) and required flags. */
struct inproc_tcp_match {
	uint16_t sport, dport;
	uint8_t flags;
};
bool inproc_is_tcp(const uint8_t *fr, size_t len, void *arg);

#define INPROC_GUEST "10.0.2.15"

/*
 * inproc_sidecar_listen() - a TCP listener on 127.0.0.1 playing the sidecar, its port in
 * *@port; with @listening false the port is closed again (one nobody serves): -1.
 */
int inproc_sidecar_listen(uint16_t *port, bool listening);

/*
 * inproc_unix_listen() - a unix stream socket bound to @path (non-blocking), listening with
 * @backlog if @do_listen (else bound only: connections are refused).
 */
int inproc_unix_listen(const char *path, int backlog, bool do_listen);

/*
 * inproc_expect_v2_header() - read a PROXY v2 header for TCP/IPv4 from @conn and check it
 * names @src, @dst and the ports (host order), byte for byte as proxy-protocol.txt lays it
 * out (independent of the daemon's proxy_encode()).
 */
void inproc_expect_v2_header(int conn, const char *src, const char *dst, uint16_t sport,
			     uint16_t dport);

/* inproc_accept() - accept on listening socket @lfd, pumping the daemon (INPROC_WAIT_MS). */
int inproc_accept(int lfd);

/*
 * inproc_daemon_peer_fd() - the daemon's connection to @listener: the daemon
 * runs in this process, so it is the one descriptor (besides @accepted, the
 * listener's end, and the listener) whose peer is the listener's address.
 * Fails the test unless there is exactly one.
 */
int inproc_daemon_peer_fd(int listener, int accepted);

/*
 * inproc_set_default_cc() - set this network namespace's default TCP
 * congestion control to @name (the test's own namespace: testns.h); the
 * one before goes to @old (@len bytes) unless @old is NULL.
 */
void inproc_set_default_cc(const char *name, char *old, size_t len);

/*
 * inproc_netns_enter() - move this thread into the network namespace of
 * socket @sock (SIOCGSKNS).  Returns an fd of the thread's own namespace,
 * for inproc_netns_leave(); fails the test, still in its own, if it
 * cannot.  Between the two no check may fail (no longjmp out).
 */
int inproc_netns_enter(int sock);

/*
 * inproc_netns_leave() - back into namespace @self and close it; aborts
 * the process rather than run later tests in the wrong namespace.
 */
void inproc_netns_leave(int self);

/*
 * inproc_set_default_cc_in() - inproc_set_default_cc() in the network
 * namespace of socket @sock instead (inproc_netns_enter()).
 */
void inproc_set_default_cc_in(int sock, const char *name);

/*
 * inproc_run_in() - run @argv (a PATH lookup) in the network namespace of
 * socket @sock and return its standard output (caller frees); fails the
 * test unless it ran and exited 0.
 */
char *inproc_run_in(int sock, const char *const *argv);

/* inproc_require_cc() - skip the test unless the kernel offers congestion control @name. */
void inproc_require_cc(const char *name);

/* inproc_expect_cc() - fail the test unless TCP socket @fd uses congestion control @name. */
void inproc_expect_cc(int fd, const char *name);

/* inproc_expect_reset() - read @fd (discarding bytes) until it fails with ECONNRESET. */
void inproc_expect_reset(int fd);

/* inproc_read_exact() - read exactly @len bytes from nonblocking @fd, pumping the daemon meanwhile. */
void inproc_read_exact(int fd, uint8_t *buf, size_t len);

struct pkt_ipv4_view;

/*
 * inproc_expect_segment() - wait for a TCP segment from @src:@sport to the
 * guest's @dport with @flags (INPROC_WAIT_MS), check both checksums, parse it
 * into @v (pointing into @rx); returns its length.
 */
size_t inproc_expect_segment(struct inproc *f, uint8_t *rx, size_t cap, const char *src,
			     uint16_t sport, uint16_t dport, uint8_t flags, struct pkt_ipv4_view *v);

/* The guest's side of one TCP connection opened towards it (inbound tests). */
struct inproc_gconn {
	struct in_addr peer;       /* the source the guest sees */
	uint16_t peer_port;
	uint16_t guest_port;
	uint32_t peer_seq;         /* next sequence number expected from the peer */
	uint32_t our_seq;
	uint8_t dst_mac[6], src_mac[6]; /* of the SYN the guest got */
};

/*
 * inproc_guest_expect_syn() - wait up to @ms for libslirp's SYN to the guest's
 * @guest_port (checksums checked); false if none came.
 */
bool inproc_guest_expect_syn(struct inproc *f, uint16_t guest_port, struct inproc_gconn *c,
			     int ms);

/* inproc_guest_send() - a segment from the guest on @c with @flags and @data. */
void inproc_guest_send(struct inproc *f, struct inproc_gconn *c, uint8_t flags, const void *data,
		       size_t len);

/* inproc_guest_recv_data() - the next data segment to the guest on @c, ACKed; its length or 0. */
size_t inproc_guest_recv_data(struct inproc *f, struct inproc_gconn *c, uint8_t *out, size_t cap);

/* inproc_client_read() - read a host socket, pumping the daemon: bytes, 0 (EOF), -errno. */
ssize_t inproc_client_read(int fd, uint8_t *buf, size_t cap, int ms);

#endif
