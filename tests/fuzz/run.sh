#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++, ASan + UBSan), replays the inputs saved in
# tests/fuzz/crashes/, and runs each target for a short time on a fresh copy of its seed corpus.
# See docs/fuzzing.md.
#
# Usage: tests/fuzz/run.sh [build-dir]          (default build-dir: build/fuzz)
# Environment:
#   FUZZ_SECONDS=20      seconds per target (ignored when FUZZ_RUNS is set)
#   FUZZ_RUNS=N          run each target for N inputs instead
#   FUZZ_TARGETS="..."   a subset of: fuzz_channel_header fuzz_ring fuzz_hostile_peer
#   FUZZ_ARGS="..."      extra libFuzzer flags, e.g. "-jobs=2 -workers=2" or "-max_len=8192"
#   FUZZ_KEEP_CORPUS=1   keep the corpus grown by earlier runs in build-dir instead of starting
#                        again from the seeds
#   CLANGXX=clang++-14   the compiler (default: the first clang++ found)
# Exit: 0 when every target ran without a crash and every saved input passes; 1 on a build
# failure, a saved input that still fails, or any crash / sanitizer report / timeout (the input is
# saved under build-dir/artifacts/TARGET/); 77 when clang++ or libFuzzer is missing (ctest
# reports a skip).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build/fuzz}
mkdir -p "$out" && out=$(cd "$out" && pwd) || { echo "fuzz: cannot use $out as the build directory" >&2; exit 1; }
seconds=${FUZZ_SECONDS:-20}
runs=${FUZZ_RUNS:-}
targets=(${FUZZ_TARGETS:-fuzz_channel_header fuzz_ring fuzz_hostile_peer})
read -r -a extra <<<"${FUZZ_ARGS:-}"
jobs=2

# The library sources the targets need, compiled here rather than linked from the CMake library:
# the fuzzers must not depend on parts of src/ (src/sys) they do not use.
lib_sources=(
  src/abi/region.cpp src/ring/ring.cpp src/ipc/channel.cpp src/notify/futex.cpp
  src/notify/notification.cpp src/detail/frame_pool.cpp src/runtime/runtime.cpp
  src/ipc/client.cpp src/ipc/server.cpp src/ipc/peer_watch.cpp
)

skip() {
  echo "fuzz: SKIPPED: $*" >&2
  echo "fuzz: on Debian: apt-get install -y clang libclang-rt-14-dev (scripts/deps.sh)" >&2
  exit 77
}

cxx=${CLANGXX:-}
if [[ -z $cxx ]]; then
  for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$c" >/dev/null 2>&1; then cxx=$c; break; fi
  done
fi
[[ -n $cxx ]] && command -v "$cxx" >/dev/null 2>&1 || skip "no clang++ found"

