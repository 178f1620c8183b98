// bench/facts.hpp — what every benchmark's JSON line and table header record about the machine
// and the build (see docs/bench.md). Used by `uipc bench ...` and by the services' benchmarks.
#pragma once

#include <string>

namespace uipc::bench {

struct Facts {
  std::string cpu_model;
  unsigned cores = 1;
  std::string kernel;
  std::string build_type;  // "release" (NDEBUG) or "debug"
  std::string commit;      // short hash, or "unknown"
};
Facts machine_facts();     // reads /proc/cpuinfo, uname, runs git once

}  // namespace uipc::bench
