/* SPDX-License-Identifier: MIT */
/* fakefe: a vhost-user front-end and virtio-net guest driver for tests. See fakefe.h. */
#include "tests/fakefe/fakefe.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HUGE_2M (2ULL << 20)
#define UVA_TOP 0x600000000000ULL  /* region i claims uva UVA_TOP - (i + 1) * UVA_STRIDE: descending, unlike gpas */
#define UVA_STRIDE 0x4000000000ULL /* 256 GiB, also the largest region */
#define SCM_FDS_MAX 253            /* the kernel's SCM_MAX_FD */
#define RING_ALIGN 64
#define PAGE_4K 4096u /* the dirty log's page: device-written rings and areas start on one of their own */
#define GUEST_DIRTY_MAX (256ULL << 20)

#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((uint64_t)(a)-1))

/* ------------------------------------------------------------------------------------------------------------ */
/* Time                                                                                                           */

int64_t fe_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_of(int timeout_ms)
{
        return timeout_ms < 0 ? -1 : fe_now_ms() + timeout_ms;
}

/* Milliseconds left before @deadline (-1: for ever), 0 when it passed. */
static int remaining_ms(int64_t deadline)
{
        int64_t left;

        if (deadline < 0)
                return -1;
        left = deadline - fe_now_ms();
        if (left <= 0)
                return 0;
        return left > 1000000 ? 1000000 : (int)left;
}

