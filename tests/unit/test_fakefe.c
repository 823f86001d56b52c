/* SPDX-License-Identifier: MIT */
/*
 * Tests of the fake front-end library against itself: message framing and fd passing over a socketpair, guest RAM,
 * ring layout, frames, process helpers, and a full fe_setup() + echo against "mbe", a minimal vhost-user back-end
 * written here independently of the daemon (it loops tx ring 2i+1 to rx ring 2i, as vhostd --backend loopback).
 * mbe also keeps a dirty log (SET_LOG_BASE, LOG_ALL, VU_VRING_F_LOG), and can be told to forget parts of it, so
 * the log helpers (snapshots compared against the log) are tested both ways without the daemon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"

/* ------------------------------------------------------------------------------------------------------------ */
/* mbe: a minimal back-end running in a thread                                                                    */

#define MBE_VQS 8
#define MBE_LOG 512
#define MBE_QUEUES 4

struct mbe_region {
        uint64_t gpa, size, uva;
        uint8_t *map, *ptr;
        size_t maplen;
};

struct mbe_vq {
        unsigned num;
        uint64_t desc_uva, avail_uva, used_uva;
        uint32_t addr_flags; /* SET_VRING_ADDR flags */
        uint64_t log_gpa;    /* its log_guest_addr */
        uint16_t last_avail, used_idx;
        int kick, call, err;
        bool enabled;
};

struct mbe {
        int sock;
        pthread_t thread;
        bool thread_joined;
        uint64_t offer, poffer;
        uint64_t features, pfeatures;
        struct mbe_region regions[FE_MEM_MAX];
        unsigned nregions;
        struct mbe_vq vq[MBE_VQS];
        uint32_t log[MBE_LOG];
        uint32_t log_flags[MBE_LOG];
        unsigned nlog;
        unsigned mtu;
        uint8_t status;
        unsigned echoed, dropped, bad;
        uint8_t frame[70000];
        /* the dirty log */
        uint8_t *log_map, *log_bits;
        size_t log_maplen;
        uint64_t log_size, log_offset;
        unsigned log_bases, log_fds;
        unsigned log_skip; /* MBE_SKIP_*: what to forget to mark (a buggy back-end), read atomically */
};

#define MBE_SKIP_DATA 1u /* rx buffers */
#define MBE_SKIP_USED 2u /* used rings */

static bool mbe_logging(const struct mbe *m)
{
        return m->log_bits && (m->features & BIT_ULL(VHOST_F_LOG_ALL));
}

/* Marks [gpa, gpa + len) after writing it, one page at a time (nothing past the log). */
static void mbe_mark(struct mbe *m, uint64_t gpa, uint64_t len)
{
        for (uint64_t p = gpa / 4096; len && p <= (gpa + len - 1) / 4096 && p / 8 < m->log_size; p++)
                __atomic_fetch_or(&m->log_bits[p / 8], (uint8_t)(1u << (p % 8)), __ATOMIC_RELEASE);
}

static void mbe_mark_data(struct mbe *m, uint64_t gpa, uint64_t len)
{
        if (mbe_logging(m) && !(__atomic_load_n(&m->log_skip, __ATOMIC_RELAXED) & MBE_SKIP_DATA))
                mbe_mark(m, gpa, len);
}

/* [off, off + len) of the used ring of vq. */
static void mbe_mark_used(struct mbe *m, const struct mbe_vq *vq, uint64_t off, uint64_t len)
{
        if (mbe_logging(m) && (vq->addr_flags & (1u << VU_VRING_F_LOG)) &&
            !(__atomic_load_n(&m->log_skip, __ATOMIC_RELAXED) & MBE_SKIP_USED))
                mbe_mark(m, vq->log_gpa + off, len);
}

static void mbe_log_unmap(struct mbe *m)
{
        if (m->log_map)
                munmap(m->log_map, m->log_maplen);
        m->log_map = m->log_bits = NULL;
        m->log_size = 0;
}

static void *mbe_xlate(struct mbe *m, uint64_t addr, uint64_t len, bool uva)
{
        for (unsigned i = 0; i < m->nregions; i++) {
                struct mbe_region *r = &m->regions[i];
                uint64_t base = uva ? r->uva : r->gpa;

                if (addr >= base && addr - base < r->size && len <= r->size - (addr - base))
                        return r->ptr + (addr - base);
        }
        return NULL;
}

static void mbe_unmap(struct mbe_region *r)
{
        munmap(r->map, r->maplen);
        memset(r, 0, sizeof(*r));
}

