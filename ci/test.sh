#!/usr/bin/env bash
# What CI runs: formatting, lints, exactly the README's test command (with the real Tempo
# releases unpacked, so the conformance and loadgen tests run against them), then the example
# HTML report (written by the loadgen end-to-end test) loaded in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== real Tempo releases"
# ../shared/tempo holds xz-compressed Tempo single binaries (tempo-v2.10.8, tempo-v3.0.2,
# tempo-v3.0.3) next to the repository. Unpacked into target/tempo (kept between runs when
# the checksums still match); the tests find them through TRACEBENCH_TEMPO_BIN_DIR and print
# one SKIP line per test binary when they are absent.
TEMPO_SRC="$PWD/../shared/tempo"
TEMPO_DIR="$PWD/target/tempo"
if compgen -G "$TEMPO_SRC/tempo-*.xz" > /dev/null; then
    mkdir -p "$TEMPO_DIR"
    for xz in "$TEMPO_SRC"/tempo-*.xz; do
        bin="$TEMPO_DIR/$(basename "$xz" .xz)"
        if [ -f "$TEMPO_SRC/SHA256SUMS.unpacked" ] && [ -x "$bin" ] &&
            (cd "$TEMPO_DIR" && grep " $(basename "$bin")\$" "$TEMPO_SRC/SHA256SUMS.unpacked" |
                sha256sum --check --status); then
            continue
        fi
        xz -dc "$xz" > "$bin.tmp"
        chmod +x "$bin.tmp"
        mv "$bin.tmp" "$bin"
    done
    if [ -f "$TEMPO_SRC/SHA256SUMS.unpacked" ]; then
        (cd "$TEMPO_DIR" && sha256sum --check --quiet "$TEMPO_SRC/SHA256SUMS.unpacked")
    fi
    export TRACEBENCH_TEMPO_BIN_DIR="$TEMPO_DIR"
    for bin in "$TEMPO_DIR"/tempo-v*; do
        echo "$(basename "$bin"): $("$bin" --version 2>&1 | head -1)"
    done
else
    echo "SKIP real Tempo: no $TEMPO_SRC/tempo-*.xz (the real-Tempo tests will skip)"
fi

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
