// Tests of the key-value service (apps/kv): store semantics, wire-format validation, the uipc
// server and its Unix-socket twin answering alike, client processes hammering overlapping keys,
// clients that vanish mid-request, and the load generator end to end.
// Multi-process tests fork their children before starting any thread; every test runs under
// alarm(), so a hang fails it instead of blocking the suite.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kv/kv_client.hpp"
#include "kv/kv_loadgen.hpp"
#include "kv/kv_server.hpp"
#include "kv/kv_store.hpp"

using namespace uipc;
using namespace uipc::apps::kv;

namespace {

class Kv : public ::testing::Test {
 protected:
  void SetUp() override { ::alarm(60); }
  void TearDown() override { ::alarm(0); }
};

// The tests that fork want a process with one thread (ThreadSanitizer refuses to start threads in
// a child forked from a multi-threaded process). ctest runs every test in a process of its own;
// a whole-binary run may have a thread left from an earlier test (the process-wide peer watcher).
bool single_threaded() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return false;
  char line[256];
  int threads = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "Threads: %d", &threads) == 1) break;
  std::fclose(f);
  return threads == 1;
}
#define REQUIRE_SINGLE_THREADED()                                                                   \
  if (!single_threaded()) GTEST_SKIP() << "this test forks and needs a single-threaded process; " \
                                          "run it alone (ctest does)"

std::string socket_path(const char* tag) {
  static int n = 0;
  return "/tmp/uipc-kvtest-" + std::string(tag) + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".sock";
}

std::vector<std::byte> raw(std::initializer_list<int> bytes) {
  std::vector<std::byte> v;
  for (int b : bytes) v.push_back(static_cast<std::byte>(b));
  return v;
}

// A request with the header fields given explicitly (to build invalid ones).
std::vector<std::byte> forged(int op, int flags, std::uint16_t key_len, std::uint32_t value_len, std::size_t body) {
  std::vector<std::byte> v(kHeaderBytes + body, std::byte{'x'});
  v[0] = static_cast<std::byte>(op);
  v[1] = static_cast<std::byte>(flags);
  put_u16(&v[2], key_len);
  put_u32(&v[4], value_len);
  return v;
}

Response answer(Store& s, const std::vector<std::byte>& req) {
  std::vector<std::byte> rep(kMaxResponse);
  const std::size_t n = s.handle(req, rep);
  return decode_response(std::span<const std::byte>(rep.data(), n));
}

// A server (UipcServer or TwinServer) running on its own thread, listening on a fresh path.
template <class S>
struct Running {
  Store store;
  S server;
  std::string path;
  std::thread thread;
  explicit Running(const char* tag, std::size_t max_keys = Store::kDefaultMaxKeys) : store(max_keys), server(store), path(socket_path(tag)) {
    auto r = server.listen(path);
    EXPECT_TRUE(r) << r.error().message();
    thread = std::thread([this] { server.run(); });
  }
  ~Running() { stop(); }
  void stop() {
    if (!thread.joinable()) return;
    server.stop();
    thread.join();
  }
};

// The invalid requests every server must answer with an error status (and the status).
std::vector<std::pair<std::vector<std::byte>, Status>> bad_requests() {
  return {
      {raw({}), Status::malformed},                                  // empty
      {raw({1, 0, 3}), Status::malformed},                           // shorter than the header
      {forged(0, 0, 1, 0, 1), Status::bad_op},                       // op 0
      {forged(4, 0, 1, 0, 1), Status::bad_op},                       // op 4
      {forged(255, 0, 1, 0, 1), Status::bad_op},
      {forged(1, 1, 1, 0, 1), Status::bad_op},                       // flags set
      {forged(1, 0, 0, 0, 0), Status::bad_key},                      // empty key
      {forged(1, 0, 257, 0, 257), Status::bad_key},                  // key over 256
      {forged(2, 0, 1, 4097, 1 + 4097), Status::too_large},          // value over 4096
      {forged(2, 0, 1, 0xffffffffu, 1), Status::too_large},
      {forged(2, 0, 4, 10, 4 + 5), Status::malformed},               // truncated value
      {forged(2, 0, 4, 10, 4 + 11), Status::malformed},              // trailing byte
      {forged(1, 0, 4, 3, 4 + 3), Status::malformed},                // value on get
      {forged(3, 0, 4, 3, 4 + 3), Status::malformed},                // value on del
  };
}

