#!/usr/bin/env bash
# The share of an edge's CPU its event log takes, within one run: the
# steadier figure for "decision logging on vs off" on a machine where req/s
# moves 20% between runs of the same binary (docs/BENCHMARKS.md, "Billing
# events"). The edge is pinned to CPU 0 and saturated by `wrk -t1 -c64`
# pinned to CPU 1; `perf record -g -e cpu-clock -C 0` samples CPU 0 for 4 s;
# each sample is charged to the log when its stack passes through the
# edge's recordDecision, the events or wal packages, or is a kworker (the
# page cache's writeback). 1 - LOG% is the on/off throughput ratio the log
# allows.
#
#   tools/bench/log-share.sh BIN LABEL [ADEDGE FLAGS...]   (@EVENTS@: a fresh events dir)
#
# WORK (default /tmp/pinned-ab) is tools/bench/pinned-ab.sh's: run that once
# to build the medium inventory and snapshot. WARM=MiB as in pinned-ab.sh.
# Needs root (perf), wrk, python3.
set -euo pipefail
bin=$1 label=$2
shift 2
work=${WORK:-/tmp/pinned-ab}
[[ -f $work/placement ]] || { echo "log-share: no $work/placement: run tools/bench/pinned-ab.sh 1 'x|$bin||' first" >&2; exit 2; }
if ((${WARM:-2048} > 0)); then
	dd if=/dev/zero of="$work/warm" bs=1M count="${WARM:-2048}" status=none
	rm -f "$work/warm"
fi
out=$work/share-$label
ev=$work/events-share-$$
flags="$*"
flags=${flags//@EVENTS@/$ev}
port=$((20000 + RANDOM % 20000))
# shellcheck disable=SC2086
taskset -c 0 "$bin" --snapshot-dir "$work/snap" --listen 127.0.0.1:$port --admin 127.0.0.1:$((port + 1)) \
	--profiles "file:$work/inv/profiles.jsonl" --token-key "$work/token.key" $flags >"$out.edge.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$ev"' EXIT
url="http://127.0.0.1:$port/v1/ad?placement=$(cat "$work/placement")&country=US&os=android&osv=12&device=$(cat "$work/device")"
for _ in $(seq 100); do curl -s -o /dev/null "$url" && break; kill -0 $pid || exit 1; sleep 0.1; done
taskset -c 1 wrk -t1 -c64 -d1s "$url" >/dev/null
taskset -c 1 wrk -t1 -c64 -d8s "$url" >"$out.wrk" &
wp=$!
# perf must sample the steady state: wait until wrk's connections are up.
until [[ $(ss -Htn state established "( sport = :$port )" | wc -l) -ge 64 ]]; do kill -0 $wp || break; sleep 0.05; done
perf record -q -g -e cpu-clock -C 0 -o "$out.perf" -- sleep 4 2>/dev/null
wait $wp
perf script -i "$out.perf" 2>/dev/null >"$out.script"
python3 - "$label" "$(awk '/Requests\/sec/{print $2}' "$out.wrk")" "$out.script" <<'PY'
import sys
label, rps, path = sys.argv[1:4]
cats, tot = {}, 0
for s in open(path).read().split('\n\n'):
    lines = s.strip().split('\n')
    if not lines[0].strip():
        continue
    tot += 1
    comm, st = lines[0].split()[0], '\n'.join(lines[1:])
    if comm.startswith('kworker'): k = 'kworker'
    elif comm == 'swapper': k = 'idle'
    elif 'recordDecision' in st: k = 'recordDecision'
    elif 'events/wal.' in st: k = 'wal'
    elif 'server/events.' in st: k = 'recorder'
    else: k = 'other'
    cats[k] = cats.get(k, 0) + 1
log = sum(v for k, v in cats.items() if k in ('kworker', 'recordDecision', 'wal', 'recorder'))
print(label, 'req/s', rps, 'samples', tot, ' '.join('%s=%.1f%%' % (k, 100 * v / tot) for k, v in sorted(cats.items())), 'LOG=%.1f%%' % (100 * log / tot))
PY
