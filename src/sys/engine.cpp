// The execution engine: how one executing thread (a kernel core, or a caller in shared/local
// placement) turns requests into system calls — directly, through io_uring, or through the
// blocking pool — plus the claim, pop and publish steps every claimant shares.
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "internal.hpp"

#ifdef UIPC_HAVE_LIBURING
#include <liburing.h>
#endif

namespace uipc::sys::detail {

// ---- raw calls -------------------------------------------------------------------------------

std::int64_t raw_syscall(long n, std::int64_t a0, std::int64_t a1, std::int64_t a2, std::int64_t a3, std::int64_t a4,
                         std::int64_t a5) noexcept {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = a3;
  register long r8 __asm__("r8") = a4;
  register long r9 __asm__("r9") = a5;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
#else
  const int saved = errno;
  const long r = ::syscall(n, a0, a1, a2, a3, a4, a5);
  const std::int64_t out = r == -1 ? -static_cast<std::int64_t>(errno) : r;
  errno = saved;
  return out;
#endif
}

std::uint64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {
inline std::int64_t p2i(const void* p) noexcept { return static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(p)); }
inline void* i2p(std::int64_t v) noexcept { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(v)); }

std::int64_t vm_copy(long nr, void* local, std::int64_t remote, std::size_t n, StatCounters& st) noexcept {
  if (n == 0) return 0;
  iovec l{local, n};
  iovec r{i2p(remote), n};
  st.syscalls.add(2);
  const std::int64_t pid = raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0);
  const std::int64_t got = raw_syscall(nr, pid, p2i(&l), 1, p2i(&r), 1, 0);
  if (got < 0) return got == -EPERM || got == -ESRCH ? -EFAULT : got;
  return static_cast<std::size_t>(got) == n ? 0 : -EFAULT;
}
}  // namespace

std::int64_t safe_read(void* dst, std::int64_t user_src, std::size_t n, StatCounters& st) noexcept {
  return vm_copy(SYS_process_vm_readv, dst, user_src, n, st);
}

std::int64_t safe_write(std::int64_t user_dst, const void* src, std::size_t n, StatCounters& st) noexcept {
  return vm_copy(SYS_process_vm_writev, const_cast<void*>(src), user_dst, n, st);
}

// ---- stats -----------------------------------------------------------------------------------

ExecStats StatCounters::snapshot() const noexcept {
  ExecStats s;
  s.requests = requests.get();
  s.syscalls = syscalls.get();
  s.uring_ops = uring_ops.get();
  s.uring_enters = uring_enters.get();
  s.pool_jobs = pool_jobs.get();
  s.futex_wakes = futex_wakes.get();
  s.futex_waits = futex_waits.get();
  s.timer_waits = timer_waits.get();
  s.ticks = ticks.get();
  s.batches = batches.get();
  s.rejected = rejected.get();
  s.cancels = cancels.get();
  return s;
}

void SharedStats::add(const ExecStats& d) noexcept {
  auto add1 = [](std::atomic<std::uint64_t>& a, std::uint64_t v) {
    if (v != 0) a.fetch_add(v, std::memory_order_relaxed);
  };
  add1(requests, d.requests);
  add1(syscalls, d.syscalls);
  add1(uring_ops, d.uring_ops);
  add1(uring_enters, d.uring_enters);
  add1(pool_jobs, d.pool_jobs);
  add1(futex_wakes, d.futex_wakes);
  add1(futex_waits, d.futex_waits);
  add1(timer_waits, d.timer_waits);
  add1(ticks, d.ticks);
  add1(batches, d.batches);
  add1(rejected, d.rejected);
  add1(cancels, d.cancels);
}

void SharedStats::add_batch(std::uint64_t req, std::uint64_t sys, std::uint64_t uring, std::uint64_t pool,
                            std::uint64_t rej, std::uint64_t can, bool exclusive) noexcept {
  auto add1 = [exclusive](std::atomic<std::uint64_t>& a, std::uint64_t v) {
    if (v == 0) return;
    if (exclusive) a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    else a.fetch_add(v, std::memory_order_relaxed);
  };
  add1(requests, req);
  add1(syscalls, sys);
  add1(uring_ops, uring);
  add1(pool_jobs, pool);
  add1(rejected, rej);
  add1(cancels, can);
  add1(batches, 1);
}

