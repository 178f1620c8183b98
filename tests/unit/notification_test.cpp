#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <string>
#include <set>
#include <thread>
#include <vector>

#include "uipc/notify/futex.hpp"
#include "uipc/notify/notification.hpp"

using namespace uipc;

TEST(Notification, SendTakeDeliversEverySlotOnce) {
  auto n = Notification::create();
  ASSERT_TRUE(n);
  Counters c;
  std::set<std::uint32_t> want = {0, 1, 63, 64, 65, 127, 4095, 2048};
  for (auto s : want) EXPECT_FALSE(n->mint(s).send(c));  // receiver running: no kernel entry
  EXPECT_EQ(c.sent.get(), want.size());
  EXPECT_EQ(c.kernel_entries.get(), 0u);
  std::set<std::uint32_t> got;
  EXPECT_EQ(n->take([&](std::uint32_t s) { EXPECT_TRUE(got.insert(s).second); }), want.size());
  EXPECT_EQ(got, want);
  EXPECT_EQ(n->take([](std::uint32_t) { FAIL(); }), 0u);
  EXPECT_EQ(n->peek(), 0u);
}

TEST(Notification, RepeatedSendsCoalesceLikeAnInterruptLine) {
  auto n = Notification::create();
  Counters c;
  for (int i = 0; i < 5; ++i) n->mint(7).send(c);
  int hits = 0;
  n->take([&](std::uint32_t s) {
    EXPECT_EQ(s, 7u);
    ++hits;
  });
  EXPECT_EQ(hits, 1);
}

TEST(Notification, WaitReturnsAtOnceWhenPending) {
  auto n = Notification::create();
  Counters c;
  n->mint(3).send(c);
  EXPECT_FALSE(n->wait(-1, c));  // did not sleep
  EXPECT_EQ(c.sleeps.get(), 0u);
}

TEST(Notification, WaitTimesOut) {
  auto n = Notification::create();
  Counters c;
  EXPECT_TRUE(n->wait(1'000'000, c));
  EXPECT_EQ(c.sleeps.get(), 1u);
  EXPECT_EQ(n->word()->state.load(), static_cast<std::uint32_t>(uipc::abi::ReceiverState::running));
}

// True while thread `tid` of this process sits in futex(2) (/proc/self/task/TID/syscall starts
// with the system call's number while it is blocked in one).
bool blocked_in_futex(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long nr = -1;
  return (f >> nr) && nr == SYS_futex;
}

// Waits until the thread that stores its tid in `tid` has started and is blocked in futex(2).
void wait_until_blocked(const std::atomic<pid_t>& tid) {
  while (tid.load() == 0) std::this_thread::yield();
  while (!blocked_in_futex(tid.load())) std::this_thread::sleep_for(std::chrono::microseconds(100));
}

TEST(Notification, SleepingReceiverIsWokenBySendWithOneKernelEntry) {
  auto n = Notification::create();
  Counters rc, sc;
  std::atomic<pid_t> tid{0};
  std::thread receiver([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    while (n->peek() == 0) n->wait(-1, rc);
  });
  // Wait until it is blocked in the kernel (announcing sleep is not enough: a send between the
  // announcement and the re-check is rightly seen by the re-check), then send.
  wait_until_blocked(tid);
  EXPECT_TRUE(n->mint(9).send(sc));
  receiver.join();
  EXPECT_EQ(sc.kernel_entries.get(), 1u);
  EXPECT_GE(rc.sleeps.get(), 1u);
}

TEST(Notification, ManySendersNoLostWakeups) {
  // Senders on other threads, a receiver that sleeps whenever it sees nothing: every round's
  // send must end the receiver's wait (a lost wake-up would hang this test).
  auto n = Notification::create();
  constexpr int kRounds = 2000;
  std::atomic<int> round{0};
  std::thread receiver([&] {
    Counters c;
    for (int r = 0; r < kRounds; ++r) {
      unsigned got = 0;
      while (got == 0) {
        got = n->take([](std::uint32_t) {});
        if (got == 0) n->wait(-1, c);
      }
      round.store(r + 1, std::memory_order_release);
    }
  });
  std::thread sender([&] {
    Counters c;
    for (int r = 0; r < kRounds; ++r) {
      n->mint(static_cast<std::uint32_t>(r % 4096)).send(c);
      while (round.load(std::memory_order_acquire) <= r) std::this_thread::yield();
    }
  });
  sender.join();
  receiver.join();
  EXPECT_EQ(round.load(), kRounds);
}

// A peer's view: the control line and the hints through their fds, as a client gets them.
Result<Notification> attach_peer(const Notification& n) {
  return Notification::attach(::dup(n.control_fd()), ::dup(n.hints_fd()));
}

TEST(Notification, AttachValidatesTheWord) {
  auto n = Notification::create();
  ASSERT_TRUE(n);
  auto a = attach_peer(*n);
  ASSERT_TRUE(a) << a.error().message();
  RaiseFlag flag{0};  // stands for a flag in a channel region both sides map
  n->watch(5, &flag);
  Counters c;
  a->mint_remote(5, &flag).send(c);
  EXPECT_NE(n->peek(), 0u);
  std::vector<std::uint32_t> got;
  n->take([&](std::uint32_t s) { got.push_back(s); });
  EXPECT_EQ(got, std::vector<std::uint32_t>{5});
  // An attached notification has no receiver side: it mints nothing of its own.
  EXPECT_FALSE(a->mint(5));
  // Corrupt magic: refused (the owner may still write its control line).
  n->word()->magic = 0;
  auto bad = attach_peer(*n);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), std::errc::invalid_argument);
  // Not a memfd at all.
  auto notmem = Notification::attach(::dup(0), ::dup(0));
  EXPECT_FALSE(notmem);
}

