// apps/kv/kv_loadgen.cpp — see kv_loadgen.hpp.
#include "kv/kv_loadgen.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <thread>

#include "kv/kv_client.hpp"
#include "kv/kv_server.hpp"
#include "kv/kv_store.hpp"

namespace uipc::apps::kv {
namespace {

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Context switches of this process so far (all its threads): voluntary (it blocked: a futex
// wait, a blocking read, epoll_wait) and involuntary (the scheduler preempted it).
struct Csw {
  std::uint64_t vol = 0, invol = 0;
  Csw operator-(const Csw& o) const { return {vol - o.vol, invol - o.invol}; }
};
Csw csw_now() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return {static_cast<std::uint64_t>(ru.ru_nvcsw), static_cast<std::uint64_t>(ru.ru_nivcsw)};
}

void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);  // best effort: the CLI checked the CPU exists
}

// A log-linear latency histogram in plain memory (it lives in the shared block): values below
// 256 ns exact, then 128 buckets per power of two (< 0.8% relative error), up to ~2^37 ns.
constexpr unsigned kSubBits = 8, kHalf = 1u << (kSubBits - 1), kMaxShift = 29;
constexpr std::size_t kBuckets = (kMaxShift + 2) * kHalf;

struct Hist {
  std::uint64_t b[kBuckets];
  std::uint64_t count, max;

  static std::size_t bucket_of(std::uint64_t v) {
    const unsigned width = static_cast<unsigned>(std::bit_width(v));
    if (width <= kSubBits) return static_cast<std::size_t>(v);
    const unsigned shift = width - kSubBits;
    if (shift > kMaxShift) return kBuckets - 1;
    return (static_cast<std::size_t>(shift) << (kSubBits - 1)) + static_cast<std::size_t>(v >> shift);
  }
  static double bucket_mid(std::size_t i) {
    if (i < (std::size_t{1} << kSubBits)) return static_cast<double>(i);
    const std::size_t shift = (i >> (kSubBits - 1)) - 1;
    const std::size_t sub = i - (shift << (kSubBits - 1));
    return std::ldexp(static_cast<double>(sub) + 0.5, static_cast<int>(shift));
  }
  void record(std::uint64_t ns) {
    ++b[bucket_of(ns)];
    ++count;
    max = std::max(max, ns);
  }
  void merge(const Hist& o) {
    for (std::size_t i = 0; i < kBuckets; ++i) b[i] += o.b[i];
    count += o.count;
    max = std::max(max, o.max);
  }
  double percentile(double p) const {
    if (count == 0) return 0;
    const auto want = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += b[i];
      if (seen >= std::max<std::uint64_t>(want, 1)) return std::min(bucket_mid(i), static_cast<double>(max));
    }
    return static_cast<double>(max);
  }
};

struct ClientSlot {
  std::uint64_t ops, gets, puts, kernel;
  Csw csw;
  double cpu_s;
  Hist lat;
  char error[200];
};

struct Shared {
  std::atomic<unsigned> ready;
  std::atomic<int> go;      // 1: start, -1: give up
  std::atomic<std::uint64_t> start_ns, from_ns, to_ns;
  double server_cpu_s;
  std::uint64_t server_kernel;
  Csw server_csw;
  char server_error[200];
  ClientSlot clients[kMaxConnections];
};

void set_error(char (&dst)[200], const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(dst, sizeof dst, fmt, ap);
  va_end(ap);
}

// ---- the server process -------------------------------------------------------------------

// Waits (polling stop_fd) until `deadline`; true when stop_fd became readable first.
bool wait_until(int stop_fd, std::uint64_t deadline) {
  for (;;) {
    const std::uint64_t t = now_ns();
    if (deadline != 0 && t >= deadline) return false;
    const int ms = deadline == 0 ? 1 : static_cast<int>(std::min<std::uint64_t>((deadline - t) / 1'000'000 + 1, 1000));
    pollfd pfd{stop_fd, POLLIN, 0};
    if (::poll(&pfd, 1, ms) > 0) return true;
    if (deadline == 0) return false;
  }
}

