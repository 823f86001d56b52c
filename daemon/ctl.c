// SPDX-License-Identifier: MIT
/*
 * The control socket: one command per connection, one answer.
 *
 * Served from the control loop, which also carries every vhost-user message of every port, so nothing here may
 * wait on a client. A client is accepted non-blocking and gets a slot (at most CTL_MAX_CLIENTS; beyond that it is
 * closed at once, with a one-line error when its socket takes it), an ev_io that collects its command line until a
 * newline or its end of sending (at most CTL_CMD_MAX bytes), and an ev_timer that closes it CTL_CLIENT_TIMEOUT
 * seconds after accept, whatever it did or did not send. The answer is built in memory in one go (see below), then
 * written as the socket takes it (EV_WRITE), and the client is closed. A client that says nothing, reads nothing or
 * connects sixteen times over costs a slot and an fd for a few seconds, never a stall of the loop.
 *
 * The answer comes from a snapshot: every port's state and counters copied under each worker's lock (so the ring
 * state of a queue pair is consistent, and the lock is held for a copy, not for formatting), then rendered as
 * text ("status"), JSON ("json") or Prometheus text exposition ("prometheus", for node_exporter's textfile
 * collector, and the flat format vhostctl --watch reads its counters from).
 */
#include "daemon/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/caps.h"
#include "daemon/port.h"
#include "daemon/vu.h"

#define CTL_CMD_MAX 1024    /* a command line longer than this is refused (upgrade PATH) */
#define CTL_ACCEPT_BURST 32 /* accepts per wake-up, so a flood of connections shares the loop with the ports */
#define CTL_ACCEPT_PAUSE 1.0
#define CTL_BACKLOG 64

struct out {
        char *buf;
        size_t len, cap;
        bool failed; /* out of memory: the answer is incomplete */
};

