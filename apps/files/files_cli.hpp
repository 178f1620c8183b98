// apps/files/files_cli.hpp — command-line pieces `uipc sum`, `uipc cp` and `uipc bench files`
// share: the kernel executor's options. Parsing errors are usage errors (exit status 2).
#pragma once

#include <string>

#include "files/files.hpp"

namespace CLI {
class App;
}

namespace uipc::apps::files {

struct ExecOptionStrings {
  std::string wake, placement, backend;
};

void add_executor_options(CLI::App& app, ExecOptionStrings& s);
ExecConfig parse_exec(const ExecOptionStrings& s);  // defaults for empty strings

}  // namespace uipc::apps::files
