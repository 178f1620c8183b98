// bench/all_cli.cpp — `uipc bench all`: every IPC scenario (sizes 64 and 1024 bytes, 1..256 in
// flight, every mode) plus the idle measurement, one JSON line each, appended to DIR/ipc.jsonl.
// Resumable: a scenario already in the file for the same commit and build type (and measured at
// least half as long as this run would) is skipped; with --rounds N, each round of it.  Then the evaluation benchmarks (`bench wakeup`,
// `bench channels`, `bench placement`; docs/answers.md) into DIR/<name>.jsonl, resumable the same
// way, per scenario.  When the tool has a `bench sys` command that takes --json, it runs once
// afterwards into DIR/sys.jsonl.  See docs/report.md.
#include "all_cli.hpp"

#include "cli_common.hpp"
#include "eval_common.hpp"
#include "harness.hpp"
#include "ipc_cli.hpp"
#include "report.hpp"

#include <CLI/CLI.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

extern char** environ;

namespace uipc::bench {
namespace {

namespace fs = std::filesystem;

constexpr double kSeconds = 1.0, kQuickSeconds = 0.2, kIdleSeconds = 1.0;
const std::vector<unsigned> kInflight = {1, 2, 4, 8, 16, 32, 64, 128, 256};
const std::vector<unsigned> kQuickInflight = {1, 4, 16, 64, 256};
const std::vector<std::size_t> kSizes = {64, 1024};

struct Options {
  std::string out = "results";
  bool quick = false;
  bool no_sys = false;
  bool no_eval = false;
  unsigned rounds = 1;
  std::string modes;  // empty: every mode built in
};

constexpr unsigned kMaxRounds = 20;

// mode, inflight, msg_bytes, round (0: a line without one, from a run of one round)
using Key = std::tuple<std::string, unsigned long long, unsigned long long, unsigned>;

struct Scenario {
  std::string mode;
  unsigned inflight = 0;
  std::size_t msg_bytes = 0;
  double seconds = 0;
  unsigned round = 0;  // 1..rounds with --rounds > 1, else 0
};

unsigned round_of(const report::Record& r) {
  const auto it = r.extra.find("round");
  return it == r.extra.end() || !(it->second >= 1 && it->second <= kMaxRounds) ? 0 : static_cast<unsigned>(it->second);
}

// The lines of `path` (if it exists) measured by this commit and build, for `scenario`, at least
// `min_wall_s` long (the idle line: its own minimum).
std::set<Key> already_done(const fs::path& path, const Facts& f, const std::string& scenario, double min_wall_s, double min_idle_s) {
  std::set<Key> done;
  std::error_code ec;
  if (!fs::exists(path, ec)) return done;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path.string() + "': " + std::strerror(errno));
  report::Dataset d;
  report::read_jsonl(in, path.string(), d, [](const report::BadLine& b) {
    std::fprintf(stderr, "uipc bench all: %s: ignored (%s)\n", b.where.c_str(), b.reason.c_str());
  });
  for (const auto& r : d.records)
    if (r.scenario == scenario && r.commit == f.commit && r.build_type == f.build_type &&
        r.wall_s >= (r.is_idle() ? min_idle_s : min_wall_s))
      done.insert({r.mode, r.inflight, r.msg_bytes, round_of(r)});
  return done;
}

// Opens `path` for appending whole lines: a last line cut off by a killed run is ended first, so
// that the next line starts on a line of its own (the report then skips the cut one).
std::ofstream open_append(const fs::path& path) {
  bool needs_newline = false;
  {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (in && in.tellg() > 0) {
      in.seekg(-1, std::ios::end);
      needs_newline = in.get() != '\n';
    }
  }
  std::ofstream out(path, std::ios::app | std::ios::binary);
  if (!out) throw std::runtime_error("cannot open '" + path.string() + "' for appending: " + std::strerror(errno));
  if (needs_newline) out << '\n';
  return out;
}

std::string cpus_text(const std::vector<int>& cpus) {
  if (cpus.size() >= 2) return "client on CPU " + std::to_string(cpus[0]) + ", server on CPU " + std::to_string(cpus[1]);
  return "threads unpinned";
}

// Runs `uipc bench sys --json FILE [--quick]` (this executable) as a child; returns its status.
int run_sys_child(const fs::path& json, bool quick) {
  std::vector<std::string> args = {"uipc", "bench", "sys", "--json", json.string()};
  if (quick) args.push_back("--quick");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid = -1;
  if (const int e = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ); e != 0)
    throw std::runtime_error(std::string("cannot start 'uipc bench sys': ") + std::strerror(e));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void run(const Options& o, CLI::App& bench) {
  cli::check_rounds(o.rounds, kMaxRounds);
  const Facts facts = machine_facts();
  const std::vector<std::string> modes = parse_ipc_modes(o.modes);
  const double seconds = o.quick ? kQuickSeconds : kSeconds;
  const std::vector<unsigned>& inflights = o.quick ? kQuickInflight : kInflight;
  const std::vector<int> cpus = default_ipc_cpus();

  const fs::path dir(o.out);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw CLI::ValidationError("--out: cannot create '" + o.out + "': " + ec.message(), 2);
  const fs::path path = dir / "ipc.jsonl";

  const std::set<Key> done = already_done(path, facts, "ipc", 0.5 * seconds, 0.5 * kIdleSeconds);
  std::vector<Scenario> todo;
  std::size_t skipped = 0, total = 0;
  // With --rounds N, each (size, in-flight) pair's modes run N times in turn; a round already in
  // the file is skipped like a scenario. A line without a round (a run of one round) does not
  // stand in for round 1 of a series, nor a round for a run of one.
  for (auto size : kSizes)
    for (auto n : inflights)
      for (unsigned round = 1; round <= o.rounds; ++round)
        for (const auto& m : modes) {
          const unsigned tag = o.rounds > 1 ? round : 0;
          ++total;
          if (done.count({m, n, size, tag})) ++skipped;
          else todo.push_back({m, n, size, seconds, tag});
        }
  const bool has_async = std::find(modes.begin(), modes.end(), "async") != modes.end();
  if (has_async) {
    ++total;
    if (done.count({"async-idle", 0, 8, 0})) ++skipped;
    else todo.push_back({"async-idle", 0, 8, kIdleSeconds, 0});
  }

  std::printf("uipc bench all: %s, %u CPUs, %s, %s build, commit %s\n", facts.cpu_model.c_str(), facts.cores,
              facts.kernel.c_str(), facts.build_type.c_str(), facts.commit.c_str());
  if (cpus.size() < 2)
    std::printf("uipc bench all: this process may run on fewer than 2 CPUs, so client and server run unpinned and share "
                "one CPU; the busy-polling modes will crawl and the numbers do not compare with a 2-CPU run\n");
  else
    std::printf("%s\n", cpus_text(cpus).c_str());
  if (facts.build_type != "release")
    std::printf("uipc bench all: warning: a %s build; take numbers from a release build only\n", facts.build_type.c_str());
  double estimate = 0;
  for (const auto& s : todo) estimate += s.seconds * 1.1 + 0.05;
  std::printf("%zu scenarios (%s s each%s, in flight", total, o.quick ? "0.2" : "1.0",
              o.rounds > 1 ? (", " + std::to_string(o.rounds) + " rounds").c_str() : "");
  for (auto n : inflights) std::printf(" %u", n);
  std::printf(", sizes 64 and 1024 bytes, modes");
  for (const auto& m : modes) std::printf(" %s", m.c_str());
  std::printf("%s): %zu already in %s for commit %s (%s build), skipped; %zu to run, about %.0f s\n", has_async ? ", idle" : "",
              skipped, path.c_str(), facts.commit.c_str(), facts.build_type.c_str(), todo.size(), estimate + 0.5);
  if (facts.commit == "unknown")
    std::printf("uipc bench all: note: the commit is unknown, so every earlier line of this build type counts as this commit's\n");

  if (!todo.empty()) {
    std::ofstream json = open_append(path);
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < todo.size(); ++i) {
      const Scenario& s = todo[i];
      IpcParams p;
      p.inflight = s.inflight;
      p.msg_bytes = s.msg_bytes;
      p.seconds = s.seconds;
      p.cpus = cpus;
      const bool idle = s.mode == "async-idle";
      const double line_ns = idle ? 0 : line_rtt_ns(p);
      IpcResult r = idle ? run_async_idle(p) : ipc_modes().at(s.mode)(p);
      const unsigned of = s.round != 0 ? o.rounds : 1;  // the idle line, and runs of one round: none
      mark_round(r, s.round, of);
      json << ipc_json_line(s.mode, p, r, facts, line_ns).dump() << '\n';
      json.flush();
      if (!json) throw std::runtime_error("write to '" + path.string() + "' failed");
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (idle)
        std::printf("[%3zu/%zu] %-10s idle for %.2f s: %s of one core, %llu kernel %s  (%.0f s)\n", i + 1, todo.size(),
                    s.mode.c_str(), r.wall_s, report::fmt_pct(r.wall_s > 0 ? 100.0 * r.cpu_s / r.wall_s : 0).c_str(),
                    static_cast<unsigned long long>(r.kernel_entries), r.kernel_entries == 1 ? "entry" : "entries", elapsed);
      else
        std::printf("[%3zu/%zu] %-10s %4u in flight %5zu B %14s ops/s  p50 %-10s p99 %-10s kern/op %-7s (%.0f s)%s\n", i + 1,
                    todo.size(), s.mode.c_str(), s.inflight, s.msg_bytes, report::fmt_rate(r.ops_per_s()).c_str(),
                    report::fmt_ns(r.p50_ns).c_str(), report::fmt_ns(r.p99_ns).c_str(),
                    report::fmt_kernel(r.kernel_entries_per_op()).c_str(), elapsed,
                    of > 1 ? ("  " + round_label(s.round, of)).c_str() : "");
      std::fflush(stdout);
    }
  }
  std::printf("IPC: %zu run, %zu skipped; results in %s\n", todo.size(), skipped, path.c_str());

