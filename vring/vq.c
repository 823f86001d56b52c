// SPDX-License-Identifier: MIT
#include "vring/vq.h"
#include "vring/packed.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vq_set_broken(struct vq *vq, const char *fmt, ...)
{
        va_list ap;

        if (!vq->broken) {
                va_start(ap, fmt);
                vsnprintf(vq->broken_reason, sizeof(vq->broken_reason), fmt, ap);
                va_end(ap);
                vq->broken = true;
        }
        return -EINVAL;
}

int vq_check_num(unsigned num)
{
        if (num == 0 || num > VIRTQ_MAX_SIZE || (num & (num - 1)))
                return -EINVAL;
        return 0;
}

int vq_alloc(struct vq *vq, unsigned num)
{
        struct vring_desc *scratch;

        if (vq->packed)
                return vq_packed_alloc(vq, num);
        if (vq_check_num(num) < 0)
                return -EINVAL;
        scratch = calloc(num, sizeof(*scratch));
        if (!scratch)
                return -ENOMEM;
        free(vq->indirect_scratch);
        vq->indirect_scratch = scratch;
        vq->num = num;
        return 0;
}

void vq_free(struct vq *vq)
{
        free(vq->indirect_scratch);
        vq->indirect_scratch = NULL;
        vq_packed_free(vq);
}

int vq_map_rings(struct vq *vq, const struct mem_table *mem, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva,
                 const char **ret_why)
{
        uint64_t num = vq->num;
        void *desc, *avail, *used;

        if (vq->packed)
                return vq_map_rings_packed(vq, mem, desc_uva, avail_uva, used_uva, ret_why);
        if (vq_check_num(vq->num) < 0) {
                *ret_why = "ring size not set";
                return -EINVAL;
        }
        if ((desc_uva & 15) || (avail_uva & 1) || (used_uva & 3)) {
                *ret_why = "ring address misaligned";
                return -EINVAL;
        }
        desc = mem_uva_to_host(mem, desc_uva, num * sizeof(struct vring_desc), false);
        avail = mem_uva_to_host(mem, avail_uva, 4 + 2 * num + 2, false);
        used = mem_uva_to_host(mem, used_uva, 4 + 8 * num + 2, true);
        if (!desc || !avail || !used) {
                *ret_why = !desc    ? "descriptor table is not in guest memory"
                           : !avail ? "available ring is not in guest memory"
                                    : "used ring is not in writable guest memory";
                return -EFAULT;
        }
        /* The front-end chooses region uvas freely: aligned ring uvas can still land misaligned here. */
        if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) || ((uintptr_t)used & 3)) {
                *ret_why = "ring misaligned in host memory";
                return -EINVAL;
        }
        vq->desc = desc;
        vq->avail = avail;
        vq->used = used;
        vq->mem = mem;
        vq->mem_hint = 0;
        return 0;
}

unsigned vq_avail_count(const struct vq *vq)
{
        if (vq->packed)
                return vq_packed_avail_count(vq);
        if (vq->broken || !vq->avail)
                return 0;
        return (uint16_t)(load_acquire16(&vq->avail->idx) - vq->last_avail_idx);
}

static void read_desc(struct vring_desc *d, const struct vring_desc *src)
{
        /* One copy, so a guest changing the descriptor under us cannot make checks and use disagree. */
        memcpy(d, src, sizeof(*d));
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        d->addr = le64toh(d->addr);
        d->len = le32toh(d->len);
        d->flags = le16toh(d->flags);
        d->next = le16toh(d->next);
}

/*
 * Maps the indirect table at addr+len (both layouts' descriptors are 16 bytes, 8-aligned); copies it when it
 * crosses regions or is misaligned. NULL with vq broken on failure.
 */
