// SPDX-License-Identifier: MIT
/* systemd's fd store kept current (fdstore.h). Control thread only. */
#include "daemon/fdstore.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kcmp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/sd.h"
#include "daemon/state_wire.h"

#define FD_PREFIX "vhostd-fd-"
#define STATE_PREFIX "vhostd-state-"
#define BUSY_NAME "vhostd-busy"
#define OUR_PREFIX "vhostd-"

struct store_hdr {
        char magic[8]; /* "VHSTORE1" */
        uint32_t flags, nfds;
        uint64_t gen;
        /* then u64 serial per fd index, then the state */
};

static const char store_magic[8] = "VHSTORE1";

struct entry {
        uint64_t serial;
        int fd;  /* our own copy: compared with kcmp to find an fd that is stored already */
        int src; /* the fd number it was stored from: the same number usually holds the same file next time */
        bool named;
};

static struct {
        bool enabled;
        struct entry *entries;
        unsigned n, cap;
        uint64_t next_serial;
        uint64_t gen;       /* of the stored state; 0: none */
        int busy_fd;        /* the busy bytes' memfd, in the store once; -1: not yet */
        uint8_t *busy;      /* mapped */
        bool busy_in_store; /* sent to the store */
} st = {.busy_fd = -1, .next_serial = 1};

static bool same_file(int a, int b);

void fdstore_enable(bool on)
{
        int probe = on ? eventfd(0, EFD_CLOEXEC) : -1;
        int copy = probe >= 0 ? fcntl(probe, F_DUPFD_CLOEXEC, 3) : -1;

        st.enabled = on && getenv("NOTIFY_SOCKET");
        /* Without kcmp an fd stored already cannot be recognised, and storing it again would lose its name. */
        if (st.enabled && (copy < 0 || syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, probe, copy) != 0)) {
                log_err("--fd-store: cannot compare open files (kcmp: %s); connections are not kept across a "
                        "restart or a crash",
                        strerror(errno));
                st.enabled = false;
        }
        if (copy >= 0)
                close(copy);
        if (probe >= 0)
                close(probe);
}

bool fdstore_enabled(void)
{
        return st.enabled;
}

static int notify_remove_name(const char *name)
{
        char msg[128];

        snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
        return sd_notify_str(msg);
}

static int notify_remove(const char *prefix, uint64_t n)
{
        char name[64];

        snprintf(name, sizeof(name), "%s%" PRIu64, prefix, n);
        return notify_remove_name(name);
}

static int notify_store_name(const char *name, int fd)
{
        char msg[128];

        /* FDPOLL=0: systemd would drop an fd that polls as hung up or in error (an AF_XDP socket may); we remove
         * what ends ourselves. */
        snprintf(msg, sizeof(msg), "FDSTORE=1\nFDPOLL=0\nFDNAME=%s", name);
        return sd_notify_fds(msg, &fd, 1);
}

static int notify_store(const char *prefix, uint64_t n, int fd)
{
        char name[64];

        snprintf(name, sizeof(name), "%s%" PRIu64, prefix, n);
        return notify_store_name(name, fd);
}

static bool same_file(int a, int b)
{
        return a == b || syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0;
}

/* One kcmp per fd in the usual case (an fd kept under its number), every entry only for the others. */
static struct entry *entry_for(int fd)
{
        for (unsigned i = 0; i < st.n; i++)
                if (st.entries[i].src == fd && same_file(st.entries[i].fd, fd))
                        return &st.entries[i];
        for (unsigned i = 0; i < st.n; i++)
                if (st.entries[i].src != fd && same_file(st.entries[i].fd, fd)) {
                        st.entries[i].src = fd; /* found under this number from now on */
                        return &st.entries[i];
                }
        return NULL;
}

static int entry_add(uint64_t serial, int fd, int src)
{
        if (st.n == st.cap) {
                unsigned cap = st.cap ? 2 * st.cap : 64;
                struct entry *e = realloc(st.entries, cap * sizeof(*e));

                if (!e)
                        return -ENOMEM;
                st.entries = e;
                st.cap = cap;
        }
        st.entries[st.n++] = (struct entry){.serial = serial, .fd = fd, .src = src};
        if (serial >= st.next_serial)
                st.next_serial = serial + 1;
        return 0;
}

static void entry_drop(unsigned i, bool from_store)
{
        if (from_store)
                (void)notify_remove(FD_PREFIX, st.entries[i].serial);
        close(st.entries[i].fd);
        st.entries[i] = st.entries[--st.n];
}

