// tests/unit/bench_harness_test.cpp — the `uipc bench ipc` harness: LatencyRecorder accuracy and
// merge, and a short run of every peer mode (ring, uds, uds-epoll, pipe).
//
// The unit-test executable does not build bench/, so this file compiles the harness and the
// peers it tests itself (bench/ is on the include path).  Keep these includes in this one file:
// a second test file including them would define the same symbols twice.
#include "harness.cpp"
#include "peers/pipe.cpp"
#include "peers/ring.cpp"
#include "peers/uds.cpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace uipc::bench {
namespace {

// The exact p-th percentile of sorted samples, with the same rank convention as the recorder.
double exact_percentile(const std::vector<std::uint64_t>& sorted, double p) {
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const auto hi = std::min(lo + 1, sorted.size() - 1);
  return static_cast<double>(sorted[lo]) + (rank - static_cast<double>(lo)) * static_cast<double>(sorted[hi] - sorted[lo]);
}

void expect_percentiles_within_1pct(const std::vector<std::uint64_t>& samples) {
  LatencyRecorder rec;
  for (auto v : samples) rec.record(v);
  std::vector<std::uint64_t> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_EQ(rec.count(), samples.size());
  for (double p : {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 100.0}) {
    const double want = exact_percentile(sorted, p), got = rec.percentile(p);
    EXPECT_NEAR(got, want, std::max(0.01 * want, 1.0)) << "p" << p;
  }
}

TEST(LatencyRecorder, EmptyIsZero) {
  LatencyRecorder rec;
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_EQ(rec.percentile(50), 0.0);
}

TEST(LatencyRecorder, SmallValuesAreExact) {
  LatencyRecorder rec;
  for (std::uint64_t v = 0; v < 200; ++v) rec.record(v);
  EXPECT_EQ(rec.percentile(0), 0.0);
  EXPECT_EQ(rec.percentile(100), 199.0);
  EXPECT_NEAR(rec.percentile(50), 99.5, 1.0);
}

TEST(LatencyRecorder, ConstantDistribution) {
  for (std::uint64_t v : {1ull, 777ull, 123'456ull, 9'876'543'210ull}) {
    LatencyRecorder rec;
    for (int i = 0; i < 1000; ++i) rec.record(v);
    for (double p : {0.0, 50.0, 99.0, 100.0}) EXPECT_DOUBLE_EQ(rec.percentile(p), static_cast<double>(v));
  }
}

TEST(LatencyRecorder, UniformWithin1Percent) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<std::uint64_t> d(1'000, 1'000'000);
  std::vector<std::uint64_t> s(200'000);
  for (auto& v : s) v = d(rng);
  expect_percentiles_within_1pct(s);
}

TEST(LatencyRecorder, LogNormalWithin1Percent) {
  // Latency-like: a body around 10 us and a long tail, over seven decades.
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> d(std::log(10'000.0), 1.5);
  std::vector<std::uint64_t> s(200'000);
  for (auto& v : s) v = static_cast<std::uint64_t>(d(rng)) + 1;
  expect_percentiles_within_1pct(s);
}

TEST(LatencyRecorder, Within1PercentUpTo100Seconds) {
  // Many samples of v and one far above: the median lies inside v's bucket, interpolated, so its
  // distance from v is the bucket's error.
  for (std::uint64_t v = 1; v <= 100'000'000'000ull; v = v * 3 / 2 + 1) {
    LatencyRecorder rec;
    for (int i = 0; i < 1000; ++i) rec.record(v);
    rec.record(10 * v);
    EXPECT_NEAR(rec.percentile(50), static_cast<double>(v), 0.01 * static_cast<double>(v)) << v;
  }
}

TEST(LatencyRecorder, MergeEqualsRecordingEverything) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> d(1.0 / 50'000);
  LatencyRecorder a, b, all;
  for (int i = 0; i < 50'000; ++i) {
    const auto v = static_cast<std::uint64_t>(d(rng));
    (i % 3 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  for (double p : {0.0, 1.0, 50.0, 90.0, 99.0, 99.99, 100.0}) EXPECT_DOUBLE_EQ(a.percentile(p), all.percentile(p)) << "p" << p;
  LatencyRecorder empty;
  a.merge(empty);
  EXPECT_DOUBLE_EQ(a.percentile(50), all.percentile(50));
}

// ---- peer modes ------------------------------------------------------------------------------

class PeerMode : public ::testing::TestWithParam<std::string> {};

IpcResult run_mode(const std::string& mode, unsigned inflight, std::size_t bytes, double seconds) {
  IpcParams p;
  p.inflight = inflight;
  p.msg_bytes = bytes;
  p.seconds = seconds;  // no pinning: the test may run beside others, on any CPUs
  return ipc_modes().at(mode)(p);
}

void expect_sane(const std::string& mode, const IpcResult& r, double seconds) {
  EXPECT_GT(r.ops, 0u);
  EXPECT_GE(r.wall_s, seconds);
  EXPECT_LT(r.wall_s, seconds + 5.0);  // slow sanitizer builds, busy machines
  EXPECT_GT(r.p50_ns, 0);
  EXPECT_GE(r.p99_ns, r.p50_ns);
  EXPECT_GE(r.cpu_s, 0);
  EXPECT_GT(r.ops_per_s(), 0);
  if (mode == "ring") {
    EXPECT_EQ(r.kernel_entries, 0u);
  } else {
    EXPECT_GT(r.kernel_entries, 0u);
    // At most read + write per side per round trip, plus an epoll_wait and a missed read each.
    EXPECT_LE(r.kernel_entries_per_op(), 8.0);
  }
}

TEST_P(PeerMode, ShortRunIsSane) {
  const IpcResult r = run_mode(GetParam(), 4, 64, 0.05);
  expect_sane(GetParam(), r, 0.05);
}

TEST_P(PeerMode, OddSizesAndWindow) {
  // Not a multiple of 8 nor of a cache line, and a window that is not a power of two.
  const IpcResult r = run_mode(GetParam(), 3, 1001, 0.02);
  expect_sane(GetParam(), r, 0.02);
}

TEST_P(PeerMode, WindowBiggerThanKernelBuffers) {
  // 256 x 64 KiB = 16 MiB in flight: more than a pipe or socket buffer holds, so writes go out in
  // parts and the blocking peers must not deadlock.
  const IpcResult r = run_mode(GetParam(), 256, 65536, 0.02);
  expect_sane(GetParam(), r, 0.02);
}

TEST_P(PeerMode, PingPong) {
  const IpcResult r = run_mode(GetParam(), 1, 8, 0.02);
  expect_sane(GetParam(), r, 0.02);
}

INSTANTIATE_TEST_SUITE_P(Bench, PeerMode, ::testing::Values("ring", "uds", "uds-epoll", "pipe"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(PeerModes, AllRegistered) {
  for (const char* m : {"ring", "uds", "uds-epoll", "pipe"}) EXPECT_EQ(ipc_modes().count(m), 1u) << m;
}

}  // namespace
}  // namespace uipc::bench

TEST(BenchHarness, LineRoundTripIsMeasured) {
  // Unpinned here (CI machines differ); a ping-pong of one cache line between two threads.
  uipc::bench::IpcParams p;
  const double ns = uipc::bench::line_rtt_ns(p);
  EXPECT_GT(ns, 1.0);
  EXPECT_LT(ns, 50e6);  // even with the two threads time-sliced on one loaded CPU
}

TEST(BenchHarness, ASleepsCostIsMeasured) {
  // Unpinned, woken every 200 us: 600 sleeps. Each enters the kernel (a futex wait), so each
  // costs the sleeper some CPU time, and far less than the 200 us it waits.
  uipc::bench::IpcParams p;
  const double ns = uipc::bench::sleep_wake_cpu_ns(p, 200'000);
  EXPECT_GT(ns, 0.0);
  EXPECT_LT(ns, 200'000.0);
}

TEST(BenchHarness, RoundsRatioIsTheMedianOfTheSteadyRounds) {
  using uipc::bench::rounds_ratio;
  // Round 2 ran while the machine changed: left out. Median of 10/10 and 30/10.
  auto q = rounds_ratio({10, 20, 30}, {10, 10, 10}, {true, false, true});
  ASSERT_TRUE(q.valid);
  EXPECT_DOUBLE_EQ(q.median, 2.0);
  EXPECT_EQ(q.used, 2u);
  EXPECT_FALSE(q.all_changed);
  // An odd count: the middle one, whatever the order of the rounds.
  q = rounds_ratio({9, 1, 4}, {1, 1, 1}, {true, true, true});
  EXPECT_DOUBLE_EQ(q.median, 4.0);
  EXPECT_EQ(q.used, 3u);
  // No steady round: the median of all of them, flagged.
  q = rounds_ratio({2, 4, 6}, {1, 1, 1}, {false, false, false});
  ASSERT_TRUE(q.valid);
  EXPECT_DOUBLE_EQ(q.median, 4.0);
  EXPECT_TRUE(q.all_changed);
  // A round whose peer completed nothing has no ratio; none at all: not valid.
  q = rounds_ratio({5, 5}, {0, 5}, {true, true});
  EXPECT_DOUBLE_EQ(q.median, 1.0);
  EXPECT_EQ(q.used, 1u);
  EXPECT_FALSE(rounds_ratio({5}, {0}, {true}).valid);
  EXPECT_FALSE(rounds_ratio({}, {}, {}).valid);
}
