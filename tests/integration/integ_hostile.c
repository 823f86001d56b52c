// SPDX-License-Identifier: MIT
/*
 * integ_hostile: a real vhostd (loopback port, 2 queue pairs) against a hostile front-end.
 *
 * Part 1, malformed messages: wrong payload sizes, too many fds, wrong fd counts, vring index out of range,
 * unknown requests, truncated messages then a disconnect, a size field beyond the largest payload, bad version
 * flags. Each time vhostd must log a clear error, close that connection (only that one), keep running, leak no
 * fd, thread or mapping (/proc before and after), and then serve a well-behaved front-end that echoes traffic.
 *
 * Part 2, malformed rings: queue pair 0 carries valid traffic at full rate on its own thread while queue pair 1
 * first echoes valid frames, then gets one malformed chain (descriptor loop, address outside guest memory, huge
 * length, nested indirect table, indirect length not a multiple of 16, head >= ring size, avail index jump,
 * next >= ring size, writable descriptor in a tx chain, readable descriptor in an rx chain, rx buffer in a
 * read-only (sealed) region, used ring in read-only memory, rings in a region that is then removed). Only that
 * vring may be reported broken (control socket json: broken=true with a reason), its err eventfd must fire, and
 * queue pair 0 must keep echoing, intact and fully counted.
 *
 * The same on packed rings (VIRTIO_F_RING_PACKED), crafted with fe_ring_post_raw(): buffer id >= ring size, a
 * buffer id reused while in flight, a chain longer than the ring, wrap-counter lies (a chain continuing into a
 * slot marked for the other lap, or with AVAIL and USED both set, or that runs past the end of the ring without
 * flipping its wrap), indirect abuse (a table inside a table, INDIRECT with NEXT, INDIRECT inside a chain, tables
 * of 0 and 24 bytes, one larger than the ring, one outside guest memory), a buffer outside guest memory, a huge
 * length, a readable rx buffer, and the ring's region removed under it. Each must reach the daemon's check: the
 * log says "vring N is broken and stops" with the reason the case expects.
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

/* ---- part 1: malformed messages ------------------------------------------------------------------------ */

static int send_fds(struct fe *fe, uint32_t req, uint32_t flags, const void *payload, size_t size, unsigned nfds)
{
        int fds[64] = {0}, r;

        for (unsigned i = 0; i < nfds; i++)
                fds[i] = eventfd(0, EFD_CLOEXEC);
        r = fe_send(fe, req, flags, payload, size, nfds ? fds : NULL, nfds);
        for (unsigned i = 0; i < nfds; i++)
                close(fds[i]);
        return r;
}

static int send_raw_fds(struct fe *fe, const void *buf, size_t len, unsigned nfds)
{
        int fds[8] = {0}, r;

        for (unsigned i = 0; i < nfds; i++)
                fds[i] = eventfd(0, EFD_CLOEXEC);
        r = fe_send_raw(fe, buf, len, fds, nfds);
        for (unsigned i = 0; i < nfds; i++)
                close(fds[i]);
        return r;
}

static int m_get_features_payload(struct fe *fe)
{
        uint64_t v = 0;
        return send_fds(fe, VU_GET_FEATURES, VU_VERSION, &v, sizeof(v), 0);
}

static int m_set_features_short(struct fe *fe)
{
        uint32_t v = 0;
        return send_fds(fe, VU_SET_FEATURES, VU_VERSION, &v, sizeof(v), 0);
}

static int m_vring_num_long(struct fe *fe)
{
        uint8_t b[12] = {0};
        return send_fds(fe, VU_SET_VRING_NUM, VU_VERSION, b, sizeof(b), 0);
}

static int m_vring_addr_short(struct fe *fe)
{
        uint64_t b = 0;
        return send_fds(fe, VU_SET_VRING_ADDR, VU_VERSION, &b, sizeof(b), 0);
}

static int m_add_mem_reg_short(struct fe *fe)
{
        struct vu_mem_region reg = {.guest_phys_addr = 0, .memory_size = 4096, .userspace_addr = 0x1000};
        return send_fds(fe, VU_ADD_MEM_REG, VU_VERSION, &reg, sizeof(reg), 1);
}

static int m_mem_table_mismatch(struct fe *fe)
{
        struct vu_mem_table t = {.nregions = 2};
        return send_fds(fe, VU_SET_MEM_TABLE, VU_VERSION, &t, 8 + sizeof(t.regions[0]), 2);
}

static int m_mem_table_9(struct fe *fe)
{
        struct vu_mem_table t = {.nregions = 9};
        return send_fds(fe, VU_SET_MEM_TABLE, VU_VERSION, &t, sizeof(t), 8);
}

static int m_mem_table_0(struct fe *fe)
{
        struct vu_mem_table t = {.nregions = 0};
        return send_fds(fe, VU_SET_MEM_TABLE, VU_VERSION, &t, 8, 0);
}

static int m_fds_9(struct fe *fe)
{
        uint64_t v = 0;
        return send_fds(fe, VU_SET_VRING_CALL, VU_VERSION, &v, sizeof(v), 9);
}

static int m_fds_64(struct fe *fe)
{
        uint64_t v = 1;
        return send_fds(fe, VU_SET_VRING_CALL, VU_VERSION, &v, sizeof(v), 64);
}

static int m_kick_without_fd(struct fe *fe)
{
        uint64_t v = 0;
        return send_fds(fe, VU_SET_VRING_KICK, VU_VERSION, &v, sizeof(v), 0);
}

static int m_features_with_fd(struct fe *fe)
{
        uint64_t v = BIT_ULL(VIRTIO_F_VERSION_1);
        return send_fds(fe, VU_SET_FEATURES, VU_VERSION, &v, sizeof(v), 1);
}

static int m_mem_table_missing_fd(struct fe *fe)
{
        struct vu_mem_table t = {.nregions = 2};
        t.regions[0] = (struct vu_mem_region){0, 1 << 21, 0x10000000, 0};
        t.regions[1] = (struct vu_mem_region){1 << 21, 1 << 21, 0x20000000, 0};
        return send_fds(fe, VU_SET_MEM_TABLE, VU_VERSION, &t, 8 + 2 * sizeof(t.regions[0]), 1);
}

static int m_add_mem_reg_no_fd(struct fe *fe)
{
        struct vu_mem_single m = {.region = {0, 1 << 21, 0x10000000, 0}};
        return send_fds(fe, VU_ADD_MEM_REG, VU_VERSION, &m, sizeof(m), 0);
}

