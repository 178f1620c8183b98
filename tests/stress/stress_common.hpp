// Pieces the stress tests share: how many calls to make, and a cheap mixing function for
// checksums and pseudo-random choices.
#pragma once

#include <cstdint>
#include <cstdlib>

namespace uipc::test {

// UIPC_STRESS_CALLS if set; otherwise `full` in an optimised build and `reduced` in a debug or
// sanitizer build.
inline std::uint64_t stress_calls(std::uint64_t full, std::uint64_t reduced) {
  if (const char* e = std::getenv("UIPC_STRESS_CALLS")) return std::strtoull(e, nullptr, 10);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__OPTIMIZE__)
  (void)full;
  return reduced;
#else
  (void)reduced;
  return full;
#endif
}

// The murmur3 finaliser.
inline std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

}  // namespace uipc::test
