// tests/unit/report_test.cpp — `uipc report`: parsing JSON lines (bad lines skipped and counted),
// the Markdown tables and ratios, the ReL4 comparison, the headline, the plot data and script,
// and the files write_report makes with and without gnuplot.  Fixtures: tests/data/report/.
//
// The unit-test executable does not build bench/, so this file compiles the report code itself
// (bench/ is on the include path); report.cpp uses nothing else from bench/.
#include "report.cpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace uipc::bench::report {
namespace {

namespace fs = std::filesystem;

const fs::path kData = fs::path(__FILE__).parent_path().parent_path() / "data" / "report";

Dataset load(const std::string& file) {
  Dataset d;
  std::ifstream in(kData / file);
  EXPECT_TRUE(in) << (kData / file);
  read_jsonl(in, file, d);
  finish(d);
  return d;
}

// sample.jsonl's first line (sync@1, 1,000,000 ops/s, 11:00), to make variants of.
std::string first_sample_line() {
  std::ifstream in(kData / "sample.jsonl");
  std::string first;
  std::getline(in, first);
  EXPECT_FALSE(first.empty()) << (kData / "sample.jsonl");
  return first;
}

// The Dataset of the JSON lines in `text`, finished.
Dataset dataset_of(const std::string& text, const std::string& name) {
  std::istringstream is(text);
  Dataset d;
  read_jsonl(is, name, d);
  finish(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory under the temp dir, removed at the end of the test.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("uipc-report-test-" + std::to_string(getpid()) + "-" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempDir() { fs::remove_all(path); }
  ~TempDir() { fs::remove_all(path); }
};

#define EXPECT_CONTAINS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << "missing: " << (needle)

TEST(Report, ReadsGoodLinesAndCountsBadOnes) {
  Dataset d;
  std::ifstream in(kData / "sample.jsonl");
  std::vector<BadLine> warned;
  read_jsonl(in, "sample.jsonl", d, [&](const BadLine& b) { warned.push_back(b); });
  EXPECT_EQ(d.lines, 20u);  // 21 lines, one blank
  ASSERT_EQ(d.bad.size(), 2u);
  ASSERT_EQ(warned.size(), 2u);
  EXPECT_EQ(d.bad[0].where, "sample.jsonl:14");
  EXPECT_EQ(d.bad[0].reason.rfind("not valid JSON: ", 0), 0u) << d.bad[0].reason;
  EXPECT_EQ(d.bad[1].where, "sample.jsonl:15");
  EXPECT_EQ(d.bad[1].reason, "missing field(s): p99_ns");
  EXPECT_EQ(d.records.size(), 18u);
  finish(d);
  EXPECT_EQ(d.records.size(), 17u);  // the older sync@1 line is superseded
  EXPECT_EQ(d.superseded, 1u);
  const auto idle = std::find_if(d.records.begin(), d.records.end(), [](const Record& r) { return r.is_idle(); });
  ASSERT_NE(idle, d.records.end());
  EXPECT_EQ(idle->kernel_entries, 3u);
  EXPECT_EQ(idle->source, "sample.jsonl:17");
}

TEST(Report, ParseLineRejectsWithOneLineReasons) {
  auto reason = [](std::string_view line) {
    auto r = parse_line(line);
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : std::string("accepted");
  };
  EXPECT_EQ(reason("[1,2]"), "not a JSON object but array");
  EXPECT_EQ(reason("{}").rfind("missing field(s): scenario, mode, note,", 0), 0u);
  std::ifstream in(kData / "sample.jsonl");
  std::string good;
  std::getline(in, good);
  EXPECT_EQ(reason(good), "accepted");
  auto with = [&](const std::string& field, const std::string& value) {
    auto j = nlohmann::json::parse(good);
    j[field] = nlohmann::json::parse(value);
    return reason(j.dump());
  };
  EXPECT_EQ(with("ops_per_s", "null"), "field 'ops_per_s' is null, not a non-negative number");
  EXPECT_EQ(with("p50_ns", "-1"), "field 'p50_ns' is negative, not a non-negative number");
  EXPECT_EQ(with("inflight", "\"many\""), "field 'inflight' is string, not a non-negative integer");
  EXPECT_EQ(with("inflight", "0"), "field 'inflight' is 0 (only the async-idle line may have 0)");
  EXPECT_EQ(with("mode", "\"\""), "field 'mode' is empty");
  EXPECT_EQ(with("calls_per_op", "0"), "field 'calls_per_op' is 0");
  EXPECT_EQ(with("caller_kernel_entries_per_op", "null"), "accepted");  // optional: null = not measured
  EXPECT_EQ(with("caller_kernel_entries_per_op", "\"x\""), "field 'caller_kernel_entries_per_op' is string, not a non-negative number");
  EXPECT_EQ(reason(std::string(2u << 20, ' ')), "line longer than 1 MiB");
}

TEST(Report, CrlfAndBlankLinesAndLaterDuplicateWins) {
  const std::string first = first_sample_line();
  std::istringstream two(first + "\r\n\r\n  \n" + first + "\r\n");
  Dataset d;
  read_jsonl(two, "two", d);
  EXPECT_EQ(d.lines, 2u);
  EXPECT_TRUE(d.bad.empty());
  finish(d);
  ASSERT_EQ(d.records.size(), 1u);
  EXPECT_EQ(d.records[0].source, "two:4");  // same timestamp: the later line
  EXPECT_EQ(d.superseded, 1u);
}

// The latest series of rounds of a scenario counts by its median round; older lines are superseded.
TEST(Report, ASeriesOfRoundsKeepsItsMedianRound) {
  const std::string first = first_sample_line();
  auto line = [&](const std::string& mode, double ops, const std::string& minute, int round) {
    auto j = nlohmann::json::parse(first);
    j["mode"] = mode;
    j["ops_per_s"] = ops;
    j["timestamp"] = "2025-01-31T12:" + minute + ":00Z";
    if (round > 0) j["round"] = round;
    return j.dump() + "\n";
  };
  const std::string text(line("sync", 5e6, "00", 0) +                                  // older, superseded
                         line("sync", 3e6, "01", 1) + line("sync", 1e6, "02", 2) +       // a series of 3:
                         line("sync", 2e6, "03", 3) +                                  //   its median, 2e6
                         line("async", 4e6, "01", 1) + line("async", 3e6, "02", 2) +     // 2 rounds: the lower
                         line("ring", 9e6, "01", 1) + line("ring", 7e6, "02", 3) +       // round 2 missing
                         line("pipe", 1e6, "01", 0).replace(line("pipe", 1e6, "01", 0).find("\"ops_per_s\""), 0,
                                                             "\"rounds\":1e300,"));       // not the line's to say
  const Dataset d = dataset_of(text, "rounds");
  ASSERT_EQ(d.records.size(), 4u);
  std::map<std::string, const Record*> by_mode;
  for (const auto& r : d.records) by_mode[r.mode] = &r;
  EXPECT_EQ(by_mode.at("sync")->ops_per_s, 2e6);
  EXPECT_EQ(by_mode.at("sync")->extra.at("rounds"), 3);
  EXPECT_EQ(by_mode.at("async")->ops_per_s, 3e6);
  EXPECT_EQ(by_mode.at("async")->extra.at("rounds"), 2);
  EXPECT_EQ(by_mode.at("ring")->ops_per_s, 7e6);  // only the latest line: its round 2 is not there
  EXPECT_EQ(by_mode.at("ring")->extra.count("rounds"), 0u);
  EXPECT_EQ(by_mode.at("pipe")->extra.count("rounds"), 0u);
  EXPECT_EQ(d.other_rounds, 3u);  // 2 of sync's, 1 of async's
  EXPECT_EQ(d.superseded, 2u);    // sync's oldest, ring's round 1
  EXPECT_CONTAINS(render_markdown(d, {}), "2 superseded by a later line for the same scenario, 3 other rounds");
  EXPECT_EQ(headline(d, 1).rounds, 3u);
  EXPECT_CONTAINS(headline_text(headline(d, 1)), "of each scenario's median round of 3;");
  EXPECT_FALSE(headline(d, 1).line_rtt_ns);  // the lines have no line_rtt_ns
}

// The headline gives the median cache-line round trip of the headline group's scenarios.
TEST(Report, HeadlineGivesTheMedianLineRoundTrip) {
  const std::string first = first_sample_line();
  std::string text;
  const std::pair<const char*, double> lines[] = {{"sync", 400}, {"async", 80}, {"ring", 90}};
  for (const auto& [mode, ns] : lines) {
    auto j = nlohmann::json::parse(first);
    j["mode"] = mode;
    j["line_rtt_ns"] = ns;
    text += j.dump() + "\n";
  }
  const Dataset d = dataset_of(text, "lines");
  const Headline h = headline(d, 1);
  ASSERT_TRUE(h.line_rtt_ns);
  EXPECT_EQ(*h.line_rtt_ns, 90);
  EXPECT_CONTAINS(headline_text(h), "cache-line round trip between the CPUs     90 ns (median of the sweep");
  EXPECT_CONTAINS(render_markdown(d), "| cache-line round trip, client ↔ server CPU (median) | 90 ns |");
}

// Each headline ratio gives the line round trips of its two scenarios, and says when they differ
// by more than 1.5x (with the lines taken after each, where the lines have them).
TEST(Report, HeadlineGivesEachRatiosLines) {
  const std::string first = first_sample_line();
  struct L {
    const char* mode;
    std::uint64_t inflight;
    double before, after;
  };
  const L lines[] = {{"async", 1, 60, 0}, {"sync", 1, 400, 0},   {"async", 64, 380, 390}, {"sync", 64, 390, 0},
                     {"ring", 64, 370, 620}, {"uds-epoll", 64, 0, 0}};
  std::string text;
  for (const L& l : lines) {
    auto j = nlohmann::json::parse(first);
    j["mode"] = l.mode;
    j["inflight"] = l.inflight;
    if (l.before > 0) j["line_rtt_ns"] = l.before;
    if (l.after > 0) j["line_rtt_after_ns"] = l.after;
    text += j.dump() + "\n";
  }
  const Dataset d = dataset_of(text, "lines");
  const Headline h = headline(d, 64);
  ASSERT_TRUE(h.lines_sync_1 && h.lines_sync_hi && h.lines_ring_hi);
  EXPECT_EQ(h.lines_sync_1->async_ns, 60);
  EXPECT_EQ(h.lines_sync_1->other_ns, 400);
  EXPECT_TRUE(h.lines_sync_1->changed);   // 60 against 400
  EXPECT_FALSE(h.lines_sync_hi->changed);  // 380, 390, 390: one state
  EXPECT_TRUE(h.lines_ring_hi->changed);   // ring's line after it, 620, is another state
  EXPECT_FALSE(h.lines_uds_epoll_hi);      // uds-epoll has no line: nothing to show
  const std::string t = headline_text(h);
  EXPECT_CONTAINS(t, "1.00x; lines 60 ns / 400 ns, the machine changed between them\n");
  EXPECT_CONTAINS(t, "async / sync, 64 in flight                 1.00x; lines 380 ns / 390 ns\n");
  EXPECT_CONTAINS(t, "async / uds-epoll, 64 in flight            1.00x\n");
  const std::string md = render_markdown(d);
  EXPECT_CONTAINS(md, "| async ÷ sync, 1 in flight | 1.00× | 60 ns / 400 ns, the machine changed between them |");
  EXPECT_CONTAINS(md, "| async ÷ ring, 64 in flight | 1.00× | 380 ns / 370 ns, the machine changed between them |");
  EXPECT_CONTAINS(md, "| async ÷ sync, 64 in flight | 1.00× | 380 ns / 390 ns |");
}

// Without any line round trips the headline table has no column for them.
TEST(Report, HeadlineWithoutLinesHasNoLinesColumn) {
  const Dataset d = load("sample.jsonl");
  EXPECT_FALSE(headline(d).lines_sync_1);
  EXPECT_EQ(render_markdown(d).find("cache-line round trips of the two scenarios"), std::string::npos);
}

TEST(Report, Formatting) {
  EXPECT_EQ(fmt_rate(1234567.8), "1,234,568");
  EXPECT_EQ(fmt_rate(999), "999");
  EXPECT_EQ(fmt_ns(83.3), "83 ns");
  EXPECT_EQ(fmt_ns(1234), "1.23 µs");
  EXPECT_EQ(fmt_ns(0), "-");
  EXPECT_EQ(fmt_ratio(0.5), "0.50×");
  EXPECT_EQ(fmt_ratio(20), "20.0×");
  EXPECT_EQ(fmt_ratio(0.0123), "0.012×");
  EXPECT_EQ(fmt_kernel(0), "0");
  EXPECT_EQ(fmt_kernel(2.5), "2.500");
  EXPECT_EQ(fmt_kernel(0.001), "0.0010");
  EXPECT_EQ(fmt_kernel(0.000026), "0.000026");
  EXPECT_EQ(fmt_pct(0.02), "0.020%");
  EXPECT_TRUE(mode_before("async", "async-hybrid-affine-direct"));
  EXPECT_TRUE(mode_before("async-x", "sync"));
  EXPECT_TRUE(mode_before("sync", "ring"));
  EXPECT_TRUE(mode_before("pipe", "zzz"));
}

TEST(Report, GroupsRatiosCrossover) {
  const Dataset d = load("sample.jsonl");
  const auto gs = groups(d);
  ASSERT_EQ(gs.size(), 2u);
  EXPECT_EQ(gs[0].title(), "IPC, 64-byte messages");
  EXPECT_EQ(gs[0].slug(), "ipc-64B");
  EXPECT_EQ(gs[0].modes, (std::vector<std::string>{"async", "sync", "ring", "uds-epoll"}));
  EXPECT_EQ(gs[0].inflights, (std::vector<std::uint64_t>{1, 32, 64}));
  EXPECT_EQ(gs[1].title(), "System calls: mmap, 4096 bytes");
  EXPECT_DOUBLE_EQ(*ratio(gs[0], "async", "sync", 64), 6.0);
  EXPECT_FALSE(ratio(gs[0], "async", "pipe", 64));
  EXPECT_EQ(crossover(gs[0], "async", "sync"), 32u);
  EXPECT_EQ(crossover(gs[0], "async", "uds-epoll"), 1u);
  EXPECT_FALSE(crossover(gs[0], "async", "ring"));
  EXPECT_EQ(crossover(gs[1], "async-hybrid-affine-io_uring", "sync"), 32u);
}

TEST(Report, MarkdownTablesAndReferenceComparison) {
  const Dataset d = load("sample.jsonl");
  const std::string md = render_markdown(d);
  // Every number below comes from tests/data/report/sample.jsonl.
  EXPECT_CONTAINS(md, "20 lines read, 17 used, 2 skipped (malformed or incomplete), 1 superseded");
  EXPECT_CONTAINS(md, "| CPU | Test CPU @ 2.0GHz |");
  EXPECT_CONTAINS(md, "| threads | client on CPU 0, server on CPU 1 |");
  EXPECT_CONTAINS(md, "| mode | 1 | 32 | 64 |\n|---|---:|---:|---:|\n| async | 2,000,000 | 9,000,000 | 12,000,000 |\n"
                      "| sync | 4,000,000 | 3,000,000 | 2,000,000 |\n");
  EXPECT_CONTAINS(md, "| async | 500 ns | 111 ns | 83 ns |");                 // cost per call
  EXPECT_CONTAINS(md, "| async | 0.500 | 0.0010 | 0.000020 |");               // kernel entries per call
  EXPECT_CONTAINS(md, "| async ÷ sync | 0.50× | 3.00× | 6.00× |");
  EXPECT_CONTAINS(md, "| async ÷ ring | 0.40× | 0.45× | 0.50× |");
  EXPECT_CONTAINS(md, "| async ÷ uds-epoll | 40.0× | 22.5× | 20.0× |");
  EXPECT_CONTAINS(md, "- async vs sync: 32 in flight\n");
  EXPECT_CONTAINS(md, "| async ÷ sync, 64 in flight | 6.00× |");
  EXPECT_CONTAINS(md, "| idle CPU, async client + server | 0.020% of one core |");
  EXPECT_CONTAINS(md, "| IPC, 1 in flight: async ÷ sync | 0.77× (no fast path) / 0.29× (fast path) | 0.50× |");
  EXPECT_CONTAINS(md, "| IPC, 32 in flight: async ÷ sync | 4.7× (no fast path) / 1.8× (fast path) | 3.00× |");
  EXPECT_CONTAINS(md, "| IPC crossover: async at least as fast as sync from | 8 in flight (against the fast path) | 32 in flight |");
  EXPECT_CONTAINS(md, "| system calls (map+unmap): async at least as fast as sync from | between 16 and 32 in flight | "
                      "32 in flight (async-hybrid-affine-io_uring; workload mmap, 4096 bytes) |");
  EXPECT_CONTAINS(md, "| system calls, best async ÷ sync | 1.55× at 512 in flight | 1.50× at 32 in flight "
                      "(async-hybrid-affine-io_uring; workload mmap, 4096 bytes) |");
  // Per system call: caller entries 0.2 and 0.1 per op of 2 calls.
  EXPECT_CONTAINS(md, "| kernel entries per async system call | 0.025–0.144 (never 0) | 0.050–0.100 for async-hybrid-affine-io_uring "
                      "(the best async ÷ sync above), 0.050–0.100 over every async mode and in-flight count (the caller's own "
                      "kernel entries) |");
  EXPECT_CONTAINS(md, "| idle runtime | spins in a seL4_Yield loop; never sleeps | 0.020% of one core over 1.00 s, 3 kernel entries |");
  EXPECT_CONTAINS(md, "| async never slower than sync (crossover at 1) | not met: lowest async ÷ sync is 0.50× at 1 in flight |");
  EXPECT_CONTAINS(md, "## System calls: mmap, 4096 bytes\n\n4 scenarios. Rows: modes; columns: operations kept in flight. "
                      "One operation is 2 system calls.");
  EXPECT_CONTAINS(md, "### The caller's own kernel entries per operation");
  EXPECT_CONTAINS(md, "| async-hybrid-affine-io_uring ÷ sync | 0.80× | 1.50× |");
  EXPECT_CONTAINS(md, "2 lines were skipped:\n\n- `sample.jsonl:14`: not valid JSON: ");
  EXPECT_CONTAINS(md, "- `sample.jsonl:15`: missing field(s): p99_ns\n");
  EXPECT_EQ(md.find("pipe |"), std::string::npos);  // the only pipe lines were bad
  EXPECT_EQ(render_markdown(d), md);                  // deterministic
}

// The services of issue 6 next to ReL4's: the memory-allocation server (`alloc`) and the
// key-value server (`kv`, one table per connection count) in the reference comparison.
TEST(Report, ServicesInTheReferenceComparison) {
  const std::string facts = R"("cpus":[0,1],"cpu_model":"Test CPU","cores":2,"kernel":"Linux 6.1.0-test","build_type":"release","commit":"abc1234","timestamp":"2025-01-31T12:00:00Z")";
  auto line = [&](const std::string& scenario, const std::string& mode, const std::string& workload, int inflight,
                  double ops) {
    return "{\"scenario\":\"" + scenario + "\",\"mode\":\"" + mode + "\",\"workload\":\"" + workload +
           "\",\"inflight\":" + std::to_string(inflight) + ",\"msg_bytes\":4096,\"ops_per_s\":" + std::to_string(ops) +
           ",\"p50_ns\":1000.0,\"p99_ns\":2000.0,\"kernel_entries_per_op\":1.0,\"cpu_s\":0.1,\"ops\":100,\"wall_s\":1.0,\"note\":\"\"," + facts + "}\n";
  };
  std::string in;
  in += line("alloc", "sync", "map+unmap", 1, 100) + line("alloc", "async", "map+unmap", 1, 50);
  in += line("alloc", "sync", "map+unmap", 8, 100) + line("alloc", "async", "map+unmap", 8, 120);
  in += line("alloc", "sync", "map+unmap", 512, 100) + line("alloc", "async", "map+unmap", 512, 250);
  in += line("kv", "uipc", "get90/put10 connections=8", 8, 300) + line("kv", "uds-epoll", "get90/put10 connections=8", 8, 100);
  in += line("kv", "uipc", "get90/put10 connections=1", 8, 500) + line("kv", "uds-epoll", "get90/put10 connections=1", 8, 100);
  Dataset d;
  std::istringstream s(in);
  read_jsonl(s, "services", d);
  finish(d);
  ASSERT_EQ(d.records.size(), 10u);
  const std::string md = render_markdown(d);
  EXPECT_CONTAINS(md, "| memory-allocation server (`uipc bench alloc`): async at least as fast as sync from | "
                      "between 16 and 32 in flight | 8 in flight |");
  EXPECT_CONTAINS(md, "| memory-allocation server, best async ÷ sync | 1.55× at 512 in flight | 2.50× at 512 in flight |");
  EXPECT_CONTAINS(md, "| up to 2.9× at 8–16 connections | 5.00× at 1, 3.00× at 8 connections |");
}

TEST(Report, ThirtyTwoNotMeasuredShowsTheNeighbours) {
  Dataset d;
  std::ifstream in(kData / "sample.jsonl");
  std::string line, kept;
  for (std::getline(in, line); std::getline(in, line);)
    if (line.find("\"inflight\":32,") == std::string::npos) kept += line + "\n";
  std::istringstream s(kept);
  read_jsonl(s, "no32", d);
  finish(d);
  EXPECT_CONTAINS(render_markdown(d), "| IPC, 32 in flight: async ÷ sync | 4.7× (no fast path) / 1.8× (fast path) | "
                                      "32 in flight not measured (0.50× at 1, 6.00× at 64) |");
}

TEST(Report, Headline) {
  const Dataset d = load("sample.jsonl");
  const Headline h = headline(d, 64);
  EXPECT_EQ(h.msg_bytes, 64u);
  EXPECT_DOUBLE_EQ(*h.async_sync_1, 0.5);
  EXPECT_DOUBLE_EQ(*h.async_sync_hi, 6.0);
  EXPECT_DOUBLE_EQ(*h.async_ring_hi, 0.5);
  EXPECT_DOUBLE_EQ(*h.async_uds_epoll_hi, 20.0);
  EXPECT_DOUBLE_EQ(*h.async_kernel_hi, 0.00002);
  EXPECT_DOUBLE_EQ(*h.sync_kernel_hi, 2.5);
  EXPECT_NEAR(*h.idle_pct, 0.02, 1e-12);
  const std::string t = headline_text(h);
  EXPECT_CONTAINS(t, "Headline (64-byte messages, ");
  EXPECT_CONTAINS(t, "  async / sync, 1 in flight                  0.50x\n");
  EXPECT_CONTAINS(t, "  async / sync, 64 in flight                 6.00x\n");
  EXPECT_CONTAINS(t, "  async / ring, 64 in flight                 0.50x\n");
  EXPECT_CONTAINS(t, "  async / uds-epoll, 64 in flight            20.0x\n");
  EXPECT_CONTAINS(t, "  kernel entries per call, 64 in flight      async 0.000020, sync 2.500\n");
  EXPECT_CONTAINS(t, "  idle CPU, async client + server            0.020% of one core\n");
  // A baseline that completed nothing (possible in a sanitizer build's short runs): no ratio, and why.
  Dataset zero;
  std::ifstream in(kData / "sample.jsonl");
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"mode\":\"sync\",\"inflight\":64,") != std::string::npos) {
      auto j = nlohmann::json::parse(line);
      j["ops_per_s"] = 0.0;
      j["ops"] = 0;
      line = j.dump();
    }
    kept += line + "\n";
  }
  std::istringstream zs(kept);
  read_jsonl(zs, "zero", zero);
  finish(zero);
  const Headline hz = headline(zero, 64);
  EXPECT_FALSE(hz.async_sync_hi);
  EXPECT_CONTAINS(headline_text(hz), "  async / sync, 64 in flight                 n/a: sync completed no calls\n");
  EXPECT_CONTAINS(headline_text(hz), "  kernel entries per call, 64 in flight      async 0.000020, sync n/a (no calls completed)\n");
  EXPECT_CONTAINS(render_markdown(zero), "| async ÷ sync, 64 in flight | n/a: sync completed no calls |");

