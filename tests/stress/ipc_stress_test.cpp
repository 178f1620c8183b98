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

}  // namespace

TEST(IpcStress, TenMillionCallsEachAnsweredExactlyOnce) {
  const std::uint64_t total = uipc::test::stress_calls(10'000'000, 300'000);
  constexpr unsigned kChannels = 2, kPerChannel = 32;  // 64 in flight
  const std::uint64_t per_worker = total / (kChannels * kPerChannel);

  Runtime srt;
  std::uint64_t rng = 42;
  Server server(srt, [&](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    rng = mix(rng + 1);
    if ((rng & 63) == 0) {
      for (unsigned i = 0; i < (rng >> 8) % 4; ++i) co_await srt.yield();
    } else if ((rng & 8191) == 1) {
      co_await srt.sleep_for(static_cast<std::int64_t>((rng >> 16) % 50'000));
    }
    Msg m;
    if (req.size() != sizeof m) co_return std::errc::invalid_argument;
    std::memcpy(&m, req.data(), sizeof m);
    m.check = mix(m.worker * 1'000'003 + m.seq);  // proves the server saw this very request
    std::memcpy(reply.data(), &m, sizeof m);
    co_return sizeof m;
  });
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
        if (r && *r == sizeof back && back.worker == worker && back.seq == s &&
            back.check == mix(worker * 1'000'003 + s))
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
