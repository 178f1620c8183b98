// bench/report.hpp — `uipc report`: benchmark JSON lines → a Markdown report with tables, ratios,
// the comparison with ReL4's published figures (DESIGN §6) and gnuplot plots.  See docs/report.md.
//
// The logic is split so that it can be tested without files or gnuplot:
//   parse_line / read_jsonl / finish   JSON Lines → Dataset (bad lines counted, never fatal)
//   render_markdown, headline          Dataset → text (every number comes from the Dataset)
//   plot_specs, gnuplot_script         Dataset → plot data files and a gnuplot script (text)
//   write_report                       the I/O: writes the files and runs gnuplot
//
// Input schema: the lines `uipc bench ipc --json` writes (docs/bench.md).  Required in every
// line: scenario, mode, inflight, msg_bytes, ops_per_s, p50_ns, p99_ns, kernel_entries_per_op,
// cpu_s, ops, wall_s, note, cpu_model, cores, kernel, build_type, commit, timestamp.  Optional:
// kernel_entries, cpus, workload, caller_cpu_ns_per_op, caller_kernel_entries_per_op, calls_per_op
// (the async-syscall benchmark, scenario "sys").  The IPC idle measurement is scenario "ipc", mode
// "async-idle".  Other scenarios are tabulated generically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace CLI {
class App;
}

namespace uipc::bench::report {

// One valid result line.
struct Record {
  std::string scenario, mode, workload;  // workload: optional field, "" when absent
  std::uint64_t inflight = 0, msg_bytes = 0, ops = 0;
  double ops_per_s = 0, p50_ns = 0, p99_ns = 0, kernel_entries_per_op = 0, cpu_s = 0, wall_s = 0;
  std::optional<std::uint64_t> kernel_entries;
  std::optional<double> caller_cpu_ns_per_op, caller_kernel_entries_per_op;
  std::uint64_t calls_per_op = 1;  // optional field: system calls per op (mmap + munmap: 2)
  std::vector<int> cpus;
  // Every other numeric field of the line (the evaluation benchmarks' own: channels, callers,
  // receiver_cpu_per_s, gap_ns, answered_by_caller ...), by name.
  std::map<std::string, double> extra;
  std::string note, cpu_model, kernel, build_type, commit, timestamp;
  std::uint64_t cores = 0;
  std::string source;  // "file:line"