  const Headline none = headline(Dataset{}, 64);
  EXPECT_FALSE(none.any());
  EXPECT_CONTAINS(headline_text(none), "async / sync, 64 in flight                 not measured");
}

TEST(Report, HeadlineAndGoalsNameAFasterAsyncMode) {
  // The sample plus an async-batch line at 64 in flight, faster than plain async (12 M/s): the
  // sync, ring and uds-epoll rows add its ratio and name it; the ring goal says whether it meets 0.5.
  Dataset d;
  std::ifstream in(kData / "sample.jsonl");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string async64 = "{\"scenario\":\"ipc\",\"mode\":\"async\",\"inflight\":64,";
  const auto at = text.find(async64);
  ASSERT_NE(at, std::string::npos);
  std::string line = text.substr(at, text.find('\n', at) - at);
  auto j = nlohmann::json::parse(line);
  j["mode"] = "async-batch";
  j["ops_per_s"] = 14'400'000.0;
  std::istringstream ss(text + j.dump() + "\n");
  read_jsonl(ss, "batch", d);
  finish(d);
  const Headline h = headline(d, 64);
  ASSERT_TRUE(h.best_ring_hi);
  EXPECT_EQ(h.best_ring_hi->second, "async-batch");
  ASSERT_TRUE(h.best_sync_hi);  // the sync row names it too
  EXPECT_EQ(h.best_sync_hi->second, "async-batch");
  EXPECT_FALSE(h.best_sync_1 && h.best_sync_1->second != "async");  // nothing but async at 1
  EXPECT_DOUBLE_EQ(h.best_ring_hi->first, 0.6);
  const std::string t = headline_text(h);
  EXPECT_CONTAINS(t, "  async / ring, 64 in flight                 0.50x, best 0.60x (async-batch)\n");
  EXPECT_CONTAINS(t, "  async / uds-epoll, 64 in flight            20.0x, best 24.0x (async-batch)\n");
  EXPECT_CONTAINS(render_markdown(d), "best async mode async-batch: 0.60× (met)");
  // Without the faster line, nothing is added.
  EXPECT_EQ(headline_text(headline(load("sample.jsonl"), 64)).find("best"), std::string::npos);
}

