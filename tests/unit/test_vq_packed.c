/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for vring/packed.c (the packed virtqueue), through the vring/vq.h functions the worker calls. Guest
 * RAM: tests/unit/guest_ram.h. The test plays the guest driver: it writes descriptors with the AVAIL/USED bits of its
 * wrap counter (the first descriptor's flags last), reads the used descriptors back the way a driver does, and writes
 * and reads the event suppression areas, all little-endian.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vring/log.h"
#include "vring/mem.h"
#include "vring/vq.h"

#include "tests/unit/guest_ram.h"

/* Ring layout in R0: room for a 32768-entry descriptor ring (512 KiB). */
#define DESC_GPA R0_GPA
#define DRIVER_GPA (R0_GPA + 0x80000) /* driver event area */
#define DEVICE_GPA (R0_GPA + 0x81000) /* device event area, on its own page */
#define DESC2_GPA (R0_GPA + 0x82000)
#define DRIVER2_GPA (R0_GPA + 0x83000)
#define DEVICE2_GPA (R0_GPA + 0x83010)
#define TABLE_GPA (R0_GPA + 0x90000) /* indirect tables */
#define DATA_GPA (R0_GPA + 0xa0000)  /* data buffers */

#define NUM 8
#define IOV_MAX_TEST 64

#define F_AVAIL VRING_PACKED_DESC_F_AVAIL
#define F_USED VRING_PACKED_DESC_F_USED
#define F_NEXT VRING_DESC_F_NEXT
#define F_WRITE VRING_DESC_F_WRITE
#define F_INDIRECT VRING_DESC_F_INDIRECT

/* The driver's view of the ring. */
struct drv {
        uint64_t ring; /* gpa of the descriptor ring */
        unsigned num;
        uint16_t next;         /* next slot to make available */
        bool wrap;             /* its wrap counter */
        uint16_t used;         /* next slot to look for a used descriptor */
        bool used_wrap;        /* its wrap counter */
        unsigned outstanding;  /* buffers made available and not used yet */
        unsigned entries;      /* used descriptors read by drv_used_in_order() */
        uint16_t slots[65536]; /* per buffer id (any 16-bit id, even a bad one): slots the buffer took */
};

struct fx {
        struct mem_table mem;
        struct vq vq;
        struct drv d;
        struct iovec iov[IOV_MAX_TEST];
        uint64_t gpa[IOV_MAX_TEST];
        struct vq_elem elem;
};

/* The test's (the guest's) pointer to gpa. */
static void *gp(struct fx *f, uint64_t gpa)
{
        return guest_ram_ptr(&f->mem, gpa);
}

static void init_vq(struct fx *f, struct vq *vq, unsigned num, uint64_t desc, uint64_t driver, uint64_t device)
{
        const char *why = NULL;

        vq_free(vq);
        memset(vq, 0, sizeof(*vq));
        vq->packed = true;
        assert_int_equal(vq_alloc(vq, num), 0);
        assert_int_equal(vq_map_rings(vq, &f->mem, desc + UVA_OFF, driver + UVA_OFF, device + UVA_OFF, &why), 0);
        assert_ptr_equal(vq->pdesc, gp(f, desc));
        assert_ptr_equal(vq->driver_event, gp(f, driver));
        assert_ptr_equal(vq->device_event, gp(f, device));
        assert_null(vq->desc);
        assert_null(vq->avail);
        assert_null(vq->used);
}

static void drv_init(struct drv *d, uint64_t ring, unsigned num)
{
        d->ring = ring;
        d->num = num;
        d->next = d->used = 0;
        d->wrap = d->used_wrap = true;
        d->outstanding = d->entries = 0;
}

/* Zeroes the writable guest memory and starts the default queue afresh with num entries. */
static void reset(struct fx *f, unsigned num)
{
        guest_ram_clear(&f->mem);
        drv_init(&f->d, DESC_GPA, num);
        init_vq(f, &f->vq, num, DESC_GPA, DRIVER_GPA, DEVICE_GPA);
        f->elem.iov = f->iov;
        f->elem.gpa = f->gpa;
}

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        guest_ram_map(&f->mem);
        reset(f, NUM);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        vq_free(&f->vq);
        mem_table_clear(&f->mem);
        free(f);
        return 0;
}

/* ---- the driver side ---- */

static uint16_t avail_bits(bool wrap)
{
        return wrap ? F_AVAIL : F_USED;
}

static struct vring_packed_desc *desc_at(struct fx *f, uint64_t ring, unsigned i)
{
        return gp(f, ring + 16 * (uint64_t)i);
}

/* Writes a whole descriptor, flags as given (no AVAIL/USED added). */
static void put_desc(struct fx *f, uint64_t ring, unsigned i, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags)
{
        struct vring_packed_desc d = {htole64(addr), htole32(len), htole16(id), htole16(flags)};

        /* Per entry: a table may cross regions, which are separate mappings here too. */
        memcpy(gp(f, ring + 16 * (uint64_t)i), &d, sizeof(d));
}

static uint16_t desc_flags(struct fx *f, uint64_t ring, unsigned i)
{
        return le16toh(__atomic_load_n(&desc_at(f, ring, i)->flags, __ATOMIC_ACQUIRE));
}

struct seg {
        uint64_t addr;
        uint32_t len;
        uint16_t flags; /* WRITE, INDIRECT, or raw extra bits */
};

/*
 * Makes a buffer of n descriptors available at the driver's next slots, the buffer id in the last one (id_first,
 * when not ~0, also in the others, as a driver may leave anything there). NEXT is set on all but the last; the
 * first descriptor's flags are stored last, with a release.
 */
static void drv_add(struct fx *f, const struct seg *s, unsigned n, uint16_t id)
{
        struct drv *d = &f->d;
        uint16_t slot = d->next, head = d->next, head_flags = 0;
        bool wrap = d->wrap;

        for (unsigned i = 0; i < n; i++) {
                uint16_t flags = s[i].flags | (i + 1 < n ? F_NEXT : 0) | avail_bits(wrap);
                struct vring_packed_desc *p = desc_at(f, d->ring, slot);

                p->addr = htole64(s[i].addr);
                p->len = htole32(s[i].len);
                p->id = htole16(i + 1 == n ? id : 0xdead);
                if (i == 0)
                        head_flags = flags;
                else
                        __atomic_store_n(&p->flags, htole16(flags), __ATOMIC_RELAXED);
                if (++slot == d->num) {
                        slot = 0;
                        wrap = !wrap;
                }
        }
        __atomic_store_n(&desc_at(f, d->ring, head)->flags, htole16(head_flags), __ATOMIC_RELEASE);
        d->next = slot;
        d->wrap = wrap;
        d->slots[id] = (uint16_t)n;
        d->outstanding++;
}

/* One readable or writable descriptor. */
static void drv_add1(struct fx *f, uint64_t addr, uint32_t len, uint16_t flags, uint16_t id)
{
        struct seg s = {addr, len, flags};

        drv_add(f, &s, 1, id);
}

/* The driver takes buffer id back: its slots are free, the next used descriptor is past them. */
static void drv_consume(struct drv *d, uint16_t id)
{
        unsigned next = d->used + d->slots[id];

        assert_true(d->outstanding > 0);
        assert_true(d->slots[id] > 0);
        d->outstanding--;
        d->slots[id] = 0;
        if (next >= d->num) {
                next -= d->num;
                d->used_wrap = !d->used_wrap;
        }
        d->used = (uint16_t)next;
}

/*
 * Reads the next used descriptor the way a driver does: used when AVAIL and USED both equal its used wrap counter.
 * Checks the flags hold nothing else but WRITE, set exactly when len is not 0. Returns false when there is none yet.
 */
static bool drv_used(struct fx *f, uint16_t *id, uint32_t *len)
{
        struct drv *d = &f->d;
        struct vring_packed_desc *p = desc_at(f, d->ring, d->used);
        uint16_t flags = le16toh(__atomic_load_n(&p->flags, __ATOMIC_ACQUIRE));
        bool a = flags & F_AVAIL, u = flags & F_USED;

        /* Like a driver, look only while buffers are out: a slot in the ring's future can look used. */
        if (!d->outstanding || a != d->used_wrap || u != d->used_wrap)
                return false;
        *id = le16toh(p->id);
        *len = le32toh(p->len);
        /* WRITE when the device wrote something (len is reserved without it); nothing else. */
        assert_int_equal(flags, (d->used_wrap ? (F_AVAIL | F_USED) : 0) | (*len ? F_WRITE : 0));
        assert_true(*id < d->num);
        drv_consume(d, *id);
        return true;
}

/* Starts both sides at avail slot a / used slot u with the given wrap counters (SET_VRING_BASE). */
static void start_at(struct fx *f, uint16_t a, bool aw, uint16_t u, bool uw)
{
        const char *why = NULL;
        uint32_t base = a | (aw ? 0x8000u : 0) | (uint32_t)(u | (uw ? 0x8000u : 0)) << 16;

        assert_int_equal(vq_packed_set_base(&f->vq, base, &why), 0);
        f->d.next = a;
        f->d.wrap = aw;
        f->d.used = u;
        f->d.used_wrap = uw;
}

static void driver_event_set(struct fx *f, uint16_t flags, uint16_t off, bool wrap)
{
        struct vring_packed_desc_event *e = gp(f, DRIVER_GPA);

        e->off_wrap = htole16(off | (wrap ? 0x8000 : 0));
        __atomic_store_n(&e->flags, htole16(flags), __ATOMIC_RELEASE);
}

