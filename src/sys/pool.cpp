// The blocking pool: threads that run the calls which may wait (issue 3 §4), so that no kernel
// core ever stalls. Interruptible calls wait in ppoll(2) on their file descriptor plus the
// worker's eventfd; a cancellation writes the eventfd, and the call completes with -reason.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include "internal.hpp"

namespace uipc::sys::detail {

namespace {

inline std::int64_t p2i(const void* p) noexcept { return static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(p)); }

constexpr std::int64_t kNsPerSec = 1'000'000'000;

timespec to_ts(std::int64_t ns) {
  if (ns < 0) ns = 0;
  return {static_cast<time_t>(ns / kNsPerSec), static_cast<long>(ns % kNsPerSec)};
}

// The running job's context: the worker's eventfd and counters.
struct Ctx {
  Job& j;
  int efd;
  StatCounters& st;
  std::int64_t sys(long n, std::int64_t a0 = 0, std::int64_t a1 = 0, std::int64_t a2 = 0, std::int64_t a3 = 0,
                   std::int64_t a4 = 0, std::int64_t a5 = 0) {
    st.syscalls.add();
    return raw_syscall(n, a0, a1, a2, a3, a4, a5);
  }
  int reason() const { return j.cancel_reason.load(std::memory_order_acquire); }
  void drain_efd() {
    std::uint64_t v;
    sys(SYS_read, efd, p2i(&v), sizeof v);
  }
  // ppoll on `fds` (the last one is the eventfd) until deadline_ns (CLOCK_MONOTONIC, -1: none).
  // Returns ready descriptors (eventfd excluded), 0 on timeout, -reason when cancelled, -errno.
  std::int64_t wait(pollfd* fds, std::size_t n, std::int64_t deadline_ns) {
    for (;;) {
      if (const int r = reason()) return -r;
      timespec ts{};
      const timespec* tsp = nullptr;
      if (deadline_ns >= 0) {
        const std::int64_t left = deadline_ns - static_cast<std::int64_t>(now_ns());
        if (left <= 0) return 0;
        ts = to_ts(left);
        tsp = &ts;
      }
      for (std::size_t i = 0; i < n; ++i) fds[i].revents = 0;
      const std::int64_t got = sys(SYS_ppoll, p2i(fds), static_cast<std::int64_t>(n), p2i(tsp), 0, sizeof(sigset_t));
      if (got == -EINTR) continue;
      if (got < 0) return got;
      std::int64_t ready = got;
      if (fds[n - 1].revents != 0) {
        --ready;
        if (const int r = reason()) return -r;
        drain_efd();  // a stale interrupt meant for an earlier job
      }
      if (ready > 0) return ready;
      if (got == 0) return 0;  // timed out
    }
  }
  std::int64_t wait_fd(std::int64_t fd, short events) {
    pollfd p[2] = {{static_cast<int>(fd), events, 0}, {efd, POLLIN, 0}};
    const std::int64_t r = wait(p, 2, -1);
    return r < 0 ? r : 0;
  }
  // Sleeps until deadline (CLOCK_MONOTONIC) or cancellation: 0 or -reason.
  std::int64_t sleep_until(std::int64_t deadline_ns) {
    pollfd p{efd, POLLIN, 0};
    const std::int64_t r = wait(&p, 1, deadline_ns);
    return r < 0 ? r : 0;
  }
};

bool nonblocking(Ctx& c, std::int64_t fd) {
  const std::int64_t fl = c.sys(SYS_fcntl, fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK) != 0;
}

// read / write / readv / writev / preadv2 / pwritev2 at the file position on a descriptor that
// may wait: wait for readiness, try without blocking, repeat. A write moves every byte, as a
// blocking write would (readv/writev: as many as one attempt moves).
std::int64_t run_rw(Ctx& c) {
  const auto& rq = c.j.rq;
  const auto* a = rq.args;
  const std::uint32_t n = rq.number;
  const bool wr = n == SYS_write || n == SYS_writev || n == SYS_pwritev2;
  const bool single = n == SYS_read || n == SYS_write;
  const std::int64_t user_flags = (n == SYS_preadv2 || n == SYS_pwritev2) ? a[5] : 0;
  if (nonblocking(c, a[0])) return c.sys(n, a[0], a[1], a[2], a[3], a[4], a[5]);
  std::int64_t moved = c.j.partial;
  for (;;) {
    const std::int64_t w = c.wait_fd(a[0], wr ? POLLOUT : POLLIN);
    if (w < 0) return moved > 0 ? moved : w;
    iovec one{reinterpret_cast<void*>(static_cast<std::uintptr_t>(a[1] + moved)), static_cast<std::size_t>(a[2] - moved)};
    const std::int64_t iov = single ? p2i(&one) : a[1];
    const std::int64_t cnt = single ? 1 : a[2];
    std::int64_t r = c.sys(wr ? SYS_pwritev2 : SYS_preadv2, a[0], iov, cnt, -1, 0, user_flags | RWF_NOWAIT);
    if (r == -EAGAIN) continue;
    if (r == -EOPNOTSUPP)  // no RWF_NOWAIT here (some devices): readiness was reported, go plain
      r = c.sys(wr ? SYS_pwritev2 : SYS_preadv2, a[0], iov, cnt, -1, 0, user_flags);
    if (r < 0) return moved > 0 ? moved : r;
    if (n == SYS_write && r > 0 && moved + r < a[2]) {
      moved += r;
      continue;
    }
    return moved + r;
  }
}

// recvfrom / sendto / recvmsg / sendmsg: as run_rw, with MSG_DONTWAIT.
std::int64_t run_sock(Ctx& c) {
  const auto& rq = c.j.rq;
  const auto* a = rq.args;
  const std::uint32_t n = rq.number;
  const bool wr = n == SYS_sendto || n == SYS_sendmsg;
  const int fi = n == SYS_recvfrom || n == SYS_sendto ? 3 : 2;
  if (nonblocking(c, a[0])) return c.sys(n, a[0], a[1], a[2], a[3], a[4], a[5]);
  std::int64_t moved = c.j.partial;
  for (;;) {
    const std::int64_t w = c.wait_fd(a[0], wr ? POLLOUT : POLLIN);
    if (w < 0) return moved > 0 ? moved : w;
    std::int64_t args[6] = {a[0], a[1], a[2], a[3], a[4], a[5]};
    args[fi] |= MSG_DONTWAIT;
    if (n == SYS_sendto) {
      args[1] += moved;
      args[2] -= moved;
    }
    const std::int64_t r = c.sys(n, args[0], args[1], args[2], args[3], args[4], args[5]);
    if (r == -EAGAIN) continue;
    if (r < 0) return moved > 0 ? moved : r;
    if (n == SYS_sendto && r > 0 && moved + r < a[2]) {
      moved += r;
      continue;
    }
    return moved + r;
  }
}

std::int64_t run_accept(Ctx& c) {
  const auto* a = c.j.rq.args;
  int listening = 0;
  socklen_t len = sizeof listening;
  // Not a listening socket (or not a socket): accept fails at once, no need to wait.
  const std::int64_t lr = c.sys(SYS_getsockopt, a[0], SOL_SOCKET, SO_ACCEPTCONN, p2i(&listening), p2i(&len));
  if (lr == 0 && listening != 0 && !nonblocking(c, a[0])) {
    const std::int64_t w = c.wait_fd(a[0], POLLIN);
    if (w < 0) return w;
  }
  return c.sys(c.j.rq.number, a[0], a[1], a[2], a[3]);
}

// nanosleep(req, rem) and clock_nanosleep(clock, flags, req, rem).
std::int64_t run_sleep(Ctx& c) {
  const auto& rq = c.j.rq;
  const auto* a = rq.args;
  const bool clock = rq.number == SYS_clock_nanosleep;
  const std::int64_t req = clock ? a[2] : a[0];
  const std::int64_t rem = clock ? a[3] : a[1];
  const clockid_t id = clock ? static_cast<clockid_t>(a[0]) : CLOCK_MONOTONIC;
  const bool absolute = clock && (a[1] & TIMER_ABSTIME) != 0;
  timespec ts{};
  if (const std::int64_t e = safe_read(&ts, req, sizeof ts, c.st); e < 0) return e;
  if (ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= kNsPerSec) return -EINVAL;
  timespec now{};
  if (::clock_gettime(id, &now) != 0) return -EINVAL;
  const std::int64_t want = static_cast<std::int64_t>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
  const std::int64_t now_on_clock = static_cast<std::int64_t>(now.tv_sec) * kNsPerSec + now.tv_nsec;
  const std::int64_t left = absolute ? want - now_on_clock : want;
  const std::int64_t deadline = static_cast<std::int64_t>(now_ns()) + std::max<std::int64_t>(left, 0);
  const std::int64_t r = c.sleep_until(deadline);
  if (r < 0 && rem != 0 && !absolute) {
    const timespec left_ts = to_ts(deadline - static_cast<std::int64_t>(now_ns()));
    safe_write(rem, &left_ts, sizeof left_ts, c.st);
  }
  return r;
}

// poll(fds, n, timeout_ms) and ppoll(fds, n, timeout_ts, sigmask, size): the caller's array is
// copied in, our eventfd appended, the revents copied back. ppoll's signal mask is not applied
// (it would be this worker's, not the caller's).
std::int64_t run_poll(Ctx& c) {
  const auto& rq = c.j.rq;
  const auto* a = rq.args;
  if (a[1] < 0 || a[1] > 65536) return -EINVAL;
  const std::size_t n = static_cast<std::size_t>(a[1]);
  std::vector<pollfd> fds(n + 1);
  if (const std::int64_t e = safe_read(fds.data(), a[0], n * sizeof(pollfd), c.st); e < 0) return e;
  fds[n] = {c.efd, POLLIN, 0};
  std::int64_t deadline = -1;
  if (rq.number == SYS_poll) {
    if (a[2] >= 0) deadline = static_cast<std::int64_t>(now_ns()) + a[2] * 1'000'000;
  } else if (a[2] != 0) {
    timespec ts{};
    if (const std::int64_t e = safe_read(&ts, a[2], sizeof ts, c.st); e < 0) return e;
    if (ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= kNsPerSec) return -EINVAL;
    deadline = static_cast<std::int64_t>(now_ns()) + static_cast<std::int64_t>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
  }
  const std::int64_t r = c.wait(fds.data(), n + 1, deadline);
  if (r < 0) return r;
  if (n != 0) {
    if (const std::int64_t e = safe_write(a[0], fds.data(), n * sizeof(pollfd), c.st); e < 0) return e;
  }
  return r;
}

// epoll_wait(epfd, events, max, timeout_ms) / epoll_pwait(..., sigmask, size).
std::int64_t run_epoll(Ctx& c) {
  const auto* a = c.j.rq.args;
  const std::int64_t deadline = a[3] >= 0 ? static_cast<std::int64_t>(now_ns()) + a[3] * 1'000'000 : -1;
  for (;;) {
    pollfd p[2] = {{static_cast<int>(a[0]), POLLIN, 0}, {c.efd, POLLIN, 0}};
    const std::int64_t w = c.wait(p, 2, deadline);
    if (w < 0) return w;
    if (w == 0) return 0;  // timed out
    const std::int64_t r = c.sys(SYS_epoll_wait, a[0], a[1], a[2], 0);
    if (r != 0) return r;
  }
}

// wait4 / waitid without WNOHANG: poll the child's state with WNOHANG, sleeping in between
// (1 ms growing to 16 ms) on the eventfd, so the wait can be cancelled.
std::int64_t run_wait(Ctx& c) {
  const auto& rq = c.j.rq;
  const auto* a = rq.args;
  std::int64_t pause_ns = 1'000'000;
  for (;;) {
    std::int64_t r;
    if (rq.number == SYS_wait4) {
      r = c.sys(SYS_wait4, a[0], a[1], a[2] | WNOHANG, a[3]);
      if (r != 0) return r;
    } else {
      if (a[2] == 0) return -EFAULT;
      const int zero = 0;
      safe_write(a[2], &zero, sizeof zero, c.st);  // si_signo = 0: nothing reported yet
      r = c.sys(SYS_waitid, a[0], a[1], a[2], a[3] | WNOHANG, a[4]);
      if (r < 0) return r;
      int signo = 0;
      if (const std::int64_t e = safe_read(&signo, a[2], sizeof signo, c.st); e < 0) return e;
      if (signo != 0) return r;
    }
    const std::int64_t s = c.sleep_until(static_cast<std::int64_t>(now_ns()) + pause_ns);
    if (s < 0) return s;
    pause_ns = std::min<std::int64_t>(pause_ns * 2, 16'000'000);
  }
}

}  // namespace

