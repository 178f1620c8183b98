#include <gtest/gtest.h>

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
