// The synchronous baseline (see include/uipc/ipc/sync_call.hpp for the contract and
// docs/sync-baseline.md for the protocol and why it is a fair baseline).
#include "uipc/ipc/sync_call.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <utility>

#include "uipc/notify/futex.hpp"
#include "uipc/ring/handshake.hpp"

namespace uipc::ipc {

namespace {

using Clock = std::chrono::steady_clock;
using sync_abi::Doorbell;
using sync_abi::Header;
using sync_abi::HeaderInfo;
using sync_abi::Layout;
using sync_abi::SlotControl;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spin iterations between two clock reads / closed checks.
constexpr unsigned kSpinCheckEvery = 16;

inline SlotControl* slot_at(std::byte* slots, const Layout& l, std::uint32_t slot) noexcept {
  return reinterpret_cast<SlotControl*>(slots + std::size_t{slot} * l.slot_stride);
}

inline bool is_closed(const Header* h) noexcept {
  // relaxed: `closed` carries no data. Sleepers re-check it after their arm() fence, which pairs
  // with the fence in the closer's must_signal(), so a sleeper never misses it.
  return h->closed.load(std::memory_order_relaxed) != 0;
}

// Wakes `flag`'s owner if it armed (the publisher half of the handshake). Returns true when a
// FUTEX_WAKE was made.
inline bool signal(std::atomic<std::uint32_t>& flag) noexcept {
  if (!handshake::must_signal(flag)) return false;
  futex::wake(&flag, 1);
  return true;
}

void close_mapping(Header* h, Doorbell* db, std::byte* slots, const Layout& l) noexcept {
  // relaxed: see is_closed(); every signal() below starts with a full fence that orders this
  // store before the flag loads (pairs with the fence in each sleeper's arm()).
  h->closed.store(1, std::memory_order_relaxed);
  signal(db->server_sleeping);
  for (std::uint32_t s = 0; s < l.slots; ++s) signal(slot_at(slots, l, s)->client_sleeping);
}

}  // namespace

void SyncCounters::take_over(const SyncCounters& o) noexcept {
  const SyncStats s = o.snapshot();
  calls.v.store(s.calls, std::memory_order_relaxed);
  spins.v.store(s.spins, std::memory_order_relaxed);
  sleeps.v.store(s.sleeps, std::memory_order_relaxed);
  futex_waits.v.store(s.futex_waits, std::memory_order_relaxed);
  futex_wakes.v.store(s.futex_wakes, std::memory_order_relaxed);
  wakes_suppressed.v.store(s.wakes_suppressed, std::memory_order_relaxed);
}

// =============================================================================================
// SyncEndpoint

Doorbell* SyncEndpoint::doorbell() const noexcept {
  return reinterpret_cast<Doorbell*>(static_cast<std::byte*>(region_.data()) + layout_.doorbell_offset);
}

SlotControl* SyncEndpoint::slot_control(std::uint32_t slot) const noexcept {
  return slot_at(static_cast<std::byte*>(region_.data()) + layout_.slots_offset, layout_, slot);
}

Result<SyncEndpoint> SyncEndpoint::create(std::uint32_t slots, std::uint32_t max_payload) {
  if (!sync_abi::layout_args_ok(slots, max_payload)) return std::errc::invalid_argument;
  const Layout l = sync_abi::layout_for(slots, max_payload);
  auto r = Region::create(l.region_bytes, "uipc-sync");
  if (!r) return r.error();
  auto* base = static_cast<std::byte*>(r->data());
  auto* h = new (base) Header{};
  h->info = HeaderInfo{sync_abi::kMagic, sync_abi::kVersion, static_cast<std::uint32_t>(sizeof(Header)),
                       l.region_bytes, l.slots, l.max_payload, l.slot_stride, l.words,
                       l.doorbell_offset, l.slots_offset, 0};
  new (base + l.doorbell_offset) Doorbell{};
  // Slot control lines are left as the memfd's zero pages: all-zero is their initial state
  // (unbound, no request, reply_seq 0, not sleeping), exactly what an attaching peer sees.
  return SyncEndpoint(std::move(r.value()), l);
}

Result<SyncEndpoint> SyncEndpoint::attach(int memfd) {
  auto r = Region::attach(memfd, sizeof(Header));
  if (!r) return r.error();
  // One copy of the header; only the copy is looked at, the mapping's header never again.
  HeaderInfo info;
  std::memcpy(&info, r->data(), sizeof info);
  if (info.magic != sync_abi::kMagic) return std::errc::wrong_protocol_type;
  if (info.version != sync_abi::kVersion) return std::errc::protocol_not_supported;
  if (info.header_bytes != sizeof(Header)) return std::errc::invalid_argument;
  if (!sync_abi::layout_args_ok(info.slots, info.max_payload)) return std::errc::invalid_argument;
  const Layout l = sync_abi::layout_for(info.slots, info.max_payload);
  if (info.slot_stride != l.slot_stride || info.words != l.words || info.doorbell_offset != l.doorbell_offset ||
      info.slots_offset != l.slots_offset || info.region_bytes != l.region_bytes)
    return std::errc::invalid_argument;
  if (l.region_bytes > r->size()) return std::errc::invalid_argument;  // memfd too short for it
  return SyncEndpoint(std::move(r.value()), l);
}

Result<SyncClient> SyncEndpoint::client(std::uint32_t slot, SyncOptions opt) const {
  if (!region_) return std::errc::bad_file_descriptor;
  if (slot >= layout_.slots) return std::errc::invalid_argument;
  if (is_closed(header())) return std::errc::connection_aborted;
  SlotControl* c = slot_control(slot);
  std::uint32_t expected = 0;
  // acquire: pairs with the release store in SyncClient::release() of the slot's previous
  // client, so everything it did to the slot happens before we use it.
  if (!c->bound.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed))
    return std::errc::device_or_resource_busy;
  SyncClient cl;
  cl.hdr_ = header();
  cl.db_ = doorbell();
  cl.ctl_ = c;
  cl.buf_ = reinterpret_cast<std::byte*>(c + 1);
  cl.slot_ = slot;
  cl.max_payload_ = layout_.max_payload;
  cl.word_ = slot / sync_abi::kWordBits;
  cl.bit_ = std::uint64_t{1} << (slot % sync_abi::kWordBits);
  cl.word_bit_ = layout_.words > 1 ? std::uint64_t{1} << cl.word_ : 0;
  // Continue after the last sequence number this slot was answered with, so a reply left in the
  // slot by a previous client can never match our first call. relaxed: ordered by the CAS above.
  cl.seq_ = c->reply_seq.load(std::memory_order_relaxed);
  cl.spin_ns_ = opt.spin_ns;
  return cl;
}