template <class Server, class KernelFn>
void sample_then_stop(Shared* sh, int stop_fd, Server& s, KernelFn kernel) {
  // Wait for the window (or a stop), sample CPU and kernel entries at both edges, then wait for stop.
  bool stop = false;
  while (!stop && sh->to_ns.load(std::memory_order_acquire) == 0) stop = wait_until(stop_fd, 0);
  if (!stop && !(stop = wait_until(stop_fd, sh->from_ns.load()))) {
    const double c0 = cpu_now();
    const std::uint64_t k0 = kernel();
    const Csw s0 = csw_now();
    if (!(stop = wait_until(stop_fd, sh->to_ns.load()))) {
      sh->server_cpu_s = cpu_now() - c0;
      sh->server_kernel = kernel() - k0;
      sh->server_csw = csw_now() - s0;
    }
  }
  if (!stop) {
    pollfd pfd{stop_fd, POLLIN, 0};
    while (::poll(&pfd, 1, -1) < 0 && errno == EINTR) {
    }
  }
  s.stop();
}

[[noreturn]] void server_main(const LoadParams& p, Shared* sh, const std::string& path, int ready_fd, int stop_fd) {
  pin(p.cpus.empty() ? -1 : p.cpus[0]);
  Store store(std::max<std::size_t>(p.keys, Store::kDefaultMaxKeys));
  store.preload(p.keys, p.value_bytes);
  auto serve = [&](auto& s, auto kernel) {
    if (auto r = s.listen(path); !r) {
      set_error(sh->server_error, "server: listen on %s: %s", path.c_str(), r.error().message().c_str());
      ::_exit(1);
    }
    std::thread sampler([&] { sample_then_stop(sh, stop_fd, s, kernel); });
    const char c = 'r';
    [[maybe_unused]] auto n = ::write(ready_fd, &c, 1);
    s.run();
    sampler.join();
  };
  if (p.mode == "uipc") {
    RuntimeOptions ro;
    if (p.server_spin_ns >= 0) ro.spin_ns = p.server_spin_ns;
    if (p.server_yields >= 0) ro.yields = static_cast<unsigned>(p.server_yields);
    UipcServer s(store, ro);
    serve(s, [&s] { return s.runtime().counters().kernel_entries.get(); });
  } else {
    TwinServer s(store);
    serve(s, [&s] { return s.syscalls(); });
  }
  ::_exit(0);
}

// ---- the client processes -------------------------------------------------------------------

// Per-process load state: the op mix, the checks, the window bookkeeping.
struct Load {
  const LoadParams& p;
  Shared* sh;
  ClientSlot& slot;
  std::vector<std::string> keys;
  std::uint64_t rng;
  std::uint64_t from = 0, to = 0;
  int phase = 0;          // 0 warm-up, 1 measuring, 2 done
  double cpu0 = 0;
  std::uint64_t k0 = 0;
  Csw csw0;
  bool failed = false;

