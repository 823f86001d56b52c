// SPDX-License-Identifier: MIT
/* The socket side of a port: listen (server mode) or connect with back-off (client mode). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/port.h"
#include "daemon/vu.h"

#define RETRY_MIN 0.1
#define RETRY_MAX 5.0

int port_open_backend(struct port *p)
{
        const struct backend_cfg *bc = &p->cfg->backend;
        const struct backend_ops *ops = backend_find(bc->kind);
        int r;

        if (!ops)
                return log_err_errno(-EINVAL, "%s: unknown backend '%s' (known: %s)", p->name, bc->kind,
                                     backend_kinds());
        r = ops->open(bc, p->cfg->queues, &p->be);
        if (r < 0) {
                const char *hint = "";
                if (!strcmp(bc->kind, "tap") && r == -EINVAL)
                        hint = " (an interface of that name exists and is not a tap, or a tap whose flags differ, "
                               "e.g. multi_queue for queues > 1)";
                else if (r == -ENODEV)
                        hint = " (no such interface)";
                else if (r == -EPERM || r == -EACCES)
                        hint = " (not permitted: see the privileges each port kind needs in vhostd(8))";
                else if (r == -EMSGSIZE)
                        hint = " (the MTU is larger than this port can carry)";
                else if (!strcmp(bc->kind, "afxdp") && r == -ENOMEM)
                        hint = " (memory for its UMEM could not be allocated or pinned)";
                else if (!strcmp(bc->kind, "afxdp") && r == -ENOBUFS)
                        hint = " (its UMEM, pinned memory, exceeds RLIMIT_MEMLOCK: raise it, LimitMEMLOCK= in a "
                               "systemd unit, or grant CAP_IPC_LOCK)";
                log_msg(3, r, "%s: cannot open %s port%s%s%s", p->name, bc->kind, bc->ifname[0] ? " " : "", bc->ifname,
                        hint);
                return r;
        }
        log_info("%s: %s port%s%s open with %u queue pair%s%s%s%s", p->name, bc->kind, bc->ifname[0] ? " " : "",
                 bc->ifname, p->cfg->queues, p->cfg->queues > 1 ? "s" : "", p->be->details ? " (" : "",
                 p->be->details ? p->be->details : "", p->be->details ? ")" : "");
        if (p->be->degraded)
                log_warn("%s: %s", p->name, p->be->degraded);
        return 0;
}

/* Tears the current connection down; a port whose only connection was handed over (--fd) has nothing left. */
static void connection_gone(struct port *p)
{
        vu_dev_free(p->dev);
        p->dev = NULL;
        if (p->handed_connection) {
                log_info("%s: the handed-over connection ended; nothing more to serve, stopping", p->name);
                ev_break(p->loop, EVBREAK_ALL);
        }
}

static void connection_closed_cb(void *owner)
{
        port_connection_closed(owner);
}

struct port_hooks port_hooks;

static void changed(void)
{
        if (port_hooks.changed)
                (void)port_hooks.changed();
}

static void reading_cb(void *owner, bool begin)
{
        if (begin && port_hooks.busy)
                port_hooks.busy(owner, true);
        if (!begin)
                changed();
}

static struct vu_dev_params dev_params(struct port *p)
{
        return (struct vu_dev_params){
                .name = p->name,
                .cfg = p->cfg,
                .be = p->be,
                .loop = p->loop,
                .port_faults = &p->faults,
                .port_recoveries = &p->recoveries,
                .closed = connection_closed_cb,
                .reading = reading_cb,
                .owner = p,
        };
}

