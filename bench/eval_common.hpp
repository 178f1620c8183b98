// bench/eval_common.hpp — what the evaluation benchmarks (`uipc bench wakeup`, `bench channels`,
// `bench placement`; docs/answers.md) share: their JSON line, the CPUs they pin to, appending to
// a result file without losing a line, and the keys `uipc bench all` resumes by.
//
// Invariants: every line written has the common schema (docs/bench.md) plus the scenario's own
// fields; a line is written and flushed as soon as its scenario ends, so an interrupted sweep
// loses at most the scenario that was running. A scenario's key (scenario_key) is the same
// string whether it is computed from the plan or read back from a file (record_key).
#pragma once

#include "cli_common.hpp"
#include "ipc_cli.hpp"
#include "report.hpp"

#include <nlohmann/json.hpp>

#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace uipc::bench::eval {

inline double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The CPUs to pin to: --cpus LIST, "none", or (absent) the first two this process may use.  With
// fewer than two the threads run unpinned and `why` says so (printed and put in every note).
struct Cpus {
  std::vector<int> list;
  std::string why;  // "" when pinned to two CPUs as asked
};
inline Cpus pick_cpus(const std::string& opt, bool given) {
  Cpus c;
  const std::set<int> allowed = cli::allowed_cpus();
  if (!given) {
    if (allowed.size() >= 2) c.list = {*allowed.begin(), *std::next(allowed.begin())};
    else c.why = "fewer than 2 CPUs available: threads unpinned and sharing one CPU";
    return c;
  }
  if (opt == "none" || opt.empty()) {
    c.why = "unpinned (--cpus none)";
    return c;
  }
  for (const auto& item : cli::split(opt, ',')) {
    const auto v = cli::parse_number("--cpus", item);
    if (v >= CPU_SETSIZE || !allowed.count(static_cast<int>(v)))
      cli::usage("--cpus: CPU " + item + " is not available to this process (it may use " + std::to_string(allowed.size()) +
                 " CPUs)");
    c.list.push_back(static_cast<int>(v));
  }
  if (c.list.size() < 2) c.why = "one CPU given: every thread on CPU " + std::to_string(c.list[0]);
  return c;
}
// The CPUs a caller chose before it pinned anything (`uipc demo` and `bench all` pass
// default_ipc_cpus(), taken at their start: once the main thread is pinned, the affinity that
// pick_cpus reads is that one CPU, and threads it creates inherit it).
inline Cpus cpus_from(const std::vector<int>& list) {
  Cpus c;
  c.list = list;
  if (list.size() < 2) c.why = "fewer than 2 CPUs available: threads unpinned and sharing one CPU";
  if (list.size() == 1) c.list.clear();
  return c;
}
inline int cpu_at(const Cpus& c, std::size_t i) { return c.list.empty() ? -1 : c.list[i % c.list.size()]; }

// A scenario's identity for resuming: scenario|mode|workload|inflight|channels|callers.
inline std::string scenario_key(const std::string& scenario, const std::string& mode, const std::string& workload,
                                std::uint64_t inflight, std::uint64_t channels = 0, std::uint64_t callers = 0) {
  return scenario + "|" + mode + "|" + workload + "|" + std::to_string(inflight) + "|" + std::to_string(channels) + "|" +
         std::to_string(callers);
}
inline std::string record_key(const report::Record& r) {
  auto extra = [&](const char* k) -> std::uint64_t {
    const auto it = r.extra.find(k);
    return it == r.extra.end() ? 0 : static_cast<std::uint64_t>(it->second);
  };
  return scenario_key(r.scenario, r.mode, r.workload, r.inflight, extra("channels"), extra("callers"));
}

// The keys of `path`'s lines of `scenario` measured by this commit and build for at least
// `min_wall_s` (a missing file: none).  Bad lines are reported on stderr and ignored.
inline std::set<std::string> done_keys(const std::filesystem::path& path, const Facts& f, const std::string& scenario,
                                       double min_wall_s) {
  std::set<std::string> done;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return done;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path.string() + "': " + std::strerror(errno));
  report::Dataset d;
  report::read_jsonl(in, path.string(), d, [](const report::BadLine& b) {
    std::fprintf(stderr, "uipc bench: %s: ignored (%s)\n", b.where.c_str(), b.reason.c_str());
  });
  for (const auto& r : d.records)
    if (r.scenario == scenario && r.commit == f.commit && r.build_type == f.build_type && r.wall_s >= min_wall_s)
      done.insert(record_key(r));
  return done;
}

