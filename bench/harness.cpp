// bench/harness.cpp — the mode registry, the latency histogram and the small clock/CPU helpers
// every `uipc bench ipc` mode shares (see harness.hpp for the measurement rules).
#include "harness.hpp"

#include "uipc/notify/futex.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <bit>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace uipc::bench {

std::map<std::string, IpcModeFn>& ipc_modes() {
  static std::map<std::string, IpcModeFn> modes;  // function-local: safe from static-init order
  return modes;
}

// ---- LatencyRecorder ---------------------------------------------------------------------------
//
// Log-linear buckets (HdrHistogram's layout): values below 2^kSubBits get one bucket each (exact);
// above that, every power-of-two range [2^e, 2^(e+1)) is split into 2^(kSubBits-1) equal buckets,
// so a bucket is at most 1/2^(kSubBits-1) = 1/128 of its lower bound wide (< 0.8% relative error,
// and half that once a percentile is interpolated inside the bucket).  Index of v >= 2^kSubBits:
//     shift = bit_width(v) - kSubBits,  index = (shift << (kSubBits-1)) + (v >> shift)
// which is continuous with the exact range (shift 0 gives index v).  kMaxShift bounds the range to
// 2^(kSubBits+kMaxShift) ns (~275 s); larger values land in the last bucket.
namespace {
constexpr unsigned kSubBits = 8;                         // 256 exact values, then 128 per octave
constexpr unsigned kHalf = 1u << (kSubBits - 1);         // 128
constexpr unsigned kMaxShift = 30;                       // top range: [2^37, 2^38) ns
constexpr std::size_t kBuckets = (kMaxShift + 2) * kHalf;  // last index: (30 << 7) + 255

inline std::size_t bucket_of(std::uint64_t v) {
  const unsigned width = static_cast<unsigned>(std::bit_width(v));
  if (width <= kSubBits) return static_cast<std::size_t>(v);
  const unsigned shift = width - kSubBits;
  if (shift > kMaxShift) return kBuckets - 1;
  return (static_cast<std::size_t>(shift) << (kSubBits - 1)) + static_cast<std::size_t>(v >> shift);
}

// [low, low + width) covered by bucket i.
inline void bucket_range(std::size_t i, double& low, double& width) {
  if (i < (std::size_t{1} << kSubBits)) {
    low = static_cast<double>(i);
    width = 1;
    return;
  }
  const std::size_t shift = (i >> (kSubBits - 1)) - 1;
  const std::size_t sub = i - (shift << (kSubBits - 1));  // in [kHalf, 2*kHalf)
  low = std::ldexp(static_cast<double>(sub), static_cast<int>(shift));
  width = std::ldexp(1.0, static_cast<int>(shift));
}
}  // namespace

LatencyRecorder::LatencyRecorder() : buckets_(kBuckets, 0) {}

void LatencyRecorder::record(std::uint64_t ns) {
  ++buckets_[bucket_of(ns)];
  ++count_;
  if (ns < min_) min_ = ns;
  if (ns > max_) max_ = ns;
}

void LatencyRecorder::merge(const LatencyRecorder& o) {
  for (std::size_t i = 0; i < kBuckets; ++i) buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

double LatencyRecorder::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // The sample of rank r (0-based, fractional) among count_ sorted samples.
  const double rank = p / 100.0 * static_cast<double>(count_ - 1);
  double before = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    const auto c = static_cast<double>(buckets_[i]);
    if (c == 0) continue;
    if (rank < before + c) {
      double low, width;
      bucket_range(i, low, width);
      double v = low;
      if (width > 1) v += width * ((rank - before) + 0.5) / c;  // spread the bucket's samples evenly
      return std::clamp(v, static_cast<double>(min_), static_cast<double>(max_));
    }
    before += c;
  }
  return static_cast<double>(max_);
}

// ---- clocks, CPU time, pinning -----------------------------------------------------------------

namespace {
std::uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Latency stamps are taken twice per call in the per-call modes: a vDSO clock_gettime costs
// 20-40 ns under KVM, enough to distort what is measured. Where the TSC is invariant
// (constant_tsc + nonstop_tsc), stamps come from rdtsc scaled by a factor calibrated once
// against CLOCK_MONOTONIC; elsewhere from clock_gettime. Every mode uses the same clock.
struct TscClock {
  bool usable = false;
  std::uint64_t tsc0 = 0, ns0 = 0;
  double ns_per_tick = 0;
  TscClock() {
#if defined(__x86_64__)
    FILE* f = std::fopen("/proc/cpuinfo", "r");
    if (f == nullptr) return;
    char line[4096];
    bool constant = false, nonstop = false;
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::strncmp(line, "flags", 5) != 0) continue;
      constant = std::strstr(line, " constant_tsc") != nullptr;
      nonstop = std::strstr(line, " nonstop_tsc") != nullptr;
      break;
    }
    std::fclose(f);
    if (!constant || !nonstop) return;
    const std::uint64_t n1 = monotonic_ns(), t1 = __builtin_ia32_rdtsc();
    timespec d{0, 20'000'000};
    nanosleep(&d, nullptr);
    const std::uint64_t n2 = monotonic_ns(), t2 = __builtin_ia32_rdtsc();
    if (t2 <= t1 || n2 <= n1) return;
    ns_per_tick = static_cast<double>(n2 - n1) / static_cast<double>(t2 - t1);
    tsc0 = t2;
    ns0 = n2;
    usable = true;
#endif
  }
};
const TscClock& tsc_clock() {
  static const TscClock c;
  return c;
}
}  // namespace