Result<SyncServer> SyncEndpoint::server(SyncOptions opt) const {
  if (!region_) return std::errc::bad_file_descriptor;
  Header* h = header();
  if (is_closed(h)) return std::errc::connection_aborted;
  std::uint32_t expected = 0;
  // acquire: pairs with the release store in SyncServer::release() (a previous server's writes).
  if (!h->server_bound.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed))
    return std::errc::device_or_resource_busy;
  SyncServer s;
  s.hdr_ = h;
  s.db_ = doorbell();
  s.slots_ = static_cast<std::byte*>(region_.data()) + layout_.slots_offset;
  s.layout_ = layout_;
  const std::uint32_t tail = layout_.slots % sync_abi::kWordBits;
  s.last_word_mask_ = tail == 0 ? ~std::uint64_t{0} : (std::uint64_t{1} << tail) - 1;
  s.spin_ns_ = opt.spin_ns;
  return s;
}

void SyncEndpoint::close() const noexcept {
  if (!region_) return;
  close_mapping(header(), doorbell(), static_cast<std::byte*>(region_.data()) + layout_.slots_offset, layout_);
}

bool SyncEndpoint::closed() const noexcept { return !region_ || is_closed(header()); }

// =============================================================================================
// SyncClient

SyncClient::~SyncClient() { release(); }

SyncClient::SyncClient(SyncClient&& o) noexcept
    : hdr_(std::exchange(o.hdr_, nullptr)),
      db_(std::exchange(o.db_, nullptr)),
      ctl_(std::exchange(o.ctl_, nullptr)),
      buf_(std::exchange(o.buf_, nullptr)),
      slot_(o.slot_),
      max_payload_(o.max_payload_),
      bit_(o.bit_),
      word_bit_(o.word_bit_),
      word_(o.word_),
      seq_(o.seq_),
      spin_ns_(o.spin_ns_) {
  counters_.take_over(o.counters_);
}

SyncClient& SyncClient::operator=(SyncClient&& o) noexcept {
  if (this != &o) {
    release();
    hdr_ = std::exchange(o.hdr_, nullptr);
    db_ = std::exchange(o.db_, nullptr);
    ctl_ = std::exchange(o.ctl_, nullptr);
    buf_ = std::exchange(o.buf_, nullptr);
    slot_ = o.slot_;
    max_payload_ = o.max_payload_;
    bit_ = o.bit_;
    word_bit_ = o.word_bit_;
    word_ = o.word_;
    seq_ = o.seq_;
    spin_ns_ = o.spin_ns_;
    counters_.take_over(o.counters_);
  }
  return *this;
}

