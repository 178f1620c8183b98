// Out-of-order completion (note §1.6) and many channels on one server (the 64-vector question).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "ipc_fixtures.hpp"
#include "uipc/ipc/server.hpp"

using namespace uipc;
using namespace uipc::ipc;

namespace {
// Small channels, so that thousands fit one server.
ChannelOptions small_channel() {
  ChannelOptions o;
  o.capacity = 4;
  o.max_payload = 64;
  o.max_inflight = 4;
  return o;
}
}  // namespace

TEST(IpcOrder, RepliesCompleteOutOfOrderAndReachTheirCallers) {
  Runtime srt;
  // Request k is held (32 - k) ms: the last request sent is answered first.
  Server server(srt, [&](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    std::uint32_t k;
    std::memcpy(&k, req.data(), sizeof k);
    co_await srt.sleep_for(static_cast<std::int64_t>(32 - k) * 1'000'000);
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  std::thread t([&] { srt.block_on(server.serve()); });
  Runtime rt;
  auto client = std::move(server.connect(rt).value());
  std::vector<std::uint32_t> completion;
  int matched = 0;
  for (std::uint32_t k = 0; k < 32; ++k) {
    rt.spawn([](Client& c, std::uint32_t key, std::vector<std::uint32_t>& order, int& ok) -> Task<void> {
      std::uint32_t back = 0;
      auto r = co_await c.call(std::as_bytes(std::span(&key, 1)), std::as_writable_bytes(std::span(&back, 1)));
      if (r && back == key) ++ok;
      order.push_back(key);
    }(*client, k, completion, matched));
  }
  rt.run();
  EXPECT_EQ(matched, 32);
  ASSERT_EQ(completion.size(), 32u);
  EXPECT_GT(completion.front(), completion.back());  // replies came back in (roughly) reverse order
  server.stop();
  t.join();
}

TEST(IpcOrder, FourThousandNinetySixChannelsOnOneServer) {
  Runtime srt;
  Server server(srt, [](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  std::thread t([&] { srt.block_on(server.serve()); });
  Runtime rt;
  const ChannelOptions o = small_channel();
  std::vector<std::unique_ptr<Client>> clients;
  for (std::uint32_t i = 0; i < uipc::abi::kMaxSlots; ++i) {
    auto c = server.connect(rt, o);
    ASSERT_TRUE(c) << i << ": " << c.error().message();
    clients.push_back(std::move(c.value()));
  }
  // One more than the notification has slots: a clear error, nothing else disturbed.
  auto extra = server.connect(rt, o);
  ASSERT_FALSE(extra);
  EXPECT_EQ(extra.error(), std::errc::too_many_files_open);

  int good = 0;
  for (std::uint32_t i = 0; i < clients.size(); ++i) {
    rt.spawn([](Client& c, std::uint32_t key, int& ok) -> Task<void> {
      for (std::uint32_t j = 0; j < 3; ++j) {
        std::uint64_t v = (std::uint64_t{key} << 32) | j, back = 0;
        auto r = co_await c.call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
        if (r && back == v) ++ok;
      }
    }(*clients[i], i, good));
  }
  rt.run();
  EXPECT_EQ(good, static_cast<int>(3 * uipc::abi::kMaxSlots));
  EXPECT_EQ(server.channel_count(), uipc::abi::kMaxSlots);
  clients.clear();
  server.stop();
  t.join();
  EXPECT_EQ(server.channel_count(), 0u);
}

TEST(IpcOrder, ManyBusyChannelsAreEachServed) {
  // 256 channels, each with a call in flight all the time: four times the runtimes' polling
  // window (RuntimeOptions::max_polled, 64). The channels beyond the window are served by
  // interrupts; none may starve while the others keep both runtimes busy. (Before the window
  // kept them armed, a ring parked beyond it while its runtime was busy was neither polled nor
  // armed: its client's requests raised nothing, and a third of the channels made no call at
  // all while the rest made thousands.)
  constexpr unsigned kChannels = 256, kTotal = kChannels * 200;
  uipc::test::ServerThread st(uipc::test::echo());
  Runtime rt;
  std::vector<std::unique_ptr<Client>> clients;
  for (unsigned i = 0; i < kChannels; ++i) clients.push_back(std::move(st.server.connect(rt, small_channel()).value()));
  std::vector<unsigned> calls(kChannels, 0);
  unsigned total = 0, bad = 0;
  for (unsigned i = 0; i < kChannels; ++i) {
    rt.spawn([](Client& c, unsigned& mine, unsigned& all, unsigned& wrong) -> Task<void> {
      while (all < kTotal) {
        std::uint64_t v = all, back = ~v;
        auto r = co_await c.call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
        if (!r || back != v) ++wrong;
        ++mine;
        ++all;
      }
    }(*clients[i], calls[i], total, bad));
  }
  rt.run();
  EXPECT_EQ(bad, 0u);
  std::vector<unsigned> sorted = calls;
  std::sort(sorted.begin(), sorted.end());
  const unsigned median = sorted[kChannels / 2];
  EXPECT_GE(sorted.front(), std::max(1u, median / 8)) << "least-served channel made " << sorted.front()
                                                      << " calls, the median one " << median;
}

TEST(IpcOrder, ACallCompletesWhileAnotherCoroutineSpinsOnYield) {
  // A coroutine that waits by yielding keeps the runtime's ready queue from ever emptying. The
  // runtime must still send the call's request (its flush is deferred work) and take the reply
  // (the client's ring is polled, not armed, while the runtime is busy): it does both every
  // 1024 resumptions at the latest. Before, the calls stopped completing; the spinner gives up
  // after 10 million yields so that such a failure is reported, not hung.
  uipc::test::ServerThread st(uipc::test::echo());
  Runtime rt;
  auto client = std::move(st.server.connect(rt).value());
  bool done = false, answered = false;
  unsigned long spins = 0;
  rt.spawn([](Client& c, bool& d, bool& ok) -> Task<void> {
    ok = true;
    for (std::uint64_t v = 1; v <= 100; ++v) {  // the first may find the ring armed; the others not
      std::uint64_t back = 0;
      auto r = co_await c.call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
      ok = ok && r && back == v;
    }
    d = true;
  }(*client, done, answered));
  rt.spawn([](Runtime& r, bool& d, unsigned long& n) -> Task<void> {
    while (!d && n < 10'000'000) {
      ++n;
      co_await r.yield();
    }
  }(rt, done, spins));
  rt.run();  // ends once both have: the calls at the latest when the spinner gives up
  EXPECT_LT(spins, 10'000'000u) << "the calls were answered only once the spinner gave up";
  EXPECT_TRUE(done);
  EXPECT_TRUE(answered);
}
