#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds uipc (release), runs the
# cross-process echo example, then the IPC benchmark in quick mode against its peers, writing
# JSON results to results/.
# Usage: scripts/demo.sh [extra 'uipc bench ipc' options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target uipc_tool uipc_echo_server uipc_echo_client
bin=build/release
mkdir -p results

echo "=== two processes, one shared-memory channel each ==="
sock=$(mktemp -u /tmp/uipc-demo-XXXXXX.sock)
"$bin/examples/uipc_echo_server" "$sock" --max-clients 2 &
server=$!
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.05; done
"$bin/examples/uipc_echo_client" "$sock" "hello from process $$" --repeat 100000 --inflight 32
"$bin/examples/uipc_echo_client" "$sock" "second client"
wait "$server"

echo "=== IPC benchmark (quick): uipc async vs sync and the classic peers ==="
"$bin/uipc" bench ipc --quick --json results/ipc.json "$@"
echo "results: results/ipc.json"
