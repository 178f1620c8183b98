#include "uipc/sys/buffer.hpp"

#include <new>

namespace uipc::sys {

namespace {
constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }
}  // namespace

Result<SyscallBuffer> SyscallBuffer::create(std::uint32_t capacity) {
  if (capacity < abi::kMinCapacity || capacity > abi::kMaxCapacity || (capacity & (capacity - 1)) != 0)
    return std::errc::invalid_argument;
  abi::SyscallBufferHeader h{};
  h.magic = abi::kSyscallBufferMagic;
  h.version = abi::kSyscallAbiVersion;
  h.header_bytes = sizeof(abi::SyscallBufferHeader);
  h.completion_capacity = capacity;
  h.request_capacity = 2 * capacity;
  std::uint64_t off = sizeof(abi::SyscallBufferHeader);
  h.request_indices = off;
  off += sizeof(uipc::abi::RingIndices);
  h.completion_indices = off;
  off += sizeof(uipc::abi::RingIndices);
  h.request_entries = off;
  off += std::uint64_t{h.request_capacity} * sizeof(abi::SyscallRequest);
  off = align_up(off, uipc::abi::kCacheLine);
  h.completion_entries = off;
  off += std::uint64_t{h.completion_capacity} * sizeof(abi::SyscallCompletion);
  h.region_bytes = align_up(off, uipc::abi::kCacheLine);

  auto r = Region::create(h.region_bytes, "uipc-syscall-buffer");
  if (!r) return r.error();
  r->close_fd();  // the executor lives in this process: nothing to hand on
  auto* base = static_cast<std::byte*>(r->data());
  new (base) abi::SyscallBufferHeader(h);
  new (base + h.request_indices) uipc::abi::RingIndices{};
  new (base + h.completion_indices) uipc::abi::RingIndices{};
  return SyscallBuffer(std::move(r.value()));
}

RingView<abi::SyscallRequest> SyscallBuffer::requests() const noexcept {
  auto* base = static_cast<std::byte*>(region_.data());
  const auto* h = header();
  return {reinterpret_cast<uipc::abi::RingIndices*>(base + h->request_indices),
          reinterpret_cast<abi::SyscallRequest*>(base + h->request_entries), h->request_capacity};
}

RingView<abi::SyscallCompletion> SyscallBuffer::completions() const noexcept {
  auto* base = static_cast<std::byte*>(region_.data());
  const auto* h = header();
  return {reinterpret_cast<uipc::abi::RingIndices*>(base + h->completion_indices),
          reinterpret_cast<abi::SyscallCompletion*>(base + h->completion_entries), h->completion_capacity};
}

}  // namespace uipc::sys
