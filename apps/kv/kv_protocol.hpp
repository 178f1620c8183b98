// apps/kv/kv_protocol.hpp — the key-value wire format (docs/kv.md), shared by the uipc server,
// the Unix-socket twin and their clients.
//
// A request or a response is one message: inside one uipc channel entry, or (twin) after a
// 4-byte length prefix on a stream socket. All integers are little-endian.
//
//   request   [0] u8 op (1 get, 2 put, 3 del)  [1] u8 flags = 0  [2..3] u16 key_len
//             [4..7] u32 value_len             [8 ..] key bytes, then value bytes
//   response  [0] u8 status  [1] u8 0  [2..3] u16 0  [4..7] u32 value_len  [8 ..] value bytes
//
// Invariants:
//  * A request is valid only when its length is exactly 8 + key_len + value_len, flags is 0,
//    1 <= key_len <= kMaxKey, value_len <= kMaxValue, and value_len is 0 for get and del.
//    Anything else gets an error status (never a dropped connection) — see Status.
//  * A response to get carries the value (status ok) or nothing (not_found); every other
//    response carries no value. A response is at most kMaxResponse bytes.
//  * Checks run in a fixed order (truncated, flags/op, key, value, length), so one malformed
//    request gets the same status from every server.
// Who may call: anyone; these are pure functions. What blocks: nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace uipc::apps::kv {

inline constexpr std::size_t kHeaderBytes = 8;
inline constexpr std::size_t kMaxKey = 256;
inline constexpr std::size_t kMaxValue = 4096;
inline constexpr std::size_t kMaxRequest = kHeaderBytes + kMaxKey + kMaxValue;  // 4360
inline constexpr std::size_t kMaxResponse = kHeaderBytes + kMaxValue;           // 4104
// Twin framing: a u32 length, then the message. A frame longer than kMaxRequest is answered
// with Status::too_large and its bytes are skipped; the connection stays up.
inline constexpr std::size_t kFramePrefix = 4;

enum class Op : std::uint8_t { get = 1, put = 2, del = 3 };

enum class Status : std::uint8_t {
  ok = 0,
  not_found = 1,    // get / del of a key that is not there
  bad_op = 2,       // unknown op, or flags not 0
  bad_key = 3,      // key_len 0 or over kMaxKey
  too_large = 4,    // value_len over kMaxValue (or, twin, a frame over kMaxRequest)
  malformed = 5,    // shorter than the header, length != 8 + key_len + value_len, value on get/del
  store_full = 6,   // put of a new key when the store holds its maximum number of keys
};

const char* status_name(Status s) noexcept;

inline void put_u16(std::byte* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::byte>(v & 0xff);
  p[1] = static_cast<std::byte>(v >> 8);
}
inline void put_u32(std::byte* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}
inline std::uint16_t get_u16(const std::byte* p) noexcept {
  return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) | (std::to_integer<unsigned>(p[1]) << 8));
}
inline std::uint32_t get_u32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::to_integer<std::uint32_t>(p[i]) << (8 * i);
  return v;
}

// Writes a request into `out` (which must hold request_size bytes); returns its length.
// Does not check the limits: tests use it to build invalid requests too (key_len and value_len
// are truncated to 16 and 32 bits).
inline std::size_t request_size(std::string_view key, std::string_view value) noexcept {
  return kHeaderBytes + key.size() + value.size();
}
inline std::size_t encode_request(std::span<std::byte> out, Op op, std::string_view key, std::string_view value) noexcept {
  out[0] = static_cast<std::byte>(op);
  out[1] = std::byte{0};
  put_u16(&out[2], static_cast<std::uint16_t>(key.size()));
  put_u32(&out[4], static_cast<std::uint32_t>(value.size()));
  if (!key.empty()) std::memcpy(&out[kHeaderBytes], key.data(), key.size());
  if (!value.empty()) std::memcpy(&out[kHeaderBytes + key.size()], value.data(), value.size());
  return request_size(key, value);
}

// A validated request: views into the message it was parsed from.
struct Request {
  Op op{};
  std::string_view key;
  std::string_view value;
};

// Parses and validates; returns Status::ok and fills `r`, or the error status to answer with.
Status parse_request(std::span<const std::byte> msg, Request& r) noexcept;

// Writes a response header (+ value) into `out` (at least kHeaderBytes + value.size()); returns its length.
inline std::size_t encode_response(std::span<std::byte> out, Status s, std::string_view value = {}) noexcept {
  out[0] = static_cast<std::byte>(s);
  out[1] = std::byte{0};
  put_u16(&out[2], 0);
  put_u32(&out[4], static_cast<std::uint32_t>(value.size()));
  if (!value.empty()) std::memcpy(&out[kHeaderBytes], value.data(), value.size());
  return kHeaderBytes + value.size();
}

// A decoded response. ok() is false for a malformed response (a broken server).
struct Response {
  Status status = Status::malformed;
  std::string value;
  bool valid = false;
};
Response decode_response(std::span<const std::byte> msg);

}  // namespace uipc::apps::kv
