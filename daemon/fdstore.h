/* SPDX-License-Identifier: MIT */
/*
 * systemd's fd store, kept current (vhostd --fd-store, vhostd@.service): whenever a connection comes, goes or
 * changes, the state and every fd it names are in the store, so that a start after a crash (Restart=on-failure)
 * finds them as a start after "systemctl restart" does. The state format is the handover's (handover.c); this file
 * only stores and finds it.
 *
 * Names in the store: each fd once, as "vhostd-fd-SERIAL" (systemd keeps one copy of an open file and ignores it
 * when sent again, so an fd is sent once and then referred to by its serial); each state as a sealed memfd
 * "vhostd-state-GEN", a header with the serial of each of its fds by index, then the state. A new state goes in
 * before the one it replaces is removed, and fds no state names any more go last: wherever the process dies, the
 * store holds one whole state. "vhostd-busy": a byte per port, set while a message of that port's front-end is
 * being handled and the stored state does not include it yet (see fdstore_busy()).
 */
#ifndef DAEMON_FDSTORE_H
#define DAEMON_FDSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FDSTORE_LIVE 0x1 /* written while the workers ran (not at a stop): ring positions are in guest memory */
#define FDSTORE_PORTS_MAX 256

/* Whether states are stored: --fd-store given and systemd listening (NOTIFY_SOCKET). */
void fdstore_enable(bool on);
bool fdstore_enabled(void);

/*
 * Stores a state: the blob (flags: FDSTORE_LIVE or 0) and its fds by index (the caller keeps them; the store gets
 * its own copies). 0, or -errno with err (the previous state stays the stored one).
 */
int fdstore_put(const int *fds, unsigned nfds, const void *blob, size_t len, uint32_t flags, char *err, size_t errlen);

/*
 * Port index (in the order the state lists its ports) busy: a message from its front-end is being handled. A
 * process that takes a state over closes the connections of busy ports instead of taking them (the front-end
 * may be waiting for an answer the state knows nothing of); it reconnects. Cleared by the next fdstore_put().
 */
void fdstore_busy(unsigned port, bool busy);

/* Removes everything this process stored (an upgrade hands it all to the new process, which stores it again). */
void fdstore_forget(void);

struct fdstore_state {
        uint8_t *blob;
        size_t len;
        uint32_t flags;
        int *fds; /* by index, each an fd of its own for the taker; -1 once taken */
        unsigned nfds;
        bool busy[FDSTORE_PORTS_MAX]; /* by port index, as the busy bytes were when the last process ended */
};

/*
 * At start: takes the newest whole state out of the fds passed in (fds, names: LISTEN_FDS/LISTEN_FDNAMES; those
 * used become -1) and removes from the store whatever no state needs. 1: st filled (fdstore_state_free() it);
 * 0: no state stored; -errno with err: a state that cannot be read (the store is emptied).
 */
int fdstore_take(int *fds, char names[][64], int nfds, struct fdstore_state *st, char *err, size_t errlen);
void fdstore_state_free(struct fdstore_state *st);

#endif
