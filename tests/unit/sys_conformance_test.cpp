// One conformance suite, run for every wake mode × placement × backend (issue 3 §7): typed
// calls against their synchronous twins, many calls in flight, a blocking call that must not
// delay the others, a timeout on a blocked read, rights, and a clean deregistration.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
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

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__OPTIMIZE__)
constexpr int kScale = 4;  // sanitizer and debug builds: a quarter of the work
#else
constexpr int kScale = 1;
#endif

std::span<std::byte> bytes(void* p, std::size_t n) { return {static_cast<std::byte*>(p), n}; }
std::span<const std::byte> cbytes(const void* p, std::size_t n) { return {static_cast<const std::byte*>(p), n}; }

struct TempFile {
  std::string path;
  int fd = -1;
  explicit TempFile(std::size_t size) {
    char tmpl[] = "/tmp/uipc-sys-XXXXXX";
    fd = ::mkstemp(tmpl);
    path = tmpl;
    std::vector<char> data(size);
    for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>('a' + i % 26);
    if (::write(fd, data.data(), size) != static_cast<ssize_t>(size)) std::abort();
  }
  ~TempFile() {
    ::close(fd);
    ::unlink(path.c_str());
  }
};

class Conformance : public ::testing::TestWithParam<Combo> {
 protected:
  void SetUp() override {
    if (std::get<2>(GetParam()) == Backend::io_uring && !Executor::io_uring_available())
      GTEST_SKIP() << "io_uring unavailable here";
    auto ex = Executor::create(combo_options(GetParam()));
    ASSERT_TRUE(ex) << ex.error().message();
    ex_ = std::move(ex.value());
    auto r = configure_async_syscall(rt_, *ex_, {});
    ASSERT_TRUE(r) << r.error().message();
    reg_ = std::move(r.value());
  }
  void TearDown() override {
    reg_.reset();
    if (ex_) EXPECT_EQ(ex_->registrations(), 0u);
  }
  template <class T>
  T run(Task<T> t) {
    return rt_.block_on(std::move(t));
  }

  Runtime rt_;
  std::unique_ptr<Executor> ex_;
  std::unique_ptr<Registration> reg_;
};

TEST_P(Conformance, TypedCallsMatchTheirSynchronousTwins) {
  TempFile f(10000);
  run([&]() -> Task<void> {
    // pread vs ::pread
    char a[4096], b[4096];
    auto n = co_await sys::pread(f.fd, bytes(a, sizeof a), 100);
    EXPECT_TRUE(n) << n.error().message();
    EXPECT_EQ(::pread(f.fd, b, sizeof b, 100), static_cast<ssize_t>(n ? n.value() : 0));
    EXPECT_EQ(std::memcmp(a, b, sizeof a), 0);
    // pwrite, read back synchronously
    const char msg[] = "hello, kernel";
    auto w = co_await sys::pwrite(f.fd, cbytes(msg, sizeof msg), 5000);
    EXPECT_TRUE(w && w.value() == sizeof msg);
    char back[sizeof msg];
    EXPECT_EQ(::pread(f.fd, back, sizeof back, 5000), static_cast<ssize_t>(sizeof back));
    EXPECT_EQ(std::memcmp(back, msg, sizeof msg), 0);
    // openat + fstat vs ::fstat + read at the file position + close
    auto fd = co_await sys::openat(AT_FDCWD, f.path.c_str(), O_RDONLY);
    EXPECT_TRUE(fd) << fd.error().message();
    if (!fd) co_return;
    auto st = co_await sys::fstat(fd.value());
    struct stat sb {};
    ::fstat(fd.value(), &sb);
    EXPECT_TRUE(st);
    if (st) {
      EXPECT_EQ(st.value().st_ino, sb.st_ino);
      EXPECT_EQ(st.value().st_size, sb.st_size);
      EXPECT_EQ(st.value().st_mode, sb.st_mode);
      EXPECT_EQ(st.value().st_dev, sb.st_dev);
    }
    auto r1 = co_await sys::read(fd.value(), bytes(a, 10));
    auto r2 = co_await sys::read(fd.value(), bytes(a + 10, 10));
    EXPECT_TRUE(r1 && r2 && r1.value() == 10 && r2.value() == 10);
    EXPECT_EQ(std::memcmp(a, "abcdefghijklmnopqrst", 20), 0);
    EXPECT_EQ(::lseek(fd.value(), 0, SEEK_CUR), 20);
    EXPECT_TRUE(co_await sys::fsync(f.fd));
    EXPECT_TRUE(co_await sys::close(fd.value()));
    auto bad = co_await sys::close(fd.value());
    EXPECT_EQ(bad.error(), std::errc::bad_file_descriptor);
    // mmap + munmap
    auto m = co_await sys::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_TRUE(m);
    if (m) {
      static_cast<char*>(m.value())[100] = 7;
      EXPECT_TRUE(co_await sys::munmap(m.value(), 4096));
    }
    // identity
    auto pp = co_await sys::getppid();
    EXPECT_TRUE(pp && pp.value() == ::getppid());
    auto tid = co_await sys::call(SYS_gettid);
    EXPECT_TRUE(tid && tid.value() == ::gettid());  // the registered thread's id, not the executor's
    // errors come back as error codes
    auto enoent = co_await sys::openat(AT_FDCWD, "/nonexistent/uipc", O_RDONLY);
    EXPECT_EQ(enoent.error(), std::errc::no_such_file_or_directory);
    auto efault = co_await sys::pread(f.fd, bytes(reinterpret_cast<void*>(8), 100), 0);
    EXPECT_EQ(efault.error(), std::errc::bad_address);
  }());
}

