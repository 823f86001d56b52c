/* SPDX-License-Identifier: MIT */
/*
 * Private to the vhost-user message code (vu_msg.c, vu_mem.c, vu_vring.c). Handlers run after the
 * dispatcher checked payload size, fd count and vring index from the table; they return 0 (done), 1 (reply
 * in msg) or -errno with dev->err saying why (vu_fail()).
 */
#ifndef DAEMON_VU_HANDLERS_H
#define DAEMON_VU_HANDLERS_H

#include "daemon/vu.h"

int vu_fail(struct vu_dev *dev, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vu_reply_u64(struct vu_msg *msg, uint64_t v);
/* The vring a KICK/CALL/ERR (u64) or a state message names; the index was checked by the dispatcher. */
struct vu_vring *vu_msg_vring(struct vu_dev *dev, const struct vu_msg *msg);
struct worker *vu_vring_worker(struct vu_dev *dev, const struct vu_vring *vr);
/* Takes fd i out of the message so the dispatcher does not close it. */
int vu_take_fd(struct vu_msg *msg, unsigned i);

/* Gives back every popped, uncompleted chain (quiesced); stops every ring (reset). */
void vu_return_all_chains(struct vu_dev *dev);
void vu_stop_all_rings(struct vu_dev *dev);

/* vu_mem.c */
int vu_handle_set_log_base(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_set_log_fd(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_set_mem_table(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_add_mem_reg(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_rem_mem_reg(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_get_max_mem_slots(struct vu_dev *dev, struct vu_msg *msg);

/* vu_vring.c */
int vu_handle_set_vring_num(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_set_vring_addr(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_set_vring_base(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_get_vring_base(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_set_vring_kick(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_set_vring_call(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_set_vring_err(struct vu_dev *dev, struct vu_msg *msg);
int vu_handle_set_vring_enable(struct vu_dev *dev, struct vu_msg *msg);

#endif