BlockingPool::BlockingPool(unsigned start_threads, unsigned max_threads) : max_threads_(std::max(1u, max_threads)) {
  std::lock_guard lk(mu_);
  for (unsigned i = 0; i < std::min(start_threads, max_threads_); ++i) spawn_locked();
}

BlockingPool::~BlockingPool() { shutdown(ESHUTDOWN); }

bool BlockingPool::spawn_locked() {
  auto w = std::make_unique<Worker>();
  w->efd = static_cast<int>(raw_syscall(SYS_eventfd2, 0, EFD_NONBLOCK | EFD_CLOEXEC, 0, 0, 0, 0));
  if (w->efd < 0) return false;  // out of descriptors: the existing workers carry on
  Worker* p = w.get();
  try {
    p->thread = std::thread([this, p] { worker_main(p); });
  } catch (const std::system_error&) {  // out of threads: likewise
    raw_syscall(SYS_close, p->efd, 0, 0, 0, 0, 0);
    return false;
  }
  workers_.push_back(std::move(w));
  return true;
}

bool BlockingPool::take_pending_cancel(Reg& r, std::uint64_t id, int* reason) {
  bool found = false;
  auto& v = r.pending_cancels;
  for (std::size_t i = 0; i < v.size();) {
    if (abi::id_index(v[i].first) == abi::id_index(id)) {
      if (v[i].first == id) {
        *reason = v[i].second;
        found = true;
      }
      v[i] = v.back();  // same call slot: either ours, or left over from an earlier call there
      v.pop_back();
    } else {
      ++i;
    }
  }
  return found;
}

