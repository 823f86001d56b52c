/* SPDX-License-Identifier: MIT */
/* The bits of systemd we use, done by hand so there is no libsystemd dependency. */
#ifndef DAEMON_SD_H
#define DAEMON_SD_H

#include <stdint.h>

#define SD_LISTEN_FDS_START 3
#define SD_MAX_LISTEN_FDS 1024 /* socket units' fds and the fd store's (an upgrade's state: every fd vhostd holds) */

/* Listening fds passed by socket activation, with names (LISTEN_FDNAMES). Returns the count (0 if none). */
int sd_listen(int *fds, char names[][64], unsigned max);
/* Sends a state string ("READY=1", "STATUS=...") to $NOTIFY_SOCKET; a no-op without it. */
int sd_notify_str(const char *state);
/* The same with fds attached (FDSTORE=1); -errno. */
int sd_notify_fds(const char *state, const int *fds, unsigned nfds);
/* The watchdog interval asked for by the service manager, in microseconds; 0 when none. */
uint64_t sd_watchdog_usec(void);

#endif
