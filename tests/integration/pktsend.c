// SPDX-License-Identifier: MIT
/*
 * pktsend: a paced AF_PACKET sender for the port tests (the kernel has no pktgen here, and xdp-trafficgen
 * does not load). Sends COUNT Ethernet/IPv4 UDP or TCP frames out of IFNAME with sendmmsg, spread over FLOWS
 * source ports so a hash fanout sees several flows.
 *
 *   pktsend -i IF -n COUNT [-r PPS] [-s FRAME_BYTES] [-f FLOWS] [-t] [-c] [-g MSS] [-x]
 *           [-d DST_MAC] [-S SRC_IP] [-D DST_IP]
 *
 * -t TCP instead of UDP (to a closed port: no connection is needed). -c leaves the L4 checksum to the
 * receiver (virtio-net header NEEDS_CSUM: the frame travels as CHECKSUM_PARTIAL). -g MSS sends each frame
 * as one GSO super-frame whose payload is FRAME_BYTES (TCPv4 or UDP_L4 GSO; implies -c). Without -c the
 * checksums are complete; -x makes every L4 checksum wrong (a control: the receiver must notice). Prints "sent N" and
 * exits 0 when all went.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vring/virtio.h"
#include "tests/integration/inet_csum.h"

#define BATCH 32
#define MAX_FRAME 65536

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

struct opts {
        const char *ifname;
        unsigned long count;
        double pps;
        unsigned size;
        unsigned flows;
        bool tcp, partial, corrupt;
        unsigned mss;
        uint8_t dst_mac[6];
        struct in_addr src_ip, dst_ip;
};

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

int main(int argc, char **argv)
{
        static uint8_t bufs[BATCH][MAX_FRAME];
        struct virtio_net_hdr hdrs[BATCH];
        struct iovec iov[BATCH][2];
        struct mmsghdr msgs[BATCH];
        struct opts o = {.count = 1000, .size = 64, .flows = 16};
        uint8_t src_mac[6];
        struct ifreq ifr = {0};
        struct sockaddr_ll sll = {.sll_family = AF_PACKET};
        unsigned long sent = 0;
        double start;
        int c, fd, one = 1;

        memset(o.dst_mac, 0xff, 6);
        inet_pton(AF_INET, "10.199.0.1", &o.src_ip);
        inet_pton(AF_INET, "10.199.0.2", &o.dst_ip);
        while ((c = getopt(argc, argv, "i:n:r:s:f:tcg:xd:S:D:")) != -1) {
                switch (c) {
                case 'i':
                        o.ifname = optarg;
                        break;
                case 'n':
                        o.count = strtoul(optarg, NULL, 0);
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
        if (!o.ifname || !o.flows || o.size + 64 > MAX_FRAME)
                goto usage;

        fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                perror("socket");
                return 1;
        }
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o.ifname);
        if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
                perror(o.ifname);
                return 1;
        }
        memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
        sll.sll_ifindex = (int)if_nametoindex(o.ifname);
        sll.sll_protocol = 0;
        if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
                perror("PACKET_VNET_HDR/bind");
                return 1;
        }
        start = now_s();
        while (sent < o.count) {
                unsigned n = o.count - sent < BATCH ? (unsigned)(o.count - sent) : BATCH;
                int r;

                if (o.pps > 0) {
                        double due = start + (double)sent / o.pps, t = now_s();
                        if (due > t) {
                                struct timespec ts = {.tv_sec = (time_t)(due - t),
                                                      .tv_nsec = (long)((due - t - (double)(time_t)(due - t)) * 1e9)};
                                nanosleep(&ts, NULL);
                        }
                        /* small batches when paced slowly, so frames are not sent in clumps */
                        unsigned per_ms = (unsigned)(o.pps / 1000);
                        if (per_ms < n)
                                n = per_ms ? per_ms : 1;
                }
                for (unsigned k = 0; k < n; k++) {
                        size_t len = build(&o, src_mac, sent + k, &hdrs[k], bufs[k]);
                        iov[k][0] = (struct iovec){.iov_base = &hdrs[k], .iov_len = sizeof(hdrs[k])};
                        iov[k][1] = (struct iovec){.iov_base = bufs[k], .iov_len = len};
                        msgs[k] = (struct mmsghdr){.msg_hdr = {.msg_iov = iov[k], .msg_iovlen = 2}};
                }
                r = sendmmsg(fd, msgs, n, 0);
                if (r < 0) {
                        if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)
                                continue;
                        perror("sendmmsg");
                        break;
                }
                sent += (unsigned)r;
        }
        printf("sent %lu in %.3f s\n", sent, now_s() - start);
        return sent == o.count ? 0 : 1;
usage:
        fprintf(stderr,
                "usage: %s -i IF -n COUNT [-r PPS] [-s BYTES] [-f FLOWS] [-t] [-c] [-g MSS] [-x] [-d MAC] "
                "[-S IP] [-D IP]\n",
                argv[0]);
        return 2;
}
