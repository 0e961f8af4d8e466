#!/usr/bin/env bash
# The soak of reference-backend/README.md ("Memory under sustained load"): scenarios/soak.yaml
# with loadgen on this machine against
#   reference  a release build of the reference-backend process (release 3, default config
#              with the ingestion rate limit raised; state in a temp dir);
#   tempo      real Grafana Tempo 3.0.3 (limits raised, state in a temp dir) with
#              scenarios/soak-tempo.yaml (the same holds, 30 s each, no 120k step: loadgen
#              sends every planned request, so a backend slower than the offered rate would
#              otherwise drain soak.yaml's 40 million spans at its own pace for half an hour);
#   sigterm    the reference backend at 100k spans/s for 60 s, SIGTERM after 30 s (the time to
#              exit is printed), restarted at once on the same directories; loadgen reads
#              its sample back 15 s after sending, so what was acknowledged before the
#              SIGTERM is read from the restarted process.
#
#   cargo build --release -p reference-backend -p loadgen
#   ci/soak.sh [reference|tempo|sigterm|all]          (default: all)
#
# The read-back ends by a deadline (each sampled trace's verify.delay + verify.timeout after
# it was sent, then 10 s): a backend that does not answer lookups cannot hold the run open,
# and what it did not answer by then is reported as not found.
#
# Environment: SOAK_SCENARIO (default scenarios/soak.yaml), SOAK_TEMPO_SCENARIO (default
# scenarios/soak-tempo.yaml), REFERENCE_BACKEND_BIN (another
# build to measure), TEMPO_BIN (default
# target/tempo/tempo-v3.0.3; unpack it as
# ../shared/tempo/README.md says), SOAK_OUT (reports, default reports/soak), SOAK_PORT_BASE
# (default 23000, below the ephemeral range: ports base+200 query, base+317 OTLP gRPC, base+318 OTLP HTTP, base+95 and base+46
# Tempo's internal gRPC and memberlist). Loadgen's CPU and RSS figures are the backend's, sampled through
# its pid. Reports land in $SOAK_OUT/<run>/report.{md,json,html}.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
out=${SOAK_OUT:-reports/soak}
scenario=${SOAK_SCENARIO:-scenarios/soak.yaml}
tempo_scenario=${SOAK_TEMPO_SCENARIO:-scenarios/soak-tempo.yaml}
base=${SOAK_PORT_BASE:-23000}
http=$((base + 200)) grpc=$((base + 317)) otlp_http=$((base + 318)) internal=$((base + 95))
rb=${REFERENCE_BACKEND_BIN:-target/release/reference-backend}
lg=target/release/loadgen
tempo=${TEMPO_BIN:-target/tempo/tempo-v3.0.3}
state=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

for b in "$rb" "$lg"; do
  [ -x "$b" ] || { echo "$b missing: cargo build --release -p reference-backend -p loadgen" >&2; exit 2; }
done

wait_ready() { # $1: what
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$http/ready" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "$1 exited before ready" >&2; return 1; }
    sleep 0.2
  done
  echo "$1 not ready after 120 s" >&2
  return 1
}

reference_config() {
  cat >"$state/reference.yaml" <<EOF
server:
  http_listen_address: 127.0.0.1
  http_listen_port: $http
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:$grpc
        http:
          endpoint: 127.0.0.1:$otlp_http
storage:
  trace:
    backend: local
    local:
      path: $state/reference/blocks
    wal:
      path: $state/reference/wal
overrides:
  defaults:
    ingestion:
      rate_limit_bytes: 1GB
      burst_size_bytes: 1GB
EOF
}

start_reference() { # $1: log file
  "$rb" --config "$state/reference.yaml" >>"$1" 2>&1 &
  pid=$!
  wait_ready reference-backend
}

loadgen() { # $1: run name, then extra loadgen args
  local name=$1
  shift
  "$lg" run "${run_scenario:-$scenario}" --quiet --out "$out/$name" \
    --target-otlp "http://127.0.0.1:$grpc" --target-query "http://127.0.0.1:$http" \
    --target-pid "$pid" "$@" || true
}

stop() { # SIGTERM, wait up to 60 s, then SIGKILL; prints the seconds it took
  local t0 t1
  t0=$(date +%s.%N)
  kill -TERM "$pid"
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    echo "did not exit within 60 s of SIGTERM (killed)"
  else
    echo "exited $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") s after SIGTERM"
  fi
  wait "$pid" 2>/dev/null || true
  pid=
}

run_reference() {
  echo "== soak: reference-backend ($rb)"
  rm -rf "$state/reference"
  reference_config
  start_reference "$out/reference.log"
  loadgen reference
  echo "reference-backend: $(stop)"
}

run_tempo() {
  if [ ! -x "$tempo" ]; then
    echo "== soak: Tempo skipped ($tempo not found; see ../shared/tempo/README.md)"
    return
  fi
  echo "== soak: $("$tempo" --version 2>&1 | head -1)"
  mkdir -p "$state/tempo"
  cat >"$state/tempo.yaml" <<EOF
target: all
server:
  http_listen_address: 127.0.0.1
  http_listen_port: $http
  grpc_listen_port: $internal
  log_level: warn
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:$grpc
        http:
          endpoint: 127.0.0.1:$otlp_http
live_store:
  wal:
    path: $state/tempo/live-store-wal
  shutdown_marker_dir: $state/tempo/shutdown-marker
backend_scheduler:
  local_work_path: $state/tempo/backend-scheduler
metrics_generator:
  storage:
    path: $state/tempo/generator
storage:
  trace:
    backend: local
    local:
      path: $state/tempo/blocks
    wal:
      path: $state/tempo/wal
overrides:
  defaults:
    ingestion:
      rate_limit_bytes: 1000000000
      burst_size_bytes: 1000000000
      max_traces_per_user: 10000000
memberlist:
  bind_port: $((base + 46))
usage_report:
  reporting_enabled: false
EOF
  "$tempo" -config.file="$state/tempo.yaml" >>"$out/tempo.log" 2>&1 &
  pid=$!
  wait_ready tempo
  run_scenario=$tempo_scenario loadgen tempo
  echo "tempo: $(stop)"
}

run_sigterm() {
  echo "== SIGTERM at 100k spans/s: reference-backend"
  rm -rf "$state/reference"
  reference_config
  start_reference "$out/sigterm.log"
  local first=$pid
  (
    sleep 30
    echo "reference-backend at 100k spans/s: $(pid=$first stop)"
    start_reference "$out/sigterm.log"
    echo "restarted; ready at $(date +%T)"
    echo "$pid" >"$state/restarted.pid"
  ) &
  local supervisor=$!
  # The pid changes at the restart: resources are sampled from the first process only.
  loadgen sigterm --rate 100000 --duration 60s
  wait "$supervisor"
  pid=$(cat "$state/restarted.pid")
  echo "after the run: $(stop)"
}

mkdir -p "$out"
case "$what" in
  reference) run_reference ;;
  tempo) run_tempo ;;
  sigterm) run_sigterm ;;
  all) run_reference; run_tempo; run_sigterm ;;
  *) echo "usage: ci/soak.sh [reference|tempo|sigterm|all]" >&2; exit 2 ;;
esac
for r in "$out"/*/report.md; do
  [ -f "$r" ] && { echo "== $r"; sed -n '1,12p' "$r"; }
done
