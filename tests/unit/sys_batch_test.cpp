// call_many (uipc/sys/syscall.hpp): a batch of system calls from one coroutine, resumed once when
// the last has completed. Each call must complete exactly once with the result it would have had
// alone — values, -errno, rights (EPERM), malformed numbers (EINVAL), timeouts, cancellation,
// EAGAIN under fail_when_full, ECANCELED at close, ESHUTDOWN at shutdown — in every wake mode,
// placement and backend.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "uipc/sys/syscall.hpp"
#include "unit/sys_fixtures.hpp"

using namespace uipc;
using namespace uipc::sys;
using uipc::test::Combo;
using uipc::test::combo_options;
using uipc::test::Pipe;

namespace {

std::int64_t i64(const void* p) { return static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(p)); }


class SysBatch : public ::testing::TestWithParam<Combo> {
 protected:
  void SetUp() override {
    if (std::get<2>(GetParam()) == Backend::io_uring && !Executor::io_uring_available())
      GTEST_SKIP() << "io_uring unavailable here";
    ex_ = std::move(Executor::create(combo_options(GetParam())).value());
    open(SyscallOptions{});
    char tmpl[] = "/tmp/uipc-sys-batch-XXXXXX";
    fd_ = ::mkstemp(tmpl);
    path_ = tmpl;
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    reg_.reset();
    if (ex_) EXPECT_EQ(ex_->registrations(), 0u);
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(path_.c_str());
    }
  }
  void open(const SyscallOptions& so) {
    reg_.reset();
    auto r = configure_async_syscall(rt_, *ex_, so);
    ASSERT_TRUE(r) << r.error().message();
    reg_ = std::move(r.value());
  }

  Runtime rt_;
  std::unique_ptr<Executor> ex_;
  std::unique_ptr<Registration> reg_;
  int fd_ = -1;
  std::string path_;
};

// A batch four times the buffer's capacity, mixing values, errors, refused and malformed calls:
// each gets its own result, the coroutine is resumed once, and the counters agree.
TEST_P(SysBatch, EveryCallGetsItsOwnResultAndTheCoroutineResumesOnce) {
  SyscallOptions so;
  so.capacity = 16;
  open(so);
  constexpr int kCalls = 64;
  std::vector<BatchSyscall> calls(kCalls);
  std::vector<std::int64_t> want(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    switch (i % 6) {
      case 0: calls[i].set(SYS_getpid), want[i] = ::getpid(); break;
      case 1: calls[i].set(SYS_getppid), want[i] = ::getppid(); break;
      case 2: calls[i].set(SYS_lseek, fd_, 1000 + i, SEEK_SET), want[i] = 1000 + i; break;  // its own value
      case 3: calls[i].set(SYS_close, -1 - i), want[i] = -EBADF; break;
      case 4: calls[i].set(SYS_kill, ::getpid(), 0), want[i] = -EPERM; break;  // not in the default rights
      case 5: calls[i].set(600 + i), want[i] = -EINVAL; break;                 // malformed: never executed
    }
  }
  const auto before = reg_->stats();
  std::uint64_t resumptions = 0;
  const std::size_t ok = rt_.block_on([&]() -> Task<std::size_t> {
    const std::uint64_t s0 = rt_.counters().switches.get();
    const std::size_t n = co_await reg_->call_many(calls);
    resumptions = rt_.counters().switches.get() - s0;
    co_return n;
  }());
  for (int i = 0; i < kCalls; ++i) EXPECT_EQ(calls[i].result(), want[i]) << "call " << i;
  std::size_t want_ok = 0;
  for (std::int64_t v : want) want_ok += v >= 0 ? 1 : 0;
  EXPECT_EQ(ok, want_ok);
  // One resumption for the batch (one-call-per-coroutine would need 64); a spare for the
  // runtime's own scheduling.
  EXPECT_LE(resumptions, 2u);
  const auto after = reg_->stats();
  EXPECT_EQ(after.completed - before.completed, static_cast<std::uint64_t>(kCalls));
  EXPECT_EQ(after.unmatched, before.unmatched);
  EXPECT_GE(after.slot_waits - before.slot_waits, static_cast<std::uint64_t>(kCalls - 16));
  EXPECT_EQ(reg_->in_flight(), 0u);
}

