#!/usr/bin/env bash
# Snapshot distribution benchmark (issue 4): 1 builder + N edges on loopback
# (127.0.0.10 and 127.0.0.11..), a snapshot of FACTOR x the "large" scale.
#
#   1. torrent, builder upload capped at RATE: bytes the builder uploaded vs
#      N x the file (what plain HTTP from the origin sends), and the time from
#      `adtool promote` until every edge serves the new version;
#   2. plain HTTP from the same capped builder: N parallel downloads of the
#      file (its web seed URL), time until all have it;
#   3. torrent with the builder uncapped: bytes the builder uploaded;
#   4. verify + swap time on the edges (their admin metrics).
#
# Usage: tools/bench/torrent.sh [--rows FILE] [WORKDIR]
#   --rows FILE: also write the figures as JSON lines for the bench suite
#   (make bench; tools/benchsuite reads them as report rows)
#   EDGES=8 FACTOR=1.7 RATE=50M MAXPEERS=2   (RATE: bytes/s, SI suffixes; 1.7 x large is ~570 MB;
#   MAXPEERS: adbuilder --max-peers; STALL=60s: adedge --stall-timeout, long so the runs measure
#   BitTorrent, not the web seed fallback; web seed bytes are reported either way)
# Needs ~ (2 + 2 x EDGES) x the snapshot size of disk in WORKDIR and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=
if [ "${1:-}" = --rows ]; then rows=$2; shift 2; fi
work=${1:-/tmp/adedge-bench-torrent}
EDGES=${EDGES:-8}
FACTOR=${FACTOR:-1.7}
RATE=${RATE:-50M}
MAXPEERS=${MAXPEERS:-2}
STALL=${STALL:-60s}
make build > /dev/null
bin=$PWD/bin
rm -rf "$work"
mkdir -p "$work"
bip=127.0.0.10 bport=27070 badmin=27071 eport=28080
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

log "generating inventory: scale large x $FACTOR"
"$bin/adtool" gen --quiet --scale large --factor "$FACTOR" --seed 1 --out "$work/inv"
rm -f "$work/inv/profiles.jsonl"
"$bin/adtool" keygen --out "$work/k" > /dev/null