static int mbe_map(struct mbe *m, const struct vu_mem_region *d, int fd)
{
        struct mbe_region *r = &m->regions[m->nregions];

        if (m->nregions >= FE_MEM_MAX)
                return -1;
        r->maplen = d->memory_size + d->mmap_offset;
        r->map = mmap(NULL, r->maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (r->map == MAP_FAILED)
                return -1;
        r->ptr = r->map + d->mmap_offset;
        r->gpa = d->guest_phys_addr;
        r->size = d->memory_size;
        r->uva = d->userspace_addr;
        m->nregions++;
        return 0;
}

static bool need_event(uint16_t ev, uint16_t new, uint16_t old)
{
        return (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
}

struct mbe_ring {
        struct vring_desc *desc;
        struct vring_avail *avail;
        struct vring_used *used;
};

static bool mbe_ring(struct mbe *m, struct mbe_vq *vq, struct mbe_ring *ret)
{
        unsigned n = vq->num;

        ret->desc = mbe_xlate(m, vq->desc_uva, 16ULL * n, true);
        ret->avail = mbe_xlate(m, vq->avail_uva, 6 + 2ULL * n, true);
        ret->used = mbe_xlate(m, vq->used_uva, 6 + 8ULL * n, true);
        return n && ret->desc && ret->avail && ret->used && vq->kick >= 0;
}

struct seg {
        uint8_t *p;
        uint32_t len;
        uint64_t gpa;
};

/* Walks one chain (following one level of indirection); returns segments or -1. */
static int mbe_chain(struct mbe *m, struct mbe_vq *vq, struct mbe_ring *ring, uint16_t head, bool write,
                     struct seg *segs, unsigned max)
{
        struct vring_desc *table = ring->desc;
        unsigned n = 0, limit = vq->num, i = head;

        if (head >= vq->num)
                return -1;
        if (table[head].flags & VRING_DESC_F_INDIRECT) {
                if (table[head].len % 16 || table[head].len == 0)
                        return -1;
                limit = table[head].len / 16;
                table = mbe_xlate(m, table[head].addr, table[head].len, false);
                if (!table)
                        return -1;
                i = 0;
        }
        for (;;) {
                struct vring_desc *d = &table[i];

                if (n >= max || i >= limit || (d->flags & VRING_DESC_F_INDIRECT) ||
                    !!(d->flags & VRING_DESC_F_WRITE) != write)
                        return -1;
                segs[n].p = mbe_xlate(m, d->addr, d->len, false);
                segs[n].len = d->len;
                segs[n].gpa = d->addr;
                if (!segs[n].p && d->len)
                        return -1;
                n++;
                if (!(d->flags & VRING_DESC_F_NEXT))
                        return (int)n;
                i = d->next;
        }
}

static void mbe_signal(struct mbe *m, struct mbe_vq *vq, struct mbe_ring *ring, uint16_t old)
{
        uint64_t one = 1;
        bool need;

        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (m->features & BIT_ULL(VIRTIO_RING_F_EVENT_IDX))
                need = need_event(__atomic_load_n(&ring->avail->ring[vq->num], __ATOMIC_ACQUIRE), vq->used_idx, old);
        else
                need = !(ring->avail->flags & VRING_AVAIL_F_NO_INTERRUPT);
        if (need && vq->call >= 0 && write(vq->call, &one, sizeof(one)) < 0)
                m->bad++;
}

static void mbe_used(struct mbe *m, struct mbe_vq *vq, struct mbe_ring *ring, uint32_t id, uint32_t len)
{
        unsigned slot = vq->used_idx % vq->num;

        ring->used->ring[slot] = (struct vring_used_elem){id, len};
        mbe_mark_used(m, vq, offsetof(struct vring_used, ring) + 8ULL * slot, 8);
        vq->used_idx++;
}

static void mbe_used_idx(struct mbe *m, struct mbe_vq *vq, struct mbe_ring *ring)
{
        __atomic_store_n(&ring->used->idx, vq->used_idx, __ATOMIC_RELEASE);
        mbe_mark_used(m, vq, offsetof(struct vring_used, idx), 2);
}

static void mbe_avail_event(struct mbe *m, struct mbe_vq *vq, struct mbe_ring *ring)
{
        __atomic_store_n((uint16_t *)&ring->used->ring[vq->num], vq->last_avail, __ATOMIC_RELEASE);
        mbe_mark_used(m, vq, offsetof(struct vring_used, ring) + 8ULL * vq->num, 2);
}

static size_t mbe_hlen(const struct mbe *m)
{
        return (m->features & (BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_NET_F_MRG_RXBUF))) ? 12 : 10;
}

/* Copies m->frame (@total bytes, header included) into rx buffers; false when there is no room (dropped). */
static bool mbe_deliver(struct mbe *m, struct mbe_vq *vq, struct mbe_ring *ring, size_t total)
{
        bool mrg = m->features & BIT_ULL(VIRTIO_NET_F_MRG_RXBUF);
        uint16_t save = vq->last_avail, nb = 0, old = vq->used_idx;
        uint32_t ids[256], lens[256];
        unsigned nsegs = 0, first_seg[257];
        struct seg segs[256];
        size_t cap = 0, done = 0;

        while (cap < total) {
                uint16_t avail_idx = __atomic_load_n(&ring->avail->idx, __ATOMIC_ACQUIRE);
                int n;

                if (vq->last_avail == avail_idx || nb == 256 || (!mrg && nb == 1)) {
                        vq->last_avail = save;
                        return false;
                }
                ids[nb] = ring->avail->ring[vq->last_avail++ % vq->num];
                n = mbe_chain(m, vq, ring, (uint16_t)ids[nb], true, segs + nsegs, 256 - nsegs);
                if (n < 0) {
                        m->bad++;
                        vq->last_avail = save;
                        return false;
                }
                first_seg[nb++] = nsegs;
                for (int s = 0; s < n; s++)
                        cap += segs[nsegs + s].len;
                nsegs += (unsigned)n;
        }
        first_seg[nb] = nsegs;
        if (mbe_hlen(m) == 12) {
                uint16_t v = mrg ? nb : 0;

                memcpy(m->frame + offsetof(struct virtio_net_hdr_mrg, num_buffers), &v, 2);
        }
        for (unsigned b = 0; b < nb; b++) {
                lens[b] = 0;
                for (unsigned s = first_seg[b]; s < first_seg[b + 1] && done < total; s++) {
                        size_t c = total - done < segs[s].len ? total - done : segs[s].len;

                        memcpy(segs[s].p, m->frame + done, c);
                        mbe_mark_data(m, segs[s].gpa, c);
                        done += c;
                        lens[b] += (uint32_t)c;
                }
        }
        for (unsigned i = 0; i < nb; i++)
                mbe_used(m, vq, ring, ids[i], lens[i]);
        mbe_used_idx(m, vq, ring);
        mbe_signal(m, vq, ring, old);
        return true;
}

static void mbe_process(struct mbe *m, unsigned pair)
{
        struct mbe_vq *tx = &m->vq[2 * pair + 1], *rx = &m->vq[2 * pair];
        bool event_idx = m->features & BIT_ULL(VIRTIO_RING_F_EVENT_IDX);
        struct mbe_ring tr, rr = {NULL, NULL, NULL};
        uint16_t old = tx->used_idx;
        bool have_rx;

        if (!tx->enabled || !mbe_ring(m, tx, &tr))
                return;
        have_rx = rx->enabled && mbe_ring(m, rx, &rr);
        for (;;) {
                while (tx->last_avail != __atomic_load_n(&tr.avail->idx, __ATOMIC_ACQUIRE)) {
                        uint16_t head = tr.avail->ring[tx->last_avail++ % tx->num];
                        struct seg segs[64];
                        size_t len = 0;
                        int n = mbe_chain(m, tx, &tr, head, false, segs, 64);

                        for (int s = 0; s < n; s++) {
                                if (len + segs[s].len > sizeof(m->frame)) {
                                        n = -1;
                                        break;
                                }
                                memcpy(m->frame + len, segs[s].p, segs[s].len);
                                len += segs[s].len;
                        }
                        mbe_used(m, tx, &tr, head, 0);
                        if (n < 0 || len < mbe_hlen(m)) {
                                m->bad++;
                                continue;
                        }
                        /* The tx header is replaced by a zero one on rx. */
                        memset(m->frame, 0, mbe_hlen(m));
                        if (have_rx && mbe_deliver(m, rx, &rr, len))
                                m->echoed++;
                        else
                                m->dropped++;
                }
                mbe_used_idx(m, tx, &tr);
                if (!event_idx)
                        break;
                mbe_avail_event(m, tx, &tr);
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                if (tx->last_avail == __atomic_load_n(&tr.avail->idx, __ATOMIC_ACQUIRE))
                        break;
        }
        if (have_rx && event_idx)
                mbe_avail_event(m, rx, &rr);
        mbe_signal(m, tx, &tr, old);
}

static void mbe_reply(struct mbe *m, const struct vu_msg *msg, const void *payload, uint32_t size)
{
        struct vu_hdr h = {.request = msg->hdr.request, .flags = VU_VERSION | VU_FLAG_REPLY, .size = size};

        if (fe_msg_send(m->sock, &h, payload, NULL, 0) < 0)
                m->bad++;
}

static void mbe_reply_u64(struct mbe *m, const struct vu_msg *msg, uint64_t v)
{
        mbe_reply(m, msg, &v, sizeof(v));
}

/* Handles one message; returns the REPLY_ACK value (0 ok), or -1 when the message has its own reply. */
static int mbe_handle(struct mbe *m, struct vu_msg *msg)
{
        union vu_payload *p = &msg->payload;
        unsigned idx = p->state.index;
        struct mbe_vq *vq = idx < MBE_VQS ? &m->vq[idx] : NULL;
        unsigned fdidx = (unsigned)(p->u64 & VU_VRING_IDX_MASK);
        int fd = msg->nfds ? msg->fds[0] : -1;

        switch (msg->hdr.request) {
        case VU_GET_FEATURES:
                mbe_reply_u64(m, msg, m->offer);
                return -1;
        case VU_SET_FEATURES:
                m->features = p->u64;
                if (!(m->features & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES)))
                        for (unsigned i = 0; i < MBE_VQS; i++)
                                m->vq[i].enabled = true;
                return 0;
        case VU_GET_PROTOCOL_FEATURES:
                mbe_reply_u64(m, msg, m->poffer);
                return -1;
        case VU_SET_PROTOCOL_FEATURES:
                m->pfeatures = p->u64;
                return 0;
        case VU_GET_QUEUE_NUM:
                mbe_reply_u64(m, msg, MBE_QUEUES);
                return -1;
        case VU_GET_MAX_MEM_SLOTS:
                mbe_reply_u64(m, msg, FE_MEM_MAX);
                return -1;
        case VU_SET_OWNER:
                return 0;
        case VU_SET_MEM_TABLE:
                while (m->nregions)
                        mbe_unmap(&m->regions[--m->nregions]);
                if (p->mem.nregions != msg->nfds)
                        return 1;
                for (unsigned i = 0; i < p->mem.nregions; i++)
                        if (mbe_map(m, &p->mem.regions[i], msg->fds[i]) < 0)
                                return 1;
                return 0;
        case VU_ADD_MEM_REG:
                return fd < 0 || mbe_map(m, &p->mem_reg.region, fd) < 0;
        case VU_REM_MEM_REG:
                for (unsigned i = 0; i < m->nregions; i++) {
                        struct mbe_region *r = &m->regions[i];

                        if (r->gpa == p->mem_reg.region.guest_phys_addr && r->uva == p->mem_reg.region.userspace_addr &&
                            r->size == p->mem_reg.region.memory_size) {
                                mbe_unmap(r);
                                m->regions[i] = m->regions[--m->nregions];
                                return 0;
                        }
                }
                return 1;
        case VU_SET_VRING_NUM:
                if (!vq || p->state.num == 0 || p->state.num > VIRTQ_MAX_SIZE || (p->state.num & (p->state.num - 1)))
                        return 1;
                vq->num = p->state.num;
                return 0;
        case VU_SET_VRING_BASE:
                if (!vq)
                        return 1;
                vq->last_avail = vq->used_idx = (uint16_t)p->state.num;
                return 0;
        case VU_SET_VRING_ADDR:
                if (!vq)
                        return 1;
                vq->desc_uva = p->addr.desc_user_addr;
                vq->avail_uva = p->addr.avail_user_addr;
                vq->used_uva = p->addr.used_user_addr;
                vq->addr_flags = p->addr.flags;
                vq->log_gpa = p->addr.log_guest_addr;
                return 0;
        case VU_SET_LOG_BASE: {
                uint64_t l[2];

                if (fd < 0 || msg->hdr.size != sizeof(l))
                        return 1;
                memcpy(l, &msg->payload, sizeof(l));
                mbe_log_unmap(m);
                m->log_maplen = l[0] + l[1];
                m->log_map = mmap(NULL, m->log_maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (m->log_map == MAP_FAILED) {
                        m->log_map = NULL;
                        return 1;
                }
                m->log_bits = m->log_map + l[1];
                m->log_size = l[0];
                m->log_offset = l[1];
                m->log_bases++;
                mbe_reply(m, msg, NULL, 0); /* an empty reply, as QEMU expects with LOG_SHMFD */
                return -1;
        }
        case VU_SET_LOG_FD:
                if (fd < 0)
                        return 1;
                m->log_fds++;
                return 0;
        case VU_GET_VRING_BASE: {
                struct vu_vring_state s = {.index = idx, .num = vq ? vq->last_avail : 0};

                if (vq && vq->kick >= 0) {
                        close(vq->kick);
                        vq->kick = -1;
                }
                mbe_reply(m, msg, &s, sizeof(s));
                return -1;
        }
        case VU_SET_VRING_KICK:
        case VU_SET_VRING_CALL:
        case VU_SET_VRING_ERR: {
                int *slot;

                if (fdidx >= MBE_VQS || (fd < 0) != !!(p->u64 & VU_VRING_NOFD_MASK))
                        return 1;
                vq = &m->vq[fdidx];
                slot = msg->hdr.request == VU_SET_VRING_KICK   ? &vq->kick
                       : msg->hdr.request == VU_SET_VRING_CALL ? &vq->call
                                                               : &vq->err;
                if (*slot >= 0)
                        close(*slot);
                *slot = fd;
                msg->nfds = 0; /* consumed */
                return 0;
        }
        case VU_SET_VRING_ENABLE:
                if (!vq)
                        return 1;
                vq->enabled = p->state.num;
                return 0;
        case VU_NET_SET_MTU:
                m->mtu = (unsigned)p->u64;
                return 0;
        case VU_GET_CONFIG: {
                struct virtio_net_config c = {
                        .mac = {0x52, 0x54, 0, 0x12, 0x34, 0x56},
                        .status = VIRTIO_NET_S_LINK_UP,
                        .max_virtqueue_pairs = MBE_QUEUES,
                        .mtu = (uint16_t)(m->mtu ? m->mtu : 1500),
                };
                struct vu_config r = p->config;

                if (r.offset + r.size <= sizeof(c))
                        memcpy(r.payload, (uint8_t *)&c + r.offset, r.size);
                mbe_reply(m, msg, &r, VU_CONFIG_HDR_SIZE + r.size);
                return -1;
        }
        case VU_SET_STATUS:
                m->status = (uint8_t)p->u64;
                return 0;
        case VU_GET_STATUS:
                mbe_reply_u64(m, msg, m->status);
                return -1;
        default:
                return 1;
        }
}

static void *mbe_main(void *arg)
{
        struct mbe *m = arg;

        for (;;) {
                struct pollfd pfd[1 + MBE_VQS / 2];
                unsigned n = 0;

                pfd[n++] = (struct pollfd){.fd = m->sock, .events = POLLIN};
                for (unsigned q = 0; q < MBE_VQS / 2; q++)
                        pfd[n++] = (struct pollfd){.fd = m->vq[2 * q + 1].kick, .events = POLLIN};
                if (poll(pfd, n, 1000) < 0)
                        continue;
                for (unsigned q = 0; q < MBE_VQS / 2; q++) {
                        uint64_t v;

                        if (pfd[1 + q].revents & POLLIN) {
                                if (read(m->vq[2 * q + 1].kick, &v, sizeof(v)) < 0)
                                        m->bad++;
                                mbe_process(m, q);
                        }
                }
                if (pfd[0].revents) {
                        struct vu_msg msg;
                        int ack;

                        if (fe_msg_recv(m->sock, &msg, 1000) < 0)
                                break;
                        if (m->nlog < MBE_LOG) {
                                m->log_flags[m->nlog] = msg.hdr.flags;
                                m->log[m->nlog++] = msg.hdr.request;
                        }
                        ack = mbe_handle(m, &msg);
                        fe_msg_close_fds(&msg);
                        if (ack >= 0 && (msg.hdr.flags & VU_FLAG_NEED_REPLY) &&
                            (m->pfeatures & BIT_ULL(VU_PROTOCOL_F_REPLY_ACK)))
                                mbe_reply_u64(m, &msg, (uint64_t)ack);
                }
        }
        return NULL;
}

#define MBE_OFFER                                                                                                      \
        (BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_NET_F_MRG_RXBUF) | BIT_ULL(VIRTIO_NET_F_MQ) |                    \
         BIT_ULL(VIRTIO_RING_F_EVENT_IDX) | BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | BIT_ULL(VIRTIO_NET_F_MTU) |         \
         BIT_ULL(VIRTIO_NET_F_MAC) | BIT_ULL(VIRTIO_NET_F_STATUS) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES))

