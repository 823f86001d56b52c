// SPDX-License-Identifier: MIT
/* vhostd: vhost-user network back-end. See vhostd(8). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/ctl.h"
#include "daemon/isolate.h"
#include "daemon/linkmon.h"
#include "daemon/log.h"
#include "daemon/port.h"
#include "daemon/sd.h"
#include "daemon/vu.h"

#define VHOSTD_VERSION "0.1"

static struct config cfg;
static struct port ports[CONFIG_MAX_PORTS];
static struct ctl ctl;
static struct linkmon linkmon = {.fd = -1};

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: vhostd [OPTIONS]\n"
                "  -c, --config FILE       read ports from FILE (vhostd.conf(5))\n"
                "      --check-config FILE validate FILE and exit\n"
                "  -s, --socket PATH       one port on this vhost-user socket (instead of --config)\n"
                "      --client            connect to PATH (QEMU server=on) instead of listening\n"
                "  -b, --backend KIND      %s (default loopback)\n"
                "  -i, --ifname NAME       tap name or interface to bind\n"
                "  -q, --queues N          queue pairs (default 1)\n"
                "  -o, --option KEY=VALUE  any port key of vhostd.conf(5), repeatable\n"
                "  -C, --control PATH      control socket for vhostctl\n"
                "  -u, --user USER         drop privileges to USER after opening ports\n"
                "      --seccomp           confine the running daemon to a system-call allow-list\n"
                "  -l, --log-level LEVEL   err, warn, info (default), debug\n"
                "  -h, --help              this text\n"
                "  -V, --version\n",
                backend_kinds());
}

static int cli_port_set(struct port_cfg *pc, const char *key, const char *value)
{
        char err[1024];

        if (config_port_set(pc, key, value, err, sizeof(err)) < 0) {
                fprintf(stderr, "vhostd: %s\n", err);
                return -EINVAL;
        }
        return 0;
}

static int parse_args(int argc, char **argv, const char **ret_config, bool *ret_check)
{
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"check-config", required_argument, NULL, 'K'},
                {"socket", required_argument, NULL, 's'},
                {"client", no_argument, NULL, 'L'},
                {"backend", required_argument, NULL, 'b'},
                {"ifname", required_argument, NULL, 'i'},
                {"queues", required_argument, NULL, 'q'},
                {"option", required_argument, NULL, 'o'},
                {"control", required_argument, NULL, 'C'},
                {"user", required_argument, NULL, 'u'},
                {"seccomp", no_argument, NULL, 'S'},
                {"log-level", required_argument, NULL, 'l'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {0},
        };
        struct port_cfg *pc = &cfg.ports[0];
        bool cli_port = false;
        int c;

        config_defaults(&cfg);
        config_port_defaults(pc);
        snprintf(pc->name, sizeof(pc->name), "net0");
        while ((c = getopt_long(argc, argv, "c:s:b:i:q:o:C:u:l:hV", opts, NULL)) != -1) {
                char *eq;
                switch (c) {
                case 'c':
                        *ret_config = optarg;
                        break;
                case 'K':
                        *ret_config = optarg;
                        *ret_check = true;
                        break;
                case 's':
                        cli_port = true;
                        if (cli_port_set(pc, "socket", optarg) < 0)
                                return -EINVAL;
                        break;
                case 'L':
                        pc->mode = PORT_MODE_CLIENT;
                        break;
                case 'b':
                        cli_port = true;
                        if (cli_port_set(pc, "backend", optarg) < 0)
                                return -EINVAL;
                        break;
                case 'i':
                        if (cli_port_set(pc, "ifname", optarg) < 0)
                                return -EINVAL;
                        break;
                case 'q':
                        if (cli_port_set(pc, "queues", optarg) < 0)
                                return -EINVAL;
                        break;
                case 'o':
                        eq = strchr(optarg, '=');
                        if (!eq) {
                                fprintf(stderr, "vhostd: -o wants KEY=VALUE, got '%s'\n", optarg);
                                return -EINVAL;
                        }
                        *eq = 0;
                        if (cli_port_set(pc, optarg, eq + 1) < 0)
                                return -EINVAL;
                        break;
                case 'C':
                        snprintf(cfg.control_socket, sizeof(cfg.control_socket), "%s", optarg);
                        break;
                case 'u':
                        snprintf(cfg.user, sizeof(cfg.user), "%s", optarg);
                        break;
                case 'S':
                        cfg.seccomp = true;
                        break;
                case 'l':
                        if (!strcmp(optarg, "err"))
                                cfg.log_level = LOG_LEVEL_ERR;
                        else if (!strcmp(optarg, "warn"))
                                cfg.log_level = LOG_LEVEL_WARN;
                        else if (!strcmp(optarg, "info"))
                                cfg.log_level = LOG_LEVEL_INFO;
                        else if (!strcmp(optarg, "debug"))
                                cfg.log_level = LOG_LEVEL_DEBUG;
                        else {
                                fprintf(stderr, "vhostd: unknown log level '%s' (err, warn, info, debug)\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                case 'V':
                        printf("vhostd %s\n", VHOSTD_VERSION);
                        exit(0);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "vhostd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (*ret_config && cli_port) {
                fprintf(stderr, "vhostd: --socket/--backend and --config exclude each other\n");
                return -EINVAL;
        }
        if (!*ret_config) {
                char err[1024];
                /* Socket activation without --socket: the port takes the inherited fd. */
                if (!pc->socket[0] && !pc->fd_name[0] && getenv("LISTEN_FDS"))
                        snprintf(pc->fd_name, sizeof(pc->fd_name), "%s", pc->name);
                if (!cli_port && !getenv("LISTEN_FDS")) {
                        fprintf(stderr, "vhostd: nothing to do: give --config FILE or --socket PATH\n");
                        usage(stderr);
                        return -EINVAL;
                }
                if (config_port_check(pc, err, sizeof(err)) < 0) {
                        fprintf(stderr, "vhostd: %s\n", err);
                        return -EINVAL;
                }
                cfg.nports = 1;
        }
        return 0;
}