ExecStats SharedStats::load() const noexcept {
  ExecStats s;
  s.requests = requests.load(std::memory_order_relaxed);
  s.syscalls = syscalls.load(std::memory_order_relaxed);
  s.uring_ops = uring_ops.load(std::memory_order_relaxed);
  s.uring_enters = uring_enters.load(std::memory_order_relaxed);
  s.pool_jobs = pool_jobs.load(std::memory_order_relaxed);
  s.futex_wakes = futex_wakes.load(std::memory_order_relaxed);
  s.futex_waits = futex_waits.load(std::memory_order_relaxed);
  s.timer_waits = timer_waits.load(std::memory_order_relaxed);
  s.ticks = ticks.load(std::memory_order_relaxed);
  s.batches = batches.load(std::memory_order_relaxed);
  s.rejected = rejected.load(std::memory_order_relaxed);
  s.cancels = cancels.load(std::memory_order_relaxed);
  return s;
}

void StatCounters::add_to(SharedStats& s) const noexcept { s.add(snapshot()); }

// ---- claim, pop, publish -------------------------------------------------------------------

bool try_claim(Reg& r) noexcept {
  // A relaxed look first: a claimed buffer costs no locked instruction.
  if (r.claim.load(std::memory_order_relaxed) != 0) return false;
  // seq_cst: acquires the previous holder's release (the consumer state and `taken`), and is
  // ordered before our seq_cst load of `closed` (Dekker pair with Registration::close).
  return r.claim.exchange(1, std::memory_order_seq_cst) == 0;
}

void release_claim(Reg& r) noexcept {
  // release: pairs with the next claimant's exchange (and the deregistering caller's seq_cst load).
  r.claim.store(0, std::memory_order_release);
}

unsigned pop_requests(Reg& r, unsigned max, std::vector<abi::SyscallRequest>& batch, std::vector<Done>& out,
                      StatCounters& st) noexcept {
  if (r.broken.load(std::memory_order_relaxed)) return 0;
  // acquire: pairs with the caller's release of the completion head: the slots it gave back
  // are free, so the credit below is real.
  const std::uint32_t head = r.cq_view.indices->cons.head.load(std::memory_order_acquire);
  const std::uint32_t owed = r.taken - head;
  if (owed > r.capacity) [[unlikely]] {  // a head beyond what was ever published: the caller broke its ring
    r.broken.store(true, std::memory_order_relaxed);
    return 0;
  }
  std::uint32_t credit = r.capacity - owed;
  unsigned n = 0, rejected = 0, cancels = 0;
  // Each request is copied once, straight into the batch (and dropped from it again when it is
  // not executed).
  while (n < max) {
    abi::SyscallRequest& e = batch.emplace_back();
    if (!r.rq.peek(&e)) {
      batch.pop_back();
      break;
    }
    if (e.flags == abi::kCancel) {  // needs no completion slot
      r.rq.pop();
      ++n;
      ++cancels;
      continue;
    }
    if (credit == 0) {  // the caller has not consumed enough completions yet
      batch.pop_back();
      break;
    }
    r.rq.pop();
    ++n;
    ++r.taken;
    --credit;
    std::int64_t err = 0;
    if (e.flags != 0 || e.number > abi::kMaxSyscallNumber || abi::id_index(e.id) >= r.capacity ||
        abi::id_generation(e.id) == 0)
      err = -EINVAL;
    else if (!r.allow.allows_in_range(e.number))  // (the hard-denied numbers are not in it)
      err = -EPERM;
    if (err != 0) {
      out.push_back({&r, e.id, err});
      batch.pop_back();
      ++rejected;
      continue;
    }
  }
  if (r.rq.corrupt()) [[unlikely]] r.broken.store(true, std::memory_order_relaxed);
  r.rq.release();
  st.requests.add(n);
  if (rejected) st.rejected.add(rejected);
  if (cancels) st.cancels.add(cancels);
  return n;
}

void publish(Reg& r, const Done* d, std::size_t n, StatCounters& st, Counters& nc, Signal sig) noexcept {
  if (n == 0) return;
  std::lock_guard lk(r.cq_mu);
  for (std::size_t i = 0; i < n; ++i) {
    abi::SyscallCompletion* e = r.cq.claim();
    if (e == nullptr) [[unlikely]] {  // only a caller that broke its ring gets here (credit)
      r.broken.store(true, std::memory_order_relaxed);
      break;
    }
    e->id = d[i].id;
    e->result = d[i].result;
    r.cq.publish();
  }
  if (sig != Signal::now) {
    if (sig == Signal::defer) r.signal_owed = true;
    return;
  }
  r.signal_owed = false;
  // Under cq_mu: a deregistering caller that passes cq_mu afterwards knows we are done with r.
  if (r.cq.flush() && r.to_caller.send(nc)) st.futex_wakes.add();
}

