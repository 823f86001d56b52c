/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the packed virtqueue (vring/packed.c, through vring/vq.h) over fuzzed guest RAM:
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE tests/fuzz/fuzz_vq_packed.c \
 *       vring/log.c vring/mem.c vring/packed.c vring/vq.c -o fuzz_vq_packed && ./fuzz_vq_packed corpus/vq_packed
 *
 * Guest RAM is the same four guarded regions as fuzz_vq.c (each its own mapping between PROT_NONE pages):
 *   A  gpa 0x0     32 KiB  writable   rings (compact layout) and data
 *   B  gpa 0x8000  16 KiB  writable   adjacent to A in gpa, not in host memory: crossings take 2 iovecs
 *   C  gpa 0x10000  8 KiB  read-only  (PROT_READ: a write through it crashes)
 *   D  gpa 2^64 - 4 KiB     writable  the top of the address space, beyond the dirty log
 *
 * Input (little-endian):
 *   bytes 0-1   ring size: 1 + u16 % 512 (packed rings take any size: odd sizes and wraps are common)
 *   byte 2      bit 0: EVENT_IDX; bit 1: ring addresses from bytes 3..8 (u16 each, uva offset from A in 2-byte
 *               units: descriptor ring, driver area, device area; compact layout when they do not map);
 *               bit 2: dirty logging (the log covers A, B and C); bit 3: SET_VRING_BASE with bytes 9..12;
 *               bit 4: rings in D (beyond the log: logging must then be refused); bit 5: IN_ORDER
 *   bytes 13-14 ops length L (then L op bytes)
 *   the rest    guest RAM image, from A's start through B and C (compact layout: descriptor ring first)
 * Compact layout: descriptor ring at gpa 0, driver area right after it, device area 4 bytes later.
 *
 * Ops (b & 15, arg = b >> 4):
 *   0 pop, iov_max arg + 1 (arg 15: 32)     1 push the oldest popped: arg 0 vq_push(id, 0), else vq_push_elem()
 *                                           (none popped, arg 15: push an id not in flight, which must break)
 *   2 publish                               3 should_call
 *   4 enable_notify                         5 disable_notify
 *   6 unpop arg (arg 15 with fewer popped: more than popped, which must break the queue)
 *   7 avail_count                           8 guest writes a byte: [off lo, off hi, value] into A (arg odd: B)
 *   9 driver makes a chain of (arg & 7) + 1 descriptors available at its next slots with its wrap counter,
 *     first descriptor's flags last: 4 bytes a descriptor [fl, off lo, off hi, len] then the id byte.
 *     fl & 3 region A/B/C/D (bit 6: the gap after C instead), bit 2 WRITE, bit 3 INDIRECT, bit 4 the
 *     not-available bits, bit 5 len = byte (else byte * 16), bit 7 the id byte is the id as is (else the first
 *     id at or after it, mod num, that the driver has not handed out).
 *   10 driver writes its event area: [flags, off lo, off hi] (flags bit 2: off_wrap as is, else slot mod num)
 *   11 SET_VRING_BASE mid-stream: 4 bytes
 *   12-15 pop (as 0), so that most streams pop often
 *
 * Checks after each op, abort() on a violation: every iovec lies inside one region (writable ones in writable
 * regions), lengths add up, counts respect iov_max, ids < num and not in flight twice, vq_pop and vq_avail_count
 * never write guest memory (snapshot compare), a pop that succeeds started at an available slot and moved by the
 * slots the chain took (<= num), nothing is consumed on 0/-ENOBUFS/errors (and -ENOBUFS does not break), a broken
 * queue stays broken (and counts 0), unpop restores the position before the pops given back, each segment's
 * recorded gpa translates back to its iovec, push writes nothing into guest memory (unless a ring's worth of used
 * descriptors is pending: then it publishes them first), publish writes each used descriptor at the model's used
 * slot (AVAIL = USED = wrap, WRITE iff len), should_call
 * matches a model by free-running slot counts (a call after more than a lap), enable/disable write the device area as
 * documented, set_base checks slots and round-trips through get_base. With logging: the bytes vq_push_elem() was
 * told of are marked (or the queue broke because one lies in D), the used descriptors a publish wrote are marked,
 * the device area after enable/disable, and nothing is written past the log (it ends at a guard page); without
 * logging nothing is marked.
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

#define NUM_MAX 512
#define IOV_MAX_FUZZ 32
#define GAP_GPA 0x12000ull

