/* vu_mem.c - the guest memory table of a vhost-user front-end: validation, translation, dirty log. */

#include "vu_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>

/* Largest byte offset mmap() takes (off_t is signed 64-bit). */
#define VU_MEM_OFF_MAX ((uint64_t)INT64_MAX)

/* True if [a, a + len) wraps past 2^64; len >= 1. */
static bool vu_range_wraps(uint64_t a, uint64_t len)
{
	return len - 1 > UINT64_MAX - a;
}

/* True if [a, a + alen) and [b, b + blen) share a byte; neither wraps. */
static bool vu_range_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a <= b + (blen - 1) && b <= a + (alen - 1);
}

int vu_mem_validate(const struct vu_region_desc *d, unsigned int n, const char **why)
{
	if (n == 0 || n > VU_MAX_REGIONS) {
		*why = "memory table has no region or more than 8";
		return -EINVAL;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (d[i].size == 0) {
			*why = "memory region of size 0";
			return -EINVAL;
		}
		if (vu_range_wraps(d[i].gpa, d[i].size) || vu_range_wraps(d[i].uva, d[i].size)) {
			*why = "memory region wraps around the address space";
			return -EINVAL;
		}
		if (d[i].mmap_offset > VU_MEM_OFF_MAX || d[i].size > VU_MEM_OFF_MAX - d[i].mmap_offset ||
		    d[i].size > SIZE_MAX - VU_LOG_PAGE) {
			*why = "memory region offset + size cannot be mapped";
			return -EINVAL;
		}
		for (unsigned int j = 0; j < i; j++) {
			if (vu_range_overlap(d[i].gpa, d[i].size, d[j].gpa, d[j].size)) {
				*why = "memory regions overlap in guest physical space";
				return -EINVAL;
			}
			if (vu_range_overlap(d[i].uva, d[i].size, d[j].uva, d[j].size)) {
				*why = "memory regions overlap in front-end address space";
				return -EINVAL;
			}
		}
	}
	return 0;
}

int vu_mem_set(struct vu_mem *m, const struct vu_region_desc *d, unsigned int n,
	       uint8_t *const *host, const char **why)
{
	int ret = vu_mem_validate(d, n, why);

	memset(m, 0, sizeof(*m));
	if (ret)
		return ret;
	for (unsigned int i = 0; i < n; i++) {
		m->r[i].gpa = d[i].gpa;
		m->r[i].size = d[i].size;
		m->r[i].uva = d[i].uva;
		m->r[i].mmap_offset = d[i].mmap_offset;
		m->r[i].host = host[i];
	}
	m->nregions = n;
	return 0;
}

/* ------------------------------------------------------------ SIGBUS guard */

/*
 * Every mapping vu_map_range() makes has a slot here, so the SIGBUS
 * handler can tell our guest mappings from anything else.  A fixed array:
 * the handler can neither allocate nor lock.  Slots change only outside
 * the handler, on the thread that touches guest memory: a slot is filled,
 * then published (used = 1, release); it is withdrawn (used = 0) before its
 * munmap().  One backend holds at most VU_MAX_REGIONS regions and two logs
 * (the new log is mapped before the old one goes); the rest is headroom
 * for programs with several backends (tests).
 */
#define VU_GUARD_SLOTS (4 * (VU_MAX_REGIONS + 2))

struct vu_guard {
	int used;                       /* published: start and len are valid */
	uintptr_t start;
	size_t len;
	volatile sig_atomic_t faulted;  /* the handler replaced this mapping */
};

static struct vu_guard vu_guards[VU_GUARD_SLOTS];
static volatile sig_atomic_t vu_guard_fired;  /* some mapping faulted, ever */

/* Publish [@start, @start + @len); returns the slot + 1, or 0 if all are taken. */
static unsigned int vu_guard_add(void *start, size_t len)
{
	for (unsigned int i = 0; i < VU_GUARD_SLOTS; i++) {
		struct vu_guard *g = &vu_guards[i];

		if (__atomic_load_n(&g->used, __ATOMIC_RELAXED))
			continue;
		g->start = (uintptr_t)start;
		g->len = len;
		g->faulted = 0;
		__atomic_store_n(&g->used, 1, __ATOMIC_RELEASE);
		return i + 1;
	}
	return 0;
}

