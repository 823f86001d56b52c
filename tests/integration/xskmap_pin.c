// SPDX-License-Identifier: MIT
/*
 * xskmap_pin: plays "your own XDP program" for the afxdp xsks_map test. Creates an XSKMAP, loads a
 * five-instruction XDP program that redirects each frame to the socket registered for its rx queue (and
 * passes it on to the stack when there is none), attaches it to IFNAME and pins the map at PATH (a file
 * on a mounted bpffs). The program stays attached after we exit; deleting the interface removes it.
 *
 *   xskmap_pin IFNAME PATH [skb|native]
 */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

int main(int argc, char **argv)
{
        char log[4096] = "";
        LIBBPF_OPTS(bpf_prog_load_opts, popts, .log_buf = log, .log_size = sizeof(log), .log_level = 1);
        unsigned flags = XDP_FLAGS_SKB_MODE;
        int ifindex, map_fd, prog_fd;

        if (argc < 3 || argc > 4)
                goto usage;
        if (argc == 4 && strcmp(argv[3], "native") == 0)
                flags = XDP_FLAGS_DRV_MODE;
        else if (argc == 4 && strcmp(argv[3], "skb") != 0)
                goto usage;
        ifindex = (int)if_nametoindex(argv[1]);
        if (!ifindex) {
                perror(argv[1]);
                return 1;
        }
        map_fd = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "xsks_map", 4, 4, 64, NULL);
        if (map_fd < 0) {
                fprintf(stderr, "map: %s\n", strerror(errno));
                return 1;
        }
        struct bpf_insn prog[] = {
                /* r2 = ctx->rx_queue_index */
                {.code = BPF_LDX | BPF_MEM | BPF_W,
                 .dst_reg = BPF_REG_2,
                 .src_reg = BPF_REG_1,
                 .off = offsetof(struct xdp_md, rx_queue_index)},
                /* r1 = &xsks_map (two slots) */
                {.code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_1, .src_reg = BPF_PSEUDO_MAP_FD, .imm = map_fd},
                {0},
                /* r3 = XDP_PASS: what happens when the map has no socket for the queue */
                {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = XDP_PASS},
                {.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map},
                {.code = BPF_JMP | BPF_EXIT},
        };
        prog_fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "xsk_redir", "GPL", prog, sizeof(prog) / sizeof(prog[0]), &popts);
        if (prog_fd < 0) {
                fprintf(stderr, "prog: %s\n%s", strerror(errno), log);
                return 1;
        }
        if (bpf_xdp_attach(ifindex, prog_fd, flags, NULL) < 0) {
                fprintf(stderr, "attach to %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        if (bpf_obj_pin(map_fd, argv[2]) < 0) {
                fprintf(stderr, "pin %s: %s\n", argv[2], strerror(errno));
                (void)bpf_xdp_detach(ifindex, flags, NULL);
                return 1;
        }
        printf("xsks_map pinned at %s, program attached to %s (%s mode)\n", argv[2], argv[1],
               flags == XDP_FLAGS_DRV_MODE ? "native" : "skb");
        return 0;
usage:
        fprintf(stderr, "usage: %s IFNAME PATH [skb|native]\n", argv[0]);
        return 2;
}
