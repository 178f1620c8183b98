// bench/ipc_cli.hpp — the `uipc bench ipc` subcommand (options, validation, the run, the table,
// the JSON lines).  tools/uipc.cpp builds the command tree and hands the `bench` group here.
#pragma once

namespace CLI {
class App;
}

namespace uipc::bench {

// Adds the `ipc` subcommand to the `bench` group.  Usage errors surface from App::parse as
// CLI::ParseError (the caller maps them to exit code 2); the benchmark runs in the subcommand's
// callback, during App::parse.
void add_ipc_bench(CLI::App& bench);

}  // namespace uipc::bench
