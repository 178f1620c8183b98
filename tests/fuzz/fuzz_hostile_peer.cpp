// Fuzz target: a hostile client next to a good one, against one ipc::Server.
//
// Everything runs on one thread and one Runtime, so a run is deterministic: the server, the
// good client (a real ipc::Client) and the hostile side are coroutines and plain code
// interleaved by the input. The server runs a coroutine Handler or, by the input's choice, an
// InlineHandler (same replies). The hostile side holds a channel built with the public setup calls
// (as tests/unit/ipc_errors_test.cpp's RawChannel does) and does whatever a process holding that
// memfd and the server's notification memfd could do: push well-formed or malformed requests,
// consume or ignore replies, write any value into any entry field, ring index, waiter flag,
// header word or the `closed` flags, raise or clear bits in the server's notification word,
// restart its ring ends. Some of it happens before the server adopts the channel, as it can
// through the endpoint's handshake (the memfd is sent before adopt() reads the indices).
// Invariants:
//  * no crash, no sanitizer report, no hang (every good call has a timeout; a hang in shutdown
//    is a libFuzzer timeout);
//  * every good call completes with the right reply (the handler reverses the request and xors
//    it with 0x5a; a request starting with 0xEE gets permission_denied; with the coroutine
//    Handler, one starting with 0xEF is answered after a yield, so replies come out of order),
//    and the good channel is never closed: neither side marks it, and its header is unchanged;
//  * the server closes at most one channel and counts at most one protocol error before stop();
//  * after stop() the server ends, with every channel released.
#include <algorithm>
#include <coroutine>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "fuzz_input.hpp"
#include "uipc/ipc/channel.hpp"
#include "uipc/ipc/client.hpp"
#include "uipc/ipc/server.hpp"
#include "uipc/runtime/runtime.hpp"

namespace {

using namespace uipc;
using namespace uipc::ipc;
namespace abi = uipc::abi;

#define CHECK(cond) FUZZ_CHECK("fuzz_hostile_peer", cond)

// A healthy run answers every good call in microseconds (one thread, nothing to wait for); a call
// stuck because of the hostile side shows up as timed_out, a violation, rather than as a hang.
constexpr std::int64_t kCallTimeoutNs = 5'000'000'000;
constexpr std::byte kFail{0xEE};
constexpr std::byte kSlow{0xEF};
constexpr unsigned kMaxGoodOutstanding = 64;
constexpr unsigned kMaxSteps = 512;

void transform(std::span<const std::byte> in, std::byte* out) {
  const std::size_t n = in.size();
  for (std::size_t k = 0; k < n; ++k) out[k] = in[n - 1 - k] ^ std::byte{0x5a};
}

// The same service as an InlineHandler (runs inside the receive coroutine, never suspends).
Result<std::size_t> handle_inline(std::span<const std::byte> req, std::span<std::byte> reply) {
  if (!req.empty() && req[0] == kFail) return std::errc::permission_denied;
  if (req.size() > reply.size()) return std::errc::message_size;
  transform(req, reply.data());
  return req.size();
}

Task<Result<std::size_t>> handle(std::span<const std::byte> req, std::span<std::byte> reply) {
  if (!req.empty() && req[0] == kFail) co_return std::errc::permission_denied;
  if (!req.empty() && req[0] == kSlow) co_await Runtime::current()->yield();
  if (req.size() > reply.size()) co_return std::errc::message_size;  // the server sizes reply to max_payload
  transform(req, reply.data());
  co_return req.size();
}

// co_await Settle{rt}: resumes once the ready queue has drained (Runtime::defer runs at the end of
// a batch), so whatever the server had to do in response to the last operation has been done.
struct Settle {
  Runtime& rt;
  Deferred d{};
  std::coroutine_handle<> h{};
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> hh) noexcept {
    h = hh;
    d.ctx = this;
    d.fn = [](void* c) {
      auto* s = static_cast<Settle*>(c);
      s->rt.schedule(s->h);
    };
    rt.defer(d);
  }
  void await_resume() const noexcept {}
};

struct Good {
  Runtime& rt;
  std::shared_ptr<Region> region;
  std::unique_ptr<Client> client;
  std::uint32_t max_payload = 0;
  unsigned outstanding = 0;
  std::uint64_t started = 0, completed = 0;
  WaitList idle;
  unsigned char header_at_start[offsetof(abi::ChannelHeader, closed)] = {};

