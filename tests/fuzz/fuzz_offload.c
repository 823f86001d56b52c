/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for backends/offload.c, which reads frames that guests and the far side of a port make:
 * input = a virtio-net header (10 bytes) then the frame. Besides "no crash, no UB, no read or write outside
 * the frame" (the frame is copied to an exactly sized heap buffer, so ASan sees any overrun) it checks the
 * promises the callers rely on: gso_parse() accepts only offsets inside the frame with the payload after the
 * headers, at least one segment, and segments that add up to the payload; csum_complete() writes only inside.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/offload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct virtio_net_hdr vh;
        struct gso_info g;

        if (size < sizeof(vh))
                return 0;
        memcpy(&vh, data, sizeof(vh));
        size_t len = size - sizeof(vh);
        uint8_t *frame = malloc(len ? len : 1);
        if (!frame)
                return 0;
        memcpy(frame, data + sizeof(vh), len);

        if (gso_parse(frame, len, &vh, &g)) {
                if (!(g.l3 < g.l4 && g.l4 < g.hdrs && g.hdrs <= len && g.mss && g.nseg))
                        abort();
                if ((size_t)g.nseg * g.mss < len - g.hdrs ||
                    (size_t)(g.nseg - 1) * g.mss >= len - g.hdrs + (len == g.hdrs))
                        abort();
                uint8_t *hb = malloc(g.hdrs);
                if (hb) {
                        for (unsigned i = 0; i < g.nseg && i < 64; i++) {
                                size_t off = g.hdrs + (size_t)i * g.mss;
                                unsigned seglen = (unsigned)(len - off < g.mss ? len - off : g.mss);
                                memcpy(hb, frame, g.hdrs);
                                gso_segment_headers(hb, &g, i, frame + off, seglen);
                        }
                        free(hb);
                }
        }
        (void)csum_complete(frame, len, &vh);
        free(frame);
        return 0;
}
