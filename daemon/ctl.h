/* SPDX-License-Identifier: MIT */
/* The control socket vhostctl(8) talks to: one text command per connection, one answer. */
#ifndef DAEMON_CTL_H
#define DAEMON_CTL_H

#include <ev.h>

struct port;

struct ctl {
        struct ev_loop *loop;
        int fd;
        ev_io io;
        char path[108];
        struct port *ports;
        unsigned nports;
};

int ctl_start(struct ctl *ctl, struct ev_loop *loop, const char *path, struct port *ports, unsigned nports);
void ctl_stop(struct ctl *ctl); /* safe on a zeroed or stopped ctl */

#endif
