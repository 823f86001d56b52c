// SPDX-License-Identifier: MIT
/*
 * afxdp: one AF_XDP socket per queue pair, on NIC queue start_queue + q of ifname, all of a port's sockets on
 * one UMEM (XDP_SHARED_UMEM; each socket has its own fill and completion rings). Queue pair q owns a fixed
 * slice of it, rx_ring + AX_TX_FRAMES frames: rx_ring frames are lent to the kernel through its fill ring for
 * receiving, the rest are its free list for sending. One copy per frame and direction: guest buffers -> UMEM frame on
 * tx, UMEM frame -> guest buffers on rx.
 *
 * The UMEM area is a memfd (MAP_SHARED), kept open in the backend, so that the pages can be handed to another
 * process (upgrade, issue #16). Its pages count as the process's RssShmem, not RssAnon.
 *
 * The XDP program is libxdp's default (it redirects each queue to the socket registered for it), loaded in
 * native (driver) or skb (generic) mode, or in auto mode native first and skb if the driver refuses. With
 * xsks_map set, no program is loaded: the sockets are put into that pinned XSKMAP, keyed by queue, so
 * vhostd needs neither CAP_BPF nor CAP_SYS_ADMIN.
 *
 * Offloads, guest -> port only (offloads = yes): the guest may leave checksums partial (VIRTIO_NET_F_CSUM)
 * and send TCP/UDP GSO frames up to 64 KiB (HOST_TSO4/6, ECN). A partial checksum goes to the kernel in the
 * frame's TX metadata (XDP_TXMD_FLAGS_CHECKSUM, Linux >= 6.8: the UMEM is registered with room for it before
 * each tx frame), or is completed here where the kernel has none; a GSO frame is cut into MSS-sized segments
 * with their own headers and checksums (backends/offload.c, shared with rawsock). Port -> guest frames carry no
 * checksum or GSO state (XDP gives none), and the guest gets a zeroed virtio-net header.
 *
 * Jumbo frames: when the MTU asked for, or the interface's, is larger than one UMEM frame holds (frame_size -
 * 256 - BACKEND_ETH_OVERHEAD), the sockets are bound with XDP_USE_SG (multi-buffer, Linux >= 6.6) and the XDP
 * program is loaded as frags-aware: a frame spans several UMEM frames, chained with XDP_PKT_CONTD, both ways,
 * up to MTU 9000 and the interface's MTU. Where the kernel or a zero-copy driver refuses, the port falls back to
 * one UMEM frame per frame if the MTU allows, and says so. open() fails with -EMSGSIZE when cfg->mtu is larger
 * than the port carries.
 *
 * Errors at open: -ENODEV no such interface, -EMSGSIZE MTU too large, -EINVAL (from the kernel) queue beyond
 * the interface's, -EPERM/-EACCES no permission, -EOPNOTSUPP zero-copy (or native mode) not supported.
 * libxdp and libbpf are silenced: backends do not log.
 *
 * need_wakeup is honoured: the fill ring is kicked with recvfrom() and the tx ring with sendto() only when
 * the kernel asks. In copy mode one sendto() moves a bounded batch, so the kick repeats while the kernel
 * answers EAGAIN. Completions are reclaimed at every tx burst.
 *
 * Upgrade (handover_fds/adopt): the new process gets the UMEM memfd, every socket and the XSKMAP, and maps the
 * same rings again (their producer and consumer indices live in the shared ring pages, so it goes on where the
 * old one stopped). Which frame is where needs no description: at a burst boundary every rx frame of a slice is
 * lent to the kernel (a burst gives back to the fill ring what it took from the rx ring), and the old process
 * waits until every tx frame has come back on the completion ring, so the new one starts with all of them free.
 * The XDP program stays attached to the interface; the new process holds only its map (for recover()).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include "backends/backend.h"
#include "backends/offload.h"
#include "backends/iov.h"
#include "backends/napi.h"
#include "backends/virtio_net.h"

/*
 * UMEM frames per queue pair, sized from its rings: the fill and rx rings hold every rx frame, the tx and
 * completion rings every tx frame, and no ring has a slot no frame can use. The rx frames are all the buffering
 * between the NIC and a worker that is late (1024 frames: 100 ms at 10 kpps, 20 ms at 50 kpps; 4096 in skb mode,
 * see AX_RX_RING_SKB; the kernel counts what it drops beyond that, see kernel_drops); sending needs few, as
 * completions come back at every burst and a burst is at most 256 frames. 2.5 MiB per queue pair with 2 KiB
 * frames, 5 MiB with 4 KiB (8.5 / 17 MiB in skb mode; the kernel pins it all).
 */
#define AX_RX_RING 1024
#define AX_TX_RING 256
#define AX_TX_FRAMES AX_TX_RING
/*
 * In skb mode the kernel's receive work runs in the sender's context, which no busy poller drives: with the
 * sender on the worker's core, each time the worker yields the CPU the sender may run a whole scheduler slice
 * (ms), longer than 1024 frames last. Measured on veth, port->guest at 0.5 to 2 Mpps offered: 1024 frames fell to
 * half the delivered rate as the load grew (the ring overflowing), 2048 levelled off losing 2-6 %, 4096 levelled
 * off with no loss. 8.5 MiB of UMEM per queue pair with 2 KiB frames instead of 2.5.
 */
#define AX_RX_RING_SKB 4096
#define AX_HEADROOM 256 /* XDP_PACKET_HEADROOM: where the kernel puts received frames in a UMEM frame */
#define AX_TXMD_LEN 24  /* sizeof(struct xsk_tx_metadata): before each tx frame's data, which starts there */
#define AX_KICKS_MAX 64 /* sendto() calls per burst in copy mode (each moves up to 32 frames) */
/* Preferred busy polling: how long a socket's or the worker's epoll polls the NAPI, and with what budget (at
 * most 64 without CAP_NET_ADMIN, which a worker may no longer have). */
#define AX_BUSY_POLL_US 20
#define AX_BUSY_POLL_BUDGET 64
/* ...and the interrupt deferral it needs of the NAPI: a busy poller that comes back within the flush timeout
 * keeps the device's receive work in the worker (measured on veth: delivery levels off under overload). */
#define AX_DEFER_HARD_IRQS 2
#define AX_GRO_FLUSH_TIMEOUT_NS 200000
#define AX_BUSY_RETRIES 100                       /* of 20 ms: a queue still held by sockets being released */
#define AX_GSO_MAX (65535 + BACKEND_ETH_OVERHEAD) /* a whole GSO frame from the guest, headers included */
#define AX_SG_MTU 9000 /* the largest MTU with multi-buffer, a frame spread over several UMEM frames */
#define AX_SG_FRAME_MAX (AX_SG_MTU + BACKEND_ETH_OVERHEAD)
#define AX_RX_FRAGS_MAX 18 /* descriptors of one received frame, at most (the kernel's MAX_SKB_FRAGS + 1) */
/* Linux >= 6.6, newer than Debian 12's headers: bind flag and descriptor option of multi-buffer AF_XDP. */
#define AX_USE_SG (1u << 4)
#define AX_PKT_CONTD (1u << 0) /* the frame goes on in the next descriptor */

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

/*
 * One registration of the area with the kernel (XDP_UMEM_REG). Sockets can share a registration only through a
 * socket bound with it (its first one, whose fd libxdp keeps as the UMEM's), so when the interface is deleted and
 * every socket unbound, the queues that recover register the same area again: the same pages, no new memory.
 */
struct ax_umem {
        int ifindex;    /* the interface its first socket was bound to */
        unsigned users; /* queue pairs whose socket uses it */
};

/* A ring of a socket, mapped by us (libxdp 1.3 cannot register a UMEM with TX metadata: we make the sockets). */
struct ax_map {
        void *addr;
        size_t len;
};

struct ax_queue {
        struct ax_umem *um;    /* the registration its socket uses; NULL without a socket */
        struct ax_map maps[4]; /* rx, tx, fill, completion rings, mapped by us */
        struct xsk_ring_prod fill;
        struct xsk_ring_cons comp;
        struct xsk_ring_cons rx;
        struct xsk_ring_prod tx;
        int fd;
        int ifindex;  /* the interface the socket is bound to */
        int kick_err; /* the last tx kick failed (link down): frames wait in the tx ring */
        unsigned hdr_len;
        bool tx_offload;             /* the guest acked CSUM: its frames may be partial or GSO */
        uint8_t *gso_buf;            /* a whole GSO frame, to cut into segments (with offloads) */
        uint8_t *seg_buf;            /* one segment of it larger than a UMEM frame (multi-buffer only) */
        uint64_t free[AX_TX_FRAMES]; /* tx frames of its slice not in flight */
        unsigned nfree;
        uint64_t gone_kernel_drops; /* counted by sockets recover() replaced */
};