static uint16_t device_flags(struct fx *f)
{
        struct vring_packed_desc_event *e = gp(f, DEVICE_GPA);
        return le16toh(e->flags);
}

static uint16_t device_off_wrap(struct fx *f)
{
        struct vring_packed_desc_event *e = gp(f, DEVICE_GPA);
        return le16toh(e->off_wrap);
}

static void expect_iov(const struct iovec *iov, struct fx *f, uint64_t gpa, size_t len)
{
        guest_ram_expect_iov(&f->mem, iov, gpa, len);
}

static int pop(struct fx *f)
{
        return vq_pop(&f->vq, &f->elem, IOV_MAX_TEST);
}

/* ---- sizes and mapping ---- */

static void test_check_num_packed(void **state)
{
        static const struct {
                unsigned num;
                int ret;
        } cases[] = {
                {0, -EINVAL},     {1, 0},           {2, 0},         {3, 0},     {7, 0},
                {256, 0},         {1000, 0},        {32767, 0},     {32768, 0}, {32769, -EINVAL},
                {65535, -EINVAL}, {65536, -EINVAL}, {~0u, -EINVAL},
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                if (vq_check_num_packed(cases[i].num) != cases[i].ret)
                        print_error("num %u\n", cases[i].num);
                assert_int_equal(vq_check_num_packed(cases[i].num), cases[i].ret);
        }
}

/* vq_alloc() takes any size for a packed queue, and still only powers of two for a split one. */
static void test_alloc_any_num(void **state)
{
        static const unsigned good[] = {1, 3, 5, 1000, 32767, 32768};
        struct vq vq = {0};

        for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
                vq.packed = true;
                assert_int_equal(vq_alloc(&vq, good[i]), 0);
                assert_int_equal(vq.num, good[i]);
                assert_non_null(vq.inflight_slots);
                assert_non_null(vq.popped);
                assert_true(vq.avail_wrap);
                assert_true(vq.used_wrap);
        }
        assert_int_equal(vq_alloc(&vq, 0), -EINVAL);
        assert_int_equal(vq_alloc(&vq, 32769), -EINVAL);
        assert_int_equal(vq.num, 32768); /* a refused size leaves the queue as it was */
        vq_free(&vq);
        assert_null(vq.inflight_slots);
        assert_null(vq.popped);
        vq_free(&vq); /* idempotent */

        memset(&vq, 0, sizeof(vq));
        assert_int_equal(vq_alloc(&vq, 3), -EINVAL);
        assert_int_equal(vq_alloc(&vq, 4), 0);
        assert_null(vq.inflight_slots);
        vq_free(&vq);
}

struct map_case {
        const char *what;
        uint64_t desc, driver, device; /* gpas; UVA_OFF is added */
        int ret;
        const char *why;
};

/* num = 8: the descriptor ring is 128 bytes, each event area 4. */
static const struct map_case map_cases[] = {
        {"default", DESC_GPA, DRIVER_GPA, DEVICE_GPA, 0, NULL},
        {"tightest alignment", DESC_GPA + 16, DRIVER_GPA + 4, DEVICE_GPA + 4, 0, NULL},
        {"each part ends at the end of R1", GAP_GPA - 128, GAP_GPA - 8, GAP_GPA - 4, 0, NULL},
        {"driver area read-only", DESC_GPA, RO_GPA, DEVICE_GPA, 0, NULL},
        {"desc misaligned", DESC_GPA + 8, DRIVER_GPA, DEVICE_GPA, -EINVAL, "misaligned"},
        {"driver area misaligned", DESC_GPA, DRIVER_GPA + 2, DEVICE_GPA, -EINVAL, "misaligned"},
        {"device area misaligned", DESC_GPA, DRIVER_GPA, DEVICE_GPA + 1, -EINVAL, "misaligned"},
        {"desc read-only (we write used descriptors)", RO_GPA, DRIVER_GPA, DEVICE_GPA, -EFAULT, "descriptor ring"},
        {"desc in the gap", GAP_GPA, DRIVER_GPA, DEVICE_GPA, -EFAULT, "descriptor ring"},
        {"desc at 0", 0, DRIVER_GPA, DEVICE_GPA, -EFAULT, "descriptor ring"},
        {"desc crossing R0|R1", R1_GPA - 64, DRIVER_GPA, DEVICE_GPA, -EFAULT, "descriptor ring"},
        {"desc crossing R1|gap", GAP_GPA - 64, DRIVER_GPA, DEVICE_GPA, -EFAULT, "descriptor ring"},
        {"driver area in the gap", DESC_GPA, GAP_GPA, DEVICE_GPA, -EFAULT, "driver event"},
        {"device area in the gap", DESC_GPA, DRIVER_GPA, GAP_GPA + 0x100, -EFAULT, "device event"},
        {"device area read-only", DESC_GPA, DRIVER_GPA, RO_GPA, -EFAULT, "device event"},
        {"device area wraps the address space", DESC_GPA, DRIVER_GPA, UINT64_MAX - 3 - UVA_OFF, -EFAULT,
         "device event"},
};

static void test_map_rings_packed(void **state)
{
        struct fx *f = *state;

        for (size_t i = 0; i < ARRAY_SIZE(map_cases); i++) {
                const struct map_case *c = &map_cases[i];
                struct vq vq = {.packed = true};
                const char *why = NULL;
                int r;

                assert_int_equal(vq_alloc(&vq, NUM), 0);
                r = vq_map_rings(&vq, &f->mem, c->desc + UVA_OFF, c->driver + UVA_OFF, c->device + UVA_OFF, &why);
                if (r != c->ret)
                        print_error("case '%s': got %d (%s), expected %d\n", c->what, r, why ? why : "", c->ret);
                assert_int_equal(r, c->ret);
                if (r == 0) {
                        assert_ptr_equal(vq.pdesc, gp(f, c->desc));
                        assert_ptr_equal(vq.driver_event, gp(f, c->driver));
                        assert_ptr_equal(vq.device_event, gp(f, c->device));
                        assert_int_equal(vq.pdesc_gpa, c->desc);
                        assert_int_equal(vq.device_event_gpa, c->device);
                        assert_ptr_equal(vq.mem, &f->mem);
                } else {
                        assert_non_null(why);
                        if (!strstr(why, c->why))
                                print_error("case '%s': reason '%s' lacks '%s'\n", c->what, why, c->why);
                        assert_non_null(strstr(why, c->why));
                        assert_null(vq.pdesc);
                        assert_null(vq.driver_event);
                        assert_null(vq.device_event);
                }
                vq_free(&vq);
        }
}

static void test_map_rings_packed_sizes(void **state)
{
        struct fx *f = *state;
        struct vq vq = {.packed = true};
        const char *why = NULL;

        /* No size yet. */
        assert_int_equal(
                vq_map_rings_packed(&vq, &f->mem, DESC_GPA + UVA_OFF, DRIVER_GPA + UVA_OFF, DEVICE_GPA + UVA_OFF, &why),
                -EINVAL);
        assert_non_null(strstr(why, "ring size"));
        /* A non-power-of-two ring must fit entirely: 1000 descriptors are 16000 bytes. */
        assert_int_equal(vq_alloc(&vq, 1000), 0);
        assert_int_equal(
                vq_map_rings(&vq, &f->mem, R1_GPA - 16000 + UVA_OFF, DRIVER_GPA + UVA_OFF, DEVICE_GPA + UVA_OFF, &why),
                0);
        assert_int_equal(
                vq_map_rings(&vq, &f->mem, R1_GPA - 15984 + UVA_OFF, DRIVER_GPA + UVA_OFF, DEVICE_GPA + UVA_OFF, &why),
                -EFAULT);
        /* The biggest ring: 512 KiB. */
        assert_int_equal(vq_alloc(&vq, 32768), 0);
        assert_int_equal(vq_map_rings(&vq, &f->mem, R0_GPA + UVA_OFF, DRIVER_GPA + UVA_OFF, DEVICE_GPA + UVA_OFF, &why),
                         0);
        assert_int_equal(vq_map_rings(&vq, &f->mem, R0_GPA + 0x80010 + UVA_OFF, DRIVER_GPA + UVA_OFF,
                                      DEVICE_GPA + UVA_OFF, &why),
                         -EFAULT);
        vq_free(&vq);
}

/* ---- popping good chains ---- */

static void test_pop_empty(void **state)
{
        struct fx *f = *state;

        assert_int_equal(vq_avail_count(&f->vq), 0);
        assert_int_equal(pop(f), 0);
        /* Descriptors with the bits of the other lap, or marked used, are not available. */
        put_desc(f, DESC_GPA, 0, DATA_GPA, 16, 0, avail_bits(false));
        assert_int_equal(pop(f), 0);
        put_desc(f, DESC_GPA, 0, DATA_GPA, 16, 0, F_AVAIL | F_USED);
        assert_int_equal(pop(f), 0);
        put_desc(f, DESC_GPA, 0, DATA_GPA, 16, 0, 0);
        assert_int_equal(pop(f), 0);
        assert_int_equal(vq_avail_count(&f->vq), 0);
        assert_false(f->vq.broken);
        assert_int_equal(f->vq.last_avail_idx, 0);
        assert_true(f->vq.avail_wrap);
}

