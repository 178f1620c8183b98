#include "uipc/ipc/server.hpp"

#include "uipc/ipc/peer_watch.hpp"

#include <cstdio>
#include <cstring>

namespace uipc::ipc {

// A channel's server-side state is written by the server's thread at every request, but it is
// allocated by whoever connects (the client's thread, for an in-process client), right next to
// that thread's own objects: on lines of its own, so neither side's stores steal the other's
// lines (kLinePair: the adjacent-line prefetcher moves lines in 128-byte pairs).
constexpr std::size_t kLinePair = 2 * abi::kCacheLine;

struct alignas(kLinePair) Server::Chan {
  Server* server = nullptr;
  Runtime* rt = nullptr;
  ChannelEnd end;
  RingConsumer req;
  RingProducer resp;
  Poller poller;          // the receive coroutine parked on an empty request ring
  std::coroutine_handle<> receiver;
  WaitList resp_space;    // handlers waiting for response-ring space
  Deferred flush;         // one fence + at most one notification per batch of replies
  std::uint64_t death_watch = 0;  // peer_watch token for a client in another process
  unsigned refs = 0;      // receive coroutine + handlers still running
  bool closing = false;
  std::error_code error;
  std::vector<std::unique_ptr<std::byte[]>> buffers;  // request+reply scratch, 2 × max_payload
  std::unique_ptr<std::byte[]> scratch_mem;  // holds `scratch`, padded to line pairs of its own
  std::byte* scratch = nullptr;              // the inline handler's copy of the current request
};

Server::Server(Runtime& rt, Handler handler) : rt_(rt), handler_(std::move(handler)) {}
Server::Server(Runtime& rt, InlineHandler handler) : rt_(rt), inline_(std::move(handler)) {}

Server::~Server() {
  // serve() has returned (or never ran): close whatever is left without running coroutines.
  for (auto& [p, ch] : channels_) {
    if (ch->death_watch != 0) peer_watch::cancel(ch->death_watch);
    rt_.unpark(ch->poller);
    rt_.cancel_deferred(ch->flush);
    rt_.release_slot(ch->end.own_slot);
  }
  for (auto& ch : incoming_) {
    if (ch->death_watch != 0) peer_watch::cancel(ch->death_watch);
    rt_.release_slot(ch->end.own_slot);
  }
}

void Server::wake_control() {
  rt_.post([c = control_] { c->wake_all(); });
}

namespace {
// The receive coroutine's poller: polled while the server runtime is busy, armed before it
// sleeps; the slot handler below unparks it when a client raises the channel's slot.
template <class Chan>
void wake_receiver(Chan* ch) {
  if (!ch->poller.linked) return;
  ch->rt->unpark(ch->poller);
  ch->rt->schedule(std::exchange(ch->receiver, {}));
}
}  // namespace

void Server::on_interrupt(void* p, std::uint32_t) {
  auto* ch = static_cast<Chan*>(p);
  wake_receiver(ch);
  ch->resp_space.wake_all();
}

Result<void> Server::adopt(ChannelEnd end) {
  if (stop_.load(std::memory_order_acquire)) return std::errc::connection_refused;
  auto ch = std::make_unique<Chan>();
  ch->server = this;
  ch->rt = &rt_;
  ch->poller.ctx = ch.get();
  ch->poller.poll = [](void* c) {
    auto* chan = static_cast<Chan*>(c);
    if (!chan->req.has_data()) return false;  // (a closing client also raises the slot)
    wake_receiver(chan);
    return true;
  };
  ch->poller.arm = [](void* c) { return static_cast<Chan*>(c)->req.arm_data_wait(); };
  ch->poller.disarm = [](void* c) { static_cast<Chan*>(c)->req.disarm_data_wait(); };
  ch->flush.ctx = ch.get();
  ch->flush.fn = [](void* c) {
    auto* chan = static_cast<Chan*>(c);
    if (chan->resp.flush()) chan->end.to_peer.send(chan->rt->counters());
    else chan->rt->counters().suppressed.add();
  };
  ch->req = RingConsumer(request_ring(*end.region, end.layout));
  const std::size_t scratch_bytes = (end.layout.max_payload + kLinePair - 1) / kLinePair * kLinePair;
  ch->scratch_mem.reset(new std::byte[scratch_bytes + 2 * kLinePair]);
  ch->scratch = ch->scratch_mem.get() + kLinePair -
                reinterpret_cast<std::uintptr_t>(ch->scratch_mem.get()) % kLinePair;  // within the padding
  ch->resp = RingProducer(response_ring(*end.region, end.layout));
  ch->end = std::move(end);
  // Bound now, so a request sent before serve() picks the channel up is not lost: the receive
  // coroutine looks at the ring before it first waits.
  rt_.bind(ch->end.own_slot, &Server::on_interrupt, ch.get(), &header(*ch->end.region)->raise_server);
  if (ch->end.peer_pid > 0) {
    // A client process that dies is closed on its behalf; the raised slot makes the receive
    // coroutine see kClientClosed and release the channel.
    auto w = peer_watch::watch(ch->end.peer_pid, [region = ch->end.region, notif = rt_.notification_ptr(),
                                                  slot = ch->end.own_slot] {
      header(*region)->closed.fetch_or(abi::kClientClosed, std::memory_order_acq_rel);
      Counters scratch;
      notif->mint_remote(slot, &header(*region)->raise_server).send(scratch);
    });
    if (w) ch->death_watch = w.value();
  }
  live_channels_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lk(incoming_mu_);
    incoming_.push_back(std::move(ch));
  }
  wake_control();
  return {};
}

