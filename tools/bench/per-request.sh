#!/usr/bin/env bash
# Syscalls, context switches and CPU time per request of one server under
# wrk, read from /proc (no strace: it would change what it measures). The
# server runs pinned to CPU 0 and wrk to CPU 1, both at SCHED_FIFO 1 (root);
# one unmeasured second of load, then ${SECS:-5} s measured. Used to compare
# adedge with the trivial handler (docs/BENCHMARKS.md, issue 13, "same
# syscalls, more user CPU"). The server's output goes to
# ${WORK:-/tmp}/per-request-LABEL.log.
#
#   tools/bench/per-request.sh LABEL URL -- SERVER-COMMAND...
set -euo pipefail
if (($# < 4)) || [[ $3 != -- ]]; then
	echo "usage: $0 LABEL URL -- SERVER-COMMAND..." >&2
	exit 2
fi
label=$1 url=$2 log=${WORK:-/tmp}/per-request-$1.log
shift 3
chrt -f 1 taskset -c 0 "$@" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	curl -s -o /dev/null "$url" && break
	kill -0 $pid 2>/dev/null || { echo "$label: server exited before answering $url; its output: $log" >&2; exit 1; }
	sleep 0.1
done
chrt -f 1 taskset -c 1 wrk -t1 -c64 -d1s "$url" >/dev/null
snap() { # syscr syscw voluntary involuntary utime stime (all threads)
	local r w v=0 i=0 t
	r=$(awk '/^syscr/{print $2}' /proc/$pid/io)
	w=$(awk '/^syscw/{print $2}' /proc/$pid/io)
	for t in /proc/$pid/task/*/status; do
		v=$((v + $(awk '/^voluntary_ctxt/{print $2}' "$t")))
		i=$((i + $(awk '/^nonvoluntary_ctxt/{print $2}' "$t")))
	done
	echo "$r $w $v $i $(awk '{print $14, $15}' /proc/$pid/stat)"
}
a=$(snap)
out=$(chrt -f 1 taskset -c 1 wrk -t1 -c64 -d"${SECS:-5}"s "$url")
b=$(snap)
n=$(awk '/requests in/{print $1}' <<<"$out")
rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
tick=$(getconf CLK_TCK)
awk -v label="$label" -v rps="$rps" -v n="$n" -v tick="$tick" -v a="$a" -v b="$b" 'BEGIN {
	split(a, x); split(b, y)
	printf "%s: %s req/s, per request: %.3f reads, %.3f writes, %.4f voluntary + %.4f involuntary switches, %.2f us user, %.2f us sys\n",
		label, rps, (y[1]-x[1])/n, (y[2]-x[2])/n, (y[3]-x[3])/n, (y[4]-x[4])/n, (y[5]-x[5])*1e6/tick/n, (y[6]-x[6])*1e6/tick/n
}'
