// bench/wakeup_cli.cpp — `uipc bench wakeup`: how a request reaches its receiver (note §3.4:
// interrupt, polling or timer tick), measured as latency from submit to completion and the CPU
// the receiver burns, for a receiver that is asleep, already working, or has nothing to do.
//
// Modes (the receiver and how it is woken):
//   sys-tick-100us, sys-tick-1ms, sys-tick-4ms   the kernel executor in tick mode at that period
//   sys-irq, sys-hybrid                          the executor in irq / hybrid mode
//                                                (one kernel core, affine placement, direct backend;
//                                                 the call is getppid through the public sys API)
//   ipc-irq      an echo server and its client whose runtimes sleep as soon as they are idle
//                (spin window 0): every call that finds the server asleep is a futex wake
//   ipc-hybrid   library defaults: spin 50 µs, then sleep
//   ipc-poll     runtimes that never sleep (RuntimeOptions::sleep = false), like ReL4's
// Receiver states (the `workload` field):
//   idle   one call every --gap-us on average (default 1000 µs; each gap drawn from [gap/2, 3 gap/2]
//          so that calls do not lock onto a tick's phase): longer than every spin and idle window, so
//          the receiver has gone to sleep (tick: waits for its next tick) when the call arrives
//   busy   calls back to back, one in flight: the receiver is awake when the next one arrives
//   quiet  no calls at all: what the receiver costs when there is no work (a registration or a
//          connected channel exists)
// Per scenario: p50/p99 of submit → completion as the caller sees it, ops/s, kernel entries per
// call (every party), and receiver_cpu_per_s = (process CPU − the caller thread's CPU) / wall
// time: the kernel core's (plus the idle blocking pool's) or the server thread's CPU per second.
#include "eval_common.hpp"

#include "command_registry.hpp"
#include "harness.hpp"
#include "uipc/ipc/server.hpp"
#include "uipc/sys/syscall.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

