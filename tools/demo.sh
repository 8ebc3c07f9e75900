#!/usr/bin/env bash
# make demo: the whole system on the embedded default (small synthetic
# inventory). Usage: tools/demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/adedge-demo}
bin=$PWD/bin
rm -rf "$work"
mkdir -p "$work"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# first N: the first N lines, reading the whole input. `| head -N` exits
# early and, under pipefail, the writer's SIGPIPE (exit 141) ends the demo
# whenever head wins the race (seen on a loaded machine).
first() { awk -v n="$1" 'NR <= n'; }

say "1. generate a small synthetic inventory (seed 1)"
"$bin/adtool" gen --scale small --seed 1 --out "$work/inventory"
ls -l "$work/inventory"

say "2. build the snapshot (validate, join, rank, write atomically)"
"$bin/adbuilder" build --input "$work/inventory" --out "$work/snapshots" --created 2026-11-22T00:00:00Z
cat "$work/snapshots/manifest.json" | first 20

snap=$(ls "$work"/snapshots/*.snap | first 1)
say "3. inspect $snap"
"$bin/adtool" inspect --top 5 "$snap"

say "4. verify checksums against the manifest"
"$bin/adtool" verify "$snap"

say "5. look up a placement: ranked candidates with eCPM"
pl=$(head -1 "$work/inventory/placements.jsonl" | sed 's/.*"id":"\([^"]*\)".*/\1/')
"$bin/adtool" lookup --snapshot "$snap" --placement "$pl" --country US --os android --limit 8
rwpl=$(grep '"rewarded":true' "$work/inventory/placements.jsonl" | first 1 | sed 's/.*"id":"\([^"]*\)".*/\1/')
echo
echo "format decisions at a rewarded placement for a player taking mp4 videos of at most 15 s:"
"$bin/adtool" lookup --snapshot "$snap" --placement "$rwpl" --country US --os android --osv 12 --formats video --mimes video/mp4 --maxduration 15 --limit 6

say "6. a bad inventory is refused with file:line, and nothing is written"
mkdir -p "$work/bad"
cp "$work"/inventory/*.json* "$work/bad/"
sed -i '3s/"bid_micros":[0-9]*/"bid_micros":-5/' "$work/bad/campaigns.jsonl"
echo '{"id":"broken' >> "$work/bad/creatives.jsonl"
if "$bin/adbuilder" build --quiet --input "$work/bad" --out "$work/bad-out"; then
  echo "demo: the bad inventory was accepted" >&2; exit 1
fi
test ! -e "$work/bad-out" && echo "(no output directory was created)"

say "6b. experiments: where devices fall (adtool bucket), what halving t1 moves (adtool experiments diff), a change the builder refuses"
head -4 "$work/inventory/profiles.jsonl" | sed 's/.*"device":"\([^"]*\)".*/\1/' | "$bin/adtool" bucket --snapshot "$snap" --devices -
mkdir -p "$work/exp-next"
cp "$work"/inventory/*.json* "$work/exp-next/"
sed -i 's/"segments": "0-19"/"segments": "0-9"/' "$work/exp-next/experiments.json"
"$bin/adtool" experiments diff "$snap" "$work/exp-next/experiments.json"
# t2 takes half of t3's segments: t3's running users would move into t2.
sed -i 's/"segments": "20-39"/"segments": "20-44"/; s/"segments": "40-49"/"segments": "45-49"/' "$work/exp-next/experiments.json"
if "$bin/adbuilder" build --quiet --input "$work/exp-next" --out "$work/snapshots" --created 2026-11-22T00:00:00Z; then
  echo "demo: a change moving t3's users was built" >&2; exit 1
fi

say "7. start an edge on the demo snapshot with embedded profiles"
port=${ADEDGE_DEMO_PORT:-18080}
admin=${ADEDGE_DEMO_ADMIN:-19090}
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token.key"
# Billing events go to a durable local log; with clickhouse-server installed
# the edge also ships them to a ClickHouse of the demo's own.
events=(--events-dir "$work/events")
chpid=""
if [ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server > /dev/null 2>&1; then
  "$bin/adtool" events clickhouse "$work/clickhouse" > "$work/clickhouse.url" 2> "$work/clickhouse.log" &
  chpid=$!
  for i in $(seq 1 300); do [ -s "$work/clickhouse.url" ] && break; kill -0 $chpid 2>/dev/null || break; sleep 0.1; done
  if [ -s "$work/clickhouse.url" ]; then
    churl="$(head -1 "$work/clickhouse.url")?database=adedge_demo"
    events+=(--events-clickhouse "$churl" --events-ship-interval 200ms)
    echo "ClickHouse for the demo: $churl"
  else
    echo "(clickhouse-server did not start; events stay in the local log: $(tail -1 "$work/clickhouse.log"))"
    chpid=""
  fi
fi
"$bin/adedge" --snapshot-dir "$work/snapshots" --listen 127.0.0.1:$port --admin 127.0.0.1:$admin \
  --profiles "file:$work/inventory/profiles.jsonl" --token-key "$work/token.key" --access-log "$work/access.log" \
  "${events[@]}" --spend local --drain-grace 1s > "$work/edge.log" 2>&1 &
edge=$!
trap 'kill $edge 2>/dev/null || true; [ -n "$chpid" ] && kill $chpid 2>/dev/null || true' EXIT
for i in $(seq 1 50); do
  curl -fs "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
  sleep 0.1
done
if ! kill -0 $edge 2>/dev/null; then
  echo "demo: the edge did not start (port $port busy? set ADEDGE_DEMO_PORT):" >&2; cat "$work/edge.log" >&2; exit 1
fi
curl -s "http://127.0.0.1:$port/health"; echo

say "8. sample ad requests (GET and POST)"
dev=$(sed -n 3p "$work/inventory/profiles.jsonl" | sed 's/.*"device":"\([^"]*\)".*/\1/')
for pl in $(sed -n '2p;3p;7p' "$work/inventory/placements.jsonl" | sed 's/.*"id":"\([^"]*\)".*/\1/'); do
  echo "GET /v1/ad?placement=$pl&country=US&os=android&osv=12&device=$dev"
  curl -s -w '  -> HTTP %{http_code}\n' "http://127.0.0.1:$port/v1/ad?placement=$pl&country=US&os=android&osv=12&device=$dev" | cut -c1-400
done
echo "POST /v1/ad {\"placement\":\"$pl\",\"country\":\"GB\",\"os\":\"ios\",\"osv\":\"17.2\"}"
curl -s -w '  -> HTTP %{http_code}\n' -X POST -d "{\"placement\":\"$pl\",\"country\":\"GB\",\"os\":\"ios\",\"osv\":\"17.2\"}" "http://127.0.0.1:$port/v1/ad" | cut -c1-400
echo "bad input: GET /v1/ad?placement=$pl&country=USA&os=android"
curl -s -w '  -> HTTP %{http_code}\n' "http://127.0.0.1:$port/v1/ad?placement=$pl&country=USA&os=android"

echo "a rewarded video on /v1/ad: the answer carries the VAST"
rv=""
for rpl in $(grep '"rewarded":true' "$work/inventory/placements.jsonl" | first 40 | sed 's/.*"id":"\([^"]*\)".*/\1/'); do
  rv=$(curl -s "http://127.0.0.1:$port/v1/ad?placement=$rpl&country=US&os=android&osv=12")
  case "$rv" in *'"format":"video"'*'"rewarded":true'*) break;; esac
  rv=""
