/* SPDX-License-Identifier: MIT */
/*
 * Every key of vhostd.conf(5), described once: its type, where it is stored, its range or choices, and for port
 * keys the backend kinds it applies to. The file parser and the command line (config_port_set) set values
 * through these tables, and key_port_check() checks a whole port against the same tables, so that a range, a
 * set of choices or the kinds of a key are written in one place.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

/* Backend kinds (BACKEND_KINDS), as a bit mask so that a key can name the kinds it applies to. */
enum {
#define KIND_BIT(id, name) KIND_##id = 1u << BACKEND_KIND_##id,
        BACKEND_KINDS(KIND_BIT)
#undef KIND_BIT
                KIND_ANY = (1u << BACKEND_KIND_COUNT) - 1,
        KIND_NETDEV = KIND_TAP | KIND_RAWSOCK | KIND_AFXDP, /* the kinds with an interface (ifname) */
};

const char *const key_kind_names[BACKEND_KIND_COUNT] = {
#define KIND_NAME(id, name) [BACKEND_KIND_##id] = #name,
        BACKEND_KINDS(KIND_NAME)
#undef KIND_NAME
};

unsigned key_kind_bit(const char *kind, size_t size)
{
        size_t i;

        if (!memchr(kind, '\0', size))
                return 0;
        for (i = 0; i < ARRAY_SIZE(key_kind_names); i++)
                if (strcmp(kind, key_kind_names[i]) == 0)
                        return 1u << i;
        return 0;
}

/* name is not a kind: "unknown backend 'NAME' (expected loopback, tap, rawsock or afxdp)". */
static int unknown_backend(const char *name, char *msg, size_t len)
{
        char kinds[64];

        text_list(key_kind_names, ARRAY_SIZE(key_kind_names), KIND_ANY, " or ", kinds, sizeof(kinds));
        return text_fail(msg, len, "unknown backend '%s' (expected %s)", text_quote(name).s, kinds);
}

int key_wrong_kind(const struct key_desc *d, const char *kind, char *msg, size_t len)
{
        char kinds[64];

        text_list(key_kind_names, ARRAY_SIZE(key_kind_names), d->kinds, " and ", kinds, sizeof(kinds));
        return text_fail(msg, len, "not valid with backend = %s (only for %s)", kind, kinds);
}

static int parse_backend(const struct key_desc *d, struct port_cfg *port, const char *value, char *msg, size_t len)
{
        size_t i;

        for (i = 0; i < ARRAY_SIZE(key_kind_names); i++) {
                if (strcasecmp(value, key_kind_names[i]) == 0) {
                        _Static_assert(sizeof(port->backend.kind) > 8, "kind names fit");
                        snprintf(port->backend.kind, sizeof(port->backend.kind), "%s", key_kind_names[i]);
                        return 0;
                }
        }
        return unknown_backend(value, msg, len);
}

/* --- the tables --------------------------------------------------------------------------------------------- */

/* Field locations, type-checked: a table entry cannot point a bool parser at an unsigned field. */
#define FIELD(s, f) .off = offsetof(s, f), .size = sizeof(((s *)0)->f)
#define BOOL_FIELD(s, f) .off = _Generic(((s *)0)->f, bool : offsetof(s, f)), .size = sizeof(bool)
#define UINT_FIELD(s, f) .off = _Generic(((s *)0)->f, unsigned : offsetof(s, f)), .size = sizeof(unsigned)
#define STR_FIELD(s, f) .off = _Generic(&((s *)0)->f[0], char * : offsetof(s, f)), .size = sizeof(((s *)0)->f)

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

static const struct choice busy_poll_choices[] = {
        {"auto", BACKEND_BUSY_POLL_AUTO},
        {"yes", BACKEND_BUSY_POLL_YES},
        {"no", BACKEND_BUSY_POLL_NO},
        {NULL, 0},
};

static const struct choice frame_size_choices[] = {
        {"auto", 0},
        {"2048", 2048},
        {"4096", 4096},
        {NULL, 0},
};

