// The caller's side of asynchronous system calls: configure_async_syscall, the call table, the
// submission path (one request entry per call, one flush per batch; call_many's batches with
// their common checks made once), completions, cancellation, and the local/shared execution on
// the caller's own runtime.
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "internal.hpp"
#include "uipc/sys/syscall.hpp"

namespace uipc::sys {

using detail::OpNode;

namespace {
// The address of a thread_local differs on every thread and costs one instruction to form: the
// submit path's "is this the registered thread?" test.
thread_local char t_thread_tag;
}  // namespace

struct Registration::Impl {
  struct Slot {
    std::uint32_t gen = 1;
    OpNode* op = nullptr;
  };
  // The free call indices, a stack of at most `capacity` (no growth check on the hot path).
  struct FreeStack {
    std::unique_ptr<std::uint32_t[]> v;
    std::uint32_t n = 0;
    bool empty() const noexcept { return n == 0; }
    std::uint32_t back() const noexcept { return v[n - 1]; }
    void pop_back() noexcept { --n; }
    void push_back(std::uint32_t i) noexcept { v[n++] = i; }
  };

  Registration* self = nullptr;
  Runtime& rt;
  std::shared_ptr<detail::ExecState> st;
  std::shared_ptr<detail::Reg> reg;
  SyscallOptions opts;
  WakeMode wake;
  Placement placement;
  EntryProducer<abi::SyscallRequest> rq;
  EntryConsumer<abi::SyscallCompletion> cq;
  std::vector<Slot> slots;
  FreeStack free;
  OpNode* wait_head = nullptr;  // calls waiting for a slot (or ring space), FIFO
  OpNode* wait_tail = nullptr;
  std::vector<OpNode*> cancel_retry;  // cancellations waiting for request-ring space
  std::uint32_t in_flight = 0;
  std::uint32_t slot = 0;  // the reply slot on rt's notification
  Poller poller;
  Deferred flush;
  Runtime::TimerNode tick_timer;  // local + tick: the batch runs at each tick
  Runtime::TimerNode reap_timer;  // own io_uring work out while the runtime sleeps
  std::int64_t reap_nap = 10'000;
  std::unique_ptr<detail::Engine> engine;  // shared, local: this thread executes too
  bool direct = false;        // local + io_uring: io_uring calls go straight to the engine
  Counter direct_calls;       // direct calls queued (counted into executor_stats() as requests)
  unsigned share = 1;
  detail::StatCounters own;
  std::vector<abi::SyscallRequest> batch;
  std::vector<detail::Done> out, uout;
  Counter submitted, completed, slot_waits, cancels_sent, unmatched;
  abi::SyscallCompletion last_unmatched{};
  pthread_t thread;
  const char* thread_tag = nullptr;  // &t_thread_tag on the registered thread
  bool closed = false;
  bool resolved = false;      // the executor shut down and every call was settled
  bool runtime_gone = false;  // closed by the thread-exit hook: rt may be gone

  Impl(Runtime& r, std::shared_ptr<detail::ExecState> s) : rt(r), st(std::move(s)) {}

  bool executes_here() const noexcept { return engine != nullptr; }
  // Requests waiting to be taken. A broken ring (its producer corrupted it) is never served again:
  // what it still shows is nobody's work, and must not keep this thread from sleeping.
  bool queued() const noexcept { return !reg->broken.load(std::memory_order_relaxed) && shared_has_data(reg->rq_view); }
  // Local placement: work this thread owes itself (queued requests, direct SQEs not yet submitted).
  bool work_here() const noexcept { return queued() || (direct && engine->unsubmitted() != 0); }

  // ---- completion side ----

  void finish(OpNode* op, std::int64_t result) noexcept {
    completed.add();
    finish_uncounted(op, result);
  }

  // The common tail of every completion: the result in, the awaiting coroutine (a batch's: once
  // its last call is in) made ready. A plain call (no timer, no token) touches only the first
  // OpNode::kCompletionBytes of its node here.
  void finish_uncounted(OpNode* op, std::int64_t result) noexcept {
    if (op->extras) [[unlikely]] settle_extras(op);
    op->result = result;
    op->state = OpNode::State::done;
    if (op->group == nullptr || --*op->group == 0) rt.schedule(op->h);
  }

  void settle_extras(OpNode* op) noexcept {
    if (op->timed && op->timer().armed) rt.cancel_timer(op->timer());
    detach_token(op);
    if (op->cancel_pending) {
      op->cancel_pending = false;
      for (auto& p : cancel_retry)
        if (p == op) p = nullptr;
    }
  }

  void detach_token(OpNode* op) noexcept {
    CancelToken* t = op->opt.cancel;
    if (t == nullptr) return;
    if (op->tok_prev != nullptr) op->tok_prev->tok_next = op->tok_next;
    else if (t->head_ == op) t->head_ = op->tok_next;
    if (op->tok_next != nullptr) op->tok_next->tok_prev = op->tok_prev;
    op->tok_prev = op->tok_next = nullptr;
    op->opt.cancel = nullptr;
  }

