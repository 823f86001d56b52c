/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for vring/log.c (the dirty log of live migration) and for the logging done by vring/vq.c.
 *
 * The bitmap is checked against a reference built here bit by bit (page p is bit p % 8 of byte p / 8). Logs under
 * test end exactly where a PROT_NONE guard page begins, so a write past the log crashes the test.
 *
 * The queue tests use real guest RAM (memfd regions in a struct mem_table):
 *   R0 [0, 0x100000) and R1 [0x100000, 0x110000): adjacent in gpa, separate mappings (a buffer across them
 *   takes two iovecs). The used ring sits across a page boundary: flags and idx on page 2, entries 0-2 on page 2,
 *   entry 3 across pages 2|3, entries 4-7 and avail_event on page 3.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PAGE 4096ull

/* ---- a log that ends at a guard page ---------------------------------------------------------------------- */

struct guarded {
        uint8_t *map; /* two pages: the log at the end of the first, the second PROT_NONE */
        struct vq_log log;
};

static void guarded_init(struct guarded *g, uint64_t size)
{
        assert_true(size <= PAGE);
        g->map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(g->map != MAP_FAILED);
        assert_int_equal(mprotect(g->map + PAGE, PAGE, PROT_NONE), 0);
        memset(g->map, 0, PAGE);
        vlog_init(&g->log, g->map + PAGE - size, size);
}

static void guarded_done(struct guarded *g)
{
        /* Nothing before the log was touched either. */
        for (uint64_t i = 0; i < PAGE - g->log.size; i++)
                assert_int_equal(g->map[i], 0);
        vlog_unmap(&g->log); /* caller memory: left alone */
        munmap(g->map, 2 * PAGE);
}

static bool bit(const struct vq_log *log, uint64_t page)
{
        return log->base[page / 8] & (1u << (page % 8));
}

/* The log holds exactly pages [first, last] (none when first > last). */
static void expect_pages(const struct vq_log *log, uint64_t first, uint64_t last, const char *what)
{
        for (uint64_t p = 0; p < log->size * 8; p++) {
                bool want = p >= first && p <= last;

                if (bit(log, p) != want)
                        fail_msg("%s: page %llu is %s", what, (unsigned long long)p, want ? "clear" : "set");
        }
}

/* ---- vlog_mark: bit and byte math ------------------------------------------------------------------------- */

#define LOG_SIZE 16ull /* 128 pages: gpa [0, 512 KiB) */
#define LAST_PAGE (LOG_SIZE * 8 - 1)
#define NONE 1, 0 /* first > last: nothing marked */

struct mark_case {
        const char *what;
        uint64_t gpa, len;
        int ret;
        uint64_t first, last; /* pages expected set */
};

static const struct mark_case mark_cases[] = {
        {"gpa 0, one byte", 0, 1, 0, 0, 0},
        {"gpa 0, one page", 0, PAGE, 0, 0, 0},
        {"gpa 0, a page and a byte", 0, PAGE + 1, 0, 0, 1},
        {"last byte of page 0", 4095, 1, 0, 0, 0},
        {"4095 + 2 bytes: pages 0 and 1", 4095, 2, 0, 0, 1},
        {"first byte of page 1", 4096, 1, 0, 1, 1},
        {"page 1 exactly", 4096, PAGE, 0, 1, 1},
        {"inside page 5", 5 * PAGE + 100, 200, 0, 5, 5},
        {"page 7 into 8: across a byte of the log", 7 * PAGE + 4000, 200, 0, 7, 8},
        {"page 8 alone: bit 0 of byte 1", 8 * PAGE, 1, 0, 8, 8},
        {"pages 3..20: partial, full, partial byte", 3 * PAGE + 1, 17 * PAGE, 0, 3, 20},
        {"pages 8..15: one whole byte", 8 * PAGE, 8 * PAGE, 0, 8, 15},
        {"pages 8..23: two whole bytes", 8 * PAGE, 16 * PAGE, 0, 8, 23},
        {"everything", 0, LOG_SIZE * 8 * PAGE, 0, 0, LAST_PAGE},
        {"last bit of the log", LAST_PAGE *PAGE, PAGE, 0, LAST_PAGE, LAST_PAGE},
        {"last byte of the log's range", LAST_PAGE *PAGE + PAGE - 1, 1, 0, LAST_PAGE, LAST_PAGE},
        {"last page and one byte past the log", LAST_PAGE *PAGE, PAGE + 1, -ERANGE, LAST_PAGE, LAST_PAGE},
        {"from page 120 to far past the log", 120 * PAGE, 1ull << 40, -ERANGE, 120, LAST_PAGE},
        {"first byte past the log", (LAST_PAGE + 1) * PAGE, 1, -ERANGE, NONE},
        {"far past the log", 1ull << 40, PAGE, -ERANGE, NONE},
        {"top of the address space", UINT64_MAX, 1, -ERANGE, NONE},
        {"wraps around the address space", UINT64_MAX - 10, 100, -ERANGE, NONE},
        {"wraps, starting inside the log", 5 * PAGE, UINT64_MAX, -ERANGE, 5, LAST_PAGE},
        {"length 0", 5 * PAGE, 0, 0, NONE},
        {"length 0 past the log", 1ull << 40, 0, 0, NONE},
};

