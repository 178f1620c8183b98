// uipc/notify/notification.hpp — the U-notification: a user-mode interrupt target in shared memory.
//
// What it guarantees:
//  * send() sets the slot's raise flag, then its doorbell and vector hint bits, then enters the
//    kernel (one FUTEX_WAKE) only if the receiver announced that it sleeps; a running receiver is
//    reached through the hint words alone. No send is ever lost (DESIGN §3, tests/model/).
//  * take() hands the receiver every slot whose raise flag was set since the last take, exactly
//    once per raise batch (several raises of one slot before a take may coalesce, like an
//    interrupt line). A hint bit whose flag is not set is ignored.
//  * wait() sleeps only after announcing it and re-checking the hints and every watched raise
//    flag; a send that races with falling asleep either is seen by the re-check or finds the
//    receiver asleep and wakes it — also when a hostile peer cleared the hint bits meanwhile.
//  * Isolation between senders (abi/layout.hpp): the control line is mapped read-only by peers;
//    a channel's raise flags live in that channel's own region. A sender can therefore raise
//    only the slot it was given, and can disturb others only by rewriting hint bits, which costs
//    the receiver a look at some flags (forged bits) or defers a raise to the receiver's
//    pre-sleep scan (cleared bits).
// Who may call:
//  * take/wait/watch/unwatch/owner-side functions: only the receiver (one thread: the runtime
//    that owns it); watch/unwatch of a slot the receiver is not dispatching: any thread.
//  * send: any thread of any process that holds a SenderEntry (minted by the receiver, or by a
//    peer for a flag in a region both map).
// What blocks: wait() (futex); nothing else.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "uipc/abi/layout.hpp"
#include "uipc/abi/region.hpp"
#include "uipc/notify/counters.hpp"
#include "uipc/result.hpp"

namespace uipc {

using RaiseFlag = std::atomic<std::uint32_t>;

// The right to raise one slot on one notification: target, slot and raise flag are fixed when
// minted (the receiver's badge); a holder cannot choose another slot through it.
class SenderEntry {
 public:
  SenderEntry() = default;
  SenderEntry(abi::NotificationHints* hints, const abi::NotificationWord* control, RaiseFlag* flag,
              std::uint32_t slot, bool owner)
      : hints_(hints), control_(control), flag_(flag), slot_(slot), owner_(owner) {}
  // Raises the slot. Returns true when it had to wake a sleeping receiver (a kernel entry).
  bool send(Counters& c) const noexcept;
  std::uint32_t slot() const noexcept { return slot_; }
  explicit operator bool() const noexcept { return flag_ != nullptr; }

 private:
  abi::NotificationHints* hints_ = nullptr;
  const abi::NotificationWord* control_ = nullptr;
  RaiseFlag* flag_ = nullptr;
  std::uint32_t slot_ = 0;
  bool owner_ = false;  // minted in the owner's process: may claim the wake-up on `state`
};

class Notification {
 public:
  Notification() = default;
  Notification(Notification&&) noexcept = default;
  Notification& operator=(Notification&&) noexcept = default;
  // A fresh notification: its control line and its hints, each in its own sealed memfd, so
  // they can be handed to other processes (the control line read-only).
  static Result<Notification> create();
  // A peer's notification, received as two memfds (control, hints); both headers are validated;
  // the control line is mapped read-only. Takes ownership of both fds. Only entries minted with
  // mint_remote() are meaningful on the attaching side.
  static Result<Notification> attach(int control_fd, int hints_fd);

  abi::NotificationWord* word() const noexcept { return static_cast<abi::NotificationWord*>(control_.data()); }
  abi::NotificationHints* hints() const noexcept { return static_cast<abi::NotificationHints*>(hints_.data()); }
  int control_fd() const noexcept { return control_.fd(); }
  int hints_fd() const noexcept { return hints_.fd(); }
  void close_fd() noexcept {
    control_.close_fd();
    hints_.close_fd();
  }
  // An entry for a sender in the owner's process: it raises the slot's flag as watched now
  // (the receiver's own when the slot was not watched yet; it is watched from then on).
  SenderEntry mint(std::uint32_t slot) noexcept;
  // An entry for a flag in memory shared with the receiver (a channel region): used on the
  // sending side, with an attached or a local notification. The receiver must watch() the same
  // flag for the same slot.
  SenderEntry mint_remote(std::uint32_t slot, RaiseFlag* flag) const noexcept;

