// uipc/runtime/runtime.hpp — the per-thread user-mode async runtime (note §1.2, §1.5).
//
// What it guarantees:
//  * One Runtime runs on one thread at a time; it owns a U-notification (its "interrupt
//    controller"): peers raise slots on it, and at every scheduling point the runtime takes the
//    pending slots and runs each slot's handler. Handlers only make coroutines ready; they
//    never run user code themselves.
//  * Ready coroutines run in FIFO order (shuffled in UIPC_SHUFFLE_READY_QUEUE builds). Deferred
//    work runs and the polling window is polled whenever the ready queue empties, and at least
//    every 1024 resumptions if it never does (a coroutine spinning on yield() starves neither).
//  * Idle policy: spin up to Options::spin_ns looking for interrupts or due timers, then
//    sched_yield up to Options::yields times, then sleep on the notification's futex until a
//    peer raises a slot or the next timer is due. With Options::adaptive_spin the window
//    halves after each spin that found nothing and doubles after one that found work (between
//    kMinSpinNs and spin_ns), so a runtime whose peer is not running (more threads than CPUs)
//    soon stops spinning away the peer's CPU time; a sleep that a send ends within
//    short_sleep_ns doubles it too, so a peer that answers in a few microseconds wins the spin
//    back. A sleeping runtime costs no CPU and is woken
//    by any send (DESIGN §1: the note's caveat does not apply). A runtime whose parked pollers
//    are all tick-driven (Poller::tick_driven) skips the spin: nothing it waits for can come
//    before the peer's next tick.
//  * Timers fire no earlier than their deadline.
//  * Parked pollers (consumers waiting on a ring) are polled, not armed, while the runtime has
//    work or spins, so a busy peer's producer finds no waiter armed and sends no notification
//    (suppressed); they are armed — handshake arm + re-check — before the runtime yields or
//    sleeps, so no wake-up is lost (DESIGN §3). This is the note's §3.4 hybrid applied to IPC.
//    Only the max_polled most recently parked are polled (the window); every poller beyond it is
//    kept armed — armed as it leaves the window, re-armed at the next step after an interrupt
//    took its arming — so it is served by interrupts and never starves behind busy ones.
// Who may call:
//  * run / block_on / spawn / sleep_for / timers / WaitList: the thread running the runtime
//    (spawn and bind may also be called before it starts, from the thread that will start it
//    or any other, as long as the runtime is not running).
//  * allocate_slot / release_slot / bind / unbind / post: any thread (mutexes guard the slot
//    table and the posted queue).
//  * notification().mint(...).send(): any thread of any process.
// What blocks: run and block_on (until their work is done); the idle sleep inside them.
#pragma once

#include <coroutine>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <type_traits>
#include <vector>

#include "uipc/abi/layout.hpp"
#include "uipc/notify/counters.hpp"
#include "uipc/notify/notification.hpp"
#include "uipc/result.hpp"
#include "uipc/runtime/task.hpp"

