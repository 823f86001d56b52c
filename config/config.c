/* SPDX-License-Identifier: MIT */
/*
 * vhostd.conf(5) parser.
 *
 * The format is INI-like: "[global]" and "[port NAME]" sections, "key = value" lines, comments starting with '#'
 * or ';' (at the start of a line, or after whitespace inside one). Every key is described once in a table
 * (global_keys[], port_keys[]) that gives its type, where it is stored and, for port keys, which backend kinds
 * it applies to; the file parser and the command line (config_port_set) both go through those tables.
 *
 * Non-logging: every failure comes back as -errno plus a message naming the file, line and key. The parser
 * never allocates, works on a private copy of the configuration and only writes *ret on success, so that a
 * failed reload leaves the running configuration untouched. It must survive arbitrary bytes (it is fuzzed).
 */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define LINE_LEN_MAX 4096              /* longest accepted line, without its newline */
#define FILE_LEN_MAX ((size_t)1 << 20) /* config_load() refuses larger files */
#define CPU_NUM_MAX (CPU_SETSIZE - 1)
#define PORT_NAME_MAX 31
#define QUOTE_MAX 48 /* bytes of a value repeated in an error message */

/* Backend kinds (BACKEND_KINDS), as a bit mask so that a key can name the kinds it applies to. */
enum {
#define KIND_BIT(id, name) KIND_##id = 1u << BACKEND_KIND_##id,
        BACKEND_KINDS(KIND_BIT)
#undef KIND_BIT
                KIND_ANY = (1u << BACKEND_KIND_COUNT) - 1,
        KIND_NETDEV = KIND_TAP | KIND_RAWSOCK | KIND_AFXDP, /* the kinds that need an interface (ifname) */
};

static const char *const kind_names[] = {
#define KIND_NAME(id, name) [BACKEND_KIND_##id] = #name,
        BACKEND_KINDS(KIND_NAME)
#undef KIND_NAME
};

enum val_type {
        VAL_UINT,   /* decimal unsigned, min..max */
        VAL_OCTAL,  /* octal unsigned, min..max */
        VAL_BOOL,   /* yes/no true/false on/off 1/0 */
        VAL_CHOICE, /* one of choices[], stored as an enum (int sized) */
        VAL_STRING, /* char[size], checked by check() */
        VAL_FUNC,   /* parse() does everything */
};

struct choice {
        const char *name;
        int value;
};

struct key_desc {
        const char *name;
        enum val_type type;
        unsigned kinds; /* port keys: backend kinds the key applies to */
        size_t off;     /* where the value lives in struct config or struct port_cfg */
        size_t size;
        unsigned min, max;
        const struct choice *choices; /* NULL-terminated */
        int (*check)(const char *value, size_t size, char *msg, size_t len);
        int (*parse)(struct port_cfg *port, const char *value, char *msg, size_t len);
};

/* Field locations, type-checked: a table entry cannot point a bool parser at an unsigned field. */
#define FIELD(s, f) .off = offsetof(s, f), .size = sizeof(((s *)0)->f)
#define BOOL_FIELD(s, f) .off = _Generic(((s *)0)->f, bool : offsetof(s, f)), .size = sizeof(bool)
#define UINT_FIELD(s, f) .off = _Generic(((s *)0)->f, unsigned : offsetof(s, f)), .size = sizeof(unsigned)
#define STR_FIELD(s, f) .off = _Generic(&((s *)0)->f[0], char * : offsetof(s, f)), .size = sizeof(((s *)0)->f)

_Static_assert(sizeof(enum log_level) == sizeof(int), "choices are stored as int");
_Static_assert(sizeof(enum port_mode) == sizeof(int), "choices are stored as int");
_Static_assert(sizeof(enum backend_xdp_mode) == sizeof(int), "choices are stored as int");

/* --- small helpers ------------------------------------------------------------------------------------------ */

static bool is_space(char c)
{
        return c == ' ' || c == '\t';
}

static bool is_ctrl(unsigned char c)
{
        return c < 0x20 || c == 0x7f;
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '.' || c == '-';
}

static char *skip_space(char *s)
{
        while (is_space(*s))
                s++;
        return s;
}

static char *trim(char *s)
{
        size_t n;

        s = skip_space(s);
        n = strlen(s);
        while (n > 0 && is_space(s[n - 1]))
                s[--n] = '\0';
        return s;
}

/* Copies src for an error message: control bytes become '?', long strings end in "...". */
static void sanitize(char *dst, size_t size, const char *src, size_t max)
{
        size_t i, n;

        if (size == 0)
                return;
        if (max > size - 1)
                max = size - 1;
        n = strlen(src);
        for (i = 0; i < n && i < max; i++) {
                dst[i] = src[i];
                if (is_ctrl((unsigned char)src[i]))
                        dst[i] = '?';
        }
        if (n > max && max >= 3)
                memcpy(dst + max - 3, "...", 3);
        dst[i] = '\0';
}

struct quoted {
        char s[QUOTE_MAX + 1];
};

/* q(value).s: a value made safe to repeat in a message (valid until the end of the full expression). */
static struct quoted q(const char *value)
{
        struct quoted r = {.s = ""};

        sanitize(r.s, sizeof(r.s), value, QUOTE_MAX);
        return r;
}

