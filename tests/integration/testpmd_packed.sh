#!/bin/bash
# testpmd_packed: testpmd_loopback.sh with packed virtqueues (dpdk-testpmd virtio-user packed_vq=1): 2 queue
# pairs of io forwarding through vhostd's loopback port, every frame accounted for, VIRTIO_F_RING_PACKED negotiated.
# tsan: skip (testpmd busy-polls a core; too slow under TSAN).
TESTPMD_PACKED=1 exec "$(dirname "$0")/testpmd_loopback.sh"
