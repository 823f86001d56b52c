/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for daemon/handover_state.c: a device written and read back field for field, with its fds
 * mapped to indices once each; and states a loader must refuse, each with the reason it gives.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/handover_state.h"

static struct hs_dev in, out;

/* 2 queue pairs, 2 regions, 4 vrings (the last packed), a dirty log: fds are made-up numbers 100+. */
static void sample(struct hs_dev *d)
{
        memset(d, 0, sizeof(*d));
        d->features = 0x150008000ull;
        d->protocol_features = 0x8023;
        d->status = 0xf;
        d->mtu = 1500;
        d->hdr_len = 12;
        d->nqueues = 2;
        d->flags = HS_DEV_FEATURES_SET;
        d->nregions = 2;
        d->regions[0] = (struct hs_region){0, 0xa0000, 0x7f0000000000ull, 0, 1, 100};
        d->regions[1] = (struct hs_region){0x100000, 0x3ff00000, 0x7f0000100000ull, 0x100000, 2, 101};
        d->nvrings = 4;
        for (unsigned i = 0; i < 4; i++) { /* field by field: the struct (padding too) is compared whole */
                struct hs_vring *v = &d->vrings[i];

                memset(v, 0, sizeof(*v));
                v->index = i;
                v->num = 256;
                v->flags = HS_VR_ADDR_SET | HS_VR_STARTED | HS_VR_ENABLED;
                v->base = 17 * i;
                v->desc_uva = 0x7f0000200000ull + i * 0x10000;
                v->avail_uva = 0x7f0000201000ull + i * 0x10000;
                v->used_uva = 0x7f0000202000ull + i * 0x10000;
                v->log_gpa = 0x202000ull + i * 0x10000;
                v->kick_fd = 110 + (int)i;
                v->call_fd = 120 + (int)i;
                v->err_fd = i == 0 ? 130 : -1;
        }
        for (unsigned i = 0; i < 4; i++)
                for (unsigned k = 0; k < HS_VRING_COUNTERS; k++)
                        d->vrings[i].counters[k] = (i + 1) * 1000000000000ull + k; /* above 32 bits */
        d->vrings[3].flags |= HS_VR_PACKED;
        d->vrings[3].num = 300;                                 /* packed rings need not be a power of two */
        d->vrings[3].base = 1u << 31 | 5u << 16 | 1u << 15 | 7; /* used 5 wrap 1, avail 7 wrap 1 */
        d->log_set = true;
        d->log_size = 131200;
        d->log_offset = 0;
        d->log_fd = 140;
        d->log_call_fd = 141;
}

/* Finishes w, reads it back into out; returns hs_load's result, err its reason. */
static int roundtrip(struct state_writer *w, char *err, size_t errlen)
{
        struct state_reader r;

        assert_int_equal(state_finish(w), 0);
        if (state_reader_init(&r, w->buf, w->len, w->nfds, err, errlen) < 0)
                return -EPROTO;
        return hs_load(&r, &out, NULL, err, errlen);
}

/* The sample, saved into a new writer. */
static void save_sample(struct state_writer *w)
{
        sample(&in);
        state_writer_init(w);
        assert_int_equal(hs_save(w, &in), 0);
}

static void test_roundtrip(void **state)
{
        struct state_writer w;
        char err[160] = "";
        (void)state;

        save_sample(&w);
        assert_int_equal(roundtrip(&w, err, sizeof(err)), 0);
        /* Every fd became an index; the writer's table maps each index back to the fd saved. */
        assert_int_equal(w.fds[out.regions[0].fd], 100);
        assert_int_equal(w.fds[out.regions[1].fd], 101);
        for (unsigned i = 0; i < 4; i++) {
                assert_int_equal(w.fds[out.vrings[i].kick_fd], 110 + (int)i);
                assert_int_equal(w.fds[out.vrings[i].call_fd], 120 + (int)i);
                if (i)
                        assert_int_equal(out.vrings[i].err_fd, -1);
        }
        assert_int_equal(w.fds[out.vrings[0].err_fd], 130);
        assert_int_equal(w.fds[out.log_fd], 140);
        assert_int_equal(w.fds[out.log_call_fd], 141);
        /* The rest, field for field: put the fds back and compare whole. */
        for (unsigned i = 0; i < out.nregions; i++)
                out.regions[i].fd = w.fds[out.regions[i].fd];
        for (unsigned i = 0; i < out.nvrings; i++) {
                struct hs_vring *v = &out.vrings[i];
                v->kick_fd = w.fds[v->kick_fd];
                v->call_fd = w.fds[v->call_fd];
                v->err_fd = v->err_fd < 0 ? -1 : w.fds[v->err_fd];
        }
        out.log_fd = w.fds[out.log_fd];
        out.log_call_fd = w.fds[out.log_call_fd];
        assert_memory_equal(&in, &out, sizeof(in));
        state_writer_free(&w);
}

