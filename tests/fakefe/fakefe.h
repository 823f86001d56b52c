/* SPDX-License-Identifier: MIT */
/*
 * fakefe: a small vhost-user front-end (it plays QEMU) and virtio-net driver (it plays the guest), used by the
 * integration tests, fuzz seeds and benchmarks to drive a real vhostd process.
 *
 * Theory of operation
 * - Guest RAM (struct fe_mem) is 1..FE_MEM_MAX regions. Each is a memfd (named "fakefe-ram", so it shows up in
 *   /proc/PID/maps of whoever maps it), mmapped shared here, with a guest-physical base (gpa) and a made-up
 *   front-end virtual address (uva) that differs from the gpa and from our real pointer, as QEMU's would.
 *   Descriptors carry gpas; SET_VRING_ADDR carries uvas; the back-end must translate both.
 * - A connection (struct fe) is one vhost-user socket. Raw senders (fe_send, fe_send_raw) let tests craft any
 *   message; typed helpers (fe_set_vring_num...) send well-formed ones. Once REPLY_ACK is negotiated the typed
 *   helpers set NEED_REPLY and wait for the ack (fe->no_need_reply turns that off).
 * - A ring (struct fe_ring) is the guest driver's view of one virtqueue, split or packed (r->packed, chosen at
 *   fe_ring_init_layout(); fe_setup() takes the layout VIRTIO_F_RING_PACKED negotiated), with a kick eventfd (we
 *   write), a call eventfd (the back-end writes) and an err eventfd. Split: desc/avail/used in guest RAM. Packed:
 *   one descriptor ring both sides write (at desc_gpa), the driver event area (avail_gpa) and the device event area
 *   (used_gpa); avail_idx and last_used are then ring slots with a wrap counter each (avail_wrap, used_wrap), and
 *   a chain's "head" is its buffer id. Each head h owns a data area of buf_size bytes at area_gpa + h * buf_size;
 *   every chain posted through the library keeps its bytes contiguous in the area of its head, split across
 *   descriptors (or an indirect table) as asked. Posting, notifying, waiting and receiving are the same calls for
 *   both layouts. Raw access (split: r->desc, r->avail, r->used, fe_ring_desc_get, fe_ring_publish; packed:
 *   fe_ring_post_raw; both: fe_ring_used_raw) lets tests craft loops, bad addresses, huge lengths, nested
 *   indirect tables, buffer ids and wrap-counter lies...
 * - Vring index convention (virtio-net): queue pair i has rx ring 2i (device writes) and tx ring 2i+1.
 * - Frames (fe_frame_build/fe_frame_verify) carry a sequence number and an FNV-1a checksum of their payload.
 * - Dirty log (live migration): a log memfd (struct fe_log) in QEMU's format, SET_LOG_BASE/SET_LOG_FD, rings
 *   announced with VU_VRING_F_LOG, and a check that every page the back-end changed is marked in it: snapshot
 *   guest RAM before and after (fe_mem_snapshot), compare page by page (fe_log_unlogged). What the guest driver
 *   (this library) writes is tracked apart (fe_mem_track), as KVM tracks the guest's own writes for QEMU. Each used
 *   ring and each data area starts on a page of its own, so the device's pages and the driver's never mix.
 * - Process helpers spawn and stop the daemon and count its fds, threads and mappings from /proc.
 *
 * Conventions: functions return >= 0 on success and a negative errno on failure; nothing here logs, except that
 * FAKEFE_TRACE=1 in the environment prints every message sent and received to stderr. All fds are CLOEXEC.
 * Not thread-safe: one thread per struct fe (a ring may be used by one other thread once fe_setup returned).
 * Timeouts are in milliseconds; a negative timeout waits forever.
 */
#ifndef TESTS_FAKEFE_FAKEFE_H
#define TESTS_FAKEFE_FAKEFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backends/virtio_net.h"
#include "daemon/vu_proto.h"
#include "vring/virtio.h"

/* ------------------------------------------------------------------------------------------------------------ */
/* Guest RAM                                                                                                      */

#define FE_MEM_MAX 509           /* regions in one struct fe_mem: QEMU's slot limit (SET_MEM_TABLE takes 8) */
#define FE_MEM_NAME "fakefe-ram" /* memfd name: /proc/PID/maps shows "/memfd:fakefe-ram (deleted)" */

/* Back the region with MFD_HUGETLB (size must be a multiple of 2 MiB). */
#define FE_MEM_HUGETLB 0x1u
/* Use the previous region's memfd, right after it (QEMU does this: one fd for all RAM, regions at mmap_offsets). */
#define FE_MEM_SHARE_FD 0x2u

/**
 * struct fe_region - one guest RAM region.
 * @fd: the memfd sent to the back-end (shared with the previous region under FE_MEM_SHARE_FD).
 * @owns_fd: whether fe_mem_done() closes @fd.
 * @ptr: where the region is mapped here (@size bytes).
 * @gpa: guest-physical base.
 * @size: bytes.
 * @uva: the front-end virtual address we claim for @gpa (never equal to @gpa or @ptr). Tests may change it
 *       before announcing the region.
 * @mmap_offset: offset of the region in @fd, as sent in the message.
 * @used: bump allocator: bytes handed out from the start of the region.
 */
struct fe_region {
        int fd;
        bool owns_fd;
        uint8_t *ptr;
        uint64_t gpa;
        uint64_t size;
        uint64_t uva;
        uint64_t mmap_offset;
        uint64_t used;
};

/**
 * struct fe_mem - guest RAM.
 * @regions: the regions, in the order they were added.
 * @nregions: how many.
 * @guest_dirty: pages the guest driver (this library) wrote since fe_mem_track(), one bit per 4 KiB page of
 *               gpa as in the dirty log; NULL when not tracking.
 * @guest_dirty_size: its bytes.
 */
struct fe_mem {
        struct fe_region regions[FE_MEM_MAX];
        unsigned nregions;
        uint8_t *guest_dirty;
        uint64_t guest_dirty_size;
};

/**
 * fe_mem_init() - empty guest RAM.
 * @mem: to initialise.
 */
void fe_mem_init(struct fe_mem *mem);

/**
 * fe_mem_add_region() - add a region backed by a new (or the previous, FE_MEM_SHARE_FD) memfd.
 * @mem: guest RAM.
 * @gpa: guest-physical base; must not overlap another region.
 * @size: bytes, a multiple of the page size (2 MiB with FE_MEM_HUGETLB).
 * @flags: FE_MEM_HUGETLB, FE_MEM_SHARE_FD.
 *
 * Return: the region's index, -E2BIG when full, -EINVAL on a bad gpa/size/overlap, or the memfd/mmap error.
 */
int fe_mem_add_region(struct fe_mem *mem, uint64_t gpa, uint64_t size, unsigned flags);

