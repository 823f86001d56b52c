// SPDX-License-Identifier: MIT
/*
 * --print-capabilities. QEMU's conventions define no capability schema for the net type, so ours says what
 * an operator or a management tool needs to choose a configuration: the port kinds with their offloads and
 * MTU ceilings, queue and memory limits, and the virtio and vhost-user features offered. It is built from the
 * same functions and tables the daemon negotiates with, so it cannot drift from what a front-end is offered.
 */
#include "daemon/caps.h"

#include <errno.h>
#include <stdbool.h>

#include "backends/backend.h"
#include "config/config.h"
#include "daemon/vu.h"

static const char *const virtio_names[64] = {
        [VIRTIO_NET_F_CSUM] = "CSUM",
        [VIRTIO_NET_F_GUEST_CSUM] = "GUEST_CSUM",
        [VIRTIO_NET_F_MTU] = "MTU",
        [VIRTIO_NET_F_MAC] = "MAC",
        [VIRTIO_NET_F_GUEST_TSO4] = "GUEST_TSO4",
        [VIRTIO_NET_F_GUEST_TSO6] = "GUEST_TSO6",
        [VIRTIO_NET_F_GUEST_ECN] = "GUEST_ECN",
        [VIRTIO_NET_F_GUEST_UFO] = "GUEST_UFO",
        [VIRTIO_NET_F_HOST_TSO4] = "HOST_TSO4",
        [VIRTIO_NET_F_HOST_TSO6] = "HOST_TSO6",
        [VIRTIO_NET_F_HOST_ECN] = "HOST_ECN",
        [VIRTIO_NET_F_HOST_UFO] = "HOST_UFO",
        [VIRTIO_NET_F_MRG_RXBUF] = "MRG_RXBUF",
        [VIRTIO_NET_F_STATUS] = "STATUS",
        [VIRTIO_NET_F_GUEST_ANNOUNCE] = "GUEST_ANNOUNCE",
        [VIRTIO_NET_F_MQ] = "MQ",
        [VIRTIO_F_NOTIFY_ON_EMPTY] = "NOTIFY_ON_EMPTY",
        [VIRTIO_F_ANY_LAYOUT] = "ANY_LAYOUT",
        [VIRTIO_RING_F_INDIRECT_DESC] = "INDIRECT_DESC",
        [VIRTIO_RING_F_EVENT_IDX] = "EVENT_IDX",
        [VHOST_USER_F_PROTOCOL_FEATURES] = "PROTOCOL_FEATURES",
        [VIRTIO_F_VERSION_1] = "VERSION_1",
        [VIRTIO_F_RING_PACKED] = "RING_PACKED",
        [VIRTIO_F_IN_ORDER] = "IN_ORDER",
        [VHOST_F_LOG_ALL] = "LOG_ALL",
};

static const char *const protocol_names[64] = {
        [VU_PROTOCOL_F_MQ] = "MQ",
        [VU_PROTOCOL_F_LOG_SHMFD] = "LOG_SHMFD",
        [VU_PROTOCOL_F_RARP] = "RARP",
        [VU_PROTOCOL_F_REPLY_ACK] = "REPLY_ACK",
        [VU_PROTOCOL_F_MTU] = "MTU",
        [VU_PROTOCOL_F_BACKEND_REQ] = "BACKEND_REQ",
        [VU_PROTOCOL_F_CONFIG] = "CONFIG",
        [VU_PROTOCOL_F_RESET_DEVICE] = "RESET_DEVICE",
        [VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS] = "CONFIGURE_MEM_SLOTS",
        [VU_PROTOCOL_F_STATUS] = "STATUS",
};

const char *virtio_feature_name(unsigned bit)
{
        return bit < 64 ? virtio_names[bit] : NULL;
}

const char *vu_protocol_feature_name(unsigned bit)
{
        return bit < 64 ? protocol_names[bit] : NULL;
}

/* ["CSUM","MQ"] and, beside it, the mask as a hex string, so a script can compare either. */
static void print_features(FILE *f, const char *key, uint64_t mask, const char *(*name)(unsigned))
{
        bool first = true;

        fprintf(f, "\"%s\":[", key);
        for (unsigned b = 0; b < 64; b++) {
                if (!(mask & (1ULL << b)))
                        continue;
                if (name(b))
                        fprintf(f, "%s\"%s\"", first ? "" : ",", name(b));
                else
                        fprintf(f, "%s\"bit%u\"", first ? "" : ",", b);
                first = false;
        }
        fprintf(f, "],\"%s_mask\":\"0x%llx\"", key, (unsigned long long)mask);
}

int caps_print(FILE *f, const char *version)
{
        const struct backend_ops *ops;

        fprintf(f, "{\"type\":\"net\",\"name\":\"vhostd\",\"version\":\"%s\",", version);
        fprintf(f, "\"max_ports\":%u,\"max_queue_pairs\":%u,\"max_mem_slots\":%u,", CONFIG_MAX_PORTS,
                VU_MAX_QUEUE_PAIRS, MEM_MAX_REGIONS);
        fprintf(f, "\"packed_ring\":true,\"in_order\":true,\"live_migration\":true,");
        fprintf(f, "\"socket_modes\":[\"server\",\"client\",\"socket-activation\",\"fd\"],");
        print_features(f, "virtio_features", vu_base_features(), virtio_feature_name);
        fprintf(f, ",");
        print_features(f, "virtio_features_if_multiqueue", 1ULL << VIRTIO_NET_F_MQ, virtio_feature_name);
        fprintf(f, ",");
        print_features(f, "virtio_features_if_mac", 1ULL << VIRTIO_NET_F_MAC, virtio_feature_name);
        fprintf(f, ",");
        print_features(f, "protocol_features", vu_offered_protocol_features(), vu_protocol_feature_name);
        fprintf(f, ",\"port_kinds\":[");
        for (unsigned i = 0; (ops = backend_kind_at(i)); i++) {
                fprintf(f, "%s{\"kind\":\"%s\",\"mtu_ceiling\":%u,", i ? "," : "", ops->name, ops->mtu_ceiling);
                print_features(f, "offloads", ops->max_features, virtio_feature_name);
                fprintf(f, "}");
        }
        fprintf(f, "]}\n");
        return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