static void test_pop_simple(void **state)
{
        struct fx *f = *state;
        struct vq_elem *e = &f->elem;
        const struct seg s[] = {
                {DATA_GPA, 100, 0},
                {DATA_GPA + 0x1000, 50, 0},
                {DATA_GPA + 0x2000, 200, F_WRITE},
                {DATA_GPA + 0x3000, 1, F_WRITE},
        };

        drv_add(f, s, 4, 6);
        assert_int_equal(vq_avail_count(&f->vq), 1);
        assert_int_equal(pop(f), 1);
        assert_int_equal(e->head, 6); /* the id of the last descriptor */
        assert_int_equal(e->out_num, 2);
        assert_int_equal(e->in_num, 2);
        assert_int_equal(e->out_len, 150);
        assert_int_equal(e->in_len, 201);
        expect_iov(&e->iov[0], f, DATA_GPA, 100);
        expect_iov(&e->iov[1], f, DATA_GPA + 0x1000, 50);
        expect_iov(&e->iov[2], f, DATA_GPA + 0x2000, 200);
        expect_iov(&e->iov[3], f, DATA_GPA + 0x3000, 1);
        for (unsigned i = 0; i < 4; i++)
                assert_int_equal(e->gpa[i], s[i].addr);
        assert_int_equal(f->vq.last_avail_idx, 4);
        assert_true(f->vq.avail_wrap);
        assert_int_equal(f->vq.inflight_slots[6], 4);
        assert_int_equal(vq_avail_count(&f->vq), 0);
        assert_int_equal(pop(f), 0);
        assert_false(f->vq.broken);
}

static void test_pop_several(void **state)
{
        struct fx *f = *state;

        for (unsigned i = 0; i < NUM; i++)
                drv_add1(f, DATA_GPA + 0x100 * i, 10 + i, (i & 1) ? F_WRITE : 0, (uint16_t)(NUM - 1 - i));
        assert_int_equal(vq_avail_count(&f->vq), NUM);
        for (unsigned i = 0; i < NUM; i++) {
                assert_int_equal(pop(f), 1);
                assert_int_equal(f->elem.head, NUM - 1 - i);
                assert_int_equal(f->elem.out_num + f->elem.in_num, 1);
                assert_int_equal((i & 1) ? f->elem.in_len : f->elem.out_len, 10 + i);
                expect_iov(&f->iov[0], f, DATA_GPA + 0x100 * i, 10 + i);
        }
        /* A full lap: the next slot is 0 again, in the other lap. */
        assert_int_equal(f->vq.last_avail_idx, 0);
        assert_false(f->vq.avail_wrap);
        assert_int_equal(pop(f), 0);
}

/* Zero-length descriptors are legal and take no iovec. */
static void test_pop_zero_length(void **state)
{
        struct fx *f = *state;
        const struct seg s[] = {{GAP_GPA, 0, 0}, {DATA_GPA, 4, F_WRITE}};

        drv_add(f, s, 2, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, 1), 1);
        assert_int_equal(f->elem.out_num, 0);
        assert_int_equal(f->elem.out_len, 0);
        assert_int_equal(f->elem.in_num, 1);
}

static void test_pop_crossing_regions(void **state)
{
        struct fx *f = *state;

        drv_add1(f, R1_GPA - 10, 30, F_WRITE, 0);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.in_num, 2);
        assert_int_equal(f->elem.in_len, 30);
        expect_iov(&f->iov[0], f, R1_GPA - 10, 10);
        expect_iov(&f->iov[1], f, R1_GPA, 20);
        assert_int_equal(f->gpa[0], R1_GPA - 10);
        assert_int_equal(f->gpa[1], R1_GPA);
}

static void test_pop_readable_in_read_only(void **state)
{
        struct fx *f = *state;

        drv_add1(f, RO_GPA, RO_SIZE, 0, 0);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.out_len, RO_SIZE);
        expect_iov(&f->iov[0], f, RO_GPA, RO_SIZE);
}

/* A chain whose descriptors sit in slots 6, 7, 0, 1: the bits of the last two are those of the next lap. */
static void test_chain_crossing_ring_end(void **state)
{
        struct fx *f = *state;
        const struct seg s[] = {{DATA_GPA, 1, 0},
                                {DATA_GPA + 0x10, 2, 0},
                                {DATA_GPA + 0x20, 3, F_WRITE},
                                {DATA_GPA + 0x30, 4, F_WRITE}};
        uint16_t id;
        uint32_t len;

        start_at(f, 6, true, 6, true);
        drv_add(f, s, 4, 5);
        assert_int_equal(desc_flags(f, DESC_GPA, 7) & (F_AVAIL | F_USED), F_AVAIL);
        assert_int_equal(desc_flags(f, DESC_GPA, 0) & (F_AVAIL | F_USED), F_USED);
        assert_int_equal(vq_avail_count(&f->vq), 1);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.head, 5);
        assert_int_equal(f->elem.out_len, 3);
        assert_int_equal(f->elem.in_len, 7);
        assert_int_equal(f->vq.last_avail_idx, 2);
        assert_false(f->vq.avail_wrap);
        vq_push(&f->vq, 5, 7);
        vq_publish(&f->vq);
        /* One used descriptor, in the chain's first slot, with the bits of the lap it was written in. */
        assert_int_equal(desc_flags(f, DESC_GPA, 6), F_AVAIL | F_USED | F_WRITE);
        assert_true(drv_used(f, &id, &len));
        assert_int_equal(id, 5);
        assert_int_equal(len, 7);
        assert_int_equal(f->vq.used_idx, 2);
        assert_false(f->vq.used_wrap);
        assert_int_equal(f->d.used, 2);
        assert_false(f->d.used_wrap);
        assert_false(drv_used(f, &id, &len));
}

static void test_indirect(void **state)
{
        struct fx *f = *state;
        struct vq_elem *e = &f->elem;

        /* In a table only WRITE counts: NEXT and ids are ignored, the length says how many there are. */
        put_desc(f, TABLE_GPA, 0, DATA_GPA, 10, 77, 0);
        put_desc(f, TABLE_GPA, 1, DATA_GPA + 0x100, 20, 0xffff, F_NEXT);
        put_desc(f, TABLE_GPA, 2, DATA_GPA + 0x200, 30, 0, F_WRITE | F_NEXT);
        /* The WRITE flag on the descriptor pointing at the table is ignored. */
        drv_add1(f, TABLE_GPA, 3 * 16, F_INDIRECT | F_WRITE, 3);
        assert_int_equal(pop(f), 1);
        assert_int_equal(e->head, 3);
        assert_int_equal(e->out_num, 2);
        assert_int_equal(e->in_num, 1);
        assert_int_equal(e->out_len, 30);
        assert_int_equal(e->in_len, 30);
        expect_iov(&e->iov[0], f, DATA_GPA, 10);
        expect_iov(&e->iov[1], f, DATA_GPA + 0x100, 20);
        expect_iov(&e->iov[2], f, DATA_GPA + 0x200, 30);
        assert_int_equal(e->gpa[2], DATA_GPA + 0x200);
        /* An indirect buffer takes one ring slot. */
        assert_int_equal(f->vq.last_avail_idx, 1);
        assert_int_equal(f->vq.inflight_slots[3], 1);
}

/* A table of exactly num entries. */
static void test_indirect_full(void **state)
{
        struct fx *f = *state;

        for (unsigned i = 0; i < NUM; i++)
                put_desc(f, TABLE_GPA, i, DATA_GPA + 0x10 * i, 0x10, 0, i >= NUM / 2 ? F_WRITE : 0);
        drv_add1(f, TABLE_GPA, NUM * 16, F_INDIRECT, 0);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.out_num, NUM / 2);
        assert_int_equal(f->elem.in_num, NUM / 2);
}

/* Tables that cross from R0 into R1, or are not 8-byte aligned, are copied, and still work. */
static void test_indirect_crossing_and_misaligned(void **state)
{
        static const uint64_t tables[] = {R1_GPA - 32, TABLE_GPA + 4};

        for (size_t t = 0; t < ARRAY_SIZE(tables); t++) {
                struct fx *f = *state;

                reset(f, NUM);
                for (unsigned i = 0; i < 4; i++)
                        put_desc(f, tables[t], i, DATA_GPA + 0x100 * i, 8 + i, 0, i == 3 ? F_WRITE : 0);
                drv_add1(f, tables[t], 4 * 16, F_INDIRECT, 1);
                assert_int_equal(pop(f), 1);
                assert_false(f->vq.broken);
                assert_int_equal(f->elem.out_num, 3);
                assert_int_equal(f->elem.out_len, 8 + 9 + 10);
                assert_int_equal(f->elem.in_len, 11);
                for (unsigned i = 0; i < 4; i++)
                        expect_iov(&f->iov[i], f, DATA_GPA + 0x100 * i, 8 + i);
        }
}

/* ---- -ENOBUFS: not broken, nothing consumed ---- */

static void test_enobufs(void **state)
{
        struct fx *f = *state;
        const struct seg s[] = {{DATA_GPA, 10, 0}, {R1_GPA - 4, 8, 0} /* 2 iovecs */, {DATA_GPA + 0x100, 10, F_WRITE}};

        drv_add(f, s, 3, 2);
        for (unsigned max = 0; max < 4; max++) {
                assert_int_equal(vq_pop(&f->vq, &f->elem, max), -ENOBUFS);
                assert_false(f->vq.broken);
                assert_int_equal(f->vq.last_avail_idx, 0);
                assert_int_equal(f->vq.inflight_slots[2], 0);
                assert_int_equal(vq_avail_count(&f->vq), 1);
        }
        assert_int_equal(vq_pop(&f->vq, &f->elem, 4), 1);
        assert_int_equal(f->elem.out_num, 3);
        assert_int_equal(f->elem.in_num, 1);
        assert_int_equal(f->vq.last_avail_idx, 3);
}