struct ctl_client {
        struct ctl *ctl;
        unsigned slot;
        int fd;
        ev_io io;
        ev_timer timer;
        char cmd[CTL_CMD_MAX + 1];
        size_t cmd_len;
        bool answering;
        struct out ans;
        const char *wbuf; /* the answer, or a static error line */
        size_t wlen, woff;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (o->failed)
                return;
        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(o->buf ? o->buf + o->len : NULL, o->buf ? o->cap - o->len : 0, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        o->failed = true;
                        return;
                }
                if (o->buf && o->len + (size_t)n < o->cap) {
                        o->len += (size_t)n;
                        return;
                }
                size_t cap = (o->cap ? o->cap * 2 : 4096) + (size_t)n;
                char *b = realloc(o->buf, cap);
                if (!b) {
                        o->failed = true;
                        return;
                }
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

/* A Prometheus label value: backslash, double quote and newline escaped, as the text format wants. */
static void out_prom_str(struct out *o, const char *s)
{
        outf(o, "\"");
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        outf(o, "\\%c", *s);
                else if (*s == '\n')
                        outf(o, "\\n");
                else
                        outf(o, "%c", *s);
        }
        outf(o, "\"");
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void out_feature_names(struct out *o, uint64_t f)
{
        for (unsigned b = 0; b < 64; b++)
                if (f & (1ULL << b)) {
                        if (virtio_feature_name(b))
                                outf(o, " %s", virtio_feature_name(b));
                        else
                                outf(o, " bit%u", b);
                }
}

/* ---- snapshot -------------------------------------------------------------------------------------------- */

struct vring_snap {
        bool started, enabled, broken;
        unsigned num, avail, used;
        char reason[sizeof(((struct vq *)0)->broken_reason)];
        unsigned long frames, bytes, drops, drop_too_big, drop_port, kicks, calls, wait_guest, wait_port, retry_wakeups;
};

struct port_snap {
        const struct port *p;
        bool connected, down;
        int64_t kernel_drops; /* -1: the port kind cannot tell */
        unsigned long connections, faults, recoveries;
        uint64_t features, protocol_features;
        unsigned mtu, hdr_len;
        unsigned mem_regions; /* guest memory the connection shared */
        unsigned long long mem_bytes;
        bool logging; /* live migration: LOG_ALL on with a dirty log */
        unsigned nvrings;
        struct vring_snap vr[VU_MAX_VRINGS];
};

/* Frames the kernel dropped before the port took them, over all queues; -1 when the port kind cannot tell. */
static int64_t port_kernel_drops(struct port *p)
{
        struct backend *be = p->be;
        uint64_t sum = 0;

        if (!be || !be->ops->kernel_drops)
                return -1;
        for (unsigned q = 0; q < be->nqueues; q++) {
                struct worker *w = p->dev && q < p->dev->nqueues ? &p->dev->workers[q] : NULL;

                if (w)
                        worker_quiesce(w);
                /* A queue whose port is being recovered is left alone: its last count stands. */
                if (!w || !atomic_load(&w->recovering))
                        p->kernel_drops_seen[q] = be->ops->kernel_drops(be, q);
                sum += p->kernel_drops_seen[q];
                if (w)
                        worker_release(w);
        }
        return (int64_t)sum;
}

static void vring_copy(struct vring_snap *s, const struct vu_vring *vr)
{
        const struct vring_stats *st = &vr->stats;

        s->started = vr->started;
        s->enabled = vr->enabled;
        s->broken = vr->vq.broken;
        s->num = vr->vq.num;
        s->avail = vr->vq.last_avail_idx;
        s->used = vr->vq.used_idx;
        memcpy(s->reason, vr->vq.broken_reason, sizeof(s->reason));
        s->reason[sizeof(s->reason) - 1] = 0;
        s->frames = LOAD(st->frames);
        s->bytes = LOAD(st->bytes);
        s->drops = LOAD(st->drops);
        s->drop_too_big = LOAD(st->drop_too_big);
        s->drop_port = LOAD(st->drop_port);
        s->kicks = LOAD(st->kicks);
        s->calls = LOAD(st->calls);
        s->wait_guest = LOAD(st->wait_guest);
        s->wait_port = LOAD(st->wait_port);
        s->retry_wakeups = LOAD(st->retry_wakeups);
}

/* Copies a port's state; each queue pair's two vrings under that worker's lock, held only for the copy. */
static void port_snapshot(struct port_snap *s, struct port *p)
{
        struct vu_dev *dev = p->dev;

        s->p = p;
        s->kernel_drops = port_kernel_drops(p);
        s->connected = dev != NULL;
        s->connections = p->connections;
        s->faults = LOAD(p->faults);
        s->recoveries = LOAD(p->recoveries);
        if (!dev)
                return;
        s->features = dev->features;
        s->protocol_features = dev->protocol_features;
        s->mtu = dev->mtu;
        s->hdr_len = dev->hdr_len;
        /* The memory table and the log change only in this thread: no worker lock needed to read them. */
        for (unsigned i = 0; dev->mem && i < dev->mem->nregions; i++)
                s->mem_bytes += dev->mem->regions[i].size;
        s->mem_regions = dev->mem ? dev->mem->nregions : 0;
        s->logging = dev->log && (dev->features & BIT_ULL(VHOST_F_LOG_ALL));
        s->nvrings = 2 * dev->nqueues;
        for (unsigned q = 0; q < dev->nqueues; q++) {
                struct worker *w = &dev->workers[q];

                s->down |= atomic_load(&w->port_down);
                worker_quiesce(w);
                vring_copy(&s->vr[2 * q], &dev->vrings[2 * q]);
                vring_copy(&s->vr[2 * q + 1], &dev->vrings[2 * q + 1]);
                worker_release(w);
        }
}

/* ---- text and JSON ---------------------------------------------------------------------------------------- */

static void render_port_json(struct out *o, const struct port_snap *s)
{
        const struct port_cfg *pc = s->p->cfg;

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
             pc->mode == PORT_MODE_CLIENT ? "client" : "server", pc->queues, s->connected ? "true" : "false",
             s->connections, s->down ? "true" : "false", s->faults, s->recoveries);
        if (s->kernel_drops >= 0)
                outf(o, ",\"kernel_drops\":%lld", (long long)s->kernel_drops);
        else
                outf(o, ",\"kernel_drops\":null");
        if (!s->connected) {
                outf(o, ",\"vrings\":[]}");
                return;
        }
        outf(o,
             ",\"features\":\"0x%llx\",\"protocol_features\":\"0x%llx\",\"mtu\":%u,\"vnet_hdr_len\":%u,"
             "\"mem_regions\":%u,\"mem_bytes\":%llu,\"dirty_logging\":%s,\"vrings\":[",
             (unsigned long long)s->features, (unsigned long long)s->protocol_features, s->mtu, s->hdr_len,
             s->mem_regions, s->mem_bytes, s->logging ? "true" : "false");
        for (unsigned i = 0; i < s->nvrings; i++) {
                const struct vring_snap *v = &s->vr[i];

                outf(o,
                     "%s{\"index\":%u,\"queue_pair\":%u,\"direction\":\"%s\",\"started\":%s,\"enabled\":%s,"
                     "\"size\":%u,\"last_avail_idx\":%u,\"used_idx\":%u,\"broken\":%s,\"broken_reason\":",
                     i ? "," : "", i, i / 2, (i & 1) ? "tx" : "rx", v->started ? "true" : "false",
                     v->enabled ? "true" : "false", v->num, v->avail, v->used, v->broken ? "true" : "false");
                out_json_str(o, v->broken ? v->reason : "");
                outf(o,
                     ",\"frames\":%lu,\"bytes\":%lu,\"drops\":%lu,\"drop_too_big\":%lu,\"drop_port\":%lu,"
                     "\"kicks\":%lu,\"calls\":%lu,\"wait_guest\":%lu,\"wait_port\":%lu,\"retry_wakeups\":%lu}",
                     v->frames, v->bytes, v->drops, v->drop_too_big, v->drop_port, v->kicks, v->calls, v->wait_guest,
                     v->wait_port, v->retry_wakeups);
        }
        outf(o, "]}");
}

