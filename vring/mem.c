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
        r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (r->fd < 0) {
                int err = -errno;
                (void)munmap(p, len);
                return err;
        }
        r->holds_fd = true;
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
        if (r->holds_fd)
                close(r->fd);
        memset(r, 0, sizeof(*r));
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
        /* Both ranges are known not to wrap. */
        return a <= b + (blen - 1) && b <= a + (alen - 1);
}

/* First index in gpa order whose region starts at or above gpa (nregions when none does). */
static unsigned lower_gpa(const struct mem_table *t, uint64_t gpa)
{
        unsigned lo = 0, hi = t->nregions;

        while (lo < hi) {
                unsigned mid = lo + (hi - lo) / 2;
                if (t->regions[mid].gpa < gpa)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* First position in by_uva whose region starts at or above uva. */
static unsigned lower_uva(const struct mem_table *t, uint64_t uva)
{
        unsigned lo = 0, hi = t->nregions;

        while (lo < hi) {
                unsigned mid = lo + (hi - lo) / 2;
                if (t->regions[t->by_uva[mid]].uva < uva)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/*
 * The table's regions do not overlap each other, so a new range can only overlap its neighbours in sorted
 * order: the last region starting below it (which would contain its start) and the first starting at or above.
 */
int mem_table_add(struct mem_table *t, const struct mem_region *r, const char **ret_why)
{
        unsigned pos, upos;

        if (t->nregions >= MEM_MAX_REGIONS) {
                *ret_why = "too many memory regions";
                return -E2BIG;
        }
        pos = lower_gpa(t, r->gpa);
        if ((pos > 0 && ranges_overlap(t->regions[pos - 1].gpa, t->regions[pos - 1].size, r->gpa, r->size)) ||
            (pos < t->nregions && ranges_overlap(t->regions[pos].gpa, t->regions[pos].size, r->gpa, r->size))) {
                *ret_why = "guest-physical range overlaps another region";
                return -EEXIST;
        }
        upos = lower_uva(t, r->uva);
        for (unsigned k = upos > 0 ? upos - 1 : upos; k <= upos && k < t->nregions; k++) {
                const struct mem_region *o = &t->regions[t->by_uva[k]];
                if (ranges_overlap(o->uva, o->size, r->uva, r->size)) {
                        *ret_why = "user address range overlaps another region";
                        return -EEXIST;
                }
        }
        memmove(&t->regions[pos + 1], &t->regions[pos], (t->nregions - pos) * sizeof(t->regions[0]));
        t->regions[pos] = *r;
        for (unsigned k = 0; k < t->nregions; k++)
                if (t->by_uva[k] >= pos)
                        t->by_uva[k]++;
        memmove(&t->by_uva[upos + 1], &t->by_uva[upos], (t->nregions - upos) * sizeof(t->by_uva[0]));
        t->by_uva[upos] = (uint16_t)pos;
        t->nregions++;
        return 0;
}

int mem_table_find(const struct mem_table *t, uint64_t gpa, uint64_t size, uint64_t uva)
{
        unsigned i = lower_gpa(t, gpa);

        /* gpas are unique in the table: only one region can start at gpa. */
        if (i < t->nregions) {
                const struct mem_region *o = &t->regions[i];
                if (o->gpa == gpa && o->size == size && o->uva == uva)
                        return (int)i;
        }
        return -1;
}

int mem_table_remove(struct mem_table *t, uint64_t gpa, uint64_t size, uint64_t uva, struct mem_region *ret)
{
        int i = mem_table_find(t, gpa, size, uva);
        unsigned n = 0;
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
        for (unsigned k = 0; k <= t->nregions; k++) {
                if (t->by_uva[k] == (unsigned)i)
                        continue;
                t->by_uva[n++] = (uint16_t)(t->by_uva[k] > (unsigned)i ? t->by_uva[k] - 1 : t->by_uva[k]);
        }
        t->by_uva[t->nregions] = 0;
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
        const struct mem_region *r;
        unsigned k;

        if (len == 0 || add_overflows(uva, len - 1))
                return NULL;
        /* The region that can contain uva is the last one starting at or below it. */
        k = lower_uva(t, uva);
        if (k < t->nregions && t->regions[t->by_uva[k]].uva == uva)
                r = &t->regions[t->by_uva[k]];
        else if (k > 0)
                r = &t->regions[t->by_uva[k - 1]];
        else
                return NULL;
        if (uva < r->uva || uva - r->uva >= r->size)
                return NULL;
        if (len > r->size - (uva - r->uva) || (write && !r->writable))
                return NULL;
        return r->host + (uva - r->uva);
}
