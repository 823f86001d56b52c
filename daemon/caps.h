/* SPDX-License-Identifier: MIT */
/* What vhostd can do, for --print-capabilities (QEMU's vhost-user back-end conventions), and feature names. */
#ifndef DAEMON_CAPS_H
#define DAEMON_CAPS_H

#include <stdint.h>
#include <stdio.h>

/* "CSUM", "MQ"...; NULL for a bit without a name. */
const char *virtio_feature_name(unsigned bit);
const char *vu_protocol_feature_name(unsigned bit);

/* Prints the capabilities as one JSON document; opens no port and needs no privilege. */
int caps_print(FILE *f, const char *version);

#endif
