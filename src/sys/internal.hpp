// src/sys/internal.hpp — the executor's private parts: a registration as the executor sees it
// (Reg), the execution engine (direct + io_uring), the blocking pool, the shared state.
//
// Invariants:
//  * A Reg's request-ring consumer state (rq, taken) belongs to whoever holds its claim flag;
//    claiming is an exchange (seq_cst: it acquires the previous holder's release and is ordered
//    before the holder's load of `closed`, the other half of the Dekker pair in
//    Registration::close). Execution happens after the claim is released.
//  * The completion ring's producer (cq) is guarded by cq_mu; the flush and the caller's
//    wake-up happen under it too, so a deregistering caller that has seen every completion and
//    then passed cq_mu knows no executor thread touches the Reg any more.
//  * Credit: a claimant takes a request only if the completion ring will have room for its
//    completion: taken - (caller's completion head) <= capacity. So neither ring overflows.
//  * Pool jobs hold a shared_ptr<Reg>; io_uring operations and batches hold raw pointers, which
//    the deregistration wait (every taken request published) keeps valid.
//  * Direct calls (local placement, io_uring backend: Engine::execute_direct) never pass through
//    the rings and are never `taken`: they live in the caller's call table and its engine only,
//    and complete from their CQE (Engine::direct_done). One that needs the slow path (RWF_NOWAIT
//    said "would block", a short write on a pipe) is demoted: the caller writes it into its
//    request ring, and from then on it is an ordinary request. Deregistration and shutdown wait
//    for the engine's outstanding operations as well as for the taken requests.
// Who may call: the executor's threads (cores, pool workers) and registered callers, each as
//  described at the function. What blocks: BlockingPool::shutdown (joins); nothing else.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "uipc/notify/counters.hpp"
#include "uipc/notify/notification.hpp"
#include "uipc/sys/buffer.hpp"
#include "uipc/sys/executor.hpp"
#include "uipc/sys/rights.hpp"

namespace uipc::sys::detail {

// The completion ring's publisher lock. Held for a handful of stores (and, rarely, one futex
// wake), almost never contended (affine: one core and the pool; local: the caller and the pool):
// taking it is one exchange and giving it back one release store, where a std::mutex costs two
// locked instructions and two calls. A contender spins briefly, then yields its CPU.
class PublishLock {
 public:
  void lock() noexcept {
    // acquire: pairs with unlock()'s release: the previous holder's ring writes are visible.
    while (held_.exchange(true, std::memory_order_acquire)) {
      for (unsigned i = 0; held_.load(std::memory_order_relaxed); ++i) {
        if (i < 64) cpu_pause();
        else std::this_thread::yield();
      }
    }
  }
  bool try_lock() noexcept { return !held_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  static void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  std::atomic<bool> held_{false};
};

// Single-writer counters (a core, a caller thread, a pool worker); anyone may read.
struct StatCounters {
  Counter requests, syscalls, uring_ops, uring_enters, pool_jobs, futex_wakes, futex_waits, timer_waits, ticks,
      batches, rejected, cancels;
  ExecStats snapshot() const noexcept;
  void add_to(struct SharedStats& s) const noexcept;
};

// Many-writer counters (per registration): relaxed fetch_add, once per batch.
struct SharedStats {
  std::atomic<std::uint64_t> requests{0}, syscalls{0}, uring_ops{0}, uring_enters{0}, pool_jobs{0}, futex_wakes{0},
      futex_waits{0}, timer_waits{0}, ticks{0}, batches{0}, rejected{0}, cancels{0};
  void add(const ExecStats& d) noexcept;
  // One claimant's batch: what it popped and what executing it cost. `exclusive`: only one thread
  // ever serves this registration (affine: its core; local: its caller), so plain relaxed
  // load + store (no locked instruction) is enough; otherwise fetch_add.
  void add_batch(std::uint64_t requests, std::uint64_t syscalls, std::uint64_t uring_ops, std::uint64_t pool_jobs,
                 std::uint64_t rejected, std::uint64_t cancels, bool exclusive) noexcept;
  ExecStats load() const noexcept;
};

struct Reg : std::enable_shared_from_this<Reg> {
  // ---- fixed at registration ----
  std::uint32_t index = 0;   // table slot; also the slot raised on kernel cores' notifications
  pthread_t thread{};
  pid_t tid = 0;
  std::uint32_t capacity = 0;
  AllowList allow;  // AllowList::effective(): hard-denied numbers already removed
  SyscallBuffer buffer;
  RingView<abi::SyscallRequest> rq_view;
  RingView<abi::SyscallCompletion> cq_view;
  unsigned owner = 0;                    // affine: the owning core; shared: the home core
  std::vector<SenderEntry> to_cores;     // one per kernel core
  SenderEntry to_caller;                 // the reply notification (note §2.1)
  std::shared_ptr<Notification> caller_notification;  // keeps the caller's word mapped

