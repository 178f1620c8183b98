// bench/channels_cli.cpp — `uipc bench channels`: 1 … 4096 channels on one server (note §3.2: are
// 64 user-interrupt vectors enough?).  uipc gives each channel a slot: slots 0..63 own a vector,
// more channels share vectors through the second-level doorbell words (64 × 64 = 4096).
//
// One server thread (ipc::Server, echo handler), one client thread holding N clients.  Modes:
//   every     one call in flight on every channel: N in flight, the load grows with N
//   fixed-64  64 calls in flight spread over the N channels (each caller moves to the next channel
//             after each call): the same load whatever N, so what changes is only how many
//             channels (slots, vectors, doorbell words, rings) the work is spread over
// 64-byte messages; ring capacity per channel: the next power of two ≥ the calls one channel may
// have in flight (at least 8).  Per scenario: ops/s, p50/p99 per call, kernel entries per call
// (both runtimes), CPU; the line's `channels` field is N.
#include "eval_common.hpp"

#include "command_registry.hpp"
#include "harness.hpp"
#include "uipc/ipc/server.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <thread>

namespace uipc::bench::eval {
namespace {

constexpr std::size_t kBytes = 64;
constexpr unsigned kFixed = 64;
const char* const kDefaultChannels = "1,4,16,64,65,256,1024,4096";
const char* const kQuickChannels = "1,64,256,4096";
const char* const kModes[] = {"every", "fixed-64"};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "uipc bench channels: %s\n", what.c_str());
  std::exit(1);
}

unsigned inflight_of(const std::string& mode, unsigned n) { return mode == "every" ? n : kFixed; }

// How evenly the callers were served: the calls each one completed while measuring.
struct Spread {
  std::uint64_t least = 0, median = 0, most = 0, none = 0;  // none: callers that completed no call
};

// max_polled: RuntimeOptions::max_polled of both runtimes, the polling window (0: the library default, 64).
Measure run_one(const std::string& mode, unsigned n, double seconds, const Cpus& cpus, unsigned max_polled, Spread& spread) {
  RuntimeOptions ro;
  if (max_polled > 0) ro.max_polled = max_polled;
  Runtime server_rt(ro);
  ipc::Server server(server_rt, [](std::span<const std::byte> req, std::span<std::byte> rep) -> Task<Result<std::size_t>> {
    std::memcpy(rep.data(), req.data(), req.size());
    co_return req.size();
  });
  std::thread th([&, cpu = cpu_at(cpus, 1)] {
    pin_this_thread(cpu);
    server_rt.block_on(server.serve());
  });
  pin_this_thread(cpu_at(cpus, 0));
  const unsigned inflight = inflight_of(mode, n);
  const unsigned per_channel = (inflight + n - 1) / n;
  Measure m;
  {
    Runtime rt(ro);
    ipc::ChannelOptions co;
    co.max_payload = kBytes;
    co.capacity = 8;
    while (co.capacity < per_channel) co.capacity *= 2;
    co.max_inflight = co.capacity;
    std::vector<std::unique_ptr<ipc::Client>> clients;
    clients.reserve(n);
    for (unsigned i = 0; i < n; ++i) {
      auto c = server.connect(rt, co);
      if (!c) die("connect (channel " + std::to_string(i + 1) + " of " + std::to_string(n) + "): " + c.error().message());
      clients.push_back(std::move(c.value()));
    }
    const std::uint64_t warm = static_cast<std::uint64_t>(seconds * 0.1e9) + 2'000'000;
    auto kernel = [&] { return rt.counters().kernel_entries.get() + server_rt.counters().kernel_entries.get(); };
    MeasureWindow win{now_ns() + warm, static_cast<std::uint64_t>(seconds * 1e9), kernel, m};
    LatencyRecorder lat;
    // Calls each caller completed while measuring: a runtime that served some channels and
    // starved others could show a fine throughput and fine percentiles (a starved call never
    // completes, so it is never timed); the spread of these counts shows it.
    std::vector<std::uint64_t> calls(inflight, 0);
    auto worker = [&](unsigned id) -> Task<void> {
      std::byte req[kBytes] = {}, rep[kBytes] = {};
      std::memcpy(req, &id, sizeof id);
      for (std::uint64_t k = 0; !win.stop; ++k) {
        // every: caller i stays on channel i.  fixed-64: caller i makes its k-th call on channel
        // (i + k) mod N: the callers walk through the channels one step per call, so every channel
        // carries calls and (callers moving at about the same pace) about ⌈64/N⌉ share one at a time.
        ipc::Client& c = *clients[mode == "every" ? id : (id + k) % n];
        const std::uint64_t a = now_ns();
        auto r = co_await c.call(req, rep);
        const std::uint64_t b = now_ns();
        if (!r || r.value() != kBytes || std::memcmp(req, rep, kBytes) != 0)
          die(std::string("bad reply: ") + (r ? "payload mismatch" : r.error().message()));
        if (win.after_call(b)) {
          lat.record(b - a);
          ++calls[id];
        }
      }
    };
    for (unsigned i = 0; i < inflight; ++i) rt.spawn(worker(i));
    rt.run();
    m.p50_ns = lat.percentile(50);
    m.p99_ns = lat.percentile(99);
    for (auto& c : clients) c->close();
    std::sort(calls.begin(), calls.end());
    spread = {calls.front(), calls[calls.size() / 2], calls.back(),
              static_cast<std::uint64_t>(std::count(calls.begin(), calls.end(), 0))};
  }
  server.stop();
  th.join();
  m.note = std::to_string(n) + " channels, " + std::to_string(inflight) + " in flight, ring capacity " +
           std::to_string(std::max(8u, std::bit_ceil(per_channel))) + "; calls per caller: min " +
           std::to_string(spread.least) + ", median " + std::to_string(spread.median) + ", max " +
           std::to_string(spread.most) + " (" + std::to_string(spread.none) + " callers with none)";
  return m;
}