  bool intact() const {
    return std::memcmp(header_at_start, region->data(), sizeof header_at_start) == 0 &&
           header(*region)->closed.load(std::memory_order_relaxed) == 0 && !client->closed();
  }
};

void expect_reply(const std::vector<std::byte>& req, const Result<std::size_t>& r, const std::vector<std::byte>& out) {
  if (!req.empty() && req[0] == kFail) {
    if (r || r.error() != std::errc::permission_denied)
      std::fprintf(stderr, "good call: expected permission_denied, got %s\n",
                   r ? "a reply" : r.error().message().c_str());
    CHECK(!r && r.error() == std::errc::permission_denied);
    return;
  }
  if (!r) std::fprintf(stderr, "good call failed: %s\n", r.error().message().c_str());
  CHECK(r.has_value());
  CHECK(r.value() == req.size());
  std::vector<std::byte> want(req.size());
  transform(req, want.data());
  CHECK(std::equal(want.begin(), want.end(), out.begin()));
}

Task<void> good_call(Good& g, std::vector<std::byte> req) {
  std::vector<std::byte> out(g.max_payload);
  Result<std::size_t> r = co_await g.client->call(req, out, kCallTimeoutNs);
  expect_reply(req, r, out);
  ++g.completed;
  if (--g.outstanding == 0) g.idle.wake_all();
}

std::vector<std::byte> make_request(fuzz::Input& in, std::uint32_t max_payload) {
  std::vector<std::byte> req(in.u8() % (max_payload + 1));
  const std::uint8_t first = in.u8();
  for (std::size_t k = 0; k < req.size(); ++k) req[k] = std::byte(static_cast<std::uint8_t>(first + 13 * k));
  return req;
}

struct Hostile {
  std::shared_ptr<Region> region;
  ChannelLayout layout;
  RingProducer req;
  RingConsumer resp;
  SenderEntry to_server;
  abi::NotificationHints* server_hints = nullptr;
  Counters counters;
  // The hostile ring ends' private indices (RingProducer does not publish its tail), followed so
  // that scribbles can aim near the values the server compares against.
  std::uint32_t req_tail = 0;
  std::uint32_t resp_head = 0;

  RingGeometry ring(bool request) const {
    return request ? request_ring(*region, layout) : response_ring(*region, layout);
  }
  void reattach() {
    req = RingProducer(ring(true));
    resp = RingConsumer(ring(false));
    req_tail = ring(true).indices->cons.head.load(std::memory_order_relaxed);
    resp_head = ring(false).indices->cons.head.load(std::memory_order_relaxed);
  }

  void signal(std::uint8_t mode) {
    switch (mode % 3) {
      case 0:
        if (req.flush()) to_server.send(counters);
        break;
      case 1: to_server.send(counters); break;
      default: break;  // never tells the server
    }
  }

  void push(fuzz::Input& in, bool raw_len) {
    abi::EntryHeader* e = req.claim();
    if (e == nullptr) return;
    const std::uint32_t len = raw_len ? in.u32() : in.u8() % (layout.max_payload + 1);
    const std::uint8_t first = in.u8();
    e->id = in.u64();  // any id: the server echoes it and must not care
    e->len = len;
    e->status = in.u8() == 0xff ? in.u32() : 0;
    auto* p = reinterpret_cast<std::uint8_t*>(req.payload(e));
    for (std::uint32_t k = 0; k < layout.max_payload; ++k) p[k] = static_cast<std::uint8_t>(first + k);
    req.publish();
    ++req_tail;
    signal(in.u8());
  }

  // For the request ring the hostile side is the producer and knows the tail; for the response
  // ring it knows its own head, and the server's tail is at most `capacity` past it.
  std::uint32_t value_near(fuzz::Input& in, bool request, const RingGeometry& g) const {
    const std::uint8_t mode = in.u8();
    const auto delta = static_cast<std::uint32_t>(static_cast<std::int8_t>(in.u8()));
    const std::uint32_t tail = request ? req_tail : resp_head;
    const std::uint32_t head = g.indices->cons.head.load(std::memory_order_relaxed);
    switch (mode & 3) {
      case 0: return tail + delta;
      case 1: return head + delta;
      case 2: return tail + 1 + delta * g.capacity;
      default: return in.u32();
    }
  }

