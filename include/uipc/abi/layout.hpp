// uipc/abi/layout.hpp — the shared-memory ABI.
//
// Invariants:
//  * Every type here is standard-layout and trivially copyable apart from its atomics, has
//    explicit padding, and has its size and field offsets pinned by static_assert: two processes
//    built from different commits either agree on every byte or refuse each other by magic/version.
//  * Nothing read from a mapping is trusted. Readers copy a field once, validate it, and use the
//    copy; the peer may rewrite the mapping at any time (see ring/ring.hpp, ipc/channel.hpp).
//  * Atomics placed in shared memory must be lock-free and address-free (static_assert below), so
//    the same object works across processes that map it at different addresses.
//
// Who may call: anyone; this header only describes memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace uipc::abi {

inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::uint32_t kVectors = 64;                      // user-interrupt vectors
inline constexpr std::uint32_t kMaxSlots = kVectors * kVectors;    // vectors × doorbell bits
inline constexpr std::uint32_t kAbiVersion = 4;  // 4: per-slot raise flags, read-only control line

static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint64_t>) == 8 && sizeof(std::atomic<std::uint32_t>) == 4);

// ---------------------------------------------------------------------------------------------
// U-notification: laid out like a posted-interrupt descriptor, split by who may write it.
//
//  * NotificationWord (the control line): written only by the owning process. Peers map it
//    read-only (its memfd carries F_SEAL_FUTURE_WRITE once the owner has mapped it): they read
//    `state` to learn whether the receiver sleeps, but cannot tell it "running" while it sleeps.
//  * NotificationHints: written by every sender. A slot s (0..4095) maps to vector s % 64 and
//    doorbell bit s / 64, so up to 64 slots own a vector each and the doorbell word of a vector
//    says which of its (up to 64) sharers rang. These bits are only hints: a peer can set or
//    clear any of them. The futex word `wake` is here too (a sender must change it); a peer that
//    rewrites it can at worst undo a wake-up racing with the receiver's falling asleep, which
//    the receiver's bounded sleep (the runtime's backstop) then recovers.
//  * The raise itself is a per-slot flag that only the slot's own sender can write (for a
//    channel: a line in that channel's region, ChannelHeader::raise_server / raise_client). The
//    receiver acts on slot s only when s's flag is set, so a forged hint costs a look at one flag
//    and a cleared hint is found again by the full flag scan before the receiver sleeps.
inline constexpr std::uint64_t kNotificationMagic = 0x7569'7063'4e4f'5446ull;  // "uipcNOTF"
inline constexpr std::uint64_t kHintsMagic = 0x7569'7063'4849'4e54ull;         // "uipcHINT"

enum class ReceiverState : std::uint32_t {
  running = 0,   // the receiver will look at `pending` at its next scheduling point
  sleeping = 1,  // the receiver waits on the futex `state`; a sender must wake it
};

struct alignas(kCacheLine) NotificationWord {
  std::atomic<std::uint32_t> state;    // ReceiverState; also the futex word
  std::uint32_t version;
  std::uint64_t magic;
  std::atomic<std::uint32_t> service;  // 1: the owner's own threads posted work (Runtime::post);
                                       // not a vector, so all 4096 slots stay for channels
  std::uint8_t pad0[kCacheLine - 20];
};
static_assert(offsetof(NotificationWord, state) == 0);
static_assert(offsetof(NotificationWord, magic) == 8);
static_assert(offsetof(NotificationWord, service) == 16);
static_assert(sizeof(NotificationWord) == kCacheLine);

struct alignas(kCacheLine) NotificationHints {
  // line 0: the first-level word every sender touches
  std::atomic<std::uint64_t> pending;  // one bit per vector
  std::uint64_t magic;
  std::uint32_t version;
  std::atomic<std::uint32_t> wake;     // the futex the receiver sleeps on: a sender that finds
                                       // the receiver sleeping adds 1 and wakes it, so a wake
                                       // that comes before the receiver blocks is not lost
  std::uint8_t pad0[kCacheLine - 24];
  // lines 1..8: second-level doorbells, one 64-bit word per vector
  std::atomic<std::uint64_t> doorbell[kVectors];
};
static_assert(offsetof(NotificationHints, pending) == 0);
static_assert(offsetof(NotificationHints, wake) == 20);
static_assert(offsetof(NotificationHints, doorbell) == kCacheLine);
static_assert(sizeof(NotificationHints) == kCacheLine + kVectors * 8);

constexpr std::uint32_t slot_vector(std::uint32_t slot) { return slot % kVectors; }
constexpr std::uint32_t slot_doorbell_bit(std::uint32_t slot) { return slot / kVectors; }

