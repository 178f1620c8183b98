#include "uipc/ipc/endpoint.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace uipc::ipc {

namespace {

constexpr std::uint64_t kHelloMagic = 0x7569'7063'4845'4c4full;    // "uipcHELO"
constexpr std::uint64_t kWelcomeMagic = 0x7569'7063'5745'4c43ull;  // "uipcWELC"

struct Hello {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t capacity;
  std::uint32_t max_payload;
  std::uint32_t max_inflight;
  std::uint32_t client_slot;
  std::uint32_t pad;
};
struct Welcome {
  std::uint64_t magic;
  std::uint32_t version;
  std::int32_t status;  // 0 or an errno value
  std::uint32_t server_slot;
  std::uint32_t pad;
};
static_assert(sizeof(Hello) == 32 && sizeof(Welcome) == 24);

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd >= 0) ::close(fd);
      fd = std::exchange(o.fd, -1);
    }
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

Result<void> send_msg(int sock, const void* msg, std::size_t len, const int* fds, std::size_t nfds) {
  iovec iov{const_cast<void*>(msg), len};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 4)] = {};
  if (nfds > 0) {
    mh.msg_control = ctl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    const ssize_t n = ::sendmsg(sock, &mh, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(len)) return {};
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? errno_code(errno) : std::make_error_code(std::errc::protocol_error);
  }
}

// Receives one message of exactly `len` bytes with up to `max_fds` fds (all received fds are
// owned by `fds`, also on error, so nothing leaks).
Result<std::size_t> recv_msg(int sock, void* msg, std::size_t len, Fd* fds, std::size_t max_fds) {
  iovec iov{msg, len};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 8)] = {};
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  ssize_t n;
  do n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno_code(errno);
  std::size_t got = 0;
  std::size_t extra = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < k; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      if (got < max_fds) fds[got++] = Fd(f);
      else {
        ::close(f);
        ++extra;
      }
    }
  }
  if (n != static_cast<ssize_t>(len) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || extra != 0)
    return std::errc::protocol_error;
  return got;
}

// A SOCK_SEQPACKET socket and the address of `path`, for bind or connect.
Result<Fd> unix_socket(const std::string& path, sockaddr_un& addr) {
  addr = {};
  if (path.empty() || path.size() >= sizeof addr.sun_path) return std::errc::filename_too_long;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (s.fd < 0) return errno_code(errno);
  return s;
}

pid_t peer_pid(int sock) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return 0;
  return cred.pid == ::getpid() ? 0 : cred.pid;  // our own process cannot die under us
}

}  // namespace

// ---- server side ----

Listener::Listener(Server& s, std::string path, ListenOptions o, int fd, int stop_fd)
    : server_(s), path_(std::move(path)), opts_(o), fd_(fd), stop_fd_(stop_fd) {
  thread_ = std::thread([this] { accept_loop(); });
}

Listener::~Listener() {
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(stop_fd_, &one, sizeof one);
  thread_.join();
  ::close(fd_);
  ::close(stop_fd_);
  ::unlink(path_.c_str());
}

Result<std::unique_ptr<Listener>> Listener::listen(Server& server, std::string path, ListenOptions o) {
  sockaddr_un addr;
  auto sock = unix_socket(path, addr);
  if (!sock) return sock.error();
  Fd s = std::move(sock.value());
  ::unlink(path.c_str());
  if (::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return errno_code(errno);
  if (::listen(s.fd, static_cast<int>(o.backlog)) != 0) return errno_code(errno);
  const int ev = ::eventfd(0, EFD_CLOEXEC);
  if (ev < 0) return errno_code(errno);
  return std::unique_ptr<Listener>(new Listener(server, std::move(path), o, s.release(), ev));
}

void Listener::accept_loop() {
  for (;;) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    if ((p[0].revents & POLLIN) == 0) continue;
    Fd conn(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC));
    if (conn.fd < 0) continue;
    if (handshake(conn.fd)) accepted_.fetch_add(1, std::memory_order_relaxed);
    else refused_.fetch_add(1, std::memory_order_relaxed);
  }
}

