// SPDX-License-Identifier: MIT
/*
 * The data path of one queue pair: guest tx ring -> port, port -> guest rx ring. Runs on its own thread,
 * waits in epoll on the two kick eventfds, the port's fd and a wake eventfd, and works in bursts.
 * Chains complete in the order they were popped, so unpopping the tail is always possible and a
 * front-end rewinding to the used index after a crash neither replays nor loses frames.
 * No malloc, no logging above debug: problems become counters or a broken ring reported to the
 * control thread through the context's notify watcher.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "backends/iov.h"
#include "daemon/fault.h"
#include "daemon/worker.h"

#define BURST_MAX 256
#define TX_IOV_POOL 2048
#define RX_RES_MAX 128      /* reserved rx chains (mergeable buffers of one or more frames) */
#define POLL_EVENTS_EVERY 8 /* while polling, an epoll_wait(0) on this many turns */
#define RX_POP_AHEAD 8 /* chains reserved at once when short: their buffers are fetched while earlier frames copy */
#define RX_ELEM_IOV 32 /* segments of one rx chain */
#define RX_GATHER_MAX 1024
#define ROUNDS_MAX 16  /* bursts per wakeup before yielding (fairness, CVE-2019-3900) */
#define RETRY_MS 50    /* port full without a wakeup fd */
#define RECOVER_MS 200 /* port down or gone: how often to look again */
/*
 * Adaptive polling (busy_poll_us = 0, adaptive_poll = yes): when work comes back within ADAPT_MAX_NS of going to
 * sleep, the sleep and the kick that ended it cost more than polling that long would have; the worker then polls
 * for about twice the gap it saw before sleeping, and stops again when windows pass empty or sleeps grow long.
 */
#define ADAPT_MAX_NS 100000LL

enum { TAG_WAKE = 1, TAG_RX_KICK, TAG_TX_KICK, TAG_PORT };

struct rx_res {
        struct vq_elem e;
        struct iovec iov[RX_ELEM_IOV];
        uint64_t gpa[RX_ELEM_IOV]; /* what the dirty log needs of each segment */
};

struct worker_data {
        struct worker *w;
        struct rx_sink sink;
        unsigned burst;
        int port_fd;
        bool port_watched;    /* port_fd is in epoll */
        uint32_t port_events; /* registered epoll mask for port_fd */

        /* tx: popped, not yet taken by the port; always the newest chains of the tx ring */
        struct vq_elem tx_elems[BURST_MAX];
        struct frame tx_frames[BURST_MAX];
        unsigned tx_first, tx_pending;
        struct iovec tx_iov[TX_IOV_POOL];

        /* rx: FIFO of popped chains waiting for frames; always the newest chains of the rx ring */
        struct rx_res rx_res[RX_RES_MAX];
        unsigned rx_head, rx_count;
        uint64_t rx_cap; /* sum of in_len of reserved chains */
        struct iovec rx_gather[RX_GATHER_MAX];
        unsigned rx_gather_n, rx_gather_chains;
        bool rx_no_room; /* the last reserve failed: wait for the guest */
        unsigned rx_frames, rx_pushed;
        unsigned long rx_bytes; /* payload of this burst's frames, counted once per burst */

        bool tx_ready, port_readable, rx_wait_guest, tx_wait_port, tx_retry;
        bool tx_wait_rx; /* the port is full until its receive side gives frames up (-ENOSPC) */
        bool port_down;  /* out of epoll until recover() says it works again */
        bool lost;       /* the device cannot be served any more: touch nothing of it, wait to be stopped */
        long long next_recover_ns;
        long long last_work_ns;
        long long poll_window_ns; /* adaptive polling: how long to poll after the last work */
        long long sleep_start_ns; /* when the current blocking wait began, 0 when not sleeping */
        bool idle_poll;           /* the next epoll_wait(0) polls for work that is not there yet */
        unsigned polls;           /* turns with timeout 0: every POLL_EVENTS_EVERY-th asks epoll */
};

static long long now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * A counter of this worker's vrings: it is their only writer, so a plain add, not a locked one. A locked add waits
 * for every store before it to drain, and those are into guest memory the front-end's core owns: it cost 80 % of
 * the null port's receive path. Readers (vhostctl) load it atomically.
 */
