// A bounded soak (issue 5 item 5): this process is the server (one runtime thread, a Server and
// a Listener); pre-forked client processes each connect kChannels channels and keep many calls in
// flight, with random stalls on both sides, while victims are SIGKILLed mid-traffic and replaced
// by fresh clients. Invariants: no lost, duplicated or foreign reply (each reply carries a
// checksum of its own request; the server checks each worker's sequence numbers, so a lost or
// repeated request shows too); every surviving client does exactly its calls; the server's
// channel count returns to 0 (killed clients' channels are released by the pidfd peer watch);
// requests == replies + dropped_replies; resident memory after the soak is flat against a
// measurement taken after a warm-up round of the same shape.
//
// Scale: UIPC_SOAK_CALLS = calls made by the surviving clients in all (the victims add more).
// Default 1000000 (Release: 1-2 s on 2 cores), 200000 under ASan, 50000 under TSan. The long form:
//   UIPC_SOAK_CALLS=100000000 build/release/tests/uipc_multiprocess_tests --gtest_filter=Soak.*
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "uipc/ipc/endpoint.hpp"

using namespace uipc;
using namespace uipc::ipc;

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr std::uint64_t kDefaultCalls = 50'000;  // ~20k calls/s under TSan on 2 cores
#elif defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t kDefaultCalls = 200'000;  // ~250k calls/s under ASan+UBSan
#else
constexpr std::uint64_t kDefaultCalls = 1'000'000;
#endif

constexpr std::uint32_t kChannels = 4;    // per client process
constexpr std::uint32_t kWorkers = 24;    // coroutines calling on each channel (> max_inflight)
constexpr int kSurvivors = 3;             // clients per round that run to the end
constexpr int kWarmVictims = 1, kMainVictims = 4;
constexpr int kPool = 2 * kSurvivors + kWarmVictims + kMainVictims;

std::uint64_t soak_calls() {
  if (const char* e = std::getenv("UIPC_SOAK_CALLS")) {
    const unsigned long long v = std::strtoull(e, nullptr, 10);
    if (v >= 1000) return v;
  }
  return kDefaultCalls;
}

std::string socket_path(const char* tag) {
  return "/tmp/uipc-test-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".sock";
}

