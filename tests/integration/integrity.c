// SPDX-License-Identifier: MIT
/*
 * integrity: pushes frames of varied sizes, each carrying a sequence number and a checksum of its payload,
 * through a running vhostd in both directions and checks that none is corrupted, duplicated or lost.
 * The test plays the guest (fakefe) on one side; on the other side it is an AF_PACKET socket on the host
 * interface the port is attached to (the tap itself, or the far end of a veth), or nothing with --loopback.
 * A window of frames in flight keeps kernel queues from overflowing, so any loss is a real one.
 *
 *   integrity --socket SOCK (--loopback | --ifname IF) [--frames N] [--max-size B] [--packed] [--ring N]
 *             [--queues N [--every-queue]] [--until FILE] [--allow-loss N] [--rx-buf B] [--no-mrg]
 *
 * --rx-buf B posts rx buffers of B bytes (default: one that holds the largest frame): with mergeable rx buffers
 * (negotiated unless --no-mrg) a larger frame arrives over several, which the report counts.
 *
 * --packed drives packed rings (VIRTIO_F_RING_PACKED, which must then be negotiated); --ring sets the ring size
 * (default 256; packed rings take any size from 1 to 32768).
 *
 * --queues N (1..8) uses N queue pairs: frame s goes out on tx ring s % N (its lane). Towards the guest, the
 * host sends lane l's frames from CPU l (modulo the CPUs we may run on) with PACKET_QDISC_BYPASS, which makes
 * the kernel pick tx queue (CPU % tx queues) of IF: on a veth with N queues, lane l then arrives on the peer's rx
 * queue l, the one vhostd's queue pair l serves. --every-queue fails the run unless every queue pair carried
 * frames in both directions (a port that steers by queue, with at least N CPUs).
 *
 * --until FILE: a direction sends until FILE exists (instead of N frames), then waits for what it sent, removes
 * FILE and ends; the next direction does the same. A test changes things under traffic meanwhile (upgrade.sh).
 *
 * --allow-loss N (loopback and guest->port): vhostd is killed meanwhile (a crash test), which may lose or repeat
 * the frames it had in hand: when nothing arrives for a second, the frames in flight are given up on (counted
 * lost unless they come later) and sending goes on; the run passes when nothing is corrupted and lost +
 * duplicated <= N. The connection is never set up again: frames that arrive after the kill went through it.
 *
 * Prints per direction: sent, received, corrupted, duplicated, lost, and with N > 1 per queue pair; exit 0 only
 * when all are perfect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
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
#define QUEUES_MAX 8

struct tally {
        const char *name;
        unsigned long sent, received, corrupted, duplicated;
        unsigned long given_up, stalls; /* --allow-loss: frames in flight given up on at the last stall; stalls */
        uint8_t *seen;                  /* one byte per sequence number */
        /* per queue pair: frames of lane q sent and received, and frames that came out of queue pair q's rx ring */
        unsigned long lane_sent[QUEUES_MAX], lane_received[QUEUES_MAX], ring_received[QUEUES_MAX];
        unsigned long multi_buf; /* frames the guest received over more than one buffer (mergeable) */
};

static unsigned long nframes = 1000000;
static const char *until_file;
static long allow_loss = -1; /* --allow-loss N; -1: none */
static unsigned max_size = 1514;
static unsigned nq = 1;
static unsigned rx_buf;   /* --rx-buf B: the guest's rx buffers (0: one per frame) */
static bool no_mrg_rxbuf; /* --no-mrg: VIRTIO_NET_F_MRG_RXBUF not negotiated */
static const uint8_t dst_mac[6] = {0x02, 0, 0, 0, 0, 0x02}, src_mac[6] = {0x02, 0, 0, 0, 0, 0x01};

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* With --until: whether FILE appeared (looked at every 20 ms); then it is removed and the direction winds down. */
static bool told_to_stop(bool *stopped)
{
        static long long last_look;
        long long now;

        if (*stopped || !until_file)
                return *stopped;
        now = now_ms();
        if (now - last_look < 20)
                return false;
        last_look = now;
        if (access(until_file, F_OK) == 0) {
                (void)unlink(until_file);
                *stopped = true;
        }
        return *stopped;
}

