// Unit tests of the synchronous Call / ReplyRecv baseline (uipc/ipc/sync_call.hpp).
#include "uipc/ipc/sync_call.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "uipc/notify/futex.hpp"
#include "uipc/ring/handshake.hpp"

namespace {

using namespace std::chrono_literals;
using uipc::ipc::SyncClient;
using uipc::ipc::SyncEndpoint;
using uipc::ipc::SyncOptions;
using uipc::ipc::SyncServer;
namespace sync_abi = uipc::ipc::sync_abi;

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }
std::string str(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// Serves until the endpoint closes: replies "<badge>:<request>".
void prefix_server(SyncServer& srv) {
  auto r = srv.recv();
  std::string out;
  while (r) {
    out = std::to_string(r->badge) + ":" + str(r->data);
    r = srv.reply_recv(bytes(out));
  }
}

// Serves until the endpoint closes: echoes the request.
void echo_server(SyncServer& srv) {
  auto r = srv.recv();
  while (r) r = srv.reply_recv(r->data);
}

std::byte* base_of(const SyncEndpoint& ep) { return static_cast<std::byte*>(ep.region().data()); }
sync_abi::SlotControl* slot_ctl(const SyncEndpoint& ep, std::uint32_t slot) {
  const auto& l = ep.layout();
  return reinterpret_cast<sync_abi::SlotControl*>(base_of(ep) + l.slots_offset + std::size_t{slot} * l.slot_stride);
}
sync_abi::Doorbell* doorbell(const SyncEndpoint& ep) {
  return reinterpret_cast<sync_abi::Doorbell*>(base_of(ep) + ep.layout().doorbell_offset);
}

TEST(SyncCall, RoundTrip) {
  auto ep = SyncEndpoint::create(4, 256);
  ASSERT_TRUE(ep) << ep.error().message();
  auto srv = ep->server();
  ASSERT_TRUE(srv);
  std::thread st([&] { prefix_server(*srv); });
  auto cl = ep->client(2);
  ASSERT_TRUE(cl);
  char buf[256];
  auto out = std::as_writable_bytes(std::span(buf));
  for (int i = 0; i < 100; ++i) {
    const std::string req = "hello " + std::to_string(i);
    auto n = cl->call(bytes(req), out);
    ASSERT_TRUE(n) << n.error().message();
    EXPECT_EQ(std::string(buf, *n), "2:" + req);
  }
  auto empty = cl->call({}, out);  // zero-length request and reply are fine
  ASSERT_TRUE(empty);
  EXPECT_EQ(std::string(buf, *empty), "2:");
  EXPECT_EQ(cl->counters().snapshot().calls, 101u);
  ep->close();
  st.join();
  EXPECT_EQ(srv->counters().snapshot().calls, 101u);
  EXPECT_TRUE(ep->closed());
}

TEST(SyncCall, CreateArgumentErrors) {
  EXPECT_EQ(SyncEndpoint::create(0, 64).error(), std::errc::invalid_argument);
  EXPECT_EQ(SyncEndpoint::create(uipc::ipc::kSyncMaxSlots + 1, 64).error(), std::errc::invalid_argument);
  EXPECT_EQ(SyncEndpoint::create(1, uipc::ipc::kSyncMinPayload - 1).error(), std::errc::invalid_argument);
  EXPECT_EQ(SyncEndpoint::create(1, uipc::ipc::kSyncMaxPayload + 1).error(), std::errc::invalid_argument);
  auto big = SyncEndpoint::create(uipc::ipc::kSyncMaxSlots, uipc::ipc::kSyncMaxPayload);  // sparse memfd
  ASSERT_TRUE(big) << big.error().message();
  EXPECT_EQ(big->layout().words, 64u);
}

TEST(SyncCall, OutOfRangeAndBusy) {
  auto ep = SyncEndpoint::create(3, 64);
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->client(3).error(), std::errc::invalid_argument);
  EXPECT_EQ(ep->client(~0u).error(), std::errc::invalid_argument);
  auto a = ep->client(1);
  ASSERT_TRUE(a);
  EXPECT_EQ(ep->client(1).error(), std::errc::device_or_resource_busy);
  {
    SyncClient moved = std::move(*a);  // moving keeps the binding
    EXPECT_FALSE(*a);
    EXPECT_EQ(ep->client(1).error(), std::errc::device_or_resource_busy);
  }
  EXPECT_TRUE(ep->client(1));  // released by the destructor
  auto s = ep->server();
  ASSERT_TRUE(s);
  EXPECT_EQ(ep->server().error(), std::errc::device_or_resource_busy);
  SyncClient unbound;
  std::byte b[8];
  EXPECT_EQ(unbound.call({}, b).error(), std::errc::bad_file_descriptor);
}