// A fixed sequence mixing good and bad requests (for comparing the two servers).
std::vector<std::vector<std::byte>> mixed_sequence() {
  std::vector<std::vector<std::byte>> seq;
  seq.push_back(make_request(Op::get, "alpha"));
  seq.push_back(make_request(Op::put, "alpha", "one"));
  seq.push_back(make_request(Op::get, "alpha"));
  for (auto& [req, st] : bad_requests()) seq.push_back(req);
  seq.push_back(make_request(Op::put, "alpha", std::string(4096, 'z')));
  seq.push_back(make_request(Op::get, "alpha"));
  seq.push_back(make_request(Op::put, std::string(256, 'k'), ""));
  seq.push_back(make_request(Op::get, std::string(256, 'k')));
  seq.push_back(make_request(Op::del, "alpha"));
  seq.push_back(make_request(Op::del, "alpha"));
  seq.push_back(make_request(Op::get, "alpha"));
  seq.push_back(make_request(Op::put, "beta", "two"));
  seq.push_back(make_request(Op::put, "gamma", "three"));  // store_full with max_keys 2
  seq.push_back(make_request(Op::put, "beta", "two again"));
  seq.push_back(make_request(Op::get, "beta"));
  return seq;
}

std::vector<Response> run_uipc(const std::string& path, const std::vector<std::vector<std::byte>>& seq) {
  Runtime rt;
  auto c = UipcClient::connect(rt, path, 4);
  EXPECT_TRUE(c) << c.error().message();
  std::vector<Response> out;
  if (!c) return out;
  rt.block_on([](UipcClient& cl, const std::vector<std::vector<std::byte>>& s, std::vector<Response>& o) -> Task<void> {
    std::vector<std::byte> rep(kMaxResponse);
    for (const auto& req : s) {
      auto r = co_await cl.call_raw(req, rep);
      EXPECT_TRUE(r) << r.error().message();
      if (!r) co_return;
      o.push_back(decode_response(std::span<const std::byte>(rep.data(), r.value())));
    }
  }(*c.value(), seq, out));
  return out;
}

std::vector<Response> run_twin(const std::string& path, const std::vector<std::vector<std::byte>>& seq) {
  auto c = TwinClient::connect(path);
  EXPECT_TRUE(c) << c.error().message();
  if (!c) return {};
  auto r = c.value()->call_many(seq);
  EXPECT_TRUE(r) << r.error().message();
  return r ? r.value() : std::vector<Response>{};
}

// ---- store and wire format ---------------------------------------------------------------------

TEST_F(Kv, StoreSemantics) {
  Store s(3);
  EXPECT_EQ(answer(s, make_request(Op::get, "a")).status, Status::not_found);
  EXPECT_EQ(answer(s, make_request(Op::put, "a", "1")).status, Status::ok);
  Response r = answer(s, make_request(Op::get, "a"));
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.value, "1");
  EXPECT_EQ(answer(s, make_request(Op::put, "a", "22")).status, Status::ok);  // overwrite
  EXPECT_EQ(answer(s, make_request(Op::get, "a")).value, "22");
  EXPECT_EQ(answer(s, make_request(Op::put, "empty", "")).status, Status::ok);  // empty value is a value
  r = answer(s, make_request(Op::get, "empty"));
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.value, "");
  const std::string big(kMaxValue, 'v'), long_key(kMaxKey, 'k');
  EXPECT_EQ(answer(s, make_request(Op::put, long_key, big)).status, Status::ok);  // both limits exactly
  EXPECT_EQ(answer(s, make_request(Op::get, long_key)).value, big);
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(answer(s, make_request(Op::put, "d", "x")).status, Status::store_full);
  EXPECT_EQ(answer(s, make_request(Op::get, "d")).status, Status::not_found);
  EXPECT_EQ(answer(s, make_request(Op::put, "a", "3")).status, Status::ok);  // overwrite when full is fine
  EXPECT_EQ(answer(s, make_request(Op::del, "a")).status, Status::ok);
  EXPECT_EQ(answer(s, make_request(Op::del, "a")).status, Status::not_found);
  EXPECT_EQ(answer(s, make_request(Op::get, "a")).status, Status::not_found);
  EXPECT_EQ(answer(s, make_request(Op::put, "d", "x")).status, Status::ok);  // room again
  EXPECT_EQ(s.size(), 3u);
  // Binary keys and values pass through untouched.
  const std::string bin_key("\0\xff\n", 3), bin_val("\0\0\x80", 3);
  Store t;
  EXPECT_EQ(answer(t, make_request(Op::put, bin_key, bin_val)).status, Status::ok);
  EXPECT_EQ(answer(t, make_request(Op::get, bin_key)).value, bin_val);
}

