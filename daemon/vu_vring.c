// SPDX-License-Identifier: MIT
/* vhost-user vring requests: size, addresses, base, kick/call/err eventfds, enable; starting and stopping rings. */
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

void vu_return_all_chains(struct vu_dev *dev)
{
        for (unsigned q = 0; q < dev->nqueues; q++)
                worker_return_chains(&dev->workers[q]);
}

void vu_stop_all_rings(struct vu_dev *dev)
{
        vu_return_all_chains(dev);
        for (unsigned i = 0; i < 2 * dev->nqueues; i++) {
                vu_vring_stop(dev, &dev->vrings[i]);
                dev->vrings[i].enabled = false;
        }
}

int vu_handle_set_vring_num(struct vu_dev *dev, struct vu_msg *msg)
{
        struct vu_vring *vr = vu_msg_vring(dev, msg);
        unsigned num = msg->payload.state.num;

        if (vr->started)
                return vu_fail(dev, -EBUSY, "vring %u is running", vr->index);
        if (vr->vq.packed && vq_check_num_packed(num) < 0)
                return vu_fail(dev, -EINVAL, "vring %u: size %u of a packed ring is not in 1..%u", vr->index, num,
                               VIRTQ_MAX_SIZE);
        if (!vr->vq.packed && vq_check_num(num) < 0)
                return vu_fail(dev, -EINVAL, "vring %u: size %u is not a power of two in 1..%u", vr->index, num,
                               VIRTQ_MAX_SIZE);
        if (vq_alloc(&vr->vq, num) < 0)
                return vu_fail(dev, -ENOMEM, "vring %u: out of memory", vr->index);
        vr->mapped = false;
        return 0;
}

int vu_handle_set_vring_addr(struct vu_dev *dev, struct vu_msg *msg)
{
        const struct vu_vring_addr *a = &msg->payload.addr;
        struct vu_vring *vr = vu_msg_vring(dev, msg);
        const char *why;
        int r;

        if (!vr->vq.num)
                return vu_fail(dev, -EINVAL, "vring %u: address set before size", vr->index);
        vr->desc_uva = a->desc_user_addr;
        vr->avail_uva = a->avail_user_addr;
        vr->used_uva = a->used_user_addr;
        vr->log_used = a->flags & (1u << VU_VRING_F_LOG);
        vr->log_guest_addr = a->log_guest_addr;
        vr->addr_set = true;
        vr->mapped = false;
        if (!dev->mem)
                return 0; /* mapped when the memory table arrives */
        r = vq_map_rings(&vr->vq, dev->mem, vr->desc_uva, vr->avail_uva, vr->used_uva, &why);
        if (r < 0) {
                vr->addr_set = false;
                return vu_fail(dev, r, "vring %u: %s", vr->index, why);
        }
        vr->mapped = true;
        vu_log_apply_ring(dev, vr); /* only this ring's worker is quiesced */
        return 0;
}

int vu_handle_set_vring_base(struct vu_dev *dev, struct vu_msg *msg)
{
        struct vu_vring *vr = vu_msg_vring(dev, msg);

        if (vr->started)
                return vu_fail(dev, -EBUSY, "vring %u is running", vr->index);
        if (vr->vq.packed) {
                const char *why;

                if (vq_packed_set_base(&vr->vq, msg->payload.state.num, &why) < 0)
                        return vu_fail(dev, -EINVAL, "vring %u: base 0x%x: %s", vr->index, msg->payload.state.num, why);
                return 0;
        }
        if (msg->payload.state.num > 0xffff)
                return vu_fail(dev, -EINVAL, "vring %u: base %u out of range for a split ring", vr->index,
                               msg->payload.state.num);
        vr->vq.last_avail_idx = (uint16_t)msg->payload.state.num;
        vr->vq.used_idx = (uint16_t)msg->payload.state.num;
        return 0;
}

int vu_handle_get_vring_base(struct vu_dev *dev, struct vu_msg *msg)
{
        struct vu_vring *vr = vu_msg_vring(dev, msg);

        worker_return_chains(vu_vring_worker(dev, vr));
        vu_vring_stop(dev, vr);
        msg->payload.state.num = vr->vq.packed ? vq_packed_get_base(&vr->vq) : vr->vq.last_avail_idx;
        vr->vq.base_exact = true;
        msg->hdr.size = sizeof(msg->payload.state);
        return 1;
}

/* Starts a ring: the worker may use it once it is also enabled and mapped. */
static void start_vring(struct vu_dev *dev, struct vu_vring *vr)
{
        struct vq *vq = &vr->vq;
        int r;

        vr->started = true;
        if (!vu_has_feature(dev, VHOST_USER_F_PROTOCOL_FEATURES))
                vr->enabled = true;
        vq->broken = false;
        vr->broken_reported = false;
        vq->signalled_used_valid = false;
        vq->notify_enabled = false;
        if (vr->mapped) {
                int given = vq_resume(vq);

                if (given >= 0)
                        log_warn("%s: vring %u: base %d differs from the used index %u; resuming at %u", dev->name,
                                 vr->index, given, vq->used_idx, vq->used_idx);
                vq_enable_notify(vq);
        }
        r = worker_configure_port(vu_vring_worker(dev, vr));
        if (r < 0)
                log_err("%s: queue pair %u: port refused the negotiated offloads: %s", dev->name, vr->index / 2,
                        strerror(-r));
}

int vu_handle_set_vring_kick(struct vu_dev *dev, struct vu_msg *msg)
{
        struct vu_vring *vr = vu_msg_vring(dev, msg);
        int fd, r;

        if (msg->payload.u64 & VU_VRING_NOFD_MASK)
                return vu_fail(dev, -EINVAL, "vring %u: polling without a kick fd is not supported", vr->index);
        if (!vr->vq.num)
                return vu_fail(dev, -EINVAL, "vring %u: kick before size", vr->index);
        fd = vu_take_fd(msg, 0);
        r = worker_set_kick(vu_vring_worker(dev, vr), vr->index, vr->kick_fd, fd);
        if (vr->kick_fd >= 0)
                close(vr->kick_fd);
        vr->kick_fd = -1;
        if (r < 0) {
                close(fd);
                return vu_fail(dev, r, "vring %u: cannot wait on kick fd: %s", vr->index, strerror(-r));
        }
        vr->kick_fd = fd;
        start_vring(dev, vr);
        return 0;
}

static int replace_fd(int *slot, struct vu_msg *msg)
{
        if (*slot >= 0)
                close(*slot);
        *slot = (msg->payload.u64 & VU_VRING_NOFD_MASK) ? -1 : vu_take_fd(msg, 0);
        return 0;
}

int vu_handle_set_vring_call(struct vu_dev *dev, struct vu_msg *msg)
{
        return replace_fd(&vu_msg_vring(dev, msg)->call_fd, msg);
}

int vu_handle_set_vring_err(struct vu_dev *dev, struct vu_msg *msg)
{
        return replace_fd(&vu_msg_vring(dev, msg)->err_fd, msg);
}

int vu_handle_set_vring_enable(struct vu_dev *dev, struct vu_msg *msg)
{
        struct vu_vring *vr = vu_msg_vring(dev, msg);

        /* QEMU sends this before SET_FEATURES too (to disable rings beyond the active queue pairs). */
        if (msg->payload.state.num > 1)
                return vu_fail(dev, -EINVAL, "vring %u: enable value %u is not 0 or 1", vr->index,
                               msg->payload.state.num);
        if (!msg->payload.state.num)
                worker_return_chains(vu_vring_worker(dev, vr));
        vr->enabled = msg->payload.state.num;
        return 0;
}