static int m_call_nofd_with_fd(struct fe *fe)
{
        uint64_t v = VU_VRING_NOFD_MASK;
        return send_fds(fe, VU_SET_VRING_CALL, VU_VERSION, &v, sizeof(v), 1);
}

static int m_vring_num_idx4(struct fe *fe)
{
        struct vu_vring_state s = {.index = 4, .num = 256};
        return send_fds(fe, VU_SET_VRING_NUM, VU_VERSION, &s, sizeof(s), 0);
}

static int m_kick_idx_0x20(struct fe *fe)
{
        uint64_t v = 0x20;
        return send_fds(fe, VU_SET_VRING_KICK, VU_VERSION, &v, sizeof(v), 1);
}

static int m_enable_idx_max(struct fe *fe)
{
        struct vu_vring_state s = {.index = 0xffffffffu, .num = 1};
        return send_fds(fe, VU_SET_VRING_ENABLE, VU_VERSION, &s, sizeof(s), 0);
}

static int m_get_base_idx100(struct fe *fe)
{
        struct vu_vring_state s = {.index = 100, .num = 0};
        return send_fds(fe, VU_GET_VRING_BASE, VU_VERSION, &s, sizeof(s), 0);
}

static int m_call_unknown_bits(struct fe *fe)
{
        uint64_t v = BIT_ULL(40) | 1;
        return send_fds(fe, VU_SET_VRING_CALL, VU_VERSION, &v, sizeof(v), 1);
}

static int m_unknown_99(struct fe *fe)
{
        return send_fds(fe, 99, VU_VERSION, NULL, 0, 0);
}

static int m_unknown_0(struct fe *fe)
{
        uint64_t v = 0;
        return send_fds(fe, 0, VU_VERSION, &v, sizeof(v), 0);
}

static int m_unknown_huge(struct fe *fe)
{
        uint64_t v = 0;
        return send_fds(fe, 0x7fffffffu, VU_VERSION, &v, sizeof(v), 1);
}

/* SET_LOG_BASE with an eventfd: nothing to map. */
static int m_log_base(struct fe *fe)
{
        uint64_t v[2] = {1 << 20, 0};
        return send_fds(fe, VU_SET_LOG_BASE, VU_VERSION, v, sizeof(v), 1);
}

/* SET_LOG_BASE with a log of mmap_size bytes in a memfd of file_size bytes. */
static int log_base_memfd(struct fe *fe, uint64_t mmap_size, uint64_t mmap_offset, off_t file_size)
{
        uint64_t v[2] = {mmap_size, mmap_offset};
        int fd = memfd_create("hostile-log", MFD_CLOEXEC), r;

        if (fd < 0 || ftruncate(fd, file_size) < 0)
                return -errno;
        r = fe_send(fe, VU_SET_LOG_BASE, VU_VERSION, v, sizeof(v), &fd, 1);
        close(fd);
        return r;
}

/* Guest memory reaches 4 GiB and more (fakefe's data region): 4 KiB of log covers 128 MiB. */
static int m_log_too_small(struct fe *fe)
{
        return log_base_memfd(fe, 4096, 0, 4096);
}

static int m_log_past_file(struct fe *fe)
{
        return log_base_memfd(fe, 1 << 20, 4096, 1 << 20);
}

static int m_log_offset_wraps(struct fe *fe)
{
        return log_base_memfd(fe, 1 << 20, UINT64_MAX - 4095, 1 << 20);
}

static int m_trunc_header(struct fe *fe)
{
        struct vu_hdr h = {.request = VU_GET_FEATURES, .flags = VU_VERSION, .size = 0};
        return send_raw_fds(fe, &h, 6, 0);
}

static int m_trunc_payload_fds(struct fe *fe)
{
        uint8_t b[sizeof(struct vu_hdr) + 20] = {0};
        struct vu_hdr h = {.request = VU_SET_VRING_ADDR, .flags = VU_VERSION, .size = sizeof(struct vu_vring_addr)};

        memcpy(b, &h, sizeof(h));
        return send_raw_fds(fe, b, sizeof(b), 2);
}

static int m_trunc_mem_table(struct fe *fe)
{
        uint8_t b[sizeof(struct vu_hdr) + 10] = {0};
        struct vu_hdr h = {.request = VU_SET_MEM_TABLE, .flags = VU_VERSION, .size = 8 + 32};

        memcpy(b, &h, sizeof(h));
        b[sizeof(h)] = 1;
        return send_raw_fds(fe, b, sizeof(b), 1);
}

static int m_size_over_max(struct fe *fe)
{
        uint8_t b[sizeof(struct vu_hdr) + 64] = {0};
        struct vu_hdr h = {.request = VU_GET_FEATURES, .flags = VU_VERSION, .size = (uint32_t)VU_PAYLOAD_MAX + 1};

        memcpy(b, &h, sizeof(h));
        return send_raw_fds(fe, b, sizeof(b), 0);
}

static int m_size_huge(struct fe *fe)
{
        struct vu_hdr h = {.request = VU_SET_MEM_TABLE, .flags = VU_VERSION, .size = 0xffffffffu};
        return send_raw_fds(fe, &h, sizeof(h), 1);
}

static int m_flags_0(struct fe *fe)
{
        return send_fds(fe, VU_GET_FEATURES, 0, NULL, 0, 0);
}

static int m_flags_2(struct fe *fe)
{
        return send_fds(fe, VU_GET_FEATURES, 2, NULL, 0, 0);
}

static int m_flags_3(struct fe *fe)
{
        uint64_t v = 0;
        return send_fds(fe, VU_SET_FEATURES, 3 | VU_FLAG_NEED_REPLY, &v, sizeof(v), 0);
}

static int m_flags_reply(struct fe *fe)
{
        return send_fds(fe, VU_GET_FEATURES, VU_VERSION | VU_FLAG_REPLY, NULL, 0, 0);
}

static int m_config_size(struct fe *fe)
{
        struct vu_config c = {.offset = 0, .size = 300, .flags = 0};
        return send_fds(fe, VU_GET_CONFIG, VU_VERSION, &c, VU_CONFIG_HDR_SIZE, 0);
}

enum prelude { PRE_NONE, PRE_ACK, PRE_RUNNING };

struct msg_case {
        const char *name;
        enum prelude pre;
        int (*send)(struct fe *fe);
        const char *expect; /* in the daemon's log */
        bool we_close;      /* a truncated message: the daemon waits for more, we hang up */
};