static int busy_map(int fd)
{
        void *p = mmap(NULL, FDSTORE_PORTS_MAX, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        if (p == MAP_FAILED)
                return -errno;
        st.busy_fd = fd;
        st.busy = p;
        return 0;
}

/* The busy bytes live in a memfd of their own, stored once: a crash leaves them as they were. */
static int busy_setup(void)
{
        int fd, r;

        if (st.busy_fd >= 0)
                return 0;
        fd = memfd_create("vhostd-busy", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, FDSTORE_PORTS_MAX) < 0 || (r = busy_map(fd)) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        return 0;
}

void fdstore_busy(unsigned port, bool busy)
{
        if (st.busy && port < FDSTORE_PORTS_MAX)
                st.busy[port] = busy;
}

static int errf(char *err, size_t errlen, int r, const char *what)
{
        snprintf(err, errlen, "%s: %s", what, strerror(-r));
        return r;
}

int fdstore_put(const int *fds, unsigned nfds, const void *blob, size_t len, uint32_t flags, char *err, size_t errlen)
{
        struct store_hdr hdr = {.flags = htole32(flags), .nfds = htole32(nfds), .gen = htole64(st.gen + 1)};
        uint64_t *serials = calloc(nfds ? nfds : 1, sizeof(*serials));
        int memfd = -1, r = 0;

        if (!serials)
                return errf(err, errlen, -ENOMEM, "fd store");
        if (!st.busy_in_store) {
                if ((r = busy_setup()) < 0 || (r = notify_store_name(BUSY_NAME, st.busy_fd)) < 0)
                        goto fail_busy;
                st.busy_in_store = true;
        }
        for (unsigned i = 0; i < st.n; i++)
                st.entries[i].named = false;
        for (unsigned i = 0; i < nfds; i++) {
                struct entry *e = entry_for(fds[i]);

                if (!e) {
                        int copy = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

                        if (copy < 0 || (r = entry_add(st.next_serial, copy, fds[i])) < 0) {
                                r = copy < 0 ? -errno : r;
                                if (copy >= 0)
                                        close(copy);
                                snprintf(err, errlen, "cannot keep fd %u for the store: %s", i, strerror(-r));
                                goto out;
                        }
                        e = &st.entries[st.n - 1];
                        if ((r = notify_store(FD_PREFIX, e->serial, e->fd)) < 0) {
                                snprintf(err, errlen, "cannot put fd %u into systemd's fd store: %s", i, strerror(-r));
                                entry_drop(st.n - 1, false);
                                goto out;
                        }
                }
                e->named = true;
                serials[i] = htole64(e->serial);
        }
        memcpy(hdr.magic, store_magic, sizeof(hdr.magic));
        memfd = memfd_create("vhostd-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (memfd < 0 || write(memfd, &hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
            write(memfd, serials, nfds * sizeof(*serials)) != (ssize_t)(nfds * sizeof(*serials)) ||
            write(memfd, blob, len) != (ssize_t)len ||
            fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
                r = errno ? -errno : -EIO;
                snprintf(err, errlen, "cannot write the state to a memfd: %s", strerror(-r));
                goto out;
        }
        if ((r = notify_store(STATE_PREFIX, st.gen + 1, memfd)) < 0) {
                snprintf(err, errlen, "cannot put the state into systemd's fd store: %s", strerror(-r));
                goto out;
        }
        /* The new state is in: the old one and whatever only it named may go. */
        if (st.gen)
                (void)notify_remove(STATE_PREFIX, st.gen);
        st.gen++;
        for (unsigned i = st.n; i-- > 0;)
                if (!st.entries[i].named)
                        entry_drop(i, true);
        if (st.busy)
                memset(st.busy, 0, FDSTORE_PORTS_MAX);
out:
        if (memfd >= 0)
                close(memfd);
        free(serials);
        return r;
fail_busy:
        free(serials);
        return errf(err, errlen, r, "cannot put the busy marks into systemd's fd store");
}

void fdstore_forget(void)
{
        while (st.n)
                entry_drop(st.n - 1, true);
        if (st.gen)
                (void)notify_remove(STATE_PREFIX, st.gen);
        st.gen = 0;
        if (st.busy_in_store)
                (void)notify_remove_name(BUSY_NAME);
        st.busy_in_store = false;
}

void fdstore_state_free(struct fdstore_state *s)
{
        for (unsigned i = 0; s->fds && i < s->nfds; i++)
                if (s->fds[i] >= 0)
                        close(s->fds[i]);
        free(s->fds);
        free(s->blob);
        s->fds = NULL;
        s->blob = NULL;
}

/* The number after prefix in name; false when name is not prefix followed by a decimal number. */
static bool name_number(const char *name, const char *prefix, uint64_t *n)
{
        size_t k = strlen(prefix);
        char *end;

        if (strncmp(name, prefix, k) || name[k] < '0' || name[k] > '9')
                return false;
        *n = strtoull(name + k, &end, 10);
        return *end == 0;
}

/* Reads the state memfd fd into s (blob, flags, nfds) and its serials; 0 or -EBADMSG. */
static int read_state(int fd, struct fdstore_state *s, uint64_t **serials, uint64_t *gen)
{
        struct store_hdr hdr;
        struct stat sb;
        size_t nser;

        if (fstat(fd, &sb) < 0 || sb.st_size < (off_t)sizeof(hdr) || sb.st_size > STATE_BLOB_MAX ||
            pread(fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || memcmp(hdr.magic, store_magic, 8))
                return -EBADMSG;
        s->flags = le32toh(hdr.flags);
        s->nfds = le32toh(hdr.nfds);
        *gen = le64toh(hdr.gen);
        nser = (size_t)s->nfds * sizeof(uint64_t);
        if (s->nfds > STATE_FDS_MAX || (size_t)sb.st_size < sizeof(hdr) + nser)
                return -EBADMSG;
        s->len = (size_t)sb.st_size - sizeof(hdr) - nser;
        *serials = malloc(nser ? nser : 1);
        s->blob = malloc(s->len ? s->len : 1);
        if (!*serials || !s->blob || pread(fd, *serials, nser, sizeof(hdr)) != (ssize_t)nser ||
            pread(fd, s->blob, s->len, (off_t)(sizeof(hdr) + nser)) != (ssize_t)s->len)
                return -EBADMSG;
        for (unsigned i = 0; i < s->nfds; i++)
                (*serials)[i] = le64toh((*serials)[i]);
        return 0;
}

/* Index in fds/names of the fd stored as serial, or -1. */
static int find_serial(char names[][64], int nfds, const int *fds, uint64_t serial)
{
        uint64_t n;

        for (int i = 0; i < nfds; i++)
                if (fds[i] >= 0 && name_number(names[i], FD_PREFIX, &n) && n == serial)
                        return i;
        return -1;
}

int fdstore_take(int *fds, char names[][64], int nfds, struct fdstore_state *s, char *err, size_t errlen)
{
        uint64_t best_gen = 0, *serials = NULL, n;
        int best = -1, r = 0;

        memset(s, 0, sizeof(*s));
        /* The newest state whose every fd is there (an older one may be left if a process died storing). */
        for (int i = 0; i < nfds; i++) {
                struct fdstore_state cand = {0};
                uint64_t *ser = NULL, gen;
                bool whole = true;

                if (!name_number(names[i], STATE_PREFIX, &n))
                        continue;
                if (read_state(fds[i], &cand, &ser, &gen) < 0 || gen != n) {
                        log_warn("fd store: %s is not a state this vhostd can read; ignored", names[i]);
                        whole = false;
                }
                for (unsigned k = 0; whole && k < cand.nfds; k++)
                        if (!(whole = find_serial(names, nfds, fds, ser[k]) >= 0))
                                log_warn("fd store: %s names fd %u as %s%" PRIu64 ", which is not in the store; "
                                         "not taken",
                                         names[i], k, FD_PREFIX, ser[k]);
                if (whole && (best < 0 || gen > best_gen)) {
                        fdstore_state_free(s);
                        free(serials);
                        *s = cand;
                        serials = ser;
                        best = i;
                        best_gen = gen;
                } else {
                        fdstore_state_free(&cand);
                        free(ser);
                }
        }
        for (int i = 0; i < nfds; i++) {
                if (!strcmp(names[i], BUSY_NAME) && st.busy_fd < 0) {
                        if (best >= 0 && busy_map(fds[i]) == 0) {
                                memcpy(s->busy, st.busy, sizeof(s->busy));
                                st.busy_in_store = true;
                                fds[i] = -1; /* ours: the busy marks go on in the same memfd */
                        }
                }
        }
        if (best >= 0) {
                s->fds = malloc((s->nfds ? s->nfds : 1) * sizeof(int));
                if (!s->fds) {
                        r = errf(err, errlen, -ENOMEM, "fd store");
                        goto out;
                }
                for (unsigned k = 0; k < s->nfds; k++)
                        s->fds[k] = -1;
                for (unsigned k = 0; k < s->nfds; k++) {
                        int i = find_serial(names, nfds, fds, serials[k]);

                        if (!entry_for(fds[i]) && (r = entry_add(serials[k], fds[i], -1)) < 0) {
                                r = errf(err, errlen, r, "fd store");
                                goto out;
                        }
                        s->fds[k] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                        if (s->fds[k] < 0) {
                                r = errf(err, errlen, -errno, "fd store: cannot copy a stored fd");
                                goto out;
                        }
                }
                st.gen = best_gen;
        }
out:
        /* The entries own the fds they took; everything else of ours goes, but the state taken. */
        for (int i = 0; i < nfds; i++) {
                bool kept = i == best && r == 0;

                if (fds[i] < 0 || strncmp(names[i], OUR_PREFIX, strlen(OUR_PREFIX)))
                        continue;
                for (unsigned k = 0; k < st.n && !kept; k++)
                        kept = st.entries[k].fd == fds[i];
                if (!kept) {
                        (void)notify_remove_name(names[i]);
                        close(fds[i]);
                } else if (i == best) {
                        close(fds[i]); /* read already; it stays in the store until the next state replaces it */
                }
                fds[i] = -1;
        }
        free(serials);
        if (r < 0) {
                fdstore_state_free(s);
                fdstore_forget();
                return r;
        }
        if (best < 0)
                fdstore_forget(); /* busy marks without a state */
        return best >= 0;
}