static void render_port_text(struct out *o, const struct port_snap *s)
{
        const struct port_cfg *pc = s->p->cfg;
        char sock[160];

        if (pc->socket[0])
                snprintf(sock, sizeof(sock), "%s", pc->socket);
        else
                snprintf(sock, sizeof(sock), "inherited fd '%s'", pc->fd_name);
        outf(o, "port %s: %s%s%s, socket %s (%s), %u queue pair%s, %s, %lu connection%s\n", pc->name, pc->backend.kind,
             pc->backend.ifname[0] ? " " : "", pc->backend.ifname, sock,
             pc->mode == PORT_MODE_CLIENT ? "client" : "server", pc->queues, pc->queues == 1 ? "" : "s",
             s->connected ? "connected" : "no front-end", s->connections, s->connections == 1 ? "" : "s");
        if (s->down || s->faults)
                outf(o, "  %s, %lu fault%s, %lu recover%s\n", s->down ? "PORT DOWN" : "port up", s->faults,
                     s->faults == 1 ? "" : "s", s->recoveries, s->recoveries == 1 ? "y" : "ies");
        if (s->kernel_drops > 0)
                outf(o, "  %lld frame%s dropped by the kernel before the port took them (receive ring full)\n",
                     (long long)s->kernel_drops, s->kernel_drops == 1 ? "" : "s");
        if (!s->connected)
                return;
        outf(o, "  features 0x%llx:", (unsigned long long)s->features);
        out_feature_names(o, s->features);
        outf(o, "\n  protocol features 0x%llx, mtu %u, vnet header %u bytes\n",
             (unsigned long long)s->protocol_features, s->mtu, s->hdr_len);
        outf(o, "  guest memory: %u region%s, %llu MiB%s\n", s->mem_regions, s->mem_regions == 1 ? "" : "s",
             s->mem_bytes >> 20, s->logging ? "; dirty logging on (live migration)" : "");
        for (unsigned i = 0; i < s->nvrings; i++) {
                const struct vring_snap *v = &s->vr[i];

                outf(o,
                     "  vring %u (%s %u): %s%s size %u, frames %lu, bytes %lu, drops %lu (too big %lu, "
                     "port %lu), kicks %lu, calls %lu%s%s\n",
                     i, (i & 1) ? "tx" : "rx", i / 2, v->started ? "started" : "stopped", v->enabled ? "" : " disabled",
                     v->num, v->frames, v->bytes, v->drops, v->drop_too_big, v->drop_port, v->kicks, v->calls,
                     v->broken ? ", BROKEN: " : "", v->broken ? v->reason : "");
        }
}

