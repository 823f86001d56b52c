/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for daemon/vu_msg.c (and the connection object of vu_dev.c): messages are built here and fed
 * straight to vu_msg_dispatch(); replies are read from the other end of the socketpair the device talks on.
 * The port is a loopback port with 2 queue pairs (4 vrings); vu_dev_new() starts its two real workers.
 * Guest RAM comes from tests/fakefe (memfd regions with made-up uvas). Every test checks that the fds it
 * attached were consumed or closed, and that no fd leaks once the device is freed.
 * VHOSTD_TEST_LOG=1 shows the daemon's log lines (hidden by default: most cases here are errors).
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/port.h"
#include "daemon/vu.h"
#include "tests/fakefe/fakefe.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NQ 2
#define NVRINGS (2 * NQ)
#define RAM_GPA 0x0ull
#define RAM_SIZE (4u << 20)

struct fx {
        struct port_cfg cfg;
        struct port port;
        struct vu_dev *dev;
        int peer;
        int fds_before;
        struct fe_mem mem;
        bool ram;
};

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        assert_non_null(d);
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void closed_cb(void *owner)
{
        fail_msg("the device reported its end; the tests drive it directly and expect no such call");
}

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        int sv[2];

        assert_non_null(f);
        if (!getenv("VHOSTD_TEST_LOG"))
                log_set_level(0);
        f->fds_before = count_fds();
        config_port_defaults(&f->cfg);
        f->cfg.queues = NQ;
        f->port.cfg = &f->cfg;
        snprintf(f->port.name, sizeof(f->port.name), "port test");
        f->port.listen_fd = -1;
        f->port.loop = ev_loop_new(EVFLAG_AUTO);
        assert_non_null(f->port.loop);
        assert_int_equal(backend_loopback_ops.open(&f->cfg.backend, NQ, &f->port.be), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct vu_dev_params params = {.name = f->port.name,
                                       .cfg = &f->cfg,
                                       .be = f->port.be,
                                       .loop = f->port.loop,
                                       .port_faults = &f->port.faults,
                                       .port_recoveries = &f->port.recoveries,
                                       .closed = closed_cb,
                                       .owner = f};
        assert_int_equal(vu_dev_new(&params, sv[0], &f->dev), 0);
        f->port.dev = f->dev;
        f->peer = sv[1];
        fe_mem_init(&f->mem);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        vu_dev_free(f->dev);
        close(f->peer);
        f->port.be->ops->close(f->port.be);
        ev_loop_destroy(f->port.loop);
        fe_mem_done(&f->mem);
        assert_int_equal(count_fds(), f->fds_before);
        free(f);
        return 0;
}

/* ---- messages ---- */

static void msg_init(struct vu_msg *m, uint32_t req, uint32_t size)
{
        memset(m, 0, sizeof(*m));
        m->hdr.request = req;
        m->hdr.flags = VU_VERSION;
        m->hdr.size = size;
        for (unsigned i = 0; i < VU_MAX_FDS; i++)
                m->fds[i] = -1;
}

static void msg_u64(struct vu_msg *m, uint32_t req, uint64_t v)
{
        msg_init(m, req, sizeof(uint64_t));
        m->payload.u64 = v;
}

static void msg_state(struct vu_msg *m, uint32_t req, uint32_t index, uint32_t num)
{
        msg_init(m, req, sizeof(struct vu_vring_state));
        m->payload.state.index = index;
        m->payload.state.num = num;
}

static int new_eventfd(void)
{
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(fd >= 0);
        return fd;
}

/* Attaches n fresh fds to m, remembering them in fds[] (for the closed check). */
static void attach(struct vu_msg *m, unsigned n, int *fds)
{
        for (unsigned i = 0; i < n; i++) {
                fds[i] = new_eventfd();
                m->fds[m->nfds++] = fds[i];
        }
}

static bool fd_is_closed(int fd)
{
        errno = 0;
        return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

static void expect_closed(const int *fds, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                if (!fd_is_closed(fds[i]))
                        print_error("fd %d (#%u) is still open\n", fds[i], i);
                assert_true(fd_is_closed(fds[i]));
        }
}

static int dispatch(struct fx *f, struct vu_msg *m)
{
        int r = vu_msg_dispatch(f->dev, m);

        /* Whatever happened, the dispatcher owns the fds afterwards. */
        assert_int_equal(m->nfds, 0);
        return r;
}

/* Reads one reply; returns its payload size. */
static uint32_t read_reply(struct fx *f, uint32_t req, void *payload, size_t cap)
{
        struct pollfd p = {.fd = f->peer, .events = POLLIN};
        struct vu_hdr h;
        uint8_t buf[VU_PAYLOAD_MAX];

        assert_int_equal(poll(&p, 1, 2000), 1);
        assert_int_equal(recv(f->peer, &h, sizeof(h), MSG_WAITALL), sizeof(h));
        assert_int_equal(h.request, req);
        assert_int_equal(h.flags, VU_VERSION | VU_FLAG_REPLY);
        assert_true(h.size <= sizeof(buf));
        if (h.size)
                assert_int_equal(recv(f->peer, buf, h.size, MSG_WAITALL), (ssize_t)h.size);
        assert_true(h.size <= cap);
        if (h.size) /* payload may be NULL for an empty reply */
                memcpy(payload, buf, h.size);
        return h.size;
}

static uint64_t read_u64(struct fx *f, uint32_t req)
{
        uint64_t v = 0;

        assert_int_equal(read_reply(f, req, &v, sizeof(v)), sizeof(v));
        return v;
}

static void expect_no_reply(struct fx *f)
{
        struct pollfd p = {.fd = f->peer, .events = POLLIN};

        assert_int_equal(poll(&p, 1, 0), 0);
}

/* Sends a request that must succeed without a reply. */
static void ok(struct fx *f, struct vu_msg *m)
{
        int r = dispatch(f, m);

        if (r != 0)
                print_error("%s failed: %d (%s)\n", vu_request_name(m->hdr.request), r, f->dev->err);
        assert_int_equal(r, 0);
        expect_no_reply(f);
}

/*
 * Sends a request whose handler must refuse it. With REPLY_ACK negotiated and NEED_REPLY set, the front-end is
 * told through a non-zero ack and the connection stays; otherwise it cannot be told, so the dispatcher returns
 * -EPROTO (the connection is closed).
 */
static void refused(struct fx *f, struct vu_msg *m)
{
        bool told = vu_has_protocol_feature(f->dev, VU_PROTOCOL_F_REPLY_ACK) && (m->hdr.flags & VU_FLAG_NEED_REPLY);
        uint32_t req = m->hdr.request;
        int r = dispatch(f, m);

        if (!f->dev->err[0])
                print_error("%s: %d, no reason given\n", vu_request_name(req), r);
        assert_true(f->dev->err[0] != 0);
        if (told) {
                assert_int_equal(r, 0);
                assert_int_not_equal(read_u64(f, req), 0);
        } else {
                assert_int_equal(r, -EPROTO);
                expect_no_reply(f);
        }
}