static const struct msg_case msg_cases[] = {
        {"GET_FEATURES with an 8-byte payload", PRE_NONE, m_get_features_payload, "payload of 8 bytes", false},
        {"SET_FEATURES with a 4-byte payload", PRE_ACK, m_set_features_short, "payload of 4 bytes", false},
        {"SET_VRING_NUM with a 12-byte payload", PRE_ACK, m_vring_num_long, "payload of 12 bytes", false},
        {"SET_VRING_ADDR with an 8-byte payload", PRE_RUNNING, m_vring_addr_short, "payload of 8 bytes", false},
        {"ADD_MEM_REG without its padding", PRE_ACK, m_add_mem_reg_short, "payload of 32 bytes", false},
        {"SET_MEM_TABLE: 2 regions, payload for 1", PRE_RUNNING, m_mem_table_mismatch, "does not hold", false},
        {"SET_MEM_TABLE: 9 regions", PRE_ACK, m_mem_table_9, "9 regions", false},
        {"SET_MEM_TABLE: 0 regions", PRE_NONE, m_mem_table_0, "0 regions", false},
        {"9 fds (max 8)", PRE_ACK, m_fds_9, "file descriptors", false},
        {"64 fds", PRE_RUNNING, m_fds_64, "file descriptors", false},
        {"SET_VRING_KICK without fd or NOFD bit", PRE_ACK, m_kick_without_fd, "0 file descriptors attached", false},
        {"SET_FEATURES with an fd", PRE_NONE, m_features_with_fd, "1 file descriptors attached", false},
        {"SET_MEM_TABLE: 2 regions, 1 fd", PRE_ACK, m_mem_table_missing_fd, "1 file descriptors attached", false},
        {"ADD_MEM_REG without fd", PRE_RUNNING, m_add_mem_reg_no_fd, "0 file descriptors attached", false},
        {"SET_VRING_CALL with NOFD bit and an fd", PRE_ACK, m_call_nofd_with_fd, "1 file descriptors attached", false},
        {"SET_VRING_NUM for vring 4 of 4", PRE_RUNNING, m_vring_num_idx4, "vring index 4", false},
        {"SET_VRING_KICK for vring 32", PRE_ACK, m_kick_idx_0x20, "vring index 32", false},
        {"SET_VRING_ENABLE for vring 0xffffffff", PRE_ACK, m_enable_idx_max, "vring index 4294967295", false},
        {"GET_VRING_BASE for vring 100", PRE_RUNNING, m_get_base_idx100, "vring index 100", false},
        {"SET_VRING_CALL with unknown bits", PRE_ACK, m_call_unknown_bits, "unknown bits", false},
        {"unknown request 99", PRE_NONE, m_unknown_99, "unsupported request 99", false},
        {"unknown request 0", PRE_ACK, m_unknown_0, "unsupported request 0", false},
        {"unknown request 0x7fffffff with an fd", PRE_RUNNING, m_unknown_huge, "unsupported request", false},
        {"SET_LOG_BASE before LOG_SHMFD", PRE_NONE, m_log_base, "without the LOG_SHMFD", false},
        {"SET_LOG_BASE with an eventfd", PRE_ACK, m_log_base, "cannot map the log", false},
        {"SET_LOG_BASE too small for guest memory", PRE_RUNNING, m_log_too_small, "covers guest memory up to", false},
        {"SET_LOG_BASE past the end of its file", PRE_RUNNING, m_log_past_file, "smaller than offset + size", false},
        {"SET_LOG_BASE offset + size wraps", PRE_ACK, m_log_offset_wraps, "cannot map the log", false},
        {"half a header, then hang up", PRE_NONE, m_trunc_header, "in the middle of a message", true},
        {"SET_VRING_ADDR cut short with 2 fds, then hang up", PRE_RUNNING, m_trunc_payload_fds,
         "in the middle of a message", true},
        {"SET_MEM_TABLE cut short with 1 fd, then hang up", PRE_ACK, m_trunc_mem_table, "in the middle of a message",
         true},
        {"size one over the largest payload", PRE_ACK, m_size_over_max, "payload size too large", false},
        {"size 0xffffffff", PRE_RUNNING, m_size_huge, "payload size too large", false},
        {"flags 0 (no version)", PRE_NONE, m_flags_0, "bad version", false},
        {"flags 2 (version 2)", PRE_ACK, m_flags_2, "bad version", false},
        {"flags 3 with NEED_REPLY", PRE_RUNNING, m_flags_3, "bad version", false},
        {"REPLY flag on a request", PRE_ACK, m_flags_reply, "reply flag", false},
        {"GET_CONFIG of 300 bytes", PRE_ACK, m_config_size, "config size 300", false},
};

/* Reads until the daemon hangs up. 0, or -ETIMEDOUT. */
static int wait_hangup(int sock, int timeout_ms)
{
        int64_t end = fe_now_ms() + timeout_ms;
        char buf[512];

        for (;;) {
                struct pollfd p = {.fd = sock, .events = POLLIN};
                int left = (int)(end - fe_now_ms());
                ssize_t n;

                if (left <= 0 || poll(&p, 1, left) <= 0)
                        return -ETIMEDOUT;
                n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                        return 0;
        }
}

/* Full setup of 2 queue pairs and a few hundred frames each way. */
static int good_echo(struct vhostd *v, unsigned frames, struct fe **ret_fe)
{
        static struct flow flows[2];
        struct flow *fl[2] = {&flows[0], &flows[1]};
        struct fe *fe;
        int r;

        r = fe_connect(v->sock, 5000, &fe);
        CHECK(r == 0, "connect: %s", strerror(-r));
        r = fe_setup(fe, 2, 256, 0);
        if (r < 0) {
                fe_free(fe);
                CHECK(r == 0, "fe_setup: %s", strerror(-r));
        }
        for (unsigned q = 0; q < 2; q++) {
                flow_init(&flows[q], fe, q, 0x1234 + q, frames);
                flows[q].tx_indirect = true;
                flows[q].tx_nseg_max = 3;
        }
        r = flows_run(fl, 2, 5000);
        if (r < 0 || !ret_fe) {
                fe_free(fe);
                if (r == 0)
                        r = fe_wait_maps(v->pid, FE_MEM_NAME, 0, 5000);
                CHECK(r == 0, "echo on a fresh connection failed (%s)", strerror(-r));
                return 0;
        }
        *ret_fe = fe;
        return 0;
}

