// SPDX-License-Identifier: MIT
/* vhostd: vhost-user network back-end. See vhostd(8). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "backends/napi.h"
#include "config/config.h"
#include "daemon/caps.h"
#include "daemon/ctl.h"
#include "daemon/fault.h"
#include "daemon/fdstore.h"
#include "daemon/handover.h"
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

/* What the command line set besides the config: filled by the option handlers below. */
struct cli {
        const char *config_path;
        bool check_only;
        bool print_caps;
        bool cli_port;   /* a port given by options, not a config file */
        int handed_fd;   /* --fd: a socket handed over by a management tool, -1 for none */
        bool fd_store;   /* --fd-store: keep connections in systemd's fd store across a restart */
        int handover_fd; /* --handover-fd: started by an upgrade, which hands everything over on it; -1: not */
        bool socket_path_given;
        struct port_cfg *port;
};

struct cli_option {
        const char *name;
        char short_name; /* 0: long only */
        const char *arg; /* metavar, NULL: no argument */
        const char *help;
        int (*set)(struct cli *cli, const char *arg);
};

static int cli_port_set(struct cli *cli, const char *key, const char *value)
{
        char err[1024];

        if (config_port_set(cli->port, key, value, err, sizeof(err)) < 0) {
                fprintf(stderr, "vhostd: %s\n", err);
                return -EINVAL;
        }
        return 0;
}

static int opt_config(struct cli *cli, const char *arg)
{
        cli->config_path = arg;
        return 0;
}

static int opt_check_config(struct cli *cli, const char *arg)
{
        cli->check_only = true;
        return opt_config(cli, arg);
}

static int opt_socket(struct cli *cli, const char *arg)
{
        cli->cli_port = true;
        return cli_port_set(cli, "socket", arg);
}

static int opt_socket_path(struct cli *cli, const char *arg)
{
        cli->socket_path_given = true;
        return opt_socket(cli, arg);
}

/* An fd number for option name, at least min; -EINVAL with a message otherwise. */
static int parse_fd(const char *name, const char *arg, long min, int *ret)
{
        char *end;
        long fd;

        errno = 0;
        fd = strtol(arg, &end, 10);
        if (errno || *end || end == arg || fd < min || fd > 65535) {
                fprintf(stderr, "vhostd: --%s wants a file descriptor number, got '%s'\n", name, arg);
                return -EINVAL;
        }
        *ret = (int)fd;
        return 0;
}

static int opt_fd(struct cli *cli, const char *arg)
{
        cli->cli_port = true;
        return parse_fd("fd", arg, 0, &cli->handed_fd);
}

static int opt_handover_fd(struct cli *cli, const char *arg)
{
        return parse_fd("handover-fd", arg, 3, &cli->handover_fd);
}

static int opt_fd_store(struct cli *cli, const char *arg)
{
        cli->fd_store = true;
        return 0;
}

static int opt_print_caps(struct cli *cli, const char *arg)
{
        cli->print_caps = true;
        return 0;
}

static int opt_client(struct cli *cli, const char *arg)
{
        cli->port->mode = PORT_MODE_CLIENT;
        return 0;
}

static int opt_backend(struct cli *cli, const char *arg)
{
        cli->cli_port = true;
        return cli_port_set(cli, "backend", arg);
}

static int opt_ifname(struct cli *cli, const char *arg)
{
        return cli_port_set(cli, "ifname", arg);
}

static int opt_queues(struct cli *cli, const char *arg)
{
        return cli_port_set(cli, "queues", arg);
}

static int opt_option(struct cli *cli, const char *arg)
{
        char key[64];
        const char *eq = strchr(arg, '=');

        if (!eq || (size_t)(eq - arg) >= sizeof(key)) {
                fprintf(stderr, "vhostd: -o wants KEY=VALUE, got '%s'\n", arg);
                return -EINVAL;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(eq - arg), arg);
        return cli_port_set(cli, key, eq + 1);
}

static int opt_control(struct cli *cli, const char *arg)
{
        snprintf(cfg.control_socket, sizeof(cfg.control_socket), "%s", arg);
        return 0;
}

