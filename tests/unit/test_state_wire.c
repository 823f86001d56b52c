/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for daemon/state_wire.c, the handover's wire format: records written and read back, every way a
 * state can be refused (each with its reason), and the blob with hundreds of fds passed over a real unix
 * socket pair, received close-on-exec and referring to the same files, with no fd left open on any failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/state_wire.h"

static unsigned open_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

/* A state with a few records of each kind; fds (the writer's table) are /dev/null and a pipe end. */
static void write_sample(struct state_writer *w, int fd0, int fd1)
{
        static const char name[] = "port net0";
        uint8_t odd[13];

        memset(odd, 0x5a, sizeof(odd));
        state_writer_init(w);
        assert_int_equal(state_put_u64(w, 1, 0x0123456789abcdefull), 0);
        assert_int_equal(state_put(w, 2, 0, name, sizeof(name)), 0);
        assert_int_equal(state_put(w, 3, 0, NULL, 0), 0);
        assert_int_equal(state_put_fd(w, 4, fd0), 0);
        assert_int_equal(state_put(w, 5, 0, odd, sizeof(odd)), 0);
        assert_int_equal(state_put_fd(w, 4, fd1), 0);
        assert_int_equal(state_finish(w), 0);
}

static void test_roundtrip(void **state)
{
        struct state_writer w;
        struct state_reader r;
        struct state_rec rec;
        char err[128] = "";
        uint64_t v;
        unsigned idx, n = 0;
        (void)state;

        write_sample(&w, 7, 9);
        assert_int_equal(w.nfds, 2);
        assert_int_equal(w.fds[0], 7);
        assert_int_equal(w.fds[1], 9);
        assert_int_equal(w.len % 8, 0);
        assert_int_equal(state_reader_init(&r, w.buf, w.len, 2, err, sizeof(err)), 0);
        while (state_next(&r, &rec, err, sizeof(err)) == 1) {
                switch (n++) {
                case 0:
                        assert_int_equal(rec.type, 1);
                        assert_int_equal(state_get_u64(&rec, &v), 0);
                        assert_true(v == 0x0123456789abcdefull);
                        break;
                case 1:
                        assert_int_equal(rec.len, 10);
                        assert_string_equal((const char *)rec.value, "port net0");
                        assert_int_equal(state_get_u64(&rec, &v), -EBADMSG); /* wrong size */
                        break;
                case 2:
                        assert_int_equal(rec.type, 3);
                        assert_int_equal(rec.len, 0);
                        break;
                case 3:
                case 5:
                        assert_int_equal(rec.type, 4);
                        assert_true(rec.flags & STATE_REC_REQUIRED);
                        assert_int_equal(state_get_fd_index(&r, &rec, &idx), 0);
                        assert_int_equal(idx, n == 4 ? 0 : 1);
                        break;
                case 4:
                        assert_int_equal(rec.len, 13);
                        assert_int_equal(rec.value[12], 0x5a);
                        break;
                }
        }
        assert_int_equal(n, 6);
        assert_int_equal(state_next(&r, &rec, err, sizeof(err)), 0);
        state_writer_free(&w);

        /* Nothing put: a valid, empty state. */
        state_writer_init(&w);
        assert_int_equal(state_finish(&w), 0);
        assert_int_equal(state_reader_init(&r, w.buf, w.len, 0, err, sizeof(err)), 0);
        assert_int_equal(state_next(&r, &rec, err, sizeof(err)), 0);
        state_writer_free(&w);
}

/* Recomputes the header's checksum after a test changed a record (FNV-1a, as the format says). */
static void reseal(uint8_t *b, size_t len)
{
        uint32_t h = 2166136261u;

        for (size_t i = 24; i < len; i++)
                h = (h ^ b[i]) * 16777619u;
        memcpy(b + 20, &h, 4); /* little-endian host (x86) */
}

