// apps/kv/kv_store.hpp — the in-memory key-value store behind both servers.
//
// What it guarantees:
//  * handle() answers every request message — valid or not — with exactly one response
//    (kv_protocol.hpp): a bad request gets its error status and changes nothing.
//  * put replaces the whole value; get returns the last value put; del removes the key.
//    A put of a new key when size() == max_keys answers store_full and changes nothing.
//  * Memory: keys and values are copied in; the store holds at most max_keys keys of at most
//    kMaxKey + kMaxValue bytes each.
// Who may call: one thread at a time (no locks: each server serves its store from one thread).
// What blocks: nothing (handle may allocate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "kv/kv_protocol.hpp"

namespace uipc::apps::kv {

struct StoreStats {
  std::uint64_t gets = 0, puts = 0, dels = 0;
  std::uint64_t errors = 0;  // requests answered with bad_op / bad_key / too_large / malformed / store_full
};

class Store {
 public:
  static constexpr std::size_t kDefaultMaxKeys = std::size_t{1} << 20;
  explicit Store(std::size_t max_keys = kDefaultMaxKeys) : max_keys_(max_keys) {}

  // Answers `request` into `reply` (at least kMaxResponse bytes); returns the reply's length.
  std::size_t handle(std::span<const std::byte> request, std::span<std::byte> reply);

  // Direct access (the same semantics as the wire ops).
  Status put(std::string_view key, std::string_view value);
  const std::string* find(std::string_view key) const;
  Status del(std::string_view key);

  std::size_t size() const noexcept { return map_.size(); }
  std::size_t max_keys() const noexcept { return max_keys_; }
  const StoreStats& stats() const noexcept { return stats_; }

  // Fills keys key_name(0 .. n-1) with values of value_bytes bytes (the benchmark's key space).
  void preload(std::size_t n, std::size_t value_bytes);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::string, Hash, std::equal_to<>> map_;
  std::size_t max_keys_;
  StoreStats stats_;
};

// The benchmark's key names: "key:00000042".
std::string key_name(std::size_t i);
// A deterministic value of n bytes for key i (the preload and the benchmark's puts):
// byte j is 'a' + (7 i + j) mod 26.
std::string value_for(std::size_t i, std::size_t n);
// The same bytes written to `out` (n <= kMaxValue), without allocating.
void fill_value(std::size_t i, char* out, std::size_t n) noexcept;

}  // namespace uipc::apps::kv
