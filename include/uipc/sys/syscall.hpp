// uipc/sys/syscall.hpp — configure_async_syscall and the co_await forms of system calls (note §2.1).
//
// What it guarantees:
//  * configure_async_syscall(rt, ex, opts) registers the calling thread with the executor: a
//    fresh syscall buffer (sys/buffer.hpp), a reply slot minted on rt's notification and bound to
//    a handler (the "bound notification" of note §2.1), and an allow-list. It returns a handle;
//    destroying the handle (or close(), or the thread ending) deregisters it.
//  * A thread submits only through its own registration: calls made from any other thread
//    complete with errc::operation_not_permitted; the free functions below use the calling
//    thread's registration (Registration::current()) and complete with errc::not_connected when
//    it has none.
//  * Every call completes exactly once: with the system call's result, with its error
//    (std::error_code, generic category), or with errc::operation_canceled / errc::timed_out
//    when cancelled or timed out while blocked (a read on an empty pipe), ESHUTDOWN when the
//    executor shut down first, errc::operation_canceled when the registration closed first.
//    A cancellation that loses the race with the call completing yields the call's own result.
//  * At most `capacity` calls are in flight; further calls wait for a slot (fail_when_full:
//    complete at once with errc::resource_unavailable_try_again). Nothing is dropped.
//  * Buffers, paths and other memory a call points to must stay valid until it completes (as
//    with io_uring); the executor passes pointers to the kernel and never dereferences them
//    itself except through process_vm_readv/writev, so a bad pointer yields EFAULT, not a crash.
//  * Calls in flight have no order among themselves; a coroutine that needs order awaits each.
//  * call_many(calls) submits a batch from one coroutine, which is resumed once, after the last
//    call of the batch completed. Each call of a batch keeps every guarantee above (exactly one
//    completion, with the result it would have had alone; options apply to each call); a batch
//    larger than the free slots waits for slots (or fails the rest with EAGAIN under
//    fail_when_full). The BatchSyscalls hold the calls' state and must not move until then.
// Who may call: configure_async_syscall and everything on a Registration from the thread that
//  runs the Runtime (before it runs or inside it); the handle's destructor there too, or, once
//  the runtime stopped and the thread makes no more calls through it, on any thread (its own
//  thread then finds no registration, and ending that thread touches nothing of the handle).
//  co_await only inside coroutines running on that runtime.
// What blocks: close()/the destructor, until the executor has let go of every call in flight
//  (blocked pool calls are interrupted first); nothing else blocks the thread.
#pragma once

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <span>

#include "uipc/result.hpp"
#include "uipc/runtime/runtime.hpp"
#include "uipc/sys/abi.hpp"
#include "uipc/sys/executor.hpp"
#include "uipc/sys/rights.hpp"

namespace uipc::sys {

struct SyscallOptions {
  std::uint32_t capacity = 256;   // calls in flight at once: a power of two, 2 .. 32768
  AllowList allow = AllowList::safe_default();
  bool fail_when_full = false;    // true: a call beyond `capacity` fails instead of waiting
};

class CancelToken;
class Registration;

struct CallOptions {
  std::int64_t timeout_ns = -1;    // >= 0: cancel with errc::timed_out after this long
  CancelToken* cancel = nullptr;   // cancel() on it cancels the call with errc::operation_canceled
};

struct RegistrationStats {
  std::uint64_t submitted = 0;       // calls handed on: written to the buffer or (local placement,
                                     // io_uring backend) queued on this thread's io_uring directly;
                                     // cancellations excluded
  std::uint64_t completed = 0;       // calls completed (immediate failures included)
  std::uint64_t slot_waits = 0;      // calls that waited for a free slot
  std::uint64_t cancels_sent = 0;    // cancellations written to the buffer
  std::uint64_t unmatched = 0;       // completions whose id named no call in flight
};

namespace detail {

// One call's state on the caller side. It lives in the awaiter, i.e. in the awaiting
// coroutine's frame (or in a BatchSyscall), and does not move while the call is in flight. No
// default member initializers (this is the per-call hot path): SyscallAwaiter's constructor sets
// what is read before submission; the rest is written where it gets its value.
struct OpNode {
  enum class State : std::uint8_t { idle, waiting, submitted, cancel_sent, done };
  // Hot, in the order completion touches them: finishing a plain call (no timeout, no token)
  // reads and writes only the first 32 bytes, so it costs at most two of the frame's cache
  // lines, one in the common case.
  State state;
  bool extras;          // a timer, a token or a demoted write to settle: finish() looks further
  bool cancel_pending;  // a cancellation waits for request-ring space
  bool timed;           // `timer` was armed for this call (only then is it looked at)
  bool demoted;         // a direct call sent on the ring way after moving `partial` bytes
  std::coroutine_handle<> h;
  std::int64_t result;
  std::size_t* group;   // call_many: the batch's count of calls still open (its coroutine is
                        // resumed when it reaches 0); nullptr: resume `h` at completion
  // Hot on the submission side.
  Registration* reg;
  abi::SyscallRequest rq;
  CallOptions opt;
  // Cold: timeouts, cancellation tokens, waiting for a slot.
  OpNode* wait_next;  // FIFO of calls waiting for a slot / for ring space
  OpNode* tok_prev;   // CancelToken list
  OpNode* tok_next;
  int cancel_reason;
  std::int64_t partial;  // only when `demoted`
  // The timeout's timer node, constructed only for calls with a timeout (`timed`): a call
  // without one never touches these bytes.
  alignas(Runtime::TimerNode) unsigned char timer_storage[sizeof(Runtime::TimerNode)];
  Runtime::TimerNode& timer() noexcept { return *std::launder(reinterpret_cast<Runtime::TimerNode*>(timer_storage)); }

