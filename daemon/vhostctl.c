// SPDX-License-Identifier: MIT
/*
 * vhostctl: ask a running vhostd for its ports, queues, features and counters. See vhostctl(8).
 *
 * One command per connection: "status" (text), "json", or "prometheus" (Prometheus text exposition). --watch asks
 * for "prometheus" every interval and prints per-second rates from the differences: that format is flat (one
 * counter per line, labels for port and vring), so reading it takes a line parser, not a JSON library.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX (64u << 20) /* far above any real answer; a daemon gone mad cannot make us eat all memory */
#define QUERY_TIMEOUT_S 10
#define UPGRADE_TIMEOUT_S 60 /* vhostd gives the new binary 20 s to start and 10 s to take the state */

static volatile sig_atomic_t stop_requested;

static void usage(FILE *f)
{
        fprintf(f, "Usage: vhostctl [-s CONTROL_SOCKET] [--json | --prometheus | --watch [-i SEC] [-c N]] [status]\n"
                   "       vhostctl [-s CONTROL_SOCKET] upgrade [BINARY]\n"
                   "       vhostctl terminate [PID]\n"
                   "  upgrade [BINARY]      hand every port and connection to a new vhostd (default: the installed\n"
                   "                        binary vhostd was started from) without the guests noticing\n"
                   "  terminate [PID]       stop vhostd PID (SIGTERM) and wait until it has exited; no PID: nothing\n"
                   "                        to do (vhostd@.service's ExecStop=, see vhostctl(8))\n"
                   "  -s, --socket PATH     vhostd's control socket (default /run/vhostd/vhostd.ctl)\n"
                   "  -j, --json            print JSON for scripts\n"
                   "  -p, --prometheus      print the counters in Prometheus text format (node_exporter textfile)\n"
                   "  -w, --watch           print per-second rates per port and vring, every interval\n"
                   "  -i, --interval SEC    --watch interval in seconds (default 1, at least 0.1)\n"
                   "  -c, --count N         --watch: stop after N reports (default: until interrupted)\n"
                   "  -h, --help            this text\n");
}

struct answer {
        char *buf;
        size_t len;
};

/*
 * Sends @cmd, reads the whole answer. Returns 0, or 1 with a message printed (cannot connect, read error, the
 * daemon said "error: ..."); -1 when interrupted by a signal we handle (--watch).
 */
