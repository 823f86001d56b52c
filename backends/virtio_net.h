/* SPDX-License-Identifier: MIT */
/*
 * The virtio-net frame format (virtio 1.x, section 5.1; guest byte order is little-endian): the header in front
 * of every frame, its flags and GSO types, the virtio-net feature bits and the device config space. Backends own
 * this format, so it lives here and not with the split-ring layout of the ring layer: a backend sees frames, never
 * rings.
 */
#ifndef BACKENDS_VIRTIO_NET_H
#define BACKENDS_VIRTIO_NET_H

#include <stdint.h>

/* Feature bit n as a mask; for every feature space (virtio-net, device-independent, vhost-user protocol). */
#define BIT_ULL(n) (1ULL << (n))

/* virtio-net feature bits. */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_F_GUEST_ANNOUNCE 21
#define VIRTIO_NET_F_MQ 22

#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP 3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN 0x80

struct virtio_net_hdr {
        uint8_t flags;
        uint8_t gso_type;
        uint16_t hdr_len;
        uint16_t gso_size;
        uint16_t csum_start;
        uint16_t csum_offset;
};

/* With VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF: the 12-byte header. */
struct virtio_net_hdr_mrg {
        struct virtio_net_hdr hdr;
        uint16_t num_buffers;
};

#define VIRTIO_NET_S_LINK_UP 1

struct virtio_net_config {
        uint8_t mac[6];
        uint16_t status;
        uint16_t max_virtqueue_pairs;
        uint16_t mtu;
} __attribute__((packed));

#endif
