/* SPDX-License-Identifier: MIT */
/*
 * Shared by the integration tests (tests/integration/integ_*.c): a real vhostd process to start and stop, its
 * counters through vhostctl --json, echo traffic with checked frames (struct flow), background traffic on a
 * thread (struct bg), and /proc state of a process (struct pstate).
 */
#ifndef TESTS_FAKEFE_HARNESS_H
#define TESTS_FAKEFE_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/fakefe/fakefe.h"

extern char g_dir[64];
extern uint32_t g_gen; /* connection generation, for struct flow */

#define CHECK(cond, ...)                                                                                               \
        do {                                                                                                           \
                if (!(cond)) {                                                                                         \
                        printf("  FAIL %s:%d: %s: ", __func__, __LINE__, #cond);                                       \
                        printf(__VA_ARGS__);                                                                           \
                        printf("\n");                                                                                  \
                        return -1;                                                                                     \
                }                                                                                                      \
        } while (0)

struct vhostd {
        pid_t pid;
        char sock[108], ctl[108], log[256];
};

struct vstat {
        bool found, started, enabled, broken;
        uint64_t frames, bytes, drops, kicks, calls;
        char reason[160];
};

struct flow {
        struct fe_ring *tx, *rx;
        uint32_t salt;
        uint32_t gen;                       /* in the source MAC: frames of another connection are stale */
        uint32_t send_seq, recv_seq, limit; /* posts frames while send_seq < limit */
        uint64_t tx_bytes, rx_bytes;
        uint64_t stale, stale_bytes; /* frames a previous connection left in the port, delivered to us */
        uint32_t min_len, max_len, big_len, big_every; /* sizes; big_len every big_every frames (0: never) */
        unsigned tx_nseg_max;                          /* tx descriptors per chain: 1..this */
        bool tx_indirect;                              /* every other chain indirect */
        bool rx_custom;                                /* rx posted here (rx->rx_buf_size == 0) */
        uint32_t rx_size;
        uint32_t rx_budget, rx_posted; /* rx buffers to post in all (0: keep the ring full) */
        unsigned rx_per_pump;          /* frames flow_pump() takes off the rx ring at most (0: all there are) */
        unsigned rx_nseg;
        bool rx_indirect;
        char err[256];
        uint8_t fbuf[FE_FRAME_MAX], rbuf[FE_FRAME_MAX];
};

struct bg {
        struct flow *f;
        pthread_t th;
        atomic_bool stop;
        atomic_uint received;
        int result;
};

struct pstate {
        int fds, threads, maps;
};

const char *vhostctl_path(void);
int ctl_query(const char *ctl, char *buf, size_t cap);
const char *json_find(const char *obj, const char *key);
uint64_t json_u64(const char *obj, const char *key);
bool json_true(const char *obj, const char *key);
uint64_t json_port_u64(const char *js, const char *key);
void json_vring(const char *js, unsigned idx, struct vstat *s);
int vstats(const struct vhostd *v, struct vstat *s, unsigned n, char *js, size_t cap);
int vhostd_start(struct vhostd *v, const char *tag, unsigned queues, const char *const *extra);
void print_log_tail(const char *path, int lines);
bool file_contains(const char *path, long from, const char *needle);
/* Whether a line of the file from offset on has needle, and also (unless NULL) on the same line. */
bool file_has_line(const char *path, long from, const char *needle, const char *also);
bool log_wait(const char *path, long from, const char *needle, int timeout_ms);
/* Waits up to timeout_ms for such a line. */
bool log_wait_line(const char *path, long from, const char *needle, const char *also, int timeout_ms);
long file_size(const char *path);
int vhostd_stop(struct vhostd *v);
bool vhostd_alive(const struct vhostd *v);
uint32_t mix32(uint32_t x);
uint32_t flow_len(const struct flow *f, uint32_t seq);
int flow_fail(struct flow *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const uint8_t *flow_mac(const struct flow *f, uint8_t mac[6]);
int flow_post_rx(struct flow *f);
/* Posts the flow's next frame in @nseg descriptors (or an indirect table): 0, -ENOSPC, or -1 (f->err). */
int flow_post_one(struct flow *f, unsigned nseg, bool indirect);
int flow_pump(struct flow *f);
void flows_wait(struct flow **fl, unsigned n, int timeout_ms);
int flows_run(struct flow **fl, unsigned n, int stall_ms);
void flow_init(struct flow *f, struct fe *fe, unsigned qp, uint32_t salt, uint32_t limit);
void *bg_main(void *arg);
int bg_start(struct bg *b, struct flow *f);
int bg_stop(struct bg *b);
bool bg_flowing(struct bg *b, unsigned more, int timeout_ms);
void pstate_get(pid_t pid, struct pstate *s);
void dump_threads(pid_t pid);
int pstate_wait(pid_t pid, const struct pstate *base, int timeout_ms, struct pstate *now);

/* Start of a test program: line-buffered stdout, SIGPIPE ignored, g_dir = a fresh /tmp/vhostd-integ-TAG-*. */
int harness_begin(const char *tag);
/* End: removes g_dir when all passed (else says where the logs are), prints the closing line, exit code. */
int harness_finish(unsigned pass, unsigned fail);

#endif
