/* SPDX-License-Identifier: MIT */
/*
 * The dirty log of live migration (QEMU docs/interop/vhost-user.rst, "Migration"). While the front-end migrates
 * the guest, every guest page the back-end writes must be marked in a bitmap the front-end shares with us
 * (SET_LOG_BASE), so that the page is sent again. One bit per 4 KiB page of guest-physical address space: page
 * n = gpa >> 12 is bit n % 8 of byte n / 8 (the front-end reads it as little-endian 64-bit words: the same bits).
 *
 * Several workers mark at once while the front-end fetches and clears words, so a mark is an atomic OR, made
 * after the write it records and ordered after it (release): a mark made before the write could be cleared by a
 * migration pass that then copies the page without the write, and the write would never be sent.
 *
 * Nothing here is per byte: callers mark whole ranges once per burst (vq_publish(), vq_push_elem()).
 */
#ifndef VRING_LOG_H
#define VRING_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vring/mem.h"

#define VLOG_PAGE_SHIFT 12
#define VLOG_PAGE (1u << VLOG_PAGE_SHIFT)

/* Replaced as a whole, like the memory table: a queue points at one while its worker is quiesced. */
struct vq_log {
        uint8_t *base;  /* the bitmap */
        uint64_t size;  /* its bytes (SET_LOG_BASE mmap_size): covers gpa [0, size * 8 * VLOG_PAGE) */
        void *map_base; /* what mmap returned (covers the fd from offset 0), NULL for caller memory */
        size_t map_len;
        int fd; /* a duplicate of the front-end's fd while mapped (for an upgrade's handover); valid when holds_fd */
        bool holds_fd;
        uint64_t offset; /* where the bitmap starts in fd */
};

/*
 * Maps a log of size bytes found at offset in fd (SET_LOG_BASE's mmap_size, mmap_offset; the fd is not consumed: the
 * log keeps a duplicate). Returns 0, -EINVAL for a size of 0 or an offset + size that overflows, -ERANGE when the fd (a
 * regular file) is shorter than offset + size (touching the missing pages would raise SIGBUS), or the fstat/mmap error.
 */
int vlog_map(struct vq_log *log, int fd, uint64_t size, uint64_t offset);

/* Uses caller memory of size bytes as the log (tests); vlog_unmap() then leaves it alone. */
void vlog_init(struct vq_log *log, void *base, uint64_t size);

/* Unmaps (if mapped) and empties the log. NULL-safe, idempotent. */
void vlog_unmap(struct vq_log *log);

/*
 * Marks every page that [gpa, gpa + len) touches; call it after the write. Never writes past the log: a range
 * that ends beyond it (or wraps around the address space) has what fits marked and gives -ERANGE, so the caller
 * can stop the device with a reason. len 0 marks nothing. Returns 0 or -ERANGE. Safe from several threads.
 */
int vlog_mark(struct vq_log *log, uint64_t gpa, uint64_t len);

/* Whether every page of [gpa, gpa + len) has its bit in the log (len 0: true). */
bool vlog_covers_range(const struct vq_log *log, uint64_t gpa, uint64_t len);

/*
 * Whether the log has a bit for every page of guest memory: the end of the highest region must fit
 * (size * 8 * 4096 >= max(gpa + size)). SET_LOG_BASE with a smaller log is refused, and so is a memory table
 * change that outgrows the log while logging is on. An empty or NULL table is covered.
 */
bool vlog_covers(const struct vq_log *log, const struct mem_table *mem);

#endif