/* ---- Prometheus text exposition (version 0.0.4) ---------------------------------------------------------------- */

/*
 * One family per metric: HELP, TYPE, then its samples for every port (or vring), as the format requires. A family
 * whose samples are all absent (vrings before any front-end) keeps its HELP and TYPE lines, which is valid.
 */
enum prom_type { PROM_GAUGE, PROM_COUNTER };

struct port_metric {
        const char *name, *help;
        enum prom_type type;
        bool (*get)(const struct port_snap *s, unsigned long long *ret); /* false: no sample for this port */
};

#define PORT_GETTER(fn, expr)                                                                                          \
        static bool fn(const struct port_snap *s, unsigned long long *ret)                                             \
        {                                                                                                              \
                *ret = (unsigned long long)(expr);                                                                     \
                return true;                                                                                           \
        }
PORT_GETTER(get_queue_pairs, s->p->cfg->queues)
PORT_GETTER(get_connected, s->connected)
PORT_GETTER(get_connections, s->connections)
PORT_GETTER(get_down, s->down)
PORT_GETTER(get_faults, s->faults)
PORT_GETTER(get_recoveries, s->recoveries)
PORT_GETTER(get_mem_regions, s->mem_regions)
PORT_GETTER(get_logging, s->logging)

static bool get_kernel_drops(const struct port_snap *s, unsigned long long *ret)
{
        *ret = (unsigned long long)s->kernel_drops;
        return s->kernel_drops >= 0;
}

static const struct port_metric port_metrics[] = {
        {"vhostd_port_queue_pairs", "Queue pairs configured.", PROM_GAUGE, get_queue_pairs},
        {"vhostd_port_connected", "1 while a front-end is connected, else 0.", PROM_GAUGE, get_connected},
        {"vhostd_port_connections_total", "Front-ends accepted (or connected to) since vhostd started.", PROM_COUNTER,
         get_connections},
        {"vhostd_port_down", "1 while a queue pair of the connected front-end has lost the port and waits for it.",
         PROM_GAUGE, get_down},
        {"vhostd_port_faults_total", "Times a queue pair lost the port (link down, interface deleted).", PROM_COUNTER,
         get_faults},
        {"vhostd_port_recoveries_total", "Times a queue pair got the port back after a fault.", PROM_COUNTER,
         get_recoveries},
        {"vhostd_port_mem_regions", "Guest memory regions the connected front-end shared (0 without one).", PROM_GAUGE,
         get_mem_regions},
        {"vhostd_port_dirty_logging", "1 while the front-end migrates the guest (dirty log on), else 0.", PROM_GAUGE,
         get_logging},
        {"vhostd_port_kernel_drops_total",
         "Frames the kernel dropped because the port's receive ring was full (rawsock and afxdp ports only).",
         PROM_COUNTER, get_kernel_drops},
};

struct vring_metric {
        const char *name, *help;
        enum prom_type type;
        unsigned long long (*get)(const struct vring_snap *v);
};

#define VRING_GETTER(fn, field)                                                                                        \
        static unsigned long long fn(const struct vring_snap *v)                                                       \
        {                                                                                                              \
                return (unsigned long long)v->field;                                                                   \
        }
