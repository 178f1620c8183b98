// uipc/ipc/peer_watch.hpp — noticing that a peer process died, from the kernel, not a timeout.
//
// What it guarantees: after watch(pid, fn), fn runs exactly once, on the process-wide watcher
// thread, soon after process `pid` exits (its pidfd becomes readable: the kernel's own exit
// signal), unless cancel(token) returned first; cancel() waits for a running fn to finish, so
// after it returns fn is not running and will not run. fn must be short and must not call
// watch/cancel (it typically sets a flag in shared memory and raises a slot).
// A process that is already gone when watch() is called (pidfd_open: ESRCH) gets fn run at
// once, on the calling thread, and token 0, which cancel() ignores.
// Who may call: any thread. What blocks: cancel() while that very fn runs; nothing else.
// Limits: needs pidfd_open (Linux 5.3+); without it watch() returns errc::function_not_supported
// and the caller goes on without death detection. A pid reused between the peer's
// connect and our pidfd_open would be watched instead (a window of microseconds).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>

#include "uipc/result.hpp"

namespace uipc::ipc::peer_watch {

Result<std::uint64_t> watch(pid_t pid, std::function<void()> fn);
void cancel(std::uint64_t token) noexcept;

}  // namespace uipc::ipc::peer_watch
