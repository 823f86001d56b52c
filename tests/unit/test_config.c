/* SPDX-License-Identifier: MIT */
/* Unit tests for config/: vhostd.conf(5) parsing, the per-key setter and the cross-key checks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A port section that passes every check, to build bad cases around. */
#define PORT_OK "[port p]\nsocket = /run/p.sock\n"

static int parse_str(const char *text, struct config *cfg, struct config_error *err)
{
        return config_parse(text, strlen(text), "t.conf", cfg, err);
}

static void expect_ok(const char *text, struct config *cfg)
{
        struct config_error err;
        char buf[512];
        int r;

        r = parse_str(text, cfg, &err);
        if (r != 0) {
                config_error_format(&err, buf, sizeof(buf));
                print_error("unexpected error: %s\n--- input ---\n%s\n", buf, text);
        }
        assert_int_equal(r, 0);
}

/* --- bad configurations: each names the line, the key and part of the message -------------------------------- */

struct bad_case {
        const char *text;
        unsigned line;
        const char *key;
        const char *msg;
};

static const struct bad_case bad_cases[] = {
        /* structure */
        {"", 0, "", "at least one port"},
        {"# only a comment\n[global]\nlog_level = debug\n", 0, "", "no [port NAME] section"},
        {"queues = 2\n" PORT_OK, 1, "queues", "not inside a section"},
        {"[global]\nlog_level\n" PORT_OK, 2, "", "expected 'key = value'"},
        {"[global]\n= info\n" PORT_OK, 2, "", "without a key"},
        {"[global\n" PORT_OK, 1, "", "without ']'"},
        {"[global] junk\n" PORT_OK, 1, "", "unexpected 'junk'"},
        {"[globals]\n" PORT_OK, 1, "", "unknown section '[globals]'"},
        {"[portx a]\n", 1, "", "unknown section"},
        {"[port]\n", 1, "", "without a name"},
        {"[port   ]\n", 1, "", "without a name"},
        {"[port a b]\n", 1, "", "port name 'a b' is not valid"},
        {"[port a/b]\n", 1, "", "is not valid"},
        {"[port 0123456789012345678901234567890x]\n", 1, "", "1..31 characters"},
        {"[global]\n[global]\n" PORT_OK, 2, "", "[global] given twice (first on line 1)"},
        {PORT_OK "[port p]\nsocket = /b\n", 3, "", "port 'p' is defined twice (first on line 1)"},
        {"[global]\nlog_level = info\nlog_level = debug\n" PORT_OK, 3, "log_level", "given twice"},
        {PORT_OK "queues = 1\nqueues = 2\n", 4, "queues", "first on line 3"},
        {"[global]\nfoo = 1\n" PORT_OK, 2, "foo", "unknown key in [global]"},
        {PORT_OK "bogus_key_here = 1\n", 3, "bogus_key_here", "expected: socket mode"},
        {PORT_OK "queue = 2\n", 3, "queue", "did you mean 'queues'?"},
        {PORT_OK "xdpmode = skb\n", 3, "xdpmode", "did you mean 'xdp_mode'?"},
        {PORT_OK "ma = 1\n", 3, "ma", "did you mean 'mac'?"},
        {PORT_OK "zz = 1\n", 3, "zz", "(expected: socket mode"},
        {PORT_OK "log_level = info\n", 3, "log_level", "belongs in [global]"},
        {"[global]\nqueues = 2\n" PORT_OK, 2, "queues", "belongs in a [port NAME] section"},
        {PORT_OK "queues =\n", 3, "queues", "empty value"},
        {PORT_OK "queues = # two\n", 3, "queues", "empty value"},
        {PORT_OK "Queues = 2\n", 3, "Queues", "unknown key"},
        {"[global]\nlog_level = info\x01\n" PORT_OK, 2, "", "control character (byte 0x01)"},
        {"[global]\r\nlog_level = loud\r\n" PORT_OK, 2, "log_level", "'loud' is not valid"},

        /* global values */
        {"[global]\nlog_level = verbose\n" PORT_OK, 2, "log_level", "expected err, warn, info or debug"},
        {"[global]\nuser = -root\n" PORT_OK, 2, "user", "is not a valid name"},
        {"[global]\ngroup = a b\n" PORT_OK, 2, "group", "is not a valid name"},
        {"[global]\nuser = 0123456789012345678901234567890123456789012345678901234567890123\n" PORT_OK, 2, "user",
         "at most 63"},
        {"[global]\nseccomp = maybe\n" PORT_OK, 2, "seccomp", "expected yes/no, true/false, on/off or 1/0"},
        {"[global]\ncontrol_socket = /0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/"
         "0123456789/0123456789/0123456789/0123456789\n" PORT_OK,
         2, "control_socket", "at most 107"},

        /* numbers */
        {PORT_OK "queues = 40\n", 3, "queues", "'40' is out of range (1..16)"},
        {PORT_OK "queues = 0\n", 3, "queues", "out of range (1..16)"},
        {PORT_OK "queues = 17\n", 3, "queues", "out of range (1..16)"},
        {PORT_OK "queues = -1\n", 3, "queues", "is not a number"},
        {PORT_OK "queues = +1\n", 3, "queues", "is not a number"},
        {PORT_OK "queues = 2x\n", 3, "queues", "'2x' is not a number (expected 1..16)"},
        {PORT_OK "queues = 0x2\n", 3, "queues", "is not a number"},
        {PORT_OK "queues = 1 6\n", 3, "queues", "is not a number"},
        {PORT_OK "queues = 1.5\n", 3, "queues", "is not a number"},
        {PORT_OK "queues = 18446744073709551617\n", 3, "queues", "out of range"},
        {PORT_OK "queues = 99999999999999999999999999999999\n", 3, "queues", "out of range"},
        {PORT_OK "queues = 4294967297\n", 3, "queues", "out of range"},
        {PORT_OK "burst = 0\n", 3, "burst", "out of range (1..256)"},
        {PORT_OK "burst = 257\n", 3, "burst", "out of range (1..256)"},
        {PORT_OK "busy_poll_us = 1000001\n", 3, "busy_poll_us", "out of range (0..1000000)"},
        {"[port p]\nsocket = /s\nbackend = tap\nifname = t\nmtu = 67\n", 5, "mtu", "68..65535, or 0"},
        {"[port p]\nsocket = /s\nbackend = tap\nifname = t\nmtu = 65536\n", 5, "mtu", "out of range"},
        {"[port p]\nsocket = /s\nbackend = afxdp\nifname = e\nstart_queue = 65536\n", 5, "start_queue",
         "out of range (0..65535)"},
        {"[port p]\nsocket = /s\nbackend = afxdp\nifname = e\nframe_size = 1024\n", 5, "frame_size",
         "expected auto, 2048 or 4096"},

        /* octal */
        {PORT_OK "socket_mode = 0680\n", 3, "socket_mode", "is not an octal number"},
        {PORT_OK "socket_mode = 01000\n", 3, "socket_mode", "out of range (0000..0777)"},
        {PORT_OK "socket_mode = 0o660\n", 3, "socket_mode", "not an octal number"},
        {PORT_OK "socket_mode = rw-rw----\n", 3, "socket_mode", "not an octal number"},

        /* strings */
        {PORT_OK "mode = listen\n", 3, "mode", "expected server or client"},
        {PORT_OK "socket_owner = a:b:c\n", 3, "socket_owner", "expected USER or USER:GROUP"},
        {PORT_OK "socket_owner = user:\n", 3, "socket_owner", "expected USER or USER:GROUP"},
        {PORT_OK "fd_name = a:b\n", 3, "fd_name", "FileDescriptorName="},
        {PORT_OK "fd_name = 0123456789012345678901234567890123456789012345678901234567890123\n", 3, "fd_name",
         "is 64 bytes long (at most 63)"},
        {PORT_OK "socket_owner = 0123456789012345678901234567890123456789:01234567890123456789012\n", 3, "socket_owner",
         "(at most 63)"},
        {"[port p]\nsocket = /s\nbackend = tap\nifname = 0123456789abcdef\n", 4, "ifname", "at most 15"},
        {"[port p]\nsocket = /s\nbackend = tap\nifname = a/b\n", 4, "ifname", "not a valid interface name"},
        {"[port p]\nsocket = /s\nbackend = tap\nifname = ..\n", 4, "ifname", "not a valid interface name"},
        {PORT_OK "backend = dpdk\n", 3, "backend",
         "unknown backend 'dpdk' (expected loopback, tap, rawsock, afxdp or null)"},

        /* mac */
        {PORT_OK "mac = 52:54:00:12:34\n", 3, "mac", "is not a MAC address"},
        {PORT_OK "mac = 52:54:00:12:34:5g\n", 3, "mac", "is not a MAC address"},
        {PORT_OK "mac = 52-54-00-12-34-56\n", 3, "mac", "is not a MAC address"},
        {PORT_OK "mac = 52:54:00:12:34:56:\n", 3, "mac", "is not a MAC address"},
        {PORT_OK "mac = 01:00:5e:00:00:01\n", 3, "mac", "multicast"},
        {PORT_OK "mac = 00:00:00:00:00:00\n", 3, "mac", "all zeros"},

        /* cpus */
        {PORT_OK "cpus = 0,,1\n", 3, "cpus", "empty item"},
        {PORT_OK "cpus = 0,\n", 3, "cpus", "empty item"},
        {PORT_OK "cpus = 5-2\n", 3, "cpus", "range 5-2 is backwards"},
        {PORT_OK "cpus = 1,0-3\n", 3, "cpus", "cpu 1 is listed twice"},
        {PORT_OK "cpus = 0-64\n", 3, "cpus", "more than 64 cpus"},
        {PORT_OK "cpus = 1024\n", 3, "cpus", "'1024' is out of range (cpus 0..1023)"},
        {PORT_OK "cpus = -1\n", 3, "cpus", "'-1' is not a cpu number"},
        {PORT_OK "cpus = 1-\n", 3, "cpus", "'1-' is not a cpu number"},
        {PORT_OK "cpus = a\n", 3, "cpus", "'a' is not a cpu number"},
        {PORT_OK "cpus = 00000000000000000000000000000001\n", 3, "cpus", "is not a cpu number or range"},
        {PORT_OK "cpus = 1-2-3\n", 3, "cpus", "'1-2-3' is not a cpu number or range"},
        {PORT_OK "cpus = 0-99999999999999999999999\n", 3, "cpus", "out of range"},

        /* cross-key checks at the end of a port */
        {"[port p]\nqueues = 2\n", 1, "socket", "required unless fd_name is given"},
        {"[port p]\n[port q]\nsocket = /q\n", 1, "socket", "required unless fd_name"},
        {"[port p]\nfd_name = p\nmode = client\n", 2, "fd_name", "not valid with mode = client"},
        {"[port p]\nsocket = /s\nmode = client\nsocket_mode = 0660\n", 4, "socket_mode",
         "not valid with mode = client"},
        {"[port p]\nsocket = /s\nmode = client\nsocket_owner = a:b\n", 4, "socket_owner",
         "not valid with mode = client"},
        {"[port p]\nsocket = /s\nbackend = tap\n", 1, "ifname", "required with backend = tap"},
        {"[port p]\nsocket = /s\nbackend = rawsock\n", 1, "ifname", "required with backend = rawsock"},
        {"[port p]\nsocket = /s\nbackend = afxdp\n", 1, "ifname", "required with backend = afxdp"},
        {"[port p]\nsocket = /s\nxdp_mode = native\nbackend = tap\nifname = t\n", 3, "xdp_mode",
         "not valid with backend = tap (only for afxdp)"},
        {"[port p]\nsocket = /s\nxdp_mode = auto\nbackend = tap\nifname = t\n", 3, "xdp_mode",
         "not valid with backend = tap"},
        {"[port p]\nsocket = /s\nifname = t\n", 3, "ifname",
         "not valid with backend = loopback (only for tap, rawsock and afxdp)"},
        {"[port p]\nsocket = /s\nbackend = rawsock\nifname = e\nlink_up = yes\n", 5, "link_up",
         "not valid with backend = rawsock (only for tap)"},
        {"[port p]\nsocket = /s\nbackend = null\noffloads = no\n", 4, "offloads", "only for tap, rawsock and afxdp"},
        {"[port p]\nsocket = /s\nbackend = tap\nifname = t\npromisc = yes\n", 5, "promisc", "only for rawsock"},
        {"[port p]\nsocket = /s\nbackend = tap\nifname = t\nqdisc_bypass = no\n", 5, "qdisc_bypass",
         "only for rawsock"},
        {"[port p]\nsocket = /s\nbackend = rawsock\nifname = e\nxsks_map = /sys/fs/bpf/m\n", 5, "xsks_map",
         "only for afxdp"},
        {"[port p]\nsocket = /s\nmtu = 1500\n", 3, "mtu", "not valid with backend = loopback"},
        {"[port p]\nsocket = /s\nrate = 1000\n", 3, "rate", "not valid with backend = loopback (only for null)"},
        {"[port p]\nsocket = /s\nbackend = null\nframe_len = 2000\n", 4, "frame_len",
         "2000 bytes do not fit the MTU (1500; set mtu to at least 1982)"},
        {"[port p]\nsocket = /s\nbackend = null\nframe_len = 59\n", 4, "frame_len", "out of range (60..65535)"},
        {"[port p]\nsocket = /s\nbackend = null\nrate = 100000001\n", 4, "rate",
         "out of range (1..100000000, or 0 for as fast as the guest takes them)"},
        {"[port p]\nsocket = /s\nbackend = afxdp\nifname = e\nzero_copy = yes\nforce_copy = yes\n", 5, "zero_copy",
         "contradicts force_copy"},
        /* the error in an earlier port comes before a syntax error in a later one */
        {"[port p]\nqueues = 2\n[port q\n", 1, "socket", "required"},

        /* robustness */
        {PORT_OK "queues = 2\x7f\n", 3, "", "control character (byte 0x7f)"},
        {PORT_OK "queues = 2\r3\n", 3, "", "control character (byte 0x0d)"},
};

