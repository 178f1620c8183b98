// uipc/detail/frame_pool.hpp — per-thread free lists for coroutine frames.
//
// Invariants: blocks are grouped in 64-byte size classes up to kMaxPooled bytes; larger frames
// go to operator new. A block freed on another thread than it was allocated on joins that
// thread's list (memory is memory); each list holds at most kMaxCached blocks, the rest are
// freed. No locks, no atomics: each thread only touches its own lists.
#pragma once

#include <cstddef>

namespace uipc::detail::frame_pool {

void* allocate(std::size_t n);
void deallocate(void* p, std::size_t n) noexcept;

}  // namespace uipc::detail::frame_pool
