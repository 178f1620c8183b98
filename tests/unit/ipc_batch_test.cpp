// Client::call_many: a batch sent from one coroutine that is resumed once for all of it.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "uipc/ipc/server.hpp"
#include "unit/ipc_fixtures.hpp"

using namespace uipc;
using namespace uipc::ipc;
using uipc::test::bytes;
using uipc::test::echo;
using uipc::test::ServerThread;

namespace {

// `n` calls whose requests are the 8-byte numbers base, base+1, ...; replies go to `back`.
struct Batch {
  std::vector<std::uint64_t> req, back;
  std::vector<BatchCall> calls;
  Batch(std::size_t n, std::uint64_t base) : req(n), back(n, 0), calls(n) {
    for (std::size_t i = 0; i < n; ++i) {
      req[i] = base + i;
      calls[i].request = std::as_bytes(std::span(&req[i], 1));
      calls[i].reply = std::as_writable_bytes(std::span(&back[i], 1));
    }
  }
  // Every call answered by its own request's echo.
  std::size_t echoed() const {
    std::size_t ok = 0;
    for (std::size_t i = 0; i < calls.size(); ++i)
      if (calls[i].result && calls[i].result.value() == sizeof(std::uint64_t) && back[i] == req[i]) ++ok;
    return ok;
  }
};

ChannelOptions sized(std::uint32_t capacity, std::uint32_t max_inflight) {
  ChannelOptions o;
  o.capacity = capacity;
  o.max_inflight = max_inflight;
  return o;
}

}  // namespace

