// SPDX-License-Identifier: MIT
/*
 * vhost-user requests: the table, the checks made from it, dispatch and replies, and the device-wide
 * handlers (features, owner, reset, net, status). Memory handlers are in vu_mem.c, vring handlers in
 * vu_vring.c (declared in vu_handlers.h). Every check that can be made from the table (payload size, fd count, vring
 * index) is made once, in vu_msg_dispatch(), before any handler runs; handlers check values. Handlers return 0 (done),
 * 1 (reply in msg) or -errno with dev->err saying why; -EPROTO drops the connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/vu.h"
#include "daemon/vu_handlers.h"

enum fd_rule {
        FDS_NONE = 0,
        FDS_VRING,   /* one, unless the NOFD bit is set in the u64 payload */
        FDS_REGIONS, /* one per region of SET_MEM_TABLE */
        FDS_ONE,
        FDS_OPTIONAL, /* accepted and closed */
};

enum vring_rule { VRING_NONE = 0, VRING_STATE, VRING_U64 };
enum quiesce_rule { QUIESCE_NONE = 0, QUIESCE_VRING, QUIESCE_ALL };

struct vu_handler {
        const char *name;
        int (*handle)(struct vu_dev *dev, struct vu_msg *msg);
        uint32_t size; /* exact payload size, or the minimum when var_size */
        bool var_size;
        enum fd_rule fds;
        enum vring_rule vring;
        enum quiesce_rule quiesce;
        bool replies; /* the front-end waits for a reply: any failure must drop the connection */
};

int vu_fail(struct vu_dev *dev, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(dev->err, sizeof(dev->err), fmt, ap);
        va_end(ap);
        return r;
}

int vu_reply_u64(struct vu_msg *msg, uint64_t v)
{
        msg->payload.u64 = v;
        msg->hdr.size = sizeof(uint64_t);
        return 1;
}

struct vu_vring *vu_msg_vring(struct vu_dev *dev, const struct vu_msg *msg)
{
        uint32_t idx = msg->hdr.request == VU_SET_VRING_KICK || msg->hdr.request == VU_SET_VRING_CALL ||
                                       msg->hdr.request == VU_SET_VRING_ERR
                               ? (uint32_t)(msg->payload.u64 & VU_VRING_IDX_MASK)
                               : msg->payload.state.index;
        return &dev->vrings[idx];
}

struct worker *vu_vring_worker(struct vu_dev *dev, const struct vu_vring *vr)
{
        return &dev->workers[vr->index / 2];
}

/* Takes fd i out of the message so the dispatcher does not close it. */
int vu_take_fd(struct vu_msg *msg, unsigned i)
{
        int fd = msg->fds[i];
        msg->fds[i] = -1;
        return fd;
}