TEST(Report, PlotDataAndScript) {
  const Dataset d = load("sample.jsonl");
  const PlotData pd = plot_specs(d);
  ASSERT_EQ(pd.plots.size(), 5u);
  EXPECT_EQ(pd.plots[0].stem, "cost-ipc-64B");
  EXPECT_EQ(pd.plots[1].stem, "throughput-ipc-64B");
  EXPECT_EQ(pd.plots[2].stem, "cost-sys-mmap-4096B");
  EXPECT_EQ(pd.plots[3].stem, "rel4-ipc");
  EXPECT_EQ(pd.plots[4].stem, "rel4-sys");
  // ReL4's published ratios next to this data's, on the same axes (async ÷ sync vs in flight).
  ASSERT_TRUE(pd.files.count("data/rel4-ipc-uipc.dat"));
  EXPECT_CONTAINS(pd.files.at("data/rel4-ipc-uipc.dat"), "\n1 0.5 async\n32 3 async\n64 6 async\n");
  EXPECT_CONTAINS(pd.files.at("data/rel4-ipc-reference.dat"), "\n1 0.77 0.29\n32 4.7 1.8\n");
  EXPECT_CONTAINS(pd.files.at("data/rel4-sys-uipc.dat"), "\n32 1.5 async-hybrid-affine-io_uring\n");
  EXPECT_CONTAINS(pd.files.at("data/rel4-sys-reference.dat"), "\n512 1.55\n");
  EXPECT_CONTAINS(pd.script, "\"data/rel4-ipc-reference.dat\" using 1:3 with points");
  ASSERT_TRUE(pd.files.count("data/ipc-64B-async.dat"));
  EXPECT_CONTAINS(pd.files.at("data/ipc-64B-async.dat"), "\n64 12000000 83.3333333 2e-05 NaN 1000 2000\n");
  // sys: per system call (calls_per_op 2): 1e9/750000/2 ns, 2.5/2 entries, caller 0.1/2.
  EXPECT_CONTAINS(pd.files.at("data/sys-mmap-4096B-async-hybrid-affine-io_uring.dat"), "\n32 750000 666.666667 1.25 0.05 3000 9000\n");
  EXPECT_CONTAINS(pd.script, "set terminal @png_terminal\nset output \"cost-ipc-64B.png\"\n");
  EXPECT_CONTAINS(pd.script, "set output \"cost-ipc-64B.svg\"\nreplot\n");
  EXPECT_CONTAINS(pd.script, "\"data/ipc-64B-sync.dat\" using 1:4 axes x1y2");
  EXPECT_CONTAINS(pd.script, "set logscale x 2\n");
  // Cost axis of the IPC plot: 83..500 ns, widened by 1.25 each way, labelled 1-2-5.
  EXPECT_CONTAINS(pd.script, "set ytics (\"100 ns\" 100, \"200 ns\" 200, \"500 ns\" 500)\n");
  EXPECT_CONTAINS(pd.script, "pngcairo");
  EXPECT_TRUE(plot_specs(Dataset{}).plots.empty());
}

