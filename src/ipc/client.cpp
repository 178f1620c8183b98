#include "uipc/ipc/client.hpp"

#include "uipc/ipc/peer_watch.hpp"

#include <cstring>

namespace uipc::ipc {

namespace {
constexpr std::uint32_t kMaxStatus = 4095;  // errno values travel as positive status codes
}

Client::Client(Runtime& rt, ChannelEnd end)
    : rt_(rt),
      end_(std::move(end)),
      req_(request_ring(*end_.region, end_.layout)),
      resp_(response_ring(*end_.region, end_.layout)),
      ops_(end_.options.max_inflight) {
  free_ops_.reserve(ops_.size());
  for (std::uint32_t i = static_cast<std::uint32_t>(ops_.size()); i-- > 0;) {
    ops_[i].owner = this;
    ops_[i].index = i;
    ops_[i].gen = 1;
    free_ops_.push_back(i);
  }
  flush_.ctx = this;
  flush_.fn = [](void* self) {
    auto* c = static_cast<Client*>(self);
    if (c->closed_) return;
    if (c->req_dirty_) {
      c->req_dirty_ = false;
      if (c->req_.flush()) c->signal_server();
      else c->rt_.counters().suppressed.add();
    }
    c->drained_unreleased_ = 0;
    if (c->resp_.release()) c->signal_server();  // a server handler waits for response space
  };
  poller_.ctx = this;
  poller_.poll = [](void* self) {
    auto* c = static_cast<Client*>(self);
    if (!c->resp_.has_data()) return false;
    c->drain();
    return true;
  };
  poller_.arm = [](void* self) { return static_cast<Client*>(self)->resp_.arm_data_wait(); };
  poller_.disarm = [](void* self) { static_cast<Client*>(self)->resp_.disarm_data_wait(); };
  rt_.bind(end_.own_slot, &Client::on_interrupt, this, &header(*end_.region)->raise_client);
  if (end_.peer_pid > 0) {
    // On the server's death, close the channel on its behalf and raise our own slot: the
    // interrupt handler then fails every pending call (drain sees kServerClosed).
    auto w = peer_watch::watch(end_.peer_pid, [region = end_.region, notif = rt_.notification_ptr(),
                                               slot = end_.own_slot] {
      header(*region)->closed.fetch_or(abi::kServerClosed, std::memory_order_acq_rel);
      Counters scratch;  // the watcher thread's sends are nobody's runtime's
      notif->mint_remote(slot, &header(*region)->raise_client).send(scratch);
    });
    if (w) death_watch_ = w.value();
  }
}

Client::~Client() {
  *alive_ = false;  // callers woken below (waiting for room) resume after we are gone
  if (death_watch_ != 0) peer_watch::cancel(death_watch_);
  close();
  rt_.cancel_deferred(flush_);
  rt_.unpark(poller_);
  rt_.release_slot(end_.own_slot);
}

void Client::on_interrupt(void* self, std::uint32_t) {
  auto* c = static_cast<Client*>(self);
  c->rt_.flag_taken(c->poller_);  // whoever signalled took the flag
  c->drain();
  // Space may have opened in the request ring: every waiter re-checks.
  c->space_waiters_.wake_all();
}

void Client::signal_server() { end_.to_peer.send(rt_.counters()); }

void Client::free_op(Op& op) noexcept {
  op.state = OpState::free;
  ++op.gen;
  --in_flight_;
  free_ops_.push_back(op.index);
  if (!op_waiters_.empty()) [[unlikely]] op_waiters_.wake_one();
}

void Client::finish_batch(Batch& b) noexcept {
  rt_.cancel_timer(b.timer);
  if (b.waiter) rt_.schedule(std::exchange(b.waiter, {}));
}

void Client::complete(Op& op, Result<std::size_t> r) {
  Batch* b = op.batch;
  if (b != nullptr && r) ++b->ok;
  *op.out = std::move(r);
  if (b == nullptr) {
    rt_.cancel_timer(op.timer);
    if (op.waiter) rt_.schedule(std::exchange(op.waiter, {}));
  }
  op.out = nullptr;
  op.batch = nullptr;
  free_op(op);
  if (b != nullptr && --b->remaining == 0) finish_batch(*b);
}

void Client::drain() {
  if (closed_) return;
  abi::EntryHeader h;
  while (const std::byte* p = resp_.peek(&h)) {
    const std::uint32_t idx = static_cast<std::uint32_t>(h.id);
    const std::uint32_t gen = static_cast<std::uint32_t>(h.id >> 32);
    if (idx >= ops_.size() || ops_[idx].gen != gen ||
        (ops_[idx].state != OpState::waiting && ops_[idx].state != OpState::abandoned) ||
        h.status > kMaxStatus) [[unlikely]] {
      fail(std::make_error_code(std::errc::bad_message));
      return;
    }
    Op& op = ops_[idx];
    --awaiting_reply_;
    if (op.state == OpState::abandoned) {  // its caller timed out: the late reply frees it
      free_op(op);
    } else if (h.status != 0) {
      complete(op, errno_code(static_cast<int>(h.status)));
    } else if (h.len > op.reply.size()) {
      complete(op, std::errc::message_size);
    } else {
      std::memcpy(op.reply.data(), p, h.len);
      complete(op, std::size_t{h.len});
    }
    // Only now is the entry consumed: its slot may be reused by the server once released.
    resp_.pop();
    // Give slots back as we go, so a server replying faster than we drain never finds the
    // ring full for long.
    if (++drained_unreleased_ == 32) {
      drained_unreleased_ = 0;
      if (resp_.release()) signal_server();
    }
  }
  if (resp_.corrupt() || resp_.bad_entry()) [[unlikely]] {
    fail(std::make_error_code(std::errc::bad_message));
    return;
  }
  rt_.defer(flush_);  // gives the drained slots back at the end of the batch, off the reply path
  if (header(*end_.region)->closed.load(std::memory_order_acquire) & abi::kServerClosed) [[unlikely]] {
    fail(std::make_error_code(std::errc::connection_reset));
    return;
  }
  if (awaiting_reply_ == 0) rt_.unpark(poller_);
}

void Client::fail(std::error_code e) noexcept {
  if (closed_) return;
  closed_ = true;
  error_ = e;
  rt_.unpark(poller_);
  awaiting_reply_ = 0;
  for (Op& op : ops_) {
    if (op.state == OpState::waiting) complete(op, e);
    else if (op.state == OpState::abandoned) free_op(op);
  }
  op_waiters_.wake_all();
  space_waiters_.wake_all();
  // Tell the server, so it stops serving this channel and frees its side.
  header(*end_.region)->closed.fetch_or(abi::kClientClosed, std::memory_order_acq_rel);
  signal_server();
}

void Client::close() noexcept {
  if (closed_) return;
  fail(std::make_error_code(std::errc::operation_canceled));
  error_ = std::make_error_code(std::errc::not_connected);
}

void Client::on_timeout(void* p) {
  Op& op = *static_cast<Op*>(p);
  if (op.state != OpState::waiting) return;
  Client* c = op.owner;
  *op.out = std::make_error_code(std::errc::timed_out);
  op.out = nullptr;
  op.state = OpState::abandoned;  // the slot stays reserved until the late reply arrives
  if (op.waiter) c->rt_.schedule(std::exchange(op.waiter, {}));
}

Task<Result<abi::EntryHeader*>> Client::reserve_slow() {
  // Every wait below may end in the destructor (close() wakes every waiter): after each, look
  // at `alive`, which outlives the Client, before touching anything of it.
  const std::shared_ptr<const bool> alive = alive_;
  for (;;) {
    if (closed_) co_return error_;
    if (free_ops_.empty()) {
      co_await op_waiters_.wait();
      if (!*alive) co_return std::errc::operation_canceled;
      continue;
    }
    // Queue behind callers already waiting for space: they share one space_waiter flag, and a
    // newcomer's arm/disarm must not clear it under them (a lost wake-up).
    if (!space_waiters_.empty()) {
      co_await space_waiters_.wait();
      if (!*alive) co_return std::errc::operation_canceled;
      continue;
    }
    if (abi::EntryHeader* e = req_.claim()) co_return e;
    if (req_.corrupt()) {
      fail(std::make_error_code(std::errc::bad_message));
      co_return error_;
    }
    rt_.counters().ring_full_waits.add();
    if (req_.arm_space_wait()) {
      co_await space_waiters_.wait();
      if (!*alive) co_return std::errc::operation_canceled;
    }
  }
}

// Fills the claimed entry `e` with `request` under a fresh op and publishes it; the flush (fence
// and any notification) waits for the end of the batch.
Client::Op& Client::send(abi::EntryHeader* e, std::span<const std::byte> request, std::span<std::byte> reply,
                         Result<std::size_t>* out) {
  const std::uint32_t idx = free_ops_.back();
  free_ops_.pop_back();
  Op& op = ops_[idx];
  op.state = OpState::waiting;
  op.reply = reply;
  op.out = out;
  op.waiter = {};
  ++in_flight_;

  e->id = (std::uint64_t{op.gen} << 32) | idx;
  e->len = static_cast<std::uint32_t>(request.size());
  e->status = 0;
  if (!request.empty()) std::memcpy(req_.payload(e), request.data(), request.size());
  req_.publish();
  ++awaiting_reply_;
  req_dirty_ = true;
  rt_.defer(flush_);  // the fence and any notification: once, at the end of this batch
  rt_.park(poller_);  // the runtime polls, and before it sleeps arms, the response ring
  return op;
}

Client::Op& Client::start(abi::EntryHeader* e, Call& k) {
  Op& op = send(e, k.request_, k.reply_, &k.result_);
  if (k.timeout_ns_ >= 0) {
    op.timer.fire = &Client::on_timeout;
    op.timer.ctx = &op;
    rt_.arm_timer(op.timer, Runtime::now_ns() + static_cast<std::uint64_t>(k.timeout_ns_));
  }
  return op;
}

Task<void> Client::call_slow(Call& k) {
  auto r = co_await reserve_slow();
  if (!r) {  // closed, or (operation_canceled) the Client is gone: touch nothing of it
    k.result_ = r.error();
    co_return;
  }
  // Nothing completes an op between start() and the suspension below (replies, timeouts and
  // closes all come from the runtime's loop). From the resumption on only k.result_ is used,
  // never the op, which may already serve another call.
  Op& op = start(r.value(), k);
  struct Awaiter {
    Op& op;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { op.waiter = h; }
    void await_resume() const noexcept {}
  };
  co_await Awaiter{op};
}

void Client::on_batch_timeout(void* p) {
  Batch& b = *static_cast<Batch*>(p);
  Client* c = b.owner;
  for (std::uint32_t idx : b.ops) {
    Op& op = c->ops_[idx];
    if (op.batch != &b || op.state != OpState::waiting) continue;  // answered (maybe reused)
    *op.out = std::make_error_code(std::errc::timed_out);
    op.out = nullptr;
    op.batch = nullptr;
    op.state = OpState::abandoned;  // reserved until the late reply arrives, as for call()
    --b.remaining;
  }
  if (b.remaining == 0) c->finish_batch(b);
}

Task<std::size_t> Client::call_many(std::span<BatchCall> calls, std::int64_t timeout_ns) {
  Batch b;
  b.owner = this;
  // Taken only before the first wait for room: a copy per batch would touch the shared count
  // (an atomic read-modify-write) on every batch.
  std::shared_ptr<const bool> alive;
  if (timeout_ns >= 0) b.ops.reserve(calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    BatchCall& c = calls[i];
    if (c.request.size() > end_.layout.max_payload) {
      c.result = std::errc::message_size;
      continue;
    }
    abi::EntryHeader* e = try_reserve();
    if (e == nullptr) {
      // Waiting for room: what is already published goes out at once (the deferred flush runs
      // while we are suspended), and the replies that free room are drained meanwhile.
      if (!alive) alive = alive_;
      auto r = co_await reserve_slow();
      if (!*alive) {  // destroyed meanwhile: the calls sent are completed; touch nothing more
        for (std::size_t j = i; j < calls.size(); ++j) calls[j].result = std::errc::operation_canceled;
        co_return b.ok;
      }
      if (!r) {
        c.result = r.error();
        continue;
      }
      e = r.value();
    }
    Op& op = send(e, c.request, c.reply, &c.result);
    op.batch = &b;
    ++b.remaining;
    if (timeout_ns >= 0) b.ops.push_back(op.index);
  }
  if (b.remaining != 0) {
    if (timeout_ns >= 0) {
      b.timer.fire = &Client::on_batch_timeout;
      b.timer.ctx = &b;
      rt_.arm_timer(b.timer, Runtime::now_ns() + static_cast<std::uint64_t>(timeout_ns));
    }
    struct Awaiter {
      Batch& b;
      bool await_ready() const noexcept { return b.remaining == 0; }
      void await_suspend(std::coroutine_handle<> h) noexcept { b.waiter = h; }
      void await_resume() const noexcept {}
    };
    co_await Awaiter{b};  // finish_batch() has cancelled the timer: `this` is not touched again
  }
  co_return b.ok;
}

Task<Result<std::vector<std::byte>>> Client::call(std::span<const std::byte> request) {
  std::vector<std::byte> out(end_.layout.max_payload);
  auto r = co_await call(request, std::span<std::byte>(out));
  if (!r) co_return r.error();
  out.resize(r.value());
  co_return out;
}

}  // namespace uipc::ipc
