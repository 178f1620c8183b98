// uipc/ipc/sync_call.hpp — the synchronous baseline: seL4-style blocking Call / ReplyRecv over
// shared memory, with a futex hand-off when a side has to sleep.
//
// What it guarantees:
//  * call() returns the reply the server gave to *this* request (a per-slot sequence number,
//    copied out of the mapping and compared, ties the two together), or an error. It never
//    returns another client's reply, a stale reply or a half-written one.
//  * No lost wake-up. Every sleep is the handshake of ring/handshake.hpp (arm the "sleeping" flag →
//    full fence → re-check → FUTEX_WAIT); every publish is "write data → release store / RMW →
//    full fence → take the peer's flag → FUTEX_WAKE only if it was armed". A side enters the
//    kernel only when the other side really sleeps (a wake can be spurious only after a race
//    between a back-out and a publish, never missing).
//  * The server finds callers through a doorbell: one pending bit per slot in 64-bit words, plus
//    (above 64 slots) a summary word with one bit per pending word. It takes whole words at a time
//    and serves every caller it took before taking more, so no client starves the others.
//  * close() — any thread of any process that maps the endpoint — makes every blocked call()
//    and a blocked recv() return std::errc::connection_aborted; later calls fail at once. Closing
//    is sticky. A SyncServer that goes away closes its endpoint, so no client waits forever for a
//    server that is gone; a caller whose request the server drops (recv() again without replying,
//    or destroying the server) gets std::errc::operation_canceled.
//  * Nothing read from the mapping is trusted. attach() copies the header once, recomputes the
//    whole layout from (slots, max_payload) and requires every field to match; lengths, statuses
//    and sequence numbers read from a slot are copied once and checked before use. A hostile peer
//    can garble its own calls' payloads, nothing more: no out-of-bounds access, no crash.
//  * Shared memory holds only offsets and process-shared futex words, never pointers, so the
//    endpoint works across processes that map it at different addresses (attach(memfd)).
//
// Who may call:
//  * SyncEndpoint: any thread. It must outlive every SyncClient and SyncServer made from it.
//  * SyncClient: one thread at a time. A slot holds at most one bound client at a time (across
//    processes); binding a bound slot fails with device_or_resource_busy.
//  * SyncServer: one thread at a time, one server per endpoint.
//
// What blocks: SyncClient::call (until its reply or close) and SyncServer::recv / reply_recv
// (until a request or close). Each first spins for spin_ns (0 = sleep at once), then sleeps on a
// process-shared futex. Nothing else blocks; nothing allocates after creation.
//
// Payload views: SyncServer::recv() returns a view into the caller's slot. It stays valid (and
// the client does not touch it) until the server replies to that caller or calls recv() again.
// A hostile client can rewrite it meanwhile; copy it first if its stability matters.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <type_traits>
#include <utility>

#include "uipc/abi/layout.hpp"
#include "uipc/abi/region.hpp"
#include "uipc/notify/counters.hpp"
#include "uipc/result.hpp"

