// uipc/sys/abi.hpp — the syscall buffer's layout (note §2.1): request and completion entries.
//
// Invariants:
//  * A syscall buffer is one memory region holding a header, two sets of ring indices
//    (abi::RingIndices, the same type the IPC rings use) and two arrays of fixed-size entries:
//    requests (caller → executor) and completions (executor → caller). Each ring has one
//    producer and one consumer at a time; the handshake of ring/handshake.hpp wakes the other side.
//  * Entries are trivially copyable, have no padding and have their sizes and offsets pinned by
//    static_assert. A request fills one cache line.
//  * A request's id is opaque to the executor except for its shape: (generation << 32) | index,
//    index < completion capacity, generation != 0. A request whose id, number or flags break
//    these rules is malformed: it completes with -EINVAL and is never executed.
//  * Every request that is not a cancellation produces exactly one completion carrying its id;
//    a completion's result is the system call's return value or -errno (-4095 .. -1).
//  * A cancellation (flags & kCancel) names another request by id (args[0]) and the errno it
//    should complete with (args[1]: ECANCELED or ETIMEDOUT). It produces no completion of its
//    own; the named request still completes exactly once, with -args[1] when the cancellation
//    interrupted it, otherwise with its own result.
// Who may call: anyone; this header only describes memory.
// What blocks: nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "uipc/abi/layout.hpp"

namespace uipc::sys::abi {

inline constexpr std::uint64_t kSyscallBufferMagic = 0x7569'7063'5359'5342ull;  // "uipcSYSB"
inline constexpr std::uint32_t kSyscallAbiVersion = 1;
// Syscall numbers run 0 .. kMaxSyscallNumber; anything above is malformed (-EINVAL).
inline constexpr std::uint32_t kMaxSyscallNumber = 511;

enum RequestFlags : std::uint32_t {
  kCancel = 1u << 0,  // cancel the request whose id is args[0], completing it with -args[1]
};
inline constexpr std::uint32_t kKnownRequestFlags = kCancel;

struct SyscallRequest {
  std::uint64_t id;       // (generation << 32) | op index; echoed by the completion
  std::uint32_t number;   // x86-64 system call number, 0 .. kMaxSyscallNumber
  std::uint32_t flags;    // RequestFlags; unknown bits make the request malformed
  std::int64_t args[6];   // the system call's arguments, as the kernel takes them
};
static_assert(std::is_trivially_copyable_v<SyscallRequest> && std::is_standard_layout_v<SyscallRequest>);
static_assert(sizeof(SyscallRequest) == uipc::abi::kCacheLine);
static_assert(offsetof(SyscallRequest, id) == 0 && offsetof(SyscallRequest, number) == 8 &&
              offsetof(SyscallRequest, flags) == 12 && offsetof(SyscallRequest, args) == 16);

struct SyscallCompletion {
  std::uint64_t id;      // the request's id
  std::int64_t result;   // return value, or -errno
};
static_assert(std::is_trivially_copyable_v<SyscallCompletion> && std::is_standard_layout_v<SyscallCompletion>);
static_assert(sizeof(SyscallCompletion) == 16);
static_assert(offsetof(SyscallCompletion, id) == 0 && offsetof(SyscallCompletion, result) == 8);

constexpr std::uint64_t make_id(std::uint32_t index, std::uint32_t generation) {
  return (std::uint64_t{generation} << 32) | index;
}
constexpr std::uint32_t id_index(std::uint64_t id) { return static_cast<std::uint32_t>(id); }
constexpr std::uint32_t id_generation(std::uint64_t id) { return static_cast<std::uint32_t>(id >> 32); }

// Capacities: completions = the number of calls that may be in flight at once; requests = twice
// that, so every call in flight can also carry one cancellation without the ring filling up.
inline constexpr std::uint32_t kMinCapacity = 2;
inline constexpr std::uint32_t kMaxCapacity = 1u << 15;

struct alignas(uipc::abi::kCacheLine) SyscallBufferHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;         // sizeof(SyscallBufferHeader)
  std::uint64_t region_bytes;         // the whole buffer
  std::uint32_t request_capacity;     // entries, a power of two (2 × completion_capacity)
  std::uint32_t completion_capacity;  // entries, a power of two
  std::uint64_t request_indices;      // offsets from the start of the buffer
  std::uint64_t completion_indices;
  std::uint64_t request_entries;
  std::uint64_t completion_entries;
};
static_assert(offsetof(SyscallBufferHeader, request_capacity) == 24);
static_assert(offsetof(SyscallBufferHeader, request_indices) == 32);
static_assert(offsetof(SyscallBufferHeader, completion_entries) == 56);
static_assert(sizeof(SyscallBufferHeader) == uipc::abi::kCacheLine);

}  // namespace uipc::sys::abi