struct ax_backend {
        struct backend base;
        struct backend_cfg cfg; /* to open a socket again when the interface is re-created */
        __u32 xdp_flags;        /* the XDP mode open() settled on */
        /* libxdp's default redirect program, attached by us (none with a pinned xsks_map) */
        struct xdp_program *prog;
        int prog_ifindex;
        int map_fd;                   /* its XSKMAP, owned by prog (or by us: own_map_fd) */
        bool own_map_fd;              /* adopted: the map fd handed over, without the program */
        pthread_mutex_t recover_lock; /* one queue at a time loads or finds the XDP program */
        unsigned frame_size;
        int area_fd;   /* the memfd behind area, kept for a handover to a new process */
        uint8_t *area; /* the UMEM: nqueues slices of rx_ring + AX_TX_FRAMES frames, queue pair q's at q * slice_len */
        size_t area_len;
        size_t slice_len;
        unsigned rx_ring;      /* entries of each rx and fill ring: the frames lent to the kernel for receiving */
        struct ax_umem *umems; /* nqueues slots: every registration in use (each has a socket) */
        unsigned max_frame;    /* largest Ethernet frame we send: the MTU, an Ethernet header and a VLAN tag */
        /* The registration reserves AX_TXMD_LEN bytes before each tx frame for its TX metadata (Linux >= 6.8):
         * a partial checksum goes to the kernel (XDP_TXMD_FLAGS_CHECKSUM) instead of being finished here. */
        bool txmd;
        /* Multi-buffer (XDP_USE_SG, Linux >= 6.6): a frame larger than a UMEM frame spans several, up to
         * AX_SG_MTU; without it max_frame is what one UMEM frame holds. */
        bool sg;
        /* Preferred busy polling (busy_poll, or auto in native mode): the worker runs the device's NAPI. */
        bool busy_poll;
        /* The NAPIs whose interrupt deferral open() set, with what they had before (restored at close). */
        struct napi_conf napi_saved[NAPI_LIST_MAX];
        unsigned napi_count;
        /* A child kept with CAP_NET_ADMIN that restores them (we may have dropped it by then). */
        struct napi_restorer napi_restorer;
        const char *napi_note; /* how busy polling goes, for details (a static string) */
        char details[320];     /* base.details */
        struct ax_queue q[];
};

static int silent_print(enum libxdp_print_level level, const char *fmt, va_list args)
{
        return 0;
}

static int silent_bpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
        return 0;
}

/* Received frames the kernel dropped on this socket: rx ring full, no fill-ring frame free, or too large. */
static uint64_t socket_kernel_drops(const struct ax_queue *q)
{
        struct xdp_statistics st;
        socklen_t len = sizeof(st);

        if (q->fd < 0 || getsockopt(q->fd, SOL_XDP, XDP_STATISTICS, &st, &len) < 0)
                return 0;
        return st.rx_dropped + st.rx_ring_full;
}

static void close_queue(struct ax_backend *ax, struct ax_queue *q)
{
        /* What the queue was configured with outlives its socket (recover() opens a new one). */
        unsigned hdr_len = q->hdr_len;
        bool tx_offload = q->tx_offload;
        uint8_t *gso_buf = q->gso_buf, *seg_buf = q->seg_buf;
        uint64_t kernel_drops = q->gone_kernel_drops + socket_kernel_drops(q);

        if (q->fd >= 0) {
                for (unsigned i = 0; i < 4; i++)
                        if (q->maps[i].addr)
                                munmap(q->maps[i].addr, q->maps[i].len);
                close(q->fd);
        }
        /* The registration goes with its last socket (the kernel keeps it while a socket uses it). */
        if (q->um && --q->um->users == 0)
                memset(q->um, 0, sizeof(*q->um));
        memset(q, 0, sizeof(*q));
        q->fd = -1;
        q->hdr_len = hdr_len;
        q->tx_offload = tx_offload;
        q->gso_buf = gso_buf;
        q->seg_buf = seg_buf;
        q->gone_kernel_drops = kernel_drops;
}

static uint64_t ax_kernel_drops(struct backend *be, unsigned qi)
{
        const struct ax_queue *q = &((struct ax_backend *)be)->q[qi];

        return q->gone_kernel_drops + socket_kernel_drops(q);
}

/*
 * The program attached to ifindex in this XDP mode when it is libxdp's default one: left by a vhostd that died or
 * could not detach it (the privileges to do so were dropped), or serving other queues. Its XSKMAP, with room for
 * our queues, is then as good as our own program's: we put our sockets in it and leave the program where it is.
 */
static int reuse_attached_prog(struct ax_backend *ax, int ifindex, __u32 xdp_flags, unsigned slots)
{
        struct bpf_prog_info info = {0};
        __u32 prog_id = 0, map_ids[8] = {0}, len = sizeof(info);
        int prog_fd, r;

        if (bpf_xdp_query_id(ifindex, (int)(xdp_flags & XDP_FLAGS_MODES), &prog_id) < 0 || !prog_id)
                return -EBUSY;
        if ((prog_fd = bpf_prog_get_fd_by_id(prog_id)) < 0)
                return -errno;
        info.nr_map_ids = 8;
        info.map_ids = (__u64)(uintptr_t)map_ids;
        r = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
        close(prog_fd);
        if (r < 0 || strcmp(info.name, "xsk_def_prog") || info.nr_map_ids > 8)
                return -EBUSY; /* someone else's program: not ours to use */
        for (unsigned i = 0; i < info.nr_map_ids; i++) {
                struct bpf_map_info mi = {0};
                int map_fd = bpf_map_get_fd_by_id(map_ids[i]);

                len = sizeof(mi);
                if (map_fd >= 0 && bpf_obj_get_info_by_fd(map_fd, &mi, &len) == 0 && mi.type == BPF_MAP_TYPE_XSKMAP &&
                    mi.max_entries >= slots) {
                        ax->map_fd = map_fd;
                        ax->own_map_fd = true;
                        ax->prog_ifindex = ifindex;
                        ax->base.degraded =
                                "libxdp's XDP program was attached already (left by an earlier vhostd): using it";
                        return 0;
                }
                if (map_fd >= 0)
                        close(map_fd);
        }
        return -EBUSY;
}

/*
 * Attaches libxdp's default program (redirect each queue to the socket in its XSKMAP slot) to ifindex. We do
 * it ourselves, not through xsk_socket__create(): libxdp 1.3 keeps a map fd open for every socket it deletes,
 * and a port whose interface comes and goes must not leak.
 */
static int attach_prog(struct ax_backend *ax, int ifindex, __u32 xdp_flags)
{
        enum xdp_attach_mode mode = (xdp_flags & XDP_FLAGS_SKB_MODE) ? XDP_MODE_SKB : XDP_MODE_NATIVE;
        unsigned slots = ax->cfg.start_queue + ax->base.nqueues;
        struct xdp_program *prog;
        struct bpf_map *map;
        int r;

        prog = xdp_program__find_file("xsk_def_xdp_prog.o", NULL, NULL);
        if ((r = (int)libxdp_get_error(prog)) < 0)
                prog = xdp_program__find_file("xsk_def_xdp_prog_5.3.o", NULL, NULL); /* kernels before 5.3 */
        if ((r = (int)libxdp_get_error(prog)) < 0)
                return r;
        map = bpf_object__find_map_by_name(xdp_program__bpf_obj(prog), "xsks_map");
        if (!map)
                r = -ENOENT;
        else if (slots > bpf_map__max_entries(map))
                r = bpf_map__set_max_entries(map, slots);
        /* Multi-buffer frames reach the socket only through a program that says it takes them (it just redirects). */
        if (r == 0)
                r = xdp_program__set_xdp_frags_support(prog, ax->sg);
        if (r == 0)
                r = xdp_program__attach(prog, ifindex, mode, 0);
        if (r < 0) {
                xdp_program__close(prog);
                return r == -EBUSY || r == -EEXIST ? reuse_attached_prog(ax, ifindex, xdp_flags, slots) : r;
        }
        ax->prog = prog;
        ax->prog_ifindex = ifindex;
        ax->map_fd = bpf_map__fd(map);
        return 0;
}