/**
 * fe_mem_done() - unmap every region and close the fds. NULL-safe; leaves @mem empty.
 * @mem: guest RAM.
 */
void fe_mem_done(struct fe_mem *mem);

/**
 * fe_mem_ptr() - the test's pointer to guest memory.
 * @mem: guest RAM.
 * @gpa: guest-physical address.
 * @len: bytes that must all lie in the same region.
 *
 * Return: the pointer, or NULL when [@gpa, @gpa + @len) is not inside one region.
 */
void *fe_mem_ptr(const struct fe_mem *mem, uint64_t gpa, uint64_t len);

/**
 * fe_mem_uva() - the front-end virtual address of a guest-physical address.
 * @mem: guest RAM.
 * @gpa: guest-physical address, inside a region.
 *
 * Return: the uva, or 0 when @gpa is not in a region (0 is never a valid uva here).
 */
uint64_t fe_mem_uva(const struct fe_mem *mem, uint64_t gpa);

/**
 * fe_mem_alloc() - bump-allocate guest memory (never freed before fe_mem_done()).
 * @mem: guest RAM.
 * @region: region index, or -1 for the first region with room.
 * @size: bytes (> 0).
 * @align: power of two.
 * @ret_gpa: the allocation's guest-physical address.
 *
 * Return: 0 or -ENOMEM (or -EINVAL).
 */
int fe_mem_alloc(struct fe_mem *mem, int region, uint64_t size, uint64_t align, uint64_t *ret_gpa);

/**
 * fe_mem_track() - start (again) recording the pages the guest driver writes: descriptors, avail rings and
 * used_event, indirect tables, tx buffers (the library's ring code records them; raw writes by a test are its own
 * business, see fe_mem_guest_wrote()). Clears what was recorded. Call it after the regions are added: the record
 * covers gpa up to the end of the highest region then.
 * @mem: guest RAM.
 *
 * Return: 0, -ENOMEM, or -E2BIG when the highest region ends above 2^43 (the record would be over 256 MiB).
 */
int fe_mem_track(struct fe_mem *mem);

/**
 * fe_mem_guest_wrote() - record that the guest wrote [@gpa, @gpa + @len) (a no-op when not tracking).
 * @mem: guest RAM.
 * @gpa: guest-physical address.
 * @len: bytes.
 */
void fe_mem_guest_wrote(struct fe_mem *mem, uint64_t gpa, uint64_t len);

/**
 * struct fe_snapshot - a copy of guest RAM.
 * @nregions: regions copied.
 * @gpa: per region, its guest-physical base.
 * @size: per region, its bytes.
 * @data: per region, the copy.
 */
struct fe_snapshot {
        unsigned nregions;
        uint64_t *gpa;
        uint64_t *size;
        uint8_t **data;
};

/**
 * fe_mem_snapshot() - copy every region of guest RAM.
 * @mem: guest RAM.
 * @ret: the copy (free it with fe_snapshot_done()).
 *
 * A back-end writing meanwhile may be caught half-way; take the snapshot that ends an interval after the
 * back-end stopped writing (GET_VRING_BASE, or traffic drained and fe_sync()).
 *
 * Return: 0 or -ENOMEM.
 */
int fe_mem_snapshot(const struct fe_mem *mem, struct fe_snapshot *ret);

/**
 * fe_snapshot_done() - free a snapshot. NULL-safe, idempotent.
 * @s: the snapshot.
 */
void fe_snapshot_done(struct fe_snapshot *s);

/**
 * fe_mem_region_msg() - the wire description of a region (for SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG).
 * @mem: guest RAM.
 * @idx: region index.
 * @ret: filled with gpa, size, uva, mmap_offset.
 */
void fe_mem_region_msg(const struct fe_mem *mem, unsigned idx, struct vu_mem_region *ret);

/* ------------------------------------------------------------------------------------------------------------ */
/* Rings (guest driver side)                                                                                      */

#define FE_INDIRECT_MAX 64 /* entries of the indirect table each head owns */

/**
 * struct fe_chain - what the library remembers of a chain it posted (indexed by head).
 * @cap: bytes of the chain (all its descriptors).
 * @ndesc: ring descriptors it uses (1 for an indirect chain).
 * @inflight: posted and not yet returned through the used ring.
 * @write: device-writable (rx) chain.
 */
struct fe_chain {
        uint32_t cap;
        uint16_t ndesc;
        bool inflight;
        bool write;
};

/**
 * struct fe_ring - the driver side of one virtqueue, split or packed.
 * @mem: guest RAM the ring lives in.
 * @index: vring index (rx 2i, tx 2i+1).
 * @num: ring size (split: a power of two; packed: any of 1..VIRTQ_MAX_SIZE).
 * @packed: the packed layout (VIRTIO_F_RING_PACKED).
 * @desc_gpa: descriptor table, or packed descriptor ring (16-byte aligned).
 * @avail_gpa: available ring (then used_event), or packed driver event area.
 * @used_gpa: used ring (then avail_event), or packed device event area, alone on its pages (page-aligned, padded to
 *            a page).
 * @desc: @desc_gpa mapped here (split).
 * @avail: @avail_gpa mapped here (split).
 * @used: @used_gpa mapped here (split).
 * @pdesc: @desc_gpa mapped here (packed).
 * @driver_event: @avail_gpa mapped here (packed): our wish about the device's calls.
 * @device_event: @used_gpa mapped here (packed): the device's wish about our kicks.
 * @area_gpa: @num data areas of @buf_size bytes, one per head (page-aligned, padded to a page).
 * @buf_size: bytes in each data area: the largest chain the library posts.
 * @ind_gpa: @num indirect tables of FE_INDIRECT_MAX descriptors, one per head.
 * @kick_fd: eventfd we write to kick (CLOEXEC|NONBLOCK), or -1.
 * @call_fd: eventfd the back-end writes to interrupt us, or -1 (then waits poll the used ring).
 * @err_fd: eventfd the back-end writes on ring errors, or -1.
 * @event_idx: VIRTIO_RING_F_EVENT_IDX: write used_event, read avail_event (packed: RING_EVENT_FLAGS_DESC with an
 *             offset and wrap, both ways).
 * @no_interrupt: ask the device for no calls at all (split: VRING_AVAIL_F_NO_INTERRUPT, which only counts without
 *                EVENT_IDX; packed: RING_EVENT_FLAGS_DISABLE); waits then poll the ring.
 * @mrg_rxbuf: VIRTIO_NET_F_MRG_RXBUF: rx frames may span num_buffers used entries.
 * @hdr_len: virtio-net header bytes: 12 (VERSION_1 or MRG_RXBUF) or 10.
 * @avail_idx: next avail index we publish (split: shadow of avail->idx; packed: next ring slot we write).
 * @last_used: next used entry we consume (packed: the ring slot the device writes it at).
 * @avail_wrap: packed: the driver's wrap counter (starts at 1).
 * @used_wrap: packed: the wrap counter of the device's used descriptors at @last_used (starts at 1).
 * @kicked_idx: avail_idx at the last notification decision (split, for EVENT_IDX).
 * @num_added: packed: ring slots made available since the last notification decision.
 * @rx_buf_size: size fe_ring_fill_rx() and recycling post; 0 disables recycling in fe_ring_recv().
 * @free_head: first free descriptor (packed: first free buffer id).
 * @num_free: free descriptors (packed: free ring slots; a free buffer id exists whenever a slot does).
 * @next: host copy of the free list and of chain links (the guest-visible desc table may be scribbled on); packed:
 *        the free list of buffer ids.
 * @chains: per head (packed: per buffer id; ndesc is the ring slots the chain takes).
 * @kicks: kicks written.
 * @kicks_suppressed: notification decisions the device's suppression answered with no kick.
 * @calls: call eventfd wakeups seen.
 */
