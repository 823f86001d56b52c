// SPDX-License-Identifier: MIT
/*
 * Commands: "status" (text) and "json". The answer is built in memory under each worker's lock (so
 * the ring state is consistent) and written with a send timeout, so a stuck vhostctl cannot hold the loop.
 */
#include "daemon/ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/port.h"
#include "daemon/vu.h"

struct out {
        char *buf;
        size_t len, cap;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
        va_list ap;
        int n;

        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(o->buf ? o->buf + o->len : NULL, o->buf ? o->cap - o->len : 0, fmt, ap);
                va_end(ap);
                if (n < 0)
                        return;
                if (o->buf && o->len + (size_t)n < o->cap) {
                        o->len += (size_t)n;
                        return;
                }
                size_t cap = (o->cap ? o->cap * 2 : 4096) + (size_t)n;
                char *b = realloc(o->buf, cap);
                if (!b)
                        return;
                o->buf = b;
                o->cap = cap;
        }
}

/* Our own strings only (names are restricted by the config parser); escape quotes and backslashes anyway. */
static void out_json_str(struct out *o, const char *s)
{
        outf(o, "\"");
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        outf(o, "\\%c", *s);
                else if ((unsigned char)*s < 0x20)
                        outf(o, "\\u%04x", (unsigned char)*s);
                else
                        outf(o, "%c", *s);
        }
        outf(o, "\"");
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static const char *const feature_names[64] = {
        [VIRTIO_NET_F_CSUM] = "CSUM",
        [VIRTIO_NET_F_GUEST_CSUM] = "GUEST_CSUM",
        [VIRTIO_NET_F_MTU] = "MTU",
        [VIRTIO_NET_F_MAC] = "MAC",
        [VIRTIO_NET_F_GUEST_TSO4] = "GUEST_TSO4",
        [VIRTIO_NET_F_GUEST_TSO6] = "GUEST_TSO6",
        [VIRTIO_NET_F_GUEST_ECN] = "GUEST_ECN",
        [VIRTIO_NET_F_GUEST_UFO] = "GUEST_UFO",
        [VIRTIO_NET_F_HOST_TSO4] = "HOST_TSO4",
        [VIRTIO_NET_F_HOST_TSO6] = "HOST_TSO6",
        [VIRTIO_NET_F_HOST_ECN] = "HOST_ECN",
        [VIRTIO_NET_F_HOST_UFO] = "HOST_UFO",
        [VIRTIO_NET_F_MRG_RXBUF] = "MRG_RXBUF",
        [VIRTIO_NET_F_STATUS] = "STATUS",
        [VIRTIO_NET_F_GUEST_ANNOUNCE] = "GUEST_ANNOUNCE",
        [VIRTIO_NET_F_MQ] = "MQ",
        [VIRTIO_F_NOTIFY_ON_EMPTY] = "NOTIFY_ON_EMPTY",
        [VIRTIO_F_ANY_LAYOUT] = "ANY_LAYOUT",
        [VIRTIO_RING_F_INDIRECT_DESC] = "INDIRECT_DESC",
        [VIRTIO_RING_F_EVENT_IDX] = "EVENT_IDX",
        [VHOST_USER_F_PROTOCOL_FEATURES] = "PROTOCOL_FEATURES",
        [VIRTIO_F_VERSION_1] = "VERSION_1",
};

static void out_feature_names(struct out *o, uint64_t f)
{
        for (unsigned b = 0; b < 64; b++)
                if (f & (1ULL << b)) {
                        if (feature_names[b])
                                outf(o, " %s", feature_names[b]);
                        else
                                outf(o, " bit%u", b);
                }
}

/* Frames the kernel dropped before the port took them, over all queues; -1 when the port kind cannot tell. */
static int64_t port_kernel_drops(const struct port *p)
{
        struct backend *be = p->be;
        uint64_t sum = 0;

        if (!be || !be->ops->kernel_drops)
                return -1;
        for (unsigned q = 0; q < be->nqueues; q++) {
                struct worker *w = p->dev && q < p->dev->nqueues ? &p->dev->workers[q] : NULL;

                if (w)
                        worker_quiesce(w);
                sum += be->ops->kernel_drops(be, q);
                if (w)
                        worker_release(w);
        }
        return (int64_t)sum;
}

