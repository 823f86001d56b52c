// SPDX-License-Identifier: MIT
/*
 * rawsock: AF_PACKET sockets bound to an existing interface, one per queue pair, joined in one hash fanout
 * group when there are several (the kernel spreads received flows over the queue pairs).
 *
 * Receive: a TPACKET_V3 ring (blocks of frames) mapped into our memory; a block becomes ours when it is full
 * or its retire timer (1 ms) fires, so a burst costs no syscall and a lone frame waits at most about a
 * millisecond. The socket polls readable while a retired block waits. Every frame comes with the kernel's
 * virtio-net header (PACKET_VNET_HDR), so checksum and GSO state are known. What the guest did not accept
 * is finished here: a partial checksum is completed in place, a TCP or UDP (USO) GSO frame is cut into
 * segments with their own headers and checksums. Frames the guest can never take are skipped (backends
 * have no drop counter): UFO (IP fragmentation) and unparsable GSO frames, frames the ring truncated,
 * frames larger than a buffer without MRG_RXBUF. VLAN tags the kernel moved out of the frame are put back.
 *
 * Send: sendmmsg of the guest's own buffers, each frame as [10-byte virtio-net header][payload after the
 * guest's hdr_len-byte header], the header passed on when the guest negotiated offloads (zeroed
 * otherwise). PACKET_IGNORE_OUTGOING (and its fanout flag) keeps our own frames off the receive ring.
 *
 * The guest's MTU (cfg->mtu) may not exceed the interface's: open() fails with -EMSGSIZE.
 *
 * A block read to the end goes back to the kernel only at rx_done(), after the worker put what it held into the
 * guest's used ring, and the receive position is stored then in a page of shared memory: a process that takes
 * the port over after this one crashed (systemd's fd store) reads on from there, so that frames the old process
 * had taken but not delivered are delivered, and at most one burst twice.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/iov.h"
#include "backends/offload.h"
#include "backends/virtio_net.h"

#define RS_BLOCK_SIZE (1u << 18) /* holds a 64 KiB GSO frame with its headers */
#define RS_BLOCK_NR 16
#define RS_FRAME_SIZE 2048 /* only for the ring's bookkeeping: V3 packs frames by their size */
#define RS_RETIRE_MS 1
#define RS_TX_BATCH 64 /* frames per sendmmsg */
#define RS_TX_IOV (RS_TX_BATCH * 4 + 256)
#define RS_HDR_MAX 256
#define CURSOR_PAGE                                                                                                    \
        4096 /* a u64 cursor per queue (CONFIG_MAX_QUEUES of them fit) */ /* Ethernet + VLAN + IP + L4 headers of a    \
                                                                             frame we segment */

#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
#endif

#define VNET_HDR_LEN sizeof(struct virtio_net_hdr)

struct rs_queue {
        int fd;
        int ifindex; /* the interface the socket is bound to */
        uint8_t *ring;
        size_t ring_len;

        /* receive cursor */
        unsigned blk;                   /* block we read (or wait for) */
        struct tpacket_block_desc *cur; /* that block, once it is ours; NULL between blocks */
        uint32_t left;                  /* packets left in cur */
        uint8_t *pkt;                   /* next packet in cur */
        unsigned seg;                   /* software GSO: next segment of the packet at pkt */
        unsigned pending;               /* blocks read to the end before blk, given back at rx_done() */
        uint64_t kernel_drops;          /* the ring's tp_drops, summed: reading them resets the kernel's count */

        /* what the guest accepted */
        unsigned hdr_len;
        bool tx_offload; /* pass the guest's tx header on */
        bool guest_csum, guest_tso4, guest_tso6, guest_ecn;

        /* send scratch */
        struct mmsghdr msgs[RS_TX_BATCH];
        struct virtio_net_hdr tx_hdr[RS_TX_BATCH];
        struct iovec tx_iov[RS_TX_IOV];
};

/* The fanout group of a port: id and mode flags, shared by its sockets (0 until the first socket joined). */
struct fanout {
        unsigned id;
        unsigned flags;
};

struct rs_backend {
        struct backend base;
        struct backend_cfg cfg; /* to open sockets again when the interface is re-created */
        unsigned mtu;
        bool offloads;
        /* Recovery runs in each queue's worker: one at a time, as the queues share the fanout group. */
        pthread_mutex_t recover_lock;
        int fanout_ifindex; /* the interface fanout belongs to: a group is tied to one device */
        struct fanout fanout;
        /*
         * Each queue's receive position as of its last rx_done() (a note, below), in a memfd that systemd's fd
         * store keeps: a process started after this one crashed reads on from there.
         */
        int cursor_fd;
        uint64_t *cursors;
        struct rs_queue q[];
};

