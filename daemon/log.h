/* SPDX-License-Identifier: MIT */
/* Logging for daemon/ only: stderr with <N> priority prefixes, which journald understands. */
#ifndef DAEMON_LOG_H
#define DAEMON_LOG_H

#include <stdbool.h>

extern int log_max_level;

void log_set_level(int level);
void log_msg(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_err(...) log_msg(3, 0, __VA_ARGS__)
#define log_warn(...) log_msg(4, 0, __VA_ARGS__)
#define log_info(...) log_msg(6, 0, __VA_ARGS__)
#define log_debug(...)                                                                                                 \
        do {                                                                                                           \
                if (log_max_level >= 7)                                                                                \
                        log_msg(7, 0, __VA_ARGS__);                                                                    \
        } while (0)
/* These append strerror(-r) and return r, for `return log_err_errno(r, "...")`. */
#define log_err_errno(r, ...) (log_msg(3, (r), __VA_ARGS__), (r))
#define log_warn_errno(r, ...) (log_msg(4, (r), __VA_ARGS__), (r))

/* Rate limiting for repeated per-frame conditions: true at most `burst` times per interval. */
struct ratelimit {
        long long begin_ms;
        unsigned count;
        unsigned suppressed;
};
bool ratelimit_ok(struct ratelimit *rl, unsigned interval_ms, unsigned burst);

#endif
