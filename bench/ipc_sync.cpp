// Mode "sync": the synchronous baseline (ipc/sync_call.hpp) — what a blocking seL4-style
// Call / ReplyRecv achieves on this machine. `inflight` N means N client threads (all pinned to
// cpus[0]), each making blocking calls on its own slot, and one server thread (pinned to cpus[1])
// in a ReplyRecv loop that echoes the payload. A blocking call has one call in flight per thread,
// so N in flight needs N threads; they share one CPU exactly as the async mode's coroutines do.
// Library defaults throughout (spin window kDefaultSyncSpinNs on both sides, then futex sleep).
//
// Every request carries a sequence number (its first 8 bytes) that the reply must echo; a wrong
// or missing reply aborts the benchmark. After a warm-up of ~10% of p.seconds, the coordinator
// (this thread, which only sleeps) snapshots the clients' and the server's counters, the process
// CPU time and the clock, flips every client into "measure", and does the same at the end:
// ops, kernel_entries (futex waits + wakes on both sides) and cpu_s are the differences. Each
// client times one round trip in kSampleEvery while measuring (as the async mode does) in its own
// LatencyRecorder; they are merged at the end.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "uipc/ipc/sync_call.hpp"

namespace uipc::bench {
namespace {

enum Phase : int { kWarm = 0, kMeasure = 1, kStop = 2 };

struct alignas(64) ClientState {
  ipc::SyncClient client;
  LatencyRecorder lat;
  std::atomic<std::uint64_t> ops{0};  // written by its client thread only (relaxed), read by the coordinator
};

[[noreturn]] void die(const char* what, const std::string& why) {
  std::fprintf(stderr, "uipc bench: sync: %s: %s\n", what, why.c_str());
  std::abort();
}

IpcResult run_sync(const IpcParams& p) {
  const unsigned n = std::clamp<unsigned>(p.inflight, 1, ipc::kSyncMaxSlots);
  if (p.msg_bytes > ipc::kSyncMaxPayload) die("message size", std::to_string(p.msg_bytes) + " > 64 KiB");
  const auto max_payload = static_cast<std::uint32_t>(std::max<std::size_t>(p.msg_bytes, ipc::kSyncMinPayload));

  auto ep = ipc::SyncEndpoint::create(n, max_payload);
  if (!ep) die("create", ep.error().message());
  const ipc::SyncOptions opt{};  // the library default spin window, both sides
  auto srv_r = ep->server(opt);
  if (!srv_r) die("server", srv_r.error().message());
  ipc::SyncServer& srv = *srv_r;

  std::deque<ClientState> clients(n);  // deque: stable addresses, no moves once threads run
  for (unsigned i = 0; i < n; ++i) {
    auto c = ep->client(i, opt);
    if (!c) die("client", c.error().message());
    clients[i].client = std::move(*c);
  }

  std::atomic<int> phase{kWarm};
  // The clients wait (asleep) until every one of them exists: a client that started calling at
  // once would spin on cpus[0] next to the thread still creating the others, and creating
  // thousands of them took minutes (4096 in flight: over 2 min for a 0.1 s scenario).
  std::atomic<bool> go{false};
  std::thread server_thread([&] {
    pin_this_thread(cpu_or_none(p, 1));
    auto r = srv.recv();
    while (r) r = srv.reply_recv(r->data);  // echo
    if (r.error() != std::errc::connection_aborted) die("server", r.error().message());
  });

  std::vector<std::thread> threads;
  threads.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      pin_this_thread(cpu_or_none(p, 0));
      go.wait(false, std::memory_order_acquire);  // acquire: pairs with the release store below
      ClientState& st = clients[i];
      std::vector<std::byte> req(p.msg_bytes), rep(std::max<std::size_t>(p.msg_bytes, 8));
      const std::size_t seq_bytes = std::min<std::size_t>(p.msg_bytes, 8);
      std::uint64_t seq = std::uint64_t{i} << 40;  // distinct per thread
      // Every call is counted; one in kSampleEvery is timed, as in the async mode (thread i times
      // calls i, i + 8, ...).
      for (std::uint64_t k = i;; ++k) {
        // relaxed: a plain flag; nothing is published through it.
        const int ph = phase.load(std::memory_order_relaxed);
        if (ph == kStop) break;
        const bool sample = k % kSampleEvery == 0;
        const std::uint64_t a = sample ? now_ns() : 0;
        ++seq;
        std::memcpy(req.data(), &seq, seq_bytes);
        auto r = st.client.call(req, rep);
        if (!r) die("call", r.error().message());
        std::uint64_t back = 0, want = 0;
        std::memcpy(&back, rep.data(), seq_bytes);
        std::memcpy(&want, &seq, seq_bytes);
        if (*r != p.msg_bytes || back != want) die("call", "reply does not echo its request");
        // relaxed: single writer; the coordinator reads a value at most one op stale.
        st.ops.store(st.ops.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (sample && ph == kMeasure) st.lat.record(now_ns() - a);
      }
    });
  }

  go.store(true, std::memory_order_release);
  go.notify_all();

  struct Snap {
    std::uint64_t t = 0, ops = 0, kernel = 0;
    double cpu = 0;
  };
  auto snap = [&] {
    Snap s;
    s.kernel = srv.counters().snapshot().kernel_entries();
    for (const ClientState& c : clients) {
      s.ops += c.ops.load(std::memory_order_relaxed);  // relaxed: counter, see above
      s.kernel += c.client.counters().snapshot().kernel_entries();
    }
    s.cpu = process_cpu_seconds();
    s.t = now_ns();
    return s;
  };

  const auto warm = std::chrono::nanoseconds(static_cast<std::int64_t>(p.seconds * 0.1e9) + 1'000'000);
  std::this_thread::sleep_for(warm);
  const Snap s0 = snap();
  phase.store(kMeasure, std::memory_order_relaxed);  // relaxed: see the clients' load
  std::this_thread::sleep_for(std::chrono::nanoseconds(static_cast<std::int64_t>(p.seconds * 1e9)));
  const Snap s1 = snap();
  phase.store(kStop, std::memory_order_relaxed);

  for (auto& t : threads) t.join();  // each finishes the call it is in; the server still serves
  ep->close();                       // wakes the server: recv() returns connection_aborted
  server_thread.join();

  LatencyRecorder lat;
  for (const ClientState& c : clients) lat.merge(c.lat);
  IpcResult res;
  res.ops = s1.ops - s0.ops;
  res.wall_s = static_cast<double>(s1.t - s0.t) / 1e9;
  res.p50_ns = lat.percentile(50);
  res.p99_ns = lat.percentile(99);
  res.kernel_entries = s1.kernel - s0.kernel;
  res.cpu_s = s1.cpu - s0.cpu;
  res.note = "client threads: " + std::to_string(n);
  if (n != p.inflight) res.note += " (inflight " + std::to_string(p.inflight) + " clamped)";
  return res;
}

const IpcModeRegistrar reg("sync", run_sync);

}  // namespace
}  // namespace uipc::bench