struct fe_ring {
        struct fe_mem *mem;
        unsigned index;
        uint16_t num;
        bool packed;
        uint64_t desc_gpa;
        uint64_t avail_gpa;
        uint64_t used_gpa;
        struct vring_desc *desc;
        struct vring_avail *avail;
        struct vring_used *used;
        struct vring_packed_desc *pdesc;
        struct vring_packed_desc_event *driver_event;
        struct vring_packed_desc_event *device_event;
        uint64_t area_gpa;
        uint32_t buf_size;
        uint64_t ind_gpa;
        int kick_fd;
        int call_fd;
        int err_fd;
        bool event_idx;
        bool no_interrupt;
        bool mrg_rxbuf;
        unsigned hdr_len;
        uint16_t avail_idx;
        uint16_t last_used;
        bool avail_wrap;
        bool used_wrap;
        uint16_t kicked_idx;
        uint16_t num_added;
        uint32_t rx_buf_size;
        uint16_t free_head;
        uint16_t num_free;
        uint16_t *next;
        struct fe_chain *chains;
        uint64_t kicks;
        uint64_t kicks_suppressed;
        uint64_t calls;
};

/**
 * struct fe_post - how to lay a chain out in descriptors.
 * @seg: descriptor lengths (they must add up to the chain's bytes, zero lengths allowed), or NULL to split
 *       evenly: tx puts the virtio-net header alone in the first descriptor and splits the frame over the others,
 *       rx splits the buffer evenly.
 * @nseg: descriptors in the chain; 0 means 1.
 * @indirect: put the chain in the head's indirect table (at most FE_INDIRECT_MAX entries) and use one ring
 *            descriptor with VRING_DESC_F_INDIRECT.
 */
struct fe_post {
        const uint32_t *seg;
        unsigned nseg;
        bool indirect;
};

enum fe_layout {
        FE_SPLIT,
        FE_PACKED,
};

/**
 * fe_ring_init_layout() - lay a ring out in guest RAM and create its eventfds.
 * @r: the ring.
 * @mem: guest RAM.
 * @index: vring index.
 * @num: ring size: split a power of two <= VIRTQ_MAX_SIZE, packed any of 1..VIRTQ_MAX_SIZE.
 * @buf_size: bytes of each head's data area (> 0).
 * @ring_region: region for desc/avail/used/indirect tables, -1 for any.
 * @data_region: region for the data areas, -1 for any.
 * @layout: FE_SPLIT or FE_PACKED.
 *
 * Defaults: event_idx false, mrg_rxbuf false, hdr_len 12, rx_buf_size = buf_size; set the fields to change them.
 *
 * Return: 0, -EINVAL, -ENOMEM, or the eventfd error.
 */
int fe_ring_init_layout(struct fe_ring *r, struct fe_mem *mem, unsigned index, unsigned num, uint32_t buf_size,
                        int ring_region, int data_region, enum fe_layout layout);

/**
 * fe_ring_init() - fe_ring_init_layout() of a split ring.
 * @r: the ring.
 * @mem: guest RAM.
 * @index: vring index.
 * @num: ring size, a power of two <= VIRTQ_MAX_SIZE.
 * @buf_size: bytes of each head's data area (> 0).
 * @ring_region: region for desc/avail/used/indirect tables, -1 for any.
 * @data_region: region for the data areas, -1 for any.
 *
 * Return: as fe_ring_init_layout().
 */
int fe_ring_init(struct fe_ring *r, struct fe_mem *mem, unsigned index, unsigned num, uint32_t buf_size,
                 int ring_region, int data_region);

/**
 * fe_ring_base() - the base SET_VRING_BASE sends for where the ring is now: split the avail index; packed (the
 * vhost-user encoding) bits 0-14 the next avail slot, bit 15 its wrap counter, bits 16-30 the next used slot (the
 * device's, as far as we consumed it), bit 31 its wrap counter.
 * @r: the ring.
 *
 * Return: the base.
 */
uint32_t fe_ring_base(const struct fe_ring *r);

/**
 * fe_ring_done() - close the eventfds and free host memory (guest RAM stays allocated). NULL-safe, idempotent.
 * @r: the ring.
 */
void fe_ring_done(struct fe_ring *r);

/**
 * fe_ring_area() - a head's data area.
 * @r: the ring.
 * @head: descriptor index < num.
 * @ret_gpa: its guest-physical address, if non-NULL.
 *
 * Return: the test's pointer to it (buf_size bytes).
 */
void *fe_ring_area(const struct fe_ring *r, uint16_t head, uint64_t *ret_gpa);

/**
 * fe_ring_post_tx() - post a frame for transmission: virtio-net header then @frame, in the head's data area.
 * @r: a tx ring.
 * @frame: Ethernet frame.
 * @len: its bytes; hdr_len + @len must fit in buf_size.
 * @hdr: header to send, or NULL for all zero (num_buffers is always written as 0).
 * @how: layout, or NULL for one descriptor.
 *
 * Publishes the head in the avail ring; does not kick (see fe_ring_notify()).
 *
 * Return: the head, -ENOSPC when out of descriptors, -EMSGSIZE when too big, -EINVAL on a bad layout.
 */
int fe_ring_post_tx(struct fe_ring *r, const void *frame, size_t len, const struct virtio_net_hdr *hdr,
                    const struct fe_post *how);

/**
 * fe_ring_post_rx() - post one device-writable buffer of @size bytes (<= buf_size).
 * @r: an rx ring.
 * @size: bytes, header included.
 * @how: layout, or NULL for one descriptor.
 *
 * Return: the head, -ENOSPC, -EMSGSIZE or -EINVAL. Does not kick.
 */
int fe_ring_post_rx(struct fe_ring *r, uint32_t size, const struct fe_post *how);