Result<void> Listener::handshake(int conn) {
  timeval tv{opts_.handshake_ms / 1000, (opts_.handshake_ms % 1000) * 1000};
  ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  Hello hello{};
  Fd fds[2];
  auto refuse = [&](std::error_code e) -> Result<void> {
    Welcome w{kWelcomeMagic, abi::kAbiVersion, e.value() > 0 ? e.value() : EPROTO, 0, 0};
    (void)send_msg(conn, &w, sizeof w, nullptr, 0);
    return e;
  };
  auto got = recv_msg(conn, &hello, sizeof hello, fds, 2);
  if (!got) return refuse(got.error());
  if (got.value() != 2 || hello.magic != kHelloMagic) return refuse(std::make_error_code(std::errc::protocol_error));
  if (hello.version != abi::kAbiVersion) return refuse(std::make_error_code(std::errc::protocol_not_supported));
  ChannelOptions o{hello.capacity, hello.max_payload, hello.max_inflight};
  if (auto ok = check_options(o); !ok) return refuse(ok.error());
  if (hello.client_slot >= abi::kMaxSlots) return refuse(std::make_error_code(std::errc::invalid_argument));
  auto peer = Notification::attach(fds[0].release(), fds[1].release());
  if (!peer) return refuse(peer.error());
  peer->close_fd();
  auto slot = server_.reserve_slot();
  if (!slot) return refuse(slot.error());
  auto region = create_channel_region(o, slot.value(), hello.client_slot);
  if (!region) {
    server_.release_slot(slot.value());
    return refuse(region.error());
  }
  auto layout = validate_channel(**region);
  if (!layout) {
    server_.release_slot(slot.value());
    return refuse(layout.error());
  }
  Welcome w{kWelcomeMagic, abi::kAbiVersion, 0, slot.value(), 0};
  const Notification& mine = server_.runtime().notification();
  const int out[3] = {(*region)->fd(), mine.control_fd(), mine.hints_fd()};
  if (auto ok = send_msg(conn, &w, sizeof w, out, 3); !ok) {
    server_.release_slot(slot.value());
    return ok.error();
  }
  (*region)->close_fd();
  auto peer_ptr = std::make_shared<Notification>(std::move(peer.value()));
  ChannelEnd end{region.value(), layout.value(), peer_ptr,
                 peer_ptr->mint_remote(hello.client_slot, &header(**region)->raise_client), slot.value(), o,
                 peer_pid(conn)};
  if (auto ok = server_.adopt(std::move(end)); !ok) {
    server_.release_slot(slot.value());
    return ok.error();
  }
  return {};
}

// ---- client side ----

Result<std::unique_ptr<Client>> connect(Runtime& rt, const std::string& path, const ChannelOptions& o) {
  if (auto ok = check_options(o); !ok) return ok.error();
  sockaddr_un addr;
  auto sock = unix_socket(path, addr);
  if (!sock) return sock.error();
  Fd s = std::move(sock.value());
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return errno_code(errno);
  auto slot = rt.allocate_slot();
  if (!slot) return slot.error();
  struct SlotGuard {
    Runtime& rt;
    std::uint32_t slot;
    bool keep = false;
    ~SlotGuard() {
      if (!keep) rt.release_slot(slot);
    }
  } guard{rt, slot.value()};

  Hello hello{kHelloMagic, abi::kAbiVersion, o.capacity, o.max_payload, o.max_inflight, slot.value(), 0};
  const int mine[2] = {rt.notification().control_fd(), rt.notification().hints_fd()};
  if (auto ok = send_msg(s.fd, &hello, sizeof hello, mine, 2); !ok) return ok.error();
  Welcome w{};
  Fd fds[3];
  auto got = recv_msg(s.fd, &w, sizeof w, fds, 3);
  if (!got) return got.error();
  if (w.magic != kWelcomeMagic) return std::errc::protocol_error;
  if (w.status != 0) return errno_code(w.status > 0 && w.status < 4096 ? w.status : EPROTO);
  if (w.version != abi::kAbiVersion) return std::errc::protocol_not_supported;
  if (got.value() != 3 || w.server_slot >= abi::kMaxSlots) return std::errc::protocol_error;
  const ChannelLayout want = plan_layout(o, w.server_slot, slot.value());
  auto region = Region::attach(fds[0].release(), want.region_bytes);
  if (!region) return region.error();
  auto layout = validate_channel(*region);
  if (!layout) return layout.error();
  if (layout->capacity != o.capacity || layout->max_payload != o.max_payload || layout->server_slot != w.server_slot ||
      layout->client_slot != slot.value())
    return std::errc::protocol_error;
  auto peer = Notification::attach(fds[1].release(), fds[2].release());
  if (!peer) return peer.error();
  peer->close_fd();
  region->close_fd();
  auto peer_ptr = std::make_shared<Notification>(std::move(peer.value()));
  auto shared_region = std::make_shared<Region>(std::move(region.value()));
  ChannelEnd end{shared_region, layout.value(), peer_ptr,
                 peer_ptr->mint_remote(w.server_slot, &header(*shared_region)->raise_server), slot.value(), o,
                 peer_pid(s.fd)};
  guard.keep = true;
  return std::make_unique<Client>(rt, std::move(end));
}

}  // namespace uipc::ipc
