/* SPDX-License-Identifier: MIT */
#ifndef DAEMON_ISOLATE_H
#define DAEMON_ISOLATE_H

/*
 * Drops to user/group (when user is non-empty) after every privileged open is done, and sets
 * no_new_privs. Changing to a non-root uid clears all capabilities: no port needs any afterwards.
 */
int isolate_drop(const char *user, const char *group);

/* Installs the system-call allow-list (after isolate_drop, which sets no_new_privs). */
int isolate_seccomp(void);

#endif
