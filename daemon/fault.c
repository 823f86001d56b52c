// SPDX-License-Identifier: MIT
/*
 * SIGBUS recovery. Why a signal handler and siglongjmp rather than checking the file size before each access:
 * the front-end can truncate at any instant, between any check and the copy, and the kernel tells us only by
 * the fault. The jump lands in the worker with its lock held (see worker.c); the worker then never touches that
 * device's memory again and the control thread closes the connection. What the jump skips is the rest of one
 * burst of that device: its rings are dropped with the connection, and a frame the port was handing over at
 * that instant may be lost. Other devices, other workers and the control loop are not involved.
 */
#include "daemon/fault.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

__thread sigjmp_buf *fault_recovery;
__thread void *fault_address;

static void sigbus_handler(int sig, siginfo_t *si, void *ctx)
{
        sigjmp_buf *jb = fault_recovery;

        if (jb) {
                fault_recovery = NULL;
                fault_address = si->si_addr;
                siglongjmp(*jb, 1);
        }
        /* Not a guest-memory access of a worker: a real bug. Die as we would have without the handler. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        (void)sigaction(SIGBUS, &dfl, NULL);
}

int fault_install(void)
{
        /* SA_NODEFER: the jump leaves the handler without sigreturn, so SIGBUS must not stay blocked. */
        struct sigaction sa = {.sa_sigaction = sigbus_handler, .sa_flags = SA_SIGINFO | SA_NODEFER};

        sigemptyset(&sa.sa_mask);
        return sigaction(SIGBUS, &sa, NULL) < 0 ? -errno : 0;
}
