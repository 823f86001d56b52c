// SPDX-License-Identifier: MIT
#include <string.h>

#include "backends/backend.h"

static const struct backend_ops *const kinds[] = {
        &backend_loopback_ops,
        &backend_tap_ops,
        &backend_rawsock_ops,
        &backend_afxdp_ops,
};

const struct backend_ops *backend_find(const char *kind)
{
        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
                if (strcmp(kinds[i]->name, kind) == 0)
                        return kinds[i];
        return NULL;
}

const char *backend_kinds(void)
{
        return "loopback tap rawsock afxdp";
}
