/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue, device side. vq_pop() is the only descriptor-chain walker: every value the guest
 * controls (indices, descriptor addresses, lengths, flags, indirect tables) is checked here.
 * A violation marks the queue broken with a reason; the caller logs it once. Not thread-safe: one
 * worker owns a started queue, the control thread touches it only while that worker is quiesced.
 *
 * Dirty logging (live migration, vring/log.h): with a log set (vq_set_log()), everything this file writes into
 * guest memory is marked after it is written: used entries and used->idx at vq_publish(), used->flags and
 * avail_event where they are written, and the bytes a caller wrote into a chain's writable buffers when it hands
 * the chain back with vq_push_elem(). For that vq_pop() records the guest-physical address of every segment
 * (vq_elem.gpa). Without a log the cost is one predictable branch per publish and per push.
 *
 * Packed rings (VIRTIO_F_RING_PACKED, vring/packed.c): set vq->packed before vq_alloc(); the functions below then
 * work on the packed layout (vq_map_rings() takes the descriptor ring, driver and device event areas), so callers
 * do not change. There last_avail_idx and used_idx are ring slots in [0, num) with a wrap counter each, not
 * free-running indices: a chain of n descriptors moves them by n.
 */
#ifndef VRING_VQ_H
#define VRING_VQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vring/log.h"
#include "vring/mem.h"
#include "vring/virtio.h"

#define VQ_CHAIN_IOV_MAX 256  /* segments one chain may need */
#define VQ_CHAIN_LEN_MAX 4096 /* chains longer than this are refused even in huge rings (loops in practice) */

/* A packed used descriptor, kept until vq_publish() writes it at slot. */
struct vq_used_packed {
        uint16_t slot, id, flags;
        uint32_t len;
};

/* One popped packed chain, remembered for vq_unpop(). */
struct vq_popped {
        uint16_t id;    /* buffer id */
        uint16_t slots; /* ring slots the chain took */
};

struct vq {
        unsigned num; /* ring size: split a power of two <= VIRTQ_MAX_SIZE, packed any of 1..VIRTQ_MAX_SIZE */
        struct vring_desc *desc;
        struct vring_avail *avail;
        struct vring_used *used;
        const struct mem_table *mem;
        unsigned mem_hint;

        uint16_t last_avail_idx; /* next avail entry to pop */
        uint16_t used_idx;       /* next used slot; published by vq_publish() */
        uint16_t signalled_used; /* used idx at the last call (EVENT_IDX) */
        bool signalled_used_valid;
        bool event_idx;
        bool in_order; /* VIRTIO_F_IN_ORDER: consecutive pushes of length 0 share one used entry */
        bool notify_enabled;

        bool broken;
        char broken_reason[128];

        /* Copy of an indirect table that is not contiguous in host memory (allocated at setup). */
        struct vring_desc *indirect_scratch;

        /* Dirty logging: NULL when off (see vq_set_log()). */
        struct vq_log *log;
        bool log_used;         /* used-ring writes are logged at log_used_gpa (VHOST_VRING_F_LOG) */
        uint64_t log_used_gpa; /* guest-physical address of the used ring (SET_VRING_ADDR log_guest_addr) */
        unsigned unpublished;  /* used entries (packed: ring slots) written since the last vq_publish() */
        /*
         * IN_ORDER batching: the used entry that the open run of length-0 pushes writes its last buffer id into
         * (packed: the last entry of used_shadow); the run ends at a push with a length, and at vq_publish().
         */
        bool run_open;
        uint16_t run_slot;

