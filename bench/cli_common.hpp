// bench/cli_common.hpp — command-line helpers the `uipc bench` subcommands share: list parsing
// with one-line errors (exit status 2 through CLI11), the CPUs this process may use, and the
// facts and number formats every results table prints.
#pragma once

#include <CLI/CLI.hpp>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace uipc::bench::cli {

// A usage error: one line, exit code 2 (main maps every CLI::ParseError to 2).
[[noreturn]] inline void usage(const std::string& msg) { throw CLI::ValidationError(msg, 2); }

// --rounds N of bench ipc, bench all and demo: 1..max, else a usage error.
inline void check_rounds(unsigned rounds, unsigned max) {
  if (rounds < 1 || rounds > max) usage("--rounds: must be 1.." + std::to_string(max) + " (got " + std::to_string(rounds) + ")");
}

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) {
    const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    out.push_back(b == std::string::npos ? std::string() : item.substr(b, e - b + 1));
  }
  return out;
}

inline unsigned long long parse_number(const std::string& opt, const std::string& item) {
  if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos || item.size() > 12)
    usage(opt + ": '" + item + "' is not a non-negative integer");
  return std::stoull(item);
}

inline std::set<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::set<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.insert(c);
  return out;
}

inline std::string run_capture(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(popen(cmd.c_str(), "r"), pclose);
  if (!f) return {};
  std::array<char, 256> buf{};
  std::string out;
  while (fgets(buf.data(), buf.size(), f.get())) out += buf.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

inline std::string utc_timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// 12345678 -> "12,345,678"; "-" for a negative or non-finite value.
inline std::string fmt_rate(double v) {
  if (!(v >= 0) || !std::isfinite(v)) return "-";
  std::string digits = fmt("%.0f", v), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Cache-line round trips (line_rtt_ns, line_rtt_after_ns) that differ by more than this factor
// were taken on different machines, as far as a ratio is concerned.
inline constexpr double kLineRttChange = 1.5;

// True when the positive values among `ns` lie within kLineRttChange of each other (fewer than two:
// nothing to compare, true).
inline bool lines_steady(std::initializer_list<double> ns) {
  double lo = 0, hi = 0;
  for (double v : ns) {
    if (!(v > 0)) continue;
    lo = lo > 0 ? std::min(lo, v) : v;
    hi = std::max(hi, v);
  }
  return lo == 0 || hi <= kLineRttChange * lo;
}

inline std::string fmt_ns(double ns) {
  if (ns <= 0) return "-";
  if (ns < 1e3) return fmt("%.0f ns", ns);
  if (ns < 1e6) return fmt("%.2f us", ns / 1e3);
  if (ns < 1e9) return fmt("%.2f ms", ns / 1e6);
  return fmt("%.2f s", ns / 1e9);
}

}  // namespace uipc::bench::cli