void BlockingPool::complete(Job& j, std::int64_t result, StatCounters& st, Counters& nc) {
  Done d{j.reg.get(), j.rq.id, result};
  publish(*j.reg, &d, 1, st, nc);
}

void BlockingPool::submit(std::unique_ptr<Job> job) {
  std::unique_lock lk(mu_);
  int reason = 0;
  if (stop_) reason = stop_reason_;
  // acquire: pairs with the seq_cst store in Registration::close (a late job is refused here;
  // one that slips past is cancelled by close's next cancel_all round).
  else if (job->reg->closed.load(std::memory_order_acquire)) reason = ECANCELED;
  else if (take_pending_cancel(*job->reg, job->rq.id, &reason)) {}
  if (reason != 0) {
    complete(*job, job->partial > 0 ? job->partial : -reason, inline_st_, inline_nc_);  // publish never takes mu_
    return;
  }
  // Every idle worker takes one queued job; a job beyond those gets a new worker (up to the bound).
  if (queue_.size() + 1 > idle_ && workers_.size() < max_threads_ && !spawn_locked() && workers_.empty()) {
    complete(*job, job->partial > 0 ? job->partial : -EAGAIN, inline_st_, inline_nc_);  // no thread to run it
    return;
  }
  queue_.push_back(job.release());
  lk.unlock();
  cv_.notify_one();
}

