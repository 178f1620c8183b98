// The memory-allocation server (apps/alloc): functional behaviour and every bad request on both
// twins, the twins answering one script identically, many coroutines and threads at once with
// exactly-once replies and nothing left mapped, reclaim at stop, and the benchmark's workload.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "alloc/alloc.hpp"
#include "alloc/alloc_workload.hpp"

namespace uipc::apps::alloc {
namespace {

// Every test has a hard bound: a hang fails the run instead of stalling it.
struct Deadline {
  explicit Deadline(unsigned s) { ::alarm(s); }
  ~Deadline() { ::alarm(0); }
};

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

const std::size_t kPage = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));

// Address ranges mapped in this process now (/proc/self/maps).
struct Mapping {
  std::uintptr_t lo, hi;
  bool readable;
};
std::vector<Mapping> mappings() {
  std::vector<Mapping> out;
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long lo = 0, hi = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &lo, &hi, perms) == 3) out.push_back({lo, hi, perms[0] == 'r'});
  }
  return out;
}

const Mapping* find(const void* p, const std::vector<Mapping>& maps) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  for (const auto& m : maps)
    if (a >= m.lo && a < m.hi) return &m;
  return nullptr;
}
bool is_mapped(const void* p, const std::vector<Mapping>& maps) { return find(p, maps) != nullptr; }

// A freed block's address may be mapped again at once by someone else in this process (malloc, a
// sanitizer's runtime), so "unmapped" is checked as "not our block any more": before the free the
// block gets a cookie derived from its address; afterwards the address is either unmapped, or
// mapped without that cookie (fresh memory reads 0).
std::uint64_t cookie(const void* p) { return reinterpret_cast<std::uintptr_t>(p) ^ 0xc0ffee5eed5a1ad5ull; }
void mark(void* p) { *static_cast<volatile std::uint64_t*>(p) = cookie(p); }
bool still_ours(const void* p, const std::vector<Mapping>& maps) {
  const Mapping* m = find(p, maps);
  return m && m->readable && *static_cast<const volatile std::uint64_t*>(p) == cookie(p);
}

Request rq(Op op, std::uint64_t size, std::uint64_t addr = 0) { return {static_cast<std::uint32_t>(op), 0, size, addr}; }
std::uint64_t addr_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

// ---- one interface over both twins, driven from the test thread -------------------------------------

struct Twin {
  virtual ~Twin() = default;
  virtual Result<Block> allocate(unsigned client, std::size_t n) = 0;
  virtual Result<void> free(unsigned client, void* p, std::size_t n = 0) = 0;
  virtual Result<std::size_t> raw(unsigned client, std::span<const std::byte> req) = 0;
  virtual AllocStats stop_and_stats() = 0;  // stops the server, waits for it
};

struct AsyncTwin : Twin {
  std::unique_ptr<sys::Executor> ex;
  Runtime srt, crt;
  std::unique_ptr<AllocServer> server;
  std::vector<std::unique_ptr<AllocClient>> clients;
  std::thread t;
  Result<void> served;
  bool stopped = false;

  explicit AsyncTwin(unsigned n_clients, AllocLimits limits = {}, sys::Placement pl = sys::Placement::local) {
    sys::ExecutorOptions eo;
    eo.placement = pl;
    eo.backend = sys::Backend::direct;
    ex = std::move(sys::Executor::create(eo).value());
    AllocServerOptions o;
    o.limits = limits;
    server = std::make_unique<AllocServer>(srt, *ex, o);
    for (unsigned i = 0; i < n_clients; ++i) clients.push_back(std::move(server->connect(crt).value()));
    t = std::thread([this] { served = srt.block_on(server->serve()); });
  }
  ~AsyncTwin() override { stop_and_stats(); }
  Result<Block> allocate(unsigned c, std::size_t n) override { return crt.block_on(clients.at(c)->allocate(n)); }
  Result<void> free(unsigned c, void* p, std::size_t n) override { return crt.block_on(clients.at(c)->free(p, n)); }
  Result<std::size_t> raw(unsigned c, std::span<const std::byte> req) override {
    std::byte reply[64];
    return crt.block_on(clients.at(c)->call_raw(req, reply));
  }
  AllocStats stop_and_stats() override {
    if (!stopped) {
      stopped = true;
      server->stop();
      t.join();
      EXPECT_TRUE(served.has_value()) << served.error().message();
      clients.clear();
    }
    return server->stats();
  }
};

