// SPDX-License-Identifier: MIT
#include "daemon/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int log_max_level = 6;

void log_set_level(int level)
{
        log_max_level = level;
}

void log_msg(int level, int err, const char *fmt, ...)
{
        char buf[1024];
        int saved = errno;
        va_list ap;
        int n;

        if (level > log_max_level)
                return;
        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        if (err && (size_t)n < sizeof(buf))
                snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(err < 0 ? -err : err));
        fprintf(stderr, "<%d>vhostd: %s\n", level, buf);
        errno = saved;
}

bool ratelimit_ok(struct ratelimit *rl, unsigned interval_ms, unsigned burst)
{
        struct timespec ts;
        long long now;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
        if (now - rl->begin_ms >= interval_ms) {
                rl->begin_ms = now;
                rl->count = 0;
        }
        if (rl->count < burst) {
                rl->count++;
                return true;
        }
        rl->suppressed++;
        return false;
}