  void write_entry(fuzz::Input& in) {
    const bool request = in.flag();
    const RingGeometry g = ring(request);
    const std::uint32_t index = in.u16();
    const std::uint8_t field = in.u8();
    const std::uint32_t v = value_near(in, request, g);
    std::size_t off;
    switch (field & 7) {
      case 0: off = offsetof(abi::EntryHeader, seq); break;
      case 1: off = offsetof(abi::EntryHeader, len); break;
      case 2: off = offsetof(abi::EntryHeader, id); break;
      case 3: off = offsetof(abi::EntryHeader, id) + 4; break;
      case 4: off = offsetof(abi::EntryHeader, status); break;
      default: off = sizeof(abi::EntryHeader) + 4 * ((field >> 3) % (g.max_payload / 4)); break;
    }
    std::memcpy(g.entries + std::size_t{index & (g.capacity - 1)} * g.stride + off, &v, sizeof v);
  }

  void write_index(fuzz::Input& in) {
    const bool request = in.flag();
    const RingGeometry g = ring(request);
    const std::uint8_t which = in.u8();
    const std::uint32_t v = value_near(in, request, g);
    std::atomic<std::uint32_t>* w;
    switch (which & 3) {
      case 0: w = &g.indices->prod.tail; break;
      case 1: w = &g.indices->prod.space_waiter; break;
      case 2: w = &g.indices->cons.head; break;
      default: w = &g.indices->cons.data_waiter; break;
    }
    w->store(v, std::memory_order_relaxed);
  }

  void write_closed(fuzz::Input& in) {
    std::atomic<std::uint32_t>& closed = header(*region)->closed;
    switch (in.u8() % 4) {
      case 0: closed.fetch_or(abi::kClientClosed); break;
      case 1: closed.fetch_or(abi::kServerClosed); break;
      case 2: closed.store(0); break;  // "un-closes" a channel the server has closed
      default: closed.store(in.u32()); break;
    }
  }

  void write_any(fuzz::Input& in) {
    const std::size_t off = (in.u32() % region->size()) & ~std::size_t{3};
    const std::uint32_t v = in.u32();
    std::memcpy(static_cast<std::byte*>(region->data()) + off, &v, sizeof v);
  }

  void consume(fuzz::Input& in) {
    const unsigned n = 1 + in.u8() % 8;
    abi::EntryHeader h;
    for (unsigned k = 0; k < n && resp.peek(&h) != nullptr; ++k) {
      resp.pop();
      ++resp_head;
    }
    if (in.flag() && resp.release()) to_server.send(counters);
  }

  // The server's notification hints are mapped writable by every client of that server (its
  // control line and the other channels' raise flags are not).
  void scribble_notification(fuzz::Input& in) {
    const std::uint8_t which = in.u8();
    const std::uint64_t bits = in.u64();
    std::atomic<std::uint64_t>& w = (which & 1) ? server_hints->doorbell[(which >> 2) % abi::kVectors] : server_hints->pending;
    if (which & 2) w.fetch_or(bits);
    else w.fetch_and(~bits);
  }
};

struct Run {
  Runtime& rt;
  Server& server;
  Good& good;
  Hostile& hostile;
  fuzz::Input& in;

  void check_isolation() const {
    CHECK(good.intact());
    const ServerStats st = server.stats();
    if (st.protocol_errors > 1 || st.channels_closed > 1)
      std::fprintf(stderr, "server stats: requests %llu replies %llu dropped %llu closed %llu protocol errors %llu\n",
                   static_cast<unsigned long long>(st.requests), static_cast<unsigned long long>(st.replies),
                   static_cast<unsigned long long>(st.dropped_replies), static_cast<unsigned long long>(st.channels_closed),
                   static_cast<unsigned long long>(st.protocol_errors));
    CHECK(st.channels_closed <= 1);
    CHECK(st.protocol_errors <= 1);
    CHECK(server.channel_count() >= 1);
  }

  void spawn_good_call() {
    std::vector<std::byte> req = make_request(in, good.max_payload);
    if (good.outstanding >= kMaxGoodOutstanding) return;
    ++good.outstanding;
    ++good.started;
    rt.spawn(good_call(good, std::move(req)));
  }

