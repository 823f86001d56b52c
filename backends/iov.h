/* SPDX-License-Identifier: MIT */
/* Small iovec helpers shared by the backends. */
#ifndef BACKENDS_IOV_H
#define BACKENDS_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>

/* Copies up to len bytes between buf and iov from byte off of iov on (into iov when to_iov); returns the count. */
static inline size_t iov_copy(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len, bool to_iov)
{
        size_t done = 0;

        for (unsigned i = 0; i < n && done < len; i++) {
                if (off >= iov[i].iov_len) {
                        off -= iov[i].iov_len;
                        continue;
                }
                size_t chunk = iov[i].iov_len - off;
                char *at = (char *)iov[i].iov_base + off;

                if (chunk > len - done)
                        chunk = len - done;
                if (to_iov)
                        memcpy(at, (const char *)buf + done, chunk);
                else
                        memcpy((char *)buf + done, at, chunk);
                done += chunk;
                off = 0;
        }
        return done;
}

/* Copies up to len bytes starting at byte off of iov into dst; returns the bytes copied. */
static inline size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len)
{
        return iov_copy(iov, n, off, dst, len, false);
}

/* Copies len bytes of src into iov starting at byte off; returns the bytes copied. */
static inline size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len)
{
        return iov_copy(iov, n, off, (void *)src, len, true);
}

static inline size_t iov_size(const struct iovec *iov, unsigned n)
{
        size_t s = 0;
        for (unsigned i = 0; i < n; i++)
                s += iov[i].iov_len;
        return s;
}

/*
 * Writes into out[] the segments of iov after skipping off bytes; returns the count (at most max),
 * or -1 when max is too small.
 */
static inline int iov_skip(const struct iovec *iov, unsigned n, size_t off, struct iovec *out, unsigned max)
{
        unsigned k = 0;

        for (unsigned i = 0; i < n; i++) {
                if (off >= iov[i].iov_len) {
                        off -= iov[i].iov_len;
                        continue;
                }
                if (k == max)
                        return -1;
                out[k].iov_base = (char *)iov[i].iov_base + off;
                out[k].iov_len = iov[i].iov_len - off;
                off = 0;
                k++;
        }
        return (int)k;
}

#endif