  Load(const LoadParams& lp, Shared* s, unsigned idx) : p(lp), sh(s), slot(s->clients[idx]), rng(0x9e3779b97f4a7c15ull * (idx + 1)) {
    keys.reserve(p.keys);
    for (std::size_t i = 0; i < p.keys; ++i) keys.push_back(key_name(i));
  }
  std::uint64_t next() {  // xorshift64*
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
  }
  // Encodes the next request into `out`; returns its length and what to expect.
  std::size_t make(std::byte* out, std::size_t& key, bool& is_get) {
    const std::uint64_t r = next();
    key = static_cast<std::size_t>((r >> 8) % p.keys);
    is_get = (r & 0xff) * 100 < static_cast<std::uint64_t>(p.get_percent) * 256;
    if (is_get) return encode_request(std::span(out, kMaxRequest), Op::get, keys[key], {});
    // A put of value_for(key): the header and key, then the value written in place (no copy).
    const std::string& k = keys[key];
    encode_request(std::span(out, kMaxRequest), Op::put, k, {});
    put_u32(out + 4, static_cast<std::uint32_t>(p.value_bytes));
    fill_value(key, reinterpret_cast<char*>(out) + kHeaderBytes + k.size(), p.value_bytes);
    return kHeaderBytes + k.size() + p.value_bytes;
  }
  bool check(const std::byte* rep, std::size_t n, std::size_t key, bool is_get) {
    const auto st = n >= kHeaderBytes ? static_cast<Status>(std::to_integer<std::uint8_t>(rep[0])) : Status::malformed;
    const std::size_t vlen = n >= kHeaderBytes ? get_u32(rep + 4) : 0;
    const char* v = reinterpret_cast<const char*>(rep + kHeaderBytes);
    bool good = st == Status::ok && n == kHeaderBytes + vlen && vlen == (is_get ? p.value_bytes : 0);
    if (good && is_get && vlen > 0)
      good = v[0] == static_cast<char>('a' + (key * 7) % 26) && v[vlen - 1] == static_cast<char>('a' + (key * 7 + vlen - 1) % 26);
    if (!good && !failed) {
      failed = true;
      set_error(slot.error, "%s %s: status %s, %zu value bytes (expected ok, %zu)", is_get ? "get" : "put",
                keys[key].c_str(), status_name(st), vlen, is_get ? p.value_bytes : std::size_t{0});
    }
    return good;
  }
  // A call completed at t1 after lat ns. Returns false once the load should stop issuing.
  template <class KernelFn>
  bool done(std::uint64_t t1, std::uint64_t lat, bool is_get, KernelFn kernel) {
    if (phase == 0 && t1 >= from) {
      phase = 1;
      cpu0 = cpu_now();
      k0 = kernel();
      csw0 = csw_now();
    }
    if (phase == 1 && t1 >= to) {
      phase = 2;
      slot.cpu_s = cpu_now() - cpu0;
      slot.kernel = kernel() - k0;
      slot.csw = csw_now() - csw0;
    }
    if (phase == 1) {
      ++slot.ops;
      ++(is_get ? slot.gets : slot.puts);
      slot.lat.record(lat);
    }
    return phase < 2 && !failed;
  }
  template <class KernelFn>
  void finish(KernelFn kernel) {
    if (phase == 1) {  // stalled past the window's end: close the interval now
      slot.cpu_s = cpu_now() - cpu0;
      slot.kernel = kernel() - k0;
      slot.csw = csw_now() - csw0;
    }
  }
  bool wait_go() {
    sh->ready.fetch_add(1);
    const std::uint64_t give_up = now_ns() + 30'000'000'000ull;
    for (;;) {
      const int g = sh->go.load(std::memory_order_acquire);
      if (g != 0) {
        if (g < 0) return false;
        break;
      }
      if (now_ns() > give_up) return false;
      ::usleep(200);
    }
    from = sh->from_ns.load();
    to = sh->to_ns.load();
    const std::uint64_t start = sh->start_ns.load();
    while (now_ns() < start) {
    }
    return true;
  }
};

