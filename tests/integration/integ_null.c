// SPDX-License-Identifier: MIT
/*
 * integ_null: the null port (backends/null.c), driven by the test front-end.
 *
 * 1. As fast as taken (rate 0, the default): the guest receives a stream of 64-byte UDP/IPv4 frames with a good
 *    IPv4 header checksum, and what it sends is taken and handed back (counted on the tx vring, no drops).
 * 2. Paced (rate = 2000, frame_len = 1000): every frame is 1000 bytes, and the generator never runs ahead of its
 *    rate: frames received <= rate x the time since the connection began + the port's backlog (1024). A bound that
 *    only a generator ignoring its rate can break, however slow this machine is.
 * 3. frame_len larger than the MTU allows: vhostd refuses to start, naming the key.
 *
 * Exit 0 when all pass; the last line is "N passed, N failed".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"

#include "tests/fakefe/harness.h"

#define BACKLOG 1024 /* backends/null.c NULL_BACKLOG */

/* The frame backends/null.c builds: UDP/IPv4, 10.255.0.1:1024 -> 10.255.0.2:1025, a good header checksum. */
static int check_frame(const uint8_t *f, size_t len, size_t want_len)
{
        uint32_t sum = 0;

        CHECK(len == want_len, "frame of %zu bytes, expected %zu", len, want_len);
        CHECK(f[12] == 0x08 && f[13] == 0x00, "ethertype %02x%02x, expected IPv4", f[12], f[13]);
        CHECK(f[14] == 0x45 && f[23] == 17, "not a UDP/IPv4 header (%02x, proto %u)", f[14], f[23]);
        CHECK((size_t)(f[16] << 8 | f[17]) == len - 14, "IPv4 total length %u for a %zu-byte frame", f[16] << 8 | f[17],
              len);
        for (unsigned i = 14; i < 34; i += 2)
                sum += (uint32_t)(f[i] << 8 | f[i + 1]);
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        CHECK(sum == 0xffff, "IPv4 header checksum is wrong (sum 0x%x)", sum);
        CHECK(f[34] == 0x04 && f[35] == 0x00 && f[36] == 0x04 && f[37] == 0x01, "UDP ports are not 1024 -> 1025");
        return 0;
}

static int connect_null(struct vhostd *v, const char *tag, const char *const *extra, struct fe **ret)
{
        int r;

        CHECK(vhostd_start(v, tag, 1, extra) == 0, "vhostd did not start");
        r = fe_connect(v->sock, 5000, ret);
        CHECK(r == 0, "connect: %s", strerror(-r));
        r = fe_setup(*ret, 1, 256, 0);
        CHECK(r == 0, "setup: %s", strerror(-r));
        return 0;
}

/* Ends a test: the front-end goes, vhostd must stop cleanly. Returns rc, or -1 when vhostd did not. */
static int disconnect_null(struct vhostd *v, struct fe *fe, int rc)
{
        fe_free(fe);
        return vhostd_stop(v) != 0 ? -1 : rc;
}

