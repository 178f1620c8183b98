// The kernel executor: its configuration table, its kernel cores (wake modes × placement) and
// shutdown. See include/uipc/sys/executor.hpp for the contract.
#include "uipc/sys/executor.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "internal.hpp"

#ifdef UIPC_HAVE_LIBURING
#include <liburing.h>
#endif

namespace uipc::sys {

// ---- names -----------------------------------------------------------------------------------

const char* to_string(WakeMode m) noexcept {
  switch (m) {
    case WakeMode::tick: return "tick";
    case WakeMode::irq: return "irq";
    case WakeMode::hybrid: return "hybrid";
  }
  return "?";
}
const char* to_string(Placement p) noexcept {
  switch (p) {
    case Placement::affine: return "affine";
    case Placement::shared: return "shared";
    case Placement::local: return "local";
  }
  return "?";
}
const char* to_string(Backend b) noexcept {
  switch (b) {
    case Backend::automatic: return "auto";
    case Backend::direct: return "direct";
    case Backend::io_uring: return "uring";
  }
  return "?";
}
Result<WakeMode> parse_wake_mode(const std::string& s) {
  for (WakeMode m : {WakeMode::tick, WakeMode::irq, WakeMode::hybrid})
    if (s == to_string(m)) return m;
  return std::errc::invalid_argument;
}
Result<Placement> parse_placement(const std::string& s) {
  for (Placement p : {Placement::affine, Placement::shared, Placement::local})
    if (s == to_string(p)) return p;
  return std::errc::invalid_argument;
}
Result<Backend> parse_backend(const std::string& s) {
  if (s == "io_uring") return Backend::io_uring;
  for (Backend b : {Backend::automatic, Backend::direct, Backend::io_uring})
    if (s == to_string(b)) return b;
  return std::errc::invalid_argument;
}

ExecStats& ExecStats::operator+=(const ExecStats& o) noexcept {
  requests += o.requests;
  syscalls += o.syscalls;
  uring_ops += o.uring_ops;
  uring_enters += o.uring_enters;
  pool_jobs += o.pool_jobs;
  futex_wakes += o.futex_wakes;
  futex_waits += o.futex_waits;
  timer_waits += o.timer_waits;
  ticks += o.ticks;
  batches += o.batches;
  rejected += o.rejected;
  cancels += o.cancels;
  return *this;
}

ExecStats ExecStats::operator-(const ExecStats& o) const noexcept {
  ExecStats d;
  d.requests = requests - o.requests;
  d.syscalls = syscalls - o.syscalls;
  d.uring_ops = uring_ops - o.uring_ops;
  d.uring_enters = uring_enters - o.uring_enters;
  d.pool_jobs = pool_jobs - o.pool_jobs;
  d.futex_wakes = futex_wakes - o.futex_wakes;
  d.futex_waits = futex_waits - o.futex_waits;
  d.timer_waits = timer_waits - o.timer_waits;
  d.ticks = ticks - o.ticks;
  d.batches = batches - o.batches;
  d.rejected = rejected - o.rejected;
  d.cancels = cancels - o.cancels;
  return d;
}

namespace detail {

namespace {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

void set_timer(int fd, std::int64_t first_ns, std::int64_t period_ns) {
  itimerspec its{};
  its.it_value = {static_cast<time_t>(first_ns / 1'000'000'000), static_cast<long>(first_ns % 1'000'000'000)};
  its.it_interval = {static_cast<time_t>(period_ns / 1'000'000'000), static_cast<long>(period_ns % 1'000'000'000)};
  ::timerfd_settime(fd, 0, &its, nullptr);
}

void nap(std::int64_t ns) {
  timespec ts{0, static_cast<long>(ns)};
  ::nanosleep(&ts, nullptr);
}

// One kernel core's life.
void core_main(ExecState& st, CoreState& c) {
  const ExecutorOptions& o = st.opts;
  Engine eng(st, c.st, st.backend == Backend::io_uring);
  std::vector<std::shared_ptr<Reg>> mine;
  std::vector<abi::SyscallRequest> batch;
  std::vector<Done> out, uout;
  batch.reserve(o.max_batch);
  std::uint64_t seen = ~0ull;
  const bool shared = o.placement == Placement::shared;
  // In shared placement the registered threads claim their own buffers too: each claimant takes
  // its share of what is queued, so the work spreads over every idle claimant.
  const unsigned share = shared ? static_cast<unsigned>(st.cores.size()) + 1 : 1;
  const std::uint64_t my_bit = std::uint64_t{1} << c.index;
  bool idle = false;
  std::uint64_t idle_since = 0;
  std::int64_t uring_nap = 10'000;  // while io_uring work is out: timed sleeps, 10 µs doubling to a tick
  Notification& n = *c.notif;

  for (;;) {
    if (n.peek() != 0) {
      n.take_service();
      n.take([](std::uint32_t) {});  // the raise is the wake-up; the sweep below finds the work
    }
    // acquire: pairs with the seq_cst store in shutdown_state.
    if (st.stopping.load(std::memory_order_acquire)) break;
    // acquire: pairs with the release increment under the big lock: the table is current.
    if (st.generation.load(std::memory_order_acquire) != seen) {
      std::lock_guard lk(st.big_lock);
      seen = st.generation.load(std::memory_order_relaxed);
      mine.clear();
      for (const auto& r : st.table)
        if (r && (shared || r->owner == c.index)) mine.push_back(r);
    }
    bool busy = false;
    for (const auto& r : mine)
      busy |= serve(st, *r, eng, o.max_batch, share, c.st, c.nc, batch, out,
                    shared ? Claimant::core : Claimant::sole_core) != Served::idle;
    if (eng.outstanding() != 0) {
      eng.submit(uout);  // one io_uring_enter for everything this sweep queued
      if (!uout.empty()) {
        busy = true;
        uring_nap = 10'000;
      }
      publish_all(uout, c.st, c.nc);
    }
    if (busy) {
      idle = false;
      continue;
    }
    const bool uring_out = eng.outstanding() != 0;
    switch (o.wake) {
      case WakeMode::tick: {
        if (mine.empty()) {  // nothing to serve: stop ticking until a registration arrives
          std::lock_guard lk(st.big_lock);
          if (st.generation.load(std::memory_order_relaxed) == seen && c.timer_armed &&
              !st.stopping.load(std::memory_order_relaxed)) {
            set_timer(c.timerfd, 0, 0);
            c.timer_armed = false;
          }
        }
        std::uint64_t expirations = 0;
        c.st.timer_waits.add();
        if (raw_syscall(SYS_read, c.timerfd, static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(&expirations)),
                        sizeof expirations, 0, 0, 0) == sizeof expirations)
          c.st.ticks.add(expirations);
        break;
      }
      case WakeMode::irq: {
        if (n.wait(uring_out ? uring_nap : -1, c.nc)) c.st.futex_waits.add();
        if (uring_out) uring_nap = std::min<std::int64_t>(uring_nap * 2, o.tick_ns);
        break;
      }
      case WakeMode::hybrid: {
        const std::uint64_t now = now_ns();
        if (!idle) {
          idle = true;
          idle_since = now;
          continue;
        }
        if (static_cast<std::int64_t>(now - idle_since) < o.idle_window_ns) {
          cpu_relax();
          continue;
        }
        // "Need wake-up": arm every buffer's data waiter (one fence for all: handshake::arm),
        // then re-check them all (DESIGN §3, tests/model/executor_wakeup.pml).
        for (const auto& r : mine) r->rq_view.indices->cons.data_waiter.store(1, std::memory_order_relaxed);
        // Pairs with the fence in the submitters' must_signal (Registration's flush).
        std::atomic_thread_fence(std::memory_order_seq_cst);
        bool work = false;
        for (const auto& r : mine)
          if (!r->closed.load(std::memory_order_relaxed) && shared_has_data(r->rq_view)) work = true;
        bool backstop = false;  // woken by the tick backstop, not by a submitter
        if (!work) {
          st.sleeping.fetch_or(my_bit, std::memory_order_relaxed);  // a hint only
          const std::int64_t timeout = uring_out ? uring_nap : (mine.empty() ? -1 : o.tick_ns);
          const std::uint64_t t0 = now_ns();
          if (n.wait(timeout, c.nc)) c.st.futex_waits.add();
          if (timeout >= 0 && static_cast<std::int64_t>(now_ns() - t0) >= timeout && !uring_out) {
            c.st.ticks.add();
            backstop = n.peek() == 0;
          }
          st.sleeping.fetch_and(~my_bit, std::memory_order_relaxed);
          if (uring_out) uring_nap = std::min<std::int64_t>(uring_nap * 2, o.tick_ns);
        }
        // Busy again (or about to look): submitters stop paying for raises.
        for (const auto& r : mine) handshake::disarm(r->rq_view.indices->cons.data_waiter);
        // After a backstop tick nobody is submitting: if the sweep finds nothing, go back to
        // sleep at once instead of polling a whole idle window (which cost an idle executor
        // about 6% of a core at a 1 ms tick).
        idle = backstop;
        idle_since = 0;
        break;
      }
    }
  }
  // Leaving: io_uring work already submitted still owes its completions.
  while (eng.outstanding() != 0) {
    eng.submit(uout);
    publish_all(uout, c.st, c.nc);
    if (eng.outstanding() != 0) nap(20'000);
  }
}

}  // namespace

ExecState::ExecState(const ExecutorOptions& o) : opts(o) {}

ExecState::~ExecState() {
  for (auto& c : cores)
    if (c->timerfd >= 0) ::close(c->timerfd);
}

void ExecState::wake_core(CoreState& c) noexcept {
  Counters scratch;  // counted by nobody: the waking thread is not the core
  c.notif->raise_service(scratch);
  if (c.timerfd >= 0) set_timer(c.timerfd, 1, opts.tick_ns);
}

void shutdown_state(ExecState& st) noexcept {
  std::vector<std::shared_ptr<Reg>> regs;
  {
    std::lock_guard lk(st.big_lock);
    if (st.stopped) return;
    st.stopped = true;
    // seq_cst: the cores' acquire loads see it; ordered before the `gone` stores below.
    st.stopping.store(true, std::memory_order_seq_cst);
    for (const auto& r : st.table)
      if (r) regs.push_back(r);
  }
  for (auto& r : regs) r->gone.store(true, std::memory_order_seq_cst);  // pairs with the callers' flush fence
  for (auto& c : st.cores) st.wake_core(*c);
  for (auto& c : st.cores)
    if (c->thread.joinable()) c->thread.join();
  st.pool->shutdown(ESHUTDOWN);
  // What is still queued completes with -ESHUTDOWN, as far as the completion rings have room;
  // the callers resolve the rest (Registration: on_gone).
  StatCounters stc;
  Counters nc;
  std::vector<abi::SyscallRequest> batch;
  std::vector<Done> out;
  for (auto& r : regs) {
    // seq_cst: the Dekker pair with Registration::close, as in serve().
    if (!r->closed.load(std::memory_order_seq_cst)) {
      while (!try_claim(*r)) std::this_thread::yield();
      if (!r->closed.load(std::memory_order_seq_cst)) {
        batch.clear();
        out.clear();
        pop_requests(*r, ~0u, batch, out, stc);
        for (const auto& e : batch)
          if (e.flags != abi::kCancel) out.push_back({r.get(), e.id, -ESHUTDOWN});
      }
      release_claim(*r);
      publish(*r, out.data(), out.size(), stc, nc);
    }
    // release: pairs with the caller's acquire load in on_gone: every completion above is visible.
    r->final_done.store(true, std::memory_order_release);
    std::lock_guard lk(r->cq_mu);  // like publish(): the caller may be deregistering meanwhile
    r->to_caller.send(nc);
  }
}

}  // namespace detail

// ---- Executor --------------------------------------------------------------------------------

bool Executor::io_uring_available() noexcept {
#ifdef UIPC_HAVE_LIBURING
  static const bool ok = [] {
    io_uring ring{};
    if (io_uring_queue_init(4, &ring, 0) != 0) return false;
    io_uring_queue_exit(&ring);
    return true;
  }();
  return ok;
#else
  return false;
#endif
}

Result<std::unique_ptr<Executor>> Executor::create(const ExecutorOptions& opts) {
  const bool local = opts.placement == Placement::local;
  const std::size_t ncores = local ? 0 : (opts.cpus.empty() ? opts.cores : opts.cpus.size());
  if (!local && (ncores < 1 || ncores > 64)) return std::errc::invalid_argument;
  if (opts.tick_ns < 1'000 || opts.tick_ns > 10'000'000'000 || opts.idle_window_ns < 0 ||
      opts.idle_window_ns > 1'000'000'000 || opts.max_batch < 1 || opts.max_batch > 65536 ||
      opts.max_blocking_threads < 1 || opts.max_blocking_threads > 1024 ||
      opts.blocking_threads > opts.max_blocking_threads || opts.uring_entries < 8 || opts.uring_entries > 4096)
    return std::errc::invalid_argument;
  for (int cpu : opts.cpus)
    if (cpu >= CPU_SETSIZE) return std::errc::invalid_argument;

  auto st = std::make_shared<detail::ExecState>(opts);
  switch (opts.backend) {
    case Backend::automatic: st->backend = io_uring_available() ? Backend::io_uring : Backend::direct; break;
    case Backend::direct: st->backend = Backend::direct; break;
    case Backend::io_uring:
      if (!io_uring_available()) return std::errc::function_not_supported;
      st->backend = Backend::io_uring;
      break;
  }
  st->opts.backend = st->backend;
  st->pool = std::make_unique<detail::BlockingPool>(opts.blocking_threads, opts.max_blocking_threads);
  for (std::size_t i = 0; i < ncores; ++i) {
    auto c = std::make_unique<detail::CoreState>();
    c->index = static_cast<unsigned>(i);
    c->cpu = opts.cpus.empty() ? -1 : opts.cpus[i];
    auto n = Notification::create();
    if (!n) return n.error();
    c->notif = std::make_shared<Notification>(std::move(n.value()));
    if (opts.wake == WakeMode::tick) {
      c->timerfd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
      if (c->timerfd < 0) return errno_code(errno);
    }
    st->cores.push_back(std::move(c));
  }
  st->core_load.assign(ncores, 0);
  std::unique_ptr<Executor> ex(new Executor(st));
  for (auto& c : st->cores) {
    detail::CoreState* cp = c.get();
    detail::ExecState* sp = st.get();
    c->thread = std::thread([sp, cp] { detail::core_main(*sp, *cp); });
    if (c->cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(c->cpu, &set);
      if (pthread_setaffinity_np(c->thread.native_handle(), sizeof set, &set) != 0) {
        ex->shutdown();
        return std::errc::invalid_argument;
      }
    }
  }
  return ex;
}

Executor::~Executor() { shutdown(); }

void Executor::shutdown() noexcept { detail::shutdown_state(*st_); }

const ExecutorOptions& Executor::options() const noexcept { return st_->opts; }
Backend Executor::backend() const noexcept { return st_->backend; }
unsigned Executor::cores() const noexcept { return static_cast<unsigned>(st_->cores.size()); }

std::vector<ExecStats> Executor::core_stats() const {
  std::vector<ExecStats> v;
  for (const auto& c : st_->cores) v.push_back(c->st.snapshot());
  return v;
}

ExecStats Executor::pool_stats() const { return st_->pool->stats(); }

std::size_t Executor::registrations() const {
  std::lock_guard lk(st_->big_lock);
  std::size_t n = 0;
  for (const auto& r : st_->table) n += r != nullptr;
  return n;
}

}  // namespace uipc::sys
