// bench/report.cpp — `uipc report`: JSON lines → report.md + gnuplot plots.  See report.hpp and
// docs/report.md.  The unit tests include this file (tests/unit/report_test.cpp).
#include "cli_common.hpp"
#include "report.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <utility>

extern char** environ;

namespace uipc::bench::report {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::size_t kMaxLine = std::size_t{1} << 20;
constexpr std::size_t kMaxListedBadLines = 50;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Markdown table cell: no pipes, no line breaks.
std::string md(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

// A Markdown table; the first column is left-aligned, the others right-aligned (numbers) unless
// `text` is set.
struct Table {
  std::vector<std::string> head;
  std::vector<std::vector<std::string>> rows;
  bool text = false;
  static void cell(std::string& out, const std::string& s) {
    out += ' ';
    out += md(s);
    out += " |";
  }
  std::string str() const {
    std::string out = "|";
    for (const auto& h : head) cell(out, h);
    out += "\n|";
    for (std::size_t i = 0; i < head.size(); ++i) out += i == 0 || text ? "---|" : "---:|";
    out += "\n";
    for (const auto& r : rows) {
      out += "|";
      for (std::size_t i = 0; i < head.size(); ++i) cell(out, i < r.size() ? r[i] : std::string());
      out += "\n";
    }
    return out;
  }
};

// ---- parsing ----------------------------------------------------------------------------------

const char* const kStringFields[] = {"scenario", "mode", "note", "cpu_model", "kernel", "build_type", "commit", "timestamp"};
const char* const kCountFields[] = {"inflight", "msg_bytes", "ops", "cores"};
const char* const kNumberFields[] = {"ops_per_s", "p50_ns", "p99_ns", "kernel_entries_per_op", "cpu_s", "wall_s"};

bool is_count(const json& v) {
  return v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0);
}
bool is_measure(const json& v) { return v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0; }

// A line's own numeric field `k` (Record::extra), or `dflt` when it has none.
double extra_of(const Record& r, const char* k, double dflt = NAN) {
  const auto it = r.extra.find(k);
  return it == r.extra.end() ? dflt : it->second;
}

std::string type_of(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_number() && !std::isfinite(v.get<double>())) return "not finite";
  if (v.is_number() && v.get<double>() < 0) return "negative";
  return v.type_name();
}

}  // namespace

std::variant<Record, std::string> parse_line(std::string_view line) {
  if (line.size() > kMaxLine) return std::string("line longer than 1 MiB");
  json j;
  try {
    j = json::parse(line.begin(), line.end());
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (const auto close = what.find("] "); what.rfind("[json.exception", 0) == 0 && close != std::string::npos)
      what = what.substr(close + 2);
    return "not valid JSON: " + what;
  }
  if (!j.is_object()) return std::string("not a JSON object but ") + j.type_name();

  std::string missing;
  auto need = [&](const char* k) {
    if (j.contains(k)) return true;
    missing += (missing.empty() ? "" : ", ") + std::string(k);
    return false;
  };
  for (const char* k : kStringFields) need(k);
  for (const char* k : kCountFields) need(k);
  for (const char* k : kNumberFields) need(k);
  if (!missing.empty()) return "missing field(s): " + missing;

  for (const char* k : kStringFields)
    if (!j[k].is_string()) return std::string("field '") + k + "' is " + type_of(j[k]) + ", not a string";
  for (const char* k : kCountFields)
    if (!is_count(j[k])) return std::string("field '") + k + "' is " + type_of(j[k]) + ", not a non-negative integer";
  for (const char* k : kNumberFields)
    if (!is_measure(j[k])) return std::string("field '") + k + "' is " + type_of(j[k]) + ", not a non-negative number";

  Record r;
  r.scenario = j["scenario"].get<std::string>();
  r.mode = j["mode"].get<std::string>();
  if (r.scenario.empty()) return std::string("field 'scenario' is empty");
  if (r.mode.empty()) return std::string("field 'mode' is empty");
  r.note = j["note"].get<std::string>();
  r.cpu_model = j["cpu_model"].get<std::string>();
  r.kernel = j["kernel"].get<std::string>();
  r.build_type = j["build_type"].get<std::string>();
  r.commit = j["commit"].get<std::string>();
  r.timestamp = j["timestamp"].get<std::string>();
  r.inflight = j["inflight"].get<std::uint64_t>();
  r.msg_bytes = j["msg_bytes"].get<std::uint64_t>();
  r.ops = j["ops"].get<std::uint64_t>();
  r.cores = j["cores"].get<std::uint64_t>();
  r.ops_per_s = j["ops_per_s"].get<double>();
  r.p50_ns = j["p50_ns"].get<double>();
  r.p99_ns = j["p99_ns"].get<double>();
  r.kernel_entries_per_op = j["kernel_entries_per_op"].get<double>();
  r.cpu_s = j["cpu_s"].get<double>();
  r.wall_s = j["wall_s"].get<double>();
  if (!r.is_idle() && r.inflight == 0) return std::string("field 'inflight' is 0 (only the async-idle line may have 0)");

  // Optional fields: absent or null means "not measured"; anything else must have the right type.
  auto optional = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  if (optional("kernel_entries")) {
    if (!is_count(j["kernel_entries"])) return "field 'kernel_entries' is " + type_of(j["kernel_entries"]) + ", not a non-negative integer";
    r.kernel_entries = j["kernel_entries"].get<std::uint64_t>();
  }
  for (auto [k, dst] : {std::pair{"caller_cpu_ns_per_op", &r.caller_cpu_ns_per_op},
                        std::pair{"caller_kernel_entries_per_op", &r.caller_kernel_entries_per_op}}) {
    if (!optional(k)) continue;
    if (!is_measure(j[k])) return std::string("field '") + k + "' is " + type_of(j[k]) + ", not a non-negative number";
    *dst = j[k].get<double>();
  }
  if (optional("calls_per_op")) {
    if (!is_count(j["calls_per_op"])) return "field 'calls_per_op' is " + type_of(j["calls_per_op"]) + ", not a positive integer";
    if (j["calls_per_op"].get<std::uint64_t>() == 0) return std::string("field 'calls_per_op' is 0");
    r.calls_per_op = j["calls_per_op"].get<std::uint64_t>();
  }
  if (optional("workload")) {
    if (!j["workload"].is_string()) return "field 'workload' is " + type_of(j["workload"]) + ", not a string";
    r.workload = j["workload"].get<std::string>();
  }
  if (optional("cpus")) {
    if (!j["cpus"].is_array()) return "field 'cpus' is " + type_of(j["cpus"]) + ", not an array";
    for (const auto& c : j["cpus"]) {
      if (!c.is_number_integer() || c.get<std::int64_t>() < 0 || c.get<std::int64_t>() > 1 << 20)
        return std::string("field 'cpus' holds something other than CPU numbers");
      r.cpus.push_back(static_cast<int>(c.get<std::int64_t>()));
    }
  }
  // The evaluation benchmarks' own fields, when present: counts of at least 1, shares in [0, 1],
  // non-negative measures.
  for (const char* k : {"channels", "callers"})
    if (optional(k) && (!is_count(j[k]) || j[k].get<std::uint64_t>() == 0))
      return std::string("field '") + k + "' is " + (is_count(j[k]) ? std::string("0") : type_of(j[k])) + ", not a positive integer";
  for (const char* k : {"receiver_cpu_per_s", "gap_ns", "tick_ns", "answered_by_caller"})
    if (optional(k) && !is_measure(j[k])) return std::string("field '") + k + "' is " + type_of(j[k]) + ", not a non-negative number";
  if (optional("answered_by_caller") && j["answered_by_caller"].get<double>() > 1)
    return std::string("field 'answered_by_caller' is above 1 (it is a share)");
  // Every other number: the evaluation benchmarks' own fields (report.hpp: Record::extra).
  for (const auto& [k, v] : j.items()) {
    if (!v.is_number() || !std::isfinite(v.get<double>())) continue;
    if (std::find(std::begin(kCountFields), std::end(kCountFields), k) != std::end(kCountFields) ||
        std::find(std::begin(kNumberFields), std::end(kNumberFields), k) != std::end(kNumberFields))
      continue;
    r.extra[k] = v.get<double>();
  }
  return r;
}

void read_jsonl(std::istream& in, const std::string& name, Dataset& d, const std::function<void(const BadLine&)>& warn) {
  d.inputs.push_back(name);
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    ++d.lines;
    auto parsed = parse_line(line);
    const std::string where = name + ":" + std::to_string(n);
    if (auto* r = std::get_if<Record>(&parsed)) {
      r->source = where;
      d.records.push_back(std::move(*r));
    } else {
      d.bad.push_back({where, std::get<std::string>(parsed)});
      if (warn) warn(d.bad.back());
    }
  }
}

void finish(Dataset& d) {
  // The evaluation scenarios' `channels` and `callers` fields are part of the key (one line per
  // channel count, per caller count).
  using Key = std::tuple<std::string, std::string, std::uint64_t, std::string, std::uint64_t, double, double>;
  std::map<Key, std::vector<std::size_t>> by_key;  // key -> indices into d.records, in input order
  for (std::size_t i = 0; i < d.records.size(); ++i) {
    const Record& r = d.records[i];
    by_key[Key{r.scenario, r.workload, r.msg_bytes, r.mode, r.inflight, extra_of(r, "channels", -1), extra_of(r, "callers", -1)}].push_back(i);
  }
  std::vector<bool> kept(d.records.size(), false);
  std::vector<double> rounds_of(d.records.size(), 0);
  for (auto& [k, lines] : by_key) {
    // Oldest first; input order on a tie.
    std::stable_sort(lines.begin(), lines.end(),
                     [&](std::size_t a, std::size_t b) { return d.records[a].timestamp < d.records[b].timestamp; });
    std::vector<std::size_t> series{lines.back()};
    const double last_round = extra_of(d.records[lines.back()], "round", -1);
    for (auto it = lines.rbegin() + 1; it != lines.rend(); ++it) {
      if (last_round < 2 || extra_of(d.records[*it], "round", -1) != last_round - static_cast<double>(series.size())) break;
      series.push_back(*it);
    }
    std::sort(series.begin(), series.end(),
              [&](std::size_t a, std::size_t b) { return d.records[a].ops_per_s < d.records[b].ops_per_s; });
    const std::size_t median = series[(series.size() - 1) / 2];
    kept[median] = true;
    if (series.size() > 1) rounds_of[median] = static_cast<double>(series.size());
    d.other_rounds += series.size() - 1;
    d.superseded += lines.size() - series.size();
  }
  std::vector<Record> out;
  for (std::size_t i = 0; i < d.records.size(); ++i) {
    if (!kept[i]) continue;
    d.records[i].extra.erase("rounds");  // ours to set: a line's own "rounds" field means nothing here
    if (rounds_of[i] > 0) d.records[i].extra["rounds"] = rounds_of[i];
    out.push_back(std::move(d.records[i]));
  }
  d.records = std::move(out);
}

// ---- formatting -------------------------------------------------------------------------------

std::string fmt_rate(double v) { return cli::fmt_rate(v); }


std::string fmt_ns(double ns) {
  if (!(ns > 0) || !std::isfinite(ns)) return "-";
  if (ns < 1e3) return fmt("%.0f ns", ns);
  if (ns < 1e6) return fmt("%.2f µs", ns / 1e3);
  if (ns < 1e9) return fmt("%.2f ms", ns / 1e6);
  return fmt("%.2f s", ns / 1e9);
}

std::string fmt_ratio(double r) {
  if (!std::isfinite(r) || r < 0) return "-";
  const char* f = r >= 100 ? "%.0f×" : r >= 10 ? "%.1f×" : r >= 0.1 ? "%.2f×" : "%.3f×";
  return fmt(f, r);
}