Result<std::unique_ptr<Client>> Server::connect(Runtime& client_rt, const ChannelOptions& opts) {
  if (auto ok = check_options(opts); !ok) return ok.error();
  auto ss = rt_.allocate_slot();
  if (!ss) return ss.error();
  auto cs = client_rt.allocate_slot();
  if (!cs) {
    rt_.release_slot(ss.value());
    return cs.error();
  }
  auto region = create_channel_region(opts, ss.value(), cs.value());
  if (!region) {
    rt_.release_slot(ss.value());
    client_rt.release_slot(cs.value());
    return region.error();
  }
  (*region)->close_fd();  // both ends are in this process: no fd to hand on
  auto layout = validate_channel(**region);
  if (!layout) return layout.error();
  abi::ChannelHeader* h = header(**region);
  ChannelEnd se{region.value(), layout.value(), client_rt.notification_ptr(),
                client_rt.notification().mint_remote(cs.value(), &h->raise_client), ss.value(), opts};
  ChannelEnd ce{region.value(), layout.value(), rt_.notification_ptr(),
                rt_.notification().mint_remote(ss.value(), &h->raise_server), cs.value(), opts};
  if (auto ok = adopt(std::move(se)); !ok) {
    rt_.release_slot(ss.value());
    client_rt.release_slot(cs.value());
    return ok.error();
  }
  return std::make_unique<Client>(client_rt, std::move(ce));
}

void Server::stop() noexcept {
  stop_.store(true, std::memory_order_release);
  wake_control();
}

bool Server::peer_closed(const Chan* ch) const noexcept {
  return (header(*ch->end.region)->closed.load(std::memory_order_acquire) & abi::kClientClosed) != 0;
}

Task<void> Server::serve() {
  for (;;) {
    std::vector<std::unique_ptr<Chan>> fresh;
    {
      std::lock_guard lk(incoming_mu_);
      fresh.swap(incoming_);
    }
    for (auto& ch : fresh) {
      Chan* p = ch.get();
      channels_.emplace(p, std::move(ch));
      ++p->refs;
      rt_.spawn(receive_loop(p));
    }
    if (stop_.load(std::memory_order_acquire)) break;
    co_await control_->wait();
  }
  for (auto& [p, ch] : channels_) close_channel(p, std::make_error_code(std::errc::connection_reset));
  while (!channels_.empty()) co_await control_->wait();
  // Channels adopted after stop() began were refused or sit in incoming_: release them too.
  std::lock_guard lk(incoming_mu_);
  for (auto& ch : incoming_) {
    if (ch->death_watch != 0) peer_watch::cancel(ch->death_watch);
    header(*ch->end.region)->closed.fetch_or(abi::kServerClosed, std::memory_order_acq_rel);
    ch->end.to_peer.send(rt_.counters());
    rt_.release_slot(ch->end.own_slot);
    live_channels_.fetch_sub(1, std::memory_order_relaxed);
  }
  incoming_.clear();
}

void Server::close_channel(Chan* ch, std::error_code e) noexcept {
  if (ch->closing) return;
  ch->closing = true;
  ch->error = e;
  ++stats_.channels_closed;
  if (e == std::errc::bad_message) ++stats_.protocol_errors;  // counted once per channel
  // Tell the client (its pending calls fail with connection_reset) and stop our coroutines.
  header(*ch->end.region)->closed.fetch_or(abi::kServerClosed, std::memory_order_acq_rel);
  ch->end.to_peer.send(rt_.counters());
  wake_receiver(ch);
  ch->resp_space.wake_all();
}