/* detach: false when the interface is gone (and the program with it). */
static void release_prog(struct ax_backend *ax, bool detach)
{
        if (ax->own_map_fd) {
                close(ax->map_fd);
                ax->map_fd = -1;
                ax->own_map_fd = false;
                ax->prog_ifindex = 0;
        }
        if (!ax->prog)
                return;
        if (detach)
                (void)xdp_program__detach(ax->prog, ax->prog_ifindex,
                                          (ax->xdp_flags & XDP_FLAGS_SKB_MODE) ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
        xdp_program__close(ax->prog);
        ax->prog = NULL;
        ax->prog_ifindex = 0;
        ax->map_fd = -1;
}

/*
 * The UMEM area: a memfd of area_len bytes, sealed at that size, mapped shared and populated (the kernel pins
 * every page at XDP_UMEM_REG anyway).
 */
static int map_area(struct ax_backend *ax)
{
        void *p = mmap(NULL, ax->area_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ax->area_fd, 0);

        if (p == MAP_FAILED)
                return -errno;
        ax->area = p;
        return 0;
}

static int alloc_area(struct ax_backend *ax)
{
        ax->area_fd = memfd_create("vhostd-afxdp-umem", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (ax->area_fd < 0)
                return -errno;
        if (ftruncate(ax->area_fd, (off_t)ax->area_len) < 0 ||
            fcntl(ax->area_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return -errno;
        return map_area(ax);
}

static void free_area(struct ax_backend *ax)
{
        if (ax->area)
                munmap(ax->area, ax->area_len);
        if (ax->area_fd >= 0)
                close(ax->area_fd);
        ax->area = NULL;
        ax->area_fd = -1;
}

/* The UMEM's layout for rx rings of rx_ring entries (a power of two). */
static void size_area(struct ax_backend *ax, unsigned rx_ring)
{
        ax->rx_ring = rx_ring;
        ax->slice_len = (size_t)(rx_ring + AX_TX_FRAMES) * ax->frame_size;
        ax->area_len = ax->base.nqueues * ax->slice_len;
}

/* A UMEM with the rx rings this XDP mode wants; an area made for another mode is given up first. */
static int area_for_mode(struct ax_backend *ax, __u32 xdp_flags)
{
        unsigned rx_ring = (xdp_flags & XDP_FLAGS_SKB_MODE) ? AX_RX_RING_SKB : AX_RX_RING;

        if (ax->area && ax->rx_ring == rx_ring)
                return 0;
        free_area(ax);
        size_area(ax, rx_ring);
        return alloc_area(ax);
}

static void ax_close(struct backend *be)
{
        struct ax_backend *ax = (struct ax_backend *)be;

        if (!ax)
                return;
        if (ax->napi_restorer.fd >= 0)
                napi_restorer_stop(&ax->napi_restorer, true);
        else /* no restorer could be made: this fails if we dropped CAP_NET_ADMIN meanwhile */
                for (unsigned i = 0; i < ax->napi_count; i++)
                        (void)napi_conf_set(&ax->napi_saved[i]);
        for (unsigned i = 0; i < be->nqueues; i++) {
                close_queue(ax, &ax->q[i]);
                free(ax->q[i].gso_buf);
                free(ax->q[i].seg_buf);
        }
        release_prog(ax, ax->prog_ifindex && ax->prog_ifindex == (int)if_nametoindex(ax->cfg.ifname));
        free_area(ax);
        free(ax->umems);
        pthread_mutex_destroy(&ax->recover_lock);
        free(ax);
}

/*
 * auto: busy polling where the frames come from a NAPI of the device (native mode). In skb mode the frames
 * reach the socket from wherever the kernel receives them (on veth the sender's own backlog), which no busy
 * poller can drive.
 */
static bool wants_busy_poll(const struct ax_backend *ax)
{
        return ax->cfg.busy_poll == BACKEND_BUSY_POLL_YES ||
               (ax->cfg.busy_poll == BACKEND_BUSY_POLL_AUTO && (ax->xdp_flags & XDP_FLAGS_DRV_MODE));
}

static int set_busy_poll(int fd)
{
        int one = 1, usecs = AX_BUSY_POLL_US, budget = AX_BUSY_POLL_BUDGET;

        if (setsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &usecs, sizeof(usecs)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)) < 0)
                return -errno;
        return 0;
}

static void kick_fill(struct ax_queue *q)
{
        if (xsk_ring_prod__needs_wakeup(&q->fill))
                (void)recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
}

/* Every tx frame of queue qi's slice (the frames after its rx frames) on its free list. */
static void free_all_tx(struct ax_backend *ax, unsigned qi)
{
        uint64_t first = (uint64_t)qi * ax->slice_len + (uint64_t)ax->rx_ring * ax->frame_size;

        for (unsigned i = 0; i < AX_TX_FRAMES; i++)
                ax->q[qi].free[i] = first + (uint64_t)i * ax->frame_size;
        ax->q[qi].nfree = AX_TX_FRAMES;
}

/* libxdp's ring fields (struct xsk_ring_prod and xsk_ring_cons have this same set). */
#define SET_RING(r, p, off, entries, producer_side)                                                                    \
        do {                                                                                                           \
                (r)->mask = (entries)-1;                                                                               \
                (r)->size = (entries);                                                                                 \
                (r)->producer = (__u32 *)((p) + (off)->producer);                                                      \
                (r)->consumer = (__u32 *)((p) + (off)->consumer);                                                      \
                (r)->flags = (__u32 *)((p) + (off)->flags);                                                            \
                (r)->ring = (p) + (off)->desc;                                                                         \
                (r)->cached_prod = __atomic_load_n((r)->producer, __ATOMIC_ACQUIRE);                                   \
                /* producer rings keep the consumer index plus the size (xsk_prod_nb_free()) */                        \
                (r)->cached_cons =                                                                                     \
                        __atomic_load_n((r)->consumer, __ATOMIC_ACQUIRE) + ((producer_side) ? (entries) : 0);          \
        } while (0)

/* Maps ring pgoff of q's socket (entries of entry_size bytes after off->desc) as q->maps[which]; NULL on failure. */
static uint8_t *map_ring(struct ax_queue *q, unsigned which, off_t pgoff, const struct xdp_ring_offset *off,
                         __u32 entries, size_t entry_size)
{
        size_t len = off->desc + entries * entry_size;
        uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, pgoff);

        if (p == MAP_FAILED)
                return NULL; /* EINVAL also when the ring is smaller than this build's */
        q->maps[which] = (struct ax_map){p, len};
        return p;
}

/* Maps the four rings of q's socket into libxdp's ring structs, where the kernel has them now. */
static int map_rings(struct ax_queue *q, unsigned rx_ring)
{
        struct xdp_mmap_offsets off;
        socklen_t optlen = sizeof(off);
        uint8_t *rx, *tx, *fill, *comp;

        if (getsockopt(q->fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen) < 0)
                return -errno;
        if (!(rx = map_ring(q, 0, XDP_PGOFF_RX_RING, &off.rx, rx_ring, sizeof(struct xdp_desc))) ||
            !(tx = map_ring(q, 1, XDP_PGOFF_TX_RING, &off.tx, AX_TX_RING, sizeof(struct xdp_desc))) ||
            !(fill = map_ring(q, 2, XDP_UMEM_PGOFF_FILL_RING, &off.fr, rx_ring, sizeof(__u64))) ||
            !(comp = map_ring(q, 3, XDP_UMEM_PGOFF_COMPLETION_RING, &off.cr, AX_TX_RING, sizeof(__u64))))
                return -errno;
        SET_RING(&q->rx, rx, &off.rx, rx_ring, false);
        SET_RING(&q->tx, tx, &off.tx, AX_TX_RING, true);
        SET_RING(&q->fill, fill, &off.fr, rx_ring, true);
        SET_RING(&q->comp, comp, &off.cr, AX_TX_RING, false);
        return 0;
}

/* struct xdp_umem_reg of Linux >= 6.8 (Debian 12's headers stop before tx_metadata_len). */
struct ax_umem_reg {
        __u64 addr, len;
        __u32 chunk_size, headroom, flags, tx_metadata_len;
};

#define AX_UMEM_TX_METADATA_LEN (1u << 2)

/*
 * Registers the area as a UMEM on fd, with room for TX metadata before each tx frame where the kernel has it
 * (older kernels refuse the flag or the field: registered then without, and partial checksums are finished
 * here).
 */
static int register_umem(struct ax_backend *ax, int fd)
{
        struct ax_umem_reg reg = {
                .addr = (__u64)(uintptr_t)ax->area,
                .len = ax->area_len,
                .chunk_size = ax->frame_size,
                .flags = AX_UMEM_TX_METADATA_LEN,
                .tx_metadata_len = AX_TXMD_LEN,
        };

        if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) == 0) {
                ax->txmd = true;
                return 0;
        }
        reg.flags = 0;
        reg.tx_metadata_len = 0;
        ax->txmd = false;
        return setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, offsetof(struct ax_umem_reg, flags) + 4) < 0 ? -errno : 0;
}

