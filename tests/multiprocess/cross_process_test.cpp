// A server in a forked child process, clients in this one, talking through a Unix-socket
// rendezvous and memfd channels.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <thread>

#include <cstring>
#include <string>

#include "uipc/ipc/endpoint.hpp"
#include "uipc/ipc/peer_watch.hpp"

using namespace uipc;
using namespace uipc::ipc;

namespace {

std::string socket_path(const char* tag) {
  return "/tmp/uipc-test-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".sock";
}

// Child: an echo server that stops when it receives "quit"; exits 0 when it stopped cleanly.
[[noreturn]] void run_server_child(const std::string& path, int ready_fd) {
  Runtime rt;
  Server* self = nullptr;
  Server server(rt, [&self](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    if (req.size() == 4 && std::memcmp(req.data(), "quit", 4) == 0) self->stop();
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  self = &server;
  auto l = Listener::listen(server, path);
  if (!l) _exit(3);
  const char ok = 1;
  if (::write(ready_fd, &ok, 1) != 1) _exit(4);
  rt.block_on(server.serve());
  l.value().reset();
  _exit(0);
}

pid_t start_server(const std::string& path) {
  int p[2];
  if (::pipe(p) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    run_server_child(path, p[1]);
  }
  ::close(p[1]);
  char c = 0;
  const ssize_t n = ::read(p[0], &c, 1);
  ::close(p[0]);
  return n == 1 ? pid : -1;
}

std::span<const std::byte> bytes(const char* s) { return std::as_bytes(std::span(s, std::strlen(s))); }

}  // namespace

TEST(CrossProcess, CallsAcrossProcessesAndCleanShutdown) {
  const std::string path = socket_path("xp");
  const pid_t pid = start_server(path);
  ASSERT_GT(pid, 0);
  Runtime rt;
  constexpr int kClients = 3, kCalls = 2000;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    ChannelOptions o;
    o.capacity = 32;
    o.max_payload = 256;
    auto c = connect(rt, path, o);
    ASSERT_TRUE(c) << c.error().message();
    clients.push_back(std::move(c.value()));
  }
  int good = 0;
  auto worker = [&](Client* c, int base) -> Task<void> {
    for (int i = 0; i < kCalls; ++i) {
      std::uint64_t v = static_cast<std::uint64_t>(base) * 1'000'000 + static_cast<std::uint64_t>(i), back = 0;
      auto r = co_await c->call(std::as_bytes(std::span(&v, 1)), std::as_writable_bytes(std::span(&back, 1)));
      if (r && *r == sizeof v && back == v) ++good;
    }
  };
  for (int k = 0; k < kClients; ++k)
    for (int j = 0; j < 8; ++j) rt.spawn(worker(clients[k].get(), k * 8 + j));
  rt.run();
  EXPECT_EQ(good, kClients * 8 * kCalls);

  // "quit" stops the server: this call may or may not get its reply, later ones must fail.
  auto q = rt.block_on(clients[0]->call(bytes("quit")));
  (void)q;
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto after = rt.block_on(clients[1]->call(bytes("late")));
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error(), std::errc::connection_reset);
}

TEST(CrossProcess, ConnectErrors) {
  Runtime rt;
  auto missing = connect(rt, "/tmp/uipc-test-no-such-socket.sock");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
  ChannelOptions bad;
  bad.capacity = 3;  // not a power of two
  auto invalid = connect(rt, "/tmp/whatever.sock", bad);
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error(), std::errc::invalid_argument);
}

