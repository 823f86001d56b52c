// SPDX-License-Identifier: MIT
/*
 * port_vnet_check: a front-end (fakefe) for the port tests that checks what the virtio-net header says against
 * the frame it comes with, for ports that carry offloads (rawsock). One queue pair.
 *
 *   port_vnet_check rx SOCK COUNT MSS [offload]
 *     Receives COUNT IPv4 TCP/UDP frames. With "offload" the guest acks CSUM, GUEST_CSUM, GUEST_TSO4/6 and
 *     frames may come as GSO super-frames (gso_size must be MSS) or with a partial checksum (csum_start and
 *     csum_offset must point at the L4 checksum, and completing it must give the right checksum). Without,
 *     the guest acks no offload: every frame must carry a zero header, complete IP and L4 checksums and at
 *     most MSS bytes of payload. Other frames (not IPv4 TCP/UDP) are counted apart and ignored.
 *     Prints "ready" once the rings are up, then a summary; exit 0 when COUNT good frames and no bad one came.
 *
 *   port_vnet_check small SOCK COUNT BUF
 *     A guest without offloads and without MRG_RXBUF that posts BUF-byte receive buffers (virtio-net header
 *     included): receives COUNT IPv4 TCP/UDP frames, checked as above. A frame larger than a buffer must be
 *     dropped by the back-end: one that arrives cut short fails the IP length check and counts as bad.
 *     Prints "result: pass" (or fail) and stays connected for 30 s, so that the caller can read vhostd's
 *     counters of the connection; stop it then.
 *
 *   port_vnet_check tx SOCK COUNT MSS PAYLOAD DST_MAC SRC_IP DST_IP
 *     Acks CSUM and HOST_TSO4 and sends COUNT TCPv4 frames of PAYLOAD bytes with partial checksums: TSO
 *     frames (gso_size MSS) when PAYLOAD > MSS, plain ones otherwise; then waits until the back-end has used
 *     them all. The caller counts what came out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"
#include "tests/integration/inet_csum.h"

#define BUF_SIZE 16384
#define FRAME_MAX 70000
#define IDLE_MS 5000
#define HOLD_MS 30000

struct tally {
        unsigned long good, bad, other, gso, partial, segs;
};

/* Checks one frame against its header: 1 good, 0 not ours (not IPv4 TCP/UDP), -1 bad (*why). f may change. */
static int check(uint8_t *f, size_t len, const struct virtio_net_hdr *h, unsigned mss, bool offload, struct tally *t,
                 const char **why)
{
        unsigned ihl, proto, l4, l4len, coff;
        uint32_t pseudo;

#define BAD(msg)                                                                                                       \
        do {                                                                                                           \
                *why = msg;                                                                                            \
                return -1;                                                                                             \
        } while (0)
        if (len < 34 || get16(f + 12) != 0x0800 || (f[14] >> 4) != 4 || (f[23] != 6 && f[23] != 17))
                return 0;
        ihl = (f[14] & 0xfu) * 4;
        proto = f[23];
        l4 = 14 + ihl;
        if (ihl < 20 || l4 + (proto == 6 ? 20u : 8u) > len)
                BAD("short L4 header");
        if (get16(f + 16) != len - 14)
                BAD("IP total length differs from the frame");
        if (fold(sum16(f + 14, ihl, 0)) != 0xffff)
                BAD("bad IP header checksum");
        l4len = (unsigned)(len - l4);
        coff = proto == 6 ? 16 : 6;
        pseudo = sum16(f + 26, 8, 0) + proto + l4len;
        if (!offload && (h->flags || h->gso_type || h->csum_start || h->csum_offset || h->gso_size || h->hdr_len))
                BAD("non-zero header for a guest without offloads");
        if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
                uint16_t c;

                if (le16toh(h->csum_start) != l4 || le16toh(h->csum_offset) != coff)
                        BAD("csum_start/csum_offset do not point at the L4 checksum");
                c = (uint16_t)~fold(sum16(f + l4, l4len, 0));
                if (proto == 17 && !c)
                        c = 0xffff;
                put16(f + l4 + coff, c);
                t->partial++;
        }
        if (proto == 17 && !get16(f + l4 + 6))
                BAD("UDP without checksum");
        if (fold(sum16(f + l4, l4len, pseudo)) != 0xffff)
                BAD("bad L4 checksum");
        if (h->gso_type) {
                unsigned thl = proto == 6 ? (f[l4 + 12] >> 4) * 4u : 8u;
                if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
                        BAD("GSO frame without NEEDS_CSUM");
                if (proto != 6 || (h->gso_type & 0x7f) != VIRTIO_NET_HDR_GSO_TCPV4)
                        BAD("GSO type is not TCPv4");
                if (le16toh(h->gso_size) != mss)
                        BAD("gso_size is not the sender's MSS");
                t->gso++;
                t->segs += (l4len - thl + mss - 1) / mss;
        } else {
                unsigned payload = l4len - (proto == 6 ? (f[l4 + 12] >> 4) * 4u : 8u);
                if (payload > mss)
                        BAD("payload larger than the MSS without GSO");
                t->segs++;
        }
