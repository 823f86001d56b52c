/* SPDX-License-Identifier: MIT */
/*
 * vhostd.conf(5) parser: the INI reader and the public functions.
 *
 * The format is INI-like: "[global]" and "[port NAME]" sections, "key = value" lines, comments starting with '#'
 * or ';' (at the start of a line, or after whitespace inside one). Every key is described once in a table
 * (keys.c) that gives its type, where it is stored and, for port keys, which backend kinds it applies to; the
 * file parser and the command line (config_port_set) both go through those tables, and values.c turns each
 * value's text into its field.
 *
 * Non-logging: every failure comes back as -errno plus a message naming the file, line and key. The parser
 * never allocates, works on a private copy of the configuration and only writes *ret on success, so that a
 * failed reload leaves the running configuration untouched. It must survive arbitrary bytes (it is fuzzed).
 */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_internal.h"

#define FILE_LEN_MAX ((size_t)1 << 20) /* config_load() refuses larger files */
#define PORT_NAME_MAX 31

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

/* The error already in p->err->msg happened on line (0: the whole file), at key ("": none). Returns r. */
static int located(struct parser *p, unsigned line, const char *key, int r)
{
        p->err->line = line;
        text_sanitize(p->err->key, sizeof(p->err->key), key, sizeof(p->err->key) - 1);
        return r;
}

