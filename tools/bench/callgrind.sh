#!/usr/bin/env bash
# User-space instructions per request of a running server, from callgrind:
# hardware-independent (the neighbours on a shared machine do not move it),
# unlike req/s. The server runs under valgrind; after a warm-up the
# counters are zeroed, N requests are sent with hey, and the counters are
# dumped: instructions / N covers everything the process does per request
# (fasthttp, the handler, the Go runtime's scheduler and poller), the
# kernel's side of the syscalls excluded.
#
#   tools/bench/callgrind.sh NAME URL N -- SERVER-COMMAND...
#
# Prints "NAME: I instructions/request (T total over N)". Build the server
# with CGO_ENABLED=0 and run with GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off:
# valgrind 3.19 cannot decode RDTSCP (SIGILL in runtime.cputicks) and its
# callgrind asserts on Go's preemption signals (threads.c:247
# vgCallgrind_post_signal); the script sets both variables.
#
# CALLGRIND_KEEP=FILE keeps the profile (callgrind_annotate --inclusive=yes
# FILE shows where the instructions went; Go's inlined frames blur the
# per-function split, the totals are exact).
set -euo pipefail
name=$1 url=$2 n=$3
shift 3
[[ ${1:-} == -- ]] && shift
# measure runs the server under callgrind once: 0 and the total on stdout,
# 3 when valgrind died on its Go-signal assertion (threads.c:247, which
# it still does now and then despite asyncpreemptoff; a second attempt
# runs clean), 1 on any other failure.
measure() {
	local out vp total ok
	out=$(mktemp -d /tmp/callgrind-XXXXXX)
	GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$@" >"$out/server.log" 2>&1 &
	vp=$!
	# shellcheck disable=SC2064
	trap "kill $vp 2>/dev/null || true; wait $vp 2>/dev/null || true; rm -rf '$out'" RETURN
	for ((i = 0; i < 600; i++)); do curl -s -o /dev/null -m 5 "$url" && break; sleep 1; done
	hey -n 2000 -c 16 "$url" >/dev/null
	callgrind_control -z $vp >/dev/null
	ok=$(hey -n "$n" -c 16 "$url" | awk '/\[200\]/{print $2}')
	if [[ ${ok:-0} != "$n" ]]; then
		if grep -q "vgCallgrind_post_signal" "$out/server.log"; then
			return 3
		fi
		echo "$name: ${ok:-0} of $n requests answered 200 (server log: $out/server.log)" >&2
		cp "$out/server.log" "/tmp/callgrind-$name-server.log"
		return 1
	fi
	callgrind_control -d $vp >/dev/null
	for ((i = 0; i < 100; i++)); do ls "$out"/cg.*.1 >/dev/null 2>&1 && break; sleep 0.1; done
	sleep 1 # the dump file is written in one go once it exists; let it finish
	total=$(callgrind_annotate "$out"/cg.*.1 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}')
	[[ -n ${CALLGRIND_KEEP:-} ]] && cp "$out"/cg.*.1 "$CALLGRIND_KEEP"
	echo "$total"
}
for attempt in 1 2 3; do
	rc=0
	total=$(measure "$@") || rc=$?
	[[ $rc == 0 ]] && break
	[[ $rc == 3 ]] || exit 1
	echo "$name: valgrind died on its Go-signal assertion (attempt $attempt); again" >&2
done
[[ $rc == 0 ]] || { echo "$name: valgrind died on every attempt" >&2; exit 1; }
echo "$name: $((total / n)) instructions/request ($total total over $n)"