#define G struct config
static const struct key_desc global_keys[] = {
        {.name = "log_level", .type = VAL_CHOICE, FIELD(G, log_level), .choices = log_level_choices},
        {.name = "user", .type = VAL_STRING, STR_FIELD(G, user), .check = value_check_user},
        {.name = "group", .type = VAL_STRING, STR_FIELD(G, group), .check = value_check_user},
        {.name = "control_socket", .type = VAL_STRING, STR_FIELD(G, control_socket), .check = value_check_path},
        {.name = "seccomp", .type = VAL_BOOL, BOOL_FIELD(G, seccomp)},
};
#undef G

#define P struct port_cfg
static const struct key_desc port_keys[] = {
        {.name = "socket", .type = VAL_STRING, .kinds = KIND_ANY, STR_FIELD(P, socket), .check = value_check_path},
        {.name = "mode", .type = VAL_CHOICE, .kinds = KIND_ANY, FIELD(P, mode), .choices = mode_choices},
        {.name = "fd_name", .type = VAL_STRING, .kinds = KIND_ANY, STR_FIELD(P, fd_name), .check = value_check_fd_name},
        {.name = "socket_mode", .type = VAL_OCTAL, .kinds = KIND_ANY, UINT_FIELD(P, socket_mode), .max = 0777},
        {.name = "socket_owner",
         .type = VAL_STRING,
         .kinds = KIND_ANY,
         STR_FIELD(P, socket_owner),
         .check = value_check_owner},
        {.name = "queues",
         .type = VAL_UINT,
         .kinds = KIND_ANY,
         UINT_FIELD(P, queues),
         .min = 1,
         .max = CONFIG_MAX_QUEUES},
        {.name = "burst", .type = VAL_UINT, .kinds = KIND_ANY, UINT_FIELD(P, burst), .min = 1, .max = 256},
        {.name = "busy_poll_us", .type = VAL_UINT, .kinds = KIND_ANY, UINT_FIELD(P, busy_poll_us), .max = 1000000},
        {.name = "adaptive_poll", .type = VAL_BOOL, .kinds = KIND_ANY, BOOL_FIELD(P, adaptive_poll)},
        {.name = "packed_ring", .type = VAL_BOOL, .kinds = KIND_ANY, BOOL_FIELD(P, packed_ring)},
        {.name = "in_order", .type = VAL_BOOL, .kinds = KIND_ANY, BOOL_FIELD(P, in_order)},
        {.name = "cpus", .type = VAL_FUNC, .kinds = KIND_ANY, FIELD(P, cpus), .parse = value_parse_cpus},
        {.name = "mac", .type = VAL_FUNC, .kinds = KIND_ANY, FIELD(P, mac), .parse = value_parse_mac},
        {.name = "backend", .type = VAL_FUNC, .kinds = KIND_ANY, STR_FIELD(P, backend.kind), .parse = parse_backend},
        {.name = "ifname",
         .type = VAL_STRING,
         .kinds = KIND_NETDEV,
         STR_FIELD(P, backend.ifname),
         .check = value_check_ifname},
        {.name = "mtu",
         .type = VAL_UINT,
         .kinds = KIND_NETDEV | KIND_NULLPORT,
         UINT_FIELD(P, backend.mtu),
         .min = 68,
         .max = 65535,
         .zero = "to leave the MTU alone"},
        {.name = "link_up", .type = VAL_BOOL, .kinds = KIND_TAP, BOOL_FIELD(P, backend.set_up)},
        {.name = "offloads", .type = VAL_BOOL, .kinds = KIND_NETDEV, BOOL_FIELD(P, backend.offloads)},
        {.name = "promisc", .type = VAL_BOOL, .kinds = KIND_RAWSOCK, BOOL_FIELD(P, backend.promisc)},
        {.name = "qdisc_bypass", .type = VAL_BOOL, .kinds = KIND_RAWSOCK, BOOL_FIELD(P, backend.qdisc_bypass)},
        {.name = "io_uring", .type = VAL_BOOL, .kinds = KIND_TAP, BOOL_FIELD(P, backend.io_uring)},
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
        {.name = "busy_poll",
         .type = VAL_CHOICE,
         .kinds = KIND_AFXDP,
         FIELD(P, backend.busy_poll),
         .choices = busy_poll_choices},
        {.name = "frame_size",
         .type = VAL_FUNC,
         .kinds = KIND_AFXDP,
         UINT_FIELD(P, backend.frame_size),
         .choices = frame_size_choices,
         .parse = value_parse_frame_size},
        {.name = "rate",
         .type = VAL_UINT,
         .kinds = KIND_NULLPORT,
         UINT_FIELD(P, backend.rate),
         .min = 1,
         .max = 100000000,
         .zero = "for as fast as the guest takes them"},
        {.name = "frame_len",
         .type = VAL_UINT,
         .kinds = KIND_NULLPORT,
         UINT_FIELD(P, backend.frame_len),
         .min = NULL_FRAME_MIN,
         .max = NULL_FRAME_MAX},
        {.name = "xsks_map",
         .type = VAL_STRING,
         .kinds = KIND_AFXDP,
         STR_FIELD(P, backend.xsks_map),
         .check = value_check_path},
};
#undef P