/* Withdraw slot @id (from vu_guard_add(); 0 is none) before its mapping goes. */
static void vu_guard_remove(unsigned int id)
{
	if (id)
		__atomic_store_n(&vu_guards[id - 1].used, 0, __ATOMIC_RELEASE);
}

/* Did the handler replace the mapping of slot @id? */
static bool vu_guard_faulted(unsigned int id)
{
	return id && vu_guard_fired && vu_guards[id - 1].faulted;
}

/* si_code values of a fault the access itself raised (it faults again if repeated). */
static bool vu_sigbus_is_fault(int code)
{
	return code == BUS_ADRALN || code == BUS_ADRERR || code == BUS_OBJERR ||
	       code == BUS_MCEERR_AR;
}

/*
 * SIGBUS: an access to a guest mapping whose file shrank (the front-end
 * truncated an unsealed memory fd), or a real bug.  Ours: replace the whole
 * mapping in place by anonymous zero pages -- the access is repeated and
 * reads zeros, later writes land in private memory -- and flag it; the
 * backend closes that front-end after its dispatch.  Anything else: the
 * default action, so a bug still dies with a core.  Only async-signal-safe
 * calls (raw mmap, sigaction, raise); errno is preserved for the
 * interrupted code.
 */
static void vu_sigbus_handler(int sig, siginfo_t *si, void *ucontext)
{
	int saved_errno = errno;
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	(void)ucontext;
	if (vu_sigbus_is_fault(si->si_code)) {
		uintptr_t addr = (uintptr_t)si->si_addr;

		for (unsigned int i = 0; i < VU_GUARD_SLOTS; i++) {
			struct vu_guard *g = &vu_guards[i];
			long p;

			if (!__atomic_load_n(&g->used, __ATOMIC_ACQUIRE) || addr - g->start >= g->len)
				continue;
			/* No PROT_EXEC: the seccomp filter allows mmap only without it. */
			p = syscall(SYS_mmap, g->start, g->len, PROT_READ | PROT_WRITE,
				    MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == -1)
				break; /* cannot recover: die as without this handler */
			g->faulted = 1;
			vu_guard_fired = 1;
			errno = saved_errno;
			return;
		}
	}
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	/* A fault repeats when we return, now fatal; a signal someone sent is sent again. */
	if (!vu_sigbus_is_fault(si->si_code))
		raise(sig);
	errno = saved_errno;
}

int vu_mem_guard_install(void)
{
	struct sigaction sa = { .sa_sigaction = vu_sigbus_handler, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0)
		return -errno;
	return 0;
}

bool vu_mem_faulted(const struct vu_mem *m, const struct vu_log *log)
{
	if (!vu_guard_fired)
		return false; /* the usual case: one load */
	for (unsigned int i = 0; i < m->nregions; i++) {
		if (vu_guard_faulted(m->r[i].guard))
			return true;
	}
	return log && vu_guard_faulted(log->guard);
}

/* ------------------------------------------------------------ mapping */

/* Mappings that munmap() refused since start; vu_mem_unmap_failures() reads it. */
static uint64_t vu_unmap_failed;

/*
 * Filesystems whose pages come from a server: a page fault on guest memory
 * there waits on it, and one that stops answering (a FUSE daemon the
 * front-end runs, say) would hang this thread in a plain load from a ring.
 * Guest memory is memfd, tmpfs or hugetlbfs, or at most a local file.  A
 * list of what to refuse, not of what to take: a local filesystem we did
 * not name keeps working; overlayfs is refused, as its lower layer could be
 * any of these.
 */