std::string fmt_kernel(double v) {
  if (!std::isfinite(v) || v < 0) return "-";
  if (v == 0) return "0";
  if (v >= 0.01) return fmt("%.3f", v);
  // Two significant digits in fixed notation: 0.000026, not 2.6e-05.
  const int decimals = 1 - static_cast<int>(std::floor(std::log10(v)));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string fmt_pct(double pct) {
  if (!std::isfinite(pct) || pct < 0) return "-";
  return fmt(pct >= 10 ? "%.1f%%" : "%.3f%%", pct);
}

bool mode_before(const std::string& a, const std::string& b) {
  static const char* const order[] = {"sync", "ring", "uds", "uds-epoll", "pipe", "uring"};
  auto rank = [](const std::string& m) -> int {
    if (m == "async") return 0;
    if (m.rfind("async", 0) == 0) return 1;
    for (int i = 0; i < 6; ++i)
      if (m == order[i]) return 2 + i;
    return 100;
  };
  const int ra = rank(a), rb = rank(b);
  return ra != rb ? ra < rb : a < b;
}

// ---- groups -----------------------------------------------------------------------------------

const Record* Group::find(const std::string& mode, std::uint64_t inflight) const {
  const auto it = at.find({mode, inflight});
  return it == at.end() ? nullptr : it->second;
}

std::string Group::title() const {
  std::string t = scenario == "ipc" ? "IPC" : scenario == "sys" ? "System calls" : "Scenario " + scenario;
  if (!workload.empty()) t += ": " + workload;
  if (scenario == "ipc") return t + ", " + std::to_string(msg_bytes) + "-byte messages";
  if (msg_bytes == 0) return t;
  return t + ", " + std::to_string(msg_bytes) + " bytes";
}

namespace {
std::string file_safe(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  return out.empty() ? "_" : out;
}
bool is_async(const std::string& mode) { return mode.rfind("async", 0) == 0; }
}  // namespace

std::string Group::slug() const {
  std::string s = file_safe(scenario);
  if (!workload.empty()) s += "-" + file_safe(workload);
  if (msg_bytes == 0 && scenario != "ipc") return s;
  return s + "-" + std::to_string(msg_bytes) + "B";
}

std::vector<Group> groups(const Dataset& d) {
  auto rank = [](const std::string& s) { return s == "ipc" ? 0 : s == "sys" ? 1 : 2; };
  std::map<std::tuple<int, std::string, std::string, std::uint64_t>, Group> by;
  for (const Record& r : d.records) {
    if (r.is_idle() || is_eval_scenario(r.scenario)) continue;
    Group& g = by[{rank(r.scenario), r.scenario, r.workload, r.msg_bytes}];
    g.scenario = r.scenario;
    g.workload = r.workload;
    g.msg_bytes = r.msg_bytes;
    g.at[{r.mode, r.inflight}] = &r;
    if (std::find(g.modes.begin(), g.modes.end(), r.mode) == g.modes.end()) g.modes.push_back(r.mode);
    if (std::find(g.inflights.begin(), g.inflights.end(), r.inflight) == g.inflights.end()) g.inflights.push_back(r.inflight);
  }
  std::vector<Group> out;
  for (auto& [k, g] : by) {
    std::sort(g.modes.begin(), g.modes.end(), mode_before);
    std::sort(g.inflights.begin(), g.inflights.end());
    out.push_back(std::move(g));
  }
  return out;
}

std::optional<double> ratio(const Group& g, const std::string& async_mode, const std::string& base, std::uint64_t inflight) {
  const Record* a = g.find(async_mode, inflight);
  const Record* b = g.find(base, inflight);
  if (!a || !b || !(b->ops_per_s > 0)) return std::nullopt;
  return a->ops_per_s / b->ops_per_s;
}

std::optional<std::pair<double, std::string>> best_async_ratio(const Group& g, const std::string& base,
                                                               std::uint64_t inflight) {
  std::optional<std::pair<double, std::string>> best;
  for (const auto& m : g.modes)
    if (is_async(m))
      if (const auto v = ratio(g, m, base, inflight); v && *v > 0 && (!best || *v > best->first)) best = {{*v, m}};
  return best;
}

std::string ratio_missing(const Group& g, const std::string& async_mode, const std::string& base, std::uint64_t inflight) {
  const Record* a = g.find(async_mode, inflight);
  const Record* b = g.find(base, inflight);
  if (!a || !b) return "not measured";
  if (!(b->ops_per_s > 0)) return "n/a: " + base + " completed no calls";
  return {};
}

std::optional<std::uint64_t> crossover(const Group& g, const std::string& async_mode, const std::string& base) {
  std::optional<std::uint64_t> from;
  for (auto it = g.inflights.rbegin(); it != g.inflights.rend(); ++it) {
    const auto r = ratio(g, async_mode, base, *it);
    if (!r) continue;
    if (*r < 1.0) break;
    from = *it;
  }
  return from;
}

namespace {

const Record* idle_record(const Dataset& d) {
  const Record* out = nullptr;
  for (const Record& r : d.records)
    if (r.is_idle() && (!out || r.timestamp >= out->timestamp)) out = &r;
  return out;
}

double idle_pct(const Record& r) { return r.wall_s > 0 ? 100.0 * r.cpu_s / r.wall_s : 0; }

const Group* headline_group(const std::vector<Group>& gs) {
  for (const Group& g : gs)
    if (g.scenario == "ipc" && g.workload.empty()) return &g;  // groups() sorts sizes ascending
  return nullptr;
}

}  // namespace

std::string fmt_lines(const Headline::Lines& l) {
  return fmt_ns(l.async_ns) + " / " + fmt_ns(l.other_ns) + (l.changed ? ", the machine changed between them" : "");
}

bool Headline::any() const {
  return async_sync_1 || async_sync_hi || async_ring_hi || async_uds_epoll_hi || async_kernel_hi || sync_kernel_hi || idle_pct;
}

Headline headline(const Dataset& d, std::uint64_t hi) {
  Headline h;
  h.hi = hi;
  const auto gs = groups(d);
  if (const Group* g = headline_group(gs)) {
    h.msg_bytes = g->msg_bytes;
    std::vector<double> lines;
    for (const auto& [where, r] : g->at) {
      h.rounds = std::max(h.rounds, static_cast<unsigned>(extra_of(*r, "rounds", 1)));
      if (const double l = extra_of(*r, "line_rtt_ns", 0); l > 0) lines.push_back(l);
    }
    if (!lines.empty()) {
      std::nth_element(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>((lines.size() - 1) / 2), lines.end());
      h.line_rtt_ns = lines[(lines.size() - 1) / 2];
    }
    auto lines_of = [&](const char* other, std::uint64_t n) -> std::optional<Headline::Lines> {
      const Record* a = g->find("async", n);
      const Record* b = g->find(other, n);
      if (!a || !b || !(extra_of(*a, "line_rtt_ns", 0) > 0) || !(extra_of(*b, "line_rtt_ns", 0) > 0)) return std::nullopt;
      Headline::Lines l{extra_of(*a, "line_rtt_ns"), extra_of(*b, "line_rtt_ns"), false};
      l.changed = !cli::lines_steady({l.async_ns, l.other_ns, extra_of(*a, "line_rtt_after_ns", 0),
                                      extra_of(*b, "line_rtt_after_ns", 0)});
      return l;
    };
    h.lines_sync_1 = lines_of("sync", 1);
    h.lines_sync_hi = lines_of("sync", hi);
    h.lines_ring_hi = lines_of("ring", hi);
    h.lines_uds_epoll_hi = lines_of("uds-epoll", hi);
    h.async_sync_1 = ratio(*g, "async", "sync", 1);
    h.async_sync_hi = ratio(*g, "async", "sync", hi);
    h.async_ring_hi = ratio(*g, "async", "ring", hi);
    h.async_uds_epoll_hi = ratio(*g, "async", "uds-epoll", hi);
    h.why_sync_1 = ratio_missing(*g, "async", "sync", 1);
    h.why_sync_hi = ratio_missing(*g, "async", "sync", hi);
    h.why_ring_hi = ratio_missing(*g, "async", "ring", hi);
    h.why_uds_epoll_hi = ratio_missing(*g, "async", "uds-epoll", hi);
    h.best_sync_1 = best_async_ratio(*g, "sync", 1);
    h.best_sync_hi = best_async_ratio(*g, "sync", hi);
    h.best_ring_hi = best_async_ratio(*g, "ring", hi);
    h.best_uds_epoll_hi = best_async_ratio(*g, "uds-epoll", hi);
    // Per call: only defined when calls completed.
    for (auto [mode, value, why] : {std::tuple{"async", &h.async_kernel_hi, &h.why_async_kernel_hi},
                                    std::tuple{"sync", &h.sync_kernel_hi, &h.why_sync_kernel_hi}})
      if (const Record* r = g->find(mode, hi)) {
        if (r->ops_per_s > 0) *value = r->kernel_entries_per_op;
        else *why = "n/a (no calls completed)";
      }
  }
  if (const Record* r = idle_record(d)) h.idle_pct = idle_pct(*r);
  return h;
}

std::string headline_text(const Headline& h) {
  const std::string hi = std::to_string(h.hi);
  auto ratio_s = [](const std::optional<double>& v, const std::string& why) {
    if (!v) return why;
    std::string s = fmt_ratio(*v);
    return s.substr(0, s.size() - std::strlen("×")) + "x";
  };
  // ", best 0.35x (async-batch)" when another async mode did better than plain async (by
  // enough to show in the printed digits).
  auto best_s = [&](const std::optional<std::pair<double, std::string>>& b,
                    const std::optional<double>& plain) -> std::string {
    if (!b || b->second == "async") return {};
    const std::string v = ratio_s(b->first, "");
    if (plain && v == ratio_s(*plain, "")) return {};
    return ", best " + v + " (" + b->second + ")";
  };
  // "; lines 395 ns / 392 ns": the states the ratio's two scenarios were measured in.
  auto lines_s = [](const std::optional<Headline::Lines>& l) { return l ? "; lines " + fmt_lines(*l) : std::string(); };
  std::vector<std::pair<std::string, std::string>> rows = {
      {"async / sync, 1 in flight",
       ratio_s(h.async_sync_1, h.why_sync_1) + best_s(h.best_sync_1, h.async_sync_1) + lines_s(h.lines_sync_1)},
      {"async / sync, " + hi + " in flight",
       ratio_s(h.async_sync_hi, h.why_sync_hi) + best_s(h.best_sync_hi, h.async_sync_hi) + lines_s(h.lines_sync_hi)},
      {"async / ring, " + hi + " in flight",
       ratio_s(h.async_ring_hi, h.why_ring_hi) + best_s(h.best_ring_hi, h.async_ring_hi) + lines_s(h.lines_ring_hi)},
      {"async / uds-epoll, " + hi + " in flight", ratio_s(h.async_uds_epoll_hi, h.why_uds_epoll_hi) +
                                                       best_s(h.best_uds_epoll_hi, h.async_uds_epoll_hi) +
                                                       lines_s(h.lines_uds_epoll_hi)},
      {"kernel entries per call, " + hi + " in flight",
       "async " + (h.async_kernel_hi ? fmt_kernel(*h.async_kernel_hi) : h.why_async_kernel_hi) + ", sync " +
           (h.sync_kernel_hi ? fmt_kernel(*h.sync_kernel_hi) : h.why_sync_kernel_hi)},
      {"idle CPU, async client + server", h.idle_pct ? fmt_pct(*h.idle_pct) + " of one core" : "not measured"},
  };
  if (h.line_rtt_ns)
    rows.push_back({"cache-line round trip between the CPUs",
                    fmt_ns(*h.line_rtt_ns) + " (median of the sweep; the ratios move with it: docs/bench.md)"});
  std::string out = "Headline (" + (h.msg_bytes ? std::to_string(h.msg_bytes) + "-byte messages, " : std::string()) +
                    "throughput ratios within this run" +
                    (h.rounds > 1 ? ", of each scenario's median round of " + std::to_string(h.rounds) : std::string()) +
                    "; > 1x: async is faster)\n";
  for (const auto& [k, v] : rows) {
    char line[64];
    std::snprintf(line, sizeof line, "  %-42s ", k.c_str());
    out += line + v + "\n";
  }
  return out;
}

// ---- Markdown -----------------------------------------------------------------------------------

namespace {

// Reference figures, DESIGN §6 (ReL4 on a rocket-chip RISC-V, 4 cores, 100 MHz).
const char* const kRel4Machine = "ReL4 (rocket-chip RISC-V, 4 cores, 100 MHz; DESIGN §6)";

std::string entries(std::uint64_t n) { return std::to_string(n) + (n == 1 ? " kernel entry" : " kernel entries"); }

std::string crossover_text(const Group& g, const std::string& a, const std::string& b) {
  std::vector<std::uint64_t> both;
  for (auto n : g.inflights)
    if (ratio(g, a, b, n)) both.push_back(n);
  if (both.empty()) return "-";
  const auto c = crossover(g, a, b);
  if (!c) {
    const double last = *ratio(g, a, b, both.back());
    return "not reached (" + fmt_ratio(last) + " at " + std::to_string(both.back()) + " in flight, the largest measured)";
  }
  if (*c == both.front()) return std::to_string(*c) + " in flight (the smallest measured: " + a + " ≥ " + b + " at every count)";
  return std::to_string(*c) + " in flight";
}

// "2.010 at 1 in flight … 0.0003 at 256 in flight" for one mode's kernel entries per op.
std::string kernel_span(const Group& g, const std::string& mode, bool caller) {
  const Record* lo = nullptr;
  const Record* hi = nullptr;
  for (auto n : g.inflights)
    if (const Record* r = g.find(mode, n); r && r->ops_per_s > 0) {
      if (!lo) lo = r;
      hi = r;
    }
  if (!lo) return "";
  auto v = [&](const Record* r) {
    return fmt_kernel(caller && r->caller_kernel_entries_per_op ? *r->caller_kernel_entries_per_op : r->kernel_entries_per_op);
  };
  if (lo == hi) return v(lo) + " at " + std::to_string(lo->inflight) + " in flight";
  return v(lo) + " at " + std::to_string(lo->inflight) + " … " + v(hi) + " at " + std::to_string(hi->inflight) + " in flight";
}

void machine_section(const Dataset& d, std::string& out) {
  using Facts = std::tuple<std::string, std::uint64_t, std::string, std::string, std::string, std::string>;
  std::map<Facts, std::size_t> facts;
  std::string first, last;
  std::size_t debug = 0;
  for (const Record& r : d.records) {
    std::string cpus;
    for (int c : r.cpus) {
      if (!cpus.empty()) cpus += ',';
      cpus += std::to_string(c);
    }
    ++facts[{r.cpu_model, r.cores, r.kernel, r.build_type, r.commit, cpus}];
    if (first.empty() || r.timestamp < first) first = r.timestamp;
    if (last.empty() || r.timestamp > last) last = r.timestamp;
    if (r.build_type != "release") ++debug;
  }
  out += "## Machine\n\n";
  auto pinned = [](const std::string& cpus) {
    if (cpus.empty()) return std::string("unpinned");
    const auto comma = cpus.find(',');
    if (comma == std::string::npos) return "client on CPU " + cpus;
    return "client on CPU " + cpus.substr(0, comma) + ", server on CPU " + cpus.substr(comma + 1);
  };
  if (facts.size() == 1) {
    const auto& [model, cores, kernel, build, commit, cpus] = facts.begin()->first;
    Table t{{"", ""}, {}};
    t.rows = {{"CPU", model},
              {"CPUs online", std::to_string(cores)},
              {"kernel", kernel},
              {"build", build},
              {"commit", commit},
              {"threads", pinned(cpus)},
              {"measured (UTC)", first == last ? first : first + " … " + last}};
    t.text = true;
    out += t.str() + "\n";
  } else {
    out += "The lines come from " + std::to_string(facts.size()) +
           " different machines, builds, commits or pinnings. Ratios mean most within one run; pass "
           "`--in` to report on one run at a time.\n\n";
    Table t{{"CPU", "CPUs", "kernel", "build", "commit", "threads", "lines"}, {}, true};
    for (const auto& [f, n] : facts) {
      const auto& [model, cores, kernel, build, commit, cpus] = f;
      t.rows.push_back({model, std::to_string(cores), kernel, build, commit, pinned(cpus), std::to_string(n)});
    }
    out += t.str() + "\nMeasured (UTC): " + first + " … " + last + ".\n\n";
  }
  if (debug)
    out += "> **Note:** " + std::to_string(debug) + " of " + std::to_string(d.records.size()) +
           " lines come from a non-release build; debug and sanitizer builds measure something else.\n\n";
}

std::string plot_markdown(const Plot& p) {
  if (!p.made) return "*Plot not drawn: " + p.title + " (see the note on plots above).*\n\n";
  return "![" + p.title + "](" + p.stem + ".png)\n\n" + p.caption + " ([SVG](" + p.stem + ".svg))\n\n";
}

void reference_section(const Dataset& d, const std::vector<Group>& gs, std::string& out) {
  out += "## Reference comparison: uipc against ReL4's published figures\n\n";
  const Group* ipc = headline_group(gs);
  const Group* sys = nullptr;
  for (const Group& g : gs)
    if (g.scenario == "sys" && (!sys || (g.workload.find("mmap") != std::string::npos && sys->workload.find("mmap") == std::string::npos)))
      sys = &g;
  const std::string ipc_col = ipc ? "uipc (this data, " + std::to_string(ipc->msg_bytes) + "-byte IPC messages)" : "uipc (this data)";
  out += "The same measures on the same axes: throughput of the asynchronous path divided by the synchronous "
         "one at a given number of calls in flight (> 1× means async is faster), and kernel entries per "
         "request. ReL4's synchronous baseline comes with and without the seL4 fast path; uipc's `sync` mode "
         "is the blocking Call/ReplyRecv baseline of this machine (futex-based; Linux has no IPC fast path). "
         "ReL4 ran on a 100 MHz FPGA, uipc on the machine above: compare ratios, not absolute times.\n\n";
  Table t{{"measure", kRel4Machine, ipc_col}, {}, true};

  auto ipc_ratio_at = [&](std::uint64_t n) -> std::string {
    if (!ipc) return "no IPC data";
    if (const auto r = ratio(*ipc, "async", "sync", n)) return fmt_ratio(*r);
    if (!ipc->find("async", n) && !ipc->find("sync", n)) {
      std::string s = std::to_string(n) + " in flight not measured";
      std::optional<std::uint64_t> below, above;
      for (auto m : ipc->inflights)
        if (ratio(*ipc, "async", "sync", m)) {
          if (m < n) below = m;
          if (m > n && !above) above = m;
        }
      std::vector<std::string> near;
      for (auto m : {below, above})
        if (m) near.push_back(fmt_ratio(*ratio(*ipc, "async", "sync", *m)) + " at " + std::to_string(*m));
      if (!near.empty()) s += " (" + near[0] + (near.size() > 1 ? ", " + near[1] : "") + ")";
      return s;
    }
    return ratio_missing(*ipc, "async", "sync", n) + " at " + std::to_string(n) + " in flight";
  };
  t.rows.push_back({"IPC, 1 in flight: async ÷ sync", "0.77× (no fast path) / 0.29× (fast path)", ipc_ratio_at(1)});
  t.rows.push_back({"IPC, 32 in flight: async ÷ sync", "4.7× (no fast path) / 1.8× (fast path)", ipc_ratio_at(32)});
  t.rows.push_back({"IPC crossover: async at least as fast as sync from", "8 in flight (against the fast path)",
                    ipc ? crossover_text(*ipc, "async", "sync") : "no IPC data"});
  if (const std::string a = ipc ? kernel_span(*ipc, "async", false) : ""; !a.empty()) {
    const std::string s = kernel_span(*ipc, "sync", false);
    t.rows.push_back({"IPC kernel entries per call (both sides)", "not given in DESIGN §6", "async: " + a + (s.empty() ? "" : "; sync: " + s)});
  }

  const std::string sys_name = sys ? (sys->workload.empty() ? "" : "workload " + sys->workload + ", ") + std::to_string(sys->msg_bytes) + " bytes" : "";
  std::vector<std::string> sys_async;
  if (sys)
    for (const auto& m : sys->modes)
      if (is_async(m)) sys_async.push_back(m);
  const bool sys_ok = sys && !sys_async.empty() && std::find(sys->modes.begin(), sys->modes.end(), "sync") != sys->modes.end();
  const std::string no_sys = "no `sys` lines with async and sync modes in the input";
  {  // crossover of the async mode that crosses earliest
    std::string cell = no_sys;
    if (sys_ok) {
      std::optional<std::pair<std::uint64_t, std::string>> best;
      for (const auto& m : sys_async)
        if (const auto c = crossover(*sys, m, "sync"); c && (!best || *c < best->first)) best = {{*c, m}};
      cell = best ? std::to_string(best->first) + " in flight (" + best->second + "; " + sys_name + ")"
                  : "not reached by any async mode (" + sys_name + ")";
    }
    t.rows.push_back({"system calls (map+unmap): async at least as fast as sync from", "between 16 and 32 in flight", cell});
  }
  std::string best_sys_mode;
  {  // best ratio
    std::string cell = no_sys;
    if (sys_ok) {
      std::optional<std::tuple<double, std::uint64_t, std::string>> best;
      for (const auto& m : sys_async)
        for (auto n : sys->inflights)
          if (const auto r = ratio(*sys, m, "sync", n); r && (!best || *r > std::get<0>(*best))) best = {{*r, n, m}};
      if (best) best_sys_mode = std::get<2>(*best);
      cell = best ? fmt_ratio(std::get<0>(*best)) + " at " + std::to_string(std::get<1>(*best)) + " in flight (" +
                        std::get<2>(*best) + "; " + sys_name + ")"
                  : "no in-flight count with both async and sync";
    }
    t.rows.push_back({"system calls, best async ÷ sync", "1.55× at 512 in flight", cell});
  }
  {  // kernel entries per async syscall
    std::string cell = no_sys;
    if (sys && !sys_async.empty()) {
      bool caller = false;
      for (const auto& [k, r] : sys->at)
        if (is_async(r->mode) && r->caller_kernel_entries_per_op) caller = true;
      // Per system call; the caller's own entries when the lines have them.
      auto range = [&](const std::string& only) {
        double lo = INFINITY, hi = -1;
        for (const auto& [k, r] : sys->at) {
          if (!is_async(r->mode) || !(r->ops_per_s > 0) || (!only.empty() && r->mode != only)) continue;
          const double v = (caller ? r->caller_kernel_entries_per_op.value_or(NAN) : r->kernel_entries_per_op) /
                           static_cast<double>(r->calls_per_op);
          if (!std::isfinite(v)) continue;
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
        return hi < 0 ? std::string() : lo == hi ? fmt_kernel(lo) : fmt_kernel(lo) + "–" + fmt_kernel(hi);
      };
      const std::string all = range(""), best = best_sys_mode.empty() ? "" : range(best_sys_mode);
      const std::string what = caller ? "the caller's own kernel entries" : "kernel entries of caller and kernel cores";
      if (all.empty()) cell = "-";
      else if (best.empty()) cell = all + " (" + what + ", every async mode and in-flight count)";
      else
        cell = best + " for " + best_sys_mode + " (the best async ÷ sync above), " + all +
               " over every async mode and in-flight count (" + what + ")";
    }
    t.rows.push_back({"kernel entries per async system call", "0.025–0.144 (never 0)", cell});
  }
  // The services of issue 6 against the reference's: the memory-allocation server (`uipc bench
  // alloc`, async IPC + async mmap/munmap against sync IPC + plain calls) and the key-value server
  // (`uipc bench kv`, uipc against a Unix-socket epoll twin) where ReL4 measured a TCP server.
  for (const Group& g : gs) {
    if (g.scenario != "alloc" || !g.find("async", g.inflights.front()) || !g.find("sync", g.inflights.front())) continue;
    t.rows.push_back({"memory-allocation server (`uipc bench alloc`): async at least as fast as sync from",
                      "between 16 and 32 in flight", crossover_text(g, "async", "sync")});
    std::optional<std::pair<double, std::uint64_t>> best;
    for (auto n : g.inflights)
      if (const auto r = ratio(g, "async", "sync", n); r && (!best || *r > best->first)) best = {{*r, n}};
    if (best)
      t.rows.push_back({"memory-allocation server, best async ÷ sync", "1.55× at 512 in flight",
                        fmt_ratio(best->first) + " at " + std::to_string(best->second) + " in flight"});
    break;
  }
  {
    std::vector<std::pair<std::uint64_t, double>> kv;  // (connections, uipc ÷ twin)
    for (const Group& g : gs) {
      if (g.scenario != "kv") continue;
      const auto at = g.workload.find("connections=");
      if (at == std::string::npos) continue;
      const std::uint64_t conns = std::strtoull(g.workload.c_str() + at + 12, nullptr, 10);
      for (auto n : g.inflights)
        if (const auto r = ratio(g, "uipc", "uds-epoll", n)) kv.emplace_back(conns, *r);
    }
    if (!kv.empty()) {
      std::sort(kv.begin(), kv.end());
      std::string cell;
      for (const auto& [c, r] : kv) cell += (cell.empty() ? "" : ", ") + fmt_ratio(r) + " at " + std::to_string(c);
      t.rows.push_back({"server throughput, async ÷ conventional twin, by connections (ReL4: a TCP server against "
                        "its sync twin; uipc: `uipc bench kv`, key-value server against a Unix-socket epoll twin)",
                        "up to 2.9× at 8–16 connections", cell + " connections"});
    }
  }
  {
    const Record* idle = idle_record(d);
    t.rows.push_back({"idle runtime", "spins in a seL4_Yield loop; never sleeps",
                      idle ? fmt_pct(idle_pct(*idle)) + " of one core over " + fmt("%.2f s", idle->wall_s) +
                                 (idle->kernel_entries ? ", " + entries(*idle->kernel_entries) : "")
                           : "no async-idle line in the input"});
  }
  out += t.str() + "\n";

  // uipc's own goals (DESIGN §6), checked against the same data.
  if (!ipc) return;
  Table goals{{"goal (DESIGN §6)", "this data"}, {}, true};
  {
    std::optional<std::pair<double, std::uint64_t>> worst;
    for (auto n : ipc->inflights)
      if (const auto r = ratio(*ipc, "async", "sync", n); r && (!worst || *r < worst->first)) worst = {{*r, n}};
    if (worst)
      goals.rows.push_back({"async never slower than sync (crossover at 1)",
                            std::string(worst->first >= 1 ? "met" : "not met") + ": lowest async ÷ sync is " +
                                fmt_ratio(worst->first) + " at " + std::to_string(worst->second) + " in flight"});
  }
  {
    std::optional<std::pair<double, std::uint64_t>> worst;
    for (auto n : ipc->inflights)
      if (const auto r = ratio(*ipc, "async", "ring", n); r && (!worst || *r < worst->first)) worst = {{*r, n}};
    if (worst) {
      const std::uint64_t top = ipc->inflights.back();
      const auto at_top = ratio(*ipc, "async", "ring", top);
      const auto best_top = best_async_ratio(*ipc, "ring", top);
      goals.rows.push_back({"throughput within 2× of the raw ring (async ÷ ring ≥ 0.5)",
                            (at_top ? "at " + std::to_string(top) + " in flight: " + fmt_ratio(*at_top) + " (" +
                                          (*at_top >= 0.5 ? "met" : "not met") + "); "
                                    : std::string()) +
                                (best_top && best_top->second != "async"
                                     ? "best async mode " + best_top->second + ": " + fmt_ratio(best_top->first) + " (" +
                                           (best_top->first >= 0.5 ? "met" : "not met") + "); "
                                     : std::string()) +
                                "lowest " + fmt_ratio(worst->first) + " at " + std::to_string(worst->second) + " in flight"});
    }
  }
  if (const Record* r = ipc->find("async", ipc->inflights.back()))
    goals.rows.push_back({"kernel entries per request → 0 under load",
                          fmt_kernel(r->kernel_entries_per_op) + " per call at " + std::to_string(r->inflight) + " in flight"});
  if (const Record* idle = idle_record(d))
    goals.rows.push_back({"zero CPU when idle (target < 1% of one core)",
                          std::string(idle_pct(*idle) < 1.0 ? "met" : "not met") + ": " + fmt_pct(idle_pct(*idle)) + " of one core"});
  if (!goals.rows.empty()) out += "uipc's own goals, checked against the same data:\n\n" + goals.str() + "\n";
}

void group_section(const Group& g, const RenderOptions& opt, std::string& out) {
  out += "## " + g.title() + "\n\n";
  const bool ipc = g.scenario == "ipc";
  std::set<std::uint64_t> calls;
  for (const auto& [k, r] : g.at) calls.insert(r->calls_per_op);
  out += std::to_string(g.at.size()) + " scenarios. Rows: modes; columns: " + (ipc ? "calls" : "operations") +
         " kept in flight.";
  if (!ipc && calls.size() == 1 && *calls.begin() > 1)
    out += " One operation is " + std::to_string(*calls.begin()) + " system calls.";
  out += "\n\n";
  auto in_flight_head = [&] {
    std::vector<std::string> head{"mode"};
    for (auto n : g.inflights) head.push_back(std::to_string(n));
    return head;
  };
  auto metric = [&](const std::string& heading, const std::function<std::string(const Record&)>& cell) {
    Table t{in_flight_head(), {}};
    for (const auto& m : g.modes) {
      std::vector<std::string> row{m};
      for (auto n : g.inflights) {
        const Record* r = g.find(m, n);
        row.push_back(r ? cell(*r) : "-");
      }
      t.rows.push_back(std::move(row));
    }
    out += "### " + heading + "\n\n" + t.str() + "\n";
  };
  const std::string op = ipc ? "call" : "operation";
  metric(ipc ? "Throughput (round trips per second)" : "Throughput (operations per second)",
         [](const Record& r) { return fmt_rate(r.ops_per_s); });
  metric("Cost per " + op + " (10⁹ / throughput)", [](const Record& r) { return fmt_ns(r.cost_ns()); });
  metric("Latency, median (p50)", [](const Record& r) { return fmt_ns(r.p50_ns); });
  metric("Latency, 99th percentile (p99)", [](const Record& r) { return fmt_ns(r.p99_ns); });
  metric("Kernel entries per " + op + (ipc ? " (both sides)" : " (every thread)"),
         [](const Record& r) { return r.ops_per_s > 0 ? fmt_kernel(r.kernel_entries_per_op) : std::string("-"); });
  bool caller_cpu = false, caller_kernel = false;
  for (const auto& [k, r] : g.at) {
    caller_cpu |= r->caller_cpu_ns_per_op.has_value();
    caller_kernel |= r->caller_kernel_entries_per_op.has_value();
  }
  if (caller_kernel)
    metric("The caller's own kernel entries per " + op, [](const Record& r) {
      return r.caller_kernel_entries_per_op && r.ops_per_s > 0 ? fmt_kernel(*r.caller_kernel_entries_per_op) : std::string("-");
    });
  if (caller_cpu)
    metric("The caller's CPU time per " + op, [](const Record& r) {
      return r.caller_cpu_ns_per_op && r.ops_per_s > 0 ? fmt_ns(*r.caller_cpu_ns_per_op) : std::string("-");
    });
  metric("CPU used (CPU seconds per second measured)",
         [](const Record& r) { return r.wall_s > 0 ? fmt("%.2f", r.cpu_s / r.wall_s) : std::string("-"); });

  // Ratios: every async mode over the baselines.
  std::vector<std::string> asyncs, bases;
  for (const auto& m : g.modes) {
    if (is_async(m)) asyncs.push_back(m);
    else if (!ipc || m == "sync" || m == "ring" || m == "uds-epoll") bases.push_back(m);
  }
  if (!asyncs.empty() && !bases.empty()) {
    Table t{in_flight_head(), {}};
    t.head[0] = "ratio";
    for (const auto& b : bases)
      for (const auto& a : asyncs) {
        std::vector<std::string> row{a + " ÷ " + b};
        for (auto n : g.inflights) {
          const auto r = ratio(g, a, b, n);
          row.push_back(r ? fmt_ratio(*r) : "-");
        }
        t.rows.push_back(std::move(row));
      }
    out += "### Throughput ratios (> 1× means the async mode is faster)\n\n" + t.str() + "\n";
    out += "Crossover (the async mode is at least as fast from this count on, at every larger count measured):\n\n";
    for (const auto& b : bases)
      for (const auto& a : asyncs) {
        const std::string c = crossover_text(g, a, b);
        if (c != "-") out += "- " + a + " vs " + b + ": " + c + "\n";
      }
    out += "\n";
  }

  // Notes the modes attached, folded away: they are many and mostly say how a mode ran.
  Table notes{{"mode", "in flight", "note"}, {}, true};
  for (const auto& m : g.modes)
    for (auto inflight : g.inflights)
      if (const Record* r = g.find(m, inflight); r && !r->note.empty()) notes.rows.push_back({m, std::to_string(inflight), r->note});
  if (!notes.rows.empty())
    out += "<details><summary>Notes from the modes (" + std::to_string(notes.rows.size()) + ")</summary>\n\n" + notes.str() +
           "\n</details>\n\n";

  for (const Plot& p : opt.plots)
    if (p.group == g.slug()) out += plot_markdown(p);
}


void eval_sections(const Dataset& d, const RenderOptions& opt, std::string& out);  // defined with the plots

}  // namespace

std::string render_markdown(const Dataset& d, const RenderOptions& opt) {
  std::string out = "# uipc benchmark report\n\n";
  std::string inputs;
  for (const auto& f : d.inputs) inputs += (inputs.empty() ? "`" : ", `") + f + "`";
  out += "Generated by `uipc report` from " + std::to_string(d.inputs.size()) + (d.inputs.size() == 1 ? " file" : " files") +
         (inputs.empty() ? "" : " (" + inputs + ")") + ": " + std::to_string(d.lines) + " lines read, " +
         std::to_string(d.records.size()) + " used, " + std::to_string(d.bad.size()) + " skipped (malformed or incomplete), " +
         std::to_string(d.superseded) + " superseded by a later line for the same scenario" +
         (d.other_rounds == 0 ? std::string()
                              : ", " + std::to_string(d.other_rounds) +
                                    " other rounds of scenarios measured in several rounds (each such scenario shows its "
                                    "median round by throughput, and its ratios are those of the median rounds)") +
         ".\n\n";
  if (!opt.plots_note.empty()) out += "> **Plots:** " + opt.plots_note + "\n\n";

  if (d.records.empty()) {
    out += "No valid result lines in the input: there is nothing to tabulate. Produce some with `uipc demo`, "
           "`uipc bench all` or `uipc bench ipc --json FILE`.\n\n";
  } else {
    machine_section(d, out);
    const auto gs = groups(d);
    const Headline h = headline(d);
    if (h.any()) {
      const std::string hi = std::to_string(h.hi);
      Table t{{"headline" + (h.msg_bytes ? " (" + std::to_string(h.msg_bytes) + "-byte messages)" : std::string()), "this data",
               "cache-line round trips of the two scenarios"},
              {}};
      auto r = [](const std::optional<double>& v, const std::string& why) { return v ? fmt_ratio(*v) : why; };
      auto l = [](const std::optional<Headline::Lines>& v) { return v ? fmt_lines(*v) : std::string(); };
      t.rows = {{"async ÷ sync, 1 in flight", r(h.async_sync_1, h.why_sync_1), l(h.lines_sync_1)},
                {"async ÷ sync, " + hi + " in flight", r(h.async_sync_hi, h.why_sync_hi), l(h.lines_sync_hi)},
                {"async ÷ ring, " + hi + " in flight", r(h.async_ring_hi, h.why_ring_hi), l(h.lines_ring_hi)},
                {"async ÷ uds-epoll, " + hi + " in flight", r(h.async_uds_epoll_hi, h.why_uds_epoll_hi), l(h.lines_uds_epoll_hi)},
                {"kernel entries per call, async, " + hi + " in flight", h.async_kernel_hi ? fmt_kernel(*h.async_kernel_hi) : h.why_async_kernel_hi, ""},
                {"kernel entries per call, sync, " + hi + " in flight", h.sync_kernel_hi ? fmt_kernel(*h.sync_kernel_hi) : h.why_sync_kernel_hi, ""},
                {"idle CPU, async client + server", h.idle_pct ? fmt_pct(*h.idle_pct) + " of one core" : "not measured", ""}};
      if (h.line_rtt_ns) t.rows.push_back({"cache-line round trip, client ↔ server CPU (median)", fmt_ns(*h.line_rtt_ns), ""});
      if (!h.lines_sync_1 && !h.lines_sync_hi && !h.lines_ring_hi && !h.lines_uds_epoll_hi) t.head.pop_back();  // no lines to show
      out += "## Headline\n\n" + t.str() + "\n";
      if (h.rounds > 1)
        out += "Each ratio compares the scenarios' median rounds of " + std::to_string(h.rounds) + " (see the first paragraph).\n\n";
      if (h.line_rtt_ns)
        out += "The ratios move with the machine's state, which the cache-line round trip shows. On a VM it can change "
               "between runs, and within one (docs/bench.md, `line`; each line of the data file has its `line_rtt_ns`).\n\n";
    }
    reference_section(d, gs, out);
    for (const Plot& p : opt.plots)
      if (p.group == "reference") out += plot_markdown(p);
    for (const Group& g : gs) group_section(g, opt, out);
    eval_sections(d, opt, out);
    if (const Record* idle = idle_record(d)) {
      out += "## Idle\n\nAn async client and server, connected, doing nothing for " + fmt("%.2f s", idle->wall_s) +
             " after one call: " + fmt_pct(idle_pct(*idle)) + " of one core (" + fmt("%.4f s", idle->cpu_s) + " CPU)" +
             (idle->kernel_entries ? ", " + entries(*idle->kernel_entries) : std::string()) +
             ". The runtime spins for a short window, then sleeps on its futex until a notification arrives.\n\n";
    }
  }

  if (!d.bad.empty()) {
    out += "## Skipped input lines\n\n" + std::to_string(d.bad.size()) +
           (d.bad.size() == 1 ? " line was" : " lines were") + " skipped:\n\n";
    for (std::size_t i = 0; i < d.bad.size() && i < kMaxListedBadLines; ++i)
      out += "- `" + d.bad[i].where + "`: " + md(d.bad[i].reason) + "\n";
    if (d.bad.size() > kMaxListedBadLines) out += "- … and " + std::to_string(d.bad.size() - kMaxListedBadLines) + " more\n";
    out += "\n";
  }

  if (!d.records.empty()) {
    out += "## How to read this\n\n"
           "- *in flight*: requests a client keeps outstanding; a new one goes out for each reply.\n"
           "- *cost per call* = 10⁹ / throughput: the time one call costs when the pipeline is full.\n"
           "- *kernel entries*: system calls made by both sides during the measured interval, per call.\n"
           "- Ratios are throughput ratios between modes measured in the same run; only such ratios compare.\n"
           "- Modes: `async` (uipc), `sync` (blocking uipc call), `ring` (busy-polling shared-memory rings, "
           "the machine's limit), `uds`, `uds-epoll`, `pipe` (kernel peers). See docs/bench.md and docs/report.md.\n";
  }
  return out;
}

// ---- plots ------------------------------------------------------------------------------------

namespace {

std::string gp_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n' || c == '\r') c = ' ';
    out += c;
  }
  return out + "\"";
}

std::string num(double v) {
  if (!std::isfinite(v)) return "NaN";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string xtics(const Group& g) {
  std::string s = "set xtics (";
  bool first = true;
  for (auto n : g.inflights) {
    s += (first ? "" : ", ") + gp_string(std::to_string(n)) + " " + std::to_string(n);
    first = false;
  }
  return s + ")\n";
}

std::string xrange(const Group& g) {
  return "set xrange [" + num(static_cast<double>(g.inflights.front()) / 1.5) + ":" +
         num(static_cast<double>(g.inflights.back()) * 1.5) + "]\n";
}

// Labelled ticks for a log axis of nanoseconds spanning [lo, hi]: 1-2-5 steps, or finer when that
// gives fewer than three (gnuplot labels only whole decades on a log axis).
std::string ns_ytics(double lo, double hi) {
  std::vector<double> ticks;
  for (const auto& steps : {std::vector<double>{1, 2, 5}, std::vector<double>{1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9}}) {
    ticks.clear();
    for (double decade = std::pow(10.0, std::floor(std::log10(lo))); decade <= hi; decade *= 10)
      for (double s : steps)
        if (s * decade >= lo && s * decade <= hi) ticks.push_back(s * decade);
    if (ticks.size() >= 3) break;
  }
  std::string out = "set ytics (";
  for (std::size_t i = 0; i < ticks.size(); ++i) {
    std::string label = fmt_ns(ticks[i]);
    if (const auto mu = label.find("µ"); mu != std::string::npos) label.replace(mu, std::strlen("µ"), "u");  // ASCII for libgd's png
    if (i) out += ", ";
    out += gp_string(label) + " " + num(ticks[i]);
  }
  return out + ")\n";
}

}  // namespace

// ---- the evaluation scenarios: wakeup, channels, placement (docs/answers.md) --------------------

bool is_eval_scenario(const std::string& s) { return s == "wakeup" || s == "channels" || s == "placement"; }

namespace {

int wake_rank(const std::string& m) {
  static const char* const order[] = {"sys-tick-100us", "sys-tick-1ms", "sys-tick-4ms", "sys-irq",
                                      "sys-hybrid",     "ipc-irq",      "ipc-hybrid",   "ipc-poll"};
  for (int i = 0; i < 8; ++i)
    if (m == order[i]) return i;
  return 100;
}
int placement_rank(const std::string& m) { return m == "affine" ? 0 : m == "shared" ? 1 : m == "local" ? 2 : 100; }

std::vector<std::string> distinct_modes(const std::vector<const Record*>& rs) {
  std::vector<std::string> out;
  for (const Record* r : rs)
    if (std::find(out.begin(), out.end(), r->mode) == out.end()) out.push_back(r->mode);
  return out;
}

const Record* find_eval(const std::vector<const Record*>& rs, const std::string& mode, const std::string& workload) {
  for (const Record* r : rs)
    if (r->mode == mode && r->workload == workload) return r;
  return nullptr;
}

std::string ns_or_dash(const Record* r, double Record::*f) { return r && r->ops > 0 ? fmt_ns(r->*f) : "-"; }

// ---- wakeup -----------------------------------------------------------------------------------

void wakeup_section(const Dataset& d, const RenderOptions& opt, std::string& out) {
  const auto rs = eval_records(d, "wakeup");
  if (rs.empty()) return;
  const auto modes = distinct_modes(rs);
  double gap = 0;
  for (const Record* r : rs)
    if (r->workload == "idle") gap = std::max(gap, extra_of(*r, "gap_ns", 0));
  out += "## Wake-up: interrupt, polling or tick (note §3.4)\n\n" + std::to_string(rs.size()) +
         " scenarios (`uipc bench wakeup`). `sys-*`: an asynchronous getppid through the kernel executor (one kernel core, "
         "affine placement, direct backend) in the named wake mode; `ipc-*`: an 8-byte call to an echo server whose "
         "runtimes sleep as soon as they are idle (irq), spin 50 µs first (hybrid) or never sleep (poll). Receiver "
         "states: *idle* — one call every " +
         (gap > 0 ? fmt_ns(gap) : std::string("gap")) +
         " on average, so the receiver has gone to sleep (or waits for its tick) when the call arrives; *busy* — calls "
         "back to back, one in flight; *quiet* — no calls. Latency: submit → completion as the caller sees it. Receiver "
         "CPU: the process's CPU time minus the calling thread's, per second of wall time (the kernel core or the server "
         "thread).\n\n";
  Table lat{{"mode", "idle: p50", "idle: p99", "busy: p50", "busy: p99", "busy: calls/s"}, {}};
  Table cpu{{"mode", "receiver CPU, quiet", "receiver CPU, idle", "receiver CPU, busy", "kernel entries per call, idle",
             "kernel entries per call, busy"},
            {}};
  auto cpu_cell = [](const Record* r) {
    const double v = r ? extra_of(*r, "receiver_cpu_per_s") : NAN;
    return std::isfinite(v) ? fmt("%.3f", v) : std::string("-");
  };
  auto kern_cell = [](const Record* r) { return r && r->ops > 0 ? fmt_kernel(r->kernel_entries_per_op) : std::string("-"); };
  for (const auto& m : modes) {
    const Record* idle = find_eval(rs, m, "idle");
    const Record* busy = find_eval(rs, m, "busy");
    const Record* quiet = find_eval(rs, m, "quiet");
    lat.rows.push_back({m, ns_or_dash(idle, &Record::p50_ns), ns_or_dash(idle, &Record::p99_ns), ns_or_dash(busy, &Record::p50_ns),
                        ns_or_dash(busy, &Record::p99_ns), busy && busy->ops > 0 ? fmt_rate(busy->ops_per_s) : "-"});
    cpu.rows.push_back({m, cpu_cell(quiet), cpu_cell(idle), cpu_cell(busy), kern_cell(idle), kern_cell(busy)});
  }
  out += "### Latency, submit → completion\n\n" + lat.str() + "\n";
  out += "### Receiver CPU (CPU-seconds per second) and kernel entries per call (every party)\n\n" + cpu.str() + "\n";
  for (const Plot& p : opt.plots)
    if (p.group == "wakeup") out += plot_markdown(p);
}

// ---- channels ---------------------------------------------------------------------------------

void channels_section(const Dataset& d, const RenderOptions& opt, std::string& out) {
  const auto rs = eval_records(d, "channels");
  if (rs.empty()) return;
  out += "## Channels on one server: are 64 vectors enough? (note §3.2)\n\n" + std::to_string(rs.size()) +
         " scenarios (`uipc bench channels`): one client thread, one server thread, N channels. Slots 0..63 own a "
         "vector each; more channels share vectors through the doorbell words (64 × 64 = 4096 slots per runtime). "
         "*every*: one call in flight per channel (N in flight); *fixed-64*: 64 calls in flight spread over all N "
         "channels (the same load at every N).\n\n";
  for (const auto& m : distinct_modes(rs)) {
    Table t{{"channels", "in flight", "calls/s", "p50", "p99", "kernel entries per call", "CPU (s/s)",
             "calls per caller: least / median"},
            {}};
    const Record* at64 = nullptr;
    const Record* last = nullptr;
    for (const Record* r : rs) {
      if (r->mode != m) continue;
      const double n = extra_of(*r, "channels", 0);
      if (n == 64) at64 = r;
      last = r;
      const double least = extra_of(*r, "least_calls_per_caller"), median = extra_of(*r, "median_calls_per_caller");
      t.rows.push_back({fmt("%.0f", n), std::to_string(r->inflight), fmt_rate(r->ops_per_s), fmt_ns(r->p50_ns), fmt_ns(r->p99_ns),
                        r->ops > 0 ? fmt_kernel(r->kernel_entries_per_op) : "-",
                        r->wall_s > 0 ? fmt("%.2f", r->cpu_s / r->wall_s) : "-",
                        std::isnan(least) || std::isnan(median) ? "-" : fmt("%.0f", least) + " / " + fmt("%.0f", median)});
    }
    out += "### Mode " + m + "\n\n" + t.str() + "\n";
    if (at64 && last && last != at64 && at64->ops_per_s > 0)
      out += "From 64 to " + fmt("%.0f", extra_of(*last, "channels", 0)) + " channels, throughput changes by " +
             fmt_ratio(last->ops_per_s / at64->ops_per_s) + ".\n\n";
  }
  for (const Plot& p : opt.plots)
    if (p.group == "channels") out += plot_markdown(p);
}

// ---- placement --------------------------------------------------------------------------------

void placement_section(const Dataset& d, const RenderOptions& opt, std::string& out) {
  const auto rs = eval_records(d, "placement");
  if (rs.empty()) return;
  out += "## Placement: which core answers a system call (note §3.2)\n\n" + std::to_string(rs.size()) +
         " scenarios (`uipc bench placement`): getppid through the kernel executor (hybrid wake-up, direct backend), "
         "placement *affine* (the registration's kernel core answers), *shared* (the kernel core or the caller's own "
         "runtime, whichever is idle, claims the buffer) or *local* (no kernel core: the caller answers itself), with 1 "
         "or 2 caller threads. Columns: calls in flight per caller.\n\n";
  std::vector<std::uint64_t> inflights;
  std::vector<std::pair<std::string, double>> rows;  // (placement, callers) in order
  for (const Record* r : rs) {
    if (std::find(inflights.begin(), inflights.end(), r->inflight) == inflights.end()) inflights.push_back(r->inflight);
    const std::pair<std::string, double> k{r->mode, extra_of(*r, "callers", 1)};
    if (std::find(rows.begin(), rows.end(), k) == rows.end()) rows.push_back(k);
  }
  std::sort(inflights.begin(), inflights.end());
  auto at = [&](const std::pair<std::string, double>& k, std::uint64_t n) -> const Record* {
    for (const Record* r : rs)
      if (r->mode == k.first && extra_of(*r, "callers", 1) == k.second && r->inflight == n) return r;
    return nullptr;
  };
  auto table = [&](const std::string& heading, const std::function<std::string(const Record&)>& cell) {
    Table t{{"placement, callers"}, {}};
    for (auto n : inflights) t.head.push_back(std::to_string(n));
    for (const auto& k : rows) {
      std::vector<std::string> row{k.first + ", " + fmt("%.0f", k.second) + (k.second == 1 ? " caller" : " callers")};
      for (auto n : inflights) {
        const Record* r = at(k, n);
        row.push_back(r ? cell(*r) : "-");
      }
      t.rows.push_back(std::move(row));
    }
    out += "### " + heading + "\n\n" + t.str() + "\n";
  };
  table("Throughput (calls per second, all callers)", [](const Record& r) { return fmt_rate(r.ops_per_s); });
  table("Latency, median (p50)", [](const Record& r) { return fmt_ns(r.p50_ns); });
  table("Share of calls the caller's own thread executed", [](const Record& r) {
    const double v = extra_of(r, "answered_by_caller");
    return std::isfinite(v) && r.ops > 0 ? fmt("%.1f%%", 100.0 * v) : std::string("-");
  });
  table("CPU used (CPU-seconds per second)", [](const Record& r) { return r.wall_s > 0 ? fmt("%.2f", r.cpu_s / r.wall_s) : std::string("-"); });
  for (const Plot& p : opt.plots)
    if (p.group == "placement") out += plot_markdown(p);
}

void eval_sections(const Dataset& d, const RenderOptions& opt, std::string& out) {
  wakeup_section(d, opt, out);
  channels_section(d, opt, out);
  placement_section(d, opt, out);
}

using Emit = std::function<void(Plot, const std::string&, const std::string&)>;

// Labelled ticks at the measured x values of a log₂ axis; a value within 30% of the last labelled
// one (65 after 64) gets no label of its own, so labels never overprint.
std::string log2_xtics(const std::vector<double>& xs) {
  std::string s = "set xtics (";
  double last = 0;
  bool first = true;
  for (double x : xs) {
    if (!first && x < last * 1.3) continue;
    s += (first ? "" : ", ") + gp_string(fmt("%.0f", x)) + " " + num(x);
    last = x;
    first = false;
  }
  return s + ")\nset xrange [" + num(xs.front() / 1.5) + ":" + num(xs.back() * 1.5) + "]\n";
}

// The sys group the reference comparison uses: the mmap (map+unmap) workload when there is one.
const Group* reference_sys_group(const std::vector<Group>& gs) {
  const Group* sys = nullptr;
  for (const Group& g : gs)
    if (g.scenario == "sys" && (!sys || (g.workload.find("mmap") != std::string::npos && sys->workload.find("mmap") == std::string::npos)))
      sys = &g;
  return sys;
}

}  // namespace

std::vector<const Record*> eval_records(const Dataset& d, const std::string& scenario) {
  std::vector<const Record*> out;
  for (const Record& r : d.records)
    if (r.scenario == scenario) out.push_back(&r);
  auto key = [&](const Record* r) {
    if (scenario == "wakeup") {
      const int w = r->workload == "idle" ? 0 : r->workload == "busy" ? 1 : r->workload == "quiet" ? 2 : 3;
      return std::make_tuple(0.0, wake_rank(r->mode), r->mode, 0.0, w, r->workload, r->inflight);
    }
    if (scenario == "channels")
      return std::make_tuple(0.0, r->mode == "every" ? 0 : r->mode == "fixed-64" ? 1 : 2, r->mode, extra_of(*r, "channels", 0), 0,
                             r->workload, r->inflight);
    return std::make_tuple(extra_of(*r, "callers", 1), placement_rank(r->mode), r->mode, 0.0, 0, r->workload, r->inflight);
  };
  std::stable_sort(out.begin(), out.end(), [&](const Record* a, const Record* b) { return key(a) < key(b); });
  return out;
}

std::string eval_summary_text(const Dataset& d) {
  std::vector<std::pair<std::string, std::string>> rows;
  const auto w = eval_records(d, "wakeup");
  for (const char* state : {"idle", "busy"}) {
    std::string v;
    for (const auto& m : distinct_modes(w))
      if (const Record* r = find_eval(w, m, state); r && r->ops > 0) v += (v.empty() ? "" : ", ") + m + " " + fmt_ns(r->p50_ns);
    if (!v.empty()) rows.push_back({std::string("wake-up p50, receiver ") + (state == std::string("idle") ? "asleep" : "busy"), v});
  }
  {
    std::string v;
    for (const auto& m : distinct_modes(w))
      if (const Record* r = find_eval(w, m, "quiet"); r && std::isfinite(extra_of(*r, "receiver_cpu_per_s")))
        v += (v.empty() ? "" : ", ") + m + " " + fmt("%.3f", extra_of(*r, "receiver_cpu_per_s"));
    if (!v.empty()) rows.push_back({"receiver CPU-s/s with no calls", v});
  }
  const auto c = eval_records(d, "channels");
  for (const auto& m : distinct_modes(c)) {
    const Record* at64 = nullptr;
    const Record* last = nullptr;
    for (const Record* r : c)
      if (r->mode == m) {
        if (extra_of(*r, "channels", 0) == 64) at64 = r;
        last = r;
      }
    if (at64 && last && last != at64) {
      // Whether every channel was served at the largest count: a starved channel shows in no rate.
      const double none = extra_of(*last, "callers_without_calls");
      const std::string served = std::isnan(none) ? ""
                                 : none == 0      ? " (every caller served)"
                                                  : " (" + fmt("%.0f", none) + " callers never served)";
      rows.push_back({"channels (" + m + "): 64 -> " + fmt("%.0f", extra_of(*last, "channels", 0)),
                      fmt_rate(at64->ops_per_s) + " -> " + fmt_rate(last->ops_per_s) + " calls/s" + served});
    }
  }
  const auto p = eval_records(d, "placement");
  for (double callers : {1.0, 2.0}) {
    std::string v;
    std::uint64_t n = 0;
    for (const Record* r : p)
      if (extra_of(*r, "callers", 1) == callers) n = std::max(n, r->inflight);
    for (const Record* r : p)
      if (extra_of(*r, "callers", 1) == callers && r->inflight == n)
        v += (v.empty() ? "" : ", ") + r->mode + " " + fmt_rate(r->ops_per_s);
    if (!v.empty())
      rows.push_back({"placement, " + fmt("%.0f", callers) + (callers == 1 ? " caller, " : " callers, ") + std::to_string(n) + " in flight",
                      v + " calls/s"});
  }
  if (rows.empty()) return {};
  std::string out = "Evaluation (docs/answers.md; the report has the tables and plots)\n";
  for (auto& [k, v] : rows) {
    std::string s = v;
    for (std::size_t i; (i = s.find("µ")) != std::string::npos;) s.replace(i, std::strlen("µ"), "u");
    char line[512];
    std::snprintf(line, sizeof line, "  %-42s %s\n", k.c_str(), s.c_str());
    out += line;
  }
  return out;
}

namespace {

// ReL4's published ratios (DESIGN §6) next to uipc's on the same axes: async ÷ sync against calls in flight.
void reference_plots(const Dataset& d, PlotData& pd, const Emit& emit) {
  const auto gs = groups(d);
  const Group* ipc = headline_group(gs);
  auto ratio_file = [&](const Group& g, const std::string& path, bool best_async) {
    std::string rows;
    std::vector<double> xs;
    double lo = INFINITY, hi = 0;
    for (auto n : g.inflights) {
      std::optional<double> r;
      std::string which = "async";
      if (!best_async) r = ratio(g, "async", "sync", n);
      else if (const auto b = best_async_ratio(g, "sync", n)) r = b->first, which = b->second;
      if (!r || !(*r > 0)) continue;
      rows += std::to_string(n) + " " + num(*r) + " " + which + "\n";
      xs.push_back(static_cast<double>(n));
      lo = std::min(lo, *r);
      hi = std::max(hi, *r);
    }
    if (!rows.empty())
      pd.files[path] = "# " + g.title() + ": " + (best_async ? "the best async mode" : "async") +
                       " ÷ sync throughput\n# inflight ratio mode\n" + rows;
    return std::make_tuple(!rows.empty(), xs, lo, hi);
  };
  auto settings = [](const Plot& p, std::vector<double> xs, double lo, double hi, const std::string& xlabel) {
    std::sort(xs.begin(), xs.end());
    xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
    return "set title " + gp_string(p.title) + "\nset xlabel " + gp_string(xlabel) +
           "\nset ylabel \"async throughput / sync throughput\"\nset logscale x 2\nset logscale y 10\n" + log2_xtics(xs) +
           "set yrange [" + num(std::min(lo, 0.2) / 1.3) + ":" + num(std::max(hi, 5.0) * 1.3) +
           "]\nset ytics (\"0.25\" 0.25, \"0.5\" 0.5, \"1\" 1, \"2\" 2, \"4\" 4, \"8\" 8, \"16\" 16)\nset grid xtics ytics\n"
           "set key outside top center horizontal\n";
  };
  if (ipc) {
    auto [ok, xs, lo, hi] = ratio_file(*ipc, "data/rel4-ipc-uipc.dat", false);
    if (ok) {
      pd.files["data/rel4-ipc-reference.dat"] =
          "# ReL4 (DESIGN §6): IPC async / sync at concurrency 1 and 32, and the crossover against the fast path\n"
          "# inflight no_fast_path fast_path\n1 0.77 0.29\n32 4.7 1.8\n8 NaN 1\n";
      Plot p;
      p.stem = "rel4-ipc";
      p.group = "reference";
      p.title = "IPC: async / sync throughput vs calls in flight, uipc and ReL4";
      p.caption = "uipc's async ÷ sync throughput (" + ipc->title() +
                  ", this data) and ReL4's published ratios (DESIGN §6: 0.77× / 0.29× at 1 in flight and 4.7× / 1.8× at "
                  "32, without / with the seL4 fast path; crossover against the fast path at 8) on the same axes. Above "
                  "the dotted line async is faster. ReL4 ran on a 100 MHz RISC-V FPGA: compare ratios, not times.";
      xs.push_back(1), xs.push_back(8), xs.push_back(32);
      emit(p, settings(p, xs, lo, hi, "calls in flight"),
           "\"data/rel4-ipc-uipc.dat\" using 1:2 with linespoints lw 2 pt 7 lc 1 title \"uipc async / sync\", \\\n"
           "     \"data/rel4-ipc-reference.dat\" using 1:2 with points pt 9 ps 2 lc 2 title \"ReL4 async / sync (no fast path)\", \\\n"
           "     \"data/rel4-ipc-reference.dat\" using 1:3 with points pt 11 ps 2 lc 4 title \"ReL4 async / sync (fast path)\", \\\n"
           "     1 with lines dt 3 lc rgb \"gray40\" title \"async = sync\"");
    }
  }
  if (const Group* sys = reference_sys_group(gs)) {
    auto [ok, xs, lo, hi] = ratio_file(*sys, "data/rel4-sys-uipc.dat", true);
    if (ok) {
      pd.files["data/rel4-sys-reference.dat"] =
          "# ReL4 (DESIGN §6): memory-allocation server (map+unmap), best async / sync\n# inflight ratio\n512 1.55\n";
      pd.files["data/rel4-sys-crossover.dat"] = "# ReL4 (DESIGN §6): async reaches sync between 16 and 32 in flight\n16 1\n32 1\n";
      Plot p;
      p.stem = "rel4-sys";
      p.group = "reference";
      p.title = "System calls: best async / sync throughput vs calls in flight, uipc and ReL4";
      p.caption = "uipc's best async mode ÷ the plain system call at each in-flight count (" + sys->title() +
                  ", this data; the mode is named in data/rel4-sys-uipc.dat) and ReL4's memory-allocation server (DESIGN "
                  "§6: 1.55× at 512 in flight; async reaches sync between 16 and 32, the thick segment) on the same axes.";
      xs.push_back(16), xs.push_back(32), xs.push_back(512);
      emit(p, settings(p, xs, lo, hi, "system calls in flight"),
           "\"data/rel4-sys-uipc.dat\" using 1:2 with linespoints lw 2 pt 7 lc 1 title \"uipc: best async / sync\", \\\n"
           "     \"data/rel4-sys-reference.dat\" using 1:2 with points pt 9 ps 2 lc 2 title \"ReL4: best async / sync\", \\\n"
           "     \"data/rel4-sys-crossover.dat\" using 1:2 with lines lw 6 lc 2 title \"ReL4: crossover between 16 and 32\", \\\n"
           "     1 with lines dt 3 lc rgb \"gray40\" title \"async = sync\"");
    }
  }
}

void eval_plots(const Dataset& d, PlotData& pd, const Emit& emit) {
  // wakeup: one data file, one row per mode.
  if (const auto rs = eval_records(d, "wakeup"); !rs.empty()) {
    const auto modes = distinct_modes(rs);
    std::string rows;
    double lo = INFINITY, hi = 0;
    bool any_lat = false;
    int i = 0;
    for (const auto& m : modes) {
      auto v = [&](const char* state, double Record::*f) -> double {
        const Record* r = find_eval(rs, m, state);
        if (!r || r->ops == 0 || !(r->*f > 0)) return NAN;
        lo = std::min(lo, r->*f);
        hi = std::max(hi, r->*f);
        any_lat = true;
        return r->*f;
      };
      auto c = [&](const char* state) -> double {
        const Record* r = find_eval(rs, m, state);
        return r ? extra_of(*r, "receiver_cpu_per_s") : NAN;
      };
      const double ip50 = v("idle", &Record::p50_ns), ip99 = v("idle", &Record::p99_ns), bp50 = v("busy", &Record::p50_ns),
                   bp99 = v("busy", &Record::p99_ns);
      rows += std::to_string(i++) + " " + file_safe(m) + " " + num(ip50) + " " + num(ip99) + " " + num(bp50) + " " + num(bp99) + " " +
              num(c("quiet")) + " " + num(c("idle")) + " " + num(c("busy")) + "\n";
    }
    pd.files["data/wakeup.dat"] =
        "# uipc bench wakeup: one row per mode\n# index mode idle_p50_ns idle_p99_ns busy_p50_ns busy_p99_ns "
        "quiet_cpu idle_cpu busy_cpu\n" + rows;
    const std::string xr = "set xrange [-0.6:" + num(static_cast<double>(modes.size()) - 0.4) + "]\nset xtics rotate by -30\n";
    if (any_lat) {
      Plot p;
      p.stem = "wakeup-latency";
      p.group = "wakeup";
      p.title = "Wake-up latency, submit to completion, by wake mode and receiver state";
      p.caption = "Median (filled) and 99th percentile (open) latency of one call (log scale) for each wake mode, with the "
                  "receiver asleep (idle) or already working (busy). Tick modes wait for the next tick; irq pays a futex "
                  "wake (this machine's stand-in for an IPI or SENDUIPI) whenever the receiver sleeps; hybrid and poll find "
                  "a busy receiver awake.";
      emit(p,
           "set title " + gp_string(p.title) + "\nset ylabel \"ns, submit to completion\"\nset logscale y 10\n" + xr +
               "set yrange [" + num(lo / 1.5) + ":" + num(hi * 1.5) + "]\n" + ns_ytics(lo / 1.5, hi * 1.5) +
               "set grid ytics\nset key outside top center horizontal\nset bmargin 6\n",
           "\"data/wakeup.dat\" using 1:3:xtic(2) with points pt 7 ps 1.6 lc 1 title \"idle: p50\", \\\n"
           "     \"data/wakeup.dat\" using 1:4 with points pt 6 ps 1.6 lc 1 title \"idle: p99\", \\\n"
           "     \"data/wakeup.dat\" using 1:5 with points pt 5 ps 1.6 lc 2 title \"busy: p50\", \\\n"
           "     \"data/wakeup.dat\" using 1:6 with points pt 4 ps 1.6 lc 2 title \"busy: p99\"");
    }
    Plot p;
    p.stem = "wakeup-cpu";
    p.group = "wakeup";
    p.title = "Receiver CPU by wake mode: no calls, sparse calls, back-to-back calls";
    p.caption = "CPU-seconds per second used by the receiver (the kernel core, or the IPC server thread) with no calls "
                "(quiet), one call per gap (idle) and calls back to back (busy). A tick costs CPU even when nothing "
                "arrives; irq costs nothing then; polling costs a core whenever it polls.";
    emit(p,
         "set title " + gp_string(p.title) + "\nset ylabel \"receiver CPU-seconds per second\"\n" +
             "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
             "set boxwidth 0.9\nset yrange [0:*]\nset xtics rotate by -30\nset grid ytics\n"
             "set key outside top center horizontal\nset bmargin 6\n",
         "\"data/wakeup.dat\" using 7:xtic(2) title \"quiet (no calls)\", \\\n"
         "     \"data/wakeup.dat\" using 8 title \"idle (sparse calls)\", \\\n"
         "     \"data/wakeup.dat\" using 9 title \"busy (back to back)\"");
  }

  // channels: one data file per mode.
  if (const auto rs = eval_records(d, "channels"); !rs.empty()) {
    std::vector<double> xs;
    std::string lines;
    int lc = 1;
    for (const auto& m : distinct_modes(rs)) {
      std::string rows;
      for (const Record* r : rs)
        if (r->mode == m && r->ops_per_s > 0) {
          const double n = extra_of(*r, "channels", 0);
          if (!(n > 0)) continue;
          xs.push_back(n);
          rows += num(n) + " " + std::to_string(r->inflight) + " " + num(r->ops_per_s) + " " + num(r->p50_ns) + " " + num(r->p99_ns) +
                  " " + num(r->kernel_entries_per_op) + "\n";
        }
      if (rows.empty()) continue;
      const std::string path = "data/channels-" + file_safe(m) + ".dat";
      pd.files[path] = "# uipc bench channels, mode " + m + "\n# channels inflight ops_per_s p50_ns p99_ns kernel_entries_per_call\n" + rows;
      lines += std::string(lines.empty() ? "" : ", \\\n     ") + gp_string(path) + " using 1:3 axes x1y1 with linespoints lw 2 pt 7 lc " +
               std::to_string(lc) + " title " + gp_string(m + ": calls/s") + ", \\\n     " + gp_string(path) +
               " using 1:4 axes x1y2 with linespoints lw 1.5 dt 2 pt 6 lc " + std::to_string(lc) + " title " + gp_string(m + ": p50 (right axis)");
      ++lc;
    }
    if (!lines.empty()) {
      std::sort(xs.begin(), xs.end());
      xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
      Plot p;
      p.stem = "channels-throughput";
      p.group = "channels";
      p.title = "Throughput and median latency vs channels on one server";
      p.caption = "Calls per second (left, log scale) and median latency (right, dashed) against the number of channels "
                  "served by one server thread (log₂). The dotted line marks 64: up to there each channel owns one of the "
                  "64 vectors; beyond, channels share vectors through the doorbell words.";
      emit(p,
           "set title " + gp_string(p.title) + "\nset xlabel \"channels on one server\"\nset ylabel \"calls per second\"\n"
           "set y2label \"p50 latency (ns)\"\nset logscale x 2\nset logscale y 10\nset logscale y2 10\n" + log2_xtics(xs) +
               "set ytics nomirror\nset y2tics\nset format y \"%.0s%c\"\nset grid xtics ytics\nset key outside top center horizontal\n"
               "set arrow 1 from 64, graph 0 to 64, graph 1 nohead dt 3 lc rgb \"gray40\"\n"
               "set label 1 \"64 vectors\" at 64, graph 0.05 offset 0.5, 0\n",
           lines);
    }
  }

  // placement: one data file per (placement, callers).
  if (const auto rs = eval_records(d, "placement"); !rs.empty()) {
    std::vector<double> xs;
    std::string lines;
    std::map<std::string, int> color;
    for (const Record* r : rs) color.emplace(r->mode, static_cast<int>(color.size()) + 1);
    std::set<std::pair<std::string, double>> done;
    for (const Record* first : rs) {
      const std::pair<std::string, double> k{first->mode, extra_of(*first, "callers", 1)};
      if (!done.insert(k).second) continue;
      std::string rows;
      for (const Record* r : rs)
        if (r->mode == k.first && extra_of(*r, "callers", 1) == k.second && r->ops_per_s > 0) {
          xs.push_back(static_cast<double>(r->inflight));
          rows += std::to_string(r->inflight) + " " + num(r->ops_per_s) + " " + num(r->p50_ns) + " " +
                  num(extra_of(*r, "answered_by_caller")) + "\n";
        }
      if (rows.empty()) continue;
      const std::string c = fmt("%.0f", k.second);
      const std::string path = "data/placement-" + file_safe(k.first) + "-" + c + "callers.dat";
      pd.files[path] = "# uipc bench placement: " + k.first + ", " + c + " caller thread(s)\n# inflight_per_caller ops_per_s p50_ns answered_by_caller\n" + rows;
      lines += std::string(lines.empty() ? "" : ", \\\n     ") + gp_string(path) + " using 1:2 with linespoints lw 2 pt 7 dt " +
               (k.second == 1 ? "1" : "2") + " lc " + std::to_string(color[k.first]) + " title " +
               gp_string(k.first + ", " + c + (k.second == 1 ? " caller" : " callers"));
    }
    if (!lines.empty()) {
      std::sort(xs.begin(), xs.end());
      xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
      Plot p;
      p.stem = "placement-throughput";
      p.group = "placement";
      p.title = "Async getppid throughput by placement vs calls in flight per caller";
      p.caption = "Calls per second (all callers, log scale) against calls in flight per caller (log₂) for each placement; "
                  "solid: 1 caller thread, dashed: 2. The share each caller's own thread answered is in the table above.";
      emit(p,
           "set title " + gp_string(p.title) + "\nset xlabel \"calls in flight per caller\"\nset ylabel \"calls per second\"\n"
           "set logscale x 2\nset logscale y 10\n" + log2_xtics(xs) +
               "set format y \"%.0s%c\"\nset grid xtics ytics\nset key outside right top vertical\n",
           lines);
    }
  }
}

}  // namespace

PlotData plot_specs(const Dataset& d) {
  PlotData pd;
  std::string body;
  std::set<std::string> used_files;
  // Each plot: drawn as PNG, then replotted as SVG.
  auto emit = [&](Plot p, const std::string& settings, const std::string& plot_lines) {
    body += "\n# " + p.title + "\n" + settings + "set terminal @png_terminal\nset output " + gp_string(p.stem + ".png") +
            "\nplot " + plot_lines + "\nset output\nset terminal @svg_terminal\nset output " + gp_string(p.stem + ".svg") +
            "\nreplot\nset output\nreset\n";
    pd.plots.push_back(std::move(p));
  };
  for (const Group& g : groups(d)) {
    // One data file per mode; "call" = one system call for sys (an op may be several), one round trip for IPC.
    std::map<std::string, std::string> file_of;
    for (const auto& m : g.modes) {
      std::string rows;
      for (auto n : g.inflights)
        if (const Record* r = g.find(m, n); r && r->ops_per_s > 0) {
          const double calls = static_cast<double>(r->calls_per_op);
          rows += std::to_string(n) + " " + num(r->ops_per_s) + " " + num(r->cost_ns() / calls) + " " +
                  num(r->kernel_entries_per_op / calls) + " " + num(r->caller_kernel_entries_per_op.value_or(NAN) / calls) + " " +
                  num(r->p50_ns) + " " + num(r->p99_ns) + "\n";
        }
      if (rows.empty()) continue;
      std::string path = "data/" + g.slug() + "-" + file_safe(m) + ".dat";
      for (int i = 2; used_files.count(path); ++i) path = "data/" + g.slug() + "-" + file_safe(m) + "-" + std::to_string(i) + ".dat";
      used_files.insert(path);
      pd.files[path] = "# " + g.title() + ", mode " + m +
                       "\n# inflight ops_per_s ns_per_call kernel_entries_per_call caller_kernel_entries_per_call p50_ns p99_ns\n" + rows;
      file_of[m] = path;
    }
    if (file_of.empty()) continue;
    auto ymax2 = [&](const std::vector<std::string>& modes, bool caller) {
      double m = 0;
      for (const auto& mode : modes)
        for (auto n : g.inflights)
          if (const Record* r = g.find(mode, n); r && r->ops_per_s > 0)
            m = std::max(m, (caller && r->caller_kernel_entries_per_op ? *r->caller_kernel_entries_per_op : r->kernel_entries_per_op) /
                                static_cast<double>(r->calls_per_op));
      return m > 0 ? m * 1.15 : 1.0;
    };

    // Cost vs in flight, sync against async, kernel entries on y2 — (a) for IPC, (c) for sys.
    // IPC: async and sync.  sys: sync, uring, and the three async modes with the highest geometric-mean
    // throughput over the in-flight counts they ran at (there may be many).
    std::vector<std::string> pair;
    std::vector<std::pair<double, std::string>> ranked;
    for (const auto& m : g.modes) {
      if (!file_of.count(m)) continue;
      if (!is_async(m)) {
        if (m == "sync" || (g.scenario != "ipc" && m == "uring")) pair.push_back(m);
        continue;
      }
      double log_sum = 0;
      int k = 0;
      for (auto n : g.inflights)
        if (const Record* r = g.find(m, n); r && r->ops_per_s > 0) log_sum += std::log(r->ops_per_s), ++k;
      ranked.push_back({k ? -log_sum / k : 0, m});
    }
    std::sort(ranked.begin(), ranked.end());
    std::vector<std::string> chosen_async;
    for (std::size_t i = 0; i < ranked.size() && i < 3; ++i) chosen_async.push_back(ranked[i].second);
    std::sort(chosen_async.begin(), chosen_async.end(), mode_before);
    pair.insert(pair.begin(), chosen_async.begin(), chosen_async.end());
    const bool top3 = ranked.size() > 3;
    if (!pair.empty() && (g.scenario == "ipc" || g.scenario == "sys")) {
      const bool ipc = g.scenario == "ipc";
      bool caller = false;
      for (const auto& m : pair)
        for (auto n : g.inflights)
          if (const Record* r = g.find(m, n); r && r->caller_kernel_entries_per_op) caller = true;
      Plot p;
      p.stem = "cost-" + g.slug();
      p.group = g.slug();
      p.title = (ipc ? "IPC cost per call vs calls in flight, async vs sync (" : "System-call cost vs calls in flight, async vs sync (") +
                g.title() + ")";
      p.caption = std::string("Cost of one ") + (ipc ? "call" : "system call") +
                  " (10⁹ / throughput, log scale, left axis) against the number kept in flight (log₂), for " +
                  (pair.size() == 2 ? pair[0] + " and " + pair[1] : "the modes " + [&] {
                    std::string s;
                    for (const auto& m : pair) s += (s.empty() ? "" : ", ") + m;
                    return s;
                  }()) +
                  (top3 ? " (the three async modes with the highest geometric-mean throughput, of " + std::to_string(ranked.size()) + ")"
                        : std::string()) +
                  "; dashed lines: " + (caller ? "the caller's kernel entries" : "kernel entries") + " per " +
                  (ipc ? "call" : "system call") + " (right axis). The reference implementation's " +
                  (ipc ? "IPC figure" : "memory-allocation (map+unmap) figure") + " uses the same axes." +
                  (!ipc && g.at.begin()->second->calls_per_op > 1
                       ? " One operation is " + std::to_string(g.at.begin()->second->calls_per_op) + " system calls; the plot is per system call."
                       : std::string());
      std::string b = "set title " + gp_string(p.title) + "\nset xlabel \"" + (ipc ? "calls in flight" : "system calls in flight") +
                      "\"\nset ylabel \"ns per " + (ipc ? "call" : "system call") + " (10^9 / throughput)\"\nset y2label \"" +
                      (caller ? "caller's kernel entries per system call" : ipc ? "kernel entries per call" : "kernel entries per system call") +
                      "\"\nset logscale x 2\nset logscale y 10\n" + xtics(g) + xrange(g) +
                      "set ytics nomirror\nset y2tics\nset y2range [0:" + num(ymax2(pair, caller)) +
                      "]\nset grid xtics ytics\nset key outside top center horizontal\n";
      double lo = INFINITY, hi = 0;
      for (const auto& m : pair)
        for (auto n : g.inflights)
          if (const Record* r = g.find(m, n); r && r->ops_per_s > 0) {
            lo = std::min(lo, r->cost_ns() / static_cast<double>(r->calls_per_op));
            hi = std::max(hi, r->cost_ns() / static_cast<double>(r->calls_per_op));
          }
      if (hi > 0) b += "set yrange [" + num(lo / 1.25) + ":" + num(hi * 1.25) + "]\n" + ns_ytics(lo / 1.25, hi * 1.25);
      int lc = 1;
      std::string lines;
      for (const auto& m : pair) {
        lines += std::string(lines.empty() ? "" : ", \\\n     ") + gp_string(file_of[m]) +
                 " using 1:3 axes x1y1 with linespoints lw 2 pt 7 lc " + std::to_string(lc) + " title " + gp_string(m + (ipc ? ": ns per call" : ": ns per system call"));
        lines += ", \\\n     " + gp_string(file_of[m]) + " using 1:" + (caller ? "5" : "4") +
                 " axes x1y2 with linespoints lw 1.5 dt 2 pt 6 lc " + std::to_string(lc) + " title " + gp_string(m + ": kernel entries");
        ++lc;
      }
      emit(p, b, lines);
    }

    // (b) throughput vs in flight, every mode (IPC only; sys gets it when it has several modes).
    if (g.scenario == "ipc" || file_of.size() > 2) {
      Plot p;
      p.stem = "throughput-" + g.slug();
      p.group = g.slug();
      p.title = "Throughput vs calls in flight, every mode (" + g.title() + ")";
      p.caption = "Round trips per second (log scale) against the number kept in flight (log₂) for every mode measured; "
                  "`ring` is the machine's limit (busy-polling shared memory, no system calls).";
      if (g.scenario != "ipc") p.caption = "Operations per second (log scale) against the number kept in flight (log₂) for every mode measured.";
      std::string b = "set title " + gp_string(p.title) + "\nset xlabel \"in flight\"\nset ylabel \"" +
                      (g.scenario == "ipc" ? "round trips per second" : "operations per second") +
                      "\"\nset logscale x 2\nset logscale y 10\n" + xtics(g) + xrange(g) +
                      "set grid xtics ytics\nset key outside right top vertical\nset format y \"%.0s%c\"\n";
      int lc = 1;
      std::string lines;
      for (const auto& m : g.modes) {
        if (!file_of.count(m)) continue;
        lines += std::string(lines.empty() ? "" : ", \\\n     ") + gp_string(file_of[m]) + " using 1:2 with linespoints lw 2 pt " +
                 std::to_string((lc - 1) % 13 + 1) + " lc " + std::to_string(lc) + " title " + gp_string(m);
        ++lc;
      }
      emit(p, b, lines);
    }
  }
  reference_plots(d, pd, emit);
  eval_plots(d, pd, emit);
  if (pd.plots.empty()) return pd;

  std::string script =
      "# Generated by `uipc report`: draws " + std::to_string(pd.plots.size()) +
      " plots from the files in data/. Run it in this directory: gnuplot plots.gp\n"
      "if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
      "  png_terminal = \"pngcairo size 1100,700 noenhanced font 'sans,10'\"\n"
      "} else {\n"
      "  png_terminal = \"png size 1100,700 noenhanced\"\n"
      "}\n"
      "svg_terminal = \"svg size 1100,700 noenhanced font 'sans,11' background rgb 'white'\"\n";
  script += body;
  pd.script = script;
  return pd;
}

// ---- I/O ----------------------------------------------------------------------------------------

namespace {

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : std::string();
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string cand = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(cand.c_str(), X_OK) == 0) return cand;
  }
  return {};
}

