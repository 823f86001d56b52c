// SPDX-License-Identifier: MIT
/*
 * tap: one /dev/net/tun fd per queue pair (IFF_MULTI_QUEUE when more than one), with the guest's
 * virtio-net header carried as the tap's vnet header (TUNSETVNETHDRSZ), so frames move between guest
 * memory and the kernel with one writev/readv and no copy of ours. TUNSETOFFLOAD carries only what the
 * guest acked, so a guest that refused GSO never gets GSO frames.
 *
 * Sending (io_uring = yes, the default): a burst is one io_uring submission of linked writevs instead of a
 * system call per frame (the tap takes one frame per write and has no batched write). The kernel runs them
 * in order, at once (a tap write never waits), and a failed one cancels the rest, so what went is always a
 * prefix of the burst, as with writev. Each queue's ring may only do WRITEV (io_uring restrictions: seccomp
 * cannot see inside a ring). Where io_uring is unavailable (kernel.io_uring_disabled, a sandbox), frames are
 * written one by one and open() says so in backend.degraded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/iov.h"
#include "backends/virtio_net.h"

#define TAP_RING_ENTRIES 256 /* the largest burst (config burst_max) in one submission */

/* The largest frame a tap queue reads: a 64 KiB GSO frame with its Ethernet header, VLAN tag and our header. */
#define TAP_FRAME_MAX (sizeof(struct virtio_net_hdr_mrg) + 65535 + BACKEND_ETH_OVERHEAD)

struct tap_backend {
        struct backend base;
        char ifname[IF_NAMESIZE];
        bool ufo;    /* the kernel accepts TUN_F_UFO */
        short flags; /* TUNSETIFF flags, to reattach after the device was deleted */
        bool set_up; /* link_up=: also after re-creating the device */
        int hdr_len; /* what configure() set, reapplied on reattach */
        unsigned offloads;
        /* Per queue: a whole frame is read here first when the guest's buffers may be too small for it. */
        uint8_t **bounce;
        struct io_uring *rings; /* per queue; NULL: writev frame by frame */
        int fds[];
};

static int set_link(const char *ifname, unsigned mtu, bool up)
{
        struct ifreq ifr = {0};
        int r;

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        if (mtu) {
                ifr.ifr_mtu = (int)mtu;
                r = backend_link_ioctl(SIOCSIFMTU, &ifr);
                if (r < 0)
                        return r;
        }
        if (!up)
                return 0;
        r = backend_link_ioctl(SIOCGIFFLAGS, &ifr);
        if (r < 0 || (ifr.ifr_flags & IFF_UP))
                return r;
        ifr.ifr_flags |= IFF_UP;
        return backend_link_ioctl(SIOCSIFFLAGS, &ifr);
}

static void tap_close(struct backend *be)
{
        struct tap_backend *t = (struct tap_backend *)be;

        if (!t)
                return;
        for (unsigned i = 0; i < be->nqueues; i++)
                if (t->fds[i] >= 0)
                        close(t->fds[i]);
        for (unsigned i = 0; t->bounce && i < be->nqueues; i++)
                free(t->bounce[i]);
        free(t->bounce);
        for (unsigned i = 0; t->rings && i < be->nqueues; i++)
                if (t->rings[i].ring_fd >= 0)
                        io_uring_queue_exit(&t->rings[i]);
        free(t->rings);
        free(t);
}

