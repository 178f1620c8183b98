// Stress tests of the synchronous Call / ReplyRecv baseline: many clients, every reply checked,
// spin windows 0 (pure futex hand-off: every wait races with a wake) and the default, a doorbell
// of one word and of many, and close() in the middle of the traffic. A lost wake-up shows up as a
// hang (ctest's timeout), a lost or crossed reply as a failed check.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "uipc/ipc/sync_call.hpp"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define UIPC_STRESS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define UIPC_STRESS_SANITIZED 1
#endif
#endif
#ifndef UIPC_STRESS_SANITIZED
#define UIPC_STRESS_SANITIZED 0
#endif

namespace {

using uipc::ipc::SyncEndpoint;
using uipc::ipc::SyncOptions;
using uipc::ipc::SyncServer;

constexpr int kScale = UIPC_STRESS_SANITIZED ? 10 : 1;  // sanitizers: a tenth of the traffic

std::uint64_t mix(std::uint64_t x) {  // splitmix64: deterministic payload bytes
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The reply is the request with every byte XORed with the low byte of the badge, and the badge
// appended: it proves the server saw this request from this slot.
void xor_server(SyncServer& srv, std::vector<std::byte>& out) {
  auto r = srv.recv();
  while (r) {
    const auto key = static_cast<std::byte>(r->badge & 0xff);
    out.resize(r->data.size() + 4);
    for (std::size_t i = 0; i < r->data.size(); ++i) out[i] = r->data[i] ^ key;
    std::memcpy(out.data() + r->data.size(), &r->badge, 4);
    r = srv.reply_recv(out);
  }
}

struct Config {
  std::uint32_t slots;
  std::uint32_t max_payload;
  unsigned clients;
  int calls_per_client;
  std::uint64_t client_spin_ns;
  std::uint64_t server_spin_ns;
};

void run_traffic(const Config& cfg) {
  auto ep = SyncEndpoint::create(cfg.slots, cfg.max_payload);
  ASSERT_TRUE(ep) << ep.error().message();
  auto srv = ep->server(SyncOptions{cfg.server_spin_ns});
  ASSERT_TRUE(srv);
  std::vector<std::byte> sbuf;
  std::thread st([&] { xor_server(*srv, sbuf); });
  std::atomic<std::uint64_t> bad{0}, done{0};  // relaxed throughout: read after join()
  std::vector<std::thread> ts;
  for (unsigned i = 0; i < cfg.clients; ++i) {
    const std::uint32_t slot = static_cast<std::uint32_t>((i * 613u + 5u) % cfg.slots);  // spread over words
    ts.emplace_back([&, slot] {
      auto cl = ep->client(slot, SyncOptions{cfg.client_spin_ns});
      if (!cl) {
        bad.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      const std::size_t max_req = cfg.max_payload - 4;
      std::vector<std::byte> req(max_req), rep(cfg.max_payload);
      for (int k = 0; k < cfg.calls_per_client; ++k) {
        const std::uint64_t h = mix((std::uint64_t{slot} << 32) | static_cast<std::uint32_t>(k));
        const std::size_t len = h % (max_req + 1);
        for (std::size_t j = 0; j < len; ++j) req[j] = static_cast<std::byte>(mix(h + j) & 0xff);
        auto n = cl->call(std::span(req).first(len), rep);
        bool ok = n && *n == len + 4;
        const auto key = static_cast<std::byte>(slot & 0xff);
        for (std::size_t j = 0; ok && j < len; ++j) ok = rep[j] == (req[j] ^ key);
        std::uint32_t badge = ~0u;
        if (ok) std::memcpy(&badge, rep.data() + len, 4);
        if (!ok || badge != slot) bad.fetch_add(1, std::memory_order_relaxed);
        done.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : ts) t.join();
  ep->close();
  st.join();
  EXPECT_EQ(bad.load(std::memory_order_relaxed), 0u);
  EXPECT_EQ(done.load(std::memory_order_relaxed), std::uint64_t{cfg.clients} * static_cast<std::uint64_t>(cfg.calls_per_client));
  EXPECT_EQ(srv->counters().snapshot().calls, done.load(std::memory_order_relaxed));
}

constexpr std::uint64_t kDef = uipc::ipc::kDefaultSyncSpinNs;

TEST(SyncCallStress, EightClientsDefaultSpin) { run_traffic({8, 256, 8, 20000 / kScale, kDef, kDef}); }
TEST(SyncCallStress, EightClientsPureFutex) { run_traffic({8, 256, 8, 20000 / kScale, 0, 0}); }
TEST(SyncCallStress, MixedWindows) {
  run_traffic({8, 128, 8, 3000 / kScale, 0, kDef});
  run_traffic({8, 128, 8, 3000 / kScale, kDef, 0});
}
TEST(SyncCallStress, ManyWordsDoorbell) {  // 4096 slots: summary word + 64 pending words
  run_traffic({4096, 64, 8, 3000 / kScale, kDef, kDef});
  run_traffic({4096, 64, 8, 3000 / kScale, 0, 0});
}
TEST(SyncCallStress, ShortSpinWindow) {  // the window ends while the peer is mid-way: both paths mix
  run_traffic({16, 64, 8, 5000 / kScale, 2'000, 2'000});
}

// close() while clients hammer the server: every call either returns its own correct reply or
// connection_aborted; once a client saw an abort it sees only aborts; nobody hangs.
TEST(SyncCallStress, CloseUnderLoad) {
  for (std::uint64_t spin : {std::uint64_t{0}, kDef}) {
    for (int round = 0; round < 5; ++round) {
      auto ep = SyncEndpoint::create(8, 64);
      ASSERT_TRUE(ep);
      auto srv = ep->server(SyncOptions{spin});
      ASSERT_TRUE(srv);
      std::vector<std::byte> sbuf;
      std::thread st([&] { xor_server(*srv, sbuf); });
      std::atomic<std::uint64_t> bad{0}, ok_calls{0};  // relaxed throughout: read after join()
      std::vector<std::thread> ts;
      for (std::uint32_t slot = 0; slot < 8; ++slot) {
        ts.emplace_back([&, slot] {
          auto cl = ep->client(slot, SyncOptions{spin});
          if (!cl) return;  // closed before we bound: fine
          std::byte req[8], rep[64];
          int aborts = 0;
          for (std::uint64_t k = 0; aborts < 100; ++k) {  // after the first abort, 99 more calls
            std::memcpy(req, &k, 8);
            auto n = cl->call(req, rep);
            if (!n) {
              if (n.error() != std::errc::connection_aborted) bad.fetch_add(1, std::memory_order_relaxed);
              ++aborts;
              continue;  // keep calling: every later call must fail at once
            }
            if (aborts != 0) bad.fetch_add(1, std::memory_order_relaxed);  // a success after an abort
            std::uint64_t back;
            std::memcpy(&back, rep, 8);
            const std::uint64_t key = 0x0101010101010101ull * (slot & 0xff);
            if (*n != 12 || (back ^ key) != k) bad.fetch_add(1, std::memory_order_relaxed);
            ok_calls.fetch_add(1, std::memory_order_relaxed);
          }
        });
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + 3 * round));
      ep->close();
      for (auto& t : ts) t.join();
      st.join();
      EXPECT_EQ(bad.load(std::memory_order_relaxed), 0u) << "spin " << spin << " round " << round;
      // Every successful call was served; the server may also have taken calls that were aborted.
      EXPECT_GE(srv->counters().snapshot().calls, ok_calls.load(std::memory_order_relaxed));
      EXPECT_LE(srv->counters().snapshot().calls, ok_calls.load(std::memory_order_relaxed) + 8);
    }
  }
}

}  // namespace
