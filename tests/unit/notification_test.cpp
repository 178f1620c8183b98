#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <thread>

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

TEST(Notification, SleepingReceiverIsWokenBySendWithOneKernelEntry) {
  auto n = Notification::create();
  Counters rc, sc;
  std::thread receiver([&] {
    while (n->peek() == 0) n->wait(-1, rc);
  });
  // Wait until it sleeps, then send.
  while (n->word()->state.load() != static_cast<std::uint32_t>(uipc::abi::ReceiverState::sleeping)) std::this_thread::yield();
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

TEST(Notification, AttachValidatesTheWord) {
  auto n = Notification::create();
  // A second view of the same word through its fd.
  auto a = Notification::attach(::dup(n->fd()));
  ASSERT_TRUE(a) << a.error().message();
  Counters c;
  a->mint(5).send(c);
  EXPECT_NE(n->peek(), 0u);
  // Corrupt magic: refused.
  n->word()->magic = 0;
  auto bad = Notification::attach(::dup(n->fd()));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), std::errc::invalid_argument);
  // Not a memfd at all.
  auto notmem = Notification::attach(::dup(0));
  EXPECT_FALSE(notmem);
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
