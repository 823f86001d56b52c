// SPDX-License-Identifier: MIT
/*
 * A connection's state across an upgrade (daemon/handover.c): read out of a quiesced device into a struct hs_dev,
 * and put into a new device by replaying, in QEMU's order, the vhost-user requests that made it. The replay goes
 * through vu_msg_dispatch(), so a handed-over state passes every check a front-end's messages pass, and nothing is
 * answered (the front-end asked nothing). It comes in two steps: everything but the rings' start, which touches
 * nothing the old process still uses, then (once the old process has let go) the kicks and enables that start them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/vu.h"
#include "daemon/vu_handover.h"

/* A vring's counters in the state's order (HS_REC_VRING_COUNTERS): vhostctl's figures go on across an upgrade. */
static atomic_ulong *counter(struct vring_stats *s, unsigned k)
{
        atomic_ulong *all[HS_VRING_COUNTERS] = {&s->frames,    &s->bytes,        &s->drops, &s->drop_too_big,
                                                &s->drop_port, &s->kicks,        &s->calls, &s->wait_guest,
                                                &s->wait_port, &s->retry_wakeups};
        return all[k];
}

int vu_dev_export(struct vu_dev *dev, struct hs_dev *hs, bool live, char *err, size_t errlen)
{
        memset(hs, 0, sizeof(*hs));
        if (dev->rx_have || dev->rx_nfds) {
                snprintf(err, errlen, "%s: a vhost-user message is half received; try again", dev->name);
                return -EAGAIN;
        }
        hs->features = dev->features;
        hs->protocol_features = dev->protocol_features;
        hs->status = dev->status;
        hs->mtu = dev->mtu;
        hs->hdr_len = dev->hdr_len;
        hs->nqueues = dev->nqueues;
        hs->flags = dev->features_set ? HS_DEV_FEATURES_SET : 0;
        hs->log_fd = hs->log_call_fd = -1;
        for (unsigned i = 0; dev->mem && i < dev->mem->nregions; i++) {
                const struct mem_region *m = &dev->mem->regions[i];
                struct hs_region *g = &hs->regions[hs->nregions++];

                if (!m->holds_fd) {
                        snprintf(err, errlen, "%s: memory region %u has no fd to hand over", dev->name, i);
                        return -EINVAL;
                }
                *g = (struct hs_region){m->gpa, m->size, m->uva, m->mmap_offset, m->refs, m->fd};
        }
        for (unsigned i = 0; i < 2 * dev->nqueues; i++) {
                struct vu_vring *vr = &dev->vrings[i];
                struct hs_vring *v;

                if (!vr->vq.num)
                        continue; /* never sized: nothing to carry */
                v = &hs->vrings[hs->nvrings++];
                *v = (struct hs_vring){
                        .index = i,
                        .num = vr->vq.num,
                        .base = live            ? (vr->vq.packed ? VQ_PACKED_BASE_UNKNOWN : 0)
                                : vr->vq.packed ? vq_packed_get_base(&vr->vq)
                                                : vr->vq.last_avail_idx,
                        .desc_uva = vr->desc_uva,
                        .avail_uva = vr->avail_uva,
                        .used_uva = vr->used_uva,
                        .log_gpa = vr->log_guest_addr,
                        .kick_fd = vr->kick_fd,
                        .call_fd = vr->call_fd,
                        .err_fd = vr->err_fd,
                };
                for (unsigned k = 0; k < HS_VRING_COUNTERS; k++)
                        v->counters[k] = atomic_load_explicit(counter(&vr->stats, k), memory_order_relaxed);
                v->flags = (vr->addr_set ? HS_VR_ADDR_SET : 0) | (vr->enabled ? HS_VR_ENABLED : 0) |
                           (vr->log_used ? HS_VR_LOG_USED : 0) | (vr->vq.packed ? HS_VR_PACKED : 0);
                /* A ring the guest broke stays stopped in the new process too. */
                if (vr->started && vr->kick_fd >= 0 && (live || !vr->vq.broken))
                        v->flags |= HS_VR_STARTED;
                else
                        v->kick_fd = -1;
        }
        if (dev->log && dev->log->holds_fd) {
                hs->log_set = true;
                hs->log_size = dev->log->size;
                hs->log_offset = dev->log->offset;
                hs->log_fd = dev->log->fd;
        }
        hs->log_call_fd = dev->log_fd;
        return 0;
}