        /*
         * Packed ring only (vring/packed.c). Reuses num, last_avail_idx, used_idx, signalled_used_valid,
         * event_idx, notify_enabled, broken, indirect_scratch and the log fields; desc, avail and used stay NULL.
         */
        bool packed;     /* set before vq_alloc() */
        bool base_exact; /* the ring was stopped by GET_VRING_BASE on this connection: its base is never a guess */
        bool avail_wrap, used_wrap;
        unsigned used_since_call; /* used slots written since the last vq_should_call() */
        struct vring_packed_desc *pdesc;
        struct vring_packed_desc_event *driver_event; /* the driver's wish about our calls (we read it) */
        struct vring_packed_desc_event *device_event; /* ours about its kicks (we write it) */
        uint16_t *inflight_slots; /* per buffer id: ring slots its popped chain took, 0 when not in flight */
        struct vq_popped *popped; /* the last popped chains, a ring of num entries, for vq_unpop() */
        unsigned popped_next;     /* where the next pop is recorded */
        unsigned popped_count;    /* valid entries before popped_next */
        /*
         * Used descriptors pushed since the last vq_publish(), which writes them all at once: the driver polls the
         * next used slot, and writing there frame by frame would pull that cache line back and forth.
         */
        struct vq_used_packed *used_shadow; /* num entries */
        unsigned used_shadow_n;
        uint64_t pdesc_gpa, device_event_gpa; /* guest-physical, for the dirty log (found at mapping) */
};

/* What vq_pop() found: readable segments first (out), then writable (in). */
struct vq_elem {
        uint16_t head;
        unsigned out_num, in_num;
        uint64_t out_len, in_len;
        struct iovec *iov; /* caller's array */
        /*
         * NULL, or the caller's array parallel to iov (as many entries): vq_pop() stores the guest-physical
         * address of each segment, which vq_push_elem() needs to log what was written. Every chain the device
         * writes into must be popped with it (recorded whether logging is on or not: logging may start between
         * the pop and the push).
         */
        uint64_t *gpa;
};

/*
 * Checks SET_VRING_NUM's value. Returns 0 or -EINVAL.
 */
int vq_check_num(unsigned num);

/* Checks SET_VRING_NUM's value for a packed ring: any size from 1 to 32768. Returns 0 or -EINVAL. */
int vq_check_num_packed(unsigned num);

/*
 * Points the queue at its rings, given front-end virtual addresses; each ring part must map contiguously
 * at full size (the used ring writable). Returns 0 or -EFAULT with *ret_why set. A packed queue goes to
 * vq_map_rings_packed() with (desc, avail, used) as (descriptor ring, driver area, device area).
 */
int vq_map_rings(struct vq *vq, const struct mem_table *mem, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva,
                 const char **ret_why);

/*
 * Packed ring: the descriptor ring (num * 16 bytes, written by us too), the driver event area (read) and the device
 * event area (written), as SET_VRING_ADDR gives them. Returns 0, or -EINVAL / -EFAULT with *ret_why set.
 */
int vq_map_rings_packed(struct vq *vq, const struct mem_table *mem, uint64_t desc_uva, uint64_t driver_uva,
                        uint64_t device_uva, const char **ret_why);

/*
 * GET_VRING_BASE / SET_VRING_BASE for a packed ring (vhost-user spec): bits 0-14 the next descriptor slot to pop,
 * bit 15 its wrap counter, bits 16-30 the next used slot, bit 31 its wrap counter. Setting checks both slots are
 * below num (-EINVAL with *ret_why set) and forgets every popped chain.
 */
uint32_t vq_packed_get_base(const struct vq *vq);
/* Slot 0 with wrap 1 and no used half: the base a front-end sends when it knows nothing; vq_resume() then finds the
 * position in the ring itself. */
#define VQ_PACKED_BASE_UNKNOWN 0x8000u
int vq_packed_set_base(struct vq *vq, uint32_t base, const char **ret_why);

/*
 * Allocates per-queue scratch for num (control plane; for a packed queue, set vq->packed first). -EINVAL, -ENOMEM.
 */
int vq_alloc(struct vq *vq, unsigned num);
void vq_free(struct vq *vq);

/*
 * Pops one available chain into elem, using at most iov_max entries of elem->iov.
 * Returns 1 when a chain was popped, 0 when the ring is empty, -ENOBUFS when iov_max entries were not
 * enough (nothing consumed; the queue is not marked broken), or another -errno with the queue broken.
 */
