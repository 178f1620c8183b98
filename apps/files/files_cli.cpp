// apps/files/files_cli.cpp — `uipc sum PATH...` and `uipc cp SRC DST` (see docs/files.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "command_registry.hpp"
#include "files/files.hpp"
#include "files/files_cli.hpp"

namespace uipc::apps::files {

namespace cli = uipc::bench::cli;

void add_executor_options(CLI::App& app, ExecOptionStrings& s) {
  app.add_option("--wake", s.wake, "Kernel executor wake mode: hybrid, irq or tick (default hybrid)")->type_name("MODE");
  app.add_option("--placement", s.placement,
                 "Kernel executor placement: shared, affine or local (default shared)")
      ->type_name("P");
  app.add_option("--backend", s.backend,
                 "Kernel executor backend: direct, io_uring or automatic (default direct)")
      ->type_name("B");
}

ExecConfig parse_exec(const ExecOptionStrings& s) {
  ExecConfig c = ExecConfig::recommended();
  if (!s.wake.empty()) {
    auto r = sys::parse_wake_mode(s.wake);
    if (!r) cli::usage("--wake: unknown wake mode '" + s.wake + "' (hybrid, irq, tick)");
    c.wake = r.value();
  }
  if (!s.placement.empty()) {
    auto r = sys::parse_placement(s.placement);
    if (!r) cli::usage("--placement: unknown placement '" + s.placement + "' (shared, affine, local)");
    c.placement = r.value();
  }
  if (!s.backend.empty()) {
    auto r = sys::parse_backend(s.backend == "uring" ? std::string("io_uring") : s.backend);
    if (!r) cli::usage("--backend: unknown backend '" + s.backend + "' (direct, io_uring, automatic)");
    c.backend = r.value();
  }
  if (c.backend == sys::Backend::io_uring && !sys::Executor::io_uring_available())
    cli::usage("--backend io_uring: io_uring does not work here (or uipc was built without liburing)");
  return c;
}

namespace {

struct CommonOptions {
  bool sync = false;
  bool stats = false;
  unsigned inflight = kDefaultInflight;
  ExecOptionStrings exec;
};

void add_common(CLI::App& app, CommonOptions& o) {
  app.add_flag("--sync", o.sync, "The synchronous twin: plain system calls, one at a time, on this thread");
  app.add_option("--inflight", o.inflight,
                 "Files and directories worked on at once, i.e. system calls in flight (1.." +
                     std::to_string(kMaxInflight) + ", default " + std::to_string(kDefaultInflight) + ")")
      ->type_name("N");
  app.add_flag("--stats", o.stats, "Print a summary (files, bytes, time, system calls, kernel entries) on stderr");
  add_executor_options(app, o.exec);
}

RunOptions run_options(const CommonOptions& c, const char* prog) {
  if (c.inflight < 1 || c.inflight > kMaxInflight)
    cli::usage("--inflight: " + std::to_string(c.inflight) + " is not in 1.." + std::to_string(kMaxInflight));
  RunOptions o;
  o.sync = c.sync;
  o.inflight = c.inflight;
  o.exec = parse_exec(c.exec);
  o.on_error = [prog](const std::string& line) { std::fprintf(stderr, "%s: %s\n", prog, line.c_str()); };
  return o;
}

// " (of which N after short reads, M for split listings)" when the kernel cost the walk extra
// calls (RunStats::short_reads, split_listings; docs/files.md), else "".
std::string extra_calls(const RunStats& s) {
  if (s.short_reads == 0 && s.split_listings == 0) return {};
  return " (of which " + std::to_string(s.short_reads) + " after short reads, " + std::to_string(s.split_listings) +
         " for split listings)";
}

void print_stats(const char* prog, const RunStats& s) {
  std::fprintf(stderr,
               "%s: %s: %llu files, %llu bytes, %llu directories, %llu errors in %.3f s (%.0f files/s); %llu system "
               "calls%s, %llu kernel entries (%llu by this thread), %.3f CPU-s\n",
               prog, s.mode.c_str(), static_cast<unsigned long long>(s.files), static_cast<unsigned long long>(s.bytes),
               static_cast<unsigned long long>(s.dirs), static_cast<unsigned long long>(s.errors), s.wall_s,
               s.wall_s > 0 ? static_cast<double>(s.files) / s.wall_s : 0.0, static_cast<unsigned long long>(s.calls),
               extra_calls(s).c_str(), static_cast<unsigned long long>(s.kernel_entries),
               static_cast<unsigned long long>(s.caller_kernel_entries), s.cpu_s);
}

// sha256sum and cp exit with 1 when a file failed; so do we (after everything else was done).
void finish(const RunStats& s) {
  std::fflush(stdout);
  if (s.errors != 0) std::exit(1);
}

void add_sum(CLI::App& top) {
  auto c = std::make_shared<CommonOptions>();
  auto paths = std::make_shared<std::vector<std::string>>();
  CLI::App* app = top.add_subcommand(
      "sum",
      "SHA-256 of every regular file named or below the directories named, printed exactly as sha256sum prints "
      "it (sorted by path), with the file operations made through uipc's asynchronous system calls, many files at "
      "once. Problems are reported per file on stderr; the exit status is then 1.");
  app->add_option("PATH", *paths, "Files and directories (directories are walked; links inside them to "
                                  "directories are not followed)")
      ->required()
      ->type_name("PATH");
  add_common(*app, *c);
  app->footer("Example: uipc sum src | diff - <(find src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)\n"
              "See docs/files.md.");
  app->callback([c, paths] {
    const RunOptions o = run_options(*c, "uipc sum");
    const SumResult r = sum(*paths, o);
    std::string out;
    for (const auto& e : r.entries) {
      out += sha256sum_line(e);
      if (out.size() >= (1u << 16)) {
        std::fwrite(out.data(), 1, out.size(), stdout);
        out.clear();
      }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    if (c->stats) print_stats("uipc sum", r.stats);
    finish(r.stats);
  });
}

void add_cp(CLI::App& top) {
  auto c = std::make_shared<CommonOptions>();
  auto src = std::make_shared<std::string>();
  auto dst = std::make_shared<std::string>();
  CLI::App* app = top.add_subcommand(
      "cp",
      "Copy a file or a directory tree like 'cp -r SRC DST' (into DST/basename(SRC) when DST is a directory; "
      "symbolic links are copied as links), with the file operations made through uipc's asynchronous system "
      "calls, many files at once. Problems are reported per file on stderr; the exit status is then 1.");
  app->add_option("SRC", *src, "The file or directory to copy")->required()->type_name("SRC");
  app->add_option("DST", *dst, "Where the copy goes")->required()->type_name("DST");
  add_common(*app, *c);
  app->footer("Example: uipc cp src /tmp/copy && diff -r src /tmp/copy\nSee docs/files.md.");
  app->callback([c, src, dst] {
    if (src->empty() || dst->empty()) cli::usage("SRC and DST must not be empty");
    const RunOptions o = run_options(*c, "uipc cp");
    const RunStats s = copy(*src, *dst, o);
    if (c->stats) print_stats("uipc cp", s);
    finish(s);
  });
}

const uipc::bench::CommandRegistration reg_sum{uipc::bench::Group::top, "sum", add_sum};
const uipc::bench::CommandRegistration reg_cp{uipc::bench::Group::top, "cp", add_cp};

}  // namespace
}  // namespace uipc::apps::files
