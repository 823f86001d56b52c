/* SPDX-License-Identifier: MIT */
/*
 * Guest memory that vanishes under a worker. A front-end may shrink the file behind a region it shared (a memfd
 * without F_SEAL_SHRINK, a hugetlbfs file) after we mapped it; the next access to the lost pages raises SIGBUS.
 * A worker touches guest memory only inside fault_guard(): the SIGBUS handler jumps back there, and the worker
 * gives up its device instead of the whole daemon dying. A fault anywhere else keeps the default action.
 */
#ifndef DAEMON_FAULT_H
#define DAEMON_FAULT_H

#include <setjmp.h>

/* The current thread's recovery point while it touches guest memory; NULL elsewhere. */
extern __thread sigjmp_buf *fault_recovery;
/* The address of the last recovered fault on this thread, for the log. */
extern __thread void *fault_address;

/* Installs the SIGBUS handler (at start-up, before any worker runs). */
int fault_install(void);

#endif