namespace uipc::bench::eval {
namespace {

constexpr std::int64_t kDefaultGapNs = 1'000'000;

struct WakeMode {
  std::string name;
  bool sys = true;
  sys::WakeMode wake = sys::WakeMode::hybrid;
  std::int64_t tick_ns = 1'000'000;
  int ipc_policy = 0;  // 0 irq, 1 hybrid, 2 poll
};

const std::vector<WakeMode>& all_modes() {
  static const std::vector<WakeMode> m = {
      {"sys-tick-100us", true, sys::WakeMode::tick, 100'000, 0},
      {"sys-tick-1ms", true, sys::WakeMode::tick, 1'000'000, 0},
      {"sys-tick-4ms", true, sys::WakeMode::tick, 4'000'000, 0},
      {"sys-irq", true, sys::WakeMode::irq, 1'000'000, 0},
      {"sys-hybrid", true, sys::WakeMode::hybrid, 1'000'000, 0},
      {"ipc-irq", false, sys::WakeMode::irq, 0, 0},
      {"ipc-hybrid", false, sys::WakeMode::hybrid, 0, 1},
      {"ipc-poll", false, sys::WakeMode::hybrid, 0, 2},
  };
  return m;
}
const char* const kStates[] = {"idle", "busy", "quiet"};

struct Scenario {
  const WakeMode* mode;
  std::string state;
  double seconds;
  std::int64_t gap_ns;
};

struct Out {
  Measure m;
  double receiver_cpu_per_s = 0;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "uipc bench wakeup: %s\n", what.c_str());
  std::exit(1);
}

// The caller's measuring loop, shared by the sys and IPC sides: `call` makes one call and
// returns false on failure.  Edges: warm-up 10% (at least 2 ms), then `seconds`.
template <class Call, class Kernel>
Task<void> probe(Runtime& rt, const Scenario& s, Out& out, Call call, Kernel kernel_entries) {
  const std::uint64_t warm = static_cast<std::uint64_t>(s.seconds * 0.1e9) + 2'000'000;
  const std::uint64_t t_begin = now_ns() + warm;
  if (s.state == "quiet") {
    if (!co_await call()) die("the first call failed");
    co_await rt.sleep_for(static_cast<std::int64_t>(warm));
  } else {
    while (now_ns() < t_begin) {
      if (s.state == "idle") co_await rt.sleep_for(s.gap_ns);
      if (!co_await call()) die("a call failed");
    }
  }
  LatencyRecorder lat;
  const std::uint64_t k0 = kernel_entries();
  const double cpu0 = process_cpu_seconds(), tcpu0 = thread_cpu_seconds();
  const std::uint64_t t0 = now_ns(), t_end = t0 + static_cast<std::uint64_t>(s.seconds * 1e9);
  std::uint64_t ops = 0, t1 = t0;
  if (s.state == "quiet") {
    co_await rt.sleep_for(static_cast<std::int64_t>(s.seconds * 1e9));
    t1 = now_ns();
  } else {
    // Idle gaps vary uniformly over [gap/2, 3 gap/2] (a fixed sequence), so that calls do not
    // lock onto the phase of a tick whose period divides the gap.
    std::uint64_t rnd = 0x9e3779b97f4a7c15ull;
    for (;;) {
      if (s.state == "idle") {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        co_await rt.sleep_for(s.gap_ns / 2 + static_cast<std::int64_t>((rnd >> 33) % static_cast<std::uint64_t>(s.gap_ns + 1)));
      }
      const std::uint64_t a = now_ns();
      if (!co_await call()) die("a call failed");
      t1 = now_ns();
      lat.record(t1 - a);
      ++ops;
      if (t1 >= t_end) break;
    }
  }
  out.m.wall_s = static_cast<double>(t1 - t0) / 1e9;
  out.m.cpu_s = process_cpu_seconds() - cpu0;
  const double caller = thread_cpu_seconds() - tcpu0;
  out.receiver_cpu_per_s = out.m.wall_s > 0 ? std::max(0.0, out.m.cpu_s - caller) / out.m.wall_s : 0;
  out.m.kernel_entries = kernel_entries() - k0;
  out.m.ops = ops;
  out.m.p50_ns = ops ? lat.percentile(50) : 0;
  out.m.p99_ns = ops ? lat.percentile(99) : 0;
}

Out run_sys(const Scenario& s, const Cpus& cpus) {
  sys::ExecutorOptions eo;
  eo.wake = s.mode->wake;
  eo.placement = sys::Placement::affine;
  eo.backend = sys::Backend::direct;
  eo.tick_ns = s.mode->tick_ns;
  eo.blocking_threads = 0;
  if (cpu_at(cpus, 1) >= 0) eo.cpus = {cpu_at(cpus, 1)};
  auto exr = sys::Executor::create(eo);
  if (!exr) die("executor: " + exr.error().message());
  auto ex = std::move(exr.value());
  pin_this_thread(cpu_at(cpus, 0));
  Out out;
  {
    Runtime rt;
    auto regr = sys::configure_async_syscall(rt, *ex);
    if (!regr) die("configure_async_syscall: " + regr.error().message());
    auto reg = std::move(regr.value());
    auto kernel = [&] {
      std::uint64_t k = ex->pool_stats().kernel_entries() + reg->caller_kernel_entries();
      for (const auto& c : ex->core_stats()) k += c.kernel_entries();
      return k;
    };
    auto call = []() -> Task<bool> { co_return static_cast<bool>(co_await sys::getppid()); };
    rt.block_on(probe(rt, s, out, call, kernel));
    reg.reset();
  }
  ex->shutdown();
  out.m.note = "getppid; 1 kernel core, affine, direct";
  return out;
}

RuntimeOptions ipc_options(int policy) {
  RuntimeOptions ro;
  if (policy == 0) ro.spin_ns = 0;
  if (policy == 2) ro.sleep = false;
  return ro;
}

Out run_ipc(const Scenario& s, const Cpus& cpus) {
  Runtime server_rt(ipc_options(s.mode->ipc_policy));
  ipc::Server server(server_rt, [](std::span<const std::byte> req, std::span<std::byte> rep) -> Task<Result<std::size_t>> {
    std::memcpy(rep.data(), req.data(), req.size());
    co_return req.size();
  });
  std::thread th([&, cpu = cpu_at(cpus, 1)] {
    pin_this_thread(cpu);
    server_rt.block_on(server.serve());
  });
  pin_this_thread(cpu_at(cpus, 0));
  Out out;
  {
    Runtime rt(ipc_options(s.mode->ipc_policy));
    auto c = server.connect(rt);
    if (!c) die("connect: " + c.error().message());
    auto client = std::move(c.value());
    std::byte req[8] = {}, rep[8] = {};
    auto call = [&]() -> Task<bool> {
      auto r = co_await client->call(req, rep);
      co_return r && r.value() == sizeof req;
    };
    auto kernel = [&] { return rt.counters().kernel_entries.get() + server_rt.counters().kernel_entries.get(); };
    rt.block_on(probe(rt, s, out, call, kernel));
    client->close();
  }
  server.stop();
  th.join();
  out.m.note = std::string("8-byte echo; runtimes: ") +
               (s.mode->ipc_policy == 0 ? "spin 0, then sleep" : s.mode->ipc_policy == 1 ? "spin 50 us, then sleep" : "never sleep");
  return out;
}

std::vector<Scenario> plan(const std::vector<std::string>& modes, const std::vector<std::string>& states, double seconds,
                           std::int64_t gap_ns) {
  std::vector<Scenario> out;
  for (const auto& st : states)
    for (const auto& name : modes)
      for (const auto& m : all_modes())
        if (m.name == name) out.push_back({&m, st, seconds, gap_ns});
  return out;
}

void print_row(const Scenario& s, const Out& o) {
  std::printf("%-15s %-6s %12s %10s %10s %9s %11.3f  %s\n", s.mode->name.c_str(), s.state.c_str(),
              s.state == "quiet" ? "-" : report::fmt_rate(o.m.ops_per_s()).c_str(), cli::fmt_ns(o.m.p50_ns).c_str(),
              cli::fmt_ns(o.m.p99_ns).c_str(), s.state == "quiet" ? "-" : report::fmt_kernel(o.m.kernel_per_op()).c_str(),
              o.receiver_cpu_per_s, o.m.note.c_str());
  std::fflush(stdout);
}

SweepResult run_plan(const std::vector<Scenario>& todo, const SweepOptions& o, const Facts& f) {
  SweepResult res;
  if (o.verbose)
    std::printf("%-15s %-6s %12s %10s %10s %9s %11s  %s\n", "mode", "state", "calls/s", "p50", "p99", "kern/call", "recv cpu/s",
                "note");
  for (const auto& s : todo) {
    const std::string key = scenario_key("wakeup", s.mode->name, s.state, 1);
    if (o.skip.count(key)) {
      ++res.skipped;
      continue;
    }
    const Out out = s.mode->sys ? run_sys(s, o.cpus) : run_ipc(s, o.cpus);
    if (o.verbose) print_row(s, out);
    auto j = line("wakeup", s.mode->name, s.state, 1, s.mode->sys ? 0 : 8, out.m, o.cpus, f);
    j["receiver_cpu_per_s"] = out.receiver_cpu_per_s;
    j["gap_ns"] = s.state == "idle" ? s.gap_ns : 0;
    if (s.mode->sys) j["tick_ns"] = s.mode->wake == sys::WakeMode::tick ? s.mode->tick_ns : 0;
    if (o.out) o.out->write(j);
    ++res.run;
  }
  return res;
}

struct Options {
  bool quick = false;
  std::string json, cpus, modes, states;
  double seconds = 0;
  std::int64_t gap_us = kDefaultGapNs / 1000;
  CLI::Option* cpus_opt = nullptr;
};

void run_cli(const Options& o) {
  if (o.seconds < 0 || o.seconds > 3600) cli::usage("--seconds: must be in (0, 3600]");
  if (o.gap_us < 1 || o.gap_us > 1'000'000) cli::usage("--gap-us: must be in 1..1000000");
  std::vector<std::string> modes, states;
  for (const auto& m : cli::split(o.modes, ',')) {
    if (m.empty()) continue;
    bool found = false;
    for (const auto& k : all_modes())
      if (k.name == m || (m.back() == '*' && k.name.rfind(m.substr(0, m.size() - 1), 0) == 0)) {
        found = true;
        if (std::find(modes.begin(), modes.end(), k.name) == modes.end()) modes.push_back(k.name);
      }
    if (!found) {
      std::string known;
      for (const auto& k : all_modes()) known += (known.empty() ? "" : ", ") + k.name;
      cli::usage("--modes: unknown mode '" + m + "' (available: " + known + ")");
    }
  }
  if (modes.empty())
    for (const auto& k : all_modes()) modes.push_back(k.name);
  for (const auto& s : cli::split(o.states, ',')) {
    if (s.empty()) continue;
    if (std::find(std::begin(kStates), std::end(kStates), s) == std::end(kStates))
      cli::usage("--states: unknown receiver state '" + s + "' (available: idle, busy, quiet)");
    states.push_back(s);
  }
  if (states.empty()) states = {"idle", "busy", "quiet"};
  SweepOptions so;
  so.quick = o.quick;
  so.cpus = pick_cpus(o.cpus, o.cpus_opt->count() > 0);
  JsonOut out(o.json);
  so.out = &out;
  const Facts f = machine_facts();
  print_machine("wakeup", f, so.cpus);
  const double seconds = o.seconds > 0 ? o.seconds : o.quick ? 0.2 : 1.0;
  const auto todo = plan(modes, states, seconds, o.gap_us * 1000);
  std::printf("%zu scenarios of %.2f s (+10%% warm-up), gap %lld us between calls when idle, about %.0f s\n\n", todo.size(), seconds,
              static_cast<long long>(o.gap_us), static_cast<double>(todo.size()) * (seconds * 1.1 + 0.05) + 0.5);
  run_plan(todo, so, f);
}

void add_wakeup(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* w = bench.add_subcommand(
      "wakeup",
      "Interrupt, polling or tick (note §3.4): latency from submit to completion and the receiver's CPU per second, for "
      "an async getppid through the kernel executor (tick at 100 us / 1 ms / 4 ms, irq, hybrid) and an IPC call to an echo "
      "server (runtimes that sleep at once, spin 50 us then sleep, never sleep), with the receiver asleep (idle: one call "
      "per --gap-us), awake (busy: calls back to back) or without work (quiet).");
  w->add_flag("--quick", o->quick, "Short runs: 0.2 s per scenario");
  w->add_option("--json", o->json, "Append one JSON object per scenario to FILE")->type_name("FILE");
  o->cpus_opt = w->add_option("--cpus", o->cpus,
                              "CPUs: the caller's, then the receiver's (kernel core or server), e.g. 0,1; or 'none'. "
                              "Default: the first two available")
                    ->type_name("LIST");
  w->add_option("--modes", o->modes, "Modes to run (default all; 'sys-*' or 'ipc-*' for a family)")->type_name("LIST");
  w->add_option("--states", o->states, "Receiver states: idle, busy, quiet (default all)")->type_name("LIST");
  w->add_option("--seconds", o->seconds, "Measured seconds per scenario (default 1.0, --quick 0.2)")->type_name("S");
  w->add_option("--gap-us", o->gap_us, "Microseconds between calls in the idle state (default 1000)")->type_name("US");
  w->footer("Example: uipc bench wakeup --quick --json results/wakeup.jsonl\nSee docs/answers.md (§3.4).");
  w->callback([o] { run_cli(*o); });
}

const CommandRegistration reg{Group::bench, "wakeup", add_wakeup};

}  // namespace

SweepResult wakeup_sweep(const SweepOptions& o, const Facts& f) {
  std::vector<std::string> modes;
  for (const auto& k : all_modes()) modes.push_back(k.name);
  if (o.demo == 2) modes = {"sys-tick-1ms", "sys-irq", "sys-hybrid", "ipc-irq", "ipc-hybrid"};
  const double seconds = o.seconds > 0 ? o.seconds : o.quick ? 0.2 : 1.0;
  return run_plan(plan(modes, {"idle", "busy", "quiet"}, seconds, kDefaultGapNs), o, f);
}

}  // namespace uipc::bench::eval