TEST(Report, OnlyBadLinesGiveAnEmptyReportWithoutError) {
  const Dataset d = load("all_bad.jsonl");
  EXPECT_EQ(d.lines, 4u);
  EXPECT_EQ(d.bad.size(), 4u);
  EXPECT_TRUE(d.records.empty());
  const std::string md = render_markdown(d);
  EXPECT_CONTAINS(md, "4 lines read, 0 used, 4 skipped");
  EXPECT_CONTAINS(md, "No valid result lines in the input: there is nothing to tabulate.");
  EXPECT_CONTAINS(md, "4 lines were skipped:");
  EXPECT_CONTAINS(md, "- `all_bad.jsonl:4`: missing field(s): ");
  EXPECT_EQ(md.find("## Machine"), std::string::npos);
  EXPECT_EQ(md.find("Plots"), std::string::npos);

  TempDir dir;
  WriteOptions wo;
  const WriteResult w = write_report(d, dir.path.string(), wo);  // no plots to draw: gnuplot never runs
  EXPECT_TRUE(w.plot_files.empty());
  EXPECT_TRUE(w.plots_note.empty());
  EXPECT_EQ(slurp(w.report_md), md);
  EXPECT_FALSE(fs::exists(dir.path / "plots.gp"));
}

TEST(Report, WithoutGnuplotTheReportSaysSo) {
  const Dataset d = load("sample.jsonl");
  TempDir dir;
  WriteOptions wo;
  wo.gnuplot = "/nonexistent/gnuplot";
  const WriteResult w = write_report(d, dir.path.string(), wo);
  EXPECT_TRUE(w.plot_files.empty());
  EXPECT_CONTAINS(w.plots_note, "/nonexistent/gnuplot was not found");
  const std::string md = slurp(w.report_md);
  EXPECT_CONTAINS(md, "> **Plots:** not drawn: /nonexistent/gnuplot was not found");
  EXPECT_CONTAINS(md, "*Plot not drawn: IPC cost per call vs calls in flight");
  EXPECT_CONTAINS(md, "| async ÷ sync | 0.50× | 3.00× | 6.00× |");
  EXPECT_TRUE(fs::exists(dir.path / "plots.gp"));
  EXPECT_TRUE(fs::exists(dir.path / "data" / "ipc-64B-async.dat"));

  wo.plots = false;
  const WriteResult off = write_report(d, dir.path.string(), wo);
  EXPECT_CONTAINS(off.plots_note, "plots were turned off");

  // Rewriting the directory with no valid lines leaves nothing of the earlier report behind.
  const WriteResult empty = write_report(load("all_bad.jsonl"), dir.path.string(), wo);
  EXPECT_FALSE(fs::exists(dir.path / "plots.gp"));
  EXPECT_FALSE(fs::exists(dir.path / "data" / "ipc-64B-async.dat"));
  EXPECT_CONTAINS(slurp(empty.report_md), "No valid result lines");
}

