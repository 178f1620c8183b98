#include "uipc/detail/frame_pool.hpp"

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

struct Lists {
  FreeBlock* head[kClasses] = {};
  std::size_t count[kClasses] = {};
  ~Lists() {
    for (std::size_t c = 0; c < kClasses; ++c) {
      while (head[c] != nullptr) {
        FreeBlock* b = head[c];
        head[c] = b->next;
        ::operator delete(b);
      }
    }
  }
};

thread_local Lists lists;

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
