// uipc/sys/buffer.hpp — the syscall buffer: a request ring and a completion ring of fixed-size
// entries (sys/abi.hpp) in one region. The rings are the IPC ring machinery: ring/ring.hpp's
// typed rings (TypedRingProducer / TypedRingConsumer) over abi::RingIndices, with the same index
// validation and wake handshake (ring/handshake.hpp) as the IPC channels.
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
#include "uipc/ring/ring.hpp"
#include "uipc/sys/abi.hpp"

namespace uipc::sys {

// The rings are ring/ring.hpp's typed rings (fixed entries published through the tail index),
// under the names this layer has always used.
template <class Entry>
using RingView = uipc::TypedRingView<Entry>;
template <class Entry>
using EntryProducer = uipc::TypedRingProducer<Entry>;
template <class Entry>
using EntryConsumer = uipc::TypedRingConsumer<Entry>;
using uipc::ring_detail::prefetch_for_write;

// True when the ring holds published entries its consumer has not yet given back. Reads only
// the shared indices, so anyone may ask, e.g. a kernel core that does not hold the buffer's
// claim and is about to sleep.
template <class Entry>
bool shared_has_data(const RingView<Entry>& v) noexcept {
  return uipc::ring_has_data(v);
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