// The same array again (results overwritten), then set to other calls; and an empty batch.
TEST_P(SysBatch, ABatchCanBeSentAgainAndSetAgain) {
  std::vector<BatchSyscall> calls;
  for (int i = 0; i < 10; ++i) calls.emplace_back(SYS_lseek, fd_, i, SEEK_SET);
  rt_.block_on([&]() -> Task<void> {
    for (int round = 0; round < 3; ++round) {
      EXPECT_EQ(co_await reg_->call_many(calls), calls.size());
      for (int i = 0; i < 10; ++i) EXPECT_EQ(calls[i].result(), i);
    }
    for (auto& c : calls) c.set(SYS_getppid);
    EXPECT_EQ(co_await sys::call_many(calls), calls.size());  // the thread's registration
    for (auto& c : calls) EXPECT_EQ(c.result(), ::getppid());
    EXPECT_EQ(co_await sys::call_many({}), 0u);  // nothing to do: no suspension
    BatchSyscall unset;
    EXPECT_EQ(co_await sys::call_many(std::span<BatchSyscall>(&unset, 1)), 0u);
    EXPECT_EQ(unset.result(), -EINVAL);
  }());
}

// A timeout applies to each call of the batch: the blocked read times out and consumes nothing,
// the quick calls keep their results.
TEST_P(SysBatch, ATimeoutAppliesToEachCall) {
  Pipe p;
  char c = 0;
  std::vector<BatchSyscall> calls;
  calls.emplace_back(SYS_getpid);
  calls.emplace_back(SYS_read, p.r, i64(&c), 1);
  calls.emplace_back(SYS_getppid);
  CallOptions o;
  o.timeout_ns = 30'000'000;  // long enough for the quick calls even on a crowded machine
  const std::size_t ok = rt_.block_on([&]() -> Task<std::size_t> { co_return co_await reg_->call_many(calls, o); }());
  EXPECT_EQ(ok, 2u);
  EXPECT_EQ(calls[0].result(), ::getpid());
  EXPECT_EQ(calls[1].result(), -ETIMEDOUT);
  EXPECT_EQ(calls[2].result(), ::getppid());
  ASSERT_EQ(::write(p.w, "x", 1), 1);
  EXPECT_EQ(::read(p.r, &c, 1), 1);  // the byte was still there
}

// A token cancels the calls of the batch that are still open; completed ones keep their results.
TEST_P(SysBatch, ATokenCancelsTheOpenCalls) {
  Pipe p;
  char c[2];
  std::vector<BatchSyscall> calls;
  calls.emplace_back(SYS_read, p.r, i64(&c[0]), 1);
  calls.emplace_back(SYS_getpid);
  calls.emplace_back(SYS_read, p.r, i64(&c[1]), 1);
  CancelToken tok;
  CallOptions o;
  o.cancel = &tok;
  std::size_t ok = 99;
  auto batch = [&]() -> Task<void> { ok = co_await reg_->call_many(calls, o); };
  auto canceller = [&]() -> Task<void> {
    co_await rt_.sleep_for(3'000'000);
    tok.cancel();
  };
  rt_.spawn(batch());
  rt_.spawn(canceller());
  rt_.run();
  EXPECT_EQ(calls[0].result(), -ECANCELED);
  // Done long before the cancellation, unless the machine stalled us for 3 ms.
  EXPECT_TRUE(calls[1].result() == ::getpid() || calls[1].result() == -ECANCELED) << calls[1].result();
  EXPECT_EQ(calls[2].result(), -ECANCELED);
  EXPECT_EQ(ok, calls[1].ok() ? 1u : 0u);
  // A token already cancelled: nothing is submitted, every call fails at once.
  const auto before = reg_->stats().submitted;
  ok = rt_.block_on([&]() -> Task<std::size_t> { co_return co_await reg_->call_many(calls, o); }());
  EXPECT_EQ(ok, 0u);
  for (auto& b : calls) EXPECT_EQ(b.result(), -ECANCELED);
  EXPECT_EQ(reg_->stats().submitted, before);
}