#define F_AVAIL VRING_PACKED_DESC_F_AVAIL
#define F_USED VRING_PACKED_DESC_F_USED
#define WRAP_BIT (1u << RING_EVENT_WRAP_SHIFT)

/*
 * After more than a lap of used slots between two should_calls the device cannot tell whether it passed the
 * driver's event slot, and must call (it once did not: corpus/vq_packed/should_call_lap).
 */

/* A popped chain not pushed yet, with its segments (for vq_push_elem()) and the position before its pop. */
struct popped {
        struct vq_elem e;
        struct iovec iov[IOV_MAX_FUZZ];
        uint64_t gpa[IOV_MAX_FUZZ];
        uint16_t slots;
        uint16_t before_slot;
        bool before_wrap;
};

/* A used descriptor pushed since the last publish. */
struct pushed {
        uint16_t slot, id;
        uint32_t len;
        uint16_t flags;
};

/* Everything about one input, reset per input. */
struct st {
        struct vq vq;
        unsigned num;
        bool logging; /* vq_set_log() accepted */
        struct popped popped[NUM_MAX];
        unsigned first, npopped; /* FIFO in pop order */
        struct pushed batch[NUM_MAX];
        unsigned nbatch, batch_slots;
        bool run_open;    /* IN_ORDER: the last batch entry is a run of length-0 pushes that may grow */
        bool batch_clean; /* no guest write since the batch began: its descriptors are ours to check */
        /* The model of used slots: free-running count, and at the last should_call. */
        uint64_t used_total, used_at_call;
        bool call_valid;
        uint16_t used_slot; /* where the next used descriptor goes */
        bool used_wrap;
        /* The driver. */
        uint16_t drv_next;
        bool drv_wrap;
        bool drv_busy[NUM_MAX]; /* ids handed out and not seen pushed */
};

static struct st st;

/* Before an op that may mark, so the check after it sees that op's marks only (never without logging). */
static void clear_log(void)
{
        if (st.logging)
                memset(dirty_log.base, 0, dirty_log.size);
}

/* The region holding host bytes [p, p + len), or -1. */
static int region_of(const void *p, size_t len)
{
        const uint8_t *b = p;

        for (unsigned i = 0; i < NREGS; i++) {
                const uint8_t *h = regs[i].host;
                if (b >= h && b < h + regs[i].size && len <= (size_t)(h + regs[i].size - b))
                        return (int)i;
        }
        return -1;
}

static uint64_t host_gpa(const void *p)
{
        int r = region_of(p, 1);

        if (r < 0)
                abort();
        return regs[r].gpa + (uint64_t)((const uint8_t *)p - regs[r].host);
}

static bool in_guest(const struct iovec *v, bool write)
{
        int r;

        if (v->iov_len == 0)
                return false; /* mem_translate never emits empty segments */
        r = region_of(v->iov_base, v->iov_len);
        return r >= 0 && (!write || regs[r].writable);
}

static void check_snapshot(void)
{
        for (unsigned i = 0; i < NREGS; i++)
                if (memcmp(snapshot[i], regs[i].host, regs[i].size) != 0)
                        abort(); /* the walker wrote guest memory */
}

static uint16_t rd16(const void *p)
{
        uint16_t v;

        memcpy(&v, p, 2);
        return le16toh(v);
}

static uint16_t desc_flags(unsigned slot)
{
        return rd16(&st.vq.pdesc[slot].flags);
}

static bool is_avail(uint16_t flags, bool wrap)
{
        return !!(flags & F_AVAIL) == wrap && !!(flags & F_USED) != wrap;
}

static void advance(uint16_t *slot, bool *wrap, unsigned n)
{
        unsigned s = *slot + n;

        while (s >= st.num) {
                s -= st.num;
                *wrap = !*wrap;
        }
        *slot = (uint16_t)s;
}

/* Position of (slot, wrap) on a line of 2 * num, where wrap 1's lap comes first. */
static unsigned pos_of(unsigned slot, bool wrap)
{
        return slot + (wrap ? 0 : st.num);
}