const void *vq_map_indirect(struct vq *vq, uint64_t addr, uint32_t len, unsigned *ret_count)
{
        struct iovec iov[8];
        unsigned count = len / sizeof(struct vring_desc);
        int n;

        _Static_assert(sizeof(struct vring_packed_desc) == sizeof(struct vring_desc), "descriptor sizes");
        if (len == 0 || len % sizeof(struct vring_desc)) {
                vq_set_broken(vq, "indirect table length %u is not a multiple of 16", len);
                return NULL;
        }
        if (count > vq->num) {
                vq_set_broken(vq, "indirect table of %u descriptors exceeds queue size %u", count, vq->num);
                return NULL;
        }
        n = mem_translate(vq->mem, addr, len, false, iov, 8, &vq->mem_hint);
        if (n < 0) {
                vq_set_broken(vq, "indirect table at 0x%llx+%u is outside guest memory", (unsigned long long)addr, len);
                return NULL;
        }
        *ret_count = count;
        if (n == 1 && ((uintptr_t)iov[0].iov_base % _Alignof(struct vring_desc)) == 0)
                return iov[0].iov_base;
        uint8_t *dst = (uint8_t *)vq->indirect_scratch;
        for (int i = 0; i < n; i++) {
                memcpy(dst, iov[i].iov_base, iov[i].iov_len);
                dst += iov[i].iov_len;
        }
        return vq->indirect_scratch;
}

int vq_pop(struct vq *vq, struct vq_elem *elem, unsigned iov_max)
{
        const struct vring_desc *table = vq->desc;
        unsigned table_size = vq->num, chain_len = 0, chain_max = vq->num, nio = 0;
        uint16_t avail_idx, head, i;
        bool indirect = false;
        struct vring_desc d;

        if (vq->packed)
                return vq_packed_pop(vq, elem, iov_max);
        if (vq->broken)
                return -EIO;
        avail_idx = load_acquire16(&vq->avail->idx);
        if (avail_idx == vq->last_avail_idx)
                return 0;
        if ((uint16_t)(avail_idx - vq->last_avail_idx) > vq->num)
                return vq_set_broken(vq, "guest moved avail index from %u to %u (ring size %u)", vq->last_avail_idx,
                                     avail_idx, vq->num);

        head = load16(&vq->avail->ring[vq->last_avail_idx & (vq->num - 1)]);
        if (head >= vq->num)
                return vq_set_broken(vq, "avail ring entry %u holds head %u >= ring size %u", vq->last_avail_idx, head,
                                     vq->num);
        if (chain_max > VQ_CHAIN_LEN_MAX)
                chain_max = VQ_CHAIN_LEN_MAX;

        elem->head = head;
        elem->out_num = elem->in_num = 0;
        elem->out_len = elem->in_len = 0;
        i = head;
        for (;;) {
                bool write;
                int n;

                read_desc(&d, &table[i]);
                if (d.flags & VRING_DESC_F_INDIRECT) {
                        if (indirect)
                                return vq_set_broken(vq, "chain %u: nested indirect table", head);
                        if (d.flags & VRING_DESC_F_NEXT)
                                return vq_set_broken(vq, "chain %u: indirect descriptor also has NEXT", head);
                        table = vq_map_indirect(vq, d.addr, d.len, &table_size);
                        if (!table)
                                return -EINVAL;
                        indirect = true;
                        chain_len = 0;
                        chain_max = table_size;
                        i = 0;
                        continue;
                }
                if (++chain_len > chain_max)
                        return vq_set_broken(vq, "chain %u: longer than %u descriptors (loop?)", head, chain_max);
                write = d.flags & VRING_DESC_F_WRITE;
                if (!write && elem->in_num)
                        return vq_set_broken(vq, "chain %u: readable descriptor after a writable one", head);
                if (elem->in_len + elem->out_len + d.len > UINT32_MAX)
                        return vq_set_broken(vq, "chain %u: total length over 4 GiB", head);
                if (write)
                        elem->in_len += d.len;
                else
                        elem->out_len += d.len;
                n = mem_translate(vq->mem, d.addr, d.len, write, elem->iov + nio, iov_max - nio, &vq->mem_hint);
                if (n == -ENOBUFS)
                        return -ENOBUFS;
                if (n < 0)
                        return vq_set_broken(vq, "chain %u: buffer 0x%llx+%u is outside %sguest memory", head,
                                             (unsigned long long)d.addr, d.len, write ? "writable " : "");
                if (elem->gpa) {
                        uint64_t g = d.addr;

                        for (int k = 0; k < n; k++) {
                                elem->gpa[nio + k] = g;
                                g += elem->iov[nio + k].iov_len;
                        }
                }
                nio += (unsigned)n;
                if (write)
                        elem->in_num += (unsigned)n;
                else
                        elem->out_num += (unsigned)n;
                if (!(d.flags & VRING_DESC_F_NEXT))
                        break;
                i = d.next;
                if (i >= table_size)
                        return vq_set_broken(vq, "chain %u: next index %u >= table size %u", head, i, table_size);
        }
        vq->last_avail_idx++;
        return 1;
}

