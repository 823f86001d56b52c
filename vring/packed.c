// SPDX-License-Identifier: MIT
/*
 * Packed virtqueue, device side (virtio 1.1+ "Packed Virtqueues"). vq_packed_pop() is the only walker of packed
 * descriptors: every value the guest controls (flags, addresses, lengths, buffer ids, indirect tables) is read
 * once, into a copy, and checked here. A violation marks the queue broken with a reason, as in vq.c.
 *
 * The driver makes a chain available in consecutive ring slots (wrapping at num), writing the first descriptor's
 * flags last; the buffer id is in the last descriptor. We hand it back with one used descriptor written at our
 * used slot, then skip as many slots as the chain took. The used descriptor's flags (AVAIL and USED both equal to
 * our wrap counter, WRITE when we wrote into the buffer) are written last, with a release store: they are what the
 * driver polls. Used descriptors wait in a shadow until vq_publish() writes the batch in one go, the first one's
 * flags last: the driver polls the next used slot, and writing there while we copy frames would make the cache line
 * go back and forth between its core and ours.
 */
#include "vring/packed.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define AVAIL_USED_MASK (VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED)
#define WRAP_BIT (1u << RING_EVENT_WRAP_SHIFT)
#define SLOT_MASK (WRAP_BIT - 1)

/* Available to us: AVAIL matches the wrap counter we expect there, USED does not. */
static inline bool desc_is_avail(uint16_t flags, bool wrap)
{
        bool avail = flags & VRING_PACKED_DESC_F_AVAIL, used = flags & VRING_PACKED_DESC_F_USED;

        return avail == wrap && used != wrap;
}

/* Moves a slot index forward by n < num slots, flipping the wrap counter when it passes the end. */
static inline void slot_advance(const struct vq *vq, uint16_t *slot, bool *wrap, unsigned n)
{
        unsigned s = *slot + n;

        if (s >= vq->num) {
                s -= vq->num;
                *wrap = !*wrap;
        }
        *slot = (uint16_t)s;
}

static inline void slot_rewind(const struct vq *vq, uint16_t *slot, bool *wrap, unsigned n)
{
        if (*slot < n) {
                *slot = (uint16_t)(*slot + vq->num - n);
                *wrap = !*wrap;
        } else {
                *slot = (uint16_t)(*slot - n);
        }
}

int vq_check_num_packed(unsigned num)
{
        /* No power-of-two rule: slots wrap by comparison, never by masking. */
        if (num == 0 || num > VIRTQ_MAX_SIZE)
                return -EINVAL;
        return 0;
}

static void forget_popped(struct vq *vq)
{
        memset(vq->inflight_slots, 0, sizeof(*vq->inflight_slots) * vq->num);
        vq->popped_next = 0;
        vq->popped_count = 0;
}

int vq_packed_alloc(struct vq *vq, unsigned num)
{
        struct vring_desc *scratch;
        uint16_t *inflight;
        struct vq_popped *popped;
        struct vq_used_packed *shadow;

        if (vq_check_num_packed(num) < 0)
                return -EINVAL;
        /* Indirect table copies: packed descriptors are 16 bytes too. */
        _Static_assert(sizeof(struct vring_packed_desc) == sizeof(struct vring_desc), "descriptor sizes");
        scratch = calloc(num, sizeof(*scratch));
        inflight = calloc(num, sizeof(*inflight));
        popped = calloc(num, sizeof(*popped));
        shadow = calloc(num, sizeof(*shadow));
        if (!scratch || !inflight || !popped || !shadow) {
                free(scratch);
                free(inflight);
                free(popped);
                free(shadow);
                return -ENOMEM;
        }
        vq_packed_free(vq);
        free(vq->indirect_scratch);
        vq->indirect_scratch = scratch;
        vq->inflight_slots = inflight;
        vq->popped = popped;
        vq->popped_next = 0;
        vq->popped_count = 0;
        vq->used_shadow = shadow;
        vq->used_shadow_n = 0;
        vq->num = num;
        /* Both wrap counters start at 1 (spec); SET_VRING_BASE may change them. */
        vq->avail_wrap = true;
        vq->used_wrap = true;
        return 0;
}