TEST(Report, WithGnuplotDrawsPngAndSvg) {
  if (find_program("gnuplot").empty()) GTEST_SKIP() << "gnuplot is not installed";
  const Dataset d = load("sample.jsonl");
  TempDir dir;
  const WriteResult w = write_report(d, dir.path.string());
  EXPECT_TRUE(w.plots_note.empty()) << w.plots_note << "\n" << slurp(dir.path / "gnuplot.log");
  EXPECT_EQ(w.plot_files.size(), 10u);  // cost and throughput (IPC), cost (sys), the two ReL4 figures
  for (const auto& f : w.plot_files) EXPECT_GT(fs::file_size(f), 1000u) << f;
  std::ifstream png(dir.path / "cost-ipc-64B.png", std::ios::binary);
  char magic[4] = {};
  png.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  const std::string md = slurp(w.report_md);
  EXPECT_CONTAINS(md, "![IPC cost per call vs calls in flight, async vs sync (IPC, 64-byte messages)](cost-ipc-64B.png)");
  EXPECT_EQ(md.find("Plot not drawn"), std::string::npos);
}

// ---- the evaluation scenarios (tests/data/report/eval.jsonl) -------------------------------------

TEST(Report, EvaluationLinesKeepTheirOwnFieldsAndKeys) {
  const Dataset d = load("eval.jsonl");
  // 18 lines: a negative receiver CPU, a line cut off by a killed sweep, zero callers.
  ASSERT_EQ(d.bad.size(), 3u);
  EXPECT_EQ(d.bad[0].where, "eval.jsonl:7");
  EXPECT_EQ(d.bad[0].reason, "field 'receiver_cpu_per_s' is negative, not a non-negative number");
  EXPECT_EQ(d.bad[1].where, "eval.jsonl:13");
  EXPECT_EQ(d.bad[1].reason.rfind("not valid JSON: ", 0), 0u) << d.bad[1].reason;
  EXPECT_EQ(d.bad[2].where, "eval.jsonl:18");
  EXPECT_EQ(d.bad[2].reason, "field 'callers' is 0, not a positive integer");
  // fixed-64 at 1 and at 64 channels have the same mode and in-flight count: `channels` keeps them
  // apart, as `callers` keeps the two shared lines apart.
  EXPECT_EQ(d.records.size(), 15u);
  EXPECT_EQ(d.superseded, 0u);
  EXPECT_EQ(eval_records(d, "channels").size(), 5u);
  const auto pl = eval_records(d, "placement");
  ASSERT_EQ(pl.size(), 4u);  // ordered by callers, then affine, shared, local
  EXPECT_EQ(pl[0]->mode, "affine");
  EXPECT_EQ(pl[1]->mode, "shared");
  EXPECT_EQ(pl[2]->mode, "local");
  EXPECT_EQ(pl[3]->mode, "shared");
  EXPECT_EQ(pl[3]->extra.at("callers"), 2);
  EXPECT_DOUBLE_EQ(pl[1]->extra.at("answered_by_caller"), 0.908);
  EXPECT_TRUE(groups(d).empty());  // no generic in-flight tables for them

  auto reason = [](std::string_view line) {
    auto r = parse_line(line);
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : std::string("accepted");
  };
  std::ifstream in(kData / "eval.jsonl");
  std::string good;
  std::getline(in, good);  // a wakeup line
  auto with = [&](const std::string& field) { return good.substr(0, good.size() - 1) + "," + field + "}"; };
  EXPECT_EQ(reason(good), "accepted");
  EXPECT_EQ(reason(with("\"answered_by_caller\":1.5")), "field 'answered_by_caller' is above 1 (it is a share)");
  EXPECT_EQ(reason(with("\"channels\":\"many\"")), "field 'channels' is string, not a positive integer");
  EXPECT_EQ(reason(with("\"channels\":2.5")), "field 'channels' is number, not a positive integer");
}

