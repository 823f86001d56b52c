// SPDX-License-Identifier: MIT
/*
 * integ_lifecycle: connections that come and go, against a real vhostd (loopback port, 2 queue pairs).
 *
 * 1. 100 cycles of connect, set up 2 queue pairs, echo traffic, then an abrupt end: the socket closed in the
 *    middle of a burst, the socket closed half-way through setup, or the front-end (a forked child) killed with
 *    SIGKILL in the middle of a message or in the middle of traffic. After each cycle vhostd's fds, threads and
 *    guest-RAM (memfd) mappings must be back to the baseline (/proc).
 * 2. Memory-table changes while both queue pairs carry traffic on their own threads: ADD_MEM_REG of a new region
 *    with REM_MEM_REG of an unused one, full SET_MEM_TABLE re-sends (with and without an extra region); every
 *    frame must come back intact and in order, and the counters must agree.
 * 3. vhostd in client mode (--client): the test listens, vhostd connects, traffic works; the test hangs up and
 *    vhostd comes back; the test stops listening for a while and vhostd retries with back-off until it can.
 *
 * Frames a previous connection left in the loopback port may be delivered to the next one; they are told apart
 * by their source MAC and counted as stale, never mistaken for lost or reordered frames.
 *
 * Exit 0 when all pass; the last line is "N passed, N failed".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"

#include "tests/fakefe/harness.h"

/* ---- 1. abrupt ends -------------------------------------------------------------------------------------- */

enum ending { END_CLOSE_MID_BURST, END_KILL_MID_MESSAGE, END_CLOSE_MID_SETUP, END_KILL_MID_TRAFFIC, END_COUNT };

static const char *const ending_names[END_COUNT] = {
        [END_CLOSE_MID_BURST] = "socket closed mid-burst",
        [END_KILL_MID_MESSAGE] = "front-end SIGKILLed mid-message",
        [END_CLOSE_MID_SETUP] = "socket closed mid-setup",
        [END_KILL_MID_TRAFFIC] = "front-end SIGKILLed mid-traffic",
};

/* Connect, set up 2 queue pairs and echo @frames on each. */
static int connect_and_echo(const char *sock, unsigned frames, struct flow *fl, struct fe **ret_fe)
{
        struct flow *p[2] = {&fl[0], &fl[1]};
        struct fe *fe;
        int r;

        r = fe_connect(sock, 5000, &fe);
        CHECK(r == 0, "connect: %s", strerror(-r));
        r = fe_setup(fe, 2, 256, 0);
        if (r < 0) {
                fe_free(fe);
                CHECK(r == 0, "fe_setup: %s", strerror(-r));
        }
        for (unsigned q = 0; q < 2; q++) {
                flow_init(&fl[q], fe, q, 0x5150 + q, frames);
                fl[q].tx_nseg_max = 3;
                fl[q].tx_indirect = true;
        }
        if (flows_run(p, 2, 5000) < 0) {
                fe_free(fe);
                return -1;
        }
        *ret_fe = fe;
        return 0;
}

/* The child front-end: echoes, tells the parent (one byte on @fd), then hangs in a message or keeps sending. */
static void child_main(const char *sock, int fd, enum ending e)
{
        static struct flow fl[2];
        struct flow *p[2] = {&fl[0], &fl[1]};
        struct fe *fe;

        if (connect_and_echo(sock, 200, fl, &fe) < 0)
                _exit(1);
        if (e == END_KILL_MID_MESSAGE) {
                uint8_t b[sizeof(struct vu_hdr) + 20] = {0};
                struct vu_hdr h = {.request = VU_SET_MEM_TABLE, .flags = VU_VERSION, .size = 8 + 32};
                int efd = eventfd(0, EFD_CLOEXEC);

                memcpy(b, &h, sizeof(h));
                b[sizeof(h)] = 1;
                if (fe_send_raw(fe, b, sizeof(b), &efd, 1) < 0)
                        _exit(1);
                if (write(fd, "r", 1) != 1)
                        _exit(1);
                for (;;)
                        pause();
        }
        if (write(fd, "r", 1) != 1)
                _exit(1);
        fl[0].limit = fl[1].limit = UINT32_MAX;
        for (;;) {
                int a = flow_pump(&fl[0]), b = flow_pump(&fl[1]);
                if (a < 0 || b < 0)
                        _exit(1);
                if (!a && !b)
                        flows_wait(p, 2, 10);
        }
}

