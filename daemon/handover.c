// SPDX-License-Identifier: MIT
/*
 * An upgrade's handover between two vhostd processes (handover.h). The conversation on the socket pair, in fixed
 * 256-byte messages, with the state (state_wire.h) in the middle:
 *
 *   new -> old  HELLO (the state major it reads)      old keeps serving until then; a wrong major ends it here
 *   old -> new  the state and its fds                 old's workers quiesced from here on
 *   new -> old  READY, or REFUSE with the reason      new has mapped and checked everything, started nothing
 *   old -> new  COMMIT                                then old exits; new starts the rings
 *
 * The state: a DAEMON record (and the control socket's fd), then per port a PORT record, its listening socket,
 * its backend's fds, its connection and that connection's device records (handover_state.h).
 */
#include "daemon/handover.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/ctl.h"
#include "daemon/fdstore.h"
#include "daemon/handover_state.h"
#include "daemon/port.h"
#include "daemon/sd.h"
#include "daemon/state_wire.h"
#include "daemon/vu.h"
#include "daemon/vu_handover.h"

#define HELLO_TIMEOUT 20.0     /* s from the start of the new binary to its hello (an ASan build starts slowly) */
#define READY_TIMEOUT_MS 10000 /* from the state sent to READY: mapping and checking, nothing slow */
#define COMMIT_TIMEOUT_MS 10000
#define SEND_TIMEOUT_S 5

/* ---- messages ---- */

enum { MSG_HELLO = 1, MSG_READY, MSG_REFUSE, MSG_COMMIT, MSG_EXEC_FAILED };

struct upg_msg {
        char magic[8]; /* "VHUPGRD1" */
        uint32_t kind, value;
        char text[240];
};

static const char upg_magic[8] = "VHUPGRD1";