  // Completions are handled in batches of up to kDrainBatch: first every entry is matched to its
  // call (and the call's node, in the awaiting coroutine's frame — with many calls in flight
  // mostly out of L1 — is prefetched), then the calls are finished; the misses overlap instead of
  // coming one after the other.
  static constexpr unsigned kDrainBatch = 32;

  unsigned drain() noexcept {
    unsigned n = 0;
    for (;;) {
      OpNode* ops[kDrainBatch];
      std::int64_t res[kDrainBatch];
      unsigned k = 0;
      abi::SyscallCompletion c;
      while (k < kDrainBatch && cq.peek(&c)) {
        cq.pop();
        ++n;
        const std::uint32_t idx = abi::id_index(c.id);
        if (idx >= slots.size() || slots[idx].op == nullptr || slots[idx].gen != abi::id_generation(c.id))
            [[unlikely]] {
          unmatched.add();
          last_unmatched = c;
          continue;
        }
        Slot& s = slots[idx];
        OpNode* op = s.op;
        s.op = nullptr;  // a second completion with this id is unmatched from now on
        if (++s.gen == 0) s.gen = 1;
        free.push_back(idx);
        // Only the part completion touches (the node need not start a cache line).
        const char* p = reinterpret_cast<const char*>(op);
        __builtin_prefetch(p, 1, 3);
        __builtin_prefetch(p + OpNode::kCompletionBytes - 1, 1, 3);
        ops[k] = op;
        res[k] = c.result;
        ++k;
      }
      in_flight -= k;
      completed.add(k);
      for (unsigned i = 0; i < k; ++i) {
        OpNode* op = ops[i];
        if (op->extras && op->demoted) [[unlikely]] res[i] = with_partial(op->partial, res[i]);
        finish_uncounted(op, res[i]);
      }
      if (k < kDrainBatch) break;
    }
    if (n != 0) {
      cq.release();
      after_free();
    }
    return n;
  }

  // A write that moved `partial` bytes before its rest went on: as a blocking write, the total,
  // or the bytes moved when the rest failed (or was cancelled).
  static std::int64_t with_partial(std::int64_t partial, std::int64_t r) noexcept {
    return r >= 0 ? partial + r : partial;
  }

  // The outcomes of direct calls the engine reaped: completions, and calls to send the ring way.
  // `ending`: the ring is not served any more (closed: ECANCELED; shut down: ESHUTDOWN), so a
  // call to demote completes now.
  unsigned settle_direct(int ending = 0) noexcept {
    if (!direct) return 0;
    auto& dd = engine->direct_done();  // nothing below adds to it: only reaping CQEs does
    if (dd.empty()) return 0;
    unsigned freed = 0;
    for (const detail::Engine::DirectDone& d : dd) {
      const std::uint32_t idx = abi::id_index(d.id);
      if (idx >= slots.size() || slots[idx].op == nullptr || slots[idx].gen != abi::id_generation(d.id)) [[unlikely]] {
        unmatched.add();
        last_unmatched = {d.id, d.result};
        continue;
      }
      Slot& s = slots[idx];
      OpNode* op = s.op;
      if (d.demote && ending == 0 && demote(op, d.partial)) continue;
      s.op = nullptr;
      if (++s.gen == 0) s.gen = 1;
      free.push_back(idx);
      --in_flight;
      ++freed;
      finish(op, d.demote ? (d.partial > 0 ? d.partial : -(ending != 0 ? ending : EAGAIN)) : d.result);
    }
    dd.clear();
    if (freed != 0 && ending == 0) after_free();
    return freed;
  }

  // A direct call that needs the slow path becomes an ordinary request (its unwritten rest, for
  // a short write). The request ring has room: it holds a request and a cancellation for every
  // call in flight, and this call has no request in it. False if it is corrupt all the same.
  bool demote(OpNode* op, std::int64_t partial) noexcept {
    abi::SyscallRequest* e = rq.claim();
    if (e == nullptr) [[unlikely]] return false;
    *e = op->rq;
    e->flags = 0;
    if (partial > 0) {
      e->args[1] += partial;
      e->args[2] -= partial;
      op->partial = partial;
      op->demoted = true;
      op->extras = true;
    }
    rq.publish();
    rt.defer(flush);
    return true;
  }

  // Slots or ring space came back: pending cancellations first, then waiting calls.
  void after_free() noexcept {
    if (!cancel_retry.empty()) {
      std::vector<OpNode*> v;
      v.swap(cancel_retry);
      for (OpNode* op : v)
        if (op != nullptr && op->cancel_pending) {
          op->cancel_pending = false;
          send_cancel(op, op->cancel_reason);
        }
    }
    while (wait_head != nullptr && !free.empty()) {
      OpNode* op = wait_head;
      wait_head = op->wait_next;
      if (wait_head == nullptr) wait_tail = nullptr;
      op->wait_next = nullptr;
      if (!start(op)) break;
    }
    maybe_unpark();
  }

