// uipc/ipc/endpoint.hpp — channels between processes: a server listens on a Unix socket path and
// hands each connecting client its channel by fd passing (SCM_RIGHTS).
//
// The exchange, one message each way on a fresh SOCK_SEQPACKET connection:
//   client → server: Hello {magic, version, options, client slot} + the client runtime's
//                    notification memfd;
//   server → client: Welcome {magic, version, status, server slot} + the channel memfd + the
//                    server runtime's notification memfd (only when status == 0).
// Both sides validate everything they receive: message size and magic, version, option ranges,
// that each fd is a memfd sealed against shrinking, the notification header, and the channel
// header (ipc::validate_channel) against the options that were asked for. Any failure ends that
// connection with an error for that client alone.
// What guarantees: the socket carries only setup; all traffic then goes through the shared
// memory. A client that connects and says nothing is dropped after ListenOptions::handshake_ms.
// Who may call: Listener methods from any thread; connect() on any thread, passing the Runtime
// the Client will run on. What blocks: connect() (one round trip on the socket);
// Listener runs its own accept thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "uipc/ipc/client.hpp"
#include "uipc/ipc/server.hpp"

namespace uipc::ipc {

struct ListenOptions {
  int handshake_ms = 2000;      // a connection must complete its Hello within this time
  unsigned backlog = 128;
};

struct ListenerStats {
  std::uint64_t accepted = 0;   // channels handed out
  std::uint64_t refused = 0;    // handshakes that failed validation or timed out
};

class Listener {
 public:
  // Binds `path` (an existing socket file there is replaced) and starts accepting for `server`.
  static Result<std::unique_ptr<Listener>> listen(Server& server, std::string path, ListenOptions o = {});
  ~Listener();  // stops accepting and unlinks the path; channels already handed out stay up
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  const std::string& path() const noexcept { return path_; }
  ListenerStats stats() const noexcept {
    return {accepted_.load(std::memory_order_relaxed), refused_.load(std::memory_order_relaxed)};
  }

 private:
  Listener(Server& s, std::string path, ListenOptions o, int fd, int stop_fd);
  void accept_loop();
  Result<void> handshake(int conn);

  Server& server_;
  std::string path_;
  ListenOptions opts_;
  int fd_ = -1;
  int stop_fd_ = -1;  // eventfd that ends accept_loop
  std::atomic<std::uint64_t> accepted_{0}, refused_{0};
  std::thread thread_;
};

// Connects to a Listener at `path` and returns a Client bound to `rt`. Errors: those of
// connect(2) (e.g. errc::no_such_file_or_directory, connection_refused), errc::protocol_error
// for a malformed answer, or the server's refusal (its errno).
Result<std::unique_ptr<Client>> connect(Runtime& rt, const std::string& path, const ChannelOptions& o = {});

}  // namespace uipc::ipc