struct SyncTwin : Twin {
  std::unique_ptr<SyncAllocServer> server;
  std::vector<SyncAllocClient> clients;
  std::thread t;
  Result<void> served;
  bool stopped = false;

  explicit SyncTwin(unsigned n_clients, AllocLimits limits = {}) {
    server = std::move(SyncAllocServer::create(n_clients + 1, limits).value());
    for (unsigned i = 0; i < n_clients; ++i) clients.push_back(std::move(server->connect().value()));
    t = std::thread([this] { served = server->serve(); });
  }
  ~SyncTwin() override { stop_and_stats(); }
  Result<Block> allocate(unsigned c, std::size_t n) override { return clients.at(c).allocate(n); }
  Result<void> free(unsigned c, void* p, std::size_t n) override { return clients.at(c).free(p, n); }
  Result<std::size_t> raw(unsigned c, std::span<const std::byte> req) override {
    std::byte reply[64];
    return clients.at(c).call_raw(req, reply);
  }
  AllocStats stop_and_stats() override {
    if (!stopped) {
      stopped = true;
      clients.clear();
      server->stop();
      t.join();
      EXPECT_TRUE(served.has_value()) << served.error().message();
    }
    return server->stats();
  }
};

enum class Kind { async, sync };
std::unique_ptr<Twin> make(Kind k, unsigned clients, AllocLimits limits = {}) {
  if (k == Kind::async) return std::make_unique<AsyncTwin>(clients, limits);
  return std::make_unique<SyncTwin>(clients, limits);
}

class AllocTwins : public ::testing::TestWithParam<Kind> {};

TEST_P(AllocTwins, AllocateWriteFree) {
  Deadline d(60);
  auto tw = make(GetParam(), 1);
  std::vector<Block> blocks;
  for (std::size_t n : {std::size_t{1}, std::size_t{4096}, std::size_t{10000}, std::size_t{1} << 20}) {
    auto b = tw->allocate(0, n);
    ASSERT_TRUE(b) << b.error().message();
    EXPECT_EQ(b.value().size, (n + kPage - 1) / kPage * kPage);
    EXPECT_EQ(addr_of(b.value().addr) % kPage, 0u);
    auto* bytes = static_cast<unsigned char*>(b.value().addr);
    for (std::size_t off = 0; off < b.value().size; off += kPage) {
      EXPECT_EQ(bytes[off], 0);  // fresh anonymous memory
      bytes[off] = static_cast<unsigned char>(off / kPage % 250 + 1);
    }
    bytes[b.value().size - 1] = 0x5a;
    blocks.push_back(b.value());
  }
  // Distinct, non-overlapping, all still holding what was written.
  for (std::size_t i = 0; i < blocks.size(); ++i)
    for (std::size_t j = i + 1; j < blocks.size(); ++j) {
      const auto a = addr_of(blocks[i].addr), b = addr_of(blocks[j].addr);
      EXPECT_TRUE(a + blocks[i].size <= b || b + blocks[j].size <= a);
    }
  auto maps = mappings();
  for (const Block& b : blocks) {
    EXPECT_TRUE(is_mapped(b.addr, maps));
    auto* bytes = static_cast<unsigned char*>(b.addr);
    for (std::size_t off = 0; off + 1 < b.size; off += kPage) EXPECT_EQ(bytes[off], off / kPage % 250 + 1);
    EXPECT_EQ(bytes[b.size - 1], 0x5a);
  }
  for (const Block& b : blocks) mark(b.addr);
  // Free: by exact size, by requested size, with 0.
  ASSERT_TRUE(tw->free(0, blocks[0].addr, 1));
  ASSERT_TRUE(tw->free(0, blocks[1].addr, 4096));
  ASSERT_TRUE(tw->free(0, blocks[2].addr, blocks[2].size));
  ASSERT_TRUE(tw->free(0, blocks[3].addr));
  maps = mappings();
  for (const Block& b : blocks) EXPECT_FALSE(still_ours(b.addr, maps));
  const AllocStats s = tw->stop_and_stats();
  EXPECT_EQ(s.allocations, 4u);
  EXPECT_EQ(s.frees, 4u);
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_EQ(s.rejected, 0u);
  EXPECT_EQ(s.reclaimed, 0u);
  EXPECT_EQ(s.syscalls, 8u);
}