static void report_port(struct out *o, const struct port *p, bool json)
{
        const struct port_cfg *pc = p->cfg;
        struct vu_dev *dev = p->dev;
        bool down = false;
        int64_t kernel_drops = port_kernel_drops(p);

        for (unsigned q = 0; dev && q < dev->nqueues; q++)
                down |= atomic_load(&dev->workers[q].port_down);

        if (json) {
                outf(o, "{\"name\":");
                out_json_str(o, pc->name);
                outf(o, ",\"backend\":");
                out_json_str(o, pc->backend.kind);
                outf(o, ",\"ifname\":");
                out_json_str(o, pc->backend.ifname);
                outf(o, ",\"socket\":");
                out_json_str(o, pc->socket);
                outf(o, ",\"fd_name\":");
                out_json_str(o, pc->fd_name);
                outf(o,
                     ",\"mode\":\"%s\",\"queue_pairs\":%u,\"connected\":%s,\"connections\":%lu,\"port_down\":%s,"
                     "\"port_faults\":%lu,\"port_recoveries\":%lu",
                     pc->mode == PORT_MODE_CLIENT ? "client" : "server", pc->queues, dev ? "true" : "false",
                     p->connections, down ? "true" : "false", LOAD(p->faults), LOAD(p->recoveries));
                if (kernel_drops >= 0)
                        outf(o, ",\"kernel_drops\":%lld", (long long)kernel_drops);
                else
                        outf(o, ",\"kernel_drops\":null");
        } else {
                char sock[160];
                if (pc->socket[0])
                        snprintf(sock, sizeof(sock), "%s", pc->socket);
                else
                        snprintf(sock, sizeof(sock), "inherited fd '%s'", pc->fd_name);
                outf(o, "port %s: %s%s%s, socket %s (%s), %u queue pair%s, %s, %lu connection%s\n", pc->name,
                     pc->backend.kind, pc->backend.ifname[0] ? " " : "", pc->backend.ifname, sock,
                     pc->mode == PORT_MODE_CLIENT ? "client" : "server", pc->queues, pc->queues == 1 ? "" : "s",
                     dev ? "connected" : "no front-end", p->connections, p->connections == 1 ? "" : "s");
                if (down || LOAD(p->faults))
                        outf(o, "  %s, %lu fault%s, %lu recover%s\n", down ? "PORT DOWN" : "port up", LOAD(p->faults),
                             LOAD(p->faults) == 1 ? "" : "s", LOAD(p->recoveries),
                             LOAD(p->recoveries) == 1 ? "y" : "ies");
                if (kernel_drops > 0)
                        outf(o, "  %lld frame%s dropped by the kernel before the port took them (receive ring full)\n",
                             (long long)kernel_drops, kernel_drops == 1 ? "" : "s");
        }
        if (!dev) {
                if (json)
                        outf(o, ",\"vrings\":[]}");
                return;
        }
        if (json)
                outf(o,
                     ",\"features\":\"0x%llx\",\"protocol_features\":\"0x%llx\",\"mtu\":%u,\"vnet_hdr_len\":%u,"
                     "\"vrings\":[",
                     (unsigned long long)dev->features, (unsigned long long)dev->protocol_features, dev->mtu,
                     dev->hdr_len);
        else {
                outf(o, "  features 0x%llx:", (unsigned long long)dev->features);
                out_feature_names(o, dev->features);
                outf(o, "\n  protocol features 0x%llx, mtu %u, vnet header %u bytes\n",
                     (unsigned long long)dev->protocol_features, dev->mtu, dev->hdr_len);
        }
        for (unsigned i = 0; i < 2 * dev->nqueues; i++) {
                struct worker *w = &dev->workers[i / 2];
                const struct vu_vring *vr = &dev->vrings[i];
                const struct vring_stats *s = &vr->stats;

                worker_quiesce(w);
                bool started = vr->started, enabled = vr->enabled, broken = vr->vq.broken;
                unsigned num = vr->vq.num, avail = vr->vq.last_avail_idx, used = vr->vq.used_idx;
                char reason[sizeof(vr->vq.broken_reason)];
                memcpy(reason, vr->vq.broken_reason, sizeof(reason));
                worker_release(w);
                if (json) {
                        outf(o,
                             "%s{\"index\":%u,\"queue_pair\":%u,\"direction\":\"%s\",\"started\":%s,\"enabled\":%s,"
                             "\"size\":%u,\"last_avail_idx\":%u,\"used_idx\":%u,\"broken\":%s,\"broken_reason\":",
                             i ? "," : "", i, i / 2, (i & 1) ? "tx" : "rx", started ? "true" : "false",
                             enabled ? "true" : "false", num, avail, used, broken ? "true" : "false");
                        out_json_str(o, broken ? reason : "");
                        outf(o,
                             ",\"frames\":%lu,\"bytes\":%lu,\"drops\":%lu,\"drop_too_big\":%lu,\"drop_port\":%lu,"
                             "\"kicks\":%lu,\"calls\":%lu,\"wait_guest\":%lu,\"wait_port\":%lu}",
                             LOAD(s->frames), LOAD(s->bytes), LOAD(s->drops), LOAD(s->drop_too_big), LOAD(s->drop_port),
                             LOAD(s->kicks), LOAD(s->calls), LOAD(s->wait_guest), LOAD(s->wait_port));
                } else {
                        outf(o,
                             "  vring %u (%s %u): %s%s size %u, frames %lu, bytes %lu, drops %lu (too big %lu, "
                             "port %lu), kicks %lu, calls %lu%s%s\n",
                             i, (i & 1) ? "tx" : "rx", i / 2, started ? "started" : "stopped",
                             enabled ? "" : " disabled", num, LOAD(s->frames), LOAD(s->bytes), LOAD(s->drops),
                             LOAD(s->drop_too_big), LOAD(s->drop_port), LOAD(s->kicks), LOAD(s->calls),
                             broken ? ", BROKEN: " : "", broken ? reason : "");
                }
        }
        if (json)
                outf(o, "]}");
}

