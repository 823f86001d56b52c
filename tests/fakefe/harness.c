// SPDX-License-Identifier: MIT
/* Helpers shared by the integration tests; see harness.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tests/fakefe/harness.h"
/* ---- helpers shared by the integ_* tests (each test is one file, so they are repeated) ------------------- */

char g_dir[64];
uint32_t g_gen; /* connection generation, for struct flow */

/* vhostctl next to the daemon (or $VHOSTCTL_BIN), or NULL to talk to the control socket directly. */
const char *vhostctl_path(void)
{
        static char path[512];
        const char *env = getenv("VHOSTCTL_BIN");
        char *slash;

        if (env && *env)
                return env;
        snprintf(path, sizeof(path), "%s", fe_vhostd_path());
        slash = strrchr(path, '/');
        if (!slash)
                return NULL;
        snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "vhostctl");
        return access(path, X_OK) == 0 ? path : NULL;
}

/* What `vhostctl -s CTL --json` prints (the same request on the socket when there is no vhostctl). */
int ctl_query(const char *ctl, char *buf, size_t cap)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        const char *vctl = vhostctl_path();
        size_t len = 0;
        ssize_t n;
        int fd;

        if (vctl) {
                char cmd[1024];
                FILE *f;

                snprintf(cmd, sizeof(cmd), "'%s' -s '%s' --json 2>/dev/null", vctl, ctl);
                f = popen(cmd, "r");
                if (!f)
                        return -errno;
                while (len + 1 < cap && (n = (ssize_t)fread(buf + len, 1, cap - 1 - len, f)) > 0)
                        len += (size_t)n;
                buf[len] = 0;
                return pclose(f) == 0 && len ? (int)len : -EIO;
        }
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ctl);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || send(fd, "json", 4, MSG_NOSIGNAL) != 4 ||
            shutdown(fd, SHUT_WR) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
                len += (size_t)n;
        close(fd);
        buf[len] = 0;
        return len ? (int)len : -EIO;
}

/* The value after "key": inside [obj, end of the object). */
const char *json_find(const char *obj, const char *key)
{
        char pat[64];
        const char *end = strchr(obj, '}'), *p;

        snprintf(pat, sizeof(pat), "\"%s\":", key);
        p = strstr(obj, pat);
        if (!p || (end && p > end))
                return NULL;
        return p + strlen(pat);
}

uint64_t json_u64(const char *obj, const char *key)
{
        const char *p = json_find(obj, key);

        if (!p)
                return UINT64_MAX;
        if (*p == '"')
                p++;
        return strtoull(p, NULL, 0);
}

bool json_true(const char *obj, const char *key)
{
        const char *p = json_find(obj, key);

        return p && !strncmp(p, "true", 4);
}

/* Top-level (port) field: searched before the vrings array. */
uint64_t json_port_u64(const char *js, const char *key)
{
        char pat[64];
        const char *p, *v = strstr(js, "\"vrings\"");

        snprintf(pat, sizeof(pat), "\"%s\":", key);
        p = strstr(js, pat);
        if (!p || (v && p > v))
                return UINT64_MAX;
        p += strlen(pat);
        if (*p == '"')
                p++;
        return strtoull(p, NULL, 0);
}

void json_vring(const char *js, unsigned idx, struct vstat *s)
{
        char pat[48];
        const char *o, *p;

        memset(s, 0, sizeof(*s));
        snprintf(pat, sizeof(pat), "{\"index\":%u,\"queue_pair\"", idx);
        o = strstr(js, pat);
        if (!o)
                return;
        s->found = true;
        s->started = json_true(o, "started");
        s->enabled = json_true(o, "enabled");
        s->broken = json_true(o, "broken");
        s->frames = json_u64(o, "frames");
        s->bytes = json_u64(o, "bytes");
        s->drops = json_u64(o, "drops");
        s->kicks = json_u64(o, "kicks");
        s->calls = json_u64(o, "calls");
        p = json_find(o, "broken_reason");
        if (p && *p == '"') {
                size_t i = 0;
                for (p++; *p && *p != '"' && i + 1 < sizeof(s->reason); p++)
                        s->reason[i++] = *p;
                s->reason[i] = 0;
        }
}

int vstats(const struct vhostd *v, struct vstat *s, unsigned n, char *js, size_t cap)
{
        int r = ctl_query(v->ctl, js, cap);

        if (r < 0)
                return r;
        for (unsigned i = 0; i < n; i++)
                json_vring(js, i, &s[i]);
        return 0;
}