/*
 * Opens queue qi's socket and puts it into the XSKMAP map_fd. It shares the UMEM registration that already has
 * a socket on this interface, or registers the area anew (the first queue to open, or to recover after the
 * interface was re-created).
 *
 * Why sharing one UMEM between workers is safe without a lock: queue pair qi only ever lends, sends or takes
 * back frames of its own slice [qi * slice_len, (qi + 1) * slice_len). Its fill ring gets only addresses of that
 * slice, so the kernel fills only those frames for its rx ring (each socket takes rx frames from its own fill
 * ring); its tx ring carries only addresses of its free list, which the kernel returns on its own completion
 * ring. So no frame is ever written by one worker and read by another, and each ring has one worker on our
 * side. The shared state (the registration table and libxdp's UMEM object) changes only in open, close and
 * recover, the last under recover_lock.
 */
static int open_queue(struct ax_backend *ax, const struct backend_cfg *cfg, unsigned qi, int map_fd)
{
        struct ax_queue *q = &ax->q[qi];
        uint64_t base = (uint64_t)qi * ax->slice_len;
        struct ax_umem *um = NULL, *slot = NULL;
        struct sockaddr_xdp sxdp = {.sxdp_family = AF_XDP};
        int sizes[4][2] = {{XDP_UMEM_FILL_RING, (int)ax->rx_ring},
                           {XDP_UMEM_COMPLETION_RING, AX_TX_RING},
                           {XDP_RX_RING, (int)ax->rx_ring},
                           {XDP_TX_RING, AX_TX_RING}};
        int sibling = -1, r;
        __u32 idx, key = cfg->start_queue + qi;

        q->ifindex = (int)if_nametoindex(cfg->ifname);
        for (unsigned i = 0; i < ax->base.nqueues && !um; i++) {
                if (ax->umems[i].users && ax->umems[i].ifindex == q->ifindex)
                        um = &ax->umems[i];
                else if (!ax->umems[i].users && !slot)
                        slot = &ax->umems[i];
        }
        /* A socket of the registration in use, to share it (XDP_SHARED_UMEM): any of its sockets will do. */
        for (unsigned i = 0; um && i < ax->base.nqueues && sibling < 0; i++)
                if (i != qi && ax->q[i].um == um && ax->q[i].fd >= 0)
                        sibling = ax->q[i].fd;
        q->fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (q->fd < 0)
                return -errno;
        if (!um && (r = register_umem(ax, q->fd)) < 0)
                return r;
        for (unsigned i = 0; i < 4; i++)
                if (setsockopt(q->fd, SOL_XDP, sizes[i][0], &sizes[i][1], sizeof(sizes[i][1])) < 0)
                        return -errno;
        if ((r = map_rings(q, ax->rx_ring)) < 0)
                return r;
        /* With XDP_SHARED_UMEM the kernel takes copy/zero-copy and need_wakeup from the first socket. */
        sxdp.sxdp_ifindex = (__u32)q->ifindex;
        sxdp.sxdp_queue_id = key;
        if (um && sibling >= 0) {
                sxdp.sxdp_flags = XDP_SHARED_UMEM;
                sxdp.sxdp_shared_umem_fd = (__u32)sibling;
        } else {
                sxdp.sxdp_flags = XDP_USE_NEED_WAKEUP | (cfg->force_copy ? XDP_COPY : 0) |
                                  (cfg->zero_copy ? XDP_ZEROCOPY : 0) | (ax->sg ? AX_USE_SG : 0);
        }
        if (bind(q->fd, (struct sockaddr *)&sxdp, sizeof(sxdp)) < 0)
                return -errno;
        q->um = um ? um : slot;
        if (!um)
                *q->um = (struct ax_umem){.ifindex = q->ifindex};
        q->um->users++;

        /* Lend the rx frames to the kernel before the socket is in the map, so none arrives to an empty fill ring. */
        if (xsk_ring_prod__reserve(&q->fill, ax->rx_ring, &idx) != ax->rx_ring)
                return -ENOMEM;
        for (unsigned i = 0; i < ax->rx_ring; i++)
                *xsk_ring_prod__fill_addr(&q->fill, idx + i) = base + (uint64_t)i * ax->frame_size;
        xsk_ring_prod__submit(&q->fill, ax->rx_ring);
        free_all_tx(ax, qi);

        if (bpf_map_update_elem(map_fd, &key, &q->fd, 0) < 0)
                return -errno;
        if (wants_busy_poll(ax) && (r = set_busy_poll(q->fd)) < 0)
                return r;

        kick_fill(q);
        return 0;
}

/*
 * The XSKMAP the sockets go into: the operator's pinned one (a new fd, for the caller to close), or that of
 * the program we attach to ifindex in this XDP mode.
 */
static int get_map(struct ax_backend *ax, int ifindex, __u32 xdp_flags, bool *ret_pinned)
{
        int r;

        ax->xdp_flags = xdp_flags;
        *ret_pinned = ax->cfg.xsks_map[0] != 0;
        if (*ret_pinned) {
                r = bpf_obj_get(ax->cfg.xsks_map);
                return r < 0 ? -errno : r;
        }
        if ((ax->prog || ax->own_map_fd) && ax->prog_ifindex != ifindex)
                release_prog(ax, false); /* that interface is gone, and the program with it */
        if (ax->own_map_fd)
                return ax->map_fd; /* adopted: the program the old process attached is still there */
        if (!ax->prog && (r = attach_prog(ax, ifindex, xdp_flags)) < 0)
                return r;
        return ax->map_fd;
}

/* Opens every queue in this XDP mode (0: a pinned xsks_map); on failure closes what was opened. */
static int open_queues(struct ax_backend *ax, __u32 xdp_flags)
{
        bool pinned;
        int map_fd, r = area_for_mode(ax, xdp_flags);

        if (r < 0)
                return r;
        map_fd = get_map(ax, (int)if_nametoindex(ax->cfg.ifname), xdp_flags, &pinned);
        if (map_fd < 0)
                return map_fd;
        for (unsigned i = 0; i < ax->base.nqueues && r == 0; i++)
                r = open_queue(ax, &ax->cfg, i, map_fd);
        if (pinned)
                close(map_fd);
        if (r == 0)
                return 0;
        for (unsigned i = ax->base.nqueues; i-- > 0;)
                close_queue(ax, &ax->q[i]);
        release_prog(ax, true);
        return r;
}

/* The largest MTU one UMEM frame of frame_size holds (a received frame starts after the XDP headroom). */
static unsigned frame_max_mtu(unsigned frame_size)
{
        return frame_size - AX_HEADROOM - BACKEND_ETH_OVERHEAD;
}

/* The largest MTU the port carries with frames of frame_size, with multi-buffer or not, on an interface of if_mtu. */
static unsigned port_max_mtu(unsigned frame_size, bool sg, unsigned if_mtu)
{
        unsigned max_mtu = sg ? AX_SG_MTU : frame_max_mtu(frame_size);

        return if_mtu < max_mtu ? if_mtu : max_mtu;
}

/* What the port uses, logged when it opens: how frames map onto UMEM frames, who finishes checksums, polling. */
static void set_details(struct ax_backend *ax)
{
        char napis[64] = "";
        size_t len = 0;

        for (unsigned i = 0; i < ax->napi_count && len + 12 < sizeof(napis); i++)
                len += (size_t)snprintf(napis + len, sizeof(napis) - len, "%s%u", i ? "," : " ", ax->napi_saved[i].id);
        snprintf(ax->details, sizeof(ax->details), "%s; transmit checksums %s; %s%s",
                 ax->sg ? "multi-buffer: frames up to MTU 9000 over several UMEM frames"
                        : "one UMEM frame per frame", /* where multi-buffer was wanted, degraded says why not */
                 ax->txmd ? "to the kernel in TX metadata"
                          : "finished in software (no AF_XDP TX metadata here: Linux >= 6.8)",
                 ax->napi_note, napis);
        ax->base.details = ax->details;
}

