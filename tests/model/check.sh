#!/usr/bin/env bash
# tests/model/check.sh -- model-check uipc's wake handshake with spin (see docs/model.md).
#
# usage: tests/model/check.sh [MODEL...]      (no MODEL: all of them)
#
#   handshake               levels 1+2, correct protocol       every check must pass
#   executor_wakeup         level 3, correct protocol          every check must pass
#   handshake_broken        level 1 without the re-check       every check must FAIL
#   handshake_idle_broken   level 2 without the re-check       every check must FAIL
#   handshake_drop_broken   pending bit dropped before the     every check must FAIL
#                           consumer is registered as waiter
#   executor_wakeup_broken  level 3 without the re-check       every check must FAIL
#   polling_window          a ring past the runtime's polling  safety and liveness must pass
#                           window, the runtime busy for ever
#   polling_window_broken   the same, re-armed only when the   assert and liveness must FAIL
#                           runtime turns idle (the old code)
#
# Checks of a correct model (each must report "errors: 0"):
#   safety    assertions + invalid end states, exhaustive, no spurious wake-ups
#   spurious  the same with futex_wait allowed to return spuriously (-DSPURIOUS)
#   liveness  ltl `live` (every message eventually consumed), pan -a -f (weak fairness)
# Checks of a broken model (each must find an error of the stated kind):
#   assert    the lost-wake-up monitor's assertion
#   endstate  invalid end state, monitor left out (-DNO_MONITOR)
#   liveness  acceptance cycle of ltl `live`, monitor left out
# (polling_window has no futex, so no spurious check, and its runtime never stops, so no
# end-state check.)
#
# Exit status: 0 all as expected, 1 otherwise, 77 if spin or a C compiler is missing.
# Environment: SPIN (default spin), PAN_CC (default gcc, else cc), MODEL_DEFS (extra spin -D
# flags for every check, e.g. MODEL_DEFS="-DN=8 -DCAP=4"), MODEL_KEEP=1 keeps the scratch
# directory (pan sources, trails) and prints where it is.
# Flag strings ($spin_defs, $cc_defs, $pan_args, $all_models) are split into words on purpose.
# shellcheck disable=SC2086
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
spin=${SPIN:-spin}
if ! command -v "$spin" >/dev/null 2>&1; then
  echo "check.sh: '$spin' not found (Debian/Ubuntu: apt-get install spin); skipping"
  exit 77
fi
cc=${PAN_CC:-}
if [ -z "$cc" ]; then
  if command -v gcc >/dev/null 2>&1; then cc=gcc; else cc=cc; fi
fi
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "check.sh: no C compiler ('$cc') to build pan; skipping"
  exit 77
fi

