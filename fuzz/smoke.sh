#!/usr/bin/env bash
# Short fuzz run of every lockd-logstore target, for CI (.ci/run calls it).
# Fails (non-zero) if a target crashes, panics or trips a sanitizer; the
# reproducer is left in fuzz/artifacts/<target>/. See docs/fuzzing.md.
#
#   FUZZ_SECONDS=60 fuzz/smoke.sh      # longer run per target (default 20)
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
targets=(record_decode segment_recovery json_ingest http_request bundle_parse)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# libFuzzer needs -Z flags; this stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1 (see shared/CRATES.md). Harmless on nightly.
export RUSTC_BOOTSTRAP=1

# Start from the workspace's pinned versions rather than resolving afresh:
# the fuzz crate is outside the workspace and its lock file is not kept.
if [ ! -f Cargo.lock ]; then
  cp ../Cargo.lock Cargo.lock
fi

echo "== building fuzz targets"
start=$SECONDS
cargo fuzz build
echo "built in $((SECONDS - start)) s"

for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${seconds} s"
  # New inputs go to the first directory (ignored by git); the checked-in
  # seeds are read only.
  mkdir -p "$PWD/corpus/$t"
  cargo fuzz run "$t" "$PWD/corpus/$t" "$PWD/seeds/$t" -- \
    -max_total_time="$seconds" -max_len=8192 -print_final_stats=1
done
echo "== fuzz smoke passed in $((SECONDS - start)) s"
