#include "uipc/notify/notification.hpp"

#include "uipc/notify/futex.hpp"

namespace uipc {

namespace {
constexpr auto kSleeping = static_cast<std::uint32_t>(abi::ReceiverState::sleeping);
constexpr auto kRunning = static_cast<std::uint32_t>(abi::ReceiverState::running);

// After a hint or the service flag was raised: wake the receiver if it sleeps. `owner`: the
// sender may write the control line (same process), so only the sender that wins the
// exchange pays the kernel entry; a peer, whose mapping is read-only, wakes whenever it sees
// `sleeping` (a few redundant FUTEX_WAKEs are possible while the receiver is waking up).
bool wake_if_sleeping(const abi::NotificationWord* w, abi::NotificationHints* h, bool owner, Counters& c) noexcept {
  // Full fence between publishing the raise and reading `state`: pairs with the fence in
  // Notification::wait between announcing sleep and re-reading the hints and flags
  // (store-buffer pattern).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (w->state.load(std::memory_order_relaxed) != kSleeping) return false;
  if (owner && const_cast<abi::NotificationWord*>(w)->state.exchange(kRunning, std::memory_order_acq_rel) != kSleeping)
    return false;
  // Changing the futex word makes a receiver that has not blocked yet return at once.
  h->wake.fetch_add(1, std::memory_order_seq_cst);
  futex::wake(&h->wake, 1);
  c.kernel_entries.add();
  return true;
}
}  // namespace

bool SenderEntry::send(Counters& c) const noexcept {
  abi::NotificationHints* h = hints_;
  const std::uint32_t v = abi::slot_vector(slot_);
  const std::uint32_t b = abi::slot_doorbell_bit(slot_);
  // The flag first: it is the raise. release: whoever takes it (acquire) sees what this sender
  // published before (ring entries).
  flag_->store(1, std::memory_order_release);
  // Doorbell before pending: the receiver takes pending first, then the doorbell, so a pending
  // bit it sees always finds its doorbell bit (seq_cst: both RMWs are in the single total order).
  h->doorbell[v].fetch_or(std::uint64_t{1} << b, std::memory_order_seq_cst);
  h->pending.fetch_or(std::uint64_t{1} << v, std::memory_order_seq_cst);
  c.sent.add();
  return wake_if_sleeping(control_, h, owner_, c);
}

bool Notification::raise_service(Counters& c) noexcept {
  word()->service.exchange(1, std::memory_order_seq_cst);
  return wake_if_sleeping(word(), hints(), true, c);
}

Notification::Notification(Region control, Region hints)
    : control_(std::move(control)), hints_(std::move(hints)) {}

Result<Notification> Notification::create() {
  auto control = Region::create(sizeof(abi::NotificationWord), "uipc-notification", Region::Sharing::owner_writes_only);
  if (!control) return control.error();
  auto hints = Region::create(sizeof(abi::NotificationHints), "uipc-notification-hints");
  if (!hints) return hints.error();
  auto* w = new (control->data()) abi::NotificationWord{};
  w->version = abi::kAbiVersion;
  w->magic = abi::kNotificationMagic;
  auto* h = new (hints->data()) abi::NotificationHints{};
  h->version = abi::kAbiVersion;
  h->magic = abi::kHintsMagic;
  Notification n(std::move(control.value()), std::move(hints.value()));
  n.table_ = std::make_unique<Table>();
  for (std::uint32_t s = 0; s < abi::kMaxSlots; ++s) n.table_->flag[s].store(&n.table_->own[s], std::memory_order_relaxed);
  return n;
}

Result<Notification> Notification::attach(int control_fd, int hints_fd) {
  auto control = Region::attach(control_fd, sizeof(abi::NotificationWord), Region::Access::read_only);
  auto hints = Region::attach(hints_fd, sizeof(abi::NotificationHints));
  if (!control) return control.error();
  if (!hints) return hints.error();
  const auto* w = static_cast<const abi::NotificationWord*>(control->data());
  const auto* h = static_cast<const abi::NotificationHints*>(hints->data());
  if (w->magic != abi::kNotificationMagic || h->magic != abi::kHintsMagic) return std::errc::invalid_argument;
  if (w->version != abi::kAbiVersion || h->version != abi::kAbiVersion) return std::errc::protocol_not_supported;
  return Notification(std::move(control.value()), std::move(hints.value()));
}

SenderEntry Notification::mint(std::uint32_t slot) noexcept {
  if (slot >= abi::kMaxSlots || !table_) return {};
  if ((table_->watched[slot / 64].load(std::memory_order_acquire) & (std::uint64_t{1} << (slot % 64))) == 0)
    watch(slot, nullptr);
  return {hints(), word(), flag_of(slot), slot, true};
}

SenderEntry Notification::mint_remote(std::uint32_t slot, RaiseFlag* flag) const noexcept {
  if (slot >= abi::kMaxSlots || flag == nullptr) return {};
  return {hints(), word(), flag, slot, table_ != nullptr};
}

void Notification::watch(std::uint32_t slot, RaiseFlag* flag) noexcept {
  if (slot >= abi::kMaxSlots || !table_) return;
  // release: pairs with flag_of()'s acquire load.
  table_->flag[slot].store(flag != nullptr ? flag : &table_->own[slot], std::memory_order_release);
  table_->watched[slot / 64].fetch_or(std::uint64_t{1} << (slot % 64), std::memory_order_release);
}

void Notification::unwatch(std::uint32_t slot) noexcept {
  if (slot >= abi::kMaxSlots || !table_) return;
  table_->watched[slot / 64].fetch_and(~(std::uint64_t{1} << (slot % 64)), std::memory_order_relaxed);
  table_->flag[slot].store(&table_->own[slot], std::memory_order_release);
}

bool Notification::rescan() noexcept {
  if (!table_) return false;
  abi::NotificationHints* h = hints();
  bool any = false;
  for (std::uint32_t w = 0; w < abi::kVectors; ++w) {
    std::uint64_t bits = table_->watched[w].load(std::memory_order_acquire);
    while (bits != 0) {
      const std::uint32_t slot = w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(bits));
      bits &= bits - 1;
      if (flag_of(slot)->load(std::memory_order_relaxed) == 0) continue;
      // Give the slot its hints back; take() then finds the flag.
      h->doorbell[abi::slot_vector(slot)].fetch_or(std::uint64_t{1} << abi::slot_doorbell_bit(slot),
                                                   std::memory_order_relaxed);
      h->pending.fetch_or(std::uint64_t{1} << abi::slot_vector(slot), std::memory_order_relaxed);
      any = true;
    }
  }
  return any;
}

bool Notification::wait(std::int64_t timeout_ns, Counters& c) noexcept {
  abi::NotificationWord* w = word();
  w->state.store(kSleeping, std::memory_order_relaxed);
  const std::uint32_t seq = hints()->wake.load(std::memory_order_relaxed);
  // Pairs with the fence in SenderEntry::send: either that sender sees `sleeping` and wakes us,
  // or we see its hint or its flag here and do not sleep. The flags are looked at too because
  // the hints are writable by every peer: one may have cleared the bit the sender set.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (peek() != 0 || rescan()) {
    w->state.store(kRunning, std::memory_order_relaxed);
    return false;
  }
  futex::wait(&hints()->wake, seq, timeout_ns);
  c.kernel_entries.add();
  c.sleeps.add();
  w->state.store(kRunning, std::memory_order_relaxed);
  return true;
}

}  // namespace uipc
