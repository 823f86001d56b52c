// SPDX-License-Identifier: MIT
#include "vring/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Byte of the bitmap that holds the bit of the page of gpa. */
static inline uint64_t byte_of(uint64_t gpa)
{
        return gpa >> (VLOG_PAGE_SHIFT + 3);
}

int vlog_map(struct vq_log *log, int fd, uint64_t size, uint64_t offset)
{
        uint64_t end, align;
        struct stat st;
        void *p;

        if (size == 0 || __builtin_add_overflow(offset, size, &end) || end > (uint64_t)INT64_MAX ||
            end > (uint64_t)SIZE_MAX / 2)
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < end)
                return -ERANGE;
        /* Mapped from 0, as the memory regions are: an offset need not be a multiple of a (huge) page. */
        align = st.st_blksize > 0 && !(st.st_blksize & (st.st_blksize - 1)) ? (uint64_t)st.st_blksize : 4096;
        end = (end + align - 1) & ~(align - 1);
        p = mmap(NULL, (size_t)end, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        log->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (log->fd < 0) {
                int err = -errno;
                (void)munmap(p, (size_t)end);
                return err;
        }
        log->holds_fd = true;
        log->offset = offset;
        (void)madvise(p, (size_t)end, MADV_DONTDUMP);
        log->map_base = p;
        log->map_len = (size_t)end;
        log->base = (uint8_t *)p + offset;
        log->size = size;
        return 0;
}

void vlog_init(struct vq_log *log, void *base, uint64_t size)
{
        *log = (struct vq_log){.base = base, .size = size};
}

void vlog_unmap(struct vq_log *log)
{
        if (!log)
                return;
        if (log->map_base)
                (void)munmap(log->map_base, log->map_len);
        if (log->holds_fd)
                close(log->fd);
        memset(log, 0, sizeof(*log));
}

static inline void or_byte(uint8_t *b, uint8_t mask)
{
        __atomic_fetch_or(b, mask, __ATOMIC_RELAXED);
}

int vlog_mark(struct vq_log *log, uint64_t gpa, uint64_t len)
{
        uint64_t last, first_page, last_page, b, lb;
        int r = 0;

        if (len == 0)
                return 0;
        if (__builtin_add_overflow(gpa, len - 1, &last)) {
                last = UINT64_MAX;
                r = -ERANGE;
        }
        if (byte_of(gpa) >= log->size)
                return -ERANGE;
        first_page = gpa >> VLOG_PAGE_SHIFT;
        last_page = last >> VLOG_PAGE_SHIFT;
        if (byte_of(last) >= log->size) {
                /* size <= byte_of(last) < 2^49 here, so size * 8 does not overflow. */
                last_page = log->size * 8 - 1;
                r = -ERANGE;
        }
        /* Our writes to guest memory before the bits: whoever sees a bit also sees what it stands for. */
        __atomic_thread_fence(__ATOMIC_RELEASE);
        b = first_page >> 3;
        lb = last_page >> 3;
        if (b == lb) {
                or_byte(&log->base[b], (uint8_t)((0xffu << (first_page & 7)) & (0xffu >> (7 - (last_page & 7)))));
                return r;
        }
        or_byte(&log->base[b], (uint8_t)(0xffu << (first_page & 7)));
        for (b++; b < lb; b++)
                or_byte(&log->base[b], 0xff);
        or_byte(&log->base[lb], (uint8_t)(0xffu >> (7 - (last_page & 7))));
        return r;
}

bool vlog_covers_range(const struct vq_log *log, uint64_t gpa, uint64_t len)
{
        uint64_t last;

        if (len == 0)
                return true;
        if (!log || __builtin_add_overflow(gpa, len - 1, &last))
                return false;
        return byte_of(last) < log->size;
}

bool vlog_covers(const struct vq_log *log, const struct mem_table *mem)
{
        const struct mem_region *top;

        if (!mem || mem->nregions == 0)
                return true;
        /* Sorted by gpa and not overlapping: the last region ends highest. */
        top = &mem->regions[mem->nregions - 1];
        return vlog_covers_range(log, top->gpa, top->size);
}
