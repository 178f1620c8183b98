// bench/all_cli.hpp — `uipc bench all`: the full, resumable benchmark sweep into DIR/ipc.jsonl.
// See docs/report.md.
#pragma once

namespace CLI {
class App;
}

namespace uipc::bench {

// Adds the `all` subcommand to the `bench` group.
void add_all_bench(CLI::App& bench);

}  // namespace uipc::bench
