/* test_vufront.c - the test front-end's rings and protocol against an in-process loopback. */

/*
 * Theory of operation
 *
 * Each test builds a rig: a vufront and a vudev on the two ends of a
 * socketpair, both driven from this thread.  The front-end's pump
 * (vufront_set_pump()) runs the device: it answers control messages and,
 * as a loopback, takes every frame from the transmitq and writes it, header
 * included, into the receiveq.  So a frame sent with vufront_tx() comes back
 * from vufront_recv(), and every wait goes through the same pump a test
 * with the daemon on the same GLib context would use.  A frame the device
 * cannot place yet (no receive buffers) waits in the rig, never dropped.
 */

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <glib.h>

#include "tests/lib/vudev.h"
#include "tests/lib/vufront.h"
#include "tests/lib/vuhostile.h"

#define FRAME_MAX_TEST 65000
#define LOOP_BUDGET 256              /* frames the loopback moves per pump turn */

struct rig {
	struct vufront *vf;
	struct vudev *dev;
	bool loop;                      /* echo transmitq -> receiveq */
	bool has_pending;
	struct vudev_chain pending;
	unsigned int pumps;
	uint64_t kicks_seen[VUDEV_NQUEUES];
	uint8_t *tx, *rx;               /* test frames */
};

/* Copy @len bytes from @src to @dst, both scattered. */
static void iov_copy(const struct iovec *dst, unsigned int nd, const struct iovec *src,
		     unsigned int ns, size_t len)
{
	size_t di = 0, doff = 0, si = 0, soff = 0;

	while (len && di < nd && si < ns) {
		size_t n = MIN(len, MIN(dst[di].iov_len - doff, src[si].iov_len - soff));

		memcpy((uint8_t *)dst[di].iov_base + doff, (uint8_t *)src[si].iov_base + soff, n);
		len -= n;
		doff += n;
		soff += n;
		if (doff == dst[di].iov_len) {
			di++;
			doff = 0;
		}
		if (soff == src[si].iov_len) {
			si++;
			soff = 0;
		}
	}
}

/* The loopback device's work for one pump turn. */
static void loop_service(struct rig *r)
{
	static struct iovec riov[VUDEV_IOV_MAX];
	struct vudev *d = r->dev;

	if (!vudev_ready(d, VUDEV_RXQ) || !vudev_ready(d, VUDEV_TXQ))
		return;
	for (unsigned int q = 0; q < VUDEV_NQUEUES; q++)
		r->kicks_seen[q] += vudev_kick_drain(d, q);
	for (int i = 0; i < LOOP_BUDGET; i++) {
		unsigned int niov;
		size_t cap;
		int ret;

		if (!r->has_pending) {
			ret = vudev_tx_pop(d, &r->pending);
			if (ret == -EPROTO)
				continue;
			if (ret)
				break;
			r->has_pending = true;
		}
		ret = vudev_rx_peek(d, r->pending.len, riov, &niov, &cap);
		if (ret == -EAGAIN) {
			vudev_notify_on(d, VUDEV_RXQ);
			break;
		}
		if (!ret && cap >= r->pending.len) {
			iov_copy(riov, niov, r->pending.iov, r->pending.niov, r->pending.len);
			vudev_rx_commit(d, r->pending.len);
		}
		vudev_tx_push(d, r->pending.head);
		r->has_pending = false;
	}
	vudev_flush(d, VUDEV_TXQ);
	vudev_flush(d, VUDEV_RXQ);
	vudev_notify_on(d, VUDEV_TXQ);
}

/* The front-end's pump: run the device (control, then the loopback), let a little time pass. */
static void rig_pump(int fd, short events, int timeout_ms, void *opaque)
{
	struct rig *r = opaque;
	struct pollfd p = { .fd = fd, .events = events };

	r->pumps++;
	if (r->dev && vudev_handle_control(r->dev) == 0 && r->loop)
		loop_service(r);
	/* Let a little time pass, as a main-loop iteration would. */
	poll(&p, fd >= 0, MIN(timeout_ms, 1));
}

/* A connected, unstarted rig. */
static struct rig *rig_new(const struct vufront_config *cfg, uint64_t dev_features,
			   uint64_t dev_protocol)
{
	struct rig *r = g_new0(struct rig, 1);
	struct vudev_config dc = { .features = dev_features, .protocol_features = dev_protocol };
	int sv[2];

	assert_int_equal(vufront_new(cfg, &r->vf), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vufront_attach(r->vf, sv[0]), 0);
	assert_int_equal(vudev_new(sv[1], &dc, &r->dev), 0);
	vufront_set_pump(r->vf, rig_pump, r);
	r->loop = true;
	r->tx = g_malloc(FRAME_MAX_TEST);
	r->rx = g_malloc(FRAME_MAX_TEST);
	return r;
}