int vhostd_start(struct vhostd *v, const char *tag, unsigned queues, const char *const *extra)
{
        char q[16], js[4096];
        char *argv[40];
        int n = 0;
        int64_t end;

        memset(v, 0, sizeof(*v));
        snprintf(v->sock, sizeof(v->sock), "%s/%s.sock", g_dir, tag);
        snprintf(v->ctl, sizeof(v->ctl), "%s/%s.ctl", g_dir, tag);
        snprintf(v->log, sizeof(v->log), "%s/%s.log", g_dir, tag);
        snprintf(q, sizeof(q), "%u", queues);
        argv[n++] = (char *)fe_vhostd_path();
        argv[n++] = "-s";
        argv[n++] = v->sock;
        argv[n++] = "-b";
        argv[n++] = "loopback";
        argv[n++] = "-q";
        argv[n++] = q;
        argv[n++] = "-C";
        argv[n++] = v->ctl;
        for (; extra && *extra && n < 38; extra++)
                argv[n++] = (char *)*extra;
        argv[n] = NULL;
        v->pid = fe_spawn_vhostd(argv, v->log);
        if (v->pid < 0) {
                printf("  cannot start %s: %s\n", argv[0], strerror((int)-v->pid));
                return (int)v->pid;
        }
        for (end = fe_now_ms() + 10000; fe_now_ms() < end; usleep(10000))
                if (ctl_query(v->ctl, js, sizeof(js)) > 0)
                        return 0;
        printf("  vhostd did not answer on %s\n", v->ctl);
        return -ETIMEDOUT;
}

void print_log_tail(const char *path, int lines)
{
        char cmd[400];

        printf("  --- last %d lines of %s ---\n", lines, path);
        fflush(stdout);
        snprintf(cmd, sizeof(cmd), "tail -n %d '%s' | sed 's/^/  | /'", lines, path);
        if (system(cmd) < 0)
                printf("  (cannot show it)\n");
}

bool file_has_line(const char *path, long from, const char *needle, const char *also)
{
        FILE *f = fopen(path, "re");
        char *line = NULL;
        size_t cap = 0;
        bool found = false;

        if (!f)
                return false;
        if (from > 0)
                fseek(f, from, SEEK_SET);
        while (!found && getline(&line, &cap, f) > 0)
                found = strstr(line, needle) && (!also || strstr(line, also));
        free(line);
        fclose(f);
        return found;
}

bool file_contains(const char *path, long from, const char *needle)
{
        return file_has_line(path, from, needle, NULL);
}

bool log_wait_line(const char *path, long from, const char *needle, const char *also, int timeout_ms)
{
        int64_t end = fe_now_ms() + timeout_ms;

        while (!file_has_line(path, from, needle, also)) {
                if (fe_now_ms() > end)
                        return false;
                usleep(5000);
        }
        return true;
}

bool log_wait(const char *path, long from, const char *needle, int timeout_ms)
{
        return log_wait_line(path, from, needle, NULL, timeout_ms);
}