TEST_F(Kv, FillValueWritesValueForInPlace) {
  // value_for(i, n): byte j is 'a' + (7 i + j) mod 26; fill_value writes the same bytes.
  for (std::size_t i : {std::size_t{0}, std::size_t{1}, std::size_t{25}, std::size_t{26}, std::size_t{9999}}) {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{64}, kMaxValue}) {
      const std::string v = value_for(i, n);
      ASSERT_EQ(v.size(), n);
      for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(v[j], static_cast<char>('a' + (i * 7 + j) % 26)) << i << " " << j;
      std::string w(n + 2, '#');
      fill_value(i, w.data() + 1, n);
      EXPECT_EQ(w.substr(1, n), v);
      EXPECT_EQ(w.front(), '#');  // nothing written outside [out, out + n)
      EXPECT_EQ(w.back(), '#');
    }
  }
}

TEST_F(Kv, BadRequestsGetTheirStatusAndChangeNothing) {
  Store s;
  ASSERT_EQ(answer(s, make_request(Op::put, "keep", "me")).status, Status::ok);
  for (const auto& [req, want] : bad_requests()) {
    const Response r = answer(s, req);
    EXPECT_TRUE(r.valid);
    EXPECT_EQ(r.status, want) << "request of " << req.size() << " bytes, op " << (req.empty() ? -1 : static_cast<int>(req[0]));
    EXPECT_TRUE(r.value.empty());
  }
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(answer(s, make_request(Op::get, "keep")).value, "me");
  EXPECT_EQ(s.stats().errors, bad_requests().size());
}

TEST_F(Kv, ResponseDecodingRejectsGarbage) {
  std::vector<std::byte> rep(kMaxResponse);
  std::size_t n = encode_response(rep, Status::ok, "abc");
  EXPECT_TRUE(decode_response(std::span<const std::byte>(rep.data(), n)).valid);
  EXPECT_FALSE(decode_response(std::span<const std::byte>(rep.data(), n - 1)).valid);  // short
  EXPECT_FALSE(decode_response(std::span<const std::byte>(rep.data(), 4)).valid);
  rep[0] = std::byte{99};
  EXPECT_FALSE(decode_response(std::span<const std::byte>(rep.data(), n)).valid);  // unknown status
}

// ---- both servers ---------------------------------------------------------------------------------

TEST_F(Kv, UipcAndTwinAnswerTheSameSequenceIdentically) {
  const auto seq = mixed_sequence();
  std::vector<Response> a, b;
  {
    Running<UipcServer> u("same-uipc", 2);
    a = run_uipc(u.path, seq);
  }
  {
    Running<TwinServer> t("same-twin", 2);
    b = run_twin(t.path, seq);
  }
  ASSERT_EQ(a.size(), seq.size());
  ASSERT_EQ(b.size(), seq.size());
  for (std::size_t i = 0; i < seq.size(); ++i) {
    EXPECT_TRUE(a[i].valid && b[i].valid) << i;
    EXPECT_EQ(a[i].status, b[i].status) << "request " << i << ": uipc " << status_name(a[i].status) << ", twin "
                                        << status_name(b[i].status);
    EXPECT_EQ(a[i].value, b[i].value) << i;
  }
  // Spot checks that the sequence means what it says.
  EXPECT_EQ(a[0].status, Status::not_found);
  EXPECT_EQ(a[2].value, "one");
  const std::size_t nb = bad_requests().size();
  for (std::size_t i = 0; i < nb; ++i) EXPECT_EQ(a[3 + i].status, bad_requests()[i].second) << i;
  EXPECT_EQ(a[3 + nb + 1].value, std::string(4096, 'z'));
  EXPECT_EQ(a[3 + nb + 8].status, Status::store_full);
  EXPECT_EQ(a.back().value, "two again");
}

