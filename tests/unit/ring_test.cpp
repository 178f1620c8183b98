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

// ---- typed rings (the syscall buffer's form: fixed entries published through the tail) ----

namespace {
struct Item {
  std::uint64_t id;
  std::int64_t value;
};

template <class Entry>
struct TypedMem {
  std::vector<std::byte> mem;
  TypedRingView<Entry> v;
  explicit TypedMem(std::uint32_t cap) {
    mem.resize(sizeof(uipc::abi::RingIndices) + std::size_t{cap} * sizeof(Entry) + uipc::abi::kCacheLine);
    auto base = reinterpret_cast<std::uintptr_t>(mem.data());
    auto* aligned = reinterpret_cast<std::byte*>((base + uipc::abi::kCacheLine - 1) / uipc::abi::kCacheLine * uipc::abi::kCacheLine);
    v.indices = new (aligned) uipc::abi::RingIndices{};
    v.entries = reinterpret_cast<Entry*>(aligned + sizeof(uipc::abi::RingIndices));
    v.capacity = cap;
  }
};

bool push(TypedRingProducer<Item>& p, std::uint64_t id) {
  Item* e = p.claim();
  if (e == nullptr) return false;
  e->id = id;
  e->value = -static_cast<std::int64_t>(id);
  p.publish();
  return true;
}
}  // namespace

TEST(TypedRing, FifoFullAndRelease) {
  TypedMem<Item> m(4);
  TypedRingProducer<Item> p(m.v);
  TypedRingConsumer<Item> c(m.v);
  EXPECT_FALSE(ring_has_data(m.v));
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(push(p, i));
  EXPECT_FALSE(push(p, 99));  // full: refused, never overwritten
  EXPECT_EQ(p.in_flight(), 4u);
  EXPECT_TRUE(ring_has_data(m.v));
  EXPECT_EQ(c.available(), 4u);
  Item it{};
  for (std::uint64_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(c.peek(&it));
    EXPECT_EQ(it.id, i);
    EXPECT_EQ(it.value, -static_cast<std::int64_t>(i));
    c.pop();
  }
  EXPECT_FALSE(c.peek(&it));
  EXPECT_TRUE(ring_has_data(m.v));  // popped but not given back yet
  EXPECT_FALSE(push(p, 5));         // the consumer has not released
  c.release();
  EXPECT_FALSE(ring_has_data(m.v));
  EXPECT_TRUE(push(p, 5));
  ASSERT_TRUE(c.peek(&it));
  EXPECT_EQ(it.id, 5u);
}

TEST(TypedRing, HandshakeSignalsOnlyAnArmedWaiter) {
  TypedMem<Item> m(4);
  TypedRingProducer<Item> p(m.v);
  TypedRingConsumer<Item> c(m.v);
  ASSERT_TRUE(push(p, 1));
  EXPECT_FALSE(p.flush());          // not armed: suppressed
  EXPECT_FALSE(c.arm_data_wait());  // data present: backs out
  Item it{};
  ASSERT_TRUE(c.peek(&it));
  c.pop();
  EXPECT_TRUE(c.arm_data_wait());   // empty: armed
  ASSERT_TRUE(push(p, 2));
  EXPECT_TRUE(p.flush());           // signal once
  EXPECT_FALSE(p.flush());
}

TEST(TypedRing, HostileIndicesMakeItCorruptNeverOutOfBounds) {
  {  // a tail more than `capacity` ahead of the consumer
    TypedMem<Item> m(4);
    TypedRingConsumer<Item> c(m.v);
    m.v.indices->prod.tail.store(5);
    Item it{};
    EXPECT_FALSE(c.peek(&it));
    EXPECT_TRUE(c.corrupt());
    EXPECT_TRUE(c.has_data());         // the caller must look at it
    EXPECT_FALSE(c.arm_data_wait());   // and never sleep on it
  }
  {  // a tail that moves backwards
    TypedMem<Item> m(4);
    TypedRingProducer<Item> p(m.v);
    TypedRingConsumer<Item> c(m.v);
    ASSERT_TRUE(push(p, 1));
    ASSERT_TRUE(push(p, 2));
    EXPECT_EQ(c.available(), 2u);
    m.v.indices->prod.tail.store(1);
    Item it{};
    ASSERT_TRUE(c.peek(&it));  // entry 0 was validly published before
    EXPECT_EQ(it.id, 1u);
    c.pop();
    c.available();             // re-reads the tail: it went back
    EXPECT_TRUE(c.corrupt());
    EXPECT_FALSE(c.peek(&it));
  }
  {  // a head past the tail
    TypedMem<Item> m(4);
    TypedRingProducer<Item> p(m.v);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(push(p, 1));
    m.v.indices->cons.head.store(7);
    EXPECT_FALSE(push(p, 2));
    EXPECT_TRUE(p.corrupt());
    EXPECT_EQ(p.claim(), nullptr);  // and stays so
  }
  {  // attaching to a ring whose indices are already impossible
    TypedMem<Item> m(4);
    m.v.indices->prod.tail.store(100);
    TypedRingProducer<Item> p(m.v);
    TypedRingConsumer<Item> c(m.v);
    EXPECT_TRUE(p.corrupt());
    EXPECT_TRUE(c.corrupt());
  }
}

TEST(TypedRing, WrapsAroundFromAnyStartIndex) {
  TypedMem<Item> m(8);
  m.v.indices->prod.tail.store(0xFFFF'FFFAu);
  m.v.indices->cons.head.store(0xFFFF'FFFAu);
  TypedRingProducer<Item> p(m.v);
  TypedRingConsumer<Item> c(m.v);
  Item it{};
  for (std::uint64_t round = 0; round < 5; ++round) {
    for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(push(p, round * 8 + i));
    EXPECT_FALSE(push(p, 0));
    for (std::uint64_t i = 0; i < 8; ++i) {
      ASSERT_TRUE(c.peek(&it));
      ASSERT_EQ(it.id, round * 8 + i);
      c.pop();
    }
    c.release();
    EXPECT_FALSE(c.corrupt());
    EXPECT_FALSE(p.corrupt());
  }
}

TEST(TypedRing, TwoThreadsTransferInOrder) {
  TypedMem<Item> m(16);
  constexpr std::uint64_t kN = 200'000;
  std::thread prod([&] {
    TypedRingProducer<Item> p(m.v);
    for (std::uint64_t i = 0; i < kN;) {
      if (push(p, i)) ++i;
    }
  });
  TypedRingConsumer<Item> c(m.v);
  Item it{};
  for (std::uint64_t i = 0; i < kN;) {
    if (c.peek(&it)) {
      ASSERT_EQ(it.id, i);
      ASSERT_EQ(it.value, -static_cast<std::int64_t>(i));
      c.pop();
      if (i % 3 == 0) c.release();
      ++i;
    } else {
      c.release();
    }
  }
  prod.join();
}