all_models="handshake handshake_hostile executor_wakeup polling_window handshake_broken handshake_idle_broken handshake_drop_broken handshake_hostile_broken executor_wakeup_broken polling_window_broken"
if [ $# -eq 0 ]; then set -- $all_models; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/uipc-model.XXXXXX") || exit 1
if [ "${MODEL_KEEP:-0}" = 1 ]; then
  echo "check.sh: scratch directory kept: $work"
else
  trap 'rm -rf "$work"' EXIT
fi
# Every model is copied next to the others so that the broken wrappers' #include resolves and
# pan's trail files land in the scratch directory.
cp "$here"/*.pml "$work"/ || exit 1

status=0

# run_check MODEL CHECK EXPECT SPIN_DEFS CC_DEFS PAN_ARGS
#   EXPECT: "pass", or the pan message a broken model must produce ("assertion violated",
#   "invalid end state", "acceptance cycle").
run_check() {
  local model=$1 check=$2 expect=$3 spin_defs="$4 ${MODEL_DEFS:-}" cc_defs=$5 pan_args=$6
  local dir="$work/$model.$check" out log errors states depth secs verdict
  mkdir -p "$dir" && cp "$work"/*.pml "$dir"/
  log="$dir/log"
  if ! (cd "$dir" && "$spin" -a $spin_defs "$model.pml") >"$log" 2>&1; then
    echo "$model: $check: spin -a failed"; sed 's/^/  /' "$log"; return 1
  fi
  if ! (cd "$dir" && "$cc" -O2 -w $cc_defs -o pan pan.c) >>"$log" 2>&1; then
    echo "$model: $check: compiling pan failed"; sed 's/^/  /' "$log"; return 1
  fi
  # -m: search depth limit (checked below), -w20: 2^20 hash slots (collisions are resolved,
  # the search stays exhaustive), -n: no unreached-code listing.
  out=$(cd "$dir" && ./pan -m1000000 -w20 -n $pan_args 2>&1)
  printf '%s\n' "$out" >>"$log"
  errors=$(printf '%s\n' "$out" | sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' | tail -n1)
  states=$(printf '%s\n' "$out" | sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' | tail -n1)
  depth=$(printf '%s\n' "$out" | sed -n 's/.*depth reached \([0-9][0-9]*\).*/\1/p' | tail -n1)
  secs=$(printf '%s\n' "$out" | sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' | tail -n1)
  verdict=FAIL
  if [ -z "$errors" ]; then
    verdict="FAIL (no result from pan)"
  elif printf '%s\n' "$out" | grep -q 'max search depth too small'; then
    verdict="FAIL (search depth limit hit: search incomplete)"
  elif [ "$expect" = pass ] && printf '%s\n' "$out" | grep -q 'Search not completed'; then
    verdict="FAIL (search not completed)"
  elif printf '%s\n' "$out" | grep -q 'out of memory'; then
    verdict="FAIL (pan ran out of memory: search incomplete)"
  elif [ "$expect" = pass ]; then
    [ "$errors" = 0 ] && verdict=ok
  else
    if [ "$errors" != 0 ] && printf '%s\n' "$out" | grep -q "pan:1: $expect"; then
      verdict="ok (fails as required: $expect)"
    elif [ "$errors" = 0 ]; then
      verdict="FAIL (broken model verified: expected $expect)"
    else
      verdict="FAIL (expected '$expect', got: $(printf '%s\n' "$out" | grep -m1 '^pan:1:'))"
    fi
  fi
  printf '%-24s %-9s states=%-9s depth=%-5s errors=%-3s time=%ss  %s\n' \
    "$model" "$check" "${states:-?}" "${depth:-?}" "${errors:-?}" "${secs:-?}" "$verdict"
  case $verdict in
    ok*) return 0 ;;
  esac
  grep -E '^pan|Warning|error' "$log" | head -n 10 | sed 's/^/  | /'
  if ls "$dir"/*.trail >/dev/null 2>&1; then
    echo "  counterexample (last steps of spin -t -p):"
    (cd "$dir" && "$spin" -t -p $spin_defs "$model.pml" 2>&1) | tail -n 25 | sed 's/^/  | /'
  fi
  return 1
}

for model in "$@"; do
  if [ ! -f "$here/$model.pml" ]; then
    echo "check.sh: unknown model '$model' (models: $all_models)"
    status=1
    continue
  fi
  case $model in
    polling_window)
      run_check "$model" safety   pass ""           "-DSAFETY -DNOCLAIM" "" || status=1
      run_check "$model" liveness pass ""           "-DNFAIR=3"          "-a -f" || status=1
      ;;
    polling_window_broken)
      run_check "$model" assert   "assertion violated" ""             "-DSAFETY -DNOCLAIM" "" || status=1
      run_check "$model" liveness "acceptance cycle"   "-DNO_MONITOR" "-DNFAIR=3"          "-a -f" || status=1
      ;;
    *_broken)
      run_check "$model" assert   "assertion violated" ""             "-DSAFETY -DNOCLAIM" "" || status=1
      run_check "$model" endstate "invalid end state"  "-DNO_MONITOR" "-DSAFETY -DNOCLAIM" "" || status=1
      run_check "$model" liveness "acceptance cycle"   "-DNO_MONITOR" "-DNFAIR=3"          "-a -f" || status=1
      ;;
    *)
      run_check "$model" safety   pass ""           "-DSAFETY -DNOCLAIM" "" || status=1
      run_check "$model" spurious pass "-DSPURIOUS" "-DSAFETY -DNOCLAIM" "" || status=1
      run_check "$model" liveness pass ""           "-DNFAIR=3"          "-a -f" || status=1
      ;;
  esac
done

exit $status
