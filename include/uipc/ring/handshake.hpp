// uipc/ring/handshake.hpp — the wake handshake of DESIGN §3, written once.
//
// Two parties share a data index and a waiter flag. The waiter (a consumer looking for data, a
// producer looking for space, an executor core looking for work):
//     arm(flag)      — flag = 1, then a full fence
//     re-check the index; if there is something after all: disarm(flag) and carry on;
//     otherwise suspend until signalled.
// The publisher:
//     publish the index (release), then must_signal(flag) — a full fence, then take the flag:
//     true means the waiter armed before our publish could be seen, so it must be signalled.
// The two full fences make this the store-buffer pattern: at least one side sees the other's
// store, so a wake-up is never lost (model: tests/model/handshake.pml). Taking the flag with an
// exchange means only one publisher pays for a signal per arming.
#pragma once

#include <atomic>
#include <cstdint>

namespace uipc::handshake {

inline void arm(std::atomic<std::uint32_t>& flag) noexcept {
  flag.store(1, std::memory_order_relaxed);
  // Pairs with the fence in must_signal(): orders the flag store before the waiter's re-check.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

inline void disarm(std::atomic<std::uint32_t>& flag) noexcept { flag.store(0, std::memory_order_relaxed); }

inline bool must_signal(std::atomic<std::uint32_t>& flag) noexcept {
  // Pairs with the fence in arm(): orders the publisher's index store before the flag load.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (flag.load(std::memory_order_relaxed) == 0) return false;
  return flag.exchange(0, std::memory_order_acq_rel) != 0;
}

}  // namespace uipc::handshake
