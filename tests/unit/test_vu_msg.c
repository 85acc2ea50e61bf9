/* test_vu_msg.c - unit tests of the vhost-user message codec and the memory table rules. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <cmocka.h>
#include <glib.h>

#include "backend/vu_mem.h"
#include "backend/vu_msg.h"

/* Fake fd numbers: the codec never touches them, only moves them. */
#define FD_A 100
#define FD_B 101

/* Build a request: header, then @size payload bytes from @pl.  Returns its length. */
static size_t build(uint8_t *buf, uint32_t req, uint32_t flags, const void *pl, uint32_t size)
{
	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	if (size)
		memcpy(buf + VU_HDR_SIZE, pl, size);
	return VU_HDR_SIZE + size;
}

static int parse(const uint8_t *buf, size_t len, const int *fds, unsigned int nfds,
		 struct vu_msg *msg, const char **why)
{
	*why = NULL;
	return vu_msg_parse(buf, len, fds, nfds, msg, why);
}

static void test_frame_len(void **state)
{
	uint8_t buf[VU_MSG_MAX + 16];
	const char *why = NULL;
	size_t total = 0;
	uint64_t v = 1;

	(void)state;
	build(buf, VU_REQ_SET_FEATURES, VU_VERSION, &v, 8);
	for (size_t n = 0; n < VU_HDR_SIZE; n++)
		assert_int_equal(vu_msg_frame_len(buf, n, &total, &why), 0);
	assert_int_equal(vu_msg_frame_len(buf, VU_HDR_SIZE, &total, &why), 1);
	assert_int_equal(total, VU_HDR_SIZE + 8);
	/* A size no request we handle has: the stream cannot be trusted. */
	build(buf, VU_REQ_SET_FEATURES, VU_VERSION, NULL, 0);
	uint32_t big = VU_PAYLOAD_MAX + 1;
	memcpy(buf + 8, &big, 4);
	assert_int_equal(vu_msg_frame_len(buf, VU_HDR_SIZE, &total, &why), -EPROTO);
	assert_non_null(why);
}

static void test_simple_requests(void **state)
{
	uint8_t buf[VU_MSG_MAX];
	struct vu_msg msg;
	const char *why;
	uint64_t feat = 0x170008008ull;
	uint32_t st[2] = { 1, 256 };
	size_t len;

	(void)state;
	len = build(buf, VU_REQ_GET_FEATURES, VU_VERSION, NULL, 0);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), 0);
	assert_int_equal(msg.request, VU_REQ_GET_FEATURES);
	assert_false(msg.need_reply);

	len = build(buf, VU_REQ_SET_FEATURES, VU_VERSION | VU_FLAG_NEED_REPLY, &feat, 8);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), 0);
	assert_true(msg.need_reply);
	assert_true(msg.u.u64 == feat);

	len = build(buf, VU_REQ_SET_VRING_NUM, VU_VERSION, st, 8);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), 0);
	assert_int_equal(msg.u.state.index, 1);
	assert_int_equal(msg.u.state.num, 256);
	assert_int_equal(msg.nfds, 0);
}

static void test_header_rules(void **state)
{
	uint8_t buf[VU_MSG_MAX];
	struct vu_msg msg;
	const char *why;
	uint64_t v = 0;
	size_t len;

	(void)state;
	/* Wrong version, reply bit, reserved flags. */
	len = build(buf, VU_REQ_SET_FEATURES, 2, &v, 8);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), -EPROTO);
	assert_string_equal(why, "unsupported protocol version");
	len = build(buf, VU_REQ_SET_FEATURES, VU_VERSION | VU_FLAG_REPLY, &v, 8);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), -EPROTO);
	len = build(buf, VU_REQ_SET_FEATURES, VU_VERSION | 0x100, &v, 8);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), -EPROTO);
	assert_string_equal(why, "reserved header flags set");
	/* Unknown and known-but-unserved requests. */
	len = build(buf, 9999, VU_VERSION, NULL, 0);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), -EPROTO);
	len = build(buf, VU_REQ_SET_LOG_FD, VU_VERSION, NULL, 0);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), -EPROTO);
	assert_string_equal(vu_request_str(VU_REQ_SET_LOG_FD), "SET_LOG_FD");
	assert_string_equal(vu_request_str(12345), "UNKNOWN");
	/* Length not matching the header (truncated, trailing bytes). */
	len = build(buf, VU_REQ_SET_FEATURES, VU_VERSION, &v, 8);
	assert_int_equal(parse(buf, len - 1, NULL, 0, &msg, &why), -EPROTO);
	assert_int_equal(parse(buf, len + 1, NULL, 0, &msg, &why), -EPROTO);
	/* Payload size wrong for the request. */
	len = build(buf, VU_REQ_SET_FEATURES, VU_VERSION, &v, 4);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), -EPROTO);
	assert_string_equal(why, "payload size wrong for this request");
	len = build(buf, VU_REQ_GET_FEATURES, VU_VERSION, &v, 8);
	assert_int_equal(parse(buf, len, NULL, 0, &msg, &why), -EPROTO);
}

