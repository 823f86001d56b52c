// SPDX-License-Identifier: MIT
/*
 * integ_loopback: a real vhostd with the loopback port, driven by fakefe. Every frame the guest sends on queue
 * pair i must come back on its receive queue i, in order, intact: each carries a sequence number and an FNV-1a
 * checksum (fe_frame_build). Covers 1 and 2 queue pairs, with and without EVENT_IDX, MRG_RXBUF and indirect
 * descriptors, chained and indirect layouts on both rings, small rings (wrap-around), the legacy 10-byte header,
 * no PROTOCOL_FEATURES, and frame sizes from 60 to 9000 bytes plus 65000. After each configuration the per-vring
 * counters of the control socket (what vhostctl --json prints) must agree with what was sent and received.
 * Last, frames larger than the guest's receive buffers: dropped and counted as too big, never truncated, and
 * the frames around them delivered.
 *
 * Every configuration runs on split rings and on packed rings (VIRTIO_F_RING_PACKED): single descriptors,
 * chains, indirect tables, mergeable rx buffers, event suppression through EVENT_IDX (RING_EVENT_FLAGS_DESC both
 * ways), plain ENABLE, and the driver asking for no calls at all (RING_EVENT_FLAGS_DISABLE: vhostd must then make
 * none, and the test polls), ring sizes that are not powers of two (1, 3, 100, 255, 1000) and 32768, each ring
 * wrapped many times. The packed layout must have been negotiated, and the counters must agree as for split.
 *
 * Exit 0 when all pass; the last line is "N passed, N failed".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"

#include "tests/fakefe/harness.h"

/* ---- the test ------------------------------------------------------------------------------------------- */

struct lo_config {
        const char *name;
        unsigned qp;
        unsigned ring;
        uint64_t features; /* wanted: default minus these bits */
        bool indirect;     /* post indirect chains (only when negotiated) */
        bool mrg_small;    /* with MRG_RXBUF: rx buffers of rx_size bytes */
        uint32_t rx_size;
        unsigned frames;       /* per queue pair */
        unsigned nseg;         /* descriptors per chain: 0 the defaults below, 1 single descriptors only */
        uint32_t buf_size;     /* per head (0: 65536, frames up to 9000 bytes and some of 65000); smaller: no big */
        bool no_interrupt;     /* the driver asks for no calls (and polls) */
        bool packed_only;      /* ring sizes a split ring cannot have, packed event flags */
        enum fe_layout layout; /* set by main(): each configuration runs on split rings, then on packed ones */
};