bpid=
start_builder() {
  "$bin/adbuilder" serve --input "$work/inv" --data "$work/builder" --key "$work/k.key" \
    --listen $bip:$bport --admin 127.0.0.1:$badmin --upload-rate "$1" --max-peers "$MAXPEERS" --poll 1s --keep 3 \
    >> "$work/builder.log" 2>&1 &
  bpid=$!
  pids+=($bpid)
}
stop_builder() { kill "$bpid"; wait "$bpid" 2>/dev/null || true; }
staging() { curl -fs http://127.0.0.1:$badmin/admin/status | sed -n 's/.*"staging":"\([^"]*\)".*/\1/p'; }
# metric NAME_REGEX PORT: sum of matching series on an admin port.
metric() { curl -fs "http://127.0.0.1:$2/metrics" | awk -v re="$1" '$0 ~ re { s += $NF } END { printf "%.0f", s }'; }
bup() { metric '^adbuilder_distribution_bytes_total[{]direction="up"' $badmin; }
bweb() { metric '^adbuilder_distribution_bytes_total[{]direction="up",via="webseed"' $badmin; }
wait_staging_not() {
  for _ in $(seq 1 1200); do
    v=$(staging || true)
    if [ -n "$v" ] && [ "$v" != "$1" ]; then echo "$v"; return; fi
    sleep 0.5
  done
  log "no build"; tail "$work/builder.log" >&2; exit 1
}
# wait_all VERSION: seconds from now until every edge's /health names VERSION.
wait_all() {
  local t0 left i
  t0=$(now)
  for _ in $(seq 1 12000); do
    left=0
    for i in $(seq 1 "$EDGES"); do
      curl -fs "http://127.0.0.$((10 + i)):$eport/health" 2> /dev/null | grep -q "\"version\":\"$1\"" || left=$((left + 1))
    done
    [ $left = 0 ] && { calc "$(now) - $t0"; return; }
    sleep 0.1
  done
  log "edges did not all get $1"; exit 1
}

log "builder: upload capped at $RATE; building"
start_builder "$RATE"
v1=$(wait_staging_not "")
size=$(stat -c %s "$work/builder/snapshots/$v1.snap")
log "built $v1: $size bytes ($(calc "$size / 1048576" 1) MiB)"
for i in $(seq 1 "$EDGES"); do
  mkdir -p "$work/e$i"
  "$bin/adedge" --snapshot-dir "$work/e$i" --listen 127.0.0.$((10 + i)):$eport --admin 127.0.0.1:$((29000 + i)) \
    --manifest http://$bip:$bport/v1/manifest --pubkey "$work/k.pub" --manifest-poll 1s --keep 3 --stall-timeout "$STALL" \
    > "$work/e$i.log" 2>&1 &
  pids+=($!)
done
sleep 2

log "round 1: torrent, capped builder"
up0=$(bup)
t0=$(now)
"$bin/adtool" promote --builder http://127.0.0.1:$badmin "$v1" > /dev/null
t_torrent=$(wait_all "$v1")
up_capped=$(( $(bup) - up0 ))
web_capped=$(bweb)
verify=() swap=()
for i in $(seq 1 "$EDGES"); do
  m=$(curl -fs http://127.0.0.1:$((29000 + i))/metrics)
  verify+=("$(echo "$m" | awk '/^adedge_distribution_last_verify_seconds/ { print $2 }')")
  swap+=("$(echo "$m" | awk '/^adedge_distribution_last_swap_seconds/ { print $2 }')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
log "torrent: all $EDGES edges serving after ${t_torrent}s; builder uploaded $up_capped bytes ($web_capped by web seed)"

log "round 2: plain HTTP from the same capped builder ($EDGES parallel downloads)"
web0=$(bweb)
t0=$(now)
hp=()
for i in $(seq 1 "$EDGES"); do
  curl -fs -o "$work/http-$i.snap" "http://$bip:$bport/v1/webseed/$v1.snap" &
  hp+=($!)
done
for p in "${hp[@]}"; do wait "$p"; done
t_http=$(calc "$(now) - $t0")
http_bytes=$(( $(bweb) - web0 ))
rm -f "$work"/http-*.snap
log "http: all $EDGES downloads done after ${t_http}s ($http_bytes bytes)"

log "round 3: torrent, builder uncapped (new version)"
stop_builder
start_builder 0
sleep 1
touch "$work/inv/campaigns.jsonl"
v2=$(wait_staging_not "$v1")
up0=$(bup)
"$bin/adtool" promote --builder http://127.0.0.1:$badmin "$v2" > /dev/null
t_uncapped=$(wait_all "$v2")
up_uncapped=$(( $(bup) - up0 ))
log "uncapped: all serving after ${t_uncapped}s; builder uploaded $up_uncapped bytes"

{
  echo "edges $EDGES, snapshot $size bytes ($(calc "$size / 1048576" 1) MiB), cap $RATE, max-peers $MAXPEERS, stall-timeout $STALL, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "capped torrent: builder uploaded $up_capped bytes = $(calc "$up_capped / $size") x the file; HTTP would send $EDGES x = $(calc "$EDGES * $size" 0) bytes; saving $(calc "100 * (1 - $up_capped / ($EDGES * $size))" 1)%"
  echo "capped torrent: all edges serving after ${t_torrent}s; plain HTTP (download only) ${t_http}s: HTTP/torrent = $(calc "$t_http / $t_torrent") x"
  echo "capped torrent: of the builder's upload, $web_capped bytes went by web seed"
  echo "uncapped torrent: builder uploaded $up_uncapped bytes = $(calc "$up_uncapped / $size") x the file; all serving after ${t_uncapped}s"
  echo "verify (xxhash64 of the file) median $(median "${verify[@]}") s; file renamed into place to serving (open, section checksums, swap) median $(median "${swap[@]}") s"
} | tee "$work/results.txt"

if [ -n "$rows" ]; then
  mib=$(calc "$size / 1048576" 0)
  cmd="EDGES=$EDGES FACTOR=$FACTOR RATE=$RATE MAXPEERS=$MAXPEERS tools/bench/torrent.sh"
  sec="Distribution: 1 builder, $EDGES edges, $mib MiB snapshot, builder upload capped at $RATE (one run)"
  row() { printf '{"step":"distribution","section":"%s","what":"%s","figure":"%s","value":%s,"unit":"%s","target":"%s","command":"%s"}\n' "$sec" "$1" "$2" "$3" "$4" "$5" "$cmd"; }
  {
    row "bytes the builder uploaded / snapshot size (plain HTTP from the origin: $EDGES x)" "$(calc "$up_capped / $size") x ($(calc "100 * (1 - $up_capped / ($EDGES * $size))" 1)% less than HTTP; $web_capped bytes by web seed)" "$(calc "$up_capped / $size")" "x file" "<= 1.3"
    row "time until all $EDGES edges serve the new version: plain HTTP / torrent" "$(calc "$t_http / $t_torrent") x (torrent ${t_torrent} s, HTTP ${t_http} s)" "$(calc "$t_http / $t_torrent")" "ratio" ""
    row "uncapped builder: bytes uploaded / snapshot size" "$(calc "$up_uncapped / $size") x (all serving after ${t_uncapped} s)" "$(calc "$up_uncapped / $size")" "x file" ""
    row "new file on disk to serving on one edge: xxhash64 verify + (open, section checksums, swap), medians" "$(median "${verify[@]}") s + $(median "${swap[@]}") s" "$(calc "$(median "${verify[@]}") + $(median "${swap[@]}")")" "s" ""
  } > "$rows"
fi