static void test_fd_rules(void **state)
{
	uint8_t buf[VU_MSG_MAX];
	struct vu_msg msg;
	const char *why;
	int fds[VU_MAX_FDS + 1] = { FD_A, FD_B };
	uint64_t v = 1;            /* vring 1, with an fd */
	uint64_t nofd = 1 | VU_VRING_NOFD;
	size_t len;

	(void)state;
	len = build(buf, VU_REQ_SET_VRING_KICK, VU_VERSION, &v, 8);
	assert_int_equal(parse(buf, len, fds, 0, &msg, &why), -EBADMSG);
	assert_int_equal(parse(buf, len, fds, 2, &msg, &why), -EBADMSG);
	for (unsigned int i = 0; i < VU_MAX_FDS; i++)
		assert_int_equal(msg.fds[i], -1); /* nothing taken on failure */
	assert_int_equal(parse(buf, len, fds, 1, &msg, &why), 0);
	assert_int_equal(msg.nfds, 1);
	assert_int_equal(msg.fds[0], FD_A);
	assert_int_equal(vu_msg_fd_count(&msg), 1);
	assert_int_equal(msg.u.vring_fd.index, 1);
	assert_false(msg.u.vring_fd.nofd);

	len = build(buf, VU_REQ_SET_VRING_CALL, VU_VERSION, &nofd, 8);
	assert_int_equal(parse(buf, len, fds, 1, &msg, &why), -EBADMSG);
	assert_int_equal(parse(buf, len, fds, 0, &msg, &why), 0);
	assert_true(msg.u.vring_fd.nofd);
	/* Unknown bits, out-of-range index. */
	v = 1 | (1ull << 9);
	len = build(buf, VU_REQ_SET_VRING_ERR, VU_VERSION, &v, 8);
	assert_int_equal(parse(buf, len, fds, 1, &msg, &why), -EPROTO);
	v = 2;
	len = build(buf, VU_REQ_SET_VRING_ERR, VU_VERSION, &v, 8);
	assert_int_equal(parse(buf, len, fds, 1, &msg, &why), -ERANGE);
	/* fds on a request that takes none; more than any request carries. */
	len = build(buf, VU_REQ_GET_FEATURES, VU_VERSION, NULL, 0);
	assert_int_equal(parse(buf, len, fds, 1, &msg, &why), -EBADMSG);
	assert_int_equal(parse(buf, len, fds, VU_MAX_FDS + 1, &msg, &why), -EBADMSG);
	/* SET_LOG_BASE needs its fd. */
	uint64_t log[2] = { 4096, 0 };
	len = build(buf, VU_REQ_SET_LOG_BASE, VU_VERSION, log, 16);
	assert_int_equal(parse(buf, len, fds, 0, &msg, &why), -EBADMSG);
	assert_int_equal(parse(buf, len, fds, 1, &msg, &why), 0);
	assert_true(msg.u.log.mmap_size == 4096);
}

/* A SET_MEM_TABLE payload of @n regions. */
static size_t build_mem(uint8_t *buf, uint32_t n, uint32_t claimed)
{
	uint8_t pl[VU_PAYLOAD_MAX] = { 0 };

	memcpy(pl, &claimed, 4);
	for (uint32_t i = 0; i < n && i < VU_MAX_REGIONS; i++) {
		uint64_t r[4] = { i * 0x100000ull, 0x100000, 0x7f0000000000ull + i * 0x100000ull, 0 };

		memcpy(pl + VU_MEM_HDR_SIZE + i * VU_MEM_REGION_SIZE, r, sizeof(r));
	}
	return build(buf, VU_REQ_SET_MEM_TABLE, VU_VERSION | VU_FLAG_NEED_REPLY, pl,
		     VU_MEM_HDR_SIZE + n * VU_MEM_REGION_SIZE);
}

