// At least one million mixed asynchronous system calls (scaled down under sanitizers and in
// debug builds; UIPC_STRESS_CALLS overrides), from two registered threads at once, with
// cancellations and timeouts racing completions, checking that every call completes exactly
// once with the right result; the same for call_many batches mixed with single calls.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "stress/stress_common.hpp"
#include "uipc/sys/syscall.hpp"

using namespace uipc;
using namespace uipc::sys;

namespace {

using uipc::test::mix;

std::span<std::byte> bytes(void* p, std::size_t n) { return {static_cast<std::byte*>(p), n}; }
std::span<const std::byte> cbytes(const void* p, std::size_t n) { return {static_cast<const std::byte*>(p), n}; }

struct Tally {
  std::atomic<std::uint64_t> issued{0}, completed{0}, wrong{0}, timed_out{0};
};

// One registered thread: `workers` coroutines issuing `calls` calls between them.
void caller(Executor& ex, std::uint64_t calls, unsigned workers, int file_fd, const std::vector<char>& content,
            Tally& t, std::uint64_t seed) {
  Runtime rt;
  SyscallOptions so;
  so.capacity = 64;  // fewer slots than some bursts: slot waits are part of the mix
  auto reg = std::move(configure_async_syscall(rt, ex, so).value());
  const int devnull = ::open("/dev/null", O_WRONLY);
  int p[2], q[2];  // p: round trips; q: always empty, for reads that must time out
  if (::pipe(p) != 0 || ::pipe(q) != 0) std::abort();
  const std::uint64_t per = calls / workers;
  auto worker = [&](unsigned w) -> Task<void> {
    std::uint64_t rng = seed * 1000 + w;
    char buf[512];
    for (std::uint64_t i = 0; i < per;) {
      rng = mix(rng + 0x9e3779b97f4a7c15ull);
      const unsigned kind = static_cast<unsigned>(rng % 100);
      bool ok = true;
      unsigned n = 1;
      if (kind < 35) {
        auto r = co_await sys::getppid();
        ok = r && r.value() == ::getppid();
      } else if (kind < 60) {
        const off_t off = static_cast<off_t>((rng >> 8) % (content.size() - sizeof buf));
        auto r = co_await sys::pread(file_fd, bytes(buf, sizeof buf), off);
        ok = r && r.value() == sizeof buf && std::memcmp(buf, content.data() + off, sizeof buf) == 0;
      } else if (kind < 72) {
        auto r = co_await sys::write(devnull, cbytes(buf, 64));
        ok = r && r.value() == 64;
      } else if (kind < 80) {
        auto r = co_await sys::fstat(file_fd);
        ok = r && r.value().st_size == static_cast<off_t>(content.size());
      } else if (kind < 86) {
        // a pipe round trip: the write and the read both go through the executor
        const char v = static_cast<char>(rng >> 16);
        auto wr = co_await sys::write(p[1], cbytes(&v, 1));
        char back = 0;
        auto rd = co_await sys::read(p[0], bytes(&back, 1));
        ok = wr && rd && rd.value() == 1;
        n = 2;
      } else if (kind < 92) {
        // a cancellation racing a completion: either outcome, exactly once
        CallOptions o;
        o.timeout_ns = static_cast<std::int64_t>((rng >> 20) % 3) * 1000;
        auto r = co_await sys::getpid(o);
        ok = (r && r.value() == ::getpid()) || r.error() == std::errc::timed_out;
        if (!r) t.timed_out.fetch_add(1, std::memory_order_relaxed);
      } else if (kind < 97) {
        auto r = co_await sys::call(SYS_lseek, file_fd, 0, SEEK_CUR);
        ok = static_cast<bool>(r);
      } else if (kind < 99) {
        auto r = co_await sys::nanosleep(static_cast<std::int64_t>((rng >> 24) % 20'000));
        ok = static_cast<bool>(r);
      } else {
        // a read that blocks (the pipe is empty between round trips) and times out
        CallOptions o;
        o.timeout_ns = 200'000;
        char c;
        auto r = co_await sys::call(SYS_read, -1, 0, 0, 0, 0, 0);  // EBADF fast path first
        ok = r.error() == std::errc::bad_file_descriptor;
        auto rb = co_await sys::read(q[0], bytes(&c, 1), o);
        ok = ok && rb.error() == std::errc::timed_out;
        if (!rb) t.timed_out.fetch_add(1, std::memory_order_relaxed);
        n = 2;
      }
      i += n;
      t.issued.fetch_add(n, std::memory_order_relaxed);
      t.completed.fetch_add(n, std::memory_order_relaxed);
      if (!ok) t.wrong.fetch_add(1, std::memory_order_relaxed);
    }
  };
  for (unsigned w = 0; w < workers; ++w) rt.spawn(worker(w));
  rt.run();
  const RegistrationStats st = reg->stats();
  EXPECT_EQ(st.unmatched, 0u);
  EXPECT_EQ(st.submitted, st.completed);  // nothing failed before reaching the buffer here
  EXPECT_EQ(reg->in_flight(), 0u);
  ::close(devnull);
  for (int fd : {p[0], p[1], q[0], q[1]}) ::close(fd);
}

void run_stress(const ExecutorOptions& o) {
  auto ex = std::move(Executor::create(o).value());
  char tmpl[] = "/tmp/uipc-sys-stress-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  std::vector<char> content(256 * 1024);
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(mix(i));
  ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  Tally t;
  const std::uint64_t total = uipc::test::stress_calls(1'000'000, 60'000);
  std::thread a([&] { caller(*ex, total / 2, 48, fd, content, t, 1); });
  std::thread b([&] { caller(*ex, total / 2, 48, fd, content, t, 2); });
  a.join();
  b.join();
  EXPECT_EQ(t.wrong.load(), 0u);
  EXPECT_EQ(t.completed.load(), t.issued.load());
  EXPECT_GE(t.completed.load(), total - 2 * 48);
  EXPECT_EQ(ex->registrations(), 0u);
  ::close(fd);
  ::unlink(tmpl);
}

// call_many batches (1 to 96 calls, some larger than the 64 slots, some with a timeout racing
// their completions) from half the coroutines, single calls from the other half, on one
// registration: every call of every batch completes exactly once with its own result.
void batch_caller(Executor& ex, std::uint64_t calls, unsigned workers, int file_fd, Tally& t, std::uint64_t seed) {
  Runtime rt;
  SyscallOptions so;
  so.capacity = 64;
  auto reg = std::move(configure_async_syscall(rt, ex, so).value());
  const std::uint64_t per = calls / workers;
  const pid_t ppid = ::getppid(), pid = ::getpid();
  std::uint64_t mine = 0;  // calls issued on this registration
  auto batcher = [&](unsigned w) -> Task<void> {
    std::uint64_t rng = seed * 1000 + w;
    std::vector<BatchSyscall> b(96);
    std::vector<std::int64_t> want(96);
    for (std::uint64_t i = 0; i < per;) {
      rng = mix(rng + 0x9e3779b97f4a7c15ull);
      const std::size_t n = 1 + rng % 96;
      for (std::size_t k = 0; k < n; ++k) {
        const std::uint64_t r = mix(rng + k);
        switch (r % 4) {
          case 0: b[k].set(SYS_getppid), want[k] = ppid; break;
          case 1: b[k].set(SYS_lseek, file_fd, static_cast<std::int64_t>(r % 4096), SEEK_SET), want[k] = r % 4096; break;
          case 2: b[k].set(SYS_close, -1), want[k] = -EBADF; break;
          default: b[k].set(SYS_getpid), want[k] = pid; break;
        }
      }
      CallOptions o;
      const bool timed = (rng >> 40) % 8 == 0;
      if (timed) o.timeout_ns = static_cast<std::int64_t>((rng >> 20) % 3) * 1000;
      const std::size_t ok = co_await reg->call_many(std::span<BatchSyscall>(b.data(), n), o);
      std::size_t good = 0;
      bool right = true;
      for (std::size_t k = 0; k < n; ++k) {
        const std::int64_t r = b[k].result();
        if (r == want[k]) good += r >= 0 ? 1 : 0;
        else if (!(timed && r == -ETIMEDOUT)) right = false;
        if (timed && r == -ETIMEDOUT) t.timed_out.fetch_add(1, std::memory_order_relaxed);
      }
      if (!right || ok != good) t.wrong.fetch_add(1, std::memory_order_relaxed);
      i += n;
      mine += n;
      t.issued.fetch_add(n, std::memory_order_relaxed);
      t.completed.fetch_add(n, std::memory_order_relaxed);
    }
  };
  auto single = [&]() -> Task<void> {
    for (std::uint64_t i = 0; i < per; ++i) {
      auto r = co_await sys::getppid();
      if (!r || r.value() != ppid) t.wrong.fetch_add(1, std::memory_order_relaxed);
      ++mine;
      t.issued.fetch_add(1, std::memory_order_relaxed);
      t.completed.fetch_add(1, std::memory_order_relaxed);
    }
  };
  for (unsigned w = 0; w < workers; ++w) {
    if (w % 2 == 0) rt.spawn(batcher(w));
    else rt.spawn(single());
  }
  rt.run();
  const RegistrationStats st = reg->stats();
  EXPECT_EQ(st.unmatched, 0u);
  EXPECT_EQ(st.completed, mine);  // each call once, none lost, none twice
  // Calls that timed out while waiting for a slot complete without being submitted.
  EXPECT_LE(st.submitted, st.completed);
  EXPECT_EQ(reg->in_flight(), 0u);
}

}  // namespace

TEST(SysStress, BatchesAndSingleCallsSharedPlacementEachCompletedOnce) {
  ExecutorOptions o;
  o.placement = Placement::shared;  // the callers execute their share too: completions race
  o.wake = WakeMode::hybrid;
  auto ex = std::move(Executor::create(o).value());
  char tmpl[] = "/tmp/uipc-sys-stress-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  Tally t;
  const std::uint64_t total = uipc::test::stress_calls(1'000'000, 60'000);
  std::thread a([&] { batch_caller(*ex, total / 2, 8, fd, t, 1); });
  std::thread b([&] { batch_caller(*ex, total / 2, 8, fd, t, 2); });
  a.join();
  b.join();
  EXPECT_EQ(t.wrong.load(), 0u);
  EXPECT_EQ(t.completed.load(), t.issued.load());
  EXPECT_GE(t.completed.load(), total - 2 * 8 * 96);
  EXPECT_EQ(ex->registrations(), 0u);
  ::close(fd);
  ::unlink(tmpl);
}

TEST(SysStress, MillionMixedCallsSharedPlacementEachCompletedOnce) {
  ExecutorOptions o;
  o.placement = Placement::shared;  // a kernel core and both callers race for the buffers' claims
  o.wake = WakeMode::hybrid;
  run_stress(o);
}

TEST(SysStress, MillionMixedCallsAffineIrqDirect) {
  ExecutorOptions o;
  o.placement = Placement::affine;
  o.wake = WakeMode::irq;
  o.backend = Backend::direct;
  o.cores = 2;
  run_stress(o);
}

// Local placement with io_uring: the callers' preads and writes go straight from the awaiter to
// their own io_uring (the direct path), pipe round trips and blocked reads are demoted to the
// ring way; every call still completes exactly once with the right result.
TEST(SysStress, MillionMixedCallsLocalIrqUringDirectPath) {
  if (!Executor::io_uring_available()) GTEST_SKIP() << "io_uring unavailable here";
  ExecutorOptions o;
  o.placement = Placement::local;
  o.wake = WakeMode::irq;
  o.backend = Backend::io_uring;
  run_stress(o);
}
