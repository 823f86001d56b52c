// SPDX-License-Identifier: MIT
/*
 * integ_truncate: guest memory that disappears. One vhostd with two loopback ports; port b carries checked
 * echo traffic on a thread the whole time, while on port a:
 *
 * 1. a front-end offers a region whose memfd is smaller than the region: SET_MEM_TABLE is refused with a log
 *    line saying so (it would fault on first touch);
 * 2. six times, a front-end (a forked child) runs traffic on 2 queue pairs and then truncates its memory file
 *    to nothing under that traffic, after 50 to 300 ms of it. vhostd faults (SIGBUS) in a worker of port a: it must
 * close that connection with a clear log line and carry on. After each: vhostd is alive, port b's traffic never stopped
 * for more than a second, and vhostd's fds, threads and guest-RAM mappings are back to the baseline.
 *
 * Exit 0 when all pass; the last line is "N passed, N failed".
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"

#include "tests/fakefe/harness.h"

static int start_two_ports(struct vhostd *v)
{
        char conf[128], js[4096];
        FILE *f;

        memset(v, 0, sizeof(*v));
        snprintf(conf, sizeof(conf), "%s/tr.conf", g_dir);
        snprintf(v->sock, sizeof(v->sock), "%s/a.sock", g_dir);
        snprintf(v->ctl, sizeof(v->ctl), "%s/tr.ctl", g_dir);
        snprintf(v->log, sizeof(v->log), "%s/tr.log", g_dir);
        f = fopen(conf, "w");
        CHECK(f, "cannot write %s: %m", conf);
        fprintf(f,
                "[global]\ncontrol_socket = %s\n[port a]\nsocket = %s/a.sock\nbackend = loopback\nqueues = 2\n"
                "[port b]\nsocket = %s/b.sock\nbackend = loopback\nqueues = 1\n",
                v->ctl, g_dir, g_dir);
        fclose(f);
        char *argv[] = {(char *)fe_vhostd_path(), "-c", conf, NULL};
        v->pid = fe_spawn_vhostd(argv, v->log);
        CHECK(v->pid > 0, "cannot start vhostd");
        for (int64_t end = fe_now_ms() + 10000; fe_now_ms() < end; usleep(10000))
                if (ctl_query(v->ctl, js, sizeof(js)) > 0)
                        return 0;
        CHECK(false, "vhostd did not answer on %s", v->ctl);
}

/* A region whose file is smaller than the region itself is refused at SET_MEM_TABLE. */
static int test_short_file(const struct vhostd *v)
{
        struct fe_mem mem;
        struct fe *fe;
        long off = file_size(v->log);
        int r;

        fe_mem_init(&mem);
        r = fe_mem_add_region(&mem, 0, 4 << 20, 0);
        CHECK(r >= 0, "region: %s", strerror(-r));
        CHECK(ftruncate(mem.regions[0].fd, 1 << 20) == 0, "ftruncate: %m");
        r = fe_connect(v->sock, 5000, &fe);
        if (r == 0) {
                uint64_t feat;
                /* With REPLY_ACK, so that the refusal comes back as an answer. */
                if ((r = fe_get_features(fe, &feat)) == 0 && (r = fe_set_owner(fe)) == 0 &&
                    (r = fe_set_features(fe, feat & FE_FEATURES_DEFAULT)) == 0 &&
                    (r = fe_set_protocol_features(fe, FE_PROTOCOL_FEATURES_DEFAULT)) == 0)
                        r = fe_set_mem_table(fe, &mem);
                fe_free(fe);
        }
        fe_mem_done(&mem);
        CHECK(r != 0, "a region larger than its file was accepted");
        CHECK(log_wait(v->log, off, "smaller than mmap_offset + size", 2000),
              "no log line saying the file is too small");
        return 0;
}

/* The child front-end: traffic on 2 queue pairs, then its memory file shrinks under it. Exit 0 when vhostd
 * closed the connection; it touches guest memory no more after the truncation. */
static void child_main(const char *sock, int traffic_ms)
{
        static struct flow fl[2];
        struct flow *p[2] = {&fl[0], &fl[1]};
        struct fe *fe;
        struct pollfd pfd;
        char c;

        if (fe_connect(sock, 5000, &fe) < 0 || fe_setup(fe, 2, 256, 0) < 0)
                _exit(2);
        for (unsigned q = 0; q < 2; q++)
                flow_init(&fl[q], fe, q, 0x7a00 + q, UINT32_MAX);
        for (int64_t end = fe_now_ms() + traffic_ms; fe_now_ms() < end;) {
                int a = flow_pump(&fl[0]), b = flow_pump(&fl[1]);
                if (a < 0 || b < 0)
                        _exit(3);
                if (!a && !b)
                        flows_wait(p, 2, 5);
        }
        /* Frames are in flight on both queue pairs now; take the memory away. */
        for (unsigned i = 0; i < fe->mem->nregions; i++)
                if (ftruncate(fe->mem->regions[i].fd, 0) < 0)
                        _exit(4);
        (void)fe_ring_kick(fe_tx(fe, 0));
        (void)fe_ring_kick(fe_tx(fe, 1));
        pfd = (struct pollfd){.fd = fe->sock, .events = POLLIN};
        if (poll(&pfd, 1, 5000) != 1 || recv(fe->sock, &c, 1, 0) != 0)
                _exit(5); /* vhostd did not hang up on us */
        _exit(0);
}

