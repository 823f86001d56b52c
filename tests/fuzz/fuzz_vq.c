/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the split virtqueue (vring/vq.c) over fuzzed guest RAM:
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE tests/fuzz/fuzz_vq.c \
 *       vring/log.c vring/mem.c vring/packed.c vring/vq.c -o fuzz_vq && ./fuzz_vq tests/fuzz/corpus/vq
 *
 * Guest RAM is four regions, each its own mapping between PROT_NONE guard pages (ASan does not watch mmap'd
 * memory; the guards turn any stray access into a crash):
 *   A  gpa 0x0     32 KiB  writable   rings (compact layout) and data
 *   B  gpa 0x8000  16 KiB  writable   adjacent to A in gpa, not in host memory: crossings take 2 iovecs
 *   C  gpa 0x10000  8 KiB  read-only  (PROT_READ: a write through it crashes)
 *   D  gpa 2^64 - 4 KiB     writable  the top of the address space
 *
 * Input:
 *   byte 0      ring size: 1 << (b % 9)
 *   byte 1      bit 0: EVENT_IDX; bit 1: ring addresses from bytes 2..7 (uva offsets from A, little-endian
 *               u16 each: desc, avail, used) instead of the compact layout (used when they do not map);
 *               bit 2: dirty logging on (the log covers A, B and C, not D; it ends at a guard page); bit 3: IN_ORDER
 *   byte 8      ops length L (then L op bytes)
 *   the rest    guest RAM image, from A's start on through B and C (so the first bytes are the descriptor
 *               table, then the avail ring, the used ring, then data)
 * Ops (b & 7, arg = b >> 3): pop with iov_max arg + 1, push the oldest popped (with vq_push_elem() when it is
 * the last popped chain, whose segments we still have), publish, should_call,
 * enable_notify, disable_notify, unpop the arg newest popped, guest action (avail idx += arg, or for
 * arg >= 16 write the next byte at A + next u16).
 *
 * Checks: every iovec lies inside one region (writable ones in writable regions), lengths add up, counts
 * respect iov_max, heads are < num, vq_pop never writes guest memory, nothing is consumed on 0/-ENOBUFS/
 * errors, a broken queue stays broken, and a pop that succeeds implies the guest made a chain available.
 * Every segment's recorded guest-physical address translates back to its iovec. With logging on: the pages of
 * the bytes vq_push_elem() was told were written are marked (or the queue broke because one lies beyond the
 * log, in D), the used index's page is marked after a publish, and nothing is written past the log.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vring/log.h"
#include "vring/mem.h"
#include "vring/vq.h"

#include "tests/fuzz/fuzz_guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IOV_MAX_FUZZ 32
#define POPPED_MAX 1024

/* After vq_push_elem(e, len) with logging on: the pages of the first len written bytes are marked. */
static void check_logged_elem(const struct vq *vq, const struct vq_elem *e, uint32_t len)
{
        uint64_t left = len;
        bool beyond = false;

        for (unsigned i = e->out_num; i < e->out_num + e->in_num && left; i++) {
                uint64_t n = e->iov[i].iov_len < left ? e->iov[i].iov_len : left;

                if (!vlog_covers_range(&dirty_log, e->gpa[i], n)) {
                        beyond = true; /* in D: what fits was marked, the queue broke */
                        break;
                }
                if (!logged(e->gpa[i]) || !logged(e->gpa[i] + n - 1))
                        abort();
                left -= n;
        }
        if (beyond != vq->broken)
                abort();
}

static bool in_guest(const struct iovec *v, bool write)
{
        const uint8_t *b = v->iov_base;

        if (v->iov_len == 0)
                return false; /* mem_translate never emits empty segments */
        for (unsigned i = 0; i < NREGS; i++) {
                const uint8_t *h = regs[i].host;
                if (b >= h && b < h + regs[i].size && v->iov_len <= (size_t)(h + regs[i].size - b))
                        return !write || regs[i].writable;
        }
        return false;
}

static void check_snapshot(void)
{
        for (unsigned i = 0; i < NREGS; i++)
                if (memcmp(snapshot[i], regs[i].host, regs[i].size) != 0)
                        abort(); /* vq_pop wrote guest memory */
}