static inline void stat_add(atomic_ulong *c, unsigned long n)
{
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static void drain_eventfd(int fd)
{
        uint64_t v;
        (void)!read(fd, &v, sizeof(v));
}

static void report_broken(struct worker *w, struct vu_vring *vr)
{
        if (vr->err_fd >= 0)
                (void)eventfd_write(vr->err_fd, 1);
        ev_async_send(w->ctx.loop, w->ctx.notify);
}

/* Makes the used entries visible; with dirty logging on, vq_publish() marked them and the front-end is told. */
static void publish(struct worker_data *d, struct vu_vring *vr)
{
        vq_publish(&vr->vq);
        if (vr->vq.log && d->w->ctx.log_fd >= 0)
                (void)eventfd_write(d->w->ctx.log_fd, 1);
}

static void call_guest(struct vu_vring *vr)
{
        if (vr->call_fd >= 0 && vq_should_call(&vr->vq)) {
                (void)eventfd_write(vr->call_fd, 1);
                stat_add(&vr->stats.calls, 1);
        }
}

static void set_port_events(struct worker_data *d)
{
        uint32_t want = (d->rx_wait_guest ? 0 : EPOLLIN) | (d->tx_wait_port ? EPOLLOUT : 0);
        struct epoll_event ev = {.events = want, .data.u32 = TAG_PORT};

        if (!d->port_watched || want == d->port_events)
                return;
        if (epoll_ctl(d->w->epoll_fd, EPOLL_CTL_MOD, d->port_fd, &ev) == 0)
                d->port_events = want;
}

/*
 * Takes the port's fd out of epoll while it is still the one we registered: recover() may close it, and the
 * control thread may get the same number for something else at once.
 */
static void port_unwatch(struct worker_data *d)
{
        if (d->port_watched)
                (void)epoll_ctl(d->w->epoll_fd, EPOLL_CTL_DEL, d->port_fd, NULL);
        d->port_watched = false;
        d->port_events = 0;
}

/* The port failed (deleted, down): stop watching it, tell the control thread, retry on a timer. */
static void port_fault(struct worker_data *d, int err)
{
        struct worker *w = d->w;

        d->next_recover_ns = now_ns() + RECOVER_MS * 1000000LL;
        if (d->port_down) {
                /* Still down, maybe for another reason now (gone, then no permission to re-open): say so. */
                if (atomic_exchange(&w->port_err, err) != err)
                        ev_async_send(w->ctx.loop, w->ctx.notify);
                return;
        }
        d->port_down = true;
        port_unwatch(d);
        atomic_store(&w->port_err, err);
        atomic_store(&w->port_down, true);
        atomic_fetch_add(w->ctx.port_faults, 1);
        atomic_fetch_add(&w->port_faults, 1);
        ev_async_send(w->ctx.loop, w->ctx.notify);
}

/* The device cannot be served any more (err: -EFAULT guest memory gone, or an epoll failure): say so once. */
static void device_lost(struct worker_data *d, int err, void *addr)
{
        struct worker *w = d->w;

        d->lost = true;
        /* Nothing of the device may wake us any more: its kicks would keep a level-triggered epoll busy. */
        port_unwatch(d);
        if (w->ctx.rx->kick_fd >= 0)
                (void)epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, w->ctx.rx->kick_fd, NULL);
        if (w->ctx.tx->kick_fd >= 0)
                (void)epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, w->ctx.tx->kick_fd, NULL);
        atomic_store(&w->lost_addr, (uintptr_t)addr);
        atomic_store(&w->lost_err, err);
        ev_async_send(w->ctx.loop, w->ctx.notify);
}

/*
 * Asks the port whether the queue works (recover() re-attaches it to a re-created interface): at start, at
 * each recovery deadline while down, and when the control thread saw the interface deleted or added.
 */
static void port_check(struct worker_data *d)
{
        struct worker *w = d->w;
        struct backend *be = w->ctx.be;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = TAG_PORT};
        int r;

        port_unwatch(d);
        r = 0;
        if (be->ops->recover) {
                /*
                 * Without the lock: re-creating a socket, a packet ring or a UMEM and attaching an XDP program
                 * can take milliseconds, and the control thread quiesces workers for every memory or ring message
                 * and every vhostctl query: it must not wait for a port to come back. It leaves the port's queue
                 * alone meanwhile (w->recovering); the rings are not touched here.
                 */
                atomic_store(&w->recovering, true);
                pthread_mutex_unlock(&w->lock);
                r = be->ops->recover(be, w->ctx.qp);
                pthread_mutex_lock(&w->lock);
                atomic_store(&w->recovering, false);
                if (w->configure_pending) {
                        w->configure_pending = false;
                        (void)be->ops->configure(be, w->ctx.qp, w->ctx.net.features, w->ctx.net.hdr_len);
                }
        }
        if (r < 0) {
                port_fault(d, r);
                return;
        }
        d->port_fd = be->ops->queue_fd(be, w->ctx.qp); /* r == 1: a new fd; -1: a port with none (tx_feeds_rx) */
        if (d->port_fd >= 0) {
                if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, d->port_fd, &ev) < 0) {
                        port_fault(d, -errno);
                        return;
                }
                d->port_watched = true;
                d->port_events = EPOLLIN;
        }
        d->tx_ready = d->port_readable = true;
        d->rx_wait_guest = d->tx_wait_port = d->tx_wait_rx = false;
        if (!d->port_down)
                return; /* re-attached at start, to an interface re-created while no front-end was here */
        d->port_down = false;
        atomic_store(&w->port_down, false);
        atomic_fetch_add(w->ctx.port_recoveries, 1);
        ev_async_send(w->ctx.loop, w->ctx.notify);
}

