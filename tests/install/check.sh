#!/usr/bin/env bash
# Installs the built uipc into a scratch prefix, then builds and runs a separate project against
# it twice: once through find_package(uipc), once through pkg-config.
# Usage: check.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/tests/install/consumer" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/consumer"
echo "find_package(uipc): built and ran"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
g++ -std=c++20 -o "$work/pc_consumer" "$src/tests/install/consumer/main.cpp" $(pkg-config --cflags --libs uipc)
"$work/pc_consumer"
echo "pkg-config uipc: built and ran"