void vq_packed_free(struct vq *vq)
{
        free(vq->inflight_slots);
        vq->inflight_slots = NULL;
        free(vq->popped);
        vq->popped = NULL;
        free(vq->used_shadow);
        vq->used_shadow = NULL;
        vq->used_shadow_n = 0;
}

/* The guest-physical address of host memory p, which the table maps; false when it does not. */
static bool host_to_gpa(const struct mem_table *mem, const void *p, uint64_t *gpa)
{
        uintptr_t a = (uintptr_t)p;

        for (unsigned i = 0; i < mem->nregions; i++) {
                const struct mem_region *r = &mem->regions[i];

                if (a >= (uintptr_t)r->host && a - (uintptr_t)r->host < r->size) {
                        *gpa = r->gpa + (a - (uintptr_t)r->host);
                        return true;
                }
        }
        return false;
}

int vq_map_rings_packed(struct vq *vq, const struct mem_table *mem, uint64_t desc_uva, uint64_t driver_uva,
                        uint64_t device_uva, const char **ret_why)
{
        uint64_t size = (uint64_t)vq->num * sizeof(struct vring_packed_desc);
        struct vring_packed_desc_event *driver, *device;
        struct vring_packed_desc *desc;
        uint64_t desc_gpa, device_gpa;

        if (!vq->packed || vq_check_num_packed(vq->num) < 0 || !vq->inflight_slots) {
                *ret_why = "ring size not set";
                return -EINVAL;
        }
        if ((desc_uva & 15) || (driver_uva & 3) || (device_uva & 3)) {
                *ret_why = "ring address misaligned";
                return -EINVAL;
        }
        /* We write used descriptors into the descriptor ring: it must be writable. */
        desc = mem_uva_to_host(mem, desc_uva, size, true);
        driver = mem_uva_to_host(mem, driver_uva, sizeof(*driver), false);
        device = mem_uva_to_host(mem, device_uva, sizeof(*device), true);
        if (!desc || !driver || !device) {
                *ret_why = !desc     ? "descriptor ring is not in writable guest memory"
                           : !driver ? "driver event area is not in guest memory"
                                     : "device event area is not in writable guest memory";
                return -EFAULT;
        }
        if (((uintptr_t)desc & 15) || ((uintptr_t)driver & 3) || ((uintptr_t)device & 3)) {
                *ret_why = "ring misaligned in host memory";
                return -EINVAL;
        }
        /* The dirty log is by guest-physical address; SET_VRING_ADDR's log_guest_addr names only one area. */
        if (!host_to_gpa(mem, desc, &desc_gpa) || !host_to_gpa(mem, device, &device_gpa)) {
                *ret_why = "ring has no guest-physical address";
                return -EFAULT;
        }
        vq->pdesc = desc;
        vq->driver_event = driver;
        vq->device_event = device;
        vq->pdesc_gpa = desc_gpa;
        vq->device_event_gpa = device_gpa;
        vq->mem = mem;
        vq->mem_hint = 0;
        return 0;
}

uint32_t vq_packed_get_base(const struct vq *vq)
{
        uint32_t avail = vq->last_avail_idx | (vq->avail_wrap ? WRAP_BIT : 0);
        uint32_t used = vq->used_idx | (vq->used_wrap ? WRAP_BIT : 0);

        return avail | used << 16;
}

/*
 * Where the ring really is, read from the descriptor flags. Behind the device's position in its lap X every slot
 * has USED == X (used by us, or already made available again for the next lap); from the position on, USED != X
 * (available for lap X, or still used from the lap before). So the position is where the USED bit first changes.
 * A chain of several slots keeps USED != X in its other slots, so this is only a fallback for a base the
 * front-end could not know (see vq_resume()).
 */
static void scan_position(const struct vq *vq, uint16_t *ret_slot, bool *ret_wrap)
{
        bool lap = load_acquire16(&vq->pdesc[0].flags) & VRING_PACKED_DESC_F_USED;
        unsigned s = 1;

        while (s < vq->num && !!(load16(&vq->pdesc[s].flags) & VRING_PACKED_DESC_F_USED) == lap)
                s++;
        *ret_slot = s == vq->num ? 0 : (uint16_t)s;
        *ret_wrap = s == vq->num ? !lap : lap;
}

