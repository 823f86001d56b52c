/* SPDX-License-Identifier: MIT */
/*
 * A vhost-user connection's state as a handover carries it (issue #16), in the records of state_wire.h:
 * what was negotiated, the guest memory table, each vring's addresses, size, position and enable state,
 * the dirty log, and which passed fd is which. Plain data: the daemon fills it from a device and makes a
 * device from it (not yet wired in); this file writes it, and reads it back checking every field, since the
 * new process must not trust a state more than a message from a front-end.
 *
 * fd fields: real fds when saving; after loading, indices into the fds that came with the state; -1: none.
 * Each index is used at most once, so the new process can take ownership of every fd exactly once.
 */
#ifndef DAEMON_HANDOVER_STATE_H
#define DAEMON_HANDOVER_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon/state_wire.h"

#define HS_MAX_REGIONS 509 /* MEM_MAX_REGIONS */
#define HS_MAX_VRINGS 32   /* 2 * CONFIG_MAX_QUEUES */

/* Record types (all flagged STATE_REC_REQUIRED: an older reader must refuse what it cannot restore). */
enum {
        HS_REC_DEV = 1,    /* struct hs_dev_rec */
        HS_REC_REGION = 2, /* struct hs_region_rec, then HS_REC_REGION_FD */
        HS_REC_REGION_FD = 3,
        HS_REC_VRING = 4, /* struct hs_vring_rec, then any of KICK/CALL/ERR_FD */
        HS_REC_KICK_FD = 5,
        HS_REC_CALL_FD = 6,
        HS_REC_ERR_FD = 7,
        HS_REC_LOG = 8, /* struct hs_log_rec, then HS_REC_LOG_FD */
        HS_REC_LOG_FD = 9,
        HS_REC_LOG_CALL_FD = 10,
        HS_REC_DEV_END = 11, /* empty: the device's records end (more may follow: another port's) */
        /* Optional (a reader that does not know it starts the counters from 0): u64 counters of the vring before,
         * in the order of struct vring_stats; a newer writer may append more. */
        HS_REC_VRING_COUNTERS = 12,
};

#define HS_VRING_COUNTERS 10 /* the counters this version carries (struct vring_stats) */

#define HS_DEV_FEATURES_SET 0x1 /* SET_FEATURES was received (features may still be 0) */

#define HS_VR_ADDR_SET 0x1
#define HS_VR_STARTED 0x2
#define HS_VR_ENABLED 0x4
#define HS_VR_LOG_USED 0x8
#define HS_VR_PACKED 0x10

struct hs_region {
        uint64_t gpa, size, uva, mmap_offset;
        uint32_t refs; /* ADD_MEM_REG of this same region so far (REM_MEM_REG takes one each) */
        int fd;
};

struct hs_vring {
        uint32_t index, num, flags;
        uint32_t base; /* GET_VRING_BASE's encoding: split: the next avail index; packed: wrap bits included */
        uint64_t desc_uva, avail_uva, used_uva, log_gpa;
        int kick_fd, call_fd, err_fd;
        uint64_t counters[HS_VRING_COUNTERS]; /* 0 when the state had none */
};

struct hs_dev {
        uint64_t features, protocol_features;
        uint32_t status, mtu, hdr_len, nqueues, flags;
        bool log_set;
        uint64_t log_size, log_offset;
        int log_fd, log_call_fd;
        unsigned nregions;
        struct hs_region regions[HS_MAX_REGIONS];
        unsigned nvrings;
        struct hs_vring vrings[HS_MAX_VRINGS];
};

/* Appends the device's records to w; returns 0 or w's error. */
int hs_save(struct state_writer *w, const struct hs_dev *dev);
/* Reads a device from r (after state_reader_init) up to the end of the state or HS_REC_DEV_END; on failure err says
 * which record and why. fd_used (STATE_FDS_MAX bits, shared by every loader of one state so that no fd is taken
 * twice) may be NULL for a state of one device. */
int hs_load(struct state_reader *r, struct hs_dev *dev, uint8_t *fd_used, char *err, size_t errlen);
/* Marks fd index i used; -EBADMSG when it already was. */
int hs_take_fd_index(uint8_t *fd_used, unsigned i);

#endif
