// bench/ipc_cli.cpp — `uipc bench ipc`: runs every (size, in-flight, mode) scenario, prints a
// table as results come, appends one JSON object per scenario to --json, and ends with the
// async-over-baseline ratios.  See docs/bench.md.
#include "ipc_cli.hpp"

#include "cli_common.hpp"
#include "harness.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace uipc::bench {
namespace {

using namespace uipc::bench::cli;

constexpr std::size_t kMinBytes = 8;        // room for the sequence number
constexpr std::size_t kMaxBytes = 65536;
constexpr unsigned kMaxInflight = 65536;
constexpr std::size_t kMaxWindow = std::size_t{64} << 20;  // inflight * size: buffers per side
constexpr double kQuickSeconds = 0.2;
constexpr unsigned kMaxRounds = 100;
const char* const kDefaultInflight = "1,2,4,8,16,32,64,128,256";
const char* const kQuickInflight = "1,4,16,64,256";
const char* const kDefaultSizes = "64,1024";
const char* const kPreferredOrder[] = {"async", "sync", "ring", "uds", "uds-epoll", "pipe"};

struct Options {
  bool quick = false;
  std::string json;
  std::string cpus;
  std::string modes;
  std::string inflight;
  std::string sizes;
  double seconds = 1.0;
  unsigned rounds = 1;
  CLI::Option* seconds_opt = nullptr;
  CLI::Option* inflight_opt = nullptr;
  CLI::Option* cpus_opt = nullptr;
};




// "1,2,4" -> {1, 2, 4}, every value within [lo, hi].
std::vector<unsigned long long> parse_list(const std::string& opt, const std::string& s, unsigned long long lo,
                                           unsigned long long hi, const std::string& what) {
  std::vector<unsigned long long> out;
  for (const auto& item : split(s, ',')) {
    const auto v = parse_number(opt, item);
    if (v < lo || v > hi)
      usage(opt + ": " + item + " is not a valid " + what + " (must be " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
    out.push_back(v);
  }
  if (out.empty()) usage(opt + ": empty list");
  return out;
}


std::string cpu_ranges(const std::set<int>& cpus) {
  std::string out;
  for (auto it = cpus.begin(); it != cpus.end();) {
    int lo = *it, hi = lo;
    while (++it != cpus.end() && *it == hi + 1) ++hi;
    if (!out.empty()) out += ',';
    out += std::to_string(lo);
    if (hi != lo) out += '-' + std::to_string(hi);
  }
  return out.empty() ? "none" : out;
}

// "0,1", "2-3", "none".  Default: the first two CPUs this process may run on, if there are two.
std::vector<int> parse_cpus(const Options& o) {
  const std::set<int> allowed = allowed_cpus();
  std::vector<int> out;
  if (o.cpus_opt->count() == 0) return default_ipc_cpus();
  if (o.cpus == "none" || o.cpus.empty()) return out;
  for (const auto& item : split(o.cpus, ',')) {
    const auto dash = item.find('-');
    const auto lo = parse_number("--cpus", item.substr(0, dash));
    const auto hi = dash == std::string::npos ? lo : parse_number("--cpus", item.substr(dash + 1));
    if (hi < lo || hi - lo > 4096) usage("--cpus: '" + item + "' is not a valid CPU range");
    for (auto c = lo; c <= hi; ++c) {
      if (c >= CPU_SETSIZE || !allowed.count(static_cast<int>(c)))
        usage("--cpus: CPU " + std::to_string(c) + " is not available to this process (available: " + cpu_ranges(allowed) + ")");
      out.push_back(static_cast<int>(c));
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> parse_ipc_modes(const std::string& list) {
  const auto& reg = ipc_modes();
  std::vector<std::string> out;
  if (list.empty()) {
    out = ipc_mode_order();
    if (out.empty()) cli::usage("no IPC modes are built into this uipc");
    return out;
  }
  for (const auto& m : cli::split(list, ',')) {
    if (!reg.count(m)) {
      std::string known;
      for (const auto& [name, fn] : reg) known += (known.empty() ? "" : ", ") + name;
      cli::usage("--modes: unknown mode '" + m + "' (available: " + known + ")");
    }
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  return out;
}

namespace {

// ---- output ----------------------------------------------------------------------------------




void print_header() {
  std::printf("%-12s %8s %6s %14s %10s %10s %8s %7s %9s  %s\n", "mode", "inflight", "bytes", "ops/s", "p50", "p99",
              "kern/op", "cpu_s", "line", "note");
}

// The line round trip before and after one scenario.
struct Line {
  double before = 0, after = 0;
  bool steady() const { return lines_steady({before, after}); }
};

void print_row(const std::string& mode, const IpcParams& p, const IpcResult& r, const Line& line) {
  const std::string l = fmt_ns(line.before) + (line.steady() ? " " : "!");
  std::printf("%-12s %8u %6zu %14s %10s %10s %8.2f %7.2f %9s  %s\n", mode.c_str(), p.inflight, p.msg_bytes,
              fmt_rate(r.ops_per_s()).c_str(), fmt_ns(r.p50_ns).c_str(), fmt_ns(r.p99_ns).c_str(),
              r.kernel_entries_per_op(), r.cpu_s, l.c_str(), r.note.c_str());
  std::fflush(stdout);
}

}  // namespace


std::vector<std::string> ipc_mode_order() {
  const auto& reg = ipc_modes();
  std::vector<std::string> out;
  for (const char* m : kPreferredOrder)
    if (reg.count(m)) out.push_back(m);
  for (const auto& [name, fn] : reg)
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  return out;
}

std::vector<int> default_ipc_cpus() {
  const std::set<int> allowed = allowed_cpus();
  if (allowed.size() < 2) return {};
  return {*allowed.begin(), *std::next(allowed.begin())};
}

std::string round_label(unsigned round, unsigned rounds) {
  return rounds > 1 ? "round " + std::to_string(round) + "/" + std::to_string(rounds) : std::string();
}

void mark_round(IpcResult& r, unsigned round, unsigned rounds) {
  if (rounds <= 1) return;
  r.note = round_label(round, rounds) + (r.note.empty() ? "" : "; " + r.note);
  r.round = round;
}

nlohmann::ordered_json ipc_json_line(const std::string& mode, const IpcParams& p, const IpcResult& r, const Facts& f,
                                     double line_ns, double line_after_ns) {
  nlohmann::ordered_json j = {
      {"scenario", "ipc"},
      {"mode", mode},
      {"inflight", p.inflight},
      {"msg_bytes", p.msg_bytes},
      {"ops_per_s", r.ops_per_s()},
      {"p50_ns", r.p50_ns},
      {"p99_ns", r.p99_ns},
      {"kernel_entries_per_op", r.kernel_entries_per_op()},
      {"kernel_entries", r.kernel_entries},
      {"cpu_s", r.cpu_s},
      {"ops", r.ops},
      {"wall_s", r.wall_s},
      {"note", r.note},
  };
  if (line_ns > 0) j["line_rtt_ns"] = line_ns;
  if (line_after_ns > 0) j["line_rtt_after_ns"] = line_after_ns;
  append_facts(j, f, p.cpus);
  if (r.round != 0) j["round"] = r.round;  // last, as documented (docs/bench.md)
  return j;
}

namespace {

using Key = std::tuple<std::size_t, unsigned, std::string>;

void print_ratios(const std::map<Key, std::vector<double>>& rate, const std::map<Key, std::vector<Line>>& line,
                  const std::vector<std::size_t>& sizes, const std::vector<unsigned>& inflights,
                  const std::vector<std::string>& modes, unsigned rounds) {
  auto ran = [&](const std::string& m) { return std::find(modes.begin(), modes.end(), m) != modes.end(); };
  std::vector<std::string> mine;  // uipc's modes, plain async first
  for (const char* m : {"async", "async-inline", "async-batch"})
    if (ran(m)) mine.push_back(m);
  if (mine.empty()) {
    std::printf("\nNo ratio summary: no async mode ran.\n");
    return;
  }
  std::vector<std::string> over;
  for (const char* m : {"sync", "ring", "uds-epoll"})
    if (ran(m)) over.push_back(m);
  if (over.empty()) {
    std::printf("\nNo ratio summary: none of sync, ring, uds-epoll ran next to async.\n");
    return;
  }
  bool marked = false, partial = false;
  for (const auto& a : mine) {
    std::printf("\nThroughput ratios (ops/s of %s over ...%s)\n%8s %6s", a.c_str(),
                rounds > 1 ? ("; median of " + std::to_string(rounds) + " rounds").c_str() : "", "inflight", "bytes");
    for (const auto& m : over) std::printf(" %18s", (a + "/" + m).c_str());
    std::printf("\n");
    for (auto size : sizes)
      for (auto n : inflights) {
        std::printf("%8u %6zu", n, size);
        for (const auto& m : over) {
          const auto& lx = line.at({size, n, a});
          const auto& lb = line.at({size, n, m});
          std::vector<bool> steady;
          for (std::size_t r = 0; r < lx.size() && r < lb.size(); ++r)
            steady.push_back(lines_steady({lx[r].before, lx[r].after, lb[r].before, lb[r].after}));
          const RoundsRatio q = rounds_ratio(rate.at({size, n, a}), rate.at({size, n, m}), steady);
          marked |= q.valid && q.all_changed;
          const bool fewer = q.valid && rounds > 1 && q.used < rounds;
          partial |= fewer;
          std::string cell = q.valid ? fmt("%.3fx", q.median) : "-";
          if (q.valid && q.all_changed) cell += "*";
          if (fewer) cell += " (" + std::to_string(q.used) + ")";
          std::printf(" %18s", cell.c_str());
        }
        std::printf("\n");
      }
  }
  if (marked)
    std::printf("* the machine changed during or between the two scenarios: the cache-line round trips taken\n"
                "  before and after each (column 'line'; '!': it changed during that scenario) differ by more\n"
                "  than %.1fx, so this ratio compares different machines; run again%s\n",
                kLineRttChange, rounds > 1 ? " (in every round)" : "");
  if (partial)
    std::printf("(k): the median of k rounds only; in the others the machine changed, or the peer completed no call\n");
}

// ---- the run ---------------------------------------------------------------------------------

void run(const Options& o) {
  // Validate everything before running anything.
  if (o.seconds_opt->count() && !(o.seconds > 0 && o.seconds <= 3600)) usage("--seconds: must be in (0, 3600]");
  const double seconds = o.seconds_opt->count() ? o.seconds : o.quick ? kQuickSeconds : 1.0;
  check_rounds(o.rounds, kMaxRounds);
  const std::string inflight_s = o.inflight_opt->count() ? o.inflight : o.quick ? kQuickInflight : kDefaultInflight;
  std::vector<unsigned> inflights;
  for (auto v : parse_list("--inflight", inflight_s, 1, kMaxInflight, "in-flight count")) inflights.push_back(static_cast<unsigned>(v));
  std::vector<std::size_t> sizes;
  for (auto v : parse_list("--sizes", o.sizes.empty() ? kDefaultSizes : o.sizes, kMinBytes, kMaxBytes, "message size"))
    sizes.push_back(static_cast<std::size_t>(v));
  for (auto n : inflights)
    for (auto s : sizes)
      if (n * s > kMaxWindow)
        usage("--inflight " + std::to_string(n) + " with --sizes " + std::to_string(s) + " is a " +
              std::to_string((n * s) >> 20) + " MiB window; keep inflight x size within " + std::to_string(kMaxWindow >> 20) + " MiB");
  const std::vector<std::string> modes = parse_ipc_modes(o.modes);
  const std::vector<int> cpus = parse_cpus(o);

  std::ofstream json;
  if (!o.json.empty()) {
    json.open(o.json, std::ios::app);
    if (!json) usage("--json: cannot open '" + o.json + "' for appending: " + std::strerror(errno));
  }

  const Facts facts = machine_facts();
  const std::size_t scenarios = modes.size() * inflights.size() * sizes.size() * o.rounds;
  std::printf("uipc bench ipc: %s, %u CPUs, %s, %s build, commit %s\n", facts.cpu_model.c_str(), facts.cores,
              facts.kernel.c_str(), facts.build_type.c_str(), facts.commit.c_str());
  if (cpus.size() >= 2)
    std::printf("client on CPU %d, server on CPU %d; ", cpus[0], cpus[1]);
  else if (cpus.size() == 1)
    std::printf("client on CPU %d, server unpinned; ", cpus[0]);
  else
    std::printf("threads unpinned; ");
  std::printf("%zu scenarios of %.2f s (+10%% warm-up), about %.0f s\n\n", scenarios, seconds,
              static_cast<double>(scenarios) * seconds * 1.1 + 0.5);
  if (cpus.size() >= 2 && cpus[0] == cpus[1])
    std::fprintf(stderr, "uipc bench ipc: warning: client and server share CPU %d; the spinning modes will crawl\n", cpus[0]);
  print_header();

  std::map<Key, std::vector<double>> rate;
  std::map<Key, std::vector<Line>> line;
  bool first_group = true;
  for (auto size : sizes)
    for (auto n : inflights)
      for (unsigned round = 1; round <= o.rounds; ++round) {
        if (modes.size() > 1 && !std::exchange(first_group, false)) std::printf("\n");
        for (const auto& mode : modes) {
          IpcParams p;
          p.inflight = n;
          p.msg_bytes = size;
          p.seconds = seconds;
          p.cpus = cpus;
          Line l;
          l.before = line_rtt_ns(p);
          IpcResult r = ipc_modes().at(mode)(p);
          l.after = line_rtt_ns(p);
          mark_round(r, round, o.rounds);
          print_row(mode, p, r, l);
          rate[{size, n, mode}].push_back(r.ops_per_s());
          line[{size, n, mode}].push_back(l);
          if (json.is_open()) {
            json << ipc_json_line(mode, p, r, facts, l.before, l.after).dump() << '\n';
            json.flush();
            if (!json) throw std::runtime_error("--json: write to '" + o.json + "' failed");
          }
        }
      }
  print_ratios(rate, line, sizes, inflights, modes, o.rounds);

  if (std::find(modes.begin(), modes.end(), "async") != modes.end()) {
    IpcParams p;
    p.inflight = 0;
    p.msg_bytes = 8;
    p.seconds = std::max(seconds, 1.0);
    p.cpus = cpus;
    const IpcResult r = run_async_idle(p);
    std::printf("\nIdle: an async client and server, connected, doing nothing for %.1f s after one call:\n"
                "      %.3f%% of one core (%.4f s CPU), %llu kernel entries\n",
                r.wall_s, 100.0 * r.cpu_s / r.wall_s, r.cpu_s, static_cast<unsigned long long>(r.kernel_entries));
    if (json.is_open()) {
      json << ipc_json_line("async-idle", p, r, facts).dump() << '\n';
      json.flush();
    }
  }
}

}  // namespace

void add_ipc_bench(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* ipc = bench.add_subcommand(
      "ipc",
      "Round-trip throughput and latency of request/reply IPC between two threads, one scenario per "
      "(message size, in-flight count, mode): uipc's async IPC against a blocking sync call, a "
      "busy-polling shared-memory ring (the limit of this machine) and Unix socket and pipe peers.  "
      "Prints a table as results come and, at the end, async's throughput over the baselines.");
  ipc->add_flag("--quick", o->quick, "Short runs: 0.2 s per scenario, in-flight 1,4,16,64,256 (explicit options win)");
  ipc->add_option("--json", o->json, "Append one JSON object per scenario, one per line, to FILE")->type_name("FILE");
  o->cpus_opt = ipc->add_option("--cpus", o->cpus,
                                "CPUs to pin to: first the client's, then the server's (e.g. 0,1 or 2-3), or 'none'. "
                                "Default: the first two CPUs available, if there are two")
                    ->type_name("LIST");
  ipc->add_option("--modes", o->modes, "Modes to run, in order (default: all, as async,sync,ring,uds,uds-epoll,pipe)")
      ->type_name("LIST");
  o->inflight_opt = ipc->add_option("--inflight", o->inflight,
                                    std::string("Requests kept outstanding, 1..") + std::to_string(kMaxInflight) +
                                        " (default " + kDefaultInflight + ")")
                        ->type_name("LIST");
  ipc->add_option("--sizes", o->sizes,
                  std::string("Request and reply payload bytes, 8..65536 (default ") + kDefaultSizes + ")")
      ->type_name("LIST");
  o->seconds_opt = ipc->add_option("--seconds", o->seconds, "Measured seconds per scenario (default 1.0)")->type_name("S");
  ipc->add_option("--rounds", o->rounds,
                  "Run every (size, in-flight) group's modes this many times in turn, 1.." + std::to_string(kMaxRounds) +
                      " (default 1); the ratio summary then gives each ratio's median over the rounds in which the "
                      "machine did not change, which steadies ratios on a machine whose speed drifts")
      ->type_name("N");
  ipc->footer(
      "Modes: async (uipc, one coroutine per call), async-inline (the same client, a server whose handler runs in the receive coroutine), async-batch (that server, the calls sent in batches with Client::call_many), sync (blocking uipc call), ring (busy-polling SPSC rings, no syscalls), "
      "uds (blocking Unix stream socketpair, pipelined and batched), uds-epoll (non-blocking, one epoll "
      "loop per side), pipe (two blocking pipes).\n"
      "Example: uipc bench ipc --quick --modes ring,uds --json results/ipc.jsonl\n"
      "See docs/bench.md for the measurement rules and the JSON fields.");
  ipc->callback([o] { run(*o); });
}

}  // namespace uipc::bench