void write_file(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write '" + tmp.string() + "': " + std::strerror(errno));
    f << text;
    f.flush();
    if (!f) throw std::runtime_error("write to '" + tmp.string() + "' failed");
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  if (ec) throw std::runtime_error("cannot rename '" + tmp.string() + "' to '" + p.string() + "': " + ec.message());
}

// Runs `prog plots.gp` in `dir`, stdout and stderr into dir/gnuplot.log.  Returns "" on success,
// else why not.
std::string run_gnuplot(const std::string& prog, const fs::path& dir) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  std::unique_ptr<posix_spawn_file_actions_t, int (*)(posix_spawn_file_actions_t*)> guard(&fa, posix_spawn_file_actions_destroy);
  const std::string log = (dir / "gnuplot.log").string();
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
  std::string script = "plots.gp";
  std::vector<char*> argv{const_cast<char*>(prog.c_str()), script.data(), nullptr};
  pid_t pid = -1;
  if (const int e = posix_spawn(&pid, prog.c_str(), &fa, nullptr, argv.data(), environ); e != 0)
    return "could not start " + prog + ": " + std::strerror(e);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return std::string("waitpid: ") + std::strerror(errno);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  std::string first_error;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);)
    if (line.find("rror") != std::string::npos) {
      first_error = line;
      break;
    }
  return "gnuplot failed (" + (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status)) : std::string("killed by a signal")) +
         ")" + (first_error.empty() ? "" : ": " + first_error) + "; see " + log;
}

}  // namespace