static int truncate_cycle(const struct vhostd *v, unsigned i, struct bg *b, const struct pstate *base)
{
        long off = file_size(v->log);
        int status;
        pid_t pid;
        struct pstate now;

        fflush(stdout);
        pid = fork();
        CHECK(pid >= 0, "fork: %m");
        if (pid == 0)
                child_main(v->sock, 50 + (int)(i * 50));
        /* Meanwhile port b must keep moving: no gap of a second without frames. */
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (!bg_flowing(b, 1, 1000)) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        CHECK(false, "cycle %u: port b's traffic stopped for a second", i);
                }
        }
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "cycle %u: the front-end ended with status 0x%x (2-4: set-up or traffic failed, 5: vhostd did not "
              "close the connection, a signal: it touched lost memory itself)",
              i, status);
        CHECK(vhostd_alive(v), "cycle %u: vhostd died", i);
        CHECK(log_wait(v->log, off, "guest memory vanished", 2000), "cycle %u: no log line for the lost memory", i);
        CHECK(pstate_wait(v->pid, base, 5000, &now) == 0,
              "cycle %u: vhostd holds %d fds, %d threads, %d guest mappings; baseline %d, %d, %d", i, now.fds,
              now.threads, now.maps, base->fds, base->threads, base->maps);
        return 0;
}

int main(void)
{
        unsigned pass = 0, fail = 0;
        static struct flow fb, warm[2];
        struct flow *wp[2] = {&warm[0], &warm[1]};
        struct vhostd v;
        struct pstate base;
        struct bg b;
        struct fe *fa, *fbe;
        char bsock[160];
        int r;

        if (harness_begin("tr") < 0)
                return 1;
        if (start_two_ports(&v) < 0) {
                printf("0 passed, 1 failed\n");
                return 1;
        }
        /* Port b: traffic on its own thread for the whole test. */
        snprintf(bsock, sizeof(bsock), "%s/b.sock", g_dir);
        if (fe_connect(bsock, 5000, &fbe) < 0 || fe_setup(fbe, 1, 256, 0) < 0) {
                printf("FAIL: port b set-up\n0 passed, 1 failed\n");
                vhostd_stop(&v);
                return 1;
        }
        flow_init(&fb, fbe, 0, 0xb0b, UINT32_MAX);
        bg_start(&b, &fb);
        /* Baseline after one full connection on port a. */
        if (fe_connect(v.sock, 5000, &fa) == 0 && fe_setup(fa, 2, 256, 0) == 0) {
                for (unsigned q = 0; q < 2; q++)
                        flow_init(&warm[q], fa, q, 0x3a + q, 200);
                (void)flows_run(wp, 2, 5000);
        }
        fe_free(fa);
        fe_wait_maps(v.pid, FE_MEM_NAME, 1, 5000); /* port b's region stays */
        usleep(100000);
        pstate_get(v.pid, &base);
        printf("baseline: %d fds, %d threads, %d guest RAM mappings (port b connected)\n", base.fds, base.threads,
               base.maps);

        r = test_short_file(&v);
        printf("%s a region larger than its file is refused with a clear error\n", r == 0 ? "PASS" : "FAIL");
        r == 0 ? pass++ : fail++;

        r = 0;
        for (unsigned i = 0; i < 6 && r == 0; i++)
                r = truncate_cycle(&v, i, &b, &base);
        printf("%s memory truncated under traffic 6 times: only that connection closes, port b goes on, no leak\n",
               r == 0 ? "PASS" : "FAIL");
        r == 0 ? pass++ : fail++;

        r = bg_stop(&b);
        printf("%s port b's traffic: %u frames, every one intact and in order\n", r == 0 ? "PASS" : "FAIL",
               fb.recv_seq);
        r == 0 ? pass++ : fail++;
        fe_free(fbe);
        if (vhostd_stop(&v) < 0)
                fail++;
        if (fail)
                print_log_tail(v.log, 30);
        return harness_finish(pass, fail);
}