static int prelude_ack(struct fe *fe)
{
        uint64_t f;
        int r;

        if ((r = fe_get_features(fe, &f)) < 0 || (r = fe_get_protocol_features(fe, NULL)) < 0 ||
            (r = fe_set_protocol_features(fe, BIT_ULL(VU_PROTOCOL_F_REPLY_ACK) | BIT_ULL(VU_PROTOCOL_F_MQ) |
                                                      BIT_ULL(VU_PROTOCOL_F_LOG_SHMFD))) < 0 ||
            (r = fe_set_owner(fe)) < 0)
                return r;
        return 0;
}

static int msg_case_run(struct vhostd *v, const struct pstate *base, const struct msg_case *c)
{
        long off = file_size(v->log);
        struct pstate now;
        struct fe *fe = NULL;
        int r;

        if (c->pre == PRE_RUNNING) {
                if (good_echo(v, 300, &fe) < 0)
                        return -1;
        } else {
                r = fe_connect(v->sock, 5000, &fe);
                CHECK(r == 0, "connect: %s", strerror(-r));
                if (c->pre == PRE_ACK && (r = prelude_ack(fe)) < 0) {
                        fe_free(fe);
                        CHECK(r == 0, "negotiation before the bad message: %s", strerror(-r));
                }
        }
        r = c->send(fe);
        if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
                fe_free(fe);
                CHECK(r == 0, "sending: %s", strerror(-r));
        }
        if (!c->we_close) {
                r = wait_hangup(fe->sock, 3000);
                if (r < 0) {
                        fe_free(fe);
                        CHECK(r == 0, "vhostd kept the connection open 3 s after the bad message");
                }
        }
        fe_free(fe);
        /* The daemon may not even have accepted the connection yet: its log line says it has handled it. */
        CHECK(log_wait(v->log, off, c->expect, 3000), "no log line with \"%s\"", c->expect);
        r = pstate_wait(v->pid, base, 3000, &now);
        CHECK(r == 0,
              "not back to baseline after the disconnect: fds %d (was %d), threads %d (was %d), guest RAM "
              "mappings %d (was %d)",
              now.fds, base->fds, now.threads, base->threads, now.maps, base->maps);
        CHECK(vhostd_alive(v), "vhostd died");
        CHECK(c->we_close || file_contains(v->log, off, "closing the connection"), "no \"closing the connection\"");
        return good_echo(v, 300, NULL);
}

/* ---- part 2: malformed rings --------------------------------------------------------------------------- */

#define SEALED_GPA (8ULL << 30)
#define SEALED_UVA 0x200000000000ULL
#define SEALED_SIZE (2ULL << 20)
#define SPARE_GPA (12ULL << 30)
#define SPARE_UVA 0x240000000000ULL

struct rctx {
        struct vhostd *v;
        struct fe *fe;
        struct fe_mem extra; /* regions beyond fe->mem (so the traffic thread never sees fe->mem change) */
        struct flow *f1;     /* queue pair 1's valid traffic */
};

static struct vring_desc desc(uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
        return (struct vring_desc){htole64(addr), htole32(len), htole16(flags), htole16(next)};
}

static uint64_t area(struct fe_ring *r, int head)
{
        uint64_t gpa;

        fe_ring_area(r, (uint16_t)head, &gpa);
        return gpa;
}

static uint64_t ind_table(const struct fe_ring *r, int head)
{
        return r->ind_gpa + (uint64_t)head * FE_INDIRECT_MAX * sizeof(struct vring_desc);
}

static struct vring_desc *ind_ptr(const struct fe_ring *r, int head)
{
        return fe_mem_ptr(r->mem, ind_table(r, head), FE_INDIRECT_MAX * sizeof(struct vring_desc));
}

/* Publish one crafted head on a tx ring and kick. */
static int tx_bad(struct rctx *x, int head)
{
        struct fe_ring *r = fe_tx(x->fe, 1);

        fe_ring_publish(r, (uint16_t)head);
        return fe_ring_kick(r);
}

/* Send a valid frame on queue pair 1, so the device needs an rx buffer. */
static int rx_need_buffer(struct rctx *x)
{
        struct fe_ring *tx = fe_tx(x->fe, 1);
        uint8_t frame[200];

        fe_frame_build(frame, sizeof(frame), 999999, NULL, NULL);
        (void)fe_ring_reap(tx);
        if (fe_ring_post_tx(tx, frame, sizeof(frame), NULL, NULL) < 0)
                return -ENOSPC;
        return fe_ring_kick(tx);
}

/* Publish one crafted head on the rx ring, then make the device need an rx buffer. */
static int rx_bad(struct rctx *x, int head)
{
        struct fe_ring *rx = fe_rx(x->fe, 1);

        fe_ring_publish(rx, (uint16_t)head);
        fe_ring_kick(rx);
        return rx_need_buffer(x);
}

static int r_loop(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        int a = fe_ring_desc_get(r), b = fe_ring_desc_get(r);

        r->desc[a] = desc(area(r, a), 64, VRING_DESC_F_NEXT, (uint16_t)b);
        r->desc[b] = desc(area(r, b), 64, VRING_DESC_F_NEXT, (uint16_t)a);
        return tx_bad(x, a);
}

static int r_bad_addr(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        int a = fe_ring_desc_get(r);

        r->desc[a] = desc(0x7000000000000ULL, 64, 0, 0);
        return tx_bad(x, a);
}

static int r_huge_len(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        int a = fe_ring_desc_get(r);

        r->desc[a] = desc(area(r, a), 0xfffffff0u, 0, 0);
        return tx_bad(x, a);
}

static int r_nested_indirect(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        int a = fe_ring_desc_get(r), b = fe_ring_desc_get(r);
        struct vring_desc *ta = ind_ptr(r, a), *tb = ind_ptr(r, b);

        tb[0] = desc(area(r, b), 100, 0, 0);
        ta[0] = desc(ind_table(r, b), 16, VRING_DESC_F_INDIRECT, 0);
        r->desc[a] = desc(ind_table(r, a), 16, VRING_DESC_F_INDIRECT, 0);
        return tx_bad(x, a);
}

static int r_indirect_len(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        int a = fe_ring_desc_get(r);
        struct vring_desc *t = ind_ptr(r, a);

        t[0] = desc(area(r, a), 12, VRING_DESC_F_NEXT, 1);
        t[1] = desc(area(r, a) + 12, 100, 0, 0);
        r->desc[a] = desc(ind_table(r, a), 24, VRING_DESC_F_INDIRECT, 0);
        return tx_bad(x, a);
}

static int r_head_range(struct rctx *x)
{
        return tx_bad(x, fe_tx(x->fe, 1)->num + 3);
}

static int r_avail_jump(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);

        __atomic_store_n(&r->avail->idx, htole16((uint16_t)(r->avail_idx + r->num + 1)), __ATOMIC_RELEASE);
        return fe_ring_kick(r);
}