void vq_unpop(struct vq *vq, unsigned n)
{
        if (vq->packed) {
                vq_packed_unpop(vq, n);
                return;
        }
        vq->last_avail_idx -= (uint16_t)n;
}

/* ---- dirty logging (vring/log.h) ---- */

/* Bytes of the used ring: flags, idx, num entries, avail_event. */
static uint64_t used_ring_size(unsigned num)
{
        return offsetof(struct vring_used, ring) + sizeof(struct vring_used_elem) * (uint64_t)num + 2;
}

static inline bool logging_used(const struct vq *vq)
{
        return __builtin_expect(vq->log != NULL, 0) && vq->log_used;
}

/* Marks [off, off + len) of the used ring, after it was written. */
static void log_used(struct vq *vq, uint64_t off, uint64_t len)
{
        if (vlog_mark(vq->log, vq->log_used_gpa + off, len) < 0)
                vq_set_broken(vq, "dirty log of %llu bytes does not cover the used ring at 0x%llx",
                              (unsigned long long)vq->log->size, (unsigned long long)vq->log_used_gpa);
}

int vq_set_log(struct vq *vq, struct vq_log *log, bool log_used, uint64_t used_gpa, const char **ret_why)
{
        if (vq->packed)
                return vq_packed_set_log(vq, log, log_used, used_gpa, ret_why);
        if (log && log_used) {
                uint64_t len;

                if (vq_check_num(vq->num) < 0) {
                        *ret_why = "ring size not set";
                        return -EINVAL;
                }
                len = used_ring_size(vq->num);
                if (!vlog_covers_range(log, used_gpa, len)) {
                        *ret_why = "the dirty log does not cover the used ring";
                        return -ERANGE;
                }
                if (vq->used && vq->mem) {
                        struct iovec iov;
                        unsigned hint = 0;

                        /* Marks at used_gpa must stand for the memory we write: the used ring we were given. */
                        if (mem_translate(vq->mem, used_gpa, len, true, &iov, 1, &hint) != 1 ||
                            iov.iov_base != (void *)vq->used) {
                                *ret_why = "log_guest_addr is not the guest-physical address of the used ring";
                                return -EFAULT;
                        }
                }
        }
        vq->log = log;
        vq->log_used = log && log_used;
        vq->log_used_gpa = vq->log_used ? used_gpa : 0;
        return 0;
}

/* Marks the first len bytes of e's writable segments, merging segments that follow each other in gpa. */
static void log_written(struct vq *vq, const struct vq_elem *e, uint32_t len)
{
        uint64_t left = len, start = 0, run = 0;

        if (!e->gpa) {
                vq_set_broken(vq, "chain %u: written while dirty logging is on, but popped without its addresses",
                              e->head);
                return;
        }
        for (unsigned i = e->out_num; i < e->out_num + e->in_num && left; i++) {
                uint64_t n = e->iov[i].iov_len < left ? e->iov[i].iov_len : left;

                if (run && e->gpa[i] == start + run) {
                        run += n;
                } else {
                        if (run && vlog_mark(vq->log, start, run) < 0)
                                goto too_small;
                        start = e->gpa[i];
                        run = n;
                }
                left -= n;
        }
        if (run && vlog_mark(vq->log, start, run) < 0)
                goto too_small;
        return;

too_small:
        vq_set_broken(vq, "chain %u: dirty log of %llu bytes does not cover guest address 0x%llx+%llu", e->head,
                      (unsigned long long)vq->log->size, (unsigned long long)start, (unsigned long long)run);
}

void vq_push(struct vq *vq, uint16_t head, uint32_t len)
{
        struct vring_used_elem *e;

        if (vq->packed) {
                vq_packed_push(vq, head, len);
                return;
        }
        if (len == 0 && vq->run_open) {
                vq->used->ring[vq->run_slot & (vq->num - 1)].id = htole32(head); /* unpublished: still ours */
        } else {
                e = &vq->used->ring[vq->used_idx & (vq->num - 1)];
                e->id = htole32(head);
                e->len = htole32(len);
                vq->run_open = vq->in_order && len == 0;
                vq->run_slot = vq->used_idx;
        }
        vq->used_idx++;
        vq->unpublished++;
}

