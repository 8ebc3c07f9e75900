#!/usr/bin/env bash
# Reproduces the edge figures in docs/BENCHMARKS.md (issue 3): throughput vs a
# trivial fasthttp handler under the same wrk settings, latency at half of
# adedge's maximum throughput (embedded profiles and Aerospike wire protocol),
# and p99 with a snapshot swap every 2 s. Server processes run on CPU 0, load
# generators on CPU 1 (taskset), so they do not fight for one core.
#
# usage: tools/bench/edge.sh [WORKDIR]    (needs wrk; ~4 minutes)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/adedge-bench}; export work
bin=$PWD/bin
runs=${RUNS:-3}
dur=${DUR:-10}
mkdir -p "$work"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
make -s build
srv() { taskset -c 0 "$@"; }
cli() { taskset -c 1 "$@"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_http() { for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

[ -d "$work/inv" ] || "$bin/adtool" gen --quiet --scale medium --seed 1 --out "$work/inv"
rm -rf "$work/snap" "$work/alt" && mkdir -p "$work/snap" "$work/alt"
"$bin/adbuilder" build --quiet --input "$work/inv" --out "$work/snap" --created 2026-11-22T00:00:00Z > /dev/null
# Ten newer versions of the same inventory for the swap test (a swap only
# goes to a snapshot with a later data time).
for h in 01 02 03 04 05 06 07 08 09 10 11; do
  "$bin/adbuilder" build --quiet --input "$work/inv" --out "$work/alt" --created 2026-11-22T$h:00:00Z > /dev/null
done
head -c 32 /dev/urandom > "$work/key"

srv "$bin/adedge" --snapshot-dir "$work/snap" --listen 127.0.0.1:28080 --admin 127.0.0.1:29080 \
  --profiles "file:$work/inv/profiles.jsonl" --token-key "$work/key" > "$work/edge.log" 2>&1 & pids+=($!)
wait_http http://127.0.0.1:28080/health

cli "$bin/adtool" aerofake --listen 127.0.0.1:23000 > /dev/null 2>&1 & pids+=($!)
sleep 0.5
"$bin/adtool" profiles load --from "$work/inv/profiles.jsonl" --to aerospike://127.0.0.1:23000/test/profiles > /dev/null 2>&1
srv "$bin/adedge" --snapshot-dir "$work/snap" --listen 127.0.0.1:28082 --admin 127.0.0.1:29082 \
  --profiles aerospike://127.0.0.1:23000/test/profiles --token-key "$work/key" > "$work/edge-aero.log" 2>&1 & pids+=($!)
wait_http http://127.0.0.1:28082/health

# One fixed URL that fills, with a device that has a profile, so every
# response has about the size of the baseline's body and reads a profile.
pl=$(sed -n 2p "$work/inv/placements.jsonl" | sed 's/.*"id":"\([^"]*\)".*/\1/')
dev=$(sed -n 3p "$work/inv/profiles.jsonl" | sed 's/.*"device":"\([^"]*\)".*/\1/')
q="placement=$pl&country=US&os=android&osv=12&device=$dev"
# The baseline answers adedge's own body for this URL: same bytes on the wire.
curl -s -o "$work/body.json" "http://127.0.0.1:28080/v1/ad?$q"
size=$(stat -c %s "$work/body.json")
srv "$bin/adtool" baseline --listen 127.0.0.1:28081 --body "$work/body.json" > /dev/null 2>&1 & pids+=($!)
wait_http http://127.0.0.1:28081/
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rps() { cli wrk -t1 -c64 -d${dur}s "$1" | awk '/Requests\/sec/ {print int($2)}'; }
echo "## throughput: wrk -t1 -c64 -d${dur}s, $runs interleaved runs (adedge body $size bytes, profile read on every request)"
: > "$work/t-file"; : > "$work/t-base"; : > "$work/t-aero"; : > "$work/t-ratio"
for i in $(seq 1 "$runs"); do
  a=$(rps "http://127.0.0.1:28080/v1/ad?$q"); b=$(rps http://127.0.0.1:28081/); c=$(rps "http://127.0.0.1:28082/v1/ad?$q")
  r=$(echo "scale=3; $a / $b" | bc)
  echo "run $i: adedge(file) $a req/s, baseline $b req/s, ratio $r; adedge(aerospike) $c req/s"
  echo "$a" >> "$work/t-file"; echo "$b" >> "$work/t-base"; echo "$c" >> "$work/t-aero"; echo "$r" >> "$work/t-ratio"
done
maxf=$(median < "$work/t-file"); maxa=$(median < "$work/t-aero")
echo "median: adedge(file) $maxf, baseline $(median < "$work/t-base"), ratio $(median < "$work/t-ratio"), adedge(aerospike) $maxa"

lat() { # name url-base admin-port rate
  local before=$work/m-before after=$work/m-after
  [ -n "$3" ] && curl -s "http://127.0.0.1:$3/metrics" > "$before"
  cli "$bin/adtool" loadgen --quiet --target "$2" --path "$4" --inventory "$work/inv" --rate "$5" --duration ${dur}s --conns 64 | grep -E 'rate|latency|status' | sed "s/^/  $1: /" || true
  if [ -n "$3" ]; then
    curl -s "http://127.0.0.1:$3/metrics" > "$after"
    echo "  $1: $(python3 tools/bench/histq.py "$before" "$after" adedge_ad_request_duration_seconds)"
  fi
}
echo
half=$((maxf / 2))
echo "## latency at half of adedge(file)'s max: $half req/s for ${dur}s, loadgen request mix (skewed devices, 10% without one)"
lat "adedge(file)     " http://127.0.0.1:28080 29080 /v1/ad $half
lat "baseline (floor) " http://127.0.0.1:28081 "" / $half
echo
halfa=$((maxa / 2))
echo "## latency at half of adedge(aerospike)'s max: $halfa req/s for ${dur}s (aerofake shares CPU 1 with the load generator)"
lat "adedge(aerospike)" http://127.0.0.1:28082 29082 /v1/ad $halfa
lat "baseline (floor) " http://127.0.0.1:28081 "" / $halfa
curl -s http://127.0.0.1:29082/metrics | grep '^adedge_profile_lookups_total' | sed 's/^/  /'
echo
rate=$((half / 2))
echo "## snapshot swap every 2 s under load ($rate req/s, 20 s), p99 vs no swaps"
curl -s http://127.0.0.1:29080/metrics > "$work/m0"
cli "$bin/adtool" loadgen --quiet --json --target http://127.0.0.1:28080 --inventory "$work/inv" --rate $rate --duration 20s > "$work/noswap.json" || true
curl -s http://127.0.0.1:29080/metrics > "$work/m1"
# The copy runs on the server's CPU: on an edge the fetcher shares the box.
srv bash -c '(
  end=$((SECONDS + 20)); n=0
  while [ $SECONDS -lt $end ]; do
    sleep 2; n=$((n + 1))
    f=$(ls "$work"/alt/*.snap | sed -n "${n}p"); [ -n "$f" ] || break
    cp "$f" "$work/snap/.tmp-$n" && mv "$work/snap/.tmp-$n" "$work/snap/$(basename "$f")"
    curl -s -X POST http://127.0.0.1:29080/admin/reload > /dev/null || true
  done
)' & swapper=$!
cli "$bin/adtool" loadgen --quiet --json --target http://127.0.0.1:28080 --inventory "$work/inv" --rate $rate --duration 20s > "$work/swap.json" || true
wait $swapper
curl -s http://127.0.0.1:29080/metrics > "$work/m2"
echo "  no swaps  $(python3 tools/bench/histq.py "$work/m0" "$work/m1" adedge_ad_request_duration_seconds)"
echo "  swap/2s   $(python3 tools/bench/histq.py "$work/m1" "$work/m2" adedge_ad_request_duration_seconds)"
python3 - "$work/noswap.json" "$work/swap.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for name, r in (("no swaps", a), ("swap/2s", b)):
    bad = sum(v for k, v in r["status"].items() if not k.startswith("2")) + r["errors"]
    l = r["latency_us"]
    print(f"  {name:9s} p50 {l['p50']:.0f}us p99 {l['p99']:.0f}us p99.9 {l['p99.9']:.0f}us, non-2xx+errors {bad} of {r['sent']}")
print(f"  p99 ratio swap/no-swap {b['latency_us']['p99']/a['latency_us']['p99']:.2f}")
PY
curl -s http://127.0.0.1:29080/metrics | grep -E '^adedge_snapshot_(swaps_total|rejected_total|open_mappings)' | sed 's/^/  /'