void Server::unref(Chan* ch) noexcept {
  if (--ch->refs != 0) return;
  if (ch->death_watch != 0) peer_watch::cancel(ch->death_watch);
  rt_.cancel_deferred(ch->flush);
  rt_.release_slot(ch->end.own_slot);
  channels_.erase(ch);
  live_channels_.fetch_sub(1, std::memory_order_relaxed);
  control_->wake_all();
}

Task<void> Server::receive_loop(Chan* ch) {
  const std::uint32_t max = ch->end.layout.max_payload;
  while (!ch->closing) {
    abi::EntryHeader h;
    const std::byte* p;
    while (!ch->closing && (p = ch->req.peek(&h)) != nullptr) {
      ++stats_.requests;
      if (inline_) {
        // The request is copied out of shared memory before anyone looks at it: the client may
        // rewrite the slot at any time.
        std::byte* copy = ch->scratch;
        std::memcpy(copy, p, h.len);
        ch->req.pop();
        if (!reply_inline(ch, h.id, copy, h.len)) {  // response ring full: reply from a buffer
          std::unique_ptr<std::byte[]> buf = take_buffer(ch);
          Result<std::size_t> r = inline_(std::span<const std::byte>(copy, h.len), std::span<std::byte>(buf.get() + max, max));
          ++ch->refs;
          finish_reply(ch, h.id, std::move(buf), std::move(r));
        }
      } else {
        std::unique_ptr<std::byte[]> buf = take_buffer(ch);
        // Copied out first, as above; the slot is then released for reuse right away.
        std::memcpy(buf.get(), p, h.len);
        ch->req.pop();
        ++ch->refs;
        handle(ch, h.id, std::move(buf), h.len);  // runs inline until the handler first suspends
      }
      // Give request slots back as we go: a client that keeps the ring busy would otherwise
      // find it full although we have consumed everything.
      if ((stats_.requests & 31) == 0 && ch->req.release()) ch->end.to_peer.send(rt_.counters());
    }
    if (ch->req.release()) ch->end.to_peer.send(rt_.counters());  // the client waits for space
    if (ch->req.corrupt() || ch->req.bad_entry()) [[unlikely]] {
      close_channel(ch, std::make_error_code(std::errc::bad_message));
      break;
    }
    if (peer_closed(ch)) [[unlikely]] {
      close_channel(ch, std::make_error_code(std::errc::not_connected));
      break;
    }
    struct Park {
      Chan* ch;
      Runtime& rt;
      bool await_ready() const noexcept { return ch->closing; }
      void await_suspend(std::coroutine_handle<> h) noexcept {
        ch->receiver = h;
        rt.park(ch->poller);
      }
      void await_resume() const noexcept {}
    };
    co_await Park{ch, rt_};
  }
  unref(ch);
}

namespace {
// A reply entry's header from the handler's result: its length, or a status for an error (an
// errno value; EIO for anything else) or a reply over the channel's limit (EMSGSIZE). Returns
// the payload length to publish.
inline std::uint32_t set_reply_header(abi::EntryHeader* e, std::uint64_t id, const Result<std::size_t>& r, std::uint32_t max) {
  e->id = id;
  e->len = 0;
  e->status = 0;
  if (!r) {
    const int code = r.error().value();
    e->status = code > 0 && code <= 4095 ? static_cast<std::uint32_t>(code) : static_cast<std::uint32_t>(EIO);
  } else if (r.value() > max) {
    e->status = EMSGSIZE;
  } else {
    e->len = static_cast<std::uint32_t>(r.value());
  }
  return e->len;
}
}  // namespace

std::unique_ptr<std::byte[]> Server::take_buffer(Chan* ch) {
  if (!ch->buffers.empty()) {
    auto buf = std::move(ch->buffers.back());
    ch->buffers.pop_back();
    return buf;
  }
  return std::unique_ptr<std::byte[]>(new std::byte[2 * static_cast<std::size_t>(ch->end.layout.max_payload)]);
}