static int query(const char *path, const char *cmd, struct answer *ret)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        bool upgrade = !strncmp(cmd, "upgrade", 7);
        struct timeval tv = {.tv_sec = upgrade ? UPGRADE_TIMEOUT_S : QUERY_TIMEOUT_S};
        size_t cap = 0, len = 0;
        char *buf = NULL, line[1100];
        int fd, r = 1;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        snprintf(line, sizeof(line), "%s\n", cmd);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, "vhostctl: cannot connect to %s: %m (is vhostd running with a control socket?)\n",
                        path);
                goto out;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0 || shutdown(fd, SHUT_WR) < 0) {
                fprintf(stderr, "vhostctl: %s: %m\n", path);
                goto out;
        }
        for (;;) {
                ssize_t n;

                if (len + 1 >= cap) {
                        char *b;

                        if (cap >= ANSWER_MAX) {
                                fprintf(stderr, "vhostctl: %s: answer larger than %u MiB\n", path, ANSWER_MAX >> 20);
                                goto out;
                        }
                        cap = cap ? 2 * cap : 65536;
                        b = realloc(buf, cap);
                        if (!b) {
                                fprintf(stderr, "vhostctl: out of memory\n");
                                goto out;
                        }
                        buf = b;
                }
                n = read(fd, buf + len, cap - 1 - len);
                if (n < 0 && errno == EINTR && !stop_requested)
                        continue;
                if (n < 0 && errno == EINTR) {
                        r = -1;
                        goto out;
                }
                if (n < 0 && len > 7 && !strncmp(buf, "error: ", 7))
                        break; /* refused (too many clients) before it read our command: the reason is in */
                if (n < 0) {
                        fprintf(stderr, "vhostctl: %s: %s\n", path,
                                errno == EAGAIN ? "no answer in time" : strerror(errno));
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (!len) {
                fprintf(stderr, "vhostctl: %s: empty answer\n", path);
                goto out;
        }
        buf[len] = 0;
        if (!strncmp(buf, "error: ", 7)) {
                fprintf(stderr, "vhostctl: %s: %s%s", path, buf + 7, buf[len - 1] == '\n' ? "" : "\n");
                goto out;
        }
        ret->buf = buf;
        ret->len = len;
        buf = NULL;
        r = 0;
out:
        free(buf);
        if (fd >= 0)
                close(fd);
        return r;
}

/* ---- --watch ----------------------------------------------------------------------------------------------- */

/* The counters --watch shows, and the Prometheus metric each comes from. */
enum { V_FRAMES, V_BYTES, V_DROPS, V_KICKS, V_CALLS, V_KDROPS, V_CONNECTED, V_CONNECTIONS, NVAL };

static const char *const val_metric[NVAL] = {
        [V_FRAMES] = "vhostd_vring_frames_total", [V_BYTES] = "vhostd_vring_bytes_total",
        [V_DROPS] = "vhostd_vring_drops_total",   [V_KICKS] = "vhostd_vring_kicks_total",
        [V_CALLS] = "vhostd_vring_calls_total",   [V_KDROPS] = "vhostd_port_kernel_drops_total",
        [V_CONNECTED] = "vhostd_port_connected",  [V_CONNECTIONS] = "vhostd_port_connections_total",
};

/* One port (vring < 0) or one vring of a port. */
struct row {
        char port[64];
        int vring;
        unsigned qp;
        char dir[4];
        bool has[NVAL];
        uint64_t v[NVAL];
};

struct sample {
        struct row *rows;
        size_t n, cap;
        struct timespec t; /* CLOCK_MONOTONIC when the answer was in */
};

static void sample_free(struct sample *s)
{
        free(s->rows);
        memset(s, 0, sizeof(*s));
}

static struct row *row_find(const struct sample *s, const char *port, int vring)
{
        for (size_t i = 0; i < s->n; i++)
                if (s->rows[i].vring == vring && !strcmp(s->rows[i].port, port))
                        return &s->rows[i];
        return NULL;
}

/* The row for (port, vring), added at the end when new: rows keep the daemon's order. NULL when out of memory. */
static struct row *row_get(struct sample *s, const char *port, int vring)
{
        struct row *r = row_find(s, port, vring);

        if (r)
                return r;
        if (s->n == s->cap) {
                size_t cap = s->cap ? 2 * s->cap : 64;
                struct row *rows = realloc(s->rows, cap * sizeof(*rows));

                if (!rows)
                        return NULL;
                s->rows = rows;
                s->cap = cap;
        }
        r = &s->rows[s->n++];
        memset(r, 0, sizeof(*r));
        snprintf(r->port, sizeof(r->port), "%s", port);
        r->vring = vring;
        return r;
}

/*
 * Reads one label value (after the opening quote) into @val, undoing the format's escapes. Returns the character
 * after the closing quote, or NULL when the line is malformed.
 */
static const char *label_value(const char *p, char *val, size_t cap)
{
        size_t n = 0;

        for (; *p && *p != '"'; p++) {
                char c = *p;

                if (c == '\\') {
                        c = *++p;
                        if (c == 'n')
                                c = '\n';
                        else if (c != '\\' && c != '"')
                                return NULL;
                }
                if (n + 1 < cap)
                        val[n++] = c;
        }
        val[n] = 0;
        return *p == '"' ? p + 1 : NULL;
}

/* One sample line: name{port="..",vring="..",queue_pair="..",direction=".."} value. Other lines are skipped. */
static int parse_line(struct sample *s, const char *line)
{
        char port[64] = "", dir[4] = "", val[64];
        int vring = -1, which = -1;
        unsigned qp = 0;
        size_t nl = strcspn(line, "{ ");
        const char *p = line + nl;
        unsigned long long v;
        char *end;
        struct row *r;

        if (nl == strlen("vhostd_port_info") && !strncmp(line, "vhostd_port_info", nl))
                which = NVAL; /* registers the port, so ports without a front-end are listed too */
        for (int i = 0; i < NVAL && which < 0; i++)
                if (strlen(val_metric[i]) == nl && !strncmp(line, val_metric[i], nl))
                        which = i;
        if (which < 0 || *p != '{')
                return 0;
        for (p++; *p != '}';) {
                char key[32];
                size_t kl = strcspn(p, "=}");

                if (p[kl] != '=' || p[kl + 1] != '"')
                        return -1;
                snprintf(key, sizeof(key), "%.*s", (int)(kl < sizeof(key) ? kl : sizeof(key) - 1), p);
                p = label_value(p + kl + 2, val, sizeof(val));
                if (!p)
                        return -1;
                if (!strcmp(key, "port"))
                        snprintf(port, sizeof(port), "%s", val);
                else if (!strcmp(key, "vring"))
                        vring = atoi(val);
                else if (!strcmp(key, "queue_pair"))
                        qp = (unsigned)atoi(val);
                else if (!strcmp(key, "direction"))
                        snprintf(dir, sizeof(dir), "%.3s", val);
                if (*p == ',')
                        p++;
                else if (*p != '}')
                        return -1;
        }
        if (!port[0] || p[1] != ' ')
                return -1;
        errno = 0;
        v = strtoull(p + 2, &end, 10);
        if (errno || end == p + 2)
                return -1;
        if (which != NVAL && which <= V_CALLS && vring < 0)
                return -1;
        if (!row_get(s, port, -1) || !(r = row_get(s, port, which <= V_CALLS ? vring : -1)))
                return -ENOMEM;
        if (which == NVAL)
                return 0;
        r->qp = qp;
        if (dir[0])
                snprintf(r->dir, sizeof(r->dir), "%.3s", dir);
        r->has[which] = true;
        r->v[which] = v;
        return 0;
}

static int sample_take(const char *path, struct sample *s)
{
        struct answer a = {0};
        int r = query(path, "prometheus", &a);

        if (r)
                return r;
        clock_gettime(CLOCK_MONOTONIC, &s->t);
        s->n = 0;
        for (char *line = a.buf, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (*line == '#' || !*line)
                        continue;
                r = parse_line(s, line);
                if (r < 0) {
                        fprintf(stderr, "vhostctl: %s: %s in the answer: %s\n", path,
                                r == -ENOMEM ? "out of memory" : "malformed line", line);
                        free(a.buf);
                        return 1;
                }
        }
        free(a.buf);
        return 0;
}

/* Per second, from @prev to @cur; a counter that restarted (a new connection, a restarted vhostd) counts from 0. */
static double rate(const struct row *cur, const struct row *prev, bool restarted, int i, double dt)
{
        uint64_t base = !restarted && prev && prev->has[i] && prev->v[i] <= cur->v[i] ? prev->v[i] : 0;

        return (double)(cur->v[i] - base) / dt;
}

static void print_rates(const struct sample *prev, const struct sample *cur)
{
        double dt = (double)(cur->t.tv_sec - prev->t.tv_sec) + (double)(cur->t.tv_nsec - prev->t.tv_nsec) / 1e9;
        int w = 4;
        char when[16];
        time_t now = time(NULL);
        struct tm tm;

        if (dt <= 0)
                dt = 1e-9;
        strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&now, &tm));
        for (size_t i = 0; i < cur->n; i++)
                if ((int)strlen(cur->rows[i].port) > w)
                        w = (int)strlen(cur->rows[i].port);
        printf("%-8s  %-*s  %5s  %-3s  %3s  %10s  %10s  %9s  %9s  %9s  %9s\n", "TIME", w, "PORT", "VRING", "DIR", "QP",
               "FRAMES/s", "Mbit/s", "DROPS/s", "KDROPS/s", "KICKS/s", "CALLS/s");
        for (size_t i = 0; i < cur->n; i++) {
                const struct row *port = &cur->rows[i], *pport;
                double sum[NVAL] = {0};
                bool restarted;
                unsigned nv = 0;
                char kd[16] = "-";

                if (port->vring >= 0)
                        continue;
                pport = row_find(prev, port->port, -1);
                restarted = !pport || pport->v[V_CONNECTIONS] != port->v[V_CONNECTIONS];
                if (!port->v[V_CONNECTED]) {
                        printf("%-8s  %-*s  %5s  %-3s  %3s  no front-end\n", when, w, port->port, "-", "-", "-");
                        continue;
                }
                for (size_t j = 0; j < cur->n; j++) {
                        const struct row *r = &cur->rows[j], *pr;
                        double v[NVAL];

                        if (r->vring < 0 || strcmp(r->port, port->port))
                                continue;
                        pr = row_find(prev, r->port, r->vring);
                        for (int k = V_FRAMES; k <= V_CALLS; k++) {
                                v[k] = rate(r, pr, restarted, k, dt);
                                sum[k] += v[k];
                        }
                        nv++;
                        printf("%-8s  %-*s  %5d  %-3s  %3u  %10.0f  %10.1f  %9.0f  %9s  %9.0f  %9.0f\n", when, w,
                               r->port, r->vring, r->dir, r->qp, v[V_FRAMES], v[V_BYTES] * 8 / 1e6, v[V_DROPS], "-",
                               v[V_KICKS], v[V_CALLS]);
                }
                if (port->has[V_KDROPS])
                        snprintf(kd, sizeof(kd), "%.0f", rate(port, pport, false, V_KDROPS, dt));
                if (nv > 1 || port->has[V_KDROPS])
                        printf("%-8s  %-*s  %5s  %-3s  %3s  %10.0f  %10.1f  %9.0f  %9s  %9.0f  %9.0f\n", when, w,
                               port->port, "all", "-", "-", sum[V_FRAMES], sum[V_BYTES] * 8 / 1e6, sum[V_DROPS], kd,
                               sum[V_KICKS], sum[V_CALLS]);
        }
        fflush(stdout);
}

