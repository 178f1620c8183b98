// Rights and malformed requests (issue 3 §5 and "Bad input"): allow-lists, hard-denied calls,
// unknown numbers, bad ids and flags written straight into the buffer, pointers the kernel
// rejects. Each gets a clear error; the executor carries on serving.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uipc/sys/syscall.hpp"

using namespace uipc;
using namespace uipc::sys;

namespace {

std::int64_t i64(const void* p) { return static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(p)); }

struct Env {
  std::unique_ptr<Executor> ex;
  Runtime rt;
  std::unique_ptr<Registration> reg;
  explicit Env(SyscallOptions so = {}, Placement p = Placement::affine) {
    ExecutorOptions o;
    o.placement = p;
    ex = std::move(Executor::create(o).value());
    reg = std::move(configure_async_syscall(rt, *ex, so).value());
  }
  std::int64_t raw(long n, std::int64_t a0 = 0, std::int64_t a1 = 0, std::int64_t a2 = 0) {
    return rt.block_on([&]() -> Task<std::int64_t> { co_return co_await reg->call_raw(n, a0, a1, a2); }());
  }
  // Publishes `rq` as is and waits until its completion has been seen (as unmatched).
  sys::abi::SyscallCompletion raw_entry(const sys::abi::SyscallRequest& rq) {
    const auto before = reg->stats().unmatched;
    EXPECT_TRUE(reg->submit_raw(rq));
    rt.block_on([&]() -> Task<void> {
      for (int i = 0; i < 100000 && reg->stats().unmatched == before; ++i) co_await rt.sleep_for(10'000);
    }());
    EXPECT_EQ(reg->stats().unmatched, before + 1);
    return reg->last_unmatched();
  }
};

TEST(SysRights, DefaultSetAllowsTheDocumentedCallsAndRefusesTheRest) {
  const AllowList d = AllowList::safe_default();
  for (long n : {SYS_read, SYS_write, SYS_pread64, SYS_openat, SYS_close, SYS_fstat, SYS_statx, SYS_mmap, SYS_munmap,
                 SYS_getdents64, SYS_nanosleep, SYS_getppid, SYS_fsync, SYS_poll, SYS_wait4})
    EXPECT_TRUE(d.allows(n)) << n;
  for (long n : {SYS_kill, SYS_tgkill, SYS_ptrace, SYS_setuid, SYS_brk, SYS_rt_sigprocmask, SYS_prctl, SYS_futex,
                 SYS_exit, SYS_exit_group, SYS_execve, SYS_clone, SYS_fork, SYS_reboot, SYS_mremap})
    EXPECT_FALSE(d.allows(n)) << n;
  EXPECT_FALSE(AllowList::everything().allows(SYS_exit_group));  // hard-denied whatever the list
  EXPECT_FALSE(AllowList::everything().allows(SYS_clone3));
  EXPECT_TRUE(AllowList::everything().allows(SYS_kill));
  EXPECT_FALSE(d.allows(-1));
  EXPECT_FALSE(d.allows(512));
}

TEST(SysRights, RefusedCallsCompleteWithEpermAndAreNeverExecuted) {
  SyscallOptions so;
  so.allow = AllowList{SYS_getpid};
  Env e(so);
  EXPECT_EQ(e.raw(SYS_getpid), ::getpid());
  EXPECT_EQ(e.raw(SYS_getppid), -EPERM);
  EXPECT_EQ(e.raw(SYS_exit_group, 3), -EPERM);  // the test process is still here
  EXPECT_EQ(e.raw(SYS_exit, 0), -EPERM);
  EXPECT_EQ(e.ex->core_stats()[0].rejected, 3u);
  // An allow-list with everything still refuses the hard-denied calls.
  SyscallOptions all;
  all.allow = AllowList::everything();
  Env f(all);
  EXPECT_EQ(f.raw(SYS_exit_group, 3), -EPERM);
  EXPECT_EQ(f.raw(SYS_kill, ::getpid(), 0), 0);  // signal 0: a permission probe
}

TEST(SysRights, UnknownNumbersAreMalformed) {
  Env e;
  EXPECT_EQ(e.raw(512), -EINVAL);
  EXPECT_EQ(e.raw(100000), -EINVAL);
  EXPECT_EQ(e.raw(-1), -EINVAL);
  SyscallOptions all;
  all.allow = AllowList::everything();
  Env f(all);
  EXPECT_EQ(f.raw(500), -ENOSYS);  // in range, allowed, but not a system call: the kernel says so
}

TEST(SysRights, MalformedEntriesWrittenStraightIntoTheBufferGetEinval) {
  for (Placement p : {Placement::affine, Placement::local}) {
    Env e({}, p);
    sys::abi::SyscallRequest rq{};
    rq.number = SYS_getpid;
    rq.id = sys::abi::make_id(100000, 1);  // index beyond the capacity
    auto c = e.raw_entry(rq);
    EXPECT_EQ(c.id, rq.id);
    EXPECT_EQ(c.result, -EINVAL);
    rq.id = sys::abi::make_id(3, 0);  // generation 0 is never issued
    c = e.raw_entry(rq);
    EXPECT_EQ(c.result, -EINVAL);
    rq.id = sys::abi::make_id(3, 77);
    rq.flags = 0x80;  // unknown flag
    c = e.raw_entry(rq);
    EXPECT_EQ(c.id, rq.id);
    EXPECT_EQ(c.result, -EINVAL);
    rq.flags = 0;
    rq.number = 9999;
    c = e.raw_entry(rq);
    EXPECT_EQ(c.result, -EINVAL);
    // A well-formed entry whose id names no call of ours: executed, then reported unmatched.
    rq.number = SYS_getpid;
    c = e.raw_entry(rq);
    EXPECT_EQ(c.result, ::getpid());
    // A cancellation of something that does not exist: ignored, no completion.
    sys::abi::SyscallRequest cancel{};
    cancel.flags = sys::abi::kCancel;
    cancel.args[0] = static_cast<std::int64_t>(sys::abi::make_id(5, 5));
    cancel.args[1] = 12345;
    EXPECT_TRUE(e.reg->submit_raw(cancel));
    // The executor carries on.
    EXPECT_EQ(e.raw(SYS_getppid), ::getppid());
    EXPECT_EQ(e.reg->stats().unmatched, 5u);
  }
}

TEST(SysRights, PointersTheKernelRejectsGiveEfault) {
  for (Backend b : {Backend::direct, Backend::io_uring}) {
    if (b == Backend::io_uring && !Executor::io_uring_available()) continue;
    ExecutorOptions o;
    o.backend = b;
    auto ex = std::move(Executor::create(o).value());
    Runtime rt;
    auto reg = std::move(configure_async_syscall(rt, *ex).value());
    const int fd = ::open("/proc/self/exe", O_RDONLY);
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    ASSERT_EQ(::write(p[1], "x", 1), 1);
    rt.block_on([&]() -> Task<void> {
      auto bad = reinterpret_cast<std::byte*>(16);
      EXPECT_EQ((co_await sys::pread(fd, {bad, 100}, 0)).error(), std::errc::bad_address);
      EXPECT_EQ((co_await sys::read(fd, {bad, 100})).error(), std::errc::bad_address);
      EXPECT_EQ((co_await sys::read(p[0], {bad, 1})).error(), std::errc::bad_address);  // pipe path
      EXPECT_EQ((co_await sys::openat(AT_FDCWD, reinterpret_cast<const char*>(16), O_RDONLY)).error(),
                std::errc::bad_address);
      EXPECT_EQ((co_await sys::call(SYS_fstat, fd, 16)).error(), std::errc::bad_address);
      EXPECT_EQ((co_await sys::call(SYS_statx, fd, i64(""), AT_EMPTY_PATH, 0x7ff, 16)).error(),
                std::errc::bad_address);
      EXPECT_EQ((co_await sys::call(SYS_poll, 16, 2, 10)).error(), std::errc::bad_address);
      EXPECT_EQ((co_await sys::call(SYS_nanosleep, 16, 0)).error(), std::errc::bad_address);
      EXPECT_EQ((co_await sys::call(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, 16, 0)).error(), std::errc::bad_address);
      EXPECT_EQ((co_await sys::call(SYS_wait4, -1, 16, 0, 0)).error(), std::errc::no_child_process);
      EXPECT_EQ((co_await sys::getppid()).value(), ::getppid());  // still serving
    }());
    ::close(fd);
    ::close(p[0]);
    ::close(p[1]);
  }
}

}  // namespace