uint64_t vu_offered_protocol_features(void)
{
        return BIT_ULL(VU_PROTOCOL_F_MQ) | BIT_ULL(VU_PROTOCOL_F_LOG_SHMFD) | BIT_ULL(VU_PROTOCOL_F_REPLY_ACK) |
               BIT_ULL(VU_PROTOCOL_F_RARP) | BIT_ULL(VU_PROTOCOL_F_MTU) | BIT_ULL(VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
               BIT_ULL(VU_PROTOCOL_F_STATUS) | BIT_ULL(VU_PROTOCOL_F_CONFIG) | BIT_ULL(VU_PROTOCOL_F_RESET_DEVICE);
}

/* Not VIRTIO_F_NOTIFY_ON_EMPTY: a legacy feature that no guest needs and that vhostd does not implement. */
uint64_t vu_base_features(void)
{
        return BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | BIT_ULL(VIRTIO_RING_F_EVENT_IDX) |
               BIT_ULL(VIRTIO_NET_F_MRG_RXBUF) | BIT_ULL(VIRTIO_NET_F_STATUS) | BIT_ULL(VIRTIO_NET_F_MTU) |
               BIT_ULL(VIRTIO_F_ANY_LAYOUT) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |
               BIT_ULL(VIRTIO_NET_F_GUEST_ANNOUNCE) | BIT_ULL(VHOST_F_LOG_ALL) | BIT_ULL(VIRTIO_F_RING_PACKED) |
               BIT_ULL(VIRTIO_F_IN_ORDER);
}

uint64_t vu_offered_features(const struct port_cfg *cfg, const struct backend *be)
{
        uint64_t f = vu_base_features();

        if (cfg->queues > 1)
                f |= BIT_ULL(VIRTIO_NET_F_MQ);
        if (cfg->has_mac)
                f |= BIT_ULL(VIRTIO_NET_F_MAC);
        if (!cfg->packed_ring)
                f &= ~BIT_ULL(VIRTIO_F_RING_PACKED);
        if (!cfg->in_order)
                f &= ~BIT_ULL(VIRTIO_F_IN_ORDER);
        if (cfg->backend.offloads)
                f |= be->ops->features(be);
        return f;
}

/* ---- features ---- */

static int handle_get_features(struct vu_dev *dev, struct vu_msg *msg)
{
        return vu_reply_u64(msg, vu_offered_features(dev->p.cfg, dev->p.be));
}

static int handle_set_features(struct vu_dev *dev, struct vu_msg *msg)
{
        uint64_t offered = vu_offered_features(dev->p.cfg, dev->p.be), f = msg->payload.u64;

        if (f & ~offered)
                return vu_fail(dev, -EINVAL, "features 0x%llx were never offered (offered 0x%llx)",
                               (unsigned long long)(f & ~offered), (unsigned long long)offered);
        for (unsigned i = 0; i < VU_MAX_VRINGS; i++) {
                struct vu_vring *vr = &dev->vrings[i];

                if (vr->vq.packed == !!(f & BIT_ULL(VIRTIO_F_RING_PACKED)))
                        continue;
                if (vr->started)
                        return vu_fail(dev, -EBUSY, "vring %u runs: its layout (VIRTIO_F_RING_PACKED) cannot change",
                                       vr->index);
                /* The other layout: SET_VRING_NUM sizes the ring again. */
                vq_free(&vr->vq);
                vr->vq.num = 0;
                vr->vq.packed = !vr->vq.packed;
                vr->mapped = false;
        }
        dev->features = f;
        dev->features_set = true;
        dev->hdr_len = (f & (BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_NET_F_MRG_RXBUF)))
                               ? sizeof(struct virtio_net_hdr_mrg)
                               : sizeof(struct virtio_net_hdr);
        for (unsigned i = 0; i < VU_MAX_VRINGS; i++) {
                dev->vrings[i].vq.event_idx = f & BIT_ULL(VIRTIO_RING_F_EVENT_IDX);
                dev->vrings[i].vq.in_order = f & BIT_ULL(VIRTIO_F_IN_ORDER);
        }
        vu_log_apply(dev); /* LOG_ALL may have been turned on or off under running rings */
        vu_dev_push_net(dev);
        log_debug("%s: features 0x%llx", dev->name, (unsigned long long)f);
        return 0;
}

static int handle_get_protocol_features(struct vu_dev *dev, struct vu_msg *msg)
{
        return vu_reply_u64(msg, vu_offered_protocol_features());
}

static int handle_set_protocol_features(struct vu_dev *dev, struct vu_msg *msg)
{
        uint64_t f = msg->payload.u64, offered = vu_offered_protocol_features();

        if (f & ~offered)
                return vu_fail(dev, -EINVAL, "protocol features 0x%llx were never offered",
                               (unsigned long long)(f & ~offered));
        dev->protocol_features = f;
        return 0;
}

static int handle_set_owner(struct vu_dev *dev, struct vu_msg *msg)
{
        return 0;
}