TEST(Report, EvaluationSectionsTables) {
  const Dataset d = load("eval.jsonl");
  const std::string md = render_markdown(d);
  // Every number below comes from tests/data/report/eval.jsonl.
  EXPECT_CONTAINS(md, "## Wake-up: interrupt, polling or tick (note §3.4)\n\n6 scenarios");
  EXPECT_CONTAINS(md, "one call every 1.00 ms on average");
  EXPECT_CONTAINS(md, "| mode | idle: p50 | idle: p99 | busy: p50 | busy: p99 | busy: calls/s |\n|---|---:|---:|---:|---:|---:|\n"
                      "| sys-tick-1ms | 500.00 µs | 1.00 ms | 1.00 ms | 2.00 ms | 1,000 |\n"
                      "| sys-irq | 6.00 µs | 20.00 µs | 4.00 µs | 5.00 µs | 250,000 |\n");
  EXPECT_CONTAINS(md, "| sys-tick-1ms | 0.015 | 0.016 | 0.020 | 6.000 | 4.500 |\n| sys-irq | 0.000 | 0.020 | 0.250 | 4.000 | 3.000 |\n");
  EXPECT_CONTAINS(md, "## Channels on one server: are 64 vectors enough? (note §3.2)\n\n5 scenarios");
  // The calls per caller: absent in the older lines ("-"); a starved caller shows only there.
  EXPECT_CONTAINS(md, "### Mode every\n\n| channels | in flight | calls/s | p50 | p99 | kernel entries per call | CPU (s/s) | "
                      "calls per caller: least / median |\n"
                      "|---|---:|---:|---:|---:|---:|---:|---:|\n| 1 | 1 | 1,000,000 | 200 ns | 300 ns | 0.0010 | 1.00 | - |\n"
                      "| 64 | 64 | 2,000,000 | 6.00 µs | 20.00 µs | 0.00050 | 1.00 | 15000 / 15600 |\n"
                      "| 4096 | 4096 | 500,000 | 30.00 µs | 60.00 µs | 0.00030 | 1.00 | 0 / 0 |\n");
  EXPECT_CONTAINS(md, "From 64 to 4096 channels, throughput changes by 0.25×.");
  EXPECT_CONTAINS(md, "### Mode fixed-64\n\n| channels | in flight | calls/s | p50 | p99 | kernel entries per call | CPU (s/s) | "
                      "calls per caller: least / median |\n"
                      "|---|---:|---:|---:|---:|---:|---:|---:|\n| 1 | 64 | 3,000,000 | 4.00 µs | 9.00 µs | 0.00010 | 1.00 | - |\n");
  EXPECT_CONTAINS(md, "## Placement: which core answers a system call (note §3.2)\n\n4 scenarios");
  EXPECT_CONTAINS(md, "### Throughput (calls per second, all callers)\n\n| placement, callers | 1 |\n|---|---:|\n"
                      "| affine, 1 caller | 800,000 |\n| shared, 1 caller | 900,000 |\n| local, 1 caller | 1,700,000 |\n"
                      "| shared, 2 callers | 3,400,000 |\n");
  EXPECT_CONTAINS(md, "| affine, 1 caller | 0.0% |\n| shared, 1 caller | 90.8% |\n| local, 1 caller | 100.0% |\n| shared, 2 callers | 99.2% |\n");
  EXPECT_CONTAINS(md, "- `eval.jsonl:13`: not valid JSON: ");
  EXPECT_EQ(md.find("## Scenario "), std::string::npos);
  EXPECT_EQ(render_markdown(d), md);

  const std::string t = eval_summary_text(d);
  EXPECT_CONTAINS(t, "wake-up p50, receiver asleep               sys-tick-1ms 500.00 us, sys-irq 6.00 us\n");
  EXPECT_CONTAINS(t, "receiver CPU-s/s with no calls             sys-tick-1ms 0.015, sys-irq 0.000\n");
  EXPECT_CONTAINS(t, "channels (every): 64 -> 4096               2,000,000 -> 500,000 calls/s (3000 callers never served)\n");
  EXPECT_CONTAINS(t, "placement, 2 callers, 1 in flight          shared 3,400,000 calls/s\n");
  EXPECT_TRUE(eval_summary_text(load("sample.jsonl")).empty());
}

