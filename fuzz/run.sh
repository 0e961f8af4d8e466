#!/usr/bin/env bash
# Fuzz one target for a while, then minimise what it found into the committed corpus.
#
#   fuzz/run.sh <target> [seconds]        (default 600 s; `cargo fuzz list` names the targets)
#
# New inputs collect in target/fuzz-work/<target>; crashes, OOMs and timeouts are written
# to target/fuzz-artifacts/<target>/. At the end `-merge=1` keeps in fuzz/corpus/<target>
# only the inputs that add coverage. Needs cargo-fuzz (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:?usage: fuzz/run.sh <target> [seconds]}"
seconds="${2:-600}"
work="target/fuzz-work/$target"
artifacts="target/fuzz-artifacts/$target"
mkdir -p "$work" "$artifacts" "fuzz/corpus/$target"

# libFuzzer's sanitizer flags are unstable rustc options; RUSTC_BOOTSTRAP lets the stable
# toolchain take them (no nightly toolchain needed).
export RUSTC_BOOTSTRAP=1
fuzz=(cargo fuzz run --features libfuzzer --target-dir target/fuzz "$target")

# Never a panic, an abort, more than 1 GiB in one allocation or 2 GiB resident, or 10 s on
# one input. Leak checks are off: long-lived caches (the tokio runtime, the search corpus)
# are not leaks.
nice -n 19 "${fuzz[@]}" "$work" "fuzz/corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
  -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$artifacts/" \
  2>&1 | tee "target/fuzz-artifacts/$target.log" | grep -E "^(#[0-9]+ +(INITED|DONE)|stat::|==[0-9]+==|SUMMARY|Done)" || true

# Keep a smallest set of inputs that covers every edge reached (hit counts ignored), so
# the committed corpus stays small; target/fuzz-work keeps everything for the next run.
mkdir -p "$work.min"
nice -n 19 "${fuzz[@]}" "$work.min" "fuzz/corpus/$target" "$work" -- \
  -set_cover_merge=1 -use_counters=0 -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
  -detect_leaks=0 \
  >"target/fuzz-artifacts/$target.merge.log" 2>&1 || true
if [ -n "$(ls -A "$work.min")" ]; then
  # Regression inputs of fixed findings stay whether or not they add coverage.
  cp fuzz/corpus/"$target"/regression-* "$work.min"/ 2>/dev/null || true
  rm -rf "fuzz/corpus/$target"
  mv "$work.min" "fuzz/corpus/$target"
fi
rm -rf "$work.min"
echo "corpus: $(ls "fuzz/corpus/$target" | wc -l) files, $(du -sh --apparent-size "fuzz/corpus/$target" | cut -f1)"
