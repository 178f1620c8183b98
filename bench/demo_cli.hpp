// bench/demo_cli.hpp — `uipc demo`: a quick evaluation (reduced IPC sweep, idle measurement,
// report and plots, headline ratios) in about ten seconds.  See docs/report.md.
#pragma once

namespace CLI {
class App;
}

namespace uipc::bench {

// Adds the `demo` subcommand to the top-level app.
void add_demo_command(CLI::App& app);

}  // namespace uipc::bench
