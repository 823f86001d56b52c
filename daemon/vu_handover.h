/* SPDX-License-Identifier: MIT */
/* A connection's state for an upgrade's handover (vu_handover.c). */
#ifndef DAEMON_VU_HANDOVER_H
#define DAEMON_VU_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/handover_state.h"

struct vu_dev;

/*
 * Describes a device whose workers are quiesced and whose chains were given back; the fds in hs stay the device's.
 * -EAGAIN when a message is half received (err says so). live: the workers run (a state for a start after a
 * crash): nothing they own is read, and each ring's base says "find the position in guest memory" (split: the
 * used index; packed: the descriptors' flags), which is where a crash leaves it.
 */
int vu_dev_export(struct vu_dev *dev, struct hs_dev *hs, bool live, char *err, size_t errlen);
/*
 * Makes a new device (from vu_dev_new(), on the handed connection) what hs describes, all but starting its rings.
 * fds: the state's fds by index; those a request takes become -1 (the caller closes what is left).
 */
int vu_dev_import(struct vu_dev *dev, const struct hs_dev *hs, int *fds, char *err, size_t errlen);
/* Then starts the rings that ran (their kicks) and enables them: after the old process let go. */
int vu_dev_import_start(struct vu_dev *dev, const struct hs_dev *hs, int *fds, char *err, size_t errlen);

#endif
