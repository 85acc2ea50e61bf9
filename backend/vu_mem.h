/* vu_mem.h - the guest memory table of a vhost-user front-end: validation, translation, dirty log. */
#ifndef MESHSLIRP_BACKEND_VU_MEM_H
#define MESHSLIRP_BACKEND_VU_MEM_H

/*
 * Theory of operation
 *
 * SET_MEM_TABLE describes up to VU_MAX_REGIONS regions of guest RAM, each
 * with its guest physical address (GPA, what descriptors carry), its size,
 * the front-end's virtual address (UVA, what SET_VRING_ADDR carries) and
 * its offset in the fd that maps it.  The table logic is pure:
 * vu_mem_validate() refuses zero sizes, ranges that wrap, and overlaps in
 * GPA or in UVA space; vu_mem_set() builds a table over host pointers the
 * caller provides (the fuzzer and the unit tests use their own buffers).
 * vu_mem_map() is the thin I/O layer: it checks each fd's size, maps each
 * region MAP_SHARED (from its page-aligned offset, not from 0) and hands the
 * pointers to vu_mem_set(); vu_mem_unmap() undoes it.  "Page" is the fd's:
 * on hugetlbfs (fstatfs) the huge page (st_blksize), since the kernel maps
 * and unmaps whole huge pages there and munmap() with any other length
 * fails and leaves the mapping; vu_mem_span() does the rounding and the
 * rounded length is kept for munmap().  Every munmap() result is checked:
 * a failure is returned and counted (vu_mem_unmap_failures()).  Without
 * MAP_NORESERVE, an fd the huge page pool cannot back fails to map
 * (ENOMEM) instead of faulting at first use.
 *
 * Translation is overflow-safe: a range [a, a + len) translates only if it
 * lies entirely inside mapped memory.  vu_mem_gpa_to_host() and
 * vu_mem_uva_to_host() want the whole range in one region (ring parts must
 * be contiguous for us).  vu_mem_gpa_to_iov() accepts a buffer that spans
 * adjacent regions and splits it into iovecs, bounded by the caller's array:
 * one descriptor can never need more than VU_MAX_REGIONS of them.
 *
 * Dirty log (live migration, VHOST_F_LOG_ALL): a bitmap, one bit per
 * VU_LOG_PAGE bytes of guest physical memory, shared with the front-end
 * (LOG_SHMFD).  vu_log_write() sets the bits of a GPA range with an atomic OR
 * (the front-end clears them concurrently), clamped to the bitmap's size;
 * it reports a range that fell outside so the caller can count it.  It is
 * called after the write it logs, and its OR is a release: the front-end's
 * migration thread takes and clears a word of bits, then copies those
 * pages, so a bit seen before the bytes it stands for would send the old
 * bytes and never the new ones.
 *
 * Ownership: a table made by vu_mem_map() owns its mappings until
 * vu_mem_unmap(); one made by vu_mem_set() owns nothing.  The fds passed to
 * vu_mem_map() stay the caller's (a mapping outlives its fd).
 *
 * Shrinking memory: a front-end that truncates a memory (or log) fd after
 * we mapped it makes our next access to the lost pages fault (SIGBUS).
 * vu_mem_map() reports fds that are not sealed against shrinking (QEMU's
 * memory-backend-memfd seals by default; files on tmpfs or hugetlbfs
 * cannot be sealed), and every mapping is published in a fixed registry.
 * vu_mem_guard_install() installs, once, a SIGBUS handler: a fault inside
 * a registered mapping replaces that whole mapping in place by anonymous
 * zero pages (MAP_FIXED | MAP_PRIVATE, read-write, never executable) and
 * flags it, so the access is repeated, reads zeros and the process goes
 * on; vu_mem_faulted() tells the owner, which must drop the table (the
 * backend closes the front-end).  Any other SIGBUS gets the default
 * action back and is raised again: a real bug still dies with a core.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vu_msg.h"

/* Dirty log granularity: one bit per 4 KiB page. */
#define VU_LOG_PAGE_SHIFT 12
#define VU_LOG_PAGE (1ull << VU_LOG_PAGE_SHIFT)

