#!/usr/bin/env bash
# Outside checks: numbers that do not come from uipc's own counters (docs/answers.md, "Outside checks").
#
#  1. strace -c -f counts every system call the benchmark process makes.  Each scenario runs twice
#     under strace, a very short (0.01 s) and a long run; the difference of the two counts divided by the
#     difference of the calls completed is strace's kernel entries per call (set-up, warm-up
#     rules and teardown cancel out).  It is printed next to uipc's own kernel_entries_per_op
#     from the same traced runs.  strace slows every system call a lot, so a mode that sleeps
#     when it waits long enough sleeps more under strace: compare the two columns of one row, not
#     a row with an untraced run.
#  2. fio (psync and io_uring engines, 4 KiB random buffered reads of a 1 MiB file in the page
#     cache, the file uipc's pread workload uses) brackets `uipc bench sys --workloads pread`.
#
# Usage: scripts/outside-checks.sh [--quick] [--uipc PATH] [--out FILE] [--no-fio] [--no-strace]
#   --quick     short runs (a few seconds in all; what the ctest smoke.outside_checks runs)
#   --uipc      the uipc binary (default build/release/uipc)
#   --out       where the Markdown results go (default results/outside-checks.md)
# Exit status: 0 when every check ran, 1 when one failed, 2 on bad usage; a missing strace or fio
# is reported and that part skipped (install them with scripts/deps.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
quick=0
uipc=build/release/uipc
out=results/outside-checks.md
do_fio=1
do_strace=1
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --uipc) uipc="${2:?--uipc needs a path}"; shift ;;
    --out) out="${2:?--out needs a file}"; shift ;;
    --no-fio) do_fio=0 ;;
    --no-strace) do_strace=0 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "outside-checks: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ ! -x "$uipc" ]]; then
  echo "outside-checks: '$uipc' is not an executable uipc; build it (cmake --build --preset release --target uipc_tool) or pass --uipc" >&2
  exit 2
fi
# The short run measures (almost) only what every run pays once: set-up, teardown, the idle line.
if ((quick)); then short=0.01; long=0.4; fio_s=1; sys_s=0.2; reps=1; else short=0.01; long=2; fio_s=2; sys_s=0.5; reps=3; fi

mkdir -p "$(dirname "$out")"
work=$(mktemp -d /tmp/uipc-outside-XXXXXX)
trap 'rm -rf "$work"' EXIT
failed=0

# The first JSON line of FILE (bench ipc adds an idle line after async): "ops ops_per_s kernel_entries_per_op"
json_fields() {
  head -n 1 "$1" | sed -e 's/.*"ops_per_s":\([0-9.e+-]*\).*"kernel_entries_per_op":\([0-9.e+-]*\).*"ops":\([0-9]*\).*/\3 \1 \2/'
}
# The total calls of a `strace -c` summary.
strace_total() { awk '$NF == "total" { print $4 }' "$1"; }

{
  echo "# Outside checks"
  echo
  echo "Made by \`scripts/outside-checks.sh$( ((quick)) && echo ' --quick')\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -sr), uipc commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
} > "$out"

if ((do_strace)) && ! command -v strace >/dev/null; then
  echo "outside-checks: strace is not installed (Debian: apt-get install strace, or scripts/deps.sh); strace checks skipped" >&2
  echo "strace checks skipped: strace is not installed." >> "$out"
  do_strace=0