/* Within the polling window of the last work (busy_poll_us, or the adaptive one): poll instead of sleeping. */
static bool busy_polling(const struct worker_data *d)
{
        long long window = d->w->ctx.busy_poll_us ? (long long)d->w->ctx.busy_poll_us * 1000 : d->poll_window_ns;

        return window && now_ns() - d->last_work_ns < window;
}

/* A blocking wait ended after slept_ns with work: widen the adaptive window if polling would have caught it. */
static void adapt_after_sleep(struct worker_data *d, long long slept_ns)
{
        if (!d->w->ctx.adaptive_poll || d->w->ctx.busy_poll_us)
                return;
        if (slept_ns < ADAPT_MAX_NS) {
                long long want = 2 * slept_ns;

                if (want > ADAPT_MAX_NS)
                        want = ADAPT_MAX_NS;
                if (want > d->poll_window_ns)
                        d->poll_window_ns = want;
        } else {
                d->poll_window_ns /= 2;
        }
}

/* ---- guest -> port ---- */

static bool tx_pop_batch(struct worker_data *d, struct vu_vring *vr)
{
        const struct worker_net *net = &d->w->ctx.net;
        unsigned iov_used = 0, n = 0;

        d->tx_first = 0;
        while (n < d->burst) {
                struct vq_elem *e = &d->tx_elems[n];
                unsigned room = TX_IOV_POOL - iov_used;
                int r;

                e->iov = d->tx_iov + iov_used;
                r = vq_pop(&vr->vq, e, room < VQ_CHAIN_IOV_MAX ? room : VQ_CHAIN_IOV_MAX);
                if (r == 0)
                        break;
                if (r == -ENOBUFS && room < VQ_CHAIN_IOV_MAX)
                        break; /* the pool is full: next batch */
                if (r == -ENOBUFS)
                        vq_set_broken(&vr->vq, "tx chain %u needs more than %u segments", e->head, VQ_CHAIN_IOV_MAX);
                if (r < 0)
                        break;
                if (e->in_num) {
                        vq_unpop(&vr->vq, 1);
                        vq_set_broken(&vr->vq, "tx chain %u has device-writable descriptors", e->head);
                        break;
                }
                if (e->out_len < net->hdr_len) {
                        /* A runt: complete it on its own so used order stays pop order. */
                        if (n) {
                                vq_unpop(&vr->vq, 1);
                                break;
                        }
                        vq_push(&vr->vq, e->head, 0);
                        stat_add(&vr->stats.drops, 1);
                        continue;
                }
                d->tx_frames[n].iov = e->iov;
                d->tx_frames[n].iovcnt = e->out_num;
                d->tx_frames[n].len = e->out_len;
                iov_used += e->out_num;
                n++;
        }
        d->tx_pending = n;
        return n > 0;
}

