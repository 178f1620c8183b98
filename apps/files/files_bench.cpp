// apps/files/files_bench.cpp — `uipc bench files`: hashing (and copying) a tree of many small
// files in the page cache, uipc's asynchronous system calls against the synchronous twin, in one
// run. See docs/files.md.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli_common.hpp"
#include "command_registry.hpp"
#include "facts.hpp"
#include "files/files.hpp"
#include "files/files_cli.hpp"

namespace uipc::apps::files {
namespace {

namespace cli = uipc::bench::cli;

const char* const kDefaultInflight = "8,64,256";
const char* const kQuickInflight = "64";
const char* const kDefaultWorkloads = "sum,cp";
constexpr unsigned kDefaultFiles = 2000;
constexpr unsigned kDefaultReps = 7, kQuickReps = 3;
// The configurations `--configs all` compares with the default one.
const char* const kAllConfigs =
    "hybrid-shared-direct,hybrid-affine-direct,hybrid-local-direct,irq-shared-direct,hybrid-shared-io_uring,"
    "hybrid-affine-io_uring,hybrid-local-io_uring";

struct Options {
  bool quick = false;
  std::string json, inflight, workloads, tree, configs, cpus, scratch;
  unsigned files = kDefaultFiles, reps = 0;
  ExecOptionStrings exec;
  CLI::Option* inflight_opt = nullptr;
  CLI::Option* cpus_opt = nullptr;
  CLI::Option* files_opt = nullptr;
};

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("bench files: " + what); }

// ---- the tree ------------------------------------------------------------------------------

struct Tree {
  std::string root;
  bool owned = false;  // created here: removed at the end
};

std::uint64_t next_random(std::uint64_t& s) {  // xorshift64*
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 2685821657736338717ull;
}

// `files` files of 1..16 KiB of pseudo-random bytes, 20 per directory, 10 directories per parent:
// root/dNN/eNN/fNNNNN (the same tree for the same count, every time).
void build_tree(const std::string& root, unsigned files) {
  std::uint64_t seed = 0x9e3779b97f4a7c15ull;
  std::vector<unsigned char> data(16384);
  for (unsigned i = 0; i < files; ++i) {
    char dir[64], path[96];
    std::snprintf(dir, sizeof dir, "/d%02u", i / 200);
    std::string d = root + dir;
    if (i % 200 == 0 && ::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) fail("mkdir " + d + ": " + std::strerror(errno));
    std::snprintf(dir, sizeof dir, "/e%02u", (i / 20) % 10);
    d += dir;
    if (i % 20 == 0 && ::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) fail("mkdir " + d + ": " + std::strerror(errno));
    std::snprintf(path, sizeof path, "/f%05u", i);
    const std::string p = d + path;
    const std::size_t size = 1024 + next_random(seed) % (16384 - 1024 + 1);
    for (std::size_t k = 0; k < size; k += 8) {
      const std::uint64_t v = next_random(seed);
      std::memcpy(data.data() + k, &v, std::min<std::size_t>(8, size - k));
    }
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, data.data(), size) != static_cast<ssize_t>(size) || ::close(fd) != 0)
      fail("cannot write " + p + ": " + std::strerror(errno));
  }
}

void remove_tree(const std::string& root) {
  ::nftw(
      root.c_str(),
      [](const char* p, const struct stat*, int type, FTW*) -> int {
        (type == FTW_DP ? ::rmdir(p) : ::unlink(p));
        return 0;
      },
      64, FTW_DEPTH | FTW_PHYS);
}

// ---- scenarios -------------------------------------------------------------------------------

struct Scenario {
  std::string workload;  // sum, cp
  std::string mode;      // sync, async, async-<config>
  unsigned inflight = 1;
  ExecConfig exec;
  bool sync = false;
  // accumulated over the repetitions
  std::vector<double> rates;  // files/s of each run
  std::vector<std::uint64_t> lat;
  std::uint64_t files = 0, bytes = 0, kernel = 0, caller_kernel = 0, calls = 0;
  double wall = 0, cpu = 0;
  std::string executor;