static void test_mem_table(void **state)
{
	uint8_t buf[VU_MSG_MAX];
	struct vu_msg msg;
	const char *why;
	int fds[VU_MAX_FDS] = { 10, 11, 12, 13, 14, 15, 16, 17 };
	size_t len;

	(void)state;
	len = build_mem(buf, 2, 2);
	assert_int_equal(parse(buf, len, fds, 2, &msg, &why), 0);
	assert_int_equal(msg.u.mem.nregions, 2);
	assert_true(msg.u.mem.regions[1].gpa == 0x100000);
	assert_int_equal(msg.fds[1], 11);
	assert_int_equal(parse(buf, len, fds, 1, &msg, &why), -EBADMSG);
	len = build_mem(buf, 8, 8);
	assert_int_equal(parse(buf, len, fds, 8, &msg, &why), 0);
	/* Count and size disagree; count out of range. */
	len = build_mem(buf, 2, 3);
	assert_int_equal(parse(buf, len, fds, 3, &msg, &why), -EPROTO);
	len = build_mem(buf, 0, 0);
	assert_int_equal(parse(buf, len, fds, 0, &msg, &why), -ERANGE);
	len = build_mem(buf, 8, 9);
	assert_int_equal(parse(buf, len, fds, 8, &msg, &why), -ERANGE);
}

static void test_replies(void **state)
{
	uint8_t out[VU_MSG_MAX];
	uint32_t hdr[3];
	uint64_t v;
	size_t n;

	(void)state;
	n = vu_msg_encode_u64_reply(VU_REQ_GET_FEATURES, 0x1234, out, sizeof(out));
	assert_int_equal(n, VU_HDR_SIZE + 8);
	memcpy(hdr, out, sizeof(hdr));
	memcpy(&v, out + VU_HDR_SIZE, 8);
	assert_int_equal(hdr[0], VU_REQ_GET_FEATURES);
	assert_int_equal(hdr[1], VU_VERSION | VU_FLAG_REPLY);
	assert_int_equal(hdr[2], 8);
	assert_true(v == 0x1234);
	n = vu_msg_encode_state_reply(VU_REQ_GET_VRING_BASE, 1, 741, out, sizeof(out));
	assert_int_equal(n, VU_HDR_SIZE + 8);
	memcpy(hdr, out + VU_HDR_SIZE, 8);
	assert_int_equal(hdr[0], 1);
	assert_int_equal(hdr[1], 741);
	assert_int_equal(vu_msg_encode_u64_reply(1, 0, out, VU_HDR_SIZE + 7), 0);
}

static void test_mem_validate(void **state)
{
	struct vu_region_desc d[3] = {
		{ .gpa = 0, .size = 0xa0000, .uva = 0x10000000, .mmap_offset = 0 },
		{ .gpa = 0xc0000, .size = 0xff40000, .uva = 0x100c0000, .mmap_offset = 0xc0000 },
	};
	const char *why = NULL;

	(void)state;
	assert_int_equal(vu_mem_validate(d, 2, &why), 0);
	d[2] = (struct vu_region_desc){ .gpa = 0x9f000, .size = 0x1000, .uva = 0x90000000 };
	assert_int_equal(vu_mem_validate(d, 3, &why), -EINVAL);
	assert_string_equal(why, "memory regions overlap in guest physical space");
	d[2] = (struct vu_region_desc){ .gpa = 0x20000000, .size = 0x1000, .uva = 0x10001000 };
	assert_int_equal(vu_mem_validate(d, 3, &why), -EINVAL);
	assert_string_equal(why, "memory regions overlap in front-end address space");
	d[2] = (struct vu_region_desc){ .gpa = UINT64_MAX - 0xfff, .size = 0x2000, .uva = 0x90000000 };
	assert_int_equal(vu_mem_validate(d, 3, &why), -EINVAL);
	assert_string_equal(why, "memory region wraps around the address space");
	/* The last byte of the address space is fine. */
	d[2] = (struct vu_region_desc){ .gpa = UINT64_MAX - 0xfff, .size = 0x1000, .uva = 0x90000000 };
	assert_int_equal(vu_mem_validate(d, 3, &why), 0);
	d[2].size = 0;
	assert_int_equal(vu_mem_validate(d, 3, &why), -EINVAL);
	assert_string_equal(why, "memory region of size 0");
	d[2] = (struct vu_region_desc){ .gpa = 0x30000000, .size = 0x1000, .uva = 0x90000000,
					.mmap_offset = UINT64_MAX };
	assert_int_equal(vu_mem_validate(d, 3, &why), -EINVAL);
	assert_int_equal(vu_mem_validate(d, 0, &why), -EINVAL);
	assert_int_equal(vu_mem_validate(d, VU_MAX_REGIONS + 1, &why), -EINVAL);
}