void vq_log_elem(struct vq *vq, const struct vq_elem *e, uint32_t len)
{
        if (__builtin_expect(vq->log != NULL, 0) && len)
                log_written(vq, e, len);
}

void vq_push_elem(struct vq *vq, const struct vq_elem *e, uint32_t len)
{
        vq_log_elem(vq, e, len);
        vq_push(vq, e->head, len);
}

/* Marks the used entries written since the last publish (at most the whole ring, maybe wrapping), then idx. */
static void log_publish(struct vq *vq)
{
        unsigned n = vq->unpublished < vq->num ? vq->unpublished : vq->num;
        unsigned first = (uint16_t)(vq->used_idx - n) & (vq->num - 1);
        uint64_t ring = offsetof(struct vring_used, ring), elem = sizeof(struct vring_used_elem);

        if (n) {
                unsigned k = n < vq->num - first ? n : vq->num - first;

                log_used(vq, ring + elem * first, elem * k);
                if (k < n)
                        log_used(vq, ring, elem * (n - k));
        }
        log_used(vq, offsetof(struct vring_used, idx), sizeof(vq->used->idx));
}

int vq_resume(struct vq *vq)
{
        uint16_t used;
        int given = -1;

        vq->run_open = false;
        if (vq->packed) {
                /* QEMU sends 0/wrap 1 when it could not ask a dead back-end: read the position from the ring. */
                if (vq_packed_find_position(vq) >= 0)
                        return 0; /* the base it gave */
                /* Chains popped before the stop and never used go again, as with a split ring. */
                if (vq->used_idx == vq->last_avail_idx && vq->used_wrap == vq->avail_wrap)
                        return -1;
                given = vq->last_avail_idx;
                vq->last_avail_idx = vq->used_idx;
                vq->avail_wrap = vq->used_wrap;
                return given;
        }
        used = load_acquire16(&vq->used->idx);
        if (used != vq->last_avail_idx) {
                given = vq->last_avail_idx;
                vq->last_avail_idx = used;
        }
        vq->used_idx = used;
        return given;
}

void vq_publish(struct vq *vq)
{
        if (vq->packed) {
                vq_packed_publish(vq);
                return;
        }
        __atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
        if (logging_used(vq))
                log_publish(vq);
        vq->unpublished = 0;
        vq->run_open = false;
}

bool vq_should_call(struct vq *vq)
{
        uint16_t old, new_idx, event;
        bool valid;

        if (vq->packed)
                return vq_packed_should_call(vq);
        /* Order our used-index store before reading the guest's suppression state. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!vq->event_idx)
                return !(load16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);

        old = vq->signalled_used;
        valid = vq->signalled_used_valid;
        new_idx = vq->used_idx;
        vq->signalled_used = new_idx;
        vq->signalled_used_valid = true;
        if (!valid)
                return true;
        event = load16(&vq->avail->ring[vq->num]); /* used_event */
        /* virtio spec vring_need_event(): call if event lies in (old, new]. */
        return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

void vq_disable_notify(struct vq *vq)
{
        if (vq->packed) {
                vq_packed_disable_notify(vq);
                return;
        }
        if (!vq->notify_enabled)
                return;
        vq->notify_enabled = false;
        if (!vq->event_idx) {
                store16(&vq->used->flags, VRING_USED_F_NO_NOTIFY);
                if (logging_used(vq))
                        log_used(vq, offsetof(struct vring_used, flags), sizeof(vq->used->flags));
        }
        /* With EVENT_IDX, leaving avail_event behind is enough: the guest kicks only when it passes it. */
}

bool vq_enable_notify(struct vq *vq)
{
        if (vq->packed)
                return vq_packed_enable_notify(vq);
        vq->notify_enabled = true;
        if (vq->event_idx)
                store16((uint16_t *)&vq->used->ring[vq->num], vq->last_avail_idx); /* avail_event */
        else
                store16(&vq->used->flags, 0);
        if (logging_used(vq)) {
                if (vq->event_idx)
                        log_used(vq, used_ring_size(vq->num) - 2, 2);
                else
                        log_used(vq, offsetof(struct vring_used, flags), sizeof(vq->used->flags));
        }
        /* Our store must be visible before we look again, or a kick can be lost. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return load_acquire16(&vq->avail->idx) != vq->last_avail_idx;
}
