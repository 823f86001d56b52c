/* SPDX-License-Identifier: MIT */
/* vhost-user wire format (QEMU docs/interop/vhost-user.rst). Shared with the test front-end. */
#ifndef DAEMON_VU_PROTO_H
#define DAEMON_VU_PROTO_H

#include <stdint.h>

enum vu_request {
        VU_GET_FEATURES = 1,
        VU_SET_FEATURES = 2,
        VU_SET_OWNER = 3,
        VU_RESET_OWNER = 4,
        VU_SET_MEM_TABLE = 5,
        VU_SET_LOG_BASE = 6,
        VU_SET_LOG_FD = 7,
        VU_SET_VRING_NUM = 8,
        VU_SET_VRING_ADDR = 9,
        VU_SET_VRING_BASE = 10,
        VU_GET_VRING_BASE = 11,
        VU_SET_VRING_KICK = 12,
        VU_SET_VRING_CALL = 13,
        VU_SET_VRING_ERR = 14,
        VU_GET_PROTOCOL_FEATURES = 15,
        VU_SET_PROTOCOL_FEATURES = 16,
        VU_GET_QUEUE_NUM = 17,
        VU_SET_VRING_ENABLE = 18,
        VU_SEND_RARP = 19,
        VU_NET_SET_MTU = 20,
        VU_SET_BACKEND_REQ_FD = 21,
        VU_IOTLB_MSG = 22,
        VU_SET_VRING_ENDIAN = 23,
        VU_GET_CONFIG = 24,
        VU_SET_CONFIG = 25,
        VU_RESET_DEVICE = 34,
        VU_GET_MAX_MEM_SLOTS = 36,
        VU_ADD_MEM_REG = 37,
        VU_REM_MEM_REG = 38,
        VU_SET_STATUS = 39,
        VU_GET_STATUS = 40,
        VU_REQUEST_MAX = 41,
};

enum vu_protocol_feature {
        VU_PROTOCOL_F_MQ = 0,
        VU_PROTOCOL_F_LOG_SHMFD = 1,
        VU_PROTOCOL_F_RARP = 2,
        VU_PROTOCOL_F_REPLY_ACK = 3,
        VU_PROTOCOL_F_MTU = 4,
        VU_PROTOCOL_F_BACKEND_REQ = 5,
        VU_PROTOCOL_F_CONFIG = 9,
        VU_PROTOCOL_F_RESET_DEVICE = 13,
        VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
        VU_PROTOCOL_F_STATUS = 16,
};

/* Feature bit of vhost itself: log every guest page written (live migration). */
#define VHOST_F_LOG_ALL 26
/* SET_VRING_ADDR flags: log_guest_addr is the used ring's guest-physical address; log its writes. */
#define VU_VRING_F_LOG 0

#define VU_VERSION 0x1
#define VU_FLAG_VERSION_MASK 0x3
#define VU_FLAG_REPLY (1u << 2)
#define VU_FLAG_NEED_REPLY (1u << 3)

#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD_MASK (1u << 8)

#define VU_MAX_FDS 8         /* per message (QEMU's VHOST_MEMORY_BASELINE_NREGIONS) */
#define VU_MEM_REGIONS_MAX 8 /* regions in one SET_MEM_TABLE */
#define VU_CONFIG_MAX 256

struct vu_hdr {
        uint32_t request;
        uint32_t flags;
        uint32_t size;
} __attribute__((packed));

struct vu_vring_state {
        uint32_t index;
        uint32_t num;
} __attribute__((packed));

struct vu_vring_addr {
        uint32_t index;
        uint32_t flags;
        uint64_t desc_user_addr;
        uint64_t used_user_addr;
        uint64_t avail_user_addr;
        uint64_t log_guest_addr;
} __attribute__((packed));

struct vu_mem_region {
        uint64_t guest_phys_addr;
        uint64_t memory_size;
        uint64_t userspace_addr;
        uint64_t mmap_offset;
} __attribute__((packed));

struct vu_mem_table {
        uint32_t nregions;
        uint32_t padding;
        struct vu_mem_region regions[VU_MEM_REGIONS_MAX];
} __attribute__((packed));

/* SET_LOG_BASE: the log is mmap_size bytes at mmap_offset of the fd that comes with it. */
struct vu_log {
        uint64_t mmap_size;
        uint64_t mmap_offset;
} __attribute__((packed));

struct vu_mem_single {
        uint64_t padding;
        struct vu_mem_region region;
} __attribute__((packed));

struct vu_config {
        uint32_t offset;
        uint32_t size;
        uint32_t flags;
        uint8_t payload[VU_CONFIG_MAX];
} __attribute__((packed));

#define VU_CONFIG_HDR_SIZE 12

union vu_payload {
        uint64_t u64;
        struct vu_vring_state state;
        struct vu_vring_addr addr;
        struct vu_mem_table mem;
        struct vu_mem_single mem_reg;
        struct vu_log log;
        struct vu_config config;
};

#define VU_PAYLOAD_MAX sizeof(union vu_payload)

struct vu_msg {
        struct vu_hdr hdr;
        union vu_payload payload;
        int fds[VU_MAX_FDS];
        unsigned nfds;
};

#endif
