// apps/kv/kv_store.cpp — see kv_store.hpp and kv_protocol.hpp.
#include "kv/kv_store.hpp"

#include <cstdio>
#include <cstring>

namespace uipc::apps::kv {

const char* status_name(Status s) noexcept {
  switch (s) {
    case Status::ok: return "ok";
    case Status::not_found: return "not_found";
    case Status::bad_op: return "bad_op";
    case Status::bad_key: return "bad_key";
    case Status::too_large: return "too_large";
    case Status::malformed: return "malformed";
    case Status::store_full: return "store_full";
  }
  return "unknown_status";
}

Status parse_request(std::span<const std::byte> msg, Request& r) noexcept {
  if (msg.size() < kHeaderBytes) return Status::malformed;
  const auto op = std::to_integer<std::uint8_t>(msg[0]);
  if (msg[1] != std::byte{0} || op < 1 || op > 3) return Status::bad_op;
  const std::size_t key_len = get_u16(&msg[2]);
  const std::size_t value_len = get_u32(&msg[4]);
  if (key_len == 0 || key_len > kMaxKey) return Status::bad_key;
  if (value_len > kMaxValue) return Status::too_large;
  if (msg.size() != kHeaderBytes + key_len + value_len) return Status::malformed;
  r.op = static_cast<Op>(op);
  if (r.op != Op::put && value_len != 0) return Status::malformed;
  const char* base = reinterpret_cast<const char*>(msg.data());
  r.key = std::string_view(base + kHeaderBytes, key_len);
  r.value = std::string_view(base + kHeaderBytes + key_len, value_len);
  return Status::ok;
}

Response decode_response(std::span<const std::byte> msg) {
  Response out;
  if (msg.size() < kHeaderBytes) return out;
  const auto st = std::to_integer<std::uint8_t>(msg[0]);
  const std::size_t value_len = get_u32(&msg[4]);
  if (st > static_cast<std::uint8_t>(Status::store_full) || msg[1] != std::byte{0} || get_u16(&msg[2]) != 0 ||
      value_len > kMaxValue || msg.size() != kHeaderBytes + value_len)
    return out;
  out.status = static_cast<Status>(st);
  out.value.assign(reinterpret_cast<const char*>(msg.data()) + kHeaderBytes, value_len);
  out.valid = true;
  return out;
}

Status Store::put(std::string_view key, std::string_view value) {
  auto it = map_.find(key);
  if (it != map_.end()) {
    it->second.assign(value);
    return Status::ok;
  }
  if (map_.size() >= max_keys_) return Status::store_full;
  map_.emplace(std::string(key), std::string(value));
  return Status::ok;
}

const std::string* Store::find(std::string_view key) const {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &it->second;
}

Status Store::del(std::string_view key) {
  auto it = map_.find(key);
  if (it == map_.end()) return Status::not_found;
  map_.erase(it);
  return Status::ok;
}

std::size_t Store::handle(std::span<const std::byte> request, std::span<std::byte> reply) {
  Request r;
  const Status st = parse_request(request, r);
  if (st != Status::ok) {
    ++stats_.errors;
    return encode_response(reply, st);
  }
  switch (r.op) {
    case Op::get: {
      ++stats_.gets;
      const std::string* v = find(r.key);
      return v ? encode_response(reply, Status::ok, *v) : encode_response(reply, Status::not_found);
    }
    case Op::put: {
      ++stats_.puts;
      const Status s = put(r.key, r.value);
      if (s != Status::ok) ++stats_.errors;
      return encode_response(reply, s);
    }
    case Op::del:
      ++stats_.dels;
      return encode_response(reply, del(r.key));
  }
  return encode_response(reply, Status::bad_op);  // unreachable: parse_request checked the op
}

void Store::preload(std::size_t n, std::size_t value_bytes) {
  map_.reserve(map_.size() + n);
  for (std::size_t i = 0; i < n; ++i) put(key_name(i), value_for(i, value_bytes));
}

std::string key_name(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key:%08zu", i);
  return buf;
}

namespace {
// "abc...z" repeated: value_for(i, n) is the n bytes from offset (7 i) mod 26.
struct Alphabet {
  char bytes[kMaxValue + 26];
  Alphabet() {
    for (std::size_t j = 0; j < sizeof bytes; ++j) bytes[j] = static_cast<char>('a' + j % 26);
  }
};
const Alphabet kAlphabet;
}  // namespace

void fill_value(std::size_t i, char* out, std::size_t n) noexcept {
  std::memcpy(out, kAlphabet.bytes + (i * 7) % 26, n);
}

std::string value_for(std::size_t i, std::size_t n) {
  std::string v(n, '\0');
  fill_value(i, v.data(), n);
  return v;
}

}  // namespace uipc::apps::kv