static void test_bad_cases(void **state)
{
        size_t i;

        (void)state;
        for (i = 0; i < ARRAY_SIZE(bad_cases); i++) {
                const struct bad_case *c = &bad_cases[i];
                struct config cfg, before;
                struct config_error err;
                char buf[512];
                int r;

                memset(&cfg, 0xa5, sizeof(cfg));
                before = cfg;
                r = parse_str(c->text, &cfg, &err);
                config_error_format(&err, buf, sizeof(buf));
                if (r != -EINVAL || err.line != c->line || strcmp(err.key, c->key) != 0 || !strstr(err.msg, c->msg))
                        fail_msg("bad case %zu: r=%d, got '%s', expected line %u key '%s' msg containing '%s'\n"
                                 "--- input ---\n%s",
                                 i, r, buf, c->line, c->key, c->msg, c->text);
                /* A failed parse leaves the result untouched. */
                assert_memory_equal(&cfg, &before, sizeof(cfg));
                assert_string_equal(err.file, "t.conf");
        }
}

/* --- good configurations -------------------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
        struct port_cfg port;
        struct config cfg;

        (void)state;
        config_defaults(&cfg);
        assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
        assert_false(cfg.seccomp);
        assert_int_equal(cfg.nports, 0);
        assert_string_equal(cfg.user, "");
        assert_string_equal(cfg.control_socket, "");

        config_port_defaults(&port);
        assert_int_equal(port.mode, PORT_MODE_SERVER);
        assert_int_equal(port.queues, 1);
        assert_int_equal(port.burst, 32);
        assert_int_equal(port.busy_poll_us, 0);
        assert_int_equal(port.ncpus, 0);
        assert_false(port.has_mac);
        assert_int_equal(port.socket_mode, 0);
        assert_string_equal(port.backend.kind, "loopback");
        assert_true(port.backend.offloads);
        assert_true(port.backend.set_up);
        assert_false(port.backend.promisc);
        assert_int_equal(port.backend.xdp_mode, BACKEND_XDP_AUTO);
        assert_int_equal(port.backend.busy_poll, BACKEND_BUSY_POLL_AUTO);
        assert_int_equal(port.backend.frame_size, 0); /* auto */
        assert_int_equal(port.backend.mtu, 0);
        assert_string_equal(port.backend.xsks_map, "");
}