TEST(Notification, PeersCannotWriteTheControlLine) {
  auto n = Notification::create();
  ASSERT_TRUE(n);
  // Not writable through any new mapping, not even the owner's own fd, nor through write(2).
  EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, n->control_fd(), 0), MAP_FAILED);
  auto rw = Region::attach(::dup(n->control_fd()), sizeof(uipc::abi::NotificationWord));
  ASSERT_FALSE(rw);
  EXPECT_EQ(rw.error(), std::errc::operation_not_permitted);
  const std::uint32_t zero = 0;
  EXPECT_EQ(::pwrite(n->control_fd(), &zero, sizeof zero, 0), -1);
  // A peer's read-only mapping cannot be made writable.
  auto a = attach_peer(*n);
  ASSERT_TRUE(a);
  EXPECT_NE(::mprotect(a->word(), 4096, PROT_READ | PROT_WRITE), 0);
  // The owner's own mapping stays writable.
  n->word()->service.store(1);
  EXPECT_EQ(a->word()->service.load(), 1u);
}

TEST(Notification, ForgedHintsRaiseNoSlot) {
  // A hostile peer sets every hint bit it can write; no watched slot is dispatched, because no
  // slot's raise flag was set (each lives in memory the hostile peer does not map).
  auto n = Notification::create();
  ASSERT_TRUE(n);
  auto hostile = attach_peer(*n);
  ASSERT_TRUE(hostile);
  RaiseFlag f7{0}, f70{0};
  n->watch(7, &f7);
  n->watch(70, &f70);
  hostile->hints()->pending.store(~std::uint64_t{0});
  for (auto& d : hostile->hints()->doorbell) d.store(~std::uint64_t{0});
  EXPECT_EQ(n->take([](std::uint32_t s) { ADD_FAILURE() << "slot " << s << " dispatched without a raise"; }), 0u);
  // A real raise still gets through, and only it.
  Counters c;
  hostile->hints()->pending.store(~std::uint64_t{0});
  n->mint_remote(70, &f70).send(c);
  std::vector<std::uint32_t> got;
  n->take([&](std::uint32_t s) { got.push_back(s); });
  EXPECT_EQ(got, std::vector<std::uint32_t>{70});
}

TEST(Notification, ClearedHintsDoNotLoseARaise) {
  // A raise whose hint bits a hostile peer cleared is found by the receiver's pre-sleep scan:
  // wait() does not sleep, and the next take() dispatches the slot.
  auto n = Notification::create();
  ASSERT_TRUE(n);
  auto hostile = attach_peer(*n);
  ASSERT_TRUE(hostile);
  RaiseFlag f{0};
  n->watch(130, &f);
  Counters c;
  hostile->mint_remote(130, &f).send(c);
  hostile->hints()->pending.store(0);
  for (auto& d : hostile->hints()->doorbell) d.store(0);
  EXPECT_FALSE(n->wait(5'000'000'000, c));  // would sleep 5 s if the raise were lost
  std::vector<std::uint32_t> got;
  n->take([&](std::uint32_t s) { got.push_back(s); });
  EXPECT_EQ(got, std::vector<std::uint32_t>{130});
  // Unwatched slots are not scanned.
  n->unwatch(130);
  f.store(1);
  EXPECT_TRUE(n->wait(1'000'000, c));
}

TEST(Notification, PeerWakesASleepingReceiverThroughItsReadOnlyMapping) {
  auto n = Notification::create();
  ASSERT_TRUE(n);
  auto peer = attach_peer(*n);
  ASSERT_TRUE(peer);
  RaiseFlag f{0};
  n->watch(9, &f);
  Counters rc, sc;
  std::atomic<unsigned> taken{0};
  std::atomic<pid_t> tid{0};
  std::thread receiver([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    while (taken.load() == 0) {
      taken += n->take([](std::uint32_t) {});
      if (taken.load() == 0) n->wait(-1, rc);
    }
  });
  wait_until_blocked(tid);
  EXPECT_TRUE(peer->mint_remote(9, &f).send(sc));
  receiver.join();
  EXPECT_EQ(taken.load(), 1u);
  EXPECT_EQ(sc.kernel_entries.get(), 1u);
}

TEST(Region, RefusesUnsealedAndShortMemory) {
  auto r = Region::create(100);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size() % 4096, 0u);
  auto tooshort = Region::attach(::dup(r->fd()), r->size() + 1);
  ASSERT_FALSE(tooshort);
  EXPECT_EQ(tooshort.error(), std::errc::message_size);
  const int raw = ::memfd_create("unsealed", MFD_CLOEXEC);
  ASSERT_GE(raw, 0);
  ASSERT_EQ(::ftruncate(raw, 4096), 0);
  auto unsealed = Region::attach(raw, 64);
  ASSERT_FALSE(unsealed);
  EXPECT_EQ(unsealed.error(), std::errc::operation_not_permitted);
  EXPECT_FALSE(Region::create(0));
  // The creator's seals hold: nobody can shrink it.
  EXPECT_NE(::ftruncate(r->fd(), 0), 0);
}

TEST(Futex, WaitOnChangedValueReturnsEagain) {
  std::atomic<std::uint32_t> w{1};
  EXPECT_EQ(futex::wait(&w, 0, -1), -EAGAIN);
  EXPECT_EQ(futex::wait(&w, 1, 1000), -ETIMEDOUT);
  EXPECT_EQ(futex::wake(&w, 1), 0);
}
