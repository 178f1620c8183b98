// uipc/ring/ring.hpp — single-producer / single-consumer rings in shared memory, over
// abi::RingIndices and the handshake of ring/handshake.hpp. Two publication forms share one set
// of index rules (ring_detail::ProducerIndices / ConsumerIndices):
//  * RingProducer / RingConsumer (the IPC channels): entries of `stride` bytes with an
//    EntryHeader, published one by one through the header's seq;
//  * TypedRingProducer / TypedRingConsumer<Entry> (the syscall buffer, sys/buffer.hpp): fixed,
//    trivially copyable entries without a header, published through the shared tail index.
//
// What it guarantees:
//  * Entries are delivered in order, each exactly once; the producer never overwrites an entry
//    the consumer has not released, and a full ring is reported (claim() == nullptr), never
//    overwritten or dropped — the caller waits for space (arm_space_wait) or, for typed rings,
//    keeps no more outstanding than the ring holds.
//  * RingProducer publishes entries one by one (EntryHeader::seq = index + 1, release); the
//    consumer looks only at the entry its private head names, so no value from the producer can
//    make it read outside the ring. TypedRingProducer publishes by a release store of the tail;
//    its consumer validates every tail it reads against its private head (a tail that moved
//    backwards or more than `capacity` ahead marks it corrupt) and copies an entry out before
//    anyone looks at it.
//  * The consumer's head, read by the producer, is validated against the producer's private
//    copies: moved backwards or past the tail, it puts the ring into the `corrupt` state, which
//    every later call reports.
//  * Entry lengths (header rings) are checked against max_payload before a payload is exposed.
// Who may call: one producer thread on a producer, one consumer thread on a consumer (a side may
//  move to another thread when the hand-over is ordered by acquire/release).
// What blocks: nothing. Waiting is the caller's business, through the handshake:
//  consumer: arm_data_wait() → if true, suspend until signalled; producer after publishing:
//  flush() → if true, signal the consumer. Symmetrically for space (header rings).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "uipc/abi/layout.hpp"
#include "uipc/ring/handshake.hpp"

namespace uipc {

namespace ring_detail {

// The producer's view of the indices, common to both ring forms: a private tail (the shared one
// is never read back) and the last validated consumer head.
struct ProducerIndices {
  abi::RingIndices* ix = nullptr;
  std::uint32_t capacity = 0;     // power of two
  std::uint32_t tail = 0;
  std::uint32_t head_cache = 0;
  bool corrupt = false;

  std::uint32_t in_flight() const noexcept { return tail - head_cache; }
  // Re-reads the consumer's head. A valid head lies in [head_cache, tail]; anything else is a
  // hostile or broken peer and makes the ring corrupt (false).
  bool refresh_head() noexcept {
    // acquire: pairs with the consumer's release store of head (publish_head): the slots it gave
    // back are no longer being read.
    const std::uint32_t h = ix->cons.head.load(std::memory_order_acquire);
    if (h - head_cache > tail - head_cache) {
      corrupt = true;
      return false;
    }
    head_cache = h;
    return true;
  }
  // True when the entry at `tail` may be written (refreshing the head only when the ring looks full).
  bool room() noexcept {
    if (corrupt) [[unlikely]] return false;
    if (tail - head_cache < capacity) return true;
    return refresh_head() && tail - head_cache < capacity;
  }
};

// The consumer's private head and the last head it published.
struct ConsumerIndices {
  abi::RingIndices* ix = nullptr;
  std::uint32_t head = 0;
  std::uint32_t published_head = 0;

  // Publishes the consumed position; false when it had not moved.
  bool publish_head() noexcept {
    if (head == published_head) return false;
    published_head = head;
    // release: pairs with the producer's acquire load of head: we are done reading those slots.
    ix->cons.head.store(head, std::memory_order_release);
    return true;
  }
};

// Asks for a cache line in a writable state ahead of the store that needs it (an entry last read
// by the consumer on another core). PREFETCHW is a hint; CPUs without it treat it as a NOP.
inline void prefetch_for_write(const void* p) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

// Copies a trivially copyable object of whole 8-byte words, one word at a time. Entries are
// usually written field by field just before they are copied (by the same thread); wider loads
// spanning several of those stores would miss store-to-load forwarding and stall.
template <class T>
inline void copy_words(T* dst, const T* src) noexcept {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) % 8 == 0);
  auto* d = reinterpret_cast<unsigned char*>(dst);
  const auto* s = reinterpret_cast<const unsigned char*>(src);
  for (std::size_t i = 0; i < sizeof(T); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s + i, 8);
    __asm__("" : "+r"(w));  // keeps the word in a register: the compiler may not merge the copies
    std::memcpy(d + i, &w, 8);
  }
}

}  // namespace ring_detail