namespace uipc::ipc {

inline constexpr std::uint64_t kDefaultSyncSpinNs = 50'000;  // 50 µs, both sides
inline constexpr std::uint32_t kSyncMinPayload = 64;
inline constexpr std::uint32_t kSyncMaxPayload = 64 * 1024;
inline constexpr std::uint32_t kSyncMaxSlots = abi::kMaxSlots;  // 4096 = 64 words × 64 bits

// ---------------------------------------------------------------------------------------------
// The shared-memory layout. Region: [Header][Doorbell][slot 0][slot 1]...; each slot is one
// SlotControl line followed by the payload buffer (request and reply share it: a blocking call
// owns its slot's buffer until the server replies, the server owns it from then until it replies).
namespace sync_abi {

inline constexpr std::uint64_t kMagic = 0x7569'7063'5359'4e43ull;  // "uipcSYNC"
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kWordBits = 64;

// Line 0 of the header: written once by create() before the memfd is handed to anyone, never
// written again; attach() copies it and validates the copy.
struct HeaderInfo {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;    // sizeof(Header)
  std::uint64_t region_bytes;    // bytes the layout needs (the mapping may be longer: page rounding)
  std::uint32_t slots;           // 1 .. kSyncMaxSlots
  std::uint32_t max_payload;     // kSyncMinPayload .. kSyncMaxPayload
  std::uint32_t slot_stride;     // sizeof(SlotControl) + max_payload rounded up to a cache line
  std::uint32_t words;           // doorbell words in use: ceil(slots / 64)
  std::uint64_t doorbell_offset; // from the start of the region
  std::uint64_t slots_offset;
  std::uint64_t reserved;
};
static_assert(sizeof(HeaderInfo) == abi::kCacheLine && std::is_trivially_copyable_v<HeaderInfo>);

struct alignas(abi::kCacheLine) Header {
  HeaderInfo info;
  // line 1: read by everyone on every call, written once (close) — stays shared in all caches.
  alignas(abi::kCacheLine) std::atomic<std::uint32_t> closed;  // 0 open, 1 closed (sticky)
  std::atomic<std::uint32_t> server_bound;                     // 1 while a SyncServer exists
  std::uint8_t pad1[abi::kCacheLine - 8];
};
static_assert(offsetof(Header, closed) == abi::kCacheLine && sizeof(Header) == 2 * abi::kCacheLine);

struct alignas(abi::kCacheLine) Doorbell {
  std::atomic<std::uint32_t> server_sleeping;  // handshake flag + futex word, armed by the server
  std::uint8_t pad0[abi::kCacheLine - 4];
  std::atomic<std::uint64_t> summary;          // bit w: pending[w] may be non-zero (words > 1 only)
  std::uint8_t pad1[abi::kCacheLine - 8];
  std::atomic<std::uint64_t> pending[kWordBits];  // bit b of word w: slot w*64+b has a request
};
static_assert(offsetof(Doorbell, summary) == abi::kCacheLine);
static_assert(offsetof(Doorbell, pending) == 2 * abi::kCacheLine);
static_assert(sizeof(Doorbell) == 2 * abi::kCacheLine + kWordBits * 8);

struct alignas(abi::kCacheLine) SlotControl {
  std::atomic<std::uint32_t> req_seq;          // client → server, published by the doorbell bit
  std::atomic<std::uint32_t> req_len;
  std::atomic<std::uint32_t> reply_seq;        // server → client: the publication word of a reply
  std::atomic<std::uint32_t> reply_len;
  std::atomic<std::uint32_t> reply_status;     // 0 or a positive errno value
  std::atomic<std::uint32_t> client_sleeping;  // handshake flag + futex word, armed by the client
  std::atomic<std::uint32_t> bound;            // 1 while a SyncClient holds the slot
  std::uint8_t pad[abi::kCacheLine - 28];
};
static_assert(sizeof(SlotControl) == abi::kCacheLine);
static_assert(offsetof(SlotControl, reply_seq) == 8 && offsetof(SlotControl, client_sleeping) == 20);

// Everything about the layout follows from (slots, max_payload); attach() recomputes it.
struct Layout {
  std::uint32_t slots = 0;
  std::uint32_t max_payload = 0;
  std::uint32_t slot_stride = 0;
  std::uint32_t words = 0;
  std::uint64_t doorbell_offset = 0;
  std::uint64_t slots_offset = 0;
  std::uint64_t region_bytes = 0;
  bool operator==(const Layout&) const = default;
};

constexpr bool layout_args_ok(std::uint32_t slots, std::uint32_t max_payload) {
  return slots >= 1 && slots <= kSyncMaxSlots && max_payload >= kSyncMinPayload && max_payload <= kSyncMaxPayload;
}

constexpr Layout layout_for(std::uint32_t slots, std::uint32_t max_payload) {
  Layout l;
  l.slots = slots;
  l.max_payload = max_payload;
  l.slot_stride = static_cast<std::uint32_t>(sizeof(SlotControl) +
                                             (max_payload + abi::kCacheLine - 1) / abi::kCacheLine * abi::kCacheLine);
  l.words = (slots + kWordBits - 1) / kWordBits;
  l.doorbell_offset = sizeof(Header);
  l.slots_offset = l.doorbell_offset + sizeof(Doorbell);
  l.region_bytes = l.slots_offset + std::uint64_t{slots} * l.slot_stride;
  return l;
}
static_assert(layout_for(kSyncMaxSlots, kSyncMaxPayload).region_bytes < (std::uint64_t{1} << 32));

}  // namespace sync_abi

// ---------------------------------------------------------------------------------------------
struct SyncOptions {
  std::uint64_t spin_ns = kDefaultSyncSpinNs;  // spin this long before sleeping; 0 = sleep at once
};

// Plain snapshot of one side's counters.
struct SyncStats {
  std::uint64_t calls = 0;             // client: calls made; server: requests received
  std::uint64_t spins = 0;             // waits that ended inside the spin window
  std::uint64_t sleeps = 0;            // waits that outlasted the spin window and armed the futex flag
  std::uint64_t futex_waits = 0;       // FUTEX_WAIT system calls (kernel entries)
  std::uint64_t futex_wakes = 0;       // FUTEX_WAKE system calls (kernel entries)
  std::uint64_t wakes_suppressed = 0;  // publishes that found the peer awake: no kernel entry
  std::uint64_t kernel_entries() const { return futex_waits + futex_wakes; }
  SyncStats operator-(const SyncStats& o) const {
    return {calls - o.calls, spins - o.spins, sleeps - o.sleeps, futex_waits - o.futex_waits,
            futex_wakes - o.futex_wakes, wakes_suppressed - o.wakes_suppressed};
  }
};

// One side's counters. Single writer (the thread using the client/server); any thread may read
// at any time (relaxed, at most a few increments stale). See notify/counters.hpp.
struct SyncCounters {
  Counter calls, spins, sleeps, futex_waits, futex_wakes, wakes_suppressed;
  SyncStats snapshot() const noexcept {
    return {calls.get(), spins.get(), sleeps.get(), futex_waits.get(), futex_wakes.get(), wakes_suppressed.get()};
  }
  void take_over(const SyncCounters& o) noexcept;  // used when a client/server is moved
};

class SyncEndpoint;

// A client bound to one slot. call() is seL4's Call: send, then block for the reply.
class SyncClient {
 public:
  SyncClient() = default;
  ~SyncClient();
  SyncClient(SyncClient&& o) noexcept;
  SyncClient& operator=(SyncClient&& o) noexcept;
  SyncClient(const SyncClient&) = delete;
  SyncClient& operator=(const SyncClient&) = delete;

