// Pieces the system-call tests share: a pipe, and executor options for one combination of wake
// mode, placement and backend (the parameter of the per-mode suites).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <tuple>

#include "uipc/sys/executor.hpp"

namespace uipc::test {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int p[2];
    if (::pipe(p) != 0) std::abort();
    r = p[0];
    w = p[1];
  }
  ~Pipe() {
    ::close(r);
    ::close(w);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
};

using Combo = std::tuple<sys::WakeMode, sys::Placement, sys::Backend>;

// One kernel core (when the placement has any) and a 200 us tick, which keeps tick-mode round
// trips short.
inline sys::ExecutorOptions combo_options(const Combo& c) {
  sys::ExecutorOptions o;
  o.wake = std::get<0>(c);
  o.placement = std::get<1>(c);
  o.backend = std::get<2>(c);
  o.cores = 1;
  o.tick_ns = 200'000;
  return o;
}

}  // namespace uipc::test
