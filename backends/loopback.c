// SPDX-License-Identifier: MIT
/*
 * loopback: what the guest sends on queue pair i comes back on its receive queue i. No host port;
 * kept for tests and for measuring the vhost-user side alone. One byte FIFO per queue pair, touched only
 * by that pair's worker, which reads it after each send (tx_feeds_rx): no fd, no system call. A record is [length u32]
 * [a zeroed virtio-net header slot][the frame], so a frame goes back into the guest with one copy, header
 * included; the FIFO is small enough to stay in the worker's cache while frames go round. The FIFOs live in one
 * memfd, so that an upgrade hands them, and the frames in them, to the next vhostd (each queue's head and tail are
 * written to its slot there when the port is handed over).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/iov.h"
#include "backends/virtio_net.h"

#define LO_FIFO_SIZE (1u << 18) /* a few of the largest frames; bursts of small ones stay cache-hot */
#define LO_HDR_SLOT 12          /* sizeof(struct virtio_net_hdr_mrg): room for either header */
#define LO_REC_HDR (4 + LO_HDR_SLOT)
#define LO_WRAP 0xffffffffu
#define LO_MAX_FRAME (65535 + BACKEND_ETH_OVERHEAD)

/* In the memfd, per queue: this, then the FIFO. head and tail are current only at a handover. */
struct lo_shared {
        uint64_t head, tail;
        uint32_t hdr_len, pad;
        uint8_t reserved[4096 - 24];
};
#define LO_QUEUE_BYTES (sizeof(struct lo_shared) + LO_FIFO_SIZE)

struct lo_queue {
        uint8_t *buf;
        uint64_t head, tail; /* byte counters: tail - head bytes in use */
        unsigned hdr_len;
};

struct lo_backend {
        struct backend base;
        int memfd;
        uint8_t *map;
        size_t map_len;
        struct lo_queue q[];
};

static size_t rec_size(size_t len)
{
        return (LO_REC_HDR + len + 7) & ~(size_t)7;
}

static void lo_close(struct backend *be)
{
        struct lo_backend *lo = (struct lo_backend *)be;

        if (!lo)
                return;
        if (lo->map)
                (void)munmap(lo->map, lo->map_len);
        if (lo->memfd >= 0)
                close(lo->memfd);
        free(lo);
}

static struct lo_shared *lo_slot(struct lo_backend *lo, unsigned q)
{
        return (struct lo_shared *)(lo->map + q * LO_QUEUE_BYTES);
}