  // The evaluation benchmarks (docs/answers.md), each into its own file, resumable per scenario.
  if (o.no_eval) {
    std::printf("wakeup, channels, placement: not run (--no-eval)\n");
  } else {
    using EvalSweep = eval::SweepResult (*)(const eval::SweepOptions&, const Facts&);
    const std::pair<const char*, EvalSweep> evals[] = {
        {"wakeup", eval::wakeup_sweep}, {"channels", eval::channels_sweep}, {"placement", eval::placement_sweep}};
    for (const auto& [name, sweep] : evals) {
      const fs::path p = dir / (std::string(name) + ".jsonl");
      eval::SweepOptions so;
      so.quick = o.quick;
      so.cpus = eval::cpus_from(cpus);
      so.skip = eval::done_keys(p, facts, name, 0.5 * seconds);
      eval::JsonOut out(p.string());
      so.out = &out;
      std::printf("%s: 'uipc bench %s%s' into %s (%zu scenarios already there for this commit and build are skipped)\n", name,
                  name, o.quick ? " --quick" : "", p.c_str(), so.skip.size());
      std::fflush(stdout);
      const auto r = sweep(so, facts);
      std::printf("%s: %zu run, %zu skipped\n", name, r.run, r.skipped);
    }
  }

  // The async-syscall benchmark, when this build has one that writes JSON lines.
  const CLI::App* sys = nullptr;
  try {
    sys = bench.get_subcommand("sys");
  } catch (const CLI::OptionNotFound&) {
  }
  const fs::path sys_path = dir / "sys.jsonl";
  if (o.no_sys) {
    std::printf("sys: not run (--no-sys)\n");
  } else if (!sys || !sys->get_option_no_throw("--json")) {
    std::printf("sys: this uipc has no 'bench sys --json'; only IPC was measured\n");
  } else if (const auto sys_done = already_done(sys_path, facts, "sys", 0, 0); !sys_done.empty()) {
    std::printf("sys: %zu lines for commit %s (%s build) already in %s; skipped (delete the file to measure again)\n",
                sys_done.size(), facts.commit.c_str(), facts.build_type.c_str(), sys_path.c_str());
  } else {
    const bool quick = o.quick && sys->get_option_no_throw("--quick");
    std::printf("sys: running 'uipc bench sys --json %s%s'\n", sys_path.c_str(), quick ? " --quick" : "");
    if (const int rc = run_sys_child(sys_path, quick); rc != 0)
      throw std::runtime_error("'uipc bench sys' failed with status " + std::to_string(rc) + "; the IPC results in " +
                               path.string() + " are complete");
  }
  std::printf("next: uipc report --in %s --out %s\n", o.out.c_str(), (dir / "report").c_str());
}

}  // namespace

