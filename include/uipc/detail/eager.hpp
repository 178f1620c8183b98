// uipc/detail/eager.hpp — a fire-and-forget coroutine that starts at once and frees itself.
//
// Invariants: the body runs inline up to its first suspension (no trip through the ready
// queue), its frame comes from the frame pool and is freed when the body ends; an exception
// escaping the body is a bug and aborts with a message. The caller must keep everything the
// body uses alive until it ends (the server counts them per channel).
#pragma once

#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "uipc/detail/frame_pool.hpp"

namespace uipc::detail {

struct Eager {
  struct promise_type {
    static void* operator new(std::size_t n) { return frame_pool::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_pool::deallocate(p, n); }
    Eager get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {
      try {
        throw;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "uipc: a detached coroutine threw: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "uipc: a detached coroutine threw\n");
      }
      std::abort();
    }
  };
};

}  // namespace uipc::detail
