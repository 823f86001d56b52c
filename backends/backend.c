// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/backend.h"

static const struct backend_ops *const kinds[] = {
#define BACKEND_OPS_ENTRY(id, name) [BACKEND_KIND_##id] = &backend_##name##_ops,
        BACKEND_KINDS(BACKEND_OPS_ENTRY)
#undef BACKEND_OPS_ENTRY
};

const struct backend_ops *backend_find(const char *kind)
{
        for (size_t i = 0; i < BACKEND_KIND_COUNT; i++)
                if (strcmp(kinds[i]->name, kind) == 0)
                        return kinds[i];
        return NULL;
}

const char *backend_kinds(void)
{
        static char list[64];

        if (!list[0])
                for (size_t i = 0, used = 0; i < BACKEND_KIND_COUNT; i++)
                        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? " " : "",
                                                 kinds[i]->name);
        return list;
}

const struct backend_ops *backend_kind_at(unsigned i)
{
        return i < BACKEND_KIND_COUNT ? kinds[i] : NULL;
}

int backend_link_ioctl(unsigned long req, struct ifreq *ifr)
{
        /* Any socket reaches the interface ioctls; an AF_INET datagram socket sends nothing. */
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

        if (s < 0)
                return -errno;
        if (ioctl(s, req, ifr) < 0)
                r = errno == ENXIO ? -ENODEV : -errno;
        close(s);
        return r;
}

int backend_link_state(const char *ifname, unsigned *ret_flags, unsigned *ret_mtu)
{
        struct ifreq ifr = {0};
        int r;

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        if ((r = backend_link_ioctl(SIOCGIFFLAGS, &ifr)) < 0)
                return r;
        if (ret_flags)
                *ret_flags = (unsigned)ifr.ifr_flags & 0xffff;
        if ((r = backend_link_ioctl(SIOCGIFMTU, &ifr)) < 0)
                return r;
        if (ret_mtu)
                *ret_mtu = (unsigned)ifr.ifr_mtu;
        return 0;
}
