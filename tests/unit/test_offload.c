/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for backends/offload.c: checksums and GSO segmentation in software. Results are checked with the
 * test tools' own checksum code (tests/integration/inet_csum.h), written apart from the code under test.
 *
 * Frames: Ethernet + IPv4 (or IPv6) + TCP (or UDP), payload bytes (i * 7 + 3); a GSO frame's headers are as a
 * guest's TCP stack leaves them (IP length of the whole super-frame, pseudo-header sum in the L4 checksum).
 */
#include <arpa/inet.h>
#include <endian.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/offload.h"
#include "tests/integration/inet_csum.h"

#define PAY_MAX 9000

struct frame {
        uint8_t b[14 + 40 + 20 + PAY_MAX];
        size_t len;
        unsigned l3, l4, hdrs;
        struct virtio_net_hdr vh;
};

/* An IPv4 or IPv6, TCP or UDP frame with pay payload bytes; the L4 checksum holds the pseudo-header sum
 * (NEEDS_CSUM), the rest of vh describes GSO with mss (0: none). */
static void build(struct frame *f, bool v6, bool tcp, unsigned pay, unsigned mss)
{
        unsigned l4hl = tcp ? 20 : 8, iphl = v6 ? 40 : 20;
        uint8_t *ip = f->b + 14, *l4;
        uint32_t pseudo;

        memset(f, 0, sizeof(*f));
        f->l3 = 14;
        f->l4 = 14 + iphl;
        f->hdrs = f->l4 + l4hl;
        f->len = f->hdrs + pay;
        l4 = f->b + f->l4;
        memset(f->b, 0xaa, 6);
        memset(f->b + 6, 0xbb, 6);
        put16(f->b + 12, v6 ? 0x86dd : 0x0800);
        if (v6) {
                ip[0] = 0x60;
                put16(ip + 4, (uint16_t)(l4hl + pay));
                ip[6] = tcp ? IPPROTO_TCP : IPPROTO_UDP;
                ip[7] = 64;
                for (int i = 0; i < 32; i++)
                        ip[8 + i] = (uint8_t)(i + 1);
                pseudo = sum16(ip + 8, 32, 0);
        } else {
                ip[0] = 0x45;
                put16(ip + 2, (uint16_t)(20 + l4hl + pay));
                put16(ip + 4, 0x1234);
                ip[8] = 64;
                ip[9] = tcp ? IPPROTO_TCP : IPPROTO_UDP;
                memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
                put16(ip + 10, (uint16_t)~fold(sum16(ip, 20, 0)));
                pseudo = sum16(ip + 12, 8, 0);
        }
        put16(l4, 40000);
        put16(l4 + 2, 80);
        if (tcp) {
                put16(l4 + 4, 0xffff); /* sequence 0xffffff00: the segments' sequence numbers wrap */
                put16(l4 + 6, 0xff00);
                l4[12] = 5 << 4;
                l4[13] = 0x18 | 0x80 | 0x01; /* PSH ACK CWR FIN */
                put16(l4 + 14, 1000);
        } else {
                put16(l4 + 4, (uint16_t)(8 + pay));
        }
        for (unsigned i = 0; i < pay; i++)
                f->b[f->hdrs + i] = (uint8_t)(i * 7 + 3);
        put16(l4 + (tcp ? 16 : 6), fold(pseudo + (tcp ? IPPROTO_TCP : IPPROTO_UDP) + l4hl + pay));
        f->vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        f->vh.csum_start = htole16((uint16_t)f->l4);
        f->vh.csum_offset = htole16(tcp ? 16 : 6);
        if (mss) {
                f->vh.gso_type =
                        tcp ? (v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4) : VIRTIO_NET_HDR_GSO_UDP_L4;
                f->vh.gso_size = htole16((uint16_t)mss);
                f->vh.hdr_len = htole16((uint16_t)f->hdrs);
        }
}

