// apps/alloc/alloc_cli.cpp — `uipc bench alloc`: the memory-allocation server, async twin against
// sync twin, over a sweep of calls in flight; a table with the async÷sync ratio per in-flight
// count, one JSON object per (mode, in-flight) scenario, and the target as ratio lines.
// See docs/alloc.md.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "facts.hpp"
#include "alloc/alloc_workload.hpp"
#include "cli_common.hpp"
#include "command_registry.hpp"

namespace uipc::apps::alloc {
namespace {

using namespace uipc::bench::cli;

constexpr unsigned kMaxInflight = 1024;  // sync: one thread each
const char* const kDefaultInflight = "1,2,4,8,16,32,64,128,256,512";
constexpr unsigned kDefaultRepeat = 10, kQuickRepeat = 3;
constexpr int kPauseMs = 100;

struct Options {
  bool quick = false, lazy = false;
  std::string json, cpus, inflight, modes = "sync,async", wake = "hybrid", placement = "local", backend = "direct";
  unsigned clients = 512, rounds = 10, repeat = kDefaultRepeat;
  std::size_t size = 4096;
  std::int64_t sync_spin_ns = -1, async_spin_ns = -1;
  unsigned max_batch = 1024;
  CLI::Option* repeat_opt = nullptr;
  CLI::Option* cpus_opt = nullptr;
};

std::vector<unsigned> parse_inflight(const std::string& s) {
  std::vector<unsigned> out;
  for (const auto& item : split(s, ',')) {
    const auto v = parse_number("--inflight", item);
    if (v < 1 || v > kMaxInflight)
      usage("--inflight: " + item + " is not a valid in-flight count (must be 1.." + std::to_string(kMaxInflight) + ")");
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(static_cast<unsigned>(v));
  }
  if (out.empty()) usage("--inflight: empty list");
  return out;
}

std::vector<int> parse_cpus(const Options& o) {
  const std::set<int> allowed = allowed_cpus();
  std::vector<int> out;
  if (o.cpus_opt->count() == 0) {
    // The kernel core (shared/affine placement) shares the clients' CPU: the async client thread
    // waits most of the time, and the server's CPU is the busier one (docs/alloc.md).
    if (allowed.size() >= 2) out = {*allowed.begin(), *std::next(allowed.begin()), *allowed.begin()};
    return out;
  }
  if (o.cpus == "none") return out;
  for (const auto& item : split(o.cpus, ',')) {
    const auto c = parse_number("--cpus", item);
    if (c >= CPU_SETSIZE || !allowed.count(static_cast<int>(c)))
      usage("--cpus: CPU " + item + " is not available to this process");
    out.push_back(static_cast<int>(c));
  }
  if (out.empty() || out.size() > 3) usage("--cpus: give 2 or 3 CPUs (clients, server[, kernel core]) or 'none'");
  if (out.size() == 1) usage("--cpus: give the server's CPU too (clients,server[,core])");
  if (out.size() == 2) out.push_back(out[0]);
  return out;
}

nlohmann::ordered_json to_json(const std::string& mode, const WorkloadParams& p, const WorkloadResult& r,
                               const bench::Facts& f) {
  nlohmann::ordered_json j = {
      {"scenario", "alloc"},
      {"mode", mode},
      {"workload", "map+unmap"},
      {"inflight", p.inflight},
      {"msg_bytes", p.bytes},
      {"ops_per_s", r.ops_per_s()},
      {"p50_ns", r.p50_ns},
      {"p99_ns", r.p99_ns},
      {"kernel_entries_per_op", r.per_op(static_cast<double>(r.kernel_entries()))},
      {"kernel_entries", r.kernel_entries()},
      {"cpu_s", r.cpu_s},
      {"ops", r.ops},
      {"wall_s", r.wall_s},
      {"calls_per_op", 2},
      {"client_kernel_entries_per_op", r.per_op(static_cast<double>(r.client_kernel_entries))},
      {"server_kernel_entries_per_op", r.per_op(static_cast<double>(r.server_kernel_entries))},
      {"executor_kernel_entries_per_op", r.per_op(static_cast<double>(r.executor_kernel_entries))},
      {"clients", p.clients},
      {"rounds", p.rounds},
      {"repeat", p.repeat},
      {"pages_checked", r.pages_checked},
      {"backstops", r.backstops},
      {"populate", p.populate},
      {"note", r.error.empty() ? std::string(mode == "sync" ? "client threads: " + std::to_string(p.inflight)
                                                            : "coroutines: " + std::to_string(p.inflight))
                               : "error: " + r.error},
  };
  bench::append_facts(j, f, p.cpus);
  if (mode == "sync") j["sync_spin_ns"] = p.sync_spin_ns < 0 ? static_cast<std::int64_t>(ipc::kDefaultSyncSpinNs) : p.sync_spin_ns;
  if (mode == "async")
    j["executor"] = {{"wake", sys::to_string(p.wake)}, {"placement", sys::to_string(p.placement)},
                     {"backend", sys::to_string(p.backend)}, {"max_batch", p.max_batch},
                     {"spin_ns", p.async_spin_ns < 0 ? RuntimeOptions{}.spin_ns : p.async_spin_ns}};
  return j;
}

void run(const Options& o) {
  const auto inflights = parse_inflight(o.inflight.empty() ? kDefaultInflight : o.inflight);
  bool do_sync = false, do_async = false;
  for (const auto& m : split(o.modes, ',')) {
    if (m == "sync") do_sync = true;
    else if (m == "async") do_async = true;
    else usage("--modes: unknown mode '" + m + "' (available: sync, async)");
  }
  if (o.clients < 1 || o.clients > 1'000'000) usage("--clients: must be 1..1000000");
  if (o.rounds < 1 || o.rounds > 1'000'000) usage("--rounds: must be 1..1000000");
  const unsigned repeat = o.repeat_opt->count() ? o.repeat : o.quick ? kQuickRepeat : kDefaultRepeat;
  if (repeat < 1 || repeat > 10'000) usage("--repeat: must be 1..10000");
  const AllocLimits limits;
  if (o.size < 1 || o.size > limits.max_block_bytes)
    usage("--size: must be 1.." + std::to_string(limits.max_block_bytes) + " bytes");
  WorkloadParams base;
  base.clients = o.clients;
  base.rounds = o.rounds;
  base.repeat = repeat;
  base.bytes = o.size;
  base.populate = !o.lazy;
  if (o.max_batch < 1 || o.max_batch > 65536) usage("--max-batch: must be 1..65536");
  base.max_batch = o.max_batch;
  base.cpus = parse_cpus(o);
  if (o.sync_spin_ns > 10'000'000'000) usage("--sync-spin-ns: at most 10 s");
  base.sync_spin_ns = o.sync_spin_ns;
  if (o.async_spin_ns > 10'000'000'000) usage("--async-spin-ns: at most 10 s");
  base.async_spin_ns = o.async_spin_ns;
  if (auto w = sys::parse_wake_mode(o.wake); w) base.wake = w.value();
  else usage("--wake: '" + o.wake + "' is not one of hybrid, irq, tick");
  if (auto pl = sys::parse_placement(o.placement); pl) base.placement = pl.value();
  else usage("--placement: '" + o.placement + "' is not one of local, shared, affine");
  if (auto b = sys::parse_backend(o.backend); b) base.backend = b.value();
  else usage("--backend: '" + o.backend + "' is not one of direct, io_uring, automatic");

  std::ofstream json;
  if (!o.json.empty()) {
    json.open(o.json, std::ios::app);
    if (!json) usage("--json: cannot open '" + o.json + "' for appending: " + std::strerror(errno));
  }
  const bench::Facts facts = bench::machine_facts();
  std::printf("uipc bench alloc: %s, %u CPUs, %s, %s build, commit %s\n", facts.cpu_model.c_str(), facts.cores,
              facts.kernel.c_str(), facts.build_type.c_str(), facts.commit.c_str());
  const auto& c = base.cpus;
  if (c.size() >= 2)
    std::printf("clients on CPU %d, server on CPU %d%s; ", c[0], c[1],
                c.size() > 2 && base.placement != sys::Placement::local
                    ? (", kernel core on CPU " + std::to_string(c[2])).c_str()
                    : "");
  else std::printf("threads unpinned; ");
  auto spin = [](std::int64_t ns) { return ns < 0 ? std::string("library default") : std::to_string(ns) + " ns"; };
  std::printf("async executor %s/%s/%s (max batch %u); spin windows: async %s, sync %s\n", sys::to_string(base.wake),
              sys::to_string(base.placement), sys::to_string(base.backend), base.max_batch,
              spin(o.async_spin_ns).c_str(), spin(o.sync_spin_ns).c_str());
  std::printf("work per scenario: %u clients x %u rounds x (map%s + touch + unmap of %zu B), %u measured pass%s + 1 warm-up\n",
              base.clients, base.rounds, base.populate ? " (populated)" : " (lazy)", base.bytes, repeat,
              repeat == 1 ? "" : "es");
  std::printf("one op = allocate + touch + free (2 system calls, 2 IPC round trips); kern/op counts every party\n\n");
  std::printf("%8s %13s %13s %8s %21s %21s %9s %9s %7s %7s\n", "inflight", "sync ops/s", "async ops/s", "async/sync",
              "sync p50 / p99", "async p50 / p99", "sync k/op", "async k/op", "sync cpu", "async cpu");

  std::map<unsigned, double> ratio;
  bool failed = false;
  for (unsigned n : inflights) {
    WorkloadParams p = base;
    p.inflight = n;
    WorkloadResult s, a;
    // A pause before each scenario lets the kernel finish what the last one left (exited threads,
    // freed stacks and page tables); without it, whichever twin ran second was measured up to 25%
    // slower under `chrt` (docs/alloc.md).
    std::this_thread::sleep_for(std::chrono::milliseconds(kPauseMs));
    if (do_sync) s = run_sync_workload(p);
    std::this_thread::sleep_for(std::chrono::milliseconds(kPauseMs));
    if (do_async) a = run_async_workload(p);
    for (const auto& [mode, r, on] : {std::tuple<const char*, const WorkloadResult&, bool>{"sync", s, do_sync},
                                      std::tuple<const char*, const WorkloadResult&, bool>{"async", a, do_async}}) {
      if (!on) continue;
      if (!r.error.empty()) {
        std::fprintf(stderr, "uipc bench alloc: %s, inflight %u: %s\n", mode, n, r.error.c_str());
        failed = true;
      }
      if (json.is_open()) {
        json << to_json(mode, p, r, facts).dump() << '\n';
        json.flush();
        if (!json) throw std::runtime_error("--json: write to '" + o.json + "' failed");
      }
    }
    auto cell = [](bool on, double v) { return on ? fmt_rate(v) : std::string("-"); };
    auto lat = [](bool on, const WorkloadResult& r) {
      return on ? fmt_ns(r.p50_ns) + " / " + fmt_ns(r.p99_ns) : std::string("-");
    };
    std::string q = "-";
    if (do_sync && do_async && s.ops_per_s() > 0 && a.ops_per_s() > 0) {
      ratio[n] = a.ops_per_s() / s.ops_per_s();
      q = fmt("%.2fx", ratio[n]);
    }
    std::printf("%8u %13s %13s %8s %21s %21s %9s %9s %7s %7s\n", n, cell(do_sync, s.ops_per_s()).c_str(),
                cell(do_async, a.ops_per_s()).c_str(), q.c_str(), lat(do_sync, s).c_str(), lat(do_async, a).c_str(),
                do_sync ? fmt("%.3f", s.per_op(static_cast<double>(s.kernel_entries()))).c_str() : "-",
                do_async ? fmt("%.3f", a.per_op(static_cast<double>(a.kernel_entries()))).c_str() : "-",
                do_sync ? fmt("%.2f", s.cpu_s).c_str() : "-", do_async ? fmt("%.2f", a.cpu_s).c_str() : "-");
    std::fflush(stdout);
  }
  if (!ratio.empty()) {
    std::printf("\nTarget (issue 6): async >= sync from 8 in flight (ratios from this run)\n");
    for (const auto& [n, q] : ratio)
      if (n >= 8) std::printf("   inflight %4u: %.3fx  %s\n", n, q, q >= 1.0 ? "PASS" : "MISS");
    // The crossover: the smallest in-flight count from which async is ahead at every larger one.
    unsigned from = 0;
    for (auto it = ratio.rbegin(); it != ratio.rend() && it->second >= 1.0; ++it) from = it->first;
    if (from) std::printf("   async >= sync from %u in flight on (of the counts run)\n", from);
    else std::printf("   async is behind sync at the largest in-flight count run\n");
  }
  if (failed) throw std::runtime_error("a scenario failed (see above)");
}

void add_alloc_bench(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = bench.add_subcommand(
      "alloc",
      "The memory-allocation server (the reference's allocator workload): clients ask a server thread to map and "
      "unmap 4 KiB blocks and touch each page. Mode async: async IPC + the server's mmap/munmap as async system "
      "calls; mode sync: blocking Call/ReplyRecv + plain mmap/munmap. One op = allocate + touch + free.");
  cmd->add_flag("--quick", o->quick, "Short runs: 3 measured passes per scenario instead of 10 (explicit --repeat wins)");
  cmd->add_option("--json", o->json, "Append one JSON object per (mode, in-flight) scenario, one per line, to FILE")
      ->type_name("FILE");
  cmd->add_option("--inflight", o->inflight,
                  std::string("Calls in flight (async: coroutines; sync: client threads), 1..") +
                      std::to_string(kMaxInflight) + " (default " + kDefaultInflight + ")")
      ->type_name("LIST");
  cmd->add_option("--clients", o->clients, "Clients of the reference workload (default 512)")->type_name("N");
  cmd->add_option("--rounds", o->rounds, "Map+unmap rounds per client (default 10)")->type_name("N");
  o->repeat_opt = cmd->add_option("--repeat", o->repeat, "Measured passes over clients x rounds, after one warm-up pass (default 10)")
                      ->type_name("N");
  cmd->add_option("--size", o->size, "Bytes per allocation (default 4096)")->type_name("BYTES");
  cmd->add_flag("--lazy", o->lazy,
                "Map without MAP_POPULATE: pages appear at the client's first touch (page faults on the client side) "
                "instead of inside the server's mmap");
  o->cpus_opt = cmd->add_option("--cpus", o->cpus,
                                "CPUs to pin to: clients, server[, kernel core of affine/shared placement; default: "
                                "the clients' CPU], or 'none'. Default: the first two CPUs available, if there are two")
                    ->type_name("LIST");
  cmd->add_option("--modes", o->modes, "sync, async or both (default sync,async)")->type_name("LIST");
  cmd->add_option("--wake", o->wake, "Async executor wake mode: hybrid (default), irq, tick")->type_name("MODE");
  cmd->add_option("--placement", o->placement, "Async executor placement: local (default), shared, affine")
      ->type_name("P");
  cmd->add_option("--backend", o->backend, "Async executor backend: direct (default), io_uring, automatic")
      ->type_name("B");
  cmd->add_option("--max-batch", o->max_batch,
                  "Async executor: system calls a claimant executes per claim before the replies go out (default 1024)")
      ->type_name("N");
  cmd->add_option("--sync-spin-ns", o->sync_spin_ns,
                  "The sync twin's spin window before a side sleeps (default: the library's, 50000; 0 = sleep at once)")
      ->type_name("NS");
  cmd->add_option("--async-spin-ns", o->async_spin_ns,
                  "The async twin's runtimes' spin window before they sleep (default: the library's, 50000)")
      ->type_name("NS");
  cmd->footer("Example: uipc bench alloc --quick --json results/alloc.jsonl\nSee docs/alloc.md for the design and fields.");
  cmd->callback([o] { run(*o); });
}

const bench::CommandRegistration reg{bench::Group::bench, "alloc", add_alloc_bench};

}  // namespace
}  // namespace uipc::apps::alloc
