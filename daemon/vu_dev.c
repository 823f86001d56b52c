// SPDX-License-Identifier: MIT
/* A vhost-user connection: reading messages without blocking the control loop, and its teardown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/vu.h"

void vu_vring_stop(struct vu_dev *dev, struct vu_vring *vr)
{
        if (vr->kick_fd >= 0) {
                (void)worker_set_kick(&dev->workers[vr->index / 2], vr->index, vr->kick_fd, -1);
                close(vr->kick_fd);
                vr->kick_fd = -1;
        }
        vr->started = false;
}

void vu_dev_quiesce(struct vu_dev *dev)
{
        for (unsigned q = 0; q < dev->nqueues; q++)
                worker_quiesce(&dev->workers[q]);
}

void vu_dev_resume(struct vu_dev *dev)
{
        for (unsigned q = 0; q < dev->nqueues; q++)
                worker_resume(&dev->workers[q]);
}

static struct worker_net dev_net(const struct vu_dev *dev)
{
        return (struct worker_net){.features = dev->features, .hdr_len = dev->hdr_len, .mtu = dev->mtu};
}

void vu_dev_push_net(struct vu_dev *dev)
{
        struct worker_net net = dev_net(dev);

        for (unsigned q = 0; q < dev->nqueues; q++)
                worker_set_net(&dev->workers[q], &net);
}

void vu_dev_link_event(struct vu_dev *dev, bool gone)
{
        for (unsigned q = 0; q < dev->nqueues; q++)
                worker_link_event(&dev->workers[q], gone ? WORKER_LINK_GONE : WORKER_LINK_NEW);
}

/* A worker found a broken ring: say so once, from the control thread. */
/* A worker gave the device up: this connection ends, every other port and VM goes on. */
static bool device_lost(struct vu_dev *dev)
{
        for (unsigned q = 0; q < dev->nqueues; q++) {
                const struct worker *w = &dev->workers[q];
                int err = atomic_load(&w->lost_err);

                if (!err)
                        continue;
                if (err == -EFAULT)
                        log_err("%s: queue pair %u: guest memory vanished under the data path (fault at %#lx: the "
                                "front-end shrank a memory file it shared); closing the connection",
                                dev->name, q, (unsigned long)atomic_load(&w->lost_addr));
                else
                        log_err("%s: queue pair %u: the data path failed (%s); closing the connection", dev->name, q,
                                strerror(-err));
                return true;
        }
        return false;
}

static void async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
        struct vu_dev *dev = a->data;

        if (device_lost(dev)) {
                dev->p.closed(dev->p.owner); /* frees dev */
                return;
        }
        for (unsigned q = 0; q < dev->nqueues; q++) {
                struct worker *w = &dev->workers[q];
                unsigned long faults = atomic_load(&w->port_faults);
                bool down = atomic_load(&w->port_down);
                int err = atomic_load(&w->port_err);

                /* Counted, not sampled: a fault the worker got over before we looked is still reported. */
                if (faults != w->port_faults_logged && ratelimit_ok(&w->port_log_rl, 10000, 2)) {
                        w->port_faults_logged = faults;
                        w->port_down_logged = true;
                        w->port_err_logged = err;
                        log_warn("%s: queue pair %u: port fault (%s); frames wait until it is back", dev->name, q,
                                 strerror(-err));
                } else if (down && w->port_down_logged && err != w->port_err_logged) {
                        w->port_err_logged = err;
                        log_warn("%s: queue pair %u: port still down: %s%s", dev->name, q, strerror(-err),
                                 err == -EPERM || err == -EACCES
                                         ? " (opening it again needs privileges vhostd dropped: restart the instance)"
                                         : "");
                }
                if (!down && w->port_down_logged && faults == w->port_faults_logged) {
                        w->port_down_logged = false;
                        log_info("%s: queue pair %u: port is back, traffic resumes", dev->name, q);
                }
                worker_quiesce(w);
                for (unsigned i = 2 * q; i < 2 * q + 2; i++) {
                        struct vu_vring *vr = &dev->vrings[i];
                        if (vr->vq.broken && !vr->broken_reported) {
                                vr->broken_reported = true;
                                log_err("%s: vring %u is broken and stops: %s", dev->name, i, vr->vq.broken_reason);
                        }
                }
                worker_release(w);
        }
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
        struct vu_dev *dev = io->data;
        const struct vu_dev_params p = dev->p; /* dev may be freed below */

        if (p.reading)
                p.reading(p.owner, true);
        if (vu_dev_read(dev) < 0)
                p.closed(p.owner); /* frees dev */
        if (p.reading)
                p.reading(p.owner, false);
}