/* Free both ends of a rig. */
static void rig_free(struct rig *r)
{
	vufront_free(r->vf);
	vudev_free(r->dev);
	g_free(r->tx);
	g_free(r->rx);
	g_free(r);
}

#define DEV_ALL (VUFRONT_FEATURES_BASE | VUFRONT_FEATURES_OFFLOAD | VU_BIT(VIRTIO_NET_F_MTU) | \
		 VU_BIT(VIRTIO_RING_F_INDIRECT_DESC) | VU_BIT(VHOST_F_LOG_ALL))

/* A rig whose device offers everything, started with features @want. */
static struct rig *rig_started(const struct vufront_config *cfg, uint64_t want)
{
	struct rig *r = rig_new(cfg, DEV_ALL, VUFRONT_PROTOCOL_ALL);

	assert_int_equal(vufront_start(r->vf, want, VUFRONT_PROTOCOL_ALL), 0);
	return r;
}

/* A pattern that differs per @seed and per byte. */
static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

/* Send one frame of @len bytes with @seed, get it back, compare. */
static void roundtrip(struct rig *r, size_t len, uint32_t seed, const struct virtio_net_hdr_v1 *h)
{
	struct virtio_net_hdr_v1 got;
	ssize_t n;

	fill(r->tx, len, seed);
	assert_int_equal(vufront_tx(r->vf, h, r->tx, len), 0);
	n = vufront_recv(r->vf, &got, r->rx, FRAME_MAX_TEST, 0);
	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(r->tx, r->rx, len);
	if (h) {
		assert_int_equal(got.flags, h->flags);
		assert_int_equal(got.gso_type, h->gso_type);
		assert_int_equal(got.gso_size, h->gso_size);
		assert_int_equal(got.csum_start, h->csum_start);
		assert_int_equal(got.csum_offset, h->csum_offset);
	}
}

static void test_negotiate(void **state)
{
	struct vufront_config cfg = { .mtu = 1500 };
	struct rig *r = rig_new(&cfg, DEV_ALL, VU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
				VU_BIT(VHOST_USER_PROTOCOL_F_NET_MTU) |
				VU_BIT(VHOST_USER_PROTOCOL_F_CONFIG));
	uint64_t want = VUFRONT_FEATURES_BASE | VU_BIT(VIRTIO_NET_F_MTU);

	(void)state;
	assert_int_equal(vufront_start(r->vf, want, VUFRONT_PROTOCOL_ALL), 0);
	assert_int_equal(vufront_features(r->vf), want);
	assert_int_equal(vudev_features(r->dev), want);
	assert_int_equal(vufront_offered_features(r->vf), DEV_ALL);
	/* CONFIG was offered but not wanted; LOG_SHMFD wanted but not offered. */
	assert_int_equal(vufront_protocol_features(r->vf),
			 VU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | VU_BIT(VHOST_USER_PROTOCOL_F_NET_MTU));
	assert_int_equal(vudev_mtu(r->dev), 1500);
	assert_int_equal(vufront_hdr_len(r->vf), VIRTIO_NET_HDR_LEN);
	assert_true(vudev_ready(r->dev, VUDEV_RXQ) && vudev_ready(r->dev, VUDEV_TXQ));
	assert_true(r->pumps > 0);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 0);
	rig_free(r);
}

/* A REPLY_ACK with a non-zero value is -EREMOTEIO; the device refuses MTU 20. */
static void test_reply_ack_nack(void **state)
{
	struct vufront_config cfg = { .mtu = 20 };
	struct rig *r = rig_new(&cfg, DEV_ALL, VUFRONT_PROTOCOL_ALL);

	(void)state;
	assert_int_equal(vufront_start(r->vf, VUFRONT_FEATURES_BASE | VU_BIT(VIRTIO_NET_F_MTU),
				       VUFRONT_PROTOCOL_ALL), -EREMOTEIO);
	rig_free(r);
}

