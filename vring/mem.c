// SPDX-License-Identifier: MIT
#include "vring/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static bool add_overflows(uint64_t a, uint64_t b)
{
        uint64_t sum;
        return __builtin_add_overflow(a, b, &sum);
}

int mem_region_check(uint64_t gpa, uint64_t size, uint64_t uva, uint64_t mmap_offset, const char **ret_why)
{
        const char *why = NULL;

        if (size == 0)
                why = "region is empty";
        else if (add_overflows(gpa, size - 1))
                why = "guest-physical range wraps around";
        else if (add_overflows(uva, size - 1))
                why = "user address range wraps around";
        else if (add_overflows(mmap_offset, size) || mmap_offset + size > (uint64_t)INT64_MAX)
                why = "mmap offset + size overflows";
        else if (size > (uint64_t)SIZE_MAX / 2)
                why = "region too large";
        if (why) {
                *ret_why = why;
                return -EINVAL;
        }
        return 0;
}

int mem_region_map(struct mem_region *r, int fd, uint64_t gpa, uint64_t size, uint64_t uva, uint64_t mmap_offset)
{
        struct stat st;
        const char *why;
        size_t len, align;
        int seals;
        void *p;

        if (mem_region_check(gpa, size, uva, mmap_offset, &why) < 0)
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* hugetlbfs reports its page size as blksize, and munmap wants whole huge pages. */
        align = st.st_blksize > 0 ? (size_t)st.st_blksize : 4096;
        if (align & (align - 1))
                align = 4096;
        len = (size_t)(mmap_offset + size);
        if (len > SIZE_MAX - align)
                return -EINVAL;
        len = (len + align - 1) & ~(align - 1);
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < mmap_offset + size)
                return -ERANGE; /* mapping past EOF would SIGBUS on first touch */

        r->writable = true;
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED && (errno == EACCES || errno == EPERM)) {
                /* A sealed or read-only fd: map it so reads work; writes through it are refused. */
                p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
                r->writable = false;
        }
        if (p == MAP_FAILED)
                return -errno;
        (void)madvise(p, len, MADV_DONTDUMP);
        seals = fcntl(fd, F_GET_SEALS);
        r->sealed = seals >= 0 && (seals & F_SEAL_SHRINK);
        r->gpa = gpa;
        r->size = size;
        r->uva = uva;
        r->mmap_offset = mmap_offset;
        r->map_base = p;
        r->map_len = len;
        r->host = (uint8_t *)p + mmap_offset;
        r->refs = 1;
        return 0;
}

void mem_region_unmap(struct mem_region *r)
{
        if (r->map_base)
                (void)munmap(r->map_base, r->map_len);
        memset(r, 0, sizeof(*r));
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
        /* Both ranges are known not to wrap. */
        return a <= b + (blen - 1) && b <= a + (alen - 1);
}

int mem_table_add(struct mem_table *t, const struct mem_region *r, const char **ret_why)
{
        unsigned i, pos = 0;

        if (t->nregions >= MEM_MAX_REGIONS) {
                *ret_why = "too many memory regions";
                return -E2BIG;
        }
        for (i = 0; i < t->nregions; i++) {
                const struct mem_region *o = &t->regions[i];
                if (ranges_overlap(o->gpa, o->size, r->gpa, r->size)) {
                        *ret_why = "guest-physical range overlaps another region";
                        return -EEXIST;
                }
                if (ranges_overlap(o->uva, o->size, r->uva, r->size)) {
                        *ret_why = "user address range overlaps another region";
                        return -EEXIST;
                }
                if (o->gpa < r->gpa)
                        pos = i + 1;
        }
        memmove(&t->regions[pos + 1], &t->regions[pos], (t->nregions - pos) * sizeof(t->regions[0]));
        t->regions[pos] = *r;
        t->nregions++;
        return 0;
}

int mem_table_find(const struct mem_table *t, uint64_t gpa, uint64_t size, uint64_t uva)
{
        for (unsigned i = 0; i < t->nregions; i++) {
                const struct mem_region *o = &t->regions[i];
                if (o->gpa == gpa && o->size == size && o->uva == uva)
                        return (int)i;
        }
        return -1;
}

int mem_table_remove(struct mem_table *t, uint64_t gpa, uint64_t size, uint64_t uva, struct mem_region *ret)
{
        int i = mem_table_find(t, gpa, size, uva);
        struct mem_region *o;

        if (i < 0)
                return -ENOENT;
        o = &t->regions[i];
        if (o->refs > 1) {
                o->refs--;
                return 0;
        }
        *ret = *o;
        memmove(o, o + 1, (t->nregions - (unsigned)i - 1) * sizeof(*o));
        t->nregions--;
        memset(&t->regions[t->nregions], 0, sizeof(*o));
        return 1;
}

void mem_table_clear(struct mem_table *t)
{
        for (unsigned i = 0; i < t->nregions; i++)
                mem_region_unmap(&t->regions[i]);
        t->nregions = 0;
}

static const struct mem_region *find_gpa(const struct mem_table *t, uint64_t gpa, unsigned *hint)
{
        unsigned lo = 0, hi = t->nregions;

        if (*hint < t->nregions) {
                const struct mem_region *r = &t->regions[*hint];
                if (gpa >= r->gpa && gpa - r->gpa < r->size)
                        return r;
        }
        while (lo < hi) {
                unsigned mid = lo + (hi - lo) / 2;
                const struct mem_region *r = &t->regions[mid];
                if (gpa < r->gpa)
                        hi = mid;
                else if (gpa - r->gpa >= r->size)
                        lo = mid + 1;
                else {
                        *hint = mid;
                        return r;
                }
        }
        return NULL;
}

int mem_translate(const struct mem_table *t, uint64_t gpa, uint64_t len, bool write, struct iovec *iov, unsigned max,
                  unsigned *hint)
{
        unsigned n = 0;

        if (len && add_overflows(gpa, len - 1))
                return -EFAULT;
        while (len > 0) {
                const struct mem_region *r = find_gpa(t, gpa, hint);
                uint64_t off, chunk;

                if (!r || (write && !r->writable))
                        return -EFAULT;
                if (n >= max)
                        return -ENOBUFS;
                off = gpa - r->gpa;
                chunk = r->size - off;
                if (chunk > len)
                        chunk = len;
                iov[n].iov_base = r->host + off;
                iov[n].iov_len = (size_t)chunk;
                n++;
                gpa += chunk;
                len -= chunk;
        }
        return (int)n;
}

void *mem_uva_to_host(const struct mem_table *t, uint64_t uva, uint64_t len, bool write)
{
        if (len == 0 || add_overflows(uva, len - 1))
                return NULL;
        for (unsigned i = 0; i < t->nregions; i++) {
                const struct mem_region *r = &t->regions[i];
                if (uva < r->uva || uva - r->uva >= r->size)
                        continue;
                if (len > r->size - (uva - r->uva) || (write && !r->writable))
                        return NULL;
                return r->host + (uva - r->uva);
        }
        return NULL;
}
