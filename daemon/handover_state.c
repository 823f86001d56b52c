// SPDX-License-Identifier: MIT
#include "daemon/handover_state.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vring/mem.h"
#include "vring/virtio.h"

/* Fixed layouts, little-endian. A record may grow in a later minor version: readers take the fields they
 * know and ignore what follows. */
struct hs_dev_rec {
        uint64_t features, protocol_features;
        uint32_t status, mtu, hdr_len, nqueues, flags, pad;
};

struct hs_region_rec {
        uint64_t gpa, size, uva, mmap_offset;
        uint32_t refs, pad;
};

struct hs_vring_rec {
        uint32_t index, num, flags, base;
        uint64_t desc_uva, avail_uva, used_uva, log_gpa;
};

struct hs_log_rec {
        uint64_t size, offset;
};

#define REQ STATE_REC_REQUIRED

static int put_fd_if(struct state_writer *w, uint16_t type, int fd)
{
        return fd >= 0 ? state_put_fd(w, type, fd) : w->err;
}

int hs_save(struct state_writer *w, const struct hs_dev *dev)
{
        struct hs_dev_rec d = {
                .features = htole64(dev->features),
                .protocol_features = htole64(dev->protocol_features),
                .status = htole32(dev->status),
                .mtu = htole32(dev->mtu),
                .hdr_len = htole32(dev->hdr_len),
                .nqueues = htole32(dev->nqueues),
                .flags = htole32(dev->flags),
        };

        state_put(w, HS_REC_DEV, REQ, &d, sizeof(d));
        for (unsigned i = 0; i < dev->nregions; i++) {
                const struct hs_region *r = &dev->regions[i];
                struct hs_region_rec rr = {htole64(r->gpa),         htole64(r->size), htole64(r->uva),
                                           htole64(r->mmap_offset), htole32(r->refs), 0};

                state_put(w, HS_REC_REGION, REQ, &rr, sizeof(rr));
                state_put_fd(w, HS_REC_REGION_FD, r->fd);
        }
        for (unsigned i = 0; i < dev->nvrings; i++) {
                const struct hs_vring *v = &dev->vrings[i];
                struct hs_vring_rec vr = {
                        .index = htole32(v->index),
                        .num = htole32(v->num),
                        .flags = htole32(v->flags),
                        .base = htole32(v->base),
                        .desc_uva = htole64(v->desc_uva),
                        .avail_uva = htole64(v->avail_uva),
                        .used_uva = htole64(v->used_uva),
                        .log_gpa = htole64(v->log_gpa),
                };

                uint64_t counters[HS_VRING_COUNTERS];

                for (unsigned k = 0; k < HS_VRING_COUNTERS; k++)
                        counters[k] = htole64(v->counters[k]);
                state_put(w, HS_REC_VRING, REQ, &vr, sizeof(vr));
                state_put(w, HS_REC_VRING_COUNTERS, 0, counters, sizeof(counters));
                put_fd_if(w, HS_REC_KICK_FD, v->kick_fd);
                put_fd_if(w, HS_REC_CALL_FD, v->call_fd);
                put_fd_if(w, HS_REC_ERR_FD, v->err_fd);
        }
        if (dev->log_set) {
                struct hs_log_rec l = {htole64(dev->log_size), htole64(dev->log_offset)};

                state_put(w, HS_REC_LOG, REQ, &l, sizeof(l));
                state_put_fd(w, HS_REC_LOG_FD, dev->log_fd);
        }
        put_fd_if(w, HS_REC_LOG_CALL_FD, dev->log_call_fd);
        state_put(w, HS_REC_DEV_END, REQ, NULL, 0);
        return w->err;
}

/* ---- loading ---- */

struct loader {
        struct state_reader *r;
        struct hs_dev *dev;
        char *err;
        size_t errlen;
        bool have_dev;
        int pending;            /* the record type whose fd must come next (REGION_FD, LOG_FD), 0: none */
        struct hs_vring *vring; /* the last vring, for its fd records */
        uint8_t *fd_used;       /* STATE_FDS_MAX bits */
};