static unsigned handle_tx(struct worker_data *d, struct vu_vring *vr)
{
        const struct worker_net *net = &d->w->ctx.net;
        struct backend *be = d->w->ctx.be;
        unsigned qp = d->w->ctx.qp, sent_total = 0;

        d->tx_ready = false;
        vq_disable_notify(&vr->vq);
        while (sent_total < d->burst * 4) {
                int r;

                if (!d->tx_pending && !tx_pop_batch(d, vr)) {
                        if (vr->vq.broken)
                                break;
                        /* Busy polling: no kicks wanted; poll_timeout() asks for them again before sleeping. */
                        if (busy_polling(d))
                                break;
                        if (!vq_enable_notify(&vr->vq))
                                break;
                        vq_disable_notify(&vr->vq);
                        continue;
                }
                r = be->ops->tx_burst(be, qp, d->tx_frames + d->tx_first, d->tx_pending);
                if (r > 0) {
                        unsigned long bytes = 0;

                        for (int i = 0; i < r; i++) {
                                const struct vq_elem *e = &d->tx_elems[d->tx_first + i];
                                vq_push(&vr->vq, e->head, 0);
                                bytes += e->out_len - net->hdr_len;
                        }
                        stat_add(&vr->stats.bytes, bytes);
                        stat_add(&vr->stats.frames, (unsigned long)r);
                        d->tx_first += (unsigned)r;
                        d->tx_pending -= (unsigned)r;
                        sent_total += (unsigned)r;
                        continue;
                }
                if (r == -EAGAIN) {
                        d->tx_wait_port = true;
                        stat_add(&vr->stats.wait_port, 1);
                        break;
                }
                if (r == -ENOSPC) {
                        d->tx_wait_rx = true;
                        stat_add(&vr->stats.wait_port, 1);
                        break;
                }
                if (r == -ENOBUFS || r == -ENOMEM) {
                        d->tx_retry = true;
                        stat_add(&vr->stats.wait_port, 1);
                        break;
                }
                if (r == -ENETDOWN || r == -ENODEV || r == -ENXIO || r == -EIO || r == -EBADFD) {
                        /* Hold the frames: the guest's queue waits until the port is back. */
                        port_fault(d, r);
                        stat_add(&vr->stats.wait_port, 1);
                        break;
                }
                /* The port refuses this frame for good: drop it, count it, go on. */
                vq_push(&vr->vq, d->tx_elems[d->tx_first].head, 0);
                stat_add(&vr->stats.drops, 1);
                stat_add(&vr->stats.drop_port, 1);
                d->tx_first++;
                d->tx_pending--;
        }
        if (vr->vq.unpublished) {
                publish(d, vr);
                call_guest(vr);
        }
        if (sent_total >= d->burst * 4)
                d->tx_ready = true;
        if (vr->vq.broken && !vr->broken_reported)
                report_broken(d->w, vr);
        return sent_total;
}

/* ---- port -> guest ---- */

static struct vu_vring *rx_vring(struct worker_data *d)
{
        return d->w->ctx.rx;
}

static void rx_dropped(struct rx_sink *sink)
{
        struct worker_data *d = (struct worker_data *)((char *)sink - offsetof(struct worker_data, sink));
        struct vu_vring *vr = rx_vring(d);

        stat_add(&vr->stats.drops, 1);
        stat_add(&vr->stats.drop_too_big, 1);
}

/* The largest frame the guest may be sent, header included: its MTU, or 64 KiB when it takes GSO frames. */
static size_t rx_frame_max(const struct worker_net *net)
{
        bool gso = net->features & (BIT_ULL(VIRTIO_NET_F_GUEST_TSO4) | BIT_ULL(VIRTIO_NET_F_GUEST_TSO6) |
                                    BIT_ULL(VIRTIO_NET_F_GUEST_UFO));

        return net->hdr_len + (gso ? 65535 : net->mtu) + BACKEND_ETH_OVERHEAD;
}

static int rx_reserve(struct rx_sink *sink, size_t frame_len, const struct iovec **ret_iov, unsigned *ret_iovcnt)
{
        struct worker_data *d = (struct worker_data *)((char *)sink - offsetof(struct worker_data, sink));
        const struct worker_net *net = &d->w->ctx.net;
        struct vu_vring *vr = rx_vring(d);
        bool mrg = net->features & BIT_ULL(VIRTIO_NET_F_MRG_RXBUF);
        uint64_t need = frame_len;
        unsigned n = 0, chains = 0;
        uint64_t cap = 0;

        if (!need)
                need = sink->frame_max;
        bool short_of_room = mrg ? d->rx_cap < need : d->rx_count == 0;
        while (short_of_room && d->rx_count < RX_RES_MAX &&
               ((mrg ? d->rx_cap < need : d->rx_count == 0) || d->rx_count < RX_POP_AHEAD)) {
                struct rx_res *res = &d->rx_res[(d->rx_head + d->rx_count) % RX_RES_MAX];
                int r;

                res->e.iov = res->iov;
                res->e.gpa = res->gpa;
                r = vq_pop(&vr->vq, &res->e, RX_ELEM_IOV);
                if (r == 0)
                        break;
                if (r == -ENOBUFS)
                        vq_set_broken(&vr->vq, "rx chain needs more than %u segments", RX_ELEM_IOV);
                if (r < 0)
                        goto broken;
                if (res->e.out_num || res->e.in_len < net->hdr_len) {
                        vq_set_broken(&vr->vq, "rx chain %u is not a writable buffer of at least %u bytes", res->e.head,
                                      net->hdr_len);
                        goto broken;
                }
                d->rx_count++;
                d->rx_cap += res->e.in_len;
                /* The guest's reader last had this buffer: ask for its first line now, not when copying. */
                __builtin_prefetch(res->e.iov[0].iov_base, 1);
        }
        if (d->rx_count == 0 || (mrg && d->rx_cap < need)) {
                /* A known-size frame that could never fit is dropped rather than stalling the queue. */
                if (frame_len && mrg && (d->rx_count == RX_RES_MAX || d->rx_count >= vr->vq.num)) {
                        rx_dropped(sink);
                        return -EMSGSIZE;
                }
                d->rx_no_room = true;
                return -ENOBUFS;
        }
        /* Gather the chains this frame may use: one without mergeable buffers, enough for `need` with. */
        for (unsigned c = 0; c < d->rx_count && n < RX_GATHER_MAX; c++) {
                const struct rx_res *res = &d->rx_res[(d->rx_head + c) % RX_RES_MAX];
                unsigned take = res->e.in_num;

                if (take > RX_GATHER_MAX - n)
                        break;
                memcpy(d->rx_gather + n, res->e.iov, take * sizeof(struct iovec));
                n += take;
                chains++;
                cap += res->e.in_len;
                if (!mrg || cap >= need)
                        break;
        }
        /* The one policy for a frame larger than the guest's buffers, whatever the port: dropped and counted,
         * never truncated. The chains stay reserved for the next frame. */
        if (frame_len && cap < frame_len) {
                rx_dropped(sink);
                return -EMSGSIZE;
        }
        d->rx_gather_n = n;
        d->rx_gather_chains = chains;
        *ret_iov = d->rx_gather;
        *ret_iovcnt = n;
        return 0;

broken:
        d->rx_no_room = true;
        return -EIO;
}