static void check_pop_ok(const struct vq_elem *e, unsigned iov_max, uint16_t slot, bool wrap, uint16_t first_flags)
{
        struct vq *vq = &st.vq;
        uint64_t out = 0, in = 0;
        unsigned slots;
        uint16_t s = slot;
        bool w = wrap;

        if (vq->broken || e->head >= st.num || e->out_num + e->in_num > iov_max)
                abort();
        if (!is_avail(first_flags, wrap))
                abort(); /* popped from a slot that was not available */
        for (unsigned i = 0; i < st.npopped; i++)
                if (st.popped[(st.first + i) % NUM_MAX].e.head == e->head)
                        abort(); /* an id in flight twice */
        slots = vq->inflight_slots[e->head];
        if (slots == 0 || slots > st.num)
                abort();
        advance(&s, &w, slots);
        if (vq->last_avail_idx != s || vq->avail_wrap != w)
                abort(); /* moved by the slots the chain took */
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
        if (out != e->out_len || in != e->in_len || out + in > UINT32_MAX)
                abort();
}

static void op_pop(unsigned arg)
{
        struct vq *vq = &st.vq;
        unsigned max = arg == 15 ? IOV_MAX_FUZZ : arg + 1;
        uint16_t slot = vq->last_avail_idx, first_flags = desc_flags(slot);
        bool wrap = vq->avail_wrap, was_broken = vq->broken;
        struct popped *p;
        uint16_t inflight[NUM_MAX];
        int r;

        if (st.npopped == NUM_MAX)
                abort(); /* more chains in flight than ids */
        p = &st.popped[(st.first + st.npopped) % NUM_MAX];
        p->e.iov = p->iov;
        p->e.gpa = p->gpa;
        memcpy(inflight, vq->inflight_slots, st.num * sizeof(*inflight));
        take_snapshot();
        r = vq_pop(vq, &p->e, max);
        check_snapshot();
        if (was_broken && r >= 0)
                abort(); /* broken stays broken */
        if (r == 1) {
                check_pop_ok(&p->e, max, slot, wrap, first_flags);
                p->slots = vq->inflight_slots[p->e.head];
                p->before_slot = slot;
                p->before_wrap = wrap;
                st.npopped++;
                return;
        }
        if (vq->last_avail_idx != slot || vq->avail_wrap != wrap ||
            memcmp(inflight, vq->inflight_slots, st.num * sizeof(*inflight)))
                abort(); /* nothing consumed unless a chain was popped */
        if (r == 0) {
                if (vq->broken || is_avail(first_flags, wrap))
                        abort();
                return;
        }
        if (r == -ENOBUFS) {
                if (vq->broken)
                        abort();
                return;
        }
        if (r > 1 || !vq->broken || !memchr(vq->broken_reason, 0, sizeof(vq->broken_reason)))
                abort();
}

/* After vq_push_elem(e, len) with logging on: the pages of the first len written bytes are marked. */
static bool check_logged_elem(const struct vq_elem *e, uint32_t len)
{
        uint64_t left = len;

        for (unsigned i = e->out_num; i < e->out_num + e->in_num && left; i++) {
                uint64_t n = e->iov[i].iov_len < left ? e->iov[i].iov_len : left;

                if (!vlog_covers_range(&dirty_log, e->gpa[i], n))
                        return true; /* in D: what fits was marked, the queue broke */
                if (!logged(e->gpa[i]) || !logged(e->gpa[i] + n - 1))
                        abort();
                left -= n;
        }
        return false;
}