/**
 * fe_ring_fill_rx() - post rx_buf_size buffers (one descriptor each) until the ring is full.
 * @r: an rx ring.
 *
 * Return: buffers posted. Does not kick.
 */
int fe_ring_fill_rx(struct fe_ring *r);

/**
 * fe_ring_kick() - write the kick eventfd, unconditionally. What was made available so far counts as notified
 * (fe_ring_notify() then looks only at what comes after).
 * @r: the ring.
 *
 * Return: 0 or -errno (-EBADF without a kick fd).
 */
int fe_ring_kick(struct fe_ring *r);

/**
 * fe_ring_notify() - kick if the device asked for it (split: avail_event with EVENT_IDX, else used->flags; packed:
 * the device event area, ENABLE / DISABLE / DESC with an offset and wrap under EVENT_IDX).
 * @r: the ring.
 *
 * Return: 1 kicked, 0 not needed, or -errno.
 */
int fe_ring_notify(struct fe_ring *r);

/**
 * fe_ring_arm_call() - tell the device when we want the next call: split with EVENT_IDX used_event = the @min-th
 * pending used entry; packed the driver event area: DISABLE with no_interrupt, else DESC at the slot of the next
 * used entry with EVENT_IDX, else ENABLE. Without EVENT_IDX a split ring's avail->flags follow no_interrupt.
 * @r: the ring.
 * @min: used entries (>= 1) counted from last_used (packed: a call for the next one).
 */
void fe_ring_arm_call(struct fe_ring *r, unsigned min);

/**
 * fe_ring_used_pending() - used entries the device published that we have not consumed.
 * @r: the ring.
 *
 * Return: the count (0..65535; more than num means the device is broken).
 */
unsigned fe_ring_used_pending(const struct fe_ring *r);

/**
 * fe_ring_wait() - wait until at least @min used entries are pending.
 * @r: the ring.
 * @min: entries (>= 1).
 * @timeout_ms: milliseconds, negative for ever.
 *
 * Asks for an interrupt (fe_ring_arm_call()), then sleeps in poll() on the call fd (polls the ring with
 * no_interrupt).
 *
 * Return: entries pending (>= @min), or -ETIMEDOUT.
 */
int fe_ring_wait(struct fe_ring *r, unsigned min, int timeout_ms);

/**
 * fe_ring_reap() - consume every pending used entry of chains the library posted (typically tx completions).
 * @r: the ring.
 *
 * Return: chains completed, or -EPROTO when the device returned an id that is out of range or not in flight
 * (the entry is consumed anyway).
 */
int fe_ring_reap(struct fe_ring *r);

/**
 * struct fe_rx_info - what fe_ring_recv() saw.
 * @hdr: the virtio-net header the device wrote (num_buffers only meaningful with 12-byte headers).
 * @len: frame bytes, header excluded (may exceed the caller's buffer: then it was truncated).
 * @nbufs: used entries the frame took.
 */
struct fe_rx_info {
        struct virtio_net_hdr_mrg hdr;
        size_t len;
        unsigned nbufs;
};

/**
 * fe_ring_recv() - take one received frame off an rx ring.
 * @r: an rx ring.
 * @buf: where the frame (header excluded) is copied.
 * @cap: bytes in @buf.
 * @ret_info: header, frame length, buffers used; may be NULL.
 *
 * Gathers num_buffers used entries with MRG_RXBUF. When rx_buf_size is non-zero the buffers are posted again
 * (and the ring notified if any were).
 *
 * Return: 1 with a frame, 0 when no complete frame is pending, -EPROTO when the device broke the rules (bad id,
 * used len larger than the buffer or smaller than the header, num_buffers 0 or > num).
 */
int fe_ring_recv(struct fe_ring *r, void *buf, size_t cap, struct fe_rx_info *ret_info);

/**
 * fe_ring_recv_wait() - fe_ring_recv(), waiting up to @timeout_ms for a frame.
 * @r: an rx ring.
 * @buf: where the frame is copied.
 * @cap: bytes in @buf.
 * @ret_info: may be NULL.
 * @timeout_ms: milliseconds, negative for ever.
 *
 * Return: 1, -ETIMEDOUT or -EPROTO.
 */
int fe_ring_recv_wait(struct fe_ring *r, void *buf, size_t cap, struct fe_rx_info *ret_info, int timeout_ms);

/**
 * fe_ring_err_pending() - read (and clear) the err eventfd.
 * @r: the ring.
 *
 * Return: the counter (0 if the back-end signalled nothing), or -errno.
 */
int64_t fe_ring_err_pending(struct fe_ring *r);

/* Raw access for crafting. */

/**
 * fe_ring_desc_get() - take a descriptor off the free list (the caller fills r->desc[id] itself). Split only.
 * @r: the ring.
 *
 * Return: the id, or -ENOSPC.
 */
int fe_ring_desc_get(struct fe_ring *r);

/**
 * fe_ring_desc_put() - give a descriptor from fe_ring_desc_get() back.
 * @r: the ring.
 * @id: descriptor id.
 */
void fe_ring_desc_put(struct fe_ring *r, uint16_t id);

/**
 * fe_ring_publish() - append @head to the avail ring and publish the new avail->idx (release).
 * @r: the ring.
 * @head: any value (crafting: out of range heads too).
 */
void fe_ring_publish(struct fe_ring *r, uint16_t head);

/**
 * fe_ring_post_raw() - packed: write @n crafted descriptors at the next avail slots (wrapping) and make them
 * available, the first one's flags last (release). Each descriptor's addr, len, id and flags are written as
 * given, except the AVAIL and USED bits: the library puts the right ones for each slot's lap there, XORed with
 * the AVAIL/USED bits of the given flags (set a bit to lie about it: both bits set is the other lap's wrap). The
 * ring's position moves by @n; nothing is recorded as in flight. Does not kick.
 * @r: a packed ring.
 * @d: descriptors (host byte order).
 * @n: how many, 1..num.
 *
 * Return: the first slot written, or -EINVAL.
 */
int fe_ring_post_raw(struct fe_ring *r, const struct vring_packed_desc *d, unsigned n);

/**
 * fe_ring_used_raw() - consume one used entry without any check or bookkeeping.
 * @r: the ring.
 * @ret: the entry.
 *
 * Return: 1, or 0 when none is pending.
 */
int fe_ring_used_raw(struct fe_ring *r, struct vring_used_elem *ret);

/**
 * fe_ring_used_event() - the used_event slot (after avail->ring[num]).
 * @r: the ring.
 *
 * Return: pointer into guest RAM; NULL for a packed ring.
 */
uint16_t *fe_ring_used_event(const struct fe_ring *r);

/**
 * fe_ring_avail_event() - the avail_event slot (after used->ring[num]).
 * @r: the ring.
 *
 * Return: pointer into guest RAM; NULL for a packed ring.
 */
