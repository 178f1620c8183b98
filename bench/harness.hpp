// bench/harness.hpp — the common shape of every `uipc bench ipc` mode.
//
// A mode is a function that runs one scenario (one in-flight count, one message size) for about
// `seconds` of wall time with a client side and a server side (each on its own thread, pinned to
// params.cpus[0] / params.cpus[1] when given), and returns what it measured. Modes register
// themselves with a static IpcModeRegistrar in their own .cpp file; the tool lists them by name.
//
// Measurement rules every mode follows:
//  * ops counts completed round trips (request sent, its own reply received and checked);
//  * latency is per round trip, from just before the request is written to just after its reply
//    is read, recorded in a LatencyRecorder by the client side;
//  * kernel_entries counts system calls the mode made on both sides during the measured interval
//    (futex, read/write/send/recv, epoll_wait, sched_yield ...), counted where they are made;
//  * cpu_s is the process CPU time (user + system) spent in the measured interval.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace uipc::bench {

struct IpcParams {
  unsigned inflight = 1;        // calls outstanding at once
  std::size_t msg_bytes = 64;   // request and reply payload size
  double seconds = 1.0;         // measured interval (after a short warm-up)
  std::vector<int> cpus;        // cpus[0]: client thread(s), cpus[1]: server thread; empty = no pinning
};

struct IpcResult {
  std::uint64_t ops = 0;
  double wall_s = 0;
  double p50_ns = 0;
  double p99_ns = 0;
  std::uint64_t kernel_entries = 0;
  double cpu_s = 0;
  std::string note;             // anything the reader must know (e.g. "client threads: 64")
  unsigned round = 0;           // round 1..N of a series measured in rounds (mark_round), else 0
  double ops_per_s() const { return wall_s > 0 ? static_cast<double>(ops) / wall_s : 0; }
  double kernel_entries_per_op() const { return ops ? static_cast<double>(kernel_entries) / static_cast<double>(ops) : 0; }
};

using IpcModeFn = std::function<IpcResult(const IpcParams&)>;

// An idle async client and server: connected, one call made, then nothing for p.seconds.
// Returns the process CPU spent over that interval (cpu_s) and the kernel entries made; the
// spin window passes at the start of the interval. The target: under 1% of one core.
IpcResult run_async_idle(const IpcParams& p);

// name -> mode; filled by static registrars before main().
std::map<std::string, IpcModeFn>& ipc_modes();

struct IpcModeRegistrar {
  IpcModeRegistrar(const std::string& name, IpcModeFn fn) { ipc_modes().emplace(name, std::move(fn)); }
};

// Log-bucketed latency histogram (≤ 1% relative error), cheap enough to record every op.
class LatencyRecorder {
 public:
  LatencyRecorder();
  void record(std::uint64_t ns);
  void merge(const LatencyRecorder& o);
  double percentile(double p) const;  // p in [0, 100]
  std::uint64_t count() const { return count_; }

 private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;  // exact extremes: percentiles are clamped to [min_, max_]
  std::uint64_t max_ = 0;
};

// The closed-loop clients (bench ipc async and sync, bench sys, bench placement) count every
// call and time one in this many: a clock read per call would be a large part of a short call.
inline constexpr unsigned kSampleEvery = 8;

std::uint64_t now_ns();                 // monotonic ns: calibrated invariant TSC, else CLOCK_MONOTONIC (no kernel entry)
double process_cpu_seconds();           // getrusage(RUSAGE_SELF): user + system
void pin_this_thread(int cpu);          // no-op when cpu < 0; aborts with a message on failure
int cpu_or_none(const IpcParams& p, std::size_t i);  // p.cpus[i] or -1

// The time one cache line takes to go from the client's CPU to the server's and back (p.cpus[0],
// p.cpus[1]): the median, over 5 rounds of 400, of a ping-pong on one shared word. About a
// millisecond. Taken next to each scenario, it tells whether the machine itself changed between
// scenarios (a VM's vCPUs moved by the host: on the project machine this reads 140-150 ns in one
// period and 650-750 ns in another), which would make their ratio meaningless. Pins the calling
// thread to p.cpus[0], as the modes' clients do.
double line_rtt_ns(const IpcParams& p);

// One ratio over repeated rounds (uipc bench ipc --rounds): the median of x[r] / b[r] over the
// rounds r with steady[r] (the machine did not change around them), or over every round when none
// was steady (all_changed). Rounds whose b[r] is not positive (the peer completed nothing) are
// skipped; valid is false when none is left.
struct RoundsRatio {
  double median = 0;
  std::size_t used = 0;  // rounds the median is taken over
  bool all_changed = false;
  bool valid = false;
};
RoundsRatio rounds_ratio(const std::vector<double>& x, const std::vector<double>& b, const std::vector<bool>& steady);

// What one sleep costs the thread that sleeps: the CPU time (CLOCK_THREAD_CPUTIME_ID, kernel
// included) a thread on p.cpus[0] spends per futex sleep when another, on p.cpus[1], wakes it
// every `period_ns` (as a kernel core's tick wakes a caller). The median of 3 rounds of 100
// sleeps after 300 unmeasured ones: 600 periods. A runtime that sleeps once per batch pays this
// once per batch, so it bounds how far the per-call cost of a batch of n calls can fall: this / n.
double sleep_wake_cpu_ns(const IpcParams& p, std::int64_t period_ns);

}  // namespace uipc::bench