static int r_next_range(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        int a = fe_ring_desc_get(r);

        r->desc[a] = desc(area(r, a), 64, VRING_DESC_F_NEXT, (uint16_t)(r->num + 7));
        return tx_bad(x, a);
}

static int r_tx_writable(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        int a = fe_ring_desc_get(r);

        r->desc[a] = desc(area(r, a), 100, VRING_DESC_F_WRITE, 0);
        return tx_bad(x, a);
}

static int r_rx_readable(struct rctx *x)
{
        struct fe_ring *r = fe_rx(x->fe, 1);
        int a = fe_ring_desc_get(r);

        r->desc[a] = desc(area(r, a), 2048, 0, 0);
        return rx_bad(x, a);
}

/* A 2 MiB region whose memfd is sealed against writes: vhostd can only map it read-only. */
static int add_sealed_region(struct rctx *x)
{
        struct fe_region *reg = &x->extra.regions[x->extra.nregions];
        int fd = memfd_create(FE_MEM_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING), r;
        void *p;

        if (fd < 0)
                return -errno;
        if (ftruncate(fd, SEALED_SIZE) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        p = mmap(NULL, SEALED_SIZE, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                r = -errno;
                close(fd);
                return r;
        }
        *reg = (struct fe_region){.fd = fd,
                                  .owns_fd = true,
                                  .ptr = p,
                                  .gpa = SEALED_GPA,
                                  .size = SEALED_SIZE,
                                  .uva = SEALED_UVA,
                                  .mmap_offset = 0};
        return fe_add_mem_reg(x->fe, &x->extra, x->extra.nregions++);
}

static int r_rx_sealed(struct rctx *x)
{
        struct fe_ring *r = fe_rx(x->fe, 1);
        int a, ret = add_sealed_region(x);

        if (ret < 0)
                return ret;
        a = fe_ring_desc_get(r);
        r->desc[a] = desc(SEALED_GPA + 4096, 2048, VRING_DESC_F_WRITE, 0);
        return rx_bad(x, a);
}

/* Moves queue pair 1's tx ring into a region of its own, checks it echoes, then removes the region under it. */
static int r_removed_region(struct rctx *x)
{
        struct fe_ring nr, *old = fe_tx(x->fe, 1);
        unsigned base;
        int idx, r;

        idx = fe_mem_add_region(&x->extra, SPARE_GPA, 8ULL << 20, 0);
        if (idx < 0)
                return idx;
        x->extra.regions[idx].uva = SPARE_UVA;
        if ((r = fe_add_mem_reg(x->fe, &x->extra, (unsigned)idx)) < 0 || (r = fe_get_vring_base(x->fe, 3, &base)) < 0)
                return r;
        r = fe_ring_init_layout(&nr, &x->extra, 3, 256, 2048, idx, idx, old->packed ? FE_PACKED : FE_SPLIT);
        if (r < 0)
                return r;
        nr.event_idx = old->event_idx;
        nr.hdr_len = old->hdr_len;
        fe_ring_done(old);
        *old = nr;
        if ((r = fe_set_vring_err(x->fe, 3, old->err_fd)) < 0 || (r = fe_ring_configure(x->fe, old)) < 0 ||
            (r = fe_set_vring_enable(x->fe, 3, true)) < 0)
                return r;
        /* Valid traffic through the moved ring first (the rx ring was left empty: give it buffers). */
        x->f1->rx_budget += 64;
        flow_post_rx(x->f1);
        fe_ring_kick(x->f1->rx);
        x->f1->tx = old;
        x->f1->limit = x->f1->send_seq + 64;
        if (flows_run(&x->f1, 1, 5000) < 0)
                return -EIO;
        /* Frames in flight, then the region goes away under the ring. */
        for (int i = 0; i < 8; i++) {
                uint8_t frame[300];
                fe_frame_build(frame, sizeof(frame), 5000000 + i, NULL, NULL);
                (void)fe_ring_post_tx(old, frame, sizeof(frame), NULL, NULL);
        }
        fe_ring_kick(old);
        if ((r = fe_rem_mem_reg(x->fe, &x->extra, (unsigned)idx)) < 0)
                return r;
        for (int i = 0; i < 8; i++) {
                uint8_t frame[300];
                fe_frame_build(frame, sizeof(frame), 6000000 + i, NULL, NULL);
                (void)fe_ring_post_tx(old, frame, sizeof(frame), NULL, NULL);
        }
        return fe_ring_kick(old);
}

/* ---- packed rings: crafted with fe_ring_post_raw() on queue pair 1 ---- */

#define PNEXT VRING_DESC_F_NEXT
#define PIND VRING_DESC_F_INDIRECT
#define PLIE_WRAP (VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED) /* the other lap's bits */

static struct vring_packed_desc pdesc(uint64_t addr, uint32_t len, uint16_t id, uint16_t flags)
{
        return (struct vring_packed_desc){.addr = addr, .len = len, .id = id, .flags = flags};
}

/* Make @n crafted descriptors available on queue pair 1's tx ring and kick. */
static int ptx_bad(struct rctx *x, const struct vring_packed_desc *d, unsigned n)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        int s = fe_ring_post_raw(r, d, n);

        return s < 0 ? s : fe_ring_kick(r);
}

/* A buffer id no chain is using (queue pair 1's tx ring was reaped), and its data area. */
static uint16_t pid(struct rctx *x)
{
        return fe_tx(x->fe, 1)->free_head;
}

static uint64_t parea(struct rctx *x)
{
        return area(fe_tx(x->fe, 1), pid(x));
}

static int p_id_range(struct rctx *x)
{
        struct vring_packed_desc d = pdesc(parea(x), 64, (uint16_t)(fe_tx(x->fe, 1)->num + 5), 0);

        return ptx_bad(x, &d, 1);
}

/*
 * Two chains of one descriptor with the same id, made available together: the second pop finds it in flight. The
 * first is valid and may be sent: a test frame, which the next connection counts as stale.
 */
static int p_id_reused(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        uint8_t *p = fe_ring_area(r, pid(x), NULL);
        struct vring_packed_desc d[2] = {pdesc(parea(x), 72, pid(x), 0), pdesc(parea(x), 72, pid(x), 0)};

        memset(p, 0, r->hdr_len);
        fe_frame_build(p + r->hdr_len, 72 - r->hdr_len, 8000000, NULL, NULL);

        return ptx_bad(x, d, 2);
}