TEST_P(Conformance, ManyCallsInFlightEachGetsItsOwnResult) {
  TempFile f(64 * 1024);
  const int per = 200 / kScale;
  int ok = 0, bad = 0;
  auto worker = [&](int w) -> Task<void> {
    char buf[64];
    for (int i = 0; i < per; ++i) {
      const off_t off = ((w * 131 + i * 17) % 1000) * 64;
      auto r = co_await sys::pread(f.fd, bytes(buf, sizeof buf), off);
      bool good = r && r.value() == sizeof buf;
      for (std::size_t k = 0; good && k < sizeof buf; ++k) good = buf[k] == static_cast<char>('a' + (off + k) % 26);
      auto p = co_await sys::getppid();
      good = good && p && p.value() == ::getppid();
      (good ? ok : bad)++;
    }
  };
  for (int w = 0; w < 64; ++w) rt_.spawn(worker(w));
  rt_.run();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(ok, 64 * per);
  EXPECT_EQ(reg_->in_flight(), 0u);
}

// More calls queued than one claim takes (max_batch): every call still completes. Local irq
// once ran only the first claim's worth at each flush and then spun for ever, neither running
// the rest nor sleeping on them; a watchdog turns such a hang into a failure.
TEST_P(Conformance, MoreCallsQueuedThanOneClaimTakesAllComplete) {
  reg_.reset();
  ex_.reset();
  ExecutorOptions o = combo_options(GetParam());
  o.max_batch = 4;
  auto ex = Executor::create(o);
  ASSERT_TRUE(ex) << ex.error().message();
  ex_ = std::move(ex.value());
  SyscallOptions so;
  so.capacity = 64;
  auto r = configure_async_syscall(rt_, *ex_, so);
  ASSERT_TRUE(r) << r.error().message();
  reg_ = std::move(r.value());

  std::promise<void> finished;
  std::thread watchdog([f = finished.get_future()]() mutable {
    if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      std::fprintf(stderr, "MoreCallsQueuedThanOneClaimTakesAllComplete: calls still open after 60 s\n");
      std::abort();
    }
  });
  const int per = 50 / kScale;
  int ok = 0, bad = 0;
  auto worker = [&]() -> Task<void> {
    for (int i = 0; i < per; ++i) {
      auto p = co_await sys::getppid();
      (p && p.value() == ::getppid() ? ok : bad)++;
    }
  };
  for (int w = 0; w < 64; ++w) rt_.spawn(worker());
  rt_.run();
  finished.set_value();
  watchdog.join();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(ok, 64 * per);
  EXPECT_EQ(reg_->in_flight(), 0u);
}