static void rx_commit(struct rx_sink *sink, size_t len)
{
        struct worker_data *d = (struct worker_data *)((char *)sink - offsetof(struct worker_data, sink));
        const struct worker_net *net = &d->w->ctx.net;
        struct vu_vring *vr = rx_vring(d);
        size_t left = len;
        uint16_t nbufs = 0;

        /* How many chains the frame took, and that number in its header, before any chain is handed back:
         * handing back marks the dirty log, and a write after the mark could be missed by migration. */
        for (unsigned c = d->rx_head; nbufs < d->rx_gather_chains && (left || !nbufs); c = (c + 1) % RX_RES_MAX) {
                size_t in = d->rx_res[c].e.in_len;
                left -= left < in ? left : in;
                nbufs++;
        }
        if (net->hdr_len == sizeof(struct virtio_net_hdr_mrg)) {
                uint16_t le = htole16(nbufs);
                iov_from_buf(d->rx_gather, d->rx_gather_n, offsetof(struct virtio_net_hdr_mrg, num_buffers), &le,
                             sizeof(le));
        }
        left = len;
        for (uint16_t i = 0; i < nbufs; i++) {
                struct rx_res *res = &d->rx_res[d->rx_head];
                size_t use = left < res->e.in_len ? left : res->e.in_len;

                vq_push_elem(&vr->vq, &res->e, (uint32_t)use);
                left -= use;
                d->rx_cap -= res->e.in_len;
                d->rx_head = (d->rx_head + 1) % RX_RES_MAX;
                d->rx_count--;
        }
        d->rx_pushed += nbufs;
        d->rx_frames++;
        d->rx_bytes += len - net->hdr_len;
}

static unsigned handle_rx(struct worker_data *d, struct vu_vring *vr)
{
        struct backend *be = d->w->ctx.be;
        int r;

        d->rx_no_room = false;
        d->rx_frames = d->rx_pushed = 0;
        d->rx_bytes = 0;
        d->sink.frame_max = rx_frame_max(&d->w->ctx.net);
        /* While we have buffers the guest need not kick us for more; asked for again when we run out. */
        vq_disable_notify(&vr->vq);
        r = be->ops->rx_burst(be, d->w->ctx.qp, &d->sink, d->burst);
        if (d->rx_pushed) {
                publish(d, vr);
                call_guest(vr);
                stat_add(&vr->stats.frames, d->rx_frames);
                stat_add(&vr->stats.bytes, d->rx_bytes);
        }
        if (be->ops->rx_done)
                be->ops->rx_done(be, d->w->ctx.qp);
        if (vr->vq.broken) {
                if (!vr->broken_reported)
                        report_broken(d->w, vr);
                return d->rx_frames;
        }
        if (d->rx_no_room) {
                /* Stop watching the port until the guest posts buffers (its kick wakes us). */
                stat_add(&vr->stats.wait_guest, 1);
                if (vq_enable_notify(&vr->vq)) {
                        vq_disable_notify(&vr->vq);
                } else {
                        d->rx_wait_guest = true;
                }
        } else if (r == -EFAULT) {
                device_lost(d, r, NULL); /* the port could not write into guest memory: it is gone */
        } else if (r < 0 && r != -EAGAIN && r != -EINTR) {
                port_fault(d, r);
        } else if (r < (int)d->burst) {
                d->port_readable = false; /* drained: epoll tells us when there is more */
        }
        return d->rx_frames;
}