#undef BAD
        return 1;
}

/* rx_buf: the size of the receive buffers without MRG_RXBUF, or 0 for BUF_SIZE buffers with it. */
static int do_rx(const char *sock, unsigned long count, unsigned mss, bool offload, uint32_t rx_buf)
{
        static uint8_t frame[FRAME_MAX];
        uint64_t feat = FE_FEATURES_DEFAULT;
        struct fe_setup_opts o = {.buf_size = BUF_SIZE};

        if (rx_buf) {
                feat &= ~BIT_ULL(VIRTIO_NET_F_MRG_RXBUF);
                o.rx_buf_size = rx_buf;
        }
        struct tally t = {0};
        struct fe *fe;
        int r;

        if (offload)
                feat |= BIT_ULL(VIRTIO_NET_F_CSUM) | BIT_ULL(VIRTIO_NET_F_GUEST_CSUM) |
                        BIT_ULL(VIRTIO_NET_F_GUEST_TSO4) | BIT_ULL(VIRTIO_NET_F_GUEST_TSO6);
        o.features = feat;
        if ((r = fe_connect(sock, 10000, &fe)) < 0 || (r = fe_setup_ex(fe, &o)) < 0) {
                fprintf(stderr, "front-end setup: %s\n", strerror(-r));
                return 1;
        }
        if (offload && !(fe->acked_features & BIT_ULL(VIRTIO_NET_F_GUEST_TSO4))) {
                fprintf(stderr, "the port offers no GUEST_TSO4 (features 0x%llx)\n", (unsigned long long)fe->features);
                return 1;
        }
        printf("ready (acked 0x%llx)\n", (unsigned long long)fe->acked_features);
        fflush(stdout);
        while (t.good < count) {
                struct fe_rx_info info;
                const char *why = NULL;

                r = fe_ring_recv_wait(fe_rx(fe, 0), frame, sizeof(frame), &info, IDLE_MS);
                if (r == -ETIMEDOUT)
                        break;
                if (r < 0) {
                        fprintf(stderr, "recv: %s\n", strerror(-r));
                        return 1;
                }
                if (info.len > sizeof(frame)) {
                        t.bad++;
                        continue;
                }
                r = check(frame, info.len, &info.hdr.hdr, mss, offload, &t, &why);
                if (r > 0) {
                        t.good++;
                } else if (r == 0) {
                        t.other++;
                } else if (t.bad++ < 5) {
                        printf("bad frame (%zu bytes, flags %u, gso %u/%u, csum %u+%u): %s\n", info.len,
                               info.hdr.hdr.flags, info.hdr.hdr.gso_type, le16toh(info.hdr.hdr.gso_size),
                               le16toh(info.hdr.hdr.csum_start), le16toh(info.hdr.hdr.csum_offset), why);
                }
        }
        printf("received %lu good frames (%lu GSO, %lu with partial checksum, %lu segments), %lu bad, %lu other\n",
               t.good, t.gso, t.partial, t.segs, t.bad, t.other);
        if (rx_buf) {
                /* Stay connected (vhostd's counters are the connection's) until the caller has read them. */
                printf("result: %s\n", t.good == count && !t.bad ? "pass" : "fail");
                fflush(stdout);
                for (int i = 0; i < HOLD_MS / 100; i++)
                        usleep(100 * 1000);
        }
        fe_free(fe);
        return t.good == count && !t.bad ? 0 : 1;
}

