/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue, device side. vq_pop() is the only descriptor-chain walker: every value the guest
 * controls (indices, descriptor addresses, lengths, flags, indirect tables) is checked here.
 * A violation marks the queue broken with a reason; the caller logs it once. Not thread-safe: one
 * worker owns a started queue, the control thread touches it only while that worker is quiesced.
 */
#ifndef VRING_VQ_H
#define VRING_VQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vring/mem.h"
#include "vring/virtio.h"

#define VQ_CHAIN_IOV_MAX 256 /* segments one chain may need */

struct vq {
        unsigned num; /* ring size, a power of two <= VIRTQ_MAX_SIZE */
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
        bool notify_enabled;

        bool broken;
        char broken_reason[128];

        /* Copy of an indirect table that is not contiguous in host memory (allocated at setup). */
        struct vring_desc *indirect_scratch;
};

/* What vq_pop() found: readable segments first (out), then writable (in). */
struct vq_elem {
        uint16_t head;
        unsigned out_num, in_num;
        uint64_t out_len, in_len;
        struct iovec *iov; /* caller's array */
};

/*
 * Checks SET_VRING_NUM's value. Returns 0 or -EINVAL.
 */
int vq_check_num(unsigned num);

/*
 * Points the queue at its rings, given front-end virtual addresses; each ring part must map contiguously
 * at full size (the used ring writable). Returns 0 or -EFAULT with *ret_why set.
 */
int vq_map_rings(struct vq *vq, const struct mem_table *mem, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva,
                 const char **ret_why);

/* Allocates per-queue scratch for num (control plane). -ENOMEM. */
int vq_alloc(struct vq *vq, unsigned num);
void vq_free(struct vq *vq);

/*
 * Pops one available chain into elem, using at most iov_max entries of elem->iov.
 * Returns 1 when a chain was popped, 0 when the ring is empty, -ENOBUFS when iov_max entries were not
 * enough (nothing consumed; the queue is not marked broken), or another -errno with the queue broken.
 */
int vq_pop(struct vq *vq, struct vq_elem *elem, unsigned iov_max);

/* Gives back the last n popped chains (they were not used). */
void vq_unpop(struct vq *vq, unsigned n);

/* Records a used element; becomes visible to the guest at vq_publish(). */
void vq_push(struct vq *vq, uint16_t head, uint32_t len);
void vq_publish(struct vq *vq);

/* Whether the guest wants an interrupt for what was published since the last call (updates state). */
bool vq_should_call(struct vq *vq);

/* Kick suppression: disable while draining; enable returns true when more work arrived meanwhile. */
void vq_disable_notify(struct vq *vq);
bool vq_enable_notify(struct vq *vq);

/* Number of chains the guest has made available and not popped yet (0 when broken). */
unsigned vq_avail_count(const struct vq *vq);

/* Marks broken with a formatted reason (first reason wins). Always returns -EINVAL. */
int vq_set_broken(struct vq *vq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