static void test_mark_cases(void **state)
{
        for (size_t i = 0; i < ARRAY_SIZE(mark_cases); i++) {
                const struct mark_case *c = &mark_cases[i];
                struct guarded g;
                int r;

                guarded_init(&g, LOG_SIZE);
                r = vlog_mark(&g.log, c->gpa, c->len);
                if (r != c->ret)
                        fail_msg("case '%s': got %d, expected %d", c->what, r, c->ret);
                expect_pages(&g.log, c->first, c->last, c->what);
                /* Marking again changes nothing: an OR. */
                assert_int_equal(vlog_mark(&g.log, c->gpa, c->len), c->ret);
                expect_pages(&g.log, c->first, c->last, c->what);
                guarded_done(&g);
        }
}

/* Marks accumulate and never clear other bits; a log of one byte works too. */
static void test_mark_accumulates(void **state)
{
        struct guarded g;

        guarded_init(&g, 1);
        assert_int_equal(vlog_mark(&g.log, 2 * PAGE, 1), 0);
        assert_int_equal(g.log.base[0], 0x04);
        assert_int_equal(vlog_mark(&g.log, 7 * PAGE + 5, 1), 0);
        assert_int_equal(g.log.base[0], 0x84);
        assert_int_equal(vlog_mark(&g.log, 0, 2 * PAGE), 0);
        assert_int_equal(g.log.base[0], 0x87);
        assert_int_equal(vlog_mark(&g.log, 6 * PAGE, 3 * PAGE), -ERANGE);
        assert_int_equal(g.log.base[0], 0xc7);
        assert_int_equal(vlog_mark(&g.log, 8 * PAGE, 1), -ERANGE);
        assert_int_equal(g.log.base[0], 0xc7);
        guarded_done(&g);
}

/* A full-size log (a page of bitmap) marked at its very end. */
static void test_mark_page_sized_log(void **state)
{
        struct guarded g;
        uint64_t last = PAGE * 8 - 1;

        guarded_init(&g, PAGE);
        assert_int_equal(vlog_mark(&g.log, last * PAGE, 2 * PAGE), -ERANGE);
        assert_int_equal(g.log.base[PAGE - 1], 0x80);
        assert_int_equal(vlog_mark(&g.log, (last - 9) * PAGE, 10 * PAGE), 0); /* pages 32758..32767 */
        assert_int_equal(g.log.base[PAGE - 3], 0x00);
        assert_int_equal(g.log.base[PAGE - 2], 0xc0);
        assert_int_equal(g.log.base[PAGE - 1], 0xff);
        guarded_done(&g);
}

/* ---- vlog_covers -------------------------------------------------------------------------------------------- */

static struct mem_region fake(uint64_t gpa, uint64_t size, uint64_t uva)
{
        return (struct mem_region){.gpa = gpa, .size = size, .uva = uva, .writable = true, .refs = 1};
}

static void test_covers(void **state)
{
        uint8_t buf[16] = {0};
        struct mem_table *t = calloc(1, sizeof(*t));
        struct vq_log log;
        struct mem_region r;
        const char *why;
        const uint64_t top = 16 * 8 * PAGE; /* what 16 bytes cover: 512 KiB */

        assert_non_null(t);
        vlog_init(&log, buf, sizeof(buf));
        assert_true(vlog_covers(&log, NULL));
        assert_true(vlog_covers(&log, t));
        assert_true(vlog_covers(NULL, t));

        r = fake(0x10000, 0x1000, 0x900000);
        assert_int_equal(mem_table_add(t, &r, &why), 0);
        assert_true(vlog_covers(&log, t));
        assert_false(vlog_covers(NULL, t));
        /* The highest region decides, whatever order they came in. */
        r = fake(top - PAGE, PAGE, 0xa00000);
        assert_int_equal(mem_table_add(t, &r, &why), 0);
        r = fake(0x20000, PAGE, 0xb00000);
        assert_int_equal(mem_table_add(t, &r, &why), 0);
        assert_true(vlog_covers(&log, t));
        r = fake(top, 1, 0xc00000); /* one byte more */
        assert_int_equal(mem_table_add(t, &r, &why), 0);
        assert_false(vlog_covers(&log, t));
        log.size = 17;
        assert_true(vlog_covers(&log, t));
        /* A region ending at 2^64 needs a bit for page 2^52 - 1. */
        r = fake(UINT64_MAX - PAGE + 1, PAGE, 0xd00000);
        assert_int_equal(mem_table_add(t, &r, &why), 0);
        assert_false(vlog_covers(&log, t));
        log.size = 1ull << 49;
        assert_true(vlog_covers(&log, t));
        free(t);

        log.size = 16;
        assert_true(vlog_covers_range(&log, 0, 0));
        assert_true(vlog_covers_range(&log, 1ull << 50, 0));
        assert_true(vlog_covers_range(&log, 0, top));
        assert_false(vlog_covers_range(&log, 0, top + 1));
        assert_true(vlog_covers_range(&log, top - 1, 1));
        assert_false(vlog_covers_range(&log, top, 1));
        assert_false(vlog_covers_range(&log, UINT64_MAX, 2)); /* wraps */
        assert_false(vlog_covers_range(NULL, 0, 1));
}