struct vu_mem_region {
	uint64_t gpa;               /* first guest physical address */
	uint64_t size;              /* bytes, > 0 */
	uint64_t uva;               /* the front-end's address of the first byte */
	uint64_t mmap_offset;       /* offset in the fd */
	uint8_t *host;              /* our address of the first byte */
	void *map_base;             /* what vu_mem_unmap() unmaps, NULL if not ours */
	size_t map_len;
	unsigned int guard;         /* its SIGBUS guard slot + 1, 0 if not ours */
};

struct vu_mem {
	unsigned int nregions;
	struct vu_mem_region r[VU_MAX_REGIONS];
};

struct vu_log {
	uint8_t *bits;              /* bitmap; NULL: logging off */
	uint64_t size;              /* bytes of bitmap */
	void *map_base;             /* what vu_log_unmap() unmaps, NULL if not ours */
	size_t map_len;
	unsigned int guard;         /* its SIGBUS guard slot + 1, 0 if not ours */
};

/**
 * vu_mem_validate() - check a region table from SET_MEM_TABLE
 * @d:		regions
 * @n:		how many, 1..VU_MAX_REGIONS
 * @why:	set to a static reason on failure
 *
 * Return: 0, or -EINVAL (zero size, a range that wraps, overlapping GPA or
 * UVA ranges, an offset that cannot be mapped).
 */
int vu_mem_validate(const struct vu_region_desc *d, unsigned int n, const char **why);

/**
 * vu_mem_set() - build a table over host memory the caller owns
 * @m:		table to fill (its old content is forgotten, not unmapped)
 * @d:		regions, validated here
 * @n:		how many
 * @host:	host address of each region's first byte, @d[i].size bytes each
 * @why:	set on failure
 *
 * Return: 0 or -EINVAL (then @m is empty).
 */
int vu_mem_set(struct vu_mem *m, const struct vu_region_desc *d, unsigned int n,
	       uint8_t *const *host, const char **why);

/**
 * vu_mem_map() - validate and mmap a table from SET_MEM_TABLE
 * @m:		table to fill; must be empty (unmap the old one first)
 * @d, @n:	regions
 * @fds:	one fd per region (not closed, not kept)
 * @unsealed:	set to true if some fd can be shrunk behind our back
 * @why:	set on failure
 *
 * Return: 0, -EINVAL (invalid table, fd too small), or mmap's -errno; on
 * failure nothing stays mapped and @m is empty.
 */
int vu_mem_map(struct vu_mem *m, const struct vu_region_desc *d, unsigned int n,
	       const int *fds, bool *unsealed, const char **why);

/**
 * vu_mem_unmap() - unmap what vu_mem_map() mapped and empty the table
 *
 * Return: 0, or the first munmap() -errno (that mapping stays; counted in
 * vu_mem_unmap_failures()).  The table is empty either way.
 */
int vu_mem_unmap(struct vu_mem *m);

/**
 * vu_mem_span() - the mapping that covers bytes [@offset, @offset + @len) of an fd
 * @offset:	first byte wanted
 * @len:	bytes wanted, at least 1
 * @granule:	the fd's page size (a power of two): what mmap() and munmap() work in
 * @start:	set to the first byte to map: @offset rounded down to @granule
 * @map_len:	set to the length to map and later unmap: rounded up to @granule
 *
 * Pure arithmetic, for vu_mem_map() and vu_log_map().
 *
 * Return: 0, or -EINVAL for a zero @len, a @granule that is not a power of
 * two, or a rounded range that overflows or does not fit in size_t.
 */
int vu_mem_span(uint64_t offset, uint64_t len, uint64_t granule, uint64_t *start,
		size_t *map_len);

/* vu_mem_unmap_failures() - munmap() calls that failed since start, in this process. */
uint64_t vu_mem_unmap_failures(void);