static void test_minimal(void **state)
{
        struct port_cfg def;
        struct config cfg;

        (void)state;
        expect_ok("[port net0]\nsocket = /run/vhostd/vm1-net0.sock\n", &cfg);
        assert_int_equal(cfg.nports, 1);
        assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
        assert_string_equal(cfg.ports[0].name, "net0");
        assert_string_equal(cfg.ports[0].socket, "/run/vhostd/vm1-net0.sock");
        /* Everything else is the default. */
        config_port_defaults(&def);
        memcpy(def.name, "net0", 5);
        memcpy(def.socket, "/run/vhostd/vm1-net0.sock", sizeof("/run/vhostd/vm1-net0.sock"));
        assert_memory_equal(&cfg.ports[0], &def, sizeof(def));
}

static void test_global(void **state)
{
        struct config cfg;

        (void)state;
        expect_ok("# comment\n; comment\n[global]\nlog_level = debug\nuser = vhostd\ngroup = kvm\n"
                  "control_socket = /run/vhostd/vm1.ctl\nseccomp = yes\n" PORT_OK,
                  &cfg);
        assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
        assert_string_equal(cfg.user, "vhostd");
        assert_string_equal(cfg.group, "kvm");
        assert_string_equal(cfg.control_socket, "/run/vhostd/vm1.ctl");
        assert_true(cfg.seccomp);

        expect_ok("[global]\nlog_level = err\n" PORT_OK, &cfg);
        assert_int_equal(cfg.log_level, LOG_LEVEL_ERR);
        expect_ok("[global]\nlog_level = WARN\n" PORT_OK, &cfg);
        assert_int_equal(cfg.log_level, LOG_LEVEL_WARN);
        /* [global] may come after the ports. */
        expect_ok(PORT_OK "[global]\nlog_level = info\nuser = 1000\n", &cfg);
        assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
        assert_string_equal(cfg.user, "1000");
}