  // Each group below starts a cache line of its own: the claim holder (a kernel core) writes the
  // consumer state and the publisher the producer state at every batch, while the caller reads
  // `gone` at every submission; sharing a line would bounce it between the cores each time.

  // ---- request-ring consumer: the claim holder's ----
  alignas(uipc::abi::kCacheLine) std::atomic<std::uint32_t> claim{0};
  EntryConsumer<abi::SyscallRequest> rq;
  std::uint32_t taken = 0;  // requests taken that owe a completion (same index space as cq)

  // ---- completion-ring producer ----
  alignas(uipc::abi::kCacheLine) PublishLock cq_mu;
  EntryProducer<abi::SyscallCompletion> cq;
  bool signal_owed = false;  // cq_mu: completions published whose wake-up check was put off

  // ---- life-cycle flags: written rarely, read by everyone ----
  alignas(uipc::abi::kCacheLine) std::atomic<bool> closed{false};  // deregistering: nobody takes requests any more
  std::atomic<bool> gone{false};        // the executor is shutting down
  std::atomic<bool> final_done{false};  // the executor will never touch this buffer again
  std::atomic<bool> broken{false};      // the caller corrupted its request ring: ignored from now on

  // Cancellations that found no pool job yet (the job may still be on its way there); guarded by
  // the pool's mutex, at most one per call index.
  std::vector<std::pair<std::uint64_t, int>> pending_cancels;

  alignas(uipc::abi::kCacheLine) SharedStats stats;  // what executors did for this registration
};

struct Done {
  Reg* reg;
  std::uint64_t id;
  std::int64_t result;
};

// How a publisher treats the caller's completion waiter after publishing.
enum class Signal : std::uint8_t {
  now,    // flush: wake the caller if it armed its waiter
  defer,  // put it off (signal_owed): a kernel core that is about to take more of the same
          // buffer's requests wakes a sleeping caller once, when it runs out (flush_owed)
  none,   // the publisher is the registered thread itself: it is awake, nobody to wake
};

// Publishes completions for one registration (under cq_mu) and signals as `sig` says. Counts a
// wake in `st` and `nc`.
void publish(Reg& r, const Done* d, std::size_t n, StatCounters& st, Counters& nc, Signal sig = Signal::now) noexcept;
void flush_owed(Reg& r, StatCounters& st, Counters& nc) noexcept;
// Publishes a run of completions that may belong to several registrations.
void publish_all(std::vector<Done>& out, StatCounters& st, Counters& nc, Signal sig = Signal::now) noexcept;

// A blocking-pool job.
struct Job {
  std::shared_ptr<Reg> reg;
  abi::SyscallRequest rq;
  std::int64_t partial = 0;             // bytes a write already moved before it came here
  bool plain = false;                   // run the call as is (no interruptible form, or a file)
  std::atomic<int> cancel_reason{0};    // set under the pool's mutex; read by the worker
};

class BlockingPool {
 public:
  BlockingPool(unsigned start_threads, unsigned max_threads);
  ~BlockingPool();
  // Runs the job on a pool thread; its completion is published there. After shutdown, or when
  // a cancellation is already pending for it, it completes at once.
  void submit(std::unique_ptr<Job> job);
  // Cancels the call `id` of `r`: a queued job completes with -reason now, a running one is
  // interrupted (if its call can be); otherwise the cancellation is remembered for a job that
  // may still be on its way.
  void cancel(Reg& r, std::uint64_t id, int reason);
  // Cancels every job of `r` (deregistration).
  void cancel_all(Reg& r, int reason);
  // Cancels everything with -reason, stops and joins the threads. Later submits complete at once.
  void shutdown(int reason);
  ExecStats stats() const;

