/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the backends' side of an upgrade (handover_fds() and adopt()): a loopback port handed to a new
 * one gives back the frames that waited in its FIFOs, in order and intact; a FIFO whose counters do not add up,
 * or a memfd of another size, is refused; the null port takes no fds. (tap and rawsock are handed over under
 * traffic by tests/integration/upgrade.sh.)
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/backend.h"

#define HDR 12

struct sink {
        struct rx_sink base;
        uint8_t buf[16][2048];
        size_t len[16];
        unsigned n;
        struct iovec iov;
};

static int sink_reserve(struct rx_sink *s, size_t frame_len, const struct iovec **iov, unsigned *iovcnt)
{
        struct sink *k = (struct sink *)s;

        if (k->n == 16)
                return -ENOBUFS;
        k->iov = (struct iovec){k->buf[k->n], sizeof(k->buf[0])};
        *iov = &k->iov;
        *iovcnt = 1;
        return 0;
}

static void sink_commit(struct rx_sink *s, size_t len)
{
        struct sink *k = (struct sink *)s;

        k->len[k->n++] = len;
}

static void sink_dropped(struct rx_sink *s)
{
        fail_msg("no frame may be dropped");
}

static void sink_init(struct sink *k)
{
        memset(k, 0, sizeof(*k));
        k->base = (struct rx_sink){
                .frame_max = 65536, .reserve = sink_reserve, .commit = sink_commit, .dropped = sink_dropped};
}

/* Sends frame i (60 + i bytes after the guest header, bytes i + k) on queue q. */
static void send_frame(struct backend *be, unsigned q, unsigned i)
{
        static uint8_t f[HDR + 200];
        struct iovec iov = {f, HDR + 60 + i};
        struct frame fr = {&iov, 1, HDR + 60 + i};

        memset(f, 0, HDR);
        for (unsigned k = 0; k < 60 + i; k++)
                f[HDR + k] = (uint8_t)(i + k);
        assert_int_equal(be->ops->tx_burst(be, q, &fr, 1), 1);
}

static const struct backend_cfg cfg = {.kind = "loopback"};

static void test_loopback_frames_survive(void **state)
{
        const struct backend_ops *ops = backend_find("loopback");
        struct backend *old, *new;
        uint64_t notes[2] = {0};
        int fds[4], n, dup_fd;
        struct sink k;
        (void)state;

        assert_int_equal(ops->open(&cfg, 2, &old), 0);
        assert_int_equal(ops->configure(old, 1, 0, HDR), 0);
        for (unsigned i = 0; i < 5; i++)
                send_frame(old, 1, i);
        n = ops->handover_fds(old, fds, 4, notes, false);
        assert_int_equal(n, 1);
        dup_fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 3); /* what SCM_RIGHTS would give the new process */
        assert_true(dup_fd >= 0);
        assert_int_equal(ops->adopt(&cfg, 2, &dup_fd, 1, notes, &new), 0);
        ops->close(old); /* the old process exits: the FIFOs live on in the memfd */

        sink_init(&k);
        assert_int_equal(ops->rx_burst(new, 0, &k.base, 16), 0); /* queue 0 had nothing */
        assert_int_equal(ops->rx_burst(new, 1, &k.base, 16), 5);
        for (unsigned i = 0; i < 5; i++) {
                assert_int_equal(k.len[i], HDR + 60 + i);
                for (unsigned b = 0; b < 60 + i; b++)
                        assert_int_equal(k.buf[i][HDR + b], (uint8_t)(i + b));
        }
        assert_int_equal(ops->rx_burst(new, 1, &k.base, 16), 0);
        /* And it goes on working. */
        send_frame(new, 1, 7);
        assert_int_equal(ops->rx_burst(new, 1, &k.base, 16), 1);
        assert_int_equal(k.len[5], HDR + 67);
        ops->close(new);
}

/* The memfd's per-queue slot starts with head and tail (u64 each). */
static void test_loopback_refuses_damaged_fifo(void **state)
{
        const struct backend_ops *ops = backend_find("loopback");
        struct backend *old, *new = NULL;
        uint64_t notes[1] = {0}, *counters;
        int fds[1], dup_fd;
        (void)state;

        assert_int_equal(ops->open(&cfg, 1, &old), 0);
        assert_int_equal(ops->handover_fds(old, fds, 1, notes, false), 1);
        counters = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
        assert_true(counters != MAP_FAILED);
        counters[0] = 8;
        counters[1] = 8 + (1u << 20); /* more in use than the FIFO holds */
        dup_fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
        assert_int_equal(ops->adopt(&cfg, 1, &dup_fd, 1, notes, &new), -EBADMSG);
        counters[1] = 13; /* not on a record boundary */
        dup_fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
        assert_int_equal(ops->adopt(&cfg, 1, &dup_fd, 1, notes, &new), -EBADMSG);
        /* The FIFOs of one queue are not those of two. */
        counters[0] = counters[1] = 0;
        dup_fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
        assert_int_equal(ops->adopt(&cfg, 2, &dup_fd, 1, notes, &new), -EINVAL);
        assert_null(new);
        munmap(counters, 4096);
        ops->close(old);
}

static void test_null_takes_no_fds(void **state)
{
        const struct backend_ops *ops = backend_find("null");
        const struct backend_cfg ncfg = {.kind = "null", .frame_len = 64};
        struct backend *be = NULL;
        uint64_t notes[1] = {0};
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        (void)state;

        assert_int_equal(ops->adopt(&ncfg, 1, &fd, 1, notes, &be), -EINVAL);
        assert_null(be);
        assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed: the port took it, as promised */
        assert_int_equal(ops->adopt(&ncfg, 1, NULL, 0, notes, &be), 0);
        ops->close(be);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_loopback_frames_survive),
                cmocka_unit_test(test_loopback_refuses_damaged_fifo),
                cmocka_unit_test(test_null_takes_no_fds),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