static void test_tap(void **state)
{
        struct config cfg;
        const struct port_cfg *p;

        (void)state;
        expect_ok("[port net0]\n"
                  "socket = /run/vhostd/vm1-net0.sock   # the socket\n"
                  "mode = server ; listening\n"
                  "socket_mode = 0660\n"
                  "socket_owner = libvirt-qemu:kvm\n"
                  "queues = 2\n"
                  "burst = 64\n"
                  "busy_poll_us = 1000000\n"
                  "cpus = 0,1\n"
                  "mac = 52:54:00:12:34:56\n"
                  "backend = tap\n"
                  "ifname = vhost-tap0\n"
                  "mtu = 9000\n"
                  "link_up = no\n"
                  "offloads = off\n",
                  &cfg);
        p = &cfg.ports[0];
        assert_string_equal(p->socket, "/run/vhostd/vm1-net0.sock");
        assert_int_equal(p->mode, PORT_MODE_SERVER);
        assert_int_equal(p->socket_mode, 0660);
        assert_string_equal(p->socket_owner, "libvirt-qemu:kvm");
        assert_int_equal(p->queues, 2);
        assert_int_equal(p->burst, 64);
        assert_int_equal(p->busy_poll_us, 1000000);
        assert_int_equal(p->ncpus, 2);
        assert_int_equal(p->cpus[0], 0);
        assert_int_equal(p->cpus[1], 1);
        assert_true(p->has_mac);
        assert_memory_equal(p->mac, "\x52\x54\x00\x12\x34\x56", 6);
        assert_string_equal(p->backend.kind, "tap");
        assert_string_equal(p->backend.ifname, "vhost-tap0");
        assert_int_equal(p->backend.mtu, 9000);
        assert_false(p->backend.set_up);
        assert_false(p->backend.offloads);
}

static void test_rawsock(void **state)
{
        struct config cfg;
        const struct port_cfg *p;

        (void)state;
        expect_ok("[port up]\nsocket = /s\nbackend = rawsock\nifname = eth1\npromisc = true\n"
                  "qdisc_bypass = 1\noffloads = yes\nmtu = 68\n",
                  &cfg);
        p = &cfg.ports[0];
        assert_string_equal(p->backend.kind, "rawsock");
        assert_string_equal(p->backend.ifname, "eth1");
        assert_true(p->backend.promisc);
        assert_true(p->backend.qdisc_bypass);
        assert_true(p->backend.offloads);
        assert_int_equal(p->backend.mtu, 68);
}

static void test_afxdp(void **state)
{
        struct config cfg;
        const struct port_cfg *p;

        (void)state;
        expect_ok("[port fast]\nsocket = /s\nbackend = AFXDP\nifname = ens1f0\nxdp_mode = skb\nstart_queue = 65535\n"
                  "force_copy = on\nzero_copy = off\nbusy_poll = yes\nframe_size = 2048\n"
                  "xsks_map = /sys/fs/bpf/xsks_map\nmtu = 65535\n",
                  &cfg);
        p = &cfg.ports[0];
        assert_string_equal(p->backend.kind, "afxdp"); /* stored as the canonical name */
        assert_int_equal(p->backend.xdp_mode, BACKEND_XDP_SKB);
        assert_int_equal(p->backend.start_queue, 65535);
        assert_true(p->backend.force_copy);
        assert_false(p->backend.zero_copy);
        assert_int_equal(p->backend.busy_poll, BACKEND_BUSY_POLL_YES);
        assert_int_equal(p->backend.frame_size, 2048);
        assert_string_equal(p->backend.xsks_map, "/sys/fs/bpf/xsks_map");
        assert_int_equal(p->backend.mtu, 65535);

        expect_ok("[port f]\nsocket = /s\nbackend = afxdp\nifname = e\nxdp_mode = native\n", &cfg);
        assert_int_equal(cfg.ports[0].backend.xdp_mode, BACKEND_XDP_NATIVE);
}

static void test_loopback_and_client(void **state)
{
        struct config cfg;

        (void)state;
        expect_ok("[port l]\nsocket = /s\nbackend = loopback\nmode = client\n", &cfg);
        assert_string_equal(cfg.ports[0].backend.kind, "loopback");
        assert_int_equal(cfg.ports[0].mode, PORT_MODE_CLIENT);
        /* Socket activation alone. */
        expect_ok("[port l]\nfd_name = vm1 net0\n", &cfg);
        assert_string_equal(cfg.ports[0].fd_name, "vm1 net0");
        assert_string_equal(cfg.ports[0].socket, "");
}