/* ---- vlog_map ----------------------------------------------------------------------------------------------- */

static int memfd_of(size_t size)
{
        int fd = memfd_create("test-log", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

static void test_map(void **state)
{
        static const uint64_t offsets[] = {0, 100, PAGE, 3 * PAGE + 8};
        struct vq_log log = {0};
        uint8_t byte;

        for (size_t i = 0; i < ARRAY_SIZE(offsets); i++) {
                uint64_t off = offsets[i], size = 2 * PAGE + 24;
                int fd = memfd_of(off + size);

                assert_int_equal(vlog_map(&log, fd, size, off), 0);
                assert_int_equal(log.size, size);
                assert_non_null(log.map_base);
                assert_ptr_equal(log.base, (uint8_t *)log.map_base + off);
                /* Shared with the front-end: the bit shows in the fd, at offset + byte. */
                assert_int_equal(vlog_mark(&log, 9 * PAGE, 1), 0);
                assert_int_equal(vlog_mark(&log, (size * 8 - 1) * PAGE, 1), 0);
                assert_int_equal(pread(fd, &byte, 1, (off_t)(off + 1)), 1);
                assert_int_equal(byte, 0x02);
                assert_int_equal(pread(fd, &byte, 1, (off_t)(off + size - 1)), 1);
                assert_int_equal(byte, 0x80);
                /* And the front-end clearing it shows here. */
                byte = 0;
                assert_int_equal(pwrite(fd, &byte, 1, (off_t)(off + 1)), 1);
                assert_int_equal(log.base[1], 0);
                close(fd); /* the fd is not consumed: the mapping outlives it */
                assert_int_equal(vlog_mark(&log, 0, 1), 0);
                vlog_unmap(&log);
                assert_null(log.base);
                assert_null(log.map_base);
                assert_int_equal(log.size, 0);
                vlog_unmap(&log); /* idempotent */
        }
        vlog_unmap(NULL);
}

static void test_map_errors(void **state)
{
        struct vq_log log = {0};
        int fd = memfd_of(2 * PAGE);

        assert_int_equal(vlog_map(&log, fd, 0, 0), -EINVAL);
        assert_int_equal(vlog_map(&log, fd, 2 * PAGE, UINT64_MAX - PAGE), -EINVAL); /* offset + size overflows */
        assert_int_equal(vlog_map(&log, fd, 1, (uint64_t)INT64_MAX), -EINVAL);
        /* A file shorter than offset + size would SIGBUS on a mark. */
        assert_int_equal(vlog_map(&log, fd, 2 * PAGE + 1, 0), -ERANGE);
        assert_int_equal(vlog_map(&log, fd, 2 * PAGE, 1), -ERANGE);
        assert_null(log.base);
        assert_int_equal(vlog_map(&log, fd, 2 * PAGE, 0), 0);
        vlog_unmap(&log);
        close(fd);
        assert_int_equal(vlog_map(&log, fd, PAGE, 0), -EBADF);
        assert_null(log.base);
        /* Read-only fd: a log we cannot write is refused at map time, not at the first mark. */
        fd = memfd_of(PAGE);
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
        assert_true(vlog_map(&log, fd, PAGE, 0) < 0);
        assert_null(log.base);
        close(fd);
}

/* ---- two threads marking at once: no bit is lost ---------------------------------------------------------- */

#define RACE_LOG 2 /* 16 pages: both threads hammer the same two bytes */
#define RACE_MARKS 100000
#define RACE_TRIALS 40

/*
 * Thread 0 owns the even pages, thread 1 the odd ones; they share every byte. Each visit to one of its pages, a
 * thread first checks that the bit it set on its previous visit is still set (only its owner clears a bit, so a
 * clear bit means the other thread's mark wrote a stale byte over it), then clears it, as a front-end collecting
 * the log does, and marks it again with vlog_mark(). A plain read-modify-write loses bits within a few thousand
 * marks; the atomic OR never does.
 */
struct race {
        struct vq_log log;
        unsigned ready;
        unsigned lost[2];
};

struct racer {
        struct race *race;
        unsigned parity;
};

static void *race_thread(void *arg)
{
        struct racer *me = arg;
        struct race *race = me->race;
        bool marked[RACE_LOG * 8] = {false};
        uint64_t p = me->parity;

        /* Start together: thread creation takes longer than the whole run. */
        __atomic_fetch_add(&race->ready, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&race->ready, __ATOMIC_SEQ_CST) < 2)
                ;
        for (unsigned i = 0; i < RACE_MARKS; i++) {
                uint8_t *byte = &race->log.base[p / 8], mask = (uint8_t)(1u << (p % 8));

                if (marked[p] && !(__atomic_load_n(byte, __ATOMIC_RELAXED) & mask))
                        race->lost[me->parity]++;
                __atomic_fetch_and(byte, (uint8_t)~mask, __ATOMIC_RELAXED);
                (void)vlog_mark(&race->log, p * PAGE + 17, 1);
                marked[p] = true;
                p += 2;
                if (p >= RACE_LOG * 8)
                        p = me->parity;
        }
        return NULL;
}

static void test_two_threads(void **state)
{
        unsigned lost = 0;

        for (unsigned trial = 0; trial < RACE_TRIALS; trial++) {
                static uint8_t bits[RACE_LOG];
                struct race race = {.ready = 0};
                struct racer racers[2] = {{&race, 0}, {&race, 1}};
                pthread_t t[2];

                memset(bits, 0, sizeof(bits));
                vlog_init(&race.log, bits, sizeof(bits));
                for (int i = 0; i < 2; i++)
                        assert_int_equal(pthread_create(&t[i], NULL, race_thread, &racers[i]), 0);
                for (int i = 0; i < 2; i++)
                        assert_int_equal(pthread_join(t[i], NULL), 0);
                lost += race.lost[0] + race.lost[1];
                /* Every page's last mark is there. */
                for (unsigned b = 0; b < RACE_LOG; b++)
                        assert_int_equal(bits[b], 0xff);
        }
        if (lost)
                fail_msg("%u marks lost", lost);
}

/* Both threads marking overlapping multi-page ranges, continuously, without rounds. */
struct span_arg {
        struct vq_log *log;
        unsigned seed;
};

static void *span_thread(void *arg)
{
        struct span_arg *a = arg;
        uint32_t rnd = a->seed;

        for (unsigned i = 0; i < 100000; i++) {
                rnd = rnd * 1103515245u + 12345u;
                (void)vlog_mark(a->log, ((rnd >> 8) % (RACE_LOG * 8)) * PAGE + (rnd & 0xfff), (rnd >> 20) % 40000);
        }
        return NULL;
}

static void test_two_threads_spans(void **state)
{
        struct guarded g;
        struct span_arg a[2];
        pthread_t t[2];

        guarded_init(&g, RACE_LOG);
        for (int i = 0; i < 2; i++) {
                a[i] = (struct span_arg){&g.log, 7u + (unsigned)i * 1000};
                assert_int_equal(pthread_create(&t[i], NULL, span_thread, &a[i]), 0);
        }
        for (int i = 0; i < 2; i++)
                assert_int_equal(pthread_join(t[i], NULL), 0);
        /* 200000 random ranges over 256 pages: every page was hit many times, and nothing past the log. */
        expect_pages(&g.log, 0, RACE_LOG * 8 - 1, "spans");
        guarded_done(&g);
}

/* ---- logging by the virtqueue ------------------------------------------------------------------------------ */

#define UVA_OFF 0x7f0000000000ull
#define R0_GPA 0x0ull
#define R0_SIZE 0x100000ull
#define R1_GPA (R0_GPA + R0_SIZE)
#define R1_SIZE 0x10000ull
#define NUM 8
#define DESC_GPA 0x1000ull
#define AVAIL_GPA 0x1800ull
#define USED_GPA 0x2fe0ull /* idx at 0x2fe2 (page 2); entry k at 0x2fe4 + 8k; entry 3 crosses into page 3 */
#define AVAIL_EVENT_GPA (USED_GPA + 4 + 8 * NUM) /* 0x3024: page 3 */
#define VQ_LOG_SIZE 64ull                        /* 512 pages: 2 MiB, more than R0 + R1 */
#define IOVS 16

struct fx {
        struct mem_table mem;
        struct vq vq;
        struct guarded g;
        uint16_t avail_idx;
        struct iovec iov[IOVS];
        uint64_t gpa[IOVS];
        struct vq_elem elem;
};

static void map_region(struct mem_table *t, uint64_t gpa, uint64_t size)
{
        struct mem_region r;
        const char *why;
        int fd = memfd_of(size);

        assert_int_equal(mem_region_map(&r, fd, gpa, size, gpa + UVA_OFF, 0), 0);
        close(fd);
        assert_int_equal(mem_table_add(t, &r, &why), 0);
}

static void *gp(struct fx *f, uint64_t gpa)
{
        unsigned hint = 0;
        struct iovec iov;

        assert_int_equal(mem_translate(&f->mem, gpa, 1, false, &iov, 1, &hint), 1);
        return iov.iov_base;
}

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        const char *why = NULL;

        assert_non_null(f);
        map_region(&f->mem, R0_GPA, R0_SIZE);
        map_region(&f->mem, R1_GPA, R1_SIZE);
        assert_int_equal(vq_alloc(&f->vq, NUM), 0);
        assert_int_equal(
                vq_map_rings(&f->vq, &f->mem, DESC_GPA + UVA_OFF, AVAIL_GPA + UVA_OFF, USED_GPA + UVA_OFF, &why), 0);
        guarded_init(&f->g, VQ_LOG_SIZE);
        f->elem.iov = f->iov;
        f->elem.gpa = f->gpa;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        guarded_done(&f->g);
        vq_free(&f->vq);
        mem_table_clear(&f->mem);
        free(f);
        return 0;
}