/* Every slot of the ring in one chain, the last one still with NEXT. */
static int p_chain_longer(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        static struct vring_packed_desc d[VIRTQ_MAX_SIZE];

        for (unsigned i = 0; i < r->num; i++)
                d[i] = pdesc(parea(x), 16, pid(x), PNEXT);
        return ptx_bad(x, d, r->num);
}

static int p_next_other_lap(struct rctx *x)
{
        struct vring_packed_desc d[2] = {pdesc(parea(x), 12, pid(x), PNEXT),
                                         pdesc(parea(x) + 12, 64, pid(x), PLIE_WRAP)};

        return ptx_bad(x, d, 2);
}

static int p_next_looks_used(struct rctx *x)
{
        /* AVAIL stays right, USED flipped: both equal the driver's wrap, what a used descriptor looks like. */
        struct vring_packed_desc d[2] = {pdesc(parea(x), 12, pid(x), PNEXT),
                                         pdesc(parea(x) + 12, 64, pid(x), VRING_PACKED_DESC_F_USED)};

        return ptx_bad(x, d, 2);
}

/* A chain over the end of the ring whose slot 0 keeps the lap it started in (the driver forgot to flip). */
static int p_wrap_not_flipped(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        uint8_t frame[60];
        int64_t end = fe_now_ms() + 3000;

        fe_frame_build(frame, sizeof(frame), 7000000, NULL, NULL);
        while (r->avail_idx != r->num - 1) {
                if (fe_ring_post_tx(r, frame, sizeof(frame), NULL, NULL) < 0) {
                        fe_ring_kick(r);
                        if (fe_ring_wait(r, 1, 1000) < 0 || fe_now_ms() > end)
                                return -ETIMEDOUT;
                        (void)fe_ring_reap(r);
                }
        }
        fe_ring_kick(r);
        while (r->num_free != r->num && fe_now_ms() < end)
                if (fe_ring_wait(r, 1, 1000) > 0)
                        (void)fe_ring_reap(r);
        {
                struct vring_packed_desc d[2] = {pdesc(parea(x), 12, pid(x), PNEXT),
                                                 pdesc(parea(x) + 12, 64, pid(x), PLIE_WRAP)};

                return ptx_bad(x, d, 2);
        }
}

static int p_nested_indirect(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        int a = pid(x), b = r->next[a];
        struct vring_packed_desc *ta = (struct vring_packed_desc *)ind_ptr(r, a);
        struct vring_packed_desc *tb = (struct vring_packed_desc *)ind_ptr(r, b);
        struct vring_packed_desc d = pdesc(ind_table(r, a), 16, (uint16_t)a, PIND);

        tb[0] = (struct vring_packed_desc){htole64(area(r, b)), htole32(100), 0, 0};
        ta[0] = (struct vring_packed_desc){htole64(ind_table(r, b)), htole32(16), 0, htole16(PIND)};
        return ptx_bad(x, &d, 1);
}

/* An indirect descriptor of @len bytes at @addr; the head's table holds two valid descriptors. */
static int p_indirect(struct rctx *x, uint64_t addr, uint32_t len, uint16_t flags)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        struct vring_packed_desc *t = (struct vring_packed_desc *)ind_ptr(r, pid(x));
        struct vring_packed_desc d[2] = {pdesc(addr, len, pid(x), PIND | flags), pdesc(parea(x), 64, pid(x), 0)};

        t[0] = (struct vring_packed_desc){htole64(parea(x)), htole32(12), 0, 0};
        t[1] = (struct vring_packed_desc){htole64(parea(x) + 12), htole32(88), 0, 0};
        return ptx_bad(x, d, flags & PNEXT ? 2 : 1);
}

static int p_indirect_next(struct rctx *x)
{
        return p_indirect(x, ind_table(fe_tx(x->fe, 1), pid(x)), 32, PNEXT);
}

static int p_indirect_len0(struct rctx *x)
{
        return p_indirect(x, ind_table(fe_tx(x->fe, 1), pid(x)), 0, 0);
}

static int p_indirect_len24(struct rctx *x)
{
        return p_indirect(x, ind_table(fe_tx(x->fe, 1), pid(x)), 24, 0);
}

static int p_indirect_too_big(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);

        return p_indirect(x, ind_table(r, pid(x)), (r->num + 1) * 16u, 0);
}

static int p_indirect_outside(struct rctx *x)
{
        return p_indirect(x, 0x7000000000000ULL, 32, 0);
}

static int p_indirect_in_chain(struct rctx *x)
{
        struct fe_ring *r = fe_tx(x->fe, 1);
        struct vring_packed_desc d[2] = {pdesc(parea(x), 12, pid(x), PNEXT),
                                         pdesc(ind_table(r, pid(x)), 16, pid(x), PIND)};

        return ptx_bad(x, d, 2);
}

static int p_bad_addr(struct rctx *x)
{
        struct vring_packed_desc d = pdesc(0x7000000000000ULL, 64, pid(x), 0);

        return ptx_bad(x, &d, 1);
}

static int p_huge_len(struct rctx *x)
{
        struct vring_packed_desc d = pdesc(parea(x), 0xfffffff0u, pid(x), 0);

        return ptx_bad(x, &d, 1);
}

static int p_rx_readable(struct rctx *x)
{
        struct fe_ring *rx = fe_rx(x->fe, 1);
        struct vring_packed_desc d = pdesc(area(rx, rx->free_head), 2048, rx->free_head, 0);
        int s = fe_ring_post_raw(rx, &d, 1);

        if (s < 0)
                return s;
        fe_ring_kick(rx);
        return rx_need_buffer(x);
}

struct ring_case {
        const char *name;
        unsigned vring;
        int (*inject)(struct rctx *x);
        const char *reason; /* expected in broken_reason and in the log */
        bool packed;
};

