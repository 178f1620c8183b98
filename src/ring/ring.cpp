#include "uipc/ring/ring.hpp"

#include <atomic>

namespace uipc {

namespace {
std::byte* entry_at(const RingGeometry& g, std::uint32_t index) noexcept {
  return g.entries + static_cast<std::size_t>(index & (g.capacity - 1)) * g.stride;
}
}  // namespace

RingProducer::RingProducer(const RingGeometry& g) noexcept : g_(g) {
  // A producer starts where the consumer's head is (a fresh ring: 0); from then on the private
  // copies rule.
  tail_ = head_cache_ = g_.indices->cons.head.load(std::memory_order_acquire);
}

bool RingProducer::refresh_head() noexcept {
  // acquire: pairs with the consumer's release store in RingConsumer::release(), so the slots
  // it gave back are no longer being read.
  const std::uint32_t h = g_.indices->cons.head.load(std::memory_order_acquire);
  // A valid head lies in [head_cache_, tail_]; anything else is a hostile or broken peer.
  if (h - head_cache_ > tail_ - head_cache_) {
    corrupt_ = true;
    return false;
  }
  head_cache_ = h;
  return true;
}

abi::EntryHeader* RingProducer::claim() noexcept {
  if (corrupt_) [[unlikely]] return nullptr;
  if (tail_ - head_cache_ >= g_.capacity) {
    if (!refresh_head() || tail_ - head_cache_ >= g_.capacity) return nullptr;
  }
  return reinterpret_cast<abi::EntryHeader*>(entry_at(g_, tail_));
}

void RingProducer::publish() noexcept {
  auto* e = reinterpret_cast<abi::EntryHeader*>(entry_at(g_, tail_));
  ++tail_;
  // release: pairs with the consumer's acquire load of seq in RingConsumer::ready(): the
  // header fields and payload written before are visible once seq is.
  std::atomic_ref<std::uint32_t>(e->seq).store(tail_, std::memory_order_release);
}

bool RingProducer::arm_space_wait() noexcept {
  handshake::arm(g_.indices->prod.space_waiter);
  const bool space = !corrupt_ && refresh_head() && tail_ - head_cache_ < g_.capacity;
  if (space || corrupt_) {  // (refresh_head may have just found the ring corrupt: never sleep on that)
    handshake::disarm(g_.indices->prod.space_waiter);
    return false;
  }
  return true;
}

RingConsumer::RingConsumer(const RingGeometry& g) noexcept : g_(g) {
  head_ = published_head_ = g_.indices->cons.head.load(std::memory_order_relaxed);
}

bool RingConsumer::ready(std::uint32_t index) const noexcept {
  auto* e = reinterpret_cast<abi::EntryHeader*>(entry_at(g_, index));
  // acquire: pairs with the release store of seq in RingProducer::publish(). Any other value
  // (an older lap, or whatever a hostile producer wrote) means "not ready".
  return std::atomic_ref<std::uint32_t>(e->seq).load(std::memory_order_acquire) == index + 1;
}

const std::byte* RingConsumer::peek(abi::EntryHeader* hdr) noexcept {
  if (corrupt_ || bad_entry_) [[unlikely]] return nullptr;
  if (!ready(head_)) return nullptr;
  const std::byte* e = entry_at(g_, head_);
  std::memcpy(hdr, e, sizeof *hdr);
  if (hdr->len > g_.max_payload) [[unlikely]] {
    bad_entry_ = true;
    return nullptr;
  }
  return e + sizeof(abi::EntryHeader);
}

bool RingConsumer::release() noexcept {
  if (head_ == published_head_) return false;
  published_head_ = head_;
  // release: pairs with the producer's acquire load of head: we are done reading those slots.
  g_.indices->cons.head.store(head_, std::memory_order_release);
  return handshake::must_signal(g_.indices->prod.space_waiter);
}

bool RingConsumer::arm_data_wait() noexcept {
  handshake::arm(g_.indices->cons.data_waiter);
  if (corrupt_ || bad_entry_ || ready(head_)) {
    handshake::disarm(g_.indices->cons.data_waiter);
    return false;
  }
  return true;
}

}  // namespace uipc
