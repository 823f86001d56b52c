/* SPDX-License-Identifier: MIT */
/* vhostd.conf(5): parsed once into an immutable struct config. Non-logging: errors come back in reterr. */
#ifndef CONFIG_CONFIG_H
#define CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend_cfg.h"

#define CONFIG_MAX_PORTS 16
#define CONFIG_MAX_QUEUES 16
#define CONFIG_MAX_CPUS 64
#define CONFIG_PATH_MAX 108 /* sun_path */

enum log_level { LOG_LEVEL_ERR = 3, LOG_LEVEL_WARN = 4, LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };
enum port_mode { PORT_MODE_SERVER = 0, PORT_MODE_CLIENT };

struct port_cfg {
        char name[32];                /* from the section header: [port NAME] */
        char socket[CONFIG_PATH_MAX]; /* vhost-user unix socket path */
        enum port_mode mode;          /* server: vhostd listens; client: vhostd connects (QEMU server=on) */
        char fd_name[64];             /* socket activation: FileDescriptorName= that maps to this port */
        unsigned queues;              /* queue pairs, 1..CONFIG_MAX_QUEUES */
        unsigned burst;               /* frames per burst, 1..256 */
        unsigned busy_poll_us;        /* 0: interrupt mode, polling adaptively unless adaptive_poll is off */
        bool adaptive_poll;           /* poll briefly while work keeps coming back soon after sleeping */
        bool packed_ring;             /* offer VIRTIO_F_RING_PACKED */
        bool in_order;                /* offer VIRTIO_F_IN_ORDER */
        int cpus[CONFIG_MAX_CPUS];    /* worker i is pinned to cpus[i % ncpus] */
        unsigned ncpus;
        uint8_t mac[6];
        bool has_mac;
        unsigned socket_mode;  /* listening socket permissions, 0: umask default */
        char socket_owner[64]; /* user[:group] to chown the listening socket to, "" to leave */
        struct backend_cfg backend;
};

struct config {
        enum log_level log_level;
        char user[64]; /* drop to this user after opening ports, "" to stay */
        char group[64];
        char control_socket[CONFIG_PATH_MAX]; /* vhostctl socket, "" for none */
        bool seccomp;
        unsigned nports;
        struct port_cfg ports[CONFIG_MAX_PORTS];
};

struct config_error {
        char file[256];
        unsigned line; /* 0 when the error is about the file as a whole */
        char key[64];
        char msg[256];
};

/* Defaults for one port (also used for command-line ports). */
void config_port_defaults(struct port_cfg *port);
void config_defaults(struct config *cfg);

/* Parses text (name is used in errors). Returns 0 or -EINVAL with reterr filled. */
int config_parse(const char *text, size_t len, const char *name, struct config *ret, struct config_error *reterr);
/* Reads and parses a file. -errno (reterr filled) on failure. */
int config_load(const char *path, struct config *ret, struct config_error *reterr);
/* Sets one port key (the same keys as a [port] section) from the command line; 0 or -EINVAL with errbuf set. */
int config_port_set(struct port_cfg *port, const char *key, const char *value, char *errbuf, size_t errlen);
/* Checks cross-key rules of one port (backend kind known, ifname set where needed...). */
int config_port_check(const struct port_cfg *port, char *errbuf, size_t errlen);

/* Formats an error as "FILE:LINE: key 'KEY': MSG". */
void config_error_format(const struct config_error *err, char *buf, size_t size);

#endif
