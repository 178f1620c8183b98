#include "uipc/sys/rights.hpp"

#include <sys/syscall.h>

namespace uipc::sys {

bool AllowList::hard_denied(long n) noexcept {
  switch (n) {
    case SYS_exit:
    case SYS_exit_group:
    case SYS_execve:
    case SYS_execveat:
    case SYS_fork:
    case SYS_vfork:
    case SYS_clone:
#ifdef SYS_clone3
    case SYS_clone3:
#endif
    case SYS_rt_sigreturn:
      return true;
    default:
      return false;
  }
}

AllowList AllowList::effective() const noexcept {
  AllowList a = *this;
  for (long n = 0; n <= static_cast<long>(abi::kMaxSyscallNumber); ++n)
    if (hard_denied(n)) a.bits_.reset(static_cast<std::size_t>(n));
  return a;
}

AllowList AllowList::everything() {
  AllowList a;
  a.bits_.set();
  return a;
}

// The documented safe set (docs/syscalls.md, "Rights").
AllowList AllowList::safe_default() {
  return AllowList{
      // file I/O
      SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv, SYS_pwritev, SYS_preadv2,
      SYS_pwritev2, SYS_lseek,
      // files and directories
      SYS_openat, SYS_close, SYS_fstat, SYS_newfstatat, SYS_statx, SYS_getdents64, SYS_fsync, SYS_fdatasync,
      SYS_syncfs, SYS_sync_file_range, SYS_ftruncate, SYS_fallocate, SYS_fadvise64, SYS_readlinkat, SYS_mkdirat,
      SYS_unlinkat, SYS_renameat, SYS_renameat2, SYS_linkat, SYS_symlinkat, SYS_faccessat, SYS_faccessat2,
      SYS_fchmod, SYS_fchmodat, SYS_fchown, SYS_fchownat, SYS_utimensat, SYS_statfs, SYS_fstatfs, SYS_dup,
      SYS_dup3, SYS_pipe2, SYS_fcntl, SYS_getcwd, SYS_fgetxattr, SYS_getxattr, SYS_listxattr, SYS_flistxattr,
      SYS_memfd_create, SYS_eventfd2, SYS_timerfd_create, SYS_timerfd_settime, SYS_timerfd_gettime,
      // sockets
      SYS_socket, SYS_socketpair, SYS_bind, SYS_listen, SYS_accept, SYS_accept4, SYS_connect, SYS_shutdown,
      SYS_recvfrom, SYS_sendto, SYS_recvmsg, SYS_sendmsg, SYS_getsockname, SYS_getpeername, SYS_getsockopt,
      SYS_setsockopt,
      // memory
      SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mincore, SYS_msync, SYS_mlock, SYS_munlock,
      // time, sleeps, polls, waits
      SYS_nanosleep, SYS_clock_nanosleep, SYS_clock_gettime, SYS_clock_getres, SYS_gettimeofday, SYS_poll,
      SYS_ppoll, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_wait, SYS_epoll_pwait, SYS_wait4, SYS_waitid,
      // identity and information
      SYS_getpid, SYS_getppid, SYS_gettid, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getpgid,
      SYS_getsid, SYS_getgroups, SYS_uname, SYS_sysinfo, SYS_getrlimit, SYS_getrusage,
      SYS_getrandom, SYS_sched_yield, SYS_getcpu, SYS_getpriority, SYS_times,
  };
}

}  // namespace uipc::sys
