// Modes "async", "async-inline" and "async-batch": uipc itself — a client runtime thread and a
// server runtime thread echoing through ipc::Server.
// "async": `inflight` client coroutines, each calling in a loop; each request gets a handler
// coroutine of its own on the server (ipc::Handler, replies may overtake each other).
// "async-inline": the same client; the server runs a non-suspending ipc::InlineHandler inside the
// receive coroutine and writes the reply in place (note §1.2).
// "async-batch": the inline server; the client keeps `inflight` calls outstanding in
// kBatchLanes coroutines, each sending its share with Client::call_many and resuming once per
// batch — what the ring and uds-epoll peers do with their batches. Latency is a call's batch:
// from before call_many to its return.
// Library defaults throughout (spin window, then sleep), so the numbers are what a user gets.
#include <cstring>
#include <optional>
#include <thread>

#include "harness.hpp"
#include "uipc/ipc/server.hpp"

namespace uipc::bench {
namespace {

// An echo server on its own thread (pinned to cpus[1]), for as long as the object lives.
struct EchoServer {
  Runtime rt;
  std::optional<ipc::Server> srv;
  ipc::Server& server;
  std::thread thread;
  EchoServer(const IpcParams& p, bool inline_handler) : server(make(inline_handler)) {
    thread = std::thread([this, cpu = cpu_or_none(p, 1)] {
      pin_this_thread(cpu);
      rt.block_on(server.serve());
    });
  }
  ~EchoServer() {
    server.stop();
    thread.join();
  }
  ipc::Server& make(bool inline_handler) {
    if (inline_handler)
      return srv.emplace(rt, ipc::InlineHandler([](std::span<const std::byte> req, std::span<std::byte> reply) -> Result<std::size_t> {
        std::memcpy(reply.data(), req.data(), req.size());
        return req.size();
      }));
    return srv.emplace(rt, [](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
      std::memcpy(reply.data(), req.data(), req.size());
      co_return req.size();
    });
  }
};

// async-batch: the coroutines sharing the in-flight calls, each with one call_many at a time.
// Two lanes let one batch be answered while the other is being sent and checked.
constexpr unsigned kBatchLanes = 2;

IpcResult run_async(const IpcParams& p, bool inline_handler, bool batched = false) {
  EchoServer echo(p, inline_handler);
  Runtime& server_rt = echo.rt;
  ipc::Server& server = echo.server;

  IpcResult res;
  {
    pin_this_thread(cpu_or_none(p, 0));
    Runtime rt;
    ipc::ChannelOptions o;
    o.max_payload = static_cast<std::uint32_t>(std::max<std::size_t>(p.msg_bytes, 64));
    o.capacity = 256;
    while (o.capacity < p.inflight) o.capacity *= 2;
    auto c = server.connect(rt, o);
    if (!c) {
      std::fprintf(stderr, "uipc bench: async: connect: %s\n", c.error().message().c_str());
      std::abort();
    }
    auto client = std::move(c.value());

    const std::uint64_t warm_ns = static_cast<std::uint64_t>(p.seconds * 0.1e9) + 1'000'000;
    const std::uint64_t run_ns = static_cast<std::uint64_t>(p.seconds * 1e9);
    const std::uint64_t t0 = now_ns();
    const std::uint64_t measure_from = t0 + warm_ns, measure_to = measure_from + run_ns;
    bool measuring = false, stop = false;
    std::uint64_t ops = 0, seq = 0, k0 = 0, t_start = 0, t_end = 0;
    double cpu0 = 0;
    auto kernel_entries = [&] {
      return rt.counters().kernel_entries.get() + server_rt.counters().kernel_entries.get();
    };
    LatencyRecorder lat;
    // After `calls` calls that took from a to b: opens or closes the measured interval at its
    // edges, counts them inside it.
    auto account = [&](std::uint64_t a, std::uint64_t b, unsigned calls) {
      if (!measuring && !stop && b >= measure_from) {
        measuring = true;
        k0 = kernel_entries();
        cpu0 = process_cpu_seconds();
        t_start = b;
      } else if (measuring && b >= measure_to) {
        measuring = false;
        stop = true;
        t_end = b;
        res.kernel_entries = kernel_entries() - k0;
        res.cpu_s = process_cpu_seconds() - cpu0;
      } else if (measuring) {
        ops += calls;
        for (unsigned i = 0; i < calls; ++i) lat.record(b - a);
      }
    };

    // Every call is counted; one in kSampleEvery is timed (two clock reads), as in the sys
    // benchmark: a clock read per call would cost the client as much as a tenth of a call. The
    // workers' sampled calls are staggered (worker w times calls w, w + 8, ...) so that the
    // timed calls spread evenly over the batches.
    auto worker = [&](unsigned w) -> Task<void> {
      std::vector<std::byte> req(p.msg_bytes), rep(p.msg_bytes);
      for (std::uint64_t i = w; !stop; ++i) {
        const bool sample = i % kSampleEvery == 0;
        const std::uint64_t a = sample ? now_ns() : 0;
        const std::uint64_t s = ++seq;
        std::memcpy(req.data(), &s, sizeof s);
        auto r = co_await client->call(req, rep);
        std::uint64_t back = 0;
        if (r) std::memcpy(&back, rep.data(), sizeof back);
        if (!r || r.value() != p.msg_bytes || back != s) {
          std::fprintf(stderr, "uipc bench: async: bad reply (%s)\n", r ? "payload mismatch" : r.error().message().c_str());
          std::abort();
        }
        if (sample) account(a, now_ns(), 1);
        else if (measuring) ++ops;
      }
    };
    // async-batch: each lane sends its calls with one call_many and is resumed once per batch.
    auto lane = [&](unsigned calls) -> Task<void> {
      std::vector<std::byte> req(static_cast<std::size_t>(calls) * p.msg_bytes), rep(req.size());
      std::vector<ipc::BatchCall> batch(calls);
      std::vector<std::uint64_t> sent(calls);
      for (unsigned i = 0; i < calls; ++i) {
        batch[i].request = std::span<const std::byte>(req).subspan(std::size_t{i} * p.msg_bytes, p.msg_bytes);
        batch[i].reply = std::span<std::byte>(rep).subspan(std::size_t{i} * p.msg_bytes, p.msg_bytes);
      }
      while (!stop) {
        for (unsigned i = 0; i < calls; ++i) {
          sent[i] = ++seq;
          std::memcpy(req.data() + std::size_t{i} * p.msg_bytes, &sent[i], sizeof sent[i]);
        }
        const std::uint64_t a = now_ns();
        const std::size_t ok = co_await client->call_many(batch);
        const std::uint64_t b = now_ns();
        for (unsigned i = 0; i < calls; ++i) {
          std::uint64_t back = 0;
          const auto& r = batch[i].result;
          if (r) std::memcpy(&back, rep.data() + std::size_t{i} * p.msg_bytes, sizeof back);
          if (ok != calls || !r || r.value() != p.msg_bytes || back != sent[i]) {
            std::fprintf(stderr, "uipc bench: async-batch: bad reply (%s)\n",
                         r ? "payload mismatch" : r.error().message().c_str());
            std::abort();
          }
        }
        account(a, b, calls);
      }
    };
    if (batched) {
      const unsigned lanes = std::min(p.inflight, kBatchLanes);
      for (unsigned i = 0; i < lanes; ++i) rt.spawn(lane(p.inflight / lanes + (i < p.inflight % lanes ? 1 : 0)));
      res.note = "call_many lanes: " + std::to_string(lanes);
    } else {
      for (unsigned i = 0; i < p.inflight; ++i) rt.spawn(worker(i));
      res.note = "coroutines: " + std::to_string(p.inflight);
    }
    rt.run();
    res.ops = ops;
    res.wall_s = static_cast<double>(t_end - t_start) / 1e9;
    res.p50_ns = lat.percentile(50);
    res.p99_ns = lat.percentile(99);
    client->close();
  }
  return res;
}

const IpcModeRegistrar reg("async", [](const IpcParams& p) { return run_async(p, false); });
const IpcModeRegistrar reg_inline("async-inline", [](const IpcParams& p) { return run_async(p, true); });
const IpcModeRegistrar reg_batch("async-batch", [](const IpcParams& p) { return run_async(p, true, true); });

}  // namespace

IpcResult run_async_idle(const IpcParams& p) {
  EchoServer echo(p, false);
  Runtime& server_rt = echo.rt;
  ipc::Server& server = echo.server;
  IpcResult res;
  {
    pin_this_thread(cpu_or_none(p, 0));
    Runtime rt;
    auto client = std::move(server.connect(rt).value());
    std::byte msg[8] = {};
    if (!rt.block_on(client->call(msg, msg))) std::abort();
    const std::uint64_t k0 = rt.counters().kernel_entries.get() + server_rt.counters().kernel_entries.get();
    const double cpu0 = process_cpu_seconds();
    const std::uint64_t t0 = now_ns();
    rt.block_on([](Runtime& r, double s) -> Task<void> {
      co_await r.sleep_for(static_cast<std::int64_t>(s * 1e9));
    }(rt, p.seconds));
    res.wall_s = static_cast<double>(now_ns() - t0) / 1e9;
    res.cpu_s = process_cpu_seconds() - cpu0;
    res.kernel_entries = rt.counters().kernel_entries.get() + server_rt.counters().kernel_entries.get() - k0;
    res.note = "idle client + server: " + std::to_string(100.0 * res.cpu_s / res.wall_s) + "% of one core";
    client->close();
  }
  return res;
}
}  // namespace uipc::bench