struct RingGeometry {
  abi::RingIndices* indices = nullptr;
  std::byte* entries = nullptr;
  std::uint32_t capacity = 0;     // power of two
  std::uint32_t stride = 0;       // bytes per entry, header included
  std::uint32_t max_payload = 0;
};

namespace ring_detail {
inline std::byte* entry_at(const RingGeometry& g, std::uint32_t index) noexcept {
  return g.entries + static_cast<std::size_t>(index & (g.capacity - 1)) * g.stride;
}
}  // namespace ring_detail

class RingProducer {
 public:
  // publish() prefetches, for writing, the first two lines of the entry this many slots on
  // (when the consumer has released it).
  static constexpr std::uint32_t kAhead = 2;
  RingProducer() = default;
  explicit RingProducer(const RingGeometry& g) noexcept;

  // The next free entry (header + payload area of max_payload bytes), or nullptr when the ring
  // is full or corrupt. Repeated calls without publish() return the same entry. The caller fills
  // id, len, status and the payload; never seq.
  abi::EntryHeader* claim() noexcept;
  std::byte* payload(abi::EntryHeader* e) const noexcept { return reinterpret_cast<std::byte*>(e + 1); }
  // Makes the claimed entry visible to the consumer (release store of its seq).
  void publish() noexcept;
  // After one or more publishes: true when the consumer was waiting and must be signalled.
  bool flush() noexcept { return handshake::must_signal(g_.indices->cons.data_waiter); }

  // Ring full: arm the space waiter. Returns true when the caller should suspend until the
  // consumer signals; false when space appeared meanwhile (already disarmed).
  bool arm_space_wait() noexcept;
  bool corrupt() const noexcept { return p_.corrupt; }
  std::uint32_t in_flight() const noexcept { return p_.in_flight(); }
  const RingGeometry& geometry() const noexcept { return g_; }

 private:
  RingGeometry g_{};
  ring_detail::ProducerIndices p_{};
};

class RingConsumer {
 public:
  // peek() prefetches the first two lines of the entry this many slots on, in a burst.
  static constexpr std::uint32_t kAhead = 2;
  RingConsumer() = default;
  explicit RingConsumer(const RingGeometry& g) noexcept;

  // The oldest unconsumed entry, or nullptr when the ring is empty or corrupt. The header is
  // copied out into *hdr after validation (len <= max_payload); the payload pointer stays valid
  // until release(). A peer may still scribble on the payload: callers copy it before trusting it.
  const std::byte* peek(abi::EntryHeader* hdr) noexcept;
  // Consumes the entry returned by peek(); the slot becomes the producer's again at release().
  void pop() noexcept { ++c_.head; }
  // Publishes the consumed position. True when the producer waits for space and must be signalled.
  bool release() noexcept;

  // True when an entry is waiting (or the ring is corrupt: the caller must look at it).
  bool has_data() const noexcept { return ready(c_.head) || corrupt_ || bad_entry_; }
  bool arm_data_wait() noexcept;  // as RingProducer::arm_space_wait, for data
  void disarm_data_wait() noexcept { handshake::disarm(g_.indices->cons.data_waiter); }
  bool corrupt() const noexcept { return corrupt_; }
  bool bad_entry() const noexcept { return bad_entry_; }  // a header failed validation
  const RingGeometry& geometry() const noexcept { return g_; }

 private:
  bool ready(std::uint32_t index) const noexcept;
  RingGeometry g_{};
  ring_detail::ConsumerIndices c_{};
  bool corrupt_ = false;
  bool bad_entry_ = false;
  bool burst_ = false;  // the last peek() found an entry (prefetching ahead pays)
};


// ---- inline parts: the per-message path ----

inline abi::EntryHeader* RingProducer::claim() noexcept {
  if (!p_.room()) return nullptr;
  return reinterpret_cast<abi::EntryHeader*>(ring_detail::entry_at(g_, p_.tail));
}