 private:
  struct Worker {
    std::thread thread;
    int efd = -1;           // the worker's interrupt: written to cancel its running job
    Job* current = nullptr; // guarded by mu_
    bool dirty = false;     // efd may hold a stale count (guarded by mu_)
    StatCounters st;
    Counters nc;
  };
  bool spawn_locked();
  void worker_main(Worker* w);
  std::int64_t run(Job& j, Worker& w);
  void complete(Job& j, std::int64_t result, StatCounters& st, Counters& nc);
  static bool take_pending_cancel(Reg& r, std::uint64_t id, int* reason);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  std::vector<std::unique_ptr<Worker>> workers_;
  unsigned idle_ = 0;
  unsigned max_threads_;
  bool stop_ = false;
  int stop_reason_ = 0;
  StatCounters inline_st_;  // completions published by submit()/cancel() callers (mu_ held)
  Counters inline_nc_;
  ExecStats retired_;       // workers joined by shutdown()
};

struct CoreState {
  unsigned index = 0;
  int cpu = -1;
  std::shared_ptr<Notification> notif;  // the kernel's U-notification for this core
  int timerfd = -1;                     // tick mode
  bool timer_armed = false;             // guarded by the big lock
  StatCounters st;
  Counters nc;
  std::thread thread;
};

struct ExecState {
  ExecutorOptions opts;
  Backend backend = Backend::direct;
  std::mutex big_lock;                         // the configuration table's big lock (note §2.3)
  std::vector<std::shared_ptr<Reg>> table;     // index = Reg::index; nullptr: free
  std::vector<unsigned> core_load;             // affine: registrations per core (big lock)
  std::atomic<std::uint64_t> generation{0};    // bumped (under the big lock) on every table change
  std::vector<std::unique_ptr<CoreState>> cores;
  std::atomic<std::uint64_t> sleeping{0};      // bit c: core c is asleep (a hint for shared wake-ups)
  std::atomic<bool> stopping{false};
  bool stopped = false;                        // big lock
  std::unique_ptr<BlockingPool> pool;

  explicit ExecState(const ExecutorOptions& o);
  ~ExecState();
  void wake_core(CoreState& c) noexcept;       // any thread: service flag / timerfd
};

// Executes requests: direct system calls, io_uring, the blocking pool. One per executing thread
// (a kernel core, or a caller thread in shared/local placement); not thread-safe.
class Engine {
 public:
  Engine(ExecState& st, StatCounters& stats, bool use_uring);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Executes `rq` (allowed, well-formed) for `r`: an immediate result goes to `out`; io_uring
  // and pool work completes later (reap(), the pool).
  void execute(Reg& r, const abi::SyscallRequest& rq, std::vector<Done>& out);
  // Submits the SQEs queued since the last call (one io_uring_enter) and reaps what is ready.
  void submit(std::vector<Done>& out);
  // Reaps ready CQEs without entering the kernel.
  void reap(std::vector<Done>& out);
  unsigned outstanding() const noexcept;  // operations queued or submitted, not yet reaped
  unsigned unsubmitted() const noexcept;  // SQEs queued since the last submit()

  // Local placement with the io_uring backend: a call taken straight from the caller's awaiter,
  // with no request ring and no completion ring in between (`rq.id` set, well-formed). True if it
  // became an SQE: the io_uring calls (see uring_prep) that `allow` admits. Its outcome comes back
  // through direct_done() when submit()/reap() see its CQE, never through `out`.
  bool execute_direct(const abi::SyscallRequest& rq, const AllowList& allow);
  struct DirectDone {
    std::uint64_t id;
    std::int64_t result;   // the call's result (demote == false)
    std::int64_t partial;  // demote: bytes a write already moved (0 for everything else)
    bool demote;           // RWF_NOWAIT said "would block", or a short write on a pipe or socket:
                           // the caller sends the call (its remainder) the ring way
  };
  std::vector<DirectDone>& direct_done() noexcept { return direct_; }

