// uipc/sys/executor.hpp — the kernel executor: the "kernel" of asynchronous system calls (note §2, §3).
//
// What it guarantees:
//  * The executor owns a configuration table of registrations (one per registered thread: its
//    syscall buffer, its reply notification, its allow-list), guarded by one big lock (note §2.3).
//    The table changes only on registration, deregistration and shutdown; kernel cores read a
//    snapshot and refresh it when the table's generation moves.
//  * Kernel cores are threads, each pinned to the CPU given for it. Each owns a U-notification
//    (the kernel's "interrupt controller"): submitters raise it, and it is the only way a sleeping
//    core is woken (the futex wake is the IPI of note §3.3).
//  * Wake modes (how work reaches a core):
//      tick    cores sleep on a timerfd of period tick_ns and drain every buffer at each tick
//              (note §2.2); submitters never raise anything.
//      irq     a core sleeps as soon as a sweep finds nothing; every submission batch raises the
//              core's notification, which enters the kernel only if the core sleeps.
//      hybrid  cores poll while work keeps coming; after idle_window_ns without work a core arms
//              the data waiter of each buffer it serves (ring/handshake.hpp), re-checks, and
//              sleeps; submitters raise the core only when they take an armed flag. A timed
//              sleep of tick_ns is the backstop.
//  * Placement (which core answers a buffer, note §3.2):
//      affine  each registration is owned by one core (the least loaded when it registers);
//      shared  any core claims any buffer through the buffer's claim flag (an atomic exchange),
//              and so does the registered thread's own runtime when it would otherwise idle: the
//              claimants split what is queued between them;
//      local   no kernel core: the caller's runtime executes its queued calls in one batch when
//              it would otherwise idle (irq: a deferred callback at the end of the batch; hybrid:
//              its poller; tick: a runtime timer every tick_ns). With the io_uring backend the
//              calls io_uring runs skip the rings: the awaiter queues its SQE on the caller's own
//              ring and the CQE completes it (the same batch points submit them); a call that
//              would block goes on the ring way (docs/syscalls.md).
//  * Backends (how a call is executed):
//      direct    syscall(2) on the executing thread. Calls that may block (read/write/recv/send on
//                pipes, sockets and terminals, sleeps, polls, waits, fsync, accept, connect ...)
//                run in a bounded blocking pool, so a core never stalls; see docs/syscalls.md for
//                the exact rules (reads and writes are first tried with RWF_NOWAIT / MSG_DONTWAIT).
//      io_uring  the calls io_uring supports (read, write, readv, writev, pread, pwrite, openat,
//                close, statx, fsync, fdatasync) are queued as SQEs and submitted with one
//                io_uring_enter per sweep; the rest go the direct way.
//      automatic io_uring when io_uring_queue_init works here, else direct.
//  * Every request a core takes is completed exactly once; shutdown() completes whatever is
//    still queued with -ESHUTDOWN, interrupts blocked pool calls, and never hangs on a
//    well-behaved call (docs/syscalls.md lists the uninterruptible ones).
// Who may call: create/shutdown/stats from any thread that is not one of the executor's own.
//  Registrations hold a share of the executor's state: an Executor may be destroyed while
//  registrations live; their calls then complete with ESHUTDOWN.
// What blocks: shutdown() and the destructor (joining cores and the pool); nothing else.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "uipc/result.hpp"

namespace uipc::sys {

enum class WakeMode : std::uint8_t { tick, irq, hybrid };
enum class Placement : std::uint8_t { affine, shared, local };
enum class Backend : std::uint8_t { automatic, direct, io_uring };

const char* to_string(WakeMode m) noexcept;
const char* to_string(Placement p) noexcept;
const char* to_string(Backend b) noexcept;
Result<WakeMode> parse_wake_mode(const std::string& s);
Result<Placement> parse_placement(const std::string& s);
Result<Backend> parse_backend(const std::string& s);

struct ExecutorOptions {
  WakeMode wake = WakeMode::hybrid;
  Placement placement = Placement::affine;
  Backend backend = Backend::automatic;
  // One kernel core per entry, pinned to that CPU (-1: not pinned). Empty: `cores` unpinned
  // cores. Both are ignored for Placement::local.
  std::vector<int> cpus;
  unsigned cores = 1;                     // 1 .. 64
  std::int64_t tick_ns = 1'000'000;       // tick period; hybrid's backstop sleep (1 µs .. 10 s)
  std::int64_t idle_window_ns = 50'000;   // hybrid: polling time after the last work (0 .. 1 s)
  unsigned max_batch = 1024;              // requests a core takes from one buffer per claim
  unsigned blocking_threads = 2;          // pool threads started up front (0 .. max)
  unsigned max_blocking_threads = 64;     // the pool grows up to this many (1 .. 1024)
  unsigned uring_entries = 256;           // SQ entries of each io_uring instance (8 .. 4096)
};

// What one party (a kernel core, the blocking pool, a registration, a caller thread) did.
// kernel_entries() counts every kernel entry the party made: system calls executed or made to
// decide how to execute (fcntl, fstat), io_uring_enter, futex wakes and waits, timerfd reads.
struct ExecStats {
  std::uint64_t requests = 0;      // requests taken from syscall buffers (cancellations included)
  std::uint64_t syscalls = 0;      // system calls made (direct execution and helpers)
  std::uint64_t uring_ops = 0;     // requests handed to io_uring
  std::uint64_t uring_enters = 0;  // io_uring_enter calls
  std::uint64_t pool_jobs = 0;     // requests handed to the blocking pool
  std::uint64_t futex_wakes = 0;   // wakes issued to sleeping callers or cores
  std::uint64_t futex_waits = 0;   // futex sleeps
  std::uint64_t timer_waits = 0;   // timerfd reads (tick mode)
  std::uint64_t ticks = 0;         // timer expirations (tick), backstop timeouts (hybrid)
  std::uint64_t batches = 0;       // claims that took at least one request
  std::uint64_t rejected = 0;      // requests completed with -EPERM or -EINVAL unexecuted
  std::uint64_t cancels = 0;       // cancellations processed
  std::uint64_t kernel_entries() const noexcept {
    return syscalls + uring_enters + futex_wakes + futex_waits + timer_waits;
  }
  ExecStats& operator+=(const ExecStats& o) noexcept;
  ExecStats operator-(const ExecStats& o) const noexcept;
};

namespace detail {
struct ExecState;
}

class Executor {
 public:
  // Starts the kernel cores and the blocking pool. errc::invalid_argument for options out of
  // range or a CPU that cannot be pinned; errc::function_not_supported for Backend::io_uring
  // where io_uring does not work.
  static Result<std::unique_ptr<Executor>> create(const ExecutorOptions& opts = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Stops the cores and the pool; every call not yet completed completes with -ESHUTDOWN (or
  // its own result, when it had already run). Idempotent.
  void shutdown() noexcept;

  const ExecutorOptions& options() const noexcept;
  Backend backend() const noexcept;  // the one in use (never automatic)
  unsigned cores() const noexcept;   // kernel cores (0 for Placement::local)
  std::vector<ExecStats> core_stats() const;
  ExecStats pool_stats() const;
  std::size_t registrations() const;
  // io_uring_queue_init works in this process (and uipc was built with liburing).
  static bool io_uring_available() noexcept;

  const std::shared_ptr<detail::ExecState>& state() const noexcept { return st_; }

 private:
  explicit Executor(std::shared_ptr<detail::ExecState> st) : st_(std::move(st)) {}
  std::shared_ptr<detail::ExecState> st_;
};

}  // namespace uipc::sys
