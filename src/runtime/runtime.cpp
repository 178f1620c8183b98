#include "uipc/runtime/runtime.hpp"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace uipc {

namespace {

thread_local Runtime* t_current = nullptr;

// A fire-and-forget coroutine that owns a spawned Task and frees itself when it ends.
struct Detached {
  struct promise_type {
    static void* operator new(std::size_t n) { return detail::frame_pool::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { detail::frame_pool::deallocate(p, n); }
    Detached get_return_object() noexcept { return {std::coroutine_handle<promise_type>::from_promise(*this)}; }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {
      std::fprintf(stderr, "uipc: a spawned task ended with an exception\n");
      std::abort();
    }
  };
  std::coroutine_handle<promise_type> h;
};

Detached run_detached(std::size_t* live, Task<void> t) {
  try {
    co_await std::move(t);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "uipc: a spawned task threw: %s\n", e.what());
    std::abort();
  }
  --*live;
}

inline void cpu_relax() noexcept { __builtin_ia32_pause(); }

// Spin windows below this are timed every 8 rounds, longer ones every 64 (see Runtime::idle).
constexpr std::int64_t kCoarseSpinNs = 16'000;
// A runtime whose ready queue never empties (a coroutine looping on yield(), say) still runs its
// deferred work and polls its window after this many resumptions in a row: the flushes that
// signal a sleeping peer go out, and replies to a busy runtime are still taken. Above the
// ready-queue lengths of ordinary batches (up to 256 calls in flight), so these see no change.
constexpr unsigned kMaxStepsWithoutPoll = 1024;

}  // namespace

// ---- WaitList ----

void WaitList::push(Node* n) noexcept {
  n->next = nullptr;
  if (tail_ != nullptr) tail_->next = n;
  else head_ = n;
  tail_ = n;
}

bool WaitList::wake_one() noexcept {
  Node* n = head_;
  if (n == nullptr) return false;
  head_ = n->next;
  if (head_ == nullptr) tail_ = nullptr;
  Runtime::current()->schedule(n->h);
  return true;
}

unsigned WaitList::wake_all() noexcept {
  unsigned k = 0;
  while (wake_one()) ++k;
  return k;
}

// ---- Runtime ----

Runtime::Runtime(RuntimeOptions opts)
    : opts_(opts), spin_window_(opts.spin_ns > 0 ? opts.spin_ns : 0), handlers_(new Handler[abi::kMaxSlots]),
      slot_used_(abi::kMaxSlots / 64, 0) {
#ifdef UIPC_SHUFFLE_READY_QUEUE
  shuffle_ = true;
#endif
  auto n = Notification::create();
  if (!n) {
    std::fprintf(stderr, "uipc: cannot create the runtime's notification: %s\n", n.error().message().c_str());
    std::abort();
  }
  notif_ = std::make_shared<Notification>(std::move(n.value()));
}

Runtime::~Runtime() {
  // Tasks still suspended here belong to their owners (channels, servers), which must be
  // destroyed first; ready handles that never ran are destroyed with their frames' owners.
}

Runtime* Runtime::current() noexcept { return t_current; }

void Runtime::enter() {
  if (depth_ == 0) {
    // One runtime per thread, one thread per runtime: both are programming errors, caught here
    // rather than left to corrupt the ready queue.
    if (t_current != nullptr && t_current != this) {
      std::fprintf(stderr, "uipc: this thread already runs another Runtime (one runtime per thread)\n");
      std::abort();
    }
    const auto self = std::this_thread::get_id();
    std::thread::id none;
    if (!owner_.compare_exchange_strong(none, self, std::memory_order_acquire) && none != self) {
      std::fprintf(stderr, "uipc: a Runtime is running on two threads at once\n");
      std::abort();
    }
    t_current = this;
  }
  ++depth_;
}

void Runtime::leave() noexcept {
  if (--depth_ == 0) {
    t_current = nullptr;
    owner_.store(std::thread::id{}, std::memory_order_release);
  }
}

void Runtime::spawn(Task<void> t) {
  ++live_tasks_;
  schedule(run_detached(&live_tasks_, std::move(t)).h);
}

void Runtime::run() {
  loop([this] { return live_tasks_ == 0; });
}

void detail::ReadyQueue::grow() {
  std::vector<std::coroutine_handle<>> bigger(slots_.empty() ? 64 : 2 * slots_.size());
  const std::size_t n = size();
  for (std::size_t i = 0; i < n; ++i) bigger[i] = slots_[(head_ + i) & (slots_.size() - 1)];
  slots_.swap(bigger);
  head_ = 0;
  tail_ = n;
}

