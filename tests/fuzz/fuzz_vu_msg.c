/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the vhost-user control path: the incremental reader (vu_dev_read), the dispatcher's
 * checks and every handler, on a real device (loopback port, 2 queue pairs, real workers):
 *   make fuzz && build-fuzz/fuzz_vu_msg tests/fuzz/corpus/vu_msg
 * or by hand: clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE -pthread
 *   tests/fuzz/fuzz_vu_msg.c with vring/, backends/, config/ and daemon/ sources except daemon/main.c and
 *   daemon/vhostctl.c, -lev -lxdp -lbpf.
 *
 * The input is the byte stream a front-end writes: vhost-user messages back to back (12-byte header, then
 * hdr.size payload bytes, or what is left). Each message is written to the socket on its own and read by
 * vu_dev_read(); the last one may be truncated, and the stream ends with EOF. File descriptors go with a
 * message the way QEMU sends them, decided from its own bytes:
 *   SET_MEM_TABLE   min(nregions, 8) memfds of 1 MiB (the i-th region gets memfd i)
 *   ADD_MEM_REG     one memfd (memfd 0)
 *   SET_VRING_KICK/CALL/ERR   one eventfd unless the NOFD bit (0x100) is set
 *   any request with flags bit 7 (ignored by the protocol): one more eventfd, to get fd counts wrong
 * Memfds are zeroed for every input; a fresh device, port and socketpair are made for every input.
 *
 * Checks: no crash, no sanitizer report, vu_dev_read returns 0 or a negative errno, every reply is well
 * formed (REPLY flag, version 1, payload no larger than the union), and no fd leaks once the device is freed.
 * VHOSTD_FUZZ_LOG=1 shows the daemon's log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/port.h"
#include "daemon/vu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NMEMFD VU_MAX_FDS
#define MEMFD_SIZE (1u << 20)

static struct ev_loop *loop;
static int memfds[NMEMFD];
static bool memfd_dirty;
static int fds_baseline = -1;

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        if (!d)
                abort();
        /* Only the kinds of fd the daemon handles: libFuzzer opens pipes and /dev/null of its own as it goes. */
        while ((e = readdir(d))) {
                char path[300], target[256];
                ssize_t len;

                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
                len = readlink(path, target, sizeof(target) - 1);
                if (len < 0)
                        continue;
                target[len] = 0;
                if (!strncmp(target, "pipe:", 5) || !strcmp(target, "/dev/null") || !strncmp(target, "/proc/", 6) ||
                    !strncmp(target, "/tmp/", 5))
                        continue;
                n++;
        }
        closedir(d);
        return n;
}

static void dump_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        char path[300], target[256];

        while (d && (e = readdir(d))) {
                ssize_t n;
                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
                n = readlink(path, target, sizeof(target) - 1);
                target[n > 0 ? n : 0] = 0;
                fprintf(stderr, "fd %s -> %s\n", e->d_name, target);
        }
        if (d)
                closedir(d);
}

static void reset_memfds(void)
{
        if (!memfd_dirty)
                return;
        for (unsigned i = 0; i < NMEMFD; i++)
                if (ftruncate(memfds[i], 0) < 0 || ftruncate(memfds[i], MEMFD_SIZE) < 0)
                        abort();
        memfd_dirty = false;
}

/* Reads and checks every reply waiting on the front-end side (a reply may arrive split over two reads). */
static uint8_t rx[1 << 16];
static size_t rx_have;

static void drain(int peer)
{
        for (;;) {
                ssize_t n = recv(peer, rx + rx_have, sizeof(rx) - rx_have, MSG_DONTWAIT);
                size_t off = 0;

                if (n <= 0)
                        return;
                rx_have += (size_t)n;
                while (rx_have - off >= sizeof(struct vu_hdr)) {
                        struct vu_hdr h;
                        memcpy(&h, rx + off, sizeof(h));
                        if (h.flags != (VU_VERSION | VU_FLAG_REPLY) || h.size > VU_PAYLOAD_MAX)
                                abort();
                        if (rx_have - off < sizeof(h) + h.size)
                                break;
                        off += sizeof(h) + h.size;
                }
                memmove(rx, rx + off, rx_have - off);
                rx_have -= off;
        }
}

static unsigned fds_for(const uint8_t *msg, size_t len, int *fds)
{
        struct vu_hdr h;
        const uint8_t *p = msg + sizeof(h);
        size_t plen = len - sizeof(h);
        unsigned n = 0;
        uint64_t u64 = 0;

        memcpy(&h, msg, sizeof(h));
        memcpy(&u64, p, plen < 8 ? plen : 8);
        switch (h.request) {
        case VU_SET_MEM_TABLE: {
                uint32_t nr = (uint32_t)u64;
                for (; n < nr && n < NMEMFD; n++)
                        fds[n] = memfds[n];
                memfd_dirty |= n > 0;
                break;
        }
        case VU_ADD_MEM_REG:
                fds[n++] = memfds[0];
                memfd_dirty = true;
                break;
        case VU_SET_VRING_KICK:
        case VU_SET_VRING_CALL:
        case VU_SET_VRING_ERR:
                if (!(u64 & VU_VRING_NOFD_MASK))
                        fds[n++] = -1; /* a fresh eventfd */
                break;
        }
        if ((h.flags & 0x80) && n < VU_MAX_FDS)
                fds[n++] = -1;
        return n;
}

