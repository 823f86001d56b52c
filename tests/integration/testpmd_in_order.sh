#!/bin/bash
# testpmd_in_order: testpmd_loopback.sh with VIRTIO_F_IN_ORDER (dpdk-testpmd virtio-user in_order=1), split and
# then packed virtqueues: 2 queue pairs each, every frame accounted for, IN_ORDER negotiated. vhostd then hands
# transmitted buffers back in batches that write one used entry.
# tsan: skip (testpmd busy-polls a core; too slow under TSAN).
here=$(dirname "$0")
rc=0
TESTPMD_IN_ORDER=1 TESTPMD_PACKED=0 "$here/testpmd_loopback.sh" || rc=$?
[ $rc -eq 0 ] || exit $rc
TESTPMD_IN_ORDER=1 TESTPMD_PACKED=1 exec "$here/testpmd_loopback.sh"
