// bench/facts.hpp — what every benchmark's JSON line and table header record about the machine
// and the build (see docs/bench.md). Used by `uipc bench ...` and by the services' benchmarks.
#pragma once

#include <string>

#include "cli_common.hpp"

namespace uipc::bench {

struct Facts {
  std::string cpu_model;
  unsigned cores = 1;
  std::string kernel;
  std::string build_type;  // "release" (NDEBUG) or "debug"
  std::string commit;      // short hash, or "unknown"
};
Facts machine_facts();     // reads /proc/cpuinfo, uname, runs git once

// Appends the fields every JSON result line carries after its "note" (docs/bench.md): cpus,
// cpu_model, cores, kernel, build_type, commit, timestamp (now). Json: nlohmann::ordered_json.
template <class Json, class CpuList>
void append_facts(Json& j, const Facts& f, const CpuList& cpus) {
  j["cpus"] = cpus;
  j["cpu_model"] = f.cpu_model;
  j["cores"] = f.cores;
  j["kernel"] = f.kernel;
  j["build_type"] = f.build_type;
  j["commit"] = f.commit;
  j["timestamp"] = cli::utc_timestamp();
}

}  // namespace uipc::bench