static int do_tx(const char *sock, unsigned long count, unsigned mss, unsigned payload, const char *dst_mac,
                 const char *src_ip, const char *dst_ip)
{
        static uint8_t f[FRAME_MAX];
        struct fe_setup_opts o = {
                .buf_size = BUF_SIZE,
                .features = FE_FEATURES_DEFAULT | BIT_ULL(VIRTIO_NET_F_CSUM) | BIT_ULL(VIRTIO_NET_F_HOST_TSO4),
        };
        size_t len = 54 + payload;
        struct fe_ring *tx;
        struct fe *fe;
        unsigned long sent = 0;
        int64_t end;
        int r;

        if (len + 12 > BUF_SIZE || !mss)
                return 2;
        memset(f, 0, 54);
        if (sscanf(dst_mac, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]) != 6 ||
            inet_pton(AF_INET, src_ip, f + 26) != 1 || inet_pton(AF_INET, dst_ip, f + 30) != 1)
                return 2;
        memcpy(f + 6, "\x52\x54\x00\x12\x34\x56", 6);
        put16(f + 12, 0x0800);
        if ((r = fe_connect(sock, 10000, &fe)) < 0 || (r = fe_setup_ex(fe, &o)) < 0) {
                fprintf(stderr, "front-end setup: %s\n", strerror(-r));
                return 1;
        }
        if (!(fe->acked_features & BIT_ULL(VIRTIO_NET_F_HOST_TSO4))) {
                fprintf(stderr, "the port offers no HOST_TSO4 (features 0x%llx)\n", (unsigned long long)fe->features);
                return 1;
        }
        tx = fe_tx(fe, 0);
        for (end = fe_now_ms() + 20000; sent < count && fe_now_ms() < end;) {
                struct virtio_net_hdr h = {
                        .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                        .gso_type = payload > mss ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_NONE,
                        .hdr_len = htole16(54),
                        .gso_size = htole16(payload > mss ? (uint16_t)mss : 0),
                        .csum_start = htole16(34),
                        .csum_offset = htole16(16),
                };
                uint8_t *ip = f + 14, *th = f + 34;

                ip[0] = 0x45;
                put16(ip + 2, (uint16_t)(len - 14));
                put16(ip + 4, (uint16_t)sent);
                ip[6] = 0x40; /* DF, as TCP sends */
                ip[8] = 64;
                ip[9] = 6;
                put16(ip + 10, 0);
                put16(ip + 10, (uint16_t)~fold(sum16(ip, 20, 0)));
                put16(th, (uint16_t)(40000 + sent % 64));
                put16(th + 2, 9);
                put16(th + 4, (uint16_t)(sent >> 16));
                put16(th + 6, (uint16_t)sent);
                th[12] = 5 << 4;
                th[13] = 0x18;
                put16(th + 14, 65535);
                for (unsigned i = 0; i < payload; i++)
                        f[54 + i] = (uint8_t)(i + sent);
                put16(th + 16, fold(sum16(ip + 12, 8, 0) + 6 + (uint32_t)(len - 34)));
                r = fe_ring_post_tx(tx, f, len, &h, NULL);
                if (r == -ENOSPC) {
                        (void)fe_ring_notify(tx);
                        (void)fe_ring_wait(tx, 1, 100);
                        (void)fe_ring_reap(tx);
                        continue;
                }
                if (r < 0) {
                        fprintf(stderr, "post: %s\n", strerror(-r));
                        return 1;
                }
                sent++;
                if (sent % 16 == 0)
                        (void)fe_ring_notify(tx);
                (void)fe_ring_reap(tx);
        }
        (void)fe_ring_notify(tx);
        while (tx->num_free < tx->num && fe_now_ms() < end) {
                (void)fe_ring_wait(tx, 1, 100);
                (void)fe_ring_reap(tx);
        }
        unsigned inflight = (unsigned)(tx->num - tx->num_free);
        printf("sent %lu %s frames of %u bytes (mss %u), %u still in flight\n", sent,
               payload > mss ? "TSO" : "partial-checksum", payload, mss, inflight);
        fe_free(fe);
        return sent == count && !inflight ? 0 : 1;
}

int main(int argc, char **argv)
{
        if (argc >= 5 && !strcmp(argv[1], "rx"))
                return do_rx(argv[2], strtoul(argv[3], NULL, 0), (unsigned)strtoul(argv[4], NULL, 0),
                             argc > 5 && !strcmp(argv[5], "offload"), 0);
        if (argc == 5 && !strcmp(argv[1], "small")) {
                uint32_t buf = (uint32_t)strtoul(argv[4], NULL, 0);
                if (buf < 64 || buf > BUF_SIZE)
                        return 2;
                return do_rx(argv[2], strtoul(argv[3], NULL, 0), FRAME_MAX, false, buf);
        }
        if (argc == 9 && !strcmp(argv[1], "tx"))
                return do_tx(argv[2], strtoul(argv[3], NULL, 0), (unsigned)strtoul(argv[4], NULL, 0),
                             (unsigned)strtoul(argv[5], NULL, 0), argv[6], argv[7], argv[8]);
        fprintf(stderr,
                "usage: %s rx SOCK COUNT MSS [offload]\n"
                "       %s small SOCK COUNT BUF\n"
                "       %s tx SOCK COUNT MSS PAYLOAD DST_MAC SRC_IP DST_IP\n",
                argv[0], argv[0], argv[0]);
        return 2;
}