static int msg_send(int sock, uint32_t kind, uint32_t value, const char *text)
{
        struct upg_msg m = {.kind = htole32(kind), .value = htole32(value)};
        ssize_t n;

        memcpy(m.magic, upg_magic, sizeof(m.magic));
        if (text)
                snprintf(m.text, sizeof(m.text), "%s", text);
        do
                n = send(sock, &m, sizeof(m), MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n == (ssize_t)sizeof(m) ? 0 : n < 0 ? -errno : -EPIPE;
}

/* Waits up to timeout_ms (-1: the socket's own timeout) for one message. -ETIMEDOUT, -EPIPE (the peer is gone). */
static int msg_recv(int sock, int timeout_ms, struct upg_msg *m)
{
        size_t have = 0;

        while (have < sizeof(*m)) {
                struct pollfd pfd = {.fd = sock, .events = POLLIN};
                ssize_t n;
                int r = timeout_ms < 0 ? 1 : poll(&pfd, 1, timeout_ms);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                n = recv(sock, (char *)m + have, sizeof(*m) - have, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                if (n == 0)
                        return -EPIPE;
                have += (size_t)n;
        }
        if (memcmp(m->magic, upg_magic, sizeof(m->magic)) != 0)
                return -EBADMSG;
        m->kind = le32toh(m->kind);
        m->value = le32toh(m->value);
        m->text[sizeof(m->text) - 1] = 0;
        return 0;
}

/* ---- the state's records besides the devices' ---- */

enum {
        REC_DAEMON = 100, /* struct daemon_rec */
        REC_CTL_FD = 101,
        REC_PORT = 102, /* struct port_rec, then LISTEN_FD?, BACKEND_FD * nbackend_fds, CONN_FD?, device records */
        REC_LISTEN_FD = 103,
        REC_BACKEND_FD = 104,
        REC_CONN_FD = 105,
        REC_BACKEND_NOTES = 106, /* u64 per queue, right after the PORT record */
};

#define PORT_LISTEN_PATH_OURS 0x1 /* the old process bound the path itself: unlink it when stopping */
#define PORT_HANDED_CONNECTION 0x2
#define PORT_REOPEN 0x4 /* no backend fds: open the port anew (a live state, fdstore.h) */
#define PORT_FLAGS_KNOWN (PORT_LISTEN_PATH_OURS | PORT_HANDED_CONNECTION | PORT_REOPEN)

struct daemon_rec {
        uint32_t pid, nports;
        uint64_t paused_ns; /* CLOCK_MONOTONIC when the old process quiesced its workers */
};

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct port_rec {
        char name[32], kind[16];
        uint32_t nqueues, nbackend_fds, flags, pad;
        uint64_t connections;
};

/* ---- the old process ---- */

static struct handover_env env;

static struct {
        bool active;
        pid_t pid;
        int sock;
        ev_io io;
        ev_timer timer;
        ev_child child;
        handover_done_fn done;
        void *arg;
        char binary[4096];
} up = {.sock = -1};

void handover_setup(const struct handover_env *e)
{
        env = *e;
}

static void for_each_dev(void (*fn)(struct vu_dev *dev))
{
        for (unsigned i = 0; i < env.nports; i++)
                if (env.ports[i].dev)
                        fn(env.ports[i].dev);
}

static void quiesce_dev(struct vu_dev *dev)
{
        vu_dev_quiesce(dev);
        for (unsigned q = 0; q < dev->nqueues; q++)
                worker_return_chains(&dev->workers[q]);
}

/* Ends the upgrade: on failure the new process is stopped and this one carries on. */
static void finish(bool ok, const char *text)
{
        handover_done_fn done = up.done;
        void *arg = up.arg;

        ev_io_stop(env.loop, &up.io);
        ev_timer_stop(env.loop, &up.timer);
        ev_child_stop(env.loop, &up.child);
        if (!ok) {
                if (up.pid > 0) {
                        (void)kill(up.pid, SIGKILL);
                        (void)waitpid(up.pid, NULL, 0);
                }
                log_err("upgrade to %s failed: %s; this vhostd (pid %d) carries on", up.binary, text, (int)getpid());
        }
        if (up.sock >= 0)
                close(up.sock);
        up.sock = -1;
        up.pid = 0;
        up.active = false;
        if (done)
                done(arg, ok, text);
}

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
        char text[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        finish(false, text);
}

/*
 * live: written while the workers run, for a start after a crash (fdstore.h): the rings' positions are left to
 * guest memory, a port whose backend keeps positions of its own is opened anew instead of handed over, and a
 * connection in the middle of a message is left out (it ends with the crash; the front-end reconnects).
 */
static int put_port(struct state_writer *w, struct port *p, bool live, char *err, size_t errlen)
{
        int befds[BACKEND_HANDOVER_FDS_MAX];
        struct port_rec pr = {0};
        uint64_t notes[CONFIG_MAX_QUEUES] = {0};
        bool reopen = false;
        int n, r;

        n = p->be->ops->handover_fds(p->be, befds, BACKEND_HANDOVER_FDS_MAX, notes, live);
        if (n == -EOPNOTSUPP && live) {
                reopen = true; /* its positions die with the process: the next one opens it anew */
                n = 0;
                memset(notes, 0, sizeof(notes));
        }
        if (n < 0) {
                snprintf(err, errlen, "%s: its %s port cannot be handed over: %s", p->name, p->be->ops->name,
                         strerror(-n));
                return n;
        }
        snprintf(pr.name, sizeof(pr.name), "%s", p->cfg->name);
        snprintf(pr.kind, sizeof(pr.kind), "%s", p->be->ops->name);
        pr.nqueues = htole32(p->cfg->queues);
        pr.nbackend_fds = htole32((uint32_t)n);
        pr.flags = htole32((p->listen_fd >= 0 && !p->listen_fd_inherited ? PORT_LISTEN_PATH_OURS : 0) |
                           (p->handed_connection ? PORT_HANDED_CONNECTION : 0) | (reopen ? PORT_REOPEN : 0));
        pr.connections = htole64(p->connections);
        state_put(w, REC_PORT, STATE_REC_REQUIRED, &pr, sizeof(pr));
        for (unsigned q = 0; q < p->cfg->queues; q++)
                notes[q] = htole64(notes[q]);
        state_put(w, REC_BACKEND_NOTES, STATE_REC_REQUIRED, notes, p->cfg->queues * sizeof(notes[0]));
        if (p->listen_fd >= 0)
                state_put_fd(w, REC_LISTEN_FD, p->listen_fd);
        for (int i = 0; i < n; i++)
                state_put_fd(w, REC_BACKEND_FD, befds[i]);
        if (p->dev) {
                static struct hs_dev hs; /* large; the control thread is the only user */

                r = vu_dev_export(p->dev, &hs, live, err, errlen);
                if (r == -EAGAIN && live)
                        goto out; /* half a message: the connection is not in this state */
                if (r < 0)
                        return r;
                state_put_fd(w, REC_CONN_FD, p->dev->fd);
                hs_save(w, &hs);
        }
out:
        if (w->err)
                snprintf(err, errlen, "cannot write the state: %s", strerror(-w->err));
        return w->err;
}

static int build_state(struct state_writer *w, uint64_t paused_ns, bool with_ctl, bool live, char *err, size_t errlen)
{
        struct daemon_rec d = {htole32((uint32_t)getpid()), htole32(env.nports), htole64(paused_ns)};
        int r;

        state_writer_init(w);
        state_put(w, REC_DAEMON, STATE_REC_REQUIRED, &d, sizeof(d));
        if (with_ctl && env.ctl && env.ctl->fd >= 0)
                state_put_fd(w, REC_CTL_FD, env.ctl->fd);
        for (unsigned i = 0; i < env.nports; i++)
                if ((r = put_port(w, &env.ports[i], live, err, errlen)) < 0)
                        return r;
        if ((r = state_finish(w)) < 0)
                snprintf(err, errlen, "cannot write the state: %s", strerror(-r));
        return r;
}

/* The new process said hello: hand everything over, quiesced, and commit or resume. */
static void hand_over(void)
{
        struct state_writer w;
        struct upg_msg m;
        struct timeval tv = {.tv_sec = SEND_TIMEOUT_S};
        char err[512] = "";
        char status[64];
        pid_t pid = up.pid;
        int r;

        uint64_t paused = now_ns();

        for_each_dev(quiesce_dev);
        r = build_state(&w, paused, true, false, err, sizeof(err));
        if (r == 0) {
                (void)setsockopt(up.sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                r = state_send(up.sock, w.buf, w.len, w.fds, w.nfds);
                if (r < 0)
                        snprintf(err, sizeof(err), "cannot send the state (%zu bytes, %u fds): %s", w.len, w.nfds,
                                 strerror(-r));
        }
        if (r == 0) {
                r = msg_recv(up.sock, READY_TIMEOUT_MS, &m);
                if (r == -ETIMEDOUT)
                        snprintf(err, sizeof(err), "the new vhostd did not take the state within %d s",
                                 READY_TIMEOUT_MS / 1000);
                else if (r < 0)
                        snprintf(err, sizeof(err), "the new vhostd went away while taking the state (%s; see its log)",
                                 strerror(-r));
                else if (m.kind == MSG_REFUSE)
                        snprintf(err, sizeof(err), "the new vhostd refused the state: %s", m.text), r = -EINVAL;
                else if (m.kind != MSG_READY)
                        snprintf(err, sizeof(err), "the new vhostd said %u instead of READY", m.kind), r = -EPROTO;
        }
        state_writer_free(&w);
        if (r == 0) {
                /*
                 * The new process stores everything again under its own names: once it is the main process,
                 * systemd would not take our removals any more (NotifyAccess=main).
                 */
                if (fdstore_enabled())
                        fdstore_forget();
                /* From here on the new process is the main one: systemd must hear it before the new one speaks. */
                snprintf(status, sizeof(status), "MAINPID=%d", (int)pid);
                (void)sd_notify_str(status);
                r = msg_send(up.sock, MSG_COMMIT, 0, NULL);
                if (r < 0) {
                        snprintf(status, sizeof(status), "MAINPID=%d", (int)getpid());
                        (void)sd_notify_str(status);
                        snprintf(err, sizeof(err), "the new vhostd went away before it was told to go on (%s)",
                                 strerror(-r));
                }
        }
        if (r < 0) {
                for_each_dev(vu_dev_resume);
                finish(false, err);
                (void)handover_checkpoint(); /* the store again, as it may have been emptied for the new process */
                return;
        }
        log_info("upgrade: vhostd pid %d (%s) serves every port now; pid %d exits", (int)pid, up.binary, (int)getpid());
        char done[sizeof(up.binary) + 64];
        snprintf(done, sizeof(done), "upgraded: vhostd pid %d (%s) serves now", (int)pid, up.binary);
        up.pid = 0; /* not ours to stop any more */
        finish(true, done);
        /* Nothing may be closed or unlinked in a way the new process would notice: leave without cleaning up. */
        _exit(0);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
        struct upg_msg m;
        int r = msg_recv(up.sock, 0, &m);

        if (r == -ETIMEDOUT)
                return;
        if (r == -EPIPE) {
                /* It is exiting, most likely: its exit status says more (child_cb), else the timer ends it. */
                ev_io_stop(loop, &up.io);
                return;
        }
        if (r < 0)
                return failf("reading the new vhostd's hello: %s", strerror(-r));
        if (m.kind == MSG_EXEC_FAILED)
                return failf("cannot execute %s: %s", up.binary, strerror((int)m.value));
        if (m.kind == MSG_REFUSE)
                return failf("the new vhostd refused: %s", m.text);
        if (m.kind != MSG_HELLO)
                return failf("the new vhostd said %u instead of hello", m.kind);
        if (m.value != STATE_MAJOR)
                return failf("the new vhostd reads state version %u, this one writes version %u", m.value, STATE_MAJOR);
        ev_io_stop(loop, &up.io);
        ev_timer_stop(loop, &up.timer);
        hand_over();
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
        failf("the new vhostd did not say hello within %.0f s; stopped it", HELLO_TIMEOUT);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
        int st = w->rstatus;
        struct upg_msg m;

        up.pid = 0; /* reaped by libev */
        if (msg_recv(up.sock, 0, &m) == 0 && m.kind == MSG_EXEC_FAILED)
                failf("cannot execute %s: %s", up.binary, strerror((int)m.value));
        else if (WIFSIGNALED(st))
                failf("the new vhostd was killed by signal %d (%s) during the handover", WTERMSIG(st),
                      strsignal(WTERMSIG(st)));
        else
                failf("the new vhostd exited with status %d during the handover (see its log)", WEXITSTATUS(st));
}

/* The command line for the new process: ours without an earlier --handover-fd, then ours. */
static char **new_argv(const char *binary, const char *fdstr)
{
        unsigned argc = 0, k = 0;
        char **a;

        while (env.argv[argc])
                argc++;
        a = calloc(argc + 3, sizeof(*a));
        if (!a)
                return NULL;
        a[k++] = (char *)binary;
        for (unsigned i = 1; i < argc; i++) {
                if (!strcmp(env.argv[i], "--handover-fd") && i + 1 < argc) {
                        i++;
                        continue;
                }
                if (!strncmp(env.argv[i], "--handover-fd=", 14))
                        continue;
                a[k++] = env.argv[i];
        }
        a[k++] = "--handover-fd";
        a[k++] = (char *)fdstr;
        a[k] = NULL;
        return a;
}

int handover_upgrade(const char *binary, handover_done_fn done, void *arg, char *err, size_t errlen)
{
        char fdstr[16];
        char **argv;
        int sv[2];
        pid_t pid;

        if (up.active) {
                snprintf(err, errlen, "an upgrade (to %s) is under way", up.binary);
                return -EBUSY;
        }
        if (env.seccomp) {
                snprintf(err, errlen,
                         "this vhostd runs under its system-call filter (seccomp = yes), which does not "
                         "allow starting another program; restart it instead");
                return -EPERM;
        }
        for (unsigned i = 0; i < env.nports; i++) {
                const struct backend_ops *ops = env.ports[i].be->ops;
                if (!ops->handover_fds || !ops->adopt) {
                        snprintf(err, errlen, "%s: %s ports cannot be handed over yet; restart it instead",
                                 env.ports[i].name, ops->name);
                        return -EOPNOTSUPP;
                }
        }
        if (!binary || !binary[0])
                binary = env.self;
        if (!binary || access(binary, X_OK) < 0) {
                snprintf(err, errlen, "cannot execute %s: %s", binary ? binary : "(unknown)",
                         binary ? strerror(errno) : "the path of this binary is unknown");
                return -ENOENT;
        }
        snprintf(up.binary, sizeof(up.binary), "%s", binary);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                snprintf(err, errlen, "socketpair: %s", strerror(errno));
                return -errno;
        }
        snprintf(fdstr, sizeof(fdstr), "%d", sv[1]);
        argv = new_argv(up.binary, fdstr);
        if (!argv) {
                close(sv[0]);
                close(sv[1]);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        pid = fork();
        if (pid == 0) {
                /* Only async-signal-safe calls from here: the parent has threads. */
                sigset_t none;
                struct upg_msg m = {.kind = MSG_EXEC_FAILED};

                sigemptyset(&none);
                (void)sigprocmask(SIG_SETMASK, &none, NULL);
                (void)fcntl(sv[1], F_SETFD, 0);
                execv(argv[0], argv);
                memcpy(m.magic, upg_magic, sizeof(m.magic));
                m.value = htole32((uint32_t)errno);
                (void)!write(sv[1], &m, sizeof(m));
                _exit(127);
        }
        free(argv);
        close(sv[1]);
        if (pid < 0) {
                int r = -errno;
                close(sv[0]);
                snprintf(err, errlen, "fork: %s", strerror(-r));
                return r;
        }
        up = (typeof(up)){.active = true, .pid = pid, .sock = sv[0], .done = done, .arg = arg};
        snprintf(up.binary, sizeof(up.binary), "%s", binary);
        log_info("upgrade: started %s as pid %d; this vhostd serves until it takes over", up.binary, (int)pid);
        ev_io_init(&up.io, io_cb, up.sock, EV_READ);
        ev_timer_init(&up.timer, timer_cb, HELLO_TIMEOUT, 0);
        ev_child_init(&up.child, child_cb, pid, 0);
        ev_io_start(env.loop, &up.io);
        ev_timer_start(env.loop, &up.timer);
        ev_child_start(env.loop, &up.child);
        return 0;
}

/* ---- the new process ---- */

struct taken_port {
        struct port *port;
        struct hs_dev *hs; /* NULL: no connection */
};

struct taker {
        uint64_t paused_ns; /* when the old process stopped its workers (same clock, same machine) */
        struct state_reader r;
        int *fds;
        unsigned nfds;
        uint8_t fd_used[STATE_FDS_MAX / 8];
        char *err;
        size_t errlen;
        bool live;                    /* a state stored while running (FDSTORE_LIVE): the last process crashed */
        bool busy[FDSTORE_PORTS_MAX]; /* by port record: it was handling a message of that port's front-end */
};

static int take_errf(struct taker *t, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int take_errf(struct taker *t, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(t->err, t->errlen, fmt, ap);
        va_end(ap);
        return r;
}

/* The next record, which must be of type want; its fd (taken: -1 in fds) when it is an fd record. */
static int next_fd(struct taker *t, uint16_t want, int *fd)
{
        struct state_reader save = t->r;
        struct state_rec rec;
        unsigned index;
        int r = state_next(&t->r, &rec, t->err, t->errlen);

        if (r < 0)
                return r;
        if (r == 0 || rec.type != want) {
                t->r = save;
                return 0;
        }
        if (state_get_fd_index(&t->r, &rec, &index) < 0 || hs_take_fd_index(t->fd_used, index) < 0)
                return take_errf(t, -EBADMSG, "record %u: a bad or reused fd index", want);
        *fd = t->fds[index];
        t->fds[index] = -1;
        return 1;
}

static struct port *port_named(struct port *ports, unsigned nports, const char *name)
{
        for (unsigned i = 0; i < nports; i++)
                if (!strcmp(ports[i].cfg->name, name))
                        return &ports[i];
        return NULL;
}

/* One port: its record was read into pr. */
static int take_port(struct taker *t, const struct port_rec *pr, unsigned index, struct ev_loop *loop,
                     struct port *ports, unsigned nports, struct taken_port *tp)
{
        char name[33], kind[17];
        int befds[BACKEND_HANDOVER_FDS_MAX], listen_fd = -1, conn_fd = -1, r;
        unsigned nqueues = le32toh(pr->nqueues), nbe = le32toh(pr->nbackend_fds), flags = le32toh(pr->flags);
        uint64_t notes[CONFIG_MAX_QUEUES];
        const struct backend_ops *ops;
        struct state_rec rec;
        struct port *p;

        snprintf(name, sizeof(name), "%.32s", pr->name);
        snprintf(kind, sizeof(kind), "%.16s", pr->kind);
        p = port_named(ports, nports, name);
        if (!p)
                return take_errf(t, -ENOENT, "port %s is not in this configuration", name);
        if (p->be || p->loop)
                return take_errf(t, -EEXIST, "port %s twice in the state", name);
        if (strcmp(kind, p->cfg->backend.kind) || nqueues != p->cfg->queues || nqueues > CONFIG_MAX_QUEUES)
                return take_errf(t, -EINVAL, "port %s: a %s port with %u queue pairs, configured as %s with %u", name,
                                 kind, nqueues, p->cfg->backend.kind, p->cfg->queues);
        if (nbe > BACKEND_HANDOVER_FDS_MAX || (flags & ~(unsigned)PORT_FLAGS_KNOWN))
                return take_errf(t, -EBADMSG, "port %s: %u backend fds, flags 0x%x", name, nbe, flags);
        ops = backend_find(kind);
        if (!ops || !ops->adopt)
                return take_errf(t, -EOPNOTSUPP, "port %s: this vhostd cannot take %s ports over", name, kind);
        if ((r = state_next(&t->r, &rec, t->err, t->errlen)) < 0)
                return r;
        if (r == 0 || rec.type != REC_BACKEND_NOTES || rec.len != nqueues * sizeof(notes[0]))
                return take_errf(t, -EBADMSG, "port %s: no notes for its %u queues", name, nqueues);
        memcpy(notes, rec.value, rec.len);
        for (unsigned q = 0; q < nqueues; q++)
                notes[q] = le64toh(notes[q]);
        if ((r = next_fd(t, REC_LISTEN_FD, &listen_fd)) < 0)
                return r;
        for (unsigned i = 0; i < nbe; i++) {
                if ((r = next_fd(t, REC_BACKEND_FD, &befds[i])) <= 0) {
                        for (unsigned k = 0; k < i; k++)
                                close(befds[k]);
                        if (listen_fd >= 0)
                                close(listen_fd);
                        return r < 0 ? r : take_errf(t, -EBADMSG, "port %s: %u of its %u backend fds", name, i, nbe);
                }
        }
        if (flags & PORT_REOPEN) {
                /* Its backend kept positions of its own that died with the last process: a new one, as at a start. */
                if (nbe || !t->live)
                        return take_errf(t, -EBADMSG, "port %s: to be opened anew, but with %u fds", name, nbe);
                r = port_open_backend(p);
        } else {
                r = ops->adopt(&p->cfg->backend, nqueues, befds, nbe, notes, &p->be);
        }
        if (r < 0) {
                if (listen_fd >= 0)
                        close(listen_fd);
                return take_errf(t, r, "port %s: cannot take the %s port over: %s", name, kind, strerror(-r));
        }
        port_adopt(p, loop, listen_fd, flags & PORT_LISTEN_PATH_OURS, flags & PORT_HANDED_CONNECTION);
        p->connections = le64toh(pr->connections);
        if ((r = next_fd(t, REC_CONN_FD, &conn_fd)) < 0)
                return r;
        if (r == 0) {
                port_adopt_unconnected(p);
                return 0;
        }
        tp->hs = calloc(1, sizeof(*tp->hs));
        if (!tp->hs) {
                close(conn_fd);
                return take_errf(t, -ENOMEM, "out of memory");
        }
        if ((r = hs_load(&t->r, tp->hs, t->fd_used, t->err, t->errlen)) < 0) {
                close(conn_fd);
                return r;
        }
        if (t->live && index < FDSTORE_PORTS_MAX && t->busy[index]) {
                /* The front-end may wait for an answer, or have sent what the state lacks: it must start over. */
                log_warn("%s: the last vhostd ended while handling a message of its front-end; closing the "
                         "connection so that the front-end reconnects",
                         p->name);
                close(conn_fd);
                free(tp->hs);
                tp->hs = NULL;
                port_adopt_unconnected(p);
                return 0;
        }
        if ((r = port_adopt_connection(p, conn_fd)) < 0)
                return take_errf(t, r, "port %s: cannot set the connection up: %s", name, strerror(-r));
        /* The device's fds are still indices: make them the fds that came (vu_dev_import() takes them). */
        return vu_dev_import(p->dev, tp->hs, t->fds, t->err, t->errlen);
}

static int take_all(struct taker *t, struct ev_loop *loop, struct port *ports, unsigned nports, struct ctl *ctl,
                    const char *ctl_path, struct taken_port *taken)
{
        struct state_rec rec;
        struct daemon_rec d;
        unsigned ntaken = 0;
        int r, ctl_fd = -1;

        if ((r = state_next(&t->r, &rec, t->err, t->errlen)) <= 0 || rec.type != REC_DAEMON || rec.len < sizeof(d))
                return r < 0 ? r : take_errf(t, -EBADMSG, "the state does not start with the daemon's record");
        memcpy(&d, rec.value, sizeof(d));
        t->paused_ns = le64toh(d.paused_ns);
        log_info("upgrade: taking %u port%s over from vhostd pid %u", le32toh(d.nports),
                 le32toh(d.nports) == 1 ? "" : "s", le32toh(d.pid));
        if ((r = next_fd(t, REC_CTL_FD, &ctl_fd)) < 0)
                return r;
        if (r && ctl_path && ctl_path[0] && ctl_start_fd(ctl, loop, ctl_fd, ctl_path, ports, nports) < 0)
                return take_errf(t, -EIO, "cannot serve the control socket handed over");
        if (r && !(ctl_path && ctl_path[0]))
                close(ctl_fd);
        while ((r = state_next(&t->r, &rec, t->err, t->errlen)) == 1) {
                struct port_rec pr;

                if (rec.type != REC_PORT) {
                        if (rec.flags & STATE_REC_REQUIRED)
                                return take_errf(t, -EBADMSG, "record %u: unknown and required (a newer vhostd)",
                                                 rec.type);
                        continue;
                }
                if (rec.len < sizeof(pr) || ntaken == nports)
                        return take_errf(t, -EBADMSG, "a port record of %u bytes, or more ports than %u", rec.len,
                                         nports);
                memcpy(&pr, rec.value, sizeof(pr));
                if ((r = take_port(t, &pr, ntaken, loop, ports, nports, &taken[ntaken])) < 0)
                        return r;
                taken[ntaken].port = port_named(ports, nports, pr.name);
                ntaken++;
        }
        if (r < 0)
                return r;
        for (unsigned i = 0; i < nports; i++)
                if (!ports[i].be)
                        return take_errf(t, -ENOENT, "port %s is configured but not in the old process's state",
                                         ports[i].cfg->name);
        return 0;
}

/* What a takeover leaves: the fds no record took, the parsed devices, the state blob. */
static void taker_free(struct taker *t, struct taken_port *taken, unsigned nports, uint8_t *blob)
{
        if (t) {
                for (unsigned i = 0; t->fds && i < t->nfds; i++)
                        if (t->fds[i] >= 0)
                                close(t->fds[i]);
                free(t->fds);
        }
        for (unsigned i = 0; taken && i < nports; i++)
                free(taken[i].hs);
        free(taken);
        free(t);
        free(blob);
}

/* Ours now: start the rings that ran. A ring that cannot start is that ring's problem, not the others'. */
static void start_taken(struct taker *t, struct taken_port *taken, unsigned nports, const char *what)
{
        for (unsigned i = 0; i < nports; i++) {
                char why[256];

                if (taken[i].hs && taken[i].port->dev &&
                    vu_dev_import_start(taken[i].port->dev, taken[i].hs, t->fds, why, sizeof(why)) < 0)
                        log_err("%s: %s", what, why);
        }
        log_info("%s: the rings run again %.1f ms after %s", what, (double)(now_ns() - t->paused_ns) / 1e6,
                 t->live ? "the state was stored, while they ran" : "the old vhostd paused them");
}

int handover_take(int sock, struct ev_loop *loop, struct port *ports, unsigned nports, struct ctl *ctl,
                  const char *ctl_path, char *err, size_t errlen)
{
        struct taker *t = calloc(1, sizeof(*t));
        struct taken_port *taken = calloc(nports ? nports : 1, sizeof(*taken));
        struct timeval tv = {.tv_sec = SEND_TIMEOUT_S};
        struct upg_msg m;
        uint8_t *blob = NULL;
        size_t len = 0;
        int r;

        (void)fcntl(sock, F_SETFD, FD_CLOEXEC);
        if (!t || !taken) {
                snprintf(err, errlen, "out of memory");
                r = -ENOMEM;
                goto out;
        }
        t->err = err;
        t->errlen = errlen;
        (void)setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if ((r = msg_send(sock, MSG_HELLO, STATE_MAJOR, NULL)) < 0) {
                snprintf(err, errlen, "cannot greet the old vhostd: %s", strerror(-r));
                goto out;
        }
        tv.tv_sec = 60; /* the old one may wait for its workers' bursts to end; never forever */
        (void)setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        r = state_recv(sock, &blob, &len, &t->fds, &t->nfds, err, errlen);
        if (r < 0)
                goto out;
        if ((r = state_reader_init(&t->r, blob, len, t->nfds, err, errlen)) < 0 ||
            (r = take_all(t, loop, ports, nports, ctl, ctl_path, taken)) < 0) {
                (void)msg_send(sock, MSG_REFUSE, 0, err);
                goto out;
        }
        if ((r = msg_send(sock, MSG_READY, 0, NULL)) < 0) {
                snprintf(err, errlen, "cannot tell the old vhostd it may go: %s", strerror(-r));
                goto out;
        }
        r = msg_recv(sock, COMMIT_TIMEOUT_MS, &m);
        if (r < 0 || m.kind != MSG_COMMIT) {
                snprintf(err, errlen, "the old vhostd kept its ports (%s)", r < 0 ? strerror(-r) : "no commit");
                r = r < 0 ? r : -ECANCELED;
                goto out;
        }
        start_taken(t, taken, nports, "upgrade");
        r = 0;
out:
        taker_free(t, taken, nports, blob);
        close(sock);
        return r;
}

/* ---- systemd's fd store: the same state across a restart of the unit or a crash (fdstore.h) ---- */

int handover_store(char *err, size_t errlen)
{
        struct state_writer w;
        int r;

        for_each_dev(quiesce_dev);
        /* Not the control socket: the unit removes its path when it stops, so the next start makes a new one. */
        r = build_state(&w, now_ns(), false, false, err, errlen);
        if (r == 0 && (r = fdstore_put(w.fds, w.nfds, w.buf, w.len, 0, err, errlen)) == 0)
                log_info("state (%zu bytes) and %u fds in systemd's fd store: the next start takes them over", w.len,
                         w.nfds);
        state_writer_free(&w);
        if (r < 0)
                for_each_dev(vu_dev_resume); /* the last state stored while running stays in the store */
        return r;
}

int handover_checkpoint(void)
{
        struct state_writer w;
        char err[512];
        int r;

        if (!fdstore_enabled() || up.active)
                return 0; /* during an upgrade the old state stays: the new process stores its own */
        r = build_state(&w, now_ns(), false, true, err, sizeof(err));
        if (r == 0)
                r = fdstore_put(w.fds, w.nfds, w.buf, w.len, FDSTORE_LIVE, err, sizeof(err));
        state_writer_free(&w);
        if (r < 0)
                log_err("fd store: the state after this change is not stored (%s); a crash now closes the "
                        "connections",
                        err);
        return r;
}

void handover_busy(const struct port *p, bool busy)
{
        if (fdstore_enabled() && p >= env.ports && p < env.ports + env.nports)
                fdstore_busy((unsigned)(p - env.ports), busy);
}

int handover_take_stored(int *fds, char names[][64], int nfds, struct ev_loop *loop, struct port *ports,
                         unsigned nports, struct ctl *ctl, const char *ctl_path, char *err, size_t errlen)
{
        struct taker *t = calloc(1, sizeof(*t));
        struct taken_port *taken = calloc(nports ? nports : 1, sizeof(*taken));
        struct fdstore_state fs;
        int r;

        if (!t || !taken) {
                free(t);
                free(taken);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        r = fdstore_take(fds, names, nfds, &fs, err, errlen);
        if (r <= 0) {
                taker_free(t, taken, nports, NULL);
                return r;
        }
        t->err = err;
        t->errlen = errlen;
        t->fds = fs.fds;
        t->nfds = fs.nfds;
        t->live = fs.flags & FDSTORE_LIVE;
        memcpy(t->busy, fs.busy, sizeof(t->busy));
        fs.fds = NULL;
        if (t->live)
                log_warn("restart: the last vhostd ended without stopping (a crash?): taking over the state it "
                         "stored last; ring positions come from guest memory");
        if ((r = state_reader_init(&t->r, fs.blob, fs.len, t->nfds, err, errlen)) < 0 ||
            (r = take_all(t, loop, ports, nports, ctl, ctl_path, taken)) < 0) {
                fdstore_forget(); /* a state that failed once would fail again */
                goto out;
        }
        start_taken(t, taken, nports, "restart");
        r = 1;
out:
        taker_free(t, taken, nports, fs.blob);
        return r;
}