static void set_desc(struct fx *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
        struct vring_desc d = {htole64(addr), htole32(len), htole16(flags), htole16(next)};

        memcpy(gp(f, DESC_GPA + 16 * (uint64_t)i), &d, sizeof(d));
}

static void publish(struct fx *f, uint16_t head)
{
        struct vring_avail *a = gp(f, AVAIL_GPA);

        a->ring[f->avail_idx & (NUM - 1)] = htole16(head);
        __atomic_store_n(&a->idx, htole16(++f->avail_idx), __ATOMIC_RELEASE);
}

static void log_on(struct fx *f)
{
        const char *why = NULL;

        assert_int_equal(vq_set_log(&f->vq, &f->g.log, true, USED_GPA, &why), 0);
}

static void clear_log(struct fx *f)
{
        memset(f->g.log.base, 0, f->g.log.size);
}

static unsigned count_bits(const struct vq_log *log)
{
        unsigned n = 0;

        for (uint64_t i = 0; i < log->size; i++)
                n += (unsigned)__builtin_popcount(log->base[i]);
        return n;
}

/* Pages set, as a list, for readable failures. */
static void expect_set(const struct vq_log *log, const uint64_t *pages, unsigned n, const char *what)
{
        for (uint64_t p = 0; p < log->size * 8; p++) {
                bool want = false;

                for (unsigned i = 0; i < n; i++)
                        want |= pages[i] == p;
                if (bit(log, p) != want)
                        fail_msg("%s: page 0x%llx is %s", what, (unsigned long long)p, want ? "clear" : "set");
        }
}

