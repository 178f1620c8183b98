// uipc/ipc/server.hpp — the server: one runtime thread serving many channels (note §1.2, §1.6, §3.2).
//
// What it guarantees:
//  * Each channel has its own receive coroutine, woken through the channel's slot on the
//    server runtime's notification (slots 0..63 own a vector each; more channels share vectors
//    through the doorbell words: up to 4096 channels per server runtime).
//  * Every request is handed to the handler exactly once, in a coroutine of its own, so a
//    handler may co_await and replies complete out of order; each reply carries its request's id.
//    The handler's task is started at once; one that finishes without suspending is answered
//    there and then, and only one that suspends costs the server a coroutine of its own.
//    An InlineHandler instead runs in the receive coroutine itself and replies in order.
//  * A full response ring makes the replying handler wait; nothing is dropped. A client that
//    closes, or breaks the protocol (a corrupt index or entry), loses its channel alone — with
//    errc::bad_message recorded — and every other channel carries on.
//  * stop() ends serve() after every receive coroutine and handler has finished; clients then
//    see errc::connection_reset.
// Who may call:
//  * serve(): awaited once, on the thread running `rt`.
//  * connect / adopt / stop / channel_count: any thread.
//  * The Server must outlive serve(); destroy it after serve() has returned (or never started).
// What blocks: nothing blocks a thread; serve() suspends until stop().
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "uipc/detail/eager.hpp"
#include "uipc/ipc/channel.hpp"
#include "uipc/ipc/client.hpp"
#include "uipc/runtime/runtime.hpp"

namespace uipc::ipc {

// Writes the reply for `request` into `reply` (max_payload bytes) and returns its length, or
// returns an error that the caller receives instead.
using Handler = std::function<Task<Result<std::size_t>>(std::span<const std::byte> request, std::span<std::byte> reply)>;

// A handler that never suspends (note §1.2: the receive coroutine "processes the data inside the
// coroutine"): it runs inside the channel's receive coroutine and writes its reply straight
// into the response ring — no coroutine frame, no copy of the reply. It must not throw.
using InlineHandler = std::function<Result<std::size_t>(std::span<const std::byte> request, std::span<std::byte> reply)>;

struct ServerStats {
  std::uint64_t requests = 0;
  std::uint64_t replies = 0;
  std::uint64_t dropped_replies = 0;   // replies to a client that had already closed
  std::uint64_t channels_closed = 0;
  std::uint64_t protocol_errors = 0;   // channels closed for a corrupt ring or entry
};

class Server {
 public:
  Server(Runtime& rt, Handler handler);
  Server(Runtime& rt, InlineHandler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // In-process: a new channel served here, and its client end bound to `client_rt`.
  Result<std::unique_ptr<Client>> connect(Runtime& client_rt, const ChannelOptions& opts = {});
  // Serves a channel whose server end was set up elsewhere (ipc/endpoint.hpp: another process).
  Result<void> adopt(ChannelEnd end);
  // A slot on this server's notification for a new channel (released again if setup fails).
  Result<std::uint32_t> reserve_slot() { return rt_.allocate_slot(); }
  void release_slot(std::uint32_t slot) { rt_.release_slot(slot); }

  Task<void> serve();
  void stop() noexcept;
  std::size_t channel_count() const noexcept { return live_channels_.load(std::memory_order_relaxed); }
  ServerStats stats() const noexcept { return stats_; }  // read on the server's thread
  Runtime& runtime() noexcept { return rt_; }

 private:
  struct Chan;
  static void on_interrupt(void* ch, std::uint32_t slot);
  Task<void> receive_loop(Chan* ch);
  // Runs the handler; one that finishes without suspending is answered at once, with no
  // coroutine of the server's own; one that suspends is awaited by await_handler.
  void handle(Chan* ch, std::uint64_t id, std::unique_ptr<std::byte[]> buf, std::uint32_t len);
  detail::Eager await_handler(Chan* ch, std::uint64_t id, std::unique_ptr<std::byte[]> buf, Task<Result<std::size_t>> t);
  bool reply_inline(Chan* ch, std::uint64_t id, const std::byte* req, std::uint32_t len);
  detail::Eager finish_reply(Chan* ch, std::uint64_t id, std::unique_ptr<std::byte[]> buf, Result<std::size_t> r);
  std::unique_ptr<std::byte[]> take_buffer(Chan* ch);
  bool try_reply(Chan* ch, std::uint64_t id, const Result<std::size_t>& r, const std::byte* data);
  Task<void> send_reply_slow(Chan* ch, std::uint64_t id, const Result<std::size_t>& r, const std::byte* data);
  void close_channel(Chan* ch, std::error_code e) noexcept;
  void unref(Chan* ch) noexcept;
  bool peer_closed(const Chan* ch) const noexcept;

  Runtime& rt_;
  Handler handler_;
  InlineHandler inline_;  // set instead of handler_ when the handler never suspends
  void wake_control();  // any thread: wakes serve() through Runtime::post
  // serve() waits here for new channels, stop() and channel teardown. Shared with posted
  // callbacks so a callback that runs after the Server is gone touches live memory.
  std::shared_ptr<WaitList> control_ = std::make_shared<WaitList>();
  std::mutex incoming_mu_;
  std::vector<std::unique_ptr<Chan>> incoming_;
  std::unordered_map<Chan*, std::unique_ptr<Chan>> channels_;  // owned on the server's thread
  std::atomic<std::size_t> live_channels_{0};
  std::atomic<bool> stop_{false};
  ServerStats stats_;
};

}  // namespace uipc::ipc