void flush_owed(Reg& r, StatCounters& st, Counters& nc) noexcept {
  std::lock_guard lk(r.cq_mu);
  if (!r.signal_owed) return;
  r.signal_owed = false;
  if (r.cq.flush() && r.to_caller.send(nc)) st.futex_wakes.add();
}

void publish_all(std::vector<Done>& out, StatCounters& st, Counters& nc, Signal sig) noexcept {
  std::size_t i = 0;
  while (i < out.size()) {
    std::size_t j = i + 1;
    while (j < out.size() && out[j].reg == out[i].reg) ++j;
    publish(*out[i].reg, out.data() + i, j - i, st, nc, sig);
    i = j;
  }
  out.clear();
}

Served serve(ExecState& st, Reg& r, Engine& eng, unsigned max, unsigned share, StatCounters& stc, Counters& nc,
             std::vector<abi::SyscallRequest>& batch, std::vector<Done>& out, Claimant who) {
  const bool coalesce = who == Claimant::sole_core;
  // The registered thread publishing to itself never needs to wake itself.
  const Signal chunk_signal = who == Claimant::caller ? Signal::none : coalesce ? Signal::defer : Signal::now;
  if (r.closed.load(std::memory_order_relaxed) || r.broken.load(std::memory_order_relaxed)) return Served::idle;
  if (!shared_has_data(r.rq_view)) {
    if (coalesce) flush_owed(r, stc, nc);  // ran out of its requests: the put-off wake-up now
    return Served::idle;
  }
  if (!try_claim(r)) return Served::contended;
  // seq_cst: after our seq_cst claim; pairs with Registration::close's store of `closed` and its
  // load of the claim (Dekker): either we see `closed` or it waits for our release.
  if (r.closed.load(std::memory_order_seq_cst)) {
    release_claim(r);
    return Served::idle;
  }
  unsigned take = max;
  if (share > 1) {
    const unsigned avail = r.rq.available();
    take = std::min(max, std::max(1u, (avail + share - 1) / share));
  }
  batch.clear();
  out.clear();
  const std::uint64_t req0 = stc.requests.get(), sys0 = stc.syscalls.get(), uring0 = stc.uring_ops.get(),
                      pool0 = stc.pool_jobs.get(), rej0 = stc.rejected.get(), can0 = stc.cancels.get();
  const unsigned n = pop_requests(r, take, batch, out, stc);
  release_claim(r);
  if (n == 0) {  // no credit: the caller must consume completions first (and must be told of them)
    if (coalesce) flush_owed(r, stc, nc);
    return Served::idle;
  }
  // acquire: pairs with the seq_cst store in shutdown; after it, the pool refuses new work.
  const bool gone = r.gone.load(std::memory_order_acquire);
  // Completions go out in chunks while a long batch runs, so the caller keeps consuming and
  // resubmitting instead of waiting for the whole batch (and perhaps falling asleep meanwhile):
  // every kChunk completions, and, when calls are slow (mmap, munmap, ...), at least every
  // kChunkNs — the clock is read every kLookEvery calls, so fast calls pay for almost none.
  constexpr std::size_t kChunk = 32;
  constexpr std::uint64_t kChunkNs = 10'000;
  constexpr unsigned kLookEvery = 4;
  std::uint64_t last_out = 0;  // when the last chunk went out (0: not looked yet)
  unsigned since_look = 0;
  for (const abi::SyscallRequest& e : batch) {
    bool due = out.size() >= kChunk;
    if (!due && ++since_look == kLookEvery) {
      since_look = 0;
      const std::uint64_t now = now_ns();
      if (last_out == 0) last_out = now;
      else due = !out.empty() && now - last_out >= kChunkNs;
    }
    if (due) {
      publish(r, out.data(), out.size(), stc, nc, chunk_signal);
      out.clear();
      last_out = 0;
      since_look = 0;
    }
    if (e.flags == abi::kCancel) {
      const int reason = e.args[1] == ETIMEDOUT ? ETIMEDOUT : ECANCELED;
      st.pool->cancel(r, static_cast<std::uint64_t>(e.args[0]), reason);
      continue;
    }
    if (gone) {
      out.push_back({&r, e.id, -ESHUTDOWN});
      continue;
    }
    eng.execute(r, e, out);
  }
  // More requests arrived while we executed: we come back for them next sweep, so a sleeping
  // caller is woken once, when the burst is over (flush_owed), not after every batch.
  const bool more = coalesce && shared_has_data(r.rq_view);
  publish(r, out.data(), out.size(), stc, nc, who == Claimant::caller ? Signal::none : more ? Signal::defer : Signal::now);
  out.clear();
  stc.batches.add();
  r.stats.add_batch(stc.requests.get() - req0, stc.syscalls.get() - sys0, stc.uring_ops.get() - uring0,
                    stc.pool_jobs.get() - pool0, stc.rejected.get() - rej0, stc.cancels.get() - can0,
                    st.opts.placement != Placement::shared);
  return Served::worked;
}