int vq_packed_find_position(struct vq *vq)
{
        uint16_t slot;
        bool wrap;

        /*
         * Only the base a front-end sends when it knows nothing (a fresh ring, or its back-end died); not after a
         * stop on this connection, where 0/wrap 1 is a real position (an even number of laps) and the scan could
         * stop inside a chain.
         */
        if (vq->base_exact || vq->last_avail_idx || !vq->avail_wrap || vq->used_idx || !vq->used_wrap || !vq->pdesc)
                return -1;
        scan_position(vq, &slot, &wrap);
        if (slot == 0 && wrap)
                return -1;
        vq->last_avail_idx = vq->used_idx = slot;
        vq->avail_wrap = vq->used_wrap = wrap;
        return slot | (wrap ? WRAP_BIT : 0);
}

int vq_packed_set_base(struct vq *vq, uint32_t base, const char **ret_why)
{
        uint16_t avail = base & SLOT_MASK, used = (base >> 16) & SLOT_MASK;

        if (!vq->packed || !vq->inflight_slots) {
                *ret_why = "ring size not set";
                return -EINVAL;
        }
        if (avail >= vq->num || used >= vq->num) {
                *ret_why = "ring index beyond the ring size";
                return -EINVAL;
        }
        vq->last_avail_idx = avail;
        vq->avail_wrap = base & WRAP_BIT;
        vq->used_idx = used;
        vq->used_wrap = (base >> 16) & WRAP_BIT;
        if (!(base >> 16)) {
                /* Only the avail half (front-ends that predate the used half): nothing was in flight. */
                vq->used_idx = avail;
                vq->used_wrap = vq->avail_wrap;
        }
        vq->unpublished = 0;
        vq->used_shadow_n = 0;
        vq->run_open = false;
        vq->used_since_call = 0;
        vq->signalled_used_valid = false;
        /* Chains popped before are the front-end's to resubmit now: none is ours any more. */
        forget_popped(vq);
        return 0;
}

/* ---- dirty logging (vring/log.h) ---- */

static inline bool logging_used(const struct vq *vq)
{
        return __builtin_expect(vq->log != NULL, 0) && vq->log_used;
}

static void log_ring(struct vq *vq, uint64_t gpa, uint64_t len)
{
        if (vlog_mark(vq->log, gpa, len) < 0)
                vq_set_broken(vq, "dirty log of %llu bytes does not cover the packed ring at 0x%llx+%llu",
                              (unsigned long long)vq->log->size, (unsigned long long)gpa, (unsigned long long)len);
}

int vq_packed_set_log(struct vq *vq, struct vq_log *log, bool log_used, uint64_t used_gpa, const char **ret_why)
{
        if (log && log_used) {
                if (vq_check_num_packed(vq->num) < 0) {
                        *ret_why = "ring size not set";
                        return -EINVAL;
                }
                /* Before the rings are mapped we do not know where they are: checked again after mapping. */
                if (vq->pdesc &&
                    (!vlog_covers_range(log, vq->pdesc_gpa, (uint64_t)vq->num * sizeof(struct vring_packed_desc)) ||
                     !vlog_covers_range(log, vq->device_event_gpa, sizeof(struct vring_packed_desc_event)))) {
                        *ret_why = "the dirty log does not cover the packed ring";
                        return -ERANGE;
                }
        }
        vq->log = log;
        vq->log_used = log && log_used;
        vq->log_used_gpa = vq->log_used ? used_gpa : 0;
        return 0;
}

/* Marks the used descriptors a publish wrote: n slots from first, maybe wrapping. */
static void log_publish(struct vq *vq, unsigned first, unsigned n)
{
        const uint64_t sz = sizeof(struct vring_packed_desc);
        unsigned k;

        if (n > vq->num)
                n = vq->num;
        k = n < vq->num - first ? n : vq->num - first;
        log_ring(vq, vq->pdesc_gpa + sz * first, sz * k);
        if (k < n)
                log_ring(vq, vq->pdesc_gpa, sz * (n - k));
}

static void log_device_event(struct vq *vq)
{
        if (logging_used(vq))
                log_ring(vq, vq->device_event_gpa, sizeof(struct vring_packed_desc_event));
}

/* ---- the walker ---- */