TEST(SyncCall, OversizeMessages) {
  auto ep = SyncEndpoint::create(2, 64);
  ASSERT_TRUE(ep);
  auto cl = ep->client(0);
  ASSERT_TRUE(cl);
  std::vector<std::byte> big(65), out(128);
  EXPECT_EQ(cl->call(big, out).error(), std::errc::message_size);  // refused before sending

  auto srv = ep->server();
  ASSERT_TRUE(srv);
  std::atomic<int> stage{0};
  std::thread st([&] {
    auto r = srv->recv();  // 1st call: the server tries an oversize reply, then a 40-byte one
    ASSERT_TRUE(r);
    std::vector<std::byte> too_big(65);
    EXPECT_EQ(srv->reply(too_big).error(), std::errc::message_size);
    EXPECT_TRUE(srv->has_caller());  // the caller is kept
    std::vector<std::byte> forty(40, std::byte{7});
    r = srv->reply_recv(forty);  // 2nd call: the reply does not fit the client's buffer
    ASSERT_TRUE(r);
    r = srv->reply_recv(forty);  // 3rd call: fits again
    ASSERT_TRUE(r);
    r = srv->reply_recv(forty);
    EXPECT_EQ(r.error(), std::errc::connection_aborted);
    stage.store(1, std::memory_order_relaxed);  // read after join()
  });
  std::vector<std::byte> req(8);
  auto n = cl->call(req, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 40u);
  EXPECT_EQ(cl->call(req, std::span(out).first(39)).error(), std::errc::message_size);
  n = cl->call(req, out);  // the slot is still usable
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 40u);
  EXPECT_EQ(out[39], std::byte{7});
  ep->close();
  st.join();
  EXPECT_EQ(stage.load(std::memory_order_relaxed), 1);
  // Server-side misuse.
  EXPECT_FALSE(srv->has_caller());
}

TEST(SyncCall, ReplyWithoutCallerAndReplyError) {
  auto ep = SyncEndpoint::create(1, 64);
  ASSERT_TRUE(ep);
  auto srv = ep->server();
  ASSERT_TRUE(srv);
  std::byte b[4]{};
  EXPECT_EQ(srv->reply(b).error(), std::errc::invalid_argument);
  EXPECT_EQ(srv->reply_error(std::errc::permission_denied).error(), std::errc::invalid_argument);
  std::thread st([&] {
    auto r = srv->recv();
    ASSERT_TRUE(r);
    EXPECT_TRUE(srv->reply_error(std::errc::permission_denied));
    r = srv->recv();  // 2nd call: dropped by the next recv()
    ASSERT_TRUE(r);
    r = srv->recv();  // 3rd call: served normally
    ASSERT_TRUE(r);
    EXPECT_TRUE(srv->reply(r->data));
  });
  auto cl = ep->client(0);
  ASSERT_TRUE(cl);
  std::byte out[64];
  EXPECT_EQ(cl->call(b, out).error(), std::errc::permission_denied);
  EXPECT_EQ(cl->call(b, out).error(), std::errc::operation_canceled);
  auto n = cl->call(b, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, sizeof b);
  st.join();
}

TEST(SyncCall, AttachSharesTheEndpoint) {
  auto ep = SyncEndpoint::create(8, 128);
  ASSERT_TRUE(ep);
  auto peer = SyncEndpoint::attach(::dup(ep->fd()));  // a second mapping, as another process sees it
  ASSERT_TRUE(peer) << peer.error().message();
  EXPECT_EQ(peer->layout(), ep->layout());
  EXPECT_NE(peer->region().data(), ep->region().data());
  auto srv = ep->server();
  ASSERT_TRUE(srv);
  std::thread st([&] { prefix_server(*srv); });
  auto cl = peer->client(5);
  ASSERT_TRUE(cl);
  EXPECT_EQ(ep->client(5).error(), std::errc::device_or_resource_busy);  // the binding is shared
  EXPECT_EQ(peer->server().error(), std::errc::device_or_resource_busy);
  char out[128];
  auto n = cl->call(bytes("across"), std::as_writable_bytes(std::span(out)));
  ASSERT_TRUE(n);
  EXPECT_EQ(std::string(out, *n), "5:across");
  peer->close();  // closing through either mapping closes the endpoint
  st.join();
  EXPECT_TRUE(ep->closed());
}