/* Without PROTOCOL_FEATURES: no protocol features, rings enabled by the kick alone. */
static void test_no_protocol_features(void **state)
{
	struct vufront_config cfg = { 0 };
	struct rig *r = rig_new(&cfg, VU_BIT(VIRTIO_F_VERSION_1) | VU_BIT(VIRTIO_NET_F_MRG_RXBUF),
				0);

	(void)state;
	assert_int_equal(vufront_start(r->vf, VUFRONT_FEATURES_BASE, VUFRONT_PROTOCOL_ALL), 0);
	assert_int_equal(vufront_protocol_features(r->vf), 0);
	roundtrip(r, 100, 1, NULL);
	rig_free(r);
}

static void test_small_frames(void **state)
{
	struct vufront_config cfg = { 0 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE | VUFRONT_FEATURES_OFFLOAD);
	struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34,
				       .csum_offset = 16 };

	(void)state;
	for (uint32_t i = 0; i < 200; i++)
		roundtrip(r, 60 + (i * 37) % 1455, i, i % 2 ? &h : NULL);
	assert_int_equal(vufront_stats(r->vf)->frames_tx, 200);
	assert_int_equal(vufront_stats(r->vf)->frames_rx, 200);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 0);
	rig_free(r);
}

/* A header the driver did not negotiate comes back: counted as the device's error. */
static void test_rx_header_checked(void **state)
{
	struct vufront_config cfg = { 0 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	struct virtio_net_hdr_v1 csum = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34,
					  .csum_offset = 16 };
	struct virtio_net_hdr_v1 gso = { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = 1448 };

	(void)state;
	roundtrip(r, 100, 1, NULL);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 0);
	roundtrip(r, 100, 2, &csum);
	roundtrip(r, 3000, 3, &gso);
	assert_int_equal(vufront_stats(r->vf)->rx_bad_hdrs, 2);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 2);
	/* The test device saw the same two on its side. */
	assert_int_equal(vudev_stats(r->dev)->bad_tx_hdrs, 2);
	rig_free(r);
}

/* A 64 KiB GSO frame over 4 KiB mergeable buffers: num_buffers reassembled. */
static void test_large_mergeable(void **state)
{
	struct vufront_config cfg = { 0 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE | VUFRONT_FEATURES_OFFLOAD);
	struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				       .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .hdr_len = 54,
				       .gso_size = 1448, .csum_start = 34, .csum_offset = 16 };
	struct virtio_net_hdr_v1 got;

	(void)state;
	roundtrip(r, FRAME_MAX_TEST, 7, &h);
	/* And the num_buffers the device wrote: ceil((65000 + 12) / 4096) = 16. */
	fill(r->tx, 5000, 3);
	assert_int_equal(vufront_tx(r->vf, NULL, r->tx, 5000), 0);
	assert_int_equal(vufront_recv(r->vf, &got, r->rx, FRAME_MAX_TEST, 0), 5000);
	assert_int_equal(got.num_buffers, 2);
	assert_int_equal(vudev_stats(r->dev)->rx_bufs, 16 + 2);
	rig_free(r);
}

/* Without MRG_RXBUF: chains of page buffers ("big packets"), num_buffers 1. */
static void test_big_chains(void **state)
{
	struct vufront_config cfg = { 0 };
	uint64_t want = VU_BIT(VIRTIO_F_VERSION_1) | VU_BIT(VIRTIO_RING_F_EVENT_IDX) |
			VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	struct rig *r = rig_started(&cfg, want);
	struct virtio_net_hdr_v1 got;

	(void)state;
	assert_false(vufront_features(r->vf) & VU_BIT(VIRTIO_NET_F_MRG_RXBUF));
	for (uint32_t i = 0; i < 40; i++)
		roundtrip(r, i % 2 ? FRAME_MAX_TEST : 1514, i, NULL);
	assert_int_equal(vufront_tx(r->vf, NULL, r->tx, 3000), 0);
	assert_int_equal(vufront_recv(r->vf, &got, r->rx, FRAME_MAX_TEST, 0), 3000);
	assert_int_equal(got.num_buffers, 1);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 0);
	rig_free(r);
}

/* One large buffer per chain, with MRG_RXBUF: every frame in one buffer. */
static void test_one_large_buffer(void **state)
{
	struct vufront_config cfg = { .rx_buf_size = 65536 + 64, .queue_size = 64 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);

	(void)state;
	for (uint32_t i = 0; i < 100; i++)
		roundtrip(r, i % 3 ? FRAME_MAX_TEST : 64, i, NULL);
	assert_int_equal(vudev_stats(r->dev)->rx_bufs, 100);
	rig_free(r);
}

