// uipc/result.hpp — Result<T>: a value or a std::error_code (C++20 has no std::expected).
//
// Invariants: a Result holds exactly one of the two; value() on an error aborts with a message
// (a programming error, not a run-time condition). Error codes are std::errc values in the
// generic category, so callers compare with `r.error() == std::errc::timed_out`.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <utility>
#include <variant>

namespace uipc {

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::in_place_index<0>, std::move(v)) {}  // NOLINT: implicit by design
  Result(std::error_code e) : v_(std::in_place_index<1>, e) {}  // NOLINT
  Result(std::errc e) : v_(std::in_place_index<1>, std::make_error_code(e)) {}  // NOLINT

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  T& value() & { check(); return std::get<0>(v_); }
  const T& value() const& { check(); return std::get<0>(v_); }
  T&& value() && { check(); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  std::error_code error() const noexcept { return has_value() ? std::error_code{} : std::get<1>(v_); }

 private:
  void check() const {
    if (!has_value()) {
      std::fprintf(stderr, "uipc: Result::value() on error: %s\n", std::get<1>(v_).message().c_str());
      std::abort();
    }
  }
  std::variant<T, std::error_code> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(std::error_code e) : e_(e) {}  // NOLINT
  Result(std::errc e) : e_(std::make_error_code(e)) {}  // NOLINT
  bool has_value() const noexcept { return !e_; }
  explicit operator bool() const noexcept { return has_value(); }
  std::error_code error() const noexcept { return e_; }

 private:
  std::error_code e_;
};

inline std::error_code errno_code(int e) { return {e, std::generic_category()}; }

}  // namespace uipc