TEST(SyncCall, AttachValidation) {
  // Each case corrupts one header field of a fresh endpoint, then attaches to it.
  struct Case {
    const char* name;
    void (*corrupt)(sync_abi::HeaderInfo&);
    std::errc want;
  };
  const Case cases[] = {
      {"magic", [](sync_abi::HeaderInfo& h) { h.magic ^= 1; }, std::errc::wrong_protocol_type},
      {"version", [](sync_abi::HeaderInfo& h) { h.version = 99; }, std::errc::protocol_not_supported},
      {"header_bytes", [](sync_abi::HeaderInfo& h) { h.header_bytes = 64; }, std::errc::invalid_argument},
      {"slots0", [](sync_abi::HeaderInfo& h) { h.slots = 0; }, std::errc::invalid_argument},
      {"slots_huge", [](sync_abi::HeaderInfo& h) { h.slots = 1u << 30; }, std::errc::invalid_argument},
      {"slots_beyond_region", [](sync_abi::HeaderInfo& h) {
         h.slots = 4096;
         const auto l = sync_abi::layout_for(h.slots, h.max_payload);
         h.words = l.words;
         h.region_bytes = l.region_bytes;
       }, std::errc::invalid_argument},
      {"payload_small", [](sync_abi::HeaderInfo& h) { h.max_payload = 1; }, std::errc::invalid_argument},
      {"payload_huge", [](sync_abi::HeaderInfo& h) { h.max_payload = 1u << 31; }, std::errc::invalid_argument},
      {"stride", [](sync_abi::HeaderInfo& h) { h.slot_stride = 64; }, std::errc::invalid_argument},
      {"words", [](sync_abi::HeaderInfo& h) { h.words = 64; }, std::errc::invalid_argument},
      {"doorbell_offset", [](sync_abi::HeaderInfo& h) { h.doorbell_offset = ~0ull; }, std::errc::invalid_argument},
      {"slots_offset", [](sync_abi::HeaderInfo& h) { h.slots_offset = 1ull << 40; }, std::errc::invalid_argument},
      {"region_bytes", [](sync_abi::HeaderInfo& h) { h.region_bytes = 1ull << 40; }, std::errc::invalid_argument},
  };
  for (const Case& c : cases) {
    auto ep = SyncEndpoint::create(16, 256);
    ASSERT_TRUE(ep);
    sync_abi::HeaderInfo info;
    std::memcpy(&info, base_of(*ep), sizeof info);
    c.corrupt(info);
    std::memcpy(base_of(*ep), &info, sizeof info);
    auto peer = SyncEndpoint::attach(::dup(ep->fd()));
    ASSERT_FALSE(peer) << c.name;
    EXPECT_EQ(peer.error(), c.want) << c.name << ": " << peer.error().message();
  }
  // Not a memfd, a closed descriptor, a memfd too short for a header.
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::close(p[1]);
  EXPECT_FALSE(SyncEndpoint::attach(p[0]));
  EXPECT_FALSE(SyncEndpoint::attach(-1));
  auto tiny = uipc::Region::create(64);
  ASSERT_TRUE(tiny);
  EXPECT_FALSE(SyncEndpoint::attach(::dup(tiny->fd())));  // zero magic
  // The untouched endpoint still attaches.
  auto ep = SyncEndpoint::create(16, 256);
  ASSERT_TRUE(ep);
  EXPECT_TRUE(SyncEndpoint::attach(::dup(ep->fd())));
}

TEST(SyncCall, HostileClientLengthIsRefused) {
  auto ep = SyncEndpoint::create(2, 64);
  ASSERT_TRUE(ep);
  auto srv = ep->server(SyncOptions{0});
  ASSERT_TRUE(srv);
  // A "client" that writes slot 1 by hand with an impossible length and rings the doorbell.
  auto* c = slot_ctl(*ep, 1);
  c->req_seq.store(77, std::memory_order_relaxed);
  c->req_len.store(1u << 30, std::memory_order_relaxed);
  doorbell(*ep)->pending[0].fetch_or(2, std::memory_order_release);
  // ... and a bit for a slot that does not exist.
  doorbell(*ep)->pending[0].fetch_or(std::uint64_t{1} << 40, std::memory_order_release);
  std::thread st([&] { echo_server(*srv); });
  auto good = ep->client(0);
  ASSERT_TRUE(good);
  std::byte out[64];
  std::byte in[3]{std::byte{1}, std::byte{2}, std::byte{3}};
  // Two calls: the server serves every request it took before taking more, so by the end of the
  // second call the bogus request (taken with the first, or before it) has been answered.
  for (int i = 0; i < 2; ++i) {
    auto n = good->call(in, out);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 3u);
  }
  EXPECT_EQ(c->reply_seq.load(std::memory_order_acquire), 77u);
  EXPECT_EQ(c->reply_status.load(std::memory_order_relaxed), static_cast<std::uint32_t>(EMSGSIZE));
  ep->close();
  st.join();
}