/* Starts mbe offering these features on one end of a socketpair and wraps the other in a struct fe. */
static struct mbe *mbe_start_offer(struct fe **ret_fe, uint64_t poffer, uint64_t offer)
{
        struct mbe *m = calloc(1, sizeof(*m));
        int sv[2];

        assert_non_null(m);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        m->sock = sv[1];
        m->offer = offer;
        m->poffer = poffer;
        for (unsigned i = 0; i < MBE_VQS; i++)
                m->vq[i].kick = m->vq[i].call = m->vq[i].err = -1;
        assert_int_equal(fe_new(sv[0], ret_fe), 0);
        assert_int_equal(pthread_create(&m->thread, NULL, mbe_main, m), 0);
        return m;
}

static struct mbe *mbe_start(struct fe **ret_fe, uint64_t poffer)
{
        return mbe_start_offer(ret_fe, poffer, MBE_OFFER);
}

/* Disconnects the front-end (mbe sees EOF), joins and frees mbe. */
static void mbe_stop(struct mbe *m, struct fe *fe)
{
        fe_disconnect(fe);
        if (!m->thread_joined)
                assert_int_equal(pthread_join(m->thread, NULL), 0);
        for (unsigned i = 0; i < MBE_VQS; i++) {
                if (m->vq[i].kick >= 0)
                        close(m->vq[i].kick);
                if (m->vq[i].call >= 0)
                        close(m->vq[i].call);
                if (m->vq[i].err >= 0)
                        close(m->vq[i].err);
        }
        while (m->nregions)
                mbe_unmap(&m->regions[--m->nregions]);
        mbe_log_unmap(m);
        close(m->sock);
        free(m);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Tests                                                                                                          */

static void test_frame(void **state)
{
        static uint8_t buf[FE_FRAME_MAX];
        static const size_t sizes[] = {FE_FRAME_MIN, 60, 61, 1514, 9000, FE_FRAME_MAX};
        uint32_t seq;

        (void)state;
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                assert_int_equal(fe_frame_build(buf, sizes[i], (uint32_t)i + 7, NULL, NULL), 0);
                assert_int_equal(fe_frame_verify(buf, sizes[i], &seq), 0);
                assert_int_equal(seq, i + 7);
                assert_int_equal(fe_frame_verify(buf, sizes[i] - 1, NULL), -EBADMSG);
                buf[sizes[i] - 1] ^= 0x40;
                assert_int_equal(fe_frame_verify(buf, sizes[i], NULL), -EBADMSG);
        }
        assert_int_equal(fe_frame_build(buf, FE_FRAME_MIN - 1, 0, NULL, NULL), -EINVAL);
        assert_int_equal(fe_frame_build(buf, FE_FRAME_MAX + 1, 0, NULL, NULL), -EINVAL);
        /* Different frames differ in their filler. */
        assert_int_equal(fe_frame_build(buf, 100, 1, NULL, NULL), 0);
        {
                uint8_t other[100];

                assert_int_equal(fe_frame_build(other, 100, 2, NULL, NULL), 0);
                assert_memory_not_equal(buf + FE_FRAME_MIN, other + FE_FRAME_MIN, 100 - FE_FRAME_MIN);
        }
        assert_int_equal(fe_fnv1a("", 0), 2166136261u);
        assert_int_equal(fe_fnv1a("a", 1), 0xe40c292cu);
}

static bool under_valgrind(void)
{
        const char *p = getenv("LD_PRELOAD");

        return p && strstr(p, "vgpreload");
}

static void test_mem(void **state)
{
        struct fe_mem mem;
        uint64_t gpa, page = (uint64_t)sysconf(_SC_PAGESIZE);
        struct vu_mem_region d;
        struct stat a, b;
        uint8_t *p;

        (void)state;
        fe_mem_init(&mem);
        assert_int_equal(fe_mem_add_region(&mem, 0, 1 << 20, 0), 0);
        assert_int_equal(fe_mem_add_region(&mem, 1ULL << 32, 2 << 20, FE_MEM_SHARE_FD), 1);
        assert_int_equal(fe_mem_add_region(&mem, 1 << 19, 1 << 20, 0), -EINVAL); /* overlap */
        assert_int_equal(fe_mem_add_region(&mem, 8ULL << 32, 100, 0), -EINVAL);  /* not page sized */
        assert_int_equal(fe_mem_add_region(&mem, 16ULL << 32, page, 0), 2);

        /* Shared fd: region 1 sits after region 0 in the same memfd. */
        assert_int_equal(mem.regions[1].fd, mem.regions[0].fd);
        assert_int_equal(mem.regions[1].mmap_offset, 1 << 20);
        assert_false(mem.regions[1].owns_fd);
        assert_int_equal(fstat(mem.regions[0].fd, &a), 0);
        assert_int_equal(a.st_size, 3 << 20);
        assert_int_equal(fstat(mem.regions[2].fd, &b), 0);
        assert_int_not_equal(a.st_ino, b.st_ino);
        assert_true(fcntl(mem.regions[0].fd, F_GETFD) & FD_CLOEXEC);

        /* Addresses: uva is neither the gpa nor our pointer, and differs per region. */
        for (unsigned i = 0; i < mem.nregions; i++) {
                assert_int_not_equal(mem.regions[i].uva, mem.regions[i].gpa);
                assert_int_not_equal(mem.regions[i].uva, (uintptr_t)mem.regions[i].ptr);
                if (i > 0)
                        assert_int_not_equal(mem.regions[i].uva - mem.regions[i].gpa,
                                             mem.regions[0].uva - mem.regions[0].gpa);
        }
        assert_ptr_equal(fe_mem_ptr(&mem, (1ULL << 32) + 5, 10), mem.regions[1].ptr + 5);
        assert_null(fe_mem_ptr(&mem, (1 << 20) - 4, 8)); /* crosses the end */
        assert_null(fe_mem_ptr(&mem, 3ULL << 32, 1));
        assert_int_equal(fe_mem_uva(&mem, 4096), mem.regions[0].uva + 4096);
        assert_int_equal(fe_mem_uva(&mem, 3ULL << 32), 0);

        /* The memfd really is shared: write through region 1, read at its offset in region 0's fd. */
        p = fe_mem_ptr(&mem, (1ULL << 32) + 100, 4);
        memcpy(p, "abcd", 4);
        {
                char got[4];

                assert_int_equal(pread(mem.regions[0].fd, got, 4, (1 << 20) + 100), 4);
                assert_memory_equal(got, "abcd", 4);
        }

        /* Bump allocator. */
        assert_int_equal(fe_mem_alloc(&mem, 0, 10, 1, &gpa), 0);
        assert_int_equal(gpa, 0);
        assert_int_equal(fe_mem_alloc(&mem, 0, 10, 64, &gpa), 0);
        assert_int_equal(gpa, 64);
        assert_int_equal(fe_mem_alloc(&mem, 0, 1 << 20, 64, &gpa), -ENOMEM);
        assert_int_equal(fe_mem_alloc(&mem, -1, 1 << 20, 64, &gpa), 0);
        assert_int_equal(gpa, 1ULL << 32); /* region 0 full: next one */
        assert_int_equal(fe_mem_alloc(&mem, 2, page + 1, 1, &gpa), -ENOMEM);
        assert_int_equal(fe_mem_alloc(&mem, 0, 8, 3, &gpa), -EINVAL);

        fe_mem_region_msg(&mem, 1, &d);
        assert_int_equal(d.guest_phys_addr, 1ULL << 32);
        assert_int_equal(d.memory_size, 2 << 20);
        assert_int_equal(d.userspace_addr, mem.regions[1].uva);
        assert_int_equal(d.mmap_offset, 1 << 20);

        /* Valgrind shows its own view of our maps, without memfd names. */
        if (!under_valgrind())
                assert_true(fe_count_maps(getpid(), FE_MEM_NAME) >= 3);
        fe_mem_done(&mem);
        assert_int_equal(mem.nregions, 0);
        assert_int_equal(fe_count_maps(getpid(), FE_MEM_NAME), 0);
        assert_int_equal(fe_wait_maps(getpid(), FE_MEM_NAME, 0, 100), 0);
        assert_int_equal(fe_wait_maps(getpid(), FE_MEM_NAME, 1, 20), -ETIMEDOUT);
        fe_mem_done(NULL);
}