  // Bytes from the start that completing a plain call touches (prefetched by the drain).
  static constexpr std::size_t kCompletionBytes = 32;
  // The number as the request carries it: out of range becomes one the executor answers with
  // -EINVAL (never executed).
  static std::uint32_t wire_number(long number) noexcept {
    return number < 0 || number > static_cast<long>(abi::kMaxSyscallNumber) ? abi::kMaxSyscallNumber + 1
                                                                              : static_cast<std::uint32_t>(number);
  }
  // What every submission path sets before submit(), besides the request's number and args.
  void prepare(Registration* r, CallOptions o) noexcept {
    reg = r;
    rq.flags = 0;
    opt = o;
    state = State::idle;
    extras = false;
    cancel_pending = false;
    timed = false;
    demoted = false;
    group = nullptr;
  }
};
static_assert(std::is_trivially_destructible_v<Runtime::TimerNode>);
static_assert(offsetof(OpNode, group) + sizeof(OpNode::group) <= OpNode::kCompletionBytes);

// A raw result that is -errno rather than a value.
inline bool is_error(std::int64_t r) noexcept { return r < 0 && r >= -4095; }

}  // namespace detail

// Cancels every call it is attached to (CallOptions::cancel). Runtime thread only.
class CancelToken {
 public:
  CancelToken() = default;
  ~CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;
  void cancel() noexcept;
  bool cancelled() const noexcept { return cancelled_; }

 private:
  friend class Registration;
  detail::OpNode* head_ = nullptr;
  bool cancelled_ = false;
};

// co_await yields the raw result: the return value or -errno.
class [[nodiscard]] SyscallAwaiter {
 public:
  // Inline, so that the typed calls' argument arrays dissolve into direct stores into the
  // awaiter (no temporary array copied through memory on the per-call path).
  SyscallAwaiter(Registration* reg, long number, const std::array<std::int64_t, 6>& args, CallOptions opt) noexcept;
  SyscallAwaiter(const SyscallAwaiter&) = delete;
  SyscallAwaiter& operator=(const SyscallAwaiter&) = delete;

  bool await_ready() const noexcept { return op_.state == detail::OpNode::State::done; }
  bool await_suspend(std::coroutine_handle<> h) noexcept;
  std::int64_t await_resume() const noexcept { return op_.result; }
  // The argument slots, for awaiters that point the kernel at memory inside themselves; only
  // before await_suspend.
  std::int64_t* args() noexcept { return op_.rq.args; }