_Static_assert(ARRAY_SIZE(global_keys) <= KEYS_MAX && ARRAY_SIZE(port_keys) <= KEYS_MAX, "seen[] is big enough");

const struct keys keys_global = {global_keys, ARRAY_SIZE(global_keys)};
const struct keys keys_port = {port_keys, ARRAY_SIZE(port_keys)};

/* --- finding keys ------------------------------------------------------------------------------------------- */

const struct key_desc *key_find(const struct keys *keys, const char *name)
{
        size_t i;

        for (i = 0; i < keys->n; i++)
                if (strcmp(keys->v[i].name, name) == 0)
                        return &keys->v[i];
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

int key_unknown(const struct keys *keys, const struct keys *other, const char *section, const char *other_section,
                const char *name, char *msg, size_t len)
{
        const struct key_desc *best = NULL;
        unsigned best_d = 3;
        size_t i, used;

        if (key_find(other, name))
                return text_fail(msg, len, "belongs in %s, not in %s", other_section, section);
        for (i = 0; i < keys->n; i++) {
                unsigned d = edit_distance(name, keys->v[i].name);

                /* Only near misses: one edit per three letters of the key it resembles. */
                if (d < best_d && d * 3 <= strlen(keys->v[i].name)) {
                        best_d = d;
                        best = &keys->v[i];
                }
        }
        if (best)
                return text_fail(msg, len, "unknown key in %s (did you mean '%s'?)", section, best->name);

        text_fail(msg, len, "unknown key in %s (expected:", section);
        used = msg ? strnlen(msg, len) : 0;
        for (i = 0; i < keys->n && msg && used + 1 < len; i++) {
                int w = snprintf(msg + used, len - used, " %s%s", keys->v[i].name, i + 1 == keys->n ? ")" : "");

                if (w < 0)
                        break;
                used += (size_t)w;
        }
        return -EINVAL;
}

/* --- checking a whole port ---------------------------------------------------------------------------------- */

/* A value that did not come through value_set() (a port filled by hand) against its key's range or choices. */
static int stored_value_check(const struct key_desc *d, const void *obj, char *msg, size_t len)
{
        const char *field = (const char *)obj + d->off;
        char text[128];
        unsigned u;
        int v;

        if (d->type == VAL_UINT || d->type == VAL_OCTAL) {
                memcpy(&u, field, sizeof(u));
                if (value_in_range(d, u))
                        return 0;
                value_range_text(d, text, sizeof(text));
                if (d->type == VAL_OCTAL)
                        return text_fail(msg, len, "%04o is out of range (%s)", u, text);
                return text_fail(msg, len, "%u is out of range (%s)", u, text);
        }
        if (d->choices) {
                memcpy(&v, field, sizeof(v));
                if (value_choice(d, v))
                        return 0;
                value_choice_list(d, text, sizeof(text));
                return text_fail(msg, len, "not valid (expected %s)", text);
        }
        return 0;
}

static bool field_is_default(const struct key_desc *d, const void *obj, const void *def)
{
        const char *a = (const char *)obj + d->off, *b = (const char *)def + d->off;

        if (d->type == VAL_STRING)
                return strncmp(a, b, d->size) == 0;
        return memcmp(a, b, d->size) == 0;
}

int key_port_check(const struct port_cfg *port, const char **ret_key, char *msg, size_t len)
{
        const struct key_desc *ifname = key_find(&keys_port, "ifname");
        struct port_cfg def;
        unsigned kind;
        size_t i;

        kind = key_kind_bit(port->backend.kind, sizeof(port->backend.kind));
        if (!kind) {
                char name[sizeof(port->backend.kind) + 1];

                memcpy(name, port->backend.kind, sizeof(port->backend.kind));
                name[sizeof(port->backend.kind)] = '\0';
                *ret_key = "backend";
                return unknown_backend(name, msg, len);
        }
        /* The ranges and choices again, for a port_cfg that was not filled through config_port_set(). */
        for (i = 0; i < keys_port.n; i++) {
                if (stored_value_check(&port_keys[i], port, msg, len) < 0) {
                        *ret_key = port_keys[i].name;
                        return -EINVAL;
                }
        }
        if (port->ncpus > CONFIG_MAX_CPUS) {
                *ret_key = "cpus";
                return text_fail(msg, len, "more than %d cpus listed", CONFIG_MAX_CPUS);
        }

        if (!port->socket[0] && !port->fd_name[0]) {
                *ret_key = "socket";
                return text_fail(msg, len, "required unless fd_name is given (socket activation)");
        }
        if (port->mode == PORT_MODE_CLIENT) {
                if (port->fd_name[0]) {
                        *ret_key = "fd_name";
                        return text_fail(msg, len,
                                         "not valid with mode = client (socket activation needs a listening socket)");
                }
                if (port->socket_mode) {
                        *ret_key = "socket_mode";
                        return text_fail(msg, len, "not valid with mode = client (the front-end creates the socket)");
                }
                if (port->socket_owner[0]) {
                        *ret_key = "socket_owner";
                        return text_fail(msg, len, "not valid with mode = client (the front-end creates the socket)");
                }
        }

        if ((ifname->kinds & kind) && !port->backend.ifname[0]) {
                *ret_key = "ifname";
                return text_fail(msg, len, "required with backend = %s (%s)", port->backend.kind,
                                 kind == KIND_TAP ? "the tap device to create or attach to"
                                                  : "the interface to bind to");
        }

        /* A setting that only another kind of backend reads is a mistake, not something to ignore. */
        config_port_defaults(&def);
        for (i = 0; i < keys_port.n; i++) {
                const struct key_desc *d = &port_keys[i];

                if ((d->kinds & kind) || field_is_default(d, port, &def))
                        continue;
                *ret_key = d->name;
                return key_wrong_kind(d, port->backend.kind, msg, len);
        }

        if (kind == KIND_NULLPORT &&
            port->backend.frame_len > (port->backend.mtu ? port->backend.mtu : 1500) + 18 /* Ethernet + VLAN */) {
                *ret_key = "frame_len";
                return text_fail(msg, len, "%u bytes do not fit the MTU (%u; set mtu to at least %u)",
                                 port->backend.frame_len, port->backend.mtu ? port->backend.mtu : 1500,
                                 port->backend.frame_len - 18);
        }

        /* Both apply to afxdp only: on any other kind, the loop above has seen that they are still off. */
        if (port->backend.force_copy && port->backend.zero_copy) {
                *ret_key = "zero_copy";
                return text_fail(msg, len, "contradicts force_copy = yes (choose one)");
        }
        return 0;
}
