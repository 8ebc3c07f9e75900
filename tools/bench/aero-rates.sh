#!/usr/bin/env bash
# Edge with real Aerospike profiles at fixed rates, variants side by side:
# the Aerospike kit's server and `adtool loadgen` pinned to CPU 1, each
# variant's edge to CPU 0, 5 s per rate (0.5 s warm-up), the edge's profile
# outcomes from /metrics after each run. The harness behind
# docs/BENCHMARKS.md, "2026-12-03: a busy pool is not a dead node".
#
#   tools/bench/aero-rates.sh 'RATE ...' BIN ...
#
# WORK (default /tmp/pinned-ab) as in pinned-ab.sh (run that once first);
# KIT (default ../shared/aerospike) is the server kit. AS_FIFO, GEN_FIFO and
# EDGE_FIFO, when set, run the server, the generator and the edge at
# SCHED_FIFO with that priority (root): the suite's --fifo is AS_FIFO=2
# GEN_FIFO=1 EDGE_FIFO=1 (docs/BENCHMARKS.md, "The store above the
# generator").
set -euo pipefail
rates=$1
shift
work=${WORK:-/tmp/pinned-ab}
kit=${KIT:-../shared/aerospike}
adtool=${ADTOOL:-bin/adtool}
fifo() { [[ -n ${1:-} ]] && echo "chrt -f $1"; true; }
[[ -f $work/placement ]] || { echo "aero-rates: no $work/placement: run tools/bench/pinned-ab.sh once first" >&2; exit 2; }
asd=$(mktemp -d)
aport=$((3100 + RANDOM % 1000 * 4))
$(fifo "${AS_FIFO:-}") taskset -c 1 "$kit/start.sh" "$asd" $aport >/dev/null
trap '"$kit/stop.sh" "$asd" >/dev/null 2>&1 || true; rm -rf "$asd"' EXIT
"$adtool" profiles load --from "$work/inv/profiles.jsonl" --to "aerospike://127.0.0.1:$aport/profiles/profiles" >/dev/null
for rate in $rates; do
	for bin in "$@"; do
		port=$((40000 + RANDOM % 10000))
		$(fifo "${EDGE_FIFO:-}") taskset -c 0 "$bin" --snapshot-dir "$work/snap" --listen 127.0.0.1:$port --admin 127.0.0.1:$((port + 1)) \
			--profiles "aerospike://127.0.0.1:$aport/profiles/profiles" --token-key "$work/token.key" >"$work/edge-aero.log" 2>&1 &
		pid=$!
		for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$((port + 1))/health" && break; sleep 0.1; done
		echo "== $bin at $rate req/s"
		$(fifo "${GEN_FIFO:-}") taskset -c 1 "$adtool" loadgen --target "http://127.0.0.1:$port" --inventory "$work/inv" --rate "$rate" --duration 5s --warmup 500ms --quiet | grep -E '^(rate|latency)'
		curl -s "http://127.0.0.1:$((port + 1))/metrics" | awk '/^adedge_profile_lookups_total/{sub(/adedge_profile_lookups_total/, ""); printf "%s ", $0} END{print ""}'
		kill $pid
		wait $pid || true
	done
done