static uint64_t get_u64(struct fx *f, uint32_t req)
{
        struct vu_msg m;

        msg_init(&m, req, 0);
        assert_int_equal(dispatch(f, &m), 0);
        return read_u64(f, req);
}

static void set_u64(struct fx *f, uint32_t req, uint64_t v)
{
        struct vu_msg m;

        msg_u64(&m, req, v);
        ok(f, &m);
}

static void set_state(struct fx *f, uint32_t req, uint32_t index, uint32_t num)
{
        struct vu_msg m;

        msg_state(&m, req, index, num);
        ok(f, &m);
}

/* ---- guest RAM ---- */

static void ram(struct fx *f)
{
        if (!f->ram) {
                assert_int_equal(fe_mem_add_region(&f->mem, RAM_GPA, RAM_SIZE, 0), 0);
                f->ram = true;
        }
}

/* A SET_MEM_TABLE of the fakefe regions idx[0..n), each with a dup of its fd. */
static void msg_mem_table(struct fx *f, struct vu_msg *m, const unsigned *idx, unsigned n)
{
        msg_init(m, VU_SET_MEM_TABLE, 8 + n * (uint32_t)sizeof(struct vu_mem_region));
        m->payload.mem.nregions = n;
        for (unsigned i = 0; i < n; i++) {
                fe_mem_region_msg(&f->mem, idx[i], &m->payload.mem.regions[i]);
                m->fds[m->nfds++] = fcntl(f->mem.regions[idx[i]].fd, F_DUPFD_CLOEXEC, 0);
        }
}

static void set_mem_table(struct fx *f)
{
        struct vu_msg m;
        unsigned idx = 0;

        ram(f);
        msg_mem_table(f, &m, &idx, 1);
        ok(f, &m);
        assert_non_null(f->dev->mem);
}

static void msg_vring_addr(struct fx *f, struct vu_msg *m, unsigned index, uint64_t desc, uint64_t avail, uint64_t used)
{
        msg_init(m, VU_SET_VRING_ADDR, sizeof(struct vu_vring_addr));
        m->payload.addr.index = index;
        m->payload.addr.desc_user_addr = desc;
        m->payload.addr.avail_user_addr = avail;
        m->payload.addr.used_user_addr = used;
}

/* Ring i of 256 entries at gpa 0x10000 * (i + 1). */
#define RING_NUM 256
static uint64_t ring_uva(struct fx *f, unsigned i, unsigned part)
{
        static const uint64_t off[] = {0, 0x1000, 0x2000};
        return fe_mem_uva(&f->mem, 0x10000ull * (i + 1) + off[part]);
}

/* ---- payload sizes ---- */

struct size_case {
        uint32_t req;
        uint32_t size;
        bool var; /* size is a minimum */
};

static const struct size_case size_cases[] = {
        {VU_GET_FEATURES, 0, false},
        {VU_SET_FEATURES, 8, false},
        {VU_SET_OWNER, 0, false},
        {VU_RESET_OWNER, 0, false},
        {VU_SET_MEM_TABLE, 8, true},
        {VU_SET_VRING_NUM, 8, false},
        {VU_SET_VRING_ADDR, sizeof(struct vu_vring_addr), false},
        {VU_SET_VRING_BASE, 8, false},
        {VU_GET_VRING_BASE, 8, false},
        {VU_SET_VRING_KICK, 8, false},
        {VU_SET_VRING_CALL, 8, false},
        {VU_SET_VRING_ERR, 8, false},
        {VU_GET_PROTOCOL_FEATURES, 0, false},
        {VU_SET_PROTOCOL_FEATURES, 8, false},
        {VU_GET_QUEUE_NUM, 0, false},
        {VU_SET_VRING_ENABLE, 8, false},
        {VU_SEND_RARP, 8, false},
        {VU_NET_SET_MTU, 8, false},
        {VU_GET_CONFIG, VU_CONFIG_HDR_SIZE, true},
        {VU_SET_CONFIG, VU_CONFIG_HDR_SIZE, true},
        {VU_RESET_DEVICE, 0, false},
        {VU_GET_MAX_MEM_SLOTS, 0, false},
        {VU_ADD_MEM_REG, sizeof(struct vu_mem_single), false},
        {VU_REM_MEM_REG, sizeof(struct vu_mem_single), false},
        {VU_SET_STATUS, 8, false},
        {VU_GET_STATUS, 0, false},
};

static void test_wrong_size(void **state)
{
        struct fx *f = *state;

        /* REPLY_ACK on, so a wrongly accepted message would also show up as a reply. */
        set_u64(f, VU_SET_PROTOCOL_FEATURES, BIT_ULL(VU_PROTOCOL_F_REPLY_ACK));
        for (size_t i = 0; i < ARRAY_SIZE(size_cases); i++) {
                const struct size_case *c = &size_cases[i];
                uint32_t sizes[] = {c->size + 1, c->size + 8, c->size - 1, c->size ? 0 : 8, 1000, UINT32_MAX};

                for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
                        struct vu_msg m;
                        int r;

                        if (c->var && sizes[k] > c->size)
                                continue; /* larger is allowed; checked by content */
                        if (sizes[k] == c->size)
                                continue;
                        msg_init(&m, c->req, sizes[k]);
                        m.hdr.flags |= VU_FLAG_NEED_REPLY;
                        r = dispatch(f, &m);
                        if (r != -EPROTO)
                                print_error("%s with %u bytes: %d\n", vu_request_name(c->req), sizes[k], r);
                        assert_int_equal(r, -EPROTO);
                        assert_non_null(strstr(f->dev->err, "payload"));
                        expect_no_reply(f);
                }
        }
}

/* ---- fds ---- */

struct fd_case {
        const char *what;
        uint32_t req;
        uint32_t size;
        uint64_t u64; /* first 8 bytes of the payload */
        unsigned nfds;
};

