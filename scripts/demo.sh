#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds uipc (release), runs the
# cross-process echo example, then `uipc demo`: a quick evaluation (reduced IPC sweep, idle CPU,
# report with plots, headline ratios) into results/ (docs/report.md).
# Usage: scripts/demo.sh [extra 'uipc demo' options, e.g. --quick or --out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target uipc_tool uipc_echo_server uipc_echo_client
bin=build/release

echo "=== two processes, one shared-memory channel each ==="
sock=$(mktemp -u /tmp/uipc-demo-XXXXXX.sock)
"$bin/examples/uipc_echo_server" "$sock" --max-clients 2 &
server=$!
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.05; done
"$bin/examples/uipc_echo_client" "$sock" "hello from process $$" --repeat 100000 --inflight 32
"$bin/examples/uipc_echo_client" "$sock" "second client"
wait "$server"

echo
echo "=== uipc demo: async IPC against sync, a raw ring and kernel peers; report and plots ==="
"$bin/uipc" demo "$@"