TEST_P(Conformance, ABlockedCallDoesNotDelayTheOthers) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  bool read_done = false;
  int others_done_before_read = 0;
  char got[8] = {};
  // Named lambdas: a coroutine lambda's captures live in the lambda object, which must outlive it.
  auto reader = [&]() -> Task<void> {
    auto r = co_await sys::read(p[0], bytes(got, 5));  // blocks in the pool until the write
    EXPECT_TRUE(r && r.value() == 5) << (r ? "short" : r.error().message());
    read_done = true;
  };
  auto others = [&]() -> Task<void> {
    for (int i = 0; i < 100 / kScale; ++i) {
      auto r = co_await sys::getpid();
      EXPECT_TRUE(r);
      if (!read_done) ++others_done_before_read;
    }
    auto w = co_await sys::write(p[1], cbytes("world", 5));
    EXPECT_TRUE(w && w.value() == 5);
  };
  rt_.spawn(reader());
  rt_.spawn(others());
  rt_.run();
  EXPECT_TRUE(read_done);
  EXPECT_EQ(others_done_before_read, 100 / kScale);
  EXPECT_EQ(std::memcmp(got, "world", 5), 0);
  ::close(p[0]);
  ::close(p[1]);
}

TEST_P(Conformance, BlockedReadTimesOutAndConsumesNothing) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  run([&]() -> Task<void> {
    char buf[4];
    CallOptions o;
    o.timeout_ns = 5'000'000;
    auto r = co_await sys::read(p[0], bytes(buf, sizeof buf), o);
    EXPECT_EQ(r.error(), std::errc::timed_out);
    EXPECT_EQ(::write(p[1], "abcd", 4), 4);
    auto r2 = co_await sys::read(p[0], bytes(buf, sizeof buf));
    EXPECT_TRUE(r2 && r2.value() == 4);
    EXPECT_EQ(std::memcmp(buf, "abcd", 4), 0);
    // sockets too, cancelled through a token
    int s[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    CancelToken tok;
    CallOptions c;
    c.cancel = &tok;
    uipc::Runtime& rt = *uipc::Runtime::current();
    auto canceller = [&]() -> Task<void> {
      co_await rt.sleep_for(2'000'000);
      tok.cancel();
    };
    rt.spawn(canceller());
    auto rr = co_await sys::recv(s[0], bytes(buf, sizeof buf), 0, c);
    EXPECT_EQ(rr.error(), std::errc::operation_canceled);
    ::close(s[0]);
    ::close(s[1]);
  }());
  ::close(p[0]);
  ::close(p[1]);
}

// A write to a pipe larger than the pipe holds: the first attempt moves part of it (RWF_NOWAIT),
// the rest continues where it may wait (local placement with io_uring: a direct call demoted to
// the ring way with the bytes it moved), and the caller sees one result with every byte.
TEST_P(Conformance, APipeWriteLargerThanThePipeMovesEveryByte) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const std::size_t size = 256 * 1024 / static_cast<std::size_t>(kScale);
  std::vector<char> out(size), in(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(i * 7 + i / 251);
  std::size_t got = 0;
  bool write_ok = false;
  auto writer = [&]() -> Task<void> {
    auto w = co_await sys::write(p[1], cbytes(out.data(), size));
    EXPECT_TRUE(w) << w.error().message();
    write_ok = w && w.value() == size;
  };
  auto reader = [&]() -> Task<void> {
    while (got < size) {
      auto r = co_await sys::read(p[0], bytes(in.data() + got, std::min<std::size_t>(size - got, 10000)));
      EXPECT_TRUE(r && r.value() > 0) << (r ? "end of file" : r.error().message());
      if (!r || r.value() == 0) co_return;
      got += r.value();
    }
  };
  rt_.spawn(writer());
  rt_.spawn(reader());
  rt_.run();
  EXPECT_TRUE(write_ok);
  EXPECT_EQ(got, size);
  EXPECT_EQ(std::memcmp(in.data(), out.data(), size), 0);
  EXPECT_EQ(reg_->in_flight(), 0u);
  ::close(p[0]);
  ::close(p[1]);
}

