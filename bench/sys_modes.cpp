// The modes of `uipc bench sys`: sync (plain system calls), uring (a hand-written liburing loop
// with the same batch size), async-<wake>-<placement>-<backend> (uipc's asynchronous system
// calls, one coroutine per call in flight, library defaults apart from the caller's spin window
// when --caller-spin-ns is given) and async-<wake>-affine-direct-batch (the same calls sent as
// sys::call_many batches: a coroutine is resumed once per batch).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"
#include "sys_cli.hpp"
#include "uipc/sys/syscall.hpp"

#ifdef UIPC_HAVE_LIBURING
#include <liburing.h>
#endif

namespace uipc::bench {

const char* to_string(SysWorkload w) {
  switch (w) {
    case SysWorkload::getppid: return "getppid";
    case SysWorkload::pread: return "pread";
    case SysWorkload::write: return "write";
    case SysWorkload::mmap: return "mmap";
  }
  return "?";
}

namespace {

constexpr std::size_t kPreadPages = 256;  // pread offsets rotate over the first 1 MiB of the file

int cpu_at(const SysParams& p, std::size_t i) { return i < p.cpus.size() ? p.cpus[i] : -1; }

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void die(const char* mode, const std::string& what) {
  std::fprintf(stderr, "uipc bench sys: %s: %s\n", mode, what.c_str());
  std::exit(1);
}

struct Files {
  int data = -1;
  int null = -1;
  explicit Files(const SysParams& p) {
    if (p.workload == SysWorkload::pread) {
      data = ::open(p.file.c_str(), O_RDONLY);
      if (data < 0) die("setup", "cannot open " + p.file + ": " + std::strerror(errno));
    }
    if (p.workload == SysWorkload::write) null = ::open("/dev/null", O_WRONLY);
  }
  ~Files() {
    if (data >= 0) ::close(data);
    if (null >= 0) ::close(null);
  }
};

// The measured-interval clock every mode shares: warm-up 10% of `seconds` (at least 1 ms), then
// `seconds` of measurement from the first clock reading after the warm-up (so a stall at the
// edge cannot shrink the interval). Edges fall where the mode looks at the clock: at(b) with each
// reading opens the window (reading the process and thread CPU clocks), tells whether b is inside,
// and closes it (filling res.wall_s, cpu_s, caller_cpu_s) once `length` has passed.
struct Window {
  enum class Edge { before, opened, inside, closed };
  std::uint64_t from, length;
  bool measuring = false, stop = false;
  std::uint64_t t_start = 0;
  double cpu0 = 0, tcpu0 = 0;
  explicit Window(const SysParams& p)
      : from(now_ns() + static_cast<std::uint64_t>(p.seconds * 0.1e9) + 1'000'000),
        length(static_cast<std::uint64_t>(p.seconds * 1e9)) {}
  Edge at(std::uint64_t b, SysResult& res) {
    if (!measuring && !stop && b >= from) {
      measuring = true;
      t_start = b;
      cpu0 = process_cpu_seconds();
      tcpu0 = thread_cpu_seconds();
      return Edge::opened;
    }
    if (measuring && b >= t_start + length) {
      measuring = false;
      stop = true;
      res.wall_s = static_cast<double>(b - t_start) / 1e9;
      res.cpu_s = process_cpu_seconds() - cpu0;
      res.caller_cpu_s = thread_cpu_seconds() - tcpu0;
      return Edge::closed;
    }
    return measuring ? Edge::inside : Edge::before;
  }
};

// ---- sync ------------------------------------------------------------------------------------

SysResult run_sync(const SysParams& p) {
  pin_this_thread(cpu_at(p, 0));
  Files f(p);
  std::vector<char> buf(std::max<std::size_t>(p.bytes, 1));
  SysResult res;
  res.calls_per_op = p.workload == SysWorkload::mmap ? 2 : 1;
  LatencyRecorder lat;
  Window w(p);
  std::uint64_t ops = 0, i = 0;
  for (;; ++i) {
    const bool sample = i % kSampleEvery == 0;
    const std::uint64_t a = sample ? now_ns() : 0;
    switch (p.workload) {
      case SysWorkload::getppid:
        ::syscall(SYS_getppid);
        break;
      case SysWorkload::pread:
        if (::pread(f.data, buf.data(), p.bytes, static_cast<off_t>((i % kPreadPages) * 4096)) < 0) die("sync", "pread");
        break;
      case SysWorkload::write:
        if (::write(f.null, buf.data(), p.bytes) < 0) die("sync", "write");
        break;
      case SysWorkload::mmap: {
        void* m = ::mmap(nullptr, p.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || ::munmap(m, p.bytes) != 0) die("sync", "mmap");
        break;
      }
    }
    if (!sample) {
      if (w.measuring) ++ops;
      continue;
    }
    const std::uint64_t b = now_ns();
    const Window::Edge e = w.at(b, res);
    if (e == Window::Edge::closed) break;
    if (e == Window::Edge::inside) {
      ++ops;
      lat.record(b - a);
    }
  }
  res.ops = ops;
  res.kernel_entries = res.caller_kernel_entries = ops * res.calls_per_op;
  res.p50_ns = lat.percentile(50);
  res.p99_ns = lat.percentile(99);
  return res;
}

// ---- uring: the hand-written peer ---------------------------------------------------------------

SysResult run_uring(const SysParams& p) {
  SysResult res;
#ifdef UIPC_HAVE_LIBURING
  if (p.workload == SysWorkload::mmap) {
    res.supported = false;
    res.note = "io_uring has no mmap";
    return res;
  }
  pin_this_thread(cpu_at(p, 0));
  Files f(p);
  io_uring ring{};
  unsigned entries = 8;
  while (entries < p.inflight) entries *= 2;
  if (io_uring_queue_init(entries, &ring, 0) != 0) {
    res.supported = false;
    res.note = "io_uring unavailable";
    return res;
  }
  std::vector<char> buf(std::max<std::size_t>(p.bytes, 1));  // one buffer for all, as in sync
  if (p.workload == SysWorkload::getppid) res.note = "IORING_OP_NOP";
  LatencyRecorder lat;
  Window w(p);
  std::uint64_t ops = 0, enters = 0, seq = 0;
  for (;;) {
    const std::uint64_t a = now_ns();
    for (unsigned k = 0; k < p.inflight; ++k, ++seq) {
      io_uring_sqe* s = io_uring_get_sqe(&ring);
      switch (p.workload) {
        case SysWorkload::getppid: io_uring_prep_nop(s); break;
        case SysWorkload::pread:
          io_uring_prep_read(s, f.data, buf.data(), static_cast<unsigned>(p.bytes),
                             (seq % kPreadPages) * 4096);
          break;
        case SysWorkload::write: io_uring_prep_write(s, f.null, buf.data(), static_cast<unsigned>(p.bytes), ~0ull); break;
        case SysWorkload::mmap: break;
      }
    }
    if (io_uring_submit_and_wait(&ring, p.inflight) < 0) die("uring", "io_uring_submit_and_wait");
    unsigned head, n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      if (cqe->res < 0) die("uring", std::string("a request failed: ") + std::strerror(-cqe->res));
      ++n;
    }
    io_uring_cq_advance(&ring, n);
    const std::uint64_t b = now_ns();
    const Window::Edge e = w.at(b, res);
    if (e == Window::Edge::closed) break;
    if (e == Window::Edge::inside) {
      ops += n;
      ++enters;
      lat.record(b - a);
    }
  }
  io_uring_queue_exit(&ring);
  res.ops = ops;
  res.kernel_entries = res.caller_kernel_entries = enters;
  res.p50_ns = lat.percentile(50);
  res.p99_ns = lat.percentile(99);
#else
  (void)p;
  res.supported = false;
  res.note = "built without liburing";
#endif
  return res;
}

// ---- async ---------------------------------------------------------------------------------------

std::uint64_t executor_kernel_entries(const sys::Executor& ex) {
  std::uint64_t k = ex.pool_stats().kernel_entries();
  for (const auto& c : ex.core_stats()) k += c.kernel_entries();
  return k;
}

// `batch`: the -batch modes. min(inflight, 4) coroutines share the in-flight count; each sends
// its share as one call_many batch and is resumed once per batch, not once per call.
SysResult run_async(const SysParams& p, sys::WakeMode wake, sys::Placement placement, sys::Backend backend,
                    bool batch) {
  SysResult res;
  res.calls_per_op = p.workload == SysWorkload::mmap ? 2 : 1;
  if (backend == sys::Backend::io_uring && !sys::Executor::io_uring_available()) {
    res.supported = false;
    res.note = "io_uring unavailable";
    return res;
  }
  sys::ExecutorOptions eo;
  eo.wake = wake;
  eo.placement = placement;
  eo.backend = backend;
  if (cpu_at(p, 1) >= 0) eo.cpus = {p.cpus[1]};
  auto exr = sys::Executor::create(eo);
  if (!exr) die("async", "executor: " + exr.error().message());
  auto ex = std::move(exr.value());

  pin_this_thread(cpu_at(p, 0));
  Files f(p);
  RuntimeOptions ro;
  if (p.caller_spin_ns >= 0) ro.spin_ns = p.caller_spin_ns;
  Runtime rt(ro);
  sys::SyscallOptions so;
  so.capacity = 8;
  while (so.capacity < p.inflight) so.capacity *= 2;
  auto regr = sys::configure_async_syscall(rt, *ex, so);
  if (!regr) die("async", "configure_async_syscall: " + regr.error().message());
  auto reg = std::move(regr.value());

  Window w(p);
  std::uint64_t ops = 0, k_caller0 = 0, k_exec0 = 0, seq = 0;
  LatencyRecorder lat;
  // Window::at plus the kernel-entry counters this mode reads at the two edges.
  auto edge = [&](std::uint64_t b) {
    const Window::Edge e = w.at(b, res);
    if (e == Window::Edge::opened) {
      k_caller0 = reg->caller_kernel_entries();
      k_exec0 = executor_kernel_entries(*ex);
    } else if (e == Window::Edge::closed) {
      res.caller_kernel_entries = reg->caller_kernel_entries() - k_caller0;
      res.kernel_entries = res.caller_kernel_entries + (executor_kernel_entries(*ex) - k_exec0);
    }
    return e;
  };
  // Every call reads into (writes from) the same buffer, as the sync loop does: the cache
  // footprint is the same in every mode, and nobody looks at the bytes.
  std::vector<char> buf(std::max<std::size_t>(p.bytes, 1));
  const auto span = std::span<std::byte>(reinterpret_cast<std::byte*>(buf.data()), p.bytes);
  // One coroutine body per workload (a template, `if constexpr`): a body with every workload's
  // awaiters in a switch got a frame with a slot for each of them (1216 bytes with GCC 12, 352
  // for getppid alone), so the caller's per-call cache traffic was the benchmark's, not the
  // library's; an application coroutine holds the awaiters it uses.
  auto worker = [&]<SysWorkload W>(unsigned id) -> Task<void> {
    for (std::uint64_t i = id;; ++i) {
      if (w.stop) co_return;
      const bool sample = i % kSampleEvery == 0;
      const std::uint64_t a = sample ? now_ns() : 0;
      bool ok = true;
      if constexpr (W == SysWorkload::getppid) {
        ok = static_cast<bool>(co_await sys::getppid());
      } else if constexpr (W == SysWorkload::pread) {
        ok = static_cast<bool>(co_await sys::pread(f.data, span, static_cast<off_t>((seq++ % kPreadPages) * 4096)));
      } else if constexpr (W == SysWorkload::write) {
        ok = static_cast<bool>(co_await sys::write(f.null, span));
      } else {
        auto m = co_await sys::mmap(nullptr, p.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ok = m && static_cast<bool>(co_await sys::munmap(m.value(), p.bytes));
      }
      if (!ok) die("async", "a call failed");
      if (!sample) {
        if (w.measuring) ++ops;
        continue;
      }
      const std::uint64_t b = now_ns();
      if (edge(b) == Window::Edge::inside) {
        ++ops;
        lat.record(b - a);
      }
    }
  };
  // The batch form: one coroutine keeps `n` steps in flight as one call_many batch (mmap: a
  // batch of mmaps, then one of the munmaps), and reads the clock once per batch.
  auto batch_worker = [&](std::size_t n) -> Task<void> {
    std::vector<sys::BatchSyscall> calls(n);
    const std::int64_t buf_p = sys::detail::p2i(buf.data());
    const auto bytes = static_cast<std::int64_t>(p.bytes);
    for (sys::BatchSyscall& c : calls) {
      if (p.workload == SysWorkload::getppid) c.set(SYS_getppid);
      else if (p.workload == SysWorkload::write) c.set(SYS_write, f.null, buf_p, bytes);
    }
    for (;;) {
      if (w.stop) co_return;
      if (p.workload == SysWorkload::pread)
        for (sys::BatchSyscall& c : calls)
          c.set(SYS_pread64, f.data, buf_p, bytes, static_cast<std::int64_t>((seq++ % kPreadPages) * 4096));
      else if (p.workload == SysWorkload::mmap)
        for (sys::BatchSyscall& c : calls)
          c.set(SYS_mmap, 0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      const std::uint64_t a = now_ns();
      if (co_await sys::call_many(calls) != n) die("async", "a call failed");
      if (p.workload == SysWorkload::mmap) {
        for (sys::BatchSyscall& c : calls) c.set(SYS_munmap, c.result(), bytes);
        if (co_await sys::call_many(calls) != n) die("async", "a call failed");
      }
      const std::uint64_t b = now_ns();
      if (edge(b) == Window::Edge::inside) {
        ops += n;
        lat.record(b - a);
      }
    }
  };
  if (batch) {
    const unsigned k = std::min(p.inflight, 4u);
    for (unsigned i = 0; i < k; ++i) rt.spawn(batch_worker(p.inflight / k + (i < p.inflight % k ? 1 : 0)));
    res.note = "call_many: " + std::to_string(k) + (k == 1 ? " batch" : " batches") + " of " +
               std::to_string(p.inflight / k) + (p.inflight % k != 0 ? "+" : "");
  }
  for (unsigned i = 0; i < p.inflight && !batch; ++i) {
    switch (p.workload) {
      case SysWorkload::getppid: rt.spawn(worker.template operator()<SysWorkload::getppid>(i)); break;
      case SysWorkload::pread: rt.spawn(worker.template operator()<SysWorkload::pread>(i)); break;
      case SysWorkload::write: rt.spawn(worker.template operator()<SysWorkload::write>(i)); break;
      case SysWorkload::mmap: rt.spawn(worker.template operator()<SysWorkload::mmap>(i)); break;
    }
  }
  rt.run();
  res.ops = ops;
  res.p50_ns = lat.percentile(50);
  res.p99_ns = lat.percentile(99);
  reg.reset();
  return res;
}

struct Registrar {
  Registrar() {
    auto& m = sys_modes();
    m.emplace_back("sync", run_sync);
    m.emplace_back("uring", run_uring);
    for (auto wake : {sys::WakeMode::hybrid, sys::WakeMode::irq, sys::WakeMode::tick})
      for (auto placement : {sys::Placement::affine, sys::Placement::shared, sys::Placement::local})
        for (auto backend : {sys::Backend::direct, sys::Backend::io_uring}) {
          std::string name = std::string("async-") + sys::to_string(wake) + "-" + sys::to_string(placement) + "-" +
                             sys::to_string(backend);
          m.emplace_back(name, [=](const SysParams& p) { return run_async(p, wake, placement, backend, false); });
        }
    // The batch form (sys::call_many), affine placement and the direct backend (what target 5
    // names; the io_uring backend makes no difference to the caller's side of a batch): one
    // -batch twin per wake mode (3 scenarios more per workload and in-flight count).
    for (auto wake : {sys::WakeMode::hybrid, sys::WakeMode::irq, sys::WakeMode::tick}) {
      std::string name = std::string("async-") + sys::to_string(wake) + "-affine-direct-batch";
      m.emplace_back(name, [=](const SysParams& p) {
        return run_async(p, wake, sys::Placement::affine, sys::Backend::direct, true);
      });
    }
  }
};
const Registrar registrar;

}  // namespace

std::vector<std::pair<std::string, SysModeFn>>& sys_modes() {
  static std::vector<std::pair<std::string, SysModeFn>> modes;  // function-local: safe from init order
  return modes;
}

}  // namespace uipc::bench
