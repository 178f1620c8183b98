// bench/placement_cli.cpp — `uipc bench placement`: which core answers an asynchronous system
// call (note §3.2), across loads.  Placements affine (the registration's own kernel core),
// shared (any claimant: the kernel core or the caller's own runtime when it would idle) and
// local (no kernel core: the caller's runtime executes its own calls), with 1 or 2 caller threads
// keeping 1, 8, 64 or 512 getppid calls in flight each.  One kernel core (hybrid wake-up, direct
// backend) on the second CPU; caller i runs on CPU i mod 2, so with two callers the second
// shares its CPU with the kernel core — on a 2-CPU machine that is the honest case.
//
// Per scenario: ops/s (all callers), p50/p99 (every 8th call of each coroutine), kernel entries
// per call (every party), CPU, and answered_by_caller: the share of requests the callers' own
// threads executed (RegistrationStats: caller_stats / executor_stats), i.e. "which core answered".
// The line's `inflight` is per caller; `callers` is the number of caller threads.
#include "eval_common.hpp"

#include "command_registry.hpp"
#include "harness.hpp"
#include "uipc/sys/syscall.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

namespace uipc::bench::eval {
namespace {

const char* const kDefaultInflight = "1,8,64,512";
const char* const kPlacements[] = {"affine", "shared", "local"};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "uipc bench placement: %s\n", what.c_str());
  std::exit(1);
}

struct CallerOut {
  std::uint64_t ops = 0, kernel = 0, by_caller = 0, by_all = 0;
  double wall_s = 0;
  LatencyRecorder lat;
};

Measure run_one(sys::Placement placement, unsigned callers, unsigned inflight, double seconds, const Cpus& cpus,
                double& answered_by_caller) {
  sys::ExecutorOptions eo;
  eo.wake = sys::WakeMode::hybrid;
  eo.placement = placement;
  eo.backend = sys::Backend::direct;
  eo.blocking_threads = 0;
  if (cpu_at(cpus, 1) >= 0) eo.cpus = {cpu_at(cpus, 1)};
  auto exr = sys::Executor::create(eo);
  if (!exr) die("executor: " + exr.error().message());
  auto ex = std::move(exr.value());
  auto exec_kernel = [&] {
    std::uint64_t k = ex->pool_stats().kernel_entries();
    for (const auto& c : ex->core_stats()) k += c.kernel_entries();
    return k;
  };

  const std::uint64_t from = now_ns() + static_cast<std::uint64_t>(seconds * 0.1e9) + 5'000'000;
  const std::uint64_t length = static_cast<std::uint64_t>(seconds * 1e9);
  std::vector<CallerOut> outs(callers);
  double cpu0 = 0, cpu1 = 0;
  std::uint64_t ek0 = 0, ek1 = 0;
  auto caller = [&](unsigned idx) {
    pin_this_thread(cpu_at(cpus, idx));
    Runtime rt;
    sys::SyscallOptions so;
    so.capacity = 8;
    while (so.capacity < inflight) so.capacity *= 2;
    auto regr = sys::configure_async_syscall(rt, *ex, so);
    if (!regr) die("configure_async_syscall: " + regr.error().message());
    auto reg = std::move(regr.value());
    CallerOut& out = outs[idx];
    bool measuring = false, stop = false;
    std::uint64_t t0 = 0, k0 = 0, c0 = 0, a0 = 0;
    auto edge = [&](std::uint64_t b) {
      if (!measuring && !stop && b >= from) {
        measuring = true;
        t0 = b;
        k0 = reg->caller_kernel_entries();
        c0 = reg->caller_stats().requests;
        a0 = reg->executor_stats().requests;
        if (idx == 0) {
          cpu0 = process_cpu_seconds();
          ek0 = exec_kernel();
        }
      } else if (measuring && b >= t0 + length) {
        measuring = false;
        stop = true;
        out.wall_s = static_cast<double>(b - t0) / 1e9;
        out.kernel = reg->caller_kernel_entries() - k0;
        out.by_caller = reg->caller_stats().requests - c0;
        out.by_all = reg->executor_stats().requests - a0;
        if (idx == 0) {
          cpu1 = process_cpu_seconds();
          ek1 = exec_kernel();
        }
      }
    };
    auto worker = [&](unsigned id) -> Task<void> {
      for (std::uint64_t i = id;; ++i) {
        if (stop) co_return;
        const bool sample = i % kSampleEvery == 0;
        const std::uint64_t a = sample ? now_ns() : 0;
        if (!co_await sys::getppid()) die("a call failed");
        if (!sample) {
          if (measuring) ++out.ops;
          continue;
        }
        const std::uint64_t b = now_ns();
        const bool was = measuring;
        edge(b);
        if (was && measuring) {
          ++out.ops;
          out.lat.record(b - a);
        }
      }
    };
    for (unsigned i = 0; i < inflight; ++i) rt.spawn(worker(i));
    rt.run();
    reg.reset();
  };
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < callers; ++i) threads.emplace_back(caller, i);
  caller(0);
  for (auto& t : threads) t.join();
  ex->shutdown();

  Measure m;
  LatencyRecorder lat;
  std::uint64_t by_caller = 0, by_all = 0;
  double rate = 0;
  for (const auto& o : outs) {
    m.ops += o.ops;
    m.kernel_entries += o.kernel;
    by_caller += o.by_caller;
    by_all += o.by_all;
    lat.merge(o.lat);
    if (o.wall_s > 0) rate += static_cast<double>(o.ops) / o.wall_s;
  }
  m.kernel_entries += ek1 - ek0;
  m.wall_s = outs[0].wall_s;
  // ops_per_s = ops / wall_s: scale ops so that the sum of the callers' own rates comes out.
  if (m.wall_s > 0) m.ops = static_cast<std::uint64_t>(rate * m.wall_s + 0.5);
  m.cpu_s = cpu1 - cpu0;
  m.p50_ns = lat.count() ? lat.percentile(50) : 0;
  m.p99_ns = lat.count() ? lat.percentile(99) : 0;
  answered_by_caller = by_all ? static_cast<double>(by_caller) / static_cast<double>(by_all) : 0;
  m.note = "getppid; hybrid, direct; " + std::string(placement == sys::Placement::local ? "no kernel core" : "1 kernel core") + "; " +
           std::to_string(callers) + (callers == 1 ? " caller" : " callers");
  return m;
}

