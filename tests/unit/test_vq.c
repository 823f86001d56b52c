/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for vring/vq.c. Guest RAM: tests/unit/guest_ram.h. The test plays the guest driver: it writes
 * descriptors and the avail ring, and reads the used ring, all little-endian.
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

#include "vring/mem.h"
#include "vring/vq.h"

#include "tests/unit/guest_ram.h"

/* Default ring layout in R0 (room for rings up to 1024 entries); a second ring set for a second queue. */
#define DESC_GPA R0_GPA
#define AVAIL_GPA (R0_GPA + 0x8000)
#define USED_GPA (R0_GPA + 0xa000)
#define DESC2_GPA (R0_GPA + 0x20000)
#define AVAIL2_GPA (R0_GPA + 0x28000)
#define USED2_GPA (R0_GPA + 0x2a000)
#define TABLE_GPA (R0_GPA + 0x30000) /* indirect tables */
#define DATA_GPA (R0_GPA + 0x40000)  /* data buffers */

#define NUM 8
#define IOV_MAX_TEST 64

struct fx {
        struct mem_table mem;
        struct vq vq;
        uint16_t avail_idx; /* driver's shadow */
        struct iovec iov[IOV_MAX_TEST];
        struct vq_elem elem;
};

/* The test's (the guest's) pointer to gpa. */
static void *gp(struct fx *f, uint64_t gpa)
{
        return guest_ram_ptr(&f->mem, gpa);
}

static void init_vq(struct fx *f, struct vq *vq, unsigned num, uint64_t desc, uint64_t avail, uint64_t used)
{
        const char *why = NULL;

        vq_free(vq);
        memset(vq, 0, sizeof(*vq));
        assert_int_equal(vq_alloc(vq, num), 0);
        assert_int_equal(vq_map_rings(vq, &f->mem, desc + UVA_OFF, avail + UVA_OFF, used + UVA_OFF, &why), 0);
        assert_ptr_equal(vq->desc, gp(f, desc));
        assert_ptr_equal(vq->avail, gp(f, avail));
        assert_ptr_equal(vq->used, gp(f, used));
}