VRING_GETTER(get_started, started)
VRING_GETTER(get_enabled, enabled)
VRING_GETTER(get_broken, broken)
VRING_GETTER(get_size, num)
VRING_GETTER(get_frames, frames)
VRING_GETTER(get_bytes, bytes)
VRING_GETTER(get_drops, drops)
VRING_GETTER(get_drop_too_big, drop_too_big)
VRING_GETTER(get_drop_port, drop_port)
VRING_GETTER(get_kicks, kicks)
VRING_GETTER(get_calls, calls)
VRING_GETTER(get_wait_guest, wait_guest)
VRING_GETTER(get_wait_port, wait_port)
VRING_GETTER(get_retry_wakeups, retry_wakeups)

static const struct vring_metric vring_metrics[] = {
        {"vhostd_vring_started", "1 while the ring runs (kicked since it was set up).", PROM_GAUGE, get_started},
        {"vhostd_vring_enabled", "1 while the front-end has the ring enabled.", PROM_GAUGE, get_enabled},
        {"vhostd_vring_broken", "1 once the guest broke the virtio rules on this ring (it then stops).", PROM_GAUGE,
         get_broken},
        {"vhostd_vring_size", "Ring size (descriptors).", PROM_GAUGE, get_size},
        {"vhostd_vring_frames_total", "Frames moved: into the guest on rx, from the guest on tx.", PROM_COUNTER,
         get_frames},
        {"vhostd_vring_bytes_total", "Bytes of those frames, without the virtio-net header.", PROM_COUNTER, get_bytes},
        {"vhostd_vring_drops_total", "Frames dropped, for any reason.", PROM_COUNTER, get_drops},
        {"vhostd_vring_drops_too_big_total", "Of the drops: rx frames that could never fit the guest's buffers.",
         PROM_COUNTER, get_drop_too_big},
        {"vhostd_vring_drops_port_total", "Of the drops: tx frames the port refused for good.", PROM_COUNTER,
         get_drop_port},
        {"vhostd_vring_kicks_total", "Notifications from the guest.", PROM_COUNTER, get_kicks},
        {"vhostd_vring_calls_total", "Interrupts sent to the guest.", PROM_COUNTER, get_calls},
        {"vhostd_vring_wait_guest_total", "Times the worker had to wait for guest buffers (rx).", PROM_COUNTER,
         get_wait_guest},
        {"vhostd_vring_wait_port_total", "Times the worker had to wait for room in the port (tx).", PROM_COUNTER,
         get_wait_port},
        {"vhostd_vring_retry_wakeups_total",
         "Times the worker woke on its retry timer for a full port that gives no notification (tx).", PROM_COUNTER,
         get_retry_wakeups},
};

static void out_prom_family(struct out *o, const char *name, const char *help, enum prom_type type)
{
        outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type == PROM_COUNTER ? "counter" : "gauge");
}

static void render_prometheus(struct out *o, const struct port_snap *snaps, unsigned n)
{
        out_prom_family(o, "vhostd_port_info", "A configured port: its backend, interface, socket and mode (always 1).",
                        PROM_GAUGE);
        for (unsigned i = 0; i < n; i++) {
                const struct port_cfg *pc = snaps[i].p->cfg;

                outf(o, "vhostd_port_info{port=");
                out_prom_str(o, pc->name);
                outf(o, ",backend=");
                out_prom_str(o, pc->backend.kind);
                outf(o, ",ifname=");
                out_prom_str(o, pc->backend.ifname);
                outf(o, ",socket=");
                out_prom_str(o, pc->socket);
                outf(o, ",mode=\"%s\"} 1\n", pc->mode == PORT_MODE_CLIENT ? "client" : "server");
        }
        for (size_t m = 0; m < sizeof(port_metrics) / sizeof(port_metrics[0]); m++) {
                const struct port_metric *pm = &port_metrics[m];

                out_prom_family(o, pm->name, pm->help, pm->type);
                for (unsigned i = 0; i < n; i++) {
                        unsigned long long v;

                        if (!pm->get(&snaps[i], &v))
                                continue;
                        outf(o, "%s{port=", pm->name);
                        out_prom_str(o, snaps[i].p->cfg->name);
                        outf(o, "} %llu\n", v);
                }
        }
        for (size_t m = 0; m < sizeof(vring_metrics) / sizeof(vring_metrics[0]); m++) {
                out_prom_family(o, vring_metrics[m].name, vring_metrics[m].help, vring_metrics[m].type);
                for (unsigned i = 0; i < n; i++) {
                        for (unsigned r = 0; r < snaps[i].nvrings; r++) {
                                outf(o, "%s{port=", vring_metrics[m].name);
                                out_prom_str(o, snaps[i].p->cfg->name);
                                outf(o, ",vring=\"%u\",queue_pair=\"%u\",direction=\"%s\"} %llu\n", r, r / 2,
                                     (r & 1) ? "tx" : "rx", vring_metrics[m].get(&snaps[i].vr[r]));
                        }
                }
        }
}