static void read_desc(struct vring_packed_desc *d, const struct vring_packed_desc *src)
{
        /* One copy, so a guest changing the descriptor under us cannot make checks and use disagree. */
        memcpy(d, src, sizeof(*d));
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        d->addr = le64toh(d->addr);
        d->len = le32toh(d->len);
        d->id = le16toh(d->id);
        d->flags = le16toh(d->flags);
}

/*
 * Adds one descriptor's buffer to elem (readable before writable, total under 4 GiB). Returns 0, -ENOBUFS, or
 * -EINVAL with the queue broken.
 */
static int add_segment(struct vq *vq, struct vq_elem *elem, const struct vring_packed_desc *d, unsigned iov_max,
                       unsigned *nio, unsigned slot)
{
        bool write = d->flags & VRING_DESC_F_WRITE;
        int n;

        if (!write && elem->in_num)
                return vq_set_broken(vq, "chain at slot %u: readable descriptor after a writable one", slot);
        if (elem->in_len + elem->out_len + d->len > UINT32_MAX)
                return vq_set_broken(vq, "chain at slot %u: total length over 4 GiB", slot);
        n = mem_translate(vq->mem, d->addr, d->len, write, elem->iov + *nio, iov_max - *nio, &vq->mem_hint);
        if (n == -ENOBUFS)
                return -ENOBUFS;
        if (n < 0)
                return vq_set_broken(vq, "chain at slot %u: buffer 0x%llx+%u is outside %sguest memory", slot,
                                     (unsigned long long)d->addr, d->len, write ? "writable " : "");
        if (elem->gpa) {
                uint64_t g = d->addr;

                for (int k = 0; k < n; k++) {
                        elem->gpa[*nio + k] = g;
                        g += elem->iov[*nio + k].iov_len;
                }
        }
        *nio += (unsigned)n;
        if (write) {
                elem->in_len += d->len;
                elem->in_num += (unsigned)n;
        } else {
                elem->out_len += d->len;
                elem->out_num += (unsigned)n;
        }
        return 0;
}

/*
 * The descriptors of an indirect table, in order. The driver must set no flag but WRITE in them, and the device
 * ignores the others and the buffer id (spec): NEXT is ignored, the table's length says how many there are.
 * INDIRECT is refused all the same: a table inside a table is a driver that means something we cannot do.
 */