// fail_when_full: the calls beyond the free slots fail with EAGAIN at once; nothing is dropped.
TEST_P(SysBatch, FailWhenFullFailsTheCallsBeyondTheFreeSlots) {
  SyscallOptions so;
  so.capacity = 4;
  so.fail_when_full = true;
  open(so);
  std::vector<BatchSyscall> calls(10, BatchSyscall(SYS_getppid));
  const std::size_t ok = rt_.block_on([&]() -> Task<std::size_t> { co_return co_await reg_->call_many(calls); }());
  EXPECT_EQ(ok, 4u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(calls[i].result(), i < 4 ? ::getppid() : -EAGAIN) << i;
  EXPECT_EQ(reg_->stats().completed, 10u);
}

// close() with a batch in flight: every call completes exactly once (the blocked reads with
// ECANCELED) and the batch's coroutine resumes.
TEST_P(SysBatch, CloseWithABatchInFlightCompletesEachCallOnce) {
  Pipe p;
  char c[4];
  std::vector<BatchSyscall> calls;
  for (int i = 0; i < 4; ++i) calls.emplace_back(SYS_read, p.r, i64(&c[i]), 1);
  for (int i = 0; i < 4; ++i) calls.emplace_back(SYS_getpid);
  bool resumed = false;
  auto batch = [&]() -> Task<void> {
    co_await reg_->call_many(calls);
    resumed = true;
  };
  auto closer = [&]() -> Task<void> {
    co_await rt_.sleep_for(3'000'000);
    reg_->close();
  };
  rt_.spawn(batch());
  rt_.spawn(closer());
  rt_.run();
  EXPECT_TRUE(resumed);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(calls[i].result(), -ECANCELED) << i;
  for (int i = 4; i < 8; ++i)
    EXPECT_TRUE(calls[i].result() == ::getpid() || calls[i].result() == -ECANCELED) << calls[i].result();
  EXPECT_EQ(reg_->stats().completed, 8u);
  // After close: at once, ECANCELED.
  const std::size_t ok = rt_.block_on([&]() -> Task<std::size_t> { co_return co_await reg_->call_many(calls); }());
  EXPECT_EQ(ok, 0u);
  for (auto& b : calls) EXPECT_EQ(b.result(), -ECANCELED);
}

// The executor shuts down under a batch: the blocked reads complete with ESHUTDOWN, once.
TEST_P(SysBatch, ShutdownCompletesTheBatch) {
  Pipe p;
  char c[3];
  std::vector<BatchSyscall> calls;
  for (int i = 0; i < 3; ++i) calls.emplace_back(SYS_read, p.r, i64(&c[i]), 1);
  calls.emplace_back(SYS_getpid);
  std::size_t ok = 99;
  auto batch = [&]() -> Task<void> { ok = co_await reg_->call_many(calls); };
  auto stopper = [&]() -> Task<void> {
    co_await rt_.sleep_for(3'000'000);
    ex_->shutdown();
  };
  rt_.spawn(batch());
  rt_.spawn(stopper());
  rt_.run();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(calls[i].result(), -ESHUTDOWN) << i;
  EXPECT_TRUE(calls[3].result() == ::getpid() || calls[3].result() == -ESHUTDOWN);
  EXPECT_EQ(ok, calls[3].ok() ? 1u : 0u);
  EXPECT_EQ(reg_->stats().completed, 4u);
  EXPECT_EQ(reg_->in_flight(), 0u);
}

INSTANTIATE_TEST_SUITE_P(AllModes, SysBatch,
                         ::testing::Combine(::testing::Values(WakeMode::hybrid, WakeMode::irq, WakeMode::tick),
                                            ::testing::Values(Placement::affine, Placement::shared, Placement::local),
                                            ::testing::Values(Backend::direct, Backend::io_uring)),
                         [](const auto& i) {
                           return std::string(to_string(std::get<0>(i.param))) + "_" +
                                  to_string(std::get<1>(i.param)) + "_" + to_string(std::get<2>(i.param));
                         });

// Without a registration every call fails with ENOTCONN; from a thread that does not own the
// registration, with EPERM. Neither suspends.
TEST(SysBatchErrors, NoRegistrationAndAnotherThreadsRegistration) {
  Runtime rt;
  std::vector<BatchSyscall> calls(3, BatchSyscall(SYS_getpid));
  EXPECT_EQ(rt.block_on([&]() -> Task<std::size_t> { co_return co_await sys::call_many(calls); }()), 0u);
  for (auto& c : calls) EXPECT_EQ(c.result(), -ENOTCONN);

  auto ex = std::move(Executor::create({}).value());
  auto reg = std::move(configure_async_syscall(rt, *ex).value());
  std::size_t from_other = 99;
  std::thread t([&] {
    Runtime rt2;
    from_other = rt2.block_on([&]() -> Task<std::size_t> { co_return co_await reg->call_many(calls); }());
  });
  t.join();
  EXPECT_EQ(from_other, 0u);
  for (auto& c : calls) EXPECT_EQ(c.result(), -EPERM);
  EXPECT_EQ(rt.block_on([&]() -> Task<std::size_t> { co_return co_await reg->call_many(calls); }()), 3u);
  for (auto& c : calls) EXPECT_EQ(c.result(), ::getpid());
}

}  // namespace