static const struct fd_case fd_cases[] = {
        {"GET_FEATURES + 1", VU_GET_FEATURES, 0, 0, 1},
        {"SET_FEATURES + 1", VU_SET_FEATURES, 8, 0, 1},
        {"SET_OWNER + 8", VU_SET_OWNER, 0, 0, 8},
        {"SET_VRING_NUM + 1", VU_SET_VRING_NUM, 8, 0x100ull << 32, 1},
        {"SET_VRING_ENABLE + 2", VU_SET_VRING_ENABLE, 8, 1ull << 32, 2},
        {"SET_VRING_KICK - 1", VU_SET_VRING_KICK, 8, 1, 0},
        {"SET_VRING_KICK + 1", VU_SET_VRING_KICK, 8, 1, 2},
        {"SET_VRING_CALL - 1", VU_SET_VRING_CALL, 8, 0, 0},
        {"SET_VRING_CALL NOFD + 1", VU_SET_VRING_CALL, 8, VU_VRING_NOFD_MASK, 1},
        {"SET_VRING_ERR NOFD + 3", VU_SET_VRING_ERR, 8, 3 | VU_VRING_NOFD_MASK, 3},
        {"SET_MEM_TABLE 2 regions, 1 fd", VU_SET_MEM_TABLE, 8 + 2 * 32, 2, 1},
        {"SET_MEM_TABLE 2 regions, 3 fds", VU_SET_MEM_TABLE, 8 + 2 * 32, 2, 3},
        {"SET_MEM_TABLE 1 region, 0 fds", VU_SET_MEM_TABLE, 8 + 32, 1, 0},
        {"ADD_MEM_REG, 0 fds", VU_ADD_MEM_REG, 40, 0, 0},
        {"ADD_MEM_REG, 2 fds", VU_ADD_MEM_REG, 40, 0, 2},
        {"GET_CONFIG + 1", VU_GET_CONFIG, 12, 0, 1},
        {"SET_STATUS + 1", VU_SET_STATUS, 8, 0, 1},
};

static void test_wrong_fds(void **state)
{
        struct fx *f = *state;

        for (size_t i = 0; i < ARRAY_SIZE(fd_cases); i++) {
                const struct fd_case *c = &fd_cases[i];
                struct vu_msg m;
                int fds[VU_MAX_FDS];
                int r;

                msg_init(&m, c->req, c->size);
                m.payload.u64 = c->u64;
                attach(&m, c->nfds, fds);
                r = dispatch(f, &m);
                if (r != -EPROTO)
                        print_error("case '%s': %d (%s)\n", c->what, r, f->dev->err);
                assert_int_equal(r, -EPROTO);
                assert_non_null(strstr(f->dev->err, "file descriptors"));
                expect_closed(fds, c->nfds);
                expect_no_reply(f);
        }
        assert_null(f->dev->mem);
}

/* REM_MEM_REG accepts (and closes) whatever fds come with it. */
static void test_optional_fds(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;
        int fds[2];

        msg_init(&m, VU_REM_MEM_REG, sizeof(struct vu_mem_single));
        attach(&m, 2, fds);
        refused(f, &m); /* no memory table yet */
        expect_closed(fds, 2);
}

/* ---- vring index ---- */

struct idx_case {
        uint32_t req;
        uint32_t size;
        uint64_t u64;
        unsigned nfds;
        const char *err;
};

static const struct idx_case idx_cases[] = {
        {VU_SET_VRING_NUM, 8, 4 | (256ull << 32), 0, "vring index 4"},
        {VU_SET_VRING_NUM, 8, 255 | (256ull << 32), 0, "vring index 255"},
        {VU_SET_VRING_NUM, 8, 0xffffffff | (256ull << 32), 0, "vring index"},
        {VU_SET_VRING_ADDR, sizeof(struct vu_vring_addr), 4, 0, "vring index 4"},
        {VU_SET_VRING_BASE, 8, 4, 0, "vring index 4"},
        {VU_GET_VRING_BASE, 8, 4, 0, "vring index 4"},
        {VU_GET_VRING_BASE, 8, 0x80000000, 0, "vring index"},
        {VU_SET_VRING_ENABLE, 8, 5 | (1ull << 32), 0, "vring index 5"},
        {VU_SET_VRING_KICK, 8, 4, 1, "vring index 4"},
        {VU_SET_VRING_CALL, 8, 4 | VU_VRING_NOFD_MASK, 0, "vring index 4"},
        {VU_SET_VRING_ERR, 8, 0xff, 1, "vring index 255"},
        /* bits other than the index and NOFD */
        {VU_SET_VRING_CALL, 8, 0x200 | VU_VRING_NOFD_MASK, 0, "unknown bits"},
        {VU_SET_VRING_KICK, 8, 1ull << 32, 1, "unknown bits"},
        {VU_SET_VRING_ERR, 8, 1ull << 63 | VU_VRING_NOFD_MASK, 0, "unknown bits"},
};

static void test_vring_index(void **state)
{
        struct fx *f = *state;

        for (size_t i = 0; i < ARRAY_SIZE(idx_cases); i++) {
                const struct idx_case *c = &idx_cases[i];
                struct vu_msg m;
                int fds[1];
                int r;

                msg_init(&m, c->req, c->size);
                m.payload.u64 = c->u64;
                attach(&m, c->nfds, fds);
                r = dispatch(f, &m);
                if (r != -EPROTO || !strstr(f->dev->err, c->err))
                        print_error("%s 0x%llx: %d '%s'\n", vu_request_name(c->req), (unsigned long long)c->u64, r,
                                    f->dev->err);
                assert_int_equal(r, -EPROTO);
                assert_non_null(strstr(f->dev->err, c->err));
                expect_closed(fds, c->nfds);
                expect_no_reply(f);
        }
        /* The last valid index works. */
        set_state(f, VU_SET_VRING_NUM, NVRINGS - 1, 64);
        assert_int_equal(f->dev->vrings[NVRINGS - 1].vq.num, 64);
}

/* ---- unsupported requests ---- */

static void test_unsupported(void **state)
{
        static const uint32_t reqs[] = {0,
                                        VU_SET_BACKEND_REQ_FD,
                                        VU_IOTLB_MSG,
                                        VU_SET_VRING_ENDIAN,
                                        26,
                                        33,
                                        35,
                                        VU_REQUEST_MAX,
                                        99,
                                        0x10000,
                                        UINT32_MAX};
        struct fx *f = *state;

        set_u64(f, VU_SET_PROTOCOL_FEATURES, BIT_ULL(VU_PROTOCOL_F_REPLY_ACK));
        for (size_t i = 0; i < ARRAY_SIZE(reqs); i++) {
                struct vu_msg m;
                int fds[1];

                msg_u64(&m, reqs[i], 0);
                m.hdr.flags |= VU_FLAG_NEED_REPLY;
                attach(&m, 1, fds);
                assert_int_equal(dispatch(f, &m), -EPROTO);
                expect_closed(fds, 1);
                expect_no_reply(f);
        }
        assert_string_equal(vu_request_name(VU_SET_LOG_BASE), "SET_LOG_BASE");
        assert_string_equal(vu_request_name(99), "UNKNOWN");
        assert_string_equal(vu_request_name(UINT32_MAX), "UNKNOWN");
        assert_string_equal(vu_request_name(VU_GET_VRING_BASE), "GET_VRING_BASE");
}

/* ---- REPLY_ACK ---- */