static void test_multi_port(void **state)
{
        char text[8192];
        struct config cfg;
        struct config_error err;
        size_t used = 0;
        unsigned i;

        (void)state;
        for (i = 0; i < CONFIG_MAX_PORTS; i++)
                used += (size_t)snprintf(text + used, sizeof(text) - used, "[port p%u]\nsocket = /run/p%u.sock\n", i,
                                         i);
        expect_ok(text, &cfg);
        assert_int_equal(cfg.nports, CONFIG_MAX_PORTS);
        assert_string_equal(cfg.ports[15].name, "p15");
        assert_string_equal(cfg.ports[15].socket, "/run/p15.sock");

        /* Port names: the whole allowed alphabet, 31 characters. */
        expect_ok("[port aZ0_.-]\nsocket = /a\n[port 0123456789012345678901234567890]\nsocket = /b\n", &cfg);
        assert_int_equal(cfg.nports, 2);
        assert_string_equal(cfg.ports[1].name, "0123456789012345678901234567890");

        snprintf(text + used, sizeof(text) - used, "[port p16]\nsocket = /run/p16.sock\n");
        assert_int_equal(parse_str(text, &cfg, &err), -EINVAL);
        assert_int_equal(err.line, 2 * CONFIG_MAX_PORTS + 1);
        assert_non_null(strstr(err.msg, "too many ports (at most 16)"));
}

static void test_syntax(void **state)
{
        struct config cfg;

        (void)state;
        /* Spacing, tabs, comments, CRLF, no newline at the end, '=' inside a value. */
        expect_ok("\t[ port  a ]  # the port\r\n\tsocket=/run/a=b.sock\t; comment\r\n  queues\t=\t3  \r\n"
                  "\n\n   \n# trailing comment",
                  &cfg);
        assert_string_equal(cfg.ports[0].name, "a");
        assert_string_equal(cfg.ports[0].socket, "/run/a=b.sock");
        assert_int_equal(cfg.ports[0].queues, 3);
        /* '#' not preceded by whitespace is part of the value. */
        expect_ok("[port a]\nsocket = /run/a#1.sock\nfd_name = a;b#c\n", &cfg);
        assert_string_equal(cfg.ports[0].socket, "/run/a#1.sock");
        assert_string_equal(cfg.ports[0].fd_name, "a;b#c");
        expect_ok("[port a]\nsocket = /run/x\nqueues = 2 #;3\n", &cfg);
        assert_int_equal(cfg.ports[0].queues, 2);
        /* A UTF-8 byte order mark at the start. */
        expect_ok("\xef\xbb\xbf[port a]\nsocket = /s\n", &cfg);
        /* No trailing newline after the last value. */
        expect_ok("[port a]\nsocket = /s\nqueues = 16", &cfg);
        assert_int_equal(cfg.ports[0].queues, 16);
}

static void test_booleans(void **state)
{
        static const struct {
                const char *text;
                bool value;
        } cases[] = {
                {"yes", true},  {"no", false}, {"true", true}, {"false", false}, {"on", true},
                {"off", false}, {"1", true},   {"0", false},   {"YES", true},    {"Off", false},
        };
        char text[128];
        struct config cfg;
        size_t i;

        (void)state;
        for (i = 0; i < ARRAY_SIZE(cases); i++) {
                snprintf(text, sizeof(text), "[global]\nseccomp = %s\n" PORT_OK, cases[i].text);
                expect_ok(text, &cfg);
                assert_int_equal(cfg.seccomp, cases[i].value);
        }
}

static void test_ranges(void **state)
{
        static const struct {
                const char *key;
                const char *value;
                size_t off;
                unsigned expect;
        } cases[] = {
                {"queues", "1", offsetof(struct port_cfg, queues), 1},
                {"queues", "16", offsetof(struct port_cfg, queues), 16},
                {"queues", "0016", offsetof(struct port_cfg, queues), 16},
                {"burst", "1", offsetof(struct port_cfg, burst), 1},
                {"burst", "256", offsetof(struct port_cfg, burst), 256},
                {"busy_poll_us", "0", offsetof(struct port_cfg, busy_poll_us), 0},
                {"busy_poll_us", "1000000", offsetof(struct port_cfg, busy_poll_us), 1000000},
                {"mtu", "0", offsetof(struct port_cfg, backend.mtu), 0},
                {"mtu", "68", offsetof(struct port_cfg, backend.mtu), 68},
                {"mtu", "65535", offsetof(struct port_cfg, backend.mtu), 65535},
                {"start_queue", "0", offsetof(struct port_cfg, backend.start_queue), 0},
                {"frame_size", "4096", offsetof(struct port_cfg, backend.frame_size), 4096},
                {"frame_size", "auto", offsetof(struct port_cfg, backend.frame_size), 0},
                {"rate", "0", offsetof(struct port_cfg, backend.rate), 0},
                {"rate", "100000000", offsetof(struct port_cfg, backend.rate), 100000000},
                {"frame_len", "60", offsetof(struct port_cfg, backend.frame_len), 60},
                {"frame_len", "65535", offsetof(struct port_cfg, backend.frame_len), 65535},
                {"socket_mode", "0", offsetof(struct port_cfg, socket_mode), 0},
                {"socket_mode", "0660", offsetof(struct port_cfg, socket_mode), 0660},
                {"socket_mode", "660", offsetof(struct port_cfg, socket_mode), 0660},
                {"socket_mode", "0777", offsetof(struct port_cfg, socket_mode), 0777},
                {"socket_mode", "00600", offsetof(struct port_cfg, socket_mode), 0600},
        };
        static const struct {
                const char *key;
                const char *value;
        } bad[] = {
                {"queues", "0"},
                {"queues", "17"},
                {"burst", "0"},
                {"burst", "257"},
                {"busy_poll_us", "1000001"},
                {"mtu", "1"},
                {"mtu", "67"},
                {"mtu", "65536"},
                {"start_queue", "65536"},
                {"frame_size", "0"},
                {"frame_size", "8192"},
                {"socket_mode", "01000"},
                {"socket_mode", "8"},
                {"queues", " "},
                {"queues", ""},
        };
        struct port_cfg port;
        char err[256];
        unsigned v;
        size_t i;

        (void)state;
        for (i = 0; i < ARRAY_SIZE(cases); i++) {
                config_port_defaults(&port);
                if (config_port_set(&port, cases[i].key, cases[i].value, err, sizeof(err)) != 0)
                        fail_msg("%s=%s: %s", cases[i].key, cases[i].value, err);
                memcpy(&v, (const char *)&port + cases[i].off, sizeof(v));
                assert_int_equal(v, cases[i].expect);
        }
        for (i = 0; i < ARRAY_SIZE(bad); i++) {
                struct port_cfg before;

                config_port_defaults(&port);
                before = port;
                if (config_port_set(&port, bad[i].key, bad[i].value, err, sizeof(err)) != -EINVAL)
                        fail_msg("%s=%s: accepted", bad[i].key, bad[i].value);
                assert_non_null(strstr(err, bad[i].key));
                assert_memory_equal(&port, &before, sizeof(port));
        }
}