uint16_t *fe_ring_avail_event(const struct fe_ring *r);

/* ------------------------------------------------------------------------------------------------------------ */
/* Dirty log (live migration)                                                                                     */

/* The protocol's names for the log's bits are daemon/vu_proto.h's: VHOST_F_LOG_ALL, VU_VRING_F_LOG, VU_SET_LOG_*. */
#define FE_LOG_PAGE 4096u        /* one bit of the log per page of gpa */
#define FE_LOG_NAME "fakefe-log" /* memfd name */

/**
 * struct fe_log - the dirty log, as QEMU shares it: a memfd, @size bytes of bitmap at @offset in it. Page p
 * (gpa / 4096) is bit p % 8 of byte p / 8.
 * @fd: the memfd (sent with SET_LOG_BASE), -1 when none.
 * @bits: the bitmap, mapped here.
 * @size: its bytes (mmap_size).
 * @offset: where it starts in @fd (mmap_offset).
 * @map: what mmap returned (from offset 0).
 * @map_len: its length.
 */
struct fe_log {
        int fd;
        uint8_t *bits;
        uint64_t size;
        uint64_t offset;
        uint8_t *map;
        size_t map_len;
};

/**
 * fe_log_size_for() - the log size QEMU sends for this guest RAM: a bit for every page up to the end of the
 * highest region, in whole 64-bit words (vhost_get_log_size()).
 * @mem: guest RAM.
 *
 * Return: bytes (0 without regions).
 */
uint64_t fe_log_size_for(const struct fe_mem *mem);

/**
 * fe_log_init() - create a log: a memfd of @offset + @size bytes, zeroed, mapped here.
 * @log: the log.
 * @size: bytes of bitmap (> 0).
 * @offset: where the bitmap starts in the memfd (QEMU uses 0; others test the back-end's offset handling).
 *
 * Return: 0, -EINVAL, or the memfd/mmap error (@log->fd is -1 then).
 */
int fe_log_init(struct fe_log *log, uint64_t size, uint64_t offset);

/**
 * fe_log_done() - unmap and close. NULL-safe, idempotent; leaves @log->fd -1.
 * @log: the log.
 */
void fe_log_done(struct fe_log *log);

/**
 * fe_log_clear() - clear every bit (as a migration pass that has fetched them does).
 * @log: the log.
 */
void fe_log_clear(struct fe_log *log);

/**
 * fe_log_test() - whether the page of @gpa is marked.
 * @log: the log.
 * @gpa: guest-physical address.
 *
 * Return: true when marked; false when not, or beyond the log.
 */
bool fe_log_test(const struct fe_log *log, uint64_t gpa);

/**
 * fe_log_count() - pages marked.
 * @log: the log.
 *
 * Return: bits set.
 */
uint64_t fe_log_count(const struct fe_log *log);

/**
 * fe_log_unlogged() - pages that changed between two snapshots although nobody said so: not marked in @log and
 * not written by the guest driver (@mem's record, see fe_mem_track()). Any such page would be stale after a
 * migration. Pages beyond the log count as not marked.
 * @log: the dirty log the back-end marked during the interval (cleared at its start).
 * @mem: guest RAM, for the guest's own writes (when tracked).
 * @before: snapshot at the start of the interval.
 * @after: snapshot at its end (same regions).
 * @ret_changed: pages that changed at all, if non-NULL.
 * @ret_first: the gpa of the first unlogged page, if non-NULL and there is one.
 *
 * Return: the number of unlogged changed pages, or -EINVAL when the snapshots' regions differ.
 */
int64_t fe_log_unlogged(const struct fe_log *log, const struct fe_mem *mem, const struct fe_snapshot *before,
                        const struct fe_snapshot *after, uint64_t *ret_changed, uint64_t *ret_first);

/* ------------------------------------------------------------------------------------------------------------ */
/* Connection and messages                                                                                        */

#define FE_MAX_RINGS 64
#define FE_TIMEOUT_MS 5000 /* default reply timeout */

/* What fe_setup() asks for by default (each intersected with what the back-end offers). */
#define FE_FEATURES_DEFAULT                                                                                            \
        (BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_NET_F_MRG_RXBUF) | BIT_ULL(VIRTIO_NET_F_MQ) |                    \
         BIT_ULL(VIRTIO_RING_F_EVENT_IDX) | BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | BIT_ULL(VIRTIO_NET_F_MTU) |         \
         BIT_ULL(VIRTIO_NET_F_MAC) | BIT_ULL(VIRTIO_NET_F_STATUS) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES))