static int run_config(struct vhostd *v, const struct lo_config *c, uint64_t *ret_frames)
{
        struct fe_setup_opts o = {
                .queue_pairs = c->qp,
                .ring_size = c->ring,
                .features = (FE_FEATURES_DEFAULT & ~c->features) |
                            (c->layout == FE_PACKED ? BIT_ULL(VIRTIO_F_RING_PACKED) : 0),
                .buf_size = c->buf_size ? c->buf_size : 65536,
                .no_fill_rx = true,
        };
        uint32_t max_len = o.buf_size - 12 < 9000 ? o.buf_size - 12 : 9000;
        static struct flow flows[2];
        struct flow *fl[2];
        struct vstat s[4];
        static char js[16384];
        struct fe *fe = NULL;
        int r, ret = -1;
        bool mrg, ind;

        r = fe_connect(v->sock, 5000, &fe);
        CHECK(r == 0, "connect: %s", strerror(-r));
        r = fe_setup_ex(fe, &o);
        if (r < 0) {
                printf("  FAIL: fe_setup_ex: %s\n", strerror(-r));
                goto out;
        }
        if (!!(fe->acked_features & BIT_ULL(VIRTIO_F_RING_PACKED)) != (c->layout == FE_PACKED) ||
            fe_rx(fe, 0)->packed != (c->layout == FE_PACKED)) {
                printf("  FAIL: VIRTIO_F_RING_PACKED %snegotiated\n", c->layout == FE_PACKED ? "not " : "");
                goto out;
        }
        mrg = fe->acked_features & BIT_ULL(VIRTIO_NET_F_MRG_RXBUF);
        ind = c->indirect && (fe->acked_features & BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC));
        for (unsigned q = 0; q < c->qp; q++) {
                struct flow *f = &flows[q];

                memset(f, 0, offsetof(struct flow, fbuf));
                f->tx = fe_tx(fe, q);
                f->rx = fe_rx(fe, q);
                f->salt = (uint32_t)(mix32((uint32_t)(uintptr_t)c->name) + q * 0x1000193u);
                f->gen = ++g_gen;
                f->limit = c->frames;
                f->min_len = 60;
                f->max_len = max_len;
                f->big_len = 65000;
                f->big_every = o.buf_size == 65536 ? 97 : 0;
                f->tx_nseg_max = c->nseg ? c->nseg : ind ? 16 : 4;
                f->tx_indirect = ind;
                f->rx_custom = true;
                f->rx->rx_buf_size = 0;
                f->rx_size = mrg && c->mrg_small ? c->rx_size : o.buf_size;
                f->rx_nseg = c->nseg ? c->nseg : ind ? 4 : (mrg && c->mrg_small ? 1 : 2);
                f->rx_indirect = ind;
                f->tx->no_interrupt = f->rx->no_interrupt = c->no_interrupt;
                fe_ring_arm_call(f->tx, 1); /* before the first frame: no call from here on */
                fe_ring_arm_call(f->rx, 1);
                flow_post_rx(f);
                fe_ring_kick(f->rx);
                fl[q] = f;
        }
        if (flows_run(fl, c->qp, 5000) < 0)
                goto out;

        /* Counters: what the daemon saw must be what we sent and received, with nothing dropped. */
        r = vstats(v, s, 4, js, sizeof(js));
        if (r < 0) {
                printf("  FAIL: control socket: %s\n", strerror(-r));
                goto out;
        }
        if (json_port_u64(js, "vnet_hdr_len") != fe_rx(fe, 0)->hdr_len) {
                printf("  FAIL: vnet_hdr_len %llu, expected %u\n",
                       (unsigned long long)json_port_u64(js, "vnet_hdr_len"), fe_rx(fe, 0)->hdr_len);
                goto out;
        }
        for (unsigned q = 0; q < c->qp; q++) {
                const struct flow *f = &flows[q];
                const struct vstat *rx = &s[2 * q], *tx = &s[2 * q + 1];

                if (f->stale) {
                        printf("  FAIL: queue pair %u received %llu frames of a previous connection\n", q,
                               (unsigned long long)f->stale);
                        goto out;
                }
                if (!rx->found || !tx->found || tx->frames != f->send_seq || rx->frames != f->recv_seq ||
                    tx->bytes != f->tx_bytes || rx->bytes != f->rx_bytes || tx->drops || rx->drops || tx->broken ||
                    rx->broken || !tx->kicks || tx->kicks > f->tx->kicks || rx->kicks > f->rx->kicks ||
                    f->rx->calls > rx->calls || f->tx->calls > tx->calls ||
                    (c->no_interrupt && (rx->calls || tx->calls || f->rx->calls || f->tx->calls))) {
                        printf("  FAIL: queue pair %u counters disagree: sent %u frames %llu bytes (%llu kicks, %llu "
                               "calls seen), received %u frames %llu bytes (%llu kicks, %llu calls seen)\n"
                               "        vhostd tx: frames %llu bytes %llu drops %llu kicks %llu calls %llu broken %d\n"
                               "        vhostd rx: frames %llu bytes %llu drops %llu kicks %llu calls %llu broken %d\n",
                               q, f->send_seq, (unsigned long long)f->tx_bytes, (unsigned long long)f->tx->kicks,
                               (unsigned long long)f->tx->calls, f->recv_seq, (unsigned long long)f->rx_bytes,
                               (unsigned long long)f->rx->kicks, (unsigned long long)f->rx->calls,
                               (unsigned long long)tx->frames, (unsigned long long)tx->bytes,
                               (unsigned long long)tx->drops, (unsigned long long)tx->kicks,
                               (unsigned long long)tx->calls, tx->broken, (unsigned long long)rx->frames,
                               (unsigned long long)rx->bytes, (unsigned long long)rx->drops,
                               (unsigned long long)rx->kicks, (unsigned long long)rx->calls, rx->broken);
                        goto out;
                }
                *ret_frames += f->recv_seq;
                if (c->layout == FE_PACKED)
                        printf("  queue pair %u: tx ring of %u wrapped %llu times or more; %llu kicks, %llu "
                               "suppressed by the device; %llu calls\n",
                               q, c->ring, (unsigned long long)(tx->frames / c->ring), (unsigned long long)f->tx->kicks,
                               (unsigned long long)f->tx->kicks_suppressed,
                               (unsigned long long)(rx->calls + tx->calls));
        }
        ret = 0;