/*
 * Busy polling needs the device's NAPIs to defer their interrupts to a timer while a poller keeps coming back:
 * without that the receive work stays in softirq, on whichever core the frames come in on (on veth, the
 * sender's), and under overload starves the worker there. Sets it on the NAPIs of our queues (where the
 * driver does not say which those are, on every NAPI of the device) and keeps what they had, for close.
 */
static const char *defer_interrupts(struct ax_backend *ax)
{
        int ifindex = (int)if_nametoindex(ax->cfg.ifname), r = 0;
        bool whole_device = false;
        unsigned n = 0;

        for (unsigned qi = 0; qi < ax->base.nqueues && r == 0; qi++) {
                struct napi_conf c;
                bool seen = false;

                r = napi_conf_get(ifindex, ax->cfg.start_queue + qi, &c);
                for (unsigned i = 0; r == 0 && i < n; i++)
                        seen |= ax->napi_saved[i].id == c.id;
                if (r == 0 && !seen && n < NAPI_LIST_MAX)
                        ax->napi_saved[n++] = c;
        }
        if (r == -ENOENT) {
                whole_device = true;
                r = napi_conf_list(ifindex, ax->napi_saved, NAPI_LIST_MAX);
                n = r > 0 ? (unsigned)r : 0;
        }
        if (r >= 0 && n == 0)
                r = -ENOENT;
        for (unsigned i = 0; r >= 0 && i < n; i++) {
                struct napi_conf want = {.id = ax->napi_saved[i].id,
                                         .defer_hard_irqs = AX_DEFER_HARD_IRQS,
                                         .gro_flush_timeout_ns = AX_GRO_FLUSH_TIMEOUT_NS,
                                         .irq_suspend_timeout_ns = ax->napi_saved[i].irq_suspend_timeout_ns};
                r = napi_conf_set(&want);
                ax->napi_count = r == 0 ? i + 1 : i;
        }
        if (ax->napi_count)
                (void)napi_restorer_start(&ax->napi_restorer, ax->napi_saved, ax->napi_count);
        if (r >= 0)
                return whole_device ? "preferred busy polling, interrupts deferred (2 polls, 200 us) on every NAPI "
                                      "of the device (the driver does not say which serves a queue):"
                                    : "preferred busy polling, interrupts deferred (2 polls, 200 us) on the NAPI of "
                                      "its queues:";
        if (r == -EOPNOTSUPP)
                return "busy polling without interrupt deferral (no per-NAPI settings here: Linux >= 6.13): "
                       "receive work stays in softirq";
        if (r == -EPERM)
                return "busy polling without interrupt deferral (no CAP_NET_ADMIN to set it): receive work stays "
                       "in softirq";
        return "busy polling without interrupt deferral (no NAPI of the device found): receive work stays in "
               "softirq";
}

/* A backend without sockets or UMEM yet; NULL when out of memory. */
static struct ax_backend *ax_new(const struct backend_cfg *cfg, unsigned nqueues, unsigned frame_size, unsigned max_mtu)
{
        struct ax_backend *ax = calloc(1, sizeof(*ax) + nqueues * sizeof(struct ax_queue));

        if (!ax)
                return NULL;
        ax->base.ops = &backend_afxdp_ops;
        ax->base.nqueues = nqueues;
        ax->cfg = *cfg;
        ax->map_fd = -1;
        ax->napi_restorer.fd = -1;
        pthread_mutex_init(&ax->recover_lock, NULL);
        ax->frame_size = frame_size;
        ax->area_fd = -1;
        ax->max_frame = max_mtu + BACKEND_ETH_OVERHEAD;
        for (unsigned i = 0; i < nqueues; i++) {
                ax->q[i].fd = -1;
                ax->q[i].hdr_len = sizeof(struct virtio_net_hdr_mrg);
        }
        for (unsigned i = 0; cfg->offloads && i < nqueues; i++)
                if (!(ax->q[i].gso_buf = malloc(AX_GSO_MAX)) || !(ax->q[i].seg_buf = malloc(AX_SG_FRAME_MAX))) {
                        ax_close(&ax->base);
                        return NULL;
                }
        libxdp_set_print(silent_print);
        libbpf_set_print(silent_bpf_print);
        ax->umems = calloc(nqueues, sizeof(*ax->umems));
        if (!ax->umems) {
                ax_close(&ax->base);
                return NULL;
        }
        return ax;
}

/*
 * open_queues() in this XDP mode, retrying for a while on EBUSY: the kernel frees the UMEM binding of sockets
 * that were closed (an earlier instance's, or ours that failed) later, in deferred work.
 */
static int open_queues_retrying(struct ax_backend *ax, __u32 xdp_flags)
{
        int r = -EBUSY;

        for (unsigned t = 0; t < AX_BUSY_RETRIES && r == -EBUSY; t++) {
                if (t)
                        (void)nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
                r = open_queues(ax, xdp_flags);
        }
        return r;
}

/* Opens every queue in the XDP mode asked for (auto: native, else skb). */
static int open_in_mode(struct ax_backend *ax)
{
        const struct backend_cfg *cfg = &ax->cfg;
        int r;

        if (cfg->xsks_map[0])
                return open_queues(ax, 0);
        if (cfg->xdp_mode == BACKEND_XDP_SKB)
                return open_queues_retrying(ax, XDP_FLAGS_SKB_MODE);
        r = open_queues_retrying(ax, XDP_FLAGS_DRV_MODE);
        /* auto: a driver without XDP refuses native mode; generic mode always works, but never zero-copy. */
        if (r < 0 && cfg->xdp_mode == BACKEND_XDP_AUTO && !cfg->zero_copy && r != -ENODEV && r != -EPERM &&
            r != -EACCES)
                r = open_queues_retrying(ax, XDP_FLAGS_SKB_MODE);
        return r;
}

static int ax_open(const struct backend_cfg *cfg, unsigned nqueues, struct backend **ret)
{
        unsigned frame_size = cfg->frame_size, max_mtu, single_mtu, if_mtu = 0;
        struct ax_backend *ax;
        bool sg;
        int r;

        if (!cfg->ifname[0] || nqueues == 0 || (frame_size && frame_size != 2048 && frame_size != 4096) ||
            (cfg->zero_copy && cfg->force_copy))
                return -EINVAL;
        r = backend_link_state(cfg->ifname, NULL, &if_mtu);
        if (r < 0)
                return r;
        /* auto: half the memory when the guest's MTU (1500 unless set) fits a 2 KiB frame */
        if (!frame_size)
                frame_size = (cfg->mtu ? cfg->mtu : 1500) <= frame_max_mtu(2048) ? 2048 : 4096;
        /* Multi-buffer only where a frame may not fit one UMEM frame: the MTU asked for or the interface's. */
        sg = (cfg->mtu ? cfg->mtu : 1500) > frame_max_mtu(frame_size) || if_mtu > frame_max_mtu(frame_size);
        max_mtu = port_max_mtu(frame_size, sg, if_mtu);
        single_mtu = port_max_mtu(frame_size, false, if_mtu);
        if (cfg->mtu > max_mtu)
                return -EMSGSIZE;
        if (!(ax = ax_new(cfg, nqueues, frame_size, max_mtu)))
                return -ENOMEM;
        ax->sg = sg;
        r = open_in_mode(ax);
        if (r < 0 && sg && (r == -EINVAL || r == -EOPNOTSUPP) && cfg->mtu <= single_mtu) {
                /* A kernel (< 6.6) or zero-copy driver without multi-buffer: one UMEM frame per frame. */
                ax->sg = false;
                ax->max_frame = single_mtu + BACKEND_ETH_OVERHEAD;
                if (open_in_mode(ax) == 0) {
                        r = 0;
                        ax->base.degraded = "no multi-buffer AF_XDP (Linux >= 6.6, and for zero-copy a driver with "
                                            "it): the MTU is capped at what one UMEM frame holds";
                }
        }
        if (r < 0)
                goto fail;
        ax->busy_poll = wants_busy_poll(ax);
        ax->napi_note = ax->busy_poll ? defer_interrupts(ax) : "busy polling off";
        ax->base.epoll_busy_poll_us = ax->busy_poll ? AX_BUSY_POLL_US : 0;
        set_details(ax);
        *ret = &ax->base;
        return 0;
fail:
        ax_close(&ax->base);
        return r;
}