SweepResult run_plan(const std::vector<std::string>& modes, const std::vector<unsigned>& channels, double seconds,
                     const SweepOptions& o, const Facts& f, unsigned max_polled = 0) {
  SweepResult res;
  if (o.verbose)
    std::printf("%-9s %9s %9s %13s %10s %10s %9s  %s\n", "mode", "channels", "inflight", "calls/s", "p50", "p99", "kern/call",
                "calls per caller: least / median");
  for (const auto& mode : modes)
    for (auto n : channels) {
      const unsigned inflight = inflight_of(mode, n);
      // A non-default polling set is part of the mode's name: its lines never stand for the default's.
      const std::string name = max_polled ? mode + "-polled" + std::to_string(max_polled) : mode;
      if (o.skip.count(scenario_key("channels", name, "", inflight, n))) {
        ++res.skipped;
        continue;
      }
      Spread spread;
      Measure m = run_one(mode, n, seconds, o.cpus, max_polled, spread);
      if (max_polled) m.note += "; runtimes poll up to " + std::to_string(max_polled) + " parked rings";
      if (o.verbose)
        std::printf("%-9s %9u %9u %13s %10s %10s %9s  %llu / %llu\n", name.c_str(), n, inflight,
                    report::fmt_rate(m.ops_per_s()).c_str(), cli::fmt_ns(m.p50_ns).c_str(), cli::fmt_ns(m.p99_ns).c_str(),
                    report::fmt_kernel(m.kernel_per_op()).c_str(), static_cast<unsigned long long>(spread.least),
                    static_cast<unsigned long long>(spread.median));
      std::fflush(stdout);
      auto j = line("channels", name, "", inflight, kBytes, m, o.cpus, f);
      j["channels"] = n;
      // A starved caller's calls never complete, so no percentile shows it; these do.
      j["least_calls_per_caller"] = spread.least;
      j["median_calls_per_caller"] = spread.median;
      j["callers_without_calls"] = spread.none;
      if (o.out) o.out->write(j);
      ++res.run;
    }
  return res;
}

struct Options {
  bool quick = false;
  std::string json, cpus, modes, channels;
  unsigned max_polled = 0;
  double seconds = 0;
  CLI::Option* cpus_opt = nullptr;
};