done
if [ -z "$rv" ]; then
  echo "demo: no rewarded placement answered a video on /v1/ad" >&2; exit 1
fi
echo "GET /v1/ad?placement=$rpl&country=US&os=android&osv=12  -> $(echo "$rv" | cut -c1-300)..."

say "9. fire the impression and click URLs of a fill"
# The first placement that fills for the demo device (a fill depends on
# targeting, formats, pacing and the device's caps, so try several).
imp=""
for fpl in $pl $(sed -n 's/.*"id":"\(pl-[^"]*\)".*/\1/p' "$work/inventory/placements.jsonl" | first 60); do
  resp=$(curl -s "http://127.0.0.1:$port/v1/ad?placement=$fpl&country=US&os=android&osv=12&device=$dev")
  case "$resp" in *'"impression_url":"'*) ;; *) continue;; esac
  imp=$(echo "$resp" | sed 's/.*"impression_url":"\([^"]*\)".*/\1/')
  click=$(echo "$resp" | sed 's/.*"click_url":"\([^"]*\)".*/\1/')
  break
done
if [ -z "$imp" ]; then
  echo "demo: no placement filled for the demo device; no impression to fire" >&2; exit 1
else
  echo "GET /v1/ad?placement=$fpl&country=US&os=android&osv=12&device=$dev -> a fill"
  curl -s -o /dev/null -w "impression -> HTTP %{http_code}\n" "$imp"
  curl -s -o /dev/null -w "impression again (a replay: answered, counted once) -> HTTP %{http_code}\n" "$imp"
  curl -s -o /dev/null -w "click      -> HTTP %{http_code} Location %{redirect_url}\n" "$click"
  curl -s -o /dev/null -w "forged     -> HTTP %{http_code}\n" "${imp}A"
