/* SPDX-License-Identifier: MIT */
/*
 * Virtio 1.x ring layouts, split and packed, and the device-independent feature bits (guest byte order is
 * little-endian).
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
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_F_IN_ORDER 35

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

/*
 * Packed ring (virtio 1.1+, section "Packed Virtqueues"): one descriptor ring both sides write, plus two event
 * suppression structures. A descriptor is available when its AVAIL bit equals the driver's wrap counter and its
 * USED bit does not; the device marks it used by setting both bits to its own wrap counter. Both counters start
 * at 1 and flip each time their index passes the end of the ring.
 */
#define VRING_PACKED_DESC_F_AVAIL (1u << 7)
#define VRING_PACKED_DESC_F_USED (1u << 15)

/* Event suppression flags (struct vring_packed_desc_event.flags). */
#define RING_EVENT_FLAGS_ENABLE 0x0
#define RING_EVENT_FLAGS_DISABLE 0x1
#define RING_EVENT_FLAGS_DESC 0x2 /* only at off_wrap; needs VIRTIO_RING_F_EVENT_IDX */

#define RING_EVENT_WRAP_SHIFT 15 /* off_wrap: offset in bits 0-14, wrap counter in bit 15 */

struct vring_packed_desc {
        uint64_t addr;
        uint32_t len;
        uint16_t id;
        uint16_t flags;
};

struct vring_packed_desc_event {
        uint16_t off_wrap;
        uint16_t flags;
};

#endif
