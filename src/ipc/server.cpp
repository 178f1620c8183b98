#include "uipc/ipc/server.hpp"

#include <cstdio>
#include <cstring>

namespace uipc::ipc {

struct Server::Chan {
  Server* server = nullptr;
  ChannelEnd end;
  RingConsumer req;
  RingProducer resp;
  WaitList recv_waiter;   // the receive coroutine, when the request ring is empty
  WaitList resp_space;    // handlers waiting for response-ring space
  unsigned refs = 0;      // receive coroutine + handlers still running
  bool closing = false;
  std::error_code error;
  std::vector<std::unique_ptr<std::byte[]>> buffers;  // request+reply scratch, 2 × max_payload
};

Server::Server(Runtime& rt, Handler handler) : rt_(rt), handler_(std::move(handler)) {
  auto s = rt_.allocate_slot();
  if (!s) {
    std::fprintf(stderr, "uipc: server: no free slot for the control vector\n");
    std::abort();
  }
  control_slot_ = s.value();
  control_ = rt_.notification().mint(control_slot_);
  rt_.bind(control_slot_, &Server::on_control, this);
}

Server::~Server() {
  // serve() has returned (or never ran): close whatever is left without running coroutines.
  for (auto& [p, ch] : channels_) rt_.release_slot(ch->end.own_slot);
  for (auto& ch : incoming_) rt_.release_slot(ch->end.own_slot);
  rt_.release_slot(control_slot_);
}

void Server::on_control(void* self, std::uint32_t) { static_cast<Server*>(self)->control_waiter_.wake_all(); }

void Server::on_interrupt(void* p, std::uint32_t) {
  auto* ch = static_cast<Chan*>(p);
  ch->recv_waiter.wake_one();
  ch->resp_space.wake_all();
}

Result<void> Server::adopt(ChannelEnd end) {
  if (stop_.load(std::memory_order_acquire)) return std::errc::connection_refused;
  auto ch = std::make_unique<Chan>();
  ch->server = this;
  ch->req = RingConsumer(request_ring(*end.region, end.layout));
  ch->resp = RingProducer(response_ring(*end.region, end.layout));
  ch->end = std::move(end);
  // Bound now, so a request sent before serve() picks the channel up is not lost: the receive
  // coroutine looks at the ring before it first waits.
  rt_.bind(ch->end.own_slot, &Server::on_interrupt, ch.get());
  live_channels_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lk(incoming_mu_);
    incoming_.push_back(std::move(ch));
  }
  Counters scratch;  // the caller may be any thread: its sends are not the server's
  control_.send(scratch);
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
  auto layout = validate_channel(**region);
  if (!layout) return layout.error();
  ChannelEnd se{region.value(), layout.value(), client_rt.notification_ptr(), client_rt.notification().mint(cs.value()), ss.value(), opts};
  ChannelEnd ce{region.value(), layout.value(), rt_.notification_ptr(), rt_.notification().mint(ss.value()), cs.value(), opts};
  if (auto ok = adopt(std::move(se)); !ok) {
    rt_.release_slot(ss.value());
    client_rt.release_slot(cs.value());
    return ok.error();
  }
  return std::make_unique<Client>(client_rt, std::move(ce));
}

void Server::stop() noexcept {
  stop_.store(true, std::memory_order_release);
  Counters scratch;
  control_.send(scratch);
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
    co_await control_waiter_.wait();
  }
  for (auto& [p, ch] : channels_) close_channel(p, std::make_error_code(std::errc::connection_reset));
  while (!channels_.empty()) co_await control_waiter_.wait();
  // Channels adopted after stop() began were refused or sit in incoming_: release them too.
  std::lock_guard lk(incoming_mu_);
  for (auto& ch : incoming_) {
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
  // Tell the client (its pending calls fail with connection_reset) and stop our coroutines.
  header(*ch->end.region)->closed.fetch_or(abi::kServerClosed, std::memory_order_acq_rel);
  ch->end.to_peer.send(rt_.counters());
  ch->recv_waiter.wake_all();
  ch->resp_space.wake_all();
}