static void test_reply_ack(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;

        /* Without REPLY_ACK: refused, and nothing is sent even with NEED_REPLY. */
        msg_state(&m, VU_SET_VRING_NUM, 0, 1000);
        m.hdr.flags |= VU_FLAG_NEED_REPLY;
        refused(f, &m);
        assert_non_null(strstr(f->dev->err, "not a power of two"));
        assert_int_equal(f->dev->vrings[0].vq.num, 0);
        msg_state(&m, VU_SET_VRING_NUM, 0, 256);
        m.hdr.flags |= VU_FLAG_NEED_REPLY;
        ok(f, &m);

        set_u64(f, VU_SET_PROTOCOL_FEATURES, BIT_ULL(VU_PROTOCOL_F_REPLY_ACK));
        /* Negotiated, but not asked for: no reply. */
        msg_state(&m, VU_SET_VRING_NUM, 0, 128);
        ok(f, &m);
        assert_int_equal(f->dev->vrings[0].vq.num, 128);

        static const struct {
                uint32_t num;
                bool ok;
        } nums[] = {{1000, false}, {0, false}, {3, false},  {65536, false}, {32768 * 2, false},
                    {1, true},     {2, true},  {256, true}, {32768, true}};
        for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
                msg_state(&m, VU_SET_VRING_NUM, 1, nums[i].num);
                m.hdr.flags |= VU_FLAG_NEED_REPLY;
                assert_int_equal(dispatch(f, &m), 0);
                uint64_t ack = read_u64(f, VU_SET_VRING_NUM);
                if (nums[i].ok) {
                        assert_int_equal(ack, 0);
                        assert_int_equal(f->dev->vrings[1].vq.num, nums[i].num);
                } else {
                        assert_int_not_equal(ack, 0);
                }
                expect_no_reply(f);
        }
        /* A request with a reply of its own gets only that one. */
        msg_init(&m, VU_GET_FEATURES, 0);
        m.hdr.flags |= VU_FLAG_NEED_REPLY;
        assert_int_equal(dispatch(f, &m), 0);
        (void)read_u64(f, VU_GET_FEATURES);
        expect_no_reply(f);
        /* A protocol error never gets an ack: the connection closes. */
        msg_state(&m, VU_SET_VRING_NUM, 9, 256);
        m.hdr.flags |= VU_FLAG_NEED_REPLY;
        assert_int_equal(dispatch(f, &m), -EPROTO);
        expect_no_reply(f);
}

/* ---- features ---- */

static void test_get_features(void **state)
{
        struct fx *f = *state;
        uint64_t want = BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) |
                        BIT_ULL(VIRTIO_RING_F_EVENT_IDX) | BIT_ULL(VIRTIO_NET_F_MRG_RXBUF) |
                        BIT_ULL(VIRTIO_NET_F_STATUS) | BIT_ULL(VIRTIO_NET_F_MTU) | BIT_ULL(VIRTIO_F_ANY_LAYOUT) |
                        BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) | BIT_ULL(VIRTIO_NET_F_GUEST_ANNOUNCE) |
                        BIT_ULL(VIRTIO_NET_F_MQ) | BIT_ULL(VHOST_F_LOG_ALL) | BIT_ULL(VIRTIO_F_RING_PACKED) |
                        BIT_ULL(VIRTIO_F_IN_ORDER);
        uint64_t got = get_u64(f, VU_GET_FEATURES);

        assert_int_equal(got, want);
        assert_int_equal(got, vu_offered_features(&f->cfg, f->port.be));
        /* No MAC configured: not offered. The loopback port offers no offloads. */
        assert_false(got & BIT_ULL(VIRTIO_NET_F_MAC));
        assert_false(got & BIT_ULL(VIRTIO_NET_F_CSUM));
        assert_false(got & BIT_ULL(VIRTIO_F_NOTIFY_ON_EMPTY)); /* offered only what is implemented */
        /* packed_ring = no and in_order = no each take their bit away, and only it. */
        f->cfg.packed_ring = false;
        assert_int_equal(get_u64(f, VU_GET_FEATURES), want & ~BIT_ULL(VIRTIO_F_RING_PACKED));
        f->cfg.in_order = false;
        assert_int_equal(get_u64(f, VU_GET_FEATURES),
                         want & ~(BIT_ULL(VIRTIO_F_RING_PACKED) | BIT_ULL(VIRTIO_F_IN_ORDER)));
        f->cfg.packed_ring = f->cfg.in_order = true;

        assert_int_equal(get_u64(f, VU_GET_PROTOCOL_FEATURES), vu_offered_protocol_features());
        assert_true(vu_offered_protocol_features() & BIT_ULL(VU_PROTOCOL_F_REPLY_ACK));
        assert_true(vu_offered_protocol_features() & BIT_ULL(VU_PROTOCOL_F_LOG_SHMFD));
        assert_int_equal(get_u64(f, VU_GET_QUEUE_NUM), NQ);
        assert_int_equal(get_u64(f, VU_GET_MAX_MEM_SLOTS), MEM_MAX_REGIONS);
}

static void test_set_features(void **state)
{
        struct fx *f = *state;
        uint64_t offered = vu_offered_features(&f->cfg, f->port.be);
        struct vu_msg m;

        static const uint64_t bad[] = {BIT_ULL(VIRTIO_NET_F_CSUM), BIT_ULL(63), BIT_ULL(VIRTIO_NET_F_MAC),
                                       BIT_ULL(VIRTIO_NET_F_HOST_TSO4) | BIT_ULL(VIRTIO_F_VERSION_1), ~0ull};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                msg_u64(&m, VU_SET_FEATURES, bad[i]);
                refused(f, &m);
                assert_non_null(strstr(f->dev->err, "never offered"));
                assert_false(f->dev->features_set);
                assert_int_equal(f->dev->features, 0);
        }
        set_u64(f, VU_SET_FEATURES, offered);
        assert_int_equal(f->dev->features, offered);
        assert_true(f->dev->vrings[0].vq.event_idx);
        assert_true(f->dev->vrings[3].vq.in_order);
        assert_int_equal(f->dev->hdr_len, 12);
        /* Legacy header without VERSION_1 or MRG_RXBUF, and no event idx. */
        set_u64(f, VU_SET_FEATURES, 0);
        assert_int_equal(f->dev->hdr_len, 10);
        assert_false(f->dev->vrings[3].vq.event_idx);
        assert_false(f->dev->vrings[0].vq.in_order);

        /* Protocol features: only what was offered. */
        msg_u64(&m, VU_SET_PROTOCOL_FEATURES, BIT_ULL(VU_PROTOCOL_F_BACKEND_REQ));
        refused(f, &m);
        assert_int_equal(f->dev->protocol_features, 0);
        set_u64(f, VU_SET_PROTOCOL_FEATURES, vu_offered_protocol_features());
        assert_int_equal(f->dev->protocol_features, vu_offered_protocol_features());
}

/* ---- memory table ---- */

