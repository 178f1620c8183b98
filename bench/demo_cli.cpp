// bench/demo_cli.cpp — `uipc demo`: the evaluation in small.  A reduced IPC sweep (async,
// async-inline, async-batch, sync, ring, uds-epoll, pipe; 64-byte messages; 0.2 s per scenario;
// 3 rounds in turn, each scenario reported by its median round) into DIR/demo.jsonl (a fresh file
// each time), the idle measurement, the evaluation in small (wake-up modes, channels, placement;
// docs/answers.md), the report and plots in DIR/report, and a table of headline ratios, in about
// 40 seconds on two cores.  See docs/report.md.
#include "demo_cli.hpp"

#include "cli_common.hpp"
#include "eval_common.hpp"
#include "harness.hpp"
#include "ipc_cli.hpp"
#include "report.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace uipc::bench {
namespace {

namespace fs = std::filesystem;

const char* const kModes[] = {"async", "async-inline", "async-batch", "sync", "ring", "uds-epoll", "pipe"};
constexpr std::size_t kBytes = 64;
constexpr unsigned kHeadlineInflight = 64;

constexpr unsigned kDefaultRounds = 3, kMaxRounds = 20;

struct Options {
  std::string out = "results";
  bool quick = false;
  bool no_plots = false;
  bool no_eval = false;
  unsigned rounds = kDefaultRounds;
  CLI::Option* rounds_opt = nullptr;  // not given: kDefaultRounds, or 1 with --quick
};

struct Step {
  std::string mode;  // "async-idle" for the idle measurement
  unsigned inflight = 0;
  unsigned round = 1;
};

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One line that redraws itself on a terminal, or one plain line per finished step otherwise.
class Progress {
 public:
  Progress(std::size_t total, double seconds_each, unsigned rounds)
      : total_(total), each_(seconds_each), rounds_(rounds), tty_(isatty(STDOUT_FILENO) == 1) {}

  void start(std::size_t i, const Step& s) {
    if (!tty_) return;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * i / total_);
    const double left = static_cast<double>(total_ - i) * each_;
    std::printf("\r\033[K[%s%s] %2zu/%zu  %s%s  (about %.0f s left)", std::string(filled, '#').c_str(),
                std::string(kWidth - filled, '.').c_str(), i, total_, s.mode.c_str(),
                s.mode == "async-idle" ? ": idle measurement" : (", " + std::to_string(s.inflight) + " in flight" + round_text(s)).c_str(),
                left + 0.5);
    std::fflush(stdout);
  }

  void done(std::size_t i, const Step& s, const IpcResult& r) {
    if (tty_) return;
    if (s.mode == "async-idle")
      std::printf("[%2zu/%zu] idle: async client + server, %.2f s: %s of one core, %llu kernel %s\n", i + 1, total_, r.wall_s,
                  report::fmt_pct(r.wall_s > 0 ? 100.0 * r.cpu_s / r.wall_s : 0).c_str(),
                  static_cast<unsigned long long>(r.kernel_entries), r.kernel_entries == 1 ? "entry" : "entries");
    else
      std::printf("[%2zu/%zu] %-9s %4u in flight %13s calls/s  p50 %-10s kernel entries/call %s%s\n", i + 1, total_, s.mode.c_str(),
                  s.inflight, report::fmt_rate(r.ops_per_s()).c_str(), report::fmt_ns(r.p50_ns).c_str(),
                  report::fmt_kernel(r.kernel_entries_per_op()).c_str(), round_text(s).c_str());
    std::fflush(stdout);
  }

  void finish() {
    if (tty_) std::printf("\r\033[K");
  }

 private:
  std::string round_text(const Step& s) const { return rounds_ > 1 ? ", " + round_label(s.round, rounds_) : std::string(); }
  std::size_t total_;
  double each_;
  unsigned rounds_;
  bool tty_;
};