void detail::ReadyQueue::insert(std::size_t at, std::coroutine_handle<> h) {
  push_back(h);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = tail_ - 1; i > head_ + at; --i) std::swap(slots_[i & mask], slots_[(i - 1) & mask]);
}

void Runtime::schedule_shuffled(std::coroutine_handle<> h) {
  // xorshift: put the new handle at a random position to expose ordering assumptions.
  shuffle_state_ ^= shuffle_state_ << 13;
  shuffle_state_ ^= shuffle_state_ >> 7;
  shuffle_state_ ^= shuffle_state_ << 17;
  if (!ready_.empty() && (shuffle_state_ & 1)) {
    ready_.insert(shuffle_state_ % ready_.size(), h);
    return;
  }
  ready_.push_back(h);
}

std::uint64_t Runtime::now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

void Runtime::arm_timer(TimerNode& n, std::uint64_t deadline_ns) {
  if (n.armed) cancel_timer(n);
  n.it = timers_.emplace(deadline_ns, &n);
  n.armed = true;
}

void Runtime::erase_timer(TimerNode& n) noexcept {
  timers_.erase(n.it);
  n.armed = false;
}

std::int64_t Runtime::fire_timers() {
  if (timers_.empty()) return -1;
  const std::uint64_t now = now_ns();
  while (!timers_.empty()) {
    auto it = timers_.begin();
    if (it->first > now) return static_cast<std::int64_t>(it->first - now);
    TimerNode* n = it->second;
    timers_.erase(it);
    n->armed = false;
    n->fire(n->ctx);
  }
  return -1;
}

Result<std::uint32_t> Runtime::allocate_slot() {
  std::lock_guard lk(slot_mu_);
  for (std::uint32_t w = 0; w < slot_used_.size(); ++w) {
    if (~slot_used_[w] != 0) {
      const unsigned b = static_cast<unsigned>(__builtin_ctzll(~slot_used_[w]));
      slot_used_[w] |= std::uint64_t{1} << b;
      return w * 64 + b;
    }
  }
  return std::errc::too_many_files_open;
}