long file_size(const char *path)
{
        struct stat st;

        return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Stops the daemon by its pid; fails when it had died, did not exit cleanly, or a sanitizer complained. */
int vhostd_stop(struct vhostd *v)
{
        int status = 0, r;
        bool dead_before = kill(v->pid, 0) < 0 || waitpid(v->pid, &status, WNOHANG) == v->pid;

        if (v->pid <= 0)
                return 0;
        r = dead_before ? 0 : fe_stop(v->pid, 10000, &status);
        v->pid = 0;
        if (file_contains(v->log, 0, "AddressSanitizer") || file_contains(v->log, 0, "runtime error:") ||
            file_contains(v->log, 0, "LeakSanitizer")) {
                printf("  FAIL: sanitizer report in %s\n", v->log);
                print_log_tail(v->log, 60);
                return -1;
        }
        if (dead_before || r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                printf("  FAIL: vhostd %s (status 0x%x)\n",
                       dead_before ? "had died"
                       : r < 0     ? "did not stop on SIGTERM"
                                   : "exited with an error",
                       status);
                print_log_tail(v->log, 30);
                return -1;
        }
        return 0;
}

bool vhostd_alive(const struct vhostd *v)
{
        int status;

        return v->pid > 0 && waitpid(v->pid, &status, WNOHANG) == 0;
}

/* ---- echo traffic ---------------------------------------------------------------------------------------- */

uint32_t mix32(uint32_t x)
{
        x ^= x >> 16;
        x *= 0x7feb352du;
        x ^= x >> 15;
        x *= 0x846ca68bu;
        x ^= x >> 16;
        return x;
}

static const uint32_t edge_sizes[] = {60,   61,   63,   64,   65,   127,  128,  255,  256,  511,  512,  1023,
                                      1024, 1500, 1514, 1518, 2047, 2048, 4095, 4096, 8191, 8192, 8999, 9000};

uint32_t flow_len(const struct flow *f, uint32_t seq)
{
        uint32_t h = mix32(seq ^ f->salt), span = f->max_len - f->min_len + 1, len;

        if (f->big_every && seq % f->big_every == f->big_every / 2)
                return f->big_len;
        if (h & 1) {
                len = edge_sizes[(h >> 1) % (sizeof(edge_sizes) / sizeof(edge_sizes[0]))];
                if (len >= f->min_len && len <= f->max_len)
                        return len;
        }
        return f->min_len + (h >> 8) % span;
}

int flow_fail(struct flow *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int flow_fail(struct flow *f, const char *fmt, ...)
{
        va_list ap;

        if (!f->err[0]) {
                va_start(ap, fmt);
                vsnprintf(f->err, sizeof(f->err), fmt, ap);
                va_end(ap);
        }
        return -1;
}

const uint8_t *flow_mac(const struct flow *f, uint8_t mac[6])
{
        mac[0] = 0x02;
        mac[1] = 0x00;
        mac[2] = (uint8_t)(f->gen >> 24);
        mac[3] = (uint8_t)(f->gen >> 16);
        mac[4] = (uint8_t)(f->gen >> 8);
        mac[5] = (uint8_t)f->gen;
        return mac;
}

int flow_post_rx(struct flow *f)
{
        struct fe_post how = {.nseg = f->rx_nseg < f->rx->num ? f->rx_nseg : f->rx->num, .indirect = f->rx_indirect};
        int n = 0;

        while ((!f->rx_budget || f->rx_posted < f->rx_budget) && fe_ring_post_rx(f->rx, f->rx_size, &how) >= 0) {
                f->rx_posted++;
                n++;
        }
        return n;
}

int flow_post_one(struct flow *f, unsigned nseg, bool indirect)
{
        uint32_t len = flow_len(f, f->send_seq);
        struct fe_post how = {.nseg = nseg, .indirect = indirect};
        uint8_t mac[6];
        int r;

        if (how.nseg > len + 1)
                how.nseg = 1;
        /* An indirect table may not hold more descriptors than the ring either. */
        if (how.nseg > f->tx->num)
                how.nseg = f->tx->num;
        fe_frame_build(f->fbuf, len, f->send_seq, NULL, flow_mac(f, mac));
        r = fe_ring_post_tx(f->tx, f->fbuf, len, NULL, &how);
        if (r == -ENOSPC)
                return r;
        if (r < 0)
                return flow_fail(f, "fe_ring_post_tx(len %u, nseg %u): %s", len, how.nseg, strerror(-r));
        f->send_seq++;
        f->tx_bytes += len;
        return 0;
}

/* One round: reap tx, post up to 64 frames, take what came back. Returns progress (>= 0) or -1 (f->err). */
int flow_pump(struct flow *f)
{
        int progress = 0, r, posted = 0;
        uint8_t mac[6];

        flow_mac(f, mac);
        r = fe_ring_reap(f->tx);
        if (r < 0)
                return flow_fail(f, "tx ring %u: the device returned an id that was not in flight", f->tx->index);
        progress += r;
        while (f->send_seq < f->limit && posted < 64) {
                uint32_t h = mix32(f->send_seq * 3 + f->salt);

                r = flow_post_one(f, 1 + h % f->tx_nseg_max, f->tx_indirect && (h & 0x100));
                if (r == -ENOSPC)
                        break;
                if (r < 0)
                        return -1;
                posted++;
        }
        if (posted && fe_ring_notify(f->tx) < 0)
                return flow_fail(f, "kick failed");
        progress += posted;
        posted = 0;
        for (unsigned taken = 0; !f->rx_per_pump || taken < f->rx_per_pump; taken++) {
                struct fe_rx_info info;
                uint32_t seq;

                r = fe_ring_recv(f->rx, f->rbuf, sizeof(f->rbuf), &info);
                if (r == 0)
                        break;
                if (r < 0)
                        return flow_fail(f, "rx ring %u: malformed used entry (bad id, length or num_buffers)",
                                         f->rx->index);
                if (f->rx_custom)
                        posted += flow_post_rx(f);
                if (info.len > sizeof(f->rbuf) || fe_frame_verify(f->rbuf, info.len, &seq) < 0)
                        return flow_fail(f, "rx ring %u: corrupted frame of %zu bytes after seq %u", f->rx->index,
                                         info.len, f->recv_seq);
                if (memcmp(f->rbuf + 6, mac, 6)) {
                        if (f->rx_budget)
                                f->rx_budget++;
                        f->stale++;
                        f->stale_bytes += info.len;
                        progress++;
                        continue;
                }
                if (seq != f->recv_seq)
                        return flow_fail(f, "rx ring %u: got seq %u, expected %u (%s)", f->rx->index, seq, f->recv_seq,
                                         seq > f->recv_seq ? "frames lost" : "duplicate or reordered");
                if (info.len != flow_len(f, seq))
                        return flow_fail(f, "rx ring %u: seq %u is %zu bytes, sent %u", f->rx->index, seq, info.len,
                                         flow_len(f, seq));
                f->recv_seq++;
                f->rx_bytes += info.len;
                progress++;
        }
        if (posted && fe_ring_notify(f->rx) < 0)
                return flow_fail(f, "rx kick failed");
        return progress;
}

/*
 * Sleeps until a call eventfd of these flows fires (or timeout_ms), asking for an interrupt on any used entry.
 * Rings that asked for no interrupts at all are polled: then it sleeps 1 ms at most.
 */
void flows_wait(struct flow **fl, unsigned n, int timeout_ms)
{
        struct pollfd p[2 * FE_MAX_RINGS];
        unsigned np = 0;

        for (unsigned i = 0; i < n; i++) {
                fe_ring_arm_call(fl[i]->tx, 1);
                fe_ring_arm_call(fl[i]->rx, 1);
                if ((fl[i]->tx->no_interrupt || fl[i]->rx->no_interrupt) && timeout_ms > 1)
                        timeout_ms = 1;
        }
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        for (unsigned i = 0; i < n; i++) {
                if (fe_ring_used_pending(fl[i]->tx) || fe_ring_used_pending(fl[i]->rx))
                        return;
                p[np++] = (struct pollfd){.fd = fl[i]->tx->call_fd, .events = POLLIN};
                p[np++] = (struct pollfd){.fd = fl[i]->rx->call_fd, .events = POLLIN};
        }
        if (poll(p, np, timeout_ms) > 0) {
                for (unsigned i = 0; i < np; i++) {
                        uint64_t v;
                        if (p[i].revents & POLLIN)
                                (void)!read(p[i].fd, &v, sizeof(v));
                }
        }
}

/* Runs the flows until every frame up to each limit came back. 0, or -1 with the reason printed. */
int flows_run(struct flow **fl, unsigned n, int stall_ms)
{
        int64_t last = fe_now_ms();

        for (;;) {
                bool done = true;
                int progress = 0;

                for (unsigned i = 0; i < n; i++) {
                        int r = flow_pump(fl[i]);
                        if (r < 0) {
                                printf("  FAIL: %s\n", fl[i]->err);
                                return -1;
                        }
                        progress += r;
                        if (fl[i]->recv_seq < fl[i]->limit)
                                done = false;
                }
                if (done)
                        return 0;
                if (progress) {
                        last = fe_now_ms();
                        continue;
                }
                if (fe_now_ms() - last > stall_ms) {
                        for (unsigned i = 0; i < n; i++)
                                printf("  FAIL: stalled: rings %u/%u sent %u received %u (+%llu stale) of %u (tx "
                                       "free %u, rx free %u, tx used pending %u, rx used pending %u)\n",
                                       fl[i]->tx->index, fl[i]->rx->index, fl[i]->send_seq, fl[i]->recv_seq,
                                       (unsigned long long)fl[i]->stale, fl[i]->limit, fl[i]->tx->num_free,
                                       fl[i]->rx->num_free, fe_ring_used_pending(fl[i]->tx),
                                       fe_ring_used_pending(fl[i]->rx));
                        return -1;
                }
                flows_wait(fl, n, 100);
        }
}

/* ---- more shared helpers: background traffic, process state ------------------------------------------- */

void flow_init(struct flow *f, struct fe *fe, unsigned qp, uint32_t salt, uint32_t limit)
{
        memset(f, 0, offsetof(struct flow, fbuf));
        f->tx = fe_tx(fe, qp);
        f->rx = fe_rx(fe, qp);
        f->salt = salt;
        /* The pid too: a forked front-end's flows must not share a generation with the parent's next ones. */
        f->gen = ((uint32_t)getpid() << 12) ^ (++g_gen & 0xfff);
        f->limit = limit;
        f->min_len = 60;
        f->max_len = 1514;
        f->tx_nseg_max = 2;
        f->rx_size = 2048;
        f->rx_nseg = 1;
}

/* A flow driven by its own thread until stopped, then drained: every frame it sent must come back. */

void *bg_main(void *arg)
{
        struct bg *b = arg;
        struct flow *f = b->f;

        while (!atomic_load(&b->stop)) {
                int r = flow_pump(f);
                if (r < 0) {
                        printf("  FAIL: background traffic: %s\n", f->err);
                        b->result = -1;
                        return NULL;
                }
                atomic_store(&b->received, f->recv_seq);
                if (r == 0)
                        flows_wait(&f, 1, 20);
        }
        f->limit = f->send_seq;
        b->result = flows_run(&f, 1, 5000);
        atomic_store(&b->received, f->recv_seq);
        return NULL;
}

int bg_start(struct bg *b, struct flow *f)
{
        b->f = f;
        b->result = 0;
        atomic_store(&b->stop, false);
        atomic_store(&b->received, 0);
        f->limit = UINT32_MAX;
        return -pthread_create(&b->th, NULL, bg_main, b);
}

int bg_stop(struct bg *b)
{
        atomic_store(&b->stop, true);
        pthread_join(b->th, NULL);
        return b->result;
}

/* Waits until the background flow received at least @more frames beyond what it had. */
bool bg_flowing(struct bg *b, unsigned more, int timeout_ms)
{
        unsigned start = atomic_load(&b->received);
        int64_t end = fe_now_ms() + timeout_ms;

        while (fe_now_ms() < end) {
                if (atomic_load(&b->received) - start >= more)
                        return true;
                usleep(2000);
        }
        return false;
}

void pstate_get(pid_t pid, struct pstate *s)
{
        s->fds = fe_count_fds(pid);
        s->threads = fe_count_threads(pid);
        s->maps = fe_count_maps(pid, FE_MEM_NAME);
}

/* For a daemon that does not come back: where each of its threads sleeps. */
void dump_threads(pid_t pid)
{
        char cmd[256];

        snprintf(cmd, sizeof(cmd),
                 "for t in /proc/%d/task/*; do printf '  thread %%s: %%s in %%s, syscall %%s\\n' \"${t##*/}\" "
                 "\"$(cut -d' ' -f3 $t/stat)\" \"$(cat $t/wchan)\" \"$(cut -d' ' -f1 $t/syscall 2>/dev/null)\"; done",
                 (int)pid);
        fflush(stdout);
        (void)!system(cmd);
}

/* Waits until the daemon is back to @base (fds, threads, guest RAM mappings). */
int pstate_wait(pid_t pid, const struct pstate *base, int timeout_ms, struct pstate *now)
{
        int64_t end = fe_now_ms() + timeout_ms;

        for (;;) {
                pstate_get(pid, now);
                if (now->fds == base->fds && now->threads == base->threads && now->maps == base->maps)
                        return 0;
                if (fe_now_ms() > end) {
                        dump_threads(pid);
                        return -ETIMEDOUT;
                }
                usleep(2000);
        }
}

int harness_begin(const char *tag)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        snprintf(g_dir, sizeof(g_dir), "/tmp/vhostd-integ-%s-XXXXXX", tag);
        if (!mkdtemp(g_dir)) {
                printf("mkdtemp: %m\n0 passed, 1 failed\n");
                return -1;
        }
        return 0;
}

int harness_finish(unsigned pass, unsigned fail)
{
        if (!fail) {
                char cmd[128];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
                (void)!system(cmd);
        } else {
                printf("logs kept in %s\n", g_dir);
        }
        printf("%u passed, %u failed\n", pass, fail);
        return fail ? 1 : 0;
}
