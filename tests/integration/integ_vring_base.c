// SPDX-License-Identifier: MIT
/*
 * integ_vring_base: rings stopped and started again under traffic, as QEMU does around a guest reset, a
 * migration or a "set_link off": GET_VRING_BASE on every ring (the back-end stops it and says where it is), then
 * SET_VRING_NUM, SET_VRING_BASE with that base, SET_VRING_ADDR, KICK, CALL and SET_VRING_ENABLE. A real vhostd
 * with the loopback port, one queue pair, checksummed frames with sequence numbers (struct flow): after each
 * restart traffic must resume with no frame lost, duplicated or reordered.
 *
 * Split rings: the base is the avail index. Packed rings (VIRTIO_F_RING_PACKED): bits 0-14 the next avail slot,
 * bit 15 its wrap counter, bits 16-30 the next used slot, bit 31 its wrap counter; the test checks the base
 * against the ring (the used half is where the device's used descriptors end, the avail half between that and
 * what the driver made available), on a ring of 64 and one of 50 slots (not a power of two), with chains of 1 to
 * 3 descriptors, 30 restarts each at whatever point the traffic is. Last, a packed ring stopped exactly at slot 0
 * with wrap 1 after two laps of 2-descriptor chains: a position GET_VRING_BASE gives as 0x80008000.
 *
 * Exit 0 when all pass; the last line is "N passed, N failed".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"

#include "tests/fakefe/harness.h"

#define RESTARTS 30
#define WRAP_BIT 0x8000u

/* Slots from position a to position b (slot | wrap << 15) going forward, or -1 when b is not within a lap. */
static int slots_between(const struct fe_ring *r, unsigned a, unsigned b)
{
        int d = (int)(b & ~WRAP_BIT) - (int)(a & ~WRAP_BIT);

        if ((a & WRAP_BIT) != (b & WRAP_BIT))
                d += r->num;
        return d >= 0 && d <= r->num ? d : -1;
}

/* Where the device's used descriptors end: the slot after the last one published (packed). */
static unsigned used_end(struct fe_ring *r)
{
        struct fe_ring copy = *r;
        struct vring_used_elem e;

        while (fe_ring_used_raw(&copy, &e) == 1)
                ;
        return copy.last_used | (copy.used_wrap ? WRAP_BIT : 0);
}

/* A stopped ring's base must say where the ring is. */
static int check_base(struct fe_ring *r, uint32_t base)
{
        unsigned used = base >> 16, avail = base & 0xffff, ours = r->avail_idx | (r->avail_wrap ? WRAP_BIT : 0);
        int a, b, c;

        if (!r->packed) {
                CHECK(base <= 0xffff && (uint16_t)(r->avail_idx - base) <= r->num,
                      "vring %u: base %u, the driver made %u available", r->index, base, r->avail_idx);
                return 0;
        }
        CHECK(used == used_end(r), "vring %u: base 0x%08x: used half 0x%04x, but the used descriptors end at 0x%04x",
              r->index, base, used, used_end(r));
        a = slots_between(r, used, avail);
        b = slots_between(r, avail, ours);
        c = slots_between(r, used, ours);
        CHECK(a >= 0 && b >= 0 && a + b == c,
              "vring %u: base 0x%08x: avail half 0x%04x is not between the used end 0x%04x and what the driver made "
              "available (0x%04x)",
              r->index, base, avail, used, ours);
        return 0;
}

/* QEMU's vhost_dev_stop then vhost_dev_start, on both rings of queue pair 0. */
static int restart(struct fe *fe, uint32_t *ret_bases)
{
        uint32_t base[2];
        int r;

        for (unsigned i = 0; i < 2; i++) {
                unsigned b;

                r = fe_get_vring_base(fe, i, &b);
                CHECK(r == 0, "GET_VRING_BASE %u: %s", i, strerror(-r));
                base[i] = b;
                if (check_base(&fe->rings[i], base[i]) < 0)
                        return -1;
        }
        for (unsigned i = 0; i < 2; i++) {
                r = fe_ring_configure_at(fe, &fe->rings[i], base[i]);
                CHECK(r == 0, "starting vring %u at 0x%x: %s", i, base[i], strerror(-r));
                if (fe->acked_features & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES)) {
                        r = fe_set_vring_enable(fe, i, true);
                        CHECK(r == 0, "SET_VRING_ENABLE %u: %s", i, strerror(-r));
                }
        }
        for (unsigned i = 0; i < 2; i++)
                fe_ring_kick(&fe->rings[i]);
        if (ret_bases)
                memcpy(ret_bases, base, sizeof(base));
        return 0;
}

/* Pumps the flow a little: frames are posted and in flight, some came back, some did not. */
static int pump_some(struct flow *f, unsigned rounds)
{
        for (unsigned i = 0; i < rounds; i++) {
                int r = flow_pump(f);

                CHECK(r >= 0, "%s", f->err);
                if (r == 0)
                        flows_wait(&f, 1, 1);
        }
        return 0;
}

static int connect_flow(const struct vhostd *v, enum fe_layout layout, unsigned ring, struct flow *f,
                        struct fe **ret_fe)
{
        struct fe_setup_opts o = {
                .ring_size = ring,
                .features = FE_FEATURES_DEFAULT | (layout == FE_PACKED ? BIT_ULL(VIRTIO_F_RING_PACKED) : 0),
        };
        struct fe *fe;
        int r;