static void client_cb(struct ev_loop *loop, ev_io *io, int revents)
{
        struct ctl *ctl = io->data;
        struct timeval tv = {.tv_sec = 1};
        struct out o = {0};
        char cmd[64] = {0};
        ssize_t n;
        int fd = accept4(ctl->fd, NULL, NULL, SOCK_CLOEXEC);
        bool json;

        if (fd < 0)
                return;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        n = recv(fd, cmd, sizeof(cmd) - 1, 0);
        if (n <= 0) {
                close(fd);
                return;
        }
        cmd[strcspn(cmd, "\r\n")] = 0;
        json = !strcmp(cmd, "json");
        if (!json && strcmp(cmd, "status")) {
                outf(&o, "error: unknown command '%s' (status, json)\n", cmd);
        } else {
                if (json)
                        outf(&o, "{\"ports\":[");
                for (unsigned i = 0; i < ctl->nports; i++) {
                        if (json && i)
                                outf(&o, ",");
                        report_port(&o, &ctl->ports[i], json);
                }
                if (json)
                        outf(&o, "]}\n");
        }
        for (size_t off = 0; o.buf && off < o.len;) {
                n = send(fd, o.buf + off, o.len - off, MSG_NOSIGNAL);
                if (n <= 0)
                        break;
                off += (size_t)n;
        }
        free(o.buf);
        close(fd);
}

int ctl_start(struct ctl *ctl, struct ev_loop *loop, const char *path, struct port *ports, unsigned nports)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct stat st;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_err_errno(-ENAMETOOLONG, "control socket path too long");
        strcpy(sa.sun_path, path);
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void)unlink(path);
        ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (ctl->fd < 0)
                return log_err_errno(-errno, "control socket");
        if (bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ctl->fd, 8) < 0) {
                r = -errno;
                close(ctl->fd);
                ctl->fd = -1;
                return log_err_errno(r, "cannot listen on control socket %s", path);
        }
        (void)chmod(path, 0600);
        snprintf(ctl->path, sizeof(ctl->path), "%s", path);
        ctl->loop = loop;
        ctl->ports = ports;
        ctl->nports = nports;
        ev_io_init(&ctl->io, client_cb, ctl->fd, EV_READ);
        ctl->io.data = ctl;
        ev_io_start(loop, &ctl->io);
        return 0;
}

void ctl_stop(struct ctl *ctl)
{
        if (!ctl->loop)
                return;
        ev_io_stop(ctl->loop, &ctl->io);
        close(ctl->fd);
        (void)unlink(ctl->path);
        ctl->loop = NULL;
}