static void put16(uint8_t *p, uint16_t host)
{
        uint16_t be = htons(host);
        memcpy(p, &be, 2);
}

/* ---- open / close ---- */

static void collect_kernel_drops(struct rs_queue *q)
{
        struct tpacket_stats_v3 st;
        socklen_t len = sizeof(st);

        if (q->fd >= 0 && getsockopt(q->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
                q->kernel_drops += st.tp_drops;
}

static void close_queue(struct rs_queue *q)
{
        collect_kernel_drops(q); /* a socket replaced by recover() keeps its count */
        if (q->ring)
                munmap(q->ring, q->ring_len);
        if (q->fd >= 0)
                close(q->fd);
        q->ring = NULL;
        q->fd = -1;
}

static void rs_close(struct backend *be)
{
        struct rs_backend *rs = (struct rs_backend *)be;

        if (!rs)
                return;
        for (unsigned i = 0; i < be->nqueues; i++)
                close_queue(&rs->q[i]);
        if (rs->cursors)
                munmap(rs->cursors, CURSOR_PAGE);
        if (rs->cursor_fd >= 0)
                close(rs->cursor_fd);
        pthread_mutex_destroy(&rs->recover_lock);
        free(rs);
}

static int setopt_int(int fd, int level, int name, int val)
{
        return setsockopt(fd, level, name, &val, sizeof(val)) < 0 ? -errno : 0;
}

static int add_promisc(int fd, int ifindex)
{
        struct packet_mreq mr = {.mr_ifindex = ifindex, .mr_type = PACKET_MR_PROMISC};

        return setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0 ? -errno : 0;
}

static int fanout_set(int fd, unsigned id, unsigned type_flags)
{
        return setopt_int(fd, SOL_PACKET, PACKET_FANOUT, (int)(id | (type_flags << 16)));
}

/*
 * Joins a socket to the port's hash fanout group. The group, not the socket, decides whether outgoing
 * frames are seen (PACKET_FANOUT_FLAG_IGNORE_OUTGOING, Linux 6.2); older kernels lack it and rx_burst
 * filters them. The first socket asks the kernel for an id no other process uses (UNIQUEID); where that
 * is refused, one derived from our pid and the ifindex.
 */
static int join_fanout(int fd, struct fanout *fo, int ifindex)
{
        static const unsigned try_flags[] = {PACKET_FANOUT_FLAG_IGNORE_OUTGOING, 0};
        int val, r = -EINVAL;
        socklen_t len = sizeof(val);

        if (fo->id)
                return fanout_set(fd, fo->id, PACKET_FANOUT_HASH | fo->flags);
        for (unsigned i = 0; i < sizeof(try_flags) / sizeof(try_flags[0]); i++) {
                fo->flags = try_flags[i];
                r = fanout_set(fd, 0, PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID | fo->flags);
                if (r == 0 && getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &val, &len) == 0) {
                        fo->id = (unsigned)val & 0xffff;
                        return 0;
                }
                if (r == 0)
                        return -errno; /* joined, but we cannot learn the id for the others */
                if (r != -EINVAL)
                        return r;
        }
        fo->id = ((unsigned)getpid() * 31u + (unsigned)ifindex) & 0xffff;
        if (!fo->id)
                fo->id = 1;
        for (unsigned i = 0; i < sizeof(try_flags) / sizeof(try_flags[0]); i++) {
                fo->flags = try_flags[i];
                r = fanout_set(fd, fo->id, PACKET_FANOUT_HASH | fo->flags);
                if (r != -EINVAL)
                        break;
        }
        return r;
}

/* Opens q's socket and ring on interface ifindex; on failure the caller closes what was opened. */
static int open_queue(struct rs_backend *rs, struct rs_queue *q, int ifindex)
{
        const struct backend_cfg *cfg = &rs->cfg;
        struct tpacket_req3 req = {
                .tp_block_size = RS_BLOCK_SIZE,
                .tp_block_nr = RS_BLOCK_NR,
                .tp_frame_size = RS_FRAME_SIZE,
                .tp_frame_nr = RS_BLOCK_SIZE / RS_FRAME_SIZE * RS_BLOCK_NR,
                .tp_retire_blk_tov = RS_RETIRE_MS,
        };
        struct sockaddr_ll sll = {
                .sll_family = AF_PACKET,
                .sll_protocol = htons(ETH_P_ALL),
                .sll_ifindex = ifindex,
        };
        int r;

        /* Protocol 0: nothing is received until bind(), so the ring only ever sees this interface. */
        q->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (q->fd < 0)
                return -errno;
        if ((r = setopt_int(q->fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3)) < 0 ||
            (r = setopt_int(q->fd, SOL_PACKET, PACKET_VNET_HDR, 1)) < 0)
                return r;
        /* Linux 4.20: without it rx_burst still drops outgoing frames, after the kernel copied them. */
        (void)setopt_int(q->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
        if (cfg->qdisc_bypass && (r = setopt_int(q->fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1)) < 0)
                return r;
        if (setsockopt(q->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0)
                return -errno;
        q->ring_len = (size_t)req.tp_block_size * req.tp_block_nr;
        q->ring = mmap(NULL, q->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, 0);
        if (q->ring == MAP_FAILED) {
                q->ring = NULL;
                return -errno;
        }
        if (bind(q->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
                return -errno;
        q->ifindex = ifindex;
        if (cfg->promisc && (r = add_promisc(q->fd, ifindex)) < 0)
                return r;
        if (rs->base.nqueues > 1) {
                if (rs->fanout_ifindex != ifindex)
                        rs->fanout = (struct fanout){0};
                rs->fanout_ifindex = ifindex;
                if ((r = join_fanout(q->fd, &rs->fanout, ifindex)) < 0)
                        return r;
        }
        return 0;
}

/* A port without sockets yet; NULL: out of memory. */
static struct rs_backend *rs_alloc(const struct backend_cfg *cfg, unsigned nqueues)
{
        struct rs_backend *rs = calloc(1, sizeof(*rs) + nqueues * sizeof(struct rs_queue));

        if (!rs)
                return NULL;
        rs->base.ops = &backend_rawsock_ops;
        rs->base.nqueues = nqueues;
        rs->cfg = *cfg;
        rs->offloads = cfg->offloads;
        rs->cursor_fd = -1;
        pthread_mutex_init(&rs->recover_lock, NULL);
        for (unsigned i = 0; i < nqueues; i++) {
                rs->q[i].fd = -1;
                rs->q[i].hdr_len = sizeof(struct virtio_net_hdr_mrg);
        }
        return rs;
}

/* Maps the cursor page from fd (-1: a new one); the fd is rs's from the call on. */
static int map_cursors(struct rs_backend *rs, int fd)
{
        if (fd < 0 &&
            ((fd = memfd_create("vhostd-rawsock-cursors", MFD_CLOEXEC)) < 0 || ftruncate(fd, CURSOR_PAGE) < 0)) {
                int r = -errno;

                if (fd >= 0)
                        close(fd);
                return r;
        }
        rs->cursor_fd = fd;
        rs->cursors = mmap(NULL, CURSOR_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (rs->cursors == MAP_FAILED) {
                rs->cursors = NULL;
                return -errno;
        }
        return 0;
}

static int rs_open(const struct backend_cfg *cfg, unsigned nqueues, struct backend **ret)
{
        struct rs_backend *rs;
        int ifindex, r;

        if (!cfg->ifname[0] || nqueues == 0)
                return -EINVAL;
        rs = rs_alloc(cfg, nqueues);
        if (!rs)
                return -ENOMEM;
        ifindex = (int)if_nametoindex(cfg->ifname);
        if (!ifindex) {
                r = errno == ENXIO || errno == ENOENT ? -ENODEV : -errno;
                goto fail;
        }
        for (unsigned i = 0; i < nqueues; i++) {
                r = open_queue(rs, &rs->q[i], ifindex);
                if (r < 0)
                        goto fail;
        }
        if ((r = map_cursors(rs, -1)) < 0 || (r = backend_link_state(cfg->ifname, NULL, &rs->mtu)) < 0)
                goto fail;
        if (cfg->mtu > rs->mtu) {
                r = -EMSGSIZE; /* the guest would send frames the interface refuses */
                goto fail;
        }
        *ret = &rs->base;
        return 0;
fail:
        rs_close(&rs->base);
        return r;
}

static uint64_t rs_features(const struct backend *be)
{
        return ((const struct rs_backend *)be)->offloads ? backend_rawsock_ops.max_features : 0;
}

static unsigned rs_max_mtu(const struct backend *be)
{
        return ((const struct rs_backend *)be)->mtu;
}

static int rs_configure(struct backend *be, unsigned qi, uint64_t acked, unsigned hdr_len)
{
        struct rs_backend *rs = (struct rs_backend *)be;
        struct rs_queue *q = &rs->q[qi];

        if (hdr_len < VNET_HDR_LEN)
                return -EINVAL;
        if (!rs->offloads)
                acked = 0;
        q->hdr_len = hdr_len;
        q->tx_offload = acked & BIT_ULL(VIRTIO_NET_F_CSUM);
        q->guest_csum = acked & BIT_ULL(VIRTIO_NET_F_GUEST_CSUM);
        q->guest_tso4 = q->guest_csum && (acked & BIT_ULL(VIRTIO_NET_F_GUEST_TSO4));
        q->guest_tso6 = q->guest_csum && (acked & BIT_ULL(VIRTIO_NET_F_GUEST_TSO6));
        q->guest_ecn = acked & BIT_ULL(VIRTIO_NET_F_GUEST_ECN);
        return 0;
}

static int rs_queue_fd(const struct backend *be, unsigned q)
{
        return ((const struct rs_backend *)be)->q[q].fd;
}

/* ---- guest -> port ---- */

static int rs_tx_burst(struct backend *be, unsigned qi, const struct frame *frames, unsigned n)
{
        struct rs_queue *q = &((struct rs_backend *)be)->q[qi];
        unsigned done = 0;

        while (done < n) {
                unsigned nmsg = 0, niov = 0;
                int r;

                while (done + nmsg < n && nmsg < RS_TX_BATCH) {
                        const struct frame *f = &frames[done + nmsg];
                        struct iovec *iov = q->tx_iov + niov;
                        int k;

                        if (niov + 1 >= RS_TX_IOV)
                                break;
                        k = iov_skip(f->iov, f->iovcnt, q->hdr_len, iov + 1, RS_TX_IOV - niov - 1);
                        if (k < 0) {
                                if (nmsg)
                                        break;    /* the pool is full: send what we have first */
                                return -EMSGSIZE; /* cannot happen with the pool larger than a chain */
                        }
                        if (q->tx_offload)
                                iov_to_buf(f->iov, f->iovcnt, 0, &q->tx_hdr[nmsg], VNET_HDR_LEN);
                        else
                                memset(&q->tx_hdr[nmsg], 0, VNET_HDR_LEN);
                        iov[0] = (struct iovec){.iov_base = &q->tx_hdr[nmsg], .iov_len = VNET_HDR_LEN};
                        q->msgs[nmsg].msg_hdr = (struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)k + 1};
                        niov += (unsigned)k + 1;
                        nmsg++;
                }
                r = sendmmsg(q->fd, q->msgs, nmsg, MSG_DONTWAIT);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        if (done)
                                break; /* report what went; the error comes back on the next call */
                        if (errno == EWOULDBLOCK)
                                return -EAGAIN;
                        return -errno;
                }
                done += (unsigned)r;
                if ((unsigned)r < nmsg)
                        break;
        }
        return (int)done;
}

/* ---- port -> guest ---- */

/* A received frame as the guest will see it: the ring bytes, with a VLAN tag put back after the MACs. */
struct rs_frame {
        uint8_t *mac;
        uint32_t len; /* bytes at mac */
        unsigned vt;  /* 4 when a tag is inserted */
        uint8_t tag[4];
        struct virtio_net_hdr vh;
};

/* Copies bytes [0, len) of the frame (tag included) into iov at byte off. */
static void copy_frame(const struct rs_frame *f, const struct iovec *iov, unsigned iovcnt, size_t off)
{
        if (!f->vt || f->len < 12) {
                iov_from_buf(iov, iovcnt, off, f->mac, f->len);
                return;
        }
        iov_from_buf(iov, iovcnt, off, f->mac, 12);
        iov_from_buf(iov, iovcnt, off + 12, f->tag, 4);
        iov_from_buf(iov, iovcnt, off + 16, f->mac + 12, f->len - 12);
}

/* Finishes a partial checksum in place (the ring block is ours until we hand it back). */
static bool finish_csum(struct rs_frame *f)
{
        if (!csum_complete(f->mac, f->len, &f->vh))
                return false;
        f->vh.flags &= (uint8_t)~VIRTIO_NET_HDR_F_NEEDS_CSUM;
        return true;
}

/* Delivers one frame as it is; returns 1, 0 (skipped), or the sink's -ENOBUFS/-EIO. */
static int deliver_whole(struct rs_queue *q, struct rx_sink *sink, struct rs_frame *f)
{
        size_t total = q->hdr_len + f->vt + f->len;
        const struct iovec *iov;
        unsigned iovcnt;
        int r;

        if (f->vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
                if (q->guest_csum)
                        f->vh.csum_start = htole16((uint16_t)(le16toh(f->vh.csum_start) + f->vt));
                else if (!finish_csum(f))
                        return 0;
        }
        if (!q->guest_csum) /* nothing left to say: DATA_VALID too is only for a guest with GUEST_CSUM */
                memset(&f->vh, 0, sizeof(f->vh));
        if (f->vh.gso_type != VIRTIO_NET_HDR_GSO_NONE && f->vt)
                f->vh.hdr_len = htole16((uint16_t)(le16toh(f->vh.hdr_len) + f->vt));
        r = sink->reserve(sink, total, &iov, &iovcnt);
        if (r == -EMSGSIZE)
                return 0; /* too big for the guest: dropped and counted by the sink */
        if (r < 0)
                return r;
        iov_from_buf(iov, iovcnt, 0, &f->vh, VNET_HDR_LEN);
        copy_frame(f, iov, iovcnt, q->hdr_len);
        sink->commit(sink, total);
        return 1;
}

/*
 * Cuts a GSO frame into segments from q->seg on, each with full checksums, as the kernel's software GSO would;
 * returns the segments delivered. *finished says whether all went.
 */
static int deliver_segments(struct rs_queue *q, struct rx_sink *sink, struct rs_frame *f, unsigned budget,
                            bool *finished)
{
        static const struct virtio_net_hdr zero_vh;
        struct gso_info g;
        uint8_t hb[RS_HDR_MAX];
        unsigned done = 0, vt = f->vt;

        *finished = true;
        if (!gso_parse(f->mac, f->len, &f->vh, &g) || g.hdrs + vt > RS_HDR_MAX)
                return 0;
        /* The segments carry the VLAN tag the kernel took out: every offset moves by its length. */
        struct gso_info gt = g;
        gt.l3 += vt;
        gt.l4 += vt;
        gt.hdrs += vt;
        while (q->seg < g.nseg && done < budget) {
                unsigned i = q->seg, hl = gt.hdrs;
                unsigned pay_off = g.hdrs + i * g.mss;
                unsigned seglen = f->len - pay_off < g.mss ? f->len - pay_off : g.mss;
                size_t total = q->hdr_len + hl + seglen;
                const struct iovec *iov;
                unsigned iovcnt;
                int r;

                memcpy(hb, f->mac, 12);
                memcpy(hb + 12, f->tag, vt);
                memcpy(hb + 12 + vt, f->mac + 12, g.hdrs - 12);
                gso_segment_headers(hb, &gt, i, f->mac + pay_off, seglen);

                r = sink->reserve(sink, total, &iov, &iovcnt);
                if (r == -ENOBUFS || r == -EIO) {
                        *finished = false;
                        return done ? (int)done : r;
                }
                if (r == 0) { /* else -EMSGSIZE: too big for the guest, dropped and counted by the sink */
                        iov_from_buf(iov, iovcnt, 0, &zero_vh, VNET_HDR_LEN);
                        iov_from_buf(iov, iovcnt, q->hdr_len, hb, hl);
                        iov_from_buf(iov, iovcnt, q->hdr_len + hl, f->mac + pay_off, seglen);
                        sink->commit(sink, total);
                        done++;
                }
                q->seg++;
        }
        *finished = q->seg >= g.nseg;
        return (int)done;
}

static bool guest_takes_gso(const struct rs_queue *q, uint8_t gso_type)
{
        uint8_t type = gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

        if ((gso_type & VIRTIO_NET_HDR_GSO_ECN) && !q->guest_ecn)
                return false;
        return (type == VIRTIO_NET_HDR_GSO_TCPV4 && q->guest_tso4) ||
               (type == VIRTIO_NET_HDR_GSO_TCPV6 && q->guest_tso6);
}

/* Delivers the packet at q->pkt; returns the frames given to the guest (or -ENOBUFS/-EIO with none). */
static int deliver(struct rs_queue *q, struct rx_sink *sink, unsigned budget, bool *finished)
{
        struct tpacket3_hdr *h = (struct tpacket3_hdr *)q->pkt;
        struct rs_frame f = {.mac = q->pkt + h->tp_mac, .len = h->tp_snaplen};
        int r;

        const struct sockaddr_ll *sll = (const struct sockaddr_ll *)(q->pkt + TPACKET_ALIGN(sizeof(*h)));

        *finished = true;
        if (sll->sll_pkttype == PACKET_OUTGOING)
                return 0; /* our own (or the host's) frame: kernels without IGNORE_OUTGOING for fanout */
        if (h->tp_snaplen < h->tp_len || h->tp_mac < VNET_HDR_LEN)
                return 0; /* truncated by the ring */
        memcpy(&f.vh, f.mac - VNET_HDR_LEN, VNET_HDR_LEN);
        if ((h->tp_status & TP_STATUS_VLAN_VALID) && f.len >= 12) {
                uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : ETH_P_8021Q;
                put16(f.tag, tpid);
                put16(f.tag + 2, (uint16_t)h->hv1.tp_vlan_tci);
                f.vt = 4;
        }
        if (f.vh.gso_type != VIRTIO_NET_HDR_GSO_NONE && !guest_takes_gso(q, f.vh.gso_type))
                return deliver_segments(q, sink, &f, budget, finished);
        r = deliver_whole(q, sink, &f);
        if (r == -ENOBUFS || r == -EIO)
                *finished = false;
        return r;
}

/*
 * Done with the current block. It goes back to the kernel at rx_done(), once the guest's used ring has what it
 * held: a process that takes over after a crash then finds every frame not yet delivered still in the ring.
 */
static void finish_block(struct rs_queue *q)
{
        q->cur = NULL;
        q->blk = (q->blk + 1) % RS_BLOCK_NR;
        q->pending++;
}

static void release_pending(struct rs_queue *q)
{
        for (; q->pending; q->pending--) {
                unsigned b = (q->blk + RS_BLOCK_NR - q->pending) % RS_BLOCK_NR;
                struct tpacket_block_desc *bd = (struct tpacket_block_desc *)(q->ring + (size_t)b * RS_BLOCK_SIZE);

                __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        }
}

static int rs_rx_burst(struct backend *be, unsigned qi, struct rx_sink *sink, unsigned budget)
{
        struct rs_queue *q = &((struct rs_backend *)be)->q[qi];
        unsigned done = 0;

        while (done < budget) {
                bool finished;
                int r;

                if (!q->cur) {
                        struct tpacket_block_desc *bd =
                                (struct tpacket_block_desc *)(q->ring + (size_t)q->blk * RS_BLOCK_SIZE);

                        if (q->pending == RS_BLOCK_NR)
                                break; /* every block read, none given back yet: blk is the first of them */
                        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
                                break;
                        q->cur = bd;
                        q->left = bd->hdr.bh1.num_pkts;
                        q->pkt = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
                        q->seg = 0;
                        if (!q->left) {
                                finish_block(q);
                                continue;
                        }
                }
                r = deliver(q, sink, budget - done, &finished);
                if (r < 0)
                        break; /* -ENOBUFS: the guest has no room; -EIO: the ring broke */
                done += (unsigned)r;
                if (!finished)
                        break;
                q->seg = 0;
                if (--q->left == 0)
                        finish_block(q);
                else
                        q->pkt += ((struct tpacket3_hdr *)q->pkt)->tp_next_offset;
        }
        if (!done && !q->cur) {
                /*
                 * Nothing waiting: read (and so clear) a pending socket error, or epoll would report it forever.
                 * ENETDOWN: the link went down or the interface is gone; recover() tells which, and when it is
                 * back.
                 */
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(q->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ENETDOWN)
                        return -ENETDOWN;
        }
        return (int)done;
}

/*
 * Link down and up: the socket stays bound and the kernel resumes delivery by itself. Interface deleted: the
 * kernel unbinds the socket; once an interface of that name exists again, a lone socket is bound to it again
 * (needs no privilege) and keeps its ring, while the sockets of a fanout group, which cannot be bound again,
 * are replaced by new ones in a new group (needs CAP_NET_RAW; what the old ring held is lost with it).
 */
static int rs_recover(struct backend *be, unsigned qi)
{
        struct rs_backend *rs = (struct rs_backend *)be;
        struct rs_queue *q = &rs->q[qi];
        int old_fd = q->fd, old_ifindex = q->ifindex;
        uint8_t *old_ring = q->ring;
        unsigned flags = 0, mtu = 0;
        int ifindex, r;

        pthread_mutex_lock(&rs->recover_lock);
        ifindex = (int)if_nametoindex(rs->cfg.ifname);
        r = ifindex ? backend_link_state(rs->cfg.ifname, &flags, &mtu) : -ENODEV;
        if (r < 0 || ifindex == q->ifindex)
                goto out;
        if (rs->cfg.mtu > mtu) {
                r = -EMSGSIZE; /* the guest may send frames the new interface refuses */
                goto out;
        }
        if (be->nqueues == 1) {
                struct sockaddr_ll sll = {
                        .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex};

                if (bind(q->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
                        r = -errno;
                        goto out;
                }
                q->ifindex = ifindex;
                if (rs->cfg.promisc)
                        r = add_promisc(q->fd, ifindex);
                goto out;
        }
        collect_kernel_drops(q); /* the old socket's count, before it is replaced */
        q->fd = -1;
        q->ring = NULL;
        r = open_queue(rs, q, ifindex);
        if (r < 0) {
                close_queue(q);
                q->fd = old_fd;
                q->ring = old_ring;
                q->ifindex = old_ifindex;
                goto out;
        }
        munmap(old_ring, q->ring_len); /* every ring of the port has the same size */
        close(old_fd);
        q->blk = 0;
        q->cur = NULL;
        q->left = 0;
        q->seg = 0;
        q->pending = 0; /* the old ring is gone */
        r = 1;
out:
        if (r >= 0 && !(flags & IFF_UP))
                r = -ENETDOWN;
        pthread_mutex_unlock(&rs->recover_lock);
        return r;
}

static uint64_t rs_kernel_drops(struct backend *be, unsigned qi)
{
        struct rs_queue *q = &((struct rs_backend *)be)->q[qi];

        collect_kernel_drops(q);
        return q->kernel_drops;
}

/* ---- upgrade handover ---- */

/* A queue's note: its receive cursor, so the next process reads on from the same packet (and GSO segment). */
#define NOTE_BLK(n) ((unsigned)((n)&0xff))
#define NOTE_HAS_CUR 0x100ull
#define NOTE_CONSUMED(n) ((uint32_t)(((n) >> 16) & 0xffffff))
#define NOTE_SEG(n) ((unsigned)(((n) >> 40) & 0xffff))
#define NOTE_LIVE (1ull << 63) /* the cursor is in the page handed over after the sockets */

static uint64_t queue_note(const struct rs_queue *q)
{
        uint64_t note = q->blk;

        if (q->cur)
                note |= NOTE_HAS_CUR | (uint64_t)(q->cur->hdr.bh1.num_pkts - q->left) << 16 |
                        (uint64_t)(q->seg & 0xffff) << 40;
        return note;
}

static void rs_rx_done(struct backend *be, unsigned qi)
{
        struct rs_backend *rs = (struct rs_backend *)be;
        struct rs_queue *q = &rs->q[qi];

        /* The cursor first: until it is stored, a crash must find the blocks it pointed into still ours. */
        __atomic_store_n(&rs->cursors[qi], queue_note(q), __ATOMIC_RELEASE);
        release_pending(q);
}

/* live: the sockets and the cursor page; each note says "in the page" (the workers move the cursors meanwhile). */
static int rs_handover_fds(struct backend *be, int *fds, unsigned max, uint64_t *notes, bool live)
{
        struct rs_backend *rs = (struct rs_backend *)be;
        int r = (int)be->nqueues;

        if (max < be->nqueues + 1)
                return -E2BIG;
        pthread_mutex_lock(&rs->recover_lock); /* a worker's recover() may be replacing a socket */
        for (unsigned i = 0; i < be->nqueues && r > 0; i++) {
                struct rs_queue *q = &rs->q[i];

                if (q->fd < 0) {
                        r = live ? -EOPNOTSUPP : -ENODEV; /* lost with its interface, not re-created yet */
                        break;
                }
                fds[i] = q->fd;
                if (!live)
                        release_pending(q);
                notes[i] = live ? NOTE_LIVE : queue_note(q);
        }
        pthread_mutex_unlock(&rs->recover_lock);
        if (r > 0 && live)
                fds[r++] = rs->cursor_fd;
        return r;
}

/* Maps q's ring from its socket and puts the cursor where notes says, checking it against the ring. */
static int adopt_queue(struct rs_queue *q, uint64_t note)
{
        struct sockaddr_ll sll;
        socklen_t len = sizeof(sll);
        struct tpacket_block_desc *bd;

        if (getsockname(q->fd, (struct sockaddr *)&sll, &len) < 0)
                return -errno;
        q->ifindex = sll.sll_ifindex;
        q->ring_len = (size_t)RS_BLOCK_SIZE * RS_BLOCK_NR;
        q->ring = mmap(NULL, q->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, 0);
        if (q->ring == MAP_FAILED) {
                q->ring = NULL;
                return -errno;
        }
        q->blk = NOTE_BLK(note);
        if (q->blk >= RS_BLOCK_NR)
                return -EBADMSG;
        if (!(note & NOTE_HAS_CUR))
                return 0;
        bd = (struct tpacket_block_desc *)(q->ring + (size_t)q->blk * RS_BLOCK_SIZE);
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) ||
            NOTE_CONSUMED(note) >= bd->hdr.bh1.num_pkts || bd->hdr.bh1.offset_to_first_pkt >= RS_BLOCK_SIZE)
                return -EBADMSG;
        q->cur = bd;
        q->left = bd->hdr.bh1.num_pkts - NOTE_CONSUMED(note);
        q->pkt = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
        for (uint32_t i = 0; i < NOTE_CONSUMED(note); i++) {
                uint32_t next = ((struct tpacket3_hdr *)q->pkt)->tp_next_offset;

                if (!next || next > RS_BLOCK_SIZE - (size_t)(q->pkt - (uint8_t *)bd))
                        return -EBADMSG;
                q->pkt += next;
        }
        q->seg = NOTE_SEG(note);
        return 0;
}

static int rs_adopt(const struct backend_cfg *cfg, unsigned nqueues, const int *fds, unsigned nfds,
                    const uint64_t *notes, struct backend **ret)
{
        struct rs_backend *rs = rs_alloc(cfg, nqueues);
        bool live = nqueues && (notes[0] & NOTE_LIVE);
        int ifindex, r;

        for (unsigned i = 0; i < nfds; i++) {
                if (rs && i < nqueues)
                        rs->q[i].fd = fds[i];
                else if (rs && live && i == nqueues)
                        rs->cursor_fd = fds[i];
                else
                        close(fds[i]);
        }
        if (!rs)
                return -ENOMEM;
        ifindex = (int)if_nametoindex(cfg->ifname);
        if (nfds != nqueues + live || !ifindex) {
                r = nfds != nqueues + live ? -EINVAL : -ENODEV;
                goto fail;
        }
        /* A live state's cursors are in the page; it goes on being ours (a new one after an upgrade). */
        if ((r = map_cursors(rs, rs->cursor_fd)) < 0)
                goto fail;
        for (unsigned i = 0; i < nqueues; i++) {
                uint64_t note = live ? __atomic_load_n(&rs->cursors[i], __ATOMIC_ACQUIRE) : notes[i];

                if ((live && !(notes[i] & NOTE_LIVE)) || (r = adopt_queue(&rs->q[i], note)) < 0) {
                        r = r < 0 ? r : -EBADMSG;
                        goto fail;
                }
                __atomic_store_n(&rs->cursors[i], note, __ATOMIC_RELEASE);
                if (rs->q[i].ifindex != ifindex) {
                        r = -EINVAL; /* bound to another interface than the configuration names */
                        goto fail;
                }
        }
        if (nqueues > 1) {
                int val;
                socklen_t len = sizeof(val);

                if (getsockopt(rs->q[0].fd, SOL_PACKET, PACKET_FANOUT, &val, &len) < 0) {
                        r = -errno;
                        goto fail;
                }
                rs->fanout = (struct fanout){.id = (unsigned)val & 0xffff, .flags = ((unsigned)val >> 16) & 0xff00};
                rs->fanout_ifindex = ifindex;
        }
        if ((r = backend_link_state(cfg->ifname, NULL, &rs->mtu)) < 0)
                goto fail;
        *ret = &rs->base;
        return 0;
fail:
        rs_close(&rs->base);
        return r;
}

const struct backend_ops backend_rawsock_ops = {
        .name = "rawsock",
        .max_features = BIT_ULL(VIRTIO_NET_F_CSUM) | BIT_ULL(VIRTIO_NET_F_HOST_TSO4) | BIT_ULL(VIRTIO_NET_F_HOST_TSO6) |
                        BIT_ULL(VIRTIO_NET_F_HOST_ECN) | BIT_ULL(VIRTIO_NET_F_GUEST_CSUM) |
                        BIT_ULL(VIRTIO_NET_F_GUEST_TSO4) | BIT_ULL(VIRTIO_NET_F_GUEST_TSO6) |
                        BIT_ULL(VIRTIO_NET_F_GUEST_ECN),
        .mtu_ceiling = 65535, /* ETH_MAX_MTU: a port carries what its interface does, up to this */
        .open = rs_open,
        .close = rs_close,
        .features = rs_features,
        .max_mtu = rs_max_mtu,
        .configure = rs_configure,
        .queue_fd = rs_queue_fd,
        .tx_burst = rs_tx_burst,
        .rx_burst = rs_rx_burst,
        .recover = rs_recover,
        .kernel_drops = rs_kernel_drops,
        .handover_fds = rs_handover_fds,
        .rx_done = rs_rx_done,
        .adopt = rs_adopt,
};
