// SPDX-License-Identifier: MIT
/*
 * Per-NAPI interrupt deferral, read and set through the kernel's netdev generic netlink family (Linux >= 6.13).
 * Preferred busy polling needs it: without deferral the device's receive work keeps running in softirq on
 * whatever core the traffic comes in on, racing the poller.
 */
#ifndef VHOSTD_BACKENDS_NAPI_H
#define VHOSTD_BACKENDS_NAPI_H

#include <stdbool.h>
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

/*
 * A child process that gives the n NAPIs their settings back when r->fd (the write end of a pipe, kept by the
 * caller) closes: at napi_restorer_stop(), or when this process dies however it dies. Started while we
 * still have CAP_NET_ADMIN, it keeps it after we drop our privileges. It is our own program run again
 * (/proc/self/exe NAPI_RESTORER_ARG id:defer:gro:suspend...; daemon/main.c runs it): it holds
 * no mapping or fd of ours but the pipe's read end, and reads nothing else. 0 or -errno (then r->fd is -1).
 */
#define NAPI_RESTORER_ARG "--napi-restorer"
struct napi_restorer {
        int fd; /* the pipe's write end (close-on-exec), -1: none */
        int pid;
};
int napi_restorer_start(struct napi_restorer *r, const struct napi_conf *saved, unsigned n);
/* restore: the child sets the saved values and is waited for (up to a second); else it exits leaving them.
 * Nothing without a restorer; r->fd is -1 after. */
void napi_restorer_stop(struct napi_restorer *r, bool restore);

#endif