static void new_connection(struct port *p, int fd)
{
        struct vu_dev_params params = dev_params(p);
        int r;

        /*
         * A front-end that reconnects at once (QEMU after a guest reboot or crash) is often faster than our
         * look at its old connection: read what the old one still has, and if that ends in its hang-up, the
         * newcomer is served. Only a second live front-end is refused.
         */
        if (p->dev && vu_dev_read(p->dev) < 0)
                connection_gone(p);
        if (p->dev) {
                log_warn("%s: a front-end is already connected; refusing another (one front-end per port)", p->name);
                close(fd);
                return;
        }
        r = vu_dev_new(&params, fd, &p->dev);
        if (r < 0) {
                log_msg(3, r, "%s: cannot set up the connection", p->name);
                close(fd);
                return;
        }
        p->connections++;
        log_info("%s: front-end connected", p->name);
        changed();
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
        struct port *p = io->data;
        int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warn("%s: accept: %s", p->name, strerror(errno));
                return;
        }
        new_connection(p, fd);
}

static void connect_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
        struct port *p = t->data;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->cfg->socket);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                p->retry_delay = RETRY_MIN;
                new_connection(p, fd);
                return;
        }
        if (p->retry_delay <= RETRY_MIN)
                log_info("%s: cannot connect to %s yet (%s); retrying with back-off", p->name, p->cfg->socket,
                         strerror(errno));
        if (fd >= 0)
                close(fd);
        ev_timer_set(&p->retry_timer, p->retry_delay, 0);
        ev_timer_start(loop, &p->retry_timer);
        p->retry_delay = p->retry_delay * 2 > RETRY_MAX ? RETRY_MAX : p->retry_delay * 2;
}

static int socket_owner(const struct port *p)
{
        const struct port_cfg *cfg = p->cfg;
        char user[64], *group;
        uid_t uid = (uid_t)-1;
        gid_t gid = (gid_t)-1;

        if (cfg->socket_mode && chmod(cfg->socket, cfg->socket_mode) < 0)
                return log_err_errno(-errno, "%s: chmod %s", p->name, cfg->socket);
        if (!cfg->socket_owner[0])
                return 0;
        snprintf(user, sizeof(user), "%s", cfg->socket_owner);
        group = strchr(user, ':');
        if (group)
                *group++ = 0;
        if (user[0] && strspn(user, "0123456789") == strlen(user)) {
                uid = (uid_t)strtoul(user, NULL, 10);
        } else if (user[0]) {
                struct passwd *pw = getpwnam(user);
                if (!pw)
                        return log_err_errno(-ENOENT, "%s: socket_owner: no user '%s'", p->name, user);
                uid = pw->pw_uid;
        }
        if (group && group[0] && strspn(group, "0123456789") == strlen(group)) {
                gid = (gid_t)strtoul(group, NULL, 10);
        } else if (group && group[0]) {
                struct group *gr = getgrnam(group);
                if (!gr)
                        return log_err_errno(-ENOENT, "%s: socket_owner: no group '%s'", p->name, group);
                gid = gr->gr_gid;
        }
        if (chown(cfg->socket, uid, gid) < 0)
                return log_err_errno(-errno, "%s: chown %s", p->name, cfg->socket);
        return 0;
}