static void op_push(unsigned arg)
{
        struct vq *vq = &st.vq;
        struct popped *p;
        uint16_t id, slot = st.used_slot;
        bool was_broken = vq->broken, first_of_batch = vq->unpublished == 0, early;
        uint32_t len;

        if (!st.npopped) {
                if (arg == 15 && !was_broken) {
                        /* Nothing is in flight: any id is refused, and breaks the queue. */
                        unsigned unpublished = vq->unpublished;

                        vq_push(vq, (uint16_t)(st.used_total % (st.num + 1)), 0);
                        if (!vq->broken || vq->used_idx != st.used_slot || vq->unpublished != unpublished)
                                abort(); /* and nothing recorded */
                }
                return;
        }
        p = &st.popped[st.first];
        id = p->e.head;
        /* Written: from nothing to all the chain's writable bytes, and some beyond. */
        len = arg == 0 ? 0 : (uint32_t)(p->e.in_len * (arg - 1) / 13);
        /* A push that finds a ring's worth of used descriptors pending (a driver reusing slots) publishes them. */
        early = !first_of_batch && !(st.run_open && len == 0) && st.nbatch >= st.num;
        if (first_of_batch || early) {
                st.nbatch = 0;
                st.batch_slots = 0;
                st.batch_clean = true;
                st.run_open = false;
        }
        /* Otherwise a push writes nothing into guest memory: vq_publish() writes the batch. */
        take_snapshot();
        if (arg == 0) {
                vq_push(vq, id, 0);
        } else {
                clear_log();
                vq_push_elem(vq, &p->e, len);
                if (st.logging && len) {
                        bool beyond = check_logged_elem(&p->e, len);

                        if (beyond != (vq->broken && !was_broken) && !was_broken)
                                abort();
                }
        }
        if (!st.logging && vq->broken != was_broken)
                abort();
        if (vq->inflight_slots[id])
                abort();
        if (!early)
                check_snapshot();
        if (st.run_open && len == 0) {
                /* IN_ORDER: the run's descriptor will name this buffer. */
                st.batch[(st.nbatch - 1) % NUM_MAX].id = id;
        } else {
                st.run_open = vq->in_order && len == 0;
                st.batch[st.nbatch++ % NUM_MAX] = (struct pushed){
                        slot, id, len,
                        (uint16_t)((st.used_wrap ? F_AVAIL | F_USED : 0) | (len ? VRING_DESC_F_WRITE : 0))};
        }
        st.batch_slots += p->slots;
        advance(&st.used_slot, &st.used_wrap, p->slots);
        st.used_total += p->slots;
        if (vq->used_idx != st.used_slot || vq->used_wrap != st.used_wrap)
                abort();
        st.drv_busy[id] = false;
        st.first = (st.first + 1) % NUM_MAX;
        st.npopped--;
}

static void op_publish(void)
{
        struct vq *vq = &st.vq;
        bool was_broken = vq->broken;
        unsigned n = vq->unpublished;

        clear_log();
        vq_publish(vq);
        if (vq->broken != was_broken)
                abort(); /* the log covers the ring */
        if (!n)
                return;
        if (vq->unpublished)
                abort();
        for (unsigned i = 0; i < st.nbatch && i < NUM_MAX; i++) {
                const struct pushed *b = &st.batch[i];

                if (st.logging && !logged(vq->pdesc_gpa + 16ull * b->slot))
                        abort(); /* used descriptor written, not marked */
                /* Slots of one batch are distinct within a lap; the guest may have written over them. */
                if (st.batch_clean && st.batch_slots <= st.num &&
                    (rd16(&vq->pdesc[b->slot].id) != b->id || le32toh(vq->pdesc[b->slot].len) != b->len ||
                     desc_flags(b->slot) != b->flags))
                        abort();
        }
        st.nbatch = 0;
        st.batch_slots = 0;
        st.run_open = false;
}

static void op_should_call(void)
{
        struct vq *vq = &st.vq;
        const struct vring_packed_desc_event *ev = vq->driver_event;
        uint16_t flags = rd16(&ev->flags) & 3, off_wrap = rd16(&ev->off_wrap);
        uint64_t since = st.used_total - st.used_at_call;
        bool valid = st.call_valid, expect, got;

        got = vq_should_call(vq);
        st.used_at_call = st.used_total;
        st.call_valid = true;
        if (flags == RING_EVENT_FLAGS_DISABLE)
                expect = false;
        else if (flags != RING_EVENT_FLAGS_DESC || !vq->event_idx || !valid)
                expect = true;
        else if (since == 0)
                expect = false; /* nothing used since the last call */
        else if (since > st.num)
                expect = true; /* more than a lap: passed or not is unknowable, so call */
        else {
                /* Slots used since: the since positions before the used slot, on a line of 2 * num. */
                unsigned two = 2 * st.num, now = pos_of(st.used_slot, st.used_wrap);
                unsigned old = (unsigned)((now + two - since) % two);
                unsigned ev_slot = off_wrap & (WRAP_BIT - 1), event;

                if (ev_slot >= st.num)
                        return; /* a slot beyond the ring: any answer */
                event = pos_of(ev_slot, off_wrap & WRAP_BIT);
                expect = (event + two - old) % two < since;
        }
        if (got != expect)
                abort();
}

/* Our device event area may lie over the descriptor ring (rings at fuzzed addresses): writing it clobbers used
 * descriptors of the batch as a guest store would. */