TEST_F(Kv, UipcServerKeepsServingOtherClientsAfterBadRequests) {
  Running<UipcServer> u("uipc-bad");
  Runtime rt;
  auto good = UipcClient::connect(rt, u.path, 4);
  auto bad = UipcClient::connect(rt, u.path, 4);
  ASSERT_TRUE(good && bad);
  rt.block_on([](UipcClient& g, UipcClient& b) -> Task<void> {
    auto r = co_await g.call(Op::put, "k", "v");
    EXPECT_TRUE(r && r.value().status == Status::ok);
    std::vector<std::byte> rep(kMaxResponse);
    for (const auto& [req, want] : bad_requests()) {
      auto x = co_await b.call_raw(req, rep);
      EXPECT_TRUE(x) << x.error().message();
      if (x) EXPECT_EQ(decode_response(std::span<const std::byte>(rep.data(), x.value())).status, want);
    }
    // A request over the channel's payload never leaves the client: message_size, channel up.
    std::vector<std::byte> huge(kMaxRequest + 1);
    auto h = co_await b.call_raw(huge, rep);
    EXPECT_EQ(h.error(), std::errc::message_size);
    auto again = co_await b.call(Op::get, "k");
    EXPECT_TRUE(again && again.value().value == "v");
    auto other = co_await g.call(Op::get, "k");
    EXPECT_TRUE(other && other.value().value == "v");
  }(*good.value(), *bad.value()));
}

// A client whose channel payload is smaller than the largest reply: replies that fit arrive,
// one that does not is refused with message_size, and the channel stays up.
TEST_F(Kv, UipcServerRefusesOnlyRepliesTooBigForTheChannel) {
  Running<UipcServer> u("uipc-small");
  Runtime rt;
  ipc::ChannelOptions small;
  small.max_payload = 64;
  auto c = ipc::connect(rt, u.path, small);
  ASSERT_TRUE(c) << c.error().message();
  UipcClient cl(std::move(c.value()));
  rt.block_on([](UipcClient& k) -> Task<void> {
    auto a = co_await k.call(Op::put, "s", "short");
    EXPECT_TRUE(a && a.value().status == Status::ok);
    auto b = co_await k.call(Op::get, "s");
    EXPECT_TRUE(b && b.value().value == "short");
    auto big = co_await k.call(Op::put, "b", std::string(40, 'b'));  // 8 + 1 + 40 bytes: fits
    EXPECT_TRUE(big && big.value().status == Status::ok);
    auto g = co_await k.call(Op::get, "b");  // a 48-byte reply: fits
    EXPECT_TRUE(g && g.value().value == std::string(40, 'b'));
  }(cl));
  // A value put by another client that does not fit this channel's replies.
  Runtime rt2;
  auto wide = UipcClient::connect(rt2, u.path, 4);
  ASSERT_TRUE(wide);
  ASSERT_TRUE(rt2.block_on(wide.value()->call(Op::put, "huge", std::string(1000, 'h'))));
  rt.block_on([](UipcClient& k) -> Task<void> {
    auto h = co_await k.call(Op::get, "huge");
    EXPECT_EQ(h.error(), std::errc::message_size);
    auto again = co_await k.call(Op::get, "s");  // still up
    EXPECT_TRUE(again && again.value().value == "short");
  }(cl));
}

TEST_F(Kv, TwinKeepsServingAfterOversizedAndBrokenFrames) {
  Running<TwinServer> t("twin-bad");
  auto a = TwinClient::connect(t.path);
  auto b = TwinClient::connect(t.path);
  ASSERT_TRUE(a && b);
  // A frame announcing more than the largest request: too_large, its bytes skipped, stream in sync.
  std::vector<std::byte> frame(kFramePrefix + kMaxRequest + 100, std::byte{'q'});
  put_u32(frame.data(), static_cast<std::uint32_t>(kMaxRequest + 100));
  ASSERT_TRUE(a.value()->send_bytes(frame));
  auto r = a.value()->read_response();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r.value().status, Status::too_large);
  for (const auto& [req, want] : bad_requests()) {
    auto x = a.value()->call_many({req});
    ASSERT_TRUE(x);
    EXPECT_EQ(x.value()[0].status, want);
  }
  auto ok = a.value()->call(Op::put, "k", "v");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok.value().status, Status::ok);
  auto g = b.value()->call(Op::get, "k");
  ASSERT_TRUE(g);
  EXPECT_EQ(g.value().value, "v");
}

