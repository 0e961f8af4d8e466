#!/usr/bin/env bash
# What CI runs: formatting, lints, exactly the README's test command, then the example
# HTML report (written by the loadgen end-to-end test) loaded in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test --workspace"
# The loadgen end-to-end test also writes its reports here for the browser check below.
export LOADGEN_EXAMPLE_REPORT_DIR="$PWD/target/ci-report"
rm -rf "$LOADGEN_EXAMPLE_REPORT_DIR"
cargo test --workspace --locked

# --- fuzz corpora (fuzz/README.md) -------------------------------------------------------
# The workspace tests above already replay every committed corpus; this step adds a short
# deterministic mutation run per target (no fuzzing toolchain needed).
echo "== fuzz corpora: replay and a short mutation run per target"
FUZZ_REPLAY_MUTATIONS="${FUZZ_REPLAY_MUTATIONS:-2000}" cargo test -p tracebench-fuzz --locked --test replay
# --- end fuzz corpora ----------------------------------------------------------------------

echo "== HTML report in headless Chromium"
bash ci/check-report-html.sh "$LOADGEN_EXAMPLE_REPORT_DIR/report.html"
