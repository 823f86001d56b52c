/* SPDX-License-Identifier: MIT */
/*
 * One value's text into one field, as its key's description (struct key_desc) says: numbers with their range,
 * booleans, choices, strings with their checks, and the few values with a syntax of their own (MAC address, cpu
 * list, AF_XDP frame size). Every failure is -EINVAL with a message that repeats the value, made safe to print.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

#define CPU_NUM_MAX (CPU_SETSIZE - 1)

_Static_assert(sizeof(enum log_level) == sizeof(int), "choices are stored as int");
_Static_assert(sizeof(enum port_mode) == sizeof(int), "choices are stored as int");
_Static_assert(sizeof(enum backend_xdp_mode) == sizeof(int), "choices are stored as int");
_Static_assert(sizeof(unsigned) == sizeof(int), "a VAL_FUNC with choices stores an unsigned");

/* --- numbers, booleans, choices ----------------------------------------------------------------------------- */

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

bool value_in_range(const struct key_desc *d, uint64_t v)
{
        return (d->zero && v == 0) || (v >= d->min && v <= d->max);
}

void value_range_text(const struct key_desc *d, char *buf, size_t size)
{
        if (d->type == VAL_OCTAL)
                snprintf(buf, size, "%04o..%04o", d->min, d->max);
        else if (d->zero)
                snprintf(buf, size, "%u..%u, or 0 %s", d->min, d->max, d->zero);
        else
                snprintf(buf, size, "%u..%u", d->min, d->max);
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

#define CHOICES_MAX 8 /* longest choice list (value_choice_list) */

/* The choice of d named name: ignoring case, or exactly. */
static const struct choice *choice_named(const struct key_desc *d, const char *name, bool exact)
{
        for (const struct choice *c = d->choices; c->name; c++)
                if (exact ? strcmp(name, c->name) == 0 : strcasecmp(name, c->name) == 0)
                        return c;
        return NULL;
}

const struct choice *value_choice(const struct key_desc *d, int value)
{
        for (const struct choice *c = d->choices; c->name; c++)
                if (c->value == value)
                        return c;
        return NULL;
}

void value_choice_list(const struct key_desc *d, char *buf, size_t size)
{
        const char *names[CHOICES_MAX];
        size_t n;

        for (n = 0; n < CHOICES_MAX && d->choices[n].name; n++)
                names[n] = d->choices[n].name;
        text_list(names, n, (1u << n) - 1, " or ", buf, size);
}

int value_set(const struct key_desc *d, void *obj, const char *value, char *msg, size_t len)
{
        char *field = (char *)obj + d->off;
        size_t i;
        int r;

        if (*value == '\0')
                return text_fail(msg, len, "empty value");
        for (i = 0; value[i]; i++)
                if (text_is_ctrl((unsigned char)value[i]) && value[i] != '\t')
                        return text_fail(msg, len, "value contains a control character (byte 0x%02x)",
                                         (unsigned char)value[i]);

        switch (d->type) {
        case VAL_UINT:
        case VAL_OCTAL: {
                bool octal = d->type == VAL_OCTAL;
                char range[96];
                uint64_t v;
                unsigned u;

                r = parse_digits(value, octal ? 8 : 10, &v);
                value_range_text(d, range, sizeof(range));
                if (r == -EINVAL && octal)
                        return text_fail(msg, len, "'%s' is not an octal number (expected e.g. 0660, %s)",
                                         text_quote(value).s, range);
                /* A key with a meaning for 0 (mtu) says "out of range" for anything not in it. */
                if (r == -EINVAL && !d->zero)
                        return text_fail(msg, len, "'%s' is not a number (expected %s)", text_quote(value).s, range);
                if (r < 0 || !value_in_range(d, v))
                        return text_fail(msg, len, "'%s' is out of range (%s)", text_quote(value).s, range);
                u = (unsigned)v;
                memcpy(field, &u, sizeof(u));
                return 0;
        }
        case VAL_BOOL: {
                bool v;

                if (parse_bool(value, &v) < 0)
                        return text_fail(msg, len, "'%s' is not a boolean (expected yes/no, true/false, on/off or 1/0)",
                                         text_quote(value).s);
                memcpy(field, &v, sizeof(v));
                return 0;
        }
        case VAL_CHOICE: {
                const struct choice *c = choice_named(d, value, false);
                char list[128];

                if (c) {
                        memcpy(field, &c->value, sizeof(int));
                        return 0;
                }
                value_choice_list(d, list, sizeof(list));
                return text_fail(msg, len, "'%s' is not valid (expected %s)", text_quote(value).s, list);
        }
        case VAL_STRING:
                r = d->check ? d->check(value, d->size, msg, len) : 0;
                if (r < 0)
                        return r;
                if (strlen(value) >= d->size)
                        return text_fail(msg, len, "'%s' is too long (at most %zu bytes)", text_quote(value).s,
                                         d->size - 1);
                memcpy(field, value, strlen(value) + 1);
                return 0;
        case VAL_FUNC:
                return d->parse(d, (struct port_cfg *)obj, value, msg, len);
        }
        return text_fail(msg, len, "internal error: bad key type");
}

/* --- strings ------------------------------------------------------------------------------------------------ */

int value_check_path(const char *value, size_t size, char *msg, size_t len)
{
        size_t n = strlen(value);

        if (n >= size)
                return text_fail(msg, len, "path is %zu bytes long (at most %zu)", n, size - 1);
        return 0;
}

/* User and group names: what useradd accepts, portable subset. All digits is a numeric id. */
static bool valid_user_name(const char *s, size_t n)
{
        size_t i;

        if (n == 0 || s[0] == '-')
                return false;
        for (i = 0; i < n; i++)
                if (!text_is_name_char(s[i]))
                        return false;
        return true;
}

int value_check_user(const char *value, size_t size, char *msg, size_t len)
{
        size_t n = strlen(value);

        if (n >= size)
                return text_fail(msg, len, "name is %zu bytes long (at most %zu)", n, size - 1);
        if (!valid_user_name(value, n))
                return text_fail(msg, len,
                                 "'%s' is not a valid name (letters, digits, '_', '.', '-'; not starting with '-')",
                                 text_quote(value).s);
        return 0;
}

/* "'VALUE' is N bytes long (at most SIZE-1)", or 0 when value fits a char[size]. */
static int check_fits(const char *value, size_t size, char *msg, size_t len)
{
        size_t n = strlen(value);

        if (n >= size)
                return text_fail(msg, len, "'%s' is %zu bytes long (at most %zu)", text_quote(value).s, n, size - 1);
        return 0;
}

int value_check_owner(const char *value, size_t size, char *msg, size_t len)
{
        const char *colon = strchr(value, ':');

        if (check_fits(value, size, msg, len) < 0)
                return -EINVAL;
        if (colon ? !valid_user_name(value, (size_t)(colon - value)) || !valid_user_name(colon + 1, strlen(colon + 1))
                  : !valid_user_name(value, strlen(value)))
                return text_fail(msg, len, "'%s' is not valid (expected USER or USER:GROUP)", text_quote(value).s);
        return 0;
}

/* systemd's FileDescriptorName=: printable ASCII except ':'. */
int value_check_fd_name(const char *value, size_t size, char *msg, size_t len)
{
        size_t i;

        if (check_fits(value, size, msg, len) < 0)
                return -EINVAL;
        for (i = 0; value[i]; i++)
                if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e || value[i] == ':')
                        return text_fail(msg, len,
                                         "'%s' is not a valid FileDescriptorName= (printable ASCII except ':')",
                                         text_quote(value).s);
        return 0;
}

