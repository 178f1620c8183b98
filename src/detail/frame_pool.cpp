#include "uipc/detail/frame_pool.hpp"

#include <cstdint>
#include <new>

namespace uipc::detail::frame_pool {

namespace {
constexpr std::size_t kGranule = 64;
constexpr std::size_t kMaxPooled = 2048;
constexpr std::size_t kClasses = kMaxPooled / kGranule;
constexpr std::size_t kMaxCached = 4096;

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible, so reaching it costs no guard check on every call. The blocks are
// given back at thread exit by a Cleanup, created the first time this thread keeps a block.
struct Lists {
  FreeBlock* head[kClasses];
  std::uint32_t count[kClasses];
  bool cleanup_registered;
};

constinit thread_local Lists lists{};

struct Cleanup {
  ~Cleanup() {
    for (std::size_t c = 0; c < kClasses; ++c) {
      while (lists.head[c] != nullptr) {
        FreeBlock* b = lists.head[c];
        lists.head[c] = b->next;
        ::operator delete(b);
      }
      lists.count[c] = 0;
    }
  }
};

// Out of line: once per thread, before its lists first keep a block.
[[gnu::noinline]] void register_cleanup() {
  static thread_local Cleanup cleanup;
  (void)&cleanup;
  lists.cleanup_registered = true;
}

std::size_t class_of(std::size_t n) { return (n + kGranule - 1) / kGranule - 1; }
}  // namespace

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Under sanitizers every frame goes to the allocator, so use-after-free of a frame is caught.
constexpr bool kPooling = false;
#else
constexpr bool kPooling = true;
#endif

void* allocate(std::size_t n) {
  if (!kPooling || n == 0 || n > kMaxPooled) return ::operator new(n);
  const std::size_t c = class_of(n);
  if (FreeBlock* b = lists.head[c]) {
    lists.head[c] = b->next;
    --lists.count[c];
    return b;
  }
  return ::operator new((c + 1) * kGranule);
}

void deallocate(void* p, std::size_t n) noexcept {
  if (!kPooling || n == 0 || n > kMaxPooled) {
    ::operator delete(p);
    return;
  }
  const std::size_t c = class_of(n);
  if (!lists.cleanup_registered) [[unlikely]] register_cleanup();
  if (lists.count[c] >= kMaxCached) {
    ::operator delete(p);
    return;
  }
  auto* b = static_cast<FreeBlock*>(p);
  b->next = lists.head[c];
  lists.head[c] = b;
  ++lists.count[c];
}

}  // namespace uipc::detail::frame_pool