namespace uipc {

struct RuntimeOptions {
  std::int64_t spin_ns = 50'000;  // busy-poll window before yielding / sleeping (the most)
  // The window adapts between kMinSpinNs and spin_ns: halved by a spin that found nothing,
  // doubled by one that found work. false: always spin_ns.
  bool adaptive_spin = true;
  // A sleep that a send ends sooner than this counts as short (Counters::short_sleeps): with
  // adaptive_spin it doubles the spin window, as a spin that found work does. 0: never.
  std::int64_t short_sleep_ns = 20'000;
  unsigned yields = 0;            // sched_yield calls after the spin window, before sleeping
  bool sleep = true;              // false: never sleep (spin/yield forever), like ReL4's runtime
  // The polling window: the this-many most recently parked pollers are polled while the runtime
  // is busy or spinning and armed only before it yields or sleeps. Those parked before them are
  // armed as they leave the window (re-armed after each interrupt) and left to interrupts (slot
  // handlers); a poller that unparks and parks again comes back at the front. 0: always
  // interrupt-driven.
  unsigned max_polled = 64;
  // While slots are bound or pollers parked, a sleep lasts at most this long; then every bound
  // slot handler runs once, posted work is looked at and every poller is polled. Peers in other
  // processes can write this runtime's futex word (they must, to wake it), so a hostile one
  // could undo a wake-up that races with this runtime's falling asleep; the backstop bounds the
  // delay that causes to this interval. <= 0: no backstop.
  std::int64_t backstop_ns = 50'000'000;
};

// A waiter the runtime can poll: a consumer parked on an empty ring. See Runtime::park. Its owner
// sets the four callbacks (and tick_driven); the rest is the runtime's. A slot handler whose
// producer signalled took the arming: it tells the runtime with Runtime::flag_taken.
struct Poller {
  bool (*poll)(void* ctx) = nullptr;  // looks for work; true if it made something ready
  bool (*arm)(void* ctx) = nullptr;   // handshake arm + re-check; false if work is there after all
  void (*disarm)(void* ctx) = nullptr;
  void* ctx = nullptr;
  // Its work comes only at a peer's timer tick (an async-syscall buffer served by a kernel core
  // in tick mode): spinning cannot find it sooner. A runtime whose parked pollers are all of
  // this kind goes straight from idle to sleep (it still wakes for any send or timer).
  bool tick_driven = false;
  Poller* prev = nullptr;
  Poller* next = nullptr;
  bool linked = false;
  bool armed = false;
  // Beyond the runtime's polling window (RuntimeOptions::max_polled): kept armed, left to
  // interrupts.
  bool cold = false;
  bool retry_queued = false;  // cold and not armed: on the runtime's list to arm at its next step
  Poller* retry_prev = nullptr;
  Poller* retry_next = nullptr;
};

// Work deferred to the end of the current batch: it runs once the ready queue is empty, before
// the runtime polls or idles (or, if the queue never empties, every 1024 resumptions).
// Producers use it to publish many entries and pay for one fence and at most one notification
// per batch (ring/handshake.hpp: must_signal).
struct Deferred {
  void (*fn)(void* ctx) = nullptr;
  void* ctx = nullptr;
  Deferred* next = nullptr;
  bool queued = false;
};

class Runtime;

namespace detail {
// The ready queue: a FIFO of coroutine handles in a power-of-two ring that only grows (a push
// allocates only when the queue is longer than ever before), so scheduling costs a store and
// an increment. Runtime thread only.
class ReadyQueue {
 public:
  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }
  void push_back(std::coroutine_handle<> h) {
    if (tail_ - head_ == slots_.size()) grow();
    slots_[tail_++ & (slots_.size() - 1)] = h;
  }
  std::coroutine_handle<> pop_front() noexcept { return slots_[head_++ & (slots_.size() - 1)]; }
  // Puts `h` at position `at` (0: the front) of the queue; the ones from there on move back.
  void insert(std::size_t at, std::coroutine_handle<> h);

 private:
  void grow();
  std::vector<std::coroutine_handle<>> slots_;  // size: 0 or a power of two
  std::size_t head_ = 0, tail_ = 0;             // free-running
};
}  // namespace detail

// A handler for one slot: called on the runtime's thread when the slot was raised.
using SlotHandler = void (*)(void* ctx, std::uint32_t slot);

// FIFO of suspended coroutines; a waiter's node lives in its coroutine frame.
class WaitList {
 public:
  struct Node {
    std::coroutine_handle<> h;
    Node* next = nullptr;
  };
  // co_await list.wait(): suspends until wake_one/wake_all makes this coroutine ready.
  auto wait() noexcept {
    struct Awaiter {
      WaitList* l;
      Node n;
      bool await_ready() noexcept { return false; }
      void await_suspend(std::coroutine_handle<> h) noexcept {
        n.h = h;
        l->push(&n);
      }
      void await_resume() noexcept {}
    };
    return Awaiter{this, {}};
  }
  bool empty() const noexcept { return head_ == nullptr; }
  bool wake_one() noexcept;   // makes the oldest waiter ready; false if none
  unsigned wake_all() noexcept;

 private:
  void push(Node* n) noexcept;
  Node* head_ = nullptr;
  Node* tail_ = nullptr;
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions opts = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // The runtime running on this thread, or nullptr.
  static Runtime* current() noexcept;

  // Starts `t` as a detached task (it runs at the next scheduling point); run() waits for it.
  void spawn(Task<void> t);
  // Runs until every spawned task has finished.
  void run();
  // Runs `t` (and everything else that is ready) until `t` finishes; returns its result.
  template <class T>
  T block_on(Task<T> t);
  // The same for an awaiter that is not a Task (ipc::Client::Call, say).
  template <class A>
    requires requires(A& a) { a.await_resume(); }
  auto block_on(A a) -> decltype(a.await_resume()) {
    return block_on(awaiter_task(std::move(a)));
  }