/* 600 frames through the transmit layout @layout. */
static void run_layout(enum vufront_tx_layout layout)
{
	struct vufront_config cfg = { .tx_layout = layout };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE | VU_BIT(VIRTIO_RING_F_INDIRECT_DESC));

	for (uint32_t i = 0; i < 600; i++)
		roundtrip(r, i % 5 ? 200 + i : 30000, i, NULL);
	assert_int_equal(vudev_stats(r->dev)->bad_chains, 0);
	rig_free(r);
}

static void test_tx_split_header(void **state)
{
	(void)state;
	run_layout(VUFRONT_TX_SPLIT_HDR);
}

static void test_tx_indirect(void **state)
{
	struct vufront_config cfg = { .tx_layout = VUFRONT_TX_INDIRECT };
	struct rig *r = rig_new(&cfg, VUFRONT_FEATURES_BASE, VUFRONT_PROTOCOL_ALL);

	(void)state;
	run_layout(VUFRONT_TX_INDIRECT);
	/* Indirect tables need VIRTIO_RING_F_INDIRECT_DESC. */
	assert_int_equal(vufront_start(r->vf, VUFRONT_FEATURES_BASE, VUFRONT_PROTOCOL_ALL),
			 -EOPNOTSUPP);
	rig_free(r);
}

/*
 * EVENT_IDX: the device asks for a kick at its next entry; ten frames
 * published one by one without the device running cost one kick.  Without
 * EVENT_IDX, the NO_NOTIFY flag is all there is: ten kicks.
 */
static void burst_kicks(uint64_t want, uint64_t *kicks, uint64_t *calls)
{
	struct vufront_config cfg = { 0 };
	struct rig *r = rig_started(&cfg, want);
	uint64_t k0, c0;

	roundtrip(r, 100, 0, NULL); /* device has run once: asked for kicks */
	k0 = vufront_stats(r->vf)->kicks;
	c0 = vudev_stats(r->dev)->calls;
	fill(r->tx, 100, 1);
	for (int i = 0; i < 10; i++) {
		assert_non_null(vufront_tx_slot(r->vf, NULL));
		assert_int_equal(vufront_tx(r->vf, NULL, r->tx, 100), 0);
	}
	*kicks = vufront_stats(r->vf)->kicks - k0;
	for (int i = 0; i < 10; i++)
		assert_int_equal(vufront_recv(r->vf, NULL, r->rx, FRAME_MAX_TEST, 0), 100);
	*calls = vudev_stats(r->dev)->calls - c0;
	assert_int_equal(r->kicks_seen[VUDEV_TXQ] >= 1, true);
	rig_free(r);
}

static void test_event_idx(void **state)
{
	uint64_t kicks, calls;

	(void)state;
	burst_kicks(VUFRONT_FEATURES_BASE, &kicks, &calls);
	assert_int_equal(kicks, 1);
	/* Ten frames landed in one device turn: one call. */
	assert_int_equal(calls, 1);
	burst_kicks(VUFRONT_FEATURES_BASE & ~VU_BIT(VIRTIO_RING_F_EVENT_IDX), &kicks, &calls);
	assert_int_equal(kicks, 10);
}

/* More than 65536 frames: every ring index wraps; sequence numbers prove order and content. */
static void test_index_wrap(void **state)
{
	struct vufront_config cfg = { .queue_size = 64 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	const uint32_t total = 70000, batch = 24;

	(void)state;
	for (uint32_t sent = 0; sent < total; sent += batch) {
		for (uint32_t i = 0; i < batch; i++) {
			uint32_t seq = sent + i;

			memcpy(r->tx, &seq, sizeof(seq));
			fill(r->tx + 4, 60, seq);
			assert_int_equal(vufront_tx(r->vf, NULL, r->tx, 64), 0);
		}
		for (uint32_t i = 0; i < batch; i++) {
			uint32_t seq;

			assert_int_equal(vufront_recv(r->vf, NULL, r->rx, FRAME_MAX_TEST, 0), 64);
			memcpy(&seq, r->rx, sizeof(seq));
			assert_int_equal(seq, sent + i);
		}
	}
	assert_int_equal(vufront_stats(r->vf)->frames_rx, 70008);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 0);
	rig_free(r);
}