static void test_set_log_checks(void **state)
{
        struct fx *f = *state;
        struct vq_log small;
        struct vq other = {0};
        const char *why = NULL;

        /* The used ring (70 bytes from 0x2fe0) needs pages 2 and 3: one byte of log. */
        vlog_init(&small, f->g.log.base, 1);
        assert_int_equal(vq_set_log(&f->vq, &small, true, USED_GPA, &why), 0);
        why = NULL;
        assert_int_equal(vq_set_log(&f->vq, &small, true, 7 * PAGE + 4064, &why), -ERANGE);
        assert_non_null(strstr(why, "does not cover the used ring"));
        /* used_gpa must be where the used ring really is. */
        why = NULL;
        assert_int_equal(vq_set_log(&f->vq, &f->g.log, true, USED_GPA + 4, &why), -EFAULT);
        assert_non_null(strstr(why, "log_guest_addr"));
        assert_int_equal(vq_set_log(&f->vq, &f->g.log, true, R1_GPA + R1_SIZE, &why), -EFAULT); /* not memory */
        assert_int_equal(vq_set_log(&f->vq, &f->g.log, true, R0_GPA, &why), -EFAULT);
        /* A refusal leaves the previous setting. */
        assert_ptr_equal(f->vq.log, &small);
        assert_true(f->vq.log_used);
        assert_int_equal(f->vq.log_used_gpa, USED_GPA);
        /* Off, and on without the used ring. */
        assert_int_equal(vq_set_log(&f->vq, NULL, true, 12345, &why), 0);
        assert_null(f->vq.log);
        assert_false(f->vq.log_used);
        assert_int_equal(vq_set_log(&f->vq, &small, false, 12345, &why), 0);
        assert_false(f->vq.log_used);
        /* Rings not mapped yet: only the log's size can be checked (the caller checks again after mapping). */
        assert_int_equal(vq_alloc(&other, NUM), 0);
        assert_int_equal(vq_set_log(&other, &f->g.log, true, 0x9000, &why), 0);
        assert_int_equal(vq_set_log(&other, &small, true, 0x9000, &why), -ERANGE);
        vq_free(&other);
        other = (struct vq){0};
        assert_int_equal(vq_set_log(&other, &f->g.log, true, 0x5000, &why), -EINVAL); /* no ring size */
        assert_int_equal(vq_set_log(&other, &f->g.log, false, 0, &why), 0);
}

