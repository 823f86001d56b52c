/* SPDX-License-Identifier: MIT */
/*
 * The Internet checksum (RFC 1071) and big-endian 16-bit fields, for the test tools that build and check
 * frames (pktsend, port_vnet_check). Written apart from backends/rawsock.c on purpose: a test must not
 * check the daemon's checksums with the daemon's own code.
 */
#ifndef TESTS_INTEGRATION_INET_CSUM_H
#define TESTS_INTEGRATION_INET_CSUM_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t sum16(const void *data, size_t len, uint32_t sum)
{
        const uint8_t *p = data;

        for (; len >= 2; p += 2, len -= 2)
                sum += (uint32_t)(p[0] << 8 | p[1]);
        if (len)
                sum += (uint32_t)p[0] << 8;
        return sum;
}

static inline uint16_t fold(uint32_t sum)
{
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t)sum;
}

static inline uint16_t get16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void put16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
}

#endif