void Server::unref(Chan* ch) noexcept {
  if (--ch->refs != 0) return;
  rt_.release_slot(ch->end.own_slot);
  channels_.erase(ch);
  live_channels_.fetch_sub(1, std::memory_order_relaxed);
  control_waiter_.wake_all();
}

Task<void> Server::receive_loop(Chan* ch) {
  const std::uint32_t max = ch->end.layout.max_payload;
  while (!ch->closing) {
    abi::EntryHeader h;
    while (const std::byte* p = ch->req.peek(&h)) {
      std::unique_ptr<std::byte[]> buf;
      if (!ch->buffers.empty()) {
        buf = std::move(ch->buffers.back());
        ch->buffers.pop_back();
      } else {
        buf.reset(new std::byte[2 * static_cast<std::size_t>(max)]);
      }
      // The request is copied out of shared memory before anyone looks at it: the client may
      // rewrite the slot at any time, and the slot is released for reuse right away.
      std::memcpy(buf.get(), p, h.len);
      ch->req.pop();
      ++stats_.requests;
      ++ch->refs;
      rt_.spawn(handle(ch, h.id, std::move(buf), h.len));
    }
    if (ch->req.release()) ch->end.to_peer.send(rt_.counters());  // the client waits for space
    if (ch->req.corrupt() || ch->req.bad_entry()) [[unlikely]] {
      ++stats_.protocol_errors;
      close_channel(ch, std::make_error_code(std::errc::bad_message));
      break;
    }
    if (peer_closed(ch)) [[unlikely]] {
      close_channel(ch, std::make_error_code(std::errc::not_connected));
      break;
    }
    if (ch->req.arm_data_wait()) co_await ch->recv_waiter.wait();
  }
  unref(ch);
}

Task<void> Server::handle(Chan* ch, std::uint64_t id, std::unique_ptr<std::byte[]> buf, std::uint32_t len) {
  const std::uint32_t max = ch->end.layout.max_payload;
  std::span<const std::byte> request(buf.get(), len);
  std::span<std::byte> reply(buf.get() + max, max);
  Result<std::size_t> r = co_await handler_(request, reply);
  co_await send_reply(ch, id, r, reply.data());
  ch->buffers.push_back(std::move(buf));
  unref(ch);
}

Task<void> Server::send_reply(Chan* ch, std::uint64_t id, const Result<std::size_t>& r, const std::byte* data) {
  abi::EntryHeader* e = nullptr;
  for (;;) {
    if (ch->closing || peer_closed(ch)) {
      ++stats_.dropped_replies;
      co_return;
    }
    if ((e = ch->resp.claim()) != nullptr) break;
    if (ch->resp.corrupt()) {
      ++stats_.protocol_errors;
      close_channel(ch, std::make_error_code(std::errc::bad_message));
      co_return;
    }
    rt_.counters().ring_full_waits.add();
    if (ch->resp.arm_space_wait()) co_await ch->resp_space.wait();
  }
  abi::EntryHeader h{id, 0, 0};
  if (!r) {
    const int code = r.error().value();
    h.status = code > 0 && code <= 4095 ? static_cast<std::uint32_t>(code) : static_cast<std::uint32_t>(EIO);
  } else if (r.value() > ch->end.layout.max_payload) {
    h.status = EMSGSIZE;
  } else {
    h.len = static_cast<std::uint32_t>(r.value());
    std::memcpy(ch->resp.payload(e), data, h.len);
  }
  std::memcpy(e, &h, sizeof h);
  ch->resp.publish();
  ++stats_.replies;
  if (ch->resp.flush()) ch->end.to_peer.send(rt_.counters());
  else rt_.counters().suppressed.add();
}

}  // namespace uipc::ipc