 private:
  detail::OpNode op_;
};

inline SyscallAwaiter::SyscallAwaiter(Registration* reg, long number, const std::array<std::int64_t, 6>& args,
                                      CallOptions opt) noexcept {
  // Only what the paths before submission read: id, h, result and the list links are written
  // where they get their values (submit, await_suspend, completion, attach).
  op_.prepare(reg, opt);
  op_.rq.number = detail::OpNode::wire_number(number);
  for (std::size_t i = 0; i < 6; ++i) op_.rq.args[i] = args[i];
  if (reg == nullptr) [[unlikely]] {
    op_.result = -ENOTCONN;
    op_.state = detail::OpNode::State::done;
  }
}

// One system call of a batch (call_many): its number and arguments go in, its raw result
// (the return value or -errno) comes out. It holds the call's state while the batch is in
// flight, so it must stay where it is (and alive) until the batch has completed; after that
// it may be read, set again or sent as it is in another batch. Cache-line aligned: submitting
// and completing a call touch its first two lines only.
class alignas(uipc::abi::kCacheLine) BatchSyscall {
 public:
  BatchSyscall() noexcept { set(-1); }
  explicit BatchSyscall(long number, std::int64_t a0 = 0, std::int64_t a1 = 0, std::int64_t a2 = 0,
                        std::int64_t a3 = 0, std::int64_t a4 = 0, std::int64_t a5 = 0) noexcept {
    set(number, a0, a1, a2, a3, a4, a5);
  }
  // A number outside 0 .. abi::kMaxSyscallNumber makes the call complete with -EINVAL.
  void set(long number, std::int64_t a0 = 0, std::int64_t a1 = 0, std::int64_t a2 = 0, std::int64_t a3 = 0,
           std::int64_t a4 = 0, std::int64_t a5 = 0) noexcept {
    op_.rq.number = detail::OpNode::wire_number(number);
    std::int64_t* a = op_.rq.args;
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
    a[3] = a3;
    a[4] = a4;
    a[5] = a5;
  }
  // After the batch has completed: the value or -errno (as SyscallAwaiter's co_await yields).
  std::int64_t result() const noexcept { return op_.result; }
  bool ok() const noexcept { return !detail::is_error(op_.result); }

 private:
  friend class BatchAwaiter;
  friend class Registration;
  detail::OpNode op_;
};

// co_await call_many(...): submits every call of the batch and resumes the awaiting coroutine
// once, when the last one has completed; yields how many succeeded (BatchSyscall::ok()).
class [[nodiscard]] BatchAwaiter {
 public:
  BatchAwaiter(Registration* reg, std::span<BatchSyscall> calls, CallOptions opt) noexcept
      : reg_(reg), calls_(calls), opt_(opt) {}
  BatchAwaiter(const BatchAwaiter&) = delete;
  BatchAwaiter& operator=(const BatchAwaiter&) = delete;

