// SPDX-License-Identifier: MIT
/*
 * Per-NAPI interrupt deferral, read and set through the kernel's netdev generic netlink family (Linux >= 6.13).
 * Preferred busy polling needs it: without deferral the device's receive work keeps running in softirq on
 * whatever core the traffic comes in on, racing the poller.
 */
#ifndef VHOSTD_BACKENDS_NAPI_H
#define VHOSTD_BACKENDS_NAPI_H

#include <stdint.h>

struct napi_conf {
        uint32_t id;
        uint32_t defer_hard_irqs;        /* empty polls before the device interrupts again */
        uint64_t gro_flush_timeout_ns;   /* the timer that polls meanwhile */
        uint64_t irq_suspend_timeout_ns; /* how long an epoll that found events keeps interrupts off */
};

/*
 * The NAPI serving receive queue `queue` of interface ifindex, with its settings. -ENOENT: no NAPI is linked to
 * that queue (the driver does not say, or the queue is not running); -EOPNOTSUPP: no per-NAPI settings here.
 */
int napi_conf_get(int ifindex, unsigned queue, struct napi_conf *ret);
/* The NAPIs of interface ifindex, up to max (at most NAPI_LIST_MAX): how many, or -errno. */
#define NAPI_LIST_MAX 64
int napi_conf_list(int ifindex, struct napi_conf *out, unsigned max);
/* Sets c->id's settings (CAP_NET_ADMIN). */
int napi_conf_set(const struct napi_conf *c);

#endif