static __attribute__((format(printf, 4, 5))) int perr(struct parser *p, unsigned line, const char *key, const char *fmt,
                                                      ...)
{
        va_list ap;

        located(p, line, key, -EINVAL);
        va_start(ap, fmt);
        (void)vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int finish_section(struct parser *p)
{
        const struct key_desc *d;
        struct port_cfg *port;
        const char *key = "";
        unsigned kind;
        size_t i;
        int r;

        if (p->section != SECTION_PORT)
                return 0;
        port = &p->cfg->ports[p->cfg->nports - 1];
        /* A key given for another kind is refused at its line, even when it was set to its default. */
        kind = key_kind_bit(port->backend.kind, sizeof(port->backend.kind));
        for (i = 0; i < keys_port.n; i++) {
                d = &keys_port.v[i];
                if (p->seen[i] && !(d->kinds & kind))
                        return located(p, p->seen[i], d->name,
                                       key_wrong_kind(d, port->backend.kind, p->err->msg, sizeof(p->err->msg)));
        }
        r = key_port_check(port, &key, p->err->msg, sizeof(p->err->msg));
        if (r < 0) {
                d = key_find(&keys_port, key);
                return located(p, d && p->seen[d - keys_port.v] ? p->seen[d - keys_port.v] : p->section_line, key, r);
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
        rest = text_skip_space(close + 1);
        if (*rest && *rest != '#' && *rest != ';')
                return perr(p, p->line, "", "unexpected '%s' after the section header", text_quote(rest).s);
        *close = '\0';
        inner = text_trim(s + 1);

        if (strcmp(inner, "global") == 0) {
                if (p->global_line)
                        return perr(p, p->line, "", "[global] given twice (first on line %u)", p->global_line);
                p->global_line = p->line;
                p->section = SECTION_GLOBAL;
                return 0;
        }
        if (strncmp(inner, "port", 4) != 0 || (inner[4] && !text_is_space(inner[4])))
                return perr(p, p->line, "", "unknown section '[%s]' (expected [global] or [port NAME])",
                            text_quote(inner).s);

        name = text_trim(inner + 4);
        n = strlen(name);
        if (n == 0)
                return perr(p, p->line, "", "port section without a name (expected [port NAME])");
        for (i = 0; i < n; i++)
                if (!text_is_name_char(name[i]))
                        break;
        if (n > PORT_NAME_MAX || i < n)
                return perr(p, p->line, "", "port name '%s' is not valid (1..%d characters from A-Z a-z 0-9 _ . -)",
                            text_quote(name).s, PORT_NAME_MAX);
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
        const struct keys *keys, *other;
        const struct key_desc *d;
        size_t i;
        char *eq = strchr(s, '='), *key, *value;
        void *obj;
        int r;

        if (!eq)
                return perr(p, p->line, "", "expected 'key = value', a [section] header or a comment");
        *eq = '\0';
        key = text_trim(s);
        value = eq + 1;
        for (i = 0; value[i]; i++) {
                if ((value[i] == '#' || value[i] == ';') && (i == 0 || text_is_space(value[i - 1]))) {
                        value[i] = '\0';
                        break;
                }
        }
        value = text_trim(value);

        if (*key == '\0')
                return perr(p, p->line, "", "'=' without a key before it");
        if (p->section == SECTION_NONE)
                return perr(p, p->line, key, "not inside a section (put it under [global] or [port NAME])");

        if (p->section == SECTION_GLOBAL) {
                keys = &keys_global;
                other = &keys_port;
                obj = p->cfg;
        } else {
                keys = &keys_port;
                other = &keys_global;
                obj = &p->cfg->ports[p->cfg->nports - 1];
        }
        d = key_find(keys, key);
        if (!d) {
                r = p->section == SECTION_GLOBAL ? key_unknown(keys, other, "[global]", "a [port NAME] section", key,
                                                               p->err->msg, sizeof(p->err->msg))
                                                 : key_unknown(keys, other, "a [port] section", "[global]", key,
                                                               p->err->msg, sizeof(p->err->msg));
                return located(p, p->line, key, r);
        }
        if (p->seen[d - keys->v])
                return perr(p, p->line, key, "given twice in this section (first on line %u)", p->seen[d - keys->v]);
        p->seen[d - keys->v] = p->line;

        r = value_set(d, obj, value, p->err->msg, sizeof(p->err->msg));
        return r < 0 ? located(p, p->line, key, r) : 0;
}

static int parse_line(struct parser *p, char *s)
{
        s = text_skip_space(s);
        if (*s == '\0' || *s == '#' || *s == ';')
                return 0;
        if (*s == '[')
                return parse_section(p, s);
        return parse_key(p, s);
}

static void error_init(struct config_error *err, const char *name)
{
        memset(err, 0, sizeof(*err));
        text_sanitize(err->file, sizeof(err->file), name ? name : "(config)", sizeof(err->file) - 1);
}

void config_port_defaults(struct port_cfg *port)
{
        memset(port, 0, sizeof(*port));
        port->mode = PORT_MODE_SERVER;
        port->queues = 1;
        port->burst = 32;
        port->busy_poll_us = 0;
        port->adaptive_poll = true;
        port->packed_ring = true;
        port->in_order = true;
        snprintf(port->backend.kind, sizeof(port->backend.kind), "%s", key_kind_names[BACKEND_KIND_LOOPBACK]);
        port->backend.set_up = true;
        port->backend.offloads = true;
        port->backend.io_uring = true;
        port->backend.xdp_mode = BACKEND_XDP_AUTO;
        port->backend.frame_size = 0; /* auto */
        port->backend.rate = 0;
        port->backend.frame_len = 64;
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
                        if (text_is_ctrl((unsigned char)start[i]) && start[i] != '\t')
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
                return text_fail(errbuf, errlen, "internal error: missing port, key or value");
        text_sanitize(k, sizeof(k), key, sizeof(k) - 1);

        d = key_find(&keys_port, key);
        if (!d) {
                (void)key_unknown(&keys_port, &keys_global, "a port", "the configuration file's [global] section", key,
                                  msg, sizeof(msg));
                return text_fail(errbuf, errlen, "key '%s': %s", k, msg);
        }
        n = strlen(value);
        if (n > LINE_LEN_MAX)
                return text_fail(errbuf, errlen, "key '%s': value is longer than %d bytes", k, LINE_LEN_MAX);
        memcpy(buf, value, n + 1);
        v = text_trim(buf);
        r = value_set(d, port, v, msg, sizeof(msg));
        if (r < 0)
                return text_fail(errbuf, errlen, "key '%s': %s", k, msg);
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
                return text_fail(errbuf, errlen, "internal error: no port");
        r = key_port_check(port, &key, msg, sizeof(msg));
        if (r < 0)
                return text_fail(errbuf, errlen, "key '%s': %s", key, msg);
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