static size_t frame_size(unsigned long seq)
{
        return 60 + (seq * 7919) % (max_size - 60 + 1);
}

static bool is_test_frame(const uint8_t *f, size_t len)
{
        return len >= 14 && f[12] == (ETHERTYPE_TEST >> 8) && f[13] == (ETHERTYPE_TEST & 0xff);
}

/* ring: the guest rx ring (queue pair) the frame came out of, or -1 (the host side). */
static void account(struct tally *t, const uint8_t *f, size_t len, int ring)
{
        uint32_t seq;

        if (!is_test_frame(f, len))
                return; /* the host's own chatter (ARP, IPv6) */
        if (fe_frame_verify(f, len, &seq) < 0 || seq >= nframes || len != frame_size(seq)) {
                t->corrupted++;
                return;
        }
        if (t->seen[seq]++) {
                t->duplicated++;
                return;
        }
        t->received++;
        t->lane_received[seq % nq]++;
        if (ring >= 0)
                t->ring_received[ring]++;
}

/* every_queue: each queue pair must have carried frames (sent on its tx ring, or received on its rx ring). */
static int report(const struct tally *t, bool every_queue, bool by_ring)
{
        unsigned long lost = t->sent - t->received;
        bool ok = allow_loss >= 0 ? !t->corrupted && lost + t->duplicated <= (unsigned long)allow_loss
                                  : t->received == t->sent && !t->corrupted && !t->duplicated;

        printf("%-12s sent %lu received %lu corrupted %lu duplicated %lu lost %lu", t->name, t->sent, t->received,
               t->corrupted, t->duplicated, lost);
        if (allow_loss >= 0)
                printf(" (at most %ld lost + duplicated allowed; %lu stall%s)", allow_loss, t->stalls,
                       t->stalls == 1 ? "" : "s");
        printf(": %s\n", ok ? "ok" : "FAILED");
        if (t->multi_buf)
                printf("%-12s   %lu frames arrived over several guest buffers (mergeable)\n", "", t->multi_buf);
        for (unsigned q = 0; nq > 1 && q < nq; q++) {
                unsigned long carried = by_ring ? t->ring_received[q] : t->lane_received[q];
                bool q_ok = !every_queue || carried > 0;

                printf("%-12s   queue pair %u: lane sent %lu received %lu; %s %lu%s\n", "", q, t->lane_sent[q],
                       t->lane_received[q], by_ring ? "came out of its rx ring" : "went out of its tx ring", carried,
                       q_ok ? "" : ": FAILED (nothing on this queue pair)");
                ok = ok && q_ok;
        }
        return ok ? 0 : 1;
}

/* Runs the caller on the lane-th CPU it may use (with PACKET_QDISC_BYPASS the kernel picks tx queue CPU % n). */
static void run_on_lane_cpu(const cpu_set_t *allowed, unsigned lane)
{
        unsigned n = (unsigned)CPU_COUNT(allowed), k = lane % n;
        cpu_set_t one;

        for (int c = 0; c < CPU_SETSIZE; c++) {
                if (!CPU_ISSET(c, allowed) || k--)
                        continue;
                CPU_ZERO(&one);
                CPU_SET(c, &one);
                (void)sched_setaffinity(0, sizeof(one), &one);
                return;
        }
}