TEST(Report, EvaluationPlots) {
  const Dataset d = load("eval.jsonl");
  const PlotData pd = plot_specs(d);
  std::vector<std::string> stems;
  for (const auto& p : pd.plots) stems.push_back(p.stem);
  EXPECT_EQ(stems, (std::vector<std::string>{"wakeup-latency", "wakeup-cpu", "channels-throughput", "placement-throughput"}));
  ASSERT_TRUE(pd.files.count("data/wakeup.dat"));
  EXPECT_CONTAINS(pd.files.at("data/wakeup.dat"), "\n0 sys-tick-1ms 500000 1000000 1000000 2000000 0.015 0.016 0.02\n"
                                                  "1 sys-irq 6000 20000 4000 5000 0 0.02 0.25\n");
  EXPECT_CONTAINS(pd.files.at("data/channels-every.dat"), "\n1 1 1000000 200 300 0.001\n64 64 2000000 6000 20000 0.0005\n");
  EXPECT_CONTAINS(pd.files.at("data/placement-shared-2callers.dat"), "\n1 3400000 230 0.992\n");
  EXPECT_CONTAINS(pd.script, "set arrow 1 from 64, graph 0 to 64, graph 1 nohead");
  EXPECT_CONTAINS(pd.script, "\"data/wakeup.dat\" using 7:xtic(2) title \"quiet (no calls)\"");
  EXPECT_EQ(pd.plots[0].group, "wakeup");
}

TEST(Report, ChannelAxisLabelsDoNotOverprint) {
  // 65 sits next to 64 on a log₂ axis: it is plotted but gets no label of its own.
  EXPECT_EQ(log2_xtics({1, 64, 65, 256}), "set xtics (\"1\" 1, \"64\" 64, \"256\" 256)\nset xrange [0.666666667:384]\n");
}

TEST(Report, EvaluationPlotsDrawnWithGnuplot) {
  if (find_program("gnuplot").empty()) GTEST_SKIP() << "gnuplot is not installed";
  TempDir dir;
  const WriteResult w = write_report(load("eval.jsonl"), dir.path.string());
  EXPECT_TRUE(w.plots_note.empty()) << w.plots_note << "\n" << slurp(dir.path / "gnuplot.log");
  EXPECT_EQ(w.plot_files.size(), 8u);
  const std::string md = slurp(w.report_md);
  EXPECT_CONTAINS(md, "](wakeup-latency.png)");
  EXPECT_CONTAINS(md, "](placement-throughput.png)");
  EXPECT_EQ(md.find("Plot not drawn"), std::string::npos);
}

}  // namespace
}  // namespace uipc::bench::report