static void test_mem_table_bad(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;
        int fds[VU_MAX_FDS];
        unsigned idx[2] = {0, 1};

        assert_int_equal(fe_mem_add_region(&f->mem, 0x0, 0x100000, 0), 0);
        assert_int_equal(fe_mem_add_region(&f->mem, 0x100000, 0x100000, 0), 1);

        /* nregions 0 and 9 */
        msg_init(&m, VU_SET_MEM_TABLE, 8);
        assert_int_equal(dispatch(f, &m), -EPROTO);
        msg_init(&m, VU_SET_MEM_TABLE, 8 + 9 * 32);
        m.payload.mem.nregions = 9;
        attach(&m, 8, fds);
        assert_int_equal(dispatch(f, &m), -EPROTO);
        expect_closed(fds, 8);
        msg_init(&m, VU_SET_MEM_TABLE, 8 + 32);
        m.payload.mem.nregions = 0xffffffff;
        assert_int_equal(dispatch(f, &m), -EPROTO);
        /* size that does not match nregions */
        msg_mem_table(f, &m, idx, 2);
        m.hdr.size -= 32;
        memcpy(fds, m.fds, 2 * sizeof(int));
        assert_int_equal(dispatch(f, &m), -EPROTO);
        expect_closed(fds, 2);
        assert_null(f->dev->mem);

        /* Overlapping guest-physical ranges. */
        msg_mem_table(f, &m, idx, 2);
        m.payload.mem.regions[1].guest_phys_addr = 0x80000;
        memcpy(fds, m.fds, 2 * sizeof(int));
        refused(f, &m);
        assert_non_null(strstr(f->dev->err, "guest-physical range overlaps"));
        expect_closed(fds, 2);
        assert_null(f->dev->mem);

        /* Overlapping user addresses. */
        msg_mem_table(f, &m, idx, 2);
        m.payload.mem.regions[1].userspace_addr = m.payload.mem.regions[0].userspace_addr + 0xfffff;
        memcpy(fds, m.fds, 2 * sizeof(int));
        refused(f, &m);
        assert_non_null(strstr(f->dev->err, "user address range overlaps"));
        expect_closed(fds, 2);

        /* An empty region, a wrapping one, one past the end of its fd. */
        msg_mem_table(f, &m, idx, 2);
        m.payload.mem.regions[1].memory_size = 0;
        refused(f, &m);
        assert_non_null(strstr(f->dev->err, "region 1"));
        msg_mem_table(f, &m, idx, 1);
        m.payload.mem.regions[0].guest_phys_addr = UINT64_MAX - 0xfff;
        refused(f, &m);
        msg_mem_table(f, &m, idx, 1);
        m.payload.mem.regions[0].mmap_offset = 0x1000;
        refused(f, &m);
        /* An fd that cannot be mapped. */
        msg_mem_table(f, &m, idx, 1);
        close(m.fds[0]);
        m.fds[0] = new_eventfd();
        fds[0] = m.fds[0];
        refused(f, &m);
        expect_closed(fds, 1);
        assert_null(f->dev->mem);

        /* A good table: the fds are not kept (the mappings are). */
        msg_mem_table(f, &m, idx, 2);
        memcpy(fds, m.fds, 2 * sizeof(int));
        ok(f, &m);
        expect_closed(fds, 2);
        assert_int_equal(f->dev->mem->nregions, 2);
        memcpy(f->mem.regions[1].ptr + 0x10, "guest", 5);
        assert_memory_equal(f->dev->mem->regions[1].host + 0x10, "guest", 5);
        /* A bad table later leaves the good one in place. */
        msg_mem_table(f, &m, idx, 2);
        m.payload.mem.regions[1].guest_phys_addr = 0;
        refused(f, &m);
        assert_int_equal(f->dev->mem->nregions, 2);
        /* And a new good one replaces it. */
        msg_mem_table(f, &m, idx, 1);
        ok(f, &m);
        assert_int_equal(f->dev->mem->nregions, 1);
}

/* A memfd of size bytes holding a dirty log. */
static int log_memfd(size_t size)
{
        int fd = memfd_create("test-log", MFD_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

static void msg_log_base(struct vu_msg *m, int fd, uint64_t size, uint64_t offset)
{
        msg_init(m, VU_SET_LOG_BASE, sizeof(struct vu_log));
        m->payload.log.mmap_size = size;
        m->payload.log.mmap_offset = offset;
        m->fds[m->nfds++] = fd;
}

static void test_log_base(void **state)
{
        struct fx *f = *state;
        uint64_t need = (RAM_GPA + RAM_SIZE) / 4096 / 8; /* one bit per page of guest memory */
        struct vu_msg m;

        set_u64(f, VU_SET_PROTOCOL_FEATURES, vu_offered_protocol_features());
        set_mem_table(f);
        /* A log that covers guest memory: mapped, answered with an empty reply (what QEMU waits for). */
        msg_log_base(&m, log_memfd(need + 4096), need, 4096);
        assert_int_equal(dispatch(f, &m), 0);
        assert_int_equal(read_reply(f, VU_SET_LOG_BASE, NULL, 0), 0);
        assert_non_null(f->dev->log);
        /* Sent again (QEMU resizes it): the new one replaces the old. */
        msg_log_base(&m, log_memfd(2 * need), 2 * need, 0);
        assert_int_equal(dispatch(f, &m), 0);
        assert_int_equal(read_reply(f, VU_SET_LOG_BASE, NULL, 0), 0);
        assert_int_equal(f->dev->log->size, 2 * need);
        /* Too small for guest memory, an fd shorter than offset + size, a size of 0: refused, the old log stays. */
        msg_log_base(&m, log_memfd(need), need / 2, 0);
        refused(f, &m);
        assert_int_equal(f->dev->log->size, 2 * need);
        set_u64(f, VU_SET_PROTOCOL_FEATURES, vu_offered_protocol_features());
        msg_log_base(&m, log_memfd(need), need, 4096);
        refused(f, &m);
        assert_non_null(strstr(f->dev->err, "smaller than offset + size"));
        set_u64(f, VU_SET_PROTOCOL_FEATURES, vu_offered_protocol_features());
        msg_log_base(&m, log_memfd(4096), 0, 0);
        refused(f, &m);
        /* SET_LOG_FD: the eventfd is kept, a second one replaces it (teardown checks no fd is left open). */
        for (int i = 0; i < 2; i++) {
                msg_init(&m, VU_SET_LOG_FD, 0);
                m.fds[m.nfds++] = new_eventfd();
                assert_int_equal(dispatch(f, &m), 0);
                assert_true(f->dev->log_fd >= 0);
        }
}

static void test_vring_addr(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;

        /* Before the size. */
        msg_vring_addr(f, &m, 0, 0, 0, 0);
        refused(f, &m);
        set_state(f, VU_SET_VRING_NUM, 0, RING_NUM);

        /* Before the memory table: remembered, mapped when it arrives. */
        ram(f);
        msg_vring_addr(f, &m, 0, ring_uva(f, 0, 0), ring_uva(f, 0, 1), ring_uva(f, 0, 2));
        ok(f, &m);
        assert_true(f->dev->vrings[0].addr_set);
        assert_false(f->dev->vrings[0].mapped);
        set_mem_table(f);
        assert_true(f->dev->vrings[0].mapped);
        assert_ptr_equal(f->dev->vrings[0].vq.desc, f->dev->mem->regions[0].host + 0x10000);

        struct {
                const char *what;
                uint64_t desc, avail, used;
                uint32_t flags;
                const char *err;
        } cases[] = {
                {"desc outside", 0x1000, ring_uva(f, 1, 1), ring_uva(f, 1, 2), 0, "descriptor table"},
                {"avail outside", ring_uva(f, 1, 0), ring_uva(f, 0, 0) + RAM_SIZE, ring_uva(f, 1, 2), 0,
                 "available ring"},
                {"used past the end", ring_uva(f, 1, 0), ring_uva(f, 1, 1), ring_uva(f, 0, 0) + RAM_SIZE - 0x10000 - 8,
                 0, "used ring"},
                {"gpa instead of uva", 0x20000, 0x21000, 0x22000, 0, "not in guest memory"},
                {"misaligned desc", ring_uva(f, 1, 0) + 8, ring_uva(f, 1, 1), ring_uva(f, 1, 2), 0, "misaligned"},
        };
        set_state(f, VU_SET_VRING_NUM, 1, RING_NUM);
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                msg_vring_addr(f, &m, 1, cases[i].desc, cases[i].avail, cases[i].used);
                m.payload.addr.flags = cases[i].flags;
                refused(f, &m);
                if (!strstr(f->dev->err, cases[i].err))
                        print_error("case '%s': '%s'\n", cases[i].what, f->dev->err);
                assert_non_null(strstr(f->dev->err, cases[i].err));
                assert_false(f->dev->vrings[1].addr_set);
                assert_false(f->dev->vrings[1].mapped);
        }
        msg_vring_addr(f, &m, 1, ring_uva(f, 1, 0), ring_uva(f, 1, 1), ring_uva(f, 1, 2));
        ok(f, &m);
        assert_true(f->dev->vrings[1].mapped);
        /* A new size unmaps until the address comes again. */
        set_state(f, VU_SET_VRING_NUM, 1, 2 * RING_NUM);
        assert_false(f->dev->vrings[1].mapped);
}

static void test_vring_enable(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;

        /* Accepted before SET_FEATURES too: QEMU disables the rings beyond the active queue pairs early. */
        set_state(f, VU_SET_VRING_ENABLE, 0, 1);
        assert_true(f->dev->vrings[0].enabled);
        set_state(f, VU_SET_VRING_ENABLE, 3, 0);
        assert_false(f->dev->vrings[3].enabled);

        set_u64(f, VU_SET_FEATURES, BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES));
        set_state(f, VU_SET_VRING_ENABLE, 1, 1);
        assert_true(f->dev->vrings[1].enabled);
        msg_state(&m, VU_SET_VRING_ENABLE, 1, 2);
        refused(f, &m);
        assert_non_null(strstr(f->dev->err, "not 0 or 1"));
        assert_true(f->dev->vrings[1].enabled);
        set_state(f, VU_SET_VRING_ENABLE, 1, 0);
        assert_false(f->dev->vrings[1].enabled);
}