static void test_cpus(void **state)
{
        static const struct {
                const char *value;
                unsigned n;
                int cpus[8];
        } cases[] = {
                {"0", 1, {0}},
                {"0,1", 2, {0, 1}},
                {"2-5", 4, {2, 3, 4, 5}},
                {"7,0-2,4", 5, {7, 0, 1, 2, 4}},
                {" 3 , 1 - 2 ", 3, {3, 1, 2}},
                {"1023", 1, {1023}},
                {"9-9", 1, {9}},
        };
        struct port_cfg port;
        char err[256];
        unsigned j;
        size_t i;

        (void)state;
        for (i = 0; i < ARRAY_SIZE(cases); i++) {
                config_port_defaults(&port);
                if (config_port_set(&port, "cpus", cases[i].value, err, sizeof(err)) != 0)
                        fail_msg("cpus=%s: %s", cases[i].value, err);
                assert_int_equal(port.ncpus, cases[i].n);
                for (j = 0; j < cases[i].n; j++)
                        assert_int_equal(port.cpus[j], cases[i].cpus[j]);
        }
        config_port_defaults(&port);
        assert_int_equal(config_port_set(&port, "cpus", "0-63", err, sizeof(err)), 0);
        assert_int_equal(port.ncpus, CONFIG_MAX_CPUS);
        assert_int_equal(port.cpus[63], 63);
        assert_int_equal(config_port_set(&port, "cpus", "960-1023", err, sizeof(err)), 0);
        assert_int_equal(port.cpus[0], 960);
        /* A failed set leaves the old list. */
        assert_int_equal(config_port_set(&port, "cpus", "1,x", err, sizeof(err)), -EINVAL);
        assert_int_equal(port.ncpus, CONFIG_MAX_CPUS);
        assert_int_equal(port.cpus[0], 960);
        assert_string_equal(err, "key 'cpus': 'x' is not a cpu number or range (expected a list like 0,1,4-7)");
}

static void test_mac(void **state)
{
        struct port_cfg port;
        char err[256];

        (void)state;
        config_port_defaults(&port);
        assert_int_equal(config_port_set(&port, "mac", "02:AB:cd:Ef:00:ff", err, sizeof(err)), 0);
        assert_true(port.has_mac);
        assert_memory_equal(port.mac, "\x02\xab\xcd\xef\x00\xff", 6);
        assert_int_equal(config_port_set(&port, "mac", "ff:ff:ff:ff:ff:ff", err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "multicast"));
        assert_memory_equal(port.mac, "\x02\xab\xcd\xef\x00\xff", 6);
}

/* --- config_port_set / config_port_check: the command-line path ------------------------------------------------ */

static void test_port_set(void **state)
{
        struct port_cfg port;
        char err[256];

        (void)state;
        config_port_defaults(&port);
        assert_int_equal(config_port_set(&port, "socket", "/run/x.sock", err, sizeof(err)), 0);
        assert_int_equal(config_port_set(&port, "backend", "tap", err, sizeof(err)), 0);
        assert_int_equal(config_port_set(&port, "ifname", " tap0 ", err, sizeof(err)), 0);
        assert_string_equal(port.backend.ifname, "tap0");
        assert_int_equal(config_port_check(&port, err, sizeof(err)), 0);
        assert_string_equal(err, "");

        assert_int_equal(config_port_set(&port, "queues", "40", err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "key 'queues': '40' is out of range (1..16)");
        assert_int_equal(config_port_set(&port, "nope", "1", err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "key 'nope': unknown key"));
        assert_int_equal(config_port_set(&port, "user", "x", err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "[global]"));
        assert_int_equal(config_port_set(&port, "mode", "a\nb", err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "control character"));
        /* A tiny or absent error buffer is fine. */
        assert_int_equal(config_port_set(&port, "queues", "40", err, 4), -EINVAL);
        assert_string_equal(err, "key");
        assert_int_equal(config_port_set(&port, "queues", "40", NULL, 0), -EINVAL);

        /* Values are checked against the kind only in config_port_check(), like for a file. */
        assert_int_equal(config_port_set(&port, "xdp_mode", "skb", err, sizeof(err)), 0);
        assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "key 'xdp_mode': not valid with backend = tap (only for afxdp)");
}

static void test_port_check(void **state)
{
        struct port_cfg port;
        char err[256];

        (void)state;
        config_port_defaults(&port);
        assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "key 'socket': required unless fd_name is given (socket activation)");

        config_port_defaults(&port);
        strcpy(port.fd_name, "x");
        assert_int_equal(config_port_check(&port, err, sizeof(err)), 0);

        /* Hand-filled values out of range are caught too. */
        port.queues = 0;
        assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "key 'queues'"));
        port.queues = 1;
        memset(port.backend.kind, 'x', sizeof(port.backend.kind)); /* not even terminated */
        assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "key 'backend': unknown backend"));
        strcpy(port.backend.kind, "rawsock");
        assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "key 'ifname': required with backend = rawsock"));
        strcpy(port.backend.ifname, "eth0");
        assert_int_equal(config_port_check(&port, err, sizeof(err)), 0);
        port.backend.set_up = false;
        assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "key 'link_up': not valid with backend = rawsock (only for tap)");
        port.backend.set_up = true;
        port.backend.frame_size = 2048;
        assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "key 'frame_size'"));
        strcpy(port.backend.kind, "afxdp");
        assert_int_equal(config_port_check(&port, err, sizeof(err)), 0);
        port.backend.frame_size = 1000;
        assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "key 'frame_size'"));
        port.backend.frame_size = 4096;
        port.backend.xdp_mode = (enum backend_xdp_mode)7;
        assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "key 'xdp_mode'"));
}