void SyncClient::release() noexcept {
  if (ctl_ == nullptr) return;
  // release: pairs with the acquire CAS in SyncEndpoint::client() of the slot's next client.
  ctl_->bound.store(0, std::memory_order_release);
  hdr_ = nullptr;
  db_ = nullptr;
  ctl_ = nullptr;
  buf_ = nullptr;
}

Result<std::size_t> SyncClient::call(std::span<const std::byte> req, std::span<std::byte> reply) noexcept {
  if (ctl_ == nullptr) return std::errc::bad_file_descriptor;
  if (req.size() > max_payload_) return std::errc::message_size;
  if (is_closed(hdr_)) return std::errc::connection_aborted;
  counters_.calls.add();
  const std::uint32_t seq = ++seq_;

  // 1. Write the request into our slot (we own it: no call of ours is outstanding).
  if (!req.empty()) std::memcpy(buf_, req.data(), req.size());
  // relaxed: both are published by the release fetch_or on the doorbell below.
  ctl_->req_len.store(static_cast<std::uint32_t>(req.size()), std::memory_order_relaxed);
  ctl_->req_seq.store(seq, std::memory_order_relaxed);

  // 2. Ring the server's doorbell. release: pairs with the acquire exchange of the same word in
  //    SyncServer::take(), which makes the slot writes above visible to the server.
  db_->pending[word_].fetch_or(bit_, std::memory_order_release);
  if (word_bit_ != 0) {
    // release: pairs with the acquire exchange of `summary` in SyncServer::take(); whoever reads
    // our summary bit then finds our pending bit (our fetch_or precedes its exchange).
    db_->summary.fetch_or(word_bit_, std::memory_order_release);
  }
  // 3. Full fence, then wake the server only if it armed its sleeping flag.
  if (signal(db_->server_sleeping)) {
    counters_.futex_wakes.add();
  } else {
    counters_.wakes_suppressed.add();
  }

  // 4. Block for our reply.
  if (!wait_reply(seq)) return std::errc::connection_aborted;
  // relaxed: ordered after the acquire load of reply_seq that returned `seq` in wait_reply().
  const std::uint32_t status = ctl_->reply_status.load(std::memory_order_relaxed);
  const std::uint32_t len = ctl_->reply_len.load(std::memory_order_relaxed);
  if (status != 0) return status < 4096 ? errno_code(static_cast<int>(status)) : make_error_code(std::errc::protocol_error);
  if (len > max_payload_) return std::errc::protocol_error;
  if (len > reply.size()) return std::errc::message_size;
  if (len != 0) std::memcpy(reply.data(), buf_, len);
  return std::size_t{len};
}

bool SyncClient::wait_reply(std::uint32_t seq) noexcept {
  SlotControl* c = ctl_;
  if (spin_ns_ > 0) {
    const auto deadline = Clock::now() + std::chrono::nanoseconds(spin_ns_);
    for (unsigned i = 1;; ++i) {
      // acquire: pairs with the release store of reply_seq in SyncServer::finish(): the reply's
      // payload, length and status are visible once we see our sequence number.
      if (c->reply_seq.load(std::memory_order_acquire) == seq) {
        counters_.spins.add();
        return true;
      }
      if (i % kSpinCheckEvery == 0) {
        if (is_closed(hdr_)) return false;
        if (Clock::now() >= deadline) break;
      }
      cpu_relax();
    }
  }
  counters_.sleeps.add();
  for (;;) {
    // acquire: as above.
    if (c->reply_seq.load(std::memory_order_acquire) == seq) break;
    if (is_closed(hdr_)) {
      handshake::disarm(c->client_sleeping);
      return false;
    }
    handshake::arm(c->client_sleeping);  // flag = 1, full fence (pairs with finish()/close())
    // relaxed: only decides whether to sleep; the loop head re-reads with acquire.
    if (c->reply_seq.load(std::memory_order_relaxed) == seq || is_closed(hdr_)) continue;
    counters_.futex_waits.add();
    futex::wait(&c->client_sleeping, 1, -1);  // returns at once if a waker already took the flag
  }
  handshake::disarm(c->client_sleeping);
  return true;
}

// =============================================================================================
// SyncServer

SyncServer::~SyncServer() { release(); }

