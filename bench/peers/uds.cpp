// bench/peers/uds.cpp — modes "uds" and "uds-epoll": a Unix stream socketpair between the client
// thread and the server thread, pipelined and batched.
//
//  uds        blocking sockets.  The client queues p.inflight requests, writes as many as fit in
//             one send(), then loops: one recv() takes every reply that is there, each reply
//             queues the next request, one send() writes them all.  The server's recv() takes
//             every request that is there, it answers all whole ones and writes all the replies
//             with one send().  (The client's sends use MSG_DONTWAIT so that a window bigger than
//             the socket buffers cannot deadlock; see blocking_client.)
//  uds-epoll  non-blocking sockets, one level-triggered epoll loop per side, the same batching.
//             Each side waits in epoll_wait only when it has no reason to think data is already
//             there: after a read that brought several messages it reads again straight away
//             (falling back to epoll_wait on EAGAIN, and backing off from guessing after misses;
//             see ReadPredictor).  EPOLLOUT is in the interest set only while output is stuck
//             behind a full socket buffer.
#include "peer_common.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <string>

namespace uipc::bench::peers::uds {
namespace {

struct UdsIo {
  static ssize_t write_some(int fd, const void* p, std::size_t n) { return ::send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL); }
  static ssize_t read_some(int fd, void* p, std::size_t n) { return ::recv(fd, p, n, 0); }
  static ssize_t write_all(int fd, const void* p, std::size_t n) { return ::send(fd, p, n, MSG_NOSIGNAL); }
};

// Grow the socket's send buffer so that the whole window fits in it (the kernel caps the request
// at net.core.wmem_max and doubles it for its bookkeeping).  Returns the resulting size.
int size_send_buffer(const char* mode, int fd, std::size_t window) {
  int cur = 0;
  socklen_t len = sizeof cur;
  if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &len) != 0) die_errno(mode, "getsockopt(SO_SNDBUF)");
  if (static_cast<std::size_t>(cur) < 2 * window) {
    const int want = static_cast<int>(std::min<std::size_t>(2 * window, INT_MAX / 2));
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want) != 0) die_errno(mode, "setsockopt(SO_SNDBUF)");
    len = sizeof cur;
    if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &len) != 0) die_errno(mode, "getsockopt(SO_SNDBUF)");
  }
  return cur;
}

// Whether to read before asking epoll.  A read that brought several messages suggests a stream:
// the next read will probably find more, and skipping epoll_wait saves a kernel entry.  A
// speculative read that finds nothing (EAGAIN) costs one instead, so each miss suspends
// speculation for a doubling number of reads (1, 2, 4 ... 64); a pattern where it never pays (the
// whole window answered in one batch while the peer waits for us) wastes at most one read in 64.
class ReadPredictor {
 public:
  bool speculate() const { return burst_ && suspended_ == 0; }
  // A read brought k whole messages; more_possible: false when nothing more can come yet.
  void read(std::size_t k, bool more_possible) {
    burst_ = more_possible && k >= 2;
    if (suspended_ != 0) --suspended_;
  }
  void hit() { backoff_ = 0; }
  void miss() {
    backoff_ = backoff_ == 0 ? 1 : std::min(2 * backoff_, 64u);
    suspended_ = backoff_;
    burst_ = false;
  }

 private:
  bool burst_ = false;
  unsigned backoff_ = 0, suspended_ = 0;
};

class EpollFd {
 public:
  EpollFd(const char* mode, int fd) : mode_(mode), fd_(fd), ep_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (ep_ < 0) die_errno(mode, "epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) die_errno(mode, "epoll_ctl(ADD)");
  }
  EpollFd(const EpollFd&) = delete;
  EpollFd& operator=(const EpollFd&) = delete;
  ~EpollFd() { ::close(ep_); }

  // Keep EPOLLOUT in the interest set exactly while output is pending.  Returns the syscalls made.
  unsigned want_out(bool on) {
    if (on == out_) return 0;
    epoll_event ev{};
    ev.events = on ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.fd = fd_;
    if (::epoll_ctl(ep_, EPOLL_CTL_MOD, fd_, &ev) != 0) die_errno(mode_, "epoll_ctl(MOD)");
    out_ = on;
    return 1;
  }

  // Blocks until the socket is ready; returns its events, 0 on EINTR.
  std::uint32_t wait() {
    epoll_event ev{};
    const int n = ::epoll_wait(ep_, &ev, 1, -1);
    if (n < 0) {
      if (errno == EINTR) return 0;
      die_errno(mode_, "epoll_wait");
    }
    return n == 1 ? ev.events : 0;
  }

