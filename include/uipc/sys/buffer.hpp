// uipc/sys/buffer.hpp — the syscall buffer: a request ring and a completion ring of fixed-size
// entries (sys/abi.hpp) in one region, with the same indices, validation and wake handshake as
// the IPC rings (ring/ring.hpp, ring/handshake.hpp).
//
// What it guarantees:
//  * Entries are delivered in order, each exactly once; a producer never overwrites an entry the
//    consumer has not released, and a full ring is reported (claim() == nullptr), never overrun.
//  * Every shared index read is validated against the reader's private copy: an index moved
//    backwards or past the capacity marks the ring corrupt, and nothing out of bounds is touched.
//  * Neither ring waits for space through the handshake: the caller never has more requests
//    outstanding than the request ring holds, and the executor takes a request only when the
//    completion ring has room for its completion (credit, see executor.cpp). Only the data
//    waiters are used: the executor arms the request ring's, the caller the completion ring's.
// Who may call: one producer and one consumer per ring at a time. Handing a side from one
//  thread to another (the executor's claim flag) must be ordered by acquire/release.
// What blocks: nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "uipc/abi/layout.hpp"
#include "uipc/abi/region.hpp"
#include "uipc/result.hpp"
#include "uipc/ring/handshake.hpp"
#include "uipc/sys/abi.hpp"

namespace uipc::sys {

// Asks for a cache line in a writable state ahead of the store that needs it. A request entry
// was last read by the executor on another core: without this, the caller's store stalls on the
// ownership transfer (measured as most of the submit path). PREFETCHW is a hint; CPUs without it
// treat it as a NOP.
inline void prefetch_for_write(const void* p) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

template <class Entry>
struct RingView {
  uipc::abi::RingIndices* indices = nullptr;
  Entry* entries = nullptr;
  std::uint32_t capacity = 0;  // a power of two
};

template <class Entry>
class EntryProducer {
 public:
  // publish() prefetches the line this many entries ahead of the tail (four lines on), in rings
  // large enough that the consumer is long done with it.
  static_assert(sizeof(Entry) <= uipc::abi::kCacheLine && uipc::abi::kCacheLine % sizeof(Entry) == 0);
  static constexpr std::uint32_t kPrefetchAhead = 4 * (uipc::abi::kCacheLine / sizeof(Entry));
  EntryProducer() = default;
  explicit EntryProducer(const RingView<Entry>& v) noexcept : v_(v) {
    tail_ = v_.indices->prod.tail.load(std::memory_order_relaxed);  // our own index: a plain look
    // acquire: pairs with the consumer's release store of head.
    head_cache_ = v_.indices->cons.head.load(std::memory_order_acquire);
    if (tail_ - head_cache_ > v_.capacity) corrupt_ = true;
  }
  // The next free entry or nullptr (full or corrupt). Repeated calls return the same entry.
  Entry* claim() noexcept {
    if (corrupt_) [[unlikely]] return nullptr;
    if (tail_ - head_cache_ >= v_.capacity) {
      if (!refresh_head() || tail_ - head_cache_ >= v_.capacity) return nullptr;
    }
    return &v_.entries[tail_ & (v_.capacity - 1)];
  }
  void publish() noexcept {
    ++tail_;
    // release: pairs with the consumer's acquire load of tail: the entry is visible first.
    v_.indices->prod.tail.store(tail_, std::memory_order_release);
    // The entry a few slots on has long been consumed (the ring is much larger than that):
    // fetch its line for writing now, while this one travels.
    if (v_.capacity >= 4 * kPrefetchAhead)
      prefetch_for_write(&v_.entries[(tail_ + kPrefetchAhead) & (v_.capacity - 1)]);
  }
  // After one or more publishes: true when the consumer armed its data waiter and must be woken.
  bool flush() noexcept { return handshake::must_signal(v_.indices->cons.data_waiter); }
  std::uint32_t tail() const noexcept { return tail_; }
  bool corrupt() const noexcept { return corrupt_; }
  const RingView<Entry>& view() const noexcept { return v_; }

