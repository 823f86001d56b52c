// SPDX-License-Identifier: MIT
#include "daemon/state_wire.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HDR_LEN 24
#define REC_HDR_LEN 8
static const char magic[8] = {'V', 'H', 'S', 'T', 'A', 'T', 'E', '1'};

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        if (!err || !errlen)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

static uint32_t fnv1a(const uint8_t *p, size_t len)
{
        uint32_t h = 2166136261u;

        for (size_t i = 0; i < len; i++)
                h = (h ^ p[i]) * 16777619u;
        return h;
}

static void put_le16(uint8_t *p, uint16_t v)
{
        v = htole16(v);
        memcpy(p, &v, 2);
}

static void put_le32(uint8_t *p, uint32_t v)
{
        v = htole32(v);
        memcpy(p, &v, 4);
}

static uint16_t get_le16(const uint8_t *p)
{
        uint16_t v;
        memcpy(&v, p, 2);
        return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p)
{
        uint32_t v;
        memcpy(&v, p, 4);
        return le32toh(v);
}

/* ---- writing ---- */

void state_writer_init(struct state_writer *w)
{
        memset(w, 0, sizeof(*w));
        w->len = HDR_LEN; /* the header is written last, when the sizes are known */
}

static int reserve(struct state_writer *w, size_t more)
{
        if (w->err)
                return w->err;
        if (more > STATE_BLOB_MAX || w->len + more > STATE_BLOB_MAX)
                return w->err = -E2BIG;
        if (w->len + more <= w->cap)
                return 0;
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + more)
                cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b)
                return w->err = -ENOMEM;
        memset(b + w->cap, 0, cap - w->cap);
        w->buf = b;
        w->cap = cap;
        return 0;
}

int state_put(struct state_writer *w, uint16_t type, uint16_t flags, const void *value, uint32_t len)
{
        size_t padded = ((size_t)len + 7) & ~(size_t)7;
        int r = reserve(w, REC_HDR_LEN + padded);

        if (r < 0)
                return r;
        put_le16(w->buf + w->len, type);
        put_le16(w->buf + w->len + 2, flags);
        put_le32(w->buf + w->len + 4, len);
        if (len)
                memcpy(w->buf + w->len + REC_HDR_LEN, value, len);
        memset(w->buf + w->len + REC_HDR_LEN + len, 0, padded - len);
        w->len += REC_HDR_LEN + padded;
        return 0;
}

int state_put_u64(struct state_writer *w, uint16_t type, uint64_t v)
{
        v = htole64(v);
        return state_put(w, type, 0, &v, sizeof(v));
}

int state_put_fd(struct state_writer *w, uint16_t type, int fd)
{
        if (w->err)
                return w->err;
        if (fd < 0 || w->nfds >= STATE_FDS_MAX)
                return w->err = fd < 0 ? -EBADF : -E2BIG;
        if (w->nfds == w->fds_cap) {
                unsigned cap = w->fds_cap ? 2 * w->fds_cap : 16;
                int *f = realloc(w->fds, cap * sizeof(*f));
                if (!f)
                        return w->err = -ENOMEM;
                w->fds = f;
                w->fds_cap = cap;
        }
        uint32_t index = htole32(w->nfds);
        int r = state_put(w, type, STATE_REC_REQUIRED, &index, sizeof(index));
        if (r == 0)
                w->fds[w->nfds++] = fd;
        return r;
}

int state_finish(struct state_writer *w)
{
        int r = reserve(w, 0);

        if (r < 0) /* (it also makes room for the header when nothing was put) */
                return r;
        memcpy(w->buf, magic, sizeof(magic));
        put_le16(w->buf + 8, STATE_MAJOR);
        put_le16(w->buf + 10, STATE_MINOR);
        put_le32(w->buf + 12, (uint32_t)(w->len - HDR_LEN));
        put_le32(w->buf + 16, w->nfds);
        put_le32(w->buf + 20, fnv1a(w->buf + HDR_LEN, w->len - HDR_LEN));
        return 0;
}