static void test_enobufs_indirect(void **state)
{
        struct fx *f = *state;

        for (unsigned i = 0; i < 5; i++)
                put_desc(f, TABLE_GPA, i, DATA_GPA + 0x10 * i, 0x10, 0, 0);
        drv_add1(f, TABLE_GPA, 5 * 16, F_INDIRECT, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, 4), -ENOBUFS);
        assert_false(f->vq.broken);
        assert_int_equal(vq_pop(&f->vq, &f->elem, 5), 1);
        assert_int_equal(f->elem.out_num, 5);
}

/* ---- broken queues ---- */

typedef void build_fn(struct fx *f);

static void b_buf_in_gap(struct fx *f)
{
        drv_add1(f, GAP_GPA + 0x10, 1, 0, 0);
}

static void b_buf_into_gap(struct fx *f)
{
        drv_add1(f, GAP_GPA - 1, 2, 0, 0);
}

static void b_buf_past_ro(struct fx *f)
{
        drv_add1(f, RO_GPA + RO_SIZE, 1, 0, 0);
}

static void b_buf_wraps(struct fx *f)
{
        drv_add1(f, UINT64_MAX - 1, 4, 0, 0);
}

static void b_write_ro(struct fx *f)
{
        const struct seg s[] = {{DATA_GPA, 10, 0}, {RO_GPA + 0x100, 10, F_WRITE}};
        drv_add(f, s, 2, 0);
}

static void b_out_over_4g(struct fx *f)
{
        const struct seg s[] = {{DATA_GPA, 16, 0}, {DATA_GPA, 0xffffffff, 0}};
        drv_add(f, s, 2, 0);
}

static void b_in_over_4g(struct fx *f)
{
        const struct seg s[] = {{DATA_GPA, 1, F_WRITE}, {DATA_GPA, 0xffffffff, F_WRITE}};
        drv_add(f, s, 2, 0);
}

static void b_ind_over_4g(struct fx *f)
{
        put_desc(f, TABLE_GPA, 0, DATA_GPA, 0x10, 0, 0);
        put_desc(f, TABLE_GPA, 1, DATA_GPA, 0xfffffff0, 0, 0);
        drv_add1(f, TABLE_GPA, 2 * 16, F_INDIRECT, 0);
}

static void b_read_after_write(struct fx *f)
{
        const struct seg s[] = {{DATA_GPA, 1, F_WRITE}, {DATA_GPA, 1, 0}};
        drv_add(f, s, 2, 0);
}

static void b_ind_read_after_write(struct fx *f)
{
        put_desc(f, TABLE_GPA, 0, DATA_GPA, 1, 0, F_WRITE);
        put_desc(f, TABLE_GPA, 1, DATA_GPA, 1, 0, 0);
        drv_add1(f, TABLE_GPA, 2 * 16, F_INDIRECT, 0);
}

static void b_id_num(struct fx *f)
{
        drv_add1(f, DATA_GPA, 1, 0, NUM);
}

static void b_id_huge(struct fx *f)
{
        drv_add1(f, DATA_GPA, 1, 0, 0xffff);
}

/* Only the last descriptor's id counts: an out-of-range id earlier in the chain is fine, at the end it is not. */
static void b_chain_id_oob(struct fx *f)
{
        const struct seg s[] = {{DATA_GPA, 1, 0}, {DATA_GPA, 1, 0}};
        drv_add(f, s, 2, 9);
}

static void b_id_twice(struct fx *f)
{
        drv_add1(f, DATA_GPA, 1, 0, 4);
        drv_add1(f, DATA_GPA, 1, 0, 4);
}

static void b_ind_len_odd(struct fx *f)
{
        drv_add1(f, TABLE_GPA, 24, F_INDIRECT, 0);
}

static void b_ind_len_zero(struct fx *f)
{
        drv_add1(f, TABLE_GPA, 0, F_INDIRECT, 0);
}

static void b_ind_nested(struct fx *f)
{
        put_desc(f, TABLE_GPA, 0, DATA_GPA, 1, 0, 0);
        put_desc(f, TABLE_GPA, 1, TABLE_GPA + 0x100, 16, 0, F_INDIRECT);
        drv_add1(f, TABLE_GPA, 2 * 16, F_INDIRECT, 0);
}

static void b_ind_next(struct fx *f)
{
        const struct seg s[] = {{TABLE_GPA, 16, F_INDIRECT}, {DATA_GPA, 16, F_WRITE}};

        put_desc(f, TABLE_GPA, 0, DATA_GPA, 16, 0, 0);
        drv_add(f, s, 2, 0); /* NEXT on the indirect descriptor */
}

static void b_ind_in_chain(struct fx *f)
{
        const struct seg s[] = {{DATA_GPA, 3, 0}, {TABLE_GPA, 16, F_INDIRECT}};

        put_desc(f, TABLE_GPA, 0, DATA_GPA + 0x100, 7, 0, F_WRITE);
        drv_add(f, s, 2, 0); /* legal in split rings, not in packed ones */
}

static void b_ind_too_big(struct fx *f)
{
        drv_add1(f, TABLE_GPA, (NUM + 1) * 16, F_INDIRECT, 0);
}

static void b_ind_huge(struct fx *f)
{
        drv_add1(f, TABLE_GPA, 0xfffffff0, F_INDIRECT, 0);
}

static void b_ind_outside(struct fx *f)
{
        drv_add1(f, GAP_GPA + 0x1000, 32, F_INDIRECT, 0);
}

static void b_ind_into_gap(struct fx *f)
{
        drv_add1(f, GAP_GPA - 16, 32, F_INDIRECT, 0);
}

static void b_ind_buf_outside(struct fx *f)
{
        put_desc(f, TABLE_GPA, 0, GAP_GPA, 8, 0, 0);
        drv_add1(f, TABLE_GPA, 16, F_INDIRECT, 0);
}

/* NEXT on the last descriptor the driver made available: the chain runs into a slot that is not. */
static void b_next_into_unavailable(struct fx *f)
{
        drv_add1(f, DATA_GPA, 1, F_NEXT, 0);
}

/* Slot 1 has the bits of the previous lap (a stale descriptor), though slot 0 chains to it. */
static void b_next_into_stale(struct fx *f)
{
        put_desc(f, DESC_GPA, 1, DATA_GPA, 1, 1, avail_bits(false));
        drv_add1(f, DATA_GPA, 1, F_NEXT, 0);
}

/* Every slot chains to the next: after a lap the chain reaches its own first slot, of the wrong lap (a loop). */
static void b_whole_ring_chain(struct fx *f)
{
        struct seg s[NUM];

        for (unsigned i = 0; i < NUM; i++)
                s[i] = (struct seg){DATA_GPA, 1, 0};
        drv_add(f, s, NUM, 0);
        /* and NEXT on the last one too */
        desc_at(f, DESC_GPA, NUM - 1)->flags |= htole16(F_NEXT);
}

/* The second buffer is the bad one: the first pops fine. */
static void b_second_chain(struct fx *f)
{
        drv_add1(f, DATA_GPA, 1, 0, 0);
        drv_add1(f, DATA_GPA, 1, 0, NUM + 3);
}

struct broken_case {
        const char *what;
        build_fn *build;
        const char *reason;
        unsigned good_before; /* chains that pop fine first */
};

static const struct broken_case broken_cases[] = {
        {"buffer in the gap", b_buf_in_gap, "outside guest memory", 0},
        {"buffer running into the gap", b_buf_into_gap, "outside guest memory", 0},
        {"buffer one past read-only memory", b_buf_past_ro, "outside guest memory", 0},
        {"buffer wrapping the address space", b_buf_wraps, "outside guest memory", 0},
        {"writable buffer in read-only memory", b_write_ro, "outside writable guest memory", 0},
        {"readable total over 4 GiB", b_out_over_4g, "over 4 GiB", 0},
        {"writable total over 4 GiB", b_in_over_4g, "over 4 GiB", 0},
        {"indirect total over 4 GiB", b_ind_over_4g, "over 4 GiB", 0},
        {"readable after writable", b_read_after_write, "readable descriptor after a writable", 0},
        {"readable after writable (indirect)", b_ind_read_after_write, "readable descriptor after a writable", 0},
        {"id == num", b_id_num, "buffer id 8 >= ring size 8", 0},
        {"id 0xffff", b_id_huge, "buffer id 65535", 0},
        {"last id of a chain out of range", b_chain_id_oob, "buffer id 9 >= ring size 8", 0},
        {"id used twice", b_id_twice, "buffer id 4 is already in use", 1},
        {"indirect length 24", b_ind_len_odd, "not a multiple of 16", 0},
        {"indirect length 0", b_ind_len_zero, "indirect table length 0", 0},
        {"nested indirect", b_ind_nested, "nested indirect", 0},
        {"INDIRECT|NEXT", b_ind_next, "also has NEXT", 0},
        {"indirect after a direct descriptor", b_ind_in_chain, "indirect descriptor inside a chain", 0},
        {"indirect table of num + 1", b_ind_too_big, "exceeds queue size", 0},
        {"indirect table of 4 GiB", b_ind_huge, "exceeds queue size", 0},
        {"indirect table outside memory", b_ind_outside, "indirect table at 0x", 0},
        {"indirect table running into the gap", b_ind_into_gap, "outside guest memory", 0},
        {"buffer of an indirect table outside memory", b_ind_buf_outside, "buffer 0x210000+8 is outside", 0},
        {"NEXT into a slot not made available", b_next_into_unavailable, "continues into slot 1", 0},
        {"NEXT into a stale slot", b_next_into_stale, "continues into slot 1, which is not available", 0},
        {"chain around the whole ring", b_whole_ring_chain, "continues into slot 0", 0},
        {"second chain bad", b_second_chain, "buffer id 11", 1},
};

