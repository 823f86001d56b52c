// SPDX-License-Identifier: MIT
/*
 * pktsend: a paced AF_PACKET traffic source for the port tests and the benchmarks (the kernel has no pktgen
 * here, and xdp-trafficgen does not load). Sends Ethernet/IPv4 UDP or TCP frames out of IFNAME with
 * sendmmsg, spread over FLOWS source ports so that a hash (multi-queue veth, packet fanout) sees several.
 *
 *   pktsend -i IF (-n COUNT | -T SECONDS) [-r PPS] [-s FRAME_BYTES] [-f FLOWS] [-b BATCH] [-B] [-P]
 *           [-t] [-c] [-g MSS] [-x] [-u | -X skb|native] [-d DST_MAC] [-S SRC_IP] [-D DST_IP]
 *
 * -n sends COUNT frames, -T sends for SECONDS (or until SIGTERM). -P builds one batch of frames up front and
 * sends it over and over: the fastest source, for benchmarks (frames repeat); otherwise every frame is built
 * fresh (IP id and payload from its index). -B sets PACKET_QDISC_BYPASS. -t TCP instead of UDP (to a closed
 * port: no connection is needed). -c leaves the L4 checksum to the receiver (virtio-net header NEEDS_CSUM:
 * the frame travels as CHECKSUM_PARTIAL). -g MSS sends each frame as one GSO super-frame whose payload is
 * FRAME_BYTES (TCPv4 or UDP_L4 GSO; implies -c). Without -c the checksums are complete; -x makes every L4
 * checksum wrong (a control: the receiver must notice). -u: IF is an existing tap device and the frames are
 * written into it, a batch per io_uring submission as vhostd's tap port does (-u -u: one writev each), so
 * they enter the host as if a guest sent them.
 * -X MODE sends through an AF_XDP socket on queue 0 of IF in that XDP mode (copy, need_wakeup), as the
 * afxdp back-end does: one kick per batch (-P only: the batch is copied into the UMEM once).
 * Prints "sent=N secs=T pps=R errors=E" (errors: sends
 * refused for lack of buffer space, retried); exits 0 when every frame asked for with -n went.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if_tun.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <liburing.h>
#include <sys/mman.h>
#include <xdp/xsk.h>

#include "backends/virtio_net.h"
#include "tests/integration/inet_csum.h"

#define BATCH_MAX 256
#define MAX_FRAME 65536

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

struct opts {
        const char *ifname;
        unsigned long count; /* 0: until secs have passed */
        double secs, pps;
        unsigned size, flows, batch;
        bool bypass, prebuilt, tcp, partial, corrupt;
        unsigned tap;         /* 1: io_uring batches, 2: a writev per frame */
        const char *xdp_mode; /* NULL: AF_PACKET */
        unsigned mss;
        uint8_t dst_mac[6];
        struct in_addr src_ip, dst_ip;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Builds frame i into buf (after a virtio-net header in hdr); returns the frame length. */
static size_t build(const struct opts *o, const uint8_t *src_mac, unsigned long i, struct virtio_net_hdr *hdr,
                    uint8_t *buf)
{
        unsigned l4hl = o->tcp ? 20 : 8, hl = 14 + 20 + l4hl;
        size_t len = o->mss ? hl + o->size : (o->size < hl ? hl : o->size);
        unsigned l4len = (unsigned)(len - 34);
        uint8_t *ip = buf + 14, *l4 = ip + 20;
        uint16_t sport = (uint16_t)(1024 + i % o->flows);
        uint32_t pseudo;

        memcpy(buf, o->dst_mac, 6);
        memcpy(buf + 6, src_mac, 6);
        put16(buf + 12, ETH_P_IP);
        memset(ip, 0, 20);
        ip[0] = 0x45;
        put16(ip + 2, (uint16_t)(len - 14));
        put16(ip + 4, (uint16_t)i);
        ip[8] = 64;
        ip[9] = o->tcp ? IPPROTO_TCP : IPPROTO_UDP;
        memcpy(ip + 12, &o->src_ip, 4);
        memcpy(ip + 16, &o->dst_ip, 4);
        put16(ip + 10, (uint16_t)~fold(sum16(ip, 20, 0)));
        for (size_t k = hl; k < len; k++)
                buf[k] = (uint8_t)(k * 7 + i);
        memset(l4, 0, l4hl);
        put16(l4, sport);
        put16(l4 + 2, 9);
        if (o->tcp) {
                put16(l4 + 4, (uint16_t)(i >> 16));
                put16(l4 + 6, (uint16_t)i);
                l4[12] = 5 << 4;
                l4[13] = 0x18; /* PSH ACK */
                put16(l4 + 14, 65535);
        } else {
                put16(l4 + 4, (uint16_t)l4len);
        }
        pseudo = sum16(ip + 12, 8, 0) + ip[9] + l4len;
        memset(hdr, 0, sizeof(*hdr));
        if (o->partial || o->mss) {
                hdr->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
                hdr->csum_start = 34;
                hdr->csum_offset = o->tcp ? 16 : 6;
                put16(l4 + (o->tcp ? 16 : 6), fold(pseudo));
        } else {
                uint16_t c = (uint16_t)~fold(sum16(l4, l4len, pseudo));
                if (!o->tcp && !c)
                        c = 0xffff;
                if (o->corrupt)
                        c ^= 0x5555;
                put16(l4 + (o->tcp ? 16 : 6), c);
        }
        if (o->mss) {
                hdr->gso_type = o->tcp ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_UDP_L4;
                hdr->gso_size = (uint16_t)o->mss;
                hdr->hdr_len = (uint16_t)hl;
        }
        return len;
}