SyncServer::SyncServer(SyncServer&& o) noexcept
    : hdr_(std::exchange(o.hdr_, nullptr)),
      db_(std::exchange(o.db_, nullptr)),
      slots_(std::exchange(o.slots_, nullptr)),
      layout_(o.layout_),
      last_word_mask_(o.last_word_mask_),
      spin_ns_(o.spin_ns_),
      cur_(std::exchange(o.cur_, kNone)),
      cur_seq_(o.cur_seq_),
      taken_words_(std::exchange(o.taken_words_, 0)) {
  std::memcpy(taken_, o.taken_, sizeof taken_);
  counters_.take_over(o.counters_);
}

SyncServer& SyncServer::operator=(SyncServer&& o) noexcept {
  if (this != &o) {
    release();
    hdr_ = std::exchange(o.hdr_, nullptr);
    db_ = std::exchange(o.db_, nullptr);
    slots_ = std::exchange(o.slots_, nullptr);
    layout_ = o.layout_;
    last_word_mask_ = o.last_word_mask_;
    spin_ns_ = o.spin_ns_;
    cur_ = std::exchange(o.cur_, kNone);
    cur_seq_ = o.cur_seq_;
    taken_words_ = std::exchange(o.taken_words_, 0);
    std::memcpy(taken_, o.taken_, sizeof taken_);
    counters_.take_over(o.counters_);
  }
  return *this;
}

void SyncServer::release() noexcept {
  if (hdr_ == nullptr) return;
  if (cur_ != kNone) finish(cur_, cur_seq_, 0, ECANCELED);
  cur_ = kNone;
  // Callers already taken from the doorbell but not served, and any calling later, must not wait
  // for a server that is gone: close the endpoint (wakes them with connection_aborted).
  close_mapping(hdr_, db_, slots_, layout_);
  taken_words_ = 0;
  // release: pairs with the acquire CAS in SyncEndpoint::server().
  hdr_->server_bound.store(0, std::memory_order_release);
  hdr_ = nullptr;
  db_ = nullptr;
  slots_ = nullptr;
}

SlotControl* SyncServer::ctl(std::uint32_t slot) const noexcept { return slot_at(slots_, layout_, slot); }
std::byte* SyncServer::buf(std::uint32_t slot) const noexcept { return reinterpret_cast<std::byte*>(ctl(slot) + 1); }

void SyncServer::finish(std::uint32_t slot, std::uint32_t seq, std::uint32_t len, std::uint32_t status) noexcept {
  SlotControl* c = ctl(slot);
  // relaxed: both are published by the release store of reply_seq below.
  c->reply_len.store(len, std::memory_order_relaxed);
  c->reply_status.store(status, std::memory_order_relaxed);
  // release: pairs with the client's acquire load of reply_seq in SyncClient::wait_reply(); makes
  // the reply payload, length and status visible to it. After this the slot is the client's.
  c->reply_seq.store(seq, std::memory_order_release);
  // Full fence, then wake the client only if it armed its sleeping flag.
  if (signal(c->client_sleeping)) {
    counters_.futex_wakes.add();
  } else {
    counters_.wakes_suppressed.add();
  }
}

bool SyncServer::any_pending() const noexcept {
  // relaxed: only a hint whether to take(); take()'s exchanges do the acquiring.
  if (layout_.words == 1) return db_->pending[0].load(std::memory_order_relaxed) != 0;
  return db_->summary.load(std::memory_order_relaxed) != 0;
}

bool SyncServer::take() noexcept {
  if (!any_pending()) return false;
  if (layout_.words == 1) {
    // acquire: pairs with the clients' release fetch_or in SyncClient::call(); their slot writes
    // (req_seq, req_len, payload) are visible below. Bits past the last slot (a hostile peer's)
    // are dropped.
    const std::uint64_t bits = db_->pending[0].exchange(0, std::memory_order_acquire) & last_word_mask_;
    if (bits != 0) {
      taken_[0] = bits;
      taken_words_ = 1;
    }
    return taken_words_ != 0;
  }
  const std::uint64_t valid_words =
      layout_.words == sync_abi::kWordBits ? ~std::uint64_t{0} : (std::uint64_t{1} << layout_.words) - 1;
  // acquire: pairs with the clients' release fetch_or of `summary`: a client's pending-word
  // fetch_or happens before our exchange of that word below, so we collect its bit.
  std::uint64_t words = db_->summary.exchange(0, std::memory_order_acquire) & valid_words;
  while (words != 0) {
    const unsigned w = static_cast<unsigned>(__builtin_ctzll(words));
    words &= words - 1;
    const std::uint64_t mask = w + 1 == layout_.words ? last_word_mask_ : ~std::uint64_t{0};
    // acquire: pairs with the clients' release fetch_or of pending[w] (slot writes visible).
    const std::uint64_t bits = db_->pending[w].exchange(0, std::memory_order_acquire) & mask;
    if (bits != 0) {
      taken_[w] = bits;
      taken_words_ |= std::uint64_t{1} << w;
    }
  }
  return taken_words_ != 0;
}