static void sleep_us(long us)
{
        struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* Wait for @events on @fd until @deadline. 0 ready, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
        struct pollfd p = {.fd = fd, .events = events};
        int r;

        for (;;) {
                r = poll(&p, 1, remaining_ms(deadline));
                if (r > 0)
                        return 0;
                if (r == 0)
                        return -ETIMEDOUT;
                if (errno != EINTR)
                        return -errno;
        }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Guest RAM                                                                                                      */

void fe_mem_init(struct fe_mem *mem)
{
        memset(mem, 0, sizeof(*mem));
}

int fe_mem_add_region(struct fe_mem *mem, uint64_t gpa, uint64_t size, unsigned flags)
{
        uint64_t page = (flags & FE_MEM_HUGETLB) ? HUGE_2M : (uint64_t)sysconf(_SC_PAGESIZE);
        struct fe_region *reg;
        uint64_t offset = 0;
        bool owns = true;
        void *ptr;
        int fd, r;

        if (mem->nregions >= FE_MEM_MAX)
                return -E2BIG;
        if (size == 0 || size % page || size > UVA_STRIDE || gpa + size < gpa)
                return -EINVAL;
        for (unsigned i = 0; i < mem->nregions; i++) {
                const struct fe_region *o = &mem->regions[i];

                if (gpa < o->gpa + o->size && o->gpa < gpa + size)
                        return -EINVAL;
        }
        if (flags & FE_MEM_SHARE_FD) {
                const struct fe_region *prev;

                if (mem->nregions == 0)
                        return -EINVAL;
                prev = &mem->regions[mem->nregions - 1];
                fd = prev->fd;
                offset = prev->mmap_offset + prev->size;
                owns = false;
        } else {
                fd = memfd_create(FE_MEM_NAME, MFD_CLOEXEC | ((flags & FE_MEM_HUGETLB) ? MFD_HUGETLB : 0));
                if (fd < 0)
                        return -errno;
        }
        if (ftruncate(fd, (off_t)(offset + size)) < 0) {
                r = -errno;
                goto err;
        }
        ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
        if (ptr == MAP_FAILED) {
                r = -errno;
                goto err;
        }
        reg = &mem->regions[mem->nregions];
        *reg = (struct fe_region){
                .fd = fd,
                .owns_fd = owns,
                .ptr = ptr,
                .gpa = gpa,
                .size = size,
                .uva = UVA_TOP - (uint64_t)(mem->nregions + 1) * UVA_STRIDE,
                .mmap_offset = offset,
        };
        return (int)mem->nregions++;
err:
        if (owns)
                close(fd);
        return r;
}

void fe_mem_done(struct fe_mem *mem)
{
        if (!mem)
                return;
        for (unsigned i = 0; i < mem->nregions; i++) {
                struct fe_region *reg = &mem->regions[i];

                if (reg->ptr)
                        munmap(reg->ptr, reg->size);
                if (reg->owns_fd && reg->fd >= 0)
                        close(reg->fd);
        }
        free(mem->guest_dirty);
        fe_mem_init(mem);
}

/* End of the highest region (0 without regions); regions never wrap. */
static uint64_t mem_top(const struct fe_mem *mem)
{
        uint64_t top = 0;

        for (unsigned i = 0; i < mem->nregions; i++)
                if (mem->regions[i].gpa + mem->regions[i].size > top)
                        top = mem->regions[i].gpa + mem->regions[i].size;
        return top;
}

/* Bytes of a log with a bit for every page below top, in whole 64-bit words as QEMU sizes it. */
static uint64_t log_bytes(uint64_t top)
{
        uint64_t chunk = 64ULL * FE_LOG_PAGE;

        return (top / chunk + (top % chunk != 0)) * 8;
}

int fe_mem_track(struct fe_mem *mem)
{
        uint64_t size = log_bytes(mem_top(mem));
        uint8_t *p;

        if (size > GUEST_DIRTY_MAX)
                return -E2BIG;
        p = calloc(1, size ? size : 1);
        if (!p)
                return -ENOMEM;
        free(mem->guest_dirty);
        mem->guest_dirty = p;
        mem->guest_dirty_size = size;
        return 0;
}

/* Sets the bits of [gpa, gpa + len) in a bitmap of size bytes; what lies beyond is ignored. */
static void bits_set(uint8_t *bits, uint64_t size, uint64_t gpa, uint64_t len)
{
        if (!bits || len == 0)
                return;
        for (uint64_t p = gpa / FE_LOG_PAGE; p <= (gpa + len - 1) / FE_LOG_PAGE && p / 8 < size; p++)
                __atomic_fetch_or(&bits[p / 8], (uint8_t)(1u << (p % 8)), __ATOMIC_RELAXED);
}

static bool bits_test(const uint8_t *bits, uint64_t size, uint64_t page)
{
        return bits && page / 8 < size && (__atomic_load_n(&bits[page / 8], __ATOMIC_RELAXED) & (1u << (page % 8)));
}

void fe_mem_guest_wrote(struct fe_mem *mem, uint64_t gpa, uint64_t len)
{
        bits_set(mem->guest_dirty, mem->guest_dirty_size, gpa, len);
}

void fe_snapshot_done(struct fe_snapshot *s)
{
        if (!s)
                return;
        for (unsigned i = 0; s->data && i < s->nregions; i++)
                free(s->data[i]);
        free(s->data);
        free(s->gpa);
        free(s->size);
        memset(s, 0, sizeof(*s));
}

int fe_mem_snapshot(const struct fe_mem *mem, struct fe_snapshot *ret)
{
        struct fe_snapshot s = {.nregions = mem->nregions};
        unsigned n = mem->nregions ? mem->nregions : 1;

        s.gpa = calloc(n, sizeof(*s.gpa));
        s.size = calloc(n, sizeof(*s.size));
        s.data = calloc(n, sizeof(*s.data));
        if (!s.gpa || !s.size || !s.data)
                goto nomem;
        for (unsigned i = 0; i < mem->nregions; i++) {
                const struct fe_region *reg = &mem->regions[i];

                s.gpa[i] = reg->gpa;
                s.size[i] = reg->size;
                s.data[i] = malloc(reg->size);
                if (!s.data[i])
                        goto nomem;
                memcpy(s.data[i], reg->ptr, reg->size);
        }
        *ret = s;
        return 0;
nomem:
        fe_snapshot_done(&s);
        return -ENOMEM;
}

static const struct fe_region *mem_find(const struct fe_mem *mem, uint64_t gpa, uint64_t len)
{
        for (unsigned i = 0; i < mem->nregions; i++) {
                const struct fe_region *reg = &mem->regions[i];

                if (gpa >= reg->gpa && gpa - reg->gpa <= reg->size && len <= reg->size - (gpa - reg->gpa))
                        return reg;
        }
        return NULL;
}

void *fe_mem_ptr(const struct fe_mem *mem, uint64_t gpa, uint64_t len)
{
        const struct fe_region *reg = mem_find(mem, gpa, len ? len : 1);

        return reg ? reg->ptr + (gpa - reg->gpa) : NULL;
}

uint64_t fe_mem_uva(const struct fe_mem *mem, uint64_t gpa)
{
        const struct fe_region *reg = mem_find(mem, gpa, 1);

        return reg ? reg->uva + (gpa - reg->gpa) : 0;
}

int fe_mem_alloc(struct fe_mem *mem, int region, uint64_t size, uint64_t align, uint64_t *ret_gpa)
{
        if (size == 0 || align == 0 || (align & (align - 1)) || region >= (int)mem->nregions)
                return -EINVAL;
        for (unsigned i = 0; i < mem->nregions; i++) {
                struct fe_region *reg = &mem->regions[i];
                uint64_t off;

                if (region >= 0 && (unsigned)region != i)
                        continue;
                /* Align the guest-physical address, not just the offset. */
                off = ALIGN_UP(reg->gpa + reg->used, align) - reg->gpa;
                if (off > reg->size || size > reg->size - off)
                        continue;
                reg->used = off + size;
                *ret_gpa = reg->gpa + off;
                return 0;
        }
        return -ENOMEM;
}

void fe_mem_region_msg(const struct fe_mem *mem, unsigned idx, struct vu_mem_region *ret)
{
        const struct fe_region *reg = &mem->regions[idx];

        *ret = (struct vu_mem_region){
                .guest_phys_addr = reg->gpa,
                .memory_size = reg->size,
                .userspace_addr = reg->uva,
                .mmap_offset = reg->mmap_offset,
        };
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Dirty log                                                                                                      */

uint64_t fe_log_size_for(const struct fe_mem *mem)
{
        return log_bytes(mem_top(mem));
}

int fe_log_init(struct fe_log *log, uint64_t size, uint64_t offset)
{
        uint64_t end;
        void *p;
        int r;

        *log = (struct fe_log){.fd = -1};
        if (size == 0 || __builtin_add_overflow(offset, size, &end) || end > (uint64_t)INT64_MAX || end > SIZE_MAX / 2)
                return -EINVAL;
        log->fd = memfd_create(FE_LOG_NAME, MFD_CLOEXEC);
        if (log->fd < 0)
                return -errno;
        if (ftruncate(log->fd, (off_t)end) < 0) {
                r = -errno;
                goto err;
        }
        p = mmap(NULL, (size_t)end, PROT_READ | PROT_WRITE, MAP_SHARED, log->fd, 0);
        if (p == MAP_FAILED) {
                r = -errno;
                goto err;
        }
        log->map = p;
        log->map_len = (size_t)end;
        log->bits = log->map + offset;
        log->size = size;
        log->offset = offset;
        return 0;
err:
        close_fd(&log->fd);
        return r;
}

void fe_log_done(struct fe_log *log)
{
        if (!log)
                return;
        if (log->map)
                munmap(log->map, log->map_len);
        close_fd(&log->fd);
        *log = (struct fe_log){.fd = -1};
}

void fe_log_clear(struct fe_log *log)
{
        for (uint64_t i = 0; i < log->size; i++)
                __atomic_store_n(&log->bits[i], 0, __ATOMIC_RELAXED);
}

bool fe_log_test(const struct fe_log *log, uint64_t gpa)
{
        return bits_test(log->bits, log->size, gpa / FE_LOG_PAGE);
}

uint64_t fe_log_count(const struct fe_log *log)
{
        uint64_t n = 0;

        for (uint64_t i = 0; i < log->size; i++)
                n += (uint64_t)__builtin_popcount(__atomic_load_n(&log->bits[i], __ATOMIC_RELAXED));
        return n;
}

int64_t fe_log_unlogged(const struct fe_log *log, const struct fe_mem *mem, const struct fe_snapshot *before,
                        const struct fe_snapshot *after, uint64_t *ret_changed, uint64_t *ret_first)
{
        uint64_t changed = 0, first = 0;
        int64_t unlogged = 0;

        if (before->nregions != after->nregions)
                return -EINVAL;
        for (unsigned i = 0; i < before->nregions; i++)
                if (before->gpa[i] != after->gpa[i] || before->size[i] != after->size[i])
                        return -EINVAL;
        for (unsigned i = 0; i < before->nregions; i++) {
                for (uint64_t off = 0; off < before->size[i]; off += FE_LOG_PAGE) {
                        uint64_t n = before->size[i] - off < FE_LOG_PAGE ? before->size[i] - off : FE_LOG_PAGE;
                        uint64_t gpa = before->gpa[i] + off;

                        if (memcmp(before->data[i] + off, after->data[i] + off, n) == 0)
                                continue;
                        changed++;
                        if (fe_log_test(log, gpa) || bits_test(mem ? mem->guest_dirty : NULL,
                                                               mem ? mem->guest_dirty_size : 0, gpa / FE_LOG_PAGE))
                                continue;
                        if (unlogged++ == 0)
                                first = gpa;
                }
        }
        if (ret_changed)
                *ret_changed = changed;
        if (ret_first && unlogged)
                *ret_first = first;
        return unlogged;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Rings                                                                                                          */

#define PACKED_WRAP_BIT (1u << RING_EVENT_WRAP_SHIFT)
#define PACKED_AVAIL_USED (VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED)

static int new_eventfd(void)
{
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

        return fd < 0 ? -errno : fd;
}

/* A 16-bit guest field the driver writes, at @gpa_base + @off (mapped at @base). */
static void store_le16(struct fe_ring *r, void *base, uint64_t gpa_base, uint64_t off, uint16_t v, int order)
{
        __atomic_store_n((uint16_t *)((uint8_t *)base + off), htole16(v), order);
        fe_mem_guest_wrote(r->mem, gpa_base + off, 2);
}

int fe_ring_init_layout(struct fe_ring *r, struct fe_mem *mem, unsigned index, unsigned num, uint32_t buf_size,
                        int ring_region, int data_region, enum fe_layout layout)
{
        bool packed = layout == FE_PACKED;
        uint64_t desc_sz = 16ULL * num, event_sz = sizeof(struct vring_packed_desc_event);
        uint64_t avail_sz = packed ? event_sz : 6 + 2ULL * num, used_sz = packed ? event_sz : 6 + 8ULL * num;
        void *desc, *avail, *used;
        int ret;

        memset(r, 0, sizeof(*r));
        r->kick_fd = r->call_fd = r->err_fd = -1;
        if (num == 0 || num > VIRTQ_MAX_SIZE || (!packed && (num & (num - 1))) || buf_size == 0)
                return -EINVAL;
        r->mem = mem;
        r->index = index;
        r->num = (uint16_t)num; /* 32768 fits */
        r->packed = packed;
        r->avail_wrap = r->used_wrap = true; /* packed: both wrap counters start at 1 */
        r->buf_size = buf_size;
        r->hdr_len = sizeof(struct virtio_net_hdr_mrg);
        r->rx_buf_size = buf_size;

        if ((ret = fe_mem_alloc(mem, ring_region, desc_sz, RING_ALIGN, &r->desc_gpa)) < 0 ||
            (ret = fe_mem_alloc(mem, ring_region, avail_sz, RING_ALIGN, &r->avail_gpa)) < 0 ||
            (ret = fe_mem_alloc(mem, ring_region, ALIGN_UP(used_sz, PAGE_4K), PAGE_4K, &r->used_gpa)) < 0 ||
            (ret = fe_mem_alloc(mem, ring_region, (uint64_t)num * FE_INDIRECT_MAX * sizeof(struct vring_desc),
                                RING_ALIGN, &r->ind_gpa)) < 0 ||
            (ret = fe_mem_alloc(mem, data_region, ALIGN_UP((uint64_t)num * buf_size, PAGE_4K), PAGE_4K, &r->area_gpa)) <
                    0)
                return ret;
        desc = fe_mem_ptr(mem, r->desc_gpa, desc_sz);
        avail = fe_mem_ptr(mem, r->avail_gpa, avail_sz);
        used = fe_mem_ptr(mem, r->used_gpa, used_sz);
        memset(desc, 0, desc_sz);
        memset(avail, 0, avail_sz);
        memset(used, 0, used_sz);
        fe_mem_guest_wrote(mem, r->desc_gpa, desc_sz);
        fe_mem_guest_wrote(mem, r->avail_gpa, avail_sz);
        fe_mem_guest_wrote(mem, r->used_gpa, used_sz);
        if (packed) {
                r->pdesc = desc;
                r->driver_event = avail;
                r->device_event = used;
        } else {
                r->desc = desc;
                r->avail = avail;
                r->used = used;
        }

        r->next = calloc(num, sizeof(*r->next));
        r->chains = calloc(num, sizeof(*r->chains));
        if (!r->next || !r->chains) {
                ret = -ENOMEM;
                goto err;
        }
        for (unsigned i = 0; i < num; i++)
                r->next[i] = (uint16_t)(i + 1);
        r->num_free = r->num;

        if ((r->kick_fd = new_eventfd()) < 0 || (r->call_fd = new_eventfd()) < 0 || (r->err_fd = new_eventfd()) < 0) {
                ret = r->kick_fd < 0 ? r->kick_fd : r->call_fd < 0 ? r->call_fd : r->err_fd;
                goto err;
        }
        return 0;
err:
        fe_ring_done(r);
        return ret;
}

int fe_ring_init(struct fe_ring *r, struct fe_mem *mem, unsigned index, unsigned num, uint32_t buf_size,
                 int ring_region, int data_region)
{
        return fe_ring_init_layout(r, mem, index, num, buf_size, ring_region, data_region, FE_SPLIT);
}

void fe_ring_done(struct fe_ring *r)
{
        if (!r)
                return;
        close_fd(&r->kick_fd);
        close_fd(&r->call_fd);
        close_fd(&r->err_fd);
        free(r->next);
        free(r->chains);
        r->next = NULL;
        r->chains = NULL;
}

uint32_t fe_ring_base(const struct fe_ring *r)
{
        uint32_t avail = r->avail_idx | (r->avail_wrap ? PACKED_WRAP_BIT : 0);
        uint32_t used = r->last_used | (r->used_wrap ? PACKED_WRAP_BIT : 0);

        return r->packed ? avail | used << 16 : r->avail_idx;
}

void *fe_ring_area(const struct fe_ring *r, uint16_t head, uint64_t *ret_gpa)
{
        uint64_t gpa = r->area_gpa + (uint64_t)head * r->buf_size;

        if (ret_gpa)
                *ret_gpa = gpa;
        return fe_mem_ptr(r->mem, gpa, r->buf_size);
}

uint16_t *fe_ring_used_event(const struct fe_ring *r)
{
        return r->packed ? NULL : &r->avail->ring[r->num];
}

uint16_t *fe_ring_avail_event(const struct fe_ring *r)
{
        return r->packed ? NULL : (uint16_t *)&r->used->ring[r->num];
}

int fe_ring_desc_get(struct fe_ring *r)
{
        uint16_t id;

        if (r->num_free == 0)
                return -ENOSPC;
        id = r->free_head;
        r->free_head = r->next[id];
        r->num_free--;
        return id;
}

void fe_ring_desc_put(struct fe_ring *r, uint16_t id)
{
        r->next[id] = r->free_head;
        r->free_head = id;
        r->num_free++;
}

void fe_ring_publish(struct fe_ring *r, uint16_t head)
{
        unsigned slot = r->avail_idx & (r->num - 1);

        if (r->packed)
                return;
        r->avail->ring[slot] = htole16(head);
        fe_mem_guest_wrote(r->mem, r->avail_gpa + offsetof(struct vring_avail, ring) + 2ULL * slot, 2);
        r->avail_idx++;
        store_le16(r, r->avail, r->avail_gpa, offsetof(struct vring_avail, idx), r->avail_idx, __ATOMIC_RELEASE);
}

/* Moves a packed ring slot forward by n <= num, flipping the wrap counter when it passes the end. */
static void slot_advance(const struct fe_ring *r, uint16_t *slot, bool *wrap, unsigned n)
{
        unsigned s = *slot + n;

        if (s >= r->num) {
                s -= r->num;
                *wrap = !*wrap;
        }
        *slot = (uint16_t)s;
}

/*
 * Writes descriptor @i of a packed chain being made available (slot avail_idx + i): its AVAIL/USED bits are the
 * right ones for the slot's lap XORed with those in @d->flags. The first descriptor's flags are not stored but
 * returned in *first_flags: packed_make_avail() stores them last.
 */
static void packed_put(struct fe_ring *r, unsigned i, const struct vring_packed_desc *d, uint16_t *first_flags)
{
        uint16_t slot = r->avail_idx;
        bool wrap = r->avail_wrap;
        struct vring_packed_desc *p;
        uint16_t flags;

        slot_advance(r, &slot, &wrap, i);
        p = &r->pdesc[slot];
        flags = d->flags ^ (wrap ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED);
        p->addr = htole64(d->addr);
        p->len = htole32(d->len);
        p->id = htole16(d->id);
        if (i == 0)
                *first_flags = flags;
        else
                __atomic_store_n(&p->flags, htole16(flags), __ATOMIC_RELAXED);
        fe_mem_guest_wrote(r->mem, r->desc_gpa + sizeof(*p) * slot, sizeof(*p));
}

/* Makes the @n descriptors packed_put() wrote available: the first one's flags, with a release store. */
static uint16_t packed_make_avail(struct fe_ring *r, unsigned n, uint16_t first_flags)
{
        uint16_t first = r->avail_idx;

        store_le16(r, r->pdesc, r->desc_gpa, sizeof(*r->pdesc) * first + offsetof(struct vring_packed_desc, flags),
                   first_flags, __ATOMIC_RELEASE);
        slot_advance(r, &r->avail_idx, &r->avail_wrap, n);
        r->num_added = (uint16_t)(r->num_added + n);
        return first;
}

int fe_ring_post_raw(struct fe_ring *r, const struct vring_packed_desc *d, unsigned n)
{
        uint16_t first_flags = 0;

        if (!r->packed || n == 0 || n > r->num)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++)
                packed_put(r, i, &d[i], &first_flags);
        return packed_make_avail(r, n, first_flags);
}

/* Length of descriptor @i of a chain of @total bytes; @first > 0 puts that many bytes alone in descriptor 0. */
static uint32_t seg_len(const struct fe_post *how, unsigned nseg, uint32_t total, uint32_t first, unsigned i)
{
        uint32_t rest, n;

        if (how && how->seg)
                return how->seg[i];
        if (nseg == 1)
                return total;
        if (first) {
                if (i == 0)
                        return first;
                i--;
                rest = total - first;
                n = nseg - 1;
        } else {
                rest = total;
                n = nseg;
        }
        return rest / n + (i < rest % n ? 1 : 0);
}

/* Descriptor @i of @nseg covering the data area at @area (*off: its bytes before this one, updated), host order. */
static struct vring_packed_desc chain_seg(const struct fe_post *how, unsigned nseg, uint32_t total, uint32_t first,
                                          unsigned i, uint64_t area, uint64_t *off, uint16_t wflag)
{
        struct vring_packed_desc d = {
                .addr = area + *off,
                .len = seg_len(how, nseg, total, first, i),
                .flags = (uint16_t)(wflag | (i + 1 < nseg ? VRING_DESC_F_NEXT : 0)),
        };

        *off += d.len;
        return d;
}

static void chain_free(struct fe_ring *r, uint16_t head)
{
        struct fe_chain *c = &r->chains[head];
        uint16_t last = head;

        /* Packed: head is a buffer id and r->next the free list of ids; the chain's ring slots are free again. */
        for (unsigned i = 1; !r->packed && i < c->ndesc; i++)
                last = r->next[last];
        r->next[last] = r->free_head;
        r->free_head = head;
        r->num_free += c->ndesc;
        c->inflight = false;
}

/* Writes the head's indirect table: @nseg descriptors over its data area. Returns the table's gpa. */
static uint64_t write_indirect(struct fe_ring *r, uint16_t head, const struct fe_post *how, unsigned nseg,
                               uint32_t total, uint32_t first, uint64_t area, uint16_t wflag)
{
        uint64_t tgpa = r->ind_gpa + (uint64_t)head * FE_INDIRECT_MAX * sizeof(struct vring_desc), off = 0;
        struct vring_desc *t = fe_mem_ptr(r->mem, tgpa, nseg * sizeof(*t));
        struct vring_packed_desc *pt = (struct vring_packed_desc *)t;

        for (unsigned i = 0; i < nseg; i++) {
                struct vring_packed_desc d = chain_seg(how, nseg, total, first, i, area, &off, wflag);

                if (r->packed) /* the device reads no NEXT (nor id) in a packed indirect table: its length counts */
                        pt[i] = (struct vring_packed_desc){htole64(d.addr), htole32(d.len), 0, htole16(wflag)};
                else
                        t[i] = (struct vring_desc){htole64(d.addr), htole32(d.len), htole16(d.flags),
                                                   htole16(i + 1 < nseg ? i + 1 : 0)};
        }
        fe_mem_guest_wrote(r->mem, tgpa, nseg * sizeof(*t));
        return tgpa;
}

/* Describe @total bytes of the head's data area as a chain laid out per @how, and publish it. */
static int post_chain(struct fe_ring *r, uint32_t total, uint32_t first, const struct fe_post *how, bool write,
                      int (*fill)(struct fe_ring *r, uint16_t head, const void *arg), const void *arg)
{
        unsigned nseg = how && how->nseg ? how->nseg : 1;
        bool indirect = how && how->indirect;
        unsigned nring = indirect ? 1 : nseg;
        uint16_t wflag = write ? VRING_DESC_F_WRITE : 0, first_flags = 0;
        uint64_t area, off = 0;
        struct vring_packed_desc ind;
        uint16_t head, id;
        int ret;

        if (total > r->buf_size)
                return -EMSGSIZE;
        if (how && how->seg) {
                uint64_t sum = 0;

                for (unsigned i = 0; i < nseg; i++)
                        sum += how->seg[i];
                if (sum != total)
                        return -EINVAL;
        } else if (nseg > 1 && (first ? total - first < nseg - 1 : total < nseg)) {
                return -EINVAL; /* even split would make empty descriptors */
        }
        if (indirect ? nseg > FE_INDIRECT_MAX : nseg > r->num)
                return -EINVAL;
        if (r->num_free < nring)
                return -ENOSPC;

        head = r->free_head;
        fe_ring_area(r, head, &area);
        if (fill && (ret = fill(r, head, arg)) < 0)
                return ret;
        if (indirect)
                ind = (struct vring_packed_desc){.addr = write_indirect(r, head, how, nseg, total, first, area, wflag),
                                                 .len = nseg * (uint32_t)sizeof(struct vring_desc),
                                                 .flags = VRING_DESC_F_INDIRECT};
        id = head;
        for (unsigned i = 0; i < nring; i++) {
                struct vring_packed_desc d = indirect ? ind : chain_seg(how, nseg, total, first, i, area, &off, wflag);

                if (r->packed) {
                        d.id = head;
                        packed_put(r, i, &d, &first_flags);
                        continue;
                }
                r->desc[id] = (struct vring_desc){htole64(d.addr), htole32(d.len), htole16(d.flags),
                                                  htole16(i + 1 < nring ? r->next[id] : 0)};
                fe_mem_guest_wrote(r->mem, r->desc_gpa + 16ULL * id, 16);
                id = r->next[id];
        }
        /* Split: the chain keeps its free-list links in r->next; the list now starts after it. Packed: after the id. */
        r->free_head = r->packed ? r->next[head] : id;
        r->num_free -= nring;
        r->chains[head] = (struct fe_chain){.cap = total, .ndesc = (uint16_t)nring, .inflight = true, .write = write};
        if (r->packed)
                packed_make_avail(r, nring, first_flags);
        else
                fe_ring_publish(r, head);
        return head;
}

struct tx_src {
        const void *frame;
        size_t len;
        const struct virtio_net_hdr *hdr;
};

static int fill_tx(struct fe_ring *r, uint16_t head, const void *arg)
{
        const struct tx_src *src = arg;
        uint64_t gpa;
        uint8_t *p = fe_ring_area(r, head, &gpa);
        struct virtio_net_hdr_mrg h = {.num_buffers = 0};

        if (src->hdr)
                h.hdr = *src->hdr;
        memcpy(p, &h, r->hdr_len);
        memcpy(p + r->hdr_len, src->frame, src->len);
        fe_mem_guest_wrote(r->mem, gpa, r->hdr_len + src->len);
        return 0;
}

int fe_ring_post_tx(struct fe_ring *r, const void *frame, size_t len, const struct virtio_net_hdr *hdr,
                    const struct fe_post *how)
{
        struct tx_src src = {frame, len, hdr};

        if (r->buf_size < r->hdr_len || len > r->buf_size - r->hdr_len)
                return -EMSGSIZE;
        return post_chain(r, (uint32_t)(r->hdr_len + len), r->hdr_len, how, false, fill_tx, &src);
}

int fe_ring_post_rx(struct fe_ring *r, uint32_t size, const struct fe_post *how)
{
        return post_chain(r, size, 0, how, true, NULL, NULL);
}

int fe_ring_fill_rx(struct fe_ring *r)
{
        int n = 0;

        if (r->rx_buf_size == 0)
                return 0;
        while (fe_ring_post_rx(r, r->rx_buf_size, NULL) >= 0)
                n++;
        return n;
}

int fe_ring_kick(struct fe_ring *r)
{
        uint64_t one = 1;

        if (r->kick_fd < 0)
                return -EBADF;
        if (write(r->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                return -errno;
        r->kicks++;
        r->kicked_idx = r->avail_idx;
        r->num_added = 0;
        return 0;
}

/* Whether the device asked for a kick: made available since the last decision, and its suppression state. */
static bool need_kick(struct fe_ring *r)
{
        uint16_t old, new = r->avail_idx, ev, flags;

        if (!r->packed) {
                old = r->kicked_idx;
                if (r->event_idx) {
                        ev = le16toh(__atomic_load_n(fe_ring_avail_event(r), __ATOMIC_ACQUIRE));
                        return (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
                }
                return !(le16toh(__atomic_load_n(&r->used->flags, __ATOMIC_ACQUIRE)) & VRING_USED_F_NO_NOTIFY);
        }
        old = (uint16_t)(new - r->num_added);
        flags = le16toh(__atomic_load_n(&r->device_event->flags, __ATOMIC_ACQUIRE)) & 3;
        if (flags != RING_EVENT_FLAGS_DESC || !r->event_idx)
                return flags != RING_EVENT_FLAGS_DISABLE;
        /* As vring_need_event() on one line of slots: an event slot in the other lap is a lap behind ours. */
        ev = le16toh(__atomic_load_n(&r->device_event->off_wrap, __ATOMIC_RELAXED));
        if (!!(ev & PACKED_WRAP_BIT) != r->avail_wrap)
                ev = (uint16_t)((ev & ~PACKED_WRAP_BIT) - r->num);
        else
                ev &= ~PACKED_WRAP_BIT;
        return (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
}

int fe_ring_notify(struct fe_ring *r)
{
        int ret;

        if (r->packed ? r->num_added == 0 : r->kicked_idx == r->avail_idx)
                return 0;
        /* The avail stores must be visible before we read the device's suppression state. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!need_kick(r)) {
                r->kicked_idx = r->avail_idx;
                r->num_added = 0;
                r->kicks_suppressed++;
                return 0;
        }
        ret = fe_ring_kick(r);
        return ret < 0 ? ret : 1;
}

/* A position in the used entries: split a free-running index, packed a slot and its lap. */
struct ucur {
        uint16_t idx;
        bool wrap;
};

static struct ucur ucur_first(const struct fe_ring *r)
{
        return (struct ucur){r->last_used, r->used_wrap};
}

static bool chain_ok(const struct fe_ring *r, uint32_t id)
{
        return id < r->num && r->chains[id].inflight;
}

/* Whether the device published a used entry at @c; if so, its id and len. */
static bool used_at(const struct fe_ring *r, const struct ucur *c, uint32_t *ret_id, uint32_t *ret_len)
{
        if (r->packed) {
                const struct vring_packed_desc *d = &r->pdesc[c->idx];
                uint16_t flags = le16toh(__atomic_load_n(&d->flags, __ATOMIC_ACQUIRE));
                uint16_t want = c->wrap ? PACKED_AVAIL_USED : 0;

                if ((flags & PACKED_AVAIL_USED) != want)
                        return false;
                *ret_id = le16toh(__atomic_load_n(&d->id, __ATOMIC_RELAXED));
                *ret_len = le32toh(__atomic_load_n(&d->len, __ATOMIC_RELAXED));
                return true;
        }
        if ((uint16_t)(c->idx - r->last_used) >= fe_ring_used_pending(r))
                return false;
        const struct vring_used_elem *e = &r->used->ring[c->idx & (r->num - 1)];

        *ret_id = le32toh(__atomic_load_n(&e->id, __ATOMIC_RELAXED));
        *ret_len = le32toh(__atomic_load_n(&e->len, __ATOMIC_RELAXED));
        return true;
}

/* Moves @c past the used entry of @id (packed: the ring slots its chain took, 1 for an id not in flight). */
static void used_step(const struct fe_ring *r, struct ucur *c, uint32_t id)
{
        if (r->packed)
                slot_advance(r, &c->idx, &c->wrap, chain_ok(r, id) ? r->chains[id].ndesc : 1);
        else
                c->idx++;
}

static void used_consume(struct fe_ring *r, const struct ucur *c)
{
        r->last_used = c->idx;
        r->used_wrap = c->wrap;
}

unsigned fe_ring_used_pending(const struct fe_ring *r)
{
        struct ucur c = ucur_first(r);
        uint32_t id, len;
        unsigned n = 0;

        if (!r->packed)
                return (uint16_t)(le16toh(__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE)) - r->last_used);
        /* Packed: used descriptors in a row from last_used; one with an id we did not post ends the count. */
        while (n < r->num && used_at(r, &c, &id, &len)) {
                n++;
                if (!chain_ok(r, id))
                        break;
                used_step(r, &c, id);
        }
        return n;
}

static void drain_eventfd(int fd, uint64_t *counter)
{
        uint64_t v;

        if (read(fd, &v, sizeof(v)) == sizeof(v) && counter)
                (*counter)++;
}

void fe_ring_arm_call(struct fe_ring *r, unsigned min)
{
        if (min == 0)
                min = 1;
        if (r->packed) {
                uint16_t flags = r->no_interrupt ? RING_EVENT_FLAGS_DISABLE
                                 : r->event_idx  ? RING_EVENT_FLAGS_DESC
                                                 : RING_EVENT_FLAGS_ENABLE;

                if (flags == RING_EVENT_FLAGS_DESC) {
                        /* The slot after the pending entries: the device writes its next used descriptor there. */
                        struct ucur c = ucur_first(r);
                        uint32_t id, len;

                        for (unsigned n = 0; n < r->num && used_at(r, &c, &id, &len); n++)
                                used_step(r, &c, id);
                        store_le16(r, r->driver_event, r->avail_gpa, offsetof(struct vring_packed_desc_event, off_wrap),
                                   c.idx | (c.wrap ? PACKED_WRAP_BIT : 0), __ATOMIC_RELAXED);
                }
                store_le16(r, r->driver_event, r->avail_gpa, offsetof(struct vring_packed_desc_event, flags), flags,
                           __ATOMIC_RELEASE);
        } else if (r->event_idx) {
                store_le16(r, r->avail, r->avail_gpa, offsetof(struct vring_avail, ring) + 2ULL * r->num,
                           (uint16_t)(r->last_used + min - 1), __ATOMIC_RELAXED);
        } else {
                store_le16(r, r->avail, r->avail_gpa, offsetof(struct vring_avail, flags),
                           r->no_interrupt ? VRING_AVAIL_F_NO_INTERRUPT : 0, __ATOMIC_RELAXED);
        }
}

int fe_ring_wait(struct fe_ring *r, unsigned min, int timeout_ms)
{
        int64_t deadline = deadline_of(timeout_ms);
        unsigned n;

        if (min == 0)
                min = 1;
        for (;;) {
                if ((n = fe_ring_used_pending(r)) >= min)
                        return (int)n;
                fe_ring_arm_call(r, min);
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                if ((n = fe_ring_used_pending(r)) >= min)
                        return (int)n;
                if (remaining_ms(deadline) == 0)
                        return -ETIMEDOUT;
                if (r->call_fd >= 0 && !r->no_interrupt) {
                        if (wait_fd(r->call_fd, POLLIN, deadline) == 0)
                                drain_eventfd(r->call_fd, &r->calls);
                } else {
                        sleep_us(100);
                }
        }
}

int fe_ring_used_raw(struct fe_ring *r, struct vring_used_elem *ret)
{
        struct ucur c = ucur_first(r);

        if (!used_at(r, &c, &ret->id, &ret->len))
                return 0;
        used_step(r, &c, ret->id);
        used_consume(r, &c);
        return 1;
}

int fe_ring_reap(struct fe_ring *r)
{
        struct ucur c = ucur_first(r);
        int n = 0, err = 0;
        uint32_t id, len;

        for (unsigned k = 0; k < 65536u && used_at(r, &c, &id, &len); k++) {
                bool ok = chain_ok(r, id);

                used_step(r, &c, id);
                if (!ok) {
                        err = -EPROTO;
                        continue;
                }
                chain_free(r, (uint16_t)id);
                n++;
        }
        used_consume(r, &c);
        return err ? err : n;
}

/* Used entries the next rx frame needs (from num_buffers of the first pending one), 0 if it is unreadable. */
static unsigned rx_need(const struct fe_ring *r)
{
        struct ucur c = ucur_first(r);
        struct virtio_net_hdr_mrg h;
        uint32_t id, len;

        if (!used_at(r, &c, &id, &len))
                return 1;
        if (!chain_ok(r, id))
                return 0;
        if (!r->mrg_rxbuf || r->hdr_len < sizeof(h))
                return 1;
        memcpy(&h, fe_ring_area(r, (uint16_t)id, NULL), sizeof(h));
        return le16toh(h.num_buffers);
}

int fe_ring_recv(struct fe_ring *r, void *buf, size_t cap, struct fe_rx_info *ret_info)
{
        unsigned pending = fe_ring_used_pending(r), need, nrepost = 0;
        struct fe_rx_info info = {.nbufs = 0};
        struct ucur c = ucur_first(r);
        size_t copied = 0;
        uint32_t id, len;
        int err = 0;

        if (pending == 0)
                return 0;
        need = rx_need(r);
        if (need == 0 || need > r->num) {
                /* Bad id or num_buffers: consume the entry so the caller can go on. */
                bool ok = used_at(r, &c, &id, &len) && chain_ok(r, id);

                used_step(r, &c, id);
                if (ok)
                        chain_free(r, (uint16_t)id);
                used_consume(r, &c);
                return -EPROTO;
        }
        if (need > pending)
                return 0;

        for (unsigned k = 0; k < need; k++) {
                uint32_t skip = k == 0 ? r->hdr_len : 0;
                bool ok = used_at(r, &c, &id, &len) && chain_ok(r, id);
                const uint8_t *src;

                used_step(r, &c, id);
                if (!ok || !r->chains[id].write || len > r->chains[id].cap || len < skip) {
                        err = -EPROTO;
                        if (ok)
                                chain_free(r, (uint16_t)id);
                        continue;
                }
                src = fe_ring_area(r, (uint16_t)id, NULL);
                if (k == 0)
                        memcpy(&info.hdr, src, r->hdr_len);
                if (copied < cap) {
                        size_t n = len - skip < cap - copied ? len - skip : cap - copied;

                        memcpy((uint8_t *)buf + copied, src + skip, n);
                        copied += n;
                }
                info.len += len - skip;
                info.nbufs++;
                chain_free(r, (uint16_t)id);
                nrepost++;
        }
        used_consume(r, &c);

        if (r->rx_buf_size) {
                unsigned posted = 0;

                for (unsigned i = 0; i < nrepost; i++)
                        if (fe_ring_post_rx(r, r->rx_buf_size, NULL) >= 0)
                                posted++;
                if (posted)
                        (void)fe_ring_notify(r);
        }
        if (err)
                return err;
        if (ret_info)
                *ret_info = info;
        return 1;
}

int fe_ring_recv_wait(struct fe_ring *r, void *buf, size_t cap, struct fe_rx_info *ret_info, int timeout_ms)
{
        int64_t deadline = deadline_of(timeout_ms);
        int ret;

        for (;;) {
                ret = fe_ring_recv(r, buf, cap, ret_info);
                if (ret != 0)
                        return ret;
                if (remaining_ms(deadline) == 0)
                        return -ETIMEDOUT;
                ret = fe_ring_wait(r, rx_need(r), remaining_ms(deadline));
                if (ret < 0)
                        return ret;
        }
}

int64_t fe_ring_err_pending(struct fe_ring *r)
{
        uint64_t v;

        if (r->err_fd < 0)
                return -EBADF;
        if (read(r->err_fd, &v, sizeof(v)) != sizeof(v))
                return errno == EAGAIN ? 0 : -errno;
        return (int64_t)(v & INT64_MAX);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Messages                                                                                                       */

static const char *const request_names[VU_REQUEST_MAX] = {
        [VU_GET_FEATURES] = "GET_FEATURES",
        [VU_SET_FEATURES] = "SET_FEATURES",
        [VU_SET_OWNER] = "SET_OWNER",
        [VU_RESET_OWNER] = "RESET_OWNER",
        [VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
        [VU_SET_LOG_BASE] = "SET_LOG_BASE",
        [VU_SET_LOG_FD] = "SET_LOG_FD",
        [VU_SET_VRING_NUM] = "SET_VRING_NUM",
        [VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
        [VU_SET_VRING_BASE] = "SET_VRING_BASE",
        [VU_GET_VRING_BASE] = "GET_VRING_BASE",
        [VU_SET_VRING_KICK] = "SET_VRING_KICK",
        [VU_SET_VRING_CALL] = "SET_VRING_CALL",
        [VU_SET_VRING_ERR] = "SET_VRING_ERR",
        [VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
        [VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
        [VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
        [VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
        [VU_SEND_RARP] = "SEND_RARP",
        [VU_NET_SET_MTU] = "NET_SET_MTU",
        [VU_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
        [VU_IOTLB_MSG] = "IOTLB_MSG",
        [VU_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
        [VU_GET_CONFIG] = "GET_CONFIG",
        [VU_SET_CONFIG] = "SET_CONFIG",
        [VU_RESET_DEVICE] = "RESET_DEVICE",
        [VU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
        [VU_ADD_MEM_REG] = "ADD_MEM_REG",
        [VU_REM_MEM_REG] = "REM_MEM_REG",
        [VU_SET_STATUS] = "SET_STATUS",
        [VU_GET_STATUS] = "GET_STATUS",
};

const char *fe_request_name(uint32_t request)
{
        if (request < VU_REQUEST_MAX && request_names[request])
                return request_names[request];
        return "?";
}

/* sendmsg() every byte of @iov; the fds go with the first chunk. */
static int send_iov(int sock, struct iovec *iov, unsigned iovcnt, const int *fds, unsigned nfds)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * SCM_FDS_MAX)];
                struct cmsghdr align;
        } ctl;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = iovcnt};
        size_t left = 0;

        if (nfds > SCM_FDS_MAX)
                return -EINVAL;
        for (unsigned i = 0; i < iovcnt; i++)
                left += iov[i].iov_len;
        if (nfds) {
                struct cmsghdr *c;

                memset(&ctl, 0, sizeof(ctl));
                mh.msg_control = ctl.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        while (left) {
                ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                left -= (size_t)n;
                mh.msg_control = NULL;
                mh.msg_controllen = 0;
                while (n > 0 && mh.msg_iovlen) {
                        if ((size_t)n >= mh.msg_iov->iov_len) {
                                n -= (ssize_t)mh.msg_iov->iov_len;
                                mh.msg_iov++;
                                mh.msg_iovlen--;
                        } else {
                                mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + n;
                                mh.msg_iov->iov_len -= (size_t)n;
                                n = 0;
                        }
                }
        }
        return 0;
}

int fe_msg_send(int sock, const struct vu_hdr *hdr, const void *payload, const int *fds, unsigned nfds)
{
        struct iovec iov[2] = {
                {.iov_base = (void *)hdr, .iov_len = sizeof(*hdr)},
                {.iov_base = (void *)payload, .iov_len = payload ? hdr->size : 0},
        };

        return send_iov(sock, iov, iov[1].iov_len ? 2 : 1, fds, nfds);
}

static void trace_msg(const struct fe *fe, const char *dir, const struct vu_hdr *h, const void *payload, unsigned nfds)
{
        uint64_t u64 = 0;

        if (!fe->trace)
                return;
        if (payload && h->size >= 8)
                memcpy(&u64, payload, 8);
        fprintf(stderr, "fakefe %s %s(%u) flags %#x size %u fds %u u64 %#llx\n", dir, fe_request_name(h->request),
                h->request, h->flags, h->size, nfds, (unsigned long long)u64);
}

int fe_send(struct fe *fe, uint32_t request, uint32_t flags, const void *payload, size_t size, const int *fds,
            unsigned nfds)
{
        struct vu_hdr h = {.request = request, .flags = flags, .size = (uint32_t)size};

        if (size > UINT32_MAX || (size && !payload))
                return -EINVAL;
        trace_msg(fe, "->", &h, payload, nfds);
        return fe_msg_send(fe->sock, &h, payload, fds, nfds);
}

int fe_send_raw(struct fe *fe, const void *buf, size_t len, const int *fds, unsigned nfds)
{
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

        return send_iov(fe->sock, &iov, 1, fds, nfds);
}

void fe_msg_close_fds(struct vu_msg *msg)
{
        for (unsigned i = 0; i < msg->nfds; i++)
                close_fd(&msg->fds[i]);
        msg->nfds = 0;
}

/* Read exactly @len bytes; fds that come along go into @msg (extra ones are closed and flagged). */
static int recv_exact(int sock, void *buf, size_t len, struct vu_msg *msg, bool *too_many, int64_t deadline)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * SCM_FDS_MAX)];
                struct cmsghdr align;
        } ctl;
        size_t got = 0;
        int ret;

        while (got < len) {
                struct iovec iov = {.iov_base = (char *)buf + got, .iov_len = len - got};
                struct msghdr mh = {
                        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
                ssize_t n;

                if ((ret = wait_fd(sock, POLLIN, deadline)) < 0)
                        return ret;
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        const uint8_t *data = CMSG_DATA(c);
                        size_t cnt;

                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < cnt; i++) {
                                int fd;

                                memcpy(&fd, data + i * sizeof(int), sizeof(int));
                                if (msg->nfds < VU_MAX_FDS) {
                                        msg->fds[msg->nfds++] = fd;
                                } else {
                                        close(fd);
                                        *too_many = true;
                                }
                        }
                }
                if (mh.msg_flags & MSG_CTRUNC)
                        *too_many = true;
                if (n == 0)
                        return -ECONNRESET;
                got += (size_t)n;
        }
        return 0;
}

int fe_msg_recv(int sock, struct vu_msg *msg, int timeout_ms)
{
        int64_t deadline = deadline_of(timeout_ms);
        bool too_many = false;
        int ret;

        memset(&msg->hdr, 0, sizeof(msg->hdr));
        memset(&msg->payload, 0, sizeof(msg->payload));
        msg->nfds = 0;
        for (unsigned i = 0; i < VU_MAX_FDS; i++)
                msg->fds[i] = -1;

        ret = recv_exact(sock, &msg->hdr, sizeof(msg->hdr), msg, &too_many, deadline);
        if (ret == 0 && msg->hdr.size > VU_PAYLOAD_MAX)
                ret = -EMSGSIZE;
        if (ret == 0 && msg->hdr.size)
                ret = recv_exact(sock, &msg->payload, msg->hdr.size, msg, &too_many, deadline);
        if (ret == 0 && too_many)
                ret = -EPROTO;
        if (ret < 0)
                fe_msg_close_fds(msg);
        return ret;
}

int fe_recv_reply(struct fe *fe, struct vu_msg *msg, int timeout_ms)
{
        int ret = fe_msg_recv(fe->sock, msg, timeout_ms);

        if (ret == 0)
                trace_msg(fe, "<-", &msg->hdr, &msg->payload, msg->nfds);
        else if (fe->trace)
                fprintf(stderr, "fakefe <- error %d (%s)\n", ret, strerror(-ret));
        return ret;
}

int fe_request(struct fe *fe, uint32_t request, const void *payload, size_t size, const int *fds, unsigned nfds,
               struct vu_msg *ret_reply)
{
        bool ack = !ret_reply && !fe->no_need_reply && (fe->acked_protocol_features & BIT_ULL(VU_PROTOCOL_F_REPLY_ACK));
        struct vu_msg tmp, *msg = ret_reply ? ret_reply : &tmp;
        int ret;

        ret = fe_send(fe, request, VU_VERSION | (ack ? VU_FLAG_NEED_REPLY : 0), payload, size, fds, nfds);
        if (ret < 0 || (!ret_reply && !ack))
                return ret;
        ret = fe_recv_reply(fe, msg, fe->timeout_ms);
        if (ret < 0)
                return ret;
        if (msg->hdr.request != request || (msg->hdr.flags & VU_FLAG_VERSION_MASK) != VU_VERSION ||
            !(msg->hdr.flags & VU_FLAG_REPLY)) {
                fe_msg_close_fds(msg);
                return -EPROTO;
        }
        if (!ack)
                return 0;
        fe_msg_close_fds(msg);
        if (msg->hdr.size != sizeof(uint64_t))
                return -EPROTO;
        fe->last_ack = msg->payload.u64;
        return fe->last_ack ? -EREMOTEIO : 0;
}

static int request_u64(struct fe *fe, uint32_t request, uint64_t v)
{
        return fe_request(fe, request, &v, sizeof(v), NULL, 0, NULL);
}

static int request_none(struct fe *fe, uint32_t request)
{
        return fe_request(fe, request, NULL, 0, NULL, 0, NULL);
}

static int get_u64(struct fe *fe, uint32_t request, const void *payload, size_t size, uint64_t *ret)
{
        struct vu_msg reply;
        int r = fe_request(fe, request, payload, size, NULL, 0, &reply);

        if (r < 0)
                return r;
        fe_msg_close_fds(&reply);
        if (reply.hdr.size != sizeof(uint64_t))
                return -EPROTO;
        *ret = reply.payload.u64;
        return 0;
}

int fe_sync(struct fe *fe)
{
        uint64_t f;

        return get_u64(fe, VU_GET_FEATURES, NULL, 0, &f);
}

int fe_get_features(struct fe *fe, uint64_t *ret)
{
        int r = get_u64(fe, VU_GET_FEATURES, NULL, 0, &fe->features);

        if (r == 0 && ret)
                *ret = fe->features;
        return r;
}

int fe_set_features(struct fe *fe, uint64_t features)
{
        int r = request_u64(fe, VU_SET_FEATURES, features);

        if (r == 0)
                fe->acked_features = features;
        return r;
}

int fe_get_protocol_features(struct fe *fe, uint64_t *ret)
{
        int r = get_u64(fe, VU_GET_PROTOCOL_FEATURES, NULL, 0, &fe->protocol_features);

        if (r == 0 && ret)
                *ret = fe->protocol_features;
        return r;
}

int fe_set_protocol_features(struct fe *fe, uint64_t features)
{
        int r = request_u64(fe, VU_SET_PROTOCOL_FEATURES, features);

        if (r == 0)
                fe->acked_protocol_features = features;
        return r;
}

int fe_set_owner(struct fe *fe)
{
        return request_none(fe, VU_SET_OWNER);
}

int fe_reset_owner(struct fe *fe)
{
        return request_none(fe, VU_RESET_OWNER);
}

int fe_reset_device(struct fe *fe)
{
        return request_none(fe, VU_RESET_DEVICE);
}

int fe_get_queue_num(struct fe *fe, uint64_t *ret)
{
        int r = get_u64(fe, VU_GET_QUEUE_NUM, NULL, 0, &fe->queue_num);

        if (r == 0 && ret)
                *ret = fe->queue_num;
        return r;
}

int fe_get_max_mem_slots(struct fe *fe, uint64_t *ret)
{
        return get_u64(fe, VU_GET_MAX_MEM_SLOTS, NULL, 0, ret);
}

int fe_set_mem_table(struct fe *fe, const struct fe_mem *mem)
{
        struct vu_mem_table t = {.nregions = mem->nregions};
        int fds[VU_MEM_REGIONS_MAX];

        if (mem->nregions > VU_MEM_REGIONS_MAX)
                return -E2BIG;
        for (unsigned i = 0; i < mem->nregions; i++) {
                fe_mem_region_msg(mem, i, &t.regions[i]);
                fds[i] = mem->regions[i].fd;
        }
        return fe_request(fe, VU_SET_MEM_TABLE, &t, 8 + mem->nregions * sizeof(t.regions[0]), fds, mem->nregions, NULL);
}

int fe_add_mem_reg(struct fe *fe, const struct fe_mem *mem, unsigned region)
{
        struct vu_mem_single m = {.padding = 0};

        if (region >= mem->nregions)
                return -EINVAL;
        fe_mem_region_msg(mem, region, &m.region);
        return fe_request(fe, VU_ADD_MEM_REG, &m, sizeof(m), &mem->regions[region].fd, 1, NULL);
}

int fe_rem_mem_reg(struct fe *fe, const struct fe_mem *mem, unsigned region)
{
        struct vu_mem_single m = {.padding = 0};

        if (region >= mem->nregions)
                return -EINVAL;
        fe_mem_region_msg(mem, region, &m.region);
        return fe_request(fe, VU_REM_MEM_REG, &m, sizeof(m), NULL, 0, NULL);
}

static int vring_state(struct fe *fe, uint32_t request, unsigned idx, unsigned num)
{
        struct vu_vring_state s = {.index = idx, .num = num};

        return fe_request(fe, request, &s, sizeof(s), NULL, 0, NULL);
}

int fe_set_vring_num(struct fe *fe, unsigned idx, unsigned num)
{
        return vring_state(fe, VU_SET_VRING_NUM, idx, num);
}

static int set_vring_addr(struct fe *fe, unsigned idx, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva,
                          uint32_t flags, uint64_t log_gpa)
{
        struct vu_vring_addr a = {
                .index = idx,
                .flags = flags,
                .desc_user_addr = desc_uva,
                .used_user_addr = used_uva,
                .avail_user_addr = avail_uva,
                .log_guest_addr = log_gpa,
        };

        return fe_request(fe, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL);
}

int fe_set_vring_addr(struct fe *fe, unsigned idx, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva,
                      uint32_t flags)
{
        return set_vring_addr(fe, idx, desc_uva, avail_uva, used_uva, flags, 0);
}

int fe_ring_set_addr(struct fe *fe, const struct fe_ring *r, bool log)
{
        return set_vring_addr(fe, r->index, fe_mem_uva(r->mem, r->desc_gpa), fe_mem_uva(r->mem, r->avail_gpa),
                              fe_mem_uva(r->mem, r->used_gpa), log ? 1u << VU_VRING_F_LOG : 0, log ? r->used_gpa : 0);
}

int fe_set_vring_base(struct fe *fe, unsigned idx, unsigned base)
{
        return vring_state(fe, VU_SET_VRING_BASE, idx, base);
}

int fe_get_vring_base(struct fe *fe, unsigned idx, unsigned *ret)
{
        struct vu_vring_state s = {.index = idx, .num = 0};
        struct vu_msg reply;
        int r = fe_request(fe, VU_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &reply);

        if (r < 0)
                return r;
        fe_msg_close_fds(&reply);
        if (reply.hdr.size != sizeof(s) || reply.payload.state.index != idx)
                return -EPROTO;
        *ret = reply.payload.state.num;
        return 0;
}

static int vring_fd(struct fe *fe, uint32_t request, unsigned idx, int fd)
{
        uint64_t v = idx | (fd < 0 ? VU_VRING_NOFD_MASK : 0);

        return fe_request(fe, request, &v, sizeof(v), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1, NULL);
}

int fe_set_vring_kick(struct fe *fe, unsigned idx, int fd)
{
        return vring_fd(fe, VU_SET_VRING_KICK, idx, fd);
}

int fe_set_vring_call(struct fe *fe, unsigned idx, int fd)
{
        return vring_fd(fe, VU_SET_VRING_CALL, idx, fd);
}

int fe_set_vring_err(struct fe *fe, unsigned idx, int fd)
{
        return vring_fd(fe, VU_SET_VRING_ERR, idx, fd);
}

int fe_set_vring_enable(struct fe *fe, unsigned idx, bool enable)
{
        return vring_state(fe, VU_SET_VRING_ENABLE, idx, enable);
}

int fe_net_set_mtu(struct fe *fe, unsigned mtu)
{
        return request_u64(fe, VU_NET_SET_MTU, mtu);
}

int fe_get_config(struct fe *fe, unsigned offset, unsigned size, void *ret_buf)
{
        struct vu_config c = {.offset = offset, .size = size, .flags = 0};
        struct vu_msg reply;
        int r;

        if (size > VU_CONFIG_MAX)
                return -EINVAL;
        r = fe_request(fe, VU_GET_CONFIG, &c, VU_CONFIG_HDR_SIZE + size, NULL, 0, &reply);
        if (r < 0)
                return r;
        fe_msg_close_fds(&reply);
        if (reply.hdr.size != VU_CONFIG_HDR_SIZE + size || reply.payload.config.size != size)
                return -EPROTO;
        memcpy(ret_buf, reply.payload.config.payload, size);
        return 0;
}

int fe_set_status(struct fe *fe, uint8_t status)
{
        return request_u64(fe, VU_SET_STATUS, status);
}

int fe_get_status(struct fe *fe, uint8_t *ret)
{
        uint64_t v;
        int r = get_u64(fe, VU_GET_STATUS, NULL, 0, &v);

        if (r == 0)
                *ret = (uint8_t)v;
        return r;
}

int fe_set_log_base(struct fe *fe, const struct fe_log *log)
{
        /* VhostUserLog: mmap_size, mmap_offset. */
        const uint64_t payload[2] = {log->size, log->offset};
        struct vu_msg reply;
        int r;

        if (!(fe->acked_protocol_features & BIT_ULL(VU_PROTOCOL_F_LOG_SHMFD)))
                return fe_request(fe, VU_SET_LOG_BASE, payload, sizeof(payload), &log->fd, 1, NULL);
        /* QEMU sends it without NEED_REPLY and waits for the back-end's reply. */
        r = fe_request(fe, VU_SET_LOG_BASE, payload, sizeof(payload), &log->fd, 1, &reply);
        if (r < 0)
                return r;
        fe_msg_close_fds(&reply);
        return reply.hdr.size == 0 || reply.hdr.size == sizeof(uint64_t) ? 0 : -EPROTO;
}

int fe_set_log_fd(struct fe *fe, int fd)
{
        return fe_request(fe, VU_SET_LOG_FD, NULL, 0, &fd, 1, NULL);
}

/* Creates fe->log for the current guest RAM, unless there is one. */
static int ensure_log(struct fe *fe)
{
        if (fe->log.fd >= 0)
                return 0;
        return fe_log_init(&fe->log, fe_log_size_for(fe->mem), 0);
}

int fe_log_start(struct fe *fe)
{
        int r;

        if (!(fe->features & BIT_ULL(VHOST_F_LOG_ALL)))
                return -EOPNOTSUPP;
        if ((r = ensure_log(fe)) < 0 || (r = fe_set_log_base(fe, &fe->log)) < 0 ||
            (r = fe_set_features(fe, fe->acked_features | BIT_ULL(VHOST_F_LOG_ALL))) < 0)
                return r;
        fe->log_rings = true;
        for (unsigned i = 0; i < fe->nrings; i++)
                if ((r = fe_ring_set_addr(fe, &fe->rings[i], true)) < 0)
                        return r;
        return 0;
}

int fe_log_stop(struct fe *fe)
{
        int r;

        if ((r = fe_set_features(fe, fe->acked_features & ~BIT_ULL(VHOST_F_LOG_ALL))) < 0)
                return r;
        fe->log_rings = false;
        for (unsigned i = 0; i < fe->nrings; i++)
                if ((r = fe_ring_set_addr(fe, &fe->rings[i], false)) < 0)
                        return r;
        return 0;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Connection                                                                                                     */

int fe_new(int sock, struct fe **ret)
{
        struct fe *fe = calloc(1, sizeof(*fe));
        const char *t = getenv("FAKEFE_TRACE");

        if (!fe)
                return -ENOMEM;
        fe->sock = sock;
        fe->timeout_ms = FE_TIMEOUT_MS;
        fe->trace = t && *t && strcmp(t, "0") != 0;
        for (unsigned i = 0; i < FE_MAX_RINGS; i++)
                fe->rings[i].kick_fd = fe->rings[i].call_fd = fe->rings[i].err_fd = -1;
        fe->log.fd = -1;
        *ret = fe;
        return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sun)
{
        memset(sun, 0, sizeof(*sun));
        sun->sun_family = AF_UNIX;
        if (strlen(path) >= sizeof(sun->sun_path))
                return -ENAMETOOLONG;
        strcpy(sun->sun_path, path);
        return 0;
}

int fe_connect(const char *path, int timeout_ms, struct fe **ret)
{
        int64_t deadline = deadline_of(timeout_ms);
        struct sockaddr_un sun;
        int fd, r;

        if ((r = unix_addr(path, &sun)) < 0)
                return r;
        for (;;) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return -errno;
                if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
                        break;
                r = -errno;
                close(fd);
                if (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN && r != -EINTR)
                        return r;
                if (remaining_ms(deadline) == 0)
                        return -ETIMEDOUT;
                sleep_us(10000);
        }
        r = fe_new(fd, ret);
        if (r < 0)
                close(fd);
        return r;
}

int fe_listen(const char *path, int *ret_fd)
{
        struct sockaddr_un sun;
        int fd, r;

        if ((r = unix_addr(path, &sun)) < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void)unlink(path);
        if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 4) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

int fe_accept(int listen_fd, int timeout_ms, struct fe **ret)
{
        int fd, r;

        if ((r = wait_fd(listen_fd, POLLIN, deadline_of(timeout_ms))) < 0)
                return r;
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = fe_new(fd, ret);
        if (r < 0)
                close(fd);
        return r;
}

void fe_disconnect(struct fe *fe)
{
        close_fd(&fe->sock);
}

struct fe *fe_free(struct fe *fe)
{
        if (!fe)
                return NULL;
        close_fd(&fe->sock);
        for (unsigned i = 0; i < fe->nrings; i++)
                fe_ring_done(&fe->rings[i]);
        fe_log_done(&fe->log);
        if (fe->own_mem) {
                fe_mem_done(fe->mem);
                free(fe->mem);
        }
        free(fe);
        return NULL;
}

struct fe_ring *fe_rx(struct fe *fe, unsigned qp)
{
        return &fe->rings[2 * qp];
}

struct fe_ring *fe_tx(struct fe *fe, unsigned qp)
{
        return &fe->rings[2 * qp + 1];
}

int fe_ring_configure(struct fe *fe, const struct fe_ring *r)
{
        return fe_ring_configure_at(fe, r, fe_ring_base(r));
}

int fe_ring_configure_at(struct fe *fe, const struct fe_ring *r, uint32_t base)
{
        int ret;

        if ((ret = fe_set_vring_num(fe, r->index, r->num)) < 0 || (ret = fe_set_vring_base(fe, r->index, base)) < 0 ||
            (ret = fe_ring_set_addr(fe, r, fe->log_rings)) < 0 ||
            (ret = fe_set_vring_kick(fe, r->index, r->kick_fd)) < 0 ||
            (ret = fe_set_vring_call(fe, r->index, r->call_fd)) < 0)
                return ret;
        return 0;
}

/* Default guest RAM: rings in region 0 at gpa 0, data in region 1 at 4 GiB, both in one memfd. */
static int default_mem(struct fe *fe, unsigned nrings, unsigned num, uint32_t buf_size)
{
        /* The used ring and the data areas start on a page of their own and fill whole pages. */
        uint64_t ring_bytes = 16ULL * num + 6 + 2ULL * num + ALIGN_UP(6 + 8ULL * num, PAGE_4K) + PAGE_4K +
                              3 * RING_ALIGN + (uint64_t)num * FE_INDIRECT_MAX * sizeof(struct vring_desc);
        uint64_t data_bytes = ALIGN_UP((uint64_t)num * buf_size, PAGE_4K) + PAGE_4K;
        struct fe_mem *mem = calloc(1, sizeof(*mem));
        int r;

        if (!mem)
                return -ENOMEM;
        fe_mem_init(mem);
        if ((r = fe_mem_add_region(mem, 0, ALIGN_UP(nrings * ring_bytes, HUGE_2M), 0)) < 0 ||
            (r = fe_mem_add_region(mem, 1ULL << 32, ALIGN_UP(nrings * data_bytes, HUGE_2M), FE_MEM_SHARE_FD)) < 0) {
                fe_mem_done(mem);
                free(mem);
                return r;
        }
        fe->mem = mem;
        fe->own_mem = true;
        return 0;
}

int fe_setup(struct fe *fe, unsigned queue_pairs, unsigned ring_size, uint64_t features)
{
        struct fe_setup_opts o = {.queue_pairs = queue_pairs, .ring_size = ring_size, .features = features};

        return fe_setup_ex(fe, &o);
}

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8

int fe_setup_ex(struct fe *fe, const struct fe_setup_opts *opts)
{
        static const struct fe_setup_opts none;
        const struct fe_setup_opts *o = opts ? opts : &none;
        unsigned qp = o->queue_pairs ? o->queue_pairs : 1;
        unsigned num = o->ring_size ? o->ring_size : 256;
        uint64_t want = (o->features ? o->features : FE_FEATURES_DEFAULT) | (o->log ? BIT_ULL(VHOST_F_LOG_ALL) : 0);
        uint64_t pwant = (o->protocol_features ? o->protocol_features : FE_PROTOCOL_FEATURES_DEFAULT) |
                         (o->log ? BIT_ULL(VU_PROTOCOL_F_LOG_SHMFD) : 0);
        uint32_t buf_size = o->buf_size ? o->buf_size : 2048;
        uint64_t acked, proto = 0, slots;
        bool own = !fe->mem;
        uint8_t status = 0;
        int r;

        if (2 * qp > FE_MAX_RINGS || fe->nrings)
                return -ERANGE;
        if ((r = fe_get_features(fe, NULL)) < 0)
                return r;
        acked = want & fe->features;
        if (acked & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES)) {
                if ((r = fe_get_protocol_features(fe, NULL)) < 0)
                        return r;
                proto = pwant & fe->protocol_features;
                if ((r = fe_set_protocol_features(fe, proto)) < 0)
                        return r;
        }
        if (o->log && (!(acked & BIT_ULL(VHOST_F_LOG_ALL)) || !(proto & BIT_ULL(VU_PROTOCOL_F_LOG_SHMFD))))
                return -EOPNOTSUPP;
        if (proto & BIT_ULL(VU_PROTOCOL_F_MQ)) {
                if ((r = fe_get_queue_num(fe, NULL)) < 0)
                        return r;
                if (qp > fe->queue_num)
                        return -ERANGE;
        }
        if ((proto & BIT_ULL(VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) && (r = fe_get_max_mem_slots(fe, &slots)) < 0)
                return r;
        if ((r = fe_set_owner(fe)) < 0)
                return r;

        if (own && (r = default_mem(fe, 2 * qp, num, buf_size)) < 0)
                return r;
        for (unsigned i = 0; i < 2 * qp; i++) {
                struct fe_ring *ring = &fe->rings[i];

                r = fe_ring_init_layout(ring, fe->mem, i, num, buf_size, own ? 0 : -1, own ? 1 : -1,
                                        (acked & BIT_ULL(VIRTIO_F_RING_PACKED)) ? FE_PACKED : FE_SPLIT);
                if (r < 0)
                        return r;
                fe->nrings = i + 1;
                ring->event_idx = acked & BIT_ULL(VIRTIO_RING_F_EVENT_IDX);
                ring->mrg_rxbuf = acked & BIT_ULL(VIRTIO_NET_F_MRG_RXBUF);
                ring->hdr_len = (acked & (BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_NET_F_MRG_RXBUF)))
                                        ? sizeof(struct virtio_net_hdr_mrg)
                                        : sizeof(struct virtio_net_hdr);
                ring->rx_buf_size = o->rx_buf_size ? o->rx_buf_size : buf_size;
                if (!o->no_err_fd && (r = fe_set_vring_err(fe, i, ring->err_fd)) < 0)
                        return r;
        }

        if ((r = fe_set_features(fe, acked)) < 0)
                return r;
        if (proto & BIT_ULL(VU_PROTOCOL_F_STATUS)) {
                if ((r = fe_get_status(fe, &status)) < 0 ||
                    (r = fe_set_status(fe, status | STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK)) < 0)
                        return r;
        }
        if (o->mtu && (proto & BIT_ULL(VU_PROTOCOL_F_MTU)) && (r = fe_net_set_mtu(fe, o->mtu)) < 0)
                return r;
        if (proto & BIT_ULL(VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
                for (unsigned i = 0; i < fe->mem->nregions; i++)
                        if ((r = fe_add_mem_reg(fe, fe->mem, i)) < 0)
                                return r;
        } else if ((r = fe_set_mem_table(fe, fe->mem)) < 0) {
                return r;
        }
        if (o->log && ((r = fe_mem_track(fe->mem)) < 0 || (r = ensure_log(fe)) < 0))
                return r;
        fe->log_rings = o->log;
        for (unsigned i = 0; i < fe->nrings; i++) {
                if ((r = fe_ring_configure(fe, &fe->rings[i])) < 0)
                        return r;
                if (i % 2 == 0 && !o->no_fill_rx)
                        (void)fe_ring_fill_rx(&fe->rings[i]);
        }
        /* QEMU's vhost_dev_start: the log base after the rings. */
        if (o->log && (r = fe_set_log_base(fe, &fe->log)) < 0)
                return r;
        if (o->no_enable)
                return 0;
        if (acked & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES)) {
                for (unsigned i = 0; i < fe->nrings; i++)
                        if ((r = fe_set_vring_enable(fe, i, true)) < 0)
                                return r;
        }
        if (proto & BIT_ULL(VU_PROTOCOL_F_STATUS)) {
                if ((r = fe_get_status(fe, &status)) < 0 || (r = fe_set_status(fe, status | STATUS_DRIVER_OK)) < 0)
                        return r;
        }
        for (unsigned i = 0; i < fe->nrings; i += 2)
                if ((r = fe_ring_kick(&fe->rings[i])) < 0)
                        return r;
        /* Without REPLY_ACK nothing above waited: make sure the back-end has processed it all. */
        return fe_sync(fe);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Frames                                                                                                         */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

uint32_t fe_fnv1a(const void *buf, size_t len)
{
        const uint8_t *p = buf;
        uint32_t h = FNV_OFFSET;

        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= FNV_PRIME;
        }
        return h;
}

static void put_be32(uint8_t *p, uint32_t v)
{
        v = htobe32(v);
        memcpy(p, &v, 4);
}

static uint32_t get_be32(const uint8_t *p)
{
        uint32_t v;

        memcpy(&v, p, 4);
        return be32toh(v);
}

int fe_frame_build(void *buf, size_t len, uint32_t seq, const uint8_t *dst, const uint8_t *src)
{
        static const uint8_t def_dst[6] = {0x02, 0, 0, 0, 0, 0x02}, def_src[6] = {0x02, 0, 0, 0, 0, 0x01};
        uint8_t *p = buf;
        uint32_t x = seq * 2654435761u + 0x9e3779b9u;
        uint16_t type = htobe16(FE_ETHERTYPE);

        if (len < FE_FRAME_MIN || len > FE_FRAME_MAX)
                return -EINVAL;
        memcpy(p, dst ? dst : def_dst, 6);
        memcpy(p + 6, src ? src : def_src, 6);
        memcpy(p + 12, &type, 2);
        put_be32(p + 14, FE_FRAME_MAGIC);
        put_be32(p + 18, seq);
        put_be32(p + 22, (uint32_t)len);
        for (size_t i = FE_FRAME_MIN; i < len; i++) {
                /* xorshift32: cheap filler that differs per frame */
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p[i] = (uint8_t)x;
        }
        put_be32(p + 26, fe_fnv1a(p + FE_FRAME_MIN, len - FE_FRAME_MIN));
        return 0;
}

int fe_frame_verify(const void *buf, size_t len, uint32_t *ret_seq)
{
        const uint8_t *p = buf;
        uint16_t type;

        if (len < FE_FRAME_MIN)
                return -EBADMSG;
        memcpy(&type, p + 12, 2);
        if (be16toh(type) != FE_ETHERTYPE || get_be32(p + 14) != FE_FRAME_MAGIC || get_be32(p + 22) != len ||
            get_be32(p + 26) != fe_fnv1a(p + FE_FRAME_MIN, len - FE_FRAME_MIN))
                return -EBADMSG;
        if (ret_seq)
                *ret_seq = get_be32(p + 18);
        return 0;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Processes                                                                                                      */

pid_t fe_spawn_vhostd(char *const argv[], const char *log_path)
{
        int pfd[2], logfd = -1, e = 0;
        pid_t parent = getpid(), pid;
        ssize_t n;

        if (!argv || !argv[0])
                return -EINVAL;
        if (log_path) {
                logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (logfd < 0)
                        return -errno;
        }
        if (pipe2(pfd, O_CLOEXEC) < 0) {
                e = -errno;
                close_fd(&logfd);
                return e;
        }
        pid = fork();
        if (pid < 0) {
                e = -errno;
                close(pfd[0]);
                close(pfd[1]);
                close_fd(&logfd);
                return e;
        }
        if (pid == 0) {
                sigset_t all;

                /* Async-signal-safe calls only from here. */
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                sigemptyset(&all);
                (void)sigprocmask(SIG_SETMASK, &all, NULL);
                (void)signal(SIGPIPE, SIG_DFL);
                if (logfd >= 0 && (dup2(logfd, STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0))
                        e = errno;
                if (!e) {
                        execv(argv[0], argv);
                        e = errno;
                }
                n = write(pfd[1], &e, sizeof(e));
                (void)n;
                _exit(127);
        }
        close(pfd[1]);
        close_fd(&logfd);
        do
                n = read(pfd[0], &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        close(pfd[0]);
        if (n == sizeof(e)) {
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return -(e ? e : EIO);
        }
        return pid;
}

int fe_wait_exit(pid_t pid, int timeout_ms, int *ret_status)
{
        int64_t deadline = deadline_of(timeout_ms);
        int status;

        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);

                if (w == pid) {
                        if (ret_status)
                                *ret_status = status;
                        return 0;
                }
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (remaining_ms(deadline) == 0)
                        return -ETIMEDOUT;
                sleep_us(2000);
        }
}

int fe_stop(pid_t pid, int timeout_ms, int *ret_status)
{
        int r, status;

        if (pid <= 0)
                return -EINVAL;
        if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
                return -errno;
        r = fe_wait_exit(pid, timeout_ms, ret_status);
        if (r != -ETIMEDOUT)
                return r;
        (void)kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (ret_status)
                *ret_status = status;
        return -ETIMEDOUT;
}

static int count_dir(pid_t pid, const char *what)
{
        char path[64];
        struct dirent *de;
        DIR *d;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

int fe_count_fds(pid_t pid)
{
        int n = count_dir(pid, "fd");

        /* Our own listing includes the directory fd it was read through. */
        return n > 0 && pid == getpid() ? n - 1 : n;
}

int fe_count_threads(pid_t pid)
{
        return count_dir(pid, "task");
}

int fe_count_maps(pid_t pid, const char *substr)
{
        char path[64], *line = NULL;
        size_t cap = 0;
        FILE *f;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (getline(&line, &cap, f) > 0)
                if (!substr || strstr(line, substr))
                        n++;
        free(line);
        fclose(f);
        return n;
}

int fe_wait_maps(pid_t pid, const char *substr, int want, int timeout_ms)
{
        int64_t deadline = deadline_of(timeout_ms);
        int n;

        for (;;) {
                n = fe_count_maps(pid, substr);
                if (n < 0 || n == want)
                        return n < 0 ? n : 0;
                if (remaining_ms(deadline) == 0)
                        return -ETIMEDOUT;
                sleep_us(2000);
        }
}

const char *fe_vhostd_path(void)
{
        const char *p = getenv("VHOSTD_BIN");

        return p && *p ? p : "build/vhostd";
}