static void test_broken(void **state)
{
        struct fx *f = *state;

        for (size_t i = 0; i < ARRAY_SIZE(broken_cases); i++) {
                const struct broken_case *c = &broken_cases[i];
                int r;

                reset(f, NUM);
                c->build(f);
                for (unsigned g = 0; g < c->good_before; g++)
                        assert_int_equal(pop(f), 1);
                uint16_t before = f->vq.last_avail_idx;
                bool wrap_before = f->vq.avail_wrap;
                r = pop(f);
                if (r >= 0 || !f->vq.broken || !strstr(f->vq.broken_reason, c->reason))
                        print_error("case '%s': ret %d, broken %d, reason '%s' (expected '%s')\n", c->what, r,
                                    f->vq.broken, f->vq.broken_reason, c->reason);
                assert_true(r < 0);
                assert_int_not_equal(r, -ENOBUFS);
                assert_true(f->vq.broken);
                assert_non_null(strstr(f->vq.broken_reason, c->reason));
                assert_int_equal(f->vq.last_avail_idx, before);
                assert_int_equal(f->vq.avail_wrap, wrap_before);
                /* It stays broken: no more chains, whatever the guest does. */
                assert_true(pop(f) < 0);
                assert_int_equal(vq_avail_count(&f->vq), 0);
                drv_add1(f, DATA_GPA, 1, 0, 7);
                assert_true(pop(f) < 0);
                assert_int_equal(f->vq.last_avail_idx, before);
        }
}

