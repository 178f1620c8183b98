// Bad input on a channel: each case gets a clear error on that channel alone.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "uipc/ipc/server.hpp"
#include "unit/ipc_fixtures.hpp"

using namespace uipc;
using namespace uipc::ipc;
using uipc::test::bytes;
using uipc::test::ServerThread;

namespace {

Handler echo_or_fail() {
  return [](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    if (req.size() == 4 && std::memcmp(req.data(), "fail", 4) == 0) co_return std::errc::permission_denied;
    if (req.size() == 3 && std::memcmp(req.data(), "big", 3) == 0) co_return reply.size() + 1;  // handler bug
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  };
}


// A channel whose client side is driven by hand, like a hostile process would.
struct RawChannel {
  std::shared_ptr<Region> region;
  ChannelLayout layout;
  RingProducer req;
  RingConsumer resp;
  RawChannel(Server& s, Runtime& client_rt, ChannelOptions o = {}) {
    auto ss = s.reserve_slot();
    auto cs = client_rt.allocate_slot();
    region = create_channel_region(o, *ss, *cs).value();
    layout = validate_channel(*region).value();
    req = RingProducer(request_ring(*region, layout));
    resp = RingConsumer(response_ring(*region, layout));
    ChannelEnd se{region, layout, client_rt.notification_ptr(),
                  client_rt.notification().mint_remote(*cs, &header(*region)->raise_client), *ss, o};
    EXPECT_TRUE(s.adopt(std::move(se)));
    to_server = s.runtime().notification().mint_remote(*ss, &header(*region)->raise_server);
  }
  SenderEntry to_server;
  Counters c;
  void push(std::uint64_t id, std::uint32_t len, bool raise = true) {
    uipc::abi::EntryHeader* e = req.claim();
    ASSERT_NE(e, nullptr);
    e->id = id;
    e->len = len;
    e->status = 0;
    req.publish();
    if (raise) to_server.send(c);
  }
  bool server_closed() const { return header(*region)->closed.load() & uipc::abi::kServerClosed; }
};

template <class Pred>
bool eventually(Pred p) {
  for (int i = 0; i < 2000; ++i) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace

TEST(IpcErrors, OversizeRequestIsRefusedAndChannelStaysUp) {
  ServerThread st(echo_or_fail());
  Runtime rt;
  ChannelOptions o;
  o.max_payload = 64;
  auto client = std::move(st.server.connect(rt, o).value());
  std::vector<std::byte> big(65);
  auto r = rt.block_on(client->call(big));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::message_size);
  auto ok = rt.block_on(client->call(bytes("after")));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->size(), 5u);
}

TEST(IpcErrors, HandlerErrorsReachTheCallerOnly) {
  ServerThread st(echo_or_fail());
  Runtime rt;
  auto client = std::move(st.server.connect(rt).value());
  auto r = rt.block_on(client->call(bytes("fail")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::permission_denied);
  auto big = rt.block_on(client->call(bytes("big")));  // handler claims more than max_payload
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error(), std::errc::message_size);
  EXPECT_TRUE(rt.block_on(client->call(bytes("fine"))));
}

TEST(IpcErrors, ReplyLargerThanCallersBufferIsMessageSize) {
  ServerThread st(echo_or_fail());
  Runtime rt;
  auto client = std::move(st.server.connect(rt).value());
  std::byte small[2];
  auto r = rt.block_on(client->call(bytes("four"), small));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::message_size);
}

TEST(IpcErrors, CallOnClosedChannel) {
  ServerThread st(echo_or_fail());
  Runtime rt;
  auto client = std::move(st.server.connect(rt).value());
  client->close();
  auto r = rt.block_on(client->call(bytes("x")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::not_connected);
  EXPECT_TRUE(eventually([&] { return st.server.channel_count() == 0; }));
}

TEST(IpcErrors, ServerStopFailsPendingAndLaterCalls) {
  Runtime srt;
  std::atomic<bool> started{false};
  Server* srv = nullptr;
  Server server(srt, [&](std::span<const std::byte>, std::span<std::byte>) -> Task<Result<std::size_t>> {
    started.store(true);
    // Still working when the server stops: done only once the stop has closed the channel
    // (stats are read on the server's thread, which runs this handler).
    while (srv->stats().channels_closed == 0) co_await srt.sleep_for(1'000'000);
    co_return 0;
  });
  srv = &server;
  std::thread t([&] { srt.block_on(server.serve()); });
  Runtime rt;
  auto client = std::move(server.connect(rt).value());
  std::thread stopper([&] {
    while (!started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server.stop();
  });
  auto r = rt.block_on(client->call(bytes("slow")));
  stopper.join();
  t.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::connection_reset);
  auto later = rt.block_on(client->call(bytes("later")));
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error(), std::errc::connection_reset);
}