TEST(SyncCall, HostileServerReplyIsRefused) {
  for (std::uint64_t spin : {std::uint64_t{0}, uipc::ipc::kDefaultSyncSpinNs}) {
    auto ep = SyncEndpoint::create(1, 64);
    ASSERT_TRUE(ep);
    auto cl = ep->client(0, SyncOptions{spin});
    ASSERT_TRUE(cl);
    // A "server" that answers by hand with an impossible length.
    std::thread st([&] {
      auto* db = doorbell(*ep);
      while (db->pending[0].exchange(0, std::memory_order_acquire) == 0) std::this_thread::yield();
      auto* c = slot_ctl(*ep, 0);
      c->reply_len.store(1u << 20, std::memory_order_relaxed);
      c->reply_status.store(0, std::memory_order_relaxed);
      c->reply_seq.store(c->req_seq.load(std::memory_order_relaxed), std::memory_order_release);
      if (uipc::handshake::must_signal(c->client_sleeping)) uipc::futex::wake(&c->client_sleeping, 1);
    });
    std::byte out[64];
    EXPECT_EQ(cl->call({}, out).error(), std::errc::protocol_error);
    st.join();
  }
}

TEST(SyncCall, CloseWakesBlockedClient) {
  for (std::uint64_t spin : {std::uint64_t{0}, uipc::ipc::kDefaultSyncSpinNs}) {
    auto ep = SyncEndpoint::create(4, 64);
    ASSERT_TRUE(ep);
    auto srv = ep->server();  // bound, but never receives: the call blocks
    ASSERT_TRUE(srv);
    auto cl = ep->client(0, SyncOptions{spin});
    ASSERT_TRUE(cl);
    std::error_code got;
    std::thread ct([&] {
      std::byte out[64];
      got = cl->call({}, out).error();
    });
    while (cl->counters().snapshot().sleeps == 0) std::this_thread::sleep_for(1ms);  // it is asleep (or about to be)
    std::this_thread::sleep_for(5ms);
    ep->close();
    ct.join();
    EXPECT_EQ(got, std::errc::connection_aborted) << "spin " << spin;
    std::byte out[64];
    EXPECT_EQ(cl->call({}, out).error(), std::errc::connection_aborted);  // at once from now on
    EXPECT_EQ(ep->client(1).error(), std::errc::connection_aborted);
  }
}

TEST(SyncCall, CloseWakesBlockedServer) {
  for (std::uint64_t spin : {std::uint64_t{0}, uipc::ipc::kDefaultSyncSpinNs}) {
    auto ep = SyncEndpoint::create(4, 64);
    ASSERT_TRUE(ep);
    auto srv = ep->server(SyncOptions{spin});
    ASSERT_TRUE(srv);
    std::error_code got;
    std::thread st([&] { got = srv->recv().error(); });
    while (srv->counters().snapshot().sleeps == 0) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(5ms);
    ep->close();
    st.join();
    EXPECT_EQ(got, std::errc::connection_aborted);
    EXPECT_EQ(srv->recv().error(), std::errc::connection_aborted);
    EXPECT_EQ(ep->server().error(), std::errc::connection_aborted);
  }
}

TEST(SyncCall, ServerDestructionReleasesCallers) {
  auto ep = SyncEndpoint::create(2, 64);
  ASSERT_TRUE(ep);
  auto cl = ep->client(0, SyncOptions{0});
  ASSERT_TRUE(cl);
  std::error_code got;
  {
    auto bound = ep->server(SyncOptions{0});
    ASSERT_TRUE(bound);
    std::optional<SyncServer> srv(std::move(*bound));
    std::thread ct([&] {
      std::byte out[64];
      got = cl->call({}, out).error();
    });
    auto r = srv->recv();  // take the call, never answer it, go away
    ASSERT_TRUE(r);
    srv.reset();
    ct.join();
  }
  EXPECT_EQ(got, std::errc::operation_canceled);
  EXPECT_TRUE(ep->closed());
  std::byte out[64];
  EXPECT_EQ(cl->call({}, out).error(), std::errc::connection_aborted);
}

