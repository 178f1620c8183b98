// apps/files/sha256.hpp — SHA-256 (FIPS 180-4) for the file tool.
//
// What it guarantees:
//  * Sha256 hashes any sequence of update() calls exactly as one update() over their
//    concatenation would; finish() returns the 32-byte digest and resets the object for reuse.
//  * Two implementations give identical digests: the project's own portable one (always built)
//    and OpenSSL's libcrypto (built when libssl-dev is present: UIPC_HAVE_OPENSSL), which uses
//    the CPU's SHA extensions where they exist and is several times faster. Sha256{} picks
//    libcrypto when it was built in; Sha256{Sha256::Impl::portable} forces the project's own.
// Who may call: any thread; one object is used by one thread at a time.
// What blocks: nothing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace uipc::apps::files {

using Digest = std::array<std::uint8_t, 32>;

class Sha256 {
 public:
  enum class Impl { best, portable, openssl };
  explicit Sha256(Impl impl = Impl::best);
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::span<const std::byte> data) noexcept;
  void update(const void* data, std::size_t n) noexcept { update(std::span(static_cast<const std::byte*>(data), n)); }
  Digest finish() noexcept;
  Impl impl() const noexcept { return impl_; }  // portable or openssl, never best

  static bool openssl_available() noexcept;

 private:
  void block(const std::uint8_t* p) noexcept;  // the portable compression function
  Impl impl_;
  void* ctx_ = nullptr;  // EVP_MD_CTX* (openssl)
  std::array<std::uint32_t, 8> h_{};
  std::array<std::uint8_t, 64> buf_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_ = 0;
};

std::string to_hex(const Digest& d);

}  // namespace uipc::apps::files