static void device_event_written(void)
{
        uintptr_t ev = (uintptr_t)st.vq.device_event, ring = (uintptr_t)st.vq.pdesc;

        if (ev + sizeof(struct vring_packed_desc_event) > ring && ev < ring + 16ull * st.num)
                st.batch_clean = false;
}

static void op_enable(void)
{
        struct vq *vq = &st.vq;
        bool r;

        clear_log();
        r = vq_enable_notify(vq);
        device_event_written();
        if (vq->event_idx) {
                if (rd16(&vq->device_event->flags) != RING_EVENT_FLAGS_DESC ||
                    rd16(&vq->device_event->off_wrap) != (vq->last_avail_idx | (vq->avail_wrap ? WRAP_BIT : 0)))
                        abort();
        } else if (rd16(&vq->device_event->flags) != RING_EVENT_FLAGS_ENABLE) {
                abort();
        }
        if (r != (!vq->broken && is_avail(desc_flags(vq->last_avail_idx), vq->avail_wrap)))
                abort();
        if (st.logging && !logged(vq->device_event_gpa))
                abort();
}

static void op_disable(void)
{
        struct vq *vq = &st.vq;
        bool was = vq->notify_enabled;

        clear_log();
        vq_disable_notify(vq);
        device_event_written();
        if (vq->notify_enabled)
                abort();
        if (was && rd16(&vq->device_event->flags) != RING_EVENT_FLAGS_DISABLE)
                abort();
        if (was && st.logging && !logged(vq->device_event_gpa))
                abort();
}

static void op_unpop(unsigned arg)
{
        struct vq *vq = &st.vq;
        unsigned n = arg < st.npopped ? arg : st.npopped;
        bool was_broken = vq->broken;

        if (arg == 15 && st.npopped < 15 && !vq->broken) {
                vq_unpop(vq, 15);
                if (!vq->broken)
                        abort(); /* more than popped */
                return;
        }
        vq_unpop(vq, n);
        if (!n)
                return;
        st.npopped -= n;
        for (unsigned i = 0; i < n; i++) {
                const struct popped *p = &st.popped[(st.first + st.npopped + i) % NUM_MAX];

                if (!was_broken && vq->inflight_slots[p->e.head])
                        abort();
                st.drv_busy[p->e.head] = true; /* available again, with the same id */
        }
        if (!was_broken) {
                const struct popped *oldest = &st.popped[(st.first + st.npopped) % NUM_MAX];

                if (vq->broken || vq->last_avail_idx != oldest->before_slot || vq->avail_wrap != oldest->before_wrap)
                        abort(); /* back where the oldest given back was popped */
        }
}

static void op_avail_count(void)
{
        struct vq *vq = &st.vq;
        uint16_t slot = vq->last_avail_idx;
        bool wrap = vq->avail_wrap;
        unsigned c;

        take_snapshot();
        c = vq_avail_count(vq);
        check_snapshot();
        if (vq->last_avail_idx != slot || vq->avail_wrap != wrap)
                abort();
        if (vq->broken ? c != 0 : c > st.num)
                abort();
        if (c && !is_avail(desc_flags(slot), wrap))
                abort();
}

/* Guest stores: anything the guest does may overwrite used descriptors of the current batch. */
static void guest_wrote(void)
{
        st.batch_clean = false;
}

static bool take(const uint8_t **ops, size_t *nops, size_t n)
{
        (void)ops;
        return *nops >= n;
}

static void consume(const uint8_t **ops, size_t *nops, size_t n)
{
        *ops += n;
        *nops -= n;
}

static void op_guest_byte(unsigned arg, const uint8_t **ops, size_t *nops)
{
        const struct fregion *r = &regs[arg & 1];
        const uint8_t *b = *ops;

        if (!take(ops, nops, 3))
                return;
        r->host[(b[0] | b[1] << 8) % r->size] = b[2];
        consume(ops, nops, 3);
        guest_wrote();
}

static uint64_t desc_addr(uint8_t fl, uint16_t off)
{
        if (fl & 0x40)
                return GAP_GPA + off;
        return regs[fl & 3].gpa + off % regs[fl & 3].size;
}

