/* SPDX-License-Identifier: MIT */
/*
 * What the files of the vhostd.conf(5) parser share; not part of the API (that is config.h).
 *
 *   text.c    character classes, trimming, quoting a value into a message, word lists, the error return
 *   values.c  one value's text into one field, as its key's description says (type, range, choices, checks)
 *   keys.c    the key tables, the port kinds each key applies to, and the checks of a whole port against them
 *   config.c  the INI reader (lines, sections, errors with file:line:key) and the public functions
 */
#ifndef CONFIG_CONFIG_INTERNAL_H
#define CONFIG_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define LINE_LEN_MAX 4096 /* longest accepted line (or command-line value), without its newline */
#define QUOTE_MAX 48      /* bytes of a value repeated in an error message */
#define KEYS_MAX 32       /* keys in one table; also the longest key edit_distance() compares */

/* --- text.c ------------------------------------------------------------------------------------------------- */

static inline bool text_is_space(char c)
{
        return c == ' ' || c == '\t';
}

static inline bool text_is_ctrl(unsigned char c)
{
        return c < 0x20 || c == 0x7f;
}

static inline bool text_is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static inline bool text_is_name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || text_is_digit(c) || c == '_' || c == '.' || c == '-';
}

char *text_skip_space(char *s);
/* Cuts leading and trailing blanks (in place). */
char *text_trim(char *s);
/* Copies src for an error message: control bytes become '?', longer than max ends in "...". */
void text_sanitize(char *dst, size_t size, const char *src, size_t max);

struct quoted {
        char s[QUOTE_MAX + 1];
};

/* text_quote(value).s: a value made safe to repeat in a message (valid until the end of the full expression). */
struct quoted text_quote(const char *value);

/* Writes the message (when msg is not NULL) and returns -EINVAL. */
__attribute__((format(printf, 3, 4))) int text_fail(char *msg, size_t len, const char *fmt, ...);

/* "a, b or c" (last = " or ") or "a, b and c": the names whose bit is set in mask. */
void text_list(const char *const *names, size_t n, unsigned mask, const char *last, char *buf, size_t size);

/* --- values.c ----------------------------------------------------------------------------------------------- */

enum val_type {
        VAL_UINT,   /* decimal unsigned, min..max (or 0, when zero says what 0 means) */
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

/* One key: everything the parser, the command line and the checks of a whole port know about it. */
struct key_desc {
        const char *name;
        enum val_type type;
        unsigned kinds; /* port keys: backend kinds the key applies to, a mask of key_kind_bit() */
        size_t off;     /* where the value lives in struct config or struct port_cfg */
        size_t size;
        unsigned min, max;            /* VAL_UINT, VAL_OCTAL */
        const char *zero;             /* VAL_UINT: 0 is valid too, and means this ("to leave the MTU alone") */
        const struct choice *choices; /* VAL_CHOICE, or a VAL_FUNC with a fixed set of values; NULL-terminated */
        int (*check)(const char *value, size_t size, char *msg, size_t len);
        int (*parse)(const struct key_desc *d, struct port_cfg *port, const char *value, char *msg, size_t len);
};

/* Parses value into obj (a struct config or struct port_cfg) as d says; obj is unchanged on failure. */
int value_set(const struct key_desc *d, void *obj, const char *value, char *msg, size_t len);
/* Whether v is in d's range, and that range as text ("1..16", "0000..0777", "68..65535, or 0 to ..."). */
bool value_in_range(const struct key_desc *d, uint64_t v);
void value_range_text(const struct key_desc *d, char *buf, size_t size);
/* The choice of d with this value, NULL when none; and "a, b or c" from d's choices. */
const struct choice *value_choice(const struct key_desc *d, int value);
void value_choice_list(const struct key_desc *d, char *buf, size_t size);

/* The checks (VAL_STRING) and parsers (VAL_FUNC) that the key tables name. */
int value_check_path(const char *value, size_t size, char *msg, size_t len);
int value_check_user(const char *value, size_t size, char *msg, size_t len);
int value_check_owner(const char *value, size_t size, char *msg, size_t len);
int value_check_fd_name(const char *value, size_t size, char *msg, size_t len);
int value_check_ifname(const char *value, size_t size, char *msg, size_t len);
int value_parse_frame_size(const struct key_desc *d, struct port_cfg *port, const char *value, char *msg, size_t len);
int value_parse_mac(const struct key_desc *d, struct port_cfg *port, const char *value, char *msg, size_t len);
int value_parse_cpus(const struct key_desc *d, struct port_cfg *port, const char *value, char *msg, size_t len);

/* --- keys.c ------------------------------------------------------------------------------------------------- */

struct keys {
        const struct key_desc *v;
        size_t n;
};

extern const struct keys keys_global, keys_port;

const struct key_desc *key_find(const struct keys *keys, const char *name);
/*
 * The message for a key that keys does not have: where it belongs when other has it ("belongs in
 * other_section, not in section"), a near miss, or the list of keys. Returns -EINVAL.
 */
int key_unknown(const struct keys *keys, const struct keys *other, const char *section, const char *other_section,
                const char *name, char *msg, size_t len);
/* The names of the backend kinds, by enum backend_kind. */
extern const char *const key_kind_names[BACKEND_KIND_COUNT];
/* The kind bit of a backend kind name, 0 when unknown. Tolerates an unterminated char[size]. */
unsigned key_kind_bit(const char *kind, size_t size);
/* "not valid with backend = KIND (only for tap, rawsock and afxdp)": d set on a port of a kind it does not apply to. */
int key_wrong_kind(const struct key_desc *d, const char *kind, char *msg, size_t len);
/* Checks a whole port (values, and the rules between keys); on failure *ret_key names the key at fault. */
int key_port_check(const struct port_cfg *port, const char **ret_key, char *msg, size_t len);

#endif
