// uipc/abi/region.hpp — a shared-memory region backed by a memfd.
//
// Invariants:
//  * A Region owns one MAP_SHARED mapping and the memfd behind it; both are released by the
//    destructor. Regions move, never copy.
//  * create() seals the memfd against shrinking (F_SEAL_SHRINK) and against further sealing
//    changes, so a peer holding the fd cannot truncate the memory under us (SIGBUS).
//  * attach() accepts only a memfd that carries F_SEAL_SHRINK and is at least `min_bytes`
//    long; anything else is refused with an error, never mapped.
//  * A region created with Sharing::owner_writes_only is sealed with F_SEAL_FUTURE_WRITE after
//    the creator has mapped it: the creator's mapping stays writable, and nobody (the creator
//    included, through any fd, /proc/self/fd reopenings too) can map it writable again or
//    write(2) it. Peers attach it with Access::read_only.
//  * No call blocks; errors come back as std::error_code, errno is not touched by callers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "uipc/result.hpp"

namespace uipc {

class Region {
 public:
  Region() = default;
  ~Region();
  Region(Region&& o) noexcept;
  Region& operator=(Region&& o) noexcept;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  enum class Sharing { peers_write, owner_writes_only };
  enum class Access { read_write, read_only };

  // A new zero-filled region of `bytes` (rounded up to a page), sealed against shrinking.
  static Result<Region> create(std::size_t bytes, const char* name = "uipc", Sharing sharing = Sharing::peers_write);
  // Maps a memfd received from a peer. Takes ownership of `fd` whether or not it succeeds.
  // Access::read_write of a memfd sealed with F_SEAL_FUTURE_WRITE fails with
  // errc::operation_not_permitted.
  static Result<Region> attach(int fd, std::size_t min_bytes, Access access = Access::read_write);

  // Closes the fd once it has been handed on; the mapping stays. Keeps fd use flat when a
  // process holds thousands of channels.
  void close_fd() noexcept;

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  int fd() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

 private:
  void reset() noexcept;
  void* data_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;
};

}  // namespace uipc