  double median_rate() const {
    if (rates.empty()) return 0;
    std::vector<double> r = rates;
    std::sort(r.begin(), r.end());
    return r.size() % 2 ? r[r.size() / 2] : (r[r.size() / 2 - 1] + r[r.size() / 2]) / 2;
  }
  double pct(double p) const {
    if (lat.empty()) return 0;
    std::vector<std::uint64_t> l = lat;
    const std::size_t i = std::min(l.size() - 1, static_cast<std::size_t>(p / 100.0 * static_cast<double>(l.size())));
    std::nth_element(l.begin(), l.begin() + static_cast<std::ptrdiff_t>(i), l.end());
    return static_cast<double>(l[i]);
  }
  double per_file(double v) const { return files ? v / static_cast<double>(files) : 0; }
};

void add(Scenario& s, const RunStats& r) {
  s.rates.push_back(r.wall_s > 0 ? static_cast<double>(r.files) / r.wall_s : 0);
  s.lat.insert(s.lat.end(), r.latency_ns.begin(), r.latency_ns.end());
  s.files += r.files;
  s.bytes += r.bytes;
  s.kernel += r.kernel_entries;
  s.caller_kernel += r.caller_kernel_entries;
  s.calls += r.calls;
  s.wall += r.wall_s;
  s.cpu += r.cpu_s;
  s.executor = r.mode;
}

std::vector<std::string> strip_root(const std::vector<SumEntry>& e, const std::string& root, std::vector<std::string>* paths) {
  std::vector<std::string> out;
  for (const auto& x : e) {
    out.push_back(to_hex(x.digest));
    if (paths) paths->push_back(x.path.substr(root.size()));
  }
  return out;
}