// ---- the engine ----------------------------------------------------------------------------

#ifdef UIPC_HAVE_LIBURING
struct Engine::Uring {
  io_uring ring{};
  bool rw_cur_pos = false;  // IORING_FEAT_RW_CUR_POS: offset -1 means the file position
  unsigned pending = 0;     // SQEs queued, not yet submitted
  unsigned outstanding = 0; // queued or submitted, not yet reaped
  struct Op {
    abi::SyscallRequest rq{};
    Reg* reg = nullptr;
    bool nowait = false;
  };
  std::vector<Op> ops;                 // user_data = index + 1
  std::vector<std::uint32_t> free_ops;
  ~Uring() { io_uring_queue_exit(&ring); }
};
#else
struct Engine::Uring {
  bool rw_cur_pos = false;
  unsigned outstanding = 0;
};
#endif

Engine::Engine(ExecState& st, StatCounters& stats, bool use_uring) : st_(st), stats_(stats), want_uring_(use_uring) {}

Engine::~Engine() = default;

unsigned Engine::outstanding() const noexcept { return uring_ ? uring_->outstanding : 0; }

#ifdef UIPC_HAVE_LIBURING
unsigned Engine::unsubmitted() const noexcept { return uring_ ? uring_->pending : 0; }
#else
unsigned Engine::unsubmitted() const noexcept { return 0; }
#endif

bool Engine::execute_direct(const abi::SyscallRequest& rq, const AllowList& allow) {
  if (want_uring_ && !uring_tried_) ensure_uring();
  if (!uring_) return false;
  bool nowait;
  switch (rq.number) {
    case SYS_read:
    case SYS_write:
    case SYS_readv:
    case SYS_writev:
      nowait = true;  // as execute(): a pipe or socket must end up in the pool, never in io_uring
      break;
    case SYS_pread64:
    case SYS_pwrite64:
    case SYS_preadv:
    case SYS_pwritev:
    case SYS_close:
    case SYS_statx:
    case SYS_fsync:
    case SYS_fdatasync:
      nowait = false;
      break;
    // openat is left to the ring path: execute() looks for FIFOs when io_uring cannot take it.
    default:
      return false;
  }
  if (!allow.allows_in_range(rq.number)) return false;  // the ring path answers -EPERM
#ifdef UIPC_HAVE_LIBURING
  // A full SQ makes uring_prep submit at once. Tick mode runs its calls at the ticks only: the
  // call goes the ring way instead (and is executed at the next tick, with the rest).
  if (st_.opts.wake == WakeMode::tick && io_uring_sq_space_left(&uring_->ring) == 0) return false;
#endif
  if (!uring_prep(nullptr, rq, nowait)) return false;
  stats_.requests.add();
  return true;
}

std::int64_t Engine::sys(long n, std::int64_t a0, std::int64_t a1, std::int64_t a2, std::int64_t a3,
                         std::int64_t a4, std::int64_t a5) noexcept {
  stats_.syscalls.add();
  return raw_syscall(n, a0, a1, a2, a3, a4, a5);
}

void Engine::ensure_uring() {
  if (uring_tried_) return;
  uring_tried_ = true;
#ifdef UIPC_HAVE_LIBURING
  // Created on the executing thread, on first use.
  auto u = std::make_unique<Uring>();
  io_uring_params p{};
  p.flags = IORING_SETUP_SUBMIT_ALL;
  int r = io_uring_queue_init_params(st_.opts.uring_entries, &u->ring, &p);
  if (r == -EINVAL) {
    p = io_uring_params{};
    r = io_uring_queue_init_params(st_.opts.uring_entries, &u->ring, &p);
  }
  if (r < 0) {
    want_uring_ = false;
    return;
  }
  u->rw_cur_pos = (p.features & IORING_FEAT_RW_CUR_POS) != 0;
  // Spares io_uring_enter the ring's file lookup (5.18+); without it, enters work as before.
  (void)io_uring_register_ring_fd(&u->ring);
  u->ops.resize(p.cq_entries);
  u->free_ops.reserve(p.cq_entries);
  for (std::uint32_t i = p.cq_entries; i-- > 0;) u->free_ops.push_back(i);
  uring_ = std::move(u);
#else
  want_uring_ = false;
#endif
}