static bool vu_fs_remote(long type)
{
	static const uint32_t remote[] = {
		0x65735546,            /* FUSE_SUPER_MAGIC */
		0x6969,                /* NFS_SUPER_MAGIC */
		0xff534d42,            /* CIFS_SUPER_MAGIC */
		0xfe534d42,            /* SMB2_SUPER_MAGIC */
		0x517b,                /* SMB_SUPER_MAGIC */
		0x01021997,            /* V9FS_MAGIC */
		0x00c36400,            /* CEPH_SUPER_MAGIC */
		0x6b414653,            /* AFS_FS_MAGIC */
		0x5346414f,            /* AFS_SUPER_MAGIC */
		0x73757245,            /* CODA_SUPER_MAGIC */
		0x0bd00bd0,            /* Lustre */
		0x20030528,            /* OrangeFS */
		0x01161970,            /* GFS2 */
		0x7461636f,            /* OCFS2 */
		0x794c7630,            /* overlayfs: its lower layer may be any of these */
	};

	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		if ((uint32_t)type == remote[i])
			return true;
	}
	return false;
}

/*
 * What mapping @fd takes: *@size, the size of the object behind it (-1 for
 * pipes and the like), and *@granule, its page size: st_blksize on
 * hugetlbfs, where mmap() and munmap() work in whole huge pages, the
 * system page elsewhere.  Returns 0 or -errno.
 */
static int vu_fd_inspect(int fd, int64_t *size, uint64_t *granule)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct statfs sfs;
	struct stat st;

	if (fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0)
		return -errno;
	if (vu_fs_remote((long)sfs.f_type))
		return -EREMOTE;
	*size = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ? st.st_size : -1;
	*granule = page;
	if (sfs.f_type == HUGETLBFS_MAGIC) {
		uint64_t blk = (uint64_t)st.st_blksize;

		if (blk < page || (blk & (blk - 1)))
			return -EINVAL; /* not a huge page size we can align to */
		*granule = blk;
	}
	return 0;
}

/* True if @fd cannot shrink under us (memfd sealed with F_SEAL_SHRINK). */
static bool vu_fd_sealed(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	return seals >= 0 && (seals & F_SEAL_SHRINK);
}

int vu_mem_span(uint64_t offset, uint64_t len, uint64_t granule, uint64_t *start,
		size_t *map_len)
{
	uint64_t span;

	if (!len || !granule || (granule & (granule - 1)))
		return -EINVAL;
	*start = offset & ~(granule - 1);
	span = offset - *start;
	if (len > UINT64_MAX - span || len + span > UINT64_MAX - (granule - 1))
		return -EINVAL;
	span = (len + span + granule - 1) & ~(granule - 1);
	if (span > SIZE_MAX)
		return -EINVAL;
	*map_len = (size_t)span;
	return 0;
}

/*
 * Map @len bytes of @fd from @offset: whole pages of the fd (huge pages on
 * hugetlbfs), from the page holding @offset, published to the SIGBUS
 * guard.  Sets *@host to the address of byte @offset and *@base,
 * *@map_len, *@guard to what vu_unmap_range() needs.  Returns 0, or -errno
 * with *@why set.
 */