/* Socket activation: fd named like the port's fd_name (or its name), else the i-th fd for the i-th port. */
static int inherited_fd(unsigned i, const int *fds, char names[][64], int nfds)
{
        const struct port_cfg *pc = &cfg.ports[i];
        const char *want = pc->fd_name[0] ? pc->fd_name : pc->name;

        for (int k = 0; k < nfds; k++)
                if (names[k][0] && !strcmp(names[k], want))
                        return fds[k];
        if (i < (unsigned)nfds && (!names[i][0] || !strcmp(names[i], "unknown")))
                return fds[i];
        return -1;
}

static bool any_netdev_port(void)
{
        for (unsigned i = 0; i < cfg.nports; i++)
                if (cfg.ports[i].backend.ifname[0])
                        return true;
        return false;
}

static void link_changed(void *arg, const char *ifname, bool gone)
{
        for (unsigned i = 0; i < cfg.nports; i++)
                port_link_event(&ports[i], ifname ? ifname : ports[i].cfg->backend.ifname, gone);
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
        log_info("signal %d: stopping", w->signum);
        ev_break(loop, EVBREAK_ALL);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
        log_info("SIGHUP: nothing to reload; restart the instance to apply a changed configuration");
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
        (void)sd_notify_str("WATCHDOG=1");
}