static void test_publish_logs_used_ring(void **state)
{
        struct fx *f = *state;

        log_on(f);
        /* Nothing written, nothing marked. */
        assert_int_equal(count_bits(&f->g.log), 0);
        /* Entries 0 and 1 and idx: page 2 only. */
        vq_push(&f->vq, 1, 10);
        vq_push(&f->vq, 2, 20);
        assert_int_equal(count_bits(&f->g.log), 0); /* marked at publish, after idx is written */
        vq_publish(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2}, 1, "entries 0-1");
        /* Entries 2 and 3: 3 crosses into page 3. */
        clear_log(f);
        vq_push(&f->vq, 3, 0);
        vq_push(&f->vq, 4, 0);
        vq_publish(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2, 3}, 2, "entries 2-3");
        /* Entries 4..7: page 3, and idx on page 2. */
        clear_log(f);
        for (unsigned i = 0; i < 4; i++)
                vq_push(&f->vq, (uint16_t)i, 0);
        vq_publish(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2, 3}, 2, "entries 4-7");
        /* A publish without new entries still writes (and marks) idx. */
        clear_log(f);
        vq_publish(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2}, 1, "idx only");
        /* Wrapping: entries 6, 7, 0 (used_idx 14, 15, 16). */
        f->vq.used_idx = 14;
        clear_log(f);
        for (unsigned i = 0; i < 3; i++)
                vq_push(&f->vq, (uint16_t)i, 0);
        vq_publish(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2, 3}, 2, "wrapping 6, 7, 0");
        /* Entries 0 and 1 only after a wrap of the 16-bit index. */
        f->vq.used_idx = 65535;
        vq_push(&f->vq, 0, 0); /* entry 7 */
        vq_publish(&f->vq);
        clear_log(f);
        vq_push(&f->vq, 0, 0); /* entry 0 */
        vq_push(&f->vq, 0, 0); /* entry 1 */
        vq_publish(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2}, 1, "after the 16-bit wrap");
        /* More pushes than the ring holds between publishes: the whole ring. */
        clear_log(f);
        for (unsigned i = 0; i < 3 * NUM; i++)
                vq_push(&f->vq, 0, 0);
        vq_publish(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2, 3}, 2, "more than the ring");
}

static void test_publish_without_used_flag(void **state)
{
        struct fx *f = *state;
        const char *why;

        /* Logging on, but not for the used ring (no VHOST_VRING_F_LOG): only data is logged. */
        assert_int_equal(vq_set_log(&f->vq, &f->g.log, false, 0, &why), 0);
        vq_push(&f->vq, 1, 10);
        vq_publish(&f->vq);
        vq_enable_notify(&f->vq);
        vq_disable_notify(&f->vq);
        assert_int_equal(count_bits(&f->g.log), 0);
}

static void test_notify_logs(void **state)
{
        struct fx *f = *state;

        log_on(f);
        /* Without EVENT_IDX: used->flags (page 2), both ways. */
        f->vq.event_idx = false;
        f->vq.notify_enabled = true;
        vq_disable_notify(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2}, 1, "flags off");
        clear_log(f);
        vq_disable_notify(&f->vq); /* already disabled: writes nothing, marks nothing */
        assert_int_equal(count_bits(&f->g.log), 0);
        vq_enable_notify(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2}, 1, "flags on");
        /* With EVENT_IDX: avail_event (page 3); disabling writes nothing. */
        clear_log(f);
        f->vq.event_idx = true;
        vq_enable_notify(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){3}, 1, "avail_event");
        clear_log(f);
        vq_disable_notify(&f->vq);
        assert_int_equal(count_bits(&f->g.log), 0);
}

/*
 * One writable chain of three descriptors: 0x20 bytes across pages 0x10|0x11, 0x3000 bytes on pages 0x20..0x22,
 * 0x1000 bytes across R0|R1 (pages 0xff and 0x100, two iovecs).
 */
