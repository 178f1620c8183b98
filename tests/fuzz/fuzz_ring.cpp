// Fuzz target: SPSC ring index handling and entry decoding (RingProducer / RingConsumer).
//
// One producer and one consumer share indices and entries in exactly-sized heap blocks (so
// ASan sees any access outside them). The input sets the geometry and a starting index (any
// 32-bit value: wrap-around is covered), then is a list of operations: the legitimate ones
// (claim, publish, peek, pop, release, the arm / flush handshake, re-attaching either side) and
// scribbles that write any value into any index word or entry field, as a hostile peer could.
// Invariants, always:
//  * no access outside the ring (ASan), no UB (UBSan);
//  * claim() returns a whole entry inside the array, at the slot of its index, or nullptr; it
//    returns nullptr while the producer is corrupt; corrupt() never clears; !corrupt() implies
//    in_flight() <= capacity; arm_space_wait() is false when corrupt;
//  * peek() returns only a payload at its entry's slot with hdr.len <= max_payload, or nullptr;
//    bad_entry() never clears, and while set peek() is nullptr, has_data() and !arm_data_wait();
//  * the consumer never reports corrupt() (nothing it reads can break its private head).
// While no scribble has happened ("clean"), a model is checked too: FIFO, exactly once, ids,
// lengths and payload bytes as published; claim() is nullptr exactly when the ring is full as
// the producer sees it; an entry with len > max_payload becomes bad_entry() when it reaches the
// head; and the handshake: flush() is true exactly when the consumer had armed, release()
// exactly when the producer had armed and the head moved.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <new>

#include "fuzz_input.hpp"
#include "uipc/abi/layout.hpp"
#include "uipc/ring/ring.hpp"

namespace {

using namespace uipc;
namespace abi = uipc::abi;

#define CHECK(cond) FUZZ_CHECK("fuzz_ring", cond)

struct Published {
  std::uint64_t id;
  std::uint32_t len;
};

std::uint8_t pattern(std::uint64_t id, std::uint32_t k) { return static_cast<std::uint8_t>(id * 31 + k * 7 + 1); }

struct Ring {
  RingGeometry g;
  abi::RingIndices* indices = nullptr;
  std::byte* entries = nullptr;
  std::size_t entries_bytes = 0;

  Ring(std::uint32_t capacity, std::uint32_t max_payload) {
    g.capacity = capacity;
    g.max_payload = max_payload;
    g.stride = abi::entry_stride(max_payload);
    entries_bytes = std::size_t{capacity} * g.stride;
    indices = new abi::RingIndices{};
    entries = static_cast<std::byte*>(::operator new(entries_bytes, std::align_val_t{abi::kCacheLine}));
    std::memset(entries, 0, entries_bytes);
    g.indices = indices;
    g.entries = entries;
  }
  ~Ring() {
    delete indices;
    ::operator delete(entries, std::align_val_t{abi::kCacheLine});
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  std::byte* slot(std::uint32_t index) const { return entries + std::size_t{index & (g.capacity - 1)} * g.stride; }
  abi::EntryHeader* entry(std::uint32_t index) const { return reinterpret_cast<abi::EntryHeader*>(slot(index)); }
};

struct State {
  Ring& ring;
  RingProducer prod;
  RingConsumer cons;
  bool clean = true;
  // The two sides' private indices, followed in every mode (scribbles aim near them).
  std::uint32_t tail = 0;         // next index the producer publishes
  std::uint32_t head = 0;         // next index the consumer peeks
  // model (meaningful while clean)
  std::uint32_t released = 0;     // head as last published by release()
  std::deque<Published> queue;    // published, not yet popped
  bool peeked = false;            // the last peek returned an entry not yet popped
  bool data_armed = false;
  bool space_armed = false;
  bool prod_corrupt = false;
  bool cons_bad = false;
  bool claimed = false;           // claim() returned an entry not yet published
  std::uint64_t next_id = 1;

  explicit State(Ring& r) : ring(r), prod(r.g), cons(r.g) {}

  void check_claim(abi::EntryHeader* e) const {
    auto* b = reinterpret_cast<std::byte*>(e);
    CHECK(b >= ring.entries && b + ring.g.stride <= ring.entries + ring.entries_bytes);
    CHECK(static_cast<std::size_t>(b - ring.entries) % ring.g.stride == 0);
    CHECK(sizeof(abi::EntryHeader) + ring.g.max_payload <= ring.g.stride);
  }