void Engine::to_pool(Reg& r, const abi::SyscallRequest& rq, bool plain, std::int64_t partial) {
  auto job = std::make_unique<Job>();
  job->reg = r.shared_from_this();
  job->rq = rq;
  job->plain = plain;
  job->partial = partial;
  stats_.pool_jobs.add();
  st_.pool->submit(std::move(job));
}

int Engine::fd_may_block(std::int64_t fd) {
  struct stat sb {};
  const std::int64_t s = sys(SYS_fstat, fd, p2i(&sb));
  if (s < 0) return static_cast<int>(s);
  if (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode)) return 1;
  // Character devices: the memory devices (major 1: null, zero, full, random, urandom ...)
  // never wait, except kmsg (1:11); terminals and the rest may.
  if (S_ISCHR(sb.st_mode)) return major(sb.st_rdev) == 1 && minor(sb.st_rdev) != 11 ? 0 : 1;
  return 0;
}

namespace {
bool is_write_call(std::uint32_t n) {
  return n == SYS_write || n == SYS_writev || n == SYS_pwritev2;
}
}  // namespace

void Engine::rw_slow(Reg& r, const abi::SyscallRequest& rq, std::int64_t e, std::vector<Done>& out, bool allow_uring) {
  const auto* a = rq.args;
  auto done = [&](std::int64_t v) { out.push_back({&r, rq.id, v}); };
  const std::int64_t fl = sys(SYS_fcntl, a[0], F_GETFL);
  if (fl < 0) return done(fl);
  if ((fl & O_NONBLOCK) != 0) {  // the caller asked for non-blocking I/O: the plain call is safe
    return rw_done(r, rq, sys(rq.number, a[0], a[1], a[2], a[3], a[4], a[5]), out);
  }
  const int blocks = fd_may_block(a[0]);
  if (blocks < 0) return done(blocks);
  if (blocks) return to_pool(r, rq, false);
  if (e == -EOPNOTSUPP) return rw_done(r, rq, sys(rq.number, a[0], a[1], a[2], a[3], a[4], a[5]), out);
  // -EAGAIN on a file or block device: the page cache does not have it. Let io_uring's workers
  // wait for the disk, or the pool; never this thread.
#ifdef UIPC_HAVE_LIBURING
  if (allow_uring && uring_ && uring_prep(&r, rq, false)) return;
#else
  (void)allow_uring;
#endif
  to_pool(r, rq, true);
}

void Engine::rw_done(Reg& r, const abi::SyscallRequest& rq, std::int64_t res, std::vector<Done>& out) {
  if ((rq.number == SYS_write) && res > 0 && res < rq.args[2]) {
    const int blocks = fd_may_block(rq.args[0]);
    if (blocks > 0) return to_pool(r, rq, false, res);
  }
  out.push_back({&r, rq.id, res});
}

