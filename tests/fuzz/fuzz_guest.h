/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM for the ring fuzz targets (fuzz_vq.c, fuzz_vq_packed.c), one copy of it: four regions, each its own
 * mapping between PROT_NONE pages, in a real struct mem_table, and a dirty log that ends at a guard page.
 *   A  gpa 0x0     32 KiB  writable   rings and data
 *   B  gpa 0x8000  16 KiB  writable   adjacent to A in gpa, not in host memory: crossings take 2 iovecs
 *   C  gpa 0x10000  8 KiB  read-only  (PROT_READ: a write through it crashes)
 *   D  gpa 2^64 - 4 KiB     writable  the top of the address space, beyond the dirty log
 * Included by one fuzz target each (a single translation unit): everything here is static.
 */
#ifndef FUZZ_GUEST_H
#define FUZZ_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vring/log.h"
#include "vring/mem.h"

#define UVA_BASE 0x7f0000000000ull
#define LOG_BYTES 8 /* 64 pages: 256 KiB, A to C */

struct fregion {
        uint64_t gpa, size, uva;
        bool writable;
        uint8_t *host;
};

static struct fregion regs[] = {
        {0x0, 0x8000, UVA_BASE, true, NULL},
        {0x8000, 0x4000, UVA_BASE + 0x8000, true, NULL},
        {0x10000, 0x2000, UVA_BASE + 0x10000, false, NULL},
        {0xfffffffffffff000ull, 0x1000, UVA_BASE + 0x100000, true, NULL},
};
#define NREGS (sizeof(regs) / sizeof(regs[0]))

static struct mem_table mem;
static uint8_t *snapshot[NREGS];
static struct vq_log dirty_log;

static uint8_t *map_guarded(size_t size)
{
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        uint8_t *p = mmap(NULL, size + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (p == MAP_FAILED || mprotect(p + page, size, PROT_READ | PROT_WRITE) < 0)
                abort();
        return p + page;
}

static void init(void)
{
        static bool done;

        if (done)
                return;
        done = true;
        for (unsigned i = 0; i < NREGS; i++) {
                /* Through mem_table_add(), which keeps the table's gpa and uva orders (no mapping of its own). */
                struct mem_region r = {
                        .gpa = regs[i].gpa,
                        .size = regs[i].size,
                        .uva = regs[i].uva,
                        .writable = regs[i].writable,
                        .refs = 1,
                };
                const char *why;

                regs[i].host = map_guarded(regs[i].size);
                snapshot[i] = malloc(regs[i].size);
                if (!snapshot[i])
                        abort();
                r.host = regs[i].host;
                if (mem_table_add(&mem, &r, &why) < 0)
                        abort();
        }
        {
                /* The log ends where a guard page begins: a write past it crashes. */
                size_t page = (size_t)sysconf(_SC_PAGESIZE);
                uint8_t *p = map_guarded(page);

                vlog_init(&dirty_log, p + page - LOG_BYTES, LOG_BYTES);
        }
}

static bool logged(uint64_t gpa)
{
        uint64_t page = gpa >> VLOG_PAGE_SHIFT;

        return page / 8 < dirty_log.size && (dirty_log.base[page / 8] & (1u << (page % 8)));
}

/* Fills guest RAM from the input; C is made read-only again afterwards. */
static void fill(const uint8_t *img, size_t len)
{
        mprotect(regs[2].host, regs[2].size, PROT_READ | PROT_WRITE);
        for (unsigned i = 0; i < NREGS; i++) {
                size_t n = len < regs[i].size ? len : regs[i].size;

                memset(regs[i].host, 0, regs[i].size);
                if (i < 3) {
                        memcpy(regs[i].host, img, n);
                        img += n;
                        len -= n;
                }
        }
        mprotect(regs[2].host, regs[2].size, PROT_READ);
}

static void take_snapshot(void)
{
        for (unsigned i = 0; i < NREGS; i++)
                memcpy(snapshot[i], regs[i].host, regs[i].size);
}

#endif
