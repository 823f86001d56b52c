// SPDX-License-Identifier: MIT
/*
 * loop_rate: frames per second through a vhostd loopback port, driven by the test front-end (one process, both
 * queue pairs echoing checked frames), with or without live migration's dirty log on. For bench/dirty_log.sh:
 *
 *   loop_rate SOCKET SECONDS off|log [QUEUE_PAIRS [RX_PER_PUMP]]
 *
 * RX_PER_PUMP (default 0: all there are) limits the frames taken off each rx ring per round while up to 64 are
 * sent: the front-end then takes frames back slower than it sends them, and the port backs up (backpressure).
 *
 * Prints "mpps N frames N seconds N marks N" (marks: pages in the log at the end). Exit 0 when every frame came
 * back intact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakefe/fakefe.h"

#include "tests/fakefe/harness.h"

int main(int argc, char **argv)
{
        static struct flow fl[2];
        struct flow *p[2] = {&fl[0], &fl[1]};
        unsigned qps = argc > 4 ? (unsigned)atoi(argv[4]) : 1;
        unsigned rx_per_pump = argc > 5 ? (unsigned)atoi(argv[5]) : 0;
        bool log;
        struct fe *fe;
        int64_t t0, t1;
        uint64_t frames = 0;
        int r;

        if (argc < 4 || (strcmp(argv[3], "off") && strcmp(argv[3], "log")) || qps < 1 || qps > 2) {
                fprintf(stderr, "usage: loop_rate SOCKET SECONDS off|log [1|2 [RX_PER_PUMP]]\n");
                return 2;
        }
        log = !strcmp(argv[3], "log");
        if ((r = fe_connect(argv[1], 5000, &fe)) < 0 || (r = fe_setup(fe, qps, 256, 0)) < 0 ||
            (log && (r = fe_log_start(fe)) < 0)) {
                fprintf(stderr, "loop_rate: set-up: %s\n", strerror(-r));
                return 1;
        }
        for (unsigned q = 0; q < qps; q++) {
                flow_init(&fl[q], fe, q, 0x1a7e + q, UINT32_MAX);
                fl[q].max_len = 60; /* 64-byte frames: the per-frame cost is what logging adds to */
                fl[q].rx_per_pump = rx_per_pump;
        }
        t0 = fe_now_ms();
        t1 = t0 + atoi(argv[2]) * 1000LL;
        while (fe_now_ms() < t1) {
                int busy = 0;
                for (unsigned q = 0; q < qps; q++) {
                        int n = flow_pump(&fl[q]);
                        if (n < 0) {
                                fprintf(stderr, "loop_rate: %s\n", fl[q].err);
                                return 1;
                        }
                        busy |= n;
                }
                if (!busy)
                        flows_wait(p, qps, 5);
        }
        for (unsigned q = 0; q < qps; q++) {
                fl[q].limit = fl[q].send_seq;
                frames += fl[q].recv_seq;
        }
        if (flows_run(p, qps, 5000) < 0) {
                fprintf(stderr, "loop_rate: draining: %s\n", fl[0].err[0] ? fl[0].err : fl[1].err);
                return 1;
        }
        printf("mpps %.4f frames %llu seconds %.2f marks %llu\n", frames / ((t1 - t0) * 1000.0),
               (unsigned long long)frames, (t1 - t0) / 1000.0, (unsigned long long)(log ? fe_log_count(&fe->log) : 0));
        fe_free(fe);
        return 0;
}
