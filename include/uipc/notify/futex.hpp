// uipc/notify/futex.hpp — the only place uipc enters the kernel to sleep or wake.
//
// Invariants: futexes are process-shared (no FUTEX_PRIVATE_FLAG) because the words live in
// memfd mappings that other processes map at other addresses. The raw calls return 0 or
// -errno and never leave errno changed for the caller.
// Blocking: futex_wait blocks until woken, until *word != expected, or until the timeout.
#pragma once

#include <atomic>
#include <cstdint>

namespace uipc::futex {

// Returns 0 when woken (or spuriously), -EAGAIN when *word != expected, -ETIMEDOUT, -EINTR.
// timeout_ns < 0: no timeout.
int wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::int64_t timeout_ns);
// Returns the number of waiters woken or -errno.
int wake(std::atomic<std::uint32_t>* word, int count);

}  // namespace uipc::futex
