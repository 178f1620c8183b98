#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "uipc/ring/ring.hpp"

using namespace uipc;

namespace {
struct RingMem {
  std::vector<std::byte> mem;
  RingGeometry g;
  RingMem(std::uint32_t cap, std::uint32_t payload) {
    const std::uint32_t stride = uipc::abi::entry_stride(payload);
    mem.resize(sizeof(uipc::abi::RingIndices) + std::size_t{cap} * stride + uipc::abi::kCacheLine);
    auto base = reinterpret_cast<std::uintptr_t>(mem.data());
    auto* aligned = reinterpret_cast<std::byte*>((base + uipc::abi::kCacheLine - 1) / uipc::abi::kCacheLine * uipc::abi::kCacheLine);
    g.indices = new (aligned) uipc::abi::RingIndices{};
    g.entries = aligned + sizeof(uipc::abi::RingIndices);
    g.capacity = cap;
    g.stride = stride;
    g.max_payload = payload;
  }
};

bool push(RingProducer& p, std::uint64_t id, std::uint32_t len = 8) {
  uipc::abi::EntryHeader* e = p.claim();
  if (!e) return false;
  e->id = id;
  e->len = len;
  e->status = 0;
  std::memcpy(p.payload(e), &id, std::min<std::uint32_t>(len, 8));
  p.publish();
  return true;
}
}  // namespace

TEST(Ring, FifoAndFullNeverOverwrites) {
  RingMem m(4, 64);
  RingProducer p(m.g);
  RingConsumer c(m.g);
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(push(p, i));
  EXPECT_FALSE(push(p, 99));  // full: refused, not dropped silently
  uipc::abi::EntryHeader h;
  for (std::uint64_t i = 0; i < 4; ++i) {
    const std::byte* d = c.peek(&h);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(h.id, i);
    c.pop();
  }
  EXPECT_EQ(c.peek(&h), nullptr);
  EXPECT_FALSE(push(p, 5));  // consumer has not released yet
  c.release();
  EXPECT_TRUE(push(p, 5));
}

TEST(Ring, HandshakeSignalsOnlyAnArmedWaiter) {
  RingMem m(4, 64);
  RingProducer p(m.g);
  RingConsumer c(m.g);
  ASSERT_TRUE(push(p, 1));
  EXPECT_FALSE(p.flush());          // consumer not armed: suppressed
  EXPECT_FALSE(c.arm_data_wait());  // data present: the re-check backs out
  uipc::abi::EntryHeader h;
  ASSERT_NE(c.peek(&h), nullptr);
  c.pop();
  EXPECT_TRUE(c.arm_data_wait());   // empty: armed, may sleep
  ASSERT_TRUE(push(p, 2));
  EXPECT_TRUE(p.flush());           // armed consumer: signal once
  EXPECT_FALSE(p.flush());          // ... and only once
  // Space: fill, arm, release → consumer must signal.
  c.peek(&h);
  c.pop();
  c.release();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(push(p, 10 + i));
  EXPECT_TRUE(p.arm_space_wait());
  ASSERT_NE(c.peek(&h), nullptr);
  c.pop();
  EXPECT_TRUE(c.release());
}

TEST(Ring, CorruptIndicesAreDetectedNotFollowed) {
  RingMem m(4, 64);
  RingProducer p(m.g);
  RingConsumer c(m.g);
  // A hostile producer claims 1000 entries are ready and scribbles seq numbers: the consumer
  // only ever looks at the entry its own head names, and sees nothing ready.
  m.g.indices->prod.tail.store(1000);
  for (std::uint32_t i = 0; i < 4; ++i)
    reinterpret_cast<uipc::abi::EntryHeader*>(m.g.entries + i * m.g.stride)->seq = 777 + i;
  uipc::abi::EntryHeader h;
  EXPECT_EQ(c.peek(&h), nullptr);
  EXPECT_FALSE(c.has_data());
  // A hostile consumer moves head past tail.
  RingMem m2(4, 64);
  RingProducer p2(m2.g);
  ASSERT_TRUE(push(p2, 1));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(push(p2, 1));
  m2.g.indices->cons.head.store(7);
  EXPECT_FALSE(push(p2, 2));
  EXPECT_TRUE(p2.corrupt());
}

TEST(Ring, OversizeLengthIsABadEntry) {
  RingMem m(4, 64);
  RingProducer p(m.g);
  RingConsumer c(m.g);
  ASSERT_TRUE(push(p, 1, 65));  // one byte over max_payload
  uipc::abi::EntryHeader h;
  EXPECT_EQ(c.peek(&h), nullptr);
  EXPECT_TRUE(c.bad_entry());
}

TEST(Ring, TwoThreadsTransferInOrder) {
  RingMem m(8, 64);
  constexpr std::uint64_t kN = 200'000;
  std::thread prod([&] {
    RingProducer p(m.g);
    for (std::uint64_t i = 0; i < kN;) {
      if (push(p, i)) ++i;
    }
  });
  RingConsumer c(m.g);
  uipc::abi::EntryHeader h;
  for (std::uint64_t i = 0; i < kN;) {
    if (const std::byte* d = c.peek(&h)) {
      std::uint64_t v;
      std::memcpy(&v, d, 8);
      ASSERT_EQ(h.id, i);
      ASSERT_EQ(v, i);
      c.pop();
      c.release();
      ++i;
    }
  }
  prod.join();
}