/* ---- the loop ---- */

static void run_queues(struct worker_data *d)
{
        struct vu_vring *rx = d->w->ctx.rx, *tx = d->w->ctx.tx;

        /* A ring that is not running is woken again by the control thread when it starts. */
        if (!vu_vring_ready(rx))
                d->rx_wait_guest = true;
        if (!vu_vring_ready(tx))
                d->tx_ready = false;
        for (unsigned round = 0; round < ROUNDS_MAX; round++) {
                unsigned progress = 0;

                if (d->port_down)
                        break;
                if (d->tx_ready && !d->tx_wait_port && !d->tx_wait_rx && vu_vring_ready(tx)) {
                        unsigned sent = handle_tx(d, tx);

                        progress += sent;
                        if (sent && d->w->ctx.be->ops->tx_feeds_rx)
                                d->port_readable = true;
                }
                if (d->port_readable && !d->rx_wait_guest && !d->port_down && vu_vring_ready(rx)) {
                        progress += handle_rx(d, rx);
                        /* Whatever the receive side took out (delivered or dropped) made room for tx. Its own
                         * wake-ups (the port's fd, the guest's rx kick) bring us here: no timer is needed. */
                        if (d->tx_wait_rx) {
                                d->tx_wait_rx = false;
                                d->tx_ready = true;
                        }
                }
                if (!progress)
                        break;
                d->last_work_ns = now_ns();
        }
        set_port_events(d);
}

static int poll_timeout(struct worker_data *d)
{
        struct vu_vring *tx = d->w->ctx.tx;

        if (d->port_down)
                return RECOVER_MS;
        d->idle_poll = false;
        if (d->tx_ready || (d->port_readable && !d->rx_wait_guest))
                return 0; /* budget ran out: yield to the lock and to events, then continue */
        if (busy_polling(d)) {
                d->idle_poll = true;
                return 0;
        }
        /* An adaptive window that passed without work: narrower next time. */
        if (!d->w->ctx.busy_poll_us && d->poll_window_ns && d->last_work_ns)
                d->poll_window_ns /= 2;
        /* About to sleep: a tx ring left without kicks by busy polling must ask for them first. */
        if (!tx->vq.notify_enabled && !d->tx_pending && !d->tx_wait_port && vu_vring_ready(tx) &&
            vq_enable_notify(&tx->vq)) {
                vq_disable_notify(&tx->vq);
                d->tx_ready = true;
                return 0;
        }
        if (d->tx_retry)
                return RETRY_MS;
        return -1;
}

/* One wake-up's work, under the worker's lock: events, then the rings. Returns the next epoll timeout. */
static int work(struct worker_data *d, const struct epoll_event *evs, int n)
{
        struct worker *w = d->w;
        int link = atomic_exchange(&w->link_event, 0);

        if (link & WORKER_LINK_GONE)
                port_fault(d, -ENODEV);
        /* Kicks keep coming while the port is down: recover on a deadline, not on a quiet epoll. */
        if (d->port_down && ((link & WORKER_LINK_NEW) || now_ns() >= d->next_recover_ns))
                port_check(d);
        else if (n == 0) { /* polling, or the retry timer */
                if (d->tx_retry)
                        stat_add(&w->ctx.tx->stats.retry_wakeups, 1);
                d->tx_retry = false;
                d->tx_ready = true;
                d->port_readable = true;
        }
        for (int i = 0; i < n; i++) {
                struct vu_vring *vr;
                switch (evs[i].data.u32) {
                case TAG_WAKE:
                        drain_eventfd(w->wake_fd);
                        d->tx_ready = d->port_readable = true;
                        d->rx_wait_guest = d->tx_wait_rx = false;
                        break;
                case TAG_RX_KICK:
                        vr = w->ctx.rx;
                        drain_eventfd(vr->kick_fd);
                        stat_add(&vr->stats.kicks, 1);
                        d->rx_wait_guest = false;
                        d->port_readable = true;
                        break;
                case TAG_TX_KICK:
                        vr = w->ctx.tx;
                        drain_eventfd(vr->kick_fd);
                        stat_add(&vr->stats.kicks, 1);
                        d->tx_ready = true;
                        break;
                case TAG_PORT:
                        /* Errors are reported even when we are not asking for input: look now. */
                        if ((evs[i].events & (EPOLLERR | EPOLLHUP)) && d->rx_wait_guest)
                                port_fault(d, -EIO);
                        else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                                d->port_readable = true;
                        if (evs[i].events & EPOLLOUT) {
                                d->tx_wait_port = false;
                                d->tx_ready = true;
                        }
                        break;
                }
        }
        run_queues(d);
        return poll_timeout(d);
}

