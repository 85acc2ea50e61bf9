/* vuhostile.c - named misbehaviours of a vhost-user front-end and the backend's verdict. */

#include "vuhostile.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <glib.h>

#include "tests/lib/pkt.h"

#define ARP_WAIT_MS 2000
#define ARP_OPCODE_OFF 6            /* in the ARP payload: operation (2: reply) */
#define ARP_SENDER_IP_OFF 14        /* sender protocol address */
#define ARP_LEN 28
#define ETH_TYPE_OFF 12             /* ethertype in an Ethernet header */

static int64_t now_ms(void)
{
	return g_get_monotonic_time() / 1000;
}

/* Whether frame @f is an ARP reply from the gateway 10.0.2.2. */
static bool is_arp_reply_from_gateway(const uint8_t *f, size_t len)
{
	static const uint8_t gw[4] = { 10, 0, 2, 2 };

	return len >= PKT_ETH_HLEN + ARP_LEN && f[ETH_TYPE_OFF] == PKT_ETH_P_ARP >> 8 &&
	       f[ETH_TYPE_OFF + 1] == (PKT_ETH_P_ARP & 0xff) && f[PKT_ETH_HLEN + ARP_OPCODE_OFF] == 0 &&
	       f[PKT_ETH_HLEN + ARP_OPCODE_OFF + 1] == 2 &&
	       !memcmp(f + PKT_ETH_HLEN + ARP_SENDER_IP_OFF, gw, sizeof(gw));
}

/* ARP for the gateway and wait for the answer (other frames are skipped). 0, -ETIMEDOUT. */
int vuhostile_arp_gateway(struct vufront *vf)
{
	uint8_t frame[2048];
	struct in_addr me, gw;
	int64_t deadline = now_ms() + ARP_WAIT_MS;
	size_t len;
	int ret;

	inet_pton(AF_INET, "10.0.2.15", &me);
	inet_pton(AF_INET, "10.0.2.2", &gw);
	len = pkt_arp_request(frame, me, gw);
	ret = vufront_tx(vf, NULL, frame, len);
	while (!ret) {
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = vufront_recv(vf, NULL, frame, sizeof(frame), (int)left);
		if (n < 0)
			return (int)n;
		if (is_arp_reply_from_gateway(frame, (size_t)n))
			return 0;
	}
	return ret;
}

/* --- control-plane cases --- */

/**
 * raw_fds() - send request @req with payload @p (@len bytes, the size it
 * claims too) and @nfds descriptors; NEED_REPLY when REPLY_ACK is on, so a
 * backend may refuse and go on.  Return: 0 or -errno.
 */
static int raw_fds(struct vufront *vf, uint32_t req, const void *p, size_t len, const int *fds,
		   unsigned int nfds)
{
	struct vufront_raw m = { .request = req, .flags = VHOST_USER_VERSION, .size = (uint32_t)len,
				 .payload = p, .payload_len = len, .fds = fds, .nfds = nfds };

	if ((vufront_protocol_features(vf) & VU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)))
		m.flags |= VHOST_USER_FLAG_NEED_REPLY;
	return vufront_send_raw(vf, &m);
}

/* raw() - raw_fds() without descriptors. */
static int raw(struct vufront *vf, uint32_t req, const void *p, size_t len)
{
	return raw_fds(vf, req, p, len, NULL, 0);
}