static void on_stop_signal(int sig)
{
        (void)sig;
        stop_requested = 1;
}

static int watch(const char *path, double interval, unsigned long count)
{
        struct sample s[2] = {0};
        struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART: a sleep or read ends at once */
        struct timespec next;
        int r, cur = 0;

        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        r = sample_take(path, &s[0]);
        next = s[0].t;
        for (unsigned long done = 0; !r && !stop_requested && (!count || done < count); done++) {
                time_t whole = (time_t)interval;

                next.tv_sec += whole;
                next.tv_nsec += (long)((interval - (double)whole) * 1e9);
                if (next.tv_nsec >= 1000000000L) {
                        next.tv_sec++;
                        next.tv_nsec -= 1000000000L;
                }
                /* Absolute deadlines: the reports do not drift by the time each query takes. */
                while (!stop_requested && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
                        ;
                if (stop_requested)
                        break;
                r = sample_take(path, &s[!cur]);
                if (r)
                        break;
                if (done)
                        printf("\n");
                print_rates(&s[cur], &s[!cur]);
                cur = !cur;
        }
        sample_free(&s[0]);
        sample_free(&s[1]);
        return r < 0 ? 0 : r; /* interrupted: a normal end */
}

/* ---- terminate ----------------------------------------------------------------------------------------------- */

/*
 * systemd waits for a main process to exit only when it forked it itself; after an upgrade vhostd's main process
 * is the upgraded one, which the old vhostd forked, so systemd would follow SIGTERM with SIGKILL at once. As the
 * unit's ExecStop=, this waits instead (systemd waits for ExecStop=, up to TimeoutStopSec=). A pidfd: the PID
 * cannot be reused under us between the check, the signal and the wait.
 */
static int terminate(const char *arg)
{
        char *end, path[64], comm[32] = "";
        long pid;
        FILE *f;
        int pidfd;

        if (!arg || !*arg)
                return 0; /* ExecStop= with no main process left ($MAINPID empty) */
        errno = 0;
        pid = strtol(arg, &end, 10);
        if (errno || *end || pid <= 1 || pid > 0x3fffffff) {
                fprintf(stderr, "vhostctl: terminate wants a process id, got '%s'\n", arg);
                return 2;
        }
        pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
        if (pidfd < 0) {
                if (errno == ESRCH)
                        return 0; /* already gone */
                fprintf(stderr, "vhostctl: process %ld: %m\n", pid);
                return 1;
        }
        snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
        if ((f = fopen(path, "r"))) {
                if (!fgets(comm, sizeof(comm), f))
                        comm[0] = 0;
                fclose(f);
        }
        comm[strcspn(comm, "\n")] = 0;
        if (comm[0] && strncmp(comm, "vhostd", 6)) { /* unreadable (hidepid): the caller's word for it */
                fprintf(stderr, "vhostctl: process %ld is '%s', not vhostd: not stopping it\n", pid, comm);
                close(pidfd);
                return 1;
        }
        if (syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0) < 0 && errno != ESRCH) {
                fprintf(stderr, "vhostctl: cannot signal vhostd %ld: %m\n", pid);
                close(pidfd);
                return 1;
        }
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
        close(pidfd);
        return 0;
}