static int handle_reset(struct vu_dev *dev, struct vu_msg *msg)
{
        vu_stop_all_rings(dev);
        dev->features = 0;
        dev->features_set = false;
        dev->status = 0;
        vu_dev_push_net(dev);
        return 0;
}

static int handle_get_queue_num(struct vu_dev *dev, struct vu_msg *msg)
{
        return vu_reply_u64(msg, dev->nqueues);
}

/* ---- net ---- */

static int handle_send_rarp(struct vu_dev *dev, struct vu_msg *msg)
{
        const uint8_t *mac = (const uint8_t *)&msg->payload.u64;
        uint8_t f[60] = {0};

        if (!vu_has_protocol_feature(dev, VU_PROTOCOL_F_RARP))
                return vu_fail(dev, -EINVAL, "RARP protocol feature not negotiated");
        /* Ethernet broadcast, ethertype RARP, request reverse: so switches learn where the guest now is. */
        memset(f, 0xff, 6);
        memcpy(f + 6, mac, 6);
        f[12] = 0x80, f[13] = 0x35;
        f[14] = 0, f[15] = 1, f[16] = 0x08, f[17] = 0x00, f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 3;
        memcpy(f + 22, mac, 6);
        memcpy(f + 32, mac, 6);
        int r = worker_send_raw(&dev->workers[0], f, sizeof(f));
        if (r < 0)
                return vu_fail(dev, r, "cannot send RARP: %s", strerror(-r));
        return 0;
}

static int handle_net_set_mtu(struct vu_dev *dev, struct vu_msg *msg)
{
        uint64_t mtu = msg->payload.u64;
        unsigned max = dev->p.be->ops->max_mtu(dev->p.be);

        if (mtu < 68 || mtu > max)
                return vu_fail(dev, -EINVAL, "MTU %llu is outside 68..%u for this port", (unsigned long long)mtu, max);
        dev->mtu = (unsigned)mtu;
        vu_dev_push_net(dev);
        return 0;
}

static void net_config(const struct vu_dev *dev, struct virtio_net_config *c)
{
        const struct port_cfg *cfg = dev->p.cfg;

        memset(c, 0, sizeof(*c));
        memcpy(c->mac, cfg->mac, sizeof(c->mac));
        c->status = htole16(VIRTIO_NET_S_LINK_UP);
        c->max_virtqueue_pairs = htole16((uint16_t)dev->nqueues);
        c->mtu = htole16((uint16_t)dev->mtu);
}

static int handle_get_config(struct vu_dev *dev, struct vu_msg *msg)
{
        struct vu_config *c = &msg->payload.config;
        struct virtio_net_config nc;

        if (msg->hdr.size != VU_CONFIG_HDR_SIZE + c->size || c->offset > sizeof(nc) || c->size > sizeof(nc) - c->offset)
                return vu_fail(dev, -EINVAL, "config range %u+%u outside the %zu-byte device config", c->offset,
                               c->size, sizeof(nc));
        net_config(dev, &nc);
        memcpy(c->payload, (uint8_t *)&nc + c->offset, c->size);
        return 1;
}

static int handle_set_config(struct vu_dev *dev, struct vu_msg *msg)
{
        const struct vu_config *c = &msg->payload.config;

        if (msg->hdr.size != VU_CONFIG_HDR_SIZE + c->size)
                return vu_fail(dev, -EINVAL, "config payload size %u does not match %u", msg->hdr.size, c->size);
        return vu_fail(dev, -EPERM, "the virtio-net config space is read-only here");
}

static int handle_set_status(struct vu_dev *dev, struct vu_msg *msg)
{
        if (msg->payload.u64 > 0xff)
                return vu_fail(dev, -EINVAL, "status 0x%llx is not a byte", (unsigned long long)msg->payload.u64);
        dev->status = (uint8_t)msg->payload.u64;
        return 0;
}