out:
        fe_free(fe);
        r = fe_wait_maps(v->pid, FE_MEM_NAME, 0, 5000);
        if (r < 0) {
                printf("  FAIL: vhostd still maps guest RAM 5 s after the disconnect\n");
                ret = -1;
        }
        return ret;
}

#define EV BIT_ULL(VIRTIO_RING_F_EVENT_IDX)
#define MRG BIT_ULL(VIRTIO_NET_F_MRG_RXBUF)
#define IND BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC)

static const struct lo_config configs[] = {
        /* name, qp, ring, features removed, indirect, small mergeable rx buffers, rx size, frames per qp */
        {"1qp event_idx mrg indirect", 1, 256, 0, true, true, 2048, 12800},
        {"1qp event_idx mrg", 1, 256, 0, false, true, 1536, 12800},
        {"1qp event_idx indirect", 1, 256, MRG, true, false, 0, 12800},
        {"1qp event_idx", 1, 128, MRG | IND, false, false, 0, 12800},
        {"1qp mrg indirect", 1, 256, EV, true, true, 4096, 12800},
        {"1qp mrg", 1, 64, EV | IND, false, true, 4096, 12800},
        {"1qp indirect", 1, 256, EV | MRG, true, false, 0, 12800},
        {"1qp plain", 1, 32, EV | MRG | IND, false, false, 0, 12800},
        {"2qp event_idx mrg indirect", 2, 256, 0, true, true, 2048, 6400},
        {"2qp event_idx mrg", 2, 128, 0, false, true, 1536, 6400},
        {"2qp event_idx indirect", 2, 256, MRG, true, false, 0, 6400},
        {"2qp event_idx", 2, 64, MRG | IND, false, false, 0, 6400},
        {"2qp mrg indirect", 2, 256, EV, true, true, 4096, 6400},
        {"2qp mrg", 2, 256, EV | IND, false, true, 2048, 6400},
        {"2qp indirect", 2, 32, EV | MRG, true, false, 0, 6400},
        {"2qp plain", 2, 256, EV | MRG | IND, false, false, 0, 6400},
        {"2qp mrg big rx buffers", 2, 256, 0, true, false, 0, 6400},
        {"1qp legacy 10-byte header", 1, 256, MRG | BIT_ULL(VIRTIO_F_VERSION_1), true, false, 0, 6400},
        {"2qp no PROTOCOL_FEATURES", 2, 256, BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES), false, true, 2048, 6400},
        /* Packed only: any ring size, and the driver's RING_EVENT_FLAGS_DISABLE. Then: descriptors per chain,
         * bytes per head, no calls, packed only. */
        {"1qp ring 1 single descriptors", 1, 1, IND, false, false, 0, 3000, 1, 2048, false, true},
        {"1qp ring 3 chains of 3", 1, 3, IND, false, false, 0, 6400, 3, 4096, false, true},
        {"1qp ring 100 single descriptors event_idx", 1, 100, IND, false, false, 0, 12800, 1, 0, false, true},
        {"2qp ring 255 event_idx mrg indirect", 2, 255, 0, true, true, 1536, 6400, 0, 0, false, true},
        {"1qp ring 1000 chained no event_idx", 1, 1000, EV | IND, false, true, 2048, 12800, 4, 0, false, true},
        {"1qp ring 100 no calls (DISABLE) event_idx", 1, 100, 0, true, true, 2048, 6400, 0, 0, true, true},
        {"1qp ring 100 no calls (DISABLE)", 1, 100, EV, false, false, 0, 6400, 0, 0, true, true},
        {"1qp ring 32768", 1, 32768, 0, false, true, 2048, 200000, 0, 2048, false, true},
};

