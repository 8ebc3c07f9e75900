#!/usr/bin/env bash
# /health latency while the edge is saturated with ad requests (issue 6).
#
#   bash tools/bench/health.sh [WORKDIR]
#
# Builds the binaries, generates the small inventory, builds a snapshot,
# starts one adedge, then measures a balancer-like probe (hey, 50 probes/s
# on one connection) first on an idle edge and then while wrk saturates the
# same edge with ad requests. Prints the probe's percentiles in both runs
# and the ad throughput. Needs wrk and hey (Debian packages).
# Environment: DURATION (default 20s), CONNS (wrk connections, default 64),
# THREADS (wrk threads, default 2), PORT (default 18080), PIN=1 to run the
# edge on CPU 1 (GOMAXPROCS=1) and wrk and hey on CPU 0 (taskset), so the
# load generator does not take the edge's CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/adedge-health-bench}
DURATION=${DURATION:-20s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
ADMIN=$((PORT + 1))
for p in wrk hey; do
  command -v $p >/dev/null || { echo "health.sh: $p is not installed (apt-get install $p)" >&2; exit 2; }
done
rm -rf "$work"; mkdir -p "$work/bin"
go build -o "$work/bin/adedge" ./server/cmd/adedge
go build -o "$work/bin/adbuilder" ./builder/cmd/adbuilder
go build -o "$work/bin/adtool" ./tools/cmd/adtool
"$work/bin/adtool" gen --scale small --seed 1 --out "$work/inv" >/dev/null
"$work/bin/adbuilder" build --input "$work/inv" --out "$work/snaps" --quiet
edgepin=() loadpin=()
if [ "${PIN:-0}" = 1 ]; then
  edgepin=(env GOMAXPROCS=1 taskset -c 1) loadpin=(taskset -c 0)
fi
"${edgepin[@]}" "$work/bin/adedge" --snapshot-dir "$work/snaps" --listen 127.0.0.1:$PORT --admin 127.0.0.1:$ADMIN \
  --drain-grace 0 2>"$work/adedge.log" &
edge=$!
trap 'kill $edge 2>/dev/null; wait $edge 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$PORT/health" && break
  sleep 0.05
done
ad="http://127.0.0.1:$PORT/v1/ad?placement=pl-0000002&country=US&os=ios&osv=17.1"
curl -fs -o /dev/null -w 'ad request: HTTP %{http_code}\n' "$ad"

probe() { # prints the hey latency distribution of /health
  "${loadpin[@]}" hey -z "$DURATION" -c 1 -q 50 "http://127.0.0.1:$PORT/health" | sed -n '/Latency distribution/,/^$/p;/Status code/,/^$/p'
}
echo "== /health, idle edge (hey -c 1 -q 50 -z $DURATION)"
probe | tee "$work/idle.txt"

echo "== /health while wrk -t$THREADS -c$CONNS -d$DURATION saturates /v1/ad"
"${loadpin[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$ad" >"$work/wrk.txt" &
wrkpid=$!
sleep 1
( sleep 3; curl -s "http://127.0.0.1:$PORT/health" > "$work/health-loaded.json" ) &
probe | tee "$work/loaded.txt"
wait $wrkpid
sed -n '/Latency Distribution/,/Requests\/sec/p' "$work/wrk.txt"
echo
printf '%-28s %s\n' "probe p50 idle / loaded:" "$(grep ' 50%' "$work/idle.txt" | awk '{print $3*1000 " ms"}') / $(grep ' 50%' "$work/loaded.txt" | awk '{print $3*1000 " ms"}')"
printf '%-28s %s\n' "probe p99 idle / loaded:" "$(grep ' 99%' "$work/idle.txt" | awk '{print $3*1000 " ms"}') / $(grep ' 99%' "$work/loaded.txt" | awk '{print $3*1000 " ms"}')"
printf '%-28s %s\n' "ad requests/s under load:" "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")"
printf '%-28s %s\n' "ad p50 / p99 under load:" "$(awk '$1=="50%" {a=$2} $1=="99%" {b=$2} END {print a " / " b}' "$work/wrk.txt")"
printf '%-28s %s\n' "/health under load:" "$(sed 's/.*\("in_flight":[0-9]*\),\("cpu":[0-9.]*\),\("weight_percent":[0-9]*\).*/\1 \2 \3/' "$work/health-loaded.json")"