// ---------------------------------------------------------------------------------------------
// SPSC ring indices. The producer's line and the consumer's line are separate so neither side's
// stores invalidate the other's hot line more than the protocol requires (rigtorp/SPSCQueue).
// Indices are free-running 32-bit counters; slot = index & (capacity - 1).
// Publication is per entry: the producer's store of EntryHeader::seq = index + 1 (release) is
// what makes entry `index` visible, so a consumer polling an empty ring watches the very line
// the next entry arrives in and a message costs one cache-line transfer, not two (FastForward,
// Vyukov). RingProducer does not write `tail`: a store there per message would bounce the line
// the consumer reads `space_waiter` from. (Rings that publish by index, such as the syscall
// buffer's, use it.)
struct alignas(kCacheLine) RingProducerLine {
  std::atomic<std::uint32_t> tail;          // producer's index, for rings that publish by index
  std::atomic<std::uint32_t> space_waiter;  // 1: the producer waits for space (armed by producer)
  std::uint8_t pad[kCacheLine - 8];
};
// head and data_waiter sit on lines of their own: the consumer stores head at every release,
// while the producer loads data_waiter at every flush; sharing a line, each would steal it from
// the other once per batch.
struct alignas(kCacheLine) RingConsumerLine {
  std::atomic<std::uint32_t> head;          // written by the consumer only (release)
  std::uint8_t pad0[kCacheLine - 4];
  std::atomic<std::uint32_t> data_waiter;   // 1: the consumer waits for data (armed by consumer)
  std::uint8_t pad1[kCacheLine - 4];
};
struct RingIndices {
  RingProducerLine prod;
  RingConsumerLine cons;
};
static_assert(sizeof(RingIndices) == 3 * kCacheLine);
static_assert(offsetof(RingIndices, cons) == kCacheLine);
static_assert(offsetof(RingConsumerLine, data_waiter) == kCacheLine);

// Every ring entry starts with this header; the payload follows, up to the channel's
// max_payload bytes. `seq` is written last, with release order, by RingProducer::publish
// (index + 1: the entry is ready for exactly that lap); the other fields are the caller's:
// `id` is opaque to the ring (the IPC layer puts a generation-tagged call id there), `len` is the
// payload length, `status` is 0 or a positive errno value.
struct EntryHeader {
  std::uint32_t seq;
  std::uint32_t len;
  std::uint64_t id;
  std::uint32_t status;
  std::uint32_t reserved;
};
static_assert(sizeof(EntryHeader) == 24 && std::is_trivially_copyable_v<EntryHeader>);
static_assert(offsetof(EntryHeader, seq) == 0 && offsetof(EntryHeader, id) == 8);

constexpr std::uint32_t entry_stride(std::uint32_t max_payload) {
  return static_cast<std::uint32_t>((sizeof(EntryHeader) + max_payload + kCacheLine - 1) / kCacheLine *
                                    kCacheLine);
}

// ---------------------------------------------------------------------------------------------
// Channel region: header, request-ring indices, response-ring indices, request entries,
// response entries. Written once by the creator before the region is handed to the peer; the
// attaching side validates every field (ipc/channel.cpp: validate_header).
inline constexpr std::uint64_t kChannelMagic = 0x7569'7063'4348'4e4cull;  // "uipcCHNL"
inline constexpr std::uint32_t kMinPayload = 16;
inline constexpr std::uint32_t kMaxPayload = 64 * 1024;
inline constexpr std::uint32_t kMinCapacity = 2;
inline constexpr std::uint32_t kMaxCapacity = 1u << 16;

enum ChannelFlags : std::uint32_t {
  kClientClosed = 1u << 0,
  kServerClosed = 1u << 1,
};

struct alignas(kCacheLine) ChannelHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;     // sizeof(ChannelHeader)
  std::uint64_t region_bytes;     // the whole mapping
  std::uint32_t capacity;         // entries per ring, a power of two
  std::uint32_t max_payload;      // bytes of payload per entry
  std::uint32_t stride;           // entry_stride(max_payload)
  std::uint32_t server_slot;      // slot the client raises on the server's notification
  std::uint32_t client_slot;      // slot the server raises on the client's notification
  std::uint32_t reserved0;
  std::uint64_t req_indices;      // offsets from the start of the region
  std::uint64_t resp_indices;
  std::uint64_t req_entries;
  std::uint64_t resp_entries;
  // line 2: mutable by either side after setup
  alignas(kCacheLine) std::atomic<std::uint32_t> closed;  // ChannelFlags
  std::uint8_t pad1[kCacheLine - 4];
  // lines 3 and 4: the raise flags of the two slots (see NotificationHints). raise_server is set
  // by the client and cleared by the server; raise_client the other way round. Each sits in
  // this channel's region, which only this client and its server map, so no other client can
  // raise either slot.
  alignas(kCacheLine) std::atomic<std::uint32_t> raise_server;
  std::uint8_t pad2[kCacheLine - 4];
  alignas(kCacheLine) std::atomic<std::uint32_t> raise_client;
  std::uint8_t pad3[kCacheLine - 4];
};
static_assert(offsetof(ChannelHeader, req_indices) == 48);
static_assert(offsetof(ChannelHeader, closed) == 2 * kCacheLine);
static_assert(offsetof(ChannelHeader, raise_server) == 3 * kCacheLine);
static_assert(offsetof(ChannelHeader, raise_client) == 4 * kCacheLine);
static_assert(sizeof(ChannelHeader) == 5 * kCacheLine);

}  // namespace uipc::abi