/* A broken queue does not affect another queue on the same memory. */
static void test_broken_isolated(void **state)
{
        struct fx *f = *state;
        struct vq other = {0};
        uint16_t id;
        uint32_t len;

        init_vq(f, &other, 3, DESC2_GPA, DRIVER2_GPA, DEVICE2_GPA);
        b_ind_nested(f);
        assert_true(pop(f) < 0);
        assert_true(f->vq.broken);

        drv_init(&f->d, DESC2_GPA, 3);
        drv_add1(f, DATA_GPA, 64, F_WRITE, 2);
        assert_int_equal(vq_pop(&other, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(f->elem.head, 2);
        assert_int_equal(f->elem.in_len, 64);
        vq_push(&other, 2, 64);
        vq_publish(&other);
        assert_true(drv_used(f, &id, &len));
        assert_int_equal(id, 2);
        assert_int_equal(len, 64);
        assert_false(other.broken);
        assert_true(pop(f) < 0);
        vq_free(&other);
}

/* In big rings chains are capped at 4096 descriptors (VQ_CHAIN_LEN_MAX). */
static void test_chain_cap_big_ring(void **state)
{
        struct fx *f = *state;
        static struct seg s[4097];

        for (unsigned i = 0; i < ARRAY_SIZE(s); i++)
                s[i] = (struct seg){DATA_GPA, 0, 0};
        for (unsigned len = 4096; len <= 4097; len++) {
                reset(f, 8192);
                drv_add(f, s, len, 1);
                int r = pop(f);
                if (len == 4096) {
                        assert_int_equal(r, 1);
                        assert_int_equal(f->vq.last_avail_idx, 4096);
                } else {
                        assert_true(r < 0);
                        assert_non_null(strstr(f->vq.broken_reason, "longer than 4096"));
                }
        }
}

/* ---- push, publish, unpop ---- */

static void test_push_batch(void **state)
{
        struct fx *f = *state;
        const struct seg two[] = {{DATA_GPA, 8, F_WRITE}, {DATA_GPA + 0x100, 8, F_WRITE}};
        struct vring_packed_desc before[5];
        uint16_t id;
        uint32_t len;

        drv_add(f, two, 2, 3);                        /* slots 0, 1 */
        drv_add1(f, DATA_GPA + 0x200, 8, F_WRITE, 0); /* slot 2 */
        drv_add(f, two, 2, 7);                        /* slots 3, 4 */
        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(pop(f), 1);
        memcpy(before, desc_at(f, DESC_GPA, 0), sizeof(before));
        vq_push(&f->vq, 3, 11);
        vq_push(&f->vq, 0, 22);
        vq_push(&f->vq, 7, 0xfffffffe);
        /* Nothing is written before the publish: the driver sees nothing yet. */
        assert_memory_equal(desc_at(f, DESC_GPA, 0), before, sizeof(before));
        assert_false(drv_used(f, &id, &len));
        /* The chain of 2 took 2 slots: used descriptors are at slots 0, 2, 3; used_idx moved by 5. */
        assert_int_equal(f->vq.used_idx, 5);
        assert_int_equal(f->vq.unpublished, 5);
        vq_publish(&f->vq);
        assert_int_equal(f->vq.unpublished, 0);
        assert_int_equal(desc_flags(f, DESC_GPA, 0), F_AVAIL | F_USED | F_WRITE);
        /* Slot 1 (the second descriptor of the first chain) is skipped, left as the driver wrote it. */
        assert_int_equal(desc_flags(f, DESC_GPA, 1), F_AVAIL | F_WRITE);
        assert_true(drv_used(f, &id, &len));
        assert_int_equal(id, 3);
        assert_int_equal(len, 11);
        assert_true(drv_used(f, &id, &len));
        assert_int_equal(id, 0);
        assert_int_equal(len, 22);
        assert_true(drv_used(f, &id, &len));
        assert_int_equal(id, 7);
        assert_int_equal(len, 0xfffffffe);
        assert_false(drv_used(f, &id, &len));
        /* Publishing nothing changes nothing. */
        vq_publish(&f->vq);
        assert_false(drv_used(f, &id, &len));
        assert_false(f->vq.broken);
}

/*
 * A driver that makes slots available again before we published them as used (it cannot know they are) lets us
 * push more than a ring of used descriptors between publishes: the pending ones are published first, nothing
 * overflows and the queue goes on.
 */
static void test_push_more_than_ring(void **state)
{
        struct fx *f = *state;

        reset(f, 2);
        drv_add1(f, DATA_GPA, 8, F_WRITE, 0);
        drv_add1(f, DATA_GPA + 0x100, 8, F_WRITE, 1);
        assert_int_equal(pop(f), 1);
        assert_int_equal(pop(f), 1);
        vq_push(&f->vq, 0, 8);
        vq_push(&f->vq, 1, 8);
        assert_int_equal(f->vq.unpublished, 2);
        /* The same slots again, a lap on: ids 0 and 1 are no longer in flight. */
        drv_add1(f, DATA_GPA, 8, F_WRITE, 0);
        drv_add1(f, DATA_GPA + 0x100, 8, F_WRITE, 1);
        assert_int_equal(pop(f), 1);
        assert_int_equal(pop(f), 1);
        vq_push(&f->vq, 0, 4);
        /* The first two were published to make room: slot 1 holds id 1, used in the first lap. */
        assert_int_equal(f->vq.unpublished, 1);
        assert_int_equal(le16toh(desc_at(f, DESC_GPA, 1)->id), 1);
        assert_int_equal(desc_flags(f, DESC_GPA, 1), F_AVAIL | F_USED | F_WRITE);
        vq_push(&f->vq, 1, 4);
        vq_publish(&f->vq);
        assert_int_equal(f->vq.unpublished, 0);
        assert_int_equal(desc_flags(f, DESC_GPA, 0), F_WRITE);
        assert_int_equal(le32toh(desc_at(f, DESC_GPA, 1)->len), 4);
        assert_false(f->vq.broken);
}

/* Handing back what was not popped, or twice, is a bug of ours: it breaks the queue, it writes nothing. */
static void test_push_not_in_flight(void **state)
{
        struct fx *f = *state;

        drv_add1(f, DATA_GPA, 8, F_WRITE, 1);
        assert_int_equal(pop(f), 1);
        vq_push(&f->vq, 1, 8);
        assert_false(f->vq.broken);
        vq_push(&f->vq, 1, 8);
        assert_true(f->vq.broken);
        assert_non_null(strstr(f->vq.broken_reason, "buffer id 1, which is not in flight"));
        assert_int_equal(f->vq.used_idx, 1);

        reset(f, NUM);
        vq_push(&f->vq, NUM, 0);
        assert_true(f->vq.broken);
        assert_int_equal(f->vq.used_idx, 0);
}

static void test_unpop(void **state)
{
        struct fx *f = *state;
        const struct seg two[] = {{DATA_GPA, 8, 0}, {DATA_GPA + 0x100, 8, 0}};

        /* Start at slot 3 of a ring of 4: A takes slots 3 and 0 (across the end), B slot 1, C slot 2. */
        reset(f, 4);
        start_at(f, 3, true, 3, true);
        drv_add(f, two, 2, 0);
        drv_add1(f, DATA_GPA, 8, 0, 1);
        drv_add1(f, DATA_GPA, 8, 0, 2);
        assert_int_equal(vq_avail_count(&f->vq), 3);
        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(pop(f), 1);
        assert_int_equal(f->vq.last_avail_idx, 3);
        assert_false(f->vq.avail_wrap);
        vq_unpop(&f->vq, 1);
        assert_int_equal(f->vq.last_avail_idx, 2);
        assert_false(f->vq.avail_wrap);
        assert_int_equal(f->vq.inflight_slots[2], 0);
        vq_unpop(&f->vq, 2);
        assert_int_equal(f->vq.last_avail_idx, 3);
        assert_true(f->vq.avail_wrap);
        assert_int_equal(vq_avail_count(&f->vq), 3);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.head, 0);
        assert_int_equal(f->elem.out_len, 16);
        assert_int_equal(f->vq.last_avail_idx, 1);
        assert_false(f->vq.avail_wrap);
        vq_unpop(&f->vq, 0);
        assert_int_equal(f->vq.last_avail_idx, 1);

        /* A pushed chain can no longer be given back: only B and C can. */
        assert_int_equal(pop(f), 1);
        assert_int_equal(pop(f), 1);
        vq_push(&f->vq, 0, 0);
        vq_unpop(&f->vq, 2);
        assert_false(f->vq.broken);
        assert_int_equal(f->vq.last_avail_idx, 1);
        vq_unpop(&f->vq, 1);
        assert_true(f->vq.broken);
        assert_non_null(strstr(f->vq.broken_reason, "gave back 1 chains, but only 0"));
}

/*
 * The driver fills the ring with chains of 1 to 3 descriptors (ids: their first slot), the device pops them all,
 * hands them back in order and publishes; the driver reads them back. Several laps, so both wrap counters flip
 * several times and chains cross the end of the ring. Checks what the driver sees at each step.
 */
static uint32_t laps_len(unsigned chain, uint16_t id, bool in_order)
{
        /* In order: mostly transmitted chains (length 0, which share used descriptors), a written one now and then. */
        return in_order ? (chain % 4 == 3 ? id + 1000u : 0) : id + 1000u;
}

/*
 * Reads the used descriptors like an IN_ORDER driver: one names the last buffer of a batch, every buffer before it
 * in the order they were made available is used too, with length 0. Returns the buffers taken back.
 */
static unsigned drv_used_in_order(struct fx *f, const uint16_t *fifo, const uint32_t *lens, unsigned count)
{
        unsigned got = 0;
        uint16_t id;
        uint32_t len;

        for (;;) {
                struct vring_packed_desc *p = desc_at(f, f->d.ring, f->d.used);
                uint16_t flags = le16toh(__atomic_load_n(&p->flags, __ATOMIC_ACQUIRE));

                if (got == count || !!(flags & F_AVAIL) != f->d.used_wrap || !!(flags & F_USED) != f->d.used_wrap)
                        return got;
                id = le16toh(p->id);
                len = le32toh(p->len);
                f->d.entries++;
                while (got < count && fifo[got] != id) {
                        assert_int_equal(lens[got], 0); /* only length-0 buffers may go without their own entry */
                        drv_consume(&f->d, fifo[got++]);
                }
                assert_true(got < count);
                assert_int_equal(len, lens[got]);
                drv_consume(&f->d, fifo[got++]);
        }
}

static void run_laps(struct fx *f, unsigned num, unsigned laps, bool in_order)
{
        uint16_t *fifo = calloc(num, sizeof(*fifo));
        unsigned outstanding = 0, total = 0, seq = 0, flips = 0;
        bool used_wrap_before = true;

        uint32_t *lens = calloc(num, sizeof(*lens));
        unsigned chains = 0;

        assert_non_null(fifo);
        assert_non_null(lens);
        reset(f, num);
        f->vq.in_order = in_order;
        while (total < laps * num + num / 2 + 1) {
                unsigned added = 0, popped = 0, got = 0;
                uint16_t id;
                uint32_t len;
                int r;

                /* The driver adds up to 5 chains while they fit. */
                for (;;) {
                        unsigned n = 1 + seq % 3;
                        struct seg s[3];

                        if (n > num)
                                n = num;
                        if (num - outstanding < n || added == 5)
                                break;
                        for (unsigned i = 0; i < n; i++)
                                s[i] = (struct seg){DATA_GPA + 0x40 * ((seq + i) % 64), 0x40, i ? F_WRITE : 0};
                        fifo[added++] = f->d.next;
                        drv_add(f, s, n, f->d.next);
                        outstanding += n;
                        seq++;
                }
                assert_int_equal(vq_avail_count(&f->vq), added);
                while ((r = pop(f)) == 1) {
                        assert_int_equal(f->elem.head, fifo[popped]);
                        assert_int_equal(f->elem.out_num + f->elem.in_num, f->d.slots[fifo[popped]]);
                        popped++;
                }
                assert_int_equal(r, 0);
                assert_false(f->vq.broken);
                assert_int_equal(popped, added);
                assert_int_equal(f->vq.last_avail_idx, f->d.next);
                assert_int_equal(f->vq.avail_wrap, f->d.wrap);
                for (unsigned i = 0; i < popped; i++) {
                        lens[i] = laps_len(chains++, fifo[i], in_order);
                        vq_push(&f->vq, fifo[i], lens[i]);
                }
                if (popped)
                        assert_false(drv_used(f, &id, &len));
                vq_publish(&f->vq);
                if (in_order) {
                        got = drv_used_in_order(f, fifo, lens, popped);
                } else {
                        while (drv_used(f, &id, &len)) {
                                assert_true(got < popped);
                                assert_int_equal(id, fifo[got]);
                                assert_int_equal(len, lens[got]);
                                got++;
                        }
                }
                assert_int_equal(got, popped);
                assert_int_equal(f->vq.used_idx, f->d.used);
                assert_int_equal(f->vq.used_wrap, f->d.used_wrap);
                assert_int_equal(f->d.used, f->d.next);
                if (f->d.used_wrap != used_wrap_before)
                        flips++;
                used_wrap_before = f->d.used_wrap;
                total += outstanding;
                outstanding = 0;
        }
        if (flips < laps)
                print_error("num %u: %u flips for %u laps\n", num, flips, laps);
        assert_true(flips >= laps);
        assert_false(f->vq.broken);
        /* In order, runs of length-0 buffers shared descriptors: fewer written than buffers used. */
        if (in_order && num >= 8 && f->d.entries * 3 > chains * 2)
                fail_msg("num %u: %u used descriptors for %u buffers", num, f->d.entries, chains);
        free(lens);
        free(fifo);
}

static const unsigned lap_sizes[] = {1, 2, 3, 5, 7, 8, 100, 256, 1000, 32767, 32768};

static void test_wrap_sizes(void **state)
{
        for (size_t i = 0; i < ARRAY_SIZE(lap_sizes); i++)
                run_laps(*state, lap_sizes[i], 3, false);
}

/* IN_ORDER: the same laps, most buffers handed back in batches that write one used descriptor. */
static void test_in_order_laps(void **state)
{
        for (size_t i = 0; i < ARRAY_SIZE(lap_sizes); i++)
                run_laps(*state, lap_sizes[i], 3, true);
}

/* ---- SET/GET_VRING_BASE ---- */

/*
 * After its back-end died QEMU sends base 0/wrap 1; vq_resume() reads the position from the ring: where the USED
 * bit first changes (behind the device in lap X every slot has USED == X).
 */
static void test_resume_after_crash(void **state)
{
        struct fx *f = *state;
        const uint16_t A = VRING_PACKED_DESC_F_AVAIL, U = VRING_PACKED_DESC_F_USED;
        static const struct {
                const char *what;
                uint16_t flags[NUM];
                int ret;
                uint16_t slot;
                bool wrap;
        } cases[] = {
                {"fresh ring, all zero", {0}, -1, 0, true},
                {"fresh ring, driver filled it", {A, A, A, A, A, A, A, A}, -1, 0, true},
                {"lap 1 at slot 3 (tx: used, then not available yet)",
                 {A | U, A | U, A | U, 0, 0, 0, 0, 0},
                 0,
                 3,
                 true},
                {"lap 1 at slot 3 (rx: refilled behind us)", {U, U, U, A, A, A, A, A}, 0, 3, true},
                {"lap 0 at slot 5", {0, A, 0, A, 0, U, A | U, U}, 0, 5, false},
                {"lap 1 complete, lap 0 not begun", {A | U, U, A | U, U, A | U, U, A | U, U}, 0, 0, false},
                {"lap 0 complete, in lap 1 at slot 0", {0, A, 0, A, 0, A, 0, A}, -1, 0, true},
        };
        const char *why;

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                reset(f, NUM);
                for (unsigned k = 0; k < NUM; k++)
                        put_desc(f, DESC_GPA, k, DATA_GPA, 1, (uint16_t)k, cases[i].flags[k]);
                assert_int_equal(vq_packed_set_base(&f->vq, 0x80008000, &why), 0);
                int ret = vq_resume(&f->vq);
                if (ret != cases[i].ret || f->vq.last_avail_idx != cases[i].slot || f->vq.avail_wrap != cases[i].wrap)
                        print_error("%s: %d at %u/%d\n", cases[i].what, ret, f->vq.last_avail_idx, f->vq.avail_wrap);
                assert_int_equal(ret, cases[i].ret);
                assert_int_equal(f->vq.last_avail_idx, cases[i].slot);
                assert_int_equal(f->vq.avail_wrap, cases[i].wrap);
                assert_int_equal(f->vq.used_idx, cases[i].slot);
                assert_int_equal(f->vq.used_wrap, cases[i].wrap);
        }
        /* A base the front-end knew (GET_VRING_BASE answered) is kept whatever the flags say. */
        reset(f, NUM);
        for (unsigned k = 0; k < NUM; k++)
                put_desc(f, DESC_GPA, k, DATA_GPA, 1, (uint16_t)k, A | U);
        assert_int_equal(vq_packed_set_base(&f->vq, 0x80028002, &why), 0);
        assert_int_equal(vq_resume(&f->vq), -1);
        assert_int_equal(f->vq.last_avail_idx, 2);
        assert_true(f->vq.avail_wrap);

        /*
         * 0/wrap 1 after a stop on this connection (an even number of laps of 2-slot chains): slot 0 used in lap 0,
         * slot 1 still the driver's lap-0 tail (AVAIL 0, USED 1). The scan would stop at slot 1; the base is kept.
         */
        reset(f, NUM);
        for (unsigned k = 0; k < NUM; k++)
                put_desc(f, DESC_GPA, k, DATA_GPA, 1, (uint16_t)k, k % 2 ? U : 0);
        f->vq.base_exact = true;
        assert_int_equal(vq_packed_set_base(&f->vq, 0x80008000, &why), 0);
        assert_int_equal(vq_resume(&f->vq), -1);
        assert_int_equal(f->vq.last_avail_idx, 0);
        assert_true(f->vq.avail_wrap);
        assert_int_equal(f->vq.used_idx, 0);
        assert_true(f->vq.used_wrap);
}