void run(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const double seconds = o.quick ? 0.05 : 0.2;
  const double idle_seconds = o.quick ? 0.25 : 1.0;
  // 32 is in the normal sweep so the reference comparison (ReL4 at concurrency 32) has a measured point.
  const std::vector<unsigned> inflights = o.quick ? std::vector<unsigned>{1, 16, 64} : std::vector<unsigned>{1, 4, 16, 32, 64, 256};
  // Each in-flight count's modes run `rounds` times in turn (as `uipc bench ipc --rounds`), and
  // the report takes each scenario's median round: this VM's speed can change within seconds, and
  // one change during a one-pass sweep would decide the ratios of the modes it fell between.
  const unsigned rounds = o.rounds_opt->count() ? o.rounds : o.quick ? 1 : kDefaultRounds;
  cli::check_rounds(rounds, kMaxRounds);

  std::vector<std::string> modes, missing;
  for (const char* m : kModes) (ipc_modes().count(m) ? modes : missing).push_back(m);
  if (modes.empty()) throw std::runtime_error("none of the demo's IPC modes is built into this uipc");

  const fs::path dir(o.out);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw CLI::ValidationError("--out: cannot create '" + o.out + "': " + ec.message(), 2);
  const fs::path jsonl = dir / "demo.jsonl";
  const fs::path report_dir = dir / "report";
  const bool overwrote = fs::exists(jsonl, ec);
  std::ofstream json(jsonl, std::ios::trunc | std::ios::binary);
  if (!json) throw CLI::ValidationError("--out: cannot write '" + jsonl.string() + "': " + std::strerror(errno), 2);

  const Facts facts = machine_facts();
  const std::vector<int> cpus = default_ipc_cpus();
  std::vector<Step> steps;
  for (auto n : inflights)
    for (unsigned round = 1; round <= rounds; ++round)
      for (const auto& m : modes) steps.push_back({m, n, round});
  if (std::find(modes.begin(), modes.end(), "async") != modes.end()) steps.push_back({"async-idle", 0});
  const double each = seconds * 1.1 + 0.04;
  const double estimate = static_cast<double>(steps.size() - 1) * each + idle_seconds + 1.0;

  std::printf("uipc demo: a quick evaluation of uipc's asynchronous IPC against a blocking call, a raw shared-memory ring\n"
              "and kernel peers, then a report with plots (about %.0f s)\n",
              estimate + 0.5);
  std::printf("machine: %s, %u CPUs, %s, %s build, commit %s\n", facts.cpu_model.c_str(), facts.cores, facts.kernel.c_str(),
              facts.build_type.c_str(), facts.commit.c_str());
  if (cpus.size() >= 2)
    std::printf("threads: client on CPU %d, server on CPU %d\n", cpus[0], cpus[1]);
  else
    std::printf("threads: unpinned; this process may run on fewer than 2 CPUs, so client and server share one and the\n"
                "         busy-polling modes (ring, async while it spins) will crawl: the ratios will not be representative\n");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  std::printf("note: a sanitizer build; it checks the code, but its timings are not representative\n");
#endif
  if (facts.build_type != "release") std::printf("note: a %s build; take numbers from a release build\n", facts.build_type.c_str());
  if (!missing.empty()) {
    std::string m;
    for (const auto& s : missing) m += (m.empty() ? "" : ", ") + s;
    std::printf("note: modes not built into this uipc, left out: %s\n", m.c_str());
  }
  std::string counts;
  for (auto n : inflights) counts += (counts.empty() ? "" : ",") + std::to_string(n);
  std::printf("IPC sweep: %zu modes x in flight %s%s, %zu-byte messages, %.2f s each, then %.2f s idle -> %s%s\n\n", modes.size(),
              counts.c_str(), rounds > 1 ? (" x " + std::to_string(rounds) + " rounds (each scenario's median round is reported)").c_str() : "",
              kBytes, seconds, idle_seconds, jsonl.c_str(), overwrote ? " (the previous file is overwritten)" : "");
  std::fflush(stdout);

  Progress progress(steps.size(), each, rounds);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    progress.start(i, s);
    IpcParams p;
    p.inflight = s.inflight;
    p.msg_bytes = s.mode == "async-idle" ? 8 : kBytes;
    p.seconds = s.mode == "async-idle" ? idle_seconds : seconds;
    p.cpus = cpus;
    const double line_ns = s.mode == "async-idle" ? 0 : line_rtt_ns(p);
    IpcResult r = s.mode == "async-idle" ? run_async_idle(p) : ipc_modes().at(s.mode)(p);
    const unsigned of = s.mode == "async-idle" ? 1 : rounds;  // the idle line is measured once
    mark_round(r, s.round, of);
    json << ipc_json_line(s.mode, p, r, facts, line_ns).dump() << '\n';
    json.flush();
    if (!json) throw std::runtime_error("write to '" + jsonl.string() + "' failed");
    progress.done(i, s, r);
  }
  progress.finish();
  json.close();
  std::printf("IPC sweep: %zu scenarios in %.1f s\n", steps.size(), since(t0));

  // The evaluation in small (docs/answers.md): wake-up modes, many channels, placement, appended
  // to the same file.
  if (!o.no_eval) {
    const auto te = std::chrono::steady_clock::now();
    std::printf("evaluation: wake-up modes (note 3.4), 1..%s channels on one server (note 3.2), placement (note 3.2), "
                "%.2f s each\n", o.quick ? "256" : "4096", o.quick ? 0.03 : 0.1);
    std::fflush(stdout);
    eval::JsonOut out(jsonl.string());
    eval::SweepOptions so;
    so.demo = o.quick ? 2 : 1;
    so.seconds = o.quick ? 0.03 : 0.1;
    so.cpus = eval::cpus_from(cpus);
    so.out = &out;
    so.verbose = false;
    std::size_t n = 0;
    n += eval::wakeup_sweep(so, facts).run;
    n += eval::channels_sweep(so, facts).run;
    n += eval::placement_sweep(so, facts).run;
    std::printf("evaluation: %zu scenarios in %.1f s\n", n, since(te));
  }
  const double sweep_s = since(t0);
  std::printf("measured everything in %.1f s; making the report\n", sweep_s);

  // The report reads back the file just written: every number below comes from it.
  const report::Dataset d = report::load_files({jsonl.string()}, "uipc demo");
  if (!d.bad.empty()) throw std::runtime_error(std::to_string(d.bad.size()) + " lines just written to " + jsonl.string() + " do not parse");
  report::WriteOptions wo;
  wo.plots = !o.no_plots;
  const report::WriteResult w = report::write_report(d, report_dir.string(), wo);

  std::printf("\n%s\n", report::headline_text(report::headline(d, kHeadlineInflight)).c_str());
  if (const std::string e = report::eval_summary_text(d); !e.empty()) std::printf("%s\n", e.c_str());
  if (!w.plots_note.empty()) std::printf("plots: %s\n", w.plots_note.c_str());
  for (const auto& f : w.plot_files)
    if (f.size() > 4 && f.compare(f.size() - 4, 4, ".png") == 0) std::printf("plot:   %s (and .svg)\n", f.c_str());
  std::printf("data:   %s\n", jsonl.c_str());
  std::printf("done in %.1f s\n", since(t0));
  std::printf("report: %s\n", w.report_md.c_str());
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* demo = app.add_subcommand(
      "demo",
      "A quick evaluation: uipc's async IPC against the blocking sync call, a raw shared-memory ring, uds-epoll and "
      "pipes at 1..256 calls in flight (64-byte messages, 0.2 s each), the idle CPU of an async client and server, "
      "then wake-up latency and CPU per wake mode, 1..4096 channels on one server and the three placements, a report "
      "with plots and a table of headline ratios.  The IPC sweep runs in 3 rounds and reports each scenario's median "
      "round.  About 40 s on two cores; 'uipc bench all' is the full sweep.");
  demo->add_flag("--quick", o->quick, "Even shorter, for smoke tests: 0.05 s per scenario, in flight 1,16,64, one round");
  o->rounds_opt = demo->add_option("--rounds", o->rounds,
                   "Run each in-flight count's IPC modes this many times in turn, 1.." + std::to_string(kMaxRounds) +
                       " (default 3, 1 with --quick); the report and headline use each scenario's median round")
      ->type_name("N");
  demo->add_option("--out", o->out,
                   "Directory for demo.jsonl (overwritten each run) and report/ (default: results)")
      ->type_name("DIR");
  demo->add_flag("--no-plots", o->no_plots, "Do not run gnuplot");
  demo->add_flag("--no-eval", o->no_eval, "Leave out the wake-up, channel and placement measurements (about 8 s)");
  demo->footer("Writes DIR/demo.jsonl and DIR/report/report.md (+ PNG and SVG plots).  See docs/report.md.");
  demo->callback([o] { run(*o); });
}

}  // namespace uipc::bench