/* Zeroes the writable guest memory and starts the default queue afresh with num entries. */
static void reset(struct fx *f, unsigned num)
{
        guest_ram_clear(&f->mem);
        f->avail_idx = 0;
        init_vq(f, &f->vq, num, DESC_GPA, AVAIL_GPA, USED_GPA);
        f->elem.iov = f->iov;
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

static void set_desc_at(struct fx *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                        uint16_t next)
{
        struct vring_desc d = {htole64(addr), htole32(len), htole16(flags), htole16(next)};

        /* Per entry: a table may cross regions, which are separate mappings here too. */
        memcpy(gp(f, table + 16 * (uint64_t)i), &d, sizeof(d));
}

static void set_desc(struct fx *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
        set_desc_at(f, DESC_GPA, i, addr, len, flags, next);
}

static void avail_set_idx(struct fx *f, uint16_t idx)
{
        struct vring_avail *a = gp(f, AVAIL_GPA);
        __atomic_store_n(&a->idx, htole16(idx), __ATOMIC_RELEASE);
}

static void publish(struct fx *f, uint16_t head)
{
        struct vring_avail *a = gp(f, AVAIL_GPA);

        a->ring[f->avail_idx & (f->vq.num - 1)] = htole16(head);
        avail_set_idx(f, ++f->avail_idx);
}

static uint16_t used_idx(struct fx *f)
{
        struct vring_used *u = gp(f, USED_GPA);
        return le16toh(u->idx);
}

/* avail_event (after used->ring[num]) and used_event (after avail->ring[num]) */
static uint16_t avail_event_get(struct fx *f)
{
        uint16_t v;
        memcpy(&v, gp(f, USED_GPA + 4 + 8ull * f->vq.num), 2);
        return le16toh(v);
}

static void avail_event_set(struct fx *f, uint16_t v)
{
        v = htole16(v);
        memcpy(gp(f, USED_GPA + 4 + 8ull * f->vq.num), &v, 2);
}

static void used_event_set(struct fx *f, uint16_t v)
{
        v = htole16(v);
        memcpy(gp(f, AVAIL_GPA + 4 + 2ull * f->vq.num), &v, 2);
}

static void expect_iov(const struct iovec *iov, struct fx *f, uint64_t gpa, size_t len)
{
        guest_ram_expect_iov(&f->mem, iov, gpa, len);
}

/* ---- vq_check_num ---- */

static void test_check_num(void **state)
{
        static const struct {
                unsigned num;
                int ret;
        } cases[] = {
                {0, -EINVAL},        {1, 0},           {2, 0},     {3, -EINVAL},     {256, 0},         {1000, -EINVAL},
                {1024, 0},           {32767, -EINVAL}, {32768, 0}, {32769, -EINVAL}, {65536, -EINVAL}, {65535, -EINVAL},
                {1u << 31, -EINVAL}, {~0u, -EINVAL},
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                if (vq_check_num(cases[i].num) != cases[i].ret)
                        print_error("num %u\n", cases[i].num);
                assert_int_equal(vq_check_num(cases[i].num), cases[i].ret);
        }
}

/* ---- vq_map_rings ---- */

struct map_case {
        const char *what;
        uint64_t desc, avail, used; /* gpas; UVA_OFF is added */
        int ret;
        const char *why;
};

/* num = 8: desc 128 bytes, avail 4 + 16 + 2 = 22, used 4 + 64 + 2 = 70. */
static const struct map_case map_cases[] = {
        {"default", DESC_GPA, AVAIL_GPA, USED_GPA, 0, NULL},
        {"tightest alignment", DESC_GPA + 16, AVAIL_GPA + 2, USED_GPA + 4, 0, NULL},
        {"each part ends at the end of R1", GAP_GPA - 128, GAP_GPA - 22, GAP_GPA - 72, 0, NULL},
        {"desc and avail read-only", RO_GPA, RO_GPA + 0x1000, USED_GPA, 0, NULL},
        {"desc misaligned", DESC_GPA + 8, AVAIL_GPA, USED_GPA, -EINVAL, "misaligned"},
        {"avail misaligned", DESC_GPA, AVAIL_GPA + 1, USED_GPA, -EINVAL, "misaligned"},
        {"used misaligned", DESC_GPA, AVAIL_GPA, USED_GPA + 2, -EINVAL, "misaligned"},
        {"desc in the gap", GAP_GPA, AVAIL_GPA, USED_GPA, -EFAULT, "descriptor"},
        {"desc at 0", 0, AVAIL_GPA, USED_GPA, -EFAULT, "descriptor"},
        {"desc crossing R0|R1", R1_GPA - 64, AVAIL_GPA, USED_GPA, -EFAULT, "descriptor"},
        {"desc crossing R1|gap", GAP_GPA - 64, AVAIL_GPA, USED_GPA, -EFAULT, "descriptor"},
        {"avail in the gap", DESC_GPA, GAP_GPA, USED_GPA, -EFAULT, "available"},
        {"avail's used_event past R1", DESC_GPA, GAP_GPA - 20, USED_GPA, -EFAULT, "available"},
        {"used in the gap", DESC_GPA, AVAIL_GPA, GAP_GPA + 0x100, -EFAULT, "used"},
        {"used read-only", DESC_GPA, AVAIL_GPA, RO_GPA, -EFAULT, "used"},
        {"used's avail_event past R1", DESC_GPA, AVAIL_GPA, GAP_GPA - 68, -EFAULT, "used"},
        {"used wraps the address space", DESC_GPA, AVAIL_GPA, UINT64_MAX - 3 - UVA_OFF, -EFAULT, "used"},
};

static void test_map_rings(void **state)
{
        struct fx *f = *state;

        for (size_t i = 0; i < ARRAY_SIZE(map_cases); i++) {
                const struct map_case *c = &map_cases[i];
                struct vq vq = {0};
                const char *why = NULL;
                int r;

                assert_int_equal(vq_alloc(&vq, NUM), 0);
                r = vq_map_rings(&vq, &f->mem, c->desc + UVA_OFF, c->avail + UVA_OFF, c->used + UVA_OFF, &why);
                if (r != c->ret)
                        print_error("case '%s': got %d (%s), expected %d\n", c->what, r, why ? why : "", c->ret);
                assert_int_equal(r, c->ret);
                if (r == 0) {
                        assert_ptr_equal(vq.desc, gp(f, c->desc));
                        assert_ptr_equal(vq.avail, gp(f, c->avail));
                        assert_ptr_equal(vq.used, gp(f, c->used));
                        assert_ptr_equal(vq.mem, &f->mem);
                } else {
                        assert_non_null(why);
                        if (!strstr(why, c->why))
                                print_error("case '%s': reason '%s' lacks '%s'\n", c->what, why, c->why);
                        assert_non_null(strstr(why, c->why));
                        assert_null(vq.desc);
                        assert_null(vq.avail);
                        assert_null(vq.used);
                }
                vq_free(&vq);
        }
}

static void test_map_rings_needs_num(void **state)
{
        struct fx *f = *state;
        struct vq vq = {0};
        const char *why = NULL;

        assert_int_equal(vq_map_rings(&vq, &f->mem, DESC_GPA + UVA_OFF, AVAIL_GPA + UVA_OFF, USED_GPA + UVA_OFF, &why),
                         -EINVAL);
        assert_non_null(why);
        assert_int_equal(vq_alloc(&vq, 3), -EINVAL);
        assert_int_equal(vq_alloc(&vq, 0), -EINVAL);
        /* A big ring must fit entirely: 32768 descriptors are 512 KiB, fine in R0; the used ring is 256 KiB. */
        assert_int_equal(vq_alloc(&vq, 32768), 0);
        assert_int_equal(vq_map_rings(&vq, &f->mem, R0_GPA + UVA_OFF, R0_GPA + 0x80000 + UVA_OFF,
                                      R0_GPA + 0xa0000 + UVA_OFF, &why),
                         0);
        /* The descriptor table would end 16 bytes past R0 (R1 follows in uva, but is another region). */
        assert_int_equal(vq_map_rings(&vq, &f->mem, R0_GPA + 0x80010 + UVA_OFF, R0_GPA + UVA_OFF,
                                      R0_GPA + 0x10000 + UVA_OFF, &why),
                         -EFAULT);
        vq_free(&vq);
        vq_free(&vq); /* idempotent */
}

/*
 * The front-end chooses each region's uva independently of where the region lands in host memory. With an
 * odd uva, ring addresses that are aligned as uvas are misaligned in host memory, where the rings are
 * accessed with atomic 16/32-bit loads and stores. vq_map_rings must refuse them (or never return
 * misaligned pointers). Found by fuzz_vu_msg (UBSan: misaligned struct vring_used in start_vring).
 */
static void test_map_rings_host_alignment(void **state)
{
        struct fx *f = *state;
        struct mem_table t = {0};
        struct mem_region r;
        const char *why = NULL;
        const uint64_t uva = 0x7e0000000001ull; /* odd */
        int fd = memfd_create("test-vq", MFD_CLOEXEC);
        struct vq vq = {0};
        int ret;

        (void)f;
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 0x10000), 0);
        assert_int_equal(mem_region_map(&r, fd, 0x0, 0x10000, uva, 0), 0);
        close(fd);
        assert_int_equal(mem_table_add(&t, &r, &why), 0);
        assert_int_equal(vq_alloc(&vq, NUM), 0);
        /* uva + 0xfff is 16-aligned as a uva; in host memory it is offset 0xfff into the mapping: odd. */
        ret = vq_map_rings(&vq, &t, uva + 0xfff, uva + 0x1fff, uva + 0x2fff, &why);
        bool aligned =
                ((uintptr_t)vq.desc & 15) == 0 && ((uintptr_t)vq.avail & 1) == 0 && ((uintptr_t)vq.used & 3) == 0;
        if (ret == 0 && !aligned)
                print_error("mapped at desc %p avail %p used %p\n", (void *)vq.desc, (void *)vq.avail, (void *)vq.used);
        vq_free(&vq);
        mem_table_clear(&t);
        assert_true(ret < 0 || aligned);
}

