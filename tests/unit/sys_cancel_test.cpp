// Cancellation and timeouts (issue 3 §6): a blocked request is really interrupted and completes
// exactly once with ECANCELED / ETIMEDOUT; one that completed first keeps its result.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

#include "uipc/sys/syscall.hpp"

using namespace uipc;
using namespace uipc::sys;

namespace {

std::span<std::byte> bytes(void* p, std::size_t n) { return {static_cast<std::byte*>(p), n}; }
std::int64_t i64(const void* p) { return static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(p)); }

class Cancel : public ::testing::TestWithParam<Placement> {
 protected:
  void SetUp() override {
    ExecutorOptions o;
    o.placement = GetParam();
    ex_ = std::move(Executor::create(o).value());
    reg_ = std::move(configure_async_syscall(rt_, *ex_).value());
    ASSERT_EQ(::pipe(p_), 0);
  }
  void TearDown() override {
    reg_.reset();
    ::close(p_[0]);
    ::close(p_[1]);
  }
  Runtime rt_;
  std::unique_ptr<Executor> ex_;
  std::unique_ptr<Registration> reg_;
  int p_[2];
};

TEST_P(Cancel, TimeoutsInterruptEveryKindOfBlockedCall) {
  rt_.block_on([&]() -> Task<void> {
    CallOptions o;
    o.timeout_ns = 3'000'000;
    char buf[8];
    const auto t0 = Runtime::now_ns();
    EXPECT_EQ((co_await sys::read(p_[0], bytes(buf, sizeof buf), o)).error(), std::errc::timed_out);
    EXPECT_EQ((co_await sys::nanosleep(10'000'000'000, o)).error(), std::errc::timed_out);
    pollfd pf{p_[0], POLLIN, 0};
    EXPECT_EQ((co_await sys::call(SYS_poll, i64(&pf), 1, -1, 0, 0, 0, o)).error(), std::errc::timed_out);
    const int ep = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, p_[0], &ev);
    epoll_event out[4];
    EXPECT_EQ((co_await sys::call(SYS_epoll_wait, ep, i64(out), 4, -1, 0, 0, o)).error(), std::errc::timed_out);
    ::close(ep);
    int s[2];
    ::socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    EXPECT_EQ((co_await sys::recv(s[0], bytes(buf, sizeof buf), 0, o)).error(), std::errc::timed_out);
    // accept4 on a socket that is not listening fails at once with EINVAL: given a generous
    // timeout, so a slow (sanitizer) build cannot turn it into a timeout race.
    CallOptions generous;
    generous.timeout_ns = 2'000'000'000;
    EXPECT_EQ((co_await sys::call(SYS_accept4, s[0], 0, 0, 0, 0, 0, generous)).error(), std::errc::invalid_argument);
    ::close(s[0]);
    ::close(s[1]);
    const auto took = Runtime::now_ns() - t0;
    EXPECT_LT(took, 2'000'000'000u);  // six timeouts of 3 ms, not a 10 s sleep
    // Nothing was consumed by the interrupted read.
    EXPECT_EQ(::write(p_[1], "abc", 3), 3);
    auto r = co_await sys::read(p_[0], bytes(buf, sizeof buf), o);
    EXPECT_TRUE(r && r.value() == 3);
  }());
}

TEST_P(Cancel, ATokenCancelsEveryCallAttachedToIt) {
  CancelToken tok;
  int cancelled = 0, other = 0;
  auto blocked = [&]() -> Task<void> {
    char c;
    CallOptions o;
    o.cancel = &tok;
    auto r = co_await sys::read(p_[0], bytes(&c, 1), o);
    (r.error() == std::errc::operation_canceled ? cancelled : other)++;
  };
  auto sleeper = [&]() -> Task<void> {
    CallOptions o;
    o.cancel = &tok;
    auto r = co_await sys::nanosleep(5'000'000'000, o);
    (r.error() == std::errc::operation_canceled ? cancelled : other)++;
  };
  auto canceller = [&]() -> Task<void> {
    co_await rt_.sleep_for(3'000'000);
    tok.cancel();
  };
  for (int i = 0; i < 6; ++i) rt_.spawn(blocked());
  for (int i = 0; i < 3; ++i) rt_.spawn(sleeper());
  rt_.spawn(canceller());
  rt_.run();
  EXPECT_EQ(cancelled, 9);
  EXPECT_EQ(other, 0);
  EXPECT_TRUE(tok.cancelled());
  // A call made with a token already cancelled fails at once.
  auto r = rt_.block_on([&]() -> Task<Result<pid_t>> {
    CallOptions o;
    o.cancel = &tok;
    co_return co_await sys::getpid(o);
  }());
  EXPECT_EQ(r.error(), std::errc::operation_canceled);
}

TEST_P(Cancel, ACallThatCompletesFirstKeepsItsResult) {
  rt_.block_on([&]() -> Task<void> {
    for (int i = 0; i < 50; ++i) {
      CallOptions o;
      o.timeout_ns = 1'000'000'000;
      auto r = co_await sys::getpid(o);
      EXPECT_TRUE(r && r.value() == ::getpid());
    }
    // A cancellation racing a completion: the data moved, so the read reports it.
    char c;
    EXPECT_EQ(::write(p_[1], "z", 1), 1);
    CallOptions o;
    o.timeout_ns = 0;  // fires at the next scheduling point, after the request went out
    auto r = co_await sys::read(p_[0], bytes(&c, 1), o);
    if (r) EXPECT_EQ(c, 'z');
    else {
      EXPECT_EQ(r.error(), std::errc::timed_out);
      EXPECT_EQ(::read(p_[0], &c, 1), 1);  // then the byte is still there
    }
  }());
}

TEST_P(Cancel, CallsWaitingForASlotCanBeCancelledToo) {
  reg_.reset();
  SyscallOptions so;
  so.capacity = 2;
  reg_ = std::move(configure_async_syscall(rt_, *ex_, so).value());
  CancelToken tok;
  int cancelled = 0;
  auto blocked = [&]() -> Task<void> {
    char c;
    CallOptions o;
    o.cancel = &tok;
    auto r = co_await sys::read(p_[0], bytes(&c, 1), o);
    if (r.error() == std::errc::operation_canceled) ++cancelled;
  };
  auto canceller = [&]() -> Task<void> {
    co_await rt_.sleep_for(2'000'000);
    tok.cancel();
  };
  for (int i = 0; i < 5; ++i) rt_.spawn(blocked());  // two in flight, three waiting for a slot
  rt_.spawn(canceller());
  rt_.run();
  EXPECT_EQ(cancelled, 5);
  EXPECT_GE(reg_->stats().slot_waits, 3u);
}

INSTANTIATE_TEST_SUITE_P(Placements, Cancel, ::testing::Values(Placement::affine, Placement::shared, Placement::local),
                         [](const auto& i) { return std::string(to_string(i.param)); });

}  // namespace
