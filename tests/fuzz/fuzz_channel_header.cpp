// Fuzz target: channel header validation (ipc::validate_channel) on arbitrary region contents.
//
// Input: byte 0 picks the region size (1..kMaxPages pages: a memfd region is always whole
// pages), the rest is copied to the start of the region; the remainder of the region is zero.
// Invariants:
//  * validate_channel never crashes and fails only with invalid_argument,
//    protocol_not_supported or message_size;
//  * an accepted layout is in bounds: capacity a power of two in range, max_payload in range,
//    stride = entry_stride(max_payload) (a whole number of cache lines holding header + payload),
//    slots < kMaxSlots, every offset cache-line aligned, the header, both index blocks and both
//    entry arrays pairwise disjoint and inside the region, region_bytes == the mapping's size;
//  * the layout is the header's own values (a copy, not something derived differently);
//  * differential: a header that an independent reading of the ABI calls valid is accepted, and
//    one that it calls invalid is refused;
//  * the ring geometries built from an accepted layout lie inside the mapping, and rings
//    constructed on them (whatever the index bytes say) can be claimed from and peeked at.
#include <array>
#include <cstdint>
#include <cstring>
#include <system_error>

#include "fuzz_input.hpp"
#include "uipc/abi/layout.hpp"
#include "uipc/abi/region.hpp"
#include "uipc/ipc/channel.hpp"
#include "uipc/ring/ring.hpp"