static void test_base_round_trip(void **state)
{
        struct fx *f = *state;
        static const uint32_t bases[] = {
                0x80008000, /* fresh ring: both counters 1, slots 0 */
                0x00000000, 0x80058003, 0x00058003, 0x80050003, 0x00070007, 0x80078007,
        };
        const char *why = NULL;

        assert_int_equal(vq_packed_get_base(&f->vq), 0x80008000);
        for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
                assert_int_equal(vq_packed_set_base(&f->vq, bases[i], &why), 0);
                assert_int_equal(vq_packed_get_base(&f->vq), bases[i]);
                assert_int_equal(f->vq.last_avail_idx, bases[i] & 0x7fff);
                assert_int_equal(f->vq.avail_wrap, !!(bases[i] & 0x8000));
                assert_int_equal(f->vq.used_idx, (bases[i] >> 16) & 0x7fff);
                assert_int_equal(f->vq.used_wrap, !!(bases[i] & 0x80000000));
        }
        /* Slots must be inside the ring. */
        assert_int_equal(vq_packed_set_base(&f->vq, 0x8008, &why), -EINVAL);
        assert_non_null(strstr(why, "beyond the ring size"));
        assert_int_equal(vq_packed_set_base(&f->vq, 0x00080000, &why), -EINVAL);
        assert_int_equal(vq_packed_get_base(&f->vq), 0x80078007); /* unchanged */

        /* The biggest ring: slot 32767 in both halves. */
        reset(f, 32768);
        assert_int_equal(vq_packed_set_base(&f->vq, 0xffffffff, &why), 0);
        assert_int_equal(f->vq.last_avail_idx, 32767);
        assert_int_equal(f->vq.used_idx, 32767);
        assert_int_equal(vq_packed_get_base(&f->vq), 0xffffffff);
        assert_int_equal(vq_packed_set_base(&f->vq, 0x7fff7fff, &why), 0);
        assert_int_equal(vq_packed_get_base(&f->vq), 0x7fff7fff);

        /* What the device stopped at is where it resumes: pop, stop, restart at the same base. */
        reset(f, NUM);
        drv_add1(f, DATA_GPA, 1, 0, 0);
        drv_add1(f, DATA_GPA, 1, 0, 1);
        assert_int_equal(pop(f), 1);
        vq_push(&f->vq, 0, 0);
        vq_publish(&f->vq);
        uint32_t base = vq_packed_get_base(&f->vq);
        assert_int_equal(base, 0x80018001);
        init_vq(f, &f->vq, NUM, DESC_GPA, DRIVER_GPA, DEVICE_GPA);
        assert_int_equal(vq_packed_set_base(&f->vq, base, &why), 0);
        assert_int_equal(pop(f), 1);
        assert_int_equal(f->elem.head, 1);

        /* A split queue, or one without a size, has no packed base. */
        struct vq split = {0};
        assert_int_equal(vq_packed_set_base(&split, 0, &why), -EINVAL);
}

/* ---- notifications ---- */

static void test_should_call_flags(void **state)
{
        struct fx *f = *state;

        f->vq.event_idx = false;
        driver_event_set(f, RING_EVENT_FLAGS_ENABLE, 0, true);
        assert_true(vq_should_call(&f->vq));
        assert_true(vq_should_call(&f->vq));
        driver_event_set(f, RING_EVENT_FLAGS_DISABLE, 0, true);
        assert_false(vq_should_call(&f->vq));
        /* DESC is only valid with EVENT_IDX: without it, calling is the safe answer; so is the reserved 3. */
        driver_event_set(f, RING_EVENT_FLAGS_DESC, 5, true);
        assert_true(vq_should_call(&f->vq));
        driver_event_set(f, 3, 5, true);
        assert_true(vq_should_call(&f->vq));
        /* With EVENT_IDX, ENABLE and DISABLE still mean what they say. */
        f->vq.event_idx = true;
        driver_event_set(f, RING_EVENT_FLAGS_DISABLE, 0, true);
        assert_false(vq_should_call(&f->vq));
        driver_event_set(f, RING_EVENT_FLAGS_ENABLE, 0, true);
        assert_true(vq_should_call(&f->vq));
}

struct call_case {
        uint16_t old;
        bool old_wrap;
        uint16_t new_idx;
        bool new_wrap;
        uint16_t off;
        bool off_wrap;
        bool call;
};

/* num = 8: call when the driver's (off, wrap) is one of the used slots written since the last call. */
static const struct call_case call_cases[] = {
        {0, 1, 3, 1, 0, 1, true},
        {0, 1, 3, 1, 2, 1, true},
        {0, 1, 3, 1, 3, 1, false}, /* not written yet */
        {0, 1, 3, 1, 7, 1, false},
        {0, 1, 3, 1, 7, 0, false}, /* the previous lap, before old */
        {0, 1, 3, 1, 1, 0, false}, /* slot 1 of the previous lap (or the next): not now */
        {2, 1, 3, 1, 1, 1, false},
        {3, 1, 3, 1, 3, 1, false}, /* nothing new */
        {3, 1, 3, 1, 2, 1, false},
        /* across the end of the ring: slots 6, 7 of lap 1, then 0, 1 of lap 0 */
        {6, 1, 2, 0, 5, 1, false},
        {6, 1, 2, 0, 6, 1, true},
        {6, 1, 2, 0, 7, 1, true},
        {6, 1, 2, 0, 0, 0, true},
        {6, 1, 2, 0, 1, 0, true},
        {6, 1, 2, 0, 2, 0, false},
        {6, 1, 2, 0, 6, 0, false}, /* slot 6 of lap 0 is in the future */
        {6, 1, 2, 0, 0, 1, false}, /* slot 0 of lap 1 was before old */
        /* counters start at 1, flip to 0, then back to 1 */
        {7, 0, 1, 1, 7, 0, true},
        {7, 0, 1, 1, 0, 1, true},
        {7, 0, 1, 1, 1, 1, false},
        {7, 0, 1, 1, 7, 1, false},
        /* exactly a lap since the last call: slots 3..7 of lap 1 and 0..2 of lap 0 */
        {3, 1, 3, 0, 2, 0, true},
        {3, 1, 3, 0, 3, 1, true},
        {3, 1, 3, 0, 3, 0, false},
        /* more than a lap since the last call (14 slots): always a call, whatever the event (safe) */
        {5, 1, 3, 1, 4, 0, true},
        {5, 1, 3, 1, 4, 1, true},
        {5, 1, 3, 1, 2, 1, true},
};

static void test_should_call_desc(void **state)
{
        struct fx *f = *state;

        f->vq.event_idx = true;
        /* The first decision after start always calls. */
        driver_event_set(f, RING_EVENT_FLAGS_DESC, 1000 & 0x7fff, false);
        assert_true(vq_should_call(&f->vq));
        assert_true(f->vq.signalled_used_valid);
        assert_int_equal(f->vq.used_since_call, 0);
        assert_false(vq_should_call(&f->vq));

        for (size_t i = 0; i < ARRAY_SIZE(call_cases); i++) {
                const struct call_case *c = &call_cases[i];
                bool got;

                /* Slots used since the last call: from (old, old_wrap) to (new_idx, new_wrap), more than a lap
                 * in the last cases (same wrap, old past new). */
                unsigned since = c->new_idx + (c->old_wrap != c->new_wrap ? 8u : 0u) - c->old;

                if (c->old_wrap == c->new_wrap && c->old > c->new_idx)
                        since += 16;
                f->vq.used_since_call = since;
                f->vq.signalled_used_valid = true;
                f->vq.used_idx = c->new_idx;
                f->vq.used_wrap = c->new_wrap;
                driver_event_set(f, RING_EVENT_FLAGS_DESC, c->off, c->off_wrap);
                got = vq_should_call(&f->vq);
                if (got != c->call)
                        print_error("old %u/%d new %u/%d event %u/%d: got %d\n", c->old, c->old_wrap, c->new_idx,
                                    c->new_wrap, c->off, c->off_wrap, got);
                assert_int_equal(got, c->call);
                assert_int_equal(f->vq.used_since_call, 0);
        }
}

