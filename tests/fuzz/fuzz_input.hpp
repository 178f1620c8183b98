// tests/fuzz/fuzz_input.hpp — reads a fuzz input front to back, little-endian.
//
// Unlike FuzzedDataProvider (which takes integers from the end), the bytes are consumed in
// order, so a seed can be written by hand or by make_corpus.sh as "opcode, arguments, ...".
// Past the end every read returns zeros; callers stop on done().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>

namespace uipc::fuzz {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) noexcept : p_(data), end_(data + size) {}

  bool done() const noexcept { return p_ >= end_; }
  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }

  std::uint8_t u8() noexcept { return static_cast<std::uint8_t>(take(1)); }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(take(2)); }
  std::uint32_t u32() noexcept { return static_cast<std::uint32_t>(take(4)); }
  std::uint64_t u64() noexcept { return take(8); }
  bool flag() noexcept { return (u8() & 1) != 0; }

  // Up to n bytes into out (zero-filled past the end); returns how many came from the input.
  std::size_t bytes(void* out, std::size_t n) noexcept {
    const std::size_t k = n < left() ? n : left();
    if (k != 0) std::memcpy(out, p_, k);
    if (k < n) std::memset(static_cast<std::uint8_t*>(out) + k, 0, n - k);
    p_ += k;
    return k;
  }

 private:
  std::uint64_t take(unsigned n) noexcept {
    std::uint64_t v = 0;
    for (unsigned i = 0; i < n && p_ < end_; ++i) v |= std::uint64_t{*p_++} << (8 * i);
    return v;
  }
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

// An invariant of the code under test failed: report it the way a sanitizer would, so libFuzzer
// saves the input as a crash.
[[noreturn]] inline void violated(const char* target, const char* what, const char* file, int line) {
  std::fprintf(stderr, "==%s== INVARIANT VIOLATED at %s:%d: %s\n", target, file, line, what);
  std::abort();
}

}  // namespace uipc::fuzz

#define FUZZ_CHECK(target, cond)                                              \
  do {                                                                        \
    if (!(cond)) [[unlikely]]                                                 \
      ::uipc::fuzz::violated(target, #cond, __FILE__, __LINE__);              \
  } while (0)
