#!/usr/bin/env bash
# The A/B and staging part of make demo (issue 5): a staging edge and a
# production edge forwarding 5% of devices to it, both writing per-bucket
# rows; demo traffic that fires impressions and clicks; then the buckets
# in the edges' metrics, stagecheck, and an abreport of this traffic.
# Usage: tools/demo-abtest.sh WORKDIR (after tools/demo.sh's steps 1-2).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: tools/demo-abtest.sh WORKDIR}
bin=$PWD/bin
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pport=${ADEDGE_DEMO_AB_PORT:-18180}; sport=$((pport + 1))
rows=$work/rows; mkdir -p "$rows/production" "$rows/staging"
test -s "$work/token.key" || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token.key"
common=(--snapshot-dir "$work/snapshots" --profiles "file:$work/inventory/profiles.jsonl" --token-key "$work/token.key" --report-interval 2s)

say "A/B 1. a staging edge, and a production edge sending 5% of devices to it (rows every 2s)"
"$bin/adedge" "${common[@]}" --env staging --listen 127.0.0.1:$sport --admin 127.0.0.1:$((sport + 1000)) \
  --report-dir "$rows/staging" --edge-name staging-1 > "$work/edge-staging.log" 2>&1 &
stg=$!
"$bin/adedge" "${common[@]}" --listen 127.0.0.1:$pport --admin 127.0.0.1:$((pport + 1000)) \
  --staging-percent 5 --staging-upstream 127.0.0.1:$sport --report-dir "$rows/production" --edge-name prod-1 \
  > "$work/edge-production.log" 2>&1 &
prd=$!
trap 'kill $stg $prd 2>/dev/null || true' EXIT
for p in $pport $sport; do
  for i in $(seq 1 50); do curl -fs "http://127.0.0.1:$p/health" > /dev/null 2>&1 && break; sleep 0.1; done
done
pl=$(sed -n 2p "$work/inventory/placements.jsonl" | sed 's/.*"id":"\([^"]*\)".*/\1/')
for dev in $(head -12 "$work/inventory/profiles.jsonl" | sed 's/.*"device":"\([^"]*\)".*/\1/') ""; do
  printf '%-38s ' "device=${dev:-(none)}"
  curl -s -D - -o "$work/ab-ad.json" "http://127.0.0.1:$pport/v1/ad?placement=$pl&country=US&os=android&osv=12&device=$dev" \
    | tr -d '\r' | grep -i '^x-adedge-env' | tr '\n' ' '
  sed -n 's/.*"bucket":\({[^}]*}\).*/\1/p' "$work/ab-ad.json"; echo
done

say "A/B 2. demo SDK traffic: 20000 ad requests, 80% of fills fire the impression, 5% of those click"
"$bin/adtool" abtraffic --target "http://127.0.0.1:$pport" --inventory "$work/inventory" --requests 20000 --seed 5
curl -s "http://127.0.0.1:$((pport + 1000))/metrics" | grep -E '^adedge_(ab_requests_total|staging_(forwarded|fallbacks)_total)'
kill -TERM $prd $stg; wait $prd $stg || true   # SIGTERM flushes the last partial interval
trap - EXIT
ls "$rows/production" | head -3; echo "($(ls "$rows/production" "$rows/staging" | grep -c jsonl) rows files)"

say "A/B 3. stagecheck: staging vs production (Nagios exit code)"
"$bin/adtool" stagecheck --rows "$rows/production" --rows "$rows/staging" --window 1h --min-requests 100 || echo "(exit $?)"

say "A/B 4. abreport of this demo's traffic (HTML: $work/abreport.html)"
"$bin/adtool" abreport --rows "$rows/production" --rows "$rows/staging" --format html --out "$work/abreport.html"
"$bin/adtool" abreport --rows "$rows/production" --rows "$rows/staging"