/* Every range is checked again on a port that did not come through config_port_set(). */
static void test_port_check_ranges(void **state)
{
        static const struct {
                size_t off;
                unsigned value;
                const char *msg;
        } cases[] = {
                {offsetof(struct port_cfg, queues), 17, "key 'queues': 17 is out of range (1..16)"},
                {offsetof(struct port_cfg, burst), 0, "key 'burst': 0 is out of range (1..256)"},
                {offsetof(struct port_cfg, burst), 257, "key 'burst': 257 is out of range (1..256)"},
                {offsetof(struct port_cfg, busy_poll_us), 1000001, "key 'busy_poll_us': 1000001 is out of range"},
                {offsetof(struct port_cfg, ncpus), 65, "key 'cpus': more than 64 cpus"},
                {offsetof(struct port_cfg, socket_mode), 01000, "key 'socket_mode': 1000 is out of range"},
                {offsetof(struct port_cfg, backend.mtu), 67, "key 'mtu': 67 is out of range"},
                {offsetof(struct port_cfg, backend.mtu), 65536, "key 'mtu': 65536 is out of range"},
                {offsetof(struct port_cfg, mode), 2, "key 'mode': not valid (expected server or client)"},
        };
        struct port_cfg port;
        char err[256];
        size_t i;

        (void)state;
        for (i = 0; i < ARRAY_SIZE(cases); i++) {
                config_port_defaults(&port);
                strcpy(port.socket, "/s");
                memcpy((char *)&port + cases[i].off, &cases[i].value, sizeof(unsigned));
                assert_int_equal(config_port_check(&port, err, sizeof(err)), -EINVAL);
                if (!strstr(err, cases[i].msg))
                        fail_msg("case %zu: got '%s', expected '%s'", i, err, cases[i].msg);
        }
}

/* --- errors and robustness ---------------------------------------------------------------------------------- */

static void test_error_format(void **state)
{
        struct config_error err;
        struct config cfg;
        char buf[512], big[1024];

        (void)state;
        assert_int_equal(config_parse(PORT_OK "queues = 40\n", strlen(PORT_OK "queues = 40\n"), "vm1.conf", &cfg, &err),
                         -EINVAL);
        config_error_format(&err, buf, sizeof(buf));
        assert_string_equal(buf, "vm1.conf:3: key 'queues': '40' is out of range (1..16)");

        assert_int_equal(config_parse("[oops]\n", 7, "vm1.conf", &cfg, &err), -EINVAL);
        config_error_format(&err, buf, sizeof(buf));
        assert_string_equal(buf, "vm1.conf:1: unknown section '[oops]' (expected [global] or [port NAME])");

        assert_int_equal(config_parse("", 0, "vm1.conf", &cfg, &err), -EINVAL);
        config_error_format(&err, buf, sizeof(buf));
        assert_string_equal(buf, "vm1.conf: no [port NAME] section (at least one port is required)");

        memset(&err, 0, sizeof(err));
        strcpy(err.file, "f");
        strcpy(err.key, "k");
        strcpy(err.msg, "m");
        config_error_format(&err, buf, sizeof(buf));
        assert_string_equal(buf, "f: key 'k': m");
        config_error_format(&err, buf, 3);
        assert_string_equal(buf, "f:");
        /* An unterminated struct is not read past its fields. */
        memset(&err, 'A', sizeof(err));
        err.line = 7;
        config_error_format(&err, big, sizeof(big));
        assert_int_equal(strlen(big), 255 + strlen(":7: key '") + 63 + strlen("': ") + 255);

        /* Control bytes from the input never reach a message; long values are shortened. */
        assert_int_equal(parse_str(PORT_OK "queues = 1\t\t2\n", &cfg, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "'1??2' is not a number"));
        assert_int_equal(parse_str(PORT_OK
                                   "mode = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
                                   &cfg, &err),
                         -EINVAL);
        assert_non_null(strstr(err.msg, "xxx...' is not valid"));

        /* A NULL error pointer or name is allowed. */
        assert_int_equal(config_parse("x", 1, NULL, &cfg, NULL), -EINVAL);
        assert_int_equal(config_parse("x", 1, NULL, &cfg, &err), -EINVAL);
        assert_string_equal(err.file, "(config)");
        assert_int_equal(config_parse(NULL, 0, "n", &cfg, &err), -EINVAL);
        assert_int_equal(err.line, 0);
}