/* ---- popping good chains ---- */

static void test_pop_empty(void **state)
{
        struct fx *f = *state;

        assert_int_equal(vq_avail_count(&f->vq), 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 0);
        assert_false(f->vq.broken);
        assert_int_equal(f->vq.last_avail_idx, 0);
}

static void test_pop_simple(void **state)
{
        struct fx *f = *state;
        struct vq_elem *e = &f->elem;

        set_desc(f, 3, DATA_GPA, 100, VRING_DESC_F_NEXT, 5);
        set_desc(f, 5, DATA_GPA + 0x1000, 50, VRING_DESC_F_NEXT, 0);
        set_desc(f, 0, DATA_GPA + 0x2000, 200, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 7);
        set_desc(f, 7, DATA_GPA + 0x3000, 1, VRING_DESC_F_WRITE, 6 /* ignored: no NEXT */);
        publish(f, 3);
        assert_int_equal(vq_avail_count(&f->vq), 1);
        assert_int_equal(vq_pop(&f->vq, e, IOV_MAX_TEST), 1);
        assert_int_equal(e->head, 3);
        assert_int_equal(e->out_num, 2);
        assert_int_equal(e->in_num, 2);
        assert_int_equal(e->out_len, 150);
        assert_int_equal(e->in_len, 201);
        expect_iov(&e->iov[0], f, DATA_GPA, 100);
        expect_iov(&e->iov[1], f, DATA_GPA + 0x1000, 50);
        expect_iov(&e->iov[2], f, DATA_GPA + 0x2000, 200);
        expect_iov(&e->iov[3], f, DATA_GPA + 0x3000, 1);
        assert_int_equal(f->vq.last_avail_idx, 1);
        assert_int_equal(vq_avail_count(&f->vq), 0);
        assert_int_equal(vq_pop(&f->vq, e, IOV_MAX_TEST), 0);
        assert_false(f->vq.broken);
}

static void test_pop_several(void **state)
{
        struct fx *f = *state;

        for (unsigned i = 0; i < NUM; i++) {
                set_desc(f, i, DATA_GPA + 0x100 * i, 10 + i, (i & 1) ? VRING_DESC_F_WRITE : 0, 0);
                publish(f, (uint16_t)(NUM - 1 - i));
        }
        assert_int_equal(vq_avail_count(&f->vq), NUM);
        for (unsigned i = 0; i < NUM; i++) {
                unsigned head = NUM - 1 - i;
                assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
                assert_int_equal(f->elem.head, head);
                assert_int_equal(f->elem.out_num + f->elem.in_num, 1);
                assert_int_equal((head & 1) ? f->elem.in_len : f->elem.out_len, 10 + head);
                expect_iov(&f->iov[0], f, DATA_GPA + 0x100 * head, 10 + head);
        }
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 0);
}

/* Zero-length descriptors are legal and take no iovec. */
static void test_pop_zero_length(void **state)
{
        struct fx *f = *state;

        set_desc(f, 0, GAP_GPA, 0, VRING_DESC_F_NEXT, 1); /* even at a bad address: nothing to access */
        set_desc(f, 1, DATA_GPA, 4, VRING_DESC_F_WRITE, 0);
        publish(f, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, 1), 1);
        assert_int_equal(f->elem.out_num, 0);
        assert_int_equal(f->elem.out_len, 0);
        assert_int_equal(f->elem.in_num, 1);
}

static void test_pop_crossing_regions(void **state)
{
        struct fx *f = *state;
        struct vq_elem *e = &f->elem;

        set_desc(f, 0, R1_GPA - 10, 30, VRING_DESC_F_WRITE, 0);
        publish(f, 0);
        assert_int_equal(vq_pop(&f->vq, e, IOV_MAX_TEST), 1);
        assert_int_equal(e->in_num, 2);
        assert_int_equal(e->in_len, 30);
        expect_iov(&e->iov[0], f, R1_GPA - 10, 10);
        expect_iov(&e->iov[1], f, R1_GPA, 20);
}

/* Readable buffers may live in read-only memory. */
static void test_pop_readable_in_read_only(void **state)
{
        struct fx *f = *state;

        set_desc(f, 0, RO_GPA, RO_SIZE, 0, 0);
        publish(f, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(f->elem.out_len, RO_SIZE);
        expect_iov(&f->iov[0], f, RO_GPA, RO_SIZE);
}

static void test_avail_wraparound(void **state)
{
        struct fx *f = *state;

        /* Resume at 65534 (as after SET_VRING_BASE): entries 65534, 65535, 0, 1 sit in ring slots 6, 7, 0, 1. */
        f->vq.last_avail_idx = 65534;
        f->vq.used_idx = 65534;
        f->avail_idx = 65534;
        for (unsigned i = 0; i < 4; i++) {
                set_desc(f, i, DATA_GPA + 0x100 * i, 16, 0, 0);
                publish(f, (uint16_t)i);
        }
        assert_int_equal(f->avail_idx, 2);
        assert_int_equal(vq_avail_count(&f->vq), 4);
        for (unsigned i = 0; i < 4; i++) {
                assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
                assert_int_equal(f->elem.head, i);
                vq_push(&f->vq, f->elem.head, 0);
        }
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 0);
        assert_int_equal(f->vq.last_avail_idx, 2);
        vq_publish(&f->vq);
        assert_int_equal(used_idx(f), 2);
        /* Exactly num outstanding across the wrap is fine, num + 1 is not. */
        f->avail_idx = (uint16_t)(2 + NUM);
        avail_set_idx(f, f->avail_idx);
        assert_int_equal(vq_avail_count(&f->vq), NUM);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_false(f->vq.broken);
}