static int test_as_fast_as_taken(void)
{
        static const char *const extra[] = {"-b", "null", NULL};
        uint8_t buf[FE_FRAME_MAX], frame[60] = {0};
        struct fe_rx_info info;
        struct vhostd v;
        struct vstat s[2];
        struct fe *fe = NULL;
        char js[8192];
        int r, rc = -1;

        if (connect_null(&v, "fast", extra, &fe) < 0)
                goto out;
        for (unsigned i = 0; i < 5000; i++) {
                r = fe_ring_recv_wait(&fe->rings[0], buf, sizeof(buf), &info, 5000);
                if (r != 1) {
                        printf("  FAIL: frame %u: %s\n", i, strerror(-r));
                        goto out;
                }
                if (check_frame(buf, info.len, 64) < 0)
                        goto out;
        }
        /* Guest -> port: taken and handed back. */
        for (unsigned sent = 0; sent < 1000;) {
                r = fe_ring_post_tx(&fe->rings[1], frame, sizeof(frame), NULL, NULL);
                if (r == -ENOSPC) {
                        fe_ring_notify(&fe->rings[1]);
                        fe_ring_wait(&fe->rings[1], 1, 5000);
                        fe_ring_reap(&fe->rings[1]);
                        continue;
                }
                if (r < 0) {
                        printf("  FAIL: post tx: %s\n", strerror(-r));
                        goto out;
                }
                sent++;
        }
        fe_ring_notify(&fe->rings[1]);
        for (int64_t end = fe_now_ms() + 5000; fe_now_ms() < end; usleep(10000)) {
                if (vstats(&v, s, 2, js, sizeof(js)) == 0 && s[1].frames == 1000)
                        break;
        }
        if (s[1].frames != 1000 || s[1].drops || s[0].drops || s[1].broken || s[0].broken) {
                printf("  FAIL: tx vring %llu frames (expected 1000), drops %llu/%llu, broken %d/%d\n",
                       (unsigned long long)s[1].frames, (unsigned long long)s[0].drops, (unsigned long long)s[1].drops,
                       s[0].broken, s[1].broken);
                goto out;
        }
        printf("  5000 generated frames received intact, 1000 sent frames taken\n");
        rc = 0;
out:
        return disconnect_null(&v, fe, rc);
}

static int test_paced(void)
{
        static const char *const extra[] = {"-b", "null", "-o", "rate=2000", "-o", "frame_len=1000", NULL};
        uint8_t buf[FE_FRAME_MAX];
        struct fe_rx_info info;
        struct vhostd v;
        struct fe *fe = NULL;
        uint64_t got = 0;
        int64_t t0 = fe_now_ms(), elapsed;
        int rc = -1;

        if (connect_null(&v, "paced", extra, &fe) < 0)
                goto out;
        while (fe_now_ms() - t0 < 1500) {
                int r = fe_ring_recv_wait(&fe->rings[0], buf, sizeof(buf), &info, 100);

                if (r == -ETIMEDOUT)
                        continue;
                if (r != 1) {
                        printf("  FAIL: receive: %s\n", strerror(-r));
                        goto out;
                }
                if (check_frame(buf, info.len, 1000) < 0)
                        goto out;
                got++;
        }
        elapsed = fe_now_ms() - t0;
        if (got == 0 || got > 2000 * (uint64_t)elapsed / 1000 + BACKLOG) {
                printf("  FAIL: %llu frames in %lld ms at 2000 frames/s (at most %llu)\n", (unsigned long long)got,
                       (long long)elapsed, (unsigned long long)(2000 * (uint64_t)elapsed / 1000 + BACKLOG));
                goto out;
        }
        printf("  %llu frames of 1000 bytes in %lld ms at rate 2000/s\n", (unsigned long long)got, (long long)elapsed);
        rc = 0;
out:
        return disconnect_null(&v, fe, rc);
}

static int test_frame_too_long(void)
{
        char log[256];
        char *argv[] = {(char *)fe_vhostd_path(), "-s", "/nonexistent/x.sock", "-b", "null", "-o",
                        "frame_len=2000",         NULL};
        int status;
        pid_t pid;

        snprintf(log, sizeof(log), "%s/too_long.log", g_dir);
        pid = fe_spawn_vhostd(argv, log);
        CHECK(pid > 0, "cannot start vhostd");
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %m");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0, "vhostd accepted frame_len = 2000 with MTU 1500");
        CHECK(file_contains(log, 0, "frame_len") && file_contains(log, 0, "MTU"), "no error naming frame_len:");
        return 0;
}

int main(void)
{
        static const struct {
                const char *name;
                int (*fn)(void);
        } tests[] = {
                {"as fast as taken", test_as_fast_as_taken},
                {"paced", test_paced},
                {"frame_len beyond the MTU", test_frame_too_long},
        };
        unsigned pass = 0, fail = 0;

        if (harness_begin("null") < 0)
                return 1;
        for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
                printf("%s\n", tests[i].name);
                if (tests[i].fn() == 0) {
                        pass++;
                } else {
                        fail++;
                }
        }
        return harness_finish(pass, fail);
}