namespace {

using namespace uipc;
namespace abi = uipc::abi;

#define CHECK(cond) FUZZ_CHECK("fuzz_channel_header", cond)

constexpr std::size_t kPage = 4096;
constexpr std::size_t kMaxPages = 64;

// One region per size, made on first use and reused: a memfd per input would cost more than the
// validation itself. `dirty` is how far the previous input wrote, so only that much is cleared.
struct Cached {
  Region region;
  std::size_t dirty = 0;
};
std::array<Cached, kMaxPages + 1> g_regions;

Region& region_of(std::size_t pages, const std::uint8_t* bytes, std::size_t n) {
  Cached& c = g_regions[pages];
  if (!c.region) {
    auto r = Region::create(pages * kPage, "fuzz-channel-header");
    CHECK(r.has_value());
    c.region = std::move(r.value());
    CHECK(c.region.size() == pages * kPage);
  }
  auto* p = static_cast<std::uint8_t*>(c.region.data());
  if (n > c.region.size()) n = c.region.size();
  if (n != 0) std::memcpy(p, bytes, n);
  if (c.dirty > n) std::memset(p + n, 0, c.dirty - n);
  c.dirty = n;
  return c.region;
}

bool pow2(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// The ABI read independently of channel.cpp: the fixed order header, request indices, response
// indices, request entries, response entries, each on a cache-line boundary.
bool reference_accepts(const abi::ChannelHeader& h, std::size_t region_size) {
  if (h.magic != abi::kChannelMagic || h.version != abi::kAbiVersion) return false;
  if (h.header_bytes != sizeof(abi::ChannelHeader)) return false;
  if (!pow2(h.capacity) || h.capacity < abi::kMinCapacity || h.capacity > abi::kMaxCapacity) return false;
  if (h.max_payload < abi::kMinPayload || h.max_payload > abi::kMaxPayload) return false;
  if (h.server_slot >= abi::kMaxSlots || h.client_slot >= abi::kMaxSlots) return false;
  const std::uint64_t stride = (24 + std::uint64_t{h.max_payload} + 63) / 64 * 64;
  constexpr std::uint64_t line = abi::kCacheLine;
  constexpr std::uint64_t req_idx = (sizeof(abi::ChannelHeader) + line - 1) / line * line;
  constexpr std::uint64_t resp_idx = req_idx + (sizeof(abi::RingIndices) + line - 1) / line * line;
  constexpr std::uint64_t req_ent = resp_idx + (sizeof(abi::RingIndices) + line - 1) / line * line;
  const std::uint64_t resp_ent = req_ent + std::uint64_t{h.capacity} * stride;  // stride: whole lines
  const std::uint64_t end = resp_ent + std::uint64_t{h.capacity} * stride;
  if (h.stride != stride || h.req_indices != req_idx || h.resp_indices != resp_idx || h.req_entries != req_ent ||
      h.resp_entries != resp_ent)
    return false;
  return end <= region_size && h.region_bytes == region_size;
}

using U128 = unsigned __int128;

struct Span {
  U128 begin, end;
};
bool disjoint(Span a, Span b) { return a.end <= b.begin || b.end <= a.begin; }

void check_layout(const ipc::ChannelLayout& l, const abi::ChannelHeader& h, const Region& r) {
  const std::size_t size = r.size();
  CHECK(pow2(l.capacity) && l.capacity >= abi::kMinCapacity && l.capacity <= abi::kMaxCapacity);
  CHECK(l.max_payload >= abi::kMinPayload && l.max_payload <= abi::kMaxPayload);
  CHECK(l.stride == abi::entry_stride(l.max_payload));
  CHECK(l.stride % abi::kCacheLine == 0 && l.stride >= sizeof(abi::EntryHeader) + l.max_payload);
  CHECK(l.server_slot < abi::kMaxSlots && l.client_slot < abi::kMaxSlots);
  CHECK(l.region_bytes == size);
  for (std::uint64_t off : {l.req_indices, l.resp_indices, l.req_entries, l.resp_entries})
    CHECK(off % abi::kCacheLine == 0);

  const U128 ring_bytes = U128{l.capacity} * l.stride;
  const Span spans[] = {
      {0, sizeof(abi::ChannelHeader)},
      {l.req_indices, U128{l.req_indices} + sizeof(abi::RingIndices)},
      {l.resp_indices, U128{l.resp_indices} + sizeof(abi::RingIndices)},
      {l.req_entries, U128{l.req_entries} + ring_bytes},
      {l.resp_entries, U128{l.resp_entries} + ring_bytes},
  };
  for (const Span& s : spans) CHECK(s.end <= size);
  for (std::size_t i = 0; i < std::size(spans); ++i)
    for (std::size_t j = i + 1; j < std::size(spans); ++j) CHECK(disjoint(spans[i], spans[j]));

  // A copy of the header, not a reinterpretation.
  CHECK(l.capacity == h.capacity && l.max_payload == h.max_payload && l.stride == h.stride);
  CHECK(l.server_slot == h.server_slot && l.client_slot == h.client_slot);
  CHECK(l.req_indices == h.req_indices && l.resp_indices == h.resp_indices);
  CHECK(l.req_entries == h.req_entries && l.resp_entries == h.resp_entries);
  CHECK(h.region_bytes == size);
}

void exercise_ring(const RingGeometry& g, const Region& r, const ipc::ChannelLayout& l) {
  auto* base = static_cast<const std::byte*>(r.data());
  const auto* idx = reinterpret_cast<const std::byte*>(g.indices);
  CHECK(idx >= base && idx + sizeof(abi::RingIndices) <= base + r.size());
  CHECK(g.entries >= base && g.entries + std::size_t{g.capacity} * g.stride <= base + r.size());
  CHECK(g.capacity == l.capacity && g.stride == l.stride && g.max_payload == l.max_payload);

  // The index bytes are whatever the input put there: the rings must cope.
  RingProducer prod(g);
  if (abi::EntryHeader* e = prod.claim()) {
    auto* eb = reinterpret_cast<std::byte*>(e);
    CHECK(eb >= g.entries && eb + g.stride <= g.entries + std::size_t{g.capacity} * g.stride);
    CHECK(static_cast<std::size_t>(eb - g.entries) % g.stride == 0);
  } else {
    CHECK(prod.corrupt() || prod.in_flight() >= g.capacity);
  }
  RingConsumer cons(g);
  abi::EntryHeader h;
  if (const std::byte* p = cons.peek(&h)) {
    CHECK(h.len <= g.max_payload);
    CHECK(p >= g.entries + sizeof(abi::EntryHeader) && p + h.len <= g.entries + std::size_t{g.capacity} * g.stride);
  }
  CHECK(!cons.corrupt());
  if (cons.bad_entry()) CHECK(cons.peek(&h) == nullptr && cons.has_data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t pages = 1 + data[0] % kMaxPages;
  Region& r = region_of(pages, data + 1, size - 1);

  abi::ChannelHeader h;
  std::memcpy(static_cast<void*>(&h), r.data(), offsetof(abi::ChannelHeader, closed));

  auto res = ipc::validate_channel(r);
  const bool ref = reference_accepts(h, r.size());
  if (!res) {
    const std::error_code e = res.error();
    CHECK(e == std::errc::invalid_argument || e == std::errc::protocol_not_supported ||
          e == std::errc::message_size);
    CHECK(!ref);
    return 0;
  }
  CHECK(ref);
  const ipc::ChannelLayout& l = res.value();
  check_layout(l, h, r);

  // Deterministic: the same bytes give the same layout.
  auto again = ipc::validate_channel(r);
  CHECK(again.has_value());
  const ipc::ChannelLayout& m = again.value();
  CHECK(m.capacity == l.capacity && m.max_payload == l.max_payload && m.stride == l.stride &&
        m.server_slot == l.server_slot && m.client_slot == l.client_slot && m.region_bytes == l.region_bytes &&
        m.req_indices == l.req_indices && m.resp_indices == l.resp_indices && m.req_entries == l.req_entries &&
        m.resp_entries == l.resp_entries);

  exercise_ring(ipc::request_ring(r, l), r, l);
  exercise_ring(ipc::response_ring(r, l), r, l);
  return 0;
}