static int parse_mac(const char *s, uint8_t *mac)
{
        return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) == 6
                       ? 0
                       : -1;
}

static void sleep_s(double s)
{
        struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
        nanosleep(&ts, NULL);
}

/* Frames to send next: the whole batch, or fewer to stay on the pace (small batches when paced slowly, so
 * frames do not leave in clumps). Sleeps until the next frame is due. */
static unsigned next_burst(const struct opts *o, unsigned long sent, double start)
{
        unsigned n = o->batch;

        if (o->count && o->count - sent < n)
                n = (unsigned)(o->count - sent);
        if (o->pps > 0) {
                double due = start + (double)sent / o->pps, t = now_s();
                unsigned per_ms = (unsigned)(o->pps / 1000);

                if (due > t)
                        sleep_s(due - t);
                if (per_ms < n)
                        n = per_ms ? per_ms : 1;
        }
        return n;
}

/* Only offloads need the virtio-net header in front of each frame. */
static bool vnet_hdr(const struct opts *o)
{
        return o->partial || o->mss;
}

/* Attaches to the tap device o->ifname; frames come from a made-up guest MAC. */
static int open_tap(const struct opts *o, uint8_t *src_mac)
{
        static const uint8_t guest_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
        struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
        int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

        if (fd < 0) {
                perror("pktsend: /dev/net/tun");
                return -1;
        }
        if (vnet_hdr(o))
                ifr.ifr_flags |= IFF_VNET_HDR;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o->ifname);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
                perror(o->ifname);
                close(fd);
                return -1;
        }
        memcpy(src_mac, guest_mac, 6);
        return fd;
}

/* A tap takes one frame per write: the batch goes out as that many writes, in one io_uring submission when
 * ring is set up. */
static int tap_send(int fd, struct io_uring *ring, struct mmsghdr *msgs, unsigned n)
{
        unsigned k, went = 0, head, seen = 0;
        struct io_uring_cqe *cqe;

        if (!ring) {
                for (k = 0; k < n; k++)
                        if (writev(fd, msgs[k].msg_hdr.msg_iov, (int)msgs[k].msg_hdr.msg_iovlen) < 0)
                                break;
                return k ? (int)k : -1;
        }
        for (k = 0; k < n; k++)
                io_uring_prep_writev(io_uring_get_sqe(ring), fd, msgs[k].msg_hdr.msg_iov,
                                     (unsigned)msgs[k].msg_hdr.msg_iovlen, 0);
        if (io_uring_submit_and_wait(ring, n) < 0)
                return -1;
        while (seen < n) {
                unsigned got = 0;
                io_uring_for_each_cqe(ring, head, cqe)
                {
                        went += cqe->res > 0;
                        got++;
                }
                io_uring_cq_advance(ring, got);
                seen += got;
                if (seen < n && io_uring_wait_cqe(ring, &cqe) < 0)
                        break;
        }
        errno = ENOBUFS;
        return went ? (int)went : -1;
}

static int open_socket(const struct opts *o, uint8_t *src_mac);

/* AF_XDP: a UMEM holding the prebuilt batch once (frame k at k * XSK_FRAME), and a tx-only socket. */
#define XSK_FRAME 4096u
#define XSK_RING 2048u
struct xsk_tx {
        struct xsk_umem *umem;
        struct xsk_socket *xsk;
        struct xsk_ring_prod fill, tx;
        struct xsk_ring_cons comp, rx;
        void *area;
        unsigned batch, in_flight;
        uint32_t len[BATCH_MAX];
};

