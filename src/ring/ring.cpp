#include "uipc/ring/ring.hpp"

#include <atomic>

namespace uipc {

namespace {
std::byte* entry_at(const RingGeometry& g, std::uint32_t index) noexcept {
  return g.entries + static_cast<std::size_t>(index & (g.capacity - 1)) * g.stride;
}
}  // namespace

RingProducer::RingProducer(const RingGeometry& g) noexcept : g_(g) {
  p_.ix = g.indices;
  p_.capacity = g.capacity;
  // A producer starts where the consumer's head is (a fresh ring: 0); from then on the private
  // copies rule.
  p_.tail = p_.head_cache = g_.indices->cons.head.load(std::memory_order_acquire);
}

abi::EntryHeader* RingProducer::claim() noexcept {
  if (!p_.room()) return nullptr;
  return reinterpret_cast<abi::EntryHeader*>(entry_at(g_, p_.tail));
}

void RingProducer::publish() noexcept {
  auto* e = reinterpret_cast<abi::EntryHeader*>(entry_at(g_, p_.tail));
  ++p_.tail;
  // release: pairs with the consumer's acquire load of seq in RingConsumer::ready(): the
  // header fields and payload written before are visible once seq is.
  std::atomic_ref<std::uint32_t>(e->seq).store(p_.tail, std::memory_order_release);
}

bool RingProducer::arm_space_wait() noexcept {
  handshake::arm(g_.indices->prod.space_waiter);
  const bool space = !p_.corrupt && p_.refresh_head() && p_.tail - p_.head_cache < g_.capacity;
  if (space || p_.corrupt) {  // (refresh_head may have just found the ring corrupt: never sleep on that)
    handshake::disarm(g_.indices->prod.space_waiter);
    return false;
  }
  return true;
}

RingConsumer::RingConsumer(const RingGeometry& g) noexcept : g_(g) {
  c_.ix = g.indices;
  c_.head = c_.published_head = g_.indices->cons.head.load(std::memory_order_relaxed);
}

bool RingConsumer::ready(std::uint32_t index) const noexcept {
  auto* e = reinterpret_cast<abi::EntryHeader*>(entry_at(g_, index));
  // acquire: pairs with the release store of seq in RingProducer::publish(). Any other value
  // (an older lap, or whatever a hostile producer wrote) means "not ready".
  return std::atomic_ref<std::uint32_t>(e->seq).load(std::memory_order_acquire) == index + 1;
}

const std::byte* RingConsumer::peek(abi::EntryHeader* hdr) noexcept {
  if (corrupt_ || bad_entry_) [[unlikely]] return nullptr;
  if (!ready(c_.head)) return nullptr;
  const std::byte* e = entry_at(g_, c_.head);
  std::memcpy(hdr, e, sizeof *hdr);
  if (hdr->len > g_.max_payload) [[unlikely]] {
    bad_entry_ = true;
    return nullptr;
  }
  return e + sizeof(abi::EntryHeader);
}

bool RingConsumer::release() noexcept {
  if (!c_.publish_head()) return false;
  return handshake::must_signal(g_.indices->prod.space_waiter);
}

bool RingConsumer::arm_data_wait() noexcept {
  handshake::arm(g_.indices->cons.data_waiter);
  if (corrupt_ || bad_entry_ || ready(c_.head)) {
    handshake::disarm(g_.indices->cons.data_waiter);
    return false;
  }
  return true;
}

}  // namespace uipc