void run_cli(const Options& o) {
  if (o.seconds < 0 || o.seconds > 3600) cli::usage("--seconds: must be in (0, 3600]");
  std::vector<unsigned> channels;
  for (const auto& item : cli::split(o.channels.empty() ? (o.quick ? kQuickChannels : kDefaultChannels) : o.channels, ',')) {
    const auto v = cli::parse_number("--channels", item);
    if (v < 1 || v > 4096) cli::usage("--channels: " + item + " is not a channel count (1..4096: one server runtime has 4096 slots)");
    channels.push_back(static_cast<unsigned>(v));
  }
  std::vector<std::string> modes;
  for (const auto& m : cli::split(o.modes, ',')) {
    if (m.empty()) continue;
    if (std::find(std::begin(kModes), std::end(kModes), m) == std::end(kModes))
      cli::usage("--modes: unknown mode '" + m + "' (available: every, fixed-64)");
    modes.push_back(m);
  }
  if (modes.empty()) modes = {"every", "fixed-64"};
  SweepOptions so;
  so.cpus = pick_cpus(o.cpus, o.cpus_opt->count() > 0);
  JsonOut out(o.json);
  so.out = &out;
  const Facts f = machine_facts();
  print_machine("channels", f, so.cpus);
  const double seconds = o.seconds > 0 ? o.seconds : o.quick ? 0.2 : 1.0;
  std::printf("%zu scenarios of %.2f s (+10%% warm-up), %zu-byte messages\n\n", modes.size() * channels.size(), seconds, kBytes);
  if (o.max_polled > 65536) cli::usage("--max-polled: at most 65536");
  run_plan(modes, channels, seconds, so, f, o.max_polled);
}

void add_channels(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* c = bench.add_subcommand(
      "channels",
      "Many channels on one server (note §3.2: are 64 vectors enough?): one client thread and one server thread, 1..4096 "
      "channels, either one call in flight per channel (every) or 64 calls in flight spread over all channels (fixed-64). "
      "Each scenario's note ends with the calls each caller made (min, median, max): a starved channel shows there, not in "
      "the percentiles, which only completed calls reach.");
  c->add_flag("--quick", o->quick, std::string("Short runs: 0.2 s per scenario, channels ") + kQuickChannels);
  c->add_option("--json", o->json, "Append one JSON object per scenario to FILE")->type_name("FILE");
  o->cpus_opt = c->add_option("--cpus", o->cpus, "CPUs: the client's, then the server's (default: the first two available), or 'none'")
                    ->type_name("LIST");
  c->add_option("--modes", o->modes, "every, fixed-64 (default both)")->type_name("LIST");
  c->add_option("--channels", o->channels, std::string("Channel counts, 1..4096 (default ") + kDefaultChannels + ")")->type_name("LIST");
  c->add_option("--max-polled", o->max_polled,
                "RuntimeOptions::max_polled of both runtimes: the polling window, the most recently parked rings that "
                "are polled while busy (those beyond it stay armed and are served by interrupts; default: the "
                "library's, 64); a non-default value is appended to the mode name")
      ->type_name("N");
  c->add_option("--seconds", o->seconds, "Measured seconds per scenario (default 1.0, --quick 0.2)")->type_name("S");
  c->footer("Example: uipc bench channels --quick --json results/channels.jsonl\nSee docs/answers.md (§3.2).");
  c->callback([o] { run_cli(*o); });
}

const CommandRegistration reg{Group::bench, "channels", add_channels};

}  // namespace

SweepResult channels_sweep(const SweepOptions& o, const Facts& f) {
  std::vector<unsigned> channels;
  const char* list = o.demo == 2 ? "1,64,256" : o.demo == 1 ? "1,64,4096" : o.quick ? kQuickChannels : kDefaultChannels;
  for (const auto& item : cli::split(list, ','))
    channels.push_back(static_cast<unsigned>(std::stoul(item)));
  const double seconds = o.seconds > 0 ? o.seconds : o.quick ? 0.2 : 1.0;
  return run_plan({"every", "fixed-64"}, channels, seconds, o, f);
}

}  // namespace uipc::bench::eval