/* ---- the answer ---------------------------------------------------------------------------------------------- */

enum ctl_cmd { CMD_STATUS, CMD_JSON, CMD_PROMETHEUS };

static void build_answer(struct ctl *ctl, enum ctl_cmd cmd, struct out *o)
{
        struct port_snap *snaps = calloc(ctl->nports ? ctl->nports : 1, sizeof(*snaps));

        if (!snaps) {
                o->failed = true;
                return;
        }
        for (unsigned i = 0; i < ctl->nports; i++)
                port_snapshot(&snaps[i], &ctl->ports[i]);
        switch (cmd) {
        case CMD_STATUS:
                for (unsigned i = 0; i < ctl->nports; i++)
                        render_port_text(o, &snaps[i]);
                break;
        case CMD_JSON:
                outf(o, "{\"ports\":[");
                for (unsigned i = 0; i < ctl->nports; i++) {
                        if (i)
                                outf(o, ",");
                        render_port_json(o, &snaps[i]);
                }
                outf(o, "]}\n");
                break;
        case CMD_PROMETHEUS:
                render_prometheus(o, snaps, ctl->nports);
                break;
        }
        free(snaps);
}

/* ---- clients ------------------------------------------------------------------------------------------------- */

/*
 * Input left unread makes the kernel reset the connection at close: the client would read ECONNRESET after our
 * answer instead of the end of it. Take what is there (a bounded amount; a client that floods us gets its reset).
 */
static void close_drained(int fd)
{
        char sink[4096];

        for (unsigned i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
                ;
        close(fd);
}

static void client_close(struct ctl_client *c)
{
        struct ctl *ctl = c->ctl;

        ev_io_stop(ctl->loop, &c->io);
        ev_timer_stop(ctl->loop, &c->timer);
        close_drained(c->fd);
        free(c->ans.buf);
        ctl->clients[c->slot] = NULL;
        ctl->nclients--;
        free(c);
}

/* Writes what the socket takes; closes the client when all is written or the client is gone. */
static void client_write(struct ctl_client *c)
{
        while (c->woff < c->wlen) {
                ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                        if (!ev_is_active(&c->io)) {
                                ev_io_set(&c->io, c->fd, EV_WRITE);
                                ev_io_start(c->ctl->loop, &c->io);
                        }
                        return;
                }
                if (n <= 0)
                        break; /* EPIPE, ECONNRESET: the client left before its answer */
                c->woff += (size_t)n;
        }
        client_close(c);
}

