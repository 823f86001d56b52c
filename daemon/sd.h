/* SPDX-License-Identifier: MIT */
/* The two bits of systemd we use, done by hand so there is no libsystemd dependency. */
#ifndef DAEMON_SD_H
#define DAEMON_SD_H

#include <stdint.h>

#define SD_LISTEN_FDS_START 3
#define SD_MAX_LISTEN_FDS 64

/* Listening fds passed by socket activation, with names (LISTEN_FDNAMES). Returns the count (0 if none). */
int sd_listen(int *fds, char names[][64], unsigned max);
/* Sends a state string ("READY=1", "STATUS=...") to $NOTIFY_SOCKET; a no-op without it. */
int sd_notify_str(const char *state);
/* The watchdog interval asked for by the service manager, in microseconds; 0 when none. */
uint64_t sd_watchdog_usec(void);

#endif
