/* SPDX-License-Identifier: MIT */
/*
 * What a port is configured with: the list of port kinds and struct backend_cfg. Kept apart from the ops
 * interface (backend.h) so that config/ can fill a port's settings without seeing how ports work.
 */
#ifndef BACKENDS_BACKEND_CFG_H
#define BACKENDS_BACKEND_CFG_H

#include <net/if.h>
#include <stdbool.h>

/*
 * Every kind of port, the one list: X(ID, name) with name as written in the configuration (backend = name),
 * served by backend_<name>_ops in backends/<name>.c. backend.c builds its table of ops from it, config/ its
 * names, kind bits and messages; the order is the order kinds are listed in.
 */
#define BACKEND_KINDS(X) X(LOOPBACK, loopback) X(TAP, tap) X(RAWSOCK, rawsock) X(AFXDP, afxdp) X(NULLPORT, null)

enum backend_kind {
#define BACKEND_KIND_ENUM(id, name) BACKEND_KIND_##id,
        BACKEND_KINDS(BACKEND_KIND_ENUM)
#undef BACKEND_KIND_ENUM
                BACKEND_KIND_COUNT
};

/* null: the frames it generates for the guest, Ethernet header included (no FCS). */
#define NULL_FRAME_MIN 60
#define NULL_FRAME_MAX 65535

enum backend_xdp_mode { BACKEND_XDP_AUTO = 0, BACKEND_XDP_NATIVE, BACKEND_XDP_SKB };
/* afxdp's preferred busy polling; auto: where the frames come from a NAPI of the device (native XDP mode). */
enum backend_busy_poll { BACKEND_BUSY_POLL_AUTO = 0, BACKEND_BUSY_POLL_YES, BACKEND_BUSY_POLL_NO };

/* Everything a port needs from the configuration, filled by config/ or the command line. */
struct backend_cfg {
        char kind[16];            /* a name from BACKEND_KINDS */
        char ifname[IF_NAMESIZE]; /* tap name, or the interface to bind to */
        unsigned mtu;             /* 0: leave the interface's MTU alone */
        bool set_up;              /* tap: bring the link up */
        bool offloads;            /* tap/rawsock/afxdp: offer checksum/TSO offloads */
        bool promisc;             /* rawsock */
        bool qdisc_bypass;        /* rawsock */
        bool io_uring;            /* tap: send a burst with one io_uring submission */
        /* null: the frames it generates for the guest, Ethernet header included (no FCS). */
#define NULL_FRAME_MIN 60
#define NULL_FRAME_MAX 65535

        enum backend_xdp_mode xdp_mode;   /* afxdp */
        bool force_copy;                  /* afxdp */
        bool zero_copy;                   /* afxdp: require zero-copy */
        enum backend_busy_poll busy_poll; /* afxdp */
        unsigned start_queue;             /* afxdp: first NIC queue */
        unsigned frame_size;              /* afxdp: UMEM frame size, 2048 or 4096; 0: the smallest for the MTU */
        char xsks_map[256];               /* afxdp: pinned xsks_map path: inhibit program loading */
        unsigned rate;                    /* null: frames/s generated per queue pair, 0: as fast as taken */
        unsigned frame_len;               /* null: generated frame length */
};

#endif