static int open_xsk(const struct opts *o, struct xsk_tx *x, uint8_t *src_mac)
{
        struct xsk_umem_config ucfg = {.fill_size = XSK_RING, .comp_size = XSK_RING, .frame_size = XSK_FRAME};
        struct xsk_socket_config scfg = {
                .tx_size = XSK_RING,
                .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD, /* sending needs no XDP program */
                .xdp_flags = strcmp(o->xdp_mode, "skb") ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE,
                .bind_flags = XDP_USE_NEED_WAKEUP | XDP_COPY,
        };
        size_t len = (size_t)XSK_RING * XSK_FRAME;
        int r;

        x->area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (x->area == MAP_FAILED) {
                perror("pktsend: mmap");
                return -1;
        }
        if ((r = xsk_umem__create(&x->umem, x->area, len, &x->fill, &x->comp, &ucfg)) < 0 ||
            (r = xsk_socket__create(&x->xsk, o->ifname, 0, x->umem, NULL, &x->tx, &scfg)) < 0) {
                fprintf(stderr, "pktsend: AF_XDP socket on %s (%s mode): %s\n", o->ifname, o->xdp_mode, strerror(-r));
                return -1;
        }
        int mac_fd = open_socket(&(struct opts){.ifname = o->ifname}, src_mac); /* for the MAC only */
        if (mac_fd < 0)
                return -1;
        close(mac_fd);
        return xsk_socket__fd(x->xsk);
}

/* Puts batch frames on the tx ring (as many as are free) and kicks the kernel when it asks. */
static int xsk_send(struct xsk_tx *x, unsigned n)
{
        uint32_t idx, done;
        unsigned k;

        done = xsk_ring_cons__peek(&x->comp, XSK_RING, &idx);
        if (done) {
                xsk_ring_cons__release(&x->comp, done);
                x->in_flight -= done;
        }
        if (n > XSK_RING - x->in_flight)
                n = XSK_RING - x->in_flight;
        if (n && xsk_ring_prod__reserve(&x->tx, n, &idx) == n) {
                for (k = 0; k < n; k++) {
                        struct xdp_desc *d = xsk_ring_prod__tx_desc(&x->tx, idx + k);
                        d->addr = (uint64_t)(k % x->batch) * XSK_FRAME;
                        d->len = x->len[k % x->batch];
                        d->options = 0;
                }
                xsk_ring_prod__submit(&x->tx, n);
                x->in_flight += n;
        } else {
                n = 0;
        }
        if (xsk_ring_prod__needs_wakeup(&x->tx) && sendto(xsk_socket__fd(x->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 &&
            errno != EAGAIN && errno != EBUSY && errno != ENOBUFS)
                return -1;
        if (!n)
                errno = ENOBUFS;
        return n ? (int)n : -1;
}

static int open_socket(const struct opts *o, uint8_t *src_mac)
{
        struct ifreq ifr = {0};
        struct sockaddr_ll sll = {.sll_family = AF_PACKET}; /* protocol 0: send only, never receives */
        int fd, one = 1;

        fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                perror("pktsend: socket");
                return -1;
        }
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o->ifname);
        if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
                perror(o->ifname);
                goto fail;
        }
        memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
        sll.sll_ifindex = (int)if_nametoindex(o->ifname);
        if ((vnet_hdr(o) && setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0) ||
            bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
                perror("pktsend: PACKET_VNET_HDR/bind");
                goto fail;
        }
        if (o->bypass && setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0)
                perror("pktsend: PACKET_QDISC_BYPASS, ignoring");
        return fd;
fail:
        close(fd);
        return -1;
}

