/* SPDX-License-Identifier: MIT */
/* A configured vhost-user port: its socket (listening or connecting), its host backend and the current connection. */
#ifndef DAEMON_PORT_H
#define DAEMON_PORT_H

#include <ev.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "backends/backend.h"
#include "config/config.h"

struct vu_dev;

struct port {
        const struct port_cfg *cfg;
        char name[48]; /* "port NAME", for logs */
        struct backend *be;
        struct ev_loop *loop;
        int listen_fd; /* server mode; -1 in client mode */
        bool listen_fd_inherited;
        bool handed_connection; /* --fd gave a connected socket: when it ends, the port has nothing more to do */
        ev_io listen_io;
        ev_timer retry_timer; /* client mode: reconnect with back-off */
        double retry_delay;
        struct vu_dev *dev; /* current front-end, NULL when none */
        unsigned long connections;
        atomic_ulong faults;     /* queue pairs that lost the port (deleted, down), over all connections */
        atomic_ulong recoveries; /* and got it back */
        uint64_t kernel_drops_seen[CONFIG_MAX_QUEUES]; /* per queue, as the control socket last read them */
};

/*
 * What the fd store follows (daemon/handover.c), set once by main; members may be NULL. busy: a message of p's
 * front-end is being read and handled; changed: a connection came, went or changed (after busy, the message is
 * handled).
 */
struct port_hooks {
        void (*busy)(const struct port *p, bool busy);
        int (*changed)(void);
};
extern struct port_hooks port_hooks;

int port_open_backend(struct port *p);
/* Sets up the socket side; listen_fd >= 0 is an inherited (socket-activated) listening socket. */
int port_start(struct port *p, struct ev_loop *loop, int listen_fd);
/* --fd: serves an inherited socket, listening (like socket activation) or already connected (one front-end). */
int port_start_on_fd(struct port *p, struct ev_loop *loop, int fd);
void port_stop(struct port *p);
/*
 * An upgrade (daemon/handover.c): the port's backend was adopted; serve the listening socket handed over (-1: none),
 * unlinking its path when stopping if path_ours, or a handed connection only. Starts no connection attempt.
 */
void port_adopt(struct port *p, struct ev_loop *loop, int listen_fd, bool path_ours, bool handed_connection);
/* Or, without one, a port in client mode goes on trying to connect. */
void port_adopt_unconnected(struct port *p);
/* Then the connection handed over, as a device with nothing negotiated yet (vu_dev_import() fills it). */
int port_adopt_connection(struct port *p, int fd);
/* The control loop saw an interface named ifname deleted (gone) or added/changed. */
void port_link_event(struct port *p, const char *ifname, bool gone);
/* The current connection ended (the front-end left, broke the protocol, or a worker lost the device). */
void port_connection_closed(struct port *p);

#endif