int main(int argc, char **argv)
{
        const char *config_path = NULL;
        bool check_only = false;
        int listen_fds[SD_MAX_LISTEN_FDS];
        char listen_names[SD_MAX_LISTEN_FDS][64];
        struct config_error cerr;
        ev_signal sig_term, sig_int, sig_hup;
        ev_timer watchdog;
        struct ev_loop *loop = NULL;
        uint64_t wd_usec;
        int nfds, r;
        char status[256];

        if (parse_args(argc, argv, &config_path, &check_only) < 0)
                return 2;
        if (config_path) {
                r = config_load(config_path, &cfg, &cerr);
                if (r < 0) {
                        char buf[640];
                        config_error_format(&cerr, buf, sizeof(buf));
                        fprintf(stderr, "vhostd: %s\n", buf);
                        return 2;
                }
                if (check_only) {
                        printf("%s: OK, %u port%s\n", config_path, cfg.nports, cfg.nports == 1 ? "" : "s");
                        return 0;
                }
        }
        log_set_level((int)cfg.log_level);
        signal(SIGPIPE, SIG_IGN);

        nfds = sd_listen(listen_fds, listen_names, SD_MAX_LISTEN_FDS);

        /* Privileged part: open every port first. */
        for (unsigned i = 0; i < cfg.nports; i++) {
                ports[i].cfg = &cfg.ports[i];
                ports[i].listen_fd = -1;
                snprintf(ports[i].name, sizeof(ports[i].name), "port %s", cfg.ports[i].name);
                if (port_open_backend(&ports[i]) < 0) {
                        r = 1;
                        goto out;
                }
        }
        loop = ev_default_loop(EVFLAG_AUTO);
        if (!loop) {
                log_err("cannot start the event loop");
                r = 1;
                goto out;
        }
        for (unsigned i = 0; i < cfg.nports; i++) {
                int fd = nfds > 0 ? inherited_fd(i, listen_fds, listen_names, nfds) : -1;
                if (fd < 0 && !cfg.ports[i].socket[0]) {
                        log_err("port %s: no socket path, and no inherited socket named '%s' (socket activation)",
                                cfg.ports[i].name, cfg.ports[i].fd_name[0] ? cfg.ports[i].fd_name : cfg.ports[i].name);
                        r = 1;
                        goto out;
                }
                if (port_start(&ports[i], loop, fd) < 0) {
                        r = 1;
                        goto out;
                }
        }
        if (cfg.control_socket[0] && ctl_start(&ctl, loop, cfg.control_socket, ports, cfg.nports) < 0) {
                r = 1;
                goto out;
        }
        /* Without it a deleted interface is still noticed by the data path, but not always. */
        if (any_netdev_port() && (r = linkmon_start(&linkmon, loop, link_changed, NULL)) < 0)
                log_warn("cannot watch interface changes: %s", strerror(-r));
        if (isolate_drop(cfg.user, cfg.group) < 0 || (cfg.seccomp && isolate_seccomp() < 0)) {
                r = 1;
                goto out;
        }

        ev_signal_init(&sig_term, stop_cb, SIGTERM);
        ev_signal_init(&sig_int, stop_cb, SIGINT);
        ev_signal_init(&sig_hup, hup_cb, SIGHUP);
        ev_signal_start(loop, &sig_term);
        ev_signal_start(loop, &sig_int);
        ev_signal_start(loop, &sig_hup);
        wd_usec = sd_watchdog_usec();
        if (wd_usec) {
                ev_timer_init(&watchdog, watchdog_cb, 0, (double)wd_usec / 2e6);
                ev_timer_again(loop, &watchdog);
        }
        snprintf(status, sizeof(status), "READY=1\nSTATUS=%u port%s ready", cfg.nports, cfg.nports == 1 ? "" : "s");
        (void)sd_notify_str(status);
        log_info("vhostd %s ready: %u port%s", VHOSTD_VERSION, cfg.nports, cfg.nports == 1 ? "" : "s");

        ev_run(loop, 0);

        (void)sd_notify_str("STOPPING=1\nSTATUS=stopping");
        r = 0;
out:
        if (loop)
                linkmon_stop(&linkmon, loop);
        ctl_stop(&ctl);
        for (unsigned i = 0; i < cfg.nports; i++)
                port_stop(&ports[i]);
        return r;
}
