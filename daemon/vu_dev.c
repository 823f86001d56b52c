// SPDX-License-Identifier: MIT
/* A vhost-user connection: reading messages without blocking the control loop, and its teardown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/port.h"
#include "daemon/vu.h"

bool vu_vring_ready(const struct vu_dev *dev, const struct vu_vring *vr)
{
        return vr->started && vr->enabled && vr->mapped && !vr->vq.broken && dev->mem;
}

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
                port_connection_closed(dev->port); /* frees dev */
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
        struct port *port = dev->port;

        if (vu_dev_read(dev) < 0)
                port_connection_closed(port);
}

int vu_dev_new(struct port *port, int fd, struct vu_dev **ret)
{
        struct vu_dev *dev = calloc(1, sizeof(*dev));
        int r;

        if (!dev)
                return -ENOMEM;
        dev->port = port;
        dev->fd = fd;
        dev->nqueues = port->cfg->queues;
        dev->mtu = port->cfg->backend.mtu ? port->cfg->backend.mtu : 1500;
        if (dev->mtu > port->be->ops->max_mtu(port->be))
                dev->mtu = port->be->ops->max_mtu(port->be); /* e.g. AF_XDP frames smaller than 1500 + headers */
        dev->hdr_len = sizeof(struct virtio_net_hdr_mrg);
        snprintf(dev->name, sizeof(dev->name), "%s", port->name);
        for (unsigned i = 0; i < VU_MAX_VRINGS; i++) {
                struct vu_vring *vr = &dev->vrings[i];
                vr->index = i;
                vr->kick_fd = vr->call_fd = vr->err_fd = -1;
        }
        for (unsigned q = 0; q < dev->nqueues; q++) {
                r = worker_start(&dev->workers[q], dev, q);
                if (r < 0) {
                        dev->fd = -1; /* the caller still owns fd on failure */
                        vu_dev_free(dev);
                        return r;
                }
        }
        ev_io_init(&dev->io, io_cb, fd, EV_READ);
        dev->io.data = dev;
        ev_io_start(port->loop, &dev->io);
        ev_async_init(&dev->async, async_cb);
        dev->async.data = dev;
        ev_async_start(port->loop, &dev->async);
        *ret = dev;
        return 0;
}

void vu_dev_free(struct vu_dev *dev)
{
        if (!dev)
                return;
        if (dev->port->loop) {
                ev_io_stop(dev->port->loop, &dev->io);
                ev_async_stop(dev->port->loop, &dev->async);
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
