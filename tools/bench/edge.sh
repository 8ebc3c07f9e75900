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
work=${1:-/tmp/adedge-bench}
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
srv "$bin/adtool" baseline --listen 127.0.0.1:28081 > /dev/null 2>&1 & pids+=($!)
wait_http http://127.0.0.1:28080/health
wait_http http://127.0.0.1:28081/

# One fixed URL that fills, so every response has the same size as the baseline's body.
pl=$(sed -n 2p "$work/inv/placements.jsonl" | sed 's/.*"id":"\([^"]*\)".*/\1/')
url="http://127.0.0.1:28080/v1/ad?placement=$pl&country=US&os=android&osv=12"
size=$(curl -s -o /dev/null -w '%{size_download}' "$url")
echo "## throughput: wrk -t1 -c64 -d${dur}s, $runs interleaved runs (adedge body $size bytes)"
for i in $(seq 1 "$runs"); do
  a=$(cli wrk -t1 -c64 -d${dur}s "$url" | awk '/Requests\/sec/ {print $2}')
  b=$(cli wrk -t1 -c64 -d${dur}s http://127.0.0.1:28081/ | awk '/Requests\/sec/ {print $2}')
  echo "run $i: adedge $a req/s, baseline $b req/s, ratio $(echo "$a / $b" | bc -l | cut -c1-5)"
  echo "$a $b" >> "$work/tput.txt"
done
best=$(sort -n "$work/tput.txt" | awk '{print $1}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
half=$(echo "$best / 2" | bc)
rm -f "$work/tput.txt"
echo
echo "## latency at half of adedge's median max ($half req/s), loadgen mix from the medium inventory, ${dur}s"
cli "$bin/adtool" loadgen --quiet --target http://127.0.0.1:28080 --inventory "$work/inv" --rate "$half" --duration ${dur}s --conns 64 | sed 's/^/  file:      /'

"$bin/adtool" aerofake --listen 127.0.0.1:23000 > /dev/null 2>&1 & pids+=($!)
sleep 0.5
"$bin/adtool" profiles load --from "$work/inv/profiles.jsonl" --to aerospike://127.0.0.1:23000/test/profiles > /dev/null 2>&1
srv "$bin/adedge" --snapshot-dir "$work/snap" --listen 127.0.0.1:28082 --admin 127.0.0.1:29082 \
  --profiles aerospike://127.0.0.1:23000/test/profiles --token-key "$work/key" > "$work/edge-aero.log" 2>&1 & pids+=($!)
wait_http http://127.0.0.1:28082/health
cli "$bin/adtool" loadgen --quiet --target http://127.0.0.1:28082 --inventory "$work/inv" --rate "$half" --duration ${dur}s --conns 64 | sed 's/^/  aerospike: /'
curl -s http://127.0.0.1:29082/metrics | grep '^adedge_profile_lookups_total' | sed 's/^/  aerospike: /'

echo
rate=$((half / 2))
echo "## snapshot swap every 2 s under load ($rate req/s, 20 s), p99 vs no swaps"
cli "$bin/adtool" loadgen --quiet --json --target http://127.0.0.1:28080 --inventory "$work/inv" --rate $rate --duration 20s > "$work/noswap.json"
(
  end=$((SECONDS + 20)); n=0
  while [ $SECONDS -lt $end ]; do
    sleep 2; n=$((n + 1))
    f=$(ls "$work"/alt/*.snap | sed -n "${n}p"); [ -n "$f" ] || break
    cp "$f" "$work/snap/.tmp-$n" && mv "$work/snap/.tmp-$n" "$work/snap/$(basename "$f")"
    curl -s -X POST http://127.0.0.1:29080/admin/reload > /dev/null || true
  done
) & swapper=$!
cli "$bin/adtool" loadgen --quiet --json --target http://127.0.0.1:28080 --inventory "$work/inv" --rate $rate --duration 20s > "$work/swap.json"
wait $swapper
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
