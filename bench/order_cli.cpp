// bench/order_cli.cpp — `uipc bench order`: what replies that overtake each other buy (note §1.6,
// "out-of-order analysis", empty in the note).
//
// One client thread keeps --inflight calls outstanding on one channel; one server thread answers.
// Every --slow-every-th request is slow: its handler needs --slow-us before it can reply (a
// stand-in for a request that waits on something else: a disk, another server).  Modes:
//   out-of-order  ipc::Handler, a coroutine per request: a slow request co_awaits a timer, the
//                 requests behind it are answered meanwhile and their replies overtake its reply
//   in-order      ipc::InlineHandler: requests are answered one after another in arrival order, a
//                 slow one holds up every request behind it (busy-waiting its --slow-us, as a
//                 server that blocks would)
// Per scenario: calls/s, p50/p99 of the *fast* calls (the common schema's p50_ns/p99_ns), the p50
// of the slow calls (slow_p50_ns) and the share of replies that arrived before the reply to an
// earlier request (overtaken_share).
#include "eval_common.hpp"

#include "command_registry.hpp"
#include "harness.hpp"
#include "uipc/ipc/server.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

namespace uipc::bench::eval {
namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "uipc bench order: %s\n", what.c_str());
  std::exit(1);
}

struct Params {
  unsigned inflight = 16, slow_every = 8;
  std::int64_t slow_ns = 200'000;
  double seconds = 1.0;
};

struct Out {
  Measure m;
  double slow_p50 = 0, overtaken = 0;
};

bool is_slow(std::uint64_t seq, unsigned every) { return every > 0 && seq % every == 0; }

Out run_one(bool out_of_order, const Params& p, const Cpus& cpus) {
  Runtime server_rt;
  std::optional<ipc::Server> srv;
  const unsigned every = p.slow_every;
  const std::int64_t slow_ns = p.slow_ns;
  if (out_of_order)
    srv.emplace(server_rt, [&server_rt, every, slow_ns](std::span<const std::byte> req, std::span<std::byte> rep) -> Task<Result<std::size_t>> {
      std::uint64_t seq = 0;
      std::memcpy(&seq, req.data(), sizeof seq);
      if (is_slow(seq, every)) co_await server_rt.sleep_for(slow_ns);
      std::memcpy(rep.data(), req.data(), req.size());
      co_return req.size();
    });
  else
    srv.emplace(server_rt, ipc::InlineHandler([every, slow_ns](std::span<const std::byte> req, std::span<std::byte> rep) -> Result<std::size_t> {
      std::uint64_t seq = 0;
      std::memcpy(&seq, req.data(), sizeof seq);
      if (is_slow(seq, every))
        for (const std::uint64_t until = now_ns() + static_cast<std::uint64_t>(slow_ns); now_ns() < until;) {
        }
      std::memcpy(rep.data(), req.data(), req.size());
      return req.size();
    }));
  ipc::Server& server = *srv;
  std::thread th([&, cpu = cpu_at(cpus, 1)] {
    pin_this_thread(cpu);
    server_rt.block_on(server.serve());
  });
  pin_this_thread(cpu_at(cpus, 0));
  Out out;
  {
    Runtime rt;
    ipc::ChannelOptions co;
    co.max_payload = 64;
    co.capacity = 8;
    while (co.capacity < p.inflight) co.capacity *= 2;
    auto c = server.connect(rt, co);
    if (!c) die("connect: " + c.error().message());
    auto client = std::move(c.value());
    auto kernel = [&] { return rt.counters().kernel_entries.get() + server_rt.counters().kernel_entries.get(); };
    MeasureWindow win{now_ns() + static_cast<std::uint64_t>(p.seconds * 0.1e9) + 2'000'000,
                      static_cast<std::uint64_t>(p.seconds * 1e9), kernel, out.m};
    std::uint64_t seq = 0, highest_done = 0, overtaken = 0;
    LatencyRecorder fast, slow;
    auto worker = [&]() -> Task<void> {
      std::byte req[64] = {}, rep[64] = {};
      while (!win.stop) {
        const std::uint64_t s = ++seq;
        std::memcpy(req, &s, sizeof s);
        const std::uint64_t a = now_ns();
        auto r = co_await client->call(req, rep);
        const std::uint64_t b = now_ns();
        std::uint64_t back = 0;
        if (r) std::memcpy(&back, rep, sizeof back);
        if (!r || back != s) die(std::string("bad reply: ") + (r ? "payload mismatch" : r.error().message()));
        if (win.after_call(b)) {
          (is_slow(s, p.slow_every) ? slow : fast).record(b - a);
          if (s < highest_done) ++overtaken;  // a later request's reply came first
        }
        highest_done = std::max(highest_done, s);
      }
    };
    for (unsigned i = 0; i < p.inflight; ++i) rt.spawn(worker());
    rt.run();
    out.m.p50_ns = fast.count() ? fast.percentile(50) : 0;
    out.m.p99_ns = fast.count() ? fast.percentile(99) : 0;
    out.slow_p50 = slow.count() ? slow.percentile(50) : 0;
    out.overtaken = out.m.ops ? static_cast<double>(overtaken) / static_cast<double>(out.m.ops) : 0;
    client->close();
  }
  server.stop();
  th.join();
  out.m.note = "1 in " + std::to_string(p.slow_every) + " requests waits " + cli::fmt_ns(static_cast<double>(p.slow_ns)) +
               (out_of_order ? " (co_await a timer)" : " (busy, in line)") + "; p50/p99: the fast calls";
  return out;
}

