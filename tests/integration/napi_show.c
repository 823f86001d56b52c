// SPDX-License-Identifier: MIT
/*
 * napi_show: the NAPIs of an interface with their interrupt deferral, one line each, as the kernel's netdev
 * netlink family reports them ("napi ID defer N gro NS suspend NS"), for the tests that check what afxdp's
 * busy polling sets and restores. Exits 1 when the kernel cannot say, 2 on usage.
 *
 *   napi_show IFNAME
 */
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "backends/napi.h"

int main(int argc, char **argv)
{
        struct napi_conf napis[NAPI_LIST_MAX];
        unsigned ifindex;
        int n;

        if (argc != 2) {
                fprintf(stderr, "usage: napi_show IFNAME\n");
                return 2;
        }
        ifindex = if_nametoindex(argv[1]);
        if (!ifindex) {
                fprintf(stderr, "napi_show: no interface %s\n", argv[1]);
                return 1;
        }
        n = napi_conf_list((int)ifindex, napis, NAPI_LIST_MAX);
        if (n < 0) {
                fprintf(stderr, "napi_show: %s: %s\n", argv[1], strerror(-n));
                return 1;
        }
        for (int i = 0; i < n; i++)
                printf("napi %u defer %u gro %llu suspend %llu\n", napis[i].id, napis[i].defer_hard_irqs,
                       (unsigned long long)napis[i].gro_flush_timeout_ns,
                       (unsigned long long)napis[i].irq_suspend_timeout_ns);
        return 0;
}
