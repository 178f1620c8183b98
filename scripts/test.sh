#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then builds and runs every test
# in the normal (release, with the full 10-million-call stress), ASan+UBSan and TSan builds.
# Usage: scripts/test.sh [preset ...]   (default: release asan tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

presets=("$@")
((${#presets[@]})) || presets=(release asan tsan)
jobs=$(nproc)
failed=()
start=$(date +%s)
for p in "${presets[@]}"; do
  echo "=== uipc tests: $p build ==="
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p" -j"$jobs"
  # The model checks do not depend on the build: run them once, with the release tests.
  exclude=()
  [[ $p == release ]] || exclude=(-LE model)
  if ! ctest --preset "$p" -j"$jobs" --timeout 900 "${exclude[@]}"; then
    failed+=("$p")
  fi
done
echo "=== uipc tests: $(( $(date +%s) - start )) s ==="
if ((${#failed[@]})); then
  echo "uipc tests FAILED in: ${failed[*]}"
  exit 1
fi
echo "uipc tests: all passed (${presets[*]})"