// Runs the inline handler with the reply written straight into the next response entry.
// False when the response ring has no room now (or others wait for it): the caller buffers.
bool Server::reply_inline(Chan* ch, std::uint64_t id, const std::byte* req, std::uint32_t len) {
  if (ch->closing || peer_closed(ch)) [[unlikely]] {
    ++stats_.dropped_replies;
    return true;
  }
  abi::EntryHeader* e = ch->resp.claim();
  if (e == nullptr || !ch->resp_space.empty()) [[unlikely]] return false;
  const std::uint32_t max = ch->end.layout.max_payload;
  const Result<std::size_t> r = inline_(std::span<const std::byte>(req, len), std::span<std::byte>(ch->resp.payload(e), max));
  set_reply_header(e, id, r, max);
  ch->resp.publish();
  ++stats_.replies;
  rt_.defer(ch->flush);
  return true;
}

detail::Eager Server::finish_reply(Chan* ch, std::uint64_t id, std::unique_ptr<std::byte[]> buf, Result<std::size_t> r) {
  const std::byte* data = buf.get() + ch->end.layout.max_payload;
  if (!try_reply(ch, id, r, data)) co_await send_reply_slow(ch, id, r, data);
  ch->buffers.push_back(std::move(buf));
  unref(ch);
}

namespace {
// The result of a handler task that has finished. An exception escaping a handler is a bug,
// as for any detached coroutine: it aborts with a message.
Result<std::size_t> handler_result(Task<Result<std::size_t>>& t) noexcept {
  try {
    return t.handle().promise().take();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "uipc: a request handler threw: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "uipc: a request handler threw\n");
  }
  std::abort();
}
}  // namespace

void Server::handle(Chan* ch, std::uint64_t id, std::unique_ptr<std::byte[]> buf, std::uint32_t len) {
  const std::uint32_t max = ch->end.layout.max_payload;
  Task<Result<std::size_t>> t = handler_(std::span<const std::byte>(buf.get(), len), std::span<std::byte>(buf.get() + max, max));
  t.handle().resume();  // runs until it first suspends, or to its end
  if (!t.done()) {
    await_handler(ch, id, std::move(buf), std::move(t));
    return;
  }
  const Result<std::size_t> r = handler_result(t);
  if (!try_reply(ch, id, r, buf.get() + max)) {  // the response ring is full: wait for room
    finish_reply(ch, id, std::move(buf), r);
    return;
  }
  ch->buffers.push_back(std::move(buf));
  unref(ch);
}

detail::Eager Server::await_handler(Chan* ch, std::uint64_t id, std::unique_ptr<std::byte[]> buf,
                                    Task<Result<std::size_t>> t) {
  // The task is suspended somewhere inside; nothing resumes it before we are its continuation
  // (only this thread's runtime loop can, and it does not run in between).
  struct Finished {
    Task<Result<std::size_t>>& t;
    bool await_ready() const noexcept { return t.done(); }
    void await_suspend(std::coroutine_handle<> h) noexcept { t.handle().promise().continuation = h; }
    void await_resume() const noexcept {}
  };
  co_await Finished{t};
  finish_reply(ch, id, std::move(buf), handler_result(t));  // replies (waiting for room if need be)
}

// Publishes the reply if there is room; false when the caller must wait (send_reply_slow).
bool Server::try_reply(Chan* ch, std::uint64_t id, const Result<std::size_t>& r, const std::byte* data) {
  if (ch->closing || peer_closed(ch)) [[unlikely]] {
    ++stats_.dropped_replies;
    return true;
  }
  abi::EntryHeader* e = ch->resp.claim();
  if (e == nullptr || !ch->resp_space.empty()) [[unlikely]] return false;
  if (const std::uint32_t n = set_reply_header(e, id, r, ch->end.layout.max_payload); n != 0)
    std::memcpy(ch->resp.payload(e), data, n);
  ch->resp.publish();
  ++stats_.replies;
  rt_.defer(ch->flush);
  return true;
}

Task<void> Server::send_reply_slow(Chan* ch, std::uint64_t id, const Result<std::size_t>& r, const std::byte* data) {
  for (;;) {
    // Handlers already waiting share the ring's one space_waiter flag: queue behind them
    // rather than arm/disarm it under them.
    if (!ch->resp_space.empty()) {
      co_await ch->resp_space.wait();
      continue;
    }
    if (try_reply(ch, id, r, data)) co_return;
    if (ch->resp.corrupt()) {
      close_channel(ch, std::make_error_code(std::errc::bad_message));
      co_return;
    }
    rt_.counters().ring_full_waits.add();
    if (ch->resp.arm_space_wait()) co_await ch->resp_space.wait();
  }
}

}  // namespace uipc::ipc
