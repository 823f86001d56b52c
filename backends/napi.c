// SPDX-License-Identifier: MIT
/*
 * The netdev generic netlink family, the three requests we need of it: which NAPI serves a receive queue
 * (queue-get), a NAPI's settings (napi-get) and setting them (napi-set). The numbers are the kernel's uapi
 * (include/uapi/linux/netdev.h), spelled out here because Debian 12's headers predate them.
 */
#include "backends/napi.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
        NETDEV_CMD_QUEUE_GET = 10,
        NETDEV_CMD_NAPI_GET = 11,
        NETDEV_CMD_NAPI_SET = 14,
};
enum {
        NETDEV_A_QUEUE_ID = 1,
        NETDEV_A_QUEUE_IFINDEX = 2,
        NETDEV_A_QUEUE_TYPE = 3,
        NETDEV_A_QUEUE_NAPI_ID = 4,
};
enum {
        NETDEV_A_NAPI_IFINDEX = 1,
        NETDEV_A_NAPI_ID = 2,
        NETDEV_A_NAPI_DEFER_HARD_IRQS = 5,
        NETDEV_A_NAPI_GRO_FLUSH_TIMEOUT = 6,
        NETDEV_A_NAPI_IRQ_SUSPEND_TIMEOUT = 7,
};
#define NETDEV_QUEUE_TYPE_RX 0u

struct nl_req {
        struct nlmsghdr nh;
        struct genlmsghdr gh;
        char attrs[128];
};

/* What one answer carried: the attributes we read, each with whether it was there. */
struct nl_answer {
        uint16_t family; /* CTRL_ATTR_FAMILY_ID */
        uint32_t napi_id, defer;
        uint64_t gro, suspend;
        bool has_family, has_napi_id, has_defer, has_gro, has_suspend;
};

