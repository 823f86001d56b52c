/* SPDX-License-Identifier: MIT */
/* Text helpers of the configuration parser: trimming, quoting values into messages, word lists, the error return. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"

char *text_skip_space(char *s)
{
        while (text_is_space(*s))
                s++;
        return s;
}

char *text_trim(char *s)
{
        size_t n;

        s = text_skip_space(s);
        n = strlen(s);
        while (n > 0 && text_is_space(s[n - 1]))
                s[--n] = '\0';
        return s;
}

void text_sanitize(char *dst, size_t size, const char *src, size_t max)
{
        size_t i, n;

        if (size == 0)
                return;
        if (max > size - 1)
                max = size - 1;
        n = strlen(src);
        for (i = 0; i < n && i < max; i++) {
                dst[i] = src[i];
                if (text_is_ctrl((unsigned char)src[i]))
                        dst[i] = '?';
        }
        if (n > max && max >= 3)
                memcpy(dst + max - 3, "...", 3);
        dst[i] = '\0';
}

struct quoted text_quote(const char *value)
{
        struct quoted r = {.s = ""};

        text_sanitize(r.s, sizeof(r.s), value, QUOTE_MAX);
        return r;
}

int text_fail(char *msg, size_t len, const char *fmt, ...)
{
        va_list ap;

        if (msg && len > 0) {
                va_start(ap, fmt);
                (void)vsnprintf(msg, len, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

void text_list(const char *const *names, size_t n, unsigned mask, const char *last, char *buf, size_t size)
{
        size_t i, k = 0, count = 0, used = 0;

        for (i = 0; i < n; i++)
                if (mask & (1u << i))
                        count++;
        buf[0] = '\0';
        for (i = 0; i < n && used < size; i++) {
                const char *sep;
                int w;

                if (!(mask & (1u << i)))
                        continue;
                sep = k == 0 ? "" : k + 1 == count ? last : ", ";
                w = snprintf(buf + used, size - used, "%s%s", sep, names[i]);
                if (w < 0)
                        break;
                used += (size_t)w;
                k++;
        }
}