fi

say "9b. OpenRTB 2.6: one request with a banner and a rewarded-video imp (POST /openrtb2/auction)"
# unvast: the adm JSON string as XML (our JSON escapes <, > and &).
unvast() { grep -o '\\u003c?xml.*/VAST\\u003e' | sed 's/\\u003c/</g; s/\\u003e/>/g; s/\\u0026/\&/g; s/\\"/"/g'; }
ortb_req() { # $1 extra members, $2.. imps
  local extra=$1; shift
  local imps; imps=$(IFS=,; echo "$*")
  echo "{\"id\":\"demo-1\",\"imp\":[$imps],\"app\":{\"bundle\":\"com.example.game\"},\"device\":{\"ifa\":\"$dev\",\"os\":\"android\",\"osv\":\"12\",\"devicetype\":4,\"geo\":{\"country\":\"USA\"}}$extra}"
}
got=""
for bpl in $(grep '"formats":\["banner"\]' "$work/inventory/placements.jsonl" | first 40 | sed 's/.*"id":"\([^"]*\)".*/\1/'); do
  for rpl in $(grep '"rewarded":true' "$work/inventory/placements.jsonl" | first 20 | sed 's/.*"id":"\([^"]*\)".*/\1/'); do
    body=$(ortb_req "" "{\"id\":\"banner-1\",\"tagid\":\"$bpl\",\"banner\":{}}" \
      "{\"id\":\"rewarded-1\",\"tagid\":\"$rpl\",\"instl\":1,\"rwdd\":1,\"video\":{\"mimes\":[\"video/mp4\"],\"maxduration\":30,\"w\":1080,\"h\":1920}}")
    resp=$(curl -s -X POST -d "$body" "http://127.0.0.1:$port/openrtb2/auction")
    case "$resp" in *'"impid":"banner-1"'*'"impid":"rewarded-1"'*'VAST version'*) got=1; break 2;; esac
  done
done
if [ -z "$got" ]; then
  echo "demo: no banner + rewarded-video pair filled" >&2; exit 1