 private:
  bool refresh_head() noexcept {
    // acquire: pairs with the consumer's release store of head: those slots are no longer read.
    const std::uint32_t h = v_.indices->cons.head.load(std::memory_order_acquire);
    if (h - head_cache_ > tail_ - head_cache_) {  // a valid head lies in [head_cache_, tail_]
      corrupt_ = true;
      return false;
    }
    head_cache_ = h;
    return true;
  }
  RingView<Entry> v_{};
  std::uint32_t tail_ = 0;
  std::uint32_t head_cache_ = 0;
  bool corrupt_ = false;
};

template <class Entry>
class EntryConsumer {
 public:
  static constexpr std::uint32_t kPrefetchAhead = 4 * (uipc::abi::kCacheLine / sizeof(Entry));
  EntryConsumer() = default;
  explicit EntryConsumer(const RingView<Entry>& v) noexcept : v_(v) {
    head_ = published_head_ = v_.indices->cons.head.load(std::memory_order_relaxed);  // our own index
    // acquire: pairs with the producer's release store of tail.
    tail_cache_ = v_.indices->prod.tail.load(std::memory_order_acquire);
    if (tail_cache_ - head_ > v_.capacity) corrupt_ = true;
  }
  // Copies the oldest unconsumed entry into *out; false when empty or corrupt.
  bool peek(Entry* out) noexcept {
    if (corrupt_) [[unlikely]] return false;
    if (head_ == tail_cache_ && (!refresh_tail() || head_ == tail_cache_)) return false;
    // A line further on that is already published (never one still being written): its miss
    // overlaps with this entry's.
    if (tail_cache_ - head_ > kPrefetchAhead)
      __builtin_prefetch(&v_.entries[(head_ + kPrefetchAhead) & (v_.capacity - 1)], 0, 3);
    std::memcpy(static_cast<void*>(out), &v_.entries[head_ & (v_.capacity - 1)], sizeof(Entry));
    return true;
  }
  void pop() noexcept { ++head_; }
  // Entries published and not yet popped (refreshes the producer's tail).
  std::uint32_t available() noexcept {
    if (!corrupt_) refresh_tail();
    return tail_cache_ - head_;
  }
  // Gives the popped entries back to the producer.
  void release() noexcept {
    if (head_ == published_head_) return;
    published_head_ = head_;
    // release: pairs with the producer's acquire load of head: we are done reading those slots.
    v_.indices->cons.head.store(head_, std::memory_order_release);
  }
  bool has_data() noexcept {
    if (head_ != tail_cache_ || corrupt_) return true;
    return !refresh_tail() || head_ != tail_cache_;
  }
  // Handshake arm + re-check; false when data arrived meanwhile (already disarmed).
  bool arm_data_wait() noexcept {
    handshake::arm(v_.indices->cons.data_waiter);
    if (corrupt_ || (refresh_tail() && head_ != tail_cache_)) {
      handshake::disarm(v_.indices->cons.data_waiter);
      return false;
    }
    return true;
  }
  void disarm_data_wait() noexcept { handshake::disarm(v_.indices->cons.data_waiter); }
  std::uint32_t head() const noexcept { return head_; }
  bool corrupt() const noexcept { return corrupt_; }
  const RingView<Entry>& view() const noexcept { return v_; }

 private:
  bool refresh_tail() noexcept {
    // acquire: pairs with the producer's release store in publish().
    const std::uint32_t t = v_.indices->prod.tail.load(std::memory_order_acquire);
    if (t - tail_cache_ > published_head_ + v_.capacity - tail_cache_) {  // valid: [tail_cache_, head + cap]
      corrupt_ = true;
      return false;
    }
    tail_cache_ = t;
    return true;
  }
  RingView<Entry> v_{};
  std::uint32_t head_ = 0;
  std::uint32_t published_head_ = 0;
  std::uint32_t tail_cache_ = 0;
  bool corrupt_ = false;
};

// True when the ring holds published entries its consumer has not yet given back. Reads only
// the shared indices (acquire on both), so anyone may ask, e.g. a kernel core that does not
// hold the buffer's claim and is about to sleep.
template <class Entry>
bool shared_has_data(const RingView<Entry>& v) noexcept {
  // acquire: pairs with the producer's release store of tail and the consumer's of head.
  return v.indices->prod.tail.load(std::memory_order_acquire) != v.indices->cons.head.load(std::memory_order_acquire);
}

// One syscall buffer in its own sealed memfd region (the "frame" the note's runtime allocates).
class SyscallBuffer {
 public:
  SyscallBuffer() = default;
  // `capacity` calls in flight (power of two, kMinCapacity .. kMaxCapacity): completion ring of
  // `capacity` entries, request ring of 2 × capacity. errc::invalid_argument otherwise.
  static Result<SyscallBuffer> create(std::uint32_t capacity);

  RingView<abi::SyscallRequest> requests() const noexcept;
  RingView<abi::SyscallCompletion> completions() const noexcept;
  const abi::SyscallBufferHeader* header() const noexcept {
    return static_cast<const abi::SyscallBufferHeader*>(region_.data());
  }
  std::uint32_t capacity() const noexcept { return header()->completion_capacity; }
  explicit operator bool() const noexcept { return static_cast<bool>(region_); }

 private:
  explicit SyscallBuffer(Region r) : region_(std::move(r)) {}
  Region region_;
};

}  // namespace uipc::sys