TEST_P(AllocTwins, BadRequestsGetTheirErrorAndChangeNothing) {
  Deadline d(60);
  AllocLimits lim;
  lim.max_block_bytes = 64 * 1024;
  lim.max_client_bytes = 96 * 1024;
  auto tw = make(GetParam(), 2, lim);

  auto mine = tw->allocate(0, 4096);
  auto theirs = tw->allocate(1, 4096);
  ASSERT_TRUE(mine && theirs);
  static_cast<unsigned char*>(theirs.value().addr)[0] = 7;

  auto expect_err = [&](auto r, std::errc e, const char* what) {
    ASSERT_FALSE(r) << what;
    EXPECT_EQ(r.error(), e) << what << ": got " << r.error().message();
  };
  expect_err(tw->raw(0, encode(rq(static_cast<Op>(9), 4096))), AllocError::unknown_op, "unknown op");
  expect_err(tw->raw(0, encode(rq(static_cast<Op>(0), 4096))), AllocError::unknown_op, "op 0");
  expect_err(tw->allocate(0, 0), AllocError::bad_size, "size 0");
  expect_err(tw->allocate(0, lim.max_block_bytes + 1), AllocError::too_large, "over the block limit");
  expect_err(tw->allocate(0, ~std::size_t{0}), AllocError::too_large, "size 2^64-1");
  std::vector<std::byte> shortreq(10);
  expect_err(tw->raw(0, shortreq), AllocError::malformed, "short request");
  expect_err(tw->raw(0, std::vector<std::byte>()), AllocError::malformed, "empty request");
  Request reserved = rq(Op::allocate, 4096);
  reserved.reserved = 1;
  expect_err(tw->raw(0, encode(reserved)), AllocError::malformed, "reserved bits");
  expect_err(tw->raw(0, encode(rq(Op::allocate, 4096, 0x1000))), AllocError::malformed, "allocate with an address");
  expect_err(tw->free(0, theirs.value().addr), AllocError::not_owned, "free of another client's block");
  expect_err(tw->free(0, reinterpret_cast<void*>(0x1000)), AllocError::not_owned, "free of an address never allocated");
  expect_err(tw->free(0, static_cast<char*>(mine.value().addr) + 16), AllocError::not_owned, "free inside a block");
  expect_err(tw->free(0, mine.value().addr, 8192), AllocError::bad_size, "free with a wrong size");
  // Quota: 4 KiB held + 64 KiB fits under 96 KiB; another 64 KiB does not.
  auto big = tw->allocate(0, 64 * 1024);
  ASSERT_TRUE(big);
  expect_err(tw->allocate(0, 64 * 1024), AllocError::over_quota, "over the client's quota");
  ASSERT_TRUE(tw->allocate(1, 64 * 1024));  // quotas are per client

  // Nothing changed: the other client's block is intact and still its own; ours still frees.
  EXPECT_EQ(static_cast<unsigned char*>(theirs.value().addr)[0], 7);
  EXPECT_TRUE(tw->free(1, theirs.value().addr));
  EXPECT_TRUE(tw->free(0, mine.value().addr));
  expect_err(tw->free(0, mine.value().addr), AllocError::not_owned, "double free");
  EXPECT_TRUE(tw->free(0, big.value().addr));
  auto again = tw->allocate(0, 64 * 1024);  // the quota came back with the frees
  EXPECT_TRUE(again);

  const AllocStats s = tw->stop_and_stats();
  EXPECT_EQ(s.rejected, 15u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(s.allocations, 5u);
  EXPECT_EQ(s.frees, 3u);
  EXPECT_EQ(s.reclaimed, 2u);  // client 1's 64 KiB and `again`, unmapped at stop
  EXPECT_EQ(s.live_blocks, 0u);
}

// Blocks a client never frees are unmapped when the server stops.
TEST_P(AllocTwins, StopReclaimsWhatIsStillHeld) {
  Deadline d(60);
  auto tw = make(GetParam(), 1);
  std::vector<void*> held;
  for (int i = 0; i < 5; ++i) held.push_back(tw->allocate(0, 8192).value().addr);
  auto maps = mappings();
  for (void* p : held) {
    EXPECT_TRUE(is_mapped(p, maps));
    mark(p);
  }
  const AllocStats s = tw->stop_and_stats();
  EXPECT_EQ(s.reclaimed, 5u);
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  maps = mappings();
  for (void* p : held) EXPECT_FALSE(still_ours(p, maps));
}

INSTANTIATE_TEST_SUITE_P(Alloc, AllocTwins, ::testing::Values(Kind::async, Kind::sync),
                         [](const auto& i) { return i.param == Kind::async ? "async" : "sync"; });

// One script of good and bad requests: both twins must give the same answers (sizes and error
// codes; addresses are the kernel's and differ, so the script refers to blocks by index).
TEST(AllocTwinsAgree, SameScriptSameAnswers) {
  Deadline d(60);
  AllocLimits lim;
  lim.max_block_bytes = 1 << 20;
  lim.max_client_bytes = 2 << 20;
  struct Step {
    int kind;            // 0 allocate, 1 free block #ref, 2 raw op, 3 free a foreign address
    unsigned client;
    std::uint64_t size;
    int ref;
  };
  std::vector<Step> script;
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  auto rnd = [&] { return (x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int i = 0; i < 400; ++i) {
    const unsigned k = static_cast<unsigned>(rnd() % 10);
    const unsigned c = static_cast<unsigned>(rnd() % 3);
    if (k < 4) script.push_back({0, c, rnd() % 3 == 0 ? rnd() % (lim.max_block_bytes + 4096) : 1 + rnd() % 20000, -1});
    else if (k < 8) script.push_back({1, c, rnd() % 4 == 0 ? std::uint64_t{4096} : std::uint64_t{0}, static_cast<int>(rnd() % 64)});
    else if (k < 9) script.push_back({2, c, rnd() % 5, -1});
    else script.push_back({3, c, 0, -1});
  }
  auto play = [&](Twin& tw) {
    std::vector<std::string> out;
    std::vector<Block> made;
    for (const Step& s : script) {
      std::ostringstream o;
      if (s.kind == 0) {
        auto r = tw.allocate(s.client, s.size);
        if (r) {
          made.push_back(r.value());
          static_cast<volatile char*>(r.value().addr)[0] = 1;
          o << "ok " << r.value().size;
        } else {
          made.push_back({});
          o << "err " << r.error().value();
        }
      } else if (s.kind == 1) {
        // A block freed before stands for a never-mapped address: the kernel may have given its
        // address to a later block, differently in each twin.
        Block* b = made.empty() ? nullptr : &made[static_cast<std::size_t>(s.ref) % made.size()];
        void* p = b && b->addr ? b->addr : reinterpret_cast<void*>(0x3000);
        auto r = tw.free(s.client, p, s.size);
        if (r) b->addr = nullptr;
        o << (r ? "ok" : "err " + std::to_string(r.error().value()));
      } else if (s.kind == 2) {
        auto r = tw.raw(s.client, encode(rq(static_cast<Op>(s.size), 4096)));
        o << (r ? "ok " + std::to_string(r.value()) : "err " + std::to_string(r.error().value()));
      } else {
        auto r = tw.free(s.client, reinterpret_cast<void*>(0x4000));
        o << (r ? "ok" : "err " + std::to_string(r.error().value()));
      }
      out.push_back(o.str());
    }
    const AllocStats st = tw.stop_and_stats();
    std::ostringstream o;
    o << "stats " << st.requests << " " << st.allocations << " " << st.frees << " " << st.rejected << " "
      << st.failed << " " << st.syscalls << " " << st.reclaimed << " " << st.live_blocks;
    out.push_back(o.str());
    return out;
  };
  AsyncTwin a(3, lim);
  SyncTwin s(3, lim);
  const auto ra = play(a), rs = play(s);
  ASSERT_EQ(ra.size(), rs.size());
  std::set<std::string> kinds;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    EXPECT_EQ(ra[i], rs[i]) << "step " << i;
    kinds.insert(ra[i].substr(0, ra[i].find(' ', 4)));
  }
  // The script exercised successes and several distinct errors.
  EXPECT_GE(kinds.size(), 5u);
}

// ---- concurrency ------------------------------------------------------------------------------------

class AllocConcurrency : public ::testing::TestWithParam<sys::Placement> {};

// 4 clients × 128 coroutines × rounds of allocate → tag → yield → check tag → free: every call
// answered exactly once, no address live twice, foreign frees refused while owners hold blocks,
// and nothing left mapped.
TEST_P(AllocConcurrency, ManyCoroutinesExactlyOnce) {
  Deadline d(120);
  constexpr unsigned kClients = 4, kPerClient = 128;
  const unsigned rounds = kSanitized ? 4 : 10;
  AsyncTwin tw(kClients, {}, GetParam());
  std::set<std::uintptr_t> live, seen;
  std::uint64_t allocs = 0, frees = 0, foreign_refused = 0;
  std::string failure;
  auto worker = [&](unsigned c, unsigned k) -> Task<void> {
    for (unsigned r = 0; r < rounds; ++r) {
      auto b = co_await tw.clients[c]->allocate(4096 * (1 + (k + r) % 3));
      if (!b) {
        failure = "allocate: " + b.error().message();
        co_return;
      }
      ++allocs;
      const auto a = addr_of(b.value().addr);
      if (!live.insert(a).second) failure = "an address handed out twice at once";
      seen.insert(a);
      auto* p = static_cast<volatile std::uint32_t*>(b.value().addr);
      if (p[0] != 0) failure = "a block was not fresh";
      const std::uint32_t tag = c << 24 | k << 8 | r;
      p[0] = tag;
      co_await tw.crt.yield();
      // A neighbour client tries to free it: refused, and the block stays.
      if (k % 16 == 0) {
        auto f = co_await tw.clients[(c + 1) % kClients]->free(b.value().addr);
        if (!f && f.error() == AllocError::not_owned) ++foreign_refused;
        else failure = "a foreign free was not refused";
      }
      if (p[0] != tag) failure = "a block changed under its owner";
      mark(b.value().addr);
      live.erase(a);
      auto f = co_await tw.clients[c]->free(b.value().addr);
      if (!f) {
        failure = "free: " + f.error().message();
        co_return;
      }
      ++frees;
    }
  };
  for (unsigned c = 0; c < kClients; ++c)
    for (unsigned k = 0; k < kPerClient; ++k) tw.crt.spawn(worker(c, k));
  tw.crt.run();
  EXPECT_EQ(failure, "");
  const std::uint64_t want = std::uint64_t{kClients} * kPerClient * rounds;
  EXPECT_EQ(allocs, want);
  EXPECT_EQ(frees, want);
  EXPECT_EQ(foreign_refused, std::uint64_t{kClients} * (kPerClient / 16) * rounds);
  const AllocStats s = tw.stop_and_stats();
  EXPECT_EQ(s.allocations, want);
  EXPECT_EQ(s.frees, want);
  EXPECT_EQ(s.rejected, foreign_refused);
  EXPECT_EQ(s.requests, 2 * want + foreign_refused);  // every request seen once
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_EQ(s.reclaimed, 0u);
  EXPECT_GT(s.peak_in_flight, 1u);  // the server really had several system calls out at once
  const auto maps = mappings();
  std::size_t still = 0;
  for (auto a : seen) still += still_ours(reinterpret_cast<void*>(a), maps);
  EXPECT_EQ(still, 0u) << "of " << seen.size() << " addresses handed out";
}

INSTANTIATE_TEST_SUITE_P(Alloc, AllocConcurrency,
                         ::testing::Values(sys::Placement::local, sys::Placement::shared, sys::Placement::affine),
                         [](const auto& i) { return std::string(sys::to_string(i.param)); });

// Many blocking clients on their own threads against the sync server.
TEST(AllocSyncConcurrency, ManyThreadsExactlyOnce) {
  Deadline d(120);
  constexpr unsigned kThreads = 16;
  const unsigned rounds = kSanitized ? 50 : 300;
  auto server = std::move(SyncAllocServer::create(kThreads).value());
  Result<void> served;
  std::thread st([&] { served = server->serve(); });
  std::vector<std::vector<std::uintptr_t>> seen(kThreads);
  std::atomic<unsigned> bad{0};
  {
    std::vector<std::thread> ts;
    for (unsigned i = 0; i < kThreads; ++i)
      ts.emplace_back([&, i, c = server->connect().value()]() mutable {
        for (unsigned r = 0; r < rounds; ++r) {
          auto b = c.allocate(4096);
          if (!b) {
            bad.fetch_add(1, std::memory_order_relaxed);
            return;
          }
          auto* p = static_cast<volatile std::uint32_t*>(b.value().addr);
          if (p[0] != 0) bad.fetch_add(1, std::memory_order_relaxed);
          p[0] = i << 16 | r;
          std::this_thread::yield();
          if (p[0] != (i << 16 | r)) bad.fetch_add(1, std::memory_order_relaxed);
          seen[i].push_back(addr_of(b.value().addr));
          mark(b.value().addr);
          if (!c.free(b.value().addr)) bad.fetch_add(1, std::memory_order_relaxed);
        }
      });
    for (auto& t : ts) t.join();
  }
  server->stop();
  st.join();
  ASSERT_TRUE(served);
  EXPECT_EQ(bad.load(), 0u);
  const AllocStats s = server->stats();
  EXPECT_EQ(s.allocations, std::uint64_t{kThreads} * rounds);
  EXPECT_EQ(s.frees, std::uint64_t{kThreads} * rounds);
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.reclaimed, 0u);
  const auto maps = mappings();
  for (const auto& v : seen)
    for (auto a : v) EXPECT_FALSE(still_ours(reinterpret_cast<void*>(a), maps));
}