  // Queues `d` (once) for the end of the current batch (runtime thread only).
  void defer(Deferred& d) noexcept {
    if (d.queued) return;
    d.queued = true;
    d.next = deferred_;
    deferred_ = &d;
  }
  // Drops `d` from the queue if it is there (its owner is going away).
  void cancel_deferred(Deferred& d) noexcept;

  // Parks / unparks a poller (runtime thread only). A parked poller stays parked until unpark.
  void park(Poller& p) noexcept;
  void unpark(Poller& p) noexcept;
  // A slot handler whose producer signalled it took `p`'s arming (the waiter flag): call this
  // (instead of clearing p.armed) before draining. A poller beyond the polling window is armed
  // again at the runtime's next step, so it is never left neither polled nor armed.
  void flag_taken(Poller& p) noexcept;

  // Makes `h` ready (it runs at a later scheduling point of this runtime). Inline: every
  // completion of every layer goes through it.
  void schedule(std::coroutine_handle<> h) {
    if (shuffle_) [[unlikely]] return schedule_shuffled(h);
    ready_.push_back(h);
  }
  // Any thread: runs `fn` on the runtime's thread at its next scheduling point, waking it if it
  // sleeps. Uses the notification's service flag, not a slot.
  void post(std::function<void()> fn);

  // co_await rt.sleep_for(ns)
  auto sleep_for(std::int64_t ns) noexcept;
  // co_await rt.yield(): lets every other ready coroutine run first.
  auto yield() noexcept;

  // Timers with callbacks (used for timeouts): the node lives with its owner, which must
  // cancel it before dying. fire(ctx) runs on the runtime's thread.
  struct TimerNode {
    void (*fire)(void* ctx) = nullptr;
    void* ctx = nullptr;
    std::multimap<std::uint64_t, TimerNode*>::iterator it;
    bool armed = false;
  };
  void arm_timer(TimerNode& n, std::uint64_t deadline_ns);
  void cancel_timer(TimerNode& n) noexcept {
    if (n.armed) erase_timer(n);
  }
  static std::uint64_t now_ns() noexcept;

  // ---- interrupts ----
  Notification& notification() noexcept { return *notif_; }
  // Shared so that peers holding SenderEntries into it keep the word mapped after the runtime
  // is gone: a late send then lands in memory nobody reads, never in an unmapped page.
  const std::shared_ptr<Notification>& notification_ptr() const noexcept { return notif_; }
  // A free slot (0..4095), lowest first: the first 64 get a vector each. errc::too_many_files_open
  // when all 4096 are taken.
  Result<std::uint32_t> allocate_slot();
  void release_slot(std::uint32_t slot);
  // `flag`: where the slot's raise flag lives (a channel region); nullptr: the notification's
  // own. release_slot() forgets it, so the flag's memory must outlive the slot's allocation.
  void bind(std::uint32_t slot, SlotHandler fn, void* ctx, RaiseFlag* flag = nullptr);
  void unbind(std::uint32_t slot);

  const RuntimeOptions& options() const noexcept { return opts_; }
  // The spin window the next idle period will use (adaptive_spin), in ns.
  std::int64_t spin_window_ns() const noexcept { return spin_window_; }
  static constexpr std::int64_t kMinSpinNs = 1'000;
  Counters& counters() noexcept { return counters_; }
  std::size_t live_tasks() const noexcept { return live_tasks_; }

 private:
  struct Handler {
    std::atomic<SlotHandler> fn{nullptr};
    std::atomic<void*> ctx{nullptr};
  };

  template <class Pred>
  void loop(Pred done);
  template <class A>
  static Task<decltype(std::declval<A&>().await_resume())> awaiter_task(A a) {
    co_return co_await a;
  }
  void schedule_shuffled(std::coroutine_handle<> h);  // UIPC_SHUFFLE_READY_QUEUE builds
  void erase_timer(TimerNode& n) noexcept;
  bool step();            // runs interrupts, timers and one ready coroutine; false if idle
  void dispatch_interrupts();
  std::int64_t fire_timers();  // fires due timers; returns ns to the next (-1: none)
  void idle();
  void grow_spin_window() noexcept;  // adaptive_spin: double the window, up to spin_ns
  void run_deferred();
  void sweep();             // the backstop: every bound handler once, posted work, every poller
  bool poll_first(std::size_t n);  // polls the n most recently parked pollers; true if any found work
  bool poll_all() { return poll_first(SIZE_MAX); }
  bool poll_window() { return poll_first(opts_.max_polled); }
  bool arm_all();           // arms the unarmed; false if one found work instead
  void disarm_window() noexcept;  // disarms the armed within the polling window
  void cool(Poller& p) noexcept;  // p has left the window: arm it, or queue it for rearm_cold
  void queue_retry(Poller& p) noexcept;
  void drop_retry(Poller& p) noexcept;
  void rearm_cold();        // arms the queued cold pollers, polling those that have work
  void enter();
  void leave() noexcept;