/* The L4 checksum of a segment (headers hb, payload pay) verifies: the sum over pseudo-header and L4 is 0xffff. */
static void assert_l4_ok(const uint8_t *hb, unsigned l3, unsigned l4, unsigned hdrs, bool v6, bool tcp,
                         const uint8_t *pay, unsigned seglen)
{
        unsigned l4len = hdrs - l4 + seglen;
        uint32_t s = v6 ? sum16(hb + l3 + 8, 32, 0) : sum16(hb + l3 + 12, 8, 0);

        s += (tcp ? IPPROTO_TCP : IPPROTO_UDP) + l4len;
        s = sum16(hb + l4, hdrs - l4, s);
        /* The payload may start at an odd offset of the segment: sum it as its own aligned run. */
        uint8_t tmp[PAY_MAX];
        memcpy(tmp, pay, seglen);
        s = sum16(tmp, seglen, s);
        assert_int_equal(fold(s), 0xffff);
}

static void test_csum_rfc1071_example(void **state)
{
        (void)state;
        /* RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement, folded). */
        static const uint8_t d[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
        uint16_t s = csum_fold(csum_part(d, sizeof(d), 0));

        assert_int_equal(ntohs(s), 0xddf2);
        /* An odd length pads with a zero byte; a run split in two even halves sums the same. */
        static const uint8_t o[] = {0x12, 0x34, 0x56};
        assert_int_equal(ntohs(csum_fold(csum_part(o, 3, 0))), 0x1234 + 0x5600);
        assert_int_equal(csum_fold(csum_part(d + 4, 4, csum_part(d, 4, 0))), s);
}

static void test_csum_complete_udp_and_tcp(void **state)
{
        static struct frame f;
        (void)state;

        for (int tcp = 0; tcp < 2; tcp++)
                for (int v6 = 0; v6 < 2; v6++)
                        for (unsigned pay = 0; pay < 40; pay += 13) {
                                build(&f, v6, tcp, pay, 0);
                                assert_true(csum_complete(f.b, f.len, &f.vh));
                                assert_l4_ok(f.b, f.l3, f.l4, f.hdrs, v6, tcp, f.b + f.hdrs, pay);
                        }
}

static void test_csum_complete_refuses_outside(void **state)
{
        static struct frame f;
        (void)state;

        build(&f, false, false, 10, 0);
        f.vh.csum_start = htole16((uint16_t)f.len);
        assert_false(csum_complete(f.b, f.len, &f.vh));
        f.vh.csum_start = htole16((uint16_t)f.l4);
        f.vh.csum_offset = htole16((uint16_t)(f.len - f.l4 - 1)); /* the field would end past the frame */
        assert_false(csum_complete(f.b, f.len, &f.vh));
        f.vh.csum_start = htole16(0xffff);
        f.vh.csum_offset = htole16(0xffff);
        assert_false(csum_complete(f.b, f.len, &f.vh));
}

/* Cuts f (built with mss) into segments and checks every header field and checksum of each. */
static void check_segments(struct frame *f, bool v6, bool tcp, unsigned pay, unsigned mss)
{
        struct gso_info g;
        uint8_t hb[256];
        unsigned total = 0;

        assert_true(gso_parse(f->b, f->len, &f->vh, &g));
        assert_int_equal(g.l3, f->l3);
        assert_int_equal(g.l4, f->l4);
        assert_int_equal(g.hdrs, f->hdrs);
        assert_int_equal(g.nseg, (pay + mss - 1) / mss);
        for (unsigned i = 0; i < g.nseg; i++) {
                unsigned off = g.hdrs + i * mss, seglen = (unsigned)(f->len - off < mss ? f->len - off : mss);
                const uint8_t *ip = hb + g.l3, *l4 = hb + g.l4;

                memcpy(hb, f->b, g.hdrs);
                gso_segment_headers(hb, &g, i, f->b + off, seglen);
                if (v6) {
                        assert_int_equal(get16(ip + 4), g.hdrs - g.l4 + seglen);
                } else {
                        assert_int_equal(get16(ip + 2), g.hdrs - g.l3 + seglen);
                        assert_int_equal(get16(ip + 4), 0x1234 + i);
                        assert_int_equal(fold(sum16(ip, 20, 0)), 0xffff);
                }
                if (tcp) {
                        uint32_t seq = (uint32_t)get16(l4 + 4) << 16 | get16(l4 + 6);
                        bool last = i + 1 == g.nseg;
                        assert_int_equal(seq, (uint32_t)(0xffffff00u + i * mss));
                        assert_int_equal(!!(l4[13] & 0x01), last);   /* FIN */
                        assert_int_equal(!!(l4[13] & 0x08), last);   /* PSH */
                        assert_int_equal(!!(l4[13] & 0x80), i == 0); /* CWR */
                        assert_true(l4[13] & 0x10);                  /* ACK on all */
                } else {
                        assert_int_equal(get16(l4 + 4), 8 + seglen);
                }
                assert_l4_ok(hb, g.l3, g.l4, g.hdrs, v6, tcp, f->b + off, seglen);
                total += seglen;
        }
        assert_int_equal(total, pay);
}

static void test_gso_tcp_udp_v4_v6(void **state)
{
        static struct frame f;
        static const unsigned pays[] = {1, 999, 1000, 1001, 2999, 3000, 8999};
        (void)state;

        for (int tcp = 0; tcp < 2; tcp++)
                for (int v6 = 0; v6 < 2; v6++)
                        for (unsigned k = 0; k < sizeof(pays) / sizeof(pays[0]); k++) {
                                build(&f, v6, tcp, pays[k], 1000);
                                check_segments(&f, v6, tcp, pays[k], 1000);
                                build(&f, v6, tcp, pays[k], 1);
                                if (pays[k] < 100)
                                        check_segments(&f, v6, tcp, pays[k], 1);
                        }
}

static void test_gso_parse_refuses(void **state)
{
        static struct frame f;
        struct gso_info g;
        (void)state;

        build(&f, false, false, 3000, 1000);
        f.vh.gso_type = 3; /* VIRTIO_NET_HDR_GSO_UDP (UFO): would need IP fragmentation */
        assert_false(gso_parse(f.b, f.len, &f.vh, &g));
        build(&f, false, true, 3000, 1000);
        f.vh.gso_size = 0;
        assert_false(gso_parse(f.b, f.len, &f.vh, &g));
        build(&f, false, true, 3000, 1000);
        f.b[14 + 9] = IPPROTO_UDP; /* TCP GSO over a UDP header */
        assert_false(gso_parse(f.b, f.len, &f.vh, &g));
        build(&f, false, true, 3000, 1000);
        assert_false(gso_parse(f.b, 14 + 20 + 10, &f.vh, &g)); /* the TCP header is cut off */
        f.b[14 + 20 + 12] = 15 << 4;                           /* a data offset past the frame */
        assert_false(gso_parse(f.b, 14 + 20 + 30, &f.vh, &g));
        f.b[14 + 20 + 12] = 4 << 4; /* shorter than a TCP header */
        assert_false(gso_parse(f.b, f.len, &f.vh, &g));
        build(&f, false, true, 3000, 1000);
        f.b[14] = 0x44; /* IHL 4: L4 would start inside the IP fields a segment rewrites (found by fuzz_offload) */
        assert_false(gso_parse(f.b, f.len, &f.vh, &g));
        build(&f, false, true, 3000, 1000);
        put16(f.b + 12, 0x0806); /* ARP */
        assert_false(gso_parse(f.b, f.len, &f.vh, &g));
        build(&f, true, true, 3000, 1000);
        f.vh.csum_start = htole16(14 + 39); /* L4 inside the IPv6 header */
        assert_false(gso_parse(f.b, f.len, &f.vh, &g));
        assert_false(gso_parse(f.b, 13, &f.vh, &g));
}

static void test_gso_vlan_tagged(void **state)
{
        static struct frame f, t;
        struct gso_info g;
        (void)state;

        /* The same frame with an 802.1Q tag after the MACs: offsets move by 4, segments verify. */
        build(&f, false, true, 2500, 1000);
        memset(&t, 0, sizeof(t));
        memcpy(t.b, f.b, 12);
        put16(t.b + 12, 0x8100);
        put16(t.b + 14, 42);
        memcpy(t.b + 16, f.b + 12, f.len - 12);
        t.len = f.len + 4;
        t.vh = f.vh;
        t.vh.csum_start = htole16((uint16_t)(f.l4 + 4));
        assert_true(gso_parse(t.b, t.len, &t.vh, &g));
        assert_int_equal(g.l3, 18);
        assert_int_equal(g.l4, 38);
        assert_int_equal(g.nseg, 3);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
        const struct CMUnitTest tests[] = {
                T(test_csum_rfc1071_example), T(test_csum_complete_udp_and_tcp), T(test_csum_complete_refuses_outside),
                T(test_gso_tcp_udp_v4_v6),    T(test_gso_parse_refuses),         T(test_gso_vlan_tagged),
        };
#undef T

        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
