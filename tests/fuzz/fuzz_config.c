/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the vhostd.conf(5) parser:
 *   clang -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE tests/fuzz/fuzz_config.c config/[a-z]*.c
 *   ./a.out tests/fuzz/corpus/config
 * Besides "no crash, no UB, no leak" it checks the parser's promises: a failure fills a terminated error and
 * leaves the result untouched, a success gives ports that pass config_port_check() and an error with line 0.
 * Input starting with "-o" is also fed, line by line as key=value, to config_port_set() on a default port.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_port_set(const char *text, size_t size)
{
        struct port_cfg port, before;
        char line[512], err[256];
        size_t pos = 0;

        config_port_defaults(&port);
        while (pos < size) {
                const char *start = text + pos, *nl = memchr(start, '\n', size - pos);
                size_t n = nl ? (size_t)(nl - start) : size - pos;
                char *eq;

                pos += n + (nl ? 1 : 0);
                if (n >= sizeof(line))
                        continue;
                memcpy(line, start, n);
                line[n] = '\0';
                eq = strchr(line, '=');
                if (!eq)
                        continue;
                *eq = '\0';
                before = port;
                if (config_port_set(&port, line, eq + 1, err, sizeof(err)) < 0) {
                        if (memcmp(&port, &before, sizeof(port)) != 0 || !memchr(err, '\0', sizeof(err)) || !err[0])
                                abort();
                }
        }
        (void)config_port_check(&port, err, sizeof(err));
        if (!memchr(err, '\0', sizeof(err)))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct config cfg, before;
        struct config_error err;
        char buf[1024], perr[256];
        unsigned i;
        int r;

        memset(&cfg, 0x5a, sizeof(cfg));
        before = cfg;
        r = config_parse((const char *)data, size, "fuzz.conf", &cfg, &err);
        config_error_format(&err, buf, sizeof(buf));
        if (!memchr(buf, '\0', sizeof(buf)))
                abort();
        if (r < 0) {
                if (r != -EINVAL || !err.msg[0] || memcmp(&cfg, &before, sizeof(cfg)) != 0)
                        abort();
        } else {
                if (r != 0 || cfg.nports < 1 || cfg.nports > CONFIG_MAX_PORTS)
                        abort();
                for (i = 0; i < cfg.nports; i++)
                        if (config_port_check(&cfg.ports[i], perr, sizeof(perr)) != 0)
                                abort();
        }

        if (size >= 2 && memcmp(data, "-o", 2) == 0)
                fuzz_port_set((const char *)data + 2, size - 2);
        return 0;
}
