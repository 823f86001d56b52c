// SPDX-License-Identifier: MIT
/*
 * An allow-list of the system calls vhostd makes once it is running (control loop, workers, every port
 * kind). Installed last, after ports, sockets and privileges are settled; anything else kills the process,
 * so an exploited data path cannot open files, exec, or reach the network on its own.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "daemon/isolate.h"
#include "daemon/log.h"

static const int allowed[] = {
        /* I/O on fds we already hold: vhost-user sockets, eventfds, tap, packet and XDP sockets */
        SYS_read,
        SYS_write,
        SYS_readv,
        SYS_writev,
        SYS_close,
        SYS_recvmsg,
        SYS_sendmsg,
        SYS_recvfrom,
        SYS_sendto,
        SYS_recvmmsg,
        SYS_sendmmsg,
        SYS_accept4,
        SYS_shutdown,
        SYS_setsockopt,
        SYS_getsockopt,
        SYS_socket,
        SYS_bind,        /* port recovery: an AF_PACKET socket bound to a re-created interface */
        SYS_getsockname, /* libbpf's netlink socket, detaching or finding an XDP program (afxdp close, recovery) */
        SYS_dup3,        /* port recovery: a re-attached tap on the fd number the worker knows */
        SYS_connect,
        SYS_fcntl,
        SYS_ioctl,
        SYS_lseek,
        SYS_unlink,
        SYS_fstat,
        SYS_newfstatat,
        SYS_eventfd2,
        SYS_memfd_create, /* --fd-store: each state stored is a sealed memfd */
        SYS_kcmp,         /* --fd-store: is this fd in the store already? */
        SYS_poll,
        SYS_ppoll,
        SYS_pselect6,
        SYS_select,
        /* event loops */
        SYS_epoll_create1,
        SYS_epoll_ctl,
        SYS_epoll_wait,
        SYS_epoll_pwait,
        SYS_epoll_pwait2,
        SYS_sched_yield,    /* a polling worker lets others on its CPU go first */
        SYS_io_uring_enter, /* tap sends: the rings exist before the filter, and may only do WRITEV */
        /* memory: guest regions, malloc, thread stacks */
        SYS_mmap,
        SYS_munmap,
        SYS_mprotect,
        SYS_madvise,
        SYS_brk,
        SYS_mremap,
        /* threads */
        SYS_clone,
        SYS_clone3,
        SYS_futex,
        SYS_set_robust_list,
        SYS_rseq,
        SYS_exit,
        SYS_exit_group,
        SYS_wait4, /* reaping afxdp's NAPI restorer (backends/napi.c) at close */
        SYS_sched_setaffinity,
        SYS_sched_getaffinity,
        SYS_sched_yield,
        SYS_gettid,
        SYS_getpid,
        SYS_tgkill,
        /* signals and time */
        SYS_rt_sigaction,
        SYS_rt_sigprocmask,
        SYS_rt_sigreturn,
        SYS_restart_syscall,
        SYS_clock_gettime,
        SYS_clock_nanosleep,
        SYS_nanosleep,
        SYS_gettimeofday,
        SYS_getrandom,
        SYS_prctl,
};

/*
 * Refused with EPERM instead of killing: port recovery may try them (opening /dev/net/tun again, libxdp
 * loading its program), and a port that stays down, with the reason logged, beats a dead daemon.
 */
static const int refused[] = {
        SYS_open,
        SYS_openat,
        SYS_bpf,
};

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || __has_feature(address_sanitizer) ||               \
        __has_feature(thread_sanitizer)
#define SANITIZER_BUILD 1
#endif

int isolate_seccomp(void)
{
#ifdef SANITIZER_BUILD
        /* Sanitizer runtimes make system calls of their own (reports, symbolizing): no filter there. */
        log_warn("sanitizer build: the seccomp filter is not installed");
        return 0;
#endif
        struct sock_filter
                prog[4 + 2 * (sizeof(allowed) / sizeof(allowed[0]) + sizeof(refused) / sizeof(refused[0])) + 1];
        unsigned n = 0;

        prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
        for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
                prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i], 0, 1);
                prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        }
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)refused[i], 0, 1);
                prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
        }
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);

        struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) < 0)
                return log_err_errno(-errno, "cannot install the seccomp filter");
        log_info("seccomp filter installed: %zu system calls allowed", sizeof(allowed) / sizeof(allowed[0]));
        return 0;
}
