// SPDX-License-Identifier: MIT
/*
 * integrity: pushes frames of varied sizes, each carrying a sequence number and a checksum of its payload,
 * through a running vhostd in both directions and checks that none is corrupted, duplicated or lost.
 * The test plays the guest (fakefe) on one side; on the other side it is an AF_PACKET socket on the host
 * interface the port is attached to (the tap itself, or the far end of a veth), or nothing with --loopback.
 * A window of frames in flight keeps kernel queues from overflowing, so any loss is a real one.
 *
 *   integrity --socket SOCK (--loopback | --ifname IF) [--frames N] [--max-size B] [--packed] [--ring N]
 *
 * --packed drives packed rings (VIRTIO_F_RING_PACKED, which must then be negotiated); --ring sets the ring size
 * (default 256; packed rings take any size from 1 to 32768).
 *
 * Prints per direction: sent, received, corrupted, duplicated, lost; exit 0 only when all are perfect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/fakefe/fakefe.h"

#define WINDOW 128
#define ETHERTYPE_TEST 0x88b5
#define STALL_MS 3000

struct tally {
        const char *name;
        unsigned long sent, received, corrupted, duplicated;
        uint8_t *seen; /* one byte per sequence number */
};

static unsigned long nframes = 1000000;
static unsigned max_size = 1514;
static const uint8_t dst_mac[6] = {0x02, 0, 0, 0, 0, 0x02}, src_mac[6] = {0x02, 0, 0, 0, 0, 0x01};

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static size_t frame_size(unsigned long seq)
{
        return 60 + (seq * 7919) % (max_size - 60 + 1);
}

static bool is_test_frame(const uint8_t *f, size_t len)
{
        return len >= 14 && f[12] == (ETHERTYPE_TEST >> 8) && f[13] == (ETHERTYPE_TEST & 0xff);
}

static void account(struct tally *t, const uint8_t *f, size_t len)
{
        uint32_t seq;

        if (!is_test_frame(f, len))
                return; /* the host's own chatter (ARP, IPv6) */
        if (fe_frame_verify(f, len, &seq) < 0 || seq >= nframes || len != frame_size(seq)) {
                t->corrupted++;
                return;
        }
        if (t->seen[seq]++)
                t->duplicated++;
        else
                t->received++;
}

static int report(const struct tally *t)
{
        unsigned long lost = t->sent - t->received;
        bool ok = t->received == t->sent && !t->corrupted && !t->duplicated;

        printf("%-12s sent %lu received %lu corrupted %lu duplicated %lu lost %lu: %s\n", t->name, t->sent, t->received,
               t->corrupted, t->duplicated, lost, ok ? "ok" : "FAILED");
        return ok ? 0 : 1;
}

