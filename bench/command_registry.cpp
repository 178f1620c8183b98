// bench/command_registry.cpp — see command_registry.hpp.
#include "command_registry.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace uipc::bench {
namespace {

struct Entry {
  Group group;
  std::string name;
  AddCommand add;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> entries;  // function-local: safe from static-initialisation order
  return entries;
}

}  // namespace

CommandRegistration::CommandRegistration(Group group, const char* name, AddCommand add) {
  for (const Entry& e : registry())
    if (e.group == group && e.name == name) {
      std::fprintf(stderr, "uipc: internal error: command '%s' registered twice\n", name);
      std::abort();
    }
  registry().push_back({group, name, add});
}

void add_registered_commands(CLI::App& top, CLI::App& bench) {
  std::vector<Entry> sorted = registry();
  std::sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  for (const Entry& e : sorted) e.add(e.group == Group::top ? top : bench);
}

}  // namespace uipc::bench
