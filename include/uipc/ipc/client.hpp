// uipc/ipc/client.hpp — the client end of a channel: `co_await client.call(request, reply)`.
//
// What it guarantees:
//  * Each call writes one request entry tagged with a generation-tagged id (op index | gen<<32)
//    and completes exactly once: with its own reply, with the server's error, with
//    errc::timed_out (when given a timeout), or with a channel error when the channel closes.
//    Replies may arrive in any order (note §1.6); the id routes each to its caller, and a reply
//    whose id does not name a call in flight closes the channel with errc::bad_message.
//  * A server process that dies (even by SIGKILL) is noticed through its pidfd: every pending
//    and later call completes with errc::connection_reset at once (ipc/peer_watch.hpp).
//  * Many calls may be in flight (ChannelOptions::max_inflight); past that, and when the
//    request ring is full, callers wait — nothing is dropped.
//  * call_many() sends a batch from one coroutine, which suspends once for the whole batch:
//    each BatchCall completes exactly once, with the same results call() would give, and the
//    batch resumes when the last one has. A batch larger than max_inflight or the ring simply
//    waits for earlier replies to make room.
//  * While calls are in flight the client parks a Poller on its runtime: the response ring is
//    polled while the runtime is busy or spinning and armed before it sleeps. The slot handler
//    (the "interrupt handler") and the poller drain the response ring and make the waiting
//    callers ready; neither runs user code.
// Who may call: the thread running the Runtime given at construction. close() and the
//  destructor too; calls and batches still pending then complete with errc::operation_canceled,
//  and their coroutines may resume after the Client is gone (a result is written to the
//  caller's own memory at completion; the resumed caller touches nothing of the Client).
// What blocks: nothing blocks the thread; call() suspends the calling coroutine.
#pragma once

#include <coroutine>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "uipc/ipc/channel.hpp"
#include "uipc/ring/ring.hpp"
#include "uipc/runtime/runtime.hpp"

namespace uipc::ipc {

// One call of a batch (Client::call_many): the request and the reply buffer go in, the result
// comes out — the reply's length or the error call() would have returned.
struct BatchCall {
  std::span<const std::byte> request;
  std::span<std::byte> reply;
  Result<std::size_t> result{std::size_t{0}};
};

// Aligned to a pair of cache lines: its fields are written at every call, and the object is
// often allocated right after a server channel's state (Server::connect does both).
class alignas(2 * abi::kCacheLine) Client {
 public:
  Client(Runtime& rt, ChannelEnd end);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  class Call;
  // Sends `request` and waits for its reply, which is copied into `reply`. Returns the reply's
  // length. Errors: message_size (request over max_payload, or reply larger than `reply`),
  // not_connected (channel closed), connection_reset (server closed), bad_message (the server
  // broke the protocol), timed_out, operation_canceled (close() while pending), or the error
  // the server's handler returned.
  // `co_await client.call(...)` yields that Result<std::size_t>; the request goes out when the
  // call is awaited, not when call() returns, and a Call never awaited sends nothing. A Call
  // converts to a Task<Result<std::size_t>> and Runtime::block_on takes it as it is.
  Call call(std::span<const std::byte> request, std::span<std::byte> reply, std::int64_t timeout_ns = -1) noexcept;
  // Convenience: the reply as a new vector (sized max_payload, then shrunk).
  Task<Result<std::vector<std::byte>>> call(std::span<const std::byte> request);
  // Sends every request of `calls` and suspends until each has completed; calls[i].result then
  // holds its reply length or error (as call() returns them). The requests go out as fast as
  // in-flight ops and ring space allow, with one fence and at most one notification per batch,
  // and the caller is resumed once, not once per reply. `timeout_ns` (>= 0) bounds the wait
  // for replies once the last request is sent; calls still unanswered then get timed_out.
  // Returns how many calls succeeded. `calls` must stay alive until the batch returns.
  Task<std::size_t> call_many(std::span<BatchCall> calls, std::int64_t timeout_ns = -1);

  void close() noexcept;
  bool closed() const noexcept { return closed_; }
  std::error_code error() const noexcept { return error_; }
  std::uint32_t in_flight() const noexcept { return in_flight_; }
  const ChannelLayout& layout() const noexcept { return end_.layout; }

 private:
  enum class OpState : std::uint8_t { free, waiting, abandoned };
  struct Batch;
  // A request in flight. Its result is written, at completion, straight to where the caller
  // keeps it (`out`: in call()'s frame or in a BatchCall) and the op is free again at once, so
  // a caller resumed after the Client is gone touches nothing of it.
  struct Op {
    std::uint32_t gen = 0;
    OpState state = OpState::free;
    std::coroutine_handle<> waiter;  // call(): the caller, resumed at completion
    std::span<std::byte> reply;
    Result<std::size_t>* out = nullptr;
    Batch* batch = nullptr;          // call_many: the batch it belongs to
    Runtime::TimerNode timer;        // call() with a timeout
    Client* owner = nullptr;
    std::uint32_t index = 0;
  };
  // A call_many in progress; lives in its coroutine frame.
  struct Batch {
    Client* owner = nullptr;
    std::coroutine_handle<> waiter;
    std::uint32_t remaining = 0;      // ops sent whose result is not in yet
    std::size_t ok = 0;               // calls that succeeded
    std::vector<std::uint32_t> ops;   // with a timeout: every op sent (to abandon them)
    Runtime::TimerNode timer;
  };

