/* SPDX-License-Identifier: MIT */
/*
 * Upgrading without the guest noticing (`vhostctl upgrade`, SIGUSR2): the running vhostd starts the new binary with
 * one end of a socket pair, waits (serving as usual) until it says hello and which state version it reads, then
 * quiesces every worker, hands it the state and every fd (listening sockets, connections, guest memory, eventfds,
 * dirty log, port queues, control socket) and waits for it to say it holds everything; only then does it tell it
 * to go on, and exits without closing anything a front-end could see. If the new process fails at any step before
 * that, it is stopped and the old one resumes as if nothing happened, saying why. See docs/design.md.
 */
#ifndef DAEMON_HANDOVER_H
#define DAEMON_HANDOVER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

struct port;
struct ctl;

struct handover_env {
        struct ev_loop *loop;
        struct port *ports;
        unsigned nports;
        struct ctl *ctl;
        char **argv;      /* this process's command line, given to the new one (NULL-terminated) */
        const char *self; /* the binary to start when none is named: the one this process was started from */
        bool seccomp;     /* the system-call filter allows no exec */
};

void handover_setup(const struct handover_env *env);

/* done(arg, ok, text): the outcome, once. On success the process exits right after it returns. */
typedef void (*handover_done_fn)(void *arg, bool ok, const char *text);
/*
 * Starts an upgrade to binary (NULL: env.self). 0: under way, done() will tell; -errno: not started, err says why
 * (one already under way, a port that cannot be handed over, no such binary...).
 */
int handover_upgrade(const char *binary, handover_done_fn done, void *arg, char *err, size_t errlen);

/*
 * The new process's side, on the socket given with --handover-fd: takes every port over (their backends, sockets,
 * connections and the control socket) before the event loop runs. 0: this process serves now; -errno: it must
 * exit at once without touching anything (the old one goes on), err says why.
 */
int handover_take(int sock, struct ev_loop *loop, struct port *ports, unsigned nports, struct ctl *ctl,
                  const char *ctl_path, char *err, size_t errlen);

/*
 * systemd's fd store (vhostd --fd-store, vhostd@.service; fdstore.h). handover_checkpoint() stores the state as it
 * is, workers running, after each change of a connection (the control loop calls it), so that a start after a
 * crash takes the connections over; 0 or -errno (logged; the store keeps the state before). handover_busy()
 * marks port p while a message of its front-end is handled and not stored yet. handover_store(), on SIGTERM:
 * quiesces the workers and stores the state exactly (ring positions, every port's fds), for "systemctl restart".
 * 0, or -errno with err (the workers run again; the last state stored while running stays).
 */
int handover_checkpoint(void);
void handover_busy(const struct port *p, bool busy);
int handover_store(char *err, size_t errlen);
/*
 * At start: when the fds passed in (fds, names: LISTEN_FDS/LISTEN_FDNAMES) hold a stored state, takes every port
 * over from it (the store keeps it until this process stores its own). 1: taken over (the fds used are set to -1);
 * 0: no state stored; -errno: a stored state that could not be taken (err says why; the store is emptied, start as
 * usual).
 */
int handover_take_stored(int *fds, char names[][64], int nfds, struct ev_loop *loop, struct port *ports,
                         unsigned nports, struct ctl *ctl, const char *ctl_path, char *err, size_t errlen);

#endif