static void put_attr(struct nl_req *r, uint16_t type, const void *data, uint16_t len)
{
        struct nlattr *a = (struct nlattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

        a->nla_type = type;
        a->nla_len = (uint16_t)(NLA_HDRLEN + len);
        memcpy((char *)a + NLA_HDRLEN, data, len);
        r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static void put_u32(struct nl_req *r, uint16_t type, uint32_t v)
{
        put_attr(r, type, &v, sizeof(v));
}

static void put_u64(struct nl_req *r, uint16_t type, uint64_t v)
{
        put_attr(r, type, &v, sizeof(v));
}

static void req_init(struct nl_req *r, uint16_t family, uint8_t cmd)
{
        memset(r, 0, sizeof(*r));
        r->nh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
        r->nh.nlmsg_type = family;
        r->nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        r->nh.nlmsg_seq = 1;
        r->gh.cmd = cmd;
        r->gh.version = 1;
}

/* An unsigned attribute of 1, 2, 4 or 8 bytes (the kernel's "uint" is 4 or 8). */
static bool get_uint(const struct nlattr *a, uint64_t *v)
{
        const void *p = (const char *)a + NLA_HDRLEN;
        size_t len = (size_t)a->nla_len - NLA_HDRLEN;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;

        switch (len) {
        case 1:
                memcpy(&u8, p, 1);
                *v = u8;
                return true;
        case 2:
                memcpy(&u16, p, 2);
                *v = u16;
                return true;
        case 4:
                memcpy(&u32, p, 4);
                *v = u32;
                return true;
        case 8:
                memcpy(v, p, 8);
                return true;
        default:
                return false;
        }
}

/* The attribute numbers depend on the request: the family's id, a queue's NAPI, a NAPI's settings. */
enum answer_kind { ANS_CTRL, ANS_QUEUE, ANS_NAPI };

static void read_attrs(const struct nlmsghdr *nh, enum answer_kind kind, struct nl_answer *ans)
{
        size_t off = NLMSG_LENGTH(GENL_HDRLEN), end = nh->nlmsg_len;

        while (off + NLA_HDRLEN <= end) {
                const struct nlattr *a = (const struct nlattr *)((const char *)nh + off);
                uint64_t v;

                if (a->nla_len < NLA_HDRLEN || off + a->nla_len > end)
                        return;
                if (get_uint(a, &v)) {
                        unsigned type = a->nla_type & NLA_TYPE_MASK;
                        if (kind == ANS_CTRL && type == CTRL_ATTR_FAMILY_ID) {
                                ans->family = (uint16_t)v;
                                ans->has_family = true;
                        } else if (kind == ANS_QUEUE && type == NETDEV_A_QUEUE_NAPI_ID) {
                                ans->napi_id = (uint32_t)v;
                                ans->has_napi_id = true;
                        } else if (kind == ANS_NAPI && type == NETDEV_A_NAPI_ID) {
                                ans->napi_id = (uint32_t)v;
                                ans->has_napi_id = true;
                        } else if (kind == ANS_NAPI && type == NETDEV_A_NAPI_DEFER_HARD_IRQS) {
                                ans->defer = (uint32_t)v;
                                ans->has_defer = true;
                        } else if (kind == ANS_NAPI && type == NETDEV_A_NAPI_GRO_FLUSH_TIMEOUT) {
                                ans->gro = v;
                                ans->has_gro = true;
                        } else if (kind == ANS_NAPI && type == NETDEV_A_NAPI_IRQ_SUSPEND_TIMEOUT) {
                                ans->suspend = v;
                                ans->has_suspend = true;
                        }
                }
                off += NLA_ALIGN(a->nla_len);
        }
}

/*
 * Sends r and reads its answers up to the kernel's ack (or a dump's end) into ans[0..max-1], one per message;
 * *count: how many came. 0, or the kernel's error.
 */
static int talk_many(int fd, struct nl_req *r, enum answer_kind kind, struct nl_answer *ans, unsigned max,
                     unsigned *count)
{
        char buf[8192] __attribute__((aligned(4)));
        struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};

        *count = 0;
        if (sendto(fd, r, r->nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
                return -errno;
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                size_t left;

                if (n < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                left = (size_t)n;
                for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
                        if (nh->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA(nh);
                                return nh->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) ? e->error : -EPROTO;
                        }
                        if (nh->nlmsg_type == NLMSG_DONE)
                                return 0;
                        if (*count < max) {
                                memset(&ans[*count], 0, sizeof(ans[*count]));
                                read_attrs(nh, kind, &ans[(*count)++]);
                        }
                }
        }
}

static int talk(int fd, struct nl_req *r, enum answer_kind kind, struct nl_answer *ans)
{
        unsigned count;
        int err = talk_many(fd, r, kind, ans, 1, &count);

        if (!count)
                memset(ans, 0, sizeof(*ans));
        return err;
}

/* A netlink socket with the netdev family's id; -EOPNOTSUPP where the kernel has no such family. */
static int open_netdev(uint16_t *family)
{
        struct timeval tv = {.tv_sec = 2};
        struct nl_answer ans;
        struct nl_req r;
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC), err;

        if (fd < 0)
                return -errno;
        /* The kernel answers at once; a bound on the wait all the same, as the caller may hold up a start. */
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        req_init(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
        put_attr(&r, CTRL_ATTR_FAMILY_NAME, "netdev", sizeof("netdev"));
        err = talk(fd, &r, ANS_CTRL, &ans);
        if (err == 0 && !ans.has_family)
                err = -EOPNOTSUPP;
        if (err < 0) {
                close(fd);
                return err == -ENOENT ? -EOPNOTSUPP : err;
        }
        *family = ans.family;
        return fd;
}

/* A netlink socket, and r made ready for command cmd of the netdev family (its id in r's header). */
static int netdev_request(struct nl_req *r, uint8_t cmd)
{
        uint16_t family = 0;
        int fd = open_netdev(&family);

        if (fd >= 0)
                req_init(r, family, cmd);
        return fd;
}

/* A NAPI's settings from napi-get's answer; -EOPNOTSUPP where it has none (Linux < 6.13). */
static int conf_of(const struct nl_answer *ans, struct napi_conf *ret)
{
        if (!(ans->has_napi_id && ans->has_defer && ans->has_gro && ans->has_suspend))
                return -EOPNOTSUPP;
        *ret = (struct napi_conf){.id = ans->napi_id,
                                  .defer_hard_irqs = ans->defer,
                                  .gro_flush_timeout_ns = ans->gro,
                                  .irq_suspend_timeout_ns = ans->suspend};
        return 0;
}

int napi_conf_list(int ifindex, struct napi_conf *out, unsigned max)
{
        struct nl_answer ans[NAPI_LIST_MAX];
        struct nl_req r;
        unsigned count = 0, n = 0;
        int fd = netdev_request(&r, NETDEV_CMD_NAPI_GET), err;

        if (fd < 0)
                return fd;
        r.nh.nlmsg_flags |= NLM_F_DUMP;
        put_u32(&r, NETDEV_A_NAPI_IFINDEX, (uint32_t)ifindex);
        err = talk_many(fd, &r, ANS_NAPI, ans, max < NAPI_LIST_MAX ? max : NAPI_LIST_MAX, &count);
        close(fd);
        for (unsigned i = 0; err == 0 && i < count; i++)
                err = conf_of(&ans[i], &out[n++]);
        if (err < 0)
                return err == -EINVAL ? -EOPNOTSUPP : err;
        return (int)n;
}

int napi_conf_get(int ifindex, unsigned queue, struct napi_conf *ret)
{
        struct nl_answer ans;
        struct nl_req r;
        int fd = netdev_request(&r, NETDEV_CMD_QUEUE_GET), err;

        if (fd < 0)
                return fd;
        put_u32(&r, NETDEV_A_QUEUE_IFINDEX, (uint32_t)ifindex);
        put_u32(&r, NETDEV_A_QUEUE_TYPE, NETDEV_QUEUE_TYPE_RX);
        put_u32(&r, NETDEV_A_QUEUE_ID, queue);
        err = talk(fd, &r, ANS_QUEUE, &ans);
        if (err == 0 && !ans.has_napi_id)
                err = -ENOENT;
        if (err == 0) {
                ret->id = ans.napi_id;
                req_init(&r, r.nh.nlmsg_type, NETDEV_CMD_NAPI_GET); /* the same family */
                put_u32(&r, NETDEV_A_NAPI_ID, ret->id);
                err = talk(fd, &r, ANS_NAPI, &ans);
        }
        if (err == 0)
                err = conf_of(&ans, ret);
        close(fd);
        return err == -EINVAL ? -EOPNOTSUPP : err; /* a kernel that knows no such command or attribute */
}

int napi_conf_set(const struct napi_conf *c)
{
        struct nl_answer ans;
        struct nl_req r;
        int fd = netdev_request(&r, NETDEV_CMD_NAPI_SET), err;

        if (fd < 0)
                return fd;
        put_u32(&r, NETDEV_A_NAPI_ID, c->id);
        put_u32(&r, NETDEV_A_NAPI_DEFER_HARD_IRQS, c->defer_hard_irqs);
        put_u64(&r, NETDEV_A_NAPI_GRO_FLUSH_TIMEOUT, c->gro_flush_timeout_ns);
        put_u64(&r, NETDEV_A_NAPI_IRQ_SUSPEND_TIMEOUT, c->irq_suspend_timeout_ns);
        err = talk(fd, &r, ANS_NAPI, &ans);
        close(fd);
        return err;
}

/*
 * The restorer runs as a fresh image of our own program (exec), so it inherits no mapping of ours: a mapped
 * AF_XDP or packet ring would keep its socket alive, receiving. Its arguments are the settings to restore, which
 * also shows them in ps.
 */
int napi_restorer_start(struct napi_restorer *r, const struct napi_conf *saved, unsigned n)
{
        char args[NAPI_LIST_MAX][80], *argv[NAPI_LIST_MAX + 3];
        unsigned argc = 0;
        int p[2];
        pid_t child;

        r->fd = -1;
        if (n > NAPI_LIST_MAX)
                return -E2BIG;
        argv[argc++] = "vhostd-napi";
        argv[argc++] = NAPI_RESTORER_ARG;
        for (unsigned i = 0; i < n; i++) {
                snprintf(args[i], sizeof(args[i]), "%u:%u:%llu:%llu", saved[i].id, saved[i].defer_hard_irqs,
                         (unsigned long long)saved[i].gro_flush_timeout_ns,
                         (unsigned long long)saved[i].irq_suspend_timeout_ns);
                argv[argc++] = args[i];
        }
        argv[argc] = NULL;
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        child = fork();
        if (child == 0) {
                /* fd 3 is the pipe's read end, open across exec; nothing else above stderr is. */
                if (p[0] == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(p[0], 3) < 0)
                        _exit(127);
                (void)close_range(4, ~0u, 0);
                execv("/proc/self/exe", argv);
                _exit(127);
        }
        close(p[0]);
        if (child < 0) {
                int err = -errno;
                close(p[1]);
                return err;
        }
        r->fd = p[1];
        r->pid = child;
        return 0;
}

void napi_restorer_stop(struct napi_restorer *r, bool restore)
{
        if (r->fd < 0)
                return;
        if (!restore)
                (void)!write(r->fd, "k", 1);
        close(r->fd);
        r->fd = -1;
        for (int i = 0; i < 1000; i++) {
                if (waitpid(r->pid, NULL, WNOHANG) != 0)
                        return;
                (void)nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
        }
}