  static void on_interrupt(void* self, std::uint32_t slot);
  // call()'s way when no op or no ring space is free at once: waits for room, then sends.
  Task<void> call_slow(Call& k);
  Op& start(abi::EntryHeader* e, Call& k);  // sends k's request and arms k's timeout
  // An op and a request entry, at once (nullptr when the caller must wait: reserve_slow).
  abi::EntryHeader* try_reserve() noexcept {
    return !closed_ && !free_ops_.empty() && space_waiters_.empty() ? req_.claim() : nullptr;
  }
  Task<Result<abi::EntryHeader*>> reserve_slow();  // waits for an op and ring space
  Op& send(abi::EntryHeader* e, std::span<const std::byte> request, std::span<std::byte> reply,
           Result<std::size_t>* out);
  void free_op(Op& op) noexcept;
  void finish_batch(Batch& b) noexcept;  // its last call is done: resume its caller
  static void on_batch_timeout(void* batch);
  void drain();                          // takes every reply in the response ring
  void fail(std::error_code e) noexcept; // closes with an error; completes every pending op
  void complete(Op& op, Result<std::size_t> r);
  void signal_server();
  static void on_timeout(void* op);

  Runtime& rt_;
  ChannelEnd end_;
  RingProducer req_;
  RingConsumer resp_;
  std::vector<Op> ops_;
  std::vector<std::uint32_t> free_ops_;
  WaitList op_waiters_;     // callers waiting for a free op
  WaitList space_waiters_;  // callers waiting for request-ring space
  std::uint32_t in_flight_ = 0;       // ops not free: waiting, or abandoned and awaiting a late reply
  std::uint32_t awaiting_reply_ = 0;  // requests published whose reply has not been read
  std::uint64_t death_watch_ = 0;  // peer_watch token, 0 when the server is in this process
  // False once the destructor has run; shared with callers that wait for room (reserve_slow,
  // call_many) so that, resumed after the Client is gone, they know not to touch it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  Poller poller_;   // parked while replies are awaited
  Deferred flush_;  // request-ring flush and response-ring release, at the end of the batch
  bool req_dirty_ = false;  // requests published since the last flush
  std::uint32_t drained_unreleased_ = 0;  // replies consumed since the response ring's last release
  bool closed_ = false;
  std::error_code error_;
};

// What Client::call returns: an awaitable that holds the call's arguments and, once awaited,
// its result. It needs no coroutine frame of its own: with an op and ring space free (the
// common case) awaiting it writes the request and suspends the caller until the reply is in.
// Otherwise it runs Client::call_slow, a coroutine that waits for room first. It must stay
// where it is while awaited (a temporary in the co_await expression does) and be awaited once.
class [[nodiscard]] Client::Call {
 public:
  Call(Call&&) noexcept = default;  // before it is awaited
  Call& operator=(Call&&) = delete;

  bool await_ready() noexcept {
    if (request_.size() <= client_->end_.layout.max_payload) return false;
    result_ = std::errc::message_size;
    return true;
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) {
    if (abi::EntryHeader* e = client_->try_reserve()) {
      client_->start(e, *this).waiter = caller;  // the reply (or timeout, or close) resumes it
      return std::noop_coroutine();
    }
    slow_ = client_->call_slow(*this);
    slow_.handle().promise().continuation = caller;
    return slow_.handle();
  }
  Result<std::size_t> await_resume() noexcept { return std::move(result_); }

  // The same call as a Task (for code that keeps Tasks, or spawns them).
  operator Task<Result<std::size_t>>() && { return as_task(client_, request_, reply_, timeout_ns_); }

 private:
  friend class Client;
  Call(Client* c, std::span<const std::byte> request, std::span<std::byte> reply, std::int64_t timeout_ns) noexcept
      : client_(c), request_(request), reply_(reply), timeout_ns_(timeout_ns) {}
  static Task<Result<std::size_t>> as_task(Client* c, std::span<const std::byte> request, std::span<std::byte> reply,
                                           std::int64_t timeout_ns) {
    co_return co_await c->call(request, reply, timeout_ns);
  }

  Client* client_;
  std::span<const std::byte> request_;
  std::span<std::byte> reply_;
  std::int64_t timeout_ns_;
  Result<std::size_t> result_{std::size_t{0}};  // written at completion (Op::out)
  Task<void> slow_;                             // call_slow, when it was needed
};

inline Client::Call Client::call(std::span<const std::byte> request, std::span<std::byte> reply,
                                 std::int64_t timeout_ns) noexcept {
  return Call(this, request, reply, timeout_ns);
}

}  // namespace uipc::ipc
