#include "uipc/notify/notification.hpp"

#include "uipc/notify/futex.hpp"

namespace uipc {

namespace {
// After a pending bit or the service flag was raised: wake the receiver if it sleeps.
bool wake_if_sleeping(abi::NotificationWord* w, Counters& c) noexcept {
  // Full fence between publishing `pending` and reading `state`: pairs with the fence in
  // Notification::wait between announcing sleep and re-reading `pending` (store-buffer pattern).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (w->state.load(std::memory_order_relaxed) != static_cast<std::uint32_t>(abi::ReceiverState::sleeping))
    return false;
  // Only one sender wins the exchange and pays the kernel entry; the rest see `running`.
  if (w->state.exchange(static_cast<std::uint32_t>(abi::ReceiverState::running), std::memory_order_acq_rel) !=
      static_cast<std::uint32_t>(abi::ReceiverState::sleeping))
    return false;
  futex::wake(&w->state, 1);
  c.kernel_entries.add();
  return true;
}
}  // namespace

bool SenderEntry::send(Counters& c) const noexcept {
  abi::NotificationWord* w = target_;
  const std::uint32_t v = abi::slot_vector(slot_);
  const std::uint32_t b = abi::slot_doorbell_bit(slot_);
  // Doorbell before pending: the receiver takes pending first, then the doorbell, so a pending
  // bit it sees always finds its doorbell bit (seq_cst: both RMWs are in the single total order).
  w->doorbell[v].fetch_or(std::uint64_t{1} << b, std::memory_order_seq_cst);
  w->pending.fetch_or(std::uint64_t{1} << v, std::memory_order_seq_cst);
  c.sent.add();
  return wake_if_sleeping(w, c);
}

bool SenderEntry::raise_service(abi::NotificationWord* w, Counters& c) noexcept {
  w->service.exchange(1, std::memory_order_seq_cst);
  return wake_if_sleeping(w, c);
}

Result<Notification> Notification::create() {
  auto r = Region::create(sizeof(abi::NotificationWord), "uipc-notification");
  if (!r) return r.error();
  auto* w = new (r->data()) abi::NotificationWord{};
  w->version = abi::kAbiVersion;
  w->magic = abi::kNotificationMagic;
  return Notification(std::move(r.value()));
}

Result<Notification> Notification::attach(int fd) {
  auto r = Region::attach(fd, sizeof(abi::NotificationWord));
  if (!r) return r.error();
  const auto* w = static_cast<const abi::NotificationWord*>(r->data());
  if (w->magic != abi::kNotificationMagic) return std::errc::invalid_argument;
  if (w->version != abi::kAbiVersion) return std::errc::protocol_not_supported;
  return Notification(std::move(r.value()));
}

bool Notification::wait(std::int64_t timeout_ns, Counters& c) noexcept {
  abi::NotificationWord* w = word();
  constexpr auto sleeping = static_cast<std::uint32_t>(abi::ReceiverState::sleeping);
  constexpr auto running = static_cast<std::uint32_t>(abi::ReceiverState::running);
  w->state.store(sleeping, std::memory_order_relaxed);
  // Pairs with the fence in SenderEntry::send: either that sender sees `sleeping` and wakes us,
  // or we see its pending bit here and do not sleep.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (peek() != 0) {
    w->state.store(running, std::memory_order_relaxed);
    return false;
  }
  futex::wait(&w->state, sleeping, timeout_ns);
  c.kernel_entries.add();
  c.sleeps.add();
  w->state.store(running, std::memory_order_relaxed);
  return true;
}

}  // namespace uipc
