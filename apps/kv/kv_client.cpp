// apps/kv/kv_client.cpp — see kv_client.hpp.
#include "kv/kv_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kv/kv_server.hpp"

namespace uipc::apps::kv {
namespace {
std::error_code last_error() { return {errno, std::generic_category()}; }
}  // namespace

std::vector<std::byte> make_request(Op op, std::string_view key, std::string_view value) {
  std::vector<std::byte> out(request_size(key, value));
  encode_request(out, op, key, value);
  return out;
}

// ---- UipcClient -------------------------------------------------------------------------------

Result<std::unique_ptr<UipcClient>> UipcClient::connect(Runtime& rt, const std::string& path, unsigned inflight) {
  auto c = ipc::connect(rt, path, channel_options(inflight));
  if (!c) return c.error();
  return std::make_unique<UipcClient>(std::move(c.value()));
}

Task<Result<Response>> UipcClient::call(Op op, std::string_view key, std::string_view value) {
  std::vector<std::byte> req = make_request(op, key, value);
  std::vector<std::byte> rep(kMaxResponse);
  auto r = co_await c_->call(req, rep);
  if (!r) co_return r.error();
  Response resp = decode_response(std::span<const std::byte>(rep.data(), r.value()));
  if (!resp.valid) co_return std::errc::bad_message;
  co_return resp;
}

// ---- TwinClient -------------------------------------------------------------------------------

Result<std::unique_ptr<TwinClient>> TwinClient::connect(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) return std::errc::filename_too_long;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return last_error();
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const auto e = last_error();
    ::close(fd);
    return e;
  }
  return std::make_unique<TwinClient>(fd);
}

TwinClient::~TwinClient() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> TwinClient::send_bytes(std::span<const std::byte> bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    off += static_cast<std::size_t>(n);
  }
  return {};
}

Result<void> TwinClient::read_exact(std::byte* p, std::size_t n) {
  while (n > 0) {
    const ssize_t k = ::read(fd_, p, n);
    if (k == 0) return std::errc::connection_reset;
    if (k < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return {};
}

Result<Response> TwinClient::read_response() {
  std::byte prefix[kFramePrefix];
  if (auto r = read_exact(prefix, sizeof prefix); !r) return r.error();
  const std::uint32_t len = get_u32(prefix);
  if (len < kHeaderBytes || len > kMaxResponse) return std::errc::bad_message;
  std::vector<std::byte> msg(len);
  if (auto r = read_exact(msg.data(), len); !r) return r.error();
  Response resp = decode_response(msg);
  if (!resp.valid) return std::errc::bad_message;
  return resp;
}

Result<Response> TwinClient::call(Op op, std::string_view key, std::string_view value) {
  auto r = call_many({make_request(op, key, value)});
  if (!r) return r.error();
  return std::move(r.value()[0]);
}

Result<std::vector<Response>> TwinClient::call_many(const std::vector<std::vector<std::byte>>& requests) {
  std::vector<std::byte> out;
  for (const auto& m : requests) {
    std::byte prefix[kFramePrefix];
    put_u32(prefix, static_cast<std::uint32_t>(m.size()));
    out.insert(out.end(), prefix, prefix + kFramePrefix);
    out.insert(out.end(), m.begin(), m.end());
  }
  std::vector<Response> got;
  std::vector<std::byte> in;
  std::size_t sent = 0;
  while (got.size() < requests.size()) {
    pollfd pfd{fd_, static_cast<short>(POLLIN | (sent < out.size() ? POLLOUT : 0)), 0};
    if (::poll(&pfd, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    if (sent < out.size() && (pfd.revents & POLLOUT)) {
      const ssize_t n = ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return last_error();
      if (n > 0) sent += static_cast<std::size_t>(n);
    }
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
      std::byte buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return std::errc::connection_reset;
      if (n < 0 && errno != EAGAIN && errno != EINTR) return last_error();
      if (n > 0) in.insert(in.end(), buf, buf + n);
      std::size_t pos = 0;
      while (in.size() - pos >= kFramePrefix) {
        const std::uint32_t len = get_u32(in.data() + pos);
        if (len < kHeaderBytes || len > kMaxResponse) return std::errc::bad_message;
        if (in.size() - pos < kFramePrefix + len) break;
        Response resp = decode_response(std::span<const std::byte>(in.data() + pos + kFramePrefix, len));
        if (!resp.valid) return std::errc::bad_message;
        got.push_back(std::move(resp));
        pos += kFramePrefix + len;
      }
      in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(pos));
    }
  }
  return got;
}

}  // namespace uipc::apps::kv