  bool is_idle() const { return scenario == "ipc" && mode == "async-idle"; }
  // Cost of one operation in ns (1e9 / ops_per_s); 0 when nothing completed.
  double cost_ns() const { return ops_per_s > 0 ? 1e9 / ops_per_s : 0; }
};

struct BadLine {
  std::string where;   // "file:line"
  std::string reason;  // one line
};

struct Dataset {
  std::vector<Record> records;       // valid lines; after finish(): one per scenario key
  std::vector<BadLine> bad;          // skipped lines, in input order
  std::vector<std::string> inputs;   // file names, in the order read
  std::size_t lines = 0;             // non-blank lines read
  std::size_t superseded = 0;        // valid lines replaced by a later one with the same key
  std::size_t other_rounds = 0;      // lines of a scenario's latest series of rounds, other than its median round
};

// Parses one JSON line: the record, or why it was rejected (one line of text).
std::variant<Record, std::string> parse_line(std::string_view line);

// Reads JSON Lines from `in` (named `name` in messages) into `d`.  Blank lines are ignored; a bad
// line is recorded in d.bad and passed to `warn` (if set) as soon as it is found.
void read_jsonl(std::istream& in, const std::string& name, Dataset& d,
                const std::function<void(const BadLine&)>& warn = {});

// Keeps one record per (scenario, workload, msg_bytes, mode, inflight): the one with the latest
// timestamp, the later input line on a tie.  When that line is round R of a series of rounds (its
// `round` field, as `uipc bench ipc --rounds` and `uipc demo` write it), the lines of rounds
// R-1 .. 1 just before it (same key) belong with it: the series' median round by ops_per_s (the
// lower one of an even count) is kept, with extra["rounds"] = the series' length, and the other
// rounds are counted in d.other_rounds.  Every other line is counted in d.superseded.
void finish(Dataset& d);

// ---- tables -----------------------------------------------------------------------------------

// Formatting shared by the report, `uipc bench all` and `uipc demo`.
std::string fmt_rate(double ops_per_s);      // 1234567.8 -> "1,234,568"
std::string fmt_ns(double ns);               // 1234 -> "1.23 µs"; <= 0 -> "-"
std::string fmt_ratio(double r);             // 1.234 -> "1.23×"
std::string fmt_kernel(double per_op);       // 0 -> "0", 0.0123 -> "0.012", 2 -> "2.000"
std::string fmt_pct(double pct);             // 0.0213 -> "0.021%"

// Modes in report order: async, async-*, sync, ring, uds, uds-epoll, pipe, uring, then by name.
bool mode_before(const std::string& a, const std::string& b);

// The records of one table: a scenario (+ workload) at one message size.
struct Group {
  std::string scenario, workload;
  std::uint64_t msg_bytes = 0;
  std::vector<std::string> modes;        // report order
  std::vector<std::uint64_t> inflights;  // ascending
  std::map<std::pair<std::string, std::uint64_t>, const Record*> at;  // (mode, inflight)
  const Record* find(const std::string& mode, std::uint64_t inflight) const;
  std::string title() const;             // "IPC, 64-byte messages", "sys (mmap+munmap), 4096 bytes"
  std::string slug() const;              // "ipc-64B", "sys-mmap-munmap-4096B"
};
std::vector<Group> groups(const Dataset& d);  // idle and evaluation lines excluded; ipc first, then sys, then others

// The evaluation scenarios (`uipc bench wakeup`, `bench channels`, `bench placement`;
// docs/answers.md) get sections and plots of their own instead of the in-flight tables.
bool is_eval_scenario(const std::string& scenario);

// The records of one evaluation scenario, in the order its tables show them.
std::vector<const Record*> eval_records(const Dataset& d, const std::string& scenario);

// A few plain-text lines for a terminal (`uipc demo`): wake-up latency and receiver CPU per mode,
// throughput at 64 channels and at the most, throughput per placement.  "" without such lines.
std::string eval_summary_text(const Dataset& d);

// async ops/s over base ops/s at one in-flight count, when both ran and base > 0.
std::optional<double> ratio(const Group& g, const std::string& async_mode, const std::string& base, std::uint64_t inflight);

// The best ratio() over `base` among the async modes (async, async-inline, async-batch, ...)
// at one in-flight count, with the mode that reached it.
std::optional<std::pair<double, std::string>> best_async_ratio(const Group& g, const std::string& base,
                                                               std::uint64_t inflight);

// Why ratio() has no value: "not measured" (a line is missing) or "n/a: BASE completed no calls".
std::string ratio_missing(const Group& g, const std::string& async_mode, const std::string& base, std::uint64_t inflight);

// The smallest measured in-flight count n such that `async_mode` reaches at least `base`'s ops/s
// at n and at every larger count where both ran; nullopt when it does not at the largest.
std::optional<std::uint64_t> crossover(const Group& g, const std::string& async_mode, const std::string& base);

// The headline of a run (IPC group with the smallest message size; `hi` in flight).
struct Headline {
  std::uint64_t msg_bytes = 0, hi = 64;
  std::optional<double> async_sync_1, async_sync_hi, async_ring_hi, async_uds_epoll_hi;
  // What to show instead of a ratio without a value (see ratio_missing).
  std::string why_sync_1 = "not measured", why_sync_hi = "not measured", why_ring_hi = "not measured",
              why_uds_epoll_hi = "not measured", why_async_kernel_hi = "not measured", why_sync_kernel_hi = "not measured";
  std::optional<double> async_kernel_hi, sync_kernel_hi;
  // The fastest of the async modes (async, async-inline, async-batch, ...) and which it was.
  std::optional<std::pair<double, std::string>> best_sync_1, best_sync_hi, best_ring_hi, best_uds_epoll_hi;
  std::optional<double> idle_pct;  // % of one core
  unsigned rounds = 1;  // the most rounds any of the group's scenarios was measured in (Dataset: finish)
  // The median of the group's line_rtt_ns fields (the cache-line round trip between the client's
  // and the server's CPUs before each scenario): which state the machine was in.
  std::optional<double> line_rtt_ns;
  // For each ratio above, the line round trips of its two scenarios (async's, then the other's):
  // the state each was measured in. `changed`: the lines taken around the two (line_rtt_ns and
  // line_rtt_after_ns of both) differ by more than 1.5×, so the ratio compares two machine states.
  // Empty when either scenario has no line_rtt_ns.
  struct Lines {
    double async_ns = 0, other_ns = 0;
    bool changed = false;
  };
  std::optional<Lines> lines_sync_1, lines_sync_hi, lines_ring_hi, lines_uds_epoll_hi;
  bool any() const;
};
Headline headline(const Dataset& d, std::uint64_t hi = 64);
// "395 ns / 392 ns", with ", the machine changed between them" when it did.
std::string fmt_lines(const Headline::Lines& l);
std::string headline_text(const Headline& h);  // a small plain-text table for a terminal

// A plot the report refers to: files <stem>.png and <stem>.svg in the report directory.
struct Plot {
  std::string stem, title, caption;
  std::string group;  // Group::slug() of the tables it belongs under
  bool made = false;  // set by write_report when gnuplot produced both files
};

struct RenderOptions {
  std::vector<Plot> plots;       // in order; those with made == false are listed as missing
  std::string plots_note;        // why there are no plots (empty when gnuplot ran)
};

// The whole report.md.  Deterministic: the same Dataset and options give the same text.
std::string render_markdown(const Dataset& d, const RenderOptions& opt = {});

// ---- plots ------------------------------------------------------------------------------------

struct PlotData {
  std::vector<Plot> plots;                        // what the script draws
  std::map<std::string, std::string> files;       // relative path -> contents ("data/ipc-64B-async.dat")
  std::string script;                             // gnuplot script; run in the report directory
};
PlotData plot_specs(const Dataset& d);

// ---- I/O --------------------------------------------------------------------------------------

struct WriteOptions {
  bool plots = true;            // false: never run gnuplot (the report says plots were turned off)
  std::string gnuplot = "gnuplot";  // looked up on PATH unless it contains '/'
};
struct WriteResult {
  std::string report_md;        // path of report.md
  std::vector<std::string> plot_files;  // png and svg files written
  std::string plots_note;       // why plots are missing, or ""
};
// Creates `dir` (and parents), writes data files, the gnuplot script (plots.gp) and its log
// (gnuplot.log), runs gnuplot, then writes report.md.  Throws std::runtime_error on an I/O error.
WriteResult write_report(const Dataset& d, const std::string& dir, const WriteOptions& opt = {});

// Reads files into a finished Dataset, printing one warning line per bad line to stderr
// ("uipc report: FILE:LINE: skipped: REASON").  Throws std::runtime_error if a file cannot be read.
Dataset load_files(const std::vector<std::string>& files, const char* who = "uipc report");

// Adds the `report` subcommand to the top-level app.
void add_report_command(CLI::App& app);

}  // namespace uipc::bench::report
