/* SPDX-License-Identifier: MIT */
/*
 * Guest memory: the regions the front-end shares, and the only way a guest-physical address (from a
 * descriptor) or a front-end virtual address (from SET_VRING_ADDR) becomes a host pointer.
 */
#ifndef VRING_MEM_H
#define VRING_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * QEMU's limit (GET_MAX_MEM_SLOTS): memory hotplug (pc-dimm, virtio-mem) adds regions one by one. A table is
 * about 33 KiB, allocated once per memory-table change; translation stays O(log n) (hint, then binary search).
 */
#define MEM_MAX_REGIONS 509

struct mem_region {
        uint64_t gpa;         /* guest-physical start */
        uint64_t size;        /* bytes */
        uint64_t uva;         /* front-end virtual start */
        uint64_t mmap_offset; /* where the region starts in the fd */
        uint8_t *host;        /* host pointer to gpa */
        void *map_base;       /* what mmap returned (covers mmap_offset too) */
        size_t map_len;
        bool writable; /* false when the fd only allowed a read-only mapping */
        bool sealed;   /* F_SEAL_SHRINK: the front-end cannot take these pages away (see daemon/fault.h) */
        unsigned refs; /* ADD_MEM_REG of an identical region (QEMU sends one per queue pair) */
        /* A duplicate of the front-end's fd while mapped, so an upgrade can hand the region to the next vhostd
         * (a mapping alone cannot be passed on); closed with the mapping. Meaningful when holds_fd. */
        int fd;
        bool holds_fd;
};

/*
 * Replaced as a whole, never edited while a worker may read it. Sorted by gpa; by_uva lists the same regions in
 * uva order. Filled only through mem_table_add() and mem_table_remove(), which keep both orders (a copy of a
 * whole table stays consistent).
 */
struct mem_table {
        unsigned nregions;
        uint16_t by_uva[MEM_MAX_REGIONS]; /* indices into regions[], by increasing uva */
        struct mem_region regions[MEM_MAX_REGIONS];
};

/*
 * Checks a region description from the front-end: non-empty, no wrap-around of gpa, uva or fd offset.
 * Returns 0 or -EINVAL with *ret_why set to a static reason.
 */
int mem_region_check(uint64_t gpa, uint64_t size, uint64_t uva, uint64_t mmap_offset, const char **ret_why);

/* Maps one region from fd (the fd is not consumed: the region keeps a duplicate). -errno on failure. */
int mem_region_map(struct mem_region *r, int fd, uint64_t gpa, uint64_t size, uint64_t uva, uint64_t mmap_offset);
void mem_region_unmap(struct mem_region *r);

/* Adds a mapped region, keeping gpa order; -EEXIST when it overlaps (gpa or uva), -E2BIG when full. */
int mem_table_add(struct mem_table *t, const struct mem_region *r, const char **ret_why);
/* Index of the region matching exactly (gpa, size, uva), or -1. */
int mem_table_find(const struct mem_table *t, uint64_t gpa, uint64_t size, uint64_t uva);
/*
 * Drops one reference to the region matching exactly (gpa, size, uva). Returns 1 when it was the last
 * (the region left the table and is returned in *ret for unmapping), 0 when others remain, -ENOENT.
 */
int mem_table_remove(struct mem_table *t, uint64_t gpa, uint64_t size, uint64_t uva, struct mem_region *ret);
/* Unmaps every region and empties the table. */
void mem_table_clear(struct mem_table *t);

/*
 * Translates [gpa, gpa+len) into at most max iovec entries (a range crossing regions takes several).
 * *hint is the caller's last-hit region cache (any value is safe). write asks for writable memory.
 * Returns the number of entries, -EFAULT when any byte lies outside guest memory (or is read-only and
 * write was asked), -ENOBUFS when max entries are not enough.
 */
int mem_translate(const struct mem_table *t, uint64_t gpa, uint64_t len, bool write, struct iovec *iov, unsigned max,
                  unsigned *hint);

/* Translates a front-end virtual range that must be contiguous in one region; NULL otherwise. O(log n). */
void *mem_uva_to_host(const struct mem_table *t, uint64_t uva, uint64_t len, bool write);

#endif