static uint16_t avail_idx(const struct vq *vq)
{
        uint16_t v;
        memcpy(&v, (const uint8_t *)vq->avail + 2, 2);
        return le16toh(v);
}

static void check_pop(struct vq *vq, const struct vq_elem *e, int r, unsigned iov_max, uint16_t last_before)
{
        uint64_t out = 0, in = 0;

        if (r == 1) {
                if (vq->broken || e->head >= vq->num || e->out_num + e->in_num > iov_max)
                        abort();
                if ((uint16_t)(vq->last_avail_idx - last_before) != 1)
                        abort();
                /* A chain was made available: avail idx was ahead, by no more than num. */
                if ((uint16_t)(avail_idx(vq) - last_before) == 0 || (uint16_t)(avail_idx(vq) - last_before) > vq->num)
                        abort();
                for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
                        bool write = i >= e->out_num;
                        struct iovec back;
                        unsigned hint = 0;

                        if (!in_guest(&e->iov[i], write))
                                abort();
                        /* The recorded guest-physical address is this segment's. */
                        if (mem_translate(&mem, e->gpa[i], e->iov[i].iov_len, write, &back, 1, &hint) != 1 ||
                            back.iov_base != e->iov[i].iov_base)
                                abort();
                        if (write)
                                in += e->iov[i].iov_len;
                        else
                                out += e->iov[i].iov_len;
                }
                if (out != e->out_len || in != e->in_len || out > UINT32_MAX || in > UINT32_MAX)
                        abort();
                return;
        }
        if (vq->last_avail_idx != last_before)
                abort(); /* nothing consumed unless a chain was popped */
        if (r == 0 || r == -ENOBUFS) {
                if (r == -ENOBUFS && vq->broken)
                        abort();
                if (r == 0 && avail_idx(vq) != last_before && !vq->broken)
                        abort();
                return;
        }
        if (r > 1 || !vq->broken || !memchr(vq->broken_reason, 0, sizeof(vq->broken_reason)))
                abort();
}

