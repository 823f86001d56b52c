// SPDX-License-Identifier: MIT
/*
 * integ_dirty_log: live migration's dirty log against a real vhostd (loopback port, 2 queue pairs, mergeable rx
 * buffers). The front-end starts logging as QEMU does when a migration starts (SET_LOG_BASE, SET_FEATURES with
 * LOG_ALL, SET_VRING_ADDR with the log flag), then, interval after interval: clears the log (a migration pass
 * fetched it), snapshots guest memory, moves checked frames both ways on both queue pairs, snapshots again, and
 * fails on any page that changed without its bit set (the guest driver's own writes are tracked apart, as KVM
 * does). Half-way a new, larger log replaces the first (QEMU resizes it); at the end logging stops, and then the
 * log must stay empty while traffic goes on. No vring may break, every frame must come back intact.
 *
 * Exit 0 when all pass; the last line is "N passed, N failed".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"

#include "tests/fakefe/harness.h"

#define INTERVALS 6

/* One interval: traffic on both queue pairs between two snapshots; returns the pages that changed unlogged. */
static int interval(struct fe *fe, struct flow *fl, unsigned frames, uint64_t *ret_changed, int64_t *ret_unlogged,
                    uint64_t *ret_first)
{
        struct flow *p[2] = {&fl[0], &fl[1]};
        struct fe_snapshot before = {0}, after = {0};
        int r;

        fe_log_clear(&fe->log);
        CHECK(fe_mem_track(fe->mem) == 0, "tracking the guest's writes");
        CHECK(fe_mem_snapshot(fe->mem, &before) == 0, "snapshot");
        for (unsigned q = 0; q < 2; q++)
                fl[q].limit = fl[q].send_seq + frames;
        r = flows_run(p, 2, 5000);
        if (r == 0)
                r = fe_sync(fe); /* every burst vhostd made is published (it answered after them) */
        if (r == 0)
                r = fe_mem_snapshot(fe->mem, &after);
        if (r == 0)
                *ret_unlogged = fe_log_unlogged(&fe->log, fe->mem, &before, &after, ret_changed, ret_first);
        fe_snapshot_done(&before);
        fe_snapshot_done(&after);
        CHECK(r == 0, "traffic or snapshot failed: %s", fl[0].err[0] ? fl[0].err : fl[1].err);
        return 0;
}

static int test_logging(const struct vhostd *v)
{
        static struct flow fl[2];
        struct vstat st[4];
        static char js[8192];
        uint64_t changed = 0, marked = 0, first = 0;
        int64_t unlogged = 0;
        struct fe *fe;
        int r;

        r = fe_connect(v->sock, 5000, &fe);
        CHECK(r == 0, "connect: %s", strerror(-r));
        /* 1 KiB receive buffers: frames over 1012 bytes take two (num_buffers 2). */
        struct fe_setup_opts o = {.queue_pairs = 2, .ring_size = 256, .rx_buf_size = 1024};
        r = fe_setup_ex(fe, &o);
        if (r == 0)
                r = (fe->acked_features & BIT_ULL(VIRTIO_NET_F_MRG_RXBUF)) ? 0 : -ENOTSUP;
        if (r < 0) {
                fe_free(fe);
                CHECK(r == 0, "set-up with mergeable buffers: %s", strerror(-r));
        }
        for (unsigned q = 0; q < 2; q++) {
                flow_init(&fl[q], fe, q, 0xd17 + q, 0);
                fl[q].tx_nseg_max = 3;
        }
        r = fe_log_start(fe);
        if (r < 0) {
                fe_free(fe);
                CHECK(r == 0, "starting the log: %s", strerror(-r));
        }
        for (unsigned i = 0; i < INTERVALS && r == 0; i++) {
                uint64_t c = 0;
                if (i == INTERVALS / 2) {
                        /* QEMU sends a new log when guest memory grows: a larger one replaces the first. */
                        uint64_t size = fe->log.size * 2;
                        fe_log_done(&fe->log);
                        if ((r = fe_log_init(&fe->log, size, 4096)) == 0)
                                r = fe_set_log_base(fe, &fe->log);
                        if (r < 0)
                                break;
                }
                r = interval(fe, fl, 3000, &c, &unlogged, &first);
                marked += fe_log_count(&fe->log);
                changed += c;
                if (r == 0 && unlogged) {
                        printf("  FAIL: interval %u: %lld of %llu changed pages are not in the log (first at gpa "
                               "0x%llx)\n",
                               i, (long long)unlogged, (unsigned long long)c, (unsigned long long)first);
                        r = -1;
                }
        }
        if (r == 0 && (r = fe_log_stop(fe)) == 0) {
                uint64_t c = 0;
                r = interval(fe, fl, 3000, &c, &unlogged, &first);
                if (r == 0 && fe_log_count(&fe->log)) {
                        printf("  FAIL: %llu pages marked with logging off\n",
                               (unsigned long long)fe_log_count(&fe->log));
                        r = -1;
                }
        }
        if (r == 0)
                r = vstats(v, st, 4, js, sizeof(js));
        fe_free(fe);
        CHECK(r == 0, "logging intervals failed");
        for (unsigned i = 0; i < 4; i++)
                CHECK(!st[i].broken && st[i].frames > 0, "vring %u: %s, %llu frames", i, st[i].reason,
                      (unsigned long long)st[i].frames);
        CHECK(changed > 0 && marked > 0, "nothing changed (%llu) or marked (%llu)", (unsigned long long)changed,
              (unsigned long long)marked);
        printf("  %u intervals: %llu pages changed, every one logged (%llu marks); a new log half-way; "
               "nothing marked once logging stopped\n",
               INTERVALS, (unsigned long long)changed, (unsigned long long)marked);
        return 0;
}

int main(void)
{
        unsigned pass = 0, fail = 0;
        struct vhostd v;
        int r;

        if (harness_begin("dl") < 0)
                return 1;
        if (vhostd_start(&v, "dl", 2, NULL) < 0) {
                printf("0 passed, 1 failed\n");
                return 1;
        }
        r = test_logging(&v);
        printf("%s every page vhostd writes is in the dirty log, 2 queue pairs, mergeable buffers\n",
               r == 0 ? "PASS" : "FAIL");
        r == 0 ? pass++ : fail++;
        if (vhostd_stop(&v) < 0)
                fail++;
        if (fail)
                print_log_tail(v.log, 30);
        return harness_finish(pass, fail);
}