/* A ring that can only run linked WRITEVs, created disabled and enabled once restricted. */
static int ring_open(struct io_uring *ring)
{
        struct io_uring_restriction res[] = {
                {.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV},
                {.opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = IOSQE_IO_LINK},
        };
        int r = io_uring_queue_init(TAP_RING_ENTRIES, ring, IORING_SETUP_R_DISABLED);

        if (r < 0) {
                ring->ring_fd = -1;
                return r;
        }
        /* Through io_uring_register(): Debian 12's liburing 2.3 declares the two helpers but does not export them. */
        if ((r = io_uring_register(ring->ring_fd, IORING_REGISTER_RESTRICTIONS, res, sizeof(res) / sizeof(res[0]))) <
                    0 ||
            (r = io_uring_register(ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) < 0) {
                io_uring_queue_exit(ring);
                ring->ring_fd = -1;
        }
        return r;
}

/* io_uring for every queue, or for none (then t->degraded says why). */
static void rings_open(struct tap_backend *t, unsigned nqueues)
{
        int r = -ENOMEM;

        t->rings = calloc(nqueues, sizeof(*t->rings));
        for (unsigned i = 0; t->rings && i < nqueues; i++)
                t->rings[i].ring_fd = -1;
        for (unsigned i = 0; t->rings && i < nqueues; i++)
                if ((r = ring_open(&t->rings[i])) < 0)
                        break;
        if (r >= 0)
                return;
        for (unsigned i = 0; t->rings && i < nqueues; i++)
                if (t->rings[i].ring_fd >= 0)
                        io_uring_queue_exit(&t->rings[i]);
        free(t->rings);
        t->rings = NULL;
        t->base.degraded =
                r == -ENOSYS || r == -EPERM || r == -EACCES
                        ? "io_uring is not available here (disabled or filtered): the tap sends frame by frame"
                        : "io_uring could not be set up: the tap sends frame by frame";
}

/* A port without queues yet: its fds are -1, its bounce buffers allocated. NULL: out of memory. */
static struct tap_backend *tap_alloc(unsigned nqueues)
{
        struct tap_backend *t = calloc(1, sizeof(*t) + nqueues * sizeof(int));

        if (!t)
                return NULL;
        t->base.ops = &backend_tap_ops;
        t->base.nqueues = nqueues;
        for (unsigned i = 0; i < nqueues; i++)
                t->fds[i] = -1;
        t->bounce = calloc(nqueues, sizeof(*t->bounce));
        for (unsigned i = 0; t->bounce && i < nqueues; i++)
                if (!(t->bounce[i] = malloc(TAP_FRAME_MAX)))
                        break;
        if (!t->bounce || !t->bounce[nqueues - 1]) {
                tap_close(&t->base);
                return NULL;
        }
        t->hdr_len = sizeof(struct virtio_net_hdr_mrg);
        return t;
}

static int tap_open(const struct backend_cfg *cfg, unsigned nqueues, struct backend **ret)
{
        struct tap_backend *t = tap_alloc(nqueues);
        unsigned features = 0;
        int r;

        if (!t)
                return -ENOMEM;
        if (!cfg->ifname[0]) {
                r = -EINVAL;
                goto fail;
        }
        for (unsigned i = 0; i < nqueues; i++) {
                struct ifreq ifr = {0};
                int hdr = sizeof(struct virtio_net_hdr_mrg);

                t->fds[i] = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
                if (t->fds[i] < 0) {
                        r = -errno;
                        goto fail;
                }
                if (i == 0 && ioctl(t->fds[0], TUNGETFEATURES, &features) == 0 && nqueues > 1 &&
                    !(features & IFF_MULTI_QUEUE)) {
                        r = -EOPNOTSUPP;
                        goto fail;
                }
                snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cfg->ifname);
                t->flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (nqueues > 1 ? IFF_MULTI_QUEUE : 0);
                t->hdr_len = hdr;
                ifr.ifr_flags = t->flags;
                if (ioctl(t->fds[i], TUNSETIFF, &ifr) < 0) {
                        /* EINVAL here usually means the tap exists with other flags (e.g. not multi-queue). */
                        r = -errno;
                        goto fail;
                }
                if (i == 0)
                        snprintf(t->ifname, sizeof(t->ifname), "%s", ifr.ifr_name);
                if (ioctl(t->fds[i], TUNSETVNETHDRSZ, &hdr) < 0 || ioctl(t->fds[i], TUNSETOFFLOAD, 0) < 0) {
                        r = -errno;
                        goto fail;
                }
        }
        t->set_up = cfg->set_up;
        t->ufo = ioctl(t->fds[0], TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_UFO) == 0;
        (void)ioctl(t->fds[0], TUNSETOFFLOAD, 0);
        r = set_link(t->ifname, cfg->mtu, cfg->set_up);
        if (r < 0)
                goto fail;
        if (cfg->io_uring)
                rings_open(t, nqueues);
        *ret = &t->base;
        return 0;
fail:
        tap_close(&t->base);
        return r;
}

