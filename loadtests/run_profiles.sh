#!/usr/bin/env bash
# Reproduce docs/loadtests.md: start `hero serve` on loopback with default settings, run the
# open-loop replay generator for each profile and rate, append JSON summaries to $OUT.
#   bash loadtests/run_profiles.sh [OUT=out/loadtests.jsonl] [DURATION=60]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/loadtests.jsonl}
DURATION=${2:-60}
PORT=${PORT:-18555}
RATES=${RATES:-"0.5 1 2"}
DRAIN=${DRAIN:-120}
mkdir -p "$(dirname "$OUT")"
STATE=$(mktemp -d)
HF_HUB_OFFLINE=1 hero serve --port "$PORT" --state-path "$STATE/state.sqlite3" \
  --log-level warning > "$STATE/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$STATE"' EXIT
for _ in $(seq 180); do
  curl -sf "http://127.0.0.1:$PORT/ready" > /dev/null && break
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/ready" > /dev/null
for profile in group openrlhf; do
  for rate in $RATES; do
    echo "== $profile at $rate groups/s for ${DURATION}s (load before: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    python loadtests/replay.py --url "http://127.0.0.1:$PORT" --profile "$profile" \
      --rate "$rate" --duration "$DURATION" --group-size 8 --spread 2 --drain "$DRAIN" --out "$OUT" > /dev/null
    tail -n 1 "$OUT" >&2
  done
done
