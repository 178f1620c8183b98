// uipc/ring/ring.hpp — single-producer / single-consumer rings of fixed-size entries in shared memory.
//
// What it guarantees:
//  * Entries are delivered in order, each exactly once; the producer never overwrites an entry
//    the consumer has not released, and a full ring is reported (claim() == nullptr), never
//    overwritten or dropped — the caller waits for space (arm_space_wait).
//  * Entries are published one by one (EntryHeader::seq = index + 1, release); the consumer
//    looks only at the entry its private head names, so no value from the producer can make it
//    read outside the ring. The consumer's head, read by the producer, is validated against the
//    producer's private copies: moved backwards or past the tail, it puts the ring into the
//    `corrupt` state, which every later call reports.
//  * Entry lengths are checked against max_payload before a payload is exposed.
// Who may call: one producer thread on RingProducer, one consumer thread on RingConsumer.
// What blocks: nothing. Waiting is the caller's business, through the handshake:
//  consumer: arm_data_wait() → if true, suspend until signalled; producer after publishing:
//  flush() → if true, signal the consumer. Symmetrically for space.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "uipc/abi/layout.hpp"
#include "uipc/ring/handshake.hpp"

namespace uipc {

struct RingGeometry {
  abi::RingIndices* indices = nullptr;
  std::byte* entries = nullptr;
  std::uint32_t capacity = 0;     // power of two
  std::uint32_t stride = 0;       // bytes per entry, header included
  std::uint32_t max_payload = 0;
};

class RingProducer {
 public:
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
  bool corrupt() const noexcept { return corrupt_; }
  std::uint32_t in_flight() const noexcept { return tail_ - head_cache_; }
  const RingGeometry& geometry() const noexcept { return g_; }

 private:
  bool refresh_head() noexcept;
  RingGeometry g_{};
  std::uint32_t tail_ = 0;        // private copy: the shared tail is never read back
  std::uint32_t head_cache_ = 0;  // last validated consumer head
  bool corrupt_ = false;
};

class RingConsumer {
 public:
  RingConsumer() = default;
  explicit RingConsumer(const RingGeometry& g) noexcept;

  // The oldest unconsumed entry, or nullptr when the ring is empty or corrupt. The header is
  // copied out into *hdr after validation (len <= max_payload); the payload pointer stays valid
  // until release(). A peer may still scribble on the payload: callers copy it before trusting it.
  const std::byte* peek(abi::EntryHeader* hdr) noexcept;
  // Consumes the entry returned by peek(); the slot becomes the producer's again at release().
  void pop() noexcept { ++head_; }
  // Publishes the consumed position. True when the producer waits for space and must be signalled.
  bool release() noexcept;

  // True when an entry is waiting (or the ring is corrupt: the caller must look at it).
  bool has_data() const noexcept { return ready(head_) || corrupt_ || bad_entry_; }
  bool arm_data_wait() noexcept;  // as RingProducer::arm_space_wait, for data
  void disarm_data_wait() noexcept { handshake::disarm(g_.indices->cons.data_waiter); }
  bool corrupt() const noexcept { return corrupt_; }
  bool bad_entry() const noexcept { return bad_entry_; }  // a header failed validation
  const RingGeometry& geometry() const noexcept { return g_; }

 private:
  bool ready(std::uint32_t index) const noexcept;
  RingGeometry g_{};
  std::uint32_t head_ = 0;        // private copy
  std::uint32_t published_head_ = 0;
  bool corrupt_ = false;
  bool bad_entry_ = false;
};

}  // namespace uipc
