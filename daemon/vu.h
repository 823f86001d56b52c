/* SPDX-License-Identifier: MIT */
/*
 * One vhost-user connection (a "device"): its negotiated state, guest memory, vrings and per-queue-pair
 * workers. Owned by the control thread; a worker reads the vrings of its queue pair only while holding
 * its lock, and the control thread changes them only while holding that same lock (quiescing).
 */
#ifndef DAEMON_VU_H
#define DAEMON_VU_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "config/config.h"
#include "daemon/log.h"
#include "daemon/vu_proto.h"
#include "vring/mem.h"
#include "vring/vq.h"

#define VU_MAX_QUEUE_PAIRS CONFIG_MAX_QUEUES
#define VU_MAX_VRINGS (2 * VU_MAX_QUEUE_PAIRS)

/* Per-vring counters; written by the worker, read by vhostctl (relaxed atomics). */
struct vring_stats {
        atomic_ulong frames;
        atomic_ulong bytes;
        atomic_ulong drops;        /* frames dropped, for the reason counted alongside */
        atomic_ulong drop_too_big; /* rx: frame larger than the guest's buffers */
        atomic_ulong drop_port;    /* tx: the port refused the frame for good */
        atomic_ulong kicks;
        atomic_ulong calls;
        atomic_ulong wait_guest; /* rx: had to wait for guest buffers */
        atomic_ulong wait_port;  /* tx: had to wait for room in the port */
};

struct vu_vring {
        struct vq vq;
        unsigned index;
        uint64_t desc_uva, avail_uva, used_uva;
        bool addr_set;
        bool mapped;  /* ring pointers valid for the current memory table */
        bool started; /* kick received since the last stop */
        bool enabled;
        int kick_fd, call_fd, err_fd; /* -1 when none */
        bool broken_reported;
        struct vring_stats stats;
};

struct vu_dev;

struct worker {
        struct vu_dev *dev;
        unsigned qp;
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
        bool port_down_logged;
        int port_err_logged;
        unsigned long port_faults_logged;
        struct ratelimit port_log_rl; /* a port that keeps failing must not flood the log */
        /* Set once by the worker when it can no longer serve the device (guest memory gone, epoll failed);
         * the control thread then closes the connection. lost_addr: the faulting address, for the log. */
        atomic_int lost_err;
        _Atomic(uintptr_t) lost_addr;
        struct worker_data *data;     /* the data path's private state (worker.c) */
};

struct port;

struct vu_dev {
        struct port *port;
        char name[48]; /* for logs: "port net0" */
        int fd;
        ev_io io;
        ev_async async; /* workers report broken queues through it */
        bool broken;

        /* Incremental message reader: the control loop never blocks on a slow front-end. */
        uint8_t rx_buf[sizeof(struct vu_hdr) + VU_PAYLOAD_MAX];
        unsigned rx_have;
        int rx_fds[VU_MAX_FDS];
        unsigned rx_nfds;
        char err[192]; /* why the current request failed, for the dispatcher's log line */
        unsigned long nmsgs;

        uint64_t features;
        uint64_t protocol_features;
        bool features_set;
        uint8_t status;
        unsigned mtu;
        unsigned hdr_len;

        struct mem_table *mem; /* replaced as a whole while workers are quiesced */
        unsigned nqueues;      /* queue pairs (from the port config) */
        struct vu_vring vrings[VU_MAX_VRINGS];
        struct worker workers[VU_MAX_QUEUE_PAIRS];
};

/* The features this port offers; they depend only on the configuration, so restarts offer the same. */
uint64_t vu_offered_features(const struct port *port);
/* What every port offers whatever its kind and configuration. */
uint64_t vu_base_features(void);
uint64_t vu_offered_protocol_features(void);

/* Connection lifecycle (vu_dev.c). */
int vu_dev_new(struct port *port, int fd, struct vu_dev **ret);
void vu_dev_free(struct vu_dev *dev);

/* Reads what the socket has and dispatches complete messages. <0: drop the connection. */
int vu_dev_read(struct vu_dev *dev);

/* Message dispatch (vu_msg.c): validates against the table, runs the handler, replies. */
int vu_msg_dispatch(struct vu_dev *dev, struct vu_msg *msg);
const char *vu_request_name(uint32_t request);

/* Workers (worker.c). */
int worker_start(struct worker *w, struct vu_dev *dev, unsigned qp);
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
/* Sends one frame out of the port from the control thread (RARP). Quiesced only. */
int worker_send_raw(struct worker *w, const void *frame, size_t len);

/* Quiesce every worker of the device / resume them. */
void vu_dev_quiesce(struct vu_dev *dev);
void vu_dev_resume(struct vu_dev *dev);
/* Stops a ring (GET_VRING_BASE, reset); the caller holds the worker quiesced. */
void vu_vring_stop(struct vu_dev *dev, struct vu_vring *vr);
/* Whether the worker may run this ring now. */
bool vu_vring_ready(const struct vu_dev *dev, const struct vu_vring *vr);

static inline bool vu_has_feature(const struct vu_dev *dev, unsigned bit)
{
        return dev->features & (1ULL << bit);
}

static inline bool vu_has_protocol_feature(const struct vu_dev *dev, unsigned bit)
{
        return dev->protocol_features & (1ULL << bit);
}

#endif