// ---- many client processes ------------------------------------------------------------------------

constexpr int kProcs = 4, kShared = 8, kRounds = 300;

std::string final_value(int key, int proc) { return "last:" + std::to_string(key) + ":" + std::to_string(proc); }

// Child: hammers the shared keys (put, get, del, put again), with 4 requests in flight (uipc) or
// pipelined batches (twin); every answer must be one of the legal ones. Ends by writing
// final_value(k, me) to every shared key and "own:me" = "done". Exit 0 when all went well.
[[noreturn]] void hammer(bool uipc_mode, const std::string& path, int me, int go_fd) {
  char c;
  if (::read(go_fd, &c, 1) < 0) ::_exit(10);  // EOF: the server is listening
  int failures = 0;
  auto check = [&](const Response& r, Op op) {
    const bool fine = r.valid && (r.status == Status::ok || (op != Op::put && r.status == Status::not_found)) &&
                      (op != Op::get || r.status != Status::ok || r.value.rfind("v:", 0) == 0 || r.value.rfind("last:", 0) == 0);
    if (!fine) ++failures;
  };
  auto plan = [&](int round) {
    std::vector<std::pair<Op, std::string>> ops;
    const std::string key = "shared:" + std::to_string((round * 7 + me) % kShared);
    ops.emplace_back(Op::put, key);
    ops.emplace_back(Op::get, key);
    if (round % 5 == 0) ops.emplace_back(Op::del, key);
    return std::make_pair(key, ops);
  };
  if (uipc_mode) {
    Runtime rt;
    auto cl = UipcClient::connect(rt, path, 4);
    if (!cl) ::_exit(11);
    for (int w = 0; w < 4; ++w)
      rt.spawn([](UipcClient& c, int me, int w, auto& plan, auto& check) -> Task<void> {
        for (int round = w; round < kRounds; round += 4) {
          auto [key, ops] = plan(round);
          for (auto& [op, k] : ops) {
            const std::string v = "v:" + std::to_string(me) + ":" + std::to_string(round);
            auto r = co_await c.call(op, k, op == Op::put ? std::string_view(v) : std::string_view());
            if (!r) ::_exit(12);
            check(r.value(), op);
          }
        }
      }(*cl.value(), me, w, plan, check));
    rt.run();
    rt.block_on([](UipcClient& c, int me, int& failures) -> Task<void> {
      for (int k = 0; k < kShared; ++k) {
        auto r = co_await c.call(Op::put, "shared:" + std::to_string(k), final_value(k, me));
        if (!r || r.value().status != Status::ok) ++failures;
      }
      auto r = co_await c.call(Op::put, "own:" + std::to_string(me), "done");
      if (!r || r.value().status != Status::ok) ++failures;
    }(*cl.value(), me, failures));
  } else {
    auto cl = TwinClient::connect(path);
    if (!cl) ::_exit(11);
    for (int round = 0; round < kRounds; round += 4) {  // batches of 4 rounds, pipelined
      std::vector<std::vector<std::byte>> batch;
      std::vector<Op> kinds;
      for (int j = round; j < std::min(round + 4, kRounds); ++j) {
        auto [key, ops] = plan(j);
        for (auto& [op, k] : ops) {
          const std::string v = "v:" + std::to_string(me) + ":" + std::to_string(j);
          batch.push_back(make_request(op, k, op == Op::put ? std::string_view(v) : std::string_view()));
          kinds.push_back(op);
        }
      }
      auto r = cl.value()->call_many(batch);
      if (!r) ::_exit(12);
      for (std::size_t i = 0; i < kinds.size(); ++i) check(r.value()[i], kinds[i]);
    }
    std::vector<std::vector<std::byte>> fin;
    for (int k = 0; k < kShared; ++k) fin.push_back(make_request(Op::put, "shared:" + std::to_string(k), final_value(k, me)));
    fin.push_back(make_request(Op::put, "own:" + std::to_string(me), "done"));
    auto r = cl.value()->call_many(fin);
    if (!r) ::_exit(12);
    for (auto& x : r.value())
      if (x.status != Status::ok) ++failures;
  }
  ::_exit(failures == 0 ? 0 : 13);
}