  struct Uring;

 private:
  std::int64_t sys(long n, std::int64_t a0 = 0, std::int64_t a1 = 0, std::int64_t a2 = 0, std::int64_t a3 = 0,
                   std::int64_t a4 = 0, std::int64_t a5 = 0) noexcept;
  void to_pool(Reg& r, const abi::SyscallRequest& rq, bool plain, std::int64_t partial = 0);
  // read/write/readv/writev (and preadv2/pwritev2 at the file position) after RWF_NOWAIT said
  // "would block" or "not supported" (result e).
  void rw_slow(Reg& r, const abi::SyscallRequest& rq, std::int64_t e, std::vector<Done>& out, bool allow_uring);
  // A read/write result: a short write on a pipe or socket continues in the pool (a blocking
  // write would have waited for the rest).
  void rw_done(Reg& r, const abi::SyscallRequest& rq, std::int64_t res, std::vector<Done>& out);
  // Whether reads and writes on fd may wait indefinitely (pipe, socket, terminal ...); -errno
  // if fstat fails.
  int fd_may_block(std::int64_t fd);
  bool uring_prep(Reg* r, const abi::SyscallRequest& rq, bool nowait);
  void submit_sq();
  void handle_cqe(std::uint64_t data, std::int32_t res, std::vector<Done>& out);
  void ensure_uring();

  void direct_cqe(std::uint32_t idx, std::int32_t res);

  ExecState& st_;
  StatCounters& stats_;
  std::vector<DirectDone> direct_;
  bool want_uring_;
  std::unique_ptr<Uring> uring_;
  bool uring_tried_ = false;
};

// Takes up to `max` requests from `r` (which the caller has claimed): well-formed, allowed ones
// go to `batch`, cancellations too (in order); malformed and refused ones are completed into
// `out` at once. Returns the number of entries popped.
unsigned pop_requests(Reg& r, unsigned max, std::vector<abi::SyscallRequest>& batch, std::vector<Done>& out,
                      StatCounters& st) noexcept;

// What serve() found.
enum class Served : std::uint8_t { idle, worked, contended };

// One claimant's turn on one buffer: claim, pop (up to max; `share` > 1 splits what is queued
// among that many claimants), release, execute, publish. Used by kernel cores and by callers.
// Who is serving: a kernel core among several possible claimants (shared), the buffer's only
// kernel core (affine: it comes back for more, so a sleeping caller need not be woken while
// requests remain queued), or the registered thread itself (shared, local).
enum class Claimant : std::uint8_t { core, sole_core, caller };

Served serve(ExecState& st, Reg& r, Engine& eng, unsigned max, unsigned share,
             StatCounters& stc, Counters& nc, std::vector<abi::SyscallRequest>& batch, std::vector<Done>& out,
             Claimant who);

// Stops the executor (Executor::shutdown): cores, pool, final drain, callers told.
void shutdown_state(ExecState& st) noexcept;

bool try_claim(Reg& r) noexcept;
void release_claim(Reg& r) noexcept;

// Copies between this process's memory and a pointer from a request without trusting it:
// process_vm_readv/writev on ourselves. 0 or -errno (-EFAULT for a bad pointer).
std::int64_t safe_read(void* dst, std::int64_t user_src, std::size_t n, StatCounters& st) noexcept;
std::int64_t safe_write(std::int64_t user_dst, const void* src, std::size_t n, StatCounters& st) noexcept;

// The raw system call: returns the value or -errno, leaves errno alone.
std::int64_t raw_syscall(long n, std::int64_t a0, std::int64_t a1, std::int64_t a2, std::int64_t a3, std::int64_t a4,
                         std::int64_t a5) noexcept;

std::uint64_t now_ns() noexcept;

}  // namespace uipc::sys::detail