#ifdef UIPC_HAVE_LIBURING
bool Engine::uring_prep(Reg* r, const abi::SyscallRequest& rq, bool nowait) {
  if (!uring_) return false;
  Uring& u = *uring_;
  const auto* a = rq.args;
  const std::uint32_t n = rq.number;
  // Decide before taking an SQE: everything below must prepare one.
  switch (n) {
    case SYS_read:
    case SYS_write:
    case SYS_readv:
    case SYS_writev:
      if (!u.rw_cur_pos) return false;
      if ((n == SYS_read || n == SYS_write) && (a[2] < 0 || a[2] > INT_MAX)) return false;
      break;
    case SYS_pread64:
    case SYS_pwrite64:
      if (a[3] < 0 || a[2] < 0 || a[2] > INT_MAX) return false;  // pread's EINVAL, not io_uring's "file position"
      break;
    case SYS_preadv:
    case SYS_pwritev:
      if (a[3] < 0) return false;
      break;
    case SYS_openat:
    case SYS_close:
    case SYS_statx:
    case SYS_fsync:
    case SYS_fdatasync:
      break;
    default:
      return false;
  }
  if (u.free_ops.empty()) return false;  // as many in flight as the CQ holds: go direct
  io_uring_sqe* sqe = io_uring_get_sqe(&u.ring);
  if (sqe == nullptr) {
    submit_sq();  // SQ full: one enter now (completions are reaped with the rest), then go on
    sqe = io_uring_get_sqe(&u.ring);
    if (sqe == nullptr) return false;
  }
  const int fd = static_cast<int>(a[0]);
  switch (n) {
    case SYS_read:
      io_uring_prep_read(sqe, fd, i2p(a[1]), static_cast<unsigned>(a[2]), ~0ull);
      break;
    case SYS_write:
      io_uring_prep_write(sqe, fd, i2p(a[1]), static_cast<unsigned>(a[2]), ~0ull);
      break;
    case SYS_readv:
      io_uring_prep_readv(sqe, fd, static_cast<const iovec*>(i2p(a[1])), static_cast<unsigned>(a[2]), ~0ull);
      break;
    case SYS_writev:
      io_uring_prep_writev(sqe, fd, static_cast<const iovec*>(i2p(a[1])), static_cast<unsigned>(a[2]), ~0ull);
      break;
    case SYS_pread64:
      io_uring_prep_read(sqe, fd, i2p(a[1]), static_cast<unsigned>(a[2]), static_cast<std::uint64_t>(a[3]));
      break;
    case SYS_pwrite64:
      io_uring_prep_write(sqe, fd, i2p(a[1]), static_cast<unsigned>(a[2]), static_cast<std::uint64_t>(a[3]));
      break;
    case SYS_preadv:
      io_uring_prep_readv(sqe, fd, static_cast<const iovec*>(i2p(a[1])), static_cast<unsigned>(a[2]),
                          static_cast<std::uint64_t>(a[3]));
      break;
    case SYS_pwritev:
      io_uring_prep_writev(sqe, fd, static_cast<const iovec*>(i2p(a[1])), static_cast<unsigned>(a[2]),
                           static_cast<std::uint64_t>(a[3]));
      break;
    case SYS_openat:
      io_uring_prep_openat(sqe, fd, static_cast<const char*>(i2p(a[1])), static_cast<int>(a[2]),
                           static_cast<mode_t>(a[3]));
      break;
    case SYS_close:
      io_uring_prep_close(sqe, fd);
      break;
    case SYS_statx:
      io_uring_prep_statx(sqe, fd, static_cast<const char*>(i2p(a[1])), static_cast<int>(a[2]),
                          static_cast<unsigned>(a[3]), static_cast<struct statx*>(i2p(a[4])));
      break;
    case SYS_fsync:
      io_uring_prep_fsync(sqe, fd, 0);
      break;
    case SYS_fdatasync:
      io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
      break;
  }
  if (nowait) sqe->rw_flags = RWF_NOWAIT;
  const std::uint32_t idx = u.free_ops.back();
  u.free_ops.pop_back();
  Uring::Op& op = u.ops[idx];  // written in place, word by word (no temporary to copy through)
  ring_detail::copy_words(&op.rq, &rq);
  op.reg = r;
  op.nowait = nowait;
  io_uring_sqe_set_data64(sqe, std::uint64_t{idx} + 1);
  ++u.pending;
  ++u.outstanding;
  stats_.uring_ops.add();
  return true;
}

void Engine::submit_sq() {
  Uring& u = *uring_;
  if (u.pending == 0) return;
  stats_.uring_enters.add();
  const int r = io_uring_submit(&u.ring);
  if (r >= 0) u.pending = 0;  // otherwise (EAGAIN, EBUSY) the SQEs stay queued for the next sweep
}

void Engine::submit(std::vector<Done>& out) {
  if (!uring_) return;
  submit_sq();
  reap(out);
}

void Engine::reap(std::vector<Done>& out) {
  if (!uring_ || uring_->outstanding == 0) return;
  Uring& u = *uring_;
  // Straight from the CQ ring (no kernel entry): at most cq_entries operations are ever out, so
  // the CQ cannot overflow and there is never anything to flush from the kernel's side.
  for (;;) {
    std::uint64_t data[64];
    std::int32_t res[64];
    unsigned n = 0, head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&u.ring, head, cqe) {
      data[n] = cqe->user_data;
      res[n] = cqe->res;
      if (++n == 64) break;
    }
    if (n == 0) break;
    io_uring_cq_advance(&u.ring, n);
    for (unsigned i = 0; i < n; ++i) handle_cqe(data[i], res[i], out);
    if (n < 64) break;
  }
}