static int opt_user(struct cli *cli, const char *arg)
{
        snprintf(cfg.user, sizeof(cfg.user), "%s", arg);
        return 0;
}

static int opt_seccomp(struct cli *cli, const char *arg)
{
        cfg.seccomp = true;
        return 0;
}

static int opt_log_level(struct cli *cli, const char *arg)
{
        static const struct {
                const char *name;
                enum log_level level;
        } levels[] = {
                {"err", LOG_LEVEL_ERR}, {"warn", LOG_LEVEL_WARN}, {"info", LOG_LEVEL_INFO}, {"debug", LOG_LEVEL_DEBUG}};

        for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
                if (!strcmp(arg, levels[i].name)) {
                        cfg.log_level = levels[i].level;
                        return 0;
                }
        fprintf(stderr, "vhostd: unknown log level '%s' (err, warn, info, debug)\n", arg);
        return -EINVAL;
}

static int opt_help(struct cli *cli, const char *arg);

static int opt_version(struct cli *cli, const char *arg)
{
        printf("vhostd %s\n", VHOSTD_VERSION);
        exit(0);
}

static const struct cli_option cli_options[] = {
        {"config", 'c', "FILE", "read ports from FILE (vhostd.conf(5))", opt_config},
        {"check-config", 0, "FILE", "validate FILE and exit", opt_check_config},
        {"socket", 's', "PATH", "one port on this vhost-user socket (instead of --config)", opt_socket},
        {"socket-path", 0, "PATH", "the same, as QEMU's back-end conventions name it", opt_socket_path},
        {"fd", 0, "FDNUM", "serve the vhost-user socket inherited as FDNUM (listening or connected)", opt_fd},
        {"handover-fd", 0, "FDNUM", "(set by an upgrade) take the ports over from the vhostd at the other end",
         opt_handover_fd},
        {"fd-store", 0, NULL, "on SIGTERM keep every connection in systemd's fd store for the next start",
         opt_fd_store},
        {"print-capabilities", 0, NULL, "print what this vhostd can do as JSON and exit", opt_print_caps},
        {"client", 0, NULL, "connect to PATH (QEMU server=on) instead of listening", opt_client},
        {"backend", 'b', "KIND", "port kind (default loopback)", opt_backend},
        {"ifname", 'i', "NAME", "tap name or interface to bind", opt_ifname},
        {"queues", 'q', "N", "queue pairs (default 1)", opt_queues},
        {"option", 'o', "KEY=VALUE", "any port key of vhostd.conf(5), repeatable", opt_option},
        {"control", 'C', "PATH", "control socket for vhostctl", opt_control},
        {"user", 'u', "USER", "drop privileges to USER after opening ports", opt_user},
        {"seccomp", 0, NULL, "confine the running daemon to a system-call allow-list", opt_seccomp},
        {"log-level", 'l', "LEVEL", "err, warn, info (default), debug", opt_log_level},
        {"help", 'h', NULL, "this text", opt_help},
        {"version", 'V', NULL, "print the version and exit", opt_version},
};
#define N_CLI_OPTIONS (sizeof(cli_options) / sizeof(cli_options[0]))

static void usage(FILE *f)
{
        fprintf(f, "Usage: vhostd [OPTIONS]\n");
        for (size_t i = 0; i < N_CLI_OPTIONS; i++) {
                const struct cli_option *o = &cli_options[i];
                char left[48];

                snprintf(left, sizeof(left), "%c%c%s --%s%s%s", o->short_name ? '-' : ' ',
                         o->short_name ? o->short_name : ' ', o->short_name ? "," : " ", o->name, o->arg ? " " : "",
                         o->arg ? o->arg : "");
                fprintf(f, "  %-30s %s\n", left, o->help);
        }
        fprintf(f, "Port kinds: %s\n", backend_kinds());
}

static int opt_help(struct cli *cli, const char *arg)
{
        usage(stdout);
        exit(0);
}