static void guest_action(struct vq *vq, unsigned arg, const uint8_t **ops, size_t *nops)
{
        if (arg < 16) {
                uint16_t v = htole16((uint16_t)(avail_idx(vq) + arg));
                memcpy((uint8_t *)vq->avail + 2, &v, 2);
                return;
        }
        if (*nops < 3)
                return;
        uint16_t off = (uint16_t)((*ops)[0] | (*ops)[1] << 8);
        regs[0].host[off % regs[0].size] = (*ops)[2];
        *ops += 3;
        *nops -= 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct vq vq = {0};
        struct iovec iov[IOV_MAX_FUZZ];
        uint64_t gpa[IOV_MAX_FUZZ];
        struct vq_elem e = {.iov = iov, .gpa = gpa};
        bool have_last = false; /* e is the newest popped chain */
        bool logging;
        uint16_t popped[POPPED_MAX];
        unsigned npopped = 0, first = 0;
        const uint8_t *ops;
        size_t nops;
        const char *why;
        unsigned num;
        uint64_t desc, avail, used;

        if (size < 9)
                return 0;
        init();
        num = 1u << (data[0] % 9);
        nops = data[8];
        if (nops > size - 9)
                nops = size - 9;
        ops = data + 9;
        fill(data + 9 + nops, size - 9 - nops);

        if (vq_alloc(&vq, num) < 0)
                abort();
        vq.event_idx = data[1] & 1;
        vq.in_order = data[1] & 8;
        desc = 0;
        avail = 16ull * num;
        used = (avail + 6 + 2ull * num + 3) & ~3ull;
        if (data[1] & 2) {
                uint64_t d = data[2] | data[3] << 8, a = data[4] | data[5] << 8, u = data[6] | data[7] << 8;
                if (vq_map_rings(&vq, &mem, UVA_BASE + d, UVA_BASE + a, UVA_BASE + u, &why) < 0) {
                        if (!why)
                                abort();
                        if (vq.desc || vq.avail || vq.used)
                                abort(); /* a failed map leaves the queue alone */
                }
        }
        if (!vq.desc && vq_map_rings(&vq, &mem, UVA_BASE + desc, UVA_BASE + avail, UVA_BASE + used, &why) < 0)
                abort();
        /* The rings must lie inside writable (used) or any (desc, avail) guest memory. */
        {
                struct iovec d = {vq.desc, 16 * num}, a = {vq.avail, 6 + 2 * num}, u = {vq.used, 6 + 8 * num};
                if (!in_guest(&d, false) || !in_guest(&a, false) || !in_guest(&u, true))
                        abort();
        }
        logging = data[1] & 4;
        memset(dirty_log.base, 0, dirty_log.size);
        if (logging) {
                const uint8_t *u = (const uint8_t *)vq.used;
                uint64_t used_gpa = UINT64_MAX;

                for (unsigned i = 0; i < NREGS; i++)
                        if (u >= regs[i].host && u < regs[i].host + regs[i].size)
                                used_gpa = regs[i].gpa + (uint64_t)(u - regs[i].host);
                /* The used ring is in A or B, which the log covers: it must be accepted. */
                if (vq_set_log(&vq, &dirty_log, true, used_gpa, &why) < 0)
                        abort();
        }

        while (nops > 0) {
                unsigned op = ops[0] & 7, arg = ops[0] >> 3;
                ops++;
                nops--;
                switch (op) {
                case 0: {
                        unsigned max = arg + 1;
                        uint16_t last = vq.last_avail_idx;
                        bool was_broken = vq.broken;
                        int r;

                        take_snapshot();
                        have_last = false; /* e is overwritten, whatever the result */
                        r = vq_pop(&vq, &e, max);
                        check_snapshot();
                        if (was_broken && r >= 0)
                                abort(); /* broken stays broken */
                        check_pop(&vq, &e, r, max, last);
                        if (r == 1 && npopped < POPPED_MAX) {
                                popped[(first + npopped++) % POPPED_MAX] = e.head;
                                have_last = true;
                        } else if (r == 1) {
                                vq_unpop(&vq, 1);
                        }
                        if (vq.broken && vq_avail_count(&vq) != 0)
                                abort();
                        break;
                }
                case 1:
                        if (npopped == 1 && have_last && !vq.broken) {
                                /* Written: up to all the chain's writable bytes, some beyond. */
                                uint32_t len = (uint32_t)(e.in_len * arg / 16);

                                vq_push_elem(&vq, &e, len);
                                if (logging)
                                        check_logged_elem(&vq, &e, len);
                                else if (vq.broken)
                                        abort();
                                have_last = false;
                                first = (first + 1) % POPPED_MAX;
                                npopped--;
                        } else if (npopped) {
                                vq_push(&vq, popped[first], arg * 37u);
                                first = (first + 1) % POPPED_MAX;
                                npopped--;
                        }
                        break;
                case 2: {
                        bool was_broken = vq.broken;

                        vq_publish(&vq);
                        if (logging && !vq.broken && !logged(vq.log_used_gpa + 2))
                                abort(); /* used->idx's page */
                        if (vq.broken && !was_broken)
                                abort(); /* the log covers the used ring */
                        break;
                }
                case 3:
                        (void)vq_should_call(&vq);
                        break;
                case 4:
                        (void)vq_enable_notify(&vq);
                        /* avail_event (EVENT_IDX) or used->flags was written: its page is marked. */
                        if (logging && !logged(vq.log_used_gpa + (vq.event_idx ? 4 + 8ull * vq.num : 0)))
                                abort();
                        break;
                case 5:
                        vq_disable_notify(&vq);
                        break;
                case 6: {
                        unsigned n = arg < npopped ? arg : npopped;
                        vq_unpop(&vq, n);
                        npopped -= n;
                        if (n)
                                have_last = false;
                        break;
                }
                case 7:
                        guest_action(&vq, arg, &ops, &nops);
                        break;
                }
        }
        /* Without logging nothing is ever marked. */
        if (!logging)
                for (uint64_t i = 0; i < dirty_log.size; i++)
                        if (dirty_log.base[i])
                                abort();
        vq_free(&vq);
        return 0;
}
