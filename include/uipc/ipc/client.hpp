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
//  * While calls are in flight the client parks a Poller on its runtime: the response ring is
//    polled while the runtime is busy or spinning and armed before it sleeps. The slot handler
//    (the "interrupt handler") and the poller drain the response ring and make the waiting
//    callers ready; neither runs user code.
// Who may call: the thread running the Runtime given at construction. close() and the
//  destructor too; calls still pending then complete with errc::operation_canceled.
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

class Client {
 public:
  Client(Runtime& rt, ChannelEnd end);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` and waits for its reply, which is copied into `reply`. Returns the reply's
  // length. Errors: message_size (request over max_payload, or reply larger than `reply`),
  // not_connected (channel closed), connection_reset (server closed), bad_message (the server
  // broke the protocol), timed_out, operation_canceled (close() while pending), or the error
  // the server's handler returned.
  Task<Result<std::size_t>> call(std::span<const std::byte> request, std::span<std::byte> reply,
                                 std::int64_t timeout_ns = -1);
  // Convenience: the reply as a new vector (sized max_payload, then shrunk).
  Task<Result<std::vector<std::byte>>> call(std::span<const std::byte> request);

  void close() noexcept;
  bool closed() const noexcept { return closed_; }
  std::error_code error() const noexcept { return error_; }
  std::uint32_t in_flight() const noexcept { return in_flight_; }
  const ChannelLayout& layout() const noexcept { return end_.layout; }

 private:
  enum class OpState : std::uint8_t { free, waiting, done, abandoned };
  struct Op {
    std::uint32_t gen = 0;
    OpState state = OpState::free;
    std::coroutine_handle<> waiter;
    std::span<std::byte> reply;
    Result<std::size_t> result{std::size_t{0}};
    Runtime::TimerNode timer;
    Client* owner = nullptr;
    std::uint32_t index = 0;
  };

  static void on_interrupt(void* self, std::uint32_t slot);
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
  std::uint32_t in_flight_ = 0;       // ops not free (includes completed, not yet resumed)
  std::uint32_t awaiting_reply_ = 0;  // requests published whose reply has not been read
  std::uint64_t death_watch_ = 0;  // peer_watch token, 0 when the server is in this process
  Poller poller_;   // parked while replies are awaited
  Deferred flush_;  // request-ring flush and response-ring release, at the end of the batch
  bool req_dirty_ = false;  // requests published since the last flush
  std::uint32_t drained_unreleased_ = 0;  // replies consumed since the response ring's last release
  bool closed_ = false;
  std::error_code error_;
};

}  // namespace uipc::ipc