static int parse_args(int argc, char **argv, struct cli *cli)
{
        struct option longopts[N_CLI_OPTIONS + 1];
        char shortopts[2 * N_CLI_OPTIONS + 1], *sp = shortopts;
        struct port_cfg *pc = &cfg.ports[0];
        int c, idx;

        memset(longopts, 0, sizeof(longopts));
        for (size_t i = 0; i < N_CLI_OPTIONS; i++) {
                const struct cli_option *o = &cli_options[i];

                /* Long options return 256 + their index, so the table is the only place an option is named. */
                longopts[i] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL, 256 + (int)i};
                if (o->short_name) {
                        *sp++ = o->short_name;
                        if (o->arg)
                                *sp++ = ':';
                }
        }
        *sp = 0;

        config_defaults(&cfg);
        config_port_defaults(pc);
        snprintf(pc->name, sizeof(pc->name), "net0");
        *cli = (struct cli){.handed_fd = -1, .handover_fd = -1, .port = pc};
        /* QEMU's conventions: with --print-capabilities every other option is ignored, even a wrong one. */
        for (int i = 1; i < argc; i++)
                if (!strcmp(argv[i], "--print-capabilities")) {
                        cli->print_caps = true;
                        return 0;
                }
        while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
                if (c >= 256) {
                        idx = c - 256;
                } else {
                        for (idx = 0; idx < (int)N_CLI_OPTIONS && cli_options[idx].short_name != c; idx++)
                                ;
                        if (idx == (int)N_CLI_OPTIONS) {
                                usage(stderr);
                                return -EINVAL;
                        }
                }
                if (cli_options[idx].set(cli, optarg) < 0)
                        return -EINVAL;
        }
        if (optind < argc) {
                fprintf(stderr, "vhostd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (cli->config_path && cli->cli_port) {
                fprintf(stderr, "vhostd: --socket/--backend/--fd and --config exclude each other\n");
                return -EINVAL;
        }
        if (cli->handed_fd >= 0 && pc->socket[0]) {
                fprintf(stderr, "vhostd: --fd and --socket%s exclude each other\n",
                        cli->socket_path_given ? "-path" : "");
                return -EINVAL;
        }
        if (!cli->config_path) {
                char err[1024];
                /* Socket activation or --fd without --socket: the port takes the inherited fd. */
                bool inherits = getenv("LISTEN_FDS") || cli->handed_fd >= 0 || cli->handover_fd >= 0;

                if (!pc->socket[0] && !pc->fd_name[0] && inherits)
                        snprintf(pc->fd_name, sizeof(pc->fd_name), "%s", pc->name);
                if (!cli->cli_port && !inherits) {
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
        char err[512];

        log_info("signal %d: stopping", w->signum);
        if (fdstore_enabled()) {
                if (handover_store(err, sizeof(err)) == 0) {
                        (void)sd_notify_str("STOPPING=1\nSTATUS=connections kept in the fd store");
                        _exit(0); /* close and unlink nothing: the store holds it all for the next start */
                }
                log_err("cannot keep the connections in systemd's fd store (%s); they close", err);
        }
        ev_break(loop, EVBREAK_ALL);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
        log_info("SIGHUP: nothing to reload; restart the instance to apply a changed configuration");
}

static void upgrade_logged(void *arg, bool ok, const char *text)
{
        if (ok)
                log_info("SIGUSR2: %s", text);
}

static void usr2_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
        char err[512];

        if (handover_upgrade(NULL, upgrade_logged, NULL, err, sizeof(err)) < 0)
                log_err("SIGUSR2: upgrade not started: %s", err);
}

static int listen_fds[SD_MAX_LISTEN_FDS];
static char listen_names[SD_MAX_LISTEN_FDS][64];

/* Open every port and its socket, privileged, as at any start. */
static int open_ports(struct ev_loop *loop, const struct cli *cli, int nfds)
{
        for (unsigned i = 0; i < cfg.nports; i++)
                if (port_open_backend(&ports[i]) < 0)
                        return -1;
        for (unsigned i = 0; i < cfg.nports; i++) {
                int fd = nfds > 0 ? inherited_fd(i, listen_fds, listen_names, nfds) : -1;

                if (cli->handed_fd >= 0) {
                        if (port_start_on_fd(&ports[i], loop, cli->handed_fd) < 0)
                                return -1;
                        continue;
                }
                if (fd < 0 && !cfg.ports[i].socket[0]) {
                        log_err("port %s: no socket path, and no inherited socket named '%s' (socket activation)",
                                cfg.ports[i].name, cfg.ports[i].fd_name[0] ? cfg.ports[i].fd_name : cfg.ports[i].name);
                        return -1;
                }
                if (port_start(&ports[i], loop, fd) < 0)
                        return -1;
        }
        if (cfg.control_socket[0] && ctl_start(&ctl, loop, cfg.control_socket, ports, cfg.nports) < 0)
                return -1;
        return 0;
}

/* The binary this process runs, for an upgrade that names none: its path now, so a package may replace it. */
static void find_self(char *buf, size_t len)
{
        ssize_t n = readlink("/proc/self/exe", buf, len - 1);

        buf[n > 0 ? n : 0] = 0;
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
        (void)sd_notify_str("WATCHDOG=1");
}

/*
 * vhostd --napi-restorer SETTINGS...: an afxdp port's NAPI restorer (backends/napi.h), started by the port with
 * the pipe's read end on fd 3. EOF there (the port closed, or vhostd died) means restore; a byte means leave.
 */
static int napi_restorer_main(int argc, char **argv)
{
        struct sigaction ign = {.sa_handler = SIG_IGN};
        struct napi_conf saved[NAPI_LIST_MAX];
        unsigned n = 0;
        ssize_t r;
        char c;

        /* A stop signal for the whole group (systemd's, a terminal's ^C) must not end us before vhostd. */
        (void)sigaction(SIGTERM, &ign, NULL);
        (void)sigaction(SIGINT, &ign, NULL);
        (void)sigaction(SIGHUP, &ign, NULL);
        (void)prctl(PR_SET_NAME, "vhostd-napi", 0, 0, 0);
        for (int i = 0; i < argc && n < NAPI_LIST_MAX; i++) {
                unsigned long long gro, suspend;
                struct napi_conf *sv = &saved[n];

                if (sscanf(argv[i], "%u:%u:%llu:%llu", &sv->id, &sv->defer_hard_irqs, &gro, &suspend) != 4) {
                        log_err("NAPI restorer: not a NAPI's settings: '%s'", argv[i]);
                        return 2;
                }
                sv->gro_flush_timeout_ns = gro;
                sv->irq_suspend_timeout_ns = suspend;
                n++;
        }
        do
                r = read(3, &c, 1);
        while (r < 0 && errno == EINTR);
        if (r != 0)
                return 0; /* told to leave them (an upgrade), or no pipe */
        for (unsigned i = 0; i < n; i++) {
                int err = napi_conf_set(&saved[i]);
                if (err < 0)
                        log_msg(3, err, "NAPI restorer: cannot give NAPI %u its interrupt deferral back", saved[i].id);
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct cli cli;
        struct config_error cerr;
        ev_signal sig_term, sig_int, sig_hup, sig_usr2;
        ev_timer watchdog;
        struct ev_loop *loop = NULL;
        uint64_t wd_usec;
        int r;
        char status[256], self[4096];

        if (argc >= 2 && !strcmp(argv[1], NAPI_RESTORER_ARG))
                return napi_restorer_main(argc - 2, argv + 2);
        if (parse_args(argc, argv, &cli) < 0)
                return 2;
        if (cli.print_caps)
                return caps_print(stdout, VHOSTD_VERSION) < 0 ? 1 : 0;
        if (cli.config_path) {
                r = config_load(cli.config_path, &cfg, &cerr);
                if (r < 0) {
                        char buf[640];
                        config_error_format(&cerr, buf, sizeof(buf));
                        fprintf(stderr, "vhostd: %s\n", buf);
                        return 2;
                }
                if (cli.check_only) {
                        printf("%s: OK, %u port%s\n", cli.config_path, cfg.nports, cfg.nports == 1 ? "" : "s");
                        return 0;
                }
        }
        log_set_level((int)cfg.log_level);
        signal(SIGPIPE, SIG_IGN);
        if ((r = fault_install()) < 0) {
                log_err("cannot install the SIGBUS handler: %s", strerror(-r));
                return 1;
        }
        find_self(self, sizeof(self));

        for (unsigned i = 0; i < cfg.nports; i++) {
                ports[i].cfg = &cfg.ports[i];
                ports[i].listen_fd = -1;
                snprintf(ports[i].name, sizeof(ports[i].name), "port %s", cfg.ports[i].name);
        }
        loop = ev_default_loop(EVFLAG_AUTO);
        if (!loop) {
                log_err("cannot start the event loop");
                r = 1;
                goto out;
        }
        /* Before any worker thread exists (an upgrade or a restart makes them while taking connections over):
         * threads inherit the signal mask libev sets here, or a SIGTERM could land in a worker and kill us. */
        ev_signal_init(&sig_term, stop_cb, SIGTERM);
        ev_signal_init(&sig_int, stop_cb, SIGINT);
        ev_signal_init(&sig_hup, hup_cb, SIGHUP);
        ev_signal_init(&sig_usr2, usr2_cb, SIGUSR2);
        ev_signal_start(loop, &sig_term);
        ev_signal_start(loop, &sig_int);
        ev_signal_start(loop, &sig_hup);
        ev_signal_start(loop, &sig_usr2);
        fdstore_enable(cli.fd_store);
        if (cli.handover_fd >= 0) {
                char err[512];
                char pid[24];

                /* The watchdog was armed for the old process: it is ours once we serve. */
                snprintf(pid, sizeof(pid), "%d", (int)getppid());
                if (getenv("WATCHDOG_PID") && !strcmp(getenv("WATCHDOG_PID"), pid)) {
                        snprintf(pid, sizeof(pid), "%d", (int)getpid());
                        setenv("WATCHDOG_PID", pid, 1);
                }
                if (handover_take(cli.handover_fd, loop, ports, cfg.nports, &ctl, cfg.control_socket, err,
                                  sizeof(err)) < 0) {
                        log_err("upgrade: not taking over: %s", err);
                        _exit(1); /* the old process still serves: close nothing it shares, unlink nothing */
                }
                log_info("upgrade: serving every port handed over");
        } else {
                int nfds = sd_listen(listen_fds, listen_names, SD_MAX_LISTEN_FDS);
                char err[512];

                r = handover_take_stored(listen_fds, listen_names, nfds, loop, ports, cfg.nports, &ctl,
                                         cfg.control_socket, err, sizeof(err));
                if (r < 0) {
                        log_err("restart: cannot take the stored connections over: %s", err);
                        _exit(1); /* the store is emptied: the next start is an ordinary one */
                }
                if (r == 1) {
                        for (int i = 0; i < nfds; i++) /* the socket units' own copies of what was stored */
                                if (listen_fds[i] >= 0)
                                        close(listen_fds[i]);
                        if (cfg.control_socket[0] && ctl_start(&ctl, loop, cfg.control_socket, ports, cfg.nports) < 0) {
                                r = 1;
                                goto out;
                        }
                        log_info("restart: serving every connection kept in systemd's fd store");
                } else if (open_ports(loop, &cli, nfds) < 0) {
                        r = 1;
                        goto out;
                }
        }
        ctl.upgrade = handover_upgrade;
        /* Without it a deleted interface is still noticed by the data path, but not always. */
        if (any_netdev_port() && (r = linkmon_start(&linkmon, loop, link_changed, NULL)) < 0)
                log_warn("cannot watch interface changes: %s", strerror(-r));
        handover_setup(&(struct handover_env){.loop = loop,
                                              .ports = ports,
                                              .nports = cfg.nports,
                                              .ctl = &ctl,
                                              .argv = argv,
                                              .self = self[0] ? self : NULL,
                                              .seccomp = cfg.seccomp});
        if (fdstore_enabled()) {
                /* From now on the store follows every change, so that a crash keeps the connections too. */
                port_hooks = (struct port_hooks){.busy = handover_busy, .changed = handover_checkpoint};
                (void)handover_checkpoint();
        }
        /* Handed over: this process has the old one's identity, which dropped privileges already. */
        if (isolate_drop(cli.handover_fd >= 0 ? NULL : cfg.user, cfg.group) < 0 ||
            (cfg.seccomp && isolate_seccomp() < 0)) {
                r = 1;
                goto out;
        }

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