[[noreturn]] void uipc_client_main(const LoadParams& p, Shared* sh, unsigned idx, const std::string& path) {
  RuntimeOptions ro;
  if (p.client_spin_ns >= 0) ro.spin_ns = p.client_spin_ns;
  if (p.client_yields >= 0) ro.yields = static_cast<unsigned>(p.client_yields);
  Runtime rt(ro);
  Load load(p, sh, idx);
  auto c = UipcClient::connect(rt, path, p.inflight);
  if (!c) {
    set_error(load.slot.error, "connect: %s", c.error().message().c_str());
    sh->ready.fetch_add(1);
    ::_exit(1);
  }
  UipcClient& client = *c.value();
  if (!load.wait_go()) ::_exit(1);
  auto kernel = [&rt] { return rt.counters().kernel_entries.get(); };
  bool stop = false;
  for (unsigned w = 0; w < p.inflight; ++w)
    rt.spawn([](Load& ld, UipcClient& cl, bool& stp, decltype(kernel) kern) -> Task<void> {
      auto req = std::make_unique_for_overwrite<std::byte[]>(kMaxRequest);
      auto rep = std::make_unique_for_overwrite<std::byte[]>(kMaxResponse);
      // One clock read per call: the time a reply was read also starts the next call (it then
      // includes building the request, as the twin's per-batch stamp does).
      std::uint64_t t0 = now_ns();
      while (!stp) {
        std::size_t key;
        bool is_get;
        const std::size_t n = ld.make(req.get(), key, is_get);
        auto r = co_await cl.call_raw(std::span<const std::byte>(req.get(), n), std::span(rep.get(), kMaxResponse));
        const std::uint64_t t1 = now_ns();
        if (!r) {
          if (!ld.failed) set_error(ld.slot.error, "call: %s", r.error().message().c_str());
          ld.failed = stp = true;
          co_return;
        }
        ld.check(rep.get(), r.value(), key, is_get);
        if (!ld.done(t1, t1 - t0, is_get, kern)) stp = true;
        t0 = t1;
      }
    }(load, client, stop, kernel));
  rt.run();
  load.finish(kernel);
  c.value().reset();
  ::_exit(load.failed ? 1 : 0);
}

[[noreturn]] void twin_client_main(const LoadParams& p, Shared* sh, unsigned idx, const std::string& path) {
  Load load(p, sh, idx);
  auto c = TwinClient::connect(path);
  if (!c) {
    set_error(load.slot.error, "connect: %s", c.error().message().c_str());
    sh->ready.fetch_add(1);
    ::_exit(1);
  }
  const int fd = c.value()->fd();
  std::uint64_t syscalls = 0;
  auto kernel = [&syscalls] { return syscalls; };
  if (!load.wait_go()) ::_exit(1);

  struct Pending {
    std::uint64_t t0;
    std::size_t key;
    bool is_get;
  };
  std::vector<Pending> fifo(p.inflight);  // ring of requests in flight, in order
  std::size_t head = 0, outstanding = 0;
  std::vector<std::byte> out((kFramePrefix + kMaxRequest) * p.inflight);
  std::vector<std::byte> in(std::max<std::size_t>(64 * 1024, 2 * (kFramePrefix + kMaxResponse)));
  std::size_t in_len = 0;
  bool issuing = true;

  auto issue = [&](std::size_t k) {  // k new requests, written with one write()
    std::size_t len = 0;
    const std::uint64_t t0 = now_ns();
    for (std::size_t i = 0; i < k; ++i) {
      Pending& pd = fifo[(head + outstanding) % p.inflight];
      const std::size_t n = load.make(out.data() + len + kFramePrefix, pd.key, pd.is_get);
      put_u32(out.data() + len, static_cast<std::uint32_t>(n));
      len += kFramePrefix + n;
      pd.t0 = t0;
      ++outstanding;
    }
    std::size_t off = 0;
    while (off < len) {
      ++syscalls;
      const ssize_t w = ::send(fd, out.data() + off, len - off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        set_error(load.slot.error, "send: %s", std::strerror(errno));
        return false;
      }
      off += static_cast<std::size_t>(w);
    }
    return true;
  };

  bool ok = issue(p.inflight);
  while (ok && outstanding > 0) {
    ++syscalls;
    const ssize_t n = ::read(fd, in.data() + in_len, in.size() - in_len);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      set_error(load.slot.error, "read: %s", n == 0 ? "server closed the connection" : std::strerror(errno));
      ok = false;
      break;
    }
    const std::uint64_t t1 = now_ns();
    in_len += static_cast<std::size_t>(n);
    std::size_t pos = 0, answered = 0;
    while (in_len - pos >= kFramePrefix) {
      const std::uint32_t len = get_u32(in.data() + pos);
      if (len > kMaxResponse) {
        set_error(load.slot.error, "response frame of %u bytes", len);
        ok = false;
        break;
      }
      if (in_len - pos < kFramePrefix + len) break;
      const Pending pd = fifo[head];
      head = (head + 1) % p.inflight;
      --outstanding;
      ++answered;
      load.check(in.data() + pos + kFramePrefix, len, pd.key, pd.is_get);
      if (!load.done(t1, t1 - pd.t0, pd.is_get, kernel)) issuing = false;
      pos += kFramePrefix + len;
    }
    std::memmove(in.data(), in.data() + pos, in_len - pos);
    in_len -= pos;
    if (ok && issuing && answered > 0) ok = issue(answered);
  }
  load.finish(kernel);
  c.value().reset();
  ::_exit(ok && !load.failed ? 0 : 1);
}