int vu_dev_new(const struct vu_dev_params *params, int fd, struct vu_dev **ret)
{
        const struct port_cfg *cfg = params->cfg;
        struct backend *be = params->be;
        struct vu_dev *dev = calloc(1, sizeof(*dev));
        int r;

        if (!dev)
                return -ENOMEM;
        dev->p = *params;
        dev->fd = fd;
        dev->log_fd = -1;
        dev->nqueues = cfg->queues;
        dev->mtu = cfg->backend.mtu ? cfg->backend.mtu : 1500;
        if (dev->mtu > be->ops->max_mtu(be))
                dev->mtu = be->ops->max_mtu(be); /* e.g. AF_XDP frames smaller than 1500 + headers */
        dev->hdr_len = sizeof(struct virtio_net_hdr_mrg);
        snprintf(dev->name, sizeof(dev->name), "%s", params->name);
        for (unsigned i = 0; i < VU_MAX_VRINGS; i++) {
                struct vu_vring *vr = &dev->vrings[i];
                vr->index = i;
                vr->kick_fd = vr->call_fd = vr->err_fd = -1;
        }
        /* Before the workers: they may report through it at once. */
        ev_async_init(&dev->async, async_cb);
        dev->async.data = dev;
        for (unsigned q = 0; q < dev->nqueues; q++) {
                struct worker_ctx ctx = {
                        .qp = q,
                        .rx = &dev->vrings[2 * q],
                        .tx = &dev->vrings[2 * q + 1],
                        .be = be,
                        .net = dev_net(dev),
                        .log_fd = -1,
                        .burst = cfg->burst,
                        .busy_poll_us = cfg->busy_poll_us,
                        .adaptive_poll = cfg->adaptive_poll,
                        .cpu = cfg->ncpus ? cfg->cpus[q % cfg->ncpus] : -1,
                        .port_faults = params->port_faults,
                        .port_recoveries = params->port_recoveries,
                        .loop = params->loop,
                        .notify = &dev->async,
                };
                r = worker_start(&dev->workers[q], &ctx);
                if (r < 0) {
                        dev->fd = -1; /* the caller still owns fd on failure */
                        vu_dev_free(dev);
                        return r;
                }
        }
        ev_io_init(&dev->io, io_cb, fd, EV_READ);
        dev->io.data = dev;
        ev_io_start(params->loop, &dev->io);
        ev_async_start(params->loop, &dev->async);
        *ret = dev;
        return 0;
}

void vu_dev_free(struct vu_dev *dev)
{
        if (!dev)
                return;
        if (dev->p.loop) {
                ev_io_stop(dev->p.loop, &dev->io);
                ev_async_stop(dev->p.loop, &dev->async);
        }
        for (unsigned q = 0; q < dev->nqueues; q++)
                worker_stop(&dev->workers[q]);
        for (unsigned i = 0; i < VU_MAX_VRINGS; i++) {
                struct vu_vring *vr = &dev->vrings[i];
                if (vr->kick_fd >= 0)
                        close(vr->kick_fd);
                if (vr->call_fd >= 0)
                        close(vr->call_fd);
                if (vr->err_fd >= 0)
                        close(vr->err_fd);
                vq_free(&vr->vq);
        }
        for (unsigned i = 0; i < dev->rx_nfds; i++)
                close(dev->rx_fds[i]);
        if (dev->mem) {
                mem_table_clear(dev->mem);
                free(dev->mem);
        }
        vlog_unmap(dev->log);
        free(dev->log);
        if (dev->log_fd >= 0)
                close(dev->log_fd);
        if (dev->fd >= 0)
                close(dev->fd);
        free(dev);
}

static int proto_error(struct vu_dev *dev, const char *why, uint32_t value)
{
        log_err("%s: malformed message: %s (%u); closing the connection", dev->name, why, value);
        return -EPROTO;
}

int vu_dev_read(struct vu_dev *dev)
{
        for (;;) {
                struct vu_hdr hdr;
                size_t want;
                union {
                        char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
                        struct cmsghdr align;
                } ctl;
                struct iovec iov;
                struct msghdr mh = {
                        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
                ssize_t n;
                int r;

                memcpy(&hdr, dev->rx_buf, sizeof(hdr));
                want = dev->rx_have < sizeof(hdr) ? sizeof(hdr) : sizeof(hdr) + hdr.size;
                iov.iov_base = dev->rx_buf + dev->rx_have;
                iov.iov_len = want - dev->rx_have;
                n = recvmsg(dev->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return 0;
                if (n < 0)
                        return log_err_errno(-errno, "%s: connection error", dev->name);
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        unsigned nf = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                        int fds[VU_MAX_FDS];
                        memcpy(fds, CMSG_DATA(c), nf * sizeof(int));
                        for (unsigned i = 0; i < nf; i++) {
                                if (dev->rx_nfds < VU_MAX_FDS)
                                        dev->rx_fds[dev->rx_nfds++] = fds[i];
                                else
                                        close(fds[i]);
                        }
                }
                if (mh.msg_flags & MSG_CTRUNC)
                        return proto_error(dev, "more file descriptors than allowed", VU_MAX_FDS);
                if (n == 0) {
                        if (dev->rx_have)
                                log_warn("%s: front-end left in the middle of a message", dev->name);
                        else
                                log_info("%s: front-end disconnected", dev->name);
                        return -ECONNRESET;
                }
                dev->rx_have += (unsigned)n;
                if (dev->rx_have == sizeof(hdr)) {
                        memcpy(&hdr, dev->rx_buf, sizeof(hdr));
                        if ((hdr.flags & VU_FLAG_VERSION_MASK) != VU_VERSION)
                                return proto_error(dev, "bad version in flags", hdr.flags);
                        if (hdr.flags & VU_FLAG_REPLY)
                                return proto_error(dev, "reply flag set on a request", hdr.request);
                        if (hdr.size > VU_PAYLOAD_MAX)
                                return proto_error(dev, "payload size too large", hdr.size);
                }
                memcpy(&hdr, dev->rx_buf, sizeof(hdr));
                if (dev->rx_have < sizeof(hdr) || dev->rx_have < sizeof(hdr) + hdr.size)
                        continue;

                struct vu_msg msg;
                memset(&msg.payload, 0, sizeof(msg.payload));
                msg.hdr = hdr;
                memcpy(&msg.payload, dev->rx_buf + sizeof(hdr), hdr.size);
                memcpy(msg.fds, dev->rx_fds, dev->rx_nfds * sizeof(int));
                msg.nfds = dev->rx_nfds;
                dev->rx_nfds = 0;
                dev->rx_have = 0;
                r = vu_msg_dispatch(dev, &msg);
                if (r < 0)
                        return r;
        }
}