SweepResult run_plan(const std::vector<std::string>& placements, const std::vector<unsigned>& callers,
                     const std::vector<unsigned>& inflights, double seconds, const SweepOptions& o, const Facts& f) {
  SweepResult res;
  if (o.verbose)
    std::printf("%-7s %7s %9s %13s %10s %10s %9s %8s\n", "place", "callers", "inflight", "calls/s", "p50", "p99", "kern/call",
                "by caller");
  for (auto c : callers)
    for (const auto& pl : placements)
      for (auto n : inflights) {
        if (o.skip.count(scenario_key("placement", pl, "getppid", n, 0, c))) {
          ++res.skipped;
          continue;
        }
        double by_caller = 0;
        const Measure m = run_one(sys::parse_placement(pl).value(), c, n, seconds, o.cpus, by_caller);
        if (o.verbose)
          std::printf("%-7s %7u %9u %13s %10s %10s %9s %7.1f%%\n", pl.c_str(), c, n, report::fmt_rate(m.ops_per_s()).c_str(),
                      cli::fmt_ns(m.p50_ns).c_str(), cli::fmt_ns(m.p99_ns).c_str(), report::fmt_kernel(m.kernel_per_op()).c_str(),
                      100.0 * by_caller);
        std::fflush(stdout);
        auto j = line("placement", pl, "getppid", n, 0, m, o.cpus, f);
        j["callers"] = c;
        j["answered_by_caller"] = by_caller;
        if (o.out) o.out->write(j);
        ++res.run;
      }
  return res;
}