/*
 * work() inside a recovery point for guest memory that vanishes (daemon/fault.h): a SIGBUS in it lands back
 * here, with the lock still held, and the device is given up.
 */
static int guarded_work(struct worker_data *d, const struct epoll_event *evs, int n)
{
        sigjmp_buf jb;
        int timeout;

        if (sigsetjmp(jb, 0)) {
                device_lost(d, -EFAULT, fault_address);
                return -1;
        }
        fault_recovery = &jb;
        timeout = work(d, evs, n);
        fault_recovery = NULL;
        return timeout;
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;
        struct worker_data *d = w->data;
        struct epoll_event evs[8];

        if (w->ctx.cpu >= 0) {
                cpu_set_t set;
                CPU_ZERO(&set);
                CPU_SET(w->ctx.cpu, &set);
                (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        }
        pthread_mutex_lock(&w->lock);
        port_check(d); /* the interface may have been re-created while no front-end was connected */
        int timeout = poll_timeout(d);
        pthread_mutex_unlock(&w->lock);
        /* Checked before every wait too: the wake that worker_stop() sends may be drained by a TAG_WAKE. */
        while (!atomic_load(&w->stop)) {
                /* The timeout was computed under the lock; a change made since then also wrote wake_fd. */
                int n;

                /* Polling for work that is not there yet: let whatever else wants this CPU (a port's source, the
                 * kernel's softirq thread) run first, so polling never starves what it waits for. */
                if (timeout == 0 && d->idle_poll)
                        sched_yield();
                d->sleep_start_ns = timeout != 0 ? now_ns() : 0;
                /* Polling looks at the rings, which costs no system call; events (kicks, the port, the wake fd)
                 * are asked for on every POLL_EVENTS_EVERY-th turn. */
                if (timeout == 0 && ++d->polls % POLL_EVENTS_EVERY)
                        n = 0;
                else
                        n = epoll_wait(w->epoll_fd, evs, 8, timeout);
                if (atomic_load(&w->stop))
                        break;
                if (n < 0 && errno == EINTR)
                        continue;
                pthread_mutex_lock(&w->lock);
                if (n > 0 && d->sleep_start_ns)
                        adapt_after_sleep(d, now_ns() - d->sleep_start_ns);
                if (n < 0 && !d->lost)
                        device_lost(d, -errno, NULL); /* a bug of ours (a closed epoll fd?): this device only */
                if (d->lost) {
                        /* Wait to be stopped; the wake fd alone stays meaningful. */
                        drain_eventfd(w->wake_fd);
                        timeout = 1000;
                } else {
                        timeout = guarded_work(d, evs, n);
                }
                pthread_mutex_unlock(&w->lock);
                if (n < 0)
                        usleep(100000); /* a failing epoll_wait returns at once */
        }
        return NULL;
}

int worker_set_kick(struct worker *w, unsigned vring_index, int old_fd, int new_fd)
{
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (vring_index & 1) ? TAG_TX_KICK : TAG_RX_KICK};

        if (old_fd >= 0)
                (void)epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, old_fd, NULL);
        if (new_fd >= 0 && epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, new_fd, &ev) < 0)
                return -errno;
        return 0;
}

#ifndef EPIOCSPARAMS /* Linux 6.9's uapi, newer than Debian 12's headers */
struct epoll_params {
        uint32_t busy_poll_usecs;
        uint16_t busy_poll_budget;
        uint8_t prefer_busy_poll;
        uint8_t pad;
};
#define EPIOCSPARAMS _IOW(0x8A, 0x01, struct epoll_params)
#endif

/*
 * The port asks for preferred busy polling: epoll_wait polls the device's NAPI for a while before it sleeps.
 * A budget of at most 64 needs no privilege. Where the kernel has no per-epoll parameters (< 6.9) the port's
 * sockets still busy-poll on their own, so a failure changes nothing else.
 */
static void epoll_busy_poll(int epoll_fd, unsigned usecs)
{
        struct epoll_params p = {.busy_poll_usecs = usecs, .busy_poll_budget = 64, .prefer_busy_poll = 1};

        if (usecs)
                (void)ioctl(epoll_fd, EPIOCSPARAMS, &p);
}