/* Guest -> port (or -> guest again with loopback): post on tx, count wherever the frames come out. */
static int guest_to_port(struct fe *fe, int pkt, struct tally *t)
{
        static uint8_t buf[65536];
        long long last_progress = now_ms();
        bool stopped = false;

        while (t->received + t->corrupted + t->given_up < (told_to_stop(&stopped) ? t->sent : nframes)) {
                unsigned long before = t->received + t->corrupted;
                bool posted[QUEUES_MAX] = {false};

                /* Frame s on tx ring s % nq: a full ring stops the posting, so every ring's frames stay in order. */
                while (!stopped && t->sent < nframes && t->sent < t->received + t->given_up + WINDOW) {
                        size_t len = frame_size(t->sent);
                        unsigned q = t->sent % nq;
                        fe_frame_build(buf, len, (uint32_t)t->sent, dst_mac, src_mac);
                        int r = fe_ring_post_tx(fe_tx(fe, q), buf, len, NULL, NULL);
                        if (r == -ENOSPC)
                                break;
                        if (r < 0)
                                return fprintf(stderr, "tx ring %u: %zu-byte frame: %s\n", q, len, strerror(-r)), -1;
                        t->lane_sent[q]++;
                        t->sent++;
                        posted[q] = true;
                }
                for (unsigned q = 0; q < nq; q++) {
                        if (posted[q])
                                fe_ring_notify(fe_tx(fe, q));
                        (void)fe_ring_reap(fe_tx(fe, q));
                }
                if (pkt < 0) {
                        for (unsigned q = 0; q < nq; q++) {
                                struct fe_rx_info info;
                                int r;
                                while ((r = fe_ring_recv(fe_rx(fe, q), buf, sizeof(buf), &info)) == 1)
                                        account(t, buf, info.len, (int)q), t->multi_buf += info.nbufs > 1;
                                if (r < 0)
                                        return fprintf(stderr, "rx ring %u: %s\n", q, strerror(-r)), -1;
                        }
                        if (t->received + t->corrupted == before)
                                (void)fe_ring_wait(fe_rx(fe, 0), 1, 10);
                } else {
                        struct pollfd p = {.fd = pkt, .events = POLLIN};
                        ssize_t n;
                        (void)poll(&p, 1, 10);
                        while ((n = recv(pkt, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
                                account(t, buf, (size_t)n, -1);
                }
                if (t->received + t->corrupted != before) {
                        last_progress = now_ms();
                } else if (allow_loss >= 0 && now_ms() - last_progress > 1000) {
                        /* Given up on; any that come later count as received (given_up only opens the window). */
                        t->given_up = t->sent - t->received;
                        t->stalls++;
                        last_progress = now_ms();
                        if (t->stalls > 60)
                                break; /* a minute without a frame: it is not coming back */
                } else if (allow_loss < 0 && now_ms() - last_progress > STALL_MS) {
                        break; /* lost frames: report them */
                }
        }
        return 0;
}

/*
 * Port -> guest: send from the host side, count on the guest's rx rings. Lane l sends frames l, l + nq, ... from
 * its CPU (see run_on_lane_cpu), at most WINDOW / nq in flight each.
 */
static int port_to_guest(struct fe *fe, int pkt, struct tally *t)
{
        static uint8_t buf[65536];
        long long last_progress = now_ms();
        unsigned long window = nq > 1 ? WINDOW / nq : WINDOW;
        cpu_set_t allowed;

        if (nq > 1 && sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
                return fprintf(stderr, "sched_getaffinity: %s\n", strerror(errno)), -1;
        bool stopped = false;

        while (t->received + t->corrupted < (told_to_stop(&stopped) ? t->sent : nframes)) {
                unsigned long before = t->received + t->corrupted;
                struct fe_rx_info info;
                int r;

                for (unsigned l = 0; l < nq; l++) {
                        unsigned long seq = l + (unsigned long)nq * t->lane_sent[l];
                        bool moved = false;

                        for (; !stopped && seq < nframes && t->lane_sent[l] - t->lane_received[l] < window; seq += nq) {
                                size_t len = frame_size(seq);
                                if (nq > 1 && !moved) {
                                        run_on_lane_cpu(&allowed, l);
                                        moved = true;
                                }
                                fe_frame_build(buf, len, (uint32_t)seq, dst_mac, src_mac);
                                if (send(pkt, buf, len, MSG_DONTWAIT) < 0) {
                                        if (errno == EAGAIN || errno == ENOBUFS)
                                                break;
                                        return fprintf(stderr, "send: %s\n", strerror(errno)), -1;
                                }
                                t->lane_sent[l]++;
                                t->sent++;
                        }
                }
                for (unsigned q = 0; q < nq; q++) {
                        while ((r = fe_ring_recv(fe_rx(fe, q), buf, sizeof(buf), &info)) == 1)
                                account(t, buf, info.len, (int)q), t->multi_buf += info.nbufs > 1;
                        if (r < 0)
                                return fprintf(stderr, "rx ring %u: %s\n", q, strerror(-r)), -1;
                }
                if (t->received + t->corrupted != before)
                        last_progress = now_ms();
                else {
                        (void)fe_ring_wait(fe_rx(fe, 0), 1, nq > 1 ? 1 : 10);
                        if (now_ms() - last_progress > STALL_MS)
                                break;
                }
        }
        if (nq > 1)
                (void)sched_setaffinity(0, sizeof(allowed), &allowed);
        return 0;
}

/* bypass: PACKET_QDISC_BYPASS, so that the tx queue is picked from the sending CPU. */
static int open_packet(const char *ifname, bool bypass)
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
        if (bypass && setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
        return fd;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"socket", required_argument, NULL, 's'},     {"ifname", required_argument, NULL, 'i'},
                {"loopback", no_argument, NULL, 'l'},         {"frames", required_argument, NULL, 'n'},
                {"max-size", required_argument, NULL, 'm'},   {"packed", no_argument, NULL, 'p'},
                {"ring", required_argument, NULL, 'r'},       {"queues", required_argument, NULL, 'q'},
                {"every-queue", no_argument, NULL, 'e'},      {"until", required_argument, NULL, 'u'},
                {"allow-loss", required_argument, NULL, 'a'}, {"rx-buf", required_argument, NULL, 'b'},
                {"no-mrg", no_argument, NULL, 'M'},           {0}};
        const char *sock = NULL, *ifname = NULL;
        bool loopback = false, packed = false, every_queue = false;
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
                case 'q':
                        nq = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'e':
                        every_queue = true;
                        break;
                case 'u':
                        until_file = optarg;
                        break;
                case 'a':
                        allow_loss = strtol(optarg, NULL, 10);
                        break;
                case 'b':
                        rx_buf = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'M':
                        no_mrg_rxbuf = true;
                        break;
                default:
                        return 2;
                }
        }
        if (!sock || (!loopback && !ifname) || nframes == 0 || max_size < 60 || max_size > 9018 || ring == 0 ||
            ring > 32768 || nq == 0 || nq > QUEUES_MAX || (rx_buf && (rx_buf < 64 || rx_buf > 65536))) {
                fprintf(stderr,
                        "usage: integrity --socket SOCK (--loopback | --ifname IF) [--frames N] "
                        "[--max-size 60..9018] [--packed] [--ring 1..32768] [--queues 1..%d [--every-queue]] [--until "
                        "FILE] [--allow-loss N] [--rx-buf 64..65536] [--no-mrg]\n",
                        QUEUES_MAX);
                return 2;
        }
        if (!loopback) {
                pkt = open_packet(ifname, nq > 1);
                if (pkt < 0)
                        return fprintf(stderr, "AF_PACKET on %s: %s\n", ifname, strerror(-pkt)), 1;
        }
        r = fe_connect(sock, 5000, &fe);
        if (r == 0)
                r = fe_setup_ex(fe, &(struct fe_setup_opts){
                                            .queue_pairs = nq,
                                            .ring_size = ring,
                                            .features = (FE_FEATURES_DEFAULT &
                                                         ~(no_mrg_rxbuf ? BIT_ULL(VIRTIO_NET_F_MRG_RXBUF) : 0)) |
                                                        (packed ? BIT_ULL(VIRTIO_F_RING_PACKED) : 0),
                                            /* a buffer per frame, header included: 2 KiB, or more for larger */
                                            .buf_size = max_size + 12 <= 2048 ? 2048 : (max_size + 12 + 1023) & ~1023u,
                                            .rx_buf_size = rx_buf,
                                    });
        if (r == 0 && fe_tx(fe, 0)->packed != packed)
                r = -EPROTO; /* the layout asked for was not negotiated */
        if (r < 0)
                return fprintf(stderr, "front-end setup on %s: %s\n", sock, strerror(-r)), 1;

        struct tally out = {.name = loopback ? "loopback" : "guest->port", .seen = calloc(nframes, 1)};
        if (!out.seen || guest_to_port(fe, pkt, &out) < 0)
                return 1;
        rc |= report(&out, every_queue, loopback);
        if (!loopback) {
                struct tally in = {.name = "port->guest", .seen = calloc(nframes, 1)};
                if (!in.seen || port_to_guest(fe, pkt, &in) < 0)
                        return 1;
                rc |= report(&in, every_queue, true);
                free(in.seen);
        }
        free(out.seen);
        fe_free(fe);
        if (pkt >= 0)
                close(pkt);
        return rc;
}