void BlockingPool::cancel(Reg& r, std::uint64_t id, int reason) {
  std::lock_guard lk(mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    Job* j = *it;
    if (j->reg.get() == &r && j->rq.id == id) {
      queue_.erase(it);
      complete(*j, j->partial > 0 ? j->partial : -reason, inline_st_, inline_nc_);
      delete j;
      return;
    }
  }
  for (auto& w : workers_) {
    Job* j = w->current;
    if (j != nullptr && j->reg.get() == &r && j->rq.id == id) {
      // release: pairs with the worker's acquire load after its ppoll sees the eventfd.
      j->cancel_reason.store(reason, std::memory_order_release);
      const std::uint64_t one = 1;
      raw_syscall(SYS_write, w->efd, p2i(&one), sizeof one, 0, 0, 0);
      w->dirty = true;
      return;
    }
  }
  // Not here (yet): it may be on its way (a read that has not found its descriptor blocking
  // yet), or it completed already. Keep one cancellation per call slot.
  int ignored;
  take_pending_cancel(r, id, &ignored);
  r.pending_cancels.emplace_back(id, reason);
}

void BlockingPool::cancel_all(Reg& r, int reason) {
  std::lock_guard lk(mu_);
  for (auto it = queue_.begin(); it != queue_.end();) {
    Job* j = *it;
    if (j->reg.get() == &r) {
      it = queue_.erase(it);
      complete(*j, j->partial > 0 ? j->partial : -reason, inline_st_, inline_nc_);
      delete j;
    } else {
      ++it;
    }
  }
  for (auto& w : workers_) {
    Job* j = w->current;
    if (j != nullptr && j->reg.get() == &r && j->cancel_reason.load(std::memory_order_relaxed) == 0) {
      j->cancel_reason.store(reason, std::memory_order_release);  // pairs as in cancel()
      const std::uint64_t one = 1;
      raw_syscall(SYS_write, w->efd, p2i(&one), sizeof one, 0, 0, 0);
      w->dirty = true;
    }
  }
}

