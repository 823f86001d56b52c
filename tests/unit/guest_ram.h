/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM for the ring unit tests (test_vq.c, test_vq_packed.c), one copy of it: three memfd regions in a real
 * struct mem_table:
 *   R0 [0x100000, 0x200000) writable: rings and data buffers
 *   R1 [0x200000, 0x210000) writable, right after R0 in gpa but a separate mapping (crossings need 2 iovecs)
 *   gap
 *   RO [0x300000, 0x310000) read-only (a memfd sealed with F_SEAL_WRITE)
 * uva = gpa + UVA_OFF. Include after <cmocka.h>; everything here is static.
 */
#ifndef TESTS_UNIT_GUEST_RAM_H
#define TESTS_UNIT_GUEST_RAM_H

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vring/mem.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define UVA_OFF 0x7f0000000000ull
#define R0_GPA 0x100000ull
#define R0_SIZE 0x100000ull
#define R1_GPA (R0_GPA + R0_SIZE)
#define R1_SIZE 0x10000ull
#define GAP_GPA (R1_GPA + R1_SIZE)
#define RO_GPA 0x300000ull
#define RO_SIZE 0x10000ull

static void guest_ram_add(struct mem_table *t, uint64_t gpa, uint64_t size, bool seal)
{
        struct mem_region r;
        const char *why;
        int fd = memfd_create("test-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        if (seal)
                assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
        assert_int_equal(mem_region_map(&r, fd, gpa, size, gpa + UVA_OFF, 0), 0);
        close(fd);
        assert_int_equal(r.writable, !seal);
        assert_int_equal(mem_table_add(t, &r, &why), 0);
}

/* Maps R0, R1 and RO into t. */
static void guest_ram_map(struct mem_table *t)
{
        guest_ram_add(t, R0_GPA, R0_SIZE, false);
        guest_ram_add(t, R1_GPA, R1_SIZE, false);
        guest_ram_add(t, RO_GPA, RO_SIZE, true);
}

/* The test's (the guest's) pointer to gpa; RO memory is mapped read-only here too. */
static void *guest_ram_ptr(const struct mem_table *t, uint64_t gpa)
{
        for (unsigned i = 0; i < t->nregions; i++) {
                const struct mem_region *r = &t->regions[i];
                if (gpa >= r->gpa && gpa - r->gpa < r->size)
                        return r->host + (gpa - r->gpa);
        }
        fail_msg("gpa 0x%llx is not guest memory", (unsigned long long)gpa);
        return NULL;
}

/* Zeroes the writable regions. */
static void guest_ram_clear(const struct mem_table *t)
{
        memset(guest_ram_ptr(t, R0_GPA), 0, R0_SIZE);
        memset(guest_ram_ptr(t, R1_GPA), 0, R1_SIZE);
}

static void guest_ram_expect_iov(const struct mem_table *t, const struct iovec *iov, uint64_t gpa, size_t len)
{
        assert_ptr_equal(iov->iov_base, guest_ram_ptr(t, gpa));
        assert_int_equal(iov->iov_len, len);
}

#endif