void Engine::handle_cqe(std::uint64_t data, std::int32_t res, std::vector<Done>& out) {
  Uring& u = *uring_;
  if (data == 0 || data > u.ops.size()) return;  // not ours (cannot happen)
  const std::uint32_t idx = static_cast<std::uint32_t>(data - 1);
  Uring::Op& op = u.ops[idx];
  --u.outstanding;
  if (op.reg == nullptr) return direct_cqe(idx, res);
  if (op.nowait && (res == -EAGAIN || res == -EOPNOTSUPP)) [[unlikely]] {
    // The slow path may queue a new operation (into this very slot, once it is free): copy first.
    Uring::Op slow;
    ring_detail::copy_words(&slow.rq, &op.rq);
    slow.reg = op.reg;
    u.free_ops.push_back(idx);
    return rw_slow(*slow.reg, slow.rq, res, out, true);
  }
  u.free_ops.push_back(idx);  // nothing below reuses the slot before we are done with `op`
  if (op.rq.number == SYS_write) return rw_done(*op.reg, op.rq, res, out);
  out.push_back({op.reg, op.rq.id, res});
}
void Engine::direct_cqe(std::uint32_t idx, std::int32_t res) {
  Uring& u = *uring_;
  const Uring::Op& op = u.ops[idx];
  const std::uint64_t id = op.rq.id;
  const std::uint32_t n = op.rq.number;
  const std::int64_t fd = op.rq.args[0], len = op.rq.args[2];
  const bool nowait = op.nowait;
  u.free_ops.push_back(idx);  // `op` is not looked at again
  if (nowait && (res == -EAGAIN || res == -EOPNOTSUPP)) [[unlikely]] {
    direct_.push_back({id, 0, 0, true});  // the ring path classifies it (pool, plain call, io_uring)
    return;
  }
  if (n == SYS_write && res > 0 && res < len) [[unlikely]] {
    // As rw_done: a blocking write on a pipe or socket moves every byte; the rest the ring way.
    const int blocks = fd_may_block(fd);
    if (blocks > 0) {
      direct_.push_back({id, 0, res, true});
      return;
    }
  }
  direct_.push_back({id, res, 0, false});
}
#else
bool Engine::uring_prep(Reg*, const abi::SyscallRequest&, bool) { return false; }
void Engine::direct_cqe(std::uint32_t, std::int32_t) {}
void Engine::submit_sq() {}
void Engine::submit(std::vector<Done>&) {}
void Engine::reap(std::vector<Done>&) {}
void Engine::handle_cqe(std::uint64_t, std::int32_t, std::vector<Done>&) {}
#endif

