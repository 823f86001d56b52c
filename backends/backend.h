/* SPDX-License-Identifier: MIT */
/*
 * The port interface: one small ops table per kind of host port.
 * Backends see iovecs and virtio-net headers, never vrings or guest addresses,
 * and they never log: they return negative errno and the daemon reports it.
 */
#ifndef BACKENDS_BACKEND_H
#define BACKENDS_BACKEND_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backends/backend_cfg.h"
#include "backends/virtio_net.h" /* the frame format: struct virtio_net_hdr, VIRTIO_NET_F_* */

/*
 * The most an Ethernet frame is longer than its MTU: the Ethernet header (14) and one VLAN tag (4). Every place
 * that sizes a frame from an MTU, or an MTU from a frame buffer, uses this.
 */
#define BACKEND_ETH_OVERHEAD (14 + 4)

/* One guest->port frame. iov starts with the guest's virtio-net header (hdr_len bytes). */
struct frame {
        const struct iovec *iov;
        unsigned iovcnt;
        size_t len; /* header included */
};

/*
 * Where received frames go. reserve() hands out guest buffers for one frame of frame_len bytes, header
 * included (0 when the backend cannot know before reading). The first hdr_len bytes are the header slot:
 * the backend writes a struct virtio_net_hdr there and leaves the rest of the slot alone. With a known
 * frame_len the buffers always hold the whole frame. reserve() returns -ENOBUFS when the guest has no room
 * now (stop and keep the frame), -EMSGSIZE when the frame does not fit the guest's buffers (drop it: the
 * sink counted it as too big; frames are never truncated). commit() reports the bytes written, header
 * included. frame_max: the largest frame, header included, that the guest may be sent (its MTU, or 64 KiB with
 * GSO); buffers reserve(0) gives may be smaller (a guest without mergeable buffers), and a backend that
 * cannot tell a frame's size before reading must then not let it be cut short.
 */
struct rx_sink {
        size_t frame_max;
        int (*reserve)(struct rx_sink *sink, size_t frame_len, const struct iovec **ret_iov, unsigned *ret_iovcnt);
        void (*commit)(struct rx_sink *sink, size_t len);
        /* A frame that did not fit the buffers reserve() gave was lost (counted as a drop). */
        void (*dropped)(struct rx_sink *sink);
};

struct backend; /* each kind embeds this first */