static void test_ring_post(void **state)
{
        static const uint8_t frame[100] = {1, 2, 3};
        struct fe_post split = {.nseg = 3}, ind = {.nseg = 4, .indirect = true};
        uint32_t segs[] = {5, 7, 100};
        struct fe_post custom = {.seg = segs, .nseg = 3};
        struct virtio_net_hdr hdr = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 6};
        struct vring_used_elem e;
        struct fe_mem mem;
        struct fe_ring r;
        struct vring_desc *t;
        uint64_t area;
        uint8_t *p;
        int h0, h1, h2, h3;

        (void)state;
        fe_mem_init(&mem);
        assert_int_equal(fe_mem_add_region(&mem, 0x10000, 1 << 20, 0), 0);
        assert_int_equal(fe_ring_init(&r, &mem, 1, 8, 256, -1, -1), 0);
        assert_int_equal(fe_ring_init(&(struct fe_ring){0}, &mem, 1, 6, 256, -1, -1), -EINVAL);
        assert_int_equal(r.desc_gpa % 16, 0);
        assert_int_equal(r.num_free, 8);
        assert_true(r.kick_fd >= 0 && r.call_fd >= 0 && r.err_fd >= 0);
        assert_true(fcntl(r.kick_fd, F_GETFL) & O_NONBLOCK);
        assert_true(fcntl(r.kick_fd, F_GETFD) & FD_CLOEXEC);

        /* One descriptor: header + frame. */
        h0 = fe_ring_post_tx(&r, frame, sizeof(frame), &hdr, NULL);
        assert_int_equal(h0, 0);
        fe_ring_area(&r, 0, &area);
        assert_int_equal(r.desc[0].addr, area);
        assert_int_equal(r.desc[0].len, 12 + 100);
        assert_int_equal(r.desc[0].flags, 0);
        p = fe_ring_area(&r, 0, NULL);
        assert_int_equal(p[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_int_equal(p[6] | p[7] << 8, 34);
        assert_int_equal(p[10] | p[11] << 8, 0); /* num_buffers */
        assert_memory_equal(p + 12, frame, sizeof(frame));
        assert_int_equal(r.avail->idx, 1);
        assert_int_equal(r.avail->ring[0], 0);

        /* Three descriptors: header alone, frame split evenly, contiguous in head 1's area. */
        h1 = fe_ring_post_tx(&r, frame, sizeof(frame), NULL, &split);
        assert_int_equal(h1, 1);
        fe_ring_area(&r, 1, &area);
        assert_int_equal(r.desc[1].addr, area);
        assert_int_equal(r.desc[1].len, 12);
        assert_int_equal(r.desc[1].flags, VRING_DESC_F_NEXT);
        assert_int_equal(r.desc[1].next, 2);
        assert_int_equal(r.desc[2].addr, area + 12);
        assert_int_equal(r.desc[2].len, 50);
        assert_int_equal(r.desc[2].next, 3);
        assert_int_equal(r.desc[3].addr, area + 62);
        assert_int_equal(r.desc[3].len, 50);
        assert_int_equal(r.desc[3].flags, 0);
        assert_int_equal(r.num_free, 4);
        assert_int_equal(r.avail->idx, 2);
        assert_int_equal(r.avail->ring[1], 1);

        /* Indirect: one ring descriptor pointing at 4 table entries. */
        h2 = fe_ring_post_tx(&r, frame, sizeof(frame), NULL, &ind);
        assert_int_equal(h2, 4);
        assert_int_equal(r.desc[4].flags, VRING_DESC_F_INDIRECT);
        assert_int_equal(r.desc[4].len, 4 * 16);
        t = fe_mem_ptr(&mem, r.desc[4].addr, 64);
        assert_non_null(t);
        fe_ring_area(&r, 4, &area);
        assert_int_equal(t[0].addr, area);
        assert_int_equal(t[0].len, 12);
        assert_int_equal(t[0].flags, VRING_DESC_F_NEXT);
        assert_int_equal(t[0].next, 1);
        assert_int_equal(t[1].len + t[2].len + t[3].len, 100);
        assert_int_equal(t[3].flags, 0);
        assert_int_equal(t[3].addr, area + 12 + t[1].len + t[2].len);

        /* Custom split (the header spans two descriptors): rx this time. */
        assert_int_equal(fe_ring_post_rx(&r, 111, &custom), -EINVAL); /* 5 + 7 + 100 != 111 */
        h3 = fe_ring_post_rx(&r, 112, &custom);
        assert_int_equal(h3, 5);
        assert_int_equal(r.desc[5].len, 5);
        assert_int_equal(r.desc[5].flags, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT);
        assert_int_equal(r.desc[r.desc[5].next].len, 7);
        assert_int_equal(r.num_free, 0);
        assert_int_equal(fe_ring_post_rx(&r, 100, NULL), -ENOSPC);
        assert_int_equal(fe_ring_post_tx(&r, frame, 300, NULL, NULL), -EMSGSIZE);

        /* Kicks. */
        assert_int_equal(fe_ring_notify(&r), 1);
        assert_int_equal(fe_ring_notify(&r), 0); /* nothing new */
        {
                uint64_t v;

                assert_int_equal(read(r.kick_fd, &v, 8), 8);
                assert_int_equal(v, 1);
        }

        /* Completions, as a device would write them. */
        assert_int_equal(fe_ring_used_pending(&r), 0);
        assert_int_equal(fe_ring_wait(&r, 1, 20), -ETIMEDOUT);
        r.used->ring[0] = (struct vring_used_elem){.id = 1, .len = 0};
        r.used->ring[1] = (struct vring_used_elem){.id = 0, .len = 0};
        r.used->ring[2] = (struct vring_used_elem){.id = 7, .len = 0}; /* not in flight */
        r.used->idx = 3;
        assert_int_equal(fe_ring_wait(&r, 2, 0), 3);
        assert_int_equal(fe_ring_reap(&r), -EPROTO);
        assert_int_equal(r.num_free, 4);
        assert_int_equal(fe_ring_used_raw(&r, &e), 0);

        /* Reused descriptors come off the free list. */
        assert_int_equal(fe_ring_desc_get(&r), 0);
        fe_ring_desc_put(&r, 0);
        assert_int_equal(fe_ring_post_tx(&r, frame, 10, NULL, &split), 0);
        assert_int_equal(r.num_free, 1);

        fe_ring_done(&r);
        fe_ring_done(&r);
        fe_mem_done(&mem);
}

static void test_ring_event_idx(void **state)
{
        static const uint8_t frame[60];
        struct fe_mem mem;
        struct fe_ring r;
        uint64_t v;

        (void)state;
        fe_mem_init(&mem);
        assert_int_equal(fe_mem_add_region(&mem, 0, 1 << 20, 0), 0);
        assert_int_equal(fe_ring_init(&r, &mem, 1, 16, 128, -1, -1), 0);
        r.event_idx = true;

        /* avail_event 0: the device wants a kick when entry 0 is published. */
        assert_true(fe_ring_post_tx(&r, frame, sizeof(frame), NULL, NULL) >= 0);
        assert_int_equal(fe_ring_notify(&r), 1);
        /* Still 0: entries 1 and 2 need no kick. */
        assert_true(fe_ring_post_tx(&r, frame, sizeof(frame), NULL, NULL) >= 0);
        assert_true(fe_ring_post_tx(&r, frame, sizeof(frame), NULL, NULL) >= 0);
        assert_int_equal(fe_ring_notify(&r), 0);
        /* The device caught up to 3 and asks for the next one. */
        *fe_ring_avail_event(&r) = 3;
        assert_true(fe_ring_post_tx(&r, frame, sizeof(frame), NULL, NULL) >= 0);
        assert_int_equal(fe_ring_notify(&r), 1);
        assert_int_equal(read(r.kick_fd, &v, 8), 8);
        assert_int_equal(v, 2);

        /* Waiting asks for an interrupt at the right entry. */
        r.last_used = 0;
        assert_int_equal(fe_ring_wait(&r, 3, 0), -ETIMEDOUT);
        assert_int_equal(*fe_ring_used_event(&r), 2);

        /* Without EVENT_IDX, NO_NOTIFY suppresses kicks. */
        r.event_idx = false;
        r.used->flags = VRING_USED_F_NO_NOTIFY;
        assert_true(fe_ring_post_tx(&r, frame, sizeof(frame), NULL, NULL) >= 0);
        assert_int_equal(fe_ring_notify(&r), 0);
        fe_ring_done(&r);
        fe_mem_done(&mem);
}

static void test_ring_recv_crafted(void **state)
{
        struct fe_mem mem;
        struct fe_ring r;
        struct fe_rx_info info;
        uint8_t out[512];
        int heads[3];

        (void)state;
        fe_mem_init(&mem);
        assert_int_equal(fe_mem_add_region(&mem, 0, 1 << 20, 0), 0);
        assert_int_equal(fe_ring_init(&r, &mem, 0, 4, 128, -1, -1), 0);
        r.mrg_rxbuf = true;
        r.rx_buf_size = 0; /* no recycling: check the free list */
        for (int i = 0; i < 3; i++)
                heads[i] = fe_ring_post_rx(&r, 100, NULL);

        /* A 200-byte frame over 3 buffers, written as a device would. */
        for (int i = 0; i < 3; i++) {
                uint8_t *p = fe_ring_area(&r, (uint16_t)heads[i], NULL);

                memset(p, 'a' + i, 100);
                r.used->ring[i] = (struct vring_used_elem){.id = (uint32_t)heads[i], .len = i < 2 ? 100 : 12};
        }
        {
                struct virtio_net_hdr_mrg h = {.num_buffers = 3};

                memcpy(fe_ring_area(&r, (uint16_t)heads[0], NULL), &h, 12);
        }
        r.used->idx = 2; /* only two published yet */
        assert_int_equal(fe_ring_recv(&r, out, sizeof(out), &info), 0);
        r.used->idx = 3;
        assert_int_equal(fe_ring_recv(&r, out, sizeof(out), &info), 1);
        assert_int_equal(info.len, 88 + 100 + 12);
        assert_int_equal(info.nbufs, 3);
        assert_int_equal(info.hdr.num_buffers, 3);
        assert_int_equal(out[0], 'a');
        assert_int_equal(out[87], 'a');
        assert_int_equal(out[88], 'b');
        assert_int_equal(out[188], 'c');
        assert_int_equal(r.num_free, 4);

        /* Used len larger than the buffer: -EPROTO, the entry is consumed. */
        heads[0] = fe_ring_post_rx(&r, 100, NULL);
        memset(fe_ring_area(&r, (uint16_t)heads[0], NULL), 0, 12);
        ((struct virtio_net_hdr_mrg *)fe_ring_area(&r, (uint16_t)heads[0], NULL))->num_buffers = 1;
        r.used->ring[3] = (struct vring_used_elem){.id = (uint32_t)heads[0], .len = 101};
        r.used->idx = 4;
        assert_int_equal(fe_ring_recv(&r, out, sizeof(out), NULL), -EPROTO);
        assert_int_equal(fe_ring_used_pending(&r), 0);
        assert_int_equal(r.num_free, 4);
        fe_ring_done(&r);
        fe_mem_done(&mem);
}

static void test_msg_framing(void **state)
{
        struct fe *fe;
        struct vu_msg msg;
        struct vu_vring_state s = {.index = 3, .num = 256};
        struct stat a, b;
        int sv[2], fds[2];
        struct fe_mem mem;
        int before = fe_count_fds(getpid());

        (void)state;
        fe_mem_init(&mem);
        assert_int_equal(fe_mem_add_region(&mem, 0, 1 << 16, 0), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(fe_new(sv[0], &fe), 0);

        /* Header, payload, two fds. */
        fds[0] = mem.regions[0].fd;
        fds[1] = STDIN_FILENO;
        assert_int_equal(fe_send(fe, VU_SET_VRING_NUM, VU_VERSION | VU_FLAG_NEED_REPLY, &s, sizeof(s), fds, 2), 0);
        assert_int_equal(fe_msg_recv(sv[1], &msg, 1000), 0);
        assert_int_equal(msg.hdr.request, VU_SET_VRING_NUM);
        assert_int_equal(msg.hdr.flags, VU_VERSION | VU_FLAG_NEED_REPLY);
        assert_int_equal(msg.hdr.size, 8);
        assert_int_equal(msg.payload.state.index, 3);
        assert_int_equal(msg.payload.state.num, 256);
        assert_int_equal(msg.nfds, 2);
        assert_int_equal(fstat(msg.fds[0], &a), 0);
        assert_int_equal(fstat(mem.regions[0].fd, &b), 0);
        assert_int_equal(a.st_ino, b.st_ino);
        assert_int_not_equal(msg.fds[0], mem.regions[0].fd);
        assert_true(fcntl(msg.fds[0], F_GETFD) & FD_CLOEXEC);
        fe_msg_close_fds(&msg);

        /* Raw bytes in pieces: a header split in two writes, then the payload. */
        {
                struct vu_hdr h = {.request = VU_SET_FEATURES, .flags = VU_VERSION, .size = 8};
                uint64_t f = 0x1234;

                assert_int_equal(fe_send_raw(fe, &h, 5, NULL, 0), 0);
                assert_int_equal(fe_send_raw(fe, (uint8_t *)&h + 5, 7, NULL, 0), 0);
                assert_int_equal(fe_send_raw(fe, &f, 8, NULL, 0), 0);
                assert_int_equal(fe_msg_recv(sv[1], &msg, 1000), 0);
                assert_int_equal(msg.payload.u64, 0x1234);
                assert_int_equal(msg.nfds, 0);
        }

        /* Too many fds for a vhost-user message: received, closed, -EPROTO. */
        {
                int many[VU_MAX_FDS + 2];

                for (unsigned i = 0; i < VU_MAX_FDS + 2; i++)
                        many[i] = STDIN_FILENO;
                assert_int_equal(fe_send(fe, VU_SET_OWNER, VU_VERSION, NULL, 0, many, VU_MAX_FDS + 2), 0);
                assert_int_equal(fe_msg_recv(sv[1], &msg, 1000), -EPROTO);
                assert_int_equal(msg.nfds, 0);
        }

        /* A lying size. */
        {
                struct vu_hdr h = {.request = VU_SET_FEATURES, .flags = VU_VERSION, .size = 100000};

                assert_int_equal(fe_send_raw(fe, &h, sizeof(h), NULL, 0), 0);
                assert_int_equal(fe_msg_recv(sv[1], &msg, 1000), -EMSGSIZE);
                assert_int_equal(msg.hdr.size, 100000);
        }

        /* Timeout, then end of file. */
        assert_int_equal(fe_recv_reply(fe, &msg, 20), -ETIMEDOUT);
        close(sv[1]);
        assert_int_equal(fe_recv_reply(fe, &msg, 1000), -ECONNRESET);
        assert_int_equal(fe_send(fe, VU_SET_OWNER, VU_VERSION, NULL, 0, NULL, 0), -EPIPE);

        /* A request whose reply never comes. */
        fe->timeout_ms = 20;
        fe_free(fe);
        fe_mem_done(&mem);
        assert_int_equal(fe_count_fds(getpid()), before);
}

static void test_request_checks(void **state)
{
        struct fe *fe;
        struct vu_msg msg;
        uint64_t v;
        int sv[2];

        (void)state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(fe_new(sv[0], &fe), 0);
        fe->timeout_ms = 1000;

        /* A reply to another request is -EPROTO. */
        {
                struct vu_hdr h = {.request = VU_GET_QUEUE_NUM, .flags = VU_VERSION | VU_FLAG_REPLY, .size = 8};
                uint64_t one = 1;

                assert_int_equal(fe_msg_send(sv[1], &h, &one, NULL, 0), 0);
                assert_int_equal(fe_get_features(fe, &v), -EPROTO);
                assert_int_equal(fe_msg_recv(sv[1], &msg, 1000), 0);
                assert_int_equal(msg.hdr.request, VU_GET_FEATURES);
        }
        /* Missing REPLY flag. */
        {
                struct vu_hdr h = {.request = VU_GET_FEATURES, .flags = VU_VERSION, .size = 8};
                uint64_t one = 1;

                assert_int_equal(fe_msg_send(sv[1], &h, &one, NULL, 0), 0);
                assert_int_equal(fe_get_features(fe, &v), -EPROTO);
                assert_int_equal(fe_msg_recv(sv[1], &msg, 1000), 0);
        }
        /* Without REPLY_ACK nothing is awaited and NEED_REPLY is not set. */
        assert_int_equal(fe_set_owner(fe), 0);
        assert_int_equal(fe_msg_recv(sv[1], &msg, 1000), 0);
        assert_int_equal(msg.hdr.flags, VU_VERSION);
        /* With it, the ack is awaited. */
        fe->acked_protocol_features = BIT_ULL(VU_PROTOCOL_F_REPLY_ACK);
        fe->timeout_ms = 20;
        assert_int_equal(fe_set_owner(fe), -ETIMEDOUT);
        assert_int_equal(fe_msg_recv(sv[1], &msg, 1000), 0);
        assert_int_equal(msg.hdr.flags, VU_VERSION | VU_FLAG_NEED_REPLY);
        fe->no_need_reply = true;
        assert_int_equal(fe_set_owner(fe), 0);
        fe_free(fe);
        close(sv[1]);
}

static const uint32_t expected_setup[] = {
        VU_GET_FEATURES,     VU_GET_PROTOCOL_FEATURES, VU_SET_PROTOCOL_FEATURES, VU_GET_QUEUE_NUM,  VU_SET_OWNER,
        VU_SET_VRING_ERR,    VU_SET_VRING_ERR,         VU_SET_FEATURES,          VU_SET_MEM_TABLE,  VU_SET_VRING_NUM,
        VU_SET_VRING_BASE,   VU_SET_VRING_ADDR,        VU_SET_VRING_KICK,        VU_SET_VRING_CALL, VU_SET_VRING_NUM,
        VU_SET_VRING_BASE,   VU_SET_VRING_ADDR,        VU_SET_VRING_KICK,        VU_SET_VRING_CALL, VU_SET_VRING_ENABLE,
        VU_SET_VRING_ENABLE,
};

#define POFFER_BASIC (BIT_ULL(VU_PROTOCOL_F_MQ) | BIT_ULL(VU_PROTOCOL_F_REPLY_ACK) | BIT_ULL(VU_PROTOCOL_F_CONFIG))

static void test_setup_sequence(void **state)
{
        struct fe *fe;
        struct mbe *m = mbe_start(&fe, POFFER_BASIC);
        struct virtio_net_config cfg;
        unsigned base;

        (void)state;
        assert_int_equal(fe_setup(fe, 1, 64, FE_FEATURES_DEFAULT), 0);
        assert_int_equal(fe_sync(fe), 0);
        assert_int_equal(fe->acked_features, MBE_OFFER);
        assert_int_equal(fe->acked_protocol_features, POFFER_BASIC);
        assert_int_equal(fe->queue_num, MBE_QUEUES);
        assert_int_equal(fe->nrings, 2);
        assert_true(m->nlog >= sizeof(expected_setup) / sizeof(expected_setup[0]));
        for (unsigned i = 0; i < sizeof(expected_setup) / sizeof(expected_setup[0]); i++) {
                assert_int_equal(m->log[i], expected_setup[i]);
                /* NEED_REPLY on every request without a reply, once REPLY_ACK is acked. */
                if (i > 2 && m->log[i] != VU_GET_QUEUE_NUM)
                        assert_int_equal(m->log_flags[i], VU_VERSION | VU_FLAG_NEED_REPLY);
        }
        assert_int_equal(m->log_flags[2], VU_VERSION);
        assert_int_equal(m->log[sizeof(expected_setup) / sizeof(expected_setup[0])], VU_GET_FEATURES); /* barrier */

        /* Rings: the back-end was given uvas; they translate back to the same memory. */
        for (unsigned i = 0; i < 2; i++) {
                struct fe_ring *r = &fe->rings[i];

                assert_int_equal(m->vq[i].num, 64);
                assert_ptr_not_equal(mbe_xlate(m, m->vq[i].desc_uva, 16, true), NULL);
                assert_int_equal(m->vq[i].desc_uva, fe_mem_uva(fe->mem, r->desc_gpa));
                assert_true(m->vq[i].enabled);
        }
        assert_int_equal(fe_rx(fe, 0)->num_free, 0); /* rx ring filled */
        assert_int_equal(fe_rx(fe, 0)->avail->idx, 64);
        assert_true(fe_tx(fe, 0)->event_idx && fe_tx(fe, 0)->mrg_rxbuf);

        /* Default RAM: two regions of one memfd. */
        assert_int_equal(fe->mem->nregions, 2);
        assert_int_equal(m->nregions, 2);
        assert_int_equal(fe->mem->regions[1].mmap_offset, fe->mem->regions[0].size);

        /* NACK on an invalid ring size. */
        assert_int_equal(fe_set_vring_num(fe, 0, 3), -EREMOTEIO);
        assert_int_equal(fe->last_ack, 1);
        assert_int_equal(fe_set_vring_num(fe, 0, 64), 0);

        /* Replies with payloads. */
        assert_int_equal(fe_get_config(fe, 0, sizeof(cfg), &cfg), 0);
        assert_int_equal(cfg.mac[0], 0x52);
        assert_int_equal(cfg.max_virtqueue_pairs, MBE_QUEUES);
        assert_int_equal(fe_get_vring_base(fe, 1, &base), 0);
        assert_int_equal(base, 0);

        mbe_stop(m, fe);
        fe_free(fe);
}

static void test_setup_mem_slots(void **state)
{
        struct fe *fe;
        struct mbe *m = mbe_start(&fe, POFFER_BASIC | BIT_ULL(VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
                                               BIT_ULL(VU_PROTOCOL_F_STATUS) | BIT_ULL(VU_PROTOCOL_F_MTU));
        struct fe_setup_opts o = {.queue_pairs = 2, .ring_size = 32, .mtu = 9000};
        unsigned adds = 0;

        (void)state;
        assert_int_equal(fe_setup_ex(fe, &o), 0);
        assert_int_equal(fe_sync(fe), 0);
        for (unsigned i = 0; i < m->nlog; i++) {
                assert_int_not_equal(m->log[i], VU_SET_MEM_TABLE);
                adds += m->log[i] == VU_ADD_MEM_REG;
        }
        assert_int_equal(adds, 2);
        assert_int_equal(m->nregions, 2);
        assert_int_equal(m->mtu, 9000);
        assert_int_equal(m->status, 1 | 2 | 4 | 8);
        assert_int_equal(fe->nrings, 4);

        assert_int_equal(fe_rem_mem_reg(fe, fe->mem, 1), 0);
        assert_int_equal(m->nregions, 1);
        assert_int_equal(fe_rem_mem_reg(fe, fe->mem, 1), -EREMOTEIO);
        assert_int_equal(fe_add_mem_reg(fe, fe->mem, 1), 0);
        assert_int_equal(m->nregions, 2);

        /* Too many queue pairs for the back-end. */
        {
                struct fe *fe2;
                struct mbe *m2 = mbe_start(&fe2, POFFER_BASIC);

                assert_int_equal(fe_setup(fe2, MBE_QUEUES + 1, 32, 0), -ERANGE);
                mbe_stop(m2, fe2);
                fe_free(fe2);
        }
        mbe_stop(m, fe);
        fe_free(fe);
}

struct echo_case {
        const char *name;
        uint64_t features; /* 0: default */
        unsigned queue_pairs;
        unsigned ring_size;
        uint32_t rx_buf_size; /* 0: default */
        uint32_t buf_size;
        size_t max_frame;
        unsigned frames;
};

static void echo(const struct echo_case *c)
{
        struct fe_setup_opts o = {
                .queue_pairs = c->queue_pairs,
                .ring_size = c->ring_size,
                .features = c->features,
                .buf_size = c->buf_size,
                .rx_buf_size = c->rx_buf_size,
        };
        static uint8_t frame[FE_FRAME_MAX], got[FE_FRAME_MAX + 100];
        struct fe *fe;
        struct mbe *m = mbe_start(&fe, POFFER_BASIC);
        unsigned qps = c->queue_pairs ? c->queue_pairs : 1;
        unsigned multi = 0;
        uint32_t rnd = 12345;

        assert_int_equal(fe_setup_ex(fe, &o), 0);
        for (unsigned i = 0; i < c->frames; i++) {
                unsigned qp = i % qps;
                struct fe_ring *tx = fe_tx(fe, qp), *rx = fe_rx(fe, qp);
                struct fe_post how = {.nseg = 1};
                struct fe_rx_info info;
                size_t len;
                uint32_t seq;
                int r;

                rnd = rnd * 1103515245u + 12345u;
                len = FE_FRAME_MIN + (rnd >> 8) % (c->max_frame - FE_FRAME_MIN + 1);
                how.nseg = 1 + (rnd >> 4) % 4;
                how.indirect = (fe->acked_features & BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC)) && (rnd & 1);
                assert_int_equal(fe_frame_build(frame, len, i, NULL, NULL), 0);
                r = fe_ring_post_tx(tx, frame, len, NULL, &how);
                assert_true(r >= 0);
                assert_true(fe_ring_notify(tx) >= 0);
                r = fe_ring_recv_wait(rx, got, sizeof(got), &info, 5000);
                if (r != 1)
                        fail_msg("%s: frame %u (len %zu): recv %d (%s)", c->name, i, len, r, strerror(-r));
                assert_int_equal(info.len, len);
                assert_int_equal(fe_frame_verify(got, info.len, &seq), 0);
                assert_int_equal(seq, i);
                multi += info.nbufs > 1;
                /* Tx completions: may lag the rx frame slightly. */
                assert_true(fe_ring_wait(tx, 1, 5000) >= 1);
                assert_true(fe_ring_reap(tx) >= 1);
        }
        /* Read the back-end thread's counters after joining it: the rings order them only for the guest. */
        fe_disconnect(fe);
        assert_int_equal(pthread_join(m->thread, NULL), 0);
        m->thread_joined = true;
        unsigned echoed = m->echoed;
        unsigned bad = m->bad;
        mbe_stop(m, fe);
        fe_free(fe);
        assert_int_equal(echoed, c->frames);
        assert_int_equal(bad, 0);
        if (c->rx_buf_size && c->rx_buf_size < c->max_frame)
                assert_true(multi > 0);
}

static void test_echo(void **state)
{
        static const struct echo_case cases[] = {
                {"default", 0, 1, 256, 0, 0, 1514, 300},
                {"no event_idx", FE_FEATURES_DEFAULT & ~BIT_ULL(VIRTIO_RING_F_EVENT_IDX), 1, 64, 0, 0, 1514, 200},
                {"no mrg_rxbuf", FE_FEATURES_DEFAULT & ~BIT_ULL(VIRTIO_NET_F_MRG_RXBUF), 1, 64, 0, 0, 1514, 200},
                {"legacy header", BIT_ULL(VIRTIO_RING_F_EVENT_IDX) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES), 1, 64, 0,
                 0, 1514, 100},
                {"mrg small buffers", 0, 1, 128, 256, 0, 1514, 300},
                {"jumbo mrg", 0, 1, 256, 2048, 9100, 9000, 100},
                {"big buffers", 0, 1, 64, 0, 66000, 65535, 30},
                {"two queue pairs", 0, 2, 32, 512, 0, 1514, 200},
                {"no protocol features", BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_NET_F_MRG_RXBUF), 1, 16, 0, 0,
                 1514, 50},
                {"wraparound", 0, 1, 8, 128, 0, 600, 70000},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                echo(&cases[i]);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Dirty log                                                                                                      */

/* The log object: QEMU's size, a memfd at an offset, bits by gpa. */
static void test_log_object(void **state)
{
        struct fe_mem mem;
        struct fe_log log;
        struct stat st;
        uint8_t byte = 0x81;

        (void)state;
        fe_mem_init(&mem);
        assert_int_equal(fe_log_size_for(&mem), 0);
        assert_int_equal(fe_mem_add_region(&mem, 0, 1 << 20, 0), 0);
        /* 256 pages: 4 words of 64 bits. */
        assert_int_equal(fe_log_size_for(&mem), 32);
        assert_int_equal(fe_mem_add_region(&mem, 1ULL << 32, 2 << 20, 0), 1);
        /* Up to 4 GiB + 2 MiB: 1049088 pages, 16392 words. */
        assert_int_equal(fe_log_size_for(&mem), 16392 * 8);
        fe_mem_done(&mem);
        assert_int_equal(fe_mem_add_region(&mem, 0, 4096 * 65, 0), 0);
        assert_int_equal(fe_log_size_for(&mem), 16); /* 65 pages: two words */
        fe_mem_done(&mem);

        assert_int_equal(fe_log_init(&log, 0, 0), -EINVAL);
        assert_int_equal(log.fd, -1);
        assert_int_equal(fe_log_init(&log, 24, 100), 0);
        assert_true(log.fd >= 0);
        assert_true(fcntl(log.fd, F_GETFD) & FD_CLOEXEC);
        assert_int_equal(fstat(log.fd, &st), 0);
        assert_int_equal(st.st_size, 124);
        assert_int_equal(log.size, 24);
        assert_int_equal(log.offset, 100);
        assert_int_equal(fe_log_count(&log), 0);
        /* What a back-end writes into the fd at offset + byte is bit (gpa / 4096) here. */
        assert_int_equal(pwrite(log.fd, &byte, 1, 100 + 2), 1);
        assert_true(fe_log_test(&log, 16 * 4096));
        assert_true(fe_log_test(&log, 23 * 4096 + 4095));
        assert_false(fe_log_test(&log, 17 * 4096));
        assert_false(fe_log_test(&log, 24 * 4096));
        assert_false(fe_log_test(&log, 1ULL << 40)); /* beyond the log */
        assert_int_equal(fe_log_count(&log), 2);
        fe_log_clear(&log);
        assert_int_equal(fe_log_count(&log), 0);
        assert_int_equal(pread(log.fd, &byte, 1, 100 + 2), 1);
        assert_int_equal(byte, 0);
        if (!under_valgrind())
                assert_int_equal(fe_count_maps(getpid(), FE_LOG_NAME), 1);
        fe_log_done(&log);
        assert_int_equal(log.fd, -1);
        assert_null(log.bits);
        fe_log_done(&log);
        fe_log_done(NULL);
        assert_int_equal(fe_count_maps(getpid(), FE_LOG_NAME), 0);
}

/* Snapshots compared page by page against the log and the guest's own writes. */
static void test_log_unlogged(void **state)
{
        const uint64_t hi = 1ULL << 32;
        struct fe_snapshot before, after, other;
        struct fe_mem mem, mem2;
        struct fe_log log;
        uint64_t changed = 0, first = 0;
        uint8_t *p;

        (void)state;
        fe_mem_init(&mem);
        assert_int_equal(fe_mem_add_region(&mem, 0, 64 * 4096, 0), 0);
        assert_int_equal(fe_mem_add_region(&mem, hi, 16 * 4096, FE_MEM_SHARE_FD), 1);
        assert_int_equal(fe_log_init(&log, 8, 0), 0); /* 64 pages: region 0 only */
        assert_int_equal(fe_mem_track(&mem), 0);
        assert_int_equal(fe_mem_snapshot(&mem, &before), 0);

        /* Nothing changed. */
        assert_int_equal(fe_mem_snapshot(&mem, &after), 0);
        assert_int_equal(fe_log_unlogged(&log, &mem, &before, &after, &changed, &first), 0);
        assert_int_equal(changed, 0);
        fe_snapshot_done(&after);

        /* Page 0 (first byte), logged; page 5 (last byte), not logged; page 9 written by the guest; page 63 (the
         * last the log covers), logged; page 2 of region 1, beyond the log; page 7 rewritten with the same bytes. */
        p = fe_mem_ptr(&mem, 0, 1);
        p[0] = 1;
        assert_int_equal(log.bits[0] & 1, 0);
        log.bits[0] |= 1;
        p = fe_mem_ptr(&mem, 5 * 4096 + 4095, 1);
        p[0] = 2;
        p = fe_mem_ptr(&mem, 9 * 4096 + 10, 1);
        p[0] = 3;
        fe_mem_guest_wrote(&mem, 9 * 4096 + 10, 1);
        p = fe_mem_ptr(&mem, 63 * 4096 + 100, 1);
        p[0] = 4;
        log.bits[7] |= 0x80;
        p = fe_mem_ptr(&mem, hi + 2 * 4096, 1);
        p[0] = 5;
        p = fe_mem_ptr(&mem, 7 * 4096, 1);
        p[0] = 0;
        /* Marks and guest writes on pages that did not change count for nothing. */
        log.bits[1] |= 0x10;
        fe_mem_guest_wrote(&mem, 30 * 4096, 3 * 4096);

        assert_int_equal(fe_mem_snapshot(&mem, &after), 0);
        assert_int_equal(fe_log_unlogged(&log, &mem, &before, &after, &changed, &first), 2);
        assert_int_equal(changed, 5);
        assert_int_equal(first, 5 * 4096);
        /* Without the guest's record, its write counts too. */
        assert_int_equal(fe_log_unlogged(&log, NULL, &before, &after, NULL, NULL), 3);
        /* Tracking again forgets the guest's earlier writes. */
        assert_int_equal(fe_mem_track(&mem), 0);
        assert_int_equal(fe_log_unlogged(&log, &mem, &before, &after, NULL, &first), 3);
        assert_int_equal(first, 5 * 4096);
        fe_mem_guest_wrote(&mem, 9 * 4096, 1);
        /* A log covering region 1 too. */
        {
                struct fe_log big;

                assert_int_equal(fe_log_init(&big, fe_log_size_for(&mem), 0), 0);
                big.bits[0] = 0x01;
                big.bits[7] = 0x80;
                big.bits[(hi / 4096 + 2) / 8] |= (uint8_t)(1u << ((hi / 4096 + 2) % 8));
                assert_int_equal(fe_log_unlogged(&big, &mem, &before, &after, NULL, &first), 1);
                assert_int_equal(first, 5 * 4096);
                big.bits[0] |= 0x20;
                assert_int_equal(fe_log_unlogged(&big, &mem, &before, &after, NULL, NULL), 0);
                fe_log_done(&big);
        }
        /* Snapshots of other memory cannot be compared. */
        fe_mem_init(&mem2);
        assert_int_equal(fe_mem_add_region(&mem2, 0, 64 * 4096, 0), 0);
        assert_int_equal(fe_mem_snapshot(&mem2, &other), 0);
        assert_int_equal(fe_log_unlogged(&log, &mem, &before, &other, NULL, NULL), -EINVAL);
        fe_snapshot_done(&other);
        fe_mem_done(&mem2);

        fe_snapshot_done(&before);
        fe_snapshot_done(&after);
        fe_snapshot_done(&after); /* idempotent */
        fe_snapshot_done(NULL);
        fe_log_done(&log);
        fe_mem_done(&mem);
}

/* The library records its own writes; device-written rings and areas sit on pages of their own. */
static void test_log_guest_writes(void **state)
{
        static const uint8_t frame[200] = {1};
        struct fe_ring tx, rx;
        struct fe_mem mem;
        struct fe_log log;

        (void)state;
        fe_mem_init(&mem);
        assert_int_equal(fe_mem_add_region(&mem, 0, 2 << 20, 0), 0);
        assert_int_equal(fe_ring_init(&rx, &mem, 0, 64, 2048, 0, 0), 0);
        assert_int_equal(fe_ring_init(&tx, &mem, 1, 64, 2048, 0, 0), 0);
        for (int i = 0; i < 2; i++) {
                const struct fe_ring *r = i ? &tx : &rx;

                assert_int_equal(r->used_gpa % 4096, 0);
                assert_int_equal(r->area_gpa % 4096, 0);
                /* Nothing else on the used ring's pages: the next allocation starts a page later. */
                assert_true(r->ind_gpa >= r->used_gpa + 4096);
                assert_true(r->avail_gpa + 6 + 2 * 64 <= r->used_gpa);
        }
        assert_true(tx.area_gpa >= rx.area_gpa + 64 * 2048);
        assert_int_equal(fe_mem_track(&mem), 0);
        assert_int_equal(fe_log_init(&log, fe_log_size_for(&mem), 0), 0);

        /* A tx frame: its descriptor, avail entry and idx, and its buffer, nothing of the used rings. */
        assert_true(fe_ring_post_tx(&tx, frame, sizeof(frame), NULL, NULL) >= 0);
        memcpy(log.bits, mem.guest_dirty, log.size);
        assert_true(fe_log_test(&log, tx.desc_gpa));
        assert_true(fe_log_test(&log, tx.avail_gpa + 2));
        assert_true(fe_log_test(&log, tx.area_gpa));
        assert_false(fe_log_test(&log, tx.used_gpa));
        assert_false(fe_log_test(&log, rx.used_gpa));
        assert_false(fe_log_test(&log, rx.area_gpa));
        /* An rx buffer: descriptor and avail only; the buffer is the device's to write. */
        assert_int_equal(fe_mem_track(&mem), 0);
        assert_true(fe_ring_post_rx(&rx, 2048, &(struct fe_post){.nseg = 2, .indirect = true}) >= 0);
        memcpy(log.bits, mem.guest_dirty, log.size);
        assert_true(fe_log_test(&log, rx.desc_gpa));
        assert_true(fe_log_test(&log, rx.ind_gpa));
        assert_true(fe_log_test(&log, rx.avail_gpa));
        assert_false(fe_log_test(&log, rx.area_gpa));
        assert_false(fe_log_test(&log, rx.used_gpa));
        /* used_event, when waiting with EVENT_IDX. */
        assert_int_equal(fe_mem_track(&mem), 0);
        rx.event_idx = true;
        assert_int_equal(fe_ring_wait(&rx, 1, 0), -ETIMEDOUT);
        memcpy(log.bits, mem.guest_dirty, log.size);
        assert_true(fe_log_test(&log, rx.avail_gpa + 4 + 2 * 64));
        assert_int_equal(fe_log_count(&log), 1);

        fe_log_done(&log);
        fe_ring_done(&rx);
        fe_ring_done(&tx);
        fe_mem_done(&mem);
        /* Too high to track. */
        assert_int_equal(fe_mem_add_region(&mem, 1ULL << 45, 4096, 0), 0);
        assert_int_equal(fe_mem_track(&mem), -E2BIG);
        fe_mem_done(&mem);
}

#define POFFER_LOG (POFFER_BASIC | BIT_ULL(VU_PROTOCOL_F_LOG_SHMFD))

/* One migration pass: clear, snapshot, echo @frames over both queue pairs, barrier, snapshot, compare. */
static int64_t log_pass(struct fe *fe, unsigned frames, uint64_t *ret_changed, uint64_t *ret_first)
{
        static uint8_t frame[FE_FRAME_MAX], got[FE_FRAME_MAX];
        struct fe_snapshot before, after;
        int64_t n;

        fe_log_clear(&fe->log);
        assert_int_equal(fe_mem_track(fe->mem), 0);
        assert_int_equal(fe_mem_snapshot(fe->mem, &before), 0);
        for (unsigned i = 0; i < frames; i++) {
                struct fe_ring *tx = fe_tx(fe, i % 2), *rx = fe_rx(fe, i % 2);
                size_t len = 60 + (i * 397) % 1455;
                struct fe_rx_info info;

                assert_int_equal(fe_frame_build(frame, len, i, NULL, NULL), 0);
                assert_true(fe_ring_post_tx(tx, frame, len, NULL, NULL) >= 0);
                assert_true(fe_ring_notify(tx) >= 0);
                assert_int_equal(fe_ring_recv_wait(rx, got, sizeof(got), &info, 5000), 1);
                assert_int_equal(info.len, len);
                assert_true(fe_ring_wait(tx, 1, 5000) >= 1);
                assert_true(fe_ring_reap(tx) >= 1);
        }
        /* mbe handles messages after the kicks before them: when this returns, it wrote and marked all. */
        assert_int_equal(fe_sync(fe), 0);
        assert_int_equal(fe_mem_snapshot(fe->mem, &after), 0);
        n = fe_log_unlogged(&fe->log, fe->mem, &before, &after, ret_changed, ret_first);
        fe_snapshot_done(&before);
        fe_snapshot_done(&after);
        return n;
}

static bool in_used_ring(const struct fe *fe, uint64_t gpa)
{
        for (unsigned i = 0; i < fe->nrings; i++)
                if (gpa / 4096 == fe->rings[i].used_gpa / 4096)
                        return true;
        return false;
}

static bool in_rx_area(const struct fe *fe, uint64_t gpa)
{
        for (unsigned i = 0; i < fe->nrings; i += 2) {
                const struct fe_ring *r = &fe->rings[i];

                if (gpa >= r->area_gpa && gpa < r->area_gpa + (uint64_t)r->num * r->buf_size)
                        return true;
        }
        return false;
}

static void test_log_setup_and_passes(void **state)
{
        struct fe_setup_opts o = {.queue_pairs = 2, .ring_size = 64, .rx_buf_size = 512, .log = true};
        struct fe *fe;
        struct mbe *m = mbe_start_offer(&fe, POFFER_LOG, MBE_OFFER | BIT_ULL(VHOST_F_LOG_ALL));
        uint64_t changed = 0, first = 0;
        unsigned base_at = 0, last_ring_msg = 0, first_enable = 0;

        (void)state;
        assert_int_equal(fe_setup_ex(fe, &o), 0);
        assert_true(fe->acked_features & BIT_ULL(VHOST_F_LOG_ALL));
        assert_true(fe->acked_protocol_features & BIT_ULL(VU_PROTOCOL_F_LOG_SHMFD));
        /* The back-end got the log QEMU would send: sized for guest RAM, at offset 0, after the rings. */
        assert_int_equal(m->log_bases, 1);
        assert_int_equal(m->log_size, fe_log_size_for(fe->mem));
        assert_int_equal(fe->log.size, m->log_size);
        assert_int_equal(m->log_offset, 0);
        for (unsigned i = 0; i < m->nlog; i++) {
                if (m->log[i] == VU_SET_LOG_BASE)
                        base_at = i;
                if (m->log[i] == VU_SET_VRING_ADDR || m->log[i] == VU_SET_VRING_CALL)
                        last_ring_msg = i;
                if (m->log[i] == VU_SET_VRING_ENABLE && !first_enable)
                        first_enable = i;
                if (m->log[i] == VU_SET_LOG_BASE)
                        assert_int_equal(m->log_flags[i], VU_VERSION); /* no NEED_REPLY: it has its own reply */
        }
        assert_true(last_ring_msg < base_at && base_at < first_enable);
        for (unsigned i = 0; i < fe->nrings; i++) {
                assert_true(m->vq[i].addr_flags & (1u << VU_VRING_F_LOG));
                assert_int_equal(m->vq[i].log_gpa, fe->rings[i].used_gpa);
        }

        /* A back-end that logs everything: every changed page is accounted for. */
        assert_int_equal(log_pass(fe, 200, &changed, &first), 0);
        assert_true(changed > 10);
        assert_true(fe_log_count(&fe->log) > 0);

        /* One that forgets the rx buffers: caught, on an rx data area. */
        __atomic_store_n(&m->log_skip, MBE_SKIP_DATA, __ATOMIC_RELAXED);
        assert_true(log_pass(fe, 50, &changed, &first) > 0);
        assert_true(in_rx_area(fe, first));
        /* One that forgets the used rings: caught, on a used ring. */
        __atomic_store_n(&m->log_skip, MBE_SKIP_USED, __ATOMIC_RELAXED);
        assert_true(log_pass(fe, 50, &changed, &first) > 0);
        assert_true(in_used_ring(fe, first));
        __atomic_store_n(&m->log_skip, 0, __ATOMIC_RELAXED);
        assert_int_equal(log_pass(fe, 50, NULL, NULL), 0);

        /* Stop: LOG_ALL off and the rings without VU_VRING_F_LOG; the back-end marks nothing any more. */
        assert_int_equal(fe_log_stop(fe), 0);
        assert_int_equal(fe_sync(fe), 0);
        assert_false(m->features & BIT_ULL(VHOST_F_LOG_ALL));
        for (unsigned i = 0; i < fe->nrings; i++) {
                assert_false(m->vq[i].addr_flags & (1u << VU_VRING_F_LOG));
                assert_int_equal(m->vq[i].log_gpa, 0);
        }
        assert_true(log_pass(fe, 50, &changed, NULL) > 0);
        assert_int_equal(fe_log_count(&fe->log), 0);

        /* Start again on the running device, as when a migration starts: base, LOG_ALL, rings. */
        assert_int_equal(fe_log_start(fe), 0);
        assert_int_equal(fe_sync(fe), 0);
        assert_int_equal(m->log_bases, 2);
        assert_true(m->features & BIT_ULL(VHOST_F_LOG_ALL));
        for (unsigned i = 0; i < fe->nrings; i++)
                assert_int_equal(m->vq[i].log_gpa, fe->rings[i].used_gpa);
        assert_int_equal(log_pass(fe, 100, NULL, NULL), 0);

        /* SET_LOG_FD carries an eventfd. */
        {
                int efd = eventfd(0, EFD_CLOEXEC);

                assert_true(efd >= 0);
                assert_int_equal(fe_set_log_fd(fe, efd), 0);
                assert_int_equal(fe_sync(fe), 0);
                assert_int_equal(m->log_fds, 1);
                close(efd);
        }
        /* A log at an offset in its memfd, sent by hand. */
        {
                struct fe_log other;

                assert_int_equal(fe_log_init(&other, fe_log_size_for(fe->mem), 4096 + 8), 0);
                assert_int_equal(fe_set_log_base(fe, &other), 0);
                assert_int_equal(m->log_offset, 4096 + 8);
                fe_log_done(&fe->log);
                fe->log = other; /* fe_free() closes it */
                assert_int_equal(log_pass(fe, 50, &changed, NULL), 0);
                assert_true(fe_log_count(&fe->log) > 0);
        }
        mbe_stop(m, fe);
        fe_free(fe);
}

/* Logging asked for, not offered. */
static void test_log_not_offered(void **state)
{
        struct fe_setup_opts o = {.log = true};
        struct fe *fe;
        struct mbe *m = mbe_start(&fe, POFFER_LOG);

        (void)state;
        assert_int_equal(fe_setup_ex(fe, &o), -EOPNOTSUPP);
        mbe_stop(m, fe);
        fe_free(fe);
        m = mbe_start_offer(&fe, POFFER_BASIC, MBE_OFFER | BIT_ULL(VHOST_F_LOG_ALL));
        assert_int_equal(fe_setup_ex(fe, &o), -EOPNOTSUPP);
        mbe_stop(m, fe);
        fe_free(fe);
        m = mbe_start(&fe, POFFER_LOG);
        assert_int_equal(fe_setup(fe, 1, 64, 0), 0);
        assert_int_equal(fe_log_start(fe), -EOPNOTSUPP);
        mbe_stop(m, fe);
        fe_free(fe);
}

static void *connect_thread(void *arg)
{
        struct fe *fe = NULL;

        if (fe_connect(arg, 2000, &fe) == 0) {
                (void)fe_set_owner(fe);
                fe_free(fe);
        }
        return NULL;
}

static void test_listen_accept(void **state)
{
        char path[64];
        struct fe *fe, *c;
        struct vu_msg msg;
        pthread_t t;
        int lfd;

        (void)state;
        snprintf(path, sizeof(path), "/tmp/fakefe-test-%d.sock", (int)getpid());
        assert_int_equal(fe_connect(path, 30, &c), -ETIMEDOUT);
        assert_int_equal(fe_listen(path, &lfd), 0);
        assert_int_equal(fe_accept(lfd, 20, &fe), -ETIMEDOUT);
        assert_int_equal(pthread_create(&t, NULL, connect_thread, path), 0);
        assert_int_equal(fe_accept(lfd, 2000, &fe), 0);
        assert_int_equal(fe_recv_reply(fe, &msg, 2000), 0);
        assert_int_equal(msg.hdr.request, VU_SET_OWNER);
        assert_int_equal(pthread_join(t, NULL), 0);
        fe_free(fe);
        close(lfd);
        unlink(path);
        {
                char longp[200];

                memset(longp, 'x', sizeof(longp) - 1);
                longp[sizeof(longp) - 1] = 0;
                assert_int_equal(fe_connect(longp, 0, &c), -ENAMETOOLONG);
        }
}

static void test_spawn(void **state)
{
        char logp[64], buf[64] = {0};
        char *argv[] = {"/bin/sh", "-c", "echo hello; echo err >&2; exec sleep 30", NULL};
        char *bad[] = {"/nonexistent/vhostd", NULL};
        char *quick[] = {"/bin/sh", "-c", "exit 3", NULL};
        int status, fd;
        pid_t pid;

        (void)state;
        snprintf(logp, sizeof(logp), "/tmp/fakefe-test-%d.log", (int)getpid());
        unlink(logp);
        pid = fe_spawn_vhostd(argv, logp);
        assert_true(pid > 0);
        for (int i = 0; i < 200 && fe_count_threads(pid) == 1 && fe_count_maps(pid, "sleep") == 0; i++)
                usleep(10000);
        assert_int_equal(fe_count_threads(pid), 1);
        assert_true(fe_count_fds(pid) >= 3);
        assert_true(fe_count_maps(pid, NULL) > 0);
        assert_int_equal(fe_stop(pid, 2000, &status), 0);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
        fd = open(logp, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
        close(fd);
        assert_non_null(strstr(buf, "hello"));
        assert_non_null(strstr(buf, "err"));
        unlink(logp);
        assert_int_equal(fe_count_fds(pid), -ENOENT);

        assert_int_equal(fe_spawn_vhostd(bad, NULL), -ENOENT);
        pid = fe_spawn_vhostd(quick, NULL);
        assert_true(pid > 0);
        assert_int_equal(fe_wait_exit(pid, 2000, &status), 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_frame),
                cmocka_unit_test(test_mem),
                cmocka_unit_test(test_ring_post),
                cmocka_unit_test(test_ring_event_idx),
                cmocka_unit_test(test_ring_recv_crafted),
                cmocka_unit_test(test_msg_framing),
                cmocka_unit_test(test_request_checks),
                cmocka_unit_test(test_setup_sequence),
                cmocka_unit_test(test_setup_mem_slots),
                cmocka_unit_test(test_echo),
                cmocka_unit_test(test_log_object),
                cmocka_unit_test(test_log_unlogged),
                cmocka_unit_test(test_log_guest_writes),
                cmocka_unit_test(test_log_setup_and_passes),
                cmocka_unit_test(test_log_not_offered),
                cmocka_unit_test(test_listen_accept),
                cmocka_unit_test(test_spawn),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
