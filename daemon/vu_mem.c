// SPDX-License-Identifier: MIT
/* vhost-user memory requests: the table is built whole, swapped in with the workers quiesced, and rings re-pointed. */
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

/* Why mem_region_map() failed, in the operator's terms. */
static const char *map_error(int r)
{
        return r == -ERANGE ? "the file is smaller than mmap_offset + size (the region would fault on first touch)"
                            : strerror(-r);
}

/* Re-points every ring at the current table; rings whose addresses no longer translate stop. */
static void remap_rings(struct vu_dev *dev)
{
        for (unsigned i = 0; i < 2 * dev->nqueues; i++) {
                struct vu_vring *vr = &dev->vrings[i];
                const char *why;

                vr->mapped = false;
                if (!vr->addr_set || !dev->mem)
                        continue;
                if (vq_map_rings(&vr->vq, dev->mem, vr->desc_uva, vr->avail_uva, vr->used_uva, &why) == 0) {
                        vr->mapped = true;
                } else if (vr->started) {
                        /* The front-end took memory away from under a running ring: that ring is broken. */
                        vq_set_broken(&vr->vq, "%s after the memory table changed", why);
                        vr->broken_reported = true;
                        log_err("%s: vring %u is broken and stops: %s", dev->name, i, vr->vq.broken_reason);
                        if (vr->err_fd >= 0)
                                (void)eventfd_write(vr->err_fd, 1);
                } else {
                        log_warn("%s: vring %u: %s after the memory table changed", dev->name, i, why);
                }
        }
}

/* Installs a new table (workers quiesced) and frees the old one; unmap says whether the old mappings go too. */
static void swap_mem(struct vu_dev *dev, struct mem_table *new_mem, bool unmap_old)
{
        struct mem_table *old = dev->mem;

        vu_return_all_chains(dev);
        dev->mem = new_mem;
        remap_rings(dev);
        if (dev->log && vu_has_feature(dev, VHOST_F_LOG_ALL) && !vlog_covers(dev->log, new_mem))
                log_warn("%s: guest memory now reaches beyond the dirty log (%llu bytes): a ring that writes there "
                         "stops",
                         dev->name, (unsigned long long)dev->log->size);
        vu_log_apply(dev); /* rings were re-pointed: their logging too */
        if (old && unmap_old)
                mem_table_clear(old);
        free(old);
}

int vu_handle_set_mem_table(struct vu_dev *dev, struct vu_msg *msg)
{
        const struct vu_mem_table *mt = &msg->payload.mem;
        struct mem_table *t = calloc(1, sizeof(*t));
        const char *why;
        int r = 0;

        if (!t)
                return vu_fail(dev, -ENOMEM, "out of memory");
        for (unsigned i = 0; i < mt->nregions; i++) {
                const struct vu_mem_region *reg = &mt->regions[i];
                struct mem_region m;

                if (mem_region_check(reg->guest_phys_addr, reg->memory_size, reg->userspace_addr, reg->mmap_offset,
                                     &why) < 0) {
                        r = vu_fail(dev, -EINVAL, "region %u: %s", i, why);
                        break;
                }
                r = mem_region_map(&m, msg->fds[i], reg->guest_phys_addr, reg->memory_size, reg->userspace_addr,
                                   reg->mmap_offset);
                if (r < 0) {
                        vu_fail(dev, r, "region %u (gpa 0x%llx size 0x%llx): cannot map: %s", i,
                                (unsigned long long)reg->guest_phys_addr, (unsigned long long)reg->memory_size,
                                map_error(r));
                        break;
                }
                r = mem_table_add(t, &m, &why);
                if (r < 0) {
                        mem_region_unmap(&m);
                        vu_fail(dev, r, "region %u: %s", i, why);
                        break;
                }
        }
        if (r < 0) {
                mem_table_clear(t);
                free(t);
                return r;
        }
        swap_mem(dev, t, true);
        log_debug("%s: memory table with %u regions", dev->name, t->nregions);
        for (unsigned i = 0; i < t->nregions; i++)
                if (!t->regions[i].sealed)
                        log_debug("%s: region %u is not sealed against shrinking: if the front-end truncates it, "
                                  "its connection is closed",
                                  dev->name, i);
        return 0;
}

int vu_handle_add_mem_reg(struct vu_dev *dev, struct vu_msg *msg)
{
        const struct vu_mem_region *reg = &msg->payload.mem_reg.region;
        struct mem_table *t = calloc(1, sizeof(*t));
        struct mem_region m;
        const char *why;
        int r;

        if (!t)
                return vu_fail(dev, -ENOMEM, "out of memory");
        if (dev->mem)
                *t = *dev->mem;
        r = mem_table_find(t, reg->guest_phys_addr, reg->memory_size, reg->userspace_addr);
        if (r >= 0) {
                /* The same region again, from another queue pair's view of the device: count it. */
                t->regions[r].refs++;
                swap_mem(dev, t, false);
                return 0;
        }
        if (mem_region_check(reg->guest_phys_addr, reg->memory_size, reg->userspace_addr, reg->mmap_offset, &why) < 0) {
                free(t);
                return vu_fail(dev, -EINVAL, "%s", why);
        }
        r = mem_region_map(&m, msg->fds[0], reg->guest_phys_addr, reg->memory_size, reg->userspace_addr,
                           reg->mmap_offset);
        if (r < 0) {
                free(t);
                return vu_fail(dev, r, "cannot map region: %s", map_error(r));
        }
        r = mem_table_add(t, &m, &why);
        if (r < 0) {
                mem_region_unmap(&m);
                free(t);
                return vu_fail(dev, r, "%s", why);
        }
        swap_mem(dev, t, false);
        return 0;
}