void BlockingPool::shutdown(int reason) {
  std::vector<std::unique_ptr<Worker>> workers;
  {
    std::lock_guard lk(mu_);
    if (stop_) return;
    stop_ = true;
    stop_reason_ = reason;
    while (!queue_.empty()) {
      Job* j = queue_.front();
      queue_.pop_front();
      complete(*j, j->partial > 0 ? j->partial : -reason, inline_st_, inline_nc_);
      delete j;
    }
    for (auto& w : workers_) {
      if (Job* j = w->current) {
        j->cancel_reason.store(reason, std::memory_order_release);  // pairs as in cancel()
        const std::uint64_t one = 1;
        raw_syscall(SYS_write, w->efd, p2i(&one), sizeof one, 0, 0, 0);
      }
    }
  }
  cv_.notify_all();
  {
    std::lock_guard lk(mu_);
    workers.swap(workers_);
  }
  for (auto& w : workers) {
    if (w->thread.joinable()) w->thread.join();
    raw_syscall(SYS_close, w->efd, 0, 0, 0, 0, 0);
    std::lock_guard lk(mu_);
    retired_ += w->st.snapshot();
  }
}

ExecStats BlockingPool::stats() const {
  std::lock_guard lk(mu_);
  ExecStats s = retired_;
  s += inline_st_.snapshot();
  for (const auto& w : workers_) s += w->st.snapshot();
  return s;
}

void BlockingPool::worker_main(Worker* w) {
  for (;;) {
    std::unique_lock lk(mu_);
    while (queue_.empty() && !stop_) {
      ++idle_;
      cv_.wait(lk);
      --idle_;
    }
    if (queue_.empty()) return;  // stopping, and nothing left
    Job* j = queue_.front();
    queue_.pop_front();
    w->current = j;
    if (w->dirty) {  // under mu_: any cancellation of j comes after this and is seen
      std::uint64_t v;
      raw_syscall(SYS_read, w->efd, p2i(&v), sizeof v, 0, 0, 0);
      w->dirty = false;
    }
    lk.unlock();
    const std::int64_t res = run(*j, *w);
    lk.lock();
    w->current = nullptr;
    lk.unlock();
    complete(*j, res, w->st, w->nc);
    delete j;
  }
}

std::int64_t BlockingPool::run(Job& j, Worker& w) {
  Ctx c{j, w.efd, w.st};
  if (const int r = c.reason()) return j.partial > 0 ? j.partial : -r;
  const auto* a = j.rq.args;
  if (j.plain) return c.sys(j.rq.number, a[0], a[1], a[2], a[3], a[4], a[5]);
  switch (j.rq.number) {
    case SYS_read:
    case SYS_write:
    case SYS_readv:
    case SYS_writev:
    case SYS_preadv2:
    case SYS_pwritev2:
      return run_rw(c);
    case SYS_recvfrom:
    case SYS_sendto:
    case SYS_recvmsg:
    case SYS_sendmsg:
      return run_sock(c);
    case SYS_accept:
    case SYS_accept4:
      return run_accept(c);
    case SYS_nanosleep:
    case SYS_clock_nanosleep:
      return run_sleep(c);
    case SYS_poll:
    case SYS_ppoll:
      return run_poll(c);
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
      return run_epoll(c);
    case SYS_wait4:
    case SYS_waitid:
      return run_wait(c);
    default:
      return c.sys(j.rq.number, a[0], a[1], a[2], a[3], a[4], a[5]);
  }
}

}  // namespace uipc::sys::detail