# -fno-sanitize=function: clang 14 cannot emit UBSan's function-type prologue together with the
# fuzzer's coverage instrumentation in some coroutine code ("Cannot represent a difference across
# sections"); every other UBSan check stays on, and aborts.
san=(-fsanitize=address,undefined -fno-sanitize=function -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
cflags=(-std=c++20 -g -O1 "${san[@]}" -fsanitize=fuzzer-no-link -I"$root/include" -I"$here")
ldflags=(-fsanitize=fuzzer,address,undefined -fno-sanitize=function -pthread)

probe=$out/probe
mkdir -p "$probe"
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe/p.cpp"
"$cxx" -std=c++20 -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >"$probe/log" 2>&1 ||
  skip "$cxx cannot build a libFuzzer target (libFuzzer / sanitizer runtimes missing): $(head -c 300 "$probe/log")"

# ---- build ----------------------------------------------------------------------------------
# A generated Makefile: incremental, with header dependencies (-MMD), -j2 on the shared machine.
start=$(date +%s)
command -v make >/dev/null 2>&1 || skip "make not found"
obj=$out/obj
mkdir -p "$obj"
{
  echo "CXX := $cxx"
  echo "CXXFLAGS := ${cflags[*]}"
  echo "LDFLAGS := ${ldflags[*]}"
  printf 'LIB_OBJS :='
  for s in "${lib_sources[@]}"; do printf ' %s' "$obj/$(echo "$s" | tr / _).o"; done
  echo
  echo "all: ${targets[*]/#/$out/}"
  for s in "${lib_sources[@]}"; do
    printf '%s: %s %s\n\t$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@\n' "$obj/$(echo "$s" | tr / _).o" "$root/$s" "$obj/flags"
  done
  for t in "${targets[@]}"; do
    [[ -f $here/$t.cpp ]] || { echo "fuzz: no such target: $t" >&2; exit 1; }
    printf '%s: %s %s\n\t$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@\n' "$obj/$t.o" "$here/$t.cpp" "$obj/flags"
    printf '%s: %s $(LIB_OBJS)\n\t$(CXX) $(LDFLAGS) $^ -o $@\n' "$out/$t" "$obj/$t.o"
  done
  echo "-include $obj/*.d"
} >"$obj/Makefile.new" || exit 1
# Flags or compiler changed: everything is rebuilt (the objects depend on $obj/flags).
stamp="$cxx $("$cxx" --version | head -n1) ${cflags[*]} ${ldflags[*]}"
[[ -f $obj/flags && $(cat "$obj/flags") == "$stamp" ]] || printf '%s\n' "$stamp" >"$obj/flags"
mv "$obj/Makefile.new" "$obj/Makefile"
if ! make -s -j"$jobs" -f "$obj/Makefile" all; then
  echo "fuzz: build FAILED" >&2
  exit 1
fi
echo "fuzz: built ${targets[*]} with $cxx in $(( $(date +%s) - start )) s"

# ---- run ------------------------------------------------------------------------------------
# A smaller quarantine than ASan's 256 MB default: with millions of small inputs it otherwise
# holds most of the process's memory; use-after-free within a run is still caught.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=64}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# libFuzzer's default exit code for a finding is 77, which ctest would read as "skipped".
common=(-error_exitcode=1 -timeout_exitcode=1 -timeout=60)
limit=(-max_total_time="$seconds")
[[ -n $runs ]] && limit=(-runs="$runs")
status=0
summary=()
for t in "${targets[@]}"; do
  corpus=$out/corpus/$t
  if [[ ${FUZZ_KEEP_CORPUS:-0} != 1 ]]; then rm -rf "$corpus"; fi
  mkdir -p "$corpus" "$out/artifacts/$t" "$out/logs/$t"
  [[ -d $here/corpus/$t ]] && cp -n "$here/corpus/$t"/* "$corpus"/ 2>/dev/null
  rm -f "$out/logs/$t"/*.log
  log=$out/logs/$t/run.log
  # Inputs that once broke this target (tests/fuzz/crashes/TARGET-*) are replayed first: each
  # must pass once its bug is fixed.
  regressions=0
  for f in "$here/crashes/$t"-*; do
    [[ -f $f ]] || continue
    if ! (cd "$out/logs/$t" && "$out/$t" "${common[@]}" "$f" \
          >"$out/logs/$t/replay-$(basename "$f").log" 2>&1); then
      echo "fuzz: $t: saved input $(basename "$f") still fails (log: $out/logs/$t/replay-$(basename "$f").log)" >&2
      regressions=$((regressions + 1))
    fi
  done
  touch "$out/logs/$t/started"
  (cd "$out/logs/$t" && "$out/$t" "${common[@]}" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
      -artifact_prefix="$out/artifacts/$t/" "${limit[@]}" "${extra[@]}" "$corpus" >"$log" 2>&1)
  rc=$?
  found=$(find "$out/artifacts/$t" -type f -newer "$out/logs/$t/started" \
            \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  # With -jobs=N the workers log to fuzz-N.log (and the main log repeats them): count those.
  logs=()
  for f in "$out/logs/$t"/fuzz-*.log; do [[ -f $f ]] && logs+=("$f"); done
  ((${#logs[@]})) || logs=("$log")
  execs=$(cat "${logs[@]}" 2>/dev/null | awk '/^stat::number_of_executed_units:/ {s += $NF} END {print s + 0}')
  cov=$(cat "${logs[@]}" 2>/dev/null | grep -oE 'cov: [0-9]+ ft: [0-9]+' | tail -n1)
  crashes=$(printf '%s' "$found" | grep -c .)
  verdict=ok
  if ((rc != 0 || crashes != 0)); then
    verdict=FAILED
    status=1
    echo "---- $t: exit $rc; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    [[ -n $found ]] && printf 'fuzz: input saved: %s\n' $found >&2
  fi
  if ((regressions != 0)); then
    verdict="FAILED, $regressions saved input(s) in tests/fuzz/crashes still fail"
    status=1
  fi
  summary+=("$(printf '%-22s executions %10s  %-20s crashes %s  %s' "$t" "$execs" "${cov:-cov: ?}" "$crashes" "$verdict")")
done
if [[ -n $runs ]]; then per="$runs runs"; else per="$seconds s"; fi
echo "fuzz: results ($per per target; logs in $out/logs):"
printf '  %s\n' "${summary[@]}"
echo "fuzz: total $(( $(date +%s) - start )) s"
exit $status