static uint64_t ax_features(const struct backend *be)
{
        return ((const struct ax_backend *)be)->cfg.offloads ? backend_afxdp_ops.max_features : 0;
}

static unsigned ax_max_mtu(const struct backend *be)
{
        return ((const struct ax_backend *)be)->max_frame - BACKEND_ETH_OVERHEAD;
}

static int ax_configure(struct backend *be, unsigned q, uint64_t acked, unsigned hdr_len)
{
        struct ax_backend *ax = (struct ax_backend *)be;

        if (hdr_len < sizeof(struct virtio_net_hdr))
                return -EINVAL;
        ax->q[q].hdr_len = hdr_len;
        ax->q[q].tx_offload = ax->cfg.offloads && (acked & BIT_ULL(VIRTIO_NET_F_CSUM));
        return 0;
}

static int ax_queue_fd(const struct backend *be, unsigned q)
{
        return ((const struct ax_backend *)be)->q[q].fd;
}

/* ---- guest -> port ---- */

static void reclaim(const struct ax_backend *ax, struct ax_queue *q)
{
        __u32 idx, n = xsk_ring_cons__peek(&q->comp, AX_TX_RING, &idx);

        /* The frame itself: with TX metadata its data started AX_TXMD_LEN bytes in (frame sizes are powers of 2). */
        for (__u32 i = 0; i < n; i++)
                q->free[q->nfree++] = *xsk_ring_cons__comp_addr(&q->comp, idx + i) & ~(uint64_t)(ax->frame_size - 1);
        if (n)
                xsk_ring_cons__release(&q->comp, n);
}

/* Asks the kernel to send what the tx ring holds; returns 0 or a -errno worth reporting. */
static int kick_tx(struct ax_queue *q)
{
        if (!xsk_ring_prod__needs_wakeup(&q->tx))
                return 0;
        for (unsigned i = 0; i < AX_KICKS_MAX; i++) {
                if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
                        return 0;
                if (errno == EINTR)
                        continue;
                /* EAGAIN: copy mode sent a batch and has more (or the driver queue is full); EBUSY: same. */
                if (errno != EAGAIN && errno != EBUSY)
                        return -errno;
                if (xsk_prod_nb_free(&q->tx, AX_TX_RING) == AX_TX_RING)
                        return 0; /* drained */
        }
        return 0;
}

/* A tx descriptor for the UMEM frame at addr holding len bytes; the caller reserved it at *idx. */
static void put_desc(struct ax_queue *q, __u32 *idx, uint64_t addr, size_t len, __u32 options)
{
        struct xdp_desc *d = xsk_ring_prod__tx_desc(&q->tx, (*idx)++);

        d->addr = addr;
        d->len = (__u32)len;
        d->options = options;
}

/* struct xsk_tx_metadata of Linux >= 6.8, as far as a checksum request goes. */
struct ax_txmd {
        __u64 flags;
        __u16 csum_start, csum_offset;
        __u32 pad;
        __u64 launch_time;
};
#define AX_TXMD_FLAGS_CHECKSUM (1u << 1)
#define AX_TX_METADATA (1u << 1) /* xdp_desc options: metadata precedes the data */

/* Where queue q's next tx frame's data goes: after the room for its TX metadata, when the registration has it. */
static uint64_t take_tx_frame(struct ax_backend *ax, struct ax_queue *q)
{
        return q->free[--q->nfree] + (ax->txmd ? AX_TXMD_LEN : 0);
}

/* Bytes of a frame one UMEM frame carries on transmit. */
static size_t tx_chunk(const struct ax_backend *ax)
{
        return ax->frame_size - (ax->txmd ? AX_TXMD_LEN : 0);
}

/* UMEM frames (and descriptors) a frame of len bytes takes: more than one only with multi-buffer. */
static unsigned tx_descs(const struct ax_backend *ax, size_t len)
{
        return (unsigned)((len + tx_chunk(ax) - 1) / tx_chunk(ax));
}

/*
 * Puts a frame of len bytes on the tx ring at *idx, copied from lin, or from f's buffers after the guest's header
 * when lin is NULL, over tx_descs(len) UMEM frames chained with XDP_PKT_CONTD; md, when not NULL, is the first
 * one's TX metadata. The caller has checked the free frames and reserved the descriptors. Returns the first
 * frame's data (in the UMEM).
 */
static uint8_t *put_frame(struct ax_backend *ax, struct ax_queue *q, __u32 *idx, const uint8_t *lin,
                          const struct frame *f, size_t len, const struct ax_txmd *md)
{
        size_t chunk = tx_chunk(ax), off = 0;
        uint8_t *first = NULL;

        do {
                size_t n = len - off < chunk ? len - off : chunk;
                uint64_t addr = take_tx_frame(ax, q);
                uint8_t *p = ax->area + addr;
                __u32 options = off + n < len ? AX_PKT_CONTD : 0;

                if (lin)
                        memcpy(p, lin + off, n);
                else
                        iov_to_buf(f->iov, f->iovcnt, q->hdr_len + off, p, n);
                if (!off) {
                        first = p;
                        if (md) {
                                memcpy(p - AX_TXMD_LEN, md, sizeof(*md));
                                options |= AX_TX_METADATA;
                        }
                }
                put_desc(q, idx, addr, n, options);
                off += n;
        } while (off < len);
        return first;
}

/*
 * Cuts the GSO frame f (len bytes after the guest's header, described by vh) into segments of one UMEM frame
 * each, or several with multi-buffer. Returns the descriptors used (0: a frame that cannot be cut, dropped), or
 * -ENOBUFS / -EAGAIN when there are not enough free frames or descriptors for all its segments (then nothing was
 * used).
 */
static int tx_gso(struct ax_backend *ax, struct ax_queue *q, const struct frame *f, size_t len,
                  const struct virtio_net_hdr *vh)
{
        size_t chunk = tx_chunk(ax);
        unsigned descs = 0;
        struct gso_info g;
        __u32 idx;

        if (len > AX_GSO_MAX)
                return 0;
        iov_to_buf(f->iov, f->iovcnt, q->hdr_len, q->gso_buf, len);
        if (!gso_parse(q->gso_buf, len, vh, &g) || g.hdrs + g.mss > ax->max_frame)
                return 0; /* unparsable, or segments larger than the port carries: as the kernel, drop it */
        for (unsigned i = 0; i < g.nseg; i++) {
                size_t off = g.hdrs + (size_t)i * g.mss;

                descs += tx_descs(ax, g.hdrs + (len - off < g.mss ? len - off : g.mss));
        }
        if (q->nfree < descs)
                return -ENOBUFS;
        if (xsk_ring_prod__reserve(&q->tx, descs, &idx) != descs)
                return -EAGAIN;
        for (unsigned i = 0; i < g.nseg; i++) {
                size_t off = g.hdrs + (size_t)i * g.mss, seglen = len - off < g.mss ? len - off : g.mss;

                if (g.hdrs + seglen <= chunk) { /* built in its UMEM frame */
                        uint64_t addr = take_tx_frame(ax, q);
                        uint8_t *p = ax->area + addr;

                        memcpy(p, q->gso_buf, g.hdrs);
                        memcpy(p + g.hdrs, q->gso_buf + off, seglen);
                        gso_segment_headers(p, &g, i, p + g.hdrs, (unsigned)seglen);
                        put_desc(q, &idx, addr, g.hdrs + seglen, 0);
                } else { /* built aside, then spread over UMEM frames */
                        memcpy(q->seg_buf, q->gso_buf, g.hdrs);
                        memcpy(q->seg_buf + g.hdrs, q->gso_buf + off, seglen);
                        gso_segment_headers(q->seg_buf, &g, i, q->seg_buf + g.hdrs, (unsigned)seglen);
                        (void)put_frame(ax, q, &idx, q->seg_buf, NULL, g.hdrs + seglen, NULL);
                }
        }
        return (int)descs;
}

/*
 * Puts frame f on the tx ring: returns the descriptors used (0: dropped), -EMSGSIZE when it is too big for
 * the port (the worker drops it), -ENOBUFS / -EAGAIN when out of frames / descriptors (not taken).
 */