void state_writer_free(struct state_writer *w)
{
        free(w->buf);
        free(w->fds);
        memset(w, 0, sizeof(*w));
}

/* ---- reading ---- */

int state_reader_init(struct state_reader *r, const void *buf, size_t len, unsigned nfds, char *err, size_t errlen)
{
        const uint8_t *b = buf;

        memset(r, 0, sizeof(*r));
        if (len < HDR_LEN || memcmp(b, magic, sizeof(magic))) {
                say(err, errlen, "not a vhostd state (no header)");
                return -EBADMSG;
        }
        if (get_le16(b + 8) != STATE_MAJOR) {
                say(err, errlen, "state version %u.%u, this vhostd reads %u.x", get_le16(b + 8), get_le16(b + 10),
                    STATE_MAJOR);
                return -EPROTO;
        }
        if (get_le32(b + 12) != len - HDR_LEN) {
                say(err, errlen, "state of %zu bytes says it has %u after its header", len, get_le32(b + 12));
                return -EBADMSG;
        }
        if (get_le32(b + 16) != nfds) {
                say(err, errlen, "state refers to %u fds, %u came with it", get_le32(b + 16), nfds);
                return -EBADMSG;
        }
        if (get_le32(b + 20) != fnv1a(b + HDR_LEN, len - HDR_LEN)) {
                say(err, errlen, "state checksum mismatch");
                return -EBADMSG;
        }
        r->buf = b;
        r->len = len;
        r->off = HDR_LEN;
        r->nfds = nfds;
        r->minor = get_le16(b + 10);
        return 0;
}

int state_next(struct state_reader *r, struct state_rec *rec, char *err, size_t errlen)
{
        if (r->off == r->len)
                return 0;
        if (r->len - r->off < REC_HDR_LEN) {
                say(err, errlen, "state record header at byte %zu is cut off", r->off);
                return -EBADMSG;
        }
        rec->type = get_le16(r->buf + r->off);
        rec->flags = get_le16(r->buf + r->off + 2);
        rec->len = get_le32(r->buf + r->off + 4);
        size_t padded = ((size_t)rec->len + 7) & ~(size_t)7;
        if (padded > r->len - r->off - REC_HDR_LEN) {
                say(err, errlen, "state record type %u at byte %zu: %u bytes, past the end", rec->type, r->off,
                    rec->len);
                return -EBADMSG;
        }
        rec->value = r->buf + r->off + REC_HDR_LEN;
        r->off += REC_HDR_LEN + padded;
        return 1;
}

int state_get_u64(const struct state_rec *rec, uint64_t *v)
{
        if (rec->len != sizeof(*v))
                return -EBADMSG;
        memcpy(v, rec->value, sizeof(*v));
        *v = le64toh(*v);
        return 0;
}

int state_get_fd_index(const struct state_reader *r, const struct state_rec *rec, unsigned *index)
{
        if (rec->len != 4)
                return -EBADMSG;
        uint32_t i = get_le32(rec->value);
        if (i >= r->nfds)
                return -EBADMSG;
        *index = i;
        return 0;
}

/* ---- passing ---- */

