// bench/peers/ring.cpp — mode "ring": the limit on this machine.  Two single-producer /
// single-consumer rings in plain memory (requests client -> server, replies server -> client),
// fixed-size slots, both sides busy-polling: no kernel entry at all, just cache lines moving
// between the two cores.
//
// The rings follow rigtorp/SPSCQueue: the producer's index and the consumer's index live on
// separate cache lines, and each side keeps a private copy of the other side's index, reading
// the shared one only when its copy says the ring is full (producer) or empty (consumer).  Both
// sides work in batches: the consumer takes everything published with one index store; the client
// publishes the requests it refills with one store, the server its replies every 256 bytes.
#include "peer_common.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

namespace uipc::bench::peers::ring {
namespace {

// Two cache lines: the adjacent-line prefetcher of many x86 cores fetches lines in pairs, which
// would make neighbours within 128 bytes falsely shared.
constexpr std::size_t kLine = 128;

// The server publishes its replies every this many bytes (at least every reply), so that the client
// works on the first replies of a batch while the server still copies the rest.  Measured on a
// 16-core Xeon: publishing every 256 bytes beats every 16 KiB by 1.3-1.7x at 16-64 requests in
// flight of 64 bytes and is on par elsewhere; publishing each request from the client as well,
// or spinning without a pause instruction, is no better.
constexpr std::size_t kServerBatchBytes = 256;

class Ring {
 public:
  Ring(std::size_t min_slots, std::size_t msg_bytes)
      : stride_((msg_bytes + 63) / 64 * 64), capacity_(std::bit_ceil(min_slots)), mem_(capacity_ * stride_ + kLine) {
    auto addr = reinterpret_cast<std::uintptr_t>(mem_.data());
    slots_ = mem_.data() + ((kLine - addr % kLine) % kLine);
  }
  std::uint64_t capacity() const { return capacity_; }
  std::byte* slot(std::uint64_t i) const { return slots_ + (i & (capacity_ - 1)) * stride_; }

  alignas(kLine) std::atomic<std::uint64_t> tail{0};  // producer: slots before it are filled
  alignas(kLine) std::atomic<std::uint64_t> head{0};  // consumer: slots before it are free again

 private:
  alignas(kLine) std::size_t stride_;  // read-only from here on
  std::uint64_t capacity_;
  std::vector<std::byte> mem_;
  std::byte* slots_;
};

class Producer {
 public:
  explicit Producer(Ring& r) : r_(r) {}
  // Free slots, at least `want` if the consumer has freed them (spins until then).
  std::uint64_t room(std::uint64_t want) {
    while (r_.capacity() - (tail_ - head_cache_) < want) {
      head_cache_ = r_.head.load(std::memory_order_acquire);
      if (r_.capacity() - (tail_ - head_cache_) < want) cpu_relax();
    }
    return r_.capacity() - (tail_ - head_cache_);
  }
  std::byte* slot(std::uint64_t i) const { return r_.slot(tail_ + i); }
  void publish(std::uint64_t n) {
    tail_ += n;
    r_.tail.store(tail_, std::memory_order_release);
  }

 private:
  Ring& r_;
  std::uint64_t tail_ = 0;
  std::uint64_t head_cache_ = 0;
};

class Consumer {
 public:
  explicit Consumer(Ring& r) : r_(r) {}
  // Filled slots; 0 when the ring is empty.
  std::uint64_t available() {
    if (tail_cache_ == head_) tail_cache_ = r_.tail.load(std::memory_order_acquire);
    return tail_cache_ - head_;
  }
  const std::byte* slot(std::uint64_t i) const { return r_.slot(head_ + i); }
  void release(std::uint64_t n) {
    head_ += n;
    r_.head.store(head_, std::memory_order_release);
  }

 private:
  Ring& r_;
  std::uint64_t head_ = 0;
  std::uint64_t tail_cache_ = 0;
};

struct alignas(kLine) StopFlag {
  std::atomic<bool> set{false};
};

IpcResult run(const IpcParams& p) {
  const char* mode = "ring";
  const std::size_t msg = p.msg_bytes;
  Ring requests(p.inflight, msg), replies(p.inflight, msg);
  StopFlag stop;
  SyscallCounter no_calls;  // stays 0: neither side enters the kernel
  Measure m(p, no_calls, no_calls);
  LatencyRecorder lat;

  auto client = [&] {
    Producer out(requests);
    Consumer in(replies);
    const std::vector<std::byte> tmpl = payload_template(msg);
    std::vector<std::uint64_t> sent_at(p.inflight);
    std::uint64_t next_seq = 0, recv_seq = 0;
    auto issue = [&](std::uint64_t k, std::uint64_t now) {
      out.room(k);  // never waits: at most inflight <= capacity requests are outstanding
      for (std::uint64_t i = 0; i < k; ++i, ++next_seq) {
        std::byte* s = out.slot(i);
        std::memcpy(s, tmpl.data(), msg);
        put_seq(s, next_seq);
        sent_at[next_seq % p.inflight] = now;
      }
      out.publish(k);
    };

    const std::uint64_t start = now_ns();
    m.begin(start);
    issue(p.inflight, start);
    for (;;) {
      const std::uint64_t k = in.available();
      if (k == 0) {
        cpu_relax();
        continue;
      }
      const std::uint64_t now = now_ns();
      const bool record = m.on_replies(now, k);
      for (std::uint64_t i = 0; i < k; ++i, ++recv_seq) {
        const std::uint64_t seq = get_seq(in.slot(i));
        if (seq != recv_seq) seq_mismatch(mode, seq, recv_seq);
        if (record) lat.record(now - sent_at[seq % p.inflight]);
      }
      in.release(k);
      if (m.issuing()) issue(k, now);
      else if (next_seq == recv_seq) break;
    }
    stop.set.store(true, std::memory_order_release);
  };

  auto server = [&] {
    Consumer in(requests);
    Producer out(replies);
    const std::uint64_t batch = std::max<std::uint64_t>(1, kServerBatchBytes / msg);
    for (;;) {
      std::uint64_t k = in.available();
      if (k == 0) {
        if (stop.set.load(std::memory_order_acquire)) break;
        cpu_relax();
        continue;
      }
      k = std::min(k, batch);
      out.room(k);  // never waits: replies in the ring are outstanding requests
      for (std::uint64_t i = 0; i < k; ++i) std::memcpy(out.slot(i), in.slot(i), msg);
      out.publish(k);
      in.release(k);
    }
  };

  run_pair(p, client, server);
  return m.result(lat);
}

const IpcModeRegistrar registrar("ring", run);

}  // namespace
}  // namespace uipc::bench::peers::ring