static void op_driver_add(unsigned arg, const uint8_t **ops, size_t *nops)
{
        struct vq *vq = &st.vq;
        unsigned n = (arg & 7) + 1;
        const uint8_t *b = *ops;
        uint16_t slot = st.drv_next, head = st.drv_next, head_flags = 0, id;
        bool wrap = st.drv_wrap;
        uint8_t idb;

        if (!take(ops, nops, 4 * n + 1))
                return;
        idb = b[4 * n];
        if (b[0] & 0x80) {
                id = idb;
        } else {
                /* A well-behaved driver: an id it has not handed out (or any, when all are). */
                id = idb % st.num;
                for (unsigned i = 0; i < st.num && st.drv_busy[id]; i++)
                        id = (uint16_t)((id + 1) % st.num);
        }
        for (unsigned i = 0; i < n; i++) {
                const uint8_t *d = b + 4 * i;
                uint8_t fl = d[0];
                uint16_t flags = (fl & 4 ? VRING_DESC_F_WRITE : 0) | (fl & 8 ? VRING_DESC_F_INDIRECT : 0) |
                                 (i + 1 < n ? VRING_DESC_F_NEXT : 0);
                bool w = fl & 0x10 ? !wrap : wrap;
                struct vring_packed_desc *p = &vq->pdesc[slot];

                flags |= w ? F_AVAIL : F_USED;
                p->addr = htole64(desc_addr(fl, (uint16_t)(d[1] | d[2] << 8)));
                p->len = htole32(fl & 0x20 ? d[3] : d[3] * 16u);
                p->id = htole16(id);
                if (i == 0)
                        head_flags = flags;
                else
                        __atomic_store_n(&p->flags, htole16(flags), __ATOMIC_RELAXED);
                advance(&slot, &wrap, 1);
        }
        __atomic_store_n(&vq->pdesc[head].flags, htole16(head_flags), __ATOMIC_RELEASE);
        st.drv_next = slot;
        st.drv_wrap = wrap;
        if (id < st.num)
                st.drv_busy[id] = true;
        consume(ops, nops, 4 * n + 1);
        guest_wrote();
}

static void op_driver_event(const uint8_t **ops, size_t *nops)
{
        struct vq *vq = &st.vq;
        const uint8_t *b = *ops;
        uint16_t off;

        if (!take(ops, nops, 3))
                return;
        consume(ops, nops, 3);
        if (region_of(vq->driver_event, 4) == 2)
                return; /* in read-only C: the guest cannot write it through this mapping either */
        off = (uint16_t)(b[1] | b[2] << 8);
        if (!(b[0] & 4))
                off = (uint16_t)((off & WRAP_BIT) | (off & (WRAP_BIT - 1)) % st.num);
        __atomic_store_n(&vq->driver_event->off_wrap, htole16(off), __ATOMIC_RELAXED);
        __atomic_store_n(&vq->driver_event->flags, htole16(b[0] & 3), __ATOMIC_RELEASE);
        guest_wrote();
}

/* The model after a SET_VRING_BASE the queue accepted: nothing in flight, the driver where we pop next. */
static void model_base(void)
{
        struct vq *vq = &st.vq;

        st.npopped = 0;
        st.first = 0;
        st.nbatch = 0;
        st.batch_slots = 0;
        st.run_open = false;
        st.call_valid = false;
        st.used_slot = vq->used_idx;
        st.used_wrap = vq->used_wrap;
        st.drv_next = vq->last_avail_idx;
        st.drv_wrap = vq->avail_wrap;
        memset(st.drv_busy, 0, sizeof(st.drv_busy));
}

static void set_base(uint32_t base)
{
        struct vq *vq = &st.vq;
        uint32_t before = vq_packed_get_base(vq);
        const char *why = NULL;
        bool bad = (base & 0x7fff) >= st.num || ((base >> 16) & 0x7fff) >= st.num;
        int r = vq_packed_set_base(vq, base, &why);

        if (bad) {
                if (r != -EINVAL || !why || vq_packed_get_base(vq) != before)
                        abort();
                return;
        }
        if (r != 0)
                abort();
        /* Round trip; a used half of 0 may be read as "avail half only" (used where avail is). */
        if (vq_packed_get_base(vq) != base && ((base >> 16) || vq_packed_get_base(vq) != (base | base << 16)))
                abort();
        model_base();
}

