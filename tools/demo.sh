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

say "1. generate a small synthetic inventory (seed 1)"
"$bin/adtool" gen --scale small --seed 1 --out "$work/inventory"
ls -l "$work/inventory"

say "2. build the snapshot (validate, join, rank, write atomically)"
"$bin/adbuilder" build --input "$work/inventory" --out "$work/snapshots" --created 2026-11-22T00:00:00Z
cat "$work/snapshots/manifest.json" | head -20

snap=$(ls "$work"/snapshots/*.snap | head -1)
say "3. inspect $snap"
"$bin/adtool" inspect --top 5 "$snap"

say "4. verify checksums against the manifest"
"$bin/adtool" verify "$snap"

say "5. look up a placement: ranked candidates with eCPM"
pl=$(head -1 "$work/inventory/placements.jsonl" | sed 's/.*"id":"\([^"]*\)".*/\1/')
"$bin/adtool" lookup --snapshot "$snap" --placement "$pl" --country US --os android --limit 8

say "6. a bad inventory is refused with file:line, and nothing is written"
mkdir -p "$work/bad"
cp "$work"/inventory/*.json* "$work/bad/"
sed -i '3s/"bid_micros":[0-9]*/"bid_micros":-5/' "$work/bad/campaigns.jsonl"
echo '{"id":"broken' >> "$work/bad/creatives.jsonl"
if "$bin/adbuilder" build --quiet --input "$work/bad" --out "$work/bad-out"; then
  echo "demo: the bad inventory was accepted" >&2; exit 1
fi
test ! -e "$work/bad-out" && echo "(no output directory was created)"

say "demo done: files in $work"
