#!/usr/bin/env bash
# Reruns the measurements behind docs/answers.md: `uipc bench wakeup`, `channels`, `placement` and
# `order`, each REPEAT times (default 3) with --seconds SECONDS (default 0.5), into
# DIR/<bench>-<run>.jsonl, then `uipc report --in DIR --out DIR/report`.  Each run's start time and
# the load average go to DIR/log.txt, so a noisy run can be told from a quiet one.
# Usage: scripts/eval-run.sh [--out DIR] [--repeat N] [--seconds S] [--uipc PATH]
# Runs under `nice -n -10` when allowed (root), as the numbers in docs/answers.md were taken.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/eval
repeat=3
seconds=0.5
uipc=build/release/uipc
while (($#)); do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift ;;
    --repeat) repeat="${2:?--repeat needs a number}"; shift ;;
    --seconds) seconds="${2:?--seconds needs a number}"; shift ;;
    --uipc) uipc="${2:?--uipc needs a path}"; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "eval-run: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$repeat" =~ ^[1-9][0-9]?$ ]] || { echo "eval-run: --repeat must be 1..99" >&2; exit 2; }
[[ -x "$uipc" ]] || { echo "eval-run: '$uipc' is not an executable uipc (build: cmake --build --preset release --target uipc_tool)" >&2; exit 2; }
mkdir -p "$out"
nice=()
nice -n -10 true 2>/dev/null && nice=(nice -n -10)
for ((i = 1; i <= repeat; i++)); do
  for b in wakeup channels placement order; do
    if [[ -s "$out/$b-$i.jsonl" ]]; then
      echo "eval-run: $out/$b-$i.jsonl exists, skipped (delete it to measure again)"
      continue
    fi
    echo "== $b run $i $(date -u '+%F %T') load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/log.txt"
    # A run cut short leaves a partial file: written to a temporary name (emptied first: --json
    # appends) and renamed when complete.
    rm -f "$out/$b-$i.jsonl.part"
    "${nice[@]}" "$uipc" bench "$b" --seconds "$seconds" --json "$out/$b-$i.jsonl.part" | tee -a "$out/log.txt"
    mv "$out/$b-$i.jsonl.part" "$out/$b-$i.jsonl"
  done
done
"$uipc" report --in "$out"/*.jsonl --out "$out/report"