  // Raises the service flag instead of a slot (Runtime::post: the owner's process only, any
  // thread); same wake rule as SenderEntry::send. Returns true when it entered the kernel.
  bool raise_service(Counters& c) noexcept;

  // Receiver side.
  // Slot `slot` is raised through `flag` from now on (nullptr: the receiver's own flag). The
  // flag's memory must stay mapped until unwatch(slot).
  void watch(std::uint32_t slot, RaiseFlag* flag = nullptr) noexcept;
  // Forgets the slot's flag (back to the receiver's own, not scanned before sleeping).
  void unwatch(std::uint32_t slot) noexcept;
  // Non-zero when any hint or the service flag is raised (a cheap relaxed look, no RMW).
  std::uint64_t peek() const noexcept {
    return hints()->pending.load(std::memory_order_relaxed) | word()->service.load(std::memory_order_relaxed);
  }
  // Takes the service flag; true if it was raised.
  bool take_service() noexcept {
    // acquire: pairs with the seq_cst exchange in raise_service (the posted work is visible).
    return word()->service.load(std::memory_order_relaxed) != 0 &&
           word()->service.exchange(0, std::memory_order_acquire) != 0;
  }
  // Takes all pending vectors; calls fn(slot) for each slot whose raise flag was set. Returns
  // the number of slots.
  template <class Fn>
  unsigned take(Fn&& fn) noexcept;
  // Sleeps unless something is pending. timeout_ns < 0: until woken. Returns true if it slept.
  bool wait(std::int64_t timeout_ns, Counters& c) noexcept;
  // Slots whose flag is set but whose hints were lost get their hints back; true if any.
  // wait() calls it before sleeping; the runtime's backstop may call it too.
  bool rescan() noexcept;

 private:
  struct Table {
    RaiseFlag own[abi::kMaxSlots]{};                // flags of slots raised from this process
    std::atomic<RaiseFlag*> flag[abi::kMaxSlots]{};  // where each slot's flag is
    std::atomic<std::uint64_t> watched[abi::kVectors]{};  // bit (slot % 64) of word slot / 64
  };
  Notification(Region control, Region hints);
  RaiseFlag* flag_of(std::uint32_t slot) const noexcept {
    // acquire: pairs with the release store in watch(); the flag's memory is then mapped.
    return table_->flag[slot].load(std::memory_order_acquire);
  }
  Region control_, hints_;
  std::unique_ptr<Table> table_;  // receiver side only (null on an attached notification)
};

template <class Fn>
unsigned Notification::take(Fn&& fn) noexcept {
  abi::NotificationHints* h = hints();
  // acquire: pairs with the senders' seq_cst fetch_or on `pending`, so the flags and doorbell
  // bits set before it (and the ring entries published before those) are visible below.
  std::uint64_t p = h->pending.exchange(0, std::memory_order_acquire);
  unsigned n = 0;
  while (p != 0) {
    const unsigned v = static_cast<unsigned>(__builtin_ctzll(p));
    p &= p - 1;
    // acquire: pairs with the sender's fetch_or on the doorbell word.
    std::uint64_t db = h->doorbell[v].exchange(0, std::memory_order_acquire);
    while (db != 0) {
      const unsigned b = static_cast<unsigned>(__builtin_ctzll(db));
      db &= db - 1;
      const std::uint32_t slot = b * abi::kVectors + v;
      RaiseFlag* f = flag_of(slot);
      // The flag is the raise; the bits were only the way to it. acquire: pairs with the
      // sender's publication before its flag store (ordered by its seq_cst RMWs).
      if (f->load(std::memory_order_relaxed) == 0 || f->exchange(0, std::memory_order_acquire) == 0) continue;
      fn(slot);
      ++n;
    }
  }
  return n;
}

}  // namespace uipc