struct Options {
  Params p;
  bool quick = false;
  std::string json, cpus, inflight;
  double seconds = 0;
  std::int64_t slow_us = 200;
  CLI::Option* cpus_opt = nullptr;
};

void run_cli(const Options& o) {
  if (o.seconds < 0 || o.seconds > 3600) cli::usage("--seconds: must be in (0, 3600]");
  if (o.slow_us < 0 || o.slow_us > 1'000'000) cli::usage("--slow-us: must be in 0..1000000");
  if (o.p.slow_every < 1 || o.p.slow_every > 1'000'000) cli::usage("--slow-every: must be in 1..1000000");
  std::vector<unsigned> inflights;
  for (const auto& item : cli::split(o.inflight.empty() ? "1,4,16,64" : o.inflight, ',')) {
    const auto v = cli::parse_number("--inflight", item);
    if (v < 1 || v > 4096) cli::usage("--inflight: " + item + " is out of range (1..4096)");
    inflights.push_back(static_cast<unsigned>(v));
  }
  const Cpus cpus = pick_cpus(o.cpus, o.cpus_opt->count() > 0);
  JsonOut json(o.json);
  const Facts f = machine_facts();
  print_machine("order", f, cpus);
  Params p = o.p;
  p.seconds = o.seconds > 0 ? o.seconds : o.quick ? 0.2 : 1.0;
  p.slow_ns = o.slow_us * 1000;
  const std::string workload = "1-in-" + std::to_string(p.slow_every) + "-slow-" + std::to_string(o.slow_us) + "us";
  std::printf("%zu scenarios of %.2f s; workload %s\n\n%-13s %8s %12s %10s %10s %10s %10s\n", inflights.size() * 2, p.seconds,
              workload.c_str(), "mode", "inflight", "calls/s", "fast p50", "fast p99", "slow p50", "overtaken");
  for (auto n : inflights)
    for (bool ooo : {true, false}) {
      p.inflight = n;
      const Out r = run_one(ooo, p, cpus);
      const char* mode = ooo ? "out-of-order" : "in-order";
      std::printf("%-13s %8u %12s %10s %10s %10s %9.1f%%\n", mode, n, report::fmt_rate(r.m.ops_per_s()).c_str(),
                  cli::fmt_ns(r.m.p50_ns).c_str(), cli::fmt_ns(r.m.p99_ns).c_str(), cli::fmt_ns(r.slow_p50).c_str(), 100 * r.overtaken);
      std::fflush(stdout);
      auto j = line("order", mode, workload, n, 64, r.m, cpus, f);
      j["slow_p50_ns"] = r.slow_p50;
      j["overtaken_share"] = r.overtaken;
      json.write(j);
    }
}

void add_order(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* c = bench.add_subcommand(
      "order",
      "Out-of-order replies (note §1.6): one channel, 1 in --slow-every requests needs --slow-us before its reply; "
      "a coroutine handler lets later replies overtake it (out-of-order), an inline handler answers in arrival order "
      "(in-order). Reports the fast calls' latency, the slow calls' and the share of replies that overtook.");
  c->add_flag("--quick", o->quick, "Short runs: 0.2 s per scenario");
  c->add_option("--json", o->json, "Append one JSON object per scenario to FILE")->type_name("FILE");
  o->cpus_opt = c->add_option("--cpus", o->cpus, "CPUs: the client's, then the server's (default: the first two available), or 'none'")
                    ->type_name("LIST");
  c->add_option("--inflight", o->inflight, "Calls in flight (default 1,4,16,64)")->type_name("LIST");
  c->add_option("--slow-every", o->p.slow_every, "Every N-th request is slow (default 8)")->type_name("N");
  c->add_option("--slow-us", o->slow_us, "How long a slow request takes, in microseconds (default 200)")->type_name("US");
  c->add_option("--seconds", o->seconds, "Measured seconds per scenario (default 1.0, --quick 0.2)")->type_name("S");
  c->footer("Example: uipc bench order --quick --json results/order.jsonl\nSee docs/answers.md (§1.6).");
  c->callback([o] { run_cli(*o); });
}

const CommandRegistration reg{Group::bench, "order", add_order};

}  // namespace
}  // namespace uipc::bench::eval