/* What the handover note of queue 0 holds besides the queue fds: the UFO probe's answer (probing again would reset the
 * live queues' offloads) and what configure() last set, for recover(). */
#define NOTE_UFO 0x1ull
#define NOTE_HDR_SHIFT 8
#define NOTE_OFFLOADS_SHIFT 16

static int tap_handover_fds(struct backend *be, int *fds, unsigned max, uint64_t *notes, bool live)
{
        struct tap_backend *t = (struct tap_backend *)be;

        if (max < be->nqueues)
                return -E2BIG;
        for (unsigned i = 0; i < be->nqueues; i++)
                fds[i] = t->fds[i];
        notes[0] = (t->ufo ? NOTE_UFO : 0) | (uint64_t)(uint8_t)t->hdr_len << NOTE_HDR_SHIFT |
                   (uint64_t)(t->offloads & 0xffff) << NOTE_OFFLOADS_SHIFT;
        return (int)be->nqueues;
}

/* The queues are attached already: no TUNSETIFF, no link change, so no privilege is needed. */
static int tap_adopt(const struct backend_cfg *cfg, unsigned nqueues, const int *fds, unsigned nfds,
                     const uint64_t *notes, struct backend **ret)
{
        uint64_t note = notes[0];
        struct tap_backend *t = tap_alloc(nqueues);
        struct ifreq ifr = {0};
        int r;

        for (unsigned i = 0; i < nfds; i++) {
                if (t && i < nqueues)
                        t->fds[i] = fds[i];
                else
                        close(fds[i]);
        }
        if (!t)
                return -ENOMEM;
        if (nfds != nqueues) {
                r = -EINVAL;
                goto fail;
        }
        if (ioctl(t->fds[0], TUNGETIFF, &ifr) < 0) {
                r = -errno;
                goto fail;
        }
        if (cfg->ifname[0] && strcmp(ifr.ifr_name, cfg->ifname) != 0) {
                r = -EINVAL; /* another device than the configuration names */
                goto fail;
        }
        snprintf(t->ifname, sizeof(t->ifname), "%s", ifr.ifr_name);
        t->flags = (short)(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (nqueues > 1 ? IFF_MULTI_QUEUE : 0));
        t->set_up = cfg->set_up;
        t->ufo = note & NOTE_UFO;
        t->hdr_len = (int)(uint8_t)(note >> NOTE_HDR_SHIFT);
        t->offloads = (unsigned)(note >> NOTE_OFFLOADS_SHIFT) & 0xffff;
        if (cfg->io_uring)
                rings_open(t, nqueues);
        *ret = &t->base;
        return 0;
fail:
        tap_close(&t->base);
        return r;
}

#define TAP_UFO_FEATURES (BIT_ULL(VIRTIO_NET_F_HOST_UFO) | BIT_ULL(VIRTIO_NET_F_GUEST_UFO))

static uint64_t tap_features(const struct backend *be)
{
        const struct tap_backend *t = (const struct tap_backend *)be;

        /* UFO only where the kernel's tap still takes it. */
        return backend_tap_ops.max_features & ~(t->ufo ? 0 : TAP_UFO_FEATURES);
}

static unsigned tap_max_mtu(const struct backend *be)
{
        return backend_tap_ops.mtu_ceiling;
}

static int tap_configure(struct backend *be, unsigned q, uint64_t acked, unsigned hdr_len)
{
        struct tap_backend *t = (struct tap_backend *)be;
        unsigned off = 0;
        int hdr = (int)hdr_len;

        if (acked & BIT_ULL(VIRTIO_NET_F_GUEST_CSUM)) {
                off |= TUN_F_CSUM;
                if (acked & BIT_ULL(VIRTIO_NET_F_GUEST_TSO4))
                        off |= TUN_F_TSO4;
                if (acked & BIT_ULL(VIRTIO_NET_F_GUEST_TSO6))
                        off |= TUN_F_TSO6;
                if ((acked & BIT_ULL(VIRTIO_NET_F_GUEST_ECN)) && (off & (TUN_F_TSO4 | TUN_F_TSO6)))
                        off |= TUN_F_TSO_ECN;
                if ((acked & BIT_ULL(VIRTIO_NET_F_GUEST_UFO)) && t->ufo)
                        off |= TUN_F_UFO;
        }
        if (ioctl(t->fds[q], TUNSETVNETHDRSZ, &hdr) < 0 || ioctl(t->fds[q], TUNSETOFFLOAD, off) < 0)
                return -errno;
        t->hdr_len = hdr;
        t->offloads = off;
        return 0;
}