static int bad(struct loader *l, const struct state_rec *rec, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int bad(struct loader *l, const struct state_rec *rec, const char *fmt, ...)
{
        va_list ap;
        int n = snprintf(l->err, l->errlen, "state record %u at byte %zu: ", rec->type,
                         l->r->off - ((rec->len + 7) & ~7u) - 8);

        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < l->errlen)
                vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* The fd index of rec, checked and marked used: each fd is taken once. */
static int take_fd(struct loader *l, const struct state_rec *rec, int *ret)
{
        unsigned index;

        if (state_get_fd_index(l->r, rec, &index) < 0)
                return bad(l, rec, "not an fd index among the %u fds passed", l->r->nfds);
        if (hs_take_fd_index(l->fd_used, index) < 0)
                return bad(l, rec, "fd %u is already used by another record", index);
        *ret = (int)index;
        return 0;
}

int hs_take_fd_index(uint8_t *fd_used, unsigned i)
{
        if (i >= STATE_FDS_MAX || (fd_used[i / 8] & (1u << (i % 8))))
                return -EBADMSG;
        fd_used[i / 8] |= (uint8_t)(1u << (i % 8));
        return 0;
}

/* Copies the record's value into a zeroed fixed layout of size len: a longer record is a newer version. */
static int fixed(struct loader *l, const struct state_rec *rec, void *out, size_t len, const char *what)
{
        if (rec->len < len)
                return bad(l, rec, "%s of %u bytes, %zu expected", what, rec->len, len);
        memcpy(out, rec->value, len);
        return 0;
}

static int load_vring(struct loader *l, const struct state_rec *rec)
{
        struct hs_vring_rec vr;
        struct hs_vring *v;
        int r;

        if ((r = fixed(l, rec, &vr, sizeof(vr), "vring")) < 0)
                return r;
        if (l->dev->nvrings == HS_MAX_VRINGS)
                return bad(l, rec, "more than %u vrings", HS_MAX_VRINGS);
        v = &l->dev->vrings[l->dev->nvrings];
        /* Field by field on a zeroed struct: a compound literal may leave its padding undefined, and the struct is
         * compared whole in the tests. */
        memset(v, 0, sizeof(*v));
        v->index = le32toh(vr.index);
        v->num = le32toh(vr.num);
        v->flags = le32toh(vr.flags);
        v->base = le32toh(vr.base);
        v->desc_uva = le64toh(vr.desc_uva);
        v->avail_uva = le64toh(vr.avail_uva);
        v->used_uva = le64toh(vr.used_uva);
        v->log_gpa = le64toh(vr.log_gpa);
        v->kick_fd = v->call_fd = v->err_fd = -1;
        if (v->index >= 2 * l->dev->nqueues)
                return bad(l, rec, "vring %u of a device with %u queue pairs", v->index, l->dev->nqueues);
        for (unsigned i = 0; i < l->dev->nvrings; i++)
                if (l->dev->vrings[i].index == v->index)
                        return bad(l, rec, "vring %u twice", v->index);
        if (v->flags & ~(uint32_t)(HS_VR_ADDR_SET | HS_VR_STARTED | HS_VR_ENABLED | HS_VR_LOG_USED | HS_VR_PACKED))
                return bad(l, rec, "vring %u: unknown flags 0x%x", v->index, v->flags);
        if (v->num == 0 || v->num > VIRTQ_MAX_SIZE || (!(v->flags & HS_VR_PACKED) && (v->num & (v->num - 1))))
                return bad(l, rec, "vring %u: size %u", v->index, v->num);
        if (!(v->flags & HS_VR_PACKED) && v->base > 0xffff)
                return bad(l, rec, "vring %u: split ring base 0x%x", v->index, v->base);
        if ((v->flags & HS_VR_PACKED) && ((v->base & 0x7fff) >= v->num || ((v->base >> 16) & 0x7fff) >= v->num))
                return bad(l, rec, "vring %u: packed ring base 0x%x outside a ring of %u", v->index, v->base, v->num);
        l->dev->nvrings++;
        l->vring = v;
        return 0;
}

static int load_one(struct loader *l, const struct state_rec *rec)
{
        struct hs_dev *dev = l->dev;
        int r, *slot = NULL;

        if (l->pending && rec->type != l->pending)
                return bad(l, rec, "record %u expected first (the fd of the record before)", l->pending);
        if (rec->type != HS_REC_DEV && !l->have_dev && rec->type <= HS_REC_LOG_CALL_FD)
                return bad(l, rec, "before the device record");
        switch (rec->type) {
        case HS_REC_DEV: {
                struct hs_dev_rec d;
                if (l->have_dev)
                        return bad(l, rec, "a second device record");
                if ((r = fixed(l, rec, &d, sizeof(d), "device")) < 0)
                        return r;
                dev->features = le64toh(d.features);
                dev->protocol_features = le64toh(d.protocol_features);
                dev->status = le32toh(d.status);
                dev->mtu = le32toh(d.mtu);
                dev->hdr_len = le32toh(d.hdr_len);
                dev->nqueues = le32toh(d.nqueues);
                dev->flags = le32toh(d.flags);
                if (dev->flags & ~(uint32_t)HS_DEV_FEATURES_SET)
                        return bad(l, rec, "unknown device flags 0x%x", dev->flags);
                if (dev->nqueues == 0 || dev->nqueues > HS_MAX_VRINGS / 2)
                        return bad(l, rec, "%u queue pairs", dev->nqueues);
                if (dev->hdr_len != 10 && dev->hdr_len != 12)
                        return bad(l, rec, "virtio-net header of %u bytes", dev->hdr_len);
                l->have_dev = true;
                return 0;
        }
        case HS_REC_REGION: {
                struct hs_region_rec rr;
                struct hs_region *g;
                const char *why;
                if ((r = fixed(l, rec, &rr, sizeof(rr), "region")) < 0)
                        return r;
                if (dev->nregions == HS_MAX_REGIONS)
                        return bad(l, rec, "more than %u memory regions", HS_MAX_REGIONS);
                g = &dev->regions[dev->nregions];
                *g = (struct hs_region){le64toh(rr.gpa),         le64toh(rr.size), le64toh(rr.uva),
                                        le64toh(rr.mmap_offset), le32toh(rr.refs), -1};
                if (mem_region_check(g->gpa, g->size, g->uva, g->mmap_offset, &why) < 0)
                        return bad(l, rec, "memory region %u: %s", dev->nregions, why);
                if (g->refs == 0 || g->refs > HS_MAX_VRINGS)
                        return bad(l, rec, "memory region %u added %u times", dev->nregions, g->refs);
                dev->nregions++;
                l->pending = HS_REC_REGION_FD;
                return 0;
        }
        case HS_REC_REGION_FD:
                if (l->pending != HS_REC_REGION_FD)
                        return bad(l, rec, "a region fd without its region");
                l->pending = 0;
                return take_fd(l, rec, &dev->regions[dev->nregions - 1].fd);
        case HS_REC_VRING:
                return load_vring(l, rec);
        case HS_REC_KICK_FD:
        case HS_REC_CALL_FD:
        case HS_REC_ERR_FD:
                if (!l->vring)
                        return bad(l, rec, "a vring fd before any vring");
                slot = rec->type == HS_REC_KICK_FD   ? &l->vring->kick_fd
                       : rec->type == HS_REC_CALL_FD ? &l->vring->call_fd
                                                     : &l->vring->err_fd;
                if (*slot >= 0)
                        return bad(l, rec, "vring %u has this fd twice", l->vring->index);
                return take_fd(l, rec, slot);
        case HS_REC_LOG: {
                struct hs_log_rec lr;
                if (dev->log_set)
                        return bad(l, rec, "a second dirty log");
                if ((r = fixed(l, rec, &lr, sizeof(lr), "dirty log")) < 0)
                        return r;
                dev->log_size = le64toh(lr.size);
                dev->log_offset = le64toh(lr.offset);
                if (dev->log_size == 0 || dev->log_offset > UINT64_MAX - dev->log_size)
                        return bad(l, rec, "dirty log of %llu bytes at %llu", (unsigned long long)dev->log_size,
                                   (unsigned long long)dev->log_offset);
                dev->log_set = true;
                l->pending = HS_REC_LOG_FD;
                return 0;
        }
        case HS_REC_LOG_FD:
                if (l->pending != HS_REC_LOG_FD)
                        return bad(l, rec, "a dirty log fd without its log");
                l->pending = 0;
                return take_fd(l, rec, &dev->log_fd);
        case HS_REC_VRING_COUNTERS:
                if (!l->vring)
                        return bad(l, rec, "vring counters before any vring");
                for (unsigned k = 0; k < HS_VRING_COUNTERS && (k + 1) * 8 <= rec->len; k++) {
                        uint64_t c;
                        memcpy(&c, (const uint8_t *)rec->value + k * 8, sizeof(c));
                        l->vring->counters[k] = le64toh(c);
                }
                return 0;
        case HS_REC_LOG_CALL_FD:
                if (dev->log_call_fd >= 0)
                        return bad(l, rec, "a second log call fd");
                return take_fd(l, rec, &dev->log_call_fd);
        default:
                if (rec->flags & STATE_REC_REQUIRED)
                        return bad(l, rec, "unknown and required: made by a newer vhostd");
                return 0; /* a newer minor's optional record */
        }
}

int hs_load(struct state_reader *r, struct hs_dev *dev, uint8_t *fd_used, char *err, size_t errlen)
{
        uint8_t own_fd_used[STATE_FDS_MAX / 8] = {0};
        struct loader l = {
                .r = r, .dev = dev, .err = err, .errlen = errlen, .fd_used = fd_used ? fd_used : own_fd_used};
        struct state_rec rec;
        int n;

        memset(dev, 0, sizeof(*dev));
        dev->log_fd = dev->log_call_fd = -1;
        while ((n = state_next(r, &rec, err, errlen)) == 1) {
                if (rec.type == HS_REC_DEV_END && !l.pending)
                        break;
                if ((n = load_one(&l, &rec)) < 0)
                        return n;
        }
        if (n < 0)
                return n;
        if (!l.have_dev) {
                snprintf(err, errlen, "state has no device record");
                return -EBADMSG;
        }
        if (l.pending) {
                snprintf(err, errlen, "state ends before the fd of its last %s",
                         l.pending == HS_REC_LOG_FD ? "dirty log" : "region");
                return -EBADMSG;
        }
        return 0;
}
