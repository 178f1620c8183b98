// apps/kv/kv_server.hpp — the key-value store served to other processes, two ways.
//
//  UipcServer  uipc: one Runtime thread, one ipc::Server with an InlineHandler (the store
//              answers inside each channel's receive coroutine and writes the reply straight
//              into the response ring), an ipc::Listener on a Unix socket path that hands every
//              client process its own shared-memory channel.
//  TwinServer  the conventional twin: a SOCK_STREAM Unix socket, one thread, one level-triggered
//              epoll loop, non-blocking connections, length-prefixed frames (kv_protocol.hpp),
//              every readable connection read in big batches, all its whole frames answered,
//              all the replies written with one write; EPOLLOUT only while output is stuck.
//
// What they guarantee:
//  * Every request message gets exactly one response, in the store's order of handling; a bad
//    request gets its error status (kv_protocol.hpp) and that client's connection stays up.
//    TwinServer answers requests of one connection in order (a stream); UipcServer too (an
//    InlineHandler replies in order).
//  * A client that disconnects, even mid-request (a partial frame, requests still unanswered),
//    loses only its own connection; every other client carries on.
//  * Both use the same Store::handle, so the same request sequence gets the same answers.
// Who may call: construct and listen() on any thread; run() on one thread (it serves until
// stop()); stop() from any thread, at any time, also before run() (run then returns at once).
// What blocks: run() (it is the server loop). listen() binds and listens, nothing more.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kv/kv_store.hpp"
#include "uipc/ipc/endpoint.hpp"

namespace uipc::apps::kv {

// Channel options a kv client asks for: payload room for the largest request, a ring that
// holds `inflight` calls (at least 16 entries).
ipc::ChannelOptions channel_options(unsigned inflight);

class UipcServer {
 public:
  explicit UipcServer(Store& store, RuntimeOptions ro = {});
  ~UipcServer();
  UipcServer(const UipcServer&) = delete;
  UipcServer& operator=(const UipcServer&) = delete;

  Result<void> listen(const std::string& path);
  void run();
  void stop() noexcept;

  ipc::Server& server() noexcept { return server_; }  // in-process clients (tests): server().connect(rt)
  Runtime& runtime() noexcept { return rt_; }
  ipc::ServerStats stats() const noexcept { return server_.stats(); }  // after run() returned
  std::uint64_t channels_accepted() const noexcept;

 private:
  Store& store_;
  Runtime rt_;
  ipc::Server server_;
  std::unique_ptr<ipc::Listener> listener_;
  std::vector<std::byte> scratch_;  // a reply for a channel whose payload is too small for kMaxResponse
};

struct TwinStats {
  std::uint64_t accepted = 0;     // connections
  std::uint64_t closed = 0;       // connections ended (by the client, or a write error)
  std::uint64_t requests = 0;     // frames answered (bad ones included)
  std::uint64_t syscalls = 0;     // epoll_wait, accept4, read, write, epoll_ctl, close
};

class TwinServer {
 public:
  explicit TwinServer(Store& store);
  ~TwinServer();
  TwinServer(const TwinServer&) = delete;
  TwinServer& operator=(const TwinServer&) = delete;

  Result<void> listen(const std::string& path);  // an existing socket file at `path` is replaced
  void run();
  void stop() noexcept;
  TwinStats stats() const noexcept;  // any thread (values a few increments stale)
  std::uint64_t syscalls() const noexcept { return syscalls_.load(std::memory_order_relaxed); }

 private:
  struct Conn;
  void accept_all();
  bool on_readable(Conn& c);  // false: close it
  void answer(Conn& c);
  bool flush(Conn& c);        // false: close it
  void close_conn(Conn* c);
  void count(std::uint64_t n = 1) noexcept {
    syscalls_.store(syscalls_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  Store& store_;
  std::string path_;
  int listen_fd_ = -1;
  int ep_ = -1;
  int stop_fd_ = -1;  // eventfd: stop() writes it
  std::atomic<std::uint64_t> syscalls_{0};
  std::atomic<std::uint64_t> accepted_{0}, closed_{0}, requests_{0};
  std::vector<std::unique_ptr<Conn>> conns_;  // indexed by fd
};

}  // namespace uipc::apps::kv
