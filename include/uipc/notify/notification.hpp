// uipc/notify/notification.hpp — the U-notification: a user-mode interrupt target in shared memory.
//
// What it guarantees:
//  * send(slot) sets the slot's doorbell bit and its vector's pending bit, then enters the kernel
//    (one FUTEX_WAKE) only if the receiver announced that it sleeps; a running receiver is
//    reached through the pending word alone. No send is ever lost (DESIGN §3, tests/model/).
//  * take() hands the receiver every slot raised since the last take, exactly once per raise
//    batch (several raises of one slot before a take may coalesce, like an interrupt line).
//  * wait() sleeps only after announcing it and re-checking `pending`; a send that races with
//    falling asleep either is seen by the re-check or finds the receiver asleep and wakes it.
// Who may call:
//  * take/wait/owner-side functions: only the receiver (one thread: the runtime that owns it);
//  * send: any thread of any process that holds a SenderEntry (a slot minted by the receiver).
// What blocks: wait() (futex); nothing else.
#pragma once

#include <cstdint>

#include "uipc/abi/layout.hpp"
#include "uipc/abi/region.hpp"
#include "uipc/notify/counters.hpp"
#include "uipc/result.hpp"

namespace uipc {

// The right to raise one slot on one notification: target and slot are fixed when minted
// (the receiver's badge); a holder cannot choose another slot through it.
class SenderEntry {
 public:
  SenderEntry() = default;
  SenderEntry(abi::NotificationWord* target, std::uint32_t slot) : target_(target), slot_(slot) {}
  // Raises the slot. Returns true when it had to wake a sleeping receiver (a kernel entry).
  bool send(Counters& c) const noexcept;
  // Raises the service flag instead of a slot (Runtime::post); same wake rule.
  static bool raise_service(abi::NotificationWord* target, Counters& c) noexcept;
  std::uint32_t slot() const noexcept { return slot_; }
  explicit operator bool() const noexcept { return target_ != nullptr; }

 private:
  abi::NotificationWord* target_ = nullptr;
  std::uint32_t slot_ = 0;
};

class Notification {
 public:
  Notification() = default;
  // A fresh notification word in its own sealed memfd, so it can be handed to other processes.
  static Result<Notification> create();
  // A peer's notification, received as a memfd; the header is validated. Only send() through
  // entries minted from it is meaningful on the attaching side.
  static Result<Notification> attach(int fd);

  abi::NotificationWord* word() const noexcept { return static_cast<abi::NotificationWord*>(region_.data()); }
  int fd() const noexcept { return region_.fd(); }
  void close_fd() noexcept { region_.close_fd(); }
  SenderEntry mint(std::uint32_t slot) const noexcept { return {word(), slot}; }

  // Receiver side.
  // Non-zero when any slot or the service flag is raised (a cheap relaxed look, no RMW).
  std::uint64_t peek() const noexcept {
    return word()->pending.load(std::memory_order_relaxed) | word()->service.load(std::memory_order_relaxed);
  }
  // Takes the service flag; true if it was raised.
  bool take_service() noexcept {
    // acquire: pairs with the seq_cst exchange in raise_service (the posted work is visible).
    return word()->service.load(std::memory_order_relaxed) != 0 &&
           word()->service.exchange(0, std::memory_order_acquire) != 0;
  }
  // Takes all pending vectors; calls fn(slot) for each raised slot. Returns the number of slots.
  template <class Fn>
  unsigned take(Fn&& fn) noexcept;
  // Sleeps unless something is pending. timeout_ns < 0: until woken. Returns true if it slept.
  bool wait(std::int64_t timeout_ns, Counters& c) noexcept;

 private:
  explicit Notification(Region r) : region_(std::move(r)) {}
  Region region_;
};

template <class Fn>
unsigned Notification::take(Fn&& fn) noexcept {
  abi::NotificationWord* w = word();
  // acquire: pairs with the senders' seq_cst fetch_or on `pending`, so the doorbell bits set
  // before it (and the ring entries published before those) are visible below.
  std::uint64_t p = w->pending.exchange(0, std::memory_order_acquire);
  unsigned n = 0;
  while (p != 0) {
    const unsigned v = static_cast<unsigned>(__builtin_ctzll(p));
    p &= p - 1;
    // acquire: pairs with the sender's fetch_or on the doorbell word.
    std::uint64_t db = w->doorbell[v].exchange(0, std::memory_order_acquire);
    while (db != 0) {
      const unsigned b = static_cast<unsigned>(__builtin_ctzll(db));
      db &= db - 1;
      fn(b * abi::kVectors + v);
      ++n;
    }
  }
  return n;
}

}  // namespace uipc
