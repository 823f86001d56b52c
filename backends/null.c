// SPDX-License-Identifier: MIT
/*
 * null: a port for measuring the vhost-user path alone. What the guest sends is counted and discarded; toward
 * the guest, each queue pair generates UDP frames of frame_len bytes at `rate` frames/s (0: as fast as the guest
 * takes them). Paced by a timerfd; frames that fall due while the guest has no buffers are
 * dropped as a NIC would drop them, and reported as the port's drops (kernel_drops). The peer it stands beside is
 * dpdk-testpmd's net_null.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/iov.h"
#include "backends/virtio_net.h"

#define NULL_TICK_MIN_NS 50000ll    /* the timer never fires more often than this */
#define NULL_TICK_MAX_NS 10000000ll /* nor less often */
#define NULL_FRAMES_PER_TICK 32     /* what one tick should allow at the configured rate */
#define NULL_BACKLOG 1024           /* frames due and not taken beyond this are dropped (a NIC's ring) */

struct null_queue {
        int fd; /* timerfd (paced), or an eventfd kept readable (rate 0: as fast as the guest takes them) */
        unsigned hdr_len;
        int64_t start_ns; /* the generator's clock: frames due = rate * (now - start) */
        uint64_t generated, dropped;
};

struct null_backend {
        struct backend base;
        unsigned rate, frame_len;
        int64_t tick_ns;
        /* What every queue copies into the guest: a zeroed virtio-net header of the longest kind, then the
         * frame; a queue with the shorter header starts its copy a little later. */
        uint8_t wire[sizeof(struct virtio_net_hdr_mrg) + NULL_FRAME_MAX];
        struct null_queue q[];
};

static int64_t mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static uint16_t ip_checksum(const uint8_t *p, size_t len)
{
        uint32_t sum = 0;

        for (size_t i = 0; i + 1 < len; i += 2)
                sum += (uint32_t)(p[i] << 8 | p[i + 1]);
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t)~sum;
}

/* A UDP/IPv4 frame of len bytes from 02:00:00:00:00:01 (10.255.0.1) to 02:00:00:00:00:02 (10.255.0.2). */
static void build_frame(uint8_t *f, unsigned len)
{
        static const uint8_t eth[14] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00};
        unsigned ip_len = len - 14, udp_len = ip_len - 20;
        uint8_t *ip = f + 14, *udp = ip + 20;
        uint16_t sum;

        memset(f, 0, len);
        memcpy(f, eth, sizeof(eth));
        ip[0] = 0x45;
        ip[2] = (uint8_t)(ip_len >> 8);
        ip[3] = (uint8_t)ip_len;
        ip[8] = 64;
        ip[9] = 17;
        memcpy(ip + 12, (const uint8_t[]){10, 255, 0, 1, 10, 255, 0, 2}, 8);
        sum = ip_checksum(ip, 20);
        ip[10] = (uint8_t)(sum >> 8);
        ip[11] = (uint8_t)sum;
        udp[0] = 0x04; /* ports 1024 -> 1025; no UDP checksum (0 is allowed over IPv4) */
        udp[2] = 0x04;
        udp[3] = 0x01;
        udp[4] = (uint8_t)(udp_len >> 8);
        udp[5] = (uint8_t)udp_len;
        for (unsigned i = 8; i < udp_len; i++)
                udp[i] = (uint8_t)i;
}

static void null_close(struct backend *be)
{
        struct null_backend *nb = (struct null_backend *)be;

        if (!nb)
                return;
        for (unsigned i = 0; i < be->nqueues; i++)
                if (nb->q[i].fd >= 0)
                        close(nb->q[i].fd);
        free(nb);
}

static int queue_open(struct null_backend *nb, struct null_queue *q)
{
        q->hdr_len = sizeof(struct virtio_net_hdr_mrg);
        if (nb->rate == 0) {
                q->fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK); /* never read: always readable */
                return q->fd < 0 ? -errno : 0;
        }
        q->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (q->fd < 0)
                return -errno;
        struct itimerspec its = {
                .it_interval = {nb->tick_ns / 1000000000ll, nb->tick_ns % 1000000000ll},
                .it_value = {nb->tick_ns / 1000000000ll, nb->tick_ns % 1000000000ll},
        };
        return timerfd_settime(q->fd, 0, &its, NULL) < 0 ? -errno : 0;
}