static int cycle(struct vhostd *v, unsigned i, enum ending e)
{
        static struct flow fl[2];
        struct fe *fe = NULL;
        int r;

        switch (e) {
        case END_CLOSE_MID_BURST:
                if (connect_and_echo(v->sock, 300, fl, &fe) < 0)
                        return -1;
                /* A burst on both queue pairs, and hang up while vhostd is moving it. */
                for (unsigned q = 0; q < 2; q++) {
                        fl[q].limit = fl[q].send_seq + 200;
                        (void)flow_pump(&fl[q]);
                }
                fe_free(fe);
                return 0;
        case END_CLOSE_MID_SETUP: {
                struct fe_setup_opts o = {.queue_pairs = 2, .no_enable = (i & 4) != 0};

                r = fe_connect(v->sock, 5000, &fe);
                CHECK(r == 0, "connect: %s", strerror(-r));
                if (i & 4) {
                        r = fe_setup_ex(fe, &o); /* everything but SET_VRING_ENABLE and DRIVER_OK */
                } else {
                        /* Memory and two rings only, then a kick and gone. */
                        uint64_t f;
                        if ((r = fe_get_features(fe, &f)) == 0 && (r = fe_set_owner(fe)) == 0 &&
                            (r = fe_set_features(fe, f & FE_FEATURES_DEFAULT)) == 0) {
                                struct fe_mem *m = calloc(1, sizeof(*m));
                                fe_mem_init(m);
                                fe->mem = m;
                                fe->own_mem = true;
                                if ((r = fe_mem_add_region(m, 0, 4 << 20, 0)) >= 0 &&
                                    (r = fe_set_mem_table(fe, m)) == 0 &&
                                    (r = fe_ring_init(&fe->rings[0], m, 0, 64, 2048, 0, 0)) == 0) {
                                        fe->nrings = 1;
                                        r = fe_ring_configure(fe, &fe->rings[0]);
                                }
                        }
                }
                fe_free(fe);
                CHECK(r == 0, "partial setup: %s", strerror(-r));
                return 0;
        }
        case END_KILL_MID_MESSAGE:
        case END_KILL_MID_TRAFFIC: {
                int pfd[2], status;
                struct pollfd p;
                char c;
                pid_t pid;

                CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe: %m");
                fflush(stdout);
                pid = fork();
                CHECK(pid >= 0, "fork: %m");
                if (pid == 0) {
                        close(pfd[0]);
                        child_main(v->sock, pfd[1], e);
                        _exit(1);
                }
                close(pfd[1]);
                p = (struct pollfd){.fd = pfd[0], .events = POLLIN};
                r = poll(&p, 1, 10000) == 1 && read(pfd[0], &c, 1) == 1 ? 0 : -1;
                close(pfd[0]);
                if (r == 0 && e == END_KILL_MID_TRAFFIC)
                        usleep(1000 + (i * 7919) % 30000);
                kill(pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
                CHECK(r == 0, "the child front-end failed before it was killed");
                return 0;
        }
        default:
                return -1;
        }
}

static int test_cycles(struct vhostd *v, const struct pstate *base)
{
        unsigned per[END_COUNT] = {0};
        int64_t t0 = fe_now_ms();

        for (unsigned i = 0; i < 100; i++) {
                enum ending e = (enum ending)(i % END_COUNT);
                struct pstate now;
                int r = cycle(v, i, e);

                CHECK(r == 0, "cycle %u (%s)", i, ending_names[e]);
                r = pstate_wait(v->pid, base, 5000, &now);
                CHECK(r == 0,
                      "cycle %u (%s): not back to baseline: fds %d (baseline %d), threads %d (%d), guest RAM "
                      "mappings %d (%d)",
                      i, ending_names[e], now.fds, base->fds, now.threads, base->threads, now.maps, base->maps);
                CHECK(vhostd_alive(v), "vhostd died in cycle %u (%s)", i, ending_names[e]);
                per[e]++;
        }
        printf("  100 cycles in %lld ms:", (long long)(fe_now_ms() - t0));
        for (unsigned e = 0; e < END_COUNT; e++)
                printf(" %u %s%s", per[e], ending_names[e], e + 1 < END_COUNT ? "," : "\n");
        return 0;
}

/* ---- 2. memory-table changes under traffic ------------------------------------------------------------- */

#define EXTRA_GPA (16ULL << 30)
#define EXTRA_UVA 0x300000000000ULL
#define EXTRA_SIZE (2ULL << 20)

static int test_mem_changes(struct vhostd *v, const struct pstate *base)
{
        static struct flow fl[2];
        static char js[16384];
        struct fe_mem extra, both;
        struct bg bg[2];
        struct vstat s[4];
        struct pstate now;
        struct fe *fe = NULL;
        int prev = -1, r, ret = -1, adds = 0, rems = 0, tables = 0;
        unsigned started = 0;

        fe_mem_init(&extra);
        r = fe_connect(v->sock, 5000, &fe);
        CHECK(r == 0, "connect: %s", strerror(-r));
        r = fe_setup_ex(fe, &(struct fe_setup_opts){.queue_pairs = 2, .buf_size = 4096, .rx_buf_size = 2048});
        if (r < 0) {
                printf("  FAIL: fe_setup: %s\n", strerror(-r));
                goto out;
        }
        for (unsigned q = 0; q < 2; q++) {
                flow_init(&fl[q], fe, q, 0x77 + q, 0);
                fl[q].max_len = 4000;
                fl[q].tx_indirect = true;
                fl[q].tx_nseg_max = 4;
        }
        /* rx buffers are 2048 bytes: frames up to 4000 bytes take two mergeable buffers. */
        if (!(fe->acked_features & BIT_ULL(VIRTIO_NET_F_MRG_RXBUF))) {
                printf("  FAIL: MRG_RXBUF not negotiated\n");
                goto out;
        }
        for (unsigned q = 0; q < 2; q++) {
                r = bg_start(&bg[q], &fl[q]);
                if (r < 0) {
                        printf("  FAIL: pthread_create: %s\n", strerror(-r));
                        goto out;
                }
                started++;
        }
        for (unsigned i = 0; i < 60; i++) {
                if (!bg_flowing(&bg[0], 50, 3000) || !bg_flowing(&bg[1], 50, 3000)) {
                        printf("  FAIL: traffic stopped after %d ADD_MEM_REG, %d REM_MEM_REG, %d SET_MEM_TABLE\n", adds,
                               rems, tables);
                        goto out;
                }
                switch (i % 3) {
                case 0: { /* a new region in, the previous unused one out */
                        int idx = fe_mem_add_region(&extra, EXTRA_GPA + extra.nregions * EXTRA_SIZE, EXTRA_SIZE, 0);
                        if (idx < 0) {
                                printf("  FAIL: region: %s\n", strerror(-idx));
                                goto out;
                        }
                        extra.regions[idx].uva = EXTRA_UVA + (uint64_t)idx * EXTRA_SIZE;
                        memset(extra.regions[idx].ptr, 0x5a, EXTRA_SIZE);
                        if ((r = fe_add_mem_reg(fe, &extra, (unsigned)idx)) < 0) {
                                printf("  FAIL: ADD_MEM_REG: %s\n", strerror(-r));
                                goto out;
                        }
                        adds++;
                        if (prev >= 0) {
                                if ((r = fe_rem_mem_reg(fe, &extra, (unsigned)prev)) < 0) {
                                        printf("  FAIL: REM_MEM_REG: %s\n", strerror(-r));
                                        goto out;
                                }
                                rems++;
                        }
                        prev = idx;
                        break;
                }
                case 1: /* the same table again, as a whole: the extra region goes */
                        if ((r = fe_set_mem_table(fe, fe->mem)) < 0) {
                                printf("  FAIL: SET_MEM_TABLE: %s\n", strerror(-r));
                                goto out;
                        }
                        tables++;
                        prev = -1;
                        break;
                case 2: /* the table plus the newest extra region, as a whole */
                        both = *fe->mem;
                        if (extra.nregions)
                                both.regions[both.nregions++] = extra.regions[extra.nregions - 1];
                        if ((r = fe_set_mem_table(fe, &both)) < 0) {
                                printf("  FAIL: SET_MEM_TABLE with %u regions: %s\n", both.nregions, strerror(-r));
                                goto out;
                        }
                        tables++;
                        prev = extra.nregions ? (int)extra.nregions - 1 : -1;
                        break;
                }
        }
        for (; started; started--)
                if (bg_stop(&bg[started - 1]) < 0)
                        goto out;
        r = vstats(v, s, 4, js, sizeof(js));
        if (r < 0) {
                printf("  FAIL: control socket: %s\n", strerror(-r));
                goto out;
        }
        for (unsigned q = 0; q < 2; q++) {
                const struct flow *f = &fl[q];
                if (s[2 * q + 1].frames != f->send_seq || s[2 * q].frames != f->recv_seq + f->stale ||
                    s[2 * q + 1].bytes != f->tx_bytes || s[2 * q].bytes != f->rx_bytes + f->stale_bytes ||
                    s[2 * q].drops || s[2 * q + 1].drops || s[2 * q].broken || s[2 * q + 1].broken) {
                        printf("  FAIL: queue pair %u: sent %u received %u (+%llu stale); vhostd tx %llu rx %llu, "
                               "drops %llu/%llu, broken %d/%d\n",
                               q, f->send_seq, f->recv_seq, (unsigned long long)f->stale,
                               (unsigned long long)s[2 * q + 1].frames, (unsigned long long)s[2 * q].frames,
                               (unsigned long long)s[2 * q + 1].drops, (unsigned long long)s[2 * q].drops,
                               s[2 * q + 1].broken, s[2 * q].broken);
                        goto out;
                }
        }
        printf("  %d ADD_MEM_REG, %d REM_MEM_REG, %d SET_MEM_TABLE; %u + %u frames echoed intact\n", adds, rems, tables,
               fl[0].recv_seq, fl[1].recv_seq);
        ret = 0;
out:
        for (; started; started--)
                (void)bg_stop(&bg[started - 1]);
        fe_free(fe);
        fe_mem_done(&extra);
        if (pstate_wait(v->pid, base, 5000, &now) < 0) {
                printf("  FAIL: not back to baseline: fds %d/%d threads %d/%d maps %d/%d\n", now.fds, base->fds,
                       now.threads, base->threads, now.maps, base->maps);
                ret = -1;
        }
        return ret;
}

/* ---- 3. client mode ------------------------------------------------------------------------------------ */

static int client_session(struct vhostd *v, int lfd, int timeout_ms, unsigned frames)
{
        static struct flow fl[2];
        struct flow *p[2] = {&fl[0], &fl[1]};
        struct fe *fe;
        int r, maps;

        r = fe_accept(lfd, timeout_ms, &fe);
        CHECK(r == 0, "vhostd did not connect within %d ms: %s", timeout_ms, strerror(-r));
        /* A new connection comes only once the previous one is gone. */
        maps = fe_count_maps(v->pid, FE_MEM_NAME);
        if (maps != 0) {
                fe_free(fe);
                CHECK(maps == 0, "vhostd reconnected while it still mapped %d regions of the last guest", maps);
        }
        r = fe_setup(fe, 2, 256, 0);
        if (r < 0) {
                fe_free(fe);
                CHECK(r == 0, "fe_setup: %s", strerror(-r));
        }
        for (unsigned q = 0; q < 2; q++)
                flow_init(&fl[q], fe, q, 0x99 + q, frames);
        r = flows_run(p, 2, 5000);
        fe_free(fe);
        return r;
}

static int test_client(void)
{
        const char *extra[] = {"--client", NULL};
        static char js[8192];
        struct vhostd v;
        char sock[128];
        int lfd = -1, r, ret = -1;
        long off;
        uint64_t conns;

        if (vhostd_start(&v, "cl", 2, extra) < 0)
                return -1;
        snprintf(sock, sizeof(sock), "%s", v.sock);
        /* vhostd starts first: nobody listens yet, it retries. */
        if (!log_wait(v.log, 0, "retrying with back-off", 3000)) {
                printf("  FAIL: vhostd does not say it retries\n");
                goto out;
        }
        usleep(300000);
        r = fe_listen(sock, &lfd);
        if (r < 0) {
                printf("  FAIL: listen: %s\n", strerror(-r));
                goto out;
        }
        for (int i = 0; i < 3; i++) {
                if (client_session(&v, lfd, 8000, 500) < 0)
                        goto out;
        }
        r = ctl_query(v.ctl, js, sizeof(js));
        if (r < 0 || !strstr(js, "\"mode\":\"client\"")) {
                printf("  FAIL: control socket does not show client mode\n");
                goto out;
        }
        /* vhostd is back after the last hang-up; take that connection, stop listening, and hang up: nobody
         * listens for 2 s, vhostd backs off, then finds us again. */
        {
                struct fe *fe;
                r = fe_accept(lfd, 5000, &fe);
                if (r < 0) {
                        printf("  FAIL: no reconnection after the third session\n");
                        goto out;
                }
                off = file_size(v.log);
                close(lfd);
                lfd = -1;
                unlink(sock);
                fe_free(fe);
        }
        if (!log_wait(v.log, off, "retrying with back-off", 3000)) {
                printf("  FAIL: vhostd does not say it retries after the listener went away\n");
                goto out;
        }
        usleep(2000000);
        r = fe_listen(sock, &lfd);
        if (r < 0) {
                printf("  FAIL: listen: %s\n", strerror(-r));
                goto out;
        }
        if (client_session(&v, lfd, 8000, 500) < 0)
                goto out;
        /* Wait until it reconnected once more (it does after every hang-up), to count. */
        {
                struct fe *fe;
                r = fe_accept(lfd, 5000, &fe);
                if (r < 0) {
                        printf("  FAIL: no reconnection after the last session\n");
                        goto out;
                }
                usleep(50000);
                r = ctl_query(v.ctl, js, sizeof(js));
                conns = json_port_u64(js, "connections");
                fe_free(fe);
                if (r < 0 || conns != 6) {
                        printf("  FAIL: control socket says %llu connections, expected 6\n", (unsigned long long)conns);
                        goto out;
                }
        }
        printf("  6 connections made by vhostd, 4 sessions echoed, one back-off\n");
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
        static struct flow warm[2];
        struct vhostd v;
        struct pstate base;
        struct fe *fe;
        int64_t t0 = fe_now_ms();
        int r;

        if (harness_begin("lc") < 0)
                return 1;
        if (vhostd_start(&v, "lc", 2, NULL) < 0) {
                printf("0 passed, 1 failed\n");
                return 1;
        }
        /* Baseline after one full connection: state created once (allocator arenas...) is not a leak. */
        if (connect_and_echo(v.sock, 100, warm, &fe) < 0) {
                printf("FAIL: first connection\n0 passed, 1 failed\n");
                vhostd_stop(&v);
                return 1;
        }
        fe_free(fe);
        fe_wait_maps(v.pid, FE_MEM_NAME, 0, 5000);
        usleep(100000);
        pstate_get(v.pid, &base);
        printf("baseline: %d fds, %d threads, %d guest RAM mappings\n", base.fds, base.threads, base.maps);

        r = test_cycles(&v, &base);
        printf("%s 100 connect/traffic/abrupt-end cycles return to the baseline\n", r == 0 ? "PASS" : "FAIL");
        r == 0 ? pass++ : fail++;
        if (vhostd_alive(&v)) {
                r = test_mem_changes(&v, &base);
                printf("%s memory-table changes under traffic\n", r == 0 ? "PASS" : "FAIL");
                r == 0 ? pass++ : fail++;
        }
        if (vhostd_stop(&v) < 0)
                fail++;
        r = test_client();
        printf("%s client mode: connects, reconnects after a hang-up, backs off\n", r == 0 ? "PASS" : "FAIL");
        r == 0 ? pass++ : fail++;

        printf("done in %lld ms\n", (long long)(fe_now_ms() - t0));
        if (fail)
                print_log_tail(v.log, 30);
        return harness_finish(pass, fail);
}