  bool await_ready() const noexcept { return calls_.empty(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept;
  std::size_t await_resume() const noexcept {
    std::size_t ok = 0;
    for (const BatchSyscall& c : calls_) ok += c.ok() ? 1 : 0;
    return ok;
  }

 private:
  Registration* reg_;
  std::span<BatchSyscall> calls_;
  CallOptions opt_;
  std::size_t open_ = 0;  // calls of the batch not yet completed (OpNode::group points here)
};

class Registration {
 public:
  ~Registration();
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  // This thread's open registration for Runtime::current() (else its newest one), or nullptr.
  static Registration* current() noexcept;

  // Deregisters now: blocked pool calls are interrupted, calls still queued complete with
  // errc::operation_canceled, completed ones with their results. Idempotent.
  void close() noexcept;
  bool closed() const noexcept;

  // The generic call by number: co_await yields the value or -errno.
  SyscallAwaiter call_raw(long number, std::int64_t a0 = 0, std::int64_t a1 = 0, std::int64_t a2 = 0,
                          std::int64_t a3 = 0, std::int64_t a4 = 0, std::int64_t a5 = 0, CallOptions o = {}) noexcept {
    return SyscallAwaiter(this, number, {a0, a1, a2, a3, a4, a5}, o);
  }
  // A batch: every call of `calls` is submitted at once (in order; those beyond the free slots
  // wait for one, or fail with EAGAIN under fail_when_full), each with the options `o` (a
  // timeout applies to each call; a token cancels every call still open), and the awaiting
  // coroutine is resumed once, after the last one completed. Each call completes exactly once,
  // with the result (or error) the same call made alone would have had.
  BatchAwaiter call_many(std::span<BatchSyscall> calls, CallOptions o = {}) noexcept {
    return BatchAwaiter(this, calls, o);
  }

  Runtime& runtime() const noexcept;
  std::uint32_t capacity() const noexcept;
  std::uint32_t in_flight() const noexcept;
  RegistrationStats stats() const noexcept;
  // What every claimant (kernel cores, and this thread in shared/local placement) did while
  // serving this registration; pool threads' own system calls are in Executor::pool_stats().
  ExecStats executor_stats() const noexcept;
  ExecStats caller_stats() const noexcept;    // this thread's part of it (shared, local)
  // Kernel entries the registered thread made: its runtime's (futex waits and wakes, including
  // raising kernel cores) plus those of the calls it executed itself.
  std::uint64_t caller_kernel_entries() const noexcept;

  // Testing and fuzzing: publishes `rq` exactly as given (id, number, flags and all), outside
  // the call table. Its completion, if any, is counted as unmatched (last_unmatched()).
  bool submit_raw(const abi::SyscallRequest& rq) noexcept;
  abi::SyscallCompletion last_unmatched() const noexcept;

  // Internal: the registering thread is ending; deregister without touching its runtime.
  void close_from_thread_exit() noexcept;

  struct Impl;

 private:
  friend Result<std::unique_ptr<Registration>> configure_async_syscall(Runtime&, Executor&, const SyscallOptions&);
  friend class SyscallAwaiter;
  friend class BatchAwaiter;
  friend class CancelToken;
  explicit Registration(std::unique_ptr<Impl> impl);
  static Registration* current_slow() noexcept;
  static Registration* find_current() noexcept;
  bool submit(detail::OpNode* op) noexcept;
  bool submit_many(BatchSyscall* calls, std::size_t n, std::size_t* open, std::coroutine_handle<> h,
                   CallOptions o) noexcept;
  void cancel(detail::OpNode* op, int reason) noexcept;
  std::unique_ptr<Impl> impl_;
  bool closed_ = false;  // Impl's `closed`, where current()'s inline fast path can see it
};

namespace detail {
// The calling thread's registration when it has exactly one (open or closed: current() checks),
// else nullptr; kept by registration.cpp. current()'s fast path, one thread-local load.
inline constinit thread_local Registration* t_sole_registration = nullptr;
}  // namespace detail

inline Registration* Registration::current() noexcept {
  Registration* r = detail::t_sole_registration;
  if (r != nullptr && !r->closed_) [[likely]] return r;
  return current_slow();
}

inline bool SyscallAwaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  op_.h = h;
  return op_.reg->submit(&op_);
}

inline bool BatchAwaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  if (reg_ == nullptr) [[unlikely]] {
    for (BatchSyscall& c : calls_) {
      c.op_.result = -ENOTCONN;
      c.op_.state = detail::OpNode::State::done;
    }
    return false;
  }
  return reg_->submit_many(calls_.data(), calls_.size(), &open_, h, opt_);
}

// Registers the calling thread (see the top of this file). Errors: operation_not_permitted
// when called on a thread that runs another runtime; invalid_argument for options out of
// range; too_many_files_open when the executor's table (4096) or rt's slots are full;
// ESHUTDOWN when the executor has shut down.
Result<std::unique_ptr<Registration>> configure_async_syscall(Runtime& rt, Executor& ex,
                                                              const SyscallOptions& opts = {});

// ---- typed calls ---------------------------------------------------------------------------

namespace detail {

inline std::error_code code_of(std::int64_t r) noexcept { return errno_code(static_cast<int>(-r)); }

template <class T>
struct Convert {
  static Result<T> from(std::int64_t r) {
    if (is_error(r)) return code_of(r);
    if constexpr (std::is_pointer_v<T>) return reinterpret_cast<T>(r);
    else return static_cast<T>(r);
  }
};
template <>
struct Convert<void> {
  static Result<void> from(std::int64_t r) {
    if (is_error(r)) return code_of(r);
    return {};
  }
};

template <class T>
class [[nodiscard]] TypedCall {
 public:
  TypedCall(Registration* reg, long number, const std::array<std::int64_t, 6>& args, CallOptions o) noexcept
      : a_(reg, number, args, o) {}
  bool await_ready() const noexcept { return a_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept { return a_.await_suspend(h); }
  Result<T> await_resume() const { return Convert<T>::from(a_.await_resume()); }

 private:
  SyscallAwaiter a_;
};

// fstat travels as statx(fd, "", AT_EMPTY_PATH): io_uring can run it, and the kernel writes
// into this awaiter, never the executor.
class [[nodiscard]] FstatCall {
 public:
  FstatCall(Registration* reg, int fd, CallOptions o) noexcept;
  bool await_ready() const noexcept { return a_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept;
  Result<struct stat> await_resume() const;

 private:
  SyscallAwaiter a_;
  alignas(8) unsigned char statx_[256];  // struct statx
};

class [[nodiscard]] SleepCall {
 public:
  SleepCall(Registration* reg, std::int64_t ns, CallOptions o) noexcept;
  bool await_ready() const noexcept { return a_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept;
  Result<void> await_resume() const { return Convert<void>::from(a_.await_resume()); }

 private:
  SyscallAwaiter a_;
  std::int64_t ts_[2];  // struct timespec
};

inline std::int64_t p2i(const void* p) noexcept { return static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(p)); }

}  // namespace detail

// Inline, so that a call's request is built straight into its awaiter: the typed calls are
// the per-call hot path.
inline detail::TypedCall<std::size_t> read(int fd, std::span<std::byte> buf, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_read, {fd, detail::p2i(buf.data()), static_cast<std::int64_t>(buf.size()), 0, 0, 0}, o};
}
inline detail::TypedCall<std::size_t> write(int fd, std::span<const std::byte> buf, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_write, {fd, detail::p2i(buf.data()), static_cast<std::int64_t>(buf.size()), 0, 0, 0}, o};
}
inline detail::TypedCall<std::size_t> pread(int fd, std::span<std::byte> buf, off_t offset, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_pread64, {fd, detail::p2i(buf.data()), static_cast<std::int64_t>(buf.size()), offset, 0, 0}, o};
}
inline detail::TypedCall<std::size_t> pwrite(int fd, std::span<const std::byte> buf, off_t offset,
                                             CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_pwrite64, {fd, detail::p2i(buf.data()), static_cast<std::int64_t>(buf.size()), offset, 0, 0}, o};
}
inline detail::TypedCall<int> openat(int dirfd, const char* path, int flags, mode_t mode = 0, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_openat, {dirfd, detail::p2i(path), flags, static_cast<std::int64_t>(mode), 0, 0}, o};
}
inline detail::TypedCall<void> close(int fd, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_close, {fd, 0, 0, 0, 0, 0}, o};
}
detail::FstatCall fstat(int fd, CallOptions o = {}) noexcept;
inline detail::TypedCall<void> fsync(int fd, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_fsync, {fd, 0, 0, 0, 0, 0}, o};
}
inline detail::TypedCall<void> fdatasync(int fd, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_fdatasync, {fd, 0, 0, 0, 0, 0}, o};
}
inline detail::TypedCall<void*> mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t offset,
                                     CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_mmap, {detail::p2i(addr), static_cast<std::int64_t>(len), prot, flags, fd, offset}, o};
}
inline detail::TypedCall<void> munmap(void* addr, std::size_t len, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_munmap, {detail::p2i(addr), static_cast<std::int64_t>(len), 0, 0, 0, 0}, o};
}
inline detail::TypedCall<std::size_t> getdents64(int fd, std::span<std::byte> buf, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_getdents64, {fd, detail::p2i(buf.data()), static_cast<std::int64_t>(buf.size()), 0, 0, 0}, o};
}
detail::SleepCall nanosleep(std::int64_t ns, CallOptions o = {}) noexcept;
inline detail::TypedCall<off_t> lseek(int fd, off_t offset, int whence, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_lseek, {fd, offset, whence, 0, 0, 0}, o};
}
inline detail::TypedCall<std::size_t> recv(int fd, std::span<std::byte> buf, int flags = 0, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_recvfrom, {fd, detail::p2i(buf.data()), static_cast<std::int64_t>(buf.size()), flags, 0, 0}, o};
}
inline detail::TypedCall<std::size_t> send(int fd, std::span<const std::byte> buf, int flags = 0, CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_sendto, {fd, detail::p2i(buf.data()), static_cast<std::int64_t>(buf.size()), flags, 0, 0}, o};
}
inline detail::TypedCall<pid_t> getpid(CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_getpid, {0, 0, 0, 0, 0, 0}, o};
}
inline detail::TypedCall<pid_t> getppid(CallOptions o = {}) noexcept {
  return {Registration::current(), SYS_getppid, {0, 0, 0, 0, 0, 0}, o};
}
// Any call by number; the raw result converted: a value, or the error for -errno.
inline detail::TypedCall<long> call(long number, std::int64_t a0 = 0, std::int64_t a1 = 0, std::int64_t a2 = 0,
                                    std::int64_t a3 = 0, std::int64_t a4 = 0, std::int64_t a5 = 0,
                                    CallOptions o = {}) noexcept {
  return {Registration::current(), number, {a0, a1, a2, a3, a4, a5}, o};
}
// A batch on the calling thread's registration (Registration::call_many); without one, every
// call completes with -ENOTCONN at once.
inline BatchAwaiter call_many(std::span<BatchSyscall> calls, CallOptions o = {}) noexcept {
  return BatchAwaiter(Registration::current(), calls, o);
}

}  // namespace uipc::sys
