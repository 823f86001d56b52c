// SPDX-License-Identifier: MIT
/*
 * Watches the namespace's interfaces through rtnetlink link notifications, so that a port whose interface is
 * deleted is marked down at once and re-attached as soon as an interface of that name exists again, with or
 * without traffic: an AF_XDP socket, in particular, reports nothing when its device goes. Needs no privilege.
 */
#include "daemon/linkmon.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/log.h"

static void handle_msg(struct linkmon *lm, const struct nlmsghdr *nh)
{
        const struct ifinfomsg *ifi = NLMSG_DATA(nh);
        char name[IF_NAMESIZE] = "";
        int len;

        if ((nh->nlmsg_type != RTM_NEWLINK && nh->nlmsg_type != RTM_DELLINK) ||
            nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
                return;
        len = (int)(nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
        for (const struct rtattr *rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
                if (rta->rta_type == IFLA_IFNAME) {
                        size_t n = strnlen(RTA_DATA(rta), RTA_PAYLOAD(rta));
                        if (n >= sizeof(name))
                                return;
                        memcpy(name, RTA_DATA(rta), n);
                        name[n] = 0;
                }
        }
        if (name[0])
                lm->cb(lm->arg, name, nh->nlmsg_type == RTM_DELLINK);
}

static void read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
        struct linkmon *lm = io->data;
        /* aligned for struct nlmsghdr */
        uint32_t buf[8192 / sizeof(uint32_t)];

        for (unsigned round = 0; round < 64; round++) {
                struct sockaddr_nl from;
                socklen_t fromlen = sizeof(from);
                ssize_t n = recvfrom(lm->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);

                if (n < 0) {
                        if (errno == ENOBUFS) {
                                /* The kernel dropped notifications: look at every port once. */
                                if (lm->overruns++ == 0)
                                        log_warn("interface notifications overran; rechecking every port");
                                lm->cb(lm->arg, NULL, false);
                                continue;
                        }
                        if (errno != EINTR)
                                return;
                        continue;
                }
                if (fromlen < sizeof(from) || from.nl_pid != 0)
                        continue; /* only the kernel speaks here */
                /* NLMSG_OK/NEXT spelled out: the macros compare signed with unsigned */
                const uint8_t *p = (const uint8_t *)buf;
                size_t left = (size_t)n;
                while (left >= sizeof(struct nlmsghdr)) {
                        const struct nlmsghdr *nh = (const struct nlmsghdr *)(const void *)p;
                        size_t step = NLMSG_ALIGN(nh->nlmsg_len);

                        if (nh->nlmsg_len < sizeof(*nh) || nh->nlmsg_len > left)
                                break;
                        handle_msg(lm, nh);
                        if (step >= left)
                                break;
                        p += step;
                        left -= step;
                }
        }
}

int linkmon_start(struct linkmon *lm, struct ev_loop *loop, linkmon_cb cb, void *arg)
{
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};

        lm->cb = cb;
        lm->arg = arg;
        lm->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
        if (lm->fd < 0)
                return -errno;
        if (bind(lm->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(lm->fd);
                lm->fd = -1;
                return r;
        }
        ev_io_init(&lm->io, read_cb, lm->fd, EV_READ);
        lm->io.data = lm;
        ev_io_start(loop, &lm->io);
        return 0;
}

void linkmon_stop(struct linkmon *lm, struct ev_loop *loop)
{
        if (lm->fd < 0)
                return;
        ev_io_stop(loop, &lm->io);
        close(lm->fd);
        lm->fd = -1;
}