// Deregistration in the same batch as the submissions (local placement with io_uring: direct
// calls still unsubmitted): each call completes exactly once, with its result or
// operation_canceled, and a successful read has the file's bytes.
TEST_P(Conformance, CloseRightAfterSubmittingCompletesEachCallOnce) {
  TempFile f(64 * 1024);
  constexpr int kCalls = 32;
  int done = 0, ok = 0, cancelled = 0, wrong = 0;
  auto one = [&](int i) -> Task<void> {
    char buf[128];
    const off_t off = i * 1000;
    auto r = co_await sys::pread(f.fd, bytes(buf, sizeof buf), off);
    ++done;
    if (r) {
      bool good = r.value() == sizeof buf;
      for (std::size_t k = 0; good && k < sizeof buf; ++k) good = buf[k] == static_cast<char>('a' + (off + k) % 26);
      (good ? ok : wrong)++;
    } else if (r.error() == std::errc::operation_canceled) {
      ++cancelled;
    } else {
      ++wrong;
    }
  };
  auto closer = [&]() -> Task<void> {
    for (int i = 0; i < kCalls; ++i) rt_.spawn(one(i));
    co_await rt_.yield();  // the calls run up to their co_await (the batch is not over yet)
    EXPECT_EQ(reg_->in_flight(), static_cast<std::uint32_t>(kCalls));
    reg_->close();
  };
  rt_.spawn(closer());
  rt_.run();
  EXPECT_EQ(done, kCalls);
  EXPECT_EQ(ok + cancelled, kCalls);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(reg_->in_flight(), 0u);
  EXPECT_EQ(reg_->stats().completed, static_cast<std::uint64_t>(kCalls));
  EXPECT_EQ(reg_->stats().unmatched, 0u);
}

// Shutdown while file calls are in flight: every call completes exactly once, with its result or
// ESHUTDOWN; each loop ends on ESHUTDOWN.
TEST_P(Conformance, ShutDownWithFileCallsInFlight) {
  TempFile f(64 * 1024);
  int done = 0, ok = 0, shut = 0, wrong = 0;
  auto looper = [&](int w) -> Task<void> {
    char buf[64];
    for (int i = 0;; ++i) {
      const off_t off = ((w * 131 + i * 17) % 1000) * 64;
      auto r = co_await sys::pread(f.fd, bytes(buf, sizeof buf), off);
      ++done;
      if (!r) {
        (r.error().value() == ESHUTDOWN ? shut : wrong)++;
        co_return;
      }
      bool good = r.value() == sizeof buf;
      for (std::size_t k = 0; good && k < sizeof buf; ++k) good = buf[k] == static_cast<char>('a' + (off + k) % 26);
      (good ? ok : wrong)++;
    }
  };
  auto stopper = [&]() -> Task<void> {
    co_await rt_.sleep_for(3'000'000);
    ex_->shutdown();
  };
  for (int w = 0; w < 16; ++w) rt_.spawn(looper(w));
  rt_.spawn(stopper());
  rt_.run();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(shut, 16);
  EXPECT_EQ(done, ok + shut);
  EXPECT_EQ(reg_->in_flight(), 0u);
  EXPECT_EQ(reg_->stats().completed, static_cast<std::uint64_t>(done));
  EXPECT_EQ(reg_->stats().unmatched, 0u);
}

TEST_P(Conformance, RightsAndMalformedRequests) {
  run([&]() -> Task<void> {
    auto denied = co_await sys::call(SYS_kill, ::getpid(), 0);  // not in the safe set
    EXPECT_EQ(denied.error(), std::errc::operation_not_permitted);
    auto unknown = co_await sys::call(600);
    EXPECT_EQ(unknown.error(), std::errc::invalid_argument);
    auto uid = co_await sys::call(SYS_getuid);
    EXPECT_TRUE(uid && uid.value() == static_cast<long>(::getuid()));
  }());
}

std::string combo_name(const ::testing::TestParamInfo<Combo>& i) {
  return std::string(to_string(std::get<0>(i.param))) + "_" + to_string(std::get<1>(i.param)) + "_" +
         to_string(std::get<2>(i.param));
}

INSTANTIATE_TEST_SUITE_P(AllModes, Conformance,
                         ::testing::Combine(::testing::Values(WakeMode::tick, WakeMode::irq, WakeMode::hybrid),
                                            ::testing::Values(Placement::affine, Placement::shared, Placement::local),
                                            ::testing::Values(Backend::direct, Backend::io_uring)),
                         combo_name);

}  // namespace