  // Sends `req` and blocks until the reply, which is copied into `reply`; returns its length.
  // Errors: message_size (req longer than max_payload, or the reply does not fit `reply`: the
  // reply is then dropped), connection_aborted (endpoint closed before or during the call),
  // operation_canceled (the server dropped the call), any errno the server replied with
  // (reply_error), protocol_error (the server wrote an impossible reply), bad_file_descriptor
  // (an unbound client).
  Result<std::size_t> call(std::span<const std::byte> req, std::span<std::byte> reply) noexcept;

  std::uint32_t slot() const noexcept { return slot_; }  // the badge the server sees
  std::uint32_t max_payload() const noexcept { return max_payload_; }
  const SyncCounters& counters() const noexcept { return counters_; }
  explicit operator bool() const noexcept { return ctl_ != nullptr; }

 private:
  friend class SyncEndpoint;
  void release() noexcept;
  bool wait_reply(std::uint32_t seq) noexcept;  // false: closed

  sync_abi::Header* hdr_ = nullptr;
  sync_abi::Doorbell* db_ = nullptr;
  sync_abi::SlotControl* ctl_ = nullptr;
  std::byte* buf_ = nullptr;
  std::uint32_t slot_ = 0;
  std::uint32_t max_payload_ = 0;
  std::uint64_t bit_ = 0;       // 1 << (slot % 64)
  std::uint64_t word_bit_ = 0;  // 1 << (slot / 64), or 0 when the endpoint has one doorbell word
  std::uint32_t word_ = 0;      // slot / 64
  std::uint32_t seq_ = 0;       // private copy of the last sequence number used
  std::uint64_t spin_ns_ = kDefaultSyncSpinNs;
  SyncCounters counters_;
};

// A request as the server sees it: badge = the caller's slot, data = a view into that slot.
struct SyncRequest {
  std::uint32_t badge = 0;
  std::span<const std::byte> data;
};

// The server side. recv() is seL4's Recv on the endpoint, reply_recv() its ReplyRecv.
class SyncServer {
 public:
  SyncServer() = default;
  ~SyncServer();  // drops an unanswered caller (operation_canceled) and closes the endpoint
  SyncServer(SyncServer&& o) noexcept;
  SyncServer& operator=(SyncServer&& o) noexcept;
  SyncServer(const SyncServer&) = delete;
  SyncServer& operator=(const SyncServer&) = delete;