TEST(IpcBatch, EveryCallGetsItsOwnReplyAndTheCallerResumesOnce) {
  ServerThread st(echo());
  Runtime rt;
  auto client = std::move(st.server.connect(rt, sized(256, 256)).value());
  for (int round = 0; round < 20; ++round) {
    Batch b(200, static_cast<std::uint64_t>(round) << 32);
    const std::uint64_t switches0 = rt.counters().switches.get();
    const std::size_t ok = rt.block_on(client->call_many(b.calls));
    // block_on's task starts, then is resumed once by the batch's last reply: two switches,
    // not one per reply.
    EXPECT_EQ(rt.counters().switches.get() - switches0, 2u);
    ASSERT_EQ(ok, b.calls.size());
    ASSERT_EQ(b.echoed(), b.calls.size());
  }
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(IpcBatch, ABatchLargerThanTheRingAndTheOpTableWaitsForRoom) {
  ServerThread st(echo());
  Runtime rt;
  auto client = std::move(st.server.connect(rt, sized(8, 16)).value());
  Batch b(1000, 1u << 20);
  EXPECT_EQ(rt.block_on(client->call_many(b.calls)), b.calls.size());
  EXPECT_EQ(b.echoed(), b.calls.size());
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(IpcBatch, BatchesAndSingleCallsShareAChannel) {
  ServerThread st(echo());
  Runtime rt;
  auto client = std::move(st.server.connect(rt, sized(4, 8)).value());
  int singles = 0;
  std::size_t batched = 0;
  for (int lane = 0; lane < 4; ++lane) {
    rt.spawn([](Client& c, int id, std::size_t& good) -> Task<void> {
      for (int round = 0; round < 50; ++round) {
        Batch b(7, static_cast<std::uint64_t>(id) << 40 | static_cast<std::uint64_t>(round) << 8);
        const std::size_t n = co_await c.call_many(b.calls);
        if (n == b.calls.size()) good += b.echoed();
      }
    }(*client, lane, batched));
    rt.spawn([](Client& c, int id, int& good) -> Task<void> {
      for (int i = 0; i < 100; ++i) {
        std::uint64_t v = 0xabcull << 48 | static_cast<std::uint64_t>(id) << 16 | static_cast<std::uint64_t>(i), back = 0;
        auto r = co_await c.call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
        if (r && back == v) ++good;
      }
    }(*client, lane, singles));
  }
  rt.run();
  EXPECT_EQ(batched, 4u * 50u * 7u);
  EXPECT_EQ(singles, 4 * 100);
}

TEST(IpcBatch, AnOversizedRequestFailsAloneAndAnEmptyBatchReturnsAtOnce) {
  ServerThread st(echo());
  Runtime rt;
  ChannelOptions o;
  o.max_payload = 64;
  auto client = std::move(st.server.connect(rt, o).value());
  Batch b(5, 100);
  std::vector<std::byte> big(65);
  b.calls[2].request = big;
  EXPECT_EQ(rt.block_on(client->call_many(b.calls)), 4u);
  ASSERT_FALSE(b.calls[2].result);
  EXPECT_EQ(b.calls[2].result.error(), std::errc::message_size);
  EXPECT_EQ(b.echoed(), 4u);
  EXPECT_EQ(rt.block_on(client->call_many({})), 0u);
  EXPECT_FALSE(client->closed());
}

TEST(IpcBatch, HandlerErrorsAndShortReplyBuffersReachTheirOwnCallOnly) {
  ServerThread st([](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    std::uint64_t v;
    std::memcpy(&v, req.data(), sizeof v);
    if (v % 3 == 0) co_return std::errc::permission_denied;
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  Runtime rt;
  auto client = std::move(st.server.connect(rt).value());
  Batch b(30, 0);
  std::uint32_t tiny = 0;
  b.calls[1].reply = std::as_writable_bytes(std::span(&tiny, 1));  // 4 bytes for an 8-byte reply
  const std::size_t ok = rt.block_on(client->call_many(b.calls));
  std::size_t denied = 0;
  for (std::size_t i = 0; i < b.calls.size(); ++i) {
    const auto& r = b.calls[i].result;
    if (i % 3 == 0) {
      ASSERT_FALSE(r) << i;
      EXPECT_EQ(r.error(), std::errc::permission_denied);
      ++denied;
    } else if (i == 1) {
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error(), std::errc::message_size);
    } else {
      ASSERT_TRUE(r) << i << ": " << r.error().message();
      EXPECT_EQ(b.back[i], b.req[i]);
    }
  }
  EXPECT_EQ(ok, b.calls.size() - denied - 1);
}

TEST(IpcBatch, TimeoutAbandonsOnlyTheUnansweredCallsAndLateRepliesAreAbsorbed) {
  Runtime srt;
  Server server(srt, [&](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    std::uint64_t v;
    std::memcpy(&v, req.data(), sizeof v);
    if (v % 2 == 1) co_await srt.sleep_for(40'000'000);  // odd requests answer late
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  std::thread t([&] { srt.block_on(server.serve()); });
  Runtime rt;
  auto client = std::move(server.connect(rt).value());
  Batch b(10, 0);
  EXPECT_EQ(rt.block_on(client->call_many(b.calls, 5'000'000)), 5u);
  for (std::size_t i = 0; i < b.calls.size(); ++i) {
    if (i % 2 == 1) {
      ASSERT_FALSE(b.calls[i].result) << i;
      EXPECT_EQ(b.calls[i].result.error(), std::errc::timed_out);
    } else {
      ASSERT_TRUE(b.calls[i].result) << i;
      EXPECT_EQ(b.back[i], b.req[i]);
    }
  }
  // The late replies arrive while later batches run: none is taken for theirs.
  for (int round = 0; round < 30; ++round) {
    Batch later(4, 1000 + 10 * static_cast<std::uint64_t>(round));
    for (auto& r : later.req) r &= ~std::uint64_t{1};  // even: answered at once
    const std::size_t ok = rt.block_on([&]() -> Task<std::size_t> {
      co_await rt.sleep_for(2'000'000);
      co_return co_await client->call_many(later.calls, 1'000'000'000);
    }());
    ASSERT_EQ(ok, 4u);
    ASSERT_EQ(later.echoed(), 4u);
  }
  EXPECT_FALSE(client->closed());
  EXPECT_EQ(client->in_flight(), 0u);  // every abandoned op was given back by its late reply
  server.stop();
  t.join();
}

TEST(IpcBatch, AServerThatStopsCompletesEveryCallOnceWithAnError) {
  Runtime srt;
  Server server(srt, [&](std::span<const std::byte>, std::span<std::byte>) -> Task<Result<std::size_t>> {
    co_await srt.sleep_for(20'000'000);  // still working when the server stops
    co_return 0;
  });
  std::thread t([&] { srt.block_on(server.serve()); });
  Runtime rt;
  ChannelOptions o;
  o.max_inflight = 4;  // most of the batch is still unsent when the channel closes
  auto client = std::move(server.connect(rt, o).value());
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    server.stop();
  });
  Batch b(40, 0);
  EXPECT_EQ(rt.block_on(client->call_many(b.calls)), 0u);
  stopper.join();
  t.join();
  for (const auto& c : b.calls) {
    ASSERT_FALSE(c.result);
    EXPECT_EQ(c.result.error(), std::errc::connection_reset);
  }
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(IpcBatch, DestroyingTheClientCompletesPendingCallsAndBatchesWhichResumeSafely) {
  Runtime srt;
  Server server(srt, [&](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    co_await srt.sleep_for(50'000'000);  // nothing is answered before the client goes away
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  std::thread t([&] { srt.block_on(server.serve()); });
  Runtime rt;
  auto client = std::move(server.connect(rt).value());
  Batch b(6, 0);
  std::size_t batch_ok = 99;
  std::optional<Result<std::size_t>> single, timed;
  std::byte out[16];
  rt.spawn([](Client& c, Batch& bb, std::size_t& ok) -> Task<void> { ok = co_await c.call_many(bb.calls, 1'000'000'000); }(
      *client, b, batch_ok));
  std::byte out1[16];
  rt.spawn([](Client& c, std::span<std::byte> o, std::optional<Result<std::size_t>>& r) -> Task<void> {
    r = co_await c.call(bytes("one"), o);
  }(*client, out1, single));
  rt.spawn([](Client& c, std::span<std::byte> o, std::optional<Result<std::size_t>>& r) -> Task<void> {
    r = co_await c.call(bytes("two"), o, 1'000'000'000);
  }(*client, out, timed));
  rt.spawn([](Runtime& r, std::unique_ptr<Client>& c) -> Task<void> {
    co_await r.sleep_for(2'000'000);
    c.reset();  // the callers above are still suspended: they resume after the Client is gone
  }(rt, client));
  rt.run();
  EXPECT_EQ(batch_ok, 0u);
  for (const auto& c : b.calls) {
    ASSERT_FALSE(c.result);
    EXPECT_EQ(c.result.error(), std::errc::operation_canceled);
  }
  ASSERT_TRUE(single && !*single);
  EXPECT_EQ(single->error(), std::errc::operation_canceled);
  ASSERT_TRUE(timed && !*timed);
  EXPECT_EQ(timed->error(), std::errc::operation_canceled);
  server.stop();
  t.join();
}

TEST(IpcBatch, DestroyingTheClientCompletesCallersStillWaitingForRoom) {
  // Two ops: the batch sends two calls and waits for room for the rest, and a single call
  // waits for an op too, when the Client is destroyed. Every caller resumes after it is gone.
  Runtime srt;
  Server server(srt, [&](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    co_await srt.sleep_for(50'000'000);
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  std::thread t([&] { srt.block_on(server.serve()); });
  Runtime rt;
  auto client = std::move(server.connect(rt, sized(4, 2)).value());
  Batch b(5, 0);
  std::size_t batch_ok = 99;
  std::optional<Result<std::size_t>> single;
  std::byte out[16];
  rt.spawn([](Client& c, Batch& bb, std::size_t& ok) -> Task<void> { ok = co_await c.call_many(bb.calls); }(*client, b, batch_ok));
  rt.spawn([](Client& c, std::span<std::byte> o, std::optional<Result<std::size_t>>& r) -> Task<void> {
    r = co_await c.call(bytes("one"), o);
  }(*client, out, single));
  rt.spawn([](Runtime& r, std::unique_ptr<Client>& c) -> Task<void> {
    co_await r.sleep_for(2'000'000);
    c.reset();
  }(rt, client));
  rt.run();
  EXPECT_EQ(batch_ok, 0u);
  for (const auto& c : b.calls) {
    ASSERT_FALSE(c.result);
    EXPECT_EQ(c.result.error(), std::errc::operation_canceled);
  }
  ASSERT_TRUE(single && !*single);
  EXPECT_EQ(single->error(), std::errc::operation_canceled);
  server.stop();
  t.join();
}
