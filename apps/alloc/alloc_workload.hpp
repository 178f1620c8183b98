// apps/alloc/alloc_workload.hpp — the reference implementation's allocator workload, run against
// either twin of the memory-allocation server (alloc.hpp); `uipc bench alloc` and the tests use it.
//
// The work: `clients` × `rounds` jobs (the reference: 512 client coroutines × 10), each one op =
// allocate `bytes` + touch every page (check it reads 0, write a tag, read it back) + free, with
// `inflight` callers taking jobs from one shared counter until `repeat` + 1 passes of the work are
// done (the first pass is warm-up). Async: one client runtime thread, `inflight` coroutines on one
// channel. Sync: `inflight` client threads, each a blocking client on its own endpoint slot (a
// blocking call has one call in flight per thread).
//
// Measurement: the interval runs from the moment the first job of the second pass is taken (no
// later job starts before that) to the completion of the last job; ops = the jobs of the measured
// passes (warm-up jobs still running at the start are not counted). Latency is per op (allocate
// sent → free answered, touching included), for every job of the measured passes. Kernel entries
// are counted where they are made: client side (runtime futex calls / sync futex calls), server
// thread (its futex calls, and the mmap/munmap it made itself), executor cores and blocking pool
// (async only). Page faults from touching are not system calls and are not counted; both twins
// take one per page. cpu_s is the process's CPU time over the interval.
//
// Who may call: any thread that runs no runtime; it blocks until the work is done. It pins the
// calling thread to cpus[0] when cpus are given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "alloc/alloc.hpp"
#include "uipc/sys/executor.hpp"

namespace uipc::apps::alloc {

struct WorkloadParams {
  unsigned inflight = 1;
  unsigned clients = 512;
  unsigned rounds = 10;
  unsigned repeat = 10;         // measured passes over clients × rounds (plus one warm-up pass)
  std::size_t bytes = 4096;
  bool populate = true;         // AllocLimits::populate, both twins
  std::vector<int> cpus;        // [0] clients, [1] server, [2] kernel core (async, affine/shared); empty: unpinned
  // The async server's executor (docs/alloc.md says why these defaults).
  sys::WakeMode wake = sys::WakeMode::hybrid;
  sys::Placement placement = sys::Placement::local;
  sys::Backend backend = sys::Backend::direct;
  unsigned max_batch = 1024;       // ExecutorOptions::max_batch: calls a claimant executes per claim
  std::int64_t sync_spin_ns = -1;   // the sync twin's spin window, both sides; < 0: the library default
  std::int64_t async_spin_ns = -1;  // the async twin's runtimes (client, server); < 0: the library default
};

struct WorkloadResult {
  std::uint64_t ops = 0;        // measured ops (allocate + touch + free): clients × rounds × repeat
  double wall_s = 0;
  double p50_ns = 0, p99_ns = 0;
  std::uint64_t client_kernel_entries = 0;
  std::uint64_t server_kernel_entries = 0;
  std::uint64_t executor_kernel_entries = 0;
  double cpu_s = 0;
  std::uint64_t jobs = 0;       // every op done, warm-up included
  std::uint64_t pages_checked = 0;
  std::uint64_t backstops = 0;  // async: runtime sleeps (client + server) that ended by the backstop timeout
  AllocStats server;            // the server's counts once it stopped
  std::string error;            // empty, or what went wrong (a failed call, a page that was not fresh ...)
  std::uint64_t kernel_entries() const { return client_kernel_entries + server_kernel_entries + executor_kernel_entries; }
  double ops_per_s() const { return wall_s > 0 ? static_cast<double>(ops) / wall_s : 0; }
  double per_op(double v) const { return ops ? v / static_cast<double>(ops) : 0; }
};

WorkloadResult run_async_workload(const WorkloadParams& p);
WorkloadResult run_sync_workload(const WorkloadParams& p);

}  // namespace uipc::apps::alloc