static void test_config(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;
        struct vu_config reply;
        struct virtio_net_config nc;

        struct {
                uint32_t offset, size, hdr_size;
        } bad[] = {
                {10, 4, 16},         /* past the end */
                {13, 0, 12},         /* offset past the end */
                {0, 13, 25},         /* larger than the config */
                {0xffffffff, 2, 14}, /* offset + size wraps */
                {0, 4, 12},          /* header size does not match */
                {0, 4, 17},          {0, VU_CONFIG_MAX + 1, 12 + VU_CONFIG_MAX + 1}, {0, 0xffffffff, 11},
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                msg_init(&m, VU_GET_CONFIG, bad[i].hdr_size);
                m.payload.config.offset = bad[i].offset;
                m.payload.config.size = bad[i].size;
                assert_int_equal(dispatch(f, &m), -EPROTO);
                expect_no_reply(f);
        }

        msg_init(&m, VU_GET_CONFIG, VU_CONFIG_HDR_SIZE + sizeof(nc));
        m.payload.config.size = sizeof(nc);
        assert_int_equal(dispatch(f, &m), 0);
        assert_int_equal(read_reply(f, VU_GET_CONFIG, &reply, sizeof(reply)), VU_CONFIG_HDR_SIZE + sizeof(nc));
        assert_int_equal(reply.offset, 0);
        assert_int_equal(reply.size, sizeof(nc));
        memcpy(&nc, reply.payload, sizeof(nc));
        assert_int_equal(le16toh(nc.status), VIRTIO_NET_S_LINK_UP);
        assert_int_equal(le16toh(nc.max_virtqueue_pairs), NQ);
        assert_int_equal(le16toh(nc.mtu), 1500);

        /* Just the MTU, after NET_SET_MTU. */
        set_u64(f, VU_NET_SET_MTU, 9000);
        msg_init(&m, VU_GET_CONFIG, VU_CONFIG_HDR_SIZE + 2);
        m.payload.config.offset = offsetof(struct virtio_net_config, mtu);
        m.payload.config.size = 2;
        assert_int_equal(dispatch(f, &m), 0);
        assert_int_equal(read_reply(f, VU_GET_CONFIG, &reply, sizeof(reply)), VU_CONFIG_HDR_SIZE + 2);
        assert_int_equal(reply.payload[0] | reply.payload[1] << 8, 9000);
        /* Empty, at the very end. */
        msg_init(&m, VU_GET_CONFIG, VU_CONFIG_HDR_SIZE);
        m.payload.config.offset = sizeof(nc);
        assert_int_equal(dispatch(f, &m), 0);
        assert_int_equal(read_reply(f, VU_GET_CONFIG, &reply, sizeof(reply)), VU_CONFIG_HDR_SIZE);

        /* MTU limits; SET_CONFIG is refused. */
        msg_u64(&m, VU_NET_SET_MTU, 67);
        refused(f, &m);
        msg_u64(&m, VU_NET_SET_MTU, 65536);
        refused(f, &m);
        assert_int_equal(f->dev->mtu, 9000);
        msg_init(&m, VU_SET_CONFIG, VU_CONFIG_HDR_SIZE + 6);
        m.payload.config.size = 6;
        refused(f, &m);
        msg_init(&m, VU_SET_CONFIG, VU_CONFIG_HDR_SIZE + 6);
        m.payload.config.size = 7;
        refused(f, &m);
}

static void test_status(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;

        assert_int_equal(get_u64(f, VU_GET_STATUS), 0);
        set_u64(f, VU_SET_STATUS, 0xf);
        assert_int_equal(get_u64(f, VU_GET_STATUS), 0xf);
        msg_u64(&m, VU_SET_STATUS, 0x100);
        refused(f, &m);
        assert_int_equal(get_u64(f, VU_GET_STATUS), 0xf);
        /* RARP needs its protocol feature. */
        msg_u64(&m, VU_SEND_RARP, 0x0000563412005452ull);
        refused(f, &m);
}