TEST(CrossProcess, GarbageHelloIsRefusedAndServerKeepsServing) {
  Runtime srt;
  Server server(srt, [](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  const std::string path = socket_path("garbage");
  ListenOptions lo;
  lo.handshake_ms = 200;
  auto l = Listener::listen(server, path, lo);
  ASSERT_TRUE(l) << l.error().message();
  std::thread st([&] { srt.block_on(server.serve()); });

  // A raw peer that sends junk instead of a Hello, and one that sends nothing at all.
  for (int mode = 0; mode < 2; ++mode) {
    int s = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    ASSERT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    if (mode == 0) {
      const char junk[7] = "junk!!";
      ASSERT_EQ(::send(s, junk, sizeof junk, 0), static_cast<ssize_t>(sizeof junk));
    }
    char buf[64];
    const ssize_t n = ::recv(s, buf, sizeof buf, 0);  // a refusal, or EOF after the timeout
    EXPECT_GE(n, 0);
    ::close(s);
  }
  Runtime rt;
  auto c = connect(rt, path);
  ASSERT_TRUE(c) << c.error().message();
  auto r = rt.block_on(c.value()->call(bytes("still here")));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size(), 10u);
  EXPECT_EQ(l.value()->stats().refused, 2u);
  c.value().reset();
  server.stop();
  st.join();
}

namespace {

// A child process forked at once — while this process still has one thread, so sanitizers and
// the child's own threads are safe — that waits for start() before running its body. The body
// writes one byte to `ready_fd` when it is ready. The destructor kills and reaps it.
class Child {
 public:
  template <class Body>
  explicit Child(Body body) {
    int go[2], ready[2];
    if (::pipe(go) != 0 || ::pipe(ready) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(go[1]);
      ::close(ready[0]);
      char c;
      if (::read(go[0], &c, 1) != 1) _exit(5);
      body(ready[1]);
      _exit(0);
    }
    ::close(go[0]);
    ::close(ready[1]);
    go_ = go[1];
    ready_ = ready[0];
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
    if (go_ >= 0) ::close(go_);
    if (ready_ >= 0) ::close(ready_);
  }
  // Lets the body run and waits until it says it is ready.
  bool start() {
    const char c = 1;
    char r = 0;
    return pid_ > 0 && ::write(go_, &c, 1) == 1 && ::read(ready_, &r, 1) == 1;
  }
  // Kills the child and reaps it.
  void kill() {
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int go_ = -1, ready_ = -1;
};

// A server whose handler holds "slow" requests for 10 s, so calls are pending when it is killed.
void slow_server(const std::string& path, int ready_fd) {
  Runtime rt;
  Server server(rt, [&rt](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    if (req.size() == 4 && std::memcmp(req.data(), "slow", 4) == 0) co_await rt.sleep_for(10'000'000'000);
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  auto l = Listener::listen(server, path);
  if (!l) _exit(3);
  const char ok = 1;
  if (::write(ready_fd, &ok, 1) != 1) _exit(4);
  rt.block_on(server.serve());
}

}  // namespace

TEST(PeerDeath, KilledServerFailsPendingCallsWithin100msAndClientCanReconnect) {
  const std::string path = socket_path("death");
  Child first([&](int ready) { slow_server(path, ready); });
  Child restarted([&](int ready) { slow_server(path, ready); });
  ASSERT_TRUE(first.start());
  Runtime rt;
  auto c = connect(rt, path);
  ASSERT_TRUE(c) << c.error().message();
  auto client = std::move(c.value());
  ASSERT_TRUE(rt.block_on(client->call(bytes("warm"))));  // the server is up and answering

  constexpr int kPending = 16;
  int failed = 0;
  std::uint64_t last_done = 0;
  for (int i = 0; i < kPending; ++i) {
    rt.spawn([](Client& cl, int& f, std::uint64_t& done) -> Task<void> {
      auto r = co_await cl.call(bytes("slow"));
      if (!r && r.error() == std::errc::connection_reset) ++f;
      done = Runtime::now_ns();
    }(*client, failed, last_done));
  }
  std::uint64_t killed_at = 0;
  rt.spawn([](Runtime& r, Child& victim, std::uint64_t& at) -> Task<void> {
    co_await r.sleep_for(20'000'000);  // the calls are in the server's hands now
    at = Runtime::now_ns();
    victim.kill();
  }(rt, first, killed_at));
  rt.run();
  EXPECT_EQ(failed, kPending);
  EXPECT_LT(last_done - killed_at, 100'000'000u) << "pending calls took " << (last_done - killed_at) / 1000 << " us";
  auto later = rt.block_on(client->call(bytes("later")));
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error(), std::errc::connection_reset);
  client.reset();

  // A restarted server on the same path: the client connects again and is served.
  ASSERT_TRUE(restarted.start());
  auto again = connect(rt, path);
  ASSERT_TRUE(again) << again.error().message();
  auto r = rt.block_on(again.value()->call(bytes("hello again")));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->size(), 11u);
  again.value().reset();
}

TEST(PeerDeath, KilledClientReleasesItsChannelAndOthersCarryOn) {
  const std::string path = socket_path("client-death");
  Child client([&](int ready) {  // connects, calls, then hangs until killed
    Runtime rt;
    auto c = connect(rt, path);
    if (!c || !rt.block_on(c.value()->call(bytes("hi")))) _exit(3);
    const char ok = 1;
    if (::write(ready, &ok, 1) != 1) _exit(4);
    ::pause();
  });
  Runtime srt;
  Server server(srt, [](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  auto l = Listener::listen(server, path);
  ASSERT_TRUE(l) << l.error().message();
  std::thread st([&] { srt.block_on(server.serve()); });

  ASSERT_TRUE(client.start());
  Runtime rt;
  auto mine = connect(rt, path);
  ASSERT_TRUE(mine);
  // The listener adopts a channel just after answering its client: wait until both are counted.
  for (int i = 0; i < 2000 && server.channel_count() != 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(server.channel_count(), 2u);
  const std::uint64_t t0 = Runtime::now_ns();
  client.kill();
  while (server.channel_count() != 1 && Runtime::now_ns() - t0 < 2'000'000'000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(server.channel_count(), 1u);
  EXPECT_LT(Runtime::now_ns() - t0, 100'000'000u);
  auto r = rt.block_on(mine.value()->call(bytes("still served")));
  ASSERT_TRUE(r);
  mine.value().reset();
  server.stop();
  st.join();
}

TEST(PeerDeath, APeerGoneBeforeItIsWatchedIsReportedAtOnce) {
  // A client can die (and be reaped) between its handshake and the server's pidfd_open: the
  // watch must report the death at once instead of watching nothing.
  const pid_t kid = ::fork();
  if (kid == 0) _exit(0);
  ASSERT_GT(kid, 0);
  int st = 0;
  ASSERT_EQ(::waitpid(kid, &st, 0), kid);
  int fired = 0;
  auto w = uipc::ipc::peer_watch::watch(kid, [&] { ++fired; });
  ASSERT_TRUE(w) << w.error().message();
  EXPECT_EQ(w.value(), 0u);
  EXPECT_EQ(fired, 1);
  uipc::ipc::peer_watch::cancel(w.value());  // a no-op for token 0
}
