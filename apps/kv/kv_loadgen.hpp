// apps/kv/kv_loadgen.hpp — the load generator behind `uipc bench kv`: one server process and
// N client processes, forked for each scenario.
//
// One scenario: fork the server (it preloads `keys` keys of `value_bytes` bytes, listens on a
// fresh socket path, serves with ONE server thread: UipcServer or TwinServer), then fork
// `connections` client processes; each opens one connection (a uipc channel, or one Unix
// stream socket to the twin) and keeps `inflight` requests in flight on it: uipc clients run
// `inflight` coroutines on their Runtime, each calling in a loop; twin clients pipeline
// `inflight` framed requests and send a new one for every response (one write per batch of
// responses read). Requests are gets (get_percent %) and puts of uniformly random keys of the
// preloaded key space; every response is checked (status ok, value length and bytes).
// All clients start together; calls completing within [warm-up end, warm-up end + seconds)
// count. ops/s = counted calls / seconds; latency = per call, from just before its request is
// sent to just after its response is read, merged over all clients.
//
// Who may call: a process with no other threads running (it forks; the children use uipc).
// What blocks: run_load, for about warm-up + seconds (+ set-up); every wait has a deadline:
// a process that hangs is killed and the scenario fails with a message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace uipc::apps::kv {

inline constexpr unsigned kMaxConnections = 256;
inline constexpr unsigned kMaxLoadInflight = 1024;

struct LoadParams {
  std::string mode = "uipc";   // "uipc" or "uds-epoll"
  unsigned connections = 1;    // client processes, one connection each (1 .. kMaxConnections)
  unsigned inflight = 8;       // requests in flight per connection (1 .. kMaxLoadInflight)
  double seconds = 1.0;        // measured interval
  double warmup_s = 0.1;       // before it, not counted
  std::size_t value_bytes = 64;
  std::size_t keys = 10000;
  unsigned get_percent = 90;
  std::vector<int> cpus;       // [0]: the server; the rest, round robin: the clients; empty: unpinned
  // uipc runtime options (RuntimeOptions): -1 leaves the library default.
  std::int64_t server_spin_ns = -1;  // the server runtime's spin window before it sleeps
  std::int64_t client_spin_ns = -1;  // each client runtime's spin window before it yields / sleeps
  long client_yields = -1;           // each client runtime's sched_yield calls before it sleeps
  long server_yields = -1;           // the server runtime's sched_yield calls before it sleeps
  std::string socket_dir = "/tmp";
};

struct LoadResult {
  bool ok = false;
  std::string error;           // when !ok: what went wrong, with the process that saw it
  std::uint64_t ops = 0, gets = 0, puts = 0;
  double wall_s = 0;
  double p50_ns = 0, p99_ns = 0;
  std::uint64_t kernel_entries = 0;  // server + clients, during the measured interval
  double cpu_s = 0;                  // server + clients process CPU, during the measured interval
  double server_cpu_s = 0;
  // Context switches during the measured interval (getrusage: all threads of the process):
  // voluntary (blocked in a futex wait, read, epoll_wait ...) and involuntary (preempted).
  std::uint64_t server_csw = 0, server_csw_invol = 0;
  std::uint64_t client_csw = 0, client_csw_invol = 0;  // summed over the client processes
  double csw_per_op() const {
    return ops ? static_cast<double>(server_csw + server_csw_invol + client_csw + client_csw_invol) / static_cast<double>(ops) : 0;
  }
  double ops_per_s() const { return wall_s > 0 ? static_cast<double>(ops) / wall_s : 0; }
  double kernel_entries_per_op() const { return ops ? static_cast<double>(kernel_entries) / static_cast<double>(ops) : 0; }
};

// Checks the parameters: empty string when valid, else what is wrong.
std::string check_params(const LoadParams& p);
LoadResult run_load(const LoadParams& p);

}  // namespace uipc::apps::kv