static void op_set_base(const uint8_t **ops, size_t *nops)
{
        const uint8_t *b = *ops;

        if (!take(ops, nops, 4))
                return;
        consume(ops, nops, 4);
        set_base((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

static void map(const uint8_t *data)
{
        struct vq *vq = &st.vq;
        unsigned num = st.num;
        const char *why = NULL;
        uint64_t d = 0, drv = 16ull * num, dev = drv + 4;

        if (data[2] & 0x10 && 16ull * num + 8 <= regs[3].size) {
                if (vq_map_rings(vq, &mem, regs[3].uva, regs[3].uva + 16ull * num, regs[3].uva + 16ull * num + 4,
                                 &why) < 0)
                        abort();
        } else if (data[2] & 2) {
                uint64_t a = 2ull * (data[3] | data[4] << 8), b = 2ull * (data[5] | data[6] << 8),
                         c = 2ull * (data[7] | data[8] << 8);

                if (vq_map_rings(vq, &mem, UVA_BASE + a, UVA_BASE + b, UVA_BASE + c, &why) < 0) {
                        if (!why)
                                abort();
                        if (vq->pdesc || vq->driver_event || vq->device_event)
                                abort(); /* a failed map leaves the queue alone */
                }
        }
        if (!vq->pdesc && vq_map_rings(vq, &mem, UVA_BASE + d, UVA_BASE + drv, UVA_BASE + dev, &why) < 0)
                abort();
        /* The descriptor ring and device area in writable memory, the driver area anywhere, each in one piece. */
        {
                struct iovec r = {vq->pdesc, 16ull * num}, a = {vq->driver_event, 4}, u = {vq->device_event, 4};

                if (!in_guest(&r, true) || !in_guest(&a, false) || !in_guest(&u, true))
                        abort();
                if (vq->pdesc_gpa != host_gpa(vq->pdesc) || vq->device_event_gpa != host_gpa(vq->device_event))
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct vq *vq = &st.vq;
        const uint8_t *ops;
        size_t nops;
        const char *why;

        if (size < 15)
                return 0;
        init();
        memset(&st, 0, sizeof(st));
        st.num = 1 + (unsigned)(data[0] | data[1] << 8) % NUM_MAX;
        nops = (size_t)(data[13] | data[14] << 8);
        if (nops > size - 15)
                nops = size - 15;
        ops = data + 15;
        fill(data + 15 + nops, size - 15 - nops);

        vq->packed = true;
        if (vq_alloc(vq, st.num) < 0)
                abort();
        vq->event_idx = data[2] & 1;
        vq->in_order = data[2] & 0x20;
        map(data);
        model_base(); /* both wrap counters 1, slot 0 */
        if (data[2] & 8)
                set_base((uint32_t)data[9] | (uint32_t)data[10] << 8 | (uint32_t)data[11] << 16 |
                         (uint32_t)data[12] << 24);
        memset(dirty_log.base, 0, dirty_log.size);
        if (data[2] & 4) {
                bool covered = vlog_covers_range(&dirty_log, vq->pdesc_gpa, 16ull * st.num) &&
                               vlog_covers_range(&dirty_log, vq->device_event_gpa, 4);
                int r = vq_set_log(vq, &dirty_log, true, 0, &why);

                /* Refused exactly when the ring lies beyond the log (in D). */
                if (covered ? r != 0 : r != -ERANGE)
                        abort();
                st.logging = r == 0;
                if (!st.logging && vq->log)
                        abort();
        }

        while (nops > 0) {
                unsigned op = ops[0] & 15, arg = ops[0] >> 4;
                bool was_broken = vq->broken;

                ops++;
                nops--;
                switch (op) {
                case 1:
                        op_push(arg);
                        break;
                case 2:
                        op_publish();
                        break;
                case 3:
                        op_should_call();
                        break;
                case 4:
                        op_enable();
                        break;
                case 5:
                        op_disable();
                        break;
                case 6:
                        op_unpop(arg);
                        break;
                case 7:
                        op_avail_count();
                        break;
                case 8:
                        op_guest_byte(arg, &ops, &nops);
                        break;
                case 9:
                        op_driver_add(arg, &ops, &nops);
                        break;
                case 10:
                        op_driver_event(&ops, &nops);
                        break;
                case 11:
                        op_set_base(&ops, &nops);
                        break;
                default:
                        op_pop(arg);
                        break;
                }
                if (was_broken && !vq->broken)
                        abort(); /* broken stays broken */
                if (vq->broken && vq_avail_count(vq) != 0)
                        abort();
        }
        /* Without logging nothing is ever marked. */
        if (!st.logging)
                for (uint64_t i = 0; i < dirty_log.size; i++)
                        if (dirty_log.base[i])
                                abort();
        vq_free(vq);
        return 0;
}