  Task<void> drive() {
    for (unsigned steps = 0; !in.done() && steps < kMaxSteps; ++steps) {
      switch (in.u8() % 14) {
        case 0: case 1: hostile.push(in, false); break;
        case 2: hostile.push(in, true); break;
        case 3: hostile.write_entry(in); break;
        case 4: hostile.write_index(in); break;
        case 5: hostile.write_closed(in); break;
        case 6: hostile.write_any(in); break;
        case 7: hostile.consume(in); break;
        case 8: hostile.to_server.send(hostile.counters); break;
        case 9:
          for (unsigned k = 1 + in.u8() % 4; k > 0; --k) co_await Settle{rt};
          break;
        case 10: case 11: spawn_good_call(); break;
        case 12: hostile.scribble_notification(in); break;
        default: hostile.reattach(); break;
      }
      check_isolation();
    }
    while (good.outstanding != 0) co_await good.idle.wait();
    CHECK(good.completed == good.started);
    check_isolation();
    // After all that, the good channel still works.
    std::vector<std::byte> req{std::byte{1}, std::byte{2}, std::byte{3}};
    std::vector<std::byte> out(good.max_payload);
    Result<std::size_t> r = co_await good.client->call(req, out, kCallTimeoutNs);
    expect_reply(req, r, out);
    check_isolation();
  }
};

void pre_adopt(Hostile& h, fuzz::Input& in) {
  for (unsigned n = in.u8() % 4; n > 0; --n) {
    switch (in.u8() % 4) {
      case 0: h.write_index(in); break;
      case 1: h.write_entry(in); break;
      case 2: h.write_any(in); break;
      default: h.push(in, false); break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  RuntimeOptions ro;
  ro.spin_ns = 0;  // one thread: there is nobody to spin for
  Runtime rt(ro);
  const std::uint8_t cap_byte = in.u8();
  const std::uint8_t payload_byte = in.u8();  // bit 7: the server runs an InlineHandler
  std::unique_ptr<Server> server_ptr = (payload_byte & 0x80) ? std::make_unique<Server>(rt, InlineHandler(&handle_inline))
                                                             : std::make_unique<Server>(rt, Handler(&handle));
  Server& server = *server_ptr;

  // The good channel, set up as Server::connect does, keeping the region to check it later.
  ChannelOptions go;
  go.capacity = 4;
  go.max_payload = 64;
  go.max_inflight = 8;
  const std::uint32_t gss = server.reserve_slot().value();
  const std::uint32_t gcs = rt.allocate_slot().value();
  Good good{rt, create_channel_region(go, gss, gcs).value(), nullptr, go.max_payload};
  good.region->close_fd();
  const ChannelLayout glayout = validate_channel(*good.region).value();
  std::memcpy(good.header_at_start, good.region->data(), sizeof good.header_at_start);
  abi::ChannelHeader* gh = header(*good.region);
  CHECK(server.adopt({good.region, glayout, rt.notification_ptr(), rt.notification().mint_remote(gcs, &gh->raise_client),
                      gss, go}));
  good.client = std::make_unique<Client>(rt, ChannelEnd{good.region, glayout, rt.notification_ptr(),
                                                        rt.notification().mint_remote(gss, &gh->raise_server), gcs, go});

  // The hostile channel: geometry from the input.
  ChannelOptions ho;
  ho.capacity = 1u << (1 + cap_byte % 4);      // 2 .. 16
  ho.max_payload = 16 * (1 + payload_byte % 4);  // 16 .. 64
  ho.max_inflight = 16;
  const std::uint32_t hss = server.reserve_slot().value();
  const std::uint32_t hcs = rt.allocate_slot().value();  // nobody listens: the hostile side polls
  Hostile hostile;
  hostile.region = create_channel_region(ho, hss, hcs).value();
  hostile.region->close_fd();
  hostile.layout = validate_channel(*hostile.region).value();
  abi::ChannelHeader* hh = header(*hostile.region);
  hostile.to_server = rt.notification().mint_remote(hss, &hh->raise_server);
  hostile.server_hints = rt.notification().hints();
  hostile.reattach();
  pre_adopt(hostile, in);
  CHECK(server.adopt({hostile.region, hostile.layout, rt.notification_ptr(),
                      rt.notification().mint_remote(hcs, &hh->raise_client), hss, ho}));

  rt.spawn(server.serve());
  Run run{rt, server, good, hostile, in};
  rt.block_on(run.drive());
  server.stop();
  rt.run();  // serve() returns once every channel and handler is done
  CHECK(server.channel_count() == 0);
  good.client.reset();
  rt.release_slot(hcs);
  return 0;
}
