// SPDX-License-Identifier: MIT
/*
 * pktsend: a small AF_PACKET traffic source for bench/pps.sh.
 *
 * Sends fixed-size Ethernet/IPv4/UDP frames out of one interface in sendmmsg() batches for a number
 * of seconds, optionally paced to a frame rate, then prints one line:
 *
 *   sent=N secs=T pps=R errors=E
 *
 * The UDP source port cycles over -f flows so that a multi-queue veth spreads them over its queues
 * (the kernel picks the tx queue from the flow hash).
 *
 * Usage: pktsend -i IFNAME [-s FRAME_BYTES=64] [-t SECONDS=5] [-r PPS=0 (unpaced)] [-b BATCH=64]
 *                [-d DST_MAC=ff:ff:ff:ff:ff:ff] [-f FLOWS=1] [-B (PACKET_QDISC_BYPASS)]
 *
 * Built by bench/pps.sh into build/bench/pktsend (cc -O2).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 256
#define FRAME_MAX 9000

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
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint16_t ip_csum(const void *p, size_t len)
{
        const uint16_t *w = p;
        uint32_t sum = 0;

        for (; len > 1; len -= 2)
                sum += *w++;
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t)~sum;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
        unsigned v[6];
        int i;

        if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
                return -EINVAL;
        for (i = 0; i < 6; i++) {
                if (v[i] > 255)
                        return -EINVAL;
                mac[i] = (uint8_t)v[i];
        }
        return 0;
}

/* Ethernet + IPv4 + UDP, padded with a byte pattern to len bytes (no FCS). */
static void build_frame(uint8_t *f, size_t len, const uint8_t dst[6], const uint8_t src[6], uint16_t sport)
{
        struct ether_header *eh = (struct ether_header *)f;
        struct iphdr *ip = (struct iphdr *)(eh + 1);
        struct udphdr *udp = (struct udphdr *)(ip + 1);
        size_t i;

        memcpy(eh->ether_dhost, dst, 6);
        memcpy(eh->ether_shost, src, 6);
        eh->ether_type = htons(ETHERTYPE_IP);
        memset(ip, 0, sizeof(*ip));
        ip->version = 4;
        ip->ihl = 5;
        ip->ttl = 64;
        ip->protocol = IPPROTO_UDP;
        ip->tot_len = htons((uint16_t)(len - sizeof(*eh)));
        ip->saddr = htonl(0x0a5a0002); /* 10.90.0.2 */
        ip->daddr = htonl(0x0a5a0001); /* 10.90.0.1 */
        ip->check = ip_csum(ip, sizeof(*ip));
        udp->source = htons(sport);
        udp->dest = htons(9);
        udp->len = htons((uint16_t)(len - sizeof(*eh) - sizeof(*ip)));
        udp->check = 0;
        for (i = sizeof(*eh) + sizeof(*ip) + sizeof(*udp); i < len; i++)
                f[i] = (uint8_t)i;
}

static void usage(void)
{
        fprintf(stderr, "usage: pktsend -i IFNAME [-s BYTES] [-t SECS] [-r PPS] [-b BATCH] [-d MAC] [-f FLOWS] [-B]\n");
        exit(2);
}

int main(int argc, char **argv)
{
        const char *ifname = NULL;
        unsigned size = 64, batch = 64, flows = 1, i;
        double secs = 5, rate = 0;
        uint8_t dst[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src[6];
        int bypass = 0, opt, fd, ifindex;
        static uint8_t frames[BATCH_MAX][FRAME_MAX];
        struct mmsghdr msgs[BATCH_MAX];
        struct iovec iov[BATCH_MAX];
        struct sockaddr_ll sll;
        struct ifreq ifr;
        unsigned long long sent = 0, errors = 0;
        double t0, t_end, t;

        while ((opt = getopt(argc, argv, "i:s:t:r:b:d:f:B")) != -1) {
                switch (opt) {
                case 'i':
                        ifname = optarg;
                        break;
                case 's':
                        size = (unsigned)strtoul(optarg, NULL, 0);
                        break;
                case 't':
                        secs = strtod(optarg, NULL);
                        break;
                case 'r':
                        rate = strtod(optarg, NULL);
                        break;
                case 'b':
                        batch = (unsigned)strtoul(optarg, NULL, 0);
                        break;
                case 'f':
                        flows = (unsigned)strtoul(optarg, NULL, 0);
                        break;
                case 'd':
                        if (parse_mac(optarg, dst) < 0)
                                usage();
                        break;
                case 'B':
                        bypass = 1;
                        break;
                default:
                        usage();
                }
        }
        if (!ifname || size < 60 || size > FRAME_MAX || batch < 1 || batch > BATCH_MAX || flows < 1 || secs <= 0)
                usage();

        fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0); /* protocol 0: send only, never receives */
        if (fd < 0) {
                perror("pktsend: socket");
                return 1;
        }
        memset(&ifr, 0, sizeof(ifr));
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
                perror("pktsend: SIOCGIFINDEX");
                return 1;
        }
        ifindex = ifr.ifr_ifindex;
        if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
                perror("pktsend: SIOCGIFHWADDR");
                return 1;
        }
        memcpy(src, ifr.ifr_hwaddr.sa_data, 6);
        if (bypass && setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &bypass, sizeof(bypass)) < 0)
                perror("pktsend: PACKET_QDISC_BYPASS, ignoring");

        memset(&sll, 0, sizeof(sll));
        sll.sll_family = AF_PACKET;
        sll.sll_ifindex = ifindex;
        sll.sll_halen = 6;
        memcpy(sll.sll_addr, dst, 6);
        if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
                perror("pktsend: bind");
                return 1;
        }

        memset(msgs, 0, sizeof(msgs));
        for (i = 0; i < batch; i++) {
                build_frame(frames[i], size, dst, src, (uint16_t)(1024 + i % flows));
                iov[i].iov_base = frames[i];
                iov[i].iov_len = size;
                msgs[i].msg_hdr.msg_iov = &iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
        }

        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        t0 = now_s();
        t_end = t0 + secs;
        while (!stop && (t = now_s()) < t_end) {
                unsigned n = batch;
                int r;

                if (rate > 0) {
                        /* Pacing: never get ahead of rate * elapsed; sleep off the surplus. */
                        double due = rate * (t - t0) - (double)sent;
                        if (due < 1) {
                                struct timespec ts = {0, (long)((1 - due) / rate * 1e9)};
                                if (ts.tv_nsec < 20000)
                                        ts.tv_nsec = 20000;
                                nanosleep(&ts, NULL);
                                continue;
                        }
                        if (due < n)
                                n = (unsigned)due;
                }
                r = sendmmsg(fd, msgs, n, 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        errors++;
                        if (errno == ENOBUFS || errno == EAGAIN) {
                                struct timespec ts = {0, 10000};
                                nanosleep(&ts, NULL);
                                continue;
                        }
                        perror("pktsend: sendmmsg");
                        break;
                }
                sent += (unsigned)r;
        }
        t = now_s() - t0;
        printf("sent=%llu secs=%.3f pps=%.0f errors=%llu\n", sent, t, t > 0 ? sent / t : 0.0, errors);
        close(fd);
        return 0;
}