#define FE_PROTOCOL_FEATURES_DEFAULT                                                                                   \
        (BIT_ULL(VU_PROTOCOL_F_MQ) | BIT_ULL(VU_PROTOCOL_F_REPLY_ACK) | BIT_ULL(VU_PROTOCOL_F_MTU) |                   \
         BIT_ULL(VU_PROTOCOL_F_LOG_SHMFD) | BIT_ULL(VU_PROTOCOL_F_CONFIG) | BIT_ULL(VU_PROTOCOL_F_RESET_DEVICE) |      \
         BIT_ULL(VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | BIT_ULL(VU_PROTOCOL_F_STATUS))

/**
 * struct fe - one vhost-user connection, the guest RAM and rings it announced.
 * @sock: the unix stream socket.
 * @timeout_ms: how long typed helpers wait for a reply (FE_TIMEOUT_MS).
 * @features: what GET_FEATURES returned.
 * @acked_features: what SET_FEATURES sent.
 * @protocol_features: what GET_PROTOCOL_FEATURES returned.
 * @acked_protocol_features: what SET_PROTOCOL_FEATURES sent.
 * @queue_num: what GET_QUEUE_NUM returned (0 before).
 * @no_need_reply: do not set NEED_REPLY even with REPLY_ACK negotiated.
 * @last_ack: the last REPLY_ACK value received.
 * @trace: print messages to stderr (set from FAKEFE_TRACE).
 * @mem: guest RAM (fe_setup() creates one if NULL; set it before to use your own).
 * @own_mem: fe_free() frees @mem.
 * @rings: rings set up by fe_setup(), indexed by vring index.
 * @nrings: how many.
 * @log: the dirty log of fe_log_start() and fe_setup_opts.log (fd -1 before); fe_free() frees it.
 * @log_rings: fe_ring_configure() sends SET_VRING_ADDR with VU_VRING_F_LOG and the used ring's gpa.
 */
struct fe {
        int sock;
        int timeout_ms;
        uint64_t features;
        uint64_t acked_features;
        uint64_t protocol_features;
        uint64_t acked_protocol_features;
        uint64_t queue_num;
        bool no_need_reply;
        uint64_t last_ack;
        bool trace;
        struct fe_mem *mem;
        bool own_mem;
        struct fe_ring rings[FE_MAX_RINGS];
        unsigned nrings;
        struct fe_log log;
        bool log_rings;
};

/**
 * fe_new() - wrap a connected socket (e.g. one end of a socketpair) in a struct fe.
 * @sock: the socket; owned by the result on success.
 * @ret: the connection.
 *
 * Return: 0 or -ENOMEM.
 */
int fe_new(int sock, struct fe **ret);

/**
 * fe_connect() - connect to a back-end listening on @path, retrying (ENOENT, ECONNREFUSED) until @timeout_ms.
 * @path: unix socket path.
 * @timeout_ms: milliseconds.
 * @ret: the connection.
 *
 * The connect succeeds once the back-end listens, even if it then refuses the front-end (vhostd closes a second
 * connection to a busy port): the first request then fails with -ECONNRESET or -EPIPE.
 *
 * Return: 0, -ETIMEDOUT, -ENAMETOOLONG or -errno.
 */
int fe_connect(const char *path, int timeout_ms, struct fe **ret);

/**
 * fe_listen() - listen on @path (an existing socket file is removed), for a back-end in client mode.
 * @path: unix socket path.
 * @ret_fd: the listening socket.
 *
 * Return: 0 or -errno.
 */
int fe_listen(const char *path, int *ret_fd);

/**
 * fe_accept() - accept one back-end connection.
 * @listen_fd: from fe_listen().
 * @timeout_ms: milliseconds.
 * @ret: the connection.
 *
 * Return: 0, -ETIMEDOUT or -errno.
 */
int fe_accept(int listen_fd, int timeout_ms, struct fe **ret);

/**
 * fe_free() - close the socket and rings, free the guest RAM if owned. NULL-safe.
 * @fe: the connection.
 *
 * Return: NULL.
 */
struct fe *fe_free(struct fe *fe);

/**
 * fe_disconnect() - close the socket only (rings and RAM stay, e.g. to look at them afterwards).
 * @fe: the connection.
 */
void fe_disconnect(struct fe *fe);

/**
 * fe_send() - send one message as given: header {request, flags, size}, payload, fds (SCM_RIGHTS).
 * @fe: the connection.
 * @request: any value.
 * @flags: sent verbatim (include VU_VERSION yourself).
 * @payload: @size bytes, may be NULL if @size is 0.
 * @size: payload bytes, also written in the header.
 * @fds: file descriptors to pass (not closed), or NULL.
 * @nfds: how many (any number the kernel takes, to test limits).
 *
 * Return: 0 or -errno (-EPIPE/-ECONNRESET when the back-end hung up).
 */
int fe_send(struct fe *fe, uint32_t request, uint32_t flags, const void *payload, size_t size, const int *fds,
            unsigned nfds);

/**
 * fe_send_raw() - send arbitrary bytes (a lying header, a truncated message...) with fds on the first byte.
 * @fe: the connection.
 * @buf: bytes.
 * @len: how many.
 * @fds: file descriptors to pass, or NULL.
 * @nfds: how many.
 *
 * Return: 0 or -errno.
 */
int fe_send_raw(struct fe *fe, const void *buf, size_t len, const int *fds, unsigned nfds);

/**
 * fe_msg_send() - fe_send() on a bare socket (for in-test responders playing the back-end).
 * @sock: socket.
 * @hdr: header, sent verbatim.
 * @payload: hdr->size bytes.
 * @fds: or NULL.
 * @nfds: how many.
 *
 * Return: 0 or -errno.
 */
int fe_msg_send(int sock, const struct vu_hdr *hdr, const void *payload, const int *fds, unsigned nfds);

/**
 * fe_msg_recv() - receive one message on a bare socket.
 * @sock: socket.
 * @msg: the message; received fds are in msg->fds (the caller closes them, see fe_msg_close_fds()).
 * @timeout_ms: milliseconds, negative for ever.
 *
 * Return: 0, -ETIMEDOUT, -ECONNRESET at end of file, -EMSGSIZE when hdr.size > VU_PAYLOAD_MAX (the header is
 * in msg, the payload was not read: the stream is out of sync), -EPROTO when more than VU_MAX_FDS fds came
 * (they are closed), or -errno.
 */
int fe_msg_recv(int sock, struct vu_msg *msg, int timeout_ms);

/**
 * fe_msg_close_fds() - close the fds a received message carried.
 * @msg: the message.
 */
void fe_msg_close_fds(struct vu_msg *msg);

/**
 * fe_recv_reply() - receive one message from the back-end.
 * @fe: the connection.
 * @msg: the message (fds in it, see fe_msg_recv()).
 * @timeout_ms: milliseconds, negative for ever.
 *
 * Return: as fe_msg_recv().
 */
int fe_recv_reply(struct fe *fe, struct vu_msg *msg, int timeout_ms);

/**
 * fe_request() - send a request and wait for its reply or ack.
 * @fe: the connection.
 * @request: the request.
 * @payload: @size bytes.
 * @size: payload bytes.
 * @fds: or NULL.
 * @nfds: how many.
 * @ret_reply: the reply, for requests that have one; NULL for requests that do not. With NULL and REPLY_ACK
 *             negotiated (and !fe->no_need_reply), NEED_REPLY is set and the ack awaited.
 *
 * Checks that the reply has the same request, VU_VERSION and VU_FLAG_REPLY, and (for acks) an 8-byte payload.
 *
 * Return: 0; -EREMOTEIO when the ack is non-zero (fe->last_ack has it); -EPROTO on a malformed reply;
 * -ETIMEDOUT; or -errno.
 */
int fe_request(struct fe *fe, uint32_t request, const void *payload, size_t size, const int *fds, unsigned nfds,
               struct vu_msg *ret_reply);

/**
 * fe_sync() - a barrier: GET_FEATURES and wait for the answer, so every earlier message has been processed.
 * @fe: the connection.
 *
 * Return: 0 or as fe_request().
 */
int fe_sync(struct fe *fe);

/* Typed requests: 0 or as fe_request(). "idx" is a vring index; an fd < 0 sends VU_VRING_NOFD_MASK. */
int fe_get_features(struct fe *fe, uint64_t *ret);
int fe_set_features(struct fe *fe, uint64_t features);
int fe_get_protocol_features(struct fe *fe, uint64_t *ret);
int fe_set_protocol_features(struct fe *fe, uint64_t features);
int fe_set_owner(struct fe *fe);
int fe_reset_owner(struct fe *fe);
int fe_reset_device(struct fe *fe);
int fe_get_queue_num(struct fe *fe, uint64_t *ret);
int fe_get_max_mem_slots(struct fe *fe, uint64_t *ret);
int fe_set_mem_table(struct fe *fe, const struct fe_mem *mem); /* all regions with their fds; -E2BIG above 8 */
int fe_add_mem_reg(struct fe *fe, const struct fe_mem *mem, unsigned region);
int fe_rem_mem_reg(struct fe *fe, const struct fe_mem *mem, unsigned region); /* no fd, as the spec says */
int fe_set_vring_num(struct fe *fe, unsigned idx, unsigned num);
int fe_set_vring_addr(struct fe *fe, unsigned idx, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva,
                      uint32_t flags);
int fe_set_vring_base(struct fe *fe, unsigned idx, unsigned base);
int fe_get_vring_base(struct fe *fe, unsigned idx, unsigned *ret);
int fe_set_vring_kick(struct fe *fe, unsigned idx, int fd);
int fe_set_vring_call(struct fe *fe, unsigned idx, int fd);
int fe_set_vring_err(struct fe *fe, unsigned idx, int fd);
int fe_set_vring_enable(struct fe *fe, unsigned idx, bool enable);
int fe_net_set_mtu(struct fe *fe, unsigned mtu);
int fe_get_config(struct fe *fe, unsigned offset, unsigned size, void *ret_buf); /* <= VU_CONFIG_MAX */
int fe_set_status(struct fe *fe, uint8_t status);
int fe_get_status(struct fe *fe, uint8_t *ret);

/**
 * fe_set_log_base() - SET_LOG_BASE: {mmap_size, mmap_offset} and the log's fd. With LOG_SHMFD acked it waits for
 * the back-end's reply, as QEMU does (no NEED_REPLY; an empty reply, or 8 bytes as libvhost-user sends);
 * otherwise as the other typed requests.
 * @fe: the connection.
 * @log: the log (any size or offset: tests send bad ones too).
 *
 * Return: 0, -EPROTO on a reply of another size, or as fe_request().
 */
int fe_set_log_base(struct fe *fe, const struct fe_log *log);

/**
 * fe_set_log_fd() - SET_LOG_FD: an eventfd the back-end may signal after updating the log.
 * @fe: the connection.
 * @fd: the eventfd (not consumed).
 *
 * Return: 0 or as fe_request().
 */
int fe_set_log_fd(struct fe *fe, int fd);

/**
 * fe_ring_set_addr() - SET_VRING_ADDR for a ring, with VU_VRING_F_LOG and log_guest_addr = its used ring's gpa
 * when @log, without (log_guest_addr 0) otherwise.
 * @fe: the connection.
 * @r: the ring.
 * @log: ask for used-ring logging.
 *
 * Return: 0 or as fe_request().
 */
int fe_ring_set_addr(struct fe *fe, const struct fe_ring *r, bool log);

/**
 * fe_log_start() - start logging on a running device, in QEMU's order when a migration starts: SET_LOG_BASE
 * (fe->log, created for fe->mem by fe_log_size_for() if it does not exist), SET_FEATURES with VHOST_F_LOG_ALL
 * added, SET_VRING_ADDR with VU_VRING_F_LOG for every ring (fe->log_rings is set).
 * @fe: after fe_setup().
 *
 * Return: 0, -EOPNOTSUPP when the back-end offers no VHOST_F_LOG_ALL, or the first failure.
 */
int fe_log_start(struct fe *fe);

/**
 * fe_log_stop() - stop logging, in QEMU's order (migration done or cancelled): SET_FEATURES without
 * VHOST_F_LOG_ALL, SET_VRING_ADDR without VU_VRING_F_LOG for every ring. fe->log stays (to look at it).
 * @fe: the connection.
 *
 * Return: 0 or the first failure.
 */
int fe_log_stop(struct fe *fe);

/**
 * fe_ring_configure() - announce a ring: SET_VRING_NUM, SET_VRING_BASE (fe_ring_base()), SET_VRING_ADDR (uvas),
 * SET_VRING_KICK, SET_VRING_CALL (QEMU's order). SET_VRING_ADDR asks for used-ring logging when fe->log_rings.
 * @fe: the connection.
 * @r: the ring.
 *
 * Return: 0 or as fe_request().
 */
int fe_ring_configure(struct fe *fe, const struct fe_ring *r);

/**
 * fe_ring_configure_at() - fe_ring_configure() with the base the back-end gave (GET_VRING_BASE), as QEMU starts a
 * ring it stopped.
 * @fe: the connection.
 * @r: the ring.
 * @base: sent with SET_VRING_BASE.
 *
 * Return: 0 or as fe_request().
 */
int fe_ring_configure_at(struct fe *fe, const struct fe_ring *r, uint32_t base);

/**
 * struct fe_setup_opts - fe_setup_ex() parameters; zero means the default.
 * @queue_pairs: 1.
 * @ring_size: 256.
 * @features: virtio features wanted (FE_FEATURES_DEFAULT); acked = wanted & offered.
 * @protocol_features: wanted (FE_PROTOCOL_FEATURES_DEFAULT); acked = wanted & offered.
 * @buf_size: data area per head (2048).
 * @rx_buf_size: rx buffers posted (buf_size).
 * @mtu: sent with NET_SET_MTU when the MTU protocol feature is acked (0: not sent).
 * @no_fill_rx: do not post rx buffers.
 * @no_enable: stop before SET_VRING_ENABLE.
 * @no_err_fd: do not send SET_VRING_ERR.
 * @log: start with dirty logging on, as QEMU starts a device while a migration runs: LOG_SHMFD and
 *       VHOST_F_LOG_ALL are asked for (-EOPNOTSUPP unless both are offered), every SET_VRING_ADDR carries
 *       VU_VRING_F_LOG and the used ring's gpa, and SET_LOG_BASE (fe->log, sized for guest RAM) follows the rings,
 *       before SET_VRING_ENABLE (QEMU's vhost_dev_start order). Guest writes are tracked (fe_mem_track()).
 */
struct fe_setup_opts {
        unsigned queue_pairs;
        unsigned ring_size;
        uint64_t features;
        uint64_t protocol_features;
        uint32_t buf_size;
        uint32_t rx_buf_size;
        unsigned mtu;
        bool no_fill_rx;
        bool no_enable;
        bool no_err_fd;
        bool log;
};

/**
 * fe_setup_ex() - bring a device up the way QEMU does.
 * @fe: a fresh connection.
 * @opts: parameters, or NULL for all defaults.
 *
 * GET_FEATURES; if offered, GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES; GET_QUEUE_NUM (MQ);
 * GET_MAX_MEM_SLOTS (CONFIGURE_MEM_SLOTS); SET_OWNER; SET_VRING_ERR per ring; SET_FEATURES; GET/SET_STATUS
 * FEATURES_OK (STATUS); NET_SET_MTU (MTU and opts->mtu); SET_MEM_TABLE, or ADD_MEM_REG per region with
 * CONFIGURE_MEM_SLOTS; per ring NUM, BASE, ADDR, KICK, CALL; rx buffers posted; SET_VRING_ENABLE 1 per ring
 * (when PROTOCOL_FEATURES is acked; otherwise rings are enabled at kick); SET_STATUS DRIVER_OK (STATUS); a kick
 * on every rx ring; GET_FEATURES last, as a barrier (see fe_sync()).
 * Without fe->mem, creates guest RAM: region 0 at gpa 0 (rings, indirect tables) and region 1 at gpa 4 GiB (data
 * areas) sharing region 0's memfd at mmap_offset = region 0's size. The rings are packed when VIRTIO_F_RING_PACKED
 * was asked for (opts->features) and offered, split otherwise.
 *
 * Return: 0, -ERANGE when queue_pairs exceeds GET_QUEUE_NUM or FE_MAX_RINGS, or the first failure.
 */
int fe_setup_ex(struct fe *fe, const struct fe_setup_opts *opts);

/**
 * fe_setup() - fe_setup_ex() with these and defaults for the rest.
 * @fe: a fresh connection.
 * @queue_pairs: queue pairs (0: 1).
 * @ring_size: ring size (0: 256).
 * @features: virtio features wanted (0: FE_FEATURES_DEFAULT).
 *
 * Return: as fe_setup_ex().
 */
int fe_setup(struct fe *fe, unsigned queue_pairs, unsigned ring_size, uint64_t features);

/**
 * fe_rx() - rx ring of a queue pair (vring 2 * @qp).
 * @fe: after fe_setup().
 * @qp: queue pair.
 *
 * Return: the ring.
 */
struct fe_ring *fe_rx(struct fe *fe, unsigned qp);

/**
 * fe_tx() - tx ring of a queue pair (vring 2 * @qp + 1).
 * @fe: after fe_setup().
 * @qp: queue pair.
 *
 * Return: the ring.
 */
struct fe_ring *fe_tx(struct fe *fe, unsigned qp);

/* ------------------------------------------------------------------------------------------------------------ */
/* Test frames                                                                                                    */

#define FE_ETHERTYPE 0x88b5        /* IEEE local experimental */
#define FE_FRAME_MAGIC 0x46454652u /* "FEFR" */
#define FE_FRAME_MIN 30            /* Ethernet header + magic, seq, len, checksum */
#define FE_FRAME_MAX 65535

/**
 * fe_frame_build() - an Ethernet frame of @len bytes: dst, src, FE_ETHERTYPE, then (big-endian) magic, @seq,
 * @len and the FNV-1a of the bytes after that header, then filler derived from @seq.
 * @buf: at least @len bytes.
 * @len: FE_FRAME_MIN..FE_FRAME_MAX.
 * @seq: sequence number.
 * @dst: destination MAC, or NULL for 02:00:00:00:00:02.
 * @src: source MAC, or NULL for 02:00:00:00:00:01.
 *
 * Return: 0 or -EINVAL.
 */
int fe_frame_build(void *buf, size_t len, uint32_t seq, const uint8_t *dst, const uint8_t *src);

/**
 * fe_frame_verify() - check a frame from fe_frame_build().
 * @buf: frame.
 * @len: bytes received.
 * @ret_seq: its sequence number, if non-NULL.
 *
 * Return: 0, or -EBADMSG (wrong type, magic, length or checksum).
 */
int fe_frame_verify(const void *buf, size_t len, uint32_t *ret_seq);

/**
 * fe_fnv1a() - 32-bit FNV-1a.
 * @buf: bytes.
 * @len: how many.
 *
 * Return: the hash.
 */
uint32_t fe_fnv1a(const void *buf, size_t len);

/* ------------------------------------------------------------------------------------------------------------ */
/* Processes                                                                                                      */

/**
 * fe_spawn_vhostd() - start a program (fork + execv) with stdout and stderr appended to @log_path.
 * @argv: argv[0] is the path to execute; NULL-terminated.
 * @log_path: log file (created), or NULL to keep ours.
 *
 * The child gets PR_SET_PDEATHSIG(SIGKILL), an empty signal mask and default SIGPIPE.
 *
 * Return: the pid, or -errno (the exec error is reported here, e.g. -ENOENT).
 */
pid_t fe_spawn_vhostd(char *const argv[], const char *log_path);

/**
 * fe_stop() - SIGTERM, then wait up to @timeout_ms (then SIGKILL).
 * @pid: child.
 * @timeout_ms: milliseconds.
 * @ret_status: the wait status (WIFEXITED...), if non-NULL.
 *
 * Return: 0 when it exited within the timeout, -ETIMEDOUT when it had to be killed, or -errno.
 */
int fe_stop(pid_t pid, int timeout_ms, int *ret_status);

/**
 * fe_wait_exit() - wait up to @timeout_ms for a child to exit on its own.
 * @pid: child.
 * @timeout_ms: milliseconds.
 * @ret_status: the wait status, if non-NULL.
 *
 * Return: 0 or -ETIMEDOUT (still running) or -errno.
 */
int fe_wait_exit(pid_t pid, int timeout_ms, int *ret_status);

/**
 * fe_count_fds() - open fds of a process (/proc/PID/fd).
 * @pid: process.
 *
 * Return: count or -errno.
 */
int fe_count_fds(pid_t pid);

/**
 * fe_count_threads() - threads of a process (/proc/PID/task).
 * @pid: process.
 *
 * Return: count or -errno.
 */
int fe_count_threads(pid_t pid);

/**
 * fe_count_maps() - lines of /proc/PID/maps containing @substr (e.g. FE_MEM_NAME).
 * @pid: process.
 * @substr: or NULL for all mappings.
 *
 * Return: count or -errno.
 */
int fe_count_maps(pid_t pid, const char *substr);

/**
 * fe_wait_maps() - wait until exactly @want lines of /proc/PID/maps contain @substr.
 * @pid: process.
 * @substr: e.g. FE_MEM_NAME; NULL for all.
 * @want: count.
 * @timeout_ms: milliseconds.
 *
 * E.g. fe_wait_maps(pid, FE_MEM_NAME, 0, 2000) after fe_free(): the back-end has noticed the disconnect and
 * unmapped guest RAM (vhostd serves one front-end per port and refuses a new one until then).
 *
 * Return: 0, -ETIMEDOUT or -errno.
 */
int fe_wait_maps(pid_t pid, const char *substr, int want, int timeout_ms);

/**
 * fe_vhostd_path() - the daemon to test: $VHOSTD_BIN (set by tests/run-tests.sh), else "build/vhostd".
 *
 * Return: a path.
 */
const char *fe_vhostd_path(void);

/**
 * fe_now_ms() - CLOCK_MONOTONIC in milliseconds.
 *
 * Return: milliseconds.
 */
int64_t fe_now_ms(void);

/**
 * fe_request_name() - "SET_VRING_NUM"... for messages.
 * @request: request number.
 *
 * Return: a static string ("?" when unknown).
 */
const char *fe_request_name(uint32_t request);

#endif