struct backend_ops {
        const char *name;
        /* The most this kind can do, for --print-capabilities; an open port may offer less (see features). */
        uint64_t max_features;
        unsigned mtu_ceiling;
        /* What queue q sends comes back on queue q's receive side at once (the loopback): after a send the worker
         * reads, as no fd would tell it. Such a port has no fd to wait on (queue_fd -1). */
        bool tx_feeds_rx;
        /* Opens the port with nqueues queue pairs (privileged; done once at start-up). */
        int (*open)(const struct backend_cfg *cfg, unsigned nqueues, struct backend **ret);
        void (*close)(struct backend *be); /* NULL-safe */
        /* Offload feature bits (VIRTIO_NET_F_*) the port can honour, and the largest MTU it carries. */
        uint64_t (*features)(const struct backend *be);
        unsigned (*max_mtu)(const struct backend *be);
        /* Applies what the guest accepted before traffic starts; hdr_len is the guest's header size. */
        int (*configure)(struct backend *be, unsigned q, uint64_t acked_features, unsigned hdr_len);
        /* The fd the worker waits on for queue q (readable: frames to receive; writable: room to send). */
        int (*queue_fd)(const struct backend *be, unsigned q);
        /*
         * Sends up to n frames; returns how many were taken, or -errno when none was: -EAGAIN: wait for room (the
         * fd turns writable); -ENOSPC: full until this queue's receive side gives frames up (the loopback's FIFO:
         * the worker tries again after rx_burst, no timer); -ENOBUFS/-ENOMEM: no notification, retried on a timer.
         */
        int (*tx_burst)(struct backend *be, unsigned q, const struct frame *frames, unsigned n);
        /* Takes up to budget frames from the port into sink (dropped ones count); returns how many, or -errno. */
        int (*rx_burst)(struct backend *be, unsigned q, struct rx_sink *sink, unsigned budget);
        /*
         * Optional. Checks queue q of the port and, when its interface was deleted and one of that name exists
         * again, reattaches the queue to it (re-creating sockets or rings as needed). Returns 0 when the queue
         * works on the fd it had, 1 when it works through a new or re-created fd (ask queue_fd again), -errno
         * while it does not (-ENODEV: no such interface, -ENETDOWN: link down, -EPERM: re-creating needs a
         * privilege the daemon no longer has). Called by the queue's worker only.
         */
        int (*recover)(struct backend *be, unsigned q);
        /*
         * Optional. Frames for queue q that the kernel dropped since open() because the port's receive ring was
         * full (the worker fell behind, or the guest stopped taking frames): lost before the port took them, so
         * no vring counts them. Called with queue q's worker quiesced, or when it is not running.
         */
        uint64_t (*kernel_drops)(struct backend *be, unsigned q);
        /*
         * Optional (without them the port cannot be handed to a new vhostd by an upgrade). handover_fds() fills fds
         * (at most max) with what the port is made of, and notes[q] for each queue with what the next process needs
         * besides them to go on where this one stops (a receive cursor...); the fds stay this port's. Called with
         * every worker quiesced, and the port goes on unchanged if the handover fails. Returns how many fds, or
         * -errno. live: called while the workers run, for a process that starts after this one crashed (systemd's
         * fd store): what it gives must stay right whenever the process dies; -EOPNOTSUPP when the port cannot
         * (it keeps positions of its own that die with the process), and it is then opened anew.
         */
        int (*handover_fds)(struct backend *be, int *fds, unsigned max, uint64_t *notes, bool live);
        /*
         * Optional. Called by queue q's worker after each rx_burst(), once what the burst gave the guest is in
         * the used ring: a port whose live handover carries a receive position records it here.
         */
        void (*rx_done)(struct backend *be, unsigned q);
        /* Opens the port from what handover_fds() gave another process, without privileges and without changing
         * anything the old process would see. The fds are the port's from the call on (closed if it fails). */
        int (*adopt)(const struct backend_cfg *cfg, unsigned nqueues, const int *fds, unsigned nfds,
                     const uint64_t *notes, struct backend **ret);
};

/* The most fds a port hands over (handover_fds()'s max). */
#define BACKEND_HANDOVER_FDS_MAX 64

struct backend {
        const struct backend_ops *ops;
        unsigned nqueues;
        /* Set by open() when the port works, but without something it would use where it can (a static string
         * naming what and why); the daemon logs it. NULL: nothing to say. */
        const char *degraded;
        /* Set by open() or adopt() where the way the port carries frames depends on the kernel or the device (a
         * string that lives as long as the backend); the daemon logs it with the port. NULL: nothing to say. */
        const char *details;
        /* Set by open() or adopt(): the worker's epoll busy-polls the device's NAPI this long before it sleeps
         * (preferred busy polling, EPIOCSPARAMS, Linux >= 6.9); 0: it does not. */
        unsigned epoll_busy_poll_us;
};

/* backend_loopback_ops, backend_tap_ops...: one per kind in BACKEND_KINDS, defined in backends/<name>.c. */
#define BACKEND_OPS_DECLARE(id, name) extern const struct backend_ops backend_##name##_ops;
BACKEND_KINDS(BACKEND_OPS_DECLARE)
#undef BACKEND_OPS_DECLARE

/* Looks a kind up by name; NULL when unknown. */
const struct backend_ops *backend_find(const char *kind);
/* Space-separated list of kinds, for error messages. */
const char *backend_kinds(void);
/* The i-th kind, NULL past the last: for listing them all. */
const struct backend_ops *backend_kind_at(unsigned i);

/* An interface ioctl (SIOCGIFFLAGS, SIOCSIFMTU...) on ifr; -ENODEV when there is no interface of that name. */
int backend_link_ioctl(unsigned long req, struct ifreq *ifr);
/* An interface's flags (IFF_*) and MTU; -ENODEV when there is none of that name. Either pointer may be NULL. */
int backend_link_state(const char *ifname, unsigned *ret_flags, unsigned *ret_mtu);

#endif