static int listen_on(struct port *p)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct stat st;
        int fd, r;

        if (strlen(p->cfg->socket) >= sizeof(sa.sun_path))
                return log_err_errno(-ENAMETOOLONG, "%s: socket path too long", p->name);
        strcpy(sa.sun_path, p->cfg->socket);
        /* A stale socket from a previous run (QEMU and we both leave them) is replaced; anything else is not. */
        if (lstat(sa.sun_path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_err_errno(-EEXIST, "%s: %s exists and is not a socket", p->name, sa.sun_path);
                (void)unlink(sa.sun_path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_err_errno(-errno, "%s: socket", p->name);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
                r = -errno;
                close(fd);
                return log_err_errno(r, "%s: cannot listen on %s", p->name, sa.sun_path);
        }
        p->listen_fd = fd;
        r = socket_owner(p);
        if (r < 0)
                return r;
        log_info("%s: listening on %s", p->name, sa.sun_path);
        return 0;
}

int port_start(struct port *p, struct ev_loop *loop, int listen_fd)
{
        int r;

        p->loop = loop;
        p->listen_fd = -1;
        ev_timer_init(&p->retry_timer, connect_cb, 0, 0);
        p->retry_timer.data = p;
        p->retry_delay = RETRY_MIN;
        if (listen_fd >= 0) {
                int fl = fcntl(listen_fd, F_GETFL);
                (void)fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
                (void)fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
                p->listen_fd = listen_fd;
                p->listen_fd_inherited = true;
                log_info("%s: listening on an inherited socket (socket activation or --fd)", p->name);
        } else if (p->cfg->mode == PORT_MODE_CLIENT) {
                ev_timer_start(loop, &p->retry_timer);
                return 0;
        } else {
                r = listen_on(p);
                if (r < 0)
                        return r;
        }
        ev_io_init(&p->listen_io, accept_cb, p->listen_fd, EV_READ);
        p->listen_io.data = p;
        ev_io_start(loop, &p->listen_io);
        return 0;
}

int port_start_on_fd(struct port *p, struct ev_loop *loop, int fd)
{
        int listening = 0;
        socklen_t len = sizeof(listening);
        struct stat st;

        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
                return log_err_errno(-EBADF, "%s: --fd %d is not an open socket", p->name, fd);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
                return log_err_errno(-errno, "%s: --fd %d", p->name, fd);
        if (listening)
                return port_start(p, loop, fd);
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        p->loop = loop;
        p->listen_fd = -1;
        ev_timer_init(&p->retry_timer, connect_cb, 0, 0);
        p->retry_timer.data = p;
        p->handed_connection = true;
        log_info("%s: serving the connected socket handed over as fd %d", p->name, fd);
        new_connection(p, fd);
        return p->dev ? 0 : -EIO;
}

void port_adopt(struct port *p, struct ev_loop *loop, int listen_fd, bool path_ours, bool handed_connection)
{
        p->loop = loop;
        p->listen_fd = listen_fd;
        p->listen_fd_inherited = !path_ours;
        p->handed_connection = handed_connection;
        ev_timer_init(&p->retry_timer, connect_cb, 0, 0);
        p->retry_timer.data = p;
        p->retry_delay = RETRY_MIN;
        if (listen_fd >= 0) {
                ev_io_init(&p->listen_io, accept_cb, listen_fd, EV_READ);
                p->listen_io.data = p;
                ev_io_start(loop, &p->listen_io);
        }
        log_info("%s: %s port and its socket taken over from the previous vhostd", p->name, p->cfg->backend.kind);
}

void port_adopt_unconnected(struct port *p)
{
        if (p->cfg->mode == PORT_MODE_CLIENT && p->listen_fd < 0 && !p->handed_connection) {
                ev_timer_set(&p->retry_timer, RETRY_MIN, 0);
                ev_timer_start(p->loop, &p->retry_timer);
        }
}

int port_adopt_connection(struct port *p, int fd)
{
        struct vu_dev_params params = dev_params(p);
        int r = vu_dev_new(&params, fd, &p->dev);

        if (r < 0)
                close(fd);
        return r;
}

void port_connection_closed(struct port *p)
{
        connection_gone(p);
        changed();
        if (p->cfg->mode == PORT_MODE_CLIENT && p->listen_fd < 0) {
                p->retry_delay = RETRY_MIN;
                ev_timer_set(&p->retry_timer, RETRY_MIN, 0);
                ev_timer_start(p->loop, &p->retry_timer);
        }
}

void port_stop(struct port *p)
{
        if (p->loop) {
                ev_timer_stop(p->loop, &p->retry_timer);
                if (p->listen_fd >= 0)
                        ev_io_stop(p->loop, &p->listen_io);
        }
        vu_dev_free(p->dev);
        p->dev = NULL;
        if (p->listen_fd >= 0) {
                close(p->listen_fd);
                if (!p->listen_fd_inherited)
                        (void)unlink(p->cfg->socket);
        }
        p->listen_fd = -1;
        if (p->be)
                p->be->ops->close(p->be);
        p->be = NULL;
}

void port_link_event(struct port *p, const char *ifname, bool gone)
{
        if (!p->dev || !p->be || strcmp(ifname, p->cfg->backend.ifname) != 0)
                return;
        vu_dev_link_event(p->dev, gone);
}