static int tap_recover(struct backend *be, unsigned q)
{
        struct tap_backend *t = (struct tap_backend *)be;
        struct ifreq ifr = {0};
        bool reattached = false;
        int fd;

        if (ioctl(t->fds[q], TUNGETIFF, &ifr) < 0) {
                /*
                 * Detached: the device was deleted. Attach to one of that name again (creating it, as at
                 * start-up, if nobody else did), on the same fd number.
                 */
                fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
                if (fd < 0)
                        return -errno;
                snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", t->ifname);
                ifr.ifr_flags = t->flags;
                if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &t->hdr_len) < 0 ||
                    ioctl(fd, TUNSETOFFLOAD, t->offloads) < 0 || dup3(fd, t->fds[q], O_CLOEXEC) < 0) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
                close(fd);
                reattached = true;
        }
        unsigned flags = 0;
        int r = backend_link_state(t->ifname, &flags, NULL);
        if (r < 0)
                return r;
        if (!(flags & IFF_UP) && !(t->set_up && q == 0 && set_link(t->ifname, 0, true) == 0))
                return -ENETDOWN;
        return reattached ? 1 : 0;
}

static int tap_queue_fd(const struct backend *be, unsigned q)
{
        return ((const struct tap_backend *)be)->fds[q];
}

/* A failed write: EIO: the tap is down; EBADFD: it was deleted. Both may come back: wait, don't drop. */
static int tx_error(int err)
{
        return err == EIO ? -ENETDOWN : err == EBADFD ? -ENODEV : -err;
}

/* Returned by tx_ring() when its ring failed and was closed: the queue sends by writev from now on. */
#define TX_RING_GONE INT_MIN

/*
 * One submission of n linked writes; returns how many went (a prefix), or -errno when none did. A ring that
 * fails (it should not: the completion queue has room for every entry) could hold half-prepared or
 * uncounted entries, so it is closed rather than reused (TX_RING_GONE); its writes complete inline, so
 * nothing of ours is left in flight.
 */
static int tx_ring(struct io_uring *ring, int fd, const struct frame *frames, unsigned n)
{
        unsigned seen = 0, went = 0, first_fail = n;
        int fail_err = EIO, r;

        if (n > TAP_RING_ENTRIES)
                n = TAP_RING_ENTRIES;
        for (unsigned i = 0; i < n; i++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

                io_uring_prep_writev(sqe, fd, frames[i].iov, frames[i].iovcnt, 0);
                sqe->flags = i + 1 < n ? IOSQE_IO_LINK : 0;
                sqe->user_data = i;
        }
        do
                r = io_uring_submit_and_wait(ring, n);
        while (r == -EINTR);
        if (r < 0)
                goto gone;
        /* Every entry completes (the links end at the first failure: the rest are cancelled). */
        while (seen < n) {
                struct io_uring_cqe *cqe;
                unsigned head, got = 0;

                io_uring_for_each_cqe(ring, head, cqe)
                {
                        unsigned i = (unsigned)cqe->user_data;

                        if (cqe->res >= 0 && (size_t)cqe->res == frames[i].len)
                                went++;
                        else if (i < first_fail) {
                                first_fail = i;
                                fail_err = cqe->res < 0 ? -cqe->res : EIO;
                        }
                        got++;
                }
                io_uring_cq_advance(ring, got);
                seen += got;
                if (seen < n) {
                        do
                                r = io_uring_wait_cqe(ring, &cqe);
                        while (r == -EINTR);
                        if (r < 0)
                                goto gone;
                }
        }
        return went ? (int)went : tx_error(fail_err);
gone:
        io_uring_queue_exit(ring);
        ring->ring_fd = -1;
        return went ? (int)went : TX_RING_GONE;
}

