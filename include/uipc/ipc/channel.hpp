// uipc/ipc/channel.hpp — a channel: one client, one server, one shared IPC buffer (note §1.1, §1.3).
//
// What it guarantees:
//  * A channel region holds a versioned header, a request ring and a response ring
//    (abi::ChannelHeader). It is created by the server side and validated by whoever attaches:
//    every header field is copied once, checked, and only the copy is used afterwards, so a peer
//    rewriting the header later cannot move the rings or change the slots.
//  * The pair (send notification slot, reply notification slot, region) identifies the client /
//    server pair; each side raises the other's slot through a SenderEntry fixed at setup.
// Who may call: anyone; these are setup helpers with no shared state of their own.
// What blocks: nothing.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>

#include "uipc/abi/layout.hpp"
#include "uipc/abi/region.hpp"
#include "uipc/notify/notification.hpp"
#include "uipc/result.hpp"
#include "uipc/ring/ring.hpp"

namespace uipc::ipc {

struct ChannelOptions {
  std::uint32_t capacity = 256;      // entries per ring (power of two, 2 .. 65536)
  std::uint32_t max_payload = 1024;  // bytes per message (16 .. 65536)
  std::uint32_t max_inflight = 1024; // client calls outstanding at once (1 .. 65536)
};

// The validated, private copy of a channel header.
struct ChannelLayout {
  std::uint32_t capacity = 0;
  std::uint32_t max_payload = 0;
  std::uint32_t stride = 0;
  std::uint32_t server_slot = 0;
  std::uint32_t client_slot = 0;
  std::uint64_t region_bytes = 0;
  std::uint64_t req_indices = 0, resp_indices = 0, req_entries = 0, resp_entries = 0;
};

// errc::invalid_argument for options out of range.
Result<void> check_options(const ChannelOptions& o);
// The canonical layout for these options; bytes needed in .region_bytes.
ChannelLayout plan_layout(const ChannelOptions& o, std::uint32_t server_slot, std::uint32_t client_slot);
// A new region with its header written and both rings empty.
Result<std::shared_ptr<Region>> create_channel_region(const ChannelOptions& o, std::uint32_t server_slot,
                                                      std::uint32_t client_slot);
// Validates the header in `r` (magic, version, sizes, offsets): errc::invalid_argument,
// errc::protocol_not_supported (version) or errc::message_size (region too small).
Result<ChannelLayout> validate_channel(const Region& r);

RingGeometry request_ring(const Region& r, const ChannelLayout& l);
RingGeometry response_ring(const Region& r, const ChannelLayout& l);
inline abi::ChannelHeader* header(const Region& r) { return static_cast<abi::ChannelHeader*>(r.data()); }

// Everything one side needs to use a channel: the region, its validated layout, the peer's
// notification (kept mapped when it came from another process) and the right to raise the
// peer's slot on it, and the slot this side listens on.
struct ChannelEnd {
  std::shared_ptr<Region> region;
  ChannelLayout layout;
  std::shared_ptr<Notification> peer_mapping;  // keeps the peer's notification word mapped
  SenderEntry to_peer;
  std::uint32_t own_slot = 0;
  ChannelOptions options;
  pid_t peer_pid = 0;  // the peer process, watched for death (ipc/peer_watch.hpp); 0: this process
};

}  // namespace uipc::ipc