static const struct ring_case ring_cases[] = {
        {"tx descriptor loop", 3, r_loop, "loop"},
        {"tx address outside guest memory", 3, r_bad_addr, "outside"},
        {"tx length 0xfffffff0", 3, r_huge_len, "outside"},
        {"tx nested indirect table", 3, r_nested_indirect, "nested"},
        {"tx indirect length 24", 3, r_indirect_len, "multiple of 16"},
        {"tx head >= ring size", 3, r_head_range, "head"},
        {"tx avail index jump", 3, r_avail_jump, "avail index"},
        {"tx next >= ring size", 3, r_next_range, "next index"},
        {"tx chain with a writable descriptor", 3, r_tx_writable, "writable"},
        {"rx chain with a readable descriptor", 2, r_rx_readable, "writable"},
        {"rx buffer in a write-sealed region", 2, r_rx_sealed, "writable"},
        {"tx ring in a region then removed", 3, r_removed_region, ""},
        {"packed tx buffer id >= ring size", 3, p_id_range, ">= ring size", true},
        {"packed tx buffer id reused while in flight", 3, p_id_reused, "is already in use", true},
        {"packed tx chain longer than the ring", 3, p_chain_longer, "which is not available", true},
        {"packed tx chain into a slot of the other lap", 3, p_next_other_lap, "which is not available", true},
        {"packed tx chain into a slot with AVAIL and USED set", 3, p_next_looks_used, "which is not available", true},
        {"packed tx chain past the ring's end without flipping the wrap", 3, p_wrap_not_flipped,
         "continues into slot 0, which is not available", true},
        {"packed tx nested indirect table", 3, p_nested_indirect, "nested indirect", true},
        {"packed tx indirect descriptor with NEXT", 3, p_indirect_next, "also has NEXT", true},
        {"packed tx indirect descriptor inside a chain", 3, p_indirect_in_chain, "inside a chain", true},
        {"packed tx indirect table of 0 bytes", 3, p_indirect_len0, "length 0 is not a multiple of 16", true},
        {"packed tx indirect table of 24 bytes", 3, p_indirect_len24, "length 24 is not a multiple of 16", true},
        {"packed tx indirect table larger than the ring", 3, p_indirect_too_big, "exceeds queue size", true},
        {"packed tx indirect table outside guest memory", 3, p_indirect_outside, "is outside guest memory", true},
        {"packed tx address outside guest memory", 3, p_bad_addr, "is outside guest memory", true},
        {"packed tx length 0xfffffff0", 3, p_huge_len, "is outside guest memory", true},
        {"packed rx chain with a readable descriptor", 2, p_rx_readable, "not a writable buffer", true},
        {"packed tx ring in a region then removed", 3, r_removed_region, "", true},
};

/* Connection with queue pair 0 echoing on a thread and queue pair 1 echoing @n frames, its rx ring then empty. */
static int ring_setup(struct rctx *x, struct flow *f0, struct flow *f1, struct bg *bg, bool packed)
{
        struct fe_setup_opts o = {.queue_pairs = 2,
                                  .no_fill_rx = true,
                                  .features = FE_FEATURES_DEFAULT | (packed ? BIT_ULL(VIRTIO_F_RING_PACKED) : 0)};
        int r;

        struct vhostd *v = x->v;

        memset(x, 0, sizeof(*x));
        x->v = v;
        fe_mem_init(&x->extra);
        r = fe_connect(x->v->sock, 5000, &x->fe);
        CHECK(r == 0, "connect: %s", strerror(-r));
        r = fe_setup_ex(x->fe, &o);
        CHECK(r == 0, "fe_setup_ex: %s", strerror(-r));
        CHECK(fe_tx(x->fe, 1)->packed == packed, "the %s layout was not negotiated", packed ? "packed" : "split");
        flow_init(f0, x->fe, 0, 0xabc, 0);
        f0->rx_custom = true;
        f0->rx->rx_buf_size = 0;
        flow_post_rx(f0);
        fe_ring_kick(f0->rx);
        flow_init(f1, x->fe, 1, 0xdef, 200);
        f1->rx_custom = true;
        f1->rx->rx_buf_size = 0;
        f1->rx_budget = 200; /* the rx ring is empty once the valid frames came back */
        flow_post_rx(f1);
        fe_ring_kick(f1->rx);
        x->f1 = f1;
        r = bg_start(bg, f0);
        CHECK(r == 0, "pthread_create: %s", strerror(-r));
        return 0;
}

static int ring_case_run(struct vhostd *v, const struct pstate *base, const struct ring_case *c)
{
        static struct flow f0, f1;
        static char js[16384];
        struct rctx x = {.v = v};
        struct vstat s[4];
        struct bg bg;
        struct pstate now;
        long off = file_size(v->log);
        struct fe_ring *target;
        char line[64];
        int r, ret = -1;
        bool bg_running = false;

        x.v = v;
        if (ring_setup(&x, &f0, &f1, &bg, c->packed) < 0)
                goto out;
        x.v = v;
        bg_running = true;
        /* Queue pair 1: valid frames at full rate first. */
        if (flows_run(&x.f1, 1, 5000) < 0)
                goto out;
        (void)fe_ring_reap(f1.tx);
        r = c->inject(&x);
        if (r < 0) {
                printf("  FAIL: injecting: %s\n", strerror(-r));
                goto out;
        }
        target = &x.fe->rings[c->vring];
        {
                struct pollfd p = {.fd = target->err_fd, .events = POLLIN};
                if (poll(&p, 1, 3000) <= 0 || fe_ring_err_pending(target) <= 0) {
                        printf("  FAIL: the err eventfd of vring %u did not fire within 3 s\n", c->vring);
                        goto fail_state;
                }
        }
        snprintf(line, sizeof(line), "vring %u is broken", c->vring);
        /*
         * One line with both: the control loop logs a broken vring after the front-end saw its err eventfd, and
         * may log an earlier case's after this case began (then a separate search found that line, and failed).
         */
        if (!log_wait_line(v->log, off, line, c->reason, 2000)) {
                printf("  FAIL: no \"%s\" with \"%s\" in the log\n", line, c->reason);
                goto out;
        }
fail_state:
        r = vstats(v, s, 4, js, sizeof(js));
        if (r < 0) {
                printf("  FAIL: control socket: %s\n", strerror(-r));
                goto out;
        }
        for (unsigned i = 0; i < 4; i++) {
                bool want = i == c->vring;
                if (s[i].broken != want || (want && (!s[i].reason[0] || !strstr(s[i].reason, c->reason)))) {
                        printf("  FAIL: vring %u: broken=%s reason \"%s\"; expected broken=%s%s%s\n", i,
                               s[i].broken ? "true" : "false", s[i].reason, want ? "true" : "false",
                               want ? " with a reason containing " : "", want ? c->reason : "");
                        goto out;
                }
        }
        printf("  vring %u broken: %s\n", c->vring, s[c->vring].reason);
        if (!bg_flowing(&bg, 2000, 5000)) {
                printf("  FAIL: queue pair 0 stopped echoing after vring %u broke\n", c->vring);
                goto out;
        }
        bg_running = false;
        if (bg_stop(&bg) < 0)
                goto out;
        r = vstats(v, s, 4, js, sizeof(js));
        if (r < 0 || s[1].frames != f0.send_seq || s[0].frames != f0.recv_seq + f0.stale || s[1].bytes != f0.tx_bytes ||
            s[0].bytes != f0.rx_bytes + f0.stale_bytes || s[0].drops || s[1].drops) {
                printf("  FAIL: queue pair 0 counters: sent %u received %u (+%llu stale); vhostd tx %llu rx %llu "
                       "drops %llu/%llu\n",
                       f0.send_seq, f0.recv_seq, (unsigned long long)f0.stale, (unsigned long long)s[1].frames,
                       (unsigned long long)s[0].frames, (unsigned long long)s[1].drops, (unsigned long long)s[0].drops);
                goto out;
        }
        ret = 0;
out:
        if (bg_running && bg_stop(&bg) < 0)
                ret = -1;
        fe_free(x.fe);
        fe_mem_done(&x.extra);
        r = pstate_wait(v->pid, base, 3000, &now);
        if (r < 0) {
                printf("  FAIL: not back to baseline: fds %d (was %d), threads %d (was %d), mappings %d (was %d)\n",
                       now.fds, base->fds, now.threads, base->threads, now.maps, base->maps);
                ret = -1;
        }
        if (!vhostd_alive(v)) {
                printf("  FAIL: vhostd died\n");
                ret = -1;
        }
        return ret;
}