bool SyncServer::wait_doorbell() noexcept {
  if (spin_ns_ > 0) {
    const auto deadline = Clock::now() + std::chrono::nanoseconds(spin_ns_);
    for (unsigned i = 1;; ++i) {
      if (any_pending()) {
        counters_.spins.add();
        return true;
      }
      if (i % kSpinCheckEvery == 0) {
        if (is_closed(hdr_)) return false;
        if (Clock::now() >= deadline) break;
      }
      cpu_relax();
    }
  }
  counters_.sleeps.add();
  std::atomic<std::uint32_t>& flag = db_->server_sleeping;
  for (;;) {
    if (any_pending()) break;
    if (is_closed(hdr_)) {
      handshake::disarm(flag);
      return false;
    }
    handshake::arm(flag);  // flag = 1, full fence (pairs with the fence in call()'s signal())
    if (any_pending() || is_closed(hdr_)) continue;
    counters_.futex_waits.add();
    futex::wait(&flag, 1, -1);  // returns at once if a client already took the flag
  }
  handshake::disarm(flag);
  return true;
}

Result<SyncRequest> SyncServer::recv() noexcept {
  if (hdr_ == nullptr) return std::errc::bad_file_descriptor;
  if (cur_ != kNone) {  // seL4 would leave this caller blocked forever; we answer it
    finish(cur_, cur_seq_, 0, ECANCELED);
    cur_ = kNone;
  }
  for (;;) {
    if (is_closed(hdr_)) return std::errc::connection_aborted;
    if (taken_words_ == 0 && !take()) {
      if (!wait_doorbell()) return std::errc::connection_aborted;
      continue;
    }
    // Serve everything taken, lowest slot first, before taking again: no caller starves.
    const unsigned w = static_cast<unsigned>(__builtin_ctzll(taken_words_));
    const unsigned b = static_cast<unsigned>(__builtin_ctzll(taken_[w]));
    taken_[w] &= taken_[w] - 1;
    if (taken_[w] == 0) taken_words_ &= ~(std::uint64_t{1} << w);
    const std::uint32_t slot = w * sync_abi::kWordBits + b;  // < slots: masked in take()
    SlotControl* c = ctl(slot);
    // relaxed: ordered after take()'s acquire exchange. One copy each, checked, then used.
    const std::uint32_t seq = c->req_seq.load(std::memory_order_relaxed);
    const std::uint32_t len = c->req_len.load(std::memory_order_relaxed);
    counters_.calls.add();
    if (len > layout_.max_payload) {  // only a hostile client writes this; answer it, carry on
      finish(slot, seq, 0, EMSGSIZE);
      continue;
    }
    cur_ = slot;
    cur_seq_ = seq;
    return SyncRequest{slot, std::span<const std::byte>(buf(slot), len)};
  }
}

Result<void> SyncServer::reply(std::span<const std::byte> data) noexcept {
  if (hdr_ == nullptr) return std::errc::bad_file_descriptor;
  if (cur_ == kNone) return std::errc::invalid_argument;
  if (data.size() > layout_.max_payload) return std::errc::message_size;
  // memmove: `data` may be (part of) the request view, i.e. the same buffer.
  if (!data.empty()) std::memmove(buf(cur_), data.data(), data.size());
  finish(cur_, cur_seq_, static_cast<std::uint32_t>(data.size()), 0);
  cur_ = kNone;
  return {};
}

Result<void> SyncServer::reply_error(std::errc e) noexcept {
  if (hdr_ == nullptr) return std::errc::bad_file_descriptor;
  if (cur_ == kNone) return std::errc::invalid_argument;
  const int v = static_cast<int>(e);
  if (v <= 0 || v >= 4096) return std::errc::invalid_argument;
  finish(cur_, cur_seq_, 0, static_cast<std::uint32_t>(v));
  cur_ = kNone;
  return {};
}

Result<SyncRequest> SyncServer::reply_recv(std::span<const std::byte> data) noexcept {
  if (cur_ != kNone) {
    auto r = reply(data);
    if (!r) return r.error();
  }
  return recv();
}

}  // namespace uipc::ipc