int worker_start(struct worker *w, const struct worker_ctx *ctx)
{
        struct backend *be = ctx->be;
        struct epoll_event ev;
        struct worker_data *d;
        int r;

        memset(w, 0, sizeof(*w));
        w->ctx = *ctx;
        w->epoll_fd = w->wake_fd = -1;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        w->data = d;
        d->w = w;
        d->sink.reserve = rx_reserve;
        d->sink.commit = rx_commit;
        d->sink.dropped = rx_dropped;
        d->burst = ctx->burst ? ctx->burst : 32;
        if (d->burst > BURST_MAX)
                d->burst = BURST_MAX;
        d->port_fd = be->ops->queue_fd(be, ctx->qp);
        pthread_mutex_init(&w->lock, NULL);

        w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->epoll_fd < 0 || w->wake_fd < 0) {
                r = -errno;
                goto fail;
        }
        epoll_busy_poll(w->epoll_fd, be->epoll_busy_poll_us);
        ev = (struct epoll_event){.events = EPOLLIN, .data.u32 = TAG_WAKE};
        if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->wake_fd, &ev) < 0) {
                r = -errno;
                goto fail;
        }
        if (d->port_fd >= 0) {
                ev = (struct epoll_event){.events = EPOLLIN, .data.u32 = TAG_PORT};
                if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, d->port_fd, &ev) < 0) {
                        r = -errno;
                        goto fail;
                }
                d->port_watched = true;
                d->port_events = EPOLLIN;
        }
        d->port_readable = true;
        r = -pthread_create(&w->thread, NULL, worker_main, w);
        if (r < 0)
                goto fail;
        w->running = true;
        return 0;
fail:
        if (w->epoll_fd >= 0)
                close(w->epoll_fd);
        if (w->wake_fd >= 0)
                close(w->wake_fd);
        w->epoll_fd = w->wake_fd = -1;
        pthread_mutex_destroy(&w->lock);
        free(d);
        w->data = NULL;
        return r;
}

void worker_stop(struct worker *w)
{
        if (!w->running)
                return;
        atomic_store(&w->stop, true);
        (void)eventfd_write(w->wake_fd, 1);
        pthread_join(w->thread, NULL);
        w->running = false;
        close(w->epoll_fd);
        close(w->wake_fd);
        w->epoll_fd = w->wake_fd = -1;
        pthread_mutex_destroy(&w->lock);
        free(w->data);
        w->data = NULL;
}

void worker_set_net(struct worker *w, const struct worker_net *net)
{
        w->ctx.net = *net;
}

void worker_set_log_fd(struct worker *w, int fd)
{
        w->ctx.log_fd = fd;
}

void worker_link_event(struct worker *w, int what)
{
        if (!w->running)
                return;
        atomic_fetch_or(&w->link_event, what);
        (void)eventfd_write(w->wake_fd, 1);
}

void worker_quiesce(struct worker *w)
{
        if (w->running)
                pthread_mutex_lock(&w->lock);
}

void worker_resume(struct worker *w)
{
        if (!w->running)
                return;
        pthread_mutex_unlock(&w->lock);
        (void)eventfd_write(w->wake_fd, 1);
}

void worker_release(struct worker *w)
{
        if (w->running)
                pthread_mutex_unlock(&w->lock);
}

void worker_return_chains(struct worker *w)
{
        struct worker_data *d = w->data;
        struct worker_ctx *ctx = &w->ctx;

        if (!d)
                return;
        if (d->rx_count)
                vq_unpop(&ctx->rx->vq, d->rx_count);
        if (d->tx_pending)
                vq_unpop(&ctx->tx->vq, d->tx_pending);
        d->rx_count = d->rx_head = 0;
        d->rx_cap = 0;
        d->tx_pending = d->tx_first = 0;
        d->tx_wait_port = d->rx_wait_guest = d->tx_wait_rx = false;
}

int worker_configure_port(struct worker *w)
{
        struct backend *be = w->ctx.be;

        if (atomic_load(&w->recovering)) {
                w->configure_pending = true; /* the worker applies it when recover() returns */
                return 0;
        }
        return be->ops->configure(be, w->ctx.qp, w->ctx.net.features, w->ctx.net.hdr_len);
}

int worker_send_raw(struct worker *w, const void *frame, size_t len)
{
        struct backend *be = w->ctx.be;
        uint8_t buf[sizeof(struct virtio_net_hdr_mrg) + 64];
        struct iovec iov;
        struct frame f;
        unsigned hdr = w->ctx.net.hdr_len ? w->ctx.net.hdr_len : sizeof(struct virtio_net_hdr_mrg);

        if (len > 64)
                return -EMSGSIZE;
        if (atomic_load(&w->recovering))
                return -ENETDOWN;
        memset(buf, 0, hdr);
        memcpy(buf + hdr, frame, len);
        iov = (struct iovec){.iov_base = buf, .iov_len = hdr + len};
        f = (struct frame){.iov = &iov, .iovcnt = 1, .len = hdr + len};
        int r = be->ops->tx_burst(be, w->ctx.qp, &f, 1);
        return r < 0 ? r : 0;
}