void add_all_bench(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* all = bench.add_subcommand(
      "all",
      "The full benchmark sweep, resumable: every IPC mode at 1..256 in flight with 64- and 1024-byte messages "
      "(1 s each) and the idle measurement, appended as JSON lines to DIR/ipc.jsonl; then 'bench wakeup', 'bench "
      "channels' and 'bench placement' into DIR/<name>.jsonl; then 'bench sys', when this uipc has it, into DIR/sys.jsonl.  Scenarios already in the files for the same commit and build type are "
      "skipped, so an interrupted run picks up where it stopped.");
  all->add_option("--out", o->out, "Directory for ipc.jsonl and sys.jsonl (default: results)")->type_name("DIR");
  all->add_flag("--quick", o->quick, "Short runs: 0.2 s per scenario, in flight 1,4,16,64,256");
  all->add_option("--modes", o->modes,
                  "IPC modes to run, in order (default: every mode built in, as async,sync,ring,uds,uds-epoll,pipe, then "
                  "the rest); the idle measurement runs when async is among them")
      ->type_name("LIST");
  all->add_option("--rounds", o->rounds,
                  "Run each (size, in-flight) pair's IPC modes this many times in turn, 1.." + std::to_string(kMaxRounds) +
                      " (default 1); 'uipc report' then uses each scenario's median round")
      ->type_name("N");
  all->add_flag("--no-sys", o->no_sys, "Do not run 'bench sys' after the IPC sweep");
  all->add_flag("--no-eval", o->no_eval,
                "Do not run 'bench wakeup', 'bench channels' and 'bench placement' (into DIR/wakeup.jsonl, channels.jsonl, "
                "placement.jsonl)");
  all->footer("A line counts as done when its commit and build_type match this uipc and it measured at least half "
              "as long as this run would (so a --quick line does not stand in for a full one).\n"
              "Then: uipc report --in results --out results/report.  See docs/report.md.");
  CLI::App* group = &bench;
  all->callback([o, group] { run(*o, *group); });
}

}  // namespace uipc::bench
