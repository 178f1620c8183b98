#include "uipc/ipc/channel.hpp"

#include <new>

namespace uipc::ipc {

namespace {
bool pow2(std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }
std::uint64_t align_line(std::uint64_t v) { return (v + abi::kCacheLine - 1) / abi::kCacheLine * abi::kCacheLine; }
}  // namespace

Result<void> check_options(const ChannelOptions& o) {
  if (!pow2(o.capacity) || o.capacity < abi::kMinCapacity || o.capacity > abi::kMaxCapacity)
    return std::errc::invalid_argument;
  if (o.max_payload < abi::kMinPayload || o.max_payload > abi::kMaxPayload) return std::errc::invalid_argument;
  if (o.max_inflight == 0 || o.max_inflight > (1u << 16)) return std::errc::invalid_argument;
  return {};
}

ChannelLayout plan_layout(const ChannelOptions& o, std::uint32_t server_slot, std::uint32_t client_slot) {
  ChannelLayout l;
  l.capacity = o.capacity;
  l.max_payload = o.max_payload;
  l.stride = abi::entry_stride(o.max_payload);
  l.server_slot = server_slot;
  l.client_slot = client_slot;
  std::uint64_t off = sizeof(abi::ChannelHeader);
  l.req_indices = off;
  off += sizeof(abi::RingIndices);
  l.resp_indices = off;
  off += sizeof(abi::RingIndices);
  l.req_entries = align_line(off);
  off = l.req_entries + std::uint64_t{l.capacity} * l.stride;
  l.resp_entries = align_line(off);
  off = l.resp_entries + std::uint64_t{l.capacity} * l.stride;
  l.region_bytes = off;
  return l;
}


Result<std::shared_ptr<Region>> create_channel_region(const ChannelOptions& o, std::uint32_t server_slot,
                                                      std::uint32_t client_slot) {
  if (auto ok = check_options(o); !ok) return ok.error();
  if (server_slot >= abi::kMaxSlots || client_slot >= abi::kMaxSlots) return std::errc::invalid_argument;
  const ChannelLayout l = plan_layout(o, server_slot, client_slot);
  auto r = Region::create(l.region_bytes, "uipc-channel");
  if (!r) return r.error();
  auto* h = new (r->data()) abi::ChannelHeader{};
  h->magic = abi::kChannelMagic;
  h->version = abi::kAbiVersion;
  h->header_bytes = sizeof(abi::ChannelHeader);
  h->region_bytes = r->size();
  h->capacity = l.capacity;
  h->max_payload = l.max_payload;
  h->stride = l.stride;
  h->server_slot = l.server_slot;
  h->client_slot = l.client_slot;
  h->req_indices = l.req_indices;
  h->resp_indices = l.resp_indices;
  h->req_entries = l.req_entries;
  h->resp_entries = l.resp_entries;
  new (static_cast<std::byte*>(r->data()) + l.req_indices) abi::RingIndices{};
  new (static_cast<std::byte*>(r->data()) + l.resp_indices) abi::RingIndices{};
  return std::make_shared<Region>(std::move(r.value()));
}

Result<ChannelLayout> validate_channel(const Region& r) {
  if (r.size() < sizeof(abi::ChannelHeader)) return std::errc::message_size;
  abi::ChannelHeader h;
  // One copy of the static part; the atomic `closed` word is not copied.
  std::memcpy(static_cast<void*>(&h), r.data(), offsetof(abi::ChannelHeader, closed));
  if (h.magic != abi::kChannelMagic) return std::errc::invalid_argument;
  if (h.version != abi::kAbiVersion) return std::errc::protocol_not_supported;
  if (h.header_bytes != sizeof(abi::ChannelHeader)) return std::errc::invalid_argument;
  ChannelOptions o;
  o.capacity = h.capacity;
  o.max_payload = h.max_payload;
  if (auto ok = check_options(o); !ok) return ok.error();
  if (h.server_slot >= abi::kMaxSlots || h.client_slot >= abi::kMaxSlots) return std::errc::invalid_argument;
  ChannelLayout l = plan_layout(o, h.server_slot, h.client_slot);
  // Offsets must be exactly the canonical ones: nothing else is accepted, so no overlap or
  // out-of-range ring can be described.
  if (h.stride != l.stride || h.req_indices != l.req_indices || h.resp_indices != l.resp_indices ||
      h.req_entries != l.req_entries || h.resp_entries != l.resp_entries)
    return std::errc::invalid_argument;
  if (l.region_bytes > r.size() || h.region_bytes != r.size()) return std::errc::message_size;
  l.region_bytes = r.size();
  return l;
}

namespace {
RingGeometry ring_at(const Region& r, const ChannelLayout& l, std::uint64_t idx, std::uint64_t entries) {
  auto* base = static_cast<std::byte*>(r.data());
  RingGeometry g;
  g.indices = reinterpret_cast<abi::RingIndices*>(base + idx);
  g.entries = base + entries;
  g.capacity = l.capacity;
  g.stride = l.stride;
  g.max_payload = l.max_payload;
  return g;
}
}  // namespace

RingGeometry request_ring(const Region& r, const ChannelLayout& l) { return ring_at(r, l, l.req_indices, l.req_entries); }
RingGeometry response_ring(const Region& r, const ChannelLayout& l) {
  return ring_at(r, l, l.resp_indices, l.resp_entries);
}

}  // namespace uipc::ipc