fi
echo "request:  $body"
echo "response: $(echo "$resp" | cut -c1-700)..."
echo
echo "the rewarded bid's VAST (adm):"
echo "$resp" | unvast | sed 's/></>\n</g' | first 40
echo
echo "a COPPA request (regs.coppa=1) for the same banner: answered unpersonalised and anonymous"
coppa=$(curl -s -X POST -d "$(ortb_req ',"regs":{"coppa":1}' "{\"id\":\"banner-1\",\"tagid\":\"$bpl\",\"banner\":{}}")" "http://127.0.0.1:$port/openrtb2/auction")
echo "  $(echo "$coppa" | grep -o '"impid":"[^"]*"\|"cid":"[^"]*"\|"ext":{[^}]*}' | tr '\n' ' ')"
echo
echo "a GDPR request with a malformed consent string, and a wrongly typed member:"
curl -s -o /dev/null -w "  gdpr=1, consent garbage -> HTTP %{http_code}\n" -X POST -d "$(ortb_req ',"regs":{"ext":{"gdpr":1}},"user":{"ext":{"consent":"garbage"}}' "{\"id\":\"banner-1\",\"tagid\":\"$bpl\",\"banner\":{}}")" "http://127.0.0.1:$port/openrtb2/auction"
curl -s -w '  -> HTTP %{http_code}\n' -X POST -d '{"id":"x","imp":[{"id":"1","tagid":"p","video":{"maxduration":"30"}}]}' "http://127.0.0.1:$port/openrtb2/auction"
echo "the privacy counters (admin /metrics):"
curl -s "http://127.0.0.1:$admin/metrics" | grep -E '^adedge_(privacy_total|openrtb_requests_total|openrtb_bids_total)' | grep -v ' 0$'

say "10. three seconds of traffic at 500 requests/s from the synthetic device population"
"$bin/adtool" loadgen --quiet --target "http://127.0.0.1:$port" --inventory "$work/inventory" --rate 500 --duration 3s --conns 16

say "11. what the edge counted (admin port, Prometheus format)"
curl -s "http://127.0.0.1:$admin/metrics" | grep -E '^adedge_(ad_requests_total|profile_lookups_total|impressions_total|clicks_total|revenue_micros_total|pacing_campaigns)'

say "11b. the billing event log (adtool events stats, cat)"
"$bin/adtool" events stats --json "$work/events"
"$bin/adtool" events cat "$work/events" > "$work/events.txt"
grep -E ' (imp|click) ' "$work/events.txt" | sed -n 1,4p
if [ -n "$chpid" ]; then
  for i in $(seq 1 50); do
    b=$(curl -s "http://127.0.0.1:$admin/metrics" | grep '^adedge_events_backlog_bytes' | awk '{print $2}')
    [ "$b" = "0" ] && break
    sleep 0.2
  done
  say "11c. delivery report from ClickHouse (adtool report delivery --by campaign --refresh: the hourly rollup rebuilt, then read)"
  "$bin/adtool" report delivery --clickhouse "$churl" --by campaign --refresh > "$work/delivery.txt"
  sed -n 1,8p "$work/delivery.txt"
fi

say "12. drain the edge (adtool drain: /health 503 at once, ads served for --drain-grace, then stop)"
"$bin/adtool" drain --admin 127.0.0.1:$admin > /dev/null
curl -s -w '\n  -> HTTP %{http_code}\n' "http://127.0.0.1:$port/health" | cut -c1-200
curl -s -o /dev/null -w "ad during the grace -> HTTP %{http_code}\n" "http://127.0.0.1:$port/v1/ad?placement=$pl&country=US&os=android&osv=12&device=$dev"
wait $edge || { echo "demo: the edge did not stop cleanly" >&2; exit 1; }
# The demo's ClickHouse has served its last query: stop it (adtool events
# clickhouse stops its server on SIGTERM) before the EXIT trap is cleared.
if [ -n "$chpid" ]; then kill $chpid 2>/dev/null || true; wait $chpid 2>/dev/null || true; fi
trap - EXIT
tail -2 "$work/edge.log"

say "13. distribution: a signing key, the builder (seeds, tracker, manifests), two production edges, one staging edge"
d=$work/dist
mkdir -p "$d"
cp -r "$work/inventory" "$d/inventory"
"$bin/adtool" keygen --out "$d/manifest"
bip=127.0.0.10
bport=${ADEDGE_DEMO_BUILDER_PORT:-17070}
badmin=${ADEDGE_DEMO_BUILDER_ADMIN:-17071}
eport=${ADEDGE_DEMO_EDGE_PORT:-18081}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 0' INT TERM
"$bin/adbuilder" serve --input "$d/inventory" --data "$d/builder" --key "$d/manifest.key" \
  --listen $bip:$bport --admin 127.0.0.1:$badmin --poll 500ms > "$d/builder.log" 2>&1 &
pids+=($!)
export ADTOOL_BUILDER=http://127.0.0.1:$badmin
# wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" > /dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: timed out waiting for $what" >&2; tail -5 "$d"/*.log >&2; exit 1
}
staging_version() { curl -fs "$ADTOOL_BUILDER/admin/status" | sed -n 's/.*"staging":"\([^"]*\)".*/\1/p'; }
have_staging() { test -n "$(staging_version)"; }
staging_moved() { test "$(staging_version)" != "$v1"; }
wait_for 30 "the first build" have_staging
v1=$(staging_version)
echo "built $v1 -> staging; promoting it to production (first deployment)"
"$bin/adtool" promote "$v1"
names=(prod-a prod-b staging)
chans=(production production staging)
for i in 0 1 2; do
  ip=127.0.0.$((11 + i))
  mkdir -p "$d/${names[$i]}"
  "$bin/adedge" --snapshot-dir "$d/${names[$i]}" --listen $ip:$eport --admin 127.0.0.1:$((19091 + i)) \
    --env "${chans[$i]}" --channel "${chans[$i]}" --manifest http://$bip:$bport/v1/manifest --pubkey "$d/manifest.pub" \
    --manifest-poll 1s --token-key "$work/token.key" > "$d/${names[$i]}.log" 2>&1 &
  pids+=($!)
