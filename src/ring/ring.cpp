#include "uipc/ring/ring.hpp"

namespace uipc {

namespace {
std::byte* entry_at(const RingGeometry& g, std::uint32_t index) noexcept {
  return g.entries + static_cast<std::size_t>(index & (g.capacity - 1)) * g.stride;
}
}  // namespace

RingProducer::RingProducer(const RingGeometry& g) noexcept : g_(g) {
  // The shared indices are trusted once, at attach, after the header was validated; from then
  // on the private copies rule.
  tail_ = g_.indices->prod.tail.load(std::memory_order_relaxed);
  head_cache_ = g_.indices->cons.head.load(std::memory_order_acquire);
  if (tail_ - head_cache_ > g_.capacity) corrupt_ = true;
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
  ++tail_;
  // release: pairs with the consumer's acquire load of tail in refresh_tail(): the entry
  // written before is visible once the new tail is.
  g_.indices->prod.tail.store(tail_, std::memory_order_release);
}

bool RingProducer::arm_space_wait() noexcept {
  handshake::arm(g_.indices->prod.space_waiter);
  if (corrupt_ || (refresh_head() && tail_ - head_cache_ < g_.capacity)) {
    handshake::disarm(g_.indices->prod.space_waiter);
    return false;
  }
  return true;
}

RingConsumer::RingConsumer(const RingGeometry& g) noexcept : g_(g) {
  head_ = published_head_ = g_.indices->cons.head.load(std::memory_order_relaxed);
  tail_cache_ = g_.indices->prod.tail.load(std::memory_order_acquire);
  if (tail_cache_ - head_ > g_.capacity) corrupt_ = true;
}

bool RingConsumer::refresh_tail() noexcept {
  // acquire: pairs with the producer's release store in RingProducer::publish().
  const std::uint32_t t = g_.indices->prod.tail.load(std::memory_order_acquire);
  // A valid tail lies in [tail_cache_, published_head_ + capacity].
  if (t - tail_cache_ > published_head_ + g_.capacity - tail_cache_) {
    corrupt_ = true;
    return false;
  }
  tail_cache_ = t;
  return true;
}

const std::byte* RingConsumer::peek(abi::EntryHeader* hdr) noexcept {
  if (corrupt_ || bad_entry_) [[unlikely]] return nullptr;
  if (head_ == tail_cache_) {
    if (!refresh_tail() || head_ == tail_cache_) return nullptr;
  }
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
  if (corrupt_ || (refresh_tail() && head_ != tail_cache_)) {
    handshake::disarm(g_.indices->cons.data_waiter);
    return false;
  }
  return true;
}

}  // namespace uipc
