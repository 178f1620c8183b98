#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "uipc/ipc/server.hpp"
#include "unit/ipc_fixtures.hpp"

using namespace uipc;
using namespace uipc::ipc;

using namespace uipc::test;

TEST(Ipc, EchoRoundTrip) {
  ServerThread st(echo());
  Runtime rt;
  auto c = st.server.connect(rt);
  ASSERT_TRUE(c) << c.error().message();
  auto client = std::move(c.value());
  auto r = rt.block_on([&]() -> Task<Result<std::vector<std::byte>>> { co_return co_await client->call(bytes("hello")); }());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r->data()), r->size()), "hello");
}

TEST(Ipc, ManyInFlightEachGetsOwnReply) {
  ServerThread st(echo());
  Runtime rt;
  ChannelOptions o;
  o.capacity = 16;  // fewer ring entries than calls: exercises ring-full waits
  auto client = std::move(st.server.connect(rt, o).value());
  constexpr int kCalls = 200;
  int ok = 0;
  auto one = [&](int i) -> Task<void> {
    std::uint64_t v = static_cast<std::uint64_t>(i) * 7919u, back = 0;
    auto r = co_await client->call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
    if (r && r.value() == sizeof v && back == v) ++ok;
  };
  for (int i = 0; i < kCalls; ++i) rt.spawn(one(i));
  rt.run();
  EXPECT_EQ(ok, kCalls);
}

TEST(Ipc, SpaceWaitersNeverLoseAWakeup) {
  // A 2-entry ring and 64 callers: callers queue for space all the time. A caller that arms the
  // shared space flag and one that arms and disarms it right after must not strand the first.
  ServerThread st(echo());
  Runtime rt;
  ChannelOptions o;
  o.capacity = 2;
  auto client = std::move(st.server.connect(rt, o).value());
  int ok = 0;
  for (int w = 0; w < 64; ++w) {
    rt.spawn([](Client& c, int id, int& good) -> Task<void> {
      for (int i = 0; i < 300; ++i) {
        std::uint64_t v = static_cast<std::uint64_t>(id) << 32 | static_cast<std::uint64_t>(i), back = 0;
        auto r = co_await c.call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
        if (r && back == v) ++good;
      }
    }(*client, w, ok));
  }
  rt.run();
  EXPECT_EQ(ok, 64 * 300);
}

TEST(Ipc, InlineHandlerRepliesInPlaceAndFallsBackWhenTheRingIsFull) {
  Runtime srt;
  Server server(srt, InlineHandler([](std::span<const std::byte> req, std::span<std::byte> reply) -> Result<std::size_t> {
    if (req.size() == 4 && std::memcmp(req.data(), "fail", 4) == 0) return std::errc::permission_denied;
    std::memcpy(reply.data(), req.data(), req.size());
    return req.size();
  }));
  std::thread t([&] { srt.block_on(server.serve()); });
  Runtime rt;
  ChannelOptions o;
  o.capacity = 2;  // 64 callers on a 2-entry ring: replies often find the response ring full
  auto client = std::move(server.connect(rt, o).value());
  int ok = 0;
  for (int w = 0; w < 64; ++w) {
    rt.spawn([](Client& c, int id, int& good) -> Task<void> {
      for (int i = 0; i < 200; ++i) {
        std::uint64_t v = static_cast<std::uint64_t>(id) << 32 | static_cast<std::uint64_t>(i), back = 0;
        auto r = co_await c.call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
        if (r && back == v) ++good;
      }
    }(*client, w, ok));
  }
  rt.run();
  EXPECT_EQ(ok, 64 * 200);
  auto f = rt.block_on(client->call(bytes("fail")));
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error(), std::errc::permission_denied);
  client.reset();
  server.stop();
  t.join();
  EXPECT_EQ(server.stats().requests, server.stats().replies);
}

TEST(Ipc, ACallSendsOnlyWhenAwaited) {
  // Client::call returns an awaitable: making one writes nothing; awaiting it sends.
  std::atomic<int> served{0};
  ServerThread st([&served](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    served.fetch_add(1);
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  Runtime rt;
  auto client = std::move(st.server.connect(rt).value());
  std::uint64_t v = 42, back = 0;
  {
    auto never = client->call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
  }
  EXPECT_EQ(client->in_flight(), 0u);
  auto later = client->call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
  EXPECT_EQ(client->in_flight(), 0u);
  auto r = rt.block_on(std::move(later));  // block_on takes a Call as it is
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r.value(), sizeof v);
  EXPECT_EQ(back, 42u);
  EXPECT_EQ(served.load(), 1);  // the Call never awaited sent nothing
}

TEST(Ipc, ACallConvertsToATaskAndGivesTheSameResults) {
  ServerThread st(echo());
  Runtime rt;
  ChannelOptions o;
  o.max_inflight = 1;  // the second call waits for an op: the Task takes call_slow's way
  auto client = std::move(st.server.connect(rt, o).value());
  std::uint64_t a = 1, b = 2, ra = 0, rb = 0;
  Task<Result<std::size_t>> ta = client->call(std::as_bytes(std::span(&a, 1)), std::as_writable_bytes(std::span(&ra, 1)));
  Task<Result<std::size_t>> tb = client->call(std::as_bytes(std::span(&b, 1)), std::as_writable_bytes(std::span(&rb, 1)));
  int done = 0;
  auto run = [&done](Task<Result<std::size_t>> t) -> Task<void> {
    auto r = co_await std::move(t);
    if (r && r.value() == sizeof(std::uint64_t)) ++done;
  };
  rt.spawn(run(std::move(ta)));
  rt.spawn(run(std::move(tb)));
  rt.run();
  EXPECT_EQ(done, 2);
  EXPECT_EQ(ra, 1u);
  EXPECT_EQ(rb, 2u);
  // An oversize request completes at once with message_size, without suspending.
  std::vector<std::byte> big(client->layout().max_payload + 1);
  auto e = rt.block_on(client->call(big, std::as_writable_bytes(std::span(&ra, 1))));
  EXPECT_EQ(e.error(), std::errc::message_size);
}