static void test_robust(void **state)
{
        static const char nul[] = "[port a]\nsocket = /s\0/x\n";
        struct config_error err;
        struct config cfg;
        char *big;
        size_t n;

        (void)state;
        assert_int_equal(config_parse(nul, sizeof(nul) - 1, "t.conf", &cfg, &err), -EINVAL);
        assert_int_equal(err.line, 2);
        assert_non_null(strstr(err.msg, "control character (byte 0x00)"));
        /* A NUL in a comment is an error too: the file is not text. */
        assert_int_equal(config_parse("#\0\n" PORT_OK, 3 + strlen(PORT_OK), "t.conf", &cfg, &err), -EINVAL);
        assert_int_equal(err.line, 1);

        /* Long lines: 4096 bytes are fine, 4097 are not, however long. */
        n = 1 << 20;
        big = malloc(n + 64);
        assert_non_null(big);
        memset(big, '#', n);
        strcpy(big + 4096, "\n" PORT_OK);
        expect_ok(big, &cfg);
        memset(big, '#', n);
        strcpy(big + 4097, "\n" PORT_OK);
        assert_int_equal(parse_str(big, &cfg, &err), -EINVAL);
        assert_int_equal(err.line, 1);
        assert_non_null(strstr(err.msg, "longer than 4096"));
        memset(big, '#', n);
        assert_int_equal(config_parse(big, n, "t.conf", &cfg, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "longer than 4096"));
        /* A CR before the newline does not count. */
        memset(big, '#', n);
        strcpy(big + 4096, "\r\n" PORT_OK);
        expect_ok(big, &cfg);
        free(big);

        /* The input does not need a terminating NUL: only len bytes are read. */
        assert_int_equal(config_parse(PORT_OK "queues = 77", strlen(PORT_OK "queues = 7"), "t.conf", &cfg, &err), 0);
        assert_int_equal(cfg.ports[0].queues, 7);
}

static void write_file(const char *path, const char *data, size_t len)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

static void test_load(void **state)
{
        char dir[] = "/tmp/test_config.XXXXXX", path[64];
        struct config_error err;
        struct config cfg;
        size_t n = 1 << 20, i;
        char *big;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/vm1.conf", dir);

        assert_int_equal(config_load(path, &cfg, &err), -ENOENT);
        assert_int_equal(err.line, 0);
        assert_non_null(strstr(err.msg, "cannot open"));
        assert_string_equal(err.file, path);

        write_file(path, PORT_OK "queues = 40\n", strlen(PORT_OK "queues = 40\n"));
        assert_int_equal(config_load(path, &cfg, &err), -EINVAL);
        assert_int_equal(err.line, 3);
        assert_string_equal(err.key, "queues");

        write_file(path, PORT_OK, strlen(PORT_OK));
        assert_int_equal(config_load(path, &cfg, &err), 0);
        assert_string_equal(cfg.ports[0].socket, "/run/p.sock");

        /* Exactly 1 MiB is accepted, one byte more is not. */
        big = malloc(n + 1);
        assert_non_null(big);
        memcpy(big, PORT_OK, strlen(PORT_OK));
        for (i = strlen(PORT_OK); i < n; i++)
                big[i] = (i % 64 == 63) ? '\n' : '#';
        big[n - 1] = '\n';
        write_file(path, big, n);
        assert_int_equal(config_load(path, &cfg, &err), 0);
        big[n] = '\n';
        write_file(path, big, n + 1);
        assert_int_equal(config_load(path, &cfg, &err), -EFBIG);
        assert_non_null(strstr(err.msg, "larger than"));
        free(big);

        assert_int_equal(config_load(dir, &cfg, &err), -EISDIR);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* Every shipped example parses. VHOSTD_SRCDIR points at the source tree (default: the current directory). */
static void test_examples(void **state)
{
        static const char *const required[] = {"loopback.conf", "tap.conf", "rawsock.conf", "afxdp.conf",
                                               "multi-port.conf"};
        const char *srcdir = getenv("VHOSTD_SRCDIR");
        char dirpath[4096], path[4352], buf[512];
        struct config_error err;
        struct config cfg;
        struct dirent *de;
        unsigned found = 0;
        size_t i;
        DIR *d;

        (void)state;
        snprintf(dirpath, sizeof(dirpath), "%s/config/examples", srcdir && *srcdir ? srcdir : ".");
        for (i = 0; i < ARRAY_SIZE(required); i++) {
                snprintf(path, sizeof(path), "%s/%s", dirpath, required[i]);
                if (access(path, R_OK) != 0)
                        fail_msg("%s is missing (set VHOSTD_SRCDIR to the source tree)", path);
        }
        d = opendir(dirpath);
        assert_non_null(d);
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);

                if (n < 5 || strcmp(de->d_name + n - 5, ".conf") != 0)
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
                if (config_load(path, &cfg, &err) != 0) {
                        config_error_format(&err, buf, sizeof(buf));
                        fail_msg("%s", buf);
                }
                for (i = 0; i < cfg.nports; i++)
                        assert_int_equal(config_port_check(&cfg.ports[i], buf, sizeof(buf)), 0);
                found++;
        }
        closedir(d);
        assert_true(found >= ARRAY_SIZE(required));

        /* Spot checks that the examples say what their comments say. */
        snprintf(path, sizeof(path), "%s/multi-port.conf", dirpath);
        assert_int_equal(config_load(path, &cfg, &err), 0);
        assert_int_equal(cfg.nports, 3);
        assert_string_equal(cfg.ports[1].fd_name, "vm1-data");
        assert_int_equal(cfg.ports[2].mode, PORT_MODE_CLIENT);
        snprintf(path, sizeof(path), "%s/afxdp.conf", dirpath);
        assert_int_equal(config_load(path, &cfg, &err), 0);
        assert_string_equal(cfg.ports[0].backend.kind, "afxdp");
        assert_int_equal(cfg.ports[0].ncpus, 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_minimal),
                cmocka_unit_test(test_global),
                cmocka_unit_test(test_tap),
                cmocka_unit_test(test_rawsock),
                cmocka_unit_test(test_afxdp),
                cmocka_unit_test(test_loopback_and_client),
                cmocka_unit_test(test_multi_port),
                cmocka_unit_test(test_syntax),
                cmocka_unit_test(test_booleans),
                cmocka_unit_test(test_ranges),
                cmocka_unit_test(test_cpus),
                cmocka_unit_test(test_mac),
                cmocka_unit_test(test_port_set),
                cmocka_unit_test(test_port_check),
                cmocka_unit_test(test_port_check_ranges),
                cmocka_unit_test(test_error_format),
                cmocka_unit_test(test_robust),
                cmocka_unit_test(test_load),
                cmocka_unit_test(test_examples),
                cmocka_unit_test(test_bad_cases),
        };

        return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