/* Negotiate features and protocol features (REPLY_ACK on) and SET_OWNER, no memory yet. */
static int negotiate(struct vufront *vf)
{
	uint64_t f, pf = 0;
	int ret = vufront_get_features(vf, &f);

	if (!ret && (f & VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		ret = vufront_get_protocol_features(vf, &pf);
	if (!ret && (f & VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		ret = vufront_set_protocol_features(vf, pf & VUFRONT_PROTOCOL_ALL);
	if (!ret)
		ret = vufront_set_owner(vf);
	if (!ret)
		ret = vufront_set_features(vf, f & VUFRONT_FEATURES_BASE);
	return ret;
}

/* negotiate() and then the real memory table. */
static int negotiate_mem(struct vufront *vf)
{
	int ret = negotiate(vf);

	return ret ? ret : vufront_set_mem_table(vf);
}

static int h_unknown_request(struct vufront *vf)
{
	return raw(vf, 1000, NULL, 0);
}

static int h_bad_version(struct vufront *vf)
{
	struct vufront_raw m = { .request = VHOST_USER_GET_FEATURES, .flags = 0x2 };

	return vufront_send_raw(vf, &m);
}

static int h_oversize_payload(struct vufront *vf)
{
	uint64_t v = 0;
	struct vufront_raw m = { .request = VHOST_USER_SET_FEATURES, .flags = VHOST_USER_VERSION,
				 .size = 0x10000000, .payload = &v, .payload_len = sizeof(v) };

	return vufront_send_raw(vf, &m);
}

static int h_short_payload(struct vufront *vf)
{
	uint32_t v = 0;

	return raw(vf, VHOST_USER_SET_FEATURES, &v, sizeof(v));
}

static int h_features_unoffered(struct vufront *vf)
{
	uint64_t f, all = ~0ull;
	int ret = vufront_get_features(vf, &f);

	return ret ? ret : raw(vf, VHOST_USER_SET_FEATURES, &all, sizeof(all));
}

static int h_too_many_fds(struct vufront *vf)
{
	int fds[VUFRONT_RAW_FDS_MAX];
	int ret;

	for (unsigned int i = 0; i < G_N_ELEMENTS(fds); i++)
		fds[i] = vufront_memfd(vf);
	ret = raw_fds(vf, VHOST_USER_GET_FEATURES, NULL, 0, fds, G_N_ELEMENTS(fds));
	return ret;
}

static int h_half_header(struct vufront *vf)
{
	static const uint8_t half[6] = { VHOST_USER_GET_FEATURES, 0, 0, 0, VHOST_USER_VERSION, 0 };

	return send(vufront_sock_fd(vf), half, sizeof(half), MSG_NOSIGNAL) == sizeof(half) ? 0 : -errno;
}

/* A memory table of @n regions (from the real layout where there are enough), @nfds memfds. */
static int mem_table(struct vufront *vf, unsigned int n, unsigned int nfds,
		     void (*edit)(struct vhost_user_region *r, unsigned int n, size_t size))
{
	uint8_t buf[8 + 16 * sizeof(struct vhost_user_region)] = { 0 };
	struct vhost_user_region *r = (struct vhost_user_region *)(buf + 8);
	int fds[VUFRONT_RAW_FDS_MAX];
	uint32_t nr = n;
	int ret = negotiate(vf);

	if (ret)
		return ret;
	memcpy(buf, &nr, sizeof(nr));
	for (unsigned int i = 0; i < n && i < 16; i++)
		r[i] = vufront_region(vf, i % vufront_nregions(vf));
	if (edit)
		edit(r, n, vufront_mem_size(vf));
	for (unsigned int i = 0; i < nfds; i++)
		fds[i] = vufront_memfd(vf);
	return raw_fds(vf, VHOST_USER_SET_MEM_TABLE, buf, 8 + MIN(n, 16u) * sizeof(*r), fds, nfds);
}

/* mem_table() edits: each makes region 0 (or 0 and 1) wrong in one way. */
static void edit_huge(struct vhost_user_region *r, unsigned int n, size_t size)
{
	(void)n;
	(void)size;
	r[0].memory_size = 1ull << 40;
}

static void edit_offset_overflow(struct vhost_user_region *r, unsigned int n, size_t size)
{
	(void)n;
	(void)size;
	r[0].mmap_offset = ~0ull - 0xfff;
	r[0].memory_size = 0x2000;
}

static void edit_offset_unaligned(struct vhost_user_region *r, unsigned int n, size_t size)
{
	(void)n;
	r[0].mmap_offset = 1;
	r[0].memory_size = size - 4096;
}

static void edit_overlap(struct vhost_user_region *r, unsigned int n, size_t size)
{
	(void)n;
	r[0].memory_size = r[1].memory_size = size / 2;
	r[1].mmap_offset = size / 2;
	r[1].userspace_addr = r[0].userspace_addr + size / 2;
	r[1].guest_phys_addr = r[0].guest_phys_addr + 4096;
}

static void edit_zero_size(struct vhost_user_region *r, unsigned int n, size_t size)
{
	(void)n;
	(void)size;
	r[0].memory_size = 0;
}

static int h_mem_no_fd(struct vufront *vf) { return mem_table(vf, 1, 0, NULL); }
static int h_mem_fd_mismatch(struct vufront *vf) { return mem_table(vf, 2, 1, NULL); }
static int h_mem_extra_fds(struct vufront *vf) { return mem_table(vf, 1, 3, NULL); }
static int h_mem_too_many(struct vufront *vf) { return mem_table(vf, 9, 9, NULL); }
static int h_mem_zero_regions(struct vufront *vf) { return mem_table(vf, 0, 0, NULL); }
static int h_mem_overlap(struct vufront *vf) { return mem_table(vf, 2, 2, edit_overlap); }
static int h_mem_beyond_fd(struct vufront *vf) { return mem_table(vf, 1, 1, edit_huge); }
static int h_mem_zero_size(struct vufront *vf) { return mem_table(vf, 1, 1, edit_zero_size); }

static int h_mem_offset_overflow(struct vufront *vf)
{
	return mem_table(vf, 1, 1, edit_offset_overflow);
}

static int h_mem_offset_unaligned(struct vufront *vf)
{
	return mem_table(vf, 1, 1, edit_offset_unaligned);
}

/* SET_VRING_NUM (@index, @num) after negotiating and sending the memory table. */
static int vring_num(struct vufront *vf, uint32_t index, uint32_t num)
{
	struct vhost_user_vring_state s = { .index = index, .num = num };
	int ret = negotiate_mem(vf);

	return ret ? ret : raw(vf, VHOST_USER_SET_VRING_NUM, &s, sizeof(s));
}

static int h_vring_num_zero(struct vufront *vf) { return vring_num(vf, 0, 0); }
static int h_vring_num_odd(struct vufront *vf) { return vring_num(vf, 0, 300); }
static int h_vring_num_huge(struct vufront *vf) { return vring_num(vf, 0, 65536); }
static int h_vring_index_bad(struct vufront *vf) { return vring_num(vf, 200, 256); }

/* SET_VRING_ADDR for queue 0 with @a's addresses (index filled in), after SET_VRING_NUM. */
static int vring_addr(struct vufront *vf, struct vhost_user_vring_addr a, bool mem)
{
	struct vhost_user_vring_state s = { .index = 0, .num = vufront_queue_size(vf) };
	int ret = mem ? negotiate_mem(vf) : negotiate(vf);

	if (!ret)
		ret = vufront_request(vf, VHOST_USER_SET_VRING_NUM, &s, sizeof(s), NULL, 0, false,
				      NULL, 0);
	return ret ? ret : raw(vf, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a));
}

/* Queue 0's real ring addresses (user addresses), each moved by @delta bytes. */
static struct vhost_user_vring_addr real_addr(struct vufront *vf, uint64_t delta)
{
	struct vhost_user_region r0 = vufront_region(vf, 0);
	uint64_t ua = r0.userspace_addr - r0.guest_phys_addr;

	return (struct vhost_user_vring_addr){
		.desc_user_addr = ua + vufront_desc_gpa(vf, 0) + delta,
		.used_user_addr = ua + vufront_used_gpa(vf, 0) + delta,
		.avail_user_addr = ua + vufront_avail_gpa(vf, 0) + delta,
		.log_guest_addr = vufront_used_gpa(vf, 0),
	};
}

static int h_vring_addr_unmapped(struct vufront *vf)
{
	struct vhost_user_vring_addr a = { .desc_user_addr = 0x1000, .used_user_addr = 0x3000,
					   .avail_user_addr = 0x2000 };

	return vring_addr(vf, a, true);
}

static int h_vring_addr_before_mem(struct vufront *vf)
{
	return vring_addr(vf, real_addr(vf, 0), false);
}

static int h_vring_addr_misaligned(struct vufront *vf)
{
	return vring_addr(vf, real_addr(vf, 1), true);
}

static int h_vring_addr_past_end(struct vufront *vf)
{
	struct vhost_user_region r = vufront_region(vf, vufront_nregions(vf) - 1);
	uint64_t end = r.userspace_addr + r.memory_size - 64;
	struct vhost_user_vring_addr a = { .desc_user_addr = end, .used_user_addr = end,
					   .avail_user_addr = end };

	return vring_addr(vf, a, true);
}

/* SET_VRING_KICK/CALL with payload @payload and @nfds descriptors, after the memory table. */
static int vring_fd(struct vufront *vf, uint32_t req, uint64_t payload, unsigned int nfds)
{
	int fds[4], ret = negotiate_mem(vf);

	for (unsigned int i = 0; i < nfds && i < G_N_ELEMENTS(fds); i++)
		fds[i] = vufront_memfd(vf);
	return ret ? ret : raw_fds(vf, req, &payload, sizeof(payload), fds, nfds);
}

static int h_kick_no_fd(struct vufront *vf)
{
	return vring_fd(vf, VHOST_USER_SET_VRING_KICK, 1, 0);
}
static int h_kick_extra_fds(struct vufront *vf)
{
	return vring_fd(vf, VHOST_USER_SET_VRING_KICK, 1, 3);
}
static int h_call_bad_index(struct vufront *vf)
{
	return vring_fd(vf, VHOST_USER_SET_VRING_CALL, 77, 1);
}

/* A kick before the ring has a size or addresses: it must not start. */
static int h_kick_before_setup(struct vufront *vf)
{
	int fd = eventfd(0, EFD_CLOEXEC), ret = negotiate_mem(vf);
	uint64_t v = VUFRONT_TXQ, one = 1;

	if (!ret)
		ret = raw_fds(vf, VHOST_USER_SET_VRING_KICK, &v, sizeof(v), &fd, 1);
	if (!ret && write(fd, &one, sizeof(one)) != sizeof(one))
		ret = -errno;
	close(fd);
	return ret;
}

static int h_get_vring_base_unstarted(struct vufront *vf)
{
	struct vhost_user_vring_state s = { .index = 1 };
	int ret = negotiate_mem(vf);

	return ret ? ret : raw(vf, VHOST_USER_GET_VRING_BASE, &s, sizeof(s));
}

static int h_log_base_no_fd(struct vufront *vf)
{
	struct vhost_user_log l = { .size = 4096 };
	int ret = negotiate_mem(vf);

	return ret ? ret : raw(vf, VHOST_USER_SET_LOG_BASE, &l, sizeof(l));
}

static int h_log_base_huge(struct vufront *vf)
{
	struct vhost_user_log l = { .size = 1ull << 40 };
	int ret = negotiate_mem(vf);
	int fd = memfd_create("hostile-log", MFD_CLOEXEC);

	if (!ret && (fd < 0 || ftruncate(fd, 4096) < 0))
		ret = -errno;
	if (!ret)
		ret = raw_fds(vf, VHOST_USER_SET_LOG_BASE, &l, sizeof(l), &fd, 1);
	if (fd >= 0)
		close(fd);
	return ret;
}

static int h_reset_owner_running(struct vufront *vf)
{
	int ret = raw(vf, VHOST_USER_RESET_OWNER, NULL, 0);

	if (!ret)
		vuhostile_arp_gateway(vf);
	return ret;
}

/* A new memory table of one page while the rings run; then traffic. */
static int h_mem_replace_running(struct vufront *vf)
{
	struct vhost_user_mem_table t = { .nregions = 1 };
	int fd = vufront_memfd(vf);

	t.regions[0] = vufront_region(vf, 0);
	t.regions[0].memory_size = 4096;
	if (raw_fds(vf, VHOST_USER_SET_MEM_TABLE, &t, 8 + sizeof(t.regions[0]), &fd, 1))
		return -EIO;
	vufront_kick(vf, VUFRONT_RXQ);
	vuhostile_arp_gateway(vf);
	return 0;
}

/* --- ring cases: hand-written transmit chains, then a kick --- */

static int tx_chain(struct vufront *vf, const struct vring_desc *d, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		*vufront_desc(vf, VUFRONT_TXQ, i) = d[i];
	vufront_avail_push(vf, VUFRONT_TXQ, 0);
	return vufront_kick(vf, VUFRONT_TXQ);
}

/* Guest address of @len fresh bytes of the scratch area. */
static uint64_t scratch(struct vufront *vf, size_t len)
{
	uint64_t gpa = 0;

	vufront_scratch(vf, len, &gpa);
	return gpa;
}

static int h_desc_out_of_range(struct vufront *vf)
{
	struct vring_desc d = { .addr = vufront_gpa_end(vf) + (1 << 20), .len = 100 };

	return tx_chain(vf, &d, 1);
}

static int h_desc_len_overflow(struct vufront *vf)
{
	struct vring_desc d = { .addr = vufront_gpa_end(vf) - 4096, .len = 0xffffffffu };

	return tx_chain(vf, &d, 1);
}

static int h_desc_addr_wrap(struct vufront *vf)
{
	struct vring_desc d = { .addr = ~0ull - 0xfff, .len = 0x2000 };

	return tx_chain(vf, &d, 1);
}

static int h_desc_loop(struct vufront *vf)
{
	uint64_t a = scratch(vf, 64);
	struct vring_desc d[2] = { { a, 32, VRING_DESC_F_NEXT, 1 }, { a, 32, VRING_DESC_F_NEXT, 0 } };

	return tx_chain(vf, d, 2);
}

static int h_chain_too_long(struct vufront *vf)
{
	unsigned int num = vufront_queue_size(vf);
	uint64_t a = scratch(vf, 64);

	for (unsigned int i = 0; i < num; i++)
		*vufront_desc(vf, VUFRONT_TXQ, i) = (struct vring_desc){
			a, 64, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % num) };
	vufront_avail_push(vf, VUFRONT_TXQ, 0);
	return vufront_kick(vf, VUFRONT_TXQ);
}

static int h_desc_next_out_of_range(struct vufront *vf)
{
	struct vring_desc d = { scratch(vf, 64), 64, VRING_DESC_F_NEXT, 60000 };

	return tx_chain(vf, &d, 1);
}

static int h_desc_write_on_tx(struct vufront *vf)
{
	struct vring_desc d = { scratch(vf, 128), 128, VRING_DESC_F_WRITE, 0 };

	return tx_chain(vf, &d, 1);
}

static int h_tx_runt(struct vufront *vf)
{
	struct vring_desc d = { scratch(vf, 16), 4, 0, 0 };

	return tx_chain(vf, &d, 1);
}

static int h_tx_zero_len(struct vufront *vf)
{
	struct vring_desc d = { scratch(vf, 16), 0, 0, 0 };

	return tx_chain(vf, &d, 1);
}

/* Twenty descriptors of 60000 bytes each: a 1.2 MB "frame". */
static int h_tx_oversize(struct vufront *vf)
{
	struct vring_desc d[20];
	uint64_t a = scratch(vf, 60000);

	for (unsigned int i = 0; i < G_N_ELEMENTS(d); i++)
		d[i] = (struct vring_desc){ a, 60000, i + 1 < G_N_ELEMENTS(d) ? VRING_DESC_F_NEXT : 0,
					    (uint16_t)(i + 1) };
	return tx_chain(vf, d, G_N_ELEMENTS(d));
}

/* An indirect head pointing at @table (@len bytes) at guest address @gpa, with @flags. */
static int indirect(struct vufront *vf, uint64_t gpa, uint32_t len, uint16_t flags)
{
	struct vring_desc d[2] = { { gpa, len, (uint16_t)(VRING_DESC_F_INDIRECT | flags), 1 },
				   { scratch(vf, 64), 64, 0, 0 } };

	return tx_chain(vf, d, 2);
}

static int h_indirect_nested(struct vufront *vf)
{
	uint64_t t1, t2, buf = scratch(vf, 64);
	struct vring_desc *a = vufront_scratch(vf, 16, &t1), *b = vufront_scratch(vf, 16, &t2);

	*b = (struct vring_desc){ buf, 64, 0, 0 };
	*a = (struct vring_desc){ t2, 16, VRING_DESC_F_INDIRECT, 0 };
	return indirect(vf, t1, 16, 0);
}

static int h_indirect_misaligned(struct vufront *vf)
{
	uint64_t t, buf = scratch(vf, 64);
	uint8_t *p = vufront_scratch(vf, 48, &t);
	struct vring_desc d = { buf, 64, 0, 0 };

	memcpy(p + 1, &d, sizeof(d));
	return indirect(vf, t + 1, 16, 0);
}

static int h_indirect_bad_len(struct vufront *vf)
{
	uint64_t t, buf = scratch(vf, 64);
	struct vring_desc *a = vufront_scratch(vf, 32, &t);

	a[0] = (struct vring_desc){ buf, 64, 0, 0 };
	return indirect(vf, t, 20, 0);
}

static int h_indirect_oversized(struct vufront *vf)
{
	/* 65536 entries (1 MiB), more than any queue; zeroed memory past the scratch area. */
	return indirect(vf, scratch(vf, 16), 16u << 16, 0);
}

static int h_indirect_beyond_mem(struct vufront *vf)
{
	return indirect(vf, vufront_gpa_end(vf) - 16, 64, 0);
}

static int h_indirect_with_next(struct vufront *vf)
{
	uint64_t t, buf = scratch(vf, 64);
	struct vring_desc *a = vufront_scratch(vf, 16, &t);

	*a = (struct vring_desc){ buf, 64, 0, 0 };
	return indirect(vf, t, 16, VRING_DESC_F_NEXT);
}

static int h_indirect_loop(struct vufront *vf)
{
	uint64_t t, buf = scratch(vf, 64);
	struct vring_desc *a = vufront_scratch(vf, 32, &t);

	a[0] = (struct vring_desc){ buf, 32, VRING_DESC_F_NEXT, 1 };
	a[1] = (struct vring_desc){ buf, 32, VRING_DESC_F_NEXT, 0 };
	return indirect(vf, t, 32, 0);
}

static int h_avail_idx_jump(struct vufront *vf)
{
	vufront_avail_set_idx(vf, VUFRONT_TXQ, (uint16_t)(vufront_avail_idx(vf, VUFRONT_TXQ) +
							   vufront_queue_size(vf) + 5));
	return vufront_kick(vf, VUFRONT_TXQ);
}

/* Receive buffers the device may not write (or too small), then a frame that wants an answer. */
static int rx_descs(struct vufront *vf, uint16_t clear_flags, uint32_t len)
{
	for (unsigned int i = 0; i < vufront_queue_size(vf); i++) {
		struct vring_desc *d = vufront_desc(vf, VUFRONT_RXQ, i);

		d->flags &= (uint16_t)~clear_flags;
		if (len)
			d->len = len;
	}
	vuhostile_arp_gateway(vf);
	return 0;
}

static int h_rx_desc_readonly(struct vufront *vf) { return rx_descs(vf, VRING_DESC_F_WRITE, 0); }
static int h_rx_buffer_tiny(struct vufront *vf) { return rx_descs(vf, 0, 4); }

static const struct vuhostile_case cases[] = {
	{ "unknown-request", VUHOSTILE_CONNECTED, 0, h_unknown_request, "request 1000" },
	{ "bad-version", VUHOSTILE_CONNECTED, 0, h_bad_version, "GET_FEATURES with version 2" },
	{ "oversize-payload", VUHOSTILE_CONNECTED, 0, h_oversize_payload,
	  "SET_FEATURES claiming 256 MiB of payload" },
	{ "short-payload", VUHOSTILE_CONNECTED, 0, h_short_payload, "SET_FEATURES with 4 bytes" },
	{ "features-unoffered", VUHOSTILE_CONNECTED, 0, h_features_unoffered,
	  "SET_FEATURES with all 64 bits" },
	{ "too-many-fds", VUHOSTILE_CONNECTED, 0, h_too_many_fds, "GET_FEATURES carrying 16 fds" },
	{ "half-header", VUHOSTILE_CONNECTED, 0, h_half_header,
	  "6 bytes of a header, then silence" },
	{ "mem-table-no-fd", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE, h_mem_no_fd,
	  "1 region, no fd" },
	{ "mem-table-fd-mismatch", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE, h_mem_fd_mismatch,
	  "2 regions, 1 fd" },
	{ "mem-table-extra-fds", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE, h_mem_extra_fds,
	  "1 region, 3 fds" },
	{ "mem-table-too-many", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE, h_mem_too_many,
	  "9 regions, 9 fds" },
	{ "mem-table-zero-regions", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE, h_mem_zero_regions,
	  "0 regions" },
	{ "mem-table-zero-size", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE, h_mem_zero_size,
	  "a region of 0 bytes" },
	{ "mem-table-overlap", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE, h_mem_overlap,
	  "2 regions overlapping in guest addresses" },
	{ "mem-table-beyond-fd", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE, h_mem_beyond_fd,
	  "a 1 TiB region on a small memfd" },
	{ "mem-table-offset-overflow", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE,
	  h_mem_offset_overflow,
	  "mmap_offset + size wraps 64 bits" },
	{ "mem-table-offset-unaligned", VUHOSTILE_CONNECTED, VHOST_USER_SET_MEM_TABLE,
	  h_mem_offset_unaligned,
	  "mmap_offset 1" },
	{ "vring-num-zero", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_NUM, h_vring_num_zero,
	  "SET_VRING_NUM 0" },
	{ "vring-num-odd", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_NUM, h_vring_num_odd,
	  "SET_VRING_NUM 300" },
	{ "vring-num-huge", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_NUM, h_vring_num_huge,
	  "SET_VRING_NUM 65536" },
	{ "vring-index-bad", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_NUM, h_vring_index_bad,
	  "SET_VRING_NUM on queue 200" },
	{ "vring-addr-unmapped", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_ADDR, h_vring_addr_unmapped,
	  "ring addresses outside every region" },
	{ "vring-addr-before-mem", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_ADDR, h_vring_addr_before_mem,
	  "SET_VRING_ADDR before SET_MEM_TABLE" },
	{ "vring-addr-misaligned", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_ADDR, h_vring_addr_misaligned,
	  "ring parts at odd addresses" },
	{ "vring-addr-past-end", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_ADDR, h_vring_addr_past_end,
	  "rings starting 64 bytes before the end of memory" },
	{ "kick-no-fd", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_KICK, h_kick_no_fd,
	  "SET_VRING_KICK, no fd, no 'no fd' flag" },
	{ "kick-extra-fds", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_KICK, h_kick_extra_fds,
	  "SET_VRING_KICK with 3 fds" },
	{ "kick-before-setup", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_KICK, h_kick_before_setup,
	  "kick fd (and a kick) before size and addresses" },
	{ "call-bad-index", VUHOSTILE_CONNECTED, VHOST_USER_SET_VRING_CALL, h_call_bad_index,
	  "SET_VRING_CALL for queue 77" },
	{ "get-vring-base-unstarted", VUHOSTILE_CONNECTED, 0, h_get_vring_base_unstarted,
	  "GET_VRING_BASE of a queue never set up" },
	{ "log-base-no-fd", VUHOSTILE_CONNECTED, VHOST_USER_SET_LOG_BASE, h_log_base_no_fd,
	  "SET_LOG_BASE without its fd" },
	{ "log-base-huge", VUHOSTILE_CONNECTED, VHOST_USER_SET_LOG_BASE, h_log_base_huge,
	  "a 1 TiB log on a 4 KiB memfd" },
	{ "reset-owner-running", VUHOSTILE_STARTED, VHOST_USER_RESET_OWNER, h_reset_owner_running,
	  "RESET_OWNER while running, then ARP" },
	{ "mem-table-replace-running", VUHOSTILE_STARTED, VHOST_USER_SET_MEM_TABLE, h_mem_replace_running,
	  "a one-page memory table while running, then ARP" },
	{ "desc-out-of-range", VUHOSTILE_STARTED, 0, h_desc_out_of_range,
	  "transmit buffer 1 MiB past memory" },
	{ "desc-len-overflow", VUHOSTILE_STARTED, 0, h_desc_len_overflow,
	  "transmit buffer of 4 GiB at the last page" },
	{ "desc-addr-wrap", VUHOSTILE_STARTED, 0, h_desc_addr_wrap,
	  "address + length wraps 64 bits" },
	{ "desc-loop", VUHOSTILE_STARTED, 0, h_desc_loop, "chain 0 -> 1 -> 0" },
	{ "chain-too-long", VUHOSTILE_STARTED, 0, h_chain_too_long,
	  "every descriptor chained, the last back to the first" },
	{ "desc-next-out-of-range", VUHOSTILE_STARTED, 0, h_desc_next_out_of_range,
	  "next = 60000" },
	{ "desc-write-on-tx", VUHOSTILE_STARTED, 0, h_desc_write_on_tx,
	  "device-writable buffer on the transmitq" },
	{ "tx-runt", VUHOSTILE_STARTED, 0, h_tx_runt, "4 bytes: less than a virtio-net header" },
	{ "tx-zero-len", VUHOSTILE_STARTED, 0, h_tx_zero_len, "a buffer of 0 bytes" },
	{ "tx-oversize", VUHOSTILE_STARTED, 0, h_tx_oversize, "a chain of 1.2 MB" },
	{ "indirect-nested", VUHOSTILE_STARTED, 0, h_indirect_nested,
	  "indirect table inside an indirect table" },
	{ "indirect-misaligned", VUHOSTILE_STARTED, 0, h_indirect_misaligned,
	  "indirect table at an odd address" },
	{ "indirect-bad-len", VUHOSTILE_STARTED, 0, h_indirect_bad_len,
	  "indirect table of 20 bytes" },
	{ "indirect-oversized", VUHOSTILE_STARTED, 0, h_indirect_oversized,
	  "indirect table of 65536 entries" },
	{ "indirect-beyond-mem", VUHOSTILE_STARTED, 0, h_indirect_beyond_mem,
	  "indirect table crossing the end of memory" },
	{ "indirect-with-next", VUHOSTILE_STARTED, 0, h_indirect_with_next,
	  "INDIRECT and NEXT on one descriptor" },
	{ "indirect-loop", VUHOSTILE_STARTED, 0, h_indirect_loop,
	  "a loop inside an indirect table" },
	{ "avail-idx-jump", VUHOSTILE_STARTED, 0, h_avail_idx_jump,
	  "available index moved by queue size + 5" },
	{ "rx-desc-readonly", VUHOSTILE_STARTED, 0, h_rx_desc_readonly,
	  "receive buffers without WRITE, then ARP" },
	{ "rx-buffer-tiny", VUHOSTILE_STARTED, 0, h_rx_buffer_tiny,
	  "receive buffers of 4 bytes, then ARP" },
};

/*
 * settle() - read what the backend says for settle_ms.  Return: true
 * if it closed the connection.  A reply to the hostile request (@req, with
 * REPLY_ACK) is kept in @ack.
 */
static bool settle(struct vufront *vf, uint32_t req, int settle_ms, uint64_t *ack)
{
	int64_t deadline = now_ms() + settle_ms;

	for (;;) {
		struct vhost_user_hdr h;
		uint64_t v = 0;
		int64_t left = deadline - now_ms();
		int n = left > 0 ? vufront_recv_raw(vf, &h, &v, sizeof(v), (int)left) : -ETIMEDOUT;

		if (n == -ECONNRESET || n == -ENOTCONN)
			return true;
		if (n < 0)
			return false;
		if (req && h.request == req && (h.flags & VHOST_USER_FLAG_REPLY))
			*ack = v;
	}
}

/*
 * liveness() - does the backend still answer GET_FEATURES on this
 * connection?  Replies to the hostile request (@req) seen meanwhile are
 * kept in @ack.
 */
static const char *liveness(struct vufront *vf, uint32_t req, uint64_t *ack)
{
	struct vufront_raw m = { .request = VHOST_USER_GET_FEATURES, .flags = VHOST_USER_VERSION };
	int64_t deadline = now_ms() + VUHOSTILE_LIVENESS_MS;

	if (vufront_send_raw(vf, &m))
		return "closed";
	for (;;) {
		struct vhost_user_hdr h;
		uint64_t v = 0;
		int64_t left = deadline - now_ms();
		int n = left > 0 ? vufront_recv_raw(vf, &h, &v, sizeof(v), (int)left) : -ETIMEDOUT;

		if (n == -ECONNRESET || n == -ENOTCONN)
			return "closed";
		if (n < 0)
			return "unresponsive";
		if (req && h.request == req && (h.flags & VHOST_USER_FLAG_REPLY))
			*ack = v;
		if (h.request == VHOST_USER_GET_FEATURES && (h.flags & VHOST_USER_FLAG_REPLY))
			return "serving";
	}
}


const struct vuhostile_case *vuhostile_cases(size_t *n)
{
	*n = G_N_ELEMENTS(cases);
	return cases;
}

const struct vuhostile_case *vuhostile_find(const char *name)
{
	for (size_t i = 0; name && i < G_N_ELEMENTS(cases); i++)
		if (!strcmp(name, cases[i].name))
			return &cases[i];
	return NULL;
}

int vuhostile_prepare(struct vufront *vf, const struct vuhostile_case *hc)
{
	if (hc->phase != VUHOSTILE_STARTED)
		return 0;
	return vufront_start(vf, VUFRONT_FEATURES_BASE | VU_BIT(VIRTIO_RING_F_INDIRECT_DESC),
			     VUFRONT_PROTOCOL_ALL);
}

enum vuhostile_result vuhostile_judge(struct vufront *vf, const struct vuhostile_case *hc,
				      int settle_ms, uint64_t *ack)
{
	const char *r;

	*ack = UINT64_MAX;
	if (settle(vf, hc->request, settle_ms, ack))
		return VUHOSTILE_CLOSED;
	r = liveness(vf, hc->request, ack);
	if (!strcmp(r, "closed"))
		return VUHOSTILE_CLOSED;
	return strcmp(r, "serving") ? VUHOSTILE_UNRESPONSIVE : VUHOSTILE_SERVING;
}

const char *vuhostile_result_str(enum vuhostile_result r)
{
	static const char *const names[] = { "closed", "serving", "unresponsive" };

	G_STATIC_ASSERT(G_N_ELEMENTS(names) == VUHOSTILE_UNRESPONSIVE + 1);
	return names[r];
}
