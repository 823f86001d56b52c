// SPDX-License-Identifier: MIT
#include "daemon/sd.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static long env_long(const char *name)
{
        const char *v = getenv(name);
        char *end;
        long n;

        if (!v || !*v)
                return -1;
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno || *end || n < 0)
                return -1;
        return n;
}

int sd_listen(int *fds, char names[][64], unsigned max)
{
        const char *fdnames = getenv("LISTEN_FDNAMES");
        long pid = env_long("LISTEN_PID"), n = env_long("LISTEN_FDS");

        if (pid != (long)getpid() || n <= 0)
                return 0;
        if (n > (long)max)
                n = (long)max;
        for (long i = 0; i < n; i++) {
                fds[i] = SD_LISTEN_FDS_START + (int)i;
                (void)fcntl(fds[i], F_SETFD, FD_CLOEXEC);
                names[i][0] = 0;
        }
        if (fdnames) {
                const char *p = fdnames;
                for (long i = 0; i < n && *p; i++) {
                        size_t len = strcspn(p, ":");
                        snprintf(names[i], 64, "%.*s", (int)(len < 63 ? len : 63), p);
                        p += len;
                        if (*p == ':')
                                p++;
                }
        }
        /* Children (there are none) must not think these are theirs. */
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        return (int)n;
}

int sd_notify_str(const char *state)
{
        return sd_notify_fds(state, NULL, 0);
}

int sd_notify_fds(const char *state, const int *fds, unsigned nfds)
{
        const char *path = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        socklen_t len;
        int fd, r = 0;

        if (!path || !*path)
                return 0;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = 0; /* abstract namespace */
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        struct iovec iov = {(void *)state, strlen(state)};
        union {
                char buf[CMSG_SPACE(sizeof(int) * 253)];
                struct cmsghdr align;
        } ctl;
        struct msghdr mh = {.msg_name = &sa, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1};

        if (nfds > 253) {
                close(fd);
                return -E2BIG;
        }
        if (nfds) {
                struct cmsghdr *c;

                memset(&ctl, 0, sizeof(ctl));
                mh.msg_control = ctl.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
                r = -errno;
        close(fd);
        return r;
}

uint64_t sd_watchdog_usec(void)
{
        long pid = env_long("WATCHDOG_PID"), usec = env_long("WATCHDOG_USEC");

        if (usec <= 0 || (pid >= 0 && pid != (long)getpid()))
                return 0;
        return (uint64_t)usec;
}