/* Without MRG_RXBUF and with 1 KiB receive buffers, 1500-byte frames cannot be delivered whole. */
static int test_too_big(const struct vhostd *v, enum fe_layout layout)
{
        static const uint32_t sizes[] = {600, 1500, 600, 1500, 1500, 600};
        struct fe_setup_opts o = {.queue_pairs = 1,
                                  .features = (FE_FEATURES_DEFAULT & ~BIT_ULL(VIRTIO_NET_F_MRG_RXBUF)) |
                                              (layout == FE_PACKED ? BIT_ULL(VIRTIO_F_RING_PACKED) : 0),
                                  .rx_buf_size = 1024};
        uint8_t frame[2048], got[4096];
        struct fe_rx_info info;
        struct vstat st[2];
        static char js[8192];
        unsigned delivered = 0;
        uint32_t seq;
        struct fe *fe;
        int r;

        r = fe_connect(v->sock, 5000, &fe);
        CHECK(r == 0, "connect: %s", strerror(-r));
        r = fe_setup_ex(fe, &o);
        if (r < 0) {
                fe_free(fe);
                CHECK(r == 0, "set-up: %s", strerror(-r));
        }
        if (fe_rx(fe, 0)->packed != (layout == FE_PACKED)) {
                fe_free(fe);
                CHECK(false, "the ring layout asked for was not negotiated");
        }
        for (uint32_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                fe_frame_build(frame, sizes[i], i, NULL, NULL);
                r = fe_ring_post_tx(fe_tx(fe, 0), frame, sizes[i], NULL, NULL);
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = fe_ring_kick(fe_tx(fe, 0));
        while (r >= 0 && (r = fe_ring_recv_wait(fe_rx(fe, 0), got, sizeof(got), &info, 1000)) == 1) {
                size_t len = info.len;
                if (len != 600 || fe_frame_verify(got, len, &seq) < 0 || sizes[seq] != 600) {
                        fe_free(fe);
                        CHECK(false, "received a frame of %zu bytes (seq %u): truncated or corrupted", len, seq);
                }
                delivered++;
        }
        r = vstats(v, st, 2, js, sizeof(js));
        fe_free(fe);
        CHECK(r == 0, "control socket: %s", strerror(-r));
        CHECK(delivered == 3, "%u of the 3 frames that fit were delivered", delivered);
        CHECK(st[0].drops == 3 && strstr(js, "\"drop_too_big\":3"),
              "rx vring counts %llu drops, expected 3 too big: %.300s", (unsigned long long)st[0].drops, js);
        printf("  3 frames of 1500 bytes for 1 KiB buffers dropped and counted as too big; the 3 others intact\n");
        return 0;
}

int main(void)
{
        unsigned pass = 0, fail = 0;
        uint64_t total = 0;
        struct vhostd v1, v2;
        int64_t t0 = fe_now_ms();

        if (harness_begin("lo") < 0)
                return 1;
        if (vhostd_start(&v1, "q1", 1, NULL) < 0 || vhostd_start(&v2, "q2", 2, NULL) < 0) {
                printf("0 passed, 1 failed\n");
                return 1;
        }
        for (size_t k = 0; k < 2 * sizeof(configs) / sizeof(configs[0]); k++) {
                size_t i = k % (sizeof(configs) / sizeof(configs[0]));
                struct lo_config c = configs[i];
                /* One queue pair runs against a 1-queue port (no MQ offered) and against the 2-queue port. */
                struct vhostd *v = c.qp == 1 && (i & 1) ? &v1 : &v2;
                uint64_t before = total;
                int64_t t = fe_now_ms();
                long log_off = file_size(v->log);
                int r;

                c.layout = k < sizeof(configs) / sizeof(configs[0]) ? FE_SPLIT : FE_PACKED;
                if (c.packed_only && c.layout != FE_PACKED)
                        continue;
                r = run_config(v, &c, &total);
                if (r == 0 && !vhostd_alive(v)) {
                        printf("  FAIL: vhostd died\n");
                        r = -1;
                }
                printf("%s %s %s (%u-queue port): %llu frames in %lld ms\n", r == 0 ? "PASS" : "FAIL",
                       c.layout == FE_PACKED ? "packed" : "split", c.name, v == &v1 ? 1 : 2,
                       (unsigned long long)(total - before), (long long)(fe_now_ms() - t));
                if (r == 0) {
                        pass++;
                } else {
                        fail++;
                        if (file_size(v->log) > log_off)
                                print_log_tail(v->log, 20);
                        if (!vhostd_alive(v))
                                break;
                }
        }
        for (unsigned layout = FE_SPLIT; layout <= FE_PACKED && vhostd_alive(&v1); layout++) {
                int r = test_too_big(&v1, layout);
                printf("%s %s frames larger than the guest's buffers: dropped, counted, never truncated\n",
                       r == 0 ? "PASS" : "FAIL", layout == FE_PACKED ? "packed" : "split");
                r == 0 ? pass++ : fail++;
        }
        if (total < 200000 && !fail) {
                printf("FAIL: only %llu frames checked\n", (unsigned long long)total);
                fail++;
        }
        if (vhostd_stop(&v1) < 0)
                fail++;
        if (vhostd_stop(&v2) < 0)
                fail++;
        printf("%llu frames echoed and checked in %lld ms\n", (unsigned long long)total, (long long)(fe_now_ms() - t0));
        return harness_finish(pass, fail);
}