inline void RingProducer::publish() noexcept {
  auto* e = reinterpret_cast<abi::EntryHeader*>(ring_detail::entry_at(g_, p_.tail));
  ++p_.tail;
  // release: pairs with the consumer's acquire load of seq in RingConsumer::ready(): the
  // header fields and payload written before are visible once seq is.
  std::atomic_ref<std::uint32_t>(e->seq).store(p_.tail, std::memory_order_release);
  // The entry kAhead slots on, when the consumer has already given it back (its last head
  // says so, so it is done reading it): ask for its lines in a writable state now, so that a
  // burst of sends does not stall on one ownership transfer after another.
  const std::uint32_t ahead = p_.tail + kAhead;
  if (ahead - p_.head_cache < p_.capacity) {
    const std::byte* n = ring_detail::entry_at(g_, ahead);
    ring_detail::prefetch_for_write(n);
    if (g_.stride > abi::kCacheLine) ring_detail::prefetch_for_write(n + abi::kCacheLine);
  }
}

inline bool RingConsumer::ready(std::uint32_t index) const noexcept {
  auto* e = reinterpret_cast<abi::EntryHeader*>(ring_detail::entry_at(g_, index));
  // acquire: pairs with the release store of seq in RingProducer::publish(). Any other value
  // (an older lap, or whatever a hostile producer wrote) means "not ready".
  return std::atomic_ref<std::uint32_t>(e->seq).load(std::memory_order_acquire) == index + 1;
}

inline const std::byte* RingConsumer::peek(abi::EntryHeader* hdr) noexcept {
  if (corrupt_ || bad_entry_) [[unlikely]] return nullptr;
  if (!ready(c_.head)) {
    burst_ = false;
    return nullptr;
  }
  const std::byte* e = ring_detail::entry_at(g_, c_.head);
  // In a burst (the entry before this one was ready too), fetch the lines of the one kAhead
  // slots on while this one is handled, so their misses overlap instead of following one
  // another. Not for a lone entry: with one message in flight the next entry is not written
  // yet, and an early copy would only take the line back from the producer.
  if (burst_) {
    const std::byte* n = ring_detail::entry_at(g_, c_.head + kAhead);
    __builtin_prefetch(n, 0, 3);
    if (g_.stride > abi::kCacheLine) __builtin_prefetch(n + abi::kCacheLine, 0, 3);
  }
  burst_ = true;
  std::memcpy(hdr, e, sizeof *hdr);
  if (hdr->len > g_.max_payload) [[unlikely]] {
    bad_entry_ = true;
    return nullptr;
  }
  return e + sizeof(abi::EntryHeader);
}

// ---- typed rings: fixed entries published through the tail index ------------------------------

template <class Entry>
struct TypedRingView {
  abi::RingIndices* indices = nullptr;
  Entry* entries = nullptr;
  std::uint32_t capacity = 0;  // a power of two
};

template <class Entry>
class TypedRingProducer {
 public:
  static_assert(std::is_trivially_copyable_v<Entry> && sizeof(Entry) <= abi::kCacheLine &&
                abi::kCacheLine % sizeof(Entry) == 0);
  // publish() prefetches the line this many entries ahead of the tail (four lines on), in rings
  // large enough that the consumer is long done with it.
  static constexpr std::uint32_t kPrefetchAhead = 4 * (abi::kCacheLine / sizeof(Entry));

  TypedRingProducer() = default;
  explicit TypedRingProducer(const TypedRingView<Entry>& v) noexcept : v_(v) {
    p_.ix = v.indices;
    p_.capacity = v.capacity;
    p_.tail = v.indices->prod.tail.load(std::memory_order_relaxed);  // our own index: a plain look
    // acquire: pairs with the consumer's release store of head.
    p_.head_cache = v.indices->cons.head.load(std::memory_order_acquire);
    if (p_.tail - p_.head_cache > v.capacity) p_.corrupt = true;
  }
  // The next free entry or nullptr (full or corrupt). Repeated calls return the same entry.
  Entry* claim() noexcept { return p_.room() ? &v_.entries[p_.tail & (p_.capacity - 1)] : nullptr; }
  void publish() noexcept {
    ++p_.tail;
    // release: pairs with the consumer's acquire load of tail: the entry is visible first.
    p_.ix->prod.tail.store(p_.tail, std::memory_order_release);
    // The entry a few slots on has long been consumed (the ring is much larger than that):
    // fetch its line for writing now, while this one travels.
    if (p_.capacity >= 4 * kPrefetchAhead)
      ring_detail::prefetch_for_write(&v_.entries[(p_.tail + kPrefetchAhead) & (p_.capacity - 1)]);
  }
  // After one or more publishes: true when the consumer armed its data waiter and must be woken.
  bool flush() noexcept { return handshake::must_signal(p_.ix->cons.data_waiter); }
  std::uint32_t tail() const noexcept { return p_.tail; }
  std::uint32_t in_flight() const noexcept { return p_.in_flight(); }
  bool corrupt() const noexcept { return p_.corrupt; }
  const TypedRingView<Entry>& view() const noexcept { return v_; }

