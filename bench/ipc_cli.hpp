// bench/ipc_cli.hpp — the `uipc bench ipc` subcommand (options, validation, the run, the table,
// the JSON lines).  tools/uipc.cpp builds the command tree and hands the `bench` group here.
// The pieces other commands reuse (`uipc bench all`, `uipc demo`) are declared below: the machine
// facts, one scenario's JSON line, the default mode order and CPUs.
#pragma once

#include "facts.hpp"
#include "harness.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace uipc::bench {

// Adds the `ipc` subcommand to the `bench` group.  Usage errors surface from App::parse as
// CLI::ParseError (the caller maps them to exit code 2); the benchmark runs in the subcommand's
// callback, during App::parse.
void add_ipc_bench(CLI::App& bench);


// One scenario's JSON line, fields in the documented order, timestamp = now.
// line_ns, line_after_ns: the cache-line round trips (line_rtt_ns) taken just before and just
// after the scenario, 0 when not taken.
nlohmann::ordered_json ipc_json_line(const std::string& mode, const IpcParams& p, const IpcResult& r, const Facts& f,
                                     double line_ns = 0, double line_after_ns = 0);

// A scenario measured as round `round` of `rounds` (> 1; `--rounds` of bench ipc, demo, bench
// all): its note starts with round_label(), "round r/N", and IpcResult::round is set, so its
// JSON line (ipc_json_line) carries `round`. Nothing when rounds <= 1 (round_label: "").
std::string round_label(unsigned round, unsigned rounds);
void mark_round(IpcResult& r, unsigned round, unsigned rounds);

// The modes a --modes LIST names, in its order, duplicates dropped; every registered mode (in
// ipc_mode_order()) when LIST is empty. An unknown name is a usage error (CLI::ValidationError,
// exit status 2) that lists the known ones.
std::vector<std::string> parse_ipc_modes(const std::string& list);

// Every registered mode, ordered async, sync, ring, uds, uds-epoll, pipe, then the rest by name.
std::vector<std::string> ipc_mode_order();

// The first two CPUs this process may run on, or {} when it may use fewer than two.
std::vector<int> default_ipc_cpus();

}  // namespace uipc::bench