/**
 * vu_mem_guard_install() - install the SIGBUS handler that guards guest mappings
 *
 * At set-up, before any guest memory is touched and before a seccomp
 * filter (it calls sigaction()); the daemon does it once, when it creates
 * its backend.  Replaces any SIGBUS handler there was; calling it again
 * takes SIGBUS back from whoever replaced ours (a test framework).
 *
 * Return: 0 or sigaction()'s -errno.
 */
int vu_mem_guard_install(void);

/**
 * vu_mem_faulted() - did a mapping of @m or @log fault (SIGBUS) and get replaced?
 * @m:		a table from vu_mem_map() (a vu_mem_set() table never faults here)
 * @log:	its dirty log, may be NULL
 *
 * Such a table reads zeros where guest memory was and its writes reach
 * nobody: unmap it and drop whoever sent it.  The flag goes with the
 * mapping (vu_mem_unmap(), vu_log_unmap()).  Cheap when nothing faulted.
 *
 * Return: true if so.
 */
bool vu_mem_faulted(const struct vu_mem *m, const struct vu_log *log);

/**
 * vu_mem_gpa_to_host() - host address of guest range [@gpa, @gpa + @len)
 *
 * Return: the address, or NULL unless the whole range (len >= 1) is in one
 * region.
 */
void *vu_mem_gpa_to_host(const struct vu_mem *m, uint64_t gpa, uint64_t len);

/* vu_mem_uva_to_host() - the same for a range of the front-end's addresses. */
void *vu_mem_uva_to_host(const struct vu_mem *m, uint64_t uva, uint64_t len);

/* vu_mem_uva_to_gpa() - the GPA of front-end address @uva, or -EFAULT. */
int vu_mem_uva_to_gpa(const struct vu_mem *m, uint64_t uva, uint64_t *gpa);

/**
 * vu_mem_gpa_to_iov() - translate a guest buffer that may span regions
 * @m:		table
 * @gpa, @len:	the buffer (len may be 0: no iovec)
 * @iov:	iovecs to append to
 * @iov_gpa:	GPA of each iovec's first byte (for the dirty log), may be NULL
 * @max:	room in @iov and @iov_gpa
 * @n:		in: iovecs already used; out: after this buffer
 *
 * Return: 0, -EFAULT if some byte is not mapped or the range wraps,
 * -ENOBUFS if @max iovecs are not enough.
 */
int vu_mem_gpa_to_iov(const struct vu_mem *m, uint64_t gpa, uint64_t len,
		      struct iovec *iov, uint64_t *iov_gpa, unsigned int max, unsigned int *n);

/**
 * vu_log_set() - use @size bytes at @bits as the dirty bitmap (owned by caller)
 */
void vu_log_set(struct vu_log *log, uint8_t *bits, uint64_t size);

/**
 * vu_log_map() - map the dirty bitmap of SET_LOG_BASE
 * @log:	must be unmapped
 * @fd:		the log fd (not closed, not kept)
 * @size:	bytes of bitmap
 * @offset:	where it starts in @fd
 * @why:	set to a static reason on failure
 *
 * Mapped like a memory region (whole pages of the fd, no MAP_NORESERVE).
 *
 * Return: 0, -EINVAL (zero or unmappable size, fd too small), or mmap's -errno.
 */
int vu_log_map(struct vu_log *log, int fd, uint64_t size, uint64_t offset, const char **why);

/**
 * vu_log_unmap() - unmap the bitmap (if ours) and turn logging off
 *
 * Return: 0, or munmap()'s -errno (the mapping stays; counted).
 */
int vu_log_unmap(struct vu_log *log);

/**
 * vu_log_write() - mark the pages of [@gpa, @gpa + @len) dirty
 *
 * No-op when logging is off or @len is 0.
 *
 * Return: 0, or -ERANGE if part of the range lies beyond the bitmap (the
 * part inside was marked).
 */
int vu_log_write(const struct vu_log *log, uint64_t gpa, uint64_t len);

/* vu_log_active() - true while a bitmap is set. */
static inline bool vu_log_active(const struct vu_log *log)
{
	return log->bits != NULL;
}

#endif /* MESHSLIRP_BACKEND_VU_MEM_H */
