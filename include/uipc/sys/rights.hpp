// uipc/sys/rights.hpp — the allow-list a registration carries (issue 3 §5).
//
// What it guarantees:
//  * An AllowList is a set of system-call numbers 0 .. abi::kMaxSyscallNumber. A request whose
//    number is in range but not in the set completes with -EPERM and is never executed; a number
//    out of range is malformed and completes with -EINVAL.
//  * Some calls are refused whatever the list says (hard_denied): they would end or replace the
//    executing thread or process (exit, exit_group, execve, execveat, fork, vfork, clone, clone3,
//    rt_sigreturn), which an executor thread must never do on a caller's behalf.
//  * safe_default() is the documented safe set (docs/syscalls.md): file and socket I/O, file
//    metadata, anonymous memory mapping, sleeps, polls, waits, process identity queries. It leaves
//    out calls whose effect depends on the executing thread (signal masks, sigaltstack, prctl,
//    arch_prctl, set_robust_list, sched_setaffinity ...), calls that change process-wide identity
//    or privileges (setuid, capset, chroot, unshare, setns, seccomp, ptrace ...), brk (the
//    allocator's heap) and anything that blocks without an interruptible form (futex, pause,
//    flock, select).
// Who may call: anyone; an AllowList is a plain value.
// What blocks: nothing.
#pragma once

#include <bitset>
#include <cstdint>
#include <initializer_list>

#include "uipc/sys/abi.hpp"

namespace uipc::sys {

class AllowList {
 public:
  AllowList() = default;  // empty: every call is refused with -EPERM
  AllowList(std::initializer_list<long> numbers) {
    for (long n : numbers) allow(n);
  }

  static AllowList safe_default();
  static AllowList everything();  // all numbers (hard_denied ones are still refused)

  AllowList& allow(long number) noexcept {
    if (in_range(number)) bits_.set(static_cast<std::size_t>(number));
    return *this;
  }
  AllowList& deny(long number) noexcept {
    if (in_range(number)) bits_.reset(static_cast<std::size_t>(number));
    return *this;
  }
  bool allows(long number) const noexcept {
    return in_range(number) && bits_.test(static_cast<std::size_t>(number)) && !hard_denied(number);
  }
  static bool in_range(long number) noexcept { return number >= 0 && number <= static_cast<long>(abi::kMaxSyscallNumber); }
  // The list as the executor applies it: the hard-denied numbers removed, so that allows()
  // becomes allows_in_range() (a single bit test) for numbers already checked to be in range.
  AllowList effective() const noexcept;
  bool allows_in_range(std::uint32_t number) const noexcept { return bits_.test(number); }
  static bool hard_denied(long number) noexcept;
  std::size_t size() const noexcept { return bits_.count(); }

 private:
  std::bitset<abi::kMaxSyscallNumber + 1> bits_;
};

}  // namespace uipc::sys