static int handle_get_status(struct vu_dev *dev, struct vu_msg *msg)
{
        return vu_reply_u64(msg, dev->status);
}

#define U64 sizeof(uint64_t)
#define STATE sizeof(struct vu_vring_state)

static const struct vu_handler handlers[VU_REQUEST_MAX] = {
        [VU_GET_FEATURES] = {"GET_FEATURES", handle_get_features, 0, .replies = true},
        [VU_SET_FEATURES] = {"SET_FEATURES", handle_set_features, U64, .quiesce = QUIESCE_ALL},
        [VU_SET_OWNER] = {"SET_OWNER", handle_set_owner, 0},
        [VU_RESET_OWNER] = {"RESET_OWNER", handle_reset, 0, .quiesce = QUIESCE_ALL},
        [VU_RESET_DEVICE] = {"RESET_DEVICE", handle_reset, 0, .quiesce = QUIESCE_ALL},
        [VU_SET_MEM_TABLE] = {"SET_MEM_TABLE", vu_handle_set_mem_table, 8, .var_size = true, .fds = FDS_REGIONS,
                              .quiesce = QUIESCE_ALL},
        [VU_GET_MAX_MEM_SLOTS] = {"GET_MAX_MEM_SLOTS", vu_handle_get_max_mem_slots, 0, .replies = true},
        [VU_ADD_MEM_REG] = {"ADD_MEM_REG", vu_handle_add_mem_reg, sizeof(struct vu_mem_single), .fds = FDS_ONE,
                            .quiesce = QUIESCE_ALL},
        [VU_REM_MEM_REG] = {"REM_MEM_REG", vu_handle_rem_mem_reg, sizeof(struct vu_mem_single), .fds = FDS_OPTIONAL,
                            .quiesce = QUIESCE_ALL},
        [VU_SET_VRING_NUM] = {"SET_VRING_NUM", vu_handle_set_vring_num, STATE, .vring = VRING_STATE,
                              .quiesce = QUIESCE_VRING},
        [VU_SET_VRING_ADDR] = {"SET_VRING_ADDR", vu_handle_set_vring_addr, sizeof(struct vu_vring_addr),
                               .vring = VRING_STATE, .quiesce = QUIESCE_VRING},
        [VU_SET_VRING_BASE] = {"SET_VRING_BASE", vu_handle_set_vring_base, STATE, .vring = VRING_STATE,
                               .quiesce = QUIESCE_VRING},
        [VU_GET_VRING_BASE] = {"GET_VRING_BASE", vu_handle_get_vring_base, STATE, .vring = VRING_STATE,
                               .quiesce = QUIESCE_VRING, .replies = true},
        [VU_SET_VRING_KICK] = {"SET_VRING_KICK", vu_handle_set_vring_kick, U64, .fds = FDS_VRING, .vring = VRING_U64,
                               .quiesce = QUIESCE_VRING},
        [VU_SET_VRING_CALL] = {"SET_VRING_CALL", vu_handle_set_vring_call, U64, .fds = FDS_VRING, .vring = VRING_U64,
                               .quiesce = QUIESCE_VRING},
        [VU_SET_VRING_ERR] = {"SET_VRING_ERR", vu_handle_set_vring_err, U64, .fds = FDS_VRING, .vring = VRING_U64,
                              .quiesce = QUIESCE_VRING},
        [VU_GET_PROTOCOL_FEATURES] = {"GET_PROTOCOL_FEATURES", handle_get_protocol_features, 0, .replies = true},
        [VU_SET_PROTOCOL_FEATURES] = {"SET_PROTOCOL_FEATURES", handle_set_protocol_features, U64},
        [VU_GET_QUEUE_NUM] = {"GET_QUEUE_NUM", handle_get_queue_num, 0, .replies = true},
        [VU_SET_VRING_ENABLE] = {"SET_VRING_ENABLE", vu_handle_set_vring_enable, STATE, .vring = VRING_STATE,
                                 .quiesce = QUIESCE_VRING},
        [VU_SEND_RARP] = {"SEND_RARP", handle_send_rarp, U64, .quiesce = QUIESCE_ALL},
        [VU_NET_SET_MTU] = {"NET_SET_MTU", handle_net_set_mtu, U64, .quiesce = QUIESCE_ALL},
        [VU_GET_CONFIG] = {"GET_CONFIG", handle_get_config, VU_CONFIG_HDR_SIZE, .var_size = true, .replies = true},
        [VU_SET_CONFIG] = {"SET_CONFIG", handle_set_config, VU_CONFIG_HDR_SIZE, .var_size = true},
        [VU_SET_STATUS] = {"SET_STATUS", handle_set_status, U64},
        [VU_GET_STATUS] = {"GET_STATUS", handle_get_status, 0, .replies = true},
        [VU_SET_LOG_BASE] = {"SET_LOG_BASE", vu_handle_set_log_base, sizeof(struct vu_log), .fds = FDS_ONE,
                             .quiesce = QUIESCE_ALL, .replies = true},
        [VU_SET_LOG_FD] = {"SET_LOG_FD", vu_handle_set_log_fd, 0, .var_size = true, .fds = FDS_ONE,
                           .quiesce = QUIESCE_ALL},
        /* Known but not offered: named in the error. */
        [VU_SET_BACKEND_REQ_FD] = {"SET_BACKEND_REQ_FD"},
        [VU_IOTLB_MSG] = {"IOTLB_MSG"},
        [VU_SET_VRING_ENDIAN] = {"SET_VRING_ENDIAN"},
};