 private:
  TypedRingView<Entry> v_{};
  ring_detail::ProducerIndices p_{};
};

template <class Entry>
class TypedRingConsumer {
 public:
  static_assert(std::is_trivially_copyable_v<Entry> && sizeof(Entry) % 8 == 0);
  static constexpr std::uint32_t kPrefetchAhead = 4 * (abi::kCacheLine / sizeof(Entry));

  TypedRingConsumer() = default;
  explicit TypedRingConsumer(const TypedRingView<Entry>& v) noexcept : v_(v) {
    c_.ix = v.indices;
    c_.head = c_.published_head = v.indices->cons.head.load(std::memory_order_relaxed);  // our own index
    // acquire: pairs with the producer's release store of tail.
    tail_cache_ = v.indices->prod.tail.load(std::memory_order_acquire);
    if (tail_cache_ - c_.head > v.capacity) corrupt_ = true;
  }
  // Copies the oldest unconsumed entry into *out; false when empty or corrupt.
  bool peek(Entry* out) noexcept {
    if (corrupt_) [[unlikely]] return false;
    if (c_.head == tail_cache_ && (!refresh_tail() || c_.head == tail_cache_)) return false;
    // A line further on that is already published (never one still being written): its miss
    // overlaps with this entry's.
    if (tail_cache_ - c_.head > kPrefetchAhead)
      __builtin_prefetch(&v_.entries[(c_.head + kPrefetchAhead) & (v_.capacity - 1)], 0, 3);
    ring_detail::copy_words(out, &v_.entries[c_.head & (v_.capacity - 1)]);
    return true;
  }
  void pop() noexcept { ++c_.head; }
  // Entries published and not yet popped (refreshes the producer's tail).
  std::uint32_t available() noexcept {
    if (!corrupt_) refresh_tail();
    return tail_cache_ - c_.head;
  }
  // Gives the popped entries back to the producer. (Typed rings never wait for space through
  // the handshake: see the top of this file.)
  void release() noexcept { c_.publish_head(); }
  bool has_data() noexcept {
    if (c_.head != tail_cache_ || corrupt_) return true;
    return !refresh_tail() || c_.head != tail_cache_;
  }
  // Handshake arm + re-check; false when data arrived meanwhile (already disarmed).
  bool arm_data_wait() noexcept {
    handshake::arm(c_.ix->cons.data_waiter);
    if (corrupt_ || (refresh_tail() && c_.head != tail_cache_)) {
      handshake::disarm(c_.ix->cons.data_waiter);
      return false;
    }
    return true;
  }
  void disarm_data_wait() noexcept { handshake::disarm(c_.ix->cons.data_waiter); }
  std::uint32_t head() const noexcept { return c_.head; }
  bool corrupt() const noexcept { return corrupt_; }
  const TypedRingView<Entry>& view() const noexcept { return v_; }

 private:
  bool refresh_tail() noexcept {
    // acquire: pairs with the producer's release store in publish().
    const std::uint32_t t = c_.ix->prod.tail.load(std::memory_order_acquire);
    // valid: [tail_cache_, published head + capacity]
    if (t - tail_cache_ > c_.published_head + v_.capacity - tail_cache_) {
      corrupt_ = true;
      return false;
    }
    tail_cache_ = t;
    return true;
  }
  TypedRingView<Entry> v_{};
  ring_detail::ConsumerIndices c_{};
  std::uint32_t tail_cache_ = 0;
  bool corrupt_ = false;
};

// True when a typed ring holds published entries its consumer has not yet given back. Reads only
// the shared indices (acquire on both), so anyone may ask, e.g. a thread that is not the
// consumer and is about to sleep.
template <class Entry>
bool ring_has_data(const TypedRingView<Entry>& v) noexcept {
  // acquire: pairs with the producer's release store of tail and the consumer's of head.
  return v.indices->prod.tail.load(std::memory_order_acquire) != v.indices->cons.head.load(std::memory_order_acquire);
}

}  // namespace uipc
