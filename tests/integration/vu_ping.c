// SPDX-License-Identifier: MIT
/*
 * vu_ping: the smallest vhost-user front-end and sd_notify listener, for the shell tests (no socat, no python).
 *
 *   vu_ping SOCKET [TIMEOUT_MS]
 *       Connects to a vhost-user socket, sends VHOST_USER_GET_FEATURES (request 1, flags 0x1, size 0) and prints
 *       the back-end's feature bits as 0x... Exit 0 when a well-formed reply came, 1 otherwise.
 *   vu_ping --listen PATH CMD [ARGS...]
 *       Listens on a unix socket at PATH as fd 3 and runs CMD with it (vhostd --fd 3: a listening socket handed
 *       over by a management tool).
 *   vu_ping --pair CMD [ARGS...]
 *       Runs CMD with one end of a connected socket pair as fd 3 (vhostd --fd 3), sends GET_FEATURES on the other
 *       end, prints the features, hangs up and waits (5 s) for CMD to exit. Exit 0 when the reply came and CMD
 *       exited 0 on its own.
 *   vu_ping --latency SOCKET MILLISECONDS
 *       GET_FEATURES round trips on one connection for MILLISECONDS; prints "count N mean_us N max_ms N" (the
 *       control loop's reply time: it must never wait on something else). Exit 0 when every reply came.
 *   vu_ping --notify PATH [TIMEOUT_MS]
 *       Binds a unix datagram socket at PATH (what NOTIFY_SOCKET names), prints every datagram it receives, one
 *       "key=value" per line, until one contains STOPPING=1 or the timeout passes. Exit 0 when STOPPING=1 came,
 *       1 on timeout or error.
 *
 * The default timeout is 5000 ms. Messages go to stderr, results to stdout.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VU_GET_FEATURES 1u
#define VU_VERSION 0x1u
#define VU_REPLY 0x4u
#define VU_HDR_SIZE 12

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is readable or the deadline passes: 1 readable, 0 timeout, -1 error. */
static int wait_readable(int fd, long long deadline)
{
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                long long left = deadline - now_ms();
                int r;

                if (left <= 0)
                        return 0;
                r = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
                if (r < 0 && errno == EINTR)
                        continue;
                return r < 0 ? -1 : r;
        }
}

static int set_path(struct sockaddr_un *sa, const char *path)
{
        if (strlen(path) >= sizeof(sa->sun_path)) {
                fprintf(stderr, "vu_ping: %s: path too long\n", path);
                return -1;
        }
        sa->sun_family = AF_UNIX;
        strcpy(sa->sun_path, path);
        return 0;
}

/* One GET_FEATURES round trip on a connected socket (left open). */
static int get_features(int fd, const char *path, long long timeout_ms, uint64_t *ret)
{
        unsigned char msg[VU_HDR_SIZE] = {0}, reply[VU_HDR_SIZE + 8];
        long long deadline = now_ms() + timeout_ms;
        uint32_t req = htole32(VU_GET_FEATURES), flags = htole32(VU_VERSION), rflags, rsize;
        uint64_t features;
        size_t got = 0;

        memcpy(msg, &req, 4);
        memcpy(msg + 4, &flags, 4); /* size (msg + 8) stays 0 */
        if (send(fd, msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg)) {
                fprintf(stderr, "vu_ping: %s: send: %s\n", path, strerror(errno));
                return 1;
        }
        while (got < sizeof(reply)) {
                ssize_t n;
                int r = wait_readable(fd, deadline);

                if (r <= 0) {
                        fprintf(stderr, "vu_ping: %s: %s after %zu of %zu reply bytes\n", path,
                                r == 0 ? "timeout" : strerror(errno), got, sizeof(reply));
                        return 1;
                }
                n = recv(fd, reply + got, sizeof(reply) - got, 0);
                if (n <= 0) {
                        fprintf(stderr, "vu_ping: %s: %s after %zu of %zu reply bytes\n", path,
                                n == 0 ? "connection closed" : strerror(errno), got, sizeof(reply));
                        return 1;
                }
                got += (size_t)n;
        }
        memcpy(&req, reply, 4);
        memcpy(&rflags, reply + 4, 4);
        memcpy(&rsize, reply + 8, 4);
        memcpy(&features, reply + 12, 8);
        if (le32toh(req) != VU_GET_FEATURES || !(le32toh(rflags) & VU_REPLY) || le32toh(rsize) != 8) {
                fprintf(stderr, "vu_ping: %s: bad reply header: request %u flags 0x%x size %u\n", path, le32toh(req),
                        le32toh(rflags), le32toh(rsize));
                return 1;
        }
        *ret = le64toh(features);
        return 0;
}

/* GET_FEATURES on a connected socket, which it closes; prints the features. */
static int ping_fd(int fd, const char *path, long long timeout_ms)
{
        uint64_t features;
        int r = get_features(fd, path, timeout_ms, &features);

        close(fd);
        if (r == 0)
                printf("0x%llx\n", (unsigned long long)features);
        return r;
}