/* ---- the replay ---- */

struct replay {
        struct vu_dev *dev;
        char *err;
        size_t errlen;
};

/* Dispatches one request; fd (-1: none) is the message's, whatever happens. */
static int replay(struct replay *rp, struct vu_msg *msg, uint32_t request, uint32_t size, int fd)
{
        int r;

        msg->hdr = (struct vu_hdr){.request = request, .flags = VU_VERSION, .size = size};
        msg->nfds = 0;
        if (fd >= 0)
                msg->fds[msg->nfds++] = fd;
        rp->dev->err[0] = 0;
        r = vu_msg_dispatch(rp->dev, msg);
        if (r < 0 || rp->dev->err[0]) {
                snprintf(rp->err, rp->errlen, "%s: replaying %s: %s", rp->dev->name, vu_request_name(request),
                         rp->dev->err[0] ? rp->dev->err : strerror(-r));
                return r < 0 ? r : -EINVAL;
        }
        return 0;
}

static int replay_u64(struct replay *rp, uint32_t request, uint64_t v, int fd)
{
        struct vu_msg msg;

        memset(&msg.payload, 0, sizeof(msg.payload));
        msg.payload.u64 = v;
        return replay(rp, &msg, request, sizeof(uint64_t), fd);
}

static int replay_state(struct replay *rp, uint32_t request, unsigned index, unsigned num)
{
        struct vu_msg msg;

        memset(&msg.payload, 0, sizeof(msg.payload));
        msg.payload.state.index = index;
        msg.payload.state.num = num;
        return replay(rp, &msg, request, sizeof(msg.payload.state), -1);
}

/* A vring fd request: the fd, or the NOFD bit when there is none. */
static int replay_vring_fd(struct replay *rp, uint32_t request, unsigned index, int fd)
{
        return replay_u64(rp, request, index | (fd < 0 ? VU_VRING_NOFD_MASK : 0), fd);
}

/* fds[] of the state by index; each is taken (set to -1) when a request gets it, so the caller closes the rest. */
static int take(int *fds, int index)
{
        int fd;

        if (index < 0)
                return -1;
        fd = fds[index];
        fds[index] = -1;
        return fd;
}