// ---- the parent ------------------------------------------------------------------------------

// waitpid with a deadline; kills the child when it passes. Returns the wait status or -1.
int reap(pid_t pid, std::uint64_t deadline) {
  int st = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0 && errno != EINTR) return -1;
    if (now_ns() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1;
    }
    ::usleep(1000);
  }
}

std::string describe_exit(int st) {
  if (st == -1) return "did not finish in time (killed)";
  if (WIFSIGNALED(st)) return std::string("killed by signal ") + std::to_string(WTERMSIG(st));
  return "exit status " + std::to_string(WEXITSTATUS(st));
}

}  // namespace

std::string check_params(const LoadParams& p) {
  if (p.mode != "uipc" && p.mode != "uds-epoll") return "mode '" + p.mode + "' is not uipc or uds-epoll";
  if (p.connections < 1 || p.connections > kMaxConnections)
    return "connections must be 1.." + std::to_string(kMaxConnections);
  if (p.inflight < 1 || p.inflight > kMaxLoadInflight) return "inflight must be 1.." + std::to_string(kMaxLoadInflight);
  if (!(p.seconds > 0 && p.seconds <= 3600)) return "seconds must be in (0, 3600]";
  if (!(p.warmup_s >= 0 && p.warmup_s <= 60)) return "warm-up must be in [0, 60] seconds";
  if (p.value_bytes > kMaxValue) return "value bytes must be 0.." + std::to_string(kMaxValue);
  if (p.keys < 1 || p.keys > 10'000'000) return "keys must be 1..10000000";
  // A twin client writes its whole window with one blocking send before it reads; the server stops
  // reading a connection with 1 MiB of replies pending, so a larger window could stall both.
  if (static_cast<std::uint64_t>(p.inflight) * (kFramePrefix + kHeaderBytes + p.value_bytes) > (1u << 20))
    return "inflight x value bytes must stay within 1 MiB per connection (the twin's reply backlog)";
  if (p.get_percent > 100) return "get percent must be 0..100";
  sockaddr_un a{};
  if (p.socket_dir.size() + 40 >= sizeof a.sun_path) return "socket directory path too long";
  return {};
}

