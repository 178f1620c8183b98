// apps/kv/kv_server.cpp — see kv_server.hpp.
#include "kv/kv_server.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace uipc::apps::kv {

ipc::ChannelOptions channel_options(unsigned inflight) {
  ipc::ChannelOptions o;
  o.max_payload = static_cast<std::uint32_t>(kMaxRequest);
  o.capacity = 16;
  while (o.capacity < inflight && o.capacity < 65536) o.capacity *= 2;
  o.max_inflight = o.capacity;
  return o;
}

// ---- UipcServer -------------------------------------------------------------------------------

UipcServer::UipcServer(Store& store, RuntimeOptions ro)
    : store_(store),
      rt_(ro),
      server_(rt_, ipc::InlineHandler([this](std::span<const std::byte> req, std::span<std::byte> reply) -> Result<std::size_t> {
        if (reply.size() >= kMaxResponse) return store_.handle(req, reply);
        // A client asked for a payload smaller than our largest reply: answer into scratch and
        // refuse with message_size only when this reply does not fit.
        scratch_.resize(kMaxResponse);
        const std::size_t n = store_.handle(req, scratch_);
        if (n > reply.size()) return std::errc::message_size;
        std::memcpy(reply.data(), scratch_.data(), n);
        return n;
      })) {}

UipcServer::~UipcServer() = default;

Result<void> UipcServer::listen(const std::string& path) {
  auto l = ipc::Listener::listen(server_, path);
  if (!l) return l.error();
  listener_ = std::move(l.value());
  return {};
}

void UipcServer::run() { rt_.block_on(server_.serve()); }
void UipcServer::stop() noexcept { server_.stop(); }
std::uint64_t UipcServer::channels_accepted() const noexcept { return listener_ ? listener_->stats().accepted : 0; }

// ---- TwinServer -------------------------------------------------------------------------------

namespace {

constexpr std::size_t kReadChunk = 64 * 1024;      // bytes asked for per read()
constexpr std::size_t kMaxPendingOut = 1 << 20;    // stop reading a connection that does not read its replies
constexpr int kMaxEvents = 256;
constexpr std::uint64_t kListenKey = ~std::uint64_t{0}, kStopKey = ~std::uint64_t{0} - 1;

// A byte buffer that never zero-fills (std::vector<std::byte>::resize would, 4 KiB per reply).
struct ByteBuf {
  std::unique_ptr<std::byte[]> p;
  std::size_t cap = 0, len = 0, off = 0;  // valid bytes: [off, len)
  std::size_t size() const { return len - off; }
  std::byte* data() { return p.get() + off; }
  std::byte* end() { return p.get() + len; }
  void reserve_tail(std::size_t n) {  // room for n more bytes after len
    if (cap - len >= n) return;
    if (off > 0) {  // compact first
      std::memmove(p.get(), p.get() + off, len - off);
      len -= off;
      off = 0;
      if (cap - len >= n) return;
    }
    std::size_t ncap = std::max<std::size_t>(cap ? cap * 2 : 4096, len + n);
    auto np = std::make_unique_for_overwrite<std::byte[]>(ncap);
    if (len) std::memcpy(np.get(), p.get(), len);
    p = std::move(np);
    cap = ncap;
  }
  void consume(std::size_t n) {
    off += n;
    if (off == len) off = len = 0;
  }
};

}  // namespace

struct TwinServer::Conn {
  int fd = -1;
  ByteBuf in, out;
  std::uint64_t skip = 0;      // bytes of an oversized frame still to discard
  bool reading = true;         // EPOLLIN in the interest set
  bool writing = false;        // EPOLLOUT in the interest set
};

TwinServer::TwinServer(Store& store) : store_(store) {
  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ep_ >= 0 && stop_fd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kStopKey;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, stop_fd_, &ev);
  }
}

TwinServer::~TwinServer() {
  for (auto& c : conns_)
    if (c) ::close(c->fd);
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
  }
  if (stop_fd_ >= 0) ::close(stop_fd_);
  if (ep_ >= 0) ::close(ep_);
}

Result<void> TwinServer::listen(const std::string& path) {
  if (ep_ < 0 || stop_fd_ < 0) return std::error_code(errno ? errno : EMFILE, std::generic_category());
  if (listen_fd_ >= 0) return std::errc::already_connected;
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) return std::errc::filename_too_long;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::error_code(errno, std::generic_category());
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 128) != 0) {
    const int e = errno;
    ::close(fd);
    return std::error_code(e, std::generic_category());
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenKey;
  if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int e = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return std::error_code(e, std::generic_category());
  }
  listen_fd_ = fd;
  path_ = path;
  return {};
}

void TwinServer::stop() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
}

TwinStats TwinServer::stats() const noexcept {
  return {accepted_.load(std::memory_order_relaxed), closed_.load(std::memory_order_relaxed),
          requests_.load(std::memory_order_relaxed), syscalls_.load(std::memory_order_relaxed)};
}

