// bench/peers/peer_common.hpp — pieces the peer modes (ring, uds, uds-epoll, pipe) share:
// the measured-interval bookkeeping, the syscall counters, the request/reply framing and the
// client/server buffers of the stream-based peers.
//
// Framing: every request and every reply is exactly msg_bytes long (>= 8); its first 8 bytes are
// the request's sequence number (native endian), the rest a fixed payload pattern.  The server's
// reply is a copy of the request, so it echoes the sequence number; the client checks it.
#pragma once

#include "harness.hpp"

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace uipc::bench::peers {

[[noreturn]] inline void die(const char* mode, const char* what) {
  std::fprintf(stderr, "uipc bench %s: %s\n", mode, what);
  std::abort();
}

[[noreturn]] inline void die_errno(const char* mode, const char* call) {
  const int e = errno;
  std::fprintf(stderr, "uipc bench %s: %s failed: %s\n", mode, call, std::strerror(e));
  std::abort();
}

[[noreturn]] inline void seq_mismatch(const char* mode, std::uint64_t got, std::uint64_t want) {
  std::fprintf(stderr, "uipc bench %s: reply carries sequence number %llu, expected %llu\n", mode,
               static_cast<unsigned long long>(got), static_cast<unsigned long long>(want));
  std::abort();
}

// One iteration of a busy-wait loop: tells the core (and an SMT sibling) that we are spinning.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

inline void put_seq(std::byte* msg, std::uint64_t seq) { std::memcpy(msg, &seq, sizeof seq); }
inline std::uint64_t get_seq(const std::byte* msg) {
  std::uint64_t seq;
  std::memcpy(&seq, msg, sizeof seq);
  return seq;
}

// The payload every request carries after its sequence number.
inline std::vector<std::byte> payload_template(std::size_t msg_bytes) {
  std::vector<std::byte> t(msg_bytes);
  for (std::size_t i = 0; i < msg_bytes; ++i) t[i] = static_cast<std::byte>(i * 131 + 7);
  return t;
}

// Count of the system calls one side makes.  Exactly one thread increments it (a plain load and
// store, no locked instruction); the client reads it at the edges of the measured interval.  On
// its own pair of cache lines so that the increments never touch a line the other side reads.
struct alignas(128) SyscallCounter {
  std::atomic<std::uint64_t> n{0};
  void add(std::uint64_t k = 1) { n.store(n.load(std::memory_order_relaxed) + k, std::memory_order_relaxed); }
  std::uint64_t get() const { return n.load(std::memory_order_relaxed); }
};

// The client's clock: warm-up (10% of p.seconds), then the measured interval of p.seconds, then
// done (the client stops issuing requests and drains those outstanding).  The edges fall on reply
// batches: the batch that ends the warm-up is not counted, the one that ends the interval is.
class Measure {
 public:
  Measure(const IpcParams& p, const SyscallCounter& client, const SyscallCounter& server)
      : measure_ns_(static_cast<std::uint64_t>(p.seconds * 1e9)),
        warm_ns_(static_cast<std::uint64_t>(p.seconds * 0.1e9)),
        client_(client),
        server_(server) {}

  void begin(std::uint64_t now) { warm_end_ = now + warm_ns_; }

  // k replies were read at `now`.  True when they belong to the measured interval (record them).
  bool on_replies(std::uint64_t now, std::uint64_t k) {
    if (phase_ == kMeasuring) {
      ops_ += k;
      if (now >= end_) {
        edge(now, t1_, cpu1_, calls1_);
        phase_ = kDone;
      }
      return true;
    }
    if (phase_ == kWarming && now >= warm_end_) {
      edge(now, t0_, cpu0_, calls0_);
      end_ = now + measure_ns_;
      phase_ = kMeasuring;
    }
    return false;
  }

  bool issuing() const { return phase_ != kDone; }

  IpcResult result(const LatencyRecorder& lat) const {
    IpcResult r;
    r.ops = ops_;
    r.wall_s = static_cast<double>(t1_ - t0_) * 1e-9;
    r.p50_ns = lat.percentile(50);
    r.p99_ns = lat.percentile(99);
    r.kernel_entries = calls1_ - calls0_;
    r.cpu_s = cpu1_ - cpu0_;
    return r;
  }

 private:
  void edge(std::uint64_t now, std::uint64_t& t, double& cpu, std::uint64_t& calls) {
    t = now;
    calls = client_.get() + server_.get();
    cpu = process_cpu_seconds();  // getrusage: measurement overhead, deliberately not counted
  }

  enum Phase { kWarming, kMeasuring, kDone };
  Phase phase_ = kWarming;
  std::uint64_t measure_ns_, warm_ns_;
  std::uint64_t warm_end_ = 0, end_ = 0, t0_ = 0, t1_ = 0, ops_ = 0, calls0_ = 0, calls1_ = 0;
  double cpu0_ = 0, cpu1_ = 0;
  const SyscallCounter& client_;
  const SyscallCounter& server_;
};

// Runs the two sides: the server on a thread pinned to cpus[1], the client on one pinned to
// cpus[0]; returns when both have finished.
template <class Client, class Server>
void run_pair(const IpcParams& p, Client&& client, Server&& server) {
  std::thread srv([&] {
    pin_this_thread(cpu_or_none(p, 1));
    server();
  });
  std::thread cli([&] {
    pin_this_thread(cpu_or_none(p, 0));
    client();
  });
  cli.join();
  srv.join();
}

// ---- stream peers: buffers and framing ---------------------------------------------------------
//
// Everything in flight is at most p.inflight messages (the client never has more outstanding), so
// every buffer below is p.inflight * msg_bytes ("the window") and never overflows.

// Client side: requests built but not yet written, replies read but not yet whole.
class StreamClient {
 public:
  StreamClient(const IpcParams& p, const char* mode, Measure& m, LatencyRecorder& lat)
      : mode_(mode),
        msg_(p.msg_bytes),
        inflight_(p.inflight),
        tmpl_(payload_template(p.msg_bytes)),
        sbuf_(p.msg_bytes * p.inflight),
        rbuf_(p.msg_bytes * p.inflight),
        sent_at_(p.inflight),
        m_(m),
        lat_(lat) {}

  // Starts the clock and queues the first p.inflight requests.
  void start() {
    const std::uint64_t now = now_ns();
    m_.begin(now);
    enqueue(inflight_, now);
  }

  const std::byte* unsent() const { return sbuf_.data() + s_off_; }
  std::size_t unsent_len() const { return s_len_; }
  void wrote(std::size_t n) {
    s_off_ += n;
    s_len_ -= n;
    written_ += n;
    if (s_len_ == 0) s_off_ = 0;
  }

  std::byte* rspace() { return rbuf_.data() + r_len_; }
  std::size_t rspace_len() const { return rbuf_.size() - r_len_; }

  // n bytes were read into rspace() at `now`: check and time every whole reply, keep a partial
  // one, and queue one new request per reply while the run is still issuing.  Returns the number
  // of whole replies.
  std::uint64_t read_done(std::size_t n, std::uint64_t now) {
    r_len_ += n;
    const std::size_t k = r_len_ / msg_;
    if (k == 0) return 0;
    const bool record = m_.on_replies(now, k);
    const std::byte* r = rbuf_.data();
    for (std::size_t i = 0; i < k; ++i, r += msg_) {
      const std::uint64_t seq = get_seq(r);
      if (seq != recv_seq_) seq_mismatch(mode_, seq, recv_seq_);
      if (record) lat_.record(now - sent_at_[seq % inflight_]);
      ++recv_seq_;
    }
    if (const std::size_t rest = r_len_ - k * msg_; rest != 0) std::memmove(rbuf_.data(), r, rest);
    r_len_ -= k * msg_;
    if (m_.issuing()) enqueue(k, now);
    return k;
  }

  // A whole request sits in the kernel whose reply has not been read: a blocking read will return.
  bool awaiting_reply() const { return written_ / msg_ > recv_seq_; }
  bool done() const { return !m_.issuing() && next_seq_ == recv_seq_; }

 private:
  void enqueue(std::uint64_t k, std::uint64_t now) {
    const std::size_t bytes = k * msg_;
    if (s_off_ + s_len_ + bytes > sbuf_.size()) {  // slide the unsent rest to the front
      std::memmove(sbuf_.data(), sbuf_.data() + s_off_, s_len_);
      s_off_ = 0;
    }
    std::byte* d = sbuf_.data() + s_off_ + s_len_;
    for (std::uint64_t i = 0; i < k; ++i, d += msg_) {
      std::memcpy(d, tmpl_.data(), msg_);
      put_seq(d, next_seq_);
      sent_at_[next_seq_ % inflight_] = now;
      ++next_seq_;
    }
    s_len_ += bytes;
  }

  const char* mode_;
  std::size_t msg_;
  std::uint64_t inflight_;
  std::vector<std::byte> tmpl_, sbuf_, rbuf_;
  std::vector<std::uint64_t> sent_at_;  // by seq % inflight: at most inflight are outstanding
  std::size_t s_off_ = 0, s_len_ = 0, r_len_ = 0;
  std::uint64_t written_ = 0, next_seq_ = 0, recv_seq_ = 0;
  Measure& m_;
  LatencyRecorder& lat_;
};

// Server side: requests read but not yet whole, replies built but not yet written.
class StreamServer {
 public:
  explicit StreamServer(const IpcParams& p)
      : msg_(p.msg_bytes), rbuf_(p.msg_bytes * p.inflight), obuf_(p.msg_bytes * p.inflight) {}

  std::byte* rspace() { return rbuf_.data() + r_len_; }
  std::size_t rspace_len() const { return rbuf_.size() - r_len_; }

  // n bytes were read into rspace(): answer every whole request (its reply, appended to the
  // output, is a copy of it, sequence number included).  Returns the number answered.
  std::size_t read_done(std::size_t n) {
    r_len_ += n;
    const std::size_t k = r_len_ / msg_;
    if (k == 0) return 0;
    if (o_off_ + o_len_ + k * msg_ > obuf_.size()) {
      std::memmove(obuf_.data(), obuf_.data() + o_off_, o_len_);
      o_off_ = 0;
    }
    const std::byte* r = rbuf_.data();
    std::byte* o = obuf_.data() + o_off_ + o_len_;
    for (std::size_t i = 0; i < k; ++i, r += msg_, o += msg_) std::memcpy(o, r, msg_);
    o_len_ += k * msg_;
    if (const std::size_t rest = r_len_ - k * msg_; rest != 0) std::memmove(rbuf_.data(), r, rest);
    r_len_ -= k * msg_;
    return k;
  }

  bool partial_request() const { return r_len_ != 0; }
  const std::byte* out() const { return obuf_.data() + o_off_; }
  std::size_t out_len() const { return o_len_; }
  void wrote(std::size_t n) {
    o_off_ += n;
    o_len_ -= n;
    if (o_len_ == 0) o_off_ = 0;
  }

 private:
  std::size_t msg_;
  std::vector<std::byte> rbuf_, obuf_;
  std::size_t r_len_ = 0, o_off_ = 0, o_len_ = 0;
};

// The blocking client shared by "uds" and "pipe".  Io supplies the calls:
//   write_some(fd, p, n): writes what fits now, never blocks (-1/EAGAIN when nothing fits);
//   read_some(fd, p, n):  blocks until at least one byte is there, returns what is there.
// The client never blocks in a write: with a window bigger than the kernel's buffers a blocking
// write would wait for the server, which may itself wait to write replies nobody reads.  So it
// writes what fits and blocks only in read; the rest goes out after the next replies.
template <class Io>
void blocking_client(const char* mode, int rfd, int wfd, StreamClient& c, SyscallCounter& calls) {
  c.start();
  for (;;) {
    if (c.unsent_len() != 0) {
      const ssize_t n = Io::write_some(wfd, c.unsent(), c.unsent_len());
      calls.add();
      if (n > 0) c.wrote(static_cast<std::size_t>(n));
      else if (errno != EAGAIN && errno != EINTR) die_errno(mode, "client write");
    }
    if (c.done()) break;
    if (!c.awaiting_reply()) continue;  // not even one whole request went out yet: keep writing
    const ssize_t n = Io::read_some(rfd, c.rspace(), c.rspace_len());
    calls.add();
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) die(mode, "server closed the connection early");
      die_errno(mode, "client read");
    }
    c.read_done(static_cast<std::size_t>(n), now_ns());
  }
}

// The blocking server shared by "uds" and "pipe": read whatever is there (up to the window),
// answer every whole request, write all the replies (write_all blocks until they are out).
template <class Io>
void blocking_server(const char* mode, int rfd, int wfd, StreamServer& s, SyscallCounter& calls) {
  for (;;) {
    ssize_t n = Io::read_some(rfd, s.rspace(), s.rspace_len());
    calls.add();
    if (n == 0) break;  // the client is done
    if (n < 0) {
      if (errno == EINTR) continue;
      die_errno(mode, "server read");
    }
    if (s.read_done(static_cast<std::size_t>(n)) == 0) continue;
    while (s.out_len() != 0) {
      n = Io::write_all(wfd, s.out(), s.out_len());
      calls.add();
      if (n < 0) {
        if (errno == EINTR) continue;
        die_errno(mode, "server write");
      }
      s.wrote(static_cast<std::size_t>(n));
    }
  }
  if (s.partial_request()) die(mode, "client closed in the middle of a request");
}

}  // namespace uipc::bench::peers