/* The used ring may not live in memory vhostd cannot write: SET_VRING_ADDR is refused, the rest goes on. */
static int used_ring_readonly(struct vhostd *v, const struct pstate *base)
{
        static struct flow f0, f1;
        struct rctx x = {.v = v};
        struct bg bg;
        struct pstate now;
        struct fe_ring *rx;
        long off = file_size(v->log);
        unsigned b;
        int r, ret = -1;
        bool bg_running = false;

        if (ring_setup(&x, &f0, &f1, &bg, false) < 0)
                goto out;
        bg_running = true;
        if (flows_run(&x.f1, 1, 5000) < 0)
                goto out;
        r = add_sealed_region(&x);
        if (r < 0) {
                printf("  FAIL: sealed region: %s\n", strerror(-r));
                goto out;
        }
        rx = fe_rx(x.fe, 1);
        if ((r = fe_get_vring_base(x.fe, 2, &b)) < 0) {
                printf("  FAIL: GET_VRING_BASE: %s\n", strerror(-r));
                goto out;
        }
        r = fe_set_vring_addr(x.fe, 2, fe_mem_uva(x.fe->mem, rx->desc_gpa), fe_mem_uva(x.fe->mem, rx->avail_gpa),
                              SEALED_UVA, 0);
        if (r != -EREMOTEIO) {
                printf("  FAIL: SET_VRING_ADDR with the used ring in a read-only region: %s (expected a refusal)\n",
                       r ? strerror(-r) : "accepted");
                goto out;
        }
        if (!file_contains(v->log, off, "used ring is not in writable guest memory")) {
                printf("  FAIL: no log line about the read-only used ring\n");
                goto out;
        }
        if (!bg_flowing(&bg, 2000, 5000)) {
                printf("  FAIL: queue pair 0 stopped echoing\n");
                goto out;
        }
        /* The connection is still usable. */
        if ((r = fe_sync(x.fe)) < 0) {
                printf("  FAIL: connection unusable after the refusal: %s\n", strerror(-r));
                goto out;
        }
        bg_running = false;
        if (bg_stop(&bg) < 0)
                goto out;
        ret = 0;
out:
        if (bg_running && bg_stop(&bg) < 0)
                ret = -1;
        fe_free(x.fe);
        fe_mem_done(&x.extra);
        if (pstate_wait(v->pid, base, 3000, &now) < 0) {
                printf("  FAIL: not back to baseline: fds %d/%d threads %d/%d maps %d/%d\n", now.fds, base->fds,
                       now.threads, base->threads, now.maps, base->maps);
                ret = -1;
        }
        return ret;
}

int main(void)
{
        unsigned pass = 0, fail = 0;
        struct vhostd v;
        struct pstate base;
        int64_t t0 = fe_now_ms();

        if (harness_begin("ho") < 0)
                return 1;
        if (vhostd_start(&v, "ho", 2, NULL) < 0) {
                printf("0 passed, 1 failed\n");
                return 1;
        }
        /* The baseline is taken after one full connection: lazily created state (libev, the allocator's
         * arenas for the worker threads) does not count as a leak. */
        if (good_echo(&v, 100, NULL) == 0) {
                /* Settled: the connection's teardown ends with its socket, after its mappings go. */
                fe_wait_maps(v.pid, FE_MEM_NAME, 0, 5000);
                usleep(200000);
                pstate_get(v.pid, &base);
        } else
                base.fds = -1;
        if (base.fds <= 0 || base.maps != 0) {
                printf("FAIL: no baseline\n0 passed, 1 failed\n");
                vhostd_stop(&v);
                return 1;
        }
        printf("baseline: %d fds, %d threads, %d guest RAM mappings\n", base.fds, base.threads, base.maps);
        for (size_t i = 0; i < sizeof(msg_cases) / sizeof(msg_cases[0]) && vhostd_alive(&v); i++) {
                int r = msg_case_run(&v, &base, &msg_cases[i]);
                printf("%s message: %s\n", r == 0 ? "PASS" : "FAIL", msg_cases[i].name);
                r == 0 ? pass++ : fail++;
        }
        for (size_t i = 0; i < sizeof(ring_cases) / sizeof(ring_cases[0]) && vhostd_alive(&v); i++) {
                long off = file_size(v.log);
                int r = ring_case_run(&v, &base, &ring_cases[i]);
                printf("%s ring: %s\n", r == 0 ? "PASS" : "FAIL", ring_cases[i].name);
                if (r == 0) {
                        pass++;
                } else {
                        fail++;
                        if (file_size(v.log) > off)
                                print_log_tail(v.log, 12);
                }
        }
        if (vhostd_alive(&v)) {
                int r = used_ring_readonly(&v, &base);
                printf("%s ring: used ring in a write-sealed region is refused\n", r == 0 ? "PASS" : "FAIL");
                r == 0 ? pass++ : fail++;
        }
        if (vhostd_alive(&v)) {
                int r = good_echo(&v, 1000, NULL);
                printf("%s a good front-end still echoes at the end\n", r == 0 ? "PASS" : "FAIL");
                r == 0 ? pass++ : fail++;
        }
        if (vhostd_stop(&v) < 0)
                fail++;
        printf("done in %lld ms\n", (long long)(fe_now_ms() - t0));
        return harness_finish(pass, fail);
}
