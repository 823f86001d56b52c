// SPDX-License-Identifier: MIT
#include "backends/offload.h"

#include <arpa/inet.h>
#include <endian.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t host)
{
        uint16_t be = htons(host);
        memcpy(p, &be, 2);
}

static uint16_t get16(const uint8_t *p)
{
        uint16_t be;
        memcpy(&be, p, 2);
        return ntohs(be);
}

uint64_t csum_add(uint64_t sum, uint64_t v)
{
        sum += v;
        return sum + (sum < v);
}

uint64_t csum_part(const void *data, size_t len, uint64_t sum)
{
        const uint8_t *p = data;

        for (; len >= 8; p += 8, len -= 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                sum = csum_add(sum, v);
        }
        for (; len >= 2; p += 2, len -= 2) {
                uint16_t v;
                memcpy(&v, p, 2);
                sum = csum_add(sum, v);
        }
        if (len) {
                uint16_t v = 0;
                memcpy(&v, p, 1); /* the odd byte is the high-order byte of a zero-padded word */
                sum = csum_add(sum, v);
        }
        return sum;
}

uint16_t csum_fold(uint64_t sum)
{
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t)sum;
}

bool csum_complete(uint8_t *frame, size_t len, const struct virtio_net_hdr *vh)
{
        size_t start = le16toh(vh->csum_start), off = le16toh(vh->csum_offset);
        uint16_t sum;

        if (start >= len || off + 2 > len - start)
                return false;
        sum = (uint16_t)~csum_fold(csum_part(frame + start, len - start, 0));
        if (!sum)
                sum = 0xffff; /* as the kernel does (CSUM_MANGLED_0): 0 means "no checksum" to UDP */
        memcpy(frame + start + off, &sum, 2);
        return true;
}

bool gso_parse(const uint8_t *m, size_t len, const struct virtio_net_hdr *vh, struct gso_info *g)
{
        unsigned type = vh->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN, off = 14, et;

        if (len < 14)
                return false;
        et = get16(m + 12);
        while ((et == ETH_P_8021Q || et == ETH_P_8021AD) && off + 4 <= len) {
                et = get16(m + off + 2);
                off += 4;
        }
        g->l3 = off;
        g->tcp = type == VIRTIO_NET_HDR_GSO_TCPV4 || type == VIRTIO_NET_HDR_GSO_TCPV6;
        if (!g->tcp && type != VIRTIO_NET_HDR_GSO_UDP_L4)
                return false; /* UFO would need IP fragmentation */
        if (et == ETH_P_IP) {
                if (off + 20 > len || (m[off] >> 4) != 4 || (m[off] & 0xfu) < 5)
                        return false; /* an IHL under 5 would put L4 inside the fields we rewrite */
                g->v4 = true;
                g->l4 = off + (m[off] & 0xfu) * 4;
                if (m[off + 9] != (g->tcp ? IPPROTO_TCP : IPPROTO_UDP))
                        return false;
        } else if (et == ETH_P_IPV6) {
                if (off + 40 > len)
                        return false;
                g->v4 = false;
                /* Extension headers: csum_start says where L4 begins. */
                g->l4 = (vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) ? le16toh(vh->csum_start) : off + 40;
                if (g->l4 < off + 40)
                        return false;
        } else {
                return false;
        }
        if (g->l4 + (g->tcp ? 20u : 8u) > len)
                return false;
        g->hdrs = g->l4 + (g->tcp ? (m[g->l4 + 12] >> 4) * 4u : 8u);
        g->mss = le16toh(vh->gso_size);
        if (g->hdrs > len || (g->tcp && g->hdrs < g->l4 + 20) || !g->mss)
                return false;
        g->nseg = (unsigned)((len - g->hdrs + g->mss - 1) / g->mss);
        return g->nseg > 0;
}

void gso_segment_headers(uint8_t *hb, const struct gso_info *g, unsigned i, const uint8_t *payload, unsigned seglen)
{
        unsigned l3 = g->l3, l4 = g->l4, l4len = g->hdrs - g->l4 + seglen;
        uint64_t sum;
        uint16_t cs;

        if (g->v4) {
                unsigned ihl = (hb[l3] & 0xfu) * 4;
                put16(hb + l3 + 2, (uint16_t)(g->hdrs - l3 + seglen));
                put16(hb + l3 + 4, (uint16_t)(get16(hb + l3 + 4) + i));
                memset(hb + l3 + 10, 0, 2);
                cs = (uint16_t)~csum_fold(csum_part(hb + l3, ihl, 0));
                memcpy(hb + l3 + 10, &cs, 2);
                sum = csum_part(hb + l3 + 12, 8, 0);
        } else {
                put16(hb + l3 + 4, (uint16_t)(g->hdrs - l3 - 40 + seglen));
                sum = csum_part(hb + l3 + 8, 32, 0);
        }
        sum = csum_add(sum, htons(g->tcp ? IPPROTO_TCP : IPPROTO_UDP));
        sum = csum_add(sum, htons((uint16_t)l4len));
        if (g->tcp) {
                uint32_t seq;
                memcpy(&seq, hb + l4 + 4, 4);
                seq = htonl(ntohl(seq) + i * g->mss);
                memcpy(hb + l4 + 4, &seq, 4);
                if (i + 1 < g->nseg)
                        hb[l4 + 13] &= (uint8_t)~0x09; /* FIN, PSH: last segment only */
                if (i)
                        hb[l4 + 13] &= (uint8_t)~0x80; /* CWR: first segment only */
                memset(hb + l4 + 16, 0, 2);
        } else {
                put16(hb + l4 + 4, (uint16_t)l4len);
                memset(hb + l4 + 6, 0, 2);
        }
        sum = csum_part(hb + l4, g->hdrs - l4, sum);
        sum = csum_part(payload, seglen, sum);
        cs = (uint16_t)~csum_fold(sum);
        if (!g->tcp && !cs)
                cs = 0xffff;
        memcpy(hb + l4 + (g->tcp ? 16 : 6), &cs, 2);
}