WriteResult write_report(const Dataset& d, const std::string& dir_s, const WriteOptions& opt) {
  const fs::path dir(dir_s);
  std::error_code ec;
  fs::create_directories(dir / "data", ec);
  if (ec) throw std::runtime_error("cannot create '" + (dir / "data").string() + "': " + ec.message());

  WriteResult res;
  PlotData pd = plot_specs(d);
  // Plots and data of an earlier report in this directory go first (only when plots.gp says the
  // directory is ours), so that nothing stale is left next to this report.
  {
    std::ifstream old_script(dir / "plots.gp");
    std::string first;
    std::getline(old_script, first);
    if (first.rfind("# Generated by `uipc report`", 0) == 0) {
      std::vector<fs::path> stale{dir / "plots.gp", dir / "gnuplot.log"};
      for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string(), ext = it->path().extension().string();
        bool ours = false;
        for (const char* prefix : {"cost-", "throughput-", "rel4-", "wakeup-", "channels-", "placement-"}) ours |= name.rfind(prefix, 0) == 0;
        if (ours && (ext == ".png" || ext == ".svg"))
          stale.push_back(it->path());
      }
      for (fs::directory_iterator it(dir / "data", ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ".dat") stale.push_back(it->path());
      for (const auto& p : stale) fs::remove(p, ec);
    }
  }
  for (const auto& [rel, text] : pd.files) write_file(dir / rel, text);
  if (!pd.script.empty()) write_file(dir / "plots.gp", pd.script);
  for (const Plot& p : pd.plots)
    for (const char* ext : {".png", ".svg"}) fs::remove(dir / (p.stem + ext), ec);

  RenderOptions ro;
  if (pd.plots.empty()) {
    ro.plots_note = d.records.empty() ? "" : "none drawn: the input has no IPC or sys results with a positive throughput.";
  } else if (!opt.plots) {
    ro.plots_note = "not drawn (plots were turned off); `gnuplot plots.gp` in this directory draws them.";
  } else if (const std::string prog = find_program(opt.gnuplot); prog.empty()) {
    ro.plots_note = "not drawn: " + opt.gnuplot +
                    " was not found on PATH. Install it (Debian: `apt-get install gnuplot-nox`) and rerun `uipc report`, or run "
                    "`gnuplot plots.gp` in this directory.";
  } else if (std::string why = run_gnuplot(prog, dir); !why.empty()) {
    ro.plots_note = "not drawn: " + why + ".";
  }
  for (Plot& p : pd.plots) {
    const fs::path png = dir / (p.stem + ".png"), svg = dir / (p.stem + ".svg");
    p.made = fs::exists(png, ec) && fs::file_size(png, ec) > 0 && fs::exists(svg, ec) && fs::file_size(svg, ec) > 0;
    if (p.made) {
      res.plot_files.push_back(png.string());
      res.plot_files.push_back(svg.string());
    } else if (ro.plots_note.empty()) {
      ro.plots_note = "gnuplot ran but did not write " + p.stem + ".png and .svg; see gnuplot.log.";
    }
  }
  ro.plots = pd.plots;
  res.plots_note = ro.plots_note;
  res.report_md = (dir / "report.md").string();
  write_file(dir / "report.md", render_markdown(d, ro));
  return res;
}