static int tap_tx_burst(struct backend *be, unsigned q, const struct frame *frames, unsigned n)
{
        struct tap_backend *t = (struct tap_backend *)be;
        int fd = t->fds[q];
        unsigned i;

        if (t->rings && t->rings[q].ring_fd >= 0) {
                int r = tx_ring(&t->rings[q], fd, frames, n);
                if (r != TX_RING_GONE)
                        return r;
        }
        for (i = 0; i < n; i++) {
                if (writev(fd, frames[i].iov, (int)frames[i].iovcnt) >= 0)
                        continue;
                if (i)
                        break; /* report what went; the error comes back on the next call */
                return tx_error(errno);
        }
        return (int)i;
}

/*
 * A tap cuts a frame larger than the buffers it is read into short without a word. When the guest's buffers
 * may be smaller than its largest frame (no mergeable buffers), the frame is read whole into the queue's
 * bounce buffer first, then copied, or dropped as too big.
 */
static ssize_t tap_read_bounced(struct tap_backend *t, unsigned q, struct rx_sink *sink, const struct iovec *iov,
                                unsigned iovcnt, size_t cap)
{
        ssize_t n = read(t->fds[q], t->bounce[q], TAP_FRAME_MAX);

        if (n <= 0)
                return n;
        if ((size_t)n > cap) {
                sink->dropped(sink);
                return -EMSGSIZE;
        }
        iov_from_buf(iov, iovcnt, 0, t->bounce[q], (size_t)n);
        return n;
}

static int tap_rx_burst(struct backend *be, unsigned q, struct rx_sink *sink, unsigned budget)
{
        struct tap_backend *t = (struct tap_backend *)be;
        int fd = t->fds[q];
        unsigned done = 0;

        while (done < budget) {
                const struct iovec *iov;
                unsigned iovcnt;
                ssize_t n;
                size_t cap;

                if (sink->reserve(sink, 0, &iov, &iovcnt) < 0)
                        break;
                cap = iov_size(iov, iovcnt);
                if (cap < sink->frame_max) {
                        n = tap_read_bounced(t, q, sink, iov, iovcnt, cap);
                        if (n == -EMSGSIZE) {
                                done++; /* taken from the port, counted as too big */
                                continue;
                        }
                } else {
                        n = readv(fd, iov, (int)iovcnt);
                }
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        if (errno == EFAULT || errno == EINVAL) {
                                /* The frame was larger than the guest's buffers: the kernel dropped it. */
                                sink->dropped(sink);
                                done++;
                                continue;
                        }
                        return done ? (int)done : -errno;
                }
                if (n == 0)
                        break;
                sink->commit(sink, (size_t)n);
                done++;
        }
        return (int)done;
}

const struct backend_ops backend_tap_ops = {
        .name = "tap",
        .max_features = BIT_ULL(VIRTIO_NET_F_CSUM) | BIT_ULL(VIRTIO_NET_F_HOST_TSO4) | BIT_ULL(VIRTIO_NET_F_HOST_TSO6) |
                        BIT_ULL(VIRTIO_NET_F_HOST_ECN) | BIT_ULL(VIRTIO_NET_F_GUEST_CSUM) |
                        BIT_ULL(VIRTIO_NET_F_GUEST_TSO4) | BIT_ULL(VIRTIO_NET_F_GUEST_TSO6) |
                        BIT_ULL(VIRTIO_NET_F_GUEST_ECN) | TAP_UFO_FEATURES,
        .mtu_ceiling = 65521, /* ETH_MAX_MTU less the Ethernet header and FCS the tap accounts for */
        .open = tap_open,
        .close = tap_close,
        .features = tap_features,
        .max_mtu = tap_max_mtu,
        .configure = tap_configure,
        .queue_fd = tap_queue_fd,
        .tx_burst = tap_tx_burst,
        .rx_burst = tap_rx_burst,
        .recover = tap_recover,
        .handover_fds = tap_handover_fds,
        .adopt = tap_adopt,
};
