// apps/alloc/alloc_workload.cpp — see alloc_workload.hpp.
#include "alloc/alloc_workload.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "harness.hpp"  // bench/: LatencyRecorder, now_ns, process_cpu_seconds, pin_this_thread

namespace uipc::apps::alloc {
namespace {

using bench::LatencyRecorder;
using bench::now_ns;
using bench::process_cpu_seconds;

int cpu_at(const WorkloadParams& p, std::size_t i) { return i < p.cpus.size() ? p.cpus[i] : -1; }

std::uint32_t pow2_at_least(std::uint64_t n, std::uint32_t lo) {
  std::uint32_t v = lo;
  while (v < n) v *= 2;
  return v;
}

// Touches every page of a fresh block: it must read 0 (anonymous memory is zero-filled, so a
// non-zero byte means the block was handed out twice or not unmapped and remapped), then holds
// the tag. Returns the number of pages checked, or 0 on a mismatch.
std::uint64_t touch(const Block& b, std::uint64_t job, std::size_t page) {
  auto* base = static_cast<volatile unsigned char*>(b.addr);
  const auto tag = static_cast<unsigned char>((job % 255) + 1);
  std::uint64_t pages = 0;
  for (std::size_t off = 0; off < b.size; off += page, ++pages) {
    if (base[off] != 0) return 0;
    base[off] = tag;
    if (base[off] != tag) return 0;
  }
  return pages;
}

struct Window {
  std::uint64_t total, warm;
  explicit Window(const WorkloadParams& p)
      : total(std::uint64_t{p.clients} * p.rounds * (std::uint64_t{p.repeat} + 1)),
        warm(std::uint64_t{p.clients} * p.rounds) {}
};

}  // namespace

WorkloadResult run_async_workload(const WorkloadParams& p) {
  WorkloadResult res;
  sys::ExecutorOptions eo;
  eo.wake = p.wake;
  eo.placement = p.placement;
  eo.backend = p.backend;
  eo.max_batch = p.max_batch;
  if (cpu_at(p, 2) >= 0) eo.cpus = {p.cpus[2]};
  auto exr = sys::Executor::create(eo);
  if (!exr) {
    res.error = "executor: " + exr.error().message();
    return res;
  }
  auto ex = std::move(exr.value());

  RuntimeOptions ro;
  if (p.async_spin_ns >= 0) ro.spin_ns = p.async_spin_ns;
  Runtime server_rt(ro);
  AllocServerOptions so;
  so.channel.capacity = pow2_at_least(p.inflight, 64);
  so.channel.max_inflight = std::max<std::uint32_t>(1024, p.inflight);
  so.channel.max_payload = 64;
  so.syscall_capacity = pow2_at_least(p.inflight, 64);
  so.limits.populate = p.populate;
  AllocServer server(server_rt, *ex, so);
  Result<void> served;
  std::thread server_thread([&] {
    bench::pin_this_thread(cpu_at(p, 1));
    served = server_rt.block_on(server.serve());
  });

  bench::pin_this_thread(cpu_at(p, 0));
  {
    Runtime rt(ro);
    auto cr = server.connect(rt);
    if (!cr) {
      res.error = "connect: " + cr.error().message();
    } else {
      auto client = std::move(cr.value());
      const Window w(p);
      const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
      std::uint64_t next = 0, completed = 0, t_start = 0, c0 = 0, s0 = 0, e0 = 0;
      double cpu0 = 0;
      LatencyRecorder lat;
      auto worker = [&]() -> Task<void> {
        for (;;) {
          if (!res.error.empty()) co_return;
          const std::uint64_t j = next++;
          if (j >= w.total) co_return;
          if (j == w.warm) {
            c0 = rt.counters().kernel_entries.get();
            s0 = server.server_kernel_entries();
            e0 = server.executor_kernel_entries();
            cpu0 = process_cpu_seconds();
            t_start = now_ns();
          }
          const std::uint64_t a = now_ns();
          auto b = co_await client->allocate(p.bytes);
          if (!b) {
            res.error = "allocate: " + b.error().message();
            co_return;
          }
          const std::uint64_t pages = touch(b.value(), j, page);
          if (pages == 0) res.error = "a block was not fresh zeroed memory, or did not keep what was written";
          auto f = co_await client->free(b.value().addr);
          if (!f) {
            res.error = "free: " + f.error().message();
            co_return;
          }
          const std::uint64_t t = now_ns();
          res.pages_checked += pages;
          if (j >= w.warm) {
            ++res.ops;
            lat.record(t - a);
          }
          if (++completed == w.total) {
            res.wall_s = static_cast<double>(t - t_start) / 1e9;
            res.cpu_s = process_cpu_seconds() - cpu0;
            res.client_kernel_entries = rt.counters().kernel_entries.get() - c0;
            res.server_kernel_entries = server.server_kernel_entries() - s0;
            res.executor_kernel_entries = server.executor_kernel_entries() - e0;
          }
        }
      };
      for (unsigned i = 0; i < p.inflight; ++i) rt.spawn(worker());
      rt.run();
      res.jobs = completed;
      res.backstops = rt.counters().backstops.get() + server_rt.counters().backstops.get();
      res.p50_ns = lat.percentile(50);
      res.p99_ns = lat.percentile(99);
      client.reset();  // on this thread, the client runtime's
    }
  }
  server.stop();
  server_thread.join();
  if (!served && res.error.empty()) res.error = "serve: " + served.error().message();
  res.server = server.stats();
  return res;
}

WorkloadResult run_sync_workload(const WorkloadParams& p) {
  WorkloadResult res;
  ipc::SyncOptions so;
  if (p.sync_spin_ns >= 0) so.spin_ns = static_cast<std::uint64_t>(p.sync_spin_ns);
  AllocLimits limits;
  limits.populate = p.populate;
  auto sr = SyncAllocServer::create(std::max(1u, p.inflight), limits, so);
  if (!sr) {
    res.error = "sync server: " + sr.error().message();
    return res;
  }
  SyncAllocServer& server = *sr.value();
  Result<void> served;
  std::thread server_thread([&] {
    bench::pin_this_thread(cpu_at(p, 1));
    served = server.serve();
  });
  bench::pin_this_thread(cpu_at(p, 0));

  struct alignas(64) Caller {
    SyncAllocClient client;
    LatencyRecorder lat;
    std::uint64_t ops = 0, pages = 0;
  };
  std::deque<Caller> callers(p.inflight);  // stable addresses once threads run
  for (auto& c : callers) {
    auto cr = server.connect();
    if (!cr) {
      res.error = "connect: " + cr.error().message();
      break;
    }
    c.client = std::move(cr.value());
  }

  if (res.error.empty()) {
    const Window w(p);
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    std::atomic<std::uint64_t> next{0}, completed{0};
    std::atomic<bool> go{false}, measuring{false}, failed{false};
    std::mutex err_mu;
    std::uint64_t t_start = 0, c0 = 0, s0 = 0;
    double cpu0 = 0;
    auto client_entries = [&] {
      std::uint64_t k = 0;
      for (const Caller& c : callers) k += c.client.channel().counters().snapshot().kernel_entries();
      return k;
    };
    auto fail = [&](const std::string& what) {
      std::lock_guard lk(err_mu);
      if (res.error.empty()) res.error = what;
      failed.store(true, std::memory_order_relaxed);  // relaxed: a stop flag; res.error is under err_mu
    };
    std::vector<std::thread> threads;
    threads.reserve(p.inflight);
    for (unsigned i = 0; i < p.inflight; ++i)
      threads.emplace_back([&, i] {
        bench::pin_this_thread(cpu_at(p, 0));
        Caller& me = callers[i];
        go.wait(false, std::memory_order_acquire);  // pairs with the release store below: callers[] is set up
        while (!failed.load(std::memory_order_relaxed)) {
          // relaxed: a ticket counter; the job's data is the index itself.
          const std::uint64_t j = next.fetch_add(1, std::memory_order_relaxed);
          if (j >= w.total) break;
          // No measured job starts before the interval does: the taker of the first one opens it.
          while (j > w.warm && !measuring.load(std::memory_order_acquire)) std::this_thread::yield();
          if (j == w.warm) {
            c0 = client_entries();
            s0 = server.server_kernel_entries();
            cpu0 = process_cpu_seconds();
            t_start = now_ns();
            measuring.store(true, std::memory_order_release);  // pairs with the acquire load below: t_start etc.
          }
          const std::uint64_t a = now_ns();
          auto b = me.client.allocate(p.bytes);
          if (!b) {
            fail("allocate: " + b.error().message());
            break;
          }
          const std::uint64_t pages = touch(b.value(), j, page);
          if (pages == 0) fail("a block was not fresh zeroed memory, or did not keep what was written");
          auto f = me.client.free(b.value().addr);
          if (!f) {
            fail("free: " + f.error().message());
            break;
          }
          const std::uint64_t t = now_ns();
          me.pages += pages;
          if (j >= w.warm) {
            ++me.ops;
            me.lat.record(t - a);
          }
          // acq_rel: the last one to complete sees every other caller's work and t_start.
          if (completed.fetch_add(1, std::memory_order_acq_rel) + 1 == w.total) {
            res.wall_s = static_cast<double>(t - t_start) / 1e9;
            res.cpu_s = process_cpu_seconds() - cpu0;
            res.client_kernel_entries = client_entries() - c0;
            res.server_kernel_entries = server.server_kernel_entries() - s0;
          }
        }
      });
    go.store(true, std::memory_order_release);
    go.notify_all();
    for (auto& t : threads) t.join();
    LatencyRecorder lat;
    for (const Caller& c : callers) {
      lat.merge(c.lat);
      res.ops += c.ops;
      res.pages_checked += c.pages;
    }
    res.jobs = completed.load(std::memory_order_relaxed);  // relaxed: the threads are joined
    res.p50_ns = lat.percentile(50);
    res.p99_ns = lat.percentile(99);
  }
  callers.clear();  // every client before the endpoint goes
  server.stop();
  server_thread.join();
  if (!served && res.error.empty()) res.error = "serve: " + served.error().message();
  res.server = server.stats();
  return res;
}

}  // namespace uipc::apps::alloc