std::uint64_t now_ns() {
#if defined(__x86_64__)
  const TscClock& c = tsc_clock();
  if (c.usable) return c.ns0 + static_cast<std::uint64_t>(static_cast<double>(__builtin_ia32_rdtsc() - c.tsc0) * c.ns_per_tick);
#endif
  return monotonic_ns();
}

RoundsRatio rounds_ratio(const std::vector<double>& x, const std::vector<double>& b, const std::vector<bool>& steady) {
  std::vector<double> kept, all;
  for (std::size_t r = 0; r < x.size() && r < b.size() && r < steady.size(); ++r) {
    if (!(b[r] > 0)) continue;
    (steady[r] ? kept : all).push_back(x[r] / b[r]);
  }
  RoundsRatio out;
  out.all_changed = kept.empty();
  std::vector<double>& v = out.all_changed ? all : kept;
  if (v.empty()) return out;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  out.median = n % 2 != 0 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  out.used = n;
  out.valid = true;
  return out;
}

double process_cpu_seconds() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

void pin_this_thread(int cpu) {
  if (cpu < 0) return;
  if (cpu >= CPU_SETSIZE) {
    std::fprintf(stderr, "uipc bench: cannot pin to cpu %d (beyond CPU_SETSIZE)\n", cpu);
    std::abort();
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (const int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set); err != 0) {
    std::fprintf(stderr, "uipc bench: cannot pin thread to cpu %d: %s\n", cpu, std::strerror(err));
    std::abort();
  }
}

int cpu_or_none(const IpcParams& p, std::size_t i) { return i < p.cpus.size() ? p.cpus[i] : -1; }

double line_rtt_ns(const IpcParams& p) {
  // Spins, and yields now and then: two threads that share a CPU (unpinned, or a real-time
  // class) still take turns.
  auto relax = [spins = 0u]() mutable {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if ((++spins & 1023) == 0) sched_yield();
  };
  constexpr int kRounds = 5, kTrips = 400;
  struct alignas(128) Line {
    std::atomic<std::uint64_t> word{0};
  } line;
  // The echo thread starts on the caller's CPU; under a real-time class (chrt -f) a caller that
  // spun there would never let it run, so the caller sleeps until it has moved.
  std::atomic<bool> moved{false};
  pin_this_thread(cpu_or_none(p, 0));
  std::thread echo([&, relax, cpu = cpu_or_none(p, 1)]() mutable {
    pin_this_thread(cpu);
    moved.store(true, std::memory_order_release);
    moved.notify_one();
    // Answers every odd value v with v + 1 until it sees the last one.
    for (std::uint64_t want = 1; want < 2ull * kRounds * kTrips; want += 2) {
      // acquire/release: a plain hand-off; the value is the message.
      while (line.word.load(std::memory_order_acquire) != want) relax();
      line.word.store(want + 1, std::memory_order_release);
    }
  });
  moved.wait(false, std::memory_order_acquire);
  std::vector<double> per_trip;
  std::uint64_t v = 0;
  for (int r = 0; r < kRounds; ++r) {
    const std::uint64_t t0 = now_ns();
    for (int i = 0; i < kTrips; ++i) {
      line.word.store(++v, std::memory_order_release);
      ++v;
      while (line.word.load(std::memory_order_acquire) != v) relax();
    }
    per_trip.push_back(static_cast<double>(now_ns() - t0) / kTrips);
  }
  echo.join();
  std::sort(per_trip.begin(), per_trip.end());
  return per_trip[kRounds / 2];
}

double sleep_wake_cpu_ns(const IpcParams& p, std::int64_t period_ns) {
  // The cost per sleep grows over the first ~100 ms of the pattern on the project's VM (4 us per
  // sleep over the first 60, 10-12 us from 200 on): the rounds come after a warm-up of 300.
  constexpr int kWarmup = 300, kRounds = 3, kSleeps = 100;
  std::atomic<std::uint32_t> word{0};
  std::atomic<bool> done{false};
  std::vector<double> per_sleep;
  std::thread sleeper([&, cpu = cpu_or_none(p, 0)] {
    pin_this_thread(cpu);
    auto cpu_ns = [] {
      timespec ts{};
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
    };
    auto sleep_once = [&] {
      // acquire: pairs with the waker's release store.
      while (word.load(std::memory_order_acquire) == 0) futex::wait(&word, 0, -1);
      word.store(0, std::memory_order_relaxed);
    };
    for (int i = 0; i < kWarmup; ++i) sleep_once();
    for (int r = 0; r < kRounds; ++r) {
      const double c0 = cpu_ns();
      for (int i = 0; i < kSleeps; ++i) sleep_once();
      per_sleep.push_back((cpu_ns() - c0) / kSleeps);
    }
    done.store(true, std::memory_order_release);
  });
  pin_this_thread(cpu_or_none(p, 1));
  // Wakes the sleeper once per period until it has slept enough times. A wake that finds it
  // still awake leaves the word set: it then takes one turn without sleeping, which only makes
  // the figure smaller (never larger) than a sleep's cost.
  std::uint64_t next = now_ns();
  while (!done.load(std::memory_order_acquire)) {
    next += static_cast<std::uint64_t>(period_ns);
    // Sleeps to the deadline, as a kernel core sleeps on its tick timer.
    for (std::uint64_t t = now_ns(); t < next; t = now_ns()) std::this_thread::sleep_for(std::chrono::nanoseconds(next - t));
    word.store(1, std::memory_order_release);
    futex::wake(&word, 1);
  }
  sleeper.join();
  pin_this_thread(cpu_or_none(p, 0));
  std::sort(per_sleep.begin(), per_sleep.end());
  return per_sleep[kRounds / 2];
}

}  // namespace uipc::bench