static __attribute__((format(printf, 3, 4))) int fail(char *msg, size_t len, const char *fmt, ...)
{
        va_list ap;

        if (msg && len > 0) {
                va_start(ap, fmt);
                (void)vsnprintf(msg, len, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* Parses a whole string of digits in base 8 or 10: -EINVAL for anything else (sign, space, junk), -ERANGE on
 * overflow. */
static int parse_digits(const char *s, unsigned base, uint64_t *ret)
{
        uint64_t v = 0;
        const char *p;

        if (*s == '\0')
                return -EINVAL;
        for (p = s; *p; p++)
                if (*p < '0' || *p >= (char)('0' + base))
                        return -EINVAL;
        for (p = s; *p; p++) {
                unsigned d = (unsigned)(*p - '0');

                if (v > (UINT64_MAX - d) / base)
                        return -ERANGE;
                v = v * base + d;
        }
        *ret = v;
        return 0;
}

static int parse_uint(const char *value, unsigned min, unsigned max, unsigned *ret, char *msg, size_t len)
{
        uint64_t v;
        int r;

        r = parse_digits(value, 10, &v);
        if (r == -EINVAL)
                return fail(msg, len, "'%s' is not a number (expected %u..%u)", q(value).s, min, max);
        if (r < 0 || v < min || v > max)
                return fail(msg, len, "'%s' is out of range (%u..%u)", q(value).s, min, max);
        *ret = (unsigned)v;
        return 0;
}

static int parse_bool(const char *value, bool *ret)
{
        static const char *const yes[] = {"yes", "true", "on", "1"};
        static const char *const no[] = {"no", "false", "off", "0"};
        size_t i;

        for (i = 0; i < ARRAY_SIZE(yes); i++) {
                if (strcasecmp(value, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(value, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

/* "a, b or c" (last = " or ") or "a, b and c": the names whose bit is set in mask. */
static void name_list(const char *const *names, size_t n, unsigned mask, const char *last, char *buf, size_t size)
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

#define CHOICES_MAX 8

/* "a, b or c" from a NULL-terminated choice list. */
static void choice_list(const struct choice *c, char *buf, size_t size)
{
        const char *names[CHOICES_MAX];
        size_t n;

        for (n = 0; n < CHOICES_MAX && c[n].name; n++)
                names[n] = c[n].name;
        name_list(names, n, (1u << n) - 1, " or ", buf, size);
}

/* The kind bit for a backend kind name, 0 when unknown. Tolerates an unterminated char[16]. */
static unsigned kind_bit(const char *kind, size_t size)
{
        size_t i;

        if (!memchr(kind, '\0', size))
                return 0;
        for (i = 0; i < ARRAY_SIZE(kind_names); i++)
                if (strcmp(kind, kind_names[i]) == 0)
                        return 1u << i;
        return 0;
}

/* "tap, rawsock and afxdp" */
static void kinds_text(unsigned kinds, char *buf, size_t size)
{
        name_list(kind_names, ARRAY_SIZE(kind_names), kinds, " and ", buf, size);
}

/* name is not a kind: "unknown backend 'NAME' (expected loopback, tap, rawsock or afxdp)". */
static int unknown_backend(const char *name, char *msg, size_t len)
{
        char kinds[64];

        name_list(kind_names, ARRAY_SIZE(kind_names), KIND_ANY, " or ", kinds, sizeof(kinds));
        return fail(msg, len, "unknown backend '%s' (expected %s)", q(name).s, kinds);
}

/* --- value checkers and parsers ----------------------------------------------------------------------------- */

static int check_path(const char *value, size_t size, char *msg, size_t len)
{
        size_t n = strlen(value);

        if (n >= size)
                return fail(msg, len, "path is %zu bytes long (at most %zu)", n, size - 1);
        return 0;
}

/* User and group names: what useradd accepts, portable subset. All digits is a numeric id. */
static bool valid_user_name(const char *s, size_t n)
{
        size_t i;

        if (n == 0 || s[0] == '-')
                return false;
        for (i = 0; i < n; i++)
                if (!is_name_char(s[i]))
                        return false;
        return true;
}

static int check_user(const char *value, size_t size, char *msg, size_t len)
{
        size_t n = strlen(value);

        if (n >= size)
                return fail(msg, len, "name is %zu bytes long (at most %zu)", n, size - 1);
        if (!valid_user_name(value, n))
                return fail(msg, len,
                            "'%s' is not a valid name (letters, digits, '_', '.', '-'; not starting with '-')",
                            q(value).s);
        return 0;
}

static int check_owner(const char *value, size_t size, char *msg, size_t len)
{
        const char *colon = strchr(value, ':');
        size_t n = strlen(value);

        if (n >= size)
                return fail(msg, len, "'%s' is %zu bytes long (at most %zu)", q(value).s, n, size - 1);
        if (colon ? !valid_user_name(value, (size_t)(colon - value)) || !valid_user_name(colon + 1, strlen(colon + 1))
                  : !valid_user_name(value, n))
                return fail(msg, len, "'%s' is not valid (expected USER or USER:GROUP)", q(value).s);
        return 0;
}

/* systemd's FileDescriptorName=: printable ASCII except ':'. */
static int check_fd_name(const char *value, size_t size, char *msg, size_t len)
{
        size_t i, n = strlen(value);

        if (n >= size)
                return fail(msg, len, "'%s' is %zu bytes long (at most %zu)", q(value).s, n, size - 1);
        for (i = 0; i < n; i++)
                if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e || value[i] == ':')
                        return fail(msg, len, "'%s' is not a valid FileDescriptorName= (printable ASCII except ':')",
                                    q(value).s);
        return 0;
}

/* The kernel's dev_valid_name(). */
static int check_ifname(const char *value, size_t size, char *msg, size_t len)
{
        size_t i, n = strlen(value);

        if (n >= size)
                return fail(msg, len, "'%s' is %zu bytes long (at most %zu)", q(value).s, n, size - 1);
        if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
                return fail(msg, len, "'%s' is not a valid interface name", value);
        for (i = 0; i < n; i++)
                if (value[i] == '/' || value[i] == ':' || is_space(value[i]) || (unsigned char)value[i] > 0x7e)
                        return fail(msg, len, "'%s' is not a valid interface name (no '/', ':' or spaces)", q(value).s);
        return 0;
}

static int parse_backend(struct port_cfg *port, const char *value, char *msg, size_t len)
{
        size_t i;

        for (i = 0; i < ARRAY_SIZE(kind_names); i++) {
                if (strcasecmp(value, kind_names[i]) == 0) {
                        _Static_assert(sizeof(port->backend.kind) > 8, "kind names fit");
                        snprintf(port->backend.kind, sizeof(port->backend.kind), "%s", kind_names[i]);
                        return 0;
                }
        }
        return unknown_backend(value, msg, len);
}

static int parse_mtu(struct port_cfg *port, const char *value, char *msg, size_t len)
{
        unsigned v = 0;
        int r;

        r = parse_uint(value, 0, 65535, &v, NULL, 0);
        if (r < 0 || (v != 0 && v < 68))
                return fail(msg, len, "'%s' is out of range (68..65535, or 0 to leave the MTU alone)", q(value).s);
        port->backend.mtu = v;
        return 0;
}

static int parse_frame_size(struct port_cfg *port, const char *value, char *msg, size_t len)
{
        if (strcmp(value, "auto") == 0)
                port->backend.frame_size = 0;
        else if (strcmp(value, "2048") == 0)
                port->backend.frame_size = 2048;
        else if (strcmp(value, "4096") == 0)
                port->backend.frame_size = 4096;
        else
                return fail(msg, len, "'%s' is not a valid frame size (expected auto, 2048 or 4096)", q(value).s);
        return 0;
}

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int parse_mac(struct port_cfg *port, const char *value, char *msg, size_t len)
{
        uint8_t mac[6];
        size_t i;

        if (strlen(value) != 17)
                goto bad;
        for (i = 0; i < 6; i++) {
                int hi = hex_digit(value[3 * i]), lo = hex_digit(value[3 * i + 1]);

                if (hi < 0 || lo < 0 || (i < 5 && value[3 * i + 2] != ':'))
                        goto bad;
                mac[i] = (uint8_t)(hi << 4 | lo);
        }
        if (mac[0] & 1)
                return fail(msg, len, "'%s' is a multicast address (the guest needs a unicast MAC)", q(value).s);
        if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
                return fail(msg, len, "'%s' is all zeros (expected a unicast MAC like 52:54:00:12:34:56)", value);
        memcpy(port->mac, mac, sizeof(mac));
        port->has_mac = true;
        return 0;
bad:
        return fail(msg, len, "'%s' is not a MAC address (expected six hex bytes like 52:54:00:12:34:56)", q(value).s);
}

static int parse_cpu_num(const char *s, unsigned *ret)
{
        uint64_t v;
        int r;

        r = parse_digits(s, 10, &v);
        if (r < 0)
                return r;
        if (v > CPU_NUM_MAX)
                return -ERANGE;
        *ret = (unsigned)v;
        return 0;
}

/* "0,1,4-7": comma-separated cpu numbers and inclusive ranges, each cpu at most once. */
static int parse_cpus(struct port_cfg *port, const char *value, char *msg, size_t len)
{
        uint64_t seen[(CPU_NUM_MAX + 64) / 64] = {0};
        int cpus[CONFIG_MAX_CPUS];
        unsigned ncpus = 0;
        const char *p = value;

        for (;;) {
                char item[32], split[32], *dash, *lo_s, *hi_s;
                const char *end = strchr(p, ',');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                unsigned lo = 0, hi = 0, c;
                int r;

                if (n >= sizeof(item))
                        return fail(msg, len, "'%s' is not a cpu number or range", q(p).s);
                memcpy(split, p, n);
                split[n] = '\0';
                /* item: the whole entry, for messages; split: cut at the dash. */
                snprintf(item, sizeof(item), "%s", trim(split));
                if (item[0] == '\0')
                        return fail(msg, len, "'%s' has an empty item (expected a list like 0,1,4-7)", q(value).s);
                lo_s = hi_s = trim(split);
                dash = strchr(lo_s, '-');
                if (dash) {
                        *dash = '\0';
                        lo_s = trim(lo_s);
                        hi_s = trim(dash + 1);
                }
                r = parse_cpu_num(lo_s, &lo);
                if (r == 0)
                        r = parse_cpu_num(hi_s, &hi);
                if (r == -ERANGE)
                        return fail(msg, len, "'%s' is out of range (cpus 0..%d)", q(item).s, CPU_NUM_MAX);
                if (r < 0)
                        return fail(msg, len, "'%s' is not a cpu number or range (expected a list like 0,1,4-7)",
                                    q(item).s);
                if (lo > hi)
                        return fail(msg, len, "range %u-%u is backwards", lo, hi);
                for (c = lo; c <= hi; c++) {
                        if (seen[c / 64] & (UINT64_C(1) << (c % 64)))
                                return fail(msg, len, "cpu %u is listed twice", c);
                        if (ncpus == CONFIG_MAX_CPUS)
                                return fail(msg, len, "more than %d cpus listed", CONFIG_MAX_CPUS);
                        seen[c / 64] |= UINT64_C(1) << (c % 64);
                        cpus[ncpus++] = (int)c;
                }
                if (!end)
                        break;
                p = end + 1;
        }
        memcpy(port->cpus, cpus, ncpus * sizeof(cpus[0]));
        port->ncpus = ncpus;
        return 0;
}

/* --- key tables --------------------------------------------------------------------------------------------- */

static const struct choice log_level_choices[] = {
        {"err", LOG_LEVEL_ERR},
        {"warn", LOG_LEVEL_WARN},
        {"info", LOG_LEVEL_INFO},
        {"debug", LOG_LEVEL_DEBUG},
        {NULL, 0},
};

static const struct choice mode_choices[] = {
        {"server", PORT_MODE_SERVER},
        {"client", PORT_MODE_CLIENT},
        {NULL, 0},
};

static const struct choice xdp_mode_choices[] = {
        {"auto", BACKEND_XDP_AUTO},
        {"native", BACKEND_XDP_NATIVE},
        {"skb", BACKEND_XDP_SKB},
        {NULL, 0},
};

#define G struct config
static const struct key_desc global_keys[] = {
        {.name = "log_level", .type = VAL_CHOICE, FIELD(G, log_level), .choices = log_level_choices},
        {.name = "user", .type = VAL_STRING, STR_FIELD(G, user), .check = check_user},
        {.name = "group", .type = VAL_STRING, STR_FIELD(G, group), .check = check_user},
        {.name = "control_socket", .type = VAL_STRING, STR_FIELD(G, control_socket), .check = check_path},
        {.name = "seccomp", .type = VAL_BOOL, BOOL_FIELD(G, seccomp)},
};
#undef G

#define P struct port_cfg
static const struct key_desc port_keys[] = {
        {.name = "socket", .type = VAL_STRING, .kinds = KIND_ANY, STR_FIELD(P, socket), .check = check_path},
        {.name = "mode", .type = VAL_CHOICE, .kinds = KIND_ANY, FIELD(P, mode), .choices = mode_choices},
        {.name = "fd_name", .type = VAL_STRING, .kinds = KIND_ANY, STR_FIELD(P, fd_name), .check = check_fd_name},
        {.name = "socket_mode", .type = VAL_OCTAL, .kinds = KIND_ANY, UINT_FIELD(P, socket_mode), .max = 0777},
        {.name = "socket_owner",
         .type = VAL_STRING,
         .kinds = KIND_ANY,
         STR_FIELD(P, socket_owner),
         .check = check_owner},
        {.name = "queues",
         .type = VAL_UINT,
         .kinds = KIND_ANY,
         UINT_FIELD(P, queues),
         .min = 1,
         .max = CONFIG_MAX_QUEUES},
        {.name = "burst", .type = VAL_UINT, .kinds = KIND_ANY, UINT_FIELD(P, burst), .min = 1, .max = 256},
        {.name = "busy_poll_us", .type = VAL_UINT, .kinds = KIND_ANY, UINT_FIELD(P, busy_poll_us), .max = 1000000},
        {.name = "cpus", .type = VAL_FUNC, .kinds = KIND_ANY, FIELD(P, cpus), .parse = parse_cpus},
        {.name = "mac", .type = VAL_FUNC, .kinds = KIND_ANY, FIELD(P, mac), .parse = parse_mac},
        {.name = "backend", .type = VAL_FUNC, .kinds = KIND_ANY, STR_FIELD(P, backend.kind), .parse = parse_backend},
        {.name = "ifname",
         .type = VAL_STRING,
         .kinds = KIND_NETDEV,
         STR_FIELD(P, backend.ifname),
         .check = check_ifname},
        {.name = "mtu", .type = VAL_FUNC, .kinds = KIND_NETDEV, UINT_FIELD(P, backend.mtu), .parse = parse_mtu},
        {.name = "link_up", .type = VAL_BOOL, .kinds = KIND_TAP, BOOL_FIELD(P, backend.set_up)},
        {.name = "offloads", .type = VAL_BOOL, .kinds = KIND_TAP | KIND_RAWSOCK, BOOL_FIELD(P, backend.offloads)},
        {.name = "promisc", .type = VAL_BOOL, .kinds = KIND_RAWSOCK, BOOL_FIELD(P, backend.promisc)},
        {.name = "qdisc_bypass", .type = VAL_BOOL, .kinds = KIND_RAWSOCK, BOOL_FIELD(P, backend.qdisc_bypass)},
        {.name = "xdp_mode",
         .type = VAL_CHOICE,
         .kinds = KIND_AFXDP,
         FIELD(P, backend.xdp_mode),
         .choices = xdp_mode_choices},
        {.name = "start_queue",
         .type = VAL_UINT,
         .kinds = KIND_AFXDP,
         UINT_FIELD(P, backend.start_queue),
         .max = 65535},
        {.name = "force_copy", .type = VAL_BOOL, .kinds = KIND_AFXDP, BOOL_FIELD(P, backend.force_copy)},
        {.name = "zero_copy", .type = VAL_BOOL, .kinds = KIND_AFXDP, BOOL_FIELD(P, backend.zero_copy)},
        {.name = "busy_poll", .type = VAL_BOOL, .kinds = KIND_AFXDP, BOOL_FIELD(P, backend.busy_poll)},
        {.name = "frame_size",
         .type = VAL_FUNC,
         .kinds = KIND_AFXDP,
         UINT_FIELD(P, backend.frame_size),
         .parse = parse_frame_size},
        {.name = "xsks_map",
         .type = VAL_STRING,
         .kinds = KIND_AFXDP,
         STR_FIELD(P, backend.xsks_map),
         .check = check_path},
};
#undef P

#define KEYS_MAX 32
_Static_assert(ARRAY_SIZE(global_keys) <= KEYS_MAX && ARRAY_SIZE(port_keys) <= KEYS_MAX, "seen[] is big enough");

static const struct key_desc *key_find(const struct key_desc *keys, size_t n, const char *name)
{
        size_t i;

        for (i = 0; i < n; i++)
                if (strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

/* Levenshtein distance, capped: only used to suggest a key for a typo. */
static unsigned edit_distance(const char *a, const char *b)
{
        unsigned row[KEYS_MAX + 1], i, j, la = (unsigned)strlen(a), lb = (unsigned)strlen(b);

        if (la > KEYS_MAX || lb > KEYS_MAX)
                return ~0u;
        for (j = 0; j <= lb; j++)
                row[j] = j;
        for (i = 1; i <= la; i++) {
                unsigned diag = row[0];

                row[0] = i;
                for (j = 1; j <= lb; j++) {
                        unsigned up = row[j], best = diag + (a[i - 1] != b[j - 1]);

                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        diag = up;
                        row[j] = best;
                }
        }
        return row[lb];
}

static int unknown_key(const struct key_desc *keys, size_t n, const struct key_desc *other, size_t nother,
                       const char *section, const char *other_section, const char *key, char *msg, size_t len)
{
        const struct key_desc *best = NULL;
        unsigned best_d = 3;
        size_t i, used;

        if (key_find(other, nother, key))
                return fail(msg, len, "belongs in %s, not in %s", other_section, section);
        for (i = 0; i < n; i++) {
                unsigned d = edit_distance(key, keys[i].name);

                /* Only near misses: one edit per three letters of the key it resembles. */
                if (d < best_d && d * 3 <= strlen(keys[i].name)) {
                        best_d = d;
                        best = &keys[i];
                }
        }
        if (best)
                return fail(msg, len, "unknown key in %s (did you mean '%s'?)", section, best->name);

        fail(msg, len, "unknown key in %s (expected:", section);
        used = msg ? strnlen(msg, len) : 0;
        for (i = 0; i < n && msg && used + 1 < len; i++) {
                int w = snprintf(msg + used, len - used, " %s%s", keys[i].name, i + 1 == n ? ")" : "");

                if (w < 0)
                        break;
                used += (size_t)w;
        }
        return -EINVAL;
}

/* Parses value into obj (a struct config or struct port_cfg) as d says; obj is unchanged on failure. */
static int key_set(const struct key_desc *d, void *obj, const char *value, char *msg, size_t len)
{
        char *field = (char *)obj + d->off;
        size_t i;
        int r;

        if (*value == '\0')
                return fail(msg, len, "empty value");
        for (i = 0; value[i]; i++)
                if (is_ctrl((unsigned char)value[i]) && value[i] != '\t')
                        return fail(msg, len, "value contains a control character (byte 0x%02x)",
                                    (unsigned char)value[i]);

        switch (d->type) {
        case VAL_UINT: {
                unsigned v;

                r = parse_uint(value, d->min, d->max, &v, msg, len);
                if (r < 0)
                        return r;
                memcpy(field, &v, sizeof(v));
                return 0;
        }
        case VAL_OCTAL: {
                uint64_t v;
                unsigned u;

                r = parse_digits(value, 8, &v);
                if (r == -EINVAL)
                        return fail(msg, len, "'%s' is not an octal number (expected e.g. 0660, %04o..%04o)",
                                    q(value).s, d->min, d->max);
                if (r < 0 || v < d->min || v > d->max)
                        return fail(msg, len, "'%s' is out of range (%04o..%04o)", q(value).s, d->min, d->max);
                u = (unsigned)v;
                memcpy(field, &u, sizeof(u));
                return 0;
        }
        case VAL_BOOL: {
                bool v;

                if (parse_bool(value, &v) < 0)
                        return fail(msg, len, "'%s' is not a boolean (expected yes/no, true/false, on/off or 1/0)",
                                    q(value).s);
                memcpy(field, &v, sizeof(v));
                return 0;
        }
        case VAL_CHOICE: {
                char list[128];

                for (i = 0; d->choices[i].name; i++) {
                        if (strcasecmp(value, d->choices[i].name) == 0) {
                                memcpy(field, &d->choices[i].value, sizeof(int));
                                return 0;
                        }
                }
                choice_list(d->choices, list, sizeof(list));
                return fail(msg, len, "'%s' is not valid (expected %s)", q(value).s, list);
        }
        case VAL_STRING:
                r = d->check ? d->check(value, d->size, msg, len) : 0;
                if (r < 0)
                        return r;
                if (strlen(value) >= d->size)
                        return fail(msg, len, "'%s' is too long (at most %zu bytes)", q(value).s, d->size - 1);
                memcpy(field, value, strlen(value) + 1);
                return 0;
        case VAL_FUNC:
                return d->parse((struct port_cfg *)obj, value, msg, len);
        }
        return fail(msg, len, "internal error: bad key type");
}

/* --- cross-key checks --------------------------------------------------------------------------------------- */

static bool field_is_default(const struct key_desc *d, const void *obj, const void *def)
{
        const char *a = (const char *)obj + d->off, *b = (const char *)def + d->off;

        if (d->type == VAL_STRING)
                return strncmp(a, b, d->size) == 0;
        return memcmp(a, b, d->size) == 0;
}

static int port_check(const struct port_cfg *port, const char **ret_key, char *msg, size_t len)
{
        struct port_cfg def;
        char kinds[64];
        unsigned kind;
        size_t i;

        kind = kind_bit(port->backend.kind, sizeof(port->backend.kind));
        if (!kind) {
                char name[sizeof(port->backend.kind) + 1];

                memcpy(name, port->backend.kind, sizeof(port->backend.kind));
                name[sizeof(port->backend.kind)] = '\0';
                *ret_key = "backend";
                return unknown_backend(name, msg, len);
        }
        /* The ranges again, for a port_cfg that was not filled through config_port_set(). */
        if (port->queues < 1 || port->queues > CONFIG_MAX_QUEUES) {
                *ret_key = "queues";
                return fail(msg, len, "%u is out of range (1..%d)", port->queues, CONFIG_MAX_QUEUES);
        }
        if (port->burst < 1 || port->burst > 256) {
                *ret_key = "burst";
                return fail(msg, len, "%u is out of range (1..256)", port->burst);
        }
        if (port->busy_poll_us > 1000000) {
                *ret_key = "busy_poll_us";
                return fail(msg, len, "%u is out of range (0..1000000)", port->busy_poll_us);
        }
        if (port->ncpus > CONFIG_MAX_CPUS) {
                *ret_key = "cpus";
                return fail(msg, len, "more than %d cpus listed", CONFIG_MAX_CPUS);
        }
        if (port->socket_mode > 0777) {
                *ret_key = "socket_mode";
                return fail(msg, len, "%04o is out of range (0000..0777)", port->socket_mode);
        }
        if (port->backend.mtu != 0 && (port->backend.mtu < 68 || port->backend.mtu > 65535)) {
                *ret_key = "mtu";
                return fail(msg, len, "%u is out of range (68..65535, or 0 to leave the MTU alone)", port->backend.mtu);
        }

        if (!port->socket[0] && !port->fd_name[0]) {
                *ret_key = "socket";
                return fail(msg, len, "required unless fd_name is given (socket activation)");
        }
        if (port->mode == PORT_MODE_CLIENT) {
                if (port->fd_name[0]) {
                        *ret_key = "fd_name";
                        return fail(msg, len,
                                    "not valid with mode = client (socket activation needs a listening socket)");
                }
                if (port->socket_mode) {
                        *ret_key = "socket_mode";
                        return fail(msg, len, "not valid with mode = client (the front-end creates the socket)");
                }
                if (port->socket_owner[0]) {
                        *ret_key = "socket_owner";
                        return fail(msg, len, "not valid with mode = client (the front-end creates the socket)");
                }
        } else if (port->mode != PORT_MODE_SERVER) {
                *ret_key = "mode";
                return fail(msg, len, "not valid (expected server or client)");
        }

        if ((kind & KIND_NETDEV) && !port->backend.ifname[0]) {
                *ret_key = "ifname";
                return fail(msg, len, "required with backend = %s (%s)", port->backend.kind,
                            kind == KIND_TAP ? "the tap device to create or attach to" : "the interface to bind to");
        }

        /* A setting that only another kind of backend reads is a mistake, not something to ignore. */
        config_port_defaults(&def);
        for (i = 0; i < ARRAY_SIZE(port_keys); i++) {
                const struct key_desc *d = &port_keys[i];

                if ((d->kinds & kind) || field_is_default(d, port, &def))
                        continue;
                kinds_text(d->kinds, kinds, sizeof(kinds));
                *ret_key = d->name;
                return fail(msg, len, "not valid with backend = %s (only for %s)", port->backend.kind, kinds);
        }

        if (kind == KIND_AFXDP) {
                if (port->backend.frame_size && port->backend.frame_size != 2048 && port->backend.frame_size != 4096) {
                        *ret_key = "frame_size";
                        return fail(msg, len, "%u is not valid (expected auto, 2048 or 4096)",
                                    port->backend.frame_size);
                }
                if (port->backend.xdp_mode != BACKEND_XDP_AUTO && port->backend.xdp_mode != BACKEND_XDP_NATIVE &&
                    port->backend.xdp_mode != BACKEND_XDP_SKB) {
                        *ret_key = "xdp_mode";
                        return fail(msg, len, "not valid (expected auto, native or skb)");
                }
                if (port->backend.force_copy && port->backend.zero_copy) {
                        *ret_key = "zero_copy";
                        return fail(msg, len, "contradicts force_copy = yes (choose one)");
                }
        }
        return 0;
}

/* --- the file parser ---------------------------------------------------------------------------------------- */

enum section { SECTION_NONE, SECTION_GLOBAL, SECTION_PORT };

struct parser {
        struct config *cfg;
        struct config_error *err;
        unsigned line;
        enum section section;
        unsigned section_line; /* line of the current section's header */
        unsigned global_line;  /* line of [global], 0 before it */
        unsigned port_line[CONFIG_MAX_PORTS];
        unsigned seen[KEYS_MAX]; /* line each key of the current section was set on, 0 if not */
};

static __attribute__((format(printf, 4, 5))) int perr(struct parser *p, unsigned line, const char *key, const char *fmt,
                                                      ...)
{
        va_list ap;

        p->err->line = line;
        sanitize(p->err->key, sizeof(p->err->key), key, sizeof(p->err->key) - 1);
        va_start(ap, fmt);
        (void)vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int finish_section(struct parser *p)
{
        struct port_cfg *port;
        const char *key = "";
        char kinds[64];
        unsigned kind;
        size_t i;
        int r;

        if (p->section != SECTION_PORT)
                return 0;
        port = &p->cfg->ports[p->cfg->nports - 1];
        kind = kind_bit(port->backend.kind, sizeof(port->backend.kind));
        for (i = 0; i < ARRAY_SIZE(port_keys); i++) {
                if (!p->seen[i] || (port_keys[i].kinds & kind))
                        continue;
                kinds_text(port_keys[i].kinds, kinds, sizeof(kinds));
                return perr(p, p->seen[i], port_keys[i].name, "not valid with backend = %s (only for %s)",
                            port->backend.kind, kinds);
        }
        r = port_check(port, &key, p->err->msg, sizeof(p->err->msg));
        if (r < 0) {
                const struct key_desc *d = key_find(port_keys, ARRAY_SIZE(port_keys), key);
                unsigned line = d && p->seen[d - port_keys] ? p->seen[d - port_keys] : p->section_line;

                p->err->line = line;
                sanitize(p->err->key, sizeof(p->err->key), key, sizeof(p->err->key) - 1);
                return r;
        }
        return 0;
}

static int parse_section(struct parser *p, char *s)
{
        char *close = strchr(s, ']'), *rest, *inner, *name;
        size_t i, n;
        int r;

        r = finish_section(p);
        if (r < 0)
                return r;
        memset(p->seen, 0, sizeof(p->seen));
        p->section = SECTION_NONE;
        p->section_line = p->line;

        if (!close)
                return perr(p, p->line, "", "section header without ']'");
        rest = skip_space(close + 1);
        if (*rest && *rest != '#' && *rest != ';')
                return perr(p, p->line, "", "unexpected '%s' after the section header", q(rest).s);
        *close = '\0';
        inner = trim(s + 1);

        if (strcmp(inner, "global") == 0) {
                if (p->global_line)
                        return perr(p, p->line, "", "[global] given twice (first on line %u)", p->global_line);
                p->global_line = p->line;
                p->section = SECTION_GLOBAL;
                return 0;
        }
        if (strncmp(inner, "port", 4) != 0 || (inner[4] && !is_space(inner[4])))
                return perr(p, p->line, "", "unknown section '[%s]' (expected [global] or [port NAME])", q(inner).s);

        name = trim(inner + 4);
        n = strlen(name);
        if (n == 0)
                return perr(p, p->line, "", "port section without a name (expected [port NAME])");
        for (i = 0; i < n; i++)
                if (!is_name_char(name[i]))
                        break;
        if (n > PORT_NAME_MAX || i < n)
                return perr(p, p->line, "", "port name '%s' is not valid (1..%d characters from A-Z a-z 0-9 _ . -)",
                            q(name).s, PORT_NAME_MAX);
        for (i = 0; i < p->cfg->nports; i++)
                if (strcmp(p->cfg->ports[i].name, name) == 0)
                        return perr(p, p->line, "", "port '%s' is defined twice (first on line %u)", name,
                                    p->port_line[i]);
        if (p->cfg->nports == CONFIG_MAX_PORTS)
                return perr(p, p->line, "", "too many ports (at most %d)", CONFIG_MAX_PORTS);

        p->port_line[p->cfg->nports] = p->line;
        config_port_defaults(&p->cfg->ports[p->cfg->nports]);
        memcpy(p->cfg->ports[p->cfg->nports].name, name, n + 1);
        p->cfg->nports++;
        p->section = SECTION_PORT;
        return 0;
}

static int parse_key(struct parser *p, char *s)
{
        const struct key_desc *keys, *other, *d;
        size_t n, nother, i;
        char *eq = strchr(s, '='), *key, *value;
        void *obj;
        int r;

        if (!eq)
                return perr(p, p->line, "", "expected 'key = value', a [section] header or a comment");
        *eq = '\0';
        key = trim(s);
        value = eq + 1;
        for (i = 0; value[i]; i++) {
                if ((value[i] == '#' || value[i] == ';') && (i == 0 || is_space(value[i - 1]))) {
                        value[i] = '\0';
                        break;
                }
        }
        value = trim(value);

        if (*key == '\0')
                return perr(p, p->line, "", "'=' without a key before it");
        if (p->section == SECTION_NONE)
                return perr(p, p->line, key, "not inside a section (put it under [global] or [port NAME])");

        if (p->section == SECTION_GLOBAL) {
                keys = global_keys;
                n = ARRAY_SIZE(global_keys);
                other = port_keys;
                nother = ARRAY_SIZE(port_keys);
                obj = p->cfg;
        } else {
                keys = port_keys;
                n = ARRAY_SIZE(port_keys);
                other = global_keys;
                nother = ARRAY_SIZE(global_keys);
                obj = &p->cfg->ports[p->cfg->nports - 1];
        }
        d = key_find(keys, n, key);
        if (!d) {
                r = p->section == SECTION_GLOBAL
                            ? unknown_key(keys, n, other, nother, "[global]", "a [port NAME] section", key, p->err->msg,
                                          sizeof(p->err->msg))
                            : unknown_key(keys, n, other, nother, "a [port] section", "[global]", key, p->err->msg,
                                          sizeof(p->err->msg));
                p->err->line = p->line;
                sanitize(p->err->key, sizeof(p->err->key), key, sizeof(p->err->key) - 1);
                return r;
        }
        if (p->seen[d - keys])
                return perr(p, p->line, key, "given twice in this section (first on line %u)", p->seen[d - keys]);
        p->seen[d - keys] = p->line;

        r = key_set(d, obj, value, p->err->msg, sizeof(p->err->msg));
        if (r < 0) {
                p->err->line = p->line;
                sanitize(p->err->key, sizeof(p->err->key), key, sizeof(p->err->key) - 1);
        }
        return r;
}

static int parse_line(struct parser *p, char *s)
{
        s = skip_space(s);
        if (*s == '\0' || *s == '#' || *s == ';')
                return 0;
        if (*s == '[')
                return parse_section(p, s);
        return parse_key(p, s);
}

static void error_init(struct config_error *err, const char *name)
{
        memset(err, 0, sizeof(*err));
        sanitize(err->file, sizeof(err->file), name ? name : "(config)", sizeof(err->file) - 1);
}

void config_port_defaults(struct port_cfg *port)
{
        memset(port, 0, sizeof(*port));
        port->mode = PORT_MODE_SERVER;
        port->queues = 1;
        port->burst = 32;
        port->busy_poll_us = 0;
        snprintf(port->backend.kind, sizeof(port->backend.kind), "%s", kind_names[BACKEND_KIND_LOOPBACK]);
        port->backend.set_up = true;
        port->backend.offloads = true;
        port->backend.xdp_mode = BACKEND_XDP_AUTO;
        port->backend.frame_size = 0; /* auto */
}

void config_defaults(struct config *cfg)
{
        unsigned i;

        memset(cfg, 0, sizeof(*cfg));
        cfg->log_level = LOG_LEVEL_INFO;
        cfg->seccomp = false;
        cfg->nports = 0;
        for (i = 0; i < CONFIG_MAX_PORTS; i++)
                config_port_defaults(&cfg->ports[i]);
}

int config_parse(const char *text, size_t len, const char *name, struct config *ret, struct config_error *reterr)
{
        struct config_error dummy = {.line = 0};
        struct config cfg;
        struct parser p = {.cfg = &cfg};
        char line[LINE_LEN_MAX + 1];
        size_t pos = 0;
        int r;

        p.err = reterr ? reterr : &dummy;
        error_init(p.err, name);
        if (!ret || (!text && len > 0))
                return perr(&p, 0, "", "internal error: no text or no result");
        config_defaults(&cfg);

        /* A UTF-8 byte order mark is tolerated at the start of the file. */
        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
                pos = 3;

        while (pos < len) {
                const char *start = text + pos, *nl = memchr(start, '\n', len - pos);
                size_t n = nl ? (size_t)(nl - start) : len - pos, i;

                p.line++;
                pos += n + (nl ? 1 : 0);
                if (n > 0 && start[n - 1] == '\r')
                        n--;
                if (n > LINE_LEN_MAX)
                        return perr(&p, p.line, "", "line is longer than %d bytes", LINE_LEN_MAX);
                for (i = 0; i < n; i++)
                        if (is_ctrl((unsigned char)start[i]) && start[i] != '\t')
                                return perr(&p, p.line, "", "line contains a control character (byte 0x%02x)",
                                            (unsigned char)start[i]);
                memcpy(line, start, n);
                line[n] = '\0';
                r = parse_line(&p, line);
                if (r < 0)
                        return r;
        }
        r = finish_section(&p);
        if (r < 0)
                return r;
        if (cfg.nports == 0)
                return perr(&p, 0, "", "no [port NAME] section (at least one port is required)");

        memcpy(ret, &cfg, sizeof(cfg));
        return 0;
}

int config_load(const char *path, struct config *ret, struct config_error *reterr)
{
        struct config_error dummy = {.line = 0};
        size_t len = 0;
        char *buf;
        int fd, r;

        if (!reterr)
                reterr = &dummy;
        error_init(reterr, path);
        if (!path || !ret) {
                snprintf(reterr->msg, sizeof(reterr->msg), "internal error: no path or no result");
                return -EINVAL;
        }

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                snprintf(reterr->msg, sizeof(reterr->msg), "cannot open: %s", strerror(-r));
                return r;
        }
        buf = malloc(FILE_LEN_MAX + 1);
        if (!buf) {
                (void)close(fd);
                snprintf(reterr->msg, sizeof(reterr->msg), "cannot read: %s", strerror(ENOMEM));
                return -ENOMEM;
        }
        /* Read one byte more than allowed, to tell "exactly 1 MiB" from "larger". */
        while (len <= FILE_LEN_MAX) {
                ssize_t n = read(fd, buf + len, FILE_LEN_MAX + 1 - len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        snprintf(reterr->msg, sizeof(reterr->msg), "cannot read: %s", strerror(-r));
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (len > FILE_LEN_MAX) {
                snprintf(reterr->msg, sizeof(reterr->msg), "file is larger than %zu bytes (1 MiB)", FILE_LEN_MAX);
                r = -EFBIG;
                goto out;
        }
        r = config_parse(buf, len, path, ret, reterr);
out:
        free(buf);
        (void)close(fd);
        return r;
}

int config_port_set(struct port_cfg *port, const char *key, const char *value, char *errbuf, size_t errlen)
{
        const struct key_desc *d;
        char k[64], msg[sizeof(((struct config_error *)0)->msg)];
        char buf[LINE_LEN_MAX + 1], *v;
        size_t n;
        int r;

        if (errbuf && errlen > 0)
                errbuf[0] = '\0';
        if (!port || !key || !value)
                return fail(errbuf, errlen, "internal error: missing port, key or value");
        sanitize(k, sizeof(k), key, sizeof(k) - 1);

        d = key_find(port_keys, ARRAY_SIZE(port_keys), key);
        if (!d) {
                (void)unknown_key(port_keys, ARRAY_SIZE(port_keys), global_keys, ARRAY_SIZE(global_keys), "a port",
                                  "the configuration file's [global] section", key, msg, sizeof(msg));
                return fail(errbuf, errlen, "key '%s': %s", k, msg);
        }
        n = strlen(value);
        if (n > LINE_LEN_MAX)
                return fail(errbuf, errlen, "key '%s': value is longer than %d bytes", k, LINE_LEN_MAX);
        memcpy(buf, value, n + 1);
        v = trim(buf);
        r = key_set(d, port, v, msg, sizeof(msg));
        if (r < 0)
                return fail(errbuf, errlen, "key '%s': %s", k, msg);
        return 0;
}

int config_port_check(const struct port_cfg *port, char *errbuf, size_t errlen)
{
        char msg[sizeof(((struct config_error *)0)->msg)];
        const char *key = "";
        int r;

        if (errbuf && errlen > 0)
                errbuf[0] = '\0';
        if (!port)
                return fail(errbuf, errlen, "internal error: no port");
        r = port_check(port, &key, msg, sizeof(msg));
        if (r < 0)
                return fail(errbuf, errlen, "key '%s': %s", key, msg);
        return 0;
}

void config_error_format(const struct config_error *err, char *buf, size_t size)
{
        char file[sizeof(err->file)], key[sizeof(err->key)], msg[sizeof(err->msg)];

        if (!buf || size == 0)
                return;
        /* Local terminated copies, so that a hand-filled struct without NULs cannot overrun. */
        memcpy(file, err->file, sizeof(file));
        file[sizeof(file) - 1] = '\0';
        memcpy(key, err->key, sizeof(key));
        key[sizeof(key) - 1] = '\0';
        memcpy(msg, err->msg, sizeof(msg));
        msg[sizeof(msg) - 1] = '\0';

        if (err->line && key[0])
                snprintf(buf, size, "%s:%u: key '%s': %s", file, err->line, key, msg);
        else if (err->line)
                snprintf(buf, size, "%s:%u: %s", file, err->line, msg);
        else if (key[0])
                snprintf(buf, size, "%s: key '%s': %s", file, key, msg);
        else
                snprintf(buf, size, "%s: %s", file, msg);
}