TEST(SyncCall, PureFutexPath) {
  auto ep = SyncEndpoint::create(2, 64);
  ASSERT_TRUE(ep);
  auto srv = ep->server(SyncOptions{0});
  ASSERT_TRUE(srv);
  std::thread st([&] { prefix_server(*srv); });
  auto cl = ep->client(1, SyncOptions{0});
  ASSERT_TRUE(cl);
  char out[64];
  constexpr int kCalls = 300;
  for (int i = 0; i < kCalls; ++i) {
    const std::string req = std::to_string(i);
    auto n = cl->call(bytes(req), std::as_writable_bytes(std::span(out)));
    ASSERT_TRUE(n);
    ASSERT_EQ(std::string(out, *n), "1:" + req);
  }
  ep->close();
  st.join();
  const auto c = cl->counters().snapshot();
  const auto s = srv->counters().snapshot();
  EXPECT_EQ(c.spins, 0u);          // never spun
  EXPECT_EQ(c.sleeps, c.calls);    // every wait went to the futex path
  // And some side really slept at least once. (Which side is a matter of timing: on a loaded
  // machine one side can find the other's message every time it looks.)
  EXPECT_GT(c.futex_waits + s.futex_waits, 0u);
  EXPECT_GT(c.futex_wakes + s.futex_wakes, 0u);
  EXPECT_EQ(s.spins, 0u);
}

TEST(SyncCall, SpinPathNeedsNoKernelEntriesWhenPeerIsFast) {
  auto ep = SyncEndpoint::create(1, 64);
  ASSERT_TRUE(ep);
  // A very long window so that even a loaded or sanitized machine answers inside it.
  const SyncOptions spin{200'000'000};
  auto srv = ep->server(spin);
  ASSERT_TRUE(srv);
  std::thread st([&] { echo_server(*srv); });
  auto cl = ep->client(0, spin);
  ASSERT_TRUE(cl);
  std::byte in[8]{}, out[8];
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(cl->call(in, out));
  const auto c = cl->counters().snapshot();
  ep->close();
  st.join();
  // Without a sleeping peer nobody enters the kernel (the server slept at most before the first call).
  EXPECT_EQ(c.futex_waits, 0u);
  EXPECT_LE(c.futex_wakes, 1u);
  EXPECT_EQ(c.spins + c.sleeps, 200u);
}

TEST(SyncCall, ManyClientsGetTheirOwnReplies) {
  constexpr std::uint32_t kClients = 6;
  constexpr int kCalls = 500;
  for (std::uint64_t spin : {std::uint64_t{0}, uipc::ipc::kDefaultSyncSpinNs}) {
    for (std::uint32_t slots : {std::uint32_t{kClients}, std::uint32_t{200}}) {  // one and several doorbell words
      auto ep = SyncEndpoint::create(slots, 128);
      ASSERT_TRUE(ep);
      auto srv = ep->server(SyncOptions{spin});
      ASSERT_TRUE(srv);
      std::thread st([&] { prefix_server(*srv); });
      std::atomic<int> bad{0};  // relaxed: read after join()
      std::vector<std::thread> ts;
      for (std::uint32_t i = 0; i < kClients; ++i) {
        const std::uint32_t slot = slots == kClients ? i : i * 37 % slots;  // spread over words
        ts.emplace_back([&, slot] {
          auto cl = ep->client(slot, SyncOptions{spin});
          if (!cl) {
            bad.fetch_add(1, std::memory_order_relaxed);
            return;
          }
          char out[128];
          for (int k = 0; k < kCalls; ++k) {
            const std::string req = "c" + std::to_string(slot) + "#" + std::to_string(k);
            auto n = cl->call(bytes(req), std::as_writable_bytes(std::span(out)));
            if (!n || std::string(out, *n) != std::to_string(slot) + ":" + req) bad.fetch_add(1, std::memory_order_relaxed);
          }
        });
      }
      for (auto& t : ts) t.join();
      ep->close();
      st.join();
      EXPECT_EQ(bad.load(std::memory_order_relaxed), 0) << "spin " << spin << " slots " << slots;
      EXPECT_EQ(srv->counters().snapshot().calls, std::uint64_t{kClients} * kCalls);
    }
  }
}

}  // namespace
