// SPDX-License-Identifier: MIT
/*
 * half_msg: a front-end that stops in the middle of a vhost-user message, for the crash test of the fd store
 * (tests/e2e/systemd_units.sh): it connects, asks GET_FEATURES and reads the answer, sends the first half of the
 * next message's header, says "half", and waits up to SECONDS for the back-end to close the connection. A vhostd
 * restarted after a crash must not take such a connection over (the half message died with the old process, so
 * the stream would be out of step): it is closed, and the front-end reconnects.
 *
 *   half_msg SOCKET SECONDS
 *
 * Exit 0 when the connection was closed (prints after how long), 1 when it stayed open or anything failed.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct hdr {
        uint32_t request, flags, size;
};

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct hdr get_features = {.request = 1 /* GET_FEATURES */, .flags = 1 /* version 1 */, .size = 0};
        struct hdr next = {.request = 2 /* SET_FEATURES */, .flags = 1, .size = 8};
        uint8_t reply[sizeof(struct hdr) + 8];
        long long t0, deadline;
        int fd;

        if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path))
                return fprintf(stderr, "usage: half_msg SOCKET SECONDS\n"), 1;
        strcpy(sa.sun_path, argv[1]);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return fprintf(stderr, "connect %s: %s\n", argv[1], strerror(errno)), 1;
        if (write(fd, &get_features, sizeof(get_features)) != (ssize_t)sizeof(get_features) ||
            recv(fd, reply, sizeof(reply), MSG_WAITALL) != (ssize_t)sizeof(reply))
                return fprintf(stderr, "GET_FEATURES: no answer\n"), 1;
        if (write(fd, &next, 6) != 6)
                return fprintf(stderr, "half a header: %s\n", strerror(errno)), 1;
        printf("half\n");
        fflush(stdout);
        t0 = now_ms();
        deadline = t0 + atoi(argv[2]) * 1000LL;
        while (now_ms() < deadline) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                char c;

                if (poll(&p, 1, 100) == 1 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0) {
                        printf("closed after %lld ms\n", now_ms() - t0);
                        return 0;
                }
        }
        printf("still open after %s s\n", argv[2]);
        return 1;
}
