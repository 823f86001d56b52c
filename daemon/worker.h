/* SPDX-License-Identifier: MIT */
/*
 * A worker: the data path of one queue pair, on its own thread. It sees a narrow context (its two vrings, its
 * queue of the port, the negotiated frame format, the data-path settings, the port's fault counters and one
 * way to tell the control thread) and nothing above it: no connection, no port, no configuration. The control
 * thread changes what the worker reads only while holding the worker's lock (worker_quiesce()).
 */
#ifndef DAEMON_WORKER_H
#define DAEMON_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "daemon/log.h"
#include "vring/vq.h"

/* Per-vring counters; written by the worker, read by vhostctl (relaxed atomics). */
struct vring_stats {
        atomic_ulong frames;
        atomic_ulong bytes;
        atomic_ulong drops;        /* frames dropped, for the reason counted alongside */
        atomic_ulong drop_too_big; /* rx: frame larger than the guest's buffers */
        atomic_ulong drop_port;    /* tx: the port refused the frame for good */
        atomic_ulong kicks;
        atomic_ulong calls;
        atomic_ulong wait_guest;    /* rx: had to wait for guest buffers */
        atomic_ulong wait_port;     /* tx: had to wait for room in the port */
        atomic_ulong retry_wakeups; /* tx: woke on the retry timer (a port full without a notification) */
};

struct vu_vring {
        struct vq vq;
        unsigned index;
        uint64_t desc_uva, avail_uva, used_uva;
        bool addr_set;
        bool mapped;             /* ring pointers valid for the current memory table */
        bool log_used;           /* SET_VRING_ADDR asked for used-ring logging (VU_VRING_F_LOG) */
        uint64_t log_guest_addr; /* the used ring's guest-physical address, for the log */
        bool started;            /* kick received since the last stop */
        bool enabled;
        int kick_fd, call_fd, err_fd; /* -1 when none */
        bool broken_reported;
        struct vring_stats stats;
};

/* Whether a worker may run this ring now: started, enabled, mapped (so guest memory is there), not broken. */
static inline bool vu_vring_ready(const struct vu_vring *vr)
{
        return vr->started && vr->enabled && vr->mapped && !vr->vq.broken;
}

/* The negotiated frame format, pushed to the worker by the control thread (worker_set_net()). */
struct worker_net {
        uint64_t features;
        unsigned hdr_len;
        unsigned mtu;
};

struct worker_ctx {
        unsigned qp;
        struct vu_vring *rx, *tx;
        struct backend *be; /* queue qp of it */
        struct worker_net net;
        int log_fd; /* SET_LOG_FD eventfd, signalled after a burst the dirty log recorded; -1: none */
        unsigned burst;
        unsigned busy_poll_us; /* poll this long after the last work; 0: adaptive_poll decides */
        bool adaptive_poll;    /* with busy_poll_us 0: poll briefly while work keeps coming back soon */
        int cpu;               /* pin to this CPU, -1: not pinned */
        atomic_ulong *port_faults, *port_recoveries; /* the port's, over all connections */
        struct ev_loop *loop;                        /* ev_async_send(loop, notify): the control thread looks */
        ev_async *notify;
};

struct worker {
        struct worker_ctx ctx;
        pthread_t thread;
        bool running;
        pthread_mutex_t lock;
        int epoll_fd;
        int wake_fd; /* eventfd: the control thread changed something */
        atomic_bool stop;
        atomic_bool port_down; /* set by the worker; the control thread logs changes once */
        atomic_int port_err;
        atomic_ulong port_faults; /* times it went down, for the control thread's log */
        atomic_int link_event;    /* WORKER_LINK_*: the control thread saw the port's interface change */
        /* The worker is in the port's recover() without its lock: the control thread, which may hold the lock
         * meanwhile, leaves the port's queue alone (worker_configure_port() defers, worker_send_raw() refuses). */
        atomic_bool recovering;
        bool configure_pending;
        bool port_down_logged;
        int port_err_logged;
        unsigned long port_faults_logged;
        struct ratelimit port_log_rl; /* a port that keeps failing must not flood the log */
        /* Set once by the worker when it can no longer serve the device (guest memory gone, epoll failed);
         * the control thread then closes the connection. lost_addr: the faulting address, for the log. */
        atomic_int lost_err;
        _Atomic(uintptr_t) lost_addr;
        struct worker_data *data; /* the data path's private state (worker.c) */
};

int worker_start(struct worker *w, const struct worker_ctx *ctx);
void worker_stop(struct worker *w);
void worker_quiesce(struct worker *w);
/* The port's interface was deleted (GONE) or appeared (NEW): the worker looks at the port now. */
enum { WORKER_LINK_GONE = 1, WORKER_LINK_NEW = 2 };
void worker_link_event(struct worker *w, int what);
/* Moves the worker's wait from old_fd to new_fd for a kick eventfd (either may be -1). */
int worker_set_kick(struct worker *w, unsigned vring_index, int old_fd, int new_fd);
void worker_resume(struct worker *w);
/* Ends a worker_quiesce() without waking the worker: nothing changed that it must look at (a read-only look). */
void worker_release(struct worker *w);
/* Gives back chains popped but not completed (before a ring stops or memory changes). Quiesced only. */
void worker_return_chains(struct worker *w);
/* The negotiated frame format changed (features, MTU). Quiesced only. */
void worker_set_net(struct worker *w, const struct worker_net *net);
/* The dirty log's eventfd changed (SET_LOG_FD; -1: none). Quiesced only. */
void worker_set_log_fd(struct worker *w, int fd);
/* Applies the negotiated offloads to the port's queue (at ring start); deferred while the port recovers.
 * Quiesced only. */
int worker_configure_port(struct worker *w);
/* Sends one frame out of the port from the control thread (RARP). Quiesced only; -ENETDOWN while it recovers. */
int worker_send_raw(struct worker *w, const void *frame, size_t len);

#endif
