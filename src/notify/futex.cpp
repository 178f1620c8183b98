#include "uipc/notify/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace uipc::futex {

int wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::int64_t timeout_ns) {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
    tsp = &ts;
  }
  const int saved = errno;
  const long r = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, tsp, nullptr, 0);
  const int err = r < 0 ? errno : 0;
  errno = saved;
  return r < 0 ? -err : 0;
}

int wake(std::atomic<std::uint32_t>* word, int count) {
  const int saved = errno;
  const long r = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
  const int err = r < 0 ? errno : 0;
  errno = saved;
  return r < 0 ? -err : static_cast<int>(r);
}

}  // namespace uipc::futex