static void test_mem_translate(void **state)
{
	static uint8_t ram_a[0x2000], ram_b[0x1000];
	struct vu_region_desc d[2] = {
		{ .gpa = 0x10000, .size = sizeof(ram_a), .uva = 0x500000 },
		{ .gpa = 0x12000, .size = sizeof(ram_b), .uva = 0x900000 }, /* adjacent in GPA */
	};
	uint8_t *host[2] = { ram_a, ram_b };
	struct iovec iov[4];
	uint64_t gpa[4];
	unsigned int n = 0;
	struct vu_mem m;
	const char *why;
	uint64_t g;

	(void)state;
	assert_int_equal(vu_mem_set(&m, d, 2, host, &why), 0);
	assert_ptr_equal(vu_mem_gpa_to_host(&m, 0x10000, 0x2000), ram_a);
	assert_null(vu_mem_gpa_to_host(&m, 0x10000, 0x2001)); /* spans two regions */
	assert_null(vu_mem_gpa_to_host(&m, 0xffff, 1));
	assert_null(vu_mem_gpa_to_host(&m, 0x10000, 0));
	assert_null(vu_mem_gpa_to_host(&m, 0x12fff, UINT64_MAX)); /* wraps */
	assert_ptr_equal(vu_mem_uva_to_host(&m, 0x900010, 16), ram_b + 16);
	assert_null(vu_mem_uva_to_host(&m, 0x501fff, 2));
	assert_int_equal(vu_mem_uva_to_gpa(&m, 0x900010, &g), 0);
	assert_true(g == 0x12010);
	assert_int_equal(vu_mem_uva_to_gpa(&m, 0x10, &g), -EFAULT);

	/* A buffer across the two adjacent regions splits into two iovecs. */
	assert_int_equal(vu_mem_gpa_to_iov(&m, 0x11f00, 0x200, iov, gpa, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_ptr_equal(iov[0].iov_base, ram_a + 0x1f00);
	assert_int_equal(iov[0].iov_len, 0x100);
	assert_ptr_equal(iov[1].iov_base, ram_b);
	assert_int_equal(iov[1].iov_len, 0x100);
	assert_true(gpa[1] == 0x12000);
	/* Not enough iovecs; running off the end; wrapping. */
	n = 3;
	assert_int_equal(vu_mem_gpa_to_iov(&m, 0x11f00, 0x200, iov, gpa, 4, &n), -ENOBUFS);
	n = 0;
	assert_int_equal(vu_mem_gpa_to_iov(&m, 0x12f00, 0x200, iov, gpa, 4, &n), -EFAULT);
	n = 0;
	assert_int_equal(vu_mem_gpa_to_iov(&m, UINT64_MAX, 2, iov, gpa, 4, &n), -EFAULT);
	n = 0;
	assert_int_equal(vu_mem_gpa_to_iov(&m, 0x10000, 0, iov, gpa, 4, &n), 0);
	assert_int_equal(n, 0);
}

/* F3: mappings cover whole pages of the fd; hugetlbfs lengths must be huge-page multiples. */
static void test_mem_span(void **state)
{
	const uint64_t page = 4096, huge = 2u << 20;
	uint64_t start;
	size_t len;

	(void)state;
	/* 4 KiB pages: from the page below the offset, up to the page above the end. */
	assert_int_equal(vu_mem_span(0x1234, 0x100, page, &start, &len), 0);
	assert_true(start == 0x1000 && len == page);
	assert_int_equal(vu_mem_span(0, 3 * page, page, &start, &len), 0);
	assert_true(start == 0 && len == 3 * page);
	/* The reviewer's leak: 2 MiB + 4 KiB on hugetlbfs is two huge pages, unmapped as such. */
	assert_int_equal(vu_mem_span(0, huge + page, huge, &start, &len), 0);
	assert_true(start == 0 && len == 2 * huge);
	assert_int_equal(vu_mem_span(huge + page, page, huge, &start, &len), 0);
	assert_true(start == huge && len == huge);
	assert_int_equal(vu_mem_span(huge - 1, 2, huge, &start, &len), 0);
	assert_true(start == 0 && len == 2 * huge);
	assert_int_equal(vu_mem_span(4 * huge, 4 * huge, huge, &start, &len), 0);
	assert_true(start == 4 * huge && len == 4 * huge);
	/* Nothing to map, a granule that is not a power of two, rounding past 2^64. */
	assert_int_equal(vu_mem_span(0, 0, page, &start, &len), -EINVAL);
	assert_int_equal(vu_mem_span(0, page, 3 * page, &start, &len), -EINVAL);
	assert_int_equal(vu_mem_span(0, page, 0, &start, &len), -EINVAL);
	assert_int_equal(vu_mem_span(huge - 1, UINT64_MAX - huge, huge, &start, &len), -EINVAL);
	assert_int_equal(vu_mem_span(0, UINT64_MAX, page, &start, &len), -EINVAL);
}

/* F16: vu_mem_map() names the rule a table broke, not "smaller" for every failure. */
static void test_mem_map_reasons(void **state)
{
	struct vu_region_desc d = { .gpa = 0, .size = 2 * 4096, .uva = 0x10000 };
	const char *why = NULL;
	bool unsealed;
	struct vu_mem m;
	int fd = memfd_create("short", MFD_CLOEXEC), p[2];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	assert_int_equal(vu_mem_map(&m, &d, 1, &fd, &unsealed, &why), -EINVAL);
	assert_string_equal(why, "memory fd smaller than its region");
	assert_int_equal(m.nregions, 0);
	/* Something mmap() refuses for another reason: a pipe has no pages. */
	assert_int_equal(pipe(p), 0);
	assert_true(vu_mem_map(&m, &d, 1, &p[0], &unsealed, &why) < 0);
	assert_string_equal(why, "cannot map a memory region");
	/* Big enough: mapped, reported unsealed, unmapped cleanly. */
	assert_int_equal(ftruncate(fd, 2 * 4096), 0);
	assert_int_equal(vu_mem_map(&m, &d, 1, &fd, &unsealed, &why), 0);
	assert_true(unsealed);
	assert_int_equal(vu_mem_unmap(&m), 0);
	close(p[0]);
	close(p[1]);
	close(fd);
}

static void test_dirty_log(void **state)
{
	uint8_t bits[4] = { 0 };   /* 32 pages */
	struct vu_log log;

	(void)state;
	vu_log_set(&log, bits, 0);
	assert_false(vu_log_active(&log));
	assert_int_equal(vu_log_write(&log, 0, 100), 0);
	vu_log_set(&log, bits, sizeof(bits));
	assert_int_equal(vu_log_write(&log, 0x1fff, 2), 0); /* pages 1 and 2 */
	assert_int_equal(bits[0], 0x06);
	assert_int_equal(vu_log_write(&log, 9 * VU_LOG_PAGE, 1), 0);
	assert_int_equal(bits[1], 0x02);
	/* Beyond the bitmap: the part inside is marked, the rest reported. */
	assert_int_equal(vu_log_write(&log, 31 * VU_LOG_PAGE, 2 * VU_LOG_PAGE), -ERANGE);
	assert_int_equal(bits[3], 0x80);
	assert_int_equal(vu_log_write(&log, 64 * VU_LOG_PAGE, 1), -ERANGE);
	assert_int_equal(vu_log_write(&log, UINT64_MAX, UINT64_MAX), -ERANGE);
	assert_int_equal(vu_log_write(&log, 0, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_len),
		cmocka_unit_test(test_simple_requests),
		cmocka_unit_test(test_header_rules),
		cmocka_unit_test(test_fd_rules),
		cmocka_unit_test(test_mem_table),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_mem_validate),
		cmocka_unit_test(test_mem_translate),
		cmocka_unit_test(test_mem_span),
		cmocka_unit_test(test_mem_map_reasons),
		cmocka_unit_test(test_dirty_log),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