const char *vu_request_name(uint32_t request)
{
        if (request < VU_REQUEST_MAX && handlers[request].name)
                return handlers[request].name;
        return "UNKNOWN";
}

static unsigned expected_fds(const struct vu_handler *h, const struct vu_msg *msg)
{
        switch (h->fds) {
        case FDS_VRING:
                return (msg->payload.u64 & VU_VRING_NOFD_MASK) ? 0 : 1;
        case FDS_REGIONS:
                return msg->payload.mem.nregions;
        case FDS_ONE:
                return 1;
        case FDS_OPTIONAL:
                return msg->nfds; /* whatever came; closed below */
        case FDS_NONE:
        default:
                return 0;
        }
}

/* The checks every handler may rely on. Returns 0 or -EPROTO with dev->err set. */
static int validate(struct vu_dev *dev, const struct vu_handler *h, const struct vu_msg *msg)
{
        uint32_t size = msg->hdr.size;
        unsigned nfds;

        if (h->var_size ? size < h->size : size != h->size)
                return vu_fail(dev, -EPROTO, "payload of %u bytes, expected %s%u", size, h->var_size ? "at least " : "",
                               h->size);
        if (msg->hdr.request == VU_SET_MEM_TABLE) {
                uint32_t n = msg->payload.mem.nregions;
                if (n == 0 || n > VU_MEM_REGIONS_MAX)
                        return vu_fail(dev, -EPROTO, "%u regions, expected 1..%u", n, VU_MEM_REGIONS_MAX);
                if (size != 8 + n * sizeof(struct vu_mem_region))
                        return vu_fail(dev, -EPROTO, "payload of %u bytes does not hold %u regions", size, n);
        }
        if (msg->hdr.request == VU_GET_CONFIG || msg->hdr.request == VU_SET_CONFIG) {
                if (msg->payload.config.size > VU_CONFIG_MAX)
                        return vu_fail(dev, -EPROTO, "config size %u over %u", msg->payload.config.size, VU_CONFIG_MAX);
        }
        nfds = expected_fds(h, msg);
        if (msg->nfds != nfds)
                return vu_fail(dev, -EPROTO, "%u file descriptors attached, expected %u", msg->nfds, nfds);
        if (h->vring != VRING_NONE) {
                uint32_t idx = h->vring == VRING_U64 ? (uint32_t)(msg->payload.u64 & VU_VRING_IDX_MASK)
                                                     : msg->payload.state.index;
                if (h->vring == VRING_U64 && (msg->payload.u64 & ~(uint64_t)(VU_VRING_IDX_MASK | VU_VRING_NOFD_MASK)))
                        return vu_fail(dev, -EPROTO, "unknown bits in 0x%llx", (unsigned long long)msg->payload.u64);
                if (idx >= 2 * dev->nqueues)
                        return vu_fail(dev, -EPROTO, "vring index %u, this port has %u vrings (%u queue pairs)", idx,
                                       2 * dev->nqueues, dev->nqueues);
        }
        return 0;
}

