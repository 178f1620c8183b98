#include "uipc/ring/ring.hpp"

#include <atomic>

namespace uipc {

RingProducer::RingProducer(const RingGeometry& g) noexcept : g_(g) {
  p_.ix = g.indices;
  p_.capacity = g.capacity;
  // A producer starts where the consumer's head is (a fresh ring: 0); from then on the private
  // copies rule.
  p_.tail = p_.head_cache = g_.indices->cons.head.load(std::memory_order_acquire);
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