/* Maps memfd (taken over, even on failure) as the FIFOs of nqueues queues. */
static int lo_map(unsigned nqueues, int memfd, struct lo_backend **ret)
{
        struct lo_backend *lo = calloc(1, sizeof(*lo) + nqueues * sizeof(struct lo_queue));
        struct stat st;

        if (!lo) {
                close(memfd);
                return -ENOMEM;
        }
        lo->base.ops = &backend_loopback_ops;
        lo->base.nqueues = nqueues;
        lo->memfd = memfd;
        lo->map_len = nqueues * LO_QUEUE_BYTES;
        if (fstat(memfd, &st) < 0 || (uint64_t)st.st_size != lo->map_len) {
                lo_close(&lo->base);
                return -EINVAL; /* not the FIFOs of this many queues */
        }
        lo->map = mmap(NULL, lo->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (lo->map == MAP_FAILED) {
                int r = -errno;
                lo->map = NULL;
                lo_close(&lo->base);
                return r;
        }
        for (unsigned i = 0; i < nqueues; i++) {
                lo->q[i].buf = (uint8_t *)lo_slot(lo, i) + sizeof(struct lo_shared);
                lo->q[i].hdr_len = sizeof(struct virtio_net_hdr_mrg);
        }
        *ret = lo;
        return 0;
}

static int lo_open(const struct backend_cfg *cfg, unsigned nqueues, struct backend **ret)
{
        int memfd = memfd_create("vhostd-loopback", MFD_CLOEXEC);
        struct lo_backend *lo;
        int r;

        if (memfd < 0)
                return -errno;
        if (ftruncate(memfd, (off_t)(nqueues * LO_QUEUE_BYTES)) < 0) {
                r = -errno;
                close(memfd);
                return r;
        }
        if ((r = lo_map(nqueues, memfd, &lo)) < 0)
                return r;
        *ret = &lo->base;
        return 0;
}

static int lo_handover_fds(struct backend *be, int *fds, unsigned max, uint64_t *notes, bool live)
{
        struct lo_backend *lo = (struct lo_backend *)be;

        if (live)
                return -EOPNOTSUPP; /* the FIFOs' indices live in this process */
        if (max < 1)
                return -E2BIG;
        for (unsigned i = 0; i < be->nqueues; i++) {
                struct lo_shared *sh = lo_slot(lo, i);
                sh->head = lo->q[i].head;
                sh->tail = lo->q[i].tail;
                sh->hdr_len = lo->q[i].hdr_len;
        }
        fds[0] = lo->memfd;
        return 1;
}

/* Whether every record between head and tail stays inside the FIFO and the bytes in use: checked once when the
 * FIFO comes from another process, so lo_rx_burst() need not check each frame. */
static bool records_fit(const struct lo_queue *q)
{
        uint64_t head = q->head;

        while (head != q->tail) {
                size_t pos = head % LO_FIFO_SIZE;
                uint32_t len;

                if (LO_FIFO_SIZE - pos < 4) {
                        head += LO_FIFO_SIZE - pos;
                        continue;
                }
                memcpy(&len, q->buf + pos, 4);
                if (len == LO_WRAP) {
                        head += LO_FIFO_SIZE - pos;
                        continue;
                }
                if (len > LO_MAX_FRAME || rec_size(len) > LO_FIFO_SIZE - pos || rec_size(len) > q->tail - head)
                        return false;
                head += rec_size(len);
        }
        return true;
}

static int lo_adopt(const struct backend_cfg *cfg, unsigned nqueues, const int *fds, unsigned nfds,
                    const uint64_t *notes, struct backend **ret)
{
        struct lo_backend *lo;
        int r;

        for (unsigned i = 1; i < nfds; i++)
                close(fds[i]);
        if (nfds != 1) {
                if (nfds)
                        close(fds[0]);
                return -EINVAL;
        }
        if ((r = lo_map(nqueues, fds[0], &lo)) < 0)
                return r;
        for (unsigned i = 0; i < nqueues; i++) {
                const struct lo_shared *sh = lo_slot(lo, i);
                uint64_t used = sh->tail - sh->head;

                /* What another process wrote: a FIFO whose counters do not add up is emptied, not trusted. */
                if (used > LO_FIFO_SIZE || sh->head % 8 || sh->tail % 8 || sh->hdr_len > LO_HDR_SLOT) {
                        lo_close(&lo->base);
                        return -EBADMSG;
                }
                lo->q[i].head = sh->head;
                lo->q[i].tail = sh->tail;
                lo->q[i].hdr_len = sh->hdr_len;
                if (!records_fit(&lo->q[i])) {
                        lo_close(&lo->base);
                        return -EBADMSG;
                }
        }
        *ret = &lo->base;
        return 0;
}

static uint64_t lo_features(const struct backend *be)
{
        return 0; /* frames never leave the host: no offloads to honour */
}

static unsigned lo_max_mtu(const struct backend *be)
{
        return backend_loopback_ops.mtu_ceiling;
}

static int lo_configure(struct backend *be, unsigned q, uint64_t acked, unsigned hdr_len)
{
        if (hdr_len > LO_HDR_SLOT)
                return -EINVAL;
        ((struct lo_backend *)be)->q[q].hdr_len = hdr_len;
        return 0;
}

static int lo_queue_fd(const struct backend *be, unsigned q)
{
        return -1; /* tx_feeds_rx: the worker knows when there is something to read */
}

static int lo_tx_burst(struct backend *be, unsigned qi, const struct frame *frames, unsigned n)
{
        struct lo_queue *q = &((struct lo_backend *)be)->q[qi];
        unsigned i;

        for (i = 0; i < n; i++) {
                size_t len = frames[i].len - q->hdr_len, need = rec_size(len);
                size_t pos = q->tail % LO_FIFO_SIZE, to_end = LO_FIFO_SIZE - pos;
                uint64_t used = q->tail - q->head;
                uint32_t len32 = (uint32_t)len;

                if (len > LO_MAX_FRAME) {
                        if (i == 0)
                                return -EMSGSIZE;
                        break;
                }
                if (need > to_end) { /* records never wrap: skip to the start */
                        if (used + to_end + need > LO_FIFO_SIZE)
                                break;
                        if (to_end >= 4)
                                memcpy(q->buf + pos, &(uint32_t){LO_WRAP}, 4);
                        q->tail += to_end;
                        pos = 0;
                } else if (used + need > LO_FIFO_SIZE) {
                        break;
                }
                memcpy(q->buf + pos, &len32, 4);
                memset(q->buf + pos + 4, 0, LO_HDR_SLOT);
                iov_to_buf(frames[i].iov, frames[i].iovcnt, q->hdr_len, q->buf + pos + LO_REC_HDR, len);
                q->tail += need;
        }
        return i ? (int)i : -ENOSPC; /* room comes back when lo_rx_burst() takes frames out */
}

static int lo_rx_burst(struct backend *be, unsigned qi, struct rx_sink *sink, unsigned budget)
{
        struct lo_queue *q = &((struct lo_backend *)be)->q[qi];
        unsigned done = 0;

        while (done < budget && q->head != q->tail) {
                size_t pos = q->head % LO_FIFO_SIZE;
                const struct iovec *iov;
                unsigned iovcnt;
                uint32_t len;
                int r;

                if (LO_FIFO_SIZE - pos < 4) {
                        q->head += LO_FIFO_SIZE - pos;
                        continue;
                }
                memcpy(&len, q->buf + pos, 4);
                if (len == LO_WRAP) {
                        q->head += LO_FIFO_SIZE - pos;
                        continue;
                }
                r = sink->reserve(sink, q->hdr_len + len, &iov, &iovcnt);
                if (r == -ENOBUFS || r == -EIO)
                        break;
                if (r == 0) { /* else -EMSGSIZE: too big for the guest, dropped and counted by the sink */
                        iov_from_buf(iov, iovcnt, 0, q->buf + pos + LO_REC_HDR - q->hdr_len, q->hdr_len + len);
                        sink->commit(sink, q->hdr_len + len);
                        done++;
                }
                q->head += rec_size(len);
        }
        return (int)done;
}

const struct backend_ops backend_loopback_ops = {
        .name = "loopback",
        .max_features = 0,
        .mtu_ceiling = 65535,
        .tx_feeds_rx = true,
        .open = lo_open,
        .close = lo_close,
        .features = lo_features,
        .max_mtu = lo_max_mtu,
        .configure = lo_configure,
        .queue_fd = lo_queue_fd,
        .tx_burst = lo_tx_burst,
        .rx_burst = lo_rx_burst,
        .handover_fds = lo_handover_fds,
        .adopt = lo_adopt,
};