static int send_reply(struct vu_dev *dev, struct vu_msg *msg)
{
        uint8_t buf[sizeof(struct vu_hdr) + VU_PAYLOAD_MAX];
        struct vu_hdr hdr = {.request = msg->hdr.request, .flags = VU_VERSION | VU_FLAG_REPLY, .size = msg->hdr.size};
        size_t len = sizeof(hdr) + hdr.size;
        ssize_t n;

        if (dev->replaying)
                return 0;
        memcpy(buf, &hdr, sizeof(hdr));
        memcpy(buf + sizeof(hdr), &msg->payload, hdr.size);
        do
                n = send(dev->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)len) {
                log_err("%s: cannot send %s reply: %s", dev->name, vu_request_name(msg->hdr.request),
                        n < 0 ? strerror(errno) : "short write");
                return -EPROTO;
        }
        return 0;
}

int vu_msg_dispatch(struct vu_dev *dev, struct vu_msg *msg)
{
        uint32_t req = msg->hdr.request;
        const struct vu_handler *h = req < VU_REQUEST_MAX ? &handlers[req] : NULL;
        bool need_ack = (msg->hdr.flags & VU_FLAG_NEED_REPLY) && vu_has_protocol_feature(dev, VU_PROTOCOL_F_REPLY_ACK);
        struct worker *w = NULL;
        int r;

        dev->err[0] = 0;
        dev->nmsgs++;
        if (!h || !h->handle) {
                log_err("%s: unsupported request %u (%s); closing the connection", dev->name, req,
                        vu_request_name(req));
                r = -EPROTO;
                goto out;
        }
        r = validate(dev, h, msg);
        if (r < 0)
                goto out;
        if (h->quiesce == QUIESCE_ALL)
                vu_dev_quiesce(dev);
        else if (h->quiesce == QUIESCE_VRING) {
                w = vu_vring_worker(dev, vu_msg_vring(dev, msg));
                worker_quiesce(w);
        }
        r = h->handle(dev, msg);
        if (h->quiesce == QUIESCE_ALL)
                vu_dev_resume(dev);
        else if (w)
                worker_resume(w);
        log_debug("%s: %s -> %d", dev->name, h->name, r);
out:
        for (unsigned i = 0; i < msg->nfds; i++)
                if (msg->fds[i] >= 0)
                        close(msg->fds[i]);
        msg->nfds = 0;
        if (r < 0) {
                /* A front-end that waits for a reply, or cannot be told (no REPLY_ACK), must not go on. */
                bool drop = r == -EPROTO || (h && h->replies) || !need_ack;
                if (dev->err[0])
                        log_err("%s: %s: %s%s", dev->name, vu_request_name(req), dev->err,
                                drop ? "; closing the connection" : "");
                if (drop)
                        r = -EPROTO;
        }
        if (r == -EPROTO)
                return r;
        if (r == 1)
                return send_reply(dev, msg);
        if (need_ack) {
                msg->hdr.size = sizeof(uint64_t);
                msg->payload.u64 = r < 0 ? 1 : 0;
                return send_reply(dev, msg);
        }
        return 0;
}