done
serving() { curl -fs "http://$1:$eport/health" | grep -q "\"version\":\"$2\""; }
for i in 0 1 2; do wait_for 30 "${names[$i]} serving $v1" serving 127.0.0.$((11 + i)) "$v1"; done
for i in 0 1 2; do printf '%-8s %s\n' "${names[$i]}" "$(curl -s http://127.0.0.$((11 + i)):$eport/health)"; done
"$bin/adtool" manifest --url http://$bip:$bport/v1/manifest --channel production --pubkey "$d/manifest.pub" | first 4

say "14. a new inventory export arrives (bids changed): the builder rebuilds, staging gets it, production does not"
sleep 1 # a new mtime second, so a new data time and version
sed -i 's/"bid_micros":\([0-9]*\)/"bid_micros":\11/' "$d/inventory/campaigns.jsonl"
wait_for 30 "the rebuild" staging_moved
v2=$(staging_version)
echo "built $v2 -> staging"
wait_for 30 "staging serving $v2" serving 127.0.0.13 "$v2"
for i in 0 1 2; do printf '%-8s serving %s\n' "${names[$i]}" "$(curl -s http://127.0.0.$((11 + i)):$eport/health | sed 's/.*"version":"\([^"]*\)".*/\1/')"; done

say "15. promote $v2 to production: both production edges fetch it (BitTorrent), verify, swap"
"$bin/adtool" promote "$v2"; echo
for i in 0 1; do wait_for 30 "${names[$i]} serving $v2" serving 127.0.0.$((11 + i)) "$v2"; done
for i in 0 1 2; do printf '%-8s serving %s\n' "${names[$i]}" "$(curl -s http://127.0.0.$((11 + i)):$eport/health | sed 's/.*"version":"\([^"]*\)".*/\1/')"; done
echo "bytes moved (admin ports, Prometheus):"
curl -s http://127.0.0.1:$badmin/metrics | grep '^adbuilder_distribution_bytes_total{direction="up"' | sed 's/^/  builder /'
for i in 0 1 2; do curl -s http://127.0.0.1:$((19091 + i))/metrics | grep '^adedge_distribution_bytes_total' | grep -v 'direction="up",via="webseed"' | sed "s/^/  ${names[$i]} /"; done

say "16. roll production back to $v1 (it is still on the edges: no download)"
"$bin/adtool" rollback; echo
for i in 0 1; do wait_for 30 "${names[$i]} serving $v1" serving 127.0.0.$((11 + i)) "$v1"; done
for i in 0 1 2; do printf '%-8s serving %s\n' "${names[$i]}" "$(curl -s http://127.0.0.$((11 + i)):$eport/health | sed 's/.*"version":"\([^"]*\)".*/\1/')"; done
grep -h "snapshot: serving" "$d"/prod-a.log | sed 's/^/  prod-a: /'

say "17. A/B buckets, 5% of devices to staging, and an abreport of this demo's own traffic"
bash tools/demo-abtest.sh "$work"

if [ -t 0 ] && [ "${DEMO_WAIT:-1}" != 0 ]; then
  say "running: builder http://$bip:$bport (admin $ADTOOL_BUILDER), edges 127.0.0.11-13:$eport; edit $d/inventory to publish; Ctrl-C to stop"
  while sleep 1; do :; done
fi
cleanup
trap - EXIT INT TERM

say "demo done: files in $work"
