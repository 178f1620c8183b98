// uipc/notify/counters.hpp — the counters every layer keeps (DESIGN §4).
//
// Invariants: each Counters object has one writer (the thread that owns it: a runtime's thread,
// an executor core); others may read at any time. Increments are relaxed load + relaxed store,
// not read-modify-write, so the hot path pays no locked instruction; readers see a value that
// is at most a few increments stale.
#pragma once

#include <atomic>
#include <cstdint>

namespace uipc {

struct Counter {
  std::atomic<std::uint64_t> v{0};
  void add(std::uint64_t n = 1) noexcept { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

struct CounterSnapshot {
  std::uint64_t sent, suppressed, kernel_entries, sleeps, spins, yields, switches, ring_full_waits, interrupts,
      backstops, short_sleeps;
  CounterSnapshot operator-(const CounterSnapshot& o) const {
    return {sent - o.sent, suppressed - o.suppressed, kernel_entries - o.kernel_entries, sleeps - o.sleeps,
            spins - o.spins, yields - o.yields, switches - o.switches, ring_full_waits - o.ring_full_waits,
            interrupts - o.interrupts, backstops - o.backstops, short_sleeps - o.short_sleeps};
  }
};

struct Counters {
  Counter sent;             // notifications raised (bit set on a peer's notification word)
  Counter suppressed;       // publishes that needed no notification: the consumer was not armed
  Counter kernel_entries;   // futex wakes and waits, sched_yield, any other syscall made for IPC
  Counter sleeps;           // futex sleeps of the idle loop
  Counter spins;            // idle-loop spin iterations that found nothing
  Counter yields;           // sched_yield calls of the idle loop
  Counter switches;         // coroutine resumptions by the scheduler
  Counter ring_full_waits;  // times a producer waited for ring space
  Counter interrupts;       // pending words taken with at least one bit set
  Counter backstops;        // sleeps that ended by the backstop timeout and polled every ring
  Counter short_sleeps;     // sleeps that a send ended within RuntimeOptions::short_sleep_ns (the spin
                            // window was too short: adaptive_spin doubles it)

  CounterSnapshot snapshot() const noexcept {
    return {sent.get(), suppressed.get(), kernel_entries.get(), sleeps.get(), spins.get(),
            yields.get(), switches.get(), ring_full_waits.get(), interrupts.get(), backstops.get(),
            short_sleeps.get()};
  }
};

}  // namespace uipc