  void always() const {
    if (prod_corrupt) CHECK(prod.corrupt());
    if (!prod.corrupt()) CHECK(prod.in_flight() <= ring.g.capacity);
    CHECK(!cons.corrupt());
    if (cons_bad) CHECK(cons.bad_entry());
    if (cons.bad_entry()) CHECK(cons.has_data());
    if (clean) {
      CHECK(!prod.corrupt());
      CHECK(tail - released <= ring.g.capacity);
      CHECK(queue.size() == tail - head);
    }
  }

  void claim_publish(fuzz::Input& in, bool publish) {
    abi::EntryHeader* e = prod.claim();
    if (prod.corrupt()) prod_corrupt = true;
    if (prod_corrupt) CHECK(e == nullptr);
    if (clean) CHECK((e == nullptr) == (tail - released >= ring.g.capacity));
    if (e == nullptr) return;
    check_claim(e);
    if (clean) CHECK(reinterpret_cast<std::byte*>(e) == ring.slot(tail));
    if (claimed) CHECK(prod.claim() == e);  // repeated claims give the same entry
    claimed = true;
    if (!publish) return;
    const std::uint16_t raw = in.u16();
    // Mostly honest lengths; one in eight is whatever the input says (a broken producer).
    const std::uint32_t len = (raw & 7) == 0 ? in.u32() : (raw >> 3) % (ring.g.max_payload + 1);
    const std::uint64_t id = next_id++;
    e->id = id;
    e->len = len;
    e->status = 0;
    auto* p = reinterpret_cast<std::uint8_t*>(prod.payload(e));
    // The whole payload area is the caller's: write all of it (ASan checks it is ours).
    for (std::uint32_t k = 0; k < ring.g.max_payload; ++k) p[k] = pattern(id, k);
    prod.publish();
    claimed = false;
    ++tail;
    if (clean) queue.push_back({id, len});
  }

  void peek() {
    abi::EntryHeader h;
    const std::byte* p = cons.peek(&h);
    if (cons.bad_entry()) cons_bad = true;
    if (cons_bad) CHECK(p == nullptr);
    if (p != nullptr) {
      CHECK(h.len <= ring.g.max_payload);
      const std::byte* s = p - sizeof(abi::EntryHeader);
      CHECK(s >= ring.entries && static_cast<std::size_t>(s - ring.entries) % ring.g.stride == 0);
      CHECK(p + h.len <= ring.entries + ring.entries_bytes);
      volatile std::uint8_t sink = 0;
      for (std::uint32_t k = 0; k < h.len; ++k) sink = sink ^ static_cast<std::uint8_t>(p[k]);
    }
    if (clean) {
      if (queue.empty()) {
        CHECK(p == nullptr && !cons.bad_entry());
      } else if (queue.front().len > ring.g.max_payload) {
        CHECK(p == nullptr && cons.bad_entry());
      } else {
        CHECK(p != nullptr);
        CHECK(p - sizeof(abi::EntryHeader) == ring.slot(head));
        CHECK(h.id == queue.front().id && h.len == queue.front().len && h.seq == head + 1);
        for (std::uint32_t k = 0; k < h.len; ++k) CHECK(static_cast<std::uint8_t>(p[k]) == pattern(h.id, k));
      }
    }
    peeked = p != nullptr;
  }

  void pop() {
    if (!peeked) return;  // pop() is only defined after a successful peek()
    cons.pop();
    peeked = false;
    ++head;
    if (clean) queue.pop_front();
  }

  void release() {
    const bool signal = cons.release();
    if (clean) {
      const bool moved = head != released;
      CHECK(signal == (moved && space_armed));
      if (moved) space_armed = false;
      released = head;
    }
  }

  void arm_data() {
    const bool armed = cons.arm_data_wait();
    if (cons_bad) CHECK(!armed);
    if (clean) {
      CHECK(armed == queue.empty());
      data_armed = armed;
    }
  }

  void flush() {
    const bool signal = prod.flush();
    if (clean) {
      CHECK(signal == data_armed);
      data_armed = false;
    }
  }

  void arm_space() {
    const bool armed = prod.arm_space_wait();
    if (prod.corrupt()) prod_corrupt = true;
    if (prod_corrupt) CHECK(!armed);
    if (clean) {
      CHECK(armed == (tail - released >= ring.g.capacity));
      space_armed = armed;
    }
  }