/* Guest -> port (or -> guest again with loopback): post on tx, count wherever the frames come out. */
static int guest_to_port(struct fe *fe, int pkt, struct tally *t)
{
        struct fe_ring *tx = fe_tx(fe, 0), *rx = fe_rx(fe, 0);
        static uint8_t buf[65536];
        long long last_progress = now_ms();

        while (t->received + t->corrupted < nframes) {
                unsigned long before = t->received + t->corrupted;
                bool posted = false;

                while (t->sent < nframes && t->sent - t->received < WINDOW) {
                        size_t len = frame_size(t->sent);
                        fe_frame_build(buf, len, (uint32_t)t->sent, dst_mac, src_mac);
                        if (fe_ring_post_tx(tx, buf, len, NULL, NULL) < 0)
                                break;
                        t->sent++;
                        posted = true;
                }
                if (posted)
                        fe_ring_notify(tx);
                (void)fe_ring_reap(tx);
                if (pkt < 0) {
                        struct fe_rx_info info;
                        int r;
                        while ((r = fe_ring_recv(rx, buf, sizeof(buf), &info)) == 1)
                                account(t, buf, info.len);
                        if (r < 0)
                                return fprintf(stderr, "rx ring: %s\n", strerror(-r)), -1;
                        if (t->received + t->corrupted == before)
                                (void)fe_ring_wait(rx, 1, 10);
                } else {
                        struct pollfd p = {.fd = pkt, .events = POLLIN};
                        ssize_t n;
                        (void)poll(&p, 1, 10);
                        while ((n = recv(pkt, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
                                account(t, buf, (size_t)n);
                }
                if (t->received + t->corrupted != before)
                        last_progress = now_ms();
                else if (now_ms() - last_progress > STALL_MS)
                        break; /* lost frames: report them */
        }
        return 0;
}

/* Port -> guest: send from the host side, count on the guest's rx ring. */
static int port_to_guest(struct fe *fe, int pkt, struct tally *t)
{
        struct fe_ring *rx = fe_rx(fe, 0);
        static uint8_t buf[65536];
        long long last_progress = now_ms();

        while (t->received + t->corrupted < nframes) {
                unsigned long before = t->received + t->corrupted;
                struct fe_rx_info info;
                int r;

                while (t->sent < nframes && t->sent - t->received < WINDOW) {
                        size_t len = frame_size(t->sent);
                        fe_frame_build(buf, len, (uint32_t)t->sent, dst_mac, src_mac);
                        if (send(pkt, buf, len, MSG_DONTWAIT) < 0) {
                                if (errno == EAGAIN || errno == ENOBUFS)
                                        break;
                                return fprintf(stderr, "send: %s\n", strerror(errno)), -1;
                        }
                        t->sent++;
                }
                while ((r = fe_ring_recv(rx, buf, sizeof(buf), &info)) == 1)
                        account(t, buf, info.len);
                if (r < 0)
                        return fprintf(stderr, "rx ring: %s\n", strerror(-r)), -1;
                if (t->received + t->corrupted != before)
                        last_progress = now_ms();
                else {
                        (void)fe_ring_wait(rx, 1, 10);
                        if (now_ms() - last_progress > STALL_MS)
                                break;
                }
        }
        return 0;
}

static int open_packet(const char *ifname)
{
        struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
        int one = 1, size = 64 << 20;
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));

        if (fd < 0)
                return -errno;
        sll.sll_ifindex = (int)if_nametoindex(ifname);
        if (!sll.sll_ifindex || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
                int r = sll.sll_ifindex ? -errno : -ENODEV;
                close(fd);
                return r;
        }
        (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
        return fd;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"socket", required_argument, NULL, 's'},   {"ifname", required_argument, NULL, 'i'},
                {"loopback", no_argument, NULL, 'l'},       {"frames", required_argument, NULL, 'n'},
                {"max-size", required_argument, NULL, 'm'}, {"packed", no_argument, NULL, 'p'},
                {"ring", required_argument, NULL, 'r'},     {0}};
        const char *sock = NULL, *ifname = NULL;
        bool loopback = false, packed = false;
        unsigned ring = 256;
        struct fe *fe;
        int c, r, pkt = -1, rc = 0;

        while ((c = getopt_long(argc, argv, "s:i:ln:m:", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        sock = optarg;
                        break;
                case 'i':
                        ifname = optarg;
                        break;
                case 'l':
                        loopback = true;
                        break;
                case 'n':
                        nframes = strtoul(optarg, NULL, 10);
                        break;
                case 'p':
                        packed = true;
                        break;
                case 'r':
                        ring = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'm':
                        max_size = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                default:
                        return 2;
                }
        }
        if (!sock || (!loopback && !ifname) || nframes == 0 || max_size < 60 || max_size > 9000 || ring == 0 ||
            ring > 32768) {
                fprintf(stderr, "usage: integrity --socket SOCK (--loopback | --ifname IF) [--frames N] "
                                "[--max-size 60..9000] [--packed] [--ring 1..32768]\n");
                return 2;
        }
        if (!loopback) {
                pkt = open_packet(ifname);
                if (pkt < 0)
                        return fprintf(stderr, "AF_PACKET on %s: %s\n", ifname, strerror(-pkt)), 1;
        }
        r = fe_connect(sock, 5000, &fe);
        if (r == 0)
                r = fe_setup(fe, 1, ring, FE_FEATURES_DEFAULT | (packed ? BIT_ULL(VIRTIO_F_RING_PACKED) : 0));
        if (r == 0 && fe_tx(fe, 0)->packed != packed)
                r = -EPROTO; /* the layout asked for was not negotiated */
        if (r < 0)
                return fprintf(stderr, "front-end setup on %s: %s\n", sock, strerror(-r)), 1;

        struct tally out = {.name = loopback ? "loopback" : "guest->port", .seen = calloc(nframes, 1)};
        if (!out.seen || guest_to_port(fe, pkt, &out) < 0)
                return 1;
        rc |= report(&out);
        if (!loopback) {
                struct tally in = {.name = "port->guest", .seen = calloc(nframes, 1)};
                if (!in.seen || port_to_guest(fe, pkt, &in) < 0)
                        return 1;
                rc |= report(&in);
                free(in.seen);
        }
        free(out.seen);
        fe_free(fe);
        if (pkt >= 0)
                close(pkt);
        return rc;
}