static int vu_map_range(int fd, uint64_t offset, uint64_t len, uint8_t **host, void **base,
			size_t *map_len, unsigned int *guard, const char **why)
{
	uint64_t granule, start;
	int64_t fsize;
	void *p;
	int ret;

	ret = vu_fd_inspect(fd, &fsize, &granule);
	if (ret == -EREMOTE) {
		*why = "memory fd on a network or FUSE filesystem (a page fault there can wait for ever)";
		return ret;
	}
	if (ret) {
		*why = "cannot inspect a memory fd (fstat, fstatfs)";
		return ret;
	}
	if (fsize >= 0 && (uint64_t)fsize < offset + len) {
		*why = "memory fd smaller than its region";
		return -EINVAL;
	}
	if (vu_mem_span(offset, len, granule, &start, map_len)) {
		*why = "memory region too large once rounded to its fd's page size";
		return -EINVAL;
	}
	/*
	 * No MAP_NORESERVE: on hugetlbfs it skips the huge page reservation,
	 * so an fd the pool cannot back would map fine and SIGBUS us at the
	 * first access.  Reserved, mmap() fails now (ENOMEM) and the front-end
	 * hears about it.  Shared file mappings are not commit-charged, so the
	 * flag bought nothing elsewhere.
	 */
	p = mmap(NULL, *map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
	if (p == MAP_FAILED) {
		ret = -errno;
		*why = ret == -ENOMEM ? "not enough memory (or huge pages) to map a memory region" :
		       ret == -EINVAL ? "the kernel refused to map a memory region (EINVAL)" :
		       "cannot map a memory region";
		return ret;
	}
	*guard = vu_guard_add(p, *map_len);
	if (!*guard) {
		munmap(p, *map_len); /* our own fresh mapping, its exact length */
		*why = "too many guest memory mappings at once";
		return -ENOSPC;
	}
	*base = p;
	*host = (uint8_t *)p + (offset - start);
	return 0;
}

/*
 * Undo vu_map_range(): @len is the rounded length it chose (hugetlbfs
 * refuses any other).  A failure leaves the mapping in place; it is
 * counted (vu_mem_unmap_failures()) and returned as -errno.
 */
static int vu_unmap_range(void *base, size_t len, unsigned int guard)
{
	vu_guard_remove(guard);
	if (!base || munmap(base, len) == 0)
		return 0;
	__atomic_fetch_add(&vu_unmap_failed, 1, __ATOMIC_RELAXED);
	return -errno;
}

uint64_t vu_mem_unmap_failures(void)
{
	return __atomic_load_n(&vu_unmap_failed, __ATOMIC_RELAXED);
}

int vu_mem_map(struct vu_mem *m, const struct vu_region_desc *d, unsigned int n,
	       const int *fds, bool *unsealed, const char **why)
{
	uint8_t *host[VU_MAX_REGIONS];
	void *base[VU_MAX_REGIONS];
	size_t len[VU_MAX_REGIONS];
	unsigned int guard[VU_MAX_REGIONS];
	unsigned int mapped = 0;
	int ret;

	memset(m, 0, sizeof(*m));
	*unsealed = false;
	ret = vu_mem_validate(d, n, why);
	if (ret)
		return ret;
	for (; mapped < n; mapped++) {
		ret = vu_map_range(fds[mapped], d[mapped].mmap_offset, d[mapped].size, &host[mapped],
				   &base[mapped], &len[mapped], &guard[mapped], why);
		if (ret)
			goto fail;
		if (!vu_fd_sealed(fds[mapped]))
			*unsealed = true;
	}
	ret = vu_mem_set(m, d, n, host, why);
	if (ret)
		goto fail;
	for (unsigned int i = 0; i < n; i++) {
		m->r[i].map_base = base[i];
		m->r[i].map_len = len[i];
		m->r[i].guard = guard[i];
	}
	return 0;

fail:
	for (unsigned int i = 0; i < mapped; i++)
		vu_unmap_range(base[i], len[i], guard[i]); /* a failure is counted */
	memset(m, 0, sizeof(*m));
	return ret;
}

int vu_mem_unmap(struct vu_mem *m)
{
	int ret = 0, err;

	for (unsigned int i = 0; i < m->nregions; i++) {
		err = vu_unmap_range(m->r[i].map_base, m->r[i].map_len, m->r[i].guard);
		ret = ret ?: err;
	}
	memset(m, 0, sizeof(*m));
	return ret;
}

/* Region holding @addr in GPA (@uva false) or UVA space, with the offset into it. */
static const struct vu_mem_region *vu_mem_find(const struct vu_mem *m, uint64_t addr, bool uva,
					       uint64_t *off)
{
	for (unsigned int i = 0; i < m->nregions; i++) {
		uint64_t start = uva ? m->r[i].uva : m->r[i].gpa;

		if (addr >= start && addr - start < m->r[i].size) {
			*off = addr - start;
			return &m->r[i];
		}
	}
	return NULL;
}

/* Host address of [addr, addr + len) in one region, or NULL. */
static void *vu_mem_to_host(const struct vu_mem *m, uint64_t addr, uint64_t len, bool uva)
{
	const struct vu_mem_region *r;
	uint64_t off;

	if (len == 0)
		return NULL;
	r = vu_mem_find(m, addr, uva, &off);
	if (!r || len > r->size - off)
		return NULL;
	return r->host + off;
}

void *vu_mem_gpa_to_host(const struct vu_mem *m, uint64_t gpa, uint64_t len)
{
	return vu_mem_to_host(m, gpa, len, false);
}

void *vu_mem_uva_to_host(const struct vu_mem *m, uint64_t uva, uint64_t len)
{
	return vu_mem_to_host(m, uva, len, true);
}

int vu_mem_uva_to_gpa(const struct vu_mem *m, uint64_t uva, uint64_t *gpa)
{
	const struct vu_mem_region *r;
	uint64_t off;

	r = vu_mem_find(m, uva, true, &off);
	if (!r)
		return -EFAULT;
	*gpa = r->gpa + off;
	return 0;
}

int vu_mem_gpa_to_iov(const struct vu_mem *m, uint64_t gpa, uint64_t len,
		      struct iovec *iov, uint64_t *iov_gpa, unsigned int max, unsigned int *n)
{
	unsigned int used = *n;

	if (len && vu_range_wraps(gpa, len))
		return -EFAULT;
	/* Each pass consumes the rest of one region: at most nregions passes. */
	while (len) {
		const struct vu_mem_region *r;
		uint64_t off, chunk;

		r = vu_mem_find(m, gpa, false, &off);
		if (!r)
			return -EFAULT;
		if (used >= max)
			return -ENOBUFS;
		chunk = r->size - off < len ? r->size - off : len;
		iov[used].iov_base = r->host + off;
		iov[used].iov_len = (size_t)chunk;
		if (iov_gpa)
			iov_gpa[used] = gpa;
		used++;
		gpa += chunk;
		len -= chunk;
	}
	*n = used;
	return 0;
}

void vu_log_set(struct vu_log *log, uint8_t *bits, uint64_t size)
{
	memset(log, 0, sizeof(*log));
	log->bits = size ? bits : NULL;
	log->size = size;
}

int vu_log_map(struct vu_log *log, int fd, uint64_t size, uint64_t offset, const char **why)
{
	void *base;
	size_t len;
	uint8_t *p;
	int ret;

	memset(log, 0, sizeof(*log));
	if (size == 0 || offset > VU_MEM_OFF_MAX || size > VU_MEM_OFF_MAX - offset ||
	    size > SIZE_MAX - VU_LOG_PAGE) {
		*why = "dirty log of size 0, or offset + size cannot be mapped";
		return -EINVAL;
	}
	ret = vu_map_range(fd, offset, size, &p, &base, &len, &log->guard, why);
	if (ret)
		return ret;
	log->bits = p;
	log->size = size;
	log->map_base = base;
	log->map_len = len;
	return 0;
}

int vu_log_unmap(struct vu_log *log)
{
	int ret = vu_unmap_range(log->map_base, log->map_len, log->guard);

	memset(log, 0, sizeof(*log));
	return ret;
}

int vu_log_write(const struct vu_log *log, uint64_t gpa, uint64_t len)
{
	uint64_t first, last, limit;
	int ret = 0;

	if (!log->bits || len == 0)
		return 0;
	first = gpa >> VU_LOG_PAGE_SHIFT;
	last = vu_range_wraps(gpa, len) ? UINT64_MAX >> VU_LOG_PAGE_SHIFT
					: (gpa + len - 1) >> VU_LOG_PAGE_SHIFT;
	/* Pages the bitmap covers. */
	limit = log->size > UINT64_MAX / 8 ? UINT64_MAX : log->size * 8;
	if (last >= limit) {
		ret = -ERANGE;
		if (first >= limit)
			return ret;
		last = limit - 1;
	}
	for (uint64_t page = first; page <= last; page++)
		__atomic_fetch_or(&log->bits[page / 8], (uint8_t)(1u << (page % 8)),
				  __ATOMIC_RELEASE);
	return ret;
}
