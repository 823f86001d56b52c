// SPDX-License-Identifier: MIT
/*
 * fe_hold: a front-end that brings QUEUE_PAIRS queue pairs up on a vhostd socket, sends FRAMES checked frames
 * on each tx ring, then stays attached, taking whatever the port sends to its rx rings, until SIGTERM or SIGINT.
 * For measurements of a back-end whose rings are live (bench/afxdp_mem.sh).
 *
 *   fe_hold SOCKET QUEUE_PAIRS [FRAMES]
 *
 * Prints "ready" once every queue pair is up and its frames are sent and completed, and at exit
 * "received N" (frames taken from the rx rings). Exit 0 when set-up and sending worked.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakefe/fakefe.h"

#define QP_MAX 16

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        stop = 1;
}

int main(int argc, char **argv)
{
        static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x02}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
        static uint8_t buf[65536];
        unsigned qps = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
        unsigned frames = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 256;
        unsigned long received = 0;
        struct sigaction sa = {.sa_handler = on_signal};
        struct fe *fe;
        int r;

        if (argc < 3 || qps == 0 || qps > QP_MAX) {
                fprintf(stderr, "usage: fe_hold SOCKET QUEUE_PAIRS(1..%d) [FRAMES]\n", QP_MAX);
                return 2;
        }
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        r = fe_connect(argv[1], 5000, &fe);
        if (r == 0)
                r = fe_setup(fe, qps, 256, 0);
        if (r < 0) {
                fprintf(stderr, "front-end setup on %s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        for (unsigned q = 0; q < qps; q++) {
                struct fe_ring *tx = fe_tx(fe, q);
                unsigned sent = 0, tries = 0;

                while (sent < frames && tries < 1000) {
                        fe_frame_build(buf, 60 + sent % 1455, sent, dst, src);
                        r = fe_ring_post_tx(tx, buf, 60 + sent % 1455, NULL, NULL);
                        if (r >= 0) {
                                sent++;
                                continue;
                        }
                        if (r != -ENOSPC) {
                                fprintf(stderr, "queue pair %u: posting a frame: %s\n", q, strerror(-r));
                                return 1;
                        }
                        fe_ring_notify(tx);
                        (void)fe_ring_wait(tx, 1, 10);
                        (void)fe_ring_reap(tx);
                        tries++;
                }
                fe_ring_notify(tx);
                if (sent < frames) {
                        fprintf(stderr, "queue pair %u: %u of %u frames sent\n", q, sent, frames);
                        return 1;
                }
        }
        printf("ready\n");
        fflush(stdout);
        while (!stop) {
                for (unsigned q = 0; q < qps; q++) {
                        struct fe_rx_info info;

                        (void)fe_ring_reap(fe_tx(fe, q));
                        while (fe_ring_recv(fe_rx(fe, q), buf, sizeof(buf), &info) == 1)
                                received++;
                        (void)fe_ring_wait(fe_rx(fe, q), 1, 20 / qps + 1);
                }
        }
        printf("received %lu\n", received);
        fe_free(fe);
        return 0;
}