LoadResult run_load(const LoadParams& p) {
  LoadResult res;
  if (std::string e = check_params(p); !e.empty()) {
    res.error = e;
    return res;
  }
  static unsigned serial = 0;
  const std::string path = p.socket_dir + "/uipc-kv-" + std::to_string(::getpid()) + "-" + std::to_string(serial++) + ".sock";

  void* mem = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    res.error = std::string("mmap: ") + std::strerror(errno);
    return res;
  }
  Shared* sh = new (mem) Shared();  // zero pages: every counter and histogram starts at 0

  int ready_pipe[2], stop_pipe[2];
  if (::pipe2(ready_pipe, O_CLOEXEC) != 0 || ::pipe2(stop_pipe, O_CLOEXEC) != 0) {
    res.error = std::string("pipe: ") + std::strerror(errno);
    ::munmap(mem, sizeof(Shared));
    return res;
  }
  std::fflush(nullptr);
  const pid_t server = ::fork();
  if (server == 0) {
    ::close(ready_pipe[0]);
    ::close(stop_pipe[1]);
    server_main(p, sh, path, ready_pipe[1], stop_pipe[0]);
  }
  ::close(ready_pipe[1]);
  ::close(stop_pipe[0]);
  std::vector<pid_t> clients;
  auto fail = [&](std::string why) {
    sh->go.store(-1);
    res.error = std::move(why);
  };

  char c = 0;
  pollfd pfd{ready_pipe[0], POLLIN, 0};
  if (server < 0) {
    fail(std::string("fork: ") + std::strerror(errno));
  } else if (::poll(&pfd, 1, 60'000) <= 0 || ::read(ready_pipe[0], &c, 1) != 1) {
    fail(sh->server_error[0] ? sh->server_error : "server: did not start listening");
  } else {
    for (unsigned i = 0; i < p.connections; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(ready_pipe[0]);
        ::close(stop_pipe[1]);
        if (p.cpus.size() == 1) pin(p.cpus[0]);
        if (p.cpus.size() > 1) pin(p.cpus[1 + i % (p.cpus.size() - 1)]);
        if (p.mode == "uipc") uipc_client_main(p, sh, i, path);
        twin_client_main(p, sh, i, path);
      }
      if (pid < 0) {
        fail(std::string("fork: ") + std::strerror(errno));
        break;
      }
      clients.push_back(pid);
    }
    const std::uint64_t ready_deadline = now_ns() + 30'000'000'000ull;
    while (res.error.empty() && sh->ready.load() < p.connections) {
      if (now_ns() > ready_deadline) fail("clients did not connect within 30 s");
      ::usleep(500);
    }
    for (unsigned i = 0; i < clients.size() && res.error.empty(); ++i)
      if (sh->clients[i].error[0]) fail("client " + std::to_string(i) + ": " + sh->clients[i].error);
    if (res.error.empty()) {
      const std::uint64_t start = now_ns() + 2'000'000;
      sh->start_ns.store(start);
      sh->from_ns.store(start + static_cast<std::uint64_t>(p.warmup_s * 1e9));
      sh->to_ns.store(start + static_cast<std::uint64_t>((p.warmup_s + p.seconds) * 1e9), std::memory_order_release);
      sh->go.store(1, std::memory_order_release);
    }
  }
  const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>((p.warmup_s + p.seconds + 30) * 1e9);
  for (unsigned i = 0; i < clients.size(); ++i) {
    const int st = reap(clients[i], deadline);
    if ((st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) && res.error.empty())
      res.error = "client " + std::to_string(i) + ": " + (sh->clients[i].error[0] ? sh->clients[i].error : describe_exit(st));
  }
  ::close(stop_pipe[1]);  // the server's sampler sees EOF and stops it
  if (server > 0) {
    const int st = reap(server, now_ns() + 30'000'000'000ull);
    if ((st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) && res.error.empty())
      res.error = std::string("server: ") + (sh->server_error[0] ? sh->server_error : describe_exit(st));
  }
  ::close(ready_pipe[0]);
  ::unlink(path.c_str());

  if (res.error.empty()) {
    Hist* all = static_cast<Hist*>(std::calloc(1, sizeof(Hist)));
    for (unsigned i = 0; i < p.connections; ++i) {
      const ClientSlot& s = sh->clients[i];
      res.ops += s.ops;
      res.gets += s.gets;
      res.puts += s.puts;
      res.kernel_entries += s.kernel;
      res.cpu_s += s.cpu_s;
      res.client_csw += s.csw.vol;
      res.client_csw_invol += s.csw.invol;
      all->merge(s.lat);
    }
    res.kernel_entries += sh->server_kernel;
    res.server_cpu_s = sh->server_cpu_s;
    res.server_csw = sh->server_csw.vol;
    res.server_csw_invol = sh->server_csw.invol;
    res.cpu_s += sh->server_cpu_s;
    res.wall_s = p.seconds;
    res.p50_ns = all->percentile(50);
    res.p99_ns = all->percentile(99);
    std::free(all);
    res.ok = true;
    if (res.ops == 0) {  // every call fell outside the window: a stalled machine, not a result
      res.ok = false;
      res.error = "no call completed within the measured interval (machine overloaded? try a longer --seconds)";
    }
  }
  sh->~Shared();
  ::munmap(mem, sizeof(Shared));
  return res;
}

}  // namespace uipc::apps::kv