        r = fe_connect(v->sock, 5000, &fe);
        CHECK(r == 0, "connect: %s", strerror(-r));
        r = fe_setup_ex(fe, &o);
        if (r == 0 && fe_tx(fe, 0)->packed != (layout == FE_PACKED))
                r = -EPROTO;
        if (r < 0) {
                fe_free(fe);
                CHECK(r == 0, "set-up (%s rings of %u): %s", layout == FE_PACKED ? "packed" : "split", ring,
                      strerror(-r));
        }
        flow_init(f, fe, 0, 0x5eed + ring, 0);
        f->tx_nseg_max = 3;
        *ret_fe = fe;
        return 0;
}

/* Hangs up; the daemon must let guest RAM go. Returns @ret, or -1 when it did not. */
static int disconnect(const struct vhostd *v, struct fe *fe, int ret)
{
        fe_free(fe);
        if (fe_wait_maps(v->pid, FE_MEM_NAME, 0, 5000) < 0) {
                printf("  FAIL: vhostd still maps guest RAM 5 s after the disconnect\n");
                return -1;
        }
        return ret;
}

/* Restarts at whatever point the traffic is, RESTARTS times, then lets every frame come back. */
static int test_restarts(const struct vhostd *v, enum fe_layout layout, unsigned ring)
{
        static struct flow f;
        struct flow *fl = &f;
        struct fe *fe;
        int ret = -1;

        if (connect_flow(v, layout, ring, &f, &fe) < 0)
                return -1;
        for (unsigned i = 0; i < RESTARTS; i++) {
                f.limit += 97 + i * 13;
                if (pump_some(&f, 1 + i % 4) < 0 || restart(fe, NULL) < 0)
                        goto out;
        }
        if (flows_run(&fl, 1, 5000) < 0)
                goto out;
        printf("  %u frames, %d restarts, none lost or duplicated; tx ring at 0x%08x\n", f.recv_seq, RESTARTS,
               fe_ring_base(f.tx));
        ret = 0;
out:
        return disconnect(v, fe, ret);
}

/*
 * A packed tx ring stopped at slot 0 with wrap 1 after a whole lap (wrap 0) of 2-descriptor chains: the second
 * slot of each chain keeps the driver's flags (AVAIL 0, USED 1), only the first gets the device's used ones.
 */
static int test_packed_base_zero(const struct vhostd *v)
{
        static struct flow f;
        struct flow *fl = &f;
        uint32_t base[2];
        unsigned flips = 0;
        struct fe *fe;
        int ret = -1, r;

        if (connect_flow(v, FE_PACKED, 64, &f, &fe) < 0)
                return -1;
        /* Some traffic first, so the ring is anywhere. */
        f.limit = 1000;
        if (flows_run(&fl, 1, 5000) < 0)
                goto out;
        while (!(f.tx->avail_idx == 0 && f.tx->avail_wrap && flips >= 2)) {
                bool wrap = f.tx->avail_wrap;

                r = flow_post_one(&f, f.tx->num - f.tx->avail_idx >= 2 ? 2 : 1, false);
                if (r == -ENOSPC) {
                        fe_ring_notify(f.tx);
                        f.limit = f.send_seq;
                        if (flows_run(&fl, 1, 5000) < 0)
                                goto out;
                        continue;
                }
                if (r < 0) {
                        printf("  FAIL: %s\n", f.err);
                        goto out;
                }
                flips += wrap != f.tx->avail_wrap;
        }
        fe_ring_notify(f.tx);
        f.limit = f.send_seq;
        if (flows_run(&fl, 1, 5000) < 0 || restart(fe, base) < 0)
                goto out;
        printf("  stopped with the tx ring at base 0x%08x\n", base[1]);
        if (base[1] != 0x80008000u) {
                printf("  FAIL: GET_VRING_BASE gave 0x%08x for a drained ring at slot 0, wrap 1\n", base[1]);
                goto out;
        }
        f.limit = f.send_seq + 2000;
        if (flows_run(&fl, 1, 5000) < 0) {
                printf("  (the ring was restarted at base 0x80008000; see the daemon log)\n");
                goto out;
        }
        printf("  %u frames, none lost or duplicated after the restart at 0x80008000\n", f.recv_seq);
        ret = 0;
out:
        return disconnect(v, fe, ret);
}

int main(void)
{
        static const struct {
                enum fe_layout layout;
                unsigned ring;
        } cases[] = {{FE_SPLIT, 64}, {FE_PACKED, 64}, {FE_PACKED, 50}};
        unsigned pass = 0, fail = 0;
        struct vhostd v;
        int r;

        if (harness_begin("vb") < 0)
                return 1;
        if (vhostd_start(&v, "vb", 1, NULL) < 0) {
                printf("0 passed, 1 failed\n");
                return 1;
        }
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) && vhostd_alive(&v); i++) {
                long off = file_size(v.log);

                r = test_restarts(&v, cases[i].layout, cases[i].ring);
                printf("%s %s ring of %u: %d stops and starts through GET/SET_VRING_BASE under traffic\n",
                       r == 0 ? "PASS" : "FAIL", cases[i].layout == FE_PACKED ? "packed" : "split", cases[i].ring,
                       RESTARTS);
                r == 0 ? pass++ : fail++;
                if (r < 0 && file_size(v.log) > off)
                        print_log_tail(v.log, 12);
        }
        if (vhostd_alive(&v)) {
                long off = file_size(v.log);

                r = test_packed_base_zero(&v);
                printf("%s packed ring stopped at slot 0, wrap 1 (base 0x80008000) after chains of 2 descriptors\n",
                       r == 0 ? "PASS" : "FAIL");
                r == 0 ? pass++ : fail++;
                if (r < 0 && file_size(v.log) > off)
                        print_log_tail(v.log, 12);
        }
        if (vhostd_stop(&v) < 0)
                fail++;
        return harness_finish(pass, fail);
}