static int send_all(int sock, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        while (len) {
                ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int state_send(int sock, const void *blob, size_t len, const int *fds, unsigned nfds)
{
        uint8_t pre[8];
        int r;

        if (len > STATE_BLOB_MAX || nfds > STATE_FDS_MAX)
                return -E2BIG;
        put_le32(pre, (uint32_t)len);
        put_le32(pre + 4, nfds);
        if ((r = send_all(sock, pre, sizeof(pre))) < 0 || (r = send_all(sock, blob, len)) < 0)
                return r;
        for (unsigned done = 0; done < nfds;) {
                unsigned n = nfds - done < STATE_FDS_PER_MSG ? nfds - done : STATE_FDS_PER_MSG;
                union {
                        char buf[CMSG_SPACE(STATE_FDS_PER_MSG * sizeof(int))];
                        struct cmsghdr align;
                } u;
                char byte = 'F';
                struct iovec iov = {.iov_base = &byte, .iov_len = 1};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = u.buf,
                                    .msg_controllen = CMSG_SPACE(n * sizeof(int))};
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(n * sizeof(int));
                memcpy(CMSG_DATA(c), fds + done, n * sizeof(int));
                ssize_t s = sendmsg(sock, &mh, MSG_NOSIGNAL);
                if (s < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += n;
        }
        return 0;
}

/* Closes fds that arrived in mh's control data; returns how many there were. */
static unsigned take_fds(struct msghdr *mh, int *out, unsigned room)
{
        unsigned got = 0;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                unsigned n = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (unsigned i = 0; i < n; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
                        if (got < room)
                                out[got] = fd;
                        else
                                close(fd);
                        got++;
                }
        }
        return got;
}

/* Reads exactly len bytes (fds that come with them go to fds[*nfds..room), the rest are closed). */
static int recv_bytes(int sock, void *buf, size_t len, int *fds, unsigned *nfds, unsigned room, unsigned *extra)
{
        uint8_t *p = buf;

        while (len) {
                union {
                        char buf[CMSG_SPACE(STATE_FDS_PER_MSG * sizeof(int))];
                        struct cmsghdr align;
                } u;
                struct iovec iov = {.iov_base = p, .iov_len = len};
                struct msghdr mh = {
                        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
                ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                unsigned got = take_fds(&mh, fds ? fds + *nfds : NULL, fds ? room - *nfds : 0);
                unsigned kept = fds ? (got < room - *nfds ? got : room - *nfds) : 0;
                if (fds)
                        *nfds += kept;
                *extra += got - kept;
                if (mh.msg_flags & MSG_CTRUNC)
                        return -EMSGSIZE;
                if (n == 0)
                        return -ECONNRESET;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int state_recv(int sock, uint8_t **blob, size_t *len, int **fds, unsigned *nfds, char *err, size_t errlen)
{
        uint8_t pre[8], *b = NULL;
        int *f = NULL;
        unsigned want, have = 0, extra = 0;
        size_t blen;
        int r;

        *blob = NULL;
        *fds = NULL;
        *len = 0;
        *nfds = 0;
        if ((r = recv_bytes(sock, pre, sizeof(pre), NULL, NULL, 0, &extra)) < 0) {
                say(err, errlen, "reading the state's size: %s", strerror(-r));
                return r;
        }
        blen = get_le32(pre);
        want = get_le32(pre + 4);
        if (blen > STATE_BLOB_MAX || want > STATE_FDS_MAX) {
                say(err, errlen, "state of %zu bytes with %u fds: larger than allowed", blen, want);
                return -E2BIG;
        }
        b = malloc(blen ? blen : 1);
        f = malloc((want ? want : 1) * sizeof(*f));
        if (!b || !f) {
                r = -ENOMEM;
                say(err, errlen, "no memory for the state");
                goto fail;
        }
        if ((r = recv_bytes(sock, b, blen, NULL, NULL, 0, &extra)) < 0) {
                say(err, errlen, "reading the state: %s", strerror(-r));
                goto fail;
        }
        while (have < want) {
                char byte;
                if ((r = recv_bytes(sock, &byte, 1, f, &have, want, &extra)) < 0) {
                        say(err, errlen, "receiving fds (%u of %u): %s", have, want, strerror(-r));
                        goto fail;
                }
                if (byte != 'F') {
                        r = -EBADMSG;
                        say(err, errlen, "receiving fds (%u of %u): not an fd batch", have, want);
                        goto fail;
                }
        }
        if (extra) {
                r = -EBADMSG;
                say(err, errlen, "%u fds came where none were expected (closed)", extra);
                goto fail;
        }
        *blob = b;
        *len = blen;
        *fds = f;
        *nfds = want;
        return 0;
fail:
        for (unsigned i = 0; i < have; i++)
                close(f[i]);
        free(b);
        free(f);
        return r;
}