static void test_vring_base(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;
        struct vu_vring_state st;

        set_state(f, VU_SET_VRING_NUM, 1, RING_NUM);
        set_state(f, VU_SET_VRING_BASE, 1, 1234);
        set_state(f, VU_SET_VRING_BASE, 2, 65535);
        msg_state(&m, VU_SET_VRING_BASE, 3, 65536);
        refused(f, &m);

        static const struct {
                uint32_t index, num;
        } want[] = {{1, 1234}, {2, 65535}, {3, 0}, {0, 0}};
        for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
                msg_state(&m, VU_GET_VRING_BASE, want[i].index, 0xdead);
                assert_int_equal(dispatch(f, &m), 0);
                assert_int_equal(read_reply(f, VU_GET_VRING_BASE, &st, sizeof(st)), sizeof(st));
                assert_int_equal(st.index, want[i].index);
                assert_int_equal(st.num, want[i].num);
        }
}

static void msg_mem_reg(struct fx *f, struct vu_msg *m, uint32_t req, unsigned idx, bool with_fd)
{
        msg_init(m, req, sizeof(struct vu_mem_single));
        fe_mem_region_msg(&f->mem, idx, &m->payload.mem_reg.region);
        if (with_fd)
                m->fds[m->nfds++] = fcntl(f->mem.regions[idx].fd, F_DUPFD_CLOEXEC, 0);
}

static void test_add_rem_mem_reg(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;
        int fds[1];

        assert_int_equal(fe_mem_add_region(&f->mem, 0x0, 0x100000, 0), 0);
        assert_int_equal(fe_mem_add_region(&f->mem, 0x200000, 0x100000, 0), 1);

        msg_mem_reg(f, &m, VU_ADD_MEM_REG, 0, true);
        fds[0] = m.fds[0];
        ok(f, &m);
        expect_closed(fds, 1);
        assert_int_equal(f->dev->mem->nregions, 1);
        msg_mem_reg(f, &m, VU_ADD_MEM_REG, 1, true);
        ok(f, &m);
        assert_int_equal(f->dev->mem->nregions, 2);

        /* A ring in region 1 stops when the region goes, and works again when it comes back. */
        set_state(f, VU_SET_VRING_NUM, 2, 64);
        msg_vring_addr(f, &m, 2, fe_mem_uva(&f->mem, 0x200000), fe_mem_uva(&f->mem, 0x201000),
                       fe_mem_uva(&f->mem, 0x202000));
        ok(f, &m);
        assert_true(f->dev->vrings[2].mapped);

        /* Overlapping: refused, fd closed, table unchanged. */
        msg_mem_reg(f, &m, VU_ADD_MEM_REG, 1, true);
        m.payload.mem_reg.region.userspace_addr += 0x1000000;
        fds[0] = m.fds[0];
        refused(f, &m);
        expect_closed(fds, 1);
        assert_int_equal(f->dev->mem->nregions, 2);
        /* An empty region. */
        msg_mem_reg(f, &m, VU_ADD_MEM_REG, 1, true);
        m.payload.mem_reg.region.memory_size = 0;
        refused(f, &m);

        /* Removal needs an exact match. */
        msg_mem_reg(f, &m, VU_REM_MEM_REG, 1, false);
        m.payload.mem_reg.region.memory_size /= 2;
        refused(f, &m);
        msg_mem_reg(f, &m, VU_REM_MEM_REG, 1, true); /* QEMU may attach the fd: closed */
        fds[0] = m.fds[0];
        ok(f, &m);
        expect_closed(fds, 1);
        assert_int_equal(f->dev->mem->nregions, 1);
        assert_false(f->dev->vrings[2].mapped);
        msg_mem_reg(f, &m, VU_REM_MEM_REG, 1, false);
        refused(f, &m);

        msg_mem_reg(f, &m, VU_ADD_MEM_REG, 1, true);
        ok(f, &m);
        assert_true(f->dev->vrings[2].mapped);

        /* QEMU adds the same region once per queue pair: counted, gone with the last removal. */
        msg_mem_reg(f, &m, VU_ADD_MEM_REG, 1, true);
        fds[0] = m.fds[0];
        ok(f, &m);
        expect_closed(fds, 1);
        assert_int_equal(f->dev->mem->nregions, 2);
        msg_mem_reg(f, &m, VU_REM_MEM_REG, 1, false);
        ok(f, &m);
        assert_int_equal(f->dev->mem->nregions, 2);
        assert_true(f->dev->vrings[2].mapped);
        memcpy(f->mem.regions[1].ptr + 0x8000, "still", 5);
        assert_memory_equal(f->dev->mem->regions[1].host + 0x8000, "still", 5);

        msg_mem_reg(f, &m, VU_REM_MEM_REG, 0, false);
        ok(f, &m);
        msg_mem_reg(f, &m, VU_REM_MEM_REG, 1, false);
        ok(f, &m);
        assert_int_equal(f->dev->mem->nregions, 0);
        assert_false(f->dev->vrings[2].mapped);
}

/* ADD_MEM_REG up to the slot limit, then one more. */
static void test_mem_slots_full(void **state)
{
        struct fx *f = *state;
        struct vu_msg m;

        for (unsigned i = 0; i < MEM_MAX_REGIONS; i++) {
                assert_int_equal(fe_mem_add_region(&f->mem, 0x100000ull * i, 0x1000, 0), (int)i);
                msg_mem_reg(f, &m, VU_ADD_MEM_REG, i, true);
                ok(f, &m);
        }
        assert_int_equal(f->dev->mem->nregions, MEM_MAX_REGIONS);
        msg_mem_reg(f, &m, VU_ADD_MEM_REG, 0, true);
        m.payload.mem_reg.region.guest_phys_addr = 0x100000000ull;
        m.payload.mem_reg.region.userspace_addr = 0x100000000ull;
        refused(f, &m);
        assert_int_equal(f->dev->mem->nregions, MEM_MAX_REGIONS);
}

/* ---- a whole session, with traffic through the loopback port ---- */

static void acked(struct fx *f, struct vu_msg *m)
{
        int r;

        m->hdr.flags |= VU_FLAG_NEED_REPLY;
        r = dispatch(f, m);
        if (r != 0)
                print_error("%s: %d (%s)\n", vu_request_name(m->hdr.request), r, f->dev->err);
        assert_int_equal(r, 0);
        uint64_t ack = read_u64(f, m->hdr.request);
        if (ack != 0)
                print_error("%s: nack (%s)\n", vu_request_name(m->hdr.request), f->dev->err);
        assert_int_equal(ack, 0);
}

static void acked_u64(struct fx *f, uint32_t req, uint64_t v)
{
        struct vu_msg m;

        msg_u64(&m, req, v);
        acked(f, &m);
}

