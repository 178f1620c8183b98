// bench/command_registry.hpp — self-registering `uipc` subcommands.
//
// A source file in bench/ (or bench/peers/, apps/*/ linked into the tool) adds a command without
// touching tools/uipc.cpp:
//
//   static const uipc::bench::CommandRegistration reg{uipc::bench::Group::bench, "kv", add_kv_bench};
//
// Invariants: registration happens during static initialisation only (before main); main calls
// add_registered_commands() once, which adds every registered command to its group in name
// order, so `--help` lists are stable whatever the link order.  Two registrations of one name
// in one group abort at start-up with a message (a programming error, not a user error).
#pragma once

namespace CLI {
class App;
}

namespace uipc::bench {

enum class Group { top, bench };  // `uipc NAME` or `uipc bench NAME`

using AddCommand = void (*)(CLI::App& parent);

struct CommandRegistration {
  CommandRegistration(Group group, const char* name, AddCommand add);
};

// Adds every registered command under `top` or `bench`.
void add_registered_commands(CLI::App& top, CLI::App& bench);

}  // namespace uipc::bench