/* Sends one message (with its fds) from the front-end side; false when the device side is gone. */
static bool send_msg(int peer, struct vu_dev *dev, const uint8_t *msg, size_t len, bool *dead)
{
        int fds[VU_MAX_FDS], own[VU_MAX_FDS];
        unsigned nfds = len >= sizeof(struct vu_hdr) ? fds_for(msg, len, fds) : 0;
        union {
                char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
                struct cmsghdr align;
        } ctl;
        size_t sent = 0;
        bool ok = true;

        for (unsigned i = 0; i < nfds; i++) {
                own[i] = -1;
                if (fds[i] < 0) {
                        fds[i] = own[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                        if (fds[i] < 0)
                                abort();
                }
        }
        while (sent < len && ok) {
                struct iovec iov = {(void *)(msg + sent), len - sent};
                struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
                ssize_t n;

                if (sent == 0 && nfds) {
                        mh.msg_control = ctl.buf;
                        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
                }
                n = sendmsg(peer, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n > 0) {
                        sent += (size_t)n;
                        continue;
                }
                if (n < 0 && errno != EAGAIN)
                        ok = false; /* the device closed its end */
                /* Full: let the device read (it never blocks), then go on. */
                int r = vu_dev_read(dev);
                if (r > 0)
                        abort();
                drain(peer);
                if (r < 0) {
                        *dead = true;
                        ok = false;
                }
        }
        for (unsigned i = 0; i < nfds; i++)
                if (own[i] >= 0)
                        close(own[i]);
        return ok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        if (!getenv("VHOSTD_FUZZ_LOG"))
                log_set_level(0);
        loop = ev_loop_new(EVFLAG_AUTO);
        if (!loop)
                abort();
        for (unsigned i = 0; i < NMEMFD; i++) {
                memfds[i] = memfd_create("fuzz-ram", MFD_CLOEXEC);
                if (memfds[i] < 0 || ftruncate(memfds[i], MEMFD_SIZE) < 0)
                        abort();
        }
        /* One empty run so that whatever libev and the libraries open once is in the baseline. */
        LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
        fds_baseline = count_fds();
        return 0;
}

/* The harness calls vu_dev_read() itself and frees the device; the loop never runs its watchers. */
static void closed_cb(void *owner)
{
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct port_cfg cfg;
        struct port port = {0};
        struct vu_dev *dev;
        size_t pos = 0;
        bool dead = false;
        int sv[2], r;

        reset_memfds();
        rx_have = 0;
        config_port_defaults(&cfg);
        cfg.queues = 2;
        port.cfg = &cfg;
        port.listen_fd = -1;
        port.loop = loop;
        memcpy(port.name, "port fuzz", 10);
        if (backend_loopback_ops.open(&cfg.backend, cfg.queues, &port.be) < 0)
                abort();
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        struct vu_dev_params params = {.name = port.name,
                                       .cfg = &cfg,
                                       .be = port.be,
                                       .loop = loop,
                                       .port_faults = &port.faults,
                                       .port_recoveries = &port.recoveries,
                                       .closed = closed_cb,
                                       .owner = &port};
        if (vu_dev_new(&params, sv[0], &dev) < 0)
                abort();
        port.dev = dev;

        while (pos < size && !dead) {
                size_t len = size - pos;

                if (len >= sizeof(struct vu_hdr)) {
                        struct vu_hdr h;
                        memcpy(&h, data + pos, sizeof(h));
                        if (h.size < len - sizeof(h))
                                len = sizeof(h) + h.size;
                }
                if (!send_msg(sv[1], dev, data + pos, len, &dead))
                        break;
                pos += len;
                r = vu_dev_read(dev);
                if (r > 0)
                        abort();
                drain(sv[1]);
                if (r < 0)
                        dead = true;
        }
        if (!dead) {
                /* EOF, possibly in the middle of a message: the reader must notice. */
                shutdown(sv[1], SHUT_WR);
                r = vu_dev_read(dev);
                if (r >= 0)
                        abort();
        }
        vu_dev_free(dev);
        close(sv[1]);
        port.be->ops->close(port.be);
        /* The kernel may release fds that were still in flight in the socket a little later (deferred fput). */
        for (int i = 0; i < 50 && fds_baseline >= 0 && count_fds() != fds_baseline; i++)
                usleep(10000);
        if (fds_baseline >= 0 && count_fds() != fds_baseline) {
                fprintf(stderr, "fd leak: %d open, %d expected\n", count_fds(), fds_baseline);
                dump_fds();
                abort();
        }
        return 0;
}