fi
if ((do_strace)); then
  {
    echo "## Kernel entries per call: strace -c -f against uipc's counters"
    echo
    echo "Each row: two runs under \`strace -c -f\` (${short} s and ${long} s measured); strace per call = (calls counted by strace in the long run − in the short run) ÷ (calls completed in the long run − in the short run), counting the 10% warm-up at the measured rate (strace makes the rate uneven, so take the last digits with ±10%). uipc per call: \`kernel_entries_per_op\` of the long traced run. Under strace every system call costs tens of microseconds, so the traced runs are much slower than untraced ones."
    echo
    echo "| scenario | command (plus --seconds S --json FILE) | calls/s traced | uipc kernel entries per call | strace system calls per call |"
    echo "|---|---|---:|---:|---:|"
  } >> "$out"
  scenarios=(
    "IPC async, 64 in flight|bench ipc --modes async --inflight 64 --sizes 64"
    "IPC sync, 1 in flight|bench ipc --modes sync --inflight 1 --sizes 64"
    "getppid, plain call|bench sys --workloads getppid --modes sync --inflight 1"
    "getppid async (hybrid, affine), 64 in flight|bench sys --workloads getppid --modes async-hybrid-affine-direct --inflight 64"
  )
  for s in "${scenarios[@]}"; do
    name=${s%%|*}
    args=${s#*|}
    declare -A calls=() ops=() rate=() kpo=()
    for len in "$short" "$long"; do
      rm -f "$work/r.jsonl"
      # shellcheck disable=SC2086
      # LeakSanitizer cannot run under ptrace: an ASan build is traced with leak checking off.
      if ! ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -c -o "$work/strace.txt" "$uipc" $args --seconds "$len" --json "$work/r.jsonl" > "$work/log.txt" 2>&1; then
        echo "outside-checks: '$uipc $args' failed under strace; its output:" >&2
        cat "$work/log.txt" >&2
        failed=1
        continue 2
      fi
      calls[$len]=$(strace_total "$work/strace.txt")
      read -r o r k < <(json_fields "$work/r.jsonl")
      ops[$len]=$(awk -v o="$o" -v r="$r" -v s="$len" 'BEGIN { printf "%.0f", o + r * (0.1 * s + 0.001) }')
      rate[$len]=$r
      kpo[$len]=$k
    done
    per_call=$(awk -v c1="${calls[$short]}" -v c2="${calls[$long]}" -v o1="${ops[$short]}" -v o2="${ops[$long]}" \
      'BEGIN { if (o2 - o1 <= 0) print "n/a (no more calls in the long run)"; else printf "%.4f", (c2 - c1) / (o2 - o1) }')
    printf '| %s | `uipc %s` | %.0f | %.4f | %s |\n' "$name" "$args" "${rate[$long]}" "${kpo[$long]}" "$per_call" >> "$out"
    printf 'outside-checks: %-48s uipc %.4f, strace %s kernel entries per call (%s + %s calls counted)\n' "$name" "${kpo[$long]}" "$per_call" "${calls[$short]}" "${calls[$long]}"
    unset calls ops rate kpo
  done
  echo >> "$out"
fi

if ((do_fio)) && ! command -v fio >/dev/null; then
  echo "outside-checks: fio is not installed (Debian: apt-get install fio, or scripts/deps.sh); fio checks skipped" >&2
  echo "fio checks skipped: fio is not installed." >> "$out"
  do_fio=0
fi
if ((do_fio)); then
  file="$work/data"
  head -c 1048576 /dev/zero | tr '\0' 'u' > "$file"
  cat "$file" > /dev/null  # in the page cache, like uipc's scratch file
  {
    echo "## 4 KiB random reads from the page cache: fio against uipc bench sys"
    echo
    echo "One 1 MiB file in the page cache, 4 KiB reads at random (fio) or rotating (uipc) page offsets, buffered, one thread issuing. fio: ${fio_s} s per row, \`--rw=randread --bs=4k --size=1M --invalidate=0 --time_based\`; uipc: \`bench sys --workloads pread --seconds ${sys_s}\`. ${reps} rounds, fio and uipc interleaved; reads/s: the median of the rounds (lowest–highest)."
    echo
    echo "| who | engine / mode | in flight | reads/s |"
    echo "|---|---|---:|---:|"
  } >> "$out"
  : > "$work/vals.txt"
  for ((round = 1; round <= reps; round++)); do
    for spec in "psync 1" "io_uring 1" "io_uring 16" "io_uring 64"; do
      read -r engine depth <<< "$spec"
      if ! fio --name=uipc-outside --filename="$file" --size=1M --bs=4k --rw=randread --ioengine="$engine" --iodepth="$depth" \
          --invalidate=0 --time_based --runtime="$fio_s" --output-format=terse --terse-version=3 > "$work/fio.txt" 2> "$work/fio.err"; then
        echo "outside-checks: fio --ioengine=$engine failed:" >&2
        cat "$work/fio.err" >&2
        failed=1
        continue
      fi
      iops=$(awk -F';' '$1 == "3" { print $8; exit }' "$work/fio.txt")
      if [[ -z "$iops" ]]; then
        echo "outside-checks: fio --ioengine=$engine wrote no terse result line:" >&2
        cat "$work/fio.txt" >&2
        failed=1
        continue
      fi
      echo "fio|$engine|$depth $iops" >> "$work/vals.txt"
      echo "outside-checks: round $round: fio $engine iodepth $depth: $iops reads/s"
    done
    rm -f "$work/sys.jsonl"
    if "$uipc" bench sys --workloads pread --modes sync,uring,async-hybrid-shared-direct,async-hybrid-shared-uring --inflight 1,16,64 \
        --seconds "$sys_s" --json "$work/sys.jsonl" > "$work/sys.txt" 2>&1; then
      while IFS= read -r line; do
        mode=$(sed -e 's/.*"mode":"\([^"]*\)".*/\1/' <<< "$line")
        n=$(sed -e 's/.*"inflight":\([0-9]*\).*/\1/' <<< "$line")
        r=$(printf '%.0f' "$(sed -e 's/.*"ops_per_s":\([0-9.e+-]*\).*/\1/' <<< "$line")")
        echo "uipc|$mode|$n $r" >> "$work/vals.txt"
        echo "outside-checks: round $round: uipc $mode, $n in flight: $r reads/s"
      done < "$work/sys.jsonl"
    else
      echo "outside-checks: uipc bench sys failed:" >&2
      cat "$work/sys.txt" >&2
      failed=1
    fi
  done
  # One row per (who, mode, in flight), in first-seen order: median (lowest-highest).
  awk '{ print $1 }' "$work/vals.txt" | awk '!seen[$0]++' | while IFS= read -r key; do
    mapfile -t v < <(awk -v k="$key" '$1 == k { printf "%.0f\n", $2 }' "$work/vals.txt" | sort -n)
    n=${#v[@]}
    med=${v[$(((n - 1) / 2))]}
    IFS='|' read -r who mode depth <<< "$key"
    echo "| $who | $mode | $depth | $med (${v[0]}–${v[$((n - 1))]}) |" >> "$out"
  done
  echo >> "$out"
fi

echo "outside-checks: results in $out"
exit "$failed"