  // Blocks until a request arrives. A caller still unanswered from the previous recv() gets
  // operation_canceled first. Errors: connection_aborted (closed), bad_file_descriptor.
  Result<SyncRequest> recv() noexcept;
  // Replies to the current caller (the view from recv() may be passed back: echo is fine), then
  // recv(). If the reply is longer than max_payload, returns message_size and keeps the caller.
  Result<SyncRequest> reply_recv(std::span<const std::byte> reply) noexcept;
  // Replies without waiting. Errors: invalid_argument (no current caller), message_size.
  Result<void> reply(std::span<const std::byte> reply) noexcept;
  // Answers the current caller with an error instead of data (the caller's call() returns it).
  Result<void> reply_error(std::errc e) noexcept;

  bool has_caller() const noexcept { return cur_ != kNone; }
  std::uint32_t max_payload() const noexcept { return layout_.max_payload; }
  const SyncCounters& counters() const noexcept { return counters_; }
  explicit operator bool() const noexcept { return hdr_ != nullptr; }

 private:
  friend class SyncEndpoint;
  static constexpr std::uint32_t kNone = ~std::uint32_t{0};
  void release() noexcept;
  sync_abi::SlotControl* ctl(std::uint32_t slot) const noexcept;
  std::byte* buf(std::uint32_t slot) const noexcept;
  void finish(std::uint32_t slot, std::uint32_t seq, std::uint32_t len, std::uint32_t status) noexcept;
  bool any_pending() const noexcept;
  bool take() noexcept;        // moves pending doorbell bits into taken_; true if any
  bool wait_doorbell() noexcept;  // false: closed

  sync_abi::Header* hdr_ = nullptr;
  sync_abi::Doorbell* db_ = nullptr;
  std::byte* slots_ = nullptr;
  sync_abi::Layout layout_{};
  std::uint64_t last_word_mask_ = 0;  // valid bits of the last doorbell word
  std::uint64_t spin_ns_ = kDefaultSyncSpinNs;
  std::uint32_t cur_ = kNone;         // current caller's slot, or kNone
  std::uint32_t cur_seq_ = 0;         // its sequence number (private copy)
  std::uint64_t taken_words_ = 0;     // bit w: taken_[w] != 0
  std::uint64_t taken_[sync_abi::kWordBits] = {};
  SyncCounters counters_;
};

// The endpoint: owns the mapping. Cheap to move (the mapping itself never moves).
class SyncEndpoint {
 public:
  SyncEndpoint() = default;

  // A new endpoint in a fresh sealed memfd. Errors: invalid_argument (slots not in
  // 1..kSyncMaxSlots, max_payload not in kSyncMinPayload..kSyncMaxPayload), or the memfd's errno.
  static Result<SyncEndpoint> create(std::uint32_t slots, std::uint32_t max_payload);
  // Maps an endpoint received from a peer; takes ownership of `memfd` whether or not it succeeds.
  // Errors: wrong_protocol_type (magic), protocol_not_supported (version), invalid_argument
  // (any layout field inconsistent or out of bounds), or Region::attach's errors.
  static Result<SyncEndpoint> attach(int memfd);

  // Binds a client to `slot`. Errors: invalid_argument (slot out of range),
  // device_or_resource_busy (slot already bound), connection_aborted (closed).
  Result<SyncClient> client(std::uint32_t slot, SyncOptions opt = {}) const;
  // Binds the endpoint's one server. Errors: device_or_resource_busy, connection_aborted.
  Result<SyncServer> server(SyncOptions opt = {}) const;

  // Closes the endpoint and wakes every sleeper; idempotent, any thread, any process.
  void close() const noexcept;
  bool closed() const noexcept;

  int fd() const noexcept { return region_.fd(); }
  const Region& region() const noexcept { return region_; }
  const sync_abi::Layout& layout() const noexcept { return layout_; }
  explicit operator bool() const noexcept { return static_cast<bool>(region_); }

 private:
  SyncEndpoint(Region r, const sync_abi::Layout& l) : region_(std::move(r)), layout_(l) {}
  sync_abi::Header* header() const noexcept { return static_cast<sync_abi::Header*>(region_.data()); }
  sync_abi::Doorbell* doorbell() const noexcept;
  sync_abi::SlotControl* slot_control(std::uint32_t slot) const noexcept;

  Region region_;
  sync_abi::Layout layout_{};  // validated private copy: the only layout ever used
};

}  // namespace uipc::ipc