 private:
  const char* mode_;
  int fd_;
  int ep_;
  bool out_ = false;
};

void epoll_client(const char* mode, int fd, StreamClient& c, SyscallCounter& calls) {
  EpollFd ep(mode, fd);
  ReadPredictor predict;
  c.start();
  for (;;) {
    if (c.unsent_len() != 0) {
      const ssize_t n = ::send(fd, c.unsent(), c.unsent_len(), MSG_NOSIGNAL);
      calls.add();
      if (n > 0) c.wrote(static_cast<std::size_t>(n));
      else if (errno != EAGAIN && errno != EINTR) die_errno(mode, "client send");
    }
    calls.add(ep.want_out(c.unsent_len() != 0));
    if (c.done()) break;
    const bool speculative = predict.speculate();
    if (!speculative) {
      const std::uint32_t ev = ep.wait();
      calls.add();
      if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;  // writable only: send at the top
    }
    const ssize_t n = ::recv(fd, c.rspace(), c.rspace_len(), 0);
    calls.add();
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (speculative) predict.miss();
        continue;
      }
      if (n == 0) die(mode, "server closed the connection early");
      die_errno(mode, "client recv");
    }
    if (speculative) predict.hit();
    const std::uint64_t k = c.read_done(static_cast<std::size_t>(n), now_ns());
    predict.read(k, c.awaiting_reply());  // all answered: nothing comes until we send
  }
}

void epoll_server(const char* mode, int fd, StreamServer& s, SyscallCounter& calls) {
  EpollFd ep(mode, fd);
  ReadPredictor predict;
  for (;;) {
    if (s.out_len() != 0) {
      const ssize_t n = ::send(fd, s.out(), s.out_len(), MSG_NOSIGNAL);
      calls.add();
      if (n > 0) s.wrote(static_cast<std::size_t>(n));
      else if (errno != EAGAIN && errno != EINTR) die_errno(mode, "server send");
    }
    calls.add(ep.want_out(s.out_len() != 0));
    const bool speculative = predict.speculate();
    if (!speculative) {
      const std::uint32_t ev = ep.wait();
      calls.add();
      if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
    }
    const ssize_t n = ::recv(fd, s.rspace(), s.rspace_len(), 0);
    calls.add();
    if (n == 0) break;  // the client is done
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        if (speculative) predict.miss();
        continue;
      }
      die_errno(mode, "server recv");
    }
    if (speculative) predict.hit();
    predict.read(s.read_done(static_cast<std::size_t>(n)), true);
  }
  if (s.partial_request()) die(mode, "client closed in the middle of a request");
}

IpcResult run(const IpcParams& p, bool use_epoll) {
  const char* mode = use_epoll ? "uds-epoll" : "uds";
  int sv[2];  // sv[0]: the client's end, sv[1]: the server's
  const int type = SOCK_STREAM | SOCK_CLOEXEC | (use_epoll ? SOCK_NONBLOCK : 0);
  if (::socketpair(AF_UNIX, type, 0, sv) != 0) die_errno(mode, "socketpair");
  const std::size_t window = p.inflight * p.msg_bytes;
  const int buf = std::min(size_send_buffer(mode, sv[0], window), size_send_buffer(mode, sv[1], window));

  SyscallCounter client_calls, server_calls;
  Measure m(p, client_calls, server_calls);
  LatencyRecorder lat;
  StreamClient client(p, mode, m, lat);
  StreamServer server(p);
  run_pair(
      p,
      [&] {
        if (use_epoll) epoll_client(mode, sv[0], client, client_calls);
        else blocking_client<UdsIo>(mode, sv[0], sv[0], client, client_calls);
        ::shutdown(sv[0], SHUT_WR);  // the server reads end-of-file and returns
      },
      [&] {
        if (use_epoll) epoll_server(mode, sv[1], server, server_calls);
        else blocking_server<UdsIo>(mode, sv[1], sv[1], server, server_calls);
      });
  ::close(sv[0]);
  ::close(sv[1]);

  IpcResult r = m.result(lat);
  if (static_cast<std::size_t>(buf) < window)
    r.note = "socket send buffer " + std::to_string(buf / 1024) + " KiB < window " + std::to_string(window / 1024) +
             " KiB: writes go out in parts";
  return r;
}

const IpcModeRegistrar uds_registrar("uds", [](const IpcParams& p) { return run(p, false); });
const IpcModeRegistrar uds_epoll_registrar("uds-epoll", [](const IpcParams& p) { return run(p, true); });

}  // namespace
}  // namespace uipc::bench::peers::uds