  void maybe_unpark() noexcept {
    if (in_flight == 0 && !(executes_here() && queued()) && !(engine && engine->outstanding()))
      rt.unpark(poller);
  }

  // ---- submission side ----

  void push_wait(OpNode* op, bool front) noexcept {
    op->state = OpNode::State::waiting;
    if (front) {
      op->wait_next = wait_head;
      wait_head = op;
      if (wait_tail == nullptr) wait_tail = op;
    } else {
      op->wait_next = nullptr;
      if (wait_tail != nullptr) wait_tail->wait_next = op;
      else wait_head = op;
      wait_tail = op;
    }
  }

  bool remove_wait(OpNode* op) noexcept {
    OpNode* prev = nullptr;
    for (OpNode* p = wait_head; p != nullptr; prev = p, p = p->wait_next) {
      if (p != op) continue;
      if (prev != nullptr) prev->wait_next = p->wait_next;
      else wait_head = p->wait_next;
      if (wait_tail == p) wait_tail = prev;
      p->wait_next = nullptr;
      return true;
    }
    return false;
  }

  // Writes the request; false (and the call back at the head of the queue) if the ring is full.
  // Gives `op` slot `idx` (already off the free stack) and writes its request into the claimed
  // entry `e`. Field by field, in 8-byte words: the awaiter wrote these moments ago, and wider
  // loads spanning its narrower stores would stall on store forwarding.
  void fill_entry(abi::SyscallRequest* e, OpNode* op, std::uint32_t idx) noexcept {
    Slot& s = slots[idx];
    s.op = op;
    const std::uint64_t id = abi::make_id(idx, s.gen);
    op->rq.id = id;
    e->id = id;
    e->number = op->rq.number;
    e->flags = 0;  // a call (cancellations are sent by send_cancel)
    for (int i = 0; i < 6; ++i) {
      std::int64_t w = op->rq.args[i];
      __asm__("" : "+r"(w));  // one word at a time (see above)
      e->args[i] = w;
    }
  }

  bool start(OpNode* op) noexcept {
    const std::uint32_t idx = free.back();
    if (direct && !closed && !resolved) {
      // Local placement, io_uring: the call becomes an SQE here; run_here submits the batch.
      const std::uint64_t id = abi::make_id(idx, slots[idx].gen);
      op->rq.id = id;
      if (engine->execute_direct(op->rq, reg->allow)) {
        free.pop_back();
        slots[idx].op = op;
        op->state = OpNode::State::submitted;
        direct_calls.add();
        started(1);
        return true;
      }
    }
    abi::SyscallRequest* e = rq.claim();
    if (e == nullptr) [[unlikely]] {  // only lingering cancellations can fill the request ring
      push_wait(op, true);
      return false;
    }
    free.pop_back();
    fill_entry(e, op, idx);
    rq.publish();
    op->state = OpNode::State::submitted;
    started(1);
    return true;
  }

  // After `n` calls went into slots (the ring or the direct path): counted in flight; the
  // flush (the fence and any raise) once, at the end of this batch; the completion poller
  // parked; a local tick armed (the direct path exists only in local placement).
  void started(std::uint32_t n) noexcept {
    in_flight += n;
    submitted.add(n);
    rt.defer(flush);
    if (!poller.linked) rt.park(poller);
    if (placement == Placement::local && wake == WakeMode::tick && !tick_timer.armed)
      rt.arm_timer(tick_timer, Runtime::now_ns() + static_cast<std::uint64_t>(st->opts.tick_ns));
  }

  void send_cancel(OpNode* op, int reason) noexcept {
    abi::SyscallRequest* e = rq.claim();
    if (e == nullptr) [[unlikely]] {
      op->cancel_pending = true;
      op->cancel_reason = reason;
      cancel_retry.push_back(op);
      return;
    }
    abi::SyscallRequest c{};
    c.id = op->rq.id;
    c.flags = abi::kCancel;
    c.args[0] = static_cast<std::int64_t>(op->rq.id);
    c.args[1] = reason;
    *e = c;
    rq.publish();
    op->state = OpNode::State::cancel_sent;
    cancels_sent.add();
    rt.defer(flush);
  }

  void cancel(OpNode* op, int reason) noexcept {
    switch (op->state) {
      case OpNode::State::waiting:
        remove_wait(op);
        finish(op, -reason);
        return;
      case OpNode::State::submitted:
        send_cancel(op, reason);
        return;
      case OpNode::State::idle:
      case OpNode::State::cancel_sent:
      case OpNode::State::done:
        return;
    }
  }

  static void on_timeout(void* p) {
    auto* op = static_cast<OpNode*>(p);
    op->reg->cancel(op, ETIMEDOUT);
  }