int vu_handle_rem_mem_reg(struct vu_dev *dev, struct vu_msg *msg)
{
        const struct vu_mem_region *reg = &msg->payload.mem_reg.region;
        struct mem_table *t;
        struct mem_region gone;

        if (!dev->mem)
                return vu_fail(dev, -ENOENT, "no memory table");
        t = malloc(sizeof(*t));
        if (!t)
                return vu_fail(dev, -ENOMEM, "out of memory");
        *t = *dev->mem;
        int r = mem_table_remove(t, reg->guest_phys_addr, reg->memory_size, reg->userspace_addr, &gone);
        if (r < 0) {
                free(t);
                return vu_fail(dev, -ENOENT, "no region at gpa 0x%llx size 0x%llx",
                               (unsigned long long)reg->guest_phys_addr, (unsigned long long)reg->memory_size);
        }
        swap_mem(dev, t, false);
        if (r == 1)
                mem_region_unmap(&gone); /* workers are quiesced and no longer point into it */
        return 0;
}

int vu_handle_get_max_mem_slots(struct vu_dev *dev, struct vu_msg *msg)
{
        return vu_reply_u64(msg, MEM_MAX_REGIONS);
}

/* ---- the dirty log (live migration) ---- */

void vu_log_apply_ring(struct vu_dev *dev, struct vu_vring *vr)
{
        const char *why;

        if (!vu_has_feature(dev, VHOST_F_LOG_ALL) || !dev->log || !vr->mapped) {
                (void)vq_set_log(&vr->vq, NULL, false, 0, &why);
                return;
        }
        if (vq_set_log(&vr->vq, dev->log, vr->log_used, vr->log_guest_addr, &why) < 0 && !vr->vq.broken) {
                /* Migrating without logging this ring would leave stale pages at the destination. */
                vq_set_broken(&vr->vq, "dirty log: %s", why);
                vr->broken_reported = true;
                log_err("%s: vring %u is broken and stops: %s", dev->name, vr->index, vr->vq.broken_reason);
                if (vr->err_fd >= 0)
                        (void)eventfd_write(vr->err_fd, 1);
        }
}

void vu_log_apply(struct vu_dev *dev)
{
        for (unsigned i = 0; i < 2 * dev->nqueues; i++)
                vu_log_apply_ring(dev, &dev->vrings[i]);
}

int vu_handle_set_log_base(struct vu_dev *dev, struct vu_msg *msg)
{
        const struct vu_log *l = &msg->payload.log;
        struct vq_log *log = calloc(1, sizeof(*log)), *old = dev->log;
        int r;

        if (!vu_has_protocol_feature(dev, VU_PROTOCOL_F_LOG_SHMFD)) {
                free(log);
                return vu_fail(dev, -EINVAL, "without the LOG_SHMFD protocol feature (a log in shared memory)");
        }
        if (!log)
                return vu_fail(dev, -ENOMEM, "out of memory");
        r = vlog_map(log, msg->fds[0], l->mmap_size, l->mmap_offset);
        if (r < 0) {
                free(log);
                return vu_fail(dev, r, "cannot map the log (%llu bytes at offset %llu): %s",
                               (unsigned long long)l->mmap_size, (unsigned long long)l->mmap_offset,
                               r == -ERANGE ? "the file is smaller than offset + size" : strerror(-r));
        }
        if (!vlog_covers(log, dev->mem)) {
                uint64_t covers = log->size * 8 * VLOG_PAGE;
                vlog_unmap(log);
                free(log);
                return vu_fail(dev, -ERANGE, "a log of %llu bytes covers guest memory up to 0x%llx only",
                               (unsigned long long)l->mmap_size, (unsigned long long)covers);
        }
        /* The workers are quiesced: no ring points at the old log once this returns, so it can go. */
        dev->log = log;
        vu_log_apply(dev);
        if (old) {
                vlog_unmap(old);
                free(old);
        }
        log_info("%s: dirty log of %llu bytes (guest memory up to %llu MiB)%s", dev->name,
                 (unsigned long long)log->size, (unsigned long long)(log->size * 8 * VLOG_PAGE >> 20),
                 vu_has_feature(dev, VHOST_F_LOG_ALL) ? ", logging" : "");
        msg->hdr.size = 0; /* QEMU waits for an empty reply */
        return 1;
}

int vu_handle_set_log_fd(struct vu_dev *dev, struct vu_msg *msg)
{
        int old = dev->log_fd;

        dev->log_fd = vu_take_fd(msg, 0);
        for (unsigned q = 0; q < dev->nqueues; q++)
                worker_set_log_fd(&dev->workers[q], dev->log_fd);
        if (old >= 0)
                close(old); /* no worker holds it any more: they are quiesced */
        return 0;
}