  RuntimeOptions opts_;
  std::int64_t spin_window_ = 0;  // current adaptive window (set from opts_.spin_ns)
  std::shared_ptr<Notification> notif_;
  Counters counters_;
  detail::ReadyQueue ready_;
  std::multimap<std::uint64_t, TimerNode*> timers_;
  std::unique_ptr<Handler[]> handlers_;
  std::mutex slot_mu_;
  std::vector<std::uint64_t> slot_used_;  // bitmap over kMaxSlots
  std::atomic<std::size_t> bound_slots_{0};
  Deferred* deferred_ = nullptr;
  Poller* pollers_ = nullptr;       // most recently parked first
  Poller* pollers_tail_ = nullptr;
  Poller* first_cold_ = nullptr;    // the first poller past the polling window (all after it too)
  Poller* retry_ = nullptr;         // cold pollers to arm at the next step, oldest first
  Poller* retry_tail_ = nullptr;
  std::size_t retry_count_ = 0;
  std::size_t pollers_count_ = 0;
  std::size_t tick_pollers_ = 0;  // parked pollers with tick_driven set
  unsigned steps_without_poll_ = 0;  // resumptions since the ready queue was last empty (step)
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::size_t live_tasks_ = 0;
  std::uint64_t shuffle_state_ = 0x9e3779b97f4a7c15ull;
  // Built with UIPC_SHUFFLE_READY_QUEUE (a definition private to the library, hence a flag that
  // the inline schedule() can see).
  bool shuffle_ = false;
  std::atomic<std::thread::id> owner_{};  // the thread inside run/block_on, if any
  int depth_ = 0;
};

// ---- inline parts ----

template <class Pred>
void Runtime::loop(Pred done) {
  enter();
  while (!done()) {
    if (!step()) idle();
  }
  leave();
}

template <class T>
T Runtime::block_on(Task<T> t) {
  bool finished = false;
  std::exception_ptr err;
  if constexpr (std::is_void_v<T>) {
    auto wrapper = [](Task<void> inner, bool* f, std::exception_ptr* e) -> Task<void> {
      try {
        co_await std::move(inner);
      } catch (...) {
        *e = std::current_exception();
      }
      *f = true;
    };
    spawn(wrapper(std::move(t), &finished, &err));
    loop([&] { return finished; });
    if (err) std::rethrow_exception(err);
  } else {
    std::optional<T> out;
    auto wrapper = [](Task<T> inner, std::optional<T>* o, bool* f, std::exception_ptr* e) -> Task<void> {
      try {
        o->emplace(co_await std::move(inner));
      } catch (...) {
        *e = std::current_exception();
      }
      *f = true;
    };
    spawn(wrapper(std::move(t), &out, &finished, &err));
    loop([&] { return finished; });
    if (err) std::rethrow_exception(err);
    return std::move(*out);
  }
}

inline auto Runtime::sleep_for(std::int64_t ns) noexcept {
  struct Awaiter {
    Runtime* rt;
    std::int64_t ns;
    TimerNode node;
    std::coroutine_handle<> h;
    bool await_ready() const noexcept { return ns <= 0; }
    void await_suspend(std::coroutine_handle<> hh) {
      h = hh;
      node.fire = [](void* c) {
        auto* a = static_cast<Awaiter*>(c);
        a->rt->schedule(a->h);
      };
      node.ctx = this;
      rt->arm_timer(node, now_ns() + static_cast<std::uint64_t>(ns));
    }
    void await_resume() noexcept {}
  };
  return Awaiter{this, ns, {}, {}};
}

inline auto Runtime::yield() noexcept {
  struct Awaiter {
    Runtime* rt;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) { rt->schedule(h); }
    void await_resume() noexcept {}
  };
  return Awaiter{this};
}

}  // namespace uipc