static void test_refusals(void **state)
{
        struct state_writer w;
        struct state_reader r;
        struct state_rec rec;
        char err[128];
        unsigned idx;
        uint8_t *b;
        (void)state;

        write_sample(&w, 3, 4);
        b = malloc(w.len);
        assert_non_null(b);

#define REFUSED(len, nfds, code, why)                                                                                  \
        do {                                                                                                           \
                err[0] = 0;                                                                                            \
                assert_int_equal(state_reader_init(&r, b, len, nfds, err, sizeof(err)), code);                         \
                assert_non_null(strstr(err, why));                                                                     \
        } while (0)
        memcpy(b, w.buf, w.len);
        b[0] = 'X';
        REFUSED(w.len, 2, -EBADMSG, "no header");
        REFUSED(10, 2, -EBADMSG, "no header");
        memcpy(b, w.buf, w.len);
        b[8] = 2; /* major 2 */
        REFUSED(w.len, 2, -EPROTO, "version 2.0, this vhostd reads 1.x");
        memcpy(b, w.buf, w.len);
        REFUSED(w.len - 8, 2, -EBADMSG, "says it has");
        REFUSED(w.len, 1, -EBADMSG, "refers to 2 fds, 1 came");
        b[w.len - 1] ^= 1;
        REFUSED(w.len, 2, -EBADMSG, "checksum");
        /* A newer minor version is read. */
        memcpy(b, w.buf, w.len);
        b[10] = 9;
        assert_int_equal(state_reader_init(&r, b, w.len, 2, err, sizeof(err)), 0);
        assert_int_equal(r.minor, 9);
        /* A record whose length runs past the end. */
        memcpy(b, w.buf, w.len);
        b[24 + 4] = 200;
        reseal(b, w.len);
        assert_int_equal(state_reader_init(&r, b, w.len, 2, err, sizeof(err)), 0);
        assert_int_equal(state_next(&r, &rec, err, sizeof(err)), -EBADMSG);
        assert_non_null(strstr(err, "past the end"));
        /* An fd index beyond the fds that came. */
        memcpy(b, w.buf, w.len);
        assert_int_equal(state_reader_init(&r, b, w.len, 2, err, sizeof(err)), 0);
        for (int i = 0; i < 4; i++)
                assert_int_equal(state_next(&r, &rec, err, sizeof(err)), 1);
        assert_int_equal(rec.type, 4);
        r.nfds = 0;
        assert_int_equal(state_get_fd_index(&r, &rec, &idx), -EBADMSG);
#undef REFUSED
        free(b);
        state_writer_free(&w);

        /* The writer: too large a record, a bad fd; the first error sticks. */
        state_writer_init(&w);
        assert_int_equal(state_put(&w, 1, 0, "", STATE_BLOB_MAX), -E2BIG);
        assert_int_equal(state_put_u64(&w, 1, 1), -E2BIG);
        assert_int_equal(state_finish(&w), -E2BIG);
        state_writer_free(&w);
        state_writer_init(&w);
        assert_int_equal(state_put_fd(&w, 1, -1), -EBADF);
        state_writer_free(&w);
}

static void test_pass_many_fds(void **state)
{
        enum { N = 600 }; /* three batches: 250, 250, 100 */
        static int fds[N], *got;
        struct state_writer w;
        struct state_reader r;
        struct stat a, b;
        unsigned before = open_fds(), nfds; /* before devnull: it is closed at the end too */
        int sv[2], devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        uint8_t *blob;
        size_t len;
        char err[128];
        (void)state;

        assert_true(devnull >= 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        state_writer_init(&w);
        for (int i = 0; i < N; i++) {
                fds[i] = i % 2 ? sv[0] : devnull; /* two distinct files, alternating */
                assert_int_equal(state_put_fd(&w, 7, fds[i]), 0);
        }
        assert_int_equal(state_finish(&w), 0);
        assert_int_equal(state_send(sv[0], w.buf, w.len, w.fds, w.nfds), 0);
        assert_int_equal(state_recv(sv[1], &blob, &len, &got, &nfds, err, sizeof(err)), 0);
        assert_int_equal(nfds, N);
        assert_int_equal(len, w.len);
        assert_memory_equal(blob, w.buf, len);
        assert_int_equal(state_reader_init(&r, blob, len, nfds, err, sizeof(err)), 0);
        for (int i = 0; i < N; i++) {
                assert_int_equal(fstat(got[i], &a), 0);
                assert_int_equal(fstat(fds[i], &b), 0);
                assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
                assert_true(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
                close(got[i]);
        }
        free(got);
        free(blob);
        state_writer_free(&w);

        /* Fewer fds than announced, then the sender goes away: an error, and nothing left open. */
        uint8_t pre[8] = {0, 0, 0, 0, 3, 0, 0, 0}; /* no blob, 3 fds */
        struct iovec iov = {.iov_base = "F", .iov_len = 1};
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } u;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &devnull, sizeof(int));
        assert_int_equal(write(sv[0], pre, sizeof(pre)), (ssize_t)sizeof(pre));
        assert_int_equal(sendmsg(sv[0], &mh, 0), 1);
        close(sv[0]);
        err[0] = 0;
        assert_int_equal(state_recv(sv[1], &blob, &len, &got, &nfds, err, sizeof(err)), -ECONNRESET);
        assert_non_null(strstr(err, "receiving fds (1 of 3)"));
        assert_null(blob);
        assert_null(got);
        close(sv[1]);

        /* fds where none belong (with the size): refused, and closed. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        iov.iov_base = pre;
        iov.iov_len = sizeof(pre);
        memset(pre, 0, sizeof(pre));
        assert_int_equal(sendmsg(sv[0], &mh, 0), (ssize_t)sizeof(pre));
        err[0] = 0;
        assert_int_equal(state_recv(sv[1], &blob, &len, &got, &nfds, err, sizeof(err)), -EBADMSG);
        assert_non_null(strstr(err, "where none were expected"));
        close(sv[0]);
        close(sv[1]);
        close(devnull);
        assert_int_equal(open_fds(), before);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_pass_many_fds),
        };

        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
