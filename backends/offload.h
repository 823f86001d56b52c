/* SPDX-License-Identifier: MIT */
/*
 * Software offloads, for a port or a guest that cannot do them: Internet checksums (RFC 1071) and cutting a
 * GSO frame (TCPv4/v6, UDP_L4) into segments, as the kernel's software GSO would. Pure functions over bytes
 * in memory: the frame's headers in one buffer, the payload in another (they may be the same).
 */
#ifndef VHOSTD_BACKENDS_OFFLOAD_H
#define VHOSTD_BACKENDS_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/virtio_net.h"

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

/* Sums of 16-bit words in memory order: valid on either endianness. */
uint64_t csum_add(uint64_t sum, uint64_t v);
uint64_t csum_part(const void *data, size_t len, uint64_t sum);
uint16_t csum_fold(uint64_t sum);

/* Completes the partial checksum vh describes (csum_start, csum_offset) in place; false when they point
 * outside the frame's len bytes. */
bool csum_complete(uint8_t *frame, size_t len, const struct virtio_net_hdr *vh);

/* Where a GSO frame's headers are, byte offsets from its first (Ethernet) byte. */
struct gso_info {
        unsigned l3, l4, hdrs; /* IP header, L4 header, first payload byte */
        unsigned mss, nseg;
        bool v4, tcp;
};

/* Parses the len-byte frame that vh says is a GSO frame; false when it cannot be cut here (UFO, which
 * would need IP fragmentation, or headers that do not add up). */
bool gso_parse(const uint8_t *frame, size_t len, const struct virtio_net_hdr *vh, struct gso_info *g);

/* Makes hb, a fresh copy of the frame's g->hdrs bytes of headers, the headers of segment i, whose payload is
 * the seglen bytes at payload: IP length, id and checksum, TCP sequence and flags or UDP length, and a full
 * L4 checksum. */
void gso_segment_headers(uint8_t *hb, const struct gso_info *g, unsigned i, const uint8_t *payload, unsigned seglen);

#endif