static int null_open(const struct backend_cfg *cfg, unsigned nqueues, struct backend **ret)
{
        struct null_backend *nb = calloc(1, sizeof(*nb) + nqueues * sizeof(struct null_queue));
        int r = 0;

        if (!nb)
                return -ENOMEM;
        if (cfg->frame_len < NULL_FRAME_MIN || cfg->frame_len > NULL_FRAME_MAX) {
                free(nb);
                return -EINVAL;
        }
        nb->base.ops = &backend_null_ops;
        nb->base.nqueues = nqueues;
        nb->rate = cfg->rate;
        nb->frame_len = cfg->frame_len;
        if (nb->rate) {
                nb->tick_ns = NULL_FRAMES_PER_TICK * 1000000000ll / nb->rate;
                if (nb->tick_ns < NULL_TICK_MIN_NS)
                        nb->tick_ns = NULL_TICK_MIN_NS;
                if (nb->tick_ns > NULL_TICK_MAX_NS)
                        nb->tick_ns = NULL_TICK_MAX_NS;
        }
        build_frame(nb->wire + sizeof(struct virtio_net_hdr_mrg), nb->frame_len);
        for (unsigned i = 0; i < nqueues; i++)
                nb->q[i].fd = -1;
        for (unsigned i = 0; i < nqueues && !r; i++)
                r = queue_open(nb, &nb->q[i]);
        if (r < 0) {
                null_close(&nb->base);
                return r;
        }
        *ret = &nb->base;
        return 0;
}

static uint64_t null_features(const struct backend *be)
{
        return 0; /* generated frames carry no offload state; sent ones are discarded whatever they carry */
}

static unsigned null_max_mtu(const struct backend *be)
{
        return backend_null_ops.mtu_ceiling;
}

static int null_configure(struct backend *be, unsigned qi, uint64_t acked, unsigned hdr_len)
{
        struct null_queue *q = &((struct null_backend *)be)->q[qi];

        q->hdr_len = hdr_len;
        /* The generator starts at the first receive: nothing falls due before the guest's ring runs. */
        q->start_ns = 0;
        q->generated = 0;
        return 0;
}

static int null_queue_fd(const struct backend *be, unsigned q)
{
        return ((const struct null_backend *)be)->q[q].fd;
}

static int null_tx_burst(struct backend *be, unsigned q, const struct frame *frames, unsigned n)
{
        return (int)n;
}

/* Frames due now and not generated yet; what is too far behind is dropped, as a full NIC queue would. */
static uint64_t frames_due(struct null_backend *nb, struct null_queue *q)
{
        int64_t now = mono_ns(), elapsed;

        if (!q->start_ns)
                q->start_ns = now;
        elapsed = now - q->start_ns;
        uint64_t due = (uint64_t)((__int128)nb->rate * elapsed / 1000000000ll);
        if (due - q->generated > NULL_BACKLOG) {
                q->dropped += due - q->generated - NULL_BACKLOG;
                q->generated = due - NULL_BACKLOG;
        }
        return due - q->generated;
}

static int null_rx_burst(struct backend *be, unsigned qi, struct rx_sink *sink, unsigned budget)
{
        struct null_backend *nb = (struct null_backend *)be;
        struct null_queue *q = &nb->q[qi];
        const uint8_t *wire = nb->wire + sizeof(struct virtio_net_hdr_mrg) - q->hdr_len;
        size_t wire_len = q->hdr_len + nb->frame_len;
        uint64_t due = budget;
        unsigned done = 0;

        if (nb->rate) {
                uint64_t ticks;

                (void)!read(q->fd, &ticks, sizeof(ticks)); /* the timer's readability: looked at below */
                due = frames_due(nb, q);
                if (due > budget)
                        due = budget;
        }
        while (done < due) {
                const struct iovec *iov;
                unsigned iovcnt;
                int r = sink->reserve(sink, wire_len, &iov, &iovcnt);

                if (r == -ENOBUFS || r == -EIO)
                        break;
                if (r == 0) { /* else -EMSGSIZE: too big for the guest, dropped and counted by the sink */
                        iov_from_buf(iov, iovcnt, 0, wire, wire_len);
                        sink->commit(sink, wire_len);
                }
                q->generated++;
                done++;
        }
        /* Paced: returning less than the budget makes the worker wait for the next tick. */
        return (int)done;
}

static uint64_t null_kernel_drops(struct backend *be, unsigned qi)
{
        struct null_backend *nb = (struct null_backend *)be;

        if (nb->rate)
                (void)frames_due(nb, &nb->q[qi]);
        return nb->q[qi].dropped;
}

/* Nothing to carry over: the frames are made up, and the next process makes them up from where its clock is. */
static int null_handover_fds(struct backend *be, int *fds, unsigned max, uint64_t *notes, bool live)
{
        return 0;
}

static int null_adopt(const struct backend_cfg *cfg, unsigned nqueues, const int *fds, unsigned nfds,
                      const uint64_t *notes, struct backend **ret)
{
        for (unsigned i = 0; i < nfds; i++)
                close(fds[i]);
        return nfds ? -EINVAL : null_open(cfg, nqueues, ret);
}

const struct backend_ops backend_null_ops = {
        .name = "null",
        .max_features = 0,
        .mtu_ceiling = NULL_FRAME_MAX - BACKEND_ETH_OVERHEAD,
        .open = null_open,
        .close = null_close,
        .features = null_features,
        .max_mtu = null_max_mtu,
        .configure = null_configure,
        .queue_fd = null_queue_fd,
        .tx_burst = null_tx_burst,
        .rx_burst = null_rx_burst,
        .kernel_drops = null_kernel_drops,
        .handover_fds = null_handover_fds,
        .adopt = null_adopt,
};