int vq_pop(struct vq *vq, struct vq_elem *elem, unsigned iov_max);

/*
 * Gives back the last n popped chains (they were not used). Packed: they must be the latest popped and not pushed
 * (pushes in pop order); giving back more marks the queue broken.
 */
void vq_unpop(struct vq *vq, unsigned n);

/*
 * Records a used element; becomes visible to the guest at vq_publish(). With vq->in_order (VIRTIO_F_IN_ORDER),
 * pushes of length 0 in a row (transmitted chains) write one used entry, with the last buffer's id, and move the
 * used index past all of them, as the spec allows; a chain the device wrote into always gets its own entry, as
 * drivers read each one's length. Logs nothing of the chain's buffers:
 * for a chain the device wrote into (len > 0), use vq_push_elem(). Packed: head is the buffer id vq_pop() gave,
 * the used slot moves by the ring slots that chain took; an id not in flight marks the queue broken.
 */
void vq_push(struct vq *vq, uint16_t head, uint32_t len);

/*
 * vq_push() for a popped chain, which first marks in the dirty log (when logging is on) the pages of the first
 * len bytes of e's writable segments. Call it after everything written into the chain is written (the virtio-net
 * header with num_buffers included): a write after the mark may be missed by migration. A chain popped without
 * e->gpa while logging is on, or a log too small for a buffer, marks the queue broken (the used entry is still
 * recorded).
 */
void vq_push_elem(struct vq *vq, const struct vq_elem *e, uint32_t len);

/*
 * The marking half of vq_push_elem() alone, for bytes written into a chain that is then not handed back (a frame
 * dropped after part of it was written, its chains given back with vq_unpop()). The guest never reads such
 * bytes, but the page did change: logging it keeps "every page we changed is marked" true.
 */
void vq_log_elem(struct vq *vq, const struct vq_elem *e, uint32_t len);

/*
 * vq_resume() - picks a started ring up where the front-end left it. A split ring resumes at the used index in
 * guest memory (vhostd completes in order, so nothing popped is outstanding); a packed ring at the positions and
 * wrap counters SET_VRING_BASE gave, or, for the base 0/wrap 1 a front-end sends when its back-end died, where
 * the descriptor flags say the ring is. Returns the base the front-end gave when it differed from the used index
 * (now replaced by it), else -1.
 */
int vq_resume(struct vq *vq);

/* Publishes the used index; with logging on, then marks the used entries written since the last call and idx. */
void vq_publish(struct vq *vq);

/*
 * Turns dirty logging of this queue on (log non-NULL) or off (NULL). log_used: also log used-ring writes, the
 * used ring being at guest-physical used_gpa (SET_VRING_ADDR with VHOST_VRING_F_LOG and log_guest_addr).
 * Checks, when log_used: the used ring (with avail_event) lies inside the log, and, when the rings are mapped,
 * used_gpa is the used ring (translates to the same host memory). Returns 0, or -ERANGE / -EFAULT with *ret_why
 * set and logging left as it was. Call it with the worker quiesced, and again after vq_map_rings(). Packed: used_gpa
 * is not used; the ring's guest-physical addresses come from the memory table at mapping, and the check is that
 * the log covers the descriptor ring and the device event area.
 */
int vq_set_log(struct vq *vq, struct vq_log *log, bool log_used, uint64_t used_gpa, const char **ret_why);

/* Whether the guest wants an interrupt for what was published since the last call (updates state). */
bool vq_should_call(struct vq *vq);

/* Kick suppression: disable while draining; enable returns true when more work arrived meanwhile. */
void vq_disable_notify(struct vq *vq);
bool vq_enable_notify(struct vq *vq);

/* Number of chains the guest has made available and not popped yet (0 when broken). Packed: walks them, O(n). */
unsigned vq_avail_count(const struct vq *vq);

/* Marks broken with a formatted reason (first reason wins). Always returns -EINVAL. */
int vq_set_broken(struct vq *vq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