Dataset load_files(const std::vector<std::string>& files, const char* who) {
  Dataset d;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open '" + f + "': " + std::strerror(errno));
    read_jsonl(in, f, d, [who](const BadLine& b) {
      std::fprintf(stderr, "%s: %s: skipped: %s\n", who, b.where.c_str(), b.reason.c_str());
    });
    if (in.bad()) throw std::runtime_error("read error in '" + f + "'");
  }
  finish(d);
  return d;
}

// ---- `uipc report` ----------------------------------------------------------------------------

namespace {

struct ReportOptions {
  std::vector<std::string> in;
  std::string out = "results/report";
  bool no_plots = false;
};

std::vector<std::string> json_files_in(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto ext = it->path().extension();
    if ((ext == ".json" || ext == ".jsonl") && it->is_regular_file(ec)) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void run_report(const ReportOptions& o) {
  std::vector<std::string> files;
  if (o.in.empty()) {
    files = json_files_in("results");
    if (files.empty())
      throw std::runtime_error("no input: results/ holds no *.json or *.jsonl files; run 'uipc demo' or 'uipc bench all' first, "
                               "or name files with --in");
  }
  for (const auto& p : o.in) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      const auto inside = json_files_in(p);
      if (inside.empty()) throw CLI::ValidationError("--in: directory '" + p + "' holds no *.json or *.jsonl files", 2);
      files.insert(files.end(), inside.begin(), inside.end());
    } else {
      files.push_back(p);
    }
  }
  const Dataset d = load_files(files);
  std::printf("uipc report: read %zu %s, %zu lines: %zu used, %zu skipped, %zu superseded", d.inputs.size(),
              d.inputs.size() == 1 ? "file" : "files", d.lines, d.records.size(), d.bad.size(), d.superseded);
  if (d.other_rounds != 0) std::printf(", %zu other rounds (each scenario's median round is used)", d.other_rounds);
  std::printf("\n");
  if (d.records.empty()) std::printf("uipc report: no valid result lines; the report says so\n");
  WriteOptions wo;
  wo.plots = !o.no_plots;
  const WriteResult w = write_report(d, o.out, wo);
  std::printf("uipc report: wrote %s\n", w.report_md.c_str());
  if (!w.plots_note.empty()) std::printf("uipc report: plots %s\n", w.plots_note.c_str());
  for (const auto& f : w.plot_files) std::printf("uipc report: plot %s\n", f.c_str());
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  CLI::App* r = app.add_subcommand(
      "report",
      "Turn benchmark results (JSON lines from 'uipc bench ...' or 'uipc demo') into a Markdown report with "
      "tables, async-over-baseline ratios, a comparison with ReL4's published figures, and gnuplot plots.  "
      "Bad lines are skipped with a warning; the report is made from the rest.");
  r->add_option("--in", o->in, "Result files (JSON lines) or directories of *.json/*.jsonl (default: results/*.json, results/*.jsonl)")
      ->type_name("FILE")
      ->expected(1, -1)
      ->check(CLI::ExistingPath);
  r->add_option("--out", o->out, "Directory for report.md, the plots and their data (default: results/report)")->type_name("DIR");
  r->add_flag("--no-plots", o->no_plots, "Do not run gnuplot (the data files and plots.gp are still written)");
  r->footer("Example: uipc report --in results/demo.jsonl --out results/report\nSee docs/report.md.");
  r->callback([o] { run_report(*o); });
}

}  // namespace uipc::bench::report