/* ---- main ---------------------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"socket", required_argument, NULL, 's'},   {"json", no_argument, NULL, 'j'},
                {"prometheus", no_argument, NULL, 'p'},     {"watch", no_argument, NULL, 'w'},
                {"interval", required_argument, NULL, 'i'}, {"count", required_argument, NULL, 'c'},
                {"help", no_argument, NULL, 'h'},           {0}};
        const char *path = "/run/vhostd/vhostd.ctl", *cmd = "status";
        struct sockaddr_un sa;
        bool watching = false, interval_set = false, count_set = false;
        unsigned modes = 0;
        double interval = 1.0;
        unsigned long count = 0;
        struct answer a = {0};
        char *end;
        int c, r;

        while ((c = getopt_long(argc, argv, "s:jpwi:c:h", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        path = optarg;
                        break;
                case 'j':
                        cmd = "json";
                        modes++;
                        break;
                case 'p':
                        cmd = "prometheus";
                        modes++;
                        break;
                case 'w':
                        watching = true;
                        modes++;
                        break;
                case 'i':
                        errno = 0;
                        interval = strtod(optarg, &end);
                        if (errno || end == optarg || *end || !(interval >= 0.1 && interval <= 86400)) {
                                fprintf(stderr, "vhostctl: --interval wants seconds from 0.1 to 86400, got '%s'\n",
                                        optarg);
                                return 2;
                        }
                        interval_set = true;
                        break;
                case 'c':
                        errno = 0;
                        count = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-' || count == 0) {
                                fprintf(stderr, "vhostctl: --count wants a number of reports (1 or more), got '%s'\n",
                                        optarg);
                                return 2;
                        }
                        count_set = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc && !strcmp(argv[optind], "terminate")) {
                if (modes || optind + 2 < argc) {
                        usage(stderr);
                        return 2;
                }
                return terminate(optind + 1 < argc ? argv[optind + 1] : NULL);
        }
        if (optind < argc && !strcmp(argv[optind], "upgrade")) {
                static char line[1050];

                if (modes || optind + 2 < argc) {
                        usage(stderr);
                        return 2;
                }
                if (optind + 1 < argc && strlen(argv[optind + 1]) > 1000) {
                        fprintf(stderr, "vhostctl: binary path too long\n");
                        return 2;
                }
                /* vhostd runs elsewhere than we do: it needs the binary's absolute path. */
                char *abs = optind + 1 < argc ? realpath(argv[optind + 1], NULL) : NULL;
                if (optind + 1 < argc && !abs) {
                        fprintf(stderr, "vhostctl: %s: %m\n", argv[optind + 1]);
                        return 1;
                }
                snprintf(line, sizeof(line), "upgrade%s%s", abs ? " " : "", abs ? abs : "");
                free(abs);
                cmd = line;
                optind = argc;
        }
        if (optind < argc && strcmp(argv[optind], "status")) {
                fprintf(stderr, "vhostctl: unknown command '%s'\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        if (optind + 1 < argc) {
                fprintf(stderr, "vhostctl: unexpected argument '%s'\n", argv[optind + 1]);
                usage(stderr);
                return 2;
        }
        if (modes > 1) {
                fprintf(stderr, "vhostctl: --json, --prometheus and --watch exclude each other\n");
                usage(stderr);
                return 2;
        }
        if ((interval_set || count_set) && !watching) {
                fprintf(stderr, "vhostctl: --interval and --count go with --watch\n");
                usage(stderr);
                return 2;
        }
        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "vhostctl: socket path too long\n");
                return 2;
        }
        if (watching)
                return watch(path, interval, count);
        r = query(path, cmd, &a);
        if (r)
                return 1;
        if (fwrite(a.buf, 1, a.len, stdout) != a.len || fflush(stdout) != 0) {
                fprintf(stderr, "vhostctl: cannot write the answer: %m\n");
                r = 1;
        }
        free(a.buf);
        return r;
}
