/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for vring/mem.c: region checks, mapping memfds (writable and read-only), the sorted table
 * (overlaps, order, removal) and the two translations (gpa ranges to iovecs, uva ranges to one pointer), also
 * with a full table of MEM_MAX_REGIONS regions.
 */
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

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PAGE 4096u

static int memfd_of(size_t size)
{
        int fd = memfd_create("test-mem", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

/* --- mem_region_check ---------------------------------------------------------------------------------------- */

struct check_case {
        const char *what;
        uint64_t gpa, size, uva, off;
        int ret;
        const char *why; /* part of the reason, NULL when ret == 0 */
};

static const struct check_case check_cases[] = {
        {"ordinary", 0x100000, 0x10000, 0x7f0000000000, 0, 0, NULL},
        {"one byte at the top of gpa and uva", UINT64_MAX, 1, UINT64_MAX, 0, 0, NULL},
        {"ends exactly at 2^64", UINT64_MAX - 0xfff, 0x1000, UINT64_MAX - 0xfff, 0, 0, NULL},
        {"empty", 0x1000, 0, 0x1000, 0, -EINVAL, "empty"},
        {"empty at 0", 0, 0, 0, 0, -EINVAL, "empty"},
        {"gpa wraps", UINT64_MAX - 0xfff, 0x1001, 0, 0, -EINVAL, "guest-physical"},
        {"gpa wraps by one", UINT64_MAX, 2, 0, 0, -EINVAL, "guest-physical"},
        {"uva wraps", 0, 0x2000, UINT64_MAX - 0x1000, 0, -EINVAL, "user address"},
        {"offset + size overflows", 0, 0x1000, 0, UINT64_MAX - 0xfff, -EINVAL, "mmap offset"},
        {"offset + size over INT64_MAX", 0, 0x1000, 0, (uint64_t)INT64_MAX - 0xffe, -EINVAL, "mmap offset"},
        {"offset + size exactly INT64_MAX", 0, 0x1000, 0, (uint64_t)INT64_MAX - 0x1000, 0, NULL},
        {"huge size", 0, (uint64_t)1 << 63, 0, 0, -EINVAL, NULL},
};

static void test_region_check(void **state)
{
        for (size_t i = 0; i < ARRAY_SIZE(check_cases); i++) {
                const struct check_case *c = &check_cases[i];
                const char *why = NULL;
                int r = mem_region_check(c->gpa, c->size, c->uva, c->off, &why);

                if (r != c->ret)
                        print_error("case '%s': got %d, expected %d\n", c->what, r, c->ret);
                assert_int_equal(r, c->ret);
                if (r < 0) {
                        assert_non_null(why);
                        if (c->why && !strstr(why, c->why))
                                print_error("case '%s': reason '%s' lacks '%s'\n", c->what, why, c->why);
                        if (c->why)
                                assert_non_null(strstr(why, c->why));
                }
        }
}

/* --- mapping -------------------------------------------------------------------------------------------------- */

static void test_map_memfd(void **state)
{
        struct mem_region r = {0};
        int fd = memfd_of(4 * PAGE);
        uint8_t *p;

        assert_int_equal(pwrite(fd, "hello", 5, PAGE), 5);
        /* The region starts PAGE bytes into the fd. */
        assert_int_equal(mem_region_map(&r, fd, 0x100000, 3 * PAGE, 0x7f0000100000, PAGE), 0);
        assert_true(r.writable);
        assert_int_equal(r.gpa, 0x100000);
        assert_int_equal(r.size, 3 * PAGE);
        assert_int_equal(r.uva, 0x7f0000100000);
        assert_int_equal(r.mmap_offset, PAGE);
        assert_non_null(r.map_base);
        assert_true(r.map_len >= 4 * PAGE);
        assert_ptr_equal(r.host, (uint8_t *)r.map_base + PAGE);
        assert_memory_equal(r.host, "hello", 5);
        /* Shared: a write through the mapping shows in the fd. */
        p = r.host + 2 * PAGE;
        memcpy(p, "world", 5);
        char buf[5];
        assert_int_equal(pread(fd, buf, 5, 3 * PAGE), 5);
        assert_memory_equal(buf, "world", 5);
        /* The fd is not consumed: the mapping outlives it. */
        close(fd);
        assert_memory_equal(r.host, "hello", 5);
        mem_region_unmap(&r);
        assert_null(r.map_base);
        assert_null(r.host);
        mem_region_unmap(&r); /* idempotent */
}

static void test_map_errors(void **state)
{
        struct mem_region r = {0};
        int fd = memfd_of(2 * PAGE);

        /* A regular file (memfds are) shorter than offset + size would SIGBUS later. */
        assert_int_equal(mem_region_map(&r, fd, 0, 3 * PAGE, 0, 0), -ERANGE);
        assert_int_equal(mem_region_map(&r, fd, 0, 2 * PAGE, 0, 1), -ERANGE);
        /* Bad descriptions never reach mmap. */
        assert_int_equal(mem_region_map(&r, fd, 0, 0, 0, 0), -EINVAL);
        assert_int_equal(mem_region_map(&r, fd, UINT64_MAX, 2, 0, 0), -EINVAL);
        close(fd);
        assert_int_equal(mem_region_map(&r, fd, 0, PAGE, 0, 0), -EBADF);
        assert_null(r.map_base);
}

/* --- a table of three regions: A and B adjacent in gpa (separate fds), a gap, then C ------------------------- */

#define A_GPA 0x10000ull
#define A_SIZE 0x4000ull
#define B_GPA (A_GPA + A_SIZE)
#define B_SIZE 0x4000ull
#define C_GPA 0x40000ull
#define C_SIZE 0x2000ull
#define UVA_OFF 0x7f0000000000ull

struct fixture {
        struct mem_table t;
        uint8_t *a, *b, *c; /* host pointers */
};

static void add_mapped(struct mem_table *t, uint64_t gpa, uint64_t size, uint64_t uva)
{
        struct mem_region r;
        const char *why = NULL;
        int fd = memfd_of(size);

        assert_int_equal(mem_region_map(&r, fd, gpa, size, uva, 0), 0);
        close(fd);
        assert_int_equal(mem_table_add(t, &r, &why), 0);
}

static const struct mem_region *region_at(const struct mem_table *t, uint64_t gpa)
{
        for (unsigned i = 0; i < t->nregions; i++)
                if (t->regions[i].gpa == gpa)
                        return &t->regions[i];
        fail();
        return NULL;
}

static int setup_table(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        /* Added out of order: the table sorts them. */
        add_mapped(&f->t, C_GPA, C_SIZE, C_GPA + UVA_OFF);
        add_mapped(&f->t, A_GPA, A_SIZE, A_GPA + UVA_OFF);
        add_mapped(&f->t, B_GPA, B_SIZE, B_GPA + UVA_OFF);
        f->a = region_at(&f->t, A_GPA)->host;
        f->b = region_at(&f->t, B_GPA)->host;
        f->c = region_at(&f->t, C_GPA)->host;
        *state = f;
        return 0;
}

static int teardown_table(void **state)
{
        struct fixture *f = *state;

        mem_table_clear(&f->t);
        assert_int_equal(f->t.nregions, 0);
        free(f);
        return 0;
}

static void test_sorted(void **state)
{
        struct fixture *f = *state;

        assert_int_equal(f->t.nregions, 3);
        assert_int_equal(f->t.regions[0].gpa, A_GPA);
        assert_int_equal(f->t.regions[1].gpa, B_GPA);
        assert_int_equal(f->t.regions[2].gpa, C_GPA);
        /* A and B are separate mappings, so a range crossing them cannot be one iovec. */
        assert_true(f->a + A_SIZE != f->b);
}

struct xlate_case {
        const char *what;
        uint64_t gpa, len;
        bool write;
        unsigned max;
        int ret;                  /* iov count or -errno */
        int region[2];            /* 'a', 'b', 'c' per iov */
        uint64_t off[2], ilen[2]; /* offset into that region, length */
};

#define XERR(w, g, l, wr, m, e)                                                                                        \
        {                                                                                                              \
                .what = w, .gpa = g, .len = l, .write = wr, .max = m, .ret = e                                         \
        }
#define XOK1(w, g, l, wr, m, r0, o0, l0)                                                                               \
        {                                                                                                              \
                .what = w, .gpa = g, .len = l, .write = wr, .max = m, .ret = 1, .region = {r0}, .off = {o0}, .ilen = { \
                        l0                                                                                             \
                }                                                                                                      \
        }
#define XOK2(w, g, l, wr, m, r0, o0, l0, r1, o1, l1)                                                                   \
        {                                                                                                              \
                .what = w, .gpa = g, .len = l, .write = wr, .max = m, .ret = 2, .region = {r0, r1}, .off = {o0, o1},   \
                .ilen = {                                                                                              \
                        l0,                                                                                            \
                        l1                                                                                             \
                }                                                                                                      \
        }

static const struct xlate_case xlate_cases[] = {
        XOK1("inside A", A_GPA + 0x100, 0x200, false, 4, 'a', 0x100, 0x200),
        XOK1("all of A", A_GPA, A_SIZE, true, 4, 'a', 0, A_SIZE),
        XOK1("first byte of A", A_GPA, 1, false, 4, 'a', 0, 1),
        XOK1("last byte of A", A_GPA + A_SIZE - 1, 1, false, 4, 'a', A_SIZE - 1, 1),
        XOK1("first byte of B", B_GPA, 1, false, 4, 'b', 0, 1),
        XOK1("last byte of C", C_GPA + C_SIZE - 1, 1, true, 1, 'c', C_SIZE - 1, 1),
        XOK2("crossing A|B", B_GPA - 0x10, 0x30, false, 4, 'a', A_SIZE - 0x10, 0x10, 'b', 0, 0x20),
        XOK2("all of A and B", A_GPA, A_SIZE + B_SIZE, true, 2, 'a', 0, A_SIZE, 'b', 0, B_SIZE),
        XERR("crossing A|B, max 1", B_GPA - 0x10, 0x30, false, 1, -ENOBUFS),
        XERR("crossing A|B, max 0", B_GPA - 0x10, 0x30, false, 0, -ENOBUFS),
        XERR("B into the gap", B_GPA + B_SIZE - 0x10, 0x11, false, 4, -EFAULT),
        XERR("in the gap", B_GPA + B_SIZE, 1, false, 4, -EFAULT),
        XERR("gap into C", C_GPA - 1, 2, false, 4, -EFAULT),
        XERR("one byte past C", C_GPA + C_SIZE, 1, false, 4, -EFAULT),
        XERR("C plus one byte", C_GPA, C_SIZE + 1, false, 4, -EFAULT),
        XERR("below A", A_GPA - 1, 1, false, 4, -EFAULT),
        XERR("at 0", 0, 1, false, 4, -EFAULT),
        XERR("len 0 inside", A_GPA, 0, false, 4, 0),
        XERR("len 0 outside", 0, 0, true, 0, 0),
        XERR("gpa + len wraps", UINT64_MAX, 2, false, 4, -EFAULT),
        XERR("huge len wraps", A_GPA, UINT64_MAX, false, 4, -EFAULT),
        XERR("huge len, no wrap", A_GPA, UINT64_MAX - A_GPA, false, 4, -EFAULT),
};

static uint8_t *host_of(const struct fixture *f, int region)
{
        return region == 'a' ? f->a : region == 'b' ? f->b : f->c;
}

static void run_xlate(const struct fixture *f, const struct xlate_case *c, unsigned hint)
{
        struct iovec iov[4];
        int r;

        memset(iov, 0xa5, sizeof(iov));
        r = mem_translate(&f->t, c->gpa, c->len, c->write, iov, c->max, &hint);
        if (r != c->ret)
                print_error("case '%s': got %d, expected %d\n", c->what, r, c->ret);
        assert_int_equal(r, c->ret);
        for (int i = 0; i < r; i++) {
                assert_ptr_equal(iov[i].iov_base, host_of(f, c->region[i]) + c->off[i]);
                assert_int_equal(iov[i].iov_len, c->ilen[i]);
        }
}

static void test_translate(void **state)
{
        const struct fixture *f = *state;
        static const unsigned hints[] = {0, 1, 2, 3, 31, 32, 12345, ~0u};

        /* Any hint value gives the same answer. */
        for (size_t h = 0; h < ARRAY_SIZE(hints); h++)
                for (size_t i = 0; i < ARRAY_SIZE(xlate_cases); i++)
                        run_xlate(f, &xlate_cases[i], hints[h]);
}

static void test_translate_hint_updates(void **state)
{
        const struct fixture *f = *state;
        struct iovec iov[2];
        unsigned hint = 0;

        assert_int_equal(mem_translate(&f->t, C_GPA, 8, false, iov, 2, &hint), 1);
        assert_int_equal(hint, 2);
        assert_int_equal(mem_translate(&f->t, B_GPA, 8, false, iov, 2, &hint), 1);
        assert_int_equal(hint, 1);
        /* A stale hint after a miss is harmless. */
        assert_int_equal(mem_translate(&f->t, 0, 8, false, iov, 2, &hint), -EFAULT);
        assert_int_equal(mem_translate(&f->t, A_GPA, 8, false, iov, 2, &hint), 1);
        assert_ptr_equal(iov[0].iov_base, f->a);
}

static void test_translate_data(void **state)
{
        const struct fixture *f = *state;
        struct iovec iov[2];
        unsigned hint = 0;

        memcpy(f->a + A_SIZE - 3, "abc", 3);
        memcpy(f->b, "def", 3);
        assert_int_equal(mem_translate(&f->t, B_GPA - 3, 6, false, iov, 2, &hint), 2);
        assert_memory_equal(iov[0].iov_base, "abc", 3);
        assert_memory_equal(iov[1].iov_base, "def", 3);
}

static void test_uva_to_host(void **state)
{
        const struct fixture *f = *state;

        assert_ptr_equal(mem_uva_to_host(&f->t, A_GPA + UVA_OFF, A_SIZE, true), f->a);
        assert_ptr_equal(mem_uva_to_host(&f->t, A_GPA + UVA_OFF + 0x10, 0x20, false), f->a + 0x10);
        assert_ptr_equal(mem_uva_to_host(&f->t, B_GPA + UVA_OFF + B_SIZE - 1, 1, false), f->b + B_SIZE - 1);
        assert_ptr_equal(mem_uva_to_host(&f->t, C_GPA + UVA_OFF, C_SIZE, false), f->c);
        /* Must be contiguous in one region, even when the next region follows in uva. */
        assert_null(mem_uva_to_host(&f->t, B_GPA + UVA_OFF - 8, 16, false));
        assert_null(mem_uva_to_host(&f->t, A_GPA + UVA_OFF, A_SIZE + 1, false));
        assert_null(mem_uva_to_host(&f->t, C_GPA + UVA_OFF + C_SIZE, 1, false));
        assert_null(mem_uva_to_host(&f->t, A_GPA + UVA_OFF - 1, 1, false));
        /* gpa is not uva. */
        assert_null(mem_uva_to_host(&f->t, A_GPA, 1, false));
        assert_null(mem_uva_to_host(&f->t, A_GPA + UVA_OFF, 0, false));
        assert_null(mem_uva_to_host(&f->t, UINT64_MAX, 2, false));
        assert_null(mem_uva_to_host(&f->t, A_GPA + UVA_OFF, UINT64_MAX, false));
}

/* --- read-only memory ----------------------------------------------------------------------------------------- */

static void check_read_only(struct mem_region *r, uint64_t gpa, uint64_t size)
{
        struct mem_table t = {0};
        const char *why;
        struct iovec iov[2];
        unsigned hint = 0;

        assert_false(r->writable);
        assert_int_equal(mem_table_add(&t, r, &why), 0);
        assert_int_equal(mem_translate(&t, gpa, size, false, iov, 2, &hint), 1);
        assert_memory_equal(iov[0].iov_base, "ro", 2);
        assert_int_equal(mem_translate(&t, gpa, size, true, iov, 2, &hint), -EFAULT);
        assert_int_equal(mem_translate(&t, gpa + size - 1, 1, true, iov, 2, &hint), -EFAULT);
        assert_non_null(mem_uva_to_host(&t, gpa + UVA_OFF, size, false));
        assert_null(mem_uva_to_host(&t, gpa + UVA_OFF, size, true));
        mem_table_clear(&t);
}

static void test_read_only_sealed_memfd(void **state)
{
        struct mem_region r = {0};
        int fd = memfd_of(PAGE);

        assert_int_equal(pwrite(fd, "ro", 2, 0), 2);
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
        assert_int_equal(mem_region_map(&r, fd, 0x1000, PAGE, 0x1000 + UVA_OFF, 0), 0);
        close(fd);
        check_read_only(&r, 0x1000, PAGE);
}

static void test_read_only_file(void **state)
{
        char path[] = "/tmp/test_mem.XXXXXX";
        struct mem_region r = {0};
        int wfd = mkstemp(path), fd;

        assert_true(wfd >= 0);
        assert_int_equal(ftruncate(wfd, PAGE), 0);
        assert_int_equal(pwrite(wfd, "ro", 2, 0), 2);
        close(wfd);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        unlink(path);
        assert_int_equal(mem_region_map(&r, fd, 0x1000, PAGE, 0x1000 + UVA_OFF, 0), 0);
        close(fd);
        check_read_only(&r, 0x1000, PAGE);
}

/* --- the table without mappings (mem_table_add never looks at host memory) ----------------------------------- */

static struct mem_region fake(uint64_t gpa, uint64_t size, uint64_t uva)
{
        return (struct mem_region){.gpa = gpa, .size = size, .uva = uva, .writable = true, .refs = 1};
}

struct overlap_case {
        const char *what;
        uint64_t gpa, size, uva;
        int ret;
        const char *why;
};

/* Against a table holding [0x10000, 0x20000) at uva [0x110000, 0x120000) and [0x30000, 0x31000) at uva 0x500000. */
static const struct overlap_case overlap_cases[] = {
        {"below, touching", 0xf000, 0x1000, 0x900000, 0, NULL},
        {"between, touching both", 0x20000, 0x10000, 0x900000, 0, NULL},
        {"above, touching", 0x31000, 0x1000, 0x900000, 0, NULL},
        {"top of the address space", UINT64_MAX - 0xfff, 0x1000, UINT64_MAX - 0xfff, 0, NULL},
        {"gpa: one byte into the start", 0xf000, 0x1001, 0x900000, -EEXIST, "guest-physical"},
        {"gpa: last byte", 0x1ffff, 1, 0x900000, -EEXIST, "guest-physical"},
        {"gpa: inside", 0x18000, 0x10, 0x900000, -EEXIST, "guest-physical"},
        {"gpa: covering", 0x0, 0x100000, 0x900000, -EEXIST, "guest-physical"},
        {"gpa: identical", 0x30000, 0x1000, 0x900000, -EEXIST, "guest-physical"},
        {"uva: one byte into the start", 0x40000, 0x1000, 0x10f001, -EEXIST, "user address"},
        {"uva: last byte", 0x40000, 0x1000, 0x11ffff, -EEXIST, "user address"},
        {"uva: covering", 0x40000, 0x1000000, 0x0, -EEXIST, "user address"},
        {"uva: identical to the second", 0x40000, 0x1000, 0x500000, -EEXIST, "user address"},
};

static void test_overlap(void **state)
{
        for (size_t i = 0; i < ARRAY_SIZE(overlap_cases); i++) {
                const struct overlap_case *c = &overlap_cases[i];
                struct mem_table t = {0};
                struct mem_region r = fake(0x10000, 0x10000, 0x110000);
                const char *why = NULL;
                int ret;

                assert_int_equal(mem_table_add(&t, &r, &why), 0);
                r = fake(0x30000, 0x1000, 0x500000);
                assert_int_equal(mem_table_add(&t, &r, &why), 0);
                r = fake(c->gpa, c->size, c->uva);
                why = NULL;
                ret = mem_table_add(&t, &r, &why);
                if (ret != c->ret)
                        print_error("case '%s': got %d, expected %d\n", c->what, ret, c->ret);
                assert_int_equal(ret, c->ret);
                assert_int_equal(t.nregions, ret == 0 ? 3 : 2);
                if (ret < 0)
                        assert_non_null(strstr(why, c->why));
                for (unsigned j = 1; j < t.nregions; j++)
                        assert_true(t.regions[j - 1].gpa < t.regions[j].gpa);
        }
}

static void test_sorted_and_full(void **state)
{
        static const unsigned order[] = {7, 0, 31, 15, 16, 3};
        struct mem_table t = {0};
        struct mem_region r;
        const char *why;
        bool used[MEM_MAX_REGIONS] = {0};

        for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
                r = fake(0x100000ull * order[i], 0x1000, 0x10000000ull + 0x100000ull * order[i]);
                assert_int_equal(mem_table_add(&t, &r, &why), 0);
                used[order[i]] = true;
        }
        for (unsigned k = 0; k < MEM_MAX_REGIONS; k++) {
                if (used[k])
                        continue;
                r = fake(0x100000ull * k, 0x1000, 0x10000000ull + 0x100000ull * k);
                assert_int_equal(mem_table_add(&t, &r, &why), 0);
        }
        assert_int_equal(t.nregions, MEM_MAX_REGIONS);
        for (unsigned k = 0; k < MEM_MAX_REGIONS; k++)
                assert_int_equal(t.regions[k].gpa, 0x100000ull * k);
        r = fake(0x100000ull * 40, 0x1000, 0x90000000ull);
        why = NULL;
        assert_int_equal(mem_table_add(&t, &r, &why), -E2BIG);
        assert_non_null(why);
        assert_int_equal(t.nregions, MEM_MAX_REGIONS);
}

static void test_remove(void **state)
{
        struct mem_table t = {0};
        struct mem_region r, gone;
        const char *why;

        for (unsigned k = 0; k < 4; k++) {
                r = fake(0x10000ull * k, 0x1000, 0x900000ull + 0x10000ull * k);
                assert_int_equal(mem_table_add(&t, &r, &why), 0);
        }
        /* Only an exact (gpa, size, uva) match goes. */
        assert_int_equal(mem_table_remove(&t, 0x10000, 0x1000, 0x910001, &gone), -ENOENT);
        assert_int_equal(mem_table_remove(&t, 0x10000, 0x2000, 0x910000, &gone), -ENOENT);
        assert_int_equal(mem_table_remove(&t, 0x10001, 0x1000, 0x910000, &gone), -ENOENT);
        assert_int_equal(t.nregions, 4);
        assert_int_equal(mem_table_find(&t, 0x10000, 0x1000, 0x910000), 1);
        assert_int_equal(mem_table_find(&t, 0x10000, 0x1000, 0x910001), -1);
        assert_int_equal(mem_table_remove(&t, 0x10000, 0x1000, 0x910000, &gone), 1);
        assert_int_equal(gone.gpa, 0x10000);
        assert_int_equal(gone.uva, 0x910000);
        assert_int_equal(t.nregions, 3);
        assert_int_equal(t.regions[0].gpa, 0);
        assert_int_equal(t.regions[1].gpa, 0x20000);
        assert_int_equal(t.regions[2].gpa, 0x30000);
        assert_int_equal(t.regions[3].size, 0); /* the vacated slot is cleared */
        assert_int_equal(mem_table_remove(&t, 0x10000, 0x1000, 0x910000, &gone), -ENOENT);
        /* Its range is free again, and lookups still work around the hole. */
        r = fake(0x10000, 0x1000, 0x910000);
        assert_int_equal(mem_table_add(&t, &r, &why), 0);
        assert_int_equal(t.regions[1].gpa, 0x10000);
        assert_int_equal(mem_table_remove(&t, 0x30000, 0x1000, 0x930000, &gone), 1);
        assert_int_equal(mem_table_remove(&t, 0, 0x1000, 0x900000, &gone), 1);
        assert_int_equal(t.nregions, 2);
        assert_int_equal(t.regions[0].gpa, 0x10000);
        assert_int_equal(t.regions[1].gpa, 0x20000);
}

/* A region added once per queue pair (ADD_MEM_REG) is counted, and leaves with its last reference. */
static void test_remove_refs(void **state)
{
        struct mem_table t = {0};
        struct mem_region r, gone;
        const char *why;
        int fd = memfd_of(PAGE);

        assert_int_equal(mem_region_map(&r, fd, 0x10000, PAGE, 0x910000, 0), 0);
        close(fd);
        assert_int_equal(r.refs, 1);
        assert_int_equal(mem_table_add(&t, &r, &why), 0);
        r = fake(0x20000, 0x1000, 0x920000);
        assert_int_equal(mem_table_add(&t, &r, &why), 0);
        t.regions[0].refs += 2;
        memset(&gone, 0xa5, sizeof(gone));
        assert_int_equal(mem_table_remove(&t, 0x10000, PAGE, 0x910000, &gone), 0);
        assert_int_equal(mem_table_remove(&t, 0x10000, PAGE, 0x910000, &gone), 0);
        assert_int_equal(t.nregions, 2);
        assert_int_equal(t.regions[0].refs, 1);
        assert_int_equal(mem_table_remove(&t, 0x10000, PAGE, 0x910000, &gone), 1);
        assert_int_equal(t.nregions, 1);
        assert_int_equal(gone.gpa, 0x10000);
        assert_non_null(gone.map_base);
        mem_region_unmap(&gone);
        assert_int_equal(mem_table_remove(&t, 0x10000, PAGE, 0x910000, &gone), -ENOENT);
        assert_int_equal(t.regions[0].gpa, 0x20000);
}

/* The last byte of the address space can be translated, and the loop ends although gpa wraps to 0. */
static void test_top_of_address_space(void **state)
{
        struct mem_table t = {0};
        struct mem_region r = {0};
        struct iovec iov[2];
        const char *why;
        unsigned hint = 0;
        int fd = memfd_of(PAGE);

        assert_int_equal(mem_region_map(&r, fd, UINT64_MAX - (PAGE - 1), PAGE, UINT64_MAX - (PAGE - 1), 0), 0);
        close(fd);
        assert_int_equal(mem_table_add(&t, &r, &why), 0);
        assert_int_equal(mem_translate(&t, UINT64_MAX, 1, true, iov, 2, &hint), 1);
        assert_ptr_equal(iov[0].iov_base, r.host + PAGE - 1);
        assert_int_equal(mem_translate(&t, UINT64_MAX - (PAGE - 1), PAGE, true, iov, 2, &hint), 1);
        assert_int_equal(iov[0].iov_len, PAGE);
        assert_int_equal(mem_translate(&t, UINT64_MAX, 2, true, iov, 2, &hint), -EFAULT);
        assert_ptr_equal(mem_uva_to_host(&t, UINT64_MAX, 1, true), r.host + PAGE - 1);
        assert_null(mem_uva_to_host(&t, UINT64_MAX, 2, true));
        mem_table_clear(&t);
}

/* Many small regions: a range crossing all of them needs one iovec each. */
static void test_many_regions(void **state)
{
        struct mem_table t = {0};
        struct iovec iov[MEM_MAX_REGIONS];
        unsigned hint = 0;

        for (unsigned k = 0; k < MEM_MAX_REGIONS; k++)
                add_mapped(&t, 0x100000 + k * PAGE, PAGE, 0x900000 + k * 2 * PAGE);
        assert_int_equal(mem_translate(&t, 0x100000, MEM_MAX_REGIONS * PAGE, false, iov, MEM_MAX_REGIONS, &hint),
                         MEM_MAX_REGIONS);
        for (unsigned k = 0; k < MEM_MAX_REGIONS; k++) {
                assert_ptr_equal(iov[k].iov_base, t.regions[k].host);
                assert_int_equal(iov[k].iov_len, PAGE);
        }
        assert_int_equal(
                mem_translate(&t, 0x100000 + 1, MEM_MAX_REGIONS * PAGE - 1, false, iov, MEM_MAX_REGIONS - 1, &hint),
                -ENOBUFS);
        /* uva regions are not adjacent here: contiguity is per region. */
        assert_null(mem_uva_to_host(&t, 0x900000 + PAGE - 1, 2, false));
        mem_table_clear(&t);
}

/*
 * A full table of MEM_MAX_REGIONS regions (no mappings: host pointers into one buffer), with gaps between some
 * regions and not others, and uvas in an order unrelated to the gpas (uva order is a permutation of gpa order).
 */
#define FULL_UVA 0x7f0000000000ull

struct full {
        struct mem_table t;
        uint8_t *buf;
        uint64_t gpa[MEM_MAX_REGIONS], size[MEM_MAX_REGIONS], uva[MEM_MAX_REGIONS];
        uint8_t *host[MEM_MAX_REGIONS];
};

static void full_layout(struct full *f)
{
        uint64_t gpa = 0x1000, off = 0;

        for (unsigned k = 0; k < MEM_MAX_REGIONS; k++) {
                f->size[k] = PAGE * (1 + k % 4);
                f->gpa[k] = gpa;
                /* Every third region follows its predecessor directly; the others leave a gap of a page or two. */
                gpa += f->size[k] + (k % 3 == 2 ? 0 : PAGE * (1 + k % 2));
                /* 509 is prime: k -> 211 k mod 509 is a permutation, so uva order is shuffled against gpa order. */
                f->uva[k] = FULL_UVA + ((uint64_t)k * 211 % MEM_MAX_REGIONS) * 0x100000;
                f->host[k] = f->buf + off;
                off += f->size[k] + 64; /* not adjacent in host memory either */
        }
}

static void full_setup(struct full *f)
{
        const char *why;

        f->buf = calloc(MEM_MAX_REGIONS, 4 * PAGE + 64);
        assert_non_null(f->buf);
        full_layout(f);
        /* Added in a third order (k * 97 mod 509), so insertion hits the middle of both orders. */
        for (unsigned i = 0; i < MEM_MAX_REGIONS; i++) {
                unsigned k = (unsigned)((uint64_t)i * 97 % MEM_MAX_REGIONS);
                struct mem_region r = fake(f->gpa[k], f->size[k], f->uva[k]);

                r.host = f->host[k];
                assert_int_equal(mem_table_add(&f->t, &r, &why), 0);
        }
        assert_int_equal(f->t.nregions, MEM_MAX_REGIONS);
}

/* Both orders hold: regions[] by gpa, by_uva[] a permutation by uva. */
static void check_orders(const struct mem_table *t)
{
        bool seen[MEM_MAX_REGIONS] = {0};

        for (unsigned i = 0; i < t->nregions; i++) {
                assert_true(t->by_uva[i] < t->nregions);
                assert_false(seen[t->by_uva[i]]);
                seen[t->by_uva[i]] = true;
                if (i > 0) {
                        assert_true(t->regions[i - 1].gpa + t->regions[i - 1].size <= t->regions[i].gpa);
                        assert_true(t->regions[t->by_uva[i - 1]].uva < t->regions[t->by_uva[i]].uva);
                }
        }
}

static void expect_one(const struct mem_table *t, uint64_t gpa, uint64_t len, unsigned *hint, const uint8_t *host)
{
        struct iovec iov[2];
        int r = mem_translate(t, gpa, len, true, iov, 2, hint);

        if (r != 1)
                print_error("gpa 0x%llx+%llu: %d\n", (unsigned long long)gpa, (unsigned long long)len, r);
        assert_int_equal(r, 1);
        assert_ptr_equal(iov[0].iov_base, host);
        assert_int_equal(iov[0].iov_len, len);
}

static void test_full_table_translate(void **state)
{
        struct full *f = calloc(1, sizeof(*f));
        struct iovec iov[2];
        unsigned hint = 0;

        assert_non_null(f);
        full_setup(f);
        check_orders(&f->t);
        for (unsigned k = 0; k < MEM_MAX_REGIONS; k++) {
                uint64_t g = f->gpa[k], n = f->size[k];
                bool gap_before = k == 0 || f->gpa[k - 1] + f->size[k - 1] < g;
                bool gap_after = k == MEM_MAX_REGIONS - 1 || g + n < f->gpa[k + 1];
                unsigned stale = (k * 7 + 3) % MEM_MAX_REGIONS;

                /* Every region, with the hint on it, on another region, and out of range. */
                expect_one(&f->t, g, n, &hint, f->host[k]);
                assert_int_equal(hint, k);
                hint = stale;
                expect_one(&f->t, g + n - 1, 1, &hint, f->host[k] + n - 1);
                assert_int_equal(hint, k);
                hint = ~0u;
                expect_one(&f->t, g + PAGE / 2, 8, &hint, f->host[k] + PAGE / 2);
                /* Edges: the byte before and after is another region or nothing. */
                hint = k;
                if (gap_before) {
                        assert_int_equal(mem_translate(&f->t, g - 1, 1, false, iov, 2, &hint), -EFAULT);
                        assert_int_equal(mem_translate(&f->t, g - 1, 2, false, iov, 2, &hint), -EFAULT);
                } else {
                        assert_int_equal(mem_translate(&f->t, g - 1, 2, false, iov, 2, &hint), 2);
                        assert_ptr_equal(iov[0].iov_base, f->host[k - 1] + f->size[k - 1] - 1);
                        assert_ptr_equal(iov[1].iov_base, f->host[k]);
                }
                hint = k;
                if (gap_after) {
                        assert_int_equal(mem_translate(&f->t, g + n, 1, false, iov, 2, &hint), -EFAULT);
                        assert_int_equal(mem_translate(&f->t, g, n + 1, false, iov, 2, &hint), -EFAULT);
                } else {
                        expect_one(&f->t, g + n, 1, &hint, f->host[k + 1]);
                        assert_int_equal(hint, k + 1);
                }
        }
        /* Below the first and above the last region. */
        assert_int_equal(mem_translate(&f->t, 0, 1, false, iov, 2, &hint), -EFAULT);
        assert_int_equal(mem_translate(&f->t, f->gpa[MEM_MAX_REGIONS - 1] + f->size[MEM_MAX_REGIONS - 1], 1, false, iov,
                                       2, &hint),
                         -EFAULT);
        assert_int_equal(mem_translate(&f->t, UINT64_MAX, 1, false, iov, 2, &hint), -EFAULT);
        free(f->buf);
        free(f);
}

static void test_full_table_uva(void **state)
{
        struct full *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        full_setup(f);
        for (unsigned k = 0; k < MEM_MAX_REGIONS; k++) {
                uint64_t u = f->uva[k], n = f->size[k];

                assert_ptr_equal(mem_uva_to_host(&f->t, u, n, true), f->host[k]);
                assert_ptr_equal(mem_uva_to_host(&f->t, u, 1, false), f->host[k]);
                assert_ptr_equal(mem_uva_to_host(&f->t, u + n - 1, 1, false), f->host[k] + n - 1);
                assert_ptr_equal(mem_uva_to_host(&f->t, u + 8, n - 8, false), f->host[k] + 8);
                assert_null(mem_uva_to_host(&f->t, u, n + 1, false));
                assert_null(mem_uva_to_host(&f->t, u + n, 1, false));
                assert_null(mem_uva_to_host(&f->t, u - 1, 1, false));
                assert_null(mem_uva_to_host(&f->t, u - 1, 2, false));
                /* A gpa is not a uva. */
                assert_null(mem_uva_to_host(&f->t, f->gpa[k], 1, false));
        }
        assert_null(mem_uva_to_host(&f->t, FULL_UVA - 1, 1, false));
        assert_null(mem_uva_to_host(&f->t, FULL_UVA + MEM_MAX_REGIONS * 0x100000ull, 1, false));
        free(f->buf);
        free(f);
}

/* Random adds and removes against a model: both orders, find, translate and uva lookups stay right. */
static void test_table_add_remove_model(void **state)
{
        struct full *f = calloc(1, sizeof(*f));
        bool in[MEM_MAX_REGIONS] = {0};
        unsigned count = 0;
        uint32_t rnd = 1;

        assert_non_null(f);
        f->buf = calloc(MEM_MAX_REGIONS, 4 * PAGE + 64);
        assert_non_null(f->buf);
        full_layout(f);
        for (unsigned step = 0; step < 20000; step++) {
                unsigned k;
                const char *why;
                struct mem_region gone;

                rnd = rnd * 1103515245u + 12345u;
                k = (rnd >> 8) % MEM_MAX_REGIONS;
                if (!in[k]) {
                        struct mem_region r = fake(f->gpa[k], f->size[k], f->uva[k]);

                        r.host = f->host[k];
                        assert_int_equal(mem_table_add(&f->t, &r, &why), 0);
                        in[k] = true;
                        count++;
                } else {
                        assert_int_equal(mem_table_remove(&f->t, f->gpa[k], f->size[k], f->uva[k], &gone), 1);
                        assert_int_equal(gone.gpa, f->gpa[k]);
                        in[k] = false;
                        count--;
                }
                assert_int_equal(f->t.nregions, count);
                if (step % 97)
                        continue;
                check_orders(&f->t);
                for (unsigned j = 0; j < MEM_MAX_REGIONS; j++) {
                        struct iovec iov;
                        unsigned hint = j;
                        int r = mem_translate(&f->t, f->gpa[j] + 1, 1, false, &iov, 1, &hint);

                        if (in[j]) {
                                assert_int_equal(r, 1);
                                assert_ptr_equal(iov.iov_base, f->host[j] + 1);
                                assert_true(mem_table_find(&f->t, f->gpa[j], f->size[j], f->uva[j]) >= 0);
                                assert_ptr_equal(mem_uva_to_host(&f->t, f->uva[j] + 1, 1, false), f->host[j] + 1);
                        } else {
                                assert_int_equal(r, -EFAULT);
                                assert_int_equal(mem_table_find(&f->t, f->gpa[j], f->size[j], f->uva[j]), -1);
                                assert_null(mem_uva_to_host(&f->t, f->uva[j] + 1, 1, false));
                        }
                }
        }
        free(f->buf);
        free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_region_check),
                cmocka_unit_test(test_map_memfd),
                cmocka_unit_test(test_map_errors),
                cmocka_unit_test_setup_teardown(test_sorted, setup_table, teardown_table),
                cmocka_unit_test_setup_teardown(test_translate, setup_table, teardown_table),
                cmocka_unit_test_setup_teardown(test_translate_hint_updates, setup_table, teardown_table),
                cmocka_unit_test_setup_teardown(test_translate_data, setup_table, teardown_table),
                cmocka_unit_test_setup_teardown(test_uva_to_host, setup_table, teardown_table),
                cmocka_unit_test(test_read_only_sealed_memfd),
                cmocka_unit_test(test_read_only_file),
                cmocka_unit_test(test_overlap),
                cmocka_unit_test(test_sorted_and_full),
                cmocka_unit_test(test_remove),
                cmocka_unit_test(test_remove_refs),
                cmocka_unit_test(test_top_of_address_space),
                cmocka_unit_test(test_many_regions),
                cmocka_unit_test(test_full_table_translate),
                cmocka_unit_test(test_full_table_uva),
                cmocka_unit_test(test_table_add_remove_model),
        };

        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER")); /* e.g. TEST_FILTER='test_map*' */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
