// 10 million calls (scaled down under sanitizers; UIPC_STRESS_CALLS overrides) with 64 in flight
// over two channels, handlers that randomly yield or sleep so replies overtake each other, and
// a check that every reply answers its own request exactly once.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "stress/stress_common.hpp"
#include "uipc/ipc/server.hpp"

using namespace uipc;
using namespace uipc::ipc;

namespace {

using uipc::test::mix;

struct Msg {
  std::uint64_t worker, seq, check;
};

std::uint64_t proof(const Msg& m) { return mix(m.worker * 1'000'003 + m.seq); }

// Echoes a Msg with its proof filled in, after randomly yielding or sleeping so that replies
// overtake each other.
Handler shuffling_echo(Runtime& srt, std::uint64_t& rng) {
  return [&srt, &rng](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    rng = mix(rng + 1);
    if ((rng & 63) == 0) {
      for (unsigned i = 0; i < (rng >> 8) % 4; ++i) co_await srt.yield();
    } else if ((rng & 8191) == 1) {
      co_await srt.sleep_for(static_cast<std::int64_t>((rng >> 16) % 50'000));
    }
    Msg m;
    if (req.size() != sizeof m) co_return std::errc::invalid_argument;
    std::memcpy(&m, req.data(), sizeof m);
    m.check = proof(m);  // proves the server saw this very request
    std::memcpy(reply.data(), &m, sizeof m);
    co_return sizeof m;
  };
}

}  // namespace

TEST(IpcStress, TenMillionCallsEachAnsweredExactlyOnce) {
  const std::uint64_t total = uipc::test::stress_calls(10'000'000, 300'000);
  constexpr unsigned kChannels = 2, kPerChannel = 32;  // 64 in flight
  const std::uint64_t per_worker = total / (kChannels * kPerChannel);

  Runtime srt;
  std::uint64_t rng = 42;
  Server server(srt, shuffling_echo(srt, rng));
  std::thread st([&] { srt.block_on(server.serve()); });

  Runtime rt;
  ChannelOptions o;
  o.capacity = 16;  // smaller than the in-flight count per channel: ring-full waits happen
  o.max_payload = 64;
  std::vector<std::unique_ptr<Client>> clients;
  for (unsigned i = 0; i < kChannels; ++i) clients.push_back(std::move(server.connect(rt, o).value()));

  std::uint64_t good = 0, bad = 0;
  for (unsigned w = 0; w < kChannels * kPerChannel; ++w) {
    rt.spawn([](Client& c, std::uint64_t worker, std::uint64_t n, std::uint64_t& ok, std::uint64_t& ko) -> Task<void> {
      for (std::uint64_t s = 0; s < n; ++s) {
        Msg m{worker, s, 0}, back{};
        auto r = co_await c.call(std::as_bytes(std::span(&m, 1)), std::as_writable_bytes(std::span(&back, 1)));
        if (r && *r == sizeof back && back.worker == worker && back.seq == s && back.check == proof(m))
          ++ok;
        else
          ++ko;
      }
    }(*clients[w % kChannels], w, per_worker, good, bad));
  }
  rt.run();
  const std::uint64_t expected = per_worker * kChannels * kPerChannel;
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(good, expected);
  for (auto& c : clients) EXPECT_FALSE(c->closed()) << c->error().message();
  clients.clear();
  server.stop();
  st.join();
  const ServerStats s = server.stats();
  EXPECT_EQ(s.requests, expected);  // each request reached the handler once ...
  EXPECT_EQ(s.replies, expected);   // ... and was answered once
  EXPECT_EQ(s.protocol_errors, 0u);
  std::printf("stress: %llu calls; client ring-full waits %llu, notifications sent %llu, suppressed %llu, kernel entries %llu\n",
              static_cast<unsigned long long>(expected),
              static_cast<unsigned long long>(rt.counters().ring_full_waits.get()),
              static_cast<unsigned long long>(rt.counters().sent.get() + srt.counters().sent.get()),
              static_cast<unsigned long long>(rt.counters().suppressed.get() + srt.counters().suppressed.get()),
              static_cast<unsigned long long>(rt.counters().kernel_entries.get() + srt.counters().kernel_entries.get()));
}

// Client::call_many under the same shuffling server: batches of random sizes (some larger than
// the ring and the op table) from several coroutines, next to single calls on the same channel.
TEST(IpcStress, BatchedCallsEachAnsweredExactlyOnce) {
  const std::uint64_t total = uipc::test::stress_calls(1'000'000, 100'000);
  constexpr unsigned kLanes = 4;
  Runtime srt;
  std::uint64_t rng = 7;
  Server server(srt, shuffling_echo(srt, rng));
  std::thread st([&] { srt.block_on(server.serve()); });

  Runtime rt;
  ChannelOptions o;
  o.capacity = 32;
  o.max_inflight = 48;
  o.max_payload = 64;
  auto client = std::move(server.connect(rt, o).value());
  std::uint64_t good = 0, bad = 0, sent = 0;
  for (unsigned lane = 0; lane < kLanes; ++lane) {
    rt.spawn([](Client& c, std::uint64_t worker, std::uint64_t n, std::uint64_t& ok, std::uint64_t& ko,
                std::uint64_t& count) -> Task<void> {
      std::uint64_t r = mix(worker + 99), s = 0;
      std::vector<Msg> req, back;
      std::vector<BatchCall> calls;
      while (s < n) {
        r = mix(r);
        const std::size_t k = std::min<std::uint64_t>(n - s, 1 + r % 80);
        req.assign(k, Msg{});
        back.assign(k, Msg{});
        calls.assign(k, BatchCall{});
        for (std::size_t i = 0; i < k; ++i) {
          req[i] = Msg{worker, s + i, 0};
          calls[i].request = std::as_bytes(std::span(&req[i], 1));
          calls[i].reply = std::as_writable_bytes(std::span(&back[i], 1));
        }
        const std::size_t good_now = co_await c.call_many(calls);
        std::size_t checked = 0;
        for (std::size_t i = 0; i < k; ++i) {
          const auto& res = calls[i].result;
          if (res && *res == sizeof(Msg) && back[i].worker == worker && back[i].seq == s + i && back[i].check == proof(req[i]))
            ++checked;
        }
        ok += checked;
        ko += k - checked + (good_now != checked ? 1 : 0);
        s += k;
        count += k;
      }
    }(*client, lane, total / (2 * kLanes), good, bad, sent));
    rt.spawn([](Client& c, std::uint64_t worker, std::uint64_t n, std::uint64_t& ok, std::uint64_t& ko,
                std::uint64_t& count) -> Task<void> {
      for (std::uint64_t s = 0; s < n; ++s) {
        Msg m{worker, s, 0}, back{};
        auto r = co_await c.call(std::as_bytes(std::span(&m, 1)), std::as_writable_bytes(std::span(&back, 1)));
        if (r && *r == sizeof back && back.worker == worker && back.seq == s && back.check == proof(m)) ++ok;
        else ++ko;
        ++count;
      }
    }(*client, 1000 + lane, total / (2 * kLanes), good, bad, sent));
  }
  rt.run();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(good, sent);
  EXPECT_FALSE(client->closed()) << client->error().message();
  EXPECT_EQ(client->in_flight(), 0u);
  client.reset();
  server.stop();
  st.join();
  EXPECT_EQ(server.stats().requests, sent);
  EXPECT_EQ(server.stats().replies, sent);
  std::printf("batch stress: %llu calls\n", static_cast<unsigned long long>(sent));
}
