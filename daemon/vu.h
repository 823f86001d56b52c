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
#include "daemon/worker.h"
#include "vring/mem.h"
#include "vring/vq.h"

#define VU_MAX_QUEUE_PAIRS CONFIG_MAX_QUEUES
#define VU_MAX_VRINGS (2 * VU_MAX_QUEUE_PAIRS)

/*
 * What a connection gets from its port. Events flow one way: the port creates and frees connections and
 * forwards link events down; a connection tells its port only through closed(), when it has ended (hang-up,
 * protocol error, a worker that lost the device). closed() frees the connection.
 */
struct vu_dev_params {
        const char *name; /* for logs: "port net0" */
        const struct port_cfg *cfg;
        struct backend *be;
        struct ev_loop *loop;
        atomic_ulong *port_faults, *port_recoveries; /* the port's counters, moved by the workers */
        void (*closed)(void *owner);
        /* Optional: called before (begin) and after the front-end's messages are read and handled. */
        void (*reading)(void *owner, bool begin);
        void *owner;
};

struct vu_dev {
        struct vu_dev_params p;
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
        char err[192];  /* why the current request failed, for the dispatcher's log line */
        bool replaying; /* an upgrade replays the old process's requests (vu_handover.c): nothing is answered */
        unsigned long nmsgs;

        uint64_t features;
        uint64_t protocol_features;
        bool features_set;
        uint8_t status;
        unsigned mtu;
        unsigned hdr_len;

        struct mem_table *mem; /* replaced as a whole while workers are quiesced */
        struct vq_log *log;    /* the dirty log (SET_LOG_BASE), replaced as a whole likewise; NULL: none */
        int log_fd;            /* SET_LOG_FD eventfd, -1: none */
        unsigned nqueues;      /* queue pairs (from the port config) */
        struct vu_vring vrings[VU_MAX_VRINGS];
        struct worker workers[VU_MAX_QUEUE_PAIRS];
};

/* The features a port offers; they depend only on its configuration, so restarts offer the same. */
uint64_t vu_offered_features(const struct port_cfg *cfg, const struct backend *be);
/* What every port offers whatever its kind and configuration. */
uint64_t vu_base_features(void);
uint64_t vu_offered_protocol_features(void);

/* Connection lifecycle (vu_dev.c). */
int vu_dev_new(const struct vu_dev_params *params, int fd, struct vu_dev **ret);
void vu_dev_free(struct vu_dev *dev);
/* The port's interface was deleted (gone) or appeared: every worker looks at its queue now. */
void vu_dev_link_event(struct vu_dev *dev, bool gone);

/* Reads what the socket has and dispatches complete messages. <0: drop the connection. */
int vu_dev_read(struct vu_dev *dev);

/* Message dispatch (vu_msg.c): validates against the table, runs the handler, replies. */
int vu_msg_dispatch(struct vu_dev *dev, struct vu_msg *msg);
const char *vu_request_name(uint32_t request);

/* Quiesce every worker of the device / resume them. */
void vu_dev_quiesce(struct vu_dev *dev);
void vu_dev_resume(struct vu_dev *dev);
/* Stops a ring (GET_VRING_BASE, reset); the caller holds the worker quiesced. */
void vu_vring_stop(struct vu_dev *dev, struct vu_vring *vr);
/* The negotiated features or MTU changed: tell every worker (quiesced). */
void vu_dev_push_net(struct vu_dev *dev);
/*
 * Points every vring at the dirty log, or at none, from the current features (LOG_ALL), log and ring addresses;
 * a ring whose log cannot be set (its used ring outside the log) is broken with the reason. Quiesced.
 */
void vu_log_apply(struct vu_dev *dev);
/* The same for one ring; only its worker need be quiesced. */
void vu_log_apply_ring(struct vu_dev *dev, struct vu_vring *vr);

static inline bool vu_has_feature(const struct vu_dev *dev, unsigned bit)
{
        return dev->features & (1ULL << bit);
}

static inline bool vu_has_protocol_feature(const struct vu_dev *dev, unsigned bit)
{
        return dev->protocol_features & (1ULL << bit);
}

#endif