template <class S>
void hammer_test(bool uipc_mode, const char* tag) {
  REQUIRE_SINGLE_THREADED();
  const std::string path = socket_path(tag);
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> kids;
  for (int i = 0; i < kProcs; ++i) {  // fork before any thread
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(go[1]);
      hammer(uipc_mode, path, i, go[0]);
    }
    kids.push_back(pid);
  }
  ::close(go[0]);
  Store store;
  S server(store);
  ASSERT_TRUE(server.listen(path));
  std::thread t([&] { server.run(); });
  ::close(go[1]);  // go
  for (int i = 0; i < kProcs; ++i) {
    int st = 0;
    ASSERT_EQ(::waitpid(kids[i], &st, 0), kids[i]);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "client " << i << ": status " << st;
  }
  server.stop();
  t.join();
  // Final state: every own key written; every shared key holds one client's final value.
  for (int i = 0; i < kProcs; ++i) {
    const std::string* v = store.find("own:" + std::to_string(i));
    ASSERT_NE(v, nullptr) << i;
    EXPECT_EQ(*v, "done");
  }
  for (int k = 0; k < kShared; ++k) {
    const std::string* v = store.find("shared:" + std::to_string(k));
    ASSERT_NE(v, nullptr) << k;
    std::set<std::string> legal;
    for (int i = 0; i < kProcs; ++i) legal.insert(final_value(k, i));
    EXPECT_TRUE(legal.count(*v)) << "shared:" << k << " = " << *v;
  }
  EXPECT_EQ(store.size(), static_cast<std::size_t>(kProcs + kShared));
  const auto& s = store.stats();
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(s.puts, static_cast<std::uint64_t>(kProcs) * (kRounds + kShared + 1));
}

TEST_F(Kv, UipcClientProcessesHammerOverlappingKeys) { hammer_test<UipcServer>(true, "hammer-uipc"); }
TEST_F(Kv, TwinClientProcessesHammerOverlappingKeys) { hammer_test<TwinServer>(false, "hammer-twin"); }

// ---- clients that vanish mid-request -----------------------------------------------------------

