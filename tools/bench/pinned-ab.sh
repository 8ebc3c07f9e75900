#!/usr/bin/env bash
# Req/s of adedge variants side by side: each variant's edge pinned to CPU 0,
# `wrk -t1 -c64 -d${SECS:-5}s` pinned to CPU 1, the variants run in turn each
# round (reversed every other round), medians printed with every round's
# figure, and each variant's per-round ratio to the first. The harness behind
# docs/DECISIONS.md, "The event log's fsync must not hold the only P".
#
#   tools/bench/pinned-ab.sh ROUNDS 'LABEL|BIN|ENV|FLAGS' ...
#
# BIN is an adedge binary; ENV is space-separated VAR=value for it (may be
# empty); FLAGS are extra adedge flags, where @EVENTS@ becomes a fresh
# events directory under $WORK (@SHM@ one under /dev/shm). FIFO=1 runs edge
# and wrk at SCHED_FIFO 1 (root): only with one P per edge (two Ps on one
# CPU livelock under FIFO). WORK (default /tmp/pinned-ab) receives a medium
# inventory and snapshot built by $ADTOOL and $ADBUILDER (default bin/).
# WARM=MiB (default 2048; 0 skips) writes and deletes that much file data
# first: on a fresh VM the guest's memory is backed by the host on first
# touch, and until the page cache has been through it once every new
# page-cache page of the event log costs a host fault (measured: the log's
# pwrite share of the edge's CPU 6.4-6.9% cold, 2.0-2.5% warm; see
# docs/BENCHMARKS.md, "Billing events").
# Example:
#   tools/bench/pinned-ab.sh 5 'plain|bin/adedge||' 'logging|bin/adedge||--events-dir @EVENTS@'
set -euo pipefail
rounds=$1
shift
work=${WORK:-/tmp/pinned-ab}
adtool=${ADTOOL:-bin/adtool} adbuilder=${ADBUILDER:-bin/adbuilder}
rt=()
[[ -n ${FIFO:-} ]] && rt=(chrt -f 1)
if [[ ! -f $work/placement ]]; then
	mkdir -p "$work/snap"
	"$adtool" gen --quiet --scale medium --seed 1 --out "$work/inv"
	"$adbuilder" build --quiet --input "$work/inv" --out "$work/snap" --created 2026-11-22T00:00:00Z
	printf '\a%.0s' {1..32} | tr '\a' '\007' >"$work/token.key"
	head -1 "$work/inv/placements.jsonl" | sed -E 's/.*"id":"([^"]+)".*/\1/' >"$work/placement"
	sed -n 3p "$work/inv/profiles.jsonl" | sed -E 's/.*"device":"([^"]+)".*/\1/' >"$work/device"
fi
run() { # label bin env flags -> req/s
	local bin=$2 envs=$3 flags=${4//@EVENTS@/$work/events-$$-$RANDOM}
	flags=${flags//@SHM@//dev/shm/pinned-ab-$$-$RANDOM}
	local port admin pid url r
	for _ in 1 2 3; do
		port=$((20000 + RANDOM % 20000)) admin=$((port + 1))
		# shellcheck disable=SC2086
		env $envs "${rt[@]}" taskset -c 0 "$bin" --snapshot-dir "$work/snap" --listen 127.0.0.1:$port --admin 127.0.0.1:$admin \
			--profiles "file:$work/inv/profiles.jsonl" --token-key "$work/token.key" $flags >"$work/edge-$1.log" 2>&1 &
		pid=$!
		url="http://127.0.0.1:$port/v1/ad?placement=$(cat "$work/placement")&country=US&os=android&osv=12&device=$(cat "$work/device")"
		for _ in $(seq 100); do curl -s -o /dev/null "$url" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
		kill -0 $pid 2>/dev/null && break # else a port was taken: another one
	done
	"${rt[@]}" taskset -c 1 wrk -t1 -c64 -d1s "$url" >/dev/null
	r=$("${rt[@]}" taskset -c 1 wrk -t1 -c64 -d${SECS:-5}s "$url" | awk '/Requests\/sec/{print $2}')
	kill $pid; wait $pid 2>/dev/null || true
	rm -rf "$work"/events-$$-* /dev/shm/pinned-ab-$$-*
	echo "${r:-0}"
}
if ((${WARM:-2048} > 0)); then
	mkdir -p "$work"
	dd if=/dev/zero of="$work/warm" bs=1M count="${WARM:-2048}" status=none
	rm -f "$work/warm"
fi
declare -A res
specs=("$@")
for ((i = 0; i < rounds; i++)); do
	# Odd rounds run the variants in reverse order, so drift in the machine
	# between the first and the last run of a round cancels out.
	order=("${specs[@]}")
	if ((i % 2 == 1)); then
		order=()
		for ((k = ${#specs[@]} - 1; k >= 0; k--)); do order+=("${specs[k]}"); done
	fi
	for spec in "${order[@]}"; do
		IFS='|' read -r label bin envs flags <<<"$spec"
		res[$label]+="$(run "$label" "$bin" "$envs" "$flags") "
	done
done
base=${specs[0]%%|*}
for spec in "${specs[@]}"; do
	label=${spec%%|*}
	tr ' ' '\n' <<<"${res[$label]}" | grep . | sort -n | awk -v l="$label" '{a[NR]=$1} END{printf "%s: median %.0f req/s [", l, a[int((NR+1)/2)]; for(i=1;i<=NR;i++) printf "%s%.0f", (i>1?" ":""), a[i]; print "]"}'
	[[ $label == "$base" ]] && continue
	# The same round's runs paired: the ratio the machine's drift moves least.
	paste -d' ' <(tr ' ' '\n' <<<"${res[$label]}" | grep .) <(tr ' ' '\n' <<<"${res[$base]}" | grep .) |
		awk '$2 > 0 {print $1 / $2}' | sort -n | awk -v l="$label" -v b="$base" '{a[NR]=$1} END{printf "%s/%s per round: median %.3f, quartiles %.3f-%.3f, %d rounds\n", l, b, a[int((NR+1)/2)], a[int((NR+3)/4)], a[int((3*NR+3)/4)], NR}'
done