static void test_indirect(void **state)
{
        struct fx *f = *state;
        struct vq_elem *e = &f->elem;

        set_desc_at(f, TABLE_GPA, 0, DATA_GPA, 10, VRING_DESC_F_NEXT, 2);
        set_desc_at(f, TABLE_GPA, 2, DATA_GPA + 0x100, 20, VRING_DESC_F_NEXT, 1);
        set_desc_at(f, TABLE_GPA, 1, DATA_GPA + 0x200, 30, VRING_DESC_F_WRITE, 0);
        /* The WRITE flag on the descriptor pointing at the table is ignored. */
        set_desc(f, 4, TABLE_GPA, 3 * 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
        publish(f, 4);
        assert_int_equal(vq_pop(&f->vq, e, IOV_MAX_TEST), 1);
        assert_int_equal(e->head, 4);
        assert_int_equal(e->out_num, 2);
        assert_int_equal(e->in_num, 1);
        assert_int_equal(e->out_len, 30);
        assert_int_equal(e->in_len, 30);
        expect_iov(&e->iov[0], f, DATA_GPA, 10);
        expect_iov(&e->iov[1], f, DATA_GPA + 0x100, 20);
        expect_iov(&e->iov[2], f, DATA_GPA + 0x200, 30);
}

/* A table of exactly num entries, all chained. */
static void test_indirect_full(void **state)
{
        struct fx *f = *state;

        for (unsigned i = 0; i < NUM; i++)
                set_desc_at(f, TABLE_GPA, i, DATA_GPA + 0x10 * i, 0x10,
                            (i + 1 < NUM ? VRING_DESC_F_NEXT : 0) | (i >= NUM / 2 ? VRING_DESC_F_WRITE : 0),
                            (uint16_t)(i + 1));
        set_desc(f, 0, TABLE_GPA, NUM * 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(f->elem.out_num, NUM / 2);
        assert_int_equal(f->elem.in_num, NUM / 2);
}

/* An indirect table that crosses from R0 into R1 is copied, and still works. */
static void test_indirect_crossing_regions(void **state)
{
        struct fx *f = *state;
        uint64_t table = R1_GPA - 32; /* entries 0, 1 in R0; 2, 3 in R1 */

        for (unsigned i = 0; i < 4; i++)
                set_desc_at(f, table, i, DATA_GPA + 0x100 * i, 8 + i, (i < 3 ? VRING_DESC_F_NEXT : 0),
                            (uint16_t)(i + 1));
        set_desc(f, 1, table, 4 * 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 1);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_false(f->vq.broken);
        assert_int_equal(f->elem.out_num, 4);
        assert_int_equal(f->elem.out_len, 8 + 9 + 10 + 11);
        for (unsigned i = 0; i < 4; i++)
                expect_iov(&f->iov[i], f, DATA_GPA + 0x100 * i, 8 + i);
}

/* An indirect table at an address that is not 8-byte aligned is copied too. */
static void test_indirect_misaligned(void **state)
{
        struct fx *f = *state;
        uint64_t table = TABLE_GPA + 4;

        set_desc_at(f, table, 0, DATA_GPA, 5, VRING_DESC_F_NEXT, 1);
        set_desc_at(f, table, 1, DATA_GPA + 0x40, 6, VRING_DESC_F_WRITE, 0);
        set_desc(f, 2, table, 32, VRING_DESC_F_INDIRECT, 0);
        publish(f, 2);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(f->elem.out_len, 5);
        assert_int_equal(f->elem.in_len, 6);
        expect_iov(&f->iov[1], f, DATA_GPA + 0x40, 6);
}

/* A direct descriptor followed by an indirect one (Linux accepts this too). */
static void test_direct_then_indirect(void **state)
{
        struct fx *f = *state;

        set_desc_at(f, TABLE_GPA, 0, DATA_GPA + 0x100, 7, VRING_DESC_F_WRITE, 0);
        set_desc(f, 0, DATA_GPA, 3, VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(f->elem.out_len, 3);
        assert_int_equal(f->elem.in_len, 7);
}

/* ---- -ENOBUFS: not broken, nothing consumed ---- */

static void test_enobufs(void **state)
{
        struct fx *f = *state;

        set_desc(f, 0, DATA_GPA, 10, VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, R1_GPA - 4, 8, VRING_DESC_F_NEXT, 2); /* 2 iovecs */
        set_desc(f, 2, DATA_GPA + 0x100, 10, VRING_DESC_F_WRITE, 0);
        publish(f, 0);
        for (unsigned max = 0; max < 4; max++) {
                assert_int_equal(vq_pop(&f->vq, &f->elem, max), -ENOBUFS);
                assert_false(f->vq.broken);
                assert_int_equal(f->vq.last_avail_idx, 0);
                assert_int_equal(vq_avail_count(&f->vq), 1);
        }
        assert_int_equal(vq_pop(&f->vq, &f->elem, 4), 1);
        assert_int_equal(f->elem.out_num, 3);
        assert_int_equal(f->elem.in_num, 1);
        assert_int_equal(f->vq.last_avail_idx, 1);
}

static void test_enobufs_indirect(void **state)
{
        struct fx *f = *state;

        for (unsigned i = 0; i < 5; i++)
                set_desc_at(f, TABLE_GPA, i, DATA_GPA + 0x10 * i, 0x10, i < 4 ? VRING_DESC_F_NEXT : 0,
                            (uint16_t)(i + 1));
        set_desc(f, 0, TABLE_GPA, 5 * 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, 4), -ENOBUFS);
        assert_false(f->vq.broken);
        assert_int_equal(vq_pop(&f->vq, &f->elem, 5), 1);
        assert_int_equal(f->elem.out_num, 5);
}

/* ---- unpop, push, publish ---- */

static void test_unpop(void **state)
{
        struct fx *f = *state;

        for (unsigned i = 0; i < 3; i++) {
                set_desc(f, i, DATA_GPA + 0x100 * i, 16, 0, 0);
                publish(f, (uint16_t)i);
        }
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(f->elem.head, 1);
        vq_unpop(&f->vq, 1);
        assert_int_equal(f->vq.last_avail_idx, 1);
        assert_int_equal(vq_avail_count(&f->vq), 2);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(f->elem.head, 1);
        vq_unpop(&f->vq, 2);
        assert_int_equal(f->vq.last_avail_idx, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(f->elem.head, 0);
        vq_unpop(&f->vq, 0);
        assert_int_equal(f->vq.last_avail_idx, 1);

        /* Across the 16-bit wrap. */
        f->vq.last_avail_idx = 1;
        vq_unpop(&f->vq, 3);
        assert_int_equal(f->vq.last_avail_idx, 65534);
}

static void test_push_publish(void **state)
{
        struct fx *f = *state;
        struct vring_used *u = gp(f, USED_GPA);

        vq_push(&f->vq, 5, 77);
        vq_push(&f->vq, 2, 0xfffffffe);
        /* Written, but not visible until published. */
        assert_int_equal(le32toh(u->ring[0].id), 5);
        assert_int_equal(le32toh(u->ring[0].len), 77);
        assert_int_equal(le32toh(u->ring[1].id), 2);
        assert_int_equal(le32toh(u->ring[1].len), 0xfffffffe);
        assert_int_equal(used_idx(f), 0);
        assert_int_equal(f->vq.used_idx, 2);
        vq_publish(&f->vq);
        assert_int_equal(used_idx(f), 2);

        /* The slot is used_idx mod num, also across the 16-bit wrap; nothing is written past the ring. */
        avail_event_set(f, 0x1234);
        f->vq.used_idx = 65535;
        vq_push(&f->vq, 6, 1);
        vq_push(&f->vq, 7, 2);
        vq_publish(&f->vq);
        assert_int_equal(used_idx(f), 1);
        assert_int_equal(le32toh(u->ring[7].id), 6);
        assert_int_equal(le32toh(u->ring[0].id), 7);
        assert_int_equal(avail_event_get(f), 0x1234);
}

/*
 * IN_ORDER: pushes of length 0 in a row write one used entry, at the run's first slot, naming the run's last buffer;
 * the used index moves past every buffer. A push with a length, and a publish, end the run.
 */
static void test_in_order_push(void **state)
{
        struct fx *f = *state;
        struct vring_used *u = gp(f, USED_GPA);

        f->vq.in_order = true;
        memset(u->ring, 0xee, sizeof(u->ring[0]) * NUM);
        vq_push(&f->vq, 0, 0);
        vq_push(&f->vq, 1, 0);
        vq_push(&f->vq, 2, 0);
        vq_push(&f->vq, 3, 100); /* written into: its own entry, its length */
        vq_push(&f->vq, 4, 0);
        vq_push(&f->vq, 5, 0);
        vq_publish(&f->vq);
        assert_int_equal(used_idx(f), 6);
        assert_int_equal(le32toh(u->ring[0].id), 2);
        assert_int_equal(le32toh(u->ring[0].len), 0);
        assert_int_equal(le32toh(u->ring[1].id), 0xeeeeeeee); /* skipped, as the spec allows */
        assert_int_equal(le32toh(u->ring[3].id), 3);
        assert_int_equal(le32toh(u->ring[3].len), 100);
        assert_int_equal(le32toh(u->ring[4].id), 5);
        assert_int_equal(le32toh(u->ring[5].id), 0xeeeeeeee);
        /* After a publish a new run starts at the next slot: the driver has read up to there. */
        vq_push(&f->vq, 6, 0);
        vq_push(&f->vq, 7, 0);
        vq_publish(&f->vq);
        assert_int_equal(used_idx(f), 8);
        assert_int_equal(le32toh(u->ring[6].id), 7);
        assert_int_equal(le32toh(u->ring[7].id), 0xeeeeeeee);

        /* Without IN_ORDER every buffer has its entry. */
        f->vq.in_order = false;
        vq_push(&f->vq, 0, 0);
        vq_push(&f->vq, 1, 0);
        vq_publish(&f->vq);
        assert_int_equal(le32toh(u->ring[0].id), 0);
        assert_int_equal(le32toh(u->ring[1].id), 1);
        assert_int_equal(le32toh(u->ring[1].len), 0);
}

/* ---- broken queues ---- */

typedef void build_fn(struct fx *f);

static void b_avail_jump(struct fx *f)
{
        avail_set_idx(f, NUM + 1);
}

static void b_avail_jump_back(struct fx *f)
{
        avail_set_idx(f, 0xffff); /* 65535 entries ahead of 0 */
}

static void b_head_oob(struct fx *f)
{
        publish(f, NUM);
}

static void b_head_huge(struct fx *f)
{
        publish(f, 0xffff);
}

static void b_next_oob(struct fx *f)
{
        set_desc(f, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, NUM);
        publish(f, 0);
}

static void b_loop(struct fx *f)
{
        set_desc(f, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, DATA_GPA, 1, VRING_DESC_F_NEXT, 0);
        publish(f, 0);
}

static void b_self_loop(struct fx *f)
{
        set_desc(f, 3, DATA_GPA, 0, VRING_DESC_F_NEXT, 3);
        publish(f, 3);
}

static void b_ind_len_odd(struct fx *f)
{
        set_desc(f, 0, TABLE_GPA, 24, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_ind_len_zero(struct fx *f)
{
        set_desc(f, 0, TABLE_GPA, 0, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_ind_nested(struct fx *f)
{
        set_desc_at(f, TABLE_GPA, 0, TABLE_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
        set_desc(f, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_ind_next(struct fx *f)
{
        set_desc_at(f, TABLE_GPA, 0, DATA_GPA, 16, 0, 0);
        set_desc(f, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, DATA_GPA, 16, VRING_DESC_F_WRITE, 0);
        publish(f, 0);
}

static void b_ind_too_big(struct fx *f)
{
        set_desc(f, 0, TABLE_GPA, (NUM + 1) * 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_ind_huge(struct fx *f)
{
        set_desc(f, 0, TABLE_GPA, 0xfffffff0, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_ind_outside(struct fx *f)
{
        set_desc(f, 0, GAP_GPA + 0x1000, 32, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_ind_into_gap(struct fx *f)
{
        set_desc(f, 0, GAP_GPA - 16, 32, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_ind_loop(struct fx *f)
{
        set_desc_at(f, TABLE_GPA, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 1);
        set_desc_at(f, TABLE_GPA, 1, DATA_GPA, 1, VRING_DESC_F_NEXT, 0);
        set_desc(f, 0, TABLE_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_ind_next_oob(struct fx *f)
{
        /* next must be inside the table (2 entries), although < num. */
        set_desc_at(f, TABLE_GPA, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 2);
        set_desc_at(f, TABLE_GPA, 2, DATA_GPA, 1, 0, 0);
        set_desc(f, 0, TABLE_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_read_after_write(struct fx *f)
{
        set_desc(f, 0, DATA_GPA, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, DATA_GPA, 1, 0, 0);
        publish(f, 0);
}

static void b_ind_read_after_write(struct fx *f)
{
        set_desc_at(f, TABLE_GPA, 0, DATA_GPA, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
        set_desc_at(f, TABLE_GPA, 1, DATA_GPA, 1, 0, 0);
        set_desc(f, 0, TABLE_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

static void b_buf_in_gap(struct fx *f)
{
        set_desc(f, 0, GAP_GPA + 0x10, 1, 0, 0);
        publish(f, 0);
}

static void b_buf_into_gap(struct fx *f)
{
        set_desc(f, 0, GAP_GPA - 1, 2, 0, 0);
        publish(f, 0);
}

static void b_buf_past_ro(struct fx *f)
{
        set_desc(f, 0, RO_GPA + RO_SIZE, 1, 0, 0);
        publish(f, 0);
}

static void b_buf_wraps(struct fx *f)
{
        set_desc(f, 0, UINT64_MAX - 1, 4, 0, 0);
        publish(f, 0);
}

static void b_write_ro(struct fx *f)
{
        set_desc(f, 0, DATA_GPA, 10, VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, RO_GPA + 0x100, 10, VRING_DESC_F_WRITE, 0);
        publish(f, 0);
}

static void b_out_over_4g(struct fx *f)
{
        set_desc(f, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, DATA_GPA, 0xffffffff, 0, 0);
        publish(f, 0);
}

static void b_in_over_4g(struct fx *f)
{
        set_desc(f, 0, DATA_GPA, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, DATA_GPA, 0xffffffff, VRING_DESC_F_WRITE, 0);
        publish(f, 0);
}

static void b_ind_over_4g(struct fx *f)
{
        set_desc_at(f, TABLE_GPA, 0, DATA_GPA, 0x10, VRING_DESC_F_NEXT, 1);
        set_desc_at(f, TABLE_GPA, 1, DATA_GPA, 0xfffffff0, 0, 0);
        set_desc(f, 0, TABLE_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
        publish(f, 0);
}

/* The second chain is the bad one: the first pops fine. */
static void b_second_chain(struct fx *f)
{
        set_desc(f, 0, DATA_GPA, 1, 0, 0);
        publish(f, 0);
        publish(f, NUM + 3);
}

struct broken_case {
        const char *what;
        build_fn *build;
        const char *reason;
        unsigned good_before; /* chains that pop fine first */
};

static const struct broken_case broken_cases[] = {
        {"avail idx jumps past num", b_avail_jump, "moved avail index", 0},
        {"avail idx moves back", b_avail_jump_back, "moved avail index", 0},
        {"head == num", b_head_oob, "head 8 >= ring size 8", 0},
        {"head 0xffff", b_head_huge, "head 65535", 0},
        {"next == num", b_next_oob, "next index 8", 0},
        {"two-descriptor loop", b_loop, "longer than 8", 0},
        {"self loop", b_self_loop, "longer than 8", 0},
        {"indirect length 24", b_ind_len_odd, "not a multiple of 16", 0},
        {"indirect length 0", b_ind_len_zero, "indirect table length 0", 0},
        {"nested indirect", b_ind_nested, "nested indirect", 0},
        {"INDIRECT|NEXT", b_ind_next, "also has NEXT", 0},
        {"indirect table of num + 1", b_ind_too_big, "exceeds queue size", 0},
        {"indirect table of 4 GiB", b_ind_huge, "exceeds queue size", 0},
        {"indirect table outside memory", b_ind_outside, "outside guest memory", 0},
        {"indirect table running into the gap", b_ind_into_gap, "outside guest memory", 0},
        {"loop inside an indirect table", b_ind_loop, "longer than 2", 0},
        {"indirect next outside the table", b_ind_next_oob, "next index 2 >= table size 2", 0},
        {"readable after writable", b_read_after_write, "readable descriptor after a writable", 0},
        {"readable after writable (indirect)", b_ind_read_after_write, "readable descriptor after a writable", 0},
        {"buffer in the gap", b_buf_in_gap, "outside guest memory", 0},
        {"buffer running into the gap", b_buf_into_gap, "outside guest memory", 0},
        {"buffer one past read-only memory", b_buf_past_ro, "outside guest memory", 0},
        {"buffer wrapping the address space", b_buf_wraps, "outside guest memory", 0},
        {"writable buffer in read-only memory", b_write_ro, "outside writable guest memory", 0},
        {"readable total over 4 GiB", b_out_over_4g, "over 4 GiB", 0},
        {"writable total over 4 GiB", b_in_over_4g, "over 4 GiB", 0},
        {"indirect total over 4 GiB", b_ind_over_4g, "over 4 GiB", 0},
        {"second chain bad", b_second_chain, "head 11", 1},
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
                        assert_int_equal(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST), 1);
                uint16_t before = f->vq.last_avail_idx;
                r = vq_pop(&f->vq, &f->elem, IOV_MAX_TEST);
                if (r >= 0 || !f->vq.broken || !strstr(f->vq.broken_reason, c->reason))
                        print_error("case '%s': ret %d, broken %d, reason '%s' (expected '%s')\n", c->what, r,
                                    f->vq.broken, f->vq.broken_reason, c->reason);
                assert_true(r < 0);
                assert_int_not_equal(r, -ENOBUFS);
                assert_true(f->vq.broken);
                assert_non_null(strstr(f->vq.broken_reason, c->reason));
                assert_int_equal(f->vq.last_avail_idx, before);
                /* It stays broken: no more chains, whatever the guest does. */
                assert_true(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST) < 0);
                assert_int_equal(vq_avail_count(&f->vq), 0);
                set_desc(f, 0, DATA_GPA, 1, 0, 0);
                publish(f, 0);
                assert_true(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST) < 0);
                assert_int_equal(f->vq.last_avail_idx, before);
        }
}

static void test_broken_first_reason_wins(void **state)
{
        struct fx *f = *state;

        assert_int_equal(vq_set_broken(&f->vq, "first %d", 1), -EINVAL);
        assert_int_equal(vq_set_broken(&f->vq, "second"), -EINVAL);
        assert_string_equal(f->vq.broken_reason, "first 1");
        /* A long reason is truncated, not overflowed. */
        reset(f, NUM);
        char big[400];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        vq_set_broken(&f->vq, "%s", big);
        assert_int_equal(strlen(f->vq.broken_reason), sizeof(f->vq.broken_reason) - 1);
}

/* A broken queue does not affect another queue on the same memory. */
static void test_broken_isolated(void **state)
{
        struct fx *f = *state;
        struct vq other = {0};
        struct vring_avail *a2 = gp(f, AVAIL2_GPA);
        struct vring_used *u2 = gp(f, USED2_GPA);

        init_vq(f, &other, NUM, DESC2_GPA, AVAIL2_GPA, USED2_GPA);
        b_loop(f);
        assert_true(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST) < 0);
        assert_true(f->vq.broken);

        set_desc_at(f, DESC2_GPA, 2, DATA_GPA, 64, VRING_DESC_F_WRITE, 0);
        a2->ring[0] = htole16(2);
        __atomic_store_n(&a2->idx, htole16(1), __ATOMIC_RELEASE);
        assert_int_equal(vq_pop(&other, &f->elem, IOV_MAX_TEST), 1);
        assert_int_equal(f->elem.head, 2);
        assert_int_equal(f->elem.in_len, 64);
        vq_push(&other, 2, 64);
        vq_publish(&other);
        assert_int_equal(le16toh(u2->idx), 1);
        assert_false(other.broken);
        assert_true(vq_pop(&f->vq, &f->elem, IOV_MAX_TEST) < 0);
        vq_free(&other);
}

/* In big rings chains are capped at 4096 descriptors (loops in practice). */
static void test_chain_cap_big_ring(void **state)
{
        struct fx *f = *state;
        const unsigned num = 8192;

        reset(f, num);
        for (unsigned len = 4096; len <= 4097; len++) {
                init_vq(f, &f->vq, num, DESC_GPA, R0_GPA + 0x50000, R0_GPA + 0x60000);
                memset(gp(f, DESC_GPA), 0, 16 * num);
                for (unsigned i = 0; i < len; i++)
                        set_desc(f, i, DATA_GPA, 0, i + 1 < len ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
                struct vring_avail *a = gp(f, R0_GPA + 0x50000);
                a->ring[0] = 0;
                __atomic_store_n(&a->idx, htole16(1), __ATOMIC_RELEASE);
                int r = vq_pop(&f->vq, &f->elem, IOV_MAX_TEST);
                if (len == 4096) {
                        assert_int_equal(r, 1);
                } else {
                        assert_true(r < 0);
                        assert_non_null(strstr(f->vq.broken_reason, "longer than 4096"));
                }
        }
}

/* ---- notifications ---- */

struct call_case {
        uint16_t old, new_idx, event;
        bool call;
};

/* vring_need_event(): call when used_event lies in [old, new). */
static const struct call_case call_cases[] = {
        {0, 1, 0, true},
        {0, 1, 1, false},
        {0, 5, 0, true},
        {0, 5, 4, true},
        {0, 5, 5, false},
        {0, 5, 6, false},
        {1, 5, 0, false},
        {5, 5, 4, false}, /* nothing new */
        {5, 5, 5, false},
        {100, 101, 100, true},
        {100, 101, 99, false},
        /* across the 16-bit wrap */
        {65534, 2, 65533, false},
        {65534, 2, 65534, true},
        {65534, 2, 65535, true},
        {65534, 2, 0, true},
        {65534, 2, 1, true},
        {65534, 2, 2, false},
        {65534, 2, 3, false},
        {65534, 2, 32768, false},
        {65535, 0, 65535, true},
        {65535, 0, 0, false},
        {0, 65535, 65534, true},
        {0, 65535, 65535, false},
};

static void test_should_call_event_idx(void **state)
{
        struct fx *f = *state;
        struct vring_avail *a = gp(f, AVAIL_GPA);

        f->vq.event_idx = true;
        /* The first decision after start always calls. */
        used_event_set(f, 1000);
        assert_true(vq_should_call(&f->vq));
        assert_true(f->vq.signalled_used_valid);
        assert_int_equal(f->vq.signalled_used, 0);
        assert_false(vq_should_call(&f->vq));

        for (size_t i = 0; i < ARRAY_SIZE(call_cases); i++) {
                const struct call_case *c = &call_cases[i];
                bool got;

                f->vq.signalled_used = c->old;
                f->vq.signalled_used_valid = true;
                f->vq.used_idx = c->new_idx;
                used_event_set(f, c->event);
                /* NO_INTERRUPT is ignored with EVENT_IDX. */
                a->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
                got = vq_should_call(&f->vq);
                if (got != c->call)
                        print_error("old %u new %u event %u: got %d\n", c->old, c->new_idx, c->event, got);
                assert_int_equal(got, c->call);
                assert_int_equal(f->vq.signalled_used, c->new_idx);
        }
}

static void test_should_call_flags(void **state)
{
        struct fx *f = *state;
        struct vring_avail *a = gp(f, AVAIL_GPA);

        f->vq.event_idx = false;
        a->flags = 0;
        assert_true(vq_should_call(&f->vq));
        assert_true(vq_should_call(&f->vq));
        a->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
        assert_false(vq_should_call(&f->vq));
        vq_push(&f->vq, 0, 0);
        assert_false(vq_should_call(&f->vq));
        a->flags = htole16(2); /* unknown bits do not suppress */
        assert_true(vq_should_call(&f->vq));
}

static void test_notify_event_idx(void **state)
{
        struct fx *f = *state;
        struct vring_used *u = gp(f, USED_GPA);

        f->vq.event_idx = true;
        f->vq.last_avail_idx = 3;
        f->avail_idx = 3;
        avail_set_idx(f, 3);
        avail_event_set(f, 0xffff);
        assert_false(vq_enable_notify(&f->vq));
        assert_int_equal(avail_event_get(f), 3);
        assert_int_equal(le16toh(u->flags), 0);
        /* Disabling leaves avail_event behind (and never sets NO_NOTIFY). */
        vq_disable_notify(&f->vq);
        assert_int_equal(avail_event_get(f), 3);
        assert_int_equal(le16toh(u->flags), 0);
        /* More arrived while notifications were off. */
        avail_set_idx(f, 5);
        assert_true(vq_enable_notify(&f->vq));
        assert_int_equal(avail_event_get(f), 3);
        /* Across the wrap. */
        f->vq.last_avail_idx = 65535;
        avail_set_idx(f, 65535);
        assert_false(vq_enable_notify(&f->vq));
        assert_int_equal(avail_event_get(f), 65535);
        avail_set_idx(f, 0);
        assert_true(vq_enable_notify(&f->vq));
}

static void test_notify_flags(void **state)
{
        struct fx *f = *state;
        struct vring_used *u = gp(f, USED_GPA);

        f->vq.event_idx = false;
        assert_false(vq_enable_notify(&f->vq));
        assert_int_equal(le16toh(u->flags), 0);
        vq_disable_notify(&f->vq);
        assert_int_equal(le16toh(u->flags), VRING_USED_F_NO_NOTIFY);
        vq_disable_notify(&f->vq);
        assert_int_equal(le16toh(u->flags), VRING_USED_F_NO_NOTIFY);
        publish(f, 0);
        assert_true(vq_enable_notify(&f->vq));
        assert_int_equal(le16toh(u->flags), 0);
        /* avail_event is not touched without EVENT_IDX. */
        assert_int_equal(avail_event_get(f), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check_num),
                T(test_map_rings),
                T(test_map_rings_needs_num),
                T(test_map_rings_host_alignment),
                T(test_pop_empty),
                T(test_pop_simple),
                T(test_pop_several),
                T(test_pop_zero_length),
                T(test_pop_crossing_regions),
                T(test_pop_readable_in_read_only),
                T(test_avail_wraparound),
                T(test_indirect),
                T(test_indirect_full),
                T(test_indirect_crossing_regions),
                T(test_indirect_misaligned),
                T(test_direct_then_indirect),
                T(test_enobufs),
                T(test_enobufs_indirect),
                T(test_unpop),
                T(test_push_publish),
                T(test_in_order_push),
                T(test_broken),
                T(test_broken_first_reason_wins),
                T(test_broken_isolated),
                T(test_chain_cap_big_ring),
                T(test_should_call_event_idx),
                T(test_should_call_flags),
                T(test_notify_event_idx),
                T(test_notify_flags),
        };
#undef T

        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER")); /* e.g. TEST_FILTER='test_map*' */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