void run(const Options& o) {
  const unsigned reps = o.reps ? o.reps : o.quick ? kQuickReps : kDefaultReps;
  if (reps > 1000) cli::usage("--reps: at most 1000");
  if (o.files < 1 || o.files > 1'000'000) cli::usage("--files: must be 1..1000000");
  std::vector<unsigned> inflights;
  for (const auto& item : cli::split(o.inflight_opt->count() ? o.inflight : o.quick ? kQuickInflight : kDefaultInflight, ',')) {
    const auto v = cli::parse_number("--inflight", item);
    if (v < 1 || v > kMaxInflight) cli::usage("--inflight: " + item + " is not in 1.." + std::to_string(kMaxInflight));
    inflights.push_back(static_cast<unsigned>(v));
  }
  if (inflights.empty()) cli::usage("--inflight: empty list");
  std::vector<std::string> workloads;
  for (const auto& w : cli::split(o.workloads.empty() ? kDefaultWorkloads : o.workloads, ',')) {
    if (w != "sum" && w != "cp") cli::usage("--workloads: unknown workload '" + w + "' (sum, cp)");
    if (std::find(workloads.begin(), workloads.end(), w) == workloads.end()) workloads.push_back(w);
  }
  // The async configurations: the default (mode "async", --wake/--placement/--backend change
  // it), then those of --configs (mode "async-<config>").
  std::vector<std::pair<std::string, ExecConfig>> configs{{"async", parse_exec(o.exec)}};
  if (!o.configs.empty()) {
    for (const auto& c : cli::split(o.configs == "all" ? kAllConfigs : o.configs, ',')) {
      const auto parts = cli::split(c, '-');
      if (parts.size() != 3) cli::usage("--configs: '" + c + "' is not WAKE-PLACEMENT-BACKEND (e.g. hybrid-local-io_uring)");
      ExecOptionStrings s{parts[0], parts[1], parts[2]};
      ExecConfig e;
      try {
        e = parse_exec(s);
      } catch (const CLI::ValidationError&) {
        if (s.backend == "io_uring" || s.backend == "uring") {
          std::printf("(skipping %s: io_uring unavailable)\n", c.c_str());
          continue;
        }
        throw;
      }
      if (e.name() == configs.front().second.name()) continue;  // that is the default one
      configs.emplace_back("async-" + e.name(), e);
    }
  }
  // CPUs: the walking thread on the first, the kernel core on the second.
  const std::set<int> allowed = cli::allowed_cpus();
  std::vector<int> cpus;
  if (o.cpus_opt->count() == 0) {
    if (allowed.size() >= 2) cpus = {*allowed.begin(), *std::next(allowed.begin())};
  } else if (o.cpus != "none") {
    for (const auto& item : cli::split(o.cpus, ',')) {
      const auto c = cli::parse_number("--cpus", item);
      if (c >= CPU_SETSIZE || !allowed.count(static_cast<int>(c))) cli::usage("--cpus: CPU " + item + " is not available to this process");
      cpus.push_back(static_cast<int>(c));
    }
    if (cpus.size() != 2) cli::usage("--cpus: give two CPUs (the walking thread's, the kernel core's) or 'none'");
  }
  if (!cpus.empty())
    for (auto& [name, e] : configs) e.cpus = {cpus[1]};

  std::ofstream json;
  if (!o.json.empty()) {
    json.open(o.json, std::ios::app);
    if (!json) cli::usage("--json: cannot open '" + o.json + "' for appending: " + std::strerror(errno));
  }

  // The tree, and a scratch directory for the copies.
  // Default scratch place: /dev/shm when it is a writable directory (tmpfs: the files live in the
  // page cache and creating one costs no disk-filesystem bookkeeping), else /tmp.
  std::string base_dir = o.scratch;
  if (base_dir.empty()) base_dir = ::access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
  std::string tmpl = base_dir + "/uipc-bench-files-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    fail("cannot create a scratch directory in " + base_dir + ": " + std::strerror(errno));
  const std::string scratch = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() { remove_tree(dir); }
  } cleanup{scratch};
  Tree tree;
  if (!o.tree.empty()) {
    if (o.files_opt->count()) cli::usage("--files and --tree exclude each other");
    struct stat sb {};
    if (::stat(o.tree.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) cli::usage("--tree: '" + o.tree + "' is not a directory");
    tree.root = o.tree;
  } else {
    tree.root = scratch + "/tree";
    if (::mkdir(tree.root.c_str(), 0755) != 0) fail("mkdir " + tree.root + ": " + std::strerror(errno));
    build_tree(tree.root, o.files);
  }

  RunOptions base;
  base.caller_cpu = cpus.empty() ? -1 : cpus[0];
  base.record_latency = true;
  std::vector<std::string> bench_errors;
  base.on_error = [&](const std::string& line) {
    if (bench_errors.size() < 5) bench_errors.push_back(line);
  };
  // Warm the page cache and the dentry cache: two synchronous passes; the reference digests.
  RunOptions warm = base;
  warm.sync = true;
  SumResult ref = sum({tree.root}, warm);
  ref = sum({tree.root}, warm);
  std::vector<std::string> ref_paths;
  const std::vector<std::string> ref_digests = strip_root(ref.entries, tree.root, &ref_paths);
  if (ref.entries.empty()) fail("the tree '" + tree.root + "' holds no readable regular file");
  const double mean_bytes = static_cast<double>(ref.stats.bytes) / static_cast<double>(ref.entries.size());

  const bench::Facts facts = bench::machine_facts();
  const std::string& model = facts.cpu_model;
  const unsigned cores = facts.cores;
  const std::string& kernel = facts.kernel;
  const std::string& build_type = facts.build_type;
  const std::string& commit = facts.commit;
  std::printf("uipc bench files: %s, %u CPUs, %s, %s build, commit %s\n", model.c_str(), cores, kernel.c_str(),
              build_type.c_str(), commit.c_str());
  std::printf("copies go to %s\n", scratch.c_str());
  std::printf("tree %s: %zu files, %.1f KiB on average, %llu directories (in the page cache: read twice first)\n",
              tree.root.c_str(), ref.entries.size(), mean_bytes / 1024, static_cast<unsigned long long>(ref.stats.dirs));
  if (cpus.size() == 2) std::printf("walking thread on CPU %d, kernel core on CPU %d; ", cpus[0], cpus[1]);
  else std::printf("threads unpinned; ");
  std::printf("SHA-256: %s; %u repetitions, modes interleaved; files/s is the median over them\n\n",
              Sha256().impl() == Sha256::Impl::openssl ? "libcrypto" : "portable", reps);

  // Scenarios, in the order they run within each repetition.
  std::vector<Scenario> sc;
  for (const auto& w : workloads) {
    Scenario s;
    s.workload = w;
    s.mode = "sync";
    s.sync = true;
    sc.push_back(s);
    for (auto n : inflights)
      for (const auto& [name, e] : configs) {
        Scenario a;
        a.workload = w;
        a.mode = name;
        a.inflight = n;
        a.exec = e;
        sc.push_back(a);
      }
  }
  unsigned copies = 0;
  for (unsigned rep = 0; rep < reps; ++rep) {
    for (auto& s : sc) {
      RunOptions ro = base;
      ro.sync = s.sync;
      ro.inflight = s.inflight;
      ro.exec = s.exec;
      if (s.workload == "sum") {
        const SumResult r = sum({tree.root}, ro);
        if (r.stats.errors || strip_root(r.entries, tree.root, nullptr) != ref_digests)
          fail(s.mode + " sum: digests differ from the synchronous pass" + (bench_errors.empty() ? "" : ": " + bench_errors[0]));
        add(s, r.stats);
      } else {
        const std::string dst = scratch + "/copy" + std::to_string(copies++);
        const RunStats r = copy(tree.root, dst, ro);
        // A tree of --tree may hold links (copied as links, followed by sum): only the generated
        // one is checked file by file.
        if (r.errors || (o.tree.empty() && r.files != ref.entries.size()))
          fail(s.mode + " cp: " + std::to_string(r.files) + " of " + std::to_string(ref.entries.size()) + " files copied" +
               (bench_errors.empty() ? "" : ": " + bench_errors[0]));
        if (rep == 0 && o.tree.empty()) {  // the copy holds the same bytes under the same names
          RunOptions check = warm;
          std::vector<std::string> paths;
          const auto digests = strip_root(sum({dst}, check).entries, dst, &paths);
          if (digests != ref_digests || paths != ref_paths) fail(s.mode + " cp: the copy differs from the tree");
        }
        remove_tree(dst);
        add(s, r);
      }
    }
  }

  std::printf("%-34s %-4s %8s %12s %10s %10s %8s %10s %8s %7s\n", "mode", "work", "inflight", "files/s", "p50", "p99",
              "kern/f", "callerk/f", "cpu/f", "vs sync");
  std::map<std::string, double> sync_rate;
  for (const auto& s : sc)
    if (s.sync) sync_rate[s.workload] = s.median_rate();
  for (const auto& s : sc) {
    const double rate = s.median_rate();
    const double ratio = s.sync || sync_rate[s.workload] <= 0 ? 1.0 : rate / sync_rate[s.workload];
    const std::string label = s.sync ? "sync" : s.mode == "async" ? "async (" + s.executor + ")" : s.mode;
    std::printf("%-34s %-4s %8u %12.0f %10s %10s %8.3f %10.3f %8s %6.2fx\n", label.c_str(), s.workload.c_str(), s.inflight,
                rate, cli::fmt_ns(s.pct(50)).c_str(), cli::fmt_ns(s.pct(99)).c_str(), s.per_file(static_cast<double>(s.kernel)),
                s.per_file(static_cast<double>(s.caller_kernel)), cli::fmt_ns(s.per_file(s.cpu * 1e9)).c_str(), ratio);
    if (json.is_open()) {
      nlohmann::ordered_json j = {
          {"scenario", "files"},
          {"mode", s.sync ? "sync" : s.mode},
          {"workload", s.workload},
          {"inflight", s.inflight},
          {"msg_bytes", static_cast<std::uint64_t>(mean_bytes + 0.5)},  // mean file size
          {"ops_per_s", rate},
          {"p50_ns", s.pct(50)},
          {"p99_ns", s.pct(99)},
          {"kernel_entries_per_op", s.per_file(static_cast<double>(s.kernel))},
          {"cpu_s", s.cpu},
          {"caller_kernel_entries_per_op", s.per_file(static_cast<double>(s.caller_kernel))},
          {"syscalls_per_op", s.per_file(static_cast<double>(s.calls))},
          {"cpu_ns_per_op", s.per_file(s.cpu * 1e9)},
          {"ratio_vs_sync", ratio},
          {"executor", s.sync ? "sync" : s.executor},
          {"ops", s.files},  // files, over every repetition
          {"reps", reps},
          {"wall_s", s.wall},
          {"note", "ops = files; ops_per_s = median over reps; p50/p99 per file (open to close)"},
      };
      bench::append_facts(j, facts, cpus);
      json << j.dump() << '\n';
      json.flush();
      if (!json) throw std::runtime_error("--json: write to '" + o.json + "' failed");
    }
  }
  std::printf("\nTarget (issue 6): async faster than the synchronous twin on many small files in the page cache\n");
  for (const auto& w : workloads) {
    const Scenario* best = nullptr;
    for (const auto& s : sc)
      if (!s.sync && s.workload == w && (!best || s.median_rate() > best->median_rate())) best = &s;
    if (!best || sync_rate[w] <= 0) continue;
    const double q = best->median_rate() / sync_rate[w];
    std::printf("   %-4s best async %.0f files/s (%s, inflight %u) vs sync %.0f files/s = %.2fx  %s\n", w.c_str(),
                best->median_rate(), best->mode.c_str(), best->inflight, sync_rate[w], q, q > 1.0 ? "PASS" : "MISS");
  }
}

