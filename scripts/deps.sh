#!/usr/bin/env bash
# Installs, with apt-get, whatever of uipc's build and test dependencies is missing.
# Usage: scripts/deps.sh [extra-package ...]
set -euo pipefail

packages=(
  g++ cmake make pkg-config   # the toolchain
  libgtest-dev                # unit, stress and multi-process tests (GoogleTest)
  libcli11-dev                # the `uipc` command line (CLI11)
  nlohmann-json3-dev          # JSON results (nlohmann-json)
  liburing-dev                # the io_uring syscall backend (liburing)
  spin                        # model checking of the wake handshake (Promela/spin)
  gnuplot-nox                 # plots in reports
  clang libclang-rt-14-dev    # libFuzzer targets (tests/fuzz)
  libssl-dev                  # SHA-256 of `uipc sum` from libcrypto (SHA extensions); optional at build time
  strace fio                  # outside checks of the benchmarks (scripts/outside-checks.sh)
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "uipc: installing missing packages: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