void Runtime::release_slot(std::uint32_t slot) {
  if (slot >= abi::kMaxSlots) return;
  unbind(slot);
  notif_->unwatch(slot);
  std::lock_guard lk(slot_mu_);
  slot_used_[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
}

void Runtime::bind(std::uint32_t slot, SlotHandler fn, void* ctx, RaiseFlag* flag) {
  if (slot >= abi::kMaxSlots || fn == nullptr) return;
  notif_->watch(slot, flag);
  handlers_[slot].ctx.store(ctx, std::memory_order_relaxed);
  // release: pairs with the acquire load in dispatch_interrupts(), which then sees ctx.
  if (handlers_[slot].fn.exchange(fn, std::memory_order_acq_rel) == nullptr)
    bound_slots_.fetch_add(1, std::memory_order_relaxed);
}

void Runtime::unbind(std::uint32_t slot) {
  if (slot >= abi::kMaxSlots) return;
  if (handlers_[slot].fn.exchange(nullptr, std::memory_order_acq_rel) != nullptr)
    bound_slots_.fetch_sub(1, std::memory_order_relaxed);
}

void Runtime::post(std::function<void()> fn) {
  {
    std::lock_guard lk(post_mu_);
    posted_.push_back(std::move(fn));
  }
  Counters scratch;  // the posting thread is not this runtime's: its counts are not ours
  notif_->raise_service(scratch);
}

void Runtime::sweep() {
  // Nothing raised us for a whole backstop interval: act as if everything had been raised once
  // (a lost or stolen raise — a peer can clear bits in our notification word — then costs at
  // most one interval). Handlers tolerate spurious calls: they only re-check and wake.
  counters_.backstops.add();
  notif_->raise_service(counters_);  // runs posted work, if any was lost
  for (std::uint32_t slot = 0; slot < abi::kMaxSlots; ++slot) {
    Handler& h = handlers_[slot];
    if (SlotHandler fn = h.fn.load(std::memory_order_acquire)) fn(h.ctx.load(std::memory_order_relaxed), slot);
  }
  poll_all();
}

void Runtime::dispatch_interrupts() {
  if (notif_->peek() == 0) return;
  counters_.interrupts.add();
  if (notif_->take_service()) {
    std::vector<std::function<void()>> run;
    {
      std::lock_guard lk(post_mu_);
      run.swap(posted_);
    }
    for (auto& fn : run) fn();
  }
  notif_->take([this](std::uint32_t slot) {
    Handler& h = handlers_[slot];
    // acquire: pairs with the release store in bind().
    if (SlotHandler fn = h.fn.load(std::memory_order_acquire)) fn(h.ctx.load(std::memory_order_relaxed), slot);
  });
}

void Runtime::park(Poller& p) noexcept {
  if (p.linked) return;
  p.prev = nullptr;
  p.next = pollers_;
  if (pollers_ != nullptr) pollers_->prev = &p;
  else pollers_tail_ = &p;
  pollers_ = &p;
  p.linked = true;
  p.armed = false;
  p.cold = false;
  ++pollers_count_;
  if (p.tick_driven) ++tick_pollers_;
  if (pollers_count_ > opts_.max_polled) {
    // The poller now at position max_polled leaves the window: the one before the old first
    // cold poller (with a window of 0, p itself), or the last one if none was cold yet.
    Poller* out = first_cold_ != nullptr ? first_cold_->prev : pollers_tail_;
    first_cold_ = out;
    cool(*out);
  }
}

void Runtime::unpark(Poller& p) noexcept {
  if (!p.linked) return;
  if (p.cold) {
    if (first_cold_ == &p) first_cold_ = p.next;
  } else if (first_cold_ != nullptr) {
    // A place in the window opens: the first cold poller moves into it (polled from now on;
    // still armed until the runtime next disarms the window, which costs only a signal).
    first_cold_->cold = false;
    drop_retry(*first_cold_);
    first_cold_ = first_cold_->next;
  }
  drop_retry(p);
  p.cold = false;
  if (p.prev != nullptr) p.prev->next = p.next;
  else pollers_ = p.next;
  if (p.next != nullptr) p.next->prev = p.prev;
  else pollers_tail_ = p.prev;
  p.linked = false;
  if (p.armed) {
    p.disarm(p.ctx);
    p.armed = false;
  }
  --pollers_count_;
  if (p.tick_driven) --tick_pollers_;
}

void Runtime::flag_taken(Poller& p) noexcept {
  if (!p.linked) return;
  p.armed = false;
  if (p.cold) queue_retry(p);
}

void Runtime::cool(Poller& p) noexcept {
  p.cold = true;
  if (p.armed) return;
  // Arming re-checks the ring. Work already there is not polled here (park may be running
  // inside someone's await_suspend): the next step polls it and arms it again.
  if (p.arm(p.ctx)) p.armed = true;
  else queue_retry(p);
}

void Runtime::queue_retry(Poller& p) noexcept {
  if (p.retry_queued) return;
  p.retry_queued = true;
  p.retry_next = nullptr;
  p.retry_prev = retry_tail_;
  if (retry_tail_ != nullptr) retry_tail_->retry_next = &p;
  else retry_ = &p;
  retry_tail_ = &p;
  ++retry_count_;
}

void Runtime::drop_retry(Poller& p) noexcept {
  if (!p.retry_queued) return;
  if (p.retry_prev != nullptr) p.retry_prev->retry_next = p.retry_next;
  else retry_ = p.retry_next;
  if (p.retry_next != nullptr) p.retry_next->retry_prev = p.retry_prev;
  else retry_tail_ = p.retry_prev;
  p.retry_queued = false;
  --retry_count_;
}

void Runtime::rearm_cold() {
  // Only those queued now: a poll below may queue pollers again, for the next step.
  for (std::size_t n = retry_count_; n != 0 && retry_ != nullptr; --n) {
    Poller& p = *retry_;
    drop_retry(p);
    if (!p.linked || !p.cold || p.armed) continue;
    if (p.arm(p.ctx)) {
      p.armed = true;
      continue;
    }
    p.poll(p.ctx);  // its work makes something ready (or unparks it)
    if (p.linked && p.cold && !p.armed) queue_retry(p);
  }
}

void Runtime::cancel_deferred(Deferred& d) noexcept {
  if (!d.queued) return;
  for (Deferred** pp = &deferred_; *pp != nullptr; pp = &(*pp)->next) {
    if (*pp == &d) {
      *pp = d.next;
      d.queued = false;
      return;
    }
  }
}

void Runtime::run_deferred() {
  while (Deferred* d = deferred_) {
    deferred_ = d->next;
    d->queued = false;
    d->fn(d->ctx);
  }
}

bool Runtime::poll_first(std::size_t n) {
  bool found = false;
  for (Poller* p = pollers_; p != nullptr && n != 0; --n) {
    Poller* next = p->next;  // poll() may unpark p
    if (p->poll(p->ctx)) found = true;
    p = next;
  }
  return found;
}

bool Runtime::arm_all() {
  for (Poller* p = pollers_; p != nullptr;) {
    Poller* next = p->next;
    if (!p->armed) {
      if (!p->arm(p->ctx)) {  // work arrived between the last poll and the arm
        p->poll(p->ctx);
        return false;
      }
      p->armed = true;
    }
    p = next;
  }
  return true;
}

void Runtime::disarm_window() noexcept {
  std::size_t n = opts_.max_polled;
  for (Poller* p = pollers_; p != nullptr && n != 0; p = p->next, --n) {
    if (p->armed) {
      p->disarm(p->ctx);
      p->armed = false;
    }
  }
}

bool Runtime::step() {
  if (notif_->peek() != 0) dispatch_interrupts();  // the look inline: it finds nothing most times
  if (retry_ != nullptr) rearm_cold();
  if (!timers_.empty()) fire_timers();
  if (ready_.empty() || ++steps_without_poll_ >= kMaxStepsWithoutPoll) {
    steps_without_poll_ = 0;
    if (deferred_ != nullptr) run_deferred();
    if (pollers_ != nullptr) poll_window();
    if (ready_.empty()) return false;
  }
  std::coroutine_handle<> h = ready_.pop_front();
  counters_.switches.add();
  h.resume();
  return true;
}

void Runtime::grow_spin_window() noexcept {
  if (opts_.adaptive_spin) spin_window_ = std::min(opts_.spin_ns, std::max(spin_window_ * 2, kMinSpinNs));
}

void Runtime::idle() {
  // Pollers beyond the polling window are armed already (step() re-arms those whose arming an
  // interrupt took); those within it are polled while spinning and armed before yielding.
  const bool poll = opts_.max_polled != 0;
  // 1. spin: cheap checks of the pending word (and polls of parked rings); the clock only
  //    every 64 rounds, and not at all when work comes within the first 64 (the common case
  //    of a busy peer: a clock read costs as much as the rest of a round trip's idle pass).
  //    A short window (below kCoarseSpinNs: the adaptive window shrank because spins found
  //    nothing) is timed every 8 rounds instead: 64 rounds of pause + polls take 2-6 us, so
  //    a 1 us window would otherwise spin 128 rounds, several times its length.
  const bool only_ticks = pollers_count_ != 0 && tick_pollers_ == pollers_count_;
  if (spin_window_ > 0 && !only_ticks) {
    std::uint64_t until = 0;  // set at the first clock read: the window counts from there
    std::uint64_t rounds = 0;
    const std::uint64_t clock_mask = spin_window_ < kCoarseSpinNs ? 7 : 63;
    for (;;) {
      if (notif_->peek() != 0 || (poll && pollers_ != nullptr && poll_window())) {
        counters_.spins.add(rounds);
        grow_spin_window();
        return;
      }
      cpu_relax();
      if ((++rounds & clock_mask) == 0) {
        if (!timers_.empty()) fire_timers();
        if (!ready_.empty()) break;
        const std::uint64_t now = now_ns();
        if (until == 0) until = now + static_cast<std::uint64_t>(spin_window_);
        else if (now >= until) break;
      }
    }
    counters_.spins.add(rounds);
    if (!ready_.empty()) return;  // a timer fired: work found
    if (opts_.adaptive_spin) spin_window_ = std::max(std::min(kMinSpinNs, opts_.spin_ns), spin_window_ / 2);
  }
  // 2. from here on, producers must signal: arm every parked poller (re-checking each ring).
  if (poll && !arm_all()) {
    disarm_window();
    return;
  }
  // 3. yield the rest of the time slice.
  bool woke = false;
  for (unsigned i = 0; i < opts_.yields && !woke; ++i) {
    ::sched_yield();
    counters_.yields.add();
    counters_.kernel_entries.add();
    woke = notif_->peek() != 0;
  }
  // 4. sleep until a send, the next timer or the backstop.
  if (!woke && opts_.sleep) {
    std::int64_t timeout = fire_timers();
    const bool backstop = (pollers_ != nullptr || bound_slots_.load(std::memory_order_relaxed) != 0) &&
                          opts_.backstop_ns > 0 && (timeout < 0 || timeout > opts_.backstop_ns);
    if (backstop) timeout = opts_.backstop_ns;
    if (ready_.empty()) {
      const std::uint64_t asleep = now_ns();
      if (notif_->wait(timeout, counters_)) {
        if (notif_->peek() != 0) {
          // A send ended the sleep soon after it began: a slightly longer spin would have caught
          // it without the two kernel entries. Without this the window, once at its floor,
          // could never grow back for a peer that answers in a few microseconds: every such
          // reply would find us asleep and no spin would ever find work.
          if (now_ns() - asleep < static_cast<std::uint64_t>(std::max<std::int64_t>(opts_.short_sleep_ns, 0))) {
            counters_.short_sleeps.add();
            grow_spin_window();
          }
        } else if (backstop) {
          sweep();
        }
      }
    }
  }
  // Busy again: back to polling, so producers stop paying for notifications.
  if (poll) disarm_window();
}

}  // namespace uipc
