// SPDX-License-Identifier: MIT
/*
 * integ_reconnect: a front-end that hangs up and connects again at once, as QEMU does after a guest reboot or a
 * crash, against a real vhostd (loopback port, 2 queue pairs).
 *
 * 1. Server mode: 100 cycles of connect, set up 2 queue pairs, echo frames, hang up and connect again without
 *    waiting. None may be refused: the new connection often arrives before vhostd has read the old one's hang-up.
 * 2. A second live front-end is refused with a clear log line, at once, and the first one carries on; once the
 *    first leaves, the next is served.
 * 3. Client mode (--client): the test hangs up and listens again at once, 30 times; vhostd is back each time.
 *
 * Exit 0 when all pass; the last line is "N passed, N failed".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"

#include "tests/fakefe/harness.h"

#define CYCLES 100

static int session(struct fe *fe, unsigned frames, uint32_t salt)
{
        static struct flow fl[2];
        struct flow *p[2] = {&fl[0], &fl[1]};
        int r = fe_setup(fe, 2, 256, 0);

        CHECK(r == 0, "fe_setup: %s", strerror(-r));
        for (unsigned q = 0; q < 2; q++)
                flow_init(&fl[q], fe, q, salt + q, frames);
        return flows_run(p, 2, 5000);
}

static int test_quick_reconnect(const struct vhostd *v)
{
        for (unsigned i = 0; i < CYCLES; i++) {
                struct fe *fe;
                int r = fe_connect(v->sock, 5000, &fe);

                CHECK(r == 0, "cycle %u: connect: %s", i, strerror(-r));
                r = session(fe, 64, 0x7700 + 2 * i);
                fe_free(fe); /* and straight on to the next connect */
                CHECK(r == 0, "cycle %u: the connection made right after a hang-up was not served", i);
        }
        CHECK(!file_contains(v->log, 0, "refusing another"), "vhostd refused a front-end that reconnected at once");
        printf("  %u connect/set-up/traffic/hang-up cycles back to back, none refused\n", CYCLES);
        return 0;
}

static int test_second_front_end(const struct vhostd *v)
{
        struct fe *first, *second;
        long off = file_size(v->log);
        uint64_t f;
        int64_t t0;
        int r;

        r = fe_connect(v->sock, 5000, &first);
        CHECK(r == 0, "connect: %s", strerror(-r));
        if (session(first, 100, 0x1100) < 0) {
                fe_free(first);
                return -1;
        }
        r = fe_connect(v->sock, 5000, &second);
        if (r < 0) {
                fe_free(first);
                CHECK(r == 0, "second connect: %s", strerror(-r));
        }
        t0 = fe_now_ms();
        r = fe_get_features(second, &f);
        fe_free(second);
        if (r == 0 || fe_now_ms() - t0 > 2000 || !log_wait(v->log, off, "refusing another", 2000)) {
                fe_free(first);
                CHECK(r != 0, "a second live front-end was served");
                CHECK(false, "the second front-end was not refused at once with a log line (%lld ms)",
                      (long long)(fe_now_ms() - t0));
        }
        /* The first one carries on as if nothing happened. */
        {
                static struct flow fl[2];
                struct flow *p[2] = {&fl[0], &fl[1]};

                for (unsigned q = 0; q < 2; q++)
                        flow_init(&fl[q], first, q, 0x2200 + q, 500);
                r = flows_run(p, 2, 5000);
                fe_free(first);
                CHECK(r == 0, "the first front-end's traffic stopped after a second one was refused");
        }
        r = fe_connect(v->sock, 5000, &first);
        CHECK(r == 0, "connect after the first left: %s", strerror(-r));
        r = session(first, 100, 0x3300);
        fe_free(first);
        CHECK(r == 0, "the front-end after the first one was not served");
        printf("  a second live front-end refused in %lld ms with a log line; the first went on\n",
               (long long)(fe_now_ms() - t0));
        return 0;
}

static int test_client_mode(void)
{
        const char *extra[] = {"--client", NULL};
        struct vhostd v;
        int lfd = -1, r, ret = -1;
        int64_t worst = 0;

        if (vhostd_start(&v, "rc-client", 2, extra) < 0)
                return -1;
        r = fe_listen(v.sock, &lfd);
        if (r < 0) {
                printf("  FAIL: listen: %s\n", strerror(-r));
                goto out;
        }
        for (unsigned i = 0; i < 30; i++) {
                int64_t t0 = fe_now_ms();
                struct fe *fe;

                r = fe_accept(lfd, 5000, &fe);
                if (r < 0) {
                        printf("  FAIL: cycle %u: vhostd did not connect again: %s\n", i, strerror(-r));
                        goto out;
                }
                if (fe_now_ms() - t0 > worst)
                        worst = fe_now_ms() - t0;
                r = session(fe, 64, 0x4400 + 2 * i);
                fe_free(fe);
                if (r < 0) {
                        printf("  FAIL: cycle %u: session failed\n", i);
                        goto out;
                }
        }
        printf("  client mode: 30 hang-ups, vhostd back each time (longest wait %lld ms)\n", (long long)worst);
        ret = 0;
out:
        if (lfd >= 0)
                close(lfd);
        if (vhostd_stop(&v) < 0)
                ret = -1;
        if (ret < 0)
                print_log_tail(v.log, 20);
        return ret;
}

int main(void)
{
        unsigned pass = 0, fail = 0;
        struct vhostd v;
        int r;

        if (harness_begin("rc") < 0)
                return 1;
        if (vhostd_start(&v, "rc", 2, NULL) < 0) {
                printf("0 passed, 1 failed\n");
                return 1;
        }
        r = test_quick_reconnect(&v);
        printf("%s %u quick reconnects in a row, none refused\n", r == 0 ? "PASS" : "FAIL", CYCLES);
        r == 0 ? pass++ : fail++;
        r = test_second_front_end(&v);
        printf("%s a second live front-end is refused and blocks nothing\n", r == 0 ? "PASS" : "FAIL");
        r == 0 ? pass++ : fail++;
        if (!vhostd_alive(&v))
                fail++;
        if (vhostd_stop(&v) < 0)
                fail++;
        if (fail)
                print_log_tail(v.log, 30);
        r = test_client_mode();
        printf("%s client mode: reconnects after each hang-up\n", r == 0 ? "PASS" : "FAIL");
        r == 0 ? pass++ : fail++;
        return harness_finish(pass, fail);
}