struct Options {
  bool quick = false;
  std::string json, cpus, placements, callers, inflight;
  double seconds = 0;
  CLI::Option* cpus_opt = nullptr;
};

std::vector<unsigned> numbers(const std::string& opt, const std::string& s, unsigned lo, unsigned hi) {
  std::vector<unsigned> out;
  for (const auto& item : cli::split(s, ',')) {
    const auto v = cli::parse_number(opt, item);
    if (v < lo || v > hi) cli::usage(opt + ": " + item + " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
    out.push_back(static_cast<unsigned>(v));
  }
  if (out.empty()) cli::usage(opt + ": empty list");
  return out;
}

void run_cli(const Options& o) {
  if (o.seconds < 0 || o.seconds > 3600) cli::usage("--seconds: must be in (0, 3600]");
  std::vector<std::string> placements;
  for (const auto& p : cli::split(o.placements, ',')) {
    if (p.empty()) continue;
    if (std::find(std::begin(kPlacements), std::end(kPlacements), p) == std::end(kPlacements))
      cli::usage("--placements: unknown placement '" + p + "' (available: affine, shared, local)");
    placements.push_back(p);
  }
  if (placements.empty()) placements = {"affine", "shared", "local"};
  const auto callers = numbers("--callers", o.callers.empty() ? "1,2" : o.callers, 1, 64);
  const auto inflights = numbers("--inflight", o.inflight.empty() ? kDefaultInflight : o.inflight, 1, 4096);
  SweepOptions so;
  so.cpus = pick_cpus(o.cpus, o.cpus_opt->count() > 0);
  JsonOut out(o.json);
  so.out = &out;
  const Facts f = machine_facts();
  print_machine("placement", f, so.cpus);
  const double seconds = o.seconds > 0 ? o.seconds : o.quick ? 0.2 : 1.0;
  std::printf("%zu scenarios of %.2f s (+10%% warm-up)\n\n", placements.size() * callers.size() * inflights.size(), seconds);
  run_plan(placements, callers, inflights, seconds, so, f);
}

void add_placement(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* c = bench.add_subcommand(
      "placement",
      "Which core answers an async system call (note §3.2): placements affine, shared and local with 1 or 2 caller "
      "threads and 1..512 getppid calls in flight each; reports throughput, latency and the share of calls the callers' "
      "own threads executed.");
  c->add_flag("--quick", o->quick, "Short runs: 0.2 s per scenario");
  c->add_option("--json", o->json, "Append one JSON object per scenario to FILE")->type_name("FILE");
  o->cpus_opt = c->add_option("--cpus", o->cpus,
                              "CPUs: caller i runs on the i-th (mod the count), the kernel core on the second (default: the "
                              "first two available), or 'none'")
                    ->type_name("LIST");
  c->add_option("--placements", o->placements, "affine, shared, local (default all)")->type_name("LIST");
  c->add_option("--callers", o->callers, "Caller thread counts (default 1,2)")->type_name("LIST");
  c->add_option("--inflight", o->inflight, std::string("Calls in flight per caller (default ") + kDefaultInflight + ")")->type_name("LIST");
  c->add_option("--seconds", o->seconds, "Measured seconds per scenario (default 1.0, --quick 0.2)")->type_name("S");
  c->footer("Example: uipc bench placement --quick --json results/placement.jsonl\nSee docs/answers.md (§3.2).");
  c->callback([o] { run_cli(*o); });
}

const CommandRegistration reg{Group::bench, "placement", add_placement};

}  // namespace

SweepResult placement_sweep(const SweepOptions& o, const Facts& f) {
  const double seconds = o.seconds > 0 ? o.seconds : o.quick ? 0.2 : 1.0;
  if (o.demo) return run_plan({"affine", "shared", "local"}, o.demo == 2 ? std::vector<unsigned>{1} : std::vector<unsigned>{1, 2}, {1, 64}, seconds, o, f);
  return run_plan({"affine", "shared", "local"}, {1, 2}, {1, 8, 64, 512}, seconds, o, f);
}

}  // namespace uipc::bench::eval