static int tx_frame(struct ax_backend *ax, struct ax_queue *q, const struct frame *f)
{
        struct virtio_net_hdr vh = {0};
        size_t len = f->len - q->hdr_len;
        const uint8_t *lin = NULL;
        struct ax_txmd md;
        bool soft_csum = false, with_md = false;
        unsigned descs;
        uint8_t *p;
        __u32 idx;

        if (f->len < q->hdr_len + 14)
                return -EMSGSIZE;
        if (q->tx_offload)
                iov_to_buf(f->iov, f->iovcnt, 0, &vh, sizeof(vh));
        if (q->tx_offload && vh.gso_type != VIRTIO_NET_HDR_GSO_NONE)
                return tx_gso(ax, q, f, len, &vh);
        if (len > ax->max_frame)
                return -EMSGSIZE;
        descs = tx_descs(ax, len);
        if (q->nfree < descs)
                return -ENOBUFS;
        if (xsk_ring_prod__reserve(&q->tx, descs, &idx) != descs)
                return -EAGAIN;
        /*
         * A partial checksum goes to the kernel in the frame's TX metadata (it finishes it, or the device does),
         * or is finished here without; one that points outside the frame goes as it is.
         */
        if (q->tx_offload && (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
                if (ax->txmd && (size_t)vh.csum_start + vh.csum_offset + 2 <= len) {
                        md = (struct ax_txmd){.flags = AX_TXMD_FLAGS_CHECKSUM,
                                              .csum_start = vh.csum_start,
                                              .csum_offset = vh.csum_offset};
                        with_md = true;
                } else if (descs == 1) {
                        soft_csum = true; /* in its UMEM frame */
                } else {
                        iov_to_buf(f->iov, f->iovcnt, q->hdr_len, q->gso_buf, len);
                        (void)csum_complete(q->gso_buf, len, &vh);
                        lin = q->gso_buf;
                }
        }
        p = put_frame(ax, q, &idx, lin, f, len, with_md ? &md : NULL);
        if (soft_csum)
                (void)csum_complete(p, len, &vh);
        return (int)descs;
}

static int ax_tx_burst(struct backend *be, unsigned qi, const struct frame *frames, unsigned n)
{
        struct ax_backend *ax = (struct ax_backend *)be;
        struct ax_queue *q = &ax->q[qi];
        unsigned taken = 0, descs = 0;
        int r = 0;

        if (q->fd < 0)
                return -ENODEV; /* closed by a recovery that failed: the worker's next recover() retries */
        if (q->kick_err) {
                /* The link was down at the last kick: the frames waiting in the ring go first. */
                if ((r = kick_tx(q)) < 0)
                        return r;
                q->kick_err = 0;
        }
        reclaim(ax, q);
        if (!q->nfree) {
                (void)kick_tx(q);
                reclaim(ax, q);
                if (!q->nfree)
                        return -ENOBUFS; /* every frame in flight: try again shortly */
        }
        /* Only frames that fit go; the first that does not is the worker's to drop. */
        for (; taken < n; taken++) {
                r = tx_frame(ax, q, &frames[taken]);
                if (r < 0)
                        break;
                descs += (unsigned)r;
        }
        if (descs)
                xsk_ring_prod__submit(&q->tx, descs);
        if (!taken) {
                if (r == -EAGAIN || r == -ENOBUFS)
                        (void)kick_tx(q); /* the ring is full: POLLOUT when the kernel consumed it */
                return r;
        }
        if (!descs)
                return (int)taken; /* only dropped frames: nothing to send */
        /*
         * A kick that fails with the link down (ENETDOWN) leaves the frames in the ring: they are taken, and the
         * next burst kicks again first. Unbound (ENXIO: the interface is gone), the ring goes with the socket:
         * the frames stay the worker's, for the socket recover() makes.
         */
        r = kick_tx(q);
        if (r == -ENXIO)
                return r;
        q->kick_err = r;
        return (int)taken;
}

/* ---- port -> guest ---- */

/*
 * Gives the guest up to budget frames. With multi-buffer a frame comes as several descriptors, all but the last
 * with XDP_PKT_CONTD, and goes to the guest as one (one chain, or mergeable buffers): a frame whose descriptors
 * are not all in the ring yet waits for the next burst.
 */
static int ax_rx_burst(struct backend *be, unsigned qi, struct rx_sink *sink, unsigned budget)
{
        static const struct virtio_net_hdr zero_vh;
        struct ax_backend *ax = (struct ax_backend *)be;
        struct ax_queue *q = &ax->q[qi];
        __u32 idx, fidx, n, done = 0, used = 0, frames = 0;

        if (q->fd < 0)
                return -ENODEV;
        /* Preferred busy polling: the device's receive work runs here, at the worker's pace, not in softirq (the
         * same recvfrom() is the fill ring's wakeup, so an empty ring needs no second one). */
        if (ax->busy_poll)
                (void)recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
        n = xsk_ring_cons__peek(&q->rx, budget + (ax->sg ? AX_RX_FRAGS_MAX : 0), &idx);
        if (!n) {
                if (!ax->busy_poll)
                        kick_fill(q);
                return 0;
        }
        while (used < n && frames < budget) {
                __u32 end = used;
                size_t total = q->hdr_len;
                const struct xdp_desc *d;
                const struct iovec *iov;
                unsigned iovcnt;
                int r;

                do {
                        d = xsk_ring_cons__rx_desc(&q->rx, idx + end++);
                        total += d->len;
                } while ((d->options & AX_PKT_CONTD) && end < n);
                if (d->options & AX_PKT_CONTD)
                        break; /* the rest of this frame is not in the ring yet */
                r = sink->reserve(sink, total, &iov, &iovcnt);
                if (r == -ENOBUFS || r == -EIO)
                        break; /* keep this frame and the rest for later */
                if (r == 0) {
                        size_t off = q->hdr_len;

                        iov_from_buf(iov, iovcnt, 0, &zero_vh, sizeof(zero_vh));
                        for (__u32 i = used; i < end; i++) {
                                d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
                                iov_from_buf(iov, iovcnt, off, xsk_umem__get_data(ax->area, d->addr), d->len);
                                off += d->len;
                        }
                        sink->commit(sink, total);
                        done++;
                } /* else -EMSGSIZE: too big for the guest, dropped and counted by the sink */
                frames++;
                used = end;
        }
        if (used < n)
                xsk_ring_cons__cancel(&q->rx, n - used);
        if (!used)
                return (int)done;
        /* Give the frames back to the kernel: the fill ring has room for every rx frame. */
        if (xsk_ring_prod__reserve(&q->fill, used, &fidx) == used) {
                for (__u32 i = 0; i < used; i++) {
                        uint64_t addr = xsk_ring_cons__rx_desc(&q->rx, idx + i)->addr;
                        *xsk_ring_prod__fill_addr(&q->fill, fidx + i) = addr - addr % ax->frame_size;
                }
                xsk_ring_prod__submit(&q->fill, used);
        }
        xsk_ring_cons__release(&q->rx, used);
        kick_fill(q);
        return (int)done;
}

/* ---- upgrade ---- */

/* A queue's note: what the new process must agree on to use the same rings and frames, and the interface. */
#define NOTE_XDP_FLAGS(n) ((__u32)((n)&0x7f))
#define NOTE_SG (1ull << 7) /* the sockets are bound with XDP_USE_SG (multi-buffer) */
#define NOTE_FRAME_SHIFT(n) ((unsigned)(((n) >> 8) & 0xff))
#define NOTE_RX_SHIFT(n) ((unsigned)(((n) >> 16) & 0xff))
#define NOTE_TX_SHIFT(n) ((unsigned)(((n) >> 24) & 0x7f))
#define NOTE_TXMD (1ull << 31) /* the registration has room for TX metadata (an older vhostd refuses the note) */
#define NOTE_IFINDEX(n) ((int)((n) >> 32))
#define AX_TX_DRAIN_MS 200

static uint64_t make_note(const struct ax_backend *ax, const struct ax_queue *q)
{
        return (ax->txmd ? NOTE_TXMD : 0) | (ax->sg ? NOTE_SG : 0) | (uint64_t)(ax->xdp_flags & 0x7f) |
               (uint64_t)__builtin_ctz(ax->frame_size) << 8 | (uint64_t)__builtin_ctz(ax->rx_ring) << 16 |
               (uint64_t)__builtin_ctz(AX_TX_RING) << 24 | (uint64_t)(uint32_t)q->ifindex << 32;
}

/* fds: the UMEM memfd, each queue's socket, then the XSKMAP when we attached the program. */
static int ax_handover_fds(struct backend *be, int *fds, unsigned max, uint64_t *notes, bool live)
{
        struct ax_backend *ax = (struct ax_backend *)be;
        unsigned n = 0;

        if (live)
                return -EOPNOTSUPP; /* which frames of the UMEM are where lives in this process */

        if (max < be->nqueues + 2)
                return -E2BIG;
        for (unsigned i = 0; i < be->nqueues; i++)
                if (ax->q[i].fd < 0 || ax->q[i].ifindex != ax->q[0].ifindex)
                        return -ENODEV; /* lost with its interface, not re-created yet */
        /* Every tx frame back on the free list, so that the new process knows them all free. */
        for (unsigned t = 0;; t++) {
                unsigned busy = 0;

                for (unsigned i = 0; i < be->nqueues; i++) {
                        struct ax_queue *q = &ax->q[i];

                        if (q->nfree < AX_TX_FRAMES) {
                                (void)kick_tx(q);
                                reclaim(ax, q);
                                busy += q->nfree < AX_TX_FRAMES;
                        }
                }
                if (!busy)
                        break;
                if (t == AX_TX_DRAIN_MS)
                        return -EBUSY; /* frames the kernel does not send (link down): they would be lost */
                (void)nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
        }
        /* The next process keeps busy polling with the deferral as we leave it, and cannot restore it (it runs
         * unprivileged): our restorer goes, leaving the NAPIs as they are. */
        napi_restorer_stop(&ax->napi_restorer, false);
        ax->napi_count = 0;
        fds[n++] = ax->area_fd;
        for (unsigned i = 0; i < be->nqueues; i++) {
                fds[n++] = ax->q[i].fd;
                notes[i] = make_note(ax, &ax->q[i]);
        }
        if (ax->map_fd >= 0)
                fds[n++] = ax->map_fd;
        return (int)n;
}

static int adopt_queue(struct ax_backend *ax, unsigned qi, uint64_t note)
{
        struct ax_queue *q = &ax->q[qi];
        int r = map_rings(q, ax->rx_ring);

        if (r < 0)
                return r;
        q->ifindex = NOTE_IFINDEX(note);
        free_all_tx(ax, qi);
        return 0;
}

static int ax_adopt(const struct backend_cfg *cfg, unsigned nqueues, const int *fds, unsigned nfds,
                    const uint64_t *notes, struct backend **ret)
{
        unsigned frame_size = nqueues ? 1u << (NOTE_FRAME_SHIFT(notes[0]) & 31) : 0, if_mtu = 0;
        struct ax_backend *ax = NULL;
        struct stat st;
        int r = -EINVAL;

        /* The same rings and frames as the old process, or nothing: each slice's layout depends on them. */
        for (unsigned i = 0; i < nqueues; i++)
                if (notes[i] != notes[0] ||
                    (NOTE_RX_SHIFT(notes[i]) != (unsigned)__builtin_ctz(AX_RX_RING) &&
                     NOTE_RX_SHIFT(notes[i]) != (unsigned)__builtin_ctz(AX_RX_RING_SKB)) ||
                    NOTE_TX_SHIFT(notes[i]) != (unsigned)__builtin_ctz(AX_TX_RING))
                        goto fail;
        if (!nqueues || (nfds != nqueues + 1 && nfds != nqueues + 2) || (frame_size != 2048 && frame_size != 4096))
                goto fail;
        if (backend_link_state(cfg->ifname, NULL, &if_mtu) < 0)
                if_mtu = UINT32_MAX; /* gone: recover() finds it again, with its MTU */
        if (!(ax = ax_new(cfg, nqueues, frame_size, port_max_mtu(frame_size, notes[0] & NOTE_SG, if_mtu)))) {
                r = -ENOMEM;
                goto fail;
        }
        ax->xdp_flags = NOTE_XDP_FLAGS(notes[0]);
        size_area(ax, 1u << NOTE_RX_SHIFT(notes[0]));
        ax->txmd = notes[0] & NOTE_TXMD;
        ax->sg = notes[0] & NOTE_SG;
        /* The sockets keep their busy-poll options, the NAPIs the deferral the old process set (and restores
         * no more: what they had before is not handed over). */
        ax->busy_poll = wants_busy_poll(ax);
        ax->napi_note = ax->busy_poll ? "preferred busy polling (interrupt deferral as the first process left it)"
                                      : "busy polling off";
        ax->base.epoll_busy_poll_us = ax->busy_poll ? AX_BUSY_POLL_US : 0;
        set_details(ax);
        ax->area_fd = fds[0];
        for (unsigned i = 0; i < nqueues; i++)
                ax->q[i].fd = fds[1 + i];
        if (nfds == nqueues + 2) {
                ax->map_fd = fds[nqueues + 1];
                ax->own_map_fd = true;
                ax->prog_ifindex = NOTE_IFINDEX(notes[0]);
        }
        nfds = 0; /* ax_close() closes them from here on */
        if (fstat(ax->area_fd, &st) < 0 || (size_t)st.st_size != ax->area_len) {
                r = -EINVAL; /* a UMEM of another size: other queue counts or frames */
                goto fail;
        }
        if ((r = map_area(ax)) < 0)
                goto fail;
        /* One registration, made by the first socket; the others share it (XDP_SHARED_UMEM). */
        ax->umems[0] = (struct ax_umem){.ifindex = NOTE_IFINDEX(notes[0]), .users = nqueues};
        for (unsigned i = 0; i < nqueues; i++) {
                ax->q[i].um = &ax->umems[0];
                if ((r = adopt_queue(ax, i, notes[i])) < 0)
                        goto fail;
        }
        *ret = &ax->base;
        return 0;
fail:
        for (unsigned i = 0; i < nfds; i++)
                close(fds[i]);
        if (ax)
                ax_close(&ax->base);
        return r;
}

/* ---- faults ---- */

/*
 * Link down and up: the socket stays bound; frames flow again by themselves. Interface deleted: the kernel
 * unbinds the socket for good (and the XDP program goes with the device). Once an interface of that name
 * exists again, the queue gets a new socket there (on the registration of the area a queue that recovered
 * before made, or on a new one, see struct ax_umem), in the XDP mode open() settled on: libxdp loads
 * its program again, or the socket goes into the pinned xsks_map, which the operator's loader must have
 * attached again. Needs CAP_NET_RAW (and CAP_BPF, CAP_NET_ADMIN without xsks_map).
 */
static int ax_recover(struct backend *be, unsigned qi)
{
        struct ax_backend *ax = (struct ax_backend *)be;
        struct ax_queue *q = &ax->q[qi];
        unsigned flags = 0, mtu = 0;
        bool pinned = false;
        int ifindex, map_fd, r;

        pthread_mutex_lock(&ax->recover_lock);
        ifindex = (int)if_nametoindex(ax->cfg.ifname);
        r = ifindex ? backend_link_state(ax->cfg.ifname, &flags, &mtu) : -ENODEV;
        if (r < 0 || (ifindex == q->ifindex && q->fd >= 0))
                goto out;
        if (mtu + BACKEND_ETH_OVERHEAD < ax->max_frame) {
                r = -EMSGSIZE; /* the guest may send frames the new interface refuses */
                goto out;
        }
        close_queue(ax, q);
        if ((r = map_fd = get_map(ax, ifindex, ax->xdp_flags, &pinned)) < 0)
                goto out;
        r = open_queue(ax, &ax->cfg, qi, map_fd);
        if (pinned)
                close(map_fd);
        if (r < 0)
                close_queue(ax, q);
        else
                r = 1;
out:
        if (r >= 0 && !(flags & IFF_UP))
                r = -ENETDOWN;
        pthread_mutex_unlock(&ax->recover_lock);
        return r;
}

const struct backend_ops backend_afxdp_ops = {
        .name = "afxdp",
        .max_features = BIT_ULL(VIRTIO_NET_F_CSUM) | BIT_ULL(VIRTIO_NET_F_HOST_TSO4) | BIT_ULL(VIRTIO_NET_F_HOST_TSO6) |
                        BIT_ULL(VIRTIO_NET_F_HOST_ECN),
        /* the largest UMEM frame, less the XDP headroom, the Ethernet header and a VLAN tag */
        .mtu_ceiling = AX_SG_MTU,
        .open = ax_open,
        .close = ax_close,
        .features = ax_features,
        .max_mtu = ax_max_mtu,
        .configure = ax_configure,
        .queue_fd = ax_queue_fd,
        .tx_burst = ax_tx_burst,
        .rx_burst = ax_rx_burst,
        .recover = ax_recover,
        .kernel_drops = ax_kernel_drops,
        .handover_fds = ax_handover_fds,
        .adopt = ax_adopt,
};
