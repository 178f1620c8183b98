#include "uipc/ipc/peer_watch.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace uipc::ipc::peer_watch {

namespace {

// One thread for the process, started on first use and never joined (it sleeps in epoll_wait
// when there is nothing to watch; it is detached so process exit does not wait for it).
class Watcher {
 public:
  Watcher() {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epfd_ >= 0 && wake_ >= 0) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = 0;  // token 0: the wake eventfd
      ::epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_, &ev);
      std::thread([this] { loop(); }).detach();
    }
  }

  Result<std::uint64_t> watch(pid_t pid, std::function<void()> fn) {
    if (epfd_ < 0 || wake_ < 0) return std::errc::function_not_supported;
    const long fd = ::syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
      if (errno == ESRCH) {  // already gone (and reaped) before we could watch it: its death is now
        fn();
        return std::uint64_t{0};
      }
      return errno == ENOSYS ? std::make_error_code(std::errc::function_not_supported) : errno_code(errno);
    }
    std::lock_guard lk(mu_);
    const std::uint64_t token = ++next_;
    entries_.emplace(token, Entry{static_cast<int>(fd), std::move(fn)});
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = token;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, static_cast<int>(fd), &ev) != 0) {
      const int e = errno;
      ::close(static_cast<int>(fd));
      entries_.erase(token);
      return errno_code(e);
    }
    return token;
  }

  void cancel(std::uint64_t token) noexcept {
    if (token == 0) return;  // a peer that was gone before it was watched
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return running_ != token; });
    auto it = entries_.find(token);
    if (it == entries_.end()) return;  // already fired
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
    ::close(it->second.fd);
    entries_.erase(it);
  }

 private:
  struct Entry {
    int fd;
    std::function<void()> fn;
  };

  void loop() {
    epoll_event evs[16];
    for (;;) {
      const int n = ::epoll_wait(epfd_, evs, 16, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      for (int i = 0; i < n; ++i) {
        const std::uint64_t token = evs[i].data.u64;
        if (token == 0) continue;
        std::function<void()> fn;
        {
          std::lock_guard lk(mu_);
          auto it = entries_.find(token);
          if (it == entries_.end()) continue;
          ::epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
          ::close(it->second.fd);
          fn = std::move(it->second.fn);
          entries_.erase(it);
          running_ = token;
        }
        fn();
        {
          std::lock_guard lk(mu_);
          running_ = 0;
        }
        cv_.notify_all();
      }
    }
  }

  int epfd_ = -1;
  int wake_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::uint64_t next_ = 0;
  std::uint64_t running_ = 0;
};

Watcher& watcher() {
  static Watcher* w = new Watcher();  // never destroyed: its thread may outlive static destruction
  return *w;
}

}  // namespace

Result<std::uint64_t> watch(pid_t pid, std::function<void()> fn) { return watcher().watch(pid, std::move(fn)); }
void cancel(std::uint64_t token) noexcept { watcher().cancel(token); }

}  // namespace uipc::ipc::peer_watch