  void attach(OpNode* op) noexcept {
    if (CancelToken* t = op->opt.cancel) [[unlikely]] {
      op->extras = true;
      op->tok_prev = nullptr;
      op->tok_next = t->head_;
      if (t->head_ != nullptr) t->head_->tok_prev = op;
      t->head_ = op;
    }
    if (op->opt.timeout_ns >= 0) [[unlikely]] {
      op->extras = true;
      Runtime::TimerNode* t = new (op->timer_storage) Runtime::TimerNode{};
      t->fire = &Impl::on_timeout;
      t->ctx = op;
      op->timed = true;
      rt.arm_timer(*t, Runtime::now_ns() + static_cast<std::uint64_t>(op->opt.timeout_ns));
    }
  }

  bool fail_now(OpNode* op, int err) noexcept {
    op->result = -err;
    op->state = OpNode::State::done;
    completed.add();
    return false;
  }

  // Why a call on this registration, now, with these options would fail at once (an errno),
  // or 0. The same for every call of a batch.
  int refusal(const CallOptions& o) const noexcept {
    if (closed) [[unlikely]] return ECANCELED;
    if (&t_thread_tag != thread_tag) [[unlikely]] return EPERM;
    if (reg->gone.load(std::memory_order_relaxed) || resolved) [[unlikely]] return ESHUTDOWN;
    if (o.cancel != nullptr && o.cancel->cancelled()) [[unlikely]] return ECANCELED;
    return 0;
  }

  // A call that may go: into a slot and the request ring, or to the back of the waiting calls.
  // False if it completed at once instead (fail_when_full).
  bool enqueue(OpNode* op) noexcept {
    if (free.empty() || wait_head != nullptr) [[unlikely]] {
      if (opts.fail_when_full) return fail_now(op, EAGAIN);
      slot_waits.add();
      push_wait(op, false);
      attach(op);
      return true;
    }
    if (!start(op)) slot_waits.add();
    attach(op);
    return true;
  }

  bool submit(OpNode* op) noexcept {
    if (const int err = refusal(op->opt); err != 0) [[unlikely]] return fail_now(op, err);
    return enqueue(op);
  }

  // call_many: every call as submit() would take it, the checks that are the same for all of
  // them made once. `*open` counts the calls that did not complete at once; the last of them to
  // complete makes `h` ready. False if none is left open (the caller does not suspend).
  bool submit_many(BatchSyscall* calls, std::size_t n, std::size_t* open, std::coroutine_handle<> h,
                   const CallOptions& o) noexcept {
    const int err = refusal(o);
    *open = n;  // before any call can complete (none completes inside this function but by fail_now)
    std::size_t i = 0;
    if (err == 0 && !direct && o.cancel == nullptr && o.timeout_ns < 0) i = start_run(calls, n, open, h);
    for (; i < n; ++i) {
      OpNode* op = &calls[i].op_;
      op->prepare(self, o);
      op->h = h;
      op->group = open;
      if (err != 0) [[unlikely]] {
        fail_now(op, err);
        --*open;
      } else if (!enqueue(op)) {
        --*open;
      }
    }
    return *open != 0;
  }

  // submit_many's fast path, for calls without a timeout or a token on the ring way (not the
  // direct path): as many as there are free slots and ring space, straight from the
  // BatchSyscalls into the ring; the flush, the poller and the counters once for the run.
  // Returns how many went; the rest take the ordinary way.
  std::size_t start_run(BatchSyscall* calls, std::size_t n, std::size_t* open, std::coroutine_handle<> h) noexcept {
    if (wait_head != nullptr) return 0;  // those first
    std::size_t i = 0;
    for (; i < n && !free.empty(); ++i) {
      abi::SyscallRequest* e = rq.claim();
      if (e == nullptr) [[unlikely]] break;
      OpNode* op = &calls[i].op_;
      op->prepare(self, {});
      op->h = h;
      op->group = open;
      const std::uint32_t idx = free.back();
      free.pop_back();
      fill_entry(e, op, idx);
      rq.publish();
      op->state = OpNode::State::submitted;
    }
    if (i != 0) started(static_cast<std::uint32_t>(i));
    return i;
  }

  // ---- raising the executor, and executing here ----

  unsigned pick_core() const noexcept {
    if (placement == Placement::shared) {
      // relaxed: only a hint; the raised core's notification handshake guarantees delivery.
      const std::uint64_t s = st->sleeping.load(std::memory_order_relaxed);
      if (s != 0) return static_cast<unsigned>(__builtin_ctzll(s));
    }
    return reg->owner;
  }

  void raise_core() noexcept { reg->to_cores[pick_core()].send(rt.counters()); }

  void on_flush() noexcept {
    if (closed || resolved) return;
    switch (placement) {
      case Placement::local:
        // No fence against shutdown here: this thread pops its own requests (now, at its next
        // poll or tick) and completes them with ESHUTDOWN once `gone` is set.
        if (wake == WakeMode::irq) run_here(1);
        break;
      case Placement::affine:
      case Placement::shared:
        switch (wake) {
          case WakeMode::tick:  // the cores look at each tick; nobody to raise
            std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with shutdown's `gone` store
            rt.counters().suppressed.add();
            break;
          case WakeMode::irq:  // every batch raises; the kernel is entered only if the core sleeps
            std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with shutdown's `gone` store
            raise_core();
            break;
          case WakeMode::hybrid:  // raise only when the core announced "need wake-up"
            if (rq.flush()) raise_core();
            else rt.counters().suppressed.add();
            break;
        }
        break;
    }
    // After the fence above: either shutdown's final drain sees what we published, or we see
    // `gone` here and settle it ourselves.
    if (reg->gone.load(std::memory_order_relaxed)) on_gone();
  }