static int walk_indirect(struct vq *vq, struct vq_elem *elem, const struct vring_packed_desc *ind, unsigned iov_max,
                         unsigned *nio, unsigned head)
{
        const struct vring_packed_desc *table;
        unsigned count;

        table = vq_map_indirect(vq, ind->addr, ind->len, &count);
        if (!table)
                return -EINVAL;
        for (unsigned i = 0; i < count; i++) {
                struct vring_packed_desc d;
                int r;

                read_desc(&d, &table[i]);
                if (d.flags & VRING_DESC_F_INDIRECT)
                        return vq_set_broken(vq, "chain at slot %u: nested indirect table", head);
                r = add_segment(vq, elem, &d, iov_max, nio, head);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Remembers a popped chain for vq_unpop(): a ring of num entries, as at most num chains can be in flight. */
static void record_popped(struct vq *vq, uint16_t id, unsigned slots)
{
        vq->popped[vq->popped_next] = (struct vq_popped){.id = id, .slots = (uint16_t)slots};
        if (++vq->popped_next == vq->num)
                vq->popped_next = 0;
        if (vq->popped_count < vq->num)
                vq->popped_count++;
}

int vq_packed_pop(struct vq *vq, struct vq_elem *elem, unsigned iov_max)
{
        unsigned head = vq->last_avail_idx, slots = 0, nio = 0, chain_max = vq->num;
        uint16_t slot = vq->last_avail_idx, id;
        bool wrap = vq->avail_wrap;
        struct vring_packed_desc d;

        if (vq->broken)
                return -EIO;
        /* Acquire: the driver wrote the whole chain before the first descriptor's flags. */
        if (!desc_is_avail(load_acquire16(&vq->pdesc[slot].flags), wrap))
                return 0;
        if (chain_max > VQ_CHAIN_LEN_MAX)
                chain_max = VQ_CHAIN_LEN_MAX;

        elem->out_num = elem->in_num = 0;
        elem->out_len = elem->in_len = 0;
        for (;;) {
                int r;

                read_desc(&d, &vq->pdesc[slot]);
                /* Slots after the first must be available in this lap too, or the chain runs into stale ones. */
                if (!desc_is_avail(d.flags, wrap))
                        return vq_set_broken(vq, "chain at slot %u: continues into slot %u, which is not available",
                                             head, slot);
                if (++slots > chain_max)
                        return vq_set_broken(vq, "chain at slot %u: longer than %u descriptors", head, chain_max);
                if (d.flags & VRING_DESC_F_INDIRECT) {
                        /* An indirect descriptor is the whole buffer: not chained to, not chaining on. */
                        if (slots > 1)
                                return vq_set_broken(vq, "chain at slot %u: indirect descriptor inside a chain", head);
                        if (d.flags & VRING_DESC_F_NEXT)
                                return vq_set_broken(vq, "chain at slot %u: indirect descriptor also has NEXT", head);
                        r = walk_indirect(vq, elem, &d, iov_max, &nio, head);
                } else {
                        r = add_segment(vq, elem, &d, iov_max, &nio, head);
                }
                if (r < 0)
                        return r;
                if (!(d.flags & VRING_DESC_F_NEXT))
                        break;
                slot_advance(vq, &slot, &wrap, 1);
        }
        /* The buffer id comes from the last descriptor; we hand it back, so it must name one chain in flight. */
        id = d.id;
        if (id >= vq->num)
                return vq_set_broken(vq, "chain at slot %u: buffer id %u >= ring size %u", head, id, vq->num);
        if (vq->inflight_slots[id])
                return vq_set_broken(vq, "chain at slot %u: buffer id %u is already in use", head, id);

        elem->head = id;
        vq->inflight_slots[id] = (uint16_t)slots;
        record_popped(vq, id, slots);
        slot_advance(vq, &vq->last_avail_idx, &vq->avail_wrap, slots);
        return 1;
}

void vq_packed_unpop(struct vq *vq, unsigned n)
{
        if (n > vq->popped_count) {
                vq_set_broken(vq, "gave back %u chains, but only %u are popped", n, vq->popped_count);
                return;
        }
        while (n--) {
                const struct vq_popped *p;

                vq->popped_next = (vq->popped_next ? vq->popped_next : vq->num) - 1;
                vq->popped_count--;
                p = &vq->popped[vq->popped_next];
                if (vq->inflight_slots[p->id] != p->slots) {
                        vq_set_broken(vq, "gave back buffer id %u, which is not in flight", p->id);
                        return;
                }
                vq->inflight_slots[p->id] = 0;
                slot_rewind(vq, &vq->last_avail_idx, &vq->avail_wrap, p->slots);
        }
}

/* Writes the shadowed used descriptors into the ring, the first one's flags last; they become visible then. */
static void flush_used(struct vq *vq)
{
        const struct vq_used_packed *u = vq->used_shadow;
        struct vring_packed_desc *first = &vq->pdesc[u[0].slot];
        unsigned n = vq->used_shadow_n;

        first->id = htole16(u[0].id);
        first->len = htole32(u[0].len);
        for (unsigned i = 1; i < n; i++) {
                struct vring_packed_desc *d = &vq->pdesc[u[i].slot];

                d->id = htole16(u[i].id);
                d->len = htole32(u[i].len);
                store_release16(&d->flags, u[i].flags);
        }
        /* Release: the driver reads the batch in order, starting here; everything above comes first. */
        store_release16(&first->flags, u[0].flags);
        vq->used_shadow_n = 0;
        vq->run_open = false;
}

void vq_packed_push(struct vq *vq, uint16_t id, uint32_t len)
{
        struct vq_used_packed *u;
        unsigned slots;

        if (id >= vq->num || !vq->inflight_slots[id]) {
                vq_set_broken(vq, "pushed buffer id %u, which is not in flight", id);
                return;
        }
        slots = vq->inflight_slots[id];
        vq->inflight_slots[id] = 0;
        /* It cannot be given back any more; the unpop history is only for the latest pops. */
        if (vq->popped_count)
                vq->popped_count--;

        if (len == 0 && vq->run_open && vq->used_shadow_n) {
                /* IN_ORDER: the run's descriptor names its last buffer. */
                vq->used_shadow[vq->used_shadow_n - 1].id = id;
        } else {
                /* A driver that reuses slots we have not published can fill the shadow: publish early then. */
                if (vq->used_shadow_n == vq->num)
                        vq_packed_publish(vq);
                u = &vq->used_shadow[vq->used_shadow_n++];
                u->slot = vq->used_idx;
                u->id = id;
                u->len = len;
                /* The spec reserves len in a used descriptor without WRITE: WRITE says we wrote len bytes. */
                u->flags = (vq->used_wrap ? AVAIL_USED_MASK : 0) | (len ? VRING_DESC_F_WRITE : 0);
                vq->run_open = vq->in_order && len == 0;
        }
        slot_advance(vq, &vq->used_idx, &vq->used_wrap, slots);
        vq->unpublished += slots;
        vq->used_since_call += slots;
}

void vq_packed_publish(struct vq *vq)
{
        unsigned n = vq->unpublished;

        if (!n)
                return;
        if (vq->used_shadow_n) {
                uint16_t first = vq->used_shadow[0].slot;

                flush_used(vq);
                if (logging_used(vq))
                        log_publish(vq, first, n);
        }
        vq->unpublished = 0;
}

bool vq_packed_should_call(struct vq *vq)
{
        int old, new_idx = vq->used_idx, event;
        unsigned since = vq->used_since_call;
        uint16_t flags, off_wrap;
        bool valid = vq->signalled_used_valid;

        /* Order our used descriptor stores before reading the guest's suppression state. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        vq->used_since_call = 0;
        vq->signalled_used_valid = true;

        /* Acquire: the driver writes off_wrap before the flags that make it count. */
        flags = load_acquire16(&vq->driver_event->flags) & 3;
        if (flags == RING_EVENT_FLAGS_DISABLE)
                return false;
        /* ENABLE, or DESC without EVENT_IDX negotiated, or the reserved value: calling too often is safe. */
        if (flags != RING_EVENT_FLAGS_DESC || !vq->event_idx || !valid)
                return true;

        off_wrap = load16(&vq->driver_event->off_wrap);
        /*
         * Like vring_need_event(), on one line of slots: the used slots written since the last call are
         * [old, new_idx), counted, so a lap or more is told from none. The driver's event slot is in this lap
         * when its wrap bit is our counter, else a lap back.
         */
        if (since > vq->num)
                return true; /* more than a lap: positions cannot tell whether the event slot was passed */
        old = new_idx - (int)since;
        event = off_wrap & SLOT_MASK;
        if (!!(off_wrap & WRAP_BIT) != vq->used_wrap)
                event -= (int)vq->num;
        return old <= event && event < new_idx;
}

void vq_packed_disable_notify(struct vq *vq)
{
        if (!vq->notify_enabled)
                return;
        vq->notify_enabled = false;
        store16(&vq->device_event->flags, RING_EVENT_FLAGS_DISABLE);
        log_device_event(vq);
}

bool vq_packed_enable_notify(struct vq *vq)
{
        vq->notify_enabled = true;
        if (vq->event_idx) {
                /* A kick when the driver makes our next slot available: the same as ENABLE, but the spec's way. */
                store16(&vq->device_event->off_wrap, vq->last_avail_idx | (vq->avail_wrap ? WRAP_BIT : 0));
                store_release16(&vq->device_event->flags, RING_EVENT_FLAGS_DESC);
        } else {
                store16(&vq->device_event->flags, RING_EVENT_FLAGS_ENABLE);
        }
        log_device_event(vq);
        /* Our store must be visible before we look again, or a kick can be lost. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return !vq->broken && desc_is_avail(load_acquire16(&vq->pdesc[vq->last_avail_idx].flags), vq->avail_wrap);
}

unsigned vq_packed_avail_count(const struct vq *vq)
{
        uint16_t slot = vq->last_avail_idx;
        bool wrap = vq->avail_wrap;
        unsigned count = 0;

        if (vq->broken || !vq->pdesc)
                return 0;
        /* Counts chain ends among the available slots; a chain still being written is not counted. */
        for (unsigned i = 0; i < vq->num; i++) {
                uint16_t flags = load_acquire16(&vq->pdesc[slot].flags);

                if (!desc_is_avail(flags, wrap))
                        break;
                if (!(flags & VRING_DESC_F_NEXT))
                        count++;
                slot_advance(vq, &slot, &wrap, 1);
        }
        return count;
}