TEST(IpcErrors, TimeoutCompletesOnceAndLateReplyIsAbsorbed) {
  Runtime srt;
  Server server(srt, [&](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    if (req.size() == 4) co_await srt.sleep_for(30'000'000);
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  std::thread t([&] { srt.block_on(server.serve()); });
  Runtime rt;
  auto client = std::move(server.connect(rt).value());
  std::byte out[16];
  auto r = rt.block_on(client->call(bytes("slow"), out, 2'000'000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::timed_out);
  // The late reply arrives while later calls run; it must not be mistaken for theirs.
  for (int i = 0; i < 50; ++i) {
    auto ok = rt.block_on([&]() -> Task<Result<std::size_t>> {
      co_await rt.sleep_for(1'000'000);
      co_return co_await client->call(bytes("ok!"), out);
    }());
    ASSERT_TRUE(ok) << ok.error().message();
    ASSERT_EQ(*ok, 3u);
  }
  EXPECT_FALSE(client->closed());
  EXPECT_EQ(client->in_flight(), 0u);  // the abandoned op was given back when its reply came
  server.stop();
  t.join();
}

TEST(IpcErrors, MalformedEntryClosesThatChannelAlone) {
  ServerThread st(echo_or_fail());
  Runtime rt;
  auto good = std::move(st.server.connect(rt).value());
  RawChannel bad(st.server, rt);
  bad.push(1, bad.layout.max_payload + 1);  // length over the limit
  EXPECT_TRUE(eventually([&] { return bad.server_closed(); }));
  auto r = rt.block_on(good->call(bytes("unaffected")));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size(), 10u);
}

TEST(IpcErrors, CorruptIndexClosesThatChannelAlone) {
  ServerThread st(echo_or_fail());
  Runtime rt;
  auto good = std::move(st.server.connect(rt).value());
  ChannelOptions o;
  o.capacity = 2;
  RawChannel bad(st.server, rt, o);
  // The hostile client never reads replies and moves the response ring's head far ahead: the
  // server notices when it next needs space, and closes that channel.
  response_ring(*bad.region, bad.layout).indices->cons.head.store(123456);
  for (std::uint64_t i = 0; i < 2; ++i) bad.push(i, 1);
  EXPECT_TRUE(eventually([&] { return bad.req.claim() != nullptr; }));
  bad.push(2, 1);
  EXPECT_TRUE(eventually([&] { return bad.server_closed(); }));
  EXPECT_TRUE(rt.block_on(good->call(bytes("still fine"))));
}

TEST(IpcErrors, ReplyWithUnknownIdIsBadMessage) {
  // A hostile server: answers with an id that no call carries.
  Runtime srt, rt;
  auto ss = srt.allocate_slot();
  auto cs = rt.allocate_slot();
  ChannelOptions o;
  auto region = create_channel_region(o, *ss, *cs).value();
  auto layout = validate_channel(*region).value();
  ChannelEnd ce{region, layout, srt.notification_ptr(), srt.notification().mint_remote(*ss, &header(*region)->raise_server),
                *cs, o};
  Client client(rt, ce);
  RingProducer resp(response_ring(*region, layout));
  RingConsumer req(request_ring(*region, layout));
  auto r = rt.block_on([&]() -> Task<Result<std::vector<std::byte>>> {
    // After the request is out, forge a reply with a wrong generation.
    rt.spawn([](RingProducer& p, RingConsumer& q, SenderEntry to) -> Task<void> {
      uipc::abi::EntryHeader h;
      while (q.peek(&h) == nullptr) co_await Runtime::current()->yield();
      uipc::abi::EntryHeader* e = p.claim();
      e->id = h.id ^ (std::uint64_t{1} << 40);
      e->len = 0;
      e->status = 0;
      p.publish();
      Counters c;
      to.send(c);
    }(resp, req, rt.notification().mint_remote(*cs, &header(*region)->raise_client)));
    co_return co_await client.call(bytes("hi"));
  }());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::bad_message);
  EXPECT_TRUE(client.closed());
}

TEST(IpcErrors, ClearedHintsDoNotLoseARaiseEvenWithoutTheBackstop) {
  // Any client can write the server runtime's hint words (not its control line, not another
  // channel's raise flag). A raise whose hints a hostile peer clears at once is still found:
  // the server looks at every raise flag before it sleeps. No backstop here to hide a loss.
  RuntimeOptions o;
  o.spin_ns = 0;
  o.backstop_ns = 0;
  o.max_polled = 0;  // interrupt-driven only, as past the polling window: no ring polling to hide a loss
  ServerThread st(echo_or_fail(), o);
  Runtime rt;
  RawChannel raw(st.server, rt);
  uipc::abi::NotificationHints* hints = st.rt.notification().hints();
  for (std::uint64_t id = 1; id <= 50; ++id) {
    raw.push(id, 0);
    hints->pending.store(0);
    for (auto& d : hints->doorbell) d.store(0);
    uipc::abi::EntryHeader h;
    ASSERT_TRUE(eventually([&] { return raw.resp.peek(&h) != nullptr; })) << "request " << id << " lost";
    EXPECT_EQ(h.id, id);
    raw.resp.pop();
    raw.resp.release();
  }
  EXPECT_EQ(st.rt.counters().backstops.get(), 0u);
}

TEST(IpcErrors, AStolenRaiseDelaysAChannelOnlyUntilTheBackstop) {
  // A request published with no raise at all (as if a peer had undone a wake-up racing with the
  // server's falling asleep) while the server sleeps: the backstop (5 ms) must still find it.
  RuntimeOptions o;
  o.spin_ns = 0;
  o.backstop_ns = 5'000'000;
  ServerThread st(echo_or_fail(), o);
  Runtime rt;
  RawChannel raw(st.server, rt);
  while (st.rt.notification().word()->state.load() != static_cast<std::uint32_t>(uipc::abi::ReceiverState::sleeping))
    std::this_thread::yield();
  raw.push(7, 0, /*raise=*/false);
  uipc::abi::EntryHeader h;
  EXPECT_TRUE(eventually([&] { return raw.resp.peek(&h) != nullptr; }));
  EXPECT_EQ(h.id, 7u);
  EXPECT_GE(st.rt.counters().backstops.get(), 1u);
}