/* The kernel's dev_valid_name(). */
int value_check_ifname(const char *value, size_t size, char *msg, size_t len)
{
        size_t i;

        if (check_fits(value, size, msg, len) < 0)
                return -EINVAL;
        if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
                return text_fail(msg, len, "'%s' is not a valid interface name", value);
        for (i = 0; value[i]; i++)
                if (value[i] == '/' || value[i] == ':' || text_is_space(value[i]) || (unsigned char)value[i] > 0x7e)
                        return text_fail(msg, len, "'%s' is not a valid interface name (no '/', ':' or spaces)",
                                         text_quote(value).s);
        return 0;
}

/* --- values with a syntax of their own ---------------------------------------------------------------------- */

/* "auto", "2048" or "4096", exactly: the key's choices. */
int value_parse_frame_size(const struct key_desc *d, struct port_cfg *port, const char *value, char *msg, size_t len)
{
        const struct choice *c = choice_named(d, value, true);
        char list[64];

        if (c) {
                port->backend.frame_size = (unsigned)c->value;
                return 0;
        }
        value_choice_list(d, list, sizeof(list));
        return text_fail(msg, len, "'%s' is not a valid frame size (expected %s)", text_quote(value).s, list);
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

int value_parse_mac(const struct key_desc *d, struct port_cfg *port, const char *value, char *msg, size_t len)
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
                return text_fail(msg, len, "'%s' is a multicast address (the guest needs a unicast MAC)",
                                 text_quote(value).s);
        if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
                return text_fail(msg, len, "'%s' is all zeros (expected a unicast MAC like 52:54:00:12:34:56)", value);
        memcpy(port->mac, mac, sizeof(mac));
        port->has_mac = true;
        return 0;
bad:
        return text_fail(msg, len, "'%s' is not a MAC address (expected six hex bytes like 52:54:00:12:34:56)",
                         text_quote(value).s);
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
int value_parse_cpus(const struct key_desc *d, struct port_cfg *port, const char *value, char *msg, size_t len)
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
                        return text_fail(msg, len, "'%s' is not a cpu number or range", text_quote(p).s);
                memcpy(split, p, n);
                split[n] = '\0';
                /* item: the whole entry, for messages; split: cut at the dash. */
                snprintf(item, sizeof(item), "%s", text_trim(split));
                if (item[0] == '\0')
                        return text_fail(msg, len, "'%s' has an empty item (expected a list like 0,1,4-7)",
                                         text_quote(value).s);
                lo_s = hi_s = text_trim(split);
                dash = strchr(lo_s, '-');
                if (dash) {
                        *dash = '\0';
                        lo_s = text_trim(lo_s);
                        hi_s = text_trim(dash + 1);
                }
                r = parse_cpu_num(lo_s, &lo);
                if (r == 0)
                        r = parse_cpu_num(hi_s, &hi);
                if (r == -ERANGE)
                        return text_fail(msg, len, "'%s' is out of range (cpus 0..%d)", text_quote(item).s,
                                         CPU_NUM_MAX);
                if (r < 0)
                        return text_fail(msg, len, "'%s' is not a cpu number or range (expected a list like 0,1,4-7)",
                                         text_quote(item).s);
                if (lo > hi)
                        return text_fail(msg, len, "range %u-%u is backwards", lo, hi);
                for (c = lo; c <= hi; c++) {
                        if (seen[c / 64] & (UINT64_C(1) << (c % 64)))
                                return text_fail(msg, len, "cpu %u is listed twice", c);
                        if (ncpus == CONFIG_MAX_CPUS)
                                return text_fail(msg, len, "more than %d cpus listed", CONFIG_MAX_CPUS);
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