/* The upgrade's outcome. On success the process exits when this returns: the answer goes out now, blocking. */
static void upgrade_done(void *arg, bool ok, const char *text)
{
        struct ctl_client *c = arg;

        c->ctl->upgrading = false;
        outf(&c->ans, "%s%s\n", ok ? "" : "error: upgrade failed: ", text);
        c->wbuf = c->ans.buf;
        c->wlen = c->ans.failed ? 0 : c->ans.len;
        if (ok) {
                struct timeval tv = {.tv_sec = 1};

                (void)fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
                (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                (void)!send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
                return;
        }
        ev_timer_set(&c->timer, CTL_CLIENT_TIMEOUT, 0.);
        ev_timer_start(c->ctl->loop, &c->timer);
        client_write(c);
}

/* 0: the upgrade started and the client waits for its end (no timeout meanwhile); else its answer is in c->ans. */
static int client_upgrade(struct ctl_client *c, const char *binary)
{
        char err[512];

        if (c->ctl->upgrading) {
                outf(&c->ans, "error: an upgrade is under way\n");
                return -EBUSY;
        }
        if (c->ctl->upgrade(binary && binary[0] ? binary : NULL, upgrade_done, c, err, sizeof(err)) < 0) {
                outf(&c->ans, "error: upgrade not started: %s\n", err);
                return -EINVAL;
        }
        c->ctl->upgrading = true;
        ev_timer_stop(c->ctl->loop, &c->timer); /* the upgrade has its own timeouts */
        return 0;
}

static void client_answer(struct ctl_client *c, const char *errline)
{
        ev_io_stop(c->ctl->loop, &c->io);
        c->answering = true;
        if (!errline) {
                char *cmd = c->cmd;

                cmd[strcspn(cmd, "\r\n")] = 0;
                for (size_t l = strlen(cmd); l && (cmd[l - 1] == ' ' || cmd[l - 1] == '\t');)
                        cmd[--l] = 0;
                if (!strcmp(cmd, "status"))
                        build_answer(c->ctl, CMD_STATUS, &c->ans);
                else if (!strcmp(cmd, "json"))
                        build_answer(c->ctl, CMD_JSON, &c->ans);
                else if (!strcmp(cmd, "prometheus"))
                        build_answer(c->ctl, CMD_PROMETHEUS, &c->ans);
                else if (c->ctl->upgrade && (!strcmp(cmd, "upgrade") || !strncmp(cmd, "upgrade ", 8))) {
                        if (client_upgrade(c, cmd[7] ? cmd + 8 : NULL) == 0)
                                return; /* answered when the upgrade ends */
                } else {
                        for (char *p = cmd; *p; p++)
                                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '\'')
                                        *p = '?';
                        outf(&c->ans, "error: unknown command '%s' (status, json, prometheus, upgrade)\n", cmd);
                }
                if (c->ans.failed)
                        errline = "error: out of memory\n";
        }
        if (errline) {
                c->wbuf = errline;
                c->wlen = strlen(errline);
        } else {
                c->wbuf = c->ans.buf;
                c->wlen = c->ans.len;
        }
        client_write(c);
}

/* Collects the command line: up to a newline, or the end of the client's sending. */
static void client_read(struct ctl_client *c)
{
        for (;;) {
                size_t room = CTL_CMD_MAX - c->cmd_len;
                ssize_t n;

                if (!room) {
                        client_answer(c, "error: command too long\n");
                        return;
                }
                n = recv(c->fd, c->cmd + c->cmd_len, room, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return;
                if (n < 0 || (n == 0 && !c->cmd_len)) {
                        client_close(c); /* gone, or left without a word */
                        return;
                }
                c->cmd_len += (size_t)n;
                c->cmd[c->cmd_len] = 0;
                if (n == 0 || memchr(c->cmd + c->cmd_len - (size_t)n, '\n', (size_t)n)) {
                        client_answer(c, NULL);
                        return;
                }
        }
}

static void client_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
        struct ctl_client *c = io->data;

        (void)loop;
        (void)revents;
        if (c->answering)
                client_write(c);
        else
                client_read(c);
}

static void client_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
        struct ctl_client *c = t->data;

        (void)loop;
        (void)revents;
        log_debug("control socket: a client %s within %.0f s, closed",
                  c->answering ? "did not read its answer" : "sent no command", CTL_CLIENT_TIMEOUT);
        client_close(c);
}