/* A stream socket connected to path, or -1 (said on stderr). */
static int connect_path(const char *path)
{
        struct sockaddr_un sa = {0};
        int fd;

        if (set_path(&sa, path) < 0)
                return -1;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, "vu_ping: cannot connect to %s: %s\n", path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

static int ping(const char *path, long long timeout_ms)
{
        int fd = connect_path(path);

        return fd < 0 ? 1 : ping_fd(fd, path, timeout_ms);
}

static int latency(const char *path, long long duration_ms)
{
        long long end = now_ms() + duration_ms, max_us = 0, sum_us = 0, count = 0;
        int fd = connect_path(path);

        if (fd < 0)
                return 1;
        while (now_ms() < end) {
                struct timespec a, b;
                long long us;
                uint64_t features;
                int r;

                clock_gettime(CLOCK_MONOTONIC, &a);
                r = get_features(fd, path, 5000, &features);
                clock_gettime(CLOCK_MONOTONIC, &b);
                if (r != 0)
                        return 1;
                us = (b.tv_sec - a.tv_sec) * 1000000LL + (b.tv_nsec - a.tv_nsec) / 1000;
                sum_us += us;
                max_us = us > max_us ? us : max_us;
                count++;
                usleep(1000);
        }
        close(fd);
        printf("count %lld mean_us %lld max_ms %lld\n", count, count ? sum_us / count : 0, max_us / 1000);
        return 0;
}

/* Puts fd at 3 (without CLOEXEC) and runs argv. */
static void exec_with_fd3(int fd, char **argv)
{
        if (fd != 3 && dup2(fd, 3) < 0)
                _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "vu_ping: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
}

static int listen_exec(const char *path, char **argv)
{
        struct sockaddr_un sa = {0};
        int fd;

        if (set_path(&sa, path) < 0)
                return 1;
        (void)unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
                fprintf(stderr, "vu_ping: cannot listen on %s: %s\n", path, strerror(errno));
                return 1;
        }
        exec_with_fd3(fd, argv);
        return 127;
}

static int pair_exec(char **argv)
{
        long long deadline;
        int sv[2], status, rc;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                fprintf(stderr, "vu_ping: socketpair: %s\n", strerror(errno));
                return 1;
        }
        pid = fork();
        if (pid < 0)
                return 1;
        if (pid == 0) {
                close(sv[0]);
                exec_with_fd3(sv[1], argv);
        }
        close(sv[1]);
        rc = ping_fd(sv[0], "socket pair", 5000); /* closes sv[0]: the back-end sees the hang-up */
        deadline = now_ms() + 5000;
        while (waitpid(pid, &status, WNOHANG) == 0) {
                if (now_ms() > deadline) {
                        fprintf(stderr, "vu_ping: %s did not exit after the hang-up\n", argv[0]);
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        return 1;
                }
                usleep(20000);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "vu_ping: %s ended with status 0x%x\n", argv[0], status);
                return 1;
        }
        return rc;
}

static int notify(const char *path, long long timeout_ms)
{
        struct sockaddr_un sa = {0};
        long long deadline = now_ms() + timeout_ms;
        char buf[4096];
        int fd, rc = 1;

        if (set_path(&sa, path) < 0)
                return 1;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, "vu_ping: cannot bind %s: %s\n", path, strerror(errno));
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        for (;;) {
                ssize_t n;
                int r = wait_readable(fd, deadline);

                if (r <= 0) {
                        fprintf(stderr, "vu_ping: %s: %s before STOPPING=1\n", path,
                                r == 0 ? "timeout" : strerror(errno));
                        break;
                }
                n = recv(fd, buf, sizeof(buf) - 1, 0);
                if (n < 0) {
                        fprintf(stderr, "vu_ping: %s: recv: %s\n", path, strerror(errno));
                        break;
                }
                buf[n] = 0;
                printf("%s%s", buf, n > 0 && buf[n - 1] == '\n' ? "" : "\n");
                if (strstr(buf, "STOPPING=1")) {
                        rc = 0;
                        break;
                }
        }
        close(fd);
        unlink(path);
        return rc;
}

int main(int argc, char **argv)
{
        long long timeout_ms = 5000;
        if (argc > 3 && !strcmp(argv[1], "--listen"))
                return listen_exec(argv[2], argv + 3);
        if (argc == 4 && !strcmp(argv[1], "--latency"))
                return latency(argv[2], atoll(argv[3]));
        if (argc > 2 && !strcmp(argv[1], "--pair"))
                return pair_exec(argv + 2);
        int notify_mode = argc > 1 && !strcmp(argv[1], "--notify");
        int first = notify_mode ? 2 : 1;

        if (argc < first + 1 || argc > first + 2) {
                fprintf(stderr, "usage: vu_ping SOCKET [TIMEOUT_MS]\n       vu_ping --notify PATH [TIMEOUT_MS]\n");
                return 2;
        }
        if (argc == first + 2)
                timeout_ms = atoll(argv[first + 1]);
        return notify_mode ? notify(argv[first], timeout_ms) : ping(argv[first], timeout_ms);
}