std::uint64_t fnv(const void* p, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// A request: this header, then body_len bytes derived from (child, seq). The reply: the header
// again and fnv() of the whole request as the server received it.
struct Hdr {
  std::uint32_t child, chan, worker, body_len;
  std::uint64_t seq, body_sum;
};
static_assert(sizeof(Hdr) == 32);
constexpr std::uint32_t kReplyLen = sizeof(Hdr) + 8;
constexpr std::uint32_t kMaxPayload = 256;

struct Totals {
  std::uint64_t good = 0, bad = 0, errors = 0;
};

ChannelOptions channel_options() {
  ChannelOptions o;
  o.capacity = 8;  // fewer entries than calls in flight: full rings and space waits happen
  o.max_payload = kMaxPayload;
  o.max_inflight = 16;  // fewer than kWorkers: callers also wait for a free op
  return o;
}

// A client process body: connects kChannels channels, says ready, then runs `calls` calls
// (forever when 0), checking every reply, and writes its Totals. A victim (calls == 0) exits
// with status 7 at its first bad reply or error, so the parent sees it was not killed cleanly.
[[noreturn]] void client_body(const std::string& path, std::uint32_t child, std::uint64_t calls, int out) {
  Runtime rt;
  std::vector<std::unique_ptr<Client>> clients;
  for (std::uint32_t k = 0; k < kChannels; ++k) {
    auto c = connect(rt, path, channel_options());
    if (!c) _exit(3);
    clients.push_back(std::move(c.value()));
  }
  const char ok = 1;
  if (::write(out, &ok, 1) != 1) _exit(4);
  Totals t;
  const bool forever = calls == 0;
  auto worker = [&](Client* c, std::uint32_t chan, std::uint32_t w, std::uint64_t n) -> Task<void> {
    Rng rng{0x9E3779B97F4A7C15ull ^ (std::uint64_t{child} << 40) ^ (std::uint64_t{chan} << 20) ^ w};
    std::array<std::byte, kMaxPayload> req{};
    std::array<std::byte, kMaxPayload> rep{};
    for (std::uint64_t seq = 0; forever || seq < n; ++seq) {
      const std::uint64_t r = rng.next();
      Hdr h{child, chan, w, static_cast<std::uint32_t>(r % (kMaxPayload - sizeof(Hdr) + 1)), seq, 0};
      auto* body = reinterpret_cast<unsigned char*>(req.data() + sizeof(Hdr));
      for (std::uint32_t i = 0; i < h.body_len; ++i) body[i] = static_cast<unsigned char>(seq * 31 + i * 7 + child);
      h.body_sum = fnv(body, h.body_len);
      std::memcpy(req.data(), &h, sizeof h);
      const std::size_t len = sizeof(Hdr) + h.body_len;
      const std::uint64_t want = fnv(req.data(), len);
      auto res = co_await c->call(std::span(req.data(), len), std::span(rep));
      if (!res) {
        ++t.errors;
        if (forever) _exit(7);
        co_return;  // the channel is gone; the missing calls show in the totals
      }
      std::uint64_t got = 0;
      std::memcpy(&got, rep.data() + sizeof(Hdr), 8);
      if (*res == kReplyLen && std::memcmp(rep.data(), &h, sizeof h) == 0 && got == want) {
        ++t.good;
      } else {
        ++t.bad;
        if (forever) _exit(7);
      }
      // Client-side stalls: rarely block the whole runtime thread (the server's response ring
      // fills), sometimes sleep this coroutine, often yield.
      if (r % 4096 == 1) ::usleep(static_cast<useconds_t>((r >> 20) % 1000));
      else if (r % 256 == 2) co_await rt.sleep_for(static_cast<std::int64_t>((r >> 20) % 100'000));
      else if (r % 32 == 3) co_await rt.yield();
    }
  };
  const std::uint64_t per = calls / (kChannels * kWorkers), extra = calls % (kChannels * kWorkers);
  for (std::uint32_t k = 0; k < kChannels; ++k)
    for (std::uint32_t w = 0; w < kWorkers; ++w) {
      const std::uint32_t i = k * kWorkers + w;
      rt.spawn(worker(clients[k].get(), k, w, per + (i < extra ? 1 : 0)));
    }
  rt.run();
  clients.clear();
  if (::write(out, &t, sizeof t) != static_cast<ssize_t>(sizeof t)) _exit(6);
  _exit(0);
}

// A child forked at once — while this process still has one thread (TSan, and the child's own
// threads, need that) — that waits for start() before running its body.
class Proc {
 public:
  template <class Body>
  explicit Proc(Body body) {
    int go[2], out[2];
    if (::pipe(go) != 0 || ::pipe(out) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed parent
      ::close(go[1]);
      ::close(out[0]);
      char c;
      if (::read(go[0], &c, 1) != 1) _exit(5);
      body(out[1]);
      _exit(0);
    }
    ::close(go[0]);
    ::close(out[1]);
    go_ = go[1];
    out_ = out[0];
  }
  ~Proc() {
    if (pid_ > 0) kill();
    if (go_ >= 0) ::close(go_);
    if (out_ >= 0) ::close(out_);
  }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  bool start() {
    const char c = 1;
    char r = 0;
    return pid_ > 0 && ::write(go_, &c, 1) == 1 && read_all(&r, 1);
  }
  // Reads exactly n bytes from the child, failing after `stall_ms` without `progress` moving.
  template <class Progress>
  bool read_result(Totals& t, Progress progress, int stall_ms = 30'000) {
    auto* p = reinterpret_cast<char*>(&t);
    std::size_t got = 0;
    std::uint64_t last = progress();
    int idle = 0;
    while (got < sizeof t) {
      pollfd pf{out_, POLLIN, 0};
      const int n = ::poll(&pf, 1, 100);
      if (n == 0) {
        const std::uint64_t now = progress();
        idle = now == last ? idle + 100 : 0;
        last = now;
        if (idle >= stall_ms) return false;
        continue;
      }
      const ssize_t r = ::read(out_, p + got, sizeof t - got);
      if (r <= 0) return false;
      got += static_cast<std::size_t>(r);
    }
    return true;
  }
  // SIGKILLs and reaps; returns the wait status.
  int kill() {
    ::kill(pid_, SIGKILL);
    return reap();
  }
  int reap() {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return st;
  }
  bool exited_on_its_own() {
    int st = 0;
    return ::waitpid(pid_, &st, WNOHANG) == pid_ ? (pid_ = -1, true) : false;
  }

 private:
  bool read_all(char* p, std::size_t n) {
    while (n > 0) {
      const ssize_t r = ::read(out_, p, n);
      if (r <= 0) return false;
      p += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
  pid_t pid_ = -1;
  int go_ = -1, out_ = -1;
};

long vm_rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

}  // namespace

TEST(Soak, ManyChannelsWithStallsKillsAndRestartsLoseNothingAndStayFlat) {
  const std::uint64_t total = soak_calls();
  const std::uint64_t warm_per = std::max<std::uint64_t>(total / 10 / kSurvivors, kChannels * kWorkers);
  const std::uint64_t main_per = std::max<std::uint64_t>((total - total / 10) / kSurvivors, kChannels * kWorkers);
  const std::string path = socket_path("soak");

  // Every client process is forked here, before this process starts any thread. Children
  // 0..kSurvivors-1 and the next kWarmVictims form the warm-up round; the rest the main round.
  std::vector<std::unique_ptr<Proc>> procs;
  std::vector<std::uint64_t> calls_of(kPool, 0);
  for (int i = 0; i < kPool; ++i) {
    const bool warm = i < kSurvivors + kWarmVictims;
    const int in_round = warm ? i : i - (kSurvivors + kWarmVictims);
    calls_of[i] = in_round < kSurvivors ? (warm ? warm_per : main_per) : 0;  // 0: a victim
    const auto child = static_cast<std::uint32_t>(i);
    const std::uint64_t calls = calls_of[i];
    procs.push_back(std::make_unique<Proc>([&path, child, calls](int out) { client_body(path, child, calls, out); }));
  }

  // Server-side checks, touched by the handler on the server thread only (counters read by the
  // test thread are atomics).
  std::vector<std::uint64_t> next_seq(static_cast<std::size_t>(kPool) * kChannels * kWorkers, 0);
  std::unique_ptr<std::atomic<std::uint64_t>[]> handled_by(new std::atomic<std::uint64_t>[kPool]);
  for (int i = 0; i < kPool; ++i) handled_by[i] = 0;
  std::atomic<std::uint64_t> handled{0}, server_bad{0};
  Rng srng{0xD1B54A32D192ED03ull};

  Runtime srt;
  Server server(srt, [&](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    Hdr h{};
    bool ok = req.size() >= sizeof h;
    if (ok) std::memcpy(&h, req.data(), sizeof h);
    ok = ok && h.child < static_cast<std::uint32_t>(kPool) && h.chan < kChannels && h.worker < kWorkers &&
         h.body_len == req.size() - sizeof h && fnv(req.data() + sizeof h, h.body_len) == h.body_sum;
    if (ok) {
      std::uint64_t& want = next_seq[(static_cast<std::size_t>(h.child) * kChannels + h.chan) * kWorkers + h.worker];
      ok = h.seq == want;  // not lost, not repeated, in this worker's order
      want = h.seq + 1;
      handled_by[h.child].fetch_add(1, std::memory_order_relaxed);
    }
    if (!ok) server_bad.fetch_add(1, std::memory_order_relaxed);
    handled.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t sum = fnv(req.data(), req.size());  // of the request as received
    // Server-side stalls: some handlers sleep (replies overtake each other), more yield.
    const std::uint64_t r = srng.next();
    if (r % 64 == 0) co_await srt.sleep_for(static_cast<std::int64_t>((r >> 16) % 200'000));
    else if (r % 16 == 1) co_await srt.yield();
    std::memcpy(reply.data(), req.data(), sizeof h);
    std::memcpy(reply.data() + sizeof h, &sum, 8);
    co_return kReplyLen;
  });
  auto l = Listener::listen(server, path);
  ASSERT_TRUE(l) << l.error().message();
  std::thread st([&] { srt.block_on(server.serve()); });
  struct StopAtExit {
    Server& s;
    std::thread& t;
    ~StopAtExit() {
      s.stop();
      if (t.joinable()) t.join();
    }
  } stop_at_exit{server, st};

  const auto progress = [&] { return handled.load(std::memory_order_relaxed); };
  const auto wait_no_channels = [&] {
    const std::uint64_t t0 = Runtime::now_ns();
    while (server.channel_count() != 0 && Runtime::now_ns() - t0 < 5'000'000'000ull)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return server.channel_count();
  };
  Rng trng{0x2545F4914F6CDD1Dull};
  std::uint64_t victims_killed = 0;

  // One round: start the survivors, then kill each victim after about `kill_after` of its calls
  // and start the next; then collect the survivors' totals.
  const auto round = [&](int first, int victims, std::uint64_t per) {
    for (int i = first; i < first + kSurvivors; ++i) ASSERT_TRUE(procs[i]->start()) << "client " << i;
    const std::uint64_t kill_after = std::max<std::uint64_t>(per / (victims + 1), 1000);
    for (int v = first + kSurvivors; v < first + kSurvivors + victims; ++v) {
      ASSERT_TRUE(procs[v]->start()) << "victim " << v;
      std::uint64_t last = progress();
      int idle_ms = 0;
      while (handled_by[v].load(std::memory_order_relaxed) < kill_after) {
        ASSERT_FALSE(procs[v]->exited_on_its_own()) << "victim " << v << " saw a bad reply or an error";
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        const std::uint64_t now = progress();
        idle_ms = now == last ? idle_ms + 1 : 0;
        last = now;
        ASSERT_LT(idle_ms, 30'000) << "no progress for 30 s";
      }
      std::this_thread::sleep_for(std::chrono::microseconds(trng.next() % 10'000));  // mid-traffic
      ASSERT_FALSE(procs[v]->exited_on_its_own()) << "victim " << v << " saw a bad reply or an error";
      const int status = procs[v]->kill();
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "victim " << v << " status " << status;
      ++victims_killed;
    }
    for (int i = first; i < first + kSurvivors; ++i) {
      Totals t;
      ASSERT_TRUE(procs[i]->read_result(t, progress)) << "client " << i << " gave no totals";
      const int status = procs[i]->reap();
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "client " << i << " status " << status;
      EXPECT_EQ(t.good, calls_of[i]) << "client " << i;
      EXPECT_EQ(t.bad, 0u) << "client " << i;
      EXPECT_EQ(t.errors, 0u) << "client " << i;
      EXPECT_EQ(handled_by[i].load(), calls_of[i]) << "server saw client " << i << "'s requests";
    }
    EXPECT_EQ(wait_no_channels(), 0u) << "channels not released";
  };

  const std::uint64_t t0 = Runtime::now_ns();
  round(0, kWarmVictims, warm_per);
  if (HasFatalFailure()) return;
  const long rss_before = vm_rss_kib();
  const std::uint64_t t1 = Runtime::now_ns();
  round(kSurvivors + kWarmVictims, kMainVictims, main_per);
  if (HasFatalFailure()) return;
  const std::uint64_t t2 = Runtime::now_ns();
  const long rss_after = vm_rss_kib();

  server.stop();
  st.join();
  const ServerStats s = server.stats();  // the server thread has finished
  EXPECT_EQ(server_bad.load(), 0u);
  EXPECT_EQ(s.requests, handled.load());
  EXPECT_EQ(s.requests, s.replies + s.dropped_replies);
  EXPECT_EQ(s.protocol_errors, 0u);
  EXPECT_EQ(l.value()->stats().accepted, static_cast<std::uint64_t>(kPool) * kChannels);
  EXPECT_EQ(l.value()->stats().refused, 0u);
  EXPECT_EQ(victims_killed, static_cast<std::uint64_t>(kWarmVictims + kMainVictims));

  // Flat memory: the warm-up round had the same shape (clients, channels, a kill), so every
  // pool and table already reached its size; what remains is allocator noise. 5% of the
  // before figure, but at least 512 KiB: the server process is only ~4.3 MiB resident (Release),
  // where 5% is ~50 pages; the short form measured +88..+192 KiB (pages first touched in the
  // main round: malloc arena tails, thread stacks), and that does not grow with the call count
  // (+24 KiB after 5 million calls, +12 and +28 KiB in two runs of 100 million).
  // Sanitizer builds only report it: ASan keeps freed blocks resident in its quarantine (up to
  // 256 MiB by default; its LeakSanitizer checks for leaks at exit instead) and TSan's shadow
  // and trace memory grows with the addresses and time it has seen.
  EXPECT_GT(rss_before, 0);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  const long slack = std::max(rss_before / 20, 512L);
  EXPECT_LE(rss_after, rss_before + slack) << "resident memory grew";
#endif
  const double all_s = static_cast<double>(t2 - t0) / 1e9;
  std::printf("[soak] survivors' calls %llu, server handled %llu (victims' included; %llu replies dropped to killed "
              "clients) in %.2f s (%.0f calls/s; main round %.2f s); victims killed %llu; "
              "VmRSS after warm-up %ld KiB, after soak %ld KiB (%+ld KiB)\n",
              static_cast<unsigned long long>(kSurvivors * (warm_per + main_per)),
              static_cast<unsigned long long>(s.requests), static_cast<unsigned long long>(s.dropped_replies), all_s,
              static_cast<double>(s.requests) / all_s, static_cast<double>(t2 - t1) / 1e9,
              static_cast<unsigned long long>(victims_killed), rss_before, rss_after, rss_after - rss_before);
}