  // Executes queued requests on this thread (shared: its share; local: all).
  unsigned run_here(unsigned share_of) noexcept {
    if (!engine) return 0;
    detail::serve(*st, *reg, *engine, st->opts.max_batch, share_of, own, rt.counters(), batch, out,
                  detail::Claimant::caller);
    engine->submit(uout);  // one io_uring_enter for the batch
    if (!uout.empty()) detail::publish_all(uout, own, rt.counters(), detail::Signal::none);
    const unsigned settled = settle_direct();
    if (engine->outstanding() != 0 && !reap_timer.armed) {
      reap_nap = 10'000;
      rt.arm_timer(reap_timer, Runtime::now_ns() + static_cast<std::uint64_t>(reap_nap));
    }
    return settled + drain();
  }

  static void on_reap_timer(void* p) {
    auto* im = static_cast<Impl*>(p);
    if (!im->engine || im->closed) return;
    im->engine->reap(im->uout);
    detail::publish_all(im->uout, im->own, im->rt.counters(), detail::Signal::none);
    im->settle_direct();
    im->drain();
    if (im->engine->outstanding() != 0) {
      im->reap_nap = std::min<std::int64_t>(im->reap_nap * 2, im->st->opts.tick_ns);
      im->rt.arm_timer(im->reap_timer, Runtime::now_ns() + static_cast<std::uint64_t>(im->reap_nap));
    }
  }

  static void on_tick(void* p) {
    auto* im = static_cast<Impl*>(p);
    if (im->closed) return;
    // Everything queued by now (note §2.2: each tick drains the buffer), not only one claim's
    // max_batch. Nothing is queued meanwhile (run_here only makes callers ready), so the ring's
    // capacity bounds the claims; the bound also ends the loop if a claim takes nothing.
    const unsigned claims = im->reg->capacity / im->st->opts.max_batch + 1;
    for (unsigned i = 0; i < claims; ++i) {
      im->run_here(1);
      if (im->closed || !im->queued()) break;
    }
    if (im->in_flight != 0 || im->queued())
      im->rt.arm_timer(im->tick_timer, Runtime::now_ns() + static_cast<std::uint64_t>(im->st->opts.tick_ns));
  }

  bool poll() noexcept {
    unsigned n = drain();
    if (engine) {
      if (engine->outstanding() != 0) {
        engine->reap(uout);
        detail::publish_all(uout, own, rt.counters(), detail::Signal::none);
        n += settle_direct();
        n += drain();
      }
      // Local placement, hybrid or irq: what this thread owes itself runs here. (irq runs each
      // batch at its flush, but one claim takes at most max_batch requests: the rest would wait
      // forever, since arm() refuses to sleep on them.) Tick runs them at its timer.
      if (placement == Placement::shared ? queued() : placement == Placement::local && wake != WakeMode::tick && work_here())
        n += run_here(share);
    }
    if (reg->gone.load(std::memory_order_relaxed)) on_gone();
    return n != 0;
  }

  bool arm() noexcept {
    // Local placement (hybrid, irq): queued calls are ours to run; never sleep on them.
    if (placement == Placement::local && wake != WakeMode::tick && work_here()) return false;
    if (engine && engine->outstanding() != 0 && !reap_timer.armed)
      rt.arm_timer(reap_timer, Runtime::now_ns() + static_cast<std::uint64_t>(reap_nap));
    return cq.arm_data_wait();
  }

  static void on_interrupt(void* p, std::uint32_t) {
    auto* im = static_cast<Impl*>(p);
    im->rt.flag_taken(im->poller);  // whoever raised us took the flag
    im->drain();
    if (im->reg->gone.load(std::memory_order_relaxed)) im->on_gone();
  }

  // ---- endings ----

  // The executor shut down: once it has let go of the buffer, settle every call still open.
  void on_gone() noexcept {
    if (resolved || closed) return;
    // acquire: pairs with the release store in shutdown_state: its completions are visible.
    if (!reg->final_done.load(std::memory_order_acquire)) return;  // it raises us when it is
    while (engine && engine->outstanding() != 0) {
      engine->submit(uout);  // direct SQEs not submitted yet go now: they complete like the rest
      detail::publish_all(uout, own, rt.counters(), detail::Signal::none);
      settle_direct(ESHUTDOWN);
      if (engine->outstanding() != 0) std::this_thread::yield();
    }
    drain();
    resolved = true;
    reg->broken.store(true, std::memory_order_relaxed);  // nobody takes requests from it again
    settle_all(ESHUTDOWN);
  }

