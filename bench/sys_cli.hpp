// bench/sys_cli.hpp — `uipc bench sys`: asynchronous system calls against plain ones and a
// hand-written io_uring loop (see docs/syscalls.md, "Benchmark").  tools/uipc.cpp adds the
// subcommand; the modes live in bench/sys_modes.cpp.
//
// Measurement rules (on top of bench/harness.hpp's):
//  * an op is one workload step: one getppid, one pread, one write, or one mmap + munmap pair
//    (calls_per_op = 2); `inflight` steps are outstanding at once (sync: always one);
//  * every call of a scenario reads into (writes from) one buffer, whatever the mode, so the
//    cache footprint is the same as the sync loop's;
//  * latency is sampled: every 8th op of each coroutine (every 8th call in sync mode, every
//    batch in uring mode and in the -batch modes, where it is the whole batch's round trip),
//    from just before the call is issued to just after it completed;
//  * caller_cpu_s is the CPU time of the calling thread alone (CLOCK_THREAD_CPUTIME_ID);
//  * caller_kernel_entries counts the calling thread's kernel entries: its runtime's futex waits
//    and wakes (raising kernel cores included), the calls it executed itself (shared, local
//    placement), the io_uring_enter calls it made; kernel_entries adds the kernel cores' and
//    the blocking pool's.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace uipc::bench {

void add_sys_bench(CLI::App& bench);

enum class SysWorkload { getppid, pread, write, mmap };
const char* to_string(SysWorkload w);

struct SysParams {
  SysWorkload workload = SysWorkload::getppid;
  unsigned inflight = 1;
  std::size_t bytes = 4096;          // pread / write / mmap size
  double seconds = 1.0;
  std::vector<int> cpus;             // cpus[0]: caller, cpus[1]: kernel core; empty = no pinning
  std::string file;                  // pread source (in the page cache)
  std::int64_t caller_spin_ns = -1;  // caller runtime's spin window; < 0: the library default
};

struct SysResult {
  std::uint64_t ops = 0;
  double wall_s = 0;
  double p50_ns = 0;
  double p99_ns = 0;
  std::uint64_t kernel_entries = 0;         // every party
  std::uint64_t caller_kernel_entries = 0;  // the calling thread
  double cpu_s = 0;                         // process CPU
  double caller_cpu_s = 0;                  // calling thread CPU
  unsigned calls_per_op = 1;
  bool supported = true;
  std::string note;
  double ops_per_s() const { return wall_s > 0 ? static_cast<double>(ops) / wall_s : 0; }
  double per_op(double v) const { return ops ? v / static_cast<double>(ops) : 0; }
};

using SysModeFn = std::function<SysResult(const SysParams&)>;

// name -> mode, in the order the table shows them: sync, uring, async-<wake>-<placement>-<backend>,
// then async-<wake>-affine-direct-batch (sys::call_many).
std::vector<std::pair<std::string, SysModeFn>>& sys_modes();

}  // namespace uipc::bench