// A uipc client process that puts requests in flight and is killed before it reads the replies;
// the server drops its channel and another client carries on.
TEST_F(Kv, UipcClientKilledMidRequestLeavesOthersServing) {
  REQUIRE_SINGLE_THREADED();
  const std::string path = socket_path("vanish-uipc");
  int go[2], sent[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(sent), 0);
  const pid_t kid = ::fork();
  if (kid == 0) {
    ::close(go[1]);
    ::close(sent[0]);
    char c;
    if (::read(go[0], &c, 1) < 0) ::_exit(10);
    Runtime rt;
    auto cl = UipcClient::connect(rt, path, 16);
    if (!cl) ::_exit(11);
    for (int i = 0; i < 16; ++i)
      rt.spawn([](UipcClient& c, int i) -> Task<void> {
        (void)co_await c.call(Op::put, "vanish:" + std::to_string(i), std::string(4000, 'x'));
      }(*cl.value(), i));
    // Run until the 16 requests are published (each call writes its entry before it suspends),
    // then stop running the runtime: their replies are never read. Report and wait to be killed.
    rt.block_on([](Runtime& r) -> Task<void> { co_await r.yield(); }(rt));
    if (::write(sent[1], "s", 1) != 1) ::_exit(12);
    for (;;) ::pause();
  }
  ::close(go[0]);
  ::close(sent[1]);
  Store store;
  UipcServer server(store);
  ASSERT_TRUE(server.listen(path));
  std::thread t([&] { server.run(); });
  ::close(go[1]);
  char c;
  ASSERT_EQ(::read(sent[0], &c, 1), 1);
  ::kill(kid, SIGKILL);
  int st = 0;
  ASSERT_EQ(::waitpid(kid, &st, 0), kid);
  // Another client works, and the dead one's channel goes away.
  Runtime rt;
  auto other = UipcClient::connect(rt, path, 4);
  ASSERT_TRUE(other) << other.error().message();
  auto r = rt.block_on(other.value()->call(Op::put, "alive", "yes"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r.value().status, Status::ok);
  const auto t0 = std::chrono::steady_clock::now();
  while (server.server().channel_count() > 1 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(server.server().channel_count(), 1u);
  auto g = rt.block_on(other.value()->call(Op::get, "alive"));
  ASSERT_TRUE(g);
  EXPECT_EQ(g.value().value, "yes");
  other.value().reset();
  server.stop();
  t.join();
}

// Twin: one client closes with half a frame sent, another with pipelined requests unread;
// a third client keeps working throughout.
TEST_F(Kv, TwinClientsClosingMidRequestLeaveOthersServing) {
  Running<TwinServer> t("vanish-twin");
  auto good = TwinClient::connect(t.path);
  ASSERT_TRUE(good);
  ASSERT_TRUE(good.value()->call(Op::put, "k", "v"));
  {
    auto half = TwinClient::connect(t.path);
    ASSERT_TRUE(half);
    const auto req = make_request(Op::put, "half", std::string(1000, 'h'));
    std::vector<std::byte> frame(kFramePrefix + req.size());
    put_u32(frame.data(), static_cast<std::uint32_t>(req.size()));
    std::memcpy(frame.data() + kFramePrefix, req.data(), req.size());
    ASSERT_TRUE(half.value()->send_bytes(std::span(frame.data(), kFramePrefix + 300)));  // then gone
  }
  {
    auto greedy = TwinClient::connect(t.path);
    ASSERT_TRUE(greedy);
    std::vector<std::byte> many;
    for (int i = 0; i < 2000; ++i) {  // ~8 MB of replies it never reads
      const auto req = make_request(Op::get, "big");
      std::byte p[kFramePrefix];
      put_u32(p, static_cast<std::uint32_t>(req.size()));
      many.insert(many.end(), p, p + kFramePrefix);
      many.insert(many.end(), req.begin(), req.end());
    }
    ASSERT_TRUE(good.value()->call(Op::put, "big", std::string(4096, 'b')));
    ASSERT_TRUE(greedy.value()->send_bytes(many));
  }
  for (int i = 0; i < 100; ++i) {
    auto r = good.value()->call(Op::get, "k");
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(r.value().value, "v");
  }
  const auto t0 = std::chrono::steady_clock::now();
  while (t.server.stats().closed < 2 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(t.server.stats().closed, 2u);
  EXPECT_EQ(t.store.find("half"), nullptr);  // the partial request was never applied
}

// ---- the load generator ------------------------------------------------------------------------

TEST_F(Kv, LoadGeneratorRunsBothModesAndChecksEveryReply) {
  REQUIRE_SINGLE_THREADED();
  for (const char* mode : {"uipc", "uds-epoll"}) {
    LoadParams p;
    p.mode = mode;
    p.connections = 3;
    p.inflight = 4;
    p.seconds = 0.15;
    p.warmup_s = 0.05;
    p.keys = 500;
    p.value_bytes = 100;
    const LoadResult r = run_load(p);
    ASSERT_TRUE(r.ok) << mode << ": " << r.error;
    EXPECT_GT(r.ops, 0u) << mode;
    EXPECT_EQ(r.gets + r.puts, r.ops) << mode;
    EXPECT_GT(r.gets, r.puts) << mode;  // 90/10
    EXPECT_GT(r.p99_ns, 0) << mode;
    EXPECT_GE(r.p99_ns, r.p50_ns) << mode;
    if (std::string(mode) == "uds-epoll")  // twin clients block in read() for their replies
      EXPECT_GT(r.client_csw, 0u) << mode;
    EXPECT_GE(r.csw_per_op(), static_cast<double>(r.client_csw) / static_cast<double>(r.ops)) << mode;
  }
  {  // the idle-policy knobs reach the runtimes, and every reply is still checked
    LoadParams p;
    p.connections = 2;
    p.inflight = 4;
    p.seconds = 0.1;
    p.warmup_s = 0.05;
    p.keys = 100;
    p.server_spin_ns = 0;
    p.server_yields = 2;
    p.client_spin_ns = 0;
    p.client_yields = 1;
    const LoadResult r = run_load(p);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_GT(r.ops, 0u);
  }
  LoadParams bad;
  bad.mode = "carrier-pigeon";
  EXPECT_FALSE(run_load(bad).ok);
  bad.mode = "uipc";
  bad.connections = 0;
  EXPECT_NE(check_params(bad), "");
}

}  // namespace