void add_files_bench(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* app = bench.add_subcommand(
      "files",
      "uipc sum / uipc cp on a tree of many small files in the page cache: the async tool (many files in flight "
      "through the kernel executor) against its synchronous twin, interleaved in one run; a table with the ratio "
      "and, with --json, one JSON line per scenario (scenario \"files\", workload sum/cp, ops = files).");
  app->add_flag("--quick", o->quick, "Short run: 3 repetitions, in-flight 64 (explicit options win)");
  app->add_option("--json", o->json, "Append one JSON object per scenario, one per line, to FILE")->type_name("FILE");
  o->inflight_opt = app->add_option("--inflight", o->inflight,
                                    std::string("In-flight counts for the async tool (default ") + kDefaultInflight + ")")
                        ->type_name("LIST");
  o->files_opt = app->add_option("--files", o->files,
                                 "Files in the generated tree: 1..16 KiB each, 20 per directory (default 2000)")
                     ->type_name("N");
  app->add_option("--tree", o->tree, "Use this directory tree instead of generating one (it is only read)")->type_name("DIR");
  app->add_option("--scratch", o->scratch,
                  "Directory for the generated tree and the copies (default /dev/shm when writable, else /tmp)")
      ->type_name("DIR");
  app->add_option("--workloads", o->workloads, "sum, cp or both (default sum,cp)")->type_name("LIST");
  app->add_option("--reps", o->reps, "Repetitions of every scenario (default 7, --quick 3)")->type_name("N");
  app->add_option("--configs", o->configs,
                  "More executor configurations to compare, WAKE-PLACEMENT-BACKEND, e.g. hybrid-local-io_uring, or 'all' "
                  "(" + std::string(kAllConfigs) + ")")
      ->type_name("LIST");
  o->cpus_opt = app->add_option("--cpus", o->cpus,
                                "Two CPUs: the walking thread's and the kernel core's (default: the first two available), "
                                "or 'none'")
                    ->type_name("LIST");
  add_executor_options(*app, o->exec);
  app->footer("Example: uipc bench files --quick --json results/files.jsonl\nSee docs/files.md.");
  app->callback([o] { run(*o); });
}

const uipc::bench::CommandRegistration reg{uipc::bench::Group::bench, "files", add_files_bench};

}  // namespace
}  // namespace uipc::apps::files