/* Buffers across region boundaries (8 regions), and regions with holes between them. */
static void test_regions(void **state)
{
	struct vufront_config cfg = { .nregions = 8, .straddle = true, .frame_max = 9000 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	struct vhost_user_region r1 = vufront_region(r->vf, 1);
	bool crossed = false;

	(void)state;
	for (unsigned int i = 0; i < vufront_queue_size(r->vf); i++) {
		uint64_t a = vufront_rx_buf_gpa(r->vf, i);

		crossed |= a < r1.guest_phys_addr && a + 4096 > r1.guest_phys_addr;
	}
	assert_true(crossed);
	for (uint32_t i = 0; i < 2000; i++)
		roundtrip(r, 1000 + (i * 97) % 8000, i, NULL);
	rig_free(r);

	cfg = (struct vufront_config){ .nregions = 4, .gpa_base = 1ull << 32, .gpa_gap = 1 << 20 };
	r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	assert_int_equal(vufront_region(r->vf, 1).guest_phys_addr,
			 (1ull << 32) + vufront_mem_size(r->vf) / 4 + (1 << 20));
	for (uint32_t i = 0; i < 300; i++)
		roundtrip(r, i % 2 ? 60000 : 1500, i, NULL);
	rig_free(r);
}

/* The dirty log: receive buffers and used rings are logged, nothing the device only reads. */
static void test_dirty_log(void **state)
{
	struct vufront_config cfg = { 0 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	uint64_t pages[64];
	size_t n;

	(void)state;
	assert_int_equal(vufront_log_start(r->vf), 0);
	assert_true(vudev_features(r->dev) & VU_BIT(VHOST_F_LOG_ALL));
	roundtrip(r, 6000, 1, NULL); /* two receive buffers */
	assert_true(vufront_log_is_dirty(r->vf, vufront_used_gpa(r->vf, VUFRONT_RXQ)));
	assert_true(vufront_log_is_dirty(r->vf, vufront_used_gpa(r->vf, VUFRONT_TXQ)));
	assert_true(vufront_log_is_dirty(r->vf, vufront_rx_buf_gpa(r->vf, 0)));
	assert_true(vufront_log_is_dirty(r->vf, vufront_rx_buf_gpa(r->vf, 1)));
	assert_false(vufront_log_is_dirty(r->vf, vufront_rx_buf_gpa(r->vf, 2)));
	assert_false(vufront_log_is_dirty(r->vf, vufront_avail_gpa(r->vf, VUFRONT_TXQ)));
	assert_false(vufront_log_is_dirty(r->vf, vufront_desc_gpa(r->vf, VUFRONT_RXQ)));
	n = vufront_log_dirty(r->vf, pages, G_N_ELEMENTS(pages), true);
	assert_int_equal(n, 4);
	assert_int_equal(vufront_log_dirty(r->vf, pages, G_N_ELEMENTS(pages), false), 0);
	assert_int_equal(vufront_log_stop(r->vf), 0);
	roundtrip(r, 100, 2, NULL);
	assert_int_equal(vufront_log_dirty(r->vf, pages, G_N_ELEMENTS(pages), false), 0);
	rig_free(r);
}

static void test_recv_timeout(void **state)
{
	struct vufront_config cfg = { 0 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	gint64 t0 = g_get_monotonic_time(), ms;

	(void)state;
	assert_int_equal(vufront_recv(r->vf, NULL, r->rx, FRAME_MAX_TEST, 200), -ETIMEDOUT);
	ms = (g_get_monotonic_time() - t0) / 1000;
	assert_true(ms >= 190 && ms < 2000);
	rig_free(r);
}

/* The device lies: an id never posted, then a used index far ahead. */
static void test_device_errors(void **state)
{
	struct vufront_config cfg = { .queue_size = 64 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	struct vufront_rxframe *f = g_new(struct vufront_rxframe, 1);

	(void)state;
	roundtrip(r, 100, 1, NULL);
	r->loop = false;
	vudev_push_raw_used(r->dev, VUDEV_RXQ, 999, 100);
	vudev_flush(r->dev, VUDEV_RXQ);
	assert_int_equal(vufront_rx_next(r->vf, f), -EPROTO);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 1);
	assert_int_equal(vufront_rx_next(r->vf, f), -EAGAIN);
	/* A header-less length on a real buffer: -EPROTO, and the buffer comes back. */
	vudev_push_raw_used(r->dev, VUDEV_RXQ, 1, 4);
	vudev_flush(r->dev, VUDEV_RXQ);
	assert_int_equal(vufront_rx_next(r->vf, f), -EPROTO);
	/* Used index 1000 ahead: the queue is broken for good. */
	for (int i = 0; i < 1000; i++)
		vudev_push_raw_used(r->dev, VUDEV_TXQ, 0, 0);
	vudev_flush(r->dev, VUDEV_TXQ);
	assert_int_equal(vufront_tx_reclaim(r->vf), -EPROTO);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 3);
	g_free(f);
	rig_free(r);
}

/*
 * A frame of two buffers published one at a time (5.1.6.4.2 forbids it):
 * counted, waited for without spinning (notify_on says nothing is there)
 * and the call for the second buffer still comes.
 */
static void test_partial_frame(void **state)
{
	struct vufront_config cfg = { .queue_size = 64 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	struct vufront_rxframe *f = g_new(struct vufront_rxframe, 1);
	struct virtio_net_hdr_v1 *h;

	(void)state;
	roundtrip(r, 100, 1, NULL); /* buffer 0 used and reposted: 1 and 2 are next */
	r->loop = false;
	h = vufront_ptr(r->vf, vufront_rx_buf_gpa(r->vf, 1));
	*h = (struct virtio_net_hdr_v1){ .num_buffers = 2 };
	vudev_push_raw_used(r->dev, VUDEV_RXQ, 1, 4096);
	vudev_flush(r->dev, VUDEV_RXQ);
	vufront_call_drain(r->vf, VUFRONT_RXQ);
	assert_int_equal(vufront_rx_next(r->vf, f), -EAGAIN);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 1);
	assert_false(vufront_rx_notify_on(r->vf));
	vudev_push_raw_used(r->dev, VUDEV_RXQ, 2, 904);
	vudev_flush(r->dev, VUDEV_RXQ);
	assert_true(vufront_call_drain(r->vf, VUFRONT_RXQ) >= 1);
	assert_int_equal(vufront_rx_next(r->vf, f), 0);
	assert_int_equal(f->len, 5000);
	assert_int_equal(f->nheads, 2);
	assert_int_equal(vufront_stats(r->vf)->dev_errors, 1);
	g_free(f);
	rig_free(r);
}

/* Raw messages: unknown request, SET_MEM_TABLE without its fds; the strict device hangs up. */
static void test_raw_messages(void **state)
{
	struct vufront_config cfg = { 0 };
	struct rig *r = rig_new(&cfg, DEV_ALL, VUFRONT_PROTOCOL_ALL);
	struct vufront_raw m = { .request = 999, .flags = VHOST_USER_VERSION };
	struct vhost_user_mem_table t = { .nregions = 1 };
	uint64_t f;

	(void)state;
	assert_int_equal(vufront_get_features(r->vf, &f), 0);
	assert_int_equal(f, DEV_ALL);
	assert_int_equal(vufront_send_raw(r->vf, &m), 0);
	assert_true(vufront_peer_closed(r->vf, 1000));
	rig_free(r);

	r = rig_new(&cfg, DEV_ALL, VUFRONT_PROTOCOL_ALL);
	t.regions[0] = vufront_region(r->vf, 0);
	m = (struct vufront_raw){ .request = VHOST_USER_SET_MEM_TABLE, .flags = VHOST_USER_VERSION,
				  .size = 8 + 32, .payload = &t, .payload_len = 8 + 32 };
	assert_int_equal(vufront_send_raw(r->vf, &m), 0);
	assert_true(vufront_peer_closed(r->vf, 1000));
	rig_free(r);

	/* A well-formed GET_FEATURES keeps it serving. */
	r = rig_new(&cfg, DEV_ALL, VUFRONT_PROTOCOL_ALL);
	m = (struct vufront_raw){ .request = VHOST_USER_GET_FEATURES, .flags = VHOST_USER_VERSION };
	assert_int_equal(vufront_send_raw(r->vf, &m), 0);
	assert_false(vufront_peer_closed(r->vf, 200));
	rig_free(r);
}

/* Hand-written chains: a loop and an out-of-range address reach the device as bad chains. */
static void test_hostile_chains(void **state)
{
	struct vufront_config cfg = { .queue_size = 64 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	struct vring_desc *d0 = vufront_desc(r->vf, VUFRONT_TXQ, 0);
	struct vring_desc *d1 = vufront_desc(r->vf, VUFRONT_TXQ, 1);
	uint64_t gpa;

	(void)state;
	assert_non_null(vufront_scratch(r->vf, 64, &gpa));
	*d0 = (struct vring_desc){ .addr = gpa, .len = 32, .flags = VRING_DESC_F_NEXT, .next = 1 };
	*d1 = (struct vring_desc){ .addr = gpa, .len = 32, .flags = VRING_DESC_F_NEXT, .next = 0 };
	vufront_avail_push(r->vf, VUFRONT_TXQ, 0);
	*vufront_desc(r->vf, VUFRONT_TXQ, 2) = (struct vring_desc){
		.addr = vufront_gpa_end(r->vf) - 16, .len = 4096 };
	vufront_avail_push(r->vf, VUFRONT_TXQ, 2);
	assert_int_equal(vufront_kick(r->vf, VUFRONT_TXQ), 0);
	for (int i = 0; i < 10; i++)
		rig_pump(-1, 0, 1, r);
	assert_int_equal(vudev_stats(r->dev)->bad_chains, 2);
	assert_null(vufront_ptr(r->vf, vufront_gpa_end(r->vf)));
	assert_non_null(vufront_ptr(r->vf, vufront_gpa_end(r->vf) - 1));
	rig_free(r);
}

/* GET_VRING_BASE reports where the device stopped; a new connection starts again from 0. */
static void test_stop_and_reconnect(void **state)
{
	struct vufront_config cfg = { .queue_size = 64 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	struct vudev_config dc = { .features = DEV_ALL, .protocol_features = VUFRONT_PROTOCOL_ALL };
	uint32_t base;
	int sv[2];

	(void)state;
	for (uint32_t i = 0; i < 100; i++)
		roundtrip(r, 300, i, NULL);
	assert_int_equal(vufront_get_vring_base(r->vf, VUFRONT_TXQ, &base), 0);
	assert_int_equal(base, 100);
	assert_false(vudev_ready(r->dev, VUDEV_TXQ));
	assert_int_equal(vufront_stop(r->vf), 0);
	vufront_disconnect(r->vf);
	assert_int_equal(vudev_handle_control(r->dev), -ECONNRESET);
	vudev_free(r->dev);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vufront_attach(r->vf, sv[0]), 0);
	assert_int_equal(vudev_new(sv[1], &dc, &r->dev), 0);
	assert_int_equal(vufront_start(r->vf, VUFRONT_FEATURES_BASE, VUFRONT_PROTOCOL_ALL), 0);
	for (uint32_t i = 0; i < 100; i++)
		roundtrip(r, 300, i, NULL);
	rig_free(r);
}

/* The transmit ring fills when the device stops; vufront_tx() waits within its bound. */
static void test_tx_full(void **state)
{
	struct vufront_config cfg = { .queue_size = 16, .timeout_ms = 300 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);

	(void)state;
	r->loop = false;
	fill(r->tx, 100, 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(vufront_tx(r->vf, NULL, r->tx, 100), 0);
	assert_int_equal(vufront_tx_free(r->vf), 0);
	assert_int_equal(vufront_tx(r->vf, NULL, r->tx, 100), -ETIMEDOUT);
	assert_true(vufront_stats(r->vf)->tx_full > 0);
	r->loop = true;
	for (int i = 0; i < 16; i++)
		assert_int_equal(vufront_recv(r->vf, NULL, r->rx, FRAME_MAX_TEST, 0), 100);
	assert_int_equal(vufront_tx(r->vf, NULL, r->tx, 100), 0);
	assert_int_equal(vufront_tx(r->vf, NULL, r->tx, FRAME_MAX_TEST + 1000), -EMSGSIZE);
	rig_free(r);
}

/*
 * A device that needs more receive buffers than are pending (a 64 KiB frame
 * over 4 KiB buffers) asks for a kick with some still pending; the driver's
 * next refill must kick it.  Pins vudev_notify_on() setting avail_event to
 * the published index, not to last_avail (which the driver has passed, so
 * it never kicked: tap2tap stalled).
 */
static void test_starved_device_gets_kick(void **state)
{
	struct vufront_config cfg = { .queue_size = 64 };
	struct rig *r = rig_started(&cfg, VUFRONT_FEATURES_BASE);
	struct vufront_rxframe *f = g_new(struct vufront_rxframe, 1);
	static struct iovec iov[VUDEV_IOV_MAX];
	unsigned int niov;
	size_t cap;

	(void)state;
	roundtrip(r, 100, 1, NULL);
	r->loop = false;
	for (int i = 0; i < 60; i++) {
		assert_int_equal(vudev_rx_peek(r->dev, 100, iov, &niov, &cap), 0);
		vudev_rx_commit(r->dev, 100);
	}
	vudev_flush(r->dev, VUDEV_RXQ);
	assert_int_equal(vudev_rx_peek(r->dev, 17 * 4096, iov, &niov, &cap), -EAGAIN);
	assert_true(vudev_notify_on(r->dev, VUDEV_RXQ)); /* four are pending, not enough */
	assert_int_equal(vudev_rx_peek(r->dev, 17 * 4096, iov, &niov, &cap), -EAGAIN);
	vudev_kick_drain(r->dev, VUDEV_RXQ);
	for (int i = 0; i < 60; i++) {
		assert_int_equal(vufront_rx_next(r->vf, f), 0);
		vufront_rx_release(r->vf, f);
	}
	assert_int_equal(vufront_rx_refill(r->vf), 60);
	assert_true(vudev_kick_drain(r->dev, VUDEV_RXQ) >= 1);
	assert_int_equal(vudev_rx_peek(r->dev, 17 * 4096, iov, &niov, &cap), 0);
	g_free(f);
	rig_free(r);
}

/* The hostile cases run in-process too: the strict test device hangs up or keeps serving. */
static void test_hostile_in_process(void **state)
{
	static const struct { const char *name; enum vuhostile_result want; } runs[] = {
		{ "unknown-request", VUHOSTILE_CLOSED },
		{ "mem-table-overlap", VUHOSTILE_CLOSED },
		{ "kick-extra-fds", VUHOSTILE_CLOSED },
		{ "desc-loop", VUHOSTILE_SERVING },
		{ "indirect-nested", VUHOSTILE_SERVING },
		{ "avail-idx-jump", VUHOSTILE_SERVING },
	};
	struct vufront_config cfg = { .queue_size = 64, .nregions = 2 };
	size_t n;

	(void)state;
	assert_true(vuhostile_cases(&n) && n >= 50);
	assert_null(vuhostile_find("no-such-case"));
	for (size_t i = 0; i < G_N_ELEMENTS(runs); i++) {
		const struct vuhostile_case *hc = vuhostile_find(runs[i].name);
		struct rig *r = rig_new(&cfg, DEV_ALL, VUFRONT_PROTOCOL_ALL);
		uint64_t ack;

		assert_non_null(hc);
		assert_int_equal(vuhostile_prepare(r->vf, hc), 0);
		hc->run(r->vf);
		assert_int_equal(vuhostile_judge(r->vf, hc, 200, &ack), runs[i].want);
		if (runs[i].want == VUHOSTILE_SERVING && hc->phase == VUHOSTILE_STARTED)
			assert_true(vudev_stats(r->dev)->bad_chains >= 1);
		rig_free(r);
	}
}

static void test_bad_config(void **state)
{
	struct vufront *vf;
	struct vufront_config bad[] = {
		{ .queue_size = 100 },
		{ .nregions = 9 },
		{ .straddle = true, .nregions = 2, .gpa_gap = 4096 },
		{ .mem_size = 1 << 20, .nregions = 3 },
	};
	struct vufront_config tiny = { .mem_size = 64 * 1024 };

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		assert_int_equal(vufront_new(&bad[i], &vf), -EINVAL);
	assert_int_equal(vufront_new(&tiny, &vf), -ENOMEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiate),
		cmocka_unit_test(test_reply_ack_nack),
		cmocka_unit_test(test_no_protocol_features),
		cmocka_unit_test(test_small_frames),
		cmocka_unit_test(test_rx_header_checked),
		cmocka_unit_test(test_large_mergeable),
		cmocka_unit_test(test_big_chains),
		cmocka_unit_test(test_one_large_buffer),
		cmocka_unit_test(test_tx_split_header),
		cmocka_unit_test(test_tx_indirect),
		cmocka_unit_test(test_event_idx),
		cmocka_unit_test(test_index_wrap),
		cmocka_unit_test(test_regions),
		cmocka_unit_test(test_dirty_log),
		cmocka_unit_test(test_recv_timeout),
		cmocka_unit_test(test_device_errors),
		cmocka_unit_test(test_partial_frame),
		cmocka_unit_test(test_raw_messages),
		cmocka_unit_test(test_hostile_chains),
		cmocka_unit_test(test_stop_and_reconnect),
		cmocka_unit_test(test_tx_full),
		cmocka_unit_test(test_starved_device_gets_kick),
		cmocka_unit_test(test_hostile_in_process),
		cmocka_unit_test(test_bad_config),
	};

	g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
