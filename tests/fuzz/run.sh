#!/bin/bash
# Runs every built fuzz target for SECONDS over a scratch copy of its seed corpus
# (tests/fuzz/corpus/NAME). A crash leaves its input in build-fuzz/crashes/ and fails the run;
# turn it into a regression test by adding it to the corpus once fixed.
# For a long run: make fuzz && build-fuzz/fuzz_vq -max_total_time=36000 -jobs=2 tests/fuzz/corpus/vq
set -u
cd "$(dirname "$0")/../.."
SECS=${1:-60}
mkdir -p build-fuzz/crashes
rc=0
for bin in build-fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=${bin##*/fuzz_}
    work=$(mktemp -d)
    [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
    echo "== fuzz_$name for ${SECS}s"
    if ! "$bin" -max_total_time="$SECS" -rss_limit_mb=2048 -artifact_prefix=build-fuzz/crashes/ "$work" \
        >"build-fuzz/fuzz_$name.log" 2>&1; then
        echo "FAIL fuzz_$name (see build-fuzz/fuzz_$name.log)"; tail -n 30 "build-fuzz/fuzz_$name.log"; rc=1
    else
        grep -E '^#[0-9]+.*DONE|Done [0-9]+ runs' "build-fuzz/fuzz_$name.log" | tail -n 1
    fi
    rm -rf "$work"
done
exit $rc
