/* SPDX-License-Identifier: MIT */
/*
 * Packed virtqueue internals (vring/packed.c). Callers use vring/vq.h: its functions come here when vq->packed
 * is set, with the same contracts.
 */
#ifndef VRING_PACKED_H
#define VRING_PACKED_H

#include <endian.h>

#include "vring/vq.h"

/* Little-endian 16-bit fields of guest memory, shared by both layouts. */
static inline uint16_t load_acquire16(const uint16_t *p)
{
        return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static inline uint16_t load16(const uint16_t *p)
{
        return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline void store16(uint16_t *p, uint16_t v)
{
        __atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static inline void store_release16(uint16_t *p, uint16_t v)
{
        __atomic_store_n(p, htole16(v), __ATOMIC_RELEASE);
}

/* Shared by both layouts (vring/vq.c). */
const void *vq_map_indirect(struct vq *vq, uint64_t addr, uint32_t len, unsigned *ret_count);

int vq_packed_alloc(struct vq *vq, unsigned num);
void vq_packed_free(struct vq *vq);
int vq_packed_set_log(struct vq *vq, struct vq_log *log, bool log_used, uint64_t used_gpa, const char **ret_why);
int vq_packed_pop(struct vq *vq, struct vq_elem *elem, unsigned iov_max);
void vq_packed_unpop(struct vq *vq, unsigned n);
void vq_packed_push(struct vq *vq, uint16_t id, uint32_t len);
void vq_packed_publish(struct vq *vq);
bool vq_packed_should_call(struct vq *vq);
void vq_packed_disable_notify(struct vq *vq);
bool vq_packed_enable_notify(struct vq *vq);
unsigned vq_packed_avail_count(const struct vq *vq);
/* At ring start, for the base 0/wrap 1 only: the position read from the ring (slot | wrap << 15), or -1. */
int vq_packed_find_position(struct vq *vq);

#endif
