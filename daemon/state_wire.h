/* SPDX-License-Identifier: MIT */
/*
 * The wire format of a state handover (issue #16: `vhostctl upgrade`, systemd's fd store): a versioned blob
 * of typed records, and the fds it refers to, passed beside it with SCM_RIGHTS.
 *
 *   blob   = header record*
 *   header = magic "VHSTATE1" (8) | major u16 | minor u16 | record bytes u32 | nfds u32 | checksum u32
 *   record = type u16 | flags u16 | length u32 | value (length bytes, then padding to 8)
 *
 * Little-endian throughout. A reader refuses another major version; a newer minor may add record types, which
 * an older reader skips unless the record says it must be understood (STATE_REC_REQUIRED). An fd is a u32
 * index into the fds that came with the blob. The checksum (FNV-1a over the records) catches a truncated or
 * mixed-up state file, not an attacker: the socket and the memfd are ours alone.
 */
#ifndef DAEMON_STATE_WIRE_H
#define DAEMON_STATE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef STATE_MAJOR /* tests build a vhostd with another (tests/integration/upgrade.sh) */
#define STATE_MAJOR 1
#endif
#define STATE_MINOR 0
#define STATE_REC_REQUIRED 0x1 /* a reader that does not know this type must refuse the state */
#define STATE_FDS_MAX 4096     /* more than one vhostd instance ever holds */
#define STATE_BLOB_MAX (16u << 20)

struct state_writer {
        uint8_t *buf;
        size_t len, cap;
        int *fds;
        unsigned nfds, fds_cap;
        int err; /* the first failure (-ENOMEM, -E2BIG); every later call does nothing */
};

void state_writer_init(struct state_writer *w);
/* Appends a record; returns 0 or the writer's error. */
int state_put(struct state_writer *w, uint16_t type, uint16_t flags, const void *value, uint32_t len);
int state_put_u64(struct state_writer *w, uint16_t type, uint64_t v);
/* Appends a record holding the index fd will have among the passed fds (the fd itself is not duplicated). */
int state_put_fd(struct state_writer *w, uint16_t type, int fd);
/* Writes the header; the blob is w->buf[0, w->len). Returns 0 or the writer's error. */
int state_finish(struct state_writer *w);
void state_writer_free(struct state_writer *w);

struct state_reader {
        const uint8_t *buf;
        size_t len, off;
        unsigned nfds;
        uint16_t minor;
};

struct state_rec {
        uint16_t type, flags;
        uint32_t len;
        const uint8_t *value;
};

/* Checks the header against len bytes and the nfds that arrived; on failure err says why. */
int state_reader_init(struct state_reader *r, const void *buf, size_t len, unsigned nfds, char *err, size_t errlen);
/* The next record: 1, 0 at the end, -EBADMSG (err says why) when the records do not add up. */
int state_next(struct state_reader *r, struct state_rec *rec, char *err, size_t errlen);
/* Reads a value of the exact size; -EBADMSG when the record's length differs. */
int state_get_u64(const struct state_rec *rec, uint64_t *v);
/* The fd index of an fd record, checked against the fds that arrived. */
int state_get_fd_index(const struct state_reader *r, const struct state_rec *rec, unsigned *index);

/*
 * Sends blob and fds over a connected unix stream socket: the blob's length, the blob, and the fds in
 * batches of at most STATE_FDS_PER_MSG, each batch on its own message. Blocks; 0 or -errno.
 */
#define STATE_FDS_PER_MSG 250 /* the kernel takes at most 253 (SCM_MAX_FD) per message */
int state_send(int sock, const void *blob, size_t len, const int *fds, unsigned nfds);
/*
 * Receives what state_send() sent: *blob (malloc'd) and *fds (malloc'd, close-on-exec, nfds of them).
 * On failure nothing is left open or allocated and err says why.
 */
int state_recv(int sock, uint8_t **blob, size_t *len, int **fds, unsigned *nfds, char *err, size_t errlen);

#endif