void Engine::execute(Reg& r, const abi::SyscallRequest& rq, std::vector<Done>& out) {
  const auto* a = rq.args;
  auto done = [&](std::int64_t v) { out.push_back({&r, rq.id, v}); };
  if (want_uring_ && !uring_tried_) ensure_uring();
  const bool uring = uring_ != nullptr;
  switch (rq.number) {
    case SYS_read:
    case SYS_write:
    case SYS_readv:
    case SYS_writev: {
      if (uring && uring_prep(&r, rq, true)) return;
      const bool wr = is_write_call(rq.number);
      iovec one{i2p(a[1]), static_cast<std::size_t>(a[2])};
      const bool single = rq.number == SYS_read || rq.number == SYS_write;
      if (single && a[2] < 0) return done(-EINVAL);
      const std::int64_t res = sys(wr ? SYS_pwritev2 : SYS_preadv2, a[0], single ? p2i(&one) : a[1], single ? 1 : a[2],
                                   -1, 0, RWF_NOWAIT);
      if (res == -EAGAIN || res == -EOPNOTSUPP) return rw_slow(r, rq, res, out, uring);
      return rw_done(r, rq, res, out);
    }
    case SYS_preadv2:
    case SYS_pwritev2: {
      // At the file position (offset -1) these read and write like readv/writev, and may block.
      if (a[3] != -1 || (a[5] & RWF_NOWAIT) != 0) return done(sys(rq.number, a[0], a[1], a[2], a[3], a[4], a[5]));
      const std::int64_t res = sys(rq.number, a[0], a[1], a[2], a[3], a[4], a[5] | RWF_NOWAIT);
      if (res == -EAGAIN || res == -EOPNOTSUPP) return rw_slow(r, rq, res, out, false);
      return done(res);
    }
    case SYS_pread64:
    case SYS_pwrite64:
    case SYS_preadv:
    case SYS_pwritev:
      // Positional I/O never waits on a pipe or socket (ESPIPE); on a file it waits at most for
      // the disk.
      if (uring && uring_prep(&r, rq, false)) return;
      return done(sys(rq.number, a[0], a[1], a[2], a[3], a[4], a[5]));
    case SYS_openat: {
      if (uring && uring_prep(&r, rq, false)) return;
      // Opening a FIFO without O_NONBLOCK waits for the other end.
      if ((a[2] & (O_NONBLOCK | O_CREAT | O_PATH)) == 0) {
        struct stat sb {};
        if (sys(SYS_newfstatat, a[0], a[1], p2i(&sb), 0) == 0 && S_ISFIFO(sb.st_mode)) return to_pool(r, rq, true);
      }
      return done(sys(SYS_openat, a[0], a[1], a[2], a[3]));
    }
    case SYS_close:
    case SYS_statx:
      if (uring && uring_prep(&r, rq, false)) return;
      return done(sys(rq.number, a[0], a[1], a[2], a[3], a[4], a[5]));
    case SYS_fsync:
    case SYS_fdatasync:
      if (uring && uring_prep(&r, rq, false)) return;
      return to_pool(r, rq, true);
    case SYS_gettid:  // the registered thread's, not the executing thread's
      return done(r.tid);
    case SYS_recvfrom:
    case SYS_sendto:
    case SYS_recvmsg:
    case SYS_sendmsg: {
      const int fi = rq.number == SYS_recvfrom || rq.number == SYS_sendto ? 3 : 2;
      std::int64_t args[6] = {a[0], a[1], a[2], a[3], a[4], a[5]};
      args[fi] |= MSG_DONTWAIT;
      const std::int64_t res = sys(rq.number, args[0], args[1], args[2], args[3], args[4], args[5]);
      if (res != -EAGAIN || (a[fi] & MSG_DONTWAIT) != 0) {
        if (rq.number == SYS_sendto && res > 0 && res < a[2]) return to_pool(r, rq, false, res);
        return done(res);
      }
      const std::int64_t fl = sys(SYS_fcntl, a[0], F_GETFL);
      if (fl >= 0 && (fl & O_NONBLOCK) != 0) return done(res);
      return to_pool(r, rq, false);
    }
    case SYS_accept:
    case SYS_accept4:
    case SYS_nanosleep:
    case SYS_clock_nanosleep:
    case SYS_ppoll:
      return to_pool(r, rq, false);
    case SYS_poll:
      if (a[2] == 0) return done(sys(SYS_poll, a[0], a[1], 0));
      return to_pool(r, rq, false);
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
      if (a[3] == 0) return done(sys(rq.number, a[0], a[1], a[2], 0, a[4], a[5]));
      return to_pool(r, rq, false);
    case SYS_wait4:
      if ((a[2] & WNOHANG) != 0) return done(sys(SYS_wait4, a[0], a[1], a[2], a[3]));
      return to_pool(r, rq, false);
    case SYS_waitid:
      if ((a[3] & WNOHANG) != 0) return done(sys(SYS_waitid, a[0], a[1], a[2], a[3], a[4]));
      return to_pool(r, rq, false);
    case SYS_fcntl:
      if (a[1] == F_SETLKW || a[1] == F_OFD_SETLKW) return to_pool(r, rq, true);
      return done(sys(SYS_fcntl, a[0], a[1], a[2]));
    case SYS_flock:
      if ((a[1] & LOCK_NB) != 0) return done(sys(SYS_flock, a[0], a[1]));
      return to_pool(r, rq, true);
    case SYS_msync:
      if ((a[2] & MS_SYNC) != 0) return to_pool(r, rq, true);
      return done(sys(SYS_msync, a[0], a[1], a[2]));
    // No interruptible form; they may wait long or for ever: never on this thread.
    case SYS_connect:
    case SYS_sync:
    case SYS_syncfs:
    case SYS_sync_file_range:
    case SYS_select:
    case SYS_pselect6:
    case SYS_pause:
    case SYS_futex:
    case SYS_rt_sigsuspend:
    case SYS_rt_sigtimedwait:
    case SYS_msgrcv:
    case SYS_msgsnd:
    case SYS_semop:
    case SYS_semtimedop:
    case SYS_mq_timedreceive:
    case SYS_mq_timedsend:
    case SYS_splice:
    case SYS_tee:
    case SYS_sendfile:
    case SYS_copy_file_range:
    case SYS_io_getevents:
    case SYS_epoll_pwait2:
      return to_pool(r, rq, true);
    default:
      return done(sys(rq.number, a[0], a[1], a[2], a[3], a[4], a[5]));
  }
}

}  // namespace uipc::sys::detail