int main(int argc, char **argv)
{
        static struct virtio_net_hdr hdrs[BATCH_MAX];
        static struct iovec iov[BATCH_MAX][2];
        static struct mmsghdr msgs[BATCH_MAX];
        struct opts o = {.size = 64, .flows = 16, .batch = 32};
        uint8_t src_mac[6], *bufs;
        unsigned long sent = 0, errors = 0;
        double start, t;
        int c, fd;

        memset(o.dst_mac, 0xff, 6);
        inet_pton(AF_INET, "10.199.0.1", &o.src_ip);
        inet_pton(AF_INET, "10.199.0.2", &o.dst_ip);
        while ((c = getopt(argc, argv, "i:n:T:r:s:f:b:BPtcg:xuX:d:S:D:")) != -1) {
                switch (c) {
                case 'i':
                        o.ifname = optarg;
                        break;
                case 'n':
                        o.count = strtoul(optarg, NULL, 0);
                        break;
                case 'T':
                        o.secs = strtod(optarg, NULL);
                        break;
                case 'r':
                        o.pps = strtod(optarg, NULL);
                        break;
                case 's':
                        o.size = (unsigned)strtoul(optarg, NULL, 0);
                        break;
                case 'f':
                        o.flows = (unsigned)strtoul(optarg, NULL, 0);
                        break;
                case 'b':
                        o.batch = (unsigned)strtoul(optarg, NULL, 0);
                        break;
                case 'B':
                        o.bypass = true;
                        break;
                case 'P':
                        o.prebuilt = true;
                        break;
                case 't':
                        o.tcp = true;
                        break;
                case 'c':
                        o.partial = true;
                        break;
                case 'g':
                        o.mss = (unsigned)strtoul(optarg, NULL, 0);
                        break;
                case 'x':
                        o.corrupt = true;
                        break;
                case 'u':
                        o.tap++;
                        break;
                case 'X':
                        o.xdp_mode = optarg;
                        break;
                case 'd':
                        if (parse_mac(optarg, o.dst_mac) < 0)
                                goto usage;
                        break;
                case 'S':
                        if (inet_pton(AF_INET, optarg, &o.src_ip) != 1)
                                goto usage;
                        break;
                case 'D':
                        if (inet_pton(AF_INET, optarg, &o.dst_ip) != 1)
                                goto usage;
                        break;
                default:
                        goto usage;
                }
        }
        if (!o.ifname || !o.flows || o.size + 64 > MAX_FRAME || !o.batch || o.batch > BATCH_MAX ||
            !o.count == !(o.secs > 0) || (o.xdp_mode && (!o.prebuilt || o.tap || vnet_hdr(&o))))
                goto usage;

        static struct xsk_tx xsk;
        static struct io_uring ring;
        struct io_uring *tap_ring = NULL;
        if (o.xdp_mode) {
                fd = open_xsk(&o, &xsk, src_mac);
                xsk.batch = o.batch;
        } else {
                fd = o.tap ? open_tap(&o, src_mac) : open_socket(&o, src_mac);
        }
        if (fd >= 0 && o.tap == 1) {
                int r = io_uring_queue_init(BATCH_MAX, &ring, 0);
                if (r < 0) {
                        fprintf(stderr, "pktsend: io_uring: %s\n", strerror(-r));
                        return 1;
                }
                tap_ring = &ring;
        }
        if (fd < 0)
                return 1;
        bufs = malloc((size_t)o.batch * MAX_FRAME);
        if (!bufs) {
                perror("pktsend: malloc");
                return 1;
        }
        for (unsigned k = 0; k < o.batch; k++) {
                iov[k][0] = (struct iovec){.iov_base = &hdrs[k], .iov_len = sizeof(hdrs[k])};
                iov[k][1] = (struct iovec){.iov_base = bufs + (size_t)k * MAX_FRAME};
                msgs[k].msg_hdr = vnet_hdr(&o) ? (struct msghdr){.msg_iov = iov[k], .msg_iovlen = 2}
                                               : (struct msghdr){.msg_iov = &iov[k][1], .msg_iovlen = 1};
                if (o.prebuilt)
                        iov[k][1].iov_len = build(&o, src_mac, k, &hdrs[k], iov[k][1].iov_base);
                if (o.xdp_mode) {
                        memcpy((uint8_t *)xsk.area + (size_t)k * XSK_FRAME, iov[k][1].iov_base, iov[k][1].iov_len);
                        xsk.len[k] = (uint32_t)iov[k][1].iov_len;
                }
        }
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        start = now_s();
        while (!stop && (o.count ? sent < o.count : now_s() - start < o.secs)) {
                unsigned n = next_burst(&o, sent, start);
                int r;

                for (unsigned k = 0; k < n && !o.prebuilt; k++)
                        iov[k][1].iov_len = build(&o, src_mac, sent + k, &hdrs[k], iov[k][1].iov_base);
                r = o.xdp_mode ? xsk_send(&xsk, n) : o.tap ? tap_send(fd, tap_ring, msgs, n) : sendmmsg(fd, msgs, n, 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == ENOBUFS || errno == EAGAIN) {
                                errors++;
                                sleep_s(10e-6);
                                continue;
                        }
                        perror("pktsend: sendmmsg");
                        break;
                }
                sent += (unsigned)r;
        }
        t = now_s() - start;
        printf("sent=%lu secs=%.3f pps=%.0f errors=%lu\n", sent, t, t > 0 ? (double)sent / t : 0.0, errors);
        free(bufs);
        if (o.xdp_mode)
                xsk_socket__delete(xsk.xsk); /* closes fd */
        else
                close(fd);
        return !o.count || sent == o.count ? 0 : 1;
usage:
        fprintf(stderr,
                "usage: %s -i IF (-n COUNT | -T SECONDS) [-r PPS] [-s BYTES] [-f FLOWS] [-b BATCH] [-B] [-P] [-t] "
                "[-c] [-g MSS] [-x] [-u | -X skb|native] [-d MAC] [-S IP] [-D IP]\n",
                argv[0]);
        return 2;
}