static void post_rx_chain(struct fx *f)
{
        set_desc(f, 0, 0x10ff0, 0x20, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, 0x20000, 0x3000, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
        set_desc(f, 2, R1_GPA - 0x800, 0x1000, VRING_DESC_F_WRITE, 0);
        publish(f, 0);
}

static void test_pop_records_gpa(void **state)
{
        struct fx *f = *state;

        post_rx_chain(f);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        assert_int_equal(f->elem.in_num, 4);
        assert_int_equal(f->gpa[0], 0x10ff0);
        assert_int_equal(f->gpa[1], 0x20000);
        assert_int_equal(f->gpa[2], R1_GPA - 0x800);
        assert_int_equal(f->iov[2].iov_len, 0x800);
        assert_int_equal(f->gpa[3], R1_GPA); /* the second half of the buffer, in R1 */
        for (unsigned i = 0; i < 4; i++)
                assert_ptr_equal(f->iov[i].iov_base, gp(f, f->gpa[i]));
        /* Readable segments get their address too; a chain of readable then writable. */
        set_desc(f, 3, 0x40000, 100, VRING_DESC_F_NEXT, 4);
        set_desc(f, 4, 0x50000, 100, VRING_DESC_F_WRITE, 0);
        publish(f, 3);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        assert_int_equal(f->elem.out_num, 1);
        assert_int_equal(f->gpa[0], 0x40000);
        assert_int_equal(f->gpa[1], 0x50000);
        /* An indirect table: the buffers' addresses, not the table's; a buffer across R0|R1 takes two. */
        {
                struct vring_desc t[2] = {
                        {htole64(0x70000), htole32(0x10), htole16(VRING_DESC_F_WRITE | VRING_DESC_F_NEXT), htole16(1)},
                        {htole64(R1_GPA - 8), htole32(16), htole16(VRING_DESC_F_WRITE), 0},
                };

                memcpy(gp(f, 0x60000), t, sizeof(t));
                set_desc(f, 5, 0x60000, sizeof(t), VRING_DESC_F_INDIRECT, 0);
                publish(f, 5);
                assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
                assert_int_equal(f->elem.in_num, 3);
                assert_int_equal(f->gpa[0], 0x70000);
                assert_int_equal(f->gpa[1], R1_GPA - 8);
                assert_int_equal(f->gpa[2], R1_GPA);
                assert_ptr_equal(f->iov[2].iov_base, gp(f, R1_GPA));
        }
        /* Without the array, nothing is recorded (and nothing breaks). */
        f->elem.gpa = NULL;
        publish(f, 3);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        assert_false(f->vq.broken);
}

struct written_case {
        const char *what;
        uint32_t len;
        unsigned npages;
        uint64_t pages[8];
};

static const struct written_case written_cases[] = {
        {"nothing written", 0, 0, {0}},
        {"one byte", 1, 1, {0x10}},
        {"16 bytes: page 0x10 only", 0x10, 1, {0x10}},
        {"17 bytes: into page 0x11", 0x11, 2, {0x10, 0x11}},
        {"first descriptor and 1 byte", 0x21, 3, {0x10, 0x11, 0x20}},
        {"two descriptors and a page", 0x20 + 0x1001, 4, {0x10, 0x11, 0x20, 0x21}},
        {"first two descriptors", 0x3020, 5, {0x10, 0x11, 0x20, 0x21, 0x22}},
        {"into the third, first half", 0x3020 + 0x800, 6, {0x10, 0x11, 0x20, 0x21, 0x22, 0xff}},
        {"all of it, across regions", 0x4020, 7, {0x10, 0x11, 0x20, 0x21, 0x22, 0xff, 0x100}},
        {"more than the chain holds", 0xffffffff, 7, {0x10, 0x11, 0x20, 0x21, 0x22, 0xff, 0x100}},
};

static void test_push_elem_logs_written(void **state)
{
        struct fx *f = *state;

        log_on(f);
        for (size_t i = 0; i < ARRAY_SIZE(written_cases); i++) {
                const struct written_case *c = &written_cases[i];
                struct vring_used *u = gp(f, USED_GPA);
                uint16_t slot = f->vq.used_idx & (NUM - 1);

                post_rx_chain(f);
                assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
                clear_log(f);
                vq_push_elem(&f->vq, &f->elem, c->len);
                expect_set(&f->g.log, c->pages, c->npages, c->what);
                /* The used entry is recorded as by vq_push (and logged at publish). */
                assert_int_equal(le32toh(u->ring[slot].id), 0);
                assert_int_equal(le32toh(u->ring[slot].len), c->len);
                vq_publish(&f->vq);
                assert_false(f->vq.broken);
        }
}

/* Marking alone: the chain is not handed back (no used entry), its written pages are marked. */
static void test_log_elem_without_push(void **state)
{
        struct fx *f = *state;

        post_rx_chain(f);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        vq_log_elem(&f->vq, &f->elem, 0x21); /* logging off: nothing */
        assert_int_equal(count_bits(&f->g.log), 0);
        log_on(f);
        vq_log_elem(&f->vq, &f->elem, 0x21);
        expect_set(&f->g.log, (uint64_t[]){0x10, 0x11, 0x20}, 3, "log only");
        assert_int_equal(f->vq.used_idx, 0);
        vq_unpop(&f->vq, 1);
        /* Popped again and handed back: the same pages, and the used ring at publish. */
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        clear_log(f);
        vq_push_elem(&f->vq, &f->elem, 0x21);
        vq_publish(&f->vq);
        expect_set(&f->g.log, (uint64_t[]){2, 0x10, 0x11, 0x20}, 4, "then pushed");
}

/* Readable segments are never marked, even with a len covering them. */
static void test_push_elem_skips_readable(void **state)
{
        struct fx *f = *state;

        log_on(f);
        set_desc(f, 0, 0x40000, 0x2000, VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, 0x50000, 100, VRING_DESC_F_WRITE, 0);
        publish(f, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        vq_push_elem(&f->vq, &f->elem, 0x3000);
        expect_set(&f->g.log, (uint64_t[]){0x50}, 1, "writable only");
}

/* Descriptors that follow each other in gpa are one range; the pages are the same either way. */
static void test_push_elem_contiguous(void **state)
{
        struct fx *f = *state;

        log_on(f);
        set_desc(f, 0, 0x30000, 0x800, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
        set_desc(f, 1, 0x30800, 0x1000, VRING_DESC_F_WRITE, 0);
        publish(f, 0);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        vq_push_elem(&f->vq, &f->elem, 0x1800);
        expect_set(&f->g.log, (uint64_t[]){0x30, 0x31}, 2, "contiguous");
}

static void test_logging_off_marks_nothing(void **state)
{
        struct fx *f = *state;

        /* Never on. */
        post_rx_chain(f);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        vq_push_elem(&f->vq, &f->elem, 0x4020);
        vq_publish(&f->vq);
        f->vq.event_idx = true;
        vq_enable_notify(&f->vq);
        f->vq.event_idx = false;
        vq_disable_notify(&f->vq);
        vq_enable_notify(&f->vq);
        assert_int_equal(count_bits(&f->g.log), 0);
        /* On, then off again. */
        log_on(f);
        post_rx_chain(f);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        assert_int_equal(vq_set_log(&f->vq, NULL, false, 0, &(const char *){NULL}), 0);
        vq_push_elem(&f->vq, &f->elem, 0x4020);
        vq_publish(&f->vq);
        vq_disable_notify(&f->vq);
        assert_int_equal(count_bits(&f->g.log), 0);
        assert_false(f->vq.broken);
}

/* Logging turned on between the pop and the push (LOG_ALL while chains are reserved): still logged. */
static void test_logging_on_after_pop(void **state)
{
        struct fx *f = *state;

        post_rx_chain(f);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        log_on(f);
        vq_push_elem(&f->vq, &f->elem, 0x21);
        expect_set(&f->g.log, (uint64_t[]){0x10, 0x11, 0x20}, 3, "on after pop");
}

static void test_push_elem_without_gpa(void **state)
{
        struct fx *f = *state;
        struct vring_used *u = gp(f, USED_GPA);

        log_on(f);
        f->elem.gpa = NULL;
        post_rx_chain(f);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        /* Nothing written: nothing to log, fine. */
        vq_push_elem(&f->vq, &f->elem, 0);
        assert_false(f->vq.broken);
        /* Written but no addresses to log: the queue stops rather than lose a page. */
        vq_push_elem(&f->vq, &f->elem, 10);
        assert_true(f->vq.broken);
        assert_non_null(strstr(f->vq.broken_reason, "without its addresses"));
        assert_int_equal(le32toh(u->ring[1].len), 10); /* the entry is still recorded */
}

static void test_push_elem_log_too_small(void **state)
{
        struct fx *f = *state;
        struct vq_log small;
        const char *why;

        /* 5 bytes (the last of the guarded log) cover pages 0..0x27: the used ring and the first two buffers. */
        vlog_init(&small, f->g.log.base + f->g.log.size - 5, 5);
        assert_int_equal(vq_set_log(&f->vq, &small, true, USED_GPA, &why), 0);
        post_rx_chain(f);
        assert_int_equal(vq_pop(&f->vq, &f->elem, IOVS), 1);
        vq_push_elem(&f->vq, &f->elem, 0x4020);
        assert_true(f->vq.broken);
        assert_non_null(strstr(f->vq.broken_reason, "does not cover guest address 0xff800"));
        /* What fits was marked, nothing past the log (the guard page is right after it). */
        assert_true(bit(&small, 0x10) && bit(&small, 0x11) && bit(&small, 0x20) && bit(&small, 0x21) &&
                    bit(&small, 0x22));
        assert_int_equal(count_bits(&small), 5);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mark_cases),
                cmocka_unit_test(test_mark_accumulates),
                cmocka_unit_test(test_mark_page_sized_log),
                cmocka_unit_test(test_covers),
                cmocka_unit_test(test_map),
                cmocka_unit_test(test_map_errors),
                cmocka_unit_test(test_two_threads),
                cmocka_unit_test(test_two_threads_spans),
                T(test_set_log_checks),
                T(test_publish_logs_used_ring),
                T(test_publish_without_used_flag),
                T(test_notify_logs),
                T(test_pop_records_gpa),
                T(test_push_elem_logs_written),
                T(test_log_elem_without_push),
                T(test_push_elem_skips_readable),
                T(test_push_elem_contiguous),
                T(test_logging_off_marks_nothing),
                T(test_logging_on_after_pop),
                T(test_push_elem_without_gpa),
                T(test_push_elem_log_too_small),
        };
#undef T

        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