int vu_dev_import(struct vu_dev *dev, const struct hs_dev *hs, int *fds, char *err, size_t errlen)
{
        struct replay rp = {.dev = dev, .err = err, .errlen = errlen};
        int r;

        if (hs->nqueues != dev->nqueues) {
                snprintf(err, errlen, "%s: the state has %u queue pairs, the configuration %u", dev->name, hs->nqueues,
                         dev->nqueues);
                return -EINVAL;
        }
        dev->replaying = true;
        r = replay(&rp, &(struct vu_msg){0}, VU_SET_OWNER, 0, -1);
        if (r < 0)
                goto out;
        if ((hs->flags & HS_DEV_FEATURES_SET) && (r = replay_u64(&rp, VU_SET_FEATURES, hs->features, -1)) < 0)
                goto out;
        if (hs->protocol_features && (r = replay_u64(&rp, VU_SET_PROTOCOL_FEATURES, hs->protocol_features, -1)) < 0)
                goto out;
        if (hs->mtu != dev->mtu && (r = replay_u64(&rp, VU_NET_SET_MTU, hs->mtu, -1)) < 0)
                goto out;
        if (hs->status && (r = replay_u64(&rp, VU_SET_STATUS, hs->status, -1)) < 0)
                goto out;
        for (unsigned i = 0; i < hs->nregions; i++) {
                const struct hs_region *g = &hs->regions[i];
                int fd = take(fds, g->fd);

                /* One ADD_MEM_REG per reference, as the front-end sent them: its REM_MEM_REGs then add up. */
                for (unsigned k = 0; k < g->refs; k++) {
                        struct vu_msg msg;
                        int dup = k + 1 < g->refs ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : fd;

                        memset(&msg.payload, 0, sizeof(msg.payload));
                        msg.payload.mem_reg.region = (struct vu_mem_region){
                                .guest_phys_addr = g->gpa,
                                .memory_size = g->size,
                                .userspace_addr = g->uva,
                                .mmap_offset = g->mmap_offset,
                        };
                        if (dup < 0) {
                                r = -errno;
                                close(fd);
                                snprintf(err, errlen, "%s: region %u: %s", dev->name, i, strerror(-r));
                                goto out;
                        }
                        if ((r = replay(&rp, &msg, VU_ADD_MEM_REG, sizeof(msg.payload.mem_reg), dup)) < 0) {
                                if (dup != fd)
                                        close(fd);
                                goto out;
                        }
                }
        }
        if (hs->log_set) {
                struct vu_msg msg;

                memset(&msg.payload, 0, sizeof(msg.payload));
                msg.payload.log = (struct vu_log){.mmap_size = hs->log_size, .mmap_offset = hs->log_offset};
                if ((r = replay(&rp, &msg, VU_SET_LOG_BASE, sizeof(msg.payload.log), take(fds, hs->log_fd))) < 0)
                        goto out;
        }
        if (hs->log_call_fd >= 0) {
                struct vu_msg msg;

                memset(&msg.payload, 0, sizeof(msg.payload));
                if ((r = replay(&rp, &msg, VU_SET_LOG_FD, 0, take(fds, hs->log_call_fd))) < 0)
                        goto out;
        }
        for (unsigned i = 0; i < hs->nvrings; i++) {
                const struct hs_vring *v = &hs->vrings[i];

                if (!!(v->flags & HS_VR_PACKED) != dev->vrings[v->index].vq.packed) {
                        snprintf(err, errlen, "%s: vring %u: its layout does not match the features", dev->name,
                                 v->index);
                        r = -EINVAL;
                        goto out;
                }
                if ((r = replay_state(&rp, VU_SET_VRING_NUM, v->index, v->num)) < 0 ||
                    (r = replay_state(&rp, VU_SET_VRING_BASE, v->index, v->base)) < 0)
                        goto out;
                if (v->flags & HS_VR_ADDR_SET) {
                        struct vu_msg msg;

                        memset(&msg.payload, 0, sizeof(msg.payload));
                        msg.payload.addr = (struct vu_vring_addr){
                                .index = v->index,
                                .flags = (v->flags & HS_VR_LOG_USED) ? 1u << VU_VRING_F_LOG : 0,
                                .desc_user_addr = v->desc_uva,
                                .used_user_addr = v->used_uva,
                                .avail_user_addr = v->avail_uva,
                                .log_guest_addr = v->log_gpa,
                        };
                        if ((r = replay(&rp, &msg, VU_SET_VRING_ADDR, sizeof(msg.payload.addr), -1)) < 0)
                                goto out;
                }
                if ((r = replay_vring_fd(&rp, VU_SET_VRING_CALL, v->index, take(fds, v->call_fd))) < 0)
                        goto out;
                if (v->err_fd >= 0 && (r = replay_vring_fd(&rp, VU_SET_VRING_ERR, v->index, take(fds, v->err_fd))) < 0)
                        goto out;
                for (unsigned k = 0; k < HS_VRING_COUNTERS; k++) /* no worker runs this ring yet */
                        atomic_store_explicit(counter(&dev->vrings[v->index].stats, k), v->counters[k],
                                              memory_order_relaxed);
        }
        r = 0;
out:
        dev->replaying = false;
        return r;
}

int vu_dev_import_start(struct vu_dev *dev, const struct hs_dev *hs, int *fds, char *err, size_t errlen)
{
        struct replay rp = {.dev = dev, .err = err, .errlen = errlen};
        int r = 0;

        dev->replaying = true;
        for (unsigned i = 0; i < hs->nvrings && r == 0; i++) {
                const struct hs_vring *v = &hs->vrings[i];

                if (v->flags & HS_VR_STARTED)
                        r = replay_vring_fd(&rp, VU_SET_VRING_KICK, v->index, take(fds, v->kick_fd));
                if (r == 0 && (hs->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)))
                        r = replay_state(&rp, VU_SET_VRING_ENABLE, v->index, !!(v->flags & HS_VR_ENABLED));
        }
        dev->replaying = false;
        return r;
}
