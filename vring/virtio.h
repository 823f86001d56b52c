/* SPDX-License-Identifier: MIT */
/*
 * Virtio 1.x split-ring layout and the device-independent feature bits (guest byte order is little-endian).
 * The virtio-net frame format (header, net feature bits, config space) is backends/virtio_net.h.
 */
#ifndef VRING_VIRTIO_H
#define VRING_VIRTIO_H

#include <stdint.h>

/* Device-independent feature bits. */
#define VIRTIO_F_NOTIFY_ON_EMPTY 24
#define VIRTIO_F_ANY_LAYOUT 27
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VIRTIO_F_VERSION_1 32

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

#define VRING_USED_F_NO_NOTIFY 1
#define VRING_AVAIL_F_NO_INTERRUPT 1

#define VIRTQ_MAX_SIZE 32768

struct vring_desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
};

struct vring_avail {
        uint16_t flags;
        uint16_t idx;
        uint16_t ring[]; /* num entries, then used_event */
};

struct vring_used_elem {
        uint32_t id;
        uint32_t len;
};

struct vring_used {
        uint16_t flags;
        uint16_t idx;
        struct vring_used_elem ring[]; /* num entries, then avail_event (u16) */
};

#endif
