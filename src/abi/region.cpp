#include "uipc/abi/region.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace uipc {

Region::~Region() { reset(); }

Region::Region(Region&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), fd_(std::exchange(o.fd_, -1)) {}

Region& Region::operator=(Region&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

void Region::close_fd() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Region::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
  data_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

Result<Region> Region::create(std::size_t bytes, const char* name, Sharing sharing) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  if (bytes == 0) return std::errc::invalid_argument;
  bytes = (bytes + page - 1) / page * page;
  Region r;
  r.fd_ = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (r.fd_ < 0) return errno_code(errno);
  if (::ftruncate(r.fd_, static_cast<off_t>(bytes)) != 0) return errno_code(errno);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd_, 0);
  if (p == MAP_FAILED) return errno_code(errno);
  r.data_ = p;
  r.size_ = bytes;
  // After the mapping: F_SEAL_FUTURE_WRITE leaves existing writable mappings alone.
  int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  if (sharing == Sharing::owner_writes_only) seals |= F_SEAL_FUTURE_WRITE;
  if (::fcntl(r.fd_, F_ADD_SEALS, seals) != 0) return errno_code(errno);
  return r;
}

Result<Region> Region::attach(int fd, std::size_t min_bytes, Access access) {
  Region r;
  r.fd_ = fd;
  if (fd < 0) return std::errc::bad_file_descriptor;
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return errno_code(errno);            // not a memfd
  if ((seals & F_SEAL_SHRINK) == 0) return std::errc::operation_not_permitted;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_code(errno);
  if (st.st_size <= 0 || static_cast<std::size_t>(st.st_size) < min_bytes) return std::errc::message_size;
  const auto bytes = static_cast<std::size_t>(st.st_size);
  if (access == Access::read_write && (seals & F_SEAL_FUTURE_WRITE) != 0) return std::errc::operation_not_permitted;
  const int prot = access == Access::read_write ? PROT_READ | PROT_WRITE : PROT_READ;
  void* p = ::mmap(nullptr, bytes, prot, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return errno_code(errno);
  r.data_ = p;
  r.size_ = bytes;
  return r;
}

}  // namespace uipc