  std::atomic<std::uint32_t>* index_word(unsigned which) const {
    switch (which & 3) {
      case 0: return &ring.indices->prod.tail;
      case 1: return &ring.indices->prod.space_waiter;
      case 2: return &ring.indices->cons.head;
      default: return &ring.indices->cons.data_waiter;
    }
  }

  // A value near something the rings compare against, or anything at all.
  std::uint32_t scribble_value(fuzz::Input& in) {
    const std::uint8_t mode = in.u8();
    const auto delta = static_cast<std::int8_t>(in.u8());
    switch (mode & 3) {
      case 0: return tail + static_cast<std::uint32_t>(delta);
      case 1: return head + static_cast<std::uint32_t>(delta);
      case 2: return tail + 1 + static_cast<std::uint32_t>(delta) * ring.g.capacity;  // a seq, laps away
      default: return in.u32();
    }
  }

  void scribble_index(fuzz::Input& in) {
    const unsigned which = in.u8();
    index_word(which)->store(scribble_value(in), std::memory_order_relaxed);
    clean = false;
  }

  void scribble_entry(fuzz::Input& in) {
    const std::uint32_t index = in.u16();
    const std::uint8_t field = in.u8();
    std::byte* s = ring.slot(index);
    const std::uint32_t v = scribble_value(in);
    std::size_t off;
    switch (field & 7) {
      case 0: off = offsetof(abi::EntryHeader, seq); break;
      case 1: off = offsetof(abi::EntryHeader, len); break;
      case 2: off = offsetof(abi::EntryHeader, id); break;
      case 3: off = offsetof(abi::EntryHeader, id) + 4; break;
      case 4: off = offsetof(abi::EntryHeader, status); break;
      default: off = sizeof(abi::EntryHeader) + 4 * ((field >> 3) % (ring.g.max_payload / 4)); break;
    }
    std::memcpy(s + off, &v, sizeof v);
    clean = false;
  }

  // A side restarts from the shared head (a peer re-attaching). While clean, only where that is
  // a legal restart: a producer with nothing unreleased (it would overwrite published entries),
  // a consumer with nothing popped but unreleased (it would see them again).
  void reattach_producer() {
    if (claimed || (clean && tail != released)) return;
    prod = RingProducer(ring.g);
    prod_corrupt = false;
    tail = ring.indices->cons.head.load(std::memory_order_relaxed);
    if (clean) CHECK(!prod.corrupt() && tail == released);
  }

  void reattach_consumer() {
    if (clean && head != released) return;
    cons = RingConsumer(ring.g);
    cons_bad = false;
    peeked = false;
    head = ring.indices->cons.head.load(std::memory_order_relaxed);
    if (clean) data_armed = ring.indices->cons.data_waiter.load(std::memory_order_relaxed) != 0;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint32_t capacity = 1u << (1 + in.u8() % 6);   // 2 .. 64
  const std::uint32_t max_payload = 16 + in.u8() % 241;     // 16 .. 256
  const std::uint32_t base = in.u32();                      // starting index: wrap-around too
  Ring ring(capacity, max_payload);
  // The ring as it is after `base` entries went through it: indices at base and the previous
  // lap's seq in every slot. (A zeroed ring is only a valid state at index 0.)
  ring.indices->prod.tail.store(base, std::memory_order_relaxed);  // unused by these rings; set as
  ring.indices->cons.head.store(base, std::memory_order_relaxed);  // an index-publishing ring would
  if (base != 0) {
    for (std::uint32_t k = 0; k < capacity; ++k) {
      const std::uint32_t i = base - capacity + k;
      ring.entry(i)->seq = i + 1;
    }
  }
  State s(ring);
  s.tail = s.head = s.released = base;

  for (unsigned steps = 0; !in.done() && steps < 4096; ++steps) {
    switch (in.u8() % 14) {
      case 0: case 1: s.claim_publish(in, true); break;
      case 2: s.claim_publish(in, false); break;
      case 3: case 4: s.peek(); break;
      case 5: s.pop(); break;
      case 6: s.release(); break;
      case 7: s.arm_data(); break;
      case 8:
        s.cons.disarm_data_wait();
        s.data_armed = false;
        break;
      case 9: s.flush(); break;
      case 10: s.arm_space(); break;
      case 11: s.scribble_index(in); break;
      case 12: s.scribble_entry(in); break;
      default:
        if (in.flag()) s.reattach_producer();
        else s.reattach_consumer();
        break;
    }
    s.always();
  }
  return 0;
}