static void acked_state(struct fx *f, uint32_t req, uint32_t index, uint32_t num)
{
        struct vu_msg m;

        msg_state(&m, req, index, num);
        acked(f, &m);
}

static void acked_fd(struct fx *f, uint32_t req, unsigned index, int fd)
{
        struct vu_msg m;

        msg_u64(&m, req, index);
        m.fds[m.nfds++] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        acked(f, &m);
}

static void test_session(void **state)
{
        struct fx *f = *state;
        struct fe_ring rings[NVRINGS];
        uint64_t features = BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_NET_F_MRG_RXBUF) | BIT_ULL(VIRTIO_NET_F_MQ) |
                            BIT_ULL(VIRTIO_RING_F_EVENT_IDX) | BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) |
                            BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) | BIT_ULL(VIRTIO_NET_F_STATUS);
        uint64_t pf = BIT_ULL(VU_PROTOCOL_F_REPLY_ACK) | BIT_ULL(VU_PROTOCOL_F_MQ) | BIT_ULL(VU_PROTOCOL_F_MTU) |
                      BIT_ULL(VU_PROTOCOL_F_RARP) | BIT_ULL(VU_PROTOCOL_F_CONFIG) | BIT_ULL(VU_PROTOCOL_F_STATUS);
        struct vu_msg m;
        unsigned idx = 0;

        assert_int_equal(get_u64(f, VU_GET_FEATURES) & features, features);
        msg_init(&m, VU_SET_OWNER, 0);
        ok(f, &m);
        assert_int_equal(get_u64(f, VU_GET_PROTOCOL_FEATURES) & pf, pf);
        set_u64(f, VU_SET_PROTOCOL_FEATURES, pf);
        assert_int_equal(get_u64(f, VU_GET_QUEUE_NUM), NQ);
        acked_u64(f, VU_SET_FEATURES, features);
        acked_u64(f, VU_SET_STATUS, 0xb);
        acked_u64(f, VU_NET_SET_MTU, 1500);

        ram(f);
        for (unsigned i = 0; i < NVRINGS; i++) {
                assert_int_equal(fe_ring_init(&rings[i], &f->mem, i, RING_NUM, 2048, 0, 0), 0);
                rings[i].event_idx = true;
                rings[i].mrg_rxbuf = true;
                rings[i].hdr_len = sizeof(struct virtio_net_hdr_mrg);
        }
        msg_mem_table(f, &m, &idx, 1);
        acked(f, &m);
        for (unsigned i = 0; i < NVRINGS; i++) {
                struct fe_ring *r = &rings[i];

                acked_state(f, VU_SET_VRING_NUM, i, RING_NUM);
                msg_vring_addr(f, &m, i, fe_mem_uva(&f->mem, r->desc_gpa), fe_mem_uva(&f->mem, r->avail_gpa),
                               fe_mem_uva(&f->mem, r->used_gpa));
                acked(f, &m);
                acked_state(f, VU_SET_VRING_BASE, i, 0);
                acked_fd(f, VU_SET_VRING_CALL, i, r->call_fd);
                acked_fd(f, VU_SET_VRING_ERR, i, r->err_fd);
                acked_fd(f, VU_SET_VRING_KICK, i, r->kick_fd);
                acked_state(f, VU_SET_VRING_ENABLE, i, 1);
        }
        for (unsigned i = 0; i < NVRINGS; i++) {
                assert_true(vu_vring_ready(&f->dev->vrings[i]));
                assert_true(f->dev->vrings[i].vq.event_idx);
        }

        /* Queue pair 1: tx ring 3 loops back to rx ring 2. */
        static const uint8_t frame[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0,   0x12,
                                          0x34, 0x56, 0x08, 0x00, 'v',  'h',  'o',  's',  't', 'd'};
        uint8_t buf[2048];
        struct fe_rx_info info;

        assert_true(fe_ring_fill_rx(&rings[2]) > 0);
        assert_true(fe_ring_kick(&rings[2]) >= 0);
        assert_true(fe_ring_post_tx(&rings[3], frame, sizeof(frame), NULL, NULL) >= 0);
        assert_true(fe_ring_kick(&rings[3]) >= 0);
        assert_int_equal(fe_ring_recv_wait(&rings[2], buf, sizeof(buf), &info, 5000), 1);
        assert_int_equal(info.len, sizeof(frame));
        assert_memory_equal(buf, frame, sizeof(frame));
        assert_true(fe_ring_wait(&rings[3], 1, 5000) >= 1);
        assert_int_equal(fe_ring_reap(&rings[3]), 1);

        /* RARP goes out of queue pair 0 and so comes back on rx ring 0. */
        assert_true(fe_ring_fill_rx(&rings[0]) > 0);
        assert_true(fe_ring_kick(&rings[0]) >= 0);
        acked_u64(f, VU_SEND_RARP, 0x0000563412005452ull); /* 52:54:00:12:34:56 */
        assert_int_equal(fe_ring_recv_wait(&rings[0], buf, sizeof(buf), &info, 5000), 1);
        assert_int_equal(buf[12], 0x80);
        assert_int_equal(buf[13], 0x35);
        assert_memory_equal(buf + 6, "\x52\x54\x00\x12\x34\x56", 6);
        assert_int_equal(fe_ring_err_pending(&rings[0]), 0);
        assert_int_equal(fe_ring_err_pending(&rings[3]), 0);

        /* Stop every ring: the bases are what was consumed. */
        static const uint32_t bases[NVRINGS] = {1, 0, 1, 1};
        for (unsigned i = 0; i < NVRINGS; i++) {
                struct vu_vring_state st;

                msg_state(&m, VU_GET_VRING_BASE, i, 0);
                assert_int_equal(dispatch(f, &m), 0);
                assert_int_equal(read_reply(f, VU_GET_VRING_BASE, &st, sizeof(st)), sizeof(st));
                assert_int_equal(st.index, i);
                assert_int_equal(st.num, bases[i]);
                assert_false(f->dev->vrings[i].started);
                assert_int_equal(f->dev->vrings[i].kick_fd, -1);
        }
        msg_init(&m, VU_RESET_DEVICE, 0);
        ok(f, &m);
        assert_int_equal(f->dev->features, 0);
        for (unsigned i = 0; i < NVRINGS; i++)
                fe_ring_done(&rings[i]);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        const struct CMUnitTest tests[] = {
                T(test_wrong_size),    T(test_wrong_fds),  T(test_optional_fds),    T(test_vring_index),
                T(test_unsupported),   T(test_reply_ack),  T(test_get_features),    T(test_set_features),
                T(test_mem_table_bad), T(test_vring_addr), T(test_vring_enable),    T(test_config),
                T(test_status),        T(test_vring_base), T(test_add_rem_mem_reg), T(test_mem_slots_full),
                T(test_log_base),      T(test_session),
        };
#undef T

        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER")); /* e.g. TEST_FILTER='test_map*' */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