/* A state made by f (from the sample), which hs_load must refuse saying why. */
static void refused(void (*f)(struct state_writer *w), const char *why)
{
        struct state_writer w;
        char err[200] = "";

        state_writer_init(&w);
        f(&w);
        assert_int_equal(roundtrip(&w, err, sizeof(err)), -EBADMSG);
        if (!strstr(err, why)) {
                fprintf(stderr, "expected \"%s\" in \"%s\"\n", why, err);
                fail();
        }
        state_writer_free(&w);
}

static void vring_out_of_range(struct state_writer *w)
{
        sample(&in);
        in.vrings[3].index = 4; /* 2 queue pairs: vrings 0..3 */
        hs_save(w, &in);
}

static void vring_twice(struct state_writer *w)
{
        sample(&in);
        in.vrings[2].index = 1;
        hs_save(w, &in);
}

static void split_size(struct state_writer *w)
{
        sample(&in);
        in.vrings[1].num = 300;
        hs_save(w, &in);
}

static void packed_base(struct state_writer *w)
{
        sample(&in);
        in.vrings[3].base = 300; /* avail index 300 in a ring of 300 */
        hs_save(w, &in);
}

static void region_wraps(struct state_writer *w)
{
        sample(&in);
        in.regions[1].gpa = UINT64_MAX - 10;
        hs_save(w, &in);
}

/* Saves in, without the device-end record (a bare 8-byte header): records added after it still belong to the device. */
static void save_unended(struct state_writer *w)
{
        hs_save(w, &in);
        w->len -= 8;
}

static void region_without_fd(struct state_writer *w)
{
        sample(&in);
        in.nvrings = 0;
        in.log_set = false;
        in.log_call_fd = -1;
        save_unended(w);
        /* A third region (added once) whose fd record never comes. */
        uint64_t r[5] = {0x40000000, 0x1000, 0x7f1000000000ull, 0, 1};
        state_put(w, HS_REC_REGION, STATE_REC_REQUIRED, r, sizeof(r));
}

static void fd_index_twice(struct state_writer *w)
{
        sample(&in);
        in.log_call_fd = -1;
        save_unended(w);
        uint32_t index = 0; /* region 0's fd, again */
        state_put(w, HS_REC_LOG_CALL_FD, STATE_REC_REQUIRED, &index, sizeof(index));
}

static void unknown_required(struct state_writer *w)
{
        sample(&in);
        save_unended(w);
        state_put(w, 999, STATE_REC_REQUIRED, "x", 1);
}

static void short_device(struct state_writer *w)
{
        state_put(w, HS_REC_DEV, STATE_REC_REQUIRED, "short", 5);
}

static void no_device(struct state_writer *w)
{
        (void)w;
}

static void bad_header_len(struct state_writer *w)
{
        sample(&in);
        in.hdr_len = 64;
        hs_save(w, &in);
}

static void test_refusals(void **state)
{
        (void)state;
        refused(vring_out_of_range, "vring 4 of a device with 2 queue pairs");
        refused(vring_twice, "vring 1 twice");
        refused(split_size, "vring 1: size 300");
        refused(packed_base, "packed ring base 0x12c outside a ring of 300");
        refused(region_wraps, "memory region 1: guest-physical range wraps around");
        refused(region_without_fd, "ends before the fd of its last region");
        refused(fd_index_twice, "fd 0 is already used by another record");
        refused(unknown_required, "unknown and required: made by a newer vhostd");
        refused(short_device, "device of 5 bytes, 40 expected");
        refused(no_device, "no device record");
        refused(bad_header_len, "virtio-net header of 64 bytes");
}

static void test_newer_minor(void **state)
{
        struct state_writer w;
        char err[160] = "";
        (void)state;

        /* An optional record of a newer minor is skipped. */
        save_sample(&w);
        state_put(&w, 998, 0, "later", 5);
        assert_int_equal(roundtrip(&w, err, sizeof(err)), 0);
        assert_int_equal(out.nvrings, 4);
        state_writer_free(&w);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_newer_minor),
        };

        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