/* Through real pushes: the driver asks for a call when slot 1 of the next lap is used (as Linux's delayed cb). */
static void test_should_call_desc_pushes(void **state)
{
        struct fx *f = *state;
        unsigned calls = 0;

        f->vq.event_idx = true;
        assert_true(vq_should_call(&f->vq)); /* first: always */
        driver_event_set(f, RING_EVENT_FLAGS_DESC, 1, false);
        for (unsigned lap = 0; lap < 3; lap++) {
                for (unsigned i = 0; i < NUM; i++) {
                        bool expect = lap == 1 && i == 1, got;
                        uint16_t id;
                        uint32_t len;

                        drv_add1(f, DATA_GPA, 1, 0, (uint16_t)i);
                        assert_int_equal(pop(f), 1);
                        vq_push(&f->vq, (uint16_t)i, 0);
                        vq_publish(&f->vq);
                        got = vq_should_call(&f->vq);
                        if (got != expect)
                                print_error("lap %u slot %u: got %d\n", lap, i, got);
                        assert_int_equal(got, expect);
                        calls += got;
                        assert_false(vq_should_call(&f->vq)); /* nothing new since */
                        assert_true(drv_used(f, &id, &len));
                }
        }
        /* Lap 2 has the wrap counter of lap 0 again, but slot 1 of it is not what the driver asked for. */
        assert_int_equal(calls, 1);
}

static void test_notify_flags(void **state)
{
        struct fx *f = *state;

        f->vq.event_idx = false;
        assert_false(vq_enable_notify(&f->vq));
        assert_int_equal(device_flags(f), RING_EVENT_FLAGS_ENABLE);
        vq_disable_notify(&f->vq);
        assert_int_equal(device_flags(f), RING_EVENT_FLAGS_DISABLE);
        vq_disable_notify(&f->vq);
        assert_int_equal(device_flags(f), RING_EVENT_FLAGS_DISABLE);
        /* More arrived while kicks were off. */
        drv_add1(f, DATA_GPA, 1, 0, 0);
        assert_true(vq_enable_notify(&f->vq));
        assert_int_equal(device_flags(f), RING_EVENT_FLAGS_ENABLE);
        assert_int_equal(device_off_wrap(f), 0); /* not touched without EVENT_IDX */
}

static void test_notify_event_idx(void **state)
{
        struct fx *f = *state;

        f->vq.event_idx = true;
        assert_false(vq_enable_notify(&f->vq));
        assert_int_equal(device_flags(f), RING_EVENT_FLAGS_DESC);
        assert_int_equal(device_off_wrap(f), 0x8000); /* slot 0, wrap counter 1 */
        vq_disable_notify(&f->vq);
        assert_int_equal(device_flags(f), RING_EVENT_FLAGS_DISABLE);
        /* After a lap and 3 more slots: slot 3, wrap counter 0. */
        for (unsigned i = 0; i < NUM + 3; i++) {
                drv_add1(f, DATA_GPA, 1, 0, 0);
                assert_int_equal(pop(f), 1);
                vq_push(&f->vq, 0, 0);
                vq_publish(&f->vq);
                uint16_t id;
                uint32_t len;
                assert_true(drv_used(f, &id, &len));
        }
        assert_false(vq_enable_notify(&f->vq));
        assert_int_equal(device_flags(f), RING_EVENT_FLAGS_DESC);
        assert_int_equal(device_off_wrap(f), 3);
        drv_add1(f, DATA_GPA, 1, 0, 0);
        assert_true(vq_enable_notify(&f->vq));
}

/* ---- dirty logging ---- */

#define LOG_BYTES 4096 /* covers gpa [0, 128 MiB) */
#define PAGE 4096ull

static bool bit(const uint8_t *log, uint64_t page)
{
        return log[page / 8] & (1u << (page % 8));
}

static unsigned count_bits(const uint8_t *log)
{
        unsigned n = 0;

        for (unsigned i = 0; i < LOG_BYTES; i++)
                n += (unsigned)__builtin_popcount(log[i]);
        return n;
}

static void test_log_used_descriptors(void **state)
{
        struct fx *f = *state;
        static uint8_t bits[LOG_BYTES];
        struct vq_log log;
        const char *why = NULL;
        const struct seg s[] = {{DATA_GPA, 16, 0}, {DATA_GPA + 3 * PAGE - 8, 16, F_WRITE}};

        /* 512 descriptors are 2 pages: the ring's pages are DESC_GPA and DESC_GPA + 4096. */
        reset(f, 512);
        vlog_init(&log, bits, sizeof(bits));
        assert_int_equal(vq_set_log(&f->vq, &log, true, DEVICE_GPA, &why), 0);
        start_at(f, 510, true, 510, true);

        /* Two chains of 2, in slots 510, 511 and 0, 1; the written bytes straddle two data pages. */
        drv_add(f, s, 2, 7);
        drv_add(f, s, 2, 9);
        assert_int_equal(pop(f), 1);
        memset(bits, 0, sizeof(bits));
        vq_push_elem(&f->vq, &f->elem, 16);
        /* The written buffer is marked at push; the used descriptor not before publish. */
        assert_true(bit(bits, (DATA_GPA + 3 * PAGE - 8) / PAGE));
        assert_true(bit(bits, (DATA_GPA + 3 * PAGE) / PAGE));
        assert_int_equal(count_bits(bits), 2);
        assert_int_equal(pop(f), 1);
        vq_push(&f->vq, 9, 0);
        vq_publish(&f->vq);
        /* Used slots 510 .. 1 (wrapping): the ring's last page and its first. */
        assert_true(bit(bits, (DESC_GPA + 16 * 510) / PAGE));
        assert_true(bit(bits, DESC_GPA / PAGE));
        assert_int_equal(count_bits(bits), 4);

        /* The device event area is marked where it is written. */
        memset(bits, 0, sizeof(bits));
        vq_enable_notify(&f->vq);
        assert_true(bit(bits, DEVICE_GPA / PAGE));
        assert_int_equal(count_bits(bits), 1);
        memset(bits, 0, sizeof(bits));
        vq_disable_notify(&f->vq);
        assert_true(bit(bits, DEVICE_GPA / PAGE));
        assert_int_equal(count_bits(bits), 1);

        /* vq_log_elem() alone marks the buffer, not the ring. */
        memset(bits, 0, sizeof(bits));
        drv_add1(f, DATA_GPA + 5 * PAGE, 100, F_WRITE, 1);
        assert_int_equal(pop(f), 1);
        vq_log_elem(&f->vq, &f->elem, 50);
        assert_true(bit(bits, (DATA_GPA + 5 * PAGE) / PAGE));
        assert_int_equal(count_bits(bits), 1);

        /* Without log_used, ring writes are not marked; written buffers still are. */
        memset(bits, 0, sizeof(bits));
        assert_int_equal(vq_set_log(&f->vq, &log, false, 0, &why), 0);
        vq_push_elem(&f->vq, &f->elem, 50);
        vq_publish(&f->vq);
        assert_int_equal(count_bits(bits), 1);
        assert_false(f->vq.broken);

        /* Logging off: nothing. */
        memset(bits, 0, sizeof(bits));
        assert_int_equal(vq_set_log(&f->vq, NULL, false, 0, &why), 0);
        drv_add1(f, DATA_GPA, 8, F_WRITE, 2);
        assert_int_equal(pop(f), 1);
        vq_push_elem(&f->vq, &f->elem, 8);
        vq_publish(&f->vq);
        assert_int_equal(count_bits(bits), 0);
}

static void test_log_too_small(void **state)
{
        struct fx *f = *state;
        static uint8_t bits[LOG_BYTES];
        struct vq_log small, log;
        const char *why = NULL;

        /* A log covering the pages below DESC_GPA + 1 page only. */
        vlog_init(&small, bits, (DESC_GPA / PAGE + 1) / 8 + 1);
        vlog_init(&log, bits, sizeof(bits));
        assert_int_equal(vq_set_log(&f->vq, &small, true, DEVICE_GPA, &why), -ERANGE);
        assert_non_null(strstr(why, "packed ring"));
        assert_null(f->vq.log);
        /* Before the rings are mapped it cannot be checked: a mark then fails and breaks the queue. */
        struct vq vq = {.packed = true};
        assert_int_equal(vq_alloc(&vq, NUM), 0);
        assert_int_equal(vq_set_log(&vq, &small, true, DEVICE_GPA, &why), 0);
        vq_free(&vq);
        /* A good log, then a device event area the log does not reach. */
        assert_int_equal(vq_set_log(&f->vq, &log, true, DEVICE_GPA, &why), 0);
        f->vq.device_event_gpa = (uint64_t)LOG_BYTES * 8 * PAGE;
        vq_enable_notify(&f->vq);
        assert_true(f->vq.broken);
        assert_non_null(strstr(f->vq.broken_reason, "does not cover the packed ring"));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check_num_packed),
                cmocka_unit_test(test_alloc_any_num),
                T(test_map_rings_packed),
                T(test_map_rings_packed_sizes),
                T(test_pop_empty),
                T(test_pop_simple),
                T(test_pop_several),
                T(test_pop_zero_length),
                T(test_pop_crossing_regions),
                T(test_pop_readable_in_read_only),
                T(test_chain_crossing_ring_end),
                T(test_indirect),
                T(test_indirect_full),
                T(test_indirect_crossing_and_misaligned),
                T(test_enobufs),
                T(test_enobufs_indirect),
                T(test_broken),
                T(test_broken_isolated),
                T(test_chain_cap_big_ring),
                T(test_push_batch),
                T(test_push_more_than_ring),
                T(test_push_not_in_flight),
                T(test_unpop),
                T(test_wrap_sizes),
                T(test_in_order_laps),
                T(test_base_round_trip),
                T(test_resume_after_crash),
                T(test_should_call_flags),
                T(test_should_call_desc),
                T(test_should_call_desc_pushes),
                T(test_notify_flags),
                T(test_notify_event_idx),
                T(test_log_used_descriptors),
                T(test_log_too_small),
        };
#undef T

        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER")); /* e.g. TEST_FILTER='test_wrap*' */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