/* All slots taken (or no memory): say so if the socket takes it at once, and close. */
static void client_refuse(struct ctl *ctl, int fd)
{
        static const char msg[] = "error: too many control clients, try again\n";

        (void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        close_drained(fd);
        ctl->refused++;
        if (ratelimit_ok(&ctl->refuse_rl, 10000, 1)) {
                log_warn("control socket: %u clients connected, the most served at once; refused %lu more%s",
                         ctl->nclients, ctl->refused - ctl->refused_logged,
                         ctl->refused_logged ? " since the last message" : "");
                ctl->refused_logged = ctl->refused;
        }
}

static void client_new(struct ctl *ctl, int fd)
{
        struct ctl_client *c;
        unsigned slot = 0;

        while (slot < CTL_MAX_CLIENTS && ctl->clients[slot])
                slot++;
        if (slot == CTL_MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
                client_refuse(ctl, fd);
                return;
        }
        c->ctl = ctl;
        c->slot = slot;
        c->fd = fd;
        ctl->clients[slot] = c;
        ctl->nclients++;
        ev_io_init(&c->io, client_io_cb, fd, EV_READ);
        c->io.data = c;
        ev_timer_init(&c->timer, client_timeout_cb, CTL_CLIENT_TIMEOUT, 0.);
        c->timer.data = c;
        ev_io_start(ctl->loop, &c->io);
        ev_timer_start(ctl->loop, &c->timer);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
        struct ctl *ctl = io->data;

        (void)revents;
        for (unsigned i = 0; i < CTL_ACCEPT_BURST; i++) {
                int fd = accept4(ctl->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (fd >= 0) {
                        client_new(ctl, fd);
                        continue;
                }
                if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                        return;
                /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays queued and the socket readable, so
                 * rest the listener instead of spinning on it. */
                if (ratelimit_ok(&ctl->accept_rl, 10000, 1))
                        (void)log_warn_errno(-errno, "control socket: cannot accept a client, pausing for %.0f s",
                                             CTL_ACCEPT_PAUSE);
                ev_io_stop(loop, &ctl->io);
                ev_timer_set(&ctl->accept_pause, CTL_ACCEPT_PAUSE, 0.);
                ev_timer_start(loop, &ctl->accept_pause);
                return;
        }
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
        struct ctl *ctl = t->data;

        (void)revents;
        ev_io_start(loop, &ctl->io);
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
        if (bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ctl->fd, CTL_BACKLOG) < 0) {
                r = -errno;
                close(ctl->fd);
                ctl->fd = -1;
                return log_err_errno(r, "cannot listen on control socket %s", path);
        }
        (void)chmod(path, 0600);
        return ctl_start_fd(ctl, loop, ctl->fd, path, ports, nports);
}

int ctl_start_fd(struct ctl *ctl, struct ev_loop *loop, int fd, const char *path, struct port *ports, unsigned nports)
{
        ctl->fd = fd;
        snprintf(ctl->path, sizeof(ctl->path), "%s", path);
        ctl->loop = loop;
        ctl->ports = ports;
        ctl->nports = nports;
        ctl->nclients = 0;
        memset(ctl->clients, 0, sizeof(ctl->clients));
        ev_io_init(&ctl->io, accept_cb, ctl->fd, EV_READ);
        /* Last of an iteration's events: vhost-user messages first, and clients that left free their slot before
         * a new one is turned away for lack of one. */
        ev_set_priority(&ctl->io, EV_MINPRI);
        ctl->io.data = ctl;
        ev_init(&ctl->accept_pause, accept_pause_cb);
        ctl->accept_pause.data = ctl;
        ev_io_start(loop, &ctl->io);
        return 0;
}

void ctl_stop(struct ctl *ctl)
{
        if (!ctl->loop)
                return;
        for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
                if (ctl->clients[i])
                        client_close(ctl->clients[i]);
        ev_io_stop(ctl->loop, &ctl->io);
        ev_timer_stop(ctl->loop, &ctl->accept_pause);
        close(ctl->fd);
        ctl->fd = -1;
        (void)unlink(ctl->path);
        ctl->loop = NULL;
}
