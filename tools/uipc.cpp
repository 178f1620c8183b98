// tools/uipc.cpp — the `uipc` command line.  Subcommands are groups (`bench`, later `demo`,
// `report` ...); each leaf lives next to the code it drives (bench/ipc_cli.cpp for `bench ipc`).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include "all_cli.hpp"
#include "command_registry.hpp"
#include "demo_cli.hpp"
#include "ipc_cli.hpp"
#include "report.hpp"
#include "sys_cli.hpp"

namespace {

// The deepest subcommand the command line reached ("uipc bench ipc" -> ipc).
const CLI::App* deepest(const CLI::App& app) {
  const CLI::App* a = &app;
  while (!a->get_subcommands().empty()) a = a->get_subcommands().front();
  return a;
}

// "uipc bench ipc", for the hint after an error.
std::string command_path(const CLI::App* a) {
  std::string path = a->get_name();
  for (a = a->get_parent(); a != nullptr; a = a->get_parent()) path = a->get_name() + " " + path;
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "uipc: asynchronous IPC and asynchronous system calls for Linux.  Requests travel through "
      "shared-memory rings between a client and a server, and a runtime of coroutines keeps many "
      "of them in flight without entering the kernel for each one.  This tool measures it.",
      "uipc"};
  app.set_help_all_flag("--help-all", "Print help for every subcommand and exit");
  app.require_subcommand(1);
  app.footer("Run 'uipc <command> --help' for a command's options, e.g. 'uipc bench ipc --help'.");

  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: 'uipc bench ipc' compares uipc's IPC with the "
                                                "classic ways two threads talk (rings, sockets, pipes)");
  bench->require_subcommand(1);
  uipc::bench::add_ipc_bench(*bench);
  uipc::bench::add_all_bench(*bench);
  uipc::bench::add_sys_bench(*bench);

  uipc::bench::add_demo_command(app);
  uipc::bench::report::add_report_command(app);
  uipc::bench::add_registered_commands(app, *bench);  // bench/command_registry.hpp

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --help-all
    const CLI::App* at = deepest(app);
    const std::string path = command_path(at);
    if (e.get_name() == "RequiredError" && !at->remaining().empty()) {  // a word where a command goes
      std::fprintf(stderr, "%s: error: unknown command '%s' (see '%s --help')\n", app.get_name().c_str(),
                   at->remaining().front().c_str(), path.c_str());
      return 2;
    }
    std::fprintf(stderr, "%s: error: %s (see '%s --help')\n", app.get_name().c_str(), e.what(), path.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), e.what());
    return 1;
  }
  return 0;
}