  // Completes every call still open with -err (they will never get a completion).
  void settle_all(int err) noexcept {
    for (Slot& s : slots) {
      if (OpNode* op = s.op) {
        s.op = nullptr;
        --in_flight;
        finish(op, -err);
      }
    }
    while (OpNode* op = wait_head) {
      wait_head = op->wait_next;
      op->wait_next = nullptr;
      finish(op, -err);
    }
    wait_tail = nullptr;
    cancel_retry.clear();
    rt.unpark(poller);
  }

  void close(bool touch_runtime) noexcept {
    if (closed) return;
    closed = true;
    self->closed_ = true;
    runtime_gone = !touch_runtime;
    detail::Reg& r = *reg;
    // seq_cst: the Dekker pair with try_claim + the claimant's load of `closed`.
    r.closed.store(true, std::memory_order_seq_cst);
    {
      std::lock_guard lk(st->big_lock);
      if (r.index < st->table.size() && st->table[r.index] == reg) {
        st->table[r.index] = nullptr;
        if (placement == Placement::affine && r.owner < st->core_load.size()) --st->core_load[r.owner];
        // release: pairs with the cores' acquire load of the generation.
        st->generation.fetch_add(1, std::memory_order_release);
      }
    }
    st->pool->cancel_all(r, ECANCELED);
    // Nobody holds the claim any more, and nobody who claims later touches the ring.
    while (r.claim.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    // Every request taken owes a completion: wait for it (pool calls were interrupted above;
    // a job that reached the pool after that is cancelled on the next round).
    for (unsigned round = 0;; ++round) {
      if (engine) {
        engine->submit(uout);  // direct SQEs not submitted yet go now (the kernel may use their memory)
        detail::publish_all(uout, own, touch_runtime ? rt.counters() : own_nc, detail::Signal::none);
        if (touch_runtime) settle_direct(ECANCELED);
        else engine->direct_done().clear();  // the runtime and the calls' frames may be gone
      }
      // acquire: pairs with the publisher's release store of the completion tail.
      const std::uint32_t tail = r.cq_view.indices->prod.tail.load(std::memory_order_acquire);
      const bool engine_idle = !engine || engine->outstanding() == 0;
      if ((tail == r.taken || r.broken.load(std::memory_order_relaxed)) && engine_idle) break;
      if (round % 32 == 31) st->pool->cancel_all(r, ECANCELED);
      if (round < 16) std::this_thread::yield();
      else {
        timespec ts{0, 50'000};
        ::nanosleep(&ts, nullptr);
      }
    }
    { std::lock_guard lk(r.cq_mu); }  // the last publisher has left (publish flushes under it)
    if (touch_runtime) {
      drain();
      settle_all(ECANCELED);
      rt.cancel_deferred(flush);
      if (tick_timer.armed) rt.cancel_timer(tick_timer);
      if (reap_timer.armed) rt.cancel_timer(reap_timer);
      rt.release_slot(slot);
    }
  }

  Counters own_nc;  // wake-ups this thread issued after its runtime was gone
};

namespace {

// The calling thread's open registrations; closed (executor side only) when the thread ends.
// A handle may be destroyed on another thread (after its runtime stopped), so the list, and the
// thread's caches below, are also changed from other threads: always under g_owners_mu, which
// also keeps a destruction there from racing with the owner thread's exit.
struct ThreadRegistrations;
std::mutex g_owners_mu;
std::unordered_map<Registration*, ThreadRegistrations*> g_owners;  // each open registration's list

thread_local Registration* t_last = nullptr;  // Registration::current()'s cache
thread_local Runtime* t_last_rt = nullptr;

struct ThreadRegistrations {
  std::vector<Registration*> v;
  // This thread's caches, reachable from the thread that forgets a registration of ours.
  Registration** sole = &detail::t_sole_registration;
  Registration** last = &t_last;
  ~ThreadRegistrations() {
    std::lock_guard lk(g_owners_mu);
    *sole = nullptr;
    *last = nullptr;
    for (Registration* r : v) {
      g_owners.erase(r);
      r->close_from_thread_exit();
    }
    v.clear();
  }
  // Registration::current()'s fast path: the thread's only registration (current() checks that
  // it is open). Under g_owners_mu.
  void sync_sole() noexcept { *sole = v.size() == 1 ? v.front() : nullptr; }
};
thread_local ThreadRegistrations t_regs;

void remember(Registration* r) {
  std::lock_guard lk(g_owners_mu);
  t_regs.v.push_back(r);
  g_owners[r] = &t_regs;
  t_regs.sync_sole();
}

// Takes `r` out of its thread's list and caches, from whichever thread.
void forget(Registration* r) {
  std::lock_guard lk(g_owners_mu);
  auto o = g_owners.find(r);
  if (o == g_owners.end()) return;  // forgotten already, or its thread has ended
  ThreadRegistrations* l = o->second;
  g_owners.erase(o);
  if (*l->last == r) *l->last = nullptr;
  auto& v = l->v;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (*it == r) {
      v.erase(it);
      break;
    }
  l->sync_sole();
}

}  // namespace

// ---- Registration ----------------------------------------------------------------------------

Registration::Registration(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { impl_->self = this; }

Registration::~Registration() {
  forget(this);
  if (!impl_->closed) impl_->close(true);
}

void Registration::close_from_thread_exit() noexcept { impl_->close(false); }

Registration* Registration::current_slow() noexcept {
  std::lock_guard lk(g_owners_mu);  // the list and t_last may be changed by another thread
  Runtime* const now = Runtime::current();
  if (t_last != nullptr && t_last_rt == now && !t_last->impl_->closed) return t_last;
  Registration* r = find_current();
  t_last = r;
  t_last_rt = now;
  return r;
}

Registration* Registration::find_current() noexcept {
  auto& v = t_regs.v;
  Runtime* rt = Runtime::current();
  for (auto it = v.rbegin(); it != v.rend(); ++it)
    if (&(*it)->impl_->rt == rt && !(*it)->impl_->closed) return *it;
  for (auto it = v.rbegin(); it != v.rend(); ++it)
    if (!(*it)->impl_->closed) return *it;
  return nullptr;
}

void Registration::close() noexcept {
  if (impl_->closed) return;
  forget(this);
  impl_->close(true);
}

bool Registration::closed() const noexcept { return impl_->closed; }
Runtime& Registration::runtime() const noexcept { return impl_->rt; }
std::uint32_t Registration::capacity() const noexcept { return static_cast<std::uint32_t>(impl_->slots.size()); }
std::uint32_t Registration::in_flight() const noexcept { return impl_->in_flight; }

RegistrationStats Registration::stats() const noexcept {
  return {impl_->submitted.get(), impl_->completed.get(), impl_->slot_waits.get(), impl_->cancels_sent.get(),
          impl_->unmatched.get()};
}

ExecStats Registration::executor_stats() const noexcept {
  ExecStats s = impl_->reg->stats.load();
  const std::uint64_t d = impl_->direct_calls.get();  // the direct path: taken by no claimant
  s.requests += d;
  s.uring_ops += d;
  return s;
}

ExecStats Registration::caller_stats() const noexcept { return impl_->own.snapshot(); }

std::uint64_t Registration::caller_kernel_entries() const noexcept {
  return impl_->rt.counters().kernel_entries.get() + impl_->own.snapshot().kernel_entries();
}

abi::SyscallCompletion Registration::last_unmatched() const noexcept { return impl_->last_unmatched; }

bool Registration::submit_raw(const abi::SyscallRequest& rq) noexcept {
  Impl& im = *impl_;
  if (im.closed || im.resolved) return false;
  abi::SyscallRequest* e = im.rq.claim();
  if (e == nullptr) return false;
  *e = rq;
  im.rq.publish();
  im.rt.defer(im.flush);
  if (!im.poller.linked) im.rt.park(im.poller);
  return true;
}

bool Registration::submit(OpNode* op) noexcept { return impl_->submit(op); }
bool Registration::submit_many(BatchSyscall* calls, std::size_t n, std::size_t* open, std::coroutine_handle<> h,
                               CallOptions o) noexcept {
  return impl_->submit_many(calls, n, open, h, o);
}
void Registration::cancel(OpNode* op, int reason) noexcept { impl_->cancel(op, reason); }

// ---- configure_async_syscall -----------------------------------------------------------------

Result<std::unique_ptr<Registration>> configure_async_syscall(Runtime& rt, Executor& ex, const SyscallOptions& opts) {
  if (Runtime::current() != nullptr && Runtime::current() != &rt) return std::errc::operation_not_permitted;
  const std::uint32_t cap = opts.capacity;
  if (cap < abi::kMinCapacity || cap > abi::kMaxCapacity || (cap & (cap - 1)) != 0) return std::errc::invalid_argument;
  const auto& st = ex.state();
  {
    std::lock_guard lk(st->big_lock);
    if (st->stopped) return errno_code(ESHUTDOWN);
  }
  auto buf = SyscallBuffer::create(cap);
  if (!buf) return buf.error();
  auto slot = rt.allocate_slot();
  if (!slot) return slot.error();

  auto reg = std::make_shared<detail::Reg>();
  reg->thread = pthread_self();
  reg->tid = static_cast<pid_t>(detail::raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0));
  reg->capacity = cap;
  reg->allow = opts.allow.effective();
  reg->buffer = std::move(buf.value());
  reg->rq_view = reg->buffer.requests();
  reg->cq_view = reg->buffer.completions();
  reg->rq = EntryConsumer<abi::SyscallRequest>(reg->rq_view);
  reg->cq = EntryProducer<abi::SyscallCompletion>(reg->cq_view);
  reg->to_caller = rt.notification().mint(slot.value());
  reg->caller_notification = rt.notification_ptr();
  // Armed from the start: the first submission raises the core, which then learns about us even
  // if it slept through the table change.
  reg->rq_view.indices->cons.data_waiter.store(1, std::memory_order_relaxed);

  auto impl = std::make_unique<Registration::Impl>(rt, st);
  impl->reg = reg;
  impl->opts = opts;
  impl->wake = st->opts.wake;
  impl->placement = st->opts.placement;
  impl->thread = reg->thread;
  impl->thread_tag = &t_thread_tag;
  impl->slot = slot.value();
  impl->rq = EntryProducer<abi::SyscallRequest>(reg->rq_view);
  impl->cq = EntryConsumer<abi::SyscallCompletion>(reg->cq_view);
  impl->slots.resize(cap);
  impl->free.v = std::make_unique<std::uint32_t[]>(cap);
  for (std::uint32_t i = cap; i-- > 0;) impl->free.push_back(i);
  if (impl->placement != Placement::affine) {
    impl->engine = std::make_unique<detail::Engine>(*st, impl->own, st->backend == Backend::io_uring);
    impl->share = impl->placement == Placement::shared ? static_cast<unsigned>(st->cores.size()) + 1 : 1;
    impl->direct = impl->placement == Placement::local && st->backend == Backend::io_uring;
  }
  Registration::Impl* ip = impl.get();
  impl->poller.ctx = ip;
  // Affine and tick: only the kernel core's tick brings completions (the caller runs nothing
  // itself), so the caller's runtime need not spin for them.
  impl->poller.tick_driven = impl->placement == Placement::affine && impl->wake == WakeMode::tick;
  impl->poller.poll = [](void* p) { return static_cast<Registration::Impl*>(p)->poll(); };
  impl->poller.arm = [](void* p) { return static_cast<Registration::Impl*>(p)->arm(); };
  impl->poller.disarm = [](void* p) { static_cast<Registration::Impl*>(p)->cq.disarm_data_wait(); };
  impl->flush.ctx = ip;
  impl->flush.fn = [](void* p) { static_cast<Registration::Impl*>(p)->on_flush(); };
  impl->tick_timer.fire = &Registration::Impl::on_tick;
  impl->tick_timer.ctx = ip;
  impl->reap_timer.fire = &Registration::Impl::on_reap_timer;
  impl->reap_timer.ctx = ip;

  // Into the configuration table, under the big lock (note §2.3).
  {
    std::lock_guard lk(st->big_lock);
    if (st->stopped) {
      rt.release_slot(slot.value());
      return errno_code(ESHUTDOWN);
    }
    std::uint32_t index = 0;
    while (index < st->table.size() && st->table[index] != nullptr) ++index;
    if (index >= uipc::abi::kMaxSlots) {
      rt.release_slot(slot.value());
      return std::errc::too_many_files_open;
    }
    if (index == st->table.size()) st->table.emplace_back();
    reg->index = index;
    if (!st->cores.empty()) {
      unsigned best = 0;
      for (unsigned c = 1; c < st->core_load.size(); ++c)
        if (st->core_load[c] < st->core_load[best]) best = c;
      reg->owner = impl->placement == Placement::affine ? best : index % static_cast<unsigned>(st->cores.size());
      if (impl->placement == Placement::affine) ++st->core_load[best];
      for (auto& c : st->cores) reg->to_cores.push_back(c->notif->mint(index));
    }
    st->table[index] = reg;
    // release: pairs with the cores' acquire load of the generation.
    st->generation.fetch_add(1, std::memory_order_release);
    if (st->opts.wake == WakeMode::tick) {
      for (auto& c : st->cores) {
        if ((impl->placement == Placement::shared || c->index == reg->owner) && !c->timer_armed) {
          itimerspec its{};
          its.it_value = {static_cast<time_t>(st->opts.tick_ns / 1'000'000'000),
                          static_cast<long>(st->opts.tick_ns % 1'000'000'000)};
          its.it_interval = its.it_value;
          ::timerfd_settime(c->timerfd, 0, &its, nullptr);
          c->timer_armed = true;
        }
      }
    }
  }
  // Sleeping irq/hybrid cores refresh their snapshot now.
  if (st->opts.wake != WakeMode::tick)
    for (auto& c : st->cores) {
      Counters scratch;
      c->notif->raise_service(scratch);
    }
  rt.bind(slot.value(), &Registration::Impl::on_interrupt, ip);
  std::unique_ptr<Registration> h(new Registration(std::move(impl)));
  remember(h.get());
  return h;
}

// ---- CancelToken -----------------------------------------------------------------------------

CancelToken::~CancelToken() {
  while (detail::OpNode* op = head_) {
    head_ = op->tok_next;
    op->tok_prev = op->tok_next = nullptr;
    op->opt.cancel = nullptr;
  }
}

void CancelToken::cancel() noexcept {
  cancelled_ = true;
  std::vector<detail::OpNode*> ops;
  for (detail::OpNode* op = head_; op != nullptr; op = op->tok_next) ops.push_back(op);
  for (detail::OpNode* op : ops) op->reg->cancel(op, ECANCELED);
}

}  // namespace uipc::sys