// The benchmark's workload on both twins: the same work done, every page checked, nothing left.
TEST(AllocWorkload, BothTwinsDoTheSameWork) {
  Deadline d(120);
  WorkloadParams p;
  p.clients = kSanitized ? 64 : 512;
  p.rounds = 2;
  p.repeat = 1;
  for (auto [n, populate] : {std::pair{1u, true}, std::pair{8u, true}, std::pair{64u, true}, std::pair{8u, false}}) {
    p.inflight = n;
    p.populate = populate;
    const WorkloadResult s = run_sync_workload(p);
    const WorkloadResult a = run_async_workload(p);
    for (const auto* r : {&s, &a}) {
      const std::uint64_t total = std::uint64_t{p.clients} * p.rounds * 2;
      EXPECT_EQ(r->error, "") << "inflight " << n;
      EXPECT_EQ(r->jobs, total);
      EXPECT_EQ(r->pages_checked, total);
      EXPECT_EQ(r->ops, std::uint64_t{p.clients} * p.rounds);  // the measured pass
      EXPECT_GT(r->wall_s, 0);
      EXPECT_GT(r->p99_ns, 0);
      EXPECT_EQ(r->server.allocations, total);
      EXPECT_EQ(r->server.frees, total);
      EXPECT_EQ(r->server.syscalls, 2 * total);
      EXPECT_EQ(r->server.live_blocks, 0u);
      EXPECT_EQ(r->server.rejected, 0u);
      // Every system call is a kernel entry somewhere: the sync server's own, or (async) the
      // executing thread's (local placement: the server thread).
      EXPECT_GE(r->kernel_entries(), 2 * r->ops) << (r == &s ? "sync" : "async") << ", inflight " << n;
    }
    EXPECT_LE(a.server.peak_in_flight, n);
    if (n >= 8) EXPECT_GT(a.server.peak_in_flight, 1u);
  }
}

}  // namespace
}  // namespace uipc::apps::alloc
