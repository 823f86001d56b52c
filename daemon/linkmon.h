/* SPDX-License-Identifier: MIT */
/* Interface notifications (rtnetlink) for the control loop: which ports lost or got back their interface. */
#ifndef DAEMON_LINKMON_H
#define DAEMON_LINKMON_H

#include <ev.h>
#include <stdbool.h>

/* ifname NULL: notifications were lost (socket overrun): any interface may have changed. */
typedef void (*linkmon_cb)(void *arg, const char *ifname, bool gone);

struct linkmon {
        int fd;
        ev_io io;
        linkmon_cb cb;
        void *arg;
        unsigned long overruns;
};

int linkmon_start(struct linkmon *lm, struct ev_loop *loop, linkmon_cb cb, void *arg);
void linkmon_stop(struct linkmon *lm, struct ev_loop *loop); /* safe on a linkmon that never started */

#endif
