// SPDX-License-Identifier: MIT
/* vhostctl: ask a running vhostd for its ports, queues, features and counters. See vhostctl(8). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void usage(FILE *f)
{
        fprintf(f, "Usage: vhostctl [-s CONTROL_SOCKET] [--json] [status]\n"
                   "  -s, --socket PATH   vhostd's control socket (default /run/vhostd/vhostd.ctl)\n"
                   "  -j, --json          print JSON for scripts\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
        const char *path = "/run/vhostd/vhostd.ctl", *cmd = "status";
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char buf[65536];
        ssize_t n;
        int c, fd;

        while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        path = optarg;
                        break;
                case 'j':
                        cmd = "json";
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc && strcmp(argv[optind], "status")) {
                fprintf(stderr, "vhostctl: unknown command '%s'\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "vhostctl: socket path too long\n");
                return 2;
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, "vhostctl: cannot connect to %s: %m (is vhostd running with a control socket?)\n",
                        path);
                return 1;
        }
        if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0 || shutdown(fd, SHUT_WR) < 0) {
                fprintf(stderr, "vhostctl: %s: %m\n", path);
                return 1;
        }
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                fwrite(buf, 1, (size_t)n, stdout);
        close(fd);
        return n < 0 ? 1 : 0;
}