// Appends whole lines to a file (or does nothing when no path is given).  A last line cut off by
// a killed run is ended first, so the next line starts on a line of its own.
class JsonOut {
 public:
  JsonOut() = default;
  explicit JsonOut(const std::string& path) : path_(path) {
    if (path.empty()) return;
    bool needs_newline = false;
    {
      std::ifstream in(path, std::ios::binary | std::ios::ate);
      if (in && in.tellg() > 0) {
        in.seekg(-1, std::ios::end);
        needs_newline = in.get() != '\n';
      }
    }
    out_.open(path, std::ios::app | std::ios::binary);
    if (!out_) cli::usage("--json: cannot open '" + path + "' for appending: " + std::strerror(errno));
    if (needs_newline) out_ << '\n';
  }
  void write(const nlohmann::ordered_json& j) {
    if (!out_.is_open()) return;
    out_ << j.dump() << '\n';
    out_.flush();
    if (!out_) throw std::runtime_error("write to '" + path_ + "' failed");
  }

 private:
  std::string path_;
  std::ofstream out_;
};

// What one evaluation scenario measured.
struct Measure {
  std::uint64_t ops = 0, kernel_entries = 0;
  double wall_s = 0, cpu_s = 0, p50_ns = 0, p99_ns = 0;
  std::string note;
  double ops_per_s() const { return wall_s > 0 ? static_cast<double>(ops) / wall_s : 0; }
  double kernel_per_op() const { return ops ? static_cast<double>(kernel_entries) / static_cast<double>(ops) : 0; }
};

// The measuring window the callers of one scenario share. The first call that ends at or after
// `from` opens it (kernel entries and process CPU are read then); the first that ends `length`
// after the opening closes it and sets `stop`, which every caller's loop checks; the calls that
// end inside it are counted in `m.ops`. `kernel` returns the kernel entries counted so far.
template <class Kernel>
struct MeasureWindow {
  std::uint64_t from, length;
  Kernel kernel;
  Measure& m;
  bool measuring = false, stop = false;
  std::uint64_t t0 = 0, t1 = 0, k0 = 0;
  double cpu0 = 0;
  // After each call, with the time it ended: true if the call counts.
  bool after_call(std::uint64_t end) {
    if (!measuring && !stop && end >= from) {
      measuring = true;
      t0 = end;
      k0 = kernel();
      cpu0 = process_cpu_seconds();
      return false;
    }
    if (measuring && end >= t0 + length) {
      measuring = false;
      stop = true;
      t1 = end;
      m.kernel_entries = kernel() - k0;
      m.cpu_s = process_cpu_seconds() - cpu0;
      m.wall_s = static_cast<double>(t1 - t0) / 1e9;
      return false;
    }
    if (!measuring) return false;
    ++m.ops;
    return true;
  }
};
template <class Kernel>
MeasureWindow(std::uint64_t, std::uint64_t, Kernel, Measure&) -> MeasureWindow<Kernel>;

// The common-schema line; the caller adds the scenario's own fields.
inline nlohmann::ordered_json line(const std::string& scenario, const std::string& mode, const std::string& workload,
                                   std::uint64_t inflight, std::uint64_t msg_bytes, const Measure& m, const Cpus& cpus,
                                   const Facts& f) {
  std::string note = m.note;
  if (!cpus.why.empty()) note += (note.empty() ? "" : "; ") + cpus.why;
  nlohmann::ordered_json j = {
      {"scenario", scenario},   {"mode", mode},           {"workload", workload},
      {"inflight", inflight},   {"msg_bytes", msg_bytes}, {"ops_per_s", m.ops_per_s()},
      {"p50_ns", m.p50_ns},     {"p99_ns", m.p99_ns},     {"kernel_entries_per_op", m.kernel_per_op()},
      {"kernel_entries", m.kernel_entries},               {"cpu_s", m.cpu_s},
      {"ops", m.ops},           {"wall_s", m.wall_s},     {"note", note},
  };
  append_facts(j, f, cpus.list);
  return j;
}

inline void print_machine(const char* who, const Facts& f, const Cpus& c) {
  std::printf("uipc bench %s: %s, %u CPUs, %s, %s build, commit %s\n", who, f.cpu_model.c_str(), f.cores, f.kernel.c_str(),
              f.build_type.c_str(), f.commit.c_str());
  if (!c.why.empty()) std::printf("uipc bench %s: note: %s; the numbers do not compare with a 2-CPU run\n", who, c.why.c_str());
  if (f.build_type != "release") std::printf("uipc bench %s: warning: a %s build; take numbers from a release build\n", who, f.build_type.c_str());
  std::fflush(stdout);
}

// Sweep settings shared by `uipc bench all` and `uipc demo`.
struct SweepOptions {
  bool quick = false;
  double seconds = 0;                      // 0: the command's default for quick / full
  Cpus cpus;
  std::set<std::string> skip;              // scenario keys already measured
  JsonOut* out = nullptr;
  bool verbose = true;                     // one printed line per scenario
  int demo = 0;                            // 1: the reduced set `uipc demo` runs; 2: `uipc demo --quick`'s
};
struct SweepResult {
  std::size_t run = 0, skipped = 0;
};
SweepResult wakeup_sweep(const SweepOptions& o, const Facts& f);
SweepResult channels_sweep(const SweepOptions& o, const Facts& f);
SweepResult placement_sweep(const SweepOptions& o, const Facts& f);

}  // namespace uipc::bench::eval
