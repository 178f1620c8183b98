// The typed co_await forms (uipc/sys/syscall.hpp): each builds the raw request for the calling
// thread's registration; the awaiter converts the raw result.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <cstring>

#include "uipc/sys/syscall.hpp"

namespace uipc::sys {

namespace {
using detail::p2i;
Registration* me() noexcept { return Registration::current(); }
}  // namespace

namespace detail {

static_assert(sizeof(struct statx) == 256, "FstatCall reserves 256 bytes for struct statx");

FstatCall::FstatCall(Registration* reg, int fd, CallOptions o) noexcept
    : a_(reg, SYS_statx, {fd, p2i(""), AT_EMPTY_PATH, STATX_BASIC_STATS, 0, 0}, o) {}

bool FstatCall::await_suspend(std::coroutine_handle<> h) noexcept {
  a_.args()[4] = p2i(statx_);  // the kernel (or io_uring) writes here, at our final address
  return a_.await_suspend(h);
}

Result<struct stat> FstatCall::await_resume() const {
  const std::int64_t r = a_.await_resume();
  if (is_error(r)) return code_of(r);
  struct statx sx;
  std::memcpy(&sx, statx_, sizeof sx);
  struct stat sb {};
  sb.st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  sb.st_ino = sx.stx_ino;
  sb.st_mode = sx.stx_mode;
  sb.st_nlink = sx.stx_nlink;
  sb.st_uid = sx.stx_uid;
  sb.st_gid = sx.stx_gid;
  sb.st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
  sb.st_size = static_cast<off_t>(sx.stx_size);
  sb.st_blksize = static_cast<blksize_t>(sx.stx_blksize);
  sb.st_blocks = static_cast<blkcnt_t>(sx.stx_blocks);
  sb.st_atim = {static_cast<time_t>(sx.stx_atime.tv_sec), static_cast<long>(sx.stx_atime.tv_nsec)};
  sb.st_mtim = {static_cast<time_t>(sx.stx_mtime.tv_sec), static_cast<long>(sx.stx_mtime.tv_nsec)};
  sb.st_ctim = {static_cast<time_t>(sx.stx_ctime.tv_sec), static_cast<long>(sx.stx_ctime.tv_nsec)};
  return sb;
}

SleepCall::SleepCall(Registration* reg, std::int64_t ns, CallOptions o) noexcept
    : a_(reg, SYS_nanosleep, {0, 0, 0, 0, 0, 0}, o) {
  if (ns < 0) ns = 0;
  ts_[0] = ns / 1'000'000'000;
  ts_[1] = ns % 1'000'000'000;
}

bool SleepCall::await_suspend(std::coroutine_handle<> h) noexcept {
  a_.args()[0] = p2i(ts_);
  return a_.await_suspend(h);
}

}  // namespace detail

detail::FstatCall fstat(int fd, CallOptions o) noexcept { return {me(), fd, o}; }
detail::SleepCall nanosleep(std::int64_t ns, CallOptions o) noexcept { return {me(), ns, o}; }

}  // namespace uipc::sys
