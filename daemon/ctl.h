/* SPDX-License-Identifier: MIT */
/*
 * The control socket vhostctl(8) talks to: one text command per connection ("status", "json", "prometheus",
 * "upgrade [PATH]", ended by a newline or by the client's end of sending), one answer, then vhostd closes. Clients are
 * served from the control loop without ever waiting on them: non-blocking sockets, at most CTL_MAX_CLIENTS at a time,
 * each closed after CTL_CLIENT_TIMEOUT seconds whatever it did.
 */
#ifndef DAEMON_CTL_H
#define DAEMON_CTL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "daemon/log.h"

#define CTL_MAX_CLIENTS 16
#define CTL_CLIENT_TIMEOUT 5.0 /* seconds from accept to the last byte of the answer */

struct port;
struct ctl_client;

struct ctl {
        struct ev_loop *loop;
        int fd;
        ev_io io;
        ev_timer accept_pause; /* accept failed for lack of fds or memory: the listener rests a while */
        char path[108];
        struct port *ports;
        unsigned nports;
        struct ctl_client *clients[CTL_MAX_CLIENTS];
        unsigned nclients;
        unsigned long refused, refused_logged; /* clients turned away because all slots were taken */
        struct ratelimit refuse_rl, accept_rl;
        /* "upgrade [PATH]": starts an upgrade (daemon/handover.h's handover_upgrade); NULL: not offered. */
        int (*upgrade)(const char *binary, void (*done)(void *arg, bool ok, const char *text), void *arg, char *err,
                       size_t errlen);
        bool upgrading; /* a client waits for an upgrade's outcome */
};

int ctl_start(struct ctl *ctl, struct ev_loop *loop, const char *path, struct port *ports, unsigned nports);
/* The same on a listening socket bound to path already (an upgrade's handover). */
int ctl_start_fd(struct ctl *ctl, struct ev_loop *loop, int fd, const char *path, struct port *ports, unsigned nports);
void ctl_stop(struct ctl *ctl); /* safe on a zeroed or stopped ctl; closes every client */

#endif