void TwinServer::accept_all() {
  for (;;) {
    count();
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error (EMFILE ...): level-triggered epoll retries
    if (static_cast<std::size_t>(fd) >= conns_.size()) conns_.resize(static_cast<std::size_t>(fd) + 1);
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    count();
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    conns_[static_cast<std::size_t>(fd)] = std::move(c);
    accepted_.store(accepted_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

void TwinServer::close_conn(Conn* c) {
  count();
  ::close(c->fd);  // also removes it from the epoll set
  closed_.store(closed_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  conns_[static_cast<std::size_t>(c->fd)].reset();
}

// Answers every whole frame in the input buffer into the output buffer (until kMaxPendingOut
// bytes of replies wait: the rest stays buffered until the client reads).
void TwinServer::answer(Conn& c) {
  std::uint64_t answered = 0;
  for (;;) {
    if (c.skip > 0) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(c.skip, c.in.size()));
      c.in.consume(k);
      c.skip -= k;
      if (c.skip > 0) break;
    }
    if (c.in.size() < kFramePrefix || c.out.size() >= kMaxPendingOut) break;
    const std::uint32_t len = get_u32(c.in.data());
    if (len <= kMaxRequest && c.in.size() < kFramePrefix + len) break;
    c.out.reserve_tail(kFramePrefix + kMaxResponse);
    std::byte* reply = c.out.end();
    std::size_t rn;
    if (len > kMaxRequest) {
      rn = encode_response(std::span(reply + kFramePrefix, kMaxResponse), Status::too_large);
      c.in.consume(kFramePrefix);
      c.skip = len;
    } else {
      rn = store_.handle(std::span<const std::byte>(c.in.data() + kFramePrefix, len),
                         std::span(reply + kFramePrefix, kMaxResponse));
      c.in.consume(kFramePrefix + len);
    }
    put_u32(reply, static_cast<std::uint32_t>(rn));
    c.out.len += kFramePrefix + rn;
    ++answered;
  }
  requests_.store(requests_.load(std::memory_order_relaxed) + answered, std::memory_order_relaxed);
}

// Reads what is there (again while reads fill the chunk), answers every whole frame, then
// flushes the replies with one write.
bool TwinServer::on_readable(Conn& c) {
  for (;;) {
    c.in.reserve_tail(kReadChunk);
    count();
    const ssize_t n = ::read(c.fd, c.in.end(), kReadChunk);
    if (n == 0) return false;  // the client closed (a partial frame, if any, is dropped with it)
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
    if (n > 0) c.in.len += static_cast<std::size_t>(n);
    answer(c);
    if (n < static_cast<ssize_t>(kReadChunk) || c.out.size() >= kMaxPendingOut) break;
  }
  return flush(c);
}

// Writes the pending replies (send with MSG_NOSIGNAL: a vanished client is an EPIPE, not a
// SIGPIPE); keeps EPOLLOUT (and, past kMaxPendingOut, drops EPOLLIN) while
// the socket buffer is full.
bool TwinServer::flush(Conn& c) {
  while (c.out.size() > 0) {
    count();
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);  // no SIGPIPE from a gone client
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return false;  // EPIPE, ECONNRESET: the client is gone
    }
    c.out.consume(static_cast<std::size_t>(n));
  }
  const bool want_out = c.out.size() > 0;
  const bool want_in = c.out.size() < kMaxPendingOut;
  if (want_out != c.writing || want_in != c.reading) {
    epoll_event ev{};
    ev.events = (want_in ? EPOLLIN : 0u) | (want_out ? EPOLLOUT : 0u);
    ev.data.u64 = static_cast<std::uint64_t>(c.fd);
    count();
    if (::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) != 0) return false;
    c.writing = want_out;
    c.reading = want_in;
  }
  return true;
}

void TwinServer::run() {
  epoll_event evs[kMaxEvents];
  for (;;) {
    count();
    const int n = ::epoll_wait(ep_, evs, kMaxEvents, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      const std::uint64_t key = evs[i].data.u64;
      if (key == kStopKey) return;  // the eventfd stays readable: a second run() returns too
      if (key == kListenKey) {
        accept_all();
        continue;
      }
      Conn* c = key < conns_.size() ? conns_[key].get() : nullptr;
      if (!c) continue;
      bool ok = true;
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ok = c->reading ? on_readable(*c) : flush(*c);
      if (ok && (evs[i].events & EPOLLOUT)) {
        ok = flush(*c);
        if (ok && c->in.size() > 0 && c->out.size() < kMaxPendingOut) {  // frames held back by backpressure
          answer(*c);
          ok = flush(*c);
        }
      }
      if (!ok) close_conn(c);
    }
  }
}

}  // namespace uipc::apps::kv
